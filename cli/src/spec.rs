//! The flags that describe what to deploy, shared by `app deploy`, `deployment create`
//! and `cicd configure-deployment`: the spec itself, the hooks, and the built-in
//! strategies' own flags, each of which becomes a parameter the strategy checks.

use crate::model::DeploymentSpec;
use clap::Args;

/// The flags that describe what to deploy.
#[derive(Args)]
pub struct SpecArgs {
    /// A container image (docker runtime), or a command line (process runtime). An A/B
    /// test takes its images from --variant instead.
    #[arg(long)]
    image: Option<String>,
    /// An A/B variant, name=NAME,image=IMAGE,percentage=P (repeatable; shares sum to 100).
    #[arg(long = "variant", value_parser = crate::model::VariantSpec::parse)]
    variants: Vec<crate::model::VariantSpec>,
    /// The strategy (a plugin name).
    /// [default: simple]
    #[arg(long)]
    strategy: Option<String>,
    /// How many replicas. [default: 1]
    #[arg(long)]
    replicas: Option<u32>,
    /// The app's router port, when the app is new (default: a free port).
    #[arg(long)]
    port: Option<u16>,
    /// The port the app listens on inside its container.
    /// [default: 8080]
    #[arg(long)]
    container_port: Option<u16>,
    /// The HTTP path health probes GET; a 2xx or 3xx is healthy.
    /// [default: /]
    #[arg(long)]
    health_check_path: Option<String>,
    /// The port health probes go to inside the container (docker runtime).
    #[arg(long)]
    health_check_port: Option<u16>,
    /// Seconds a new replica may take to pass its health check. [default: 60]
    #[arg(long)]
    health_check_timeout: Option<u32>,
    /// An environment variable for the replicas, KEY=VALUE (repeatable).
    #[arg(long = "env", value_parser = crate::model::parse_key_value)]
    env: Vec<(String, String)>,
    /// A secret environment variable for the replicas (repeatable): KEY=VALUE, or KEY alone
    /// to take the value of this shell's variable KEY (kept out of the shell's history and
    /// `ps`). The server never shows it again: answers show a fingerprint.
    #[arg(long = "secret", value_name = "KEY[=VALUE]", value_parser = parse_secret)]
    secrets: Vec<(String, String)>,
    /// A secret environment variable whose value is a file's content, KEY=PATH
    /// (repeatable; one trailing newline is dropped).
    #[arg(long = "secret-file", value_name = "KEY=PATH", value_parser = parse_secret_file)]
    secret_files: Vec<(String, String)>,
    /// A strategy parameter, KEY=VALUE (repeatable), for strategies of your own.
    #[arg(long = "param", value_parser = crate::model::parse_key_value)]
    params: Vec<(String, String)>,
    #[command(flatten)]
    strategy_flags: StrategyFlags,
    /// Roll back on its own when a step, a health gate or the deadline fails.
    /// [default: true]
    #[arg(long)]
    auto_rollback: Option<bool>,
    /// A named volume for each replica, NAME:/path (repeatable; docker).
    #[arg(long = "volume", value_parser = check_volume)]
    volumes: Vec<String>,
    /// Where replicas may run, a Swarm placement constraint such as
    /// node.labels.zone==a (repeatable; swarm runtime).
    #[arg(long = "constraint", value_parser = check_constraint)]
    constraints: Vec<String>,
    /// CPUs per replica, for example 0.5 (docker).
    #[arg(long)]
    cpu: Option<f64>,
    /// Memory per replica, for example 512M or 1G.
    #[arg(long, value_parser = check_memory)]
    memory: Option<String>,
    /// The traffic router; `builtin` is Hivemind's own proxy, and the only one.
    #[arg(long)]
    traffic_router: Option<String>,
    /// A deployment target named in the server's config file.
    #[arg(long)]
    cloud_provider: Option<String>,
    /// Seconds without progress after which the deployment fails.
    /// [default: 600]
    #[arg(long)]
    progress_deadline: Option<u32>,
    /// The most replicas the app may run at once, all versions together (kept for its
    /// later deployments). [default: the server's --app-replica-quota]
    #[arg(long)]
    replica_quota: Option<u32>,
    /// A host name the app answers to on the server's HTTP entrypoint (`serve
    /// --http-addr`); repeatable. Replaces the app's host names. [default: the app's]
    #[arg(long = "host", value_name = "NAME")]
    hosts: Vec<String>,
    /// The path prefix the app is bound to under its host names, such as /api: the
    /// longest prefix wins, and the path reaches the app whole. [default: the app's, / at first]
    #[arg(long)]
    path_prefix: Option<String>,
    /// Where the app's hosts get their certificates on the HTTPS entrypoint: manual
    /// (`hivemind cert add`) or acme (issued and renewed by the server's --acme-directory).
    /// [default: the app's, manual at first]
    #[arg(long, value_enum)]
    tls: Option<crate::model::TlsMode>,
    /// Redirect plain HTTP to the app's hosts to HTTPS (ACME challenges excepted):
    /// `--redirect-https` or `--redirect-https false`. [default: the app's, no at first]
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    redirect_https: Option<bool>,
    /// What the app's replicas speak: http1, or h2c (HTTP/2 without TLS, as gRPC
    /// services do; trailers pass). [default: the app's, http1 at first]
    #[arg(long, value_enum)]
    backend_protocol: Option<crate::model::BackendProtocol>,
    /// When the image is pulled from its registry: `missing` (when the engine lacks it),
    /// `always` (a moved tag is seen), or `never` [default: the server's, `missing`].
    /// Either way the release is pinned to the digest it resolved to.
    #[arg(long, value_enum)]
    pull: Option<crate::model::PullPolicy>,
    /// Failed health checks in a row (after a replica once passed) that make the healer
    /// replace a replica of the serving release. [default: 3]
    #[arg(long)]
    liveness_failures: Option<u32>,
    #[command(flatten)]
    hooks: HookFlags,
}

