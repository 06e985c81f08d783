//! Every fixture through the real engine: `kwctl run` (Kubewarden's CLI, policy-evaluator and
//! wasmtime) on the annotated module, with the fixture's session (or an empty one) and settings.
//! Per fixture it checks that
//! - kwctl's answer satisfies the fixture's `expected.json` (decision, status, warnings, audit
//!   annotations, the object after the patch; a refused request or refused settings as kwctl's
//!   error), and
//! - `policy-run` gives the same answer as kwctl: exit code, the AdmissionResponse (every field,
//!   the patch included) and the error message.
//!
//! kwctl is found through `KWCTL` or `PATH` (see `e2e_tests::kwctl`); without one each test is
//! skipped with a notice (in CI too: it has no kwctl).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

use anyhow::{Context, Result};
use e2e_tests::kwctl::{error_lines, Kwctl};
use e2e_tests::{admission_request, AdmissionResponse};
use serde_json::{json, Value};

/// What an engine printed for one fixture.
#[derive(Debug)]
struct Answer {
    code: Option<i32>,
    stdout: String,
    error: String,
}

impl Answer {
    fn of(output: &Output) -> Self {
        Self {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).trim().to_owned(),
            error: error_lines(&output.stderr),
        }
    }

    fn response(&self) -> Result<Value> {
        serde_json::from_str(&self.stdout).with_context(|| {
            format!(
                "stdout is not one JSON AdmissionResponse: {:?} (stderr: {})",
                self.stdout, self.error
            )
        })
    }
}

/// The arguments of `run` for a fixture, after the engine's own flags.
fn run_args(dir: &Path, empty_session: &Path, module: &Path) -> Vec<String> {
    let session = dir.join("session.yml");
    let session = if session.exists() {
        session
    } else {
        empty_session.to_path_buf()
    };
    let mut args = vec![
        "--allow-context-aware".to_owned(),
        "--replay-host-capabilities-interactions".to_owned(),
        session.to_string_lossy().into_owned(),
        "--request-path".to_owned(),
        dir.join("request.json").to_string_lossy().into_owned(),
    ];
    let settings = dir.join("settings.json");
    if settings.exists() {
        args.push("--settings-path".to_owned());
        args.push(settings.to_string_lossy().into_owned());
    }
    args.push(module.to_string_lossy().into_owned());
    args
}

/// Differences between two JSON values, one line per JSON pointer.
fn differences(left: &str, a: &Value, right: &str, b: &Value) -> Vec<String> {
    e2e_tests::json_differences((left, a), (right, b))
}

/// Checks kwctl's answer against `expected.json`; returns the problems.
fn check_expected(dir: &Path, request: &Value, kwctl: &Answer) -> Result<Vec<String>> {
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json"))?)
            .context("expected.json is not JSON")?;
    let mut problems = Vec::new();
    let refusal = |wanted: String, problems: &mut Vec<String>| {
        if kwctl.code != Some(1) || kwctl.error != wanted {
            problems.push(format!(
                "expected.json wants kwctl to exit 1 with {wanted:?}; kwctl exited {:?} with {:?} (stdout {:?})",
                kwctl.code, kwctl.error, kwctl.stdout
            ));
        }
    };
    if let Some(refused) = expected.get("requestRefused").and_then(Value::as_str) {
        refusal(format!("Error: {refused}"), &mut problems);
        return Ok(problems);
    }
    if expected.get("settingsValid") == Some(&json!(false)) {
        let message = expected["settingsMessage"].as_str().unwrap_or_default();
        refusal(
            format!("Error: Provided settings are not valid: {message}"),
            &mut problems,
        );
        return Ok(problems);
    }
    if kwctl.code != Some(0) {
        problems.push(format!("kwctl exited {:?}: {}", kwctl.code, kwctl.error));
        return Ok(problems);
    }
    let response: AdmissionResponse = serde_json::from_value(kwctl.response()?)
        .context("kwctl printed something else than an AdmissionResponse")?;
    let request = admission_request(request.clone())?;
    let object = request.get("object").unwrap_or(&Value::Null);
    let mut actual = json!({
        "allowed": response.allowed,
        "warnings": response.warnings.clone().unwrap_or_default(),
        "object": response.patched(object)?.unwrap_or(Value::Null),
    });
    if !response.allowed {
        actual["status"] = serde_json::to_value(&response.status)?;
    }
    if let Some(audit) = &response.audit_annotations {
        actual["auditAnnotations"] = serde_json::to_value(audit)?;
    }
    let mut wanted = expected.clone();
    if let Some(map) = wanted.as_object_mut() {
        // kwctl does not show how many host calls the policy made; the fixtures test counts them.
        map.remove("lookups");
    }
    problems.extend(
        differences("expected.json", &wanted, "kwctl", &actual)
            .into_iter()
            .map(|d| format!("kwctl vs expected.json: {d}")),
    );
    Ok(problems)
}

