//! The AWS secret manager (flytepropeller v1.16.8 `aws_secret_manager.go`):
//! AWS Secrets Manager secrets pulled by AWS's sidecar image, run as one
//! init container per secret (see [`super::sidecar`] for what is shared with
//! GCP).
//!
//! Per secret (group and key required, `FILE` or `ANY`; `ENV_VAR` is refused):
//! - volume `aws-secret-vol`, `emptyDir {medium: Memory}`, once;
//! - init container `aws-pull-secret-<n>`, image `secrets.aws.sidecarImage`
//!   (`docker.io/amazon/aws-secrets-manager-secret-sidecar:v0.1.4`),
//!   resources `secrets.aws.resources`, no command, env `SECRET_ARN =
//!   <group without trailing ':'>:<key without leading ':'>` and
//!   `SECRET_FILENAME = /<lower(group)>/<lower(key)>`, the volume mounted at
//!   `/tmp` (the sidecar writes `/tmp/<SECRET_FILENAME>`);
//! - every container gets the volume read-only at `/etc/flyte/secrets`, so the
//!   file is `/etc/flyte/secrets/<lower(group)>/<lower(key)>`, which
//!   `env_var` holds when set.
//!
//! Paths are Go's `filepath.Join` (cleaned) of the lower-cased parts. Beyond
//! upstream, refused: a group or key outside ASCII (Go lower-cases with
//! Unicode rules; AWS ARNs are ASCII) or with a `..` segment (the sidecar's
//! file and the path `env_var` holds would differ).

use serde_json::Value;

use super::sidecar::{container, join, Manager, Pull};
use super::{MountRequirement, Secret};
use crate::names::flyte::{
    AWS_ARN_ENV, AWS_FILENAME_ENV, AWS_INIT_CONTAINER_PREFIX, AWS_SIDECAR_MOUNT_PATH, AWS_VOLUME,
    SECRETS_DIR,
};
use crate::podedit::env_value;
use crate::settings::{SidecarSettings, AWS_SIDECAR_IMAGE};

pub(super) const MANAGER: Manager = Manager {
    name: "AWS",
    volume: AWS_VOLUME,
    init_prefix: AWS_INIT_CONTAINER_PREFIX,
    identity,
};

/// What this manager cannot serve in a secret (besides the shared checks).
pub(super) fn check(secret: &Secret, problems: &mut Vec<String>) {
    if secret.mount_requirement == MountRequirement::EnvVar {
        problems.push(super::env_var_refused("AWS"));
    }
    for (field, value) in [("group", &secret.group), ("key", &secret.key)] {
        if !value.is_ascii() {
            problems.push(format!(
                "{field} {value:?} is not ASCII (AWS secret ARNs are; the file name is its lower case)"
            ));
        }
        if value.split('/').any(|segment| segment == "..") {
            problems.push(format!(
                "{field} {value:?} has a \"..\" path segment (the file would not be under {SECRETS_DIR})"
            ));
        }
    }
}

/// `createAWSSidecarContainer`, without the name.
pub(super) fn pull(settings: &SidecarSettings, secret: &Secret) -> Pull {
    let (group, key) = (&secret.group, &secret.key);
    let arn = format!(
        "{}:{}",
        group.trim_end_matches(':'),
        key.trim_start_matches(':')
    );
    let (lower_group, lower_key) = (group.to_ascii_lowercase(), key.to_ascii_lowercase());
    let filename = join(&["/", &lower_group, &lower_key]);
    let mut container = container(
        settings,
        AWS_SIDECAR_IMAGE,
        AWS_VOLUME,
        AWS_SIDECAR_MOUNT_PATH,
    );
    container.insert(
        "env".to_string(),
        Value::Array(vec![
            env_value(AWS_ARN_ENV, &arn),
            env_value(AWS_FILENAME_ENV, &filename),
        ]),
    );
    Pull {
        container,
        file: join(&[SECRETS_DIR, &lower_group, &lower_key]),
        source: arn,
    }
}