/// `--pre-hook` and friends. Each hook is COMMAND (run in a one-off replica of the new
/// release), webhook:URL, or plugin:NAME[@VERSION] [ARGUMENT].
#[derive(Args, Default)]
#[command(next_help_heading = "Hooks")]
struct HookFlags {
    /// Runs before anything changes; a failure stops the deployment untouched (repeatable).
    #[arg(long = "pre-hook", value_name = "HOOK", value_parser = check_hook)]
    pre: Vec<String>,
    /// Runs while the new release is on its preview route, before traffic moves; a
    /// failure rolls back (blue-green, canary; repeatable).
    #[arg(long = "verify-hook", value_name = "HOOK", value_parser = check_hook)]
    verify: Vec<String>,
    /// Runs after the new release serves (repeatable).
    #[arg(long = "post-hook", value_name = "HOOK", value_parser = check_hook)]
    post: Vec<String>,
    /// Runs when the deployment rolls back, on its own or by request (repeatable).
    #[arg(long = "rollback-hook", value_name = "HOOK", value_parser = check_hook)]
    rollback: Vec<String>,
    /// Seconds each hook may run before it is stopped and fails. [default: 300]
    #[arg(long)]
    hook_timeout: Option<u32>,
    /// How many more times a failed hook is tried. [default: 0]
    #[arg(long)]
    hook_retries: Option<u32>,
    /// What a failed post hook does. [default: record]
    #[arg(long, value_enum)]
    post_hook_failure: Option<crate::model::PostHookFailure>,
}

impl HookFlags {
    /// Applies the flags on the command line to `hooks` (a pipeline's, or the defaults).
    fn apply(self, hooks: &mut crate::model::Hooks) {
        for (flags, stage) in [
            (self.pre, &mut hooks.pre),
            (self.verify, &mut hooks.verify),
            (self.post, &mut hooks.post),
            (self.rollback, &mut hooks.rollback),
        ] {
            if !flags.is_empty() {
                *stage = flags;
            }
        }
        hooks.timeout = self.hook_timeout.unwrap_or(hooks.timeout);
        hooks.retries = self.hook_retries.unwrap_or(hooks.retries);
        hooks.post_failure = self.post_hook_failure.unwrap_or(hooks.post_failure);
    }
}

fn check_hook(text: &str) -> Result<String, String> {
    crate::model::HookRef::parse(text).map(|_| text.to_string())
}

