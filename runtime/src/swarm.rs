//! The `swarm` driver: a replica is a Swarm service of one task, on whichever node of the
//! cluster the scheduler (and the deployment's placement constraints) picks, reached at
//! that node's address and a port published in host mode.
//!
//! Why a service per replica, not per version: strategies drain, stop and replace one
//! chosen replica, and probe each on its own address. A service of N tasks would let
//! Swarm pick which task goes on a scale-down, and its tasks would share one published
//! port through the routing mesh, which balances by itself (and counts nothing). Why
//! host-mode ports: every replica gets an address of its own on its node, which the
//! router reaches from any node, with no overlay network for the router to join. Why
//! restart policy `none`: Hivemind's healer decides replacements (with its back-off,
//! health checks and events); Swarm restarting tasks behind its back would make two
//! healers fight over one count.

use super::docker::{answer, client, container_env, gather_logs, labels};
use super::{Driver, JobOutcome, StartSpec, Started};
use anyhow::{Context, Result, bail};
use async_trait::async_trait;
use bollard::Docker;
use bollard::models::{
    EndpointPortConfig, EndpointPortConfigPublishModeEnum, EndpointSpec, HealthConfig, Limit, LocalNodeState, Mount,
    MountType, ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated, ServiceSpecModeReplicatedJob, Task, TaskSpec,
    TaskSpecContainerSpec, TaskSpecPlacement, TaskSpecResources, TaskSpecRestartPolicy,
    TaskSpecRestartPolicyConditionEnum, TaskState,
};
use bollard::query_parameters::{
    ListServicesOptionsBuilder, ListTasksOptionsBuilder, LogsOptionsBuilder, StopContainerOptionsBuilder,
};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long a replica may take from its service's creation to a running task: the
/// scheduler, then the node's agent.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a task may stay `preparing`, its node pulling the release's pin: a large
/// image on a slow link to a worker takes longer than a start. A node that cannot pull
/// rejects the task at once, with Swarm's reason.
const PREPARE_TIMEOUT: Duration = Duration::from_secs(600);

/// The grace Swarm gives a task that a node other than this manager's stops; on this
/// node the driver stops the container itself with the caller's grace first.
const REMOTE_STOP_GRACE: Duration = Duration::from_secs(10);

pub struct SwarmDriver {
    docker: Docker,
    /// Pulls on the manager to pin images; the nodes pull the pin with the same credentials.
    puller: super::pull::Puller,
    /// This engine's node id: its tasks' containers are stopped here, with the grace asked.
    node_id: String,
    /// Node id → the address the router reaches that node at (a node that changes its
    /// address is seen by a restarted server).
    node_addresses: std::sync::Mutex<HashMap<String, std::net::IpAddr>>,
}

impl SwarmDriver {
    /// Connects to the local engine, which must be a manager of a Swarm.
    pub async fn connect() -> Result<SwarmDriver> {
        SwarmDriver::manager(None).await
    }

    /// Connects to the engine at `host`, a deployment target's endpoint, which must be a
    /// manager of a Swarm.
    pub async fn connect_to(host: &str) -> Result<SwarmDriver> {
        SwarmDriver::manager(Some(host)).await
    }

    async fn manager(host: Option<&str>) -> Result<SwarmDriver> {
        let (docker, what) = client(host)?;
        let swarm = answer(&what, docker.info()).await?.swarm.unwrap_or_default();
        manager_check(&what, swarm.local_node_state, swarm.control_available)?;
        let node_id = swarm.node_id.unwrap_or_default();
        let puller = super::pull::Puller::new(docker.clone(), what);
        Ok(SwarmDriver { docker, puller, node_id, node_addresses: Default::default() })
    }

    /// Pulls (and has the nodes pull) with `keychain`'s credentials.
    pub fn with_keychain(mut self, keychain: std::sync::Arc<dyn super::Keychain>) -> SwarmDriver {
        self.puller.keychain = keychain;
        self
    }
}

