//! Azure Workload Identity, drop-in for Azure/azure-workload-identity (stub: being written).

use std::collections::BTreeMap;

use super::{Context, Findings, Resolution};
use crate::settings::AzureSettings;

/// Whether Azure can apply to this pod before the ServiceAccount is read.
pub fn wanted(settings: &AzureSettings, pod_labels: &BTreeMap<&str, &str>) -> bool {
    let _ = (settings, pod_labels);
    false
}

pub fn resolve(settings: &AzureSettings, ctx: &Context, findings: &mut Findings) -> Resolution {
    let _ = (settings, ctx, findings);
    None
}
