//! An ACME client (RFC 8555, through instant-acme): an account with the server's
//! directory, kept in the data dir, and a certificate for one host through the HTTP-01
//! challenge, whose answer the router serves on the HTTP entrypoint.

use anyhow::{Context, Result, bail};
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount, NewOrder, OrderStatus,
    RetryPolicy,
};
use std::collections::HashMap;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::time::Duration;

/// The server's ACME settings (`serve --acme-directory ...`).
#[derive(Debug, Clone)]
pub struct AcmeConfig {
    /// The directory URL, such as https://acme-v02.api.letsencrypt.org/directory.
    pub directory: String,
    pub email: Option<String>,
    /// A PEM root to trust for the directory itself (a test CA such as pebble's), instead
    /// of the system's.
    pub ca_root: Option<PathBuf>,
    /// Renew a certificate this long before it expires.
    pub renew_before: Duration,
}

pub struct Acme {
    config: AcmeConfig,
    /// Where the account's credentials are kept (owner-only).
    credentials: PathBuf,
    account: tokio::sync::Mutex<Option<Account>>,
}

impl Acme {
    pub fn new(config: AcmeConfig, data_dir: &std::path::Path) -> Acme {
        Acme { config, credentials: data_dir.join("acme-account.json"), account: tokio::sync::Mutex::new(None) }
    }

    pub fn renew_before(&self) -> Duration {
        self.config.renew_before
    }

    /// Gets a certificate for `host`: orders it, publishes the HTTP-01 answer with
    /// `publish` (and withdraws it after), finalises with a new key. Returns the chain
    /// and the key, in PEM.
    pub async fn issue<F, Fut>(&self, host: &str, publish: F) -> Result<(String, String)>
    where
        F: Fn(HashMap<String, String>) -> Fut,
        Fut: std::future::Future<Output = Result<()>>,
    {
        let account = self.account().await?;
        let identifiers = [Identifier::Dns(host.to_string())];
        let mut order = account.new_order(&NewOrder::new(&identifiers)).await.context("placing the order")?;
        let mut answers = HashMap::new();
        {
            let mut authorizations = order.authorizations();
            while let Some(authorization) = authorizations.next().await {
                let mut authorization = authorization.context("reading the order's authorization")?;
                match authorization.status {
                    AuthorizationStatus::Valid => continue,
                    AuthorizationStatus::Pending => {}
                    status => bail!("the ACME server says the authorization for {host} is {status:?}"),
                }
                let mut challenge = authorization
                    .challenge(ChallengeType::Http01)
                    .with_context(|| format!("the ACME server offers no HTTP-01 challenge for {host}"))?;
                // The answer is served before the server is told to look for it.
                answers.insert(challenge.token.clone(), challenge.key_authorization().as_str().to_string());
                publish(answers.clone()).await.context("publishing the challenge's answer on the router")?;
                challenge.set_ready().await.context("telling the ACME server the challenge is ready")?;
            }
        }
        let polled = order.poll_ready(&RetryPolicy::new().timeout(Duration::from_secs(60))).await;
        if !answers.is_empty() {
            let _ = publish(HashMap::new()).await;
        }
        let status = polled.context("waiting for the ACME server to validate the challenge")?;
        if status != OrderStatus::Ready {
            let why = order.state().error.as_ref().map(|e| format!(": {e}")).unwrap_or_default();
            bail!(
                "the ACME server did not validate {host} (order {status:?}{why}); is http://{host}/.well-known/acme-challenge/ routed to this server's HTTP entrypoint, port 80?"
            );
        }
        let key_pem = order.finalize().await.context("finalising the order")?;
        let chain_pem = order
            .poll_certificate(&RetryPolicy::new().timeout(Duration::from_secs(60)))
            .await
            .context("downloading the certificate")?;
        Ok((chain_pem, key_pem))
    }

    /// The account: cached, else from the stored credentials, else a new one.
    async fn account(&self) -> Result<Account> {
        let mut cached = self.account.lock().await;
        if let Some(account) = cached.as_ref() {
            return Ok(account.clone());
        }
        let stored: Option<AccountCredentials> =
            std::fs::read(&self.credentials).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok());
        let account = match stored {
            // The directory may have forgotten it (a test server restarted): then a new one.
            Some(credentials) => match self.builder()?.from_credentials(credentials).await {
                Ok(account) => account,
                Err(e) => {
                    tracing::warn!("the stored ACME account no longer works ({e}); creating another");
                    self.create().await?
                }
            },
            None => self.create().await?,
        };
        *cached = Some(account.clone());
        Ok(account)
    }

    async fn create(&self) -> Result<Account> {
        let contact = self.config.email.as_ref().map(|e| format!("mailto:{e}"));
        let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
        let new = NewAccount { contact: &contacts, terms_of_service_agreed: true, only_return_existing: false };
        let (account, credentials) = self
            .builder()?
            .create(&new, self.config.directory.clone(), None)
            .await
            .with_context(|| format!("creating an account with the ACME directory {}", self.config.directory))?;
        let mut file =
            std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&self.credentials)?;
        std::io::Write::write_all(&mut file, &serde_json::to_vec(&credentials)?)?;
        Ok(account)
    }

    fn builder(&self) -> Result<instant_acme::AccountBuilder> {
        Ok(match &self.config.ca_root {
            Some(root) => Account::builder_with_root(root)
                .with_context(|| format!("reading the ACME directory's root certificate {}", root.display()))?,
            None => Account::builder().context("loading the system's root certificates")?,
        })
    }
}
