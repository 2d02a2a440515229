//! Sealing: tools' private variables are kept encrypted at rest with the server's secrets key
//! (32 random bytes in `<data_dir>/secrets.key`), XChaCha20-Poly1305 with a random 24-byte
//! nonce per value set. The store only ever sees the sealed form; the engine opens it for the
//! one execution that needs it.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

/// Bound to every sealed value, so a sealed blob is not mistaken for another kind of secret.
const CONTEXT: &[u8] = b"agentd private variables v1";

/// The server's key for sealing secrets at rest.
#[derive(Clone)]
pub struct SealingKey([u8; 32]);

/// A sealed value could not be opened: the data dir's `secrets.key` is not the one it was
/// sealed with, or the stored value was altered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored private variables cannot be opened: secrets.key is not the key they were sealed with, or they were altered")]
pub struct UnsealError;

impl SealingKey {
    /// A key from its bytes.
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A fresh random key.
    pub fn random() -> Self {
        Self(rand::random())
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new_from_slice(&self.0).expect("a 32-byte key")
    }

    /// `values` sealed for `owner` (what they belong to: they open for it only): base64 of the
    /// nonce and the ciphertext. None for an empty set.
    pub fn seal(&self, owner: &[u8], values: &BTreeMap<String, String>) -> Option<String> {
        if values.is_empty() {
            return None;
        }
        let nonce_bytes: [u8; 24] = rand::random();
        let nonce = XNonce::from(nonce_bytes);
        let plain = serde_json::to_vec(values).expect("strings serialise");
        let sealed = self.cipher().encrypt(&nonce, Payload { msg: &plain, aad: &aad(owner) }).expect("encryption of a bounded value");
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&sealed);
        Some(STANDARD.encode(out))
    }

    /// The values `sealed` (for `owner`) holds.
    pub fn open(&self, owner: &[u8], sealed: Option<&str>) -> Result<BTreeMap<String, String>, UnsealError> {
        let Some(sealed) = sealed else { return Ok(BTreeMap::new()) };
        let raw = STANDARD.decode(sealed).map_err(|_| UnsealError)?;
        if raw.len() < 24 {
            return Err(UnsealError);
        }
        let (nonce, ciphertext) = raw.split_at(24);
        let nonce = XNonce::try_from(nonce).map_err(|_| UnsealError)?;
        let plain = self.cipher().decrypt(&nonce, Payload { msg: ciphertext, aad: &aad(owner) }).map_err(|_| UnsealError)?;
        serde_json::from_slice(&plain).map_err(|_| UnsealError)
    }
}

/// The associated data: the scheme and the owner, so a sealed value moved elsewhere does not open.
fn aad(owner: &[u8]) -> Vec<u8> {
    [CONTEXT, b":", owner].concat()
}

impl fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealingKey(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_with_their_key_only_and_hide_the_plaintext() {
        let key = SealingKey::new([3; 32]);
        let values: BTreeMap<String, String> = [("token".to_owned(), "sk-very-secret".to_owned())].into();
        let sealed = key.seal(b"p/t", &values).unwrap();
        assert!(!sealed.contains("sk-very-secret"));
        assert_ne!(Some(sealed.clone()), key.seal(b"p/t", &values), "a fresh nonce each time");
        assert_eq!(key.open(b"p/t", Some(&sealed)).unwrap(), values);
        assert_eq!(key.open(b"p/other", Some(&sealed)), Err(UnsealError), "bound to its owner");
        assert_eq!(SealingKey::new([4; 32]).open(b"p/t", Some(&sealed)), Err(UnsealError));
        let mut tampered = STANDARD.decode(&sealed).unwrap();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(key.open(b"p/t", Some(&STANDARD.encode(tampered))), Err(UnsealError));
        assert_eq!((key.seal(b"p/t", &BTreeMap::new()), key.open(b"p/t", None).unwrap()), (None, BTreeMap::new()));
    }
}
