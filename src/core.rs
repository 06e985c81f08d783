//! The decision: a pure function of (settings, request, looked-up ServiceAccount).
//!
//! [`decide`] makes at most one lookup, and none when nothing could apply.
//! It never panics and never errors: every failure is an explicit
//! [`Decision::Reject`] with a status code (400 unreadable object, 403 policy
//! refusal, 503 ServiceAccount unreadable with `lookupFailure: reject`).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::caller;
use crate::host::{Lookup, ServiceAccountRef};
use crate::podedit;
use crate::providers::{self, Context, Findings};
use crate::request::Input;
use crate::secrets;
use crate::settings::{LookupFailure, Settings};

/// What the policy answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Admit unchanged.
    Accept {
        warnings: Vec<String>,
        audit: BTreeMap<String, String>,
    },
    /// Admit with this object instead of the request's.
    Mutate {
        object: Value,
        warnings: Vec<String>,
        audit: BTreeMap<String, String>,
    },
    /// Deny with this message and HTTP status code.
    Reject {
        message: String,
        code: u16,
        warnings: Vec<String>,
    },
}

impl Decision {
    #[cfg(test)]
    fn accept() -> Decision {
        Decision::Accept {
            warnings: Vec::new(),
            audit: BTreeMap::new(),
        }
    }
}

/// Audit annotation naming who was stamped (the API server prefixes it
/// with the webhook's name).
pub const AUDIT_STAMPED_BY: &str = "caller-identity-stamped-by";
/// Audit annotation listing the managed keys that received a value.
pub const AUDIT_STAMPED_KEYS: &str = "caller-identity-stamped-keys";

/// Side results collected while deciding.
#[derive(Debug, Default)]
pub(crate) struct Effects {
    pub(crate) warnings: Vec<String>,
    audit: BTreeMap<String, String>,
    /// Whether any edit changed the working copy.
    changed: bool,
}

impl Effects {
    pub(crate) fn reject(self, message: String, code: u16) -> Decision {
        Decision::Reject {
            message,
            code,
            warnings: self.warnings,
        }
    }
}

/// Decides one admission request: Flyte secrets (Pod CREATE only), caller
/// identity (any supported kind, CREATE and UPDATE), then cloud identity
/// (Pod CREATE only), all on the same working copy of the object.
pub fn decide(settings: &Settings, input: &Input, lookup: &dyn Lookup) -> Decision {
    decide_on(settings, input, None, lookup)
}

/// [`decide`] for an owned request: the object is edited in place instead
/// of copied (the waPC path, where the request is not needed afterwards).
pub fn decide_owned(settings: &Settings, mut input: Input, lookup: &dyn Lookup) -> Decision {
    let object = std::mem::take(&mut input.object);
    decide_on(settings, &input, Some(object), lookup)
}

/// `object` is the working copy when the caller gave one up (and then
/// `input.object` is empty); otherwise a copy is made when a step edits.
fn decide_on(
    settings: &Settings,
    input: &Input,
    mut object: Option<Value>,
    lookup: &dyn Lookup,
) -> Decision {
    if input.group.is_empty()
        && input.kind == "ServiceAccount"
        && matches!(input.operation.as_str(), "CREATE" | "UPDATE")
    {
        let account = object.as_ref().unwrap_or(&input.object);
        return crate::serviceaccount::check(settings, &input.namespace, account);
    }
    if settings.verify {
        let pod = object.as_ref().unwrap_or(&input.object);
        return crate::verify::decide(settings, input, pod, lookup);
    }
    let mut fx = Effects::default();
    // Only Pod CREATE carries a pod to give secrets and a cloud identity to:
    // UPDATE cannot change volumes or env, and DELETE has no object.
    let pod_create = input.group.is_empty() && input.kind == "Pod" && input.operation == "CREATE";
    // Secrets before caller identity: the AWS and GCP managers add init
    // containers, which must get the stamp like every other container (or a
    // second pass would stamp them). Before the lookup: a pod whose secrets
    // are unreadable is denied without one.
    if pod_create {
        if let Err(rejection) = flyte_secrets(settings, input, &mut object, &mut fx) {
            return rejection;
        }
    }
    if let Err(rejection) = caller_identity(settings, input, &mut object, &mut fx) {
        return rejection;
    }
    if pod_create {
        if let Err(rejection) = cloud_identity(settings, input, &mut object, lookup, &mut fx) {
            return rejection;
        }
    }
    match object {
        // Every edit reports whether it changed anything: no whole-object comparison.
        Some(object) if fx.changed => Decision::Mutate {
            object,
            warnings: fx.warnings,
            audit: fx.audit,
        },
        _ => Decision::Accept {
            warnings: fx.warnings,
            audit: fx.audit,
        },
    }
}

