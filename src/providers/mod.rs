//! Cloud identity providers: what each reads from the pod and its
//! ServiceAccount, and the [`Injection`] it asks for.
//!
//! What is fixed about a provider (volume name, mount path, token file,
//! annotation keys) is a const table row ([`TokenLayout`], the `KEYS`
//! tables); only the parsing rules each anchor webhook has are code.
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

/// Where a provider's projected ServiceAccount token lives in the pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenLayout {
    /// Name of the projected volume.
    pub volume_name: &'static str,
    /// Directory the volume is mounted at, read-only.
    pub mount_path: &'static str,
    /// File name of the token inside the volume.
    pub token_file: &'static str,
}

/// Every volume the built-in providers own, in one table: settings
/// validation refuses custom providers that clash with any of them. The AWS
/// IRSA mount path also comes from settings (`aws.tokenMountPath`), which
/// validation adds. Azure v1.6's `volume_name` is a prefix.
pub const BUILTIN_LAYOUTS: [TokenLayout; 7] = [
    aws::LAYOUT,
    aws::POD_IDENTITY_LAYOUT,
    stackit::LAYOUT,
    azure::LAYOUT_V1_5,
    azure::LAYOUT_V1_6,
    gcp::LAYOUT,
    gcp::CREDENTIAL_LAYOUT,
];

/// Every env var name the built-in providers and Flyte secrets inject (and
/// the `_FSEC_` prefix of Flyte's). Caller identity may not manage these:
/// it would remove or overwrite what a provider adds, and a second pass
/// would change the pod again.
pub const BUILTIN_ENV_NAMES: [&str; 22] = [
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_STS_REGIONAL_ENDPOINTS",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "STACKIT_SERVICE_ACCOUNT_EMAIL",
    "STACKIT_FEDERATED_TOKEN_FILE",
    "STACKIT_IDP_TOKEN_ENDPOINT",
    "STACKIT_IDP_TOKEN_EXPIRATION_SECONDS",
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_AUTHORITY_HOST",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "CLOUDSDK_AUTH_CREDENTIAL_FILE_OVERRIDE",
    "CLOUDSDK_CORE_PROJECT",
    "CLOUDSDK_COMPUTE_REGION",
    crate::secrets::env::DEFAULT_DIR,
    crate::secrets::env::FILE_PREFIX,
    crate::secrets::env::ENV_PREFIX,
];

/// A projected ServiceAccount token volume, as every anchor writes it.
pub fn projected_token_volume(
    name: &str,
    audience: &str,
    expiration_seconds: i64,
    file: &str,
) -> Value {
    json!({
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
    })
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
