//! How the research agent reads a page: `agentd-fetch` (an HTTP GET through the egress
//! policy, the main content as Markdown), and the real browser for pages that need
//! JavaScript to show their content.

use std::sync::Arc;

use agentd_browser::{Action, Viewport};
use async_trait::async_trait;

use crate::browsers::Browsers;
use crate::research_agent::{PageReader, ReadPage};

/// Reads pages over HTTP, falling back to the browser for JavaScript-only pages.
pub struct WebReader {
    fetcher: agentd_fetch::Fetcher,
    browsers: Arc<Browsers>,
}

// The browser fallback renders through the browser's egress proxy, so every request the page
// makes while rendering (scripts, redirects, frames) is checked before it leaves; the final URL
// is checked again, so a page that was sent elsewhere is not read.

impl WebReader {
    /// A reader fetching with `fetcher` and rendering with `browsers` when it must.
    pub fn new(fetcher: agentd_fetch::Fetcher, browsers: Arc<Browsers>) -> Self {
        Self { fetcher, browsers }
    }

    /// The page as the real browser renders it (its URL was checked by the fetch before).
    async fn render(&self, url: &str) -> Result<ReadPage, String> {
        let pool = self.browsers.pool().await.map_err(|e| format!("the browser could not start to render {url}: {e}"))?;
        let mut session = pool
            .lease(Viewport { width: 1280, height: 900 })
            .await
            .map_err(|e| format!("the browser could not open a page: {e}"))?;
        let read = async {
            session.act(&Action::Navigate { url: url.to_owned() }).await.map_err(|e| format!("the page did not open in the browser: {e}"))?;
            let final_url = session.page().url().await.ok().flatten().unwrap_or_else(|| url.to_owned());
            self.fetcher.policy().check_url(&final_url).map_err(|refused| format!("the rendered page went elsewhere: {refused}"))?;
            let (extracted, _) =
                agentd_browser::extract_markdown(session.page()).await.map_err(|e| format!("the rendered page could not be read: {e}"))?;
            Ok::<_, String>(ReadPage { url: final_url, title: extracted.title, text: extracted.markdown })
        }
        .await;
        let _ = session.close().await;
        read
    }
}

#[async_trait]
impl PageReader for WebReader {
    async fn read(&self, url: &str) -> Result<ReadPage, String> {
        let page = self.fetcher.fetch(url).await.map_err(|e| e.to_string())?;
        if page.needs_browser {
            return self.render(&page.url).await;
        }
        let mut text = page.text;
        if page.truncated {
            text.push_str("\n\n[… the page was longer than agentd reads]");
        }
        Ok(ReadPage { url: page.url, title: page.title, text })
    }
}
