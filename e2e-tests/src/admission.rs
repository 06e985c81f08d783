//! Admission shapes: the request input kwctl accepts, the guest's `ValidationResponse`, and the
//! AdmissionResponse kwctl prints (the mutated object becomes a base64 RFC 6902 patch).

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Returns the AdmissionRequest from an AdmissionReview (its `.request`) or a bare AdmissionRequest.
pub fn admission_request(input: Value) -> Result<Value> {
    let Value::Object(mut map) = input else {
        bail!("the request is not a JSON object");
    };
    let is_review = map.get("kind").and_then(Value::as_str) == Some("AdmissionReview")
        || (!map.contains_key("uid") && map.contains_key("request"));
    if !is_review {
        return Ok(Value::Object(map));
    }
    match map.remove("request") {
        Some(request @ Value::Object(_)) => Ok(request),
        _ => bail!("the AdmissionReview has no `request` object"),
    }
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

/// `status` of a rejected AdmissionResponse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
}

/// The AdmissionResponse printed by `kwctl run` (absent fields are omitted).
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warnings: Option<Vec<String>>,
}

impl AdmissionResponse {
    /// Builds the response as policy-evaluator does: the patch is
    /// `json_patch::diff(request.object, mutated_object)`.
    pub fn from_validation(request: &Value, validation: &ValidationResponse) -> Result<Self> {
        let (patch_type, patch) = match &validation.mutated_object {
            Some(mutated) => {
                let original = request.get("object").unwrap_or(&Value::Null);
                let diff = json_patch::diff(original, mutated);
                let bytes = serde_json::to_vec(&diff).context("serialising the JSON patch")?;
                (Some("JSONPatch".to_owned()), Some(STANDARD.encode(bytes)))
            }
            None => (None, None),
        };
        let status = (!validation.accepted).then(|| Status {
            message: validation.message.clone(),
            code: validation.code,
        });
        Ok(Self {
            uid: request
                .get("uid")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            allowed: validation.accepted,
            patch_type,
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

    #[test]
    fn unwraps_admission_reviews_only() {
        let request = json!({"uid": "1", "object": {}});
        let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request});
        assert_eq!(admission_request(review).unwrap(), request);
        assert_eq!(admission_request(request.clone()).unwrap(), request);
        assert!(admission_request(json!({"kind": "AdmissionReview"})).is_err());
        assert!(admission_request(json!([])).is_err());
    }

    #[test]
    fn builds_kwctl_shaped_responses() {
        let request = json!({"uid": "u", "object": {"a": 1}});
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
        assert!(printed.ends_with(r#","warnings":["w"]}"#), "{printed}");
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
            json!({"uid": "u", "allowed": false, "status": {"message": "no", "code": 403}})
        );
    }
}
