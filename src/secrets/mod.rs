//! Flyte task secrets, drop-in for flytepropeller's pod webhook (`secrets`
//! mutator, v1.16.8) with its Kubernetes, Vault, AWS and GCP secret managers.
//!
//! Contract (flyte v1.16.8: flytepropeller `pkg/webhook/secrets.go` and
//! flyteplugins `go/tasks/pluginmachinery/utils/secrets/marshaler.go`): a
//! pod labelled `inject-flyte-secrets: "true"` asks for one secret per
//! annotation whose key starts with `flyte.secrets/s`; its value is a
//! flyteidl `core.Secret` in protobuf text format ([`text`]), base32 encoded
//! with the alphabet `abcdefghijklmnopqrstuvwxyz123456` and no padding
//! ([`base32`]).
//!
//! The rules every manager shares live here: which pods and annotations are
//! read, in which order (`s2` before `s10`), what every request needs (a
//! group, a known mount requirement, a valid `env_var`), and that two
//! requests wanting one env var or one file for different secrets deny the
//! pod (upstream's first writer would hand a task the wrong value). Each
//! manager has its file: [`kubernetes`], [`vault`], [`aws`] and [`gcp`] (the
//! last two share [`sidecar`]).
//!
//! Beyond upstream, everywhere: where flytepropeller admits a pod without its
//! secrets (undecodable annotation, missing group or key, unknown mount
//! requirement, a request its manager cannot serve), the pod is denied,
//! naming the annotation and the problem; unknown text-format fields are
//! ignored with a warning (protobuf's parsers refuse them): a newer flyteidl
//! field, as `env_var` once was, should not deny every pod that uses it.
//! Names the policy owns (paths, env names, volumes) are in
//! [`crate::names::flyte`].

pub mod aws;
pub mod base32;
pub mod gcp;
pub mod kubernetes;
mod sidecar;
pub mod text;
pub mod vault;

use std::collections::BTreeMap;

use serde_json::Value;

use crate::podedit::Injection;
use crate::providers::{string_map, Findings};
use crate::settings::{is_env_name, SecretManager, SecretsSettings};

pub use self::base32::{encode_text, ALPHABET};
pub use self::kubernetes::{env_name, mount_path, volume_name};
pub use self::text::{parse_text, MountRequirement, Secret, SecretError};
pub use self::vault::{vault_id, vault_template};
pub use crate::names::flyte::{
    env, ANNOTATION_PREFIX, ENV_PREFIX, LABEL, LABEL_VALUE, SECRETS_DIR,
};

/// Decodes one `flyte.secrets/s<i>` annotation value. Never panics.
pub fn decode_secret(value: &str) -> Result<Secret, SecretError> {
    let bytes = base32::decode(value).map_err(SecretError::Base32)?;
    let text = String::from_utf8(bytes).map_err(|_| SecretError::NotUtf8)?;
    parse_text(&text)
}

/// True when the pod asks for secrets: the label, and secrets enabled.
pub fn wanted(settings: &SecretsSettings, pod: &Value) -> bool {
    settings.enabled && string_map(pod, "labels").get(LABEL) == Some(&LABEL_VALUE)
}

/// The pod's secret requests `(annotation key, value)`, by index
/// (`s2` before `s10`), then by key.
pub fn requests(pod: &Value) -> Vec<(&str, &str)> {
    let mut found: Vec<(&str, &str)> = string_map(pod, "annotations")
        .into_iter()
        .filter(|(k, _)| k.starts_with(ANNOTATION_PREFIX))
        .collect();
    found.sort_by_key(|(k, _)| {
        let index = k
            .strip_prefix(ANNOTATION_PREFIX)
            .filter(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()))
            .map(|i| i.trim_start_matches('0'))
            .map(|i| (i.len(), i.to_string()));
        (index.is_none(), index, k.to_string())
    });
    found
}

