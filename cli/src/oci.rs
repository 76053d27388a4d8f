//! Plugins in OCI registries, in the standard Wasm OCI artifact layout that `wkg oci push`
//! and wasm-pkg use: a manifest whose config has the media type
//! `application/vnd.wasm.config.v0+json` and whose one layer is the component,
//! `application/wasm`. `plugin install oci://…` pulls and verifies every digest;
//! `plugin publish FILE oci://…` pushes.
//!
//! Registries are reached over HTTPS, trusting the system's roots or the CA given with
//! `--ca-cert`; a registry on loopback may also answer plain HTTP (tried after HTTPS, as
//! Docker does for localhost). When the registry asks for credentials (`401` on `/v2/`),
//! they come from `--username`/`--password-stdin`, else from Docker's `config.json`, and
//! are sent as the registry asks: Basic, or a Bearer token from its token service.
//!
//! A component's minisign signature travels as an annotation on its layer
//! (`dev.hivemind.signature.minisign`), so it arrives with the manifest that names the
//! component, in the same request.

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::PathBuf;

const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const CONFIG_TYPE: &str = "application/vnd.wasm.config.v0+json";
const LAYER_TYPE: &str = "application/wasm";
/// The layer annotation that carries the component's minisign signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.hivemind.signature.minisign";
/// The most a registry answer may hold: a component is at most 32 MiB.
const MAX_BODY: usize = 48 << 20;

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

    /// A registry on this machine may serve plain HTTP: `localhost`, or a loopback
    /// address (`127.0.0.1`, `[::1]`), with or without a port.
    fn is_loopback(&self) -> bool {
        let host = match self.registry.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or_default(),
            None => self.registry.split(':').next().unwrap_or_default(),
        };
        host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
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
    let hex: String = Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// How to reach a registry: the CA to trust besides the system's, and credentials.
#[derive(Default, Clone)]
pub struct Access {
    pub ca_cert: Option<PathBuf>,
    pub username: Option<String>,
    pub password: Option<String>,
}

type HttpClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

/// A registry's answer, read whole.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

/// A connection to one repository of a registry, authenticated as it asked.
pub struct Registry {
    http: HttpClient,
    reference: Reference,
    /// `SCHEME://HOST[:PORT]`
    origin: String,
    /// The `Authorization` header's value, if the registry wants one.
    auth: Option<String>,
}

/// The HTTP client: HTTPS with the system's roots and `ca_cert`, or plain HTTP.
fn http_client(ca_cert: Option<&std::path::Path>) -> Result<HttpClient> {
    let tls = crate::tls::client_config(ca_cert, "--ca-cert")?;
    let connector =
        hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http().enable_http1().build();
    Ok(hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector))
}

impl Registry {
    /// Finds the registry (HTTPS, or plain HTTP on loopback) and authenticates for
    /// `reference`'s repository, to pull or to push.
    pub async fn connect(reference: &Reference, access: &Access, push: bool) -> Result<Registry> {
        let http = http_client(access.ca_cert.as_deref())?;
        let schemes: &[&str] = if reference.is_loopback() { &["https", "http"] } else { &["https"] };
        let mut failures = Vec::new();
        let mut found = None;
        for scheme in schemes {
            let registry = Registry {
                http: http.clone(),
                reference: reference.clone(),
                origin: format!("{scheme}://{}", reference.registry),
                auth: None,
            };
            match registry.request(Method::GET, &format!("{}/v2/", registry.origin), &[], None).await {
                // A server that speaks only HTTPS answers plain HTTP with 400: what failed
                // is the HTTPS attempt, already in `failures`.
                Ok(answer) if *scheme == "http" && answer.status == StatusCode::BAD_REQUEST && !failures.is_empty() => {
                }
                Ok(answer) => {
                    found = Some((registry, answer));
                    break;
                }
                Err(e) => {
                    failures.push(format!("over {}: {e:#}", if *scheme == "https" { "HTTPS" } else { "plain HTTP" }))
                }
            }
        }
        let Some((mut registry, answer)) = found else {
            let hint = if failures.iter().any(|f| f.contains("certificate") || f.contains("UnknownIssuer")) {
                "; if it has a certificate from a private CA, give that CA with --ca-cert FILE"
            } else {
                ""
            };
            bail!("cannot reach the registry {}: {}{hint}", reference.registry, failures.join("; and "));
        };
        match answer.status {
            s if s.is_success() => {}
            StatusCode::UNAUTHORIZED => registry.authenticate(&answer, access, push).await?,
            s => bail!("{} is not an OCI registry, or not one this can use: GET /v2/ answered {s}", reference.registry),
        }
        Ok(registry)
    }

