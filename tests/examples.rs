//! The manifests in `examples/` are what users apply first, so each one is checked here the way a
//! cluster would check it:
//!
//! - every `ClusterAdmissionPolicy` validates against Kubewarden's own CRD schema
//!   (`tests/data/`, kubewarden-controller v1.35.0), closed as the API server's field validation
//!   closes it, and passes the admission checks Kubewarden's controller adds (non-empty rules,
//!   timeouts);
//! - its settings pass the policy's `validate_settings`;
//! - its `rules` are a subset of what `policy-metadata.yml` declares, its `mutating` and
//!   `contextAwareResources` equal the metadata's, and it subscribes to nothing it does not use;
//! - names are distinct (applying one example never replaces another);
//! - `rbac.yaml` grants exactly `get` on ServiceAccounts to the chart's PolicyServer
//!   ServiceAccount;
//! - the test Pods of `test-pods.yaml`, with the ServiceAccounts of `serviceaccounts.yaml`, get
//!   their cloud's identity from their cloud's example and nothing from the others.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use workload_identity_policy::host::{Lookup, ServiceAccountRef};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    let path = root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Every YAML document of one file, as JSON.
fn documents(rel: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(&read(rel))
        .map(|document| {
            serde::Deserialize::deserialize(document)
                .unwrap_or_else(|e| panic!("{rel}: not valid YAML: {e}"))
        })
        .filter(|doc: &Value| !doc.is_null())
        .collect()
}

/// Every document of every `examples/*.yaml`, with the file it came from.
fn example_documents() -> Vec<(String, Value)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("examples"))
        .expect("examples/ exists")
        .map(|entry| entry.expect("readable entry").path())
        .filter(|path| path.extension().and_then(|e| e.to_str()) == Some("yaml"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|path| {
            let rel = format!(
                "examples/{}",
                path.file_name().unwrap_or_default().to_string_lossy()
            );
            documents(&rel)
                .into_iter()
                .map(move |doc| (rel.clone(), doc))
        })
        .collect()
}

/// The `ClusterAdmissionPolicy` examples: (file, manifest).
fn policies() -> Vec<(String, Value)> {
    let found: Vec<_> = example_documents()
        .into_iter()
        .filter(|(_, doc)| doc["kind"] == "ClusterAdmissionPolicy")
        .collect();
    assert!(
        found.len() >= 8,
        "expected the policy examples (one per cloud, caller identity, Flyte secrets, custom \
         providers), found {}",
        found.len()
    );
    found
}

fn policy(file: &str) -> Value {
    policies()
        .into_iter()
        .find(|(path, _)| path == file)
        .map(|(_, doc)| doc)
        .unwrap_or_else(|| panic!("{file}: no ClusterAdmissionPolicy"))
}

fn metadata() -> Value {
    serde_yaml::from_str(&read("policy-metadata.yml")).expect("policy-metadata.yml is YAML")
}

// ---------------------------------------------------------------------------------------------
// The CRD schema.

const CRD: &str = "tests/data/policies.kubewarden.io_clusteradmissionpolicies.yaml";

/// The `openAPIV3Schema` of the CRD's served version `v1`, as a JSON schema that refuses what the
/// API server refuses: an object schema with `properties` and without
/// `x-kubernetes-preserve-unknown-fields` is closed (`kubectl apply` validates fields strictly
/// and the API server prunes unknown ones: either way a misspelt field does not do what its
/// author meant), and `nullable: true` admits `null`.
fn crd_schema() -> Value {
    let crd = documents(CRD)
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("{CRD}: empty"));
    assert_eq!(
        crd["spec"]["names"]["kind"], "ClusterAdmissionPolicy",
        "{CRD}"
    );
    let version = crd["spec"]["versions"]
        .as_array()
        .and_then(|versions| versions.iter().find(|v| v["name"] == "v1"))
        .unwrap_or_else(|| panic!("{CRD}: no version v1"));
    assert_eq!(version["served"], true, "{CRD}: v1 must be served");
    let mut schema = version["schema"]["openAPIV3Schema"].clone();
    close(&mut schema);
    schema
}

