//! What goes into an agent and comes out of it: `input` parts (`TEXT`, or base64 `AUDIO`
//! with an optional `mimeType`/`format`) and the output a client asks for (`TEXT` always;
//! `AUDIO` by `outputTypes: ["AUDIO"]` or `audioOutput: true`). Audio needs a speech
//! provider: [`transcribe`] and [`synthesize`] are the one place it is met, and until one is
//! configured they refuse with 400 — checked *before* the agent runs, so a refused request
//! starts nothing.

use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value, json};

use crate::speech::{self, AudioInput};
use crate::state::AppState;

use super::error::{AutessaError, AutessaResult};

/// Characters of text an execute request may carry (the engine's goal bound).
const MAX_TEXT_CHARS: usize = 20_000;

/// One part of an execute request's `input`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum InputPart {
    /// Text.
    Text(String),
    /// Speech, base64-encoded, with its type when the client named it (`mimeType` or
    /// `format`).
    Audio { content: String, mime_type: Option<String> },
}

/// `input`: a non-empty array of `{inputType, content}`.
pub(crate) fn parse_input(value: Option<&Value>) -> AutessaResult<Vec<InputPart>> {
    let parts = match value {
        None | Some(Value::Null) => return Err(AutessaError::bad_request("input is required: [{\"inputType\": \"TEXT\", \"content\": \"...\"}]")),
        Some(Value::Array(parts)) if parts.is_empty() => return Err(AutessaError::bad_request("input must hold at least one part")),
        Some(Value::Array(parts)) => parts,
        Some(_) => return Err(AutessaError::bad_request("input must be an array of {inputType, content}")),
    };
    parts.iter().enumerate().map(|(i, part)| parse_part(i, part)).collect()
}

fn parse_part(i: usize, part: &Value) -> AutessaResult<InputPart> {
    let Some(part) = part.as_object() else {
        return Err(AutessaError::bad_request(format!("input[{i}] must be an object {{inputType, content}}")));
    };
    let content = match part.get("content") {
        Some(Value::String(text)) => text.clone(),
        _ => return Err(AutessaError::bad_request(format!("input[{i}].content is required (a string)"))),
    };
    let kind = part.get("inputType").and_then(Value::as_str).unwrap_or("TEXT");
    match kind.to_ascii_uppercase().as_str() {
        "TEXT" => Ok(InputPart::Text(content)),
        "AUDIO" => {
            let mime_type = ["mimeType", "format"].iter().find_map(|k| part.get(*k).and_then(Value::as_str)).map(str::to_owned);
            Ok(InputPart::Audio { content, mime_type })
        }
        other => Err(AutessaError::bad_request(format!("input[{i}].inputType must be TEXT or AUDIO, got `{other}`"))),
    }
}

/// The output a request asks for beyond text.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct OutputWanted {
    pub audio: bool,
}

impl OutputWanted {
    /// From `outputTypes` (`["TEXT", "AUDIO"]`) and `audioOutput`.
    pub fn parse(body: &Map<String, Value>) -> AutessaResult<Self> {
        let mut audio = match body.get("audioOutput") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(AutessaError::bad_request("audioOutput must be true or false")),
        };
        match body.get("outputTypes") {
            None | Some(Value::Null) => {}
            Some(Value::Array(types)) => {
                for t in types {
                    match t.as_str().map(str::to_ascii_uppercase).as_deref() {
                        Some("TEXT") => {}
                        Some("AUDIO") => audio = true,
                        _ => return Err(AutessaError::bad_request(format!("outputTypes may hold TEXT and AUDIO, got {t}"))),
                    }
                }
            }
            Some(_) => return Err(AutessaError::bad_request("outputTypes must be an array such as [\"TEXT\", \"AUDIO\"]")),
        }
        Ok(Self { audio })
    }
}

/// What the agent is told, and what the client said aloud (for a `TRANSCRIPTION` output).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Prompt {
    pub text: String,
    pub transcription: Option<String>,
}

/// The input as the agent's text: parts in order, one per line, audio transcribed; refused
/// up front when the output asks for audio this server cannot make.
pub(crate) async fn prompt(state: &AppState, parts: Vec<InputPart>, wanted: OutputWanted) -> AutessaResult<Prompt> {
    if wanted.audio {
        synthesize_ready(state)?;
    }
    let mut lines = Vec::new();
    let mut heard = Vec::new();
    for part in parts {
        match part {
            InputPart::Text(text) => lines.push(text),
            InputPart::Audio { content, mime_type } => {
                let text = transcribe(state, &content, mime_type.as_deref()).await?;
                heard.push(text.clone());
                lines.push(text);
            }
        }
    }
    let text = lines.join("\n").trim().to_owned();
    if text.is_empty() {
        return Err(AutessaError::bad_request("input holds no text: give at least one part with content"));
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(AutessaError::bad_request(format!("input must be at most {MAX_TEXT_CHARS} characters of text")));
    }
    Ok(Prompt { text, transcription: (!heard.is_empty()).then(|| heard.join("\n")) })
}

