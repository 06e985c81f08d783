//! What the AWS and GCP secret managers share (flytepropeller's
//! `aws_secret_manager.go` and `gcp_secret_manager.go` are one design): per
//! secret, an init container that pulls it into a memory `emptyDir`, which
//! every other container mounts read-only at `/etc/flyte/secrets`.
//!
//! Upstream, per secret in turn: the volume is added unless one of its name
//! exists; the pull init container `<prefix><n>` (n = the number of init
//! containers the pod has at that moment) is appended; every container and
//! init container gets the volume at `/etc/flyte/secrets`, read-only, unless
//! it already mounts a volume of that name (the pull containers do, at their
//! own path); then every container and init container, the pull containers
//! included, gets `FLYTE_SECRETS_DEFAULT_DIR`, `FLYTE_SECRETS_FILE_PREFIX=""`
//! and, for AWS, `env_var` with the file's path, each unless a variable of
//! that name is set.
//!
//! Here all of a pod's secrets are one [`Injection`]: `podedit` appends its
//! init containers, then gives every container the mount and the env vars.
//! Every container other than the pull containers ends up exactly as
//! upstream leaves it. A pull container gets the `env_var`s of every secret,
//! where upstream gives it those of its own and the later secrets only (it
//! applies one secret after the other); its program reads `SECRET_ARN` and
//! `SECRET_FILENAME` or its command only.
//!
//! Beyond upstream: secrets are handled in annotation order (upstream's
//! order, and so its numbering, is random); a secret already pulled by an
//! init container of the pod (same secret, same file: an earlier pass) is not
//! pulled again, nor is the same request twice; `<n>` skips names the pod
//! already uses (upstream would add a second init container of that name,
//! which the API server refuses); two requests for different secrets that
//! would land in one file, or set one `env_var` to different files, deny the
//! pod.

use serde_json::{json, Map, Value};

use super::{push_env, Claims, Secret};
use crate::names::flyte::{env, SECRETS_DIR};
use crate::podedit::{env_value, Injection, Mount};
use crate::providers::Findings;
use crate::settings::SidecarSettings;

/// A secret manager that pulls secrets with init containers.
pub(super) struct Manager {
    /// For messages: "AWS", "GCP".
    pub name: &'static str,
    /// The shared `emptyDir` volume.
    pub volume: &'static str,
    /// Init container names are this and a number.
    pub init_prefix: &'static str,
    /// What an init container pulls, if it is one of this manager's pull
    /// containers: equal for two pulls of the same secret to the same file.
    pub identity: fn(&Value) -> Option<Value>,
}

/// One secret's pull.
pub(super) struct Pull {
    /// The init container, without its name.
    pub container: Map<String, Value>,
    /// The secret's file, as the other containers see it.
    pub file: String,
    /// What is pulled, for messages and conflicts (an ARN, `<group>/versions/<version>`).
    pub source: String,
}

/// A pull init container without name, command or env: the image and
/// resources of the settings, and `volume` mounted writable at `mount_path`.
pub(super) fn container(
    settings: &SidecarSettings,
    default_image: &str,
    volume: &str,
    mount_path: &str,
) -> Map<String, Value> {
    let mut mount = Map::new();
    mount.insert("name".to_string(), volume.into());
    mount.insert("mountPath".to_string(), mount_path.into());
    let mut container = Map::new();
    container.insert("image".to_string(), settings.image(default_image).into());
    container.insert("resources".to_string(), settings.resources());
    container.insert(
        "volumeMounts".to_string(),
        Value::Array(vec![Value::Object(mount)]),
    );
    container
}

/// Go's `filepath.Join` of absolute parts on Linux: empty parts dropped,
/// joined with `/`, then `Clean`ed (empty and `.` segments dropped, `..`
/// removes the segment before it, never above `/`).
pub(super) fn join(parts: &[&str]) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in parts.iter().flat_map(|p| p.split('/')) {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    format!("/{}", segments.join("/"))
}

