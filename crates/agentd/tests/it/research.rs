//! The research agent end to end: a fake SearXNG and the fixture site on loopback, the
//! scripted LLM, real page reading through the egress policy.

use std::sync::{Arc, Mutex};

use agentd_testllm::{Reply, ScriptedLlm};
use serde_json::{Value, json};

use crate::support::{TestApp, call, spawn_agents};

/// A SearXNG stand-in: answers every query with `results`, or with `status` errors first.
struct FakeSearch {
    url: String,
    queries: Arc<Mutex<Vec<String>>>,
}

async fn fake_searxng(results: Value, failures: usize) -> FakeSearch {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/search", listener.local_addr().unwrap());
    let queries = Arc::new(Mutex::new(Vec::new()));
    let seen = queries.clone();
    let failures = Arc::new(Mutex::new(failures));
    let app = axum::Router::new().route(
        "/search",
        axum::routing::get(move |axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>| {
            let seen = seen.clone();
            let failures = failures.clone();
            let results = results.clone();
            async move {
                assert_eq!(q.get("format").map(String::as_str), Some("json"), "SearXNG is asked for JSON");
                seen.lock().unwrap().push(q.get("q").cloned().unwrap_or_default());
                let mut left = failures.lock().unwrap();
                if *left > 0 {
                    *left -= 1;
                    return (axum::http::StatusCode::INTERNAL_SERVER_ERROR, axum::Json(json!({"error": "down"})));
                }
                (axum::http::StatusCode::OK, axum::Json(json!({"query": q.get("q"), "results": results})))
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    FakeSearch { url, queries }
}

struct World {
    app: TestApp,
    llm: ScriptedLlm,
    site: String,
    search: FakeSearch,
}

async fn world(failures: usize) -> World {
    let llm = ScriptedLlm::start().await;
    let site = agentd_testsite::serve().await;
    let results = json!([
        {"url": format!("{site}article"), "title": "The fixture article", "content": "A long article"},
        {"url": format!("{site}product/1"), "title": "Product 1", "content": "A product page"},
        {"url": "https://unread.example/x", "title": "Never read", "content": "Only a snippet"},
    ]);
    let search = fake_searxng(results, failures).await;
    let search_url = search.url.clone();
    let app = spawn_agents(&llm.openai_base_url(), move |c| c.search_url = Some(search_url)).await;
    World { app, llm, site, search }
}

fn text_and(text: &str, calls: Vec<(String, Value)>) -> Reply {
    Reply::TextAndToolCalls(text.into(), calls)
}

#[tokio::test]
async fn a_research_session_searches_reads_and_cites_only_what_it_read() {
    let w = world(0).await;
    w.llm.push(text_and("I will search for the fixture article.", vec![call("web_search", json!({"query": "fixture article"}))]));
    w.llm.push(text_and("Reading the two most promising results.", vec![call("fetch_url", json!({"id": 1})), call("fetch_url", json!({"id": 2}))]));
    w.llm.push(Reply::tool_call("answer", json!({"answer": "The article is long [1]. A product exists [2]. Rumour has it [3]."})));
    let id = w.app.create_with(json!({"goal": "What is on the fixture site?", "mode": "research", "max_cycles": 3})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let session = w.app.finish(&id).await;
    assert_eq!(session["status"], "completed", "{session}");
    assert_eq!(session["response_type"], "JSON");
    let result = &session["response"];
    assert_eq!(result["answer"], "The article is long [1]. A product exists [2]. Rumour has it.", "[3] was never read");
    let urls: Vec<&str> = result["sources"].as_array().unwrap().iter().map(|s| s["url"].as_str().unwrap()).collect();
    assert_eq!(urls, [format!("{}article", w.site), format!("{}product/1", w.site)]);
    assert!(result["sources"][0]["title"].as_str().unwrap().len() > 3);
    assert_eq!(result["cycles"], 3);
    assert_eq!(w.search.queries.lock().unwrap().clone(), ["fixture article"]);

    let thoughts = w.app.events_of(&id, "thought").await;
    assert_eq!(thoughts[0]["thought"], "I will search for the fixture article.");
    let actions = w.app.events_of(&id, "action").await;
    let named: Vec<(&str, bool)> = actions.iter().map(|a| (a["name"].as_str().unwrap(), a["ok"].as_bool().unwrap())).collect();
    assert_eq!(named, [("web_search", true), ("fetch_url", true), ("fetch_url", true)]);
    let steps: Vec<&str> = result["steps"].as_array().unwrap().iter().map(|s| s["type"].as_str().unwrap()).collect();
    assert_eq!(steps, ["step", "tool", "step", "tool", "tool", "step"]);

    // The model read the page's text, not the search snippet.
    let requests = w.llm.requests();
    let third = requests[2].text();
    assert!(third.contains("[1] The fixture article"), "{third}");
    assert!(third.len() > 2_000, "the page's main text was handed over: {} chars", third.len());
    w.app.shutdown().await;
}

#[tokio::test]
async fn a_follow_up_continues_the_conversation_with_its_sources() {
    let w = world(0).await;
    w.llm.push(text_and("Searching.", vec![call("web_search", json!({"query": "fixture"}))]));
    w.llm.push(text_and("Reading.", vec![call("fetch_url", json!({"id": 1}))]));
    w.llm.push(Reply::tool_call("answer", json!({"answer": "It is an article [1]."})));
    let first = w.app.create_with(json!({"goal": "What is the fixture site?", "mode": "research", "max_cycles": 3})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    w.app.finish(&first).await;
    w.llm.push(Reply::tool_call("answer", json!({"answer": "As found before, an article [1]."})));
    let follow = w.app.create_with(json!({"goal": "Remind me?", "mode": "chat", "continues": first})).await["id"].as_str().unwrap().to_owned();
    let session = w.app.finish(&follow).await;
    assert_eq!(session["response"]["answer"], "As found before, an article [1].");
    assert_eq!(session["response"]["sources"][0]["url"], format!("{}article", w.site), "an earlier source is citable");
    let asked = w.llm.requests().last().unwrap().text();
    assert!(asked.contains("Q: What is the fixture site?") && asked.contains("A: It is an article [1]."), "{asked}");
    assert!(asked.contains("[1] ") && asked.contains(&format!("{}article", w.site)), "{asked}");

    // Naming the first session again continues from the conversation's latest answer.
    w.llm.push(Reply::tool_call("answer", json!({"answer": "Still an article."})));
    let third = w.app.create_with(json!({"goal": "Once more?", "mode": "chat", "continues": first})).await;
    assert!(third["tags"].as_array().unwrap().contains(&json!(format!("conversation:{first}"))), "{third}");
    w.app.finish(third["id"].as_str().unwrap()).await;
    let asked = w.llm.requests().last().unwrap().text();
    assert!(asked.contains("Q: What is the fixture site?") && asked.contains("Q: Remind me?"), "both earlier turns: {asked}");

    let (status, e) = crate::support::error_of(w.app.post("/v1/sessions", json!({"goal": "x", "mode": "chat", "continues": "nope"})).await).await;
    assert_eq!((status, e["field"].as_str()), (400, Some("continues")));
    let unknown = uuid::Uuid::now_v7();
    let (status, e) = crate::support::error_of(w.app.post("/v1/sessions", json!({"goal": "x", "mode": "chat", "continues": unknown})).await).await;
    assert_eq!((status, e["field"].as_str()), (400, Some("continues")));
    w.app.shutdown().await;
}

#[tokio::test]
async fn the_last_cycle_must_answer_and_chat_answers_directly() {
    let w = world(0).await;
    w.llm.push(text_and("Searching.", vec![call("web_search", json!({"query": "a"}))]));
    w.llm.push(text_and("Reading.", vec![call("fetch_url", json!({"id": "1"}))]));
    w.llm.push(Reply::tool_call("answer", json!({"answer": "Done with what I have [1]."})));
    let id = w.app.create_with(json!({"goal": "Anything?", "mode": "research", "max_cycles": 2})).await["id"].as_str().unwrap().to_owned();
    let session = w.app.finish(&id).await;
    assert_eq!(session["response"]["answer"], "Done with what I have [1].");
    assert_eq!(session["response"]["cycles"], 2);
    let requests = w.llm.requests();
    let tools = |i: usize| -> Vec<String> {
        requests[i].body["tools"].as_array().unwrap().iter().map(|t| t["function"]["name"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(tools(0), ["web_search", "fetch_url", "answer"]);
    assert_eq!(tools(1), ["web_search", "fetch_url", "answer"], "every cycle may search and read");
    assert_eq!(tools(2), ["answer"], "out of cycles, only answering is possible");

    w.llm.push(Reply::Text("Hello! Nice to meet you.".into()));
    let chat = w.app.create_with(json!({"goal": "Hi there", "mode": "chat"})).await;
    assert_eq!(chat["max_cycles"], 1, "chat defaults to one cycle");
    let session = w.app.finish(chat["id"].as_str().unwrap()).await;
    assert_eq!(session["response"]["answer"], "Hello! Nice to meet you.");
    assert_eq!(session["response"]["sources"], json!([]));
    w.app.shutdown().await;
}

#[tokio::test]
async fn a_failing_search_and_a_refused_page_are_reported_to_the_model() {
    let w = world(2).await;
    w.llm.push(text_and("Searching.", vec![call("web_search", json!({"query": "down"}))]));
    w.llm.push(text_and("Reading the metadata service.", vec![call("fetch_url", json!({"url": "http://169.254.169.254/latest/meta-data"}))]));
    w.llm.push(Reply::tool_call("answer", json!({"answer": "I could not find anything [1]."})));
    let id = w.app.create_with(json!({"goal": "Try", "mode": "coding", "max_cycles": 3})).await["id"].as_str().unwrap().to_owned();
    let session = w.app.finish(&id).await;
    assert_eq!(session["response"]["answer"], "I could not find anything.");
    let actions = w.app.events_of(&id, "action").await;
    assert_eq!(actions[0]["ok"], false);
    assert!(actions[0]["error"].as_str().unwrap().contains("SearXNG answered HTTP 500"), "{}", actions[0]);
    assert_eq!(w.search.queries.lock().unwrap().len(), 2, "a 500 is tried again once");
    assert_eq!(actions[1]["ok"], false);
    assert!(actions[1]["error"].as_str().unwrap().contains("metadata"), "{}", actions[1]);
    let second = w.llm.requests()[1].text();
    assert!(second.contains("SearXNG answered HTTP 500"), "the model is told: {second}");
    w.app.shutdown().await;
}

#[tokio::test]
async fn the_assisters_stream_shows_a_real_research_run() {
    let w = world(0).await;
    w.llm.push(text_and("Searching for the article.", vec![call("web_search", json!({"query": "fixture article"}))]));
    w.llm.push(text_and("Reading it.", vec![call("fetch_url", json!({"id": 1}))]));
    w.llm.push(Reply::tool_call("answer", json!({"answer": "It is an article [1]."})));
    let body = w
        .app
        .http
        .get(w.app.url("/v1/agent/stream?query=What%20is%20it%3F&maxCycles=3"))
        .bearer_auth(&w.app.key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lines: Vec<&str> = body.lines().filter(|l| l.starts_with("data: ")).map(|l| &l[6..]).collect();
    assert_eq!(lines.last(), Some(&"[DONE]"));
    let events: Vec<Value> = lines[..lines.len() - 1].iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["step", "tool", "step", "tool", "step", "done"], "{body}");
    assert_eq!((events[1]["name"].as_str(), events[1]["status"].as_str()), (Some("web_search"), Some("completed")));
    assert_eq!(events[0]["message"], "Searching for the article.");
    let done = events.last().unwrap();
    assert_eq!(done["answer"], "It is an article [1].");
    assert_eq!(done["sources"][0]["url"], format!("{}article", w.site));
    w.app.shutdown().await;
}

#[tokio::test]
async fn an_agent_versions_instructions_and_tools_reach_the_model() {
    let w = world(0).await;
    let created: Value = w
        .app
        .post("/v1/agents", json!({"name": "Reader", "kind": "research", "instructions": "Always answer in French.", "tools": ["fetch_url"], "publish": true}))
        .await
        .json()
        .await
        .unwrap();
    w.llm.push(Reply::tool_call("answer", json!({"answer": "Bonjour."})));
    let id = w.app.create_with(json!({"goal": "Hello?", "agent_id": created["id"]})).await["id"].as_str().unwrap().to_owned();
    assert_eq!(w.app.finish(&id).await["response"]["answer"], "Bonjour.");
    let request = &w.llm.requests()[0].body;
    let system = request["messages"][0]["content"].as_str().unwrap_or_default().to_owned();
    assert!(system.contains("Always answer in French."), "{request}");
    let tools: Vec<&str> = request["tools"].as_array().unwrap().iter().map(|t| t["function"]["name"].as_str().unwrap()).collect();
    assert_eq!(tools, ["fetch_url", "answer"], "only the tools the version allows");
    w.app.shutdown().await;
}
