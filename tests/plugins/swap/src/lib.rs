//! A small all-at-once strategy whose version and name are set when it is built
//! (HIVEMIND_TEST_SWAP_VERSION, HIVEMIND_TEST_SWAP_NAME), so a test can install version 1
//! and then version 2 of the same plugin on a running server, or one named like a built-in. It starts the target, waits `pause-ms`, switches
//! all traffic, then drains and stops everything else: no request is lost.
use hivemind_sdk::prelude::*;

struct Swap;

impl Strategy for Swap {
    const NAME: &'static str = match option_env!("HIVEMIND_TEST_SWAP_NAME") {
        Some(n) => n,
        None => "test-swap",
    };
    const VERSION: &'static str = match option_env!("HIVEMIND_TEST_SWAP_VERSION") {
        Some(v) => v,
        None => "1.0.0",
    };
    const DESCRIPTION: &'static str = "all at once, without dropping a request";
    type State = Option<u64>;

    fn deploy(d: &Deployment, ready_at: &mut Option<u64>, _: &StepContext) -> Result<Step> {
        let target = &d.target;
        let replicas = containers::scale(&target.version, target.replicas)?;
        let readiness = probe(&replicas)?;
        check_ready_in_time(d, &readiness)?;
        if !readiness.waiting.is_empty() {
            return Ok(Step::after_ms(100));
        }
        let since = *ready_at.get_or_insert_with(now_ms);
        let pause: u64 = d.get_or("pause-ms", 0)?;
        if now_ms() < since + pause {
            progress::report(50, "waiting before the switch");
            return Ok(Step::after_ms(100));
        }
        routing::set_split(&[Weight { version: target.version.clone(), weight: 100 }])?;
        let others: Vec<String> =
            containers::list()?.into_iter().filter(|r| r.version != target.version).map(|r| r.id).collect();
        Ok(if drain_and_stop(&others, 5_000)? { Step::Done } else { Step::after_ms(100) })
    }
}

hivemind_sdk::export_strategy!(Swap);