/// Whether an engine in Swarm state `state` can run services, and if not, how to make it.
pub fn manager_check(what: &str, state: Option<LocalNodeState>, control_available: Option<bool>) -> Result<()> {
    match state {
        Some(LocalNodeState::ACTIVE) if control_available == Some(true) => Ok(()),
        Some(LocalNodeState::ACTIVE) => bail!(
            "{what} is a Swarm worker, not a manager: services are created through a manager. \
             Run hivemind next to a manager node, or promote this one with `docker node promote NODE` on a manager"
        ),
        Some(LocalNodeState::LOCKED) => {
            bail!("{what} is a manager of a locked Swarm; unlock it with `docker swarm unlock`")
        }
        Some(LocalNodeState::PENDING) => {
            bail!("{what} is still joining its Swarm; try again when `docker info` says active")
        }
        other => {
            let state = other.map(|s| format!("{s:?}").to_lowercase()).unwrap_or_else(|| "unknown".into());
            bail!(
                "--runtime swarm: {what} is not a Swarm manager (its Swarm state is {state}). \
                 Make it one with `docker swarm init --advertise-addr ADDRESS` (ADDRESS: this host's address the \
                 other nodes and the router reach, 127.0.0.1 for one machine), or use --runtime docker"
            )
        }
    }
}

/// A service name from a replica id: Swarm allows 63 letters, digits and '-'. The id's
/// random tail is kept, so that two long ids stay two names.
fn service_name(id: &str) -> String {
    let clean: String = id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' }).collect();
    let name = format!("hivemind-{clean}");
    if name.len() <= 63 { name } else { format!("hivemind-{}", &clean[clean.len() - 54..]) }
}

/// The task spec both replicas and jobs share: image, env, labels, limits, mounts,
/// placement, and no restarts by Swarm.
fn task_template(spec: &StartSpec, args: Option<Vec<String>>) -> TaskSpec {
    let r = &spec.resources;
    let mounts: Vec<Mount> = r
        .volumes
        .iter()
        .filter_map(|v| crate::model::parse_volume(v).ok())
        .map(|(name, path)| Mount {
            source: Some(name),
            target: Some(path),
            typ: Some(MountType::VOLUME),
            ..Default::default()
        })
        .collect();
    TaskSpec {
        container_spec: Some(TaskSpecContainerSpec {
            image: Some(spec.image.clone()),
            labels: Some(labels(spec)),
            env: Some(container_env(spec)),
            args,
            mounts: (!mounts.is_empty()).then_some(mounts),
            stop_grace_period: Some(REMOTE_STOP_GRACE.as_nanos() as i64),
            // An image's own HEALTHCHECK would have Swarm hold the task back and kill it
            // when unhealthy: Hivemind's probes decide health.
            health_check: Some(HealthConfig { test: Some(vec!["NONE".to_string()]), ..Default::default() }),
            ..Default::default()
        }),
        resources: Some(TaskSpecResources {
            limits: Some(Limit {
                nano_cpus: r.cpu.map(|c| (c * 1e9) as i64),
                memory_bytes: r.memory.as_deref().and_then(|m| crate::model::parse_memory(m).ok()).map(|b| b as i64),
                ..Default::default()
            }),
            ..Default::default()
        }),
        restart_policy: Some(TaskSpecRestartPolicy {
            condition: Some(TaskSpecRestartPolicyConditionEnum::NONE),
            ..Default::default()
        }),
        placement: (!r.constraints.is_empty())
            .then(|| TaskSpecPlacement { constraints: Some(r.constraints.clone()), ..Default::default() }),
        ..Default::default()
    }
}

fn host_port(target: u16) -> EndpointPortConfig {
    EndpointPortConfig {
        target_port: Some(target as i64),
        // No published port: the node picks a free one (on all of its addresses: Swarm's
        // host mode has no per-address binding).
        publish_mode: Some(EndpointPortConfigPublishModeEnum::HOST),
        ..Default::default()
    }
}

/// A task's state, with what Swarm said about it.
fn state_of(task: &Task) -> (TaskState, String) {
    let status = task.status.clone().unwrap_or_default();
    let said = status.err.filter(|e| !e.is_empty()).or(status.message).unwrap_or_default();
    (status.state.unwrap_or_default(), said)
}

