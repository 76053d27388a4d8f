//! The plugin registry: every loaded component by name and by sha256, loading (compile
//! off the executor, type-check against its world, ask it who it is, then swap it in),
//! and what makes a component fit or not, each misfit with its own message.

use super::bindings::hook::HookPre;
use super::bindings::strategy::StrategyPre;
use super::sandbox::{HostState, Limits, describe_trap};
use super::trust::{Signature, TrustPolicy};
use super::{bounds, builtin, contract, validate_name};
use crate::model::{Kind, Origin, PluginRef};
use anyhow::{Context, Result, anyhow, bail};
use hivemind_model::grants::Grants;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use wasmtime::Engine;
use wasmtime::component::{Component, Linker};

/// A component of either world, instantiable.
pub(super) enum Pre {
    Strategy(StrategyPre<HostState>),
    Hook(HookPre<HostState>),
}

/// A strategy or hook component, compiled, type-checked and ready to instantiate.
pub struct LoadedPlugin {
    pub info: PluginRef,
    pub description: String,
    pub origin: Origin,
    /// Where it came from, for people: "built in", a file, an OCI reference.
    pub source: String,
    pub size: usize,
    /// The plugin API version it was built against, from its imports (`0.1.0`).
    pub api_version: String,
    pub imports: Vec<String>,
    pub exports: Vec<String>,
    /// Who signed it (None: unsigned, or built in), with the signature's text, kept so
    /// that a restart checks it again under the policy of the day. Installing the same
    /// bytes with a signature later signs the loaded plugin in place.
    signature: RwLock<Option<Signature>>,
    /// Switched off with `plugin disable`: no new deployment may use it.
    pub disabled: std::sync::atomic::AtomicBool,
    /// The powers it was granted at install (`jobs`, `http`); a built-in's come with it.
    grants: RwLock<Grants>,
    pub(super) pre: Pre,
}

impl LoadedPlugin {
    pub fn signature(&self) -> Option<Signature> {
        self.signature.read().unwrap().clone()
    }

    pub fn grants(&self) -> Grants {
        self.grants.read().unwrap().clone()
    }

    pub fn set_grants(&self, grants: Grants) {
        *self.grants.write().unwrap() = grants;
    }

    /// The grantable capabilities its world imports: what it may ask for.
    pub fn asks_for(&self) -> Vec<String> {
        ["jobs", "http"]
            .into_iter()
            .filter(|c| self.imports.iter().any(|i| i.starts_with(&format!("hivemind:plugin/{c}@"))))
            .map(str::to_string)
            .collect()
    }

    pub fn kind(&self) -> Kind {
        match self.pre {
            Pre::Strategy(_) => Kind::Strategy,
            Pre::Hook(_) => Kind::Hook,
        }
    }
}

pub struct PluginHost {
    pub(super) engine: Engine,
    /// A strategy may import only the strategy world's capabilities, a hook only the
    /// hook world's: each world has its own linker.
    linker: Linker<HostState>,
    hook_linker: Linker<HostState>,
    pub(super) limits: Limits,
    /// Whose components may be loaded (built-ins always are).
    trust: TrustPolicy,
    /// Current plugin per name.
    by_name: RwLock<HashMap<String, Arc<LoadedPlugin>>>,
    /// Every plugin loaded, by sha256: deployments are pinned to these.
    by_sha: RwLock<HashMap<String, Arc<LoadedPlugin>>>,
    /// Components that failed to load, for /metrics.
    load_errors: std::sync::atomic::AtomicU64,
    /// Where compiled components are kept, so that a restart does not recompile them.
    cache_dir: Option<std::path::PathBuf>,
    /// The engine's compatibility hash: a cached artifact is valid only for the same
    /// wasmtime build and configuration.
    compatibility: String,
    /// Loads served from the cache, for the server's start-up line.
    cache_hits: std::sync::atomic::AtomicU64,
}

