//! [`Llm`]: one configured provider, and the HTTP around a call (attempts, time limits, retries,
//! body limits, error bodies, usage and cost).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use agentd_egress::{Backoff, OperatorClient, OperatorConfig, error_chain};
use bytes::Bytes;
use eventsource_stream::{EventStreamError, Eventsource};
use futures::StreamExt;
use reqwest::header::{self, HeaderMap, HeaderValue};
use serde_json::Value;
use tracing::{Instrument, debug};

use crate::chat::{Answer, ChatRequest, ChatResponse, TokenUsage};
use crate::error::LlmError;
use crate::settings::{LlmSettings, PriceTable, ProviderKind};
use crate::{anthropic, openai};

/// The largest answer read from a provider, streamed or not (a runaway or hostile server cannot
/// exhaust memory).
pub const MAX_RESPONSE_BYTES: usize = 16 << 20;

/// How much of an error body is read, and how much of its message is kept.
const MAX_ERROR_BODY_BYTES: usize = 64 << 10;
const MAX_ERROR_MESSAGE_CHARS: usize = 1000;

/// The longest a provider's `Retry-After` makes a call wait before its next attempt.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// A configured LLM provider. Cheap to clone (the clones share one connection pool); `Debug`
/// never prints the API key.
#[derive(Clone)]
pub struct Llm {
    inner: Arc<Inner>,
}

struct Inner {
    settings: LlmSettings,
    client: OperatorClient,
    /// The base URL that endpoint paths are joined to (Anthropic's without its `/v1`).
    root: String,
    endpoint: String,
    headers: HeaderMap,
    prices: PriceTable,
    /// OpenAI itself wants `max_completion_tokens`; compatible servers know `max_tokens`.
    max_tokens_field: &'static str,
}

impl fmt::Debug for Llm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.inner.settings;
        f.debug_struct("Llm")
            .field("provider", &s.provider)
            .field("endpoint", &self.inner.endpoint)
            .field("model", &s.model)
            .field("api_key", &s.api_key.as_ref().map(|_| "<redacted>"))
            .field("timeout", &s.timeout)
            .field("max_retries", &s.max_retries)
            .finish()
    }
}

/// A failed attempt: the error, the wait the server asked for, and whether text already went to
/// the caller (a streamed call is never retried after that: the caller would see it twice).
struct Failure {
    error: LlmError,
    retry_after: Option<Duration>,
    emitted: bool,
}

impl From<LlmError> for Failure {
    fn from(error: LlmError) -> Self {
        Failure { error, retry_after: None, emitted: false }
    }
}

/// A streamed body's read error.
pub(crate) enum ReadError {
    Transport(reqwest::Error),
    TooLarge,
}

