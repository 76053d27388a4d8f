//! A small typed client of the REST API.

use crate::api_types::{
    AppView, CertBody, CertInfo, DeploymentView, Diagnosis, ErrorBody, MetricsView, PipelineView, PluginDetails,
    PluginView, Rotated, ScaleBody, StatusView,
};
use crate::error::UserError;
use crate::model::AppEvent;
use crate::model::{DeploymentSpec, Event};
use serde::de::DeserializeOwned;
use std::process::ExitCode;

pub enum CliError {
    /// The server refused the request (4xx): the user can fix the input.
    Refused(UserError),
    /// The server could not be reached.
    Unreachable(String),
    /// Bad local input.
    Usage(String),
    Other(anyhow::Error),
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Refused(e) => match &e.field {
                Some(field) => write!(f, "{} (field: {field})", e.message),
                None => write!(f, "{}", e.message),
            },
            CliError::Unreachable(m) | CliError::Usage(m) => f.write_str(m),
            CliError::Other(e) => write!(f, "{e:#}"),
        }
    }
}

impl CliError {
    /// 2: the input was wrong; 3: no server; 1: anything else.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Refused(e) if e.status < 500 => ExitCode::from(2),
            CliError::Usage(_) => ExitCode::from(2),
            CliError::Unreachable(_) => ExitCode::from(3),
            _ => ExitCode::from(1),
        }
    }
}

pub struct Client {
    base: String,
    http: reqwest::Client,
    token: Option<String>,
}

