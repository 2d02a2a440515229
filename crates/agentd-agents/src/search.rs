//! `web_search` providers: a SearXNG JSON API (the self-hosted default), Brave Search and
//! Tavily by API key, and, when none is configured, the real browser on a search page.
//! A provider is operator-configured (like the LLM endpoint), so it is called directly, not
//! through the egress policy that guards the pages the model chooses to read.

use std::sync::Arc;
use std::time::Duration;

use agentd_browser::Action;
use async_trait::async_trait;
use serde_json::Value;

use crate::browsers::Browsers;

/// One search result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchHit {
    /// Where it is.
    pub url: String,
    /// Its title.
    pub title: String,
    /// The provider's excerpt.
    pub snippet: String,
}

/// A web search service.
#[async_trait]
pub trait SearchProvider: Send + Sync {
    /// The provider's name, for events and errors.
    fn name(&self) -> &'static str;
    /// Up to `limit` results for `query`, or why not (a sentence naming the provider).
    async fn search(&self, query: &str, limit: usize) -> Result<Vec<SearchHit>, String>;
}

/// Which provider to use, from the configuration (`Debug` hides the keys).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SearchSettings {
    /// A SearXNG `/search` URL (queried with `q` and `format=json`).
    pub searxng_url: Option<String>,
    /// A Brave Search API key.
    pub brave_api_key: Option<String>,
    /// A Tavily API key.
    pub tavily_api_key: Option<String>,
    /// The browser fallback's search page, `{query}` standing for the URL-encoded query.
    pub search_page_url: String,
    /// Bound on one provider call.
    pub timeout: Duration,
}

impl std::fmt::Debug for SearchSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |key: &Option<String>| key.as_ref().map(|_| "…");
        f.debug_struct("SearchSettings")
            .field("searxng_url", &self.searxng_url)
            .field("brave_api_key", &hidden(&self.brave_api_key))
            .field("tavily_api_key", &hidden(&self.tavily_api_key))
            .field("search_page_url", &self.search_page_url)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// The default search page of the browser fallback (DuckDuckGo's HTML page: no script needed).
pub const DEFAULT_SEARCH_PAGE: &str = "https://html.duckduckgo.com/html/?q={query}";

impl SearchSettings {
    /// The provider these settings choose: SearXNG, else Brave, else Tavily, else the browser.
    pub fn provider(&self, browsers: Arc<Browsers>) -> Arc<dyn SearchProvider> {
        let http = || {
            // reqwest builds TLS with rustls' ring provider, which must be installed first.
            let _ = rustls::crypto::ring::default_provider().install_default();
            reqwest::Client::builder().timeout(self.timeout).build().unwrap_or_default()
        };
        if let Some(url) = &self.searxng_url {
            return Arc::new(Searxng { url: url.clone(), http: http() });
        }
        if let Some(key) = &self.brave_api_key {
            return Arc::new(Brave { key: key.clone(), http: http() });
        }
        if let Some(key) = &self.tavily_api_key {
            return Arc::new(Tavily { key: key.clone(), http: http() });
        }
        Arc::new(BrowserSearch { browsers, page: self.search_page_url.clone() })
    }
}

/// Attempts per search (a 429, a 5xx or a timeout is tried again once, after a pause).
const ATTEMPTS: u32 = 2;

/// Sends `request` (rebuilt per attempt), retrying once on 429/5xx/timeouts; the JSON body.
async fn json_with_retry(provider: &str, request: impl Fn() -> reqwest::RequestBuilder) -> Result<Value, String> {
    let mut last = String::new();
    for attempt in 1..=ATTEMPTS {
        match request().send().await {
            Ok(response) if response.status().is_success() => {
                return response.json().await.map_err(|e| format!("{provider} answered something that is not JSON: {}", e.without_url()));
            }
            Ok(response) => {
                let status = response.status();
                let retry = status.as_u16() == 429 || status.is_server_error();
                let body: String = response.text().await.unwrap_or_default().chars().take(200).collect();
                last = format!("{provider} answered HTTP {status}: {}", body.trim());
                if !retry {
                    break;
                }
            }
            Err(e) => {
                let transient = e.is_timeout() || e.is_connect();
                last = format!("{provider} could not be reached: {}", e.without_url());
                if !transient {
                    break;
                }
            }
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    Err(last)
}

/// A SearXNG instance's JSON API.
struct Searxng {
    url: String,
    http: reqwest::Client,
}

#[async_trait]
impl SearchProvider for Searxng {
    fn name(&self) -> &'static str {
        "searxng"
    }

    async fn search(&self, query: &str, limit: usize) -> Result<Vec<SearchHit>, String> {
        let body = json_with_retry("SearXNG", || self.http.get(&self.url).query(&[("q", query), ("format", "json")])).await?;
        Ok(hits(&body["results"], "url", "title", "content", limit))
    }
}

/// Brave Search's web search API.
struct Brave {
    key: String,
    http: reqwest::Client,
}

#[async_trait]
impl SearchProvider for Brave {
    fn name(&self) -> &'static str {
        "brave"
    }

    async fn search(&self, query: &str, limit: usize) -> Result<Vec<SearchHit>, String> {
        let count = limit.clamp(1, 20).to_string();
        let body = json_with_retry("Brave Search", || {
            self.http
                .get("https://api.search.brave.com/res/v1/web/search")
                .header("X-Subscription-Token", &self.key)
                .header("Accept", "application/json")
                .query(&[("q", query), ("count", count.as_str())])
        })
        .await?;
        Ok(hits(&body["web"]["results"], "url", "title", "description", limit))
    }
}

