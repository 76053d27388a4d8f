//! A deployment as it is recorded: the release it rolls out, where it stands (status,
//! phase, progress), the plugin it is pinned to, and its hooks' runs.

use super::{AppName, DeploymentId, DeploymentSpec, HookStage, Resources, StrategyName};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One release of an app: a version label, its image and its replica count.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Release {
    pub version: String,
    pub image: String,
    pub replicas: u32,
    /// The replicas' environment: a release brought back by a rollback runs as it did.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Its secret variables (`--secret`), never shown: see `DeploymentSpec::secrets`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Resources::is_empty")]
    pub resources: Resources,
    /// The image by content digest (`repo@sha256:…`), as resolved when the deployment
    /// that made this release ran: what every replica of it runs, whatever the tag in
    /// `image` names later. None on the process runtime, and for releases older than pins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned: Option<String>,
}

impl Release {
    /// The reference its replicas start from: the pinned digest, else the image as given.
    pub fn runs(&self) -> &str {
        self.pinned.as_deref().unwrap_or(&self.image)
    }
}

/// Where a deployment stands.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Recorded, not running (`deployment execute` runs it).
    Pending,
    InProgress,
    /// Stopped between steps by `deployment pause`; `resume` goes on.
    Paused,
    /// The strategy waits for `deployment promote` (or a winner).
    AwaitingApproval,
    Completed,
    /// The deployment failed; its rollback phase has put the previous release back (or
    /// says in the message why it could not).
    Failed,
    RollingBack,
    /// Rolled back on request.
    RolledBack,
    /// Stopped and rolled back by `deployment abort`.
    Aborted,
}

impl Status {
    pub const ALL: [Status; 9] = [
        Status::Pending,
        Status::InProgress,
        Status::Paused,
        Status::AwaitingApproval,
        Status::Completed,
        Status::Failed,
        Status::RollingBack,
        Status::RolledBack,
        Status::Aborted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::InProgress => "in_progress",
            Status::Paused => "paused",
            Status::AwaitingApproval => "awaiting_approval",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::RollingBack => "rolling_back",
            Status::RolledBack => "rolled_back",
            Status::Aborted => "aborted",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// As people read it: "in progress".
    pub fn words(self) -> String {
        self.as_str().replace('_', " ")
    }

    /// A deployment in one of these is finished.
    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Completed | Status::Failed | Status::RolledBack | Status::Aborted)
    }

    /// A deployment in one of these owns its app: no other may run.
    pub fn is_active(self) -> bool {
        matches!(self, Status::InProgress | Status::Paused | Status::AwaitingApproval | Status::RollingBack)
    }
}

/// Why a rollback phase runs; it decides the status the deployment ends in.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RollbackKind {
    /// A step, a health gate or the progress deadline failed: ends `failed`.
    Failure,
    /// `deployment rollback`: ends `rolled_back`.
    Manual,
    /// `deployment abort`: ends `aborted`.
    Abort,
}

impl RollbackKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RollbackKind::Failure => "failure",
            RollbackKind::Manual => "manual",
            RollbackKind::Abort => "abort",
        }
    }

    pub fn parse(s: &str) -> Option<RollbackKind> {
        [RollbackKind::Failure, RollbackKind::Manual, RollbackKind::Abort].into_iter().find(|k| k.as_str() == s)
    }

    /// The status a finished rollback phase of this kind ends in.
    pub fn final_status(self) -> Status {
        match self {
            RollbackKind::Failure => Status::Failed,
            RollbackKind::Manual => Status::RolledBack,
            RollbackKind::Abort => Status::Aborted,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Deploy,
    Rollback,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Deploy => "deploy",
            Phase::Rollback => "rollback",
        }
    }
}

/// The exact plugin a deployment is pinned to.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct PluginRef {
    pub name: String,
    pub version: String,
    pub sha256: String,
}

