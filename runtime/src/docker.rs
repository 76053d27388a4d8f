//! The `docker` driver: a replica is a container of the local engine, reached through a
//! port published on 127.0.0.1. Containers carry `hivemind.*` labels so that a restart
//! can tell its own from everyone else's.

use super::{Driver, JobOutcome, StartSpec, Started};
use anyhow::{Context, Result, bail};
use async_trait::async_trait;
use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig, PortBinding};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
    StopContainerOptionsBuilder,
};
use futures::StreamExt;
use std::collections::HashMap;
use std::time::Duration;

pub struct DockerDriver {
    docker: Docker,
    /// Pulls and pins its images.
    puller: super::pull::Puller,
    /// The address replicas publish their ports on, and the router reaches them at:
    /// 127.0.0.1 for the local engine, a target's `advertise_addr` for a remote one.
    publish_ip: std::net::IpAddr,
}

impl DockerDriver {
    /// Connects to the local engine and checks that it answers.
    pub async fn connect() -> Result<DockerDriver> {
        DockerDriver::answering(None).await
    }

    /// Connects to the engine at `host` (unix:///var/run/docker.sock, tcp://10.0.0.5:2375),
    /// a deployment target's endpoint, and checks that it answers.
    pub async fn connect_to(host: &str) -> Result<DockerDriver> {
        DockerDriver::answering(Some(host)).await
    }

    async fn answering(host: Option<&str>) -> Result<DockerDriver> {
        let (docker, what) = client(host)?;
        answer(&what, docker.ping()).await?;
        let puller = super::pull::Puller::new(docker.clone(), what);
        Ok(DockerDriver { docker, puller, publish_ip: std::net::Ipv4Addr::LOCALHOST.into() })
    }

    /// Pulls with `keychain`'s credentials rather than Docker's config.json alone.
    pub fn with_keychain(mut self, keychain: std::sync::Arc<dyn super::Keychain>) -> DockerDriver {
        self.puller.keychain = keychain;
        self
    }

    /// Publishes replicas' ports on `ip`, an address of the engine's host that the
    /// router can reach (a remote target's `advertise_addr`), instead of 127.0.0.1.
    pub fn publishing_on(self, ip: std::net::IpAddr) -> DockerDriver {
        DockerDriver { publish_ip: ip, ..self }
    }
}

