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

pub mod strategy {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1.1",
        world: "hivemind:plugin/strategy",
        imports: { default: async | trappable },
        exports: { default: async },
        trappable_error_type: { "hivemind:plugin/types.error" => crate::error::CapabilityError },
    });
}

pub mod hook {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1.1",
        world: "hivemind:plugin/hook",
        imports: { default: async | trappable },
        exports: { default: async },
        trappable_error_type: { "hivemind:plugin/types.error" => crate::error::CapabilityError },
        with: {
            "hivemind:plugin/types": super::strategy::hivemind::plugin::types,
            "hivemind:plugin/progress": super::strategy::hivemind::plugin::progress,
        },
    });
}

pub use hook::Stage;
pub use strategy::hivemind::plugin::types as wit;
pub use strategy::{Phase, StepContext, StepOutcome};