impl PluginHost {
    /// Builds the engine and linker and loads the built-in strategies.
    /// `cache_dir` keeps compiled components between restarts (None: compile every time).
    pub async fn new(
        limits: Limits,
        trust: TrustPolicy,
        cache_dir: Option<std::path::PathBuf>,
    ) -> Result<Arc<PluginHost>> {
        let engine = super::sandbox::engine(&limits)?;
        let (linker, hook_linker) = super::sandbox::linkers(&engine)?;

        let compatibility = {
            use std::hash::{Hash, Hasher};
            // DefaultHasher::new() has fixed keys: the same on every run.
            let mut h = std::collections::hash_map::DefaultHasher::new();
            engine.precompile_compatibility_hash().hash(&mut h);
            format!("{:016x}", h.finish())
        };
        let host = Arc::new(PluginHost {
            engine,
            linker,
            hook_linker,
            limits,
            trust,
            by_name: Default::default(),
            by_sha: Default::default(),
            load_errors: Default::default(),
            cache_dir,
            compatibility,
            cache_hits: Default::default(),
        });
        for (crate_name, bytes) in builtin::BUILTIN {
            let plugin = host
                .load(bytes.to_vec(), None, Origin::Builtin, false, "built in".into())
                .await
                .with_context(|| format!("loading the built-in plugin {crate_name}"))?;
            plugin.set_grants(builtin::grants(&plugin.info.name));
        }
        Ok(host)
    }

