//! Checks of a ServiceAccount's identity annotations when it is created or updated: a malformed
//! value, or a key a letter or a prefix away from one the policy reads (`eks.amazon.com/role-arn`,
//! `azure.workload.identity/clientid`), which every webhook ignores silently, so that the Pods
//! using the ServiceAccount start without identity. The rules are each provider's
//! [`AnnotationRule`] table; a ServiceAccount is never mutated.

use serde_json::Value;

use crate::core::Decision;
use crate::providers::{self, AnnotationRule};
use crate::settings::{ServiceAccountChecks, Settings};

/// The rules of every enabled provider and custom provider.
pub fn rules(settings: &Settings) -> Vec<AnnotationRule> {
    let mut rules = Vec::new();
    if settings.aws.enabled {
        rules.extend(providers::aws::service_account_rules(&settings.aws));
    }
    if settings.stackit.enabled {
        rules.extend(providers::stackit::service_account_rules());
    }
    if settings.azure.enabled {
        rules.extend(providers::azure::service_account_rules());
    }
    if settings.gcp.enabled {
        rules.extend(providers::gcp::service_account_rules(&settings.gcp));
    }
    for custom in &settings.custom_providers {
        rules.push(AnnotationRule::new(
            "a custom provider",
            custom.service_account_annotation.clone(),
            providers::is_non_empty,
            "a non-empty value",
        ));
    }
    rules
}

/// Checks a ServiceAccount CREATE or UPDATE: accepted with a warning per problem, or denied
/// (`serviceAccountChecks: reject`, 400).
pub fn check(settings: &Settings, namespace: &str, account: &Value) -> Decision {
    let accept = |warnings| Decision::Accept {
        warnings,
        audit: Default::default(),
    };
    if settings.service_account_checks == ServiceAccountChecks::Off {
        return accept(Vec::new());
    }
    let problems = problems(settings, namespace, account);
    match settings.service_account_checks {
        ServiceAccountChecks::Reject if !problems.is_empty() => Decision::Reject {
            message: problems.join("; "),
            code: 400,
            warnings: Vec::new(),
        },
        _ => accept(problems),
    }
}

/// One message per malformed value or misspelt key, naming the ServiceAccount, the key, the value
/// and what is expected.
pub fn problems(settings: &Settings, namespace: &str, account: &Value) -> Vec<String> {
    let name = account
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("<unnamed>");
    let namespace = match namespace {
        "" => account
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("default"),
        namespace => namespace,
    };
    let rules = rules(settings);
    let mut problems = Vec::new();
    for (key, value) in providers::string_map(account, "annotations") {
        if let Some(rule) = rules.iter().find(|r| r.key == key) {
            if !(rule.valid)(value) {
                problems.push(format!(
                    "ServiceAccount {namespace}/{name}: annotation {key:?} is {value:?}, expected {} ({})",
                    rule.expected, rule.provider
                ));
            }
        } else if let Some(rule) = near_miss(key, &rules) {
            problems.push(format!(
                "ServiceAccount {namespace}/{name}: annotation {key:?} is not a key the policy reads; did you mean {:?} ({})? Pods using this ServiceAccount get no identity from it",
                rule.key, rule.provider
            ));
        }
    }
    problems
}

