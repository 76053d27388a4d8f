//! The plugin runtime: one wasmtime engine, a registry of loaded strategy components,
//! and sandboxed calls into them.
//!
//! Every call runs in a fresh store with a fuel budget, a memory cap, epoch-based
//! yielding (so a busy guest never blocks the executor) and a wall-clock timeout that
//! covers host calls too. The guest gets no filesystem, sockets or environment: only the
//! capabilities in `capabilities`, scoped to its deployment's app.

pub mod bounds;
mod builtin;
pub mod capabilities;

pub use capabilities::{HookCaps, PluginState, Services, StepCaps};

use crate::model::PluginRef;
use anyhow::{Context, Result, anyhow, bail};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, StoreLimits, StoreLimitsBuilder,
};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../sdk/wit",
        world: "hivemind:plugin/strategy",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

/// The hook world. Its shared interfaces are the strategy world's own types, so one
/// `HostState` implements both.
pub mod hook_bindings {
    wasmtime::component::bindgen!({
        path: "../sdk/wit",
        world: "hivemind:plugin/hook",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "hivemind:plugin/types": super::bindings::hivemind::plugin::types,
            "hivemind:plugin/progress": super::bindings::hivemind::plugin::progress,
        },
    });
}

pub use bindings::hivemind::plugin::types as wit;
pub use bindings::{StepContext, StepOutcome};
use bindings::{Strategy, StrategyPre};
pub use hook_bindings::Stage;
use hook_bindings::{Hook, HookPre};

/// How much a plugin call may use.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Wasm instructions (roughly) per call.
    pub fuel: u64,
    /// Linear memory per instance.
    pub memory_bytes: usize,
    /// Wall-clock time per call, host calls included.
    pub timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { fuel: 500_000_000, memory_bytes: 64 << 20, timeout: Duration::from_secs(60) }
    }
}

/// Where a plugin came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    Builtin,
    Installed,
}

/// Which world a component implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Strategy,
    Hook,
}

impl Kind {
    /// What people call it: "strategy", "hook".
    pub fn noun(self) -> &'static str {
        match self {
            Kind::Strategy => "strategy",
            Kind::Hook => "hook",
        }
    }

    pub fn world(self) -> &'static str {
        match self {
            Kind::Strategy => "hivemind:plugin/strategy",
            Kind::Hook => "hivemind:plugin/hook",
        }
    }
}

/// A component of either world, instantiable.
enum Pre {
    Strategy(StrategyPre<HostState>),
    Hook(HookPre<HostState>),
}

/// A strategy or hook component, compiled, type-checked and ready to instantiate.
pub struct LoadedPlugin {
    pub info: PluginRef,
    pub description: String,
    pub origin: Origin,
    /// Where it came from, for people: "built in", a file, an OCI reference.
    pub source: String,
    pub size: usize,
    /// The plugin API version it was built against, from its imports (`0.1.0`).
    pub api_version: String,
    pub imports: Vec<String>,
    pub exports: Vec<String>,
    /// Switched off with `plugin disable`: no new deployment may use it.
    pub disabled: std::sync::atomic::AtomicBool,
    pre: Pre,
}

impl LoadedPlugin {
    pub fn kind(&self) -> Kind {
        match self.pre {
            Pre::Strategy(_) => Kind::Strategy,
            Pre::Hook(_) => Kind::Hook,
        }
    }
}

/// What a store carries: WASI (empty), limits, captured stderr, and the capabilities of
/// the step being run (none while loading).
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
    stderr: MemoryOutputPipe,
    pub(crate) caps: Option<StepCaps>,
    /// The capabilities of the hook being run (none for a strategy).
    pub(crate) hook: Option<HookCaps>,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

