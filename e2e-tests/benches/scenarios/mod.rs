//! The requests both benchmarks measure (`benches/policy.rs`, fresh instance per request as
//! policy-server runs a policy; `benches/kwctl.rs`, `kwctl bench` on one warm instance), built
//! once here so that both cost models see the same request bytes, settings and ServiceAccount.
//!
//! The peer is Kubewarden's own mutating pod policy (`capabilities-psp-policy`, typed k8s-openapi
//! structs), given as `PEER_WASM` (kubewarden/capabilities-psp-policy v1.0.8). It is not
//! context-aware and mutates every pod whose containers lack its default capabilities, so it runs
//! on our requests with its own settings: the same bytes through both policies.
//!
//! Relative paths in `PEER_WASM` and `KWCTL` are taken from the workspace root (where the
//! Makefile is), not from `e2e-tests/`, where cargo runs benchmarks.

// Each bench uses a different part of this module.
#![allow(dead_code)]

pub mod hollow;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use e2e_tests::{admission_request, optional_json, Fixture, HostCapabilities, Session};
use serde_json::{json, Value};
use workload_identity_policy::host::{service_account_request, ServiceAccountRef};

/// The role every AWS scenario's ServiceAccount carries.
pub const AWS_ROLE: &str = "arn:aws:iam::111122223333:role/payments-ledger";

/// The container counts of the growth series.
pub const SERIES: [usize; 4] = [1, 10, 100, 1000];

/// The row whose time is the fixed cost of an evaluation.
pub const INSTANCE_ONLY: &str = "instance only (ConfigMap DELETE)";
/// The same for a pod both policies leave alone.
pub const INSTANCE_POD: &str = "instance only (pod, nothing to do)";


/// Which table a scenario belongs to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Table {
    /// Side by side with the peer.
    Peer,
    /// Only ours (the earlier targets against the native JSON floor, and the growth series).
    Floor,
}

/// Target of a pod scenario: ours ≤ 0.75x the peer on the same request.
pub const POD_TARGET: f64 = 0.75;
/// Target of the instance-only evaluation: ours ≤ the peer's.
pub const INSTANCE_TARGET: f64 = 1.0;

/// What a scenario must do, checked once before timing.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Expect {
    /// Accepted unchanged.
    NoPatch,
    /// Accepted with a patch.
    Patch,
    /// Denied: the peer refuses what is not a pod (its immediate answer to a ConfigMap).
    Denied,
}

/// One request to evaluate.
pub struct Scenario {
    pub name: String,
    /// The AdmissionRequest (not the review).
    pub request: Value,
    /// Our settings.
    pub settings: Value,
    /// The ServiceAccount our lookup finds (`None`: no lookup is expected).
    pub service_account: Option<Value>,
    pub expect: Expect,
    pub table: Table,
    /// The ours/peer ratio to stay below, if any.
    pub target: Option<f64>,
    /// Whether ours runs it (the peer's own request is the peer's row).
    pub ours: bool,
    /// Whether the peer runs it, and what it must do.
    pub peer: Option<Expect>,
}

impl Scenario {
    /// Size of the request as sent (compact JSON of the AdmissionRequest).
    pub fn request_bytes(&self) -> usize {
        serde_json::to_vec(&self.request).map_or(0, |v| v.len())
    }

    /// The growth series rows (ours against the floor, and the peer).
    pub fn is_series(&self) -> bool {
        SERIES.iter().any(|&n| self.name == series_name(n))
    }

    /// What kwctl is given for one evaluation of this row: context-aware access, and a session
    /// answering our one lookup with the row's ServiceAccount (empty when it has none).
    pub fn capabilities(&self) -> Result<HostCapabilities> {
        let session = match &self.service_account {
            Some(sa) => Session::from_yaml(&session_yaml(&self.request, sa, 1)?)?,
            None => Session::default(),
        };
        Ok(HostCapabilities::replay(session))
    }
}

/// The peer module and its settings, if present.
pub struct Peer {
    pub wasm: PathBuf,
    pub settings: Value,
    /// The peer's own test request (a 1 KB pod).
    pub own_request: Option<Value>,
}

