//! The machine over every status × event pair, then the rows that depend on more than
//! the status: deadlines, hooks, auto-rollback, the waits. Pure: no server, no clock.

use super::*;
use crate::model::{DeploymentSpec, PluginRef};

const NOW: i64 = 1_000_000_000;

fn record(status: Status) -> Deployment {
    let phase = if status == Status::RollingBack { Phase::Rollback } else { Phase::Deploy };
    Deployment {
        id: "web-7".into(),
        name: "web-7".into(),
        app: "web".into(),
        strategy: "canary".into(),
        spec: DeploymentSpec::new("web", "demo:v2"),
        target_version: "r2".into(),
        previous: Some(crate::model::Release {
            version: "r1".into(),
            image: "demo:v1".into(),
            replicas: 1,
            env: Default::default(),
            secrets: Default::default(),
            resources: Default::default(),
            pinned: None,
        }),
        status,
        phase,
        progress: 40,
        message: "40% on r2".into(),
        error: None,
        plugin: PluginRef { name: "canary".into(), version: "0.1.0".into(), sha256: "ab".into() },
        attempt: 3,
        phase_started_at_ms: NOW - 10_000,
        rollback_kind: (phase == Phase::Rollback).then_some(RollbackKind::Failure),
        promoted: false,
        promotions: 0,
        rollback_of: None,
        last_progress_at_ms: NOW - 1_000,
        winner: None,
        hook_runs: Default::default(),
        images: [("demo:v2".to_string(), format!("demo@sha256:{}", "ab".repeat(32)))].into(),
        created_at_ms: NOW - 20_000,
        updated_at_ms: NOW - 1_000,
    }
}

/// One event of each kind, named for the table below.
fn events() -> Vec<(&'static str, Event)> {
    let hooks = |stage, failure: Option<&str>| Event::Hooks { stage, failure: failure.map(str::to_string) };
    vec![
        ("poll", Event::Poll),
        ("continue", Event::Step(Outcome::Continue(1000))),
        ("verify", Event::Step(Outcome::Verify)),
        ("done", Event::Step(Outcome::Done)),
        ("await", Event::Step(Outcome::AwaitApproval("analysis passed".into()))),
        ("failed", Event::Step(Outcome::Failed("error rate 30%".into()))),
        ("error", Event::Step(Outcome::Error("out of fuel".into()))),
        ("verify-hooks-failed", hooks(HookStage::Verify, Some("smoke test failed"))),
        ("post-hooks-passed", hooks(HookStage::Post, None)),
        ("plugin-missing", Event::PluginMissing),
        ("recovered", Event::Recovered),
        ("pause", Event::Control(Control::Pause)),
        ("resume", Event::Control(Control::Resume)),
        ("promote", Event::Control(Control::Promote)),
        ("abort", Event::Control(Control::Abort)),
        ("rollback", Event::Control(Control::Rollback)),
        ("select-winner", Event::Control(Control::SelectWinner)),
    ]
}

/// A decision in a few words: the status after it and what comes next, or `refused`.
fn outcome(d: &Deployment, event: &Event) -> String {
    match decide(d, event, NOW) {
        Err(_) => "refused".into(),
        Ok(decision) => {
            let next = match decision.next {
                Next::Step(delay) => format!("step {} ms", delay.as_millis()),
                Next::PullImages => "pull images".into(),
                Next::RunHooks(stage) => format!("hooks {}", stage.as_str()),
                Next::Finish => "finish".into(),
                Next::Restore(_) => "restore".into(),
                Next::Reverse => "reverse".into(),
                Next::Drive => "drive".into(),
                Next::Idle => "idle".into(),
            };
            format!("{} / {next}", decision.status(d.status).as_str())
        }
    }
}