    /// How many loads came from the compiled-code cache since the server started.
    pub fn cache_hits(&self) -> u64 {
        self.cache_hits.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many components failed to load since the server started.
    pub fn load_errors(&self) -> u64 {
        self.load_errors.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The policy components are loaded under.
    pub fn trust(&self) -> &TrustPolicy {
        &self.trust
    }

    /// Checks a component's signature (the text of its `.minisig`) against the trust
    /// policy, then compiles, type-checks and registers it. A component that does not fit
    /// changes nothing. An installed plugin may take a built-in's name only with
    /// `replace`; the built-in stays loaded for the deployments pinned to it.
    pub async fn load(
        &self,
        bytes: Vec<u8>,
        signature: Option<String>,
        origin: Origin,
        replace: bool,
        source: String,
    ) -> Result<Arc<LoadedPlugin>> {
        let result = self.load_checked(bytes, signature, origin, replace, source).await;
        if result.is_err() {
            self.load_errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        result
    }

    async fn load_checked(
        &self,
        bytes: Vec<u8>,
        signature: Option<String>,
        origin: Origin,
        replace: bool,
        source: String,
    ) -> Result<Arc<LoadedPlugin>> {
        // Built-ins are part of the binary the operator runs; everything else is checked,
        // even bytes loaded already, so that a bad signature is never taken in silence.
        let signer = match origin {
            Origin::Builtin => None,
            Origin::Installed => self.trust.check(&bytes, signature.as_deref())?,
        };
        let signature = signer.map(|signer| Signature { signer, text: signature.unwrap_or_default() });
        let sha256 = hex(&Sha256::digest(&bytes));
        // The same bytes again are the plugin already loaded; a signature they now come
        // with (installed unsigned, then signed) is recorded on it, nothing else changes.
        let loaded = self.by_sha.read().unwrap().get(&sha256).cloned();
        if let Some(loaded) = loaded {
            if let Some(signature) = signature.filter(|_| loaded.origin == Origin::Installed) {
                *loaded.signature.write().unwrap() = Some(signature);
            }
            return Ok(loaded);
        }
        check_is_component(&bytes)?;
        let size = bytes.len();
        let engine = self.engine.clone();
        let linker = self.linker.clone();
        let hook_linker = self.hook_linker.clone();
        // Compiling takes milliseconds to seconds of CPU: keep it off the executor.
        let cached = self.cache_dir.as_ref().map(|dir| dir.join(format!("{sha256}-{}.cwasm", self.compatibility)));
        let (pre, api_version, from_cache) = tokio::task::spawn_blocking(move || -> Result<(Pre, String, bool)> {
            let (component, from_cache) = compile_or_load(&engine, &bytes, cached.as_deref())?;
            let (pre, api_version) = type_check(&linker, &hook_linker, &component)?;
            Ok((pre, api_version, from_cache))
        })
        .await??;
        if from_cache {
            self.cache_hits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }

        let mut store = self.new_store(None, None);
        let info = tokio::time::timeout(self.limits.timeout, async {
            match &pre {
                Pre::Strategy(pre) => pre.instantiate_async(&mut store).await?.call_info(&mut store).await,
                Pre::Hook(pre) => pre.instantiate_async(&mut store).await?.call_info(&mut store).await,
            }
        })
        .await
        .map_err(|_| anyhow!("the plugin's info() did not return within {:?}", self.limits.timeout))?
        .map_err(|e| anyhow!("the plugin's info() failed: {}", describe_trap(&e, &store.data().stderr)))?;
        validate_name(&info.name)?;
        validate_version(&info.version)?;
        let description = bounds::bounded(info.description, bounds::DESCRIPTION_BYTES);

        let component = match &pre {
            Pre::Strategy(pre) => pre.instance_pre().component(),
            Pre::Hook(pre) => pre.instance_pre().component(),
        };
        let component_type = component.component_type();
        let imports: Vec<String> = component_type.imports(&self.engine).map(|(name, _)| name.to_string()).collect();
        let exports: Vec<String> = component_type.exports(&self.engine).map(|(name, _)| name.to_string()).collect();
        let plugin = Arc::new(LoadedPlugin {
            info: PluginRef { name: info.name.clone(), version: info.version, sha256: sha256.clone() },
            description,
            origin,
            source,
            size,
            api_version,
            imports,
            exports,
            signature: RwLock::new(signature),
            disabled: Default::default(),
            grants: Default::default(),
            pre,
        });
        let mut by_name = self.by_name.write().unwrap();
        if origin == Origin::Installed
            && !replace
            && by_name.get(&info.name).is_some_and(|p| p.origin == Origin::Builtin)
        {
            bail!(
                "`{}` is the name of a built-in plugin; give yours another name, or install it with --replace to use it instead of the built-in for new deployments",
                info.name
            );
        }
        by_name.insert(info.name, plugin.clone());
        self.by_sha.write().unwrap().insert(sha256, plugin.clone());
        Ok(plugin)
    }

    /// The current plugin called `name`.
    pub fn get(&self, name: &str) -> Option<Arc<LoadedPlugin>> {
        self.by_name.read().unwrap().get(name).cloned()
    }

    /// The exact plugin a deployment is pinned to.
    pub fn pinned(&self, sha256: &str) -> Option<Arc<LoadedPlugin>> {
        self.by_sha.read().unwrap().get(sha256).cloned()
    }

    /// Unloads an installed plugin by name. Deployments pinned to it must be over.
    pub fn remove(&self, name: &str) -> Result<Arc<LoadedPlugin>> {
        let mut by_name = self.by_name.write().unwrap();
        match by_name.get(name) {
            None => bail!("no plugin named `{name}`; `hivemind plugin list` shows them"),
            Some(p) if p.origin == Origin::Builtin => {
                bail!("`{name}` is built in and cannot be removed; `hivemind plugin disable {name}` switches it off")
            }
            Some(_) => {}
        }
        let plugin = by_name.remove(name).unwrap();
        let mut by_sha = self.by_sha.write().unwrap();
        by_sha.remove(&plugin.info.sha256);
        // A plugin installed with --replace gives the name back to the built-in.
        if let Some(builtin) = by_sha.values().find(|p| p.origin == Origin::Builtin && p.info.name == name) {
            by_name.insert(name.to_string(), builtin.clone());
        }
        Ok(plugin)
    }

    pub fn list(&self) -> Vec<Arc<LoadedPlugin>> {
        let mut all: Vec<_> = self.by_name.read().unwrap().values().cloned().collect();
        all.sort_by(|a, b| a.info.name.cmp(&b.info.name));
        all
    }

    /// The current plugin called `name` if it is a `kind` that new deployments may use;
    /// otherwise what is wrong, with the names to pick from or the command that fixes it.
    pub fn usable(&self, name: &str, kind: Kind) -> std::result::Result<Arc<LoadedPlugin>, String> {
        let Some(plugin) = self.get(name).filter(|p| p.kind() == kind) else {
            let names: Vec<String> =
                self.list().iter().filter(|p| p.kind() == kind).map(|p| p.info.name.clone()).collect();
            return Err(format!("unknown {} `{name}`; available: {}", kind.noun(), names.join(", ")));
        };
        if plugin.disabled.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(format!(
                "{} `{name}` is disabled; `hivemind plugin enable {name}` switches it back on",
                kind.noun()
            ));
        }
        Ok(plugin)
    }
}

/// Checks a component against the world it means to implement (a hook exports `run`, a
/// strategy `step`), with an error of its own for each way it can fail to fit. Returns it
/// ready to instantiate, with the plugin API version its imports name ("none" if none).
fn type_check(
    linker: &Linker<HostState>,
    hook_linker: &Linker<HostState>,
    component: &Component,
) -> Result<(Pre, String)> {
    let engine = component.engine();
    let ty = component.component_type();
    let exports: Vec<String> = ty.exports(engine).map(|(name, _)| name.to_string()).collect();
    let kind = if exports.iter().any(|e| e == "step") {
        Kind::Strategy
    } else if exports.iter().any(|e| e == "run") {
        Kind::Hook
    } else {
        bail!(
            "the component is not a Hivemind plugin: it exports {} but a strategy ({}) exports `info`, `validate` and `step`, and a hook ({}) exports `info` and `run`; build it with hivemind-sdk's export_strategy! or export_hook!",
            if exports.is_empty() { "nothing".to_string() } else { format!("`{}`", exports.join("`, `")) },
            Kind::Strategy.world(),
            Kind::Hook.world()
        );
    };
    let mut api_version = "none".to_string();
    for (import, _) in ty.imports(engine) {
        let Some((_, version)) = import.strip_prefix("hivemind:plugin/").and_then(|rest| rest.split_once('@')) else {
            continue;
        };
        // Only the versions this host lists (`contract::API_VERSIONS`), each a folder wit/vX.Y.Z.
        if !contract::supported(version) {
            bail!("{}", contract::unsupported(version, import));
        }
        api_version = version.to_string();
    }
    let world_linker = if kind == Kind::Strategy { linker } else { hook_linker };
    let pre = world_linker.instantiate_pre(component).map_err(|e| {
        anyhow!(
            "the component imports something the host does not grant to a {}: {e:#}; a {} may import only its world's hivemind:plugin capabilities and WASI basics",
            kind.world(),
            kind.noun()
        )
    })?;
    let pre = match kind {
        Kind::Strategy => Pre::Strategy(
            StrategyPre::new(pre)
                .map_err(|e| anyhow!("the component is not a {}@0.1 component: {e:#}", kind.world()))?,
        ),
        Kind::Hook => Pre::Hook(
            HookPre::new(pre).map_err(|e| anyhow!("the component is not a {}@0.1 component: {e:#}", kind.world()))?,
        ),
    };
    Ok((pre, api_version))
}

/// Compiles a component, or loads what an earlier compile of the same bytes on the same
/// engine left in the cache. Returns whether it came from the cache.
///
/// Not wasmtime's own `Config::cache`: it hashes the component's bytes and decompresses
/// what it stored on every load, and loading the 8 built-ins warm took 7.8 ms with it
/// against 1.1 ms here, where the artifact, named by the component's sha256 (which the
/// registry computes anyway), is mapped back as it was written (`cargo bench --bench
/// plugin_step` prints both).
fn compile_or_load(engine: &Engine, bytes: &[u8], cached: Option<&std::path::Path>) -> Result<(Component, bool)> {
    if let Some(path) = cached.filter(|p| p.exists()) {
        // SAFETY: deserializing trusts the file to be a wasmtime artifact. The cache holds
        // only files this host wrote (below), named by the sha256 of the component's bytes
        // and the engine's compatibility hash, so an artifact is never loaded by an engine
        // that did not make it; wasmtime checks the header again.
        match unsafe { Component::deserialize_file(engine, path) } {
            Ok(component) => return Ok((component, true)),
            Err(e) => {
                tracing::warn!("the cached component {} does not load ({e:#}); compiling it again", path.display())
            }
        }
    }
    let component = Component::new(engine, bytes).map_err(|e| anyhow!("the component does not compile: {e:#}"))?;
    if let Some(path) = cached {
        let written = component.serialize().map_err(anyhow::Error::from).and_then(|artifact| {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            // A name of its own: servers that share a data dir (or its cache) may compile
            // the same component at once, and each renames a whole file into place.
            static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let tmp = path.with_extension(format!("tmp.{}.{n}", std::process::id()));
            std::fs::write(&tmp, artifact)?;
            std::fs::rename(&tmp, path)?;
            Ok(())
        });
        if let Err(e) = written {
            tracing::warn!("could not cache the compiled component at {}: {e:#}", path.display());
        }
    }
    Ok((component, false))
}

/// A component starts with the wasm magic and the component layer; a core module does not.
fn check_is_component(bytes: &[u8]) -> Result<()> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        bail!(
            "the file is not WebAssembly (it does not start with the \\0asm magic); build your plugin with `cargo build --target wasm32-wasip2 --release`"
        );
    }
    if bytes[6..8] != [1, 0] {
        bail!(
            "the file is a core WebAssembly module, not a component; build it for the wasm32-wasip2 target, which produces components"
        );
    }
    Ok(())
}

