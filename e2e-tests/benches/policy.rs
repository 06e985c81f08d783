//! What one admission costs: `policy.wasm` in the native host (wapc + wasmtime-provider, the
//! engines of Kubewarden's policy-evaluator) as policy-server runs it, against the same core run
//! natively and against the floor, parsing and re-serialising the same JSON natively.
//!
//! Per scenario, three criterion benchmarks (group = scenario):
//! - `wasm`: [`Policy::validate`] on a module compiled once: a fresh instance and waPC init per
//!   request, the payload encoded, the one `get_resource` answered by the host, the
//!   ValidationResponse decoded and the JSON patch computed, as policy-evaluator does;
//! - `native`: `workload_identity_policy::validate_payload_bytes` on the same payload bytes with an
//!   in-memory ServiceAccount lookup, and its response serialised (what the guest returns);
//! - `floor`: `serde_json::from_slice::<Value>` of the same payload bytes, then `to_vec`.
//!
//! Every request is also timed on its own (criterion's warm-up excluded), and after the run one
//! table is printed and written to `target/bench-table.md`: median and p95 per request, the ratios
//! wasm/native and native/floor, the growth per container and the size of the release module.
//! `make bench` runs this with a native release profile; see BENCHMARKS.md.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use criterion::{Criterion, SamplingMode};
use e2e_tests::{admission_request, HostCapabilities, Policy, Session};
use serde_json::{json, Value};
use workload_identity_policy::host::{Lookup, ServiceAccountRef};

/// Criterion's warm-up per benchmark; requests timed during it are left out of the table.
const WARM_UP: Duration = Duration::from_millis(300);
/// Criterion's measurement time per benchmark (30 benchmarks: about a minute in all).
const MEASUREMENT: Duration = Duration::from_millis(1500);
/// The size the release module must stay below.
const SIZE_TARGET_KIB: f64 = 512.0;
/// The container counts of the growth series.
const SERIES: [usize; 4] = [1, 10, 100, 1000];

/// The row whose wasm time is the fixed cost of an evaluation.
const INSTANCE_ONLY: &str = "instance only (ConfigMap DELETE)";

const AWS_ROLE: &str = "arn:aws:iam::111122223333:role/payments-ledger";

fn main() -> Result<()> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let wasm_path = e2e_tests::policy_wasm(&workspace)?;
    let wasm = std::fs::read(&wasm_path)
        .with_context(|| format!("cannot read {}", wasm_path.display()))?;
    let policy = Policy::from_bytes(&wasm)?;
    let scenarios = scenarios(&workspace.join("fixtures"))?;
    let prepared = scenarios
        .into_iter()
        .map(|s| Prepared::new(s, &policy))
        .collect::<Result<Vec<_>>>()?;

    let samples = Samples::default();
    let mut criterion = Criterion::default()
        .sample_size(20)
        .warm_up_time(WARM_UP)
        .measurement_time(MEASUREMENT)
        .nresamples(10_000)
        .without_plots()
        .configure_from_args();
    for case in &prepared {
        let mut group = criterion.benchmark_group(case.name.as_str());
        // One iteration of the 1,000-container pod takes milliseconds: flat sampling keeps every
        // benchmark within its measurement time.
        group.sampling_mode(SamplingMode::Flat);
        group.bench_function("wasm", |b| {
            b.iter_custom(|iters| {
                samples.time(&case.name, Measure::Wasm, iters, || case.wasm(&policy))
            })
        });
        group.bench_function("native", |b| {
            b.iter_custom(|iters| {
                samples.time(&case.name, Measure::Native, iters, || case.native())
            })
        });
        group.bench_function("floor", |b| {
            b.iter_custom(|iters| samples.time(&case.name, Measure::Floor, iters, || case.floor()))
        });
        group.finish();
    }
    criterion.final_summary();

    let table = table(&prepared, &samples, wasm.len());
    if table.is_empty() {
        return Ok(()); // `--list`, `--test` or a filter that matched nothing
    }
    println!("\n{table}");
    let out = workspace.join("target").join("bench-table.md");
    std::fs::write(&out, &table).with_context(|| format!("cannot write {}", out.display()))?;
    Ok(())
}

