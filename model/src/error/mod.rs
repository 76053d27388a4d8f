//! Errors a user can act on: an HTTP status, a stable code (`ErrorCode`, a closed list),
//! the field that was wrong, and a message that says what to do. Everything else is an
//! internal error.

mod code;
mod field;
mod store;

pub use code::ErrorCode;
pub use field::Field;
pub use store::store_unavailable;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct UserError {
    #[serde(skip)]
    pub status: u16,
    pub code: ErrorCode,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub field: Option<String>,
    pub message: String,
}

impl UserError {
    /// An error with `code`, and the status (and, for `invalid_<field>`, the field) it
    /// carries.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> UserError {
        let field = match code {
            ErrorCode::Invalid(field) => Some(field.as_str().to_string()),
            _ => None,
        };
        UserError { status: code.status(), code, field, message: message.into() }
    }

    /// 400: the input is wrong; `field` names it, and the code is `invalid_<field>`.
    pub fn invalid(field: Field, message: impl Into<String>) -> UserError {
        UserError::new(ErrorCode::Invalid(field), message)
    }

    /// 404: what the request names does not exist.
    pub fn not_found(code: ErrorCode, message: impl Into<String>) -> UserError {
        debug_assert_eq!(code.status(), 404, "{code} is not a 404");
        UserError::new(code, message)
    }

    /// 409: the request is fine but the state does not allow it now.
    pub fn conflict(code: ErrorCode, message: impl Into<String>) -> UserError {
        debug_assert_eq!(code.status(), 409, "{code} is not a 409");
        UserError::new(code, message)
    }

    /// 422: a plugin failed (trapped, overran a budget, timed out) while the server asked
    /// it something. The plugin's fault, never the server's; nothing changed.
    pub fn plugin_failed(plugin: &crate::model::PluginRef, while_doing: &str, failure: &str) -> UserError {
        let message = format!(
            "strategy {} {} failed while {while_doing}, and nothing was changed: {failure}; this is the plugin's fault: tell its author, or use another --strategy",
            plugin.name, plugin.version
        );
        UserError { field: Some("strategy".into()), ..UserError::new(ErrorCode::PluginFailed, message) }
    }

    /// The server lost the lease while it answered: another one leads now.
    pub fn not_leader(why: &str) -> UserError {
        UserError::new(
            ErrorCode::NotLeader,
            format!("{why}; try again in a moment: another server leads now (hivemind cluster status)"),
        )
    }

    /// 503: the store cannot be written now (`store_unavailable` says why); nothing changed,
    /// and the operator's fix is in the message.
    pub fn store_unavailable(cause: &str) -> UserError {
        UserError::new(
            ErrorCode::StoreUnavailable,
            format!("the store is unavailable: {cause}; try again once it is fixed"),
        )
    }

    pub fn internal(e: anyhow::Error) -> UserError {
        if let Some(cause) = store_unavailable(&e) {
            tracing::warn!("the store is unavailable: {cause}");
            return UserError::store_unavailable(&cause);
        }
        tracing::error!("internal error: {e:#}");
        UserError::new(ErrorCode::Internal, format!("internal error: {e:#}"))
    }
}

impl std::fmt::Display for UserError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for UserError {}

impl From<anyhow::Error> for UserError {
    fn from(e: anyhow::Error) -> Self {
        match e.downcast_ref::<NotLeader>() {
            Some(not_leader) => UserError::not_leader(&not_leader.0),
            None => UserError::internal(e),
        }
    }
}

/// A write refused because this server does not lead (any more). The store raises it;
/// the API answers it as `not_leader`.
#[derive(Debug)]
pub struct NotLeader(pub String);

impl std::fmt::Display for NotLeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotLeader {}
