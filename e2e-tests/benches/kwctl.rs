//! `kwctl bench` (the real engine, one warm instance reused for every call) on the scenarios of
//! `scenarios/mod.rs`, for ours, the baseline (`BASELINE_WASM`) and the peer (`PEER_WASM`) on the
//! same request files; prints a markdown table (also written to `target/bench-kwctl-table.md`).
//! `make bench-kwctl` runs it.
//!
//! - `KWCTL`: the kwctl to run (default: `kwctl` on `PATH`; without one the bench prints a
//!   `NOTICE` and exits successfully);
//! - `POLICY_WASM`, `BASELINE_WASM`, `PEER_WASM`: the modules (`scenarios/mod.rs`); without the
//!   baseline or the peer, its columns show `-`;
//! - `KWCTL_WARM_UP` / `KWCTL_MEASUREMENT`: whole seconds per `kwctl bench` run (default 1, 3).
//!
//! kwctl prints the median of its 100 samples (each the mean of a batch of calls); the p95 here is
//! the 95th percentile of those sample means, read from the per-sample data kwctl's bench library
//! (tiny-bench) writes under a `target` directory above the kwctl executable: the wrapper's copy
//! is unpacked into `target/kwctl-bench/cache` (`XDG_CACHE_HOME`) so that it has one. With another
//! kwctl the p95 column shows `-`.
//!
//! Our lookups are answered from a replay session; kwctl consumes one answer per call and reuses
//! the instance for every call, so the session holds the answer as many times as the run can call
//! (YAML aliases keep the file small). Ours and the baseline are annotated with this tree's
//! `policy-metadata.yml` (kwctl grants the lookup from it) and given the same files. Each module's
//! decision is checked once with `kwctl run` before it is timed; a baseline that answers otherwise
//! than ours (allowed, patched) is a notice, not an error. The modules of a row run back to back,
//! in an order that rotates from row to row. The growth series stops at 10 containers: kwctl times
//! at least 5,050 calls per run, minutes for the large pods.

mod scenarios;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};
use scenarios::{human, kib, ratio, Expect, Peer, Scenario};
use serde_json::Value;

/// The fastest a call with a lookup can be under kwctl on any machine we know, with a wide margin:
/// sizes the replay session so that it never runs out.
const FASTEST_LOOKUP_CALL_SECONDS: f64 = 25e-6;
/// The largest pod of the growth series timed under kwctl.
const MAX_CONTAINERS: usize = 10;

