//! Property tests of the pure decision, `core::decide(settings, input, lookup)`, on generated
//! requests.
//!
//! Generated inputs:
//! - pods as raw JSON: 0–4 containers and 0–2 init containers (native sidecars with
//!   `restartPolicy: Always` among them), env lists drawing on every name a provider or caller
//!   identity injects (with `value`, `valueFrom` or neither), volumes and mounts using the
//!   providers' volume names and mount paths (and other volumes at those paths), annotations and
//!   labels from every provider's keys with valid and invalid values (and non-string values),
//!   unknown fields at pod, metadata, spec and container level, `name` / `generateName` present,
//!   empty or absent, and Flyte secret requests (`inject-flyte-secrets` label, `flyte.secrets/s<i>`
//!   annotations, valid and invalid);
//! - ServiceAccount annotations from every provider's vocabulary, valid and invalid;
//! - settings as JSON (provider switches, prefixes, region, overlays, Pod Identity associations,
//!   custom providers, caller identity targets, trusted requesters, bindings, secret managers),
//!   kept only when `Settings::from_json` accepts them;
//! - requesters (trusted controllers, untrusted users, users with missing claims) and
//!   kinds/operations (mostly Pod CREATE; Pod UPDATE/DELETE; workloads CREATE/UPDATE with an
//!   `oldObject` that is the same, differs only in managed keys, or is an older template);
//! - a lookup that answers with the generated ServiceAccount, or fails.
//!
//! Properties (one `#[test]` each):
//! 1. `never_panics_and_rejects_with_documented_codes`, and on objects with a wrong JSON type
//!    anywhere the policy reads, `malformed_objects_are_denied_cleanly` (through the payload
//!    decoder too);
//! 2. `output_fed_back_is_accepted_unchanged` (idempotency);
//! 3. `output_is_a_valid_pod` (for what the policy introduced);
//! 4. `only_owned_paths_change`;
//! 5. `no_identity_trigger_no_mutation`;
//! 6. `decide_is_deterministic`.
//!
//! `generator_reaches_every_outcome` keeps the generator honest (enough mutations, denials,
//! secrets, stamps...), `checks_catch_broken_outputs` shows the checks of 3 and 4 catch outputs
//! broken on purpose, and the regression tests at the end are minimal reproductions of what the
//! properties found (all fixed, kept so they stay fixed). 256 cases per property by default;
//! `PROPTEST_CASES=N` runs more.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use proptest::sample::{select, subsequence, Index};
use serde_json::{json, Map, Value};
use workload_identity_policy::caller;
use workload_identity_policy::core::{decide, Decision};
use workload_identity_policy::host::{Lookup, ServiceAccountRef};
use workload_identity_policy::providers::azure;
use workload_identity_policy::request::{Input, UserInfo};
use workload_identity_policy::secrets;
use workload_identity_policy::settings::{is_env_name, Settings};

// ---------------------------------------------------------------------------------------------
// Vocabulary
// ---------------------------------------------------------------------------------------------

const ROLE: &str = "arn:aws:iam::111122223333:role/app";
const GCP_PROVIDER: &str =
    "projects/123456789012/locations/global/workloadIdentityPools/pool/providers/prov";
/// Stands for Azure v1.6's volume name of the pod named `web-0` (computed at run time).
const AZURE_V16_WEB0: &str = "#azure-v1.6-web-0";
/// Stands for the Flyte secret volume of group `db` (computed at run time).
const FLYTE_DB: &str = "#flyte-secret-db";
/// Value markers for non-string JSON values (which the API server would refuse).
const NUM: &str = "#num";
const NULL: &str = "#null";
const OBJ: &str = "#obj";

/// Every env name a built-in provider, a custom provider of these settings or caller identity
/// injects, and a few of the user's own.
const ENV_NAMES: &[&str] = &[
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
    "CLOUDSDK_CONFIG",
    "CLOUDSDK_COMPUTE_REGION",
    "CLOUDSDK_CORE_PROJECT",
    "VAULT_ROLE",
    "VAULT_ADDR",
    "VAULT_TOKEN_FILE",
    "VAULT_SECRET",
    "JWT_FILE",
    "UNION_USER_SUBJECT",
    "UNION_USER_EMAIL",
    "UNION_USER_GROUPS",
    "_FSEC_API_TOKEN",
    "_FSEC_DB_PASSWORD",
    "API_TOKEN",
    "DB_PASSWORD",
    "FLYTE_SECRETS_DEFAULT_DIR",
    "FLYTE_SECRETS_FILE_PREFIX",
    "FLYTE_SECRETS_ENV_PREFIX",
    "SECRET_ARN",
    "HOME",
    "LOG_LEVEL",
];

/// The providers' volume names, and others.
const VOLUME_NAMES: &[&str] = &[
    "aws-iam-token",
    "eks-pod-identity-token",
    "stackit-workload-identity",
    "azure-identity-token",
    AZURE_V16_WEB0,
    "gcp-iam-token",
    "external-credential-config",
    "gcloud-config",
    "aws-secret-vol",
    "gcp-secret-vol",
    "vault-token",
    "jwt-token",
    FLYTE_DB,
    "data",
    "cache",
    "",
];

/// The providers' mount paths (default and configurable ones, with and without a trailing `/`),
/// STACKIT's `federated-token-file` directories, and others.
const MOUNT_PATHS: &[&str] = &[
    "/var/run/secrets/eks.amazonaws.com/serviceaccount",
    "/var/run/secrets/eks.amazonaws.com/serviceaccount/",
    "/var/run/secrets/aws",
    "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount",
    "/var/run/secrets/stackit.cloud/serviceaccount",
    "/var/run/secrets/custom",
    "/var/run/secrets/azure/tokens",
    "/var/run/secrets/azure/wi",
    "/var/run/secrets/sts.googleapis.com/serviceaccount",
    "/var/run/secrets/workload-identity",
    "/var/run/secrets/gcloud/config",
    "/var/run/secrets/vault",
    "/var/run/secrets/jwt",
    "/etc/flyte/secrets/db",
    "/etc/flyte/secrets",
    "/data",
    "/",
];

type Vocabulary = &'static [(&'static str, &'static [&'static str])];

/// ServiceAccount annotations of every provider (both AWS and GCP prefixes the settings use).
const SA_ANNOTATIONS: Vocabulary = &[
    (
        "eks.amazonaws.com/role-arn",
        &[
            ROLE,
            "arn:aws-cn:iam::111122223333:role/x",
            "not-an-arn",
            "",
        ],
    ),
    (
        "eks.amazonaws.com/audience",
        &["sts.amazonaws.com", "aud", ""],
    ),
    (
        "eks.amazonaws.com/sts-regional-endpoints",
        &["true", "false", "1", "maybe"],
    ),
    (
        "eks.amazonaws.com/token-expiration",
        &["3600", "100", "abc", "99999999999999999999", "-5"],
    ),
    ("iam.example.com/role-arn", &[ROLE, "bad"]),
    ("iam.example.com/token-expiration", &["7200", "x"]),
    (
        "workload-identity.stackit.cloud/service-account-email",
        &["sa@sa.stackit.cloud", "nope", ""],
    ),
    ("workload-identity.stackit.cloud/audience", &["aud", ""]),
    (
        "workload-identity.stackit.cloud/service-account-token-expiration-seconds",
        &["900", "60", "ten", "99999999999999999999"],
    ),
    (
        "workload-identity.stackit.cloud/idp-token-expiration-seconds",
        &["300", "x"],
    ),
    (
        "workload-identity.stackit.cloud/idp-token-endpoint",
        &["https://idp.example/token", "/token", "not a url"],
    ),
    (
        "workload-identity.stackit.cloud/federated-token-file",
        &[
            "/var/run/secrets/custom/tok",
            "/var/run/secrets/eks.amazonaws.com/serviceaccount/token",
            "/var/run/secrets/azure/tokens/t",
            "/var/run/secrets/vault/t",
            "/tok",
            "relative/tok",
        ],
    ),
    (
        "workload-identity.stackit.cloud/skip-pod-identity-webhook",
        &["false", "true"],
    ),
    (
        "azure.workload.identity/client-id",
        &["5f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b", ""],
    ),
    (
        "azure.workload.identity/tenant-id",
        &["72f988bf-86f1-41af-91ab-2d7cd011db47", ""],
    ),
    (
        "azure.workload.identity/service-account-token-expiration",
        &["3600", "7200", "100", "x", ""],
    ),
    (
        "cloud.google.com/workload-identity-provider",
        &[
            GCP_PROVIDER,
            "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/q",
            "",
        ],
    ),
    (
        "cloud.google.com/service-account-email",
        &["app@proj.iam.gserviceaccount.com", "x@example.com", ""],
    ),
    ("cloud.google.com/audience", &["aud", ""]),
    (
        "cloud.google.com/token-expiration",
        &["7200", "10", "x", "99999999999"],
    ),
    (
        "cloud.google.com/injection-mode",
        &["direct", "gcloud", "DIRECT", "bogus"],
    ),
    (
        "gcp.example.com/workload-identity-provider",
        &[GCP_PROVIDER],
    ),
    ("vault.example.com/role", &["reader", ""]),
    ("example.com/jwt-audience", &["api", ""]),
    (
        "iam.gke.io/gcp-service-account",
        &["x@proj.iam.gserviceaccount.com"],
    ),
    ("example.com/unrelated", &["1", NUM, NULL]),
];