fn close(schema: &mut Value) {
    let Some(object) = schema.as_object_mut() else {
        return;
    };
    if object.get("nullable") == Some(&Value::Bool(true)) {
        if let Some(Value::String(kind)) = object.get("type").cloned() {
            object.insert("type".into(), json!([kind, "null"]));
        }
    }
    if object.contains_key("properties")
        && object.get("x-kubernetes-preserve-unknown-fields") != Some(&Value::Bool(true))
        && !object.contains_key("additionalProperties")
    {
        object.insert("additionalProperties".into(), Value::Bool(false));
    }
    for (key, child) in object.iter_mut() {
        match key.as_str() {
            "properties" => {
                if let Some(properties) = child.as_object_mut() {
                    properties.values_mut().for_each(close);
                }
            }
            "items" | "additionalProperties" => close(child),
            _ => {}
        }
    }
}

/// Every schema violation of `manifest`, one line each, empty when it is valid.
fn schema_errors(validator: &jsonschema::Validator, manifest: &Value) -> Vec<String> {
    validator
        .iter_errors(manifest)
        .map(|error| format!("at {:?}: {error}", error.instance_path().to_string()))
        .collect()
}

fn validator() -> jsonschema::Validator {
    jsonschema::validator_for(&crd_schema())
        .unwrap_or_else(|e| panic!("{CRD}: the v1 schema does not compile: {e}"))
}

/// What Kubewarden's controller refuses beyond the schema (api/policies/v1/policy_validation.go
/// at v1.35.0): empty rules, a rule without operations, apiVersions or resources, an empty string
/// in any of them, and `timeoutEvalSeconds` above `timeoutSeconds`.
fn controller_errors(manifest: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    let spec = &manifest["spec"];
    let rules = spec["rules"].as_array().cloned().unwrap_or_default();
    if rules.is_empty() {
        errors.push("spec.rules: a value must be specified".to_string());
    }
    for (i, rule) in rules.iter().enumerate() {
        for field in ["operations", "apiVersions", "resources"] {
            let values = rule[field].as_array().cloned().unwrap_or_default();
            if values.is_empty() {
                errors.push(format!(
                    "spec.rules[{i}].{field}: a value must be specified"
                ));
            }
            if values.iter().any(|v| v.as_str().is_none_or(str::is_empty)) {
                errors.push(format!("spec.rules[{i}].{field}: must be non-empty"));
            }
        }
    }
    if let (Some(eval), Some(timeout)) = (
        spec["timeoutEvalSeconds"].as_i64(),
        spec["timeoutSeconds"].as_i64(),
    ) {
        if eval > timeout {
            errors.push("spec.timeoutEvalSeconds: cannot be greater than timeoutSeconds".into());
        }
    }
    errors
}

#[test]
fn every_policy_example_is_a_valid_cluster_admission_policy() {
    let validator = validator();
    for (file, manifest) in policies() {
        assert_eq!(
            manifest["apiVersion"], "policies.kubewarden.io/v1",
            "{file}: apiVersion"
        );
        let mut errors = schema_errors(&validator, &manifest);
        errors.extend(controller_errors(&manifest));
        assert!(
            errors.is_empty(),
            "{file} is refused by the ClusterAdmissionPolicy CRD (v1.35.0):\n  {}",
            errors.join("\n  ")
        );
    }
}

/// The checks above can fail: mistakes a user could make are caught.
#[test]
fn the_schema_check_refuses_what_the_cluster_refuses() {
    let validator = validator();
    let base = policy("examples/aws.yaml");
    assert!(schema_errors(&validator, &base).is_empty());
    type Breaks = fn(&mut Value);
    let broken: [(&str, Breaks); 7] = [
        ("misspelt field", |p| {
            p["spec"]["backgroundAudits"] = json!(false)
        }),
        ("unknown mode", |p| p["spec"]["mode"] = json!("enforce")),
        ("no module", |p| {
            p["spec"].as_object_mut().map(|s| s.remove("module"));
        }),
        ("timeout above 30 s", |p| {
            p["spec"]["timeoutSeconds"] = json!(60)
        }),
        ("rules not a list", |p| {
            p["spec"]["rules"] = json!({"resources": ["pods"]})
        }),
        ("settings a string", |p| {
            p["spec"]["settings"] = json!("aws")
        }),
        ("unknown field in a rule", |p| {
            p["spec"]["rules"][0]["resource"] = json!(["pods"])
        }),
    ];
    for (what, breaks) in broken {
        let mut manifest = base.clone();
        breaks(&mut manifest);
        assert!(
            !schema_errors(&validator, &manifest).is_empty(),
            "the schema accepted an example with a {what}"
        );
    }
    let mut manifest = base.clone();
    manifest["spec"]["rules"][0]["operations"] = json!([]);
    assert!(!controller_errors(&manifest).is_empty());
    let mut manifest = base;
    manifest["spec"]["settings"] = Value::Null;
    assert!(
        schema_errors(&validator, &manifest).is_empty(),
        "settings is nullable in the CRD"
    );
}

