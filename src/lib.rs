//! workload-identity-policy: one Kubewarden mutating policy that gives pods their cloud workload
//! identity from their ServiceAccount's annotations, drop-in for the webhooks that do it today:
//! AWS IRSA and EKS Pod Identity (aws/amazon-eks-pod-identity-webhook), Azure Workload Identity,
//! GCP workload identity federation (pfnet-research's webhook), STACKIT, and token providers
//! defined in settings. It can also stamp the caller's identity on pods and pod templates
//! (Union's identity injection) and mount Flyte task secrets (flytepropeller's pod webhook).
//!
//! Layout: [`settings`] (types, the one decoder, validation), [`request`] (decode the payload),
//! [`core::decide`] (the pure decision), [`providers`] (per-cloud rules as data), [`caller`]
//! (caller identity), [`secrets`] (Flyte task secrets), [`podedit`] (the only JSON writer),
//! [`host`] (the one lookup), [`names`] (the names the policy owns).
//! This file is the waPC glue: decode, look up, call the core, encode. No
//! error or panic leaves it: Kubewarden turns those into a 500 denial that
//! ignores the webhook's failurePolicy.

// A panic in `validate` is a 500 denial that ignores the webhook's
// failurePolicy: outside tests, no unwrap, expect or panic may exist at all.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable
    )
)]

pub mod caller;
pub mod core;
pub mod host;
mod json;
pub mod names;
pub mod podedit;
pub mod providers;
pub mod request;
pub mod secrets;
pub mod serviceaccount;
pub mod settings;
pub mod verify;

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::core::Decision;
use crate::request::Input;
use crate::settings::Settings;

/// `validate_settings`: raw settings JSON in, `{"valid", "message"}` out.
pub fn validate_settings_payload(payload: &[u8]) -> Value {
    match Settings::from_json(payload) {
        Ok(_) => json!({"valid": true, "message": null}),
        Err(message) => json!({"valid": false, "message": message}),
    }
}

/// `validate`: `{"request", "settings"}` in, a ValidationResponse out.
pub fn validate_payload(payload: &[u8], lookup: &dyn host::Lookup) -> Value {
    serde_json::to_value(response(decide_payload(payload, lookup)))
        .unwrap_or_else(|_| encoding_failed())
}

/// [`validate_payload`] straight to bytes: what the waPC function returns.
pub fn validate_payload_bytes(payload: &[u8], lookup: &dyn host::Lookup) -> Vec<u8> {
    serde_json::to_vec(&response(decide_payload(payload, lookup)))
        .or_else(|_| serde_json::to_vec(&encoding_failed()))
        .unwrap_or_default()
}

fn decide_payload(payload: &[u8], lookup: &dyn host::Lookup) -> Decision {
    match Input::from_payload(payload) {
        Err(message) => reject(message, 400),
        Ok((input, settings)) => match Settings::from_json(settings.unwrap_or("").as_bytes()) {
            Ok(settings) => core::decide_owned(&settings, input, lookup),
            // validate_settings refuses these before any request arrives.
            Err(message) => reject(format!("invalid policy settings: {message}"), 500),
        },
    }
}

fn reject(message: String, code: u16) -> Decision {
    Decision::Reject {
        message,
        code,
        warnings: Vec::new(),
    }
}

fn encoding_failed() -> Value {
    json!({"accepted": false, "message": "internal error: response could not be encoded", "code": 500})
}

/// The wire format of Kubewarden's `ValidationResponse`
/// (`kubewarden_policy_sdk::response::ValidationResponse`), with the audit
/// annotations ordered so that the same decision is always the same bytes.
#[derive(Debug, serde::Serialize)]
struct Response {
    accepted: bool,
    message: Option<String>,
    code: Option<u16>,
    mutated_object: Option<Value>,
    audit_annotations: Option<BTreeMap<String, String>>,
    warnings: Option<Vec<String>>,
}

fn response(decision: Decision) -> Response {
    let non_empty = |w: Vec<String>| if w.is_empty() { None } else { Some(w) };
    let audit = |a: BTreeMap<String, String>| if a.is_empty() { None } else { Some(a) };
    match decision {
        Decision::Accept { warnings, audit: a } => Response {
            accepted: true,
            message: None,
            code: None,
            mutated_object: None,
            audit_annotations: audit(a),
            warnings: non_empty(warnings),
        },
        Decision::Mutate {
            object,
            warnings,
            audit: a,
        } => Response {
            accepted: true,
            message: None,
            code: None,
            mutated_object: Some(object),
            audit_annotations: audit(a),
            warnings: non_empty(warnings),
        },
        Decision::Reject {
            message,
            code,
            warnings,
        } => Response {
            accepted: false,
            message: Some(message),
            code: Some(code),
            mutated_object: None,
            audit_annotations: None,
            warnings: non_empty(warnings),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kubewarden_policy_sdk::response::ValidationResponse;

    /// Our response must read as the SDK's, which is what policy-server decodes.
    #[test]
    fn response_is_the_sdk_wire_format() {
        let decision = Decision::Mutate {
            object: json!({"a": 1}),
            warnings: vec!["w".into()],
            audit: BTreeMap::from([("k".to_string(), "v".to_string())]),
        };
        let bytes = serde_json::to_vec(&response(decision)).unwrap();
        let sdk: ValidationResponse = serde_json::from_slice(&bytes).unwrap();
        assert!(sdk.accepted);
        assert_eq!(sdk.mutated_object, Some(json!({"a": 1})));
        assert_eq!(sdk.warnings, Some(vec!["w".to_string()]));
        assert_eq!(
            sdk.audit_annotations.unwrap().get("k").map(String::as_str),
            Some("v")
        );
        let rejected = serde_json::to_value(response(reject("no".into(), 403))).unwrap();
        assert_eq!(
            rejected,
            json!({"accepted": false, "message": "no", "code": 403, "mutated_object": null, "audit_annotations": null, "warnings": null})
        );
    }

    #[test]
    fn bytes_and_value_agree() {
        struct NoLookup;
        impl host::Lookup for NoLookup {
            fn service_account(
                &self,
                _: &host::ServiceAccountRef,
                _: bool,
            ) -> Result<Value, String> {
                Err("none".into())
            }
        }
        let payload = br#"{"request":{"uid":"1","kind":{"group":"","kind":"Pod"},"operation":"CREATE","namespace":"a","object":{"metadata":{"name":"p"},"spec":{"containers":[{"name":"c"}]}}},"settings":{}}"#;
        let value = validate_payload(payload, &NoLookup);
        let bytes: Value =
            serde_json::from_slice(&validate_payload_bytes(payload, &NoLookup)).unwrap();
        assert_eq!(value, bytes);
        assert_eq!(value["accepted"], json!(true));
    }
}

// waPC guest only (wasm32-wasip1): not in the browser playground's wasm32-unknown-unknown build.
#[cfg(all(target_arch = "wasm32", target_os = "wasi"))]
mod wapc {
    use kubewarden_policy_sdk::wapc_guest::{self as guest, CallResult};

    /// Bytes of a Value; serialising a `serde_json::Value` cannot fail.
    fn bytes(value: serde_json::Value) -> CallResult {
        Ok(serde_json::to_vec(&value).unwrap_or_default())
    }

    fn validate(payload: &[u8]) -> CallResult {
        Ok(super::validate_payload_bytes(
            payload,
            &super::host::HostLookup,
        ))
    }

    fn validate_settings(payload: &[u8]) -> CallResult {
        bytes(super::validate_settings_payload(payload))
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
