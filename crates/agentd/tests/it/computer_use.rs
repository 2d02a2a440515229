//! The computer-use driver end to end: `POST /v1/sessions` with `driver: computer_use`, real
//! Chromium on the fixture site's `desk` page (every control at a fixed place), and a scripted
//! computer-use model on loopback — OpenAI's Responses API and Anthropic's computer tool.

use agentd_testllm::{Recorded, Reply, ScriptedLlm};
use base64::Engine;
use serde_json::{Value, json};

use crate::support::{TestApp, spawn_agents};

struct World {
    app: TestApp,
    llm: ScriptedLlm,
    site: String,
}

async fn world(anthropic: bool) -> World {
    let llm = ScriptedLlm::start().await;
    let site = agentd_testsite::serve().await;
    let base = if anthropic { llm.anthropic_base_url() } else { llm.openai_base_url() };
    let app = spawn_agents(&base, |config| {
        if anthropic {
            config.llm_provider = "anthropic".into();
        }
    })
    .await;
    World { app, llm, site }
}

impl World {
    async fn start(&self, extra: Value) -> String {
        let mut body = json!({"goal": "Greet Ada on the desk page", "start_url": format!("{}desk", self.site), "driver": "computer_use"});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        self.app.create_with(body).await["id"].as_str().unwrap().to_owned()
    }

    async fn finish(&self, id: &str) -> Value {
        self.app.finish(id).await
    }

    async fn answer_check(&self, id: &str, confirm: bool) -> Value {
        self.app.resolve_check(id, confirm).await
    }

    async fn of_type(&self, id: &str, kind: &str) -> Vec<Value> {
        self.app.events_of(id, kind).await
    }
}

fn computer(action: Value) -> (String, Value) {
    ("computer".to_owned(), action)
}

/// Width and height of a base64 PNG (from its IHDR chunk).
fn png_size(data_base64: &str) -> (u32, u32) {
    let png = base64::engine::general_purpose::STANDARD.decode(data_base64).expect("base64");
    assert_eq!(&png[1..4], b"PNG");
    let be = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    (be(16), be(20))
}

fn data_url_png(url: &str) -> (u32, u32) {
    png_size(url.strip_prefix("data:image/png;base64,").expect("a PNG data URL"))
}

/// The `computer_call_output` items of a Responses request.
fn call_outputs(request: &Recorded) -> Vec<Value> {
    request.body["input"].as_array().unwrap().iter().filter(|i| i["type"] == "computer_call_output").cloned().collect()
}

