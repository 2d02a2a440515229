//! A scripted LLM server on loopback for agentd's tests and benchmarks (never part of the product).
//!
//! [`ScriptedLlm`] speaks OpenAI chat completions (`POST /v1/chat/completions`) and Anthropic
//! Messages (`POST /v1/messages`), streamed (server-sent events, the way each provider sends
//! them) or not, and OpenAI's Responses API for computer use (`POST /v1/responses`, not
//! streamed): there a call named `computer` is a `computer_call` whose arguments are the action
//! (with its `pending_safety_checks` as `[{code, message}]`, given ids `cu_sc_N`), and the text
//! of a reply with calls is the reasoning summary. It answers from a FIFO queue of [`Reply`]s, or from replies computed from the
//! request, and keeps every request as a [`Recorded`] so that tests can check what was sent.
//!
//! Usage in its answers is deterministic: input tokens = request body length / 4, output tokens =
//! reply length / 4. It adds no latency of its own (benchmarks use it) beyond what a
//! [`Reply::Delayed`] asks for.
//!
//! [`speech::FakeSpeech`] is a fake OpenAI-compatible speech server (transcription and speech)
//! for the audio paths.
#![deny(missing_docs)]

pub mod speech;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::Response;
use axum::routing::post;
use serde_json::{Value, json};

/// The largest request body accepted (screenshots make big prompts).
const MAX_REQUEST_BYTES: usize = 64 << 20;

/// A tool call in a reply: the tool's name and its arguments.
pub type ScriptedCall = (String, Value);

/// One scripted answer.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// Text only. To a request that forces one tool (Anthropic's structured output), text that is
    /// a JSON object is answered as that tool's call, as the real API would.
    Text(String),
    /// Tool calls only.
    ToolCalls(Vec<ScriptedCall>),
    /// Text, then tool calls.
    TextAndToolCalls(String, Vec<ScriptedCall>),
    /// An error status with the provider's error body, and a `Retry-After` header when given.
    Error {
        /// The HTTP status.
        status: u16,
        /// The `Retry-After` header's value.
        retry_after: Option<String>,
        /// The message in the error body.
        message: String,
    },
    /// Another reply after a wait (to test timeouts).
    Delayed(Duration, Box<Reply>),
    /// Exactly this status, content type and body (to imitate a server's quirks, or a broken one).
    Raw {
        /// The HTTP status.
        status: u16,
        /// The `Content-Type` header.
        content_type: String,
        /// The body, sent as it is.
        body: String,
    },
}

impl Reply {
    /// A reply of one tool call.
    pub fn tool_call(name: &str, arguments: Value) -> Reply {
        Reply::ToolCalls(vec![(name.to_owned(), arguments)])
    }

    /// An error without `Retry-After`.
    pub fn error(status: u16, message: &str) -> Reply {
        Reply::Error { status, retry_after: None, message: message.to_owned() }
    }
}

/// A request the server received.
#[derive(Clone, Debug, PartialEq)]
pub struct Recorded {
    /// The request path (`/v1/chat/completions`, `/v1/messages` or `/v1/responses`).
    pub path: String,
    /// Its headers, names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    /// Its JSON body (`Value::String` of the raw text when it was not JSON).
    pub body: Value,
    /// When its body had been read (benchmarks time the client between requests with it).
    pub received_at: Instant,
}

impl Recorded {
    /// Every text in the request's system prompt and messages (tool results included; the
    /// Responses API's instructions and input), joined by new lines: for searching the prompt.
    pub fn text(&self) -> String {
        let mut texts = Vec::new();
        collect_texts(&self.body["system"], "system", &mut texts);
        collect_texts(&self.body["messages"], "messages", &mut texts);
        // The Responses API's names for the same.
        collect_texts(&self.body["instructions"], "system", &mut texts);
        collect_texts(&self.body["input"], "messages", &mut texts);
        texts.join("\n")
    }

    /// The whole body as a string.
    pub fn raw(&self) -> String {
        match &self.body {
            Value::String(raw) => raw.clone(),
            body => body.to_string(),
        }
    }