#[async_trait]
impl Driver for SwarmDriver {
    fn name(&self) -> &'static str {
        "swarm"
    }

    fn supports_health_port(&self) -> bool {
        true
    }

    fn unsupported(&self, _: &crate::model::Resources) -> Vec<String> {
        Vec::new()
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
        // Other nodes cannot run an image by this engine's id: one no registry knows runs
        // by its name, as given.
        self.puller.prepare(image, pull, false, progress).await
    }

    async fn start(&self, spec: &StartSpec) -> Result<Started> {
        let mut ports = vec![host_port(spec.container_port)];
        if let Some(health) = spec.health_port.filter(|p| *p != spec.container_port) {
            ports.push(host_port(health));
        }
        let service = ServiceSpec {
            name: Some(service_name(&spec.id)),
            labels: Some(labels(spec)),
            task_template: Some(task_template(spec, None)),
            mode: Some(ServiceSpecMode {
                replicated: Some(ServiceSpecModeReplicated { replicas: Some(1) }),
                ..Default::default()
            }),
            endpoint_spec: Some(EndpointSpec { ports: Some(ports), ..Default::default() }),
            ..Default::default()
        };
        let id = self.create(service, spec).await?;
        let running = match self.until_running(&id).await {
            Ok(task) => task,
            Err(e) => {
                let _ = self.remove(&id).await;
                return Err(e.context(format!("starting a replica of {} on the Swarm", spec.image)));
            }
        };
        // A node publishes a target port once per address family, IPv4 first, each with
        // a port of its own: the first is the one reached at the node's IPv4 address.
        let published: Vec<(i64, i64)> = running
            .status
            .as_ref()
            .and_then(|s| s.port_status.as_ref())
            .and_then(|p| p.ports.clone())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|p| Some((p.target_port?, p.published_port?)))
            .collect();
        let node = match self.node_address(running.node_id.as_deref().unwrap_or_default()).await {
            Ok(node) => node,
            Err(e) => {
                let _ = self.remove(&id).await;
                return Err(e);
            }
        };
        let port_of = |target: u16| {
            let (_, port) = published.iter().find(|(t, _)| *t == target as i64)?;
            Some(std::net::SocketAddr::new(node, u16::try_from(*port).ok()?).to_string())
        };
        let (Some(address), Some(health_address)) =
            (port_of(spec.container_port), port_of(spec.health_port.unwrap_or(spec.container_port)))
        else {
            let _ = self.remove(&id).await;
            bail!("the Swarm published no host port for port {} of {}", spec.container_port, spec.image);
        };
        Ok(Started { handle: id, address, health_address })
    }

    async fn stop(&self, handle: &str, grace: Duration) -> Result<()> {
        // A container on this node gets the caller's grace; Swarm gives the others its own.
        for task in self.tasks(handle).await.unwrap_or_default() {
            if let Some(container) = self.local_container(&task) {
                let options = StopContainerOptionsBuilder::default().t(grace.as_secs().max(1) as i32).build();
                let _ = self.docker.stop_container(&container, Some(options)).await;
            }
        }
        self.remove(handle).await
    }

    async fn is_running(&self, handle: &str) -> bool {
        let task = match self.tasks(handle).await {
            Ok(tasks) => match tasks.into_iter().next() {
                Some(task) => task,
                None => return false,
            },
            // A manager that cannot answer now (no quorum, a timeout) says nothing about
            // the task: it runs as far as anyone knows, and health probes still judge it.
            Err(e) => {
                tracing::warn!("asking the Swarm about service {handle}: {e:#}");
                return true;
            }
        };
        if state_of(&task).0 != TaskState::RUNNING {
            return false;
        }
        // Swarm learns of a task's end from its node's agent, a moment later; on this node
        // the container itself says so at once.
        match self.local_container(&task) {
            Some(container) => self
                .docker
                .inspect_container(&container, None)
                .await
                .is_ok_and(|c| c.state.and_then(|s| s.running).unwrap_or(false)),
            None => true,
        }
    }

    async fn exit_status(&self, handle: &str) -> Option<String> {
        let task = self.tasks(handle).await.ok()?.into_iter().next()?;
        if let Some(container) = self.local_container(&task)
            && let Ok(inspected) = self.docker.inspect_container(&container, None).await
        {
            let state = inspected.state?;
            return match (state.running, state.oom_killed, state.exit_code) {
                (Some(true), _, _) => None,
                (_, Some(true), _) => Some("was killed for running out of memory".to_string()),
                (_, _, Some(code)) => Some(format!("exited with code {code}")),
                _ => Some("ended".to_string()),
            };
        }
        let (state, said) = state_of(&task);
        if state == TaskState::RUNNING {
            return None;
        }
        let code = task.status.and_then(|s| s.container_status).and_then(|c| c.exit_code);
        Some(match (state, code) {
            (TaskState::FAILED | TaskState::COMPLETE, Some(code)) => format!("exited with code {code}"),
            _ => format!("is {state} on the Swarm: {said}"),
        })
    }

    async fn logs(&self, handle: &str, lines: usize) -> String {
        let options = LogsOptionsBuilder::default().stdout(true).stderr(true).tail(&lines.to_string()).build();
        gather_logs(Box::pin(self.docker.service_logs(handle, Some(options)))).await
    }

    async fn run_job(&self, spec: &StartSpec, command: &str, timeout: Duration) -> Result<JobOutcome> {
        // The command's words replace the image's CMD, as with `docker run IMAGE COMMAND`.
        let words = super::process::parse_command(command)?;
        let job = ServiceSpec {
            name: Some(service_name(&spec.id)),
            labels: Some(labels(spec)),
            task_template: Some(task_template(spec, Some(words))),
            mode: Some(ServiceSpecMode {
                replicated_job: Some(ServiceSpecModeReplicatedJob {
                    max_concurrent: Some(1),
                    total_completions: Some(1),
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let id = self.create(job, spec).await?;
        let deadline = Instant::now() + timeout;
        let outcome = loop {
            if Instant::now() >= deadline {
                break JobOutcome { exit_code: None, output: super::output_tail(self.logs(&id, 200).await.as_bytes()) };
            }
            let tasks = match self.tasks(&id).await {
                Ok(tasks) => tasks,
                Err(e) => {
                    let _ = self.remove(&id).await;
                    return Err(e.context("following a hook's job on the Swarm"));
                }
            };
            if let Some(task) = tasks.into_iter().next() {
                let (state, said) = state_of(&task);
                // "task: non-zero exit (3)"; the container status has the code too.
                let code = task
                    .status
                    .and_then(|s| s.container_status)
                    .and_then(|c| c.exit_code)
                    .or_else(|| said.strip_prefix("task: non-zero exit (")?.strip_suffix(')')?.parse().ok());
                let ran_to_its_end = state == TaskState::COMPLETE
                    || (state == TaskState::FAILED && said.starts_with("task: non-zero exit"));
                match state {
                    _ if ran_to_its_end => {
                        let output = super::output_tail(self.logs(&id, 200).await.as_bytes());
                        let fallback = if state == TaskState::COMPLETE { 0 } else { 1 };
                        break JobOutcome { exit_code: Some(code.unwrap_or(fallback) as i32), output };
                    }
                    // The engine could not start it (a command not in the image): its words say why.
                    TaskState::FAILED | TaskState::REJECTED => break JobOutcome { exit_code: Some(127), output: said },
                    TaskState::PENDING if said.contains("no suitable node") => {
                        break JobOutcome {
                            exit_code: Some(127),
                            output: format!("the Swarm cannot place the job: {said}"),
                        };
                    }
                    _ => {}
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let _ = self.remove(&id).await;
        Ok(outcome)
    }

    async fn owned(&self, server_id: &str) -> Vec<(String, String)> {
        let filters = HashMap::from([("label".to_string(), vec![format!("hivemind.server={server_id}")])]);
        let options = ListServicesOptionsBuilder::default().filters(&filters).build();
        match self.docker.list_services(Some(options)).await {
            Ok(list) => list
                .into_iter()
                .filter_map(|s| Some((s.spec?.labels?.get("hivemind.replica")?.clone(), s.id?)))
                .collect(),
            Err(e) => {
                tracing::warn!("listing Swarm services: {e}");
                Vec::new()
            }
        }
    }
}

impl SwarmDriver {
    async fn create(&self, service: ServiceSpec, spec: &StartSpec) -> Result<String> {
        // Every node pulls the image with these credentials (X-Registry-Auth).
        let (credentials, _) = self.puller.credentials_for(&spec.image).await?;
        let created = self
            .docker
            .create_service(service, credentials)
            .await
            .with_context(|| format!("creating a Swarm service for {}", spec.image))?;
        created.id.context("the Swarm answered a service creation without an id")
    }

    /// The container of `task` when it runs on this engine's node.
    fn local_container(&self, task: &Task) -> Option<String> {
        if task.node_id.as_deref() != Some(self.node_id.as_str()) {
            return None;
        }
        task.status.as_ref()?.container_status.as_ref()?.container_id.clone().filter(|c| !c.is_empty())
    }

    /// The tasks of a service, newest first.
    async fn tasks(&self, service: &str) -> Result<Vec<Task>> {
        let filters = HashMap::from([("service".to_string(), vec![service.to_string()])]);
        let options = ListTasksOptionsBuilder::default().filters(&filters).build();
        let mut tasks = self.docker.list_tasks(Some(options)).await?;
        tasks.sort_by(|a, b| b.created_at.cmp(&a.created_at));
        Ok(tasks)
    }

    /// Waits for the service's task to run; fails with Swarm's own words when it cannot
    /// (no node satisfies the constraints, the node refused it, it exited at once).
    async fn until_running(&self, service: &str) -> Result<Task> {
        let started = Instant::now();
        loop {
            if let Some(task) = self.tasks(service).await?.into_iter().next() {
                let (state, said) = state_of(&task);
                match state {
                    TaskState::RUNNING => return Ok(task),
                    TaskState::FAILED
                    | TaskState::REJECTED
                    | TaskState::COMPLETE
                    | TaskState::SHUTDOWN
                    | TaskState::ORPHANED
                    | TaskState::REMOVE => bail!("its task is {state}: {said}"),
                    TaskState::PENDING if said.contains("no suitable node") => bail!("{said}"),
                    TaskState::PREPARING if started.elapsed() > PREPARE_TIMEOUT => {
                        bail!(
                            "its task is still preparing (its node pulling the image) after {}s: {said}",
                            PREPARE_TIMEOUT.as_secs()
                        )
                    }
                    TaskState::PREPARING => {}
                    _ if started.elapsed() > START_TIMEOUT => {
                        bail!("its task is still {state} after {}s: {said}", START_TIMEOUT.as_secs())
                    }
                    _ => {}
                }
            } else if started.elapsed() > START_TIMEOUT {
                bail!("the Swarm made no task for it in {}s", START_TIMEOUT.as_secs());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The address of node `id` as the Swarm knows it (`docker node inspect NODE --format
    /// '{{.Status.Addr}}'`: the address the node reaches the managers from).
    async fn node_address(&self, id: &str) -> Result<std::net::IpAddr> {
        if let Some(known) = self.node_addresses.lock().unwrap().get(id) {
            return Ok(*known);
        }
        let node = self.docker.inspect_node(id).await.with_context(|| format!("inspecting Swarm node {id}"))?;
        let addr = node.status.and_then(|s| s.addr).unwrap_or_default();
        let ip = addr.parse::<std::net::IpAddr>().ok().filter(|ip| !ip.is_unspecified()).with_context(|| {
            format!("Swarm node {id} has no usable address ({addr:?}); join it with --advertise-addr")
        })?;
        self.node_addresses.lock().unwrap().insert(id.to_string(), ip);
        Ok(ip)
    }

    async fn remove(&self, id: &str) -> Result<()> {
        match self.docker.delete_service(id).await {
            Ok(()) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_fit_swarm_and_keep_the_random_tail() {
        assert_eq!(service_name("web-r2-0a1b2c"), "hivemind-web-r2-0a1b2c");
        let long = format!("{}-r12-abcdef", "a".repeat(80));
        let name = service_name(&long);
        assert!(name.len() <= 63 && name.ends_with("-r12-abcdef"), "{name}");
        assert_eq!(service_name("app-v1.2_x-000001"), "hivemind-app-v1-2-x-000001");
    }

    #[test]
    fn an_engine_that_cannot_run_services_is_told_how_to_fix_it() {
        let inactive = manager_check("the local Docker engine", Some(LocalNodeState::INACTIVE), Some(false));
        let message = inactive.unwrap_err().to_string();
        assert!(message.contains("is not a Swarm manager") && message.contains("docker swarm init"), "{message}");
        let worker = manager_check("the local Docker engine", Some(LocalNodeState::ACTIVE), Some(false));
        assert!(worker.unwrap_err().to_string().contains("docker node promote"));
        manager_check("the local Docker engine", Some(LocalNodeState::ACTIVE), Some(true)).unwrap();
    }
}
