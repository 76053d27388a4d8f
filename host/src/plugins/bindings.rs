//! The plugin contract as Rust: one `bindgen!` per world, sharing the types and `progress`
//! interfaces, and a linker per world, so that a strategy that imports `jobs` or a hook
//! that imports `containers` fails to load.
//!
//! The host binds the latest released contract, the folder `wit/v0.1.1` at the top of the
//! repository (bindgen's path is relative to host/Cargo.toml), rather than the SDK's copy
//! of it (`sdk/wit`): the host depends on the released contract, like every plugin, and
//! not on the SDK, which only carries a copy (kept byte for byte the same by a test in
//! `contract`, which also checks that the folder bound here is the last of
//! `contract::API_VERSIONS`). Releasing a version moves both paths below to its folder.

use super::sandbox::HostState;
use wasmtime::Engine;
use wasmtime::component::{HasSelf, Linker};

pub mod strategy {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1.1",
        world: "hivemind:plugin/strategy",
        imports: { default: async | trappable },
        exports: { default: async },
        trappable_error_type: { "hivemind:plugin/types.error" => crate::plugins::capabilities::CapabilityError },
    });
}

pub mod hook {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1.1",
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