    /// The value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Whether the client asked for a streamed answer.
    pub fn is_streaming(&self) -> bool {
        self.body["stream"] == json!(true)
    }
}

/// Strings under `system`, `content` and `text` keys, leaving out images and tool arguments.
fn collect_texts(value: &Value, key: &str, out: &mut Vec<String>) {
    if matches!(key, "input" | "arguments" | "function" | "source" | "image_url") {
        return;
    }
    match value {
        Value::String(text) if matches!(key, "system" | "content" | "text") => out.push(text.clone()),
        Value::Array(items) => items.iter().for_each(|item| collect_texts(item, key, out)),
        Value::Object(map) => map.iter().for_each(|(k, v)| collect_texts(v, k, out)),
        _ => {}
    }
}

type Responder = Arc<dyn Fn(&Recorded) -> Reply + Send + Sync>;

enum Scripted {
    Reply(Reply),
    With(Responder),
}

struct Script {
    queue: VecDeque<Scripted>,
    fallback: Reply,
    requests: Vec<Recorded>,
}

struct Shared {
    script: Mutex<Script>,
    /// Numbers tool calls (`call_1`, `toolu_1`...), unique over the server's life.
    calls: AtomicU64,
    /// Numbers answers (`chatcmpl-1`, `msg_1`...).
    answers: AtomicU64,
}

