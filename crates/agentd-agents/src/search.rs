//! `web_search` providers: a SearXNG JSON API (the self-hosted default), Brave Search and
//! Tavily by API key, and, when none is configured, the real browser on a search page.
//! A provider is operator-configured (like the LLM endpoint), so it is called through
//! agentd-egress's operator client, not the egress policy that guards the pages the model
//! chooses to read; `Retry-After`, backoff and error descriptions are agentd-egress's too.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use agentd_browser::Action;
use agentd_egress::{Backoff, ErrorChain, OperatorClient, OperatorConfig, RETRYABLE_STATUSES};
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
        // Only a zero timeout makes the client fail; every search then says why it cannot run.
        let http = |name: &'static str| {
            OperatorClient::new(OperatorConfig { timeout: Some(self.timeout), ..OperatorConfig::default() })
                .map_err(|error| Arc::new(Unusable { name, reason: error.to_string() }) as Arc<dyn SearchProvider>)
        };
        let made = if let Some(url) = &self.searxng_url {
            http("searxng").map(|http| Arc::new(Searxng { url: url.clone(), http }) as Arc<dyn SearchProvider>)
        } else if let Some(key) = &self.brave_api_key {
            http("brave").map(|http| Arc::new(Brave { key: key.clone(), http }) as Arc<dyn SearchProvider>)
        } else if let Some(key) = &self.tavily_api_key {
            http("tavily").map(|http| Arc::new(Tavily { key: key.clone(), http }) as Arc<dyn SearchProvider>)
        } else {
            return Arc::new(BrowserSearch { browsers, page: self.search_page_url.clone() });
        };
        made.unwrap_or_else(|unusable| unusable)
    }
}

/// Attempts per search (a 408, 429, 5xx, a timeout or a failed connection is tried again once).
const ATTEMPTS: u32 = 2;

/// The pause before the second attempt, unless the provider's `Retry-After` says otherwise.
const BACKOFF: Backoff = Backoff::new(Duration::from_millis(500));

/// The longest `Retry-After` a search waits for; a provider asking for longer gets no second
/// attempt (the model hears why now, rather than after a wait within its step).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(5);

/// Sends `request` (rebuilt per attempt), retrying once on a transient failure; the JSON body.
/// `key` is taken out of any error (a provider may quote it back).
async fn json_with_retry(provider: &str, key: Option<&str>, request: impl Fn() -> reqwest::RequestBuilder) -> Result<Value, String> {
    let mut last = String::new();
    for attempt in 1..=ATTEMPTS {
        let mut wait = BACKOFF.wait(attempt);
        match request().send().await {
            Ok(response) if response.status().is_success() => {
                return response
                    .json()
                    .await
                    .map_err(|e| agentd_egress::redact(format!("{provider} answered something that is not JSON: {}", ErrorChain(&e)), key));
            }
            Ok(response) => {
                let status = response.status();
                let asked = agentd_egress::retry_after(response.headers(), SystemTime::now(), Duration::MAX);
                let retry = RETRYABLE_STATUSES.contains(&status.as_u16()) && asked.is_none_or(|asked| asked <= MAX_RETRY_AFTER);
                wait = asked.unwrap_or(wait);
                let body: String = response.text().await.unwrap_or_default().chars().take(200).collect();
                last = agentd_egress::redact(format!("{provider} answered HTTP {status}: {}", body.trim()), key);
                if !retry {
                    break;
                }
            }
            Err(e) => {
                let transient = e.is_timeout() || e.is_connect();
                last = agentd_egress::redact(format!("{provider} could not be reached: {}", ErrorChain(&e)), key);
                if !transient {
                    break;
                }
            }
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep(wait).await;
        }
    }
    Err(last)
}

/// A provider whose client cannot be built: every search says why.
struct Unusable {
    name: &'static str,
    reason: String,
}

#[async_trait]
impl SearchProvider for Unusable {
    fn name(&self) -> &'static str {
        self.name
    }

    async fn search(&self, _query: &str, _limit: usize) -> Result<Vec<SearchHit>, String> {
        Err(format!("the {} search provider cannot be used: {}", self.name, self.reason))
    }
}

/// A SearXNG instance's JSON API.
struct Searxng {
    url: String,
    http: OperatorClient,
}

#[async_trait]
impl SearchProvider for Searxng {
    fn name(&self) -> &'static str {
        "searxng"
    }

    async fn search(&self, query: &str, limit: usize) -> Result<Vec<SearchHit>, String> {
        let body = json_with_retry("SearXNG", None, || self.http.get(&self.url).query(&[("q", query), ("format", "json")])).await?;
        Ok(hits(&body["results"], "url", "title", "content", limit))
    }
}

