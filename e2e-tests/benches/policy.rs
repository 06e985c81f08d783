//! What one admission costs as policy-server pays it (a fresh instance per request), side by side
//! with Kubewarden's own mutating pod policy on the same request bytes, and against the same core
//! run natively and the native JSON floor.
//!
//! Every module is compiled as policy-server compiles it by default, with its timeout protection
//! (epoch interruption, `e2e_tests::POLICY_SERVER_TIMEOUT`): the checks it compiles into
//! the guest's code are part of what a request costs in production.
//!
//! Per scenario (`scenarios/mod.rs`), up to four criterion benchmarks (group = scenario):
//! - `ours`: `policy.wasm` through [`Policy::validate`] on a module compiled once: a fresh
//!   instance and waPC init per request, the payload encoded, the one `get_resource` answered by
//!   the host, the ValidationResponse decoded and the JSON patch computed, as policy-evaluator
//!   does;
//! - `peer`: the same for the peer module (`PEER_WASM`; without it its rows are skipped with a
//!   notice) with its own settings;
//! - `native`: `workload_identity_policy::validate_payload_bytes` on our payload bytes with an
//!   in-memory ServiceAccount lookup (what the guest computes, natively);
//! - `floor`: `serde_json::from_slice::<Value>` of the same payload bytes, then `to_vec`;
//! - `hollow`: on the rows beside the peer, a module that does no policy work but costs the host
//!   what ours does (payload, our lookup, our exact answer; `scenarios/hollow.rs`): the time no
//!   guest giving our answer can beat, so `hollow/peer` is the best ratio any guest could reach;
//! - `doc-floor`: on the same rows, the document-floor guest (`DOC_FLOOR_WASM`, built by
//!   `make doc-floor.wasm` from `e2e-tests/guests/doc_floor.rs`; without it the column shows `-`):
//!   built like ours, it only reads the pod into a `serde_json::Value` and hands it back
//!   unchanged, with no lookup: less than any guest that reads the pod into a document can cost.
//!
//! Every request is also timed on its own (criterion's warm-up excluded), and after the run two
//! tables are printed and written to `target/bench-table.md`: ours against the peer (median, p95,
//! ratio and target), then ours against native and the floor, with the growth per container and
//! the module sizes. `make bench` runs this with a native release profile on the shipped
//! `policy.wasm`; see BENCHMARKS.md.

#[path = "scenarios/pages.rs"]
mod pages;
mod scenarios;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use criterion::{Criterion, SamplingMode};
use e2e_tests::{HostCapabilities, Policy};
use scenarios::{human, ratio, Expect, Peer, Scenario, Table, INSTANCE_ONLY, SERIES};
use serde_json::{json, Value};
use workload_identity_policy::host::{Lookup, ServiceAccountRef};

/// Criterion's warm-up per benchmark; requests timed during it are left out of the table.
const WARM_UP: Duration = Duration::from_millis(300);
/// Criterion's measurement time per benchmark (about 60 benchmarks: two minutes in all).
const MEASUREMENT: Duration = Duration::from_millis(1500);
/// The size the release module must stay below (also `tests/size.rs`).
const SIZE_TARGET_KIB: f64 = 768.0;

