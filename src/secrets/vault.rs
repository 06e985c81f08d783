//! The Vault secret manager (flytepropeller's `Vault`): pod annotations for
//! the HashiCorp Vault Agent injector, which then writes each secret to
//! `/etc/flyte/secrets/<group>/<key>`.
//!
//! Upstream's contract (`vault_secret_manager.go`, `CreateVaultAnnotationsForSecret`):
//! - common annotations `agent-inject: "true"`, `secret-volume-path:
//!   /etc/flyte/secrets`, `role: <secrets.vault.role>`,
//!   `agent-pre-populate-only: "true"`;
//! - per secret `agent-inject-secret-<id>: <group>`, `agent-inject-file-<id>:
//!   <group>/<key>` and, unless `group_version` is `db`, a template reading
//!   `.Data.<key>` (`kv1`) or `.Data.data.<key>` (`kv2`); any other
//!   `group_version` follows `secrets.vault.kvVersion` (`"1"` or `"2"`,
//!   default `"2"`);
//! - precedence, later wins: the per-secret annotations, the common ones,
//!   `secrets.vault.annotations`, the pod's own (`utils.UnionMaps`);
//! - `FLYTE_SECRETS_DEFAULT_DIR` and `FLYTE_SECRETS_FILE_PREFIX=""` in every
//!   container; `ENV_VAR` is refused.
//!
//! Beyond upstream: ids are `flyte-<16 hex of sha256(group, group_version,
//! key)>` instead of random UUIDs, so a second pass changes nothing; a key
//! that is not a Go template identifier is read with `index` instead of
//! `.<key>`, which the agent cannot parse; `env_var` holds the file's path
//! (upstream ignores it).

use serde_json::json;
use sha2::{Digest, Sha256};

use super::{push_env, Claims, MountRequirement, Secret};
use crate::names::flyte::{env, SECRETS_DIR, VAULT_ANNOTATION_PREFIX};
use crate::podedit::{env_value, Injection};
use crate::providers::Findings;
use crate::settings::{KvVersion, VaultSecretsSettings};

/// Vault Agent injector annotation names, after [`VAULT_ANNOTATION_PREFIX`].
mod keys {
    pub const AGENT_INJECT: &str = "agent-inject";
    pub const SECRET_VOLUME_PATH: &str = "secret-volume-path";
    pub const ROLE: &str = "role";
    pub const PRE_POPULATE_ONLY: &str = "agent-pre-populate-only";
    pub const INJECT_SECRET: &str = "agent-inject-secret-";
    pub const INJECT_FILE: &str = "agent-inject-file-";
    pub const INJECT_TEMPLATE: &str = "agent-inject-template-";
}

fn key(name: &str) -> String {
    format!("{VAULT_ANNOTATION_PREFIX}{name}")
}

/// What this manager cannot serve in a secret (besides the shared checks).
pub(super) fn check(secret: &Secret, problems: &mut Vec<String>) {
    if secret.mount_requirement == MountRequirement::EnvVar {
        problems.push(super::env_var_refused("Vault"));
    }
    for (field, value) in [("group", &secret.group), ("key", &secret.key)] {
        if value
            .chars()
            .any(|c| c == '"' || c == '\\' || c.is_control())
        {
            problems.push(format!(
                "{field} {value:?} cannot be quoted in a Vault Agent template (it has '\"', '\\' or a control character)"
            ));
        }
    }
}

/// `flyte-<16 hex of sha256(group, group_version, key)>`: upstream's
/// random UUID made deterministic.
pub fn vault_id(secret: &Secret) -> String {
    let mut hasher = Sha256::new();
    for part in [&secret.group, &secret.group_version, &secret.key] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    let digest = hasher.finalize();
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("flyte-{hex}")
}

/// The Vault Agent template that extracts the key (upstream's text): `db`
/// has none, `kv1` reads `.Data`, `kv2` `.Data.data`, anything else as
/// `kv_version` says.
pub fn vault_template(secret: &Secret, kv_version: KvVersion) -> Option<String> {
    let query = match (secret.group_version.as_str(), kv_version) {
        ("db", _) => return None,
        ("kv1", _) => ".Data",
        ("kv2", _) => ".Data.data",
        (_, KvVersion::V1) => ".Data",
        (_, KvVersion::V2) => ".Data.data",
    };
    let key = &secret.key;
    let group = &secret.group;
    let identifier = key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    Some(if identifier {
        format!("{{{{- with secret \"{group}\" -}}}}{{{{ {query}.{key} }}}}{{{{- end -}}}}")
    } else {
        format!(
            "{{{{- with secret \"{group}\" -}}}}{{{{ index {query} \"{key}\" }}}}{{{{- end -}}}}"
        )
    })
}

