//! HTTP tools against a fixture web server on loopback that records every request.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentd_egress::{AddressClass, EgressError, EgressPolicy};
use agentd_tools::{
    CallerInput, DebugSink, HttpMethod, HttpTool, ResponseBody, ToolDefinition, ToolError, ToolLimits, ToolOutput,
    ToolRunner,
};
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::{Lines, SECRET, assert_no_secret, runner, short_limits, variables};

/// One request the fixture received.
#[derive(Debug, Clone)]
struct Received {
    uri: String,
    authorization: Option<String>,
    content_type: Option<String>,
    body: String,
}

/// The fixture web server: its address and what it received.
struct Web {
    base: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Web {
    async fn start() -> Web {
        let received = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .route("/search", get(search))
            .route("/items", post(items))
            .route("/slow", get(slow))
            .route("/missing", get(missing))
            .route("/big", get(big))
            .route("/text", get(text))
            .with_state(received.clone());
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Web { base, received }
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

type Log = State<Arc<Mutex<Vec<Received>>>>;

fn record(log: &Log, uri: &Uri, headers: &HeaderMap, body: &str) {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    log.lock().unwrap().push(Received {
        uri: uri.to_string(),
        authorization: header("authorization"),
        content_type: header("content-type"),
        body: body.to_owned(),
    });
}

/// Answers with the query it read and the Authorization header it got (so an output holds the
/// secret unless it is masked).
async fn search(
    log: Log,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<BTreeMap<String, String>>,
) -> impl IntoResponse {
    record(&log, &uri, &headers, "");
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let mut response = axum::Json(json!({"query": query, "seen_authorization": auth})).into_response();
    response.headers_mut().insert("etag", format!("\"{}\"", auth.len()).parse().unwrap());
    response
}

async fn items(log: Log, uri: Uri, headers: HeaderMap, body: String) -> impl IntoResponse {
    record(&log, &uri, &headers, &body);
    let parsed: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    (StatusCode::CREATED, axum::Json(json!({"created": parsed})))
}

async fn slow(log: Log, uri: Uri, headers: HeaderMap) -> &'static str {
    record(&log, &uri, &headers, "");
    tokio::time::sleep(Duration::from_secs(30)).await;
    "too late"
}

async fn missing(log: Log, uri: Uri, headers: HeaderMap) -> impl IntoResponse {
    record(&log, &uri, &headers, "");
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    (StatusCode::NOT_FOUND, format!("no such item for {auth}"))
}

async fn big() -> String {
    "x".repeat(64 * 1024)
}

async fn text(headers: HeaderMap) -> String {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    format!("plain text for {auth}")
}

fn tool(method: HttpMethod, url_template: &str) -> HttpTool {
    HttpTool {
        method,
        url_template: url_template.to_owned(),
        headers: [("Authorization".to_owned(), "Bearer {{api_key}}".to_owned())].into(),
        body_template: None,
        parameters: json!({"type": "object"}),
    }
}

#[tokio::test]
async fn get_with_a_query_from_arguments_sends_the_secret_and_shows_it_nowhere() {
    let web = Web::start().await;
    let mut search = tool(HttpMethod::Get, "{{base}}/search?q={{q}}&limit={{limit}}");
    search.parameters = json!({
        "type": "object",
        "properties": {"q": {"type": "string"}, "limit": {"type": "integer"}},
        "required": ["q"],
    });
    let vars = variables(&[("base", &web.base)], &[]);
    let (sink, mut lines) = Lines::new();
    let output = runner(short_limits())
        .execute_http(&search, &json!({"q": "rust & tools/1", "limit": 5}), &vars, &sink)
        .await
        .unwrap();

    // The fixture got the real secret and the query as one parameter each.
    let received = web.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].authorization.as_deref(), Some(format!("Bearer {SECRET}").as_str()));
    assert_eq!(received[0].uri, "/search?q=rust%20%26%20tools%2F1&limit=5");

    assert_eq!(output.status, 200);
    assert_eq!(
        output.body,
        ResponseBody::Json(json!({
            "query": {"q": "rust & tools/1", "limit": "5"},
            "seen_authorization": "Bearer [redacted:api_key]",
        }))
    );
    assert_eq!(output.headers.get("content-type").map(String::as_str), Some("application/json"));
    assert!(output.headers.contains_key("etag") && !output.truncated);

