//! What one admission costs as policy-server pays it (a fresh instance per request): ours, the
//! baseline (`BASELINE_WASM`, e.g. the previous release) and Kubewarden's own mutating pod policy
//! (`PEER_WASM`) on the same request bytes, measured in the same run (`scenarios/mod.rs`).
//!
//! Every module is compiled as policy-server compiles it by default, with its timeout protection
//! (epoch interruption, `e2e_tests::POLICY_SERVER_TIMEOUT`): the checks it compiles into the
//! guest's code are part of what a request costs in production. One evaluation is what
//! [`Policy::validate`] does: a fresh instance and waPC init, the payload encoded, our one
//! `get_resource` answered by the host, the ValidationResponse decoded and the JSON patch
//! computed, as policy-evaluator does.
//!
//! One criterion benchmark per scenario: each of its iterations evaluates the request once with
//! every module, in an order that rotates from one iteration to the next, so that the machine's
//! noise falls on all of them alike and the ratios hold within the run. Every evaluation is
//! timed on its own (criterion's warm-up left out); the table of medians and p95s, the growth per
//! container and the module sizes are printed at the end and written to `target/bench-table.md`.
//! `make bench` runs this with a native release profile on the shipped `policy.wasm`; see
//! BENCHMARKS.md.

mod scenarios;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use criterion::{Criterion, SamplingMode};
use e2e_tests::{HostCapabilities, Policy};
use scenarios::{human, kib, ratio, Expect, Scenario, SERIES};
use serde_json::Value;

/// Criterion's warm-up per scenario; evaluations timed during it are left out of the table.
const WARM_UP: Duration = Duration::from_millis(300);
/// Criterion's measurement time per scenario, shared by the modules (12 scenarios: about two
/// minutes with all three; `cargo bench ... -- --measurement-time 2` for a quicker look).
const MEASUREMENT: Duration = Duration::from_secs(8);
/// The size the release module must stay below (also `tests/size.rs`).
const SIZE_BUDGET_KIB: f64 = 768.0;

/// The modules of a run, in the table's order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Who {
    Ours,
    Baseline,
    Peer,
}

fn main() -> Result<()> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()?;
    let ours = Module::load(&e2e_tests::policy_wasm(&workspace)?)?;
    let baseline = match scenarios::baseline(&workspace) {
        Ok(path) => Some(Module::load(&path)?),
        Err(notice) => {
            notice_line(&notice);
            None
        }
    };
    let peer = match scenarios::Peer::find(&workspace)? {
        Ok(peer) => Some((Module::load(&peer.wasm)?, peer.settings)),
        Err(notice) => {
            notice_line(&notice);
            None
        }
    };
    let modules = Modules {
        ours: &ours,
        baseline: baseline.as_ref(),
        peer: peer.as_ref().map(|(module, settings)| (module, settings)),
    };
    let prepared = scenarios::scenarios(&workspace)?
        .into_iter()
        .map(|s| Prepared::new(s, &modules))
        .collect::<Result<Vec<_>>>()?;

    let samples = Samples::default();
    let mut criterion = Criterion::default()
        .sample_size(20)
        .warm_up_time(WARM_UP)
        .measurement_time(MEASUREMENT)
        .nresamples(10_000)
        .without_plots()
        .configure_from_args();
    let mut group = criterion.benchmark_group("fresh instance");
    // One iteration of the 1,000-container pod takes tens of milliseconds: flat sampling keeps
    // every benchmark within its measurement time.
    group.sampling_mode(SamplingMode::Flat);
    for case in &prepared {
        let runs = case.runs(&modules);
        group.bench_function(case.scenario.name.as_str(), |b| {
            b.iter_custom(|iters| samples.time(&case.scenario.name, &runs, iters))
        });
    }
    group.finish();
    criterion.final_summary();

    let table = table(&workspace, &prepared, &samples, &modules);
    if table.is_empty() {
        return Ok(()); // `--list`, `--test` or a filter that matched nothing
    }
    println!("\n{table}");
    let out = workspace.join("target").join("bench-table.md");
    std::fs::write(&out, &table).with_context(|| format!("cannot write {}", out.display()))?;
    Ok(())
}

