//! Retries, time limits, error statuses, cost and the API key, for both providers.

use std::time::{Duration, Instant};

use agentd_llm::{ChatRequest, Llm, LlmError, LlmSettings, ProviderKind, TokenUsage};
use agentd_testllm::{Reply, ScriptedLlm};

use crate::{KEY, PROVIDERS, ask, assert_cost, settings, start, stream};

#[tokio::test]
async fn a_rate_limit_waits_as_retry_after_says() {
    let (server, llm) = start(ProviderKind::OpenAi).await;
    server.push(Reply::Error { status: 429, retry_after: Some("1".into()), message: "Rate limit reached".into() });
    server.push(Reply::Text("at last".into()));
    let started = Instant::now();
    let response = llm.chat(&ask("hi")).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(950), "waited only {:?}", started.elapsed());
    assert_eq!((response.text.as_str(), response.attempts), ("at last", 2));
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn anthropic_overloaded_with_a_fractional_retry_after() {
    let (server, llm) = start(ProviderKind::Anthropic).await;
    server.push(Reply::Error { status: 529, retry_after: Some("0.3".into()), message: "Overloaded".into() });
    server.push(Reply::Text("ok".into()));
    let started = Instant::now();
    let (response, _) = stream(&llm, &ask("hi")).await;
    assert!(started.elapsed() >= Duration::from_millis(280), "waited only {:?}", started.elapsed());
    assert_eq!(response.attempts, 2);
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff() {
    for kind in PROVIDERS {
        let server = ScriptedLlm::start().await;
        let llm = Llm::new(LlmSettings { backoff_base: Duration::from_millis(40), ..settings(&server, kind) }).unwrap();
        server.push(Reply::error(503, "busy"));
        server.push(Reply::error(502, "bad gateway"));
        server.push(Reply::Text("recovered".into()));
        let started = Instant::now();
        let response = llm.chat(&ask("hi")).await.unwrap();
        // 40 ms then 80 ms, each less up to a quarter of jitter.
        assert!(started.elapsed() >= Duration::from_millis(90), "{kind}: {:?}", started.elapsed());
        assert_eq!((response.text.as_str(), response.attempts), ("recovered", 3), "{kind}");
    }
}

#[tokio::test]
async fn a_client_error_is_not_retried_and_says_why() {
    for kind in PROVIDERS {
        let (server, llm) = start(kind).await;
        server.push(Reply::error(400, "messages: roles must alternate"));
        server.push(Reply::Text("never sent".into()));
        let error = llm.chat(&ask("hi")).await.unwrap_err();
        assert_eq!(error, LlmError::Http { status: 400, message: "messages: roles must alternate".into() }, "{kind}");
        assert!(!error.is_retryable());
        assert_eq!(server.requests().len(), 1, "{kind}");
        assert_eq!(server.remaining(), 1);
    }
}

#[tokio::test]
async fn retries_run_out() {
    for kind in PROVIDERS {
        let (server, llm) = start(kind).await;
        server.set_fallback(Reply::error(500, "still broken"));
        let error = llm.chat(&ask("hi")).await.unwrap_err();
        assert_eq!(error, LlmError::Http { status: 500, message: "still broken".into() }, "{kind}");
        // One attempt and max_retries (2) more.
        assert_eq!(server.requests().len(), 3, "{kind}");
        let mut deltas = 0;
        assert!(llm.chat_streaming(&ask("hi"), &mut |_: &str| deltas += 1).await.is_err());
        assert_eq!((server.requests().len(), deltas), (6, 0), "{kind}");
    }
    let server = ScriptedLlm::start().await;
    let llm = Llm::new(LlmSettings { max_retries: 0, ..settings(&server, ProviderKind::OpenAi) }).unwrap();
    assert!(llm.chat(&ask("hi")).await.is_err());
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn a_slow_answer_times_out() {
    for kind in PROVIDERS {
        let server = ScriptedLlm::start().await;
        let timeout = Duration::from_millis(200);
        let llm = Llm::new(LlmSettings { timeout, max_retries: 0, ..settings(&server, kind) }).unwrap();
        server.set_fallback(Reply::Delayed(Duration::from_secs(3), Box::new(Reply::Text("too late".into()))));
        let started = Instant::now();
        assert_eq!(llm.chat(&ask("hi")).await.unwrap_err(), LlmError::Timeout, "{kind}");
        assert_eq!(llm.chat_streaming(&ask("hi"), &mut |_: &str| {}).await.unwrap_err(), LlmError::Timeout, "{kind}");
        assert!(started.elapsed() < Duration::from_secs(2), "{kind}: {:?}", started.elapsed());
        // A timeout is retried: the next attempt gets a prompt answer.
        let llm = Llm::new(LlmSettings { timeout, ..settings(&server, kind) }).unwrap();
        server.push(Reply::Delayed(Duration::from_secs(3), Box::new(Reply::Text("too late".into()))));
        server.push(Reply::Text("in time".into()));
        let response = llm.chat(&ask("hi")).await.unwrap();
        assert_eq!((response.text.as_str(), response.attempts), ("in time", 2), "{kind}");
    }
}

#[tokio::test]
async fn an_unreachable_server_is_a_transport_error() {
    // A port just freed: nothing listens there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let llm = Llm::new(LlmSettings {
        base_url: format!("http://127.0.0.1:{port}/v1"),
        api_key: Some(KEY.into()),
        backoff_base: Duration::from_millis(1),
        ..LlmSettings::new(ProviderKind::OpenAi, "model-a")
    })
    .unwrap();
    let error = llm.chat(&ask("hi")).await.unwrap_err();
    assert!(matches!(error, LlmError::Transport(_)), "{error:?}");
    assert!(error.is_retryable());
    let text = error.to_string();
    assert!(!text.contains(KEY));
    // The shared error chain: what failed, with which host, and why; never the URL's path.
    assert!(text.contains(&format!("connect to 127.0.0.1:{port}: ")), "{text}");
    assert!(!text.contains("/v1") && !text.contains("chat/completions"), "{text}");
}

