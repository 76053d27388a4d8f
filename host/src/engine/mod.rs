//! The deployment engine: validates and records deployments, and drives each one by
//! calling its strategy's `step` until the strategy says done or failed.
//!
//! After every step the engine persists the plugin's state, progress and events in one
//! transaction, then sleeps as the strategy asked. A failed deploy phase switches to the
//! rollback phase. Because all progress is in the store, a restarted engine simply
//! resumes every active deployment with its next step.

mod validate;

use crate::error::UserError;
use crate::health::HttpCheck;
use crate::model::{App, Deployment, DeploymentSpec, Event, Phase, ReplicaRecord, Status, now_ms};
use crate::plugins::{LoadedPlugin, Origin, PluginHost, Services, StepCaps, StepContext, StepOutcome, wit};
use crate::router::Router;
use crate::runtime::Fleet;
use crate::store::{StepWrites, Store, Transition};
use anyhow::Result;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Between steps the engine never sleeps longer than this, whatever a plugin asks.
const MAX_STEP_DELAY: Duration = Duration::from_secs(60);

pub struct Engine {
    store: Store,
    plugins: Arc<PluginHost>,
    services: Arc<Services>,
    router_ip: IpAddr,
    /// The health check of each app, from its latest deployment.
    checks: Mutex<HashMap<String, HttpCheck>>,
    /// Deployments whose step loop runs in this process.
    driving: Mutex<HashSet<String>>,
    /// Serialises create/execute so that two deployments never claim one app.
    admission: tokio::sync::Mutex<()>,
}

/// An app with its live replicas, as the API shows it.
#[derive(Debug, serde::Serialize)]
pub struct AppView {
    #[serde(flatten)]
    pub app: App,
    pub replicas: Vec<ReplicaView>,
}

#[derive(Debug, serde::Serialize)]
pub struct ReplicaView {
    #[serde(flatten)]
    pub record: ReplicaRecord,
    pub healthy: bool,
}

impl Engine {
    pub fn new(
        store: Store,
        plugins: Arc<PluginHost>,
        fleet: Arc<Fleet>,
        router: Arc<Router>,
        router_ip: IpAddr,
    ) -> Arc<Engine> {
        let services = Arc::new(Services { fleet, router, prober: crate::health::Prober::new(), store: store.clone() });
        Arc::new(Engine {
            store,
            plugins,
            services,
            router_ip,
            checks: Mutex::new(HashMap::new()),
            driving: Mutex::new(HashSet::new()),
            admission: tokio::sync::Mutex::new(()),
        })
    }

    pub fn plugins(&self) -> &Arc<PluginHost> {
        &self.plugins
    }

