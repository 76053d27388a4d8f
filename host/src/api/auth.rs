//! Bearer-token auth. The server makes a token at first start and keeps it in
//! DATA_DIR/token (mode 0600); every route but /healthz needs it. `hivemind token rotate`
//! replaces it.

use super::{Api, ApiError};
use crate::api_types::Rotated;
use crate::error::{ErrorCode, UserError};
use axum::Json;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

pub struct Token {
    value: RwLock<String>,
    path: PathBuf,
}

impl Token {
    /// Reads DATA_DIR/token, or makes one there.
    pub fn load_or_create(data_dir: &Path) -> anyhow::Result<Token> {
        let path = data_dir.join("token");
        let value = match std::fs::read_to_string(&path) {
            Ok(v) if !v.trim().is_empty() => v.trim().to_string(),
            _ => {
                let fresh = generate()?;
                write_private(&path, &fresh)?;
                fresh
            }
        };
        Ok(Token { value: RwLock::new(value), path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn matches(&self, presented: &str) -> bool {
        let expected = self.value.read().unwrap();
        // Compare in constant time: a timing difference must not leak the token.
        expected.len() == presented.len()
            && expected.bytes().zip(presented.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }

    fn rotate(&self) -> anyhow::Result<String> {
        let fresh = generate()?;
        write_private(&self.path, &fresh)?;
        *self.value.write().unwrap() = fresh.clone();
        Ok(fresh)
    }
}

/// 256 bits from the operating system's generator. A token is never made of anything
/// weaker: if the generator fails, there is no token, and the error says so.
fn generate() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("the system's random generator failed: {e}"))?;
    Ok(format!("hm_{}", crate::plugins::hex(&bytes)))
}

fn write_private(path: &Path, value: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new().create(true).write(true).truncate(true).mode(0o600).open(&tmp)?;
    f.write_all(value.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Lets a request through when it carries the token; /healthz and the dashboard's files
/// (which hold no data) need none.
pub async fn require_token(State(api): State<Api>, request: Request, next: Next) -> Result<Response, ApiError> {
    let path = request.uri().path();
    if path != "/healthz" && !super::dashboard::is_asset(path) {
        authorize(&api.token, request.headers())?;
    }
    Ok(next.run(request).await)
}

/// Whether the request's headers carry the token.
pub fn authorize(token: &Token, headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
    let presented = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(presented) if token.matches(presented) => Ok(()),
        // Not the token file's path: an unauthenticated client learns nothing of the host.
        _ => Err(ApiError(UserError::new(
            ErrorCode::Unauthorized,
            "this API needs the server's bearer token (the file `token` in its data dir); \
             set HIVEMIND_TOKEN (or `token` in the CLI's config file)",
        ))),
    }
}

/// Replaces the token; the old one stops working at once.
pub async fn rotate(State(api): State<Api>) -> Result<Json<Rotated>, ApiError> {
    let token = api.token.rotate().map_err(UserError::internal)?;
    Ok(Json(Rotated { token }))
}