/// Stamps, keeps or restores the managed caller-identity keys (see `caller`).
fn caller_identity(
    settings: &Settings,
    input: &Input,
    object: &mut Option<Value>,
    fx: &mut Effects,
) -> Result<(), Decision> {
    let cfg = &settings.identity_injection;
    if !cfg.enabled || !matches!(input.operation.as_str(), "CREATE" | "UPDATE") {
        return Ok(());
    }
    let Some(pointer) = caller::template_pointer(&input.group, &input.kind) else {
        return Ok(());
    };
    // Trusted controllers keep what the object carries and are never stamped.
    if caller::is_trusted(cfg, &input.user) {
        return Ok(());
    }
    let current = object.as_ref().unwrap_or(&input.object);
    let object_ref = object_ref(input, current);
    let user = match input.user.username.as_str() {
        "" => "<anonymous>",
        name => name,
    };
    let plan = caller::plan(
        cfg,
        input,
        current,
        pointer,
        &object_ref,
        user,
        &mut fx.warnings,
    )
    .map_err(|(message, code)| std::mem::take(fx).reject(message, code))?;
    let stamp = match plan {
        caller::Plan::Keep => return Ok(()),
        caller::Plan::Restore => None,
        caller::Plan::Stamp(stamp) => Some(stamp),
    };
    let working = object.get_or_insert_with(|| input.object.clone());
    let written = match (working.pointer_mut(pointer), &stamp) {
        (None, _) => Ok(false),
        (Some(t), Some(stamp)) => podedit::write_managed(t, &stamp.annotations, &stamp.env),
        (Some(t), None) => {
            let keys: Vec<String> = cfg
                .annotations
                .iter()
                .map(|t| t.target_key.clone())
                .collect();
            let names: Vec<String> = cfg
                .environment_variables
                .iter()
                .map(|t| t.target_key.clone())
                .collect();
            match input.old_object.pointer(pointer) {
                Some(old) => podedit::restore_managed(t, old, &keys, &names),
                None => Ok(false),
            }
        }
    };
    let changed = match written {
        Ok(changed) => changed,
        Err(malformed) => {
            return Err(std::mem::take(fx).reject(
                format!(
                    "{object_ref}: {}{malformed}",
                    caller::template_path(pointer)
                ),
                400,
            ))
        }
    };
    fx.changed |= changed;
    let Some(values) = stamp else {
        if changed {
            fx.warnings.push(format!(
                "{object_ref}: caller identity keys are managed; the values of the previous version were restored"
            ));
        }
        return Ok(());
    };
    fx.audit
        .insert(AUDIT_STAMPED_BY.to_string(), user.to_string());
    fx.audit.insert(
        AUDIT_STAMPED_KEYS.to_string(),
        values.stamped_keys().join(","),
    );
    Ok(())
}

