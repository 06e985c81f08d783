//! AWS IRSA, drop-in for aws/amazon-eks-pod-identity-webhook.
//!
//! Contract (anchor-contracts §1): the SA's `<prefix>/role-arn` turns it on;
//! `audience`, `sts-regional-endpoints` and `token-expiration` (pod wins
//! over SA, over settings; raised to 600) tune it; pod `skip-containers` and
//! the pod label `skip-pod-identity-webhook` opt out. Like the anchor, an
//! invalid optional annotation is ignored, never fatal; unlike the anchor we
//! say so in a warning.

use super::{
    parse_go_bool, projected_token_volume, split_list, Context, Findings, Resolution, TokenLayout,
};
use crate::podedit::{env_value, Injection, Mount};
use crate::settings::{AwsSettings, MAX_TOKEN_EXPIRATION_SECONDS, MIN_TOKEN_EXPIRATION_SECONDS};

/// The anchor's volume and file names; the mount path comes from settings.
pub const LAYOUT: TokenLayout = TokenLayout {
    volume_name: "aws-iam-token",
    mount_path: "/var/run/secrets/eks.amazonaws.com/serviceaccount",
    token_file: "token",
};

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

/// Resolves the AWS injection for this pod, if its ServiceAccount asks for one.
pub fn resolve(settings: &AwsSettings, ctx: &Context, findings: &mut Findings) -> Resolution {
    let role_key = key(settings, keys::ROLE_ARN);
    let role_arn = ctx
        .sa_annotations
        .get(role_key.as_str())
        .copied()
        .unwrap_or("");
    if role_arn.is_empty() {
        return None;
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

    let expiration = token_expiration(settings, ctx, findings);
    let token_path = token_path(&settings.token_mount_path, is_windows(ctx.pod));

    let mut env_groups = vec![vec![
        env_value("AWS_ROLE_ARN", role_arn),
        env_value("AWS_WEB_IDENTITY_TOKEN_FILE", &token_path),
    ]];
    if regional {
        env_groups.push(vec![env_value("AWS_STS_REGIONAL_ENDPOINTS", "regional")]);
    }
    if let Some(region) = &settings.region {
        env_groups.push(vec![
            env_value("AWS_REGION", region),
            env_value("AWS_DEFAULT_REGION", region),
        ]);
    }
    let skip_containers = ctx
        .pod_annotations
        .get(key(settings, keys::SKIP_CONTAINERS).as_str())
        .map(|v| split_list(v, ','))
        .unwrap_or_default();

    Some(Injection {
        volumes: vec![projected_token_volume(
            LAYOUT.volume_name,
            audience,
            expiration,
            LAYOUT.token_file,
        )],
        mounts: vec![Mount {
            volume: LAYOUT.volume_name.to_string(),
            path: settings.token_mount_path.clone(),
        }],
        env_groups,
        skip_containers,
        ..Injection::new("AWS IRSA")
    })
}

/// Pod annotation, then SA annotation, then settings; unparsable values are
/// skipped with a warning; the result is raised to 600 (the anchor's rule).
fn token_expiration(settings: &AwsSettings, ctx: &Context, findings: &mut Findings) -> i64 {
    let exp_key = key(settings, keys::TOKEN_EXPIRATION);
    let sources = [
        ("Pod", ctx.pod_annotations.get(exp_key.as_str())),
        ("ServiceAccount", ctx.sa_annotations.get(exp_key.as_str())),
    ];
    let mut chosen = settings.token_expiration_seconds;
    for (owner, value) in sources {
        let Some(value) = value else { continue };
        match value.parse::<i64>() {
            Ok(seconds) => {
                chosen = seconds;
                break;
            }
            Err(_) => findings.warnings.push(format!(
                "{owner} annotation {exp_key:?} is {value:?}, not a number of seconds; ignored"
            )),
        }
    }
    chosen.clamp(MIN_TOKEN_EXPIRATION_SECONDS, MAX_TOKEN_EXPIRATION_SECONDS)
}

/// Windows pods are recognised by nodeSelector only, as in the anchor.
fn is_windows(pod: &serde_json::Value) -> bool {
    let selector = pod.get("spec").and_then(|s| s.get("nodeSelector"));
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
}
