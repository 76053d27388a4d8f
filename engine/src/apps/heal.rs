//! Keeping the release running. Between deployments the healer keeps each app's serving
//! release at its desired replica count, one slot per replica: a replica that exited, or
//! that failed its health check `--liveness-failures` times in a row after it once
//! passed (or never passed within `--health-check-timeout`), is drained, stopped and
//! replaced. A slot whose replicas keep dying is restarted with exponential back-off
//! (1 s doubling to 5 min, forgiven after 10 minutes healthy) and shows as crash-looping.
//! While an app has an active deployment its strategy owns the replicas, and the healer
//! leaves the app alone. Every correction is an event of the app and a counter.

use super::Apps;
use crate::api_types::CrashLoop;
use crate::model::{App, Level, ReplicaRecord, now_ms};
use crate::plugins::Scope;
use crate::router::DrainState;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The first back-off, doubled at each death in a row, up to `MAX_BACKOFF_MS`.
const FIRST_BACKOFF_MS: i64 = 1_000;
const MAX_BACKOFF_MS: i64 = 300_000;
/// A replica healthy this long forgives its slot's earlier deaths.
const FORGIVEN_AFTER_MS: i64 = 600_000;
/// Deaths in a row after which a slot is crash-looping.
const CRASH_LOOP_AFTER: u32 = 2;
/// How long a replica being replaced or scaled away gets to finish its requests.
const DRAIN: Duration = Duration::from_secs(10);

pub(crate) struct Healer {
    /// When this server started: a replica's age counts from then at the earliest.
    born_ms: i64,
    apps: Mutex<HashMap<String, Slots>>,
    /// Apps being healed now: a heal may wait for a drain, and one at a time is enough.
    busy: Mutex<HashSet<crate::model::AppName>>,
    /// Replacements by (app, version, reason), for /metrics.
    restarts: Mutex<BTreeMap<(String, String, &'static str), u64>>,
}

impl Default for Healer {
    fn default() -> Self {
        Healer { born_ms: now_ms(), apps: Default::default(), busy: Default::default(), restarts: Default::default() }
    }
}

/// The slots of an app's serving release.
#[derive(Default)]
struct Slots {
    version: String,
    slots: Vec<Slot>,
}

#[derive(Default, Clone)]
struct Slot {
    /// The replica that fills it, if one does.
    replica: Option<String>,
    /// Deaths in a row, and when the slot may start a replica again.
    deaths: u32,
    not_before_ms: i64,
    last_exit: Option<String>,
    last_logs: String,
}

/// Why a replica is replaced.
#[derive(Clone, Copy)]
enum Death {
    Exited,
    Unhealthy,
    NeverHealthy,
}

impl Death {
    fn reason(self) -> &'static str {
        match self {
            Death::Exited => "exited",
            Death::Unhealthy => "unhealthy",
            Death::NeverHealthy => "never_healthy",
        }
    }
}

fn backoff_ms(deaths: u32) -> i64 {
    (FIRST_BACKOFF_MS << deaths.saturating_sub(1).min(20)).min(MAX_BACKOFF_MS)
}

impl Slot {
    /// Its replicas keep dying and none serves now (`healthy` says whether a replica is).
    fn crash_looping(&self, healthy: &impl Fn(&str) -> bool) -> bool {
        self.deaths >= CRASH_LOOP_AFTER && !self.replica.as_deref().is_some_and(healthy)
    }
}

impl Healer {
    /// The app's slots that are crash-looping; `healthy` says whether a replica is.
    pub(crate) fn crash_loops(&self, app: &str, healthy: impl Fn(&str) -> bool) -> Vec<CrashLoop> {
        let apps = self.apps.lock().unwrap();
        let Some(s) = apps.get(app) else { return Vec::new() };
        let now = now_ms();
        s.slots
            .iter()
            .enumerate()
            .filter(|(_, slot)| slot.crash_looping(&healthy))
            .map(|(i, slot)| CrashLoop {
                version: s.version.clone(),
                slot: i as u32,
                restarts: slot.deaths,
                last_exit: slot.last_exit.clone(),
                last_logs: slot.last_logs.clone(),
                next_restart_in_ms: (slot.not_before_ms - now).max(0) as u64,
            })
            .collect()
    }