fn main() -> Result<()> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()?;
    let out_dir = workspace.join("target").join("kwctl-bench");
    std::fs::create_dir_all(&out_dir)?;
    let kwctl = match Kwctl::find(&workspace, &out_dir) {
        Ok(kwctl) => kwctl,
        Err(why) => {
            println!("NOTICE: bench-kwctl SKIPPED: {why:#}");
            return Ok(());
        }
    };
    // kwctl takes whole seconds.
    let seconds = |var: &str, default: u64| -> Result<u64> {
        match std::env::var(var) {
            Ok(v) if !v.is_empty() => v.parse().with_context(|| format!("{var}={v}")),
            _ => Ok(default),
        }
    };
    let timing = Timing {
        warm_up: seconds("KWCTL_WARM_UP", 1)?,
        measurement: seconds("KWCTL_MEASUREMENT", 3)?,
    };
    let version = kwctl.version()?;
    // kwctl's own checks need the module's metadata (context-aware resources, mutating): the
    // annotated module is what users run.
    let ours = e2e_tests::policy_wasm(&workspace)?.canonicalize()?;
    let mut modules = vec![Module {
        who: Who::Ours,
        wasm: ours.clone(),
        run: out_dir.join("ours-annotated.wasm"),
    }];
    kwctl.annotate(&workspace, &ours, &modules[0].run)?;
    match scenarios::baseline(&workspace) {
        Ok(wasm) => {
            let run = out_dir.join("baseline-annotated.wasm");
            kwctl.annotate(&workspace, &wasm, &run)?;
            modules.push(Module {
                who: Who::Baseline,
                wasm,
                run,
            });
        }
        Err(notice) => println!("NOTICE: {notice}"),
    }
    let peer = match Peer::find(&workspace)? {
        Ok(peer) => {
            modules.push(Module {
                who: Who::Peer,
                wasm: peer.wasm.clone(),
                run: peer.wasm.clone(),
            });
            Some(peer)
        }
        Err(notice) => {
            println!("NOTICE: {notice}");
            None
        }
    };
    eprintln!("{version}; ours {}", ours.display());

    let mut rows = Vec::new();
    let scenarios = scenarios::scenarios(&workspace)?;
    for (index, scenario) in scenarios.iter().enumerate() {
        if scenario.containers.is_some_and(|n| n > MAX_CONTAINERS) {
            continue;
        }
        let dir = out_dir.join(format!("{index:02}"));
        std::fs::create_dir_all(&dir)?;
        let request = dir.join("request.json");
        std::fs::write(&request, serde_json::to_vec(&scenario.request)?)?;
        let settings = dir.join("settings.json");
        std::fs::write(&settings, serde_json::to_vec(&scenario.settings)?)?;
        let session = dir.join("session.yml");
        match &scenario.service_account {
            Some(sa) => std::fs::write(
                &session,
                scenarios::session_yaml(&scenario.request, sa, timing.max_calls())?,
            )?,
            None => std::fs::write(&session, "[]\n")?,
        }
        let peer_settings = dir.join("peer-settings.json");
        if let Some(peer) = &peer {
            std::fs::write(&peer_settings, serde_json::to_vec(&peer.settings)?)?;
        }
        let run_of = |i: usize| match modules[i].who {
            Who::Ours | Who::Baseline => Run {
                module: &modules[i].run,
                request: &request,
                settings: &settings,
                session: Some(&session),
            },
            Who::Peer => Run {
                module: &modules[i].run,
                request: &request,
                settings: &peer_settings,
                session: None,
            },
        };

        // Every module's decision first, ours' against the scenario.
        let ours_answer = kwctl.check(&run_of(0), scenario, "ours")?;
        ensure!(
            ours_answer == scenario.expect,
            "{}: ours answered {ours_answer} under kwctl, expected {}",
            scenario.name,
            scenario.expect
        );
        for (i, module) in modules.iter().enumerate().skip(1) {
            let answer = kwctl.check(&run_of(i), scenario, module.who.label())?;
            match module.who {
                Who::Baseline if answer != ours_answer => println!(
                    "NOTICE: {}: the baseline answers {answer}, ours {ours_answer} under kwctl (a change of behaviour since the baseline)",
                    scenario.name
                ),
                Who::Peer => ensure!(
                    answer == scenario.peer,
                    "{}: the peer answered {answer} under kwctl, expected {}",
                    scenario.name,
                    scenario.peer
                ),
                _ => {}
            }
        }
        // Then back to back, starting with a different module on each row.
        let mut row = Row {
            name: scenario.name.clone(),
            stats: Vec::new(),
        };
        let first = index % modules.len();
        for i in (first..modules.len()).chain(0..first) {
            eprintln!("== {}: {}", scenario.name, modules[i].who.label());
            let stats = kwctl.bench(&run_of(i), &timing, &workspace)?;
            row.stats.push((modules[i].who, stats));
        }
        rows.push(row);
    }

    let mut table = String::new();
    let _ = writeln!(
        table,
        "One warm instance for every call ({version} `bench`), {}:\n",
        scenarios::machine()
    );
    let _ = writeln!(
        table,
        "| scenario | ours median | ours p95 | baseline median | ours/baseline | peer median | ours/peer |"
    );
    let _ = writeln!(table, "|---|---:|---:|---:|---:|---:|---:|");
    for row in &rows {
        let ours = row.get(Who::Ours);
        let median = |who| row.get(who).map(|s| s.median);
        let time = |v: Option<f64>| v.map_or("-".into(), human);
        let _ = writeln!(
            table,
            "| {} | {} | {} | {} | {} | {} | {} |",
            row.name,
            time(median(Who::Ours)),
            time(ours.and_then(|s| s.p95)),
            time(median(Who::Baseline)),
            ratio(median(Who::Ours), median(Who::Baseline)),
            time(median(Who::Peer)),
            ratio(median(Who::Ours), median(Who::Peer)),
        );
    }
    let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let shown = |who: Who| {
        modules
            .iter()
            .find(|m| m.who == who)
            .map_or("-".into(), |m| {
                let at = m.wasm.strip_prefix(&workspace).unwrap_or(&m.wasm);
                let mut text = format!(
                    "{} ({} bytes, {}",
                    kib(size(&m.wasm)),
                    size(&m.wasm),
                    at.display()
                );
                if m.run != m.wasm {
                    let _ = write!(text, "; annotated for kwctl: {} bytes", size(&m.run));
                }
                text + ")"
            })
    };
    let _ = writeln!(
        table,
        "\nModules: ours {}, baseline {}, peer {}.",
        shown(Who::Ours),
        shown(Who::Baseline),
        shown(Who::Peer),
    );
    let _ = writeln!(
        table,
        "Medians of kwctl's 100 samples (each the mean time of a batch of calls); p95 of those sample means; \
         {} s warm-up and {} s measurement per run.",
        timing.warm_up, timing.measurement
    );
    println!("\n{table}");
    let out = workspace.join("target").join("bench-kwctl-table.md");
    std::fs::write(&out, &table).with_context(|| format!("cannot write {}", out.display()))?;
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Who {
    Ours,
    Baseline,
    Peer,
}

