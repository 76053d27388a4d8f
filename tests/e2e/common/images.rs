//! Images that only a registry has, as the image tests need them: a registry over HTTPS
//! that asks for credentials, the demo images pushed to it under new names and removed
//! from the engine (so that a deployment must pull them), a Docker client config of the
//! test's own, and the image a container runs.

use super::registry::{Registry, RegistryOptions};
use super::tls::TestCa;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// Runs `docker` with `args`, with the client config in `config` if given and `stdin` on
/// its standard input; what it printed, trimmed. Fails the test if it fails.
fn run_docker(config: Option<&Path>, args: &[&str], stdin: &str) -> String {
    let mut command = Command::new("docker");
    command.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    if let Some(config) = config {
        command.env("DOCKER_CONFIG", config);
    }
    let mut child = command.spawn().expect("running docker");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `docker ARGS`, which must succeed; what it printed, trimmed.
pub fn docker(args: &[&str]) -> String {
    run_docker(None, args, "")
}

/// A registry over HTTPS (a certificate of a test CA, which Docker does not check on
/// loopback) that asks for `user` and `password`; None (a skip) without docker-registry.
/// The caller checks that `htpasswd` and `openssl` are here.
pub fn authenticated_registry(dir: &Path, user: &str, password: &str) -> Option<Registry> {
    let ca = TestCa::new();
    let (cert, key) = ca.issue_for("registry", "DNS:localhost,IP:127.0.0.1");
    // Kept in the registry's own dir: the CA's goes with it.
    let (cert_copy, key_copy) = (dir.join("registry.pem"), dir.join("registry.key"));
    std::fs::copy(&cert, &cert_copy).unwrap();
    std::fs::copy(&key, &key_copy).unwrap();
    let out = Command::new("htpasswd").args(["-Bbn", user, password]).output().unwrap();
    assert!(out.status.success(), "htpasswd: {}", String::from_utf8_lossy(&out.stderr));
    let htpasswd = dir.join("htpasswd");
    std::fs::write(&htpasswd, out.stdout).unwrap();
    let options = RegistryOptions {
        tls: Some((cert_copy.to_str().unwrap(), key_copy.to_str().unwrap())),
        htpasswd: Some(&htpasswd),
    };
    Registry::start_with(dir, options)
}

/// The `auth` that `docker login` writes in config.json: base64 of USER:PASSWORD.
pub fn basic_auth(user: &str, password: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
}

/// A repository of a test registry, `127.0.0.1:PORT/NAME-PORT` (a name no other test
/// uses). Every tag and digest of it that the engine holds is removed when it is
/// dropped; the demo images pushed into it keep their own names.
pub struct Repository {
    /// The registry, as credentials name it: `127.0.0.1:PORT`.
    pub host: String,
    /// The repository: `127.0.0.1:PORT/NAME-PORT`.
    pub name: String,
}

impl Repository {
    pub fn new(registry: &Registry, name: &str) -> Repository {
        let host = format!("127.0.0.1:{}", registry.port);
        Repository { name: format!("{host}/{name}-{}", registry.port), host }
    }

    /// The image `NAME:TAG` of this repository.
    pub fn at(&self, tag: &str) -> String {
        format!("{}:{tag}", self.name)
    }

    /// Removes every reference to this repository from the engine (tags, then digests).
    /// Untagging never deletes an image that another name (hivemind-demo:v1) still holds.
    pub fn remove_from_engine(&self) {
        let Ok(out) = Command::new("docker")
            .args(["image", "ls", "--digests", "--format", "{{.Tag}} {{.Digest}}", &self.name])
            .output()
        else {
            return;
        };
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let (tag, digest) = line.split_once(' ').unwrap_or((line, "<none>"));
            let tagged = (tag != "<none>").then(|| format!("{}:{tag}", self.name));
            let digested = (digest != "<none>").then(|| format!("{}@{digest}", self.name));
            for reference in tagged.into_iter().chain(digested) {
                let _ = Command::new("docker").args(["rmi", "-f", &reference]).output();
            }
        }
    }
}

impl Drop for Repository {
    fn drop(&mut self) {
        self.remove_from_engine();
    }
}

/// A Docker client config of the test's own (`DOCKER_CONFIG`): `docker login` writes in
/// it and `docker push` reads it, never the user's ~/.docker.
pub struct DockerClient {
    config: tempfile::TempDir,
}

impl DockerClient {
    pub fn new() -> DockerClient {
        DockerClient { config: tempfile::tempdir().unwrap() }
    }

    /// `docker login HOST -u USER --password-stdin`, into this config.
    pub fn login(&self, host: &str, user: &str, password: &str) {
        run_docker(Some(self.config.path()), &["login", host, "-u", user, "--password-stdin"], password);
    }

    /// Tags `source` as `target`, pushes it, and removes `target` from the engine: the
    /// registry has it, the engine must pull it. The digest the registry stored
    /// (`sha256:…`).
    pub fn push_as(&self, source: &str, target: &str) -> String {
        docker(&["tag", source, target]);
        self.push_and_forget(target)
    }

    /// `source` with a layer of `megabytes` MiB of random bytes on top (so no other image
    /// shares it), pushed as `target` and removed from the engine, layer and all; its
    /// digest. Made with `docker commit`, not `docker build`: no build cache keeps the
    /// layer, so a pull of it moves every byte.
    pub fn push_big(&self, source: &str, target: &str, megabytes: u32) -> String {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big");
        let head = Command::new("head")
            .args(["-c", &format!("{megabytes}M"), "/dev/urandom"])
            .stdout(std::fs::File::create(&big).unwrap())
            .status()
            .unwrap();
        assert!(head.success(), "head -c {megabytes}M /dev/urandom");
        let container = docker(&["create", source]);
        let copied = Command::new("docker").arg("cp").arg(&big).arg(format!("{container}:/big")).output().unwrap();
        let committed = Command::new("docker").args(["commit", &container, target]).output().unwrap();
        let _ = Command::new("docker").args(["rm", "-f", &container]).output();
        assert!(copied.status.success(), "docker cp: {}", String::from_utf8_lossy(&copied.stderr));
        assert!(committed.status.success(), "docker commit: {}", String::from_utf8_lossy(&committed.stderr));
        self.push_and_forget(target)
    }

    /// Pushes `target`, removes it from the engine, and returns the digest `docker push`
    /// reported (`TAG: digest: sha256:… size: N`).
    fn push_and_forget(&self, target: &str) -> String {
        let said = run_docker(Some(self.config.path()), &["push", target], "");
        docker(&["rmi", target]);
        said.split_whitespace()
            .skip_while(|word| *word != "digest:")
            .nth(1)
            .filter(|digest| digest.starts_with("sha256:"))
            .unwrap_or_else(|| panic!("no digest in what docker push {target} said: {said}"))
            .to_string()
    }
}

/// The image ID (`sha256:…`) that an image reference names in the engine.
pub fn image_id(reference: &str) -> String {
    docker(&["image", "inspect", "--format", "{{.Id}}", reference])
}

/// The image ID that a container runs.
pub fn container_image(container: &str) -> String {
    docker(&["inspect", "--format", "{{.Image}}", container])
}

/// The running containers of an app (labelled `hivemind.app=APP`), by full ID.
pub fn app_containers(app: &str) -> Vec<String> {
    let ids = docker(&["ps", "-q", "--no-trunc", "--filter", &format!("label=hivemind.app={app}")]);
    ids.lines().map(str::to_string).collect()
}
