//! Hivemind: a deployment server (API, traffic router, engine) and the CLI that talks to
//! it. Modules, in the order data flows: cli → api → engine → plugins, runtime, router,
//! health → store. The records every layer shares (`model`, `api_types`, `error`) are the
//! `hivemind-model` crate, which depends on nothing of this one.

pub use hivemind_model::{api_types, error, model};

pub mod acme;
pub mod api;
pub mod cli;
pub mod cluster;
pub mod engine;
pub mod health;
pub mod plugins;
pub mod ports;
pub mod router;
pub mod runtime;
pub mod series;
pub mod server;
pub mod services;
pub mod store;
