//! The records every layer of Hivemind shares, and nothing else: what a user asks for
//! (`model::DeploymentSpec`), what a deployment, an app, a replica and an event are
//! (`model`), the API's requests and answers (`api_types`), and the errors a user can act
//! on, each with a stable code (`error`). It depends on no other crate of the workspace:
//! the store, the router, the plugins, the engine, the API and the CLI all depend on it,
//! and the compiler keeps it that way.

pub mod api_types;
pub mod error;
pub mod model;
#[cfg(feature = "sqlx")]
mod sqlx_text;
