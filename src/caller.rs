//! Caller identity: turns the request's `userInfo` into the values of the
//! managed annotations and env vars (`identityInjection`), decides who is
//! trusted, and which `identityBindings` the requester unlocks.
//!
//! No other module reads `userInfo`. Writing stays in `podedit`.
//! Trust model (README "Caller identity"): an untrusted requester always gets
//! its own claims stamped, overwriting whatever the object carried, so a
//! managed value on an object is either the policy's stamp or was copied by a
//! trusted controller from a template the policy stamped.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::podedit;
use crate::request::{Input, UserInfo};
use crate::settings::{IdentityBinding, IdentityInjection, OnMissingRequired};

/// Where a claim's value comes from in `userInfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source<'a> {
    Username,
    Uid,
    Groups,
    Extra(&'a str),
}

fn source<'a>(cfg: &'a IdentityInjection, claim: &'a str) -> Source<'a> {
    let mapped = cfg.claim_mappings.get(claim).map(String::as_str);
    match mapped.unwrap_or(claim) {
        "username" | "preferred_username" => Source::Username,
        "uid" | "sub" => Source::Uid,
        "groups" => Source::Groups,
        other => match mapped.and_then(|m| m.strip_prefix("extra.")) {
            Some(key) => Source::Extra(key),
            None => Source::Extra(other),
        },
    }
}

/// Every non-empty value of `claim` for this requester (one for username
/// and uid; any number for groups and extra).
pub fn claim_values(cfg: &IdentityInjection, user: &UserInfo, claim: &str) -> Vec<String> {
    let values: Vec<String> = match source(cfg, claim) {
        Source::Username => vec![user.username.clone()],
        Source::Uid => vec![user.uid.clone()],
        Source::Groups => user.groups.clone(),
        Source::Extra(key) => user.extra.get(key).cloned().unwrap_or_default(),
    };
    values.into_iter().filter(|v| !v.is_empty()).collect()
}

/// The claim as one string (multi-valued claims joined with `,`); `None`
/// when absent or empty.
pub fn claim_value(cfg: &IdentityInjection, user: &UserInfo, claim: &str) -> Option<String> {
    let values = claim_values(cfg, user, claim);
    if values.is_empty() {
        None
    } else {
        let escaped: Vec<String> = values.iter().map(|v| escape_value(v)).collect();
        Some(escaped.join(","))
    }
}

/// A multi-valued claim is stamped joined with `,` (Union's format). A
/// value that itself holds `,` (an LDAP DN group, say) has it written as
/// `%2C` (and `%` as `%25`), so the stamp splits back into exactly the
/// requester's values: `"x,ml-engineers"` must never read as `ml-engineers`.
fn escape_value(value: &str) -> String {
    if value.contains([',', '%']) {
        value.replace('%', "%25").replace(',', "%2C")
    } else {
        value.to_string()
    }
}

/// The values of a stamp made by [`claim_value`].
fn split_stamp(stamp: &str) -> impl Iterator<Item = String> + '_ {
    stamp
        .split(',')
        .map(|v| v.replace("%2C", ",").replace("%25", "%"))
}

/// True for the controllers that copy templates into objects.
pub fn is_trusted(cfg: &IdentityInjection, user: &UserInfo) -> bool {
    let trusted = &cfg.trusted_requesters;
    trusted.usernames.contains(&user.username)
        || user.groups.iter().any(|g| trusted.groups.contains(g))
}

/// The managed keys with the values this requester's claims give them;
/// `None` means the claim is missing and the key must be removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stamp {
    pub annotations: Vec<(String, Option<String>)>,
    pub env: Vec<(String, Option<String>)>,
    /// `(claim, target)` of required claims that are missing.
    pub missing_required: Vec<(String, String)>,
}

impl Stamp {
    /// The targets that receive a value, for the audit log.
    pub fn stamped_keys(&self) -> Vec<&str> {
        self.annotations
            .iter()
            .chain(&self.env)
            .filter(|(_, v)| v.is_some())
            .map(|(k, _)| k.as_str())
            .collect()
    }
}

