//! Shared by the fuzz targets: the lookup answers, and the checks every response must pass.

use serde_json::{json, Value};
use workload_identity_policy::host::{Lookup, ServiceAccountRef};

/// The lookup of the fuzzed decision: its answer is chosen by one input byte.
pub struct Fixed(pub u8);

impl Lookup for Fixed {
    fn service_account(&self, sa: &ServiceAccountRef) -> Result<Value, String> {
        match self.0 % 4 {
            0 => Err(format!("serviceaccounts \"{}\" not found", sa.name)),
            1 => Ok(service_account(sa, every_provider())),
            2 => Ok(service_account(sa, json!({}))),
            _ => Ok(service_account(sa, hostile())),
        }
    }
}

fn service_account(sa: &ServiceAccountRef, annotations: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ServiceAccount",
           "metadata": {"name": sa.name, "namespace": sa.namespace, "annotations": annotations}})
}

/// Every built-in provider, the examples' custom providers, and options set (values of fixtures/).
pub fn every_provider() -> Value {
    json!({
        "eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/payments-ledger",
        "eks.amazonaws.com/audience": "sts.amazonaws.com",
        "eks.amazonaws.com/sts-regional-endpoints": "true",
        "eks.amazonaws.com/token-expiration": "3600",
        "workload-identity.stackit.cloud/service-account-email": "reports-7h2m9p@sa.stackit.cloud",
        "workload-identity.stackit.cloud/idp-token-endpoint": "https://accounts.stackit.cloud/oauth/v2/token",
        "azure.workload.identity/client-id": "6f3c1b2a-8d4e-4f5a-9b6c-7d8e9f0a1b2c",
        "azure.workload.identity/tenant-id": "72f988bf-86f1-41af-91ab-2d7cd011db47",
        "azure.workload.identity/service-account-token-expiration": "3600",
        "cloud.google.com/workload-identity-provider": "projects/418720553091/locations/global/workloadIdentityPools/onprem-k8s/providers/cluster-eu1",
        "cloud.google.com/service-account-email": "billing-exporter@acme-finance-prod.iam.gserviceaccount.com",
        "vault.example.com/role": "payments-reader",
    })
}

/// Values a ServiceAccount's owner may set that are wrong in every way the policy checks.
fn hostile() -> Value {
    json!({
        "eks.amazonaws.com/role-arn": "not an arn\n",
        "eks.amazonaws.com/sts-regional-endpoints": "maybe",
        "eks.amazonaws.com/token-expiration": "-99999999999999999999",
        "workload-identity.stackit.cloud/service-account-email": "",
        "workload-identity.stackit.cloud/token-expiration": "1e9",
        "azure.workload.identity/client-id": "\u{0}",
        "azure.workload.identity/service-account-token-expiration": "18446744073709551616",
        "cloud.google.com/workload-identity-provider": "projects//x",
        "cloud.google.com/injection-mode": "🙂",
        "vault.example.com/role": "{value}{tokenFile}",
    })
}

/// A guest response is a ValidationResponse: `accepted` is a boolean, a denial has a code.
pub fn check_response(response: &Value) {
    let accepted = response["accepted"]
        .as_bool()
        .unwrap_or_else(|| panic!("response without boolean `accepted`: {response}"));
    if !accepted {
        assert!(
            response["code"].is_u64(),
            "denial without a code: {response}"
        );
    }
}
