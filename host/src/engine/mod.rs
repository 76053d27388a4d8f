//! The deployment engine: admits deployments, drives each one by calling its strategy's
//! `step` until the strategy says done or failed, and takes the user's controls between
//! steps (pause, resume, promote, abort, rollback).
//!
//! After every step the engine persists the plugin's state, progress and events in one
//! transaction, then sleeps as the strategy asked. A failed deploy phase switches to the
//! rollback phase. Because all progress is in the store, a restarted engine reconciles
//! the replicas and resumes every active deployment with its next step.

mod admit;
mod catalog;
mod certs;
mod control;
mod diagnose;
mod drive;
pub use drive::{machine_outcome, step_context};
mod heal;
mod hooks;
pub mod machine;
mod metrics;
mod restore;
mod series;
#[cfg(test)]
mod tests;
mod validate;
mod watch;

use crate::api_types::{AppView, ReplicaView};
use crate::error::{ErrorCode, Field, UserError};
use crate::health::HttpCheck;
use crate::model::{App, Deployment, Event, Level, Status};
use crate::plugins::PluginHost;
use crate::router::{Router, RouterEvent};
use crate::runtime::Fleet;
use crate::services::Services;
use crate::store::Store;
use anyhow::Result;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// How the engine behaves, from the server's flags.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// The address app routers bind to.
    pub router_ip: IpAddr,
    /// Finished deployments kept per app; older ones are deleted with their events.
    pub history_limit: u32,
    /// The deployment targets (`--cloud-provider`) the server's configuration names.
    pub targets: Vec<String>,
    /// The hosts hooks may send HTTP requests to (`--hook-allowed-hosts`).
    pub hook_allowed_hosts: Vec<String>,
    /// How often every replica is probed, and the healer looks at every app.
    pub probe_interval: Duration,
    /// The server's data dir: the TLS certificates live in its `certs/`.
    pub data_dir: std::path::PathBuf,
    /// Where certificates for `--tls acme` apps come from, if the server has a directory.
    pub acme: Option<crate::acme::AcmeConfig>,
    /// Why this engine starts on deployments already under way, for their event logs:
    /// the server restarted, or took over as the cluster's leader.
    pub resumed_because: String,
}

pub struct Engine {
    store: Store,
    plugins: Arc<PluginHost>,
    services: Arc<Services>,
    options: EngineOptions,
    /// The health check of each app, from its latest deployment.
    checks: Mutex<HashMap<String, HttpCheck>>,
    /// Deployments whose step loop runs in this process, with the handle that wakes
    /// the loop from its sleep when a user acts on the deployment.
    driving: Mutex<HashMap<String, Arc<Notify>>>,
    /// The engine's own counts for /metrics.
    counts: Counts,
    /// Keeps each app's release running between deployments.
    healer: heal::Healer,
    /// Serialises decisions about deployments: admission (one active deployment per
    /// app), user controls, and applying a step's outcome, so that none of them acts on
    /// a status another has just changed.
    decisions: tokio::sync::Mutex<()>,
    /// The ACME client, when the server has a directory (`--acme-directory`).
    acme: Option<Arc<crate::acme::Acme>>,
    /// Wakes the certificate keeper: an app now wants ACME certificates.
    certificates_wanted: Notify,
    /// What the certificate keeper did, for /metrics and the back-off.
    certificates: certs::Keeper,
}

/// Upper bounds of the step-duration histogram, in seconds.
const STEP_BUCKETS: [f64; 10] = [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0];

#[derive(Default)]
struct Counts {
    outcomes: Mutex<std::collections::BTreeMap<(String, String), u64>>,
    steps: Mutex<StepHistogram>,
}

#[derive(Default)]
struct StepHistogram {
    buckets: [u64; STEP_BUCKETS.len() + 1],
    sum: f64,
}

