//! [`Settings::validate`]: the checks serde cannot make (bounds, formats, paths, names that
//! would clash with a built-in layout), every problem reported at once by its camelCase path.

use super::*;
use crate::names::{flyte, BUILTIN_ENV_NAMES, OWNED_VOLUMES};

impl Settings {
    /// Checks the values serde cannot: bounds, formats, paths.
    pub fn validate(&self) -> Result<(), String> {
        let mut errors = Vec::new();
        let aws = &self.aws;
        check_prefix("aws.annotationPrefix", &aws.annotation_prefix, &mut errors);
        check_non_empty("aws.audience", &aws.audience, &mut errors);
        check_expiration(
            "aws.tokenExpirationSeconds",
            aws.token_expiration_seconds,
            &mut errors,
        );
        check_mount_path("aws.tokenMountPath", &aws.token_mount_path, &mut errors);
        check_file_mode("aws.tokenDefaultMode", aws.token_default_mode, &mut errors);
        self.validate_container_credentials(&mut errors);
        if let Some(region) = &aws.region {
            let valid = !region.is_empty()
                && region.len() <= 64
                && region
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !valid {
                errors.push(format!(
                    "aws.region: {region:?} is not an AWS region name (expected e.g. \"eu-west-1\")"
                ));
            }
        }
        check_non_empty("stackit.audience", &self.stackit.audience, &mut errors);
        check_expiration(
            "stackit.tokenExpirationSeconds",
            self.stackit.token_expiration_seconds,
            &mut errors,
        );
        check_file_mode(
            "stackit.tokenDefaultMode",
            self.stackit.token_default_mode,
            &mut errors,
        );
        for (i, a) in aws.pod_identity_associations.iter().enumerate() {
            let field = format!("aws.podIdentityAssociations[{i}]");
            check_dns_label(&format!("{field}.namespace"), &a.namespace, &mut errors);
            check_dns_subdomain(
                &format!("{field}.serviceAccount"),
                &a.service_account,
                &mut errors,
            );
        }
        self.validate_azure(&mut errors);
        self.validate_gcp(&mut errors);
        for (i, overlay) in self.service_accounts.iter().enumerate() {
            let field = format!("serviceAccounts[{i}]");
            if overlay.namespace != "*" {
                check_dns_label(
                    &format!("{field}.namespace"),
                    &overlay.namespace,
                    &mut errors,
                );
            }
            check_dns_subdomain(&format!("{field}.name"), &overlay.name, &mut errors);
            for key in overlay.annotations.keys() {
                if !is_qualified_key(key) {
                    errors.push(format!(
                        "{field}.annotations: {key:?} is not a valid annotation key ([prefix/]name)"
                    ));
                }
            }
        }
        self.validate_custom_providers(&mut errors);
        self.validate_identity(&mut errors);
        self.validate_secrets(&mut errors);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    /// EKS Pod Identity's flags: the webhook takes any string; we refuse what would give pods
    /// an unusable endpoint or a token path the API server refuses.
    fn validate_container_credentials(&self, errors: &mut Vec<String>) {
        let aws = &self.aws;
        let field = "aws.containerCredentials";
        if !is_http_url(&aws.container_credentials_full_uri) {
            errors.push(format!(
                "{field}FullUri: {:?} is not an absolute http:// or https:// URL (expected e.g. \"http://169.254.170.23/v1/credentials\", or \"http://[fd00:ec2::23]/v1/credentials\" on IPv6)",
                aws.container_credentials_full_uri
            ));
        }
        check_non_empty(
            "aws.containerCredentialsAudience",
            &aws.container_credentials_audience,
            errors,
        );
        check_mount_path(
            "aws.containerCredentialsTokenMountPath",
            &aws.container_credentials_token_mount_path,
            errors,
        );
        check_dns_label(
            "aws.containerCredentialsTokenVolumeName",
            &aws.container_credentials_token_volume_name,
            errors,
        );
        check_file_path(
            "aws.containerCredentialsTokenPath",
            &aws.container_credentials_token_path,
            errors,
        );
        let volume = &aws.container_credentials_token_volume_name;
        if let Some(builtin) = volume_clash(&self.builtin_volumes(false), volume) {
            errors.push(format!(
                "{field}TokenVolumeName: {volume:?} clashes with the built-in volume {builtin:?}"
            ));
        }
        let path = &aws.container_credentials_token_mount_path;
        if let Some(builtin) = path_clash(&self.builtin_mount_paths(false), path) {
            errors.push(format!(
                "{field}TokenMountPath: {path:?} clashes with the built-in mount path {builtin:?}"
            ));
        }
    }

    fn validate_azure(&self, errors: &mut Vec<String>) {
        let azure = &self.azure;
        check_non_empty("azure.audience", &azure.audience, errors);
        check_file_mode("azure.tokenDefaultMode", azure.token_default_mode, errors);
        if !(azure.authority_host.starts_with("https://") && azure.authority_host.len() > 8) {
            errors.push(format!(
                "azure.authorityHost: {:?} is not an https:// URL",
                azure.authority_host
            ));
        }
        if let Some(tenant) = &azure.tenant_id {
            if tenant.trim().is_empty() {
                errors.push("azure.tenantId: must not be empty when set".to_string());
            }
        }
    }

    fn validate_gcp(&self, errors: &mut Vec<String>) {
        let gcp = &self.gcp;
        check_prefix("gcp.annotationPrefix", &gcp.annotation_prefix, errors);
        check_file_mode("gcp.tokenDefaultMode", gcp.token_default_mode, errors);
        check_non_empty("gcp.audience", &gcp.audience, errors);
        if !(GCP_MIN_TOKEN_EXPIRATION_SECONDS..=MAX_TOKEN_EXPIRATION_SECONDS)
            .contains(&gcp.token_expiration_seconds)
        {
            errors.push(format!(
                "gcp.tokenExpirationSeconds: {} is out of range, expected {GCP_MIN_TOKEN_EXPIRATION_SECONDS}..={MAX_TOKEN_EXPIRATION_SECONDS} seconds",
                gcp.token_expiration_seconds
            ));
        }
        if let Some(region) = &gcp.region {
            if region.trim().is_empty() {
                errors.push("gcp.region: must not be empty when set".to_string());
            }
        }
    }

    fn validate_secrets(&self, errors: &mut Vec<String>) {
        let secrets = &self.secrets;
        check_non_empty("secrets.vault.role", &secrets.vault.role, errors);
        if let (Some(value), None) = (
            &secrets.vault.kv_version.0,
            secrets.vault.kv_version.parse(),
        ) {
            errors.push(format!(
                "secrets.vault.kvVersion: {value} is not \"1\" or \"2\" (the KV secrets engine version)"
            ));
        }
        for key in secrets.vault.annotations.keys() {
            if !is_qualified_key(key) {
                errors.push(format!(
                    "secrets.vault.annotations: {key:?} is not a valid annotation key ([prefix/]name)"
                ));
            } else if key.starts_with(flyte::ANNOTATION_PREFIX) {
                errors.push(format!(
                    "secrets.vault.annotations: {key:?} would be read as a Flyte secret request (keys starting with {:?} are)",
                    flyte::ANNOTATION_PREFIX
                ));
            }
        }
        check_sidecar("secrets.aws", &secrets.aws, errors);
        check_sidecar("secrets.gcp", &secrets.gcp, errors);
    }

    fn validate_custom_providers(&self, errors: &mut Vec<String>) {
        let mut names = Vec::new();
        let mut volumes: Vec<&str> = Vec::new();
        let mut paths: Vec<&str> = Vec::new();
        for (i, p) in self.custom_providers.iter().enumerate() {
            let field = format!("customProviders[{i}]");
            check_dns_label(&format!("{field}.name"), &p.name, errors);
            if names.contains(&p.name.as_str()) {
                errors.push(format!(
                    "{field}.name: {:?} is used by another custom provider",
                    p.name
                ));
            }
            names.push(&p.name);
            if !is_qualified_key(&p.service_account_annotation) {
                errors.push(format!(
                    "{field}.serviceAccountAnnotation: {:?} is not a valid annotation key ([prefix/]name)",
                    p.service_account_annotation
                ));
            }
            check_non_empty(&format!("{field}.audience"), &p.audience, errors);
            check_expiration(
                &format!("{field}.tokenExpirationSeconds"),
                p.token_expiration_seconds,
                errors,
            );
            check_mount_path(&format!("{field}.mountPath"), &p.mount_path, errors);
            check_dns_label(&format!("{field}.volumeName"), &p.volume_name, errors);
            if let Some(builtin) = volume_clash(&self.builtin_volumes(true), &p.volume_name) {
                errors.push(format!(
                    "{field}.volumeName: {:?} clashes with the built-in volume {builtin:?}",
                    p.volume_name
                ));
            } else if volumes.contains(&p.volume_name.as_str()) {
                errors.push(format!(
                    "{field}.volumeName: {:?} is used by another custom provider",
                    p.volume_name
                ));
            }
            volumes.push(&p.volume_name);
            let path = p.mount_path.trim_end_matches('/');
            if let Some(builtin) = path_clash(&self.builtin_mount_paths(true), path) {
                errors.push(format!(
                    "{field}.mountPath: {:?} clashes with the built-in mount path {builtin:?}",
                    p.mount_path
                ));
            } else if paths.iter().any(|other| paths_overlap(other, path)) {
                errors.push(format!(
                    "{field}.mountPath: {:?} overlaps another custom provider's",
                    p.mount_path
                ));
            }
            paths.push(path);
            check_file_path(&format!("{field}.tokenPath"), &p.token_path, errors);
            check_file_mode(
                &format!("{field}.tokenDefaultMode"),
                p.token_default_mode,
                errors,
            );
            let mut env_names = Vec::new();
            for (j, env) in p.env.iter().enumerate() {
                let env_field = format!("{field}.env[{j}]");
                if !is_env_name(&env.name) {
                    errors.push(format!(
                        "{env_field}.name: {:?} is not a valid environment variable name (letters, digits, '_', '-', '.', not starting with a digit)",
                        env.name
                    ));
                }
                if env_names.contains(&env.name.as_str()) {
                    errors.push(format!("{env_field}.name: {:?} is set twice", env.name));
                }
                env_names.push(&env.name);
                match (&env.value, &env.value_from) {
                    (Some(value), None) => {
                        if let Err(problem) = check_template(value) {
                            errors.push(format!("{env_field}.value: {problem}"));
                        }
                    }
                    (None, Some(serde_json::Value::Object(_))) => {}
                    (None, Some(_)) => errors.push(format!(
                        "{env_field}.valueFrom: must be an object (e.g. secretKeyRef)"
                    )),
                    _ => errors.push(format!(
                        "{env_field}: set exactly one of value and valueFrom"
                    )),
                }
            }
        }
    }

    fn validate_identity(&self, errors: &mut Vec<String>) {
        let id = &self.identity_injection;
        for (list, field, is_valid, what) in [
            (
                &id.annotations,
                "identityInjection.annotations",
                is_qualified_key as fn(&str) -> bool,
                "an annotation key ([prefix/]name)",
            ),
            (
                &id.environment_variables,
                "identityInjection.environmentVariables",
                is_env_name as fn(&str) -> bool,
                "an environment variable name",
            ),
        ] {
            let mut seen = Vec::new();
            for (i, target) in list.iter().enumerate() {
                if target.claim_name.trim().is_empty() {
                    errors.push(format!("{field}[{i}].claimName: must not be empty"));
                }
                if !is_valid(&target.target_key) {
                    errors.push(format!(
                        "{field}[{i}].targetKey: {:?} is not {what}",
                        target.target_key
                    ));
                }
                if seen.contains(&target.target_key.as_str()) {
                    errors.push(format!(
                        "{field}[{i}].targetKey: {:?} is set twice",
                        target.target_key
                    ));
                }
                seen.push(&target.target_key);
                if let Some(owner) = self.managed_elsewhere(field, &target.target_key) {
                    errors.push(format!(
                        "{field}[{i}].targetKey: {:?} is written by {owner}; caller identity cannot manage it",
                        target.target_key
                    ));
                }
            }
        }
        for (claim, source) in &id.claim_mappings {
            let valid = matches!(source.as_str(), "username" | "uid" | "groups")
                || source
                    .strip_prefix("extra.")
                    .is_some_and(|key| !key.is_empty());
            if !valid {
                errors.push(format!(
                    "identityInjection.claimMappings.{claim}: {source:?} is not one of \"username\", \"uid\", \"groups\", \"extra.<key>\""
                ));
            }
        }
        for (i, binding) in self.identity_bindings.iter().enumerate() {
            let field = format!("identityBindings[{i}]");
            if binding.claim.trim().is_empty() {
                errors.push(format!("{field}.claim: must not be empty"));
            }
            if binding.values.is_empty() || binding.values.iter().any(|v| v.is_empty()) {
                errors.push(format!(
                    "{field}.values: must be a non-empty list of non-empty values"
                ));
            }
            if binding.annotations.is_empty() {
                errors.push(format!("{field}.annotations: must not be empty"));
            }
            for key in binding.annotations.keys() {
                if !is_qualified_key(key) {
                    errors.push(format!(
                        "{field}.annotations: {key:?} is not a valid annotation key ([prefix/]name)"
                    ));
                }
            }
        }
    }

    /// Who else writes the env var or annotation `key`, if anyone: caller
    /// identity removing or overwriting it would fight that writer, and a
    /// second pass would change the pod again.
    fn managed_elsewhere(&self, field: &str, key: &str) -> Option<String> {
        if field.ends_with("environmentVariables") {
            if BUILTIN_ENV_NAMES.contains(&key) || key.starts_with(flyte::ENV_PREFIX) {
                return Some("a built-in provider".to_string());
            }
            return self
                .custom_providers
                .iter()
                .find(|p| p.env.iter().any(|e| e.name == key))
                .map(|p| format!("custom provider {:?}", p.name));
        }
        let gcp_credentials = format!("{}/external-credentials-json", self.gcp.annotation_prefix);
        if key == gcp_credentials {
            return Some("GCP workload identity federation".to_string());
        }
        let vault = &self.secrets;
        let vault_writes = vault.enabled
            && vault.manager == SecretManager::Vault
            && (key.starts_with(flyte::VAULT_ANNOTATION_PREFIX)
                || vault.vault.annotations.contains_key(key));
        vault_writes.then(|| "the Flyte Vault secret manager".to_string())
    }

    /// Volume names (or name prefixes) the built-in providers and the Flyte secret managers use
    /// with these settings; EKS Pod Identity's only `with_pod_identity` (it is not checked
    /// against itself).
    fn builtin_volumes(&self, with_pod_identity: bool) -> Vec<&str> {
        let pod_identity = crate::names::AWS_POD_IDENTITY.volume_name;
        let mut names: Vec<&str> = OWNED_VOLUMES
            .iter()
            .map(|l| l.volume_name)
            .filter(|v| *v != pod_identity)
            .collect();
        if with_pod_identity {
            names.push(&self.aws.container_credentials_token_volume_name);
        }
        names
    }

    /// Mount paths the built-in providers use with these settings, as
    /// [`Settings::builtin_volumes`].
    fn builtin_mount_paths(&self, with_pod_identity: bool) -> Vec<&str> {
        let pod_identity = crate::names::AWS_POD_IDENTITY.mount_path;
        let mut paths = vec![self.aws.token_mount_path.trim_end_matches('/')];
        paths.extend(
            OWNED_VOLUMES
                .iter()
                .map(|l| l.mount_path)
                .filter(|p| *p != pod_identity),
        );
        if with_pod_identity {
            paths.push(
                self.aws
                    .container_credentials_token_mount_path
                    .trim_end_matches('/'),
            );
        }
        paths
    }
}

/// The built-in volume `name` would shadow: one it equals or starts with (Azure v1.6's volume
/// name is a prefix).
fn volume_clash<'a>(builtin: &[&'a str], name: &str) -> Option<&'a str> {
    builtin.iter().copied().find(|v| name.starts_with(v))
}

