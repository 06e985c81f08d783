//! The requests both benchmarks measure (`benches/policy.rs`, a fresh instance per request as
//! policy-server runs a policy; `benches/kwctl.rs`, `kwctl bench` on one warm instance), built
//! once here so that both cost models see the same request bytes, settings and ServiceAccount,
//! and the modules they compare:
//!
//! - ours: `POLICY_WASM` (default: built like the tests, `target/e2e-wasm`);
//! - the baseline: `BASELINE_WASM`, another build of this policy (e.g. the previous release,
//!   `make baseline.wasm BASELINE_REF=<git ref>`), run on exactly what ours is given;
//! - the peer: `PEER_WASM`, Kubewarden's own mutating pod policy (`capabilities-psp-policy`
//!   v1.0.8, typed k8s-openapi structs). It is not context-aware and mutates every pod whose
//!   containers lack its default capabilities, so it runs on our requests with its own settings
//!   (`settings.json` beside the module, or the ones below): the same bytes through both policies.
//!
//! Relative paths in `POLICY_WASM`, `BASELINE_WASM`, `PEER_WASM` and `KWCTL` are taken from the
//! workspace root (where the Makefile is), not from `e2e-tests/`, where cargo runs benchmarks.

// Each bench uses a different part of this module.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use e2e_tests::{admission_request, optional_json, Fixture, HostCapabilities, Session};
use serde_json::{json, Value};
use workload_identity_policy::host::ServiceAccountRef;

/// The role every AWS scenario's ServiceAccount carries.
pub const AWS_ROLE: &str = "arn:aws:iam::111122223333:role/payments-ledger";

/// The container counts of the growth series.
pub const SERIES: [usize; 4] = [1, 10, 100, 1000];

/// What a module must do with a scenario, checked once before timing.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Expect {
    /// Accepted unchanged.
    NoPatch,
    /// Accepted with a patch.
    Patch,
    /// Denied: the peer refuses what is not a pod (its immediate answer to a ConfigMap).
    Denied,
}

impl Expect {
    /// What an answer was: allowed or not, patched or not.
    pub fn of(allowed: bool, patched: bool) -> Self {
        match (allowed, patched) {
            (false, _) => Expect::Denied,
            (true, true) => Expect::Patch,
            (true, false) => Expect::NoPatch,
        }
    }
}

impl std::fmt::Display for Expect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Expect::NoPatch => "allowed unchanged",
            Expect::Patch => "allowed with a patch",
            Expect::Denied => "denied",
        })
    }
}

/// One request to evaluate.
pub struct Scenario {
    pub name: String,
    /// The AdmissionRequest (not the review).
    pub request: Value,
    /// Our settings (the baseline's too).
    pub settings: Value,
    /// The ServiceAccount our lookup finds (`None`: no lookup is expected).
    pub service_account: Option<Value>,
    /// What ours must answer.
    pub expect: Expect,
    /// What the peer must answer, with its own settings.
    pub peer: Expect,
    /// The number of containers, on the rows of the growth series.
    pub containers: Option<usize>,
}

impl Scenario {
    /// What the policy is given for one evaluation of this row: context-aware access, and a
    /// session answering our one lookup with the row's ServiceAccount (empty when it has none).
    pub fn capabilities(&self) -> Result<HostCapabilities> {
        let session = match &self.service_account {
            Some(sa) => Session::from_yaml(&session_yaml(&self.request, sa, 1)?)?,
            None => Session::default(),
        };
        Ok(HostCapabilities::replay(session))
    }
}

/// A module named by an environment variable, or why there is none (the notice to print).
pub fn module_from_env(workspace: &Path, variable: &str, what: &str) -> Result<PathBuf, String> {
    let Some(path) = std::env::var_os(variable).filter(|p| !p.is_empty()) else {
        return Err(format!(
            "{variable} is not set ({what}): its columns show -"
        ));
    };
    let path = workspace.join(path);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{variable}: no module at {}: its columns show -",
            path.display()
        ))
    }
}

/// The baseline module (`BASELINE_WASM`), or the notice to print.
pub fn baseline(workspace: &Path) -> Result<PathBuf, String> {
    module_from_env(
        workspace,
        "BASELINE_WASM",
        "e.g. the previous release: make bench BASELINE_REF=<git ref>",
    )
}

/// The peer module and its settings.
pub struct Peer {
    pub wasm: PathBuf,
    pub settings: Value,
}