impl Counts {
    fn outcome(&self, strategy: &str, status: Status) {
        *self.outcomes.lock().unwrap().entry((strategy.to_string(), status.as_str().to_string())).or_default() += 1;
    }

    fn step(&self, seconds: f64) {
        let mut h = self.steps.lock().unwrap();
        let i = STEP_BUCKETS.iter().position(|b| seconds <= *b).unwrap_or(STEP_BUCKETS.len());
        h.buckets[i] += 1;
        h.sum += seconds;
    }
}

impl Engine {
    pub fn new(
        store: Store,
        plugins: Arc<PluginHost>,
        fleet: Arc<Fleet>,
        router: Arc<Router>,
        options: EngineOptions,
    ) -> Arc<Engine> {
        let services = Arc::new(Services::new(fleet, router, store.clone(), options.hook_allowed_hosts.clone()));
        let acme = options.acme.clone().map(|config| Arc::new(crate::acme::Acme::new(config, &options.data_dir)));
        Arc::new(Engine {
            acme,
            certificates_wanted: Notify::new(),
            certificates: Default::default(),
            store,
            plugins,
            services,
            options,
            checks: Mutex::new(HashMap::new()),
            driving: Mutex::new(HashMap::new()),
            counts: Counts::default(),
            healer: Default::default(),
            decisions: tokio::sync::Mutex::new(()),
        })
    }

    pub fn plugins(&self) -> &Arc<PluginHost> {
        &self.plugins
    }