/// Pod annotations of every provider and of caller identity (forged stamps), valid and invalid.
const POD_ANNOTATIONS: Vocabulary = &[
    (
        "workload-identity.kubewarden.io/containers",
        &["app", "app,init", "sidecar, nope", "", "istio-proxy"],
    ),
    (
        "eks.amazonaws.com/token-expiration",
        &["7200", "100", "1h", "99999999999999999999"],
    ),
    (
        "eks.amazonaws.com/skip-containers",
        &["sidecar", "app", "app,sidecar", "", ",,"],
    ),
    ("iam.example.com/skip-containers", &["init"]),
    (
        "workload-identity.stackit.cloud/skip-pod-identity-webhook",
        &["false", "true"],
    ),
    (
        "azure.workload.identity/skip-containers",
        &[" sidecar ;", "app; init", ""],
    ),
    (
        "azure.workload.identity/service-account-token-expiration",
        &["7200", "100", "x", ""],
    ),
    (
        "azure.workload.identity/inject-proxy-sidecar",
        &["true", "false"],
    ),
    ("azure.workload.identity/proxy-sidecar-port", &["8000", "x"]),
    (
        "cloud.google.com/skip-containers",
        &["init", "app, sidecar"],
    ),
    ("cloud.google.com/token-expiration", &["7200", "10", "x"]),
    (
        "cloud.google.com/external-credentials-json",
        &["{\"forged\":true}", "", NUM],
    ),
    ("gcp.example.com/external-credentials-json", &["forged"]),
    ("union.ai/created-by", &["mallory", ""]),
    ("union.ai/user-groups", &["ml-engineers", "admins"]),
    ("union.ai/team", &["platform"]),
    ("example.com/note", &["hello", NUM, NULL, OBJ]),
];

/// Pod labels of every provider.
const POD_LABELS: Vocabulary = &[
    (
        "eks.amazonaws.com/skip-pod-identity-webhook",
        &["", "true", "false"],
    ),
    ("iam.example.com/skip-pod-identity-webhook", &["true"]),
    (
        "workload-identity.stackit.cloud/skip-pod-identity-webhook",
        &["false", "true"],
    ),
    ("azure.workload.identity/use", &["true", "false", "TRUE"]),
    ("eks.amazonaws.com/pod-identity", &["enabled", "disabled"]),
    ("inject-flyte-secrets", &["true", "false", "True"]),
    ("app", &["web"]),
];

/// Flyte secret requests (flyteidl `core.Secret` in text format, encoded as flytepropeller does),
/// valid and invalid; `#raw:` values are used as they are.
const FLYTE_SECRETS: &[&str] = &[
    "group: \"db\" key: \"password\"",
    "group: \"db\" key: \"user\" mount_requirement: FILE",
    "group: \"db\" group_version: \"v2\" key: \"password\" env_var: \"DB_PASSWORD\"",
    "group: \"api\" key: \"token\" mount_requirement: ENV_VAR",
    "group: \"api\" key: \"token\" mount_requirement: ENV_VAR env_var: \"API_TOKEN\"",
    "group: \"db.prod\" key: \"tls.key\" mount_requirement: FILE env_var: \"TLS_KEY\"",
    "group: \"api\" group_version: \"3\" key: \"token\" env_var: \"API_TOKEN\"",
    "group: \"db\" key: \"Password\"",
    "group: \"db\" key: \"password\" future_field: 1",
    "group: \"Bad Group\" key: \"k\"",
    "key: \"k\"",
    "group: \"db\" key: \"k\" mount_requirement: 7",
    "#raw:!!not-base32!!",
    "#raw:",
];

/// ServiceAccount annotation keys that turn a built-in provider on (or make GCP deny); pod
/// triggers are the Azure use label and the Flyte secrets label.
const TRIGGER_KEYS: &[&str] = &[
    "eks.amazonaws.com/role-arn",
    "iam.example.com/role-arn",
    "workload-identity.stackit.cloud/service-account-email",
    "azure.workload.identity/client-id",
    "cloud.google.com/workload-identity-provider",
    "cloud.google.com/service-account-email",
    "gcp.example.com/workload-identity-provider",
];

fn annotation_targets() -> Vec<Value> {
    vec![
        json!({"claimName": "preferred_username", "targetKey": "union.ai/created-by", "required": true}),
        json!({"claimName": "groups", "targetKey": "union.ai/user-groups"}),
        json!({"claimName": "team", "targetKey": "union.ai/team", "required": true}),
        // Managed keys that other parts of the policy also read or write.
        json!({"claimName": "email", "targetKey": "cloud.google.com/external-credentials-json"}),
        json!({"claimName": "sub", "targetKey": "azure.workload.identity/skip-containers"}),
        json!({"claimName": "team", "targetKey": "eks.amazonaws.com/pod-identity"}),
        json!({"claimName": "team", "targetKey": "eks.amazonaws.com/token-expiration"}),
    ]
}

fn env_targets() -> Vec<Value> {
    vec![
        json!({"claimName": "sub", "targetKey": "UNION_USER_SUBJECT", "required": true}),
        json!({"claimName": "email", "targetKey": "UNION_USER_EMAIL"}),
        json!({"claimName": "groups", "targetKey": "UNION_USER_GROUPS"}),
    ]
}

fn bindings() -> Vec<Value> {
    vec![
        json!({"claim": "groups", "values": ["ml-engineers"],
               "annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/ml"}}),
        json!({"claim": "preferred_username", "values": ["alice"],
               "annotations": {"cloud.google.com/workload-identity-provider": GCP_PROVIDER,
                               "cloud.google.com/service-account-email": "alice@proj.iam.gserviceaccount.com"}}),
        json!({"claim": "team", "values": ["platform"],
               "annotations": {"vault.example.com/role": "platform",
                               "azure.workload.identity/client-id": "11111111-2222-3333-4444-555555555555"}}),
        json!({"claim": "groups", "values": ["eng", "admins"],
               "annotations": {"workload-identity.stackit.cloud/service-account-email": "eng@sa.stackit.cloud"}}),
        // Refused by settings validation (empty values): filtered out.
        json!({"claim": "groups", "values": [], "annotations": {"a/b": "c"}}),
    ]
}

fn custom_providers() -> Vec<Value> {
    vec![
        json!({"name": "vault", "serviceAccountAnnotation": "vault.example.com/role",
               "audience": "vault", "mountPath": "/var/run/secrets/vault", "volumeName": "vault-token",
               "env": [{"name": "VAULT_ROLE", "value": "{value}"},
                       {"name": "VAULT_ADDR", "value": "https://vault:8200"},
                       {"name": "VAULT_TOKEN_FILE", "value": "{tokenFile}"},
                       {"name": "VAULT_SECRET", "valueFrom": {"secretKeyRef": {"name": "vault", "key": "secret"}}}]}),
        // Shares an env name with AWS (AWS_REGION) and uses every placeholder.
        json!({"name": "jwt", "serviceAccountAnnotation": "example.com/jwt-audience",
               "audience": "jwt", "mountPath": "/var/run/secrets/jwt", "volumeName": "jwt-token",
               "tokenPath": "t/jwt", "tokenExpirationSeconds": 600, "tokenDefaultMode": 288,
               "env": [{"name": "AWS_REGION", "value": "{value}"},
                       {"name": "JWT_FILE", "value": "{namespace}/{serviceAccount}:{tokenFile}"}]}),
    ]
}

fn users() -> Vec<UserInfo> {
    let user = |username: &str, uid: &str, groups: &[&str], extra: &[(&str, &str)]| UserInfo {
        username: username.into(),
        uid: uid.into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        extra: extra
            .iter()
            .map(|(k, v)| (k.to_string(), vec![v.to_string()]))
            .collect(),
    };
    vec![
        user(
            "alice",
            "u-1",
            &["eng", "ml-engineers", "system:authenticated"],
            &[("team", "platform"), ("email", "alice@example.com")],
        ),
        user("mallory", "u-2", &["sales"], &[]),
        user("", "", &[], &[]),
        user("", "u-3", &[], &[]),
        user(
            "system:serviceaccount:kube-system:replicaset-controller",
            "u-rs",
            &[
                "system:serviceaccounts",
                "system:serviceaccounts:kube-system",
            ],
            &[],
        ),
        user("system:kube-controller-manager", "", &[], &[]),
        user("ci-bot", "u-ci", &["ci"], &[]),
    ]
}

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

/// A JSON value from a vocabulary value (markers become non-string values).
fn value_of(text: &str) -> Value {
    match text {
        NUM => json!(3600),
        NULL => Value::Null,
        OBJ => json!({"nested": true}),
        other => Value::String(other.to_string()),
    }
}