    let lines = lines.drain();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0], format!("GET {}/search?q=rust%20%26%20tools%2F1&limit=5", web.base));
    assert!(lines[1].contains("→ 200 OK in ") && lines[1].ends_with(" bytes"), "{lines:?}");
    assert_no_secret(&serde_json::to_string(&output).unwrap());
    assert_no_secret(&format!("{output:?} {lines:?}"));
}

#[tokio::test]
async fn post_with_a_json_body_template_keeps_argument_types_and_masks_the_echo() {
    let web = Web::start().await;
    let mut create = tool(HttpMethod::Post, "{{base}}/items");
    create.body_template = Some(json!({
        "name": "{{name}}",
        "count": "{{count}}",
        "tags": "{{tags}}",
        "note": "for {{name}} in {{region}}",
        "token": "{{api_key}}",
    }));
    // The tool's own variable wins over the caller's environment variable of the same name.
    let vars = variables(&[("base", &web.base), ("region", "plain-region")], &[("region", "eu-west")]);
    let (sink, mut lines) = Lines::new();
    let tool = ToolDefinition::Http(create);
    let output = runner(short_limits())
        .execute(&tool, &json!({"name": "Ada", "count": 3, "tags": ["a", "b"]}), &vars, &sink)
        .await
        .unwrap();

    let received = web.received();
    assert_eq!(received[0].content_type.as_deref(), Some("application/json"));
    let sent: Value = serde_json::from_str(&received[0].body).unwrap();
    assert_eq!(
        sent,
        json!({"name": "Ada", "count": 3, "tags": ["a", "b"], "note": "for Ada in plain-region", "token": SECRET})
    );
    let ToolOutput::Http(output) = output else { panic!("an HTTP output") };
    assert_eq!(output.status, 201);
    let ResponseBody::Json(body) = &output.body else { panic!("{output:?}") };
    assert_eq!(body["created"]["token"], json!("[redacted:api_key]"));
    assert_eq!(body["created"]["count"], json!(3));
    let lines = lines.drain();
    assert!(lines.iter().any(|l| l.starts_with("POST ") && l.contains("→ 201 Created")), "{lines:?}");
    assert_no_secret(&format!("{output:?} {lines:?}"));
}

#[tokio::test]
async fn arguments_are_checked_against_the_schema_before_anything_is_sent() {
    let web = Web::start().await;
    let mut search = tool(HttpMethod::Get, "{{base}}/search?q={{q}}");
    search.parameters = json!({
        "type": "object",
        "properties": {"q": {"type": "string", "minLength": 2}, "page": {"type": "integer"}},
        "required": ["q"],
        "additionalProperties": false,
    });
    let vars = variables(&[("base", &web.base)], &[]);
    let runner = runner(short_limits());
    let run = |arguments: Value| {
        let (runner, search, vars) = (runner.clone(), search.clone(), vars.clone());
        async move { runner.execute_http(&search, &arguments, &vars, &DebugSink::none()).await.unwrap_err() }
    };

    let wrong_type = run(json!({"q": "rust", "page": "two"})).await;
    assert!(matches!(&wrong_type, ToolError::InvalidArguments { .. }));
    assert!(wrong_type.to_string().contains("`page`: \"two\" is not of type \"integer\""), "{wrong_type}");
    let missing = run(json!({"page": 1})).await.to_string();
    assert!(missing.contains("\"q\" is a required property"), "{missing}");
    let short = run(json!({"q": "r"})).await.to_string();
    assert!(short.contains("`q`:"), "{short}");
    let extra = run(json!({"q": "rust", "debug": true})).await.to_string();
    assert!(extra.contains("debug"), "{extra}");
    assert_eq!(
        run(json!("rust")).await.to_string(),
        "invalid arguments: the arguments must be a JSON object, not a string"
    );
    let mut broken = search.clone();
    broken.parameters = json!({"type": "no-such-type"});
    let error = runner.execute_http(&broken, &json!({}), &vars, &DebugSink::none()).await.unwrap_err();
    assert!(matches!(error, ToolError::InvalidSchema { .. }), "{error}");
    assert!(web.received().is_empty());
}