/// Compares policy-run's answer with kwctl's; returns the problems.
fn check_same(kwctl: &Answer, policy_run: &Answer) -> Vec<String> {
    let mut problems = Vec::new();
    if kwctl.code != policy_run.code {
        problems.push(format!(
            "exit code: kwctl {:?}, policy-run {:?}",
            kwctl.code, policy_run.code
        ));
    }
    if kwctl.error != policy_run.error {
        problems.push(format!(
            "error message: kwctl {:?}, policy-run {:?}",
            kwctl.error, policy_run.error
        ));
    }
    match (kwctl.response(), policy_run.response()) {
        // Audit annotations are a HashMap in kwctl: compare as JSON, not as bytes.
        (Ok(k), Ok(p)) => problems.extend(
            differences("kwctl", &k, "policy-run", &p)
                .into_iter()
                .map(|d| format!("AdmissionResponse {d}")),
        ),
        (Err(_), Err(_)) if kwctl.stdout.is_empty() && policy_run.stdout.is_empty() => {}
        _ => problems.push(format!(
            "stdout: kwctl {:?}, policy-run {:?}",
            kwctl.stdout, policy_run.stdout
        )),
    }
    problems
}

fn run_fixture(kwctl: &Kwctl, dir: &Path, empty: &Path, module: &Path) -> Result<Vec<String>> {
    let args = run_args(dir, empty, module);
    let kwctl_answer = Answer::of(
        &kwctl
            .subcommand("run")
            .args(&args)
            .output()
            .context("cannot run kwctl")?,
    );
    let policy_run_answer = Answer::of(
        &Command::new(env!("CARGO_BIN_EXE_policy-run"))
            .args(&args)
            .output()
            .context("cannot run policy-run")?,
    );
    let request: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("request.json"))?)?;
    let mut problems = check_expected(dir, &request, &kwctl_answer)?;
    problems.extend(check_same(&kwctl_answer, &policy_run_answer));
    Ok(problems)
}

/// The annotated module (`kwctl annotate` with policy-metadata.yml and README.md), written once.
fn annotated(kwctl: &Kwctl, dir: &Path) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = dir.join("annotated-policy.wasm");
    kwctl
        .annotate(
            common::wasm(),
            &root.join("policy-metadata.yml"),
            &root.join("README.md"),
            &out,
        )
        .unwrap_or_else(|e| panic!("{e:#}"));
    out
}

#[test]
fn every_fixture_answers_the_same_in_kwctl_and_policy_run() {
    let Some(kwctl) = Kwctl::for_test("every_fixture_answers_the_same_in_kwctl_and_policy_run")
    else {
        return;
    };
    let work = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("kwctl-fixtures");
    std::fs::create_dir_all(&work).unwrap();
    let module = annotated(&kwctl, &work);
    let empty = work.join("empty-session.yml");
    std::fs::write(&empty, "[]\n").unwrap();

    let root = common::fixtures();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.join("request.json").exists())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "no fixtures under {}", root.display());

    // Two workers: each kwctl run starts an engine of its own.
    let queue = Mutex::new(dirs.iter());
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| loop {
                let Some(dir) = queue.lock().unwrap().next() else {
                    break;
                };
                let name = dir.file_name().unwrap().to_string_lossy().into_owned();
                let problems = run_fixture(&kwctl, dir, &empty, &module)
                    .unwrap_or_else(|e| vec![format!("cannot run: {e:#}")]);
                if !problems.is_empty() {
                    failures
                        .lock()
                        .unwrap()
                        .push(format!("{name}:\n  {}", problems.join("\n  ")));
                }
            });
        }
    });
    let mut failures = failures.into_inner().unwrap();
    failures.sort();
    eprintln!(
        "{} fixtures run in kwctl ({}) and policy-run, {} failing",
        dirs.len(),
        kwctl.path().display(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} fixtures differ between kwctl, policy-run and expected.json:\n\n{}",
        failures.len(),
        dirs.len(),
        failures.join("\n\n")
    );
}

