//! The policy in the browser: wasm-bindgen bindings for the static playground
//! page (`playground/www`).
//!
//! No policy logic lives here. [`evaluate`] takes what the page's editors hold,
//! assembles the AdmissionRequest (a bare object becomes a CREATE), and calls
//! the very entry points the waPC glue calls, `validate_settings_payload` and
//! `validate_payload`, with a [`host::Lookup`] that answers from the
//! ServiceAccount the user typed. It then presents the answer as `kwctl run`
//! does (the AdmissionResponse, with the RFC 6902 patch policy-evaluator
//! computes), with a line diff of the object and the files and command that
//! replay the same case with kwctl.
//!
//! Every failure is a message in the returned JSON, never a panic or a thrown
//! JS error: the same no-panic lints as the policy apply.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable,
        clippy::indexing_slicing
    )
)]

#[cfg(not(target_arch = "wasm32"))]
pub mod fixtures;
pub mod kwctl;
mod lookup;
mod present;
mod request;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use wasm_bindgen::prelude::wasm_bindgen;

use workload_identity_policy::{validate_payload, validate_settings_payload};

pub use lookup::{Account, LookupRecord, TypedLookup};
pub use present::{AdmissionResponse, DiffLine};

/// What the page's editors hold: text, exactly as typed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct State {
    /// The policy settings (JSON); empty means `{}`.
    pub settings: String,
    /// An AdmissionReview, an AdmissionRequest, or a Kubernetes object.
    pub request: String,
    /// The ServiceAccount object, or only its annotations; empty means none.
    pub service_account: String,
    /// Whether the ServiceAccount lookup finds it.
    pub lookup: LookupMode,
    /// The requester's `userInfo`; empty keeps the request's own.
    pub user_info: String,
}

/// How the lookup of the pod's ServiceAccount ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum LookupMode {
    /// It answers with the ServiceAccount editor's content.
    #[default]
    Found,
    /// It fails with `serviceaccounts "NAME" not found` (`lookupFailure` decides).
    NotFound,
}

/// Everything the page shows for one [`State`].
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    /// What is wrong with an editor's text, by editor (the [`State`] field name).
    pub input_errors: BTreeMap<&'static str, String>,
    /// `validate_settings`' answer: `{"valid", "message"}` (absent while the
    /// settings are not JSON).
    pub settings: Option<Value>,
    /// The ServiceAccounts the policy looked up, in order (kwctl's host calls).
    pub lookups: Vec<LookupRecord>,
    /// The AdmissionResponse `kwctl run` prints (absent when nothing ran).
    pub response: Option<AdmissionResponse>,
    /// [`Outcome::response`], pretty-printed as the page shows it.
    pub response_text: Option<String>,
    /// The JSON patch (RFC 6902), pretty-printed; absent when not mutated.
    pub patch_text: Option<String>,
    /// The mutated object, pretty-printed; absent when not mutated.
    pub mutated_text: Option<String>,
    /// Line diff of the object before and after, changed lines with context.
    pub diff: Vec<DiffLine>,
    /// Whether the case can be exported for `kwctl run` ([`kwctl_export`]).
    pub exportable: bool,
    /// The same case as `kwctl run` files and command (only from [`kwctl_export`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kwctl: Option<kwctl::Export>,
}

/// The page's one call: editors' state as JSON in, [`Outcome`] as JSON out.
/// Never throws: a malformed state is an input error like any other.
#[wasm_bindgen]
pub fn evaluate(state: &str) -> String {
    answer(state, false)
}

/// [`evaluate`] with the `kwctl run` files and command ([`Outcome::kwctl`]):
/// only when asked, as they repeat the whole request.
#[wasm_bindgen]
pub fn kwctl_export(state: &str) -> String {
    answer(state, true)
}

fn answer(state: &str, export: bool) -> String {
    let outcome = match serde_json::from_str::<State>(state) {
        Ok(state) => run(&state, export),
        Err(e) => {
            let mut outcome = Outcome::default();
            outcome
                .input_errors
                .insert("state", format!("the page sent a malformed state: {e}"));
            outcome
        }
    };
    serde_json::to_string(&outcome).unwrap_or_else(|e| {
        json!({"inputErrors": {"state": format!("the answer could not be encoded: {e}")}})
            .to_string()
    })
}

