//! TLS certificates for the HTTPS entrypoint, added from files: checked (host, key,
//! dates) before anything is written, then served by the router without a restart; and
//! the keeper that gets and renews the `--tls acme` ones.

use super::Ground;
use crate::error::{ErrorCode, Field, UserError};
use crate::router::tls::{CertInfo, CertStore};
use std::sync::Arc;

/// The engine's certificates service: files, ACME, and their counts.
pub struct Certificates {
    ground: Arc<Ground>,
    /// The ACME client, when the server has a directory (`--acme-directory`).
    acme: Option<Arc<crate::acme::Acme>>,
    /// Wakes the keeper: an app now wants ACME certificates.
    wanted: tokio::sync::Notify,
    /// What the keeper did, for /metrics and the back-off.
    keeper: Keeper,
}

impl Certificates {
    pub(super) fn new(ground: Arc<Ground>) -> Certificates {
        let options = &ground.options;
        let acme = options.acme.clone().map(|config| Arc::new(crate::acme::Acme::new(config, &options.data_dir)));
        Certificates { ground, acme, wanted: tokio::sync::Notify::new(), keeper: Keeper::default() }
    }

    /// Whether the server can get certificates itself (it has an ACME directory).
    pub fn has_acme(&self) -> bool {
        self.acme.is_some()
    }

    /// An app now wants ACME certificates: the keeper looks at once.
    pub(super) fn want(&self) {
        self.wanted.notify_one();
    }

    fn cert_store(&self) -> CertStore {
        CertStore::of(&self.ground.options.data_dir)
    }

    /// Stores a host's certificate and key, replacing the one it had, and serves it.
    pub async fn add_cert(&self, host: &str, cert_pem: &str, key_pem: &str) -> Result<CertInfo, UserError> {
        let host = crate::router::check_host(host).map_err(|e| UserError::invalid(Field::Host, format!("{e:#}")))?;
        let info = self
            .cert_store()
            .add(&host, cert_pem.as_bytes(), key_pem.as_bytes())
            .map_err(|e| UserError::invalid(Field::Cert, format!("refused the certificate for {host}: {e:#}")))?;
        self.ground.services.router.reload_certs().await.map_err(UserError::internal)?;
        tracing::info!("certificate for {host} added, valid until {}", info.not_after_s);
        Ok(info)
    }

    /// The certificates stored, with their names and dates.
    pub fn certs(&self) -> Vec<CertInfo> {
        self.cert_store().load().1
    }

    pub async fn remove_cert(&self, host: &str) -> Result<(), UserError> {
        // Checked as a host name first: it names a directory.
        let host = crate::router::check_host(host).map_err(|e| UserError::invalid(Field::Host, format!("{e:#}")))?;
        let removed = self.cert_store().remove(&host).map_err(UserError::internal)?;
        if !removed {
            return Err(UserError::not_found(
                ErrorCode::CertNotFound,
                format!("no certificate for host {host}; `hivemind cert list` shows them"),
            ));
        }
        self.ground.services.router.reload_certs().await.map_err(UserError::internal)
    }
}

/// How often the keeper looks at every `--tls acme` host (and at once when an app asks).
const KEEPER_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);
/// The first retry after a failed issuance; it doubles up to `MAX_BACKOFF`.
const FIRST_BACKOFF: std::time::Duration = std::time::Duration::from_secs(10);
const MAX_BACKOFF: std::time::Duration = std::time::Duration::from_secs(3600);

/// What the certificate keeper did: counts for /metrics, and each failing host's back-off.
#[derive(Default)]
pub struct Keeper {
    pub issued: std::sync::atomic::AtomicU64,
    pub failures: std::sync::atomic::AtomicU64,
    /// Per host: the next attempt, and the wait after a failure there.
    backoff: std::sync::Mutex<std::collections::HashMap<String, (tokio::time::Instant, std::time::Duration)>>,
}

impl Certificates {
    /// Keeps a valid certificate for every host of every `--tls acme` app: issues the
    /// missing ones, renews those that expire within `--acme-renew-before`, retries
    /// failures with back-off, and tells the app's event log each time.
    pub(super) fn keep_certificates(self: Arc<Self>) {
        tokio::spawn(async move {
            loop {
                if let Err(e) = self.certificates_pass().await {
                    tracing::warn!("certificate keeper: {e:#}");
                }
                tokio::select! {
                    () = tokio::time::sleep(KEEPER_INTERVAL) => {}
                    () = self.wanted.notified() => {}
                }
            }
        });
    }

