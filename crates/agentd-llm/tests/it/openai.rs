//! OpenAI chat completions: the request shapes and the answers read back.

use agentd_llm::{ChatRequest, Content, Message, OutputSchema, ProviderKind, TokenUsage, ToolCall, ToolChoice, ToolSpec};
use agentd_testllm::Reply;
use serde_json::json;

use crate::{KEY, ask, assert_cost, start, stream};

fn click_tool() -> ToolSpec {
    ToolSpec {
        name: "click".into(),
        description: "Clicks an element".into(),
        parameters: json!({"type": "object", "properties": {"index": {"type": "integer"}}, "required": ["index"]}),
    }
}

#[tokio::test]
async fn plain_text() {
    let (server, llm) = start(ProviderKind::OpenAi).await;
    server.push(Reply::Text("Hello there, friend".into()));
    let request = ChatRequest { system: Some("Be kind.".into()), temperature: Some(0.5), max_output_tokens: Some(64), ..ask("Hi") };
    let response = llm.chat(&request).await.unwrap();
    assert_eq!(response.text, "Hello there, friend");
    assert!(response.tool_calls.is_empty());
    assert_eq!(response.model, "model-a");
    assert_eq!(response.finish_reason.as_deref(), Some("stop"));
    assert_eq!(response.attempts, 1);
    let [recorded] = server.requests().try_into().unwrap();
    assert_eq!(recorded.path, "/v1/chat/completions");
    assert_eq!(
        recorded.body,
        json!({
            "model": "model-a",
            "messages": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hi"}],
            "max_tokens": 64,
            "temperature": 0.5,
        })
    );
    // The scripted server counts a token per 4 bytes of request and of reply.
    let usage = TokenUsage { input_tokens: recorded.raw().len() as u64 / 4, output_tokens: 19 / 4 };
    assert_eq!(response.usage, usage);
    assert_cost(response.cost_usd, (usage.input_tokens as f64 * 1.0 + usage.output_tokens as f64 * 2.0) / 1e6);
    assert_eq!(recorded.header("authorization"), Some(format!("Bearer {KEY}").as_str()));
}

#[tokio::test]
async fn tool_calls_round_trip() {
    let (server, llm) = start(ProviderKind::OpenAi).await;
    server.push(Reply::TextAndToolCalls(
        "Clicking both.".into(),
        vec![("click".into(), json!({"index": 3})), ("click".into(), json!({"index": 4}))],
    ));
    server.push(Reply::Text("Done.".into()));
    let mut request = ChatRequest { tools: vec![click_tool()], tool_choice: ToolChoice::Required, ..ask("Click 3 and 4") };
    let first = llm.chat(&request).await.unwrap();
    assert_eq!(first.text, "Clicking both.");
    assert_eq!(first.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(
        first.tool_calls,
        vec![
            ToolCall { id: "call_1".into(), name: "click".into(), arguments: json!({"index": 3}) },
            ToolCall { id: "call_2".into(), name: "click".into(), arguments: json!({"index": 4}) },
        ]
    );
    request.messages.push(Message::Assistant { text: first.text.clone(), tool_calls: first.tool_calls.clone() });
    request.messages.push(Message::ToolResult { call_id: "call_1".into(), content: vec![Content::Text("clicked".into())], is_error: false });
    request.messages.push(Message::ToolResult { call_id: "call_2".into(), content: vec![Content::Text("gone".into())], is_error: true });
    request.tool_choice = ToolChoice::Auto;
    assert_eq!(llm.chat(&request).await.unwrap().text, "Done.");
    let requests = server.requests();
    assert_eq!(
        requests[0].body["tools"],
        json!([{"type": "function", "function": {
            "name": "click", "description": "Clicks an element",
            "parameters": {"type": "object", "properties": {"index": {"type": "integer"}}, "required": ["index"]},
        }}])
    );
    assert_eq!(requests[0].body["tool_choice"], json!("required"));
    assert_eq!(requests[1].body["tool_choice"], json!("auto"));
    assert_eq!(
        requests[1].body["messages"],
        json!([
            {"role": "user", "content": "Click 3 and 4"},
            {"role": "assistant", "content": "Clicking both.", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "click", "arguments": "{\"index\":3}"}},
                {"id": "call_2", "type": "function", "function": {"name": "click", "arguments": "{\"index\":4}"}},
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "clicked"},
            {"role": "tool", "tool_call_id": "call_2", "content": "Error: gone"},
        ])
    );
    // Without tools, neither tools nor tool_choice are sent.
    server.push(Reply::Text("ok".into()));
    llm.chat(&ask("plain")).await.unwrap();
    let body = &server.requests()[2].body;
    assert!(body.get("tools").is_none() && body.get("tool_choice").is_none(), "{body}");
}

#[tokio::test]
async fn images_as_data_urls() {
    let (server, llm) = start(ProviderKind::OpenAi).await;
    server.push(Reply::Text("A cat.".into()));
    let image = |data: &str| Content::Image { media_type: "image/jpeg".into(), data_base64: data.into() };
    let request = ChatRequest {
        messages: vec![
            Message::User(vec![Content::Text("What is this?".into()), image("QUJD")]),
            Message::Assistant { text: String::new(), tool_calls: vec![ToolCall { id: "c9".into(), name: "screenshot".into(), arguments: json!({}) }] },
            Message::ToolResult { call_id: "c9".into(), content: vec![image("REVG")], is_error: false },
        ],
        ..ChatRequest::default()
    };
    llm.chat(&request).await.unwrap();
    assert_eq!(
        server.requests()[0].body["messages"],
        json!([
            {"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,QUJD"}},
            ]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "c9", "type": "function", "function": {"name": "screenshot", "arguments": "{}"}},
            ]},
            // Tool messages take text only: the image follows in a user message.
            {"role": "tool", "tool_call_id": "c9", "content": "(1 image(s) in the next user message)"},
            {"role": "user", "content": [
                {"type": "text", "text": "Image(s) returned by tool call c9:"},
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,REVG"}},
            ]},
        ])
    );
}

