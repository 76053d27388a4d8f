//! Images from registries, through the engine: a missing image is pulled (with the
//! registry's credentials, showing its layers and bytes as they come), and every image is
//! pinned to what the engine then holds, `repo@sha256:…`, so that the replicas of a
//! release run that content whatever its tag names later.

use crate::model::PullPolicy;
use anyhow::{Result, anyhow, bail};
use async_trait::async_trait;
use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::query_parameters::CreateImageOptionsBuilder;
use futures::StreamExt;
use hivemind_registry::validate_reference;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A pull with no word from the engine (no layer started, no byte come) for this long has
/// stalled: it fails rather than hold the deployment until its progress deadline.
pub const PULL_STALL: Duration = Duration::from_secs(60);

/// Registry credentials, by registry host (`127.0.0.1:5000`, `docker.io`).
#[async_trait]
pub trait Keychain: Send + Sync {
    /// The credentials for `registry`, if any are known, and where they came from.
    async fn credentials(&self, registry: &str) -> Result<Option<(hivemind_registry::Credentials, String)>>;
}

/// The keychain of a driver nobody gave one: Docker's config.json of the server's user.
pub struct DockerConfigKeychain;

#[async_trait]
impl Keychain for DockerConfigKeychain {
    async fn credentials(&self, registry: &str) -> Result<Option<(hivemind_registry::Credentials, String)>> {
        let asked = registry.to_string();
        // A credential helper is a program: it runs off the async threads.
        match tokio::task::spawn_blocking(move || hivemind_registry::docker_credentials(&asked)).await? {
            Ok(found) => Ok(found.map(|c| (c, "Docker's config.json".to_string()))),
            // A broken config.json or a missing helper must not stop pulls that need no
            // credentials; one that does is refused, and this line says why.
            Err(e) => {
                tracing::warn!(
                    "registry {registry}: Docker's credentials of the server's user could not be read ({e:#}); pulling without them"
                );
                Ok(None)
            }
        }
    }
}

/// How far a pull has come, as the engine reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullProgress {
    pub layers: usize,
    pub layers_done: usize,
    /// Bytes downloaded, and the total of the layers whose size is known yet.
    pub bytes: u64,
    pub total: u64,
}

impl std::fmt::Display for PullProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mb = |b: u64| b as f64 / 1e6;
        write!(f, "{}/{} layers, {:.0} of {:.0} MB", self.layers_done, self.layers, mb(self.bytes), mb(self.total))
    }
}

/// An image made ready to run: what replicas start from, and the pull it took.
#[derive(Debug, Clone)]
pub struct Pinned {
    /// `repo@sha256:…`; the engine's image id (`sha256:…`) for an image built on that
    /// engine and never pushed; the image as given where nothing can be pinned.
    pub reference: String,
    /// The content digest, when the image came from (or was pushed to) a registry.
    pub digest: Option<String>,
    /// The pull, if there was one: seconds and bytes.
    pub pulled: Option<(f64, u64)>,
}

/// Pulls and pins images on one engine.
#[derive(Clone)]
pub struct Puller {
    pub(super) docker: Docker,
    pub(super) keychain: Arc<dyn Keychain>,
    /// The engine's name for people ("the local Docker engine").
    pub(super) engine: String,
}

/// Where a pull reports its progress.
pub type OnProgress<'a> = &'a (dyn Fn(&PullProgress) + Send + Sync);

impl Puller {
    pub fn new(docker: Docker, engine: String) -> Puller {
        Puller { docker, keychain: Arc::new(DockerConfigKeychain), engine }
    }

    /// Checks `image` at admission: a valid reference, and with `--pull never` one the
    /// engine has.
    pub async fn check(&self, image: &str, policy: PullPolicy) -> Result<()> {
        validate_reference(image)?;
        if policy == PullPolicy::Never && self.docker.inspect_image(image).await.is_err() {
            bail!(
                "image `{image}` is not in {}, and --pull never forbids pulling it: pull or build it there first, or deploy with --pull missing",
                self.engine
            );
        }
        Ok(())
    }

