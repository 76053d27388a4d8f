//! Plugins in OCI registries, in the standard Wasm OCI artifact layout that `wkg oci push`
//! and wasm-pkg use: a manifest whose config has the media type
//! `application/vnd.wasm.config.v0+json` and whose one layer is the component,
//! `application/wasm`. `plugin install oci://…` pulls and verifies every digest;
//! `plugin publish FILE oci://…` pushes.

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const CONFIG_TYPE: &str = "application/vnd.wasm.config.v0+json";
const LAYER_TYPE: &str = "application/wasm";

/// `oci://HOST[:PORT]/REPOSITORY[:TAG|@sha256:DIGEST]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub registry: String,
    pub repository: String,
    /// A tag, or a digest (`sha256:…`).
    pub reference: String,
}

impl Reference {
    pub fn parse(text: &str) -> Result<Reference> {
        let bad =
            |why: &str| anyhow!("`{text}` is not an OCI reference: {why}; write oci://HOST[:PORT]/REPOSITORY:TAG");
        let rest = text.strip_prefix("oci://").ok_or_else(|| bad("it must start with oci://"))?;
        let (registry, path) = rest.split_once('/').ok_or_else(|| bad("it names no repository"))?;
        let (repository, reference) = match path.split_once('@') {
            Some((repo, digest)) => (repo, digest.to_string()),
            None => match path.rsplit_once(':') {
                Some((repo, tag)) if !tag.contains('/') => (repo, tag.to_string()),
                _ => (path, "latest".to_string()),
            },
        };
        let repo_ok = !repository.is_empty()
            && repository.split('/').all(|c| {
                !c.is_empty()
                    && c.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch))
            });
        if registry.is_empty() || !repo_ok {
            return Err(bad("the repository must be lowercase path components"));
        }
        if reference.starts_with("sha256:") && !is_digest(&reference) {
            return Err(bad("a digest is sha256: and 64 hex digits"));
        }
        Ok(Reference { registry: registry.to_string(), repository: repository.to_string(), reference })
    }

    /// Loopback registries are reached over plain HTTP, all others over HTTPS.
    fn base(&self) -> String {
        let host = self.registry.rsplit_once(':').map(|(h, _)| h).unwrap_or(&self.registry);
        let loopback = host == "localhost" || host.starts_with("127.") || host == "[::1]";
        format!("{}://{}/v2/{}", if loopback { "http" } else { "https" }, self.registry, self.repository)
    }

    fn by_digest(&self) -> bool {
        self.reference.starts_with("sha256:")
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sep = if self.by_digest() { '@' } else { ':' };
        write!(f, "oci://{}/{}{sep}{}", self.registry, self.repository, self.reference)
    }
}

fn is_digest(d: &str) -> bool {
    d.strip_prefix("sha256:").is_some_and(|h| h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()))
}

pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", crate::plugins::hex(&Sha256::digest(bytes)))
}

/// What a pull fetched, with the digests it checked.
pub struct Pulled {
    pub component: Vec<u8>,
    pub manifest_digest: String,
    pub layer_digest: String,
}

async fn send(request: reqwest::RequestBuilder, what: &str, reference: &Reference) -> Result<reqwest::Response> {
    let response = request.send().await.map_err(|e| {
        let hint = if reference.base().starts_with("https") {
            " (this build reaches registries on loopback over plain HTTP; HTTPS registries are not supported yet)"
        } else {
            ""
        };
        anyhow!("{what} at {}: {e}{hint}", reference.registry)
    })?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.text().await.unwrap_or_default();
    bail!(
        "{what} of {reference}: the registry answered {status}: {}",
        body.trim().chars().take(300).collect::<String>()
    )
}

