//! Does nothing and is done: measures the bare cost of a step (instantiate and call),
//! including the SDK's state load and save.
use hivemind_sdk::prelude::*;

struct Noop;

#[derive(serde::Serialize, serde::Deserialize, Default)]
struct Calls {
    count: u64,
}

impl Strategy for Noop {
    const NAME: &'static str = "test-noop";
    const VERSION: &'static str = "0.1.0";
    const DESCRIPTION: &'static str = "does nothing";
    type State = Calls;

    fn deploy(_: &Deployment, calls: &mut Calls, _: &StepContext) -> Result<Step> {
        calls.count += 1;
        Ok(Step::Done)
    }
}

hivemind_sdk::export_strategy!(Noop);
