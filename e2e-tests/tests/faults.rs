//! What a Pod gets when the ServiceAccount lookup goes wrong, under policy-server's timeout
//! protection as `policy-run --policy-timeout` models it (docs/operations.md, "Faults and what
//! the Pod gets", quotes these outcomes and the commands that reproduce them). Each row is one
//! `policy-run` run of the real module on an AWS IRSA Pod.

#[allow(dead_code)] // only `wasm()` is used here
mod common;

use std::path::PathBuf;
use std::process::Command;

use serde_json::{json, Value};

const ROLE: &str = "arn:aws:iam::111122223333:role/app";

/// A fault and the settings it runs with.
struct Row {
    name: &'static str,
    /// The session's answer to the ServiceAccount GET.
    answer: Answer,
    lookup_failure: &'static str,
    /// `--host-call-delay`, milliseconds.
    delay_ms: Option<u64>,
    /// `--policy-timeout`, seconds: policy-server's default is 2; the examples' timeoutEvalSeconds 10.
    timeout: u64,
    expected: Outcome,
}

enum Answer {
    Found,
    Error(String),
}

#[derive(Debug, PartialEq)]
enum Outcome {
    /// Admitted with the identity.
    Mutated,
    /// Admitted unchanged, with a warning containing this.
    Warned(&'static str),
    /// Denied with this code and a message containing this.
    Denied(u16, &'static str),
}

fn api_error(message: &str, reason: &str, code: u16) -> String {
    let escaped = message.replace('\\', "\\\\").replace('"', "\\\"");
    format!(
        "ApiError: {message}: {reason} (ErrorResponse {{ status: \"Failure\", message: \"{escaped}\", reason: \"{reason}\", code: {code} }})\n\nCaused by:\n    {message}: {reason}"
    )
}

fn session(answer: &Answer) -> String {
    let response = match answer {
        Answer::Found => {
            let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": "app", "namespace": "team-a",
                    "annotations": {"eks.amazonaws.com/role-arn": ROLE}}});
            format!("    type: Success\n    payload: '{sa}'\n")
        }
        Answer::Error(message) => format!(
            "    type: Error\n    message: {}\n",
            serde_json::to_string(message).unwrap_or_default()
        ),
    };
    format!(
        "- type: Exchange\n  request: |\n    !KubernetesGetResource\n    api_version: v1\n    \
         kind: ServiceAccount\n    name: app\n    namespace: team-a\n    disable_cache: false\n  \
         response:\n{response}"
    )
}

fn request() -> Value {
    json!({
        "uid": "7c1d2e3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "namespace": "team-a", "operation": "CREATE",
        "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
        "object": {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "app-0", "namespace": "team-a"},
            "spec": {"serviceAccountName": "app",
                "containers": [{"name": "app", "image": "registry.example/app:1"}]}},
    })
}

fn run(row: &Row) -> Outcome {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("faults")
        .join(row.name);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        path.to_string_lossy().into_owned()
    };
    let session = write("session.yml", session(&row.answer));
    let request_path = write("request.json", request().to_string());
    let settings = json!({"aws": {"enabled": true}, "azure": {"enabled": false},
        "gcp": {"enabled": false}, "stackit": {"enabled": false}, "secrets": {"enabled": false},
        "lookupFailure": row.lookup_failure});
    let timeout = row.timeout.to_string();
    let mut args = vec![
        "--allow-context-aware".to_string(),
        "--replay-host-capabilities-interactions".into(),
        session,
        "--request-path".into(),
        request_path,
        "--settings-json".into(),
        settings.to_string(),
        "--policy-timeout".into(),
        timeout,
    ];
    if let Some(delay) = row.delay_ms {
        args.extend(["--host-call-delay".to_string(), delay.to_string()]);
    }
    args.push(common::wasm().to_string_lossy().into_owned());
    let output = Command::new(env!("CARGO_BIN_EXE_policy-run"))
        .args(&args)
        .output()
        .unwrap_or_else(|e| panic!("policy-run: {e}"));
    assert!(
        output.status.success(),
        "{}: policy-run failed: {}",
        row.name,
        String::from_utf8_lossy(&output.stderr)
    );
    let response: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{}: not JSON ({e})", row.name));
    let warnings = response["warnings"].to_string();
    let expected = &row.expected;
    match (response["allowed"].as_bool(), &response["patch"]) {
        (Some(true), Value::String(_)) => Outcome::Mutated,
        (Some(true), _) => match expected {
            Outcome::Warned(text) if warnings.contains(text) => Outcome::Warned(text),
            _ => panic!("{}: admitted with warnings {warnings}", row.name),
        },
        _ => {
            let code = response["status"]["code"].as_u64().unwrap_or(0) as u16;
            let message = response["status"]["message"].as_str().unwrap_or("");
            match expected {
                Outcome::Denied(c, text) if *c == code && message.contains(text) => {
                    Outcome::Denied(code, text)
                }
                _ => panic!("{}: denied {code}: {message}", row.name),
            }
        }
    }
}

