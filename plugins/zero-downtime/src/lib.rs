//! `zero-downtime`: replace replicas in batches. For each batch it starts `batch-size`
//! new replicas, waits until they pass their health checks, shifts traffic to them in
//! four steps, drains the batch's old replicas (at most `drain-timeout`), removes them
//! and waits `batch-delay`. A batch that fails its health checks rolls everything back.

use hivemind_sdk::prelude::*;
use serde::{Deserialize, Serialize};

struct ZeroDowntime;

/// Traffic moves to a batch in this many equal steps.
const RAMP_STEPS: u32 = 4;
/// Time between ramp steps.
const RAMP_STEP_MS: u32 = 250;

#[derive(Serialize, Deserialize, Default, Debug, PartialEq)]
enum Stage {
    /// Start the batch's replicas and wait until they are healthy.
    #[default]
    Start,
    /// Traffic moved to the batch in this many ramp steps so far.
    Ramp(u32),
    /// Drain and remove the batch's old replicas.
    Drain,
    /// Wait until this time (ms since the epoch) before the next batch.
    Delay(u64),
}

#[derive(Serialize, Deserialize, Default)]
struct State {
    batch: u32,
    stage: Stage,
    /// New replicas that took traffic in earlier batches.
    in_service: Vec<String>,
    /// This batch's new replicas, once healthy.
    batch_new: Vec<String>,
    /// This batch's old replicas, draining.
    batch_old: Vec<String>,
}

struct Settings {
    batch_size: u32,
    batch_delay_ms: u64,
    drain_timeout_ms: u32,
}

fn settings(d: &Deployment) -> Result<Settings> {
    let batch_size: i64 = d.get_or("batch-size", 1)?;
    if batch_size < 1 {
        return Err(Error::msg(format!("batch-size must be at least 1 (got {batch_size})")));
    }
    let batch_delay: i64 = d.get_or("batch-delay", 0)?;
    if batch_delay < 0 {
        return Err(Error::msg(format!("batch-delay must be 0 or more seconds (got {batch_delay})")));
    }
    let drain_timeout: i64 = d.get_or("drain-timeout", 30)?;
    if drain_timeout < 1 {
        return Err(Error::msg(format!(
            "drain-timeout must be at least 1 second (got {drain_timeout}): the old replicas' requests need time to finish"
        )));
    }
    Ok(Settings {
        batch_size: batch_size.min(u32::MAX as i64) as u32,
        // A rollback of a completed deployment brings back a release that served before:
        // it does not wait between batches.
        batch_delay_ms: if context::rollback_of().is_some() { 0 } else { batch_delay as u64 * 1000 },
        drain_timeout_ms: drain_timeout.min(3600) as u32 * 1000,
    })
}

impl Strategy for ZeroDowntime {
    const NAME: &'static str = "zero-downtime";
    const VERSION: &'static str = "1.0.0";
    const DESCRIPTION: &'static str =
        "Replace replicas in batches: start, health-check, shift traffic gradually, drain, remove";
    type State = State;

    fn validate(d: &Deployment) -> Result<()> {
        no_variants(d)?;
        settings(d).map(|_| ())
    }

    fn deploy(d: &Deployment, st: &mut State, _: &StepContext) -> Result<Step> {
        let p = settings(d)?;
        let n = d.target.replicas;
        let target = d.target.version.clone();
        let previous = d.previous.as_ref().map(|r| r.version.clone());
        let (new, old): (Vec<Replica>, Vec<Replica>) =
            containers::list()?.into_iter().partition(|r| r.version == target);
        st.in_service.retain(|id| new.iter().any(|r| &r.id == id));
        let batches = n.div_ceil(p.batch_size);

        match st.stage {
            Stage::Start => {
                if st.in_service.len() as u32 >= n && old.is_empty() {
                    routing::set_split(&[Weight { version: target.clone(), weight: 100 }])?;
                    progress::report(100, &format!("{target} serves on {n} replicas"));
                    return Ok(Step::Done);
                }
                let wanted = n.min(st.in_service.len() as u32 + p.batch_size);
                let replicas = containers::scale(&target, wanted)?;
                let batch: Vec<Replica> = replicas.into_iter().filter(|r| !st.in_service.contains(&r.id)).collect();
                let readiness = probe(&batch)?;
                check_ready_in_time(d, &readiness)
                    .map_err(|e| Error(format!("batch {} of {batches}: {e}", st.batch + 1)))?;
                let percent = (st.batch * 100 / batches.max(1)) as u8;
                if !readiness.waiting.is_empty() {
                    progress::report(
                        percent,
                        &format!(
                            "batch {}/{batches}: {}/{} new replicas healthy",
                            st.batch + 1,
                            readiness.ready.len(),
                            batch.len()
                        ),
                    );
                    return Ok(Step::after_ms(200));
                }
                st.batch_new = batch.iter().map(|r| r.id.clone()).collect();
                let removable = (old.len() as u32)
                    .min(st.batch_new.len() as u32)
                    .min(old.len() as u32 + st.in_service.len() as u32 + st.batch_new.len() as u32 - n);
                st.batch_old = old.iter().take(removable as usize).map(|r| r.id.clone()).collect();
                st.stage = Stage::Ramp(0);
                progress::log(
                    progress::Level::Info,
                    &format!(
                        "batch {}/{batches}: {} new replicas healthy; shifting traffic",
                        st.batch + 1,
                        st.batch_new.len()
                    ),
                );
                Ok(Step::after_ms(0))
            }
            Stage::Ramp(k) => {
                // Each replica in service weighs RAMP_STEPS; the batch's new replicas gain
                // weight step by step while its old replicas lose the same.
                let k = k + 1;
                let ramped_new = RAMP_STEPS * st.in_service.len() as u32 + k * st.batch_new.len() as u32;
                let old_weight = (RAMP_STEPS * old.len() as u32).saturating_sub(k * st.batch_old.len() as u32);
                let mut split = vec![Weight { version: target.clone(), weight: ramped_new }];
                if let Some(previous) = &previous {
                    split.push(Weight { version: previous.clone(), weight: old_weight });
                }
                routing::set_split(&split)?;
                st.stage = if k >= RAMP_STEPS { Stage::Drain } else { Stage::Ramp(k) };
                Ok(Step::after_ms(RAMP_STEP_MS))
            }
            Stage::Drain => {
                if !drain_and_stop(&st.batch_old, p.drain_timeout_ms)? {
                    return Ok(Step::after_ms(100));
                }
                st.in_service.append(&mut st.batch_new);
                st.batch_old.clear();
                st.batch += 1;
                // No pause after the last batch: nothing is left to wait for.
                let last = st.in_service.len() as u32 >= n;
                st.stage = if last { Stage::Start } else { Stage::Delay(now_ms() + p.batch_delay_ms) };
                let percent = (st.batch * 100 / batches.max(1)).min(99) as u8;
                progress::report(
                    percent,
                    &format!("batch {}/{batches} done: {} of {n} replicas replaced", st.batch, st.in_service.len()),
                );
                Ok(Step::after_ms(0))
            }
            Stage::Delay(until) => {
                let now = now_ms();
                if now < until {
                    return Ok(Step::after_ms((until - now).min(60_000) as u32));
                }
                st.stage = Stage::Start;
                Ok(Step::after_ms(0))
            }
        }
    }
}

hivemind_sdk::export_strategy!(ZeroDowntime);