impl Peer {
    /// `PEER_WASM`, with its `settings.json` beside it when there; `Ok(Err(notice))` when it is not
    /// given or not a file.
    pub fn find(workspace: &Path) -> Result<Result<Peer, String>> {
        let wasm = match module_from_env(
            workspace,
            "PEER_WASM",
            "capabilities-psp-policy v1.0.8's module",
        ) {
            Ok(wasm) => wasm,
            Err(notice) => return Ok(Err(notice)),
        };
        let dir = wasm.parent().unwrap_or(Path::new("."));
        // Without its settings file: the settings under which v1.0.8 mutates a pod.
        let settings = optional_json(&dir.join("settings.json"))?.unwrap_or_else(|| {
            json!({"allowed_capabilities": ["CHOWN", "KILL"],
                "default_add_capabilities": ["CHOWN"], "required_drop_capabilities": ["NET_ADMIN"]})
        });
        Ok(Ok(Peer { wasm, settings }))
    }
}

pub fn series_name(containers: usize) -> String {
    format!(
        "AWS pod, {containers} container{}",
        if containers == 1 { "" } else { "s" }
    )
}

/// Every scenario, in table order.
pub fn scenarios(workspace: &Path) -> Result<Vec<Scenario>> {
    let fixtures = workspace.join("fixtures");
    // A fixture as it is: its request, settings and the ServiceAccount its session answers.
    let fixture = |case: &str| -> Result<Scenario> {
        let recorded = Fixture::load(&fixtures.join(case))?;
        let service_account = recorded
            .service_account()
            .with_context(|| format!("fixture {case}"))?;
        Ok(Scenario {
            name: case.to_string(),
            request: recorded.request()?,
            settings: recorded.settings,
            service_account,
            expect: Expect::Patch,
            // The peer adds its capabilities to the pod template of a Deployment too.
            peer: Expect::Patch,
            containers: None,
        })
    };

    // A Deployment-created pod with one container, no serviceAccountName (ServiceAccount
    // `default` in `payments`).
    let pod = {
        let path = fixtures.join("aws-basic-default-sa").join("request.json");
        admission_request(optional_json(&path)?.with_context(|| format!("no {}", path.display()))?)?
    };
    let sa = |annotations: Value| {
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {
            "name": "default", "namespace": "payments",
            "uid": "2a9a25d5-8afb-5347-8f69-aa27a90bc33e", "resourceVersion": "628411",
            "annotations": annotations}})
    };
    let wide = |n: usize| {
        let mut wide = pod.clone();
        let spec = &mut wide["object"]["spec"];
        spec["containers"] = (0..n).map(container).collect();
        spec["volumes"] = json!([{"name": "config", "configMap": {"name": "app-config"}}]);
        wide
    };

    let mut list = vec![
        // Nothing to do (not a Pod): the fixed cost of an evaluation, mostly the fresh instance.
        Scenario {
            name: "instance only (ConfigMap DELETE)".into(),
            request: json!({
                "uid": "0d6e1b52-0d0c-4a4e-9a51-1f2b3c4d5e6f",
                "kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
                "resource": {"group": "", "version": "v1", "resource": "configmaps"},
                "name": "settings", "namespace": "payments", "operation": "DELETE",
                "userInfo": {"username": "jane.doe"}, "object": null, "oldObject": null,
            }),
            settings: json!({}),
            service_account: None,
            expect: Expect::NoPatch,
            // "Object should be one of these kinds: ..." at once.
            peer: Expect::Denied,
            containers: None,
        },
        // A pod neither policy has anything to do for: ours with every provider off, the peer
        // finding its capabilities already there.
        Scenario {
            name: "instance only (pod, nothing to do)".into(),
            request: json!({
                "uid": "3c9f6a2e-5b7d-4e1a-8f0c-2d4b6a8c0e13",
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "namespace": "payments", "operation": "CREATE",
                "userInfo": {"username": "jane.doe"},
                "object": {"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": "idle", "namespace": "payments"},
                    "spec": {"containers": [{"name": "app", "image": "busybox",
                        "securityContext": {"capabilities": {"add": ["CHOWN"], "drop": ["NET_ADMIN"]}}}]}},
                "oldObject": null,
            }),
            settings: json!({"aws": {"enabled": false}, "stackit": {"enabled": false},
                "gcp": {"enabled": false}, "azure": {"enabled": false}}),
            service_account: None,
            expect: Expect::NoPatch,
            peer: Expect::NoPatch,
            containers: None,
        },
        // The pod most of a cluster creates: its ServiceAccount asks for no identity, so ours
        // looks it up and leaves the pod alone.
        Scenario {
            name: "pod without identity (lookup, no change)".into(),
            request: pod.clone(),
            settings: json!({}),
            service_account: Some(sa(json!({}))),
            expect: Expect::NoPatch,
            peer: Expect::Patch,
            containers: None,
        },
        fixture("aws-basic-default-sa")?,
        fixture("both-providers")?,
        fixture("flyte-two-groups")?,
        fixture("caller-pod-create-stamped")?,
        // A Deployment: ours stamps its template, the peer sets the template's capabilities.
        fixture("caller-deployment-create-stamped")?,
    ];
    // The growth series: the AWS pod with n typical containers.
    let aws_sa = sa(json!({"eks.amazonaws.com/role-arn": AWS_ROLE}));
    for n in SERIES {
        list.push(Scenario {
            name: series_name(n),
            request: wide(n),
            settings: json!({}),
            service_account: Some(aws_sa.clone()),
            expect: Expect::Patch,
            peer: Expect::Patch,
            containers: Some(n),
        });
    }
    Ok(list)
}

