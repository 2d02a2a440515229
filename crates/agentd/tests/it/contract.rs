//! The API's contract: the OpenAPI document says what the server does. Rules over the document
//! (every operation behind a key lists 401, 429 and 503; every id in a path is a UUID unless
//! listed below with what it is instead; ...), and the server held to what the document says:
//! each common answer provoked and found declared, empty query values, ids, required fields.

use serde_json::{Value, json};

use crate::support::*;

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

/// Path and query parameters named like ids that are not UUIDs, by route and name, and what
/// the document must say they are instead.
const NOT_UUIDS: &[(&str, &str, Shape)] = &[
    ("/v1/sessions", "user_id", Shape::Text),
    ("/v1/sessions/{id}/safety_checks/{check_id}", "check_id", Shape::Pattern("^sc_[0-9a-f]{32}$")),
    ("/v1/tables/{table}/rows/{row_id}", "row_id", Shape::Integer),
    ("/v1/tables/{table}/rows/{row_id}/reindex", "row_id", Shape::Integer),
    ("/v1/webhooks/deliveries/{id}", "id", Shape::Pattern("^msg_[0-9a-f]{32}$")),
    ("/v1/webhooks/deliveries/{id}/redeliver", "id", Shape::Pattern("^msg_[0-9a-f]{32}$")),
    ("/v1/webhooks/endpoints/{id}/enable", "id", Shape::Pattern("^ep_[0-9a-f]{32}$")),
];

/// Body fields named like ids that are not UUIDs, by schema and name.
const NOT_UUID_FIELDS: &[(&str, &str, Shape)] = &[
    ("CreateSessionRequest", "user_id", Shape::Text),
    ("PatchSessionRequest", "user_id", Shape::Text),
    ("InputRequest", "request_id", Shape::Pattern("^req_[0-9a-f]{32}$")),
    ("CreateScheduleRequest", "continues", Shape::Null),
    ("CreateScheduleRequest", "agent_id", Shape::Null),
    ("CreateScheduleRequest", "user_id", Shape::Text),
];

/// What an id-like name is when it is not a UUID.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Shape {
    /// A number (a table's row).
    Integer,
    /// The server's own prefixed form.
    Pattern(&'static str),
    /// The caller's own text (an end user's id in the caller's system).
    Text,
    /// Not taken here: null at most (a schedule's sessions continue nothing).
    Null,
}

/// Checks `schema` against what an id named `what` must be.
fn check_id_schema(what: &str, schema: &Value, shape: Option<Shape>) {
    match shape {
        Some(Shape::Integer) => assert_eq!(schema["type"], "integer", "{what}"),
        Some(Shape::Pattern(pattern)) => assert_eq!(schema["pattern"], pattern, "{what}"),
        Some(Shape::Text) => assert!(schema.get("format").is_none() && schema.get("pattern").is_none(), "{what}: {schema}"),
        Some(Shape::Null) => assert_eq!(schema["type"], "null", "{what}"),
        None => assert_eq!(schema["format"], "uuid", "{what} is an id: {schema}"),
    }
}

fn is_id(name: &str) -> bool {
    name == "id" || name.ends_with("_id")
}

/// Every operation: (METHOD, path, operation).
fn operations(spec: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for method in METHODS {
            if let Some(op) = item.get(method) {
                out.push((method.to_uppercase(), path.clone(), op.clone()));
            }
        }
    }
    out
}

/// `value`, or what its `$ref` points at.
fn resolve<'a>(spec: &'a Value, value: &'a Value) -> &'a Value {
    match value["$ref"].as_str() {
        Some(reference) => spec.pointer(reference.trim_start_matches('#')).unwrap_or_else(|| panic!("{reference} does not resolve")),
        None => value,
    }
}

async fn document(app: &TestApp) -> Value {
    app.http.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap()
}

/// Whether the document declares `status` on `method path`.
fn declares(spec: &Value, method: &str, path: &str, status: u16) -> bool {
    spec["paths"][path][method.to_lowercase()]["responses"].get(status.to_string()).is_some()
}

/// What an answer was, checked against the document: the status expected, and declared.
async fn answered(spec: &Value, method: &str, route: &str, response: reqwest::Response, status: u16) -> Value {
    let got = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(got, status, "{method} {route}: {body}");
    assert!(declares(spec, method, route, status), "{method} {route} answers {status} but the document does not say so");
    body["error"].clone()
}