#[tokio::test]
async fn cost_from_the_longest_matching_price() {
    for kind in PROVIDERS {
        let (server, llm) = start(kind).await;
        server.set_fallback(Reply::Text("0123456789abcdef".into()));
        // "model-a-mini-2025" matches "model-a" and, longer, "model-a-mini".
        let request = ChatRequest { model: Some("model-a-mini-2025".into()), ..ask("hi") };
        let response = llm.chat(&request).await.unwrap();
        assert_eq!(response.model, "model-a-mini-2025");
        assert_eq!(server.requests()[0].body["model"], "model-a-mini-2025");
        let usage = response.usage;
        assert_eq!(usage.output_tokens, 4);
        assert_cost(response.cost_usd, (usage.input_tokens as f64 * 0.5 + usage.output_tokens as f64 * 1.0) / 1e6);
        let unknown = llm.chat(&ChatRequest { model: Some("other".into()), ..ask("hi") }).await.unwrap();
        assert_eq!(unknown.cost_usd, 0.0);
        assert!(unknown.usage.input_tokens > 0);
    }
    let (_, llm) = start(ProviderKind::OpenAi).await;
    let usage = TokenUsage { input_tokens: 2_000_000, output_tokens: 1_000_000 };
    assert_cost(llm.cost("model-a-2024", &usage), 4.0);
    assert_cost(llm.cost("model-a-mini", &usage), 2.0);
    assert_eq!(llm.cost("unknown", &usage), 0.0);
    assert_eq!(llm.default_model(), "model-a");
    assert_eq!(llm.provider(), ProviderKind::OpenAi);
}

