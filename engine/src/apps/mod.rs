//! The engine's apps service: what runs and serves (an app's view, its own event log,
//! its replicas' logs), scaling the serving release without a deployment, removing an
//! app, and the probes and the healer that keep each release running (`heal`).

mod heal;

pub(super) use heal::Healer;

use super::{Deployments, Ground};
use crate::api_types::{AppView, ReplicaView};
use crate::error::{ErrorCode, Field, UserError};
use crate::model::{App, Level, Status};
use std::sync::Arc;
use std::time::Duration;

pub struct Apps {
    pub(super) ground: Arc<Ground>,
    /// Removing an app aborts its deployment under way, and wakes its step loop.
    pub(super) deployments: Arc<Deployments>,
}

impl Apps {
    pub async fn apps(&self) -> Result<Vec<AppView>, UserError> {
        let mut views = Vec::new();
        for app in self.ground.store.apps().await? {
            views.push(self.app_view(app).await);
        }
        Ok(views)
    }

    /// The key that lets a request choose a version of `name` by name.
    pub async fn preview_key(&self, name: &str) -> Result<crate::api_types::PreviewKey, UserError> {
        let key = self.ground.store.preview_key(name).await?.ok_or_else(|| {
            UserError::not_found(
                ErrorCode::AppNotFound,
                format!("no app named `{name}`; `hivemind app list` shows them"),
            )
        })?;
        Ok(crate::api_types::PreviewKey { app: name.into(), header: "x-hivemind-preview".into(), key })
    }

    pub async fn app(&self, name: &str) -> Result<AppView, UserError> {
        let app = self.ground.store.app(name).await?.ok_or_else(|| {
            UserError::not_found(
                ErrorCode::AppNotFound,
                format!("no app named `{name}`; `hivemind app list` shows them"),
            )
        })?;
        Ok(self.app_view(app).await)
    }

    async fn app_view(&self, mut app: App) -> AppView {
        // What the router does, not what was last written down: the two never differ.
        (app.split, app.sticky) = self.ground.services.router.split(&app.name);
        let replicas = self
            .ground
            .services
            .fleet
            .list(&app.name)
            .await
            .into_iter()
            .map(|r| ReplicaView { healthy: self.ground.services.router.is_healthy(&app.name, &r.id), record: r })
            .collect();
        let mut crash_looping =
            self.ground.healer.crash_loops(&app.name, |id| self.ground.services.router.is_healthy(&app.name, id));
        // The store is asked for the secrets only when there are logs to mask: an app list
        // (which the dashboard polls) costs no more than before.
        let secrets = match crash_looping.is_empty() {
            true => Vec::new(),
            false => self.ground.secret_values(&app.name).await,
        };
        for looping in &mut crash_looping {
            looping.last_logs = crate::model::masked(&looping.last_logs, &secrets).into_owned();
        }
        AppView { app: app.redacted(), replicas, crash_looping }
    }

    /// An app's own event log: what kept its release running between deployments.
    pub async fn app_events(&self, name: &str, after: i64) -> Result<Vec<crate::model::AppEvent>, UserError> {
        self.app(name).await?;
        Ok(self.ground.store.app_events(name, after).await?)
    }

    /// Changes how many replicas the app's serving release runs, without a deployment:
    /// the healer starts the new ones, or drains the surplus before stopping it.
    pub async fn scale_app(&self, name: &str, replicas: u32) -> Result<AppView, UserError> {
        let _decisions = self.ground.decisions.lock().await;
        let app = self.ground.store.app(name).await?.ok_or_else(|| {
            UserError::not_found(
                ErrorCode::AppNotFound,
                format!("no app named `{name}`; `hivemind app list` shows them"),
            )
        })?;
        if let Some(active) = self.ground.active_deployment(name).await? {
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
        let quota = self.ground.services.fleet.quota(name);
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
        self.ground.store.set_app_release(name, Some(&release)).await?;
        let message = format!("scaled {} from {was} to {replicas} replicas by request", release.version);
        self.ground.store.app_event(name, Level::Info, &message).await?;
        self.app(name).await
    }

    /// The last lines a replica of the app printed.
    pub async fn replica_logs(&self, app: &str, replica: &str, lines: usize) -> Result<String, UserError> {
        let r = self.ground.services.fleet.get(replica).await.filter(|r| r.app == app).ok_or_else(|| {
            UserError::not_found(
                ErrorCode::ReplicaNotFound,
                format!("app `{app}` has no running replica `{replica}`; `hivemind app get --name {app}` lists them"),
            )
        })?;
        let logs = self.ground.services.fleet.logs(&r, lines).await;
        // An app that logs its secrets has them shown as `***`.
        Ok(crate::model::masked(&logs, &self.ground.secret_values(app).await).into_owned())
    }

    /// Removes an app: stops routing to it, drains and stops its replicas, frees its port
    /// and deletes its records. Refused while a deployment runs, unless `force` (which
    /// aborts it without a rollback: the app is going anyway).
    pub async fn remove_app(&self, name: &str, force: bool) -> Result<(), UserError> {
        let _decisions = self.ground.decisions.lock().await;
        self.app(name).await?;
        if let Some(active) = self.ground.active_deployment(name).await? {
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
            self.ground.store.transition(&active.id, to).await?;
            self.deployments.wake(&active.id);
        }
        self.ground.services.router.set_split(name, crate::model::Split::none(), false);
        // A step of the aborted deployment may still be starting a replica: wait for it,
        // and let nothing start after.
        self.ground.services.fleet.close(name).await;
        let replicas = self.ground.services.fleet.list(name).await;
        for r in &replicas {
            self.ground.services.router.drain(name, &r.id, Duration::from_secs(10));
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline
            && replicas.iter().any(|r| {
                matches!(
                    self.ground.services.router.drain_state(name, &r.id),
                    Some(crate::router::DrainState::Draining(_))
                )
            })
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for r in &replicas {
            self.ground.services.fleet.stop(r, Duration::from_secs(10)).await.map_err(UserError::internal)?;
        }
        self.ground.services.router.remove(name);
        // The port is free once the answer says the app is gone.
        self.ground.services.router.flush().await;
        self.ground.services.fleet.set_quota(name, None);
        self.ground.healer.forget(name);
        self.ground.checks.lock().unwrap().remove(name);
        self.ground.store.delete_app(name).await?;
        Ok(())
    }

    /// Probes every replica once, in parallel, and tells the router.
    pub(super) async fn probe_all(&self) {
        let replicas = self.ground.services.fleet.all().await;
        let checks = self.ground.checks.lock().unwrap().clone();
        let probes = replicas.iter().filter_map(|r| checks.get(&r.app).map(|c| self.ground.services.probe(r, c)));
        futures::future::join_all(probes).await;
    }
}
