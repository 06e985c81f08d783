//! STACKIT workload identity, drop-in for stackitcloud/stackit-pod-identity-webhook.
//!
//! Contract (stackitcloud/stackit-pod-identity-webhook at `983c81e`, after v0.2.0): the SA's `service-account-email` turns it
//! on; invalid annotations deny the pod, all problems in one message, as the
//! anchor does. Where the anchor denies because a same-named env var, volume
//! or mount exists, we keep the user's and stay idempotent (see `podedit`).
//! A token lifetime below 600 s, which the anchor passes through and the API
//! server then refuses, is raised to 600 with a warning.
//!
//! Skipping follows the anchor's chart and code together: the chart's
//! `objectSelector` (`skip-pod-identity-webhook` `DoesNotExist`, in
//! `charts/stackit-pod-identity-webhook/templates/mutatingwebhookconfiguration.yaml`)
//! keeps every Pod that carries the skip *label*, whatever its value, away
//! from the webhook; the webhook's code then skips on a Pod annotation or a
//! ServiceAccount annotation only when it is exactly `"true"`.

use std::collections::BTreeMap;

use super::{projected_token_volume, Context, Findings, Resolution, TokenLayout};
use crate::podedit::{env_value, Injection, Mount};
use crate::settings::{
    StackitSettings, MAX_TOKEN_EXPIRATION_SECONDS, MIN_TOKEN_EXPIRATION_SECONDS,
};

pub const LAYOUT: TokenLayout = crate::names::STACKIT;

/// ServiceAccount annotation keys (the skip key also works on the pod, as a
/// label or an annotation).
pub mod keys {
    pub const EMAIL: &str = "workload-identity.stackit.cloud/service-account-email";
    pub const AUDIENCE: &str = "workload-identity.stackit.cloud/audience";
    pub const TOKEN_EXPIRATION: &str =
        "workload-identity.stackit.cloud/service-account-token-expiration-seconds";
    pub const IDP_TOKEN_EXPIRATION: &str =
        "workload-identity.stackit.cloud/idp-token-expiration-seconds";
    pub const IDP_TOKEN_ENDPOINT: &str = "workload-identity.stackit.cloud/idp-token-endpoint";
    pub const FEDERATED_TOKEN_FILE: &str = "workload-identity.stackit.cloud/federated-token-file";
    pub const SKIP: &str = "workload-identity.stackit.cloud/skip-pod-identity-webhook";
}

/// True when the pod opted out of STACKIT: the skip label is present with any
/// value (the chart's `objectSelector: DoesNotExist`, so even `"false"`
/// skips), or the skip annotation is exactly `"true"` (the webhook's code).
pub fn pod_opted_out(labels: &BTreeMap<&str, &str>, annotations: &BTreeMap<&str, &str>) -> bool {
    labels.contains_key(keys::SKIP) || annotations.get(keys::SKIP) == Some(&"true")
}