    async fn certificates_pass(&self) -> anyhow::Result<()> {
        let Some(acme) = self.acme.clone() else { return Ok(()) };
        let apps: Vec<_> =
            self.ground.store.apps().await?.into_iter().filter(|a| a.tls == crate::model::TlsMode::Acme).collect();
        if apps.is_empty() {
            return Ok(());
        }
        // Read from disk once a pass, and only when some app wants ACME certificates.
        let (_, served) = self.cert_store().load();
        let now_s = crate::model::now_ms() / 1000;
        let renew_before = acme.renew_before().as_secs() as i64;
        for app in apps {
            for host in &app.hosts {
                let current = served.iter().find(|c| &c.host == host);
                let why = match current {
                    None => "no certificate yet".to_string(),
                    Some(c) if c.not_after_s - now_s <= renew_before => {
                        format!("it expires in {} s", c.not_after_s - now_s)
                    }
                    Some(_) => continue,
                };
                let waiting = self.keeper.backoff.lock().unwrap().get(host).map(|(at, _)| *at);
                if waiting.is_some_and(|at| at > tokio::time::Instant::now()) {
                    continue;
                }
                self.issue_certificate(&acme, &app.name, host, &why).await;
            }
        }
        Ok(())
    }

    async fn issue_certificate(&self, acme: &crate::acme::Acme, app: &str, host: &str, why: &str) {
        use crate::model::Level;
        use std::sync::atomic::Ordering::Relaxed;
        let router = &self.ground.services.router;
        let issued = acme.issue(host, |answers| async move { router.set_challenges(answers).await }).await;
        let stored = issued.and_then(|(chain, key)| self.cert_store().add(host, chain.as_bytes(), key.as_bytes()));
        match stored {
            Ok(info) => {
                self.keeper.backoff.lock().unwrap().remove(host);
                self.keeper.issued.fetch_add(1, Relaxed);
                if let Err(e) = router.reload_certs().await {
                    tracing::warn!("reloading certificates: {e:#}");
                }
                let until = crate::model::rfc3339(info.not_after_s * 1000);
                let message = format!("certificate for {host} issued through ACME ({why}), valid until {until}");
                self.ground.event_for_app_or_log(app, None, Level::Info, &message).await;
            }
            Err(e) => {
                self.keeper.failures.fetch_add(1, Relaxed);
                let wait = {
                    let mut backoff = self.keeper.backoff.lock().unwrap();
                    let wait = backoff.get(host).map_or(FIRST_BACKOFF, |(_, last)| (*last * 2).min(MAX_BACKOFF));
                    backoff.insert(host.to_string(), (tokio::time::Instant::now() + wait, wait));
                    wait
                };
                let message = format!(
                    "could not get a certificate for {host} through ACME ({why}): {e:#}; trying again in {} s",
                    wait.as_secs()
                );
                self.ground.event_for_app_or_log(app, None, Level::Warn, &message).await;
            }
        }
    }
}

impl Certificates {
    /// The certificates' expiry, and what the ACME keeper did.
    pub(super) fn prometheus(&self, out: &mut String) {
        use std::fmt::Write;
        use std::sync::atomic::Ordering::Relaxed;
        let _ =
            writeln!(out, "# HELP hivemind_certificate_expiry_timestamp_seconds When each host's certificate expires.");
        let _ = writeln!(out, "# TYPE hivemind_certificate_expiry_timestamp_seconds gauge");
        for c in self.certs() {
            let _ =
                writeln!(out, "hivemind_certificate_expiry_timestamp_seconds{{host=\"{}\"}} {}", c.host, c.not_after_s);
        }
        let _ = writeln!(
            out,
            "# HELP hivemind_acme_certificates_issued_total Certificates issued or renewed through ACME."
        );
        let _ = writeln!(out, "# TYPE hivemind_acme_certificates_issued_total counter");
        let _ = writeln!(out, "hivemind_acme_certificates_issued_total {}", self.keeper.issued.load(Relaxed));
        let _ = writeln!(
            out,
            "# HELP hivemind_acme_failures_total ACME issuances that failed (each is retried with back-off)."
        );
        let _ = writeln!(out, "# TYPE hivemind_acme_failures_total counter");
        let _ = writeln!(out, "hivemind_acme_failures_total {}", self.keeper.failures.load(Relaxed));
    }
}
