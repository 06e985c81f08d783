//! The whole decision on arbitrary input. Layout: one byte choosing the lookup's answer (error,
//! ServiceAccount with every provider, without annotations, with hostile values), then the request
//! JSON (an AdmissionRequest, or an AdmissionReview unwrapped as the host does), then optionally a
//! NUL byte and the settings JSON (default `{}`). The settings go through `validate_settings`, then
//! both go through `validate` as policy-server sends them. Must never panic.

#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use workload_identity_policy::{validate_payload, validate_settings_payload};

fuzz_target!(|data: &[u8]| {
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
    let response = validate_payload(&payload, &common::Fixed(mode));
    common::check_response(&response);
    if validation["valid"] == true {
        assert_ne!(
            response["code"], 500,
            "settings accepted by validate_settings, refused by validate: {response}"
        );
    }
});

/// `.request` of an AdmissionReview, as policy-server hands it to the policy.
fn admission_request(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut review: Value = serde_json::from_slice(bytes).ok()?;
    if review.get("kind")?.as_str()? != "AdmissionReview" {
        return None;
    }
    serde_json::to_vec(&review.get_mut("request")?.take()).ok()
}