    /// Answers the `WWW-Authenticate` challenge of `/v2/`: Basic with the credentials, or
    /// a Bearer token from the realm it names (with the credentials, if there are any).
    async fn authenticate(&mut self, challenge: &Answer, access: &Access, push: bool) -> Result<()> {
        let registry = self.reference.registry.clone();
        let header = challenge.headers.get(header::WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let credentials = match (&access.username, &access.password) {
            (Some(user), Some(password)) => Some((user.clone(), password.clone())),
            (Some(user), None) => {
                bail!("--username {user} needs its password: give it on standard input with --password-stdin")
            }
            _ => hivemind_registry::docker_credentials(&registry)?.map(|c| (c.username, c.password)),
        };
        let basic = credentials.as_ref().map(|(user, password)| {
            use base64::Engine;
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
        });
        let who = credentials.as_ref().map(|(u, _)| u.clone());
        let (scheme, params) = parse_challenge(header);
        match scheme.as_str() {
            "basic" => {
                let Some(basic) = basic else {
                    bail!(
                        "the registry {registry} asks for credentials: give --username USER --password-stdin, or log in with `docker login {registry}`"
                    );
                };
                self.auth = Some(basic);
                let check = self.request(Method::GET, &format!("{}/v2/", self.origin), &[], None).await?;
                if check.status == StatusCode::UNAUTHORIZED {
                    bail!(
                        "the registry {registry} refused the credentials of {}: check the user name and password",
                        who.unwrap_or_default()
                    );
                }
            }
            "bearer" => {
                let realm = params.get("realm").ok_or_else(|| {
                    anyhow!("the registry {registry} asks for a token but names no realm to get one from")
                })?;
                let scope =
                    format!("repository:{}:{}", self.reference.repository, if push { "pull,push" } else { "pull" });
                let mut url = format!("{realm}?scope={}", urlencode(&scope));
                if let Some(service) = params.get("service") {
                    url.push_str(&format!("&service={}", urlencode(service)));
                }
                // The token service is often on another host (auth.docker.io for Docker
                // Hub): the credentials go to it, but only over HTTPS.
                let basic = basic.filter(|_| realm.starts_with("https://") || self.same_origin(realm));
                let answer = self
                    .request_as(Method::GET, &url, &[], None, basic.as_deref())
                    .await
                    .with_context(|| format!("getting a token from {realm}"))?;
                if !answer.status.is_success() {
                    bail!(
                        "the registry's token service {realm} answered {} for {}{scope}: {}",
                        answer.status,
                        who.map(|u| format!("{u}, ")).unwrap_or_default(),
                        String::from_utf8_lossy(&answer.body).trim().chars().take(200).collect::<String>()
                    );
                }
                let token: Value =
                    serde_json::from_slice(&answer.body).context("the token service's answer is not JSON")?;
                let token = token["token"]
                    .as_str()
                    .or(token["access_token"].as_str())
                    .ok_or_else(|| anyhow!("the token service {realm} answered without a token"))?;
                self.auth = Some(format!("Bearer {token}"));
            }
            other => bail!(
                "the registry {registry} asks for `{other}` authentication, which this client does not speak (it speaks Basic and Bearer)"
            ),
        }
        Ok(())
    }

    fn base(&self) -> String {
        format!("{}/v2/{}", self.origin, self.reference.repository)
    }

    /// Whether `url` is on the registry's own origin: the same scheme, host and port
    /// (compared parsed, so that `reg.example.com.evil.net` or `user@evil.net` is not).
    fn same_origin(&self, url: &str) -> bool {
        let (Ok(url), Ok(origin)) = (url.parse::<http::Uri>(), self.origin.parse::<http::Uri>()) else {
            return false;
        };
        url.scheme() == origin.scheme() && url.authority().is_some() && url.authority() == origin.authority()
    }

    /// One request, following redirects (blob downloads are often redirected to storage),
    /// with the registry's credentials only on its own origin.
    async fn request(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<Answer> {
        let auth = self.auth.as_deref().filter(|_| self.same_origin(url));
        self.request_as(method, url, headers, body, auth).await
    }

    /// A request with `auth` as its `Authorization` on the first URL's origin only.
    async fn request_as(
        &self,
        mut method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
        auth: Option<&str>,
    ) -> Result<Answer> {
        let mut body = body.map(Bytes::from);
        let first: Option<http::Uri> = url.parse().ok();
        let mut url = url.to_string();
        for _ in 0..5 {
            let mut request = http::Request::builder().method(method.clone()).uri(&url);
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            let on_first_origin = url.parse::<http::Uri>().ok().is_some_and(|u| {
                first.as_ref().is_some_and(|f| u.scheme() == f.scheme() && u.authority() == f.authority())
            });
            if let Some(auth) = auth.filter(|_| on_first_origin) {
                request = request.header(header::AUTHORIZATION, auth);
            }
            // Bytes: a redirect sends the body again without copying it.
            let request = request.body(Full::new(body.clone().unwrap_or_default()))?;
            let response = self.http.request(request).await.map_err(|e| {
                let mut message = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    message = format!("{message}: {s}");
                    source = s.source();
                }
                anyhow!("{message}")
            })?;
            let status = response.status();
            let headers = response.headers().clone();
            if status.is_redirection()
                && let Some(location) = headers.get(header::LOCATION).and_then(|l| l.to_str().ok())
            {
                url = if location.starts_with("http") {
                    location.to_string()
                } else {
                    format!("{}{location}", self.origin)
                };
                if status == StatusCode::SEE_OTHER {
                    (method, body) = (Method::GET, None);
                }
                continue;
            }
            let body = Limited::new(response.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| anyhow!("reading the registry's answer: {e}"))?
                .to_bytes();
            return Ok(Answer { status, headers, body });
        }
        bail!("the registry {} redirected {url} more than 5 times", self.reference.registry)
    }

    /// A request that must succeed, with what was being done in its error.
    async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
        what: &str,
    ) -> Result<Answer> {
        let answer = self
            .request(method, url, headers, body)
            .await
            .map_err(|e| anyhow!("{what} at {}: {e:#}", self.reference.registry))?;
        if answer.status.is_success() {
            return Ok(answer);
        }
        bail!(
            "{what} of {}: the registry answered {}: {}",
            self.reference,
            answer.status,
            String::from_utf8_lossy(&answer.body).trim().chars().take(300).collect::<String>()
        )
    }
}