impl Llm {
    /// Checks the settings and prepares the HTTP client (no request is made).
    pub fn new(settings: LlmSettings) -> Result<Llm, LlmError> {
        if settings.model.trim().is_empty() {
            return Err(LlmError::Config("no model is configured".into()));
        }
        if settings.timeout.is_zero() {
            return Err(LlmError::Config("the timeout must be more than zero".into()));
        }
        let base = reqwest::Url::parse(settings.base_url.trim())
            .map_err(|e| LlmError::Config(format!("the base URL {:?} is not a URL: {e}", settings.base_url)))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(LlmError::Config(format!("the base URL {:?} is not http or https", settings.base_url)));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(LlmError::Config(format!("the base URL {:?} must not have a query or a fragment", settings.base_url)));
        }
        let base_text = base.as_str().trim_end_matches('/');
        let (root, endpoint) = match settings.provider {
            ProviderKind::OpenAi => (base_text.to_owned(), format!("{base_text}/chat/completions")),
            // Accept the base with or without the version path.
            ProviderKind::Anthropic => {
                let root = base_text.strip_suffix("/v1").unwrap_or(base_text).to_owned();
                let endpoint = format!("{root}/v1/messages");
                (root, endpoint)
            }
        };
        let max_tokens_field =
            if base.host_str() == Some("api.openai.com") { "max_completion_tokens" } else { "max_tokens" };
        let headers = request_headers(&settings)?;
        let client = operator_client(settings.timeout).map_err(|e| LlmError::Config(e.to_string()))?;
        let prices = PriceTable::new(&settings.prices);
        Ok(Llm { inner: Arc::new(Inner { settings, client, root, endpoint, headers, prices, max_tokens_field }) })
    }

    /// Which protocol the provider speaks.
    pub fn provider(&self) -> ProviderKind {
        self.inner.settings.provider
    }

    /// The model used when a request names none.
    pub fn default_model(&self) -> &str {
        &self.inner.settings.model
    }

    /// What `usage` costs on `model` in US dollars (0 for a model without a price).
    pub fn cost(&self, model: &str, usage: &TokenUsage) -> f64 {
        self.inner.prices.cost(model, usage)
    }

    /// Whether the price table knows `model`.
    pub(crate) fn has_price(&self, model: &str) -> bool {
        self.inner.prices.lookup(model).is_some()
    }

    /// Posts `body` to `path` (joined to the base URL) with `extra` headers beside the usual
    /// ones, and reads the whole answer, retrying transient failures like [`Llm::chat`]: the
    /// answer's bytes and the attempts made.
    pub(crate) async fn post_json(&self, path: &str, extra: &[(&'static str, &'static str)], body: &Value) -> Result<(Vec<u8>, u32), LlmError> {
        let settings = &self.inner.settings;
        let endpoint = format!("{}{path}", self.inner.root);
        let mut headers = self.inner.headers.clone();
        for (name, value) in extra {
            headers.insert(*name, HeaderValue::from_static(value));
        }
        let body = bytes_of(body)?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let outcome = tokio::time::timeout(settings.timeout, async {
                let response = self.send_to(&endpoint, &headers, &body, false).await?;
                self.read_answer(response).await
            })
            .await
            .unwrap_or_else(|_| Err(Failure::from(LlmError::Timeout)));
            match outcome {
                Ok(bytes) => return Ok((bytes, attempt)),
                Err(failure) if failure.error.is_retryable() && attempt <= settings.max_retries => {
                    let wait = failure.retry_after.unwrap_or_else(|| Backoff::new(settings.backoff_base).wait(attempt));
                    debug!(error = %failure.error, wait_ms = wait.as_millis() as u64, path, "LLM call retried");
                    tokio::time::sleep(wait).await;
                }
                Err(failure) => return Err(failure.error),
            }
        }
    }

    /// Sends `request` and waits for the whole answer, retrying transient failures.
    pub async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        self.call(request, None).await
    }

    /// Streams: calls `on_text` with each text delta as it arrives; returns the same aggregated
    /// [`ChatResponse`] as [`Llm::chat`] (tool-call deltas reassembled, usage included).
    ///
    /// A failure before any text arrived is retried like in [`Llm::chat`]; once text went to
    /// `on_text` it is not (the caller would see the text twice).
    pub async fn chat_streaming(
        &self,
        request: &ChatRequest,
        on_text: &mut (dyn FnMut(&str) + Send),
    ) -> Result<ChatResponse, LlmError> {
        self.call(request, Some(on_text)).await
    }

    async fn call(
        &self,
        request: &ChatRequest,
        mut on_text: Option<&mut (dyn FnMut(&str) + Send)>,
    ) -> Result<ChatResponse, LlmError> {
        let settings = &self.inner.settings;
        let model = request.model.as_deref().filter(|m| !m.trim().is_empty()).unwrap_or(&settings.model);
        let stream = on_text.is_some();
        let body = match settings.provider {
            ProviderKind::OpenAi => openai::request_body(request, model, stream, self.inner.max_tokens_field),
            ProviderKind::Anthropic => anthropic::request_body(request, model, stream),
        };
        let body = bytes_of(&body)?;
        let span = tracing::debug_span!(
            "llm_chat",
            provider = settings.provider.as_str(),
            model,
            stream,
            request_bytes = body.len(),
            attempts = tracing::field::Empty,
            input_tokens = tracing::field::Empty,
            output_tokens = tracing::field::Empty,
            latency_ms = tracing::field::Empty,
        );
        async move {
            let started = Instant::now();
            let mut attempt = 0;
            loop {
                attempt += 1;
                let outcome = match on_text.as_deref_mut() {
                    None => self.attempt(request, &body).await,
                    Some(on_text) => self.attempt_streaming(request, &body, on_text).await,
                };
                let span = tracing::Span::current();
                span.record("attempts", attempt);
                span.record("latency_ms", started.elapsed().as_millis() as u64);
                match outcome {
                    Ok(answer) => {
                        let response = self.response(model, answer, attempt);
                        span.record("input_tokens", response.usage.input_tokens);
                        span.record("output_tokens", response.usage.output_tokens);
                        debug!(cost_usd = response.cost_usd, finish_reason = response.finish_reason.as_deref(), "LLM call done");
                        return Ok(response);
                    }
                    Err(failure) => {
                        let retry = failure.error.is_retryable() && !failure.emitted && attempt <= settings.max_retries;
                        if !retry {
                            debug!(error = %failure.error, "LLM call failed");
                            return Err(failure.error);
                        }
                        let wait = failure.retry_after.unwrap_or_else(|| Backoff::new(settings.backoff_base).wait(attempt));
                        debug!(error = %failure.error, wait_ms = wait.as_millis() as u64, "LLM call retried");
                        tokio::time::sleep(wait).await;
                    }
                }
            }
        }
        .instrument(span)
        .await
    }

    fn response(&self, requested_model: &str, answer: Answer, attempts: u32) -> ChatResponse {
        let model = answer.model.unwrap_or_else(|| requested_model.to_owned());
        // The answering model's own name is the most precise; fall back on the name the prices
        // were configured for when it matches nothing (a server reporting an alias).
        let prices = &self.inner.prices;
        let priced = if prices.lookup(&model).is_some() { model.as_str() } else { requested_model };
        let cost_usd = prices.cost(priced, &answer.usage);
        ChatResponse {
            text: answer.text,
            tool_calls: answer.tool_calls,
            usage: answer.usage,
            cost_usd,
            model,
            finish_reason: answer.finish_reason,
            attempts,
        }
    }

    fn schema_tool<'r>(&self, request: &'r ChatRequest) -> Option<&'r str> {
        request.output_schema.as_ref().map(|s| s.name.as_str())
    }

    async fn send(&self, body: &Bytes, stream: bool) -> Result<reqwest::Response, Failure> {
        self.send_to(&self.inner.endpoint, &self.inner.headers, body, stream).await
    }

    async fn send_to(&self, endpoint: &str, headers: &HeaderMap, body: &Bytes, stream: bool) -> Result<reqwest::Response, Failure> {
        let accept = if stream { "text/event-stream" } else { "application/json" };
        let response = self
            .inner
            .client
            .post(endpoint)
            .headers(headers.clone())
            .header(header::ACCEPT, accept)
            // A cheap clone of one buffer: a retried request is not copied again.
            .body(body.clone())
            .send()
            .await
            .map_err(|e| self.transport_error(&e))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let retry_after = agentd_egress::retry_after(response.headers(), SystemTime::now(), MAX_RETRY_AFTER);
        let body = read_limited(response, MAX_ERROR_BODY_BYTES).await.unwrap_or_default();
        let message = self.redact(error_message(&body).unwrap_or_else(|| {
            status.canonical_reason().map_or_else(|| format!("HTTP {}", status.as_u16()), str::to_owned)
        }));
        Err(Failure { error: LlmError::Http { status: status.as_u16(), message }, retry_after, emitted: false })
    }

    /// A whole (non-streamed) answer, at most [`MAX_RESPONSE_BYTES`].
    async fn read_answer(&self, response: reqwest::Response) -> Result<Vec<u8>, Failure> {
        read_limited(response, MAX_RESPONSE_BYTES).await.map_err(|e| match e {
            ReadError::Transport(e) => Failure::from(self.transport_error(&e)),
            ReadError::TooLarge => Failure::from(too_large()),
        })
    }

    /// One attempt waiting for the whole answer, all within the timeout.
    async fn attempt(&self, request: &ChatRequest, body: &Bytes) -> Result<Answer, Failure> {
        let timeout = self.inner.settings.timeout;
        let bytes = tokio::time::timeout(timeout, async {
            let response = self.send(body, false).await?;
            self.read_answer(response).await
        })
        .await
        .map_err(|_| Failure::from(LlmError::Timeout))??;
        self.parse(request, &bytes).map_err(Failure::from)
    }

    fn parse(&self, request: &ChatRequest, bytes: &[u8]) -> Result<Answer, LlmError> {
        match self.inner.settings.provider {
            ProviderKind::OpenAi => openai::parse_response(bytes),
            ProviderKind::Anthropic => anthropic::parse_response(bytes, self.schema_tool(request)),
        }
    }

    /// One streamed attempt: the answer must start within the timeout, and no two chunks may be
    /// further apart than it.
    async fn attempt_streaming(
        &self,
        request: &ChatRequest,
        body: &Bytes,
        on_text: &mut (dyn FnMut(&str) + Send),
    ) -> Result<Answer, Failure> {
        let timeout = self.inner.settings.timeout;
        let response =
            tokio::time::timeout(timeout, self.send(body, true)).await.map_err(|_| Failure::from(LlmError::Timeout))??;
        let is_sse = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if !is_sse {
            // A server that ignores `stream: true` answers all at once.
            let bytes = tokio::time::timeout(timeout, self.read_answer(response))
                .await
                .map_err(|_| Failure::from(LlmError::Timeout))??;
            let answer = self.parse(request, &bytes)?;
            if !answer.text.is_empty() {
                on_text(&answer.text);
            }
            return Ok(answer);
        }
        let mut read = 0usize;
        let mut events = response
            .bytes_stream()
            .map(move |chunk| {
                let chunk = chunk.map_err(ReadError::Transport)?;
                read += chunk.len();
                if read > MAX_RESPONSE_BYTES { Err(ReadError::TooLarge) } else { Ok(chunk) }
            })
            .eventsource();
        let mut decoder = match self.inner.settings.provider {
            ProviderKind::OpenAi => StreamDecoder::OpenAi(openai::StreamDecoder::default()),
            ProviderKind::Anthropic => StreamDecoder::Anthropic(anthropic::StreamDecoder::new(self.schema_tool(request))),
        };
        loop {
            let failed = |error: LlmError, decoder: &StreamDecoder| Failure { error, retry_after: None, emitted: decoder.emitted() };
            let next = match tokio::time::timeout(timeout, events.next()).await {
                Ok(next) => next,
                Err(_) => return Err(failed(LlmError::Timeout, &decoder)),
            };
            let event = match next {
                None => break,
                Some(Ok(event)) => event,
                Some(Err(EventStreamError::Transport(ReadError::Transport(e)))) => {
                    return Err(failed(self.transport_error(&e), &decoder));
                }
                Some(Err(EventStreamError::Transport(ReadError::TooLarge))) => return Err(failed(too_large(), &decoder)),
                Some(Err(EventStreamError::Utf8(e))) => {
                    return Err(failed(LlmError::BadResponse(format!("an event stream that is not UTF-8: {e}")), &decoder));
                }
                Some(Err(EventStreamError::Parser(e))) => {
                    return Err(failed(LlmError::BadResponse(format!("a broken event stream: {e}")), &decoder));
                }
            };
            if let Err(error) = decoder.on_data(&event.data, on_text) {
                return Err(failed(self.redact_error(error), &decoder));
            }
            if decoder.is_done() {
                break;
            }
        }
        let emitted = decoder.emitted();
        decoder.finish().map_err(|error| Failure { error, retry_after: None, emitted })
    }

    fn transport_error(&self, error: &reqwest::Error) -> LlmError {
        if error.is_timeout() {
            return LlmError::Timeout;
        }
        LlmError::Transport(self.redact(error_chain(error)))
    }

    fn redact_error(&self, error: LlmError) -> LlmError {
        match error {
            LlmError::Provider { kind, message } => LlmError::Provider { kind, message: self.redact(message) },
            other => other,
        }
    }

    /// `text` without the API key (some providers quote part of a wrong key back).
    fn redact(&self, text: String) -> String {
        redact(self.inner.settings.api_key.as_deref(), text)
    }
}

