//! A store that cannot be written for a while (its disk full, its database stopped) is
//! waited out, not the end of anything: the step loops retry, `/healthz` says the server
//! is degraded, and the deployments' logs say how long it lasted once they can be written.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often a step loop that met a store fault tries again.
pub const RETRY_EVERY: Duration = Duration::from_secs(5);

/// The store fault under way, if there is one: its cause and when it was first seen.
#[derive(Default)]
pub struct StoreOutage(Mutex<Option<(String, Instant)>>);

impl StoreOutage {
    /// A write failed for `cause`; returns whether this starts the outage.
    pub fn begin(&self, cause: &str) -> bool {
        let mut outage = self.0.lock().unwrap();
        match outage.as_mut() {
            Some((known, _)) => {
                *known = cause.to_string();
                false
            }
            None => {
                *outage = Some((cause.to_string(), Instant::now()));
                true
            }
        }
    }

    /// A write went through: the outage, if there was one, is over, after this long.
    pub fn end(&self) -> Option<Duration> {
        self.0.lock().unwrap().take().map(|(_, since)| since.elapsed())
    }

    /// What `/healthz` says while the store cannot be written.
    pub fn describe(&self) -> Option<String> {
        self.0.lock().unwrap().as_ref().map(|(cause, since)| {
            format!(
                "the store has been unavailable for {} s: {cause}; deployments under way retry every {} s",
                since.elapsed().as_secs(),
                RETRY_EVERY.as_secs()
            )
        })
    }
}
