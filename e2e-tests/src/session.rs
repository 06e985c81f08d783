//! kwctl replay sessions (`--replay-host-capabilities-interactions`): a YAML list of exchanges whose
//! `request` is a YAML string holding a tagged document (`!KubernetesGetResource ...`). Host calls are
//! answered in order and only when they equal the next recorded request, as kwctl does, with kwctl's
//! messages.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// Payload of `kubewarden/kubernetes/get_resource` (the SDK's `GetResourceRequest`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetResource {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    /// `None` for cluster-wide resources; a missing field reads as `None`.
    #[serde(default)]
    pub namespace: Option<String>,
    pub disable_cache: bool,
    /// A missing field and `null` are the same request.
    #[serde(default)]
    pub field_masks: Option<BTreeSet<String>>,
}

/// A host request as kwctl records it (YAML tag = variant name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HostRequest {
    KubernetesGetResource(GetResource),
}

/// The recorded answer to a host request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum HostResponse {
    /// The payload bytes handed to the guest (a JSON document).
    Success { payload: String },
    /// The host call fails with this message.
    Error { message: String },
}

/// One recorded request/response pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    pub request: HostRequest,
    pub response: HostResponse,
}

#[derive(Deserialize)]
#[serde(tag = "type")]
enum Entry {
    Exchange {
        request: String,
        response: HostResponse,
    },
}

/// A parsed replay session; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Session {
    exchanges: Arc<[Exchange]>,
}

impl Session {
    /// Parses kwctl's session YAML.
    pub fn from_yaml(text: &str) -> Result<Self> {
        let entries: Vec<Entry> =
            serde_yaml::from_str(text).context("replay session is not a list of exchanges")?;
        let exchanges = entries
            .into_iter()
            .enumerate()
            .map(|(i, Entry::Exchange { request, response })| {
                let request = serde_yaml::from_str(&request).with_context(|| {
                    format!(
                        "replay session exchange #{}: unsupported or malformed request",
                        i + 1
                    )
                })?;
                Ok(Exchange { request, response })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            exchanges: exchanges.into(),
        })
    }

    /// Reads and parses a session file.
    pub fn from_file(path: &Path) -> Result<Self> {
        // kwctl's words (it panics with them in its replay task).
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("Cannot open host capabilities interactions file {path:?}"))?;
        Self::from_yaml(&text).with_context(|| format!("cannot deserialize contents of {path:?}"))
    }

    /// The recorded exchanges, in order.
    pub fn exchanges(&self) -> &[Exchange] {
        &self.exchanges
    }

    /// A fresh replay positioned at the first exchange.
    pub fn replay(&self) -> Replay {
        Replay {
            exchanges: Arc::clone(&self.exchanges),
            next: Arc::new(Mutex::new(0)),
        }
    }
}

/// Replays a session: each call must equal the next exchange's request.
#[derive(Debug, Clone)]
pub struct Replay {
    exchanges: Arc<[Exchange]>,
    next: Arc<Mutex<usize>>,
}

impl Replay {
    /// Answers `request` from the next exchange, with kwctl's replay rules and words
    /// (kwctl `callback_handler/proxy.rs`): the next exchange is consumed whether or not it matches;
    /// a call past the end, a mismatch or a recorded `Error` fails with the message kwctl's
    /// replay handler gives (the host then wraps it, as policy-evaluator does).
    pub fn answer(&self, request: &HostRequest) -> Result<Vec<u8>, String> {
        let mut next = self.next.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(exchange) = self.exchanges.get(*next) else {
            return Err("the list of recorded responses is empty".to_owned());
        };
        *next += 1;
        if exchange.request != *request {
            return Err(format!(
                "Replay error: unexpected request. Was expecting {}, got {} instead",
                describe(&exchange.request),
                describe(request)
            ));
        }
        match &exchange.response {
            HostResponse::Success { payload } => Ok(payload.clone().into_bytes()),
            HostResponse::Error { message } => Err(message.clone()),
        }
    }

    /// Number of exchanges consumed so far.
    pub fn consumed(&self) -> usize {
        *self.next.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A request as kwctl 1.31 prints it in replay errors (the `Debug` of its `CallbackRequestType`,
/// which has no `field_masks` there).
fn describe(request: &HostRequest) -> String {
    match request {
        HostRequest::KubernetesGetResource(r) => {
            let masks = r
                .field_masks
                .as_ref()
                .map(|m| format!(", field_masks: {m:?}"))
                .unwrap_or_default();
            format!(
                "KubernetesGetResource {{ api_version: {:?}, kind: {:?}, name: {:?}, namespace: {:?}, \
                 disable_cache: {}{masks} }}",
                r.api_version, r.kind, r.name, r.namespace, r.disable_cache
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SESSION: &str = r#"
- type: Exchange
  request: |
    !KubernetesGetResource
    api_version: v1
    kind: ServiceAccount
    name: app
    namespace: team-a
    disable_cache: false
  response:
    type: Success
    payload: '{"kind":"ServiceAccount"}'
- type: Exchange
  request: |
    !KubernetesGetResource
    api_version: v1
    kind: ServiceAccount
    name: gone
    namespace: team-a
    disable_cache: false
    field_masks: null
  response:
    type: Error
    message: not found
"#;

    fn sa(name: &str) -> HostRequest {
        HostRequest::KubernetesGetResource(GetResource {
            api_version: "v1".into(),
            kind: "ServiceAccount".into(),
            name: name.into(),
            namespace: Some("team-a".into()),
            disable_cache: false,
            field_masks: None,
        })
    }

    #[test]
    fn replays_in_order_and_by_equality() {
        let session = Session::from_yaml(SESSION).unwrap();
        assert_eq!(session.exchanges().len(), 2);
        let replay = session.replay();
        assert_eq!(
            replay.answer(&sa("app")).unwrap(),
            br#"{"kind":"ServiceAccount"}"#
        );
        assert_eq!(replay.answer(&sa("gone")).unwrap_err(), "not found");
        assert_eq!(
            replay.answer(&sa("app")).unwrap_err(),
            "the list of recorded responses is empty"
        );
        assert_eq!(replay.consumed(), 2);
        // A mismatch consumes the exchange, as in kwctl, and says what was expected.
        let replay = session.replay();
        assert_eq!(
            replay.answer(&sa("gone")).unwrap_err(),
            "Replay error: unexpected request. Was expecting KubernetesGetResource { \
             api_version: \"v1\", kind: \"ServiceAccount\", name: \"app\", namespace: \
             Some(\"team-a\"), disable_cache: false }, got KubernetesGetResource { api_version: \
             \"v1\", kind: \"ServiceAccount\", name: \"gone\", namespace: Some(\"team-a\"), \
             disable_cache: false } instead"
        );
        assert_eq!(replay.answer(&sa("gone")).unwrap_err(), "not found");
        // A fresh replay starts over.
        assert!(session.replay().answer(&sa("app")).is_ok());
    }

    #[test]
    fn rejects_unknown_request_tags() {
        let yaml = SESSION.replace("!KubernetesGetResource", "!OciManifestDigest");
        let err = format!("{:#}", Session::from_yaml(&yaml).unwrap_err());
        assert!(err.contains("exchange #1"), "{err}");
    }
}
