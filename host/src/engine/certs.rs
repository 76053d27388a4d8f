//! TLS certificates for the HTTPS entrypoint, added from files: checked (host, key,
//! dates) before anything is written, then served by the router without a restart.

use super::Engine;
use crate::error::UserError;
use crate::router::tls::{CertInfo, CertStore};

impl Engine {
    fn cert_store(&self) -> CertStore {
        CertStore::of(&self.options.data_dir)
    }

    /// Stores a host's certificate and key, replacing the one it had, and serves it.
    pub async fn add_cert(&self, host: &str, cert_pem: &str, key_pem: &str) -> Result<CertInfo, UserError> {
        let host = crate::router::check_host(host).map_err(|e| UserError::invalid("host", format!("{e:#}")))?;
        let info = self
            .cert_store()
            .add(&host, cert_pem.as_bytes(), key_pem.as_bytes())
            .map_err(|e| UserError::invalid("cert", format!("refused the certificate for {host}: {e:#}")))?;
        self.services.router.reload_certs().await.map_err(UserError::internal)?;
        tracing::info!("certificate for {host} added, valid until {}", info.not_after_s);
        Ok(info)
    }

    /// The certificates stored, with their names and dates.
    pub fn certs(&self) -> Vec<CertInfo> {
        self.cert_store().load().1
    }

    pub async fn remove_cert(&self, host: &str) -> Result<(), UserError> {
        // Checked as a host name first: it names a directory.
        let host = crate::router::check_host(host).map_err(|e| UserError::invalid("host", format!("{e:#}")))?;
        let removed = self.cert_store().remove(&host).map_err(UserError::internal)?;
        if !removed {
            return Err(UserError::not_found(
                "cert",
                format!("no certificate for host {host}; `hivemind cert list` shows them"),
            ));
        }
        self.services.router.reload_certs().await.map_err(UserError::internal)
    }
}
