//! Native host for the policy: loads the `.wasm` with `wapc` + `wasmtime-provider` (the engine crates
//! of Kubewarden's policy-evaluator), calls `validate_settings` / `validate`, answers
//! `kubernetes/get_resource` from a kwctl replay session and prints kwctl's AdmissionResponse.
//! Used by the `policy-run` binary and by the end-to-end tests.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use e2e_tests::{HostCapabilities, Policy, Session};
//! let policy = Policy::from_file("policy.wasm".as_ref())?; // compiled once
//! let session = Session::from_file("session.yml".as_ref())?;
//! let request = serde_json::json!({"uid": "1", "kind": {"kind": "ConfigMap"}});
//! let settings = serde_json::json!({});
//! assert!(policy.validate_settings(&settings)?.valid);
//! let evaluation = policy.validate(&request, &settings, &HostCapabilities::replay(session))?;
//! println!("{}", serde_json::to_string(&evaluation.response)?);
//! # Ok(()) }
//! ```

mod admission;
mod fixture;
mod host;
pub mod kwctl;
pub mod metadata;
mod session;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{ensure, Context, Result};

pub use admission::{
    admission_request, AdmissionResponse, SettingsValidation, Status, ValidationResponse,
    NULL_OBJECT_MUTATION,
};
pub use fixture::{optional_json, Fixture};
pub use host::{
    is_interrupt, Evaluation, GuestCallFailure, HostCapabilities, Policy, INTERRUPTED_MESSAGE,
    POLICY_SERVER_TIMEOUT,
};
pub use session::{Exchange, GetResource, HostRequest, HostResponse, Replay, Session};

/// The policy module built from the current sources of the workspace at `workspace`, or the file
/// named by `POLICY_WASM` when set. Builds with `cargo build --release --target wasm32-wasip1` into
/// `target/e2e-wasm`, a target directory of its own so that it never waits on the lock of an outer
/// `cargo test`; `CARGO` names the cargo binary when set.
pub fn policy_wasm(workspace: &Path) -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("POLICY_WASM").filter(|p| !p.is_empty()) {
        return Ok(path.into());
    }
    let target_dir = workspace.join("target").join("e2e-wasm");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(&cargo)
        .current_dir(workspace)
        .args(["build", "--release", "--target", "wasm32-wasip1"])
        .args(["-p", "workload-identity-policy", "--target-dir"])
        .arg(&target_dir)
        .output()
        .with_context(|| format!("cannot run {}", cargo.to_string_lossy()))?;
    ensure!(
        output.status.success(),
        "building the policy for wasm32-wasip1 failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(target_dir.join("wasm32-wasip1/release/workload_identity_policy.wasm"))
}

/// Readable differences between two JSON documents, one line per JSON pointer that differs
/// (`at "/spec/containers/0/env": expected [..], actual (absent)`).
pub fn json_differences(
    (left, a): (&str, &serde_json::Value),
    (right, b): (&str, &serde_json::Value),
) -> Vec<String> {
    let at = |doc: &serde_json::Value, path: &str| {
        doc.pointer(path)
            .map_or("(absent)".into(), serde_json::Value::to_string)
    };
    json_patch::diff(a, b)
        .iter()
        .map(|op| {
            let path = op.path().to_string();
            format!(
                "at {path:?}: {left} {}, {right} {}",
                at(a, &path),
                at(b, &path)
            )
        })
        .collect()
}