/// Flyte task secrets for a Pod CREATE (see `secrets`): from the pod alone,
/// never a lookup.
fn flyte_secrets(
    settings: &Settings,
    input: &Input,
    object: &mut Option<Value>,
    fx: &mut Effects,
) -> Result<(), Decision> {
    let pod = object.as_ref().unwrap_or(&input.object);
    if !secrets::wanted(&settings.secrets, pod) || secrets::requests(pod).is_empty() {
        return Ok(());
    }
    let (_, pod_ref) = match checked_pod(input, pod) {
        Ok(found) => found,
        Err(message) => return Err(std::mem::take(fx).reject(message, 400)),
    };
    let mut findings = Findings::default();
    let injections = secrets::resolve(&settings.secrets, pod, &pod_ref, &mut findings);
    fx.warnings.extend(findings.warnings);
    if !findings.denials.is_empty() {
        return Err(std::mem::take(fx).reject(
            format!("pod {pod_ref}: {}", findings.denials.join("; ")),
            403,
        ));
    }
    // A secret's `env_var` must not fill a caller-identity env var: the
    // stamp sets it in every container, and a user-chosen Secret under that
    // name would be a forgery.
    if settings.identity_injection.enabled {
        let managed = &settings.identity_injection.environment_variables;
        let clash = injections
            .iter()
            .flat_map(|i| i.env_groups.iter().flatten())
            .filter_map(|e| e.get("name").and_then(Value::as_str))
            .find(|name| managed.iter().any(|t| t.target_key == *name));
        if let Some(name) = clash {
            return Err(std::mem::take(fx).reject(
                format!(
                    "pod {pod_ref}: a Flyte secret's env_var {name:?} is managed by caller identity injection; choose another env_var"
                ),
                403,
            ));
        }
    }
    if injections.is_empty() {
        return Ok(());
    }
    apply_injections(input, object, &injections, &pod_ref, fx)
}

/// Cloud workload identity for a Pod CREATE, from its ServiceAccount.
fn cloud_identity(
    settings: &Settings,
    input: &Input,
    object: &mut Option<Value>,
    lookup: &dyn Lookup,
    fx: &mut Effects,
) -> Result<(), Decision> {
    let pod = object.as_ref().unwrap_or(&input.object);
    match plan_cloud_identity(settings, input, pod, lookup, fx)? {
        Some(plan) => apply_injections(input, object, &plan.injections, &plan.pod_ref, fx),
        None => Ok(()),
    }
}

/// What a Pod CREATE's ServiceAccount grants, before anything is written.
pub(crate) struct CloudPlan {
    pub(crate) injections: Vec<podedit::Injection>,
    /// `namespace/name` of the Pod, for messages.
    pub(crate) pod_ref: String,
    pub(crate) service_account: ServiceAccountRef,
}

/// The injections a Pod CREATE gets from its ServiceAccount (one lookup), `None` when none
/// applies; a denial (an invalid annotation, an unreadable ServiceAccount with
/// `lookupFailure: reject`) is the `Err`.
pub(crate) fn plan_cloud_identity(
    settings: &Settings,
    input: &Input,
    pod: &Value,
    lookup: &dyn Lookup,
    fx: &mut Effects,
) -> Result<Option<CloudPlan>, Decision> {
    if !pod.is_object() {
        return Err(
            std::mem::take(fx).reject("Pod CREATE request has no pod object".to_string(), 400)
        );
    }
    let (namespace, pod_ref) = match checked_pod(input, pod) {
        Ok(found) => found,
        Err(message) => return Err(std::mem::take(fx).reject(message, 400)),
    };
    let pod_annotations = providers::string_map(pod, "annotations");
    let pod_labels = providers::string_map(pod, "labels");

    let wanted = providers::Wanted::for_pod(settings, &pod_labels, &pod_annotations);
    if !wanted.any() {
        return Ok(None);
    }

    let sa = ServiceAccountRef::of_pod(namespace, pod);
    let account = match lookup.service_account(&sa, settings.lookup_cache) {
        Ok(account) => account,
        Err(error) => {
            let error = crate::host::readable(&error);
            return match settings.lookup_failure {
                LookupFailure::Admit => {
                    fx.warnings.push(format!(
                        "pod {pod_ref}: ServiceAccount {sa} could not be read ({error}); admitted without workload identity (lookupFailure: admit)"
                    ));
                    Ok(None)
                }
                LookupFailure::Reject => Err(std::mem::take(fx).reject(
                    format!(
                        "pod {pod_ref}: ServiceAccount {sa} could not be read ({error}); denied because lookupFailure is \"reject\""
                    ),
                    503,
                )),
            };
        }
    };

    let bound = caller::bound_annotations(
        &settings.identity_injection,
        &settings.identity_bindings,
        &input.user,
        &pod_annotations,
    );
    let ctx = Context {
        pod,
        pod_annotations,
        pod_labels,
        sa: &sa,
        sa_annotations: effective_annotations(settings, &sa, &account, bound),
    };
    let mut findings = Findings::default();
    let mut injections = wanted.resolve(settings, &ctx, &mut findings);
    if let Some(only) =
        providers::opted_in_containers(pod, &ctx.pod_annotations, &pod_ref, &mut findings.warnings)
    {
        for injection in &mut injections {
            injection.only_containers = Some(only.clone());
        }
    }
    let Findings { warnings, denials } = findings;
    fx.warnings.extend(warnings);
    if !denials.is_empty() {
        return Err(
            std::mem::take(fx).reject(format!("pod {pod_ref}: {}", denials.join("; ")), 403)
        );
    }
    if injections.is_empty() {
        return Ok(None);
    }
    Ok(Some(CloudPlan {
        injections,
        pod_ref,
        service_account: sa,
    }))
}

