//! `hivemind metrics get`: the router's live counts for the versions a deployment
//! compares (stable and canary, or the A/B variants), with the same significance tests
//! the strategies use.

use super::Insights;
use crate::api_types::MetricsView;
use crate::error::{Field, UserError};
use crate::series::{compare, compared_versions, snapshots, version_metrics};

impl Insights {
    pub async fn metrics(&self, id: &str, variant: Option<&str>) -> Result<MetricsView, UserError> {
        let d = self.ground.deployment(id).await?;
        let pairs = compared_versions(&d);
        if let Some(v) = variant
            && !pairs.iter().any(|(name, _)| name == v)
        {
            let names: Vec<&str> = pairs.iter().map(|(n, _)| n.as_str()).collect();
            return Err(UserError::invalid(
                Field::Variant,
                format!("deployment {id} has no variant `{v}`; it has {}", names.join(", ")),
            ));
        }
        // What the router counted up to now, not as of the last pull.
        self.ground.services.router.refresh().await;
        let snapshots = snapshots(&self.ground.services.router, &d.app, pairs);
        let comparisons = compare(&snapshots, variant);
        let versions = snapshots
            .iter()
            .filter(|(v, _, _)| variant.is_none_or(|want| want == v))
            .map(|(v, role, s)| version_metrics(v, *role, s))
            .collect();
        Ok(MetricsView { deployment_id: d.id, strategy: d.strategy, versions, comparisons })
    }
}
