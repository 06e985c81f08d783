//! AWS IRSA, drop-in for aws/amazon-eks-pod-identity-webhook.
//!
//! Contract (aws/amazon-eks-pod-identity-webhook at `3bf80a3`, after v0.6.17,
//! `pkg/handler/handler.go`): the SA's `<prefix>/role-arn` turns it on;
//! `audience`, `sts-regional-endpoints` and `token-expiration` (pod wins
//! over SA, over settings; raised to 600) tune it; pod `skip-containers` and
//! the pod label `skip-pod-identity-webhook` opt out. A container that
//! already sets the identity pair, a region and the STS variable is left
//! untouched, as the anchor does (its `rawPodHasAll` test). Like the anchor,
//! an invalid optional annotation is ignored, never fatal; unlike the anchor
//! we say so in a warning.

use super::{
    parse_go_bool, projected_token_volume, split_list, Context, Findings, Resolution, TokenLayout,
};
use crate::podedit::{env_value, Injection, Mount};
use crate::settings::{AwsSettings, MAX_TOKEN_EXPIRATION_SECONDS, MIN_TOKEN_EXPIRATION_SECONDS};

/// The anchor's volume and file names; the mount path comes from settings.
pub const LAYOUT: TokenLayout = crate::names::AWS_IRSA;

/// Label the anchor sets on pods it switches to Pod Identity.
pub const POD_IDENTITY_LABEL: &str = "eks.amazonaws.com/pod-identity";
/// Bounds of the anchor's jittered default lifetime (seconds).
pub const POD_IDENTITY_MIN_EXPIRATION: i64 = 79200;
pub const POD_IDENTITY_MAX_EXPIRATION: i64 = 86400;

/// Annotation and label names, relative to `aws.annotationPrefix`.
pub mod keys {
    pub const ROLE_ARN: &str = "role-arn";
    pub const AUDIENCE: &str = "audience";
    pub const STS_REGIONAL_ENDPOINTS: &str = "sts-regional-endpoints";
    pub const TOKEN_EXPIRATION: &str = "token-expiration";
    pub const SKIP_CONTAINERS: &str = "skip-containers";
    /// A pod label; its presence (any value) skips AWS, as the anchor's
    /// `objectSelector: DoesNotExist` does.
    pub const SKIP_LABEL: &str = "skip-pod-identity-webhook";
}

fn key(settings: &AwsSettings, name: &str) -> String {
    format!("{}/{}", settings.annotation_prefix, name)
}

/// True when the pod opted out of AWS before any lookup is needed.
pub fn pod_opted_out(
    settings: &AwsSettings,
    pod_labels: &std::collections::BTreeMap<&str, &str>,
) -> bool {
    pod_labels.contains_key(key(settings, keys::SKIP_LABEL).as_str())
}

