//! The deployment's lifecycle as a pure function: `decide(deployment, event, now)` says
//! what the deployment becomes (a `Change` to persist, perhaps an event line) and what the
//! driver does next (`Next`: call the strategy after a delay, run a stage's hooks, finish
//! the phase, restore the previous release, start the loop, or nothing).
//!
//! The server's step loop (`drive.rs`), its controls (`control.rs`) and `plugin test`'s
//! simulator all act on these decisions and nothing else, so the simulator predicts the
//! server by construction, and a new state (an inconclusive analysis, a kept-warm
//! previous release) is a new row here rather than an `if` in four files. Nothing here
//! reads a clock, a store or a plugin: time comes in as `now_ms`, the world as the record.

#[cfg(test)]
mod tests;

use crate::error::ErrorCode;
use crate::model::{Deployment, HookStage, Level, Phase, PostHookFailure, Release, RollbackKind, Status};
use std::time::Duration;

/// Between steps the engine never waits longer than this, whatever a strategy asks.
pub const MAX_STEP_DELAY: Duration = Duration::from_secs(60);
/// Nor shorter than this: a strategy that asks for no pause at all (or verifies over and
/// over) takes at most 20 steps a second, not hundreds.
pub const MIN_STEP_DELAY: Duration = Duration::from_millis(50);

/// What a user (or the simulated operator) asks of a deployment between steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Pause,
    Resume,
    Promote,
    Abort,
    Rollback,
    SelectWinner,
}

impl Control {
    pub const ALL: [Control; 6] =
        [Control::Pause, Control::Resume, Control::Promote, Control::Abort, Control::Rollback, Control::SelectWinner];

    /// The verb, as the refusal says it ("cannot roll back deployment …").
    fn verb(self) -> &'static str {
        match self {
            Control::Pause => "pause",
            Control::Resume => "resume",
            Control::Promote => "promote",
            Control::Abort => "abort",
            Control::Rollback => "roll back",
            Control::SelectWinner => "select a winner for",
        }
    }
}

/// The one table of which controls each status allows, with the rule a refusal quotes.
/// The API's 409s come from here.
const ALLOWED: [(Control, &[Status], &str); 6] = [
    (Control::Pause, &[Status::InProgress], "only a deployment in progress can be paused"),
    (Control::Resume, &[Status::Paused], "only a paused deployment can be resumed"),
    (Control::Promote, &[Status::AwaitingApproval], "only a deployment awaiting approval can be promoted"),
    (
        Control::Abort,
        &[Status::Pending, Status::InProgress, Status::Paused, Status::AwaitingApproval],
        "only a pending or running deployment can be aborted",
    ),
    (
        Control::Rollback,
        &[Status::InProgress, Status::Paused, Status::AwaitingApproval, Status::Completed],
        "only a running or completed deployment can be rolled back",
    ),
    (
        Control::SelectWinner,
        &[Status::InProgress, Status::AwaitingApproval, Status::Paused],
        "only a running A/B test can get a winner",
    ),
];

/// Whether `status` allows `control`.
pub fn allows(status: Status, control: Control) -> bool {
    ALLOWED.iter().any(|(c, statuses, _)| *c == control && statuses.contains(&status))
}

/// A control the deployment's status does not allow: a 409 with this code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: ErrorCode,
    pub message: String,
}

/// What a step of the strategy said (or the error it failed with).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Continue(u32),
    Verify,
    Done,
    AwaitApproval(String),
    Failed(String),
    /// The plugin trapped, overran a budget or returned an error.
    Error(String),
}

impl Outcome {
    /// What the step said, for its line of the event log.
    pub fn describe(&self) -> String {
        match self {
            Outcome::Continue(ms) => format!("continue in {ms} ms"),
            Outcome::Done => "done".to_string(),
            Outcome::AwaitApproval(reason) => format!("await approval: {reason}"),
            Outcome::Verify => "verify: the new release is on its preview route".to_string(),
            Outcome::Failed(reason) => format!("failed: {reason}"),
            Outcome::Error(error) => format!("plugin error: {error}"),
        }
    }
}

