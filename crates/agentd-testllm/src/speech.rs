//! A fake OpenAI-compatible speech server on loopback: `POST /v1/audio/transcriptions`
//! (multipart) and `POST /v1/audio/speech` (JSON), deterministic, recording every request.
//!
//! A transcription is the uploaded file's bytes read as UTF-8 text (trimmed), so a test "says"
//! `hello` by uploading the bytes `hello`. Speech is the bytes `SPEECH(<voice>):<input>` with
//! the content type of the asked `response_format`. Like OpenAI, it refuses a request without
//! a model, a file, an input or a voice, and an input over 4096 characters (400 with an
//! OpenAI-style error body); [`FakeSpeech::fail_next`] makes the next requests fail on demand.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// OpenAI's limit on a speech request's input.
const MAX_INPUT_CHARS: usize = 4096;

/// One request the fake received.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SpeechRequest {
    /// `/v1/audio/transcriptions` or `/v1/audio/speech`.
    pub path: String,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// The form's text fields (transcription) or the JSON body's string fields (speech):
    /// `model`, `language`, `response_format`, `input`, `voice`...
    pub fields: BTreeMap<String, String>,
    /// The uploaded file's name (transcription).
    pub file_name: Option<String>,
    /// The uploaded file's `Content-Type` (transcription).
    pub file_type: Option<String>,
    /// The uploaded file (transcription).
    pub file: Vec<u8>,
}

impl SpeechRequest {
    /// The field `name`, if sent.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

#[derive(Default)]
struct Shared {
    requests: Vec<SpeechRequest>,
    /// Failures still to answer: (status, message), first first.
    failures: Vec<(u16, String)>,
}

/// The server: a handle to read what it received and to make it fail. Clones share one server.
#[derive(Clone)]
pub struct FakeSpeech {
    shared: Arc<Mutex<Shared>>,
    addr: SocketAddr,
}

impl std::fmt::Debug for FakeSpeech {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeSpeech").field("addr", &self.addr).finish_non_exhaustive()
    }
}

type Shares = Arc<Mutex<Shared>>;

fn lock(shared: &Shares) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl FakeSpeech {
    /// Binds `127.0.0.1` at a free port and serves in a background task (until the runtime ends).
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn start() -> FakeSpeech {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let addr = listener.local_addr().expect("the bound address");
        let shared = Shares::default();
        let app = Router::new()
            .route("/v1/audio/transcriptions", post(transcribe))
            .route("/v1/audio/speech", post(speak))
            .layer(DefaultBodyLimit::max(64 << 20))
            .with_state(shared.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeSpeech { shared, addr }
    }

    /// The base URL for a speech client: `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<SpeechRequest> {
        lock(&self.shared).requests.clone()
    }

    /// Answers the next `times` requests with `status` and an OpenAI-style error body holding
    /// `message`.
    pub fn fail_next(&self, times: usize, status: u16, message: &str) {
        lock(&self.shared).failures.extend(std::iter::repeat_n((status, message.to_owned()), times));
    }

    /// What the fake answers to a speech request for `input` in `voice`.
    pub fn spoken(voice: &str, input: &str) -> Vec<u8> {
        format!("SPEECH({voice}):{input}").into_bytes()
    }
}

fn error(status: u16, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": null}});
    (status, axum::Json(body)).into_response()
}

/// Records `request`, then the failure queued for it, if any.
fn record(shared: &Shares, request: SpeechRequest) -> Option<Response> {
    let mut shared = lock(shared);
    shared.requests.push(request);
    (!shared.failures.is_empty()).then(|| {
        let (status, message) = shared.failures.remove(0);
        error(status, &message)
    })
}

fn base_request(uri: &Uri, headers: &HeaderMap) -> SpeechRequest {
    SpeechRequest {
        path: uri.path().to_owned(),
        authorization: headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned),
        ..SpeechRequest::default()
    }
}

