//! The deployment engine, as services with one concern each, over the layers below
//! (plugins, runtime, router, health, store) and one pure state machine (`machine`):
//!
//! - `Deployments`: admits deployments, drives each by calling its strategy's `step`
//!   until the strategy says done or failed, takes the user's controls between steps
//!   (pause, resume, promote, abort, rollback), runs hooks, restores a failed rollback;
//! - `Apps`: what runs and serves, scaling and removing apps, the probes and the healer;
//! - `Certificates`: TLS certificates from files, and the ACME keeper;
//! - `Catalog`: the plugins installed, enabled and watched for;
//! - `Insights`: /metrics, a deployment's figures and series, `diagnose`.
//!
//! Beside them, `services` (the handles the services and the plugins' capabilities
//! share, and the capabilities' `Platform` on the server), `series` (the dashboard's
//! figures) and `acme` (the ACME client). A crate of its own, over the plugins, the
//! runtime, the router, the health probes and the store: the API and the commands sit
//! above it, and the compiler keeps it from reaching up to them.
//!
//! What they share is `Ground`: the store and the services below, the server's options,
//! and the lock that serialises decisions. After every step the engine persists the
//! plugin's state, progress and events in one transaction; because all progress is in
//! the store, a restarted engine (`Engine::start`) reconciles the replicas and resumes
//! every active deployment with its next step.

pub mod acme;
mod apps;
mod catalog;
mod certs;
mod deployments;
mod insights;
pub mod machine;
mod outage;
mod registries;
pub mod series;
pub mod services;
#[cfg(test)]
mod tests;
mod validate;

pub use apps::Apps;
pub use catalog::Catalog;
pub use certs::Certificates;
pub use deployments::{Deployments, machine_outcome, step_context};
pub use insights::Insights;
pub use registries::Registries;

use hivemind_health as health;
use hivemind_model::{api_types, error, model};
use hivemind_plugins as plugins;
use hivemind_router as router;
use hivemind_runtime as runtime;
use hivemind_store as store;

use crate::error::{ErrorCode, UserError};
use crate::health::HttpCheck;
use crate::model::{Deployment, Level, Status};
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
    /// When images are pulled, for deployments that do not say (`[images] pull`).
    pub pull: crate::model::PullPolicy,
}

/// What the engine's services share.
pub struct Ground {
    store: Store,
    services: Arc<Services>,
    plugins: Arc<PluginHost>,
    options: EngineOptions,
    /// Serialises decisions about deployments and apps: admission (one active deployment
    /// per app), user controls, applying a step's outcome, scaling or removing an app,
    /// healing it, removing a plugin; so that none acts on a status another just changed.
    decisions: tokio::sync::Mutex<()>,
    /// The health check of each app, from its latest deployment: what the probes ask.
    checks: Mutex<HashMap<crate::model::AppName, HttpCheck>>,
    /// Keeps each app's release running between deployments.
    healer: apps::Healer,
    /// The engine's own counts for /metrics.
    counts: Counts,
    /// A store fault the step loops are waiting out.
    outage: outage::StoreOutage,
}

impl Ground {
    pub async fn deployment(&self, id: &str) -> Result<Deployment, UserError> {
        self.store.deployment(id).await?.ok_or_else(|| {
            UserError::not_found(
                ErrorCode::DeploymentNotFound,
                format!("no deployment with id `{id}`; `hivemind deployment list` shows them"),
            )
        })
    }

    /// Every secret value the app's replicas may hold: its release's, and those of the
    /// deployment under way (the new release, and the one it replaces).
    pub(crate) async fn secret_values(&self, app: &str) -> Vec<String> {
        let release = self.store.app(app).await.ok().flatten().and_then(|a| a.release);
        let active = self.active_deployment(app).await.ok().flatten();
        release
            .iter()
            .flat_map(|r| r.secrets.values())
            .chain(active.iter().flat_map(|d| d.secret_values()))
            .cloned()
            .collect()
    }

    pub(crate) async fn active_deployment(&self, app: &str) -> Result<Option<Deployment>> {
        Ok(self.store.deployments(Some(app), 50).await?.into_iter().find(|d| d.status.is_active()))
    }

