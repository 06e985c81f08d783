//! The GCP secret manager (flytepropeller v1.16.8 `gcp_secret_manager.go`):
//! GCP Secret Manager secrets pulled by `gcloud`, run as one init container
//! per secret (see [`super::sidecar`] for what is shared with AWS).
//!
//! Per secret (group and group_version required, the key is not used;
//! `FILE` or `ANY`; `ENV_VAR` is refused):
//! - volume `gcp-secret-vol`, `emptyDir {medium: Memory}`, once;
//! - init container `gcp-pull-secret-<n>`, image `secrets.gcp.sidecarImage`
//!   (`gcr.io/google.com/cloudsdktool/cloud-sdk:alpine`), resources
//!   `secrets.gcp.resources`, the volume mounted writable at
//!   `/etc/flyte/secrets`, command `sh -ec "gcloud secrets versions access
//!   <group>/versions/<version> --out-file=<path> || gcloud secrets versions
//!   access <version> --secret=<group> --out-file=<path>; chmod +rX <dir>
//!   <path>"` with `<dir>` = lower(`/etc/flyte/secrets/<group>`) and `<path>`
//!   = lower(`<dir>/<version>`) (Go's `filepath.Join`, cleaned);
//! - every other container gets the volume read-only at `/etc/flyte/secrets`.
//!
//! Beyond upstream: `env_var` holds the file's path (upstream ignores it);
//! a group or version with anything but letters, digits, `_`, `-` and `/`, or
//! starting with `-`, is refused: upstream pastes both into the shell
//! command unquoted, and GCP's secret names, resource names, versions and
//! aliases never need more.

use serde_json::Value;

use super::sidecar::{container, join, Manager, Pull};
use super::{MountRequirement, Secret};
use crate::names::flyte::{GCP_INIT_CONTAINER_PREFIX, GCP_VOLUME, SECRETS_DIR};
use crate::settings::{SidecarSettings, GCP_SIDECAR_IMAGE};

pub(super) const MANAGER: Manager = Manager {
    name: "GCP",
    volume: GCP_VOLUME,
    init_prefix: GCP_INIT_CONTAINER_PREFIX,
    identity,
};

/// What this manager cannot serve in a secret (besides the shared checks).
pub(super) fn check(secret: &Secret, problems: &mut Vec<String>) {
    if secret.mount_requirement == MountRequirement::EnvVar {
        problems.push(super::env_var_refused("GCP"));
    }
    for (field, value, example) in [
        (
            "group",
            &secret.group,
            "a secret name or projects/<project>/secrets/<name>",
        ),
        (
            "group_version",
            &secret.group_version,
            "a version number, \"latest\" or an alias",
        ),
    ] {
        let safe = value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-/".contains(&b))
            && !value.starts_with('-');
        if !value.is_empty() && !safe {
            problems.push(format!(
                "{field} {value:?} cannot be used in the gcloud command (expected {example}: letters, digits, '_', '-' and '/', not starting with '-')"
            ));
        }
    }
}

/// `createGCPSidecarContainer`, without the name.
pub(super) fn pull(settings: &SidecarSettings, secret: &Secret) -> Pull {
    let (group, version) = (&secret.group, &secret.group_version);
    let dir = join(&[SECRETS_DIR, group]).to_ascii_lowercase();
    let path = join(&[&dir, version]).to_ascii_lowercase();
    let script = format!(
        "gcloud secrets versions access {group}/versions/{version} --out-file={path} || gcloud secrets versions access {version} --secret={group} --out-file={path}; chmod +rX {dir} {path}"
    );
    let mut container = container(settings, GCP_SIDECAR_IMAGE, GCP_VOLUME, SECRETS_DIR);
    container.insert(
        "command".to_string(),
        Value::Array(vec!["sh".into(), "-ec".into(), script.into()]),
    );
    Pull {
        container,
        file: path,
        source: format!("{group}/versions/{version}"),
    }
}