/// The scheme of a `WWW-Authenticate` challenge (lowercase) and its `key="value"` pairs.
fn parse_challenge(header: &str) -> (String, std::collections::HashMap<String, String>) {
    let (scheme, rest) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
    let mut params = std::collections::HashMap::new();
    let mut rest = rest.trim();
    while let Some((key, after)) = rest.split_once('=') {
        let key = key.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            quoted.split_once('"').unwrap_or((quoted, ""))
        } else {
            after.split_once(',').unwrap_or((after, ""))
        };
        params.insert(key, value.to_string());
        rest = next.trim_start_matches(',').trim();
    }
    (scheme.to_ascii_lowercase(), params)
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// What a pull fetched, with the digests it checked.
pub struct Pulled {
    pub component: Vec<u8>,
    pub manifest_digest: String,
    pub layer_digest: String,
    /// The component's minisign signature, if it was published with one.
    pub signature: Option<String>,
}

/// Pulls the component `reference` names, checking the manifest's digest (when the
/// reference is one) and the component's against the manifest.
pub async fn pull(registry: &Registry) -> Result<Pulled> {
    let reference = &registry.reference;
    let base = registry.base();
    let answer = registry
        .send(
            Method::GET,
            &format!("{base}/manifests/{}", reference.reference),
            &[("accept", MANIFEST_TYPE)],
            None,
            "fetching the manifest",
        )
        .await?;
    let manifest_bytes = answer.body;
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
    let blob = registry
        .send(Method::GET, &format!("{base}/blobs/{layer_digest}"), &[], None, "fetching the component")
        .await?;
    let component = blob.body.to_vec();
    let actual = digest_of(&component);
    if actual != layer_digest {
        bail!("the component pulled from {reference} has digest {actual}, but its manifest says {layer_digest}");
    }
    let signature = layer["annotations"][SIGNATURE_ANNOTATION].as_str().map(str::to_string);
    Ok(Pulled { component, manifest_digest, layer_digest: layer_digest.to_string(), signature })
}