/// What the requester's own claims stamp.
pub fn stamp_for(cfg: &IdentityInjection, user: &UserInfo) -> Stamp {
    let mut stamp = Stamp::default();
    for (targets, out) in [
        (&cfg.annotations, &mut stamp.annotations),
        (&cfg.environment_variables, &mut stamp.env),
    ] {
        for target in targets {
            let value = claim_value(cfg, user, &target.claim_name);
            if value.is_none() && target.required {
                stamp
                    .missing_required
                    .push((target.claim_name.clone(), target.target_key.clone()));
            }
            out.push((target.target_key.clone(), value));
        }
    }
    stamp
}

/// JSON pointer of the pod template in an object of this kind, for every
/// kind whose pods the trust model covers; `Some("")` for a Pod itself.
pub fn template_pointer(group: &str, kind: &str) -> Option<&'static str> {
    match (group, kind) {
        ("", "Pod") => Some(""),
        ("", "ReplicationController")
        | ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet")
        | ("batch", "Job") => Some("/spec/template"),
        ("batch", "CronJob") => Some("/spec/jobTemplate/spec/template"),
        _ => None,
    }
}

/// The annotations the requester's identity unlocks, merged in settings
/// order (a later binding wins on the same key).
///
/// The effective value of a binding's claim is the requester's own claim
/// when it is untrusted, and, when it is a trusted controller, the managed
/// annotation stamped from that claim on the pod (only meaningful when
/// identity injection is on, since only then is that annotation unforgeable).
pub fn bound_annotations<'a>(
    cfg: &IdentityInjection,
    bindings: &'a [IdentityBinding],
    user: &UserInfo,
    pod_annotations: &BTreeMap<&str, &str>,
) -> BTreeMap<&'a str, &'a str> {
    let trusted = is_trusted(cfg, user);
    let mut merged = BTreeMap::new();
    for binding in bindings {
        let values: Vec<String> = if !trusted {
            claim_values(cfg, user, &binding.claim)
        } else if cfg.enabled {
            cfg.annotations
                .iter()
                .filter(|t| t.claim_name == binding.claim)
                .filter_map(|t| pod_annotations.get(t.target_key.as_str()))
                .flat_map(|v| split_stamp(v))
                .collect()
        } else {
            Vec::new()
        };
        if values.iter().any(|v| binding.values.contains(v)) {
            merged.extend(
                binding
                    .annotations
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            );
        }
    }
    merged
}

/// A copy of a template with every managed annotation and env var removed
/// (and lists or maps left empty by that dropped), for comparing two
/// templates "apart from the stamp".
pub fn without_managed(cfg: &IdentityInjection, template: &Value) -> Value {
    let mut copy = template.clone();
    if let Some(meta) = copy.get_mut("metadata").and_then(Value::as_object_mut) {
        // `null`, `{}` and absent are the same annotations to Kubernetes.
        let empty = match meta.get_mut("annotations") {
            Some(Value::Object(annotations)) => {
                for target in &cfg.annotations {
                    annotations.remove(&target.target_key);
                }
                annotations.is_empty()
            }
            Some(Value::Null) => true,
            _ => false,
        };
        if empty {
            meta.remove("annotations");
        }
    }
    for list in ["containers", "initContainers"] {
        let Some(containers) = copy
            .pointer_mut(&format!("/spec/{list}"))
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        for container in containers.iter_mut().filter_map(Value::as_object_mut) {
            // `null`, `[]` and absent are the same env list to Kubernetes.
            let empty = match container.get_mut("env") {
                Some(Value::Array(env)) => {
                    env.retain(|e| {
                        let name = e.get("name").and_then(Value::as_str).unwrap_or("");
                        !cfg.environment_variables
                            .iter()
                            .any(|t| t.target_key == name)
                    });
                    env.is_empty()
                }
                Some(Value::Null) => true,
                _ => false,
            };
            if empty {
                container.remove("env");
            }
        }
    }
    copy
}

