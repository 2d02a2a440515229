//! Speech: [`SpeechClient`] transcribes audio (`POST {base_url}/audio/transcriptions`,
//! multipart) and speaks text (`POST {base_url}/audio/speech`, JSON) on any OpenAI-compatible
//! server (OpenAI, LocalAI, Speaches, a whisper.cpp or Kokoro server...).
//!
//! Limits are OpenAI's: audio in at most [`MAX_AUDIO_BYTES`] (lower with
//! [`SpeechSettings::max_audio_bytes`]), text out at most [`MAX_SPEECH_INPUT_CHARS`] a request.
//! A longer text is cut into pieces at sentence ends; formats whose files join into one
//! ([`AudioFormat::concatenates`]: mp3, aac, pcm) speak up to [`MAX_SPEECH_REQUESTS`] pieces
//! and join them, the others speak the first piece only. Either way [`Speech::truncated`] says
//! whether some text was left unspoken. Failures are retried like chat calls.

mod chunks;
mod format;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use agentd_egress::{Backoff, OperatorClient, error_chain};
use bytes::Bytes;
use reqwest::header::{self, HeaderMap, HeaderValue};
use serde_json::{Value, json};
use tracing::debug;

pub use format::AudioFormat;

use crate::client::{self, ReadError};
use crate::error::is_retryable_status;

/// The largest audio a transcription takes (OpenAI's limit: 25 MiB).
pub const MAX_AUDIO_BYTES: usize = 25 << 20;
/// The most characters one speech request takes (OpenAI's limit).
pub const MAX_SPEECH_INPUT_CHARS: usize = 4096;
/// The most speech requests one [`SpeechClient::speak`] makes (a text up to 4 × 4096
/// characters, in a format that joins).
pub const MAX_SPEECH_REQUESTS: usize = 4;
/// The largest spoken answer read, all pieces together.
pub const MAX_SPEECH_BYTES: usize = 32 << 20;
/// The largest transcription answer read.
const MAX_TRANSCRIPT_BYTES: usize = 1 << 20;

/// How to reach a speech server. `Debug` never prints the API key.
#[derive(Clone)]
pub struct SpeechSettings {
    /// Up to and including `/v1`: requests go to `{base_url}/audio/transcriptions` and
    /// `{base_url}/audio/speech`.
    pub base_url: String,
    /// Sent as `Authorization: Bearer`; `None` sends none (a local server needs none).
    pub api_key: Option<String>,
    /// The model that transcribes (default `whisper-1`).
    pub transcription_model: String,
    /// The model that speaks (default `tts-1`).
    pub speech_model: String,
    /// The voice used when a request names none (default `alloy`).
    pub voice: String,
    /// The limit on one HTTP attempt (default 120 s).
    pub timeout: Duration,
    /// How many times a failed attempt is retried (default 2).
    pub max_retries: u32,
    /// The first retry's wait, doubled each time (default 500 ms). Tests shorten it.
    pub backoff_base: Duration,
    /// The largest audio accepted for transcription, at most [`MAX_AUDIO_BYTES`] (the default).
    pub max_audio_bytes: usize,
}

impl SpeechSettings {
    /// Settings for the server at `base_url`, every other field at its default.
    pub fn new(base_url: impl Into<String>) -> SpeechSettings {
        SpeechSettings { base_url: base_url.into(), ..SpeechSettings::default() }
    }
}

/// OpenAI's public endpoint, no key, `whisper-1`, `tts-1`, `alloy`, 120 s, 2 retries, 500 ms,
/// 25 MiB.
impl Default for SpeechSettings {
    fn default() -> Self {
        SpeechSettings {
            base_url: "https://api.openai.com/v1".into(),
            api_key: None,
            transcription_model: "whisper-1".into(),
            speech_model: "tts-1".into(),
            voice: "alloy".into(),
            timeout: Duration::from_secs(120),
            max_retries: 2,
            backoff_base: Duration::from_millis(500),
            max_audio_bytes: MAX_AUDIO_BYTES,
        }
    }
}

impl fmt::Debug for SpeechSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpeechSettings")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("transcription_model", &self.transcription_model)
            .field("speech_model", &self.speech_model)
            .field("voice", &self.voice)
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .field("max_audio_bytes", &self.max_audio_bytes)
            .finish()
    }
}