impl Shared {
    fn script(&self) -> MutexGuard<'_, Script> {
        // A test that panicked in a responder must not take the other tests' server down with it.
        self.script.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn next(counter: &AtomicU64) -> u64 {
        counter.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// The server: a handle to script it and read what it received. Clones share one server.
#[derive(Clone)]
pub struct ScriptedLlm {
    shared: Arc<Shared>,
    addr: SocketAddr,
}

impl std::fmt::Debug for ScriptedLlm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptedLlm").field("addr", &self.addr).finish_non_exhaustive()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Protocol {
    OpenAi,
    Anthropic,
    Responses,
}

impl ScriptedLlm {
    /// Binds `127.0.0.1` at a free port and serves in a background task (until the runtime ends).
    ///
    /// # Panics
    /// When no loopback port can be bound (a test cannot go on without its server).
    pub async fn start() -> ScriptedLlm {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let addr = listener.local_addr().expect("the bound address");
        let shared = Arc::new(Shared {
            script: Mutex::new(Script {
                queue: VecDeque::new(),
                fallback: Reply::error(500, "the scripted LLM ran out of replies"),
                requests: Vec::new(),
            }),
            calls: AtomicU64::new(0),
            answers: AtomicU64::new(0),
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(openai))
            .route("/v1/messages", post(anthropic))
            .route("/v1/responses", post(responses))
            .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
            .with_state(shared.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        ScriptedLlm { shared, addr }
    }

    /// The base URL for an OpenAI-compatible client: `http://127.0.0.1:PORT/v1`.
    pub fn openai_base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The base URL for an Anthropic client: `http://127.0.0.1:PORT`.
    pub fn anthropic_base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queues `reply` for a later request.
    pub fn push(&self, reply: Reply) {
        self.shared.script().queue.push_back(Scripted::Reply(reply));
    }

    /// Queues a reply computed from the request it answers (e.g. an element index found in the
    /// prompt).
    pub fn push_with(&self, responder: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) {
        self.shared.script().queue.push_back(Scripted::With(Arc::new(responder)));
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.script().requests.clone()
    }

    /// Every request received since the last call, in order, forgetting them (a long benchmark
    /// keeps memory flat this way).
    pub fn take_requests(&self) -> Vec<Recorded> {
        std::mem::take(&mut self.shared.script().requests)
    }

    /// The answer when the queue is empty (by default a 500 error saying the script ran out).
    pub fn set_fallback(&self, reply: Reply) {
        self.shared.script().fallback = reply;
    }

    /// How many queued replies are still waiting for a request.
    pub fn remaining(&self) -> usize {
        self.shared.script().queue.len()
    }
}

async fn openai(State(shared): State<Arc<Shared>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    answer(&shared, Protocol::OpenAi, uri, headers, body).await
}

async fn anthropic(State(shared): State<Arc<Shared>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    answer(&shared, Protocol::Anthropic, uri, headers, body).await
}

async fn responses(State(shared): State<Arc<Shared>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    answer(&shared, Protocol::Responses, uri, headers, body).await
}

async fn answer(shared: &Shared, protocol: Protocol, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    let recorded = Recorded {
        path: uri.path().to_owned(),
        headers: headers
            .iter()
            .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
            .collect(),
        body: parsed.clone().unwrap_or_else(|| Value::String(String::from_utf8_lossy(&body).into_owned())),
        received_at: Instant::now(),
    };
    let scripted = {
        let mut script = shared.script();
        script.requests.push(recorded.clone());
        script.queue.pop_front().unwrap_or_else(|| Scripted::Reply(script.fallback.clone()))
    };
    let Some(request) = parsed else {
        return error_response(protocol, 400, None, "the request body is not JSON");
    };
    if protocol == Protocol::Anthropic && request["max_tokens"].as_u64().is_none() {
        return error_response(protocol, 400, None, "max_tokens: Field required");
    }
    // The responder runs outside the lock: it may read the server's requests.
    let mut reply = match scripted {
        Scripted::Reply(reply) => reply,
        Scripted::With(responder) => responder(&recorded),
    };
    while let Reply::Delayed(wait, next) = reply {
        tokio::time::sleep(wait).await;
        reply = *next;
    }
    let (text, calls) = match reply {
        Reply::Text(text) => (text, Vec::new()),
        Reply::ToolCalls(calls) => (String::new(), calls),
        Reply::TextAndToolCalls(text, calls) => (text, calls),
        Reply::Error { status, retry_after, message } => {
            return error_response(protocol, status, retry_after.as_deref(), &message);
        }
        Reply::Raw { status, content_type, body } => {
            return response(status, &content_type, Body::from(body));
        }
        Reply::Delayed(..) => unreachable!("delays were waited out above"),
    };
    let (text, calls) = forced_tool(&request, text, calls);
    let mut calls: Vec<Call> = calls
        .into_iter()
        .map(|(name, arguments)| {
            let n = Shared::next(&shared.calls);
            let id = match protocol {
                Protocol::OpenAi | Protocol::Responses => format!("call_{n}"),
                Protocol::Anthropic => format!("toolu_{n}"),
            };
            Call { id, name, arguments }
        })
        .collect();
    if protocol == Protocol::Anthropic {
        // Anthropic's tool input is always an object.
        for call in &mut calls {
            if !call.arguments.is_object() {
                call.arguments = json!({ "input": call.arguments });
            }
        }
    }
    let reply_len = text.len() + calls.iter().map(|c| c.name.len() + c.arguments.to_string().len()).sum::<usize>();
    let answer = Answer {
        id: Shared::next(&shared.answers),
        model: request["model"].as_str().unwrap_or("scripted").to_owned(),
        text,
        calls,
        input_tokens: body.len() as u64 / 4,
        output_tokens: reply_len as u64 / 4,
    };
    let stream = request["stream"] == json!(true);
    match (protocol, stream) {
        (Protocol::OpenAi, false) => json_response(answer.openai()),
        (Protocol::OpenAi, true) => {
            let include_usage = request["stream_options"]["include_usage"] == json!(true);
            sse_response(answer.openai_events(include_usage))
        }
        (Protocol::Anthropic, false) => json_response(answer.anthropic()),
        (Protocol::Anthropic, true) => sse_response(answer.anthropic_events()),
        (Protocol::Responses, _) => json_response(answer.responses(&shared.calls)),
    }
}

/// Text answering a request that forces one tool becomes that tool's call when it is a JSON
/// object (a forced tool is always called).
fn forced_tool(request: &Value, text: String, calls: Vec<ScriptedCall>) -> (String, Vec<ScriptedCall>) {
    let choice = &request["tool_choice"];
    let forced = match choice["type"].as_str() {
        Some("tool") => choice["name"].as_str(),
        Some("function") => choice["function"]["name"].as_str(),
        _ => None,
    };
    match (forced, serde_json::from_str::<Value>(&text)) {
        (Some(name), Ok(arguments)) if calls.is_empty() && arguments.is_object() => {
            (String::new(), vec![(name.to_owned(), arguments)])
        }
        _ => (text, calls),
    }
}

struct Call {
    id: String,
    name: String,
    arguments: Value,
}

/// A successful answer, ready to be written in either protocol.
struct Answer {
    id: u64,
    model: String,
    text: String,
    calls: Vec<Call>,
    input_tokens: u64,
    output_tokens: u64,
}

/// A creation time for OpenAI's `created` (fixed: answers are deterministic).
const CREATED: u64 = 1_700_000_000;

impl Answer {
    fn openai_finish_reason(&self) -> &'static str {
        if self.calls.is_empty() { "stop" } else { "tool_calls" }
    }

    fn openai_usage(&self) -> Value {
        json!({
            "prompt_tokens": self.input_tokens,
            "completion_tokens": self.output_tokens,
            "total_tokens": self.input_tokens + self.output_tokens,
        })
    }

    fn openai(&self) -> Value {
        let mut message = json!({
            "role": "assistant",
            "content": if self.text.is_empty() { Value::Null } else { json!(self.text) },
            "refusal": null,
        });
        if !self.calls.is_empty() {
            let calls: Vec<Value> = self
                .calls
                .iter()
                .map(|c| json!({ "id": c.id, "type": "function", "function": { "name": c.name, "arguments": c.arguments.to_string() } }))
                .collect();
            message["tool_calls"] = Value::Array(calls);
        }
        json!({
            "id": format!("chatcmpl-{}", self.id),
            "object": "chat.completion",
            "created": CREATED,
            "model": self.model,
            "choices": [{ "index": 0, "message": message, "logprobs": null, "finish_reason": self.openai_finish_reason() }],
            "usage": self.openai_usage(),
        })
    }

    /// The chunks OpenAI streams: the role, text pieces, each tool call's id and name then its
    /// arguments in pieces, the finish reason, the usage (when asked for), then `[DONE]`.
    fn openai_events(&self, include_usage: bool) -> Vec<String> {
        let chunk = |delta: Value, finish_reason: Value| {
            let mut chunk = json!({
                "id": format!("chatcmpl-{}", self.id),
                "object": "chat.completion.chunk",
                "created": CREATED,
                "model": self.model,
                "choices": [{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason }],
            });
            if include_usage {
                chunk["usage"] = Value::Null;
            }
            sse(None, &chunk)
        };
        let mut events = vec![chunk(json!({ "role": "assistant", "content": "", "refusal": null }), Value::Null)];
        for piece in text_pieces(&self.text) {
            events.push(chunk(json!({ "content": piece }), Value::Null));
        }
        for (index, call) in self.calls.iter().enumerate() {
            events.push(chunk(
                json!({ "tool_calls": [{ "index": index, "id": call.id, "type": "function", "function": { "name": call.name, "arguments": "" } }] }),
                Value::Null,
            ));
            for piece in json_pieces(&call.arguments.to_string()) {
                events.push(chunk(json!({ "tool_calls": [{ "index": index, "function": { "arguments": piece } }] }), Value::Null));
            }
        }
        events.push(chunk(json!({}), json!(self.openai_finish_reason())));
        if include_usage {
            let usage = json!({
                "id": format!("chatcmpl-{}", self.id),
                "object": "chat.completion.chunk",
                "created": CREATED,
                "model": self.model,
                "choices": [],
                "usage": self.openai_usage(),
            });
            events.push(sse(None, &usage));
        }
        events.push("data: [DONE]\n\n".to_owned());
        events
    }

    /// A Responses API object: the text as a reasoning summary before calls, or as the message
    /// without them; `computer` calls as `computer_call` items, others as `function_call`s.
    fn responses(&self, ids: &AtomicU64) -> Value {
        let mut output = Vec::new();
        if self.calls.is_empty() {
            output.push(json!({
                "type": "message", "id": format!("msg_{}", self.id), "role": "assistant", "status": "completed",
                "content": [{ "type": "output_text", "text": self.text, "annotations": [] }],
            }));
        } else {
            let summary: Vec<Value> = (!self.text.is_empty())
                .then(|| json!({ "type": "summary_text", "text": self.text }))
                .into_iter()
                .collect();
            output.push(json!({ "type": "reasoning", "id": format!("rs_{}", self.id), "summary": summary }));
        }
        for call in &self.calls {
            if call.name != "computer" {
                output.push(json!({
                    "type": "function_call", "id": format!("fc_{}", call.id), "call_id": call.id,
                    "name": call.name, "arguments": call.arguments.to_string(), "status": "completed",
                }));
                continue;
            }
            let mut action = call.arguments.clone();
            let checks: Vec<Value> = action
                .as_object_mut()
                .and_then(|a| a.remove("pending_safety_checks"))
                .and_then(|c| c.as_array().cloned())
                .unwrap_or_default()
                .into_iter()
                .map(|mut check| {
                    check["id"] = json!(format!("cu_sc_{}", Shared::next(ids)));
                    check
                })
                .collect();
            output.push(json!({
                "type": "computer_call", "id": format!("cu_{}", call.id), "call_id": call.id,
                "action": action, "pending_safety_checks": checks, "status": "completed",
            }));
        }
        json!({
            "id": format!("resp_{}", self.id),
            "object": "response",
            "created_at": CREATED,
            "status": "completed",
            "model": self.model,
            "output": output,
            "usage": {
                "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens,
                "total_tokens": self.input_tokens + self.output_tokens,
            },
        })
    }

    fn anthropic_stop_reason(&self) -> &'static str {
        if self.calls.is_empty() { "end_turn" } else { "tool_use" }
    }