#[tokio::test]
async fn the_document_declares_what_every_operation_can_answer() {
    let app = spawn_app().await;
    let spec = document(&app).await;
    let operations = operations(&spec);
    assert!(operations.len() > 60, "{} operations", operations.len());
    for (method, path, op) in &operations {
        let at = format!("{method} {path}");
        let responses = op["responses"].as_object().unwrap_or_else(|| panic!("{at}: no responses"));
        let has = |status: &str| responses.contains_key(status);
        for (status, response) in responses {
            let response = resolve(&spec, response);
            assert!(!response["description"].as_str().unwrap_or_default().is_empty(), "{at}: {status} is not described");
            if status.starts_with('4') || status.starts_with('5') {
                let schema = &response["content"]["application/json"]["schema"];
                if path != "/healthz" {
                    assert_eq!(schema["$ref"], "#/components/schemas/ErrorBody", "{at}: {status} is not an error body");
                }
            }
        }
        let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
        if secured {
            for status in ["401", "429", "503"] {
                assert!(has(status), "{at} takes a key but does not list {status}");
            }
        }
        let parameters = op["parameters"].as_array().cloned().unwrap_or_default();
        let in_path: Vec<&Value> = parameters.iter().filter(|p| p["in"] == "path").collect();
        if !in_path.is_empty() {
            assert!(has("404"), "{at} names a resource but does not list 404");
        }
        if op.get("requestBody").is_some() {
            assert!(has("400") && has("413"), "{at} takes a body but does not list 400 and 413");
        }
        if method == "POST" && path.starts_with("/v1/") && !path.ends_with("/execute") {
            let keyed = parameters.iter().any(|p| p["in"] == "header" && p["name"] == "Idempotency-Key");
            assert!(keyed, "{at} takes an Idempotency-Key but does not say so");
            for status in ["400", "409", "413", "422"] {
                assert!(has(status), "{at} takes an Idempotency-Key but does not list {status}");
            }
        }
        for p in &parameters {
            let name = p["name"].as_str().unwrap();
            if p["in"] == "query" && p["required"] != true {
                assert_eq!(p["allowEmptyValue"], true, "{at}: ?{name}= reads as absent, and the document must say so");
            }
            if !is_id(name) || p["in"] == "header" {
                continue;
            }
            let shape = NOT_UUIDS.iter().find(|(route, n, _)| route == path && *n == name).map(|(_, _, shape)| *shape);
            check_id_schema(&format!("{at}: {name}"), &p["schema"], shape);
        }
    }
    // Ids in request bodies.
    for (name, schema) in spec["components"]["schemas"].as_object().unwrap() {
        for (field, property) in schema["properties"].as_object().into_iter().flatten() {
            let is_request = name.ends_with("Request");
            if !is_request || !(is_id(field) || field == "continues") {
                continue;
            }
            let shape = NOT_UUID_FIELDS.iter().find(|(s, f, _)| s == name && f == field).map(|(_, _, shape)| *shape);
            check_id_schema(&format!("{name}.{field}"), property, shape);
        }
    }
    // Every /v1 route but an upload link's is behind the key check.
    for (method, path, op) in &operations {
        if !path.starts_with("/v1/") || path.starts_with("/v1/uploads/") {
            continue;
        }
        assert!(op["security"].as_array().is_some_and(|s| !s.is_empty()), "{method} {path} is behind the key check");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn each_common_answer_the_server_gives_is_one_the_document_declares() {
    let app = spawn_with(|c| c.body_limit_bytes = 4096).await;
    let spec = document(&app).await;

    // 401 without a key, on a route of each kind.
    for (method, route, path) in [("GET", "/v1/sessions", "/v1/sessions".to_owned()), ("POST", "/v1/tables/{table}/query", "/v1/tables/t/query".into())] {
        let response = app.http.request(method.parse().unwrap(), app.url(&path)).send().await.unwrap();
        let error = answered(&spec, method, route, response, 401).await;
        assert_eq!(error["code"], "unauthorized");
    }

    // 429 once the key's minute is used up, with Retry-After.
    let limited = app.key_in("limited", Some(1)).await;
    assert_eq!(app.get_as(&limited, "/v1/tools").await.status(), 200);
    let response = app.get_as(&limited, "/v1/tools").await;
    assert!(response.headers().contains_key("retry-after"));
    answered(&spec, "GET", "/v1/tools", response, 429).await;

    // 404 on the table routes that look their table up (the five the document missed).
    for tail in ["rows/batch-update", "rows/batch-delete", "query", "search"] {
        let route = format!("/v1/tables/{{table}}/{tail}");
        let response = app.post(format!("/v1/tables/missing/{tail}"), json!({})).await;
        answered(&spec, "POST", &route, response, 404).await;
    }
    let response = app.http.post(app.url("/v1/tables/missing/import")).bearer_auth(&app.key)
        .header("content-type", "text/csv").body("a\n1\n").send().await.unwrap();
    answered(&spec, "POST", "/v1/tables/{table}/import", response, 404).await;

    // 400 naming the id for a malformed one, 404 for a well-formed one that is not there.
    let unknown = "0192f0c1-7c3e-7a4b-9d2e-5f1a2b3c4d5e";
    for (route, prefix, tail) in [
        ("/v1/sessions/{id}", "/v1/sessions", ""),
        ("/v1/sessions/{id}/events", "/v1/sessions", "/events"),
        ("/v1/agents/{id}", "/v1/agents", ""),
        ("/v1/tools/{id}", "/v1/tools", ""),
        ("/v1/schedules/{id}", "/v1/schedules", ""),
        ("/v1/sessions/{id}/conversation", "/v1/sessions", "/conversation"),
    ] {
        let error = answered(&spec, "GET", route, app.get(&format!("{prefix}/not-a-uuid{tail}")).await, 400).await;
        assert_eq!(error["field"], "id", "{route}: {error}");
        answered(&spec, "GET", route, app.get(&format!("{prefix}/{unknown}{tail}")).await, 404).await;
    }

    // 413 past the body limit (4 KiB here), at N and N+1: a session's body padded to the byte.
    let at = |n: usize| {
        let bare = json!({"goal": "done", "metadata": {"pad": ""}}).to_string().len();
        json!({"goal": "done", "metadata": {"pad": "x".repeat(n - bare)}}).to_string()
    };
    let send = |body: String| app.http.post(app.url("/v1/sessions")).bearer_auth(&app.key).header("content-type", "application/json").body(body).send();
    assert_eq!(send(at(4096)).await.unwrap().status(), 201);
    answered(&spec, "POST", "/v1/sessions", send(at(4097)).await.unwrap(), 413).await;
    let big = json!({"query": "x".repeat(5000)});
    answered(&spec, "POST", "/v1/tables/{table}/search", app.post("/v1/tables/missing/search", big).await, 413).await;

    // Idempotency-Key: malformed (400), reused for another request (422).
    let keyed = |key: &str, body: Value| app.http.post(app.url("/v1/agents")).bearer_auth(&app.key).header("idempotency-key", key).json(&body).send();
    let error = answered(&spec, "POST", "/v1/agents", keyed(&"k".repeat(256), json!({"name": "a", "kind": "chat"})).await.unwrap(), 400).await;
    assert_eq!(error["field"], "Idempotency-Key");
    answered(&spec, "POST", "/v1/agents", keyed(&"k".repeat(255), json!({"name": "a", "kind": "chat"})).await.unwrap(), 201).await;
    answered(&spec, "POST", "/v1/agents", keyed(&"k".repeat(255), json!({"name": "a", "kind": "chat"})).await.unwrap(), 201).await;
    answered(&spec, "POST", "/v1/agents", keyed(&"k".repeat(255), json!({"name": "b", "kind": "chat"})).await.unwrap(), 422).await;
    app.shutdown().await;
}

#[tokio::test]
async fn an_empty_query_value_reads_as_absent() {
    let app = spawn_app().await;
    let spec = document(&app).await;
    let s = app.create("emit:2; done").await["id"].as_str().unwrap().to_owned();
    app.wait_status(&s, "completed").await;
    let page = |path: String| {
        let app = &app;
        async move {
            let r = app.get(&path).await;
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    let (status, all) = page("/v1/sessions?status=&tag=&user_id=&created_after=&created_before=&has_error=&duration_less_than=&sort=&order=&limit=&cursor=".into()).await;
    assert_eq!((status, all["data"].as_array().map(Vec::len)), (200, Some(1)), "{all}");
    let (status, events) = page(format!("/v1/sessions/{s}/events?after=&limit=")).await;
    assert_eq!((status, events["data"].as_array().map(Vec::len)), (200, Some(4)), "{events}");
    let (status, deliveries) = page("/v1/webhooks/deliveries?status=&session_id=&limit=".into()).await;
    assert_eq!(status, 200, "{deliveries}");
    let table = app.post("/v1/tables", json!({"name": "notes", "columns": [{"name": "text", "type": "string"}]})).await;
    assert_eq!(table.status(), 201);
    let (status, rows) = page("/v1/tables/notes/rows?page=&per_page=&sort=&direction=".into()).await;
    assert_eq!((status, rows["per_page"].as_u64()), (200, Some(20)), "{rows}");
    // A direction alone orders by the default column (it was ignored), and a bad one names the
    // parameter.
    assert_eq!(app.post("/v1/tables/notes/rows", json!({"rows": [{"text": "a"}, {"text": "b"}]})).await.status(), 201);
    let (status, rows) = page("/v1/tables/notes/rows?direction=desc".into()).await;
    let texts: Vec<&str> = rows["data"].as_array().unwrap().iter().map(|r| r["text"].as_str().unwrap()).collect();
    assert_eq!((status, texts), (200, vec!["b", "a"]), "{rows}");
    for (query, field) in [("direction=sideways", "direction"), ("sort=nope", "sort"), ("per_page=101", "per_page")] {
        let (status, error) = error_of(app.get(&format!("/v1/tables/notes/rows?{query}")).await).await;
        assert_eq!((status, error["field"].as_str()), (400, Some(field)), "{query}: {error}");
    }

    // What is given is still checked, at the limits' edges; unknown parameters are still refused
    // (an empty one reads as absent too).
    assert_eq!(page("/v1/sessions?limit=100&nope=".into()).await.0, 200);
    for bad in ["limit=0", "limit=101", "limit=x", "limit=%20", "nope=1"] {
        let (status, body) = page(format!("/v1/sessions?{bad}")).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    // A required parameter left empty is missing, as the document says.
    let cleanup = &spec["paths"]["/v1/sessions/cleanup"]["post"]["parameters"][0];
    assert_eq!((cleanup["name"].as_str(), cleanup["required"].as_bool()), (Some("older_than_days"), Some(true)));
    let (status, error) = error_of(app.post("/v1/sessions/cleanup?older_than_days=", json!({})).await).await;
    assert_eq!((status, error["field"].as_str()), (400, Some("older_than_days")), "{error}");
    app.shutdown().await;
}

#[tokio::test]
async fn the_fields_the_document_requires_or_forbids_are_the_ones_the_server_does() {
    let app = spawn_app().await;
    let spec = document(&app).await;
    let required = |schema: &str| -> Vec<String> {
        spec["components"]["schemas"][schema]["required"].as_array().into_iter().flatten().map(|v| v.as_str().unwrap().to_owned()).collect()
    };
    // Creating: an empty body is refused, naming a field the document calls required.
    for (path, schema) in [
        ("/v1/sessions", "CreateSessionRequest"),
        ("/v1/tools", "CreateToolRequest"),
        ("/v1/conversations", "CreateConversationRequest"),
    ] {
        let (status, error) = error_of(app.post(path, json!({})).await).await;
        assert_eq!(status, 400, "{path}: {error}");
        let field = error["field"].as_str().unwrap().to_owned();
        assert!(required(schema).contains(&field), "{path} requires {field}; the document's {schema} requires {:?}", required(schema));
    }
    // A tool's draft keeps what it leaves out: the definition too.
    assert_eq!(required("ToolDraftRequest"), Vec::<String>::new());
    assert_eq!(required("CreateToolRequest"), ["name", "definition"]);
    let tool = app.post("/v1/tools", json!({
        "name": "lookup",
        "definition": {"type": "http", "method": "GET", "url_template": "https://example.com/{{q}}",
                       "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}},
    })).await;
    assert_eq!(tool.status(), 201);
    let tool: Value = tool.json().await.unwrap();
    let id = tool["id"].as_str().unwrap();
    let first = tool["versions"][0]["definition"].clone();
    for body in [json!({"description": "Looks a word up."}), json!({"definition": null, "variables": null})] {
        let r = app.http.put(app.url(&format!("/v1/tools/{id}/draft"))).bearer_auth(&app.key).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 200, "{body}");
        let draft: Value = r.json().await.unwrap();
        assert_eq!(draft["definition"], first, "{body}: the definition is kept");
    }
    let r = app.http.put(app.url(&format!("/v1/tools/{id}/draft"))).bearer_auth(&app.key).json(&json!({"definition": {"type": "ftp"}})).send().await.unwrap();
    let (status, error) = error_of(r).await;
    assert_eq!((status, error["field"].as_str().map(|f| f.starts_with("definition"))), (400, Some(true)), "{error}");

    // A schedule's sessions run no defined agent: the fields that would pin one are refused
    // (they were dropped), as the document says (null only).
    let schedule = &spec["components"]["schemas"]["CreateScheduleRequest"]["properties"];
    for field in ["agent_id", "agent_version", "version_state", "continues"] {
        assert_eq!(schedule[field]["type"], "null", "{field}");
    }
    let every = json!({"goal": "done", "every_minutes": 60});
    assert_eq!(app.post("/v1/schedules", every.clone()).await.status(), 201);
    for (field, value) in [("agent_id", json!("0192f0c1-7c3e-7a4b-9d2e-5f1a2b3c4d5e")), ("agent_version", json!(1)), ("version_state", json!("DRAFT"))] {
        let mut body = every.clone();
        body[field] = value;
        let (status, error) = error_of(app.post("/v1/schedules", body).await).await;
        assert_eq!((status, error["field"].as_str()), (400, Some(field)), "{error}");
    }
    app.shutdown().await;
}