/// A failed transcription or speech call. No variant ever holds the API key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpeechError {
    /// The request cannot be sent as it is (no audio, too much, a format the endpoint does not
    /// take, nothing to say).
    #[error("{0}")]
    Invalid(String),
    /// The speech server answered with an error status.
    #[error("the speech provider answered HTTP {status}: {message}")]
    Http {
        /// The HTTP status.
        status: u16,
        /// The server's error message (or the start of its body when it sent no JSON error).
        message: String,
    },
    /// An attempt took longer than the configured timeout.
    #[error("the speech provider did not answer in time")]
    Timeout,
    /// The connection failed or broke.
    #[error("could not reach the speech provider: {0}")]
    Transport(String),
    /// The answer was not what the protocol promises (not JSON, no text, too large...).
    #[error("the speech provider's answer could not be read: {0}")]
    BadResponse(String),
    /// The settings cannot work (a bad URL, no model...).
    #[error("speech configuration: {0}")]
    Config(String),
}

impl SpeechError {
    /// Whether the same request may succeed if sent again.
    pub fn is_retryable(&self) -> bool {
        match self {
            SpeechError::Http { status, .. } => is_retryable_status(*status),
            SpeechError::Timeout | SpeechError::Transport(_) => true,
            SpeechError::Invalid(_) | SpeechError::BadResponse(_) | SpeechError::Config(_) => false,
        }
    }
}

/// A spoken text.
#[derive(Clone, Debug, PartialEq)]
pub struct Speech {
    /// The audio file's bytes.
    pub audio: Vec<u8>,
    /// Its format.
    pub format: AudioFormat,
    /// Whether the end of the text was left out (longer than the format allows; see the module
    /// documentation).
    pub truncated: bool,
}

/// A configured speech server. Cheap to clone (clones share one connection pool); `Debug`
/// never prints the API key.
#[derive(Clone)]
pub struct SpeechClient {
    inner: Arc<Inner>,
}

struct Inner {
    settings: SpeechSettings,
    client: OperatorClient,
    /// The base URL without a trailing slash.
    base: String,
    /// `Authorization`, marked sensitive, when there is a key.
    auth: Option<HeaderValue>,
}

impl fmt::Debug for SpeechClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SpeechClient").field(&self.inner.settings).finish()
    }
}

