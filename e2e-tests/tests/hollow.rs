//! The benches' hollow guest (`benches/scenarios/hollow.rs`) is a lower bound for ours only if
//! the host cannot tell the two apart: the same host calls, byte for byte, and the same answer.
//! Checked here on a fixture with a ServiceAccount lookup and one without.

#[path = "../benches/scenarios/hollow.rs"]
mod hollow;

use std::path::Path;
use std::sync::{Arc, Mutex};

use e2e_tests::Fixture;
use serde_json::{json, Value};
use wapc::{HostCallback, WapcHost, WasiParams};
use workload_identity_policy::host::{service_account_request, ServiceAccountRef};

/// A host call as the host sees it: binding, namespace, operation, payload.
type Call = (String, String, String, Vec<u8>);

/// `validate` on a fresh instance of `wasm`, every host call answered with `answer`: the output
/// and the calls.
fn run(wasm: &[u8], payload: &[u8], answer: &[u8]) -> (Vec<u8>, Vec<Call>) {
    let engine = wasmtime_provider::WasmtimeEngineProviderBuilder::new()
        .module_bytes(wasm)
        .wasi_params(WasiParams::default())
        .build()
        .expect("the module compiles");
    let calls = Arc::new(Mutex::new(Vec::<Call>::new()));
    let seen = Arc::clone(&calls);
    let answer = answer.to_vec();
    let callback: Box<HostCallback> = Box::new(move |_, binding, namespace, operation, payload| {
        seen.lock().expect("not poisoned").push((
            binding.to_string(),
            namespace.to_string(),
            operation.to_string(),
            payload.to_vec(),
        ));
        Ok(answer.clone())
    });
    let host = WapcHost::new(Box::new(engine), Some(callback)).expect("waPC init");
    let output = host.call("validate", payload).expect("validate answers");
    let calls = calls.lock().expect("not poisoned").clone();
    (output, calls)
}

#[test]
fn the_hollow_guest_costs_the_host_what_ours_does() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let wasm_path = e2e_tests::policy_wasm(&workspace).expect("policy.wasm builds");
    let ours = std::fs::read(&wasm_path).expect("policy.wasm is readable");
    for case in ["aws-basic-default-sa", "caller-pod-create-stamped"] {
        let fixture = Fixture::load(&workspace.join("fixtures").join(case)).expect("a fixture");
        let request = fixture.request().expect("a request");
        let settings = fixture.settings.clone();
        let account = fixture.service_account().expect("at most one lookup");
        let payload =
            serde_json::to_vec(&json!({"request": request, "settings": settings})).expect("JSON");
        let answer = account
            .as_ref()
            .map_or_else(Vec::new, |sa| serde_json::to_vec(sa).expect("JSON"));

        let (ours_output, ours_calls) = run(&ours, &payload, &answer);
        let ours_answer: Value = serde_json::from_slice(&ours_output).expect("ours answers JSON");
        let lookup = account.as_ref().map(|sa| {
            let sa_ref = ServiceAccountRef {
                name: sa["metadata"]["name"].as_str().unwrap_or_default().into(),
                namespace: request["namespace"].as_str().unwrap_or_default().into(),
            };
            serde_json::to_vec(&service_account_request(&sa_ref)).expect("JSON")
        });
        let module = hollow::module(
            &serde_json::to_vec(&ours_answer).expect("JSON"),
            lookup.as_deref(),
        )
        .expect("the hollow guest assembles");
        let (hollow_output, hollow_calls) = run(&module, &payload, &answer);

        assert_eq!(
            ours_calls.len(),
            usize::from(account.is_some()),
            "{case}: ours made {ours_calls:?}"
        );
        assert_eq!(hollow_calls, ours_calls, "{case}: host calls differ");
        assert_eq!(
            serde_json::from_slice::<Value>(&hollow_output).expect("the hollow guest answers JSON"),
            ours_answer,
            "{case}: answers differ"
        );
        assert_eq!(
            hollow_output.len(),
            ours_output.len(),
            "{case}: answers differ in size"
        );
    }
}