pub fn resolve(settings: &StackitSettings, ctx: &Context, findings: &mut Findings) -> Resolution {
    let sa = &ctx.sa_annotations;
    let email = sa.get(keys::EMAIL).copied().unwrap_or("");
    if email.is_empty() || sa.get(keys::SKIP) == Some(&"true") {
        return None;
    }
    let deny_count = findings.denials.len();
    let mut deny = |key: &str, value: &str, expected: &str| {
        findings.denials.push(format!(
            "ServiceAccount {}: annotation {key:?} is {value:?}, expected {expected}",
            ctx.sa
        ));
    };
    if !is_email(email) {
        deny(
            keys::EMAIL,
            email,
            "an email address such as \"my-sa@sa.stackit.cloud\"",
        );
    }
    let audience = sa
        .get(keys::AUDIENCE)
        .copied()
        .filter(|a| !a.is_empty())
        .unwrap_or(settings.audience.as_str());

    let mut expiration = settings.token_expiration_seconds;
    if let Some(value) = sa.get(keys::TOKEN_EXPIRATION) {
        match value.parse::<i64>() {
            Ok(seconds) => expiration = seconds,
            Err(_) => deny(
                keys::TOKEN_EXPIRATION,
                value,
                "an integer number of seconds",
            ),
        }
    }
    let idp_expiration = sa.get(keys::IDP_TOKEN_EXPIRATION).copied();
    if let Some(value) = idp_expiration {
        if value.parse::<i64>().is_err() {
            deny(
                keys::IDP_TOKEN_EXPIRATION,
                value,
                "an integer number of seconds",
            );
        }
    }
    let idp_endpoint = sa.get(keys::IDP_TOKEN_ENDPOINT).copied();
    if let Some(value) = idp_endpoint {
        if !is_request_uri(value) {
            deny(
                keys::IDP_TOKEN_ENDPOINT,
                value,
                "an absolute URL such as \"https://accounts.stackit.cloud/oauth/v2/token\"",
            );
        }
    }
    let token_file = sa.get(keys::FEDERATED_TOKEN_FILE).copied();
    let (mount_path, file_name) = match token_file {
        None => (LAYOUT.mount_path.to_string(), LAYOUT.token_file.to_string()),
        Some(path) => match split_token_file(path) {
            Some((dir, base)) => (dir.to_string(), base.to_string()),
            None => {
                deny(
                    keys::FEDERATED_TOKEN_FILE,
                    path,
                    "an absolute file path below a directory other than \"/\", without \"..\"",
                );
                (String::new(), String::new())
            }
        },
    };
    if findings.denials.len() > deny_count {
        return None;
    }

    let clamped = expiration.clamp(MIN_TOKEN_EXPIRATION_SECONDS, MAX_TOKEN_EXPIRATION_SECONDS);
    if clamped != expiration {
        findings.warnings.push(format!(
            "ServiceAccount {}: annotation {:?} is {expiration}, outside {MIN_TOKEN_EXPIRATION_SECONDS}..={MAX_TOKEN_EXPIRATION_SECONDS} which the API server accepts; using {clamped}",
            ctx.sa,
            keys::TOKEN_EXPIRATION
        ));
    }

    // Each variable is its own group: a user-set one is kept, the rest added.
    let mut env = vec![("STACKIT_SERVICE_ACCOUNT_EMAIL", email)];
    if let Some(path) = token_file {
        env.push(("STACKIT_FEDERATED_TOKEN_FILE", path));
    }
    if let Some(endpoint) = idp_endpoint {
        env.push(("STACKIT_IDP_TOKEN_ENDPOINT", endpoint));
    }
    if let Some(seconds) = idp_expiration {
        env.push(("STACKIT_IDP_TOKEN_EXPIRATION_SECONDS", seconds));
    }
    Some(Injection {
        volumes: vec![projected_token_volume(
            LAYOUT.volume_name,
            audience,
            clamped,
            &file_name,
            settings.token_default_mode,
        )],
        mounts: vec![Mount {
            volume: LAYOUT.volume_name.to_string(),
            path: mount_path,
        }],
        env_groups: env
            .into_iter()
            .map(|(n, v)| vec![env_value(n, v)])
            .collect(),
        identity_env: &["STACKIT_SERVICE_ACCOUNT_EMAIL"],
        ..Injection::new("STACKIT")
    })
}

/// A bare `local@domain` address (what Go's `net/mail.ParseAddress` yields
/// for the addresses STACKIT issues).
pub fn is_email(value: &str) -> bool {
    let Some((local, domain)) = value.rsplit_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~.-".contains(&b))
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..");
    let domain_ok = !domain.is_empty()
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    local_ok && domain_ok
}

/// Go's `url.ParseRequestURI`, reduced to what an endpoint can be: an
/// absolute URL with a scheme and a host part, or an absolute path.
fn is_request_uri(value: &str) -> bool {
    if value.is_empty()
        || value
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return false;
    }
    if value.starts_with('/') {
        return true;
    }
    match value.split_once("://") {
        Some((scheme, rest)) => {
            scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
                && !rest.is_empty()
                && !rest.starts_with('/')
        }
        None => false,
    }
}

