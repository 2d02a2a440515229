//! Tools: HTTP tools against a loopback fixture, MCP servers through the stdio fixture
//! (`agentd-mcp-fixture`), versions, streaming execution, and private and environment
//! variables — masked in every output and never stored in the clear.

use std::path::PathBuf;

use agentd_testllm::{Reply, ScriptedLlm};
use axum::Json;
use axum::extract::Query;
use axum::http::HeaderMap;
use axum::routing::get;
use futures::StreamExt;
use serde_json::{Value, json};

use crate::support::*;

pub const SECRET: &str = "tok-7f3a9c-very-secret";
pub const ENV_SECRET: &str = "env-51d2-not-stored";

/// A web service that echoes what it got: the query and the Authorization header.
pub async fn echo_service() -> String {
    let app = axum::Router::new().route(
        "/echo",
        get(|Query(q): Query<std::collections::BTreeMap<String, String>>, headers: HeaderMap| async move {
            let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
            Json(json!({"query": q, "authorization": auth}))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

pub fn http_tool(name: &str, base: &str) -> Value {
    json!({
        "name": name,
        "description": "Looks a word up.",
        "definition": {"type": "http", "method": "GET", "url_template": "{{base}}/echo?q={{q}}",
                       "headers": {"Authorization": "Bearer {{token}}"},
                       "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}},
        "variables": {"base": base},
        "private_variables": {"token": SECRET},
        "publish": true,
    })
}

/// The stdio MCP fixture, built by the workspace (next to the test binary's directory).
pub fn mcp_fixture() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|deps| deps.parent()).unwrap().to_path_buf();
    let fixture = dir.join("agentd-mcp-fixture");
    if !fixture.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .args(["build", "-p", "agentd-tools", "--bin", "agentd-mcp-fixture"])
            .status()
            .expect("cargo builds the MCP fixture");
        assert!(status.success());
    }
    fixture
}

pub async fn created(app: &TestApp, body: Value) -> Value {
    let r = app.post("/v1/tools", body).await;
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 201, "{body}");
    body
}

async fn execute(app: &TestApp, id: &str, body: Value) -> (u16, Value) {
    let r = app.post(format!("/v1/tools/{id}/execute"), body).await;
    (r.status().as_u16(), r.json().await.unwrap())
}

pub fn assert_no_secret(text: &str) {
    assert!(!text.contains(SECRET) && !text.contains(ENV_SECRET), "a secret leaked: {text}");
}

#[tokio::test]
async fn http_tools_run_versioned_with_private_variables_masked_and_sealed() {
    let app = spawn_app().await;
    let base = echo_service().await;
    let tool = created(&app, http_tool("lookup", &base)).await;
    let id = tool["id"].as_str().unwrap().to_owned();
    assert!(tool["resource_id"].as_u64().unwrap() >= 1);
    assert_eq!(tool["versions"][0]["private_variables"], json!(["token"]), "names only");
    assert_no_secret(&tool.to_string());

    let (status, run) = execute(&app, &id, json!({"arguments": {"q": "rust"}, "environment_variables": {"extra": ENV_SECRET}})).await;
    assert_eq!((status, run["status"].as_str(), run["version"].as_u64()), (200, Some("succeeded"), Some(1)), "{run}");
    let result: Value = serde_json::from_str(run["result"].as_str().unwrap()).unwrap();
    assert_eq!(result["query"]["q"], "rust");
    assert_eq!(result["authorization"], "Bearer [redacted:token]", "the service got the secret; the caller sees it masked");
    assert!(run["debug_output"][0].as_str().unwrap().starts_with("GET "), "{run}");
    assert_no_secret(&run.to_string());

    // An environment variable is used, masked, and never stored.
    let (_, run) = execute(&app, &id, json!({"arguments": {"q": "x"}, "environment_variables": {"token": ENV_SECRET}})).await;
    assert_eq!(serde_json::from_str::<Value>(run["result"].as_str().unwrap()).unwrap()["authorization"], "Bearer [redacted:token]");
    // The database and its write-ahead log, as bytes.
    let dir = app.dir.as_ref().unwrap().path();
    let stored: String = ["agentd.db", "agentd.db-wal"]
        .iter()
        .filter_map(|f| std::fs::read(dir.join(f)).ok())
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .collect();
    assert!(!stored.contains(SECRET) && !stored.contains(ENV_SECRET), "private values are sealed at rest, environment values never stored");
    assert!(stored.contains("lookup"));

    // Versions: a draft is only run when asked for; publishing archives version 1.
    let r = app.http.put(app.url(&format!("/v1/tools/{id}/draft"))).bearer_auth(&app.key)
        .json(&json!({"variables": {"base": format!("{base}/nowhere")}})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let (_, run) = execute(&app, &id, json!({"arguments": {"q": "a"}})).await;
    assert_eq!((run["version"].as_u64(), run["status"].as_str()), (Some(1), Some("succeeded")));
    let (_, run) = execute(&app, &id, json!({"arguments": {"q": "a"}, "version_state": "DRAFT"})).await;
    assert_eq!((run["version"].as_u64(), run["status"].as_str()), (Some(2), Some("failed")), "{run}");
    assert_eq!(run["error"]["code"], "http_status");
    assert_no_secret(&run.to_string());
    let v2: Value = app.post(format!("/v1/tools/{id}/publish"), json!({})).await.json().await.unwrap();
    assert_eq!((v2["number"].as_u64(), v2["state"].as_str(), v2["private_variables"].clone()), (Some(2), Some("PUBLISHED"), json!(["token"])), "private variables kept");
    let (_, run) = execute(&app, &id, json!({"arguments": {"q": "a"}, "version": 1})).await;
    assert_eq!((run["version"].as_u64(), run["status"].as_str()), (Some(1), Some("succeeded")), "an archived version still runs by number");
    let (status, e) = error_of(app.post(format!("/v1/tools/{id}/execute"), json!({"version_state": "DRAFT"})).await).await;
    assert_eq!((status, e["field"].as_str()), (400, Some("version")), "{e}");
    let versions: Value = app.get(&format!("/v1/tools/{id}/versions")).await.json().await.unwrap();
    let states: Vec<&str> = versions.as_array().unwrap().iter().map(|v| v["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["ARCHIVED", "PUBLISHED"]);
    app.shutdown().await;
}

#[tokio::test]
async fn execution_streams_debug_lines_then_the_result() {
    let app = spawn_app().await;
    let base = echo_service().await;
    let id = created(&app, http_tool("streamed", &base)).await["id"].as_str().unwrap().to_owned();
    let r = app.post(format!("/v1/tools/{id}/execute"), json!({"arguments": {"q": "s"}, "stream": true})).await;
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let events: Vec<_> = eventsource_stream::EventStream::new(r.bytes_stream()).collect().await;
    let events: Vec<(String, Value)> = events.into_iter().map(|e| e.unwrap()).map(|e| (e.event, serde_json::from_str(&e.data).unwrap())).collect();
    let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
    assert!(kinds.len() >= 3 && kinds[..kinds.len() - 1].iter().all(|k| *k == "debug") && kinds.last() == Some(&"result"), "{kinds:?}");
    assert!(events[0].1["line"].as_str().unwrap().starts_with("GET "));
    let result = &events.last().unwrap().1;
    assert_eq!(result["status"], "succeeded");
    assert_eq!(result["debug_output"].as_array().unwrap().len(), kinds.len() - 1);
    for (_, data) in &events {
        assert_no_secret(&data.to_string());
    }
    app.shutdown().await;
}

#[tokio::test]
async fn mcp_servers_are_listed_and_their_tools_called_with_secrets_masked() {
    let fixture = mcp_fixture();
    let allowed = fixture.to_str().unwrap().to_owned();
    let app = spawn_with(|c| c.mcp_stdio_commands = vec![allowed]).await;
    let tool = created(&app, json!({
        "name": "fixture",
        "description": "The test MCP server.",
        "definition": {"type": "mcp", "server": {"transport": "stdio", "command": fixture.to_str().unwrap(), "env": {"FIXTURE_SECRET": "{{secret}}"}}},
        "private_variables": {"secret": SECRET},
        "publish": true,
    })).await;
    let id = tool["id"].as_str().unwrap().to_owned();
    let listed: Value = app.get(&format!("/v1/tools/{id}/mcp-tools")).await.json().await.unwrap();
    let names: Vec<&str> = listed["data"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"add") && names.contains(&"env"), "{listed}");

    let (status, run) = execute(&app, &id, json!({"mcp_tool": "add", "arguments": {"a": 2, "b": 3}})).await;
    assert_eq!((status, run["status"].as_str(), run["result"].as_str()), (200, Some("succeeded"), Some("5")), "{run}");
    let (_, run) = execute(&app, &id, json!({"mcp_tool": "env", "arguments": {"name": "FIXTURE_SECRET"}})).await;
    assert_eq!(run["result"], "[redacted:secret]", "the server got the secret; the output is masked: {run}");
    let (_, run) = execute(&app, &id, json!({"mcp_tool": "fail", "arguments": {"message": format!("boom {SECRET}")}})).await;
    assert_eq!((run["status"].as_str(), run["error"]["code"].as_str()), (Some("failed"), Some("mcp_tool_failed")), "{run}");
    assert_no_secret(&run.to_string());
    let (status, e) = error_of(app.post(format!("/v1/tools/{id}/execute"), json!({"arguments": {}})).await).await;
    assert_eq!((status, e["field"].as_str()), (400, Some("mcp_tool")), "{e}");
    // Only the commands the operator lists run.
    let (status, e) = error_of(app.post("/v1/tools", json!({"name": "shell",
        "definition": {"type": "mcp", "server": {"transport": "stdio", "command": "/bin/sh", "args": ["-c", "id"]}}})).await).await;
    assert_eq!((status, e["field"].as_str()), (400, Some("definition.server.command")), "{e}");
    app.shutdown().await;
}

#[tokio::test]
async fn a_caller_cannot_send_a_tools_secrets_elsewhere() {
    let app = spawn_app().await;
    let base = echo_service().await;
    let other = echo_service().await;
    // The tool's own base URL: arguments and environment values of that name do not replace it.
    let id = created(&app, http_tool("pinned", &base)).await["id"].as_str().unwrap().to_owned();
    let (_, run) = execute(&app, &id, json!({"arguments": {"q": "x", "base": other}, "environment_variables": {"base": other}})).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert!(run["debug_output"][0].as_str().unwrap().contains(&base), "{run}");
    // A base URL the tool leaves to the caller is refused when the tool is defined: it would
    // decide where the secret goes.
    let mut open = http_tool("open", &base);
    open["variables"] = json!({});
    let (status, e) = error_of(app.post("/v1/tools", open).await).await;
    assert_eq!((status, e["field"].as_str()), (400, Some("definition.url_template")), "{e}");
    assert!(e["message"].as_str().unwrap().contains("{{base}}") && e["message"].as_str().unwrap().contains("own variables"), "{e}");
    app.shutdown().await;
}

/// A partner service on loopback that records the paths it is asked for.
pub async fn partner_service() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
        let record = record.clone();
        async move {
            record.lock().unwrap().push(uri.to_string());
            Json(json!({"ok": true}))
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), seen)
}

/// A published HTTP tool calling `url_template` with the partner's token.
pub fn partner_tool(name: &str, url_template: &str, partner: &str) -> Value {
    json!({
        "name": name,
        "definition": {"type": "http", "method": "GET", "url_template": url_template,
                       "headers": {"Authorization": "Bearer {{token}}"}},
        "variables": {"partner": partner},
        "private_variables": {"token": SECRET},
        "publish": true,
    })
}

#[tokio::test]
async fn a_callers_value_cannot_redirect_a_tool_to_another_host() {
    let app = spawn_app().await;
    let (partner, seen) = partner_service().await;
    // The partner's origin is the tool's own variable; the path is the caller's. A value that
    // would land right after the host is refused before anything is sent, naming the argument.
    let id = created(&app, partner_tool("partner", "{{partner}}{{path}}", &partner)).await["id"].as_str().unwrap().to_owned();
    for value in [".attacker.test", "@attacker.test", "/", "\\", "%2e", "#", "?", ":1", "x"] {
        let (status, e) = error_of(app.post(format!("/v1/tools/{id}/execute"), json!({"arguments": {"path": value}})).await).await;
        assert_eq!((status, e["field"].as_str()), (400, Some("arguments.path")), "{value:?} → {e}");
        assert!(e["message"].as_str().unwrap().starts_with("argument `path` would change where the request goes"), "{e}");
        assert!(!e["message"].as_str().unwrap().contains("attacker"), "the value is not echoed: {e}");
    }
    let (status, e) = error_of(app.post(format!("/v1/tools/{id}/execute"), json!({"environment_variables": {"path": ".attacker.test"}})).await).await;
    assert_eq!((status, e["field"].as_str()), (400, Some("environment_variables.path")), "{e}");
    let (status, e) = error_of(app.post(format!("/v1/tools/{id}/execute"), json!({"private_variables": {"path": ".attacker.test"}})).await).await;
    assert_eq!((status, e["field"].as_str()), (400, Some("private_variables.path")), "{e}");
    // Streamed, the same refusal is the stream's `error` event.
    let r = app.post(format!("/v1/tools/{id}/execute"), json!({"arguments": {"path": ".attacker.test"}, "stream": true})).await;
    let events: Vec<_> = eventsource_stream::EventStream::new(r.bytes_stream()).collect().await;
    let last = events.into_iter().map(|e| e.unwrap()).last().unwrap();
    let body: Value = serde_json::from_str(&last.data).unwrap();
    assert_eq!((last.event.as_str(), body["error"]["field"].as_str()), ("error", Some("arguments.path")), "{body}");
    assert!(seen.lock().unwrap().is_empty(), "the partner received nothing: {:?}", seen.lock().unwrap());

    // After a `/`, the same characters are a path and a query, and the call goes through.
    let legit = created(&app, partner_tool("legit", "{{partner}}/items/{{path}}?q={{q}}", &partner)).await["id"].as_str().unwrap().to_owned();
    let (status, run) = execute(&app, &legit, json!({"arguments": {"path": "a.json", "q": ".attacker.test@x:1/#?"}})).await;
    assert_eq!((status, run["status"].as_str()), (200, Some("succeeded")), "{run}");
    assert_eq!(*seen.lock().unwrap(), ["/items/a.json?q=.attacker.test%40x%3A1%2F%23%3F"]);
    assert_no_secret(&run.to_string());
    app.shutdown().await;
}

#[tokio::test]
async fn a_model_cannot_redirect_a_tool_either() {
    let llm = ScriptedLlm::start().await;
    let app = spawn_agents(&llm.openai_base_url(), |_| {}).await;
    let (partner, seen) = partner_service().await;
    created(&app, partner_tool("partner", "{{partner}}{{path}}", &partner)).await;
    let agent: Value = app.post("/v1/agents", json!({"name": "Helper", "kind": "chat", "tools": ["partner"], "publish": true})).await.json().await.unwrap();
    llm.push(Reply::tool_call("partner", json!({"path": ".attacker.test"})));
    llm.push(Reply::tool_call("answer", json!({"answer": "It was refused."})));
    let id = app.create_with(json!({"goal": "Call the partner", "agent_id": agent["id"]})).await["id"].as_str().unwrap().to_owned();
    app.wait_status(&id, "completed").await;
    let events = app.events(&id).await;
    let action = events.iter().find(|e| e["type"] == "action" && e["data"]["name"] == "partner").expect("the call is an action");
    assert_eq!(action["data"]["ok"], false, "{action}");
    assert!(action.to_string().contains("argument `path` would change where the request goes"), "{action}");
    assert!(seen.lock().unwrap().is_empty(), "the partner received nothing");
    assert_no_secret(&serde_json::to_string(&events).unwrap());
    app.shutdown().await;
}

#[tokio::test]
async fn a_definition_that_leaves_where_it_goes_to_a_caller_is_refused() {
    let app = spawn_app().await;
    let (partner, _) = partner_service().await;
    // The attack as it was written: a placeholder right after a literal host.
    for template in ["http://api.partner.test{{path}}", "https://{{host}}/x", "https://api.partner.test:{{port}}/x", "https://{{user}}@api.partner.test/"] {
        let (status, e) = error_of(app.post("/v1/tools", partner_tool("bad", template, &partner)).await).await;
        assert_eq!((status, e["field"].as_str()), (400, Some("definition.url_template")), "{template} → {e}");
    }
    // Named by the tool's own variables, the same places are fine.
    let mut own = partner_tool("own", "https://{{host}}:{{port}}/x/{{path}}", &partner);
    own["variables"] = json!({"host": "api.partner.test", "port": "8443"});
    let id = created(&app, own).await["id"].as_str().unwrap().to_owned();
    // Changing a version so that a caller would fill them is refused as well.
    let r = app.http.put(app.url(&format!("/v1/tools/{id}/draft"))).bearer_auth(&app.key)
        .json(&json!({"variables": {"host": "api.partner.test"}})).send().await.unwrap();
    let (status, e) = error_of(r).await;
    assert_eq!((status, e["field"].as_str()), (400, Some("definition.url_template")), "{e}");
    assert!(e["message"].as_str().unwrap().contains("{{port}}"), "{e}");
    // An MCP server's URL too.
    let (status, e) = error_of(app.post("/v1/tools", json!({"name": "mcp",
        "definition": {"type": "mcp", "server": {"transport": "http", "url": "{{mcp_url}}"}}})).await).await;
    assert_eq!((status, e["field"].as_str()), (400, Some("definition.server.url")), "{e}");
    created(&app, json!({"name": "mcp", "definition": {"type": "mcp", "server": {"transport": "http", "url": "{{mcp_url}}"}},
        "private_variables": {"mcp_url": "https://mcp.partner.test/mcp"}})).await;
    app.shutdown().await;
}

#[tokio::test]
async fn bad_tools_and_bad_executions_are_refused_naming_the_field() {
    let app = spawn_app().await;
    let base = echo_service().await;
    let at_limit = "n".repeat(64);
    created(&app, http_tool(&at_limit, &base)).await;
    let cases = [
        (http_tool(&"n".repeat(65), &base), "name"),
        (http_tool("web_search", &base), "name"),
        (http_tool("has space", &base), "name"),
        (json!({"name": "x"}), "definition"),
        (json!({"name": "x", "definition": {"type": "ftp"}}), "definition"),
        (json!({"name": "x", "definition": {"type": "http", "method": "GET", "url_template": "ftp://x"}}), "definition.url_template"),
        (json!({"name": "x", "definition": {"type": "http", "method": "GET", "url_template": "https://x", "parameters": {"type": 7}}}), "definition.parameters"),
        (json!({"name": "x", "definition": {"type": "mcp", "server": {"transport": "stdio", "command": " "}}}), "definition.server.command"),
        (json!({"name": "x", "definition": {"type": "http", "method": "GET", "url_template": "https://x"}, "private_variables": {"1bad": "v"}}), "private_variables.1bad"),
        (json!({"name": "x", "definition": {"type": "http", "method": "GET", "url_template": "https://x"}, "variables": "no"}), "variables"),
    ];
    for (body, field) in cases {
        let (status, e) = error_of(app.post("/v1/tools", body.clone()).await).await;
        assert_eq!((status, e["field"].as_str()), (400, Some(field)), "{body} → {e}");
    }
    // Fifty variables, `base` (the URL's origin) among them.
    let mut fifty: serde_json::Map<String, Value> = (0..49).map(|i| (format!("v{i}"), json!("x"))).collect();
    fifty.insert("base".into(), json!(base));
    let mut body = http_tool("fifty", &base);
    body["variables"] = Value::Object(fifty.clone());
    created(&app, body.clone()).await;
    let mut fifty_one = fifty;
    fifty_one.insert("v50".into(), json!("x"));
    body["name"] = json!("fifty_one");
    body["variables"] = Value::Object(fifty_one);
    let (status, e) = error_of(app.post("/v1/tools", body).await).await;
    assert_eq!((status, e["field"].as_str()), (400, Some("variables")));

    let (status, _) = error_of(app.post("/v1/tools", http_tool(&at_limit, &base)).await).await;
    assert_eq!(status, 409, "names are unique in a project");
    let id = created(&app, http_tool("args", &base)).await["id"].as_str().unwrap().to_owned();
    let (status, e) = error_of(app.post(format!("/v1/tools/{id}/execute"), json!({"arguments": {"q": 3}})).await).await;
    assert_eq!((status, e["field"].as_str()), (400, Some("arguments")), "{e}");
    let (status, _) = error_of(app.post(format!("/v1/tools/{}/execute", uuid::Uuid::now_v7()), json!({})).await).await;
    assert_eq!(status, 404);
    let other = app.other_project_key().await;
    let r = app.http.get(app.url(&format!("/v1/tools/{id}"))).bearer_auth(&other).send().await.unwrap();
    assert_eq!(r.status(), 404, "another project's tool is not found");
    let r = app.http.delete(app.url(&format!("/v1/tools/{id}"))).bearer_auth(&app.key).send().await.unwrap();
    assert_eq!(r.status(), 204);
    app.shutdown().await;
}

#[tokio::test]
async fn an_agent_calls_the_tools_its_version_allows() {
    let llm = ScriptedLlm::start().await;
    let app = spawn_agents(&llm.openai_base_url(), |_| {}).await;
    let base = echo_service().await;
    created(&app, http_tool("lookup", &base)).await;
    created(&app, http_tool("not_allowed", &base)).await;
    let agent: Value = app.post("/v1/agents", json!({"name": "Helper", "kind": "chat", "tools": ["lookup", "missing"], "publish": true})).await.json().await.unwrap();
    llm.push(Reply::tool_call("lookup", json!({"q": "ferris"})));
    llm.push(Reply::tool_call("answer", json!({"answer": "Looked it up."})));
    let session = app.create_with(json!({"goal": "Look up ferris", "agent_id": agent["id"]})).await;
    let id = session["id"].as_str().unwrap().to_owned();
    let done = app.wait_status(&id, "completed").await;
    assert_eq!(done["response"]["answer"], "Looked it up.", "{done}");

    let requests = llm.requests();
    let offered: Vec<&str> = requests[0].body["tools"].as_array().unwrap().iter().map(|t| t["function"]["name"].as_str().unwrap()).collect();
    assert!(offered.contains(&"lookup") && !offered.contains(&"not_allowed"), "{offered:?}");
    let second = requests[1].text();
    assert!(second.contains("ferris") && second.contains("[redacted:token]"), "the model read the tool's masked result: {second}");
    assert_no_secret(&second);
    let events = app.events(&id).await;
    let all = serde_json::to_string(&events).unwrap();
    assert_no_secret(&all);
    assert!(events.iter().any(|e| e["type"] == "action" && e["data"]["name"] == "lookup" && e["data"]["ok"] == true), "{all}");
    assert!(all.contains("tool `missing` is not one of the project's published tools"), "{all}");
    app.shutdown().await;
}

#[tokio::test]
async fn a_browser_agent_calls_a_tool_and_reads_its_result_next_step() {
    let llm = ScriptedLlm::start().await;
    let site = agentd_testsite::serve().await;
    let app = spawn_agents(&llm.openai_base_url(), |_| {}).await;
    let base = echo_service().await;
    created(&app, http_tool("lookup", &base)).await;
    let agent: Value = app.post("/v1/agents", json!({"name": "Shopper", "kind": "browser", "tools": ["lookup"], "publish": true})).await.json().await.unwrap();
    llm.push(reasoned("look the word up first", vec![call("lookup", json!({"q": "gizmo"}))]));
    llm.push_with(|r| if r.text().contains("Result of lookup") && r.text().contains("gizmo") { done("found gizmo") } else { done("no result") });
    let session = app.create_with(json!({"goal": "Look up gizmo", "start_url": format!("{site}form"), "agent_id": agent["id"]})).await;
    let id = session["id"].as_str().unwrap().to_owned();
    let finished = app.finish(&id).await;
    assert_eq!(finished["response"], "found gizmo", "{finished}");
    let offered: Vec<String> = llm.requests()[0].body["tools"].as_array().unwrap().iter().map(|t| t["function"]["name"].as_str().unwrap().to_owned()).collect();
    assert!(offered.iter().any(|n| n == "lookup") && offered.iter().any(|n| n == "click"), "{offered:?}");
    let all = serde_json::to_string(&app.events(&id).await).unwrap();
    assert_no_secret(&all);
    assert_no_secret(&llm.requests()[1].text());
    app.shutdown().await;
}
