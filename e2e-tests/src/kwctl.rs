//! The real engine: finding Kubewarden's `kwctl` for the tests that run the policy with it.
//!
//! `KWCTL` names the binary; otherwise a `kwctl` on `PATH` is used. A machine without any kwctl
//! (CI included: no kwctl is installed there) skips those tests with one printed `NOTICE` line
//! each. `policy-run`, the project's own host, runs every fixture in every case.
//!
//! kwctl's `run`, `bench`, `pull` and `verify` fetch Sigstore's trust root over the network unless
//! given `--sigstore-trust-config`; [`Kwctl::subcommand`] passes the copy in
//! `e2e-tests/data/sigstore-trust-config.json`, so the tests also run on a machine offline.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{ensure, Context, Result};

/// A kwctl binary.
#[derive(Debug, Clone)]
pub struct Kwctl {
    path: PathBuf,
}

impl Kwctl {
    /// `KWCTL` when set and non-empty, else `kwctl` from `PATH`.
    pub fn find() -> Option<Self> {
        find_tool("KWCTL", "kwctl").map(|path| Self { path })
    }

    /// kwctl for a test named `test`, or `None` (after printing a notice) when the machine has none.
    pub fn for_test(test: &str) -> Option<Self> {
        let kwctl = Self::find();
        if kwctl.is_none() {
            missing(
                test,
                "kwctl",
                "set KWCTL=/path/to/kwctl or put kwctl on PATH",
            );
        }
        kwctl
    }

    /// The binary's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A kwctl command with deterministic output: no backtraces in host errors, no colours.
    pub fn command(&self) -> Command {
        let mut command = Command::new(&self.path);
        command.env("RUST_BACKTRACE", "0").env("NO_COLOR", "1");
        command
    }

    /// `kwctl <name>`, with the offline Sigstore trust config for the subcommands that verify
    /// (`run`, `bench`, `pull`, `verify`).
    pub fn subcommand(&self, name: &str) -> Command {
        let mut command = self.command();
        command.arg(name);
        if matches!(name, "run" | "bench" | "pull" | "verify") {
            command
                .arg("--sigstore-trust-config")
                .arg(sigstore_trust_config());
        }
        command
    }

    /// Runs kwctl with `args`, failing with its output when it exits non-zero.
    pub fn run(&self, args: &[&str]) -> Result<Output> {
        let (name, rest) = args.split_first().context("kwctl: no subcommand")?;
        let output = self
            .subcommand(name)
            .args(rest)
            .output()
            .with_context(|| format!("cannot run {}", self.path.display()))?;
        ensure!(
            output.status.success(),
            "kwctl {} failed ({}):\n{}{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(output)
    }

    /// `kwctl annotate -m metadata -u readme -o out wasm`.
    pub fn annotate(&self, wasm: &Path, metadata: &Path, readme: &Path, out: &Path) -> Result<()> {
        let arg = |p: &Path| p.to_string_lossy().into_owned();
        self.run(&[
            "annotate",
            "-m",
            &arg(metadata),
            "-u",
            &arg(readme),
            "-o",
            &arg(out),
            &arg(wasm),
        ])
        .map(drop)
    }
}

/// A tool the tests need: the path in `variable` when set and non-empty, else `name` on `PATH`.
pub fn find_tool(variable: &str, name: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(variable).filter(|p| !p.is_empty()) {
        return Some(path.into());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Sigstore's public trusted root and signing configuration, as kwctl's `--sigstore-trust-config`
/// takes them (`kwctl` would otherwise download them from Sigstore's TUF repository).
pub fn sigstore_trust_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sigstore-trust-config.json")
}

/// A test cannot run without `tool` (an optional tool the project does not install): one printed
/// notice that it is skipped, on every machine and in CI alike.
pub fn missing(test: &str, tool: &str, how: &str) {
    notice(&format!("{test} SKIPPED: no {tool} ({how})"));
}

/// Prints `NOTICE: message` on the real stderr, which the test harness does not capture (its
/// capture only takes `eprintln!`), so a skip is never silent.
pub fn notice(message: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "NOTICE: {message}");
}

/// The `Error: ...` lines kwctl (and policy-run) print on a failure, without kwctl's log lines.
pub fn error_lines(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let mut lines = Vec::new();
    let mut in_error = false;
    for line in text.lines() {
        if line.starts_with("Error: ") || line.starts_with("error: ") {
            in_error = true;
        } else if is_log_line(line) {
            in_error = false;
        }
        if in_error {
            lines.push(line);
        }
    }
    lines.join("\n").trim_end().to_owned()
}

/// A tracing line of kwctl's log (`2026-11-30T23:29:35.126479Z  INFO ...`).
fn is_log_line(line: &str) -> bool {
    let bytes = line.as_bytes();
    bytes.len() > 20 && bytes[..4].iter().all(u8::is_ascii_digit) && bytes[4] == b'-'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_the_error() {
        let stderr = b"2026-11-30T23:33:24.045419Z  INFO kwctl: replay\nError: Provided settings are not valid: x\n  detail\n2026-11-30T23:33:24.045419Z ERROR kwctl: shut down\n";
        assert_eq!(
            error_lines(stderr),
            "Error: Provided settings are not valid: x\n  detail"
        );
        assert_eq!(error_lines(b"nothing"), "");
    }
}