/// Everything that moves a deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The driver is about to call the strategy: is there anything before that?
    Poll,
    /// A step returned.
    Step(Outcome),
    /// The deployment's images were pulled and pinned, or (`failure`) could not be.
    Images {
        failure: Option<String>,
    },
    /// A stage's hooks ran; `failure` says why they failed, if they did.
    Hooks {
        stage: HookStage,
        failure: Option<String>,
    },
    Control(Control),
    /// The plugin the deployment is pinned to is not loaded.
    PluginMissing,
    /// The server started again and found the deployment where it left it.
    Recovered,
}

/// A change of the deployment's record, with the event line that says why. The store
/// applies it in one transaction (`store::Transition`); the simulator to its record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub status: Status,
    /// A new phase restarts the phase clock and the attempt count.
    pub phase: Option<Phase>,
    pub rollback_kind: Option<RollbackKind>,
    /// Records a promotion.
    pub promoted: Option<bool>,
    /// Restarts the progress-deadline clock.
    pub touch_progress: bool,
    pub progress: Option<u8>,
    pub message: String,
    pub level: Level,
    pub error: Option<String>,
}

impl Change {
    pub fn to(status: Status, message: impl Into<String>) -> Change {
        Change {
            status,
            phase: None,
            rollback_kind: None,
            promoted: None,
            touch_progress: false,
            progress: None,
            message: message.into(),
            level: Level::Info,
            error: None,
        }
    }

    /// The change applied to a record held in memory, as the store applies it to a row.
    pub fn apply(&self, d: &mut Deployment, now_ms: i64) {
        d.status = self.status;
        d.message = self.message.clone();
        d.updated_at_ms = now_ms;
        d.progress = self.progress.unwrap_or(d.progress);
        d.error = self.error.clone().or(d.error.take());
        d.rollback_kind = self.rollback_kind.or(d.rollback_kind);
        if let Some(promoted) = self.promoted {
            d.promoted = promoted;
            d.promotions += u32::from(promoted);
        }
        if self.touch_progress {
            d.last_progress_at_ms = now_ms;
        }
        if let Some(phase) = self.phase {
            d.phase = phase;
            d.attempt = 0;
            d.phase_started_at_ms = now_ms;
        }
    }
}

/// What the driver does after the change is persisted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Call the strategy's `step` after this delay (a control wakes it sooner).
    Step(Duration),
    /// Pull and pin the deployment's images, then tell the machine how it went.
    PullImages,
    /// Run a stage's hooks, then tell the machine how they went.
    RunHooks(HookStage),
    /// The phase is done: the deploy phase completes; a rollback phase ends with the
    /// previous release serving, as `Deployment::rollback_kind` says.
    Finish,
    /// The strategy's rollback failed (for this reason): the host restores the previous
    /// release itself.
    Restore(String),
    /// Reverse a completed deployment with a new one that brings its previous release back.
    Reverse,
    /// Start the step loop (or wake it if it sleeps).
    Drive,
    /// Nothing to do: the deployment is parked or has ended.
    Idle,
}

/// What the deployment becomes and what happens next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub change: Option<Change>,
    /// An event line that changes nothing else.
    pub note: Option<(Level, String)>,
    pub next: Next,
}

impl Decision {
    fn next(next: Next) -> Decision {
        Decision { change: None, note: None, next }
    }

    fn change(change: Change, next: Next) -> Decision {
        Decision { change: Some(change), note: None, next }
    }

    /// Whether the decision is only "call the strategy now": what a poll says when
    /// nothing comes before the step.
    pub fn steps_now(&self) -> bool {
        self.change.is_none() && self.note.is_none() && self.next == Next::Step(Duration::ZERO)
    }

