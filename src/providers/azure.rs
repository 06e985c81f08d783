//! Azure Workload Identity, drop-in for Azure/azure-workload-identity.
//!
//! Contract (Azure/azure-workload-identity v1.6.0, `pkg/webhook/webhook.go` and `consts.go`):
//! pods labelled `azure.workload.identity/use: "true"` (the webhook's
//! objectSelector, here `azure.requireUseLabel`) get `AZURE_CLIENT_ID`
//! (SA `client-id`), `AZURE_TENANT_ID` (SA `tenant-id`, else
//! `azure.tenantId`), `AZURE_FEDERATED_TOKEN_FILE` and `AZURE_AUTHORITY_HOST`,
//! each added only when the container lacks it and the value is not empty,
//! plus a projected token. A label without a `client-id` still mutates, as
//! upstream does. With `requireUseLabel: false` an unlabelled pod is mutated
//! when its SA has a non-empty `client-id`.
//!
//! The token lifetime (pod annotation wins over SA, default 3600) must be an
//! integer in 3600..=86400, else the pod is denied, as upstream does. The
//! proxy sidecar is not supported (this policy adds no containers): its
//! annotations only give a warning.
//!
//! Two token layouts: v1.5 (the long-standing one, default) and v1.6.0,
//! whose volume is named after sha256 of the pod's name. Unlike v1.6, an
//! existing volume or mount of the same name is kept (see `podedit`).

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::{projected_token_volume, split_list, Context, Findings, Resolution, TokenLayout};
use crate::podedit::{env_value, Injection, Mount};
use crate::settings::{AzureSettings, AzureTokenLayout};

const PROVIDER: &str = "Azure Workload Identity";

/// ≤ v1.5.1: `TokenFilePathName` and `TokenFileMountPath`.
pub const LAYOUT_V1_5: TokenLayout = crate::names::AZURE_V1_5;

/// v1.6.0: `ProjectedVolumeNamePrefix`, `VolumeMountPath`, `TokenFilePath`.
/// `volume_name` is only the prefix: see [`v1_6_volume_name`].
pub const LAYOUT_V1_6: TokenLayout = crate::names::AZURE_V1_6;

/// Hex digits of the hash in a v1.6 volume name: volume names are DNS
/// labels of at most 63 characters.
const V1_6_HASH_LEN: usize = 63 - LAYOUT_V1_6.volume_name.len();

/// Token lifetime bounds and default (seconds), as upstream.
pub const MIN_TOKEN_EXPIRATION_SECONDS: i64 = 3600;
pub const MAX_TOKEN_EXPIRATION_SECONDS: i64 = 86400;
pub const DEFAULT_TOKEN_EXPIRATION_SECONDS: i64 = 3600;

/// Label and annotation keys.
pub mod keys {
    // Pod label; `"true"` opts the pod in.
    pub const USE_LABEL: &str = "azure.workload.identity/use";
    // ServiceAccount annotations.
    pub const CLIENT_ID: &str = "azure.workload.identity/client-id";
    pub const TENANT_ID: &str = "azure.workload.identity/tenant-id";
    // Pod (wins) and ServiceAccount annotation.
    pub const TOKEN_EXPIRATION: &str = "azure.workload.identity/service-account-token-expiration";
    // Pod annotations.
    pub const SKIP_CONTAINERS: &str = "azure.workload.identity/skip-containers";
    pub const INJECT_PROXY_SIDECAR: &str = "azure.workload.identity/inject-proxy-sidecar";
    pub const PROXY_SIDECAR_PORT: &str = "azure.workload.identity/proxy-sidecar-port";
}

/// Pod annotations of upstream features this policy does not implement;
/// their presence (any value, as upstream) gives a warning.
const UNSUPPORTED_POD_ANNOTATIONS: [&str; 2] =
    [keys::INJECT_PROXY_SIDECAR, keys::PROXY_SIDECAR_PORT];

fn has_use_label(pod_labels: &BTreeMap<&str, &str>) -> bool {
    pod_labels.get(keys::USE_LABEL) == Some(&"true")
}

