//! Entrypoints: listeners shared by every app (`serve --http-addr`), where a request finds
//! its app by `Host`, then by the longest path prefix the app was bound to. Behind the
//! entrypoint, the request takes the same path as on the app's own port (`proxy::handle`),
//! so splits, sticky variants, previews, drains and counts work the same, counted per app.

use super::hosts::{Binding, HostRoutes};
use super::{AppRoute, Listeners, Router, proxy, tls};
use anyhow::{Context, Result};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

/// The name an entrypoint's sockets travel under in a handover, beside the apps' (app
/// names cannot start with `@`).
pub const HTTP: &str = "@http";
pub const HTTPS: &str = "@https";

/// The router's side of the entrypoints: bindings, listeners, certificates, challenges.
impl Router {
    /// Binds the app to host names on the entrypoints. Names are expected checked
    /// (`check_host`, `check_path_prefix`).
    pub fn set_binding(&self, app: &str, binding: &Binding) {
        let route = self.app(app);
        let mut config = route.config.lock().unwrap();
        if config.binding == *binding {
            return;
        }
        config.binding = binding.clone();
        route.rebuild(&mut config);
        drop(config);
        self.rebuild_hosts();
        self.changed();
    }

    pub(super) fn rebuild_hosts(&self) {
        let routes: Vec<Arc<AppRoute>> = self.apps.read().unwrap().values().cloned().collect();
        let bindings: Vec<Binding> = routes.iter().map(|r| r.config.lock().unwrap().binding.clone()).collect();
        let map = HostRoutes::new(routes.iter().zip(&bindings));
        self.front.hosts.store(Arc::new(map));
    }

    /// The answers to the ACME HTTP-01 challenges under way (token → key authorization),
    /// on the HTTP entrypoint; returns once the router process serves them.
    pub async fn set_challenges(&self, challenges: HashMap<String, String>) -> Result<()> {
        match self.link.get() {
            Some(link) => link.set_challenges(challenges).await,
            None => {
                self.front.challenges.store(Arc::new(challenges));
                Ok(())
            }
        }
    }

    /// Serves the entrypoint `name` (`entrypoint::HTTP`) on `addr`: every app by host.
    /// Returns once the address is bound (by the router process, for a mirror).
    pub async fn listen_entrypoint(&self, name: &str, addr: SocketAddr) -> Result<()> {
        if let Some(link) = self.link.get() {
            link.listen_entrypoint(name, addr).await?;
        } else if self.entrypoints.lock().unwrap().get(name).map(|l| l.addr) != Some(addr) {
            let sockets = self.bind(addr).with_context(|| format!("binding the entrypoint to {addr}"))?;
            self.serve_entrypoint_on(name, addr, sockets)?;
            return Ok(());
        }
        // The mirror records where the router process listens, for the table it pushes.
        let mut entrypoints = self.entrypoints.lock().unwrap();
        entrypoints
            .entry(name.to_string())
            .or_insert(Listeners { addr, tasks: Vec::new(), sockets: Vec::new() })
            .addr = addr;
        Ok(())
    }

    /// Where this router finds its certificates (the data dir's `certs/`), loaded at once.
    pub fn use_cert_store(&self, data_dir: &std::path::Path) {
        let _ = self.cert_store.set(tls::CertStore::of(data_dir));
        self.load_certs();
    }

    fn load_certs(&self) {
        if let Some(store) = self.cert_store.get() {
            let (keys, infos) = store.load();
            tracing::info!("serving certificates for {} hosts", infos.len());
            self.certs.replace(keys);
        }
    }

    /// Serves the certificates the store holds now (in the router process, for a mirror).
    pub async fn reload_certs(&self) -> Result<()> {
        match self.link.get() {
            Some(link) => link.reload_certs().await,
            None => {
                self.load_certs();
                Ok(())
            }
        }
    }

    /// Stops serving the entrypoint `name`, if it was.
    pub fn stop_entrypoint(&self, name: &str) {
        if self.entrypoints.lock().unwrap().remove(name).is_some() {
            self.changed();
        }
    }

    /// Serves the entrypoint `name` on sockets already listening on `addr`.
    pub fn serve_entrypoint_on(&self, name: &str, addr: SocketAddr, sockets: Vec<std::net::TcpListener>) -> Result<()> {
        let tls = (name == HTTPS).then(|| self.certs.acceptor());
        if tls.is_some() {
            self.front.https_port.store(addr.port(), Relaxed);
        }
        let (tasks, copies) = self.spawn_accept_loops(sockets, proxy::Target::Hosts(self.front.clone()), tls)?;
        // Dropping the old listeners stops their accept loops.
        self.entrypoints.lock().unwrap().insert(name.to_string(), Listeners { addr, tasks, sockets: copies });
        Ok(())
    }
}
