//! `rolling-update`: replace the old replicas a few at a time, as a Kubernetes
//! Deployment does. Up to `max-surge` extra replicas start; up to `max-unavailable` of
//! the desired count may be missing. Old replicas are drained through the router before
//! they stop. Traffic follows the ready replicas of each version.

use hivemind_sdk::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

struct RollingUpdate;

#[derive(Serialize, Deserialize, Default)]
struct State {
    /// When each new replica first passed its health check (ms since the epoch).
    healthy_since: BTreeMap<String, u64>,
    /// Old replicas being drained before they stop.
    draining: Vec<String>,
}

struct Limits {
    surge: u32,
    unavailable: u32,
    min_ready_ms: u64,
    drain_timeout_ms: u32,
}

fn limits(d: &Deployment) -> Result<Limits> {
    let n = d.target.replicas;
    let surge = Amount::param(d, "max-surge", Amount::Percent(25))?.round_up(n);
    let unavailable = Amount::param(d, "max-unavailable", Amount::Percent(25))?.round_down(n);
    if surge == 0 && unavailable == 0 {
        return Err(Error::msg(format!(
            "max-surge and max-unavailable are both 0 for {n} replicas, so no replica could ever be replaced; \
             allow at least one (for example --max-surge 1)"
        )));
    }
    let min_ready: u32 = d.get_or("min-ready", 0)?;
    let drain_timeout: u32 = d.get_or("drain-timeout", 30)?;
    Ok(Limits {
        surge,
        unavailable,
        // A rollback of a completed deployment brings back a release that served before:
        // a replica is ready as soon as it is healthy.
        min_ready_ms: if context::rollback_of().is_some() { 0 } else { min_ready as u64 * 1000 },
        drain_timeout_ms: drain_timeout.saturating_mul(1000),
    })
}

impl Strategy for RollingUpdate {
    const NAME: &'static str = "rolling-update";
    const VERSION: &'static str = "1.0.0";
    const DESCRIPTION: &'static str = "Replace replicas a few at a time, within max-surge and max-unavailable";
    type State = State;

    fn validate(d: &Deployment) -> Result<()> {
        no_variants(d)?;
        limits(d).map(|_| ())
    }

    fn deploy(d: &Deployment, st: &mut State, _: &StepContext) -> Result<Step> {
        let limits = limits(d)?;
        let n = d.target.replicas;
        let target = &d.target.version;

        // Old replicas picked last step leave only once their requests are done.
        if !drain_and_stop(&st.draining, limits.drain_timeout_ms)? {
            return Ok(Step::after_ms(100));
        }
        st.draining.clear();

        let (new, old): (Vec<Replica>, Vec<Replica>) =
            containers::list()?.into_iter().partition(|r| &r.version == target);
        let readiness = probe(&new)?;
        check_ready_in_time(d, &readiness)?;
        let now = now_ms();
        st.healthy_since.retain(|id, _| readiness.ready.iter().any(|r| &r.id == id));
        for r in &readiness.ready {
            st.healthy_since.entry(r.id.clone()).or_insert(now);
        }
        let new_ready = st.healthy_since.values().filter(|since| now - **since >= limits.min_ready_ms).count() as u32;
        let old_ready =
            d.previous.as_ref().map(|p| health::healthy_count(&p.version)).unwrap_or(0).min(old.len() as u32);

        // Traffic follows the ready replicas of each version.
        let mut split = vec![Weight { version: target.clone(), weight: new_ready }];
        if let Some(previous) = &d.previous {
            split.push(Weight { version: previous.version.clone(), weight: old_ready });
        }
        if new_ready + old_ready > 0 {
            routing::set_split(&split)?;
        }

        if new_ready >= n && old.is_empty() {
            routing::set_split(&[Weight { version: target.clone(), weight: 100 }])?;
            progress::report(100, &format!("{target} serves on {n} replicas"));
            return Ok(Step::Done);
        }

        // Stop old replicas while enough replicas stay available.
        let available = new_ready + old_ready;
        let removable = available.saturating_sub(n - limits.unavailable.min(n)).min(old.len() as u32);
        if removable > 0 {
            st.draining = old.iter().take(removable as usize).map(|r| r.id.clone()).collect();
            progress::log(progress::Level::Info, &format!("draining {} old replicas", st.draining.len()));
            drain_and_stop(&st.draining, limits.drain_timeout_ms)?;
        }

        // Start new replicas while the total stays within the surge.
        let remaining_old = old.len() as u32 - removable;
        let room = (n + limits.surge).saturating_sub(remaining_old + new.len() as u32);
        let wanted = n.min(new.len() as u32 + room);
        if wanted > new.len() as u32 {
            containers::scale(target, wanted)?;
        }
        let percent = (new_ready * 100 / n.max(1)).min(99) as u8;
        progress::report(percent, &format!("{new_ready}/{n} new replicas ready, {} old left", remaining_old));
        Ok(Step::after_ms(200))
    }
}

hivemind_sdk::export_strategy!(RollingUpdate);
