//! The providers against a scripted LLM server on loopback: the exact requests each one sends,
//! the answers it reads (whole and streamed), retries, time limits, errors, cost and the key;
//! the speech client against the fake speech server.

mod anthropic;
mod computer;
mod openai;
mod resilience;
mod speech;

use std::collections::HashMap;
use std::time::Duration;

use agentd_llm::{ChatRequest, Llm, LlmSettings, Message, Price, ProviderKind};
use agentd_testllm::ScriptedLlm;

/// The API key every test configures; it must reach the server and nothing else.
const KEY: &str = "sk-test-0123456789abcdef";

/// Settings for `kind` against `server`: fast backoff, a short timeout, two retries and prices.
fn settings(server: &ScriptedLlm, kind: ProviderKind) -> LlmSettings {
    let base_url = match kind {
        ProviderKind::OpenAi => server.openai_base_url(),
        ProviderKind::Anthropic => server.anthropic_base_url(),
    };
    let prices = HashMap::from([
        ("model-a".to_owned(), Price { input_per_million: 1.0, output_per_million: 2.0 }),
        ("model-a-mini".to_owned(), Price { input_per_million: 0.5, output_per_million: 1.0 }),
    ]);
    LlmSettings {
        base_url,
        api_key: Some(KEY.to_owned()),
        timeout: Duration::from_secs(5),
        max_retries: 2,
        prices,
        backoff_base: Duration::from_millis(1),
        ..LlmSettings::new(kind, "model-a")
    }
}

/// A fresh server and a client of `kind` for it.
async fn start(kind: ProviderKind) -> (ScriptedLlm, Llm) {
    let server = ScriptedLlm::start().await;
    let llm = Llm::new(settings(&server, kind)).expect("valid settings");
    (server, llm)
}

/// A request of one user text.
fn ask(text: &str) -> ChatRequest {
    ChatRequest { messages: vec![Message::user_text(text)], ..ChatRequest::default() }
}

/// Both providers, for tests that hold for each.
const PROVIDERS: [ProviderKind; 2] = [ProviderKind::OpenAi, ProviderKind::Anthropic];

/// Streams `request`, returning the response and the text deltas in order.
async fn stream(llm: &Llm, request: &ChatRequest) -> (agentd_llm::ChatResponse, Vec<String>) {
    let mut deltas = Vec::new();
    let response = llm.chat_streaming(request, &mut |t: &str| deltas.push(t.to_owned())).await.expect("streamed");
    (response, deltas)
}

/// Asserts two dollar amounts are equal up to floating-point rounding.
#[track_caller]
fn assert_cost(actual: f64, expected: f64) {
    assert!((actual - expected).abs() < 1e-12, "cost {actual} != {expected}");
}
