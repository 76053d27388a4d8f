//! Tries to stop a replica of another app (named by its `victim` parameter): the
//! containers capability must deny it.
use hivemind_sdk::prelude::*;

struct Trespasser;

impl Strategy for Trespasser {
    const NAME: &'static str = "test-trespasser";
    const VERSION: &'static str = "0.1.0";
    const DESCRIPTION: &'static str = "reaches for another app's replicas";
    type State = ();

    fn deploy(d: &Deployment, _: &mut (), _: &StepContext) -> Result<Step> {
        let victim: String = d.get("victim")?.ok_or("parameter victim is required")?;
        containers::stop(&[victim], 0)?;
        Ok(Step::Done)
    }

    fn rollback(_: &Deployment, _: &mut (), _: &StepContext) -> Result<Step> {
        Ok(Step::Done)
    }
}

hivemind_sdk::export_strategy!(Trespasser);