impl SpecArgs {
    /// The spec these flags describe, on top of `base` (a CI pipeline's profile) when
    /// given: only the flags on the command line override it.
    pub fn into_spec(self, app: String, name: Option<String>, base: Option<DeploymentSpec>) -> DeploymentSpec {
        let mut spec = base.unwrap_or_else(|| DeploymentSpec::new(&app, ""));
        spec.app = app.into();
        spec.name = name.or(spec.name);
        if let Some(image) = self.image {
            spec.image = image;
        }
        if !self.variants.is_empty() {
            spec.variants = self.variants;
        }
        macro_rules! set {
            ($($field:ident),*) => {$(if let Some(v) = self.$field { spec.$field = v.into(); })*};
        }
        set!(
            strategy,
            replicas,
            container_port,
            health_check_path,
            health_check_timeout,
            auto_rollback,
            progress_deadline,
            liveness_failures
        );
        spec.port = self.port.or(spec.port);
        spec.replica_quota = self.replica_quota.or(spec.replica_quota);
        if !self.hosts.is_empty() {
            spec.hosts = self.hosts;
        }
        spec.path_prefix = self.path_prefix.or(spec.path_prefix);
        spec.tls = self.tls.or(spec.tls);
        spec.redirect_https = self.redirect_https.or(spec.redirect_https);
        spec.backend_protocol = self.backend_protocol.or(spec.backend_protocol);
        spec.pull = self.pull.or(spec.pull);
        spec.health_check_port = self.health_check_port.or(spec.health_check_port);
        if self.cpu.is_some() {
            spec.resources.cpu = self.cpu;
        }
        if self.memory.is_some() {
            spec.resources.memory = self.memory;
        }
        if !self.volumes.is_empty() {
            spec.resources.volumes = self.volumes;
        }
        if !self.constraints.is_empty() {
            spec.resources.constraints = self.constraints;
        }
        spec.traffic_router = self.traffic_router.or(spec.traffic_router);
        spec.cloud_provider = self.cloud_provider.or(spec.cloud_provider);
        spec.params.extend(self.params.into_iter().chain(self.strategy_flags.into_params()));
        spec.env.extend(self.env);
        spec.secrets.extend(self.secrets.into_iter().chain(self.secret_files));
        self.hooks.apply(&mut spec.hooks);
        spec
    }
}

/// The built-in strategies' flags. Each becomes a parameter of the same name, checked by
/// the strategy itself (so `--batch-size -2` reaches it and gets its message).
#[derive(Args, Default)]
#[command(next_help_heading = "Strategy options")]
struct StrategyFlags {
    /// rolling-update: extra replicas allowed during the update, a count or a percentage (rounds up).
    #[arg(long, allow_hyphen_values = true)]
    max_surge: Option<String>,
    /// rolling-update: replicas that may be unavailable, a count or a percentage (rounds down).
    #[arg(long, allow_hyphen_values = true)]
    max_unavailable: Option<String>,
    /// rolling-update: seconds a new replica must stay healthy before it counts as ready.
    #[arg(long, allow_hyphen_values = true)]
    min_ready: Option<String>,
    /// zero-downtime: replicas replaced per batch.
    #[arg(long, allow_hyphen_values = true)]
    batch_size: Option<String>,
    /// zero-downtime: seconds between batches.
    #[arg(long, allow_hyphen_values = true)]
    batch_delay: Option<String>,
    /// zero-downtime, rolling-update: seconds old replicas get to finish their requests.
    #[arg(long, allow_hyphen_values = true)]
    drain_timeout: Option<String>,
    /// zero-downtime: the router service's name (the app's by default).
    #[arg(long)]
    service: Option<String>,
    /// blue-green: the most seconds verification may take once green is healthy (a soak
    /// may not be longer). Not a wait: traffic switches as soon as green is verified.
    /// [default: 30]
    #[arg(long, allow_hyphen_values = true)]
    verification_timeout: Option<String>,
    /// blue-green: seconds green must stay healthy and error-free on its preview route
    /// after it is verified, before the switch. [default: 0]
    #[arg(long, allow_hyphen_values = true)]
    verification_soak: Option<String>,
    /// blue-green: switch on its own after verification (false: wait for `deployment promote`).
    #[arg(long)]
    auto_promote: Option<String>,
    /// blue-green: seconds blue stays, idle, after the switch, for an instant rollback.
    #[arg(long, allow_hyphen_values = true)]
    scale_down_delay: Option<String>,
    /// canary: the first share of traffic for the new version, in percent.
    #[arg(long, allow_hyphen_values = true)]
    percentage: Option<String>,
    /// canary: the shares to walk through, for example 20,50,100.
    #[arg(long, allow_hyphen_values = true)]
    steps: Option<String>,
    /// canary: seconds of analysis at each step.
    #[arg(long, allow_hyphen_values = true)]
    interval: Option<String>,
    /// canary: the highest error rate the canary may have (0.01 = 1%), when it is also
    /// significantly worse than stable.
    #[arg(long, allow_hyphen_values = true)]
    max_error_rate: Option<String>,
    /// canary: the highest p99 latency the canary may have, when it is also significantly
    /// slower than stable.
    #[arg(long, allow_hyphen_values = true)]
    max_p99_latency_ms: Option<String>,
    /// canary: requests each side needs in a window before a verdict; fewer is inconclusive.
    #[arg(long, allow_hyphen_values = true)]
    min_requests: Option<String>,
    /// canary, ab-testing: where replicas expose their own Prometheus counters.
    #[arg(long)]
    metrics_endpoint: Option<String>,
    /// ab-testing: seconds to collect figures before a winner is chosen.
    #[arg(long, allow_hyphen_values = true)]
    duration: Option<String>,
    /// ab-testing: the conversion goal, header:NAME (a response header) or counter:NAME
    /// (a counter on the metrics endpoint).
    #[arg(long)]
    goal: Option<String>,
    /// ab-testing: pick the winner on its own by error-rate, p99-latency or goal, when the
    /// difference is significant.
    #[arg(long)]
    winner_metric: Option<String>,
}