pub struct PluginHost {
    engine: Engine,
    /// A strategy may import only the strategy world's capabilities, a hook only the
    /// hook world's: each world has its own linker.
    linker: Linker<HostState>,
    hook_linker: Linker<HostState>,
    limits: Limits,
    /// Current plugin per name.
    by_name: RwLock<HashMap<String, Arc<LoadedPlugin>>>,
    /// Every plugin loaded, by sha256: deployments are pinned to these.
    by_sha: RwLock<HashMap<String, Arc<LoadedPlugin>>>,
    /// Components that failed to load, for /metrics.
    load_errors: std::sync::atomic::AtomicU64,
    /// Where compiled components are kept, so that a restart does not recompile them.
    cache_dir: Option<std::path::PathBuf>,
    /// The engine's compatibility hash: a cached artifact is valid only for the same
    /// wasmtime build and configuration.
    compatibility: String,
    /// Loads served from the cache, for the server's start-up line.
    cache_hits: std::sync::atomic::AtomicU64,
}

impl PluginHost {
    /// Builds the engine and linker and loads the built-in strategies.
    /// `cache_dir` keeps compiled components between restarts (None: compile every time).
    pub async fn new(limits: Limits, cache_dir: Option<std::path::PathBuf>) -> Result<Arc<PluginHost>> {
        let mut config = Config::new();
        config.consume_fuel(true);
        config.epoch_interruption(true);
        config.max_wasm_stack(1 << 20);
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(256)
            .total_core_instances(2048)
            .total_memories(512)
            .total_tables(1024)
            .total_stacks(256)
            .max_memory_size(limits.memory_bytes.max(16 << 20) * 2);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).map_err(anyhow::Error::from).context("creating the wasm engine")?;

