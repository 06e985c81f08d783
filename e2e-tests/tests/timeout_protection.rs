//! The benches compile every module as policy-server does by default, with its timeout
//! protection (wasmtime epoch interruption, `e2e_tests::POLICY_SERVER_TIMEOUT`). Checked here: it
//! is live (a deadline of zero ticks interrupts the guest) and it changes no answer.

use std::path::Path;

use e2e_tests::{Fixture, HostCapabilities, Policy};
use serde_json::Value;
use wasmtime_provider::EpochDeadlines;

/// A fixture's request, settings and host capabilities.
fn case(workspace: &Path, name: &str) -> (Value, Value, HostCapabilities) {
    let fixture = Fixture::load(&workspace.join("fixtures").join(name)).expect("a fixture");
    let capabilities = fixture
        .session
        .clone()
        .map_or_else(HostCapabilities::default, HostCapabilities::replay);
    (
        fixture.request().expect("a request"),
        fixture.settings,
        capabilities,
    )
}

#[test]
fn policy_server_timeout_protection_is_live_and_changes_no_answer() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let wasm = std::fs::read(e2e_tests::policy_wasm(&workspace).expect("policy.wasm builds"))
        .expect("policy.wasm is readable");
    let plain = Policy::from_bytes(&wasm).expect("compiles");
    let protected = Policy::from_bytes_as_policy_server(&wasm).expect("compiles");
    let expired = Policy::with_epoch_deadlines(
        &wasm,
        EpochDeadlines {
            wapc_init: 2,
            wapc_func: 0,
        },
    )
    .expect("compiles");
    for name in [
        "aws-basic-default-sa",
        "both-providers",
        "flyte-two-groups",
        "caller-pod-create-stamped",
    ] {
        let (request, settings, capabilities) = case(&workspace, name);
        let expected = plain
            .validate(&request, &settings, &capabilities)
            .unwrap_or_else(|e| panic!("{name}: {e:#}"));
        let got = protected
            .validate(&request, &settings, &capabilities)
            .unwrap_or_else(|e| panic!("{name}: {e:#}"));
        assert_eq!(got.validation, expected.validation, "{name}");
        assert_eq!(got.response, expected.response, "{name}");
        assert_eq!(got.host_calls, expected.host_calls, "{name}");
        let error = expired
            .validate(&request, &settings, &capabilities)
            .expect_err("a passed deadline interrupts the guest");
        assert!(
            format!("{error:#}").contains("interrupted"),
            "{name}: {error:#}"
        );
    }
}