#[async_trait]
impl Driver for DockerDriver {
    fn name(&self) -> &'static str {
        "docker"
    }

    fn supports_health_port(&self) -> bool {
        true
    }

    fn unsupported(&self, resources: &crate::model::Resources) -> Vec<String> {
        super::constraints_ignored("docker", resources).into_iter().collect()
    }

    async fn check_image(&self, image: &str, pull: crate::model::PullPolicy) -> Result<()> {
        self.puller.check(image, pull).await
    }

    async fn prepare_image(
        &self,
        image: &str,
        pull: crate::model::PullPolicy,
        progress: super::OnProgress<'_>,
    ) -> Result<super::Pinned> {
        // One engine runs every replica: an image built here is pinned by its id.
        self.puller.prepare(image, pull, true, progress).await
    }

    async fn start(&self, spec: &StartSpec) -> Result<Started> {
        let port_key = format!("{}/tcp", spec.container_port);
        let health_key = spec.health_port.map(|p| format!("{p}/tcp")).unwrap_or_else(|| port_key.clone());
        let mut ports = vec![port_key.clone()];
        if health_key != port_key {
            ports.push(health_key.clone());
        }
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            env: Some(container_env(spec)),
            labels: Some(labels(spec)),
            exposed_ports: Some(ports.clone()),
            host_config: Some(HostConfig {
                // An empty host port lets the engine pick a free one, with no race.
                port_bindings: Some(
                    ports
                        .iter()
                        .map(|p| {
                            let binding = PortBinding {
                                host_ip: Some(self.publish_ip.to_string()),
                                host_port: Some(String::new()),
                            };
                            (p.clone(), Some(vec![binding]))
                        })
                        .collect(),
                ),
                ..limits(spec)
            }),
            ..Default::default()
        };
        let created = self.create(spec, body, "a container").await?;
        if let Err(e) = self.docker.start_container(&created.id, None).await {
            let _ = self.remove(&created.id).await;
            return Err(e).with_context(|| format!("starting a container of {}", spec.image));
        }
        let inspect = self.docker.inspect_container(&created.id, None).await?;
        let published = inspect.network_settings.and_then(|n| n.ports).unwrap_or_default();
        let host_port = |key: &str| {
            published
                .get(key)
                .cloned()
                .flatten()
                .and_then(|b| b.into_iter().find_map(|b| b.host_port))
                .filter(|p| !p.is_empty())
        };
        let (Some(app_port), Some(health_port)) = (host_port(&port_key), host_port(&health_key)) else {
            let _ = self.remove(&created.id).await;
            bail!("the engine published no host port for {port_key} of {}", spec.image);
        };
        let ip = self.publish_ip;
        Ok(Started {
            handle: created.id,
            address: std::net::SocketAddr::new(ip, app_port.parse()?).to_string(),
            health_address: std::net::SocketAddr::new(ip, health_port.parse()?).to_string(),
        })
    }

    async fn stop(&self, handle: &str, grace: Duration) -> Result<()> {
        let options = StopContainerOptionsBuilder::default().t(grace.as_secs().max(1) as i32).build();
        let _ = self.docker.stop_container(handle, Some(options)).await;
        self.remove(handle).await
    }

    async fn run_job(&self, spec: &StartSpec, command: &str, timeout: Duration) -> Result<JobOutcome> {
        // The command's words replace the image's CMD, as `docker run IMAGE COMMAND` does:
        // images FROM scratch have no shell to hand a string to.
        let words = super::process::parse_command(command)?;
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            cmd: Some(words),
            env: Some(container_env(spec)),
            labels: Some(labels(spec)),
            host_config: Some(limits(spec)),
            ..Default::default()
        };
        let created = self.create(spec, body, "a job container").await?;
        let ended = self.wait_job(&created.id, timeout).await;
        let output = match &ended {
            // The engine refused to start it: its message says why (a command not in the image).
            Err(e) => format!("{e:#}"),
            Ok(_) => super::output_tail(self.logs(&created.id, 200).await.as_bytes()),
        };
        let _ = self.remove(&created.id).await;
        Ok(JobOutcome { exit_code: ended.unwrap_or(Some(127)), output })
    }

    async fn is_running(&self, handle: &str) -> bool {
        match self.docker.inspect_container(handle, None).await {
            Ok(c) => c.state.and_then(|s| s.running).unwrap_or(false),
            Err(_) => false,
        }
    }

    async fn exit_status(&self, handle: &str) -> Option<String> {
        let state = self.docker.inspect_container(handle, None).await.ok()?.state?;
        if state.running == Some(true) {
            return None;
        }
        Some(match (state.oom_killed, state.exit_code) {
            (Some(true), _) => "was killed for running out of memory".to_string(),
            (_, Some(code)) => format!("exited with code {code}"),
            _ => "ended".to_string(),
        })
    }

    async fn owned(&self, server_id: &str) -> Vec<(String, String)> {
        let filters = HashMap::from([("label".to_string(), vec![format!("hivemind.server={server_id}")])]);
        let options = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
        match self.docker.list_containers(Some(options)).await {
            // A Swarm task's container carries the same labels; its service is the
            // swarm driver's to list and remove, not this driver's.
            Ok(list) => list
                .into_iter()
                .filter(|c| c.labels.as_ref().is_none_or(|l| !l.contains_key("com.docker.swarm.service.id")))
                .filter_map(|c| Some((c.labels?.get("hivemind.replica")?.clone(), c.id?)))
                .collect(),
            Err(e) => {
                tracing::warn!("listing containers: {e}");
                Vec::new()
            }
        }
    }

    async fn logs(&self, handle: &str, lines: usize) -> String {
        let options = LogsOptionsBuilder::default().stdout(true).stderr(true).tail(&lines.to_string()).build();
        gather_logs(self.docker.logs(handle, Some(options))).await
    }
}

/// A client of the local engine (`None`) or of the one at `host`, and its name for people.
pub(super) fn client(host: Option<&str>) -> Result<(Docker, String)> {
    Ok(match host {
        None => (
            Docker::connect_with_local_defaults().context("connecting to the Docker engine")?,
            "the local Docker engine".to_string(),
        ),
        Some(host) => (
            Docker::connect_with_host(host).with_context(|| format!("connecting to the Docker engine at {host}"))?,
            format!("the Docker engine at {host}"),
        ),
    })
}

