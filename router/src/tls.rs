//! TLS on the HTTPS entrypoint: a certificate per host name, chosen by SNI, kept in the
//! data dir (`certs/HOST/cert.pem` and `key.pem`, owner-only) and swapped in without a
//! restart or a dropped connection; ALPN offers `h2` and `http/1.1`.

use anyhow::{Context, Result, anyhow, bail};
use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ClientHello, ParsedCertificate, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// The crypto every TLS connection uses (ring: no C toolchain beyond cc, no cmake).
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider())).clone()
}

pub use crate::api_types::CertInfo;

/// A certificate chain and its key, checked for a host: the chain parses, the key is the
/// certificate's, the certificate names the host and is valid now.
pub struct Checked {
    pub key: Arc<CertifiedKey>,
    pub info: CertInfo,
}

pub fn check(host: &str, cert_pem: &[u8], key_pem: &[u8]) -> Result<Checked> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow!("the certificate file is not PEM certificates: {e}"))?;
    if chain.is_empty() {
        bail!("the certificate file holds no certificate (expected -----BEGIN CERTIFICATE-----)");
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| anyhow!("the key file is not a PEM private key (PKCS#8, PKCS#1 or SEC1): {e}"))?;
    let certified = CertifiedKey::from_der(chain, key, &provider()).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => {
            anyhow!("the key does not match the certificate: it is another certificate's key")
        }
        e => anyhow!("the key cannot be used: {e}"),
    })?;
    let leaf = certified.end_entity_cert().map_err(|e| anyhow!("{e}"))?;
    let parsed = ParsedCertificate::try_from(leaf).map_err(|e| anyhow!("the certificate cannot be parsed: {e}"))?;
    let name = ServerName::try_from(host.to_string()).map_err(|e| anyhow!("{host}: {e}"))?;
    let info = describe(host, leaf.as_ref())?;
    rustls::client::verify_server_name(&parsed, &name)
        .map_err(|_| anyhow!("the certificate is not for {host}: it is for {}", info.names.join(", ")))?;
    let now = crate::model::now_ms() / 1000;
    if info.not_after_s <= now {
        bail!("the certificate for {host} expired at {}", when(info.not_after_s));
    }
    if info.not_before_s > now {
        bail!("the certificate for {host} is not valid before {}", when(info.not_before_s));
    }
    Ok(Checked { key: Arc::new(certified), info })
}

fn describe(host: &str, der: &[u8]) -> Result<CertInfo> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| anyhow!("the certificate cannot be parsed: {e}"))?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::DNSName(dns) => names.push(dns.to_string()),
                x509_parser::extensions::GeneralName::IPAddress(ip) => names.push(format!("{ip:?}")),
                _ => {}
            }
        }
    }
    if names.is_empty() {
        names.extend(cert.subject().iter_common_name().filter_map(|cn| cn.as_str().ok().map(str::to_string)));
    }
    Ok(CertInfo {
        host: host.to_string(),
        names,
        issuer: cert.issuer().to_string(),
        not_before_s: cert.validity().not_before.timestamp(),
        not_after_s: cert.validity().not_after.timestamp(),
    })
}

fn when(unix_s: i64) -> String {
    crate::model::rfc3339(unix_s * 1000)
}

/// The certificates of a data dir: `certs/HOST/{cert,key}.pem`, the directory 0700 and
/// the files 0600.
pub struct CertStore {
    dir: PathBuf,
}

impl CertStore {
    pub fn of(data_dir: &Path) -> CertStore {
        CertStore { dir: data_dir.join("certs") }
    }

    /// Checks and stores a host's certificate and key (replacing what it had).
    pub fn add(&self, host: &str, cert_pem: &[u8], key_pem: &[u8]) -> Result<CertInfo> {
        let checked = check(host, cert_pem, key_pem)?;
        let dir = self.dir.join(host);
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir)?;
        // Key first, cert last: a reader that sees the new cert also sees its key.
        write_private(&dir.join("key.pem"), key_pem)?;
        write_private(&dir.join("cert.pem"), cert_pem)?;
        Ok(checked.info)
    }

    pub fn remove(&self, host: &str) -> Result<bool> {
        let dir = self.dir.join(host);
        if !dir.exists() {
            return Ok(false);
        }
        std::fs::remove_dir_all(&dir)?;
        Ok(true)
    }

    /// Every stored certificate that still loads, by host; those that do not are logged
    /// and left out (an expired one, for example: clients would refuse it anyway).
    pub fn load(&self) -> (HashMap<String, Arc<CertifiedKey>>, Vec<CertInfo>) {
        let mut keys = HashMap::new();
        let mut infos = Vec::new();
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return (keys, infos) };
        for entry in entries.flatten() {
            let host = entry.file_name().to_string_lossy().to_string();
            let read = |file: &str| std::fs::read(entry.path().join(file)).with_context(|| format!("reading {file}"));
            match read("cert.pem").and_then(|cert| Ok((cert, read("key.pem")?))).and_then(|(c, k)| check(&host, &c, &k))
            {
                Ok(checked) => {
                    keys.insert(host, checked.key);
                    infos.push(checked.info);
                }
                Err(e) => tracing::warn!("certificate for {host} left out: {e:#}"),
            }
        }
        infos.sort_by(|a, b| a.host.cmp(&b.host));
        (keys, infos)
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// The certificates the HTTPS entrypoint serves, by SNI name, swapped whole on a change.
#[derive(Debug, Default)]
pub struct Certs {
    by_host: ArcSwap<HashMap<String, Arc<CertifiedKey>>>,
}

impl Certs {
    pub fn replace(&self, keys: HashMap<String, Arc<CertifiedKey>>) {
        self.by_host.store(Arc::new(keys));
    }

    pub fn acceptor(self: &Arc<Self>) -> tokio_rustls::TlsAcceptor {
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    }
}

impl ResolvesServerCert for Certs {
    /// The host's certificate; none ends the handshake (a client that asks for a host we
    /// have no certificate for gets no other host's).
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name()?.to_ascii_lowercase();
        self.by_host.load().get(&name).cloned()
    }
}
