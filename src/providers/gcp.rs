//! GCP workload identity federation, drop-in for pfnet-research/gcp-workload-identity-federation-webhook (stub: being written).

use super::{Context, Findings, Resolution};
use crate::settings::GcpSettings;

pub fn resolve(settings: &GcpSettings, ctx: &Context, findings: &mut Findings) -> Resolution {
    let _ = (settings, ctx, findings);
    None
}