/// `(Dir(path), Base(path))` for a usable absolute token path.
fn split_token_file(path: &str) -> Option<(&str, &str)> {
    if !path.starts_with('/') || path.ends_with('/') || path.split('/').any(|p| p == "..") {
        return None;
    }
    let (dir, base) = path.rsplit_once('/')?;
    if dir.is_empty() || base.is_empty() {
        return None;
    }
    Some((dir, base))
}

/// The ServiceAccount annotations STACKIT reads, for the ServiceAccount checks.
pub fn service_account_rules() -> Vec<super::AnnotationRule> {
    use super::{is_non_empty, is_token_lifetime, AnnotationRule as Rule};
    const P: &str = "STACKIT";
    vec![
        Rule::new(
            P,
            keys::EMAIL,
            is_email,
            "a STACKIT service account email, <name>@sa.stackit.cloud",
        ),
        Rule::new(P, keys::AUDIENCE, is_non_empty, "a token audience"),
        Rule::new(
            P,
            keys::TOKEN_EXPIRATION,
            is_token_lifetime,
            "a number of seconds from 600 to 4294967296",
        ),
        Rule::new(
            P,
            keys::IDP_TOKEN_EXPIRATION,
            |v| v.parse::<i64>().is_ok_and(|s| s > 0),
            "a positive number of seconds",
        ),
        Rule::new(
            P,
            keys::IDP_TOKEN_ENDPOINT,
            is_request_uri,
            "an absolute URL or an absolute path",
        ),
        Rule::new(
            P,
            keys::FEDERATED_TOKEN_FILE,
            |v| split_token_file(v).is_some(),
            "an absolute file path in a directory other than /, without ..",
        ),
        Rule::new(
            P,
            keys::SKIP,
            |v| v == "true" || v == "false",
            "true or false",
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::label_true(&[(keys::SKIP, "true")], &[], true)]
    #[case::label_false_still_skips(&[(keys::SKIP, "false")], &[], true)]
    #[case::label_empty_still_skips(&[(keys::SKIP, "")], &[], true)]
    #[case::annotation_true(&[], &[(keys::SKIP, "true")], true)]
    #[case::annotation_false_does_not_skip(&[], &[(keys::SKIP, "false")], false)]
    #[case::annotation_empty_does_not_skip(&[], &[(keys::SKIP, "")], false)]
    #[case::neither(&[("app", "web")], &[("note", "x")], false)]
    fn pod_opt_out(
        #[case] labels: &[(&str, &str)],
        #[case] annotations: &[(&str, &str)],
        #[case] expected: bool,
    ) {
        let labels: BTreeMap<&str, &str> = labels.iter().copied().collect();
        let annotations: BTreeMap<&str, &str> = annotations.iter().copied().collect();
        assert_eq!(pod_opted_out(&labels, &annotations), expected);
    }

    #[rstest]
    #[case::stackit("my-sa-abc123@sa.stackit.cloud", true)]
    #[case::plus("a+b@x.io", true)]
    #[case::no_at("not-an-email", false)]
    #[case::empty_domain("a@", false)]
    #[case::display_name("Name <a@b.c>", false)]
    #[case::double_dot_domain("a@b..c", false)]
    fn emails(#[case] value: &str, #[case] expected: bool) {
        assert_eq!(is_email(value), expected);
    }

    #[rstest]
    #[case::https("https://accounts.stackit.cloud/oauth/v2/token", true)]
    #[case::path("/oauth/token", true)]
    #[case::no_scheme("accounts.stackit.cloud/token", false)]
    #[case::space("https://a b", false)]
    #[case::empty_host("https:///x", false)]
    fn request_uris(#[case] value: &str, #[case] expected: bool) {
        assert_eq!(is_request_uri(value), expected);
    }

    #[rstest]
    #[case::nested("/var/run/secrets/custom/tok", Some(("/var/run/secrets/custom", "tok")))]
    #[case::root_dir("/tok", None)]
    #[case::relative("tok", None)]
    #[case::dir_only("/var/run/", None)]
    #[case::dotdot("/var/../tok", None)]
    fn token_file_split(#[case] value: &str, #[case] expected: Option<(&str, &str)>) {
        assert_eq!(split_token_file(value), expected);
    }
}