    /// Forgets an app's slots (it was removed, or a deployment replaced its release).
    pub(crate) fn forget(&self, app: &str) {
        self.apps.lock().unwrap().remove(app);
    }

    /// The healer's counts in the Prometheus text format.
    pub(crate) fn prometheus(&self, out: &mut String, healthy: impl Fn(&str) -> bool) {
        use std::fmt::Write;
        let _ = writeln!(out, "# HELP hivemind_replica_restarts_total Replicas the healer replaced, by reason.");
        let _ = writeln!(out, "# TYPE hivemind_replica_restarts_total counter");
        for ((app, version, reason), n) in self.restarts.lock().unwrap().iter() {
            let _ = writeln!(
                out,
                "hivemind_replica_restarts_total{{app=\"{app}\",version=\"{version}\",reason=\"{reason}\"}} {n}"
            );
        }
        let _ = writeln!(out, "# HELP hivemind_replicas_crash_looping Replica slots restarting with back-off.");
        let _ = writeln!(out, "# TYPE hivemind_replicas_crash_looping gauge");
        for (app, s) in self.apps.lock().unwrap().iter() {
            let looping = s.slots.iter().filter(|slot| slot.crash_looping(&healthy)).count();
            let _ = writeln!(out, "hivemind_replicas_crash_looping{{app=\"{app}\"}} {looping}");
        }
    }
}

impl Apps {
    /// Heals every app that needs it, each on a task of its own.
    pub(crate) async fn heal_all(self: &Arc<Self>) {
        let Ok(apps) = self.ground.store.apps().await else { return };
        for app in apps {
            if !self.looks_unwell(&app).await || !self.ground.healer.busy.lock().unwrap().insert(app.name.clone()) {
                continue;
            }
            let engine = self.clone();
            tokio::spawn(async move {
                if let Err(e) = engine.heal(&app.name).await {
                    tracing::warn!(app = %app.name, "healing: {e:#}");
                }
                engine.ground.healer.busy.lock().unwrap().remove(&app.name);
            });
        }
    }

    /// What memory alone says (the fleet and the latest probes, no store, no runtime):
    /// whether the app's release might lack a replica, or have one too many or unwell.
    async fn looks_unwell(&self, app: &App) -> bool {
        let Some(release) = &app.release else { return false };
        let replicas: Vec<ReplicaRecord> = self
            .ground
            .services
            .fleet
            .list(&app.name)
            .await
            .into_iter()
            .filter(|r| r.version == release.version)
            .collect();
        replicas.len() != release.replicas as usize
            || replicas.iter().any(|r| {
                let health = self.ground.services.health_of(&r.id);
                !health.ever_healthy || health.failures_in_a_row > 0
            })
    }

    /// Brings one app's serving release to its desired count, when no deployment owns it.
    async fn heal(&self, name: &str) -> anyhow::Result<()> {
        // Decided under the decisions lock, on what the store says now: a deployment that
        // starts or ends meanwhile cannot slip between the check and the plan.
        let plan = {
            let _decisions = self.ground.decisions.lock().await;
            if self.ground.active_deployment(name).await?.is_some() {
                return Ok(());
            }
            let Some(app) = self.ground.store.app(name).await? else { return Ok(()) };
            let Some(release) = app.release.clone() else { return Ok(()) };
            // The latest deployment says how the release runs: ports, health, target.
            let Some(latest) = self.ground.store.deployments(Some(name), 1).await?.pop() else { return Ok(()) };
            self.plan(name, release, latest).await
        };
        self.carry_out(name, plan).await
    }

