//! The request editor's content as the AdmissionRequest the policy receives.

use serde_json::{json, Map, Value};

/// The uid of a request the page builds around a bare object.
pub const UID: &str = "00000000-0000-0000-0000-000000000000";

/// Returns the AdmissionRequest of an AdmissionReview (its `.request`), an
/// AdmissionRequest as is, or a Kubernetes object wrapped as a CREATE in its
/// namespace; then `user_info`, when given, replaces the request's `userInfo`.
pub fn admission_request(doc: Value, user_info: Option<Value>) -> Result<Value, String> {
    let Value::Object(mut map) = doc else {
        return Err(
            "expected a JSON object: an AdmissionReview, an AdmissionRequest or a Kubernetes object"
                .to_string(),
        );
    };
    let kind = map.get("kind");
    let is_review = kind.and_then(Value::as_str) == Some("AdmissionReview")
        || (!map.contains_key("uid") && map.contains_key("request"));
    let mut request = if is_review {
        match map.remove("request") {
            Some(Value::Object(request)) => request,
            _ => return Err("the AdmissionReview has no \"request\" object".to_string()),
        }
    } else if kind.is_some_and(Value::is_string) {
        create(map)?
    } else if kind.is_some_and(Value::is_object) || map.contains_key("operation") {
        map
    } else {
        return Err(
            "neither an AdmissionReview, an AdmissionRequest (kind {group, version, kind}) nor a Kubernetes object (apiVersion and kind)"
                .to_string(),
        );
    };
    if let Some(user_info) = user_info {
        request.insert("userInfo".to_string(), user_info);
    }
    Ok(Value::Object(request))
}

/// The CREATE request the API server would send for `object`.
fn create(object: Map<String, Value>) -> Result<Map<String, Value>, String> {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_string();
    let kind = text(object.get("kind"));
    let api_version = text(object.get("apiVersion"));
    if kind.is_empty() || api_version.is_empty() {
        return Err(
            "a Kubernetes object needs a non-empty \"apiVersion\" and \"kind\"".to_string(),
        );
    }
    let (group, version) = api_version.split_once('/').unwrap_or(("", &api_version));
    let metadata = object.get("metadata");
    let namespace = text(metadata.and_then(|m| m.get("namespace")));
    let namespace = if namespace.is_empty() {
        "default".to_string()
    } else {
        namespace
    };
    let name = text(metadata.and_then(|m| m.get("name")));
    let gvk = json!({"group": group, "version": version, "kind": kind});
    let gvr = json!({"group": group, "version": version, "resource": plural(&kind)});
    let request = json!({
        "uid": UID,
        "kind": gvk,
        "resource": gvr,
        "requestKind": gvk,
        "requestResource": gvr,
        "namespace": namespace,
        "operation": "CREATE",
        "userInfo": {},
        "object": null,
        "oldObject": null,
        "dryRun": false,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
    });
    let Value::Object(mut request) = request else {
        return Err("internal error: the request is not an object".to_string());
    };
    if !name.is_empty() {
        request.insert("name".to_string(), Value::String(name));
    }
    request.insert("object".to_string(), Value::Object(object));
    Ok(request)
}

/// The resource name of a kind, as Kubernetes' default REST mapper guesses it.
fn plural(kind: &str) -> String {
    let lower = kind.to_ascii_lowercase();
    if let Some(stem) = lower
        .strip_suffix('y')
        .filter(|s| !s.ends_with(['a', 'e', 'i', 'o', 'u']))
    {
        format!("{stem}ies")
    } else if lower.ends_with('s') || lower.ends_with("ch") || lower.ends_with('x') {
        format!("{lower}es")
    } else {
        format!("{lower}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reviews_requests_and_objects() {
        let request = json!({"uid": "1", "kind": {"group": "", "version": "v1", "kind": "Pod"}, "operation": "CREATE", "object": {}});
        let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request});
        assert_eq!(admission_request(review, None).unwrap(), request);
        assert_eq!(admission_request(request.clone(), None).unwrap(), request);

        let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "team-a"}});
        let wrapped =
            admission_request(deployment.clone(), Some(json!({"username": "u"}))).unwrap();
        assert_eq!(
            wrapped["kind"],
            json!({"group": "apps", "version": "v1", "kind": "Deployment"})
        );
        assert_eq!(wrapped["resource"]["resource"], "deployments");
        assert_eq!(wrapped["namespace"], "team-a");
        assert_eq!(wrapped["name"], "web");
        assert_eq!(wrapped["operation"], "CREATE");
        assert_eq!(wrapped["userInfo"], json!({"username": "u"}));
        assert_eq!(wrapped["object"], deployment);

        let pod = admission_request(json!({"apiVersion": "v1", "kind": "Pod"}), None).unwrap();
        assert_eq!(
            pod["kind"],
            json!({"group": "", "version": "v1", "kind": "Pod"})
        );
        assert_eq!(pod["namespace"], "default");
        assert!(pod.get("name").is_none());
        assert_eq!(pod["userInfo"], json!({}));
    }

    #[test]
    fn refusals_say_what_is_expected() {
        for bad in [
            json!([]),
            json!({"kind": "AdmissionReview"}),
            json!({"a": 1}),
            json!({"kind": "Pod"}),
        ] {
            let message = admission_request(bad.clone(), None).unwrap_err();
            assert!(!message.is_empty(), "{bad}");
        }
    }

    #[test]
    fn plurals() {
        for (kind, resource) in [
            ("Pod", "pods"),
            ("CronJob", "cronjobs"),
            ("NetworkPolicy", "networkpolicies"),
            ("Gateway", "gateways"),
            ("Ingress", "ingresses"),
        ] {
            assert_eq!(plural(kind), resource);
        }
    }
}
