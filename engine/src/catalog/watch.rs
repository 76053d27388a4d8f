//! The plugins directory, watched: a component dropped into `DATA_DIR/plugins` is loaded,
//! and one removed from it is unloaded, with no restart. Polling once a second keeps it
//! portable and cheap; a half-copied file fails to load and is tried again once its size
//! or modification time changes. A component's signature is the file beside it,
//! `X.wasm.minisig`, as minisign names it; one that arrives after its component (or
//! changes) makes the component be tried again.

use super::Catalog;
use crate::model::Origin;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How often the directory is scanned.
const SCAN_EVERY: Duration = Duration::from_secs(1);

/// What a scan saw of one file and its signature: enough to tell that either changed.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Seen {
    len: u64,
    modified: Option<SystemTime>,
    signature: Option<(u64, Option<SystemTime>)>,
}

impl Catalog {
    /// Watches `dir` for components being added and removed, in the background.
    pub fn watch_plugins_dir(self: &Arc<Self>, dir: PathBuf) {
        let engine = self.clone();
        tokio::spawn(async move {
            // File → what it looked like, and the sha256 it loaded as (None: it did not load).
            let mut known: HashMap<PathBuf, (Seen, Option<String>)> = HashMap::new();
            loop {
                engine.scan_plugins_dir(&dir, &mut known).await;
                tokio::time::sleep(SCAN_EVERY).await;
            }
        });
    }

    async fn scan_plugins_dir(&self, dir: &Path, known: &mut HashMap<PathBuf, (Seen, Option<String>)>) {
        let mut present = HashMap::new();
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "wasm")
                    && let Ok(meta) = entry.metadata()
                {
                    let signature = std::fs::metadata(crate::plugins::trust::signature_path(&path))
                        .ok()
                        .map(|m| (m.len(), m.modified().ok()));
                    present.insert(path, Seen { len: meta.len(), modified: meta.modified().ok(), signature });
                }
            }
        }
        for (path, seen) in &present {
            if known.get(path).is_some_and(|(before, _)| before == seen) {
                continue;
            }
            let loaded = match std::fs::read(path) {
                Ok(bytes) => match self
                    .ground
                    .plugins
                    .load(
                        bytes,
                        std::fs::read_to_string(crate::plugins::trust::signature_path(path)).ok(),
                        Origin::Installed,
                        false,
                        format!("plugins dir: {}", path.display()),
                    )
                    .await
                {
                    Ok(plugin) => {
                        tracing::info!(
                            "plugins dir: loaded {} {} from {}",
                            plugin.info.name,
                            plugin.info.version,
                            path.display()
                        );
                        Some(plugin.info.sha256.clone())
                    }
                    Err(e) => {
                        tracing::warn!("plugins dir: {} does not load: {e:#}", path.display());
                        None
                    }
                },
                Err(e) => {
                    tracing::warn!("plugins dir: cannot read {}: {e}", path.display());
                    None
                }
            };
            // A retry that fails (a bad signature put beside it, a half-copied update)
            // leaves loaded what was: removing the file still unloads it.
            let loaded = loaded.or_else(|| known.get(path).and_then(|(_, sha)| sha.clone()));
            known.insert(path.clone(), (*seen, loaded));
        }
        let gone: Vec<PathBuf> = known.keys().filter(|p| !present.contains_key(*p)).cloned().collect();
        for path in gone {
            let Some((_, Some(sha))) = known.remove(&path) else { continue };
            // Only the plugin the name points to now is unloaded: an older version of it
            // stays loaded for the deployments pinned to it.
            let Some(plugin) = self.ground.plugins.pinned(&sha) else { continue };
            if self.ground.plugins.get(&plugin.info.name).is_none_or(|current| current.info.sha256 != sha) {
                continue;
            }
            match self.remove_plugin(&plugin.info.name, dir).await {
                Ok(()) => tracing::info!("plugins dir: {} was removed; unloaded {}", path.display(), plugin.info.name),
                Err(e) => tracing::warn!(
                    "plugins dir: {} was removed, but {} stays loaded: {}",
                    path.display(),
                    plugin.info.name,
                    e.message
                ),
            }
        }
    }
}
