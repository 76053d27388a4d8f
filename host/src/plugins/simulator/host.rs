//! The strategy world's capabilities against the simulated app: the same contract, and
//! the same scoping, as the server's (`capabilities`), over `World` instead of replicas,
//! a router and a store. A store of this type is one step's sandbox.

use super::world::{APP, NEIGHBOUR_REPLICA, World};
use crate::model::Split;
use crate::plugins::CapabilityError;
use crate::plugins::bindings::strategy::hivemind::plugin::{
    containers, context, health, metrics, progress, routing, state, types,
};
use crate::plugins::bounds;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use wasmtime::StoreLimits;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

pub struct SimHost {
    pub(super) wasi: WasiCtx,
    pub(super) table: ResourceTable,
    pub(super) limits: StoreLimits,
    pub(super) stderr: MemoryOutputPipe,
    pub(super) world: Arc<Mutex<World>>,
    /// The versions the deployment owns.
    pub(super) versions: HashSet<String>,
    /// The state as stored before this step, and what this step wrote.
    pub(super) state: HashMap<String, Vec<u8>>,
    pub(super) writes: HashMap<String, Vec<u8>>,
    pub(super) promotions: u32,
    /// Whether `step` is running: as on a server, the capabilities are denied to `info`
    /// and `validate`.
    pub(super) in_step: bool,
}

impl WasiView for SimHost {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl SimHost {
    fn in_step(&self) -> Result<(), CapabilityError> {
        if self.in_step {
            Ok(())
        } else {
            Err(CapabilityError::Denied("capabilities are only available during step()".into()))
        }
    }

    fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.world.lock().unwrap()
    }

    fn owned(&self, capability: &str, version: &str) -> Result<(), CapabilityError> {
        if self.versions.contains(version) {
            return Ok(());
        }
        let mut known: Vec<&str> = self.versions.iter().map(String::as_str).collect();
        known.sort();
        Err(CapabilityError::Denied(format!(
            "{capability}: version `{version}` is not part of this deployment of app `{APP}`; it may use {}",
            known.join(", ")
        )))
    }

    /// Refuses another app's replica; `Ok(false)` for one that does not exist (gone).
    fn own_replica(&self, capability: &str, id: &str) -> Result<bool, CapabilityError> {
        if id == NEIGHBOUR_REPLICA {
            return Err(CapabilityError::Denied(format!(
                "{capability}: replica `{id}` belongs to app `other-app`; a deployment of app `{APP}` may only touch its own app"
            )));
        }
        Ok(self.world().replicas.iter().any(|r| r.id == id))
    }
}

fn wit_replica(r: &super::world::Replica) -> types::Replica {
    types::Replica {
        id: r.id.clone(),
        version: r.version.clone(),
        address: format!("sim://{}", r.id),
        // As the server's fleet: a replica it lists is running (health says if it serves).
        state: types::ReplicaState::Running,
        started_at_ms: super::world::EPOCH_MS + r.started_ms,
    }
}

impl types::Host for SimHost {
    fn convert_error(&mut self, err: CapabilityError) -> wasmtime::Result<types::Error> {
        err.into_wit()
    }
}

impl containers::Host for SimHost {
    async fn scale(&mut self, version: String, replicas: u32) -> Result<Vec<types::Replica>, CapabilityError> {
        self.in_step()?;
        self.owned("containers.scale", &version)?;
        if replicas > bounds::SCALE_REPLICAS {
            return Err(CapabilityError::Invalid(format!(
                "containers.scale: {replicas} replicas is more than the limit of {} per call",
                bounds::SCALE_REPLICAS
            )));
        }
        let mut world = self.world();
        world.scale(&version, replicas);
        Ok(world.of_version(&version).into_iter().map(wit_replica).collect())
    }

    async fn list(&mut self) -> Result<Vec<types::Replica>, CapabilityError> {
        self.in_step()?;
        let world = self.world();
        Ok(world.replicas.iter().map(wit_replica).collect())
    }

    async fn capacity(&mut self) -> wasmtime::Result<u32> {
        Ok(if self.in_step { 32 } else { 0 })
    }

    async fn stop(&mut self, ids: Vec<String>, _grace_ms: u32) -> Result<(), CapabilityError> {
        self.in_step()?;
        for id in &ids {
            self.own_replica("containers.stop", id)?;
        }
        let mut world = self.world();
        let before = world.replicas.len();
        world.replicas.retain(|r| !ids.contains(&r.id));
        if world.replicas.len() != before {
            world.changed(format!("stopped {}", ids.join(", ")));
        }
        Ok(())
    }
}

impl SimHost {
    fn apply_split(&mut self, capability: &str, split: Vec<routing::Weight>) -> Result<(), CapabilityError> {
        self.in_step()?;
        for w in &split {
            self.owned(capability, &w.version)?;
        }
        let table = Split::new(split.into_iter().map(|w| (w.version, w.weight)).collect())
            .map_err(|e| CapabilityError::Invalid(format!("{capability}: {e}")))?;
        let mut world = self.world();
        if world.split != table {
            world.changed(format!("traffic split set to [{table}]"));
            world.split = table;
        }
        Ok(())
    }
}

impl routing::Host for SimHost {
    async fn set_split(&mut self, split: Vec<routing::Weight>) -> Result<(), CapabilityError> {
        self.apply_split("routing.set-split", split)
    }

    async fn set_sticky_split(&mut self, split: Vec<routing::Weight>) -> Result<(), CapabilityError> {
        self.apply_split("routing.set-sticky-split", split)
    }

