//! One hostile strategy, many attacks: `--param mode=NAME` picks what it does to the host.
//! Each mode is an attack the hardening issue found; the host must contain it and say
//! clearly what happened.
//!
//! - `state-keys`: writes 1 MiB under a new state key every step.
//! - `big-state`: keeps a typed SDK state over 1 MiB.
//! - `raw-big-value`: writes a 2 MiB state value through the raw capability.
//! - `shout-failed`, `shout-await`: fails, or awaits approval, with a 10 MiB reason.
//! - `shout-report`: reports a 10 MiB progress message and logs 10 MiB lines, forever.
//! - `deep-step`, `deep-validate`: overflows its stack with large frames.
//! - `bad-rollback`: moves all traffic to the new release and stops the old one, then
//!   fails; its rollback fails too.
//! - `busy`: asks to be called again at once, forever, changing nothing.
//! - `stall`: starts a replica, then waits on slow host calls (the metrics endpoint param
//!   points at `/slow`).
//! - `greedy`: asks for 64 replicas of its app.
use hivemind_sdk::prelude::*;
use serde::{Deserialize, Serialize};

struct Hostile;

#[derive(Serialize, Deserialize, Default)]
struct State {
    steps: u32,
    hoard: Vec<u8>,
}

const TEN_MIB: usize = 10 << 20;

fn mode(d: &Deployment) -> String {
    d.raw("mode").unwrap_or("").to_string()
}

/// Recurses with 64 KiB frames: 100 of them are far past the 1 MiB stack.
#[inline(never)]
fn deep(n: u32) -> u64 {
    let mut frame = [0u8; 64 << 10];
    frame[n as usize % 1024] = n as u8;
    std::hint::black_box(&mut frame);
    if n == 0 {
        return frame[0] as u64;
    }
    deep(n - 1) + frame[1] as u64
}

impl Strategy for Hostile {
    const NAME: &'static str = "test-hostile";
    const VERSION: &'static str = "0.1.0";
    const DESCRIPTION: &'static str = "attacks the host in the way its mode parameter says";
    type State = State;

    fn validate(d: &Deployment) -> Result<()> {
        if mode(d) == "deep-validate" {
            std::hint::black_box(deep(100));
        }
        Ok(())
    }

    fn deploy(d: &Deployment, st: &mut State, _: &StepContext) -> Result<Step> {
        st.steps += 1;
        let target = &d.target;
        Ok(match mode(d).as_str() {
            "state-keys" => {
                let key = format!("hoard-{}", st.steps);
                hivemind_sdk::strategy_bindings::hivemind::plugin::state::set(&key, &vec![7u8; 1 << 20]);
                Step::after_ms(0)
            }
            "big-state" => {
                st.hoard = vec![1u8; (1 << 20) + 1];
                Step::after_ms(0)
            }
            "raw-big-value" => {
                hivemind_sdk::strategy_bindings::hivemind::plugin::state::set("big", &vec![7u8; 2 << 20]);
                Step::after_ms(0)
            }
            "shout-failed" => Step::failed("F".repeat(TEN_MIB)),
            "shout-await" => Step::AwaitApproval("A".repeat(TEN_MIB)),
            "shout-report" => {
                progress::report(10, &"R".repeat(TEN_MIB));
                for _ in 0..3 {
                    progress::log(progress::Level::Info, &"L".repeat(TEN_MIB / 4));
                }
                Step::after_ms(200)
            }
            "deep-step" => {
                std::hint::black_box(deep(100));
                Step::Done
            }
            "bad-rollback" => {
                let replicas = containers::scale(&target.version, target.replicas)?;
                if probe(&replicas)?.ready.len() < replicas.len() {
                    return Ok(Step::after_ms(100));
                }
                routing::set_split(&[Weight { version: target.version.clone(), weight: 100 }])?;
                let old: Vec<String> =
                    containers::list()?.into_iter().filter(|r| r.version != target.version).map(|r| r.id).collect();
                containers::stop(&old, 1000)?;
                Step::failed("the new release is bad, on purpose")
            }
            "busy" => Step::after_ms(0),
            "stall" => {
                containers::scale(&target.version, 1)?;
                if health::healthy_count(&target.version) < 1 {
                    return Ok(Step::after_ms(100));
                }
                for _ in 0..100 {
                    let _ = metrics::app_counter(&target.version, "never_there_total");
                }
                Step::Done
            }
            "greedy" => {
                containers::scale(&target.version, 64)?;
                Step::Done
            }
            other => Step::failed(format!("unknown mode `{other}`")),
        })
    }

    fn rollback(d: &Deployment, _: &mut State, cx: &StepContext) -> Result<Step> {
        match mode(d).as_str() {
            "bad-rollback" => Ok(Step::failed("the rollback fails too, on purpose")),
            _ => restore_previous(d, cx),
        }
    }
}

hivemind_sdk::export_strategy!(Hostile);
