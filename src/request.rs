//! Decodes the parts of the waPC `validate` payload the policy uses.
//!
//! The object stays a raw `serde_json::Value`: it is never typed, so fields
//! unknown to any Kubernetes schema survive. Errors name the field, never
//! echo the payload (it may hold env values).
//!
//! The payload is read into one `Value`, the way policy-evaluator wrote it: the last of duplicate
//! keys wins, values of the wrong JSON type read as empty. The settings are handed on as the
//! `Value` they are, for [`crate::settings::Settings::from_value`].

use std::collections::BTreeMap;

use serde_json::Value;

use crate::settings::decode::without_position;

/// `{"request": AdmissionRequest, "settings": ...}`, reduced to what we read.
#[derive(Debug, Clone, PartialEq)]
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
        let mut doc: Value = serde_json::from_slice(payload)
            .map_err(|e| format!("validation payload is not JSON: {}", without_position(&e)))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_request_is_read_as_a_value_reads_it() {
        let pod = json!({"metadata": {"name": "p"}});
        let payload = serde_json::to_vec(&json!({"request": {"uid": "1",
            "kind": {"group": "", "kind": "Pod"}, "operation": "UPDATE", "namespace": "a",
            "object": pod, "oldObject": pod, "userInfo": {"username": "u", "uid": "9",
            "groups": ["g", 1, null, "h"], "extra": {"k": ["v"], "n": 3}}},
            "settings": {"aws": {"region": "eu-west-1"}}}))
        .unwrap();
        let (input, settings) = Input::from_payload(&payload).unwrap();
        assert_eq!(
            (input.kind.as_str(), input.operation.as_str()),
            ("Pod", "UPDATE")
        );
        assert_eq!(
            (input.object.clone(), input.old_object.clone()),
            (pod.clone(), pod)
        );
        assert_eq!(input.user.groups, ["g", "h"]);
        assert_eq!(input.user.extra.get("n"), Some(&Vec::new()));
        assert_eq!(settings, json!({"aws": {"region": "eu-west-1"}}));
    }

    #[test]
    fn unusual_payloads() {
        // Wrong types where strings are read: read as empty.
        let (input, settings) = Input::from_payload(
            br#"{"request": {"uid": 1, "kind": "Pod", "operation": ["CREATE"], "userInfo": "alice"}}"#,
        )
        .unwrap();
        assert_eq!(input.uid, "");
        assert_eq!(input.kind, "");
        assert_eq!(input.operation, "");
        assert_eq!(input.user, UserInfo::default());
        assert_eq!(settings, Value::Null);
        // Duplicate keys: the last wins.
        let (input, settings) = Input::from_payload(
            br#"{"settings": {"a": 1}, "request": {"operation": "CREATE", "operation": "UPDATE", "kind": {"kind": "Pod"}, "kind": {"group": "apps"}}, "settings": {}}"#,
        )
        .unwrap();
        assert_eq!(
            (input.operation.as_str(), input.kind.as_str()),
            ("UPDATE", "")
        );
        assert_eq!(input.group, "apps");
        assert_eq!(settings, json!({}));
        // No request object, or not JSON: the error says which, without the input.
        for (payload, expected) in [
            (
                &br#"{"settings": {}}"#[..],
                "validation payload has no \"request\" object",
            ),
            (
                br#"{"request": "pod"}"#,
                "validation payload has no \"request\" object",
            ),
            (
                br#"{"request": {"resource": "SECRET""#,
                "validation payload is not JSON: EOF while parsing an object",
            ),
        ] {
            assert_eq!(Input::from_payload(payload).unwrap_err(), expected);
        }
    }
}