fn main() -> Result<()> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let wasm_path = e2e_tests::policy_wasm(&workspace)?;
    let ours = Module::load(&wasm_path)?;
    let peer = match Peer::find(&workspace)? {
        Ok(peer) => {
            let module = Module::load(&peer.wasm)?;
            Some((peer, module))
        }
        Err(notice) => {
            eprintln!("NOTICE: {notice}");
            println!("NOTICE: {notice}");
            None
        }
    };
    let doc_floor = match std::env::var_os("DOC_FLOOR_WASM").filter(|p| !p.is_empty()) {
        Some(path) => Some(Module::load(Path::new(&path))?),
        None => {
            let notice =
                "DOC_FLOOR_WASM is not set (make doc-floor.wasm builds it): no doc-floor column";
            eprintln!("NOTICE: {notice}");
            println!("NOTICE: {notice}");
            None
        }
    };
    let modules = Modules {
        ours: &ours,
        peer: peer.as_ref().map(|(p, module)| (p, module)),
        doc_floor: doc_floor.as_ref(),
    };
    let scenarios = scenarios::scenarios(&workspace, peer.as_ref().map(|(p, _)| p))?;
    let prepared = scenarios
        .into_iter()
        .map(|s| Prepared::new(s, &modules))
        .collect::<Result<Vec<_>>>()?;

    if let Some(spec) = std::env::var("BENCH_LOOP").ok().filter(|s| !s.is_empty()) {
        return bench_loop(&spec, &prepared, &modules);
    }

    let samples = Samples::default();
    let mut criterion = Criterion::default()
        .sample_size(20)
        .warm_up_time(WARM_UP)
        .measurement_time(MEASUREMENT)
        .nresamples(10_000)
        .without_plots()
        .configure_from_args();
    for case in &prepared {
        let name = case.scenario.name.as_str();
        let mut group = criterion.benchmark_group(name);
        // One iteration of the 1,000-container pod takes milliseconds: flat sampling keeps every
        // benchmark within its measurement time.
        group.sampling_mode(SamplingMode::Flat);
        if case.scenario.ours {
            group.bench_function("ours", |b| {
                b.iter_custom(|iters| {
                    samples.time(name, Measure::Ours, iters, || case.ours(&ours.policy))
                })
            });
        }
        if let Some(hollow) = &case.hollow {
            group.bench_function("hollow", |b| {
                b.iter_custom(|iters| {
                    samples.time(name, Measure::Hollow, iters, || case.ours(hollow))
                })
            });
        }
        if let (true, Some(Module { policy: floor, .. })) = (case.doc_floor, modules.doc_floor) {
            group.bench_function("doc-floor", |b| {
                b.iter_custom(|iters| {
                    samples.time(name, Measure::DocFloor, iters, || case.ours(floor))
                })
            });
        }
        if let (Some(peer), Some((_, Module { policy, .. }))) = (&case.peer, modules.peer) {
            group.bench_function("peer", |b| {
                b.iter_custom(|iters| {
                    samples.time(name, Measure::Peer, iters, || peer.evaluate(policy))
                })
            });
        }
        if case.scenario.ours {
            group.bench_function("native", |b| {
                b.iter_custom(|iters| samples.time(name, Measure::Native, iters, || case.native()))
            });
            group.bench_function("floor", |b| {
                b.iter_custom(|iters| samples.time(name, Measure::Floor, iters, || case.floor()))
            });
        }
        group.finish();
    }
    criterion.final_summary();

    let sizes = Sizes {
        ours: ours.bytes.len(),
        ours_path: wasm_path.display().to_string(),
        peer: peer.as_ref().map(|(_, module)| module.bytes.len()),
    };
    let table = tables(&prepared, &samples, &sizes);
    if table.is_empty() {
        return Ok(()); // `--list`, `--test` or a filter that matched nothing
    }
    println!("\n{table}");
    let out = workspace.join("target").join("bench-table.md");
    std::fs::write(&out, &table).with_context(|| format!("cannot write {}", out.display()))?;
    Ok(())
}

