//! Semantic search over tables with the real all-MiniLM-L6-v2 (from `scripts/install-model.sh`)
//! and with a fake OpenAI-compatible `/embeddings` server: background vectorization with a
//! per-row status, paraphrases found first, hybrid search, the refusal without a model, and a
//! restart in the middle of vectorization that loses nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Json;
use axum::routing::post;
use serde_json::{Value, json};

use crate::support::*;

/// The model's directory: `AGENTD_EMBED_MODEL_DIR`, else where `scripts/install-model.sh` puts it.
fn model_dir() -> std::path::PathBuf {
    let dir = std::env::var_os(agentd_embed::MODEL_DIR_ENV)
        .map(std::path::PathBuf::from)
        .or_else(agentd_embed::installed_model_dir)
        .expect("HOME or AGENTD_EMBED_MODEL_DIR");
    assert!(agentd_embed::is_model_dir(&dir), "the embedding model is missing in {}: run scripts/install-model.sh", dir.display());
    dir
}

async fn post_json(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    let r = app.post(path, body).await;
    (r.status().as_u16(), r.json().await.unwrap())
}

/// A table `notes` with a vectorized `text` column; its id.
async fn notes(app: &TestApp) -> String {
    let (status, table) = post_json(app, "/v1/tables", json!({"name": "notes", "columns": [
        {"name": "label", "type": "string"}, {"name": "text", "type": "long_text", "vectorized": true}]})).await;
    assert_eq!(status, 201, "{table}");
    table["id"].as_str().unwrap().to_owned()
}

