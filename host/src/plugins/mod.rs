//! The plugin runtime: strategies and hooks are WebAssembly components, run sandboxed.
//!
//! - `contract`: the plugin API versions this host runs, one released folder `wit/vX.Y.Z` each;
//! - `bindings`: the latest contract as Rust, a `bindgen!` per world;
//! - `registry`: loading, type-checking and finding plugins by name or sha256;
//! - `sandbox`: the engine, the linkers, a store's limits, trap descriptions;
//! - `calls`: one call (validate, step, a hook's run) in a fresh store, under its timeout;
//! - `scope`: what one call may reach (the deployment's app and versions);
//! - `platform`: what the capabilities act on, the server's services or the simulator's
//!   world (one trait, so that both run the same capability code);
//! - `capabilities`: the host side of each WIT interface, one file each, failing with
//!   `error::CapabilityError`;
//! - `bounds`: how much a plugin may hand the host;
//! - `trust`: signatures, and which signers a server takes plugins from;
//! - `simulator`: a strategy run against a simulated host (`plugin test`).

mod bindings;
pub mod bounds;
mod builtin;
mod calls;
mod capabilities;
mod contract;
mod error;
mod platform;
mod registry;
mod sandbox;
mod scope;
pub mod simulator;
pub mod trust;

pub use bindings::{Phase, Stage, StepContext, StepOutcome, wit};
pub use contract::{API_LATEST, API_VERSIONS};
pub use error::CapabilityError;
pub use hivemind_model::plugin::validate_name;
pub use platform::Platform;
pub use registry::{LoadedPlugin, PluginHost, hex};
pub use sandbox::Limits;
pub use scope::{HookCaps, PluginState, Scope, StepCaps};