/// Pushes `component` (with its signature, if it has one) as the registry's reference (a
/// tag); returns the manifest's digest.
pub async fn push(registry: &Registry, component: &[u8], signature: Option<&str>) -> Result<String> {
    let reference = &registry.reference;
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
    upload_blob(registry, &config, &config_digest).await?;
    upload_blob(registry, component, &layer_digest).await?;
    let mut layer = json!({ "mediaType": LAYER_TYPE, "digest": layer_digest, "size": component.len() });
    if let Some(signature) = signature {
        layer["annotations"] = json!({ SIGNATURE_ANNOTATION: signature });
    }
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": { "mediaType": CONFIG_TYPE, "digest": config_digest, "size": config.len() },
        "layers": [layer],
    }))?;
    registry
        .send(
            Method::PUT,
            &format!("{}/manifests/{}", registry.base(), reference.reference),
            &[("content-type", MANIFEST_TYPE)],
            Some(manifest.clone()),
            "storing the manifest",
        )
        .await?;
    Ok(digest_of(&manifest))
}

/// A monolithic blob upload: start a session, then PUT the bytes with their digest.
async fn upload_blob(registry: &Registry, bytes: &[u8], digest: &str) -> Result<()> {
    let base = registry.base();
    let exists = registry
        .request(Method::HEAD, &format!("{base}/blobs/{digest}"), &[], None)
        .await
        .is_ok_and(|a| a.status.is_success());
    if exists {
        return Ok(());
    }
    let started =
        registry.send(Method::POST, &format!("{base}/blobs/uploads/"), &[], None, "starting an upload").await?;
    let location = started
        .headers
        .get(header::LOCATION)
        .and_then(|l| l.to_str().ok())
        .ok_or_else(|| anyhow!("the registry {} started an upload without a Location", registry.reference.registry))?
        .to_string();
    // The location may be relative to the registry, and may carry a query already.
    let url = if location.starts_with("http") { location } else { format!("{}{location}", registry.origin) };
    let sep = if url.contains('?') { '&' } else { '?' };
    registry
        .send(
            Method::PUT,
            &format!("{url}{sep}digest={digest}"),
            &[("content-type", "application/octet-stream")],
            Some(bytes.to_vec()),
            "uploading a blob",
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{Reference, Registry, http_client, parse_challenge};

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

    #[test]
    fn credentials_stay_on_the_registrys_origin_and_loopback_is_an_address() {
        let r = |s: &str| Reference::parse(s).unwrap();
        for local in ["oci://127.0.0.1:5000/a:1", "oci://localhost/a:1", "oci://[::1]:5000/a:1", "oci://[::1]/a:1"] {
            assert!(r(local).is_loopback(), "{local}");
        }
        for remote in ["oci://127.example.com/a:1", "oci://reg.example.com:5000/a:1", "oci://10.0.0.1/a:1"] {
            assert!(!r(remote).is_loopback(), "{remote}");
        }
        let registry = Registry {
            http: http_client(None).unwrap(),
            reference: r("oci://reg.example.com/a:1"),
            origin: "https://reg.example.com".into(),
            auth: None,
        };
        assert!(registry.same_origin("https://reg.example.com/v2/a/blobs/uploads/1?x=y"));
        for other in [
            "https://reg.example.com.evil.net/v2/",
            "https://reg.example.com@evil.net/v2/",
            "http://reg.example.com/v2/",
            "https://reg.example.com:8443/v2/",
            "/v2/relative",
        ] {
            assert!(!registry.same_origin(other), "{other}");
        }
    }

    #[test]
    fn parses_authentication_challenges() {
        let (scheme, params) =
            parse_challenge(r#"Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:a/b:pull""#);
        assert_eq!(scheme, "bearer");
        assert_eq!(params["realm"], "https://ghcr.io/token");
        assert_eq!(params["service"], "ghcr.io");
        assert_eq!(params["scope"], "repository:a/b:pull");
        let (scheme, params) = parse_challenge(r#"Basic realm="Registry Realm""#);
        assert_eq!((scheme.as_str(), params["realm"].as_str()), ("basic", "Registry Realm"));
    }
}