/// `BENCH_LOOP=<scenario>:<measure>:<n>`: runs one measure `n` times and nothing else, for a
/// profiler (`valgrind --tool=callgrind` counts instructions without the noise of a shared
/// machine: run it with two values of `n` and divide the difference). Measures: `ours`, `peer`,
/// `native`, `floor`, `hollow`, `doc-floor`, and `ours-warm` / `peer-warm` / `doc-floor-warm`:
/// the guest's `validate` on ONE instance reused for every call (kwctl bench's cost model,
/// without its host's own work); `ours-pages` / `peer-pages` / `doc-floor-pages`: the pages of
/// linear memory one fresh instance writes for the request (`scenarios/pages.rs`);
/// `<ours|path to a module>-profile`: `n` fresh evaluations with wasmtime's perf map on, for
/// `perf record` (a module with its name section names the guest's functions);
/// `<path>.wasm` / `<path>.wasm-warm`: another guest that gives our answer ([`other_guest`]).
fn bench_loop(spec: &str, prepared: &[Prepared], modules: &Modules) -> Result<()> {
    let mut parts = spec.rsplitn(3, ':');
    let (Some(n), Some(measure), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
        anyhow::bail!("BENCH_LOOP={spec}: expected <scenario>:<measure>:<iterations>");
    };
    let n: usize = n.parse().context("BENCH_LOOP iterations")?;
    let case = prepared
        .iter()
        .find(|c| c.scenario.name == name)
        .with_context(|| format!("BENCH_LOOP: no scenario {name:?}"))?;
    if let Some(who) = measure.strip_suffix("-profile") {
        let account = case.scenario.service_account.as_ref();
        let wasm = match who {
            "ours" => modules.ours.bytes.clone(),
            other => std::fs::read(other).with_context(|| format!("BENCH_LOOP: {other}"))?,
        };
        return pages::profile(&wasm, &case.payload, account, n);
    }
    if let Some(who) = measure.strip_suffix("-pages") {
        let account = case.scenario.service_account.as_ref();
        return match who {
            "ours" => pages::report(&modules.ours.bytes, &case.payload, account),
            "peer" => {
                let (module, payload) = peer_input(case, modules)?;
                pages::report(&module.bytes, &payload, None)
            }
            "doc-floor" => {
                let module = modules
                    .doc_floor
                    .context("BENCH_LOOP: DOC_FLOOR_WASM is not set")?;
                pages::report(&module.bytes, &case.payload, None)
            }
            other => anyhow::bail!("BENCH_LOOP: unknown measure {other:?}-pages"),
        };
    }
    if let Some(path) = measure.strip_suffix(".wasm").map(|p| format!("{p}.wasm")) {
        return other_guest(case, &path, false, n);
    }
    if let Some(path) = measure
        .strip_suffix(".wasm-warm")
        .map(|p| format!("{p}.wasm"))
    {
        return other_guest(case, &path, true, n);
    }
    if let Some(who) = measure.strip_suffix("-warm") {
        return match who {
            "ours" => warm_loop(
                &modules.ours.bytes,
                &case.payload,
                case.scenario.service_account.clone(),
                n,
            ),
            "peer" => {
                let (module, payload) = peer_input(case, modules)?;
                warm_loop(&module.bytes, &payload, None, n)
            }
            "doc-floor" => {
                let module = modules
                    .doc_floor
                    .context("BENCH_LOOP: DOC_FLOOR_WASM is not set")?;
                warm_loop(&module.bytes, &case.payload, None, n)
            }
            other => anyhow::bail!("BENCH_LOOP: unknown measure {other:?}-warm"),
        };
    }
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        match measure {
            "ours" => drop(black_box(case.ours(&modules.ours.policy)?)),
            "peer" => {
                let (Some(peer), Some((_, module))) = (&case.peer, modules.peer) else {
                    anyhow::bail!("BENCH_LOOP: no peer for {name:?}");
                };
                drop(black_box(peer.evaluate(&module.policy)?));
            }
            "native" => drop(black_box(case.native())),
            "floor" => drop(black_box(case.floor())),
            "hollow" => {
                let hollow = case
                    .hollow
                    .as_ref()
                    .context("BENCH_LOOP: no hollow guest")?;
                drop(black_box(case.ours(hollow)?));
            }
            "doc-floor" => {
                let floor = modules
                    .doc_floor
                    .filter(|_| case.doc_floor)
                    .context("BENCH_LOOP: no doc-floor guest (DOC_FLOOR_WASM) for this row")?;
                drop(black_box(case.ours(&floor.policy)?));
            }
            other => anyhow::bail!("BENCH_LOOP: unknown measure {other:?}"),
        }
        times.push(start.elapsed());
    }
    report_loop(times);
    Ok(())
}

