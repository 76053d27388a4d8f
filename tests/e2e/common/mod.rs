//! What the end-to-end tests share: a real `hivemind serve` on a temporary data dir, the
//! CLI run as a user would, the demo app (as a process or as a local Docker image), and
//! the test plugins.
#![allow(dead_code)]

pub mod images;
pub mod postgres;
pub mod registry;
pub mod webdriver;

mod artifacts;
mod http_client;
mod load;
mod processes;
mod requires;
mod server;
mod store;
mod tls;

pub use artifacts::*;
pub use http_client::*;
pub use load::*;
pub use processes::*;
pub use requires::*;
pub use server::*;
pub use store::*;
pub use tls::*;

use std::time::{Duration, Instant};

/// Waits until `check` holds, polling every 50 ms; fails the test after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
