//! The engine's decisions, tested without a server: the real engine, store (a SQLite file
//! in a temporary dir), plugin host (the built-in strategies), fleet, router and prober,
//! with replicas from the in-memory driver (`runtime::memory`): tasks answering HTTP on
//! loopback, started and stopped in microseconds. Each test checks what a user would:
//! the status and error, the events, which replicas run and where the router sends
//! traffic.

mod controls;
mod heal;

use super::{Engine, EngineOptions};
use crate::error::UserError;
use crate::model::{Deployment, DeploymentSpec, Status};
use crate::plugins::{Limits, PluginHost};
use crate::router::Router;
use crate::runtime::memory::MemoryDriver;
use crate::runtime::{Driver, Fleet};
use crate::store::Store;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Compiled built-ins, shared by every test (and test run): a world starts in milliseconds.
fn plugin_cache() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/engine-tests-compiled")
}

/// An engine and everything it drives, on a data dir of its own.
struct World {
    engine: Arc<Engine>,
    store: Store,
    router: Arc<Router>,
    driver: Arc<MemoryDriver>,
    /// Kept for the world's life: the data dir goes with it.
    _dir: tempfile::TempDir,
}

impl World {
    async fn new() -> World {
        World::with(16, 100).await
    }

    async fn with(max_replicas: u32, history_limit: u32) -> World {
        let dir = tempfile::tempdir().unwrap();
        let driver = Arc::new(MemoryDriver::default());
        let (engine, store, router) = start(dir.path(), driver.clone(), max_replicas, history_limit).await;
        World { engine, store, router, driver, _dir: dir }
    }

    async fn deploy(&self, app: &str, image: &str, strategy: &str, replicas: u32) -> Result<Deployment, UserError> {
        self.engine.deployments.deploy(spec(app, image, strategy, replicas, &[])).await
    }

    /// Deploys and waits for the end; panics if admission refuses.
    async fn deployed(&self, app: &str, image: &str, strategy: &str, replicas: u32) -> Deployment {
        let d = self.deploy(app, image, strategy, replicas).await.unwrap();
        self.settled(&d.id).await
    }

    async fn get(&self, id: &str) -> Deployment {
        self.store.deployment(id).await.unwrap().unwrap()
    }

    /// Waits until the deployment ends or awaits approval.
    async fn settled(&self, id: &str) -> Deployment {
        self.until(id, "it settles", |d| d.status.is_terminal() || d.status == Status::AwaitingApproval).await
    }