/// The peer's module and its payload for this row (its own settings).
fn peer_input<'m>(case: &Prepared, modules: &Modules<'m>) -> Result<(&'m Module, Vec<u8>)> {
    let (Some(peer), Some((_, module))) = (&case.peer, modules.peer) else {
        anyhow::bail!("BENCH_LOOP: no peer for {:?}", case.scenario.name);
    };
    let payload = serde_json::to_vec(&json!({"request": peer.request, "settings": peer.settings}))?;
    Ok((module, payload))
}

/// `<path>.wasm` / `<path>.wasm-warm`: any other guest (the splice floor of
/// `e2e-tests/guests/splice_floor.rs`, an experiment), checked untimed to answer the row exactly as
/// ours does with as many lookups, then timed fresh (`ours`'s cost model) or on one instance.
fn other_guest(case: &Prepared, path: &str, warm: bool, n: usize) -> Result<()> {
    let module = Module::load(Path::new(path))?;
    let ours = workload_identity_policy::validate_payload(&case.payload, &case.lookup);
    let evaluation = case.ours(&module.policy)?;
    ensure!(
        evaluation.validation == ours
            && evaluation.host_calls == usize::from(case.scenario.service_account.is_some()),
        "{path} answers {} with {} lookups, ours {ours}",
        evaluation.validation,
        evaluation.host_calls
    );
    if warm {
        let account = case.scenario.service_account.clone();
        return warm_loop(&module.bytes, &case.payload, account, n);
    }
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        drop(black_box(case.ours(&module.policy)?));
        times.push(start.elapsed());
    }
    report_loop(times);
    Ok(())
}

/// `n` calls of `validate` on one instance, the lookup answered with `account`.
fn warm_loop(wasm: &[u8], payload: &[u8], account: Option<Value>, n: usize) -> Result<()> {
    use wapc::{HostCallback, WapcHost, WasiParams};
    let engine = wasmtime_provider::WasmtimeEngineProviderBuilder::new()
        .module_bytes(wasm)
        .wasi_params(WasiParams::default())
        .build()?;
    let answer = account.map(|a| serde_json::to_vec(&a)).transpose()?;
    let callback: Box<HostCallback> = Box::new(move |_, binding, namespace, operation, _| {
        match (binding, namespace, operation, &answer) {
            ("kubewarden", "kubernetes", "get_resource", Some(answer)) => Ok(answer.clone()),
            ("kubewarden", "tracing", _, _) => Ok(Vec::new()),
            _ => Err(format!("{binding}/{namespace}/{operation} is not answered").into()),
        }
    });
    let host = WapcHost::new(Box::new(engine), Some(callback))?;
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        black_box(host.call("validate", payload)?);
        times.push(start.elapsed());
    }
    report_loop(times);
    Ok(())
}

/// Prints the minimum and the median of a loop's per-call times (the minimum is the least
/// disturbed by other load on the machine).
fn report_loop(mut times: Vec<Duration>) {
    if times.is_empty() {
        return;
    }
    times.sort_unstable();
    println!(
        "min {} median {} ({} calls)",
        human(times[0].as_nanos() as f64),
        human(times[times.len() / 2].as_nanos() as f64),
        times.len()
    );
}

/// A module as read (for the one-instance loops) and compiled as policy-server compiles it.
struct Module {
    bytes: Vec<u8>,
    policy: Policy,
}

impl Module {
    fn load(path: &Path) -> Result<Self> {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let policy = Policy::from_bytes_as_policy_server(&bytes)
            .with_context(|| format!("in {}", path.display()))?;
        Ok(Self { bytes, policy })
    }
}

struct Modules<'a> {
    ours: &'a Module,
    peer: Option<(&'a Peer, &'a Module)>,
    /// The document-floor guest (`DOC_FLOOR_WASM`).
    doc_floor: Option<&'a Module>,
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

/// The peer's evaluation of a scenario's request, with its own settings.
struct PeerCase {
    request: Value,
    settings: Value,
}

