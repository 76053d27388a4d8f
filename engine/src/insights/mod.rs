//! The engine's insights service: what the server tells about itself and its
//! deployments: `/metrics` in the Prometheus text format, a deployment's live figures and
//! their comparison (`metrics`), the dashboard's series (`series`), and `diagnose`.

mod diagnose;
mod metrics;
mod series;

use super::{Certificates, Ground, STEP_BUCKETS};
use std::sync::Arc;

pub struct Insights {
    pub(super) ground: Arc<Ground>,
    /// The certificates' expiry and the ACME keeper's counts, for /metrics.
    pub(super) certificates: Arc<Certificates>,
}

impl Insights {
    /// The store fault the deployments under way are waiting out, if there is one.
    pub fn store_outage(&self) -> Option<String> {
        self.ground.outage.describe()
    }

    /// The server's own counts in the Prometheus text format: deployments by strategy and
    /// outcome, step durations, plugin load errors, and the router's counts.
    pub async fn prometheus(&self) -> String {
        use std::fmt::Write;
        self.ground.services.router.refresh().await;
        let mut out = String::new();
        let _ = writeln!(out, "# HELP hivemind_deployments_total Deployments that ended, by strategy and outcome.");
        let _ = writeln!(out, "# TYPE hivemind_deployments_total counter");
        for ((strategy, outcome), n) in self.ground.counts.outcomes.lock().unwrap().iter() {
            let _ = writeln!(out, "hivemind_deployments_total{{strategy=\"{strategy}\",outcome=\"{outcome}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP hivemind_step_duration_seconds Time of one plugin step, sandbox and host calls included."
        );
        let _ = writeln!(out, "# TYPE hivemind_step_duration_seconds histogram");
        let steps = self.ground.counts.steps.lock().unwrap();
        let mut cumulative = 0;
        for (bound, n) in STEP_BUCKETS.iter().zip(steps.buckets.iter()) {
            cumulative += n;
            let _ = writeln!(out, "hivemind_step_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        cumulative += steps.buckets[STEP_BUCKETS.len()];
        let _ = writeln!(out, "hivemind_step_duration_seconds_bucket{{le=\"+Inf\"}} {cumulative}");
        let _ = writeln!(out, "hivemind_step_duration_seconds_sum {}", steps.sum);
        let _ = writeln!(out, "hivemind_step_duration_seconds_count {cumulative}");
        drop(steps);
        let pulls = self.ground.counts.pulls.lock().unwrap();
        let _ = writeln!(out, "# HELP hivemind_image_pulls_total Image pulls from registries, by result.");
        let _ = writeln!(out, "# TYPE hivemind_image_pulls_total counter");
        let _ = writeln!(out, "hivemind_image_pulls_total{{result=\"ok\"}} {}", pulls.ok);
        let _ = writeln!(out, "hivemind_image_pulls_total{{result=\"failed\"}} {}", pulls.failed);
        let _ = writeln!(out, "# HELP hivemind_image_pull_seconds Time spent pulling images.");
        let _ = writeln!(out, "# TYPE hivemind_image_pull_seconds summary");
        let _ = writeln!(out, "hivemind_image_pull_seconds_sum {}", pulls.seconds);
        let _ = writeln!(out, "hivemind_image_pull_seconds_count {}", pulls.ok + pulls.failed);
        drop(pulls);
        let _ = writeln!(out, "# HELP hivemind_plugin_load_errors_total Plugin components that failed to load.");
        let _ = writeln!(out, "# TYPE hivemind_plugin_load_errors_total counter");
        let _ = writeln!(out, "hivemind_plugin_load_errors_total {}", self.ground.plugins.load_errors());
        self.ground.healer.prometheus(&mut out, |id| self.ground.services.health_of(id).healthy_since_ms.is_some());
        self.certificates.prometheus(&mut out);
        out.push_str(&self.ground.services.router.prometheus());
        out
    }
}