/// One request to evaluate: the AdmissionRequest, the settings, and the ServiceAccount the lookup
/// finds (`None`: the lookup fails, as when none exists).
struct Scenario {
    name: String,
    request: Value,
    settings: Value,
    service_account: Option<Value>,
    /// What the scenario is about, checked once before timing.
    expect: Expect,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Accepted unchanged.
    NoPatch,
    /// Accepted with a patch.
    Patch,
    /// The Flyte pod: patched once the Flyte secrets feature exists, unchanged before.
    Flyte,
}

fn scenarios(fixtures: &Path) -> Result<Vec<Scenario>> {
    let read = |case: &str, file: &str| -> Result<Value> {
        let path = fixtures.join(case).join(file);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
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
        },
        Scenario {
            name: "no identity".into(),
            request: pod.clone(),
            settings: json!({}),
            service_account: Some(sa(json!({}))),
            expect: Expect::NoPatch,
        },
        Scenario {
            name: "AWS pod".into(),
            request: pod.clone(),
            settings: json!({}),
            service_account: Some(aws_sa.clone()),
            expect: Expect::Patch,
        },
        Scenario {
            name: "every provider".into(),
            request: every,
            settings: read("custom-vault-jwt", "settings.json")?,
            service_account: Some(every_sa),
            expect: Expect::Patch,
        },
        Scenario {
            name: "caller Deployment".into(),
            request: admission_request(read("caller-deployment-create-stamped", "request.json")?)?,
            settings: read("caller-deployment-create-stamped", "settings.json")?,
            service_account: None,
            expect: Expect::Patch,
        },
        Scenario {
            name: "Flyte 5 secrets".into(),
            request: flyte,
            settings: json!({}),
            service_account: Some(sa(json!({}))),
            expect: Expect::Flyte,
        },
    ];
    for n in SERIES {
        let mut wide = pod.clone();
        let spec = &mut wide["object"]["spec"];
        spec["containers"] = (0..n).map(container).collect();
        spec["volumes"] = json!([{"name": "config", "configMap": {"name": "app-config"}}]);
        list.push(Scenario {
            name: series_name(n),
            request: wide,
            settings: json!({}),
            service_account: Some(aws_sa.clone()),
            expect: Expect::Patch,
        });
    }
    Ok(list)
}

