//! # hivemind-sdk
//!
//! Write Hivemind deployment strategies and hooks in plain Rust, compiled to
//! WebAssembly components (`wasm32-wasip2`). The plugin contract, `wit/plugin.wit`, ships
//! inside this crate: depend on it by version or by git reference, nothing else is needed.
//!
//! A strategy is a small state machine. The host calls it again and again; each call
//! ([`Strategy::deploy`] or [`Strategy::rollback`]) does a short piece of work through the
//! capabilities in [`containers`], [`routing`], [`health`], [`metrics`] and [`progress`],
//! and says what should happen next with a [`Step`]. Your typed state is loaded before
//! each call and saved after it, so a strategy survives host restarts for free.
//!
//! ```ignore
//! use hivemind_sdk::prelude::*;
//!
//! struct AllAtOnce;
//!
//! impl Strategy for AllAtOnce {
//!     const NAME: &'static str = "all-at-once";
//!     const VERSION: &'static str = "0.1.0";
//!     const DESCRIPTION: &'static str = "Start the new release, route to it, stop the old one";
//!     type State = ();
//!
//!     fn deploy(d: &Deployment, _: &mut (), cx: &StepContext) -> Result<Step> {
//!         let target = &d.target;
//!         containers::scale(&target.version, target.replicas)?;
//!         if health::healthy_count(&target.version) < target.replicas {
//!             return Ok(Step::after_ms(250));
//!         }
//!         routing::set_split(&[Weight { version: target.version.clone(), weight: 100 }])?;
//!         Ok(Step::Done)
//!     }
//! }
//!
//! hivemind_sdk::export_strategy!(AllAtOnce);
//! ```
//!
//! ## The rules of a step
//!
//! * **Short.** Return [`Step::after_ms`] instead of waiting; the host sleeps for you, and
//!   each call has a fuel budget and a wall-clock limit.
//! * **Idempotent.** If the host crashes mid-step it calls the step again. Prefer the
//!   declarative capabilities ([`containers::scale`] to an absolute count,
//!   [`routing::set_split`]) that are safe to repeat.
//! * **Scoped.** Every capability acts on the deployment's app only.

#[cfg(all(feature = "strategy", feature = "hook"))]
compile_error!(
    "enable one of the `strategy` and `hook` features of hivemind-sdk, not both: a component is one or the other"
);

mod error;
mod params;
pub mod stats;

pub use error::{Error, Result};
pub use params::{Params, percentages};

#[cfg(feature = "strategy")]
mod strategy;
#[cfg(feature = "strategy")]
pub use strategy::*;

#[cfg(feature = "hook")]
mod hook;
#[cfg(feature = "hook")]
pub use hook::*;

/// Everything a plugin usually needs, in one `use`.
pub mod prelude {
    pub use crate::{Error, Params, Result};

    #[cfg(feature = "strategy")]
    pub use crate::strategy::{
        Amount, Deployment, DrainState, Phase, Readiness, Release, Replica, ReplicaState, Step, StepContext, Strategy,
        Variant, Weight, check_ready_in_time, containers, context, drain_and_stop, health, metrics, no_variants,
        now_ms, probe, progress, restore_previous, routing,
    };

    #[cfg(feature = "hook")]
    pub use crate::hook::{Deployment, Hook, Stage, http, jobs, progress};
}

#[doc(hidden)]
pub mod __private {
    pub use serde_json;
}
