//! The step loop: call the pinned strategy's `step`, persist what it did, act on what it
//! said, sleep, repeat — until the phase is done or failed.

use super::Engine;
use crate::health::HttpCheck;
use crate::model::{Deployment, DeploymentSpec, HookStage, Level, Phase, RollbackKind, Status, now_ms};
use crate::plugins::{Scope, StepCaps, StepContext, StepOutcome, wit};
use crate::store::{StepEvent, StepWrites, Transition};
use anyhow::Result;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Between steps the engine never sleeps longer than this, whatever a plugin asks.
const MAX_STEP_DELAY: Duration = Duration::from_secs(60);
/// Nor shorter than this: a strategy that asks for no pause at all (or verifies over and
/// over) takes at most 20 steps a second, not hundreds.
pub const MIN_STEP_DELAY: Duration = Duration::from_millis(50);

/// The latest step's event, while the steps after it say the same and write nothing else:
/// they update it with their count instead of adding a line each.
struct Repeats {
    event: i64,
    first: u32,
    what: String,
    phase: Phase,
    count: u32,
}

impl Engine {
    /// Runs the step loop of a deployment in the background, unless it already runs.
    pub(super) fn spawn_drive(self: &Arc<Self>, id: String) {
        let wake = Arc::new(Notify::new());
        {
            let mut driving = self.driving.lock().unwrap();
            if driving.contains_key(&id) {
                return;
            }
            driving.insert(id.clone(), wake.clone());
        }
        let engine = self.clone();
        tokio::spawn(async move {
            loop {
                let ended = engine.drive(&id, &wake).await;
                engine.driving.lock().unwrap().remove(&id);
                if let Err(e) = ended {
                    if e.downcast_ref::<crate::store::NotLeader>().is_some() {
                        tracing::info!(deployment = %id, "the step loop stopped: {e}; the leader drives it");
                    } else {
                        tracing::error!(deployment = %id, "the step loop stopped: {e:#}");
                    }
                    break;
                }
                // A user who resumed (or promoted) the deployment while this loop was
                // ending found it still running and started no other: look once more.
                let runs = matches!(
                    engine.store.deployment(&id).await,
                    Ok(Some(d)) if matches!(d.status, Status::InProgress | Status::RollingBack)
                );
                let mut driving = engine.driving.lock().unwrap();
                if !runs || driving.contains_key(&id) {
                    break;
                }
                driving.insert(id.clone(), wake.clone());
            }
        });
    }

    /// Wakes a deployment's step loop from its sleep, so a user's control acts at once.
    pub(super) fn wake(&self, id: &str) {
        if let Some(wake) = self.driving.lock().unwrap().get(id) {
            wake.notify_one();
        }
    }