    /// Which replica fills which slot, which died and why, which are surplus.
    async fn plan(&self, app: &str, release: crate::model::Release, latest: crate::model::Deployment) -> Plan {
        let services = &self.ground.services;
        let replicas: Vec<ReplicaRecord> =
            services.fleet.list(app).await.into_iter().filter(|r| r.version == release.version).collect();
        let now = now_ms();
        let mut surplus = Vec::new();
        {
            let mut apps = self.ground.healer.apps.lock().unwrap();
            let s = apps.entry(app.to_string()).or_default();
            if s.version != release.version {
                *s = Slots { version: release.version.clone(), slots: Vec::new() };
            }
            s.slots.resize(release.replicas as usize, Slot::default());
            let present: HashSet<&str> = replicas.iter().map(|r| r.id.as_str()).collect();
            for slot in &mut s.slots {
                // Gone by other hands (a deployment, a removal): the slot is free.
                if slot.replica.as_deref().is_some_and(|id| !present.contains(id)) {
                    slot.replica = None;
                }
            }
            for r in &replicas {
                if s.slots.iter().any(|slot| slot.replica.as_deref() == Some(r.id.as_str())) {
                    continue;
                }
                match s.slots.iter_mut().find(|slot| slot.replica.is_none()) {
                    Some(free) => free.replica = Some(r.id.clone()),
                    None => surplus.push(r.clone()),
                }
            }
        }
        let mut dead = Vec::new();
        for r in replicas.iter().filter(|r| !surplus.iter().any(|x| x.id == r.id)) {
            let health = services.health_of(&r.id);
            if health.ever_healthy && health.failures_in_a_row == 0 {
                if health.healthy_since_ms.is_some_and(|since| now - since > FORGIVEN_AFTER_MS) {
                    self.ground.healer.forgive(app, &r.id);
                }
                continue;
            }
            // Its age counts from when this server could first see it.
            let age = now - r.started_at_ms.max(self.ground.healer.born_ms);
            let death = if !services.fleet.is_running(r).await {
                Death::Exited
            } else if health.ever_healthy && health.failures_in_a_row >= latest.spec.liveness_failures {
                Death::Unhealthy
            } else if !health.ever_healthy && age > latest.spec.health_check_timeout as i64 * 1000 {
                Death::NeverHealthy
            } else {
                continue;
            };
            dead.push((r.clone(), death));
        }
        Plan { release, latest, dead, surplus }
    }

    async fn carry_out(&self, app: &str, plan: Plan) -> anyhow::Result<()> {
        let Plan { release, latest, dead, surplus } = plan;
        let services = &self.ground.services;
        let now = now_ms();

        // The dead go: drained, stopped, noted; their slots wait out their back-off.
        for (r, death) in dead {
            let exit = services.fleet.exit_status(&r).await;
            let logs = services.fleet.logs(&r, 20).await;
            let why = match death {
                Death::Exited => format!("exited ({})", exit.as_deref().unwrap_or("how is unknown")),
                Death::Unhealthy => format!(
                    "failed {} health checks in a row ({})",
                    latest.spec.liveness_failures,
                    services.last_probe(&r.id).map(|p| p.message).unwrap_or_default()
                ),
                Death::NeverHealthy => {
                    format!("was not healthy within {} s of its start", latest.spec.health_check_timeout)
                }
            };
            self.retire(app, &r).await;
            let (deaths, wait_ms) = self.ground.healer.died(app, &r.id, exit, logs, now);
            *self
                .ground
                .healer
                .restarts
                .lock()
                .unwrap()
                .entry((app.to_string(), r.version.clone(), death.reason()))
                .or_default() += 1;
            let (level, then) = if deaths >= CRASH_LOOP_AFTER {
                (Level::Error, format!("crash-looping: restart {deaths} in {:.0} s", wait_ms as f64 / 1000.0))
            } else {
                (Level::Warn, format!("replacing it in {:.0} s", wait_ms as f64 / 1000.0))
            };
            let message = format!("replica {} of {} {why}; {then}", r.id, r.version);
            self.ground.store.app_event(app, level, &message).await?;
        }

        // Replicas beyond the desired count (after `app scale` down) drain, then go.
        for r in surplus.iter().rev() {
            self.retire(app, r).await;
            let message = format!("scaled down: replica {} of {} drained and stopped", r.id, r.version);
            self.ground.store.app_event(app, Level::Info, &message).await?;
        }

        // Empty slots whose back-off is over get a new replica.
        let ready: Vec<usize> = {
            let apps = self.ground.healer.apps.lock().unwrap();
            let Some(s) = apps.get(app) else { return Ok(()) };
            s.slots
                .iter()
                .enumerate()
                .filter(|(_, slot)| slot.replica.is_none() && slot.not_before_ms <= now)
                .map(|(i, _)| i)
                .collect()
        };
        if ready.is_empty() {
            return Ok(());
        }
        let spec = Scope::of(&latest, services.clone()).launch_spec(&release);
        for slot in ready {
            let running: Vec<String> = services
                .fleet
                .list(app)
                .await
                .into_iter()
                .filter(|r| r.version == release.version)
                .map(|r| r.id)
                .collect();
            match services.fleet.scale(&spec, running.len() as u32 + 1, DRAIN).await {
                Ok(now_running) => {
                    services.sync_router(app).await;
                    if let Some(new) = now_running.into_iter().find(|r| !running.contains(&r.id)) {
                        self.ground.healer.fill(app, slot, &new.id);
                        let message = format!(
                            "started replica {} of {} to keep {} running",
                            new.id, new.version, release.replicas
                        );
                        self.ground.store.app_event(app, Level::Info, &message).await?;
                    }
                }
                Err(e) => {
                    let (deaths, wait_ms) = self.ground.healer.start_failed(app, slot, format!("{e:#}"), now);
                    let message = format!(
                        "could not start a replica of {}: {e:#}; trying again in {:.0} s (attempt {deaths})",
                        release.version,
                        wait_ms as f64 / 1000.0
                    );
                    self.ground.store.app_event(app, Level::Error, &message).await?;
                }
            }
        }
        Ok(())
    }

