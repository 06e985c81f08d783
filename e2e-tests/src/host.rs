//! The waPC host: a policy module compiled once, then instantiated fresh for every evaluation (as
//! policy-server does on a warm module) with the `kubewarden` host callbacks wired to a replay session.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{json, Value};
use wapc::{HostCallback, WapcHost, WasiParams};
use wasmtime_provider::{EpochDeadlines, WasmtimeEngineProviderBuilder, WasmtimeEngineProviderPre};

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
    /// How long each `kubernetes/*` answer takes: a slow or hung API server (policy-run's
    /// `--host-call-delay`). The guest waits in its host call meanwhile, as in policy-server.
    pub host_call_delay: Option<Duration>,
}

impl HostCapabilities {
    /// Context-aware access answered from `session`.
    pub fn replay(session: Session) -> Self {
        Self {
            allow_context_aware: true,
            session: Some(session),
            host_call_delay: None,
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

/// The guest failed (a trap, a panic, an `Err` out of a waPC function): waPC's own words, which
/// kwctl and policy-server put in a 500 denial (`internal server error: ...`).
#[derive(Debug)]
pub struct GuestCallFailure(pub String);

impl std::fmt::Display for GuestCallFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for GuestCallFailure {}

/// policy-server's default timeout protection (`--policy-timeout 2`, on unless
/// `--disable-timeout-protection`): wasmtime epoch interruption on the engine and a deadline of
/// two ticks on waPC init and on every call. policy-server ticks the epoch every second; nothing
/// ticks it here, so a deadline never passes: what is measured is the checks compiled into the
/// guest's code and the deadline set per call.
pub const POLICY_SERVER_TIMEOUT: EpochDeadlines = EpochDeadlines {
    wapc_init: 2,
    wapc_func: 2,
};

/// What policy-server answers when it interrupts a policy (policy-evaluator v0.30.4
/// `src/runtimes/wapc/runtime.rs`, on wasmtime-provider's "guest code interrupted, execution
/// deadline exceeded"): a 500 denial, whatever the webhook's failurePolicy.
pub const INTERRUPTED_MESSAGE: &str =
    "Policy execution interrupted because it exceeded the allowed execution time";

/// Whether a failed guest call is the timeout protection's interrupt.
pub fn is_interrupt(failure: &GuestCallFailure) -> bool {
    failure.0.contains("execution deadline exceeded")
}

/// A compiled policy module.
pub struct Policy {
    pre: WasmtimeEngineProviderPre,
    /// The deadlines of every instance, when the module was compiled with epoch interruption.
    epoch_deadlines: Option<EpochDeadlines>,
    /// `contextAwareResources` of the `io.kubewarden.metadata` section as `apiVersion/kind`, when
    /// the module is annotated.
    context_aware_resources: Option<Vec<String>>,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Policy")
    }
}

impl Policy {
    /// Compiles a policy module (WASI enabled, like policy-evaluator; no timeout protection,
    /// like kwctl run).
    pub fn from_bytes(wasm: &[u8]) -> Result<Self> {
        Self::compile(wasm, None, false)
    }

    /// Compiles a policy module as policy-server does by default: with its timeout protection
    /// ([`POLICY_SERVER_TIMEOUT`]).
    pub fn from_bytes_as_policy_server(wasm: &[u8]) -> Result<Self> {
        Self::with_epoch_deadlines(wasm, POLICY_SERVER_TIMEOUT)
    }

    /// Compiles a policy module with epoch interruption and these deadlines (in ticks; nothing
    /// ticks the epoch here, so only a deadline of 0 ever passes).
    pub fn with_epoch_deadlines(wasm: &[u8], deadlines: EpochDeadlines) -> Result<Self> {
        Self::compile(wasm, Some(deadlines), false)
    }

    /// Compiles a policy module with policy-server's timeout protection for a limit of `seconds`
    /// (`--policy-timeout`, or the policy's `timeoutEvalSeconds`), the epoch ticking every second
    /// as policy-server's does (policy-server v1.31.0 `src/lib.rs`; the deadline is
    /// `timeout_eval_seconds` ticks, `src/evaluation/evaluation_environment.rs`). The clock runs
    /// while the guest waits on a host call; the interrupt comes when guest code runs again, so
    /// an evaluation is stopped between `seconds - 1` and `seconds` seconds after it started, or
    /// when its host call returns, whichever is later.
    pub fn with_policy_timeout(wasm: &[u8], seconds: u64) -> Result<Self> {
        let deadlines = EpochDeadlines {
            wapc_init: seconds,
            wapc_func: seconds,
        };
        Self::compile(wasm, Some(deadlines), true)
    }

    fn compile(wasm: &[u8], epoch_deadlines: Option<EpochDeadlines>, tick: bool) -> Result<Self> {
        let context_aware_resources = crate::metadata::context_aware_resources(wasm)?;
        let mut builder = WasmtimeEngineProviderBuilder::new()
            .module_bytes(wasm)
            .wasi_params(WasiParams::default());
        if let Some(deadlines) = epoch_deadlines {
            builder = builder.enable_epoch_interruptions(deadlines);
        }
        if tick {
            let mut config = wasmtime::Config::default();
            config.epoch_interruption(true);
            let engine = wasmtime::Engine::new(&config)
                .map_err(|e| anyhow::anyhow!("cannot create the engine: {e}"))?;
            builder = builder.engine(engine.clone());
            // For the life of the process, as policy-server's ticker.
            std::thread::spawn(move || loop {
                std::thread::sleep(Duration::from_secs(1));
                engine.increment_epoch();
            });
        }
        let pre = builder
            .build_pre()
            .context("cannot compile the policy module")?;
        Ok(Self {
            pre,
            epoch_deadlines,
            context_aware_resources,
        })
    }

    /// Whether the module carries kwctl's metadata (`kwctl annotate`).
    pub fn is_annotated(&self) -> bool {
        self.context_aware_resources.is_some()
    }

    /// Reads and compiles a policy module.
    pub fn from_file(path: &Path) -> Result<Self> {
        let wasm = std::fs::read(path)
            .with_context(|| format!("cannot read policy {}", path.display()))?;
        Self::from_bytes(&wasm).with_context(|| format!("in policy {}", path.display()))
    }

    /// Calls the guest's `validate_settings` with the settings JSON.
    pub fn validate_settings(&self, settings: &Value) -> Result<SettingsValidation> {
        let state = Arc::new(HostState::new(&HostCapabilities::default(), None));
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
        let state = Arc::new(HostState::new(
            capabilities,
            self.context_aware_resources.as_deref(),
        ));
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
            .rehydrate(self.epoch_deadlines)
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
        host.call(function, payload).map_err(|e| {
            anyhow::Error::new(GuestCallFailure(e.to_string()))
                .context(format!("guest function `{function}` failed"))
        })
    }
}

/// Per-evaluation host state shared with the callback.
struct HostState {
    /// The `apiVersion/kind`s the policy may read; `None` means any (an unannotated module under
    /// `--allow-context-aware`, see [`HostState::new`]).
    readable: Option<Vec<String>>,
    replay: Option<Replay>,
    calls: AtomicUsize,
    /// Each `kubernetes/*` answer waits this long.
    delay: Option<Duration>,
}

impl HostState {
    /// kwctl's access rule (kwctl `build_context_aware_allowed_resources`): without
    /// `--allow-context-aware` nothing is readable; with it, what the module's metadata lists.
    /// One deliberate difference: kwctl lets an unannotated module read nothing, policy-run lets it
    /// read anything its session answers, so that `policy.wasm` runs without an annotation step.
    fn new(capabilities: &HostCapabilities, annotated: Option<&[String]>) -> Self {
        let readable = match (capabilities.allow_context_aware, annotated) {
            (false, _) => Some(Vec::new()),
            (true, Some(resources)) => Some(resources.to_vec()),
            (true, None) => None,
        };
        Self {
            readable,
            replay: capabilities.session.as_ref().map(Session::replay),
            calls: AtomicUsize::new(0),
            delay: capabilities.host_call_delay,
        }
    }

    /// Answers one host call with policy-evaluator's words
    /// (`policy-evaluator/src/runtimes/callback.rs`): a refused resource is named, an error of the
    /// replay handler is wrapped as `Callback evaluation failure: ...`.
    fn host_call(
        &self,
        binding: &str,
        namespace: &str,
        operation: &str,
        payload: &[u8],
    ) -> Result<Vec<u8>, String> {
        let capability = format!("{binding}/{namespace}/{operation}");
        match (binding, namespace, operation) {
            // The SDK's logger; kwctl forwards it to its own log.
            ("kubewarden", "tracing", _) => return Ok(Vec::new()),
            ("kubewarden", "kubernetes", "get_resource") => {}
            _ => {
                return Err(format!(
                    "Policy has not been granted access to the '{capability}' host capability. \
                     The violation has been reported."
                ))
            }
        }
        self.calls.fetch_add(1, Ordering::SeqCst);
        if let Some(delay) = self.delay {
            std::thread::sleep(delay);
        }
        let request: GetResource =
            serde_json::from_slice(payload).map_err(|e| format!("{capability}: {e}"))?;
        let resource = format!("{}/{}", request.api_version, request.kind);
        if let Some(readable) = &self.readable {
            if !readable.contains(&resource) {
                return Err(format!(
                    "Policy has not been granted access to Kubernetes {resource} resources. \
                     The violation has been reported."
                ));
            }
        }
        let Some(replay) = &self.replay else {
            return Err(
                "Callback evaluation failure: no replay session answers Kubernetes requests \
                 (policy-run reaches no cluster: pass --replay-host-capabilities-interactions)"
                    .to_owned(),
            );
        };
        replay
            .answer(&HostRequest::KubernetesGetResource(request))
            .map_err(|e| format!("Callback evaluation failure: {e}"))
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
