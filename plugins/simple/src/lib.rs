//! The `simple` strategy: stop the old replicas, start the new ones, route to them.
//!
//! It is the fastest strategy and the only one with downtime: between stopping the old
//! release and the new one passing its health check, the app answers 503.

use hivemind_sdk::prelude::*;

struct Simple;

impl Strategy for Simple {
    const NAME: &'static str = "simple";
    const VERSION: &'static str = "1.0.0";
    const DESCRIPTION: &'static str = "Stop the old replicas, start the new ones, route to them (has downtime)";
    type State = ();

    fn validate(d: &Deployment) -> Result<()> {
        no_variants(d)
    }

    fn deploy(d: &Deployment, _: &mut (), cx: &StepContext) -> Result<Step> {
        let target = &d.target;

        // 1. Stop every replica that is not the target release.
        let old: Vec<String> =
            containers::list()?.into_iter().filter(|r| r.version != target.version).map(|r| r.id).collect();
        if !old.is_empty() {
            routing::set_split(&[])?;
            progress::log(progress::Level::Info, &format!("stopping {} old replicas", old.len()));
            containers::stop(&old, 10_000)?;
        }

        // 2. Start the new ones (a no-op when they already run).
        let replicas = containers::scale(&target.version, target.replicas)?;

        // 3. Wait until every one of them passes its health check.
        let mut healthy = 0;
        let mut last_failure = None;
        for replica in &replicas {
            let probe = health::probe(&replica.id)?;
            if probe.healthy {
                healthy += 1;
            } else {
                last_failure = Some(probe.message);
            }
        }
        if healthy < target.replicas {
            if cx.elapsed_ms > d.health.ready_timeout_ms as u64 {
                return Ok(Step::failed(format!(
                    "health check failed: {healthy} of {} replicas of {} healthy after {} s; last probe: {}",
                    target.replicas,
                    target.version,
                    cx.elapsed_ms / 1000,
                    last_failure.unwrap_or_else(|| "no replica started".into()),
                )));
            }
            let percent = (20 + 60 * healthy / target.replicas.max(1)) as u8;
            progress::report(
                percent,
                &format!("waiting for {} to be healthy: {healthy}/{}", target.version, target.replicas),
            );
            return Ok(Step::after_ms(200));
        }

        // 4. Route to them.
        routing::set_split(&[Weight { version: target.version.clone(), weight: 100 }])?;
        progress::report(100, &format!("{} serves on {} replicas", target.version, target.replicas));
        Ok(Step::Done)
    }
}

hivemind_sdk::export_strategy!(Simple);
