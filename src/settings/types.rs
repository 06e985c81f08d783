//! The settings' types: what each field means, its camelCase name and its default.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The API server refuses projected tokens that live shorter than this (seconds).
pub const MIN_TOKEN_EXPIRATION_SECONDS: i64 = 600;
/// The API server refuses projected tokens that live longer than 2^32 seconds.
pub const MAX_TOKEN_EXPIRATION_SECONDS: i64 = 1 << 32;

/// All settings of the policy. `{}` enables every built-in provider with the
/// defaults of the webhooks it replaces.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Settings {
    pub aws: AwsSettings,
    pub stackit: StackitSettings,
    pub azure: AzureSettings,
    pub gcp: GcpSettings,
    /// Annotations treated as if present on matching ServiceAccounts.
    pub service_accounts: Vec<ServiceAccountOverlay>,
    /// Token providers defined entirely in settings.
    pub custom_providers: Vec<CustomProvider>,
    pub lookup_failure: LookupFailure,
    /// Whether the ServiceAccount may come from policy-server's lookup cache (up to 5 s old);
    /// `false` asks the API server for every admitted Pod (`disable_cache: true`).
    pub lookup_cache: bool,
    /// What a malformed or misspelt identity annotation on a ServiceAccount CREATE or UPDATE gets.
    pub service_account_checks: ServiceAccountChecks,
    /// The validating instance: Pods are checked against the identity their ServiceAccount
    /// grants instead of being given it (nothing is mutated).
    pub verify: bool,
    /// With `verify`: what a container whose identity env var differs from the ServiceAccount's
    /// gets. The mutating instance keeps a value the Pod's spec sets (as the webhooks do), so
    /// `reject` also refuses those deliberate overrides; `warn` only says so.
    pub verify_different_identity: VerifyDifferentIdentity,
    /// Stamps the requester's identity on pods and pod templates.
    pub identity_injection: IdentityInjection,
    /// ServiceAccount-like annotations granted by the requester's identity.
    pub identity_bindings: Vec<IdentityBinding>,
    /// Flyte task secrets, drop-in for flytepropeller's pod webhook.
    pub secrets: SecretsSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            aws: AwsSettings::default(),
            stackit: StackitSettings::default(),
            azure: AzureSettings::default(),
            gcp: GcpSettings::default(),
            service_accounts: Vec::new(),
            custom_providers: Vec::new(),
            lookup_failure: LookupFailure::default(),
            lookup_cache: true,
            service_account_checks: ServiceAccountChecks::default(),
            verify: false,
            verify_different_identity: VerifyDifferentIdentity::default(),
            identity_injection: IdentityInjection::default(),
            identity_bindings: Vec::new(),
            secrets: SecretsSettings::default(),
        }
    }
}

/// Flyte secrets (`flyte.secrets/s<i>` pod annotations), as flytepropeller's
/// pod webhook (its `webhook` config keys in brackets).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct SecretsSettings {
    /// Injects the secrets of pods labelled `inject-flyte-secrets: "true"`.
    pub enabled: bool,
    /// Where secrets come from [`secretManagerType`].
    pub manager: SecretManager,
    /// The Vault manager's settings [`vaultSecretManager`].
    pub vault: VaultSecretsSettings,
    /// The AWS manager's settings [`awsSecretManager`].
    pub aws: SidecarSettings,
    /// The GCP manager's settings [`gcpSecretManager`].
    pub gcp: SidecarSettings,
}

impl Default for SecretsSettings {
    fn default() -> Self {
        SecretsSettings {
            enabled: true,
            manager: SecretManager::Kubernetes,
            vault: VaultSecretsSettings::default(),
            aws: SidecarSettings::default(),
            gcp: SidecarSettings::default(),
        }
    }
}