    async fn drive(&self, id: &str, wake: &Notify) -> Result<()> {
        if let Some(d) = self.store.deployment(id).await? {
            // An A/B goal given as a response header is counted by the router.
            let goal = d.spec.params.get("goal").and_then(|g| g.strip_prefix("header:"));
            self.services.router.set_goal_header(&d.app, goal);
        }
        // The event of the latest step, while the steps after it say the same thing.
        let mut repeats: Option<Repeats> = None;
        // The plugin's state, kept between steps: only this loop writes it.
        let mut state =
            crate::plugins::PluginState { sizes: self.store.plugin_state_sizes(id).await?, ..Default::default() };
        loop {
            // A server that lost the lease takes no step more: the new leader resumes.
            if !self.store.fence().may_act() {
                return Err(crate::store::NotLeader("this server no longer leads".into()).into());
            }
            let Some(d) = self.store.deployment(id).await? else { return Ok(()) };
            if !matches!(d.status, Status::InProgress | Status::RollingBack) {
                return Ok(());
            }
            let deadline_ms = d.spec.progress_deadline as i64 * 1000;
            if deadline_ms > 0 && now_ms() - d.last_progress_at_ms > deadline_ms {
                let reason = format!(
                    "progress deadline exceeded: no progress for {} s (stuck at {}%: {})",
                    d.spec.progress_deadline, d.progress, d.message
                );
                if d.phase == Phase::Rollback {
                    self.rollback_failed(&d, &reason).await?;
                    return Ok(());
                }
                let _decisions = self.decisions.lock().await;
                self.fail(&d, &reason).await?;
                continue;
            }
            let Some(plugin) = self.plugins.pinned(&d.plugin.sha256) else {
                let message = format!(
                    "plugin {} {} (sha256 {}) that this deployment is pinned to is not loaded; install it again",
                    d.plugin.name, d.plugin.version, d.plugin.sha256
                );
                let to = Transition {
                    level: Level::Error,
                    error: Some(&message),
                    ..Transition::to(Status::Failed, &message)
                };
                self.store.transition(id, to).await?;
                return Ok(());
            };
            // Pre hooks run before the first step: before any replica or route changes.
            if d.phase == Phase::Deploy
                && d.rollback_of.is_none()
                && d.attempt == 0
                && !d.spec.hooks.pre.is_empty()
                && !d.hook_runs.ran(HookStage::Pre)
            {
                let verdict = self.run_hooks(&d, HookStage::Pre).await?;
                if let Err(reason) = verdict {
                    let _decisions = self.decisions.lock().await;
                    if self.still_in_phase(&d).await? {
                        self.stop_untouched(&d, &reason).await?;
                        return Ok(());
                    }
                }
                continue;
            }
            let caps = StepCaps {
                scope: Scope::of(&d, self.services.clone()),
                health: check_of(&d.spec),
                metrics_endpoint: d.spec.params.get("metrics-endpoint").cloned().unwrap_or_else(|| "/metrics".into()),
                rollback_of: d.rollback_of.clone(),
                promotions: d.promotions,
                state: std::mem::take(&mut state),
                writes: StepWrites::default(),
            };
            let context = StepContext {
                phase: match d.phase {
                    Phase::Deploy => crate::plugins::Phase::Deploy,
                    Phase::Rollback => crate::plugins::Phase::Rollback,
                },
                attempt: d.attempt,
                elapsed_ms: (now_ms() - d.phase_started_at_ms).max(0) as u64,
                promoted: d.promoted,
                winner: d.winner.clone(),
                // A deployment that rolls back a completed one brings back a release that
                // served before: there is nothing to verify.
                verified: d.spec.hooks.verify.is_empty()
                    || d.hook_runs.ran(HookStage::Verify)
                    || d.rollback_of.is_some(),
            };
            // A user who pauses, aborts or rolls back while the step runs (perhaps waiting
            // on a slow host call) interrupts it: the deployment acts at once.
            let interrupted = async {
                loop {
                    wake.notified().await;
                    if !matches!(self.unchanged(&d).await, Ok(true)) {
                        return;
                    }
                }
            };
            let started = std::time::Instant::now();
            let (outcome, caps) = self.plugins.step(&plugin, caps, &wit_deployment(&d), &context, interrupted).await;
            self.counts.step(started.elapsed().as_secs_f64());
            state = caps.state;
            let mut writes = caps.writes;
            if !matches!(outcome, Some(Ok(_))) {
                // State is kept only when a step returns normally.
                writes.state.clear();
            }

            let _decisions = self.decisions.lock().await;
            let Some(outcome) = outcome else {
                // What the interrupted step changed is logged; its progress, which it
                // never finished, is not kept.
                writes.progress = None;
                let now = self.store.deployment(id).await?.map(|n| n.status.words()).unwrap_or_default();
                let message = format!(
                    "step {} of the {} phase was interrupted after {:.1} s: the deployment is {now}",
                    d.attempt + 1,
                    d.phase.as_str(),
                    started.elapsed().as_secs_f64()
                );
                self.store.record_step(id, &writes, &StepEvent::New { level: Level::Info, message }).await?;
                repeats = None;
                continue;
            };
            let what = step_outcome_text(&outcome);
            let event = match repeats.as_mut() {
                Some(r) if r.what == what && r.phase == d.phase && writes.events.is_empty() => {
                    r.count += 1;
                    let message = format!(
                        "steps {} to {} of the {} phase: {what} ({} times)",
                        r.first,
                        d.attempt + 1,
                        d.phase.as_str(),
                        r.count
                    );
                    StepEvent::Repeat { id: r.event, message }
                }
                _ => StepEvent::New {
                    level: Level::Debug,
                    message: format!("step {} of the {} phase: {what}", d.attempt + 1, d.phase.as_str()),
                },
            };
            let event_id = self.store.record_step(id, &writes, &event).await?;
            state.commit(&writes.state);
            repeats = match (repeats, event) {
                (Some(r), StepEvent::Repeat { .. }) => Some(r),
                _ => Some(Repeats { event: event_id, first: d.attempt + 1, what, phase: d.phase, count: 1 }),
            };
            // A user may have acted between the step's end and this lock: then the step's
            // outcome belongs to a phase that is over, and only its writes count.
            if !self.unchanged(&d).await? {
                continue;
            }
            // Hooks that must run before the outcome is acted on. They may take minutes,
            // so they run outside the decisions lock; then the step runs again (steps are
            // idempotent) and finds the stage done.
            if let Some(stage) = hooks_due(&d, &outcome) {
                drop(_decisions);
                let verdict = self.run_hooks(&d, stage).await?;
                let _decisions = self.decisions.lock().await;
                // A failure counts even if the deployment was paused meanwhile: its stage is
                // recorded as run, so it would not run again.
                if let (Err(reason), true) = (verdict, self.still_in_phase(&d).await?) {
                    self.hooks_failed(&d, stage, &reason).await?;
                }
                repeats = None;
                continue;
            }
            match outcome {
                Ok(StepOutcome::Continue(delay_ms)) => {
                    drop(_decisions);
                    let mut delay = Duration::from_millis(delay_ms as u64).clamp(MIN_STEP_DELAY, MAX_STEP_DELAY);
                    // Never past the progress deadline: it fails the deployment on time.
                    if deadline_ms > 0
                        && let Some(now) = self.store.deployment(id).await?
                    {
                        let left = (now.last_progress_at_ms + deadline_ms - now_ms()).max(0) as u64;
                        delay = delay.min(Duration::from_millis(left + 50));
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = wake.notified() => {}
                    }
                }
                Ok(StepOutcome::Done) => {
                    self.finish(&d).await?;
                    return Ok(());
                }
                // Verified (or nothing to verify): step again, with `verified` set.
                Ok(StepOutcome::Verify) => {
                    drop(_decisions);
                    tokio::time::sleep(MIN_STEP_DELAY).await;
                }
                Ok(StepOutcome::AwaitApproval(reason)) => {
                    let message = format!("awaiting approval: {reason}; run `hivemind deployment promote --id {id}`");
                    self.store.transition(id, Transition::to(Status::AwaitingApproval, &message)).await?;
                    return Ok(());
                }
                Ok(StepOutcome::Failed(reason)) | Err(reason) if d.phase == Phase::Rollback => {
                    drop(_decisions);
                    self.rollback_failed(&d, &reason).await?;
                    return Ok(());
                }
                Ok(StepOutcome::Failed(reason)) | Err(reason) => {
                    self.fail(&d, &reason).await?;
                }
            }
        }
    }

