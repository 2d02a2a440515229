//! Audio in and out of conversations against the fake speech server: a spoken message is
//! transcribed and sent as text, an answer comes back spoken, and every way it can go wrong
//! (no speech provider, bad audio, limits at N and N+1, a failing provider) is a clear error
//! that names the field and leaves nothing half-done.

use agentd_testllm::speech::FakeSpeech;
use agentd_testllm::{Reply, ScriptedLlm};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

use crate::support::*;

/// The audio limit of the test servers.
const MAX_AUDIO: usize = 1000;

pub async fn spawn_speaking() -> (TestApp, FakeSpeech) {
    let speech = FakeSpeech::start().await;
    let url = speech.base_url();
    let app = spawn_with(|c| {
        c.speech_url = Some(url);
        c.speech_max_audio_bytes = MAX_AUDIO;
        c.speech_max_retries = 0;
    })
    .await;
    (app, speech)
}

/// A finished chat session to send messages to.
async fn conversation(app: &TestApp) -> String {
    let id = app.create_with(json!({"goal": "done:hello", "mode": "chat"})).await["id"].as_str().unwrap().to_owned();
    app.finish(&id).await;
    id
}

/// "Audio" that the fake speech server hears as `words`.
fn said(words: &str) -> Value {
    json!({"data": BASE64.encode(words), "format": "wav"})
}