/// The secret manager the policy injects for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SecretManager {
    /// Kubernetes Secrets as env vars (`secretKeyRef`) and secret volumes
    /// (flytepropeller's default, `K8s`).
    #[default]
    #[serde(alias = "k8s")]
    Kubernetes,
    /// HashiCorp Vault Agent injector annotations.
    Vault,
    /// AWS Secrets Manager, pulled by one init container per secret.
    Aws,
    /// GCP Secret Manager, pulled by one init container per secret.
    Gcp,
}

/// Vault Agent injection [`vaultSecretManager`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct VaultSecretsSettings {
    /// `vault.hashicorp.com/role` [`role`].
    pub role: String,
    /// The KV engine version read when a secret's `group_version` is not
    /// `kv1`, `kv2` or `db` [`kvVersion`, deprecated upstream].
    pub kv_version: KvVersionSetting,
    /// Extra pod annotations, over the manager's own and under the pod's
    /// [`annotations`].
    pub annotations: BTreeMap<String, String>,
}

impl Default for VaultSecretsSettings {
    fn default() -> Self {
        VaultSecretsSettings {
            role: "flyte".to_string(),
            kv_version: KvVersionSetting::default(),
            annotations: BTreeMap::new(),
        }
    }
}

/// Vault's KV secrets engine version (upstream's `KVVersion`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KvVersion {
    V1,
    #[default]
    V2,
}

/// `secrets.vault.kvVersion` as written: `"1"` or `"2"` (upstream's
/// `KVVersion` names), the numbers 1 and 2 too; checked by
/// [`Settings::validate`]. (A decoder accepting strings and numbers cost
/// 4 KB of wasm; JSON values are decoded anyway.)
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(transparent)]
pub struct KvVersionSetting(pub Option<serde_json::Value>);

impl KvVersionSetting {
    /// The version, or `None` when the value is neither 1 nor 2.
    pub fn parse(&self) -> Option<KvVersion> {
        let Some(value) = self.0.as_ref() else {
            return Some(KvVersion::V2);
        };
        match (value.as_str(), value.as_u64()) {
            (Some("1"), _) | (_, Some(1)) => Some(KvVersion::V1),
            (Some("2"), _) | (_, Some(2)) => Some(KvVersion::V2),
            _ => None,
        }
    }

    /// The version (the default `"2"` if unparsable, which validation refuses).
    pub fn get(&self) -> KvVersion {
        self.parse().unwrap_or_default()
    }
}

/// Settings of the AWS or GCP manager's pull init containers,
/// `{sidecarImage, resources}` (upstream's `awsSecretManager` and
/// `gcpSecretManager`), kept as the JSON written: [`Settings::validate`]
/// checks it, field by field, and the accessors fill in the defaults.
/// (Deriving a decoder for these structs cost 19 KB of wasm.)
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(transparent)]
pub struct SidecarSettings(pub Option<serde_json::Value>);

/// The AWS manager's default sidecar image.
pub const AWS_SIDECAR_IMAGE: &str = "docker.io/amazon/aws-secrets-manager-secret-sidecar:v0.1.4";
/// The GCP manager's default sidecar image.
pub const GCP_SIDECAR_IMAGE: &str = "gcr.io/google.com/cloudsdktool/cloud-sdk:alpine";

impl SidecarSettings {
    fn field(&self, name: &str) -> Option<&serde_json::Value> {
        self.0.as_ref()?.get(name).filter(|v| !v.is_null())
    }

    /// `sidecarImage`, else `default`.
    pub fn image<'a>(&'a self, default: &'a str) -> &'a str {
        self.field("sidecarImage")
            .and_then(serde_json::Value::as_str)
            .unwrap_or(default)
    }

    /// The init container's `resources`: the setting (it replaces the
    /// default as a whole), without empty lists as Go's `omitempty`; else
    /// flytepropeller's requests = limits = 200m CPU, 500Mi memory.
    pub fn resources(&self) -> serde_json::Value {
        use serde_json::Value;
        let mut out = serde_json::Map::new();
        match self.field("resources") {
            Some(Value::Object(lists)) => {
                for (name, list) in lists {
                    if list.as_object().is_some_and(|l| !l.is_empty()) {
                        out.insert(name.clone(), list.clone());
                    }
                }
            }
            _ => {
                let mut list = serde_json::Map::new();
                list.insert("cpu".to_string(), "200m".into());
                list.insert("memory".to_string(), "500Mi".into());
                out.insert("limits".to_string(), Value::Object(list.clone()));
                out.insert("requests".to_string(), Value::Object(list));
            }
        }
        Value::Object(out)
    }
}

