//! Who is calling: API-key authentication and per-key rate limits, as one middleware that
//! runs before every `/v1` handler and leaves a [`Caller`] in the request; [`admit`], the one
//! way any surface admits a caller; and [`QUERY_KEY_ROUTES`], the one rule for keys in URLs.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use agentd_domain::{ApiKeyId, ProjectId};
use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

/// The authenticated caller of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// The project the key acts for; every lookup is scoped to it.
    pub project_id: ProjectId,
    /// The key used.
    pub key_id: ApiKeyId,
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .copied()
            .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "an API key is required"))
    }
}

/// Requests allowed per window; `None` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimits {
    /// Per minute.
    pub per_minute: Option<u64>,
    /// Per day.
    pub per_day: Option<u64>,
}

/// The hex SHA-256 under which a key is stored.
pub fn hash_key(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The key presented: `Authorization: Bearer <key>`, or `X-API-Key: <key>`.
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(auth) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let auth = auth.trim();
        let token = auth
            .strip_prefix("Bearer ")
            .or_else(|| auth.strip_prefix("bearer "))
            .unwrap_or(auth)
            .trim();
        if !token.is_empty() {
            return Some(token);
        }
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// A route that may take its API key in the query string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryKeyRoute {
    /// The method it streams on.
    pub method: &'static str,
    /// The route exactly as it is registered (what axum's `MatchedPath` gives).
    pub route: &'static str,
    /// The query parameters that may carry the key (the first present wins).
    pub names: &'static [&'static str],
}

/// The only routes where an API key may ride in the URL: WebSockets and Server-Sent Event
/// streams, whose browser clients (`WebSocket`, `EventSource`) cannot set headers — and the
/// Assisfy SDK's answers to its SSE stream, which it sends the same way (SPECS §1.3). A URL
/// lands in access logs, proxies and browser histories, so anywhere else a key in the query
/// is ignored (and the request is refused unless a header carries one). Matched by the route
/// the request was served by and its method, never by the path's shape.
pub const QUERY_KEY_ROUTES: &[QueryKeyRoute] = &[
    // Native: a session's WebSocket.
    QueryKeyRoute { method: "GET", route: "/v1/sessions/{id}/ws", names: &["api_key"] },
    // Assisfy: the session's WebSocket and SSE stream, and the SSE mode's answers.
    QueryKeyRoute { method: "GET", route: "/v1/connect", names: &["apiKey", "api_key"] },
    QueryKeyRoute { method: "GET", route: "/events/v1/connect", names: &["apiKey", "api_key"] },
    QueryKeyRoute { method: "POST", route: "/events/v1/egress", names: &["apiKey", "api_key"] },
    // Autessa: the agents and tools sockets.
    QueryKeyRoute { method: "GET", route: "/ws/clients/agents/execute", names: &["authorization"] },
    QueryKeyRoute { method: "GET", route: "/ws/clients/tools/execute", names: &["authorization"] },
];

/// The key in the query string of a request served by `route` with `method`, when that route
/// is one of [`QUERY_KEY_ROUTES`]; `None` anywhere else, whatever the query holds.
pub fn query_key(method: &Method, route: Option<&str>, query: Option<&str>) -> Option<String> {
    let route = route?;
    let allowed = QUERY_KEY_ROUTES.iter().find(|r| r.route == route && r.method == method.as_str())?;
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query?.as_bytes()).into_owned().collect();
    allowed.names.iter().find_map(|name| {
        pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim().to_owned()).filter(|v| !v.is_empty())
    })
}

/// The key a request carries in its query string, by [`query_key`]'s rule (an extractor for
/// the streaming handlers that admit their own callers).
#[derive(Debug, Clone, Default)]
pub struct QueryKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for QueryKey {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let route = parts.extensions.get::<MatchedPath>().map(MatchedPath::as_str);
        Ok(QueryKey(query_key(&parts.method, route, parts.uri.query())))
    }
}

/// Middleware: authenticates, applies the key's rate limits, adds the limit headers.
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let secret = presented_key(req.headers())
        .map(str::to_owned)
        .or_else(|| query_key(req.method(), req.extensions().get::<MatchedPath>().map(MatchedPath::as_str), req.uri().query()));
    let (caller, usage) = match admit(&state, secret).await {
        Ok(admitted) => admitted,
        Err(refusal) => return answer_unread(req, refusal.into_response()).await,
    };
    req.extensions_mut().insert(caller);
    let mut response = next.run(req).await;
    usage.write_headers(response.headers_mut());
    response
}

