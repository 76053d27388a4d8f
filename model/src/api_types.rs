//! What the REST API sends and receives, beyond the shared records of `model`: the views
//! the server builds (engine and api) and the CLI reads. The CLI depends on these and on
//! `model` only. Every type has a JSON Schema, which the OpenAPI document is built from.

use crate::error::UserError;
use crate::model::{App, Deployment, DeploymentSpec, Event, Kind, Origin, ReplicaRecord, Status, rfc3339};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A deployment as the API shows it: the record plus timestamps people can read.
#[derive(Serialize, Deserialize, Debug, Clone, JsonSchema)]
pub struct DeploymentView {
    #[serde(flatten)]
    pub deployment: Deployment,
    pub completed: bool,
    pub successful: bool,
    pub created_at: String,
    pub updated_at: String,
}

/// A view shows the deployment with its secrets redacted.
impl From<Deployment> for DeploymentView {
    fn from(d: Deployment) -> Self {
        let d = d.redacted();
        DeploymentView {
            completed: d.completed(),
            successful: d.successful(),
            created_at: rfc3339(d.created_at_ms),
            updated_at: rfc3339(d.updated_at_ms),
            deployment: d,
        }
    }
}

/// The status summary the product's docs describe.
#[derive(Serialize, Deserialize, Debug, JsonSchema)]
pub struct StatusView {
    pub id: crate::model::DeploymentId,
    pub app: crate::model::AppName,
    pub status: Status,
    pub progress: u8,
    pub message: String,
    pub error: Option<String>,
    pub completed: bool,
    pub successful: bool,
    pub created_at: String,
    pub updated_at: String,
}

impl From<Deployment> for StatusView {
    fn from(d: Deployment) -> Self {
        StatusView {
            status: d.status,
            completed: d.completed(),
            successful: d.successful(),
            created_at: rfc3339(d.created_at_ms),
            updated_at: rfc3339(d.updated_at_ms),
            id: d.id,
            app: d.app,
            progress: d.progress,
            message: d.message,
            error: d.error,
        }
    }
}

/// An app with its live replicas.
#[derive(Serialize, Deserialize, Debug, JsonSchema)]
pub struct AppView {
    #[serde(flatten)]
    pub app: App,
    pub replicas: Vec<ReplicaView>,
    /// Replica slots of the serving release whose replicas keep dying: each is restarted
    /// with back-off, and none serves now.
    #[serde(default)]
    pub crash_looping: Vec<CrashLoop>,
}

/// A replica slot in a crash loop.
#[derive(Serialize, Deserialize, Debug, Clone, JsonSchema)]
pub struct CrashLoop {
    pub version: String,
    pub slot: u32,
    /// Deaths in a row (forgiven after 10 minutes healthy).
    pub restarts: u32,
    /// How the last replica ended ("exited with code 3").
    pub last_exit: Option<String>,
    /// The last lines it printed.
    pub last_logs: String,
    /// When the next replica starts.
    pub next_restart_in_ms: u64,
}

/// `POST /api/certs`: a host's certificate chain and private key, in PEM.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CertBody {
    pub host: String,
    pub cert_pem: String,
    pub key_pem: String,
}

/// What `cert list` shows of a certificate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CertInfo {
    pub host: String,
    /// Every name the certificate is for.
    pub names: Vec<String>,
    pub issuer: String,
    pub not_before_s: i64,
    pub not_after_s: i64,
}

/// `PUT /api/registries/{registry}`: credentials for image pulls from a registry.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for LoginBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LoginBody {{ username: {:?}, password: *** }}", self.username)
    }
}

/// A registry the server has credentials for, as `registry list` shows it: never the
/// password.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RegistryView {
    pub registry: String,
    pub username: String,
    /// `registry login` (stored by the server) or `server.toml`. Docker's own
    /// credentials of the server's user are used too, and not listed.
    pub source: String,
    /// When the login was given (0 for server.toml).
    pub updated_at_ms: i64,
}

/// `POST /api/apps/{name}/scale`.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScaleBody {
    pub replicas: u32,
}

#[derive(Serialize, Deserialize, Debug, JsonSchema)]
pub struct ReplicaView {
    #[serde(flatten)]
    pub record: ReplicaRecord,
    pub healthy: bool,
}

/// `deployment diagnose`: what happened to a deployment and why, cause first.
#[derive(Serialize, Deserialize, Debug, JsonSchema)]
pub struct Diagnosis {
    /// One line: the deployment, its status, and the cause when it did not complete.
    pub summary: String,
    pub cause: Option<String>,
    pub deployment: Deployment,
    /// The event log, oldest first (step-by-step lines only with `verbose`).
    pub timeline: Vec<Event>,
    /// Errors of the deployment's plugin and its steps.
    pub errors: Vec<Event>,
    /// The app's replicas as they are now, with their latest probe and recent output.
    pub replicas: Vec<ReplicaDiagnosis>,
}