impl Peer {
    /// `PEER_WASM` (its `settings.json` and `request-pod.json` beside it, when there); the reason
    /// when it is not given or not a file.
    pub fn find(workspace: &Path) -> Result<Result<Peer, String>> {
        let Some(wasm) = std::env::var_os("PEER_WASM").filter(|p| !p.is_empty()) else {
            return Ok(Err(
                "PEER_WASM is not set (capabilities-psp-policy v1.0.8's module): the peer's rows are skipped"
                    .to_owned(),
            ));
        };
        let wasm = workspace.join(wasm);
        if !wasm.is_file() {
            return Ok(Err(format!(
                "no peer module at {} (set PEER_WASM): the peer's rows are skipped",
                wasm.display()
            )));
        }
        let dir = wasm.parent().unwrap_or(Path::new("."));
        let read = |file: &str| optional_json(&dir.join(file));
        // Without its settings file: the settings under which v1.0.8 mutates a pod.
        let settings = read("settings.json")?.unwrap_or_else(|| {
            json!({"allowed_capabilities": ["CHOWN", "KILL"],
                "default_add_capabilities": ["CHOWN"], "required_drop_capabilities": ["NET_ADMIN"]})
        });
        let own_request = read("request-pod.json")?
            .map(admission_request)
            .transpose()?;
        Ok(Ok(Peer {
            wasm,
            settings,
            own_request,
        }))
    }
}

pub fn series_name(containers: usize) -> String {
    format!(
        "AWS {containers} container{}",
        if containers == 1 { "" } else { "s" }
    )
}