/// One injection for all the pod's secrets: the annotations (added where the
/// pod has none of that key) and the env vars.
pub(super) fn injection<'a>(
    settings: &VaultSecretsSettings,
    secrets: &'a [(&'a str, Secret)],
    findings: &mut Findings,
) -> Injection {
    let mut claims = Claims::default();
    let mut annotations: Vec<(String, String)> = Vec::new();
    let mut env = Vec::new();
    push_env(&mut env, env_value(env::DEFAULT_DIR, SECRETS_DIR));
    push_env(&mut env, env_value(env::FILE_PREFIX, ""));
    for (annotation, secret) in secrets {
        let id = vault_id(secret);
        let file = format!("{}/{}", secret.group, secret.key);
        claims.claim(annotation, "Vault Agent file", &file, json!(id), findings);
        let mut add = |name: &str, value: String| {
            let key = format!("{}{id}", key(name));
            if !annotations.iter().any(|(k, _)| *k == key) {
                annotations.push((key, value));
            }
        };
        add(keys::INJECT_SECRET, secret.group.clone());
        add(keys::INJECT_FILE, file.clone());
        if let Some(template) = vault_template(secret, settings.kv_version.get()) {
            add(keys::INJECT_TEMPLATE, template);
        }
        if !secret.env_var.is_empty() {
            let path = format!("{SECRETS_DIR}/{file}");
            claims.claim(
                annotation,
                "env var",
                &secret.env_var,
                json!(path),
                findings,
            );
            push_env(&mut env, env_value(&secret.env_var, &path));
        }
    }
    // Later wins: per secret, then the common ones, then the settings'.
    let common = [
        (keys::AGENT_INJECT, "true"),
        (keys::SECRET_VOLUME_PATH, SECRETS_DIR),
        (keys::ROLE, settings.role.as_str()),
        (keys::PRE_POPULATE_ONLY, "true"),
    ];
    let common = common.iter().map(|(k, v)| (key(k), v.to_string()));
    let extra = settings
        .annotations
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()));
    for (k, v) in common.chain(extra) {
        match annotations.iter_mut().find(|(existing, _)| *existing == k) {
            Some(slot) => slot.1 = v,
            None => annotations.push((k, v)),
        }
    }
    Injection {
        env_groups: env,
        // The pod's own annotations win (added only where absent).
        default_annotations: annotations,
        gives: "secrets".to_string(),
        ..Injection::new("Flyte Vault")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::test_support::{encode, pod, run, secret, settings, DB_PASSWORD};
    use rstest::rstest;

    #[rstest]
    #[case::kv1(
        "kv1",
        KvVersion::V2,
        "password",
        Some(r#"{{- with secret "secret/db" -}}{{ .Data.password }}{{- end -}}"#)
    )]
    #[case::kv2(
        "kv2",
        KvVersion::V1,
        "password",
        Some(r#"{{- with secret "secret/db" -}}{{ .Data.data.password }}{{- end -}}"#)
    )]
    #[case::default_is_kv2(
        "",
        KvVersion::V2,
        "password",
        Some(r#"{{- with secret "secret/db" -}}{{ .Data.data.password }}{{- end -}}"#)
    )]
    #[case::setting_kv1(
        "",
        KvVersion::V1,
        "password",
        Some(r#"{{- with secret "secret/db" -}}{{ .Data.password }}{{- end -}}"#)
    )]
    #[case::other_version_setting_kv1(
        "v7",
        KvVersion::V1,
        "password",
        Some(r#"{{- with secret "secret/db" -}}{{ .Data.password }}{{- end -}}"#)
    )]
    #[case::db("db", KvVersion::V1, "password", None)]
    #[case::non_identifier_key(
        "kv2",
        KvVersion::V2,
        "tls.key",
        Some(r#"{{- with secret "secret/db" -}}{{ index .Data.data "tls.key" }}{{- end -}}"#)
    )]
    fn templates(
        #[case] version: &str,
        #[case] kv: KvVersion,
        #[case] key: &str,
        #[case] expected: Option<&str>,
    ) {
        let s = Secret {
            group: "secret/db".into(),
            group_version: version.into(),
            key: key.into(),
            ..Secret::default()
        };
        assert_eq!(vault_template(&s, kv).as_deref(), expected);
    }

    #[test]
    fn ids_are_stable_and_distinct() {
        let a = Secret {
            group: "g".into(),
            key: "k".into(),
            mount_requirement: MountRequirement::File,
            ..Secret::default()
        };
        let any = Secret {
            mount_requirement: MountRequirement::Any,
            env_var: "X".into(),
            ..a.clone()
        };
        let b = Secret {
            group_version: "kv1".into(),
            ..a.clone()
        };
        assert_eq!(vault_id(&a), vault_id(&any));
        assert_ne!(vault_id(&a), vault_id(&b));
        assert_eq!(vault_id(&a).len(), "flyte-".len() + 16);
        assert!(crate::settings::is_qualified_key(&format!(
            "{}{}",
            key(keys::INJECT_TEMPLATE),
            vault_id(&a)
        )));
    }

    #[test]
    fn settings_annotations_override_the_managers_own() {
        let settings = VaultSecretsSettings {
            annotations: [
                (
                    "vault.hashicorp.com/role".to_string(),
                    "from-settings".to_string(),
                ),
                (
                    "vault.hashicorp.com/agent-pre-populate-only".to_string(),
                    "false".to_string(),
                ),
                (
                    "vault.hashicorp.com/namespace".to_string(),
                    "team-a".to_string(),
                ),
            ]
            .into(),
            ..VaultSecretsSettings::default()
        };
        let secrets = [(
            "flyte.secrets/s0",
            Secret {
                group: "secret/db".into(),
                key: "pw".into(),
                ..Secret::default()
            },
        )];
        let mut findings = Findings::default();
        let injection = injection(&settings, &secrets, &mut findings);
        assert_eq!(findings, Findings::default());
        let get = |k: &str| {
            injection
                .default_annotations
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("vault.hashicorp.com/role"), Some("from-settings"));
        assert_eq!(
            get("vault.hashicorp.com/agent-pre-populate-only"),
            Some("false")
        );
        assert_eq!(get("vault.hashicorp.com/namespace"), Some("team-a"));
        assert_eq!(get("vault.hashicorp.com/agent-inject"), Some("true"));
        let names: Vec<&str> = injection
            .default_annotations
            .iter()
            .map(|(k, _)| k.as_str())
            .collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "{names:?}");
    }

    #[test]
    fn vault_annotations_are_added_when_absent() {
        let vault = settings(r#"{"secrets":{"manager":"vault","vault":{"role":"etl"}}}"#);
        let mut p = pod(json!({
            "flyte.secrets/s0": encode("group: 'secret/db' group_version: 'kv1' key: 'password' env_var: 'PW'"),
            "vault.hashicorp.com/role": "mine",
        }));
        let (changed, findings) = run(&vault, &mut p);
        assert!(changed && findings == Findings::default(), "{findings:?}");
        let s = secret("secret/db", "password", MountRequirement::Any, "PW");
        let id = vault_id(&Secret {
            group_version: "kv1".into(),
            ..s
        });
        let annotations = &p["metadata"]["annotations"];
        assert_eq!(annotations["vault.hashicorp.com/role"], "mine");
        assert_eq!(annotations["vault.hashicorp.com/agent-inject"], "true");
        assert_eq!(
            annotations["vault.hashicorp.com/agent-pre-populate-only"],
            "true"
        );
        assert_eq!(
            annotations["vault.hashicorp.com/secret-volume-path"],
            "/etc/flyte/secrets"
        );
        assert_eq!(
            annotations[format!("vault.hashicorp.com/agent-inject-secret-{id}")],
            "secret/db"
        );
        assert_eq!(
            annotations[format!("vault.hashicorp.com/agent-inject-file-{id}")],
            "secret/db/password"
        );
        assert_eq!(
            annotations[format!("vault.hashicorp.com/agent-inject-template-{id}")],
            r#"{{- with secret "secret/db" -}}{{ .Data.password }}{{- end -}}"#
        );
        assert_eq!(
            p["spec"]["initContainers"][0]["env"][2],
            json!({"name": "PW", "value": "/etc/flyte/secrets/secret/db/password"})
        );
        let again = p.clone();
        assert!(!run(&vault, &mut p).0);
        assert_eq!(p, again);
    }

    #[test]
    fn vault_one_file_for_two_versions_is_denied() {
        let vault = settings(r#"{"secrets":{"manager":"vault"}}"#);
        let mut p = pod(json!({
            "flyte.secrets/s0": encode("group: 'secret/db' group_version: 'kv1' key: 'pw'"),
            "flyte.secrets/s1": encode("group: 'secret/db' group_version: 'kv2' key: 'pw'"),
        }));
        let (changed, findings) = run(&vault, &mut p);
        assert!(!changed);
        assert_eq!(
            findings.denials,
            ["annotation \"flyte.secrets/s1\": Vault Agent file \"secret/db/pw\" is also asked for by annotation \"flyte.secrets/s0\", for another secret"]
        );
    }

    #[test]
    fn vault_refuses_env_var_secrets() {
        let vault = settings(r#"{"secrets":{"manager":"vault"}}"#);
        let mut p = pod(json!({"flyte.secrets/s0": DB_PASSWORD}));
        let (_, findings) = run(&vault, &mut p);
        assert_eq!(
            findings.denials,
            ["annotation \"flyte.secrets/s0\": mount_requirement ENV_VAR is not supported by the Vault secret manager (use FILE or ANY)"]
        );
    }
}
