//! workload-identity-policy: one Kubewarden policy that gives pods their
//! cloud workload identity from their ServiceAccount's annotations, drop-in
//! for the AWS EKS pod identity webhook and the STACKIT pod identity webhook.
//!
//! Layout: [`settings`] (decode + validate), [`request`] (decode the payload),
//! [`core::decide`] (the pure decision), [`providers`] (per-cloud rules as
//! data), [`secrets`] (Flyte task secrets), [`podedit`] (the only JSON
//! writer), [`host`] (the one lookup).
//! This file is the waPC glue: decode, look up, call the core, encode. No
//! error or panic leaves it: Kubewarden turns those into a 500 denial that
//! ignores the webhook's failurePolicy.

pub mod caller;
pub mod core;
pub mod host;
pub mod podedit;
pub mod providers;
pub mod request;
pub mod secrets;
pub mod settings;

use kubewarden_policy_sdk::response::ValidationResponse;
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
    let decision = match Input::from_payload(payload) {
        Err(message) => reject(message, 400),
        Ok((input, raw_settings)) => {
            let raw = serde_json::to_vec(&raw_settings).unwrap_or_default();
            match Settings::from_json(&raw) {
                Ok(settings) => core::decide(&settings, &input, lookup),
                // validate_settings refuses these before any request arrives.
                Err(message) => reject(format!("invalid policy settings: {message}"), 500),
            }
        }
    };
    encode(decision)
}

fn reject(message: String, code: u16) -> Decision {
    Decision::Reject {
        message,
        code,
        warnings: Vec::new(),
    }
}

fn encode(decision: Decision) -> Value {
    let non_empty = |w: Vec<String>| if w.is_empty() { None } else { Some(w) };
    let audit = |a: std::collections::BTreeMap<String, String>| {
        if a.is_empty() {
            None
        } else {
            Some(a.into_iter().collect())
        }
    };
    let response = match decision {
        Decision::Accept { warnings, audit: a } => ValidationResponse {
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
        } => ValidationResponse {
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
        } => ValidationResponse {
            accepted: false,
            message: Some(message),
            code: Some(code),
            mutated_object: None,
            audit_annotations: None,
            warnings: non_empty(warnings),
        },
    };
    serde_json::to_value(response).unwrap_or_else(|_| {
        json!({"accepted": false, "message": "internal error: response could not be encoded", "code": 500})
    })
}

#[cfg(target_arch = "wasm32")]
mod wapc {
    use kubewarden_policy_sdk::wapc_guest::{self as guest, CallResult};

    /// Bytes of a Value; serialising a `serde_json::Value` cannot fail.
    fn bytes(value: serde_json::Value) -> CallResult {
        Ok(serde_json::to_vec(&value).unwrap_or_default())
    }

    fn validate(payload: &[u8]) -> CallResult {
        bytes(super::validate_payload(payload, &super::host::HostLookup))
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