/// `NOTICE: ...` (`make bench` shows these lines of its log).
fn notice_line(notice: &str) {
    println!("NOTICE: {notice}");
}

/// A module as read and compiled as policy-server compiles it.
struct Module {
    path: PathBuf,
    bytes: u64,
    policy: Policy,
}

impl Module {
    fn load(path: &Path) -> Result<Self> {
        let wasm =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let policy = Policy::from_bytes_as_policy_server(&wasm)
            .with_context(|| format!("in {}", path.display()))?;
        Ok(Self {
            path: path.to_path_buf(),
            bytes: wasm.len() as u64,
            policy,
        })
    }
}

#[derive(Clone, Copy)]
struct Modules<'a> {
    ours: &'a Module,
    baseline: Option<&'a Module>,
    /// The peer and its own settings.
    peer: Option<(&'a Module, &'a Value)>,
}

/// A scenario with everything precomputed that policy-server would hold before the request.
struct Prepared {
    scenario: Scenario,
    capabilities: HostCapabilities,
    /// Whether the baseline runs this row (it accepts the row's settings).
    baseline: bool,
}

/// One module's evaluation of a row, ready to time.
type Run<'a> = (Who, Box<dyn Fn() -> Result<e2e_tests::Evaluation> + 'a>);

impl Prepared {
    /// Checks once, untimed, that each module does what the scenario says; the baseline must
    /// accept the settings, and a different answer from ours (allowed, patched) is a notice: a
    /// change of behaviour since the baseline, not an error.
    fn new(scenario: Scenario, modules: &Modules) -> Result<Self> {
        let name = scenario.name.as_str();
        let capabilities = scenario.capabilities()?;
        let evaluate =
            |policy: &Policy| policy.validate(&scenario.request, &scenario.settings, &capabilities);
        ensure!(
            modules
                .ours
                .policy
                .validate_settings(&scenario.settings)?
                .valid,
            "{name}: ours refuses the settings"
        );
        let evaluation = evaluate(&modules.ours.policy)?;
        let answer = Expect::of(
            evaluation.response.allowed,
            evaluation.response.patch.is_some(),
        );
        ensure!(
            answer == scenario.expect,
            "{name}: ours answered {answer}, expected {}: {}",
            scenario.expect,
            evaluation.validation
        );
        if let Some(warnings) = &evaluation.response.warnings {
            eprintln!("{name}: warnings {warnings:?}");
        }
        let lookups = usize::from(scenario.service_account.is_some());
        ensure!(
            evaluation.host_calls == lookups,
            "{name}: {} lookups, expected {lookups}",
            evaluation.host_calls
        );

        let mut baseline = false;
        if let Some(module) = modules.baseline {
            let settings = module.policy.validate_settings(&scenario.settings)?;
            if settings.valid {
                let theirs = evaluate(&module.policy)?;
                let theirs = Expect::of(theirs.response.allowed, theirs.response.patch.is_some());
                if theirs != answer {
                    notice_line(&format!(
                        "{name}: the baseline answers {theirs}, ours {answer} (a change of behaviour since the baseline)"
                    ));
                }
                baseline = true;
            } else {
                notice_line(&format!(
                    "{name}: the baseline refuses the settings ({}): no baseline on this row",
                    settings.message.as_deref().unwrap_or("no message")
                ));
            }
        }

        if let Some((module, settings)) = modules.peer {
            ensure!(
                module.policy.validate_settings(settings)?.valid,
                "{name}: the peer refuses its settings"
            );
            let theirs = module.policy.validate(
                &scenario.request,
                settings,
                &HostCapabilities::default(),
            )?;
            let theirs = Expect::of(theirs.response.allowed, theirs.response.patch.is_some());
            ensure!(
                theirs == scenario.peer,
                "{name}: the peer answered {theirs}, expected {}",
                scenario.peer
            );
        }
        Ok(Self {
            scenario,
            capabilities,
            baseline,
        })
    }

