//! The benches' floor guest: what any policy that reads the pod into a document and hands it
//! back must spend, with nothing of a policy's decisions.
//!
//! It is built like the policy (same SDK waPC runtime, same release profile, same `wasm-opt`) and
//! answers `validate` by reading the request's `object` into a `serde_json::Value` (everything
//! else of the payload skipped unread, as the policy's own decoder does) and returning it as the
//! mutated object, unchanged. The host then decodes an answer as large as ours and computes an
//! empty patch. It makes no lookup and decodes no settings. So on every row it costs less than any
//! guest that parses the pod into a document, as both ours and the peer do, can give our answer:
//! `floor/peer` above a target means no such guest can meet it there (BENCHMARKS.md).
//!
//! Its `wapc_init` registers the same three functions as the policy's (`src/lib.rs`) on purpose:
//! the SDK's waPC runtime then costs it exactly what it costs ours.
//!
//! Built by `make doc-floor.wasm` (`cargo build --example doc-floor-guest`); natively it is empty.

#[cfg(all(target_arch = "wasm32", target_os = "wasi"))]
mod wapc {
    use kubewarden_policy_sdk::wapc_guest::{self as guest, CallResult};
    use serde::Deserialize;
    use serde_json::Value;

    #[derive(Deserialize)]
    struct Payload {
        request: Request,
    }

    #[derive(Deserialize)]
    struct Request {
        #[serde(default)]
        object: Value,
    }

    #[derive(serde::Serialize)]
    struct Response {
        accepted: bool,
        message: Option<String>,
        code: Option<u16>,
        mutated_object: Option<Value>,
        audit_annotations: Option<Value>,
        warnings: Option<Vec<String>>,
    }

    fn validate(payload: &[u8]) -> CallResult {
        let payload: Payload = serde_json::from_slice(payload)?;
        let response = Response {
            accepted: true,
            message: None,
            code: None,
            mutated_object: Some(payload.request.object),
            audit_annotations: None,
            warnings: None,
        };
        Ok(serde_json::to_vec(&response)?)
    }

    fn validate_settings(_: &[u8]) -> CallResult {
        Ok(br#"{"valid":true,"message":null}"#.to_vec())
    }

    #[unsafe(no_mangle)]
    pub extern "C" fn wapc_init() {
        guest::register_function("validate", validate);
        guest::register_function("validate_settings", validate_settings);
        guest::register_function(
            "protocol_version",
            kubewarden_policy_sdk::protocol_version_guest,
        );
    }
}