#[derive(Serialize, Deserialize, Debug, JsonSchema)]
pub struct ReplicaDiagnosis {
    #[serde(flatten)]
    pub record: ReplicaRecord,
    pub running: bool,
    pub healthy: bool,
    /// The latest probe's message, for example "GET http://127.0.0.1:4123/health returned 503".
    pub last_probe: Option<String>,
    pub logs: String,
}

/// `metrics get`: live figures per version or variant, and how they compare.
#[derive(Serialize, Deserialize, Debug, Clone, JsonSchema)]
pub struct MetricsView {
    pub deployment_id: crate::model::DeploymentId,
    pub strategy: crate::model::StrategyName,
    pub versions: Vec<VersionMetrics>,
    pub comparisons: Vec<Comparison>,
}

/// What the dashboard draws for a deployment: its compared versions' figures second by
/// second, Hivemind's analysis of each traffic split it went through, and the totals.
#[derive(Serialize, Deserialize, Debug, Clone, JsonSchema)]
pub struct SeriesView {
    pub deployment_id: String,
    /// Oldest first; at most the last hour.
    pub samples: Vec<Sample>,
    /// One per traffic split, oldest first; the last is still open (`to_ms` absent) while
    /// the split holds.
    pub steps: Vec<StepAnalysis>,
    /// Every compared version's counts since the series began (the engine's first sample
    /// of the deployment, within a second of its start), and the tests of each against
    /// the others (absent until the second sample).
    pub totals: Option<MetricsView>,
}

/// One interval (about a second) of traffic.
#[derive(Serialize, Deserialize, Debug, Clone, JsonSchema)]
pub struct Sample {
    /// When the interval ended (ms since the epoch).
    pub at_ms: i64,
    pub versions: Vec<SampleVersion>,
}

/// A version's figures over one interval.
#[derive(Serialize, Deserialize, Debug, Clone, JsonSchema)]
pub struct SampleVersion {
    pub version: String,
    /// Its share of the app's traffic (the router's weight) at the end of the interval.
    pub weight: u32,
    pub requests: u64,
    pub errors: u64,
    pub error_rate: f64,
    pub p99_ms: f64,
}

/// The counts of the compared versions while one traffic split held, and the same
/// significance tests the built-in strategies run, over those counts alone.
#[derive(Serialize, Deserialize, Debug, Clone, JsonSchema)]
pub struct StepAnalysis {
    pub from_ms: i64,
    pub to_ms: Option<i64>,
    /// Version and weight, as the app's split.
    pub split: crate::model::Split,
    pub versions: Vec<VersionMetrics>,
    pub comparisons: Vec<Comparison>,
}

/// What a version plays in a deployment's comparison.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Stable,
    Canary,
    Variant,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Stable => "stable",
            Role::Canary => "canary",
            Role::Variant => "variant",
        })
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, JsonSchema)]
pub struct VersionMetrics {
    pub version: String,
    pub role: Role,
    pub requests: u64,
    /// 5xx answers and connection errors.
    pub errors: u64,
    pub error_rate: f64,
    pub goals: u64,
    pub goal_rate: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub in_flight: u64,
}

/// What a comparison compares.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Metric {
    ErrorRate,
    Latency,
    Goal,
}

/// The statistical test a comparison ran.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum StatTest {
    /// A pooled two-proportion z-test (error rates, goal rates).
    TwoProportionZ,
    /// A Mann-Whitney U test on latency histograms.
    MannWhitneyU,
}

/// What a comparison concluded.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Too few requests on a side for the test.
    NotEnoughData,
    NoSignificantDifference,
    /// Significantly worse: a higher error rate, or slower.
    SignificantlyWorse,
    /// Significantly better: a higher goal rate.
    SignificantlyBetter,
}

/// One test of `version` against `baseline`.
#[derive(Serialize, Deserialize, Debug, Clone, JsonSchema)]
pub struct Comparison {
    pub metric: Metric,
    pub version: String,
    pub baseline: String,
    pub test: StatTest,
    pub statistic: f64,
    /// One-sided p-value that `version` is worse (or, for goals, better).
    pub p: f64,
    pub verdict: Verdict,
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Metric::ErrorRate => "error-rate",
            Metric::Latency => "latency",
            Metric::Goal => "goal",
        })
    }
}

