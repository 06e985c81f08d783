//! The validating instance (`verify: true`): the same module, run after every mutating webhook
//! (`mutating: false`), checks that a Pod carries the workload identity its ServiceAccount grants,
//! instead of giving it. A Pod created while the mutating instance was down, or before the
//! ServiceAccount was annotated, is denied at admission, and reported by the audit scanner
//! (`backgroundAudit: true`) while it runs.
//!
//! The rule is the mutating instance's own: what [`crate::core`] would add to the Pod (env,
//! mounts, volumes, annotations, labels) is missing. When the Pod has the volumes (the mutating
//! instance saw it) a container without the identity was added by a later webhook, a service
//! mesh's proxy: a warning, not a denial. An identity env var set to another value
//! (another role, client or email) is a warning, or a denial with
//! `verifyDifferentIdentity: reject`: the mutating instance keeps such a value when the Pod's spec
//! sets it, as the webhooks do, so only the operator can say whether it is an override or a Pod
//! injected before its ServiceAccount changed. Caller identity and Flyte secrets are not checked:
//! they depend on who sends the request, and the audit scanner is not the Pod's creator.

use serde_json::Value;

use crate::core::{self, Decision, Effects};
use crate::host::Lookup;
use crate::podedit;
use crate::request::Input;
use crate::settings::{Settings, VerifyDifferentIdentity};

/// Verifies a Pod CREATE (an admission or the audit scanner's); anything else is accepted.
pub fn decide(settings: &Settings, input: &Input, pod: &Value, lookup: &dyn Lookup) -> Decision {
    let mut fx = Effects::default();
    let pod_create = input.group.is_empty() && input.kind == "Pod" && input.operation == "CREATE";
    if !pod_create {
        return accept(fx);
    }
    let plan = match core::plan_cloud_identity(settings, input, pod, lookup, &mut fx) {
        Err(decision) => return decision,
        Ok(None) => return accept(fx),
        Ok(Some(plan)) => plan,
    };
    let mut injected = pod.clone();
    let mut ignored = Vec::new();
    if let Err(malformed) =
        podedit::apply(&mut injected, &plan.injections, &plan.pod_ref, &mut ignored)
    {
        return fx.reject(format!("pod {}: {malformed}", plan.pod_ref), 400);
    }
    let Missing {
        pod: mut problems,
        containers,
    } = missing(pod, &injected);
    if problems.is_empty() {
        // The Pod has what the mutating policy gives the Pod itself (the volumes), so it saw this
        // Pod: a container without the identity was added after it, by a webhook that runs later
        // (a service mesh's proxy). Said, not refused.
        fx.warnings.extend(containers.into_iter().map(|c| {
            format!(
                "pod {}: {c}, which ServiceAccount {} grants: added after the mutating policy ran (by a later webhook?), it runs without workload identity",
                plan.pod_ref, plan.service_account
            )
        }));
    } else {
        problems.splice(0..0, containers);
    }
    let different: Vec<String> = plan
        .injections
        .iter()
        .flat_map(|injection| podedit::identity_mismatches(pod, injection))
        .collect();
    match settings.verify_different_identity {
        VerifyDifferentIdentity::Reject => problems.extend(different),
        VerifyDifferentIdentity::Warn => fx.warnings.extend(different.into_iter().map(|d| {
            format!(
                "pod {}: {d}, which ServiceAccount {} grants; kept (set in the Pod's spec, or injected before the ServiceAccount changed: recreate the Pod if it should have the ServiceAccount's)",
                plan.pod_ref, plan.service_account
            )
        })),
    }
    if problems.is_empty() {
        return accept(fx);
    }
    let message = format!(
        "pod {}: does not carry the workload identity ServiceAccount {} grants: {}. It was probably created while the mutating policy was not running, or before the ServiceAccount's identity annotations were set or changed; recreate it (kubectl delete pod, or kubectl rollout restart for a workload) so that the mutating policy injects it",
        plan.pod_ref,
        plan.service_account,
        problems.join("; ")
    );
    fx.reject(message, 403)
}

fn accept(fx: Effects) -> Decision {
    Decision::Accept {
        warnings: fx.warnings,
        audit: Default::default(),
    }
}

/// What `after` (the Pod as the mutating instance would make it) has that `before` lacks.
struct Missing {
    /// Per container: `container "app" lacks env AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE and
    /// mount of volume "aws-iam-token"`.
    containers: Vec<String>,
    /// The Pod's own volumes, annotations and labels.
    pod: Vec<String>,
}

fn missing(before: &Value, after: &Value) -> Missing {
    let names = |list: Option<&Value>, field: &str| -> Vec<String> {
        list.and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|item| item.get(field).and_then(Value::as_str))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let added = |b: Vec<String>, a: Vec<String>| -> Vec<String> {
        a.into_iter().filter(|n| !b.contains(n)).collect()
    };
    let mut containers = Vec::new();
    let mut problems = Vec::new();
    for list in ["containers", "initContainers"] {
        let pointer = format!("/spec/{list}");
        let empty = Vec::new();
        let after_list = after
            .pointer(&pointer)
            .and_then(Value::as_array)
            .unwrap_or(&empty);
        for (i, container) in after_list.iter().enumerate() {
            let old = before.pointer(&format!("{pointer}/{i}"));
            let env = added(
                names(old.and_then(|c| c.get("env")), "name"),
                names(container.get("env"), "name"),
            );
            let mounts = added(
                names(old.and_then(|c| c.get("volumeMounts")), "name"),
                names(container.get("volumeMounts"), "name"),
            );
            if env.is_empty() && mounts.is_empty() {
                continue;
            }
            let name = container.get("name").and_then(Value::as_str).unwrap_or("");
            let mut parts = Vec::new();
            if !env.is_empty() {
                parts.push(format!("env {}", env.join(", ")));
            }
            if !mounts.is_empty() {
                let quoted: Vec<String> = mounts.iter().map(|m| format!("{m:?}")).collect();
                parts.push(format!("mount of volume {}", quoted.join(", ")));
            }
            containers.push(format!("container {name:?} lacks {}", parts.join(" and ")));
        }
    }
    let volumes = added(
        names(before.pointer("/spec/volumes"), "name"),
        names(after.pointer("/spec/volumes"), "name"),
    );
    if !volumes.is_empty() {
        let quoted: Vec<String> = volumes.iter().map(|v| format!("{v:?}")).collect();
        problems.push(format!("the Pod lacks volume {}", quoted.join(", ")));
    }
    for (field, one) in [("annotations", "annotation"), ("labels", "label")] {
        let (b, a) = (
            crate::providers::string_map(before, field),
            crate::providers::string_map(after, field),
        );
        for (key, value) in a {
            match b.get(key) {
                Some(old) if *old == value => {}
                Some(_) => problems.push(format!(
                    "the Pod's {one} {key:?} is not the one it must carry"
                )),
                None => problems.push(format!("the Pod lacks {one} {key:?}")),
            }
        }
    }
    Missing {
        containers,
        pod: problems,
    }
}