/// The pod's namespace (the request's, else the object's, else `default`)
/// and its `namespace/name` for messages, once its shape is known to be one
/// the policy can edit; the error is the 400 message.
fn checked_pod<'a>(input: &'a Input, pod: &'a Value) -> Result<(&'a str, String), String> {
    let namespace = if input.namespace.is_empty() {
        pod.pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("default")
    } else {
        input.namespace.as_str()
    };
    let pod_ref = pod_ref(namespace, pod);
    match podedit::check_shape(pod) {
        Ok(()) => Ok((namespace, pod_ref)),
        Err(malformed) => Err(format!("pod {pod_ref}: {malformed}")),
    }
}

/// Applies injections to the working copy of the pod.
fn apply_injections(
    input: &Input,
    object: &mut Option<Value>,
    injections: &[podedit::Injection],
    pod_ref: &str,
    fx: &mut Effects,
) -> Result<(), Decision> {
    let working = object.get_or_insert_with(|| input.object.clone());
    match podedit::apply(working, injections, pod_ref, &mut fx.warnings) {
        Ok(changed) => {
            fx.changed |= changed;
            Ok(())
        }
        Err(malformed) => {
            Err(std::mem::take(fx).reject(format!("pod {pod_ref}: {malformed}"), 400))
        }
    }
}

/// `Kind namespace/name` of the request's object, for messages.
fn object_ref(input: &Input, object: &Value) -> String {
    let namespace = if input.namespace.is_empty() {
        object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("")
    } else {
        input.namespace.as_str()
    };
    let name = pod_ref(namespace, object);
    format!("{} {name}", input.kind)
}

/// The ServiceAccount's annotations over identity bindings over the static
/// overlays of settings: `"*"` overlays first, then exact-namespace ones,
/// then the bindings the requester unlocked, then the account's own, each
/// layer overriding the one before.
fn effective_annotations<'a>(
    settings: &'a Settings,
    sa: &ServiceAccountRef,
    account: &'a Value,
    bound: BTreeMap<&'a str, &'a str>,
) -> BTreeMap<&'a str, &'a str> {
    let mut merged = BTreeMap::new();
    for exact in [false, true] {
        for overlay in &settings.service_accounts {
            let matches = overlay.name == sa.name
                && if exact {
                    overlay.namespace == sa.namespace
                } else {
                    overlay.namespace == "*"
                };
            if matches {
                merged.extend(
                    overlay
                        .annotations
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str())),
                );
            }
        }
    }
    merged.extend(bound);
    merged.extend(providers::string_map(account, "annotations"));
    merged
}