impl Client {
    /// A client of the server at `server` (http:// or https://, trusting `tls`'s roots).
    pub fn new(server: &str, token: Option<String>, tls: rustls::ClientConfig) -> Result<Client, CliError> {
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .build()
            .map_err(|e| CliError::Usage(format!("cannot set up the HTTP client: {e}")))?;
        Ok(Client { base: server.trim_end_matches('/').to_string(), http, token })
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    async fn send<T: DeserializeOwned>(&self, request: reqwest::RequestBuilder) -> Result<T, CliError> {
        let status_only = self.send_raw(request).await?;
        serde_json::from_slice(&status_only)
            .map_err(|e| CliError::Other(anyhow::anyhow!("the server's answer does not parse: {e}")))
    }

    /// Sends a request; returns the body of a success, the server's error otherwise.
    async fn send_raw(&self, request: reqwest::RequestBuilder) -> Result<bytes::Bytes, CliError> {
        let response = self.authorized(request).send().await.map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| CliError::Other(e.into()))?;
        if status.is_success() {
            return Ok(body);
        }
        match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(ErrorBody { mut error }) => {
                error.status = status.as_u16();
                Err(CliError::Refused(error))
            }
            Err(_) => Err(CliError::Other(anyhow::anyhow!(
                "the server answered {status}: {}",
                String::from_utf8_lossy(&body)
            ))),
        }
    }

    /// Why the server could not be reached, with what to do: a certificate the system
    /// does not trust, plain HTTP to an HTTPS API, or no server at all.
    fn unreachable(&self, e: &reqwest::Error) -> CliError {
        let mut causes = Vec::new();
        let mut source: Option<&dyn std::error::Error> = Some(e);
        while let Some(cause) = source {
            causes.push(cause.to_string());
            source = cause.source();
        }
        let all = causes.join(": ");
        let hint = if all.contains("certificate") {
            "the server's certificate is not trusted here: give the CA that signed it with --server-ca-cert FILE (HIVEMIND_SERVER_CA_CERT, or server_ca_cert in the CLI's config file)"
        } else if self.base.starts_with("http://") && (all.contains("closed") || all.contains("reset")) {
            "if the server serves HTTPS (serve --api-tls-cert), its URL starts with https://"
        } else {
            "start one with `hivemind serve` or set HIVEMIND_URL"
        };
        CliError::Unreachable(format!("cannot reach the hivemind server at {} ({all}); {hint}", self.base))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The URL of `path` with a query string, each value percent-encoded.
    fn url_with(&self, path: &str, query: &[(&str, &str)]) -> Result<reqwest::Url, CliError> {
        let mut url = reqwest::Url::parse(&self.url(path))
            .map_err(|e| CliError::Usage(format!("the server URL {} is not valid: {e}", self.base)))?;
        url.query_pairs_mut().extend_pairs(query);
        Ok(url)
    }

    pub async fn deploy(&self, spec: &DeploymentSpec) -> Result<DeploymentView, CliError> {
        self.send(self.http.post(self.url("/api/apps/deploy")).json(spec)).await
    }

    pub async fn zero_downtime(&self, spec: &DeploymentSpec) -> Result<DeploymentView, CliError> {
        self.send(self.http.post(self.url("/api/deployments/zero-downtime")).json(spec)).await
    }

    pub async fn create(&self, spec: &DeploymentSpec) -> Result<DeploymentView, CliError> {
        self.send(self.http.post(self.url("/api/deployments")).json(spec)).await
    }

    pub async fn execute(&self, id: &str) -> Result<DeploymentView, CliError> {
        self.send(self.http.post(self.url(&format!("/api/deployments/{id}/execute")))).await
    }

    /// POSTs one of the deployment actions: rollback, pause, resume, promote, abort.
    pub async fn action(&self, id: &str, action: &str) -> Result<DeploymentView, CliError> {
        self.send(self.http.post(self.url(&format!("/api/deployments/{id}/{action}")))).await
    }

    pub async fn select_winner(&self, id: &str, variant: &str) -> Result<DeploymentView, CliError> {
        let body = serde_json::json!({ "variant": variant });
        self.send(self.http.post(self.url(&format!("/api/deployments/{id}/select-winner"))).json(&body)).await
    }

    pub async fn metrics(&self, id: &str, variant: Option<&str>) -> Result<MetricsView, CliError> {
        let query: Vec<(&str, &str)> = variant.map(|v| ("variant", v)).into_iter().collect();
        self.send(self.http.get(self.url_with(&format!("/api/deployments/{id}/metrics"), &query)?)).await
    }

    pub async fn diagnose(&self, id: &str, verbose: bool) -> Result<Diagnosis, CliError> {
        self.send(self.http.get(self.url(&format!("/api/deployments/{id}/diagnose?verbose={verbose}")))).await
    }

    /// The deployment's server-sent event stream, as raw chunks.
    pub async fn stream(&self, id: &str) -> Result<reqwest::Response, CliError> {
        let request = self.authorized(self.http.get(self.url(&format!("/api/deployments/{id}/events/stream"))));
        let response = request
            .send()
            .await
            .map_err(|e| CliError::Unreachable(format!("cannot reach the hivemind server at {} ({e})", self.base)))?;
        if !response.status().is_success() {
            return Err(CliError::Other(anyhow::anyhow!("the event stream answered {}", response.status())));
        }
        Ok(response)
    }

    pub async fn deployment(&self, id: &str) -> Result<DeploymentView, CliError> {
        self.send(self.http.get(self.url(&format!("/api/deployments/{id}")))).await
    }

    pub async fn status(&self, id: &str) -> Result<StatusView, CliError> {
        self.send(self.http.get(self.url(&format!("/api/deployments/{id}/status")))).await
    }

    pub async fn events(&self, id: &str, after: i64) -> Result<Vec<Event>, CliError> {
        self.send(self.http.get(self.url(&format!("/api/deployments/{id}/events?after={after}")))).await
    }

    pub async fn deployments(
        &self,
        app: Option<&str>,
        status: Option<&str>,
        strategy: Option<&str>,
        limit: u32,
        offset: u32,
    ) -> Result<Vec<DeploymentView>, CliError> {
        let (limit, offset) = (limit.to_string(), offset.to_string());
        let mut query = vec![("limit", limit.as_str()), ("offset", offset.as_str())];
        for (key, value) in [("app", app), ("status", status), ("strategy", strategy)] {
            query.extend(value.map(|v| (key, v)));
        }
        self.send(self.http.get(self.url_with("/api/deployments", &query)?)).await
    }

    pub async fn remove_app(&self, name: &str, force: bool) -> Result<(), CliError> {
        self.send_raw(self.http.delete(self.url(&format!("/api/apps/{name}?force={force}")))).await.map(|_| ())
    }

    pub async fn pipelines(&self) -> Result<Vec<PipelineView>, CliError> {
        self.send(self.http.get(self.url("/api/pipelines"))).await
    }

    pub async fn put_pipeline(&self, name: &str, spec: &DeploymentSpec) -> Result<PipelineView, CliError> {
        self.send(self.http.put(self.url(&format!("/api/pipelines/{name}"))).json(spec)).await
    }

    pub async fn preview_key(&self, app: &str) -> Result<crate::api_types::PreviewKey, CliError> {
        self.send(self.http.get(self.url(&format!("/api/apps/{app}/preview-key")))).await
    }

    pub async fn rotate_token(&self) -> Result<String, CliError> {
        let rotated: Rotated = self.send(self.http.post(self.url("/api/token/rotate"))).await?;
        Ok(rotated.token)
    }

    pub async fn add_cert(&self, host: &str, cert_pem: &str, key_pem: &str) -> Result<CertInfo, CliError> {
        let body = CertBody { host: host.to_string(), cert_pem: cert_pem.to_string(), key_pem: key_pem.to_string() };
        self.send(self.http.post(self.url("/api/certs")).json(&body)).await
    }

    pub async fn certs(&self) -> Result<Vec<CertInfo>, CliError> {
        self.send(self.http.get(self.url("/api/certs"))).await
    }

    pub async fn remove_cert(&self, host: &str) -> Result<(), CliError> {
        self.send_raw(self.http.delete(self.url(&format!("/api/certs/{host}")))).await.map(|_| ())
    }

    pub async fn registry_login(
        &self,
        registry: &str,
        username: &str,
        password: &str,
    ) -> Result<crate::api_types::RegistryView, CliError> {
        let body = crate::api_types::LoginBody { username: username.to_string(), password: password.to_string() };
        let path = format!("/api/registries/{}", registry_path(registry)?);
        self.send(self.http.put(self.url(&path)).json(&body)).await
    }

    pub async fn registry_logout(&self, registry: &str) -> Result<(), CliError> {
        let path = format!("/api/registries/{}", registry_path(registry)?);
        self.send_raw(self.http.delete(self.url(&path))).await.map(|_| ())
    }

    pub async fn registries(&self) -> Result<Vec<crate::api_types::RegistryView>, CliError> {
        self.send(self.http.get(self.url("/api/registries"))).await
    }

    pub async fn cluster(&self) -> Result<crate::api_types::ClusterView, CliError> {
        self.send(self.http.get(self.url("/api/cluster"))).await
    }

    pub async fn apps(&self) -> Result<Vec<AppView>, CliError> {
        self.send(self.http.get(self.url("/api/apps"))).await
    }

    pub async fn scale_app(&self, name: &str, replicas: u32) -> Result<AppView, CliError> {
        let body = ScaleBody { replicas };
        self.send(self.http.post(self.url(&format!("/api/apps/{name}/scale"))).json(&body)).await
    }

    pub async fn app_events(&self, name: &str) -> Result<Vec<AppEvent>, CliError> {
        self.send(self.http.get(self.url(&format!("/api/apps/{name}/events")))).await
    }

    pub async fn app(&self, name: &str) -> Result<AppView, CliError> {
        self.send(self.http.get(self.url(&format!("/api/apps/{name}")))).await
    }

    pub async fn install_plugin(
        &self,
        bytes: Vec<u8>,
        signature: Option<&str>,
        replace: bool,
        source: &str,
        allow: &hivemind_model::grants::Grants,
    ) -> Result<PluginView, CliError> {
        let replace = replace.to_string();
        let allow = allow.to_list();
        let mut query = vec![("replace", replace.as_str()), ("source", source)];
        query.extend(signature.map(|s| ("signature", s)));
        query.extend((!allow.is_empty()).then_some(("allow", allow.as_str())));
        let url = self.url_with("/api/plugins", &query)?;
        self.send(self.http.post(url).header("content-type", "application/wasm").body(bytes)).await
    }

    pub async fn inspect_plugin(&self, name: &str) -> Result<PluginDetails, CliError> {
        self.send(self.http.get(self.url(&format!("/api/plugins/{name}")))).await
    }

    pub async fn remove_plugin(&self, name: &str) -> Result<(), CliError> {
        self.send_raw(self.http.delete(self.url(&format!("/api/plugins/{name}")))).await.map(|_| ())
    }

    pub async fn plugin_action(&self, name: &str, action: &str) -> Result<PluginView, CliError> {
        self.send(self.http.post(self.url(&format!("/api/plugins/{name}/{action}")))).await
    }

    pub async fn plugins(&self) -> Result<Vec<PluginView>, CliError> {
        self.send(self.http.get(self.url("/api/plugins"))).await
    }
}

/// A registry as the API's path names it (`https://GHCR.io/` is `ghcr.io`).
fn registry_path(registry: &str) -> Result<String, CliError> {
    hivemind_registry::normalize_registry(registry).ok_or_else(|| {
        CliError::Usage(format!(
            "`{registry}` is not a registry host; write it as images name it, such as registry.example.com or 127.0.0.1:5000"
        ))
    })
}