/// Up to `max` entries of a key/value vocabulary; each key gets its first (valid or most
/// useful) value more often than the others.
fn string_map(vocabulary: Vocabulary, max: usize) -> impl Strategy<Value = Map<String, Value>> {
    let entry = (
        select(vocabulary),
        prop::bool::weighted(0.6),
        any::<Index>(),
    );
    prop::collection::vec(entry, 0..=max).prop_map(|picks| {
        picks
            .into_iter()
            .map(|((key, values), first, index)| {
                let value = if first {
                    values[0]
                } else {
                    values[index.index(values.len())]
                };
                (key.to_string(), value_of(value))
            })
            .collect()
    })
}

/// A field that is absent (`None`), `null` (`Some(None)`) or set.
fn field<T: std::fmt::Debug + Clone>(
    set: impl Strategy<Value = T> + 'static,
) -> impl Strategy<Value = Option<Option<T>>> {
    prop_oneof![
        1 => Just(None),
        1 => Just(Some(None)),
        8 => set.prop_map(|v| Some(Some(v))),
    ]
}

fn put<T: Into<Value>>(map: &mut Map<String, Value>, key: &str, value: Option<Option<T>>) {
    match value {
        None => {}
        Some(None) => {
            map.insert(key.to_string(), Value::Null);
        }
        Some(Some(v)) => {
            map.insert(key.to_string(), v.into());
        }
    }
}

fn env_name() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => select(ENV_NAMES).prop_map(str::to_string),
        2 => "[A-Za-z_][A-Za-z0-9_]{0,5}",
        1 => select(&["", "1BAD", "with space"][..]).prop_map(str::to_string),
    ]
}

fn env_entry() -> impl Strategy<Value = Value> {
    (env_name(), 0..5u8, "[a-z0-9:/._-]{0,8}").prop_map(|(name, variant, value)| match variant {
        0 | 1 => json!({"name": name, "value": value}),
        2 => json!({"name": name, "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}),
        3 => json!({"name": name}),
        _ => json!({"value": value}),
    })
}

fn volume_name(name: &str) -> String {
    match name {
        AZURE_V16_WEB0 => azure::v1_6_volume_name("web-0"),
        FLYTE_DB => secrets::volume_name("db"),
        other => other.to_string(),
    }
}

fn volume_mount() -> impl Strategy<Value = Value> {
    (
        select(VOLUME_NAMES),
        select(MOUNT_PATHS),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(name, path, read_only, sub_path)| {
            let mut mount = json!({"name": volume_name(name), "mountPath": path});
            if read_only {
                mount["readOnly"] = json!(true);
            }
            if sub_path {
                mount["subPath"] = json!("x");
            }
            mount
        })
}

fn volume() -> impl Strategy<Value = Value> {
    (select(VOLUME_NAMES), 0..3u8).prop_map(|(name, kind)| match kind {
        0 => json!({"name": volume_name(name), "emptyDir": {}}),
        1 => json!({"name": volume_name(name), "projected": {"sources": [{"serviceAccountToken": {
            "audience": "user", "expirationSeconds": 3600, "path": "token"}}]}}),
        _ => json!({"name": volume_name(name), "secret": {"secretName": "db",
            "items": [{"key": "other", "path": "other"}]}, "x-unknown-volume-field": [1, 2]}),
    })
}

fn container(init: bool) -> impl Strategy<Value = Value> {
    let names: &'static [&'static str] = if init {
        &["init", "sidecar", "app", "", "#absent"]
    } else {
        &["app", "sidecar", "istio-proxy", "", "#absent"]
    };
    (
        select(names),
        field(prop::collection::vec(env_entry(), 0..=4)),
        field(prop::collection::vec(volume_mount(), 0..=3)),
        any::<bool>(),
        prop::bool::weighted(if init { 0.5 } else { 0.0 }),
    )
        .prop_map(move |(name, env, mounts, unknown, sidecar)| {
            let mut c = Map::new();
            if name != "#absent" {
                c.insert("name".into(), json!(name));
            }
            c.insert("image".into(), json!("registry.example/app:1"));
            put(&mut c, "env", env);
            put(&mut c, "volumeMounts", mounts);
            if unknown {
                c.insert(
                    "x-unknown-container-field".into(),
                    json!({"keep": [1, {"me": null}]}),
                );
            }
            if sidecar {
                c.insert("restartPolicy".into(), json!("Always"));
            }
            Value::Object(c)
        })
}

/// Flyte secret request annotations (with the label that asks for them), or none.
fn flyte_secrets() -> impl Strategy<Value = Option<Map<String, Value>>> {
    let request = (
        select(
            &[
                "flyte.secrets/s0",
                "flyte.secrets/s1",
                "flyte.secrets/s2",
                "flyte.secrets/s10",
            ][..],
        ),
        prop_oneof![3 => select(&FLYTE_SECRETS[..7]), 1 => select(FLYTE_SECRETS)],
    );
    prop::option::weighted(
        0.3,
        prop::collection::vec(request, 1..=3).prop_map(|requests| {
            requests
                .into_iter()
                .map(|(key, text)| {
                    let value = match text.strip_prefix("#raw:") {
                        Some(raw) => raw.to_string(),
                        None => secrets::encode_text(text),
                    };
                    (key.to_string(), json!(value))
                })
                .collect()
        }),
    )
}

/// A Pod as raw JSON, every field the policy reads varied.
fn pod() -> impl Strategy<Value = Value> {
    let metadata = (
        select(&[Some("web-0"), Some(""), None][..]),
        prop::option::of(Just("web-")),
        prop::option::of(Just("team-a")),
        field(string_map(POD_ANNOTATIONS, 5)),
        field(string_map(POD_LABELS, 3)),
        any::<bool>(),
        flyte_secrets(),
    )
        .prop_map(
            |(name, generate_name, namespace, mut annotations, mut labels, unknown, secrets)| {
                if let Some(requests) = secrets {
                    if let Some(Some(annotations)) = &mut annotations {
                        annotations.extend(requests);
                    }
                    let labels = labels.get_or_insert(None).get_or_insert_with(Map::new);
                    labels.insert(secrets::LABEL.into(), json!(secrets::LABEL_VALUE));
                }
                let mut m = Map::new();
                if let Some(name) = name {
                    m.insert("name".into(), json!(name));
                }
                if let Some(prefix) = generate_name {
                    m.insert("generateName".into(), json!(prefix));
                }
                if let Some(ns) = namespace {
                    m.insert("namespace".into(), json!(ns));
                }
                put(&mut m, "annotations", annotations);
                put(&mut m, "labels", labels);
                if unknown {
                    m.insert("x-unknown-metadata-field".into(), json!("keep"));
                }
                Value::Object(m)
            },
        );
    let spec = (
        select(&[None, Some(""), Some("app"), Some("default"), Some("other")][..]),
        field(prop::collection::vec(container(false), 0..=4)),
        field(prop::collection::vec(container(true), 0..=2)),
        field(prop::collection::vec(volume(), 0..=3)),
        prop_oneof![
            6 => Just((None, None)),
            1 => Just((None, Some("windows"))),
            1 => Just((Some("windows"), None)),
            1 => Just((Some("windows"), Some("windows"))),
            1 => Just((Some("linux"), Some("windows"))),
        ],
        any::<bool>(),
    )
        .prop_map(|(sa, containers, init, volumes, (os, selector), unknown)| {
            let mut s = Map::new();
            if let Some(sa) = sa {
                s.insert("serviceAccountName".into(), json!(sa));
            }
            put(&mut s, "containers", containers);
            put(&mut s, "initContainers", init);
            put(&mut s, "volumes", volumes);
            if let Some(os) = os {
                s.insert("os".into(), json!({ "name": os }));
            }
            if let Some(selector) = selector {
                s.insert(
                    "nodeSelector".into(),
                    json!({ "kubernetes.io/os": selector }),
                );
            }
            if unknown {
                s.insert("x-unknown-spec-field".into(), json!({"a": [true]}));
            }
            Value::Object(s)
        });
    (metadata, spec, any::<bool>()).prop_map(|(metadata, spec, unknown)| {
        let mut pod =
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec});
        if unknown {
            pod["x-unknown-top-level"] = json!(42);
        }
        pod
    })
}