/// `namespace/name`, or `namespace/generateName*` before the name exists.
fn pod_ref(namespace: &str, pod: &Value) -> String {
    let meta = |k: &str| {
        pod.get("metadata")
            .and_then(|m| m.get(k))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    match (meta("name"), meta("generateName")) {
        (Some(name), _) => format!("{namespace}/{name}"),
        (None, Some(prefix)) => format!("{namespace}/{prefix}*"),
        (None, None) => format!("{namespace}/<unnamed>"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::cell::RefCell;

    /// In-memory ServiceAccounts; records every lookup.
    struct Accounts {
        annotations: Option<Value>,
        calls: RefCell<Vec<ServiceAccountRef>>,
        /// The `cached` flag of every call.
        cached: RefCell<Vec<bool>>,
    }

    impl Accounts {
        fn with(annotations: Value) -> Accounts {
            Accounts {
                annotations: Some(annotations),
                calls: RefCell::new(Vec::new()),
                cached: RefCell::new(Vec::new()),
            }
        }
        fn missing() -> Accounts {
            Accounts {
                annotations: None,
                calls: RefCell::new(Vec::new()),
                cached: RefCell::new(Vec::new()),
            }
        }
    }

    impl Lookup for Accounts {
        fn service_account(&self, sa: &ServiceAccountRef, cached: bool) -> Result<Value, String> {
            self.calls.borrow_mut().push(sa.clone());
            self.cached.borrow_mut().push(cached);
            match &self.annotations {
                Some(a) => Ok(
                    json!({"metadata": {"name": sa.name, "namespace": sa.namespace, "annotations": a}}),
                ),
                None => Err(format!("serviceaccounts \"{}\" not found", sa.name)),
            }
        }
    }

    fn pod(extra_meta: Value, spec: Value) -> Value {
        let mut meta = json!({"generateName": "web-", "namespace": "team-a"});
        if let (Some(m), Some(e)) = (meta.as_object_mut(), extra_meta.as_object()) {
            m.extend(e.clone());
        }
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec})
    }

    fn simple_pod() -> Value {
        pod(
            json!({}),
            json!({"serviceAccountName": "app", "containers": [{"name": "app", "image": "x"}]}),
        )
    }

    const ROLE: &str = "arn:aws:iam::111122223333:role/app";

    fn run(settings: &Settings, object: Value, accounts: &Accounts) -> Decision {
        decide(settings, &Input::pod_create("team-a", object), accounts)
    }

    fn mutated(decision: Decision) -> (Value, Vec<String>) {
        match decision {
            Decision::Mutate {
                object, warnings, ..
            } => (object, warnings),
            other => panic!("expected a mutation, got {other:?}"),
        }
    }

    fn env_of(container: &Value) -> Vec<(String, String)> {
        container["env"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                (
                    e["name"].as_str().unwrap_or("").to_string(),
                    e["value"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }

    #[test]
    fn aws_irsa_defaults() {
        let accounts = Accounts::with(json!({"eks.amazonaws.com/role-arn": ROLE}));
        let (object, warnings) = mutated(run(&Settings::default(), simple_pod(), &accounts));
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(
            *accounts.calls.borrow(),
            [ServiceAccountRef {
                namespace: "team-a".into(),
                name: "app".into()
            }]
        );
        let container = &object["spec"]["containers"][0];
        assert_eq!(
            env_of(container),
            [
                ("AWS_ROLE_ARN".to_string(), ROLE.to_string()),
                (
                    "AWS_WEB_IDENTITY_TOKEN_FILE".to_string(),
                    "/var/run/secrets/eks.amazonaws.com/serviceaccount/token".to_string()
                ),
            ]
        );
        assert_eq!(
            object["spec"]["volumes"],
            json!([{"name": "aws-iam-token", "projected": {"sources": [{"serviceAccountToken": {
                "audience": "sts.amazonaws.com", "expirationSeconds": 86400, "path": "token"}}]}}])
        );
        assert_eq!(
            container["volumeMounts"],
            json!([{"name": "aws-iam-token", "mountPath": "/var/run/secrets/eks.amazonaws.com/serviceaccount", "readOnly": true}])
        );
    }

    #[test]
    fn output_fed_back_changes_nothing() {
        let accounts = Accounts::with(json!({
            "eks.amazonaws.com/role-arn": ROLE,
            "workload-identity.stackit.cloud/service-account-email": "sa@sa.stackit.cloud"
        }));
        let settings =
            Settings::from_json(br#"{"aws":{"region":"eu-west-1","stsRegionalEndpoints":true}}"#)
                .unwrap();
        let (once, _) = mutated(run(&settings, simple_pod(), &accounts));
        assert_eq!(run(&settings, once, &accounts), Decision::accept());
    }

    #[test]
    fn token_expiration_precedence_and_clamp() {
        let expiry = |pod_value: Option<&str>, sa_value: Option<&str>| {
            let mut sa = json!({"eks.amazonaws.com/role-arn": ROLE});
            if let Some(v) = sa_value {
                sa["eks.amazonaws.com/token-expiration"] = json!(v);
            }
            let meta = match pod_value {
                Some(v) => json!({"annotations": {"eks.amazonaws.com/token-expiration": v}}),
                None => json!({}),
            };
            let object = pod(
                meta,
                json!({"serviceAccountName": "app", "containers": [{"name": "a"}]}),
            );
            let (object, _) = mutated(run(&Settings::default(), object, &Accounts::with(sa)));
            object["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]
                ["expirationSeconds"]
                .clone()
        };
        assert_eq!(expiry(None, None), json!(86400));
        assert_eq!(expiry(None, Some("3600")), json!(3600));
        assert_eq!(expiry(Some("7200"), Some("3600")), json!(7200));
        assert_eq!(expiry(Some("100"), None), json!(600));
        assert_eq!(expiry(Some("1h"), Some("3600")), json!(3600));
    }

    #[test]
    fn no_lookup_when_every_provider_is_off_or_skipped() {
        let accounts = Accounts::with(json!({"eks.amazonaws.com/role-arn": ROLE}));
        let skipping = pod(
            json!({"labels": {
                "eks.amazonaws.com/skip-pod-identity-webhook": "false",
                "workload-identity.stackit.cloud/skip-pod-identity-webhook": "true"
            }}),
            json!({"containers": [{"name": "a"}]}),
        );
        // GCP has no pod-level opt-out; Azure needs its use label.
        let no_gcp = Settings::from_json(br#"{"gcp":{"enabled":false}}"#).unwrap();
        assert_eq!(run(&no_gcp, skipping, &accounts), Decision::accept());
        let off = Settings::from_json(
            br#"{"aws":{"enabled":false},"stackit":{"enabled":false},"gcp":{"enabled":false}}"#,
        )
        .unwrap();
        assert_eq!(run(&off, simple_pod(), &accounts), Decision::accept());
        assert!(accounts.calls.borrow().is_empty());
    }

    #[test]
    fn other_kinds_and_operations_are_accepted_without_lookup() {
        let accounts = Accounts::with(json!({"eks.amazonaws.com/role-arn": ROLE}));
        for (group, kind, operation) in [
            ("", "ConfigMap", "CREATE"),
            ("apps", "Pod", "CREATE"),
            ("", "Pod", "UPDATE"),
            ("", "Pod", "DELETE"),
        ] {
            let input = Input {
                uid: String::new(),
                group: group.into(),
                kind: kind.into(),
                operation: operation.into(),
                namespace: "team-a".into(),
                old_object: Value::Null,
                user: Default::default(),
                object: if operation == "DELETE" {
                    Value::Null
                } else {
                    simple_pod()
                },
            };
            assert_eq!(
                decide(&Settings::default(), &input, &accounts),
                Decision::accept()
            );
        }
        assert!(accounts.calls.borrow().is_empty());
    }

    #[test]
    fn default_service_account_when_name_is_empty() {
        let accounts = Accounts::with(json!({}));
        let object = pod(
            json!({}),
            json!({"serviceAccountName": "", "containers": []}),
        );
        assert_eq!(
            run(&Settings::default(), object, &accounts),
            Decision::accept()
        );
        assert_eq!(accounts.calls.borrow()[0].name, "default");
    }

    #[test]
    fn lookup_failure_modes() {
        let admit = run(&Settings::default(), simple_pod(), &Accounts::missing());
        let Decision::Accept { warnings, .. } = admit else {
            panic!("{admit:?}")
        };
        assert_eq!(
            warnings,
            ["pod team-a/web-*: ServiceAccount team-a/app could not be read (serviceaccounts \"app\" not found); admitted without workload identity (lookupFailure: admit)"]
        );
        let reject = Settings::from_json(br#"{"lookupFailure":"reject"}"#).unwrap();
        let Decision::Reject { message, code, .. } =
            run(&reject, simple_pod(), &Accounts::missing())
        else {
            panic!()
        };
        assert_eq!(code, 503);
        assert!(
            message.contains("ServiceAccount team-a/app could not be read"),
            "{message}"
        );
    }

    #[test]
    fn stackit_denials_are_collected_in_one_message() {
        let accounts = Accounts::with(json!({
            "workload-identity.stackit.cloud/service-account-email": "nope",
            "workload-identity.stackit.cloud/service-account-token-expiration-seconds": "ten"
        }));
        let Decision::Reject { message, code, .. } =
            run(&Settings::default(), simple_pod(), &accounts)
        else {
            panic!()
        };
        assert_eq!(code, 403);
        assert_eq!(
            message,
            "pod team-a/web-*: ServiceAccount team-a/app: annotation \"workload-identity.stackit.cloud/service-account-email\" is \"nope\", expected an email address such as \"my-sa@sa.stackit.cloud\"; ServiceAccount team-a/app: annotation \"workload-identity.stackit.cloud/service-account-token-expiration-seconds\" is \"ten\", expected an integer number of seconds"
        );
    }

    #[test]
    fn stackit_optional_annotations_and_clamp() {
        let accounts = Accounts::with(json!({
            "workload-identity.stackit.cloud/service-account-email": "sa@sa.stackit.cloud",
            "workload-identity.stackit.cloud/service-account-token-expiration-seconds": "60",
            "workload-identity.stackit.cloud/federated-token-file": "/var/run/secrets/custom/tok",
            "workload-identity.stackit.cloud/idp-token-endpoint": "https://idp.example/token",
            "workload-identity.stackit.cloud/idp-token-expiration-seconds": "900"
        }));
        let object = pod(
            json!({}),
            json!({"serviceAccountName": "app", "initContainers": [{"name": "i"}], "containers": [{"name": "a"}]}),
        );
        let (object, warnings) = mutated(run(&Settings::default(), object, &accounts));
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("using 600"), "{warnings:?}");
        for c in [
            &object["spec"]["initContainers"][0],
            &object["spec"]["containers"][0],
        ] {
            assert_eq!(c["volumeMounts"][0]["mountPath"], "/var/run/secrets/custom");
            let names: Vec<String> = env_of(c).into_iter().map(|(n, _)| n).collect();
            assert_eq!(
                names,
                [
                    "STACKIT_SERVICE_ACCOUNT_EMAIL",
                    "STACKIT_FEDERATED_TOKEN_FILE",
                    "STACKIT_IDP_TOKEN_ENDPOINT",
                    "STACKIT_IDP_TOKEN_EXPIRATION_SECONDS"
                ]
            );
        }
        assert_eq!(
            object["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"],
            json!({"audience": "sts.accounts.stackit.cloud", "expirationSeconds": 600, "path": "tok"})
        );
    }

    #[test]
    fn malformed_pod_is_denied_without_lookup() {
        let accounts = Accounts::with(json!({}));
        let object = pod(json!({}), json!({"containers": "app"}));
        let Decision::Reject { message, code, .. } = run(&Settings::default(), object, &accounts)
        else {
            panic!()
        };
        assert_eq!(
            (code, message.as_str()),
            (400, "pod team-a/web-*: spec.containers is not a list")
        );
        assert!(accounts.calls.borrow().is_empty());
    }

    #[test]
    fn flyte_secrets_need_no_lookup_and_bad_ones_deny_before_it() {
        let accounts = Accounts::with(json!({"eks.amazonaws.com/role-arn": ROLE}));
        let flyte = |value: &str| {
            pod(
                json!({"labels": {"inject-flyte-secrets": "true"}, "annotations": {"flyte.secrets/s0": value}}),
                json!({"serviceAccountName": "app", "containers": [{"name": "a"}]}),
            )
        };
        let Decision::Reject { message, code, .. } =
            run(&Settings::default(), flyte("NOT-BASE32"), &accounts)
        else {
            panic!()
        };
        assert_eq!(code, 403);
        assert!(
            message.starts_with("pod team-a/web-*: annotation \"flyte.secrets/s0\": is not base32"),
            "{message}"
        );
        assert!(accounts.calls.borrow().is_empty());

        let off = Settings::from_json(
            br#"{"aws":{"enabled":false},"stackit":{"enabled":false},"gcp":{"enabled":false}}"#,
        )
        .unwrap();
        let value = secrets::encode_text("group: \"db\" key: \"pw\" mount_requirement: ENV_VAR");
        let (object, warnings) = mutated(run(&off, flyte(&value), &accounts));
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(
            object["spec"]["containers"][0]["env"][0]["name"],
            "_FSEC_DB_PW"
        );
        assert!(accounts.calls.borrow().is_empty());
        assert_eq!(run(&off, object, &accounts), Decision::accept());
    }

    #[test]
    fn pod_identity_expiry_is_deterministic_and_spread() {
        let settings = Settings::from_json(
            br#"{"aws":{"podIdentityAssociations":[{"namespace":"team-a","serviceAccount":"app"}]}}"#,
        )
        .unwrap();
        let accounts = Accounts::with(json!({}));
        let expiry = |generate_name: &str| {
            let object = pod(
                json!({"generateName": generate_name}),
                json!({"serviceAccountName": "app", "containers": [{"name": "a"}]}),
            );
            let (object, _) = mutated(run(&settings, object, &accounts));
            object["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]
                ["expirationSeconds"]
                .as_i64()
                .unwrap()
        };
        let values: Vec<i64> = (0..20).map(|i| expiry(&format!("web-{i}-"))).collect();
        for v in &values {
            assert!((79200..=86400).contains(v), "{v}");
        }
        assert_eq!(expiry("web-3-"), values[3], "same pod, same expiry");
        let distinct: std::collections::BTreeSet<_> = values.iter().collect();
        assert!(distinct.len() > 10, "expiries should spread: {values:?}");
    }

    #[test]
    fn lookup_cache_setting_reaches_the_lookup() {
        for (settings, cached) in [(&b"{}"[..], true), (br#"{"lookupCache":false}"#, false)] {
            let settings = Settings::from_json(settings).unwrap();
            let accounts = Accounts::with(json!({"eks.amazonaws.com/role-arn": ROLE}));
            run(&settings, simple_pod(), &accounts);
            assert_eq!(*accounts.cached.borrow(), [cached]);
        }
    }

    #[test]
    fn the_opt_in_list_applies_to_every_provider_and_keeps_skip_lists() {
        let settings = Settings::default();
        let accounts = Accounts::with(json!({
            "eks.amazonaws.com/role-arn": ROLE,
            "workload-identity.stackit.cloud/service-account-email": "sa@sa.stackit.cloud",
        }));
        let object = pod(
            json!({"annotations": {
                "workload-identity.kubewarden.io/containers": "app,proxy,init,typo",
                "eks.amazonaws.com/skip-containers": "proxy",
            }}),
            json!({"serviceAccountName": "app",
                "initContainers": [{"name": "init"}, {"name": "other-init"}],
                "containers": [{"name": "app"}, {"name": "proxy"}, {"name": "other"}]}),
        );
        let (out, warnings) = mutated(run(&settings, object, &accounts));
        let env_names = |pointer: &str| -> Vec<String> {
            out.pointer(pointer)
                .and_then(Value::as_array)
                .map(|env| {
                    env.iter()
                        .filter_map(|e| e["name"].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let aws_and_stackit = env_names("/spec/containers/0/env");
        assert!(aws_and_stackit.contains(&"AWS_ROLE_ARN".to_string()));
        assert!(aws_and_stackit.contains(&"STACKIT_SERVICE_ACCOUNT_EMAIL".to_string()));
        // Skipped by AWS's own list, still opted in for STACKIT.
        assert_eq!(
            env_names("/spec/containers/1/env"),
            ["STACKIT_SERVICE_ACCOUNT_EMAIL"]
        );
        assert!(env_names("/spec/containers/2/env").is_empty());
        assert!(env_names("/spec/initContainers/0/env").contains(&"AWS_ROLE_ARN".to_string()));
        assert!(env_names("/spec/initContainers/1/env").is_empty());
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("\"typo\""), "{warnings:?}");
    }
}