    fn anthropic(&self) -> Value {
        let mut content = Vec::new();
        if !self.text.is_empty() {
            content.push(json!({ "type": "text", "text": self.text }));
        }
        for call in &self.calls {
            content.push(json!({ "type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments }));
        }
        json!({
            "id": format!("msg_{}", self.id),
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": content,
            "stop_reason": self.anthropic_stop_reason(),
            "stop_sequence": null,
            "usage": { "input_tokens": self.input_tokens, "output_tokens": self.output_tokens },
        })
    }

    /// The events Anthropic streams: message_start, a ping, each content block (start, deltas,
    /// stop), message_delta with the stop reason and output tokens, message_stop.
    fn anthropic_events(&self) -> Vec<String> {
        let event = |name: &str, data: Value| sse(Some(name), &data);
        let mut events = vec![event(
            "message_start",
            json!({ "type": "message_start", "message": {
                "id": format!("msg_{}", self.id), "type": "message", "role": "assistant", "model": self.model,
                "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": { "input_tokens": self.input_tokens, "output_tokens": 1 },
            }}),
        )];
        events.push(event("ping", json!({ "type": "ping" })));
        let mut index = 0;
        if !self.text.is_empty() {
            events.push(event(
                "content_block_start",
                json!({ "type": "content_block_start", "index": index, "content_block": { "type": "text", "text": "" } }),
            ));
            for piece in text_pieces(&self.text) {
                events.push(event(
                    "content_block_delta",
                    json!({ "type": "content_block_delta", "index": index, "delta": { "type": "text_delta", "text": piece } }),
                ));
            }
            events.push(event("content_block_stop", json!({ "type": "content_block_stop", "index": index })));
            index += 1;
        }
        for call in &self.calls {
            events.push(event(
                "content_block_start",
                json!({ "type": "content_block_start", "index": index, "content_block": { "type": "tool_use", "id": call.id, "name": call.name, "input": {} } }),
            ));
            for piece in json_pieces(&call.arguments.to_string()) {
                events.push(event(
                    "content_block_delta",
                    json!({ "type": "content_block_delta", "index": index, "delta": { "type": "input_json_delta", "partial_json": piece } }),
                ));
            }
            events.push(event("content_block_stop", json!({ "type": "content_block_stop", "index": index })));
            index += 1;
        }
        events.push(event(
            "message_delta",
            json!({ "type": "message_delta", "delta": { "stop_reason": self.anthropic_stop_reason(), "stop_sequence": null }, "usage": { "output_tokens": self.output_tokens } }),
        ));
        events.push(event("message_stop", json!({ "type": "message_stop" })));
        events
    }
}

fn sse(event: Option<&str>, data: &Value) -> String {
    match event {
        Some(name) => format!("event: {name}\ndata: {data}\n\n"),
        None => format!("data: {data}\n\n"),
    }
}

/// Text in word-sized pieces, each ending after its whitespace ("Hello ", "world").
fn text_pieces(text: &str) -> Vec<&str> {
    text.split_inclusive(char::is_whitespace).collect()
}

/// JSON text in three or so pieces, split at character boundaries.
fn json_pieces(text: &str) -> Vec<&str> {
    let size = text.len().div_ceil(3).max(1);
    let mut pieces = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut cut = size.min(rest.len());
        while !rest.is_char_boundary(cut) {
            cut += 1;
        }
        let (piece, tail) = rest.split_at(cut);
        pieces.push(piece);
        rest = tail;
    }
    pieces
}

fn error_response(protocol: Protocol, status: u16, retry_after: Option<&str>, message: &str) -> Response {
    let body = match protocol {
        Protocol::OpenAi | Protocol::Responses => {
            json!({ "error": { "message": message, "type": openai_error_type(status), "param": null, "code": null } })
        }
        Protocol::Anthropic => json!({ "type": "error", "error": { "type": anthropic_error_type(status), "message": message } }),
    };
    let mut response = response(status, "application/json", Body::from(body.to_string()));
    if let Some(value) = retry_after.and_then(|v| v.parse().ok()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

fn openai_error_type(status: u16) -> &'static str {
    match status {
        401 => "invalid_api_key",
        429 => "rate_limit_exceeded",
        400..=499 => "invalid_request_error",
        _ => "server_error",
    }
}

fn anthropic_error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

fn json_response(body: Value) -> Response {
    response(200, "application/json", Body::from(body.to_string()))
}

fn sse_response(events: Vec<String>) -> Response {
    let chunks = futures::stream::iter(events.into_iter().map(Ok::<_, std::convert::Infallible>));
    let mut response = response(200, "text/event-stream", Body::from_stream(chunks));
    response.headers_mut().insert(header::CACHE_CONTROL, "no-cache".parse().expect("a valid header"));
    response
}

fn response(status: u16, content_type: &str, body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(value) = content_type.parse() {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_rejoin_into_the_whole() {
        assert_eq!(text_pieces("Hello big world"), ["Hello ", "big ", "world"]);
        assert_eq!(json_pieces(r#"{"a":1}"#), [r#"{"a"#, r#"":1"#, "}"]);
        assert_eq!(json_pieces("{}"), ["{", "}"]);
        let accents = r#"{"é":"ü"}"#;
        assert_eq!(json_pieces(accents).concat(), accents);
    }

    #[test]
    fn recorded_text_gathers_every_prompt_text() {
        let recorded = Recorded {
            path: "/v1/messages".into(),
            headers: vec![("x-api-key".into(), "k".into())],
            body: json!({
                "system": "sys",
                "messages": [
                    {"role": "user", "content": [{"type": "text", "text": "hello"}, {"type": "image", "source": {"data": "AAAA"}}]},
                    {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "n", "input": {"text": "arg"}}]},
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "done"}]}]},
                    {"role": "tool", "content": "plain"},
                ],
            }),
            received_at: Instant::now(),
        };
        assert_eq!(recorded.text(), "sys\nhello\ndone\nplain");
        assert_eq!(recorded.header("X-Api-Key"), Some("k"));
        assert!(recorded.raw().contains("AAAA"));
    }

    #[test]
    fn a_forced_tool_turns_json_text_into_its_call() {
        let request = json!({"tool_choice": {"type": "tool", "name": "answer"}});
        assert_eq!(forced_tool(&request, r#"{"a":1}"#.into(), vec![]), (String::new(), vec![("answer".into(), json!({"a": 1}))]));
        assert_eq!(forced_tool(&request, "plain".into(), vec![]), ("plain".into(), vec![]));
        assert_eq!(forced_tool(&json!({}), r#"{"a":1}"#.into(), vec![]), (r#"{"a":1}"#.into(), vec![]));
    }
}
