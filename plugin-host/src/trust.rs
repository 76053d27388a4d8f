//! Who may supply plugins: minisign signatures checked against the operator's trusted
//! public keys. A signature is a `.minisig` file made by `hivemind plugin sign` or by the
//! `minisign` tool itself (ed25519 over the component's BLAKE2b hash, with a trusted
//! comment the signature covers too). The policy is the server's: `permissive` (the
//! default) takes unsigned components and says so; `require-signed` takes only components
//! signed by a trusted key. A signature that does not match its component is refused under
//! either, since it means the bytes were changed after signing.

use anyhow::{Context, Result, anyhow, bail};
use minisign::{PublicKey, PublicKeyBox, SignatureBox};
use std::path::Path;

pub use hivemind_model::settings::TrustMode;

/// A public key the operator trusts, and where it came from (for messages).
#[derive(Clone)]
pub struct TrustedKey {
    pub id: String,
    pub file: String,
    key: PublicKey,
}

impl TrustedKey {
    /// A minisign public key file (`minisign -G` writes one, `minisign.pub`).
    pub fn from_file(path: &Path) -> Result<TrustedKey> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read the trusted key {}", path.display()))?;
        TrustedKey::parse(&text, &path.display().to_string())
    }

    /// A key from a public key file's text, or its one base64 line (`RW…`).
    pub fn parse(text: &str, file: &str) -> Result<TrustedKey> {
        let text = text.trim();
        let key = if text.lines().count() >= 2 {
            PublicKeyBox::from_string(text).and_then(|b| b.into_public_key())
        } else {
            PublicKey::from_base64(text)
        }
        .map_err(|e| {
            anyhow!(
                "{file} is not a minisign public key ({e}); give the .pub file `minisign -G` or `hivemind plugin sign` users publish"
            )
        })?;
        Ok(TrustedKey { id: key_id(key.keynum()), file: file.to_string(), key })
    }
}

/// The policy a server loads plugins under.
#[derive(Clone, Default)]
pub struct TrustPolicy {
    pub mode: TrustMode,
    pub keys: Vec<TrustedKey>,
}

/// Who signed a loaded component, as `plugin inspect` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    /// The signing key's ID, as minisign prints it (16 hex digits).
    pub key_id: String,
    /// The trusted key file it matched: None when the key is not trusted here, and the
    /// signature could therefore not be checked.
    pub trusted_key: Option<String>,
    /// The comment the signature covers (minisign's "trusted comment").
    pub comment: String,
}

/// A verified (or, from an unknown key, at least well-formed) signature: who signed, and
/// the `.minisig` text to keep beside the component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub signer: Signer,
    pub text: String,
}

impl Signer {
    pub fn verified(&self) -> bool {
        self.trusted_key.is_some()
    }
}

pub use hivemind_model::plugin::{key_id, signature_path};

impl TrustPolicy {
    /// The trusted keys, as people read them in a refusal.
    fn trusted(&self) -> String {
        if self.keys.is_empty() {
            return "no key (add one with --trusted-key FILE)".into();
        }
        self.keys.iter().map(|k| format!("key ID {} ({})", k.id, k.file)).collect::<Vec<_>>().join(", ")
    }

