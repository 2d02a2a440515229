//! Another project's key sees none of this project's sessions: every id-bearing route
//! answers 404, never 403.

use serde_json::{Value, json};

use crate::support::*;

#[tokio::test]
async fn another_projects_key_gets_404_on_every_id_route() {
    let app = spawn_app().await;
    let s = app.create("input:x; done").await["id"].as_str().unwrap().to_owned();
    app.wait_status(&s, "waiting").await;
    let other = app.other_project_key().await;
    let routes: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", format!("/v1/sessions/{s}"), None),
        ("PATCH", format!("/v1/sessions/{s}"), Some(json!({"name": "mine"}))),
        ("DELETE", format!("/v1/sessions/{s}"), None),
        ("POST", format!("/v1/sessions/{s}/stop"), Some(json!({}))),
        ("POST", format!("/v1/sessions/{s}/pause"), Some(json!({}))),
        ("POST", format!("/v1/sessions/{s}/resume"), Some(json!({}))),
        ("POST", format!("/v1/sessions/{s}/input"), Some(json!({"text": "hi"}))),
        ("POST", format!("/v1/sessions/{s}/safety_checks/sc_x"), Some(json!({"confirm": true}))),
        ("GET", format!("/v1/sessions/{s}/events"), None),
        ("GET", format!("/v1/sessions/{s}/ws"), None),
    ];
    for (method, path, body) in &routes {
        let mut req = app.http.request(method.parse().unwrap(), app.url(path)).bearer_auth(&other);
        if let Some(body) = body {
            req = req.json(body);
        }
        let (status, error) = error_of(req.send().await.unwrap()).await;
        assert_eq!((status, error["code"].as_str()), (404, Some("not_found")), "{method} {path}");
    }
    let sse = app
        .http
        .get(app.url(&format!("/v1/sessions/{s}/events")))
        .bearer_auth(&other)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), 404);
    let page: Value = app.get_as(&other, "/v1/sessions").await.json().await.unwrap();
    assert_eq!(page["data"], json!([]));
    // The other project's own sessions work for it, and are invisible to the first.
    let theirs: Value = app.post_as(&other, "/v1/sessions", json!({"goal": "done"})).await.json().await.unwrap();
    let theirs = theirs["id"].as_str().unwrap();
    assert_eq!(app.get(&format!("/v1/sessions/{theirs}")).await.status(), 404);
    assert_eq!(app.get_as(&other, &format!("/v1/sessions/{theirs}")).await.status(), 200);
    // Nothing of ours changed.
    let ours = app.session(&s).await;
    assert_eq!(ours["status"], "waiting");
    assert_eq!(ours["name"], Value::Null);
    app.shutdown().await;
}