fn settings_json() -> impl Strategy<Value = Value> {
    let aws = (
        prop::bool::weighted(0.9),
        select(&["eks.amazonaws.com", "iam.example.com"][..]),
        prop::option::of(Just("eu-west-1")),
        any::<bool>(),
        select(&[600i64, 3600, 86400][..]),
        select(
            &[
                "/var/run/secrets/eks.amazonaws.com/serviceaccount",
                "/var/run/secrets/aws",
            ][..],
        ),
        prop::collection::vec(
            (
                select(&["team-a", "other"][..]),
                select(&["app", "default"][..]),
            ),
            0..=1,
        ),
        default_mode(),
        any::<bool>(),
    )
        .prop_map(|(enabled, prefix, region, sts, exp, mount, assoc, mode, cc)| {
            let mut aws = json!({"enabled": enabled, "annotationPrefix": prefix,
                "stsRegionalEndpoints": sts, "tokenExpirationSeconds": exp, "tokenMountPath": mount,
                "podIdentityAssociations": assoc.iter().map(|(ns, sa)| json!({"namespace": ns, "serviceAccount": sa})).collect::<Vec<_>>()});
            if let Some(region) = region {
                aws["region"] = json!(region);
            }
            if let Some(mode) = mode {
                aws["tokenDefaultMode"] = mode;
            }
            if cc {
                for (key, value) in [
                    ("FullUri", "http://[fd00:ec2::23]/v1/credentials"),
                    ("Audience", "pods.example.internal"),
                    ("TokenMountPath", "/var/run/secrets/pod-identity"),
                    ("TokenVolumeName", "pod-identity-token"),
                    ("TokenPath", "token"),
                ] {
                    aws[format!("containerCredentials{key}")] = json!(value);
                }
            }
            aws
        });
    let stackit = (
        prop::bool::weighted(0.9),
        select(&[600i64, 900][..]),
        default_mode(),
    )
        .prop_map(|(enabled, exp, mode)| {
            let mut stackit = json!({"enabled": enabled, "tokenExpirationSeconds": exp});
            if let Some(mode) = mode {
                stackit["tokenDefaultMode"] = mode;
            }
            stackit
        });
    let azure = (
        prop::bool::weighted(0.9),
        any::<bool>(),
        prop::option::of(Just("tenant-from-settings")),
        select(&["v1.5", "v1.6"][..]),
        default_mode(),
    )
        .prop_map(|(enabled, require, tenant, layout, mode)| {
            let mut azure =
                json!({"enabled": enabled, "requireUseLabel": require, "tokenLayout": layout});
            if let Some(mode) = mode {
                azure["tokenDefaultMode"] = mode;
            }
            if let Some(tenant) = tenant {
                azure["tenantId"] = json!(tenant);
            }
            azure
        });
    let gcp = (
        prop::bool::weighted(0.8),
        select(&["cloud.google.com", "gcp.example.com"][..]),
        prop::option::of(Just("europe-west3")),
        default_mode(),
    )
        .prop_map(|(enabled, prefix, region, mode)| {
            let mut gcp = json!({"enabled": enabled, "annotationPrefix": prefix});
            if let Some(mode) = mode {
                gcp["tokenDefaultMode"] = mode;
            }
            if let Some(region) = region {
                gcp["region"] = json!(region);
            }
            gcp
        });
    let overlays = prop::collection::vec(
        (
            select(&["*", "team-a", "other", "Bad_NS"][..]),
            select(&["app", "default"][..]),
            string_map(SA_ANNOTATIONS, 3),
        ),
        0..=2,
    )
    .prop_map(|overlays| {
        overlays
            .into_iter()
            .map(|(ns, name, annotations)| {
                // Overlays hold strings only; the other markers are dropped.
                let annotations: Map<String, Value> = annotations
                    .into_iter()
                    .filter(|(_, v)| v.is_string())
                    .collect();
                json!({"namespace": ns, "name": name, "annotations": annotations})
            })
            .collect::<Vec<_>>()
    });
    let identity = (
        prop::bool::weighted(0.5),
        subsequence(annotation_targets(), 0..=3),
        subsequence(env_targets(), 0..=2),
        prop::option::of(Just(json!({"usernames": ["ci-bot"], "groups": []}))),
        select(&["warn", "reject"][..]),
        prop::option::of(select(
            &[
                ("team", "extra.team"),
                ("sub", "extra.email"),
                ("email", "bogus"),
            ][..],
        )),
    )
        .prop_map(|(enabled, annotations, env, trusted, missing, mapping)| {
            let mut id = json!({"enabled": enabled, "annotations": annotations,
                "environmentVariables": env, "onMissingRequired": missing});
            if let Some(trusted) = trusted {
                id["trustedRequesters"] = trusted;
            }
            if let Some((claim, source)) = mapping {
                id["claimMappings"] = json!({ claim: source });
            }
            id
        });
    let secrets = (
        prop::bool::weighted(0.8),
        select(&["kubernetes", "k8s", "vault", "aws", "gcp"][..]),
        select(&["flyte", "reader"][..]),
    )
        .prop_map(|(enabled, manager, role)| {
            json!({"enabled": enabled, "manager": manager, "vault": {"role": role}})
        });
    (
        (aws, stackit, azure, gcp),
        overlays,
        subsequence(custom_providers(), 0..=2),
        select(&["admit", "reject"][..]),
        identity,
        subsequence(bindings(), 0..=2),
        secrets,
        any::<bool>(),
    )
        .prop_map(
            |(
                (aws, stackit, azure, gcp),
                overlays,
                custom,
                lookup,
                identity,
                bindings,
                secrets,
                cache,
            )| {
                json!({"aws": aws, "stackit": stackit, "azure": azure, "gcp": gcp,
                    "serviceAccounts": overlays, "customProviders": custom,
                    "lookupFailure": lookup, "lookupCache": cache, "identityInjection": identity,
                    "identityBindings": bindings, "secrets": secrets})
            },
        )
}

/// A `tokenDefaultMode`: absent (`None`), `null` or a mode.
fn default_mode() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        3 => Just(None),
        1 => Just(Some(Value::Null)),
        1 => Just(Some(json!(0o440))),
        1 => Just(Some(json!(0o400))),
    ]
}

/// Valid settings only, as `validate_settings` guarantees before any request.
fn settings() -> impl Strategy<Value = (Value, Settings)> {
    settings_json().prop_filter_map("refused by settings validation", |raw| {
        let settings = Settings::from_json(raw.to_string().as_bytes()).ok()?;
        Some((raw, settings))
    })
}

fn user() -> impl Strategy<Value = UserInfo> {
    let random = (
        "[a-z]{0,4}",
        "[a-z0-9-]{0,3}",
        subsequence(
            vec![
                "eng",
                "ml-engineers",
                "admins",
                "system:serviceaccounts:kube-system",
            ],
            0..=2,
        ),
        prop::option::of(select(&["platform", ""][..])),
    )
        .prop_map(|(username, uid, groups, team)| UserInfo {
            username,
            uid,
            groups: groups.into_iter().map(str::to_string).collect(),
            extra: team
                .map(|t| BTreeMap::from([("team".to_string(), vec![t.to_string()])]))
                .unwrap_or_default(),
        });
    prop_oneof![3 => select(users()), 1 => random]
}

/// What the request is about.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Target {
    Pod,
    Workload(&'static str, &'static str),
    Other(&'static str, &'static str),
}

/// How the `oldObject` of an UPDATE relates to the object.
#[derive(Debug, Clone, Copy)]
enum Old {
    Same,
    ManagedChanged,
    TemplateChanged,
    Null,
}

fn request_shape() -> impl Strategy<Value = (Target, &'static str, Old)> {
    let old = select(
        &[
            Old::Same,
            Old::ManagedChanged,
            Old::TemplateChanged,
            Old::Null,
        ][..],
    );
    let workload = select(
        &[
            ("apps", "Deployment"),
            ("apps", "ReplicaSet"),
            ("apps", "StatefulSet"),
            ("apps", "DaemonSet"),
            ("batch", "Job"),
            ("batch", "CronJob"),
            ("", "ReplicationController"),
        ][..],
    );
    prop_oneof![
        14 => Just((Target::Pod, "CREATE", Old::Null)),
        3 => old.clone().prop_map(|old| (Target::Pod, "UPDATE", old)),
        1 => Just((Target::Pod, "DELETE", Old::Same)),
        4 => (workload, select(&["CREATE", "UPDATE"][..]), old).prop_map(|((g, k), op, old)| {
            (Target::Workload(g, k), op, if op == "CREATE" { Old::Null } else { old })
        }),
        1 => select(&[("", "ConfigMap"), ("apps", "Pod"), ("", "Pod")][..])
            .prop_map(|(g, k)| (Target::Other(g, k), "CONNECT", Old::Null)),
    ]
}

/// One generated admission decision to make.
#[derive(Debug, Clone)]
struct Case {
    /// The settings as the host passes them, and decoded.
    raw_settings: Value,
    settings: Settings,
    input: Input,
    /// The ServiceAccount's `metadata.annotations`, or the lookup's error.
    account: Result<Value, String>,
}

impl Case {
    fn decide(&self) -> Decision {
        decide(&self.settings, &self.input, &self.lookup())
    }

    fn decide_on(&self, object: Value) -> Decision {
        let mut input = self.input.clone();
        input.object = object;
        decide(&self.settings, &input, &self.lookup())
    }

    fn lookup(&self) -> Accounts<'_> {
        Accounts {
            annotations: &self.account,
            calls: Cell::new(0),
        }
    }

    fn is_pod_create(&self) -> bool {
        self.input.group.is_empty() && self.input.kind == "Pod" && self.input.operation == "CREATE"
    }

    /// JSON pointer of the pod (template) in the object, when caller identity covers the kind.
    fn template_pointer(&self) -> Option<&'static str> {
        caller::template_pointer(&self.input.group, &self.input.kind)
    }

    /// Annotation keys and env names caller identity may set for this request.
    fn managed(&self) -> (BTreeSet<String>, BTreeSet<String>) {
        let cfg = &self.settings.identity_injection;
        let applies = cfg.enabled
            && matches!(self.input.operation.as_str(), "CREATE" | "UPDATE")
            && self.template_pointer().is_some()
            && !caller::is_trusted(cfg, &self.input.user);
        if !applies {
            return Default::default();
        }
        let keys = |targets: &[workload_identity_policy::settings::ClaimTarget]| {
            targets.iter().map(|t| t.target_key.clone()).collect()
        };
        (keys(&cfg.annotations), keys(&cfg.environment_variables))
    }
}