/// The built-in mount path `path` would shadow or be shadowed by.
fn path_clash<'a>(builtin: &[&'a str], path: &str) -> Option<&'a str> {
    let path = path.trim_end_matches('/');
    builtin.iter().copied().find(|b| paths_overlap(b, path))
}

/// One path equals or contains the other (a mount would shadow the other's files).
fn paths_overlap(a: &str, b: &str) -> bool {
    let within = |inner: &str, outer: &str| {
        inner == outer
            || inner
                .strip_prefix(outer)
                .is_some_and(|rest| rest.starts_with('/'))
    };
    within(a, b) || within(b, a)
}

/// `{sidecarImage, resources}` of the AWS or GCP manager, every problem by
/// its path; unknown fields are refused as serde refuses them elsewhere.
fn check_sidecar(field: &str, settings: &SidecarSettings, errors: &mut Vec<String>) {
    use serde_json::Value;
    fn bad(errors: &mut Vec<String>, at: &str, what: &Value, expected: &str) {
        errors.push(format!("{at}: {what} is not {expected}"));
    }
    fn unknown(errors: &mut Vec<String>, at: &str, expected: &str) {
        errors.push(format!("unknown field `{at}`, expected {expected}"));
    }
    let Some(value) = settings.0.as_ref() else {
        return;
    };
    let Some(map) = value.as_object() else {
        return bad(errors, field, value, "an object {sidecarImage, resources}");
    };
    for (key, value) in map {
        let at = format!("{field}.{key}");
        match (key.as_str(), value) {
            (_, Value::Null) => {}
            ("sidecarImage", Value::String(image))
                if !image.is_empty()
                    && !image.chars().any(|c| c.is_whitespace() || c.is_control()) => {}
            ("sidecarImage", _) => bad(
                errors,
                &at,
                value,
                "a container image reference (a non-empty string without spaces)",
            ),
            ("resources", Value::Object(lists)) => {
                for (list_name, list) in lists {
                    let at = format!("{at}.{list_name}");
                    if !matches!(list_name.as_str(), "requests" | "limits") {
                        unknown(errors, &at, "`requests` or `limits`");
                        continue;
                    }
                    let Some(list) = list.as_object() else {
                        if !list.is_null() {
                            bad(errors, &at, list, "a map of resource name to quantity");
                        }
                        continue;
                    };
                    for (name, quantity) in list {
                        // The API server's rule for container resources:
                        // a standard name, or a qualified one with a prefix.
                        let standard =
                            matches!(name.as_str(), "cpu" | "memory" | "ephemeral-storage")
                                || name.starts_with("hugepages-");
                        if !is_qualified_key(name) || !(standard || name.contains('/')) {
                            errors.push(format!(
                                "{at}: {name:?} is not a container resource name (\"cpu\", \"memory\", \"ephemeral-storage\", \"hugepages-<size>\" or a prefixed name such as \"nvidia.com/gpu\")"
                            ));
                        }
                        if !is_quantity(quantity) {
                            bad(
                                errors,
                                &format!("{at}.{name}"),
                                quantity,
                                "a Kubernetes quantity (a non-negative number or a string such as \"200m\", \"500Mi\", \"1e3\")",
                            );
                        }
                    }
                }
            }
            ("resources", _) => bad(errors, &at, value, "an object {requests, limits}"),
            _ => unknown(errors, &at, "`sidecarImage` or `resources`"),
        }
    }
}