/// The first two env entries of an init container, when they are
/// `SECRET_ARN` and `SECRET_FILENAME` (as in every pull container).
fn identity(container: &Value) -> Option<Value> {
    let env = container.get("env")?.as_array()?.get(..2)?;
    let name = |i: usize| env.get(i).and_then(|e| e.get("name"));
    (name(0)? == AWS_ARN_ENV && name(1)? == AWS_FILENAME_ENV).then(|| Value::Array(env.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::Findings;
    use crate::secrets::test_support::{encode, flyte_env, sidecar_run, RESOURCES};
    use serde_json::json;

    fn secret(group: &str, key: &str) -> Secret {
        Secret {
            group: group.into(),
            key: key.into(),
            ..Secret::default()
        }
    }

    /// Upstream's `TestAWSSecretManagerInjector_Inject`, the init container part.
    #[test]
    fn pull_container_is_upstreams() {
        let pull = pull(&SidecarSettings::default(), &secret("arn", "name"));
        assert_eq!(
            Value::Object(pull.container),
            json!({
                "image": "docker.io/amazon/aws-secrets-manager-secret-sidecar:v0.1.4",
                "env": [
                    {"name": "SECRET_ARN", "value": "arn:name"},
                    {"name": "SECRET_FILENAME", "value": "/arn/name"},
                ],
                "resources": {
                    "limits": {"cpu": "200m", "memory": "500Mi"},
                    "requests": {"cpu": "200m", "memory": "500Mi"},
                },
                "volumeMounts": [{"name": "aws-secret-vol", "mountPath": "/tmp"}],
            })
        );
        assert_eq!(pull.file, "/etc/flyte/secrets/arn/name");
    }

    #[test]
    fn arn_trims_colons_and_keeps_case_paths_are_lower_case() {
        let s = secret(
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:Prod/DB-AbCdEf::",
            ":::Password",
        );
        let pull = pull(&SidecarSettings::default(), &s);
        assert_eq!(
            pull.source,
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:Prod/DB-AbCdEf:Password"
        );
        assert_eq!(
            pull.file,
            "/etc/flyte/secrets/arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-abcdef::/:::password"
        );
        let id = identity(&Value::Object(pull.container)).unwrap();
        assert_eq!(
            id,
            json!([
                {"name": "SECRET_ARN", "value": "arn:aws:secretsmanager:us-east-1:123456789012:secret:Prod/DB-AbCdEf:Password"},
                {"name": "SECRET_FILENAME", "value": "/arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-abcdef::/:::password"}
            ])
        );
        assert_eq!(
            identity(&json!({"env": [{"name": "SECRET_ARN", "value": "x"}]})),
            None
        );
    }

    #[test]
    fn refusals() {
        let mut problems = Vec::new();
        check(
            &Secret {
                mount_requirement: MountRequirement::EnvVar,
                ..secret("é", "../k")
            },
            &mut problems,
        );
        assert_eq!(
            problems,
            [
                "mount_requirement ENV_VAR is not supported by the AWS secret manager (use FILE or ANY)",
                "group \"é\" is not ASCII (AWS secret ARNs are; the file name is its lower case)",
                "key \"../k\" has a \"..\" path segment (the file would not be under /etc/flyte/secrets)",
            ]
        );
    }

    /// flytepropeller's `TestAWSSecretManagerInjector_Inject`, whole pod.
    #[test]
    fn aws_is_upstreams_test() {
        let mut p = json!({
            "metadata": {"labels": {"inject-flyte-secrets": "true"}, "annotations": {
                "flyte.secrets/s0": encode("group: 'arn' key: 'name' env_var: 'MY_SECRET_VAR'")}},
            "spec": {"containers": [{"name": "container1"}]}
        });
        let (changed, findings) = sidecar_run("aws", &mut p);
        assert!(changed && findings == Findings::default(), "{findings:?}");
        let resources: Value = serde_json::from_str(RESOURCES).unwrap();
        let env = flyte_env(&[("MY_SECRET_VAR", "/etc/flyte/secrets/arn/name")]);
        let mut sidecar_env = vec![
            json!({"name": "SECRET_ARN", "value": "arn:name"}),
            json!({"name": "SECRET_FILENAME", "value": "/arn/name"}),
        ];
        sidecar_env.extend(env.as_array().unwrap().iter().cloned());
        assert_eq!(
            p["spec"],
            json!({
                "volumes": [{"name": "aws-secret-vol", "emptyDir": {"medium": "Memory"}}],
                "initContainers": [{
                    "name": "aws-pull-secret-0",
                    "image": "docker.io/amazon/aws-secrets-manager-secret-sidecar:v0.1.4",
                    "env": sidecar_env,
                    "volumeMounts": [{"name": "aws-secret-vol", "mountPath": "/tmp"}],
                    "resources": resources,
                }],
                "containers": [{
                    "name": "container1",
                    "env": env,
                    "volumeMounts": [{"name": "aws-secret-vol", "mountPath": "/etc/flyte/secrets", "readOnly": true}],
                }],
            })
        );
        let again = p.clone();
        assert_eq!(sidecar_run("aws", &mut p), (false, Findings::default()));
        assert_eq!(p, again);
    }
}
