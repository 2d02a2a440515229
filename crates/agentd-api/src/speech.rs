//! Audio in and out, for every API that takes or gives it (the native messages endpoint now,
//! compatible adapters later): parse audio at the edge, transcribe it, speak an answer, and
//! turn the speech provider's failures into API errors that name the field.
//!
//! The order matters for callers: parse everything first ([`parse_audio`],
//! [`parse_audio_output`]: no provider call, nothing stored), then [`transcribe`], then act.
//! With no speech provider configured, asking for audio is a 400 `invalid_request` naming the
//! field ([`NOT_CONFIGURED`]): the request asks for something this server does not offer, and
//! sending it again will not help. A provider that refuses the audio or the voice (400, 413,
//! 415, 422) is a 400 naming the field; any other provider failure is a 502 `upstream_failed`
//! (the provider's status and message for an HTTP error; network detail goes to the log only).

use agentd_llm::{AudioFormat, Speech, SpeechClient, SpeechError};
use axum::body::Bytes;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::state::AppState;

/// What a request for audio gets when no speech provider is configured.
pub const NOT_CONFIGURED: &str = "no speech provider is configured on this server: set AGENTD_SPEECH_URL to an \
     OpenAI-compatible server with /audio/transcriptions and /audio/speech";

/// The format spoken answers come in unless a request names one.
pub const DEFAULT_OUTPUT_FORMAT: AudioFormat = AudioFormat::Mp3;

/// The longest voice name accepted.
const MAX_VOICE_CHARS: usize = 64;

/// Audio sent to be transcribed: `{data, format, language?}`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AudioInput {
    /// The audio file, base64 (standard alphabet, padded).
    pub data: Option<String>,
    /// mp3 | mp4 | m4a | ogg | wav | webm | flac.
    pub format: Option<String>,
    /// The spoken language as ISO 639-1 (`en`, `fr`...), if known; else it is recognised.
    pub language: Option<String>,
}

/// A request for the answer spoken: `true`, or `{voice?, format?}`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum AudioOutputRequest {
    /// `true`: spoken in the server's voice as mp3; `false`: not spoken.
    Enabled(bool),
    /// Spoken with these choices.
    Options(AudioOutputOptions),
}

/// How to speak an answer.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AudioOutputOptions {
    /// The voice (default: the server's, `AGENTD_SPEECH_VOICE`).
    pub voice: Option<String>,
    /// mp3 (default) | opus | aac | flac | wav | pcm (24 kHz 16-bit mono, no header).
    pub format: Option<String>,
}

/// Spoken audio in a response.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AudioView {
    /// Its format (`mp3`, `wav`...).
    pub format: String,
    /// The audio file, base64.
    pub data: String,
    /// Whether the end of the text was left unspoken: a speech request takes 4,096
    /// characters; mp3, aac and pcm join up to four, other formats speak the first only.
    pub truncated: bool,
}

impl From<Speech> for AudioView {
    fn from(speech: Speech) -> Self {
        AudioView { format: speech.format.as_str().to_owned(), data: BASE64.encode(&speech.audio), truncated: speech.truncated }
    }
}

/// Audio ready to transcribe.
#[derive(Debug, Clone)]
pub struct AudioClip {
    /// The file's bytes.
    pub bytes: Bytes,
    /// Its format.
    pub format: AudioFormat,
    /// Its language, when the caller said.
    pub language: Option<String>,
}

/// A parsed request for speech.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioOutput {
    /// The voice, or None for the server's.
    pub voice: Option<String>,
    /// The format.
    pub format: AudioFormat,
}

/// The speech client, or the 400 naming `field` when none is configured.
pub fn client<'s>(state: &'s AppState, field: &str) -> ApiResult<&'s SpeechClient> {
    state.speech.as_ref().ok_or_else(|| ApiError::invalid(field, NOT_CONFIGURED))
}