/// A Kubernetes resource quantity (`resource.ParseQuantity`) that is not
/// negative: a JSON number, or a string `<number><suffix>` where the number
/// is digits with an optional `.` and fraction (`+` allowed) and the suffix
/// is empty, `m`, `k`, `M`, `G`, `T`, `P`, `E`, `Ki` .. `Ei`, or `e`/`E` and
/// a signed integer.
fn is_quantity(value: &serde_json::Value) -> bool {
    let text = match value {
        serde_json::Value::Number(n) => return n.as_f64().is_some_and(|f| f >= 0.0),
        serde_json::Value::String(text) => text.as_str(),
        _ => return false,
    };
    let text = text.strip_prefix('+').unwrap_or(text);
    let digits_end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(digits_end);
    let mut parts = number.split('.');
    let whole = parts.next().unwrap_or("");
    let fraction = parts.next();
    if parts.next().is_some() || (whole.is_empty() && fraction.is_none_or(str::is_empty)) {
        return false;
    }
    if matches!(
        suffix,
        "" | "m" | "k" | "M" | "G" | "T" | "P" | "E" | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei"
    ) {
        return true;
    }
    let Some(exponent) = suffix.strip_prefix(['e', 'E']) else {
        return false;
    };
    let exponent = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
    !exponent.is_empty() && exponent.bytes().all(|b| b.is_ascii_digit())
}

