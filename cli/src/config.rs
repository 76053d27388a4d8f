//! Configuration files. The CLI reads `config.toml`, the server `server.toml` (whose
//! fields are the server's, `hivemind::local::config`), both in the XDG config
//! directory (`$XDG_CONFIG_HOME/hivemind`, else `~/.config/hivemind`).
//! Flags win over environment variables, which win over the file, which wins over the
//! defaults.

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The XDG config directory of Hivemind.
pub fn config_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .map(|d| d.join("hivemind"))
}

/// `config.toml` of the CLI.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientFile {
    pub server: Option<String>,
    pub token: Option<String>,
    /// The CA that signed the server's API certificate, when the system does not trust it.
    pub server_ca_cert: Option<std::path::PathBuf>,
}

/// Reads a TOML file: `explicit` must exist; the default path may be missing.
pub fn load<T: for<'de> Deserialize<'de> + Default>(explicit: Option<&Path>, default_name: &str) -> anyhow::Result<T> {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None => match config_dir().map(|d| d.join(default_name)) {
            Some(p) if p.exists() => p,
            _ => return Ok(T::default()),
        },
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| anyhow::anyhow!("cannot read the config file {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| anyhow::anyhow!("the config file {} is not valid: {e}", path.display()))
}
