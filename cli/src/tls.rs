//! The TLS the CLI speaks, to an OCI registry and to a server's API: the system's roots
//! and, for a private CA, the certificates of one PEM file; ring as the provider.

use anyhow::{Context, Result, anyhow, bail};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// A client configuration that trusts the system's roots and those in `ca_cert` (named
/// `flag` in errors).
pub fn client_config(ca_cert: Option<&std::path::Path>, flag: &str) -> Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = ca_cert {
        let pem = std::fs::read(path).with_context(|| format!("cannot read {flag} {}", path.display()))?;
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<_, _>>()
            .map_err(|e| anyhow!("{flag} {}: not a PEM certificate ({e})", path.display()))?;
        if certs.is_empty() {
            bail!("{flag} {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)", path.display());
        }
        for cert in certs {
            roots.add(cert).map_err(|e| anyhow!("{flag} {}: {e}", path.display()))?;
        }
    }
    Ok(rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