/// Kubernetes' env var name rule: `[-._a-zA-Z][-._a-zA-Z0-9]*`.
pub fn is_env_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    match bytes.next() {
        Some(first) if first.is_ascii_alphabetic() || b"-._".contains(&first) => {}
        _ => return false,
    }
    bytes.all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
}

/// Every `{...}` in a template names a known placeholder.
fn check_template(template: &str) -> Result<(), String> {
    let mut rest = template;
    loop {
        let open = rest.find('{');
        let close = rest.find('}');
        match (open, close) {
            (None, None) => return Ok(()),
            (_, Some(c)) if open.is_none_or(|o| c < o) => {
                return Err(format!("{template:?} has an unmatched \"}}\""));
            }
            _ => {}
        }
        let Some((_, after)) = rest.split_once('{') else {
            return Ok(());
        };
        let Some((name, tail)) = after.split_once('}') else {
            return Err(format!("{template:?} has an unclosed \"{{\""));
        };
        if !CUSTOM_PLACEHOLDERS.contains(&name) {
            return Err(format!(
                "{template:?} uses unknown placeholder {{{name}}}, expected one of {{value}}, {{tokenFile}}, {{namespace}}, {{serviceAccount}}"
            ));
        }
        rest = tail;
    }
}

/// A label or annotation key: optional DNS-subdomain prefix, `/`, and a
/// name of at most 63 alphanumerics, `-`, `_`, `.`, starting and ending alphanumeric.
pub fn is_qualified_key(key: &str) -> bool {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    let prefix_ok = prefix.is_none_or(|p| {
        let mut errors = Vec::new();
        check_prefix("", p, &mut errors);
        errors.is_empty()
    });
    name_ok && prefix_ok
}