impl Who {
    fn label(self) -> &'static str {
        match self {
            Who::Ours => "ours",
            Who::Baseline => "the baseline",
            Who::Peer => "the peer",
        }
    }
}

/// A module of the run: the file given, and the file kwctl runs (ours and the baseline annotated).
struct Module {
    who: Who,
    wasm: PathBuf,
    run: PathBuf,
}

struct Timing {
    warm_up: u64,
    measurement: u64,
}

impl Timing {
    /// How many calls one `kwctl bench` run may make at most: the warm-up doubles its batches
    /// until the time is spent (up to twice the time), the measurement takes about its time (more
    /// for slow calls, which then make fewer calls).
    fn max_calls(&self) -> usize {
        let seconds = 2.0 * self.warm_up as f64 + 1.5 * self.measurement as f64 + 0.5;
        (seconds / FASTEST_LOOKUP_CALL_SECONDS).ceil() as usize
    }
}

struct Row {
    name: String,
    stats: Vec<(Who, Stats)>,
}

impl Row {
    fn get(&self, who: Who) -> Option<&Stats> {
        self.stats.iter().find(|(w, _)| *w == who).map(|(_, s)| s)
    }
}

struct Stats {
    median: f64,
    p95: Option<f64>,
}

#[derive(Clone, Copy)]
struct Run<'a> {
    module: &'a Path,
    request: &'a Path,
    settings: &'a Path,
    session: Option<&'a Path>,
}

impl Run<'_> {
    fn args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(session) = self.session {
            args.push("--allow-context-aware".to_string());
            args.push("--replay-host-capabilities-interactions".to_string());
            args.push(session.display().to_string());
        }
        args.extend([
            "--settings-path".to_string(),
            self.settings.display().to_string(),
            "--request-path".to_string(),
            self.request.display().to_string(),
            self.module.display().to_string(),
        ]);
        args
    }
}

struct Kwctl {
    program: PathBuf,
    /// `XDG_CACHE_HOME` for the wrapper: its unpacked kwctl then lives under `target/`.
    cache: PathBuf,
}

impl Kwctl {
    fn find(workspace: &Path, out_dir: &Path) -> Result<Kwctl> {
        let on_path = |name: &std::ffi::OsStr| {
            std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
                .map(|dir| dir.join(name))
                .find(|candidate| candidate.is_file())
        };
        let program = match std::env::var_os("KWCTL").filter(|p| !p.is_empty()) {
            // A bare name is looked up on PATH; a path is taken from the workspace root.
            Some(p) if !p.to_string_lossy().contains('/') => on_path(&p),
            Some(p) => Some(workspace.join(p)),
            None => on_path("kwctl".as_ref()),
        }
        .context("no kwctl: set KWCTL=/path/to/kwctl or put kwctl on PATH")?;
        let kwctl = Kwctl {
            program,
            cache: out_dir.join("cache"),
        };
        kwctl.version().with_context(|| {
            format!(
                "cannot run kwctl ({}); set KWCTL to a kwctl 1.31 or later",
                kwctl.program.display()
            )
        })?;
        Ok(kwctl)
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command.env("XDG_CACHE_HOME", &self.cache);
        command
    }

    /// `kwctl <name>` for a subcommand that verifies, given the offline Sigstore trust config.
    fn verifying(&self, name: &str) -> Command {
        let mut command = self.command();
        command
            .arg(name)
            .arg("--sigstore-trust-config")
            .arg(e2e_tests::kwctl::sigstore_trust_config());
        command
    }

    fn version(&self) -> Result<String> {
        let output = self.command().arg("--version").output()?;
        ensure!(output.status.success(), "kwctl --version failed");
        let text = String::from_utf8_lossy(&output.stdout);
        Ok(text.lines().next().unwrap_or("kwctl").trim().to_string())
    }