/// The output parts of an answer: its text, what was heard, and speech when asked for.
pub(crate) async fn output(state: &AppState, answer: &str, prompt: &Prompt, wanted: OutputWanted) -> AutessaResult<Vec<Value>> {
    let mut parts = vec![json!({"outputType": "TEXT", "content": answer})];
    if let Some(heard) = &prompt.transcription {
        parts.push(json!({"outputType": "TRANSCRIPTION", "content": heard}));
    }
    if wanted.audio {
        parts.push(json!({"outputType": "AUDIO", "content": synthesize(state, answer).await?}));
    }
    Ok(parts)
}

/// The speech format of a client's `mimeType`/`format` (`audio/wav`, `audio/mpeg`, `webm`,
/// `audio/ogg; codecs=opus`, …), or, when it names none, the one its first bytes show.
fn audio_format(mime_type: Option<&str>, bytes: &[u8]) -> Option<String> {
    if let Some(raw) = mime_type.map(str::trim).filter(|m| !m.is_empty()) {
        let name = raw.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        let name = name.strip_prefix("audio/").or_else(|| name.strip_prefix("video/")).unwrap_or(&name).to_owned();
        return Some(match name.as_str() {
            "mpeg" | "mpeg3" | "x-mpeg-3" | "mp3" => "mp3".into(),
            "wave" | "x-wav" | "vnd.wave" | "wav" => "wav".into(),
            "x-m4a" | "m4a" | "aac" => "m4a".into(),
            "x-flac" => "flac".into(),
            other => other.to_owned(),
        });
    }
    let starts = |magic: &[u8]| bytes.starts_with(magic);
    Some(
        if starts(b"RIFF") {
            "wav"
        } else if starts(b"OggS") {
            "ogg"
        } else if starts(b"fLaC") {
            "flac"
        } else if starts(&[0x1A, 0x45, 0xDF, 0xA3]) {
            "webm"
        } else if bytes.get(4..8) == Some(b"ftyp") {
            "m4a"
        } else if starts(b"ID3") || (bytes.len() > 1 && bytes[0] == 0xFF && bytes[1] & 0xE0 == 0xE0) {
            "mp3"
        } else {
            return None;
        }
        .to_owned(),
    )
}

/// Speech to text: base64 audio → what was said (400 without a speech provider, or for audio
/// it cannot take; 502 when the provider fails).
pub(crate) async fn transcribe(state: &AppState, base64: &str, mime_type: Option<&str>) -> AutessaResult<String> {
    speech::client(state, "input").map_err(|_| no_speech("Audio input"))?;
    let head = BASE64.decode(base64.trim().get(..64.min(base64.trim().len()) / 4 * 4).unwrap_or_default()).unwrap_or_default();
    let input = AudioInput { data: Some(base64.to_owned()), format: audio_format(mime_type, &head), language: None };
    // The native checks name `input.data` / `input.format`; this API calls them `content` and
    // `mimeType`.
    let clip = speech::parse_audio(state, "input", &input).map_err(|mut e| {
        if e.field.as_deref() == Some("input.format") {
            return AutessaError::bad_request(format!("Audio input: give its mimeType (audio/wav, audio/mpeg, audio/webm, …); {}", e.message));
        }
        e.message = e.message.replace("input.data", "the AUDIO input's content");
        AutessaError::from(e)
    })?;
    Ok(speech::transcribe(state, "input", &clip).await?)
}

/// Whether [`synthesize`] can work, checked before the agent runs.
pub(crate) fn synthesize_ready(state: &AppState) -> AutessaResult<()> {
    speech::client(state, "outputTypes").map(|_| ()).map_err(|_| no_speech("Audio output"))
}

/// Text to speech: base64 mp3 of `text` (its `[n]` source markers left out).
pub(crate) async fn synthesize(state: &AppState, text: &str) -> AutessaResult<String> {
    synthesize_ready(state)?;
    let words = speech::spoken_text(&Value::String(text.to_owned())).unwrap_or_else(|| text.to_owned());
    let output = speech::AudioOutput { voice: None, format: speech::DEFAULT_OUTPUT_FORMAT };
    let spoken = speech::speak(state, "outputTypes", &words, &output).await?;
    Ok(BASE64.encode(spoken.audio))
}