/// Caller identity injection, drop-in for Union's `identityInjection` schema.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct IdentityInjection {
    pub enabled: bool,
    /// Claims stamped as pod (template) annotations.
    pub annotations: Vec<ClaimTarget>,
    /// Claims stamped as env vars in every container and init container.
    pub environment_variables: Vec<ClaimTarget>,
    /// Claim name → `username`, `uid`, `groups` or `extra.<key>`.
    pub claim_mappings: BTreeMap<String, String>,
    /// Requesters whose objects keep the managed values they carry.
    pub trusted_requesters: TrustedRequesters,
    pub on_missing_required: OnMissingRequired,
}

impl Default for IdentityInjection {
    fn default() -> Self {
        IdentityInjection {
            enabled: false,
            annotations: Vec::new(),
            environment_variables: Vec::new(),
            claim_mappings: BTreeMap::new(),
            trusted_requesters: TrustedRequesters::default(),
            on_missing_required: OnMissingRequired::Warn,
        }
    }
}

/// One claim → one annotation key or env var name.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaimTarget {
    pub claim_name: String,
    pub target_key: String,
    #[serde(default)]
    pub required: bool,
}

/// Who may carry managed values it did not get stamped with: the
/// controllers that copy templates into pods. Each list replaces its default.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct TrustedRequesters {
    pub usernames: Vec<String>,
    pub groups: Vec<String>,
}

impl Default for TrustedRequesters {
    fn default() -> Self {
        TrustedRequesters {
            usernames: vec!["system:kube-controller-manager".to_string()],
            groups: vec!["system:serviceaccounts:kube-system".to_string()],
        }
    }
}

/// What a missing `required` claim does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OnMissingRequired {
    #[default]
    Warn,
    Reject,
}

/// When the requester's `claim` has one of `values`, `annotations` act as
/// ServiceAccount annotations (below the ServiceAccount's own, above overlays).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IdentityBinding {
    pub claim: String,
    pub values: Vec<String>,
    pub annotations: BTreeMap<String, String>,
}

/// Static annotations for a ServiceAccount (`namespace: "*"` matches every
/// namespace). The ServiceAccount's own annotations win; an overlay for the
/// exact namespace wins over a `"*"` one.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceAccountOverlay {
    pub namespace: String,
    pub name: String,
    pub annotations: BTreeMap<String, String>,
}

/// A user-defined provider: a projected token plus templated env vars,
/// switched on by one ServiceAccount annotation.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CustomProvider {
    /// DNS label naming the provider in warnings.
    pub name: String,
    /// The ServiceAccount annotation that turns the provider on; its value is `{value}`.
    pub service_account_annotation: String,
    pub audience: String,
    #[serde(default = "default_custom_expiration")]
    pub token_expiration_seconds: i64,
    /// Absolute directory the token volume is mounted at.
    pub mount_path: String,
    pub volume_name: String,
    #[serde(default = "default_token_path")]
    pub token_path: String,
    /// `defaultMode` of the token volume (0 to 0o777); unset: Kubernetes' default (0644).
    #[serde(default)]
    pub token_default_mode: Option<i64>,
    #[serde(default)]
    pub env: Vec<CustomEnv>,
}

/// One env var of a custom provider: a `value` template or a `valueFrom`
/// passed through as is.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CustomEnv {
    pub name: String,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub value_from: Option<serde_json::Value>,
}

/// Placeholders a custom provider's env `value` may use.
pub const CUSTOM_PLACEHOLDERS: [&str; 4] = ["value", "tokenFile", "namespace", "serviceAccount"];

