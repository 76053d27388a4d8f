//! The built-in plugins, compiled from `plugins/*` by the build script and embedded.

include!(concat!(env!("OUT_DIR"), "/builtin_plugins.rs"));

/// What each built-in hook may do: `command` runs the command it is given as a job of
/// the release, `webhook` POSTs to the hosts on the server's hook allowlist.
pub fn grants(name: &str) -> hivemind_model::grants::Grants {
    use hivemind_model::grants::{Grant, Grants};
    match name {
        "command" => Grants::new(vec![Grant::Jobs]),
        "webhook" => Grants::new(vec![Grant::Http(None)]),
        _ => Grants::default(),
    }
}
