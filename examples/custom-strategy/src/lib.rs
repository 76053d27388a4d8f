//! `linear`: moves 10% of the traffic to the new release every `interval` seconds
//! (`--param interval=5`), then removes the old one. An example of a strategy written
//! outside Hivemind's repository with the SDK.

use hivemind_sdk::prelude::*;
use serde::{Deserialize, Serialize};

struct Linear;

#[derive(Serialize, Deserialize, Default)]
struct State {
    /// The new release's share of traffic, in percent.
    share: u32,
    /// When the share last grew (ms since the epoch).
    since: u64,
}

fn interval_ms(d: &Deployment) -> Result<u64> {
    let seconds: u32 = d.get_or("interval", 10)?;
    if seconds > 3600 {
        return Err(Error::msg(format!("interval must be at most 3600 seconds (got {seconds})")));
    }
    Ok(seconds as u64 * 1000)
}

impl Strategy for Linear {
    const NAME: &'static str = "linear";
    const VERSION: &'static str = "0.1.0";
    const DESCRIPTION: &'static str = "Move 10% of the traffic to the new release every interval";
    type State = State;

    fn validate(d: &Deployment) -> Result<()> {
        no_variants(d)?;
        interval_ms(d).map(|_| ())
    }

    fn deploy(d: &Deployment, st: &mut State, _: &StepContext) -> Result<Step> {
        let target = &d.target;
        // The new release runs in full from the start; only its traffic grows.
        let replicas = containers::scale(&target.version, target.replicas)?;
        let readiness = probe(&replicas)?;
        check_ready_in_time(d, &readiness)?;
        if !readiness.waiting.is_empty() {
            return Ok(Step::after_ms(200));
        }
        let Some(previous) = &d.previous else {
            routing::set_split(&[Weight { version: target.version.clone(), weight: 100 }])?;
            return Ok(Step::Done);
        };
        let now = now_ms();
        if st.share < 100 && now.saturating_sub(st.since) >= interval_ms(d)? {
            st.share = (st.share + 10).min(100);
            st.since = now;
            progress::log(progress::Level::Info, &format!("{} now gets {}% of the traffic", target.version, st.share));
        }
        routing::set_split(&[
            Weight { version: previous.version.clone(), weight: 100 - st.share },
            Weight { version: target.version.clone(), weight: st.share },
        ])?;
        progress::report(st.share.min(99) as u8, &format!("{}% on {}", st.share, target.version));
        if st.share < 100 {
            return Ok(Step::after_ms(200));
        }
        let old: Vec<String> =
            containers::list()?.into_iter().filter(|r| r.version != target.version).map(|r| r.id).collect();
        if !drain_and_stop(&old, 30_000)? {
            return Ok(Step::after_ms(100));
        }
        Ok(Step::Done)
    }
}

hivemind_sdk::export_strategy!(Linear);