fn default_custom_expiration() -> i64 {
    3600
}

fn default_token_path() -> String {
    "token".to_string()
}

/// With `verify`: a Pod whose identity env var has another value than its ServiceAccount grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum VerifyDifferentIdentity {
    /// Admitted, with a warning naming the container, the variable and both values.
    #[default]
    Warn,
    /// Denied (and reported by the audit scanner).
    Reject,
}

/// What the ServiceAccount checks do with a problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ServiceAccountChecks {
    /// Admit the ServiceAccount with a warning per problem.
    #[default]
    Warn,
    /// Deny it, naming every problem.
    Reject,
    /// No checks.
    Off,
}

/// What to do when the pod's ServiceAccount cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum LookupFailure {
    /// Accept the pod unmutated, with a warning (the AWS webhook's behaviour).
    #[default]
    Admit,
    /// Deny the pod (the STACKIT webhook's behaviour).
    Reject,
}

/// AWS IRSA, as aws/amazon-eks-pod-identity-webhook (its flags in brackets).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct AwsSettings {
    pub enabled: bool,
    /// Prefix of every SA and pod key [`--annotation-prefix`].
    pub annotation_prefix: String,
    /// Token audience when the SA has none [`--token-audience`].
    pub audience: String,
    /// Token lifetime in seconds when neither pod nor SA set one [`--token-expiration`].
    pub token_expiration_seconds: i64,
    /// Directory the token volume is mounted at [`--token-mount-path`].
    pub token_mount_path: String,
    /// Injected as `AWS_REGION` and `AWS_DEFAULT_REGION` [`--aws-default-region`].
    pub region: Option<String>,
    /// Default for the SA's `sts-regional-endpoints` [`--sts-regional-endpoint`].
    pub sts_regional_endpoints: bool,
    /// ServiceAccounts switched to EKS Pod Identity (container credentials),
    /// which takes precedence over IRSA [`--watch-container-credentials-config`].
    pub pod_identity_associations: Vec<PodIdentityAssociation>,
    /// EKS Pod Identity's `AWS_CONTAINER_CREDENTIALS_FULL_URI`
    /// [`--container-credentials-full-uri`]; IPv6 clusters: `http://[fd00:ec2::23]/v1/credentials`.
    pub container_credentials_full_uri: String,
    /// Pod Identity's token audience [`--container-credentials-audience`].
    pub container_credentials_audience: String,
    /// Directory Pod Identity's token volume is mounted at
    /// [`--container-credentials-token-mount-path`].
    pub container_credentials_token_mount_path: String,
    /// Pod Identity's projected volume [`--container-credentials-token-volume-name`].
    pub container_credentials_token_volume_name: String,
    /// Pod Identity's token file in that volume [`--container-credentials-token-path`].
    pub container_credentials_token_path: String,
    /// `defaultMode` of both AWS token volumes (0 to 0o777); unset: Kubernetes' default
    /// (0644).
    pub token_default_mode: Option<i64>,
}

/// One EKS Pod Identity association, matched exactly.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodIdentityAssociation {
    pub namespace: String,
    pub service_account: String,
}

/// Azure Workload Identity, as Azure/azure-workload-identity.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct AzureSettings {
    pub enabled: bool,
    /// Only pods labelled `azure.workload.identity/use: "true"` (the anchor's objectSelector).
    pub require_use_label: bool,
    /// `AZURE_TENANT_ID` when the SA has no `tenant-id` (the anchor's `AZURE_TENANT_ID`).
    pub tenant_id: Option<String>,
    /// `AZURE_AUTHORITY_HOST`.
    pub authority_host: String,
    /// Token audience [`--audience`].
    pub audience: String,
    /// Token volume layout: `v1.5` (default) or `v1.6`.
    pub token_layout: AzureTokenLayout,
    /// `defaultMode` of the token volume (0 to 0o777); unset: Kubernetes' default (0644).
    pub token_default_mode: Option<i64>,
}

