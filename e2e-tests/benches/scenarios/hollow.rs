//! The hollow guest of a scenario: a waPC module that does none of a policy's work and still costs the
//! host everything our policy makes it pay. It receives the payload (`__guest_request`), makes
//! our ServiceAccount lookup with our exact bytes when ours makes one (`__host_call`, then reads
//! the answer), and returns our exact ValidationResponse, baked into its data segment. No JSON is
//! parsed or written in the guest: whatever a guest does, any policy giving our answer costs at
//! least this. The benches time it beside ours and the peer, so that a missed ratio can be told
//! apart from work the guest could still shed. (Not the `floor` of `benches/policy.rs`, which is
//! native JSON parsing and writing.)
//!
//! The module is generated as WebAssembly text and assembled with the `wat` crate (the assembler
//! wasmtime itself uses). Besides `validate` it answers `protocol_version` (`"v1"`, so that
//! `kwctl annotate` accepts it) and `validate_settings` (`{"valid":true}`).

use std::fmt::Write as _;

use anyhow::{Context, Result};

/// The host call our policy makes for a ServiceAccount (src/host.rs, the SDK's `get_resource`).
const BINDING: &str = "kubewarden";
const NAMESPACE: &str = "kubernetes";
const OPERATION: &str = "get_resource";

/// The hollow module answering `validate` with `response`; with `lookup`, it first makes the
/// `kubewarden/kubernetes/get_resource` call with that payload and reads the host's answer.
pub fn module(response: &[u8], lookup: Option<&[u8]>) -> Result<Vec<u8>> {
    wat::parse_str(text(response, lookup)).context("the hollow module does not assemble")
}

/// Lays the constants out from address 0, then the payload and the host's answer after them.
fn text(response: &[u8], lookup: Option<&[u8]>) -> String {
    let mut data = Vec::<u8>::new();
    let mut place = |bytes: &[u8]| {
        let at = data.len();
        data.extend_from_slice(bytes);
        (at, bytes.len())
    };
    let binding = place(BINDING.as_bytes());
    let namespace = place(NAMESPACE.as_bytes());
    let operation = place(OPERATION.as_bytes());
    let version = place(b"\"v1\"");
    let valid = place(b"{\"valid\":true}");
    let answer = place(response);
    let lookup = lookup.map(&mut place);
    // The payload goes on the next 8-byte boundary, the host's answer after it.
    let buffer = (data.len() + 7) & !7;

    let lookup_call = match lookup {
        Some((at, len)) => format!(
            "(drop (call $host_call (i32.const {}) (i32.const {}) (i32.const {}) (i32.const {}) \
             (i32.const {}) (i32.const {}) (i32.const {at}) (i32.const {len})))
             (local.set $n (call $host_response_len))
             (call $reserve (i32.add (local.get $end) (local.get $n)))
             (call $host_response (local.get $end))",
            binding.0, binding.1, namespace.0, namespace.1, operation.0, operation.1
        ),
        None => String::new(),
    };
    let mut escaped = String::with_capacity(data.len() * 3);
    for byte in &data {
        let _ = write!(escaped, "\\{byte:02x}");
    }
    format!(
        r#"(module
  (import "wapc" "__guest_request" (func $guest_request (param i32 i32)))
  (import "wapc" "__guest_response" (func $guest_response (param i32 i32)))
  (import "wapc" "__host_call" (func $host_call (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wapc" "__host_response_len" (func $host_response_len (result i32)))
  (import "wapc" "__host_response" (func $host_response (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "{escaped}")
  (func (export "wapc_init"))
  ;; Grows the memory to hold `end` bytes.
  (func $reserve (param $end i32)
    (local $have i32)
    (local.set $have (i32.mul (memory.size) (i32.const 65536)))
    (if (i32.gt_u (local.get $end) (local.get $have))
      (then (drop (memory.grow
        (i32.div_u (i32.add (i32.sub (local.get $end) (local.get $have)) (i32.const 65535))
                   (i32.const 65536)))))))
  (func (export "__guest_call") (param $op i32) (param $len i32) (result i32)
    (local $end i32)
    (local $n i32)
    (local.set $end (i32.add (i32.const {buffer}) (i32.add (local.get $op) (local.get $len))))
    (call $reserve (local.get $end))
    (call $guest_request (i32.const {buffer}) (i32.add (i32.const {buffer}) (local.get $op)))
    ;; "validate" (8 bytes), "protocol_version" (16), "validate_settings" (17)
    (if (i32.eq (local.get $op) (i32.const 8))
      (then
        {lookup_call}
        (call $guest_response (i32.const {answer_at}) (i32.const {answer_len}))
        (return (i32.const 1))))
    (if (i32.eq (local.get $op) (i32.const 16))
      (then
        (call $guest_response (i32.const {version_at}) (i32.const {version_len}))
        (return (i32.const 1))))
    (call $guest_response (i32.const {valid_at}) (i32.const {valid_len}))
    (i32.const 1)))
"#,
        answer_at = answer.0,
        answer_len = answer.1,
        version_at = version.0,
        version_len = version.1,
        valid_at = valid.0,
        valid_len = valid.1,
    )
}
