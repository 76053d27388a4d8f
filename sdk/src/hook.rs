//! The hook side of the SDK: the [`Hook`] trait and the glue that turns it into the
//! `hook` world's exports.

use crate::{Error, Params, Result};

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "hivemind:plugin/hook",
        pub_export_macro: true,
        export_macro_name: "__export_hook_world",
        default_bindings_module: "hivemind_sdk::hook_bindings",
    });
}

#[doc(hidden)]
pub use bindings as hook_bindings;

use bindings::hivemind::plugin::types;

pub use bindings::Stage;
/// Outbound HTTP, to the hosts on the server's allowlist only.
pub use bindings::hivemind::plugin::http;
/// Run one-off jobs in a fresh replica of a release.
pub use bindings::hivemind::plugin::jobs;
/// Write to the deployment's event log.
pub use bindings::hivemind::plugin::progress;
pub use types::{Deployment, Release, Variant};

impl From<types::Error> for Error {
    fn from(e: types::Error) -> Self {
        Error(match e {
            types::Error::Denied(m) => format!("denied: {m}"),
            types::Error::Invalid(m) => format!("invalid: {m}"),
            types::Error::Failed(m) => m,
        })
    }
}

impl Params for Deployment {
    fn raw(&self, key: &str) -> Option<&str> {
        self.params.raw(key)
    }
}

/// A deployment hook. Export it with [`export_hook!`](crate::export_hook).
///
/// ```ignore
/// use hivemind_sdk::prelude::*;
///
/// struct Migrate;
///
/// impl Hook for Migrate {
///     const NAME: &'static str = "migrate";
///     const VERSION: &'static str = "0.1.0";
///     const DESCRIPTION: &'static str = "Runs the release's migrations before traffic moves";
///
///     fn run(d: &Deployment, _stage: Stage, argument: &str) -> Result<String> {
///         let job = jobs::run_job(&d.target.version, argument, 120_000)?;
///         if job.exit_code != 0 {
///             return Err(format!("`{argument}` exited {}: {}", job.exit_code, job.output).into());
///         }
///         Ok(job.output)
///     }
/// }
///
/// hivemind_sdk::export_hook!(Migrate);
/// ```
pub trait Hook {
    /// The name users pick the hook by (`--pre-hook plugin:NAME`).
    const NAME: &'static str;
    /// The hook's own version (semver).
    const VERSION: &'static str;
    /// One line for `hivemind plugin list`.
    const DESCRIPTION: &'static str;

    /// Runs the hook. `Ok` carries output for the event log; `Err` fails the hook.
    fn run(deployment: &Deployment, stage: Stage, argument: &str) -> Result<String>;
}

#[doc(hidden)]
pub fn __info<H: Hook>() -> types::PluginInfo {
    types::PluginInfo {
        name: H::NAME.to_string(),
        version: H::VERSION.to_string(),
        description: H::DESCRIPTION.to_string(),
    }
}

#[doc(hidden)]
pub fn __run<H: Hook>(d: Deployment, stage: Stage, argument: String) -> std::result::Result<String, String> {
    H::run(&d, stage, &argument).map_err(|e| e.0)
}

/// Exports a [`Hook`] as the component's `hook` world.
#[macro_export]
macro_rules! export_hook {
    ($hook:ty) => {
        const _: () = {
            struct __HivemindHookExport;
            impl $crate::hook_bindings::Guest for __HivemindHookExport {
                fn info() -> $crate::hook_bindings::hivemind::plugin::types::PluginInfo {
                    $crate::__info::<$hook>()
                }
                fn run(
                    d: $crate::Deployment,
                    stage: $crate::Stage,
                    argument: ::std::string::String,
                ) -> ::core::result::Result<::std::string::String, ::std::string::String> {
                    $crate::__run::<$hook>(d, stage, argument)
                }
            }
    $crate::hook_bindings::__export_hook_world!(__HivemindHookExport with_types_in $crate::hook_bindings);
        };
    };
}
