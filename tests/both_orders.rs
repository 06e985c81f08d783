//! On EKS the AWS webhook is managed and cannot be removed, so it runs beside the policy, in
//! either order. The fixture pairs `eks-webhook-then-policy-<mode>` / `policy-then-eks-webhook-<mode>`
//! pin both orders (the e2e harness runs them); this test ties the pair together: the policy's
//! output for a Pod (`policy-then-…/expected.json`) must be the webhook's output for the same
//! Pod (`eks-webhook-then-…/request.json`, shaped after the webhook's code and testdata) up to
//! what cannot matter:
//!
//! - the order of env vars, mounts and volumes (the webhook prepends its volume and writes
//!   region variables before the identity pair; the policy appends);
//! - `defaultMode: 420` on projected volumes, which the API server's defaulting adds after
//!   every webhook;
//! - the lifetime of a Pod Identity token without `token-expiration`: random in 79200..86400 in
//!   the webhook, derived from the Pod in the same range by the policy.
//!
//! Equal outputs are what makes both orders safe: the webhook skips every container that already
//! has its variables and every volume that already exists by name (fixtures' NOTES.md), and so
//! does the policy.

use std::path::Path;

use serde_json::Value;

const POD_IDENTITY_LIFETIME: std::ops::RangeInclusive<i64> = 79200..=86400;

fn read_json(rel: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{rel}: not JSON: {e}"))
}

fn sort_by_name(list: &mut Value) {
    if let Some(items) = list.as_array_mut() {
        items.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    }
}

/// The Pod with list order, API-server defaults and (when asked) Pod Identity token lifetimes
/// taken out; the lifetimes are returned.
fn normalised(mut pod: Value, pod_identity: bool) -> (Value, Vec<i64>) {
    let mut lifetimes = Vec::new();
    let spec = &mut pod["spec"];
    for list in ["initContainers", "containers"] {
        if let Some(containers) = spec[list].as_array_mut() {
            for container in containers {
                sort_by_name(&mut container["env"]);
                sort_by_name(&mut container["volumeMounts"]);
            }
        }
    }
    if let Some(volumes) = spec["volumes"].as_array_mut() {
        for volume in volumes.iter_mut() {
            let Some(projected) = volume["projected"].as_object_mut() else {
                continue;
            };
            if projected.get("defaultMode") == Some(&Value::from(420)) {
                projected.remove("defaultMode");
            }
            if pod_identity && volume["name"] == "eks-pod-identity-token" {
                let token = &mut volume["projected"]["sources"][0]["serviceAccountToken"];
                if let Some(token) = token.as_object_mut() {
                    if let Some(seconds) = token.remove("expirationSeconds") {
                        lifetimes.push(seconds.as_i64().unwrap_or(-1));
                    }
                }
            }
        }
    }
    sort_by_name(&mut spec["volumes"]);
    (pod, lifetimes)
}

/// Paths (JSON pointers) where two documents differ.
fn differing_paths(a: &Value, b: &Value, at: &str, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for key in keys {
                let null = Value::Null;
                let (l, r) = (x.get(key).unwrap_or(&null), y.get(key).unwrap_or(&null));
                differing_paths(l, r, &format!("{at}/{key}"), out);
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (l, r)) in x.iter().zip(y).enumerate() {
                differing_paths(l, r, &format!("{at}/{i}"), out);
            }
        }
        _ if a != b => out.push(at.to_string()),
        _ => {}
    }
}

/// Ok when `policy_output` is `webhook_output` up to what cannot matter (module doc).
fn same_injection(
    webhook_output: &Value,
    policy_output: &Value,
    pod_identity: bool,
) -> Result<(), String> {
    let (webhook, webhook_lifetimes) = normalised(webhook_output.clone(), pod_identity);
    let (policy, policy_lifetimes) = normalised(policy_output.clone(), pod_identity);
    let mut paths = Vec::new();
    differing_paths(&webhook, &policy, "", &mut paths);
    if !paths.is_empty() {
        return Err(format!("differing paths: {paths:?}"));
    }
    if webhook_lifetimes.len() != policy_lifetimes.len() {
        return Err(format!(
            "token lifetimes: webhook {webhook_lifetimes:?}, policy {policy_lifetimes:?}"
        ));
    }
    match webhook_lifetimes
        .iter()
        .chain(&policy_lifetimes)
        .find(|seconds| !POD_IDENTITY_LIFETIME.contains(seconds))
    {
        Some(seconds) => Err(format!(
            "Pod Identity token lifetime {seconds} outside {POD_IDENTITY_LIFETIME:?}"
        )),
        None => Ok(()),
    }
}