/// Whether Azure can apply to this pod before the ServiceAccount is read:
/// the pod carries the use label, or `requireUseLabel` is off (then
/// [`resolve`] decides on the SA's `client-id`).
pub fn wanted(settings: &AzureSettings, pod_labels: &BTreeMap<&str, &str>) -> bool {
    !settings.require_use_label || has_use_label(pod_labels)
}

/// Resolves the Azure injection: on for a labelled pod, or, with
/// `requireUseLabel: false`, for an SA with a non-empty `client-id`.
pub fn resolve(settings: &AzureSettings, ctx: &Context, findings: &mut Findings) -> Resolution {
    let sa = &ctx.sa_annotations;
    let client_id = sa.get(keys::CLIENT_ID).copied().unwrap_or("");
    let labelled = has_use_label(&ctx.pod_labels);
    let active = labelled || (!settings.require_use_label && !client_id.is_empty());
    if !active {
        return None;
    }
    for key in UNSUPPORTED_POD_ANNOTATIONS {
        if ctx.pod_annotations.contains_key(key) {
            findings.warnings.push(format!(
                "Pod annotation {key:?} is not supported: this policy injects no containers, so no azwi-proxy sidecar is added; {PROVIDER} is injected without it"
            ));
        }
    }
    let expiration = token_expiration(ctx, findings)?;

    // Upstream: an SA `tenant-id` annotation, even empty, wins over the default.
    let tenant_id = match sa.get(keys::TENANT_ID) {
        Some(tenant) => tenant,
        None => settings.tenant_id.as_deref().unwrap_or(""),
    };
    let (layout, volume_name) = match settings.token_layout {
        AzureTokenLayout::V1_5 => (LAYOUT_V1_5, LAYOUT_V1_5.volume_name.to_string()),
        AzureTokenLayout::V1_6 => (LAYOUT_V1_6, v1_6_volume_name(&pod_identity(ctx.pod))),
    };
    let token_file = format!("{}/{}", layout.mount_path, layout.token_file);
    let env = [
        ("AZURE_CLIENT_ID", client_id),
        ("AZURE_TENANT_ID", tenant_id),
        ("AZURE_FEDERATED_TOKEN_FILE", token_file.as_str()),
        ("AZURE_AUTHORITY_HOST", settings.authority_host.as_str()),
    ];
    let skip_containers = ctx
        .pod_annotations
        .get(keys::SKIP_CONTAINERS)
        .map(|v| split_list(v, ';'))
        .unwrap_or_default();

    Some(Injection {
        volumes: vec![projected_token_volume(
            &volume_name,
            &settings.audience,
            expiration,
            layout.token_file,
            settings.token_default_mode,
        )],
        mounts: vec![Mount {
            volume: volume_name,
            path: layout.mount_path.to_string(),
        }],
        // One group per variable: a user-set one is kept, the others added.
        env_groups: env
            .into_iter()
            .filter(|(_, value)| !value.is_empty())
            .map(|(name, value)| vec![env_value(name, value)])
            .collect(),
        skip_containers,
        identity_env: &["AZURE_CLIENT_ID", "AZURE_TENANT_ID"],
        ..Injection::new(PROVIDER)
    })
}

/// The pod annotation if set and non-empty, else the SA's, else 3600; not
/// an integer or outside 3600..=86400 is a denial (`None`), as upstream.
fn token_expiration(ctx: &Context, findings: &mut Findings) -> Option<i64> {
    fn set<'a>(map: &BTreeMap<&str, &'a str>) -> Option<&'a str> {
        map.get(keys::TOKEN_EXPIRATION)
            .copied()
            .filter(|v| !v.is_empty())
    }
    let (owner, value) = match (set(&ctx.pod_annotations), set(&ctx.sa_annotations)) {
        (Some(value), _) => ("Pod".to_string(), value),
        (None, Some(value)) => (format!("ServiceAccount {}:", ctx.sa), value),
        (None, None) => return Some(DEFAULT_TOKEN_EXPIRATION_SECONDS),
    };
    match value.parse::<i64>() {
        Ok(seconds)
            if (MIN_TOKEN_EXPIRATION_SECONDS..=MAX_TOKEN_EXPIRATION_SECONDS).contains(&seconds) =>
        {
            Some(seconds)
        }
        _ => {
            findings.denials.push(format!(
                "{owner} annotation {:?} is {value:?}, expected an integer number of seconds between {MIN_TOKEN_EXPIRATION_SECONDS} and {MAX_TOKEN_EXPIRATION_SECONDS}",
                keys::TOKEN_EXPIRATION
            ));
            None
        }
    }
}

