//! `kwctl bench` (the real engine, one warm instance reused for every call) on the scenarios of
//! `scenarios/mod.rs`, for our `policy.wasm` and the peer module on the same request files; prints a
//! markdown table (also written to `target/bench-kwctl-table.md`). `make bench-kwctl` runs it.
//!
//! - `KWCTL`: the kwctl to run (default: `kwctl` on `PATH`; without one the bench prints a notice);
//! - `POLICY_WASM`: our module (default: built like the tests, `target/e2e-wasm`);
//! - `PEER_WASM`: the peer (without it, its rows are skipped with a notice);
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
//! (YAML aliases keep the file small). Each module's decision is checked once with `kwctl run`
//! before it is timed.
//!
//! Beside ours, each row times the hollow guest of `scenarios/hollow.rs`: a module that does no
//! policy work but makes kwctl pay what ours does (the payload, our lookup, our exact answer),
//! annotated like ours. `hollow/peer` is the best ratio any guest giving our answer could reach.
//! With `DOC_FLOOR_WASM` (`make doc-floor.wasm`), each row also times the document-floor guest
//! (`e2e-tests/guests/doc_floor.rs`): it only reads the pod into a document and hands it back
//! unchanged, without a lookup, the least any guest that reads the pod into a document can cost.

mod scenarios;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};
use e2e_tests::Policy;
use scenarios::{human, ratio, Expect, Peer, Scenario, Table};
use serde_json::Value;

/// The fastest a call with a lookup can be under kwctl on any machine we know, with a wide margin:
/// sizes the replay session so that it never runs out.
const FASTEST_LOOKUP_CALL_SECONDS: f64 = 25e-6;