fn wrap(target: Target, pod: Value) -> Value {
    let template = json!({"metadata": pod.get("metadata").cloned().unwrap_or(json!({})),
        "spec": pod.get("spec").cloned().unwrap_or(json!({}))});
    match target {
        Target::Pod => pod,
        Target::Workload(group, "CronJob") => {
            json!({"apiVersion": format!("{group}/v1"), "kind": "CronJob",
            "metadata": {"name": "nightly", "namespace": "team-a"},
            "spec": {"schedule": "0 0 * * *", "jobTemplate": {"spec": {"template": template}}}})
        }
        Target::Workload(group, kind) => json!({"apiVersion": format!("{group}/v1"), "kind": kind,
            "metadata": {"name": "web", "namespace": "team-a", "x-unknown": 1},
            "spec": {"replicas": 2, "template": template, "x-unknown-workload-field": "keep"}}),
        Target::Other(_, "ConfigMap") => {
            json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "b"}})
        }
        Target::Other(..) => pod,
    }
}

/// The object before the UPDATE, derived from the object.
fn old_object(object: &Value, old: Old, pointer: Option<&str>) -> Value {
    let mut previous = object.clone();
    let template = pointer.and_then(|p| previous.pointer_mut(p));
    match (old, template) {
        (Old::Null, _) => return Value::Null,
        (Old::Same, _) | (_, None) => {}
        (Old::ManagedChanged, Some(t)) => {
            if let Some(meta) = t.get_mut("metadata").and_then(Value::as_object_mut) {
                let annotations = meta.entry("annotations").or_insert(json!({}));
                if let Some(a) = annotations.as_object_mut() {
                    a.insert("union.ai/created-by".into(), json!("previous-user"));
                    a.insert("union.ai/user-groups".into(), json!("previous-group"));
                }
            }
            if let Some(containers) = t
                .pointer_mut("/spec/containers")
                .and_then(Value::as_array_mut)
            {
                for c in containers.iter_mut().filter_map(Value::as_object_mut) {
                    let env = c.entry("env").or_insert(json!([]));
                    if let Some(env) = env.as_array_mut() {
                        env.push(json!({"name": "UNION_USER_SUBJECT", "value": "previous-sub"}));
                    }
                }
            }
        }
        (Old::TemplateChanged, Some(t)) => {
            if let Some(spec) = t.get_mut("spec").and_then(Value::as_object_mut) {
                spec.insert("x-previous-revision".into(), json!(true));
            }
        }
    }
    previous
}

/// A valid annotation that turns one provider on, to make mutations frequent.
const SA_TRIGGERS: &[(&str, &str)] = &[
    ("eks.amazonaws.com/role-arn", ROLE),
    ("iam.example.com/role-arn", ROLE),
    (
        "workload-identity.stackit.cloud/service-account-email",
        "sa@sa.stackit.cloud",
    ),
    ("cloud.google.com/workload-identity-provider", GCP_PROVIDER),
    ("gcp.example.com/workload-identity-provider", GCP_PROVIDER),
    (
        "azure.workload.identity/client-id",
        "5f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b",
    ),
    ("vault.example.com/role", "reader"),
    ("example.com/jwt-audience", "api"),
];

fn sa_annotations() -> impl Strategy<Value = Value> {
    let annotations = (
        string_map(SA_ANNOTATIONS, 5),
        prop::option::weighted(0.7, select(SA_TRIGGERS)),
    )
        .prop_map(|(mut annotations, trigger)| {
            if let Some((key, value)) = trigger {
                annotations
                    .entry(key.to_string())
                    .or_insert_with(|| json!(value));
            }
            Value::Object(annotations)
        });
    prop_oneof![
        24 => annotations,
        1 => Just(Value::Null),
        1 => Just(json!(["not", "a", "map"])),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        settings(),
        pod(),
        request_shape(),
        user(),
        select(&["team-a", "team-a", "team-a", "other", ""][..]),
        prop_oneof![
            6 => sa_annotations().prop_map(Ok),
            1 => Just(Err("serviceaccounts \"app\" not found".to_string())),
        ],
    )
        .prop_map(
            |(
                (raw_settings, settings),
                pod,
                (target, operation, old),
                user,
                namespace,
                account,
            )| {
                let object = wrap(target, pod);
                let (group, kind) = match target {
                    Target::Pod => ("", "Pod"),
                    Target::Workload(g, k) | Target::Other(g, k) => (g, k),
                };
                let pointer = caller::template_pointer(group, kind);
                let old_object = match operation {
                    "UPDATE" => old_object(&object, old, pointer),
                    "DELETE" => object.clone(),
                    _ => Value::Null,
                };
                let object = if operation == "DELETE" {
                    Value::Null
                } else {
                    object
                };
                Case {
                    raw_settings,
                    settings,
                    input: Input {
                        uid: "uid-1".into(),
                        group: group.into(),
                        kind: kind.into(),
                        operation: operation.into(),
                        namespace: namespace.into(),
                        object,
                        old_object,
                        user,
                    },
                    account,
                }
            },
        )
}

/// The in-memory ServiceAccount store, answering for whichever ServiceAccount is asked.
struct Accounts<'a> {
    annotations: &'a Result<Value, String>,
    calls: Cell<usize>,
}

impl Lookup for Accounts<'_> {
    fn service_account(&self, sa: &ServiceAccountRef, _cached: bool) -> Result<Value, String> {
        self.calls.set(self.calls.get() + 1);
        let annotations = self.annotations.clone()?;
        Ok(json!({"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": sa.name, "namespace": sa.namespace, "annotations": annotations}}))
    }
}

// ---------------------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------------------

/// A Reject carries a message and one of the codes the core documents.
fn check_decision(case: &Case, decision: &Decision) -> Result<(), TestCaseError> {
    match decision {
        Decision::Reject { message, code, .. } => {
            prop_assert!(!message.trim().is_empty(), "empty denial message");
            prop_assert!(
                matches!(code, 400 | 403 | 503),
                "undocumented code {code}: {message}"
            );
            if *code == 503 {
                prop_assert!(
                    case.account.is_err(),
                    "503 without a lookup failure: {message}"
                );
            }
        }
        Decision::Mutate {
            object, warnings, ..
        } => {
            prop_assert_ne!(
                object,
                &case.input.object,
                "Mutate with an unchanged object"
            );
            prop_assert!(warnings.iter().all(|w| !w.trim().is_empty()));
        }
        Decision::Accept { warnings, .. } => {
            prop_assert!(warnings.iter().all(|w| !w.trim().is_empty()));
        }
    }
    Ok(())
}

fn list(value: Option<&Value>) -> Vec<Value> {
    value.and_then(Value::as_array).cloned().unwrap_or_default()
}

fn name_of(item: &Value) -> Option<&str> {
    item.get("name").and_then(Value::as_str)
}

fn counts<'a>(items: impl IntoIterator<Item = &'a Value>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for name in items.into_iter().filter_map(name_of) {
        *counts.entry(name.to_string()).or_default() += 1;
    }
    counts
}

fn trim_path(path: &str) -> &str {
    match path.trim_end_matches('/') {
        "" => "/",
        trimmed => trimmed,
    }
}

fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// The pod (templates) of input and output, and the container pairs.
struct Pair<'a> {
    before: &'a Value,
    after: &'a Value,
}

/// The containers and init containers of input and output, paired. The only
/// containers the policy may add are the Flyte AWS and GCP managers' pull
/// init containers, appended, with names the pod did not have.
fn containers<'a>(pair: &Pair<'a>) -> Result<Vec<(Value, Value)>, TestCaseError> {
    let mut pairs = Vec::new();
    for key in ["containers", "initContainers"] {
        let before = list(pair.before.pointer(&format!("/spec/{key}")));
        let mut after = list(pair.after.pointer(&format!("/spec/{key}")));
        if key == "initContainers" && after.len() > before.len() {
            let names: BTreeSet<&str> = before.iter().filter_map(name_of).collect();
            let mut added = BTreeSet::new();
            for pull in &after[before.len()..] {
                let name = name_of(pull).unwrap_or("");
                prop_assert!(
                    name.starts_with("aws-pull-secret-") || name.starts_with("gcp-pull-secret-"),
                    "init container {} added",
                    pull
                );
                prop_assert!(
                    !names.contains(name) && added.insert(name.to_string()),
                    "pull container name {} taken twice",
                    name
                );
            }
            after.truncate(before.len());
        }
        prop_assert_eq!(before.len(), after.len(), "spec.{} changed length", key);
        pairs.extend(before.into_iter().zip(after));
    }
    Ok(pairs)
}

