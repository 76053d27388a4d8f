//! `progress`: telling people what is happening. A report sets the deployment's progress
//! and message (bounded); a log line goes to its event log (bounded, and a bounded number
//! per call).

use super::{HostState, bounds};
use crate::bindings::strategy::hivemind::plugin::progress;
use crate::model::Level;

impl progress::Host for HostState {
    async fn report(&mut self, percent: u8, message: String) -> wasmtime::Result<()> {
        if let Some(caps) = self.step.as_mut() {
            caps.writes.progress = Some((percent.min(100), bounds::bounded(message, bounds::MESSAGE_BYTES)));
        }
        Ok(())
    }

    async fn log(&mut self, level: progress::Level, message: String) -> wasmtime::Result<()> {
        let level = match level {
            progress::Level::Debug => Level::Debug,
            progress::Level::Info => Level::Info,
            progress::Level::Warn => Level::Warn,
            progress::Level::Error => Level::Error,
        };
        self.log_line(level, message);
        Ok(())
    }
}
