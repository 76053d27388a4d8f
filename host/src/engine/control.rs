//! What a user can do to a deployment between steps: pause, resume, promote, abort and
//! roll back. Each refuses, with the reason, what the deployment's status does not allow.

use super::Engine;
use crate::error::UserError;
use crate::model::{Deployment, Level, Phase, RollbackKind, Status};
use crate::store::Transition;
use std::sync::Arc;

impl Engine {
    /// Stops stepping a deployment in progress; `resume` goes on where it stopped.
    pub async fn pause(&self, id: &str) -> Result<Deployment, UserError> {
        let _decisions = self.decisions.lock().await;
        let d = self.deployment(id).await?;
        if d.status != Status::InProgress {
            return Err(refused("pause", &d, "only a deployment in progress can be paused"));
        }
        self.store
            .transition(id, Transition::to(Status::Paused, "paused by request; `deployment resume` goes on"))
            .await?;
        self.wake(id);
        self.deployment(id).await
    }

    pub async fn resume(self: &Arc<Self>, id: &str) -> Result<Deployment, UserError> {
        let _decisions = self.decisions.lock().await;
        let d = self.deployment(id).await?;
        if d.status != Status::Paused {
            return Err(refused("resume", &d, "only a paused deployment can be resumed"));
        }
        // The time spent paused does not count against the progress deadline.
        let to = Transition { touch_progress: true, ..Transition::to(Status::InProgress, "resumed by request") };
        self.store.transition(id, to).await?;
        self.spawn_drive(id.to_string());
        self.deployment(id).await
    }

    /// Lets a deployment that awaits approval go on; its strategy sees `promoted`.
    pub async fn promote(self: &Arc<Self>, id: &str) -> Result<Deployment, UserError> {
        let _decisions = self.decisions.lock().await;
        let d = self.deployment(id).await?;
        if d.status != Status::AwaitingApproval {
            return Err(refused("promote", &d, "only a deployment awaiting approval can be promoted"));
        }
        let to = Transition {
            promoted: Some(true),
            touch_progress: true,
            ..Transition::to(Status::InProgress, "promoted by request")
        };
        self.store.transition(id, to).await?;
        self.spawn_drive(id.to_string());
        self.deployment(id).await
    }

    /// Stops a deployment and rolls back what it did; it ends `aborted`.
    pub async fn abort(self: &Arc<Self>, id: &str) -> Result<Deployment, UserError> {
        let _decisions = self.decisions.lock().await;
        let d = self.deployment(id).await?;
        match d.status {
            Status::Pending => {
                self.store
                    .transition(id, Transition::to(Status::Aborted, "aborted before it ran; nothing changed"))
                    .await?;
            }
            Status::InProgress | Status::Paused | Status::AwaitingApproval => {
                self.start_rollback_phase(&d, RollbackKind::Abort, "aborted by request; rolling back").await?;
            }
            _ => return Err(refused("abort", &d, "only a pending or running deployment can be aborted")),
        }
        self.deployment(id).await
    }

    /// Rolls a deployment back. A running one switches to its rollback phase and ends
    /// `rolled_back`. A completed one that is the app's current release is reversed by a
    /// new deployment that brings the previous release back; that one is returned.
    pub async fn rollback(self: &Arc<Self>, id: &str) -> Result<Deployment, UserError> {
        let _decisions = self.decisions.lock().await;
        let d = self.deployment(id).await?;
        match d.status {
            Status::InProgress | Status::Paused | Status::AwaitingApproval => {
                self.start_rollback_phase(&d, RollbackKind::Manual, "rollback requested; rolling back").await?;
                self.deployment(id).await
            }
            Status::Completed => {
                let Some(previous) = d.previous.clone() else {
                    return Err(UserError::conflict(
                        "nothing_to_roll_back_to",
                        format!(
                            "deployment {id} was the first release of app `{}`; there is nothing to roll back to",
                            d.app
                        ),
                    ));
                };
                let app = self.store.app(&d.app).await?;
                let current = app.as_ref().and_then(|a| a.release.as_ref()).map(|r| r.version.clone());
                if current.as_deref() != Some(d.target_version.as_str()) {
                    return Err(UserError::conflict(
                        "not_current_release",
                        format!(
                            "deployment {id} put {} in place, but app `{}` now serves {}; roll back the deployment that put it there",
                            d.target_version,
                            d.app,
                            current.unwrap_or_else(|| "nothing".into())
                        ),
                    ));
                }
                let mut spec = d.spec.clone();
                spec.name = Some(format!("rollback of {id}"));
                spec.image = previous.image.clone();
                spec.env = previous.env.clone();
                spec.resources = previous.resources.clone();
                spec.replicas = previous.replicas;
                spec.port = None;
                spec.replica_quota = None;
                if !spec.variants.is_empty() {
                    // An A/B test is undone by bringing one release back, not by testing
                    // again: a rolling update, with no A/B parameters.
                    spec.variants.clear();
                    spec.strategy = "rolling-update".into();
                    spec.params.clear();
                }
                let rollback = self.admit(spec, Some((&d, &previous))).await?;
                self.store
                    .event(
                        id,
                        Level::Warn,
                        &format!("rollback requested: {} brings back {}", rollback.id, previous.version),
                    )
                    .await?;
                self.start_deploy_phase(&rollback.id).await
            }
            _ => Err(refused("roll back", &d, "only a running or completed deployment can be rolled back")),
        }
    }

    /// Picks the winner of an A/B test; its strategy makes it the release.
    pub async fn select_winner(self: &Arc<Self>, id: &str, variant: &str) -> Result<Deployment, UserError> {
        let _decisions = self.decisions.lock().await;
        let d = self.deployment(id).await?;
        if d.spec.variants.is_empty() {
            return Err(UserError::conflict(
                "not_an_ab_test",
                format!("deployment {id} has no variants; select-winner is for A/B tests"),
            ));
        }
        if !d.spec.variants.iter().any(|v| v.name == variant) {
            let names: Vec<&str> = d.spec.variants.iter().map(|v| v.name.as_str()).collect();
            return Err(UserError::invalid(
                "variant",
                format!("deployment {id} has no variant `{variant}`; its variants are {}", names.join(", ")),
            ));
        }
        if !matches!(d.status, Status::InProgress | Status::AwaitingApproval | Status::Paused) {
            return Err(refused("select a winner for", &d, "only a running A/B test can get a winner"));
        }
        self.store.set_winner(id, variant, &format!("variant {variant} selected as the winner by request")).await?;
        if d.status == Status::AwaitingApproval {
            let to = Transition {
                touch_progress: true,
                ..Transition::to(Status::InProgress, "winner selected; promoting it")
            };
            self.store.transition(id, to).await?;
            self.spawn_drive(id.to_string());
        }
        self.wake(id);
        self.deployment(id).await
    }

    async fn start_rollback_phase(
        self: &Arc<Self>,
        d: &Deployment,
        kind: RollbackKind,
        message: &str,
    ) -> Result<(), UserError> {
        let to = Transition {
            phase: Some(Phase::Rollback),
            rollback_kind: Some(kind),
            touch_progress: true,
            level: Level::Warn,
            ..Transition::to(Status::RollingBack, message)
        };
        self.store.transition(&d.id, to).await?;
        self.wake(&d.id);
        self.spawn_drive(d.id.clone());
        Ok(())
    }
}

fn refused(action: &str, d: &Deployment, rule: &str) -> UserError {
    UserError::conflict(
        &format!("cannot_{}", action.replace(' ', "_")),
        format!("cannot {action} deployment {}: it is {}; {rule}", d.id, d.status.words()),
    )
}
