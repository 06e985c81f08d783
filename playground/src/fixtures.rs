//! The example picker's content: every case of `fixtures/` as the page's
//! editors hold it (native only: `playground-fixtures` writes it at build time).
//!
//! A case's replay session becomes the ServiceAccount editor: a recorded
//! ServiceAccount is the editor's content, a recorded "not found" the
//! lookup's not-found mode. The request's `userInfo` moves to its own editor.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{pretty, LookupMode, State};

/// One example: the fixture's folder name, its NOTES.md and the editors' state.
#[derive(Debug, Clone, Serialize)]
pub struct Example {
    pub name: String,
    pub notes: String,
    pub state: State,
}

/// A kwctl replay session entry (`fixtures/*/session.yml`).
#[derive(Deserialize)]
#[serde(tag = "type")]
enum Entry {
    Exchange { request: String, response: Response },
}

#[derive(Deserialize)]
#[serde(tag = "type")]
enum Response {
    Success { payload: String },
    Error { message: String },
}

/// The YAML-tagged request inside an exchange.
#[derive(Deserialize)]
enum HostRequest {
    KubernetesGetResource {
        api_version: String,
        kind: String,
        name: String,
        namespace: Option<String>,
    },
}

/// Every case under `dir`, in name order.
pub fn load_all(dir: &Path) -> Result<Vec<Example>, String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .filter(|entry| entry.path().join("request.json").is_file())
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect();
    names.sort();
    names
        .iter()
        .filter_map(|name| {
            load(&dir.join(name))
                .map_err(|e| format!("fixtures/{name}: {e}"))
                .transpose()
        })
        .collect()
}

/// One case folder; `None` when its lookup fails otherwise than with "not found" (the
/// `lookup-error-*` cases: a 500, a refusal, an unreachable API server), which the playground's
/// lookup editor cannot show (policy-run runs them).
pub fn load(dir: &Path) -> Result<Option<Example>, String> {
    let read = |file: &str| -> Result<Option<String>, String> {
        let path = dir.join(file);
        if !path.exists() {
            return Ok(None);
        }
        std::fs::read_to_string(&path)
            .map(Some)
            .map_err(|e| format!("{file}: {e}"))
    };
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    let request_text = read("request.json")?.ok_or("no request.json")?;
    let mut request: Ordered =
        serde_json::from_str(&request_text).map_err(|e| format!("request.json: {e}"))?;
    let user_info = take_user_info(&mut request);
    let (service_account, lookup) = match read("session.yml")? {
        Some(text) => match account(&text)? {
            Some(account) => account,
            None => return Ok(None),
        },
        None => (String::new(), LookupMode::Found),
    };
    let settings = read("settings.json")?.unwrap_or_else(|| "{}".to_string());
    Ok(Some(Example {
        name,
        notes: read("NOTES.md")?.unwrap_or_default().trim_end().to_string(),
        state: State {
            settings: settings.trim_end().to_string(),
            request: pretty(&request),
            service_account,
            lookup,
            user_info: user_info.as_ref().map(pretty).unwrap_or_default(),
        },
    }))
}

/// Removes the AdmissionRequest's `userInfo`, for the userInfo editor.
fn take_user_info(doc: &mut Ordered) -> Option<Ordered> {
    let is_review = matches!(doc.get("kind"), Some(Ordered::Scalar(Value::String(k))) if k == "AdmissionReview")
        || (doc.get("uid").is_none() && doc.get("request").is_some());
    let request = if is_review {
        doc.get_mut("request")?
    } else {
        doc
    };
    request.remove("userInfo")
}

/// JSON that keeps an object's keys in the file's order, duplicates included
/// (serde_json's map sorts them): the editors show a fixture as written.
#[derive(Debug, Clone, PartialEq)]
enum Ordered {
    Scalar(Value),
    Array(Vec<Ordered>),
    Object(Vec<(String, Ordered)>),
}