    async fn current_split(&mut self) -> wasmtime::Result<Vec<routing::Weight>> {
        if !self.in_step {
            return Ok(Vec::new());
        }
        Ok(self.world().split.iter().map(|(v, w)| routing::Weight { version: v.clone(), weight: *w }).collect())
    }

    async fn drain(&mut self, ids: Vec<String>, timeout_ms: u32) -> Result<(), CapabilityError> {
        self.in_step()?;
        for id in &ids {
            self.own_replica("routing.drain", id)?;
        }
        let mut world = self.world();
        // In-flight requests finish within a few hundred milliseconds here.
        let at = world.now() + u64::from(timeout_ms.min(300));
        let mut started = Vec::new();
        for r in world.replicas.iter_mut().filter(|r| ids.contains(&r.id) && r.drained_at.is_none()) {
            r.drained_at = Some(at);
            started.push(r.id.clone());
        }
        if !started.is_empty() {
            world.note(format!("draining {}", started.join(", ")));
        }
        Ok(())
    }

    async fn drain_status(&mut self, id: String) -> Result<routing::DrainState, CapabilityError> {
        self.in_step()?;
        self.own_replica("routing.drain-status", &id)?;
        let world = self.world();
        let now = world.now();
        Ok(match world.replicas.iter().find(|r| r.id == id).and_then(|r| r.drained_at) {
            Some(at) if at > now => routing::DrainState::Draining(1),
            _ => routing::DrainState::Drained,
        })
    }
}

impl health::Host for SimHost {
    async fn probe(&mut self, replica_id: String) -> Result<health::ProbeResult, CapabilityError> {
        self.in_step()?;
        if !self.own_replica("health.probe", &replica_id)? {
            return Err(CapabilityError::Invalid(format!("health.probe: no replica `{replica_id}`")));
        }
        let healthy = self.world().probe(&replica_id).unwrap_or(false);
        let status = if healthy { 200 } else { 503 };
        Ok(health::ProbeResult { healthy, message: format!("GET sim://{replica_id}/health returned {status}") })
    }

    async fn healthy_count(&mut self, version: String) -> wasmtime::Result<u32> {
        Ok(if self.in_step { self.world().healthy(&version) } else { 0 })
    }
}

impl metrics::Host for SimHost {
    async fn snapshot(&mut self, version: String) -> Result<metrics::Counts, CapabilityError> {
        self.in_step()?;
        self.owned("metrics.snapshot", &version)?;
        let t = self.world().traffic.get(&version).cloned().unwrap_or_default();
        let requests = t.requests.round() as u64;
        let errors = t.errors.round() as u64;
        let answered = requests;
        // Every version answers as fast: 60% within 25 ms, 35% within 50, 5% within 100.
        let buckets = vec![
            (25.0, answered * 60 / 100),
            (50.0, answered * 35 / 100),
            (100.0, answered - answered * 60 / 100 - answered * 35 / 100),
        ];
        Ok(metrics::Counts {
            requests,
            status_2xx: answered.saturating_sub(errors),
            status_3xx: 0,
            status_4xx: 0,
            status_5xx: errors,
            connection_errors: 0,
            goals: 0,
            in_flight: 0,
            p50_ms: 20.0,
            p90_ms: 40.0,
            p99_ms: 80.0,
            latency_buckets: buckets,
        })
    }

    async fn app_counter(&mut self, version: String, name: String) -> Result<f64, CapabilityError> {
        self.in_step()?;
        self.owned("metrics.app-counter", &version)?;
        Err(CapabilityError::Failed(format!("metrics.app-counter: the simulated replicas export no counter `{name}`")))
    }
}

impl state::Host for SimHost {
    async fn get(&mut self, key: String) -> wasmtime::Result<Option<Vec<u8>>> {
        if !self.in_step {
            return Ok(None);
        }
        Ok(self.writes.get(&key).or_else(|| self.state.get(&key)).cloned())
    }

    async fn set(&mut self, key: String, value: Vec<u8>) -> wasmtime::Result<()> {
        if !self.in_step {
            return Ok(());
        }
        let mut sizes: HashMap<String, usize> = self.state.iter().map(|(k, v)| (k.clone(), v.len())).collect();
        sizes.extend(self.writes.iter().map(|(k, v)| (k.clone(), v.len())));
        bounds::check_state_write(sizes, &key, value.len()).map_err(wasmtime::Error::msg)?;
        self.writes.insert(key, value);
        Ok(())
    }
}

impl progress::Host for SimHost {
    async fn report(&mut self, percent: u8, message: String) -> wasmtime::Result<()> {
        if !self.in_step {
            return Ok(());
        }
        let line = format!("progress {}%: {}", percent.min(100), bounds::bounded(message, 200));
        let mut world = self.world();
        world.reported(percent.min(100));
        // Reports in a row, with nothing else happening between them, show as the latest.
        if world.timeline.last().is_some_and(|(_, last)| last.starts_with("progress ")) {
            world.timeline.pop();
        }
        world.note(line);
        Ok(())
    }

    async fn log(&mut self, level: progress::Level, message: String) -> wasmtime::Result<()> {
        if !self.in_step {
            return Ok(());
        }
        let level = match level {
            progress::Level::Debug => "debug",
            progress::Level::Info => "info",
            progress::Level::Warn => "warn",
            progress::Level::Error => "error",
        };
        self.world().note(format!("[{level}] {}", bounds::bounded(message, 300)));
        Ok(())
    }
}

impl context::Host for SimHost {
    async fn rollback_of(&mut self) -> wasmtime::Result<Option<String>> {
        Ok(None)
    }

    async fn promotions(&mut self) -> wasmtime::Result<u32> {
        Ok(self.promotions)
    }
}
