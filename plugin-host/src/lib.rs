//! The plugin runtime: strategies and hooks are WebAssembly components, run sandboxed.
//!
//! - `contract`: the plugin API versions this host runs, one released folder `wit/vX.Y.Z` each;
//! - `bindings`: the latest contract as Rust, a `bindgen!` per world;
//! - `registry`: loading, type-checking and finding plugins by name or sha256;
//! - `sandbox`: the engine, the linkers, a store's limits, trap descriptions;
//! - `calls`: one call (validate, step, a hook's run) in a fresh store, under its timeout;
//! - `scope`: what one call may reach (the deployment's app and versions);
//! - `platform`: what the capabilities act on, the server's services or the simulator's
//!   world (one trait, so that both run the same capability code; the simulator, which
//!   drives the engine's machine, is a module of the host, `hivemind::simulator`);
//! - `capabilities`: the host side of each WIT interface, one file each, failing with
//!   `error::CapabilityError`;
//! - `bounds`: how much a plugin may hand the host;
//! - `hook_hosts`: the hosts hooks may send HTTP to;
//! - `trust`: signatures, and which signers a server takes plugins from.
//!
//! A crate of its own, over the model, the store, the runtime, the router and the health
//! probes: the compiler keeps the engine, the API and the simulator out of the sandbox.

mod bindings;
pub mod bounds;
mod builtin;
mod calls;
mod capabilities;
mod contract;
mod error;
mod hook_hosts;
mod platform;
mod registry;
mod sandbox;
mod scope;
pub mod trust;

use hivemind_health as health;
use hivemind_model::model;
use hivemind_router as router;
use hivemind_runtime as runtime;
use hivemind_store as store;

pub use bindings::strategy::StrategyPre;
pub use bindings::{Phase, Stage, StepContext, StepOutcome, wit};
pub use contract::{API_LATEST, API_VERSIONS};
pub use error::CapabilityError;
pub use hivemind_model::plugin::validate_name;
pub use hook_hosts::HookHosts;
pub use platform::Platform;
pub use registry::{LoadedPlugin, PluginHost, hex};
pub use sandbox::engine as wasm_engine;
pub use sandbox::{HostState, Limits, describe_trap, linkers, new_store};
pub use scope::{HookCaps, PluginState, Scope, StepCaps};