/// The engine's answer to `call`, within 3 s; an engine that does not answer is named.
pub(super) async fn answer<T>(
    what: &str,
    call: impl std::future::Future<Output = Result<T, bollard::errors::Error>>,
) -> Result<T> {
    tokio::time::timeout(Duration::from_secs(3), call)
        .await
        .with_context(|| format!("{what} did not answer within 3 s"))?
        .with_context(|| format!("{what} did not answer"))
}

/// The text of a logs stream (a container's or a service's).
pub(super) async fn gather_logs(
    mut stream: impl futures::Stream<Item = Result<bollard::container::LogOutput, bollard::errors::Error>> + Unpin,
) -> String {
    let mut out = String::new();
    while let Some(Ok(chunk)) = stream.next().await {
        out.push_str(&chunk.to_string());
    }
    out
}

/// The labels that tell a restart which containers are this server's, and whose.
pub(super) fn labels(spec: &StartSpec) -> HashMap<String, String> {
    HashMap::from([
        ("hivemind.app".to_string(), spec.app.clone()),
        ("hivemind.version".to_string(), spec.version.clone()),
        ("hivemind.deployment".to_string(), spec.deployment_id.clone()),
        ("hivemind.replica".to_string(), spec.id.clone()),
        ("hivemind.server".to_string(), spec.server_id.clone()),
        ("hivemind.variant".to_string(), spec.version.clone()),
    ])
}

pub(super) fn container_env(spec: &StartSpec) -> Vec<String> {
    let mut env: Vec<String> = vec![format!("PORT={}", spec.container_port)];
    env.extend(spec.env.iter().map(|(k, v)| format!("{k}={v}")));
    env
}

/// `--cpu`, `--memory` and `--volume` as Docker applies them.
fn limits(spec: &StartSpec) -> HostConfig {
    HostConfig {
        nano_cpus: spec.resources.cpu.map(|c| (c * 1e9) as i64),
        memory: spec.resources.memory.as_deref().and_then(|m| crate::model::parse_memory(m).ok()).map(|b| b as i64),
        binds: (!spec.resources.volumes.is_empty()).then(|| spec.resources.volumes.clone()),
        ..Default::default()
    }
}

impl DockerDriver {
    /// Creates the container of replica (or job) `spec.id`, named after it.
    async fn create(
        &self,
        spec: &StartSpec,
        body: ContainerCreateBody,
        what: &str,
    ) -> Result<bollard::models::ContainerCreateResponse> {
        let name = format!("hivemind-{}", spec.id);
        let options = CreateContainerOptionsBuilder::default().name(&name).build();
        match self.docker.create_container(Some(options.clone()), body.clone()).await {
            // The engine lost the image since it was pulled (pruned, or a remote engine
            // that never had it): pulled again, by its pin, and tried once more.
            // An image pinned by the engine's id came from no registry: nothing to pull.
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, message })
                if message.contains("No such image") && spec.image.starts_with("sha256:") =>
            {
                bail!(
                    "{} no longer has image {} (built on it, never pushed, and removed since): build it again there and deploy, or push it to a registry",
                    self.puller.engine,
                    spec.image
                )
            }
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, message })
                if message.contains("No such image") =>
            {
                tracing::info!("{} lacks {}: pulling it again", self.puller.engine, spec.image);
                self.puller.pull(&spec.image, &|_| {}).await?;
                self.docker.create_container(Some(options), body).await
            }
            created => created,
        }
        .with_context(|| format!("creating {what} of {}", spec.image))
    }

    /// Runs a created job container to its end or its timeout; returns its exit code.
    async fn wait_job(&self, id: &str, timeout: Duration) -> Result<Option<i32>> {
        self.docker.start_container(id, None).await?;
        let mut wait = self.docker.wait_container(id, None);
        // The wait answers with an error for a non-zero exit; the exit code is read below.
        if tokio::time::timeout(timeout, wait.next()).await.is_err() {
            let _ = self.docker.kill_container(id, None).await;
            return Ok(None);
        }
        let state = self.docker.inspect_container(id, None).await?.state;
        Ok(Some(state.and_then(|s| s.exit_code).unwrap_or(-1) as i32))
    }

    async fn remove(&self, id: &str) -> Result<()> {
        match self.docker.remove_container(id, Some(RemoveContainerOptionsBuilder::default().force(true).build())).await
        {
            Ok(()) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
