//! `{{name}}`: a Hivemind deployment strategy. It starts the new release beside the old
//! one, then moves the traffic to it in equal steps (`--param steps=4`: 25%, 50%, 75%,
//! 100%) `--param interval=10` seconds apart, and drains and stops the old release.
//! A rollback (the SDK's default) puts the previous release back.
//!
//! The host calls `deploy` again and again; each call does a little and says when to be
//! called next. `State` is saved after every call, so a server restart loses nothing.

use hivemind_sdk::prelude::*;
use serde::{Deserialize, Serialize};

struct Plugin;

#[derive(Serialize, Deserialize, Default)]
struct State {
    /// How many traffic steps were taken.
    step: u32,
}

/// The new release's share of the traffic after `step` of `steps`, in percent.
fn share(step: u32, steps: u32) -> u32 {
    (step.saturating_mul(100) / steps.max(1)).min(100)
}

fn steps(d: &Deployment) -> Result<u32> {
    let steps: u32 = d.get_or("steps", 4)?;
    if !(1..=100).contains(&steps) {
        return Err(Error::msg(format!("steps must be from 1 to 100 (got {steps})")));
    }
    Ok(steps)
}

fn interval_ms(d: &Deployment) -> Result<u32> {
    let seconds: u32 = d.get_or("interval", 10)?;
    if seconds > 3600 {
        return Err(Error::msg(format!("interval must be at most 3600 seconds (got {seconds})")));
    }
    Ok(seconds * 1000)
}

impl Strategy for Plugin {
    const NAME: &'static str = "{{name}}";
    const VERSION: &'static str = "0.1.0";
    const DESCRIPTION: &'static str = "Move the traffic to the new release in equal steps";
    type State = State;

    fn validate(d: &Deployment) -> Result<()> {
        no_variants(d)?;
        steps(d)?;
        interval_ms(d).map(|_| ())
    }

    fn deploy(d: &Deployment, st: &mut State, _: &StepContext) -> Result<Step> {
        let target = &d.target;
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
        let steps = steps(d)?;
        if st.step < steps {
            st.step += 1;
            let share = share(st.step, steps);
            routing::set_split(&[
                Weight { version: previous.version.clone(), weight: 100 - share },
                Weight { version: target.version.clone(), weight: share },
            ])?;
            progress::log(progress::Level::Info, &format!("{} now gets {share}% of the traffic", target.version));
            progress::report((share * 9 / 10) as u8, &format!("step {} of {steps}", st.step));
            // Called again after the interval; the last step goes on at once.
            return Ok(Step::after_ms(if st.step < steps { interval_ms(d)? } else { 0 }));
        }
        let old: Vec<String> =
            containers::list()?.into_iter().filter(|r| r.version != target.version).map(|r| r.id).collect();
        if !drain_and_stop(&old, 30_000)? {
            return Ok(Step::after_ms(100));
        }
        Ok(Step::Done)
    }
}

hivemind_sdk::export_strategy!(Plugin);

#[cfg(test)]
mod tests {
    use super::share;

    #[test]
    fn the_traffic_moves_in_equal_steps_to_all_of_it() {
        assert_eq!((1..=4).map(|s| share(s, 4)).collect::<Vec<_>>(), [25, 50, 75, 100]);
        assert_eq!(share(1, 1), 100);
        assert_eq!(share(3, 3), 100);
    }
}
