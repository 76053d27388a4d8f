//! Secret variables (`--secret`) leave the server only to the replicas and jobs of their
//! release. Everything shown to someone (API answers, the SSE stream, `diagnose`, the
//! dashboard) is built from a record `redacted` here, where each value is replaced by
//! a fingerprint: `sha256:` and 8 hex digits of (app, key, value), enough to see that a
//! secret changed between two releases, not enough to read it back.

use super::{App, Deployment, DeploymentSpec, Release};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// What answers show in place of a secret's value.
pub fn fingerprint(app: &str, key: &str, value: &str) -> String {
    let mut hash = Sha256::new();
    for part in [app, key, value] {
        // Each part with its length, so that ("ab", "c") and ("a", "bc") differ.
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part.as_bytes());
    }
    let digest = hash.finalize();
    format!("sha256:{}", digest[..4].iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// `text` with the user-info of every URL in it (`https://user:password@host/…`) written
/// as `***`: a webhook's credentials are shown nowhere, its host still is.
pub fn without_userinfo(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains("://") {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        let end =
            after.find(|c: char| matches!(c, '/' | '?' | '#' | '"' | '\'' | '`' | '<' | '>') || c.is_whitespace());
        let authority = &after[..end.unwrap_or(after.len())];
        match authority.rfind('@') {
            Some(user_end) => {
                out.push_str("***");
                out.push_str(&authority[user_end..]);
            }
            None => out.push_str(authority),
        }
        rest = &after[authority.len()..];
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
}

/// The shortest secret value `masked` looks for: shorter ones would mask ordinary words.
const MASKED_FROM: usize = 4;

/// `text` with every value of `secrets` written as `***`: what a job printed (or an app
/// logged) is shown without the secrets it held, as CI systems mask theirs.
pub fn masked<'a, 'b>(text: &'a str, secrets: impl IntoIterator<Item = &'b String>) -> std::borrow::Cow<'a, str> {
    let mut values: Vec<&String> = secrets.into_iter().filter(|v| v.len() >= MASKED_FROM).collect();
    // The longest first, so that a secret inside another is not left half-masked.
    values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    let mut out = std::borrow::Cow::Borrowed(text);
    for value in values {
        if out.contains(value.as_str()) {
            out = std::borrow::Cow::Owned(out.replace(value.as_str(), "***"));
        }
    }
    out
}

impl Deployment {
    /// The secret values of the releases this deployment touches: the target and the
    /// previous one (a rollback hook's job runs with either).
    pub fn secret_values(&self) -> impl Iterator<Item = &String> {
        self.spec.secrets.values().chain(self.previous.iter().flat_map(|p| p.secrets.values()))
    }
}

fn redact(app: &str, secrets: &mut BTreeMap<String, String>) {
    for (key, value) in secrets.iter_mut() {
        *value = fingerprint(app, key, value);
    }
}

impl Release {
    pub fn redact(&mut self, app: &str) {
        redact(app, &mut self.secrets);
    }
}

impl DeploymentSpec {
    pub fn redact(&mut self) {
        let app = self.app.to_string();
        redact(&app, &mut self.secrets);
        let hooks = &mut self.hooks;
        for hook in hooks.pre.iter_mut().chain(&mut hooks.verify).chain(&mut hooks.post).chain(&mut hooks.rollback) {
            *hook = without_userinfo(hook).into_owned();
        }
    }
}

impl Deployment {
    /// The deployment as it may be shown: its secrets' values replaced by fingerprints.
    pub fn redacted(mut self) -> Deployment {
        self.spec.redact();
        self.message = without_userinfo(&self.message).into_owned();
        self.error = self.error.map(|e| without_userinfo(&e).into_owned());
        if let Some(previous) = self.previous.as_mut() {
            previous.redact(&self.app);
        }
        self
    }
}

impl App {
    /// The app as it may be shown: its release's secrets replaced by fingerprints.
    pub fn redacted(mut self) -> App {
        if let Some(release) = self.release.as_mut() {
            release.redact(&self.name);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::{fingerprint, masked, without_userinfo};

    #[test]
    fn a_secret_printed_by_a_job_is_masked() {
        let secrets = ["hunter2-long".to_string(), "hunter2".to_string(), "ab".to_string()];
        assert_eq!(masked("DB=hunter2-long X=hunter2 ab", &secrets), "DB=*** X=*** ab");
        assert_eq!(masked("nothing secret", &secrets), "nothing secret");
    }

    #[test]
    fn a_urls_credentials_are_hidden_and_its_host_kept() {
        assert_eq!(
            without_userinfo("pre hook `webhook:https://ci:s3cret@hooks.example/x?a=b` failed"),
            "pre hook `webhook:https://***@hooks.example/x?a=b` failed"
        );
        assert_eq!(without_userinfo("http://a@b http://c/d@e"), "http://***@b http://c/d@e");
        assert_eq!(without_userinfo("no url here"), "no url here");
    }

    #[test]
    fn a_fingerprint_changes_with_the_value_and_hides_it() {
        let a = fingerprint("web", "DB_PASSWORD", "hunter2");
        assert!(a.starts_with("sha256:") && a.len() == 15, "{a}");
        assert!(!a.contains("hunter2"));
        assert_eq!(a, fingerprint("web", "DB_PASSWORD", "hunter2"), "stable");
        assert_ne!(a, fingerprint("web", "DB_PASSWORD", "hunter3"), "a change is visible");
        assert_ne!(a, fingerprint("api", "DB_PASSWORD", "hunter2"), "not comparable across apps");
    }
}
