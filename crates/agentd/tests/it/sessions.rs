//! Creating, reading, listing, changing and deleting sessions, and refusing bad input.

use serde_json::{Value, json};

use crate::support::*;

#[tokio::test]
async fn create_applies_defaults_and_runs_to_completion() {
    let app = spawn_app().await;
    let session = app.create("emit:2; done:all good").await;
    assert_eq!(session["mode"], "browser");
    assert_eq!(session["max_actions"], 100);
    assert_eq!(session["max_cycles"], 5);
    assert_eq!(session["timeout_seconds"], 1800);
    assert_eq!(session["inactivity_timeout_seconds"], 300);
    assert_eq!((session["display_width"].as_u64(), session["display_height"].as_u64()), (Some(1024), Some(768)));
    assert_eq!(session["headless"], true);
    assert_eq!(session["priority"], "normal");
    assert_eq!(session["metadata"], json!({}));
    let id = session["id"].as_str().unwrap();
    let done = app.wait_status(id, "completed").await;
    assert_eq!(done["response"], "all good");
    assert_eq!(done["response_type"], "STRING");
    assert!(done["ended_at"].is_string() && done["started_at"].is_string());
    let kinds: Vec<Value> = app.events(id).await.iter().map(|e| e["type"].clone()).collect();
    assert_eq!(kinds, vec![json!("started"), json!("thought"), json!("thought"), json!("completed")]);
    app.shutdown().await;
}

#[tokio::test]
async fn create_keeps_every_field() {
    let app = spawn_app().await;
    let body = json!({
        "goal": "done", "start_url": "https://example.com/start", "mode": "browser",
        "max_actions": 500, "max_cycles": 8, "timeout_seconds": 60, "inactivity_timeout_seconds": 30,
        "display_width": 1280, "display_height": 800, "headless": false, "name": "nightly",
        "tags": ["a", "b", "a"], "priority": "high", "user_id": "u-1", "metadata": {"k": [1, 2]},
        "webhook_url": "http://hooks.example/x", "allowed_domains": ["Example.com", "*.example.org"]
    });
    let s = app.create_with(body).await;
    assert_eq!(s["start_url"], "https://example.com/start");
    assert_eq!(s["max_actions"], 500);
    assert_eq!(s["max_cycles"], 8);
    assert_eq!(s["headless"], false);
    assert_eq!(s["tags"], json!(["a", "b"]));
    assert_eq!(s["priority"], "high");
    assert_eq!(s["metadata"], json!({"k": [1, 2]}));
    assert_eq!(s["allowed_domains"], json!(["example.com", "*.example.org"]));
    let read = app.session(s["id"].as_str().unwrap()).await;
    assert_eq!(read["name"], "nightly");
    assert_eq!(read["user_id"], "u-1");
    assert_eq!(read["webhook_url"], "http://hooks.example/x");
    app.shutdown().await;
}