/// A typical application container: two env vars, one mount, resources.
fn container(i: usize) -> Value {
    json!({
        "name": format!("app-{i}"),
        "image": "ghcr.io/example/ledger:2.4.1",
        "env": [{"name": "LOG_LEVEL", "value": "info"}, {"name": "PORT", "value": "8080"}],
        "ports": [{"containerPort": 8080, "name": "http", "protocol": "TCP"}],
        "resources": {"limits": {"memory": "256Mi"}, "requests": {"cpu": "100m", "memory": "128Mi"}},
        "volumeMounts": [{"name": "config", "mountPath": "/etc/app", "readOnly": true}],
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "imagePullPolicy": "IfNotPresent",
    })
}

/// The ServiceAccount ours looks up for `request`: `sa`'s name in the request's namespace.
fn service_account_ref(request: &Value, sa: &Value) -> Result<ServiceAccountRef> {
    Ok(ServiceAccountRef {
        name: sa["metadata"]["name"]
            .as_str()
            .context("SA without name")?
            .to_string(),
        namespace: request["namespace"]
            .as_str()
            .context("request without namespace")?
            .to_string(),
    })
}

/// A kwctl replay session answering the ServiceAccount lookup of `request` `times` times (YAML
/// aliases keep a session of 100,000 answers small).
pub fn session_yaml(request: &Value, sa: &Value, times: usize) -> Result<String> {
    let ServiceAccountRef { name, namespace } = service_account_ref(request, sa)?;
    let payload = serde_json::to_string(sa)?.replace('\'', "''");
    let mut yaml = format!(
        "- &answer\n  type: Exchange\n  request: |\n    !KubernetesGetResource\n    api_version: v1\n    \
         kind: ServiceAccount\n    name: {name}\n    namespace: {namespace}\n    \
         disable_cache: false\n  response:\n    type: Success\n    payload: '{payload}'\n"
    );
    for _ in 1..times {
        yaml.push_str("- *answer\n");
    }
    Ok(yaml)
}

/// 1.23 µs, 45.6 µs, 1.23 ms.
pub fn human(nanos: f64) -> String {
    if nanos < 1_000.0 {
        format!("{nanos:.0} ns")
    } else if nanos < 10_000.0 {
        format!("{:.2} µs", nanos / 1e3)
    } else if nanos < 1_000_000.0 {
        format!("{:.1} µs", nanos / 1e3)
    } else {
        format!("{:.2} ms", nanos / 1e6)
    }
}

/// `a / b` as `0.62x`, or `-` when either is missing.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "-".into(),
    }
}

/// `1.5 KiB`.
pub fn kib(bytes: u64) -> String {
    format!("{:.1} KiB", bytes as f64 / 1024.0)
}

/// The machine and toolchain a run is on, for the page: date, cores, CPU model, rustc.
pub fn machine() -> String {
    let output = |program: &str, args: &[&str]| {
        std::process::Command::new(program)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|| "-".into())
    };
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "-".into());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    format!(
        "{}, {cores} cores ({cpu}), {}",
        output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        output(&rustc, &["--version"]),
    )
}