    /// The status the deployment has after this decision.
    pub fn status(&self, before: Status) -> Status {
        self.change.as_ref().map_or(before, |c| c.status)
    }
}

/// The whole machine: what `event` does to deployment `d` at `now_ms`. Only a control
/// can be refused.
pub fn decide(d: &Deployment, event: &Event, now_ms: i64) -> Result<Decision, Refusal> {
    let running = matches!(d.status, Status::InProgress | Status::RollingBack);
    Ok(match event {
        Event::Control(control) => return on_control(d, *control),
        Event::Recovered if running => Decision::next(Next::Drive),
        Event::Recovered => Decision::next(Next::Idle),
        // What arrives for a deployment that no longer runs belongs to a phase that is
        // over (a user acted meanwhile): it changes nothing.
        _ if !running => Decision::next(Next::Idle),
        Event::Poll => poll(d, now_ms),
        Event::PluginMissing => {
            let message = format!(
                "plugin {} {} (sha256 {}) that this deployment is pinned to is not loaded; install it again",
                d.plugin.name, d.plugin.version, d.plugin.sha256
            );
            let change =
                Change { level: Level::Error, error: Some(message.clone()), ..Change::to(Status::Failed, message) };
            Decision::change(change, Next::Idle)
        }
        Event::Step(outcome) => on_step(d, outcome, now_ms),
        Event::Images { failure: None } => Decision::next(Next::Step(Duration::ZERO)),
        Event::Images { failure: Some(reason) } => stopped_untouched(d, reason),
        Event::Hooks { stage, failure } => on_hooks(d, *stage, failure.as_deref()),
    })
}

/// How long the progress deadline leaves, if the deployment has one.
pub fn deadline_left_ms(d: &Deployment, now_ms: i64) -> Option<i64> {
    let deadline_ms = d.spec.progress_deadline as i64 * 1000;
    (deadline_ms > 0).then(|| d.last_progress_at_ms + deadline_ms - now_ms)
}

/// Before a step: the progress deadline, the images, then the pre hooks, then the step.
fn poll(d: &Deployment, now_ms: i64) -> Decision {
    if deadline_left_ms(d, now_ms).is_some_and(|left| left < 0) {
        let reason = format!(
            "progress deadline exceeded: no progress for {} s (stuck at {}%: {})",
            d.spec.progress_deadline, d.progress, d.message
        );
        return phase_failed(d, &reason);
    }
    // The images are pulled and pinned before anything runs them (pre hooks' jobs too).
    // A deployment already past its first step without pins (begun before pins existed)
    // goes on with its images as named.
    if d.phase == Phase::Deploy && d.attempt == 0 && !d.images_ready() {
        return Decision::next(Next::PullImages);
    }
    // Pre hooks run before the first step: before any replica or route changes.
    if d.phase == Phase::Deploy && d.rollback_of.is_none() && d.attempt == 0 && due(d, HookStage::Pre) {
        return Decision::next(Next::RunHooks(HookStage::Pre));
    }
    Decision::next(Next::Step(Duration::ZERO))
}

fn on_step(d: &Deployment, outcome: &Outcome, now_ms: i64) -> Decision {
    if let Some(stage) = hooks_due(d, outcome) {
        return Decision::next(Next::RunHooks(stage));
    }
    match outcome {
        Outcome::Continue(ms) => {
            let mut delay = Duration::from_millis(u64::from(*ms)).clamp(MIN_STEP_DELAY, MAX_STEP_DELAY);
            // Never past the progress deadline: it fails the deployment on time.
            if let Some(left) = deadline_left_ms(d, now_ms) {
                delay = delay.min(Duration::from_millis(left.max(0) as u64 + 50));
            }
            Decision::next(Next::Step(delay))
        }
        // Verified (or nothing to verify): step again, with `verified` set.
        Outcome::Verify => Decision::next(Next::Step(MIN_STEP_DELAY)),
        Outcome::Done => Decision::next(Next::Finish),
        Outcome::AwaitApproval(reason) => {
            let message = format!("awaiting approval: {reason}; run `hivemind deployment promote --id {}`", d.id);
            Decision::change(Change::to(Status::AwaitingApproval, message), Next::Idle)
        }
        Outcome::Failed(reason) | Outcome::Error(reason) => phase_failed(d, reason),
    }
}