/// Waits until no row of the table is PENDING; the rows.
async fn embedded(app: &TestApp, table: &str) -> Vec<Value> {
    for _ in 0..600 {
        let rows: Value = app.get(&format!("/v1/tables/{table}/rows?per_page=100")).await.json().await.unwrap();
        let rows = rows["data"].as_array().unwrap().clone();
        if rows.iter().all(|r| r["vector_status"] != "PENDING") {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("rows still pending after 60 s");
}

const SENTENCES: [(&str, &str); 8] = [
    ("cooking", "Simmer the tomato sauce slowly with garlic and basil for an hour."),
    ("travel", "Our train to the mountains leaves early tomorrow morning."),
    ("finance", "The bank raised its interest rates on savings accounts."),
    ("pets", "My dog loves chasing the ball in the park every evening."),
    ("weather", "Heavy rain and strong winds are expected over the weekend."),
    ("health", "Regular exercise and enough sleep keep the heart healthy."),
    ("computing", "The program crashed because it ran out of memory."),
    ("music", "She practises the violin for two hours every day."),
];

/// Paraphrases, each of which must rank its sentence first.
const QUERIES: [(&str, &str); 8] = [
    ("how to prepare a pasta sauce with herbs", "cooking"),
    ("a railway journey to the hills", "travel"),
    ("higher returns on deposits at the bank", "finance"),
    ("a puppy playing fetch outdoors", "pets"),
    ("stormy forecast for saturday and sunday", "weather"),
    ("staying fit with workouts and rest", "health"),
    ("the software failed due to insufficient RAM", "computing"),
    ("daily practice on a string instrument", "music"),
];

#[tokio::test]
async fn paraphrases_are_found_first_with_the_local_model() {
    let dir = model_dir();
    let app = spawn_with(|c| c.embed_model_dir = Some(dir)).await;
    let t = notes(&app).await;
    let rows: Vec<Value> = SENTENCES.iter().map(|(label, text)| json!({"label": label, "text": text})).collect();
    let (status, _) = post_json(&app, &format!("/v1/tables/{t}/rows"), json!({"rows": rows})).await;
    assert_eq!(status, 201);
    let rows = embedded(&app, &t).await;
    assert!(rows.iter().all(|r| r["vector_status"] == "DONE"), "{rows:?}");

    for (query, expected) in QUERIES {
        let (status, hits) = post_json(&app, &format!("/v1/tables/{t}/search"), json!({"query": query, "mode": "semantic", "limit": 3})).await;
        assert_eq!(status, 200, "{hits}");
        let first = &hits["data"][0];
        assert_eq!(first["label"], expected, "`{query}` → {hits}");
        assert!(first["score"].as_f64().unwrap() > hits["data"][1]["score"].as_f64().unwrap());
    }
    // Through the AutessaDB API: `search` is semantic, `limit` rows, closest first, with scores.
    let table: Value = app.get(&format!("/v1/tables/{t}")).await.json().await.unwrap();
    let number = table["resource_id"].as_u64().unwrap();
    let r = app.http.post(app.url(&format!("/clients/autessadb/search?resourceId={number}"))).header("Authorization", &app.key)
        .json(&json!({"tableId": number, "columnName": "text", "query": "a puppy playing fetch outdoors", "limit": 2})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let found: Value = r.json().await.unwrap();
    assert_eq!((found["table"].as_array().unwrap().len(), found["table"][0]["label"].as_str(), found["errors"].clone()), (2, Some("pets"), json!([])), "{found}");
    assert!(found["table"][0]["score"].as_f64().unwrap() > found["table"][1]["score"].as_f64().unwrap());
    // Hybrid: the words and the meaning agree on the cooking note.
    let (_, hits) = post_json(&app, &format!("/v1/tables/{t}/search"), json!({"query": "garlic sauce", "mode": "hybrid", "limit": 3})).await;
    assert_eq!(hits["data"][0]["label"], "cooking", "{hits}");
    // An edit is embedded again: the note is found by its new meaning.
    let r = app.http.patch(app.url(&format!("/v1/tables/{t}/rows/8"))).bearer_auth(&app.key)
        .json(&json!({"values": {"text": "He repairs old bicycles in his garage."}})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    embedded(&app, &t).await;
    let (_, hits) = post_json(&app, &format!("/v1/tables/{t}/search"), json!({"query": "fixing bikes at home", "mode": "semantic", "limit": 1})).await;
    assert_eq!(hits["data"][0]["id"], 8, "{hits}");
    // A deleted row is never found.
    app.http.delete(app.url(&format!("/v1/tables/{t}/rows/8"))).bearer_auth(&app.key).send().await.unwrap();
    let (_, hits) = post_json(&app, &format!("/v1/tables/{t}/search"), json!({"query": "fixing bikes at home", "mode": "semantic", "limit": 8})).await;
    assert!(hits["data"].as_array().unwrap().iter().all(|h| h["id"] != 8), "{hits}");
    app.shutdown().await;
}

#[tokio::test]
async fn without_a_model_semantic_search_is_refused_and_full_text_works() {
    let app = spawn_app().await;
    let t = notes(&app).await;
    post_json(&app, &format!("/v1/tables/{t}/rows"), json!({"values": {"label": "cooking", "text": SENTENCES[0].1}})).await;
    for mode in ["semantic", "hybrid"] {
        let (status, e) = post_json(&app, &format!("/v1/tables/{t}/search"), json!({"query": "sauce", "mode": mode})).await;
        assert_eq!((status, e["error"]["field"].as_str()), (400, Some("mode")), "{e}");
        assert!(e["error"]["message"].as_str().unwrap().contains("AGENTD_EMBED_MODEL_DIR"), "{e}");
    }
    let (status, hits) = post_json(&app, &format!("/v1/tables/{t}/search"), json!({"query": "sauce", "mode": "fulltext"})).await;
    assert_eq!((status, hits["data"][0]["label"].as_str()), (200, Some("cooking")));
    app.shutdown().await;
}

/// A fake `/embeddings` endpoint: a fixed 4-dimensional vector per text (by its first letter), or
/// 503 while `down`. Its base URL.
async fn fake_embeddings(down: Arc<AtomicBool>) -> String {
    let app = axum::Router::new().route(
        "/v1/embeddings",
        post(move |Json(body): Json<Value>| {
            let down = down.clone();
            async move {
                if down.load(Ordering::SeqCst) {
                    return (axum::http::StatusCode::SERVICE_UNAVAILABLE, Json(json!({"error": {"message": "warming up"}})));
                }
                let inputs = body["input"].as_array().cloned().unwrap_or_default();
                let data: Vec<Value> = inputs
                    .iter()
                    .enumerate()
                    .map(|(i, text)| {
                        let c = text.as_str().unwrap_or("a").bytes().next().unwrap_or(b'a');
                        let mut v = vec![0.0_f32; 4];
                        v[(c % 4) as usize] = 1.0;
                        json!({"object": "embedding", "index": i, "embedding": v})
                    })
                    .collect();
                (axum::http::StatusCode::OK, Json(json!({"object": "list", "data": data, "model": "fake"})))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/v1")
}

#[tokio::test]
async fn a_restart_in_the_middle_of_vectorization_loses_nothing() {
    let down = Arc::new(AtomicBool::new(true));
    let url = fake_embeddings(down.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let with_fake = |c: &mut agentd::config::Config| c.embed_url = Some(url.clone());
    let app = spawn_at(dir.path(), with_fake).await;
    let t = notes(&app).await;
    let rows: Vec<Value> = (0..40).map(|i| json!({"label": format!("n{i}"), "text": format!("{} note {i}", ["apple", "banana", "cherry", "date"][i % 4])})).collect();
    let (status, _) = post_json(&app, &format!("/v1/tables/{t}/rows"), json!({"rows": rows})).await;
    assert_eq!(status, 201);
    // The provider is down: the rows wait, PENDING, and the server stops with them so.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let page: Value = app.get(&format!("/v1/tables/{t}/rows?per_page=100")).await.json().await.unwrap();
    assert!(page["data"].as_array().unwrap().iter().all(|r| r["vector_status"] == "PENDING"), "{page}");
    app.shutdown().await;

    down.store(false, Ordering::SeqCst);
    let app = spawn_at(dir.path(), with_fake).await;
    let rows = embedded(&app, &t).await;
    assert_eq!(rows.len(), 40);
    assert!(rows.iter().all(|r| r["vector_status"] == "DONE"), "every row embedded after the restart");
    let (_, hits) = post_json(&app, &format!("/v1/tables/{t}/search"), json!({"query": "apple", "mode": "semantic", "limit": 10})).await;
    assert_eq!(hits["data"].as_array().unwrap().len(), 10);
    assert!(hits["data"].as_array().unwrap().iter().all(|h| h["text"].as_str().unwrap().starts_with("apple")), "{hits}");
    app.shutdown().await;
}
