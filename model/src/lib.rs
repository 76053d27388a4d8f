//! The records every layer of Hivemind shares, and nothing else: what a user asks for
//! (`model::DeploymentSpec`), what a deployment, an app, a replica and an event are
//! (`model`), the API's requests and answers (`api_types`), the errors a user can act on,
//! each with a stable code (`error`), the plugin contract's versions and names
//! (`plugin`), the server's settings (`settings`) and `plugin test`'s report
//! (`simulation`). It depends on no other crate of the workspace:
//! the store, the router, the plugins, the engine, the API and the CLI all depend on it,
//! and the compiler keeps it that way.

pub mod api_types;
pub mod error;
pub mod grants;
pub mod model;
pub mod plugin;
pub mod settings;
pub mod simulation;
#[cfg(feature = "sqlx")]
mod sqlx_text;