/// The streamed-answer decoder of each protocol.
enum StreamDecoder {
    OpenAi(openai::StreamDecoder),
    Anthropic(anthropic::StreamDecoder),
}

impl StreamDecoder {
    fn on_data(&mut self, data: &str, on_text: &mut (dyn FnMut(&str) + Send)) -> Result<(), LlmError> {
        match self {
            StreamDecoder::OpenAi(d) => d.on_data(data, on_text),
            StreamDecoder::Anthropic(d) => d.on_data(data, on_text),
        }
    }

    fn is_done(&self) -> bool {
        match self {
            StreamDecoder::OpenAi(d) => d.is_done(),
            StreamDecoder::Anthropic(d) => d.is_done(),
        }
    }

    fn emitted(&self) -> bool {
        match self {
            StreamDecoder::OpenAi(d) => d.emitted(),
            StreamDecoder::Anthropic(d) => d.emitted(),
        }
    }

    fn finish(self) -> Result<Answer, LlmError> {
        match self {
            StreamDecoder::OpenAi(d) => d.finish(),
            StreamDecoder::Anthropic(d) => d.finish(),
        }
    }
}

/// The headers of every request: content type, the key (marked sensitive so that no `Debug`
/// prints it) and Anthropic's version.
fn request_headers(settings: &LlmSettings) -> Result<HeaderMap, LlmError> {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let key = settings.api_key.as_deref().map(str::trim).filter(|k| !k.is_empty());
    let secret = |value: String| {
        let mut value =
            HeaderValue::from_str(&value).map_err(|_| LlmError::Config("the API key has characters a header cannot hold".into()))?;
        value.set_sensitive(true);
        Ok::<_, LlmError>(value)
    };
    match settings.provider {
        ProviderKind::OpenAi => {
            if let Some(key) = key {
                headers.insert(header::AUTHORIZATION, secret(format!("Bearer {key}"))?);
            }
        }
        ProviderKind::Anthropic => {
            if let Some(key) = key {
                headers.insert("x-api-key", secret(key.to_owned())?);
            }
            headers.insert("anthropic-version", HeaderValue::from_static(anthropic::API_VERSION));
        }
    }
    Ok(headers)
}