/// Answers a request refused before its body was read, reading (and dropping) a small body
/// first: hyper cannot keep a connection whose request body is left unread, and a client that
/// sent its next request on it meanwhile would see the connection closed under it ("server
/// disconnected"). A body over 64 KiB, or slower than a second, is left, and the connection
/// closes.
pub async fn answer_unread(req: Request, response: Response) -> Response {
    const SMALL: usize = 64 * 1024;
    let declared = req.headers().get(axum::http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n > 0 && n <= SMALL) {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), axum::body::to_bytes(req.into_body(), SMALL)).await;
    }
    response
}

/// A request refused by [`admit`]: the error, and where the key's limits stand (headers for
/// a rate-limited answer).
pub struct Refusal {
    /// Why.
    pub error: ApiError,
    usage: Option<LimitUsage>,
}

impl Refusal {
    fn new(error: ApiError) -> Self {
        Self { error, usage: None }
    }

    /// Where the key's limits stand, when a key was known and counted.
    pub fn usage(&self) -> Option<&LimitUsage> {
        self.usage.as_ref()
    }

    /// Adds the rate-limit headers, if any, to `response`.
    pub fn write_headers(&self, response: &mut Response) {
        if let Some(usage) = &self.usage {
            usage.write_headers(response.headers_mut());
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let usage = self.usage;
        let mut response = self.error.into_response();
        if let Some(usage) = usage {
            usage.write_headers(response.headers_mut());
        }
        response
    }
}

/// Checks the presented key and counts the request against its limits: the one way every
/// API surface (native, compatible) admits a caller.
pub async fn admit(state: &AppState, secret: Option<String>) -> Result<(Caller, LimitUsage), Refusal> {
    let Some(secret) = secret else {
        return Err(Refusal::new(ApiError::new(
            ErrorCode::Unauthorized,
            "an API key is required: send `Authorization: Bearer <key>` or `X-API-Key: <key>`",
        )));
    };
    let key = match state.store().api_key_by_hash(&hash_key(&secret)).await {
        Ok(Some(key)) => key,
        Ok(None) => return Err(Refusal::new(ApiError::new(ErrorCode::Unauthorized, "the API key is invalid or revoked"))),
        Err(error) => return Err(Refusal::new(ApiError::internal(error))),
    };
    let tier = state.config.tiers.get(&key.tier).copied().unwrap_or_default();
    let limits = RateLimits {
        per_minute: key.per_minute.or(tier.per_minute),
        per_day: key.per_day.or(tier.per_day),
    };
    match state.limiter.check(key.id, limits) {
        Ok(usage) => Ok((Caller { project_id: key.project_id, key_id: key.id }, usage)),
        Err(limited) => {
            let mut error = ApiError::new(
                ErrorCode::RateLimited,
                format!("rate limit exceeded: at most {} requests per {}", limited.limit, limited.window),
            );
            error.retry_after = Some(limited.retry_after.as_secs().max(1));
            Err(Refusal { error, usage: Some(limited.usage) })
        }
    }
}

/// Fixed windows per key, each starting at the key's first request in it.
#[derive(Default)]
pub struct RateLimiter {
    windows: Mutex<HashMap<ApiKeyId, [Window; 2]>>,
}

#[derive(Clone, Copy)]
struct Window {
    start: Option<Instant>,
    count: u64,
}

/// Where a key stands after a request.
#[derive(Debug, Clone, Copy, Default)]
pub struct LimitUsage {
    minute: Option<(u64, u64)>,
    day: Option<(u64, u64)>,
}

/// What a rate-limit header says for a limit the key does not have (an unlimited key, a
/// window without a cap, or no key at all on a refusal): the largest value, so clients that
/// read the headers never hold back. Adapters whose vendor promises the headers on every
/// answer use it.
pub const NO_LIMIT: u32 = u32::MAX;

impl LimitUsage {
    /// Writes the four `X-RateLimit-{Limit,Remaining}-{Minute,Day}` headers whatever the key's
    /// limits: a window without a cap reads as [`NO_LIMIT`]. `None`: no key is known.
    pub fn write_all_headers(usage: Option<&LimitUsage>, headers: &mut HeaderMap) {
        let usage = usage.copied().unwrap_or_default();
        let unlimited = (u64::from(NO_LIMIT), u64::from(NO_LIMIT));
        let full = LimitUsage { minute: Some(usage.minute.unwrap_or(unlimited)), day: Some(usage.day.unwrap_or(unlimited)) };
        full.write_headers(headers);
    }

