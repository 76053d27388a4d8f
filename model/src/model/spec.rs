//! What a user asks for: a deployment's spec, its hooks, its A/B variants, what each
//! replica may use, and the parsers of their command-line forms.

use super::{AppName, StrategyName};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a user asks for when they create a deployment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeploymentSpec {
    /// The app to deploy. Created on its first deployment.
    pub app: AppName,
    /// A name for the deployment; defaults to the app's.
    #[serde(default)]
    pub name: Option<String>,
    /// A container image, or a command line for the process runtime. Empty for an A/B
    /// test, whose variants name their images.
    #[serde(default)]
    pub image: String,
    #[serde(default = "default_replicas")]
    pub replicas: u32,
    #[serde(default = "default_strategy")]
    pub strategy: StrategyName,
    /// The router's port for the app. Only used when the app is created; a free port is
    /// picked when absent.
    #[serde(default)]
    pub port: Option<u16>,
    /// The port the app listens on inside its container (docker runtime).
    #[serde(default = "default_container_port")]
    pub container_port: u16,
    #[serde(default = "default_health_path")]
    pub health_check_path: String,
    /// The port health probes go to, inside the container (docker runtime); the app's
    /// own port when absent.
    #[serde(default)]
    pub health_check_port: Option<u16>,
    /// Seconds a new replica may take to pass its health check (one probe never takes
    /// more than 2 s).
    #[serde(default = "default_health_timeout")]
    pub health_check_timeout: u32,
    /// A/B variants (`--variant name=v1,image=app:v1,percentage=50`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variants: Vec<VariantSpec>,
    /// Environment variables for the replicas (`--env KEY=VALUE`).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Environment variables whose values are secret (`--secret KEY=VALUE`,
    /// `--secret-file KEY=PATH`): the replicas get them as they get `env`, but no answer,
    /// event, log line or page shows them; answers show `sha256:` and 8 hex digits of
    /// (app, key, value) instead, so that a change is visible.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, String>,
    /// Strategy parameters (`--param k=v` and the strategies' own flags).
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// What each replica may use, and the volumes it mounts.
    #[serde(default, skip_serializing_if = "Resources::is_empty")]
    pub resources: Resources,
    /// The traffic router: `builtin` is the only one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_router: Option<String>,
    /// A deployment target from the server's configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_provider: Option<String>,
    /// Whether a failure starts the rollback phase on its own.
    #[serde(default = "default_true")]
    pub auto_rollback: bool,
    /// Seconds a deployment may go without progress before it fails.
    #[serde(default = "default_progress_deadline")]
    pub progress_deadline: u32,
    /// What runs before, during and after the deployment (`--pre-hook` and friends).
    #[serde(default, skip_serializing_if = "Hooks::is_empty")]
    pub hooks: Hooks,
    /// Failed health checks in a row, after a replica once passed, that make the healer
    /// replace it (`--liveness-failures`).
    #[serde(default = "default_liveness_failures")]
    pub liveness_failures: u32,
    /// The most replicas the app may run at once, all its versions together; kept for its
    /// later deployments. The server gives each app a share of its `--max-replicas`
    /// (`--app-replica-quota`) unless told otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica_quota: Option<u32>,
    /// Host names the app answers to on the server's entrypoints (`--host`, repeatable):
    /// they replace the app's. None: the app keeps the ones it has.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// The path prefix the app is bound to under its host names (`--path-prefix`), such
    /// as `/api`; the longest prefix wins. The app keeps the one it has when absent (`/`
    /// at first). The path reaches the app whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    /// Where the app's hosts get their certificates on the HTTPS entrypoint (`--tls`):
    /// `manual` (`hivemind cert add`) or `acme` (issued and renewed by the server's ACME
    /// directory). The app keeps its own when absent (`manual` at first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsMode>,
    /// Redirect plain HTTP to the app's hosts to HTTPS (`--redirect-https`), ACME's
    /// challenges excepted. The app keeps its own when absent (no at first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_https: Option<bool>,
    /// What the app's replicas speak (`--backend-protocol`): `http1`, or `h2c` (HTTP/2
    /// without TLS, as gRPC services do). The app keeps its own when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_protocol: Option<BackendProtocol>,
    /// When the image is pulled from its registry (`--pull`): the server's `[images]
    /// pull` when absent (`missing` unless configured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull: Option<PullPolicy>,
}

