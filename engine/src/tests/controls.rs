//! A user's controls on a running engine: pause and resume, abort, rollback (of a
//! running and of a completed deployment), promote, and the refusals the machine's table
//! gives, each checked as a user would see it.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_stops_stepping_and_resume_goes_on() {
    let w = World::new().await;
    w.deployed("web", "ok", "simple", 3).await;
    let d = w.engine.deployments.deploy(slow("web", "ok")).await.unwrap();
    w.until(&d.id, "a few steps", |d| d.attempt >= 2).await;
    assert_eq!(w.engine.deployments.pause(&d.id).await.unwrap().status, Status::Paused);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (attempt, versions) = (w.get(&d.id).await.attempt, w.versions("web").await);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(w.get(&d.id).await.attempt, attempt, "a paused deployment took steps");
    assert_eq!(w.versions("web").await, versions, "a paused deployment changed replicas");
    assert_eq!(w.engine.deployments.resume(&d.id).await.unwrap().status, Status::InProgress);
    assert_eq!(w.settled(&d.id).await.status, Status::Completed);
    assert_eq!(w.versions("web").await, ["r2", "r2", "r2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_puts_the_previous_release_back() {
    let w = World::new().await;
    w.deployed("web", "ok", "simple", 3).await;
    let d = w.engine.deployments.deploy(slow("web", "ok")).await.unwrap();
    w.until(&d.id, "a replica of r2", |d| d.attempt >= 2).await;
    assert_eq!(w.engine.deployments.abort(&d.id).await.unwrap().status, Status::RollingBack);
    let d = w.settled(&d.id).await;
    assert_eq!(d.status, Status::Aborted, "{d:?}");
    assert_eq!(w.versions("web").await, ["r1", "r1", "r1"]);
    assert_eq!(w.split("web"), [("r1".to_string(), 100)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborting_a_pending_deployment_changes_nothing() {
    let w = World::new().await;
    w.deployed("web", "ok", "simple", 1).await;
    let d = w.engine.deployments.create(spec("web", "ok", "simple", 1, &[])).await.unwrap();
    let aborted = w.engine.deployments.abort(&d.id).await.unwrap();
    assert_eq!(aborted.status, Status::Aborted);
    assert_eq!(aborted.message, "aborted before it ran; nothing changed");
    assert_eq!(w.versions("web").await, ["r1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_back_a_running_deployment_ends_it_rolled_back() {
    let w = World::new().await;
    w.deployed("web", "ok", "simple", 3).await;
    let d = w.engine.deployments.deploy(slow("web", "ok")).await.unwrap();
    w.until(&d.id, "a few steps", |d| d.attempt >= 2).await;
    w.engine.deployments.rollback(&d.id).await.unwrap();
    let d = w.settled(&d.id).await;
    assert_eq!(d.status, Status::RolledBack, "{d:?}");
    assert_eq!(w.versions("web").await, ["r1", "r1", "r1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_back_a_completed_deployment_brings_the_previous_release_back() {
    let w = World::new().await;
    w.deployed("web", "ok", "simple", 2).await;
    let second = w.deployed("web", "ok", "rolling-update", 2).await;
    let rollback = w.engine.deployments.rollback(&second.id).await.unwrap();
    assert_ne!(rollback.id, second.id, "a new deployment brings r1 back");
    assert_eq!(rollback.target_version, "r1");
    assert_eq!(rollback.rollback_of.as_deref(), Some(second.id.as_str()));
    assert_eq!(w.settled(&rollback.id).await.status, Status::Completed);
    assert_eq!(w.get(&second.id).await.status, Status::RolledBack);
    assert_eq!(w.release("web").await.as_deref(), Some("r1"));
    assert_eq!(w.versions("web").await, ["r1", "r1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_current_release_can_be_rolled_back() {
    let w = World::new().await;
    w.deployed("web", "ok", "simple", 1).await;
    let second = w.deployed("web", "ok", "simple", 1).await;
    w.deployed("web", "ok", "simple", 1).await;
    let e = w.engine.deployments.rollback(&second.id).await.unwrap_err();
    assert_eq!((e.status, e.code.as_str()), (409, "not_current_release"));
    assert!(e.message.contains("app `web` now serves r3"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promote_releases_a_manual_gate_once() {
    let w = World::new().await;
    w.deployed("web", "ok", "simple", 1).await;
    let gated = spec("web", "ok", "blue-green", 1, &[("auto-promote", "false"), ("scale-down-delay", "0")]);
    let d = w.engine.deployments.deploy(gated).await.unwrap();
    let d = w.settled(&d.id).await;
    assert_eq!(d.status, Status::AwaitingApproval, "{d:?}");
    assert_eq!(w.split("web"), [("r1".to_string(), 100), ("r2".to_string(), 0)], "green waits on its preview route");
    let promoted = w.engine.deployments.promote(&d.id).await.unwrap();
    assert_eq!((promoted.status, promoted.promotions), (Status::InProgress, 1));
    assert_eq!(w.settled(&d.id).await.status, Status::Completed);
    assert_eq!(w.split("web"), [("r2".to_string(), 100)]);
    let e = w.engine.deployments.promote(&d.id).await.unwrap_err();
    assert_eq!(e.code, "cannot_promote");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controls_refuse_what_the_status_does_not_allow_and_say_why() {
    let w = World::new().await;
    let d = w.deployed("web", "ok", "simple", 1).await;
    for (result, code) in [
        (w.engine.deployments.pause(&d.id).await, "cannot_pause"),
        (w.engine.deployments.resume(&d.id).await, "cannot_resume"),
        (w.engine.deployments.abort(&d.id).await, "cannot_abort"),
    ] {
        let e = result.unwrap_err();
        assert_eq!((e.status, e.code.as_str()), (409, code));
        assert!(e.message.contains("it is completed"), "{e}");
    }
    let e = w.engine.deployments.select_winner(&d.id, "a").await.unwrap_err();
    assert_eq!(e.code, "not_an_ab_test");
    let e = w.engine.deployments.pause("dep-00000000").await.unwrap_err();
    assert_eq!((e.status, e.code.as_str()), (404, "deployment_not_found"));
}

// ---- races ----

/// A step waiting on a replica that takes 3 s to start: the abort acts at once, the
/// start finishes on its own task, and the rollback removes what it started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abort_interrupts_a_step_waiting_on_a_slow_start() {
    let w = World::new().await;
    w.deployed("web", "ok", "simple", 1).await;
    let d = w.engine.deployments.deploy(spec("web", "slow-start:3000", "rolling-update", 1, &[])).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let asked = Instant::now();
    w.engine.deployments.abort(&d.id).await.unwrap();
    let interrupted = async {
        loop {
            if w.events(&d.id).await.iter().any(|e| e.contains("was interrupted after")) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(1), interrupted).await.expect("the step was interrupted within 1 s");
    assert!(asked.elapsed() < Duration::from_secs(1));
    let d = w.settled(&d.id).await;
    assert_eq!(d.status, Status::Aborted, "{d:?}");
    assert_eq!(w.versions("web").await, ["r1"], "what the interrupted step started is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pausing_and_resuming_at_once_loses_no_step() {
    let w = World::new().await;
    w.deployed("web", "ok", "simple", 3).await;
    let d = w.engine.deployments.deploy(slow("web", "ok")).await.unwrap();
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        w.engine.deployments.pause(&d.id).await.unwrap();
        w.engine.deployments.resume(&d.id).await.unwrap();
    }
    let d = w.settled(&d.id).await;
    assert_eq!(d.status, Status::Completed, "{d:?}");
    assert_eq!(w.versions("web").await, ["r2", "r2", "r2"]);
}
