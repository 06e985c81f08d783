//! The release `policy.wasm` stays below 512 KiB (issue #6): every policy-server replica downloads
//! and compiles it. Size is deterministic for a given toolchain, so this is a plain test; the
//! timing targets are ratios printed by `make bench` (BENCHMARKS.md), never asserted.

#[allow(dead_code)] // only `wasm()` is used here
mod common;

const TARGET_BYTES: u64 = 512 * 1024;

#[test]
fn release_module_is_below_512_kib() {
    let wasm = common::wasm();
    let bytes = std::fs::metadata(wasm)
        .unwrap_or_else(|e| panic!("{}: {e}", wasm.display()))
        .len();
    assert!(
        bytes < TARGET_BYTES,
        "{} is {bytes} bytes ({:.1} KiB), above the 512 KiB target",
        wasm.display(),
        bytes as f64 / 1024.0
    );
}