/// The managed values a template currently carries, as a [`Stamp`]
/// (env values from the first container that sets each name).
pub fn managed_in(cfg: &IdentityInjection, template: &Value) -> Stamp {
    let annotation = |key: &str| {
        template
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(key))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let env = |name: &str| {
        ["containers", "initContainers"]
            .iter()
            .filter_map(|list| template.pointer(&format!("/spec/{list}")))
            .filter_map(Value::as_array)
            .flatten()
            .filter_map(|c| c.get("env").and_then(Value::as_array))
            .flatten()
            .find(|e| e.get("name").and_then(Value::as_str) == Some(name))
            .and_then(|e| e.get("value").and_then(Value::as_str))
            .map(str::to_string)
    };
    Stamp {
        annotations: cfg
            .annotations
            .iter()
            .map(|t| (t.target_key.clone(), annotation(&t.target_key)))
            .collect(),
        env: cfg
            .environment_variables
            .iter()
            .map(|t| (t.target_key.clone(), env(&t.target_key)))
            .collect(),
        missing_required: Vec::new(),
    }
}

/// What caller identity does to the pod template of a request.
pub enum Plan {
    /// Leave the managed keys as they are.
    Keep,
    /// Put back the previous version's values (a workload UPDATE that is not a rollout).
    Restore,
    /// Stamp the requester's own claims.
    Stamp(Stamp),
}

/// Decides the [`Plan`] for the pod template at `pointer` of `current` (the object as it is,
/// not edited), requested by `user`. A missing required claim under `onMissingRequired: warn`
/// adds to `warnings`; a refusal is its message (naming `object_ref`) and status code.
pub fn plan(
    cfg: &IdentityInjection,
    input: &Input,
    current: &Value,
    pointer: &str,
    object_ref: &str,
    user: &str,
    warnings: &mut Vec<String>,
) -> Result<Plan, (String, u16)> {
    let Some(template) = current.pointer(pointer).filter(|t| t.is_object()) else {
        // No pod template to stamp; the API server validates the rest.
        return Ok(Plan::Keep);
    };
    if let Err(malformed) = podedit::check_shape(template) {
        return Err((
            format!("{object_ref}: {}{malformed}", template_path(pointer)),
            400,
        ));
    }
    let old_template = input.old_object.pointer(pointer).filter(|t| t.is_object());
    if let (true, Some(old)) = (input.operation == "UPDATE", old_template) {
        if pointer.is_empty() {
            // A Pod's managed annotations can only be changed by its stamp.
            let before = managed_in(cfg, old);
            let after = managed_in(cfg, template);
            if let Some((key, _)) = before
                .annotations
                .iter()
                .zip(&after.annotations)
                .find(|(b, a)| b.1 != a.1)
                .map(|(b, _)| b)
            {
                return Err((
                    format!(
                        "{object_ref}: annotation {key:?} is managed by caller identity injection and cannot be changed by {user:?}"
                    ),
                    403,
                ));
            }
            return Ok(Plan::Keep);
        }
        if without_managed(cfg, old) == without_managed(cfg, template) {
            // Not a new rollout: the previous stamp stays, restored if tampered.
            return Ok(Plan::Restore);
        }
    }
    let stamp = stamp_for(cfg, &input.user);
    for (claim, target) in &stamp.missing_required {
        let message = format!(
            "{object_ref}: required claim {claim:?} for {target:?} is missing from the identity of {user:?}"
        );
        match cfg.on_missing_required {
            OnMissingRequired::Reject => return Err((message, 403)),
            OnMissingRequired::Warn => {
                warnings.push(format!("{message}; {target:?} is left unset"))
            }
        }
    }
    Ok(Plan::Stamp(stamp))
}

