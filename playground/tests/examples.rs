//! Every example of the picker (every case of `fixtures/`) through the
//! playground's own `evaluate`, natively, against the case's `expected.json`
//! (format: e2e-tests/tests/fixtures.rs). The browser test does the same
//! through the page; this one says quickly which case and field differ.

use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};

fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

/// What the page shows for a case, in expected.json's shape.
fn shown(outcome: &Value) -> Result<Value, String> {
    let settings = &outcome["settings"];
    if settings["valid"] == json!(false) {
        return Ok(json!({"settingsValid": false, "settingsMessage": settings["message"]}));
    }
    if let Some(errors) = outcome["inputErrors"].as_object().filter(|e| !e.is_empty()) {
        return Err(format!("input errors: {errors:?}"));
    }
    let response = &outcome["response"];
    let request: Value = serde_json::from_str(
        outcome["kwctl"]["requestJson"]
            .as_str()
            .ok_or("no kwctl export")?,
    )
    .map_err(|e| e.to_string())?;
    let object = match response["patch"].as_str() {
        None => Value::Null,
        Some(encoded) => {
            let patch: json_patch::Patch =
                serde_json::from_slice(&STANDARD.decode(encoded).map_err(|e| e.to_string())?)
                    .map_err(|e| e.to_string())?;
            let mut object = request["request"]["object"].clone();
            json_patch::patch(&mut object, &patch).map_err(|e| e.to_string())?;
            let mutated: Value = serde_json::from_str(outcome["mutatedText"].as_str().unwrap())
                .map_err(|e| e.to_string())?;
            if mutated != object {
                return Err("the patch does not give the mutated object".into());
            }
            object
        }
    };
    let mut shown = json!({
        "allowed": response["allowed"],
        "warnings": response.get("warnings").filter(|w| !w.is_null()).cloned().unwrap_or(json!([])),
        "object": object,
        "lookups": outcome["lookups"].as_array().map_or(0, Vec::len),
    });
    if let Some(status) = response.get("status") {
        shown["status"] = status.clone();
    }
    if let Some(audit) = response.get("auditAnnotations").filter(|a| !a.is_null()) {
        shown["auditAnnotations"] = audit.clone();
    }
    Ok(shown)
}

#[test]
fn every_example_gives_the_expected_answer() {
    let examples = playground::fixtures::load_all(&fixtures()).unwrap();
    assert!(examples.len() > 100, "only {} examples", examples.len());
    // Only the cases whose lookup fails otherwise than "not found" are left out.
    let left_out: Vec<String> = std::fs::read_dir(fixtures())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| fixtures().join(name).join("request.json").is_file())
        .filter(|name| !examples.iter().any(|e| &e.name == name))
        .collect();
    for name in &left_out {
        let session = std::fs::read_to_string(fixtures().join(name).join("session.yml")).unwrap();
        assert!(
            session.contains("type: Error") && !session.contains("not found\""),
            "{name} is left out of the playground"
        );
    }
    let (mut failures, mut refused) = (Vec::new(), 0);
    for example in &examples {
        let state = serde_json::to_string(&example.state).unwrap();
        let outcome: Value = serde_json::from_str(&playground::kwctl_export(&state)).unwrap();
        let expected: Value = serde_json::from_str(
            &std::fs::read_to_string(fixtures().join(&example.name).join("expected.json")).unwrap(),
        )
        .unwrap();
        if expected.get("requestRefused").is_some() {
            // kwctl refuses the request before the policy runs (tests/kwctl_export.rs checks
            // that the export says the same); the playground shows the policy's own answer.
            refused += 1;
            match shown(&outcome) {
                Ok(shown) if shown["allowed"].is_boolean() => {}
                other => failures.push(format!("{}: no answer: {other:?}", example.name)),
            }
            continue;
        }
        match shown(&outcome) {
            Ok(shown) if shown == expected => {}
            Ok(shown) => failures.push(format!(
                "{}:\n  expected {expected}\n  shown    {shown}",
                example.name
            )),
            Err(e) => failures.push(format!("{}: {e}", example.name)),
        }
    }
    assert!(refused < 10, "{refused} examples refused by kwctl");
    assert!(
        failures.is_empty(),
        "{} of {} examples differ:\n{}",
        failures.len(),
        examples.len(),
        failures.join("\n")
    );
}

#[test]
fn malformed_editors_are_messages() {
    let example = playground::fixtures::load(&fixtures().join("aws-named-sa"))
        .unwrap()
        .unwrap();
    for editor in ["settings", "request", "serviceAccount", "userInfo"] {
        let mut state = serde_json::to_value(&example.state).unwrap();
        state[editor] = json!("{\"a\": ");
        let outcome: Value =
            serde_json::from_str(&playground::kwctl_export(&state.to_string())).unwrap();
        let message = outcome["inputErrors"][editor].as_str().unwrap_or_default();
        assert!(
            message.starts_with("not JSON: ") && message.contains("line 1 column"),
            "{editor}: {outcome}"
        );
        assert!(outcome["response"].is_null(), "{editor}: {outcome}");
    }
    let outcome: Value = serde_json::from_str(&playground::kwctl_export("nonsense")).unwrap();
    assert!(outcome["inputErrors"]["state"].is_string());
}