#[test]
fn example_names_are_distinct() {
    let mut seen = BTreeMap::new();
    for (file, manifest) in policies() {
        let name = manifest["metadata"]["name"]
            .as_str()
            .unwrap_or_else(|| panic!("{file}: metadata.name missing"))
            .to_string();
        if let Some(other) = seen.insert(name.clone(), file.clone()) {
            panic!("{file} and {other} are both named {name:?}: applying one replaces the other");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Agreement with the policy.

#[test]
fn example_settings_are_valid() {
    for (file, manifest) in policies() {
        let raw = serde_json::to_vec(&manifest["spec"]["settings"]).expect("settings serialise");
        let verdict = workload_identity_policy::validate_settings_payload(&raw);
        assert_eq!(
            verdict["valid"], true,
            "{file}: settings refused by validate_settings: {}",
            verdict["message"]
        );
    }
}

/// Every (apiGroup, apiVersion, resource, operation) a rule list covers.
fn rule_tuples(rules: &Value, what: &str) -> BTreeSet<[String; 4]> {
    let strings = |v: &Value, field: &str| -> Vec<String> {
        v[field]
            .as_array()
            .unwrap_or_else(|| panic!("{what}: {field} is not a list"))
            .iter()
            .map(|s| s.as_str().unwrap_or_default().to_string())
            .collect()
    };
    let mut out = BTreeSet::new();
    for rule in rules
        .as_array()
        .unwrap_or_else(|| panic!("{what}: rules is not a list"))
    {
        for group in strings(rule, "apiGroups") {
            for version in strings(rule, "apiVersions") {
                for resource in strings(rule, "resources") {
                    for operation in strings(rule, "operations") {
                        out.insert([
                            group.clone(),
                            version.clone(),
                            resource.clone(),
                            operation.clone(),
                        ]);
                    }
                }
            }
        }
    }
    out
}

fn pod_create() -> BTreeSet<[String; 4]> {
    BTreeSet::from([[String::new(), "v1".into(), "pods".into(), "CREATE".into()]])
}

fn service_account_writes() -> BTreeSet<[String; 4]> {
    ["CREATE", "UPDATE"]
        .into_iter()
        .map(|op| {
            [
                String::new(),
                "v1".into(),
                "serviceaccounts".into(),
                op.into(),
            ]
        })
        .collect()
}

/// The validating examples: the verify instance (`settings.verify`) and the ServiceAccount checks
/// (rules on ServiceAccounts only). Every other example is the mutating policy.
fn is_validating(file: &str, manifest: &Value) -> bool {
    let spec = &manifest["spec"];
    let verify = spec["settings"]["verify"] == true;
    let checks = rule_tuples(&spec["rules"], file) == service_account_writes();
    verify || checks
}

#[test]
fn examples_agree_with_the_metadata() {
    let m = metadata();
    let allowed = rule_tuples(&m["rules"], "policy-metadata.yml");
    let image = format!(
        "registry://{}:v{}",
        m["annotations"]["io.kubewarden.policy.ociUrl"]
            .as_str()
            .expect("ociUrl"),
        m["annotations"]["io.kubewarden.policy.version"]
            .as_str()
            .expect("version")
    );
    for (file, manifest) in policies() {
        let spec = &manifest["spec"];
        let rules = rule_tuples(&spec["rules"], &file);
        let extra: Vec<_> = rules.difference(&allowed).collect();
        assert!(
            extra.is_empty(),
            "{file}: spec.rules cover {extra:?}, which policy-metadata.yml does not allow"
        );
        assert_eq!(spec["module"], json!(image), "{file}: spec.module");
        assert_eq!(
            spec["contextAwareResources"], m["contextAwareResources"],
            "{file}: spec.contextAwareResources"
        );
        if is_validating(&file, &manifest) {
            // Validating webhooks run after every mutating one, and the audit scanner reads
            // spec.backgroundAudit (the metadata's describes the mutating policy).
            assert_eq!(spec["mutating"], false, "{file}: a validating example");
            assert_eq!(
                spec["backgroundAudit"], true,
                "{file}: reports running resources"
            );
        } else {
            assert_eq!(spec["mutating"], m["mutating"], "{file}: spec.mutating");
            assert_eq!(
                spec["backgroundAudit"], false,
                "{file}: spec.backgroundAudit must be false (the CRD default is true, which would \
                 run this mutating policy over existing workloads)"
            );
        }
        assert!(
            matches!(spec["mode"].as_str(), Some("protect" | "monitor")),
            "{file}: spec.mode must be stated (protect or monitor)"
        );
        assert_eq!(
            spec["policyServer"], "default",
            "{file}: spec.policyServer must name the PolicyServer examples/rbac.yaml is for"
        );
    }
}

/// Cloud identity and Flyte secrets act on Pod CREATE only; only caller identity needs the
/// templates of every workload kind, and then it needs all of them.
#[test]
fn examples_subscribe_only_to_what_they_use() {
    let all: BTreeSet<_> = rule_tuples(&metadata()["rules"], "policy-metadata.yml")
        .difference(&service_account_writes())
        .cloned()
        .collect();
    for (file, manifest) in policies() {
        let rules = rule_tuples(&manifest["spec"]["rules"], &file);
        if rules == service_account_writes() {
            // The ServiceAccount checks: nothing else.
            continue;
        }
        if manifest["spec"]["settings"]["identityInjection"]["enabled"] == true {
            assert_eq!(
                rules, all,
                "{file}: caller identity needs every kind of policy-metadata.yml, on CREATE \
                 and UPDATE: a template it does not stamp can be forged"
            );
        } else {
            assert_eq!(
                rules,
                pod_create(),
                "{file}: without caller identity the policy acts on pods/CREATE only; more \
                 rules only add load, and with failurePolicy Fail a PolicyServer outage would \
                 block those writes too"
            );
        }
    }
}

/// Each example turns on only what it needs, and says so: every built-in provider and Flyte
/// secrets is switched on or off explicitly (the defaults enable all of them).
#[test]
fn every_example_states_what_is_on() {
    for (file, manifest) in policies() {
        let settings = &manifest["spec"]["settings"];
        let on: Vec<&str> = ["aws", "azure", "gcp", "stackit", "secrets"]
            .into_iter()
            .filter(|feature| {
                let enabled = &settings[*feature]["enabled"];
                assert!(
                    enabled.is_boolean(),
                    "{file}: settings.{feature}.enabled must be set explicitly"
                );
                enabled == true
            })
            .collect();
        let custom = settings["customProviders"]
            .as_array()
            .is_some_and(|p| !p.is_empty());
        let caller = settings["identityInjection"]["enabled"] == true;
        if rule_tuples(&manifest["spec"]["rules"], &file) == service_account_writes() {
            // The ServiceAccount checks cover the providers of a cluster, all at once.
            continue;
        }
        assert!(
            on.len() + usize::from(custom) + usize::from(caller) == 1 || (caller && on == ["aws"]),
            "{file}: turns on {on:?} (custom providers: {custom}, caller identity: {caller}); \
             an example shows one feature (caller identity with the provider its bindings use)"
        );
    }
}

#[test]
fn custom_provider_fixtures_use_the_examples_settings() {
    for (example, fixture) in [
        (
            "examples/custom-provider-vault-jwt.yaml",
            "custom-vault-jwt",
        ),
        (
            "examples/custom-provider-flyte-client-credentials.yaml",
            "custom-flyte-client-credentials",
        ),
    ] {
        let settings = &policy(example)["spec"]["settings"];
        let fixture_settings: Value =
            serde_json::from_str(&read(&format!("fixtures/{fixture}/settings.json")))
                .expect("fixture settings are JSON");
        assert_eq!(
            settings["customProviders"], fixture_settings["customProviders"],
            "{example} and fixtures/{fixture} disagree on customProviders"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// RBAC.

const POLICY_SERVER_SA: &str = "system:serviceaccount:kubewarden:policy-server";

#[test]
fn rbac_grants_get_on_serviceaccounts_to_the_charts_policy_server() {
    let docs = documents("examples/rbac.yaml");
    let role = docs
        .iter()
        .find(|d| d["kind"] == "ClusterRole")
        .expect("examples/rbac.yaml: a ClusterRole");
    assert_eq!(
        role["rules"],
        json!([{"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["get"]}]),
        "examples/rbac.yaml: the policy needs get on serviceaccounts and nothing else"
    );
    let binding = docs
        .iter()
        .find(|d| d["kind"] == "ClusterRoleBinding")
        .expect("examples/rbac.yaml: a ClusterRoleBinding");
    assert_eq!(
        binding["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
               "name": role["metadata"]["name"]}),
        "examples/rbac.yaml: the binding must refer to the ClusterRole"
    );
    // kubewarden-defaults: PolicyServer `default` runs as policyServer.serviceAccountName
    // (`policy-server`) in the release namespace (`kubewarden`).
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": "policy-server", "namespace": "kubewarden"}]),
        "examples/rbac.yaml: the subject must be the kubewarden-defaults chart's ServiceAccount"
    );
    let check = format!("kubectl auth can-i get serviceaccounts --as={POLICY_SERVER_SA} -A");
    for file in ["examples/rbac.yaml", "README.md", "docs/operations.md"] {
        assert!(read(file).contains(&check), "{file} must show `{check}`");
    }
}

// ---------------------------------------------------------------------------------------------
// The test Pods.

/// Answers lookups from `examples/serviceaccounts.yaml`, or refuses them all as an API server
/// does when the PolicyServer lacks RBAC.
struct ExampleAccounts {
    accounts: Vec<Value>,
    forbidden: bool,
}

impl Lookup for ExampleAccounts {
    fn service_account(&self, sa: &ServiceAccountRef, _cached: bool) -> Result<Value, String> {
        if self.forbidden {
            return Err(format!(
                "serviceaccounts \"{}\" is forbidden: User \"{POLICY_SERVER_SA}\" cannot get \
                 resource \"serviceaccounts\" in API group \"\" in the namespace \"{}\"",
                sa.name, sa.namespace
            ));
        }
        self.accounts
            .iter()
            .find(|a| {
                a["metadata"]["namespace"] == sa.namespace && a["metadata"]["name"] == sa.name
            })
            .cloned()
            .ok_or_else(|| format!("serviceaccounts \"{}\" not found", sa.name))
    }
}

fn accounts(forbidden: bool) -> ExampleAccounts {
    ExampleAccounts {
        accounts: documents("examples/serviceaccounts.yaml")
            .into_iter()
            .filter(|d| d["kind"] == "ServiceAccount")
            .collect(),
        forbidden,
    }
}

fn test_pods() -> Vec<Value> {
    let pods: Vec<Value> = documents("examples/test-pods.yaml")
        .into_iter()
        .filter(|d| d["kind"] == "Pod")
        .collect();
    assert!(
        pods.len() >= 4,
        "examples/test-pods.yaml: one Pod per cloud"
    );
    pods
}

/// The policy's answer to a `kubectl apply` of `pod` by a user.
fn admit(pod: &Value, settings: &Value, lookup: &dyn Lookup) -> Value {
    let payload = json!({
        "request": {
            "uid": "00000000-0000-4000-8000-000000000000",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": pod["metadata"]["namespace"],
            "operation": "CREATE",
            "userInfo": {"username": "jane", "groups": ["system:authenticated"]},
            "object": pod,
        },
        "settings": settings,
    });
    workload_identity_policy::validate_payload(
        &serde_json::to_vec(&payload).expect("payload"),
        lookup,
    )
}

/// The env var that shows a cloud's identity was injected.
fn marker(cloud: &str, pod: &Value) -> &'static str {
    match cloud {
        "aws" if pod["spec"]["serviceAccountName"] == "aws-pod-identity-demo" => {
            "AWS_CONTAINER_CREDENTIALS_FULL_URI"
        }
        "aws" => "AWS_ROLE_ARN",
        "azure" => "AZURE_CLIENT_ID",
        "gcp" => "GOOGLE_APPLICATION_CREDENTIALS",
        "stackit" => "STACKIT_SERVICE_ACCOUNT_EMAIL",
        other => panic!("examples/test-pods.yaml: unknown cloud label {other:?}"),
    }
}

#[test]
fn test_pods_get_their_clouds_identity_and_nothing_else() {
    let lookup = accounts(false);
    for cloud in ["aws", "azure", "gcp", "stackit"] {
        let file = format!("examples/{cloud}.yaml");
        let settings = &policy(&file)["spec"]["settings"];
        for pod in test_pods() {
            let pod_cloud = pod["metadata"]["labels"]["workload-identity-example"]
                .as_str()
                .expect("test Pods carry workload-identity-example");
            let name = &pod["metadata"]["name"];
            let response = admit(&pod, settings, &lookup);
            assert_eq!(response["accepted"], true, "{file}, Pod {name}: {response}");
            assert_eq!(
                response["warnings"],
                Value::Null,
                "{file}, Pod {name}: no warnings expected"
            );
            if pod_cloud == cloud {
                let env = &response["mutated_object"]["spec"]["containers"][0]["env"];
                let wanted = marker(cloud, &pod);
                assert!(
                    env.as_array()
                        .is_some_and(|env| env.iter().any(|e| e["name"] == wanted)),
                    "{file}, Pod {name}: expected {wanted} in {env}"
                );
            } else {
                assert_eq!(
                    response["mutated_object"],
                    Value::Null,
                    "{file} must leave Pod {name} ({pod_cloud}) alone: only {cloud} is on"
                );
            }
        }
    }
}

/// The quick start tells the reader what they see when the RBAC is missing: the exact warning.
#[test]
fn readme_shows_the_warning_of_a_missing_rbac() {
    let pod = test_pods()
        .into_iter()
        .find(|p| p["metadata"]["name"] == "wi-test-aws")
        .expect("examples/test-pods.yaml: Pod wi-test-aws");
    let response = admit(
        &pod,
        &policy("examples/aws.yaml")["spec"]["settings"],
        &accounts(true),
    );
    assert_eq!(response["accepted"], true, "lookupFailure: admit");
    assert_eq!(response["mutated_object"], Value::Null);
    let warning = response["warnings"][0]
        .as_str()
        .expect("a warning naming the ServiceAccount");
    let readme = read("README.md");
    assert!(
        readme.contains(&format!("Warning: {warning}")),
        "README.md must quote the warning a missing RBAC gives, as kubectl prints it:\n\
         Warning: {warning}"
    );
}

/// The quick start shows what the AWS test Pod gets, as `kubectl ... -o jsonpath` prints it.
#[test]
fn readme_shows_what_the_aws_test_pod_gets() {
    let pod = test_pods()
        .into_iter()
        .find(|p| p["metadata"]["name"] == "wi-test-aws")
        .expect("examples/test-pods.yaml: Pod wi-test-aws");
    let response = admit(
        &pod,
        &policy("examples/aws.yaml")["spec"]["settings"],
        &accounts(false),
    );
    let env = serde_json::to_string(&response["mutated_object"]["spec"]["containers"][0]["env"])
        .expect("env serialises");
    assert!(
        read("README.md").contains(&format!("\n   {env}\n")),
        "README.md must show the AWS test Pod's env as kubectl prints it:\n{env}"
    );
}

/// The verify instance runs with the settings of the mutating policy it checks, plus `verify`.
#[test]
fn the_verify_example_has_the_mutating_examples_settings() {
    let mut verify = policy("examples/verify-pods.yaml")["spec"]["settings"].clone();
    let mutating = policy("examples/aws.yaml")["spec"]["settings"].clone();
    let extra = verify.as_object_mut().expect("settings");
    assert_eq!(extra.remove("verify"), Some(json!(true)));
    extra.remove("verifyDifferentIdentity");
    assert_eq!(
        verify, mutating,
        "examples/verify-pods.yaml: settings of examples/aws.yaml"
    );
    let (v, m) = (
        policy("examples/verify-pods.yaml")["spec"].clone(),
        policy("examples/aws.yaml")["spec"].clone(),
    );
    for field in ["rules", "namespaceSelector", "objectSelector"] {
        assert_eq!(
            v[field], m[field],
            "examples/verify-pods.yaml: spec.{field} of examples/aws.yaml"
        );
    }
}

/// policy-server interrupts a policy after `timeoutEvalSeconds` (2 s by default), a slow
/// ServiceAccount GET included, with a 500 that ignores failurePolicy and lookupFailure; the
/// controller refuses a `timeoutEvalSeconds` above `timeoutSeconds`. Every example sets them equal,
/// so that only a lookup just short of the webhook's timeout can meet the interrupt.
#[test]
fn the_policy_server_waits_as_long_as_the_api_server() {
    for (file, manifest) in policies() {
        let spec = &manifest["spec"];
        let webhook = spec["timeoutSeconds"].as_u64().unwrap_or(10);
        assert_eq!(
            spec["timeoutEvalSeconds"].as_u64(),
            Some(webhook),
            "{file}: spec.timeoutEvalSeconds must equal spec.timeoutSeconds ({webhook})"
        );
    }
}