/// `spec.template.` for `/spec/template`: the prefix that makes a path
/// inside the pod template a path inside the object (empty for a Pod).
pub fn template_path(pointer: &str) -> String {
    let dotted = pointer.trim_start_matches('/').replace('/', ".");
    if dotted.is_empty() {
        dotted
    } else {
        dotted + "."
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Settings;
    use serde_json::json;

    fn cfg(raw: &str) -> IdentityInjection {
        Settings::from_json(raw.as_bytes())
            .unwrap()
            .identity_injection
    }

    fn alice() -> UserInfo {
        UserInfo {
            username: "alice".into(),
            uid: "u-1".into(),
            groups: vec!["eng".into(), "system:authenticated".into()],
            extra: BTreeMap::from([("email".to_string(), vec!["alice@example.com".to_string()])]),
        }
    }

    #[test]
    fn default_claim_sources() {
        let c = cfg("{}");
        let u = alice();
        assert_eq!(
            claim_value(&c, &u, "preferred_username").as_deref(),
            Some("alice")
        );
        assert_eq!(claim_value(&c, &u, "username").as_deref(), Some("alice"));
        assert_eq!(claim_value(&c, &u, "sub").as_deref(), Some("u-1"));
        assert_eq!(claim_value(&c, &u, "uid").as_deref(), Some("u-1"));
        assert_eq!(
            claim_value(&c, &u, "groups").as_deref(),
            Some("eng,system:authenticated")
        );
        assert_eq!(
            claim_value(&c, &u, "email").as_deref(),
            Some("alice@example.com")
        );
        assert_eq!(claim_value(&c, &u, "team"), None);
    }

    #[test]
    fn claim_mappings_override() {
        let c = cfg(
            r#"{"identityInjection":{"claimMappings":{"sub":"extra.email","login":"username"}}}"#,
        );
        let u = alice();
        assert_eq!(
            claim_value(&c, &u, "sub").as_deref(),
            Some("alice@example.com")
        );
        assert_eq!(claim_value(&c, &u, "login").as_deref(), Some("alice"));
    }

    #[test]
    fn trust_defaults_to_kube_system_controllers() {
        let c = cfg("{}");
        let rs = UserInfo {
            username: "system:serviceaccount:kube-system:replicaset-controller".into(),
            groups: vec!["system:serviceaccounts:kube-system".into()],
            ..UserInfo::default()
        };
        let kcm = UserInfo {
            username: "system:kube-controller-manager".into(),
            ..UserInfo::default()
        };
        assert!(is_trusted(&c, &rs) && is_trusted(&c, &kcm));
        assert!(!is_trusted(&c, &alice()));
    }

    #[test]
    fn missing_claims_are_removed_and_required_ones_reported() {
        let c = cfg(r#"{"identityInjection":{"enabled":true,
                "annotations":[{"claimName":"preferred_username","targetKey":"union.ai/created-by","required":true},
                               {"claimName":"team","targetKey":"union.ai/team"}],
                "environmentVariables":[{"claimName":"sub","targetKey":"UNION_USER_SUBJECT","required":true}]}}"#);
        let u = UserInfo {
            username: "bob".into(),
            ..UserInfo::default()
        };
        let stamp = stamp_for(&c, &u);
        assert_eq!(
            stamp.annotations,
            [
                ("union.ai/created-by".to_string(), Some("bob".to_string())),
                ("union.ai/team".to_string(), None)
            ]
        );
        assert_eq!(stamp.env, [("UNION_USER_SUBJECT".to_string(), None)]);
        assert_eq!(
            stamp.missing_required,
            [("sub".to_string(), "UNION_USER_SUBJECT".to_string())]
        );
        assert_eq!(stamp.stamped_keys(), ["union.ai/created-by"]);
    }

    #[test]
    fn values_with_commas_survive_the_stamp() {
        let settings = Settings::from_json(
            br#"{"identityInjection":{"enabled":true,"annotations":[{"claimName":"groups","targetKey":"g"}]},
                "identityBindings":[{"claim":"groups","values":["ml-engineers"],"annotations":{"a/b":"c"}},
                                    {"claim":"groups","values":["cn=ml,ou=g"],"annotations":{"d/e":"f"}}]}"#,
        )
        .unwrap();
        let c = &settings.identity_injection;
        let user = UserInfo {
            username: "u".into(),
            groups: vec!["x,ml-engineers".into(), "cn=ml,ou=g".into(), "100%".into()],
            ..UserInfo::default()
        };
        let stamp = claim_value(c, &user, "groups").unwrap();
        assert_eq!(stamp, "x%2Cml-engineers,cn=ml%2Cou=g,100%25");
        assert_eq!(split_stamp(&stamp).collect::<Vec<_>>(), user.groups);
        let controller = UserInfo {
            username: "system:kube-controller-manager".into(),
            ..UserInfo::default()
        };
        let annotations = BTreeMap::from([("g", stamp.as_str())]);
        let bound = bound_annotations(c, &settings.identity_bindings, &controller, &annotations);
        assert_eq!(bound.into_iter().collect::<Vec<_>>(), [("d/e", "f")]);
    }

    #[test]
    fn template_pointers() {
        assert_eq!(template_pointer("", "Pod"), Some(""));
        assert_eq!(
            template_pointer("apps", "Deployment"),
            Some("/spec/template")
        );
        assert_eq!(
            template_pointer("batch", "CronJob"),
            Some("/spec/jobTemplate/spec/template")
        );
        assert_eq!(template_pointer("", "ConfigMap"), None);
        assert_eq!(template_pointer("extensions", "Deployment"), None);
    }

    #[test]
    fn bindings_use_own_claims_for_untrusted_and_the_stamp_for_trusted() {
        let settings = Settings::from_json(
            br#"{"identityInjection":{"enabled":true,"annotations":[{"claimName":"groups","targetKey":"union.ai/user-groups"}]},
                "identityBindings":[{"claim":"groups","values":["eng"],"annotations":{"eks.amazonaws.com/role-arn":"arn:aws:iam::111122223333:role/eng"}}]}"#,
        )
        .unwrap();
        let c = &settings.identity_injection;
        let forged = BTreeMap::from([("union.ai/user-groups", "eng")]);
        let mallory = UserInfo {
            username: "mallory".into(),
            groups: vec!["sales".into()],
            ..UserInfo::default()
        };
        assert!(bound_annotations(c, &settings.identity_bindings, &mallory, &forged).is_empty());
        assert_eq!(
            bound_annotations(c, &settings.identity_bindings, &alice(), &BTreeMap::new()).len(),
            1
        );
        let controller = UserInfo {
            username: "system:serviceaccount:kube-system:job-controller".into(),
            groups: vec!["system:serviceaccounts:kube-system".into()],
            ..UserInfo::default()
        };
        let stamped = BTreeMap::from([("union.ai/user-groups", "platform,eng")]);
        assert_eq!(
            bound_annotations(c, &settings.identity_bindings, &controller, &stamped).len(),
            1
        );
        assert!(bound_annotations(
            c,
            &settings.identity_bindings,
            &controller,
            &BTreeMap::new()
        )
        .is_empty());
    }

    #[test]
    fn comparison_ignores_managed_keys_only() {
        let c = cfg(r#"{"identityInjection":{"enabled":true,
                "annotations":[{"claimName":"preferred_username","targetKey":"union.ai/created-by"}],
                "environmentVariables":[{"claimName":"sub","targetKey":"UNION_USER_SUBJECT"}]}}"#);
        let stamped = json!({"metadata": {"annotations": {"union.ai/created-by": "alice"}},
            "spec": {"containers": [{"name": "a", "image": "x", "env": [{"name": "UNION_USER_SUBJECT", "value": "u-1"}]}]}});
        let plain = json!({"metadata": {}, "spec": {"containers": [{"name": "a", "image": "x"}]}});
        assert_eq!(without_managed(&c, &stamped), without_managed(&c, &plain));
        let other_image =
            json!({"metadata": {}, "spec": {"containers": [{"name": "a", "image": "y"}]}});
        assert_ne!(
            without_managed(&c, &stamped),
            without_managed(&c, &other_image)
        );
        let managed = managed_in(&c, &stamped);
        assert_eq!(managed.annotations[0].1.as_deref(), Some("alice"));
        assert_eq!(managed.env[0].1.as_deref(), Some("u-1"));
    }
}
