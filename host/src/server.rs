//! `hivemind serve`: wires the store, the plugin runtime, the fleet, the router and the
//! engine together, and serves the API.

use crate::api::front::Front;
use crate::api::{self, Api};
use crate::cluster::{Cluster, ClusterOptions, Role};
use crate::engine::{Engine, EngineOptions};
use crate::plugins::{Limits, PluginHost};
use crate::router::Router;
use crate::router::link::Link;
use crate::runtime::{self, DockerDriver, Driver, Fleet, ProcessDriver, SwarmDriver};
use crate::store::Store;
use anyhow::{Context, Result, bail};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

pub use hivemind_model::settings::{RouterMode, RuntimeChoice};

pub struct ServeOptions {
    pub data_dir: PathBuf,
    /// Postgres, shared by several servers (one leads); SQLite in the data dir when None.
    pub database_url: Option<String>,
    /// The leader's lease, how often it is renewed, this server's name and the URL the
    /// others reach its API at (defaults: the bound API address).
    pub lease: std::time::Duration,
    pub lease_renew: std::time::Duration,
    pub server_name: Option<String>,
    pub advertise_url: Option<String>,
    pub router_mode: RouterMode,
    pub api_addr: SocketAddr,
    /// The API port's timeouts and connection limits.
    pub api_limits: api::listen::Limits,
    /// The API's certificate, if it serves HTTPS.
    pub api_tls: Option<api::listen::Tls>,
    /// The HTTP and HTTPS entrypoints, shared by every app by host name, if they are open.
    pub http_addr: Option<SocketAddr>,
    pub https_addr: Option<SocketAddr>,
    /// Where `--tls acme` apps get their certificates.
    pub acme: Option<crate::acme::AcmeConfig>,
    pub runtime: RuntimeChoice,
    /// The account replicas and jobs of the process runtime run as, if not the server's.
    pub run_as: Option<runtime::RunAs>,
    /// The address app routers bind to.
    pub router_ip: IpAddr,
    pub limits: Limits,
    /// Whose plugins may be installed: unsigned ones too, or only those a trusted key signed.
    pub plugin_trust: crate::plugins::trust::TrustPolicy,
    /// Finished deployments kept per app.
    pub history_limit: u32,
    /// The most replicas the host runs at once.
    pub max_replicas: u32,
    /// The most replicas one app runs at once, unless it has a quota of its own.
    pub app_replica_quota: u32,
    /// Deployment targets named in the config file: their Docker endpoint and runtime, if
    /// they have their own.
    pub targets: std::collections::BTreeMap<String, runtime::Target>,
    /// Hosts that hooks may send HTTP requests to.
    pub hook_allowed_hosts: Vec<String>,
    /// How often replicas are probed and the healer looks at every app.
    pub probe_interval: std::time::Duration,
    /// When images are pulled, for deployments that do not say (`[images] pull`).
    pub pull: crate::model::PullPolicy,
    /// Registry credentials of the config file (`[registries."HOST"]`).
    pub registries: std::collections::BTreeMap<String, hivemind_registry::Credentials>,
}

pub async fn serve(options: ServeOptions) -> Result<()> {
    std::fs::create_dir_all(&options.data_dir)
        .with_context(|| format!("creating the data dir {}", options.data_dir.display()))?;
    let data_dir = options.data_dir.canonicalize()?;
    let store = open_store(&options, &data_dir).await?;
    let token = Arc::new(crate::api::auth::Token::load_or_create(&data_dir)?);
    let listener = api_listener(options.api_addr).await?;
    let api_addr = listener.local_addr()?;
    let cluster_options = ClusterOptions {
        lease: options.lease,
        renew: options.lease_renew,
        name: options.server_name.clone().unwrap_or_else(|| format!("{}:{}", hostname(), api_addr.port())),
        api_url: options.advertise_url.clone().unwrap_or_else(|| format!("{}://{api_addr}", api_scheme(&options))),
    };
    let shared = store.is_shared();
    let cluster = Arc::new(if shared {
        Cluster::member(store.clone(), cluster_options)
    } else {
        Cluster::single(cluster_options)
    });
    let front = Front::new(cluster.clone(), token.clone(), options.api_tls.as_ref().map(|t| t.cert.as_path()))?;
    // What takes time comes before leading (a follower is a warm standby): the runtime
    // driver, the plugins compiled.
    let prepared = prepare(&options, &store, &data_dir).await?;
    let runtime_name = prepared.driver.name();

    let member = Member { options: &options, store: &store, data_dir: &data_dir, token: &token, cluster: &cluster };
    if !shared {
        front.lead(member.lead(prepared).await?);
        announce(&options, api_addr, &data_dir, &token, &format!(", runtime {runtime_name}"));
        let (limits, tls) = (options.api_limits.clone(), options.api_tls.clone());
        api::listen::serve(listener, api::front::router(front), limits, tls, shutdown()).await?;
        return Ok(());
    }
    member.serve_in_cluster(prepared, listener, front).await
}

