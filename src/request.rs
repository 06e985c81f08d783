//! Decodes the parts of the waPC `validate` payload the policy uses.
//!
//! The object stays a raw `serde_json::Value`: it is never typed, so fields
//! unknown to any Kubernetes schema survive. Errors name the field, never
//! echo the payload (it may hold env values).

use std::collections::BTreeMap;

use serde_json::Value;

/// `{"request": AdmissionRequest, "settings": ...}`, reduced to what we read.
#[derive(Debug, Clone)]
pub struct Input {
    pub uid: String,
    pub group: String,
    pub kind: String,
    pub operation: String,
    pub namespace: String,
    pub object: Value,
    /// The object before an UPDATE (`null` otherwise).
    pub old_object: Value,
    /// Who sent the request, as the API server authenticated it.
    pub user: UserInfo,
}

/// The request's `userInfo`: where the caller's token claims end up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserInfo {
    pub username: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    /// Reads `userInfo`, ignoring values of the wrong JSON type.
    fn from_value(value: Option<&Value>) -> UserInfo {
        let Some(value) = value else {
            return UserInfo::default();
        };
        let strings = |v: Option<&Value>| -> Vec<String> {
            v.and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        };
        UserInfo {
            username: value
                .get("username")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            uid: value
                .get("uid")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            groups: strings(value.get("groups")),
            extra: value
                .get("extra")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), strings(Some(v))))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

impl Input {
    /// Splits a validate payload into the request and the raw settings.
    pub fn from_payload(payload: &[u8]) -> Result<(Input, Value), String> {
        let mut doc: Value = serde_json::from_slice(payload).map_err(|e| {
            format!(
                "validation payload is not JSON: {}",
                describe_json_error(&e)
            )
        })?;
        let settings = doc
            .get_mut("settings")
            .map(Value::take)
            .unwrap_or(Value::Null);
        let mut request = match doc.get_mut("request").map(Value::take) {
            Some(request @ Value::Object(_)) => request,
            _ => return Err("validation payload has no \"request\" object".to_string()),
        };
        let text =
            |v: &Value, key: &str| v.get(key).and_then(Value::as_str).unwrap_or("").to_string();
        let kind = request.get("kind").cloned().unwrap_or(Value::Null);
        let input = Input {
            uid: text(&request, "uid"),
            group: text(&kind, "group"),
            kind: text(&kind, "kind"),
            operation: text(&request, "operation"),
            namespace: text(&request, "namespace"),
            object: request
                .get_mut("object")
                .map(Value::take)
                .unwrap_or(Value::Null),
            old_object: request
                .get_mut("oldObject")
                .map(Value::take)
                .unwrap_or(Value::Null),
            user: UserInfo::from_value(request.get("userInfo")),
        };
        Ok((input, settings))
    }

    /// A request built in tests or by the native host.
    pub fn pod_create(namespace: &str, object: Value) -> Input {
        Input {
            uid: String::new(),
            group: String::new(),
            kind: "Pod".to_string(),
            operation: "CREATE".to_string(),
            namespace: namespace.to_string(),
            object,
            old_object: Value::Null,
            user: UserInfo::default(),
        }
    }
}

/// serde_json's message without its position; for untyped parsing it never
/// quotes the input, so no env value can leak into a denial.
fn describe_json_error(error: &serde_json::Error) -> String {
    let message = error.to_string();
    match message.rfind(" at line ") {
        Some(pos) => message.get(..pos).unwrap_or(&message).to_string(),
        None => message,
    }
}