fn series_name(containers: usize) -> String {
    format!(
        "AWS {containers} container{}",
        if containers == 1 { "" } else { "s" }
    )
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

/// The in-memory lookup of the native run.
struct MemoryLookup(Option<Value>);

impl Lookup for MemoryLookup {
    fn service_account(&self, sa: &ServiceAccountRef) -> Result<Value, String> {
        self.0
            .clone()
            .ok_or_else(|| format!("serviceaccounts \"{}\" not found", sa.name))
    }
}

/// A scenario with everything precomputed that policy-server would hold before the request.
struct Prepared {
    name: String,
    request: Value,
    settings: Value,
    capabilities: HostCapabilities,
    lookup: MemoryLookup,
    /// `{"request", "settings"}`: what the guest's `validate` receives.
    payload: Vec<u8>,
}

impl Prepared {
    /// Checks once, untimed, that wasm and native agree and that the scenario does what it says.
    fn new(scenario: Scenario, policy: &Policy) -> Result<Self> {
        let Scenario {
            mut name,
            request,
            settings,
            service_account,
            expect,
        } = scenario;
        let session = match &service_account {
            Some(sa) => Session::from_yaml(&session_yaml(&request, sa)?)?,
            None => Session::default(),
        };
        let payload = serde_json::to_vec(&json!({"request": request, "settings": settings}))?;
        let prepared = Self {
            name: String::new(),
            capabilities: HostCapabilities::replay(session),
            lookup: MemoryLookup(service_account),
            payload,
            request,
            settings,
        };
        ensure!(
            policy.validate_settings(&prepared.settings)?.valid,
            "{name}: settings refused"
        );
        let evaluation = prepared.wasm(policy)?;
        let native =
            workload_identity_policy::validate_payload(&prepared.payload, &prepared.lookup);
        ensure!(
            evaluation.validation == native,
            "{name}: wasm and native disagree:\n{}\n{native}",
            evaluation.validation
        );
        ensure!(evaluation.response.allowed, "{name}: denied: {native}");
        if let Some(warnings) = &evaluation.response.warnings {
            eprintln!("{name}: warnings {warnings:?}");
        }
        let patched = evaluation.response.patch.is_some();
        match expect {
            Expect::NoPatch => ensure!(!patched, "{name}: unexpected patch"),
            Expect::Patch => ensure!(patched, "{name}: no patch"),
            Expect::Flyte if !patched => name.push_str(" (no-op: no Flyte support yet)"),
            Expect::Flyte => {}
        }
        Ok(Self { name, ..prepared })
    }

    fn wasm(&self, policy: &Policy) -> Result<e2e_tests::Evaluation> {
        policy.validate(&self.request, &self.settings, &self.capabilities)
    }

    /// What the guest hands back: the response bytes.
    fn native(&self) -> Vec<u8> {
        workload_identity_policy::validate_payload_bytes(&self.payload, &self.lookup)
    }

    fn floor(&self) -> Vec<u8> {
        let value: Value = serde_json::from_slice(&self.payload).unwrap_or_default();
        serde_json::to_vec(&value).unwrap_or_default()
    }
}

/// A kwctl replay session answering the pod's ServiceAccount lookup.
fn session_yaml(request: &Value, sa: &Value) -> Result<String> {
    let name = sa["metadata"]["name"].as_str().context("SA without name")?;
    let namespace = request["namespace"]
        .as_str()
        .context("request without namespace")?;
    let payload = serde_json::to_string(sa)?.replace('\'', "''");
    Ok(format!(
        "- type: Exchange\n  request: |\n    !KubernetesGetResource\n    api_version: v1\n    \
         kind: ServiceAccount\n    name: {name}\n    namespace: {namespace}\n    \
         disable_cache: false\n  response:\n    type: Success\n    payload: '{payload}'\n"
    ))
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Measure {
    Wasm,
    Native,
    Floor,
}

/// Per-request times in nanoseconds, per (scenario, measure), warm-up excluded.
#[derive(Default)]
struct Samples {
    runs: RefCell<BTreeMap<(String, Measure), Run>>,
}

#[derive(Default)]
struct Run {
    /// Wall time spent in this benchmark so far: criterion warms up until it exceeds WARM_UP.
    elapsed: Duration,
    nanos: Vec<u64>,
}

impl Samples {
    /// Runs `request` `iters` times, timing each; returns the total for criterion.
    fn time<T>(
        &self,
        scenario: &str,
        measure: Measure,
        iters: u64,
        mut request: impl FnMut() -> T,
    ) -> Duration {
        let started = Instant::now();
        let mut nanos = Vec::with_capacity(usize::try_from(iters).unwrap_or(0));
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            let start = Instant::now();
            black_box(request());
            let took = start.elapsed();
            total += took;
            nanos.push(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX));
        }
        let mut runs = self.runs.borrow_mut();
        let run = runs.entry((scenario.to_owned(), measure)).or_default();
        // Criterion's warm-up ends with the call that takes its elapsed time past WARM_UP; its
        // clock includes a little more than ours, so no warm-up call is ever counted.
        if run.elapsed > WARM_UP {
            run.nanos.extend(nanos);
        }
        run.elapsed += started.elapsed();
        total
    }

    /// (median, p95) in nanoseconds.
    fn stats(&self, scenario: &str, measure: Measure) -> Option<(f64, f64)> {
        let mut runs = self.runs.borrow_mut();
        let nanos = &mut runs.get_mut(&(scenario.to_owned(), measure))?.nanos;
        if nanos.is_empty() {
            return None;
        }
        nanos.sort_unstable();
        let at = |q: f64| nanos[((nanos.len() - 1) as f64 * q).round() as usize] as f64;
        Some((at(0.5), at(0.95)))
    }
}

