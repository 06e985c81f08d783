//! The same case for `kwctl run`: settings, request and a replay session of
//! the lookups the policy made, plus the command.

use serde::Serialize;
use serde_json::{json, Value};

use crate::{pretty, LookupRecord};

/// The command, run where the three files are.
pub const COMMAND: &str = "kwctl run --allow-context-aware --replay-host-capabilities-interactions session.yml --settings-path settings.json --request-path request.json annotated-policy.wasm";

/// Files and command replaying one case with kwctl.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Export {
    pub settings_json: String,
    pub request_json: String,
    pub session_yml: String,
    pub command: String,
    /// A shell script writing the three files, then running the command.
    pub script: String,
}

/// `settings` is the settings editor's text (kept as typed: validate_settings
/// reads the text), `request` the AdmissionRequest evaluated.
pub fn export(settings: &str, request: &Value, lookups: &[LookupRecord]) -> Export {
    let settings_json = if settings.trim().is_empty() {
        "{}\n".to_string()
    } else {
        format!("{}\n", settings.trim_end())
    };
    let review = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": request,
    });
    let request_json = format!("{}\n", pretty(&review));
    let session_yml = session(lookups);
    let files = [
        ("settings.json", &settings_json),
        ("request.json", &request_json),
        ("session.yml", &session_yml),
    ];
    let mut script = String::from(
        "# workload-identity-policy playground case for kwctl (annotated-policy.wasm: make annotated-policy.wasm)\n",
    );
    for (name, content) in files {
        let end = delimiter(content);
        script.push_str(&format!("cat > {name} <<'{end}'\n{content}{end}\n"));
    }
    script.push_str(COMMAND);
    script.push('\n');
    Export {
        settings_json,
        request_json,
        session_yml,
        command: COMMAND.to_string(),
        script,
    }
}

/// A kwctl replay session answering the recorded lookups in order (`[]` when none).
pub fn session(lookups: &[LookupRecord]) -> String {
    if lookups.is_empty() {
        return "[]\n".to_string();
    }
    let quoted = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let mut yaml = String::new();
    for lookup in lookups {
        yaml.push_str(&format!(
            "- type: Exchange\n  request: |\n    !KubernetesGetResource\n    api_version: v1\n    kind: ServiceAccount\n    name: {}\n    namespace: {}\n    disable_cache: {}\n  response:\n",
            quoted(&lookup.name),
            quoted(&lookup.namespace),
            !lookup.cached
        ));
        match (&lookup.found, &lookup.error) {
            (Some(found), _) => yaml.push_str(&format!(
                "    type: Success\n    payload: '{}'\n",
                found.to_string().replace('\'', "''")
            )),
            (None, error) => yaml.push_str(&format!(
                "    type: Error\n    message: {}\n",
                quoted(error.as_deref().unwrap_or_default())
            )),
        }
    }
    yaml
}

/// A here-document delimiter that no line of `content` equals.
fn delimiter(content: &str) -> String {
    let mut end = "EOF".to_string();
    while content.lines().any(|line| line == end) {
        end.push('_');
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_in_kwctl_format() {
        let lookups = [
            LookupRecord {
                namespace: "team-a".into(),
                name: "app".into(),
                cached: true,
                found: Some(json!({"metadata": {"annotations": {"a": "it's"}}})),
                error: None,
            },
            LookupRecord {
                namespace: "team-a".into(),
                name: "gone".into(),
                cached: false,
                found: None,
                error: Some("serviceaccounts \"gone\" not found".into()),
            },
        ];
        assert_eq!(
            session(&lookups),
            r#"- type: Exchange
  request: |
    !KubernetesGetResource
    api_version: v1
    kind: ServiceAccount
    name: "app"
    namespace: "team-a"
    disable_cache: false
  response:
    type: Success
    payload: '{"metadata":{"annotations":{"a":"it''s"}}}'
- type: Exchange
  request: |
    !KubernetesGetResource
    api_version: v1
    kind: ServiceAccount
    name: "gone"
    namespace: "team-a"
    disable_cache: true
  response:
    type: Error
    message: "serviceaccounts \"gone\" not found"
"#
        );
        assert_eq!(session(&[]), "[]\n");
    }

    #[test]
    fn script_writes_the_files_then_runs_kwctl() {
        let export = export("", &json!({"uid": "u"}), &[]);
        assert_eq!(export.settings_json, "{}\n");
        assert!(export
            .request_json
            .contains("\"kind\": \"AdmissionReview\""));
        assert!(export
            .script
            .contains("cat > session.yml <<'EOF'\n[]\nEOF\n"));
        assert!(export.script.ends_with(&format!("{COMMAND}\n")));
        assert_eq!(delimiter("a\nEOF\nEOF_\n"), "EOF__");
    }
}
