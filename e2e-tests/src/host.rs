//! The waPC host: a policy module compiled once, then instantiated fresh for every evaluation (as
//! policy-server does on a warm module) with the `kubewarden` host callbacks wired to a replay session.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use serde_json::{json, Value};
use wapc::{HostCallback, WapcHost, WasiParams};
use wasmtime_provider::{WasmtimeEngineProviderBuilder, WasmtimeEngineProviderPre};

use crate::admission::{AdmissionResponse, SettingsValidation, ValidationResponse};
use crate::session::{GetResource, HostRequest, Replay, Session};

/// What the policy may ask the host: kwctl's `--allow-context-aware` and
/// `--replay-host-capabilities-interactions`.
#[derive(Debug, Clone, Default)]
pub struct HostCapabilities {
    /// Without it every `kubernetes/*` call is refused.
    pub allow_context_aware: bool,
    /// Answers for the `kubernetes/*` calls; without one they fail (no cluster to ask).
    pub session: Option<Session>,
}

impl HostCapabilities {
    /// Context-aware access answered from `session`.
    pub fn replay(session: Session) -> Self {
        Self {
            allow_context_aware: true,
            session: Some(session),
        }
    }
}

/// The outcome of one `validate` call.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// The guest's ValidationResponse exactly as it returned it.
    pub validation: Value,
    /// The kwctl-shaped AdmissionResponse built from it.
    pub response: AdmissionResponse,
    /// Number of `kubernetes/*` host calls the guest made (answered or not).
    pub host_calls: usize,
}

/// A compiled policy module.
pub struct Policy {
    pre: WasmtimeEngineProviderPre,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Policy")
    }
}

impl Policy {
    /// Compiles a policy module (WASI enabled, like policy-evaluator).
    pub fn from_bytes(wasm: &[u8]) -> Result<Self> {
        let pre = WasmtimeEngineProviderBuilder::new()
            .module_bytes(wasm)
            .wasi_params(WasiParams::default())
            .build_pre()
            .context("cannot compile the policy module")?;
        Ok(Self { pre })
    }

    /// Reads and compiles a policy module.
    pub fn from_file(path: &Path) -> Result<Self> {
        let wasm = std::fs::read(path)
            .with_context(|| format!("cannot read policy {}", path.display()))?;
        Self::from_bytes(&wasm).with_context(|| format!("in policy {}", path.display()))
    }

    /// Calls the guest's `validate_settings` with the settings JSON.
    pub fn validate_settings(&self, settings: &Value) -> Result<SettingsValidation> {
        let state = Arc::new(HostState::new(&HostCapabilities::default()));
        let output = self.call(&state, "validate_settings", &serde_json::to_vec(settings)?)?;
        serde_json::from_slice(&output)
            .context("validate_settings returned something else than a SettingsValidationResponse")
    }

    /// Calls the guest's `validate` with `{"request": request, "settings": settings}`.
    pub fn validate(
        &self,
        request: &Value,
        settings: &Value,
        capabilities: &HostCapabilities,
    ) -> Result<Evaluation> {
        let state = Arc::new(HostState::new(capabilities));
        let payload = serde_json::to_vec(&json!({"request": request, "settings": settings}))?;
        let output = self.call(&state, "validate", &payload)?;
        let validation: Value =
            serde_json::from_slice(&output).context("validate returned invalid JSON")?;
        let typed: ValidationResponse = serde_json::from_value(validation.clone())
            .context("validate returned something else than a ValidationResponse")?;
        Ok(Evaluation {
            response: AdmissionResponse::from_validation(request, &typed)?,
            validation,
            host_calls: state.calls.load(Ordering::SeqCst),
        })
    }

    fn call(&self, state: &Arc<HostState>, function: &str, payload: &[u8]) -> Result<Vec<u8>> {
        let engine = self
            .pre
            .rehydrate(None)
            .context("cannot instantiate the policy")?;
        let state = Arc::clone(state);
        let callback: Box<HostCallback> =
            Box::new(move |_id, binding, namespace, operation, payload| {
                state
                    .host_call(binding, namespace, operation, payload)
                    .map_err(Into::into)
            });
        let host = WapcHost::new(Box::new(engine), Some(callback))
            .context("cannot initialise the policy (waPC init)")?;
        host.call(function, payload)
            .with_context(|| format!("guest function `{function}` failed"))
    }
}

/// Per-evaluation host state shared with the callback.
struct HostState {
    allow_context_aware: bool,
    replay: Option<Replay>,
    calls: AtomicUsize,
}

impl HostState {
    fn new(capabilities: &HostCapabilities) -> Self {
        Self {
            allow_context_aware: capabilities.allow_context_aware,
            replay: capabilities.session.as_ref().map(Session::replay),
            calls: AtomicUsize::new(0),
        }
    }

    fn host_call(
        &self,
        binding: &str,
        namespace: &str,
        operation: &str,
        payload: &[u8],
    ) -> Result<Vec<u8>, String> {
        let capability = format!("{binding}/{namespace}/{operation}");
        match (binding, namespace) {
            // The SDK's logger; kwctl forwards it to its own log.
            ("kubewarden", "tracing") => return Ok(Vec::new()),
            ("kubewarden", "kubernetes") => {}
            _ => return Err(format!("host capability {capability} is not supported")),
        }
        self.calls.fetch_add(1, Ordering::SeqCst);
        let request = String::from_utf8_lossy(payload);
        if !self.allow_context_aware {
            return Err(format!(
                "{capability} refused: the policy has not been granted access to Kubernetes \
                 resources (kwctl: --allow-context-aware), request {request}"
            ));
        }
        let Some(replay) = &self.replay else {
            return Err(format!(
                "{capability} failed: no replay session to answer {request} \
                 (--replay-host-capabilities-interactions)"
            ));
        };
        if operation != "get_resource" {
            return Err(format!("host capability {capability} is not supported"));
        }
        let request: GetResource = serde_json::from_slice(payload)
            .map_err(|e| format!("{capability}: invalid request {request}: {e}"))?;
        replay.answer(&HostRequest::KubernetesGetResource(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guest_trap_is_an_error() {
        let wat = r#"(module
            (memory (export "memory") 1)
            (func (export "__guest_call") (param i32 i32) (result i32) unreachable))"#;
        let policy = Policy::from_bytes(wat.as_bytes()).unwrap();
        let error = policy
            .validate(
                &json!({"uid": "1"}),
                &json!({}),
                &HostCapabilities::default(),
            )
            .unwrap_err();
        assert!(
            format!("{error:#}").contains("`validate` failed"),
            "{error:#}"
        );
        assert!(policy.validate_settings(&json!({})).is_err());
    }
}
