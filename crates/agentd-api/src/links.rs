//! Session links: the `task_id` the Computer Use Agent API pairs with each session, which is
//! also the key of the session's live page (`/sessions/{id}?task_id=...`). It is derived
//! from the session id with the server's link key (HMAC-SHA256), so nothing is stored, it
//! cannot be guessed from the id, and it opens one session's page only.

use agentd_domain::SessionId;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The server's secret for session links (32 random bytes kept in the data dir, so links
/// outlive a restart).
#[derive(Clone)]
pub struct LinkKey([u8; 32]);

impl LinkKey {
    /// A key from its bytes.
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A fresh random key.
    pub fn random() -> Self {
        Self(rand::random())
    }

    fn mac(&self, session: SessionId) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(b"agentd session link v1:");
        mac.update(session.to_string().as_bytes());
        mac
    }

    /// The session's task id: a UUID (version 4 form) made of the link's first 16 bytes.
    pub fn task_id(&self, session: SessionId) -> String {
        let tag = self.mac(session).finalize().into_bytes();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&tag[..16]);
        uuid::Builder::from_random_bytes(bytes).into_uuid().to_string()
    }

    /// Whether `presented` is the session's task id (compared in constant time).
    pub fn verify(&self, session: SessionId, presented: &str) -> bool {
        let expected = self.task_id(session);
        let presented = presented.trim().to_ascii_lowercase();
        expected.len() == presented.len()
            && expected.bytes().zip(presented.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

impl std::fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkKey(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_ids_are_stable_per_key_and_session() {
        let key = LinkKey::new([7; 32]);
        let session = SessionId::new();
        let id = key.task_id(session);
        assert_eq!(id, key.task_id(session));
        assert!(key.verify(session, &id));
        assert!(key.verify(session, &id.to_uppercase()));
        assert!(!key.verify(SessionId::new(), &id));
        assert!(!LinkKey::new([8; 32]).verify(session, &id));
        assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 4);
    }
}