fn no_speech(what: &str) -> AutessaError {
    AutessaError::new(
        StatusCode::BAD_REQUEST,
        format!("{what} needs a speech provider: this server has none configured (AGENTD_SPEECH_URL); send TEXT input and ask for TEXT output"),
    )
}

/// Voice mode: an utterance arriving as `AUDIO_CHUNK` messages (`content` base64, `final`
/// true on the last), buffered until it is whole, at most the speech provider's size.
#[derive(Debug, Default)]
pub(crate) struct Utterance {
    bytes: Vec<u8>,
    mime_type: Option<String>,
}

impl Utterance {
    /// Takes one chunk; the whole utterance (base64, mime type) once `final` is true.
    pub fn take(&mut self, state: &AppState, message: &Map<String, Value>) -> AutessaResult<Option<(String, Option<String>)>> {
        let speech = speech::client(state, "content").map_err(|_| no_speech("Voice mode (AUDIO_CHUNK)"))?;
        let content = message.get("content").and_then(Value::as_str).unwrap_or_default();
        let chunk = BASE64.decode(content.trim()).map_err(|e| AutessaError::bad_request(format!("AUDIO_CHUNK content must be base64: {e}")))?;
        if self.bytes.len() + chunk.len() > speech.max_audio_bytes() {
            *self = Utterance::default();
            return Err(AutessaError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("The utterance is longer than the {} bytes of audio this server takes; it was dropped", speech.max_audio_bytes()),
            ));
        }
        self.bytes.extend_from_slice(&chunk);
        if let Some(mime) = ["mimeType", "format"].iter().find_map(|k| message.get(*k).and_then(Value::as_str)) {
            self.mime_type = Some(mime.to_owned());
        }
        if message.get("final").and_then(Value::as_bool) != Some(true) {
            return Ok(None);
        }
        let whole = std::mem::take(self);
        if whole.bytes.is_empty() {
            return Err(AutessaError::bad_request("The utterance holds no audio"));
        }
        Ok(Some((BASE64.encode(whole.bytes), whole.mime_type)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_parts_are_typed() {
        let parts = parse_input(Some(&json!([
            {"inputType": "TEXT", "content": "hello"},
            {"inputType": "audio", "content": "UklGRg==", "mimeType": "audio/wav"},
            {"content": "untyped is text"}
        ])))
        .unwrap();
        assert_eq!(parts[0], InputPart::Text("hello".into()));
        assert_eq!(parts[1], InputPart::Audio { content: "UklGRg==".into(), mime_type: Some("audio/wav".into()) });
        assert_eq!(parts[2], InputPart::Text("untyped is text".into()));
        for bad in [json!(null), json!([]), json!("text"), json!([{"inputType": "VIDEO", "content": "x"}]), json!([{"inputType": "TEXT"}])] {
            let e = parse_input(Some(&bad)).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{bad}");
        }
    }

    #[test]
    fn audio_formats_come_from_the_mime_type_or_the_first_bytes() {
        assert_eq!(audio_format(Some("audio/mpeg"), b""), Some("mp3".into()));
        assert_eq!(audio_format(Some("audio/webm;codecs=opus"), b""), Some("webm".into()));
        assert_eq!(audio_format(Some("wav"), b""), Some("wav".into()));
        assert_eq!(audio_format(None, b"RIFF\0\0\0\0WAVE"), Some("wav".into()));
        assert_eq!(audio_format(None, b"ID3\x04"), Some("mp3".into()));
        assert_eq!(audio_format(None, b"\0\0\0\x20ftypM4A "), Some("m4a".into()));
        assert_eq!(audio_format(None, b"hello"), None);
    }

    #[test]
    fn audio_output_is_asked_for_two_ways() {
        let ask = |v: Value| OutputWanted::parse(v.as_object().unwrap());
        assert_eq!(ask(json!({})).unwrap(), OutputWanted { audio: false });
        assert_eq!(ask(json!({"audioOutput": true})).unwrap(), OutputWanted { audio: true });
        assert_eq!(ask(json!({"outputTypes": ["TEXT", "AUDIO"]})).unwrap(), OutputWanted { audio: true });
        assert!(ask(json!({"outputTypes": ["VIDEO"]})).is_err());
    }
}