async fn transcribe(State(shared): State<Shares>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let mut request = base_request(&uri, &headers);
    let boundary = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("multipart/form-data; boundary="))
        .map(str::to_owned);
    let parsed = boundary.as_deref().and_then(|b| parse_multipart(&body, b));
    for part in parsed.iter().flatten() {
        match &part.file_name {
            Some(name) if part.name == "file" => {
                request.file_name = Some(name.clone());
                request.file_type = part.content_type.clone();
                request.file = part.data.clone();
            }
            _ => {
                request.fields.insert(part.name.clone(), String::from_utf8_lossy(&part.data).into_owned());
            }
        }
    }
    let has_file = request.file_name.is_some();
    let has_model = request.fields.contains_key("model");
    let transcript = String::from_utf8_lossy(&request.file).trim().to_owned();
    if let Some(failure) = record(&shared, request) {
        return failure;
    }
    match (parsed.is_some(), has_file, has_model) {
        (false, _, _) => error(400, "the body is not multipart/form-data"),
        (_, false, _) => error(400, "you must provide a file"),
        (_, _, false) => error(400, "you must provide a model parameter"),
        _ => axum::Json(json!({"text": transcript})).into_response(),
    }
}

async fn speak(State(shared): State<Shares>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let mut request = base_request(&uri, &headers);
    let json: Option<Value> = serde_json::from_slice(&body).ok();
    if let Some(Value::Object(map)) = &json {
        for (key, value) in map {
            if let Some(text) = value.as_str() {
                request.fields.insert(key.clone(), text.to_owned());
            }
        }
    }
    let fields = request.fields.clone();
    if let Some(failure) = record(&shared, request) {
        return failure;
    }
    let (Some(_model), Some(input), Some(voice)) = (fields.get("model"), fields.get("input"), fields.get("voice")) else {
        return error(400, "model, input and voice are required");
    };
    if input.chars().count() > MAX_INPUT_CHARS {
        return error(400, "input: string too long, expected at most 4096 characters");
    }
    let content_type = match fields.get("response_format").map(String::as_str).unwrap_or("mp3") {
        "mp3" => "audio/mpeg",
        "opus" => "audio/opus",
        "aac" => "audio/aac",
        "flac" => "audio/flac",
        "wav" => "audio/wav",
        "pcm" => "audio/pcm",
        other => return error(400, &format!("unsupported response_format {other}")),
    };
    ([(header::CONTENT_TYPE, content_type)], FakeSpeech::spoken(voice, input)).into_response()
}

struct Part {
    name: String,
    file_name: Option<String>,
    content_type: Option<String>,
    data: Vec<u8>,
}

/// The parts of a `multipart/form-data` body; None when it is not one.
fn parse_multipart(body: &[u8], boundary: &str) -> Option<Vec<Part>> {
    let delimiter = format!("--{boundary}").into_bytes();
    let mut parts = Vec::new();
    let mut rest = body.strip_prefix(delimiter.as_slice())?;
    loop {
        if rest.starts_with(b"--") {
            return Some(parts);
        }
        rest = rest.strip_prefix(b"\r\n")?;
        let end = find(rest, &[b"\r\n".as_slice(), &delimiter].concat())?;
        let (part, next) = (&rest[..end], &rest[end + 2 + delimiter.len()..]);
        let split = find(part, b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&part[..split]).into_owned();
        let quoted = |key: &str| {
            let start = head.find(&format!("{key}=\""))? + key.len() + 2;
            let len = head[start..].find('"')?;
            Some(head[start..start + len].to_owned())
        };
        let content_type = head
            .lines()
            .find_map(|line| line.strip_prefix("Content-Type: ").or_else(|| line.strip_prefix("content-type: ")))
            .map(str::to_owned);
        parts.push(Part {
            name: quoted(" name")?,
            file_name: quoted("filename"),
            content_type,
            data: part[split + 4..].to_vec(),
        });
        rest = next;
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_bodies_parse() {
        let body = b"--B\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\nContent-Type: audio/wav\r\n\r\nhi\r\nthere\r\n--B--\r\n";
        let parts = parse_multipart(body, "B").unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!((parts[0].name.as_str(), parts[0].data.as_slice(), parts[0].file_name.as_deref()), ("model", b"whisper-1".as_slice(), None));
        assert_eq!((parts[1].file_name.as_deref(), parts[1].content_type.as_deref()), (Some("a.wav"), Some("audio/wav")));
        assert_eq!(parts[1].data, b"hi\r\nthere");
        assert!(parse_multipart(b"not multipart", "B").is_none());
    }
}
