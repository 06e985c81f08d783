//! Hostile requests on the real `policy.wasm` in the native host: wrong JSON types in every field
//! the policy reads, huge objects (1,000 containers, 10,000 env vars, 10,000 annotations, 256 KiB
//! values), deep nesting, empty and missing names, huge numbers, odd Unicode, and payloads that
//! are not JSON at all. Each must give an acceptance or a clear denial (allowed false, a 4xx code
//! and a message), never a guest trap or a 500. Each case prints the time it took (instance,
//! evaluation, and the host's JSON patch); speed figures live in the benchmarks.
//!
//! Typed requests run through [`Policy::validate`] with a replay session, as the fixtures do.
//! Payloads no `serde_json::Value` can hold (invalid UTF-8, lone surrogates, 10,000 levels of
//! nesting, duplicate keys) are handed to the guest's `validate` as raw bytes by a minimal waPC
//! host of the same engine crates.
//!
//! The small cases are also fixtures (`fixtures/hostile-*`), with their golden results.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use e2e_tests::{HostCapabilities, Policy, Session};
use serde_json::{json, Value};
use wapc::{HostCallback, WapcHost, WasiParams};
use wasmtime_provider::{WasmtimeEngineProviderBuilder, WasmtimeEngineProviderPre};

const ROLE: &str = "arn:aws:iam::111122223333:role/app";
const GCP_PROVIDER: &str =
    "projects/123456789012/locations/global/workloadIdentityPools/pool/providers/prov";

/// What a case must get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Accepted without a patch.
    Accepted,
    /// Accepted with a mutated object.
    Mutated,
    /// Denied with this code.
    Denied(u16),
}

/// A check of the mutated object.
type Check = Box<dyn Fn(&Value) -> Result<(), String>>;

struct Case {
    name: String,
    request: Value,
    settings: Value,
    /// The ServiceAccount `team-a/<name>` the one lookup gets, with these annotations.
    account: Option<(String, Value)>,
    expect: Expect,
    check: Option<Check>,
}

impl Case {
    /// A Pod CREATE by an untrusted user in `team-a`, default settings, ServiceAccount `app`
    /// with an IRSA role.
    fn pod(name: &str, object: Value, expect: Expect) -> Case {
        Case {
            name: name.to_string(),
            request: request("", "Pod", "CREATE", object),
            settings: json!({}),
            account: Some(("app".into(), json!({"eks.amazonaws.com/role-arn": ROLE}))),
            expect,
            check: None,
        }
    }

    fn request(name: &str, request: Value, expect: Expect) -> Case {
        Case {
            name: name.to_string(),
            request,
            settings: json!({}),
            account: None,
            expect,
            check: None,
        }
    }

    fn settings(mut self, settings: Value) -> Case {
        self.settings = settings;
        self
    }

    fn account(mut self, name: &str, annotations: Value) -> Case {
        self.account = Some((name.to_string(), annotations));
        self
    }

    fn check(mut self, check: impl Fn(&Value) -> Result<(), String> + 'static) -> Case {
        self.check = Some(Box::new(check));
        self
    }
}

fn request(group: &str, kind: &str, operation: &str, object: Value) -> Value {
    json!({
        "uid": "hostile",
        "kind": {"group": group, "version": "v1", "kind": kind},
        "resource": {"group": group, "version": "v1", "resource": format!("{}s", kind.to_lowercase())},
        "namespace": "team-a",
        "operation": operation,
        "userInfo": {"username": "alice", "uid": "u-1", "groups": ["eng", "system:authenticated"]},
        "object": object,
        "oldObject": null,
    })
}

/// A Pod with the given spec.
fn pod(spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-0", "namespace": "team-a"}, "spec": spec})
}

/// A Pod using ServiceAccount `app` with these containers.
fn pod_with(containers: Value) -> Value {
    pod(json!({"serviceAccountName": "app", "containers": containers}))
}

fn app() -> Value {
    json!([{"name": "app", "image": "registry.example/app:1"}])
}

/// A Deployment whose template is `template`.
fn deployment(template: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "team-a"},
        "spec": {"replicas": 1, "template": template}})
}

fn caller_identity(required: bool, reject: bool) -> Value {
    json!({"aws": {"enabled": false}, "stackit": {"enabled": false}, "azure": {"enabled": false},
        "gcp": {"enabled": false}, "identityInjection": {"enabled": true,
        "onMissingRequired": if reject { "reject" } else { "warn" },
        "annotations": [{"claimName": "preferred_username", "targetKey": "union.ai/created-by", "required": required}],
        "environmentVariables": [{"claimName": "sub", "targetKey": "UNION_USER_SUBJECT"}]}})
}

/// A replay session answering the one lookup of `team-a/<name>`.
fn session(name: &str, annotations: &Value) -> Result<Session> {
    let request = format!(
        "!KubernetesGetResource\napi_version: v1\nkind: ServiceAccount\nname: {name}\nnamespace: team-a\ndisable_cache: false\n"
    );
    let account = json!({"apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": name, "namespace": "team-a", "annotations": annotations}});
    let exchanges = json!([{"type": "Exchange", "request": request,
        "response": {"type": "Success", "payload": account.to_string()}}]);
    Session::from_yaml(&serde_yaml::to_string(&exchanges)?)
}

