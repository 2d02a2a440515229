//! The speech client against the fake speech server: the multipart upload and the JSON speech
//! request it sends, long texts, limits, retries and errors.

use std::time::Duration;

use agentd_llm::{AudioFormat, MAX_SPEECH_INPUT_CHARS, SpeechClient, SpeechError, SpeechSettings};
use agentd_testllm::speech::FakeSpeech;
use bytes::Bytes;

use crate::KEY;

async fn start() -> (FakeSpeech, SpeechClient) {
    let server = FakeSpeech::start().await;
    let settings = SpeechSettings {
        api_key: Some(KEY.to_owned()),
        timeout: Duration::from_secs(5),
        backoff_base: Duration::from_millis(1),
        max_audio_bytes: 1000,
        ..SpeechSettings::new(server.base_url())
    };
    (server, SpeechClient::new(settings).expect("valid settings"))
}

#[tokio::test]
async fn transcription_uploads_the_file_with_its_type() {
    let (server, client) = start().await;
    let text = client.transcribe(Bytes::from_static(b" what is the weather? "), AudioFormat::Webm, Some("en")).await.unwrap();
    assert_eq!(text, "what is the weather?");
    let request = &server.requests()[0];
    assert_eq!(request.path, "/v1/audio/transcriptions");
    assert_eq!(request.authorization.as_deref(), Some(format!("Bearer {KEY}").as_str()));
    assert_eq!((request.file_name.as_deref(), request.file_type.as_deref()), (Some("audio.webm"), Some("audio/webm")));
    assert_eq!((request.field("model"), request.field("language"), request.field("response_format")), (Some("whisper-1"), Some("en"), Some("json")));

    client.transcribe(Bytes::from_static(b"x"), AudioFormat::Mp3, None).await.unwrap();
    let request = &server.requests()[1];
    assert_eq!((request.file_type.as_deref(), request.field("language")), (Some("audio/mpeg"), None));
}

#[tokio::test]
async fn audio_is_checked_before_it_is_sent() {
    let (server, client) = start().await;
    let at_limit = client.transcribe(Bytes::from(vec![b'a'; 1000]), AudioFormat::Wav, None).await.unwrap();
    assert_eq!(at_limit.len(), 1000);
    let over = client.transcribe(Bytes::from(vec![b'a'; 1001]), AudioFormat::Wav, None).await.unwrap_err();
    assert_eq!(over, SpeechError::Invalid("the audio is larger than 1000 bytes".into()));
    assert!(matches!(client.transcribe(Bytes::new(), AudioFormat::Wav, None).await, Err(SpeechError::Invalid(_))));
    let error = client.transcribe(Bytes::from_static(b"x"), AudioFormat::Pcm, None).await.unwrap_err();
    assert!(error.to_string().contains("mp3, mp4, m4a, ogg, wav, webm, flac"), "{error}");
    let error = client.transcribe(Bytes::from_static(b"x"), AudioFormat::Wav, Some("en\r\n--x")).await.unwrap_err();
    assert!(matches!(error, SpeechError::Invalid(_)), "a language cannot inject form fields");
    assert_eq!(server.requests().len(), 1, "only the audio at the limit was sent");
}

#[tokio::test]
async fn speech_sends_the_text_voice_and_format() {
    let (server, client) = start().await;
    let speech = client.speak("Hello there.", None, AudioFormat::Wav).await.unwrap();
    assert_eq!((speech.audio, speech.format, speech.truncated), (FakeSpeech::spoken("alloy", "Hello there."), AudioFormat::Wav, false));
    let speech = client.speak("Hi", Some("nova"), AudioFormat::Opus).await.unwrap();
    assert_eq!(speech.audio, FakeSpeech::spoken("nova", "Hi"));
    let request = &server.requests()[1];
    assert_eq!(request.path, "/v1/audio/speech");
    assert_eq!((request.field("model"), request.field("voice"), request.field("response_format")), (Some("tts-1"), Some("nova"), Some("opus")));
    assert!(matches!(client.speak("  ", None, AudioFormat::Mp3).await, Err(SpeechError::Invalid(_))));
    assert!(matches!(client.speak("x", None, AudioFormat::Webm).await, Err(SpeechError::Invalid(_))));
}

#[tokio::test]
async fn long_texts_are_joined_in_mp3_and_cut_in_wav() {
    let (server, client) = start().await;
    let text = "This is one sentence of the answer. ".repeat(240); // 8,640 characters: three pieces.
    let speech = client.speak(&text, None, AudioFormat::Mp3).await.unwrap();
    let inputs: Vec<String> = server.requests().iter().map(|r| r.field("input").unwrap().to_owned()).collect();
    assert_eq!(inputs.len(), 3);
    assert!(inputs.iter().all(|i| i.chars().count() <= MAX_SPEECH_INPUT_CHARS && i.ends_with("answer.")));
    let joined: Vec<u8> = inputs.iter().flat_map(|i| FakeSpeech::spoken("alloy", i)).collect();
    assert_eq!((speech.audio, speech.truncated), (joined, false));

    let speech = client.speak(&text, None, AudioFormat::Wav).await.unwrap();
    assert!(speech.truncated, "a WAV file cannot be joined: the first piece only");
    assert_eq!(server.requests().len(), 4);
    assert_eq!(speech.audio, FakeSpeech::spoken("alloy", &inputs[0]));
}

#[tokio::test]
async fn failures_are_retried_then_reported_with_the_providers_message() {
    let (server, client) = start().await;
    server.fail_next(2, 503, "overloaded");
    assert_eq!(client.speak("Hi", None, AudioFormat::Mp3).await.unwrap().audio, FakeSpeech::spoken("alloy", "Hi"));
    assert_eq!(server.requests().len(), 3);

    server.fail_next(3, 500, "the model crashed");
    let error = client.transcribe(Bytes::from_static(b"x"), AudioFormat::Wav, None).await.unwrap_err();
    assert_eq!(error, SpeechError::Http { status: 500, message: "the model crashed".into() });
    assert_eq!(error.to_string(), "the speech provider answered HTTP 500: the model crashed");
    assert_eq!(server.requests().len(), 6, "one attempt and two retries");

    server.fail_next(1, 401, &format!("Incorrect API key provided: {KEY}"));
    let error = client.speak("Hi", None, AudioFormat::Mp3).await.unwrap_err();
    assert_eq!(error, SpeechError::Http { status: 401, message: "Incorrect API key provided: <redacted>".into() });
    assert_eq!(server.requests().len(), 7, "a client error is not retried");
}

#[tokio::test]
async fn an_unreachable_server_is_a_transport_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let settings = SpeechSettings { max_retries: 0, ..SpeechSettings::new(format!("http://{address}/v1")) };
    let error = SpeechClient::new(settings).unwrap().speak("Hi", None, AudioFormat::Mp3).await.unwrap_err();
    assert!(matches!(error, SpeechError::Transport(_)), "{error:?}");
    let text = error.to_string();
    assert!(text.contains(&format!("connect to {address}: ")) && !text.contains("/audio/speech"), "{text}");
}