/// Resolves the AWS injection for this pod: EKS Pod Identity when its
/// ServiceAccount has an association in settings (it takes precedence, as in
/// the anchor), else IRSA when the ServiceAccount has a role ARN.
pub fn resolve(settings: &AwsSettings, ctx: &Context, findings: &mut Findings) -> Resolution {
    let associated = settings
        .pod_identity_associations
        .iter()
        .any(|a| a.namespace == ctx.sa.namespace && a.service_account == ctx.sa.name);
    let role_key = key(settings, keys::ROLE_ARN);
    let role_arn = ctx
        .sa_annotations
        .get(role_key.as_str())
        .copied()
        .unwrap_or("");
    if !associated && role_arn.is_empty() {
        return None;
    }

    let regional_key = key(settings, keys::STS_REGIONAL_ENDPOINTS);
    let regional = match ctx.sa_annotations.get(regional_key.as_str()) {
        None => settings.sts_regional_endpoints,
        Some(value) => parse_go_bool(value).unwrap_or_else(|| {
            findings.warnings.push(format!(
                "ServiceAccount {}: annotation {regional_key:?} is {value:?}, not a boolean; ignored",
                ctx.sa
            ));
            settings.sts_regional_endpoints
        }),
    };
    // Env common to both modes, after the mode's own pair.
    let mut shared_env = Vec::new();
    if regional {
        shared_env.push(vec![env_value("AWS_STS_REGIONAL_ENDPOINTS", "regional")]);
    }
    if let Some(region) = &settings.region {
        shared_env.push(vec![
            env_value("AWS_REGION", region),
            env_value("AWS_DEFAULT_REGION", region),
        ]);
    }
    let skip_containers = ctx
        .pod_annotations
        .get(key(settings, keys::SKIP_CONTAINERS).as_str())
        .map(|v| split_list(v, ','))
        .unwrap_or_default();
    let explicit_expiration = token_expiration(settings, ctx, findings);

    if associated {
        let expiration = explicit_expiration.unwrap_or_else(|| pod_identity_expiration(ctx));
        let volume = &settings.container_credentials_token_volume_name;
        let mount_path = &settings.container_credentials_token_mount_path;
        let token_path = &settings.container_credentials_token_path;
        // The anchor joins the flags with "/" (`filepath.Join`, container_credentials.go).
        let token_file = format!("{mount_path}/{token_path}");
        let mut env_groups = vec![vec![
            env_value(
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                &settings.container_credentials_full_uri,
            ),
            env_value("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", &token_file),
        ]];
        env_groups.extend(shared_env);
        return Some(Injection {
            volumes: vec![projected_token_volume(
                volume,
                &settings.container_credentials_audience,
                expiration,
                token_path,
                settings.token_default_mode,
            )],
            mounts: vec![Mount {
                volume: volume.clone(),
                path: mount_path.clone(),
            }],
            env_groups,
            skip_containers,
            labels: vec![(POD_IDENTITY_LABEL.to_string(), "enabled".to_string())],
            complete_when: POD_IDENTITY_COMPLETE,
            ..Injection::new("EKS Pod Identity")
        });
    }

    if !is_role_arn(role_arn) {
        findings.warnings.push(format!(
            "ServiceAccount {}: annotation {role_key:?} is {role_arn:?}, which is not an IAM role ARN (arn:aws:iam::<12-digit account>:role/<name>); injected anyway, as the EKS webhook does",
            ctx.sa
        ));
    }
    let audience = ctx
        .sa_annotations
        .get(key(settings, keys::AUDIENCE).as_str())
        .copied()
        .filter(|a| !a.is_empty())
        .unwrap_or(settings.audience.as_str());
    let expiration = explicit_expiration.unwrap_or(settings.token_expiration_seconds);
    let token_path = token_path(&settings.token_mount_path, is_windows(ctx.pod));
    let mut env_groups = vec![vec![
        env_value("AWS_ROLE_ARN", role_arn),
        env_value("AWS_WEB_IDENTITY_TOKEN_FILE", &token_path),
    ]];
    env_groups.extend(shared_env);
    Some(Injection {
        volumes: vec![projected_token_volume(
            LAYOUT.volume_name,
            audience,
            expiration,
            LAYOUT.token_file,
            settings.token_default_mode,
        )],
        mounts: vec![Mount {
            volume: LAYOUT.volume_name.to_string(),
            path: settings.token_mount_path.clone(),
        }],
        env_groups,
        skip_containers,
        complete_when: IRSA_COMPLETE,
        identity_env: &["AWS_ROLE_ARN"],
        ..Injection::new("AWS IRSA")
    })
}

/// The anchor's `addEnvToContainer` leaves a container alone, no env and no
/// token mount, when it already sets the mode's pair, a region variable and
/// `AWS_STS_REGIONAL_ENDPOINTS` (whatever the settings); the pod still gets
/// the volume (its `rawPodHasAll` test). A container that sets either
/// variable of a pair has its own.
const IRSA_COMPLETE: &[&[&str]] = &[
    &["AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"],
    &["AWS_REGION", "AWS_DEFAULT_REGION"],
    &["AWS_STS_REGIONAL_ENDPOINTS"],
];
const POD_IDENTITY_COMPLETE: &[&[&str]] = &[
    &[
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    ],
    &["AWS_REGION", "AWS_DEFAULT_REGION"],
    &["AWS_STS_REGIONAL_ENDPOINTS"],
];