impl std::fmt::Display for StatTest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StatTest::TwoProportionZ => "two-proportion z",
            StatTest::MannWhitneyU => "Mann-Whitney U",
        })
    }
}

impl Comparison {
    /// The verdict as people read it in a table: "significantly higher" for an error
    /// rate, "significantly slower" for latency.
    pub fn verdict_words(&self) -> &'static str {
        match (self.verdict, self.metric) {
            (Verdict::NotEnoughData, _) => "not enough data",
            (Verdict::NoSignificantDifference, _) => "no significant difference",
            (Verdict::SignificantlyWorse, Metric::Latency) => "significantly slower",
            (Verdict::SignificantlyWorse, _) => "significantly higher",
            (Verdict::SignificantlyBetter, _) => "significantly higher",
        }
    }
}

/// A loaded plugin.
#[derive(Serialize, Deserialize, Debug, JsonSchema)]
pub struct PluginView {
    pub name: String,
    pub version: String,
    pub sha256: String,
    pub description: String,
    pub origin: Origin,
    pub size: usize,
    pub enabled: bool,
    pub api_version: String,
    /// Where it came from: "built in", a file, an OCI reference, the plugins dir.
    pub source: String,
    pub kind: Kind,
    /// Who signed it; absent for an unsigned component (and the built-ins, which are part
    /// of the server's binary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<SignatureView>,
    /// The powers it was granted at install (`jobs`, `http`, `http:HOST:PORT`).
    #[serde(default)]
    pub grants: crate::grants::Grants,
    /// The grantable capabilities its WIT world imports (`jobs`, `http`): what it may ask for.
    #[serde(default)]
    pub asks_for: Vec<String>,
}

/// A plugin's minisign signature.
#[derive(Serialize, Deserialize, Debug, Clone, JsonSchema)]
pub struct SignatureView {
    /// The signing key's ID, as minisign prints it.
    pub key_id: String,
    /// The trusted public key file it verified against; absent when the key is not among
    /// the server's trusted keys (possible only under `--plugin-trust permissive`), in
    /// which case the signature could not be checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trusted_key: Option<String>,
    pub verified: bool,
    /// The comment the signature covers (minisign's trusted comment).
    pub comment: String,
}

/// Everything `plugin inspect` shows.
#[derive(Serialize, Deserialize, Debug, JsonSchema)]
pub struct PluginDetails {
    #[serde(flatten)]
    pub plugin: PluginView,
    pub world: String,
    pub imports: Vec<String>,
    pub exports: Vec<String>,
}

/// A deployment profile for CI.
#[derive(Serialize, Deserialize, Debug, JsonSchema)]
pub struct PipelineView {
    pub name: String,
    pub spec: DeploymentSpec,
}

/// `GET /api/apps/{name}/preview-key`: what lets a request choose a version by name.
#[derive(Serialize, Deserialize, JsonSchema)]
pub struct PreviewKey {
    pub app: crate::model::AppName,
    /// Send it as this header (or as the cookie `hivemind_preview`), with
    /// `x-hivemind-variant: VERSION`.
    pub header: String,
    pub key: String,
}

/// `POST /api/token/rotate`: the new token.
#[derive(Serialize, Deserialize, JsonSchema)]
pub struct Rotated {
    pub token: String,
}

/// `POST /api/deployments/{id}/select-winner`.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WinnerBody {
    pub variant: String,
}

/// Every error the API sends: `{"error": {"code", "field", "message"}}`.
#[derive(Serialize, Deserialize, JsonSchema)]
pub struct ErrorBody {
    pub error: UserError,
}

/// The servers of the cluster, which leads, since when, and under which lease epoch.
#[derive(Serialize, Deserialize, Debug, JsonSchema)]
pub struct ClusterView {
    /// `sqlite` (one server) or `postgres`.
    pub database: String,
    /// The leading server's name, if a live lease names one.
    pub leader: Option<String>,
    /// The lease's fencing epoch: it rises at every change of leader.
    pub epoch: i64,
    pub leader_since: Option<String>,
    pub lease_expires_in_ms: Option<u64>,
    /// Times the lease passed on from a leader that had not given it up.
    pub failovers: u64,
    /// The lease's length.
    pub lease_ms: u64,
    /// The server that answered.
    pub this_server: String,
    pub servers: Vec<ClusterServerView>,
}

#[derive(Serialize, Deserialize, Debug, JsonSchema)]
pub struct ClusterServerView {
    pub name: String,
    pub api_url: String,
    /// `leader` or `follower`.
    pub role: String,
    pub started_at: String,
    /// Since its last heartbeat.
    pub seen_ms_ago: u64,
}
