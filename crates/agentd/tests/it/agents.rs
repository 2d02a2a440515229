//! Agents: versions (draft, published, archived), sessions pinned to the version they
//! started with, and every error path.

use serde_json::{Value, json};

use crate::support::*;

async fn agent(app: &TestApp, body: Value) -> Value {
    let r = app.post("/v1/agents", body).await;
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 201, "{body}");
    body
}

async fn put(app: &TestApp, path: &str, body: Value) -> reqwest::Response {
    app.http.put(app.url(path)).bearer_auth(&app.key).json(&body).send().await.unwrap()
}

#[tokio::test]
async fn sessions_are_pinned_to_the_version_they_started_with() {
    let app = spawn_app().await;
    let a = agent(&app, json!({"name": "Researcher", "kind": "research", "instructions": "Be brief.", "tools": ["web_search"],
                                "limits": {"max_cycles": 2}})).await;
    let id = a["id"].as_str().unwrap().to_owned();
    assert_eq!((a["draft_version"].as_u64(), a["published_version"].as_u64()), (Some(1), None));
    assert_eq!(a["versions"][0]["state"], "DRAFT");
    let other = agent(&app, json!({"name": "Other", "kind": "chat"})).await;
    let (n1, n2) = (a["resource_id"].as_u64().unwrap(), other["resource_id"].as_u64().unwrap());
    assert!(n1 >= 1 && n2 > n1, "resource numbers grow: {n1} then {n2}");

    // Nothing published yet: only the draft, by name.
    let (status, e) = error_of(app.post("/v1/sessions", json!({"goal": "done:x", "agent_id": id})).await).await;
    assert_eq!((status, e["field"].as_str()), (400, Some("agent_version")));
    let tried = app.create_with(json!({"goal": "done:draft", "agent_id": id, "version_state": "DRAFT"})).await;
    assert_eq!(tried["agent"], json!({"agent_id": id, "version": 1}));
    assert_eq!((tried["mode"].as_str(), tried["max_cycles"].as_u64()), (Some("research"), Some(2)));

    let v1: Value = app.post(format!("/v1/agents/{id}/publish"), json!({})).await.json().await.unwrap();
    assert_eq!((v1["number"].as_u64(), v1["state"].as_str()), (Some(1), Some("PUBLISHED")));
    let on_v1 = app.create_with(json!({"goal": "wait", "agent_id": id})).await;
    assert_eq!(on_v1["agent"]["version"], 1);

    let v2: Value = put(&app, &format!("/v1/agents/{id}/draft"), json!({"instructions": "Be thorough.", "limits": {"max_cycles": 5}})).await.json().await.unwrap();
    assert_eq!((v2["number"].as_u64(), v2["state"].as_str(), v2["kind"].as_str()), (Some(2), Some("DRAFT"), Some("research")));
    assert_eq!(v2["tools"], json!(["web_search"]), "fields left out keep the latest version's");
    let edited: Value = put(&app, &format!("/v1/agents/{id}/draft"), json!({"instructions": "Be very thorough."})).await.json().await.unwrap();
    assert_eq!(edited["number"], 2, "the draft is edited in place");
    app.post(format!("/v1/agents/{id}/publish"), json!({})).await;
    let shown: Value = app.get(&format!("/v1/agents/{id}")).await.json().await.unwrap();
    let states: Vec<&str> = shown["versions"].as_array().unwrap().iter().map(|v| v["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["ARCHIVED", "PUBLISHED"]);
    assert_eq!((shown["published_version"].as_u64(), shown["draft_version"].as_u64()), (Some(2), None));

    // The session started on v1 stays on v1; new ones get v2; v1 is still there by number.
    assert_eq!(app.session(on_v1["id"].as_str().unwrap()).await["agent"]["version"], 1);
    let on_v2 = app.create_with(json!({"goal": "done:x", "agent_id": id})).await;
    assert_eq!((on_v2["agent"]["version"].as_u64(), on_v2["max_cycles"].as_u64()), (Some(2), Some(5)));
    let pinned_old = app.create_with(json!({"goal": "done:x", "agent_id": id, "agent_version": 1})).await;
    assert_eq!(pinned_old["max_cycles"], 2);
    let own = app.create_with(json!({"goal": "done:x", "agent_id": id, "max_cycles": 8})).await;
    assert_eq!(own["max_cycles"], 8, "the request's own fields win over the version's");
    let (status, _) = error_of(app.post(format!("/v1/agents/{id}/publish"), json!({})).await).await;
    assert_eq!(status, 409, "no draft to publish");
    app.post(format!("/v1/sessions/{}/stop", on_v1["id"].as_str().unwrap()), json!({})).await;
    app.shutdown().await;
}

#[tokio::test]
async fn bad_agents_and_bad_pins_are_refused_naming_the_field() {
    let app = spawn_app().await;
    for (body, field) in [
        (json!({"kind": "research"}), "name"),
        (json!({"name": "x"}), "kind"),
        (json!({"name": "x", "kind": "robot"}), "kind"),
        (json!({"name": "x", "kind": "chat", "limits": {"max_cycles": 9}}), "limits.max_cycles"),
        (json!({"name": "x", "kind": "chat", "limits": {"max_cycles": 0}}), "limits.max_cycles"),
        (json!({"name": "x", "kind": "chat", "tools": ["web search"]}), "tools[0]"),
        (json!({"name": "x", "kind": "chat", "instructions": "i".repeat(20_001)}), "instructions"),
        (json!({"name": "x", "kind": "chat", "colour": "red"}), "colour"),
    ] {
        let (status, e) = error_of(app.post("/v1/agents", body.clone()).await).await;
        assert_eq!((status, e["field"].as_str()), (400, Some(field)), "{body}: {e}");
    }
    agent(&app, json!({"name": "x", "kind": "chat", "limits": {"max_cycles": 8}, "instructions": "i".repeat(20_000)})).await;
    let chat = agent(&app, json!({"name": "Chatty", "kind": "chat", "publish": true})).await;
    let id = chat["id"].as_str().unwrap();
    for (body, field) in [
        (json!({"goal": "x", "agent_version": 1}), "agent_id"),
        (json!({"goal": "x", "agent_id": "nope"}), "agent_id"),
        (json!({"goal": "x", "agent_id": uuid::Uuid::now_v7()}), "agent_id"),
        (json!({"goal": "x", "agent_id": id, "mode": "browser"}), "mode"),
        (json!({"goal": "x", "agent_id": id, "agent_version": 7}), "agent_version"),
        (json!({"goal": "x", "agent_id": id, "agent_version": 0}), "agent_version"),
        (json!({"goal": "x", "agent_id": id, "version_state": "ARCHIVED"}), "version_state"),
        (json!({"goal": "x", "agent_id": id, "version_state": "DRAFT"}), "agent_version"),
    ] {
        let (status, e) = error_of(app.post("/v1/sessions", body.clone()).await).await;
        assert_eq!((status, e["field"].as_str()), (400, Some(field)), "{body}: {e}");
    }
    let other = app.other_project_key().await;
    let (status, _) = error_of(app.get_as(&other, &format!("/v1/agents/{id}")).await).await;
    assert_eq!(status, 404, "another project's agent is not found");
    let renamed: Value = app.http.patch(app.url(&format!("/v1/agents/{id}"))).bearer_auth(&app.key)
        .json(&json!({"name": "Chatty 2", "description": "says hi"})).send().await.unwrap().json().await.unwrap();
    assert_eq!((renamed["name"].as_str(), renamed["description"].as_str()), (Some("Chatty 2"), Some("says hi")));
    let listed: Value = app.get("/v1/agents").await.json().await.unwrap();
    assert_eq!(listed["data"].as_array().unwrap().len(), 2);
    assert_eq!(app.http.delete(app.url(&format!("/v1/agents/{id}"))).bearer_auth(&app.key).send().await.unwrap().status(), 204);
    let (status, _) = error_of(app.get(&format!("/v1/agents/{id}/versions")).await).await;
    assert_eq!(status, 404);
    app.shutdown().await;
}