/// The JSON body limit of a route that takes audio: the configured limit, raised to fit the
/// largest audio in base64 when a speech provider is configured.
pub fn body_limit(state: &AppState) -> usize {
    let base = state.config.body_limit_bytes;
    match &state.speech {
        // 4 characters of base64 per 3 bytes, and room for the rest of the body.
        Some(speech) => base.max(speech.max_audio_bytes().div_ceil(3) * 4 + (64 << 10)),
        None => base,
    }
}

/// Checks `input` (the request's field `field`): a speech provider is configured, the format
/// is one it transcribes (`field.format`), the data is base64 (`field.data`) of at most the
/// configured bytes (`field.data`, 413), the language is a language code (`field.language`).
pub fn parse_audio(state: &AppState, field: &str, input: &AudioInput) -> ApiResult<AudioClip> {
    let speech = client(state, field)?;
    let name = |part: &str| format!("{field}.{part}");
    let format = input.format.as_deref().map(str::trim).unwrap_or_default();
    let format = match format.parse::<AudioFormat>() {
        Ok(format) if format.is_input() => format,
        _ if format.is_empty() => {
            return Err(ApiError::invalid(name("format"), format!("{} is required: one of {}", name("format"), AudioFormat::input_names())));
        }
        _ => {
            return Err(ApiError::invalid(
                name("format"),
                format!("`{format}` is not an audio format that can be transcribed: use one of {}", AudioFormat::input_names()),
            ));
        }
    };
    let data = input.data.as_deref().map(str::trim).unwrap_or_default();
    if data.is_empty() {
        return Err(ApiError::invalid(name("data"), format!("{} is required: the audio file in base64", name("data"))));
    }
    let bytes = BASE64
        .decode(data)
        .map_err(|e| ApiError::invalid(name("data"), format!("{} is not base64 (standard alphabet, padded): {e}", name("data"))))?;
    if bytes.len() > speech.max_audio_bytes() {
        return Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("{} holds {} bytes of audio; this server takes at most {}", name("data"), bytes.len(), speech.max_audio_bytes()),
        )
        .with_field(name("data")));
    }
    let language = match input.language.as_deref().map(str::trim).filter(|l| !l.is_empty()) {
        Some(l) if (2..=16).contains(&l.len()) && l.chars().all(|c| c.is_ascii_alphabetic() || c == '-') => Some(l.to_owned()),
        Some(l) => return Err(ApiError::invalid(name("language"), format!("`{l}` is not a language code such as en or pt-BR"))),
        None => None,
    };
    Ok(AudioClip { bytes: Bytes::from(bytes), format, language })
}

/// Checks a request for speech (the request's field `field`): None when not asked for, else a
/// speech provider is configured, the format is one it makes (`field.format`) and the voice a
/// name (`field.voice`).
pub fn parse_audio_output(state: &AppState, field: &str, request: Option<&AudioOutputRequest>) -> ApiResult<Option<AudioOutput>> {
    let options = match request {
        None | Some(AudioOutputRequest::Enabled(false)) => return Ok(None),
        Some(AudioOutputRequest::Enabled(true)) => AudioOutputOptions::default(),
        Some(AudioOutputRequest::Options(options)) => options.clone(),
    };
    client(state, field)?;
    let format = match options.format.as_deref().map(str::trim) {
        None | Some("") => DEFAULT_OUTPUT_FORMAT,
        Some(name) => match name.parse::<AudioFormat>() {
            Ok(format) if format.is_output() => format,
            _ => {
                return Err(ApiError::invalid(
                    format!("{field}.format"),
                    format!("`{name}` is not a format speech is made in: use one of {}", AudioFormat::output_names()),
                ));
            }
        },
    };
    let voice = match options.voice.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
        Some(v) if v.chars().count() <= MAX_VOICE_CHARS && v.chars().all(|c| c.is_alphanumeric() || "-_.".contains(c)) => Some(v.to_owned()),
        Some(_) => {
            return Err(ApiError::invalid(
                format!("{field}.voice"),
                format!("{field}.voice must be a voice name of at most {MAX_VOICE_CHARS} letters, digits, '-', '_' or '.'"),
            ));
        }
        None => None,
    };
    Ok(Some(AudioOutput { voice, format }))
}

