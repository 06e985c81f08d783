//! `validate_settings` on arbitrary bytes: never panics, always answers `{valid, message}`.
//! Settings it accepts then drive `validate` on a pod whose ServiceAccount enables every provider:
//! accepted settings must never make `validate` fail (a 500 ignores the webhook's failurePolicy).

#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use workload_identity_policy::{validate_payload, validate_settings_payload};

fuzz_target!(|data: &[u8]| {
    let validation = validate_settings_payload(data);
    let valid = validation["valid"]
        .as_bool()
        .unwrap_or_else(|| panic!("no boolean `valid`: {validation}"));
    if !valid {
        assert!(validation["message"].is_string(), "{validation}");
        return;
    }
    // The policy trims ASCII whitespace (form feed included, which JSON does not allow), and
    // empty settings are the defaults (policy-server sends `null`).
    let trimmed = data.trim_ascii();
    let settings: Value = if trimmed.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(trimmed).expect("accepted settings are JSON")
    };
    for request in [pod(), deployment()] {
        let payload = serde_json::to_vec(&json!({"request": request, "settings": settings}))
            .expect("JSON encodes");
        let response = validate_payload(&payload, &common::Fixed(1));
        common::check_response(&response);
        assert_ne!(response["code"], 500, "accepted settings, 500: {response}");
    }
});

/// A pod with an init container, a native sidecar, user env and volumes, labelled for Azure and
/// Flyte, created by a user (caller identity).
fn pod() -> Value {
    json!({
        "uid": "0", "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "namespace": "payments", "operation": "CREATE",
        "userInfo": {"username": "jane.doe", "uid": "00u1", "groups": ["engineering", "system:authenticated"],
                     "extra": {"email": ["jane.doe@example.com"]}},
        "object": {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "ledger", "namespace": "payments",
                "labels": {"azure.workload.identity/use": "true", "inject-flyte-secrets": "true"},
                "annotations": {"flyte.secrets/s0": "m4zg54lqhiqcezdceiqgwzlzhiqce3dbonzxo22smqrca2lpovxhix2smvyxk1lsmvwwk2tuhiqektswl4lecuq"}},
            "spec": {
                "initContainers": [
                    {"name": "init", "image": "busybox"},
                    {"name": "sidecar", "image": "envoy", "restartPolicy": "Always"}
                ],
                "containers": [{"name": "app", "image": "app",
                    "env": [{"name": "AWS_REGION", "value": "eu-west-1"}],
                    "volumeMounts": [{"name": "config", "mountPath": "/etc/app"}]}],
                "volumes": [{"name": "config", "configMap": {"name": "app"}}]}}
    })
}

/// A Deployment created by a user: caller identity stamps its template.
fn deployment() -> Value {
    json!({
        "uid": "1", "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
        "namespace": "ml", "operation": "CREATE", "name": "trainer",
        "userInfo": {"username": "jane.doe", "uid": "00u1", "groups": ["engineering"]},
        "object": {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "trainer", "namespace": "ml"},
            "spec": {"template": {"metadata": {"labels": {"app": "trainer"}},
                "spec": {"containers": [{"name": "trainer", "image": "trainer"}]}}}}
    })
}
