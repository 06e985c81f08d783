//! Runs the real policy module on every case under `fixtures/<name>/`: `request.json`
//! (AdmissionReview), optional `settings.json` (default `{}`) and `session.yml`, and the golden
//! `expected.json`, either
//! `{"allowed", "warnings", "status" (rejections only), "object" (mutated object or null), "lookups",
//! "auditAnnotations" (when any)}`,
//! or `{"settingsValid": false, "settingsMessage"}`,
//! or `{"requestRefused"}`: the engine itself refuses the request before the policy runs (kwctl and
//! policy-run: `cannot build AdmissionRequest object from given input: ...`, exit code 1).
//!
//! Per case it also checks idempotency (the mutated object fed back yields no patch), that the
//! verify configuration (the same settings with `verify: true`) accepts every Pod the case
//! admitted, as admitted, and runs the policy core natively (differential: same
//! ValidationResponse, same lookups as the wasm).
//! `BLESS=1` rewrites `expected.json` from the wasm's results instead of comparing; `FIXTURES=dir`
//! runs the cases of another folder.

mod common;

use std::cell::Cell;
use std::path::Path;

use anyhow::{Context, Result};
use e2e_tests::{
    Fixture, GetResource, HostCapabilities, HostRequest, Policy, Replay, Session,
    SettingsValidation, Status,
};
use serde::Serialize;
use serde_json::{json, Value};
use workload_identity_policy::host::{service_account_request, Lookup, ServiceAccountRef};

/// The golden expectation of a case whose settings are valid.
#[derive(Serialize)]
struct Decision {
    allowed: bool,
    warnings: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<Status>,
    object: Value,
    lookups: usize,
    /// Audit annotations (caller identity stamps), when any.
    #[serde(rename = "auditAnnotations", skip_serializing_if = "Option::is_none")]
    audit_annotations: Option<std::collections::BTreeMap<String, String>>,
}

/// The golden expectation of a case whose settings are refused.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RefusedSettings {
    settings_valid: bool,
    settings_message: Option<String>,
}

/// The golden expectation of a request the engine refuses to parse.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RefusedRequest {
    request_refused: String,
}

/// What a case yields; serialised in field order for `expected.json`.
#[derive(Serialize)]
#[serde(untagged)]
enum Outcome {
    Decision(Decision),
    RefusedSettings(RefusedSettings),
    RefusedRequest(RefusedRequest),
}

struct Case {
    /// The AdmissionRequest the guest receives, or the engine's refusal.
    request: Result<Value, String>,
    settings: Value,
    session: Session,
}

impl Case {
    fn load(dir: &Path) -> Result<Self> {
        let fixture = Fixture::load(dir)?;
        Ok(Self {
            request: fixture.request().map_err(|e| format!("{e:#}")),
            settings: fixture.settings,
            session: fixture.session.unwrap_or_default(),
        })
    }
}

/// The native stand-in for the host: answers from the same session as the wasm run.
struct NativeLookup {
    replay: Replay,
    calls: Cell<usize>,
}

impl Lookup for NativeLookup {
    fn service_account(&self, sa: &ServiceAccountRef, cached: bool) -> Result<Value, String> {
        self.calls.set(self.calls.get() + 1);
        // The request the guest sends (`host::service_account_request`), as the host reads it.
        let request = serde_json::to_value(service_account_request(sa, cached))
            .and_then(serde_json::from_value::<GetResource>)
            .map_err(|e| format!("the lookup request does not read as a GetResource: {e}"))?;
        let request = HostRequest::KubernetesGetResource(request);
        let payload = self.replay.answer(&request)?;
        serde_json::from_slice(&payload).map_err(|e| format!("recorded payload is not JSON: {e}"))
    }
}

