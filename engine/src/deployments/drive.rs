//! The step loop: call the pinned strategy's `step`, persist what it did, act on what it
//! said, sleep, repeat — until the phase is done or failed.

use super::Deployments;
use crate::health::HttpCheck;
use crate::machine::{self, Change, Decision, Event, Next, Outcome};
use crate::model::{Deployment, DeploymentSpec, Level, Phase, Status, now_ms};
use crate::plugins::{Scope, StepCaps, StepContext, StepOutcome, wit};
use crate::store::{StepEvent, StepWrites, Transition};
use anyhow::Result;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// The latest step's event, while the steps after it say the same and write nothing else:
/// they update it with their count instead of adding a line each.
struct Repeats {
    event: i64,
    first: u32,
    what: String,
    phase: Phase,
    count: u32,
}

impl Deployments {
    /// Runs the step loop of a deployment in the background, unless it already runs.
    pub(crate) fn spawn_drive(self: &Arc<Self>, id: crate::model::DeploymentId) {
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
                if let Err(e) = ended {
                    if e.downcast_ref::<crate::store::NotLeader>().is_some() {
                        engine.driving.lock().unwrap().remove(&id);
                        tracing::info!(deployment = %id, "the step loop stopped: {e}; the leader drives it");
                        break;
                    }
                    // Still ours while it waits: nobody starts a second loop meanwhile.
                    engine.wait_out(&id, &e, &wake).await;
                    continue;
                }
                engine.driving.lock().unwrap().remove(&id);
                // A user who resumed (or promoted) the deployment while this loop was
                // ending found it still running and started no other: look once more.
                let runs = matches!(
                    engine.ground.store.deployment(&id).await,
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

    /// Waits out what stopped a step loop: a store that cannot be written (a full disk, a
    /// database down) or anything else, retrying every few seconds until the store takes
    /// a write again. The step that failed to be recorded was not recorded at all (a
    /// step's writes are one transaction), so the loop resumes from the store as a
    /// restarted server would: no step is applied twice, and the progress deadline,
    /// counted from the recorded progress, has kept counting.
    async fn wait_out(&self, id: &str, error: &anyhow::Error, wake: &Notify) {
        let outage = &self.ground.outage;
        let Some(cause) = crate::error::store_unavailable(error) else {
            // Not the store's fault: a bug, logged; the loop tries again, slowly.
            tracing::error!(deployment = %id, "the step loop failed: {error:#}; trying again in {} s", crate::outage::RETRY_EVERY.as_secs());
            let _ = tokio::time::timeout(crate::outage::RETRY_EVERY, wake.notified()).await;
            return;
        };
        if outage.begin(&cause) {
            tracing::warn!(deployment = %id, "{cause}; retrying every {} s", crate::outage::RETRY_EVERY.as_secs());
        }
        let mut wait = std::time::Duration::from_millis(500);
        loop {
            let _ = tokio::time::timeout(wait, wake.notified()).await;
            wait = (wait * 2).min(crate::outage::RETRY_EVERY);
            if !self.ground.store.fence().may_act() {
                return;
            }
            // A deployment that is gone (its app removed) has nothing left to wait for.
            if matches!(self.ground.store.deployment(id).await, Ok(None)) {
                return;
            }
            // The first write the store takes again says what happened.
            let message = format!("{cause}; the deployment waited for the store, and goes on");
            if self.ground.store.event(id, Level::Warn, &message).await.is_ok() {
                if let Some(lasted) = outage.end() {
                    tracing::info!(deployment = %id, "the store takes writes again after {:.0} s", lasted.as_secs_f64());
                }
                return;
            }
        }
    }

    /// Wakes a deployment's step loop from its sleep, so a user's control acts at once.
    pub(crate) fn wake(&self, id: &str) {
        if let Some(wake) = self.driving.lock().unwrap().get(id) {
            wake.notify_one();
        }
    }

    async fn drive(&self, id: &str, wake: &Notify) -> Result<()> {
        if let Some(d) = self.ground.store.deployment(id).await? {
            // An A/B goal given as a response header is counted by the router.
            let goal = d.spec.params.get("goal").and_then(|g| g.strip_prefix("header:"));
            self.ground.services.router.set_goal_header(&d.app, goal);
        }
        // The event of the latest step, while the steps after it say the same thing.
        let mut repeats: Option<Repeats> = None;
        // The plugin's state, kept between steps: only this loop writes it.
        let mut state = crate::plugins::PluginState {
            sizes: self.ground.store.plugin_state_sizes(id).await?,
            ..Default::default()
        };
        loop {
            // A server that lost the lease takes no step more: the new leader resumes.
            if !self.ground.store.fence().may_act() {
                return Err(crate::store::NotLeader("this server no longer leads".into()).into());
            }
            let Some(d) = self.ground.store.deployment(id).await? else { return Ok(()) };
            // Before the step: the progress deadline, the pre hooks.
            let before = machine::decide(&d, &Event::Poll, now_ms()).expect("a poll is never refused");
            if !before.steps_now() {
                repeats = None;
                match self.act(&d, before, wake, None).await? {
                    Flow::Stop => return Ok(()),
                    Flow::Go => continue,
                }
            }
            let Some(plugin) = self.ground.plugins.pinned(&d.plugin.sha256) else {
                let missing = machine::decide(&d, &Event::PluginMissing, now_ms()).expect("never refused");
                self.act(&d, missing, wake, None).await?;
                return Ok(());
            };
            let caps = StepCaps {
                scope: Scope::of(&d, self.ground.services.clone()),
                health: check_of(&d.spec),
                metrics_endpoint: d.spec.params.get("metrics-endpoint").cloned().unwrap_or_else(|| "/metrics".into()),
                rollback_of: d.rollback_of.clone(),
                promotions: d.promotions,
                state: std::mem::take(&mut state),
                writes: StepWrites::default(),
            };
            let context = step_context(&d, now_ms());
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
            let (outcome, caps) =
                self.ground.plugins.step(&plugin, caps, &wit_deployment(&d), &context, interrupted).await;
            self.ground.counts.step(started.elapsed().as_secs_f64());
            state = caps.state;
            let mut writes = caps.writes;
            if !matches!(outcome, Some(Ok(_))) {
                // State is kept only when a step returns normally.
                writes.state.clear();
            }

            let decisions = self.ground.decisions.lock().await;
            let Some(outcome) = outcome else {
                // What the interrupted step changed is logged; its progress, which it
                // never finished, is not kept.
                writes.progress = None;
                let now = self.ground.store.deployment(id).await?.map(|n| n.status.words()).unwrap_or_default();
                let message = format!(
                    "step {} of the {} phase was interrupted after {:.1} s: the deployment is {now}",
                    d.attempt + 1,
                    d.phase.as_str(),
                    started.elapsed().as_secs_f64()
                );
                self.ground.store.record_step(id, &writes, &StepEvent::New { level: Level::Info, message }).await?;
                repeats = None;
                continue;
            };
            let outcome = machine_outcome(outcome);
            let what = outcome.describe();
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
            let event_id = self.ground.store.record_step(id, &writes, &event).await?;
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
            // The deadline counts from the progress this step recorded.
            let now = self.ground.store.deployment(id).await?.unwrap_or(d);
            let decision = machine::decide(&now, &Event::Step(outcome), now_ms()).expect("a step is never refused");
            if matches!(decision.next, Next::RunHooks(_)) {
                repeats = None;
            }
            if self.act(&now, decision, wake, Some(decisions)).await? == Flow::Stop {
                return Ok(());
            }
        }
    }

    /// Carries out one of the machine's decisions for the step loop: persists its change
    /// under the decisions lock (`held`, if the caller holds it: nobody acted since it
    /// read `d`), then does what comes next. Hooks and a restore take minutes, so they run
    /// outside the lock; the hooks' verdict goes back to the machine.
    async fn act(&self, d: &Deployment, decision: Decision, wake: &Notify, held: Option<Held<'_>>) -> Result<Flow> {
        match decision.next.clone() {
            Next::PullImages => {
                drop(held);
                let failure = self.pull_images(d, wake).await?.err();
                self.stage_failed(d, failure.map(|reason| Event::Images { failure: Some(reason) })).await?;
                Ok(Flow::Go)
            }
            Next::RunHooks(stage) => {
                drop(held);
                let failure = self.run_hooks(d, stage).await?.err();
                self.stage_failed(d, failure.map(|reason| Event::Hooks { stage, failure: Some(reason) })).await?;
                Ok(Flow::Go)
            }
            Next::Restore(reason) => {
                drop(held);
                self.rollback_failed(d, &reason).await?;
                Ok(Flow::Stop)
            }
            Next::Finish => {
                let _decisions = match held {
                    Some(held) => held,
                    None => self.ground.decisions.lock().await,
                };
                self.finish(d).await?;
                Ok(Flow::Stop)
            }
            next => {
                {
                    let _decisions = match held {
                        Some(held) => held,
                        None => self.ground.decisions.lock().await,
                    };
                    self.apply(&d.id, &decision).await?;
                }
                match next {
                    Next::Step(delay) if !delay.is_zero() => {
                        tokio::select! {
                            _ = tokio::time::sleep(delay) => {}
                            _ = wake.notified() => {}
                        }
                        Ok(Flow::Go)
                    }
                    Next::Step(_) | Next::Drive => Ok(Flow::Go),
                    _ => Ok(Flow::Stop),
                }
            }
        }
    }

    /// Hands the machine the failure of a stage that ran outside the decisions lock (the
    /// images, a stage's hooks), if the deployment is still in the phase `d` saw. A
    /// failure counts even if the deployment was paused meanwhile: the stage is recorded
    /// as run (hooks) or would fail again (images), so it acts as if it were running.
    async fn stage_failed(&self, d: &Deployment, failed: Option<Event>) -> Result<()> {
        let _decisions = self.ground.decisions.lock().await;
        let Some(failed) = failed else { return Ok(()) };
        if !self.still_in_phase(d).await? {
            return Ok(());
        }
        let mut now = self.ground.store.deployment(&d.id).await?.unwrap_or_else(|| d.clone());
        now.status = d.status;
        let decision = machine::decide(&now, &failed, now_ms()).expect("a stage's failure is never refused");
        self.apply(&d.id, &decision).await
    }

    /// Persists a decision's change and its note; a deployment that ended is counted and
    /// its app's history pruned.
    pub(super) async fn apply(&self, id: &str, decision: &Decision) -> Result<()> {
        if let Some(change) = &decision.change {
            self.ground.store.transition(id, transition(change)).await?;
            if change.status.is_terminal() {
                self.count_outcome(id).await;
                if let Ok(Some(d)) = self.ground.store.deployment(id).await {
                    self.prune_history(&d.app).await;
                }
            }
        }
        if let Some((level, message)) = &decision.note {
            self.ground.store.event(id, *level, message).await?;
        }
        Ok(())
    }

    /// Whether the deployment is still where `d` saw it: same status, same phase.
    pub(super) async fn unchanged(&self, d: &Deployment) -> Result<bool> {
        let now = self.ground.store.deployment(&d.id).await?;
        Ok(now.is_some_and(|n| n.status == d.status && n.phase == d.phase))
    }

    /// Whether the deployment is still active in the phase `d` saw (perhaps paused since).
    pub(super) async fn still_in_phase(&self, d: &Deployment) -> Result<bool> {
        let now = self.ground.store.deployment(&d.id).await?;
        Ok(now.is_some_and(|n| n.status.is_active() && n.phase == d.phase))
    }

    /// A phase is done. The deploy phase completes the deployment; a rollback phase ends
    /// it as failed, rolled back or aborted, with the previous release serving.
    async fn finish(&self, d: &Deployment) -> Result<()> {
        // Whatever serves now, the healer starts afresh with it: old slots, old deaths go.
        self.ground.healer.forget(&d.app);
        let mut winner = None;
        match d.phase {
            Phase::Deploy if !d.spec.variants.is_empty() => {
                // An A/B test ends with its winner serving alone: the release is what the
                // router sends all traffic to.
                let (split, _) = self.ground.services.router.split(&d.app);
                let name = match (split.serving().as_slice(), &d.winner) {
                    ([only], _) => only.to_string(),
                    (_, Some(w)) => w.clone(),
                    _ => d.target_version.clone(),
                };
                let release =
                    d.variant_releases().into_iter().find(|r| r.version == name).unwrap_or_else(|| d.target());
                let release = crate::model::Release { replicas: d.spec.replicas, ..release };
                self.ground.store.set_app_release(&d.app, Some(&release)).await?;
                self.ground
                    .store
                    .set_winner(&d.id, &name, &format!("variant {name} won and is the app's release"))
                    .await?;
                winner = Some(release);
            }
            Phase::Deploy => {
                self.ground.store.set_app_release(&d.app, Some(&d.target())).await?;
                // The deployment rolled back says so before its rollback says it completed:
                // whoever waits for the rollback then finds both ends as they are.
                if let Some(of) = &d.rollback_of {
                    let message = format!("rolled back by {}: {} serves again", d.id, d.target_version);
                    self.ground
                        .store
                        .transition(
                            of,
                            Transition { level: Level::Warn, ..Transition::to(Status::RolledBack, &message) },
                        )
                        .await?;
                }
            }
            Phase::Rollback => self.ground.store.set_app_release(&d.app, d.previous.as_ref()).await?,
        }
        let ended = Decision { change: Some(machine::finished(d, winner.as_ref())), note: None, next: Next::Idle };
        self.apply(&d.id, &ended).await
    }

    /// Counts how a deployment ended, for /metrics.
    pub(super) async fn count_outcome(&self, id: &str) {
        if let Ok(Some(d)) = self.ground.store.deployment(id).await
            && d.status.is_terminal()
        {
            self.ground.counts.outcome(&d.strategy, d.status);
        }
    }

    pub(super) async fn prune_history(&self, app: &str) {
        match self.ground.store.prune_history(app, self.ground.options.history_limit as i64).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(app = %app, "deleted {n} old deployments beyond the history limit"),
            Err(e) => tracing::warn!(app = %app, "pruning history: {e:#}"),
        }
    }
}

/// The plugin's word for a step's outcome, in the machine's.
pub fn machine_outcome(outcome: Result<StepOutcome, String>) -> Outcome {
    match outcome {
        Ok(StepOutcome::Continue(ms)) => Outcome::Continue(ms),
        Ok(StepOutcome::Verify) => Outcome::Verify,
        Ok(StepOutcome::Done) => Outcome::Done,
        Ok(StepOutcome::AwaitApproval(reason)) => Outcome::AwaitApproval(reason),
        Ok(StepOutcome::Failed(reason)) => Outcome::Failed(reason),
        Err(error) => Outcome::Error(error),
    }
}

/// What the strategy is told about its deployment's progress, at `now_ms`.
pub fn step_context(d: &Deployment, now_ms: i64) -> StepContext {
    StepContext {
        phase: match d.phase {
            Phase::Deploy => crate::plugins::Phase::Deploy,
            Phase::Rollback => crate::plugins::Phase::Rollback,
        },
        attempt: d.attempt,
        elapsed_ms: (now_ms - d.phase_started_at_ms).max(0) as u64,
        promoted: d.promoted,
        winner: d.winner.clone(),
        verified: machine::verified(d),
    }
}

/// A machine's change as the store writes it.
fn transition(change: &Change) -> Transition<'_> {
    Transition {
        status: change.status,
        rollback_kind: change.rollback_kind,
        promoted: change.promoted,
        touch_progress: change.touch_progress,
        phase: change.phase,
        progress: change.progress,
        message: &change.message,
        level: change.level,
        error: change.error.as_deref(),
    }
}

/// The decisions lock, held.
type Held<'a> = tokio::sync::MutexGuard<'a, ()>;

/// Whether the step loop goes on after a decision.
#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Go,
    Stop,
}

/// One probe never takes longer than this.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

pub fn check_of(spec: &DeploymentSpec) -> HttpCheck {
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
        id: d.id.to_string(),
        app: d.app.to_string(),
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
