//! "Copy as kwctl run" reproduces the case: for every example, the exported
//! settings.json, request.json and replay session.yml, run through the real
//! policy.wasm in the kwctl-like native host, give the very AdmissionResponse
//! (patch bytes included) and host-call count the playground shows.

use std::path::Path;

use e2e_tests::{admission_request, HostCapabilities, Policy, Session};
use serde_json::Value;

#[test]
fn every_export_replays_to_the_same_response_in_policy_wasm() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let wasm = e2e_tests::policy_wasm(&workspace).unwrap();
    let policy = Policy::from_file(&wasm).unwrap();
    let examples = playground::fixtures::load_all(&workspace.join("fixtures")).unwrap();
    let (mut replayed, mut failures) = (0, Vec::new());
    for example in &examples {
        let outcome: Value = serde_json::from_str(&playground::kwctl_export(
            &serde_json::to_string(&example.state).unwrap(),
        ))
        .unwrap();
        let Some(export) = outcome.get("kwctl").filter(|k| !k.is_null()) else {
            // Refused settings: kwctl would not run either; the page says why.
            assert_eq!(outcome["settings"]["valid"], false, "{}", example.name);
            let settings: Value = serde_json::from_str(&example.state.settings).unwrap();
            assert!(
                !policy.validate_settings(&settings).unwrap().valid,
                "{}",
                example.name
            );
            continue;
        };
        let file = |name: &str| export[name].as_str().unwrap().to_string();
        let settings: Value = serde_json::from_str(&file("settingsJson")).unwrap();
        let expected: Value = serde_json::from_str(
            &std::fs::read_to_string(
                workspace
                    .join("fixtures")
                    .join(&example.name)
                    .join("expected.json"),
            )
            .unwrap(),
        )
        .unwrap();
        let request = match admission_request(serde_json::from_str(&file("requestJson")).unwrap()) {
            Ok(request) => request,
            // The engine refuses the exported request as it refuses the fixture's.
            Err(refusal) => {
                if expected["requestRefused"] != format!("{refusal:#}") {
                    failures.push(format!("{}: refused: {refusal:#}", example.name));
                }
                replayed += 1;
                continue;
            }
        };
        let session = Session::from_yaml(&file("sessionYml")).unwrap();
        assert!(
            policy.validate_settings(&settings).unwrap().valid,
            "{}",
            example.name
        );
        let evaluation = policy
            .validate(&request, &settings, &HostCapabilities::replay(session))
            .unwrap();
        // The same fields, whether an absent one is printed as null or left out.
        let fields = |response: &Value| -> Value {
            let mut map = response.as_object().cloned().unwrap_or_default();
            map.retain(|_, v| !v.is_null());
            Value::Object(map)
        };
        let response = fields(&serde_json::to_value(&evaluation.response).unwrap());
        let lookups = outcome["lookups"].as_array().map_or(0, Vec::len);
        if response != fields(&outcome["response"]) || evaluation.host_calls != lookups {
            failures.push(format!(
                "{}:\n  policy.wasm {response} ({} host calls)\n  playground  {} ({lookups} lookups)",
                example.name, evaluation.host_calls, outcome["response"]
            ));
        }
        replayed += 1;
    }
    assert!(replayed > 100, "only {replayed} examples replayed");
    assert!(
        failures.is_empty(),
        "{} differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