    /// The evaluations one iteration times, in the table's order.
    fn runs<'a>(&'a self, modules: &Modules<'a>) -> Vec<Run<'a>> {
        let s = &self.scenario;
        let ours = &modules.ours.policy;
        let mut runs: Vec<Run<'a>> = vec![(
            Who::Ours,
            Box::new(move || ours.validate(&s.request, &s.settings, &self.capabilities)),
        )];
        if let Some(module) = modules.baseline.filter(|_| self.baseline) {
            let policy = &module.policy;
            runs.push((
                Who::Baseline,
                Box::new(move || policy.validate(&s.request, &s.settings, &self.capabilities)),
            ));
        }
        if let Some((module, settings)) = modules.peer {
            let policy = &module.policy;
            runs.push((
                Who::Peer,
                Box::new(move || {
                    policy.validate(&s.request, settings, &HostCapabilities::default())
                }),
            ));
        }
        runs
    }
}

/// Per-evaluation times in nanoseconds, per (scenario, module), warm-up left out.
#[derive(Default)]
struct Samples {
    runs: RefCell<BTreeMap<(String, Who), Vec<u64>>>,
    /// Wall time spent in each scenario's benchmark so far: criterion warms up until it exceeds
    /// WARM_UP.
    elapsed: RefCell<BTreeMap<String, Duration>>,
}

impl Samples {
    /// `iters` iterations, each evaluating the request once with every module (starting with a
    /// different one each time); returns the total for criterion.
    fn time(&self, scenario: &str, runs: &[Run], iters: u64) -> Duration {
        let started = Instant::now();
        let mut nanos = vec![Vec::new(); runs.len()];
        for i in 0..iters {
            let first = usize::try_from(i).unwrap_or(0) % runs.len();
            for k in (first..runs.len()).chain(0..first) {
                let start = Instant::now();
                let evaluation = (runs[k].1)();
                let took = start.elapsed();
                if let Err(e) = black_box(evaluation) {
                    panic!("{scenario}: {:?} failed after its check: {e:#}", runs[k].0);
                }
                nanos[k].push(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX));
            }
        }
        let total = started.elapsed();
        let mut elapsed = self.elapsed.borrow_mut();
        let spent = elapsed.entry(scenario.to_owned()).or_default();
        // Criterion's warm-up ends with the call that takes its elapsed time past WARM_UP; its
        // clock includes a little more than ours, so no warm-up call is ever counted.
        if *spent > WARM_UP {
            let mut all = self.runs.borrow_mut();
            for ((who, _), times) in runs.iter().zip(nanos) {
                all.entry((scenario.to_owned(), *who))
                    .or_default()
                    .extend(times);
            }
        }
        *spent += total;
        total
    }

    /// (median, p95, count) in nanoseconds.
    fn stats(&self, scenario: &str, who: Who) -> Option<(f64, f64, usize)> {
        let mut runs = self.runs.borrow_mut();
        let nanos = runs.get_mut(&(scenario.to_owned(), who))?;
        if nanos.is_empty() {
            return None;
        }
        nanos.sort_unstable();
        let at = |q: f64| nanos[((nanos.len() - 1) as f64 * q).round() as usize] as f64;
        Some((at(0.5), at(0.95), nanos.len()))
    }

    fn median(&self, scenario: &str, who: Who) -> Option<f64> {
        self.stats(scenario, who).map(|(median, _, _)| median)
    }
}

