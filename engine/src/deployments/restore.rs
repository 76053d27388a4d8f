//! When a strategy's own rollback fails, the host restores the previous release itself:
//! its replicas up at their count, all traffic on it, every other replica drained and
//! stopped. Only when even that fails does the app end degraded, and then it says so and
//! records what really serves, so that `app get` never contradicts the router.

use super::Deployments;
use crate::model::{Deployment, Level, Release, RollbackKind, Split, Status};
use crate::plugins::Scope;
use crate::router::DrainState;
use crate::store::Transition;
use anyhow::Result;
use std::time::{Duration, Instant};

/// How long replicas being replaced get to finish their requests.
const DRAIN: Duration = Duration::from_secs(10);

impl Deployments {
    /// The rollback phase failed (its strategy said so, trapped, or stopped progressing).
    /// Called without the decisions lock: restoring takes as long as replicas take to
    /// become healthy.
    pub(super) async fn rollback_failed(&self, d: &Deployment, reason: &str) -> Result<()> {
        let previous = d.previous.as_ref().map(|p| p.version.clone()).unwrap_or_else(|| "nothing".into());
        let message = format!("the strategy's rollback failed: {reason}; the host restores {previous} itself");
        self.ground.store.event(&d.id, Level::Error, &message).await?;
        let restored = self.restore_previous(d).await;

        let _decisions = self.ground.decisions.lock().await;
        if !self.still_in_phase(d).await? {
            return Ok(());
        }
        self.ground.healer.forget(&d.app);
        let first = d.error.clone().map(|e| format!("{e}; ")).unwrap_or_default();
        let error = d.error.clone().unwrap_or_else(|| format!("rollback failed: {reason}"));
        match restored {
            Ok(serving) => {
                self.ground.store.set_app_release(&d.app, d.previous.as_ref()).await?;
                let kind = d.rollback_kind.unwrap_or(RollbackKind::Failure);
                let message =
                    format!("{first}the strategy's rollback failed too ({reason}), so the host restored it: {serving}");
                let to = Transition {
                    level: Level::Warn,
                    error: Some(&error),
                    ..Transition::to(kind.final_status(), &message)
                };
                self.ground.store.transition(&d.id, to).await?;
            }
            Err(why) => {
                let (release, serving) = self.what_serves(d);
                let degraded = format!(
                    "deployment {} failed and could not be rolled back: the strategy's rollback failed ({reason}) and the host could not restore {previous} ({why}); {serving}",
                    d.id
                );
                self.ground.store.set_app_degraded(&d.app, release.as_ref(), &degraded).await?;
                let message = format!("{first}{degraded}; app {} is degraded", d.app);
                let to =
                    Transition { level: Level::Error, error: Some(&error), ..Transition::to(Status::Failed, &message) };
                self.ground.store.transition(&d.id, to).await?;
            }
        }
        self.count_outcome(&d.id).await;
        self.prune_history(&d.app).await;
        Ok(())
    }

    /// Puts the previous release back as the only thing that serves. Returns what serves
    /// now, or why it could not.
    async fn restore_previous(&self, d: &Deployment) -> Result<String, String> {
        let services = &self.ground.services;
        let Some(previous) = &d.previous else {
            self.route(&d.app, Split::none()).await?;
            self.drain_and_stop(&d.app, |_| true).await?;
            return Ok("the app had no release before, so nothing serves".to_string());
        };
        let spec = Scope::of(d, services.clone()).launch_spec(previous);
        services.fleet.scale(&spec, previous.replicas, DRAIN).await.map_err(|e| format!("{e:#}"))?;
        services.sync_router(&d.app).await;
        let check = super::drive::check_of(&d.spec);
        let deadline = Instant::now() + Duration::from_secs(d.spec.health_check_timeout as u64);
        loop {
            let replicas: Vec<_> =
                services.fleet.list(&d.app).await.into_iter().filter(|r| r.version == previous.version).collect();
            let mut last = None;
            for r in &replicas {
                let probe = services.probe(r, &check).await;
                if !probe.healthy {
                    last = Some(probe.message);
                }
            }
            if last.is_none() && replicas.len() == previous.replicas as usize {
                break;
            }
            if Instant::now() > deadline {
                // What it started and never became healthy serves no one: it goes.
                let useless = replicas.iter().filter(|r| !services.router.is_healthy(&d.app, &r.id));
                for r in useless {
                    let _ = services.fleet.stop(r, DRAIN).await;
                }
                services.sync_router(&d.app).await;
                return Err(format!(
                    "{} did not become healthy within {} s: {}",
                    previous.version,
                    d.spec.health_check_timeout,
                    last.unwrap_or_else(|| "a replica exited".into())
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.route(&d.app, Split::all(&previous.version)).await?;
        self.drain_and_stop(&d.app, |r| r.version != previous.version).await?;
        Ok(format!("{} serves again on {} replicas", previous.version, previous.replicas))
    }

    /// Sets the app's split, stored first so that a restart comes back with it.
    async fn route(&self, app: &str, split: Split) -> Result<(), String> {
        self.ground.store.set_app_split(app, &split, false).await.map_err(|e| format!("{e:#}"))?;
        self.ground.services.router.set_split(app, split, false);
        Ok(())
    }

    /// Drains the app's replicas that `doomed` picks, then stops them.
    async fn drain_and_stop(
        &self,
        app: &str,
        doomed: impl Fn(&crate::model::ReplicaRecord) -> bool,
    ) -> Result<(), String> {
        let services = &self.ground.services;
        let replicas: Vec<_> = services.fleet.list(app).await.into_iter().filter(|r| doomed(r)).collect();
        for r in &replicas {
            services.router.drain(app, &r.id, DRAIN);
        }
        while replicas.iter().any(|r| matches!(services.router.drain_state(app, &r.id), Some(DrainState::Draining(_))))
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for r in &replicas {
            services.fleet.stop(r, DRAIN).await.map_err(|e| format!("{e:#}"))?;
        }
        services.sync_router(app).await;
        Ok(())
    }

    /// The release the router sends all its traffic to (the app's release, as far as
    /// anyone can tell), and what serves, in words.
    fn what_serves(&self, d: &Deployment) -> (Option<Release>, String) {
        let (split, _) = self.ground.services.router.split(&d.app);
        let release = match split.serving().as_slice() {
            [] => return (None, "nothing serves".to_string()),
            [only] if *only == d.target_version => Some(d.target()),
            [only] => d.previous.clone().filter(|p| p.version == *only),
            _ => None,
        };
        match release {
            Some(r) => {
                let words = format!("{} serves all traffic", r.version);
                (Some(r), words)
            }
            None => (None, format!("traffic is split {split}")),
        }
    }
}