impl SpeechClient {
    /// Checks the settings and prepares the HTTP client (no request is made).
    pub fn new(settings: SpeechSettings) -> Result<SpeechClient, SpeechError> {
        let config = |message: String| Err(SpeechError::Config(message));
        let base = match reqwest::Url::parse(settings.base_url.trim()) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.query().is_none() && url.fragment().is_none() => url,
            _ => return config(format!("the base URL {:?} is not an http(s) URL without a query", settings.base_url)),
        };
        for (name, value) in [("transcription model", &settings.transcription_model), ("speech model", &settings.speech_model), ("voice", &settings.voice)] {
            if value.trim().is_empty() {
                return config(format!("no {name} is configured"));
            }
        }
        if settings.timeout.is_zero() {
            return config("the timeout must be more than zero".into());
        }
        if settings.max_audio_bytes == 0 || settings.max_audio_bytes > MAX_AUDIO_BYTES {
            return config(format!("the audio limit must be between 1 and {MAX_AUDIO_BYTES} bytes"));
        }
        let auth = match settings.api_key.as_deref().map(str::trim).filter(|k| !k.is_empty()) {
            Some(key) => {
                let mut value = HeaderValue::from_str(&format!("Bearer {key}"))
                    .map_err(|_| SpeechError::Config("the API key has characters a header cannot hold".into()))?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        let client = client::operator_client(settings.timeout).map_err(|e| SpeechError::Config(e.to_string()))?;
        let base = base.as_str().trim_end_matches('/').to_owned();
        Ok(SpeechClient { inner: Arc::new(Inner { settings, client, base, auth }) })
    }

    /// The largest audio [`SpeechClient::transcribe`] takes.
    pub fn max_audio_bytes(&self) -> usize {
        self.inner.settings.max_audio_bytes
    }

    /// The voice used when a request names none.
    pub fn default_voice(&self) -> &str {
        &self.inner.settings.voice
    }

    /// The text spoken in `audio` (a file in `format`), in `language` (ISO 639-1, e.g. `en`)
    /// when given, else the one the server recognises.
    pub async fn transcribe(&self, audio: Bytes, format: AudioFormat, language: Option<&str>) -> Result<String, SpeechError> {
        if audio.is_empty() {
            return Err(SpeechError::Invalid("the audio is empty".into()));
        }
        if audio.len() > self.max_audio_bytes() {
            return Err(SpeechError::Invalid(format!("the audio is larger than {} bytes", self.max_audio_bytes())));
        }
        if !format.is_input() {
            return Err(SpeechError::Invalid(format!("{format} cannot be transcribed; use one of {}", AudioFormat::input_names())));
        }
        let mut form = Multipart::new();
        form.text("model", &self.inner.settings.transcription_model);
        form.text("response_format", "json");
        if let Some(language) = language.map(str::trim).filter(|l| !l.is_empty()) {
            if language.len() > 16 || !language.chars().all(|c| c.is_ascii_alphabetic() || c == '-') {
                return Err(SpeechError::Invalid(format!("{language:?} is not a language code such as en or pt-BR")));
            }
            form.text("language", language);
        }
        form.file("file", &format!("audio.{}", format.as_str()), format.mime_type(), &audio);
        let (content_type, body) = form.finish();
        let answer = self.post("/audio/transcriptions", &content_type, body, MAX_TRANSCRIPT_BYTES).await?;
        let json: Value = serde_json::from_slice(&answer).map_err(|e| SpeechError::BadResponse(format!("not JSON: {e}")))?;
        let text = json["text"].as_str().ok_or_else(|| SpeechError::BadResponse("no `text` in the transcription".into()))?;
        Ok(text.trim().to_owned())
    }

    /// `text` spoken in `voice` (default: the configured one) as a file in `format`; a text
    /// longer than one request takes is cut (see the module documentation).
    pub async fn speak(&self, text: &str, voice: Option<&str>, format: AudioFormat) -> Result<Speech, SpeechError> {
        if !format.is_output() {
            return Err(SpeechError::Invalid(format!("speech cannot be made as {format}; use one of {}", AudioFormat::output_names())));
        }
        let mut pieces = chunks::split_for_speech(text, MAX_SPEECH_INPUT_CHARS);
        if pieces.is_empty() {
            return Err(SpeechError::Invalid("there is no text to speak".into()));
        }
        let kept = if format.concatenates() { MAX_SPEECH_REQUESTS } else { 1 };
        let truncated = pieces.len() > kept;
        pieces.truncate(kept);
        let settings = &self.inner.settings;
        let voice = voice.map(str::trim).filter(|v| !v.is_empty()).unwrap_or(&settings.voice);
        let mut audio = Vec::new();
        for piece in pieces {
            let body = json!({"model": settings.speech_model, "input": piece, "voice": voice, "response_format": format.as_str()});
            let body = Bytes::from(body.to_string());
            let limit = MAX_SPEECH_BYTES - audio.len();
            audio.extend(self.post("/audio/speech", "application/json", body, limit).await?);
        }
        Ok(Speech { audio, format, truncated })
    }

    /// Posts `body` to `path` and reads at most `limit` bytes of the answer, retrying transient
    /// failures (the server's `Retry-After`, else backoff).
    async fn post(&self, path: &str, content_type: &str, body: Bytes, limit: usize) -> Result<Vec<u8>, SpeechError> {
        let settings = &self.inner.settings;
        let endpoint = format!("{}{path}", self.inner.base);
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(content_type).map_err(|_| SpeechError::Config("a bad content type".into()))?,
        );
        if let Some(auth) = &self.inner.auth {
            headers.insert(header::AUTHORIZATION, auth.clone());
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            let outcome = tokio::time::timeout(settings.timeout, self.attempt(&endpoint, &headers, body.clone(), limit))
                .await
                .unwrap_or(Err((SpeechError::Timeout, None)));
            match outcome {
                Ok(answer) => return Ok(answer),
                Err((error, retry_after)) if error.is_retryable() && attempt <= settings.max_retries => {
                    let wait = retry_after.unwrap_or_else(|| Backoff::new(settings.backoff_base).wait(attempt));
                    debug!(%error, wait_ms = wait.as_millis() as u64, path, "speech call retried");
                    tokio::time::sleep(wait).await;
                }
                Err((error, _)) => {
                    debug!(%error, path, "speech call failed");
                    return Err(error);
                }
            }
        }
    }

    /// One attempt: the answer's bytes, or the error and the wait the server asked for.
    async fn attempt(&self, endpoint: &str, headers: &HeaderMap, body: Bytes, limit: usize) -> Result<Vec<u8>, (SpeechError, Option<Duration>)> {
        let key = self.inner.settings.api_key.as_deref();
        let transport = |e: &reqwest::Error| {
            if e.is_timeout() { SpeechError::Timeout } else { SpeechError::Transport(client::redact(key, error_chain(e))) }
        };
        let response =
            self.inner.client.post(endpoint).headers(headers.clone()).body(body).send().await.map_err(|e| (transport(&e), None))?;
        let status = response.status();
        if !status.is_success() {
            let retry_after = agentd_egress::retry_after(response.headers(), SystemTime::now(), client::MAX_RETRY_AFTER);
            let body = client::read_limited(response, 64 << 10).await.unwrap_or_default();
            let message = client::error_message(&body)
                .unwrap_or_else(|| status.canonical_reason().map_or_else(|| format!("HTTP {}", status.as_u16()), str::to_owned));
            return Err((SpeechError::Http { status: status.as_u16(), message: client::redact(key, message) }, retry_after));
        }
        client::read_limited(response, limit).await.map_err(|e| match e {
            ReadError::Transport(e) => (transport(&e), None),
            ReadError::TooLarge => (SpeechError::BadResponse(format!("the answer is larger than {limit} bytes")), None),
        })
    }
}

