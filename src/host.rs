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

impl ServiceAccountRef {
    /// The ServiceAccount a pod runs as: `spec.serviceAccountName`, else
    /// `default` (as the API server's ServiceAccount admission sets it).
    pub fn of_pod(namespace: &str, pod: &Value) -> ServiceAccountRef {
        ServiceAccountRef {
            namespace: namespace.to_string(),
            name: pod
                .pointer("/spec/serviceAccountName")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .unwrap_or("default")
                .to_string(),
        }
    }
}

impl std::fmt::Display for ServiceAccountRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Reads a ServiceAccount as raw JSON. An error is a message for humans
/// (a missing object is an error, as in Kubewarden's host).
pub trait Lookup {
    /// `cached`: whether the engine may answer from its lookup cache (`lookupCache`).
    fn service_account(&self, sa: &ServiceAccountRef, cached: bool) -> Result<Value, String>;
}

/// The waPC implementation: one `kubernetes/get_resource` host call with the
/// exact request kwctl replay sessions record (the cache as `lookupCache` says, no field masks).
#[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
pub struct HostLookup;

#[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
impl Lookup for HostLookup {
    fn service_account(&self, sa: &ServiceAccountRef, cached: bool) -> Result<Value, String> {
        kubewarden_policy_sdk::host_capabilities::kubernetes::get_resource::<Value>(
            &service_account_request(sa, cached),
        )
        .map_err(host_message)
    }
}

/// The `get_resource` request [`HostLookup`] sends for `sa` (the e2e tests check a fixture's
/// session records exactly this request).
#[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
pub fn service_account_request(
    sa: &ServiceAccountRef,
    cached: bool,
) -> kubewarden_policy_sdk::host_capabilities::kubernetes::GetResourceRequest {
    kubewarden_policy_sdk::host_capabilities::kubernetes::GetResourceRequest {
        api_version: "v1".to_string(),
        kind: "ServiceAccount".to_string(),
        name: sa.name.clone(),
        namespace: Some(sa.namespace.clone()),
        disable_cache: !cached,
        field_masks: None,
    }
}

/// The host's own words (`serviceaccounts "app" not found`), without the wrappers the SDK, waPC
/// and policy-evaluator put around them (`Host error: Callback evaluation failure: ...`), which
/// say nothing to the pod's author, and without the backtrace policy-evaluator appends when the
/// PolicyServer runs with `RUST_BACKTRACE=1`.
#[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
fn host_message(error: kubewarden_policy_sdk::error::Error) -> String {
    match error {
        kubewarden_policy_sdk::error::Error::HostCall { source, .. } => {
            underlying(&source.to_string()).to_string()
        }
        other => other.to_string(),
    }
}

/// [`host_message`] on the text of a host-call error.
#[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
fn underlying(text: &str) -> &str {
    let text = text.strip_prefix("Host error: ").unwrap_or(text);
    let text = text
        .strip_prefix("Callback evaluation failure: ")
        .unwrap_or(text);
    text.split_once("\n\nStack backtrace:")
        .map_or(text, |(message, _)| message)
        .trim_end()
}

#[cfg(test)]
mod tests {
    use super::{underlying, ServiceAccountRef};
    use serde_json::json;

    #[test]
    fn a_pod_runs_as_its_service_account_else_default() {
        let named = json!({"spec": {"serviceAccountName": "app"}});
        assert_eq!(
            ServiceAccountRef::of_pod("ns", &named).to_string(),
            "ns/app"
        );
        for pod in [
            json!({"spec": {"serviceAccountName": ""}}),
            json!({"spec": {"serviceAccountName": 7}}),
            json!({"spec": {}}),
        ] {
            assert_eq!(
                ServiceAccountRef::of_pod("ns", &pod).to_string(),
                "ns/default"
            );
        }
    }

    #[test]
    fn presents_the_underlying_error() {
        let found = r#"serviceaccounts "app" not found"#;
        for text in [
            found.to_string(),
            format!("Host error: {found}"),
            format!("Host error: Callback evaluation failure: {found}"),
            format!(
                "Host error: Callback evaluation failure: {found}\n\nStack backtrace:\n   0: <unknown>\n"
            ),
        ] {
            assert_eq!(underlying(&text), found, "{text:?}");
        }
        // The access refusal is not wrapped: it stays whole.
        let refused = "Policy has not been granted access to Kubernetes v1/ServiceAccount \
                       resources. The violation has been reported.";
        assert_eq!(underlying(&format!("Host error: {refused}")), refused);
    }
}