    /// Whether the deployment is still where `d` saw it: same status, same phase.
    async fn unchanged(&self, d: &Deployment) -> Result<bool> {
        let now = self.store.deployment(&d.id).await?;
        Ok(now.is_some_and(|n| n.status == d.status && n.phase == d.phase))
    }

    /// Whether the deployment is still active in the phase `d` saw (perhaps paused since).
    pub(super) async fn still_in_phase(&self, d: &Deployment) -> Result<bool> {
        let now = self.store.deployment(&d.id).await?;
        Ok(now.is_some_and(|n| n.status.is_active() && n.phase == d.phase))
    }

    /// A pre hook failed: the deployment ends before it touched anything.
    async fn stop_untouched(&self, d: &Deployment, reason: &str) -> Result<()> {
        let serving = match &d.previous {
            Some(p) => format!("{} still serves", p.version),
            None => "the app had no release before".to_string(),
        };
        let message = format!("{reason}; the deployment stopped before it changed anything, and {serving}");
        let to = Transition { level: Level::Error, error: Some(reason), ..Transition::to(Status::Failed, &message) };
        self.store.transition(&d.id, to).await?;
        self.count_outcome(&d.id).await;
        self.prune_history(&d.app).await;
        Ok(())
    }

    /// A stage's hooks failed: verify fails the phase; post rolls back only when asked
    /// to; a rollback hook's failure is only recorded, as the rollback goes on.
    async fn hooks_failed(&self, d: &Deployment, stage: HookStage, reason: &str) -> Result<()> {
        use crate::model::PostHookFailure;
        match stage {
            HookStage::Verify => self.fail(d, reason).await,
            HookStage::Post if d.spec.hooks.post_failure == PostHookFailure::Rollback => {
                self.fail(d, &format!("{reason} (--post-hook-failure rollback)")).await
            }
            HookStage::Post => {
                let message = format!(
                    "{reason}; {} keeps serving (with --post-hook-failure rollback it would be rolled back)",
                    d.target_version
                );
                Ok(self.store.event(&d.id, Level::Warn, &message).await?)
            }
            HookStage::Pre | HookStage::Rollback => Ok(()),
        }
    }