struct Pair {
    webhook_case: String,
    policy_case: String,
}

impl Pair {
    fn new(mode: &str) -> Self {
        Pair {
            webhook_case: format!("fixtures/eks-webhook-then-policy-{mode}"),
            policy_case: format!("fixtures/policy-then-eks-webhook-{mode}"),
        }
    }
    /// What the webhook leaves (the first case's request).
    fn webhook_output(&self) -> Value {
        read_json(&format!("{}/request.json", self.webhook_case))["request"]["object"].clone()
    }
    /// What the policy makes of the same Pod (the second case's golden).
    fn policy_output(&self) -> Value {
        read_json(&format!("{}/expected.json", self.policy_case))["object"].clone()
    }
}

fn check(mode: &str, pod_identity: bool) {
    let pair = Pair::new(mode);
    let (webhook_case, policy_case) = (&pair.webhook_case, &pair.policy_case);

    // The policy adds nothing after the webhook.
    let after_webhook = read_json(&format!("{webhook_case}/expected.json"));
    assert_eq!(
        after_webhook["object"],
        Value::Null,
        "{webhook_case}: the policy must not change a Pod the webhook mutated"
    );
    assert_eq!(after_webhook["allowed"], true, "{webhook_case}");

    // Both cases run with the same settings and the same ServiceAccount.
    assert_eq!(
        read_json(&format!("{webhook_case}/settings.json")),
        read_json(&format!("{policy_case}/settings.json")),
        "{webhook_case} and {policy_case} must use the same settings.json"
    );
    let session = |case: &str| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(case)
            .join("session.yml");
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    assert_eq!(
        session(webhook_case),
        session(policy_case),
        "session.yml of {mode}"
    );

    let policy_output = pair.policy_output();
    assert!(
        policy_output.is_object(),
        "{policy_case}: the policy must mutate the Pod"
    );
    if let Err(problem) = same_injection(&pair.webhook_output(), &policy_output, pod_identity) {
        panic!(
            "{policy_case}/expected.json is not the webhook's output for the same Pod \
             ({webhook_case}/request.json): {problem}"
        );
    }
}

#[test]
fn irsa_policy_output_is_the_webhooks_output() {
    check("irsa", false);
}

#[test]
fn pod_identity_policy_output_is_the_webhooks_output() {
    check("pod-identity", true);
}

/// The comparison cannot pass by accident: a missing variable, another value, an extra volume or
/// a lifetime out of range is caught.
#[test]
fn the_comparison_catches_differences() {
    let irsa = Pair::new("irsa");
    let webhook = irsa.webhook_output();
    let policy = irsa.policy_output();
    assert!(same_injection(&webhook, &policy, false).is_ok());

    let mut missing = policy.clone();
    if let Some(env) = missing["spec"]["initContainers"][1]["env"].as_array_mut() {
        env.retain(|e| e["name"] != "AWS_STS_REGIONAL_ENDPOINTS");
    }
    assert!(same_injection(&webhook, &missing, false).is_err());

    let mut other_value = policy.clone();
    if let Some(env) = other_value["spec"]["containers"][0]["env"].as_array_mut() {
        for e in env.iter_mut().filter(|e| e["name"] == "AWS_REGION") {
            e["value"] = Value::from("us-east-1");
        }
    }
    assert!(same_injection(&webhook, &other_value, false).is_err());

    let mut extra_volume = policy;
    if let Some(volumes) = extra_volume["spec"]["volumes"].as_array_mut() {
        volumes.push(serde_json::json!({"name": "extra", "emptyDir": {}}));
    }
    assert!(same_injection(&webhook, &extra_volume, false).is_err());

    let pod_identity = Pair::new("pod-identity");
    let mut too_long = pod_identity.policy_output();
    too_long["spec"]["volumes"][1]["projected"]["sources"][0]["serviceAccountToken"]
        ["expirationSeconds"] = Value::from(90000);
    assert!(same_injection(&pod_identity.webhook_output(), &too_long, true).is_err());
}
