//! `metrics`: what the router counted for the versions a plugin's deployment owns, and
//! the app's own counters, read from its replicas' metrics endpoint.

use super::{CapabilityError, HostState};
use crate::bindings::strategy::hivemind::plugin::metrics;

impl metrics::Host for HostState {
    async fn snapshot(&mut self, version: String) -> Result<metrics::Counts, CapabilityError> {
        let caps = self.step()?;
        caps.scope.release("metrics.snapshot", &version)?;
        let s = caps.scope.platform.counts(&caps.scope.app, &version);
        Ok(metrics::Counts {
            requests: s.requests,
            status_2xx: s.status_2xx,
            status_3xx: s.status_3xx,
            status_4xx: s.status_4xx,
            status_5xx: s.status_5xx,
            connection_errors: s.connection_errors,
            in_flight: s.in_flight.min(u32::MAX as u64) as u32,
            goals: s.goals,
            p50_ms: s.p50_ms,
            p90_ms: s.p90_ms,
            p99_ms: s.p99_ms,
            latency_buckets: s.latency_buckets,
        })
    }

    async fn app_counter(&mut self, version: String, name: String) -> Result<f64, CapabilityError> {
        let caps = self.step()?;
        caps.scope.release("metrics.app-counter", &version)?;
        let platform = &caps.scope.platform;
        let path = &caps.metrics_endpoint;
        let mut total = 0.0;
        for r in platform.replicas(&caps.scope.app).await.into_iter().filter(|r| r.version == version) {
            let text = platform.metrics_text(&r, path).await.map_err(CapabilityError::Failed)?;
            total += crate::health::sum_counter(&text, &name).ok_or_else(|| {
                CapabilityError::Failed(format!(
                    "metrics.app-counter: replica {} reports no counter `{name}` at {path}",
                    r.id
                ))
            })?;
        }
        Ok(total)
    }
}