#[test]
fn every_fault_has_the_documented_outcome() {
    let forbidden = r#"serviceaccounts "app" is forbidden: User "system:serviceaccount:kubewarden:policy-server" cannot get resource "serviceaccounts" in API group "" in the namespace "team-a""#;
    let rows = [
        Row {
            name: "refused-admit",
            answer: Answer::Error(api_error(forbidden, "Forbidden", 403)),
            lookup_failure: "admit",
            delay_ms: None,
            timeout: 2,
            expected: Outcome::Warned("(Forbidden, 403)); admitted without workload identity"),
        },
        Row {
            name: "refused-reject",
            answer: Answer::Error(api_error(forbidden, "Forbidden", 403)),
            lookup_failure: "reject",
            delay_ms: None,
            timeout: 2,
            expected: Outcome::Denied(503, "(Forbidden, 403)); denied because lookupFailure"),
        },
        Row {
            name: "not-found-admit",
            answer: Answer::Error(
                "Cannot find v1/ServiceAccount named 'app' inside of namespace 'Some(\"team-a\")'"
                    .into(),
            ),
            lookup_failure: "admit",
            delay_ms: None,
            timeout: 2,
            expected: Outcome::Warned("could not be read (not found)"),
        },
        Row {
            name: "error-500-admit",
            answer: Answer::Error(api_error(
                "etcdserver: request timed out",
                "InternalError",
                500,
            )),
            lookup_failure: "admit",
            delay_ms: None,
            timeout: 2,
            expected: Outcome::Warned("(etcdserver: request timed out (InternalError, 500))"),
        },
        Row {
            name: "error-500-reject",
            answer: Answer::Error(api_error(
                "etcdserver: request timed out",
                "InternalError",
                500,
            )),
            lookup_failure: "reject",
            delay_ms: None,
            timeout: 2,
            expected: Outcome::Denied(503, "(InternalError, 500)"),
        },
        Row {
            name: "slow-1s-default-timeout",
            answer: Answer::Found,
            lookup_failure: "admit",
            delay_ms: Some(1000),
            timeout: 2,
            expected: Outcome::Mutated,
        },
        Row {
            name: "slow-3s-default-timeout",
            answer: Answer::Found,
            lookup_failure: "admit",
            delay_ms: Some(3000),
            timeout: 2,
            expected: Outcome::Denied(
                500,
                "Policy execution interrupted because it exceeded the allowed execution time",
            ),
        },
        Row {
            name: "slow-3s-examples-timeout",
            answer: Answer::Found,
            lookup_failure: "admit",
            delay_ms: Some(3000),
            timeout: 10,
            expected: Outcome::Mutated,
        },
        Row {
            name: "slow-error-3s-examples-timeout",
            answer: Answer::Error(api_error(
                "etcdserver: request timed out",
                "InternalError",
                500,
            )),
            lookup_failure: "admit",
            delay_ms: Some(3000),
            timeout: 10,
            expected: Outcome::Warned("(InternalError, 500)); admitted without workload identity"),
        },
    ];
    let mut failures = Vec::new();
    for row in &rows {
        let outcome = run(row);
        if outcome != row.expected {
            failures.push(format!(
                "{}: {outcome:?}, expected {:?}",
                row.name, row.expected
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