impl PeerCase {
    fn evaluate(&self, policy: &Policy) -> Result<e2e_tests::Evaluation> {
        policy.validate(&self.request, &self.settings, &HostCapabilities::default())
    }
}

/// A scenario with everything precomputed that policy-server would hold before the request.
struct Prepared {
    scenario: Scenario,
    capabilities: HostCapabilities,
    lookup: MemoryLookup,
    /// `{"request", "settings"}`: what our guest's `validate` receives.
    payload: Vec<u8>,
    peer: Option<PeerCase>,
    /// The hollow guest giving our answer (rows beside the peer).
    hollow: Option<Policy>,
    /// Whether the document-floor guest runs on this row (checked to accept without a patch).
    doc_floor: bool,
}

impl Prepared {
    /// Checks once, untimed, that ours in wasm and natively agree and that each module does what
    /// the scenario says.
    fn new(scenario: Scenario, modules: &Modules) -> Result<Self> {
        let name = scenario.name.clone();
        let capabilities = scenario.capabilities()?;
        let payload = serde_json::to_vec(
            &json!({"request": scenario.request, "settings": scenario.settings}),
        )?;
        let peer = match (scenario.peer, modules.peer) {
            (Some(expect), Some((peer, Module { policy, .. }))) => {
                let case = PeerCase {
                    request: scenario.request.clone(),
                    settings: peer.settings.clone(),
                };
                ensure!(
                    policy.validate_settings(&case.settings)?.valid,
                    "{name}: the peer refuses its settings"
                );
                let evaluation = case.evaluate(policy)?;
                ensure!(
                    evaluation.response.allowed != (expect == Expect::Denied),
                    "{name}: the peer answered {}",
                    evaluation.validation
                );
                check_patch(
                    &name,
                    "the peer",
                    expect,
                    evaluation.response.patch.is_some(),
                )?;
                Some(case)
            }
            _ => None,
        };
        let mut prepared = Self {
            capabilities,
            lookup: MemoryLookup(scenario.service_account.clone()),
            payload,
            peer,
            hollow: None,
            doc_floor: false,
            scenario,
        };
        if prepared.scenario.ours {
            ensure!(
                modules
                    .ours
                    .policy
                    .validate_settings(&prepared.scenario.settings)?
                    .valid,
                "{name}: settings refused"
            );
            let evaluation = prepared.ours(&modules.ours.policy)?;
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
            let lookups = usize::from(prepared.scenario.service_account.is_some());
            ensure!(
                evaluation.host_calls == lookups,
                "{name}: {} lookups, expected {lookups}",
                evaluation.host_calls
            );
            check_patch(
                &name,
                "ours",
                prepared.scenario.expect,
                evaluation.response.patch.is_some(),
            )?;
            if prepared.scenario.table == Table::Peer {
                prepared.hollow = Some(prepared.hollow_of(&evaluation)?);
                if let Some(floor) = modules.doc_floor {
                    prepared.check_doc_floor(&floor.policy)?;
                    prepared.doc_floor = true;
                }
            }
        }
        Ok(prepared)
    }

    /// The hollow guest giving `evaluation`'s answer with the same lookup; checked to answer as
    /// ours does.
    fn hollow_of(&self, evaluation: &e2e_tests::Evaluation) -> Result<Policy> {
        let module = scenarios::hollow_module(&self.scenario, &evaluation.validation)?;
        let hollow = Policy::from_bytes_as_policy_server(&module)?;
        let echoed = self.ours(&hollow)?;
        ensure!(
            echoed.validation == evaluation.validation
                && echoed.response == evaluation.response
                && echoed.host_calls == evaluation.host_calls,
            "{}: the hollow guest answers {} with {} lookups",
            self.scenario.name,
            echoed.validation,
            echoed.host_calls
        );
        Ok(hollow)
    }

