//! Every manifest in `examples/` that carries policy settings must pass the
//! policy's own settings validation, and the fixtures that mirror the custom
//! provider examples must use exactly the example's settings.

use std::path::Path;

use serde_json::Value;
use workload_identity_policy::settings::Settings;

fn examples() -> Vec<(String, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("examples/ exists") {
        let path = entry.expect("readable entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("readable example");
        for document in serde_yaml::Deserializer::from_str(&text) {
            let value: Value = serde::Deserialize::deserialize(document).expect("valid YAML");
            if value["kind"] == "ClusterAdmissionPolicy" {
                out.push((
                    path.display().to_string(),
                    value["spec"]["settings"].clone(),
                ));
            }
        }
    }
    out
}

#[test]
fn example_settings_are_valid() {
    let found = examples();
    assert!(
        found.len() >= 3,
        "expected the policy examples, found {found:?}"
    );
    for (path, settings) in found {
        let raw = serde_json::to_vec(&settings).expect("settings serialise");
        if let Err(message) = Settings::from_json(&raw) {
            panic!("{path}: settings are not valid: {message}");
        }
    }
}

#[test]
fn custom_provider_fixtures_use_the_examples_settings() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (example, fixture) in [
        ("custom-provider-vault-jwt.yaml", "custom-vault-jwt"),
        (
            "custom-provider-flyte-client-credentials.yaml",
            "custom-flyte-client-credentials",
        ),
    ] {
        let (_, settings) = examples()
            .into_iter()
            .find(|(path, _)| path.ends_with(example))
            .unwrap_or_else(|| panic!("missing example {example}"));
        let text =
            std::fs::read_to_string(root.join("fixtures").join(fixture).join("settings.json"))
                .expect("fixture settings");
        let fixture_settings: Value =
            serde_json::from_str(&text).expect("fixture settings are JSON");
        assert_eq!(
            settings["customProviders"], fixture_settings["customProviders"],
            "{example} and fixtures/{fixture} disagree on customProviders"
        );
    }
}