#[test]
fn every_status_and_event() {
    // One row per status, one column per event of `events()`, in their order.
    #[rustfmt::skip]
    let table: [(Status, [&str; 17]); 9] = [
        (Status::Pending, [
            "pending / idle", "pending / idle", "pending / idle", "pending / idle", "pending / idle",
            "pending / idle", "pending / idle", "pending / idle", "pending / idle", "pending / idle",
            "pending / idle", "refused", "refused", "refused", "aborted / idle", "refused", "refused",
        ]),
        (Status::InProgress, [
            "in_progress / step 0 ms", "in_progress / step 1000 ms", "in_progress / step 50 ms",
            "in_progress / finish", "awaiting_approval / idle", "rolling_back / step 0 ms",
            "rolling_back / step 0 ms", "rolling_back / step 0 ms", "in_progress / step 0 ms",
            "failed / idle", "in_progress / drive", "paused / drive", "refused", "refused",
            "rolling_back / drive", "rolling_back / drive", "in_progress / drive",
        ]),
        (Status::Paused, [
            "paused / idle", "paused / idle", "paused / idle", "paused / idle", "paused / idle",
            "paused / idle", "paused / idle", "paused / idle", "paused / idle", "paused / idle",
            "paused / idle", "refused", "in_progress / drive", "refused", "rolling_back / drive",
            "rolling_back / drive", "paused / drive",
        ]),
        (Status::AwaitingApproval, [
            "awaiting_approval / idle", "awaiting_approval / idle", "awaiting_approval / idle",
            "awaiting_approval / idle", "awaiting_approval / idle", "awaiting_approval / idle",
            "awaiting_approval / idle", "awaiting_approval / idle", "awaiting_approval / idle",
            "awaiting_approval / idle", "awaiting_approval / idle", "refused", "refused",
            "in_progress / drive", "rolling_back / drive", "rolling_back / drive", "in_progress / drive",
        ]),
        (Status::Completed, [
            "completed / idle", "completed / idle", "completed / idle", "completed / idle", "completed / idle",
            "completed / idle", "completed / idle", "completed / idle", "completed / idle", "completed / idle",
            "completed / idle", "refused", "refused", "refused", "refused", "completed / reverse", "refused",
        ]),
        (Status::Failed, [
            "failed / idle", "failed / idle", "failed / idle", "failed / idle", "failed / idle",
            "failed / idle", "failed / idle", "failed / idle", "failed / idle", "failed / idle",
            "failed / idle", "refused", "refused", "refused", "refused", "refused", "refused",
        ]),
        (Status::RollingBack, [
            "rolling_back / step 0 ms", "rolling_back / step 1000 ms", "rolling_back / step 50 ms",
            "rolling_back / finish", "awaiting_approval / idle", "rolling_back / restore",
            "rolling_back / restore", "rolling_back / restore", "rolling_back / step 0 ms",
            "failed / idle", "rolling_back / drive", "refused", "refused", "refused", "refused",
            "refused", "refused",
        ]),
        (Status::RolledBack, [
            "rolled_back / idle", "rolled_back / idle", "rolled_back / idle", "rolled_back / idle",
            "rolled_back / idle", "rolled_back / idle", "rolled_back / idle", "rolled_back / idle",
            "rolled_back / idle", "rolled_back / idle", "rolled_back / idle", "refused", "refused",
            "refused", "refused", "refused", "refused",
        ]),
        (Status::Aborted, [
            "aborted / idle", "aborted / idle", "aborted / idle", "aborted / idle", "aborted / idle",
            "aborted / idle", "aborted / idle", "aborted / idle", "aborted / idle", "aborted / idle",
            "aborted / idle", "refused", "refused", "refused", "refused", "refused", "refused",
        ]),
    ];
    assert_eq!(table.len(), Status::ALL.len(), "every status has a row");
    let mut wrong = Vec::new();
    for (status, row) in &table {
        let d = record(*status);
        for ((name, event), expected) in events().iter().zip(row) {
            let got = outcome(&d, event);
            if got != *expected {
                wrong.push(format!("{} × {name}: expected `{expected}`, got `{got}`", status.as_str()));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn a_refusal_names_the_status_and_the_rule() {
    let refusal = decide(&record(Status::Completed), &Event::Control(Control::Pause), NOW).unwrap_err();
    assert_eq!(refusal.code, ErrorCode::CannotPause);
    assert_eq!(
        refusal.message,
        "cannot pause deployment web-7: it is completed; only a deployment in progress can be paused"
    );
    let refusal = decide(&record(Status::Failed), &Event::Control(Control::Rollback), NOW).unwrap_err();
    assert_eq!(refusal.code, ErrorCode::CannotRollBack);
}

#[test]
fn the_table_agrees_with_decide() {
    for status in Status::ALL {
        for control in Control::ALL {
            let decided = decide(&record(status), &Event::Control(control), NOW).is_ok();
            assert_eq!(allows(status, control), decided, "{} × {control:?}", status.as_str());
        }
    }
}

#[test]
fn the_progress_deadline_fails_the_deploy_phase_and_restores_in_the_rollback_phase() {
    let mut d = record(Status::InProgress);
    d.last_progress_at_ms = NOW - 601_000;
    let decision = decide(&d, &Event::Poll, NOW).unwrap();
    let change = decision.change.unwrap();
    assert_eq!(change.status, Status::RollingBack);
    assert_eq!(change.phase, Some(Phase::Rollback));
    assert_eq!(
        change.message,
        "progress deadline exceeded: no progress for 600 s (stuck at 40%: 40% on r2); rolling back"
    );

    let mut d = record(Status::RollingBack);
    d.last_progress_at_ms = NOW - 601_000;
    assert!(
        matches!(decide(&d, &Event::Poll, NOW).unwrap().next, Next::Restore(r) if r.starts_with("progress deadline"))
    );

    // A deadline of 0 is none.
    let mut d = record(Status::InProgress);
    d.spec.progress_deadline = 0;
    d.last_progress_at_ms = 0;
    assert_eq!(decide(&d, &Event::Poll, NOW).unwrap().next, Next::Step(Duration::ZERO));
}

#[test]
fn without_auto_rollback_a_failure_ends_the_deployment_where_it_is() {
    let mut d = record(Status::InProgress);
    d.spec.auto_rollback = false;
    let decision = decide(&d, &Event::Step(Outcome::Failed("boom".into())), NOW).unwrap();
    let change = decision.change.unwrap();
    assert_eq!((change.status, change.error.as_deref()), (Status::Failed, Some("boom")));
    assert!(change.message.contains("auto-rollback is off"));
    assert_eq!(decision.next, Next::Idle);
}

#[test]
fn waits_are_bounded_and_never_pass_the_deadline() {
    let d = record(Status::InProgress);
    let wait = |ms| decide(&d, &Event::Step(Outcome::Continue(ms)), NOW).unwrap().next;
    assert_eq!(wait(0), Next::Step(MIN_STEP_DELAY));
    assert_eq!(wait(3_600_000), Next::Step(MAX_STEP_DELAY));
    let mut near = record(Status::InProgress);
    near.last_progress_at_ms = NOW - 599_000;
    let next = decide(&near, &Event::Step(Outcome::Continue(30_000)), NOW).unwrap().next;
    assert_eq!(next, Next::Step(Duration::from_millis(1_050)));
}

#[test]
fn hooks_run_before_the_outcome_they_guard() {
    let mut d = record(Status::InProgress);
    d.attempt = 0;
    d.spec.hooks.pre = vec!["command:true".into()];
    d.spec.hooks.verify = vec!["command:true".into()];
    d.spec.hooks.post = vec!["command:true".into()];
    d.spec.hooks.rollback = vec!["command:true".into()];
    assert_eq!(decide(&d, &Event::Poll, NOW).unwrap().next, Next::RunHooks(HookStage::Pre));
    d.hook_runs.done.push(HookStage::Pre);
    assert_eq!(decide(&d, &Event::Poll, NOW).unwrap().next, Next::Step(Duration::ZERO));
    assert!(!verified(&d));
    let step = |d: &Deployment, o: Outcome| decide(d, &Event::Step(o), NOW).unwrap().next;
    assert_eq!(step(&d, Outcome::Verify), Next::RunHooks(HookStage::Verify));
    assert_eq!(step(&d, Outcome::Done), Next::RunHooks(HookStage::Post));
    d.hook_runs.done.extend([HookStage::Verify, HookStage::Post]);
    assert!(verified(&d));
    assert_eq!(step(&d, Outcome::Done), Next::Finish);

    let mut back = record(Status::RollingBack);
    back.spec.hooks = d.spec.hooks.clone();
    assert_eq!(step(&back, Outcome::Failed("x".into())), Next::RunHooks(HookStage::Rollback));
    back.hook_runs.done.push(HookStage::Rollback);
    assert!(matches!(step(&back, Outcome::Failed("x".into())), Next::Restore(_)));
}

#[test]
fn images_are_pulled_before_anything_runs_and_a_failed_pull_changes_nothing() {
    let mut d = record(Status::InProgress);
    d.attempt = 0;
    d.spec.hooks.pre = vec!["command:true".into()];
    d.images.clear();
    assert_eq!(decide(&d, &Event::Poll, NOW).unwrap().next, Next::PullImages);
    let pulled = decide(&d, &Event::Images { failure: None }, NOW).unwrap();
    assert_eq!((pulled.change, pulled.next), (None, Next::Step(Duration::ZERO)));
    let failed = decide(&d, &Event::Images { failure: Some("demo:v2 not found".into()) }, NOW).unwrap();
    let change = failed.change.unwrap();
    assert_eq!(change.status, Status::Failed);
    assert_eq!(
        change.message,
        "demo:v2 not found; the deployment stopped before it changed anything, and r1 still serves"
    );
    assert_eq!(failed.next, Next::Idle);
    // Pinned, the pre hooks come next; a rollback phase never pulls.
    d.images.insert("demo:v2".into(), "demo@sha256:00".into());
    assert_eq!(decide(&d, &Event::Poll, NOW).unwrap().next, Next::RunHooks(HookStage::Pre));
    let mut back = record(Status::RollingBack);
    back.images.clear();
    assert_eq!(decide(&back, &Event::Poll, NOW).unwrap().next, Next::Step(Duration::ZERO));
    // Past its first step without pins (begun before pins existed): it goes on as named.
    d.images.clear();
    d.attempt = 2;
    d.hook_runs.done.push(HookStage::Pre);
    assert_eq!(decide(&d, &Event::Poll, NOW).unwrap().next, Next::Step(Duration::ZERO));
}

#[test]
fn a_failed_hook_acts_by_its_stage() {
    let d = record(Status::InProgress);
    let failed =
        |d: &Deployment, stage| decide(d, &Event::Hooks { stage, failure: Some("exit 1".into()) }, NOW).unwrap();
    let pre = failed(&d, HookStage::Pre).change.unwrap();
    assert_eq!(pre.status, Status::Failed);
    assert_eq!(pre.message, "exit 1; the deployment stopped before it changed anything, and r1 still serves");
    let post = failed(&d, HookStage::Post);
    assert_eq!(post.change, None);
    assert_eq!(post.note.unwrap().0, Level::Warn);
    let mut strict = d.clone();
    strict.spec.hooks.post_failure = PostHookFailure::Rollback;
    let change = failed(&strict, HookStage::Post).change.unwrap();
    assert_eq!(change.error.as_deref(), Some("exit 1 (--post-hook-failure rollback)"));
    assert_eq!(failed(&record(Status::RollingBack), HookStage::Rollback).next, Next::Step(Duration::ZERO));
}

#[test]
fn a_change_applies_to_a_record_as_the_store_applies_it() {
    let mut d = record(Status::AwaitingApproval);
    let decision = decide(&d, &Event::Control(Control::Promote), NOW).unwrap();
    decision.change.unwrap().apply(&mut d, NOW);
    assert_eq!((d.status, d.promoted, d.promotions, d.last_progress_at_ms), (Status::InProgress, true, 1, NOW));
    let decision = decide(&d, &Event::Step(Outcome::Failed("boom".into())), NOW + 5).unwrap();
    decision.change.unwrap().apply(&mut d, NOW + 5);
    assert_eq!((d.phase, d.attempt, d.phase_started_at_ms), (Phase::Rollback, 0, NOW + 5));
    assert_eq!((d.error.as_deref(), d.rollback_kind), (Some("boom"), Some(RollbackKind::Failure)));
}
