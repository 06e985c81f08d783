//! GCP workload identity federation, drop-in for
//! pfnet-research/gcp-workload-identity-federation-webhook in its `direct`
//! injection mode.
//!
//! Contract (pfnet-research/gcp-workload-identity-federation-webhook at `80d482e`, v0.7.0
//! prep): the SA's `<prefix>/workload-identity-provider`
//! turns it on and must be a provider resource name, else the pod is denied;
//! `service-account-email` adds impersonation, `audience` and
//! `token-expiration` (pod wins over SA, over settings; raised to 3600) tune
//! the token, pod `skip-containers` opts containers out. The credential
//! configuration is the webhook's `external_account` JSON, byte for byte,
//! written to a managed pod annotation and projected by the downward API.
//!
//! Beyond the anchor: a provider without an email is direct federated access
//! (no `service_account_impersonation_url`; the webhook's issue #87), and an
//! email without a provider is denied naming both annotations. Only direct
//! mode exists: `injection-mode: gcloud` warns and injects direct mode, which
//! since the anchor's PR #152 also makes `gcloud` work:
//! `CLOUDSDK_AUTH_CREDENTIAL_FILE_OVERRIDE` names the credential file and
//! `CLOUDSDK_CONFIG` a writable `gcloud-config` emptyDir at
//! `/var/run/secrets/gcloud/config`. Env vars, volumes and mounts the user
//! set are kept (the anchor overwrites `GOOGLE_APPLICATION_CREDENTIALS`,
//! `CLOUDSDK_CONFIG` and same-named volumes and mounts); a lifetime outside
//! 3600..=2^32 is clamped with a warning. GKE's
//! `iam.gke.io/gcp-service-account` needs no mutation and is not read.

use serde_json::{json, Value};

use super::{projected_token_volume, split_list, Context, Findings, Resolution, TokenLayout};
use crate::names::OwnedVolume;
use crate::podedit::{env_value, Injection, Mount};
use crate::settings::{
    GcpSettings, GCP_MIN_TOKEN_EXPIRATION_SECONDS, MAX_TOKEN_EXPIRATION_SECONDS,
};

/// The anchor's token volume (`K8sSATokenVolumeName`, `K8sSATokenMountPath`, `K8sSATokenName`).
pub const LAYOUT: TokenLayout = crate::names::GCP_TOKEN;

/// The downward-API volume that exposes the credential annotation as a file
/// (`DirectInjectedExternalVolumeName`, `DirectInjectedExternalMountPath`,
/// `ExternalCredConfigFilename`).
pub const CREDENTIAL_LAYOUT: TokenLayout = crate::names::GCP_CREDENTIAL;

/// The writable `emptyDir` `CLOUDSDK_CONFIG` points at (`GCloudConfigVolumeName`,
/// `GCloudConfigMountPath`), so `gcloud` works with a read-only root
/// filesystem (the anchor's PR #152 added it to direct mode).
pub const GCLOUD_CONFIG: OwnedVolume = crate::names::GCP_GCLOUD_CONFIG;

/// `defaultMode` of both volumes by default (`gcp.tokenDefaultMode`): the anchor's
/// `--token-default-mode` default 0440.
pub const DEFAULT_MODE: i64 = 0o440;

/// Annotation names, relative to `gcp.annotationPrefix`.
pub mod keys {
    pub const WORKLOAD_IDENTITY_PROVIDER: &str = "workload-identity-provider";
    pub const SERVICE_ACCOUNT_EMAIL: &str = "service-account-email";
    pub const AUDIENCE: &str = "audience";
    /// On the SA and on the pod (the pod's wins).
    pub const TOKEN_EXPIRATION: &str = "token-expiration";
    pub const INJECTION_MODE: &str = "injection-mode";
    /// A pod annotation.
    pub const SKIP_CONTAINERS: &str = "skip-containers";
    /// The pod annotation the policy owns: the credential configuration.
    pub const EXTERNAL_CREDENTIALS_JSON: &str = "external-credentials-json";
}