/// Pulls the component `reference` names, checking the manifest's digest (when the
/// reference is one) and the component's against the manifest.
pub async fn pull(http: &reqwest::Client, reference: &Reference) -> Result<Pulled> {
    let base = reference.base();
    let response = send(
        http.get(format!("{base}/manifests/{}", reference.reference)).header("accept", MANIFEST_TYPE),
        "fetching the manifest",
        reference,
    )
    .await?;
    let manifest_bytes = response.bytes().await?;
    let manifest_digest = digest_of(&manifest_bytes);
    if reference.by_digest() && manifest_digest != reference.reference {
        bail!("the manifest of {reference} has digest {manifest_digest}: it is not what was asked for");
    }
    let manifest: Value = serde_json::from_slice(&manifest_bytes).context("the manifest is not JSON")?;
    let layers = manifest["layers"].as_array().cloned().unwrap_or_default();
    let layer = layers
        .iter()
        .find(|l| l["mediaType"] == LAYER_TYPE)
        .ok_or_else(|| anyhow!("{reference} holds no `{LAYER_TYPE}` layer: it is not a Wasm component artifact"))?;
    let layer_digest = layer["digest"]
        .as_str()
        .filter(|d| is_digest(d))
        .ok_or_else(|| anyhow!("the manifest of {reference} gives its component layer no sha256 digest"))?;
    let blob = send(http.get(format!("{base}/blobs/{layer_digest}")), "fetching the component", reference).await?;
    let component = blob.bytes().await?.to_vec();
    let actual = digest_of(&component);
    if actual != layer_digest {
        bail!("the component pulled from {reference} has digest {actual}, but its manifest says {layer_digest}");
    }
    Ok(Pulled { component, manifest_digest, layer_digest: layer_digest.to_string() })
}

/// Pushes `component` as `reference` (a tag); returns the manifest's digest.
pub async fn push(http: &reqwest::Client, reference: &Reference, component: &[u8]) -> Result<String> {
    if reference.by_digest() {
        bail!("publish to a tag, as in oci://127.0.0.1:5000/team/linear:1.0.0, not to a digest");
    }
    let layer_digest = digest_of(component);
    let config = serde_json::to_vec(&json!({
        "created": humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        "architecture": "wasm",
        "os": "wasip2",
        "layerDigests": [layer_digest],
    }))?;
    let config_digest = digest_of(&config);
    upload_blob(http, reference, &config, &config_digest).await?;
    upload_blob(http, reference, component, &layer_digest).await?;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": { "mediaType": CONFIG_TYPE, "digest": config_digest, "size": config.len() },
        "layers": [{ "mediaType": LAYER_TYPE, "digest": layer_digest, "size": component.len() }],
    }))?;
    send(
        http.put(format!("{}/manifests/{}", reference.base(), reference.reference))
            .header("content-type", MANIFEST_TYPE)
            .body(manifest.clone()),
        "storing the manifest",
        reference,
    )
    .await?;
    Ok(digest_of(&manifest))
}

/// A monolithic blob upload: start a session, then PUT the bytes with their digest.
async fn upload_blob(http: &reqwest::Client, reference: &Reference, bytes: &[u8], digest: &str) -> Result<()> {
    let base = reference.base();
    let exists = http.head(format!("{base}/blobs/{digest}")).send().await.is_ok_and(|r| r.status().is_success());
    if exists {
        return Ok(());
    }
    let started = send(http.post(format!("{base}/blobs/uploads/")), "starting an upload", reference).await?;
    let location = started
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .ok_or_else(|| anyhow!("the registry {} started an upload without a Location", reference.registry))?
        .to_string();
    // The location may be relative to the registry, and may carry a query already.
    let url = if location.starts_with("http") {
        location
    } else {
        let origin = base.split("/v2/").next().unwrap_or_default();
        format!("{origin}{location}")
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    send(
        http.put(format!("{url}{sep}digest={digest}"))
            .header("content-type", "application/octet-stream")
            .body(bytes.to_vec()),
        "uploading a blob",
        reference,
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Reference;

    #[test]
    fn parses_references() {
        let r = Reference::parse("oci://127.0.0.1:5000/team/linear:1.0.0").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.reference.as_str()),
            ("127.0.0.1:5000", "team/linear", "1.0.0")
        );
        assert_eq!(Reference::parse("oci://localhost/linear").unwrap().reference, "latest");
        let digest = format!("sha256:{}", "a".repeat(64));
        let r = Reference::parse(&format!("oci://reg.example.com/linear@{digest}")).unwrap();
        assert_eq!(r.reference, digest);
        assert_eq!(r.to_string(), format!("oci://reg.example.com/linear@{digest}"));
        for bad in ["linear.wasm", "oci://reg", "oci://reg/Team/x:1", "oci://reg/x@sha256:zz", "oci:///x:1"] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
    }
}
