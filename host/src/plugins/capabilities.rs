//! The host side of the plugin contract: every capability a strategy or a hook imports,
//! scoped to the app of the deployment the call runs for.

use super::HostState;
use super::bindings::hivemind::plugin::{containers, context, health, metrics, progress, routing, state, types};
use super::bounds;
use super::hook_bindings::hivemind::plugin::{http, jobs};
use crate::health::{HttpCheck, Prober};
use crate::model::ReplicaRecord;
use crate::router::{BackendSpec, DrainState, Router};
use crate::runtime::{Fleet, LaunchSpec};
use crate::store::{StepWrites, Store};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use types::Error;

/// What the capabilities reach: the fleet, the router, the prober and the store.
pub struct Services {
    pub fleet: Arc<Fleet>,
    pub router: Arc<Router>,
    pub prober: Prober,
    pub store: Store,
    /// The latest probe of each replica, for `diagnose`.
    probes: std::sync::Mutex<HashMap<String, crate::health::ProbeResult>>,
    /// The hosts hooks may send HTTP requests to (`--hook-allowed-hosts`).
    pub hook_allowed_hosts: Vec<String>,
    /// The client hooks' requests go out through: no redirects, so that the allowlist
    /// cannot be stepped around.
    hook_http: reqwest::Client,
}

impl Services {
    pub fn new(fleet: Arc<Fleet>, router: Arc<Router>, store: Store, hook_allowed_hosts: Vec<String>) -> Services {
        let hook_http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .expect("building an HTTP client");
        Services {
            fleet,
            router,
            prober: Prober::new(),
            store,
            probes: Default::default(),
            hook_allowed_hosts,
            hook_http,
        }
    }

    /// Checks that a hook may send a request to `url`: an http:// URL whose host (or
    /// host:port) is on the server's allowlist. The error says how to allow it.
    pub fn check_hook_url(&self, url: &str) -> Result<reqwest::Url, String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
        if parsed.scheme() != "http" {
            return Err(format!("only http:// URLs are supported; got `{url}`"));
        }
        let host = parsed.host_str().unwrap_or_default();
        let with_port = format!("{host}:{}", parsed.port_or_known_default().unwrap_or(80));
        let allowed = &self.hook_allowed_hosts;
        if allowed.iter().any(|a| a.eq_ignore_ascii_case(host) || a.eq_ignore_ascii_case(&with_port)) {
            return Ok(parsed);
        }
        Err(format!(
            "host `{host}` is not on the server's hook allowlist (allowed: {}); start the server with `--hook-allowed-hosts {host}` (or set HIVEMIND_HOOK_ALLOWED_HOSTS, or hook_allowed_hosts in server.toml)",
            if allowed.is_empty() { "none".to_string() } else { allowed.join(", ") }
        ))
    }

    /// The latest probe of a replica, if it was probed.
    pub fn last_probe(&self, replica: &str) -> Option<crate::health::ProbeResult> {
        self.probes.lock().unwrap().get(replica).cloned()
    }

    /// Tells the router the app's current replicas.
    pub async fn sync_router(&self, app: &str) {
        let specs: Vec<BackendSpec> = self
            .fleet
            .list(app)
            .await
            .into_iter()
            .map(|r| BackendSpec { id: r.id, version: r.version, address: r.address })
            .collect();
        self.router.set_backends(app, &specs);
    }

    /// Probes one replica and tells the router the verdict.
    pub async fn probe(&self, replica: &ReplicaRecord, check: &HttpCheck) -> crate::health::ProbeResult {
        let result = self.prober.probe(&replica.health_address, check).await;
        self.router.set_healthy(&replica.app, &replica.id, result.healthy);
        let mut probes = self.probes.lock().unwrap();
        // Forget replicas that are gone, so the map never outgrows the fleet for long.
        if probes.len() > 4096 {
            probes.clear();
        }
        probes.insert(replica.id.clone(), result.clone());
        result
    }
}

