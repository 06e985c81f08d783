//! `policy-run`: `kwctl run` for a local policy module, on the native host. Same flags, same output
//! (one AdmissionResponse JSON line), same replay session files.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Parser;
use e2e_tests::{admission_request, HostCapabilities, Policy, Session};
use serde_json::Value;

/// Run a Kubewarden policy (wasm module) on an admission request, like `kwctl run`.
#[derive(Parser, Debug)]
#[command(name = "policy-run", version)]
struct Args {
    /// AdmissionReview or AdmissionRequest JSON file; `-` reads stdin.
    #[arg(short = 'r', long, value_name = "FILE")]
    request_path: String,
    /// Policy settings as a JSON string.
    #[arg(long, value_name = "JSON", conflicts_with = "settings_path")]
    settings_json: Option<String>,
    /// Policy settings file (YAML or JSON).
    #[arg(short = 's', long, value_name = "FILE")]
    settings_path: Option<PathBuf>,
    /// Grant the policy access to Kubernetes resources (`kubernetes/*` host calls).
    #[arg(long)]
    allow_context_aware: bool,
    /// kwctl session file answering the policy's host calls.
    #[arg(long, value_name = "SESSION.yml")]
    replay_host_capabilities_interactions: Option<PathBuf>,
    /// The policy module: a path or a `file://` URI.
    #[arg(value_name = "POLICY")]
    policy: String,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("Error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<ExitCode> {
    let request = admission_request(read_request(&args.request_path)?)
        .with_context(|| format!("invalid request {}", args.request_path))?;
    let settings = read_settings(&args)?;
    let session = args
        .replay_host_capabilities_interactions
        .as_deref()
        .map(Session::from_file)
        .transpose()?;
    let policy = Policy::from_file(policy_path(&args.policy)?)?;

    let verdict = policy.validate_settings(&settings)?;
    if !verdict.valid {
        eprintln!(
            "Provided settings are not valid: {}",
            verdict.message.unwrap_or_default()
        );
        return Ok(ExitCode::FAILURE);
    }
    let capabilities = HostCapabilities {
        allow_context_aware: args.allow_context_aware,
        session,
    };
    let response = match policy.validate(&request, &settings, &capabilities) {
        Ok(evaluation) => serde_json::to_value(&evaluation.response)?,
        // kwctl and policy-server turn a failing guest into a 500 denial that
        // ignores the webhook's failurePolicy; show exactly that.
        Err(error) => serde_json::json!({
            "uid": request.get("uid").cloned().unwrap_or(Value::Null),
            "allowed": false,
            "status": {
                "message": format!("internal server error: Guest call failure: {error:#}"),
                "code": 500,
            },
        }),
    };
    println!("{}", serde_json::to_string(&response)?);
    Ok(ExitCode::SUCCESS)
}

fn read_request(path: &str) -> Result<Value> {
    let text = if path == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the request from stdin")?;
        text
    } else {
        std::fs::read_to_string(path).with_context(|| format!("cannot read request {path}"))?
    };
    serde_json::from_str(&text).with_context(|| format!("request {path} is not JSON"))
}

fn read_settings(args: &Args) -> Result<Value> {
    let settings: Value = if let Some(json) = &args.settings_json {
        serde_json::from_str(json).context("--settings-json is not JSON")?
    } else if let Some(path) = &args.settings_path {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read settings {}", path.display()))?;
        serde_yaml::from_str(&text)
            .with_context(|| format!("settings {} are not YAML/JSON", path.display()))?
    } else {
        Value::Null
    };
    // An empty settings file means no settings, as in kwctl.
    Ok(if settings.is_null() {
        Value::Object(Default::default())
    } else {
        settings
    })
}

fn policy_path(policy: &str) -> Result<&Path> {
    let path = policy.strip_prefix("file://").unwrap_or(policy);
    if let Some((scheme, _)) = path.split_once("://") {
        bail!("{scheme}:// policies are not supported: give a local .wasm file");
    }
    Ok(Path::new(path))
}
