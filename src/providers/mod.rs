//! Cloud identity providers: what each reads from the pod and its
//! ServiceAccount, and the [`Injection`] it asks for.
//!
//! What is fixed about a provider (volume name, mount path, token file,
//! annotation keys) is a const table row ([`TokenLayout`] rows in
//! [`crate::names`], the `keys` tables); only the parsing rules each anchor
//! webhook has are code.
//! Providers never write the pod: `podedit` does.

pub mod aws;
pub mod azure;
pub mod custom;
pub mod gcp;
pub mod stackit;

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::host::ServiceAccountRef;
use crate::podedit::Injection;
use crate::settings::Settings;

pub use crate::names::TokenLayout;

/// A projected ServiceAccount token volume, as every anchor writes it, with the `defaultMode`
/// of the provider's settings (none: Kubernetes' default, 0644).
pub fn projected_token_volume(
    name: &str,
    audience: &str,
    expiration_seconds: i64,
    file: &str,
    default_mode: Option<i64>,
) -> Value {
    let mut volume = json!({
        "name": name,
        "projected": {
            "sources": [{
                "serviceAccountToken": {
                    "audience": audience,
                    "expirationSeconds": expiration_seconds,
                    "path": file,
                }
            }]
        }
    });
    if let (Some(mode), Some(projected)) = (default_mode, volume.get_mut("projected")) {
        projected["defaultMode"] = mode.into();
    }
    volume
}

/// String-valued entries of `metadata.<field>` (annotations or labels).
/// Non-string values, which the API server would refuse, are ignored.
pub fn string_map<'a>(object: &'a Value, field: &str) -> BTreeMap<&'a str, &'a str> {
    object
        .get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_object)
        .map(|map| {
            map.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.as_str(), v)))
                .collect()
        })
        .unwrap_or_default()
}

/// Everything a provider may read once the ServiceAccount is known.
pub struct Context<'a> {
    pub pod: &'a Value,
    pub pod_annotations: BTreeMap<&'a str, &'a str>,
    pub pod_labels: BTreeMap<&'a str, &'a str>,
    pub sa: &'a ServiceAccountRef,
    pub sa_annotations: BTreeMap<&'a str, &'a str>,
}

/// What resolving the providers produced, besides injections.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Findings {
    pub warnings: Vec<String>,
    /// Each entry is a reason to deny the pod.
    pub denials: Vec<String>,
}

/// The outcome of one provider for one pod.
pub type Resolution = Option<Injection>;

/// Which providers a pod wants, from the settings and the pod's own labels and annotations:
/// decided before the ServiceAccount lookup, which a pod that wants none never needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wanted {
    pub aws: bool,
    pub stackit: bool,
    pub azure: bool,
    pub gcp: bool,
    pub custom: bool,
}

impl Wanted {
    pub fn for_pod(
        settings: &Settings,
        pod_labels: &BTreeMap<&str, &str>,
        pod_annotations: &BTreeMap<&str, &str>,
    ) -> Wanted {
        Wanted {
            aws: settings.aws.enabled && !aws::pod_opted_out(&settings.aws, pod_labels),
            stackit: settings.stackit.enabled
                && !stackit::pod_opted_out(pod_labels, pod_annotations),
            azure: settings.azure.enabled && azure::wanted(&settings.azure, pod_labels),
            gcp: settings.gcp.enabled,
            custom: !settings.custom_providers.is_empty(),
        }
    }

    pub fn any(&self) -> bool {
        self.aws || self.stackit || self.azure || self.gcp || self.custom
    }

    /// Every wanted provider's injection, in the policy's order (AWS, STACKIT, Azure, GCP,
    /// then the custom providers as listed).
    pub fn resolve(
        &self,
        settings: &Settings,
        ctx: &Context,
        findings: &mut Findings,
    ) -> Vec<Injection> {
        let mut injections = Vec::new();
        if self.aws {
            injections.extend(aws::resolve(&settings.aws, ctx, findings));
        }
        if self.stackit {
            injections.extend(stackit::resolve(&settings.stackit, ctx, findings));
        }
        if self.azure {
            injections.extend(azure::resolve(&settings.azure, ctx, findings));
        }
        if self.gcp {
            injections.extend(gcp::resolve(&settings.gcp, ctx, findings));
        }
        if self.custom {
            for provider in &settings.custom_providers {
                injections.extend(custom::resolve(provider, ctx));
            }
        }
        injections
    }
}

