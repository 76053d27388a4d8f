//! What `hivemind plugin test` reports: a strategy's run through the simulator's
//! scenarios. The simulator (in the server's crates) writes it; the CLI prints it.

use serde::Serialize;
use std::time::Duration;

/// What the simulated app and its traffic look like, for every scenario.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The strategy's parameters, as `--param` gives them.
    pub params: Vec<(String, String)>,
    /// Replicas of each release.
    pub replicas: u32,
    /// How long a new replica takes to become healthy.
    pub start: Duration,
    /// The chance that a probe of a started replica fails.
    pub probe_fail_rate: f64,
    /// Requests per second, and the share every version answers with a 5xx.
    pub rps: f64,
    pub error_rate: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            params: Vec::new(),
            replicas: 3,
            start: Duration::from_secs(2),
            probe_fail_rate: 0.0,
            rps: 50.0,
            error_rate: 0.001,
        }
    }
}

/// How a simulated deployment ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "ended", content = "reason")]
pub enum Ending {
    Completed,
    RolledBack,
    /// The rollback phase failed too (a server would restore the previous release itself).
    Failed(String),
    /// `validate` refused the deployment.
    Refused(String),
    /// Still under way when the simulation gave up.
    Unfinished(String),
}

/// One scenario's run.
#[derive(Debug, Serialize)]
pub struct ScenarioReport {
    pub name: &'static str,
    pub expected: &'static str,
    pub ending: Ending,
    pub passed: bool,
    /// Why it passed or not, in one line.
    pub verdict: String,
    pub simulated_ms: u64,
    pub steps: u32,
    pub requests: u64,
    pub failed_requests: u64,
    /// What happened, as (simulated ms, line).
    pub timeline: Vec<(u64, String)>,
}

/// A plugin's run through every scenario.
#[derive(Debug, Serialize)]
pub struct Report {
    pub plugin: String,
    pub version: String,
    /// Set when the strategy runs only A/B tests: the variants it was given.
    pub variants: Vec<String>,
    pub scenarios: Vec<ScenarioReport>,
    pub wall_ms: u64,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.scenarios.iter().all(|s| s.passed)
    }
}

/// "1m 12.4s", "850ms".
pub fn duration(ms: u64) -> String {
    match ms {
        0..1000 => format!("{ms}ms"),
        1000..60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        _ => format!("{}m {:.1}s", ms / 60_000, (ms % 60_000) as f64 / 1000.0),
    }
}