    /// Makes `image` present as `policy` says, and pins it. `local_ids` allows pinning an
    /// image no registry knows by the engine's id (one engine runs every replica).
    pub async fn prepare(
        &self,
        image: &str,
        policy: PullPolicy,
        local_ids: bool,
        progress: OnProgress<'_>,
    ) -> Result<Pinned> {
        self.check(image, policy).await?;
        let present = self.docker.inspect_image(image).await.is_ok();
        let pulled = match (policy, present) {
            (PullPolicy::Always, _) | (PullPolicy::Missing, false) => Some(self.pull(image, progress).await?),
            _ => None,
        };
        let inspect = self
            .docker
            .inspect_image(image)
            .await
            .map_err(|e| anyhow!("{} has no image `{image}` after pulling it: {e}", self.engine))?;
        let digests = inspect.repo_digests.unwrap_or_default();
        let (reference, digest) = pin(image, &digests, inspect.id, local_ids);
        Ok(Pinned { reference, digest, pulled })
    }

    /// The registry credentials for `image`, as the engine takes them, and whose they are
    /// ("USER (from SOURCE)") for messages.
    pub async fn credentials_for(&self, image: &str) -> Result<(Option<DockerCredentials>, Option<String>)> {
        let registry = hivemind_registry::registry_of(image);
        let found = self.keychain.credentials(registry).await?;
        let who = found.as_ref().map(|(c, from)| format!("{} (from {from})", c.username));
        let credentials = found.map(|(c, _)| DockerCredentials {
            username: Some(c.username),
            password: Some(c.password),
            serveraddress: Some(registry.to_string()),
            ..Default::default()
        });
        Ok((credentials, who))
    }

    /// Pulls `image` through the engine; its seconds and bytes.
    pub async fn pull(&self, image: &str, progress: OnProgress<'_>) -> Result<(f64, u64)> {
        let registry = hivemind_registry::registry_of(image);
        let (credentials, who) = self.credentials_for(image).await?;
        // Without a tag the engine would pull every tag of the repository.
        let asked = match has_tag_or_digest(image) {
            true => image.to_string(),
            false => format!("{image}:latest"),
        };
        let options = CreateImageOptionsBuilder::default().from_image(&asked).build();
        let mut stream = self.docker.create_image(Some(options), None, credentials);
        let started = Instant::now();
        let mut layers: BTreeMap<String, Layer> = BTreeMap::new();
        let mut told: Option<Instant> = None;
        loop {
            let item = match tokio::time::timeout(PULL_STALL, stream.next()).await {
                Err(_) => bail!(
                    "the pull of {image} stalled: nothing came from {registry} for {} s ({}); check the registry and the network, then deploy again",
                    PULL_STALL.as_secs(),
                    sum(&layers)
                ),
                Ok(None) => break,
                Ok(Some(item)) => item,
            };
            let info = item.map_err(|e| explain(image, registry, who.as_deref(), &e))?;
            if let (Some(id), Some(status)) = (info.id, info.status.as_deref()) {
                let detail = info.progress_detail.unwrap_or_default();
                track(&mut layers, id, status, detail.current, detail.total);
            }
            // The first word at once (the pull has begun), then twice a second.
            if !layers.is_empty() && told.is_none_or(|t| t.elapsed() >= Duration::from_millis(500)) {
                told = Some(Instant::now());
                progress(&sum(&layers));
            }
        }
        let done = sum(&layers);
        progress(&done);
        Ok((started.elapsed().as_secs_f64(), done.bytes))
    }
}

/// What replicas of `image` run, given the engine's digests of it (`repo@sha256:…`) and
/// its id: the digest of this repository; else the id where one engine runs everything
/// (`local_ids`); else the image as given. Only this repository's digest names the
/// content under this name: an image also pushed elsewhere carries that repository's
/// digests too.
fn pin(image: &str, digests: &[String], id: Option<String>, local_ids: bool) -> (String, Option<String>) {
    if let Some((_, digest)) = image.split_once('@') {
        return (image.to_string(), Some(digest.to_string()));
    }
    let repository = repository_of(image);
    let ours = digests.iter().find_map(|d| d.split_once('@').filter(|(repo, _)| same_repository(repo, repository)));
    match (ours, id) {
        (Some((_, digest)), _) => (format!("{repository}@{digest}"), Some(digest.to_string())),
        (None, Some(id)) if local_ids => (id, None),
        (None, _) => (image.to_string(), None),
    }
}