/// What a server of a cluster works with.
struct Member<'a> {
    options: &'a ServeOptions,
    store: &'a Store,
    data_dir: &'a std::path::Path,
    token: &'a Arc<crate::api::auth::Token>,
    cluster: &'a Arc<Cluster>,
}

impl Member<'_> {
    async fn lead(&self, prepared: Prepared) -> Result<axum::Router> {
        lead(self.options, prepared, self.store, self.data_dir, self.cluster, self.token).await
    }

    /// One of several servers on one database: answers at once (a follower forwards to
    /// the leader), leads when the lease is its own, restarts as a follower when deposed,
    /// and gives the lease up when stopped.
    async fn serve_in_cluster(
        &self,
        prepared: Prepared,
        listener: tokio::net::TcpListener,
        front: Arc<Front>,
    ) -> Result<()> {
        let cluster = self.cluster;
        let api_addr = listener.local_addr()?;
        // One round of the election first: a server that can lead at once is ready when
        // it says it serves, as a lone server is. The election goes on (renewing the
        // lease) while it takes charge.
        cluster.round().await;
        let election = {
            let cluster = cluster.clone();
            tokio::spawn(async move { cluster.run().await })
        };
        let mut prepared = Some(prepared);
        let runtime_name = prepared.as_ref().map(|p| p.driver.name()).unwrap_or_default();
        if cluster.role() == Role::Leader {
            front.lead(self.lead(prepared.take().expect("prepared once")).await?);
        }
        announce(
            self.options,
            api_addr,
            self.data_dir,
            self.token,
            &format!(", runtime {runtime_name}, cluster member {} on Postgres", cluster.name()),
        );
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let serving = tokio::spawn(api::listen::serve(
            listener,
            api::front::router(front.clone()),
            self.options.api_limits.clone(),
            self.options.api_tls.clone(),
            async move {
                let mut stopped = stopped;
                let _ = stopped.wait_for(|s| *s).await;
            },
        ));
        let stopping = || async {
            election.abort();
            cluster.resign().await;
            let _ = stop.send(true);
        };
        tokio::select! {
            () = cluster.until(Role::Leader) => {}
            () = cluster.deposed() => return rejoin(api_addr),
            () = shutdown() => {
                stopping().await;
                let _ = serving.await;
                return Ok(());
            }
        }
        if let Some(prepared) = prepared {
            match self.lead(prepared).await {
                Ok(api) => front.lead(api),
                Err(e) => {
                    tracing::error!("taking over as the leader failed: {e:#}; stepping down");
                    cluster.resign().await;
                    return rejoin(api_addr);
                }
            }
        }
        tokio::select! {
            () = cluster.deposed() => rejoin(api_addr),
            () = shutdown() => {
                stopping().await;
                let _ = serving.await;
                Ok(())
            }
        }
    }
}