/// The known key `key` is probably a misspelling of: the same key in another case, the same
/// prefix with a name one or two edits away, or the same name with a prefix up to three edits
/// away (`eks.amazon.com` for `eks.amazonaws.com`). Keys of other tools are further away.
fn near_miss<'a>(key: &str, rules: &'a [AnnotationRule]) -> Option<&'a AnnotationRule> {
    let split = |k: &'a str| k.rsplit_once('/').unwrap_or(("", k));
    let (prefix, name) = key.rsplit_once('/').unwrap_or(("", key));
    rules.iter().find(|rule| {
        let (known_prefix, known_name) = split(&rule.key);
        let name_tolerance = if known_name.len() <= 5 { 1 } else { 2 };
        key.eq_ignore_ascii_case(&rule.key)
            || (prefix == known_prefix && strsim::levenshtein(name, known_name) <= name_tolerance)
            || (name == known_name && strsim::levenshtein(prefix, known_prefix) <= 3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use serde_json::json;

    fn account(annotations: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": "app", "namespace": "team-a", "annotations": annotations}})
    }

    fn problems_of(annotations: Value) -> Vec<String> {
        problems(&Settings::default(), "team-a", &account(annotations))
    }

    #[rstest]
    #[case::aws_role("eks.amazonaws.com/role-arn", "app-role", "an IAM role ARN")]
    #[case::aws_bool("eks.amazonaws.com/sts-regional-endpoints", "yes", "a boolean")]
    #[case::aws_expiration(
        "eks.amazonaws.com/token-expiration",
        "100",
        "a number of seconds from 600"
    )]
    #[case::aws_expiration_text(
        "eks.amazonaws.com/token-expiration",
        "1h",
        "a number of seconds from 600"
    )]
    #[case::azure_client("azure.workload.identity/client-id", "my-app", "a GUID")]
    #[case::azure_tenant(
        "azure.workload.identity/tenant-id",
        "contoso.onmicrosoft.com",
        "a GUID"
    )]
    #[case::azure_expiration(
        "azure.workload.identity/service-account-token-expiration",
        "100000",
        "a number of seconds from 3600 to 86400"
    )]
    #[case::gcp_provider(
        "cloud.google.com/workload-identity-provider",
        "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/q",
        "a provider resource name"
    )]
    #[case::gcp_email(
        "cloud.google.com/service-account-email",
        "batch@example.com",
        "a Google service account email"
    )]
    #[case::gcp_mode("cloud.google.com/injection-mode", "gcloud", "direct")]
    #[case::stackit_email(
        "workload-identity.stackit.cloud/service-account-email",
        "not-an-email",
        "a STACKIT service account email"
    )]
    #[case::stackit_skip(
        "workload-identity.stackit.cloud/skip-pod-identity-webhook",
        "yes",
        "true or false"
    )]
    fn malformed_values_are_named(#[case] key: &str, #[case] value: &str, #[case] expected: &str) {
        let problems = problems_of(json!({ key: value }));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with(&format!(
                "ServiceAccount team-a/app: annotation {key:?} is {value:?}, expected {expected}"
            )),
            "{problems:?}"
        );
    }

    #[rstest]
    #[case::aws_prefix("eks.amazon.com/role-arn", "eks.amazonaws.com/role-arn")]
    #[case::aws_name("eks.amazonaws.com/rolearn", "eks.amazonaws.com/role-arn")]
    #[case::azure_name(
        "azure.workload.identity/clientid",
        "azure.workload.identity/client-id"
    )]
    #[case::azure_case(
        "Azure.Workload.Identity/client-id",
        "azure.workload.identity/client-id"
    )]
    #[case::gcp_name(
        "cloud.google.com/service-account-mail",
        "cloud.google.com/service-account-email"
    )]
    #[case::stackit_prefix(
        "workload-identity.stackit.clod/service-account-email",
        "workload-identity.stackit.cloud/service-account-email"
    )]
    fn near_misses_are_caught(#[case] key: &str, #[case] meant: &str) {
        let problems = problems_of(json!({ key: "x" }));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains(&format!("did you mean {meant:?}")),
            "{problems:?}"
        );
    }

    #[rstest]
    #[case::gke("iam.gke.io/gcp-service-account")]
    #[case::kiam("iam.amazonaws.com/role")]
    #[case::helm("meta.helm.sh/release-name")]
    #[case::kubectl("kubectl.kubernetes.io/last-applied-configuration")]
    #[case::mountable_secrets("kubernetes.io/enforce-mountable-secrets")]
    #[case::argo("argocd.argoproj.io/sync-wave")]
    #[case::azure_pod_label_key("azure.workload.identity/use")]
    #[case::eks_other("eks.amazonaws.com/pod-identity")]
    #[case::vault("vault.hashicorp.com/role")]
    fn keys_of_other_tools_are_not_flagged(#[case] key: &str) {
        assert_eq!(problems_of(json!({ key: "x" })), Vec::<String>::new());
    }

    #[test]
    fn valid_annotations_pass_and_disabled_providers_are_not_checked() {
        let good = json!({
            "eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/app",
            "eks.amazonaws.com/sts-regional-endpoints": "true",
            "azure.workload.identity/client-id": "6f3c1b2a-8d4e-4f5a-9b6c-7d8e9f0a1b2c",
            "cloud.google.com/service-account-email": "batch@acme-ml.iam.gserviceaccount.com",
            "workload-identity.stackit.cloud/service-account-email": "app-1x2y@sa.stackit.cloud",
        });
        assert_eq!(problems_of(good), Vec::<String>::new());
        let no_aws = Settings::from_json(br#"{"aws":{"enabled":false}}"#).unwrap();
        let bad_aws =
            account(json!({"eks.amazonaws.com/role-arn": "x", "eks.amazon.com/role-arn": "y"}));
        assert_eq!(problems(&no_aws, "team-a", &bad_aws), Vec::<String>::new());
    }

    #[test]
    fn warn_reject_or_off() {
        let account = account(json!({"azure.workload.identity/clientid": "x"}));
        let decide = |text: &str| {
            check(
                &Settings::from_json(text.as_bytes()).unwrap(),
                "team-a",
                &account,
            )
        };
        assert!(matches!(decide("{}"), Decision::Accept { warnings, .. } if warnings.len() == 1));
        assert!(matches!(
            decide(r#"{"serviceAccountChecks":"reject"}"#),
            Decision::Reject { code: 400, .. }
        ));
        assert!(matches!(
            decide(r#"{"serviceAccountChecks":"off"}"#),
            Decision::Accept { warnings, .. } if warnings.is_empty()
        ));
    }
}