#[tokio::test]
async fn the_key_is_sent_and_never_shown() {
    for kind in PROVIDERS {
        let (server, llm) = start(kind).await;
        assert!(!format!("{llm:?}").contains(KEY), "{llm:?}");
        assert!(!format!("{:?}", settings(&server, kind)).contains(KEY));
        // Providers quote (part of) a wrong key back; the error must not carry it.
        server.push(Reply::error(401, &format!("Incorrect API key provided: {KEY}.")));
        let error = llm.chat(&ask("hi")).await.unwrap_err();
        assert_eq!(error.status(), Some(401));
        for shown in [error.to_string(), format!("{error:?}")] {
            assert!(!shown.contains(KEY), "{shown}");
            assert!(shown.contains("Incorrect API key provided"), "{shown}");
        }
        let recorded = &server.requests()[0];
        match kind {
            ProviderKind::OpenAi => assert_eq!(recorded.header("authorization"), Some(format!("Bearer {KEY}").as_str())),
            ProviderKind::Anthropic => assert_eq!(recorded.header("x-api-key"), Some(KEY)),
        }
        // Nor in a provider's error inside a stream.
        let body = format!("data: {{\"error\":{{\"message\":\"bad key {KEY}\",\"type\":\"invalid_request_error\"}}}}\n\n");
        let body = match kind {
            ProviderKind::OpenAi => body,
            ProviderKind::Anthropic => format!(
                "event: error\ndata: {{\"type\":\"error\",\"error\":{{\"type\":\"authentication_error\",\"message\":\"bad key {KEY}\"}}}}\n\n"
            ),
        };
        server.push(Reply::Raw { status: 200, content_type: "text/event-stream".into(), body });
        let error = llm.chat_streaming(&ask("hi"), &mut |_: &str| {}).await.unwrap_err();
        assert!(matches!(error, LlmError::Provider { .. }), "{error:?}");
        assert!(!format!("{error} {error:?}").contains(KEY), "{error:?}");
    }
}

#[tokio::test]
async fn a_broken_answer_is_a_bad_response() {
    for kind in PROVIDERS {
        let (server, llm) = start(kind).await;
        server.push(Reply::Raw { status: 200, content_type: "application/json".into(), body: "<html>oops</html>".into() });
        let error = llm.chat(&ask("hi")).await.unwrap_err();
        assert!(matches!(error, LlmError::BadResponse(_)), "{kind}: {error:?}");
        assert_eq!(server.requests().len(), 1, "not retried");
        // An error page that is not JSON: its text is the message.
        server.push(Reply::Raw { status: 404, content_type: "text/plain".into(), body: "no such route".into() });
        assert_eq!(llm.chat(&ask("hi")).await.unwrap_err(), LlmError::Http { status: 404, message: "no such route".into() });
    }
}

#[tokio::test]
async fn a_scripted_reply_can_read_the_prompt() {
    for kind in PROVIDERS {
        let (server, llm) = start(kind).await;
        server.push_with(|request| {
            let text = request.text();
            let index = text.split("[").nth(1).and_then(|s| s.split(']').next()).unwrap_or("?").to_owned();
            Reply::tool_call("click", serde_json::json!({ "index": index.parse::<u64>().unwrap_or(0) }))
        });
        let request = ChatRequest { system: Some("You browse.".into()), ..ask("[12] Submit button") };
        let response = llm.chat(&request).await.unwrap();
        assert_eq!(response.tool_calls[0].arguments, serde_json::json!({"index": 12}), "{kind}");
        assert_eq!(server.requests()[0].text(), "You browse.\n[12] Submit button");
        assert_eq!(server.take_requests().len(), 1);
        assert!(server.requests().is_empty());
    }
}

#[tokio::test]
async fn an_answer_of_max_response_bytes_is_read_and_one_byte_more_is_refused() {
    let (server, llm) = start(ProviderKind::OpenAi).await;
    // A valid completion padded with trailing white space to exactly N bytes, then N + 1.
    let body = serde_json::json!({"choices": [{"message": {"role": "assistant", "content": "fits"}, "finish_reason": "stop"}]}).to_string();
    let padded = |size: usize| format!("{body}{}", " ".repeat(size - body.len()));
    let raw = |body: String| Reply::Raw { status: 200, content_type: "application/json".into(), body };
    server.push(raw(padded(agentd_llm::MAX_RESPONSE_BYTES)));
    assert_eq!(llm.chat(&ask("hi")).await.unwrap().text, "fits");
    server.push(raw(padded(agentd_llm::MAX_RESPONSE_BYTES + 1)));
    let error = llm.chat(&ask("hi")).await.unwrap_err();
    assert!(matches!(&error, LlmError::BadResponse(m) if m.contains("larger than")), "{error:?}");
}