#[test]
fn command_line_errors_match_kwctl() {
    let Some(kwctl) = Kwctl::for_test("command_line_errors_match_kwctl") else {
        return;
    };
    let work = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("kwctl-cli");
    std::fs::create_dir_all(&work).unwrap();
    let module = annotated(&kwctl, &work);
    let module = module.to_str().unwrap();
    let file = |name: &str, text: &str| {
        let path = work.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    };
    let empty = file("empty.yml", "[]\n");
    let request = common::fixtures().join("aws-basic-default-sa/request.json");
    let request = request.to_str().unwrap();
    let not_json = file("bad.json", "{not json");
    let list = file("list.json", "[1]");
    let review_without_request = file("review.json", r#"{"kind":"AdmissionReview"}"#);
    let not_yaml = file("bad.yml", "a: [b");
    let empty_settings = file("empty-settings.yml", "");
    let ctx = [
        "--allow-context-aware",
        "--replay-host-capabilities-interactions",
        &empty,
    ];
    let r = ["--request-path", request];
    // (with --allow-context-aware and an empty session?, the rest of the command line)
    let cases: Vec<(bool, Vec<&str>)> = vec![
        (
            true,
            vec!["--request-path", "/nonexistent/request.json", module],
        ),
        (true, vec![r[0], r[1], "/nonexistent/policy.wasm"]),
        (
            true,
            vec![r[0], r[1], "-s", "/nonexistent/settings.yml", module],
        ),
        (true, vec![r[0], r[1], "-s", &not_yaml, module]),
        (true, vec![r[0], r[1], "--settings-json", "{bad", module]),
        (true, vec![r[0], r[1], "--settings-json", "[1]", module]),
        (
            true,
            vec![r[0], r[1], "--settings-json", r#"{"bogus":1}"#, module],
        ),
        (true, vec!["--request-path", &not_json, module]),
        (true, vec!["--request-path", &list, module]),
        (
            true,
            vec!["--request-path", &review_without_request, module],
        ),
        // An empty settings file is no settings; the lookup finds an empty session.
        (true, vec![r[0], r[1], "-s", &empty_settings, module]),
        // --settings-path wins over --settings-json.
        (
            true,
            vec![
                r[0],
                r[1],
                "-s",
                &empty_settings,
                "--settings-json",
                "{bad",
                module,
            ],
        ),
        // Without --allow-context-aware the host refuses the lookup.
        (false, vec![r[0], r[1], module]),
        (false, vec!["--bogus", r[0], r[1], module]),
        (false, vec![module]),
    ];
    let mut failures = Vec::new();
    for (with_ctx, case) in &cases {
        let mut args: Vec<&str> = Vec::new();
        if *with_ctx {
            args.extend(ctx);
        }
        args.extend(case);
        let kw = kwctl.subcommand("run").args(&args).output().unwrap();
        let pr = Command::new(env!("CARGO_BIN_EXE_policy-run"))
            .args(&args)
            .output()
            .unwrap();
        let (kw_answer, pr_answer) = (Answer::of(&kw), Answer::of(&pr));
        let mut problems = Vec::new();
        if kw.status.code() == Some(2) {
            // clap usage errors: the same first line and exit code (the usage text names the binary).
            let first = |o: &Output| {
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            };
            if pr.status.code() != Some(2) || first(&kw) != first(&pr) {
                problems.push(format!(
                    "usage error: kwctl {:?} {:?}, policy-run {:?} {:?}",
                    kw.status.code(),
                    first(&kw),
                    pr.status.code(),
                    first(&pr)
                ));
            }
        } else {
            problems = check_same(&kw_answer, &pr_answer);
        }
        if !problems.is_empty() {
            failures.push(format!(
                "run {}:\n  {}",
                args.join(" "),
                problems.join("\n  ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "policy-run differs from kwctl:\n\n{}",
        failures.join("\n\n")
    );
}

/// Every (apiGroup, apiVersion, resource, operation) a list of rules covers.
fn rule_tuples(rules: &Value) -> std::collections::BTreeSet<[String; 4]> {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut tuples = std::collections::BTreeSet::new();
    for rule in rules.as_array().into_iter().flatten() {
        for group in strings(&rule["apiGroups"]) {
            for version in strings(&rule["apiVersions"]) {
                for resource in strings(&rule["resources"]) {
                    for operation in strings(&rule["operations"]) {
                        tuples.insert([
                            group.clone(),
                            version.clone(),
                            resource.clone(),
                            operation,
                        ]);
                    }
                }
            }
        }
    }
    tuples
}

/// The ClusterAdmissionPolicies of `examples/`, with the file each comes from.
fn example_policies() -> Vec<(String, Value)> {
    use serde::Deserialize as _;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    let mut policies = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for document in serde_yaml::Deserializer::from_str(&text) {
            let Ok(value) = Value::deserialize(document) else {
                continue;
            };
            if value["kind"] == "ClusterAdmissionPolicy" {
                let name = file.file_name().unwrap().to_string_lossy().into_owned();
                policies.push((name, value));
            }
        }
    }
    policies
}

#[test]
fn scaffolded_manifest_agrees_with_the_examples() {
    let Some(kwctl) = Kwctl::for_test("scaffolded_manifest_agrees_with_the_examples") else {
        return;
    };
    let work = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("kwctl-scaffold");
    std::fs::create_dir_all(&work).unwrap();
    let module = annotated(&kwctl, &work);
    let output = kwctl
        .run(&[
            "scaffold",
            "manifest",
            "-t",
            "ClusterAdmissionPolicy",
            "--allow-context-aware",
            module.to_str().unwrap(),
        ])
        .unwrap_or_else(|e| panic!("{e:#}"));
    let scaffold: Value = serde_yaml::from_slice(&output.stdout).unwrap();
    let spec = &scaffold["spec"];
    let all = rule_tuples(&spec["rules"]);
    assert!(!all.is_empty(), "scaffold without rules: {scaffold}");

    let examples = example_policies();
    assert!(
        !examples.is_empty(),
        "no ClusterAdmissionPolicy in examples/"
    );
    let mut problems = Vec::new();
    let mut complete = false;
    for (file, example) in &examples {
        let name = format!("{file} ({})", example["metadata"]["name"]);
        let ours = &example["spec"];
        for field in ["mutating", "contextAwareResources"] {
            if ours[field] != spec[field] {
                problems.push(format!(
                    "{name}: spec.{field} is {}, kwctl scaffold says {}",
                    ours[field], spec[field]
                ));
            }
        }
        if !ours["backgroundAudit"].is_null() && ours["backgroundAudit"] != spec["backgroundAudit"]
        {
            problems.push(format!(
                "{name}: spec.backgroundAudit is {}, the metadata says {}",
                ours["backgroundAudit"], spec["backgroundAudit"]
            ));
        }
        let rules = rule_tuples(&ours["rules"]);
        let extra: Vec<_> = rules.difference(&all).collect();
        if !extra.is_empty() {
            problems.push(format!(
                "{name}: rules the policy's metadata does not allow: {extra:?}"
            ));
        }
        complete |= rules == all;
    }
    if !complete {
        problems.push(format!(
            "no example subscribes to every rule kwctl scaffolds ({} rule tuples)",
            all.len()
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn scaffolded_artifacthub_agrees_with_artifacthub_pkg() {
    let Some(kwctl) = Kwctl::for_test("scaffolded_artifacthub_agrees_with_artifacthub_pkg") else {
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let metadata = root.join("policy-metadata.yml");
    let output = kwctl
        .run(&["scaffold", "artifacthub", "-m", metadata.to_str().unwrap()])
        .unwrap_or_else(|e| panic!("{e:#}"));
    let mut scaffold: Value = serde_yaml::from_slice(&output.stdout).unwrap();
    let mut ours: Value =
        serde_yaml::from_str(&std::fs::read_to_string(root.join("artifacthub-pkg.yml")).unwrap())
            .unwrap();
    // Hand-written on purpose: the install text, and the date of the release.
    for doc in [&mut scaffold, &mut ours] {
        let map = doc.as_object_mut().unwrap();
        map.remove("install");
        map.remove("createdAt");
    }
    let differences = differences("artifacthub-pkg.yml", &ours, "kwctl scaffold", &scaffold);
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}