    /// A phase is done. The deploy phase completes the deployment; a rollback phase ends
    /// it as failed, rolled back or aborted, with the previous release serving.
    async fn finish(&self, d: &Deployment) -> Result<()> {
        // Whatever serves now, the healer starts afresh with it: old slots, old deaths go.
        self.healer.forget(&d.app);
        match d.phase {
            Phase::Deploy if !d.spec.variants.is_empty() => {
                // An A/B test ends with its winner serving alone: the release is what the
                // router sends all traffic to.
                let (split, _) = self.services.router.split(&d.app);
                let serving: Vec<&String> = split.iter().filter(|(_, w)| *w > 0).map(|(v, _)| v).collect();
                let winner = match (serving.as_slice(), &d.winner) {
                    ([only], _) => (*only).clone(),
                    (_, Some(w)) => w.clone(),
                    _ => d.target_version.clone(),
                };
                let release =
                    d.variant_releases().into_iter().find(|r| r.version == winner).unwrap_or_else(|| d.target());
                let release = crate::model::Release { replicas: d.spec.replicas, ..release };
                self.store.set_app_release(&d.app, Some(&release)).await?;
                self.store
                    .set_winner(&d.id, &winner, &format!("variant {winner} won and is the app's release"))
                    .await?;
                let message = format!("{winner} won: {} replicas of {}", release.replicas, release.image);
                self.store
                    .transition(
                        &d.id,
                        Transition { progress: Some(100), ..Transition::to(Status::Completed, &message) },
                    )
                    .await?;
            }
            Phase::Deploy => {
                self.store.set_app_release(&d.app, Some(&d.target())).await?;
                // The deployment rolled back says so before its rollback says it completed:
                // whoever waits for the rollback then finds both ends as they are.
                if let Some(of) = &d.rollback_of {
                    let message = format!("rolled back by {}: {} serves again", d.id, d.target_version);
                    self.store
                        .transition(
                            of,
                            Transition { level: Level::Warn, ..Transition::to(Status::RolledBack, &message) },
                        )
                        .await?;
                }
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
                let kind = d.rollback_kind.unwrap_or(RollbackKind::Failure);
                let message = match (&d.error, kind) {
                    (Some(error), RollbackKind::Failure) => format!("{error}; {restored}"),
                    (_, RollbackKind::Abort) => format!("aborted; {restored}"),
                    _ => restored,
                };
                self.store
                    .transition(
                        &d.id,
                        Transition { level: Level::Warn, ..Transition::to(kind.final_status(), &message) },
                    )
                    .await?;
            }
        }
        self.count_outcome(&d.id).await;
        self.prune_history(&d.app).await;
        Ok(())
    }

