//! The sandbox every plugin call runs in: one wasmtime engine (Cranelift, pooling
//! allocator, fuel, epoch interruption), a fresh store per call with a memory cap and an
//! empty WASI context, a wall-clock timeout around the whole call, and descriptions of
//! what went wrong in words a plugin author can act on.

use super::bindings::{hook, strategy};
use super::bounds;
use super::scope::{HookCaps, StepCaps};
use anyhow::{Context, Result};
use std::time::Duration;
use wasmtime::component::ResourceTable;
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, StoreLimits, StoreLimitsBuilder,
};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

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

/// What a store carries: WASI (empty), limits, captured stderr, and the capabilities of
/// the step or hook being run (none while loading or validating).
pub struct HostState {
    pub(super) wasi: WasiCtx,
    pub(super) table: ResourceTable,
    pub(super) limits: StoreLimits,
    pub(super) stderr: MemoryOutputPipe,
    pub(super) step: Option<StepCaps>,
    pub(super) hook: Option<HookCaps>,
}

impl HostState {
    /// What the guest printed to stderr in this store.
    pub fn stderr(&self) -> &MemoryOutputPipe {
        &self.stderr
    }

    /// The step's capabilities back, with what the step wrote.
    pub fn into_step(self) -> Option<StepCaps> {
        self.step
    }
}

/// A fresh store for one call, made ready by `arm`: WASI as `wasi` gives it (which the
/// server leaves empty but for `stderr`, and the simulator gives its clocks), the memory
/// cap, and the capabilities of the step or hook it runs, if any.
pub fn new_store(
    engine: &Engine,
    limits: &Limits,
    wasi: WasiCtx,
    stderr: MemoryOutputPipe,
    step: Option<StepCaps>,
    hook: Option<HookCaps>,
) -> Store<HostState> {
    let state = HostState { wasi, table: ResourceTable::new(), limits: store_limits(limits), stderr, step, hook };
    arm(Store::new(engine, state), limits, |state| &mut state.limits)
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// The engine every plugin runs on, and the thread whose epoch ticks make a guest that
/// runs long yield to the executor, so that the wall-clock timeout can fire and other
/// tasks keep running.
pub fn engine(limits: &Limits) -> Result<Engine> {
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

    let ticker = engine.weak();
    std::thread::Builder::new().name("wasm-epoch".into()).spawn(move || {
        while let Some(engine) = ticker.upgrade() {
            engine.increment_epoch();
            drop(engine);
            std::thread::sleep(Duration::from_millis(10));
        }
    })?;

    Ok(engine)
}

/// What one plugin instance may allocate: its memory, and a bound on instances and tables.
fn store_limits(limits: &Limits) -> StoreLimits {
    StoreLimitsBuilder::new()
        .memory_size(limits.memory_bytes)
        .instances(64)
        .tables(64)
        .trap_on_grow_failure(true)
        .build()
}

/// A fresh store made ready for one call: its allocation limiter, its fuel, and an epoch
/// deadline that makes a long-running guest yield to the executor.
fn arm<T: 'static>(
    mut store: Store<T>,
    limits: &Limits,
    limiter: impl (FnMut(&mut T) -> &mut StoreLimits) + Send + Sync + 'static,
) -> Store<T> {
    let mut limiter = limiter;
    store.limiter(move |state| limiter(state) as &mut dyn wasmtime::ResourceLimiter);
    store.set_fuel(limits.fuel).expect("fuel is enabled");
    store.set_epoch_deadline(1);
    store.epoch_deadline_async_yield_and_update(1);
    store
}

/// Says what a guest did wrong, in words a plugin author can act on: which limit it hit,
/// or what the host call it made said, with where in its code it was and what it printed.
pub fn describe_trap(e: &wasmtime::Error, stderr: &MemoryOutputPipe) -> String {
    let stderr = String::from_utf8_lossy(&stderr.contents()).trim().to_string();
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

/// The linkers of the strategy world and of the hook world, with WASI's basics (which the
/// sandbox's WASI context leaves empty: no files, sockets or environment).
///
/// They define the latest contract's interfaces only (`hivemind:plugin/routing@0.1.1`, ...)
/// and that is how the host adapts the older minor versions it lists: wasmtime's linker
/// matches versioned names by semver compatibility, so a component built for 0.1.0, whose
/// imports name `@0.1.0`, is linked to the `@0.1.1` definitions, which 0.1.1 only added to.
/// Which versions may be linked at all is `contract::API_VERSIONS`' call, checked before
/// linking. A 0.2 that changes or removes something would need a second `bindgen!` over
/// its older folder and definitions of those interfaces here (wit/README.md).
pub fn linkers(engine: &Engine) -> anyhow::Result<(Linker<HostState>, Linker<HostState>)> {
    let mut strategy = Linker::<HostState>::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut strategy)?;
    strategy::Strategy::add_to_linker::<_, HasSelf<_>>(&mut strategy, |state| state)?;
    let mut hook = Linker::<HostState>::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut hook)?;
    hook::Hook::add_to_linker::<_, HasSelf<_>>(&mut hook, |state| state)?;
    Ok((strategy, hook))
}
