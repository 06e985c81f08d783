//! The fuzz targets' checks, one function per target, shared by `fuzz/fuzz_targets/*.rs`
//! (libFuzzer, nightly) and by `tests/fuzz_corpus.rs`, which replays the committed corpus
//! (`fuzz/corpus/<target>/`) with a plain `cargo test` on stable: every input a campaign ever
//! kept stays a regression test. Each function must not panic on any input.

// Each target and the replay test use a part of it.
#![allow(dead_code)]

use serde_json::{json, Value};
use workload_identity_policy::host::{Lookup, ServiceAccountRef};
use workload_identity_policy::secrets::decode_secret;
use workload_identity_policy::{validate_payload, validate_settings_payload};

/// The lookup of the fuzzed decision: its answer is chosen by one input byte.
pub struct Fixed(pub u8);

impl Lookup for Fixed {
    fn service_account(&self, sa: &ServiceAccountRef, _cached: bool) -> Result<Value, String> {
        match self.0 % 4 {
            0 => Err(format!("serviceaccounts \"{}\" not found", sa.name)),
            1 => Ok(service_account(sa, every_provider())),
            2 => Ok(service_account(sa, json!({}))),
            _ => Ok(service_account(sa, hostile())),
        }
    }
}

fn service_account(sa: &ServiceAccountRef, annotations: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ServiceAccount",
           "metadata": {"name": sa.name, "namespace": sa.namespace, "annotations": annotations}})
}

/// Every built-in provider, the examples' custom providers, and options set (values of fixtures/).
pub fn every_provider() -> Value {
    json!({
        "eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/payments-ledger",
        "eks.amazonaws.com/audience": "sts.amazonaws.com",
        "eks.amazonaws.com/sts-regional-endpoints": "true",
        "eks.amazonaws.com/token-expiration": "3600",
        "workload-identity.stackit.cloud/service-account-email": "reports-7h2m9p@sa.stackit.cloud",
        "workload-identity.stackit.cloud/idp-token-endpoint": "https://accounts.stackit.cloud/oauth/v2/token",
        "azure.workload.identity/client-id": "6f3c1b2a-8d4e-4f5a-9b6c-7d8e9f0a1b2c",
        "azure.workload.identity/tenant-id": "72f988bf-86f1-41af-91ab-2d7cd011db47",
        "azure.workload.identity/service-account-token-expiration": "3600",
        "cloud.google.com/workload-identity-provider": "projects/418720553091/locations/global/workloadIdentityPools/onprem-k8s/providers/cluster-eu1",
        "cloud.google.com/service-account-email": "billing-exporter@acme-finance-prod.iam.gserviceaccount.com",
        "vault.example.com/role": "payments-reader",
    })
}

/// Values a ServiceAccount's owner may set that are wrong in every way the policy checks.
fn hostile() -> Value {
    json!({
        "eks.amazonaws.com/role-arn": "not an arn\n",
        "eks.amazonaws.com/sts-regional-endpoints": "maybe",
        "eks.amazonaws.com/token-expiration": "-99999999999999999999",
        "workload-identity.stackit.cloud/service-account-email": "",
        "workload-identity.stackit.cloud/token-expiration": "1e9",
        "azure.workload.identity/client-id": "\u{0}",
        "azure.workload.identity/service-account-token-expiration": "18446744073709551616",
        "cloud.google.com/workload-identity-provider": "projects//x",
        "cloud.google.com/injection-mode": "🙂",
        "vault.example.com/role": "{value}{tokenFile}",
    })
}

/// A guest response is a ValidationResponse: `accepted` is a boolean, a denial has a code.
pub fn check_response(response: &Value) {
    let accepted = response["accepted"]
        .as_bool()
        .unwrap_or_else(|| panic!("response without boolean `accepted`: {response}"));
    if !accepted {
        assert!(
            response["code"].is_u64(),
            "denial without a code: {response}"
        );
    }
}

/// The whole decision on arbitrary input. Layout: one byte choosing the lookup's answer (error,
/// ServiceAccount with every provider, without annotations, with hostile values), then the request
/// JSON (an AdmissionRequest, or an AdmissionReview unwrapped as the host does), then optionally a
/// NUL byte and the settings JSON (default `{}`). The settings go through `validate_settings`, then
/// both go through `validate` as policy-server sends them. Must never panic.
pub fn decide(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (request, settings) = match rest.iter().position(|&b| b == 0) {
        Some(nul) => (&rest[..nul], &rest[nul + 1..]),
        None => (rest, &b"{}"[..]),
    };
    let validation = validate_settings_payload(settings);
    assert!(validation["valid"].is_boolean(), "{validation}");

    let unwrapped = admission_request(request);
    let request = unwrapped.as_deref().unwrap_or(request);
    // Spliced, not re-encoded: invalid JSON in either part reaches the policy as it is.
    let payload = [
        &b"{\"request\":"[..],
        request,
        &b",\"settings\":"[..],
        settings,
        &b"}"[..],
    ]
    .concat();
    let response = validate_payload(&payload, &Fixed(mode));
    check_response(&response);
    if validation["valid"] == true {
        assert_ne!(
            response["code"], 500,
            "settings accepted by validate_settings, refused by validate: {response}"
        );
    }
}

/// `.request` of an AdmissionReview, as policy-server hands it to the policy.
fn admission_request(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut review: Value = serde_json::from_slice(bytes).ok()?;
    if review.get("kind")?.as_str()? != "AdmissionReview" {
        return None;
    }
    serde_json::to_vec(&review.get_mut("request")?.take()).ok()
}

/// `validate_settings` on arbitrary bytes: never panics, always answers `{valid, message}`.
/// Settings it accepts then drive `validate` on a pod whose ServiceAccount enables every provider:
/// accepted settings must never make `validate` fail (a 500 ignores the webhook's failurePolicy).
pub fn settings(data: &[u8]) {
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
        let response = validate_payload(&payload, &Fixed(1));
        check_response(&response);
        assert_ne!(response["code"], 500, "accepted settings, 500: {response}");
    }
}

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

/// Flyte's secret request decoder (base32 with Flyte's alphabet, then protobuf text) on any
/// UTF-8 string: an error or a Secret, never a panic; other bytes are not a string.
pub fn flyte_decoder(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = std::hint::black_box(decode_secret(text));
    }
}
