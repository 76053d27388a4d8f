//! The plugin catalog: loading the plugins installed before a restart, installing,
//! enabling, disabling and removing them. The registry (`plugins`) holds them; the store
//! remembers which were installed and which are off.

mod watch;

use super::Ground;
use crate::error::{ErrorCode, Field, UserError};
use crate::model::Origin;
use crate::plugins::{LoadedPlugin, PluginHost};
use anyhow::Result;
use hivemind_model::grants::Grants;
use std::sync::Arc;

/// The engine's plugin catalog: what is installed, loaded, enabled.
pub struct Catalog {
    pub(super) ground: Arc<Ground>,
}

impl Catalog {
    /// The plugins loaded now.
    pub fn plugins(&self) -> &Arc<PluginHost> {
        &self.ground.plugins
    }

    /// Loads the plugins installed before a restart, from `plugins_dir`, and switches off
    /// those that were disabled.
    pub async fn load_installed_plugins(&self, plugins_dir: &std::path::Path) -> Result<()> {
        let disabled = self.ground.store.disabled_plugins().await?;
        let result = self.load_installed(plugins_dir).await;
        for name in disabled {
            if let Some(p) = self.ground.plugins.get(&name) {
                p.disabled.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
        result
    }

    async fn load_installed(&self, plugins_dir: &std::path::Path) -> Result<()> {
        for (sha, source, grants) in self.ground.store.installed_plugins().await? {
            let path = plugins_dir.join(format!("{sha}.wasm"));
            match std::fs::read(&path) {
                Ok(bytes) => {
                    // It was accepted when installed, --replace included; its signature is
                    // checked again, against the trust policy this server runs with now.
                    let signature = std::fs::read_to_string(crate::plugins::trust::signature_path(&path)).ok();
                    match self.ground.plugins.load(bytes, signature, Origin::Installed, true, source).await {
                        Ok(plugin) => plugin.set_grants(Grants::parse_list(&grants).unwrap_or_else(|why| {
                            tracing::error!(
                                "installed plugin {}: its recorded grants do not read ({why}); it has none",
                                path.display()
                            );
                            Grants::default()
                        })),
                        Err(e) => tracing::error!("installed plugin {} does not load: {e:#}", path.display()),
                    }
                }
                Err(e) => tracing::error!("installed plugin {} is missing: {e}", path.display()),
            }
        }
        Ok(())
    }

    /// Unloads an installed plugin and forgets its bytes. Refused while a deployment that
    /// runs uses it, naming the deployment.
    pub async fn remove_plugin(&self, name: &str, plugins_dir: &std::path::Path) -> Result<(), UserError> {
        let _decisions = self.ground.decisions.lock().await;
        let plugin = self.ground.plugins.get(name).ok_or_else(|| {
            UserError::not_found(
                ErrorCode::PluginNotFound,
                format!("no plugin named `{name}`; `hivemind plugin list` shows them"),
            )
        })?;
        let users: Vec<crate::model::DeploymentId> = self
            .ground
            .store
            .active_deployments()
            .await?
            .into_iter()
            .filter(|d| {
                d.plugin.sha256 == plugin.info.sha256
                    || d.hook_runs.pinned.values().any(|h| h.sha256 == plugin.info.sha256)
            })
            .map(|d| d.id)
            .collect();
        if !users.is_empty() {
            return Err(UserError::conflict(
                ErrorCode::PluginInUse,
                format!(
                    "plugin {name} {} is used by deployment {} under way; wait for it to end",
                    plugin.info.version,
                    users.join(", ")
                ),
            ));
        }
        let removed = self
            .ground
            .plugins
            .remove(name)
            .map_err(|e| UserError::conflict(ErrorCode::CannotRemovePlugin, format!("{e:#}")))?;
        let path = plugins_dir.join(format!("{}.wasm", removed.info.sha256));
        let _ = std::fs::remove_file(crate::plugins::trust::signature_path(&path));
        let _ = std::fs::remove_file(path);
        self.ground.store.delete_plugin(&removed.info.sha256).await?;
        Ok(())
    }

    /// Switches a plugin on or off for new deployments (a running one keeps its plugin).
    pub async fn set_plugin_enabled(&self, name: &str, enabled: bool) -> Result<Arc<LoadedPlugin>, UserError> {
        let plugin = self.ground.plugins.get(name).ok_or_else(|| {
            UserError::not_found(
                ErrorCode::PluginNotFound,
                format!("no plugin named `{name}`; `hivemind plugin list` shows them"),
            )
        })?;
        self.ground.store.set_plugin_disabled(name, !enabled).await?;
        plugin.disabled.store(!enabled, std::sync::atomic::Ordering::Relaxed);
        Ok(plugin)
    }

    /// Loads a plugin component (checking its signature, the text of its `.minisig`,
    /// against the trust policy) and keeps its bytes and signature so a restart loads it
    /// again.
    pub async fn install_plugin(
        &self,
        bytes: Vec<u8>,
        signature: Option<String>,
        plugins_dir: &std::path::Path,
        replace: bool,
        source: String,
        grants: Grants,
    ) -> Result<Arc<LoadedPlugin>, UserError> {
        let plugin = self
            .ground
            .plugins
            .load(bytes.clone(), signature, Origin::Installed, replace, source.clone())
            .await
            .map_err(|e| UserError::invalid(Field::Plugin, format!("{e:#}")))?;
        std::fs::create_dir_all(plugins_dir).map_err(|e| UserError::internal(e.into()))?;
        let path = plugins_dir.join(format!("{}.wasm", plugin.info.sha256));
        // The signature first: the plugins dir's watcher loads the component when it sees it.
        if let Some(signature) = plugin.signature() {
            std::fs::write(crate::plugins::trust::signature_path(&path), signature.text)
                .map_err(|e| UserError::internal(e.into()))?;
        }
        std::fs::write(&path, &bytes).map_err(|e| UserError::internal(e.into()))?;
        // What the installer allowed, and nothing else: the latest install of the same
        // bytes says what they may do from now on.
        self.ground
            .store
            .insert_plugin(&plugin.info.sha256, &plugin.info.name, &plugin.info.version, &source, &grants.to_list())
            .await?;
        plugin.set_grants(grants);
        Ok(plugin)
    }
}