/// One layer of a pull.
#[derive(Default)]
struct Layer {
    current: u64,
    total: u64,
    done: bool,
}

/// What one status line of the engine says about a layer.
fn track(layers: &mut BTreeMap<String, Layer>, id: String, status: &str, current: Option<i64>, total: Option<i64>) {
    const LAYER_STATES: [&str; 8] = [
        "Pulling fs layer",
        "Waiting",
        "Downloading",
        "Verifying Checksum",
        "Download complete",
        "Extracting",
        "Pull complete",
        "Already exists",
    ];
    if !LAYER_STATES.contains(&status) {
        return;
    }
    let layer = layers.entry(id).or_default();
    match status {
        "Downloading" => {
            layer.current = current.unwrap_or(0).max(0) as u64;
            layer.total = total.unwrap_or(0).max(0) as u64;
        }
        "Download complete" => layer.current = layer.total,
        "Pull complete" | "Already exists" => layer.done = true,
        _ => {}
    }
}

fn sum(layers: &BTreeMap<String, Layer>) -> PullProgress {
    PullProgress {
        layers: layers.len(),
        layers_done: layers.values().filter(|l| l.done).count(),
        bytes: layers.values().map(|l| l.current).sum(),
        total: layers.values().map(|l| l.total).sum(),
    }
}

/// The engine's words for a failed pull, with what to do about it.
fn explain(image: &str, registry: &str, who: Option<&str>, error: &bollard::errors::Error) -> anyhow::Error {
    let said = match error {
        bollard::errors::Error::DockerStreamError { error } => error.clone(),
        bollard::errors::Error::DockerResponseServerError { message, .. } => message.clone(),
        other => other.to_string(),
    };
    let lower = said.to_lowercase();
    // An engine that falls back to plain HTTP for a registry it may reach insecurely
    // reports that attempt's failure, not the refusal over HTTPS that came first.
    let refused_then_fell_back = who.is_none() && lower.contains("http request to an https server");
    let what = if refused_then_fell_back
        || ["unauthorized", "authentication required", "no basic auth credentials", "denied"]
            .iter()
            .any(|w| lower.contains(w))
    {
        match who {
            Some(who) => format!(
                "{registry} refused the credentials of {who}; give the right ones with `hivemind registry login {registry} --username USER --password-stdin`"
            ),
            None => format!(
                "{registry} wants credentials and the server has none for it: `hivemind registry login {registry} --username USER --password-stdin`, or `docker login` as the server's user"
            ),
        }
    } else if lower.contains("no matching manifest") {
        format!("{image} has no build for the engine's platform; push one for it (docker buildx --platform)")
    } else if lower.contains("invalid character '<'") || lower.contains("text/html") {
        format!("{registry} answered with a web page, not the registry API; check the registry's address")
    } else if ["manifest unknown", "not found", "does not exist"].iter().any(|w| lower.contains(w)) {
        format!(
            "{registry} has no {image}; check the repository and the tag (a tag must be pushed before it is deployed)"
        )
    } else if [
        "connection refused",
        "no such host",
        "i/o timeout",
        "dial tcp",
        "tls handshake",
        "network is unreachable",
    ]
    .iter()
    .any(|w| lower.contains(w))
    {
        format!(
            "the registry {registry} did not answer the engine; check that it runs and that the engine's host reaches it"
        )
    } else {
        format!("pulling {image} from {registry} failed; try `docker pull {image}` as the server's user to see more")
    };
    anyhow!("{what} (the engine said: {said})")
}

/// The repository of a reference: without its tag or digest.
pub fn repository_of(image: &str) -> &str {
    let name = image.split_once('@').map_or(image, |(name, _)| name);
    let last_slash = name.rfind('/').map(|i| i + 1).unwrap_or(0);
    match name[last_slash..].rfind(':') {
        Some(i) => &name[..last_slash + i],
        None => name,
    }
}