/// Readable differences between two JSON documents, one line per JSON pointer.
fn json_diff(left: (&str, &Value), right: (&str, &Value)) -> String {
    e2e_tests::json_differences(left, right)
        .iter()
        .map(|line| format!("    {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs one case; returns its problems (empty when it passes).
fn run_case(policy: &Policy, dir: &Path, bless: bool) -> Result<Vec<String>> {
    let case = Case::load(dir)?;
    let mut problems = Vec::new();

    let outcome = match &case.request {
        Ok(request) => evaluate(policy, &case, request, &mut problems)?,
        Err(refusal) => Outcome::RefusedRequest(RefusedRequest {
            request_refused: refusal.clone(),
        }),
    };

    let expected_path = dir.join("expected.json");
    if bless {
        std::fs::write(
            &expected_path,
            serde_json::to_string_pretty(&outcome)? + "\n",
        )?;
    } else if !expected_path.exists() {
        problems.push("no expected.json (BLESS=1 writes it from the actual result)".into());
    } else {
        let actual = serde_json::to_value(&outcome)?;
        let expected: Value = serde_json::from_str(&std::fs::read_to_string(&expected_path)?)
            .context("expected.json is not JSON")?;
        if expected != actual {
            problems.push(format!(
                "expected.json differs:\n{}",
                json_diff(("expected", &expected), ("actual", &actual))
            ));
        }
    }
    Ok(problems)
}

/// Evaluates a request the engine accepts: settings, then the request, in wasm and natively.
fn evaluate(
    policy: &Policy,
    case: &Case,
    request: &Value,
    problems: &mut Vec<String>,
) -> Result<Outcome> {
    let settings_bytes = serde_json::to_vec(&case.settings)?;
    let verdict = policy.validate_settings(&case.settings)?;
    let native: SettingsValidation = serde_json::from_value(
        workload_identity_policy::validate_settings_payload(&settings_bytes),
    )?;
    if native != verdict {
        problems.push(format!(
            "differential validate_settings: wasm {verdict:?}, native {native:?}"
        ));
    }

    let outcome = if verdict.valid {
        let capabilities = HostCapabilities::replay(case.session.clone());
        let evaluation = policy.validate(request, &case.settings, &capabilities)?;

        let lookup = NativeLookup {
            replay: case.session.replay(),
            calls: Cell::new(0),
        };
        let payload = serde_json::to_vec(&json!({"request": request, "settings": case.settings}))?;
        let native = workload_identity_policy::validate_payload(&payload, &lookup);
        if native != evaluation.validation {
            problems.push(format!(
                "differential validate (native vs wasm ValidationResponse):\n{}",
                json_diff(("wasm", &evaluation.validation), ("native", &native))
            ));
        }
        if lookup.calls.get() != evaluation.host_calls {
            problems.push(format!(
                "differential lookups: wasm {}, native {}",
                evaluation.host_calls,
                lookup.calls.get()
            ));
        }

        let response = &evaluation.response;
        let object = request.get("object").unwrap_or(&Value::Null);
        let mutated = response.patched(object)?;
        if let Some(mutated) = &mutated {
            let mut again = request.clone();
            again["object"] = mutated.clone();
            let second = policy.validate(&again, &case.settings, &capabilities)?;
            if !second.response.allowed || second.response.patch.is_some() {
                problems.push(format!(
                    "idempotency: the mutated object fed back gave {}",
                    serde_json::to_string(&second.validation)?
                ));
            }
        }
        // The validating instance (the same settings with `verify: true`) runs after the mutating
        // one: it must accept every Pod the mutating one admitted, as it admitted it.
        let pod_create = request.pointer("/kind/kind") == Some(&json!("Pod"))
            && request.get("operation") == Some(&json!("CREATE"));
        if let (true, true, Some(settings)) =
            (pod_create, response.allowed, case.settings.as_object())
        {
            let mut verify = settings.clone();
            verify.insert("verify".into(), json!(true));
            let verify = Value::Object(verify);
            let mut admitted = request.clone();
            admitted["object"] = mutated.clone().unwrap_or_else(|| object.clone());
            let checked = policy.validate(&admitted, &verify, &capabilities)?;
            if !checked.response.allowed || checked.response.patch.is_some() {
                problems.push(format!(
                    "verify: the Pod the mutating configuration admitted gave {}",
                    serde_json::to_string(&checked.validation)?
                ));
            }
        }
        Outcome::Decision(Decision {
            allowed: response.allowed,
            warnings: response.warnings.clone().unwrap_or_default(),
            status: response.status.clone(),
            object: mutated.unwrap_or(Value::Null),
            lookups: evaluation.host_calls,
            audit_annotations: response.audit_annotations.clone(),
        })
    } else {
        Outcome::RefusedSettings(RefusedSettings {
            settings_valid: false,
            settings_message: verdict.message,
        })
    };
    Ok(outcome)
}

#[test]
fn fixtures() {
    let bless = std::env::var("BLESS").is_ok_and(|v| v == "1");
    let root = common::fixtures();
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", root.display()))
        .filter_map(|entry| Some(entry.ok()?.path()))
        .filter(|path| path.is_dir())
        .collect();
    dirs.sort();
    assert!(
        !dirs.is_empty(),
        "no fixture cases under {}",
        root.display()
    );

    let policy = Policy::from_file(common::wasm()).unwrap_or_else(|e| panic!("{e:#}"));
    let mut failures = Vec::new();
    for dir in &dirs {
        let name = dir.file_name().unwrap_or_default().to_string_lossy();
        match run_case(&policy, dir, bless) {
            Ok(problems) if problems.is_empty() => {}
            Ok(problems) => failures.push(format!("{name}:\n  {}", problems.join("\n  "))),
            Err(error) => failures.push(format!("{name}:\n  cannot run: {error:#}")),
        }
    }
    eprintln!(
        "{} fixture cases run{}, {} failing",
        dirs.len(),
        if bless {
            " (BLESS: expected.json rewritten)"
        } else {
            ""
        },
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} fixture cases failed:\n\n{}",
        failures.len(),
        dirs.len(),
        failures.join("\n\n")
    );
}