        // Epoch ticks make a guest that runs long yield to the executor, so that the
        // wall-clock timeout can fire and other tasks keep running.
        let ticker = engine.weak();
        std::thread::Builder::new().name("wasm-epoch".into()).spawn(move || {
            while let Some(engine) = ticker.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(Duration::from_millis(10));
            }
        })?;

        let mut linker = Linker::<HostState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        Strategy::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)?;
        let mut hook_linker = Linker::<HostState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut hook_linker)?;
        Hook::add_to_linker::<_, HasSelf<_>>(&mut hook_linker, |state| state)?;

        let compatibility = {
            use std::hash::{Hash, Hasher};
            // DefaultHasher::new() has fixed keys: the same on every run.
            let mut h = std::collections::hash_map::DefaultHasher::new();
            engine.precompile_compatibility_hash().hash(&mut h);
            format!("{:016x}", h.finish())
        };
        let host = Arc::new(PluginHost {
            engine,
            linker,
            hook_linker,
            limits,
            by_name: Default::default(),
            by_sha: Default::default(),
            load_errors: Default::default(),
            cache_dir,
            compatibility,
            cache_hits: Default::default(),
        });
        for (crate_name, bytes) in builtin::BUILTIN {
            host.load(bytes.to_vec(), Origin::Builtin, false, "built in".into())
                .await
                .with_context(|| format!("loading the built-in plugin {crate_name}"))?;
        }
        Ok(host)
    }

    fn new_store(&self, caps: Option<StepCaps>) -> Store<HostState> {
        self.new_store_with(caps, None)
    }

    fn new_store_with(&self, caps: Option<StepCaps>, hook: Option<HookCaps>) -> Store<HostState> {
        let stderr = MemoryOutputPipe::new(16 << 10);
        // No preopened directories, no environment, no sockets: the default context
        // denies every address, and we add nothing.
        let wasi = WasiCtx::builder().stderr(stderr.clone()).allow_tcp(false).allow_udp(false).build();
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.limits.memory_bytes)
            .instances(64)
            .tables(64)
            .trap_on_grow_failure(true)
            .build();
        let mut store =
            Store::new(&self.engine, HostState { wasi, table: ResourceTable::new(), limits, stderr, caps, hook });
        store.limiter(|state| &mut state.limits);
        store.set_fuel(self.limits.fuel).expect("fuel is enabled");
        store.set_epoch_deadline(1);
        store.epoch_deadline_async_yield_and_update(1);
        store
    }

    /// How many loads came from the compiled-code cache since the server started.
    pub fn cache_hits(&self) -> u64 {
        self.cache_hits.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many components failed to load since the server started.
    pub fn load_errors(&self) -> u64 {
        self.load_errors.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Compiles, type-checks and registers a strategy or hook component. A component that
    /// does not fit changes nothing. An installed plugin may take a built-in's name only
    /// with `replace`; the built-in stays loaded for the deployments pinned to it.
    pub async fn load(
        &self,
        bytes: Vec<u8>,
        origin: Origin,
        replace: bool,
        source: String,
    ) -> Result<Arc<LoadedPlugin>> {
        let result = self.load_checked(bytes, origin, replace, source).await;
        if result.is_err() {
            self.load_errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        result
    }

    async fn load_checked(
        &self,
        bytes: Vec<u8>,
        origin: Origin,
        replace: bool,
        source: String,
    ) -> Result<Arc<LoadedPlugin>> {
        let sha256 = hex(&Sha256::digest(&bytes));
        if let Some(loaded) = self.by_sha.read().unwrap().get(&sha256) {
            return Ok(loaded.clone());
        }
        check_is_component(&bytes)?;
        let size = bytes.len();
        let engine = self.engine.clone();
        let linker = self.linker.clone();
        let hook_linker = self.hook_linker.clone();
        // Compiling takes milliseconds to seconds of CPU: keep it off the executor.
        let cached = self.cache_dir.as_ref().map(|dir| dir.join(format!("{sha256}-{}.cwasm", self.compatibility)));
        let (pre, api_version, from_cache) = tokio::task::spawn_blocking(move || -> Result<(Pre, String, bool)> {
            let (component, from_cache) = compile_or_load(&engine, &bytes, cached.as_deref())?;
            let (pre, api_version) = type_check(&linker, &hook_linker, &component)?;
            Ok((pre, api_version, from_cache))
        })
        .await??;
        if from_cache {
            self.cache_hits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }

        let mut store = self.new_store(None);
        let info = tokio::time::timeout(self.limits.timeout, async {
            match &pre {
                Pre::Strategy(pre) => pre.instantiate_async(&mut store).await?.call_info(&mut store).await,
                Pre::Hook(pre) => pre.instantiate_async(&mut store).await?.call_info(&mut store).await,
            }
        })
        .await
        .map_err(|_| anyhow!("the plugin's info() did not return within {:?}", self.limits.timeout))?
        .map_err(|e| anyhow!("the plugin's info() failed: {}", describe_trap(&e, &store)))?;
        validate_name(&info.name)?;
        validate_version(&info.version)?;
        let description = bounds::bounded(info.description, bounds::DESCRIPTION_BYTES);

        let component = match &pre {
            Pre::Strategy(pre) => pre.instance_pre().component(),
            Pre::Hook(pre) => pre.instance_pre().component(),
        };
        let component_type = component.component_type();
        let imports: Vec<String> = component_type.imports(&self.engine).map(|(name, _)| name.to_string()).collect();
        let exports: Vec<String> = component_type.exports(&self.engine).map(|(name, _)| name.to_string()).collect();
        let plugin = Arc::new(LoadedPlugin {
            info: PluginRef { name: info.name.clone(), version: info.version, sha256: sha256.clone() },
            description,
            origin,
            source,
            size,
            api_version,
            imports,
            exports,
            disabled: Default::default(),
            pre,
        });
        let mut by_name = self.by_name.write().unwrap();
        if origin == Origin::Installed
            && !replace
            && by_name.get(&info.name).is_some_and(|p| p.origin == Origin::Builtin)
        {
            bail!(
                "`{}` is the name of a built-in plugin; give yours another name, or install it with --replace to use it instead of the built-in for new deployments",
                info.name
            );
        }
        by_name.insert(info.name, plugin.clone());
        self.by_sha.write().unwrap().insert(sha256, plugin.clone());
        Ok(plugin)
    }

    /// The current plugin called `name`.
    pub fn get(&self, name: &str) -> Option<Arc<LoadedPlugin>> {
        self.by_name.read().unwrap().get(name).cloned()
    }

    /// The exact plugin a deployment is pinned to.
    pub fn pinned(&self, sha256: &str) -> Option<Arc<LoadedPlugin>> {
        self.by_sha.read().unwrap().get(sha256).cloned()
    }

    /// Unloads an installed plugin by name. Deployments pinned to it must be over.
    pub fn remove(&self, name: &str) -> Result<Arc<LoadedPlugin>> {
        let mut by_name = self.by_name.write().unwrap();
        match by_name.get(name) {
            None => bail!("no plugin named `{name}`; `hivemind plugin list` shows them"),
            Some(p) if p.origin == Origin::Builtin => {
                bail!("`{name}` is built in and cannot be removed; `hivemind plugin disable {name}` switches it off")
            }
            Some(_) => {}
        }
        let plugin = by_name.remove(name).unwrap();
        let mut by_sha = self.by_sha.write().unwrap();
        by_sha.remove(&plugin.info.sha256);
        // A plugin installed with --replace gives the name back to the built-in.
        if let Some(builtin) = by_sha.values().find(|p| p.origin == Origin::Builtin && p.info.name == name) {
            by_name.insert(name.to_string(), builtin.clone());
        }
        Ok(plugin)
    }

    pub fn list(&self) -> Vec<Arc<LoadedPlugin>> {
        let mut all: Vec<_> = self.by_name.read().unwrap().values().cloned().collect();
        all.sort_by(|a, b| a.info.name.cmp(&b.info.name));
        all
    }

    /// The current plugin called `name` if it is a `kind` that new deployments may use;
    /// otherwise what is wrong, with the names to pick from or the command that fixes it.
    pub fn usable(&self, name: &str, kind: Kind) -> std::result::Result<Arc<LoadedPlugin>, String> {
        let Some(plugin) = self.get(name).filter(|p| p.kind() == kind) else {
            let names: Vec<String> =
                self.list().iter().filter(|p| p.kind() == kind).map(|p| p.info.name.clone()).collect();
            return Err(format!("unknown {} `{name}`; available: {}", kind.noun(), names.join(", ")));
        };
        if plugin.disabled.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(format!(
                "{} `{name}` is disabled; `hivemind plugin enable {name}` switches it back on",
                kind.noun()
            ));
        }
        Ok(plugin)
    }

    /// Calls the plugin's `validate`: `Ok(Err(why))` when it refuses the deployment, `Err`
    /// when the plugin itself failed (a trap, a budget overrun, the timeout), described
    /// for people. Both are the plugin's doing, never the server's.
    pub async fn validate(
        &self,
        plugin: &LoadedPlugin,
        deployment: &wit::Deployment,
    ) -> std::result::Result<std::result::Result<(), String>, String> {
        let Pre::Strategy(pre) = &plugin.pre else {
            return Err(format!("plugin {} is a hook, not a strategy", plugin.info.name));
        };
        let mut store = self.new_store(None);
        let result = tokio::time::timeout(self.limits.timeout, async {
            let instance = pre.instantiate_async(&mut store).await?;
            instance.call_validate(&mut store, deployment).await
        })
        .await;
        match result {
            Err(_) => Err(format!("validate() did not return within {} s", self.limits.timeout.as_secs())),
            Ok(Err(e)) => Err(describe_trap(&e, &store)),
            Ok(Ok(verdict)) => Ok(verdict.map_err(|why| bounds::bounded(why, bounds::REASON_BYTES))),
        }
    }

    /// Runs one step in a fresh sandbox, until it returns or `cancel` resolves (a user
    /// paused, aborted or rolled back the deployment meanwhile). Returns the outcome (an
    /// error is a trap, a budget overrun or a timeout, described for people; `None` when
    /// cancelled) and the capabilities back, with what the step wrote.
    pub async fn step(
        &self,
        plugin: &LoadedPlugin,
        caps: StepCaps,
        deployment: &wit::Deployment,
        context: &StepContext,
        cancel: impl std::future::Future<Output = ()>,
    ) -> (Option<Result<StepOutcome, String>>, StepCaps) {
        let Pre::Strategy(pre) = &plugin.pre else {
            return (Some(Err(format!("plugin {} is a hook, not a strategy", plugin.info.name))), caps);
        };
        let mut store = self.new_store(Some(caps));
        // Dropping the call (at the timeout, or when cancelled) unwinds the guest and the
        // host call it waits on; host calls that change the world finish on their own
        // task (see `capabilities`), so nothing is left half done.
        let call = tokio::time::timeout(self.limits.timeout, async {
            let instance = pre.instantiate_async(&mut store).await?;
            instance.call_step(&mut store, deployment, context).await
        });
        let result = tokio::select! {
            result = call => Some(result),
            () = cancel => None,
        };
        let outcome = result.map(|result| match result {
            Err(_) => Err(format!("the step did not finish within its {} s time limit", self.limits.timeout.as_secs())),
            Ok(Err(e)) => Err(describe_trap(&e, &store)),
            Ok(Ok(outcome)) => Ok(bounded_outcome(outcome)),
        });
        let caps = store.into_data().caps.expect("a step store carries capabilities");
        (outcome, caps)
    }

    /// Runs a hook in a fresh sandbox, for at most `timeout` (its jobs and requests are
    /// stopped at that deadline too). Returns its verdict — output on success, the
    /// reason on failure, a trap or the timeout described for people — and what it logged.
    pub async fn run_hook(
        &self,
        plugin: &LoadedPlugin,
        caps: HookCaps,
        deployment: &wit::Deployment,
        stage: Stage,
        argument: &str,
        timeout: Duration,
    ) -> (Result<String, String>, HookCaps) {
        let Pre::Hook(pre) = &plugin.pre else {
            return (Err(format!("plugin {} is a strategy, not a hook", plugin.info.name)), caps);
        };
        let mut store = self.new_store_with(None, Some(caps));
        // A moment past the deadline, so that a job or request stopped at the deadline
        // reports it itself, with what it printed.
        let result = tokio::time::timeout(timeout + Duration::from_secs(1), async {
            let instance = pre.instantiate_async(&mut store).await?;
            instance.call_run(&mut store, deployment, stage, argument).await
        })
        .await;
        let verdict = match result {
            Err(_) => Err(format!("it did not finish within its {} s timeout and was stopped", timeout.as_secs())),
            Ok(Err(e)) => Err(describe_trap(&e, &store)),
            Ok(Ok(verdict)) => verdict
                .map(|output| bounds::bounded(output, bounds::REASON_BYTES))
                .map_err(|why| bounds::bounded(why, bounds::REASON_BYTES)),
        };
        let caps = store.into_data().hook.expect("a hook store carries capabilities");
        (verdict, caps)
    }
}

/// The plugin API versions this host accepts: every 0.1.x (WIT package semver).
pub const API_VERSIONS: &str = "0.1.x";

fn api_compatible(version: &str) -> bool {
    version.starts_with("0.1.") || version == "0.1"
}

/// Checks a component against the world it means to implement (a hook exports `run`, a
/// strategy `step`), with an error of its own for each way it can fail to fit. Returns it
/// ready to instantiate, with the plugin API version its imports name ("none" if none).
fn type_check(
    linker: &Linker<HostState>,
    hook_linker: &Linker<HostState>,
    component: &Component,
) -> Result<(Pre, String)> {
    let engine = component.engine();
    let ty = component.component_type();
    let exports: Vec<String> = ty.exports(engine).map(|(name, _)| name.to_string()).collect();
    let kind = if exports.iter().any(|e| e == "step") {
        Kind::Strategy
    } else if exports.iter().any(|e| e == "run") {
        Kind::Hook
    } else {
        bail!(
            "the component is not a Hivemind plugin: it exports {} but a strategy ({}) exports `info`, `validate` and `step`, and a hook ({}) exports `info` and `run`; build it with hivemind-sdk's export_strategy! or export_hook!",
            if exports.is_empty() { "nothing".to_string() } else { format!("`{}`", exports.join("`, `")) },
            Kind::Strategy.world(),
            Kind::Hook.world()
        );
    };
    let mut api_version = "none".to_string();
    for (import, _) in ty.imports(engine) {
        let Some((_, version)) = import.strip_prefix("hivemind:plugin/").and_then(|rest| rest.split_once('@')) else {
            continue;
        };
        if !api_compatible(version) {
            bail!(
                "the component was built for plugin API {version} (it imports `{import}`), and this host supports {API_VERSIONS}; rebuild it against a hivemind-sdk for {API_VERSIONS}"
            );
        }
        api_version = version.to_string();
    }
    let world_linker = if kind == Kind::Strategy { linker } else { hook_linker };
    let pre = world_linker.instantiate_pre(component).map_err(|e| {
        anyhow!(
            "the component imports something the host does not grant to a {}: {e:#}; a {} may import only its world's hivemind:plugin capabilities and WASI basics",
            kind.world(),
            kind.noun()
        )
    })?;
    let pre = match kind {
        Kind::Strategy => Pre::Strategy(
            StrategyPre::new(pre)
                .map_err(|e| anyhow!("the component is not a {}@0.1 component: {e:#}", kind.world()))?,
        ),
        Kind::Hook => Pre::Hook(
            HookPre::new(pre).map_err(|e| anyhow!("the component is not a {}@0.1 component: {e:#}", kind.world()))?,
        ),
    };
    Ok((pre, api_version))
}

/// Compiles a component, or loads what an earlier compile of the same bytes on the same
/// engine left in the cache. Returns whether it came from the cache.
fn compile_or_load(engine: &Engine, bytes: &[u8], cached: Option<&std::path::Path>) -> Result<(Component, bool)> {
    if let Some(path) = cached.filter(|p| p.exists()) {
        // SAFETY: deserializing trusts the file to be a wasmtime artifact. The cache holds
        // only files this host wrote (below), named by the sha256 of the component's bytes
        // and the engine's compatibility hash, so an artifact is never loaded by an engine
        // that did not make it; wasmtime checks the header again.
        match unsafe { Component::deserialize_file(engine, path) } {
            Ok(component) => return Ok((component, true)),
            Err(e) => {
                tracing::warn!("the cached component {} does not load ({e:#}); compiling it again", path.display())
            }
        }
    }
    let component = Component::new(engine, bytes).map_err(|e| anyhow!("the component does not compile: {e:#}"))?;
    if let Some(path) = cached {
        let written = component.serialize().map_err(anyhow::Error::from).and_then(|artifact| {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, artifact)?;
            std::fs::rename(&tmp, path)?;
            Ok(())
        });
        if let Err(e) = written {
            tracing::warn!("could not cache the compiled component at {}: {e:#}", path.display());
        }
    }
    Ok((component, false))
}