/// The injections for a labelled pod's secret requests; every problem is
/// a denial or a warning in `findings`, prefixed with the pod's reference.
pub fn resolve(
    settings: &SecretsSettings,
    pod: &Value,
    pod_ref: &str,
    findings: &mut Findings,
) -> Vec<Injection> {
    let mut secrets = Vec::new();
    for (annotation, value) in requests(pod) {
        let deny = |findings: &mut Findings, what: String| {
            findings
                .denials
                .push(format!("annotation {annotation:?}: {what}"));
        };
        let secret = match decode_secret(value) {
            Ok(secret) => secret,
            Err(error) => {
                deny(findings, error.to_string());
                continue;
            }
        };
        for field in &secret.unknown_fields {
            findings.warnings.push(format!(
                "pod {pod_ref}: annotation {annotation:?}: unknown field {field:?} of the flyteidl Secret ignored"
            ));
        }
        let problems = check(settings.manager, &secret);
        if problems.is_empty() {
            secrets.push((annotation, secret));
        } else {
            deny(findings, problems.join(", "));
        }
    }
    if !findings.denials.is_empty() || secrets.is_empty() {
        return Vec::new();
    }
    let injections = match settings.manager {
        SecretManager::Kubernetes => kubernetes::injections(&secrets, findings),
        SecretManager::Vault => vec![vault::injection(&settings.vault, &secrets, findings)],
        SecretManager::Aws => {
            let pulls = secrets
                .iter()
                .map(|(a, s)| (*a, s, aws::pull(&settings.aws, s)))
                .collect();
            sidecar::injections(&aws::MANAGER, pod, pulls, findings)
        }
        SecretManager::Gcp => {
            let pulls = secrets
                .iter()
                .map(|(a, s)| (*a, s, gcp::pull(&settings.gcp, s)))
                .collect();
            sidecar::injections(&gcp::MANAGER, pod, pulls, findings)
        }
    };
    if findings.denials.is_empty() {
        injections
    } else {
        Vec::new()
    }
}

/// What the manager cannot serve in this secret, empty when it can.
fn check(manager: SecretManager, secret: &Secret) -> Vec<String> {
    let mut problems = Vec::new();
    let group = &secret.group;
    if group.is_empty() {
        problems.push("the secret has no group".to_string());
    }
    let (second, needed) = match manager {
        // The GCP manager pulls a version of a secret: no key.
        SecretManager::Gcp => (&secret.group_version, "group_version"),
        _ => (&secret.key, "key"),
    };
    if second.is_empty() {
        problems.push(format!(
            "the secret has no {needed} (both group and {needed} are required{})",
            if group.is_empty() {
                String::new()
            } else {
                format!("; group is {group:?}")
            }
        ));
    }
    if let MountRequirement::Unknown(n) = secret.mount_requirement {
        problems.push(format!(
            "mount_requirement {n} is not ANY (0), ENV_VAR (1) or FILE (2)"
        ));
    }
    if !secret.env_var.is_empty() && !is_env_name(&secret.env_var) {
        problems.push(format!(
            "env_var {:?} is not a valid environment variable name",
            secret.env_var
        ));
    }
    match manager {
        SecretManager::Kubernetes => kubernetes::check(secret, &mut problems),
        SecretManager::Vault => vault::check(secret, &mut problems),
        SecretManager::Aws => aws::check(secret, &mut problems),
        SecretManager::Gcp => gcp::check(secret, &mut problems),
    }
    problems
}

/// The refusal of an `ENV_VAR` request by a manager that only writes files.
fn env_var_refused(manager: &str) -> String {
    format!(
        "mount_requirement ENV_VAR is not supported by the {manager} secret manager (use FILE or ANY)"
    )
}

/// Each env var its own group (first writer wins per name), without
/// repeating a name within one injection.
fn push_env(groups: &mut Vec<Vec<Value>>, entry: Value) {
    let name = entry.get("name").cloned();
    if !groups
        .iter()
        .any(|g| g.iter().any(|e| e.get("name") == name.as_ref()))
    {
        groups.push(vec![entry]);
    }
}

/// What each request claims, by kind and name: an env var, a file or a
/// Vault file that two requests want with different contents would silently
/// give a task the other secret's value (upstream: first writer wins), so it
/// is a denial.
#[derive(Default)]
struct Claims<'a>(BTreeMap<String, (&'a str, Value)>);

impl<'a> Claims<'a> {
    fn claim(
        &mut self,
        annotation: &'a str,
        what: &str,
        name: &str,
        value: Value,
        findings: &mut Findings,
    ) {
        let key = format!("{what}\n{name}");
        match self.0.get(&key) {
            Some((other, taken)) if *taken != value => findings.denials.push(format!(
                "annotation {annotation:?}: {what} {name:?} is also asked for by annotation {other:?}, for another secret"
            )),
            Some(_) => {}
            None => {
                self.0.insert(key, (annotation, value));
            }
        }
    }
}

/// Test helpers shared by the managers' tests (`mod tests` of this file and
/// of each manager's): the seed's encoded requests, a labelled pod, settings
/// from JSON, and a pass of [`resolve`] then [`crate::podedit::apply`].
#[cfg(test)]
pub(crate) mod test_support {
    use serde_json::{json, Value};