fn env_names(container: &Value) -> Vec<&str> {
    container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e.get("name").and_then(Value::as_str))
        .collect()
}

fn expect(ok: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(what())
    }
}

/// Nested arrays `depth` levels deep around `1`, as a Value.
fn nested(depth: usize) -> Value {
    (0..depth).fold(json!(1), |inner, _| json!([inner]))
}

/// Every typed hostile case.
fn cases() -> Vec<Case> {
    use Expect::{Accepted, Denied, Mutated};
    let big = "x".repeat(256 * 1024);
    let mut cases = vec![
        // Wrong JSON types in every field the policy reads.
        Case::pod("containers-not-a-list", pod(json!({"containers": "app"})), Denied(400)),
        Case::pod(
            "containers-an-object",
            pod(json!({"containers": {"name": "app"}})),
            Denied(400),
        ),
        Case::pod("container-a-string", pod_with(json!(["app"])), Denied(400)),
        Case::pod(
            "init-containers-a-number",
            pod(json!({"containers": app(), "initContainers": 3})),
            Denied(400),
        ),
        Case::pod(
            "env-null",
            pod_with(json!([{"name": "app", "env": null}])),
            Mutated,
        )
        .check(|pod| {
            let names = env_names(&pod["spec"]["containers"][0]);
            expect(
                names == ["AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"],
                || format!("env {names:?}"),
            )
        }),
        Case::pod(
            "env-a-string",
            pod_with(json!([{"name": "app", "env": "A=1"}])),
            Denied(400),
        ),
        Case::pod(
            "env-an-object",
            pod_with(json!([{"name": "app", "env": {"A": "1"}}])),
            Denied(400),
        ),
        Case::pod(
            "env-entries-of-every-type",
            pod_with(json!([{"name": "app",
                "env": [1, "A=1", null, true, [], {"name": 5}, {"value": "no name"}]}])),
            Mutated,
        )
        .check(|pod| {
            let env = pod["spec"]["containers"][0]["env"].as_array().cloned().unwrap_or_default();
            let kept = json!([1, "A=1", null, true, [], {"name": 5}, {"value": "no name"}]);
            expect(env.len() == 9 && json!(env[..7]) == kept, || format!("env {env:?}"))
        }),
        Case::pod(
            "volume-mounts-an-object",
            pod_with(json!([{"name": "app", "volumeMounts": {"name": "x"}}])),
            Denied(400),
        ),
        Case::pod(
            "volume-mount-entries-of-every-type",
            pod_with(json!([{"name": "app",
                "volumeMounts": [7, "m", null, {"name": 1, "mountPath": 2}]}])),
            Mutated,
        ),
        Case::pod(
            "volumes-a-string",
            pod(json!({"serviceAccountName": "app", "containers": app(), "volumes": "v"})),
            Denied(400),
        ),
        Case::pod(
            "volume-entries-of-every-type",
            pod(json!({"serviceAccountName": "app", "containers": app(),
                "volumes": [1, "v", null, {"name": 7}, {"name": "aws-iam-token"}]})),
            Mutated,
        )
        .check(|pod| {
            let volumes = &pod["spec"]["volumes"];
            expect(
                volumes == &json!([1, "v", null, {"name": 7}, {"name": "aws-iam-token"}]),
                || format!("the existing aws-iam-token volume was not kept: {volumes}"),
            )
        }),
        Case::pod(
            "annotations-non-string-values",
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-0", "annotations": {
                "eks.amazonaws.com/token-expiration": 3600, "eks.amazonaws.com/skip-containers": ["app"],
                "a": true, "b": null, "c": {"d": 1}}},
                "spec": {"serviceAccountName": "app", "containers": app()}}),
            Mutated,
        )
        .check(|pod| {
            let seconds = &pod["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]
                ["expirationSeconds"];
            expect(seconds == &json!(86400), || {
                format!("a non-string token-expiration was read: {seconds}")
            })
        }),
        Case::pod(
            "annotations-a-list",
            json!({"metadata": {"annotations": ["a"]}, "spec": {"containers": app()}}),
            Denied(400),
        ),
        Case::pod(
            "annotations-a-string",
            json!({"metadata": {"annotations": "a=b"}, "spec": {"containers": app()}}),
            Denied(400),
        ),
        Case::pod(
            "labels-a-list",
            json!({"metadata": {"labels": ["azure.workload.identity/use"]}, "spec": {"containers": app()}}),
            Denied(400),
        ),
        Case::pod(
            "labels-non-string-values",
            json!({"metadata": {"name": "web-0", "labels": {"eks.amazonaws.com/skip-pod-identity-webhook": true,
                "azure.workload.identity/use": true}},
                "spec": {"serviceAccountName": "app", "containers": app()}}),
            Mutated,
        ),
        Case::pod(
            "metadata-a-string",
            json!({"metadata": "web-0", "spec": {"containers": app()}}),
            Denied(400),
        ),
        Case::pod(
            "metadata-null",
            json!({"metadata": null, "spec": {"serviceAccountName": "app", "containers": app()}}),
            Mutated,
        ),
        Case::pod("spec-missing", json!({"metadata": {"name": "web-0"}}), Denied(400)),
        Case::pod(
            "spec-a-list",
            json!({"metadata": {"name": "web-0"}, "spec": [app()]}),
            Denied(400),
        ),
        Case::pod(
            "service-account-name-a-number",
            pod(json!({"serviceAccountName": 42, "containers": app()})),
            Mutated,
        )
        .account("default", json!({"eks.amazonaws.com/role-arn": ROLE})),
        Case::pod(
            "node-selector-a-string",
            pod(json!({"serviceAccountName": "app", "nodeSelector": "windows", "containers": app()})),
            Mutated,
        ),
        Case::pod("object-a-number", json!(42), Denied(400)),
        Case::pod("object-a-string", json!("pod"), Denied(400)),
        Case::pod("object-null", Value::Null, Denied(400)),
        Case::request(
            "request-without-kind",
            json!({"uid": "hostile", "operation": "CREATE", "namespace": "team-a",
                "object": pod_with(app())}),
            Accepted,
        ),
        Case::request(
            "kind-a-string",
            json!({"uid": "hostile", "kind": "Pod", "operation": "CREATE", "namespace": "team-a",
                "object": pod_with(app())}),
            Accepted,
        ),
        Case::request(
            "operation-a-number",
            json!({"uid": "hostile", "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "operation": 1, "namespace": "team-a", "object": pod_with(app())}),
            Accepted,
        ),
        Case::pod("namespace-a-number", pod_with(app()), Mutated),
        Case::request(
            "user-info-groups-a-string",
            {
                let mut r = request("apps", "Deployment", "CREATE", deployment(json!({
                    "metadata": {"annotations": {"union.ai/created-by": "mallory"}},
                    "spec": {"containers": app()}})));
                r["userInfo"] = json!({"username": "alice", "uid": "u-1",
                    "groups": "system:serviceaccounts:kube-system"});
                r
            },
            Mutated,
        )
        .settings(caller_identity(false, false))
        .check(|deployment| {
            let stamp = &deployment["spec"]["template"]["metadata"]["annotations"]["union.ai/created-by"];
            expect(stamp == "alice", || {
                format!("a groups string made the requester trusted: stamp {stamp}")
            })
        }),
        Case::request(
            "user-info-a-string",
            {
                let mut r = request("apps", "Deployment", "CREATE", deployment(json!({
                    "spec": {"containers": app()}})));
                r["userInfo"] = json!("system:kube-controller-manager");
                r
            },
            Denied(403),
        )
        .settings(caller_identity(true, true)),
        Case::request(
            "user-info-extra-wrong-types",
            {
                let mut r = request("apps", "Deployment", "CREATE", deployment(json!({
                    "spec": {"containers": app()}})));
                r["userInfo"] = json!({"username": ["alice"], "uid": 7,
                    "groups": [1, null, "eng"], "extra": {"team": "platform", "sub": 5}});
                r
            },
            Accepted,
        )
        .settings(caller_identity(false, false)),
        Case::request(
            "old-object-a-string",
            {
                let mut r = request("apps", "Deployment", "UPDATE", deployment(json!({
                    "spec": {"containers": app()}})));
                r["oldObject"] = json!("previous");
                r
            },
            Mutated,
        )
        .settings(caller_identity(false, false)),
        Case::request(
            "template-a-list",
            request("apps", "Deployment", "CREATE", deployment(json!([app()]))),
            Accepted,
        )
        .settings(caller_identity(false, false)),
        Case::request(
            "template-containers-not-a-list",
            request(
                "apps",
                "Deployment",
                "CREATE",
                deployment(json!({"spec": {"containers": "app"}})),
            ),
            Denied(400),
        )
        .settings(caller_identity(false, false)),
        // Empty and missing names.
        Case::pod(
            "empty-and-missing-names",
            json!({"metadata": {}, "spec": {"serviceAccountName": "", "containers": [
                {"name": "", "env": [{"value": "x"}], "volumeMounts": [{"mountPath": "/x"}]},
                {"image": "x"}], "volumes": [{"emptyDir": {}}]}}),
            Mutated,
        )
        .account(
            "default",
            json!({"eks.amazonaws.com/role-arn": ROLE,
                "azure.workload.identity/client-id": "5f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"}),
        )
        .settings(json!({"azure": {"requireUseLabel": false, "tokenLayout": "v1.6"}})),
        // Huge numbers in expirations.
        Case::pod(
            "huge-expiration-aws",
            json!({"metadata": {"name": "web-0",
                "annotations": {"eks.amazonaws.com/token-expiration": "99999999999999999999"}},
                "spec": {"serviceAccountName": "app", "containers": app()}}),
            Mutated,
        )
        .account(
            "app",
            json!({"eks.amazonaws.com/role-arn": ROLE,
                "eks.amazonaws.com/token-expiration": "-9223372036854775808"}),
        )
        .check(|pod| {
            let seconds = &pod["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]
                ["expirationSeconds"];
            expect(seconds == &json!(600), || format!("expirationSeconds {seconds}"))
        }),
        Case::pod(
            "huge-expiration-gcp",
            json!({"metadata": {"name": "web-0",
                "annotations": {"cloud.google.com/token-expiration": "18446744073709551616"}},
                "spec": {"serviceAccountName": "app", "containers": app()}}),
            Denied(403),
        )
        .account(
            "app",
            json!({"cloud.google.com/workload-identity-provider": GCP_PROVIDER}),
        ),
        Case::pod(
            "huge-expiration-gcp-max-i64",
            json!({"metadata": {"name": "web-0",
                "annotations": {"cloud.google.com/token-expiration": "9223372036854775807"}},
                "spec": {"serviceAccountName": "app", "containers": app()}}),
            Mutated,
        )
        .account(
            "app",
            json!({"cloud.google.com/workload-identity-provider": GCP_PROVIDER}),
        )
        .check(|pod| {
            let seconds = &pod["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]
                ["expirationSeconds"];
            expect(seconds == &json!(4294967296_i64), || {
                format!("expirationSeconds {seconds}")
            })
        }),
        Case::pod(
            "huge-expiration-azure",
            json!({"metadata": {"name": "web-0", "labels": {"azure.workload.identity/use": "true"},
                "annotations": {"azure.workload.identity/service-account-token-expiration": "1e400"}},
                "spec": {"serviceAccountName": "app", "containers": app()}}),
            Denied(403),
        )
        .account(
            "app",
            json!({"azure.workload.identity/client-id": "5f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"}),
        ),
        Case::pod(
            "huge-expiration-stackit",
            pod_with(app()),
            Denied(403),
        )
        .account(
            "app",
            json!({"workload-identity.stackit.cloud/service-account-email": "sa@sa.stackit.cloud",
                "workload-identity.stackit.cloud/service-account-token-expiration-seconds": "99999999999999999999"}),
        ),
        Case::pod(
            "huge-json-numbers",
            json!({"metadata": {"name": "web-0", "x-big": u64::MAX, "x-small": i64::MIN},
                "spec": {"serviceAccountName": "app", "containers": app(), "x-float": f64::MAX,
                    "volumes": [{"name": "user", "projected": {"sources": [{"serviceAccountToken":
                        {"path": "t", "expirationSeconds": u64::MAX}}]}}]}}),
            Mutated,
        )
        .check(|pod| {
            let kept = pod["metadata"]["x-big"] == json!(u64::MAX)
                && pod["metadata"]["x-small"] == json!(i64::MIN)
                && pod["spec"]["x-float"] == json!(f64::MAX)
                && pod["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]
                    ["expirationSeconds"]
                    == json!(u64::MAX);
            expect(kept, || format!("numbers changed: {pod}"))
        }),
        // Unicode that looks like broken encodings, NULs, controls, bidi overrides.
        Case::pod(
            "odd-unicode",
            json!({"metadata": {"name": "web-\u{0}", "annotations": {
                    "example.com/\u{0}": "\u{fffd}\\xff\\xfe\u{202e}\u{1f600}\u{2028}\u{7f}",
                    "eks.amazonaws.com/skip-containers": "\u{0}app"},
                    "labels": {"\u{feff}azure.workload.identity/use": "true"}},
                "spec": {"serviceAccountName": "app", "containers": [
                    {"name": "app\u{0}", "env": [{"name": "\u{0}", "value": "\\u0000\u{0}"}]}]}}),
            Mutated,
        )
        .account(
            "app",
            json!({"eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/\u{0}\u{202e}x"}),
        ),
        // Deep nesting in an unknown field (the guest's JSON parser stops at 128 levels in all).
        Case::pod(
            "nested-100-levels",
            json!({"metadata": {"name": "web-0"}, "x-deep": nested(100),
                "spec": {"serviceAccountName": "app", "containers": app()}}),
            Mutated,
        )
        .check(|pod| expect(pod["x-deep"] == nested(100), || "x-deep changed".into())),
        Case::pod(
            "nested-130-levels",
            json!({"metadata": {"name": "web-0"}, "x-deep": nested(130),
                "spec": {"serviceAccountName": "app", "containers": app()}}),
            Denied(400),
        ),
        // Size.
        Case::pod(
            "1000-containers",
            pod_with(json!((0..1000)
                .map(|i| json!({"name": format!("c{i}"), "image": "x"}))
                .collect::<Vec<_>>())),
            Mutated,
        )
        .check(|pod| {
            let containers = pod["spec"]["containers"].as_array().cloned().unwrap_or_default();
            expect(
                containers.len() == 1000
                    && containers.iter().all(|c| env_names(c).contains(&"AWS_ROLE_ARN")),
                || "not every container got AWS_ROLE_ARN".into(),
            )
        }),
        Case::pod(
            "10000-env-vars",
            pod_with(json!([{"name": "app", "env": (0..10_000)
                .map(|i| json!({"name": format!("VAR_{i}"), "value": i.to_string()}))
                .collect::<Vec<_>>()}])),
            Mutated,
        )
        .check(|pod| {
            let names = env_names(&pod["spec"]["containers"][0]);
            expect(
                names.len() == 10_002 && names[10_000..] == ["AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"],
                || format!("{} env vars, last {:?}", names.len(), names.last()),
            )
        }),
        Case::pod(
            "10000-env-vars-all-taken",
            pod_with(json!([{"name": "app", "env": (0..10_000)
                .map(|i| json!({"name": if i % 2 == 0 { "AWS_ROLE_ARN" } else { "AWS_WEB_IDENTITY_TOKEN_FILE" }, "value": "user"}))
                .collect::<Vec<_>>()}])),
            Mutated,
        )
        .check(|pod| {
            let names = env_names(&pod["spec"]["containers"][0]);
            expect(names.len() == 10_000, || format!("{} env vars", names.len()))
        }),
        Case::pod(
            "10000-volumes-and-mounts",
            pod(json!({"serviceAccountName": "app",
                "containers": [{"name": "app", "volumeMounts": (0..10_000)
                    .map(|i| json!({"name": format!("v{i}"), "mountPath": format!("/m/{i}")}))
                    .collect::<Vec<_>>()}],
                "volumes": (0..10_000)
                    .map(|i| json!({"name": format!("v{i}"), "emptyDir": {}}))
                    .collect::<Vec<_>>()})),
            Mutated,
        ),
        Case::pod(
            "10000-annotations",
            json!({"metadata": {"name": "web-0", "annotations": (0..10_000)
                .map(|i| (format!("example.com/a{i}"), json!("v")))
                .collect::<serde_json::Map<_, _>>()},
                "spec": {"serviceAccountName": "app", "containers": app()}}),
            Mutated,
        ),
        Case::pod(
            "256KiB-annotation-value",
            json!({"metadata": {"name": "web-0", "annotations": {"example.com/big": big.clone()}},
                "spec": {"serviceAccountName": "app", "containers": app()}}),
            Mutated,
        )
        .check({
            let big = big.clone();
            move |pod| {
                expect(pod["metadata"]["annotations"]["example.com/big"] == big.as_str(), || {
                    "the big annotation changed".into()
                })
            }
        }),
        Case::pod(
            "256KiB-skip-containers",
            json!({"metadata": {"name": "web-0", "annotations": {
                "eks.amazonaws.com/skip-containers": ",".repeat(256 * 1024),
                "azure.workload.identity/skip-containers": ";".repeat(256 * 1024)}},
                "spec": {"serviceAccountName": "app", "containers": app()}}),
            Mutated,
        ),
        Case::pod("256KiB-serviceaccount-role-arn", pod_with(app()), Mutated)
            .account("app", json!({"eks.amazonaws.com/role-arn": big.clone()})),
        Case::pod(
            "256KiB-container-name",
            pod_with(json!([{"name": big.clone()}])),
            Mutated,
        ),
    ];
    // The request's namespace of wrong type falls back to the pod's.
    if let Some(case) = cases.iter_mut().find(|c| c.name == "namespace-a-number") {
        case.request["namespace"] = json!(5);
    }
    cases
}

/// What one evaluation gave, for the report.
struct Outcome {
    name: String,
    elapsed: Duration,
    summary: String,
}

fn summary(validation: &Value) -> String {
    match validation["accepted"].as_bool() {
        Some(true) if !validation["mutated_object"].is_null() => "mutated".into(),
        Some(true) => "accepted".into(),
        _ => format!(
            "denied {}: {:.100}",
            validation["code"],
            validation["message"].as_str().unwrap_or("")
        ),
    }
}

/// Checks a guest ValidationResponse: an acceptance, or a denial with a 4xx code and a message.
fn clear(validation: &Value) -> Result<(), String> {
    match validation["accepted"].as_bool() {
        Some(true) => Ok(()),
        Some(false) => {
            let code = validation["code"].as_u64().unwrap_or(0);
            let message = validation["message"].as_str().unwrap_or("");
            expect(
                (400..500).contains(&code) && !message.trim().is_empty(),
                || format!("unclear denial: code {code}, message {message:?}"),
            )
        }
        None => Err(format!("not a ValidationResponse: {validation}")),
    }
}

fn run_case(policy: &Policy, case: &Case) -> Result<(Outcome, Vec<String>)> {
    let capabilities = match &case.account {
        Some((name, annotations)) => HostCapabilities::replay(session(name, annotations)?),
        None => HostCapabilities::replay(Session::default()),
    };
    let started = Instant::now();
    let evaluation = policy
        .validate(&case.request, &case.settings, &capabilities)
        .with_context(|| format!("{}: the guest failed (trap or host error)", case.name))?;
    let elapsed = started.elapsed();
    let validation = &evaluation.validation;
    let mut problems = Vec::new();
    if let Err(problem) = clear(validation) {
        problems.push(problem);
    }
    if case.account.is_none() && evaluation.host_calls != 0 {
        problems.push(format!(
            "{} lookups where none was expected",
            evaluation.host_calls
        ));
    }
    if matches!(case.expect, Expect::Denied(400)) && evaluation.host_calls != 0 {
        problems.push(format!(
            "{} lookups before denying a malformed request",
            evaluation.host_calls
        ));
    }
    let mutated = &validation["mutated_object"];
    let actual = match validation["accepted"].as_bool() {
        Some(true) if !mutated.is_null() => Expect::Mutated,
        Some(true) => Expect::Accepted,
        _ => Expect::Denied(validation["code"].as_u64().unwrap_or(0) as u16),
    };
    if actual != case.expect {
        problems.push(format!(
            "expected {:?}, got {}",
            case.expect,
            summary(validation)
        ));
    }
    if let (Some(check), Expect::Mutated) = (&case.check, actual) {
        if let Err(problem) = check(mutated) {
            problems.push(problem);
        }
    }
    if actual == Expect::Mutated {
        // The mutated object fed back is accepted unchanged.
        let mut again = case.request.clone();
        again["object"] = mutated.clone();
        let capabilities = match &case.account {
            Some((name, annotations)) => HostCapabilities::replay(session(name, annotations)?),
            None => HostCapabilities::replay(Session::default()),
        };
        let second = policy.validate(&again, &case.settings, &capabilities)?;
        if second.validation["accepted"] != json!(true)
            || !second.validation["mutated_object"].is_null()
        {
            problems.push(format!(
                "not idempotent: second pass {}",
                summary(&second.validation)
            ));
        }
    }
    Ok((
        Outcome {
            name: case.name.clone(),
            elapsed,
            summary: summary(validation),
        },
        problems,
    ))
}

fn report(outcomes: &[Outcome]) {
    eprintln!("{:<36} {:>12}  outcome", "case", "time");
    for o in outcomes {
        eprintln!("{:<36} {:>12.3?}  {}", o.name, o.elapsed, o.summary);
    }
}

/// Runs `body` on a thread with a large stack: building, serialising and dropping the big and
/// deep `Value`s of the cases recurses on the host side.
fn on_big_stack(body: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(body)
        .expect("a test thread")
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
}

#[test]
fn hostile_requests_get_a_clear_answer() {
    on_big_stack(|| {
        let policy = Policy::from_file(common::wasm()).unwrap_or_else(|e| panic!("{e:#}"));
        let mut outcomes = Vec::new();
        let mut failures = Vec::new();
        for case in cases() {
            match run_case(&policy, &case) {
                Ok((outcome, problems)) => {
                    if !problems.is_empty() {
                        failures.push(format!("{}:\n  {}", case.name, problems.join("\n  ")));
                    }
                    outcomes.push(outcome);
                }
                Err(error) => failures.push(format!("{}:\n  {error:#}", case.name)),
            }
        }
        report(&outcomes);
        assert!(
            failures.is_empty(),
            "{} hostile cases failed:\n\n{}",
            failures.len(),
            failures.join("\n\n")
        );
    });
}

/// Settings with huge numbers, wrong types and deep nesting are refused by `validate_settings`
/// with a message, never a trap.
#[test]
fn hostile_settings_are_refused_cleanly() {
    on_big_stack(|| {
        let policy = Policy::from_file(common::wasm()).unwrap_or_else(|e| panic!("{e:#}"));
        // (settings, whether validate_settings must refuse them); `None`: either verdict, as
        // long as there is one.
        let cases = [
            (
                json!({"aws": {"tokenExpirationSeconds": 1e30}}),
                Some(false),
            ),
            (
                json!({"aws": {"tokenExpirationSeconds": u64::MAX}}),
                Some(false),
            ),
            (
                json!({"aws": {"tokenExpirationSeconds": i64::MIN}}),
                Some(false),
            ),
            (
                json!({"gcp": {"tokenExpirationSeconds": i64::MAX}}),
                Some(false),
            ),
            (
                json!({"stackit": {"tokenExpirationSeconds": -1}}),
                Some(false),
            ),
            (
                json!({"customProviders": [{"name": "c", "serviceAccountAnnotation": "x/y",
                    "audience": "a", "mountPath": "/c", "volumeName": "c", "tokenExpirationSeconds": 1.5}]}),
                Some(false),
            ),
            (json!({"customProviders": {}}), Some(false)),
            (
                json!({"identityInjection": {"annotations": "x"}}),
                Some(false),
            ),
            (
                json!({"identityBindings": [{"claim": "groups", "values": "eng", "annotations": {}}]}),
                Some(false),
            ),
            (
                json!({"serviceAccounts": [{"namespace": "*", "name": "default", "annotations": {"a/b": 1}}]}),
                Some(false),
            ),
            (json!({"x-deep": nested(100)}), Some(false)),
            (json!("settings"), Some(false)),
            (json!(42), Some(false)),
            // serde's derive would read structs from JSON lists, positionally: refused by name.
            (json!({"aws": []}), Some(false)),
            (json!({"aws": [false]}), Some(false)),
            (json!([1, 2]), Some(false)),
            (
                json!({"aws": {"region": "x".repeat(256 * 1024)}}),
                Some(false),
            ),
        ];
        let mut failures = Vec::new();
        for (settings, valid) in cases {
            let started = Instant::now();
            let shown: String = settings.to_string().chars().take(60).collect();
            match policy.validate_settings(&settings) {
                Ok(verdict) => {
                    let message = verdict.message.clone().unwrap_or_default();
                    eprintln!(
                        "{:>12.3?}  {shown}: valid {}: {message:.100}",
                        started.elapsed(),
                        verdict.valid
                    );
                    if valid.is_some_and(|v| v != verdict.valid) {
                        failures.push(format!("{shown}: {verdict:?}"));
                    }
                    if !verdict.valid && message.trim().is_empty() {
                        failures.push(format!("{shown}: refused without a message"));
                    }
                }
                Err(error) => failures.push(format!("{shown}: the guest failed: {error:#}")),
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    });
}

// ---------------------------------------------------------------------------------------------
// Raw payloads: what no serde_json::Value can hold
// ---------------------------------------------------------------------------------------------

/// The module compiled once, called with raw payload bytes; `get_resource` is answered with
/// ServiceAccount `app` carrying an IRSA role, whatever is asked.
struct RawPolicy {
    pre: WasmtimeEngineProviderPre,
}

impl RawPolicy {
    fn new() -> Result<RawPolicy> {
        let wasm = std::fs::read(common::wasm())?;
        let pre = WasmtimeEngineProviderBuilder::new()
            .module_bytes(&wasm)
            .wasi_params(WasiParams::default())
            .build_pre()
            .context("cannot compile the policy module")?;
        Ok(RawPolicy { pre })
    }

    /// The guest's answer to `function` with `payload`, and the number of lookups it made.
    fn call(&self, function: &str, payload: &[u8]) -> Result<(Value, usize)> {
        let engine = self.pre.rehydrate(None).context("cannot instantiate")?;
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&calls);
        let callback: Box<HostCallback> =
            Box::new(move |_, binding, namespace, operation, _| {
                match (binding, namespace, operation) {
                    ("kubewarden", "tracing", _) => Ok(Vec::new()),
                    ("kubewarden", "kubernetes", "get_resource") => {
                        counter.fetch_add(1, Ordering::SeqCst);
                        Ok(
                            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {
                        "name": "app", "namespace": "team-a",
                        "annotations": {"eks.amazonaws.com/role-arn": ROLE}}})
                            .to_string()
                            .into_bytes(),
                        )
                    }
                    _ => Err(format!("{binding}/{namespace}/{operation} is not supported").into()),
                }
            });
        let host = WapcHost::new(Box::new(engine), Some(callback)).context("waPC init")?;
        let output = host
            .call(function, payload)
            .with_context(|| format!("guest function `{function}` failed (trap)"))?;
        let answer = serde_json::from_slice(&output).context("the guest answered invalid JSON")?;
        Ok((answer, calls.load(Ordering::SeqCst)))
    }
}

/// A validate payload whose pod carries `field` (raw JSON text) as an unknown field.
fn payload_with(field: &str) -> Vec<u8> {
    format!(
        r#"{{"settings": {{}}, "request": {{"uid": "raw", "kind": {{"group": "", "version": "v1", "kind": "Pod"}},
        "namespace": "team-a", "operation": "CREATE", "userInfo": {{"username": "alice"}},
        "object": {{"metadata": {{"name": "web-0"}}, "x-field": {field},
            "spec": {{"serviceAccountName": "app", "containers": [{{"name": "app"}}]}}}}}}}}"#
    )
    .into_bytes()
}

