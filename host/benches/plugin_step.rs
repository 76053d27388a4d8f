//! What one plugin step costs: instantiate a strategy component in a fresh sandbox and
//! call `step` once (the SDK loads and saves its typed state; no other host work).
//!
//! Run: `cargo bench -p hivemind --bench plugin_step` (a release build). It also prints
//! how long a component takes from bytes to usable (compile, type-check, info()), and
//! the same step written in Python (componentize-py, when it is installed).

#[path = "../../tests/e2e/common/mod.rs"]
#[allow(unused_imports)]
mod common;

use hivemind::health::HttpCheck;
use hivemind::model::Origin;
use hivemind::plugins::{Limits, Phase, PluginHost, PluginState, Scope, StepCaps, StepContext, StepOutcome, wit};
use hivemind::router::Router;
use hivemind::runtime::{Fleet, ProcessDriver};
use hivemind::services::Services;
use hivemind::store::{StepWrites, Store};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const WARMUP: usize = 200;
const STEPS: usize = 5_000;

fn main() {
    let bytes = std::fs::read(common::test_plugin("noop")).expect("the noop test plugin");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async move {
        let data = tempfile::tempdir().unwrap();
        let store = Store::open(data.path()).await.unwrap();
        let host = PluginHost::new(Limits::default(), Default::default(), None).await.unwrap();

        // A restart with the compiled-code cache against one without it.
        let cache = data.path().join("compiled");
        let timed = |dir: Option<std::path::PathBuf>| async move {
            let started = Instant::now();
            let host = PluginHost::new(Limits::default(), Default::default(), dir).await.unwrap();
            (started.elapsed(), host.list().len(), host.cache_hits())
        };
        let (cold, n, _) = timed(None).await;
        let _fill = timed(Some(cache.clone())).await;
        let (warm, _, hits) = timed(Some(cache.clone())).await;
        assert_eq!(hits as usize, n, "every built-in came from the cache");

        // Upload to usable: what `plugin install` costs on the server for a typical
        // strategy (the swap test strategy: scale, probe, split, drain, with the SDK).
        let typical = std::fs::read(common::test_plugin("swap")).expect("the swap test plugin");
        let loaded_at = Instant::now();
        host.load(typical.clone(), None, Origin::Installed, false, "bench".into()).await.unwrap();
        let load = loaded_at.elapsed();
        let plugin = host.load(bytes.clone(), None, Origin::Installed, false, "bench".into()).await.unwrap();

        let driver = Arc::new(ProcessDriver::new(data.path().join("logs")));
        let fleet = Arc::new(Fleet::new(driver, store.clone(), "bench".into(), 64, 64));
        let services = Arc::new(Services::new(fleet, Arc::new(Router::new()), store, Vec::new()));
        let (mut samples, state) = steps(&host, &plugin, &services, WARMUP + STEPS).await;
        samples.drain(..WARMUP);
        let calls: serde_json::Value = serde_json::from_slice(&state.values["sdk.state"]).unwrap();
        assert_eq!(calls["count"], (WARMUP + STEPS) as u64, "the typed state survived every step");
        let rust = summary(samples);
        println!("plugin step (instantiate + step, noop strategy in Rust, {} bytes), {STEPS} samples:", bytes.len());
        rust.print();
        python_step(&host, &services, &rust).await;
        println!(
            "upload to usable, a typical strategy of {} KB (compile + type-check + info()): {:.1} ms",
            typical.len() / 1024,
            load.as_secs_f64() * 1e3
        );
        println!(
            "start-up with {n} built-in plugins: {:.1} ms compiling, {:.1} ms from the compiled-code cache ({:.1} ms per plugin), {:.1}x faster",
            cold.as_secs_f64() * 1e3,
            warm.as_secs_f64() * 1e3,
            warm.as_secs_f64() * 1e3 / n as f64,
            cold.as_secs_f64() / warm.as_secs_f64()
        );
    });
    compare_compiled_code_caches();
}

/// Runs `n` steps of `plugin` as the step loop does (a fresh sandbox each, the state
/// carried over); returns each step's time and the state at the end.
async fn steps(
    host: &PluginHost,
    plugin: &hivemind::plugins::LoadedPlugin,
    services: &Arc<Services>,
    n: usize,
) -> (Vec<Duration>, PluginState) {
    let release = wit::Release { version: "r1".into(), image: "true".into(), replicas: 1 };
    let deployment = wit::Deployment {
        id: "dep-bench".into(),
        app: "bench".into(),
        target: release.clone(),
        previous: None,
        variants: Vec::new(),
        params: Vec::new(),
        health: wit::HealthCheck { path: "/".into(), timeout_ms: 1000, ready_timeout_ms: 1000 },
    };
    let context =
        StepContext { phase: Phase::Deploy, attempt: 0, elapsed_ms: 0, promoted: false, winner: None, verified: true };
    let mut state = PluginState::default();
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let caps = StepCaps {
            scope: Scope {
                app: "bench".into(),
                deployment_id: "dep-bench".into(),
                target: None,
                versions: HashMap::from([(
                    "r1".into(),
                    hivemind::model::Release {
                        version: "r1".into(),
                        image: "true".into(),
                        replicas: 1,
                        env: Default::default(),
                        secrets: Default::default(),
                        resources: Default::default(),
                        pinned: None,
                    },
                )]),
                container_port: 8080,
                health_port: None,
                platform: services.clone(),
            },
            health: HttpCheck { path: "/".into(), timeout: Duration::from_secs(1) },
            metrics_endpoint: "/metrics".into(),
            rollback_of: None,
            promotions: 0,
            state,
            writes: StepWrites::default(),
        };
        let started = Instant::now();
        let (outcome, caps) = host.step(plugin, caps, &deployment, &context, std::future::pending()).await;
        let took = started.elapsed();
        assert!(matches!(outcome, Some(Ok(StepOutcome::Done))), "{outcome:?}");
        // As the step loop does once the store holds the step's writes.
        state = caps.state;
        state.commit(&caps.writes.state);
        samples.push(took);
    }
    (samples, state)
}

