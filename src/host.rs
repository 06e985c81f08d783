//! The one context lookup the policy needs: the pod's ServiceAccount.
//!
//! The core sees only the [`Lookup`] trait, so it is tested natively with an
//! in-memory map; the waPC glue implements it with the SDK's `get_resource`
//! (not in the browser playground's wasm32-unknown-unknown build, which has no
//! waPC host).

use serde_json::Value;

/// Which ServiceAccount to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccountRef {
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for ServiceAccountRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Reads a ServiceAccount as raw JSON. An error is a message for humans
/// (a missing object is an error, as in Kubewarden's host).
pub trait Lookup {
    fn service_account(&self, sa: &ServiceAccountRef) -> Result<Value, String>;
}

/// The waPC implementation: one `kubernetes/get_resource` host call with the
/// exact request kwctl replay sessions record (cache enabled, no field masks).
#[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
pub struct HostLookup;

#[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
impl Lookup for HostLookup {
    fn service_account(&self, sa: &ServiceAccountRef) -> Result<Value, String> {
        use kubewarden_policy_sdk::host_capabilities::kubernetes::{
            get_resource, GetResourceRequest,
        };
        let request = GetResourceRequest {
            api_version: "v1".to_string(),
            kind: "ServiceAccount".to_string(),
            name: sa.name.clone(),
            namespace: Some(sa.namespace.clone()),
            disable_cache: false,
            field_masks: None,
        };
        get_resource::<Value>(&request).map_err(host_message)
    }
}

/// The host's own words ("serviceaccounts \"app\" not found"), without the
/// SDK's and waPC's wrappers, which say nothing to the pod's author.
#[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
fn host_message(error: kubewarden_policy_sdk::error::Error) -> String {
    match error {
        kubewarden_policy_sdk::error::Error::HostCall { source, .. } => {
            let text = source.to_string();
            text.strip_prefix("Host error: ")
                .map(str::to_string)
                .unwrap_or(text)
        }
        other => other.to_string(),
    }
}
