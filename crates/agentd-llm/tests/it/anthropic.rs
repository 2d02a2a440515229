//! Anthropic Messages: the request shapes (strict turns, forced tool for structured output) and
//! the answers read back.

use agentd_llm::{ChatRequest, Content, LlmError, Message, OutputSchema, ProviderKind, TokenUsage, ToolCall, ToolChoice, ToolSpec};
use agentd_testllm::Reply;
use serde_json::json;

use crate::{KEY, ask, assert_cost, start, stream};

fn click_tool() -> ToolSpec {
    ToolSpec { name: "click".into(), description: "Clicks an element".into(), parameters: json!({"type": "object"}) }
}

#[tokio::test]
async fn plain_text() {
    let (server, llm) = start(ProviderKind::Anthropic).await;
    server.push(Reply::Text("Hello there, friend".into()));
    let request = ChatRequest { system: Some("Be kind.".into()), temperature: Some(0.5), ..ask("Hi") };
    let response = llm.chat(&request).await.unwrap();
    assert_eq!(response.text, "Hello there, friend");
    assert_eq!(response.finish_reason.as_deref(), Some("end_turn"));
    assert_eq!(response.attempts, 1);
    let [recorded] = server.requests().try_into().unwrap();
    assert_eq!(recorded.path, "/v1/messages");
    assert_eq!(
        recorded.body,
        json!({
            "model": "model-a",
            "max_tokens": 4096,
            "system": "Be kind.",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
            "temperature": 0.5,
        })
    );
    let usage = TokenUsage { input_tokens: recorded.raw().len() as u64 / 4, output_tokens: 19 / 4 };
    assert_eq!(response.usage, usage);
    assert_cost(response.cost_usd, (usage.input_tokens as f64 * 1.0 + usage.output_tokens as f64 * 2.0) / 1e6);
    assert_eq!(recorded.header("x-api-key"), Some(KEY));
    assert_eq!(recorded.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(recorded.header("authorization"), None);
}

#[tokio::test]
async fn tool_calls_round_trip_in_one_merged_user_turn() {
    let (server, llm) = start(ProviderKind::Anthropic).await;
    server.push(Reply::TextAndToolCalls(
        "Clicking both.".into(),
        vec![("click".into(), json!({"index": 3})), ("click".into(), json!({"index": 4}))],
    ));
    server.push(Reply::Text("Done.".into()));
    let mut request = ChatRequest { tools: vec![click_tool()], tool_choice: ToolChoice::Required, ..ask("Click 3 and 4") };
    let first = llm.chat(&request).await.unwrap();
    assert_eq!(first.text, "Clicking both.");
    assert_eq!(first.finish_reason.as_deref(), Some("tool_use"));
    assert_eq!(
        first.tool_calls,
        vec![
            ToolCall { id: "toolu_1".into(), name: "click".into(), arguments: json!({"index": 3}) },
            ToolCall { id: "toolu_2".into(), name: "click".into(), arguments: json!({"index": 4}) },
        ]
    );
    request.messages.push(Message::Assistant { text: first.text.clone(), tool_calls: first.tool_calls.clone() });
    request.messages.push(Message::ToolResult { call_id: "toolu_1".into(), content: vec![Content::Text("clicked".into())], is_error: false });
    request.messages.push(Message::ToolResult { call_id: "toolu_2".into(), content: vec![Content::Text("gone".into())], is_error: true });
    request.messages.push(Message::user_text("Now check the page."));
    request.tool_choice = ToolChoice::Auto;
    assert_eq!(llm.chat(&request).await.unwrap().text, "Done.");
    let requests = server.requests();
    assert_eq!(requests[0].body["tools"], json!([{"name": "click", "description": "Clicks an element", "input_schema": {"type": "object"}}]));
    assert_eq!(requests[0].body["tool_choice"], json!({"type": "any"}));
    assert_eq!(requests[1].body["tool_choice"], json!({"type": "auto"}));
    assert_eq!(
        requests[1].body["messages"],
        json!([
            {"role": "user", "content": [{"type": "text", "text": "Click 3 and 4"}]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Clicking both."},
                {"type": "tool_use", "id": "toolu_1", "name": "click", "input": {"index": 3}},
                {"type": "tool_use", "id": "toolu_2", "name": "click", "input": {"index": 4}},
            ]},
            // Both results and the next user message: one user turn.
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "clicked"}], "is_error": false},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": [{"type": "text", "text": "gone"}], "is_error": true},
                {"type": "text", "text": "Now check the page."},
            ]},
        ])
    );
    // Tools the model must not call are still described, with tool_choice none.
    server.push(Reply::Text("ok".into()));
    llm.chat(&ChatRequest { tool_choice: ToolChoice::None, ..request }).await.unwrap();
    assert_eq!(server.requests()[2].body["tool_choice"], json!({"type": "none"}));
}