impl Ordered {
    fn get(&self, key: &str) -> Option<&Ordered> {
        match self {
            Ordered::Object(members) => {
                members.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v)
            }
            _ => None,
        }
    }

    fn get_mut(&mut self, key: &str) -> Option<&mut Ordered> {
        match self {
            Ordered::Object(members) => members
                .iter_mut()
                .rev()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// Removes every member named `key`; returns the one that counted (the last).
    fn remove(&mut self, key: &str) -> Option<Ordered> {
        let Ordered::Object(members) = self else {
            return None;
        };
        let mut removed = None;
        members.retain_mut(|(k, v)| {
            if k == key {
                removed = Some(std::mem::replace(v, Ordered::Scalar(Value::Null)));
                false
            } else {
                true
            }
        });
        removed
    }
}

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Ordered;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("JSON")
            }
            fn visit_bool<E>(self, v: bool) -> Result<Ordered, E> {
                Ok(Ordered::Scalar(Value::Bool(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Ordered, E> {
                Ok(Ordered::Scalar(Value::from(v)))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Ordered, E> {
                Ok(Ordered::Scalar(Value::from(v)))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Ordered, E> {
                Ok(Ordered::Scalar(Value::from(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Ordered, E> {
                Ok(Ordered::Scalar(Value::from(v)))
            }
            fn visit_unit<E>(self) -> Result<Ordered, E> {
                Ok(Ordered::Scalar(Value::Null))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Ordered, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Ordered::Array(items))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Ordered, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry()? {
                    members.push(member);
                }
                Ok(Ordered::Object(members))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl Serialize for Ordered {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self {
            Ordered::Scalar(value) => value.serialize(serializer),
            Ordered::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Ordered::Object(members) => {
                let mut map = serializer.serialize_map(Some(members.len()))?;
                for (key, value) in members {
                    map.serialize_entry(key, value)?;
                }
                map.end()
            }
        }
    }
}

/// The ServiceAccount editor's content and the lookup mode replaying `session`; `None` for a
/// lookup error other than "not found".
fn account(session: &str) -> Result<Option<(String, LookupMode)>, String> {
    let entries: Vec<Entry> =
        serde_yaml::from_str(session).map_err(|e| format!("session.yml: {e}"))?;
    let exchange = match entries.as_slice() {
        [] => return Ok(Some((String::new(), LookupMode::Found))),
        [exchange] => exchange,
        _ => return Err("session.yml: the playground replays one ServiceAccount lookup".into()),
    };
    let Entry::Exchange { request, response } = exchange;
    let HostRequest::KubernetesGetResource {
        api_version,
        kind,
        name,
        namespace,
    } = serde_yaml::from_str(request).map_err(|e| format!("session.yml request: {e}"))?;
    if api_version != "v1" || kind != "ServiceAccount" {
        return Err(format!(
            "session.yml: a lookup of {api_version} {kind}, not of a ServiceAccount"
        ));
    }
    match response {
        Response::Success { payload } => {
            let account: Value =
                serde_json::from_str(payload).map_err(|e| format!("session.yml payload: {e}"))?;
            let shown: Ordered =
                serde_json::from_str(payload).map_err(|e| format!("session.yml payload: {e}"))?;
            let field = |key: &str| account.pointer(&format!("/metadata/{key}"));
            let matches = |key: &str, want: Option<&str>| {
                field(key).is_none_or(|v| want.is_none_or(|want| v == want))
            };
            if !matches("name", Some(name.as_str())) || !matches("namespace", namespace.as_deref())
            {
                return Err(
                    "session.yml: the recorded ServiceAccount is not the one looked up".into(),
                );
            }
            Ok(Some((pretty(&shown), LookupMode::Found)))
        }
        Response::Error { message } => {
            if *message != format!("serviceaccounts \"{name}\" not found") {
                return Ok(None);
            }
            Ok(Some((String::new(), LookupMode::NotFound)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_json_keeps_the_file_as_written() {
        let text = r#"{"kind":"AdmissionReview","request":{"uid":"1","userInfo":{"username":"a"},"b":[1,2.5,null],"a":{"x":1,"x":2}}}"#;
        let mut doc: Ordered = serde_json::from_str(text).unwrap();
        assert_eq!(serde_json::to_string(&doc).unwrap(), text);
        let user_info = take_user_info(&mut doc).unwrap();
        assert_eq!(
            serde_json::to_string(&user_info).unwrap(),
            r#"{"username":"a"}"#
        );
        assert_eq!(
            serde_json::to_string(&doc).unwrap(),
            r#"{"kind":"AdmissionReview","request":{"uid":"1","b":[1,2.5,null],"a":{"x":1,"x":2}}}"#
        );
    }

    #[test]
    fn sessions_become_the_service_account_editor() {
        let session = |response: &str| {
            format!(
                "- type: Exchange\n  request: |\n    !KubernetesGetResource\n    api_version: v1\n    kind: ServiceAccount\n    name: app\n    namespace: ns\n    disable_cache: false\n  response:\n{response}"
            )
        };
        let (text, mode) = account(&session(
            "    type: Success\n    payload: '{\"metadata\":{\"name\":\"app\",\"namespace\":\"ns\"}}'\n",
        ))
        .unwrap()
        .unwrap();
        assert_eq!(mode, LookupMode::Found);
        assert!(text.contains("\"name\": \"app\""));
        let (text, mode) = account(&session(
            "    type: Error\n    message: \"serviceaccounts \\\"app\\\" not found\"\n",
        ))
        .unwrap()
        .unwrap();
        assert_eq!((text.as_str(), mode), ("", LookupMode::NotFound));
        assert_eq!(
            account(&session("    type: Error\n    message: boom\n")),
            Ok(None)
        );
        assert!(account(&session(
            "    type: Success\n    payload: '{\"metadata\":{\"name\":\"other\"}}'\n"
        ))
        .is_err());
        assert_eq!(
            account("[]").unwrap(),
            Some((String::new(), LookupMode::Found))
        );
    }
}
