//! Every code an error answer of the API can carry: a closed list, so that the OpenAPI
//! document can say which codes each route answers and clients can match on them. The
//! wire strings are stable: a code is never renamed.

use super::Field;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Declares every code but `invalid_<field>` once: its wire string, its HTTP status and
/// what it means.
macro_rules! error_codes {
    ($($variant:ident = $code:literal, $status:literal, $description:literal;)*) => {
        /// The stable code of an error answer (`{"error": {"code": ...}}`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum ErrorCode {
            $($variant,)*
            /// 400: the request's `field` is wrong; the code is `invalid_<field>`.
            Invalid(Field),
        }

        /// Every code but `invalid_<field>`, in the order of the table.
        const PLAIN: &[ErrorCode] = &[$(ErrorCode::$variant),*];

        impl ErrorCode {
            /// The code as the answer carries it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)*
                    ErrorCode::Invalid(field) => field.code(),
                }
            }

            /// Every status an answer with this code may have: its own first, and 413
            /// for a body too large to read.
            pub fn statuses(self) -> &'static [u16] {
                match self {
                    $(ErrorCode::$variant => &[$status],)*
                    ErrorCode::Invalid(Field::Body | Field::Plugin) => &[400, 413],
                    ErrorCode::Invalid(_) => &[400],
                }
            }

            /// What it means, in a line, for the API's documentation.
            pub fn description(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $description,)*
                    ErrorCode::Invalid(field) => field.description(),
                }
            }
        }
    };
}

error_codes! {
    Unauthorized = "unauthorized", 401, "the request carries no bearer token, or not the server's (HIVEMIND_TOKEN)";
    BadRequest = "bad_request", 400, "the request could not be read (a path parameter that is not UTF-8)";
    RouteNotFound = "route_not_found", 404, "no route has this path; GET /api/openapi.json lists them";
    MethodNotAllowed = "method_not_allowed", 405, "the route does not take this method";
    DeploymentNotFound = "deployment_not_found", 404, "no deployment has this id";
    AppNotFound = "app_not_found", 404, "no app has this name";
    ReplicaNotFound = "replica_not_found", 404, "the app has no running replica with this id";
    PluginNotFound = "plugin_not_found", 404, "no plugin has this name";
    CertNotFound = "cert_not_found", 404, "no certificate is stored for this host";
    RegistryNotFound = "registry_not_found", 404, "the server keeps no login for this registry";
    DeploymentInProgress = "deployment_in_progress", 409, "the app has a deployment under way; wait for it or abort it";
    NotPending = "not_pending", 409, "only a pending deployment can be executed";
    HostTaken = "host_taken", 409, "another app is bound to this host and path prefix";
    NoRelease = "no_release", 409, "the app has no release that serves yet";
    NothingToRollBackTo = "nothing_to_roll_back_to", 409, "the deployment was the app's first release";
    NotCurrentRelease = "not_current_release", 409, "the app no longer serves what this deployment put in place";
    NotAnAbTest = "not_an_ab_test", 409, "the deployment has no variants to pick a winner from";
    CannotPause = "cannot_pause", 409, "only a deployment in progress can be paused";
    CannotResume = "cannot_resume", 409, "only a paused deployment can be resumed";
    CannotPromote = "cannot_promote", 409, "only a deployment awaiting approval can be promoted";
    CannotAbort = "cannot_abort", 409, "only a pending or running deployment can be aborted";
    CannotRollBack = "cannot_roll_back", 409, "only a running or completed deployment can be rolled back";
    CannotSelectAWinnerFor = "cannot_select_a_winner_for", 409, "only a running A/B test can get a winner";
    PluginInUse = "plugin_in_use", 409, "a deployment under way uses the plugin";
    CannotRemovePlugin = "cannot_remove_plugin", 409, "the plugin is built in: disable it instead";
    PluginFailed = "plugin_failed", 422, "the strategy plugin failed (trapped, overran a budget, timed out) while checking the deployment; nothing changed";
    Internal = "internal", 500, "the server failed; the message says how";
    NotLeader = "not_leader", 503, "the server lost the lease while answering: another leads now; try again";
    StoreUnavailable = "store_unavailable", 503, "the server cannot write to its store (a full disk, a database that does not answer); the message names the cause and the fix";
    NoLeader = "no_leader", 503, "a follower could not forward the request to a leader (a failover is under way); try again (Retry-After)";
}