fn validate_version(version: &str) -> Result<()> {
    if version.is_empty()
        || version.len() > bounds::VERSION_BYTES
        || version.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        bail!(
            "plugin version `{}` is not valid: use 1 to {} characters without spaces, such as 1.2.0",
            bounds::bounded(version.to_string(), bounds::VERSION_BYTES),
            bounds::VERSION_BYTES
        );
    }
    Ok(())
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A component shaped like a strategy (it exports `step`, nothing else) importing `import`.
    fn strategy_importing(engine: &Engine, import: &str) -> Component {
        let wat = format!(
            r#"(component
                (import "{import}" (instance))
                (core module $m (func (export "f")))
                (core instance $i (instantiate $m))
                (func $f (canon lift (core func $i "f")))
                (export "step" (func $f)))"#
        );
        Component::new(engine, wat::parse_str(&wat).unwrap()).unwrap()
    }

    #[test]
    fn a_component_of_a_version_the_host_does_not_list_is_refused_before_it_is_linked() {
        let engine = super::super::sandbox::engine(&Limits::default()).unwrap();
        let (linker, hook_linker) = super::super::sandbox::linkers(&engine).unwrap();
        for version in ["0.1.7", "0.2.0"] {
            let import = format!("hivemind:plugin/containers@{version}");
            let Err(e) = type_check(&linker, &hook_linker, &strategy_importing(&engine, &import)) else {
                panic!("a component built for plugin API {version} was accepted");
            };
            let e = format!("{e:#}");
            assert!(e.contains(&format!("built for plugin API {version} (it imports `{import}`)")), "{e}");
            assert!(e.contains("this host supports plugin API 0.1.0, 0.1.1"), "{e}");
        }
        // A listed version passes the check; this component then fails on its shape.
        for version in contract::API_VERSIONS {
            let import = format!("hivemind:plugin/containers@{version}");
            let Err(e) = type_check(&linker, &hook_linker, &strategy_importing(&engine, &import)) else {
                panic!("a component that exports only `step` was accepted");
            };
            let e = format!("{e:#}");
            assert!(!e.contains("built for plugin API"), "{version}: {e}");
        }
    }
}