#[tokio::test]
async fn bad_input_is_refused_with_the_field_named_and_nothing_stored() {
    let app = spawn_app().await;
    let long = "x".repeat(201);
    let cases: Vec<(Value, &str, &str)> = vec![
        (json!({}), "goal", "invalid_request"),
        (json!({"goal": "   "}), "goal", "invalid_request"),
        (json!({"goal": "x", "start_url": "ftp://example.com"}), "start_url", "invalid_request"),
        (json!({"goal": "x", "start_url": "not a url"}), "start_url", "invalid_request"),
        (json!({"goal": "x", "max_actions": 0}), "max_actions", "invalid_request"),
        (json!({"goal": "x", "max_actions": -3}), "max_actions", "invalid_request"),
        (json!({"goal": "x", "max_actions": 501}), "max_actions", "invalid_request"),
        (json!({"goal": "x", "max_actions": "ten"}), "max_actions", "invalid_request"),
        (json!({"goal": "x", "max_cycles": 9}), "max_cycles", "invalid_request"),
        (json!({"goal": "x", "timeout_seconds": 0}), "timeout_seconds", "invalid_request"),
        (json!({"goal": "x", "inactivity_timeout_seconds": 86401}), "inactivity_timeout_seconds", "invalid_request"),
        (json!({"goal": "x", "display_width": 10}), "display_width", "invalid_request"),
        (json!({"goal": "x", "mode": "robot"}), "mode", "invalid_request"),
        (json!({"goal": "x", "priority": "urgent"}), "priority", "invalid_request"),
        (json!({"goal": "x", "tags": [""]}), "tags[0]", "invalid_request"),
        (json!({"goal": "x", "tags": "a"}), "tags", "invalid_request"),
        (json!({"goal": "x", "name": long}), "name", "invalid_request"),
        (json!({"goal": "x", "metadata": [1]}), "metadata", "invalid_request"),
        (json!({"goal": "x", "metadata": {"big": "y".repeat(17 * 1024)}}), "metadata", "invalid_request"),
        (json!({"goal": "x", "webhook_url": "javascript:alert(1)"}), "webhook_url", "invalid_request"),
        (json!({"goal": "x", "allowed_domains": ["exa mple.com"]}), "allowed_domains[0]", "invalid_request"),
        (json!({"goal": "x", "model": "gpt 4"}), "model", "invalid_request"),
        (json!({"goal": "x", "model": "m".repeat(201)}), "model", "invalid_request"),
        (json!({"goal": "x", "output_schema": "object"}), "output_schema", "invalid_request"),
        (json!({"goal": "x", "output_schema": {"type": "nonsense"}}), "output_schema", "invalid_request"),
        (json!({"goal": "x", "surprise": true}), "surprise", "unknown_field"),
    ];
    for (body, field, code) in cases {
        let (status, error) = error_of(app.post("/v1/sessions", body.clone()).await).await;
        assert_eq!(status, 400, "{body}: {error}");
        assert_eq!(error["field"], field, "{body}: {error}");
        assert_eq!(error["code"], code, "{body}: {error}");
        assert_eq!(error["type"], "invalid_request_error");
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // Tags and allowed domains at their limits (N) pass; N+1 is refused.
    let tags: Vec<String> = (0..32).map(|i| format!("t{i}")).collect();
    app.create_with(json!({"goal": "done", "tags": tags, "name": "n".repeat(200)})).await;
    let tags: Vec<String> = (0..33).map(|i| format!("t{i}")).collect();
    let (status, error) = error_of(app.post("/v1/sessions", json!({"goal": "x", "tags": tags})).await).await;
    assert_eq!((status, error["field"].as_str()), (400, Some("tags")));
    let (status, error) = error_of(app.post("/v1/sessions", json!({"goal": "x", "tags": ["t".repeat(65)]})).await).await;
    assert_eq!((status, error["field"].as_str()), (400, Some("tags[0]")));
    // Metadata: 16 KiB of JSON passes, one byte more does not.
    let filler = 16 * 1024 - r#"{"big":""}"#.len();
    app.create_with(json!({"goal": "done", "metadata": {"big": "y".repeat(filler)}, "tags": ["t".repeat(64)]})).await;
    let (status, error) = error_of(app.post("/v1/sessions", json!({"goal": "x", "metadata": {"big": "y".repeat(filler + 1)}})).await).await;
    assert_eq!((status, error["field"].as_str()), (400, Some("metadata")));

    // Not JSON, wrong content type, malformed JSON.
    let raw = |body: &'static str, ctype: &'static str| {
        app.http
            .post(app.url("/v1/sessions"))
            .bearer_auth(&app.key)
            .header("content-type", ctype)
            .body(body)
            .send()
    };
    for (body, ctype) in [("{\"goal\": ", "application/json"), ("goal=x", "application/x-www-form-urlencoded"), ("[1,2]", "application/json"), ("{} {}", "application/json")] {
        let (status, error) = error_of(raw(body, ctype).await.unwrap()).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(error["code"], "invalid_json", "{body}");
    }
    let page: Value = app.get("/v1/sessions").await.json().await.unwrap();
    assert_eq!(page["data"].as_array().unwrap().len(), 2, "only the valid sessions were stored");

    // A model name of 200 characters and a schema of 64 KiB pass; one more does not.
    let s = app.create_with(json!({"goal": "done", "model": "m".repeat(200)})).await;
    assert_eq!(s["model"], "m".repeat(200));
    let schema = |pad: usize| json!({"description": "d".repeat(pad)});
    let pad = 64 * 1024 - schema(0).to_string().len();
    let s = app.create_with(json!({"goal": "done", "output_schema": schema(pad)})).await;
    assert_eq!(s["output_schema"], schema(pad));
    let (status, error) = error_of(app.post("/v1/sessions", json!({"goal": "x", "output_schema": schema(pad + 1)})).await).await;
    assert_eq!((status, error["field"].as_str()), (400, Some("output_schema")));
    app.shutdown().await;
}

#[tokio::test]
async fn max_actions_cap_is_configurable_and_enforced_at_n_and_n_plus_one() {
    let app = spawn_with(|c| c.sessions.max_actions_cap = 7).await;
    app.create_with(json!({"goal": "done", "max_actions": 7})).await;
    let (status, error) = error_of(app.post("/v1/sessions", json!({"goal": "x", "max_actions": 8})).await).await;
    assert_eq!(status, 400);
    assert!(error["message"].as_str().unwrap().contains("between 1 and 7"));
    app.shutdown().await;
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let app = spawn_with(|c| c.body_limit_bytes = 2048).await;
    // A body of exactly N bytes is accepted; N + 1 is refused.
    let body_of = |size: usize| {
        let base = r#"{"goal":"done","metadata":{"p":""}}"#.len();
        format!(r#"{{"goal":"done","metadata":{{"p":"{}"}}}}"#, "x".repeat(size - base))
    };
    let send = |body: String| {
        app.http.post(app.url("/v1/sessions")).bearer_auth(&app.key).header("content-type", "application/json").body(body).send()
    };
    assert_eq!(body_of(2048).len(), 2048);
    assert_eq!(send(body_of(2048)).await.unwrap().status(), 201);
    let (status, error) = error_of(send(body_of(2049)).await.unwrap()).await;
    assert_eq!((status, error["code"].as_str()), (413, Some("payload_too_large")));
    let page: serde_json::Value = app.get("/v1/sessions").await.json().await.unwrap();
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    app.shutdown().await;
}

#[tokio::test]
async fn get_unknown_or_malformed_ids() {
    let app = spawn_app().await;
    let (status, error) = error_of(app.get(&format!("/v1/sessions/{}", uuid::Uuid::now_v7())).await).await;
    assert_eq!((status, error["code"].as_str()), (404, Some("not_found")));
    let (status, error) = error_of(app.get("/v1/sessions/not-an-id").await).await;
    assert_eq!((status, error["field"].as_str()), (400, Some("id")));
    let (status, _) = error_of(app.get("/v1/nothing-here").await).await;
    assert_eq!(status, 404);
    app.shutdown().await;
}

#[tokio::test]
async fn list_filters_sorts_and_pages() {
    let app = spawn_app().await;
    let a = app.create_with(json!({"goal": "done", "name": "alpha", "tags": ["x"], "user_id": "u1", "priority": "low"})).await;
    let b = app.create_with(json!({"goal": "fail:nope", "name": "bravo", "tags": ["x", "y"], "user_id": "u2", "priority": "high"})).await;
    let c = app.create_with(json!({"goal": "wait", "name": "charlie", "tags": ["y"], "user_id": "u1"})).await;
    let id = |v: &Value| v["id"].as_str().unwrap().to_owned();
    app.wait_status(&id(&a), "completed").await;
    app.wait_status(&id(&b), "failed").await;
    app.wait_status(&id(&c), "running").await;

    let ids = |page: &Value| -> Vec<String> { page["data"].as_array().unwrap().iter().map(id).collect() };
    let list = |q: &str| {
        let q = q.to_owned();
        let app = &app;
        async move {
            let r = app.get(&format!("/v1/sessions?{q}")).await;
            assert_eq!(r.status(), 200, "{q}");
            r.json::<Value>().await.unwrap()
        }
    };
    assert_eq!(ids(&list("").await), vec![id(&c), id(&b), id(&a)], "newest first by default");
    assert_eq!(ids(&list("order=asc").await), vec![id(&a), id(&b), id(&c)]);
    assert_eq!(ids(&list("status=completed,failed").await), vec![id(&b), id(&a)]);
    assert_eq!(ids(&list("tag=y").await), vec![id(&c), id(&b)]);
    assert_eq!(ids(&list("user_id=u1").await), vec![id(&c), id(&a)]);
    assert_eq!(ids(&list("has_error=true").await), vec![id(&b)]);
    assert_eq!(ids(&list("has_error=false&order=asc").await), vec![id(&a), id(&c)]);
    assert_eq!(ids(&list("sort=priority").await), vec![id(&b), id(&c), id(&a)]);
    assert_eq!(ids(&list("sort=name&order=asc").await), vec![id(&a), id(&b), id(&c)]);
    let created_b = list(&format!("created_after={}", urlencode(a["created_at"].as_str().unwrap()))).await;
    assert_eq!(ids(&created_b).len(), 3);
    let before = list(&format!("created_before={}", urlencode(c["created_at"].as_str().unwrap()))).await;
    assert!(!ids(&before).contains(&id(&c)));

    // Cursor pagination walks every session once, in order, for each sort.
    for sort in ["created_at", "updated_at", "priority", "name", "status"] {
        for order in ["asc", "desc"] {
            let mut seen = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let mut q = format!("sort={sort}&order={order}&limit=1");
                if let Some(c) = &cursor {
                    q.push_str(&format!("&cursor={c}"));
                }
                let page = list(&q).await;
                seen.extend(ids(&page));
                match page["next_cursor"].as_str() {
                    Some(c) => {
                        assert_eq!(page["has_more"], true);
                        cursor = Some(c.to_owned());
                    }
                    None => break,
                }
            }
            let mut unique = seen.clone();
            unique.sort();
            unique.dedup();
            assert_eq!((seen.len(), unique.len()), (3, 3), "{sort} {order}: {seen:?}");
        }
    }

    for (q, field) in [
        ("status=done", "status"),
        ("sort=goal", "sort"),
        ("order=up", "order"),
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("cursor=%%%", "cursor"),
        ("cursor=eyJ4IjoxfQ", "cursor"),
        ("created_after=yesterday", "created_after"),
        ("has_error=maybe", "has_error"),
        ("colour=red", "colour"),
    ] {
        let (status, error) = error_of(app.get(&format!("/v1/sessions?{q}")).await).await;
        assert_eq!((status, error["field"].as_str()), (400, Some(field)), "{q}: {error}");
    }
    // A cursor made for one sort is refused for another.
    let page = list("sort=name&limit=1").await;
    let cursor = page["next_cursor"].as_str().unwrap();
    let (status, error) = error_of(app.get(&format!("/v1/sessions?sort=created_at&cursor={cursor}")).await).await;
    assert_eq!((status, error["field"].as_str()), (400, Some("cursor")));
    assert_eq!(list("limit=100").await["data"].as_array().unwrap().len(), 3);
    app.shutdown().await;
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

#[tokio::test]
async fn patch_changes_only_given_fields() {
    let app = spawn_app().await;
    let s = app.create_with(json!({"goal": "wait", "name": "n1", "tags": ["a"], "user_id": "u", "metadata": {"a": 1}})).await;
    let id = s["id"].as_str().unwrap();
    let patch = |body: Value| {
        app.http.patch(app.url(&format!("/v1/sessions/{id}"))).bearer_auth(&app.key).json(&body).send()
    };
    let r: Value = patch(json!({"tags": ["b", "c"], "priority": "high"})).await.unwrap().json().await.unwrap();
    assert_eq!(r["tags"], json!(["b", "c"]));
    assert_eq!(r["priority"], "high");
    assert_eq!(r["name"], "n1");
    assert_eq!(r["metadata"], json!({"a": 1}));
    let r: Value = patch(json!({"name": null, "metadata": {"z": true}})).await.unwrap().json().await.unwrap();
    assert_eq!(r["name"], Value::Null);
    assert_eq!(r["user_id"], "u");
    assert_eq!(r["metadata"], json!({"z": true}));
    let page: Value = app.get("/v1/sessions?tag=c").await.json().await.unwrap();
    assert_eq!(page["data"].as_array().unwrap().len(), 1, "tag index follows the patch");
    for (body, field) in [
        (json!({"goal": "new"}), "goal"),
        (json!({"priority": "meh"}), "priority"),
        (json!({"tags": [""]}), "tags[0]"),
        (json!({"status": "completed"}), "status"),
    ] {
        let (status, error) = error_of(patch(body.clone()).await.unwrap()).await;
        assert_eq!((status, error["field"].as_str()), (400, Some(field)), "{body}");
    }
    assert_eq!(app.session(id).await["status"], "running", "bad patches change nothing");
    app.shutdown().await;
}

#[tokio::test]
async fn delete_and_cleanup() {
    let app = spawn_app().await;
    let live = app.create("wait").await;
    let live_id = live["id"].as_str().unwrap();
    app.wait_status(live_id, "running").await;
    let del = |id: String| app.http.delete(app.url(&format!("/v1/sessions/{id}"))).bearer_auth(&app.key).send();
    let (status, error) = error_of(del(live_id.into()).await.unwrap()).await;
    assert_eq!((status, error["code"].as_str()), (409, Some("conflict")));
    app.post(&format!("/v1/sessions/{live_id}/stop"), json!({})).await;
    assert_eq!(del(live_id.into()).await.unwrap().status(), 204);
    assert_eq!(app.get(&format!("/v1/sessions/{live_id}")).await.status(), 404);
    assert_eq!(app.get(&format!("/v1/sessions/{live_id}/events")).await.status(), 404);
    assert_eq!(del(live_id.into()).await.unwrap().status(), 404);

    // Cleanup removes only sessions that ended more than N days ago.
    let fresh = app.create("done").await;
    app.wait_status(fresh["id"].as_str().unwrap(), "completed").await;
    let old_id = insert_old_session(&app, 10).await;
    for q in ["", "?older_than_days=0", "?older_than_days=-1", "?older_than_days=x"] {
        let (status, error) = error_of(app.post(&format!("/v1/sessions/cleanup{q}"), json!({})).await).await;
        assert_eq!((status, error["field"].as_str()), (400, Some("older_than_days")), "{q}");
    }
    let r: Value = app.post("/v1/sessions/cleanup?older_than_days=11", json!({})).await.json().await.unwrap();
    assert_eq!(r["deleted"], 0);
    let r: Value = app.post("/v1/sessions/cleanup?older_than_days=9", json!({})).await.json().await.unwrap();
    assert_eq!(r["deleted"], 1);
    assert_eq!(app.get(&format!("/v1/sessions/{old_id}")).await.status(), 404);
    assert_eq!(app.session(fresh["id"].as_str().unwrap()).await["status"], "completed");
    app.shutdown().await;
}

/// Stores a completed session that ended `days` ago, in the admin key's project.
pub async fn insert_old_session(app: &TestApp, days: i64) -> String {
    use agentd_domain::*;
    let project = app.store().project_by_name("default").await.unwrap().unwrap();
    let then = chrono::Utc::now() - chrono::Duration::days(days);
    let spec = SessionSpec {
        mode: Mode::Browser,
        goal: "old".into(),
        start_url: None,
        max_actions: 1,
        max_cycles: 1,
        timeout_seconds: 1,
        inactivity_timeout_seconds: 1,
        display_width: 1024,
        display_height: 768,
        headless: true,
        webhook_url: None,
        allowed_domains: vec![],
        model: None,
        output_schema: None,
        secret_names: vec![],
        driver: Default::default(),
        continues: None,
        conversation: Vec::new(),
        conversation_id: None,
        agent: None,
        instructions: None,
        tools: None,
    };
    let session = Session {
        status: SessionStatus::Completed,
        started_at: Some(then),
        ended_at: Some(then),
        ..Session::queued(project.id, spec, then)
    };
    app.store().insert_session(&session).await.unwrap();
    session.id.to_string()
}
