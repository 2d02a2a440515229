//! [`Fetcher`]: the GET, its redirects and its limits.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentd_egress::{ClientConfig, EgressClient, EgressError, EgressPolicy, MAX_REDIRECTS, NameLookup, SystemLookup};
use reqwest::header::{ACCEPT, CONTENT_TYPE, LOCATION};
use reqwest::{Response, StatusCode};
use tokio::time::Instant;
use url::Url;

use crate::content_type::{Kind, MediaType};
use crate::convert::{Body, convert};
use crate::{FetchError, FetchLimits, FetchedPage};

/// What the fetcher asks for: readable kinds first.
const ACCEPT_READABLE: &str =
    "text/html,application/xhtml+xml;q=0.9,text/plain;q=0.9,application/json;q=0.9,application/pdf;q=0.8,*/*;q=0.5";

/// The longest a fetch waits for a connection, when its whole limit is longer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Fetches pages through the egress policy, within [`FetchLimits`], as text. Cheap to clone (the
/// connection pool is shared).
#[derive(Clone, Debug)]
pub struct Fetcher {
    client: EgressClient,
    limits: FetchLimits,
}

impl Fetcher {
    /// A fetcher whose connections go through `policy`, names resolved by the system resolver.
    pub fn new(policy: EgressPolicy, limits: FetchLimits) -> Result<Fetcher, FetchError> {
        Fetcher::with_lookup(policy, limits, Arc::new(SystemLookup))
    }

    /// A fetcher whose names are looked up with `lookup` (tests give a table) and checked
    /// against `policy`.
    pub fn with_lookup(
        policy: EgressPolicy,
        limits: FetchLimits,
        lookup: Arc<dyn NameLookup>,
    ) -> Result<Fetcher, FetchError> {
        if limits.total_time.is_zero() {
            return Err(FetchError::Client("the time limit must be more than zero".into()));
        }
        let config = ClientConfig {
            timeout: limits.total_time,
            connect_timeout: limits.total_time.min(CONNECT_TIMEOUT),
            // Followed here, hop by hop, each through `EgressClient::request` (checked like the
            // first URL, and resolved by the checked resolver): that is what lets the page list
            // its redirects, which a client that follows them itself does not tell.
            follow_redirects: false,
            ..ClientConfig::default()
        };
        let client = policy.client_with_lookup(config, lookup).map_err(|e| FetchError::Client(e.to_string()))?;
        Ok(Fetcher { client, limits })
    }

    /// The same fetcher (same connection pool) with other limits.
    pub fn with_limits(&self, limits: FetchLimits) -> Fetcher {
        Fetcher { client: self.client.clone(), limits }
    }

    /// The limits of this fetcher's fetches.
    pub fn limits(&self) -> FetchLimits {
        self.limits
    }

    /// The policy this fetcher's connections go through.
    pub fn policy(&self) -> &EgressPolicy {
        self.client.policy()
    }

    /// GETs `url` and returns it as text (see the crate's documentation for each content type).
    /// Redirects are followed, up to [`MAX_REDIRECTS`], each hop checked by the policy.
    pub async fn fetch(&self, url: &str) -> Result<FetchedPage, FetchError> {
        let deadline = Instant::now() + self.limits.total_time;
        // The host being talked to, for the time-out's message.
        let host = Mutex::new(String::new());
        match tokio::time::timeout_at(deadline, self.fetch_within(url, deadline, &host)).await {
            Ok(result) => result,
            Err(_elapsed) => Err(self.timeout(&host.lock().map(|h| h.clone()).unwrap_or_default())),
        }
    }