/// Where the Azure token lives; v1.6 moved it (a breaking change upstream).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum AzureTokenLayout {
    /// Volume `azure-identity-token` at `/var/run/secrets/azure/tokens`.
    #[default]
    #[serde(rename = "v1.5")]
    V1_5,
    /// Volume `azure-workload-identity-reserved-<hash>` at `/var/run/secrets/azure/wi`.
    #[serde(rename = "v1.6")]
    V1_6,
}

impl Default for AzureSettings {
    fn default() -> Self {
        AzureSettings {
            enabled: true,
            require_use_label: true,
            tenant_id: None,
            authority_host: "https://login.microsoftonline.com/".to_string(),
            audience: "api://AzureADTokenExchange".to_string(),
            token_layout: AzureTokenLayout::V1_5,
            token_default_mode: None,
        }
    }
}

/// GCP workload identity federation (direct mode), as
/// pfnet-research/gcp-workload-identity-federation-webhook.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct GcpSettings {
    pub enabled: bool,
    /// Prefix of every GCP key [`--annotation-prefix`].
    pub annotation_prefix: String,
    /// Token audience when the SA has none [`--token-audience`].
    pub audience: String,
    /// Token lifetime when neither pod nor SA set one [`--token-expiration`].
    pub token_expiration_seconds: i64,
    /// `CLOUDSDK_COMPUTE_REGION` [`--gcp-default-region`].
    pub region: Option<String>,
    /// `defaultMode` of the token and credential volumes [`--token-default-mode`, 0o440];
    /// `null`: Kubernetes' default (0644).
    pub token_default_mode: Option<i64>,
}

/// GCP raises shorter token lifetimes to this (seconds).
pub const GCP_MIN_TOKEN_EXPIRATION_SECONDS: i64 = 3600;

impl Default for GcpSettings {
    fn default() -> Self {
        GcpSettings {
            enabled: true,
            annotation_prefix: "cloud.google.com".to_string(),
            audience: "sts.googleapis.com".to_string(),
            token_expiration_seconds: 86400,
            region: None,
            token_default_mode: Some(crate::providers::gcp::DEFAULT_MODE),
        }
    }
}

impl Default for AwsSettings {
    fn default() -> Self {
        AwsSettings {
            enabled: true,
            annotation_prefix: "eks.amazonaws.com".to_string(),
            audience: "sts.amazonaws.com".to_string(),
            token_expiration_seconds: 86400,
            token_mount_path: "/var/run/secrets/eks.amazonaws.com/serviceaccount".to_string(),
            region: None,
            sts_regional_endpoints: false,
            pod_identity_associations: Vec::new(),
            // The webhook's defaults for its --container-credentials-* flags.
            container_credentials_full_uri: "http://169.254.170.23/v1/credentials".to_string(),
            container_credentials_audience: "pods.eks.amazonaws.com".to_string(),
            container_credentials_token_mount_path: crate::names::AWS_POD_IDENTITY
                .mount_path
                .to_string(),
            container_credentials_token_volume_name: crate::names::AWS_POD_IDENTITY
                .volume_name
                .to_string(),
            container_credentials_token_path: crate::names::AWS_POD_IDENTITY.token_file.to_string(),
            token_default_mode: None,
        }
    }
}

/// STACKIT workload identity, as stackitcloud/stackit-pod-identity-webhook.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct StackitSettings {
    pub enabled: bool,
    /// Token audience when the SA has none.
    pub audience: String,
    /// Token lifetime in seconds when the SA sets none.
    pub token_expiration_seconds: i64,
    /// `defaultMode` of the token volume (0 to 0o777); unset: Kubernetes' default (0644).
    pub token_default_mode: Option<i64>,
}

impl Default for StackitSettings {
    fn default() -> Self {
        StackitSettings {
            enabled: true,
            audience: "sts.accounts.stackit.cloud".to_string(),
            token_expiration_seconds: 600,
            token_default_mode: None,
        }
    }
}