/// Property 3: what the policy added makes a valid pod.
fn check_valid_pod(pair: &Pair) -> Result<(), TestCaseError> {
    let volumes_before = list(pair.before.pointer("/spec/volumes"));
    let volumes_after = list(pair.after.pointer("/spec/volumes"));
    let (vb, va) = (counts(&volumes_before), counts(&volumes_after));
    for (name, &n) in &va {
        let had = vb.get(name).copied().unwrap_or(0);
        prop_assert!(n <= had.max(1), "volume {name:?} duplicated by the policy");
        if had == 0 {
            prop_assert!(
                is_dns_label(name),
                "added volume name {name:?} is not a DNS label"
            );
        }
    }
    prop_assert!(
        volumes_after.len() >= volumes_before.len(),
        "volumes were removed"
    );
    for added in &volumes_after[volumes_before.len()..] {
        prop_assert!(
            name_of(added).is_some(),
            "added volume without a name: {added}"
        );
    }
    let volume_names: BTreeSet<&str> = volumes_after.iter().filter_map(name_of).collect();
    for (before, after) in containers(pair)? {
        let (eb, ea) = (
            counts(&list(before.get("env"))),
            counts(&list(after.get("env"))),
        );
        for (name, &n) in &ea {
            let had = eb.get(name).copied().unwrap_or(0);
            prop_assert!(n <= had.max(1), "env {name:?} duplicated by the policy");
            if had == 0 {
                prop_assert!(is_env_name(name), "added env name {name:?} is invalid");
            }
        }
        let mounts_before = list(before.get("volumeMounts"));
        let mounts_after = list(after.get("volumeMounts"));
        prop_assert!(mounts_after.len() >= mounts_before.len());
        for (i, added) in mounts_after.iter().enumerate().skip(mounts_before.len()) {
            let name = name_of(added).unwrap_or("");
            let path = added.get("mountPath").and_then(Value::as_str).unwrap_or("");
            prop_assert!(
                volume_names.contains(name),
                "added mount {added} names no volume"
            );
            prop_assert!(
                path.starts_with('/'),
                "added mount path {path:?} is relative"
            );
            for (j, other) in mounts_after.iter().enumerate() {
                let other_path = other.get("mountPath").and_then(Value::as_str);
                prop_assert!(
                    i == j || other_path.map(trim_path) != Some(trim_path(path)),
                    "added mount {added} duplicates the path of {other}"
                );
            }
        }
    }
    Ok(())
}

/// The object with the given keys removed (for comparing the rest).
fn without(value: &Value, keys: &[&str]) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| !keys.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A field the policy may create: absent or `null` before, then absent, the same, or non-empty.
fn check_created(
    what: &str,
    before: Option<&Value>,
    after: Option<&Value>,
) -> Result<(), TestCaseError> {
    let empty = |v: &Value| match v {
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    };
    match (before, after) {
        (None | Some(Value::Null), Some(after)) if !after.is_null() => {
            prop_assert!(!empty(after), "{what}: created empty ({after})")
        }
        (Some(before), None) => prop_assert!(false, "{what}: removed (was {before})"),
        _ => {}
    }
    Ok(())
}

/// Only `owned` keys of `metadata.<field>` may differ; keys for which `add_only` holds may be
/// added, never changed or removed.
fn check_map(
    what: &str,
    before: Option<&Value>,
    after: Option<&Value>,
    owned: &BTreeSet<String>,
    add_only: &dyn Fn(&str) -> bool,
) -> Result<(), TestCaseError> {
    check_created(what, before, after)?;
    let empty = Map::new();
    let b = before.and_then(Value::as_object).unwrap_or(&empty);
    let a = after.and_then(Value::as_object).unwrap_or(&empty);
    for key in b.keys().chain(a.keys()) {
        if owned.contains(key) {
            continue;
        }
        if add_only(key) && !b.contains_key(key) {
            prop_assert!(
                a[key].is_string(),
                "{} key {:?} added as {}",
                what,
                key,
                a[key]
            );
            continue;
        }
        prop_assert_eq!(b.get(key), a.get(key), "{} key {:?} changed", what, key);
    }
    Ok(())
}

/// Existing volumes are unchanged, except that a Flyte secret volume projecting the same
/// Secret may get `secret.items` appended.
fn check_existing_volumes(before: &[Value], after: &[Value]) -> Result<(), TestCaseError> {
    prop_assert!(after.len() >= before.len(), "volumes removed");
    for (b, a) in before.iter().zip(after) {
        if b == a {
            continue;
        }
        prop_assert!(
            name_of(b).is_some_and(|n| n.starts_with("flyte-secret-")),
            "existing volume changed: {} became {}",
            b,
            a
        );
        let rest = |v: &Value| {
            let mut v = v.clone();
            if let Some(secret) = v.get_mut("secret").and_then(Value::as_object_mut) {
                secret.remove("items");
            }
            v
        };
        prop_assert_eq!(rest(b), rest(a), "secret volume changed outside its items");
        let items_after = list(a.pointer("/secret/items"));
        prop_assert!(
            items_after.starts_with(&list(b.pointer("/secret/items"))),
            "secret volume items changed: {} became {}",
            b,
            a
        );
    }
    Ok(())
}

/// Property 4: only the paths the policy owns change.
fn check_owned_paths(case: &Case, output: &Value) -> Result<(), TestCaseError> {
    let input = &case.input.object;
    let Some(pointer) = case.template_pointer() else {
        prop_assert!(false, "mutated a kind without a pod template");
        unreachable!()
    };
    // Outside the pod template nothing changes.
    let mut outer_before = input.clone();
    let mut outer_after = output.clone();
    if let (Some(b), Some(a)) = (
        outer_before.pointer_mut(pointer),
        outer_after.pointer_mut(pointer),
    ) {
        *b = Value::Null;
        *a = Value::Null;
    } else {
        prop_assert!(false, "the pod template appeared or vanished");
    }
    prop_assert_eq!(
        outer_before,
        outer_after,
        "changed outside the pod template"
    );

    let pair = Pair {
        before: input.pointer(pointer).unwrap_or(&Value::Null),
        after: output.pointer(pointer).unwrap_or(&Value::Null),
    };
    let pod_create = case.is_pod_create();
    let (mut owned_annotations, managed_env) = case.managed();
    let mut owned_labels = BTreeSet::new();
    if pod_create {
        owned_annotations.insert(format!(
            "{}/external-credentials-json",
            case.settings.gcp.annotation_prefix
        ));
        owned_labels.insert("eks.amazonaws.com/pod-identity".to_string());
    }

    prop_assert_eq!(
        without(pair.before, &["metadata", "spec"]),
        without(pair.after, &["metadata", "spec"]),
        "top-level fields changed"
    );
    check_created(
        "metadata",
        pair.before.get("metadata"),
        pair.after.get("metadata"),
    )?;
    let meta = |v: &Value| v.get("metadata").cloned().unwrap_or(json!({}));
    let (mb, ma) = (meta(pair.before), meta(pair.after));
    prop_assert_eq!(
        without(&mb, &["annotations", "labels"]),
        without(&ma, &["annotations", "labels"]),
        "metadata changed outside annotations and labels"
    );
    // Flyte's Vault manager adds Vault Agent annotations, keeping the user's.
    let vault_annotation = |key: &str| pod_create && key.starts_with("vault.hashicorp.com/");
    check_map(
        "metadata.annotations",
        mb.get("annotations"),
        ma.get("annotations"),
        &owned_annotations,
        &vault_annotation,
    )?;
    check_map(
        "metadata.labels",
        mb.get("labels"),
        ma.get("labels"),
        &owned_labels,
        &|_| false,
    )?;
    // The Pod Identity label is added when absent, never overwritten.
    for key in &owned_labels {
        let before = mb.pointer(&format!("/labels/{}", key.replace('/', "~1")));
        let after = ma.pointer(&format!("/labels/{}", key.replace('/', "~1")));
        if let Some(b) = before.filter(|b| b.is_string()) {
            prop_assert_eq!(Some(b), after, "label {} overwritten", key);
        }
    }

    let spec_before = pair.before.get("spec").cloned().unwrap_or(Value::Null);
    let spec_after = pair.after.get("spec").cloned().unwrap_or(Value::Null);
    let lists = ["containers", "initContainers", "volumes"];
    prop_assert_eq!(
        without(&spec_before, &lists),
        without(&spec_after, &lists),
        "spec changed outside containers and volumes"
    );
    check_created(
        "spec.volumes",
        spec_before.get("volumes"),
        spec_after.get("volumes"),
    )?;
    let (vb, va) = (
        list(spec_before.get("volumes")),
        list(spec_after.get("volumes")),
    );
    check_existing_volumes(&vb, &va)?;
    if !pod_create {
        prop_assert_eq!(vb.len(), va.len(), "volumes added outside Pod CREATE");
    }
    for key in ["containers", "initContainers"] {
        let (b, a) = (spec_before.get(key), spec_after.get(key));
        // Flyte's AWS and GCP managers may create the list for their pull
        // containers (checked by `containers`).
        if key == "initContainers" && b.is_none_or(Value::is_null) && !list(a).is_empty() {
            continue;
        }
        prop_assert_eq!(
            b.map(Value::is_null),
            a.map(Value::is_null),
            "spec.{} presence changed",
            key
        );
    }
    for (before, after) in containers(&pair)? {
        prop_assert_eq!(
            without(&before, &["env", "volumeMounts"]),
            without(&after, &["env", "volumeMounts"]),
            "container fields changed outside env and volumeMounts"
        );
        check_created("env", before.get("env"), after.get("env"))?;
        check_created(
            "volumeMounts",
            before.get("volumeMounts"),
            after.get("volumeMounts"),
        )?;
        let unmanaged = |env: Vec<Value>| -> Vec<Value> {
            env.into_iter()
                .filter(|e| !name_of(e).is_some_and(|n| managed_env.contains(n)))
                .collect()
        };
        let (eb, ea) = (
            unmanaged(list(before.get("env"))),
            unmanaged(list(after.get("env"))),
        );
        prop_assert!(
            ea.starts_with(&eb),
            "user env changed: before {:?}, after {:?}",
            eb,
            ea
        );
        let (mb, ma) = (
            list(before.get("volumeMounts")),
            list(after.get("volumeMounts")),
        );
        prop_assert!(ma.starts_with(&mb), "existing mounts changed");
        if !pod_create {
            prop_assert_eq!(eb.len(), ea.len(), "env added outside Pod CREATE");
            prop_assert_eq!(mb.len(), ma.len(), "mounts added outside Pod CREATE");
        }
    }
    Ok(())
}

