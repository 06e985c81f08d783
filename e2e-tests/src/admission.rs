//! Admission shapes: the request input kwctl accepts, the guest's `ValidationResponse`, and the
//! AdmissionResponse kwctl prints (the mutated object becomes a base64 RFC 6902 patch).

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Context, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use k8s_openapi::api::authentication::v1::UserInfo;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Builds the AdmissionRequest the guest receives, exactly as kwctl does
/// (policy-evaluator `build_validate_request`): an AdmissionReview (`kind: AdmissionReview`) gives
/// its `.request`, anything else is taken as the request itself; it is then parsed into kwctl's typed
/// `AdmissionRequest` and re-serialised, so fields kwctl does not know are dropped and absent
/// optional fields stay absent. A request kwctl refuses is refused with kwctl's words.
pub fn admission_request(input: Value) -> Result<Value> {
    let Value::Object(mut map) = input else {
        bail!("Invalid request object");
    };
    let request = if map.get("kind").and_then(Value::as_str) == Some("AdmissionReview") {
        map.remove("request")
            .ok_or_else(|| anyhow!("invalid AdmissionReview object"))?
    } else {
        Value::Object(map)
    };
    let typed: KwctlAdmissionRequest = serde_json::from_value(request)
        .map_err(|e| anyhow!("cannot build AdmissionRequest object from given input: {e}"))?;
    serde_json::to_value(typed).context("re-serialising the AdmissionRequest")
}

/// policy-evaluator's `AdmissionRequest` (crates/policy-evaluator/src/admission_request.rs): the
/// shape kwctl and policy-server parse every request into before a policy sees it.
#[derive(Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct KwctlAdmissionRequest {
    uid: String,
    kind: GroupVersionKind,
    resource: GroupVersionResource,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub_resource: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_kind: Option<GroupVersionKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_resource: Option<GroupVersionResource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_sub_resource: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
    operation: String,
    user_info: UserInfo,
    #[serde(skip_serializing_if = "Option::is_none")]
    object: Option<RawExtension>,
    #[serde(skip_serializing_if = "Option::is_none")]
    old_object: Option<RawExtension>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dry_run: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    options: Option<RawExtension>,
}

#[derive(Deserialize, Serialize)]
struct GroupVersionKind {
    group: String,
    version: String,
    kind: String,
}

#[derive(Deserialize, Serialize)]
struct GroupVersionResource {
    group: String,
    version: String,
    resource: String,
}

/// What the guest's `validate` returns (kubewarden-policy-sdk `ValidationResponse`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationResponse {
    pub accepted: bool,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub code: Option<u16>,
    #[serde(default)]
    pub mutated_object: Option<Value>,
    #[serde(default)]
    pub audit_annotations: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub warnings: Option<Vec<String>>,
}

/// What the guest's `validate_settings` returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingsValidation {
    pub valid: bool,
    #[serde(default)]
    pub message: Option<String>,
}

/// `status` of an AdmissionResponse (policy-evaluator `AdmissionResponseStatus`; the fields it
/// never fills from a policy are left out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
}

/// The AdmissionResponse printed by `kwctl run`, field for field and in kwctl's order
/// (policy-evaluator `AdmissionResponse`): `patchType`, `patch` and `status` are left out when
/// absent, `auditAnnotations` and `warnings` are printed as `null`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionResponse {
    pub uid: String,
    pub allowed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch_type: Option<String>,
    /// Base64 (standard alphabet) of the JSON patch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    #[serde(default)]
    pub audit_annotations: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub warnings: Option<Vec<String>>,
}

/// What policy-evaluator answers when a policy mutates a request without an object.
pub const NULL_OBJECT_MUTATION: &str = "Incoming object is null, which happens only with DELETE \
    operations, but the policy is attempting a mutation. This is not allowed";

impl AdmissionResponse {
    /// Builds the response as policy-evaluator does
    /// (`AdmissionResponse::from_policy_validation_response`): the patch is
    /// `json_patch::diff(request.object, mutated_object)`, left out when empty; a `status` is
    /// given whenever the policy set a message or a code; a mutation of a request without an
    /// object is refused.
    pub fn from_validation(request: &Value, validation: &ValidationResponse) -> Result<Self> {
        let uid = request
            .get("uid")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let object = request.get("object").filter(|o| !o.is_null());
        let patch = match (&validation.mutated_object, object) {
            (Some(_), None) => {
                return Ok(Self {
                    uid,
                    allowed: false,
                    patch_type: None,
                    patch: None,
                    status: Some(Status {
                        message: Some(NULL_OBJECT_MUTATION.to_owned()),
                        code: None,
                    }),
                    audit_annotations: None,
                    warnings: None,
                })
            }
            (Some(mutated), Some(original)) => {
                let diff = json_patch::diff(original, mutated);
                if diff.0.is_empty() {
                    None
                } else {
                    let bytes = serde_json::to_vec(&diff).context("serialising the JSON patch")?;
                    Some(STANDARD.encode(bytes))
                }
            }
            (None, _) => None,
        };
        let status = (validation.message.is_some() || validation.code.is_some()).then(|| Status {
            message: validation.message.clone(),
            code: validation.code,
        });
        Ok(Self {
            uid,
            allowed: validation.accepted,
            patch_type: patch.as_ref().map(|_| "JSONPatch".to_owned()),
            patch,
            status,
            audit_annotations: validation.audit_annotations.clone(),
            warnings: validation.warnings.clone(),
        })
    }

