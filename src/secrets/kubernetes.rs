//! The Kubernetes secret manager (flytepropeller's `K8s`, its default):
//! Kubernetes Secrets as env vars (`secretKeyRef`) and secret volumes.
//!
//! In every container and init container, first writer wins for an env var
//! name, a volume name or a mount:
//! - `ENV_VAR`: `_FSEC_<GROUP>_<KEY>` (upper-cased as is, like upstream's
//!   `strings.ToUpper`) from `secretKeyRef {name: group, key, optional:
//!   true}`, the same source under `env_var` when given, and
//!   `FLYTE_SECRETS_ENV_PREFIX=_FSEC_`.
//! - `FILE` and `ANY`: one secret volume per group, items `key → lower(key)`,
//!   `optional: true`, mounted read-only at `/etc/flyte/secrets/<lower(group)>`;
//!   `FLYTE_SECRETS_DEFAULT_DIR`, `FLYTE_SECRETS_FILE_PREFIX=""`, and `env_var`
//!   holding the file's path when given.
//!
//! Beyond upstream: the volume is named `flyte-secret-<group, at most 40
//! chars>-<8 hex of sha256(group)>`, a DNS label for any group (upstream's
//! base32 of `group_version` is not one, and one group with two versions got
//! two names for a single volume); one volume per group, whatever the
//! version. On a later pass an existing volume of that name gets the missing
//! items only (upstream appends duplicates). A group Kubernetes would refuse
//! as a Secret name, or a key it would not find, is a denial.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{push_env, Claims, MountRequirement, Secret};
use crate::names::flyte::{env, ENV_PREFIX, KUBERNETES_VOLUME_PREFIX, SECRETS_DIR};
use crate::podedit::{env_value, Injection, Mount};
use crate::providers::Findings;

/// What this manager cannot serve in a secret (besides the shared checks).
pub(super) fn check(secret: &Secret, problems: &mut Vec<String>) {
    let (group, key) = (&secret.group, &secret.key);
    if !group.is_empty() && !is_dns_subdomain(group) {
        problems.push(format!(
            "group {group:?} is not a Kubernetes Secret name (lowercase letters, digits, '-' and '.', at most 253)"
        ));
    }
    if !key.is_empty() && !is_secret_key(key) {
        problems.push(format!(
            "key {key:?} is not a Kubernetes Secret key (letters, digits, '-', '_' and '.', not \".\" or \"..\")"
        ));
    }
}