/// How many codes there are: the plain ones and one per field.
const COUNT: usize = PLAIN.len() + Field::ALL.len();

impl ErrorCode {
    /// Every code, the plain ones first, then `invalid_<field>` for every field.
    pub const ALL: [ErrorCode; COUNT] = all();

    /// The codes every route but /healthz may answer: the token (`auth`), a follower with
    /// no leader to forward to (`front`), a lease lost while answering, a store that cannot
    /// be written, a failure.
    pub const EVERY_ROUTE: [ErrorCode; 5] = [
        ErrorCode::Unauthorized,
        ErrorCode::NoLeader,
        ErrorCode::NotLeader,
        ErrorCode::StoreUnavailable,
        ErrorCode::Internal,
    ];

    /// The codes of requests no route takes, answered by the router's fallbacks.
    pub const UNROUTED: [ErrorCode; 2] = [ErrorCode::RouteNotFound, ErrorCode::MethodNotAllowed];

    /// The HTTP status an answer with this code has.
    pub fn status(self) -> u16 {
        self.statuses()[0]
    }

    /// The code with this wire string, if there is one.
    pub fn parse(text: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|code| code.as_str() == text)
    }

    /// The code of an error answer the router made without a code (an extractor's
    /// rejection): `bad_request` for a 4xx, `internal` for a 5xx.
    pub fn of_status(status: u16) -> ErrorCode {
        if status < 500 { ErrorCode::BadRequest } else { ErrorCode::Internal }
    }
}

const fn all() -> [ErrorCode; COUNT] {
    let mut all = [ErrorCode::Internal; COUNT];
    let mut i = 0;
    while i < PLAIN.len() {
        all[i] = PLAIN[i];
        i += 1;
    }
    let mut j = 0;
    while j < Field::ALL.len() {
        all[PLAIN.len() + j] = ErrorCode::Invalid(Field::ALL[j]);
        j += 1;
    }
    all
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Tests (and clients) compare a code with its wire string.
impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<str> for ErrorCode {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        ErrorCode::parse(&text).ok_or_else(|| serde::de::Error::custom(format!("unknown error code `{text}`")))
    }
}

impl schemars::JsonSchema for ErrorCode {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ErrorCode".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let codes: Vec<&str> = ErrorCode::ALL.iter().map(|code| code.as_str()).collect();
        schemars::json_schema!({
            "type": "string",
            "enum": codes,
            "description": "The error's stable code; each route's error answers list the codes it may carry.",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{ErrorCode, Field};
    use std::collections::HashSet;

    #[test]
    fn every_code_is_listed_once_and_parses_back() {
        let strings: HashSet<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(strings.len(), ErrorCode::ALL.len(), "two codes share a wire string");
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
            assert!(code.statuses().iter().all(|s| (400..600).contains(s)), "{code}");
            assert!(!code.description().is_empty(), "{code}");
        }
        for field in Field::ALL {
            assert!(ErrorCode::ALL.contains(&ErrorCode::Invalid(*field)), "{field:?}");
        }
    }

    #[test]
    fn the_wire_strings_are_those_clients_match_on() {
        for (code, wire) in [
            (ErrorCode::CannotPause, "cannot_pause"),
            (ErrorCode::CannotRollBack, "cannot_roll_back"),
            (ErrorCode::CannotResume, "cannot_resume"),
            (ErrorCode::CannotPromote, "cannot_promote"),
            (ErrorCode::CannotAbort, "cannot_abort"),
            (ErrorCode::CannotSelectAWinnerFor, "cannot_select_a_winner_for"),
            (ErrorCode::DeploymentNotFound, "deployment_not_found"),
            (ErrorCode::Invalid(Field::Replicas), "invalid_replicas"),
            (ErrorCode::Invalid(Field::HooksTimeout), "invalid_hooks.timeout"),
            (ErrorCode::Invalid(Field::CloudProvider), "invalid_cloud_provider"),
        ] {
            assert_eq!(code.as_str(), wire);
            assert_eq!(serde_json::to_value(code).unwrap(), wire);
            assert_eq!(serde_json::from_value::<ErrorCode>(wire.into()).unwrap(), code);
        }
        assert!(serde_json::from_value::<ErrorCode>("no_such_code".into()).is_err());
    }
}