fn check_dns_label(field: &str, value: &str, errors: &mut Vec<String>) {
    let valid = !value.is_empty()
        && value.len() <= 63
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    if !valid {
        errors.push(format!(
            "{field}: {value:?} is not a DNS label (lowercase letters, digits, '-', at most 63)"
        ));
    }
}

fn check_dns_subdomain(field: &str, value: &str, errors: &mut Vec<String>) {
    let mut inner = Vec::new();
    check_prefix(field, value, &mut inner);
    if !inner.is_empty() {
        errors.push(format!(
            "{field}: {value:?} is not a valid Kubernetes object name"
        ));
    }
}

fn check_non_empty(field: &str, value: &str, errors: &mut Vec<String>) {
    if value.trim().is_empty() {
        errors.push(format!("{field}: must not be empty"));
    }
}

fn check_expiration(field: &str, value: i64, errors: &mut Vec<String>) {
    if !(MIN_TOKEN_EXPIRATION_SECONDS..=MAX_TOKEN_EXPIRATION_SECONDS).contains(&value) {
        errors.push(format!(
            "{field}: {value} is out of range, expected {MIN_TOKEN_EXPIRATION_SECONDS}..={MAX_TOKEN_EXPIRATION_SECONDS} seconds (the API server refuses other projected token lifetimes)"
        ));
    }
}

/// An annotation prefix is a DNS subdomain (the part of a key before `/`).
fn check_prefix(field: &str, value: &str, errors: &mut Vec<String>) {
    let valid = !value.is_empty()
        && value.len() <= 253
        && value.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if !valid {
        errors.push(format!(
            "{field}: {value:?} is not a DNS subdomain (expected e.g. \"eks.amazonaws.com\")"
        ));
    }
}

/// A file inside a volume: relative, without empty or `..` parts.
fn check_file_path(field: &str, value: &str, errors: &mut Vec<String>) {
    let valid = !value.is_empty()
        && !value.starts_with('/')
        && !value.ends_with('/')
        && !value.split('/').any(|s| s.is_empty() || s == "..");
    if !valid {
        errors.push(format!(
            "{field}: {value:?} is not a relative file path without \"..\""
        ));
    }
}

/// A volume's `defaultMode`: the API server accepts 0 to 0o777 (511).
fn check_file_mode(field: &str, value: Option<i64>, errors: &mut Vec<String>) {
    if let Some(mode) = value {
        if !(0..=0o777).contains(&mode) {
            errors.push(format!(
                "{field}: {mode} is not a file mode, expected 0..=511 (0o777; YAML 0440 is 288)"
            ));
        }
    }
}

/// `http://` or `https://`, a host (a name, an IPv4 address or a bracketed IPv6 address, with an
/// optional port), then an optional path; no spaces or control characters.
fn is_http_url(value: &str) -> bool {
    let Some(rest) = value
        .strip_prefix("http://")
        .or_else(|| value.strip_prefix("https://"))
    else {
        return false;
    };
    if value.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return false;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(bracketed) => match bracketed.split_once(']') {
            Some((v6, port)) if !v6.is_empty() && v6.contains(':') => {
                return v6
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
                    && (port.is_empty() || port.strip_prefix(':').is_some_and(is_port));
            }
            _ => return false,
        },
        None => match authority.split_once(':') {
            Some((host, port)) if is_port(port) => host,
            Some(_) => return false,
            None => authority,
        },
    };
    !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// A port number, 1 to 65535, in digits.
fn is_port(digits: &str) -> bool {
    digits.bytes().all(|b| b.is_ascii_digit()) && digits.parse::<u16>().is_ok_and(|p| p > 0)
}