/// A step's outcome with its reasons cut to size.
fn bounded_outcome(outcome: StepOutcome) -> StepOutcome {
    match outcome {
        StepOutcome::Failed(why) => StepOutcome::Failed(bounds::bounded(why, bounds::REASON_BYTES)),
        StepOutcome::AwaitApproval(why) => StepOutcome::AwaitApproval(bounds::bounded(why, bounds::REASON_BYTES)),
        other => other,
    }
}

/// Says what a guest did wrong, in words a plugin author can act on: which limit it hit,
/// or what the host call it made said, with where in its code it was and what it printed.
fn describe_trap(e: &wasmtime::Error, store: &Store<HostState>) -> String {
    let stderr = String::from_utf8_lossy(&store.data().stderr.contents()).trim().to_string();
    let text = format!("{e:#}");
    let what = match e.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::OutOfFuel) => {
            "it ran out of fuel (an endless loop?); each call may run about 500 million instructions".to_string()
        }
        Some(wasmtime::Trap::StackOverflow) => {
            "its stack overflowed (unbounded recursion?); each call has 1 MiB of host stack".to_string()
        }
        // Rust and C keep large locals on a stack in the plugin's own memory, below its
        // data: overflowing it reads below address 0, which is this trap.
        Some(wasmtime::Trap::MemoryOutOfBounds) => "it accessed memory out of bounds: usually its own stack \
             overflowed (large local variables or deep recursion; the stack lives in the plugin's memory, \
             1 MiB for Rust), otherwise a bug"
            .to_string(),
        Some(wasmtime::Trap::UnreachableCodeReached) if stderr.contains("panicked") => "it panicked".to_string(),
        Some(wasmtime::Trap::AllocationTooLarge) => "it tried to allocate more memory than its limit".to_string(),
        _ if text.contains("growing memory")
            || text.contains("memory allocation")
            || stderr.contains("memory allocation") =>
        {
            "it used more memory than its limit allows".to_string()
        }
        Some(trap) => format!("it trapped: {trap}"),
        // Not a trap of the guest's own: a host call refused to go on (a state value over
        // its limit, say), and its message says which call and which limit.
        None => e.root_cause().to_string(),
    };
    let place = e.downcast_ref::<wasmtime::WasmBacktrace>().map(innermost_functions).unwrap_or_default();
    let printed = if stderr.is_empty() { String::new() } else { format!(": {}", last_lines(&stderr, 5)) };
    bounds::bounded(format!("plugin failed: {what}{place}{printed}"), bounds::REASON_BYTES)
}

