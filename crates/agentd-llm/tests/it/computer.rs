//! Computer use against the scripted server: both providers' turns, retries and cost.

use agentd_llm::{Button, CallResult, ComputerAction, ComputerSetup, Image, LlmError, ProviderKind, Screen, TurnInput};
use agentd_testllm::Reply;
use serde_json::json;

use crate::{KEY, PROVIDERS, assert_cost, start};

fn setup() -> ComputerSetup {
    ComputerSetup { model: None, instructions: "Operate the browser.".into(), screen: Screen { width: 1024, height: 768 } }
}

fn shot() -> Image {
    Image { media_type: "image/png".into(), data_base64: "iVBORw0KGgo=".into() }
}

fn first_turn() -> TurnInput {
    TurnInput { text: Some("Goal: click".into()), screenshot: Some(shot()), ..TurnInput::default() }
}

#[tokio::test]
async fn a_rate_limited_turn_is_retried_and_priced() {
    for kind in PROVIDERS {
        let (server, llm) = start(kind).await;
        server.push(Reply::Error { status: 429, retry_after: Some("0".into()), message: "slow down".into() });
        let action = match kind {
            ProviderKind::OpenAi => json!({"type": "click", "button": "right", "x": 5, "y": 6}),
            ProviderKind::Anthropic => json!({"action": "right_click", "coordinate": [5, 6]}),
        };
        server.push(Reply::ToolCalls(vec![("computer".into(), action)]));
        let mut conversation = llm.computer_conversation(setup());
        let turn = llm.computer_turn(&mut conversation, first_turn()).await.expect("a turn");
        assert_eq!(turn.attempts, 2, "{kind}");
        assert_eq!(turn.calls.len(), 1);
        assert_eq!(turn.calls[0].action, ComputerAction::Click { at: Some((5, 6)), button: Button::Right });
        assert_cost(turn.cost_usd, (turn.usage.input_tokens as f64 * 1.0 + turn.usage.output_tokens as f64 * 2.0) / 1e6);
        // The key went to the server and the request carried the screen size.
        let sent = server.requests();
        assert!(sent[1].raw().contains("1024") && sent[1].raw().contains("768"));
        let auth = sent[1].header("authorization").or(sent[1].header("x-api-key")).unwrap();
        assert!(auth.contains(KEY));
    }
}

#[tokio::test]
async fn a_failed_turn_leaves_the_conversation_where_it_was() {
    for kind in PROVIDERS {
        let (server, llm) = start(kind).await;
        server.push(Reply::error(400, "bad image"));
        server.push(Reply::Text("All done.".into()));
        let mut conversation = llm.computer_conversation(setup());
        let error = llm.computer_turn(&mut conversation, first_turn()).await.unwrap_err();
        assert!(matches!(error, LlmError::Http { status: 400, .. }), "{error:?}");
        let turn = llm.computer_turn(&mut conversation, first_turn()).await.expect("a turn");
        assert_eq!(turn.text, "All done.");
        assert!(turn.calls.is_empty());
        // The retried turn was sent as the first one again (no history of the failure).
        let sent = server.requests();
        assert_eq!(sent[0].body, sent[1].body, "{kind}");
    }
}

#[tokio::test]
async fn call_results_carry_the_screenshot_url_and_errors() {
    for kind in PROVIDERS {
        let (server, llm) = start(kind).await;
        let action = match kind {
            ProviderKind::OpenAi => json!({"type": "screenshot"}),
            ProviderKind::Anthropic => json!({"action": "screenshot"}),
        };
        server.push(Reply::ToolCalls(vec![("computer".into(), action)]));
        server.push(Reply::Text("Done.".into()));
        let mut conversation = llm.computer_conversation(setup());
        let turn = llm.computer_turn(&mut conversation, first_turn()).await.unwrap();
        let result = CallResult {
            call_id: turn.calls[0].id.clone(),
            screenshot: shot(),
            url: Some("http://127.0.0.1/page".into()),
            acknowledged: vec![],
            error: Some("the click missed".into()),
        };
        llm.computer_turn(&mut conversation, TurnInput { results: vec![result], ..TurnInput::default() }).await.unwrap();
        let second = &server.requests()[1];
        let text = second.text();
        assert!(text.contains("the click missed"), "{kind}: {text}");
        assert!(second.raw().contains("http://127.0.0.1/page"));
        assert!(second.raw().contains("iVBORw0KGgo="));
    }
}