/// When a deployment's images are pulled from their registries.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum PullPolicy {
    /// When the engine does not have the image.
    #[default]
    Missing,
    /// Every deployment: a moved tag is seen.
    Always,
    /// Never: the engine must have the image already.
    Never,
}

impl PullPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Missing => "missing",
            PullPolicy::Always => "always",
            PullPolicy::Never => "never",
        }
    }
}

/// What an app's replicas speak.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum BackendProtocol {
    /// HTTP/1.1.
    #[default]
    #[value(name = "http1")]
    #[serde(rename = "http1")]
    Http1,
    /// HTTP/2 with prior knowledge, without TLS.
    H2c,
}

/// Where an app's certificates come from.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum TlsMode {
    /// Added by hand: `hivemind cert add`.
    #[default]
    Manual,
    /// Issued and renewed through ACME (HTTP-01 on the HTTP entrypoint).
    Acme,
}

/// A deployment's hooks. Each entry is `COMMAND` (the built-in `command` hook),
/// `webhook:URL`, or `plugin:NAME[@VERSION] [ARGUMENT]` (an installed hook component).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Hooks {
    /// Before any replica or route changes; a failure stops the deployment untouched.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pre: Vec<String>,
    /// While the new release is reachable on its preview route, before traffic moves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verify: Vec<String>,
    /// After the new release serves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post: Vec<String>,
    /// When the deployment rolls back, automatically or by hand.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rollback: Vec<String>,
    /// Seconds each hook may run before it is stopped and fails.
    #[serde(default = "default_hook_timeout")]
    pub timeout: u32,
    /// How many more times a failed hook is tried.
    #[serde(default)]
    pub retries: u32,
    /// What a failed post hook does: `record` it, or `rollback`.
    #[serde(default)]
    pub post_failure: PostHookFailure,
}

fn default_hook_timeout() -> u32 {
    300
}

impl Default for Hooks {
    fn default() -> Self {
        Hooks {
            pre: Vec::new(),
            verify: Vec::new(),
            post: Vec::new(),
            rollback: Vec::new(),
            timeout: default_hook_timeout(),
            retries: 0,
            post_failure: PostHookFailure::Record,
        }
    }
}

impl Hooks {
    pub fn is_empty(&self) -> bool {
        *self == Hooks::default()
    }

    /// The hooks of one stage.
    pub fn of(&self, stage: HookStage) -> &[String] {
        match stage {
            HookStage::Pre => &self.pre,
            HookStage::Verify => &self.verify,
            HookStage::Post => &self.post,
            HookStage::Rollback => &self.rollback,
        }
    }
}

/// What a failed post hook does (`--post-hook-failure`).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum PostHookFailure {
    /// Record the failure in the deployment's events; the new release keeps serving.
    #[default]
    Record,
    /// Roll the deployment back.
    Rollback,
}

/// When a hook runs.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HookStage {
    Pre,
    Verify,
    Post,
    Rollback,
}

impl HookStage {
    pub const ALL: [HookStage; 4] = [HookStage::Pre, HookStage::Verify, HookStage::Post, HookStage::Rollback];

    pub fn as_str(self) -> &'static str {
        match self {
            HookStage::Pre => "pre",
            HookStage::Verify => "verify",
            HookStage::Post => "post",
            HookStage::Rollback => "rollback",
        }
    }
}

/// One hook as the user wrote it, resolved to the hook component that runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookRef {
    /// The hook component: `command`, `webhook` or an installed one.
    pub plugin: String,
    /// A version the user pinned (`plugin:NAME@VERSION`).
    pub version: Option<String>,
    /// What the component gets: the command, the URL, or what followed the name.
    pub argument: String,
}