#[tokio::test]
async fn structured_output_as_response_format() {
    let (server, llm) = start(ProviderKind::OpenAi).await;
    server.push(Reply::Text(r#"{"price":12.5}"#.into()));
    let schema = json!({"type": "object", "properties": {"price": {"type": "number"}}});
    let request = ChatRequest { output_schema: Some(OutputSchema { name: "product".into(), schema: schema.clone() }), ..ask("Price?") };
    let response = llm.chat(&request).await.unwrap();
    assert_eq!(serde_json::from_str::<serde_json::Value>(&response.text).unwrap(), json!({"price": 12.5}));
    assert_eq!(
        server.requests()[0].body["response_format"],
        json!({"type": "json_schema", "json_schema": {"name": "product", "schema": schema, "strict": false}})
    );
}

#[tokio::test]
async fn streaming_equals_the_whole_answer() {
    let (server, llm) = start(ProviderKind::OpenAi).await;
    let reply = Reply::TextAndToolCalls(
        "Let me type that for you.".into(),
        vec![("type".into(), json!({"index": 7, "text": "héllo wörld"})), ("click".into(), json!({"index": 2}))],
    );
    server.push(reply.clone());
    server.push(reply);
    let request = ChatRequest { tools: vec![click_tool()], ..ask("Type it") };
    let whole = llm.chat(&request).await.unwrap();
    let (streamed, deltas) = stream(&llm, &request).await;
    assert_eq!(deltas, ["Let ", "me ", "type ", "that ", "for ", "you."]);
    assert_eq!(streamed.text, whole.text);
    let calls = |r: &agentd_llm::ChatResponse| r.tool_calls.iter().map(|c| (c.name.clone(), c.arguments.clone())).collect::<Vec<_>>();
    assert_eq!(calls(&streamed), calls(&whole));
    assert_eq!(streamed.tool_calls.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["call_3", "call_4"]);
    assert_eq!(streamed.finish_reason, whole.finish_reason);
    assert_eq!(streamed.model, whole.model);
    assert_eq!(streamed.usage.output_tokens, whole.usage.output_tokens);
    let recorded = &server.requests()[1];
    assert!(recorded.is_streaming() && !server.requests()[0].is_streaming());
    assert_eq!(recorded.body["stream_options"], json!({"include_usage": true}));
    assert_eq!(streamed.usage.input_tokens, recorded.raw().len() as u64 / 4);
    assert!(streamed.cost_usd > 0.0);
}

#[tokio::test]
async fn a_lenient_server_without_usage_or_call_ids() {
    let (server, llm) = start(ProviderKind::OpenAi).await;
    let body = json!({"choices": [{"message": {"role": "assistant", "content": null, "tool_calls": [
        {"type": "function", "function": {"name": "click", "arguments": {"index": 1}}},
        {"type": "function", "function": {"name": "click", "arguments": "{\"index\": 2"}},
    ]}, "finish_reason": "tool_calls"}]});
    server.push(Reply::Raw { status: 200, content_type: "application/json".into(), body: body.to_string() });
    let response = llm.chat(&ask("go")).await.unwrap();
    assert_eq!(response.usage, TokenUsage::default());
    assert_eq!(response.cost_usd, 0.0);
    assert_eq!(response.model, "model-a");
    let [a, b] = &response.tool_calls[..] else { panic!("{response:?}") };
    assert!(a.id.starts_with("call_") && b.id.starts_with("call_") && a.id != b.id);
    assert_eq!(a.arguments, json!({"index": 1}));
    // Arguments that are not JSON arrive raw.
    assert_eq!(b.arguments, json!("{\"index\": 2"));
    // The same from a stream that sends no usage and no [DONE].
    let events = [
        json!({"choices": [{"index": 0, "delta": {"content": "Hi"}}]}),
        json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"name": "click", "arguments": "{}"}}]}}]}),
        json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
    ];
    let body: String = events.iter().map(|e| format!("data: {e}\n\n")).collect();
    server.push(Reply::Raw { status: 200, content_type: "text/event-stream".into(), body });
    let (response, deltas) = stream(&llm, &ask("go")).await;
    assert_eq!(deltas, ["Hi"]);
    assert_eq!(response.tool_calls[0].arguments, json!({}));
    assert!(response.tool_calls[0].id.starts_with("call_"));
    assert_eq!(response.usage, TokenUsage::default());
}

#[tokio::test]
async fn no_key_sends_no_authorization() {
    let server = agentd_testllm::ScriptedLlm::start().await;
    let llm = agentd_llm::Llm::new(agentd_llm::LlmSettings { api_key: None, ..crate::settings(&server, ProviderKind::OpenAi) }).unwrap();
    server.push(Reply::Text("local".into()));
    assert_eq!(llm.chat(&ask("hi")).await.unwrap().text, "local");
    assert_eq!(server.requests()[0].header("authorization"), None);
}
