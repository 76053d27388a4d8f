//! Hivemind: a deployment server (API, traffic router, engine), and the `hivemind`
//! binary that holds it and the CLI (the `hivemind-cli` crate, which talks to a server
//! over the API). Modules, in the order data flows: api → engine → plugins, runtime,
//! router, health → store; `local` carries out the commands that run in this process.
//! The records every layer shares (`model`, `api_types`, `error`) are the
//! `hivemind-model` crate, which depends on nothing of this one; `store` is the
//! `hivemind-store` crate, which depends on the model alone.

pub use hivemind_engine as engine;
pub use hivemind_engine::{acme, series, services};
pub use hivemind_health as health;
pub use hivemind_model::{api_types, error, model};
pub use hivemind_plugins as plugins;
pub use hivemind_ports as ports;
pub use hivemind_router as router;
pub use hivemind_runtime as runtime;
pub use hivemind_store as store;

pub mod api;
pub mod cluster;
pub mod local;
pub mod server;
pub mod simulator;
