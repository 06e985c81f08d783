//! Policy settings: decoding with field paths, defaults, and up-front validation.
//!
//! `validate_settings` runs this before the policy is ever asked to decide, so
//! everything here reports *every* problem at once, each prefixed with the
//! camelCase path the user wrote (`aws.tokenExpirationSeconds: ...`).

use serde::Deserialize;

/// The API server refuses projected tokens that live shorter than this (seconds).
pub const MIN_TOKEN_EXPIRATION_SECONDS: i64 = 600;
/// The API server refuses projected tokens that live longer than 2^32 seconds.
pub const MAX_TOKEN_EXPIRATION_SECONDS: i64 = 1 << 32;

/// All settings of the policy. `{}` enables every built-in provider with the
/// defaults of the webhooks it replaces.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Settings {
    pub aws: AwsSettings,
    pub stackit: StackitSettings,
    pub lookup_failure: LookupFailure,
}

/// What to do when the pod's ServiceAccount cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum LookupFailure {
    /// Accept the pod unmutated, with a warning (the AWS webhook's behaviour).
    #[default]
    Admit,
    /// Deny the pod (the STACKIT webhook's behaviour).
    Reject,
}

/// AWS IRSA, as aws/amazon-eks-pod-identity-webhook (its flags in brackets).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct AwsSettings {
    pub enabled: bool,
    /// Prefix of every SA and pod key [`--annotation-prefix`].
    pub annotation_prefix: String,
    /// Token audience when the SA has none [`--token-audience`].
    pub audience: String,
    /// Token lifetime in seconds when neither pod nor SA set one [`--token-expiration`].
    pub token_expiration_seconds: i64,
    /// Directory the token volume is mounted at [`--token-mount-path`].
    pub token_mount_path: String,
    /// Injected as `AWS_REGION` and `AWS_DEFAULT_REGION` [`--aws-default-region`].
    pub region: Option<String>,
    /// Default for the SA's `sts-regional-endpoints` [`--sts-regional-endpoint`].
    pub sts_regional_endpoints: bool,
}

impl Default for AwsSettings {
    fn default() -> Self {
        AwsSettings {
            enabled: true,
            annotation_prefix: "eks.amazonaws.com".to_string(),
            audience: "sts.amazonaws.com".to_string(),
            token_expiration_seconds: 86400,
            token_mount_path: "/var/run/secrets/eks.amazonaws.com/serviceaccount".to_string(),
            region: None,
            sts_regional_endpoints: false,
        }
    }
}

/// STACKIT workload identity, as stackitcloud/stackit-pod-identity-webhook.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct StackitSettings {
    pub enabled: bool,
    /// Token audience when the SA has none.
    pub audience: String,
    /// Token lifetime in seconds when the SA sets none.
    pub token_expiration_seconds: i64,
}

impl Default for StackitSettings {
    fn default() -> Self {
        StackitSettings {
            enabled: true,
            audience: "sts.accounts.stackit.cloud".to_string(),
            token_expiration_seconds: 600,
        }
    }
}