/// A sorted set of step times.
struct Summary(Vec<Duration>);

fn summary(mut samples: Vec<Duration>) -> Summary {
    samples.sort();
    Summary(samples)
}

impl Summary {
    fn at(&self, q: f64) -> Duration {
        self.0[((self.0.len() as f64 * q) as usize).min(self.0.len() - 1)]
    }

    fn print(&self) {
        let mean = self.0.iter().sum::<Duration>() / self.0.len() as u32;
        println!("  median {:>10.1} µs", self.at(0.5).as_secs_f64() * 1e6);
        println!("  p99    {:>10.1} µs", self.at(0.99).as_secs_f64() * 1e6);
        println!("  mean   {:>10.1} µs", mean.as_secs_f64() * 1e6);
    }
}

/// The same step written in Python: a strategy that saves a counter with `state.set` and
/// is done, built with componentize-py (skipped, with a note, if it is not installed).
async fn python_step(host: &PluginHost, services: &Arc<Services>, rust: &Summary) {
    const PYTHON_STEPS: usize = 300;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("app.py"),
        r#"import wit_world
from wit_world import StepOutcome_Done
from wit_world.imports import state
from wit_world.imports.types import PluginInfo


class WitWorld(wit_world.WitWorld):
    def info(self):
        return PluginInfo(name="python-noop", version="0.1.0", description="Counts its steps (benchmark)")

    def validate(self, deployment):
        pass

    def step(self, deployment, cx):
        count = int(state.get("count") or b"0")
        state.set("count", str(count + 1).encode())
        return StepOutcome_Done()
"#,
    )
    .unwrap();
    let wasm = dir.path().join("python-noop.wasm");
    let built = std::process::Command::new("componentize-py")
        .arg("-d")
        .arg(common::repo_root().join("sdk/wit"))
        .args(["-w", "strategy", "componentize", "--stub-wasi", "app", "-o"])
        .arg(&wasm)
        .current_dir(dir.path())
        .output();
    match built {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!("componentize-py failed: {}", String::from_utf8_lossy(&out.stderr)),
        Err(_) => {
            println!("the same step in Python: skipped (pip install componentize-py to measure it)");
            return;
        }
    }
    let bytes = std::fs::read(&wasm).unwrap();
    let started = Instant::now();
    let plugin = host.load(bytes.clone(), None, Origin::Installed, false, "bench".into()).await.unwrap();
    let load = started.elapsed();
    let (mut samples, state) = steps(host, &plugin, services, 20 + PYTHON_STEPS).await;
    samples.drain(..20);
    assert_eq!(state.values["count"], (20 + PYTHON_STEPS).to_string().into_bytes(), "the state survived every step");
    let python = summary(samples);
    println!("the same step in Python (componentize-py, {:.1} MB), {PYTHON_STEPS} samples:", bytes.len() as f64 / 1e6);
    python.print();
    println!(
        "  a Python step costs {:.0}x a Rust one (median); upload to usable {:.1} s",
        python.at(0.5).as_secs_f64() / rust.at(0.5).as_secs_f64(),
        load.as_secs_f64()
    );
}

/// Ours (each component's compiled code written once with `serialize`, mapped back with
/// `deserialize_file`) against wasmtime's own (`Config::cache`, which hashes the bytes,
/// and compresses what it stores), loading the same components warm.
fn compare_compiled_code_caches() {
    use wasmtime::component::Component;
    use wasmtime::{Cache, CacheConfig, Config, Engine};
    let built = common::repo_root().join("target/wasm-plugins/wasm32-wasip2/release");
    let components: Vec<Vec<u8>> = std::fs::read_dir(&built)
        .expect("the built-in plugins were built")
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "wasm"))
        .map(|e| std::fs::read(e.path()).unwrap())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let config = || {
        let mut config = Config::new();
        config.consume_fuel(true).epoch_interruption(true);
        config
    };

    let plain = Engine::new(&config()).unwrap();
    let mut ours = Vec::new();
    for (i, bytes) in components.iter().enumerate() {
        let path = dir.path().join(format!("{i}.cwasm"));
        std::fs::write(&path, Component::new(&plain, bytes).unwrap().serialize().unwrap()).unwrap();
        ours.push(path);
    }
    let started = Instant::now();
    for path in &ours {
        // SAFETY: the files were written just above by this engine's `serialize`.
        unsafe { Component::deserialize_file(&plain, path) }.unwrap();
    }
    let ours_took = started.elapsed();

    let mut cache = CacheConfig::new();
    cache.with_directory(dir.path().join("wasmtime"));
    let mut cached = config();
    cached.cache(Some(Cache::new(cache).unwrap()));
    let theirs = Engine::new(&cached).unwrap();
    for bytes in &components {
        Component::new(&theirs, bytes).unwrap();
    }
    // wasmtime writes its cache from a worker thread: give it time to land.
    std::thread::sleep(Duration::from_secs(2));
    let started = Instant::now();
    for bytes in &components {
        Component::new(&theirs, bytes).unwrap();
    }
    let theirs_took = started.elapsed();
    println!(
        "compiled-code cache, {} built-ins warm: ours {:.1} ms, wasmtime's Config::cache {:.1} ms ({:.1}x)",
        components.len(),
        ours_took.as_secs_f64() * 1e3,
        theirs_took.as_secs_f64() * 1e3,
        theirs_took.as_secs_f64() / ours_took.as_secs_f64()
    );
}