    async fn until(&self, id: &str, what: &str, done: impl Fn(&Deployment) -> bool) -> Deployment {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let d = self.get(id).await;
            if done(&d) {
                return d;
            }
            assert!(Instant::now() < deadline, "deployment {id}: timed out waiting until {what}: {d:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn events(&self, id: &str) -> Vec<String> {
        self.store.events(id, 0).await.unwrap().into_iter().map(|e| e.message).collect()
    }

    /// The versions of the app's replicas, sorted.
    async fn versions(&self, app: &str) -> Vec<String> {
        let mut v: Vec<String> =
            self.engine.ground.services.fleet.list(app).await.into_iter().map(|r| r.version).collect();
        v.sort();
        v
    }

    fn split(&self, app: &str) -> Vec<(String, u32)> {
        self.router.split(app).0.to_vec()
    }

    /// The app's replicas of `version` that are healthy now.
    async fn healthy(&self, app: &str, version: &str) -> usize {
        let replicas = self.engine.ground.services.fleet.list(app).await;
        replicas.iter().filter(|r| r.version == version && self.router.is_healthy(app, &r.id)).count()
    }

    /// Waits until `check` holds, polling every 20 ms, for at most `timeout`.
    async fn eventually<F: std::future::Future<Output = bool>>(
        &self,
        what: &str,
        timeout: Duration,
        check: impl Fn() -> F,
    ) {
        let deadline = Instant::now() + timeout;
        while !check().await {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn app_events(&self, app: &str) -> Vec<(i64, String)> {
        self.store.app_events(app, 0).await.unwrap().into_iter().map(|e| (e.at_ms, e.message)).collect()
    }

    async fn release(&self, app: &str) -> Option<String> {
        self.store.app(app).await.unwrap().and_then(|a| a.release).map(|r| r.version)
    }
}

/// An engine on `dir` over `driver`, started as `hivemind serve` starts one.
async fn start(
    dir: &Path,
    driver: Arc<MemoryDriver>,
    max_replicas: u32,
    history_limit: u32,
) -> (Arc<Engine>, Store, Arc<Router>) {
    let store = Store::open(dir).await.unwrap();
    let plugins = PluginHost::new(Limits::default(), Default::default(), Some(plugin_cache())).await.unwrap();
    let server_id = store.server_id().await.unwrap();
    let fleet = Fleet::new(driver as Arc<dyn Driver>, store.clone(), server_id, max_replicas, max_replicas.div_ceil(2));
    let router = Arc::new(Router::new());
    let options = EngineOptions {
        router_ip: [127, 0, 0, 1].into(),
        history_limit,
        targets: Vec::new(),
        hook_allowed_hosts: Vec::new(),
        probe_interval: Duration::from_millis(200),
        data_dir: dir.to_path_buf(),
        acme: None,
        resumed_because: "server restarted".into(),
        pull: Default::default(),
    };
    let registries = Arc::new(crate::Registries::new(store.clone(), Default::default()));
    let engine = Engine::new(store.clone(), plugins, Arc::new(fleet), router.clone(), registries, options);
    engine.start().await.unwrap();
    (Arc::new(engine), store, router)
}

fn spec(app: &str, image: &str, strategy: &str, replicas: u32, params: &[(&str, &str)]) -> DeploymentSpec {
    DeploymentSpec {
        strategy: strategy.into(),
        replicas,
        params: params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
        ..DeploymentSpec::new(app, image)
    }
}

/// A zero-downtime rollout slow enough to act on: one replica a batch, a second between.
fn slow(app: &str, image: &str) -> DeploymentSpec {
    spec(app, image, "zero-downtime", 3, &[("batch-size", "1"), ("batch-delay", "1"), ("drain-timeout", "1")])
}

// ---- admission ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_deployment_creates_the_app_and_serves_its_release() {
    let w = World::new().await;
    let d = w.deployed("web", "ok", "simple", 2).await;
    assert_eq!(d.status, Status::Completed, "{d:?}");
    assert_eq!(d.target_version, "r1");
    assert_eq!(w.release("web").await.as_deref(), Some("r1"));
    assert_eq!(w.versions("web").await, ["r1", "r1"]);
    assert_eq!(w.split("web"), [("r1".to_string(), 100)]);
    let events = w.events(&d.id).await;
    assert!(events[0].starts_with("created: r1 of app web with strategy simple"), "{events:?}");
    assert!(events.iter().any(|e| e == "r1 serves: 2 replicas of ok"), "{events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_release_replaces_the_first_without_a_gap() {
    let w = World::new().await;
    w.deployed("web", "ok", "simple", 3).await;
    let d = w.deployed("web", "ok", "rolling-update", 3).await;
    assert_eq!(d.status, Status::Completed, "{d:?}");
    assert_eq!(d.previous.as_ref().map(|p| p.version.as_str()), Some("r1"));
    assert_eq!(w.versions("web").await, ["r2", "r2", "r2"]);
    assert_eq!(w.split("web"), [("r2".to_string(), 100)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_strategy_is_refused_and_nothing_is_recorded() {
    let w = World::new().await;
    let e = w.deploy("web", "ok", "nope", 1).await.unwrap_err();
    assert_eq!((e.status, e.code.as_str()), (400, "invalid_strategy"));
    assert!(e.message.starts_with("unknown strategy `nope`; available: ") && e.message.contains("canary"), "{e}");
    assert!(w.store.apps().await.unwrap().is_empty());
    assert!(w.store.deployments(None, 10).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_the_runtime_cannot_start_is_refused_before_anything_changes() {
    let w = World::new().await;
    let e = w.deploy("web", "bogus", "simple", 1).await.unwrap_err();
    assert_eq!(e.code, "invalid_image");
    assert!(e.message.contains("`bogus` is not one of ok, sick, crash"), "{e}");
    let e = w
        .engine
        .deployments
        .deploy(DeploymentSpec { replicas: 0, ..spec("web", "ok", "simple", 1, &[]) })
        .await
        .unwrap_err();
    assert_eq!(e.message, "replicas must be at least 1 (got 0)");
    assert!(w.store.apps().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_runs_one_deployment_at_a_time() {
    let w = World::new().await;
    w.deployed("web", "ok", "simple", 1).await;
    let first = w.engine.deployments.deploy(slow("web", "ok")).await.unwrap();
    let e = w.deploy("web", "ok", "simple", 1).await.unwrap_err();
    assert_eq!((e.status, e.code.as_str()), (409, "deployment_in_progress"));
    assert!(e.message.contains(&format!("app `web` has deployment {} in progress", first.id)), "{e}");
    w.engine.deployments.abort(&first.id).await.unwrap();
    w.settled(&first.id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_over_the_apps_quota_are_refused() {
    let w = World::with(8, 100).await;
    let e = w.deploy("web", "ok", "simple", 5).await.unwrap_err();
    assert_eq!(e.field.as_deref(), Some("replicas"));
    assert!(e.message.contains("its replica quota is 4"), "{e}");
    let mut own = spec("web", "ok", "simple", 5, &[]);
    own.replica_quota = Some(6);
    let d = w.engine.deployments.deploy(own).await.unwrap();
    assert_eq!(w.settled(&d.id).await.status, Status::Completed);
    assert_eq!(w.versions("web").await.len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_deployment_runs_only_when_executed() {
    let w = World::new().await;
    let d = w.engine.deployments.create(spec("web", "ok", "simple", 2, &[])).await.unwrap();
    assert_eq!(d.status, Status::Pending);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(w.versions("web").await.is_empty(), "a pending deployment starts nothing");
    w.engine.deployments.execute(&d.id).await.unwrap();
    assert_eq!(w.settled(&d.id).await.status, Status::Completed);
    let e = w.engine.deployments.execute(&d.id).await.unwrap_err();
    assert_eq!((e.status, e.code.as_str()), (409, "not_pending"));
}

// ---- the phase machine ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_that_never_gets_healthy_is_rolled_back() {
    let w = World::new().await;
    w.deployed("web", "ok", "simple", 2).await;
    let sick = DeploymentSpec { health_check_timeout: 1, ..spec("web", "sick", "rolling-update", 2, &[]) };
    let d = w.engine.deployments.deploy(sick).await.unwrap();
    let d = w.settled(&d.id).await;
    assert_eq!(d.status, Status::Failed, "{d:?}");
    assert!(d.error.as_deref().unwrap().starts_with("health check failed"), "{d:?}");
    assert!(d.message.ends_with("rolled back: r1 serves again"), "{d:?}");
    assert_eq!(w.versions("web").await, ["r1", "r1"]);
    assert_eq!(w.split("web"), [("r1".to_string(), 100)]);
    assert_eq!(w.release("web").await.as_deref(), Some("r1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_auto_rollback_off_a_failure_leaves_things_for_inspection() {
    let w = World::new().await;
    w.deployed("web", "ok", "simple", 1).await;
    let sick = DeploymentSpec {
        health_check_timeout: 1,
        auto_rollback: false,
        ..spec("web", "sick", "rolling-update", 1, &[])
    };
    let d = w.engine.deployments.deploy(sick).await.unwrap();
    let d = w.settled(&d.id).await;
    assert_eq!(d.status, Status::Failed);
    assert!(d.message.contains("auto-rollback is off"), "{d:?}");
    assert!(w.versions("web").await.contains(&"r2".to_string()), "the failed release stays");
    assert_eq!(w.release("web").await.as_deref(), Some("r1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_exits_at_once_fails_its_release() {
    let w = World::new().await;
    w.deployed("web", "ok", "simple", 1).await;
    let crashing = DeploymentSpec { health_check_timeout: 1, ..spec("web", "crash", "rolling-update", 1, &[]) };
    let d = w.engine.deployments.deploy(crashing).await.unwrap();
    let d = w.settled(&d.id).await;
    assert_eq!(d.status, Status::Failed, "{d:?}");
    assert_eq!(w.versions("web").await, ["r1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_that_stops_advancing_fails_at_its_deadline() {
    let w = World::new().await;
    w.deployed("web", "ok", "simple", 2).await;
    let stuck = DeploymentSpec {
        progress_deadline: 1,
        ..spec("web", "ok", "zero-downtime", 2, &[("batch-size", "1"), ("batch-delay", "30")])
    };
    let d = w.engine.deployments.deploy(stuck).await.unwrap();
    let d = w.settled(&d.id).await;
    assert_eq!(d.status, Status::Failed, "{d:?}");
    assert!(d.error.as_deref().unwrap().starts_with("progress deadline exceeded: no progress for 1 s"), "{d:?}");
    assert_eq!(w.versions("web").await, ["r1", "r1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_identical_steps_share_one_event() {
    let w = World::new().await;
    w.deployed("web", "ok", "simple", 1).await;
    let sick = DeploymentSpec { health_check_timeout: 2, ..spec("web", "sick", "simple", 1, &[]) };
    let d = w.engine.deployments.deploy(sick).await.unwrap();
    w.settled(&d.id).await;
    let events = w.events(&d.id).await;
    let waits: Vec<&String> = events.iter().filter(|e| e.contains("of the deploy phase: continue in 200 ms")).collect();
    assert_eq!(waits.len(), 1, "{events:#?}");
    assert!(waits[0].starts_with("steps ") && waits[0].ends_with(" times)"), "{}", waits[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_deployments_plugin_state_is_deleted() {
    let w = World::new().await;
    w.deployed("web", "ok", "simple", 1).await;
    let d = w.engine.deployments.deploy(slow("web", "ok")).await.unwrap();
    w.until(&d.id, "a step saved state", |d| d.attempt >= 2).await;
    assert!(!w.store.plugin_state_sizes(&d.id).await.unwrap().is_empty(), "the strategy keeps state while it runs");
    assert_eq!(w.settled(&d.id).await.status, Status::Completed);
    assert!(w.store.plugin_state_sizes(&d.id).await.unwrap().is_empty());
}

// ---- a user's controls ----

// ---- restarts ----

/// The engine's runtime is dropped between two steps, as a crash would stop it; a new
/// engine on the same data dir resumes the deployment from its last persisted step.
#[test]
fn a_crash_between_two_steps_resumes_from_the_last_persisted_step() {
    let dir = tempfile::tempdir().unwrap();
    let driver = Arc::new(MemoryDriver::default());

    let first = runtime();
    let id = first.block_on(async {
        let (engine, store, _) = start(dir.path(), driver.clone(), 16, 100).await;
        let d = engine.deployments.deploy(spec("web", "ok", "simple", 3, &[])).await.unwrap();
        assert_eq!(wait(&store, &d.id).await.status, Status::Completed);
        let d = engine.deployments.deploy(slow("web", "ok")).await.unwrap();
        loop {
            if store.deployment(&d.id).await.unwrap().unwrap().attempt >= 3 {
                return d.id;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    first.shutdown_background();

    let second = runtime();
    second.block_on(async {
        let (_engine, store, router) = start(dir.path(), driver.clone(), 16, 100).await;
        let d = wait(&store, &id).await;
        assert_eq!(d.status, Status::Completed, "{d:?}");
        let events: Vec<String> = store.events(&id, 0).await.unwrap().into_iter().map(|e| e.message).collect();
        assert!(
            events.iter().any(|e| e.starts_with("server restarted; resuming the deploy phase at step")),
            "{events:?}"
        );
        assert_eq!(router.split("web").0.to_vec(), [("r2".to_string(), 100)]);
    });
    second.shutdown_background();
}

/// A runtime of a test's own, to drop as a crash would.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

async fn wait(store: &Store, id: &str) -> Deployment {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let d = store.deployment(id).await.unwrap().unwrap();
        if d.status.is_terminal() {
            return d;
        }
        assert!(Instant::now() < deadline, "{d:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn a_restart_forgets_replicas_that_are_gone_and_removes_orphans() {
    let dir = tempfile::tempdir().unwrap();
    let driver = Arc::new(MemoryDriver::default());
    let first = runtime();
    let (gone, server_id) = first.block_on(async {
        let (engine, store, _) = start(dir.path(), driver.clone(), 16, 100).await;
        let d = engine.deployments.deploy(spec("web", "ok", "simple", 2, &[])).await.unwrap();
        wait(&store, &d.id).await;
        let gone = store.replicas().await.unwrap().remove(0);
        (gone, store.server_id().await.unwrap())
    });
    first.shutdown_background();
    // While no server runs: a replica dies, and one appears that no record owns.
    second_hand_stop(&driver, &gone.handle);
    let orphan = driver.plant_orphan("web-r1-0ddba11", &server_id);

    let second = runtime();
    second.block_on(async {
        let (engine, store, _) = start(dir.path(), driver.clone(), 16, 100).await;
        let left = engine.ground.services.fleet.list("web").await;
        assert_eq!(left.len(), 1, "{left:?}");
        assert!(left.iter().all(|r| r.id != gone.id));
        assert!(!driver.knows(&orphan), "the orphan was removed");
        let latest = store.deployments(Some("web"), 1).await.unwrap().remove(0);
        let events: Vec<String> = store.events(&latest.id, 0).await.unwrap().into_iter().map(|e| e.message).collect();
        assert!(
            events.iter().any(|e| e.contains(&format!("replica {} (r1) no longer runs; forgot it", gone.id))),
            "{events:?}"
        );
    });
    second.shutdown_background();
}

fn second_hand_stop(driver: &MemoryDriver, handle: &str) {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    rt.block_on(driver.stop(handle, Duration::ZERO)).unwrap();
}

// ---- housekeeping ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_deployments_beyond_the_history_limit_are_deleted() {
    let w = World::with(16, 2).await;
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(w.deployed("web", "ok", "simple", 1).await.id);
    }
    let kept: Vec<crate::model::DeploymentId> =
        w.store.deployments(Some("web"), 10).await.unwrap().into_iter().map(|d| d.id).collect();
    assert_eq!(kept, [ids[3].clone(), ids[2].clone()]);
    assert!(w.store.events(&ids[0], 0).await.unwrap().is_empty(), "their events went with them");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_an_app_stops_its_replicas_and_refuses_while_it_deploys_unless_forced() {
    let w = World::new().await;
    w.deployed("web", "ok", "simple", 2).await;
    let d = w.engine.deployments.deploy(slow("web", "ok")).await.unwrap();
    let e = w.engine.apps.remove_app("web", false).await.unwrap_err();
    assert_eq!((e.status, e.code.as_str()), (409, "deployment_in_progress"));
    assert!(w.versions("web").await.len() >= 2, "nothing was stopped");
    w.engine.apps.remove_app("web", true).await.unwrap();
    assert!(w.versions("web").await.is_empty());
    assert!(w.store.app("web").await.unwrap().is_none());
    assert!(w.store.deployment(&d.id).await.unwrap().is_none(), "its history went with it");
}