#[tokio::test]
async fn an_unknown_placeholder_is_an_error_that_names_it() {
    let web = Web::start().await;
    let vars = variables(&[("base", &web.base)], &[("region", "eu")]);
    let runner = runner(short_limits());

    let in_url = tool(HttpMethod::Get, "{{base}}/search?q={{query}}");
    let error = runner.execute_http(&in_url, &json!({"q": "x"}), &vars, &DebugSink::none()).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "unknown placeholder {{query}} in the URL template: no argument or variable has that name \
         (known: api_key, base, q, region)"
    );
    let mut in_header = tool(HttpMethod::Get, "{{base}}/search");
    in_header.headers.insert("X-Tenant".into(), "{{tenant}}".into());
    let error = runner.execute_http(&in_header, &json!({}), &vars, &DebugSink::none()).await.unwrap_err();
    assert!(
        matches!(&error, ToolError::UnknownPlaceholder { name, place, .. } if name == "tenant" && place == "header X-Tenant")
    );
    let mut in_body = tool(HttpMethod::Post, "{{base}}/items");
    in_body.body_template = Some(json!({"a": ["{{missing}}"]}));
    let error = runner.execute_http(&in_body, &json!({}), &vars, &DebugSink::none()).await.unwrap_err();
    assert!(error.to_string().contains("{{missing}} in the body template"), "{error}");
    assert!(web.received().is_empty());
}

#[tokio::test]
async fn the_default_policy_refuses_loopback_and_metadata_is_refused_always() {
    let web = Web::start().await;
    let vars = variables(&[("base", &web.base)], &[]);
    let search = tool(HttpMethod::Get, "{{base}}/search?q=x");
    let strict = ToolRunner::new(EgressPolicy::default(), short_limits()).unwrap();
    let (sink, mut lines) = Lines::new();
    let error = strict.execute_http(&search, &json!({}), &vars, &sink).await.unwrap_err();
    let ToolError::Egress(EgressError::Refused { target, class }) = &error else { panic!("{error:?}") };
    assert_eq!((target.as_str(), *class), ("127.0.0.1", AddressClass::Loopback));
    assert!(error.to_string().contains("AGENTD_ALLOW_PRIVATE_NETWORKS=true"), "{error}");
    assert!(web.received().is_empty() && lines.drain().is_empty());

    let metadata = tool(HttpMethod::Get, "http://169.254.169.254/latest/meta-data/");
    let error =
        runner(short_limits()).execute_http(&metadata, &json!({}), &vars, &DebugSink::none()).await.unwrap_err();
    assert!(error.to_string().contains("never connects to"), "{error}");

    // A refused host that came from a private variable is masked in the error.
    let mut vars = vars;
    vars.private_variables.insert("internal_host".into(), "10.20.30.40".into());
    let internal = tool(HttpMethod::Get, "http://{{internal_host}}/admin");
    let error = strict.execute_http(&internal, &json!({}), &vars, &DebugSink::none()).await.unwrap_err();
    assert!(error.to_string().starts_with("[redacted:internal_host] is a private"), "{error}");
}

#[tokio::test]
async fn a_slow_answer_is_a_timeout() {
    let web = Web::start().await;
    let limits = ToolLimits { http_timeout: Duration::from_millis(300), ..short_limits() };
    let vars = variables(&[("base", &web.base)], &[]);
    let (sink, mut lines) = Lines::new();
    let started = std::time::Instant::now();
    let error = runner(limits)
        .execute_http(&tool(HttpMethod::Get, "{{base}}/slow"), &json!({}), &vars, &sink)
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(error.to_string(), "GET 127.0.0.1 did not finish within 300 ms");
    assert_eq!(web.received().len(), 1);
    let lines = lines.drain();
    assert!(lines.last().unwrap().contains("/slow gave no answer within 300 ms"), "{lines:?}");
}

#[tokio::test]
async fn a_failure_status_is_an_error_quoting_the_masked_body() {
    let web = Web::start().await;
    let vars = variables(&[("base", &web.base)], &[]);
    let (sink, mut lines) = Lines::new();
    let error = runner(short_limits())
        .execute_http(&tool(HttpMethod::Get, "{{base}}/missing"), &json!({}), &vars, &sink)
        .await
        .unwrap_err();
    assert_eq!(error.to_string(), "GET 127.0.0.1 answered 404: no such item for Bearer [redacted:api_key]");
    assert!(matches!(error, ToolError::HttpStatus { status: 404, .. }));
    let lines = lines.drain();
    assert!(lines.last().unwrap().contains("→ 404 Not Found"), "{lines:?}");
    assert_no_secret(&format!("{error:?} {lines:?}"));
}

