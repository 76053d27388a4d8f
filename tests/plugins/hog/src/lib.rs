//! Grows its memory without bound: the memory cap must stop it.
use hivemind_sdk::prelude::*;

struct Hog;

impl Strategy for Hog {
    const NAME: &'static str = "test-hog";
    const VERSION: &'static str = "0.1.0";
    const DESCRIPTION: &'static str = "allocates until something stops it";
    type State = ();

    fn deploy(_: &Deployment, _: &mut (), _: &StepContext) -> Result<Step> {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(vec![1u8; 1 << 20]);
            std::hint::black_box(&hoard);
        }
    }

    fn rollback(_: &Deployment, _: &mut (), _: &StepContext) -> Result<Step> {
        Ok(Step::Done)
    }
}

hivemind_sdk::export_strategy!(Hog);