impl Settings {
    /// Decodes and validates settings JSON. `null` and empty input mean `{}`.
    /// The error lists every problem, each naming its field.
    pub fn from_json(raw: &[u8]) -> Result<Settings, String> {
        let trimmed = raw.trim_ascii();
        if trimmed.is_empty() || trimmed == b"null" {
            return Ok(Settings::default());
        }
        let de = &mut serde_json::Deserializer::from_slice(trimmed);
        let settings: Settings = serde_path_to_error::deserialize(de).map_err(describe_error)?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks the values serde cannot: bounds, formats, paths.
    pub fn validate(&self) -> Result<(), String> {
        let mut errors = Vec::new();
        let aws = &self.aws;
        check_prefix("aws.annotationPrefix", &aws.annotation_prefix, &mut errors);
        check_non_empty("aws.audience", &aws.audience, &mut errors);
        check_expiration(
            "aws.tokenExpirationSeconds",
            aws.token_expiration_seconds,
            &mut errors,
        );
        check_mount_path("aws.tokenMountPath", &aws.token_mount_path, &mut errors);
        if let Some(region) = &aws.region {
            let valid = !region.is_empty()
                && region
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !valid {
                errors.push(format!(
                    "aws.region: {region:?} is not an AWS region name (expected e.g. \"eu-west-1\")"
                ));
            }
        }
        check_non_empty("stackit.audience", &self.stackit.audience, &mut errors);
        check_expiration(
            "stackit.tokenExpirationSeconds",
            self.stackit.token_expiration_seconds,
            &mut errors,
        );
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }
}

/// Turns a serde error into "path: problem", without serde_json's
/// "at line 1 column 42" noise, which says nothing to a YAML author.
fn describe_error(err: serde_path_to_error::Error<serde_json::Error>) -> String {
    let path = err.path().to_string();
    let inner = err.into_inner();
    let mut message = inner.to_string();
    if let Some(pos) = message.rfind(" at line ") {
        message.truncate(pos);
    }
    // The path already ends with the unknown key: show it whole.
    if let Some((_, rest)) = message
        .strip_prefix("unknown field `")
        .and_then(|m| m.split_once('`'))
    {
        return format!("unknown field `{path}`{rest}");
    }
    if path == "." {
        format!("settings: {message}")
    } else {
        format!("{path}: {message}")
    }
}

fn check_non_empty(field: &str, value: &str, errors: &mut Vec<String>) {
    if value.trim().is_empty() {
        errors.push(format!("{field}: must not be empty"));
    }
}

fn check_expiration(field: &str, value: i64, errors: &mut Vec<String>) {
    if !(MIN_TOKEN_EXPIRATION_SECONDS..=MAX_TOKEN_EXPIRATION_SECONDS).contains(&value) {
        errors.push(format!(
            "{field}: {value} is out of range, expected {MIN_TOKEN_EXPIRATION_SECONDS}..={MAX_TOKEN_EXPIRATION_SECONDS} seconds (the API server refuses other projected token lifetimes)"
        ));
    }
}

/// An annotation prefix is a DNS subdomain (the part of a key before `/`).
fn check_prefix(field: &str, value: &str, errors: &mut Vec<String>) {
    let valid = !value.is_empty()
        && value.len() <= 253
        && value.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if !valid {
        errors.push(format!(
            "{field}: {value:?} is not a DNS subdomain (expected e.g. \"eks.amazonaws.com\")"
        ));
    }
}

fn check_mount_path(field: &str, value: &str, errors: &mut Vec<String>) {
    let valid = value.starts_with('/')
        && value.len() > 1
        && !value.ends_with('/')
        && !value.contains(':')
        && !value.split('/').any(|part| part == "..");
    if !valid {
        errors.push(format!(
            "{field}: {value:?} is not an absolute directory path without \"..\" or a trailing \"/\""
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::empty_object("{}")]
    #[case::null("null")]
    #[case::empty("")]
    #[case::partial_aws(r#"{"aws":{"region":"eu-west-1"}}"#)]
    #[case::reject_mode(r#"{"lookupFailure":"reject"}"#)]
    fn valid_settings(#[case] raw: &str) {
        assert!(Settings::from_json(raw.as_bytes()).is_ok(), "{raw}");
    }

    #[test]
    fn defaults_are_the_anchors_defaults() {
        let s = Settings::from_json(b"{}").unwrap();
        assert!(s.aws.enabled && s.stackit.enabled);
        assert_eq!(s.aws.audience, "sts.amazonaws.com");
        assert_eq!(s.aws.token_expiration_seconds, 86400);
        assert_eq!(s.stackit.token_expiration_seconds, 600);
        assert_eq!(s.stackit.audience, "sts.accounts.stackit.cloud");
        assert_eq!(s.lookup_failure, LookupFailure::Admit);
    }

    #[rstest]
    #[case::unknown_top_level(r#"{"gcp":{}}"#, "unknown field `gcp`, expected one of `aws`")]
    #[case::unknown_nested(
        r#"{"aws":{"roleArn":"x"}}"#,
        "unknown field `aws.roleArn`, expected one of `enabled`"
    )]
    #[case::wrong_type(
        r#"{"aws":{"tokenExpirationSeconds":"abc"}}"#,
        "aws.tokenExpirationSeconds: invalid type: string \"abc\", expected i64"
    )]
    #[case::bad_mode(
        r#"{"lookupFailure":"maybe"}"#,
        "lookupFailure: unknown variant `maybe`"
    )]
    #[case::short_expiry(
        r#"{"aws":{"tokenExpirationSeconds":100}}"#,
        "aws.tokenExpirationSeconds: 100 is out of range"
    )]
    #[case::bad_prefix(
        r#"{"aws":{"annotationPrefix":"Not A Prefix"}}"#,
        "aws.annotationPrefix: \"Not A Prefix\" is not a DNS subdomain"
    )]
    #[case::relative_mount(
        r#"{"aws":{"tokenMountPath":"var/run"}}"#,
        "aws.tokenMountPath: \"var/run\" is not an absolute"
    )]
    #[case::bad_region(
        r#"{"aws":{"region":"EU West"}}"#,
        "aws.region: \"EU West\" is not an AWS region"
    )]
    #[case::empty_audience(
        r#"{"stackit":{"audience":" "}}"#,
        "stackit.audience: must not be empty"
    )]
    fn invalid_settings_name_the_field(#[case] raw: &str, #[case] expected_start: &str) {
        let err = Settings::from_json(raw.as_bytes()).unwrap_err();
        assert!(err.starts_with(expected_start), "got {err:?}");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let err = Settings::from_json(
            br#"{"aws":{"tokenExpirationSeconds":1},"stackit":{"tokenExpirationSeconds":1}}"#,
        )
        .unwrap_err();
        assert!(err.contains("aws.tokenExpirationSeconds"), "{err}");
        assert!(err.contains("stackit.tokenExpirationSeconds"), "{err}");
    }
}