/// The pod's opt-in list ([`crate::names::CONTAINERS_ANNOTATION`]): `None` when the pod has
/// none, so every container not skipped gets workload identity. A name the pod has neither
/// among its containers nor among its init containers is a warning, never a silent no-op.
pub fn opted_in_containers(
    pod: &Value,
    pod_annotations: &BTreeMap<&str, &str>,
    pod_ref: &str,
    warnings: &mut Vec<String>,
) -> Option<Vec<String>> {
    let key = crate::names::CONTAINERS_ANNOTATION;
    let names = split_list(pod_annotations.get(key)?, ',');
    let spec = pod.get("spec");
    let has = |name: &str| {
        ["containers", "initContainers"].iter().any(|list| {
            spec.and_then(|s| s.get(*list))
                .and_then(Value::as_array)
                .is_some_and(|l| {
                    l.iter()
                        .any(|c| c.get("name").and_then(Value::as_str) == Some(name))
                })
        })
    };
    if names.is_empty() {
        warnings.push(format!(
            "pod {pod_ref}: annotation {key:?} names no container; no container gets workload identity"
        ));
    }
    for name in names.iter().filter(|n| !has(n)) {
        warnings.push(format!(
            "pod {pod_ref}: annotation {key:?} names {name:?}, which is neither a container nor an init container of the pod; ignored (expected a comma-separated list of the pod's container names)"
        ));
    }
    Some(names)
}

/// A ServiceAccount annotation a provider reads and what a valid value is: the table the
/// ServiceAccount checks ([`crate::serviceaccount`]) read, one per provider.
#[derive(Debug, Clone)]
pub struct AnnotationRule {
    /// The provider, for messages ("AWS IRSA").
    pub provider: &'static str,
    pub key: String,
    pub valid: fn(&str) -> bool,
    /// What a valid value is, for messages.
    pub expected: &'static str,
}

impl AnnotationRule {
    pub fn new(
        provider: &'static str,
        key: impl Into<String>,
        valid: fn(&str) -> bool,
        expected: &'static str,
    ) -> AnnotationRule {
        AnnotationRule {
            provider,
            key: key.into(),
            valid,
            expected,
        }
    }
}

/// Not empty or blank.
pub fn is_non_empty(value: &str) -> bool {
    !value.trim().is_empty()
}

/// Go's `strconv.ParseBool` accepts it.
pub fn is_go_bool(value: &str) -> bool {
    parse_go_bool(value).is_some()
}

/// An Azure client or tenant id: a GUID, `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` in hex digits.
pub fn is_guid(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(part, len)| part.len() == len && part.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Seconds within the bounds the API server accepts for a projected token.
pub fn is_token_lifetime(value: &str) -> bool {
    value.parse::<i64>().is_ok_and(|s| {
        (crate::settings::MIN_TOKEN_EXPIRATION_SECONDS
            ..=crate::settings::MAX_TOKEN_EXPIRATION_SECONDS)
            .contains(&s)
    })
}

/// Go's `strconv.ParseBool`, which the anchors use for boolean annotations.
pub fn parse_go_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// A comma- or semicolon-separated list with blanks trimmed and empties dropped.
pub fn split_list(value: &str, separator: char) -> Vec<String> {
    value
        .split(separator)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_bool_accepts_exactly_go_spellings() {
        for t in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(parse_go_bool(t), Some(true), "{t}");
        }
        for f in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(parse_go_bool(f), Some(false), "{f}");
        }
        for bad in ["yes", "tRUE", "", " true"] {
            assert_eq!(parse_go_bool(bad), None, "{bad}");
        }
    }

    #[test]
    fn lists_are_trimmed_and_empties_dropped() {
        assert_eq!(split_list(" a, b ,,c", ','), ["a", "b", "c"]);
        assert_eq!(split_list("a; b", ';'), ["a", "b"]);
        assert!(split_list("", ',').is_empty());
    }

    #[test]
    fn string_map_ignores_non_strings() {
        let pod = json!({"metadata": {"annotations": {"a": "x", "b": 1, "c": null}}});
        assert_eq!(
            string_map(&pod, "annotations")
                .into_iter()
                .collect::<Vec<_>>(),
            [("a", "x")]
        );
        assert!(string_map(&json!({"metadata": {"labels": []}}), "labels").is_empty());
    }
}
