//! Hivemind: a deployment server (API, traffic router, engine) and the CLI that talks to
//! it. Modules, in the order data flows: cli → api → engine → plugins, runtime, router,
//! health → store.

pub mod acme;
pub mod api;
pub mod api_types;
pub mod cli;
pub mod cluster;
pub mod engine;
pub mod error;
pub mod health;
pub mod model;
pub mod plugins;
pub mod ports;
pub mod router;
pub mod runtime;
pub mod series;
pub mod server;
pub mod services;
pub mod store;
