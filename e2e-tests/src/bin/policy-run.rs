//! `policy-run`: `kwctl run` for a local policy module, on the native host. Same flags, same output
//! (one AdmissionResponse JSON line, byte for byte as kwctl prints it), same replay session files,
//! same exit codes and error messages, checked in the order kwctl checks them (kwctl
//! `config/policy_definition.rs`, `config/pull_and_run.rs`, `command/run.rs`).
//!
//! Deliberate differences, for a local tool without a cluster or a registry:
//! - only local modules (a path or `file://`), never `registry://`;
//! - an unannotated module under `--allow-context-aware` may read what its session answers (kwctl
//!   grants it nothing); an annotated one gets exactly its `contextAwareResources`, as in kwctl;
//! - a missing or malformed session file is an error with exit code 1 (kwctl 1.31 panics in a
//!   background task and exits 0 with no answer).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use clap::Parser;
use e2e_tests::{
    admission_request, is_interrupt, GuestCallFailure, HostCapabilities, Policy, Session, Status,
    INTERRUPTED_MESSAGE,
};
use serde_json::Value;

/// Run a Kubewarden policy (wasm module) on an admission request, like `kwctl run`.
#[derive(Parser, Debug)]
#[command(name = "policy-run", version)]
struct Args {
    /// AdmissionReview or AdmissionRequest JSON file; `-` reads stdin.
    #[arg(short = 'r', long, value_name = "PATH")]
    request_path: String,
    /// Policy settings as a JSON string (`--settings-path` wins when both are given, as in kwctl).
    #[arg(long, value_name = "VALUE")]
    settings_json: Option<String>,
    /// Policy settings file (YAML or JSON).
    #[arg(short = 's', long, value_name = "PATH")]
    settings_path: Option<String>,
    /// Grant the policy access to the Kubernetes resources its metadata lists.
    #[arg(long)]
    allow_context_aware: bool,
    /// kwctl session file answering the policy's host calls.
    #[arg(long, value_name = "FILE")]
    replay_host_capabilities_interactions: Option<PathBuf>,
    /// policy-run only: policy-server's timeout protection, interrupting the policy after this
    /// many seconds (policy-server's `--policy-timeout`, default 2, or the policy's
    /// `timeoutEvalSeconds`), host calls included. kwctl has none, nor has policy-run without it.
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    policy_timeout: Option<u64>,
    /// policy-run only: each answer of the session comes this many milliseconds late (a slow or
    /// hung API server).
    #[arg(long, value_name = "MILLISECONDS")]
    host_call_delay: Option<u64>,
    /// The policy module: a path or a `file://` URI.
    #[arg(value_name = "uri_or_sha_prefix_or_yaml_file")]
    policy: String,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("Error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<()> {
    let settings = read_settings(&args)?;
    let request = read_request(&args.request_path)?;
    let session = args
        .replay_host_capabilities_interactions
        .as_deref()
        .map(Session::from_file)
        .transpose()?;
    let path = policy_path(&args.policy)?;
    let policy = match args.policy_timeout {
        None => Policy::from_file(&path)?,
        Some(seconds) => {
            let wasm = std::fs::read(&path)
                .map_err(|e| anyhow!("cannot read policy {}: {e}", path.display()))?;
            Policy::with_policy_timeout(&wasm, seconds)?
        }
    };
    let request = admission_request(request)?;

    let verdict = match policy.validate_settings(&settings) {
        Ok(verdict) => verdict,
        Err(error) => bail!(
            "Provided settings are not valid: Error invoking settings validation callback: {error:#}"
        ),
    };
    if !verdict.valid {
        bail!(
            "Provided settings are not valid: {}",
            verdict.message.unwrap_or_default()
        );
    }
    let capabilities = HostCapabilities {
        allow_context_aware: args.allow_context_aware,
        session,
        host_call_delay: args.host_call_delay.map(Duration::from_millis),
    };
    let response = match policy.validate(&request, &settings, &capabilities) {
        Ok(evaluation) => serde_json::to_string(&evaluation.response)?,
        // kwctl and policy-server turn a failing guest into a 500 denial that ignores the
        // webhook's failurePolicy (policy-evaluator `reject_internal_server_error`).
        Err(error) => {
            let failure = error.downcast_ref::<GuestCallFailure>();
            let uid = request.get("uid").and_then(Value::as_str).unwrap_or("");
            match failure {
                // policy-server's answer to its own interrupt.
                Some(failure) if is_interrupt(failure) => {
                    denial(uid, INTERRUPTED_MESSAGE.to_string())?
                }
                Some(failure) => denial(uid, format!("internal server error: {failure}"))?,
                None => denial(uid, format!("internal server error: {error:#}"))?,
            }
        }
    };
    println!("{response}");
    Ok(())
}

/// A 500 denial with this message.
fn denial(uid: &str, message: String) -> Result<String> {
    let response = e2e_tests::AdmissionResponse {
        uid: uid.to_owned(),
        allowed: false,
        patch_type: None,
        patch: None,
        status: Some(Status {
            message: Some(message),
            code: Some(500),
        }),
        audit_annotations: None,
        warnings: None,
    };
    Ok(serde_json::to_string(&response)?)
}

fn read_request(path: &str) -> Result<Value> {
    let text = if path == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| anyhow!("Error reading request from stdin: {e}"))?;
        text
    } else {
        std::fs::read_to_string(path)
            .map_err(|e| anyhow!("Error opening request file {path}; {e}"))?
    };
    Ok(serde_json::from_str(&text)?)
}

/// Settings as kwctl reads them: `--settings-path` (YAML or JSON) first, else `--settings-json`;
/// `null` and no settings are `{}`; anything but an object is refused.
fn read_settings(args: &Args) -> Result<Value> {
    let settings: Value = if let Some(path) = &args.settings_path {
        let file = std::fs::File::open(path)
            .map_err(|e| anyhow!("Cannot open settings file {path}: {e}"))?;
        serde_yaml::from_reader(file)
            .map_err(|e| anyhow!("Cannot parse settings file {path}: {e}"))?
    } else if let Some(json) = &args.settings_json {
        serde_json::from_str(json).map_err(|e| anyhow!("Cannot parse settings JSON: {e}"))?
    } else {
        Value::Null
    };
    match settings {
        Value::Null => Ok(Value::Object(Default::default())),
        settings @ Value::Object(_) => Ok(settings),
        _ => bail!("Invalid settings in CRD, not an object"),
    }
}

fn policy_path(policy: &str) -> Result<PathBuf> {
    let path = policy.strip_prefix("file://").unwrap_or(policy);
    if let Some((scheme, _)) = path.split_once("://") {
        bail!("{scheme}:// policies are not supported by policy-run: give a local .wasm file (kwctl pulls them)");
    }
    let path = Path::new(path);
    if !path.is_file() {
        bail!("Cannot find policy with uri: {policy}");
    }
    Ok(path.to_path_buf())
}
