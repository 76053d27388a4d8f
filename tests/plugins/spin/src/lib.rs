//! Loops forever in its first step: the fuel budget must stop it.
use hivemind_sdk::prelude::*;

struct Spin;

impl Strategy for Spin {
    const NAME: &'static str = "test-spin";
    const VERSION: &'static str = "0.1.0";
    const DESCRIPTION: &'static str = "loops forever";
    type State = ();

    fn deploy(_: &Deployment, _: &mut (), _: &StepContext) -> Result<Step> {
        let mut x: u64 = 0;
        loop {
            x = std::hint::black_box(x.wrapping_add(1));
        }
    }

    fn rollback(_: &Deployment, _: &mut (), _: &StepContext) -> Result<Step> {
        Ok(Step::Done)
    }
}

hivemind_sdk::export_strategy!(Spin);
