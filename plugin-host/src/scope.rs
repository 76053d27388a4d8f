//! What one plugin call may reach. Every capability is scoped to the deployment's app and
//! to the versions it owns: its target, its variants and the release it replaces. A step
//! carries its writes besides; a hook its deadline and its log.

use super::error::CapabilityError;
use super::platform::Platform;
use crate::health::HttpCheck;
use crate::model::{Deployment, Level, Release, ReplicaRecord};
use crate::runtime::LaunchSpec;
use crate::store::StepWrites;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The part of the world a deployment's plugin may touch, the same for steps and hooks.
pub struct Scope {
    pub app: crate::model::AppName,
    pub deployment_id: crate::model::DeploymentId,
    /// The deployment target its replicas run on (`--cloud-provider`).
    pub target: Option<String>,
    /// The versions it may run, with what their replicas run.
    pub versions: HashMap<String, Release>,
    pub container_port: u16,
    pub health_port: Option<u16>,
    /// What its capabilities act on: the server, or the simulated world.
    pub platform: Arc<dyn Platform>,
}

impl Scope {
    /// The scope of deployment `d`.
    pub fn of(d: &Deployment, platform: Arc<dyn Platform>) -> Scope {
        let mut versions = HashMap::from([(d.target_version.clone(), d.target())]);
        for v in d.variant_releases() {
            versions.insert(v.version.clone(), v);
        }
        if let Some(p) = &d.previous {
            versions.insert(p.version.clone(), p.clone());
        }
        Scope {
            app: d.app.clone(),
            deployment_id: d.id.clone(),
            target: d.spec.cloud_provider.clone(),
            versions,
            container_port: d.spec.container_port,
            health_port: d.spec.health_check_port,
            platform,
        }
    }

    /// The release of `version`, if the deployment owns it; otherwise a denial that names
    /// `capability` and the versions it may use.
    pub fn release(&self, capability: &str, version: &str) -> Result<Release, CapabilityError> {
        self.versions.get(version).cloned().ok_or_else(|| {
            let mut known: Vec<&str> = self.versions.keys().map(String::as_str).collect();
            known.sort();
            CapabilityError::Denied(format!(
                "{capability}: version `{version}` is not part of deployment {} of app `{}`; it may use {}",
                self.deployment_id,
                self.app,
                known.join(", ")
            ))
        })
    }

    /// The replica `id` if it belongs to this app; `None` if it does not exist (gone).
    pub async fn own_replica(&self, capability: &str, id: &str) -> Result<Option<ReplicaRecord>, CapabilityError> {
        match self.platform.replica(id).await {
            Some(r) if r.app == self.app => Ok(Some(r)),
            Some(r) => Err(CapabilityError::Denied(format!(
                "{capability}: replica `{id}` belongs to app `{}`; a deployment of app `{}` may only touch its own app",
                r.app, self.app
            ))),
            None => Ok(None),
        }
    }

    /// What the fleet needs to start a replica (or a job) of `release`.
    pub fn launch_spec(&self, release: &Release) -> LaunchSpec {
        LaunchSpec {
            app: self.app.clone(),
            version: release.version.clone(),
            deployment_id: self.deployment_id.clone(),
            image: release.runs().to_string(),
            container_port: self.container_port,
            health_port: self.health_port,
            env: release.env.iter().chain(&release.secrets).map(|(k, v)| (k.clone(), v.clone())).collect(),
            resources: release.resources.clone(),
            target: self.target.clone(),
        }
    }
}

/// What a step may do, and what it did.
pub struct StepCaps {
    pub scope: Scope,
    pub health: HttpCheck,
    /// Where replicas expose their own Prometheus counters.
    pub metrics_endpoint: String,
    /// The completed deployment this one reverses, if it is a rollback of one.
    pub rollback_of: Option<crate::model::DeploymentId>,
    /// How many times the deployment was promoted.
    pub promotions: u32,
    /// The plugin's saved state as the step loop knows it (what this step writes is in
    /// `writes` until the step is recorded).
    pub state: PluginState,
    pub writes: StepWrites,
}

impl StepCaps {
    /// A line in the event log for what a capability changed.
    pub fn note(&mut self, message: String) {
        self.writes.events.push((Level::Info, message));
    }
}

/// A deployment's plugin state as its step loop knows it: the size of every stored value,
/// and the values read or written so far. A value is fetched from the store only when a
/// plugin first asks for it, so a step costs no query once the loop has run a step.
#[derive(Debug, Default)]
pub struct PluginState {
    pub sizes: HashMap<String, usize>,
    pub values: HashMap<String, Vec<u8>>,
}

impl PluginState {
    /// What the step loop knows after the store holds a step's writes.
    pub fn commit(&mut self, written: &HashMap<String, Vec<u8>>) {
        for (key, value) in written {
            self.sizes.insert(key.clone(), value.len());
            self.values.insert(key.clone(), value.clone());
        }
    }
}

/// What a hook run may do: jobs of the deployment's releases, HTTP to allowed hosts, its
/// log. Every job and request ends by `deadline`.
pub struct HookCaps {
    pub scope: Scope,
    /// The hook's whole time (`--hook-timeout`), and when it runs out.
    pub timeout: Duration,
    pub deadline: Instant,
    /// What the hook logged, as (level, message).
    pub log: Vec<(Level, String)>,
    /// The hook plugin's name and what it was granted at install (set by `run_hook`).
    pub plugin: String,
    pub grants: hivemind_model::grants::Grants,
}

impl HookCaps {
    /// What is left of the hook's time, capped by what the guest asked for, and how to
    /// say that limit to people.
    pub fn time_left(&self, asked_ms: u32) -> (Duration, String) {
        let left = self.deadline.saturating_duration_since(Instant::now());
        let asked = Duration::from_millis(asked_ms as u64);
        if asked < left {
            (asked, format!("{} ms", asked.as_millis()))
        } else {
            (left, format!("the hook's {} s timeout", self.timeout.as_secs()))
        }
    }
}