    /// The document-floor guest hands the request's object back unchanged, without a lookup.
    fn check_doc_floor(&self, floor: &Policy) -> Result<()> {
        let evaluation = self.ours(floor)?;
        ensure!(
            evaluation.response.allowed
                && evaluation.response.patch.is_none()
                && evaluation.host_calls == 0
                && evaluation.validation.get("mutated_object")
                    == self.scenario.request.get("object"),
            "{}: the doc-floor guest answers {}",
            self.scenario.name,
            evaluation.validation
        );
        Ok(())
    }

    fn ours(&self, policy: &Policy) -> Result<e2e_tests::Evaluation> {
        policy.validate(
            &self.scenario.request,
            &self.scenario.settings,
            &self.capabilities,
        )
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

fn check_patch(name: &str, who: &str, expect: Expect, patched: bool) -> Result<()> {
    match expect {
        Expect::NoPatch | Expect::Denied => ensure!(!patched, "{name}: {who}: unexpected patch"),
        Expect::Patch => ensure!(patched, "{name}: {who}: no patch"),
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Measure {
    Ours,
    Peer,
    Native,
    Floor,
    Hollow,
    DocFloor,
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

struct Sizes {
    ours: usize,
    ours_path: String,
    peer: Option<usize>,
}

fn kib(bytes: usize) -> String {
    format!("{:.1} KiB", bytes as f64 / 1024.0)
}

fn tables(prepared: &[Prepared], samples: &Samples, sizes: &Sizes) -> String {
    let stats = |name: &str, m: Measure| samples.stats(name, m);
    if !prepared.iter().any(|c| {
        [Measure::Ours, Measure::Peer]
            .iter()
            .any(|&m| stats(&c.scenario.name, m).is_some())
    }) {
        return String::new();
    }
    let time = |s: Option<(f64, f64)>, p95: bool| {
        s.map_or("-".into(), |(m, p)| human(if p95 { p } else { m }))
    };
    let median = |s: Option<(f64, f64)>| s.map(|(m, _)| m);
    let mut out = String::new();

    // 1. Side by side with the peer.
    let _ = writeln!(
        out,
        "Fresh instance per request (policy-server's cost model), ours against the peer on the same request:\n"
    );
    let _ = writeln!(
        out,
        "| scenario | request bytes | ours median | ours p95 | peer median | peer p95 | ours/peer (target) | hollow median | hollow/peer | doc-floor median | doc-floor/peer |"
    );
    let _ = writeln!(
        out,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for case in prepared {
        let s = &case.scenario;
        if s.table != Table::Peer && !s.is_series() {
            continue;
        }
        let ours = stats(&s.name, Measure::Ours);
        let peer = stats(&s.name, Measure::Peer);
        if ours.is_none() && peer.is_none() {
            continue;
        }
        let target = s.target.map_or(String::new(), |t| format!(" (≤ {t})"));
        let hollow = stats(&s.name, Measure::Hollow);
        let doc_floor = stats(&s.name, Measure::DocFloor);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {}{target} | {} | {} | {} | {} |",
            s.name,
            s.request_bytes(),
            time(ours, false),
            time(ours, true),
            time(peer, false),
            time(peer, true),
            ratio(median(ours), median(peer), s.target),
            time(hollow, false),
            ratio(median(hollow), median(peer), None),
            time(doc_floor, false),
            ratio(median(doc_floor), median(peer), None),
        );
    }
    let _ = writeln!(out);
    let series: Vec<String> = SERIES.iter().map(|&n| scenarios::series_name(n)).collect();
    let growth = |m: Measure| -> Option<(f64, f64)> {
        let t: Vec<f64> = series
            .iter()
            .map(|n| median(stats(n, m)))
            .collect::<Option<_>>()?;
        let n: Vec<f64> = SERIES.iter().map(|&n| n as f64).collect();
        let per_container = (t[3] - t[0]) / (n[3] - n[0]);
        let low = (t[2] - t[1]) / (n[2] - n[1]);
        let high = (t[3] - t[2]) / (n[3] - n[2]);
        Some((per_container, high / low))
    };
    let mut linearity = BTreeMap::new();
    for (label, m) in [
        ("ours", Measure::Ours),
        ("peer", Measure::Peer),
        ("native", Measure::Native),
        ("floor", Measure::Floor),
    ] {
        if let Some(g) = growth(m) {
            linearity.insert(label, g);
        }
    }
    if let (Some(o), Some(p)) = (linearity.get("ours"), linearity.get("peer")) {
        let _ = writeln!(
            out,
            "Growth per extra container (AWS pod, 1 → 1,000 containers): ours {}, peer {} (ratio {:.2}x). \
             Linearity, per-container cost 100→1,000 ÷ 10→100 (1 = linear, ~10 = quadratic): ours {:.2}, peer {:.2}.",
            human(o.0),
            human(p.0),
            o.0 / p.0,
            o.1,
            p.1
        );
    }
    let _ = writeln!(
        out,
        "Modules: ours {} ({} bytes, {}; target ≤ {SIZE_TARGET_KIB:.0} KiB → {}), peer {}.",
        kib(sizes.ours),
        sizes.ours,
        sizes.ours_path,
        if sizes.ours as f64 / 1024.0 <= SIZE_TARGET_KIB {
            "met"
        } else {
            "ABOVE"
        },
        sizes
            .peer
            .map_or("not measured".into(), |b| format!("{} ({b} bytes)", kib(b))),
    );

    // 2. Ours against native and the floor (issue #6's targets).
    let _ = writeln!(
        out,
        "\nOurs in wasm against the same core natively and the native JSON floor:\n"
    );
    let _ = writeln!(
        out,
        "| scenario | wasm median | wasm p95 | native median | floor median | wasm/native | native/floor |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|");
    let plain = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.1}x", a / b),
        _ => "-".into(),
    };
    for case in prepared.iter().filter(|c| c.scenario.ours) {
        let name = case.scenario.name.as_str();
        let wasm = stats(name, Measure::Ours);
        let native = stats(name, Measure::Native);
        let floor = stats(name, Measure::Floor);
        if wasm.is_none() && native.is_none() && floor.is_none() {
            continue;
        }
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {} | {} | {} |",
            time(wasm, false),
            time(wasm, true),
            time(native, false),
            time(floor, false),
            plain(median(wasm), median(native)),
            plain(median(native), median(floor)),
        );
    }
    let _ = writeln!(out);
    if !linearity.is_empty() {
        let floor = linearity.get("floor").map_or(1.0, |g| g.1.max(1.0));
        let worst = linearity
            .iter()
            .filter(|(label, _)| **label == "ours" || **label == "native")
            .map(|(_, g)| g.1 / floor)
            .fold(0.0_f64, f64::max);
        let verdict = if worst <= 1.5 {
            "linear relative to the floor"
        } else if worst <= 3.0 {
            "mildly super-linear relative to the floor, no quadratic term"
        } else {
            "SUPER-LINEAR relative to the floor: look for a quadratic scan"
        };
        let shown: Vec<String> = linearity
            .iter()
            .map(|(label, (per, l))| {
                format!("{label} {} per container, linearity {l:.2}", human(*per))
            })
            .collect();
        let _ = writeln!(
            out,
            "Growth (1 → 1,000 containers): {}; worst policy ÷ floor {worst:.2} → {verdict}.",
            shown.join("; "),
        );
    }
    let aws = |m| median(stats("aws-basic-default-sa", m));
    if let (Some(wasm), Some(native), Some(floor)) = (
        aws(Measure::Ours),
        aws(Measure::Native),
        aws(Measure::Floor),
    ) {
        let _ = write!(
            out,
            "Typical AWS pod against the floor (target ≤ 3x): native core {:.2}x, whole policy in wasm {:.1}x",
            native / floor,
            wasm / floor
        );
        match median(stats(INSTANCE_ONLY, Measure::Ours)) {
            Some(fixed) => {
                let _ = writeln!(
                    out,
                    " ({:.1}x without the {} of an evaluation that does nothing).",
                    (wasm - fixed) / floor,
                    human(fixed)
                );
            }
            None => {
                let _ = writeln!(out, ".");
            }
        }
    }
    out
}