/// The phase failed: a deploy phase rolls back (or stops, with auto-rollback off); a
/// rollback phase leaves the host to restore the previous release itself.
fn phase_failed(d: &Deployment, reason: &str) -> Decision {
    if d.phase == Phase::Rollback {
        return Decision::next(Next::Restore(reason.to_string()));
    }
    if d.spec.auto_rollback {
        let change = Change {
            phase: Some(Phase::Rollback),
            rollback_kind: Some(RollbackKind::Failure),
            touch_progress: true,
            level: Level::Error,
            error: Some(reason.to_string()),
            ..Change::to(Status::RollingBack, format!("{reason}; rolling back"))
        };
        Decision::change(change, Next::Step(Duration::ZERO))
    } else {
        let message = format!("{reason}; auto-rollback is off, so replicas and routes are left as they are");
        let change =
            Change { level: Level::Error, error: Some(reason.to_string()), ..Change::to(Status::Failed, message) };
        Decision::change(change, Next::Idle)
    }
}

/// A stage's hooks ran. A failure of pre stops the deployment untouched; of verify fails
/// the phase; of post rolls back only when asked to; of rollback is only recorded, as the
/// rollback goes on. Then the step runs again (steps are idempotent) and finds the stage done.
fn on_hooks(d: &Deployment, stage: HookStage, failure: Option<&str>) -> Decision {
    let again = Decision::next(Next::Step(Duration::ZERO));
    let Some(reason) = failure else { return again };
    match stage {
        HookStage::Pre => stopped_untouched(d, reason),
        HookStage::Verify => phase_failed(d, reason),
        HookStage::Post if d.spec.hooks.post_failure == PostHookFailure::Rollback => {
            phase_failed(d, &format!("{reason} (--post-hook-failure rollback)"))
        }
        HookStage::Post => {
            let message = format!(
                "{reason}; {} keeps serving (with --post-hook-failure rollback it would be rolled back)",
                d.target_version
            );
            Decision { note: Some((Level::Warn, message)), ..again }
        }
        HookStage::Rollback => again,
    }
}

/// A failure before the first step (a pull, a pre hook): the deployment fails having
/// changed nothing, and says what still serves.
fn stopped_untouched(d: &Deployment, reason: &str) -> Decision {
    let serving = match &d.previous {
        Some(p) => format!("{} still serves", p.version),
        None => "the app had no release before".to_string(),
    };
    let message = format!("{reason}; the deployment stopped before it changed anything, and {serving}");
    let change = Change { level: Level::Error, error: Some(reason.to_string()), ..Change::to(Status::Failed, message) };
    Decision::change(change, Next::Idle)
}