    /// The deploy phase failed: the rollback phase starts, unless the user turned
    /// auto-rollback off. (A failed rollback phase is `rollback_failed`'s.)
    pub(super) async fn fail(&self, d: &Deployment, reason: &str) -> Result<()> {
        debug_assert_eq!(d.phase, Phase::Deploy, "a failed rollback phase goes to rollback_failed");
        if d.spec.auto_rollback {
            let message = format!("{reason}; rolling back");
            let to = Transition {
                phase: Some(Phase::Rollback),
                rollback_kind: Some(RollbackKind::Failure),
                touch_progress: true,
                level: Level::Error,
                error: Some(reason),
                ..Transition::to(Status::RollingBack, &message)
            };
            self.store.transition(&d.id, to).await?;
        } else {
            let message = format!("{reason}; auto-rollback is off, so replicas and routes are left as they are");
            let to =
                Transition { level: Level::Error, error: Some(reason), ..Transition::to(Status::Failed, &message) };
            self.store.transition(&d.id, to).await?;
            self.count_outcome(&d.id).await;
            self.prune_history(&d.app).await;
        }
        Ok(())
    }

    /// Counts how a deployment ended, for /metrics.
    pub(super) async fn count_outcome(&self, id: &str) {
        if let Ok(Some(d)) = self.store.deployment(id).await
            && d.status.is_terminal()
        {
            self.counts.outcome(&d.strategy, d.status);
        }
    }

    pub(super) async fn prune_history(&self, app: &str) {
        match self.store.prune_history(app, self.options.history_limit as i64).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(app = %app, "deleted {n} old deployments beyond the history limit"),
            Err(e) => tracing::warn!(app = %app, "pruning history: {e:#}"),
        }
    }
}

/// The hook stage that must run before `outcome` is acted on, if its hooks have not run:
/// verify when the strategy asks; post when the deploy phase is done; rollback when a
/// rollback phase ends (or a deployment that rolls back a completed one is done).
fn hooks_due(d: &Deployment, outcome: &Result<StepOutcome, String>) -> Option<HookStage> {
    let stage = match (outcome, d.phase) {
        (Ok(StepOutcome::Verify), Phase::Deploy) if d.rollback_of.is_none() => HookStage::Verify,
        (Ok(StepOutcome::Done), Phase::Deploy) if d.rollback_of.is_some() => HookStage::Rollback,
        (Ok(StepOutcome::Done), Phase::Deploy) => HookStage::Post,
        (Ok(StepOutcome::Done | StepOutcome::Failed(_)) | Err(_), Phase::Rollback) => HookStage::Rollback,
        _ => return None,
    };
    (!d.spec.hooks.of(stage).is_empty() && !d.hook_runs.ran(stage)).then_some(stage)
}

/// What a step said, for its line of the event log.
fn step_outcome_text(outcome: &Result<StepOutcome, String>) -> String {
    match outcome {
        Ok(StepOutcome::Continue(ms)) => format!("continue in {ms} ms"),
        Ok(StepOutcome::Done) => "done".to_string(),
        Ok(StepOutcome::AwaitApproval(reason)) => format!("await approval: {reason}"),
        Ok(StepOutcome::Verify) => "verify: the new release is on its preview route".to_string(),
        Ok(StepOutcome::Failed(reason)) => format!("failed: {reason}"),
        Err(error) => format!("plugin error: {error}"),
    }
}

/// One probe never takes longer than this.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

pub(super) fn check_of(spec: &DeploymentSpec) -> HttpCheck {
    HttpCheck {
        path: spec.health_check_path.clone(),
        timeout: PROBE_TIMEOUT.min(Duration::from_secs(spec.health_check_timeout.max(1) as u64)),
    }
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
        variants: d
            .variant_releases()
            .iter()
            .zip(&d.spec.variants)
            .map(|(r, v)| wit::Variant { release: release(r), percentage: v.percentage })
            .collect(),
        params: d.spec.params.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        health: wit::HealthCheck {
            path: d.spec.health_check_path.clone(),
            timeout_ms: PROBE_TIMEOUT.min(Duration::from_secs(d.spec.health_check_timeout as u64)).as_millis() as u32,
            ready_timeout_ms: d.spec.health_check_timeout.saturating_mul(1000),
        },
    }
}
