//! Docker's own record of registry credentials: `config.json`, as `docker login` writes
//! it, and the credential helpers it names, run as Docker runs them.

use crate::Credentials;
use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

/// The longest a credential helper may take: one that waits for a password prompt or a
/// locked keychain is stopped rather than left to hang a deployment.
const HELPER_TIMEOUT: Duration = Duration::from_secs(10);

/// A `config.json` as Docker reads it.
pub struct DockerConfig {
    path: PathBuf,
    config: Value,
}

/// The credentials Docker would use for `registry` (a host, `127.0.0.1:5000`, or
/// `docker.io`), from `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`.
pub fn docker_credentials(registry: &str) -> Result<Option<Credentials>> {
    match DockerConfig::load()? {
        Some(config) => config.credentials(registry),
        None => Ok(None),
    }
}

impl DockerConfig {
    /// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`; `None` when there is none.
    pub fn load() -> Result<Option<DockerConfig>> {
        let dir = std::env::var_os("DOCKER_CONFIG")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")));
        let Some(path) = dir.map(|d| d.join("config.json")) else { return Ok(None) };
        let Ok(text) = std::fs::read_to_string(&path) else { return Ok(None) };
        let config = serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
        Ok(Some(DockerConfig { path, config }))
    }

    /// The credentials for `registry`: a helper named for it in `credHelpers`, else its
    /// entry in `auths`, else the `credsStore` helper, as Docker looks.
    pub fn credentials(&self, registry: &str) -> Result<Option<Credentials>> {
        if let Some(helper) = self.config["credHelpers"][registry].as_str() {
            return run_helper(helper, &server_url(registry));
        }
        if let Some(found) = self.stored(registry)? {
            return Ok(Some(found));
        }
        match self.config["credsStore"].as_str() {
            Some(helper) => run_helper(helper, &server_url(registry)),
            None => Ok(None),
        }
    }

    /// The entry `docker login` wrote in `auths`, if it holds the secret itself.
    fn stored(&self, registry: &str) -> Result<Option<Credentials>> {
        // `docker login` files Docker Hub under its old index address.
        let docker_hub = ["docker.io", "registry-1.docker.io", "index.docker.io"].contains(&registry);
        let entry = self.config["auths"].as_object().and_then(|auths| {
            auths.iter().find_map(|(key, entry)| {
                let host = key.trim_start_matches("https://").trim_start_matches("http://");
                let host = host.split('/').next();
                (host == Some(registry) || (docker_hub && host == Some("index.docker.io"))).then_some(entry)
            })
        });
        let Some(entry) = entry else { return Ok(None) };
        if let (Some(username), Some(password)) = (entry["username"].as_str(), entry["password"].as_str()) {
            return Ok(Some(Credentials { username: username.to_string(), password: password.to_string() }));
        }
        // Docker Desktop keeps an empty entry and the secret in its helper.
        let Some(auth) = entry["auth"].as_str().filter(|a| !a.is_empty()) else { return Ok(None) };
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .ok()
            .and_then(|d| String::from_utf8(d).ok())
            .and_then(|d| d.split_once(':').map(|(u, p)| Credentials { username: u.into(), password: p.into() }))
            .map(Some)
            .ok_or_else(|| {
                anyhow!("the `auth` of {registry} in {} is not base64 of USER:PASSWORD", self.path.display())
            })
    }
}

/// What a helper is asked for: Docker Hub by its index URL, anything else by its host.
fn server_url(registry: &str) -> String {
    match registry {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => "https://index.docker.io/v1/".to_string(),
        host => host.to_string(),
    }
}

/// Runs `docker-credential-HELPER get` with the server on stdin, as Docker does. A helper
/// that knows no credentials for it answers "credentials not found": `None`.
fn run_helper(helper: &str, server: &str) -> Result<Option<Credentials>> {
    let program = format!("docker-credential-{helper}");
    let mut child = std::process::Command::new(&program)
        .arg("get")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| {
            format!("Docker's config names the credential helper `{helper}`, but `{program}` could not be run (is it on PATH?)")
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(server.as_bytes());
    }
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(HELPER_TIMEOUT) {
        Ok(out) => out.with_context(|| format!("running {program}"))?,
        Err(_) => {
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            bail!("{program} get did not answer within {} s", HELPER_TIMEOUT.as_secs());
        }
    };
    let said = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        if said.contains("credentials not found") || String::from_utf8_lossy(&out.stderr).contains("not found") {
            return Ok(None);
        }
        // Its output may hold a secret: only the exit status is told.
        bail!("{program} get failed for {server} ({})", out.status);
    }
    let answer: Value = serde_json::from_str(&said)
        .map_err(|_| anyhow!("{program} get answered something other than JSON for {server}"))?;
    match (answer["Username"].as_str(), answer["Secret"].as_str()) {
        (Some(username), Some(secret)) => {
            Ok(Some(Credentials { username: username.to_string(), password: secret.to_string() }))
        }
        _ => bail!("{program} get answered without a Username and a Secret for {server}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn config(json: &str) -> DockerConfig {
        DockerConfig { path: "config.json".into(), config: serde_json::from_str(json).unwrap() }
    }

    #[test]
    fn reads_auths_as_docker_login_writes_them() {
        let c = config(
            r#"{"auths":{"127.0.0.1:5000":{"auth":"dTpw"},"https://index.docker.io/v1/":{"auth":"aHViOnNlY3JldA=="}}}"#,
        );
        assert_eq!(c.credentials("127.0.0.1:5000").unwrap().unwrap().username, "u");
        assert_eq!(c.credentials("127.0.0.1:5000").unwrap().unwrap().password, "p");
        assert_eq!(c.credentials("docker.io").unwrap().unwrap().password, "secret");
        assert!(c.credentials("other:5000").unwrap().is_none());
        let bad = config(r#"{"auths":{"r:1":{"auth":"%%%"}}}"#).credentials("r:1").unwrap_err().to_string();
        assert!(bad.contains("not base64 of USER:PASSWORD"), "{bad}");
    }

    #[test]
    fn runs_the_helper_docker_names_and_never_shows_what_it_printed() {
        let dir = tempfile::tempdir().unwrap();
        let helper = dir.path().join("docker-credential-unit");
        std::fs::write(
            &helper,
            "#!/bin/sh\nread server\n[ \"$server\" = r.example:5000 ] || { echo \"credentials not found\"; exit 1; }\n\
             echo \"{\\\"ServerURL\\\":\\\"$server\\\",\\\"Username\\\":\\\"ci\\\",\\\"Secret\\\":\\\"pw\\\"}\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = format!("{}:{}", dir.path().display(), std::env::var("PATH").unwrap_or_default());
        // The helper is found on PATH, as Docker finds it.
        unsafe { std::env::set_var("PATH", path) };
        let c = config(r#"{"credHelpers":{"r.example:5000":"unit"},"credsStore":"unit"}"#);
        let found = c.credentials("r.example:5000").unwrap().unwrap();
        assert_eq!((found.username.as_str(), found.password.as_str()), ("ci", "pw"));
        assert!(!format!("{found:?}").contains("pw"));
        // Through credsStore, for a registry it does not know: none.
        assert!(c.credentials("other:1").unwrap().is_none());
        let missing = config(r#"{"credsStore":"absent-helper"}"#).credentials("r:1").unwrap_err().to_string();
        assert!(missing.contains("docker-credential-absent-helper") && missing.contains("PATH"), "{missing}");
    }
}
