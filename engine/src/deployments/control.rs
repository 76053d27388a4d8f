//! What a user can do to a deployment between steps: pause, resume, promote, abort and
//! roll back. `machine` decides each: it refuses, with the rule, what the deployment's
//! status does not allow.

use super::Deployments;
use crate::error::{ErrorCode, Field, UserError};
use crate::machine::{Control, Decision, Event, Next, Refusal, decide};
use crate::model::{Deployment, Level, now_ms};
use std::sync::Arc;

impl Deployments {
    /// Stops stepping a deployment in progress; `resume` goes on where it stopped.
    pub async fn pause(self: &Arc<Self>, id: &str) -> Result<Deployment, UserError> {
        self.control(id, Control::Pause).await
    }

    pub async fn resume(self: &Arc<Self>, id: &str) -> Result<Deployment, UserError> {
        self.control(id, Control::Resume).await
    }

    /// Lets a deployment that awaits approval go on; its strategy sees `promoted`.
    pub async fn promote(self: &Arc<Self>, id: &str) -> Result<Deployment, UserError> {
        self.control(id, Control::Promote).await
    }

    /// Stops a deployment and rolls back what it did; it ends `aborted`.
    pub async fn abort(self: &Arc<Self>, id: &str) -> Result<Deployment, UserError> {
        self.control(id, Control::Abort).await
    }

    /// A user's control, as the machine decides it: refused with the rule the status
    /// breaks (409), or persisted, and the step loop started or woken to act on it.
    async fn control(self: &Arc<Self>, id: &str, control: Control) -> Result<Deployment, UserError> {
        let _decisions = self.ground.decisions.lock().await;
        let d = self.ground.deployment(id).await?;
        let decision = decide(&d, &Event::Control(control), now_ms()).map_err(refused)?;
        self.enact(&d, &decision).await?;
        self.ground.deployment(id).await
    }

    /// Persists a control's decision and starts (or wakes) the step loop it asks for.
    async fn enact(self: &Arc<Self>, d: &Deployment, decision: &Decision) -> Result<(), UserError> {
        self.apply(&d.id, decision).await?;
        if decision.next == Next::Drive {
            self.wake(&d.id);
            self.spawn_drive(d.id.clone());
        }
        Ok(())
    }

    /// Rolls a deployment back. A running one switches to its rollback phase and ends
    /// `rolled_back`. A completed one that is the app's current release is reversed by a
    /// new deployment that brings the previous release back; that one is returned.
    pub async fn rollback(self: &Arc<Self>, id: &str) -> Result<Deployment, UserError> {
        let _decisions = self.ground.decisions.lock().await;
        let d = self.ground.deployment(id).await?;
        let decision = decide(&d, &Event::Control(Control::Rollback), now_ms()).map_err(refused)?;
        match decision.next {
            Next::Reverse => {
                let Some(previous) = d.previous.clone() else {
                    return Err(UserError::conflict(
                        ErrorCode::NothingToRollBackTo,
                        format!(
                            "deployment {id} was the first release of app `{}`; there is nothing to roll back to",
                            d.app
                        ),
                    ));
                };
                let app = self.ground.store.app(&d.app).await?;
                let current = app.as_ref().and_then(|a| a.release.as_ref()).map(|r| r.version.clone());
                if current.as_deref() != Some(d.target_version.as_str()) {
                    return Err(UserError::conflict(
                        ErrorCode::NotCurrentRelease,
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
                spec.secrets = previous.secrets.clone();
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
                self.ground
                    .store
                    .event(
                        id,
                        Level::Warn,
                        &format!("rollback requested: {} brings back {}", rollback.id, previous.version),
                    )
                    .await?;
                self.start_deploy_phase(&rollback.id).await
            }
            _ => {
                self.enact(&d, &decision).await?;
                self.ground.deployment(id).await
            }
        }
    }

    /// Picks the winner of an A/B test; its strategy makes it the release.
    pub async fn select_winner(self: &Arc<Self>, id: &str, variant: &str) -> Result<Deployment, UserError> {
        let _decisions = self.ground.decisions.lock().await;
        let d = self.ground.deployment(id).await?;
        if d.spec.variants.is_empty() {
            return Err(UserError::conflict(
                ErrorCode::NotAnAbTest,
                format!("deployment {id} has no variants; select-winner is for A/B tests"),
            ));
        }
        if !d.spec.variants.iter().any(|v| v.name == variant) {
            let names: Vec<&str> = d.spec.variants.iter().map(|v| v.name.as_str()).collect();
            return Err(UserError::invalid(
                Field::Variant,
                format!("deployment {id} has no variant `{variant}`; its variants are {}", names.join(", ")),
            ));
        }
        let decision = decide(&d, &Event::Control(Control::SelectWinner), now_ms()).map_err(refused)?;
        self.ground
            .store
            .set_winner(id, variant, &format!("variant {variant} selected as the winner by request"))
            .await?;
        self.enact(&d, &decision).await?;
        self.ground.deployment(id).await
    }
}

/// The machine's refusal as the API's 409.
fn refused(refusal: Refusal) -> UserError {
    UserError::conflict(refusal.code, refusal.message)
}
