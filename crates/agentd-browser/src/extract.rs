//! The page's main content as Markdown (readability-style: navigation, ads and footers
//! dropped; headings, lists, tables and links kept), for agents that read rather than click.

use std::time::Instant;

use chromiumoxide::Page;
use dom_smoothie::{Config, Readability, TextMode};

use crate::BrowserError;
use crate::actions::{ActionError, ActionOutcome};

/// What was extracted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    /// The article's title.
    pub title: String,
    /// Main content as Markdown (or the page's visible text when it has no article shape).
    pub markdown: String,
}

/// Extracts the current page's main content.
pub async fn extract_markdown(page: &Page) -> Result<(Extracted, ActionOutcome), ActionError> {
    let started = Instant::now();
    let html = page.content().await?;
    let url = page.url().await?.unwrap_or_default();
    let base = url.clone();
    // Parsing is CPU work on a possibly large document: off the async threads.
    let article = tokio::task::spawn_blocking(move || {
        let config = Config { text_mode: TextMode::Markdown, ..Config::default() };
        let absolute = base.starts_with("http").then_some(base.as_str());
        Readability::new(html, absolute, Some(config))
            .ok()
            .and_then(|mut r| r.parse().ok())
            .map(|a| (a.title, a.text_content.to_string()))
    })
    .await
    .map_err(|e| BrowserError::Script(format!("content extraction failed: {e}")))?;
    let extracted = match article {
        Some((title, markdown)) if !markdown.trim().is_empty() => Extracted { title, markdown: markdown.trim().to_owned() },
        _ => {
            // No article shape (an app, a form): the visible text is the honest answer.
            let text: String = page
                .evaluate("document.body ? document.body.innerText : ''")
                .await?
                .into_value()
                .unwrap_or_default();
            let title: String = page.evaluate("document.title").await?.into_value().unwrap_or_default();
            Extracted { title, markdown: text.trim().to_owned() }
        }
    };
    let outcome = ActionOutcome {
        action: "extract",
        description: format!("extracted {} characters of content from {url}", extracted.markdown.chars().count()),
        elapsed: started.elapsed(),
    };
    Ok((extracted, outcome))
}