/// The operator client of a provider whose calls are bounded by `timeout` (the call bounds
/// itself, streamed chunk by chunk, so the client has only a connect timeout).
pub(crate) fn operator_client(timeout: Duration) -> Result<OperatorClient, agentd_egress::EgressError> {
    OperatorClient::new(OperatorConfig { timeout: None, connect_timeout: timeout.min(Duration::from_secs(30)), ..OperatorConfig::default() })
}

/// `text` without `key` (some providers quote part of a wrong key back).
pub(crate) fn redact(key: Option<&str>, text: String) -> String {
    agentd_egress::redact(text, key)
}

fn bytes_of(body: &Value) -> Result<Bytes, LlmError> {
    serde_json::to_vec(body).map(Bytes::from).map_err(|e| LlmError::Config(format!("the request cannot be serialized: {e}")))
}

fn too_large() -> LlmError {
    LlmError::BadResponse(format!("the answer is larger than {MAX_RESPONSE_BYTES} bytes"))
}

pub(crate) async fn read_limited(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(ReadError::Transport)? {
        if body.len() + chunk.len() > limit {
            return Err(ReadError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The message in an error body: OpenAI's and Anthropic's `error.message`, or the shapes of
/// compatible servers (`error` as a string, `message`, `detail`), else the start of the body.
pub(crate) fn error_message(body: &[u8]) -> Option<String> {
    let message = match serde_json::from_slice::<Value>(body) {
        Ok(json) => [&json["error"]["message"], &json["error"], &json["message"], &json["detail"]]
            .into_iter()
            .find_map(|v| v.as_str().map(str::to_owned))
            .or_else(|| json.get("error").map(Value::to_string)),
        Err(_) => Some(String::from_utf8_lossy(body).trim().to_owned()),
    }?;
    let message = message.trim();
    if message.is_empty() {
        return None;
    }
    Some(match message.char_indices().nth(MAX_ERROR_MESSAGE_CHARS) {
        Some((cut, _)) => format!("{}…", &message[..cut]),
        None => message.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_of_every_shape() {
        let openai = br#"{"error":{"message":"Invalid model","type":"invalid_request_error","code":null}}"#;
        assert_eq!(error_message(openai).as_deref(), Some("Invalid model"));
        let anthropic = br#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: Field required"}}"#;
        assert_eq!(error_message(anthropic).as_deref(), Some("max_tokens: Field required"));
        assert_eq!(error_message(br#"{"error":"model 'x' not found"}"#).as_deref(), Some("model 'x' not found"));
        assert_eq!(error_message(br#"{"detail":"Not Found"}"#).as_deref(), Some("Not Found"));
        assert_eq!(error_message(b"<html>Bad gateway</html>\n").as_deref(), Some("<html>Bad gateway</html>"));
        assert_eq!(error_message(b""), None);
        let long = "x".repeat(5000);
        assert_eq!(error_message(long.as_bytes()).unwrap().chars().count(), MAX_ERROR_MESSAGE_CHARS + 1);
    }

    fn settings(provider: ProviderKind, base_url: &str) -> LlmSettings {
        LlmSettings { base_url: base_url.into(), api_key: Some("sk-0123456789".into()), ..LlmSettings::new(provider, "m") }
    }

    #[test]
    fn endpoints_and_settings_checks() {
        let llm = Llm::new(settings(ProviderKind::OpenAi, "http://localhost:11434/v1/")).unwrap();
        assert_eq!(llm.inner.endpoint, "http://localhost:11434/v1/chat/completions");
        assert_eq!(llm.inner.max_tokens_field, "max_tokens");
        let llm = Llm::new(settings(ProviderKind::OpenAi, "https://api.openai.com/v1")).unwrap();
        assert_eq!(llm.inner.max_tokens_field, "max_completion_tokens");
        for base in ["https://api.anthropic.com", "https://api.anthropic.com/", "https://api.anthropic.com/v1"] {
            let llm = Llm::new(settings(ProviderKind::Anthropic, base)).unwrap();
            assert_eq!(llm.inner.endpoint, "https://api.anthropic.com/v1/messages");
        }
        assert!(matches!(Llm::new(settings(ProviderKind::OpenAi, "not a url")), Err(LlmError::Config(_))));
        assert!(matches!(Llm::new(settings(ProviderKind::OpenAi, "ftp://host/v1")), Err(LlmError::Config(_))));
        assert!(matches!(Llm::new(settings(ProviderKind::OpenAi, "http://host/v1?x=1")), Err(LlmError::Config(_))));
        assert!(matches!(Llm::new(settings(ProviderKind::OpenAi, "http://host/v1#top")), Err(LlmError::Config(_))));
        let no_timeout = LlmSettings { timeout: Duration::ZERO, ..settings(ProviderKind::OpenAi, "http://h/v1") };
        assert!(matches!(Llm::new(no_timeout), Err(LlmError::Config(_))));
        let no_model = LlmSettings { model: " ".into(), ..settings(ProviderKind::OpenAi, "http://h/v1") };
        assert!(matches!(Llm::new(no_model), Err(LlmError::Config(_))));
        let bad_key = LlmSettings { api_key: Some("a\nb".into()), ..settings(ProviderKind::OpenAi, "http://h/v1") };
        let error = Llm::new(bad_key).unwrap_err().to_string();
        assert!(!error.contains("a\nb"), "{error}");
    }

    #[test]
    fn calls_can_run_on_any_task() {
        fn send<T: Send + 'static>(_: &T) {}
        fn borrowed_send<T: Send>(_: &T) {}
        let llm = Llm::new(settings(ProviderKind::OpenAi, "http://h/v1")).unwrap();
        send(&llm);
        let request = ChatRequest::default();
        borrowed_send(&llm.chat(&request));
        let mut on_text = |_: &str| {};
        borrowed_send(&llm.chat_streaming(&request, &mut on_text));
    }

    #[test]
    fn the_key_is_redacted_from_messages() {
        let llm = Llm::new(settings(ProviderKind::OpenAi, "http://h/v1")).unwrap();
        assert_eq!(llm.redact("Incorrect API key provided: sk-0123456789.".into()), "Incorrect API key provided: <redacted>.");
        let debug = format!("{llm:?} {:?}", llm.inner.headers);
        assert!(!debug.contains("0123456789"), "{debug}");
    }
}