#[tokio::test]
async fn openai_computer_use_clicks_types_and_answers_with_a_provider_safety_check() {
    let w = world(false).await;
    let click_name = computer(json!({
        "type": "click", "button": "left", "x": 150, "y": 115,
        "pending_safety_checks": [{"code": "malicious_instructions", "message": "The page may hold instructions for the agent."}],
    }));
    w.llm.push(Reply::TextAndToolCalls("The name field is at the top left.".into(), vec![click_name]));
    w.llm.push(Reply::ToolCalls(vec![computer(json!({"type": "type", "text": "Ada"}))]));
    w.llm.push(Reply::ToolCalls(vec![computer(json!({"type": "click", "button": "left", "x": 150, "y": 220}))]));
    w.llm.push_with(|r| {
        let url = call_outputs(r)[0]["output"]["current_url"].as_str().unwrap_or_default().to_owned();
        Reply::Text(if url.contains("name=Ada") { "Greeted Ada".into() } else { format!("not greeted: {url}") })
    });
    let id = w.start(json!({})).await;
    // The provider's own check is a safety check of the session, asked before the click.
    let check = w.answer_check(&id, true).await;
    assert_eq!(check["code"], "malicious_instructions");
    assert_eq!(check["message"], "The page may hold instructions for the agent.");
    let session = w.finish(&id).await;
    assert_eq!(session["status"], "completed", "{session}");
    assert_eq!(session["response"], "Greeted Ada");
    assert_eq!(session["driver"], "computer_use");

    let requests = w.llm.requests();
    assert_eq!(requests.len(), 4);
    assert!(requests.iter().all(|r| r.path == "/v1/responses"));
    let first = &requests[0].body;
    assert_eq!(first["tools"][0], json!({"type": "computer_use_preview", "display_width": 1024, "display_height": 768, "environment": "browser"}));
    assert!(first.get("previous_response_id").is_none());
    assert!(requests[0].text().contains("Goal: Greet Ada on the desk page"));
    let image = first["input"][0]["content"].as_array().unwrap().iter().find(|c| c["type"] == "input_image").unwrap();
    assert_eq!(data_url_png(image["image_url"].as_str().unwrap()), (1024, 768));
    // The next call names the previous response and acknowledges the confirmed check.
    let second = &requests[1].body;
    assert_eq!(second["previous_response_id"], "resp_1");
    let output = &call_outputs(&requests[1])[0];
    assert_eq!(output["call_id"], "call_1");
    assert_eq!(output["acknowledged_safety_checks"][0]["code"], "malicious_instructions");
    assert!(output["acknowledged_safety_checks"][0]["id"].as_str().unwrap().starts_with("cu_sc_"));
    assert_eq!(output["output"]["type"], "input_image");
    assert_eq!(data_url_png(output["output"]["image_url"].as_str().unwrap()), (1024, 768));
    assert!(call_outputs(&requests[2])[0]["acknowledged_safety_checks"].as_array().unwrap().is_empty());

    let actions = w.of_type(&id, "action").await;
    let names: Vec<&str> = actions.iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["navigate", "click_at", "type_text", "click_at"], "{actions:?}");
    assert!(actions.iter().all(|a| a["ok"] == true), "{actions:?}");
    assert_eq!(actions[1]["action"], json!({"action": "click_at", "x": 150.0, "y": 115.0, "button": "single"}));
    let thoughts = w.of_type(&id, "thought").await;
    assert_eq!(thoughts[0]["thought"], "The name field is at the top left.");
    assert_eq!(thoughts[0]["next_goal"], "left click at (150, 115)");
    assert!(session["usage"]["input_tokens"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn anthropic_computer_use_scales_the_screen_and_asks_the_user() {
    let w = world(true).await;
    // 1920x1080 is shown as 1429x804: the name field's (150, 115) is (112, 86) on that screen.
    w.llm.push(Reply::TextAndToolCalls("Click the name field.".into(), vec![computer(json!({"action": "left_click", "coordinate": [112, 86]}))]));
    w.llm.push(Reply::Text("Whom should I greet?".into()));
    w.llm.push_with(|r| {
        let name = if r.text().contains("The user replied: Grace") { "Grace\n" } else { "nobody\n" };
        Reply::ToolCalls(vec![computer(json!({"action": "type", "text": name}))])
    });
    w.llm.push_with(|r| Reply::Text(if r.text().contains("name=Grace") { "Greeted Grace".into() } else { "not greeted".into() }));
    let id = w.start(json!({"display_width": 1920, "display_height": 1080})).await;
    let asked = w.app.wait_event(&id, "input_requested").await;
    assert!(asked["data"].to_string().contains("Whom should I greet?"), "{asked}");
    let r = w.app.post(format!("/v1/sessions/{id}/input"), json!({"text": "Grace"})).await;
    assert_eq!(r.status(), 200);
    let session = w.finish(&id).await;
    assert_eq!(session["status"], "completed", "{session}");
    assert_eq!(session["response"], "Greeted Grace");

    let requests = w.llm.requests();
    assert!(requests.iter().all(|r| r.path == "/v1/messages"));
    assert!(requests[0].header("anthropic-beta").unwrap().starts_with("computer-use-"));
    let tool = &requests[0].body["tools"][0];
    assert_eq!((tool["name"].as_str(), tool["display_width_px"].as_u64(), tool["display_height_px"].as_u64()), (Some("computer"), Some(1429), Some(804)));
    let first_image = &requests[0].body["messages"][0]["content"][1];
    assert_eq!(png_size(first_image["source"]["data"].as_str().unwrap()), (1429, 804));
    // The click's result is a tool_result with the new screenshot.
    let result = &requests[1].body["messages"][2]["content"][0];
    assert_eq!(result["type"], "tool_result");
    assert_eq!(result["tool_use_id"], "toolu_1");
    // The click landed in the viewport's coordinates.
    let actions = w.of_type(&id, "action").await;
    assert_eq!(actions[1]["action"], json!({"action": "click_at", "x": 150.0, "y": 116.0, "button": "single"}), "{actions:?}");
    assert_eq!(actions[2]["name"], "type_text");
}

#[tokio::test]
async fn computer_use_asks_before_submitting_a_password_form_and_stops_when_denied() {
    let w = world(false).await;
    w.llm.push(Reply::ToolCalls(vec![computer(json!({"type": "click", "button": "left", "x": 450, "y": 220}))]));
    let id = w.start(json!({})).await;
    let check = w.answer_check(&id, false).await;
    assert_eq!(check["code"], "sensitive_form");
    assert!(check["message"].as_str().unwrap().contains("password"), "{check}");
    let session = w.finish(&id).await;
    assert_eq!(session["status"], "stopped", "{session}");
    // Asked before acting: the click never happened.
    let names: Vec<String> = w.of_type(&id, "action").await.iter().map(|a| a["name"].as_str().unwrap().to_owned()).collect();
    assert_eq!(names, ["navigate"]);
    assert_eq!(w.llm.requests().len(), 1);
}

#[tokio::test]
async fn an_unknown_driver_is_refused_naming_the_field() {
    let w = world(false).await;
    let r = w.app.post("/v1/sessions", json!({"goal": "x", "driver": "telepathy"})).await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(body.to_string().contains("driver"), "{body}");
}

#[tokio::test]
async fn a_typed_secret_reaches_the_page_but_never_the_model() {
    const CANARY: &str = "canary-cu-5b1e-do-not-leak";
    let w = world(false).await;
    w.llm.push_with(|r| {
        assert!(r.text().contains("<secret>who</secret>"), "the model is told the placeholder");
        Reply::ToolCalls(vec![computer(json!({"type": "click", "button": "left", "x": 150, "y": 115}))])
    });
    w.llm.push(Reply::ToolCalls(vec![computer(json!({"type": "type", "text": "<secret>who</secret>\n"}))]));
    // The form went to /desk?name=<the value>: the URL the model is shown has the placeholder.
    w.llm.push_with(|r| {
        let url = call_outputs(r)[0]["output"]["current_url"].as_str().unwrap_or_default().to_owned();
        Reply::Text(format!("submitted to {url}"))
    });
    let id = w.start(json!({"sensitive_data": {"who": CANARY}})).await;
    let session = w.finish(&id).await;
    assert_eq!(session["status"], "completed", "{session}");
    let response = session["response"].as_str().unwrap();
    assert!(response.contains("name=%3Csecret%3Ewho%3C%2Fsecret%3E") || response.contains("<secret>who</secret>"), "{response}");
    for request in w.llm.requests() {
        assert!(!request.raw().contains(CANARY), "an LLM request carried the secret");
    }
    assert!(!serde_json::to_string(&w.app.events(&id).await).unwrap().contains(CANARY));
}
