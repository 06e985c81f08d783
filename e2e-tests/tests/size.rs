//! The release `policy.wasm` stays within 768 KiB (the module may grow for speed; the
//! peer, Kubewarden's own mutating pod policy, is 1.75 MiB): every policy-server replica downloads
//! and compiles it. Size is deterministic for a given toolchain, so this is a plain test; the
//! timing figures are ratios printed by `make bench` and `make bench-kwctl` (BENCHMARKS.md), never
//! asserted.

#[allow(dead_code)] // only `wasm()` is used here
mod common;

const TARGET_BYTES: u64 = 768 * 1024;

#[test]
fn release_module_is_within_768_kib() {
    let wasm = common::wasm();
    let bytes = std::fs::metadata(wasm)
        .unwrap_or_else(|e| panic!("{}: {e}", wasm.display()))
        .len();
    assert!(
        bytes <= TARGET_BYTES,
        "{} is {bytes} bytes ({:.1} KiB), above the 768 KiB target",
        wasm.display(),
        bytes as f64 / 1024.0
    );
}
