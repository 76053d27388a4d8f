//! Registry credentials for image pulls: those given with `hivemind registry login`
//! (in the store, so every server of a cluster has them), then those of `[registries]`
//! in `server.toml`, then Docker's own (`config.json` and its credential helpers, of the
//! server's user). The drivers ask this keychain; answers never hold a password.

use crate::error::{Field, UserError};
use crate::model::RegistryLogin;
use crate::runtime::Keychain;
use crate::store::Store;
use async_trait::async_trait;
use hivemind_registry::Credentials;
use std::collections::BTreeMap;

/// Where pulls find credentials, in the order they are looked for.
pub struct Registries {
    store: Store,
    /// `[registries."HOST"]` of `server.toml`.
    configured: BTreeMap<String, Credentials>,
}

impl Registries {
    pub fn new(store: Store, configured: BTreeMap<String, Credentials>) -> Registries {
        Registries { store, configured }
    }

    /// `hivemind registry login`: keeps the credentials for `registry` (a host, with its
    /// port if not 443).
    pub async fn login(&self, registry: &str, username: &str, password: &str) -> Result<RegistryLogin, UserError> {
        let registry = check_registry(registry)?;
        if username.is_empty() || password.is_empty() {
            return Err(UserError::invalid(
                Field::Registry,
                "registry login needs a user name and a password (--username USER --password-stdin)",
            ));
        }
        self.store.set_registry_login(&registry, username, password).await?;
        Ok(RegistryLogin { registry, username: username.to_string(), updated_at_ms: crate::model::now_ms() })
    }

    /// `hivemind registry logout`: whether there was a login to forget.
    pub async fn logout(&self, registry: &str) -> Result<bool, UserError> {
        Ok(self.store.remove_registry_login(&check_registry(registry)?).await?)
    }

    /// The stored logins, and the registries `server.toml` gives credentials for.
    pub async fn list(&self) -> Result<Vec<(RegistryLogin, &'static str)>, UserError> {
        let mut all: Vec<(RegistryLogin, &'static str)> =
            self.store.registry_logins().await?.into_iter().map(|l| (l, "registry login")).collect();
        for (registry, c) in &self.configured {
            let login = RegistryLogin { registry: registry.clone(), username: c.username.clone(), updated_at_ms: 0 };
            all.push((login, "server.toml"));
        }
        Ok(all)
    }
}

#[async_trait]
impl Keychain for Registries {
    async fn credentials(&self, registry: &str) -> anyhow::Result<Option<(Credentials, String)>> {
        let registry = hivemind_registry::normalize_registry(registry).unwrap_or_else(|| registry.to_string());
        if let Some((username, password)) = self.store.registry_login(&registry).await? {
            return Ok(Some((Credentials { username, password }, "registry login".to_string())));
        }
        if let Some(c) = self.configured.get(&registry) {
            return Ok(Some((c.clone(), "server.toml".to_string())));
        }
        crate::runtime::DockerConfigKeychain.credentials(&registry).await
    }
}

/// A registry as logins name it: a host and perhaps a port, no scheme, no path.
fn check_registry(text: &str) -> Result<String, UserError> {
    hivemind_registry::normalize_registry(text).ok_or_else(|| {
        UserError::invalid(
            Field::Registry,
            format!("`{text}` is not a registry host; write it as images name it, such as registry.example.com or 127.0.0.1:5000"),
        )
    })
}