async fn message(app: &TestApp, session: &str, body: Value) -> (u16, Value) {
    let r = app.post(format!("/v1/sessions/{session}/messages"), body).await;
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn session_count(app: &TestApp) -> usize {
    let page: Value = app.get("/v1/sessions?limit=100").await.json().await.unwrap();
    page["data"].as_array().unwrap().len()
}

fn decoded(audio: &Value) -> Vec<u8> {
    BASE64.decode(audio["data"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn a_spoken_message_is_transcribed_and_its_answer_spoken() {
    let (app, speech) = spawn_speaking().await;
    let first = conversation(&app).await;
    let body = json!({"audio": {"data": BASE64.encode("done:it is sunny"), "format": "webm", "language": "en"}, "audio_output": {"voice": "nova", "format": "wav"}});
    let (status, answer) = message(&app, &first, body).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["transcription"], "done:it is sunny");
    assert_eq!(answer["goal"], "done:it is sunny", "the transcript is the message");
    assert_eq!((answer["status"].as_str(), answer["response"].as_str()), (Some("completed"), Some("it is sunny")));
    assert_eq!(answer["conversation_id"], first);
    assert_eq!((answer["audio"]["format"].as_str(), answer["audio"]["truncated"].as_bool()), (Some("wav"), Some(false)));
    assert_eq!(decoded(&answer["audio"]), FakeSpeech::spoken("nova", "it is sunny"));
    assert!(answer.get("audio_error").is_none(), "{answer}");

    let requests = speech.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!((requests[0].file_name.as_deref(), requests[0].file_type.as_deref()), (Some("audio.webm"), Some("audio/webm")));
    assert_eq!((requests[0].field("model"), requests[0].field("language")), (Some("whisper-1"), Some("en")));
    assert_eq!((requests[1].field("model"), requests[1].field("input"), requests[1].field("response_format")), (Some("tts-1"), Some("it is sunny"), Some("wav")));

    // `true`: the server's voice, mp3; a typed message may ask for a spoken answer too.
    let (status, answer) = message(&app, &first, json!({"text": "done:typed", "audio_output": true})).await;
    assert_eq!(status, 201, "{answer}");
    assert!(answer.get("transcription").is_none());
    assert_eq!(answer["audio"]["format"], "mp3");
    assert_eq!(decoded(&answer["audio"]), FakeSpeech::spoken("alloy", "typed"));
    // Without audio_output, no audio.
    let (_, answer) = message(&app, &first, json!({"audio": said("done:quiet")})).await;
    assert_eq!((answer["transcription"].as_str(), answer.get("audio")), (Some("done:quiet"), None));
    app.shutdown().await;
}

#[tokio::test]
async fn the_model_reads_the_transcript_and_its_research_answer_is_spoken() {
    let llm = ScriptedLlm::start().await;
    let speech = FakeSpeech::start().await;
    let url = speech.base_url();
    let app = spawn_agents(&llm.openai_base_url(), |c| c.speech_url = Some(url)).await;
    llm.push(Reply::Text("Hello!".into()));
    let first = app.create_with(json!({"goal": "Hi", "mode": "chat"})).await["id"].as_str().unwrap().to_owned();
    app.finish(&first).await;
    llm.push(Reply::tool_call("answer", json!({"answer": "It rains in Brest."})));
    let body = json!({"audio": said("What is the weather in Brest?"), "audio_output": true});
    let (status, answer) = message(&app, &first, body).await;
    assert_eq!(status, 201, "{answer}");
    assert!(llm.requests()[1].text().contains("What is the weather in Brest?"), "the model is sent the transcript");
    assert_eq!(answer["response"]["answer"], "It rains in Brest.");
    assert_eq!(decoded(&answer["audio"]), FakeSpeech::spoken("alloy", "It rains in Brest."));
    app.shutdown().await;
}

#[tokio::test]
async fn audio_without_a_speech_provider_is_refused_naming_the_field() {
    let app = spawn_app().await;
    let first = conversation(&app).await;
    let (status, e) = error_of(app.post(format!("/v1/sessions/{first}/messages"), json!({"audio": said("done:x")})).await).await;
    assert_eq!((status, e["code"].as_str(), e["field"].as_str()), (400, Some("invalid_request"), Some("audio")));
    assert!(e["message"].as_str().unwrap().contains("no speech provider is configured") && e["message"].as_str().unwrap().contains("AGENTD_SPEECH_URL"), "{e}");
    let (status, e) = error_of(app.post(format!("/v1/sessions/{first}/messages"), json!({"text": "done:x", "audio_output": true})).await).await;
    assert_eq!((status, e["field"].as_str()), (400, Some("audio_output")));
    assert!(e["message"].as_str().unwrap().contains("AGENTD_SPEECH_URL"), "{e}");
    // Asking for no audio is fine.
    let (status, _) = message(&app, &first, json!({"text": "done:x", "audio_output": false})).await;
    assert_eq!(status, 201);
    assert_eq!(session_count(&app).await, 2, "nothing was sent for the refused messages");
    app.shutdown().await;
}

#[tokio::test]
async fn bad_audio_requests_name_the_field() {
    let (app, speech) = spawn_speaking().await;
    let first = conversation(&app).await;
    let cases = [
        (json!({"audio": {"data": "not base64!", "format": "wav"}}), 400, "audio.data"),
        (json!({"audio": {"format": "wav"}}), 400, "audio.data"),
        (json!({"audio": {"data": "aGk=", "format": "midi"}}), 400, "audio.format"),
        (json!({"audio": {"data": "aGk=", "format": "pcm"}}), 400, "audio.format"),
        (json!({"audio": {"data": "aGk="}}), 400, "audio.format"),
        (json!({"audio": {"data": "aGk=", "format": "wav", "language": "english!"}}), 400, "audio.language"),
        (json!({"audio": {"data": "aGk=", "format": "wav", "speed": 2}}), 400, "audio.speed"),
        (json!({"text": "done:x", "audio": said("done:x")}), 400, "audio"),
        (json!({}), 400, "text"),
        (json!({"audio": said("   ")}), 400, "audio"),
        (json!({"text": "done:x", "audio_output": true, "wait": false}), 400, "audio_output"),
        (json!({"text": "done:x", "audio_output": {"format": "webm"}}), 400, "audio_output.format"),
        (json!({"text": "done:x", "audio_output": {"voice": "a voice; with spaces"}}), 400, "audio_output.voice"),
        (json!({"text": "done:x", "audio_output": "yes"}), 400, "audio_output"),
    ];
    for (body, status, field) in cases {
        let (got, e) = error_of(app.post(format!("/v1/sessions/{first}/messages"), body.clone()).await).await;
        assert_eq!((got, e["field"].as_str()), (status, Some(field)), "{body}: {e}");
    }
    assert_eq!(speech.requests().len(), 1, "only the silent audio reached the provider");
    assert_eq!(session_count(&app).await, 1, "no refused message was sent");
    app.shutdown().await;
}

#[tokio::test]
async fn audio_is_taken_up_to_the_limit() {
    let (app, speech) = spawn_speaking().await;
    let first = conversation(&app).await;
    let at_limit = format!("done:{}", "a".repeat(MAX_AUDIO - 5));
    let (status, answer) = message(&app, &first, json!({"audio": said(&at_limit)})).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(speech.requests()[0].file.len(), MAX_AUDIO);
    let over = "a".repeat(MAX_AUDIO + 1);
    let (status, e) = error_of(app.post(format!("/v1/sessions/{}/messages", answer["id"].as_str().unwrap()), json!({"audio": said(&over)})).await).await;
    assert_eq!((status, e["code"].as_str(), e["field"].as_str()), (413, Some("payload_too_large"), Some("audio.data")));
    assert!(e["message"].as_str().unwrap().contains("at most 1000"), "{e}");
    assert_eq!(speech.requests().len(), 1);
    app.shutdown().await;
}

#[tokio::test]
async fn the_body_limit_makes_room_for_the_largest_audio() {
    let speech = FakeSpeech::start().await;
    let url = speech.base_url();
    // A small body limit; 64 KiB of audio is about 87 KiB of JSON.
    let app = spawn_with(|c| {
        c.speech_url = Some(url);
        c.body_limit_bytes = 16 << 10;
        c.speech_max_audio_bytes = 64 << 10;
    })
    .await;
    let first = conversation(&app).await;
    // Four bytes a character keeps the transcript within a message's 20,000 characters.
    let words = format!("done:{}bbb", "😀".repeat(16_382));
    assert_eq!(words.len(), 64 << 10);
    let (status, answer) = message(&app, &first, json!({"audio": said(&words)})).await;
    assert_eq!(status, 201, "{answer}");
    let (status, _) = error_of(app.post("/v1/sessions", json!({"goal": "x".repeat(20 << 10)})).await).await;
    assert_eq!(status, 413, "other routes keep the configured limit");
    app.shutdown().await;
}

#[tokio::test]
async fn a_failing_provider_is_a_clear_error_and_nothing_is_half_done() {
    let (app, speech) = spawn_speaking().await;
    let first = conversation(&app).await;
    speech.fail_next(1, 500, "the model crashed");
    let (status, e) = error_of(app.post(format!("/v1/sessions/{first}/messages"), json!({"audio": said("done:x")})).await).await;
    assert_eq!((status, e["code"].as_str(), e["type"].as_str(), e["field"].as_str()), (502, Some("upstream_failed"), Some("api_error"), Some("audio")));
    assert_eq!(e["message"], "the speech provider could not transcribe the audio: it answered HTTP 500: the model crashed");
    speech.fail_next(1, 400, "Invalid file format.");
    let (status, e) = error_of(app.post(format!("/v1/sessions/{first}/messages"), json!({"audio": said("done:x")})).await).await;
    assert_eq!((status, e["field"].as_str()), (400, Some("audio")), "the provider refused the audio: {e}");
    assert!(e["message"].as_str().unwrap().ends_with("Invalid file format."), "{e}");
    assert_eq!(session_count(&app).await, 1, "no follow-up session for audio that was not transcribed");
    let unknown = uuid::Uuid::now_v7();
    let (status, _) = error_of(app.post(format!("/v1/sessions/{unknown}/messages"), json!({"audio": said("done:x")})).await).await;
    assert_eq!(status, 404);
    assert_eq!(speech.requests().len(), 2, "an unknown session's audio is not transcribed");

    // The answer could not be spoken: the message was sent and answered all the same.
    speech.fail_next(1, 503, "overloaded");
    let (status, answer) = message(&app, &first, json!({"text": "done:still here", "audio_output": true})).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["response"], "still here");
    assert!(answer.get("audio").is_none());
    assert_eq!((answer["audio_error"]["code"].as_str(), answer["audio_error"]["field"].as_str()), (Some("upstream_failed"), Some("audio_output")));
    assert!(answer["audio_error"]["message"].as_str().unwrap().contains("HTTP 503: overloaded"), "{answer}");
    // A session that ends without an answer has nothing to speak.
    let (status, answer) = message(&app, answer["id"].as_str().unwrap(), json!({"text": "fail:broken", "audio_output": true})).await;
    assert_eq!((status, answer["status"].as_str()), (201, Some("failed")));
    assert!(answer["audio_error"]["message"].as_str().unwrap().contains("no answer to speak"), "{answer}");
    app.shutdown().await;
}