impl StrategyFlags {
    fn into_params(self) -> Vec<(String, String)> {
        [
            ("max-surge", self.max_surge),
            ("max-unavailable", self.max_unavailable),
            ("min-ready", self.min_ready),
            ("batch-size", self.batch_size),
            ("batch-delay", self.batch_delay),
            ("drain-timeout", self.drain_timeout),
            ("service", self.service),
            ("verification-timeout", self.verification_timeout),
            ("verification-soak", self.verification_soak),
            ("auto-promote", self.auto_promote),
            ("scale-down-delay", self.scale_down_delay),
            ("percentage", self.percentage),
            ("steps", self.steps),
            ("interval", self.interval),
            ("max-error-rate", self.max_error_rate),
            ("max-p99-latency-ms", self.max_p99_latency_ms),
            ("min-requests", self.min_requests),
            ("metrics-endpoint", self.metrics_endpoint),
            ("duration", self.duration),
            ("goal", self.goal),
            ("winner-metric", self.winner_metric),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
        .collect()
    }
}

fn check_volume(s: &str) -> Result<String, String> {
    crate::model::parse_volume(s).map(|_| s.to_string())
}

fn check_constraint(s: &str) -> Result<String, String> {
    crate::model::parse_constraint(s).map(|()| s.trim().to_string())
}

fn check_memory(s: &str) -> Result<String, String> {
    crate::model::parse_memory(s).map(|_| s.trim().to_string())
}

/// `--secret KEY=VALUE`, or `--secret KEY` with the value of the variable KEY.
fn parse_secret(text: &str) -> Result<(String, String), String> {
    if let Some((key, value)) = text.split_once('=') {
        return crate::model::parse_key_value(&format!("{key}={value}"));
    }
    let key = text.trim();
    match std::env::var(key) {
        Ok(value) => Ok((key.to_string(), value)),
        Err(_) => Err(format!(
            "`--secret {key}` takes its value from the environment variable {key}, which is not set; export it, or give --secret-file {key}=PATH"
        )),
    }
}

/// `--secret-file KEY=PATH`: the file's content, without one trailing newline.
fn parse_secret_file(text: &str) -> Result<(String, String), String> {
    let (key, path) = crate::model::parse_key_value(text).map_err(|_| format!("`{text}` is not KEY=PATH"))?;
    let value =
        std::fs::read_to_string(&path).map_err(|e| format!("--secret-file {key}={path}: cannot read {path}: {e}"))?;
    let value = value.strip_suffix('\n').map(|v| v.strip_suffix('\r').unwrap_or(v)).unwrap_or(&value);
    Ok((key, value.to_string()))
}