    /// Drains a replica (if it can still serve), stops it and forgets its health.
    async fn retire(&self, app: &str, r: &ReplicaRecord) {
        let services = &self.ground.services;
        if services.router.drain(app, &r.id, DRAIN) {
            while matches!(services.router.drain_state(app, &r.id), Some(DrainState::Draining(_))) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        if let Err(e) = services.fleet.stop(r, DRAIN).await {
            tracing::warn!(app = %app, replica = %r.id, "stopping: {e:#}");
        }
        services.forget(&r.id);
        services.sync_router(app).await;
    }
}

/// What one heal does, decided under the decisions lock, carried out after it.
struct Plan {
    release: crate::model::Release,
    latest: crate::model::Deployment,
    dead: Vec<(ReplicaRecord, Death)>,
    surplus: Vec<ReplicaRecord>,
}

impl Healer {
    /// A replica that has been healthy long enough: its slot's earlier deaths are forgiven.
    fn forgive(&self, app: &str, replica: &str) {
        let mut apps = self.apps.lock().unwrap();
        if let Some(slot) =
            apps.get_mut(app).and_then(|s| s.slots.iter_mut().find(|slot| slot.replica.as_deref() == Some(replica)))
        {
            slot.deaths = 0;
        }
    }

    /// A slot's replica died: the slot's deaths in a row, and how long until it restarts.
    fn died(&self, app: &str, replica: &str, exit: Option<String>, logs: String, now: i64) -> (u32, i64) {
        let mut apps = self.apps.lock().unwrap();
        let Some(slot) =
            apps.get_mut(app).and_then(|s| s.slots.iter_mut().find(|slot| slot.replica.as_deref() == Some(replica)))
        else {
            return (1, 0);
        };
        slot.replica = None;
        slot.deaths += 1;
        // The first death restarts at once; each one after it waits twice as long.
        let wait = if slot.deaths == 1 { 0 } else { backoff_ms(slot.deaths - 1) };
        slot.not_before_ms = now + wait;
        slot.last_exit = exit;
        slot.last_logs = logs;
        (slot.deaths, wait)
    }

    /// A replica could not even start in `slot`: it waits as a death would.
    fn start_failed(&self, app: &str, slot: usize, why: String, now: i64) -> (u32, i64) {
        let mut apps = self.apps.lock().unwrap();
        let Some(slot) = apps.get_mut(app).and_then(|s| s.slots.get_mut(slot)) else { return (1, 0) };
        slot.deaths += 1;
        let wait = backoff_ms(slot.deaths);
        slot.not_before_ms = now + wait;
        slot.last_exit = Some(why);
        (slot.deaths, wait)
    }

    fn fill(&self, app: &str, slot: usize, replica: &str) {
        if let Some(slot) = self.apps.lock().unwrap().get_mut(app).and_then(|s| s.slots.get_mut(slot)) {
            slot.replica = Some(replica.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::backoff_ms;

    #[test]
    fn back_off_doubles_from_one_second_to_five_minutes() {
        let waits: Vec<i64> = (1..=11).map(backoff_ms).collect();
        assert_eq!(waits[..5], [1_000, 2_000, 4_000, 8_000, 16_000]);
        assert_eq!(waits[9], 300_000);
        assert_eq!(backoff_ms(40), 300_000);
    }
}