/// A `multipart/form-data` body, built by hand: four fields need no dependency, and the body is
/// one buffer that every retry sends again without copying.
struct Multipart {
    boundary: String,
    body: Vec<u8>,
}

impl Multipart {
    fn new() -> Multipart {
        Multipart { boundary: format!("agentd-{:032x}", rand::random::<u128>()), body: Vec::new() }
    }

    fn part_header(&mut self, disposition: &str, content_type: Option<&str>) {
        self.body.extend_from_slice(format!("--{}\r\nContent-Disposition: form-data; {disposition}\r\n", self.boundary).as_bytes());
        if let Some(content_type) = content_type {
            self.body.extend_from_slice(format!("Content-Type: {content_type}\r\n").as_bytes());
        }
        self.body.extend_from_slice(b"\r\n");
    }

    /// A text field (`name` and `value` are ours or checked: no quotes or line breaks).
    fn text(&mut self, name: &str, value: &str) {
        self.part_header(&format!("name=\"{name}\""), None);
        self.body.extend_from_slice(value.as_bytes());
        self.body.extend_from_slice(b"\r\n");
    }

    fn file(&mut self, name: &str, filename: &str, content_type: &str, data: &[u8]) {
        self.part_header(&format!("name=\"{name}\"; filename=\"{filename}\""), Some(content_type));
        self.body.extend_from_slice(data);
        self.body.extend_from_slice(b"\r\n");
    }

    /// The `Content-Type` header and the body.
    fn finish(mut self) -> (String, Bytes) {
        self.body.extend_from_slice(format!("--{}--\r\n", self.boundary).as_bytes());
        (format!("multipart/form-data; boundary={}", self.boundary), Bytes::from(self.body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked() {
        assert!(SpeechClient::new(SpeechSettings::new("http://localhost:8000/v1/")).is_ok());
        for bad in ["not a url", "ftp://host/v1", "http://host/v1?x=1"] {
            assert!(matches!(SpeechClient::new(SpeechSettings::new(bad)), Err(SpeechError::Config(_))), "{bad}");
        }
        let no_model = SpeechSettings { speech_model: " ".into(), ..SpeechSettings::new("http://h/v1") };
        assert!(SpeechClient::new(no_model).unwrap_err().to_string().contains("speech model"));
        let too_much = SpeechSettings { max_audio_bytes: MAX_AUDIO_BYTES + 1, ..SpeechSettings::new("http://h/v1") };
        assert!(SpeechClient::new(too_much).is_err());
        let bad_key = SpeechSettings { api_key: Some("a\nb".into()), ..SpeechSettings::new("http://h/v1") };
        assert!(!SpeechClient::new(bad_key).unwrap_err().to_string().contains("a\nb"));
    }

    #[test]
    fn debug_hides_the_key() {
        let client = SpeechClient::new(SpeechSettings { api_key: Some("sk-secret-123".into()), ..SpeechSettings::new("http://h/v1") }).unwrap();
        let printed = format!("{client:?} {:?}", client.inner.auth);
        assert!(!printed.contains("sk-secret-123"), "{printed}");
    }

    #[test]
    fn only_transient_failures_are_retried() {
        assert!(SpeechError::Http { status: 503, message: String::new() }.is_retryable());
        assert!(!SpeechError::Http { status: 400, message: String::new() }.is_retryable());
        assert!(SpeechError::Timeout.is_retryable());
        assert!(!SpeechError::Invalid("x".into()).is_retryable());
    }

    #[test]
    fn multipart_bodies_are_well_formed() {
        let mut form = Multipart::new();
        form.text("model", "whisper-1");
        form.file("file", "audio.wav", "audio/wav", b"RIFF\r\n--");
        let boundary = form.boundary.clone();
        let (content_type, body) = form.finish();
        assert_eq!(content_type, format!("multipart/form-data; boundary={boundary}"));
        let expected = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"audio.wav\"\r\nContent-Type: audio/wav\r\n\r\nRIFF\r\n--\r\n\
             --{boundary}--\r\n"
        );
        assert_eq!(String::from_utf8(body.to_vec()).unwrap(), expected);
    }
}
