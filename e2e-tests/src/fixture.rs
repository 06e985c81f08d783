//! One recorded case of `fixtures/<name>/`, read the same way by the golden test, the benches and
//! the timeout-protection test.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::admission::admission_request;
use crate::session::{HostResponse, Session};

/// `request.json` (an AdmissionReview, or a bare request), `settings.json` (`{}` without one)
/// and `session.yml` (none without one).
#[derive(Debug, Clone)]
pub struct Fixture {
    /// `request.json` as written.
    pub review: Value,
    pub settings: Value,
    pub session: Option<Session>,
}

impl Fixture {
    /// Reads the case in `dir`.
    pub fn load(dir: &Path) -> Result<Self> {
        let json = |file: &str| optional_json(&dir.join(file));
        let session_path = dir.join("session.yml");
        Ok(Self {
            review: json("request.json")?
                .with_context(|| format!("no request.json in {}", dir.display()))?,
            settings: json("settings.json")?.unwrap_or_else(|| json!({})),
            session: if session_path.exists() {
                Some(Session::from_file(&session_path)?)
            } else {
                None
            },
        })
    }

    /// The AdmissionRequest the guest receives ([`admission_request`]), or kwctl's refusal.
    pub fn request(&self) -> Result<Value> {
        admission_request(self.review.clone())
    }

    /// The ServiceAccount the session answers with, when it holds one successful lookup; `None`
    /// without a session, with an empty one or with a failed lookup; an error for more than one.
    pub fn service_account(&self) -> Result<Option<Value>> {
        let Some(session) = &self.session else {
            return Ok(None);
        };
        match session.exchanges() {
            [] => Ok(None),
            [only] => match &only.response {
                HostResponse::Success { payload } => Ok(Some(
                    serde_json::from_str(payload).context("the session's ServiceAccount")?,
                )),
                HostResponse::Error { .. } => Ok(None),
            },
            more => bail!("{} lookups in the session, expected one", more.len()),
        }
    }
}

/// The JSON document in the file at `path`, `None` when there is no such file.
pub fn optional_json(path: &Path) -> Result<Option<Value>> {
    if !path.is_file() {
        return Ok(None);
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    Ok(Some(value))
}
