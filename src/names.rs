//! The names the policy owns: volume names, mount paths, token files, env var
//! names and Flyte's secret paths, in one table.
//!
//! A leaf module: it imports nothing from the crate. Settings validation
//! (custom providers and caller identity must not clash with these), the
//! providers and the Flyte secret managers all read it, so none of them has
//! to import another for a name.

/// The policy's own pod annotation: the only containers and init containers (comma-separated
/// names) that get workload identity from any cloud or custom provider. Each provider's skip
/// list still applies within it.
pub const CONTAINERS_ANNOTATION: &str = "workload-identity.kubewarden.io/containers";

/// Where a provider's projected ServiceAccount token lives in the pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenLayout {
    /// Name of the projected volume.
    pub volume_name: &'static str,
    /// Directory the volume is mounted at, read-only.
    pub mount_path: &'static str,
    /// File name of the token inside the volume.
    pub token_file: &'static str,
}

/// AWS IRSA (aws/amazon-eks-pod-identity-webhook); the mount path is the
/// default of `aws.tokenMountPath`.
pub const AWS_IRSA: TokenLayout = TokenLayout {
    volume_name: "aws-iam-token",
    mount_path: "/var/run/secrets/eks.amazonaws.com/serviceaccount",
    token_file: "token",
};

/// EKS Pod Identity (the AWS webhook's container-credentials mode).
pub const AWS_POD_IDENTITY: TokenLayout = TokenLayout {
    volume_name: "eks-pod-identity-token",
    mount_path: "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount",
    token_file: "eks-pod-identity-token",
};

/// STACKIT (stackitcloud/stackit-pod-identity-webhook).
pub const STACKIT: TokenLayout = TokenLayout {
    volume_name: "stackit-workload-identity",
    mount_path: "/var/run/secrets/stackit.cloud/serviceaccount",
    token_file: "token",
};

/// Azure ≤ v1.5.1: `TokenFilePathName` and `TokenFileMountPath`.
pub const AZURE_V1_5: TokenLayout = TokenLayout {
    volume_name: "azure-identity-token",
    mount_path: "/var/run/secrets/azure/tokens",
    token_file: "azure-identity-token",
};

/// Azure v1.6.0: `ProjectedVolumeNamePrefix`, `VolumeMountPath`,
/// `TokenFilePath`. `volume_name` is only the prefix of the name.
pub const AZURE_V1_6: TokenLayout = TokenLayout {
    volume_name: "azure-workload-identity-reserved-",
    mount_path: "/var/run/secrets/azure/wi",
    token_file: "token/azure-identity-token",
};

/// GCP's token volume (`K8sSATokenVolumeName`, `K8sSATokenMountPath`, `K8sSATokenName`).
pub const GCP_TOKEN: TokenLayout = TokenLayout {
    volume_name: "gcp-iam-token",
    mount_path: "/var/run/secrets/sts.googleapis.com/serviceaccount",
    token_file: "token",
};

/// GCP direct mode's downward-API volume exposing the credential annotation
/// (`DirectInjectedExternalVolumeName`, `DirectInjectedExternalMountPath`,
/// `ExternalCredConfigFilename`).
pub const GCP_CREDENTIAL: TokenLayout = TokenLayout {
    volume_name: "external-credential-config",
    mount_path: "/var/run/secrets/workload-identity",
    token_file: "federation.json",
};

/// A volume the policy adds and the directory it mounts it at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnedVolume {
    /// The volume's name, or the prefix of its name.
    pub volume_name: &'static str,
    pub mount_path: &'static str,
}

/// GCP's writable gcloud configuration directory (`GCloudConfigVolumeName`,
/// `GCloudConfigMountPath`; direct mode has it since the webhook's PR #152).
pub const GCP_GCLOUD_CONFIG: OwnedVolume = OwnedVolume {
    volume_name: "gcloud-config",
    mount_path: "/var/run/secrets/gcloud/config",
};

const fn owned(layout: TokenLayout) -> OwnedVolume {
    OwnedVolume {
        volume_name: layout.volume_name,
        mount_path: layout.mount_path,
    }
}

