//! Replicas: the drivers that run them (`process`, `docker`, `swarm`) behind one trait, and the
//! fleet that knows which replicas each app has. A crate of its own, over the model, the
//! store (which records each replica before it starts) and the ports.

mod docker;
mod fleet;
/// A driver in memory, for the engine's unit tests (feature `memory`).
#[cfg(feature = "memory")]
pub mod memory;
mod process;
mod pull;
mod swarm;

pub use docker::DockerDriver;
pub use fleet::{Fleet, LaunchSpec, Reconciliation};
pub use swarm::SwarmDriver;

pub use process::{ProcessDriver, RunAs};
pub use pull::{DockerConfigKeychain, Keychain, OnProgress, PULL_STALL, Pinned, PullProgress};

use async_trait::async_trait;
use hivemind_model::model;
use std::time::Duration;

/// What a driver needs to start one replica.
#[derive(Debug, Clone)]
pub struct StartSpec {
    /// The replica's id; drivers name and label what they start with it.
    pub id: String,
    /// The id of the server that starts it, carried as a label or in the environment.
    pub server_id: String,
    pub app: String,
    pub version: String,
    pub deployment_id: String,
    pub image: String,
    /// The port the app listens on inside a container (docker).
    pub container_port: u16,
    /// A separate port for health probes inside the container, if any.
    pub health_port: Option<u16>,
    pub env: Vec<(String, String)>,
    pub resources: crate::model::Resources,
}

/// A replica a driver started.
#[derive(Debug, Clone)]
pub struct Started {
    /// The driver's own handle: a process id, a container id or a Swarm service id.
    pub handle: String,
    /// Where the replica serves, "IP:PORT" (127.0.0.1 for local replicas, the node's
    /// address for a Swarm task).
    pub address: String,
    /// Where its health probes go.
    pub health_address: String,
}

/// How a one-off job ended.
#[derive(Debug, Clone)]
pub struct JobOutcome {
    /// Its exit code; `None` when it was killed at its timeout.
    pub exit_code: Option<i32>,
    /// The last few KiB of what it printed, stdout and stderr merged.
    pub output: String,
}

/// The most of a job's output that is kept.
pub const JOB_OUTPUT_BYTES: usize = 4096;

/// The last `JOB_OUTPUT_BYTES` of `bytes`, as text.
pub fn output_tail(bytes: &[u8]) -> String {
    let tail = &bytes[bytes.len().saturating_sub(JOB_OUTPUT_BYTES)..];
    String::from_utf8_lossy(tail).trim().to_string()
}

/// The note for placement constraints given to a runtime that runs every replica on
/// its one host.
pub fn constraints_ignored(runtime: &str, resources: &crate::model::Resources) -> Option<String> {
    (!resources.constraints.is_empty()).then(|| {
        format!(
            "the {runtime} runtime runs every replica on one host; --constraint {} applies on the swarm runtime only and is ignored",
            resources.constraints.join(", ")
        )
    })
}

/// A way to run replicas.
#[async_trait]
pub trait Driver: Send + Sync + 'static {
    /// "process", "docker" or "swarm".
    fn name(&self) -> &'static str;

    /// Checks that `image` names something this driver can start, before anything
    /// changes (with `--pull never`, that it is there). The error says what is wrong
    /// and how to fix it.
    async fn check_image(&self, image: &str, pull: crate::model::PullPolicy) -> anyhow::Result<()>;

    /// Makes `image` ready before any replica of it starts: pulled as `pull` says (with
    /// `progress` told how far), and pinned to what replicas will run. A driver with
    /// no images runs the image as given.
    async fn prepare_image(
        &self,
        image: &str,
        pull: crate::model::PullPolicy,
        progress: OnProgress<'_>,
    ) -> anyhow::Result<Pinned> {
        let _ = progress;
        self.check_image(image, pull).await?;
        Ok(Pinned { reference: image.to_string(), digest: None, pulled: None })
    }

    /// Whether replicas can answer health probes on a port of their own.
    fn supports_health_port(&self) -> bool;

    /// What of `resources` this driver cannot apply, said for people.
    fn unsupported(&self, resources: &crate::model::Resources) -> Vec<String>;

    async fn start(&self, spec: &StartSpec) -> anyhow::Result<Started>;

    /// Stops a replica: SIGTERM, then SIGKILL after `grace`. Already gone is fine.
    async fn stop(&self, handle: &str, grace: Duration) -> anyhow::Result<()>;

    /// Whether the replica still runs.
    async fn is_running(&self, handle: &str) -> bool;

    /// How a replica that no longer runs ended ("exited with code 3", "killed by signal
    /// 9"), when the driver knows.
    async fn exit_status(&self, handle: &str) -> Option<String>;

    /// The last lines a replica printed.
    async fn logs(&self, handle: &str, lines: usize) -> String;

    /// Runs `command` once in a fresh replica of `spec.image` (a release-phase job),
    /// waits at most `timeout` for it to exit, and removes it. Killed at the timeout.
    async fn run_job(&self, spec: &StartSpec, command: &str, timeout: Duration) -> anyhow::Result<JobOutcome>;

    /// Every replica this server started that still exists, as (replica id, handle),
    /// found by the server id the replicas carry.
    async fn owned(&self, server_id: &str) -> Vec<(String, String)>;
}

/// A deployment target of the config file (`[targets.NAME]`).
#[derive(Debug, Clone, Default)]
pub struct Target {
    /// The Docker endpoint; the local engine when `None`.
    pub docker_host: Option<String>,
    /// Replicas are services of the Swarm the engine manages, not containers.
    pub swarm: bool,
    /// The address of a remote engine's host that the router reaches its replicas at.
    pub advertise_addr: Option<std::net::IpAddr>,
}

impl Target {
    /// Its own driver, pulling with `keychain`'s credentials, or `None` when it runs on
    /// the server's own runtime (a name only). A remote engine pulls on its own host.
    pub async fn connect(
        &self,
        keychain: std::sync::Arc<dyn Keychain>,
    ) -> Option<anyhow::Result<std::sync::Arc<dyn Driver>>> {
        use std::sync::Arc;
        let driver: anyhow::Result<Arc<dyn Driver>> = match (&self.docker_host, self.swarm) {
            (None, false) => return None,
            (None, true) => SwarmDriver::connect().await.map(|d| Arc::new(d.with_keychain(keychain)) as _),
            (Some(host), true) => SwarmDriver::connect_to(host).await.map(|d| Arc::new(d.with_keychain(keychain)) as _),
            (Some(host), false) => DockerDriver::connect_to(host).await.map(|d| {
                let d = match self.advertise_addr {
                    Some(ip) => d.publishing_on(ip),
                    None => d,
                };
                Arc::new(d.with_keychain(keychain)) as _
            }),
        };
        Some(driver)
    }
}

/// The default driver: docker when an engine answers (pulling with `keychain`'s
/// credentials), `process` otherwise.
pub async fn detect(process: ProcessDriver, keychain: std::sync::Arc<dyn Keychain>) -> std::sync::Arc<dyn Driver> {
    match DockerDriver::connect().await {
        Ok(docker) => std::sync::Arc::new(docker.with_keychain(keychain)),
        Err(e) => {
            tracing::info!("no Docker engine answered ({e:#}); using the process runtime");
            std::sync::Arc::new(process)
        }
    }
}
