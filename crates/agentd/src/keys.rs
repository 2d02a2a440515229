//! API keys: creation (random, shown once, stored as SHA-256), the admin key from the
//! configuration, and the first key made when a fresh server has none.

use agentd_api::auth::hash_key;
use agentd_domain::ApiKeyId;
use agentd_store::{ApiKeyRecord, Store, StoreError};
use chrono::Utc;
use rand::Rng;
use rand::distr::Alphanumeric;

/// Why keys could not be set up at start.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// The configured admin key was revoked; it is not silently brought back.
    #[error("AGENTD_ADMIN_KEY (admin_key) names a key that was revoked; choose another value")]
    AdminKeyRevoked,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Name of the project every server has.
pub const DEFAULT_PROJECT: &str = "default";

/// What to create.
#[derive(Debug, Clone)]
pub struct KeyRequest {
    /// Project name (created if missing).
    pub project: String,
    /// Label.
    pub name: String,
    /// Rate-limit tier.
    pub tier: String,
    /// Per-minute override.
    pub per_minute: Option<u64>,
    /// Per-day override.
    pub per_day: Option<u64>,
}

/// A new random secret: `agd_` and 40 alphanumerics (~238 bits).
pub fn new_secret() -> String {
    let body: String = rand::rng().sample_iter(&Alphanumeric).take(40).map(char::from).collect();
    format!("agd_{body}")
}

/// What `keys list` shows to recognise a key: for generated keys `agd_` and four characters
/// of the ~238 random bits; for a chosen key (AGENTD_ADMIN_KEY, possibly short) a fragment
/// of its hash, never of the key itself.
fn prefix(secret: &str) -> String {
    if secret.starts_with("agd_") && secret.len() >= 44 {
        secret.chars().take(8).collect()
    } else {
        format!("sha:{}", &hash_key(secret)[..8])
    }
}

/// Stores a key with the given secret.
pub async fn insert(store: &dyn Store, secret: &str, req: &KeyRequest) -> Result<ApiKeyRecord, StoreError> {
    let project = store.ensure_project(&req.project).await?;
    let record = ApiKeyRecord {
        id: ApiKeyId::new(),
        project_id: project.id,
        name: req.name.clone(),
        key_hash: hash_key(secret),
        key_prefix: prefix(secret),
        tier: req.tier.clone(),
        per_minute: req.per_minute,
        per_day: req.per_day,
        created_at: Utc::now(),
        revoked_at: None,
    };
    store.insert_api_key(&record).await?;
    Ok(record)
}

/// Creates a random key; returns the secret (shown once) and the record.
pub async fn create(store: &dyn Store, req: &KeyRequest) -> Result<(String, ApiKeyRecord), StoreError> {
    let secret = new_secret();
    let record = insert(store, &secret, req).await?;
    Ok((secret, record))
}

/// Makes sure keys exist: the admin key when one is configured (exactly that value, in the
/// default project), or else, when there is no key at all, a fresh one whose secret is
/// returned so the caller can print it once.
pub async fn bootstrap(store: &dyn Store, admin: Option<&str>, admin_tier: &str) -> Result<Option<String>, BootstrapError> {
    store.ensure_project(DEFAULT_PROJECT).await?;
    if let Some(secret) = admin {
        let hash = hash_key(secret);
        let revoked = store
            .list_api_keys()
            .await?
            .into_iter()
            .any(|k| k.key_hash == hash && k.revoked_at.is_some());
        if revoked {
            return Err(BootstrapError::AdminKeyRevoked);
        }
        if store.api_key_by_hash(&hash).await?.is_none() {
            let req = KeyRequest {
                project: DEFAULT_PROJECT.into(),
                name: "admin (AGENTD_ADMIN_KEY)".into(),
                tier: admin_tier.into(),
                per_minute: None,
                per_day: None,
            };
            insert(store, secret, &req).await?;
        }
        return Ok(None);
    }
    let any_active = store.list_api_keys().await?.iter().any(|k| k.revoked_at.is_none());
    if any_active {
        return Ok(None);
    }
    let req = KeyRequest {
        project: DEFAULT_PROJECT.into(),
        name: "first key".into(),
        tier: admin_tier.into(),
        per_minute: None,
        per_day: None,
    };
    let (secret, _) = create(store, &req).await?;
    Ok(Some(secret))
}
