//! `hivemind plugin test`: a strategy run against a simulated host, in simulated time.
//!
//! The strategy's component runs in the same sandbox as on a server (fuel, memory,
//! a fresh instance per step), but its capabilities act on `World` — replicas that start
//! in a set time and may fail their probes, a split, requests served with an error rate
//! per version — and its clocks read the simulated time, which moves only when the
//! strategy waits. The driver runs the engine's own state machine (`engine::machine`): validate, deploy
//! steps until done or failed, the rollback phase after a failure, approvals given by a
//! simulated operator. Each scenario then checks that the deployment ended as it should:
//! completed with the new release serving alone, or rolled back with the previous one.

mod drive;
mod host;
mod world;

use crate::engine::machine::{Change, Control, Event, MIN_STEP_DELAY, Next, Outcome, decide, finished};
use crate::engine::machine_outcome;
use crate::health::HttpCheck;
use crate::model::{Deployment, DeploymentSpec, Level, Phase, PluginRef, Release, Status, VariantSpec};
use crate::plugins::{HostState, Limits, PluginState, Scope, StepCaps, StepContext, StepOutcome, StrategyPre};
use crate::plugins::{describe_trap, wit};
use crate::store::StepWrites;
use anyhow::{Result, anyhow, bail};
use host::SimPlatform;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmtime::Store;
use wasmtime::component::Component;
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use world::{Behaviour, SimClock, Spike, World};

pub use hivemind_model::simulation::{Ending, Report, ScenarioReport, Settings, duration};

#[derive(Clone, Copy, PartialEq)]
enum Expect {
    Completed,
    RolledBack,
    /// Either is right: the world does not force one (an error spike that a strategy
    /// without traffic analysis cannot see).
    EitherConsistent,
}

struct Scenario {
    name: &'static str,
    expected: &'static str,
    expect: Expect,
    /// The server crashes after this deploy step (its state writes and outcome lost).
    crash_after_step: Option<u32>,
    behaviour: fn(&Settings, &str) -> Behaviour,
}

fn baseline(settings: &Settings) -> Behaviour {
    Behaviour {
        start_ms: settings.start.as_millis() as u64,
        probe_fail_rate: settings.probe_fail_rate,
        never_healthy: None,
        rps: settings.rps,
        error_rate: settings.error_rate,
        spike: None,
    }
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "healthy release",
        expected: "completed, the new release serving alone",
        expect: Expect::Completed,
        crash_after_step: None,
        behaviour: |s, _| baseline(s),
    },
    Scenario {
        name: "release that never gets healthy",
        expected: "rolled back, the previous release serving",
        expect: Expect::RolledBack,
        crash_after_step: None,
        behaviour: |s, target| Behaviour { never_healthy: Some(target.to_string()), ..baseline(s) },
    },
    Scenario {
        name: "error spike at 50%",
        expected: "rolled back by a strategy that analyses traffic; completed by one that does not",
        expect: Expect::EitherConsistent,
        crash_after_step: None,
        behaviour: |s, target| Behaviour {
            spike: Some(Spike { version: target.to_string(), from_percent: 50, error_rate: 0.3 }),
            ..baseline(s)
        },
    },
    Scenario {
        name: "server crash between two steps",
        expected: "completed, the new release serving alone (the step after the crash runs again)",
        expect: Expect::Completed,
        crash_after_step: Some(3),
        behaviour: |s, _| baseline(s),
    },
];

/// When a simulation gives up on a deployment that does not end.
const MAX_SIMULATED_MS: u64 = 3_600_000;
const MAX_STEPS: u32 = 20_000;
/// Steps in a row that ask to run again at once and change nothing: a busy loop. A server
/// would call it every 50 ms until its progress deadline; the report says so sooner.
const BUSY_STEPS: u32 = 500;
/// How long the simulated operator takes to approve, and when it picks an A/B test's winner.
const OPERATOR_MS: u64 = 30_000;
const AB_WINNER_MS: u64 = 300_000;

