//! `OpenAiEmbeddings` against a fake `/embeddings` endpoint on loopback: batching, order by
//! `index`, normalisation, learned dimensions, retries (429 with Retry-After, 5xx), the
//! provider's error message, key redaction, bad answers and timeouts.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentd_embed::{EmbedError, EmbedSettings, Embedder, OpenAiEmbeddings, RemoteSettings};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

const KEY: &str = "sk-test-0123456789";

/// What the fake answers to one request; once the script is used up it answers `Embed`.
enum Reply {
    /// Embeddings for every input: `[len(input), 1, 2]` (not unit length), in reverse order.
    Embed,
    /// Embeddings of this many dimensions.
    EmbedDims(usize),
    /// One embedding fewer than inputs.
    TooFew,
    /// An error status with headers and a body.
    Status(u16, Vec<(&'static str, &'static str)>, &'static str),
    /// Answers after this long.
    Slow(Duration),
}

#[derive(Default)]
struct Fake {
    script: Mutex<VecDeque<Reply>>,
    /// Each request's `Authorization` header and body.
    requests: Mutex<Vec<(Option<String>, Value)>>,
}

async fn embeddings(State(fake): State<Arc<Fake>>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let auth = headers.get("authorization").map(|v| v.to_str().unwrap().to_owned());
    fake.requests.lock().unwrap().push((auth, body.clone()));
    let reply = fake.script.lock().unwrap().pop_front().unwrap_or(Reply::Embed);
    let inputs: Vec<String> = body["input"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect();
    let answer = |dims: usize, count: usize| {
        let data: Vec<Value> = (0..count)
            .rev()
            .map(|i| {
                let mut v = vec![inputs[i].len() as f32 + 1.0, 1.0, 2.0];
                v.resize(dims, 0.5);
                json!({"object": "embedding", "index": i, "embedding": v})
            })
            .collect();
        Json(json!({"object": "list", "data": data, "model": body["model"], "usage": {"prompt_tokens": 1, "total_tokens": 1}}))
            .into_response()
    };
    match reply {
        Reply::Embed => answer(3, inputs.len()),
        Reply::EmbedDims(dims) => answer(dims, inputs.len()),
        Reply::TooFew => answer(3, inputs.len() - 1),
        Reply::Status(status, headers, body) => {
            let mut response = (StatusCode::from_u16(status).unwrap(), body.to_owned()).into_response();
            for (name, value) in headers {
                response.headers_mut().insert(name, value.parse().unwrap());
            }
            response
        }
        Reply::Slow(wait) => {
            tokio::time::sleep(wait).await;
            answer(3, inputs.len())
        }
    }
}

/// Starts the fake on a free loopback port; its base URL (ending in `/v1`) and its state.
async fn start(script: Vec<Reply>) -> (String, Arc<Fake>) {
    let fake = Arc::new(Fake { script: Mutex::new(script.into()), ..Fake::default() });
    let app = axum::Router::new().route("/v1/embeddings", axum::routing::post(embeddings)).with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, fake)
}

fn client(base: &str, tune: impl FnOnce(&mut RemoteSettings)) -> OpenAiEmbeddings {
    let mut settings = RemoteSettings { api_key: Some(KEY.into()), backoff_base: Duration::from_millis(1), ..RemoteSettings::new(base, "text-embedding-3-small") };
    tune(&mut settings);
    OpenAiEmbeddings::new(settings).unwrap()
}

fn texts(n: usize) -> Vec<String> {
    (0..n).map(|i| "x".repeat(i % 7)).collect()
}

#[tokio::test]
async fn batches_in_order_normalised_with_learned_dimensions() {
    let (base, fake) = start(vec![]).await;
    let embedder = client(&base, |s| s.batch_size = 4);
    assert_eq!(embedder.dimensions(), None);
    let inputs = texts(10);
    let vectors = embedder.embed(&inputs).await.unwrap();
    assert_eq!(vectors.len(), 10);
    for (input, v) in inputs.iter().zip(&vectors) {
        // [len + 1, 1, 2] scaled to unit length, in the inputs' order despite the reversed answer.
        let raw = [input.len() as f32 + 1.0, 1.0, 2.0];
        let norm = raw.iter().map(|x| x * x).sum::<f32>().sqrt();
        for (a, b) in v.iter().zip(raw) {
            assert!((a - b / norm).abs() < 1e-6);
        }
    }
    assert_eq!(embedder.dimensions(), Some(3));
    assert_eq!(embedder.model_name(), "text-embedding-3-small");
    let requests = fake.requests.lock().unwrap().clone();
    let sizes: Vec<usize> = requests.iter().map(|(_, body)| body["input"].as_array().unwrap().len()).collect();
    assert_eq!(sizes, [4, 4, 2]);
    let (auth, body) = &requests[0];
    assert_eq!(auth.as_deref(), Some(format!("Bearer {KEY}").as_str()));
    assert_eq!(body["model"], "text-embedding-3-small");
    assert_eq!(body["encoding_format"], "float");
    assert!(embedder.embed(&[]).await.unwrap().is_empty());
}

#[tokio::test]
async fn retries_a_429_after_the_wait_it_asks_for() {
    let (base, fake) = start(vec![
        Reply::Status(429, vec![("retry-after-ms", "30")], r#"{"error":{"message":"Rate limit reached","type":"requests"}}"#),
        Reply::Status(503, vec![], "upstream unavailable"),
    ])
    .await;
    let embedder = client(&base, |_| {});
    let started = std::time::Instant::now();
    let vectors = embedder.embed(&texts(3)).await.unwrap();
    assert_eq!(vectors.len(), 3);
    assert_eq!(fake.requests.lock().unwrap().len(), 3);
    assert!(started.elapsed() >= Duration::from_millis(30), "the Retry-After was not honoured");
}

#[tokio::test]
async fn gives_up_after_the_retries_with_the_providers_message() {
    let server_error = || Reply::Status(500, vec![], r#"{"error":{"message":"The server had an error"}}"#);
    let (base, fake) = start(vec![server_error(), server_error(), server_error(), server_error()]).await;
    let error = client(&base, |s| s.max_retries = 2).embed(&texts(1)).await.unwrap_err();
    assert_eq!(fake.requests.lock().unwrap().len(), 3);
    assert!(matches!(&error, EmbedError::Provider { status: 500, .. }), "{error:?}");
    assert_eq!(error.to_string(), "the embeddings endpoint answered 500: The server had an error");
}

#[tokio::test]
async fn a_client_error_is_not_retried_and_the_key_is_redacted() {
    let (base, fake) = start(vec![Reply::Status(
        401,
        vec![],
        r#"{"error":{"message":"Incorrect API key provided: sk-test-0123456789.","type":"invalid_request_error"}}"#,
    )])
    .await;
    let error = client(&base, |_| {}).embed(&texts(2)).await.unwrap_err();
    assert_eq!(fake.requests.lock().unwrap().len(), 1);
    let text = error.to_string();
    assert_eq!(text, "the embeddings endpoint answered 401: Incorrect API key provided: <redacted>.");
    assert!(!format!("{error:?}").contains(KEY));

    let (base, _) = start(vec![Reply::Status(400, vec![], "This model's maximum context length is 8192 tokens")]).await;
    let error = client(&base, |_| {}).embed(&texts(1)).await.unwrap_err();
    assert_eq!(error.to_string(), "the embeddings endpoint answered 400: This model's maximum context length is 8192 tokens");
}

#[tokio::test]
async fn unusable_answers_are_errors() {
    let (base, _) = start(vec![Reply::TooFew]).await;
    let error = client(&base, |_| {}).embed(&texts(3)).await.unwrap_err();
    assert_eq!(error.to_string(), "the embeddings endpoint's answer is not usable: 2 embeddings for 3 inputs");

    // Dimensions configured, or learned from a first answer, hold for every later answer.
    let (base, _) = start(vec![Reply::EmbedDims(5)]).await;
    let error = client(&base, |s| s.dimensions = Some(3)).embed(&texts(1)).await.unwrap_err();
    assert!(error.to_string().contains("5 dimensions where 3 were expected"), "{error}");
    let (base, _) = start(vec![Reply::Embed, Reply::EmbedDims(4)]).await;
    let embedder = client(&base, |s| s.batch_size = 2);
    let error = embedder.embed(&texts(4)).await.unwrap_err();
    assert!(error.to_string().contains("4 dimensions where 3 were expected"), "{error}");
}

#[tokio::test]
async fn an_attempt_that_takes_too_long_times_out_then_is_retried() {
    let (base, fake) = start(vec![Reply::Slow(Duration::from_secs(5))]).await;
    let embedder = client(&base, |s| s.timeout = Duration::from_millis(200));
    assert_eq!(embedder.embed(&texts(2)).await.unwrap().len(), 2);
    assert_eq!(fake.requests.lock().unwrap().len(), 2);

    let (base, _) = start(vec![Reply::Slow(Duration::from_secs(5))]).await;
    let embedder = client(&base, |s| {
        s.timeout = Duration::from_millis(200);
        s.max_retries = 0;
    });
    let error = embedder.embed(&texts(1)).await.unwrap_err();
    assert_eq!(error.to_string(), "the embeddings endpoint could not be reached: no answer in time");
}

#[tokio::test]
async fn settings_make_a_remote_embedder_and_an_unreachable_one_fails_clearly() {
    let (base, _) = start(vec![]).await;
    let settings = EmbedSettings::from_config(None, Some(base), Some(KEY.into()), Some("nomic-embed-text".into())).unwrap().unwrap();
    let embedder = settings.embedder().unwrap();
    assert_eq!(embedder.model_name(), "nomic-embed-text");
    assert_eq!(embedder.embed(&texts(2)).await.unwrap().len(), 2);

    // A port nothing listens on (bound, then closed).
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let embedder = client(&format!("http://127.0.0.1:{port}/v1"), |s| s.max_retries = 1);
    let error = embedder.embed(&texts(1)).await.unwrap_err();
    assert!(matches!(error, EmbedError::Unreachable(_)), "{error:?}");
}
