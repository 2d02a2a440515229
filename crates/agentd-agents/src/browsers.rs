//! The node's browser pool, shared by its browser sessions: started once, on first use or in
//! the background when the server starts, and started again on the next use if it failed.

use std::sync::Arc;

use agentd_browser::{BrowserError, BrowserPool, BrowserSettings};
use tokio::sync::Mutex;

/// A lazily started [`BrowserPool`].
pub struct Browsers {
    settings: BrowserSettings,
    pool: Mutex<Option<Arc<BrowserPool>>>,
}

impl Browsers {
    /// Browsers started with `settings` when first needed.
    pub fn new(settings: BrowserSettings) -> Self {
        Self { settings, pool: Mutex::new(None) }
    }

    /// The settings the pool starts with (its metrics among them).
    pub fn settings(&self) -> &BrowserSettings {
        &self.settings
    }

    /// The running pool, started now if need be.
    pub async fn pool(&self) -> Result<Arc<BrowserPool>, BrowserError> {
        let mut pool = self.pool.lock().await;
        if let Some(running) = pool.as_ref() {
            return Ok(running.clone());
        }
        let started = Arc::new(BrowserPool::start(&self.settings).await?);
        *pool = Some(started.clone());
        Ok(started)
    }

    /// Starts the pool in the background, so the first session finds it (and its warm
    /// contexts) ready; a failure is logged and tried again by the first session.
    pub fn start_in_background(self: &Arc<Self>) {
        let browsers = self.clone();
        tokio::spawn(async move {
            if let Err(error) = browsers.pool().await {
                tracing::warn!(%error, "the browser did not start; browser sessions will try again");
            }
        });
    }

    /// Closes the browser (sessions still holding a context keep it until they end).
    pub async fn shutdown(&self) {
        let pool = self.pool.lock().await.take();
        if let Some(pool) = pool.and_then(|p| Arc::try_unwrap(p).ok()) {
            pool.shutdown().await;
        }
    }
}