    /// Writes the `X-RateLimit-*` headers.
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        let mut put = |name: &'static str, v: u64| {
            headers.insert(name, HeaderValue::from(v));
        };
        if let Some((limit, remaining)) = self.minute {
            put("x-ratelimit-limit-minute", limit);
            put("x-ratelimit-remaining-minute", remaining);
        }
        if let Some((limit, remaining)) = self.day {
            put("x-ratelimit-limit-day", limit);
            put("x-ratelimit-remaining-day", remaining);
        }
    }
}

/// A refused request: which limit, and when to retry.
pub struct Limited {
    limit: u64,
    window: &'static str,
    retry_after: Duration,
    usage: LimitUsage,
}

const WINDOWS: [(Duration, &str); 2] = [
    (Duration::from_secs(60), "minute"),
    (Duration::from_secs(86_400), "day"),
];

impl RateLimiter {
    /// Counts one request against `limits`, or refuses it without counting.
    pub fn check(&self, key: ApiKeyId, limits: RateLimits) -> Result<LimitUsage, Limited> {
        let caps = [limits.per_minute, limits.per_day];
        if caps.iter().all(Option::is_none) {
            return Ok(LimitUsage::default());
        }
        let now = Instant::now();
        let mut all = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let windows = all.entry(key).or_insert([Window { start: None, count: 0 }; 2]);
        for (window, (length, _)) in windows.iter_mut().zip(WINDOWS) {
            if window.start.is_none_or(|start| now >= start + length) {
                *window = Window { start: Some(now), count: 0 };
            }
        }
        let usage = |windows: &[Window; 2]| {
            let entry = |i: usize| caps[i].map(|cap| (cap, cap.saturating_sub(windows[i].count)));
            LimitUsage {
                minute: entry(0),
                day: entry(1),
            }
        };
        for (i, (length, name)) in WINDOWS.iter().enumerate() {
            if let Some(cap) = caps[i]
                && windows[i].count >= cap
            {
                let start = windows[i].start.unwrap_or(now);
                return Err(Limited {
                    limit: cap,
                    window: name,
                    retry_after: (start + *length).saturating_duration_since(now),
                    usage: usage(windows),
                });
            }
        }
        for window in windows.iter_mut() {
            window.count += 1;
        }
        Ok(usage(windows))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_key_counts_only_on_a_streaming_route_by_its_exact_route_and_method() {
        let get = Method::GET;
        let key = |method: &Method, route: &str, query: &str| query_key(method, Some(route), Some(query));
        assert_eq!(key(&get, "/v1/sessions/{id}/ws", "after=3&api_key=k1"), Some("k1".into()));
        assert_eq!(key(&get, "/v1/connect", "sessionId=s&apiKey=k2"), Some("k2".into()));
        assert_eq!(key(&get, "/v1/connect", "api_key=k3"), Some("k3".into()));
        assert_eq!(key(&Method::POST, "/events/v1/egress", "apiKey=k4"), Some("k4".into()));
        assert_eq!(key(&get, "/ws/clients/tools/execute", "authorization=k5&resourceId=1"), Some("k5".into()));
        // Another parameter name, another method, another route (whatever its path looks
        // like), or no route at all: no key.
        assert_eq!(key(&get, "/ws/clients/tools/execute", "api_key=k"), None);
        assert_eq!(key(&Method::DELETE, "/v1/sessions/{id}/ws", "api_key=k"), None);
        assert_eq!(key(&Method::DELETE, "/v1/tables/{id}", "api_key=k"), None);
        assert_eq!(key(&get, "/api/sessions", "api_key=k"), None);
        assert_eq!(query_key(&get, None, Some("api_key=k")), None);
        assert_eq!(key(&get, "/v1/sessions/{id}/ws", "api_key=%20"), None, "blank is none");
    }
}
