//! Replicas: the drivers that run them (`process`, `docker`) behind one trait, and the
//! fleet that knows which replicas each app has.

mod docker;
mod fleet;
mod process;

pub use docker::DockerDriver;
pub use fleet::{Fleet, LaunchSpec, Reconciliation};
pub use process::ProcessDriver;

use async_trait::async_trait;
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
    /// The driver's own handle: a process id or a container id.
    pub handle: String,
    /// Where the replica serves, "127.0.0.1:PORT".
    pub address: String,
    /// Where its health probes go.
    pub health_address: String,
}

/// A way to run replicas.
#[async_trait]
pub trait Driver: Send + Sync + 'static {
    /// "process" or "docker".
    fn name(&self) -> &'static str;

    /// Checks that `image` names something this driver can start, before anything
    /// changes. The error says what is wrong and how to fix it.
    async fn check_image(&self, image: &str) -> anyhow::Result<()>;

    /// Whether replicas can answer health probes on a port of their own.
    fn supports_health_port(&self) -> bool;

    /// What of `resources` this driver cannot apply, said for people.
    fn unsupported(&self, resources: &crate::model::Resources) -> Vec<String>;

    async fn start(&self, spec: &StartSpec) -> anyhow::Result<Started>;

    /// Stops a replica: SIGTERM, then SIGKILL after `grace`. Already gone is fine.
    async fn stop(&self, handle: &str, grace: Duration) -> anyhow::Result<()>;

    /// Whether the replica still runs.
    async fn is_running(&self, handle: &str) -> bool;

    /// The last lines a replica printed.
    async fn logs(&self, handle: &str, lines: usize) -> String;

    /// Every replica this server started that still exists, as (replica id, handle),
    /// found by the server id the replicas carry.
    async fn owned(&self, server_id: &str) -> Vec<(String, String)>;
}

/// The default driver: docker when an engine answers, process otherwise.
pub async fn detect(process_log_dir: std::path::PathBuf) -> std::sync::Arc<dyn Driver> {
    match DockerDriver::connect().await {
        Ok(docker) => std::sync::Arc::new(docker),
        Err(e) => {
            tracing::info!("no Docker engine answered ({e:#}); using the process runtime");
            std::sync::Arc::new(ProcessDriver::new(process_log_dir))
        }
    }
}

/// A free TCP port on 127.0.0.1, as the OS hands it out.
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}