/// Every scenario, in table order.
pub fn scenarios(workspace: &Path, peer: Option<&Peer>) -> Result<Vec<Scenario>> {
    let fixtures = workspace.join("fixtures");
    let read = |case: &str, file: &str| -> Result<Value> {
        let path = fixtures.join(case).join(file);
        optional_json(&path)?.with_context(|| format!("no {}", path.display()))
    };
    // A fixture as it is: its request, settings and the ServiceAccount its session answers.
    let fixture = |case: &str, expect: Expect, pod: bool| -> Result<Scenario> {
        let recorded = Fixture::load(&fixtures.join(case))?;
        let service_account = recorded
            .service_account()
            .with_context(|| format!("fixture {case}"))?;
        Ok(Scenario {
            name: case.to_string(),
            request: recorded.request()?,
            settings: recorded.settings,
            service_account,
            expect,
            table: Table::Peer,
            target: pod.then_some(POD_TARGET),
            ours: true,
            // The peer adds its capabilities to the pod template of a Deployment too.
            peer: Some(Expect::Patch),
        })
    };

    // A Deployment-created pod with one container, no serviceAccountName (ServiceAccount
    // `default` in `payments`).
    let pod = admission_request(read("aws-basic-default-sa", "request.json")?)?;
    let sa = |annotations: Value| {
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {
            "name": "default", "namespace": "payments",
            "uid": "2a9a25d5-8afb-5347-8f69-aa27a90bc33e", "resourceVersion": "628411",
            "annotations": annotations}})
    };
    let aws_sa = sa(json!({"eks.amazonaws.com/role-arn": AWS_ROLE}));
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
            name: INSTANCE_ONLY.into(),
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
            table: Table::Peer,
            target: Some(INSTANCE_TARGET),
            ours: true,
            // "Object should be one of these kinds: ..." at once.
            peer: Some(Expect::Denied),
        },
        // A pod neither policy has anything to do for: ours with every provider off, the peer
        // finding its capabilities already there.
        Scenario {
            name: INSTANCE_POD.into(),
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
            table: Table::Peer,
            target: Some(INSTANCE_TARGET),
            ours: true,
            peer: Some(Expect::NoPatch),
        },
        fixture("aws-basic-default-sa", Expect::Patch, true)?,
        fixture("both-providers", Expect::Patch, true)?,
        fixture("flyte-two-groups", Expect::Patch, true)?,
        fixture("caller-pod-create-stamped", Expect::Patch, true)?,
        Scenario {
            name: "AWS pod, 10 containers".into(),
            request: wide(10),
            settings: json!({}),
            service_account: Some(aws_sa.clone()),
            expect: Expect::Patch,
            table: Table::Peer,
            target: Some(POD_TARGET),
            ours: true,
            peer: Some(Expect::Patch),
        },
        // A Deployment: ours stamps its template, the peer sets the template's capabilities.
        fixture("caller-deployment-create-stamped", Expect::Patch, false)?,
    ];
    if let Some(own) = peer.and_then(|p| p.own_request.clone()) {
        list.push(Scenario {
            name: "the peer's own pod (request-pod.json)".into(),
            request: own,
            settings: json!({}),
            service_account: None,
            expect: Expect::NoPatch,
            table: Table::Peer,
            target: None,
            ours: false,
            peer: Some(Expect::Patch),
        });
    }

    // The earlier scenarios against the native floor.
    let mut every = pod.clone();
    every["object"]["metadata"]["labels"]["azure.workload.identity/use"] = json!("true");
    let every_sa = sa(json!({
        // fixtures/aws-basic-default-sa
        "eks.amazonaws.com/role-arn": AWS_ROLE,
        // fixtures/both-providers
        "workload-identity.stackit.cloud/service-account-email": "reports-7h2m9p@sa.stackit.cloud",
        "workload-identity.stackit.cloud/idp-token-endpoint": "https://accounts.stackit.cloud/oauth/v2/token",
        // fixtures/azure-basic-label-client-tenant
        "azure.workload.identity/client-id": "6f3c1b2a-8d4e-4f5a-9b6c-7d8e9f0a1b2c",
        "azure.workload.identity/tenant-id": "72f988bf-86f1-41af-91ab-2d7cd011db47",
        // fixtures/gcp-basic-provider-and-email
        "cloud.google.com/workload-identity-provider": "projects/418720553091/locations/global/workloadIdentityPools/onprem-k8s/providers/cluster-eu1",
        "cloud.google.com/service-account-email": "billing-exporter@acme-finance-prod.iam.gserviceaccount.com",
        // fixtures/custom-vault-jwt
        "vault.example.com/role": "payments-reader",
    }));
    let mut flyte = pod.clone();
    flyte["object"]["metadata"]["labels"]["inject-flyte-secrets"] = json!("true");
    let secrets = [
        r#"group: "db" key: "password" mount_requirement: ENV_VAR"#,
        r#"group: "db" key: "username" mount_requirement: ENV_VAR env_var: "DB_USER""#,
        r#"group: "api" key: "token" mount_requirement: FILE"#,
        r#"group: "api" key: "ca.crt" mount_requirement: FILE"#,
        "group: \"aws\"\nkey: \"credentials\"\nmount_requirement: ANY\n",
    ];
    for (i, secret) in secrets.iter().enumerate() {
        flyte["object"]["metadata"]["annotations"][format!("flyte.secrets/s{i}")] =
            json!(flyte_base32(secret.as_bytes()));
    }
    let floor = |name: &str, request: Value, settings: Value, account: Value, expect| Scenario {
        name: name.into(),
        request,
        settings,
        service_account: Some(account),
        expect,
        table: Table::Floor,
        target: None,
        ours: true,
        peer: None,
    };
    list.push(floor(
        "no identity",
        pod.clone(),
        json!({}),
        sa(json!({})),
        Expect::NoPatch,
    ));
    list.push(floor(
        "every provider",
        every,
        read("custom-vault-jwt", "settings.json")?,
        every_sa,
        Expect::Patch,
    ));
    list.push(floor(
        "Flyte 5 secrets",
        flyte,
        json!({}),
        sa(json!({})),
        Expect::Patch,
    ));
    for n in SERIES {
        let mut row = floor(
            &series_name(n),
            wide(n),
            json!({}),
            aws_sa.clone(),
            Expect::Patch,
        );
        // The peer grows with containers too: its growth is the reference for ours.
        row.peer = Some(Expect::Patch);
        list.push(row);
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

/// Flyte's encoding of a secret request: base32, alphabet `a-z1-6`, no padding.
fn flyte_base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz123456";
    let mut out = String::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
        buffer &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
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

/// The hollow guest (`hollow.rs`) of `scenario`, answering `answer` (ours' ValidationResponse)
/// after ours' lookup, in the bytes the policy sends ([`service_account_request`]).
pub fn hollow_module(scenario: &Scenario, answer: &Value) -> Result<Vec<u8>> {
    let lookup = match &scenario.service_account {
        Some(sa) => Some(serde_json::to_vec(&service_account_request(
            &service_account_ref(&scenario.request, sa)?,
        ))?),
        None => None,
    };
    hollow::module(&serde_json::to_vec(answer)?, lookup.as_deref())
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

/// `ours / peer` as `0.62x`, with the target's verdict for pod rows.
pub fn ratio(ours: Option<f64>, peer: Option<f64>, target: Option<f64>) -> String {
    match (ours, peer) {
        (Some(a), Some(b)) if b > 0.0 => {
            let r = a / b;
            match target {
                Some(t) if r <= t => format!("{r:.2}x ✓"),
                Some(_) => format!("{r:.2}x ✗"),
                None => format!("{r:.2}x"),
            }
        }
        _ => "-".into(),
    }
}