/// A compiled strategy, ready to run steps in simulated worlds.
struct Simulation {
    engine: wasmtime::Engine,
    pre: StrategyPre<HostState>,
    limits: Limits,
}

/// Runs every scenario against the strategy component `bytes`.
pub async fn run(bytes: &[u8], settings: &Settings) -> Result<Report> {
    let started = Instant::now();
    // The server's limits: fuel, memory, and the time a call may take.
    let limits = Limits::default();
    let engine = crate::plugins::wasm_engine(&limits)?;
    // The server's own linker: the same imports, bound to the same capability code.
    let (linker, _) = crate::plugins::linkers(&engine)?;
    let component = Component::new(&engine, bytes).map_err(|e| anyhow!("the component does not compile: {e:#}"))?;
    let exports: Vec<String> = component.component_type().exports(&engine).map(|(name, _)| name.to_string()).collect();
    if !exports.iter().any(|e| e == "step") {
        bail!(
            "`plugin test` simulates strategies, and this component exports {} (a hook exports `run`; a strategy `step`)",
            exports.join(", ")
        );
    }
    let pre = linker
        .instantiate_pre(&component)
        .map_err(|e| anyhow!("the component imports something a strategy is not granted: {e:#}"))?;
    let pre = StrategyPre::new(pre).map_err(|e| anyhow!("the component is not a strategy@0.1 component: {e:#}"))?;
    let simulation = Simulation { engine, pre, limits };

    let info = {
        let world = Arc::new(Mutex::new(World::serving("v1", 1, baseline(settings), 0)));
        let mut store = simulation.store(&world, None);
        let instance = simulation.pre.instantiate_async(&mut store).await?;
        instance
            .call_info(&mut store)
            .await
            .map_err(|e| anyhow!("info() failed: {}", describe_trap(&e, store.data().stderr())))?
    };
    let mut deployment = deployment(settings, false);
    let mut variants = Vec::new();
    if let Err(why) = simulation.validate(&deployment).await?
        && why.contains("variant")
    {
        // A strategy for A/B tests only: run it with two variants.
        deployment = self::deployment(settings, true);
        variants = deployment.variants.iter().map(|v| v.release.version.clone()).collect();
    }
    let mut scenarios = Vec::new();
    for (i, scenario) in SCENARIOS.iter().enumerate() {
        scenarios.push(simulation.scenario(scenario, &deployment, settings, i as u64 + 1).await?);
    }
    Ok(Report {
        plugin: info.name,
        version: info.version,
        variants,
        scenarios,
        wall_ms: started.elapsed().as_millis() as u64,
    })
}

/// The simulated deployment: `v1` serves, `v2` (or variants `v2-a` and `v2-b`) comes.
fn deployment(settings: &Settings, ab: bool) -> wit::Deployment {
    let release = |version: &str| wit::Release {
        version: version.into(),
        image: format!("registry.local/sim:{version}"),
        replicas: settings.replicas,
    };
    let variants = if ab {
        vec![
            wit::Variant { release: release("v2-a"), percentage: 50 },
            wit::Variant { release: release("v2-b"), percentage: 50 },
        ]
    } else {
        Vec::new()
    };
    wit::Deployment {
        id: "dep-simulated".into(),
        app: world::APP.into(),
        target: release(if ab { "v2-a" } else { "v2" }),
        previous: Some(release("v1")),
        variants,
        params: settings.params.clone(),
        health: wit::HealthCheck { path: "/health".into(), timeout_ms: 1000, ready_timeout_ms: 30_000 },
    }
}

impl Simulation {
    /// A fresh store, as a server makes one for each call, with the WASI clocks reading
    /// the simulated time, and a step's capabilities (none for `info` and `validate`).
    fn store(&self, world: &Arc<Mutex<World>>, step: Option<StepCaps>) -> Store<HostState> {
        let clock = world.lock().unwrap().clock.clone();
        let stderr = MemoryOutputPipe::new(16 << 10);
        let wasi = WasiCtx::builder()
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .wall_clock(SimClock(clock.clone()))
            .monotonic_clock(SimClock(clock))
            .build();
        crate::plugins::new_store(&self.engine, &self.limits, wasi, stderr, step, None)
    }

