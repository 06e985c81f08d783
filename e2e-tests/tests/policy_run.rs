//! Tests of the `policy-run` binary: kwctl's flags, inputs and outputs, on the real policy module.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use e2e_tests::{admission_request, HostCapabilities, Policy, Session};
use serde_json::{json, Value};

const ROLE_ARN: &str = "arn:aws:iam::111122223333:role/app";

fn pod_request() -> Value {
    json!({
        "uid": "0df28fbd-5f5f-4f6a-9d2c-c9a6f5a0a001",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
        "namespace": "team-a",
        "operation": "CREATE",
        "userInfo": {"username": "alice", "groups": ["system:authenticated"]},
        "object": {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "app", "namespace": "team-a"},
            "spec": {
                "serviceAccountName": "app",
                "containers": [{"name": "app", "image": "registry.example/app:1"}]
            }
        },
        "oldObject": null,
        "dryRun": false
    })
}

fn review(request: &Value) -> Value {
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request})
}

fn session(sa_name: &str) -> String {
    let payload = json!({
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": sa_name, "namespace": "team-a",
                     "annotations": {"eks.amazonaws.com/role-arn": ROLE_ARN}}
    });
    format!(
        "- type: Exchange\n  request: |\n    !KubernetesGetResource\n    api_version: v1\n    \
         kind: ServiceAccount\n    name: {sa_name}\n    namespace: team-a\n    disable_cache: false\n  \
         response:\n    type: Success\n    payload: '{payload}'\n"
    )
}

/// A file under this test's own temporary directory.
fn temp_file(test: &str, name: &str, contents: &str) -> String {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("policy_run")
        .join(test);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path.to_string_lossy().into_owned()
}

fn policy_run(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_policy-run"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn wasm() -> &'static str {
    common::wasm().to_str().unwrap()
}

/// The one AdmissionResponse line of a successful run.
fn response(output: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "policy-run failed: {stderr}");
    assert_eq!(stdout.lines().count(), 1, "not one line: {stdout}");
    serde_json::from_str(&stdout).unwrap()
}

/// The request object with the response's patch applied.
fn patched(response: &Value) -> Value {
    assert_eq!(response["patchType"], "JSONPatch", "{response}");
    let bytes = STANDARD
        .decode(response["patch"].as_str().unwrap())
        .unwrap();
    let patch: json_patch::Patch = serde_json::from_slice(&bytes).unwrap();
    let mut object = pod_request()["object"].clone();
    json_patch::patch(&mut object, &patch).unwrap();
    object
}

