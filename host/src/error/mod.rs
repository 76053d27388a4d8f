//! Errors a user can act on: an HTTP status, a stable code, the field that was wrong,
//! and a message that says what to do. Everything else is an internal error.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct UserError {
    #[serde(skip)]
    pub status: u16,
    pub code: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub field: Option<String>,
    pub message: String,
}

impl UserError {
    /// 400: the input is wrong; `field` names it.
    pub fn invalid(field: &str, message: impl Into<String>) -> UserError {
        UserError {
            status: 400,
            code: format!("invalid_{}", field.replace('-', "_")),
            field: Some(field.to_string()),
            message: message.into(),
        }
    }

    pub fn not_found(what: &str, message: impl Into<String>) -> UserError {
        UserError { status: 404, code: format!("{what}_not_found"), field: None, message: message.into() }
    }

    /// 409: the request is fine but the state does not allow it now.
    pub fn conflict(code: &str, message: impl Into<String>) -> UserError {
        UserError { status: 409, code: code.to_string(), field: None, message: message.into() }
    }

    /// 422: a plugin failed (trapped, overran a budget, timed out) while the server asked
    /// it something. The plugin's fault, never the server's; nothing changed.
    pub fn plugin_failed(plugin: &crate::model::PluginRef, while_doing: &str, failure: &str) -> UserError {
        UserError {
            status: 422,
            code: "plugin_failed".into(),
            field: Some("strategy".into()),
            message: format!(
                "strategy {} {} failed while {while_doing}, and nothing was changed: {failure}; this is the plugin's fault: tell its author, or use another --strategy",
                plugin.name, plugin.version
            ),
        }
    }

    /// The server lost the lease while it answered: another one leads now.
    pub fn not_leader(why: &str) -> UserError {
        UserError {
            status: 503,
            code: "not_leader".into(),
            field: None,
            message: format!("{why}; try again in a moment: another server leads now (hivemind cluster status)"),
        }
    }

    pub fn internal(e: anyhow::Error) -> UserError {
        tracing::error!("internal error: {e:#}");
        UserError { status: 500, code: "internal".into(), field: None, message: format!("internal error: {e:#}") }
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
        match e.downcast_ref::<crate::store::NotLeader>() {
            Some(not_leader) => UserError::not_leader(&not_leader.0),
            None => UserError::internal(e),
        }
    }
}