/// Kubernetes' DNS-1123 subdomain (Secret names).
fn is_dns_subdomain(value: &str) -> bool {
    value.len() <= 253
        && value.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Kubernetes' Secret data key (`IsConfigMapKey`).
fn is_secret_key(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 253
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
        && value != "."
        && value != ".."
        && !value.starts_with("..")
}

/// `flyte-secret-<readable group>-<8 hex of sha256(group)>`: a DNS label
/// (at most 62 characters) for any group, the same on every pass.
pub fn volume_name(group: &str) -> String {
    let digest = Sha256::digest(group.as_bytes());
    let hash: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    let readable: String = group
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(40)
        .collect();
    let readable = readable.trim_matches('-');
    if readable.is_empty() {
        format!("{KUBERNETES_VOLUME_PREFIX}{hash}")
    } else {
        format!("{KUBERNETES_VOLUME_PREFIX}{readable}-{hash}")
    }
}

/// `/etc/flyte/secrets/<lower(group)>` (ASCII: Unicode case tables cost
/// ~38 KB of wasm, and Kubernetes Secret names are ASCII).
pub fn mount_path(group: &str) -> String {
    format!("{SECRETS_DIR}/{}", group.to_ascii_lowercase())
}

/// `_FSEC_<GROUP>_<KEY>`, upper-cased as upstream (`strings.ToUpper`; the
/// Kubernetes manager only accepts ASCII groups and keys).
pub fn env_name(group: &str, key: &str) -> String {
    format!("{ENV_PREFIX}{group}_{key}").to_ascii_uppercase()
}

/// The file secrets of one group: its injection and the volume's items.
struct GroupFiles<'a> {
    injection: usize,
    /// `(key, lower(key))`, in request order.
    items: Vec<(&'a str, String)>,
}

/// One injection per `ENV_VAR` secret and one per group of file secrets,
/// in the order the requests come.
pub(super) fn injections(secrets: &[(&str, Secret)], findings: &mut Findings) -> Vec<Injection> {
    let mut injections: Vec<Injection> = Vec::new();
    let mut claims = Claims::default();
    let mut groups: BTreeMap<&str, GroupFiles> = BTreeMap::new();
    for (annotation, secret) in secrets {
        let (group, key) = (secret.group.as_str(), secret.key.as_str());
        if secret.mount_requirement == MountRequirement::EnvVar {
            let source = json!({"secretKeyRef": {"name": group, "key": key, "optional": true}});
            let mut env = Vec::new();
            let mut names = vec![env_name(group, key)];
            if !secret.env_var.is_empty() {
                names.push(secret.env_var.clone());
            }
            for name in names {
                claims.claim(annotation, "env var", &name, source.clone(), findings);
                push_env(&mut env, json!({"name": name, "valueFrom": source}));
            }
            push_env(&mut env, env_value(env::ENV_PREFIX, ENV_PREFIX));
            injections.push(Injection {
                env_groups: env,
                ..flyte_injection(group)
            });
            continue;
        }
        let path = key.to_ascii_lowercase();
        let files = groups.entry(group).or_insert_with(|| {
            let mut env = Vec::new();
            push_env(&mut env, env_value(env::DEFAULT_DIR, SECRETS_DIR));
            push_env(&mut env, env_value(env::FILE_PREFIX, ""));
            injections.push(Injection {
                mounts: vec![Mount {
                    volume: volume_name(group),
                    path: mount_path(group),
                }],
                env_groups: env,
                ..flyte_injection(group)
            });
            GroupFiles {
                injection: injections.len() - 1,
                items: Vec::new(),
            }
        });
        let same_file = files
            .items
            .iter()
            .find(|(_, p)| *p == path)
            .map(|(k, _)| *k);
        match same_file {
            Some(other) if other != key => findings.denials.push(format!(
                "annotation {annotation:?}: key {key:?} of group {group:?} would be the same file as key {other:?} ({}/{path})",
                mount_path(group)
            )),
            Some(_) => {}
            None => files.items.push((key, path.clone())),
        }
        if !secret.env_var.is_empty() {
            let file = format!("{}/{path}", mount_path(group));
            claims.claim(
                annotation,
                "env var",
                &secret.env_var,
                json!(file),
                findings,
            );
            if let Some(injection) = injections.get_mut(files.injection) {
                push_env(&mut injection.env_groups, env_value(&secret.env_var, &file));
            }
        }
    }
    if !findings.denials.is_empty() {
        return Vec::new();
    }
    for (group, files) in groups {
        if let Some(injection) = injections.get_mut(files.injection) {
            let items: Vec<Value> = files
                .items
                .iter()
                .map(|(key, path)| json!({"key": key, "path": path}))
                .collect();
            injection.volumes.push(json!({
                "name": volume_name(group),
                "secret": {"secretName": group, "items": items, "optional": true},
            }));
        }
    }
    injections
}

fn flyte_injection(group: &str) -> Injection {
    Injection {
        gives: format!("secret group {group:?}"),
        ..Injection::new("Flyte")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::test_support::{encode, pod, run, DB_PASSWORD};
    use crate::settings::SecretsSettings;
    use rstest::rstest;

    #[test]
    fn volume_names_are_dns_labels_for_any_group() {
        let long = "a".repeat(200) + ".prod";
        for group in ["db-credentials", long.as_str(), "x.y", "-", "Weird_Group"] {
            let name = volume_name(group);
            assert!(name.len() <= 63, "{name}");
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "{name}"
            );
            assert!(
                !name.ends_with('-') && name.starts_with("flyte-secret-"),
                "{name}"
            );
            assert_eq!(name, volume_name(group));
        }
        assert!(volume_name("db-credentials").starts_with("flyte-secret-db-credentials-"));
        assert_ne!(volume_name("a.b"), volume_name("a-b"));
    }

    #[test]
    fn names_and_paths() {
        assert_eq!(
            env_name("db-credentials", "pass.word"),
            "_FSEC_DB-CREDENTIALS_PASS.WORD"
        );
        assert_eq!(mount_path("My-Certs"), "/etc/flyte/secrets/my-certs");
        for (value, secret_name, secret_key) in [
            ("db", true, true),
            ("a.b-c", true, true),
            ("Upper", false, true),
            ("under_score", false, true),
            ("..", false, false),
            ("..x", false, false),
            (".x", false, true),
            ("-a", false, true),
        ] {
            assert_eq!(is_dns_subdomain(value), secret_name, "{value}");
            assert_eq!(is_secret_key(value), secret_key, "{value}");
        }
    }

    #[test]
    fn kubernetes_env_var_secret() {
        let mut p = pod(json!({"flyte.secrets/s0": DB_PASSWORD}));
        let (changed, findings) = run(&SecretsSettings::default(), &mut p);
        assert!(changed && findings == Findings::default(), "{findings:?}");
        let source = json!({"secretKeyRef": {"name": "db-credentials", "key": "password", "optional": true}});
        assert_eq!(
            p["spec"]["initContainers"][0]["env"],
            json!([
                {"name": "_FSEC_DB-CREDENTIALS_PASSWORD", "valueFrom": source},
                {"name": "DB_PASSWORD", "valueFrom": source},
                {"name": "FLYTE_SECRETS_ENV_PREFIX", "value": "_FSEC_"},
            ])
        );
        // The user's DB_PASSWORD is kept (first writer wins).
        assert_eq!(
            p["spec"]["containers"][0]["env"][0],
            json!({"name": "DB_PASSWORD", "value": "mine"})
        );
        assert_eq!(p["spec"].get("volumes"), None);
        let again = p.clone();
        assert!(!run(&SecretsSettings::default(), &mut p).0);
        assert_eq!(p, again);
    }

    #[test]
    fn kubernetes_file_secrets_of_one_group_share_a_volume() {
        let mut p = pod(json!({
            "flyte.secrets/s0": encode("group: 'db' key: 'Password' mount_requirement: FILE env_var: 'PW_FILE'"),
            "flyte.secrets/s1": encode("group: 'db' key: 'user'"),
            "flyte.secrets/s2": encode("group: 'db' key: 'user' mount_requirement: FILE"),
        }));
        let (changed, findings) = run(&SecretsSettings::default(), &mut p);
        assert!(changed && findings == Findings::default(), "{findings:?}");
        let name = volume_name("db");
        assert_eq!(
            p["spec"]["volumes"],
            json!([{"name": name, "secret": {"secretName": "db", "optional": true, "items": [
                {"key": "Password", "path": "password"}, {"key": "user", "path": "user"}]}}])
        );
        for c in [&p["spec"]["initContainers"][0], &p["spec"]["containers"][0]] {
            assert_eq!(
                c["volumeMounts"],
                json!([{"name": name, "mountPath": "/etc/flyte/secrets/db", "readOnly": true}])
            );
        }
        assert_eq!(
            p["spec"]["initContainers"][0]["env"],
            json!([
                {"name": "FLYTE_SECRETS_DEFAULT_DIR", "value": "/etc/flyte/secrets"},
                {"name": "FLYTE_SECRETS_FILE_PREFIX", "value": ""},
                {"name": "PW_FILE", "value": "/etc/flyte/secrets/db/password"},
            ])
        );
        let again = p.clone();
        assert!(!run(&SecretsSettings::default(), &mut p).0);
        assert_eq!(p, again);
    }

    #[test]
    fn missing_items_are_merged_into_an_existing_volume() {
        let mut p = pod(
            json!({"flyte.secrets/s0": encode("group: 'db' key: 'a'"), "flyte.secrets/s1": encode("group: 'db' key: 'b'")}),
        );
        p["spec"]["volumes"] = json!([{"name": volume_name("db"), "secret": {"secretName": "db", "items": [{"key": "a", "path": "a", "mode": 256}]}}]);
        run(&SecretsSettings::default(), &mut p);
        assert_eq!(
            p["spec"]["volumes"],
            json!([{"name": volume_name("db"), "secret": {"secretName": "db", "items": [
                {"key": "a", "path": "a", "mode": 256}, {"key": "b", "path": "b"}]}}])
        );
    }

    #[rstest]
    #[case::no_key(
        "group: 'db'",
        "the secret has no key (both group and key are required; group is \"db\")"
    )]
    #[case::no_group("key: 'k'", "the secret has no group")]
    #[case::unknown_mount(
        "group: 'db' key: 'k' mount_requirement: 5",
        "mount_requirement 5 is not ANY (0), ENV_VAR (1) or FILE (2)"
    )]
    #[case::bad_group(
        "group: 'DB_Creds' key: 'k'",
        "group \"DB_Creds\" is not a Kubernetes Secret name"
    )]
    #[case::bad_key(
        "group: 'db' key: '../x'",
        "key \"../x\" is not a Kubernetes Secret key"
    )]
    #[case::bad_env_var(
        "group: 'db' key: 'k' env_var: '1X'",
        "env_var \"1X\" is not a valid environment variable name"
    )]
    fn kubernetes_denials(#[case] text: &str, #[case] expected: &str) {
        let mut p = pod(json!({"flyte.secrets/s3": encode(text)}));
        let before = p.clone();
        let (changed, findings) = run(&SecretsSettings::default(), &mut p);
        assert!(!changed && p == before);
        assert_eq!(findings.denials.len(), 1, "{findings:?}");
        let denial = &findings.denials[0];
        assert!(
            denial.starts_with(&format!("annotation \"flyte.secrets/s3\": {expected}")),
            "{denial}"
        );
    }

    #[test]
    fn two_keys_for_one_file_are_denied() {
        let mut p = pod(
            json!({"flyte.secrets/s0": encode("group: 'db' key: 'Key'"), "flyte.secrets/s1": encode("group: 'db' key: 'key'")}),
        );
        let (_, findings) = run(&SecretsSettings::default(), &mut p);
        assert_eq!(
            findings.denials,
            ["annotation \"flyte.secrets/s1\": key \"key\" of group \"db\" would be the same file as key \"Key\" (/etc/flyte/secrets/db/key)"]
        );
    }
}
