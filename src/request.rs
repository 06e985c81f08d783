//! Decodes the parts of the waPC `validate` payload the policy uses.
//!
//! The object stays a raw `serde_json::Value`: it is never typed, so fields
//! unknown to any Kubernetes schema survive. Errors name the field, never
//! echo the payload (it may hold env values).
//!
//! The payload is read the way a `serde_json::Value` reads it (the last of duplicate keys wins,
//! values of the wrong JSON type read as empty), in one pass that builds no document for what the
//! policy never reads: the rest of the request is only checked as JSON, the old object is kept
//! for an UPDATE alone (the only operation that reads it), and the settings stay text, for
//! [`crate::settings::Settings::from_json`], the decoder `validate_settings` uses.

use std::collections::BTreeMap;

use serde::de::{IgnoredAny, MapAccess};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::json::{without_position, Fields, Object};

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

/// `userInfo` read key by key, values of the wrong JSON type as empty.
impl<'de> Fields<'de> for UserInfo {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "username" => self.username = text(map.next_value()?),
            "uid" => self.uid = text(map.next_value()?),
            "groups" => self.groups = texts(map.next_value()?),
            "extra" => {
                self.extra = match map.next_value()? {
                    Value::Object(extra) => extra.into_iter().map(|(k, v)| (k, texts(v))).collect(),
                    _ => BTreeMap::new(),
                }
            }
            _ => drop(map.next_value::<IgnoredAny>()?),
        }
        Ok(())
    }
}

impl Input {
    /// Splits a validate payload into the request and the settings' JSON text (`None` when absent
    /// or `null`).
    pub fn from_payload(payload: &[u8]) -> Result<(Input, Option<&str>), String> {
        let Object(envelope) = serde_json::from_slice::<Object<Envelope>>(payload)
            .map_err(|e| format!("validation payload is not JSON: {}", without_position(&e)))?;
        let envelope = envelope.unwrap_or_default();
        let request = envelope
            .request
            .ok_or_else(|| "validation payload has no \"request\" object".to_string())?;
        let old_object = match request.old_object {
            // Checked as JSON already, so this only fails where no Value can hold the text (more
            // nesting than serde_json allows in one document counts the envelope's levels too).
            Some(raw) if request.operation.as_str() == Some("UPDATE") => {
                serde_json::from_str(raw.get()).map_err(|e| {
                    format!("validation payload: oldObject: {}", without_position(&e))
                })?
            }
            _ => Value::Null,
        };
        let kind = request.kind.0.unwrap_or_default();
        let input = Input {
            uid: text(request.uid),
            group: text(kind.group),
            kind: text(kind.kind),
            operation: text(request.operation),
            namespace: text(request.namespace),
            object: request.object,
            old_object,
            user: request.user_info.0.unwrap_or_default(),
        };
        Ok((input, envelope.settings.map(RawValue::get)))
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

/// `{"request": ..., "settings": ...}`: the request, when it is an object, and the settings' text.
#[derive(Default)]
struct Envelope<'a> {
    request: Option<Request<'a>>,
    settings: Option<&'a RawValue>,
}

impl<'de> Fields<'de> for Envelope<'de> {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "request" => self.request = map.next_value::<Object<Request>>()?.0,
            "settings" => self.settings = map.next_value()?,
            _ => drop(map.next_value::<IgnoredAny>()?),
        }
        Ok(())
    }
}

/// The fields of an AdmissionRequest the policy reads, each as JSON of any type (`null` when
/// absent); every other field is checked as JSON and dropped.
#[derive(Default)]
struct Request<'a> {
    uid: Value,
    kind: Object<Kind>,
    operation: Value,
    namespace: Value,
    user_info: Object<UserInfo>,
    object: Value,
    old_object: Option<&'a RawValue>,
}

impl<'de> Fields<'de> for Request<'de> {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "uid" => self.uid = map.next_value()?,
            "kind" => self.kind = map.next_value()?,
            "operation" => self.operation = map.next_value()?,
            "namespace" => self.namespace = map.next_value()?,
            "userInfo" => self.user_info = map.next_value()?,
            "object" => self.object = map.next_value()?,
            "oldObject" => self.old_object = Some(map.next_value()?),
            _ => drop(map.next_value::<IgnoredAny>()?),
        }
        Ok(())
    }
}

/// The request's `kind`: its group and kind.
#[derive(Default)]
struct Kind {
    group: Value,
    kind: Value,
}

impl<'de> Fields<'de> for Kind {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "group" => self.group = map.next_value()?,
            "kind" => self.kind = map.next_value()?,
            _ => drop(map.next_value::<IgnoredAny>()?),
        }
        Ok(())
    }
}

/// A string as it is, anything else as empty.
fn text(value: Value) -> String {
    match value {
        Value::String(text) => text,
        _ => String::new(),
    }
}

/// The strings of a list, anything else as empty.
fn texts(value: Value) -> Vec<String> {
    match value {
        Value::Array(items) => items
            .into_iter()
            .filter_map(|item| match item {
                Value::String(text) => Some(text),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
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
        assert_eq!(settings, Some(r#"{"aws":{"region":"eu-west-1"}}"#));
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
        assert_eq!(settings, None);
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
        assert_eq!(settings, Some("{}"));
        // Escaped keys are the same keys; the old object is read for an UPDATE only; the other
        // fields are only checked as JSON.
        let (input, settings) = Input::from_payload(
            br#"{"request": {"oper\u0061tion": "DELETE", "oldObject": {"a": 1}, "options": {"b": [2]}}, "settings": null}"#,
        )
        .unwrap();
        assert_eq!(
            (input.operation.as_str(), &input.old_object),
            ("DELETE", &Value::Null)
        );
        assert_eq!(settings, None);
        // No request object, or not JSON: the error says which, without the input.
        for (payload, expected) in [
            (
                &br#"null"#[..],
                "validation payload has no \"request\" object",
            ),
            (
                br#"[{"request": {}}]"#,
                "validation payload has no \"request\" object",
            ),
            (
                br#"{"request": {"options": {"x": [1,}}}"#,
                "validation payload is not JSON: expected value",
            ),
            (
                br#"{"settings": {}}"#,
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