/// Tavily's search API.
struct Tavily {
    key: String,
    http: reqwest::Client,
}

#[async_trait]
impl SearchProvider for Tavily {
    fn name(&self) -> &'static str {
        "tavily"
    }

    async fn search(&self, query: &str, limit: usize) -> Result<Vec<SearchHit>, String> {
        let body = serde_json::json!({"query": query, "max_results": limit.clamp(1, 20)});
        let answer = json_with_retry("Tavily", || self.http.post("https://api.tavily.com/search").bearer_auth(&self.key).json(&body)).await?;
        Ok(hits(&answer["results"], "url", "title", "content", limit))
    }
}

/// Reads `[{url_key, title_key, snippet_key}, ...]`.
fn hits(results: &Value, url_key: &str, title_key: &str, snippet_key: &str, limit: usize) -> Vec<SearchHit> {
    results
        .as_array()
        .map(|results| {
            results
                .iter()
                .filter_map(|r| {
                    let url = r[url_key].as_str()?.to_owned();
                    url.starts_with("http").then(|| SearchHit {
                        url,
                        title: r[title_key].as_str().unwrap_or_default().trim().to_owned(),
                        snippet: r[snippet_key].as_str().unwrap_or_default().trim().chars().take(400).collect(),
                    })
                })
                .take(limit)
                .collect()
        })
        .unwrap_or_default()
}

/// The real browser on a search page: the page's result links, in order.
struct BrowserSearch {
    browsers: Arc<Browsers>,
    page: String,
}

#[async_trait]
impl SearchProvider for BrowserSearch {
    fn name(&self) -> &'static str {
        "browser"
    }

    async fn search(&self, query: &str, limit: usize) -> Result<Vec<SearchHit>, String> {
        let encoded: String = form_urlencoded::byte_serialize(query.as_bytes()).collect();
        let url = self.page.replace("{query}", &encoded);
        let pool = self.browsers.pool().await.map_err(|e| format!("the browser search could not start a browser: {e}"))?;
        let mut session = pool
            .lease(agentd_browser::Viewport { width: 1280, height: 900 })
            .await
            .map_err(|e| format!("the browser search could not open a page: {e}"))?;
        let result = async {
            session.act(&Action::Navigate { url: url.clone() }).await.map_err(|e| format!("the search page {url} did not open: {e}"))?;
            let state = session.observe().await.map_err(|e| format!("the search page could not be read: {e}"))?;
            let search_host = url::Url::parse(&url).ok().and_then(|u| u.host_str().map(str::to_owned));
            let mut seen = std::collections::HashSet::new();
            let hits: Vec<SearchHit> = state
                .elements
                .iter()
                .filter_map(|e| {
                    let href = e.href.clone()?;
                    let target = result_target(&href)?;
                    let host = url::Url::parse(&target).ok()?.host_str()?.to_owned();
                    let title = e.name.trim().to_owned();
                    (Some(&host) != search_host.as_ref() && title.chars().count() > 3 && seen.insert(target.clone()))
                        .then(|| SearchHit { url: target, title, snippet: String::new() })
                })
                .take(limit)
                .collect();
            Ok::<_, String>(hits)
        }
        .await;
        let _ = session.close().await;
        result
    }
}

/// The page a search result link leads to (search pages often wrap it in a redirect link
/// carrying it in `uddg=` or `url=`/`q=`).
fn result_target(href: &str) -> Option<String> {
    let url = url::Url::parse(href).ok()?;
    for (key, value) in url.query_pairs() {
        if matches!(key.as_ref(), "uddg" | "url" | "q") && value.starts_with("http") {
            return Some(value.into_owned());
        }
    }
    matches!(url.scheme(), "http" | "https").then(|| href.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_links_are_unwrapped() {
        assert_eq!(
            result_target("https://duckduckgo.com/l/?uddg=https%3A%2F%2Fexample.org%2Fa&rut=x").as_deref(),
            Some("https://example.org/a")
        );
        assert_eq!(result_target("https://example.org/b").as_deref(), Some("https://example.org/b"));
        assert_eq!(result_target("javascript:void(0)"), None);
    }

    #[test]
    fn provider_results_are_read_and_bounded() {
        let body = serde_json::json!([{"url": "https://a.org", "title": " A ", "content": "x"}, {"url": "ftp://b"}, {"url": "https://c.org"}]);
        let read = hits(&body, "url", "title", "content", 5);
        assert_eq!(read.len(), 2);
        assert_eq!(read[0], SearchHit { url: "https://a.org".into(), title: "A".into(), snippet: "x".into() });
        assert_eq!(hits(&body, "url", "title", "content", 1).len(), 1);
    }
}
