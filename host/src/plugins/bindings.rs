//! The plugin contract (`sdk/wit/plugin.wit`) as Rust: one `bindgen!` per world, sharing
//! the types and `progress` interfaces, and a linker per world, so that a strategy that
//! imports `jobs` or a hook that imports `containers` fails to load.

use super::sandbox::HostState;
use wasmtime::Engine;
use wasmtime::component::{HasSelf, Linker};

pub mod strategy {
    wasmtime::component::bindgen!({
        path: "../sdk/wit",
        world: "hivemind:plugin/strategy",
        imports: { default: async | trappable },
        exports: { default: async },
        trappable_error_type: { "hivemind:plugin/types.error" => crate::plugins::capabilities::CapabilityError },
    });
}

pub mod hook {
    wasmtime::component::bindgen!({
        path: "../sdk/wit",
        world: "hivemind:plugin/hook",
        imports: { default: async | trappable },
        exports: { default: async },
        trappable_error_type: { "hivemind:plugin/types.error" => crate::plugins::capabilities::CapabilityError },
        with: {
            "hivemind:plugin/types": super::strategy::hivemind::plugin::types,
            "hivemind:plugin/progress": super::strategy::hivemind::plugin::progress,
        },
    });
}

pub use hook::Stage;
pub use strategy::hivemind::plugin::types as wit;
pub use strategy::{Phase, StepContext, StepOutcome};

/// The linkers of the strategy world and of the hook world, with WASI's basics (which the
/// sandbox's WASI context leaves empty: no files, sockets or environment).
pub fn linkers(engine: &Engine) -> anyhow::Result<(Linker<HostState>, Linker<HostState>)> {
    let mut strategy = Linker::<HostState>::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut strategy)?;
    strategy::Strategy::add_to_linker::<_, HasSelf<_>>(&mut strategy, |state| state)?;
    let mut hook = Linker::<HostState>::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut hook)?;
    hook::Hook::add_to_linker::<_, HasSelf<_>>(&mut hook, |state| state)?;
    Ok((strategy, hook))
}
