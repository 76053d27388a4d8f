//! A strategy built against plugin API 0.1.0, the released contract in `wit/v0.1.0` at the
//! top of the repository (never edited, see `wit/README.md`), with wit-bindgen and no SDK:
//! every host that lists 0.1.0 must load and run it unchanged, as minor versions only add.
// The path is relative to this crate's Cargo.toml (tests/plugins/legacy).
wit_bindgen::generate!({ path: "../../../wit/v0.1.0", world: "hivemind:plugin/strategy" });

use hivemind::plugin::{containers, health, routing};

struct Legacy;

impl Guest for Legacy {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "test-legacy".into(),
            version: "0.1.0".into(),
            description: "a strategy built for plugin API 0.1.0".into(),
        }
    }

    fn validate(_: Deployment) -> Result<(), String> {
        Ok(())
    }

    /// Starts the target, routes all traffic to it once healthy, stops the rest.
    fn step(d: Deployment, cx: StepContext) -> StepOutcome {
        if cx.phase == Phase::Rollback {
            return StepOutcome::Done;
        }
        let version = d.target.version.clone();
        if let Err(e) = containers::scale(&version, d.target.replicas) {
            return StepOutcome::Failed(format!("{e:?}"));
        }
        if health::healthy_count(&version) < d.target.replicas {
            return StepOutcome::Continue(100);
        }
        if let Err(e) = routing::set_split(&[routing::Weight { version: version.clone(), weight: 100 }]) {
            return StepOutcome::Failed(format!("{e:?}"));
        }
        let others: Vec<String> = match containers::list() {
            Ok(all) => all.into_iter().filter(|r| r.version != version).map(|r| r.id).collect(),
            Err(e) => return StepOutcome::Failed(format!("{e:?}")),
        };
        match containers::stop(&others, 1000) {
            Ok(()) => StepOutcome::Done,
            Err(e) => StepOutcome::Failed(format!("{e:?}")),
        }
    }
}

export!(Legacy);