fn main() -> Result<()> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()?;
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
    let out_dir = workspace.join("target").join("kwctl-bench");
    std::fs::create_dir_all(&out_dir)?;
    let kwctl = Kwctl::find(&workspace, &out_dir)?;
    let ours = e2e_tests::policy_wasm(&workspace)?.canonicalize()?;
    let peer = match Peer::find(&workspace)? {
        Ok(peer) => Some(peer),
        Err(notice) => {
            println!("NOTICE: {notice}");
            None
        }
    };
    // kwctl's own checks need the module's metadata (context-aware resources, mutating): the
    // annotated module is what users run.
    let annotated = out_dir.join("annotated-policy.wasm");
    kwctl.annotate(&workspace, &ours, &annotated)?;
    let version = kwctl.version()?;
    eprintln!("{version}; ours {}", ours.display());
    let ours_policy = Policy::from_file(&ours)?;
    let doc_floor = match std::env::var_os("DOC_FLOOR_WASM").filter(|p| !p.is_empty()) {
        Some(path) => {
            let annotated = out_dir.join("doc-floor-annotated.wasm");
            kwctl.annotate(&workspace, Path::new(&path), &annotated)?;
            Some(annotated)
        }
        None => {
            println!("NOTICE: DOC_FLOOR_WASM is not set (make doc-floor.wasm builds it): no doc-floor column");
            None
        }
    };

    let scenarios = scenarios::scenarios(&workspace, peer.as_ref())?;
    let mut rows = Vec::new();
    for (index, scenario) in scenarios.iter().enumerate() {
        // The growth series stays in the fresh-instance bench: kwctl times at least 5,050 calls
        // per run, minutes for the large pods.
        if scenario.table != Table::Peer || (!scenario.ours && peer.is_none()) {
            continue;
        }
        let dir = out_dir.join(format!("{index:02}"));
        std::fs::create_dir_all(&dir)?;
        let request = dir.join("request.json");
        std::fs::write(&request, serde_json::to_vec(&scenario.request)?)?;
        let ours_result = if scenario.ours {
            let settings = dir.join("settings.json");
            std::fs::write(&settings, serde_json::to_vec(&scenario.settings)?)?;
            let calls = timing.max_calls();
            let session = dir.join("session.yml");
            match &scenario.service_account {
                Some(sa) => std::fs::write(
                    &session,
                    scenarios::session_yaml(&scenario.request, sa, calls)?,
                )?,
                None => std::fs::write(&session, "[]\n")?,
            }
            let run = Run {
                module: &annotated,
                request: &request,
                settings: &settings,
                session: Some(&session),
            };
            kwctl.check(&run, scenario, scenario.expect, "ours")?;
            eprintln!("== {}: ours", scenario.name);
            let ours_stats = kwctl.bench(&run, &timing, &workspace)?;

            // The hollow guest giving the same answer, annotated like ours.
            let hollow = dir.join("hollow.wasm");
            std::fs::write(&hollow, hollow_module(&ours_policy, scenario)?)?;
            let hollow_annotated = dir.join("hollow-annotated.wasm");
            kwctl.annotate(&workspace, &hollow, &hollow_annotated)?;
            let run = Run {
                module: &hollow_annotated,
                ..run
            };
            kwctl.check(&run, scenario, scenario.expect, "the hollow guest")?;
            eprintln!("== {}: hollow guest", scenario.name);
            let hollow_stats = kwctl.bench(&run, &timing, &workspace)?;

            // The document-floor guest: the pod read and handed back, no lookup, no patch.
            let floor_stats = match &doc_floor {
                Some(module) => {
                    let run = Run {
                        module,
                        session: None,
                        ..run
                    };
                    kwctl.check(&run, scenario, Expect::NoPatch, "the doc-floor guest")?;
                    eprintln!("== {}: doc-floor guest", scenario.name);
                    Some(kwctl.bench(&run, &timing, &workspace)?)
                }
                None => None,
            };
            Some((ours_stats, (hollow_stats, floor_stats)))
        } else {
            None
        };
        let (ours_result, guests) = ours_result.unzip();
        let (hollow_result, floor_result) = guests.unzip();
        let floor_result = floor_result.flatten();
        let peer_result = match (&peer, scenario.peer) {
            (Some(peer), Some(expect)) => {
                let settings = dir.join("peer-settings.json");
                std::fs::write(&settings, serde_json::to_vec(&peer.settings)?)?;
                let run = Run {
                    module: &peer.wasm,
                    request: &request,
                    settings: &settings,
                    session: None,
                };
                kwctl.check(&run, scenario, expect, "the peer")?;
                eprintln!("== {}: peer", scenario.name);
                Some(kwctl.bench(&run, &timing, &workspace)?)
            }
            _ => None,
        };
        rows.push(Row {
            name: scenario.name.clone(),
            bytes: scenario.request_bytes(),
            target: scenario.target,
            ours: ours_result,
            peer: peer_result,
            hollow: hollow_result,
            doc_floor: floor_result,
        });
    }

    let mut table = String::new();
    let _ = writeln!(
        table,
        "One warm instance for every call ({version} `bench`), ours against the peer on the same request:\n"
    );
    let _ = writeln!(
        table,
        "| scenario | request bytes | ours median | ours p95 | peer median | peer p95 | ours/peer (target) | hollow median | hollow/peer | doc-floor median | doc-floor/peer |"
    );
    let _ = writeln!(
        table,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for row in &rows {
        let cell = |s: &Option<Stats>, p95: bool| match s {
            Some(s) if p95 => s.p95.map_or("-".into(), human),
            Some(s) => human(s.median),
            None => "-".into(),
        };
        let target = row.target.map_or(String::new(), |t| format!(" (≤ {t})"));
        let _ = writeln!(
            table,
            "| {} | {} | {} | {} | {} | {} | {}{target} | {} | {} | {} | {} |",
            row.name,
            row.bytes,
            cell(&row.ours, false),
            cell(&row.ours, true),
            cell(&row.peer, false),
            cell(&row.peer, true),
            ratio(
                row.ours.as_ref().map(|s| s.median),
                row.peer.as_ref().map(|s| s.median),
                row.target
            ),
            cell(&row.hollow, false),
            ratio(
                row.hollow.as_ref().map(|s| s.median),
                row.peer.as_ref().map(|s| s.median),
                None
            ),
            cell(&row.doc_floor, false),
            ratio(
                row.doc_floor.as_ref().map(|s| s.median),
                row.peer.as_ref().map(|s| s.median),
                None
            ),
        );
    }
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let _ = writeln!(
        table,
        "\nModules: ours {:.1} KiB ({} bytes, {}; annotated for kwctl: {} bytes), peer {}.",
        size(&ours) as f64 / 1024.0,
        size(&ours),
        ours.display(),
        size(&annotated),
        peer.as_ref().map_or("not measured".into(), |p| format!(
            "{:.1} KiB ({} bytes)",
            size(&p.wasm) as f64 / 1024.0,
            size(&p.wasm)
        )),
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
    bytes: usize,
    target: Option<f64>,
    ours: Option<Stats>,
    peer: Option<Stats>,
    hollow: Option<Stats>,
    doc_floor: Option<Stats>,
}

/// The hollow guest of `scenario`: ours' answer (from the e2e-tests host, with one lookup
/// answered) baked in, with our lookup when ours makes one.
fn hollow_module(ours: &Policy, scenario: &Scenario) -> Result<Vec<u8>> {
    let evaluation = ours.validate(
        &scenario.request,
        &scenario.settings,
        &scenario.capabilities()?,
    )?;
    scenarios::hollow_module(scenario, &evaluation.validation)
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
        let program = match std::env::var_os("KWCTL").filter(|p| !p.is_empty()) {
            // A bare name is looked up on PATH; a path is taken from the workspace root.
            Some(p) if !p.to_string_lossy().contains('/') => PathBuf::from(p),
            Some(p) => workspace.join(p),
            None => e2e_tests::kwctl::find_tool("KWCTL", "kwctl")
                .context("no kwctl: set KWCTL=/path/to/kwctl or put kwctl on PATH")?,
        };
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

    /// One `kwctl run` of the scenario: the module must allow it, patched or not as expected.
    fn check(&self, run: &Run, scenario: &Scenario, expect: Expect, who: &str) -> Result<()> {
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
        ensure!(
            response["allowed"] == Value::Bool(expect != Expect::Denied),
            "{}: {who} answered {response} under kwctl",
            scenario.name
        );
        let patched = response.get("patch").is_some_and(|p| !p.is_null());
        match expect {
            Expect::Patch => ensure!(patched, "{}: {who}: no patch under kwctl", scenario.name),
            Expect::NoPatch | Expect::Denied => ensure!(
                !patched,
                "{}: {who}: unexpected patch under kwctl",
                scenario.name
            ),
        }
        if let Some(warnings) = response.get("warnings").filter(|w| !w.is_null()) {
            eprintln!("{}: {who}: warnings {warnings}", scenario.name);
        }
        Ok(())
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
