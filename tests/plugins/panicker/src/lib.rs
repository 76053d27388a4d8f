//! Panics in its first step: the step must fail with the panic's message.
use hivemind_sdk::prelude::*;

struct Panicker;

impl Strategy for Panicker {
    const NAME: &'static str = "test-panicker";
    const VERSION: &'static str = "0.1.0";
    const DESCRIPTION: &'static str = "panics";
    type State = ();

    fn deploy(_: &Deployment, _: &mut (), _: &StepContext) -> Result<Step> {
        panic!("the test plugin panics on purpose");
    }

    fn rollback(_: &Deployment, _: &mut (), _: &StepContext) -> Result<Step> {
        Ok(Step::Done)
    }
}

hivemind_sdk::export_strategy!(Panicker);
