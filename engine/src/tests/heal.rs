//! The healer: between deployments it keeps each app's release at its desired count.

use super::*;

/// The handle of one of the app's replicas.
async fn a_replica(w: &World, app: &str) -> crate::model::ReplicaRecord {
    w.engine.ground.services.fleet.list(app).await.remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_dies_is_replaced_with_an_event() {
    let w = World::new().await;
    w.deployed("web", "ok", "simple", 3).await;
    let victim = a_replica(&w, "web").await;
    w.driver.kill(&victim.handle);
    w.eventually("3 healthy replicas again, none of them the victim", Duration::from_secs(5), || async {
        let gone = w.engine.ground.services.fleet.list("web").await.iter().all(|r| r.id != victim.id);
        gone && w.healthy("web", "r1").await == 3
    })
    .await;
    let events = w.app_events("web").await;
    let died = format!("replica {} of r1 exited (exited with code 1); replacing it in 0 s", victim.id);
    assert!(events.iter().any(|(_, e)| *e == died), "{events:#?}");
    assert!(events.iter().any(|(_, e)| e.starts_with("started replica web-r1-")), "{events:#?}");
    let mut metrics = String::new();
    w.engine.ground.healer.prometheus(&mut metrics, |_| true);
    assert!(
        metrics.contains("hivemind_replica_restarts_total{app=\"web\",version=\"r1\",reason=\"exited\"} 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_keeps_failing_its_probes_is_replaced() {
    let w = World::new().await;
    w.deployed("web", "ok", "simple", 2).await;
    let sick = a_replica(&w, "web").await;
    w.driver.answer_with(&sick.handle, 503);
    w.eventually("the sick replica replaced", Duration::from_secs(5), || async {
        let replicas = w.engine.ground.services.fleet.list("web").await;
        replicas.iter().all(|r| r.id != sick.id) && w.healthy("web", "r1").await == 2
    })
    .await;
    let events = w.app_events("web").await;
    assert!(
        events.iter().any(|(_, e)| e.contains(&format!("replica {} of r1 failed 3 health checks in a row", sick.id))),
        "{events:#?}"
    );
}

/// The release's image breaks: each replacement crashes at once, so the slot backs off
/// (at once, then 1 s, 2 s, 4 s) and shows as crash-looping; a good deployment ends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_whose_replicas_keep_crashing_backs_off_and_shows_crash_looping() {
    let w = World::new().await;
    w.deployed("web", "ok", "simple", 1).await;
    w.driver.break_image("ok", true);
    w.driver.kill(&a_replica(&w, "web").await.handle);
    w.eventually("four deaths", Duration::from_secs(15), || async {
        w.app_events("web").await.iter().filter(|(_, e)| e.contains(" exited (")).count() >= 4
    })
    .await;
    let deaths: Vec<i64> =
        w.app_events("web").await.into_iter().filter(|(_, e)| e.contains(" exited (")).map(|(at, _)| at).collect();
    let gaps: Vec<i64> = deaths.windows(2).map(|w| w[1] - w[0]).collect();
    // Each death waits its back-off (plus up to a probe interval to be noticed).
    for (gap, least) in gaps.iter().zip([0, 1_000, 2_000]) {
        assert!(*gap >= least && *gap < least + 1_500, "gaps between deaths {gaps:?}");
    }
    let view = w.engine.apps.app("web").await.unwrap();
    let looping = &view.crash_looping;
    assert_eq!(looping.len(), 1, "{view:?}");
    assert!(looping[0].restarts >= 3 && looping[0].last_exit.as_deref() == Some("exited with code 1"), "{looping:?}");
    assert!(w.app_events("web").await.iter().any(|(_, e)| e.contains("crash-looping: restart 2 in 1 s")));

    // A good deployment replaces the crash-looping release.
    w.driver.break_image("ok", false);
    let d = w.engine.deployments.deploy(spec("web", "ok", "rolling-update", 1, &[])).await.unwrap();
    assert_eq!(w.settled(&d.id).await.status, Status::Completed);
    w.eventually("no crash loop", Duration::from_secs(3), || async {
        w.engine.apps.app("web").await.unwrap().crash_looping.is_empty()
    })
    .await;
    assert_eq!(w.healthy("web", "r2").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_changes_the_count_and_a_scale_down_drains_first() {
    let w = World::new().await;
    w.deployed("web", "ok", "simple", 2).await;
    let up = w.engine.apps.scale_app("web", 5).await.unwrap();
    assert_eq!(up.app.release.unwrap().replicas, 5);
    w.eventually("5 healthy", Duration::from_secs(5), || async { w.healthy("web", "r1").await == 5 }).await;
    w.engine.apps.scale_app("web", 2).await.unwrap();
    w.eventually("2 left", Duration::from_secs(5), || async { w.versions("web").await.len() == 2 }).await;
    let events = w.app_events("web").await;
    assert!(events.iter().any(|(_, e)| e == "scaled r1 from 2 to 5 replicas by request"), "{events:#?}");
    let drained =
        events.iter().filter(|(_, e)| e.starts_with("scaled down: replica ") && e.ends_with("drained and stopped"));
    assert_eq!(drained.count(), 3, "{events:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_is_refused_during_a_deployment_and_beyond_the_quota() {
    let w = World::with(8, 100).await;
    w.deployed("web", "ok", "simple", 2).await;
    let e = w.engine.apps.scale_app("web", 5).await.unwrap_err();
    assert!(e.message.contains("from 1 to app `web`'s replica quota, 4"), "{e}");
    let d = w.engine.deployments.deploy(slow("web", "ok")).await.unwrap();
    let e = w.engine.apps.scale_app("web", 3).await.unwrap_err();
    assert_eq!((e.status, e.code.as_str()), (409, "deployment_in_progress"));
    w.engine.deployments.abort(&d.id).await.unwrap();
    w.settled(&d.id).await;
}

/// While a deployment owns the app (here, paused), a dead replica is the strategy's to
/// deal with; once the deployment ends, the healer brings the count back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_healer_never_fights_a_deployment() {
    let w = World::new().await;
    w.deployed("web", "ok", "simple", 3).await;
    let d = w.engine.deployments.deploy(slow("web", "ok")).await.unwrap();
    w.until(&d.id, "a step", |d| d.attempt >= 1).await;
    w.engine.deployments.pause(&d.id).await.unwrap();
    let before = w.versions("web").await.len();
    let victim = w.engine.ground.services.fleet.list("web").await.into_iter().find(|r| r.version == "r1").unwrap();
    w.driver.kill(&victim.handle);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(w.app_events("web").await.is_empty(), "the healer acted during a deployment");
    assert_eq!(w.versions("web").await.len(), before);
    w.engine.deployments.abort(&d.id).await.unwrap();
    assert_eq!(w.settled(&d.id).await.status, Status::Aborted);
    w.eventually("3 healthy replicas of r1", Duration::from_secs(5), || async { w.healthy("web", "r1").await == 3 })
        .await;
}

/// A replica dies while no server runs: the next server adopts the others and heals.
#[test]
fn after_a_restart_the_healer_replaces_what_died_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let driver = Arc::new(MemoryDriver::default());
    let first = runtime();
    let victim = first.block_on(async {
        let (engine, store, _) = start(dir.path(), driver.clone(), 16, 100).await;
        let d = engine.deployments.deploy(spec("web", "ok", "simple", 2, &[])).await.unwrap();
        wait(&store, &d.id).await;
        store.replicas().await.unwrap().remove(0)
    });
    first.shutdown_background();
    driver.kill(&victim.handle);
    let second = runtime();
    second.block_on(async {
        let (engine, _store, router) = start(dir.path(), driver.clone(), 16, 100).await;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let replicas = engine.ground.services.fleet.list("web").await;
            let healthy = replicas.iter().filter(|r| router.is_healthy("web", &r.id)).count();
            if healthy == 2 && replicas.iter().all(|r| r.id != victim.id) {
                break;
            }
            assert!(Instant::now() < deadline, "not healed: {replicas:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    second.shutdown_background();
}