/// The capabilities of one step: which app and versions it may touch, and what it wrote.
pub struct StepCaps {
    pub app: String,
    pub deployment_id: String,
    /// The deployment target its replicas run on (`--cloud-provider`).
    pub target: Option<String>,
    /// The versions this deployment may run, with what their replicas run.
    pub versions: HashMap<String, crate::model::Release>,
    pub container_port: u16,
    pub health_port: Option<u16>,
    pub health: HttpCheck,
    /// Where replicas expose their own Prometheus counters.
    pub metrics_endpoint: String,
    pub services: Arc<Services>,
    /// The completed deployment this one reverses, if it is a rollback of one.
    pub rollback_of: Option<String>,
    /// How many times the deployment was promoted.
    pub promotions: u32,
    /// The plugin's saved state as the step loop knows it (what this step writes is in
    /// `writes` until the step is recorded).
    pub state: PluginState,
    pub writes: StepWrites,
}

/// A deployment's plugin state as its step loop knows it: the size of every stored value,
/// and the values read or written so far. A value is fetched from the store only when a
/// plugin first asks for it, so a step costs no query once the loop has run a step.
#[derive(Debug, Default)]
pub struct PluginState {
    pub sizes: HashMap<String, usize>,
    pub values: HashMap<String, Vec<u8>>,
}

impl PluginState {
    /// What the step loop knows after the store holds a step's writes.
    pub fn commit(&mut self, written: &HashMap<String, Vec<u8>>) {
        for (key, value) in written {
            self.sizes.insert(key.clone(), value.len());
            self.values.insert(key.clone(), value.clone());
        }
    }
}

/// The capabilities of one hook run: jobs of the deployment's releases, HTTP to allowed
/// hosts, and its log. Every job and request ends by `deadline`.
pub struct HookCaps {
    pub app: String,
    pub deployment_id: String,
    pub target: Option<String>,
    pub versions: HashMap<String, crate::model::Release>,
    pub container_port: u16,
    /// The hook's whole time (`--hook-timeout`), and when it runs out.
    pub timeout: Duration,
    pub deadline: std::time::Instant,
    pub services: Arc<Services>,
    /// What the hook logged, as (level, message).
    pub log: Vec<(String, String)>,
}

impl HookCaps {
    /// What is left of the hook's time, capped by what the guest asked for, and how to
    /// say that limit to people.
    fn time_left(&self, asked_ms: u32) -> (Duration, String) {
        let left = self.deadline.saturating_duration_since(std::time::Instant::now());
        let asked = Duration::from_millis(asked_ms as u64);
        if asked < left {
            (asked, format!("{} ms", asked.as_millis()))
        } else {
            (left, format!("the hook's {} s timeout", self.timeout.as_secs()))
        }
    }
}

type Res<T> = wasmtime::Result<Result<T, Error>>;

impl HostState {
    fn caps(&mut self) -> Result<&mut StepCaps, Error> {
        self.caps.as_mut().ok_or_else(|| Error::Denied("capabilities are only available during step()".into()))
    }

    fn hook_caps(&mut self) -> Result<&mut HookCaps, Error> {
        self.hook.as_mut().ok_or_else(|| Error::Denied("capabilities are only available during run()".into()))
    }

    /// A line for the event log of the step or hook being run; a bounded number of
    /// bounded lines per call.
    fn log_line(&mut self, level: &str, message: String) {
        let line = (level.to_string(), bounds::bounded(message, bounds::LOG_LINE_BYTES));
        if let Some(caps) = self.caps.as_mut() {
            if caps.writes.plugin_lines < bounds::LOG_LINES_PER_CALL {
                caps.writes.plugin_lines += 1;
                caps.writes.events.push(line);
            }
        } else if let Some(hook) = self.hook.as_mut()
            && hook.log.len() < bounds::LOG_LINES_PER_CALL
        {
            hook.log.push(line);
        }
    }
}

impl StepCaps {
    fn check_version(&self, capability: &str, version: &str) -> Result<crate::model::Release, Error> {
        self.versions.get(version).cloned().ok_or_else(|| {
            let mut known: Vec<&str> = self.versions.keys().map(String::as_str).collect();
            known.sort();
            Error::Denied(format!(
                "{capability}: version `{version}` is not part of deployment {} of app `{}`; it may use {}",
                self.deployment_id,
                self.app,
                known.join(", ")
            ))
        })
    }

    /// The replica `id` if it belongs to this app; `None` if it does not exist (gone).
    async fn own_replica(&self, capability: &str, id: &str) -> Result<Option<ReplicaRecord>, Error> {
        match self.services.fleet.get(id).await {
            Some(r) if r.app == self.app => Ok(Some(r)),
            Some(r) => Err(Error::Denied(format!(
                "{capability}: replica `{id}` belongs to app `{}`; a deployment of app `{}` may only touch its own app",
                r.app, self.app
            ))),
            None => Ok(None),
        }
    }