/// The anchor draws the Pod Identity token lifetime at random from
/// 79200..=86400 s so that tokens of pods started together do not all
/// expire together. We derive it from the pod's identity instead (FNV-1a of
/// namespace, ServiceAccount and name or generateName): the spread stays,
/// and the policy stays a pure, idempotent function.
pub fn pod_identity_expiration(ctx: &Context) -> i64 {
    let meta = |k: &str| {
        ctx.pod
            .get("metadata")
            .and_then(|m| m.get(k))
            .and_then(serde_json::Value::as_str)
            .unwrap_or("")
    };
    let identity = format!(
        "{}/{}/{}/{}",
        ctx.sa.namespace,
        ctx.sa.name,
        meta("name"),
        meta("generateName")
    );
    let hash = identity.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let span = (POD_IDENTITY_MAX_EXPIRATION - POD_IDENTITY_MIN_EXPIRATION + 1) as u64;
    POD_IDENTITY_MIN_EXPIRATION + (hash % span) as i64
}

/// The lifetime set by the pod annotation, else the SA annotation, raised
/// to 600 (the anchor's rule); `None` when neither sets a usable one.
/// Unparsable values are skipped with a warning, as the anchor ignores them.
fn token_expiration(settings: &AwsSettings, ctx: &Context, findings: &mut Findings) -> Option<i64> {
    let exp_key = key(settings, keys::TOKEN_EXPIRATION);
    let sources = [
        ("Pod", ctx.pod_annotations.get(exp_key.as_str())),
        ("ServiceAccount", ctx.sa_annotations.get(exp_key.as_str())),
    ];
    for (owner, value) in sources {
        let Some(value) = value else { continue };
        match value.parse::<i64>() {
            Ok(seconds) => {
                return Some(
                    seconds.clamp(MIN_TOKEN_EXPIRATION_SECONDS, MAX_TOKEN_EXPIRATION_SECONDS),
                )
            }
            Err(_) => findings.warnings.push(format!(
                "{owner} annotation {exp_key:?} is {value:?}, not a number of seconds; ignored"
            )),
        }
    }
    None
}

/// A Windows pod: `spec.os.name: windows` (Kubernetes 1.25 and later), or the node selectors
/// the anchor reads (`kubernetes.io/os`, `beta.kubernetes.io/os`). `spec.os.name` decides when
/// set: the kubelet refuses a pod whose `spec.os.name` is not its node's OS, so a pod with
/// `spec.os.name: linux` never runs on Windows, whatever its node selector says.
pub fn is_windows(pod: &serde_json::Value) -> bool {
    let spec = pod.get("spec");
    if let Some(os) = spec
        .and_then(|s| s.pointer("/os/name"))
        .and_then(|v| v.as_str())
        .filter(|os| !os.is_empty())
    {
        return os == "windows";
    }
    let selector = spec.and_then(|s| s.get("nodeSelector"));
    ["kubernetes.io/os", "beta.kubernetes.io/os"]
        .iter()
        .any(|k| selector.and_then(|s| s.get(*k)).and_then(|v| v.as_str()) == Some("windows"))
}

fn token_path(mount_path: &str, windows: bool) -> String {
    let path = format!("{}/{}", mount_path, LAYOUT.token_file);
    if windows {
        format!("C:{}", path.replace('/', "\\"))
    } else {
        path
    }
}