/// Fixed parts of the anchor's `ExternalAccountCredentials`.
const AUDIENCE_PREFIX: &str = "//iam.googleapis.com/";
const SUBJECT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
const TOKEN_URL: &str = "https://sts.googleapis.com/v1/token";
const IMPERSONATION_URL_PREFIX: &str =
    "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/";
const IMPERSONATION_URL_SUFFIX: &str = ":generateAccessToken";
/// `<name>@<project>` + this is a user-managed Google service account.
const SERVICE_ACCOUNT_DOMAIN: &str = ".iam.gserviceaccount.com";

const PROVIDER_EXAMPLE: &str =
    "projects/123456789012/locations/global/workloadIdentityPools/my-pool/providers/my-provider";

fn key(settings: &GcpSettings, name: &str) -> String {
    format!("{}/{}", settings.annotation_prefix, name)
}

/// Resolves the GCP injection for this pod: direct mode when the
/// (effective) ServiceAccount has a workload identity provider; every
/// invalid annotation is a denial, all of them reported together.
pub fn resolve(settings: &GcpSettings, ctx: &Context, findings: &mut Findings) -> Resolution {
    let sa = &ctx.sa_annotations;
    let provider_key = key(settings, keys::WORKLOAD_IDENTITY_PROVIDER);
    let email_key = key(settings, keys::SERVICE_ACCOUNT_EMAIL);
    let email = sa
        .get(email_key.as_str())
        .copied()
        .filter(|e| !e.is_empty());
    // Presence turns GCP on, as in the anchor: an empty provider is invalid.
    let Some(provider) = sa.get(provider_key.as_str()).copied() else {
        if let Some(email) = email {
            findings.denials.push(format!(
                "ServiceAccount {}: annotation {email_key:?} is {email:?}, expected {provider_key:?} to be set too (the provider alone gives direct federated access)",
                ctx.sa
            ));
        }
        return None;
    };

    let deny_count = findings.denials.len();
    if !is_workload_identity_provider(provider) {
        findings.denials.push(format!(
            "ServiceAccount {}: annotation {provider_key:?} is {provider:?}, expected a provider resource name such as {PROVIDER_EXAMPLE:?}",
            ctx.sa
        ));
    }
    let mode_key = key(settings, keys::INJECTION_MODE);
    if let Some(mode) = sa.get(mode_key.as_str()) {
        match mode.to_ascii_lowercase().as_str() {
            "direct" => {}
            "gcloud" => findings.warnings.push(format!(
                "ServiceAccount {}: annotation {mode_key:?} is {mode:?}, which this policy does not support (it injects no gcloud-setup init container); direct mode is used",
                ctx.sa
            )),
            _ => findings.denials.push(format!(
                "ServiceAccount {}: annotation {mode_key:?} is {mode:?}, expected \"direct\" or \"gcloud\"",
                ctx.sa
            )),
        }
    }
    let expiration = token_expiration(settings, ctx, findings);
    if findings.denials.len() > deny_count {
        return None;
    }

    let audience = sa
        .get(key(settings, keys::AUDIENCE).as_str())
        .copied()
        .filter(|a| !a.is_empty())
        .unwrap_or(settings.audience.as_str());
    let credential_file = format!(
        "{}/{}",
        CREDENTIAL_LAYOUT.mount_path, CREDENTIAL_LAYOUT.token_file
    );
    let annotation_key = key(settings, keys::EXTERNAL_CREDENTIALS_JSON);

    // Each variable is its own group: a user-set one is kept, the rest added.
    // Order as in the anchor: replaced ones, then region, then project.
    let mut env = vec![
        env_value("GOOGLE_APPLICATION_CREDENTIALS", &credential_file),
        env_value("CLOUDSDK_AUTH_CREDENTIAL_FILE_OVERRIDE", &credential_file),
        env_value("CLOUDSDK_CONFIG", GCLOUD_CONFIG.mount_path),
    ];
    if let Some(region) = settings.region.as_deref().filter(|r| !r.is_empty()) {
        env.push(env_value("CLOUDSDK_COMPUTE_REGION", region));
    }
    if let Some(project) = email.and_then(project_of) {
        env.push(env_value("CLOUDSDK_CORE_PROJECT", project));
    }

    Some(Injection {
        volumes: vec![
            token_volume(audience, expiration, settings.token_default_mode),
            credential_volume(&annotation_key, settings.token_default_mode),
            json!({"name": GCLOUD_CONFIG.volume_name, "emptyDir": {}}),
        ],
        mounts: vec![
            Mount {
                volume: LAYOUT.volume_name.to_string(),
                path: LAYOUT.mount_path.to_string(),
            },
            Mount {
                volume: CREDENTIAL_LAYOUT.volume_name.to_string(),
                path: CREDENTIAL_LAYOUT.mount_path.to_string(),
            },
        ],
        // Writable: gcloud keeps its configuration and caches there.
        writable_mounts: vec![Mount {
            volume: GCLOUD_CONFIG.volume_name.to_string(),
            path: GCLOUD_CONFIG.mount_path.to_string(),
        }],
        env_groups: env.into_iter().map(|e| vec![e]).collect(),
        skip_containers: ctx
            .pod_annotations
            .get(key(settings, keys::SKIP_CONTAINERS).as_str())
            .map(|v| split_list(v, ','))
            .unwrap_or_default(),
        managed_annotations: vec![(annotation_key, credential_config(provider, email))],
        ..Injection::new("GCP workload identity federation")
    })
}