    /// Brings the world back in line with the store after a (re)start: reconciles the
    /// replicas, restores every app's router, and resumes the deployments under way.
    pub async fn start(self: &Arc<Self>) -> Result<()> {
        let found = self.services.fleet.reconcile().await?;
        for r in &found.gone {
            let message = format!("restart: replica {} ({}) no longer runs; forgot it", r.id, r.version);
            self.event_for_app_or_log(&r.app, Some(&r.deployment_id), Level::Warn, &message).await;
        }
        for (id, handle) in &found.orphans {
            tracing::warn!(
                "restart: removed replica {id} ({handle}): it was started by this server but no record owns it"
            );
            let app = id.split('-').next().unwrap_or_default().to_string();
            let message =
                format!("restart: removed orphan replica {id}: started but never recorded (a crash in between)");
            self.event_for_app_or_log(&app, None, Level::Warn, &message).await;
        }
        tracing::info!("restart: adopted {} running replicas", found.adopted.len());

        for app in self.store.apps().await? {
            self.services.fleet.set_quota(&app.name, app.replica_quota);
            self.services.router.listen(&app.name, SocketAddr::new(self.options.router_ip, app.port)).await?;
            self.services.router.set_split(&app.name, app.split.clone(), app.sticky);
            self.services.router.set_binding(&app.name, &crate::model::AppBinding::of(&app).route());
            self.services.sync_router(&app.name).await;
            if let Some(latest) = self.store.deployments(Some(&app.name), 1).await?.first() {
                self.checks.lock().unwrap().insert(app.name.clone(), drive::check_of(&latest.spec));
            }
        }
        self.probe_all().await;
        for d in self.store.active_deployments().await? {
            let recovered = machine::decide(&d, &machine::Event::Recovered, crate::model::now_ms());
            if recovered.is_ok_and(|r| r.next == machine::Next::Drive) {
                let message = format!(
                    "{}; resuming the {} phase at step {}",
                    self.options.resumed_because,
                    d.phase.as_str(),
                    d.attempt + 1
                );
                self.store.event(&d.id, Level::Info, &message).await?;
                self.spawn_drive(d.id.clone());
            }
        }
        let engine = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(engine.options.probe_interval).await;
                if !engine.store.fence().may_act() {
                    continue;
                }
                engine.probe_all().await;
                engine.heal_all().await;
            }
        });
        let engine = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                if engine.store.fence().may_act() {
                    engine.sample_series().await;
                }
            }
        });
        if self.acme.is_some() {
            self.clone().keep_certificates();
        }
        Ok(())
    }

    /// Writes an event to a deployment (the given one, or the app's active one), or to
    /// the app's own log when no deployment runs.
    async fn event_for_app_or_log(&self, app: &str, deployment: Option<&str>, level: Level, message: &str) {
        let target = match deployment {
            Some(id) => Some(id.to_string()),
            None => self.active_deployment(app).await.ok().flatten().map(|d| d.id),
        };
        let written = match target {
            Some(id) => self.store.event(&id, level, message).await,
            None => self.store.app_event(app, level, message).await,
        };
        if written.is_err() {
            tracing::warn!(app = %app, "{message}");
        }
    }

    /// Probes every replica once, in parallel, and tells the router.
    async fn probe_all(&self) {
        let replicas = self.services.fleet.all().await;
        let checks = self.checks.lock().unwrap().clone();
        let probes = replicas.iter().filter_map(|r| checks.get(&r.app).map(|c| self.services.probe(r, c)));
        futures::future::join_all(probes).await;
    }

    /// Writes what the router noticed into the event log of the app's active deployment.
    pub fn watch_router(self: &Arc<Self>, mut events: tokio::sync::mpsc::UnboundedReceiver<RouterEvent>) {
        let engine = self.clone();
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                match event {
                    RouterEvent::Ejected { app, replica, version } => {
                        let message = format!(
                            "router ejected replica {replica} ({version}) after {} failed requests in a row; it gets no traffic for {} s",
                            crate::router::EJECT_AFTER_FAILURES,
                            crate::router::EJECT_FOR_MS / 1000
                        );
                        engine.event_for_app_or_log(&app, None, Level::Warn, &message).await;
                    }
                    // Every app went through it: each one's log says so.
                    RouterEvent::ProcessRestarted { after } => {
                        let message = format!(
                            "the router process stopped answering; a new one serves every app again, {} ms later",
                            after.as_millis()
                        );
                        for app in engine.store.apps().await.unwrap_or_default() {
                            let _ = engine.store.app_event(&app.name, Level::Error, &message).await;
                        }
                    }
                }
            }
        });
    }

    /// The server's own counts in the Prometheus text format: deployments by strategy and
    /// outcome, step durations, plugin load errors, and the router's counts.
    pub async fn prometheus(&self) -> String {
        use std::fmt::Write;
        self.services.router.refresh().await;
        let mut out = String::new();
        let _ = writeln!(out, "# HELP hivemind_deployments_total Deployments that ended, by strategy and outcome.");
        let _ = writeln!(out, "# TYPE hivemind_deployments_total counter");
        for ((strategy, outcome), n) in self.counts.outcomes.lock().unwrap().iter() {
            let _ = writeln!(out, "hivemind_deployments_total{{strategy=\"{strategy}\",outcome=\"{outcome}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP hivemind_step_duration_seconds Time of one plugin step, sandbox and host calls included."
        );
        let _ = writeln!(out, "# TYPE hivemind_step_duration_seconds histogram");
        let steps = self.counts.steps.lock().unwrap();
        let mut cumulative = 0;
        for (bound, n) in STEP_BUCKETS.iter().zip(steps.buckets.iter()) {
            cumulative += n;
            let _ = writeln!(out, "hivemind_step_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        cumulative += steps.buckets[STEP_BUCKETS.len()];
        let _ = writeln!(out, "hivemind_step_duration_seconds_bucket{{le=\"+Inf\"}} {cumulative}");
        let _ = writeln!(out, "hivemind_step_duration_seconds_sum {}", steps.sum);
        let _ = writeln!(out, "hivemind_step_duration_seconds_count {cumulative}");
        drop(steps);
        let _ = writeln!(out, "# HELP hivemind_plugin_load_errors_total Plugin components that failed to load.");
        let _ = writeln!(out, "# TYPE hivemind_plugin_load_errors_total counter");
        let _ = writeln!(out, "hivemind_plugin_load_errors_total {}", self.plugins.load_errors());
        self.healer.prometheus(&mut out, |id| self.services.health_of(id).healthy_since_ms.is_some());
        self.certificates_prometheus(&mut out);
        out.push_str(&self.services.router.prometheus());
        out
    }

    // ---- reading ----

    pub async fn deployment(&self, id: &str) -> Result<Deployment, UserError> {
        self.store.deployment(id).await?.ok_or_else(|| {
            UserError::not_found(
                ErrorCode::DeploymentNotFound,
                format!("no deployment with id `{id}`; `hivemind deployment list` shows them"),
            )
        })
    }

    pub async fn events(&self, id: &str, after: i64) -> Result<Vec<Event>, UserError> {
        self.deployment(id).await?;
        Ok(self.store.events(id, after).await?)
    }

    async fn active_deployment(&self, app: &str) -> Result<Option<Deployment>> {
        Ok(self.store.deployments(Some(app), 50).await?.into_iter().find(|d| d.status.is_active()))
    }

    pub async fn apps(&self) -> Result<Vec<AppView>, UserError> {
        let mut views = Vec::new();
        for app in self.store.apps().await? {
            views.push(self.app_view(app).await);
        }
        Ok(views)
    }

    pub async fn app(&self, name: &str) -> Result<AppView, UserError> {
        let app = self.store.app(name).await?.ok_or_else(|| {
            UserError::not_found(
                ErrorCode::AppNotFound,
                format!("no app named `{name}`; `hivemind app list` shows them"),
            )
        })?;
        Ok(self.app_view(app).await)
    }

    async fn app_view(&self, mut app: App) -> AppView {
        // What the router does, not what was last written down: the two never differ.
        (app.split, app.sticky) = self.services.router.split(&app.name);
        let replicas = self
            .services
            .fleet
            .list(&app.name)
            .await
            .into_iter()
            .map(|r| ReplicaView { healthy: self.services.router.is_healthy(&app.name, &r.id), record: r })
            .collect();
        let crash_looping = self.healer.crash_loops(&app.name, |id| self.services.router.is_healthy(&app.name, id));
        AppView { app, replicas, crash_looping }
    }

    /// An app's own event log: what kept its release running between deployments.
    pub async fn app_events(&self, name: &str, after: i64) -> Result<Vec<crate::model::AppEvent>, UserError> {
        self.app(name).await?;
        Ok(self.store.app_events(name, after).await?)
    }

    /// Changes how many replicas the app's serving release runs, without a deployment:
    /// the healer starts the new ones, or drains the surplus before stopping it.
    pub async fn scale_app(&self, name: &str, replicas: u32) -> Result<AppView, UserError> {
        let _decisions = self.decisions.lock().await;
        let app = self.store.app(name).await?.ok_or_else(|| {
            UserError::not_found(
                ErrorCode::AppNotFound,
                format!("no app named `{name}`; `hivemind app list` shows them"),
            )
        })?;
        if let Some(active) = self.active_deployment(name).await? {
            return Err(UserError::conflict(
                ErrorCode::DeploymentInProgress,
                format!(
                    "app `{name}` has deployment {} {}, whose strategy owns the replicas until it ends; scale after it, or give the deployment --replicas",
                    active.id,
                    active.status.words()
                ),
            ));
        }
        let Some(mut release) = app.release.clone() else {
            return Err(UserError::conflict(
                ErrorCode::NoRelease,
                format!("app `{name}` has no release that serves yet; deploy one first"),
            ));
        };
        let quota = self.services.fleet.quota(name);
        if replicas == 0 || replicas > quota {
            return Err(UserError::invalid(
                Field::Replicas,
                format!(
                    "replicas must be from 1 to app `{name}`'s replica quota, {quota} (got {replicas}); a deployment's --replica-quota raises the quota"
                ),
            ));
        }
        let was = release.replicas;
        release.replicas = replicas;
        self.store.set_app_release(name, Some(&release)).await?;
        let message = format!("scaled {} from {was} to {replicas} replicas by request", release.version);
        self.store.app_event(name, Level::Info, &message).await?;
        self.app(name).await
    }

    /// The last lines a replica of the app printed.
    pub async fn replica_logs(&self, app: &str, replica: &str, lines: usize) -> Result<String, UserError> {
        let r = self.services.fleet.get(replica).await.filter(|r| r.app == app).ok_or_else(|| {
            UserError::not_found(
                ErrorCode::ReplicaNotFound,
                format!("app `{app}` has no running replica `{replica}`; `hivemind app get --name {app}` lists them"),
            )
        })?;
        Ok(self.services.fleet.logs(&r, lines).await)
    }

    pub async fn list_deployments(&self, filter: &crate::store::ListFilter) -> Result<Vec<Deployment>, UserError> {
        Ok(self.store.list_deployments(filter).await?)
    }

    /// Removes an app: stops routing to it, drains and stops its replicas, frees its port
    /// and deletes its records. Refused while a deployment runs, unless `force` (which
    /// aborts it without a rollback: the app is going anyway).
    pub async fn remove_app(&self, name: &str, force: bool) -> Result<(), UserError> {
        let _decisions = self.decisions.lock().await;
        self.app(name).await?;
        if let Some(active) = self.active_deployment(name).await? {
            if !force {
                return Err(UserError::conflict(
                    ErrorCode::DeploymentInProgress,
                    format!(
                        "app `{name}` has deployment {} {}; wait for it, abort it, or remove the app with --force",
                        active.id,
                        active.status.words()
                    ),
                ));
            }
            let to = crate::store::Transition {
                level: Level::Warn,
                ..crate::store::Transition::to(Status::Aborted, "aborted: the app was removed")
            };
            self.store.transition(&active.id, to).await?;
            self.wake(&active.id);
        }
        self.services.router.set_split(name, crate::model::Split::none(), false);
        // A step of the aborted deployment may still be starting a replica: wait for it,
        // and let nothing start after.
        self.services.fleet.close(name).await;
        let replicas = self.services.fleet.list(name).await;
        for r in &replicas {
            self.services.router.drain(name, &r.id, Duration::from_secs(10));
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline
            && replicas.iter().any(|r| {
                matches!(self.services.router.drain_state(name, &r.id), Some(crate::router::DrainState::Draining(_)))
            })
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for r in &replicas {
            self.services.fleet.stop(r, Duration::from_secs(10)).await.map_err(UserError::internal)?;
        }
        self.services.router.remove(name);
        // The port is free once the answer says the app is gone.
        self.services.router.flush().await;
        self.services.fleet.set_quota(name, None);
        self.healer.forget(name);
        self.checks.lock().unwrap().remove(name);
        self.store.delete_app(name).await?;
        Ok(())
    }

    pub async fn put_pipeline(&self, name: &str, mut spec: crate::model::DeploymentSpec) -> Result<(), UserError> {
        validate::app_name(name).map_err(|_| {
            UserError::invalid(
                Field::Pipeline,
                format!("pipeline name `{name}` must be lowercase letters, digits and '-'"),
            )
        })?;
        self.plugins
            .usable(&spec.strategy, crate::model::Kind::Strategy)
            .map_err(|why| UserError::invalid(Field::Strategy, why))?;
        spec.app.clear();
        spec.image.clear();
        Ok(self.store.put_pipeline(name, &spec).await?)
    }

    pub async fn pipelines(&self) -> Result<Vec<(String, crate::model::DeploymentSpec)>, UserError> {
        Ok(self.store.pipelines().await?)
    }
}

/// Checks a deployment spec on its own (no server state): what admission checks first.
pub fn check_spec(spec: &crate::model::DeploymentSpec) -> Result<(), UserError> {
    validate::spec(spec)
}