/// The case with every identity trigger removed.
fn without_triggers(mut case: Case) -> Case {
    let settings = &mut case.settings;
    settings.identity_injection.enabled = false;
    settings.identity_bindings.clear();
    settings.aws.pod_identity_associations.clear();
    let mut keys: Vec<String> = TRIGGER_KEYS.iter().map(|k| k.to_string()).collect();
    keys.extend(
        settings
            .custom_providers
            .iter()
            .map(|p| p.service_account_annotation.clone()),
    );
    for overlay in &mut settings.service_accounts {
        overlay.annotations.retain(|k, _| !keys.contains(k));
    }
    if let Ok(Value::Object(annotations)) = &mut case.account {
        annotations.retain(|k, _| !keys.contains(k));
    }
    if let Some(labels) = case
        .input
        .object
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove("azure.workload.identity/use");
        labels.remove(secrets::LABEL);
    }
    case
}

/// Sets the value at `pointer` (replacing it, or inserting the last key into an object).
fn set_at(root: &mut Value, pointer: &str, value: Value) {
    if pointer.is_empty() {
        *root = value;
        return;
    }
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return;
    };
    let key = last.replace("~1", "/").replace("~0", "~");
    match root.pointer_mut(parent) {
        Some(Value::Object(map)) => {
            map.insert(key, value);
        }
        Some(Value::Array(items)) => {
            if let Some(slot) = key.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                *slot = value;
            }
        }
        _ => {}
    }
}

/// Every place in a request the policy reads.
const READ_POINTERS: &[&str] = &[
    "/request",
    "/request/kind",
    "/request/kind/kind",
    "/request/kind/group",
    "/request/operation",
    "/request/namespace",
    "/request/userInfo",
    "/request/userInfo/username",
    "/request/userInfo/groups",
    "/request/userInfo/groups/0",
    "/request/userInfo/extra",
    "/request/userInfo/extra/team",
    "/request/oldObject",
    "/request/object",
    "/request/object/metadata",
    "/request/object/metadata/name",
    "/request/object/metadata/generateName",
    "/request/object/metadata/namespace",
    "/request/object/metadata/annotations",
    "/request/object/metadata/annotations/eks.amazonaws.com~1token-expiration",
    "/request/object/metadata/annotations/union.ai~1created-by",
    "/request/object/metadata/labels",
    "/request/object/metadata/labels/azure.workload.identity~1use",
    "/request/object/spec",
    "/request/object/spec/serviceAccountName",
    "/request/object/spec/nodeSelector",
    "/request/object/spec/volumes",
    "/request/object/spec/volumes/0",
    "/request/object/spec/volumes/0/name",
    "/request/object/spec/containers",
    "/request/object/spec/containers/0",
    "/request/object/spec/containers/0/name",
    "/request/object/spec/containers/0/env",
    "/request/object/spec/containers/0/env/0",
    "/request/object/spec/containers/0/env/0/name",
    "/request/object/spec/containers/0/volumeMounts",
    "/request/object/spec/containers/0/volumeMounts/0",
    "/request/object/spec/containers/0/volumeMounts/0/mountPath",
    "/request/object/spec/initContainers",
    "/request/object/spec/initContainers/0/env",
    "/request/object/spec/template",
    "/request/object/spec/template/spec/containers",
    "/request/object/spec/template/metadata/annotations",
    "/request/oldObject/metadata/annotations",
    "/request/oldObject/spec/template",
];

fn wrong_value() -> impl Strategy<Value = Value> {
    select(vec![
        Value::Null,
        json!(true),
        json!(0),
        json!(-1),
        json!(u64::MAX),
        json!(1.5e300),
        json!(""),
        json!("text"),
        json!([]),
        json!([1, "a", null]),
        json!({}),
        json!({"name": 1}),
    ])
}

/// The validate payload of a case, as the host sends it.
fn payload(case: &Case) -> Value {
    let user = &case.input.user;
    json!({"settings": case.raw_settings, "request": {
        "uid": case.input.uid,
        "kind": {"group": case.input.group, "version": "v1", "kind": case.input.kind},
        "operation": case.input.operation,
        "namespace": case.input.namespace,
        "userInfo": {"username": user.username, "uid": user.uid, "groups": user.groups, "extra": user.extra},
        "object": case.input.object,
        "oldObject": case.input.old_object,
    }})
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// 1. decide never panics; a Reject has a message and a documented code (400, 403, 503);
    /// at most one lookup, only for a Pod CREATE.
    #[test]
    fn never_panics_and_rejects_with_documented_codes(case in case()) {
        let lookup = case.lookup();
        let decision = decide(&case.settings, &case.input, &lookup);
        check_decision(&case, &decision)?;
        // At most one lookup, and only for a Pod CREATE.
        let lookups = lookup.calls.get();
        prop_assert!(lookups <= usize::from(case.is_pod_create()), "{} lookups", lookups);
        // Generated objects have the JSON types Kubernetes requires: no 400.
        if let Decision::Reject { code, message, .. } = &decision {
            prop_assert_ne!(*code, 400, "well-formed object denied as malformed: {}", message);
        }
    }

    /// 1b. A wrong JSON type anywhere the policy reads, through the payload decoder (the waPC
    /// glue's path): an acceptance or a clear denial (400/403/503), never a panic or a 500, and a
    /// mutation stays idempotent.
    #[test]
    fn malformed_objects_are_denied_cleanly(
        case in case(),
        pointer in select(READ_POINTERS),
        wrong in wrong_value(),
    ) {
        let mut doc = payload(&case);
        set_at(&mut doc, pointer, wrong);
        let bytes = serde_json::to_vec(&doc).expect("a Value serialises");
        // Through the waPC glue's decoder and encoder.
        let response = workload_identity_policy::validate_payload(&bytes, &case.lookup());
        prop_assert!(response["accepted"].is_boolean(), "{}", response);
        if response["accepted"] == json!(false) {
            prop_assert!(
                matches!(response["code"].as_u64(), Some(400 | 403 | 503)),
                "{}",
                response
            );
            prop_assert!(
                response["message"].as_str().is_some_and(|m| !m.trim().is_empty()),
                "{}",
                response
            );
        }
        // Through the core, with the decoded request.
        if let Ok((input, _)) = Input::from_payload(&bytes) {
            let mangled = Case { input, ..case };
            let decision = mangled.decide();
            check_decision(&mangled, &decision)?;
            if let Decision::Mutate { object, .. } = decision {
                let again = mangled.decide_on(object);
                prop_assert!(matches!(again, Decision::Accept { .. }), "not idempotent: {:?}", again);
            }
        }
    }

    /// 2. Idempotency: the mutated object fed back (same request otherwise, same lookup) is
    /// accepted with no mutation.
    #[test]
    fn output_fed_back_is_accepted_unchanged(case in case()) {
        if let Decision::Mutate { object, .. } = case.decide() {
            let again = case.decide_on(object.clone());
            prop_assert!(
                matches!(again, Decision::Accept { .. }),
                "second pass gave {:?}\nfirst output: {}",
                again,
                object
            );
        }
    }

    /// 3. The output is a valid pod, as far as the policy's additions go: unique env names per
    /// container, unique volume names, unique mount paths per container, every added mount names
    /// an existing volume, added names within Kubernetes' rules.
    #[test]
    fn output_is_a_valid_pod(case in case()) {
        if let Decision::Mutate { object, .. } = case.decide() {
            let pointer = case.template_pointer().unwrap_or("");
            let pair = Pair {
                before: case.input.object.pointer(pointer).unwrap_or(&Value::Null),
                after: object.pointer(pointer).unwrap_or(&Value::Null),
            };
            check_valid_pod(&pair)?;
        }
    }

    /// 4. Nothing outside the owned paths changes: env entries and mounts are appended (existing
    /// ones unchanged, except managed caller-identity env vars), volumes appended, only the
    /// managed annotations and the EKS Pod Identity label change; unknown fields survive.
    #[test]
    fn only_owned_paths_change(case in case()) {
        if let Decision::Mutate { object, .. } = case.decide() {
            check_owned_paths(&case, &object)?;
        }
    }

    /// 5. Without any identity trigger (no provider annotation on the ServiceAccount or its
    /// overlays, no association, no Azure use label, caller identity off, no bindings) nothing is
    /// mutated.
    #[test]
    fn no_identity_trigger_no_mutation(case in case()) {
        let case = without_triggers(case);
        match case.decide() {
            Decision::Accept { .. } => {}
            Decision::Reject { code: 503, .. } if case.account.is_err() => {}
            other => prop_assert!(false, "{:?}", other),
        }
    }

    /// 6. The decision is deterministic: the same input twice gives the same decision.
    #[test]
    fn decide_is_deterministic(case in case()) {
        prop_assert_eq!(case.decide(), case.decide());
    }
}

