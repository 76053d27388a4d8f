//! The plugin runtime: strategies and hooks are WebAssembly components, run sandboxed.
//!
//! - `contract`: the plugin API versions this host runs, one released folder `wit/vX.Y.Z` each;
//! - `bindings`: the latest contract as Rust, a linker per world;
//! - `registry`: loading, type-checking and finding plugins by name or sha256;
//! - `sandbox`: the engine, a fresh store per call with its limits, trap descriptions;
//! - `scope`: what one call may reach (the deployment's app and versions);
//! - `capabilities`: the host side of each WIT interface, one file each;
//! - `bounds`: how much a plugin may hand the host;
//! - `trust`: signatures, and which signers a server takes plugins from;
//! - `simulator`: a strategy run against a simulated host (`plugin test`).

mod bindings;
pub mod bounds;
mod builtin;
mod capabilities;
mod contract;
mod registry;
mod sandbox;
mod scope;
pub mod simulator;
pub mod trust;

pub use bindings::{Phase, Stage, StepContext, StepOutcome, wit};
pub use capabilities::CapabilityError;
pub use contract::{API_LATEST, API_VERSIONS};
pub use registry::{LoadedPlugin, PluginHost, hex, validate_name};
pub use sandbox::Limits;
pub use scope::{HookCaps, PluginState, Scope, StepCaps};