/// Every volume the built-in providers and the Flyte secret managers add:
/// settings validation refuses custom providers that clash with any of them.
/// The AWS IRSA mount path also comes from settings (`aws.tokenMountPath`),
/// which validation adds.
pub const OWNED_VOLUMES: [OwnedVolume; 11] = [
    owned(AWS_IRSA),
    owned(AWS_POD_IDENTITY),
    owned(STACKIT),
    owned(AZURE_V1_5),
    owned(AZURE_V1_6),
    owned(GCP_TOKEN),
    owned(GCP_CREDENTIAL),
    GCP_GCLOUD_CONFIG,
    OwnedVolume {
        volume_name: flyte::KUBERNETES_VOLUME_PREFIX,
        mount_path: flyte::SECRETS_DIR,
    },
    OwnedVolume {
        volume_name: flyte::AWS_VOLUME,
        mount_path: flyte::SECRETS_DIR,
    },
    OwnedVolume {
        volume_name: flyte::GCP_VOLUME,
        mount_path: flyte::SECRETS_DIR,
    },
];

/// Every env var name the built-in providers and Flyte secrets inject (Flyte's
/// `_FSEC_` names are [`flyte::ENV_PREFIX`] plus anything). Caller identity may
/// not manage these: it would remove or overwrite what a provider adds, and a
/// second pass would change the pod again.
pub const BUILTIN_ENV_NAMES: [&str; 25] = [
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
    "CLOUDSDK_CORE_PROJECT",
    "CLOUDSDK_COMPUTE_REGION",
    flyte::env::DEFAULT_DIR,
    flyte::env::FILE_PREFIX,
    flyte::env::ENV_PREFIX,
    flyte::AWS_ARN_ENV,
    flyte::AWS_FILENAME_ENV,
];

/// Flyte task secrets (flytepropeller's pod webhook).
pub mod flyte {
    /// The pod label that asks for secrets (the webhook's objectSelector).
    pub const LABEL: &str = "inject-flyte-secrets";
    pub const LABEL_VALUE: &str = "true";
    /// Every pod annotation whose key starts with this is a secret request.
    pub const ANNOTATION_PREFIX: &str = "flyte.secrets/s";
    /// Where file secrets are (`K8sSecretPathPrefix`, `AWSSecretMountPathPrefix`,
    /// `GCPSecretMountPath`, `VaultSecretPathPrefix`).
    pub const SECRETS_DIR: &str = "/etc/flyte/secrets";
    /// Prefix of the env vars of `ENV_VAR` secrets (`K8sDefaultEnvVarPrefix`).
    pub const ENV_PREFIX: &str = "_FSEC_";

    /// The env vars flytekit's `SecretsManager` reads its configuration from.
    pub mod env {
        pub const DEFAULT_DIR: &str = "FLYTE_SECRETS_DEFAULT_DIR";
        pub const FILE_PREFIX: &str = "FLYTE_SECRETS_FILE_PREFIX";
        pub const ENV_PREFIX: &str = "FLYTE_SECRETS_ENV_PREFIX";
    }

    /// The Kubernetes manager's volumes: this, then the group (see `secrets::kubernetes`).
    pub const KUBERNETES_VOLUME_PREFIX: &str = "flyte-secret-";

    /// The AWS manager's shared volume (`AWSSecretsVolumeName`).
    pub const AWS_VOLUME: &str = "aws-secret-vol";
    /// Where the AWS sidecar mounts it (`AWSInitContainerMountPath`).
    pub const AWS_SIDECAR_MOUNT_PATH: &str = "/tmp";
    /// The AWS sidecar's env (`AWSSecretArnEnvVar`, `AWSSecretFilenameEnvVar`).
    pub const AWS_ARN_ENV: &str = "SECRET_ARN";
    pub const AWS_FILENAME_ENV: &str = "SECRET_FILENAME";
    /// Prefix of the AWS pull init containers' names (`formatAWSInitContainerName`).
    pub const AWS_INIT_CONTAINER_PREFIX: &str = "aws-pull-secret-";

    /// Prefix of every Vault Agent injector annotation the Vault manager writes.
    pub const VAULT_ANNOTATION_PREFIX: &str = "vault.hashicorp.com/";

    /// The GCP manager's shared volume (`GCPSecretsVolumeName`).
    pub const GCP_VOLUME: &str = "gcp-secret-vol";
    /// Prefix of the GCP pull init containers' names (`formatGCPInitContainerName`).
    pub const GCP_INIT_CONTAINER_PREFIX: &str = "gcp-pull-secret-";
}