/// The store: SQLite in the data dir, or Postgres. A server that restarted itself after
/// losing the lease (`rejoin`) waits for a database that is away, instead of failing.
async fn open_store(options: &ServeOptions, data_dir: &std::path::Path) -> Result<Store> {
    let rejoining = std::env::var_os(REJOIN_FD).is_some();
    loop {
        match Store::open_url(options.database_url.as_deref(), data_dir).await {
            Ok(store) => return Ok(store),
            Err(e) if rejoining => {
                tracing::warn!("rejoining the cluster: {e:#}; trying again in 1 s");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The environment variable that hands the API's listening socket to the process that
/// replaces this one.
const REJOIN_FD: &str = "HIVEMIND_REJOIN_API_FD";

/// The API's listener: bound now, or the one the process before this one handed over.
async fn api_listener(addr: SocketAddr) -> Result<tokio::net::TcpListener> {
    if let Some(fd) = std::env::var(REJOIN_FD).ok().and_then(|fd| fd.parse::<i32>().ok()) {
        use std::os::fd::FromRawFd;
        // SAFETY: the process before this one left this descriptor open for us (`rejoin`).
        let listener = unsafe { std::net::TcpListener::from_raw_fd(fd) };
        // Closed on exec again: no replica may inherit the API's socket (and accept on it).
        // SAFETY: fcntl on a descriptor this process owns.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
        }
        listener.set_nonblocking(true)?;
        return Ok(tokio::net::TcpListener::from_std(listener)?);
    }
    tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding the API to {addr}"))
}

/// A deposed leader starts over as a follower: the same program and arguments in this
/// process (its replicas stay its children), with the API's socket kept open, so that no
/// task of the old engine survives to act on a world it no longer owns.
fn rejoin(api_addr: SocketAddr) -> Result<()> {
    use std::os::unix::process::CommandExt;
    tracing::warn!("restarting as a follower (the API stays on {api_addr})");
    // The API socket is the one axum serves: find it among our descriptors.
    let fd = api_socket_fd(api_addr).context("finding the API socket to hand over")?;
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
    }
    let error = std::process::Command::new("/proc/self/exe")
        .arg0(std::env::args_os().next().unwrap_or_default())
        .args(std::env::args_os().skip(1))
        .env(REJOIN_FD, fd.to_string())
        .exec();
    Err(anyhow::anyhow!("restarting as a follower: {error}"))
}

/// The descriptor of the socket listening on `addr`.
fn api_socket_fd(addr: SocketAddr) -> Option<i32> {
    for entry in std::fs::read_dir("/proc/self/fd").ok()?.flatten() {
        let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
        let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        let mut accepting: libc::c_int = 0;
        let mut accepting_len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        unsafe {
            if libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_ACCEPTCONN,
                &mut accepting as *mut _ as *mut libc::c_void,
                &mut accepting_len,
            ) != 0
                || accepting == 0
                || libc::getsockname(fd, &mut storage as *mut _ as *mut libc::sockaddr, &mut len) != 0
            {
                continue;
            }
        }
        let port = match storage.ss_family as i32 {
            libc::AF_INET => {
                let v4 = unsafe { &*(&storage as *const _ as *const libc::sockaddr_in) };
                u16::from_be(v4.sin_port)
            }
            libc::AF_INET6 => {
                let v6 = unsafe { &*(&storage as *const _ as *const libc::sockaddr_in6) };
                u16::from_be(v6.sin6_port)
            }
            _ => continue,
        };
        if port == addr.port() {
            return Some(fd);
        }
    }
    None
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

fn announce(
    options: &ServeOptions,
    api_addr: SocketAddr,
    data_dir: &std::path::Path,
    token: &crate::api::auth::Token,
    role: &str,
) {
    let scheme = api_scheme(options);
    println!("hivemind serving the API on {scheme}://{api_addr} (data dir {}{role})", data_dir.display());
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
}

/// `https` when the API has a certificate.
fn api_scheme(options: &ServeOptions) -> &'static str {
    if options.api_tls.is_some() { "https" } else { "http" }
}

/// What a server makes before it leads: the runtime drivers and the compiled plugins.
struct Prepared {
    driver: Arc<dyn Driver>,
    plugins: Arc<PluginHost>,
    fleet: Arc<Fleet>,
    registries: Arc<crate::engine::Registries>,
}

async fn prepare(options: &ServeOptions, store: &Store, data_dir: &std::path::Path) -> Result<Prepared> {
    let process = ProcessDriver::new(data_dir.join("logs")).running_as(options.run_as.clone());
    // The drivers pull with the credentials of `registry login`, server.toml and Docker.
    let registries = Arc::new(crate::engine::Registries::new(store.clone(), options.registries.clone()));
    let keychain: Arc<dyn runtime::Keychain> = registries.clone();
    let driver: Arc<dyn Driver> = match options.runtime {
        RuntimeChoice::Auto => runtime::detect(process, keychain.clone()).await,
        RuntimeChoice::Process => Arc::new(process),
        RuntimeChoice::Docker => match DockerDriver::connect().await {
            Ok(d) => Arc::new(d.with_keychain(keychain.clone())),
            Err(e) => bail!(
                "--runtime docker: {e:#}; is the Docker engine running? Use --runtime process to run replicas as local processes"
            ),
        },
        RuntimeChoice::Swarm => Arc::new(SwarmDriver::connect().await?.with_keychain(keychain.clone())),
    };
    let started = std::time::Instant::now();
    let plugins =
        PluginHost::new(options.limits.clone(), options.plugin_trust.clone(), Some(data_dir.join("compiled"))).await?;
    tracing::info!(
        "loaded {} built-in plugins in {:?} ({} from the compiled-code cache)",
        plugins.list().len(),
        started.elapsed(),
        plugins.cache_hits()
    );
    let mut target_drivers = std::collections::BTreeMap::new();
    for (name, target) in &options.targets {
        let Some(connected) = target.connect(keychain.clone()).await else { continue };
        let connected = match connected {
            Ok(d) => Ok(d),
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
    let fleet = Fleet::new(
        driver.clone(),
        store.clone(),
        store.server_id().await?,
        options.max_replicas,
        options.app_replica_quota,
    );
    Ok(Prepared { driver, plugins, fleet: Arc::new(fleet.with_targets(target_drivers)), registries })
}

/// Takes charge: adopts the router and the replicas, resumes the deployments under way,
/// opens the entrypoints; returns the whole API.
async fn lead(
    options: &ServeOptions,
    prepared: Prepared,
    store: &Store,
    data_dir: &std::path::Path,
    cluster: &Arc<Cluster>,
    token: &Arc<crate::api::auth::Token>,
) -> Result<axum::Router> {
    let Prepared { driver, plugins, fleet, registries } = prepared;
    let (router, router_events) = Router::with_events();
    let router = Arc::new(router);
    let link = match options.router_mode {
        RouterMode::Embedded => None,
        RouterMode::Process | RouterMode::External => {
            let link = Link::connect_or_start(data_dir, options.router_mode == RouterMode::External).await?;
            link.fence_with(store.fence().clone());
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
        data_dir: data_dir.to_path_buf(),
        acme: options.acme.clone(),
        resumed_because: if store.is_shared() {
            format!("{} took over as the cluster's leader", cluster.name())
        } else {
            "server restarted".into()
        },
        pull: options.pull,
    };
    let engine = Engine::new(store.clone(), plugins, fleet, router.clone(), registries, engine_options);
    engine.watch_router(router_events);
    let plugins_dir = data_dir.join("plugins");
    engine.catalog.load_installed_plugins(&plugins_dir).await?;
    engine.catalog.watch_plugins_dir(plugins_dir.clone());
    engine.start().await?;
    // Apps are restored with their host names: the entrypoint can open.
    if link.is_none() {
        router.use_cert_store(data_dir);
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
        let known: Vec<crate::model::AppName> = store.apps().await?.into_iter().map(|app| app.name).collect();
        for app in router.table().apps.into_iter().filter(|app| !known.iter().any(|k| *k == app.name)) {
            tracing::warn!("the router served app {}, which no longer exists: it stops", app.name);
            router.remove(&app.name);
        }
        link.ready();
        link.spawn_sync(router.clone());
        router.flush().await;
    }
    tracing::info!("leading with runtime {}", driver.name());
    Ok(api::router(Api {
        deployments: engine.deployments,
        apps: engine.apps,
        certificates: engine.certificates,
        catalog: engine.catalog,
        insights: engine.insights,
        registries: engine.registries,
        plugins_dir,
        token: token.clone(),
        cluster: cluster.clone(),
        body_timeout: options.api_limits.body_timeout,
    }))
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
