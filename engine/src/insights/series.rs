//! The engine's sampler of the dashboard's series (`crate::series`): once a second, the
//! counts of every deployment under way.

use super::Insights;
use crate::api_types::SeriesView;
use crate::model::{Status, now_ms};
use crate::series::{compared_versions, snapshots};
use std::collections::HashSet;

impl Insights {
    /// Takes one sample of every deployment under way (the engine's loop calls it each second).
    pub(crate) async fn sample_series(&self) {
        let Ok(active) = self.ground.store.active_deployments().await else { return };
        let at_ms = now_ms();
        let mut live = HashSet::new();
        let mut refreshed = false;
        for d in active.iter().filter(|d| d.status != Status::Pending) {
            if !refreshed {
                self.ground.services.router.refresh().await;
                refreshed = true;
            }
            // Live whatever happens next: a store that does not answer once must not
            // close the series of a deployment still under way.
            live.insert(d.id.clone());
            let split = match self.ground.store.app(&d.app).await {
                Ok(Some(app)) => app.split,
                _ => continue,
            };
            let now = snapshots(&self.ground.services.router, &d.app, compared_versions(d));
            self.ground.services.series.record(&d.id, &d.strategy, at_ms, split, now);
        }
        self.ground.services.series.finish_all_but(&live, at_ms);
    }

    /// The dashboard's charts and step analyses of a deployment: its samples after `after_ms`.
    pub async fn series(&self, id: &str, after_ms: i64) -> Result<SeriesView, crate::error::UserError> {
        self.ground.deployment(id).await?;
        Ok(self.ground.services.series.view(id, after_ms))
    }

    /// The same, for a deployment known to exist (the event stream's), and only when a
    /// sample came after `after_ms`.
    pub fn series_since(&self, id: &str, after_ms: i64) -> Option<SeriesView> {
        let newest = self.ground.services.series.last_sample_ms(id)?;
        (newest > after_ms).then(|| self.ground.services.series.view(id, after_ms))
    }
}