#[tokio::test]
async fn images_as_base64_blocks() {
    let (server, llm) = start(ProviderKind::Anthropic).await;
    server.push(Reply::Text("A cat.".into()));
    let image = |data: &str| Content::Image { media_type: "image/png".into(), data_base64: data.into() };
    let request = ChatRequest {
        messages: vec![
            Message::User(vec![Content::Text("What is this?".into()), image("QUJD")]),
            Message::Assistant { text: String::new(), tool_calls: vec![ToolCall { id: "t9".into(), name: "screenshot".into(), arguments: json!({}) }] },
            Message::ToolResult { call_id: "t9".into(), content: vec![Content::Text("the page".into()), image("REVG")], is_error: false },
        ],
        ..ChatRequest::default()
    };
    llm.chat(&request).await.unwrap();
    assert_eq!(
        server.requests()[0].body["messages"],
        json!([
            {"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "QUJD"}},
            ]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t9", "name": "screenshot", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t9", "content": [
                {"type": "text", "text": "the page"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "REVG"}},
            ], "is_error": false}]},
        ])
    );
}

#[tokio::test]
async fn structured_output_through_a_forced_tool() {
    let (server, llm) = start(ProviderKind::Anthropic).await;
    let schema = json!({"type": "object", "properties": {"price": {"type": "number"}}});
    let request = ChatRequest { output_schema: Some(OutputSchema { name: "product".into(), schema: schema.clone() }), ..ask("Price?") };
    // The scripted server answers a forced tool with a call of it, as Anthropic does.
    server.push(Reply::Text(r#"{"price":12.5}"#.into()));
    server.push(Reply::Text(r#"{"price":12.5}"#.into()));
    let whole = llm.chat(&request).await.unwrap();
    assert_eq!(whole.text, r#"{"price":12.5}"#);
    assert!(whole.tool_calls.is_empty(), "the schema tool is no tool call: {:?}", whole.tool_calls);
    let (streamed, deltas) = stream(&llm, &request).await;
    assert_eq!(streamed.text, whole.text);
    assert!(streamed.tool_calls.is_empty());
    assert_eq!(deltas.concat(), r#"{"price":12.5}"#);
    let body = &server.requests()[0].body;
    assert_eq!(
        body["tools"],
        json!([{"name": "product", "description": "Give your final answer by calling this tool; its input is the answer.", "input_schema": schema}])
    );
    assert_eq!(body["tool_choice"], json!({"type": "tool", "name": "product"}));
    assert!(body.get("response_format").is_none());
}

#[tokio::test]
async fn streaming_equals_the_whole_answer() {
    let (server, llm) = start(ProviderKind::Anthropic).await;
    let reply = Reply::TextAndToolCalls(
        "Let me type that for you.".into(),
        vec![("type".into(), json!({"index": 7, "text": "héllo wörld"})), ("click".into(), json!({"index": 2}))],
    );
    server.push(reply.clone());
    server.push(reply);
    let request = ChatRequest { tools: vec![click_tool()], max_output_tokens: Some(300), ..ask("Type it") };
    let whole = llm.chat(&request).await.unwrap();
    let (streamed, deltas) = stream(&llm, &request).await;
    assert_eq!(deltas, ["Let ", "me ", "type ", "that ", "for ", "you."]);
    assert_eq!(streamed.text, whole.text);
    let calls = |r: &agentd_llm::ChatResponse| r.tool_calls.iter().map(|c| (c.name.clone(), c.arguments.clone())).collect::<Vec<_>>();
    assert_eq!(calls(&streamed), calls(&whole));
    assert_eq!(streamed.tool_calls.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["toolu_3", "toolu_4"]);
    assert_eq!(streamed.finish_reason, whole.finish_reason);
    assert_eq!(streamed.usage.output_tokens, whole.usage.output_tokens);
    let recorded = &server.requests()[1];
    assert_eq!(recorded.body["stream"], json!(true));
    assert_eq!(recorded.body["max_tokens"], json!(300));
    assert_eq!(streamed.usage.input_tokens, recorded.raw().len() as u64 / 4);
}

#[tokio::test]
async fn an_error_event_in_the_stream() {
    let (server, llm) = start(ProviderKind::Anthropic).await;
    let overloaded = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
    let sse = |body: String| Reply::Raw { status: 200, content_type: "text/event-stream".into(), body };
    // Before any text: retried like an error status.
    server.push(sse(overloaded.to_owned()));
    server.push(Reply::Text("fine".into()));
    let (response, deltas) = stream(&llm, &ask("hi")).await;
    assert_eq!((response.text.as_str(), response.attempts), ("fine", 2));
    assert_eq!(deltas, ["fine"]);
    // After text went out: not retried (the caller would see it twice).
    let text = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":3}}}\n\n\
        event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
        event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Par\"}}\n\n";
    server.push(sse(format!("{text}{overloaded}")));
    let mut deltas = Vec::new();
    let error = llm.chat_streaming(&ask("hi"), &mut |t: &str| deltas.push(t.to_owned())).await.unwrap_err();
    assert_eq!(error, LlmError::Provider { kind: "overloaded_error".into(), message: "Overloaded".into() });
    assert_eq!(deltas, ["Par"]);
    assert_eq!(server.requests().len(), 3);
    // A stream cut short after text is an error too, also not retried.
    server.push(sse(text.to_owned()));
    assert!(matches!(llm.chat_streaming(&ask("hi"), &mut |_: &str| {}).await, Err(LlmError::Transport(_))));
    assert_eq!(server.requests().len(), 4);
}