impl HookRef {
    /// Parses `COMMAND`, `command:COMMAND`, `webhook:URL` or `plugin:NAME[@VERSION] [ARGUMENT]`.
    pub fn parse(text: &str) -> Result<HookRef, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("a hook is empty; give a command (\"./run-tests.sh\"), webhook:URL or plugin:NAME".into());
        }
        let hook = |plugin: &str, version: Option<String>, argument: &str| HookRef {
            plugin: plugin.to_string(),
            version,
            argument: argument.trim().to_string(),
        };
        if let Some(url) = text.strip_prefix("webhook:") {
            let url = url.trim();
            if !url.starts_with("http://") || url.len() <= "http://".len() {
                return Err(format!(
                    "hook `{text}`: a webhook needs an http:// URL, as in webhook:http://127.0.0.1:9000/check"
                ));
            }
            return Ok(hook("webhook", None, url));
        }
        if let Some(command) = text.strip_prefix("command:") {
            if command.trim().is_empty() {
                return Err(format!("hook `{text}`: give the command to run after command:"));
            }
            return Ok(hook("command", None, command));
        }
        if let Some(rest) = text.strip_prefix("plugin:") {
            let (name, argument) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            let (name, version) = match name.split_once('@') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (name, None),
            };
            let name_ok = !name.is_empty()
                && name.starts_with(|c: char| c.is_ascii_lowercase())
                && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !name_ok || version.as_deref() == Some("") {
                return Err(format!(
                    "hook `{text}`: write plugin:NAME or plugin:NAME@VERSION, with a lowercase plugin name"
                ));
            }
            return Ok(hook(name, version, argument));
        }
        Ok(hook("command", None, text))
    }
}

fn default_true() -> bool {
    true
}
fn default_progress_deadline() -> u32 {
    600
}

impl DeploymentSpec {
    /// A spec with every default, for `app` running `image`.
    pub fn new(app: &str, image: &str) -> DeploymentSpec {
        DeploymentSpec {
            app: app.into(),
            name: None,
            image: image.to_string(),
            replicas: default_replicas(),
            strategy: default_strategy(),
            port: None,
            container_port: default_container_port(),
            health_check_path: default_health_path(),
            health_check_port: None,
            health_check_timeout: default_health_timeout(),
            variants: Vec::new(),
            env: BTreeMap::new(),
            secrets: BTreeMap::new(),
            resources: Resources::default(),
            traffic_router: None,
            cloud_provider: None,
            params: BTreeMap::new(),
            auto_rollback: true,
            progress_deadline: default_progress_deadline(),
            hooks: Hooks::default(),
            liveness_failures: default_liveness_failures(),
            replica_quota: None,
            hosts: Vec::new(),
            path_prefix: None,
            tls: None,
            redirect_https: None,
            backend_protocol: None,
            pull: None,
        }
    }
}

fn default_liveness_failures() -> u32 {
    3
}

fn default_replicas() -> u32 {
    1
}
fn default_strategy() -> StrategyName {
    "simple".into()
}
fn default_container_port() -> u16 {
    8080
}
fn default_health_path() -> String {
    "/".into()
}
fn default_health_timeout() -> u32 {
    60
}

/// Limits and mounts of each replica (`--cpu 0.5 --memory 512M --volume data:/data`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// CPUs, for example 0.5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<f64>,
    /// Memory, for example "512M" or "1G".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    /// Named volumes, as NAME:/path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<String>,
    /// Where replicas may run, as Swarm placement constraints (`node.labels.zone==a`);
    /// the swarm runtime applies them, the others run replicas on their one host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<String>,
}

impl Resources {
    pub fn is_empty(&self) -> bool {
        self.cpu.is_none() && self.memory.is_none() && self.volumes.is_empty() && self.constraints.is_empty()
    }
}

