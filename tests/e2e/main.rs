//! Hivemind's end-to-end tests, in one binary (linked once, not once per area): each
//! module drives the real `hivemind` binary — a real server on a temporary data dir, the
//! CLI run as a user would, real replicas (processes, or containers of the local Docker
//! engine), real HTTP through the real router. `common` is what they share; `scenarios`
//! are the strategy runs that both runtimes repeat.
//!
//! Run one area with `cargo test -p hivemind --test e2e strategies::`.

mod common;
mod scenarios;

mod acme;
mod analysis;
mod api;
mod book;
mod cluster;
mod dashboard;
mod deploy;
mod docker;
mod docs;
mod engine;
mod entrypoint;
mod example;
mod faults;
mod hardening;
mod heal;
mod hooks;
mod images;
mod layers;
mod parsers;
mod plugins;
mod privilege;
mod python;
mod router;
mod router_process;
mod sandbox;
mod scaffold;
mod simulator;
mod store;
mod strategies;
mod swarm;
mod trust;
