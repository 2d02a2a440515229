//! What goes into an agent and comes out of it: `input` parts (`TEXT`, or base64 `AUDIO`
//! with an optional `mimeType`/`format`) and the output a client asks for (`TEXT` always;
//! `AUDIO` by `outputTypes: ["AUDIO"]` or `audioOutput: true`). Audio needs a speech
//! provider: [`transcribe`] and [`synthesize`] are the one place it is met, and until one is
//! configured they refuse with 400 — checked *before* the agent runs, so a refused request
//! starts nothing.

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

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

fn no_speech(what: &str) -> AutessaError {
    AutessaError::new(
        StatusCode::BAD_REQUEST,
        format!("{what} needs a speech provider: this server has none configured; send TEXT input and ask for TEXT output"),
    )
}

/// Speech to text: base64 audio → what was said.
pub(crate) async fn transcribe(_state: &AppState, _base64: &str, _mime_type: Option<&str>) -> AutessaResult<String> {
    Err(no_speech("Audio input"))
}

/// Whether [`synthesize`] can work, checked before the agent runs.
pub(crate) fn synthesize_ready(_state: &AppState) -> AutessaResult<()> {
    Err(no_speech("Audio output"))
}

/// Voice mode (`AUDIO_CHUNK` on the socket): speech in, transcribed as it comes.
pub(crate) fn voice_mode(_state: &AppState) -> AutessaError {
    no_speech("Voice mode (AUDIO_CHUNK)")
}

/// Text to speech: base64 audio of `text`.
pub(crate) async fn synthesize(_state: &AppState, _text: &str) -> AutessaResult<String> {
    Err(no_speech("Audio output"))
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
    fn audio_output_is_asked_for_two_ways() {
        let ask = |v: Value| OutputWanted::parse(v.as_object().unwrap());
        assert_eq!(ask(json!({})).unwrap(), OutputWanted { audio: false });
        assert_eq!(ask(json!({"audioOutput": true})).unwrap(), OutputWanted { audio: true });
        assert_eq!(ask(json!({"outputTypes": ["TEXT", "AUDIO"]})).unwrap(), OutputWanted { audio: true });
        assert!(ask(json!({"outputTypes": ["VIDEO"]})).is_err());
    }
}
