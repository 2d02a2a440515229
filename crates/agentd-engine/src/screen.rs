//! What a session's browser shows, for the people watching it: the agent lends the engine a
//! way to capture its screen ([`ScreenSource`]); status views capture it on demand while the
//! session is live, and the last capture is kept in the store for after it ends.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agentd_store::{Screenshot, SharedStore};
use base64::Engine as _;
use futures::future::BoxFuture;

/// Captures the screen as a PNG; None when it cannot (the page is gone).
pub type ScreenSource = Arc<dyn Fn() -> BoxFuture<'static, Option<Vec<u8>>> + Send + Sync>;

/// Longest a capture may take before the caller gets the stored one instead.
const CAPTURE_TIMEOUT: Duration = Duration::from_millis(1500);

/// A capture younger than this is shared by everyone who asks (many viewers, one capture).
const FRESH_FOR: Duration = Duration::from_millis(500);

/// Screenshots kept per session.
pub(crate) const KEPT: u32 = 10;

/// A live session's screen.
pub(crate) struct Screen {
    store: SharedStore,
    source: Mutex<Option<ScreenSource>>,
    /// The last capture, or a failed one (None), and when: either is shared for [`FRESH_FOR`].
    last: tokio::sync::Mutex<Option<(Instant, Option<Screenshot>)>>,
}

impl Screen {
    pub(crate) fn new(store: SharedStore) -> Self {
        Self { store, source: Mutex::new(None), last: tokio::sync::Mutex::new(None) }
    }

    pub(crate) fn show(&self, source: Option<ScreenSource>) {
        *self.source.lock().unwrap_or_else(|e| e.into_inner()) = source;
    }

    /// The screen now (or as of [`FRESH_FOR`] ago); None when nothing shows it.
    pub(crate) async fn capture(&self) -> Option<Screenshot> {
        let source = self.source.lock().unwrap_or_else(|e| e.into_inner()).clone()?;
        // One capture at a time: whoever waits here gets the one just taken.
        let mut last = self.last.lock().await;
        if let Some((_, shot)) = last.as_ref().filter(|(at, _)| at.elapsed() < FRESH_FOR) {
            return shot.clone();
        }
        let png = tokio::time::timeout(CAPTURE_TIMEOUT, source()).await.ok().flatten();
        let shot = png.map(|png| Screenshot {
            taken_at: agentd_domain::now(),
            png_base64: base64::engine::general_purpose::STANDARD.encode(png),
        });
        *last = Some((Instant::now(), shot.clone()));
        shot
    }

    /// Captures the screen and keeps it in the store (the last look at a session that ends).
    pub(crate) async fn keep(&self, session: agentd_domain::SessionId) {
        let Some(shot) = self.capture().await else { return };
        if let Err(error) = self.store.save_screenshot(session, &shot, KEPT).await {
            tracing::warn!(%session, %error, "could not keep a session's screenshot");
        }
    }
}