    async fn validate(&self, deployment: &wit::Deployment) -> Result<Result<(), String>> {
        let world = Arc::new(Mutex::new(World::serving("v1", 1, baseline(&Settings::default()), 0)));
        let mut store = self.store(&world, None);
        let call = async {
            let instance = self.pre.instantiate_async(&mut store).await?;
            instance.call_validate(&mut store, deployment).await
        };
        match tokio::time::timeout(self.limits.timeout, call).await {
            Err(_) => bail!("validate() did not return within {} s", self.limits.timeout.as_secs()),
            Ok(Err(e)) => bail!("validate() failed: {}", describe_trap(&e, store.data().stderr())),
            Ok(Ok(verdict)) => Ok(verdict),
        }
    }

    /// One step in a fresh sandbox, with the capabilities a server gives a step of
    /// `record` over the simulated world; returns its outcome (or why it failed) and
    /// what it wrote.
    async fn step(
        &self,
        world: &Arc<Mutex<World>>,
        record: &Deployment,
        deployment: &wit::Deployment,
        context: &StepContext,
        state: &HashMap<String, Vec<u8>>,
    ) -> (Result<StepOutcome, String>, StepWrites) {
        let caps = StepCaps {
            scope: Scope::of(record, Arc::new(SimPlatform::new(world.clone()))),
            health: HttpCheck { path: "/health".into(), timeout: Duration::from_secs(1) },
            metrics_endpoint: "/metrics".into(),
            rollback_of: None,
            promotions: record.promotions,
            // The whole state, in hand: the platform has nothing to fetch.
            state: PluginState {
                sizes: state.iter().map(|(k, v)| (k.clone(), v.len())).collect(),
                values: state.clone(),
            },
            writes: StepWrites::default(),
        };
        let mut store = self.store(world, Some(caps));
        let call = async {
            let instance = self.pre.instantiate_async(&mut store).await?;
            instance.call_step(&mut store, deployment, context).await
        };
        let outcome = match tokio::time::timeout(self.limits.timeout, call).await {
            Err(_) => Err(format!("the step did not finish within {} s of real time", self.limits.timeout.as_secs())),
            Ok(Err(e)) => Err(describe_trap(&e, store.data().stderr())),
            Ok(Ok(outcome)) => Ok(outcome),
        };
        let writes = store.into_data().into_step().map(|caps| caps.writes).unwrap_or_default();
        (outcome, writes)
    }

    /// Runs one scenario to its end and judges it.
    async fn scenario(
        &self,
        scenario: &Scenario,
        deployment: &wit::Deployment,
        settings: &Settings,
        seed: u64,
    ) -> Result<ScenarioReport> {
        let previous = deployment.previous.clone().expect("the simulated deployment replaces v1");
        let behaviour = (scenario.behaviour)(settings, &deployment.target.version);
        let world = Arc::new(Mutex::new(World::serving(&previous.version, previous.replicas, behaviour, seed)));
        let (mut steps, mut crash) = (0, None);
        let ending = match self.validate(deployment).await? {
            Err(why) => Ending::Refused(why),
            Ok(()) => self.drive(scenario, deployment, &world, &mut steps, &mut crash).await,
        };
        let world = world.lock().unwrap();
        let (mut passed, mut verdict) = judge(scenario.expect, &ending, &world, deployment);
        // A plugin that crashed (a trap, a limit, the time limit) never ended as it should,
        // whatever state the world was left in.
        if let Some(crash) = crash {
            passed = false;
            verdict = format!("{crash}; {verdict}");
        }
        Ok(ScenarioReport {
            name: scenario.name,
            expected: scenario.expected,
            ending,
            passed,
            verdict,
            simulated_ms: world.now(),
            steps,
            requests: world.requests(),
            failed_requests: world.failed_requests(),
            timeline: world.timeline.clone(),
        })
    }
}