/// The injection for the pod's secrets, pull containers in request order.
pub(super) fn injections(
    manager: &Manager,
    pod: &Value,
    pulls: Vec<(&str, &Secret, Pull)>,
    findings: &mut Findings,
) -> Vec<Injection> {
    let existing: &[Value] = pod
        .pointer("/spec/initContainers")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice);
    let mut names: Vec<String> = existing
        .iter()
        .filter_map(|c| Some(c.get("name")?.as_str()?.to_string()))
        .collect();
    let mut pulled: Vec<Value> = existing.iter().filter_map(manager.identity).collect();
    let mut claims = Claims::default();
    let mut injection = Injection {
        volumes: vec![json!({"name": manager.volume, "emptyDir": {"medium": "Memory"}})],
        mounts: vec![Mount {
            volume: manager.volume.to_string(),
            path: SECRETS_DIR.to_string(),
        }],
        gives: "secrets".to_string(),
        ..Injection::new(format!("Flyte {}", manager.name))
    };
    push_env(
        &mut injection.env_groups,
        env_value(env::DEFAULT_DIR, SECRETS_DIR),
    );
    push_env(&mut injection.env_groups, env_value(env::FILE_PREFIX, ""));
    for (annotation, secret, pull) in pulls {
        claims.claim(annotation, "file", &pull.file, json!(pull.source), findings);
        if !secret.env_var.is_empty() {
            claims.claim(
                annotation,
                "env var",
                &secret.env_var,
                json!(pull.file),
                findings,
            );
            push_env(
                &mut injection.env_groups,
                env_value(&secret.env_var, &pull.file),
            );
        }
        let mut container = pull.container;
        let Some(identity) = (manager.identity)(&Value::Object(container.clone())) else {
            continue;
        };
        if pulled.contains(&identity) {
            continue;
        }
        pulled.push(identity);
        let mut n = existing.len() + injection.init_containers.len();
        while names.contains(&format!("{}{n}", manager.init_prefix)) {
            n += 1;
        }
        let name = format!("{}{n}", manager.init_prefix);
        names.push(name.clone());
        container.insert("name".to_string(), Value::String(name));
        injection.init_containers.push(Value::Object(container));
    }
    if findings.denials.is_empty() {
        vec![injection]
    } else {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::test_support::{encode, flyte_env, pod, sidecar_run};
    use rstest::rstest;

    #[test]
    fn join_is_gos_filepath_join() {
        assert_eq!(join(&["/", "arn", "name"]), "/arn/name");
        assert_eq!(
            join(&["/etc/flyte/secrets", "a//b/", "./c"]),
            "/etc/flyte/secrets/a/b/c"
        );
        assert_eq!(join(&["/etc/flyte/secrets", ""]), "/etc/flyte/secrets");
        assert_eq!(join(&["/", "../../x", "k"]), "/x/k");
        assert_eq!(join(&["/", ""]), "/");
    }

    /// Several secrets: each sidecar numbered by the init containers before
    /// it; every container, the sidecars included, gets every secret's env
    /// var; a user's init container of a clashing name is kept and the
    /// number skips it; the same request twice is pulled once.
    #[test]
    fn sidecars_are_numbered_deduplicated_and_never_replace_the_users() {
        let mut p = json!({
            "metadata": {"labels": {"inject-flyte-secrets": "true"}, "annotations": {
                "flyte.secrets/s0": encode("group: 'a' key: 'x' env_var: 'A'"),
                "flyte.secrets/s1": encode("group: 'b' key: 'y' env_var: 'B'"),
                "flyte.secrets/s2": encode("group: 'a' key: 'x' env_var: 'A'"),
            }},
            "spec": {"initContainers": [{"name": "aws-pull-secret-1", "image": "mine"}], "containers": [{"name": "main"}]}
        });
        let (changed, findings) = sidecar_run("aws", &mut p);
        assert!(changed && findings == Findings::default(), "{findings:?}");
        let init = p["spec"]["initContainers"].as_array().unwrap();
        let names: Vec<&str> = init.iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            [
                "aws-pull-secret-1",
                "aws-pull-secret-2",
                "aws-pull-secret-3"
            ]
        );
        assert_eq!(
            init[0],
            json!({
                "name": "aws-pull-secret-1", "image": "mine",
                "env": flyte_env(&[("A", "/etc/flyte/secrets/a/x"), ("B", "/etc/flyte/secrets/b/y")]),
                "volumeMounts": [{"name": "aws-secret-vol", "mountPath": "/etc/flyte/secrets", "readOnly": true}],
            })
        );
        let env_names = |c: &Value| -> Vec<String> {
            c["env"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["name"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(
            env_names(&init[1]),
            [
                "SECRET_ARN",
                "SECRET_FILENAME",
                "FLYTE_SECRETS_DEFAULT_DIR",
                "FLYTE_SECRETS_FILE_PREFIX",
                "A",
                "B"
            ]
        );
        // s2 repeats s0: no third pull.
        assert_eq!(env_names(&init[2]), env_names(&init[1]));
        assert_eq!(
            init[2]["env"][0],
            json!({"name": "SECRET_ARN", "value": "b:y"})
        );
        assert_eq!(p["spec"]["volumes"].as_array().unwrap().len(), 1);
        let again = p.clone();
        assert_eq!(sidecar_run("aws", &mut p), (false, Findings::default()));
        assert_eq!(p, again);
    }

    /// Every pull container gets every secret's env var, so a second pass,
    /// which finds the pull containers in place, adds nothing.
    #[rstest]
    #[case::aws(
        "aws",
        "group: 'a' key: 'x' env_var: 'A'",
        "group: 'b' key: 'y' env_var: 'B'"
    )]
    #[case::gcp(
        "gcp",
        "group: 'a' group_version: '1' env_var: 'A'",
        "group: 'b' group_version: '1' env_var: 'B'"
    )]
    fn two_secrets_with_env_vars_are_idempotent(
        #[case] manager: &str,
        #[case] first: &str,
        #[case] second: &str,
    ) {
        let mut p =
            pod(json!({"flyte.secrets/s0": encode(first), "flyte.secrets/s1": encode(second)}));
        assert!(sidecar_run(manager, &mut p).0);
        let init = p["spec"]["initContainers"].as_array().unwrap().clone();
        assert_eq!(init.len(), 3);
        for container in &init[1..] {
            let env = container["env"].as_array().unwrap();
            let names: Vec<&str> = env.iter().filter_map(|e| e["name"].as_str()).collect();
            assert!(names.ends_with(&["A", "B"]), "{names:?}");
        }
        let again = p.clone();
        assert_eq!(sidecar_run(manager, &mut p), (false, Findings::default()));
        assert_eq!(p, again);
    }

    #[rstest]
    #[case::aws_one_file_two_arns(
        "aws",
        "group: 'Arn' key: 'k'",
        "group: 'arn' key: 'k'",
        "annotation \"flyte.secrets/s1\": file \"/etc/flyte/secrets/arn/k\" is also asked for by annotation \"flyte.secrets/s0\", for another secret"
    )]
    #[case::gcp_one_env_var_two_files(
        "gcp",
        "group: 'a' group_version: '1' env_var: 'X'",
        "group: 'b' group_version: '1' env_var: 'X'",
        "annotation \"flyte.secrets/s1\": env var \"X\" is also asked for by annotation \"flyte.secrets/s0\", for another secret"
    )]
    fn sidecar_conflicts_are_denied(
        #[case] manager: &str,
        #[case] first: &str,
        #[case] second: &str,
        #[case] expected: &str,
    ) {
        let mut p =
            pod(json!({"flyte.secrets/s0": encode(first), "flyte.secrets/s1": encode(second)}));
        let before = p.clone();
        let (changed, findings) = sidecar_run(manager, &mut p);
        assert!(!changed && p == before);
        assert_eq!(findings.denials, [expected]);
    }

    #[rstest]
    #[case::aws_no_key(
        "aws",
        "group: 'arn'",
        "the secret has no key (both group and key are required; group is \"arn\")"
    )]
    #[case::aws_env_var(
        "aws",
        "group: 'arn' key: 'k' mount_requirement: ENV_VAR",
        "mount_requirement ENV_VAR is not supported by the AWS secret manager (use FILE or ANY)"
    )]
    #[case::gcp_no_version("gcp", "group: 'g' key: 'k'", "the secret has no group_version (both group and group_version are required; group is \"g\")")]
    #[case::gcp_env_var(
        "gcp",
        "group: 'g' group_version: '1' mount_requirement: ENV_VAR",
        "mount_requirement ENV_VAR is not supported by the GCP secret manager (use FILE or ANY)"
    )]
    fn sidecar_refusals(#[case] manager: &str, #[case] text: &str, #[case] expected: &str) {
        let mut p = pod(json!({"flyte.secrets/s0": encode(text)}));
        let (changed, findings) = sidecar_run(manager, &mut p);
        assert!(!changed);
        assert_eq!(
            findings.denials,
            [format!("annotation \"flyte.secrets/s0\": {expected}")]
        );
    }
}