fn check_mount_path(field: &str, value: &str, errors: &mut Vec<String>) {
    let valid = value.starts_with('/')
        && value.len() > 1
        && !value.ends_with('/')
        && !value.contains(':')
        && !value.split('/').any(|part| part == "..");
    if !valid {
        errors.push(format!(
            "{field}: {value:?} is not an absolute directory path without \"..\" or a trailing \"/\""
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn custom(overrides: &str) -> String {
        format!(
            r#"{{"customProviders":[{{"name":"vault","serviceAccountAnnotation":"vault.example.com/role","audience":"vault","mountPath":"/var/run/secrets/vault","volumeName":"vault-token"{overrides}}}]}}"#
        )
    }

    #[test]
    fn a_custom_provider_with_defaults_is_valid() {
        let s = Settings::from_json(custom(r#","env":[{"name":"VAULT_ROLE","value":"{value}"},{"name":"X","valueFrom":{"secretKeyRef":{"name":"a","key":"b"}}}]"#).as_bytes()).unwrap();
        assert_eq!(s.custom_providers[0].token_path, "token");
        assert_eq!(s.custom_providers[0].token_expiration_seconds, 3600);
    }

    #[rstest]
    #[case::bad_env_name(
        r#","env":[{"name":"1X","value":"a"}]"#,
        "customProviders[0].env[0].name: \"1X\" is not a valid environment variable name"
    )]
    #[case::both_value_kinds(
        r#","env":[{"name":"X","value":"a","valueFrom":{}}]"#,
        "customProviders[0].env[0]: set exactly one of value and valueFrom"
    )]
    #[case::unknown_placeholder(
        r#","env":[{"name":"X","value":"{role}"}]"#,
        "customProviders[0].env[0].value: \"{role}\" uses unknown placeholder {role}"
    )]
    #[case::short_expiry(
        r#","tokenExpirationSeconds":60"#,
        "customProviders[0].tokenExpirationSeconds: 60 is out of range"
    )]
    #[case::relative_mount(r#","mountPath":"vault""#, "duplicate field")]
    fn invalid_custom_providers(#[case] overrides: &str, #[case] expected_start: &str) {
        let err = Settings::from_json(custom(overrides).as_bytes()).unwrap_err();
        assert!(err.contains(expected_start), "got {err:?}");
    }

    #[test]
    fn custom_providers_must_not_clash() {
        let raw = r#"{"customProviders":[
            {"name":"a","serviceAccountAnnotation":"x/y","audience":"a","mountPath":"/var/run/secrets/stackit.cloud/serviceaccount/sub","volumeName":"aws-iam-token"},
            {"name":"a","serviceAccountAnnotation":"x/z","audience":"a","mountPath":"/var/run/b","volumeName":"b"},
            {"name":"c","serviceAccountAnnotation":"x/w","audience":"a","mountPath":"/var/run/b/c","volumeName":"b"}]}"#;
        let err = Settings::from_json(raw.as_bytes()).unwrap_err();
        for expected in [
            "customProviders[0].volumeName: \"aws-iam-token\" clashes with the built-in volume",
            "customProviders[0].mountPath: \"/var/run/secrets/stackit.cloud/serviceaccount/sub\" clashes with the built-in mount path",
            "customProviders[1].name: \"a\" is used by another custom provider",
            "customProviders[2].volumeName: \"b\" is used by another custom provider",
            "customProviders[2].mountPath: \"/var/run/b/c\" overlaps another custom provider's",
        ] {
            assert!(err.contains(expected), "missing {expected:?} in {err:?}");
        }
    }

    #[rstest]
    #[case::plain("https://vault:8200", Ok(()))]
    #[case::several("{namespace}/{serviceAccount}:{value}@{tokenFile}", Ok(()))]
    #[case::unmatched_close("a}b", Err("\"a}b\" has an unmatched \"}\"".to_string()))]
    #[case::unclosed("a{value", Err("\"a{value\" has an unclosed \"{\"".to_string()))]
    #[case::nested("{a{value}}", Err("\"{a{value}}\" uses unknown placeholder {a{value}, expected one of {value}, {tokenFile}, {namespace}, {serviceAccount}".to_string()))]
    fn templates(#[case] template: &str, #[case] expected: Result<(), String>) {
        assert_eq!(check_template(template), expected);
    }

    #[rstest]
    #[case::gcp_credential_volume("external-credential-config", "/var/run/custom")]
    #[case::azure_v16_prefix("azure-workload-identity-reserved-x", "/var/run/custom")]
    #[case::pod_identity_path("custom", "/var/run/secrets/pods.eks.amazonaws.com")]
    #[case::gcp_credential_path("custom", "/var/run/secrets/workload-identity/sub")]
    #[case::gcloud_config_volume("gcloud-config", "/var/run/custom")]
    #[case::gcloud_config_parent_path("custom", "/var/run/secrets/gcloud")]
    #[case::flyte_kubernetes_volume("flyte-secret-db-1234", "/var/run/custom")]
    #[case::flyte_aws_volume("aws-secret-vol", "/var/run/custom")]
    #[case::flyte_gcp_volume("gcp-secret-vol", "/var/run/custom")]
    #[case::flyte_secrets_path("custom", "/etc/flyte/secrets/db")]
    fn every_builtin_layout_is_protected(#[case] volume: &str, #[case] path: &str) {
        let raw = format!(
            r#"{{"customProviders":[{{"name":"c","serviceAccountAnnotation":"x/y","audience":"a","mountPath":"{path}","volumeName":"{volume}"}}]}}"#
        );
        let err = Settings::from_json(raw.as_bytes()).unwrap_err();
        assert!(err.contains("clashes with the built-in"), "{err}");
    }

    #[rstest]
    #[case::plain("role", true)]
    #[case::prefixed("vault.example.com/role", true)]
    #[case::bad_prefix("Vault/role", false)]
    #[case::empty_name("vault.example.com/", false)]
    #[case::two_slashes("a/b/c", false)]
    fn qualified_keys(#[case] key: &str, #[case] expected: bool) {
        assert_eq!(is_qualified_key(key), expected);
    }

    #[test]
    fn provider_env_names_cannot_be_caller_identity_targets() {
        let err = Settings::from_json(
            br#"{"identityInjection":{"environmentVariables":[{"claimName":"team","targetKey":"AWS_ROLE_ARN"},{"claimName":"x","targetKey":"_FSEC_DB_PASSWORD"},{"claimName":"y","targetKey":"VAULT_ROLE"}],
                 "annotations":[{"claimName":"z","targetKey":"cloud.google.com/external-credentials-json"}]},
               "customProviders":[{"name":"vault","serviceAccountAnnotation":"x/y","audience":"a","mountPath":"/var/run/v","volumeName":"v","env":[{"name":"VAULT_ROLE","value":"{value}"}]}]}"#,
        )
        .unwrap_err();
        for expected in [
            "identityInjection.annotations[0].targetKey: \"cloud.google.com/external-credentials-json\" is written by GCP workload identity federation",
            "identityInjection.environmentVariables[0].targetKey: \"AWS_ROLE_ARN\" is written by a built-in provider",
            "identityInjection.environmentVariables[1].targetKey: \"_FSEC_DB_PASSWORD\" is written by a built-in provider",
            "identityInjection.environmentVariables[2].targetKey: \"VAULT_ROLE\" is written by custom provider \"vault\"",
        ] {
            assert!(err.contains(expected), "missing {expected:?} in {err:?}");
        }
    }

    #[test]
    fn flyte_names_cannot_be_caller_identity_targets() {
        let raw = |manager: &str| {
            format!(
                r#"{{"identityInjection":{{"environmentVariables":[{{"claimName":"a","targetKey":"SECRET_ARN"}},{{"claimName":"b","targetKey":"CLOUDSDK_CONFIG"}}],
                     "annotations":[{{"claimName":"c","targetKey":"vault.hashicorp.com/role"}},{{"claimName":"d","targetKey":"example.com/extra"}}]}},
                   "secrets":{{"manager":"{manager}","vault":{{"annotations":{{"example.com/extra":"x"}}}}}}}}"#
            )
        };
        let err = Settings::from_json(raw("vault").as_bytes()).unwrap_err();
        for expected in [
            "identityInjection.annotations[0].targetKey: \"vault.hashicorp.com/role\" is written by the Flyte Vault secret manager",
            "identityInjection.annotations[1].targetKey: \"example.com/extra\" is written by the Flyte Vault secret manager",
            "identityInjection.environmentVariables[0].targetKey: \"SECRET_ARN\" is written by a built-in provider",
            "identityInjection.environmentVariables[1].targetKey: \"CLOUDSDK_CONFIG\" is written by a built-in provider",
        ] {
            assert!(err.contains(expected), "missing {expected:?} in {err:?}");
        }
        // Without the Vault manager, the Vault annotations are free.
        let err = Settings::from_json(raw("kubernetes").as_bytes()).unwrap_err();
        assert!(!err.contains("annotations["), "{err}");
    }

    #[rstest]
    #[case::milli("200m", true)]
    #[case::binary("500Mi", true)]
    #[case::plain("1", true)]
    #[case::plus_fraction("+1.5", true)]
    #[case::leading_dot(".5", true)]
    #[case::trailing_dot("1.", true)]
    #[case::exponent("1e3", true)]
    #[case::negative_exponent("1E-3", true)]
    #[case::negative("-1", false)]
    #[case::empty("", false)]
    #[case::dot_only(".", false)]
    #[case::unit_word("1 cores", false)]
    #[case::two_dots("1.2.3", false)]
    #[case::lower_binary("1mi", false)]
    #[case::bare_exponent("1e", false)]
    fn quantities(#[case] text: &str, #[case] valid: bool) {
        assert_eq!(is_quantity(&serde_json::Value::from(text)), valid, "{text}");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let err = Settings::from_json(
            br#"{"aws":{"tokenExpirationSeconds":1},"stackit":{"tokenExpirationSeconds":1}}"#,
        )
        .unwrap_err();
        assert!(err.contains("aws.tokenExpirationSeconds"), "{err}");
        assert!(err.contains("stackit.tokenExpirationSeconds"), "{err}");
    }

    #[test]
    fn lookups_use_the_cache_unless_told_otherwise() {
        assert!(Settings::from_json(b"{}").unwrap().lookup_cache);
        assert!(
            !Settings::from_json(br#"{"lookupCache":false}"#)
                .unwrap()
                .lookup_cache
        );
    }

    #[rstest]
    #[case::aws(r#"{"aws":{"tokenDefaultMode":MODE}}"#, "aws")]
    #[case::stackit(r#"{"stackit":{"tokenDefaultMode":MODE}}"#, "stackit")]
    #[case::azure(r#"{"azure":{"tokenDefaultMode":MODE}}"#, "azure")]
    #[case::gcp(r#"{"gcp":{"tokenDefaultMode":MODE}}"#, "gcp")]
    fn token_default_modes_are_file_modes(#[case] template: &str, #[case] field: &str) {
        for mode in ["0", "288", "511", "null"] {
            let text = template.replace("MODE", mode);
            assert!(Settings::from_json(text.as_bytes()).is_ok(), "{text}");
        }
        for mode in ["512", "-1", "4095"] {
            let text = template.replace("MODE", mode);
            let err = Settings::from_json(text.as_bytes()).unwrap_err();
            assert_eq!(
                err,
                format!("{field}.tokenDefaultMode: {mode} is not a file mode, expected 0..=511 (0o777; YAML 0440 is 288)")
            );
        }
        let custom_mode = custom(r#","tokenDefaultMode":512"#);
        assert!(Settings::from_json(custom_mode.as_bytes())
            .unwrap_err()
            .starts_with("customProviders[0].tokenDefaultMode: 512 is not a file mode"));
    }

    #[test]
    fn gcp_keeps_its_anchors_mode_unless_set() {
        let mode = |text: &str| {
            Settings::from_json(text.as_bytes())
                .unwrap()
                .gcp
                .token_default_mode
        };
        assert_eq!(mode("{}"), Some(0o440));
        assert_eq!(mode(r#"{"gcp":{"tokenDefaultMode":null}}"#), None);
        assert_eq!(mode(r#"{"gcp":{"tokenDefaultMode":256}}"#), Some(256));
        assert_eq!(Settings::default().aws.token_default_mode, None);
    }

    #[rstest]
    #[case::default("http://169.254.170.23/v1/credentials", true)]
    #[case::ipv6("http://[fd00:ec2::23]/v1/credentials", true)]
    #[case::ipv6_port("http://[fd00:ec2::23]:80/v1/credentials", true)]
    #[case::https_name("https://agent.example.internal:8443/creds", true)]
    #[case::no_path("http://localhost", true)]
    #[case::no_scheme("169.254.170.23/v1/credentials", false)]
    #[case::other_scheme("ftp://169.254.170.23/", false)]
    #[case::empty_host("http:///v1/credentials", false)]
    #[case::space("http://169.254.170.23/v1/cred entials", false)]
    #[case::bad_port("http://169.254.170.23:0/v1", false)]
    #[case::port_not_digits("http://169.254.170.23:+80/v1", false)]
    #[case::unbracketed_ipv6("http://fd00:ec2::23/v1/credentials", false)]
    #[case::v6_port_without_colon("http://[fd00:ec2::23]80/v1", false)]
    #[case::empty_brackets("http://[]/v1", false)]
    fn container_credentials_uri(#[case] uri: &str, #[case] valid: bool) {
        assert_eq!(is_http_url(uri), valid, "{uri}");
        let text = format!(r#"{{"aws":{{"containerCredentialsFullUri":{uri:?}}}}}"#);
        assert_eq!(
            Settings::from_json(text.as_bytes()).is_ok(),
            valid,
            "{text}"
        );
    }

    #[test]
    fn container_credentials_must_not_clash() {
        let refused =
            |aws: &str| Settings::from_json(format!(r#"{{"aws":{aws}}}"#).as_bytes()).unwrap_err();
        assert_eq!(
            refused(r#"{"containerCredentialsTokenVolumeName":"stackit-workload-identity"}"#),
            "aws.containerCredentialsTokenVolumeName: \"stackit-workload-identity\" clashes with the built-in volume \"stackit-workload-identity\""
        );
        assert_eq!(
            refused(r#"{"containerCredentialsTokenMountPath":"/var/run/secrets/eks.amazonaws.com"}"#),
            "aws.containerCredentialsTokenMountPath: \"/var/run/secrets/eks.amazonaws.com\" clashes with the built-in mount path \"/var/run/secrets/eks.amazonaws.com/serviceaccount\""
        );
        // A custom provider must not take Pod Identity's configured names either.
        let moved = r#""aws":{"containerCredentialsTokenVolumeName":"pi-token","containerCredentialsTokenMountPath":"/var/run/pi"}"#;
        let text = custom("").replacen('{', &format!("{{{moved},"), 1);
        let text = text
            .replace(
                "\"volumeName\":\"vault-token\"",
                "\"volumeName\":\"pi-token\"",
            )
            .replace("/var/run/secrets/vault", "/var/run/pi/vault");
        let err = Settings::from_json(text.as_bytes()).unwrap_err();
        assert!(err.contains("customProviders[0].volumeName: \"pi-token\" clashes with the built-in volume \"pi-token\""), "{err}");
        assert!(err.contains("customProviders[0].mountPath: \"/var/run/pi/vault\" clashes with the built-in mount path \"/var/run/pi\""), "{err}");
    }
}