    /// Checks a component and its signature (the text of its `.minisig`, if it has one)
    /// against the policy: who signed it, or why it may not be loaded.
    pub fn check(&self, component: &[u8], signature: Option<&str>) -> Result<Option<Signer>> {
        let Some(signature) = signature.map(str::trim).filter(|s| !s.is_empty()) else {
            if self.mode == TrustMode::RequireSigned {
                bail!(
                    "the component is unsigned, and this server requires a signature by {}; sign it with `hivemind plugin sign FILE --key SECRET_KEY` (or `minisign -Sm FILE`) and install it with its FILE.minisig",
                    self.trusted()
                );
            }
            return Ok(None);
        };
        let signature = SignatureBox::from_string(signature).map_err(|e| {
            anyhow!("the signature is not a minisign signature ({e}); give the .minisig file `hivemind plugin sign` or `minisign -S` wrote")
        })?;
        let key_id = key_id(signature.keynum());
        let comment = signature.trusted_comment().unwrap_or_default();
        let Some(trusted) = self.keys.iter().find(|k| k.id == key_id) else {
            if self.mode == TrustMode::RequireSigned {
                bail!(
                    "the component is signed by key ID {key_id}, which this server does not trust; it trusts {}; add the signer's public key with --trusted-key if you trust them",
                    self.trusted()
                );
            }
            return Ok(Some(Signer { key_id, trusted_key: None, comment }));
        };
        minisign::verify(&trusted.key, &signature, std::io::Cursor::new(component), true, false, true).map_err(
            |e| {
                anyhow!(
                    "the signature by key ID {key_id} ({}) does not match this component ({e}): the component or its signature was changed after signing",
                    trusted.file
                )
            },
        )?;
        Ok(Some(Signer { key_id, trusted_key: Some(trusted.file.clone()), comment }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keypair() -> (minisign::KeyPair, TrustedKey) {
        let pair = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
        let public = pair.pk.to_box().unwrap().to_string();
        let trusted = TrustedKey::parse(&public, "test.pub").unwrap();
        (pair, trusted)
    }

    fn sign(pair: &minisign::KeyPair, bytes: &[u8]) -> String {
        minisign::sign(None, &pair.sk, std::io::Cursor::new(bytes), Some("file:x.wasm"), None).unwrap().to_string()
    }

    #[test]
    fn a_policy_takes_what_its_keys_signed_and_refuses_the_rest_each_with_its_reason() {
        let (pair, trusted) = keypair();
        let (stranger, _) = keypair();
        let strict = TrustPolicy { mode: TrustMode::RequireSigned, keys: vec![trusted.clone()] };
        let component = b"\0asm component bytes".to_vec();
        let signature = sign(&pair, &component);

        let signer = strict.check(&component, Some(&signature)).unwrap().unwrap();
        assert_eq!((signer.key_id.as_str(), signer.comment.as_str()), (trusted.id.as_str(), "file:x.wasm"));
        assert!(signer.verified());

        let mut tampered = component.clone();
        tampered[5] ^= 1;
        let e = strict.check(&tampered, Some(&signature)).unwrap_err().to_string();
        assert!(e.contains("does not match this component"), "{e}");
        let e = strict.check(&component, None).unwrap_err().to_string();
        assert!(e.contains("is unsigned") && e.contains(&trusted.id), "{e}");
        let e = strict.check(&component, Some(&sign(&stranger, &component))).unwrap_err().to_string();
        assert!(e.contains("which this server does not trust") && e.contains(&trusted.id), "{e}");
        let e = strict.check(&component, Some("not a signature")).unwrap_err().to_string();
        assert!(e.contains("not a minisign signature"), "{e}");

        // Permissive: unsigned and unknown signers load, but a broken signature does not.
        let open = TrustPolicy { mode: TrustMode::Permissive, keys: vec![trusted] };
        assert_eq!(open.check(&component, None).unwrap(), None);
        assert!(!open.check(&component, Some(&sign(&stranger, &component))).unwrap().unwrap().verified());
        assert!(open.check(&tampered, Some(&signature)).is_err());
    }

    #[test]
    fn a_key_reads_from_its_file_text_or_its_base64_line_with_minisigns_id() {
        let (pair, trusted) = keypair();
        let text = pair.pk.to_box().unwrap().to_string();
        // The same number as the key file's comment (which this crate zero-pads, and the
        // minisign tool does not).
        let in_comment = text.lines().next().unwrap().rsplit(' ').next().unwrap();
        assert_eq!(u64::from_str_radix(in_comment, 16).unwrap(), u64::from_str_radix(&trusted.id, 16).unwrap());
        let line = text.lines().nth(1).unwrap();
        assert_eq!(TrustedKey::parse(line, "inline").unwrap().id, trusted.id);
        let e = TrustedKey::parse("hello", "bad.pub").err().unwrap().to_string();
        assert!(e.contains("bad.pub is not a minisign public key"), "{e}");
    }
}