#[test]
fn raw_payloads_get_a_clear_answer() {
    let policy = RawPolicy::new().unwrap_or_else(|e| panic!("{e:#}"));
    let deep_arrays = format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_objects = format!("{}1{}", "{\"a\":".repeat(10_000), "}".repeat(10_000));
    let mut invalid_utf8 = payload_with("\"\u{1}\"");
    if let Some(at) = invalid_utf8.iter().position(|&b| b == 1) {
        invalid_utf8[at] = 0xff;
    }
    let mut with_bom = b"\xef\xbb\xbf".to_vec();
    with_bom.extend(payload_with("1"));
    let duplicate_keys = payload_with("1").into_iter().collect::<Vec<u8>>();
    let duplicate_keys = String::from_utf8(duplicate_keys)
        .unwrap_or_default()
        .replace(
            r#""serviceAccountName": "app""#,
            r#""serviceAccountName": "other", "serviceAccountName": "app""#,
        )
        .into_bytes();
    let cases: Vec<(&str, Vec<u8>, Expect)> = vec![
        (
            "nested-10000-levels-arrays",
            payload_with(&deep_arrays),
            Expect::Denied(400),
        ),
        (
            "nested-10000-levels-objects",
            payload_with(&deep_objects),
            Expect::Denied(400),
        ),
        (
            "lone-surrogate-escape",
            payload_with(r#""\udc80""#),
            Expect::Denied(400),
        ),
        (
            "lone-high-surrogate-escape",
            payload_with(r#""\ud800x""#),
            Expect::Denied(400),
        ),
        ("invalid-utf8-byte", invalid_utf8, Expect::Denied(400)),
        ("byte-order-mark", with_bom, Expect::Denied(400)),
        ("duplicate-keys", duplicate_keys, Expect::Mutated),
        (
            "nul-escapes",
            payload_with(r#""\u0000\u0000""#),
            Expect::Mutated,
        ),
        (
            "truncated",
            b"{\"request\": {".to_vec(),
            Expect::Denied(400),
        ),
        ("empty", Vec::new(), Expect::Denied(400)),
        ("null", b"null".to_vec(), Expect::Denied(400)),
        (
            "request-a-string",
            br#"{"request": "pod"}"#.to_vec(),
            Expect::Denied(400),
        ),
        (
            "trailing-garbage",
            [payload_with("1"), b"}{".to_vec()].concat(),
            Expect::Denied(400),
        ),
    ];
    let mut failures = Vec::new();
    eprintln!("{:<36} {:>12}  outcome", "raw case", "time");
    for (name, payload, expected) in cases {
        let started = Instant::now();
        match policy.call("validate", &payload) {
            Ok((answer, lookups)) => {
                let elapsed = started.elapsed();
                eprintln!(
                    "{name:<36} {elapsed:>12.3?}  {} ({lookups} lookups)",
                    summary(&answer)
                );
                if let Err(problem) = clear(&answer) {
                    failures.push(format!("{name}: {problem}"));
                }
                let actual = match answer["accepted"].as_bool() {
                    Some(true) if !answer["mutated_object"].is_null() => Expect::Mutated,
                    Some(true) => Expect::Accepted,
                    _ => Expect::Denied(answer["code"].as_u64().unwrap_or(0) as u16),
                };
                if actual != expected {
                    failures.push(format!(
                        "{name}: expected {expected:?}, got {}",
                        summary(&answer)
                    ));
                }
                if matches!(expected, Expect::Denied(_)) && lookups != 0 {
                    failures.push(format!("{name}: {lookups} lookups before a denial"));
                }
            }
            Err(error) => failures.push(format!("{name}: {error:#}")),
        }
    }
    // validate_settings with raw bytes too.
    for (name, payload) in [
        (
            "settings-nested-10000-levels",
            format!("{{\"x\": {deep_arrays}}}").into_bytes(),
        ),
        (
            "settings-invalid-utf8",
            b"{\"aws\": {\"region\": \"\xff\"}}".to_vec(),
        ),
        (
            "settings-lone-surrogate",
            br#"{"aws": {"region": "\udc80"}}"#.to_vec(),
        ),
        ("settings-truncated", b"{\"aws\":".to_vec()),
    ] {
        match policy.call("validate_settings", &payload) {
            Ok((answer, _)) if answer["valid"] == json!(false) && answer["message"].is_string() => {
                eprintln!(
                    "{name:<36} refused: {:.100}",
                    answer["message"].as_str().unwrap_or("")
                );
            }
            Ok((answer, _)) => failures.push(format!("{name}: {answer}")),
            Err(error) => failures.push(format!("{name}: {error:#}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The small hostile cases kept as fixtures have golden results that are acceptances, clear
/// denials (never a 500), or the engine's own refusal of a request it cannot parse.
#[test]
fn hostile_fixtures_have_clear_goldens() {
    let root = common::fixtures();
    let mut found = 0;
    for entry in std::fs::read_dir(&root).unwrap_or_else(|e| panic!("{}: {e}", root.display())) {
        let dir = entry.expect("a directory entry").path();
        let name = dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        if !name.starts_with("hostile-") {
            continue;
        }
        found += 1;
        assert!(dir.join("NOTES.md").is_file(), "{name}: no NOTES.md");
        let text = std::fs::read_to_string(dir.join("expected.json"))
            .unwrap_or_else(|e| panic!("{name}: expected.json: {e}"));
        let expected: Value = serde_json::from_str(&text).expect("expected.json is JSON");
        let code = expected.pointer("/status/code").and_then(Value::as_u64);
        let refused_by_engine = expected["requestRefused"].as_str().is_some_and(|m| {
            m.starts_with("cannot build AdmissionRequest object from given input: ")
        });
        assert!(
            expected["allowed"] == json!(true)
                || code.is_some_and(|c| (400..500).contains(&c))
                || refused_by_engine,
            "{name}: neither allowed, nor a 4xx denial, nor refused by the engine: {expected}"
        );
    }
    // Only meaningful on the repository's fixtures (FIXTURES may name another folder).
    if std::env::var_os("FIXTURES").is_none() {
        assert!(found >= 10, "only {found} fixtures/hostile-* cases");
    }
}