fn table(prepared: &[Prepared], samples: &Samples, wasm_bytes: usize) -> String {
    let mut out = String::new();
    let mut medians: BTreeMap<(&str, Measure), f64> = BTreeMap::new();
    let mut rows = 0;
    let _ = writeln!(
        out,
        "| scenario | wasm median | wasm p95 | native median | floor median | wasm/native | native/floor |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|");
    for case in prepared {
        let wasm = samples.stats(&case.name, Measure::Wasm);
        let native = samples.stats(&case.name, Measure::Native);
        let floor = samples.stats(&case.name, Measure::Floor);
        if wasm.is_none() && native.is_none() && floor.is_none() {
            continue;
        }
        rows += 1;
        let name = case.name.as_str();
        for (measure, stats) in [
            (Measure::Wasm, wasm),
            (Measure::Native, native),
            (Measure::Floor, floor),
        ] {
            if let Some((median, _)) = stats {
                medians.insert((name, measure), median);
            }
        }
        let time = |s: Option<(f64, f64)>, p95: bool| {
            s.map_or("-".into(), |(m, p)| human(if p95 { p } else { m }))
        };
        let ratio = |a: Option<(f64, f64)>, b: Option<(f64, f64)>| match (a, b) {
            (Some((a, _)), Some((b, _))) if b > 0.0 => format!("{:.1}x", a / b),
            _ => "-".into(),
        };
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {} | {} | {} |",
            time(wasm, false),
            time(wasm, true),
            time(native, false),
            time(floor, false),
            ratio(wasm, native),
            ratio(native, floor),
        );
    }
    if rows == 0 {
        return String::new();
    }

    let _ = writeln!(out);
    let names: Vec<String> = SERIES.iter().map(|&n| series_name(n)).collect();
    let growth = |measure: Measure| -> Option<(f64, f64)> {
        let t: Vec<f64> = names
            .iter()
            .map(|n| medians.get(&(n.as_str(), measure)).copied())
            .collect::<Option<_>>()?;
        let (n1, n10, n100, n1000) = (
            SERIES[0] as f64,
            SERIES[1] as f64,
            SERIES[2] as f64,
            SERIES[3] as f64,
        );
        let per_container = (t[3] - t[0]) / (n1000 - n1);
        let low = (t[2] - t[1]) / (n100 - n10);
        let high = (t[3] - t[2]) / (n1000 - n100);
        Some((per_container, high / low))
    };
    let mut linearities = Vec::new();
    let mut line = String::from("Growth per extra container (AWS pod, 1 → 1,000 containers):");
    for (label, measure) in [
        ("wasm", Measure::Wasm),
        ("native", Measure::Native),
        ("floor", Measure::Floor),
    ] {
        if let Some((per, linearity)) = growth(measure) {
            let _ = write!(line, " {label} {},", human(per));
            linearities.push((label, linearity));
        }
    }
    if !linearities.is_empty() {
        let _ = writeln!(out, "{}.", line.trim_end_matches(','));
        // The floor itself grows faster than linearly on large pods (allocator
        // and cache effects of a 0.5 MB document): judge the policy against it.
        let floor = linearities
            .iter()
            .find(|(label, _)| *label == "floor")
            .map_or(1.0, |(_, l)| l.max(1.0));
        let worst = linearities
            .iter()
            .filter(|(label, _)| *label != "floor")
            .map(|(_, l)| l / floor)
            .fold(0.0_f64, f64::max);
        let verdict = if worst <= 1.5 {
            "linear relative to the floor"
        } else if worst <= 3.0 {
            "mildly super-linear relative to the floor, no quadratic term"
        } else {
            "SUPER-LINEAR relative to the floor: look for a quadratic scan"
        };
        let shown: Vec<String> = linearities
            .iter()
            .map(|(label, l)| format!("{label} {l:.2}"))
            .collect();
        let _ = writeln!(
            out,
            "Linearity, per-container cost 100→1,000 ÷ 10→100 (1 = linear, ~10 = quadratic): {}; worst policy ÷ floor {worst:.2} → {verdict}.",
            shown.join(", "),
        );
    }
    let aws = |m| medians.get(&("AWS pod", m)).copied();
    if let (Some(wasm), Some(native), Some(floor)) = (
        aws(Measure::Wasm),
        aws(Measure::Native),
        aws(Measure::Floor),
    ) {
        let _ = write!(
            out,
            "Typical AWS pod against the floor (target ≤ 3x): native core {:.2}x, whole policy in wasm {:.1}x",
            native / floor,
            wasm / floor
        );
        match medians.get(&(INSTANCE_ONLY, Measure::Wasm)) {
            Some(fixed) => {
                let _ = writeln!(
                    out,
                    " ({:.1}x without the {} of an evaluation that does nothing).",
                    (wasm - fixed) / floor,
                    human(*fixed)
                );
            }
            None => {
                let _ = writeln!(out, ".");
            }
        }
    }
    let kib = wasm_bytes as f64 / 1024.0;
    let _ = writeln!(
        out,
        "Release policy.wasm: {kib:.1} KiB ({wasm_bytes} bytes) against the {SIZE_TARGET_KIB:.0} KiB target → {}.",
        if kib < SIZE_TARGET_KIB { "below" } else { "ABOVE" }
    );
    out
}

/// 1.23 µs, 45.6 µs, 1.23 ms.
fn human(nanos: f64) -> String {
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