    fn annotate(&self, workspace: &Path, module: &Path, out: &Path) -> Result<()> {
        let output = self
            .command()
            .arg("annotate")
            .arg("-m")
            .arg(workspace.join("policy-metadata.yml"))
            .arg("-u")
            .arg(workspace.join("README.md"))
            .arg("-o")
            .arg(out)
            .arg(module)
            .output()?;
        ensure!(
            output.status.success(),
            "kwctl annotate failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(())
    }

    /// One `kwctl run` of the scenario: what the module answers.
    fn check(&self, run: &Run, scenario: &Scenario, who: &str) -> Result<Expect> {
        // A session of one answer: `run` makes one call.
        let single = run.session.map(|s| s.with_extension("once.yml"));
        let mut args = run.args();
        if let (Some(session), Some(single)) = (run.session, &single) {
            let text = std::fs::read_to_string(session)?;
            let first: String = text
                .lines()
                .take_while(|l| *l != "- *answer")
                .map(|l| format!("{l}\n"))
                .collect();
            std::fs::write(single, first)?;
            if let Some(at) = args
                .iter()
                .position(|a| a == &session.display().to_string())
            {
                args[at] = single.display().to_string();
            }
        }
        let output = self.verifying("run").args(&args).output()?;
        if !output.status.success() {
            bail!(
                "{}: kwctl run ({who}) failed: {}",
                scenario.name,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let response: Value = serde_json::from_slice(&output.stdout).with_context(|| {
            format!(
                "{}: kwctl run ({who}) printed {}",
                scenario.name,
                String::from_utf8_lossy(&output.stdout)
            )
        })?;
        if let Some(warnings) = response.get("warnings").filter(|w| !w.is_null()) {
            eprintln!("{}: {who}: warnings {warnings}", scenario.name);
        }
        Ok(Expect::of(
            response["allowed"] == Value::Bool(true),
            response.get("patch").is_some_and(|p| !p.is_null()),
        ))
    }

    fn bench(&self, run: &Run, timing: &Timing, workspace: &Path) -> Result<Stats> {
        let samples = workspace.join("target/simple-bench/validate/current-sample");
        let _ = std::fs::remove_file(&samples);
        let mut args = vec![
            "--warm-up-time".to_string(),
            timing.warm_up.to_string(),
            "--measurement-time".to_string(),
            timing.measurement.to_string(),
            "--num-samples".to_string(),
            "100".to_string(),
            "--dump-results-to-disk".to_string(),
            "true".to_string(),
        ];
        args.extend(run.args());
        let output = self.verifying("bench").args(&args).output()?;
        let stdout = strip_ansi(&String::from_utf8_lossy(&output.stdout));
        if !output.status.success() {
            bail!(
                "kwctl bench failed: {stdout}{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        // The last `med = ` line is `validate`'s (`validate_settings` comes first).
        let printed = stdout
            .lines()
            .rev()
            .find_map(|l| l.split("med = ").nth(1))
            .and_then(|rest| parse_time(rest.split(',').next()?.trim()))
            .with_context(|| format!("no median in kwctl bench's output: {stdout}"))?;
        let per_sample = std::fs::read(&samples)
            .ok()
            .and_then(|bytes| sample_means(&bytes));
        let (median, p95) = match per_sample {
            Some(mut means) if !means.is_empty() => {
                means.sort_by(f64::total_cmp);
                let at = |q: f64| means[((means.len() - 1) as f64 * q).round() as usize];
                (at(0.5), Some(at(0.95)))
            }
            _ => (printed, None),
        };
        eprintln!(
            "   median {} (kwctl printed {}), p95 {}",
            human(median),
            human(printed),
            p95.map_or("-".into(), human)
        );
        Ok(Stats { median, p95 })
    }
}

/// tiny-bench's sampling data: `n: u64`, `n` iteration counts (u64), `n` total times (u128 ns).
fn sample_means(bytes: &[u8]) -> Option<Vec<f64>> {
    let n = usize::try_from(u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?)).ok()?;
    if bytes.len() != 8 + n * 24 {
        return None;
    }
    (0..n)
        .map(|i| {
            let at = 8 + i * 8;
            let iterations = u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?);
            let at = 8 + n * 8 + i * 16;
            let nanos = u128::from_le_bytes(bytes.get(at..at + 16)?.try_into().ok()?);
            (iterations > 0).then(|| nanos as f64 / iterations as f64)
        })
        .collect()
}

/// `53.21µs`, `1.2ms`, `950ns`, `1.5s` in nanoseconds.
fn parse_time(text: &str) -> Option<f64> {
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().ok()?;
    let scale = match unit.trim() {
        "ns" => 1.0,
        "µs" | "us" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        _ => return None,
    };
    Some(value * scale)
}

fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ ... final byte in @..~
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) && c != '[' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