/// " (in f ← g ← h)": the three innermost functions of a trap's backtrace, demangled,
/// with a recursion shown once.
fn innermost_functions(trace: &wasmtime::WasmBacktrace) -> String {
    let mut names: Vec<String> = Vec::new();
    for name in trace.frames().iter().filter_map(|f| f.func_name()) {
        let name = format!("{:#}", rustc_demangle::demangle(name));
        let name = name.split(".llvm.").next().unwrap_or_default().to_string();
        let full = names.len() == 3;
        match names.last_mut() {
            Some(last) if last.trim_end_matches(" (recursing)") == name => {
                if !last.ends_with(" (recursing)") {
                    last.push_str(" (recursing)");
                }
            }
            _ if full => break,
            _ => names.push(name),
        }
    }
    if names.is_empty() { String::new() } else { format!(" (in {})", names.join(" ← ")) }
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join(" / ")
}

/// A component starts with the wasm magic and the component layer; a core module does not.
fn check_is_component(bytes: &[u8]) -> Result<()> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        bail!(
            "the file is not WebAssembly (it does not start with the \\0asm magic); build your plugin with `cargo build --target wasm32-wasip2 --release`"
        );
    }
    if bytes[6..8] != [1, 0] {
        bail!(
            "the file is a core WebAssembly module, not a component; build it for the wasm32-wasip2 target, which produces components"
        );
    }
    Ok(())
}

fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && name.starts_with(|c: char| c.is_ascii_lowercase());
    if !ok {
        bail!(
            "plugin name `{}` is not valid: use 1 to 64 lowercase letters, digits and '-', starting with a letter",
            bounds::bounded(name.to_string(), 64)
        );
    }
    Ok(())
}

fn validate_version(version: &str) -> Result<()> {
    if version.is_empty()
        || version.len() > bounds::VERSION_BYTES
        || version.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        bail!(
            "plugin version `{}` is not valid: use 1 to {} characters without spaces, such as 1.2.0",
            bounds::bounded(version.to_string(), bounds::VERSION_BYTES),
            bounds::VERSION_BYTES
        );
    }
    Ok(())
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