    /// The decoded JSON patch, if any.
    pub fn json_patch(&self) -> Result<Option<json_patch::Patch>> {
        let Some(encoded) = &self.patch else {
            return Ok(None);
        };
        let bytes = STANDARD.decode(encoded).context("patch is not base64")?;
        let patch = serde_json::from_slice(&bytes).context("patch is not a JSON patch")?;
        Ok(Some(patch))
    }

    /// The request object with the patch applied, or `None` when there is no patch.
    pub fn patched(&self, object: &Value) -> Result<Option<Value>> {
        let Some(patch) = self.json_patch()? else {
            return Ok(None);
        };
        let mut patched = object.clone();
        json_patch::patch(&mut patched, &patch).context("the patch does not apply")?;
        Ok(Some(patched))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn minimal() -> Value {
        json!({"uid": "1", "kind": {"group": "", "version": "v1", "kind": "Pod"},
               "resource": {"group": "", "version": "v1", "resource": "pods"},
               "operation": "CREATE", "userInfo": {}, "object": {"a": 1}})
    }

    #[test]
    fn unwraps_admission_reviews_as_kwctl_does() {
        let request = minimal();
        let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request});
        assert_eq!(admission_request(review).unwrap(), request);
        assert_eq!(admission_request(request.clone()).unwrap(), request);
        // Only `kind: AdmissionReview` marks a review: anything else is the request itself.
        let unmarked = json!({"request": request});
        let error = admission_request(unmarked).unwrap_err().to_string();
        assert_eq!(
            error,
            "cannot build AdmissionRequest object from given input: missing field `uid`"
        );
        let error = admission_request(json!({"kind": "AdmissionReview"})).unwrap_err();
        assert_eq!(error.to_string(), "invalid AdmissionReview object");
        let error = admission_request(json!([])).unwrap_err();
        assert_eq!(error.to_string(), "Invalid request object");
    }

    #[test]
    fn normalises_the_request_as_kwctl_does() {
        let mut request = minimal();
        request["unknownField"] = json!("dropped");
        request["oldObject"] = Value::Null;
        request["userInfo"] = json!({"username": "alice", "groups": null});
        let built = admission_request(request).unwrap();
        assert_eq!(built.get("unknownField"), None);
        assert_eq!(built.get("oldObject"), None);
        assert_eq!(built["userInfo"], json!({"username": "alice"}));
    }

    #[test]
    fn refuses_what_kwctl_refuses_with_its_words() {
        let refused = |field: &str, value: Value| {
            let mut request = minimal();
            if value.is_null() {
                request.as_object_mut().unwrap().remove(field);
            } else {
                request[field] = value;
            }
            admission_request(request).unwrap_err().to_string()
        };
        let prefix = "cannot build AdmissionRequest object from given input: ";
        assert_eq!(
            refused("kind", Value::Null),
            format!("{prefix}missing field `kind`")
        );
        assert_eq!(
            refused("userInfo", json!("system:kube-controller-manager")),
            format!(
                "{prefix}invalid type: string \"system:kube-controller-manager\", expected UserInfo"
            )
        );
        assert_eq!(
            refused("userInfo", json!({"groups": "admins"})),
            format!("{prefix}invalid type: string \"admins\", expected a sequence")
        );
    }

    #[test]
    fn builds_kwctl_shaped_responses() {
        let request = json!({"uid": "u", "object": {"a": 1}});
        let same = ValidationResponse {
            accepted: true,
            message: None,
            code: None,
            mutated_object: Some(json!({"a": 1})),
            audit_annotations: None,
            warnings: None,
        };
        // An empty diff is no patch at all, and absent annotations and warnings print as null.
        let response = AdmissionResponse::from_validation(&request, &same).unwrap();
        assert_eq!(
            serde_json::to_string(&response).unwrap(),
            r#"{"uid":"u","allowed":true,"auditAnnotations":null,"warnings":null}"#
        );
        let deletion = json!({"uid": "u", "object": null});
        let response = AdmissionResponse::from_validation(&deletion, &same).unwrap();
        assert!(!response.allowed);
        assert_eq!(
            response.status.unwrap().message.as_deref(),
            Some(NULL_OBJECT_MUTATION)
        );
        let mutate = ValidationResponse {
            accepted: true,
            message: None,
            code: None,
            mutated_object: Some(json!({"a": 1, "b": [2]})),
            audit_annotations: None,
            warnings: Some(vec!["w".into()]),
        };
        let response = AdmissionResponse::from_validation(&request, &mutate).unwrap();
        let printed = serde_json::to_string(&response).unwrap();
        assert!(
            printed.starts_with(r#"{"uid":"u","allowed":true,"patchType":"JSONPatch","patch":""#),
            "{printed}"
        );
        assert!(
            printed.ends_with(r#","auditAnnotations":null,"warnings":["w"]}"#),
            "{printed}"
        );
        let patch = serde_json::to_value(response.json_patch().unwrap().unwrap()).unwrap();
        assert_eq!(patch, json!([{"op": "add", "path": "/b", "value": [2]}]));
        assert_eq!(
            response.patched(&request["object"]).unwrap(),
            mutate.mutated_object
        );

        let reject = ValidationResponse {
            accepted: false,
            message: Some("no".into()),
            code: Some(403),
            mutated_object: None,
            audit_annotations: None,
            warnings: None,
        };
        let response = AdmissionResponse::from_validation(&request, &reject).unwrap();
        assert_eq!(
            serde_json::to_value(&response).unwrap(),
            json!({"uid": "u", "allowed": false, "status": {"message": "no", "code": 403},
                   "auditAnnotations": null, "warnings": null})
        );
    }
}
