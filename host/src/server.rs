//! `hivemind serve`: wires the store, the plugin runtime, the fleet, the router and the
//! engine together, and serves the API.

use crate::api::{self, Api};
use crate::engine::{Engine, EngineOptions};
use crate::plugins::{Limits, PluginHost};
use crate::router::Router;
use crate::router::link::Link;
use crate::runtime::{self, DockerDriver, Driver, Fleet, ProcessDriver};
use crate::store::Store;
use anyhow::{Context, Result, bail};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RuntimeChoice {
    /// Docker when the engine answers, process otherwise.
    Auto,
    Docker,
    Process,
}

/// Where the app routers run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RouterMode {
    /// In `hivemind router`, a process of its own that outlives `serve` (started when
    /// none runs for the data dir).
    Process,
    /// In `hivemind router`, run by a supervisor (the systemd unit in deploy/systemd):
    /// `serve` connects to it and never starts one itself.
    External,
    /// Inside `serve`: its restarts take the routes down with it.
    Embedded,
}

pub struct ServeOptions {
    pub data_dir: PathBuf,
    pub router_mode: RouterMode,
    pub api_addr: SocketAddr,
    /// The HTTP and HTTPS entrypoints, shared by every app by host name, if they are open.
    pub http_addr: Option<SocketAddr>,
    pub https_addr: Option<SocketAddr>,
    /// Where `--tls acme` apps get their certificates.
    pub acme: Option<crate::acme::AcmeConfig>,
    pub runtime: RuntimeChoice,
    /// The address app routers bind to.
    pub router_ip: IpAddr,
    pub limits: Limits,
    /// Finished deployments kept per app.
    pub history_limit: u32,
    /// The most replicas the host runs at once.
    pub max_replicas: u32,
    /// The most replicas one app runs at once, unless it has a quota of its own.
    pub app_replica_quota: u32,
    /// Deployment targets named in the config file, with their Docker endpoint if they
    /// have one of their own.
    pub targets: std::collections::BTreeMap<String, Option<String>>,
    /// Hosts that hooks may send HTTP requests to.
    pub hook_allowed_hosts: Vec<String>,
    /// How often replicas are probed and the healer looks at every app.
    pub probe_interval: std::time::Duration,
}