    /// Writes an event to a deployment (the given one, or the app's active one), or to
    /// the app's own log when no deployment runs.
    pub(crate) async fn event_for_app_or_log(&self, app: &str, deployment: Option<&str>, level: Level, message: &str) {
        let target = match deployment {
            Some(id) => Some(id.into()),
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
}

/// The engine: its services, each held by the API for its own routes.
pub struct Engine {
    ground: Arc<Ground>,
    pub deployments: Arc<Deployments>,
    pub apps: Arc<Apps>,
    pub certificates: Arc<Certificates>,
    pub catalog: Arc<Catalog>,
    pub insights: Arc<Insights>,
    /// Registry credentials, which the drivers pull with.
    pub registries: Arc<Registries>,
}

/// Upper bounds of the step-duration histogram, in seconds.
const STEP_BUCKETS: [f64; 10] = [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0];

#[derive(Default)]
struct Counts {
    outcomes: Mutex<std::collections::BTreeMap<(String, String), u64>>,
    steps: Mutex<StepHistogram>,
    /// Image pulls: (succeeded, failed) and the seconds of each kind.
    pulls: Mutex<PullCounts>,
}

#[derive(Default)]
struct PullCounts {
    ok: u64,
    failed: u64,
    seconds: f64,
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

    fn pull(&self, ok: bool, seconds: f64) {
        let mut p = self.pulls.lock().unwrap();
        *(if ok { &mut p.ok } else { &mut p.failed }) += 1;
        p.seconds += seconds;
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
        registries: Arc<Registries>,
        options: EngineOptions,
    ) -> Engine {
        let services = Arc::new(Services::new(fleet, router, store.clone(), options.hook_allowed_hosts.clone()));
        let ground = Arc::new(Ground {
            store,
            services,
            plugins,
            options,
            decisions: tokio::sync::Mutex::new(()),
            checks: Mutex::new(HashMap::new()),
            healer: Default::default(),
            counts: Counts::default(),
            outage: Default::default(),
        });
        let certificates = Arc::new(Certificates::new(ground.clone()));
        let deployments = Arc::new(Deployments {
            ground: ground.clone(),
            driving: Mutex::new(HashMap::new()),
            certificates: certificates.clone(),
        });
        Engine {
            apps: Arc::new(Apps { ground: ground.clone(), deployments: deployments.clone() }),
            catalog: Arc::new(Catalog { ground: ground.clone() }),
            insights: Arc::new(Insights { ground: ground.clone(), certificates: certificates.clone() }),
            deployments,
            certificates,
            registries,
            ground,
        }
    }

    /// Brings the world back in line with the store after a (re)start: reconciles the
    /// replicas, restores every app's router, and resumes the deployments under way;
    /// then starts the background work: probes and healing, the dashboard's samples,
    /// and the certificate keeper.
    pub async fn start(&self) -> Result<()> {
        let ground = &self.ground;
        let found = ground.services.fleet.reconcile().await?;
        for r in &found.gone {
            let message = format!("restart: replica {} ({}) no longer runs; forgot it", r.id, r.version);
            ground.event_for_app_or_log(&r.app, Some(&r.deployment_id), Level::Warn, &message).await;
        }
        for (id, handle) in &found.orphans {
            tracing::warn!(
                "restart: removed replica {id} ({handle}): it was started by this server but no record owns it"
            );
            let app = id.split('-').next().unwrap_or_default().to_string();
            let message =
                format!("restart: removed orphan replica {id}: started but never recorded (a crash in between)");
            ground.event_for_app_or_log(&app, None, Level::Warn, &message).await;
        }
        tracing::info!("restart: adopted {} running replicas", found.adopted.len());

        for app in ground.store.apps().await? {
            ground.services.fleet.set_quota(&app.name, app.replica_quota);
            ground.services.router.listen(&app.name, SocketAddr::new(ground.options.router_ip, app.port)).await?;
            let preview_key = ground.store.preview_key(&app.name).await?;
            ground.services.router.set_preview_key(&app.name, preview_key.as_deref());
            ground.services.router.set_split(&app.name, app.split.clone(), app.sticky);
            ground.services.router.set_binding(&app.name, &crate::model::AppBinding::of(&app).route());
            ground.services.sync_router(&app.name).await;
            if let Some(latest) = ground.store.deployments(Some(&app.name), 1).await?.first() {
                ground.checks.lock().unwrap().insert(app.name.clone(), deployments::check_of(&latest.spec));
            }
        }
        self.apps.probe_all().await;
        for d in ground.store.active_deployments().await? {
            let recovered = machine::decide(&d, &machine::Event::Recovered, crate::model::now_ms());
            if recovered.is_ok_and(|r| r.next == machine::Next::Drive) {
                let message = format!(
                    "{}; resuming the {} phase at step {}",
                    ground.options.resumed_because,
                    d.phase.as_str(),
                    d.attempt + 1
                );
                ground.store.event(&d.id, Level::Info, &message).await?;
                self.deployments.spawn_drive(d.id.clone());
            }
        }
        let apps = self.apps.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(apps.ground.options.probe_interval).await;
                if !apps.ground.store.fence().may_act() {
                    continue;
                }
                apps.probe_all().await;
                apps.heal_all().await;
            }
        });
        let insights = self.insights.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                if insights.ground.store.fence().may_act() {
                    insights.sample_series().await;
                }
            }
        });
        if self.certificates.has_acme() {
            self.certificates.clone().keep_certificates();
        }
        Ok(())
    }

    /// Writes what the router noticed into the event log of the app's active deployment.
    pub fn watch_router(&self, mut events: tokio::sync::mpsc::UnboundedReceiver<RouterEvent>) {
        let ground = self.ground.clone();
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                match event {
                    RouterEvent::Ejected { app, replica, version } => {
                        let message = format!(
                            "router ejected replica {replica} ({version}) after {} failed requests in a row; it gets no traffic for {} s",
                            crate::router::EJECT_AFTER_FAILURES,
                            crate::router::EJECT_FOR_MS / 1000
                        );
                        ground.event_for_app_or_log(&app, None, Level::Warn, &message).await;
                    }
                    // Every app went through it: each one's log says so.
                    RouterEvent::ProcessRestarted { after } => {
                        let message = format!(
                            "the router process stopped answering; a new one serves every app again, {} ms later",
                            after.as_millis()
                        );
                        for app in ground.store.apps().await.unwrap_or_default() {
                            let _ = ground.store.app_event(&app.name, Level::Error, &message).await;
                        }
                    }
                }
            }
        });
    }
}

/// Checks a deployment spec on its own (no server state): what admission checks first.
pub fn check_spec(spec: &crate::model::DeploymentSpec) -> Result<(), UserError> {
    validate::spec(spec)
}