/// The anchor's `^arn:aws[a-z0-9-]*:iam::\d{12}:role\/[\w-\/.@+=,]+$`.
pub fn is_role_arn(value: &str) -> bool {
    let Some(rest) = value.strip_prefix("arn:aws") else {
        return false;
    };
    let Some((partition, rest)) = rest.split_once(':') else {
        return false;
    };
    if !partition
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return false;
    }
    let Some(rest) = rest.strip_prefix("iam::") else {
        return false;
    };
    let Some((account, rest)) = rest.split_once(':') else {
        return false;
    };
    let Some(name) = rest.strip_prefix("role/") else {
        return false;
    };
    account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-/.@+=,".contains(&b))
}

/// The ServiceAccount annotations IRSA reads, for the ServiceAccount checks.
pub fn service_account_rules(settings: &AwsSettings) -> Vec<super::AnnotationRule> {
    use super::{is_go_bool, is_non_empty, is_token_lifetime, AnnotationRule as Rule};
    const P: &str = "AWS IRSA";
    vec![
        Rule::new(
            P,
            key(settings, keys::ROLE_ARN),
            is_role_arn,
            "an IAM role ARN, arn:aws:iam::<12-digit account>:role/<name>",
        ),
        Rule::new(
            P,
            key(settings, keys::AUDIENCE),
            is_non_empty,
            "a token audience",
        ),
        Rule::new(
            P,
            key(settings, keys::STS_REGIONAL_ENDPOINTS),
            is_go_bool,
            "a boolean, true or false",
        ),
        Rule::new(
            P,
            key(settings, keys::TOKEN_EXPIRATION),
            is_token_lifetime,
            "a number of seconds from 600 to 4294967296",
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::plain("arn:aws:iam::111122223333:role/app", true)]
    #[case::china("arn:aws-cn:iam::111122223333:role/app", true)]
    #[case::gov_path("arn:aws-us-gov:iam::111122223333:role/team/app.v2@x+=,", true)]
    #[case::short_account("arn:aws:iam::1111:role/app", false)]
    #[case::user_not_role("arn:aws:iam::111122223333:user/app", false)]
    #[case::bare_name("app-role", false)]
    #[case::empty_name("arn:aws:iam::111122223333:role/", false)]
    #[case::space("arn:aws:iam::111122223333:role/a b", false)]
    fn role_arn_regex(#[case] value: &str, #[case] expected: bool) {
        assert_eq!(is_role_arn(value), expected);
    }

    #[test]
    fn windows_token_path_uses_backslashes() {
        assert_eq!(
            token_path(LAYOUT.mount_path, true),
            r"C:\var\run\secrets\eks.amazonaws.com\serviceaccount\token"
        );
        assert_eq!(
            token_path(LAYOUT.mount_path, false),
            "/var/run/secrets/eks.amazonaws.com/serviceaccount/token"
        );
    }

    #[rstest]
    #[case::node_selector(serde_json::json!({"nodeSelector": {"kubernetes.io/os": "windows"}}), true)]
    #[case::beta_node_selector(serde_json::json!({"nodeSelector": {"beta.kubernetes.io/os": "windows"}}), true)]
    #[case::spec_os(serde_json::json!({"os": {"name": "windows"}}), true)]
    #[case::both(serde_json::json!({"os": {"name": "windows"}, "nodeSelector": {"kubernetes.io/os": "windows"}}), true)]
    #[case::spec_os_decides(serde_json::json!({"os": {"name": "linux"}, "nodeSelector": {"kubernetes.io/os": "windows"}}), false)]
    #[case::empty_os_name(serde_json::json!({"os": {"name": ""}, "nodeSelector": {"kubernetes.io/os": "windows"}}), true)]
    #[case::linux(serde_json::json!({"os": {"name": "linux"}}), false)]
    #[case::neither(serde_json::json!({}), false)]
    #[case::wrong_types(serde_json::json!({"os": "windows", "nodeSelector": ["windows"]}), false)]
    fn windows_pods(#[case] spec: serde_json::Value, #[case] windows: bool) {
        assert_eq!(is_windows(&serde_json::json!({ "spec": spec })), windows);
    }
}