#[tokio::test]
async fn big_bodies_are_cut_and_text_bodies_are_text() {
    let web = Web::start().await;
    let vars = variables(&[("base", &web.base)], &[]);
    let limits = ToolLimits { max_response_bytes: 1000, ..short_limits() };
    let (sink, mut lines) = Lines::new();
    let output =
        runner(limits).execute_http(&tool(HttpMethod::Get, "{{base}}/big"), &json!({}), &vars, &sink).await.unwrap();
    assert!(output.truncated);
    assert_eq!(output.body, ResponseBody::Text("x".repeat(1000)));
    assert!(lines.drain().last().unwrap().ends_with("1000 bytes (cut at 1000 bytes)"));

    let output = runner(short_limits())
        .execute_http(&tool(HttpMethod::Get, "{{base}}/text"), &json!({}), &vars, &DebugSink::none())
        .await
        .unwrap();
    assert_eq!(output.body, ResponseBody::Text("plain text for Bearer [redacted:api_key]".into()));
}

#[tokio::test]
async fn a_header_value_with_a_line_break_is_refused_without_showing_it() {
    let web = Web::start().await;
    let vars = variables(&[("base", &web.base)], &[]);
    let mut search = tool(HttpMethod::Get, "{{base}}/search");
    search.headers.insert("X-Note".into(), "{{note}}".into());
    let error = runner(short_limits())
        .execute_http(&search, &json!({"note": "a\r\nX-Injected: 1"}), &vars, &DebugSink::none())
        .await
        .unwrap_err();
    assert!(error.to_string().starts_with("header X-Note: the value has characters a header cannot carry"), "{error}");
    assert!(!error.to_string().contains("Injected"));
    assert!(web.received().is_empty());
}

#[tokio::test]
async fn a_callers_value_cannot_move_the_request_to_another_host() {
    let partner = Web::start().await;
    let mut vars = variables(&[("partner", &partner.base)], &[("tail", ".attacker.test")]);
    let runner = runner(short_limits());
    // A placeholder right after the host (a literal one, as stored before such templates were
    // refused at creation, or a base variable holding only an origin): whatever a caller puts
    // there, nothing is sent, and the error names the argument.
    for template in [format!("{}{{{{path}}}}", partner.base), "{{partner}}{{path}}".to_owned()] {
        let tool = tool(HttpMethod::Get, &template);
        for value in [".attacker.test", "@attacker.test", "/search", "\\search", "%2e", "%2E%2E", "#x", "?q=1", ":1", "x"] {
            let (sink, mut lines) = Lines::new();
            let error = runner.execute_http(&tool, &json!({"path": value}), &vars, &sink).await.unwrap_err();
            assert!(
                matches!(&error, ToolError::ChangesDestination { input: CallerInput::Argument, name, .. } if name == "path"),
                "{template} with {value:?}: {error:?}"
            );
            assert_eq!(error.code(), "changes_destination");
            assert!(lines.drain().is_empty(), "nothing was sent");
        }
    }
    let error = runner
        .execute_http(&tool(HttpMethod::Get, "{{partner}}{{tail}}"), &json!({}), &vars, &DebugSink::none())
        .await
        .unwrap_err();
    assert!(matches!(&error, ToolError::ChangesDestination { input: CallerInput::Environment, name, .. } if name == "tail"));
    assert!(partner.received().is_empty(), "the partner received nothing: {:?}", partner.received());

    // After a `/` the same values are a path and a query, and reach the partner as such.
    let legit = tool(HttpMethod::Get, "{{partner}}/{{path}}?q={{q}}");
    vars.environment_variables.clear();
    let output = runner
        .execute_http(&legit, &json!({"path": "search", "q": ".attacker.test@x:1/#?"}), &vars, &DebugSink::none())
        .await
        .unwrap();
    assert_eq!(output.status, 200);
    let received = partner.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].uri, "/search?q=.attacker.test%40x%3A1%2F%23%3F");
    assert_eq!(received[0].authorization.as_deref(), Some(format!("Bearer {SECRET}").as_str()));
}