fn has_tag_or_digest(image: &str) -> bool {
    image.contains('@') || repository_of(image).len() != image.len()
}

/// Whether the engine's name for a repository (`nginx`, `127.0.0.1:5000/demo`) is the one
/// asked for, which may spell Docker Hub's names in full (`docker.io/library/nginx`).
fn same_repository(engine: &str, asked: &str) -> bool {
    let short = |r: &str| {
        let r = r.strip_prefix("docker.io/").unwrap_or(r);
        r.strip_prefix("library/").unwrap_or(r).to_string()
    };
    short(engine) == short(asked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_repositories_and_tags() {
        assert_eq!(repository_of("127.0.0.1:5000/demo:v1"), "127.0.0.1:5000/demo");
        assert_eq!(repository_of("127.0.0.1:5000/demo"), "127.0.0.1:5000/demo");
        assert_eq!(repository_of("nginx@sha256:ab"), "nginx");
        assert!(!has_tag_or_digest("127.0.0.1:5000/demo"));
        assert!(has_tag_or_digest("nginx:latest") && has_tag_or_digest("nginx@sha256:ab"));
        assert!(same_repository("nginx", "docker.io/library/nginx"));
        assert!(!same_repository("127.0.0.1:5000/demo", "127.0.0.1:5001/demo"));
    }

    #[test]
    fn pins_by_this_repositorys_digest_only() {
        let digests = vec!["127.0.0.1:5000/web@sha256:aa".to_string(), "nginx@sha256:bb".to_string()];
        let id = || Some("sha256:cc".to_string());
        assert_eq!(pin("nginx:latest", &digests, id(), true), ("nginx@sha256:bb".into(), Some("sha256:bb".into())));
        assert_eq!(pin("docker.io/library/nginx", &digests, id(), false).1.as_deref(), Some("sha256:bb"));
        // Built here, pushed under another name since: its own name has no digest.
        assert_eq!(pin("hivemind-demo:v2", &digests, id(), true), ("sha256:cc".into(), None));
        assert_eq!(pin("hivemind-demo:v2", &digests, id(), false), ("hivemind-demo:v2".into(), None));
        assert_eq!(pin("web@sha256:dd", &[], None, true), ("web@sha256:dd".into(), Some("sha256:dd".into())));
    }

    #[test]
    fn counts_layers_and_bytes_as_the_engine_reports_them() {
        let mut layers = BTreeMap::new();
        track(&mut layers, "v1".into(), "Pulling from demo", None, None);
        track(&mut layers, "a".into(), "Pulling fs layer", None, None);
        track(&mut layers, "b".into(), "Already exists", None, None);
        track(&mut layers, "a".into(), "Downloading", Some(41_000_000), Some(62_000_000));
        assert_eq!(sum(&layers).to_string(), "1/2 layers, 41 of 62 MB");
        track(&mut layers, "a".into(), "Download complete", None, None);
        track(&mut layers, "a".into(), "Pull complete", None, None);
        assert_eq!(sum(&layers).to_string(), "2/2 layers, 62 of 62 MB");
    }

    #[test]
    fn says_what_a_failed_pull_means() {
        let said = |m: &str| {
            explain("r:5/app:v9", "r:5", None, &bollard::errors::Error::DockerStreamError { error: m.into() })
                .to_string()
        };
        assert!(said("manifest for r:5/app:v9 not found: manifest unknown").contains("has no r:5/app:v9"));
        assert!(said("unauthorized: authentication required").contains("hivemind registry login r:5"));
        let fell_back = "error parsing HTTP 400 response body: \"Client sent an HTTP request to an HTTPS server.\"";
        assert!(said(fell_back).contains("wants credentials and the server has none"));
        assert!(
            said("Get \"https://r:5/v2/\": dial tcp 127.0.0.1:5: connect: connection refused")
                .contains("did not answer")
        );
        assert!(said("no matching manifest for linux/amd64 in the manifest list entries").contains("platform"));
        assert!(said("invalid character '<' looking for beginning of value").contains("web page"));
    }
}