/// Parses a memory size: 512M, 1G, 256Mi, 1048576 (bytes). At least 4 MiB.
pub fn parse_memory(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: f64 = number.parse().map_err(|_| format!("memory `{text}` must be a size such as 512M or 1G"))?;
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" | "ki" | "kib" => 1024.0,
        "m" | "mb" | "mi" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gi" | "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => return Err(format!("memory `{text}` has an unknown unit `{unit}`; use K, M or G")),
    };
    let bytes = n * scale;
    if !bytes.is_finite() || bytes < 4.0 * 1024.0 * 1024.0 || bytes > 1024.0f64.powi(4) {
        return Err(format!("memory `{text}` must be from 4M to 1024G"));
    }
    Ok(bytes as u64)
}

/// Parses KEY=VALUE (`--env`, `--param`).
pub fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("`{s}` is not KEY=VALUE")),
    }
}

/// Checks a volume mount NAME:/path.
pub fn parse_volume(text: &str) -> Result<(String, String), String> {
    let (name, path) =
        text.split_once(':').ok_or_else(|| format!("volume `{text}` must be NAME:/path, as in data:/data"))?;
    let name_ok = !name.is_empty()
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !name_ok {
        return Err(format!("volume name `{name}` must be letters, digits, '_', '.' and '-'"));
    }
    if !path.starts_with('/') || path.contains(':') || path.contains("..") {
        return Err(format!("volume path `{path}` must be an absolute path inside the container"));
    }
    Ok((name.to_string(), path.to_string()))
}

/// Checks a placement constraint as Swarm reads it: `node.ATTRIBUTE==VALUE` or `!=`,
/// for example `node.labels.zone==a`, `node.role!=manager`, `engine.labels.disk==ssd`.
pub fn parse_constraint(text: &str) -> Result<(), String> {
    let example = "as in node.labels.zone==a or node.role!=manager";
    let (key, value) = text
        .split_once("==")
        .or_else(|| text.split_once("!="))
        .ok_or_else(|| format!("constraint `{text}` must be KEY==VALUE or KEY!=VALUE, {example}"))?;
    let (key, value) = (key.trim(), value.trim());
    let attribute_ok = |rest: &str| {
        !rest.is_empty()
            && rest
                .split('.')
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || "_-".contains(c)))
    };
    let key_ok = key.strip_prefix("node.").or_else(|| key.strip_prefix("engine.")).is_some_and(attribute_ok);
    if !key_ok {
        return Err(format!("constraint `{text}`: `{key}` must name a node or engine attribute, {example}"));
    }
    if value.is_empty() || value.contains(['=', '!', ',']) {
        return Err(format!("constraint `{text}`: the value after the operator must be a plain word, {example}"));
    }
    Ok(())
}

/// One variant of an A/B test.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VariantSpec {
    /// Its name, which is also its version label: the router's variant header picks it.
    pub name: String,
    pub image: String,
    /// Its share of traffic; the variants' shares sum to 100.
    pub percentage: u32,
}

impl VariantSpec {
    /// Parses `name=v1,image=myapp:v1,percentage=50` (the CLI's `--variant`).
    pub fn parse(text: &str) -> Result<VariantSpec, String> {
        let (mut name, mut image, mut percentage) = (None, None, None);
        for part in text.split(',') {
            let (key, value) = part.split_once('=').ok_or_else(|| {
                format!("`{part}` in --variant `{text}` is not KEY=VALUE; write name=v1,image=app:v1,percentage=50")
            })?;
            let value = value.trim().to_string();
            match key.trim() {
                "name" => name = Some(value),
                "image" => image = Some(value),
                "percentage" => {
                    let p = value.parse::<u32>().ok().filter(|p| *p <= 100);
                    percentage = Some(p.ok_or_else(|| {
                        format!("percentage `{value}` in --variant `{text}` must be a whole number from 0 to 100")
                    })?);
                }
                other => {
                    return Err(format!(
                        "--variant `{text}`: unknown key `{other}`; the keys are name, image and percentage"
                    ));
                }
            }
        }
        match (name, image, percentage) {
            (Some(name), Some(image), Some(percentage)) => Ok(VariantSpec { name, image, percentage }),
            _ => Err(format!(
                "--variant `{text}` needs name, image and percentage, as in name=v1,image=app:v1,percentage=50"
            )),
        }
    }
}