fn on_control(d: &Deployment, control: Control) -> Result<Decision, Refusal> {
    if !allows(d.status, control) {
        let rule = ALLOWED.iter().find(|(c, _, _)| *c == control).map_or("", |(_, _, rule)| rule);
        let verb = control.verb();
        return Err(Refusal {
            code: match control {
                Control::Pause => ErrorCode::CannotPause,
                Control::Resume => ErrorCode::CannotResume,
                Control::Promote => ErrorCode::CannotPromote,
                Control::Abort => ErrorCode::CannotAbort,
                Control::Rollback => ErrorCode::CannotRollBack,
                Control::SelectWinner => ErrorCode::CannotSelectAWinnerFor,
            },
            message: format!("cannot {verb} deployment {}: it is {}; {rule}", d.id, d.status.words()),
        });
    }
    let rollback_phase = |kind: RollbackKind, message: &str| {
        let change = Change {
            phase: Some(Phase::Rollback),
            rollback_kind: Some(kind),
            touch_progress: true,
            level: Level::Warn,
            ..Change::to(Status::RollingBack, message)
        };
        Decision::change(change, Next::Drive)
    };
    Ok(match (control, d.status) {
        (Control::Pause, _) => {
            Decision::change(Change::to(Status::Paused, "paused by request; `deployment resume` goes on"), Next::Drive)
        }
        // The time spent paused does not count against the progress deadline.
        (Control::Resume, _) => Decision::change(
            Change { touch_progress: true, ..Change::to(Status::InProgress, "resumed by request") },
            Next::Drive,
        ),
        (Control::Promote, _) => {
            let change = Change {
                promoted: Some(true),
                touch_progress: true,
                ..Change::to(Status::InProgress, "promoted by request")
            };
            Decision::change(change, Next::Drive)
        }
        (Control::Abort, Status::Pending) => {
            Decision::change(Change::to(Status::Aborted, "aborted before it ran; nothing changed"), Next::Idle)
        }
        (Control::Abort, _) => rollback_phase(RollbackKind::Abort, "aborted by request; rolling back"),
        (Control::Rollback, Status::Completed) => Decision::next(Next::Reverse),
        (Control::Rollback, _) => rollback_phase(RollbackKind::Manual, "rollback requested; rolling back"),
        // The winner is recorded by the driver; a parked test goes on to promote it.
        (Control::SelectWinner, Status::AwaitingApproval) => {
            let change =
                Change { touch_progress: true, ..Change::to(Status::InProgress, "winner selected; promoting it") };
            Decision::change(change, Next::Drive)
        }
        (Control::SelectWinner, _) => Decision::next(Next::Drive),
    })
}

/// Whether a stage has hooks that have not run yet.
fn due(d: &Deployment, stage: HookStage) -> bool {
    !d.spec.hooks.of(stage).is_empty() && !d.hook_runs.ran(stage)
}

/// The hook stage that must run before `outcome` is acted on, if its hooks have not run:
/// verify when the strategy asks; post when the deploy phase is done; rollback when a
/// rollback phase ends (or a deployment that rolls back a completed one is done).
fn hooks_due(d: &Deployment, outcome: &Outcome) -> Option<HookStage> {
    let stage = match (outcome, d.phase) {
        (Outcome::Verify, Phase::Deploy) if d.rollback_of.is_none() => HookStage::Verify,
        (Outcome::Done, Phase::Deploy) if d.rollback_of.is_some() => HookStage::Rollback,
        (Outcome::Done, Phase::Deploy) => HookStage::Post,
        (Outcome::Done | Outcome::Failed(_) | Outcome::Error(_), Phase::Rollback) => HookStage::Rollback,
        _ => return None,
    };
    due(d, stage).then_some(stage)
}

/// Whether the strategy sees its new release as verified: verify hooks passed (or there
/// are none), or the deployment brings back a release that served before.
pub fn verified(d: &Deployment) -> bool {
    d.spec.hooks.verify.is_empty() || d.hook_runs.ran(HookStage::Verify) || d.rollback_of.is_some()
}

/// The change that ends a phase that is done (`Next::Finish`): the deploy phase completes,
/// an A/B test with its `winner` serving alone; a rollback phase ends as its kind says,
/// with the previous release serving.
pub fn finished(d: &Deployment, winner: Option<&Release>) -> Change {
    match d.phase {
        Phase::Deploy => {
            let message = match winner {
                Some(w) => format!("{} won: {} replicas of {}", w.version, d.spec.replicas, w.image),
                None => format!("{} serves: {} replicas of {}", d.target_version, d.spec.replicas, d.spec.image),
            };
            Change { progress: Some(100), ..Change::to(Status::Completed, message) }
        }
        Phase::Rollback => {
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
            Change { level: Level::Warn, ..Change::to(kind.final_status(), message) }
        }
    }
}