/// What upstream hashes: `metadata.name`, or `"<generateName> (prefix)"`
/// while the API server has not yet generated the name.
fn pod_identity(pod: &serde_json::Value) -> String {
    let meta = |key: &str| {
        pod.get("metadata")
            .and_then(|m| m.get(key))
            .and_then(serde_json::Value::as_str)
            .unwrap_or("")
    };
    match meta("name") {
        "" => format!("{} (prefix)", meta("generateName")),
        name => name.to_string(),
    }
}

/// `azure-workload-identity-reserved-` + the first 30 hex digits of
/// sha256(pod identity) (upstream `buildVolumeName`).
pub fn v1_6_volume_name(pod_identity: &str) -> String {
    let digest = Sha256::digest(pod_identity.as_bytes());
    let hex: String = digest
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
        .chars()
        .take(V1_6_HASH_LEN)
        .collect();
    format!("{}{hex}", LAYOUT_V1_6.volume_name)
}

/// The ServiceAccount annotations Azure Workload Identity reads, for the ServiceAccount checks.
pub fn service_account_rules() -> Vec<super::AnnotationRule> {
    use super::{is_guid, AnnotationRule as Rule};
    const P: &str = "Azure Workload Identity";
    const GUID: &str = "a GUID, xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";
    vec![
        Rule::new(P, keys::CLIENT_ID, is_guid, GUID),
        Rule::new(P, keys::TENANT_ID, is_guid, GUID),
        Rule::new(
            P,
            keys::TOKEN_EXPIRATION,
            |v| {
                v.parse::<i64>().is_ok_and(|s| {
                    (MIN_TOKEN_EXPIRATION_SECONDS..=MAX_TOKEN_EXPIRATION_SECONDS).contains(&s)
                })
            },
            "a number of seconds from 3600 to 86400",
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::ServiceAccountRef;
    use crate::providers::string_map;
    use rstest::rstest;
    use serde_json::{json, Value};

    const CLIENT: &str = "5f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b";
    const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

    fn sa_ref() -> ServiceAccountRef {
        ServiceAccountRef {
            namespace: "team-a".into(),
            name: "app".into(),
        }
    }

    fn pod(labels: Value, annotations: Value) -> Value {
        json!({
            "metadata": {"name": "web-0", "labels": labels, "annotations": annotations},
            "spec": {"containers": [{"name": "app"}]}
        })
    }

    fn labelled(annotations: Value) -> Value {
        pod(json!({"azure.workload.identity/use": "true"}), annotations)
    }

    /// Runs `resolve` on a pod and SA annotations.
    fn run(settings: &AzureSettings, pod: &Value, sa: Value) -> (Resolution, Findings) {
        let sa_ref = sa_ref();
        let account = json!({"metadata": {"annotations": sa}});
        let ctx = Context {
            pod,
            pod_annotations: string_map(pod, "annotations"),
            pod_labels: string_map(pod, "labels"),
            sa: &sa_ref,
            sa_annotations: string_map(&account, "annotations"),
        };
        let mut findings = Findings::default();
        let resolution = resolve(settings, &ctx, &mut findings);
        (resolution, findings)
    }

    fn env_of(injection: &Injection) -> Vec<(String, String)> {
        injection
            .env_groups
            .iter()
            .flatten()
            .map(|e| {
                (
                    e["name"].as_str().unwrap_or("").to_string(),
                    e["value"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }

    fn env_value_of(injection: &Injection, name: &str) -> Option<String> {
        env_of(injection)
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    fn token_source(injection: &Injection) -> Value {
        injection.volumes[0]["projected"]["sources"][0]["serviceAccountToken"].clone()
    }

    // Expected digests computed independently:
    // printf %s web-0 | sha256sum; printf %s 'web-7d9f8c6b5- (prefix)' | sha256sum
    #[rstest]
    #[case::name(
        "web-0",
        "azure-workload-identity-reserved-1ae6fac6e0a6c45234c7f9a125d492"
    )]
    #[case::generate_name(
        "web-7d9f8c6b5- (prefix)",
        "azure-workload-identity-reserved-cd7b266895366aa30e994542581a9c"
    )]
    fn v1_6_volume_names(#[case] identity: &str, #[case] expected: &str) {
        assert_eq!(v1_6_volume_name(identity), expected);
        assert_eq!(expected.len(), 63);
    }

    #[rstest]
    #[case::name(json!({"name": "web-0", "generateName": "web-"}), "web-0")]
    #[case::generate_name(json!({"generateName": "web-7d9f8c6b5-"}), "web-7d9f8c6b5- (prefix)")]
    #[case::empty_name(json!({"name": "", "generateName": "web-"}), "web- (prefix)")]
    #[case::neither(json!({}), " (prefix)")]
    #[case::non_string_name(json!({"name": 7, "generateName": "web-"}), "web- (prefix)")]
    fn pod_identities(#[case] metadata: Value, #[case] expected: &str) {
        assert_eq!(pod_identity(&json!({ "metadata": metadata })), expected);
    }

    #[rstest]
    #[case::v1_5(
        AzureTokenLayout::V1_5,
        "azure-identity-token",
        "/var/run/secrets/azure/tokens",
        "azure-identity-token",
        "/var/run/secrets/azure/tokens/azure-identity-token"
    )]
    #[case::v1_6(
        AzureTokenLayout::V1_6,
        "azure-workload-identity-reserved-1ae6fac6e0a6c45234c7f9a125d492",
        "/var/run/secrets/azure/wi",
        "token/azure-identity-token",
        "/var/run/secrets/azure/wi/token/azure-identity-token"
    )]
    fn layouts(
        #[case] layout: AzureTokenLayout,
        #[case] volume: &str,
        #[case] mount: &str,
        #[case] path: &str,
        #[case] token_file: &str,
    ) {
        let settings = AzureSettings {
            token_layout: layout,
            ..AzureSettings::default()
        };
        let (injection, findings) = run(&settings, &labelled(json!({})), json!({}));
        let injection = injection.expect("labelled pod is injected");
        assert_eq!(findings, Findings::default());
        assert_eq!(injection.volumes[0]["name"], volume);
        assert_eq!(
            injection.mounts,
            [Mount {
                volume: volume.to_string(),
                path: mount.to_string()
            }]
        );
        assert_eq!(token_source(&injection)["path"], path);
        assert_eq!(
            env_value_of(&injection, "AZURE_FEDERATED_TOKEN_FILE").as_deref(),
            Some(token_file)
        );
    }

    #[rstest]
    #[case::default(None, None, Ok(3600))]
    #[case::sa(None, Some("7200"), Ok(7200))]
    #[case::pod_wins(Some("4000"), Some("7200"), Ok(4000))]
    #[case::empty_pod_falls_back(Some(""), Some("7200"), Ok(7200))]
    #[case::lower_bound(Some("3600"), None, Ok(3600))]
    #[case::upper_bound(None, Some("86400"), Ok(86400))]
    #[case::plus_sign(Some("+5000"), None, Ok(5000))]
    #[case::below(Some("3599"), None, Err("Pod annotation \"azure.workload.identity/service-account-token-expiration\" is \"3599\", expected an integer number of seconds between 3600 and 86400"))]
    #[case::above(None, Some("86401"), Err("ServiceAccount team-a/app: annotation \"azure.workload.identity/service-account-token-expiration\" is \"86401\", expected an integer number of seconds between 3600 and 86400"))]
    #[case::not_integer(Some("3600s"), Some("7200"), Err("Pod annotation \"azure.workload.identity/service-account-token-expiration\" is \"3600s\", expected an integer number of seconds between 3600 and 86400"))]
    #[case::negative(None, Some("-3600"), Err("ServiceAccount team-a/app: annotation \"azure.workload.identity/service-account-token-expiration\" is \"-3600\", expected an integer number of seconds between 3600 and 86400"))]
    #[case::overflow(Some("99999999999999999999"), None, Err("Pod annotation \"azure.workload.identity/service-account-token-expiration\" is \"99999999999999999999\", expected an integer number of seconds between 3600 and 86400"))]
    fn expiration(
        #[case] on_pod: Option<&str>,
        #[case] on_sa: Option<&str>,
        #[case] expected: Result<i64, &str>,
    ) {
        let mut pod_annotations = json!({});
        if let Some(v) = on_pod {
            pod_annotations[keys::TOKEN_EXPIRATION] = json!(v);
        }
        let mut sa = json!({ keys::CLIENT_ID: CLIENT });
        if let Some(v) = on_sa {
            sa[keys::TOKEN_EXPIRATION] = json!(v);
        }
        let (injection, findings) = run(&AzureSettings::default(), &labelled(pod_annotations), sa);
        match expected {
            Ok(seconds) => {
                assert!(findings.denials.is_empty(), "{findings:?}");
                let injection = injection.expect("injected");
                assert_eq!(token_source(&injection)["expirationSeconds"], seconds);
            }
            Err(message) => {
                assert!(injection.is_none());
                assert_eq!(findings.denials, [message]);
            }
        }
    }

    #[rstest]
    #[case::sa_annotation(Some("sa-tenant"), Some("setting-tenant"), Some("sa-tenant"))]
    #[case::fallback_to_setting(None, Some("setting-tenant"), Some("setting-tenant"))]
    #[case::neither(None, None, None)]
    #[case::empty_sa_annotation_wins_and_is_not_injected(Some(""), Some("setting-tenant"), None)]
    fn tenant(
        #[case] on_sa: Option<&str>,
        #[case] setting: Option<&str>,
        #[case] expected: Option<&str>,
    ) {
        let settings = AzureSettings {
            tenant_id: setting.map(str::to_string),
            ..AzureSettings::default()
        };
        let mut sa = json!({ keys::CLIENT_ID: CLIENT });
        if let Some(v) = on_sa {
            sa[keys::TENANT_ID] = json!(v);
        }
        let (injection, _) = run(&settings, &labelled(json!({})), sa);
        let injection = injection.expect("injected");
        assert_eq!(
            env_value_of(&injection, "AZURE_TENANT_ID").as_deref(),
            expected
        );
    }

    #[test]
    fn env_order_and_one_group_per_variable() {
        let (injection, _) = run(
            &AzureSettings::default(),
            &labelled(json!({})),
            json!({ keys::CLIENT_ID: CLIENT, keys::TENANT_ID: TENANT }),
        );
        let injection = injection.expect("injected");
        assert!(injection.env_groups.iter().all(|g| g.len() == 1));
        assert_eq!(
            env_of(&injection),
            [
                ("AZURE_CLIENT_ID".to_string(), CLIENT.to_string()),
                ("AZURE_TENANT_ID".to_string(), TENANT.to_string()),
                (
                    "AZURE_FEDERATED_TOKEN_FILE".to_string(),
                    "/var/run/secrets/azure/tokens/azure-identity-token".to_string()
                ),
                (
                    "AZURE_AUTHORITY_HOST".to_string(),
                    "https://login.microsoftonline.com/".to_string()
                ),
            ]
        );
        assert_eq!(
            token_source(&injection),
            json!({"audience": "api://AzureADTokenExchange", "expirationSeconds": 3600, "path": "azure-identity-token"})
        );
        assert_eq!(injection.provider, "Azure Workload Identity");
    }

    #[rstest]
    #[case::absent(json!({}))]
    #[case::empty(json!({ keys::CLIENT_ID: "" }))]
    fn labelled_pod_without_client_id_is_still_injected(#[case] sa: Value) {
        let (injection, findings) = run(&AzureSettings::default(), &labelled(json!({})), sa);
        let injection = injection.expect("injected");
        assert_eq!(findings, Findings::default());
        let names: Vec<String> = env_of(&injection).into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            ["AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST"]
        );
        assert_eq!(injection.volumes.len(), 1);
    }

    #[rstest]
    // requireUseLabel, label value, SA client-id → wanted before lookup, injected after.
    #[case::label_required_and_present(true, Some("true"), "", true, true)]
    #[case::label_required_missing(true, None, CLIENT, false, false)]
    #[case::label_required_not_true(true, Some("True"), CLIENT, false, false)]
    #[case::label_optional_client_id(false, None, CLIENT, true, true)]
    #[case::label_optional_no_client_id(false, None, "", true, false)]
    #[case::label_optional_label_only(false, Some("true"), "", true, true)]
    #[case::label_optional_label_false_client_id(false, Some("false"), CLIENT, true, true)]
    fn activation(
        #[case] require_use_label: bool,
        #[case] label: Option<&str>,
        #[case] client_id: &str,
        #[case] wanted_before_lookup: bool,
        #[case] injected: bool,
    ) {
        let settings = AzureSettings {
            require_use_label,
            ..AzureSettings::default()
        };
        let labels = match label {
            Some(v) => json!({ keys::USE_LABEL: v }),
            None => json!({"app": "web"}),
        };
        let pod = pod(labels, json!({}));
        assert_eq!(
            wanted(&settings, &string_map(&pod, "labels")),
            wanted_before_lookup
        );
        let sa = if client_id.is_empty() {
            json!({})
        } else {
            json!({ keys::CLIENT_ID: client_id })
        };
        let (injection, _) = run(&settings, &pod, sa);
        assert_eq!(injection.is_some(), injected);
    }

    #[rstest]
    #[case::single("sidecar", &["sidecar"])]
    #[case::semicolons_and_spaces(" istio-proxy ; log-shipper;;", &["istio-proxy", "log-shipper"])]
    #[case::comma_is_not_a_separator("a,b", &["a,b"])]
    #[case::empty("", &[])]
    fn skip_containers(#[case] value: &str, #[case] expected: &[&str]) {
        let (injection, _) = run(
            &AzureSettings::default(),
            &labelled(json!({ keys::SKIP_CONTAINERS: value })),
            json!({ keys::CLIENT_ID: CLIENT }),
        );
        assert_eq!(injection.expect("injected").skip_containers, expected);
    }

    #[test]
    fn proxy_annotations_warn_and_still_inject() {
        let (injection, findings) = run(
            &AzureSettings::default(),
            &labelled(json!({
                keys::INJECT_PROXY_SIDECAR: "false",
                keys::PROXY_SIDECAR_PORT: "not-a-port"
            })),
            json!({ keys::CLIENT_ID: CLIENT }),
        );
        assert!(injection.is_some());
        assert!(findings.denials.is_empty());
        assert_eq!(
            findings.warnings,
            [
                "Pod annotation \"azure.workload.identity/inject-proxy-sidecar\" is not supported: this policy injects no containers, so no azwi-proxy sidecar is added; Azure Workload Identity is injected without it",
                "Pod annotation \"azure.workload.identity/proxy-sidecar-port\" is not supported: this policy injects no containers, so no azwi-proxy sidecar is added; Azure Workload Identity is injected without it",
            ]
        );
    }

    #[test]
    fn inactive_pod_gets_no_warnings() {
        let settings = AzureSettings {
            require_use_label: false,
            ..AzureSettings::default()
        };
        let pod = pod(
            json!({}),
            json!({ keys::INJECT_PROXY_SIDECAR: "true", keys::TOKEN_EXPIRATION: "1" }),
        );
        let (injection, findings) = run(&settings, &pod, json!({}));
        assert!(injection.is_none());
        assert_eq!(findings, Findings::default());
    }

    #[test]
    fn custom_audience_and_authority_host() {
        let settings = AzureSettings {
            audience: "api://AzureADTokenExchangeChina".into(),
            authority_host: "https://login.chinacloudapi.cn/".into(),
            ..AzureSettings::default()
        };
        let (injection, _) = run(
            &settings,
            &labelled(json!({})),
            json!({ keys::CLIENT_ID: CLIENT }),
        );
        let injection = injection.expect("injected");
        assert_eq!(
            token_source(&injection)["audience"],
            "api://AzureADTokenExchangeChina"
        );
        assert_eq!(
            env_value_of(&injection, "AZURE_AUTHORITY_HOST").as_deref(),
            Some("https://login.chinacloudapi.cn/")
        );
    }
}
