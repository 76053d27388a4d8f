//! The records every layer shares: what a user asks for (`spec`), what a deployment is
//! (`deployment`), and apps, replicas, events and plugin kinds (`records`), named by
//! the types of `names`.

mod deployment;
mod names;
mod records;
mod secrets;
mod spec;
mod split;

pub use deployment::*;
pub use names::{AppName, DeploymentId, StrategyName};
pub use records::*;
pub use secrets::{fingerprint, masked, without_userinfo};
pub use spec::*;
pub use split::{Split, SplitError};

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_millis() as i64
}

/// Renders milliseconds since the epoch as RFC 3339.
pub fn rfc3339(ms: i64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)).to_string()
}