pub async fn serve(options: ServeOptions) -> Result<()> {
    std::fs::create_dir_all(&options.data_dir)
        .with_context(|| format!("creating the data dir {}", options.data_dir.display()))?;
    let data_dir = options.data_dir.canonicalize()?;
    let store = Store::open(&data_dir).await?;

    let driver: Arc<dyn Driver> = match options.runtime {
        RuntimeChoice::Auto => runtime::detect(data_dir.join("logs")).await,
        RuntimeChoice::Process => Arc::new(ProcessDriver::new(data_dir.join("logs"))),
        RuntimeChoice::Docker => match DockerDriver::connect().await {
            Ok(d) => Arc::new(d),
            Err(e) => bail!(
                "--runtime docker: {e:#}; is the Docker engine running? Use --runtime process to run replicas as local processes"
            ),
        },
    };
    let runtime_name = driver.name();

    let started = std::time::Instant::now();
    let plugins = PluginHost::new(options.limits.clone(), Some(data_dir.join("compiled"))).await?;
    tracing::info!(
        "loaded {} built-in plugins in {:?} ({} from the compiled-code cache)",
        plugins.list().len(),
        started.elapsed(),
        plugins.cache_hits()
    );
    let mut target_drivers = std::collections::BTreeMap::new();
    for (name, host) in &options.targets {
        let Some(host) = host else { continue };
        let connected = match DockerDriver::connect_to(host).await {
            Ok(d) => Ok(Arc::new(d) as Arc<dyn Driver>),
            Err(e) => {
                tracing::warn!("deployment target {name}: {e:#}");
                Err(format!("{e:#}"))
            }
        };
        target_drivers.insert(name.clone(), connected);
    }
    if options.app_replica_quota == 0 || options.app_replica_quota > options.max_replicas {
        bail!(
            "--app-replica-quota {} must be from 1 to --max-replicas ({})",
            options.app_replica_quota,
            options.max_replicas
        );
    }
    let fleet =
        Fleet::new(driver, store.clone(), store.server_id().await?, options.max_replicas, options.app_replica_quota);
    let fleet = Arc::new(fleet.with_targets(target_drivers));
    let (router, router_events) = Router::with_events();
    let router = Arc::new(router);
    let link = match options.router_mode {
        RouterMode::Embedded => None,
        RouterMode::Process | RouterMode::External => {
            let link = Link::connect_or_start(&data_dir, options.router_mode == RouterMode::External).await?;
            router.mirror(link.clone());
            link.adopt(&router).await.context("adopting the router's table")?;
            Some(link)
        }
    };
    let engine_options = EngineOptions {
        router_ip: options.router_ip,
        history_limit: options.history_limit,
        targets: options.targets.keys().cloned().collect(),
        hook_allowed_hosts: options.hook_allowed_hosts.clone(),
        probe_interval: options.probe_interval,
        data_dir: data_dir.clone(),
        acme: options.acme.clone(),
    };
    let engine = Engine::new(store.clone(), plugins, fleet, router.clone(), engine_options);
    engine.watch_router(router_events);
    let plugins_dir = data_dir.join("plugins");
    engine.load_installed_plugins(&plugins_dir).await?;
    engine.watch_plugins_dir(plugins_dir.clone());
    engine.start().await?;
    // Apps are restored with their host names: the entrypoint can open.
    if link.is_none() {
        router.use_cert_store(&data_dir);
    }
    for (name, addr, flag) in [
        (crate::router::HTTP_ENTRYPOINT, options.http_addr, "--http-addr"),
        (crate::router::HTTPS_ENTRYPOINT, options.https_addr, "--https-addr"),
    ] {
        match addr {
            Some(addr) => router.listen_entrypoint(name, addr).await.with_context(|| {
                format!("opening the entrypoint on {addr} ({flag}): is another program listening there, or is the port below 1024 without the right to bind it?")
            })?,
            None => router.stop_entrypoint(name),
        }
    }
    if let Some(link) = &link {
        // Every app is restored: the router may take the control plane's table now, less
        // the apps it still serves that this data dir no longer has.
        let known: Vec<String> = store.apps().await?.into_iter().map(|app| app.name).collect();
        for app in router.table().apps.into_iter().filter(|app| !known.contains(&app.name)) {
            tracing::warn!("the router served app {}, which no longer exists: it stops", app.name);
            router.remove(&app.name);
        }
        link.ready();
        link.spawn_sync(router.clone());
        router.flush().await;
    }

    let token = Arc::new(crate::api::auth::Token::load_or_create(&data_dir)?);
    let listener = tokio::net::TcpListener::bind(options.api_addr)
        .await
        .with_context(|| format!("binding the API to {}", options.api_addr))?;
    let api_addr = listener.local_addr()?;
    println!("hivemind serving the API on http://{api_addr} (data dir {}, runtime {runtime_name})", data_dir.display());
    if let Some(addr) = options.http_addr {
        println!("the HTTP entrypoint serves every app by host name on http://{addr}");
    }
    if let Some(addr) = options.https_addr {
        println!("the HTTPS entrypoint serves every app by host name on https://{addr} (hivemind cert add)");
    }
    println!(
        "the API token is in {} (export HIVEMIND_TOKEN=$(cat {}))",
        token.path().display(),
        token.path().display()
    );
    let app = api::router(Api { engine, plugins_dir, token });
    axum::serve(listener, app).with_graceful_shutdown(shutdown()).await?;
    Ok(())
}

/// Resolves on SIGINT or SIGTERM. Replicas keep running; the next start adopts them.
async fn shutdown() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down; replicas keep running");
}
