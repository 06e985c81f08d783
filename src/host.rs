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

/// The host-call error as the SDK reports it; [`readable`] makes a line of it.
#[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
fn host_message(error: kubewarden_policy_sdk::error::Error) -> String {
    match error {
        kubewarden_policy_sdk::error::Error::HostCall { source, .. } => source.to_string(),
        other => other.to_string(),
    }
}

/// A failed lookup as one line for the Pod's author: the API server's own message, reason and
/// code once (`etcdserver: request timed out (InternalError, 500)`), without the wrappers the
/// SDK, waPC and policy-evaluator put around it (`Host error: Callback evaluation failure: ...`),
/// the Debug form of kube-rs' `ErrorResponse` that repeats it, anyhow's `Caused by:` list and the
/// backtrace policy-evaluator appends with `RUST_BACKTRACE=1`. Text of another shape is kept, on
/// one line.
///
/// The shapes are policy-evaluator v0.30.4's (`src/runtimes/callback.rs` wraps the handler's
/// anyhow error as `Callback evaluation failure: {e:?}`; `src/callback_handler/kubernetes/
/// client.rs` returns kube-rs 2's `Error` or `Cannot find <apiVersion>/<kind> named '<name>'
/// inside of namespace '<Some("ns")>'`).
pub fn readable(text: &str) -> String {
    let text = text.strip_prefix("Host error: ").unwrap_or(text);
    let text = text
        .strip_prefix("Callback evaluation failure: ")
        .unwrap_or(text);
    let text = text
        .split_once("\n\nStack backtrace:")
        .map_or(text, |(message, _)| message)
        .trim();
    let (head, causes) = match text.split_once("\n\nCaused by:") {
        Some((head, causes)) => (head.trim(), Some(causes)),
        None => (text, None),
    };
    if let Some(response) = error_response(head) {
        return response;
    }
    if head.starts_with("Cannot find ") && head.contains(" named '") {
        return "not found".to_string();
    }
    let mut line = one_line(head);
    // The innermost cause says what failed (`Connection refused (os error 111)`).
    let innermost = causes
        .and_then(|c| c.lines().map(str::trim).rfind(|l| !l.is_empty()))
        .map(|l| {
            l.split_once(": ")
                .filter(|(n, _)| n.bytes().all(|b| b.is_ascii_digit()))
                .map_or(l, |(_, rest)| rest)
        });
    if let Some(cause) = innermost.filter(|c| !line.contains(c)) {
        line = format!("{line}: {cause}");
    }
    line
}

/// `message (reason, code)` from the Debug form of kube-rs' `ErrorResponse { status, message,
/// reason, code }`.
fn error_response(text: &str) -> Option<String> {
    let fields = text.split_once("ErrorResponse { ")?.1;
    let quoted = |name: &str| -> Option<String> {
        let start = fields.find(&format!("{name}: \""))? + name.len() + 3;
        let mut out = String::new();
        let mut chars = fields.get(start..)?.chars();
        loop {
            match chars.next()? {
                '"' => return Some(out),
                '\\' => match chars.next()? {
                    'n' => out.push(' '),
                    't' => out.push(' '),
                    other => out.push(other),
                },
                c => out.push(c),
            }
        }
    };
    let message = quoted("message")?;
    let reason = quoted("reason").unwrap_or_default();
    let code: String = fields
        .split_once("code: ")?
        .1
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let details: Vec<&str> = [reason.as_str(), code.as_str()]
        .into_iter()
        .filter(|d| !d.is_empty())
        .collect();
    let message = if message.is_empty() {
        reason.clone()
    } else {
        message
    };
    Some(match details.is_empty() {
        true => message,
        false => format!("{message} ({})", details.join(", ")),
    })
}

/// Lines joined by `; `, blanks dropped.
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::{readable, ServiceAccountRef};
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
            assert_eq!(readable(&text), found, "{text:?}");
        }
        // The access refusal is not wrapped: it stays whole.
        let refused = "Policy has not been granted access to Kubernetes v1/ServiceAccount \
                       resources. The violation has been reported.";
        assert_eq!(readable(&format!("Host error: {refused}")), refused);
    }

    /// The shapes policy-evaluator v0.30.4 produces for a failed `get_resource`.
    #[test]
    fn api_server_errors_are_one_line() {
        let wrap = |e: &str| format!("Host error: Callback evaluation failure: {e}");
        let api = |message: &str, reason: &str, code: u16| {
            let escaped = message.replace('\\', "\\\\").replace('"', "\\\"");
            wrap(&format!(
                "ApiError: {message}: {reason} (ErrorResponse {{ status: \"Failure\", message: \"{escaped}\", reason: \"{reason}\", code: {code} }})\n\nCaused by:\n    {message}: {reason}"
            ))
        };
        assert_eq!(
            readable(&api("etcdserver: request timed out", "InternalError", 500)),
            "etcdserver: request timed out (InternalError, 500)"
        );
        let forbidden = r#"serviceaccounts "app" is forbidden: User "system:serviceaccount:kubewarden:policy-server" cannot get resource "serviceaccounts" in API group "" in the namespace "team-a""#;
        assert_eq!(
            readable(&api(forbidden, "Forbidden", 403)),
            format!("{forbidden} (Forbidden, 403)")
        );
        assert_eq!(
            readable(&api("the server has received too many requests and has asked us to try again later", "TooManyRequests", 429)),
            "the server has received too many requests and has asked us to try again later (TooManyRequests, 429)"
        );
        assert_eq!(
            readable(&wrap(
                "Cannot find v1/ServiceAccount named 'app' inside of namespace 'Some(\"team-a\")'"
            )),
            "not found"
        );
        assert_eq!(
            readable(&wrap(
                "ServiceError: client error (Connect)\n\nCaused by:\n    0: client error (Connect)\n    1: tcp connect error: Connection refused (os error 111)\n    2: Connection refused (os error 111)\n\nStack backtrace:\n   0: x"
            )),
            "ServiceError: client error (Connect): Connection refused (os error 111)"
        );
        assert_eq!(
            readable(&wrap(
                "ServiceError: request timed out\n\nCaused by:\n    request timed out"
            )),
            "ServiceError: request timed out"
        );
        // Nothing to extract: the text, on one line.
        assert_eq!(readable("first\n  second\n"), "first; second");
        // A malformed ErrorResponse is kept as text.
        assert_eq!(
            readable("ApiError: x (ErrorResponse { status: \"Failure\", message: \"unterminated"),
            "ApiError: x (ErrorResponse { status: \"Failure\", message: \"unterminated"
        );
    }
}