/// The generator reaches every kind of outcome often enough for the properties to mean
/// something (a generator that drifted into rejecting every pod would pass them all).
#[test]
fn generator_reaches_every_outcome() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = case();
    let total = 1000;
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for _ in 0..total {
        let case = strategy.new_tree(&mut runner).expect("a case").current();
        let outcome = match case.decide() {
            Decision::Mutate { object, .. } if case.is_pod_create() => {
                let added = list(object.pointer("/spec/volumes")).len()
                    - list(case.input.object.pointer("/spec/volumes")).len();
                if added >= 2 {
                    *seen
                        .entry("pod mutated with two or more volumes")
                        .or_default() += 1;
                }
                let text = object.to_string();
                if text.contains("FLYTE_SECRETS_") {
                    *seen.entry("pod given Flyte secrets").or_default() += 1;
                }
                if text.contains("vault.hashicorp.com/agent-inject") {
                    *seen.entry("pod given Flyte secrets by Vault").or_default() += 1;
                }
                if text.contains("-pull-secret-") {
                    *seen
                        .entry("pod given Flyte secrets by AWS or GCP")
                        .or_default() += 1;
                }
                if !case.managed().0.is_empty() {
                    *seen.entry("pod stamped with caller identity").or_default() += 1;
                }
                "pod mutated"
            }
            Decision::Mutate { .. } => "workload or update mutated",
            Decision::Accept { warnings, .. } if !warnings.is_empty() => "accepted with warnings",
            Decision::Accept { .. } => "accepted",
            Decision::Reject { code: 403, .. } => "denied 403",
            Decision::Reject { code: 503, .. } => "denied 503",
            Decision::Reject { .. } => "denied otherwise",
        };
        *seen.entry(outcome).or_default() += 1;
    }
    eprintln!("outcomes of {total} generated cases: {seen:#?}");
    for (outcome, minimum) in [
        ("pod mutated", 200),
        ("pod mutated with two or more volumes", 50),
        ("pod given Flyte secrets", 50),
        ("pod given Flyte secrets by Vault", 5),
        ("pod given Flyte secrets by AWS or GCP", 5),
        ("pod stamped with caller identity", 50),
        ("workload or update mutated", 25),
        ("accepted", 200),
        ("accepted with warnings", 25),
        ("denied 403", 30),
        ("denied 503", 20),
    ] {
        let count = seen.get(outcome).copied().unwrap_or(0);
        assert!(
            count >= minimum,
            "only {count} of {total} cases {outcome} (expected at least {minimum})"
        );
    }
}

/// The checks of properties 3 and 4 are not vacuous: each catches an output broken on purpose.
#[test]
fn checks_catch_broken_outputs() {
    let settings = settings_of(json!({"aws": {"region": "eu-west-1"}}));
    let pod = json!({"metadata": {"name": "web-0", "annotations": {"note": "x"}},
        "spec": {"serviceAccountName": "app", "x-unknown": 1, "containers": [{"name": "app",
            "env": [{"name": "LOG_LEVEL", "value": "debug"}],
            "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
            "volumes": [{"name": "data", "emptyDir": {}}]}});
    let case = Case {
        raw_settings: Value::Null,
        settings,
        input: Input::pod_create("team-a", pod),
        account: Ok(json!({"eks.amazonaws.com/role-arn": ROLE})),
    };
    let Decision::Mutate { object, .. } = case.decide() else {
        panic!("expected a mutation")
    };
    let valid = |after: &Value| {
        check_valid_pod(&Pair {
            before: &case.input.object,
            after,
        })
    };
    assert!(valid(&object).is_ok());
    assert!(check_owned_paths(&case, &object).is_ok());
    let broken = |edit: &dyn Fn(&mut Value)| {
        let mut copy = object.clone();
        edit(&mut copy);
        copy
    };
    let container = "/spec/containers/0";
    let env = |v: &mut Value| {
        v.pointer_mut(&format!("{container}/env"))
            .and_then(Value::as_array_mut)
            .cloned()
            .unwrap_or_default()
    };
    for invalid in [
        broken(&|v| {
            let duplicate = env(v)[1].clone();
            v.pointer_mut(&format!("{container}/env"))
                .and_then(Value::as_array_mut)
                .unwrap()
                .push(duplicate)
        }),
        broken(&|v| {
            v["spec"]["volumes"]
                .as_array_mut()
                .unwrap()
                .push(json!({"name": "aws-iam-token"}))
        }),
        broken(&|v| {
            v["spec"]["volumes"]
                .as_array_mut()
                .unwrap()
                .push(json!({"name": "Not_A_Label"}))
        }),
        broken(&|v| {
            v.pointer_mut(&format!("{container}/volumeMounts"))
                .and_then(Value::as_array_mut)
                .unwrap()
                .push(json!({"name": "missing", "mountPath": "/m"}))
        }),
        broken(&|v| {
            v.pointer_mut(&format!("{container}/volumeMounts"))
                .and_then(Value::as_array_mut)
                .unwrap()
                .push(json!({"name": "data", "mountPath": "/data/"}))
        }),
        broken(&|v| {
            v.pointer_mut(&format!("{container}/env"))
                .and_then(Value::as_array_mut)
                .unwrap()
                .push(json!({"name": "1BAD", "value": ""}))
        }),
    ] {
        assert!(valid(&invalid).is_err(), "not caught: {invalid}");
    }
    for outside in [
        broken(&|v| v["spec"]["containers"][0]["env"][0]["value"] = json!("info")),
        broken(&|v| {
            v["spec"]
                .as_object_mut()
                .unwrap()
                .remove("x-unknown")
                .map(drop)
                .unwrap_or(())
        }),
        broken(&|v| v["metadata"]["annotations"]["note"] = json!("y")),
        broken(&|v| v["metadata"]["labels"] = json!({"a": "b"})),
        broken(&|v| v["spec"]["volumes"][0]["emptyDir"] = json!({"medium": "Memory"})),
        broken(&|v| v["spec"]["containers"][0]["image"] = json!("other")),
        broken(&|v| v["kind"] = json!("Other")),
    ] {
        assert!(
            check_owned_paths(&case, &outside).is_err(),
            "not caught: {outside}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Regression tests: minimal reproductions of what the properties found, all fixed
// ---------------------------------------------------------------------------------------------

fn settings_of(raw: Value) -> Settings {
    Settings::from_json(raw.to_string().as_bytes()).expect("valid settings")
}

fn alice() -> UserInfo {
    users().swap_remove(0)
}

/// Formerly bug A: a caller identity env target that is also a provider's env name made every
/// pass move the variable (caller identity removed it, GCP appended it again). Settings
/// validation now refuses such targets.
#[test]
fn caller_env_target_colliding_with_a_provider_env_name_is_refused() {
    let raw = json!({
        "aws": {"enabled": false}, "stackit": {"enabled": false}, "azure": {"enabled": false},
        "identityInjection": {"enabled": true, "environmentVariables": [
            {"claimName": "team", "targetKey": "GOOGLE_APPLICATION_CREDENTIALS"}]}});
    let err = Settings::from_json(raw.to_string().as_bytes()).unwrap_err();
    assert!(err.contains("is written by a built-in provider"), "{err}");
}

/// Bug B: a workload UPDATE that changes nothing, whose template has a container with
/// `env: null` next to one carrying a managed env var. The first pass "restores" the var into
/// the `null` container; the second pass then sees a different template (`without_managed`
/// drops an emptied env list but keeps `env: null`) and re-stamps with the updater's identity.
/// (Fixed: `without_managed` treats `env: null` like an absent list, and a restore puts back
/// each container's own entries instead of copying one value into every container.)
#[test]
fn repro_workload_update_with_null_env() {
    let settings = settings_of(json!({"identityInjection": {"enabled": true,
        "environmentVariables": [{"claimName": "email", "targetKey": "UNION_USER_EMAIL"}]}}));
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "team-a"},
        "spec": {"template": {"spec": {"containers": [
            {"name": "a", "env": [{"name": "UNION_USER_EMAIL", "value": "x"}]},
            {"name": "b", "env": null}]}}}});
    let case = Case {
        raw_settings: Value::Null,
        settings,
        input: Input {
            uid: String::new(),
            group: "apps".into(),
            kind: "Deployment".into(),
            operation: "UPDATE".into(),
            namespace: "team-a".into(),
            object: deployment.clone(),
            old_object: deployment,
            user: alice(),
        },
        account: Ok(json!({})),
    };
    // The template is unchanged apart from nothing at all: each container keeps
    // its own managed entries (`b` keeps none), so there is nothing to restore.
    let first = case.decide();
    assert!(matches!(first, Decision::Accept { .. }), "{first:?}");
}