fn env_of(pod: &Value, name: &str) -> Option<Value> {
    pod["spec"]["containers"][0]["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)
        .map(|e| e["value"].clone())
}

fn assert_irsa(response: &Value) -> Value {
    assert_eq!(response["uid"], pod_request()["uid"]);
    assert_eq!(response["allowed"], true);
    let pod = patched(response);
    assert_eq!(env_of(&pod, "AWS_ROLE_ARN"), Some(json!(ROLE_ARN)), "{pod}");
    let volumes = pod["spec"]["volumes"].as_array().unwrap();
    assert!(
        volumes.iter().any(|v| v["name"] == "aws-iam-token"),
        "{pod}"
    );
    pod
}

#[test]
fn admission_review_with_replayed_lookup_is_mutated() {
    let request = temp_file(
        "review",
        "request.json",
        &review(&pod_request()).to_string(),
    );
    let session = temp_file("review", "session.yml", &session("app"));
    let policy = format!("file://{}", wasm());
    let output = policy_run(
        &[
            "--request-path",
            &request,
            "--allow-context-aware",
            "--replay-host-capabilities-interactions",
            &session,
            &policy,
        ],
        None,
    );
    let pod = assert_irsa(&response(&output));
    assert_eq!(
        env_of(&pod, "AWS_REGION"),
        None,
        "no region without settings"
    );
}

#[test]
fn bare_request_on_stdin_with_settings_json() {
    let session = temp_file("stdin", "session.yml", &session("app"));
    let output = policy_run(
        &[
            "--request-path",
            "-",
            "--settings-json",
            r#"{"aws": {"region": "eu-central-1"}}"#,
            "--allow-context-aware",
            "--replay-host-capabilities-interactions",
            &session,
            wasm(),
        ],
        Some(&pod_request().to_string()),
    );
    let pod = assert_irsa(&response(&output));
    assert_eq!(env_of(&pod, "AWS_REGION"), Some(json!("eu-central-1")));
}

#[test]
fn settings_path_reads_yaml() {
    let request = temp_file("settings-path", "request.json", &pod_request().to_string());
    let settings = temp_file(
        "settings-path",
        "settings.yml",
        "aws:\n  region: us-west-2\n",
    );
    let session = temp_file("settings-path", "session.yml", &session("app"));
    let output = policy_run(
        &[
            "-r",
            &request,
            "-s",
            &settings,
            "--allow-context-aware",
            "--replay-host-capabilities-interactions",
            &session,
            wasm(),
        ],
        None,
    );
    let pod = assert_irsa(&response(&output));
    assert_eq!(env_of(&pod, "AWS_REGION"), Some(json!("us-west-2")));
}

#[test]
fn invalid_settings_are_refused_before_evaluation() {
    let request = temp_file("invalid", "request.json", &pod_request().to_string());
    let output = policy_run(
        &[
            "--request-path",
            &request,
            "--settings-json",
            r#"{"bogusField": 1}"#,
            wasm(),
        ],
        None,
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(output.stdout.is_empty(), "no response expected");
    assert!(
        stderr.starts_with("Error: Provided settings are not valid: "),
        "{stderr}"
    );
    assert!(stderr.contains("bogusField"), "names the field: {stderr}");
}

#[test]
fn session_mismatch_fails_the_lookup() {
    let request = temp_file("mismatch", "request.json", &pod_request().to_string());
    let session = temp_file("mismatch", "session.yml", &session("someone-else"));
    let output = policy_run(
        &[
            "--request-path",
            &request,
            "--allow-context-aware",
            "--replay-host-capabilities-interactions",
            &session,
            wasm(),
        ],
        None,
    );
    let response = response(&output);
    // lookupFailure defaults to admit: accepted unmutated, the warning carries the host's error.
    assert_eq!(response["allowed"], true);
    assert_eq!(response.get("patch"), None, "{response}");
    // kwctl's replay error, without policy-evaluator's wrapper.
    let warnings = response["warnings"][0].as_str().unwrap();
    assert!(
        warnings.contains(
            "could not be read (Replay error: unexpected request. Was expecting \
             KubernetesGetResource { api_version: \"v1\", kind: \"ServiceAccount\", name: \
             \"someone-else\""
        ),
        "{warnings}"
    );
}

#[test]
fn lookups_are_refused_without_allow_context_aware() {
    let request = temp_file("refused", "request.json", &pod_request().to_string());
    let session = temp_file("refused", "session.yml", &session("app"));
    let output = policy_run(
        &[
            "--request-path",
            &request,
            "--settings-json",
            r#"{"lookupFailure": "reject"}"#,
            "--replay-host-capabilities-interactions",
            &session,
            wasm(),
        ],
        None,
    );
    let response = response(&output);
    assert_eq!(response["allowed"], false, "{response}");
    let message = response["status"]["message"].as_str().unwrap();
    assert!(
        message.contains(
            "(Policy has not been granted access to Kubernetes v1/ServiceAccount resources. \
             The violation has been reported.)"
        ),
        "{message}"
    );
}

#[test]
fn other_kinds_are_accepted_without_lookup() {
    let mut request = pod_request();
    request["kind"] = json!({"group": "", "version": "v1", "kind": "ConfigMap"});
    request["resource"] = json!({"group": "", "version": "v1", "resource": "configmaps"});
    request["object"] = json!({"apiVersion": "v1", "kind": "ConfigMap",
                               "metadata": {"name": "cfg", "namespace": "team-a"}});
    let request = temp_file("configmap", "request.json", &review(&request).to_string());
    // No session and no --allow-context-aware: any lookup would surface as a warning.
    let output = policy_run(&["--request-path", &request, wasm()], None);
    assert_eq!(
        response(&output),
        json!({"uid": pod_request()["uid"], "allowed": true, "auditAnnotations": null, "warnings": null})
    );
}

#[test]
fn unreadable_inputs_fail_with_a_message() {
    // kwctl's messages, in kwctl's order (settings, request, policy, then the request's shape).
    let request = temp_file("unreadable", "request.json", &pod_request().to_string());
    let not_json = temp_file("unreadable", "bad.json", "{not json");
    let not_yaml = temp_file("unreadable", "bad.yml", "a: [b");
    let list = temp_file("unreadable", "list.json", "[1]");
    let cases: &[(&[&str], &str)] = &[
        (
            &["--request-path", "/nonexistent/request.json", wasm()],
            "Error: Error opening request file /nonexistent/request.json; No such file or directory (os error 2)",
        ),
        (
            &["--request-path", &request, "/nonexistent/policy.wasm"],
            "Error: Cannot find policy with uri: /nonexistent/policy.wasm",
        ),
        (
            &["--request-path", &request, "-s", "/nonexistent/settings.yml", wasm()],
            "Error: Cannot open settings file /nonexistent/settings.yml: No such file or directory (os error 2)",
        ),
        (
            &["--request-path", &request, "-s", &not_yaml, wasm()],
            &format!("Error: Cannot parse settings file {not_yaml}: did not find expected ',' or ']' at line 2 column 1, while parsing a flow sequence at line 1 column 4"),
        ),
        (
            &["--request-path", &request, "--settings-json", "{bad", wasm()],
            "Error: Cannot parse settings JSON: key must be a string at line 1 column 2",
        ),
        (
            &["--request-path", &request, "--settings-json", "[1]", wasm()],
            "Error: Invalid settings in CRD, not an object",
        ),
        (
            &["--request-path", &not_json, wasm()],
            "Error: key must be a string at line 1 column 2",
        ),
        (
            &["--request-path", &list, wasm()],
            "Error: Invalid request object",
        ),
    ];
    for (args, message) in cases {
        let output = policy_run(args, None);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        assert_eq!(
            String::from_utf8_lossy(&output.stderr).trim_end(),
            *message,
            "{args:?}"
        );
        assert!(output.stdout.is_empty());
    }
    // Unknown flags are clap's usage errors, exit code 2, as in kwctl.
    let output = policy_run(&["--bogus", "--request-path", &request, wasm()], None);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr)
        .starts_with("error: unexpected argument '--bogus' found"));
}