    /// Brings the world back in line with the store after a (re)start: adopts the
    /// replicas that still run, restores every app's router, and resumes the
    /// deployments that were under way.
    pub async fn start(self: &Arc<Self>) -> Result<()> {
        let (adopted, gone) = self.services.fleet.adopt().await?;
        for r in &gone {
            tracing::warn!(replica = %r.id, app = %r.app, "recorded replica no longer runs; forgetting it");
        }
        tracing::info!("adopted {} running replicas", adopted.len());
        for app in self.store.apps().await? {
            self.services.router.listen(&app.name, SocketAddr::new(self.router_ip, app.port)).await?;
            self.services.router.set_split(&app.name, app.split.clone(), app.sticky);
            self.services.sync_router(&app.name).await;
            if let Some(latest) = self.store.deployments(Some(&app.name), 1).await?.first() {
                self.checks.lock().unwrap().insert(app.name.clone(), check_of(&latest.spec));
            }
        }
        self.probe_all().await;
        for d in self.store.active_deployments().await? {
            let message =
                format!("server restarted; resuming the {} phase at step {}", d.phase.as_str(), d.attempt + 1);
            self.store.event(&d.id, "info", &message).await?;
            if d.status != Status::AwaitingApproval {
                self.spawn_drive(d.id.clone());
            }
        }
        let engine = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                engine.probe_all().await;
            }
        });
        Ok(())
    }

    /// Writes what the router noticed into the event log of the app's active deployment.
    pub fn watch_router(
        self: &Arc<Self>,
        mut events: tokio::sync::mpsc::UnboundedReceiver<crate::router::RouterEvent>,
    ) {
        let engine = self.clone();
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                let crate::router::RouterEvent::Ejected { app, replica, version } = event;
                let message = format!(
                    "router ejected replica {replica} ({version}) after {} failed requests in a row; it gets no traffic for {} s",
                    crate::router::EJECT_AFTER_FAILURES,
                    crate::router::EJECT_FOR_MS / 1000
                );
                match engine.active_deployment(&app).await {
                    Ok(Some(d)) => {
                        let _ = engine.store.event(&d.id, "warn", &message).await;
                    }
                    _ => tracing::warn!(app = %app, "{message}"),
                }
            }
        });
    }

    /// The server's own counts in the Prometheus text format.
    pub fn prometheus(&self) -> String {
        self.services.router.prometheus()
    }

    /// Probes every replica once, in parallel, and tells the router.
    async fn probe_all(&self) {
        let replicas = self.services.fleet.all().await;
        let checks = self.checks.lock().unwrap().clone();
        let probes = replicas.iter().filter_map(|r| checks.get(&r.app).map(|c| self.services.probe(r, c)));
        futures::future::join_all(probes).await;
    }

    // ---- deployments ----

    /// Validates and records a deployment without running it.
    pub async fn create(&self, spec: DeploymentSpec) -> Result<Deployment, UserError> {
        let _admission = self.admission.lock().await;
        self.create_locked(spec).await
    }

    async fn create_locked(&self, mut spec: DeploymentSpec) -> Result<Deployment, UserError> {
        validate::spec(&spec)?;
        let plugin = self.plugins.get(&spec.strategy).ok_or_else(|| {
            UserError::invalid(
                "strategy",
                format!("unknown strategy `{}`; available: {}", spec.strategy, self.plugins.names().join(", ")),
            )
        })?;
        let driver = self.services.fleet.driver();
        driver.check_image(&spec.image).await.map_err(|e| UserError::invalid("image", format!("{e:#}")))?;
        if spec.health_check_port.is_some() && !driver.supports_health_port() {
            return Err(UserError::invalid(
                "health_check_port",
                format!(
                    "the {} runtime probes each replica on the port it serves ($PORT); leave out --health-check-port, or use the docker runtime",
                    driver.name()
                ),
            ));
        }

        let existing = self.store.app(&spec.app).await?;
        if let Some(app) = &existing {
            if let Some(port) = spec.port.filter(|p| *p != app.port) {
                return Err(UserError::invalid(
                    "port",
                    format!("app `{}` already serves on port {}; its port cannot change to {port}", app.name, app.port),
                ));
            }
            if let Some(active) = self.active_deployment(&app.name).await? {
                return Err(UserError::conflict(
                    "deployment_in_progress",
                    format!(
                        "app `{}` has deployment {} {}; wait for it to finish or abort it",
                        app.name,
                        active.id,
                        active.status.as_str().replace('_', " ")
                    ),
                ));
            }
        } else if let Some(port) = spec.port {
            if self.store.apps().await?.iter().any(|a| a.port == port) {
                return Err(UserError::invalid("port", format!("port {port} is used by another app")));
            }
        }

        let previous = existing.as_ref().and_then(|a| a.release.clone());
        let provisional_version = format!("r{}", existing.as_ref().map(|a| a.release_counter).unwrap_or(0) + 1);
        let id = format!("dep-{:08x}", fastrand::u32(..));
        let mut d = Deployment {
            id: id.clone(),
            name: spec.name.clone().unwrap_or_else(|| spec.app.clone()),
            app: spec.app.clone(),
            strategy: spec.strategy.clone(),
            spec: spec.clone(),
            target_version: provisional_version,
            previous,
            status: Status::Pending,
            phase: Phase::Deploy,
            progress: 0,
            message: "created".into(),
            error: None,
            plugin: plugin.info.clone(),
            attempt: 0,
            phase_started_at_ms: now_ms(),
            created_at_ms: now_ms(),
            updated_at_ms: now_ms(),
        };
        match self.plugins.validate(&plugin, &wit_deployment(&d)).await? {
            Ok(()) => {}
            Err(message) => {
                return Err(UserError::invalid(
                    "params",
                    format!("strategy {} refused the deployment: {message}", plugin.info.name),
                ));
            }
        }

        // Everything is valid: only now does anything change.
        if existing.is_none() {
            let port = match spec.port {
                Some(p) => p,
                None => crate::runtime::free_port().map_err(|e| UserError::internal(e.into()))?,
            };
            self.services
                .router
                .listen(&spec.app, SocketAddr::new(self.router_ip, port))
                .await
                .map_err(|e| UserError::invalid("port", format!("{e:#}; pick another with --port")))?;
            self.store.insert_app(&spec.app, port).await?;
            spec.port = Some(port);
            d.spec.port = Some(port);
        }
        d.target_version = format!("r{}", self.store.next_release_number(&spec.app).await?);
        self.store.insert_deployment(&d).await?;
        let previous =
            d.previous.as_ref().map(|p| format!(", replacing {} ({})", p.version, p.image)).unwrap_or_default();
        self.store
            .event(
                &d.id,
                "info",
                &format!(
                    "created: {} of app {} with strategy {} {} (sha256 {}){previous}",
                    d.target_version,
                    d.app,
                    d.plugin.name,
                    d.plugin.version,
                    &d.plugin.sha256[..12]
                ),
            )
            .await?;
        Ok(d)
    }

    async fn active_deployment(&self, app: &str) -> Result<Option<Deployment>> {
        Ok(self.store.deployments(Some(app), 50).await?.into_iter().find(|d| d.status.is_active()))
    }

    /// Starts running a pending deployment.
    pub async fn execute(self: &Arc<Self>, id: &str) -> Result<Deployment, UserError> {
        let _admission = self.admission.lock().await;
        self.execute_locked(id).await
    }

    async fn execute_locked(self: &Arc<Self>, id: &str) -> Result<Deployment, UserError> {
        let d = self.deployment(id).await?;
        if d.status != Status::Pending {
            return Err(UserError::conflict(
                "not_pending",
                format!(
                    "deployment {id} is {}; only a pending deployment can be executed",
                    d.status.as_str().replace('_', " ")
                ),
            ));
        }
        if let Some(active) = self.active_deployment(&d.app).await? {
            return Err(UserError::conflict(
                "deployment_in_progress",
                format!("app `{}` has deployment {} in progress; wait for it to finish", d.app, active.id),
            ));
        }
        self.checks.lock().unwrap().insert(d.app.clone(), check_of(&d.spec));
        let message = format!("deploying {} with strategy {}", d.target_version, d.plugin.name);
        self.store
            .transition(id, Transition { phase: Some(Phase::Deploy), ..Transition::to(Status::InProgress, &message) })
            .await?;
        self.spawn_drive(id.to_string());
        self.deployment(id).await
    }

    /// Creates and executes in one go.
    pub async fn deploy(self: &Arc<Self>, spec: DeploymentSpec) -> Result<Deployment, UserError> {
        let _admission = self.admission.lock().await;
        let d = self.create_locked(spec).await?;
        self.execute_locked(&d.id).await
    }

    pub async fn deployment(&self, id: &str) -> Result<Deployment, UserError> {
        self.store.deployment(id).await?.ok_or_else(|| {
            UserError::not_found(
                "deployment",
                format!("no deployment with id `{id}`; `hivemind deployment list` shows them"),
            )
        })
    }

    pub async fn deployments(&self, app: Option<&str>, limit: i64) -> Result<Vec<Deployment>, UserError> {
        Ok(self.store.deployments(app, limit).await?)
    }

    pub async fn events(&self, id: &str, after: i64) -> Result<Vec<Event>, UserError> {
        self.deployment(id).await?;
        Ok(self.store.events(id, after).await?)
    }

    // ---- apps and plugins ----

    pub async fn apps(&self) -> Result<Vec<AppView>, UserError> {
        let mut views = Vec::new();
        for app in self.store.apps().await? {
            views.push(self.app_view(app).await);
        }
        Ok(views)
    }

    pub async fn app(&self, name: &str) -> Result<AppView, UserError> {
        let app = self.store.app(name).await?.ok_or_else(|| {
            UserError::not_found("app", format!("no app named `{name}`; `hivemind app list` shows them"))
        })?;
        Ok(self.app_view(app).await)
    }

    async fn app_view(&self, app: App) -> AppView {
        let replicas = self
            .services
            .fleet
            .list(&app.name)
            .await
            .into_iter()
            .map(|r| ReplicaView { healthy: self.services.router.is_healthy(&app.name, &r.id), record: r })
            .collect();
        AppView { app, replicas }
    }

    /// The last lines a replica of the app printed.
    pub async fn replica_logs(&self, app: &str, replica: &str, lines: usize) -> Result<String, UserError> {
        let r = self.services.fleet.get(replica).await.filter(|r| r.app == app).ok_or_else(|| {
            UserError::not_found(
                "replica",
                format!("app `{app}` has no running replica `{replica}`; `hivemind app get --name {app}` lists them"),
            )
        })?;
        Ok(self.services.fleet.driver().logs(&r.handle, lines).await)
    }

    /// Loads the plugins installed before a restart, from `plugins_dir`.
    pub async fn load_installed_plugins(&self, plugins_dir: &std::path::Path) -> Result<()> {
        for sha in self.store.installed_plugins().await? {
            let path = plugins_dir.join(format!("{sha}.wasm"));
            match std::fs::read(&path) {
                Ok(bytes) => {
                    if let Err(e) = self.plugins.load(bytes, Origin::Installed).await {
                        tracing::error!("installed plugin {} does not load: {e:#}", path.display());
                    }
                }
                Err(e) => tracing::error!("installed plugin {} is missing: {e}", path.display()),
            }
        }
        Ok(())
    }

    /// Loads a plugin component and keeps its bytes so a restart loads it again.
    pub async fn install_plugin(
        &self,
        bytes: Vec<u8>,
        plugins_dir: &std::path::Path,
    ) -> Result<Arc<LoadedPlugin>, UserError> {
        let plugin = self
            .plugins
            .load(bytes.clone(), Origin::Installed)
            .await
            .map_err(|e| UserError::invalid("plugin", format!("{e:#}")))?;
        std::fs::create_dir_all(plugins_dir).map_err(|e| UserError::internal(e.into()))?;
        std::fs::write(plugins_dir.join(format!("{}.wasm", plugin.info.sha256)), &bytes)
            .map_err(|e| UserError::internal(e.into()))?;
        self.store.insert_plugin(&plugin.info.sha256, &plugin.info.name, &plugin.info.version).await?;
        Ok(plugin)
    }

    // ---- the step loop ----

    fn spawn_drive(self: &Arc<Self>, id: String) {
        if !self.driving.lock().unwrap().insert(id.clone()) {
            return;
        }
        let engine = self.clone();
        tokio::spawn(async move {
            if let Err(e) = engine.drive(&id).await {
                tracing::error!(deployment = %id, "the step loop stopped: {e:#}");
            }
            engine.driving.lock().unwrap().remove(&id);
        });
    }

    async fn drive(&self, id: &str) -> Result<()> {
        loop {
            let Some(d) = self.store.deployment(id).await? else { return Ok(()) };
            if !matches!(d.status, Status::InProgress | Status::RollingBack) {
                return Ok(());
            }
            let Some(plugin) = self.plugins.pinned(&d.plugin.sha256) else {
                let message = format!(
                    "plugin {} {} (sha256 {}) that this deployment is pinned to is not loaded; install it again",
                    d.plugin.name, d.plugin.version, d.plugin.sha256
                );
                self.store
                    .transition(
                        id,
                        Transition {
                            level: "error",
                            error: Some(&message),
                            ..Transition::to(Status::Failed, &message)
                        },
                    )
                    .await?;
                return Ok(());
            };
            let caps = StepCaps {
                app: d.app.clone(),
                deployment_id: d.id.clone(),
                versions: allowed_versions(&d),
                container_port: d.spec.container_port,
                health_port: d.spec.health_check_port,
                health: check_of(&d.spec),
                services: self.services.clone(),
                state: self.store.plugin_state(id).await?,
                writes: StepWrites::default(),
            };
            let context = StepContext {
                phase: match d.phase {
                    Phase::Deploy => crate::plugins::bindings::Phase::Deploy,
                    Phase::Rollback => crate::plugins::bindings::Phase::Rollback,
                },
                attempt: d.attempt,
                elapsed_ms: (now_ms() - d.phase_started_at_ms).max(0) as u64,
                promoted: false,
                winner: None,
            };
            let (outcome, caps) = self.plugins.step(&plugin, caps, &wit_deployment(&d), &context).await;
            let mut writes = caps.writes;
            match outcome {
                Ok(StepOutcome::Continue(delay_ms)) => {
                    self.store.record_step(id, &writes).await?;
                    tokio::time::sleep(Duration::from_millis(delay_ms as u64).min(MAX_STEP_DELAY)).await;
                }
                Ok(StepOutcome::Done) => {
                    self.store.record_step(id, &writes).await?;
                    self.finish(&d).await?;
                    return Ok(());
                }
                Ok(StepOutcome::AwaitApproval(reason)) => {
                    self.store.record_step(id, &writes).await?;
                    let message = format!("awaiting approval: {reason}");
                    self.store.transition(id, Transition::to(Status::AwaitingApproval, &message)).await?;
                    return Ok(());
                }
                Ok(StepOutcome::Failed(reason)) | Err(reason) => {
                    writes.events.push(("error".into(), format!("{} phase failed: {reason}", d.phase.as_str())));
                    self.store.record_step(id, &writes).await?;
                    self.fail(&d, &reason).await?;
                    if d.phase == Phase::Rollback {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// A phase is done: the deploy phase completes the deployment; the rollback phase
    /// ends it as failed with the previous release restored.
    async fn finish(&self, d: &Deployment) -> Result<()> {
        match d.phase {
            Phase::Deploy => {
                self.store.set_app_release(&d.app, Some(&d.target())).await?;
                let message = format!("{} serves: {} replicas of {}", d.target_version, d.spec.replicas, d.spec.image);
                self.store
                    .transition(
                        &d.id,
                        Transition { progress: Some(100), ..Transition::to(Status::Completed, &message) },
                    )
                    .await?;
            }
            Phase::Rollback => {
                self.store.set_app_release(&d.app, d.previous.as_ref()).await?;
                let restored = match &d.previous {
                    Some(p) => format!("rolled back: {} serves again", p.version),
                    None => "rolled back: the app had no previous release, so nothing serves".to_string(),
                };
                let error = d.error.clone().unwrap_or_else(|| "rolled back".into());
                let message = format!("{error}; {restored}");
                self.store
                    .transition(&d.id, Transition { level: "warn", ..Transition::to(Status::Failed, &message) })
                    .await?;
            }
        }
        Ok(())
    }

    /// A phase failed: a failed deploy phase starts the rollback phase; a failed
    /// rollback ends the deployment.
    async fn fail(&self, d: &Deployment, reason: &str) -> Result<()> {
        match d.phase {
            Phase::Deploy => {
                let message = format!("{reason}; rolling back");
                self.store
                    .transition(
                        &d.id,
                        Transition {
                            phase: Some(Phase::Rollback),
                            level: "warn",
                            error: Some(reason),
                            ..Transition::to(Status::RollingBack, &message)
                        },
                    )
                    .await?;
            }
            Phase::Rollback => {
                let first = d.error.clone().unwrap_or_default();
                let message = format!("{first}; the rollback failed too: {reason}");
                self.store
                    .transition(&d.id, Transition { level: "error", ..Transition::to(Status::Failed, &message) })
                    .await?;
            }
        }
        Ok(())
    }
}

fn check_of(spec: &DeploymentSpec) -> HttpCheck {
    HttpCheck {
        path: spec.health_check_path.clone(),
        timeout: Duration::from_secs(spec.health_check_timeout.max(1) as u64),
    }
}

/// The versions a deployment's plugin may touch: its target and the release it replaces.
fn allowed_versions(d: &Deployment) -> HashMap<String, String> {
    let mut versions = HashMap::from([(d.target_version.clone(), d.spec.image.clone())]);
    if let Some(p) = &d.previous {
        versions.insert(p.version.clone(), p.image.clone());
    }
    versions
}

/// The deployment as a plugin sees it.
pub fn wit_deployment(d: &Deployment) -> wit::Deployment {
    let release = |r: &crate::model::Release| wit::Release {
        version: r.version.clone(),
        image: r.image.clone(),
        replicas: r.replicas,
    };
    wit::Deployment {
        id: d.id.clone(),
        app: d.app.clone(),
        target: release(&d.target()),
        previous: d.previous.as_ref().map(release),
        variants: Vec::new(),
        params: d.spec.params.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        health: wit::HealthCheck {
            path: d.spec.health_check_path.clone(),
            timeout_ms: d.spec.health_check_timeout.saturating_mul(1000),
            ready_timeout_ms: d.spec.ready_timeout.saturating_mul(1000),
        },
    }
}