/// The SA's and the pod's `token-expiration` (the pod's wins) over the
/// setting. A non-integer on either denies, as in the anchor; the result is
/// raised to 3600 (the anchor's minimum) and capped at 2^32 (the API
/// server's maximum), with a warning when that changes it.
fn token_expiration(settings: &GcpSettings, ctx: &Context, findings: &mut Findings) -> i64 {
    let exp_key = key(settings, keys::TOKEN_EXPIRATION);
    let mut chosen = None;
    let sources = [
        (
            format!("ServiceAccount {}: annotation", ctx.sa),
            ctx.sa_annotations.get(exp_key.as_str()),
        ),
        (
            "Pod annotation".to_string(),
            ctx.pod_annotations.get(exp_key.as_str()),
        ),
    ];
    for (owner, value) in sources {
        let Some(value) = value else { continue };
        match value.parse::<i64>() {
            Ok(seconds) => chosen = Some((owner, value, seconds)),
            Err(_) => findings.denials.push(format!(
                "{owner} {exp_key:?} is {value:?}, expected an integer number of seconds"
            )),
        }
    }
    let Some((owner, value, seconds)) = chosen else {
        return settings.token_expiration_seconds;
    };
    let clamped = seconds.clamp(
        GCP_MIN_TOKEN_EXPIRATION_SECONDS,
        MAX_TOKEN_EXPIRATION_SECONDS,
    );
    if clamped != seconds {
        let bound = if seconds < clamped {
            "below the minimum"
        } else {
            "above the maximum"
        };
        findings.warnings.push(format!(
            "{owner} {exp_key:?} is {value:?}, {bound} of {clamped} seconds; using {clamped}"
        ));
    }
    clamped
}

/// The anchor's `^projects/.+/locations/.+/workloadIdentityPools/.+/providers/.+$`
/// (Go's `.` is any character but a newline).
pub fn is_workload_identity_provider(value: &str) -> bool {
    if value.contains('\n') {
        return false;
    }
    let Some(mut rest) = value.strip_prefix("projects/") else {
        return false;
    };
    // Taking the first separator after a non-empty part leaves the longest
    // remainder, so it matches whenever any split does.
    for separator in ["/locations/", "/workloadIdentityPools/", "/providers/"] {
        let Some((at, _)) = rest.match_indices(separator).find(|(at, _)| *at > 0) else {
            return false;
        };
        let Some(after) = rest.get(at + separator.len()..) else {
            return false;
        };
        rest = after;
    }
    !rest.is_empty()
}

/// The project of a user-managed service account,
/// `<name>@<project>.iam.gserviceaccount.com`; `None` for other addresses
/// or an empty project.
pub fn project_of(email: &str) -> Option<&str> {
    let (_, domain) = email.split_once('@')?;
    domain
        .strip_suffix(SERVICE_ACCOUNT_DOMAIN)
        .filter(|p| !p.is_empty())
}