    fn log(&mut self, level: &str, message: String) {
        self.writes.events.push((level.to_string(), message));
    }
}

fn wit_replica(r: &ReplicaRecord) -> types::Replica {
    types::Replica {
        id: r.id.clone(),
        version: r.version.clone(),
        address: r.address.clone(),
        state: types::ReplicaState::Running,
        started_at_ms: r.started_at_ms as u64,
    }
}

fn failed(e: anyhow::Error) -> Error {
    Error::Failed(format!("{e:#}"))
}

impl types::Host for HostState {}

impl containers::Host for HostState {
    async fn scale(&mut self, version: String, replicas: u32) -> Res<Vec<types::Replica>> {
        let caps = match self.caps() {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        let release = match caps.check_version("containers.scale", &version) {
            Ok(r) => r,
            Err(e) => return Ok(Err(e)),
        };
        if replicas > bounds::SCALE_REPLICAS {
            return Ok(Err(Error::Invalid(format!(
                "containers.scale: {replicas} replicas is more than the limit of {} per call",
                bounds::SCALE_REPLICAS
            ))));
        }
        let spec = LaunchSpec {
            app: caps.app.clone(),
            version: version.clone(),
            deployment_id: caps.deployment_id.clone(),
            image: release.image,
            container_port: caps.container_port,
            health_port: caps.health_port,
            env: release.env.into_iter().collect(),
            resources: release.resources,
            target: caps.target.clone(),
        };
        let before = caps.services.fleet.list(&caps.app).await.iter().filter(|r| r.version == version).count();
        // On a task of its own, so that a step cancelled meanwhile (abort, pause) never
        // leaves a replica started and unrecorded: the scale finishes, only the step's
        // wait for it ends.
        let services = caps.services.clone();
        let result = tokio::spawn(async move {
            let result = services.fleet.scale(&spec, replicas, Duration::from_secs(10)).await;
            services.sync_router(&spec.app).await;
            result
        })
        .await
        .unwrap_or_else(|e| Err(anyhow::anyhow!("scaling stopped: {e}")));
        match result {
            Ok(list) => {
                if list.len() != before {
                    caps.writes.progressed = true;
                    caps.log("info", format!("scaled {version} from {before} to {} replicas", list.len()));
                }
                Ok(Ok(list.iter().map(wit_replica).collect()))
            }
            Err(e) => Ok(Err(failed(e))),
        }
    }

    async fn list(&mut self) -> Res<Vec<types::Replica>> {
        let caps = match self.caps() {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        Ok(Ok(caps.services.fleet.list(&caps.app).await.iter().map(wit_replica).collect()))
    }

    async fn capacity(&mut self) -> wasmtime::Result<u32> {
        let Ok(caps) = self.caps() else { return Ok(0) };
        Ok(caps.services.fleet.capacity_for(&caps.app).await)
    }

    async fn stop(&mut self, ids: Vec<String>, grace_ms: u32) -> Res<()> {
        let caps = match self.caps() {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        let mut owned = Vec::new();
        for id in &ids {
            match caps.own_replica("containers.stop", id).await {
                Ok(Some(r)) => owned.push(r),
                Ok(None) => {}
                Err(e) => return Ok(Err(e)),
            }
        }
        let grace = Duration::from_millis(grace_ms.min(120_000) as u64);
        let services = caps.services.clone();
        let (app, stopping) = (caps.app.clone(), owned.clone());
        // On a task of its own, as `scale`: a cancelled step never leaves a stop half done.
        let result = tokio::spawn(async move {
            let mut result = Ok(());
            for r in &stopping {
                if let Err(e) = services.fleet.stop(r, grace).await {
                    result = Err(failed(e));
                }
            }
            services.sync_router(&app).await;
            result
        })
        .await
        .unwrap_or_else(|e| Err(Error::Failed(format!("stopping stopped: {e}"))));
        if !owned.is_empty() {
            caps.writes.progressed = true;
            caps.log("info", format!("stopped {}", owned.iter().map(|r| r.id.as_str()).collect::<Vec<_>>().join(", ")));
        }
        Ok(result)
    }
}

impl HostState {
    async fn apply_split(&mut self, capability: &str, split: Vec<routing::Weight>, sticky: bool) -> Res<()> {
        let caps = match self.caps() {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        let mut table = Vec::new();
        for w in split {
            if let Err(e) = caps.check_version(capability, &w.version) {
                return Ok(Err(e));
            }
            if table.iter().any(|(v, _)| v == &w.version) {
                return Ok(Err(Error::Invalid(format!("{capability}: version `{}` appears twice", w.version))));
            }
            table.push((w.version, w.weight));
        }
        if caps.services.router.split(&caps.app) != (table.clone(), sticky) {
            // Persist first: after a restart the router comes back with this split.
            if let Err(e) = caps.services.store.set_app_split(&caps.app, &table, sticky).await {
                return Ok(Err(failed(e)));
            }
            caps.services.router.set_split(&caps.app, table.clone(), sticky);
            caps.writes.progressed = true;
            let shown: Vec<String> = table.iter().map(|(v, w)| format!("{v}={w}")).collect();
            let kind = if sticky { "sticky traffic split" } else { "traffic split" };
            caps.log("info", format!("{kind} set to [{}]", shown.join(", ")));
        }
        Ok(Ok(()))
    }
}

impl routing::Host for HostState {
    async fn set_split(&mut self, split: Vec<routing::Weight>) -> Res<()> {
        self.apply_split("routing.set-split", split, false).await
    }

    async fn set_sticky_split(&mut self, split: Vec<routing::Weight>) -> Res<()> {
        self.apply_split("routing.set-sticky-split", split, true).await
    }

    async fn current_split(&mut self) -> wasmtime::Result<Vec<routing::Weight>> {
        let Ok(caps) = self.caps() else { return Ok(Vec::new()) };
        let (split, _) = caps.services.router.split(&caps.app);
        Ok(split.into_iter().map(|(version, weight)| routing::Weight { version, weight }).collect())
    }

    async fn drain(&mut self, ids: Vec<String>, timeout_ms: u32) -> Res<()> {
        let caps = match self.caps() {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        for id in &ids {
            match caps.own_replica("routing.drain", id).await {
                Ok(Some(_)) => {
                    caps.services.router.drain(&caps.app, id, Duration::from_millis(timeout_ms as u64));
                }
                Ok(None) => {}
                Err(e) => return Ok(Err(e)),
            }
        }
        Ok(Ok(()))
    }

    async fn drain_status(&mut self, id: String) -> Res<routing::DrainState> {
        let caps = match self.caps() {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        if let Err(e) = caps.own_replica("routing.drain-status", &id).await {
            return Ok(Err(e));
        }
        Ok(Ok(match caps.services.router.drain_state(&caps.app, &id) {
            None | Some(DrainState::Drained) => routing::DrainState::Drained,
            Some(DrainState::TimedOut) => routing::DrainState::TimedOut,
            Some(DrainState::Draining(n)) => routing::DrainState::Draining(n.min(u32::MAX as u64) as u32),
        }))
    }
}

impl health::Host for HostState {
    async fn probe(&mut self, replica_id: String) -> Res<health::ProbeResult> {
        let caps = match self.caps() {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        let replica = match caps.own_replica("health.probe", &replica_id).await {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(Err(Error::Invalid(format!("health.probe: no replica `{replica_id}`")))),
            Err(e) => return Ok(Err(e)),
        };
        if !caps.services.fleet.is_running(&replica).await {
            caps.services.router.set_healthy(&caps.app, &replica.id, false);
            return Ok(Ok(health::ProbeResult {
                healthy: false,
                message: format!("replica {replica_id} is not running (it exited)"),
            }));
        }
        let result = caps.services.probe(&replica, &caps.health).await;
        Ok(Ok(health::ProbeResult { healthy: result.healthy, message: result.message }))
    }

    async fn healthy_count(&mut self, version: String) -> wasmtime::Result<u32> {
        let Ok(caps) = self.caps() else { return Ok(0) };
        let replicas = caps.services.fleet.list(&caps.app).await;
        Ok(
            replicas
                .iter()
                .filter(|r| r.version == version && caps.services.router.is_healthy(&caps.app, &r.id))
                .count() as u32,
        )
    }
}

impl metrics::Host for HostState {
    async fn snapshot(&mut self, version: String) -> Res<metrics::Counts> {
        let caps = match self.caps() {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        if let Err(e) = caps.check_version("metrics.snapshot", &version) {
            return Ok(Err(e));
        }
        let s = caps.services.router.stats(&caps.app, &version).unwrap_or_default();
        Ok(Ok(metrics::Counts {
            requests: s.requests,
            status_2xx: s.status_2xx,
            status_3xx: s.status_3xx,
            status_4xx: s.status_4xx,
            status_5xx: s.status_5xx,
            connection_errors: s.connection_errors,
            in_flight: s.in_flight.min(u32::MAX as u64) as u32,
            goals: s.goals,
            p50_ms: s.p50_ms,
            p90_ms: s.p90_ms,
            p99_ms: s.p99_ms,
            latency_buckets: s.latency_buckets,
        }))
    }

    async fn app_counter(&mut self, version: String, name: String) -> Res<f64> {
        Ok(self.read_app_counter(version, name).await)
    }
}

impl HostState {
    async fn read_app_counter(&mut self, version: String, name: String) -> Result<f64, Error> {
        let caps = self.caps()?;
        caps.check_version("metrics.app-counter", &version)?;
        let path = caps.metrics_endpoint.clone();
        let mut total = 0.0;
        for r in caps.services.fleet.list(&caps.app).await.into_iter().filter(|r| r.version == version) {
            let text = caps
                .services
                .prober
                .get_text(&r.address, &path, Duration::from_secs(2))
                .await
                .map_err(Error::Failed)?;
            total += crate::health::sum_counter(&text, &name).ok_or_else(|| {
                Error::Failed(format!("metrics.app-counter: replica {} reports no counter `{name}` at {path}", r.id))
            })?;
        }
        Ok(total)
    }
}

impl state::Host for HostState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Option<Vec<u8>>> {
        let Some(caps) = self.caps.as_mut() else { return Ok(None) };
        if let Some(value) = caps.writes.state.get(&key).or_else(|| caps.state.values.get(&key)) {
            return Ok(Some(value.clone()));
        }
        if !caps.state.sizes.contains_key(&key) {
            return Ok(None);
        }
        let value = caps
            .services
            .store
            .plugin_state_value(&caps.deployment_id, &key)
            .await
            .map_err(|e| wasmtime::Error::msg(format!("state.get: {e:#}")))?;
        if let Some(v) = &value {
            caps.state.values.insert(key, v.clone());
        }
        Ok(value)
    }

    /// Refused beyond the bounds of `bounds`: the contract of 0.1 has no error here, so a
    /// write over a bound traps, and the step fails with this message.
    async fn set(&mut self, key: String, value: Vec<u8>) -> wasmtime::Result<()> {
        let Some(caps) = self.caps.as_mut() else { return Ok(()) };
        let shown = bounds::bounded(key.clone(), 64);
        if key.len() > bounds::STATE_KEY_BYTES {
            wasmtime::bail!(
                "state.set: a key may be at most {} bytes; `{shown}` has {}",
                bounds::STATE_KEY_BYTES,
                key.len()
            );
        }
        if value.len() > bounds::STATE_VALUE_BYTES {
            wasmtime::bail!(
                "state.set: a value may hold at most 1 MiB; `{shown}` has {} bytes (keep less, or spread it over keys: \
                 a deployment's state holds at most {} keys and 4 MiB in all)",
                value.len(),
                bounds::STATE_KEYS
            );
        }
        // The state as it would be after this write: stored sizes, this step's writes.
        let mut sizes = caps.state.sizes.clone();
        sizes.extend(caps.writes.state.iter().map(|(k, v)| (k.clone(), v.len())));
        if !sizes.contains_key(&key) && sizes.len() >= bounds::STATE_KEYS {
            wasmtime::bail!(
                "state.set: a deployment's state holds at most {} keys, and `{shown}` would be one more; reuse keys",
                bounds::STATE_KEYS
            );
        }
        sizes.insert(key.clone(), value.len());
        let total: usize = sizes.values().sum();
        if total > bounds::STATE_TOTAL_BYTES {
            wasmtime::bail!(
                "state.set: a deployment's state holds at most 4 MiB in all, and writing {} bytes under `{shown}` would make it {total}; keep less",
                value.len()
            );
        }
        caps.writes.state.insert(key, value);
        Ok(())
    }
}

impl progress::Host for HostState {
    async fn report(&mut self, percent: u8, message: String) -> wasmtime::Result<()> {
        if let Some(caps) = self.caps.as_mut() {
            caps.writes.progress = Some((percent.min(100), bounds::bounded(message, bounds::MESSAGE_BYTES)));
        }
        Ok(())
    }

    async fn log(&mut self, level: progress::Level, message: String) -> wasmtime::Result<()> {
        let level = match level {
            progress::Level::Debug => "debug",
            progress::Level::Info => "info",
            progress::Level::Warn => "warn",
            progress::Level::Error => "error",
        };
        self.log_line(level, message);
        Ok(())
    }
}

impl context::Host for HostState {
    async fn rollback_of(&mut self) -> wasmtime::Result<Option<String>> {
        Ok(self.caps.as_ref().and_then(|c| c.rollback_of.clone()))
    }

    async fn promotions(&mut self) -> wasmtime::Result<u32> {
        Ok(self.caps.as_ref().map_or(0, |c| c.promotions))
    }
}

impl jobs::Host for HostState {
    async fn run_job(&mut self, version: String, command: String, timeout_ms: u32) -> Res<jobs::JobResult> {
        Ok(self.job(version, command, timeout_ms).await)
    }
}

impl HostState {
    async fn job(&mut self, version: String, command: String, timeout_ms: u32) -> Result<jobs::JobResult, Error> {
        let caps = self.hook_caps()?;
        if command.len() > bounds::JOB_COMMAND_BYTES {
            return Err(Error::Invalid(format!(
                "jobs.run-job: a command may be at most {} bytes; this one has {}",
                bounds::JOB_COMMAND_BYTES,
                command.len()
            )));
        }
        let release = caps.versions.get(&version).cloned().ok_or_else(|| {
            Error::Denied(format!(
                "jobs.run-job: version `{version}` is not part of deployment {} of app `{}`",
                caps.deployment_id, caps.app
            ))
        })?;
        let (timeout, limit) = caps.time_left(timeout_ms);
        let spec = LaunchSpec {
            app: caps.app.clone(),
            version: version.clone(),
            deployment_id: caps.deployment_id.clone(),
            image: release.image.clone(),
            container_port: caps.container_port,
            health_port: None,
            env: release.env.into_iter().collect(),
            resources: release.resources,
            target: caps.target.clone(),
        };
        let services = caps.services.clone();
        let outcome = services.fleet.run_job(&spec, &command, timeout).await.map_err(failed)?;
        match outcome.exit_code {
            Some(exit_code) => Ok(jobs::JobResult { exit_code, output: outcome.output }),
            None => Err(Error::Failed(format!(
                "`{command}` did not finish within {limit} and was stopped; it printed: {}",
                if outcome.output.is_empty() { "nothing" } else { &outcome.output }
            ))),
        }
    }

    async fn post(&mut self, url: String, body: String, timeout_ms: u32) -> Result<http::Response, Error> {
        let caps = self.hook_caps()?;
        if url.len() > 8192 {
            return Err(Error::Invalid(format!(
                "http.post-json: a URL may be at most 8192 bytes; this one has {}",
                url.len()
            )));
        }
        if body.len() > bounds::HTTP_BODY_BYTES {
            return Err(Error::Invalid(format!(
                "http.post-json: a request body may be at most 1 MiB; this one has {} bytes",
                body.len()
            )));
        }
        let parsed =
            caps.services.check_hook_url(&url).map_err(|why| Error::Denied(format!("http.post-json: {why}")))?;
        let (timeout, limit) = caps.time_left(timeout_ms);
        let request = caps
            .services
            .hook_http
            .post(parsed)
            .header("content-type", "application/json")
            .header("user-agent", concat!("hivemind/", env!("CARGO_PKG_VERSION")))
            .body(body)
            .timeout(timeout);
        let response = request.send().await.map_err(|e| {
            let why = if e.is_timeout() { format!("no answer within {limit}") } else { format!("{e}") };
            Error::Failed(format!("POST {url}: {why}"))
        })?;
        let status = response.status().as_u16();
        let mut body = Vec::new();
        let mut response = response;
        while let Ok(Some(chunk)) = response.chunk().await {
            body.extend_from_slice(&chunk);
            if body.len() >= 64 << 10 {
                body.truncate(64 << 10);
                break;
            }
        }
        Ok(http::Response { status, body: String::from_utf8_lossy(&body).into_owned() })
    }
}

impl http::Host for HostState {
    async fn post_json(&mut self, url: String, body: String, timeout_ms: u32) -> Res<http::Response> {
        Ok(self.post(url, body, timeout_ms).await)
    }
}