/// A panic aborts the module (wasm32-unknown-unknown cannot unwind): the page
/// catches the trap and shows this message, stored by the hook, in its place.
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen(start)]
fn start() {
    std::panic::set_hook(Box::new(|info| report_panic(&info.to_string())));
}

#[cfg(target_arch = "wasm32")]
#[wasm_bindgen(inline_js = "export function report_panic(m) { globalThis.playgroundPanic = m; }")]
extern "C" {
    fn report_panic(message: &str);
}

/// [`evaluate`] on a decoded state; with the kwctl files when `export`.
pub fn run(state: &State, export: bool) -> Outcome {
    let mut outcome = Outcome::default();
    let mut errors = BTreeMap::new();

    let settings = match parse_editor(&state.settings) {
        Ok(value) => Some(value.unwrap_or_else(|| json!({}))),
        Err(e) => {
            errors.insert("settings", e);
            None
        }
    };
    // Any JSON: the policy must cope with a malformed userInfo too.
    let user_info = match parse_editor(&state.user_info) {
        Ok(value) => value,
        Err(e) => {
            errors.insert("userInfo", e);
            None
        }
    };
    let request = match parse_editor(&state.request) {
        Ok(Some(value)) => match request::admission_request(value, user_info) {
            Ok(request) => Some(request),
            Err(e) => {
                errors.insert("request", e);
                None
            }
        },
        Ok(None) => {
            errors.insert(
                "request",
                "empty: paste an AdmissionReview, an AdmissionRequest or a Kubernetes object (a Pod, a Deployment, ...)"
                    .to_string(),
            );
            None
        }
        Err(e) => {
            errors.insert("request", e);
            None
        }
    };
    let account = match state.lookup {
        LookupMode::NotFound => Some(Account::NotFound),
        LookupMode::Found => match Account::from_editor(&state.service_account) {
            Ok(account) => Some(account),
            Err(e) => {
                errors.insert("serviceAccount", e);
                None
            }
        },
    };

    // validate_settings runs on the text itself: it refuses duplicate keys,
    // which a parsed value would have lost.
    if settings.is_some() {
        let text = if state.settings.trim().is_empty() {
            "{}"
        } else {
            state.settings.as_str()
        };
        let verdict = validate_settings_payload(text.as_bytes());
        if verdict.get("valid") != Some(&Value::Bool(true)) {
            let message = verdict
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("refused")
                .to_string();
            errors.insert("settings", message);
        }
        outcome.settings = Some(verdict);
    }
    outcome.input_errors = errors;
    let (Some(settings), Some(request), Some(account)) = (settings, request, account) else {
        return outcome;
    };
    if !outcome.input_errors.is_empty() {
        return outcome;
    }

    let lookup = TypedLookup::new(account);
    let payload = json!({"request": request, "settings": settings}).to_string();
    let validation = validate_payload(payload.as_bytes(), &lookup);
    outcome.lookups = lookup.into_records();

    let object = request.get("object").unwrap_or(&Value::Null);
    let shown = present::present(&request, object, &validation);
    outcome.response_text = Some(pretty(&shown.response));
    outcome.response = Some(shown.response);
    outcome.patch_text = shown.patch.as_ref().map(pretty);
    outcome.mutated_text = shown.mutated.as_ref().map(pretty);
    outcome.diff = shown.diff;
    outcome.exportable = true;
    if export {
        outcome.kwctl = Some(kwctl::export(&state.settings, &request, &outcome.lookups));
    }
    outcome
}

/// An editor's JSON: `None` when empty, a message with the position when malformed.
fn parse_editor(text: &str) -> Result<Option<Value>, String> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    serde_json::from_str(text)
        .map(Some)
        .map_err(|e| format!("not JSON: {e}"))
}

/// Two-space indented JSON, as the fixtures and kubectl write it.
pub(crate) fn pretty<T: Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}