/// The variant a person reading the figures would pick: the lowest error rate.
fn best_variant(d: &wit::Deployment, world: &World) -> String {
    let rate = |v: &str| {
        world.traffic.get(v).map(|t| if t.requests > 0.0 { t.errors / t.requests } else { 0.0 }).unwrap_or(0.0)
    };
    d.variants
        .iter()
        .map(|v| v.release.version.clone())
        .min_by(|a, b| rate(a).total_cmp(&rate(b)))
        .unwrap_or_else(|| d.target.version.clone())
}

fn owned_versions(d: &wit::Deployment) -> std::collections::HashSet<String> {
    let mut versions: std::collections::HashSet<String> =
        d.variants.iter().map(|v| v.release.version.clone()).collect();
    versions.insert(d.target.version.clone());
    versions.extend(d.previous.iter().map(|p| p.version.clone()));
    versions
}

/// Whether the world is as the ending says it should be, and as the scenario expects.
fn judge(expect: Expect, ending: &Ending, world: &World, d: &wit::Deployment) -> (bool, String) {
    let previous = d.previous.as_ref().expect("a previous release");
    let new: Vec<String> = owned_versions(d).into_iter().filter(|v| *v != previous.version).collect();
    let serving = world.serving_versions();
    let consistent = match ending {
        Ending::Completed => {
            let alone = !serving.is_empty() && serving.iter().all(|v| new.contains(v));
            let left: Vec<&str> = world.of_version(&previous.version).iter().map(|r| r.id.as_str()).collect();
            let short: Vec<String> = serving
                .iter()
                .filter(|v| world.up(v) < d.target.replicas)
                .map(|v| format!("{v} has {} of {} replicas up", world.up(v), d.target.replicas))
                .collect();
            if !alone {
                Err(format!("it completed, but the split serves {}", serving.join(", ")))
            } else if !left.is_empty() {
                Err(format!(
                    "it completed, but {} of {} still run{}",
                    left.join(", "),
                    previous.version,
                    if left.len() == 1 { "s" } else { "" }
                ))
            } else if !short.is_empty() {
                Err(format!("it completed, but {}", short.join("; ")))
            } else {
                Ok(format!("completed: {} serves alone", serving.join(", ")))
            }
        }
        Ending::RolledBack => {
            let left: Vec<&str> =
                world.replicas.iter().filter(|r| new.contains(&r.version)).map(|r| r.id.as_str()).collect();
            if serving != [previous.version.clone()] {
                Err(format!("it rolled back, but the split serves {}", serving.join(", ")))
            } else if world.up(&previous.version) < previous.replicas {
                Err(format!(
                    "it rolled back, but {} has {} of {} replicas up",
                    previous.version,
                    world.up(&previous.version),
                    previous.replicas
                ))
            } else if !left.is_empty() {
                Err(format!("it rolled back, but {} still run", left.join(", ")))
            } else {
                Ok(format!("rolled back: {} serves alone again", previous.version))
            }
        }
        Ending::Failed(why) => {
            Err(format!("the rollback failed too ({why}); a server would restore {} itself", previous.version))
        }
        Ending::Refused(why) => Err(format!("validate refused the deployment: {why}")),
        Ending::Unfinished(why) => Err(why.clone()),
    };
    match (consistent, expect, ending) {
        (Err(why), _, _) => (false, why),
        (Ok(done), Expect::Completed, Ending::Completed) | (Ok(done), Expect::RolledBack, Ending::RolledBack) => {
            (true, done)
        }
        (Ok(done), Expect::EitherConsistent, _) => (true, done),
        (Ok(done), Expect::Completed, _) => (false, format!("{done}, but it should have completed")),
        (Ok(done), _, _) => (false, format!("{done}, but it should have rolled back")),
    }
}