/// The command of an init container.
fn identity(container: &Value) -> Option<Value> {
    container.get("command").filter(|c| c.is_array()).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::Findings;
    use crate::secrets::test_support::{encode, flyte_env, sidecar_run, RESOURCES};
    use serde_json::json;

    fn secret(group: &str, version: &str) -> Secret {
        Secret {
            group: group.into(),
            group_version: version.into(),
            ..Secret::default()
        }
    }

    /// Upstream's `TestGCPSecretManagerInjector_Inject`, the init container part.
    #[test]
    fn pull_container_is_upstreams() {
        let pull = pull(&SidecarSettings::default(), &secret("TestSecret", "2"));
        assert_eq!(
            Value::Object(pull.container),
            json!({
                "image": "gcr.io/google.com/cloudsdktool/cloud-sdk:alpine",
                "command": [
                    "sh",
                    "-ec",
                    "gcloud secrets versions access TestSecret/versions/2 --out-file=/etc/flyte/secrets/testsecret/2 || gcloud secrets versions access 2 --secret=TestSecret --out-file=/etc/flyte/secrets/testsecret/2; chmod +rX /etc/flyte/secrets/testsecret /etc/flyte/secrets/testsecret/2",
                ],
                "resources": {
                    "limits": {"cpu": "200m", "memory": "500Mi"},
                    "requests": {"cpu": "200m", "memory": "500Mi"},
                },
                "volumeMounts": [{"name": "gcp-secret-vol", "mountPath": "/etc/flyte/secrets"}],
            })
        );
        assert_eq!(pull.file, "/etc/flyte/secrets/testsecret/2");
        assert_eq!(pull.source, "TestSecret/versions/2");
    }

    #[test]
    fn resource_names_and_aliases() {
        let pull = pull(
            &SidecarSettings::default(),
            &secret("projects/My-Proj/secrets/API_Key", "latest"),
        );
        assert_eq!(
            pull.file,
            "/etc/flyte/secrets/projects/my-proj/secrets/api_key/latest"
        );
    }

    #[test]
    fn refusals() {
        let mut problems = Vec::new();
        check(
            &Secret {
                mount_requirement: MountRequirement::EnvVar,
                ..secret("x; rm -rf /", "-1")
            },
            &mut problems,
        );
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert_eq!(
            problems[0],
            "mount_requirement ENV_VAR is not supported by the GCP secret manager (use FILE or ANY)"
        );
        assert!(
            problems[1].starts_with("group \"x; rm -rf /\" cannot be used in the gcloud command")
        );
        assert!(
            problems[2].starts_with("group_version \"-1\" cannot be used in the gcloud command")
        );
        let mut none = Vec::new();
        check(
            &secret("projects/p-1/secrets/my_secret", "latest"),
            &mut none,
        );
        assert!(none.is_empty(), "{none:?}");
    }

    /// flytepropeller's `TestGCPSecretManagerInjector_Inject`, whole pod.
    #[test]
    fn gcp_is_upstreams_test() {
        let mut p = json!({
            "metadata": {"labels": {"inject-flyte-secrets": "true"}, "annotations": {
                "flyte.secrets/s0": encode("group: 'TestSecret' group_version: '2'")}},
            "spec": {"containers": []}
        });
        let (changed, findings) = sidecar_run("gcp", &mut p);
        assert!(changed && findings == Findings::default(), "{findings:?}");
        let resources: Value = serde_json::from_str(RESOURCES).unwrap();
        assert_eq!(
            p["spec"],
            json!({
                "volumes": [{"name": "gcp-secret-vol", "emptyDir": {"medium": "Memory"}}],
                "initContainers": [{
                    "name": "gcp-pull-secret-0",
                    "image": "gcr.io/google.com/cloudsdktool/cloud-sdk:alpine",
                    "command": ["sh", "-ec", "gcloud secrets versions access TestSecret/versions/2 --out-file=/etc/flyte/secrets/testsecret/2 || gcloud secrets versions access 2 --secret=TestSecret --out-file=/etc/flyte/secrets/testsecret/2; chmod +rX /etc/flyte/secrets/testsecret /etc/flyte/secrets/testsecret/2"],
                    "env": flyte_env(&[]),
                    "volumeMounts": [{"name": "gcp-secret-vol", "mountPath": "/etc/flyte/secrets"}],
                    "resources": resources,
                }],
                "containers": [],
            })
        );
        let again = p.clone();
        assert_eq!(sidecar_run("gcp", &mut p), (false, Findings::default()));
        assert_eq!(p, again);
    }
}