/// The text spoken in `clip` (parsed from the request's field `field`).
pub async fn transcribe(state: &AppState, field: &str, clip: &AudioClip) -> ApiResult<String> {
    let speech = client(state, field)?;
    speech.transcribe(clip.bytes.clone(), clip.format, clip.language.as_deref()).await.map_err(|e| provider_error(field, "transcribe the audio", e))
}

/// `text` spoken as `output` asks (the request's field `field`).
pub async fn speak(state: &AppState, field: &str, text: &str, output: &AudioOutput) -> ApiResult<Speech> {
    let speech = client(state, field)?;
    speech.speak(text, output.voice.as_deref(), output.format).await.map_err(|e| provider_error(field, "speak the answer", e))
}

/// The words to speak of an agent's answer: a string answer, or a research answer's `answer`
/// without its `[n]` source markers; None for other answers (structured data is not read out).
pub fn spoken_text(response: &Value) -> Option<String> {
    let text = response.as_str().or_else(|| response.get("answer")?.as_str())?;
    let text = without_source_markers(text);
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// `text` without `[n]` markers (and the space before one).
fn without_source_markers(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        let after = &rest[open + 1..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && after[digits..].starts_with(']') {
            out.push_str(rest[..open].trim_end_matches(' '));
            rest = &after[digits + 1..];
        } else {
            out.push_str(&rest[..=open]);
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// A speech failure as an API error naming `field`; `doing` says what failed ("transcribe the
/// audio").
fn provider_error(field: &str, doing: &str, error: SpeechError) -> ApiError {
    match error {
        SpeechError::Invalid(message) => ApiError::invalid(field, message),
        SpeechError::Http { status: 400 | 413 | 415 | 422, message } => {
            ApiError::invalid(field, format!("the speech provider could not {doing}: {message}"))
        }
        SpeechError::Http { status, message } => ApiError::new(
            ErrorCode::UpstreamFailed,
            format!("the speech provider could not {doing}: it answered HTTP {status}: {message}"),
        )
        .with_field(field),
        other => {
            tracing::warn!(error = %other, field, "speech provider failed");
            let why = match other {
                SpeechError::Timeout => "it did not answer in time",
                SpeechError::Transport(_) => "it could not be reached",
                _ => "its answer could not be read",
            };
            ApiError::new(ErrorCode::UpstreamFailed, format!("the speech provider could not {doing}: {why}; the server log has the details"))
                .with_field(field)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn answers_are_spoken_without_source_markers() {
        assert_eq!(spoken_text(&json!("Hello.")).as_deref(), Some("Hello."));
        let research = json!({"answer": "Paris is the capital [1], and big [2][3]. See [note] and a[12]b.", "sources": []});
        assert_eq!(spoken_text(&research).as_deref(), Some("Paris is the capital, and big. See [note] and ab."));
        assert_eq!(spoken_text(&json!({"price": 3})), None);
        assert_eq!(spoken_text(&json!("  [1] ")), None);
        assert_eq!(spoken_text(&json!("x[")).as_deref(), Some("x["));
    }

    #[test]
    fn provider_failures_name_the_field() {
        let refused = provider_error("audio", "transcribe the audio", SpeechError::Http { status: 400, message: "bad file".into() });
        assert_eq!((refused.code, refused.field.as_deref()), (ErrorCode::InvalidRequest, Some("audio")));
        assert_eq!(refused.message, "the speech provider could not transcribe the audio: bad file");
        let down = provider_error("audio", "transcribe the audio", SpeechError::Http { status: 500, message: "crashed".into() });
        assert_eq!((down.code, down.code.status().as_u16()), (ErrorCode::UpstreamFailed, 502));
        let lost = provider_error("audio_output", "speak the answer", SpeechError::Transport("http://10.0.0.5 refused".into()));
        assert!(!lost.message.contains("10.0.0.5"), "network detail stays in the log: {}", lost.message);
    }
}
