//! Docker's own record of registry credentials (`config.json`, as `docker login` writes
//! it), read so that a user who logged in with Docker need not log in again.

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;
use std::path::PathBuf;

/// The credentials `docker login` stored for `registry` in Docker's `config.json`
/// (`$DOCKER_CONFIG`, else `~/.docker`), if it stored them there.
pub fn docker_credentials(registry: &str) -> Result<Option<(String, String)>> {
    let dir = std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")));
    let Some(path) = dir.map(|d| d.join("config.json")) else { return Ok(None) };
    let Ok(text) = std::fs::read_to_string(&path) else { return Ok(None) };
    let config: Value = serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    // `docker login` files Docker Hub under its old index address.
    let docker_hub = ["docker.io", "registry-1.docker.io", "index.docker.io"].contains(&registry);
    let entry = config["auths"].as_object().and_then(|auths| {
        auths.iter().find(|(key, _)| {
            let host = key.trim_start_matches("https://").trim_start_matches("http://");
            let host = host.split('/').next();
            host == Some(registry) || (docker_hub && host == Some("index.docker.io"))
        })
    });
    let stored = entry.is_some_and(|(_, e)| e["auth"].is_string() || e["password"].is_string());
    if !stored {
        // Docker Desktop keeps an empty entry and the secret in a credential helper.
        let helper = config["credHelpers"][registry].as_str().or(config["credsStore"].as_str());
        if let Some(helper) = helper {
            bail!(
                "Docker keeps the credentials for {registry} in its `docker-credential-{helper}` helper, which hivemind does not call: give --username USER --password-stdin instead"
            );
        }
        return Ok(None);
    }
    let Some((_, entry)) = entry else { return Ok(None) };
    if let (Some(user), Some(password)) = (entry["username"].as_str(), entry["password"].as_str()) {
        return Ok(Some((user.to_string(), password.to_string())));
    }
    let Some(auth) = entry["auth"].as_str() else { return Ok(None) };
    use base64::Engine;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .ok()
        .and_then(|d| String::from_utf8(d).ok())
        .and_then(|d| d.split_once(':').map(|(u, p)| (u.to_string(), p.to_string())))
        .ok_or_else(|| anyhow!("the `auth` of {registry} in {} is not base64 of USER:PASSWORD", path.display()))?;
    Ok(Some(decoded))
}