/// Brave Search's web search API.
struct Brave {
    key: String,
    http: OperatorClient,
}

#[async_trait]
impl SearchProvider for Brave {
    fn name(&self) -> &'static str {
        "brave"
    }

    async fn search(&self, query: &str, limit: usize) -> Result<Vec<SearchHit>, String> {
        let count = limit.clamp(1, 20).to_string();
        let body = json_with_retry("Brave Search", Some(&self.key), || {
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
    http: OperatorClient,
}

#[async_trait]
impl SearchProvider for Tavily {
    fn name(&self) -> &'static str {
        "tavily"
    }

    async fn search(&self, query: &str, limit: usize) -> Result<Vec<SearchHit>, String> {
        let body = serde_json::json!({"query": query, "max_results": limit.clamp(1, 20)});
        let answer = json_with_retry("Tavily", Some(&self.key), || self.http.post("https://api.tavily.com/search").bearer_auth(&self.key).json(&body)).await?;
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

    /// A provider on loopback answering each request with the next of `answers` (status,
    /// extra header lines, body); the number of requests it got.
    async fn provider_on_loopback(answers: Vec<(u16, &'static str, &'static str)>) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/search", listener.local_addr().unwrap());
        let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = count.clone();
        tokio::spawn(async move {
            for (status, headers, body) in answers {
                let Ok((mut stream, _)) = listener.accept().await else { return };
                let mut head = Vec::new();
                let mut buffer = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buffer[..n]),
                    }
                }
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let answer = format!(
                    "HTTP/1.1 {status} X\r\n{headers}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.shutdown().await;
            }
        });
        (url, count)
    }

    fn searxng(url: String) -> Searxng {
        let http = OperatorClient::new(OperatorConfig { timeout: Some(Duration::from_secs(10)), ..OperatorConfig::default() }).unwrap();
        Searxng { url, http }
    }

    #[tokio::test]
    async fn a_retry_after_within_the_limit_is_waited_for_and_a_longer_one_ends_the_search() {
        let ok = r#"{"results": [{"url": "https://a.org", "title": "A", "content": "x"}]}"#;
        let (url, count) = provider_on_loopback(vec![(503, "Retry-After: 0\r\n", "busy"), (200, "", ok)]).await;
        let hits = searxng(url).search("q", 5).await.unwrap();
        assert_eq!((hits.len(), count.load(std::sync::atomic::Ordering::SeqCst)), (1, 2));

        let (url, count) = provider_on_loopback(vec![(429, "Retry-After: 6\r\n", "slow down"), (200, "", ok)]).await;
        let error = searxng(url).search("q", 5).await.unwrap_err();
        assert_eq!(error, "SearXNG answered HTTP 429 Too Many Requests: slow down");
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1, "6 s is past the {MAX_RETRY_AFTER:?} a search waits");

        let (url, count) = provider_on_loopback(vec![(501, "", "no"), (200, "", ok)]).await;
        assert!(searxng(url).search("q", 5).await.is_err());
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1, "501 does not go away: not retried");
    }

    #[tokio::test]
    async fn a_key_quoted_back_is_redacted_and_a_failed_connection_names_only_the_host() {
        let (url, _) = provider_on_loopback(vec![(401, "", "bad token sk-brave-123456")]).await;
        let http = OperatorClient::new(OperatorConfig::default()).unwrap();
        let key = Some("sk-brave-123456");
        let error = json_with_retry("Brave Search", key, || http.get(&url)).await.unwrap_err();
        assert_eq!(error, "Brave Search answered HTTP 401 Unauthorized: bad token <redacted>");

        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = closed.local_addr().unwrap();
        drop(closed);
        let url = format!("http://{address}/search?q=private+question&token=abc");
        let error = json_with_retry("SearXNG", None, || http.get(&url)).await.unwrap_err();
        assert!(error.starts_with(&format!("SearXNG could not be reached: connect to {address}: ")), "{error}");
        assert!(!error.contains("private") && !error.contains("token"), "{error}");
    }

    #[tokio::test]
    async fn a_provider_with_a_zero_timeout_says_why_it_cannot_search() {
        let settings = SearchSettings { searxng_url: Some("http://127.0.0.1:9/search".into()), ..SearchSettings::default() };
        let provider = settings.provider(Arc::new(Browsers::new(agentd_browser::BrowserSettings::default())));
        assert_eq!(provider.name(), "searxng");
        let error = provider.search("q", 5).await.unwrap_err();
        assert!(error.starts_with("the searxng search provider cannot be used: "), "{error}");
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