    use super::{encode_text, resolve, MountRequirement, Secret};
    use crate::podedit;
    use crate::providers::Findings;
    use crate::settings::SecretsSettings;

    /// flytekit's own encoding of the seed's examples: `text_format.MessageToString`
    /// of the flyteidl Secret, then base32 in Flyte's alphabet without padding
    /// (computed with python protobuf; Go's `proto.MarshalTextString` prints the same).
    pub const DB_PASSWORD: &str = "m4zg54lqhiqcezdcfvrxezlemvxhi1lbnrzsectlmv3tuibcobqxg32xn4zgiiqknvxxk2tul4zgk3lvnfzgk2lfnz1duicfjzlf5vsbkifgk2twl42gc3r1eareiqs6kbavgu1xj4jeiiqk";
    pub const TLS_KEY: &str = "m4zg54lqhiqce2lzfvrwk3tuomrau12fpe4caitunrzs312fperau2lpovxhix2smvyxk1lsmvwwk2tuhiqemskmiufgk2twl42gc3r1earfitctl4fukwk6kbavisbcbi";

    pub fn secret(group: &str, key: &str, mount: MountRequirement, env_var: &str) -> Secret {
        Secret {
            group: group.into(),
            key: key.into(),
            mount_requirement: mount,
            env_var: env_var.into(),
            ..Secret::default()
        }
    }

    pub fn pod(annotations: Value) -> Value {
        json!({
            "metadata": {"name": "t-0", "labels": {"inject-flyte-secrets": "true"}, "annotations": annotations},
            "spec": {
                "initContainers": [{"name": "init"}],
                "containers": [{"name": "main", "env": [{"name": "DB_PASSWORD", "value": "mine"}]}]
            }
        })
    }

    pub fn settings(raw: &str) -> SecretsSettings {
        crate::settings::Settings::from_json(raw.as_bytes())
            .unwrap()
            .secrets
    }

    pub fn run(settings: &SecretsSettings, pod: &mut Value) -> (bool, Findings) {
        let mut findings = Findings::default();
        let injections = resolve(settings, pod, "ns/t-0", &mut findings);
        let changed = podedit::apply(pod, &injections, "ns/t-0", &mut findings.warnings).unwrap();
        (changed, findings)
    }

    pub fn encode(text: &str) -> Value {
        Value::String(encode_text(text))
    }