#[test]
fn requests_kwctl_cannot_parse_are_refused() {
    let mut request = pod_request();
    request.as_object_mut().unwrap().remove("kind");
    let without_kind = temp_file(
        "refused-request",
        "kind.json",
        &review(&request).to_string(),
    );
    let mut request = pod_request();
    request["userInfo"] = json!("system:kube-controller-manager");
    let user_string = temp_file("refused-request", "user.json", &request.to_string());
    for (path, cause) in [
        (&without_kind, "missing field `kind`"),
        (
            &user_string,
            "invalid type: string \"system:kube-controller-manager\", expected UserInfo",
        ),
    ] {
        let output = policy_run(&["--request-path", path, wasm()], None);
        assert_eq!(output.status.code(), Some(1));
        assert_eq!(
            String::from_utf8_lossy(&output.stderr).trim_end(),
            format!("Error: cannot build AdmissionRequest object from given input: {cause}")
        );
    }
}

#[test]
fn an_annotated_module_reads_only_its_context_aware_resources() {
    // kwctl grants an annotated module exactly the resources its metadata lists.
    let metadata = br#"{"contextAwareResources":[{"apiVersion":"v1","kind":"Namespace"}]}"#;
    let annotated = with_custom_section(
        &std::fs::read(wasm()).unwrap(),
        "io.kubewarden.metadata",
        metadata,
    );
    let module = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("policy_run/namespace-only.wasm");
    std::fs::write(&module, annotated).unwrap();
    let request = temp_file("annotated", "request.json", &pod_request().to_string());
    let session = temp_file("annotated", "session.yml", &session("app"));
    let output = policy_run(
        &[
            "--request-path",
            &request,
            "--allow-context-aware",
            "--replay-host-capabilities-interactions",
            &session,
            module.to_str().unwrap(),
        ],
        None,
    );
    let response = response(&output);
    assert_eq!(response.get("patch"), None, "{response}");
    assert!(
        response["warnings"][0].as_str().unwrap().contains(
            "(Policy has not been granted access to Kubernetes v1/ServiceAccount resources."
        ),
        "{response}"
    );
}

/// `wasm` with a custom section appended (a valid module: custom sections may come last).
fn with_custom_section(wasm: &[u8], name: &str, data: &[u8]) -> Vec<u8> {
    fn leb128(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = u8::try_from(n & 0x7f).unwrap();
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let mut body = Vec::new();
    leb128(name.len(), &mut body);
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(data);
    let mut out = wasm.to_vec();
    out.push(0);
    leb128(body.len(), &mut out);
    out.extend(body);
    out
}

/// The binary on a fixture's own files (as `kwctl run` would take them) agrees with the library.
fn run_fixture(policy: &Policy, dir: &Path) {
    let file = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let (request, session, settings) = (
        file("request.json"),
        file("session.yml"),
        file("settings.json"),
    );
    let mut args = vec![
        "--request-path",
        &request,
        "--allow-context-aware",
        "--replay-host-capabilities-interactions",
        &session,
    ];
    if dir.join("settings.json").exists() {
        args.extend(["--settings-path", &settings]);
    }
    args.push(wasm());
    let output = policy_run(&args, None);

    let read = |path: &str| serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let request = admission_request(read(&request)).unwrap();
    let settings = if dir.join("settings.json").exists() {
        read(&settings)
    } else {
        json!({})
    };
    let verdict = policy.validate_settings(&settings).unwrap();
    if !verdict.valid {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{}", dir.display());
        let message = verdict.message.unwrap_or_default();
        assert_eq!(
            stderr.trim_end(),
            format!("Error: Provided settings are not valid: {message}")
        );
        return;
    }
    let capabilities = HostCapabilities::replay(Session::from_file(Path::new(&session)).unwrap());
    let expected = policy
        .validate(&request, &settings, &capabilities)
        .unwrap()
        .response;
    assert_eq!(
        response(&output),
        serde_json::to_value(expected).unwrap(),
        "{}",
        dir.display()
    );
}

#[test]
fn fixture_files_work_unchanged() {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(common::fixtures())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|dir| dir.join("session.yml").exists())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "no fixture with a session");
    let policy = Policy::from_file(common::wasm()).unwrap();
    for dir in dirs.iter().take(2) {
        run_fixture(&policy, dir);
    }
}