/// A deployment as stored and as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Deployment {
    pub id: DeploymentId,
    pub name: String,
    pub app: AppName,
    pub strategy: StrategyName,
    pub spec: DeploymentSpec,
    /// The release label this deployment rolls out.
    pub target_version: String,
    pub previous: Option<Release>,
    pub status: Status,
    pub phase: Phase,
    pub progress: u8,
    pub message: String,
    /// Why the deployment failed, if it did.
    pub error: Option<String>,
    pub plugin: PluginRef,
    pub attempt: u32,
    pub phase_started_at_ms: i64,
    pub rollback_kind: Option<RollbackKind>,
    /// Someone promoted the deployment (it stays true); `promotions` counts how often.
    pub promoted: bool,
    #[serde(default)]
    pub promotions: u32,
    /// The completed deployment this one rolls back, if it is a rollback.
    pub rollback_of: Option<DeploymentId>,
    pub last_progress_at_ms: i64,
    /// The A/B variant someone picked, or the one that won.
    pub winner: Option<String>,
    /// Its hook components, pinned, and the stages whose hooks have run.
    #[serde(default)]
    pub hook_runs: HookRuns,
    /// Each image it runs, as asked, and the reference it was pinned to when the
    /// deployment began (`127.0.0.1:5000/web:v1` → `127.0.0.1:5000/web@sha256:…`). Empty
    /// until its images are pulled and pinned; a rollback starts with the pin of the
    /// release it brings back.
    #[serde(default)]
    pub images: BTreeMap<String, String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// What a deployment's hooks are and have done, kept with it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct HookRuns {
    /// Each hook component the deployment uses, by name, pinned when it was created: an
    /// upgrade of a hook never changes a deployment under way.
    #[serde(default)]
    pub pinned: BTreeMap<String, PluginRef>,
    /// The stages whose hooks have run (passed or not), so that a restart never runs a
    /// stage twice.
    #[serde(default)]
    pub done: Vec<HookStage>,
}

impl HookRuns {
    pub fn ran(&self, stage: HookStage) -> bool {
        self.done.contains(&stage)
    }
}

impl Deployment {
    pub fn target(&self) -> Release {
        Release {
            version: self.target_version.clone(),
            image: self.spec.image.clone(),
            replicas: self.spec.replicas,
            env: self.spec.env.clone(),
            secrets: self.spec.secrets.clone(),
            resources: self.spec.resources.clone(),
            pinned: self.pinned(&self.spec.image),
        }
    }

    /// What `image` was pinned to, when it was (and is not already its own pin).
    fn pinned(&self, image: &str) -> Option<String> {
        self.images.get(image).filter(|p| *p != image).cloned()
    }

    /// Every image the deployment runs: its target's, or its variants'.
    pub fn images_asked(&self) -> Vec<&str> {
        match self.spec.variants.is_empty() {
            true => vec![self.spec.image.as_str()],
            false => self.spec.variants.iter().map(|v| v.image.as_str()).collect(),
        }
    }

    /// Whether every image it runs has been pulled and pinned.
    pub fn images_ready(&self) -> bool {
        self.images_asked().iter().all(|i| self.images.contains_key(*i))
    }

    /// The releases of an A/B test's variants, each with its share of the replicas (at
    /// least one).
    pub fn variant_releases(&self) -> Vec<Release> {
        self.spec
            .variants
            .iter()
            .map(|v| Release {
                version: v.name.clone(),
                image: v.image.clone(),
                replicas: (self.spec.replicas * v.percentage).div_ceil(100).max(1),
                env: self.spec.env.clone(),
                secrets: self.spec.secrets.clone(),
                resources: self.spec.resources.clone(),
                pinned: self.pinned(&v.image),
            })
            .collect()
    }

    pub fn completed(&self) -> bool {
        self.status.is_terminal()
    }

    pub fn successful(&self) -> bool {
        self.status == Status::Completed
    }
}