    async fn fetch_within(
        &self,
        url: &str,
        deadline: Instant,
        host: &Mutex<String>,
    ) -> Result<FetchedPage, FetchError> {
        let (url, response, redirects) = self.follow_redirects(url, deadline, host).await?;
        let status = response.status().as_u16();
        let host = url.host_str().unwrap_or_default().to_owned();
        let media = MediaType::parse(response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()));
        let declared =
            media.kind().map_err(|()| FetchError::UnsupportedType { content_type: media.essence.clone() })?;
        if declared == Some(Kind::Pdf)
            && response.content_length().is_some_and(|length| length > self.limits.max_body_bytes as u64)
        {
            return Err(FetchError::Decode {
                content_type: media.essence,
                reason: format!(
                    "the PDF is larger than the size limit ({} bytes), and a PDF cannot be read in part",
                    self.limits.max_body_bytes
                ),
            });
        }
        let (bytes, cut) = self.read_body(response, &host).await?;
        let body = Body { bytes, cut, media, declared, url: url.to_string(), host };
        let (max_chars, essence) = (self.limits.max_output_chars, body.media.essence.clone());
        // Parsing a large document is CPU work: off the async threads. The deadline still holds:
        // past it the fetch fails while the conversion finishes on its own.
        let (body, converted) = tokio::task::spawn_blocking(move || {
            let converted = convert(&body, max_chars);
            (body, converted)
        })
        .await
        .map_err(|e| FetchError::Decode { content_type: essence, reason: format!("the reader failed ({e})") })?;
        let converted = converted?;
        Ok(FetchedPage {
            url: body.url,
            status,
            content_type: converted.content_type,
            title: converted.title,
            text: converted.text,
            bytes: body.bytes.len(),
            truncated: body.cut || converted.cut,
            redirects,
            needs_browser: converted.needs_browser,
        })
    }

    /// Sends the GET and follows its redirects: the final URL, its response (status below 400)
    /// and the URLs that redirected.
    async fn follow_redirects(
        &self,
        url: &str,
        deadline: Instant,
        host: &Mutex<String>,
    ) -> Result<(Url, Response, Vec<String>), FetchError> {
        let mut url = self.client.policy().check_url(url).map_err(|e| FetchError::from_egress(e, ""))?;
        let mut redirects = Vec::new();
        loop {
            let current_host = url.host_str().unwrap_or_default().to_owned();
            if let Ok(mut host) = host.lock() {
                host.clone_from(&current_host);
            }
            // `get` checks the URL (every hop, like the first) before the request exists.
            let request = self
                .client
                .get(url.as_str())
                .map_err(|e| FetchError::from_egress(e, &current_host))?
                .header(ACCEPT, ACCEPT_READABLE)
                .timeout(deadline.saturating_duration_since(Instant::now()));
            let response = request.send().await.map_err(|e| self.transport_error(e, &current_host))?;
            let status = response.status();
            if is_redirect(status) {
                let next = next_hop(&url, &response, &current_host)?;
                if redirects.len() >= MAX_REDIRECTS {
                    return Err(FetchError::TooManyRedirects { host: current_host, limit: MAX_REDIRECTS });
                }
                tracing::debug!(from = %current_host, to = next.host_str().unwrap_or_default(), %status, "fetch: redirect");
                redirects.push(std::mem::replace(&mut url, next).into());
                continue;
            }
            if status.as_u16() >= 400 {
                return Err(FetchError::Status { host: current_host, status: status.as_u16() });
            }
            return Ok((url, response, redirects));
        }
    }

    /// The body, up to the size limit: reading stops there and nothing more is buffered.
    async fn read_body(&self, mut response: Response, host: &str) -> Result<(Vec<u8>, bool), FetchError> {
        let max = self.limits.max_body_bytes;
        let expected = response.content_length().map_or(64 * 1024, |length| length.min(max as u64) as usize);
        let mut body = Vec::with_capacity(expected.min(max));
        while let Some(chunk) = response.chunk().await.map_err(|e| self.transport_error(e, host))? {
            let room = max - body.len();
            if chunk.len() > room {
                body.extend_from_slice(&chunk[..room]);
                tracing::debug!(host, max, "fetch: body cut at the size limit");
                return Ok((body, true));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((body, false))
    }

    fn timeout(&self, host: &str) -> FetchError {
        FetchError::Timeout { host: host.to_owned(), limit: self.limits.total_time }
    }

    /// A reqwest error as a fetch error: the policy's refusal if that is what it carries, else
    /// by kind, with the innermost cause as the reason (never the URL).
    fn transport_error(&self, error: reqwest::Error, host: &str) -> FetchError {
        if let Some(egress) = EgressError::find_in(&error) {
            return FetchError::from_egress(egress.clone(), host);
        }
        if error.is_timeout() {
            return self.timeout(host);
        }
        let error = error.without_url();
        let mut reason = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            reason = cause.to_string();
            source = cause.source();
        }
        let host = host.to_owned();
        if error.is_connect() { FetchError::Connect { host, reason } } else { FetchError::Transfer { host, reason } }
    }
}

fn is_redirect(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

/// Where a redirect points, resolved against the URL that answered it.
fn next_hop(from: &Url, response: &Response, host: &str) -> Result<Url, FetchError> {
    let bad = |reason: &str| FetchError::BadRedirect { host: host.to_owned(), reason: reason.to_owned() };
    let location = response.headers().get(LOCATION).ok_or_else(|| bad("no Location header"))?;
    let location = location.to_str().map_err(|_| bad("the Location is not text"))?;
    from.join(location.trim()).map_err(|e| bad(&e.to_string()))
}