/// The anchor's `ExternalAccountCredentials` rendered compactly, fields in
/// its order and strings escaped as Go's `encoding/json` does, so the
/// annotation is byte-identical to the webhook's. Without an email there is
/// no `service_account_impersonation_url` (direct federated access).
pub fn credential_config(provider: &str, email: Option<&str>) -> String {
    let impersonation = email
        .map(|email| {
            format!(
                ",\"service_account_impersonation_url\":{}",
                go_json_string(&format!(
                    "{IMPERSONATION_URL_PREFIX}{email}{IMPERSONATION_URL_SUFFIX}"
                ))
            )
        })
        .unwrap_or_default();
    format!(
        "{{\"type\":\"external_account\",\"audience\":{},\"subject_token_type\":{},\"token_url\":{}{impersonation},\"credential_source\":{{\"file\":{},\"format\":{{\"type\":\"text\"}}}}}}",
        go_json_string(&format!("{AUDIENCE_PREFIX}{provider}")),
        go_json_string(SUBJECT_TOKEN_TYPE),
        go_json_string(TOKEN_URL),
        go_json_string(&format!("{}/{}", LAYOUT.mount_path, LAYOUT.token_file)),
    )
}

/// A JSON string literal with Go's HTML-safe escapes (`<`, `>`, `&`,
/// U+2028, U+2029), which appear in JSON only inside strings.
fn go_json_string(value: &str) -> String {
    Value::String(value.to_string())
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// The projected token volume.
fn token_volume(audience: &str, expiration_seconds: i64, default_mode: Option<i64>) -> Value {
    projected_token_volume(
        LAYOUT.volume_name,
        audience,
        expiration_seconds,
        LAYOUT.token_file,
        default_mode,
    )
}

/// The anchor's downward-API volume exposing the credential annotation.
fn credential_volume(annotation_key: &str, default_mode: Option<i64>) -> Value {
    let mut volume = serde_json::json!({
        "name": CREDENTIAL_LAYOUT.volume_name,
        "downwardAPI": {
            "items": [{
                "path": CREDENTIAL_LAYOUT.token_file,
                "fieldRef": {
                    "apiVersion": "v1",
                    "fieldPath": format!("metadata.annotations['{annotation_key}']"),
                }
            }],
        }
    });
    if let (Some(mode), Some(downward)) = (default_mode, volume.get_mut("downwardAPI")) {
        downward["defaultMode"] = mode.into();
    }
    volume
}

/// The ServiceAccount annotations GCP reads, for the ServiceAccount checks.
pub fn service_account_rules(settings: &GcpSettings) -> Vec<super::AnnotationRule> {
    use super::{is_non_empty, AnnotationRule as Rule};
    const P: &str = "GCP workload identity federation";
    vec![
        Rule::new(
            P,
            key(settings, keys::WORKLOAD_IDENTITY_PROVIDER),
            is_workload_identity_provider,
            "a provider resource name, projects/<number>/locations/<location>/workloadIdentityPools/<pool>/providers/<provider>",
        ),
        Rule::new(
            P,
            key(settings, keys::SERVICE_ACCOUNT_EMAIL),
            |v| crate::providers::stackit::is_email(v) && v.ends_with(".gserviceaccount.com"),
            "a Google service account email, <name>@<project>.iam.gserviceaccount.com",
        ),
        Rule::new(P, key(settings, keys::AUDIENCE), is_non_empty, "a token audience"),
        Rule::new(
            P,
            key(settings, keys::TOKEN_EXPIRATION),
            |v| {
                v.parse::<i64>().is_ok_and(|s| {
                    (GCP_MIN_TOKEN_EXPIRATION_SECONDS..=MAX_TOKEN_EXPIRATION_SECONDS).contains(&s)
                })
            },
            "a number of seconds from 3600 to 4294967296",
        ),
        Rule::new(
            P,
            key(settings, keys::INJECTION_MODE),
            |v| v.eq_ignore_ascii_case("direct"),
            "direct (gcloud mode is not supported)",
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::ServiceAccountRef;
    use rstest::rstest;
    use serde_json::json;

    const PROVIDER: &str =
        "projects/123456789/locations/global/workloadIdentityPools/workload-identity-pool/providers/workload-identity";

    #[rstest]
    #[case::typical(PROVIDER, true)]
    #[case::minimal("projects/1/locations/l/workloadIdentityPools/p/providers/x", true)]
    #[case::slashes_inside_parts(
        "projects/a/b/locations/c/workloadIdentityPools/d/e/providers/f/g",
        true
    )]
    #[case::separator_repeated(
        "projects/1/locations/locations/workloadIdentityPools/p/providers/providers/x",
        true
    )]
    #[case::full_resource_name(
        "//iam.googleapis.com/projects/1/locations/l/workloadIdentityPools/p/providers/x",
        false
    )]
    #[case::empty_project("projects//locations/l/workloadIdentityPools/p/providers/x", false)]
    #[case::empty_location("projects/1/locations//workloadIdentityPools/p/providers/x", false)]
    #[case::empty_pool("projects/1/locations/l/workloadIdentityPools//providers/x", false)]
    #[case::empty_provider("projects/1/locations/l/workloadIdentityPools/p/providers/", false)]
    #[case::missing_pool("projects/1/locations/l/providers/x", false)]
    #[case::newline("projects/1/locations/l/workloadIdentityPools/p/providers/x\n", false)]
    #[case::multibyte("projects/é/locations/ü/workloadIdentityPools/ß/providers/漢", true)]
    #[case::empty("", false)]
    fn provider_regex(#[case] value: &str, #[case] expected: bool) {
        assert_eq!(is_workload_identity_provider(value), expected);
    }

    #[rstest]
    #[case::user_managed("app@my-project.iam.gserviceaccount.com", Some("my-project"))]
    #[case::compute_default("123-compute@developer.gserviceaccount.com", None)]
    #[case::empty_project("app@.iam.gserviceaccount.com", None)]
    #[case::no_at("my-project.iam.gserviceaccount.com", None)]
    #[case::trailing_garbage("app@p.iam.gserviceaccount.com.evil", None)]
    #[case::other_domain("someone@example.com", None)]
    fn project_parsing(#[case] email: &str, #[case] expected: Option<&str>) {
        assert_eq!(project_of(email), expected);
    }

    #[test]
    fn credential_json_with_email_is_the_webhooks_rendering() {
        let rendered =
            credential_config(PROVIDER, Some("workload@PROJECT.iam.gserviceaccount.com"));
        // The anchor's external_account_config_test.go "basic" case, compact.
        assert_eq!(
            rendered,
            concat!(
                r#"{"type":"external_account","#,
                r#""audience":"//iam.googleapis.com/projects/123456789/locations/global/workloadIdentityPools/workload-identity-pool/providers/workload-identity","#,
                r#""subject_token_type":"urn:ietf:params:oauth:token-type:jwt","#,
                r#""token_url":"https://sts.googleapis.com/v1/token","#,
                r#""service_account_impersonation_url":"https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/workload@PROJECT.iam.gserviceaccount.com:generateAccessToken","#,
                r#""credential_source":{"file":"/var/run/secrets/sts.googleapis.com/serviceaccount/token","format":{"type":"text"}}}"#
            )
        );
    }

    #[test]
    fn credential_json_without_email_has_no_impersonation() {
        let rendered = credential_config(PROVIDER, None);
        let parsed: Value = serde_json::from_str(&rendered).expect("valid JSON");
        assert_eq!(
            parsed,
            json!({
                "type": "external_account",
                "audience": format!("//iam.googleapis.com/{PROVIDER}"),
                "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
                "token_url": "https://sts.googleapis.com/v1/token",
                "credential_source": {
                    "file": "/var/run/secrets/sts.googleapis.com/serviceaccount/token",
                    "format": {"type": "text"}
                }
            })
        );
    }

    #[test]
    fn credential_json_escapes_like_go() {
        let odd = "projects/a\"b<c>&d/locations/l/workloadIdentityPools/p/providers/x\u{2028}";
        let rendered = credential_config(odd, None);
        assert!(
            rendered.contains(
                r#""//iam.googleapis.com/projects/a\"b\u003cc\u003e\u0026d/locations/l/workloadIdentityPools/p/providers/x\u2028""#
            ),
            "{rendered}"
        );
        let parsed: Value = serde_json::from_str(&rendered).expect("valid JSON");
        assert_eq!(parsed["audience"], format!("//iam.googleapis.com/{odd}"));
    }

    fn expiration(
        setting: i64,
        sa: Option<&str>,
        pod: Option<&str>,
    ) -> (i64, Vec<String>, Vec<String>) {
        let settings = GcpSettings {
            token_expiration_seconds: setting,
            ..GcpSettings::default()
        };
        let account = ServiceAccountRef {
            namespace: "ns".into(),
            name: "app".into(),
        };
        let pod_json = json!({});
        let key = "cloud.google.com/token-expiration";
        let ctx = Context {
            pod: &pod_json,
            pod_annotations: pod.map(|v| (key, v)).into_iter().collect(),
            pod_labels: Default::default(),
            sa: &account,
            sa_annotations: sa.map(|v| (key, v)).into_iter().collect(),
        };
        let mut findings = Findings::default();
        let seconds = token_expiration(&settings, &ctx, &mut findings);
        (seconds, findings.warnings, findings.denials)
    }

    #[rstest]
    #[case::setting_default(86400, None, None, 86400)]
    #[case::sa(86400, Some("7200"), None, 7200)]
    #[case::pod_wins(86400, Some("7200"), Some("10800"), 10800)]
    #[case::pod_only(86400, None, Some("5000"), 5000)]
    #[case::exactly_minimum(86400, Some("3600"), None, 3600)]
    #[case::plus_sign(86400, Some("+4000"), None, 4000)]
    fn expiration_precedence(
        #[case] setting: i64,
        #[case] sa: Option<&str>,
        #[case] pod: Option<&str>,
        #[case] expected: i64,
    ) {
        assert_eq!(expiration(setting, sa, pod), (expected, vec![], vec![]));
    }

    #[rstest]
    #[case::below_minimum_sa(Some("600"), None, 3600, "ServiceAccount ns/app: annotation \"cloud.google.com/token-expiration\" is \"600\", below the minimum of 3600 seconds; using 3600")]
    #[case::negative_pod(Some("7200"), Some("-1"), 3600, "Pod annotation \"cloud.google.com/token-expiration\" is \"-1\", below the minimum of 3600 seconds; using 3600")]
    #[case::above_maximum(None, Some("9999999999"), 4294967296, "Pod annotation \"cloud.google.com/token-expiration\" is \"9999999999\", above the maximum of 4294967296 seconds; using 4294967296")]
    fn expiration_clamp_warns(
        #[case] sa: Option<&str>,
        #[case] pod: Option<&str>,
        #[case] expected: i64,
        #[case] warning: &str,
    ) {
        assert_eq!(
            expiration(86400, sa, pod),
            (expected, vec![warning.to_string()], vec![])
        );
    }

    #[rstest]
    #[case::sa_duration(Some("1h"), None, vec!["ServiceAccount ns/app: annotation \"cloud.google.com/token-expiration\" is \"1h\", expected an integer number of seconds"])]
    #[case::pod_empty(Some("7200"), Some(""), vec!["Pod annotation \"cloud.google.com/token-expiration\" is \"\", expected an integer number of seconds"])]
    #[case::both(Some("x"), Some("3600.5"), vec![
        "ServiceAccount ns/app: annotation \"cloud.google.com/token-expiration\" is \"x\", expected an integer number of seconds",
        "Pod annotation \"cloud.google.com/token-expiration\" is \"3600.5\", expected an integer number of seconds",
    ])]
    fn expiration_non_integer_denies(
        #[case] sa: Option<&str>,
        #[case] pod: Option<&str>,
        #[case] denials: Vec<&str>,
    ) {
        let (_, warnings, got) = expiration(86400, sa, pod);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(got, denials);
    }

    fn resolve_with(sa: &[(&str, &str)]) -> (Resolution, Findings) {
        let account = ServiceAccountRef {
            namespace: "ns".into(),
            name: "app".into(),
        };
        let pod_json = json!({});
        let ctx = Context {
            pod: &pod_json,
            pod_annotations: Default::default(),
            pod_labels: Default::default(),
            sa: &account,
            sa_annotations: sa.iter().copied().collect(),
        };
        let mut findings = Findings::default();
        let resolution = resolve(&GcpSettings::default(), &ctx, &mut findings);
        (resolution, findings)
    }

    #[rstest]
    #[case::no_gcp_keys(&[("iam.gke.io/gcp-service-account", "a@p.iam.gserviceaccount.com")], 0)]
    #[case::empty_email_alone(&[("cloud.google.com/service-account-email", "")], 0)]
    #[case::email_alone(&[("cloud.google.com/service-account-email", "a@p.iam.gserviceaccount.com")], 1)]
    #[case::empty_provider(&[("cloud.google.com/workload-identity-provider", "")], 1)]
    #[case::everything_wrong(&[
        ("cloud.google.com/workload-identity-provider", "pool"),
        ("cloud.google.com/injection-mode", "auto"),
        ("cloud.google.com/token-expiration", "1d"),
    ], 3)]
    fn resolve_off_or_denied(#[case] sa: &[(&str, &str)], #[case] denials: usize) {
        let (resolution, findings) = resolve_with(sa);
        assert_eq!(resolution, None);
        assert!(findings.warnings.is_empty(), "{findings:?}");
        assert_eq!(findings.denials.len(), denials, "{findings:?}");
    }

    #[test]
    fn resolve_direct_access_without_email() {
        let (resolution, findings) =
            resolve_with(&[("cloud.google.com/workload-identity-provider", PROVIDER)]);
        assert_eq!(findings, Findings::default());
        let injection = resolution.expect("GCP is on");
        assert_eq!(injection.provider, "GCP workload identity federation");
        assert_eq!(
            injection.managed_annotations,
            [(
                "cloud.google.com/external-credentials-json".to_string(),
                credential_config(PROVIDER, None)
            )]
        );
        let names: Vec<&str> = injection
            .env_groups
            .iter()
            .flatten()
            .filter_map(|e| e["name"].as_str())
            .collect();
        assert_eq!(
            names,
            [
                "GOOGLE_APPLICATION_CREDENTIALS",
                "CLOUDSDK_AUTH_CREDENTIAL_FILE_OVERRIDE",
                "CLOUDSDK_CONFIG"
            ]
        );
        assert_eq!(
            injection.env_groups[2],
            [json!({"name": "CLOUDSDK_CONFIG", "value": "/var/run/secrets/gcloud/config"})]
        );
        // PR #152: the gcloud-config emptyDir, mounted writable.
        assert_eq!(
            injection.volumes[2],
            json!({"name": "gcloud-config", "emptyDir": {}})
        );
        assert_eq!(
            injection.writable_mounts,
            [Mount {
                volume: "gcloud-config".to_string(),
                path: "/var/run/secrets/gcloud/config".to_string()
            }]
        );
    }

    #[test]
    fn volumes_mirror_the_webhook() {
        assert_eq!(
            token_volume("sts.googleapis.com", 86400, Some(DEFAULT_MODE)),
            json!({"name": "gcp-iam-token", "projected": {
                "sources": [{"serviceAccountToken": {"audience": "sts.googleapis.com", "expirationSeconds": 86400, "path": "token"}}],
                "defaultMode": 288
            }})
        );
        assert_eq!(
            credential_volume(
                "cloud.google.com/external-credentials-json",
                Some(DEFAULT_MODE),
            ),
            json!({"name": "external-credential-config", "downwardAPI": {
                "items": [{"path": "federation.json", "fieldRef": {
                    "apiVersion": "v1",
                    "fieldPath": "metadata.annotations['cloud.google.com/external-credentials-json']"
                }}],
                "defaultMode": 288
            }})
        );
    }
}