    pub fn sidecar_run(manager: &str, pod: &mut Value) -> (bool, Findings) {
        let settings = settings(&format!(r#"{{"secrets":{{"manager":"{manager}"}}}}"#));
        run(&settings, pod)
    }

    pub fn flyte_env(extra: &[(&str, &str)]) -> Value {
        let mut env = vec![
            json!({"name": "FLYTE_SECRETS_DEFAULT_DIR", "value": "/etc/flyte/secrets"}),
            json!({"name": "FLYTE_SECRETS_FILE_PREFIX", "value": ""}),
        ];
        env.extend(extra.iter().map(|(n, v)| json!({"name": n, "value": v})));
        Value::Array(env)
    }

    pub const RESOURCES: &str = r#"{"limits": {"cpu": "200m", "memory": "500Mi"}, "requests": {"cpu": "200m", "memory": "500Mi"}}"#;
}

#[cfg(test)]
mod tests {
    use super::test_support::{encode, pod, run, secret, settings, DB_PASSWORD, TLS_KEY};
    use super::*;
    use rstest::rstest;
    use serde_json::json;

    #[rstest]
    #[case::env_var_example(
        DB_PASSWORD,
        secret("db-credentials", "password", MountRequirement::EnvVar, "DB_PASSWORD")
    )]
    #[case::file_example(
        TLS_KEY,
        secret("my-certs", "tls.key", MountRequirement::File, "TLS_KEY_PATH")
    )]
    fn decodes_flytekits_encoding(#[case] value: &str, #[case] expected: Secret) {
        assert_eq!(decode_secret(value), Ok(expected));
    }

    #[test]
    fn decoding_errors_say_which_layer() {
        let err = decode_secret("M4ZG54LQ").unwrap_err().to_string();
        assert!(
            err.starts_with("is not base32 with Flyte's alphabet \"abcdefghijklmnopqrstuvwxyz123456\" and no padding: 'M' at offset 0"),
            "{err}"
        );
        // 0xff 0xfe in Flyte's base32.
        assert_eq!(decode_secret("666q"), Err(SecretError::NotUtf8));
        let err = decode_secret(&encode_text("group 'g'"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("decodes to an invalid flyteidl Secret"),
            "{err}"
        );
    }

    #[test]
    fn requests_come_by_index() {
        let p = pod(
            json!({"flyte.secrets/s10": "c", "flyte.secrets/s2": "b", "flyte.secrets/sx": "d", "flyte.secrets/s0": "a", "other": "z"}),
        );
        let keys: Vec<&str> = requests(&p).into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "flyte.secrets/s0",
                "flyte.secrets/s2",
                "flyte.secrets/s10",
                "flyte.secrets/sx"
            ]
        );
    }

    #[rstest]
    #[case::case_only(
        "group: 'db' key: 'password' mount_requirement: ENV_VAR",
        "group: 'db' key: 'PASSWORD' mount_requirement: ENV_VAR",
        "annotation \"flyte.secrets/s1\": env var \"_FSEC_DB_PASSWORD\" is also asked for by annotation \"flyte.secrets/s0\", for another secret"
    )]
    #[case::one_env_var_two_secrets(
        "group: 'db' key: 'a' mount_requirement: ENV_VAR env_var: 'X'",
        "group: 'db' key: 'b' env_var: 'X'",
        "annotation \"flyte.secrets/s1\": env var \"X\" is also asked for by annotation \"flyte.secrets/s0\", for another secret"
    )]
    fn one_name_for_two_secrets_is_denied(
        #[case] first: &str,
        #[case] second: &str,
        #[case] expected: &str,
    ) {
        let mut p =
            pod(json!({"flyte.secrets/s0": encode(first), "flyte.secrets/s1": encode(second)}));
        let (changed, findings) = run(&SecretsSettings::default(), &mut p);
        assert!(!changed);
        assert_eq!(findings.denials, [expected]);
        // The same request twice is no conflict.
        let mut p =
            pod(json!({"flyte.secrets/s0": encode(first), "flyte.secrets/s1": encode(first)}));
        assert_eq!(
            run(&SecretsSettings::default(), &mut p).1,
            Findings::default()
        );
    }

    #[test]
    fn unknown_fields_warn() {
        let mut p = pod(
            json!({"flyte.secrets/s0": encode("group: 'db' key: 'k' mount_requirement: ENV_VAR labels { a: 'b' }")}),
        );
        let (changed, findings) = run(&SecretsSettings::default(), &mut p);
        assert!(changed && findings.denials.is_empty());
        assert_eq!(
            findings.warnings,
            ["pod ns/t-0: annotation \"flyte.secrets/s0\": unknown field \"labels\" of the flyteidl Secret ignored"]
        );
    }

    #[rstest]
    #[case::default("{}", true, SecretManager::Kubernetes, "flyte")]
    #[case::k8s_alias(
        r#"{"secrets":{"manager":"k8s"}}"#,
        true,
        SecretManager::Kubernetes,
        "flyte"
    )]
    #[case::vault(
        r#"{"secrets":{"enabled":false,"manager":"vault","vault":{"role":"r"}}}"#,
        false,
        SecretManager::Vault,
        "r"
    )]
    #[case::aws(r#"{"secrets":{"manager":"aws"}}"#, true, SecretManager::Aws, "flyte")]
    #[case::gcp(r#"{"secrets":{"manager":"gcp"}}"#, true, SecretManager::Gcp, "flyte")]
    fn secrets_settings(
        #[case] raw: &str,
        #[case] enabled: bool,
        #[case] manager: SecretManager,
        #[case] role: &str,
    ) {
        let s = settings(raw);
        assert_eq!(
            (s.enabled, s.manager, s.vault.role.as_str()),
            (enabled, manager, role)
        );
    }

    #[test]
    fn secrets_settings_defaults_are_flytepropellers() {
        use crate::settings::{KvVersion, AWS_SIDECAR_IMAGE, GCP_SIDECAR_IMAGE};
        let s = settings("{}");
        assert_eq!(s.vault.kv_version.get(), KvVersion::V2);
        assert!(s.vault.annotations.is_empty());
        assert_eq!(
            s.aws.image(AWS_SIDECAR_IMAGE),
            "docker.io/amazon/aws-secrets-manager-secret-sidecar:v0.1.4"
        );
        assert_eq!(
            s.gcp.image(GCP_SIDECAR_IMAGE),
            "gcr.io/google.com/cloudsdktool/cloud-sdk:alpine"
        );
        let resources = json!({"limits": {"cpu": "200m", "memory": "500Mi"},
                               "requests": {"cpu": "200m", "memory": "500Mi"}});
        assert_eq!(s.aws.resources(), resources);
        assert_eq!(s.gcp.resources(), resources);
        for (raw, kv) in [
            (r#""1""#, KvVersion::V1),
            (r#""2""#, KvVersion::V2),
            ("1", KvVersion::V1),
            ("2", KvVersion::V2),
        ] {
            let s = settings(&format!(
                r#"{{"secrets":{{"vault":{{"kvVersion":{raw}}}}}}}"#
            ));
            assert_eq!(s.vault.kv_version.get(), kv, "{raw}");
        }
        let s = settings(
            r#"{"secrets":{"gcp":{"sidecarImage":"gcr.io/x/y:1","resources":{"limits":{"cpu":1,"nvidia.com/gpu":"0"},"requests":{}}}}}"#,
        );
        assert_eq!(s.gcp.image(GCP_SIDECAR_IMAGE), "gcr.io/x/y:1");
        assert_eq!(
            s.gcp.resources(),
            json!({"limits": {"cpu": 1, "nvidia.com/gpu": "0"}})
        );
        // The AWS manager keeps its defaults when only GCP's are set.
        assert_eq!(s.aws.image(AWS_SIDECAR_IMAGE), AWS_SIDECAR_IMAGE);
        assert_eq!(s.aws.resources(), resources);
        // null is absent.
        let s = settings(r#"{"secrets":{"aws":{"sidecarImage":null,"resources":null}}}"#);
        assert_eq!(s.aws.image(AWS_SIDECAR_IMAGE), AWS_SIDECAR_IMAGE);
        assert_eq!(s.aws.resources(), resources);
    }

    #[rstest]
    #[case::unknown_field(
        r#"{"secrets":{"kvVersion":2}}"#,
        "unknown field `secrets.kvVersion`, expected one of `enabled`, `manager`, `vault`, `aws`, `gcp`"
    )]
    #[case::unknown_vault_field(
        r#"{"secrets":{"vault":{"kv":2}}}"#,
        "unknown field `secrets.vault.kv`, expected one of `role`, `kvVersion`, `annotations`"
    )]
    #[case::unknown_aws_field(
        r#"{"secrets":{"aws":{"image":"x"}}}"#,
        "unknown field `secrets.aws.image`, expected `sidecarImage` or `resources`"
    )]
    #[case::unknown_resources_field(
        r#"{"secrets":{"gcp":{"resources":{"claims":{}}}}}"#,
        "unknown field `secrets.gcp.resources.claims`, expected `requests` or `limits`"
    )]
    #[case::bad_manager(
        r#"{"secrets":{"manager":"azure"}}"#,
        "secrets.manager: unknown variant `azure`, expected one of `k8s`, `kubernetes`, `vault`, `aws`, `gcp`"
    )]
    #[case::bad_kv_version(
        r#"{"secrets":{"vault":{"kvVersion":"3"}}}"#,
        "secrets.vault.kvVersion: \"3\" is not \"1\" or \"2\" (the KV secrets engine version)"
    )]
    #[case::empty_role(
        r#"{"secrets":{"vault":{"role":""}}}"#,
        "secrets.vault.role: must not be empty"
    )]
    #[case::bad_annotations(
        r#"{"secrets":{"vault":{"annotations":{"Bad Key":"x","flyte.secrets/s9":"y"}}}}"#,
        "secrets.vault.annotations: \"Bad Key\" is not a valid annotation key ([prefix/]name); secrets.vault.annotations: \"flyte.secrets/s9\" would be read as a Flyte secret request (keys starting with \"flyte.secrets/s\" are)"
    )]
    #[case::bad_image_and_quantities(
        r#"{"secrets":{"aws":{"sidecarImage":"a b","resources":{"limits":{"cpu":"2 cores","Memory Size":"1Gi"},"requests":{"cpu":-1}}}}}"#,
        "secrets.aws.resources.limits: \"Memory Size\" is not a container resource name (\"cpu\", \"memory\", \"ephemeral-storage\", \"hugepages-<size>\" or a prefixed name such as \"nvidia.com/gpu\"); secrets.aws.resources.limits.cpu: \"2 cores\" is not a Kubernetes quantity (a non-negative number or a string such as \"200m\", \"500Mi\", \"1e3\"); secrets.aws.resources.requests.cpu: -1 is not a Kubernetes quantity (a non-negative number or a string such as \"200m\", \"500Mi\", \"1e3\"); secrets.aws.sidecarImage: \"a b\" is not a container image reference (a non-empty string without spaces)"
    )]
    fn invalid_secrets_settings(#[case] raw: &str, #[case] expected: &str) {
        let err = crate::settings::Settings::from_json(raw.as_bytes()).unwrap_err();
        assert_eq!(err, expected);
    }
}