fn table(workspace: &Path, prepared: &[Prepared], samples: &Samples, modules: &Modules) -> String {
    let name = |c: &Prepared| c.scenario.name.clone();
    if !prepared
        .iter()
        .any(|c| samples.stats(&name(c), Who::Ours).is_some())
    {
        return String::new();
    }
    let time = |v: Option<f64>| v.map_or("-".into(), human);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Fresh instance per request (policy-server's cost model), {}:\n",
        scenarios::machine()
    );
    let _ = writeln!(
        out,
        "| scenario | ours median | ours p95 | baseline median | ours/baseline | peer median | ours/peer |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|");
    let mut against_baseline = Vec::new();
    let mut fewest = usize::MAX;
    for case in prepared {
        let name = name(case);
        let Some((ours, p95, count)) = samples.stats(&name, Who::Ours) else {
            continue;
        };
        fewest = fewest.min(count);
        let baseline = samples.median(&name, Who::Baseline);
        let peer = samples.median(&name, Who::Peer);
        if let Some(b) = baseline {
            against_baseline.push((ours / b, name.clone()));
        }
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {} | {} | {} |",
            human(ours),
            human(p95),
            time(baseline),
            ratio(Some(ours), baseline),
            time(peer),
            ratio(Some(ours), peer),
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Medians and p95 of single evaluations, at least {fewest} per module and row, every module in turn."
    );
    if let (Some(low), Some(high)) = (
        against_baseline.iter().min_by(|a, b| a.0.total_cmp(&b.0)),
        against_baseline.iter().max_by(|a, b| a.0.total_cmp(&b.0)),
    ) {
        let _ = writeln!(
            out,
            "Ours/baseline: {:.2}x ({}) to {:.2}x ({}) over {} rows.",
            low.0,
            low.1,
            high.0,
            high.1,
            against_baseline.len()
        );
    }

    // Growth per container: the cost of one more container, from 1 to 1,000.
    let growth = |who: Who| -> Option<(f64, f64)> {
        let t: Vec<f64> = SERIES
            .iter()
            .map(|&n| samples.median(&scenarios::series_name(n), who))
            .collect::<Option<_>>()?;
        let n = SERIES.map(|n| n as f64);
        let per_container = (t[3] - t[0]) / (n[3] - n[0]);
        let low = (t[2] - t[1]) / (n[2] - n[1]);
        let high = (t[3] - t[2]) / (n[3] - n[2]);
        Some((per_container, high / low))
    };
    if let Some((ours, linearity)) = growth(Who::Ours) {
        let other = |who: Who, label: &str| match growth(who) {
            Some((theirs, _)) => format!(
                "{label} {} (ours/{label} {:.2}x)",
                human(theirs),
                ours / theirs
            ),
            None => format!("{label} -"),
        };
        let _ = writeln!(
            out,
            "Growth per extra container (AWS pod, 1 → 1,000 containers): ours {}, {}, {}. \
             Linearity of ours, per-container cost 100→1,000 ÷ 10→100 (1 = linear, ~10 = quadratic): {linearity:.2}.",
            human(ours),
            other(Who::Baseline, "baseline"),
            other(Who::Peer, "peer"),
        );
    }
    // Paths as given from the workspace root, where `make bench` runs.
    let path = |m: &Module| {
        let at = m.path.canonicalize().unwrap_or_else(|_| m.path.clone());
        at.strip_prefix(workspace)
            .unwrap_or(&at)
            .display()
            .to_string()
    };
    let module = |m: Option<&Module>| {
        m.map_or("-".into(), |m| {
            format!("{} ({} bytes, {})", kib(m.bytes), m.bytes, path(m))
        })
    };
    let ours = modules.ours;
    let _ = writeln!(
        out,
        "Modules: ours {} ({} bytes, {}; budget {SIZE_BUDGET_KIB:.0} KiB: {}), baseline {}, peer {}.",
        kib(ours.bytes),
        ours.bytes,
        path(ours),
        if ours.bytes as f64 / 1024.0 <= SIZE_BUDGET_KIB {
            "within"
        } else {
            "ABOVE"
        },
        module(modules.baseline),
        module(modules.peer.map(|(m, _)| m)),
    );
    out
}
