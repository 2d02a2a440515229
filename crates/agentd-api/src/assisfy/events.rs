//! How a session's event log reads in the Assisfy API: [`socket_event`], the one mapping
//! from an agentd event to an Assisfy event (name and payload, seed 000 / SPECS §1.5.2) that
//! the WebSocket, the SSE stream and the auto-trigger webhooks ([`TriggerWebhooks`]) share;
//! and the client's answer to `external_resource_requested` ([`Grant`], [`answer`]).
//!
//! | agentd event | Assisfy event | payload |
//! |---|---|---|
//! | `started` | `started` | `sessionId`, `start_url` |
//! | `browser_started` | `browser_started` | `url`, `action_session_id` |
//! | `action` | `action_run` | `name`, `action_session_id`, `content` (the description) |
//! | `thought` | `thoughts_and_memories` | `thought` (or the next goal), `memory` |
//! | `input_requested` | `external_resource_requested` | `resource_type` `request_user_input` (+ `field_name`) or `admin_permission_request`, `reason`, `action_session_id` |
//! | `safety_check_pending` | `external_resource_requested` | `resource_type` `admin_permission_request`, `reason` (the check's message), `action_session_id` |
//! | `input_received`, `safety_check_resolved` | `external_resource_granted` | `granted` (an input's text is never in the log: see [`answer`]) |
//! | `completed` | `complete` | `response` (a string; JSON answers serialised), `type`, `total_cost`, `session_id`, `cost_summary` |
//! | `failed`, `stopped`, `timed_out` | `error` | `error` |
//! | anything else (`paused`, `resumed`, `log`, ...) | — | |
//!
//! `action_session_id` is the session id: agentd gives each session exactly one browser
//! context, so the session is the action session, and the id is stable across events.
//! agentd records an action once it has run, so `action_run` arrives just after the action
//! rather than just before it.

use agentd_domain::{Event, EventKind, Session};
use agentd_engine::SessionAnswer;
use agentd_engine::webhooks::WebhookFormat;
use serde_json::{Map, Value, json};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

use super::error::{AssisfyError, AssisfyResult};

/// The event a client sends to answer a request, and the one the server echoes.
pub(crate) const GRANTED: &str = "external_resource_granted";
/// `resource_type` of a request for a value.
pub(crate) const USER_INPUT: &str = "request_user_input";
/// `resource_type` of a request for a yes or no (a permission, a safety check).
pub(crate) const PERMISSION: &str = "admin_permission_request";

/// The Assisfy event an agentd event reads as, with its payload (None: not shown).
pub(crate) fn socket_event(session: &Session, event: &Event) -> Option<(&'static str, Value)> {
    let data = &event.data;
    let text = |key: &str| data[key].as_str().unwrap_or_default().to_owned();
    let action_session_id = session.id.to_string();
    Some(match event.kind {
        EventKind::Started => (
            "started",
            json!({"sessionId": session.id.to_string(), "start_url": session.spec.start_url.as_deref().unwrap_or("about:blank")}),
        ),
        EventKind::BrowserStarted => ("browser_started", json!({"url": text("url"), "action_session_id": action_session_id})),
        EventKind::Action => (
            "action_run",
            json!({"name": text("name"), "action_session_id": action_session_id, "content": text("description")}),
        ),
        EventKind::Thought => {
            let thought = Some(text("thought")).filter(|t| !t.trim().is_empty()).unwrap_or_else(|| text("next_goal"));
            ("thoughts_and_memories", json!({"thought": thought, "memory": text("memory")}))
        }
        EventKind::InputRequested if data["kind"] == "permission" => (
            "external_resource_requested",
            json!({"resource_type": PERMISSION, "reason": text("reason"), "action_session_id": action_session_id}),
        ),
        EventKind::InputRequested => (
            "external_resource_requested",
            json!({
                "resource_type": USER_INPUT,
                "reason": text("reason"),
                "action_session_id": action_session_id,
                "field_name": text("field_name"),
            }),
        ),
        EventKind::SafetyCheckPending => (
            "external_resource_requested",
            json!({"resource_type": PERMISSION, "reason": text("message"), "action_session_id": action_session_id}),
        ),
        // An input answer is a grant; its text is deliberately not in the log.
        EventKind::InputReceived => (GRANTED, json!({"granted": data["kind"] != "permission" || data["granted"] == true})),
        EventKind::SafetyCheckResolved => (GRANTED, json!({"granted": data["confirmed"] == true})),
        EventKind::Completed => {
            let response = match &data["response"] {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            let usage = &data["usage"];
            let cost = usage["cost_usd"].as_f64().unwrap_or(0.0);
            (
                "complete",
                json!({
                    "response": response,
                    "type": data["response_type"].as_str().unwrap_or("STRING"),
                    "total_cost": cost,
                    "session_id": session.id.to_string(),
                    "cost_summary": {
                        "total_cost": cost,
                        "currency": "USD",
                        "input_tokens": usage["input_tokens"].as_u64().unwrap_or(0),
                        "output_tokens": usage["output_tokens"].as_u64().unwrap_or(0),
                    },
                }),
            )
        }
        EventKind::Failed => ("error", json!({"error": Some(text("error")).filter(|e| !e.is_empty()).unwrap_or_else(|| event.line())})),
        EventKind::Stopped | EventKind::TimedOut => ("error", json!({"error": event.line()})),
        EventKind::Observation | EventKind::Message | EventKind::Log | EventKind::Paused | EventKind::Resumed => return None,
    })
}

/// The name of the webhook that mirrors a socket event (SPECS §1.6), for the seven that have
/// one.
pub(crate) fn trigger_name(socket_event: &str) -> Option<&'static str> {
    Some(match socket_event {
        "started" => "trigger.session.started",
        "action_run" => "trigger.action.run",
        "external_resource_requested" => "trigger.external.resource.requested",
        "thoughts_and_memories" => "trigger.thoughts.and.memories",
        "browser_started" => "trigger.browser.started",
        "complete" => "trigger.complete",
        "error" => "trigger.error",
        _ => return None,
    })
}

/// The name the auto-trigger webhooks are registered under.
pub(crate) const WEBHOOK_FORMAT: &str = "assisfy";

/// The auto-trigger webhooks: `{"event": "trigger.<name>", "data": {...the socket event's
/// payload..., "sessionId", "tracking_id"}}`, where `tracking_id` is the subscription
/// context's `tracking_id` (null when it has none).
pub(crate) struct TriggerWebhooks;

impl WebhookFormat for TriggerWebhooks {
    fn render(&self, session: &Session, event: &Event, context: &Value) -> Option<(String, Value)> {
        let (name, mut payload) = socket_event(session, event)?;
        let trigger = trigger_name(name)?;
        payload["sessionId"] = json!(session.id.to_string());
        payload["tracking_id"] = context["tracking_id"].clone();
        Some((trigger.to_owned(), json!({"event": trigger, "data": payload})))
    }

    /// Besides the Standard Webhooks headers, the HMAC of the scheme SPECS §1.6 proposes (the
    /// vendor documents none): `X-Assisfy-Signature-256` is `sha256=` + the hex HMAC-SHA256
    /// of the body keyed with `auto_trigger_web_hook_signature`. The proposal's other header,
    /// the key itself as a token, is not sent: a key must not travel with every message.
    fn headers(&self, event_type: &str, body: &str, secret: &str, timestamp: i64) -> Vec<(String, String)> {
        vec![
            ("x-assisfy-event".into(), event_type.to_owned()),
            ("x-assisfy-timestamp".into(), timestamp.to_string()),
            ("x-assisfy-signature-256".into(), format!("sha256={}", agentd_engine::webhooks::sign::hex_hmac(secret, body))),
        ]
    }
}

/// A client's answer: `{"type" | "event": "external_resource_granted", "data": {granted,
/// input?, resource_type?}}` (the SDK sends `type` over the WebSocket, `event` to the
/// egress route; either is accepted on both).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Grant {
    /// A permission's decision; absent reads as denied (the SDK's default), except for an
    /// input answer, which is a grant.
    pub granted: Option<bool>,
    /// The value asked for by `request_user_input`.
    pub input: Option<String>,
    /// What the client believes it answers; checked against the open request when given.
    pub resource_type: Option<String>,
}

impl Grant {
    /// Reads an answer message, or says what is wrong with it (400).
    pub fn parse(message: &Value) -> AssisfyResult<Grant> {
        let Some(message) = message.as_object() else {
            return Err(AssisfyError::bad_request("the message must be a JSON object {\"event\": \"external_resource_granted\", \"data\": {...}}"));
        };
        let name = ["type", "event"].iter().find_map(|k| message.get(*k).and_then(Value::as_str));
        match name {
            Some(GRANTED) => {}
            Some(other) => {
                return Err(AssisfyError::bad_request(format!("event `{other}` is not accepted: send `{GRANTED}`")));
            }
            None => return Err(AssisfyError::bad_request(format!("event is required: send {{\"event\": \"{GRANTED}\", \"data\": {{...}}}}"))),
        }
        let data = match message.get("data") {
            Some(Value::Object(data)) => data,
            None | Some(Value::Null) => &Map::new(),
            Some(_) => return Err(AssisfyError::bad_request("data must be an object {granted, input, resource_type}")),
        };
        let field = |name: &str| data.get(name).filter(|v| !v.is_null());
        let granted = match field("granted") {
            None => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => return Err(AssisfyError::bad_request("data.granted must be true or false")),
        };
        let input = match field("input") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(_) => return Err(AssisfyError::bad_request("data.input must be a string")),
        };
        let resource_type = match field("resource_type") {
            None => None,
            Some(Value::String(s)) if s == USER_INPUT || s == PERMISSION => Some(s.clone()),
            Some(_) => {
                return Err(AssisfyError::bad_request(format!("data.resource_type must be {USER_INPUT} or {PERMISSION}")));
            }
        };
        Ok(Grant { granted, input, resource_type })
    }
}

/// An answer the engine took: the seq of the event it recorded, and the
/// `external_resource_granted` payload to echo, with the input when there was one.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Answered {
    pub seq: u64,
    pub echo: Value,
}

/// Answers `session`'s open request (already found in the caller's project) with `grant`:
/// an input or permission request through `Engine::answer_input`, a safety check through
/// `Engine::resolve_safety_check`. 409 when nothing is pending or the answer is for another
/// kind of request.
pub(crate) async fn answer(state: &AppState, caller: Caller, session: &Session, grant: Grant) -> AssisfyResult<Answered> {
    let kinds = [EventKind::InputRequested, EventKind::InputReceived, EventKind::SafetyCheckPending, EventKind::SafetyCheckResolved];
    let open = state
        .store()
        .last_event_of(session.id, &kinds)
        .await
        .map_err(|e| AssisfyError::from(ApiError::internal(e)))?
        .filter(|e| matches!(e.kind, EventKind::InputRequested | EventKind::SafetyCheckPending))
        .filter(|_| !session.status.is_terminal());
    let Some(open) = open else {
        return Err(AssisfyError::conflict("no external resource request is pending"));
    };
    let asks_input = open.kind == EventKind::InputRequested && open.data["kind"] != "permission";
    let expected = if asks_input { USER_INPUT } else { PERMISSION };
    if let Some(sent) = grant.resource_type.as_deref().filter(|sent| *sent != expected) {
        return Err(AssisfyError::conflict(format!("the pending request is {expected}, not {sent}")));
    }
    let engine = &state.engine;
    let (project, id) = (caller.project_id, session.id);
    let request_id = open.data["request_id"].as_str().map(str::to_owned);
    if open.kind == EventKind::SafetyCheckPending {
        let granted = grant.granted.unwrap_or(false);
        let check = open.data["check_id"].as_str().unwrap_or_default();
        let event = engine.resolve_safety_check(project, id, check, granted).await?;
        return Ok(Answered { seq: event.seq, echo: json!({"granted": granted}) });
    }
    if !asks_input {
        let granted = grant.granted.unwrap_or(false);
        let answer = SessionAnswer { request_id, text: None, granted: Some(granted) };
        let event = engine.answer_input(project, id, answer).await?;
        return Ok(Answered { seq: event.seq, echo: json!({"granted": granted}) });
    }
    let field_name = open.data["field_name"].as_str().unwrap_or_default();
    if grant.granted == Some(false) {
        return Err(AssisfyError::bad_request(format!(
            "the pending request asks for input `{field_name}`: answer with granted true and data.input"
        )));
    }
    let Some(input) = grant.input else {
        return Err(AssisfyError::bad_request(format!("data.input is required to answer the request for input `{field_name}`")));
    };
    let answer = SessionAnswer { request_id, text: Some(input.clone()), granted: None };
    let event = engine.answer_input(project, id, answer).await?;
    Ok(Answered { seq: event.seq, echo: json!({"granted": true, "input": input}) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentd_domain::{Mode, ProjectId, SessionSpec, SessionStatus};

    fn session() -> Session {
        let now = agentd_domain::now();
        let spec = SessionSpec {
            mode: Mode::Browser,
            goal: "find it".into(),
            start_url: Some("https://example.com/".into()),
            max_actions: 10,
            max_cycles: 5,
            timeout_seconds: 60,
            inactivity_timeout_seconds: 60,
            display_width: 1024,
            display_height: 768,
            headless: true,
            webhook_url: None,
            allowed_domains: Vec::new(),
            model: None,
            output_schema: None,
            secret_names: Vec::new(),
            driver: Default::default(),
            continues: None,
            conversation: Vec::new(),
            conversation_id: None,
            agent: None,
            instructions: None,
            tools: None,
        };
        Session { status: SessionStatus::Running, ..Session::queued(ProjectId::new(), spec, now) }
    }

    fn event(session: &Session, seq: u64, kind: EventKind, data: Value) -> Event {
        Event { session_id: session.id, seq, kind, data, created_at: agentd_domain::now() }
    }

    /// An agentd event, the socket event it reads as, and the trigger webhook it sends.
    type Row = (Event, Option<(&'static str, Value)>, Option<&'static str>);

    fn table(s: &Session) -> Vec<Row> {
        let id = s.id.to_string();
        vec![
            (
                event(s, 1, EventKind::Started, json!({"mode": "browser", "goal": "find it"})),
                Some(("started", json!({"sessionId": id, "start_url": "https://example.com/"}))),
                Some("trigger.session.started"),
            ),
            (
                event(s, 2, EventKind::BrowserStarted, json!({"url": "https://example.com/"})),
                Some(("browser_started", json!({"url": "https://example.com/", "action_session_id": id}))),
                Some("trigger.browser.started"),
            ),
            (
                event(s, 3, EventKind::Thought, json!({"step": 1, "thought": "look", "memory": "nothing yet", "next_goal": "click"})),
                Some(("thoughts_and_memories", json!({"thought": "look", "memory": "nothing yet"}))),
                Some("trigger.thoughts.and.memories"),
            ),
            (
                event(s, 4, EventKind::Action, json!({"step": 1, "name": "click", "description": "clicked Save", "ok": true})),
                Some(("action_run", json!({"name": "click", "action_session_id": id, "content": "clicked Save"}))),
                Some("trigger.action.run"),
            ),
            (
                event(s, 5, EventKind::InputRequested, json!({"kind": "input", "field_name": "email", "reason": "the form", "request_id": "req_1"})),
                Some((
                    "external_resource_requested",
                    json!({"resource_type": "request_user_input", "reason": "the form", "action_session_id": id, "field_name": "email"}),
                )),
                Some("trigger.external.resource.requested"),
            ),
            (
                event(s, 6, EventKind::InputReceived, json!({"kind": "input", "request_id": "req_1"})),
                Some(("external_resource_granted", json!({"granted": true}))),
                None,
            ),
            (
                event(s, 7, EventKind::InputRequested, json!({"kind": "permission", "reason": "may I?", "request_id": "req_2"})),
                Some((
                    "external_resource_requested",
                    json!({"resource_type": "admin_permission_request", "reason": "may I?", "action_session_id": id}),
                )),
                Some("trigger.external.resource.requested"),
            ),
            (
                event(s, 8, EventKind::InputReceived, json!({"kind": "permission", "request_id": "req_2", "granted": false})),
                Some(("external_resource_granted", json!({"granted": false}))),
                None,
            ),
            (
                event(s, 9, EventKind::SafetyCheckPending, json!({"check_id": "sc_1", "code": "sensitive_form", "message": "a password"})),
                Some((
                    "external_resource_requested",
                    json!({"resource_type": "admin_permission_request", "reason": "a password", "action_session_id": id}),
                )),
                Some("trigger.external.resource.requested"),
            ),
            (
                event(s, 10, EventKind::SafetyCheckResolved, json!({"check_id": "sc_1", "confirmed": true})),
                Some(("external_resource_granted", json!({"granted": true}))),
                None,
            ),
            (event(s, 11, EventKind::Paused, json!({})), None, None),
            (event(s, 12, EventKind::Log, json!({"message": "a dialog"})), None, None),
            (
                event(s, 13, EventKind::Completed, json!({"response": {"price": 3}, "response_type": "JSON",
                    "usage": {"input_tokens": 10, "output_tokens": 2, "cost_usd": 0.25}})),
                Some((
                    "complete",
                    json!({"response": "{\"price\":3}", "type": "JSON", "total_cost": 0.25, "session_id": id,
                        "cost_summary": {"total_cost": 0.25, "currency": "USD", "input_tokens": 10, "output_tokens": 2}}),
                )),
                Some("trigger.complete"),
            ),
            (
                event(s, 14, EventKind::Failed, json!({"error": "the page broke", "reason": "browser"})),
                Some(("error", json!({"error": "the page broke"}))),
                Some("trigger.error"),
            ),
            (
                event(s, 15, EventKind::Stopped, json!({"reason": "a person denied the safety check"})),
                Some(("error", json!({"error": "Session stopped: a person denied the safety check"}))),
                Some("trigger.error"),
            ),
            (
                event(s, 16, EventKind::TimedOut, json!({"reason": "inactivity", "seconds": 300})),
                Some(("error", json!({"error": "Session timed out after 300 s of inactivity; its browser was closed"}))),
                Some("trigger.error"),
            ),
        ]
    }

    #[test]
    fn every_event_reads_as_its_documented_socket_event() {
        let s = session();
        for (event, expected, _) in table(&s) {
            assert_eq!(socket_event(&s, &event), expected, "{:?}", event.kind);
        }
    }

    #[test]
    fn the_webhook_format_sends_the_seven_trigger_events_with_session_and_tracking_ids() {
        let s = session();
        let context = json!({"tracking_id": "trk_42"});
        let mut sent = Vec::new();
        for (event, expected, trigger) in table(&s) {
            let rendered = TriggerWebhooks.render(&s, &event, &context);
            let Some(trigger) = trigger else {
                assert_eq!(rendered, None, "{:?} is not a trigger event", event.kind);
                continue;
            };
            let (kind, body) = rendered.expect("a trigger event");
            assert_eq!(kind, trigger);
            assert_eq!(body["event"], trigger);
            let mut data = expected.unwrap().1;
            data["sessionId"] = json!(s.id.to_string());
            data["tracking_id"] = json!("trk_42");
            assert_eq!(body["data"], data, "{trigger}");
            sent.push(trigger);
        }
        sent.sort_unstable();
        sent.dedup();
        assert_eq!(sent.len(), 7, "{sent:?}");
        // No tracking id in the context: null, still present.
        let (_, body) = TriggerWebhooks.render(&s, &table(&s)[0].0, &json!({})).unwrap();
        assert!(body["data"].as_object().unwrap().contains_key("tracking_id"));
        assert_eq!(body["data"]["tracking_id"], Value::Null);
    }

    #[test]
    fn answers_are_read_under_either_key_and_bad_ones_are_named() {
        let sdk_input = json!({"type": "external_resource_granted", "data": {"input": "a@b.c", "resource_type": "request_user_input", "granted": true}});
        assert_eq!(
            Grant::parse(&sdk_input).unwrap(),
            Grant { granted: Some(true), input: Some("a@b.c".into()), resource_type: Some(USER_INPUT.into()) }
        );
        let sdk_permission = json!({"event": "external_resource_granted", "data": {"granted": false, "resource_type": "admin_permission_request"}});
        assert_eq!(Grant::parse(&sdk_permission).unwrap().granted, Some(false));
        for (bad, says) in [
            (json!([1]), "JSON object"),
            (json!({"data": {}}), "event is required"),
            (json!({"event": "complete", "data": {}}), "`complete`"),
            (json!({"event": GRANTED, "data": 3}), "data must be"),
            (json!({"event": GRANTED, "data": {"granted": "yes"}}), "data.granted"),
            (json!({"event": GRANTED, "data": {"input": {}}}), "data.input"),
            (json!({"event": GRANTED, "data": {"resource_type": "file_upload"}}), "data.resource_type"),
        ] {
            let error = Grant::parse(&bad).unwrap_err();
            assert_eq!(error.status, 400);
            assert!(error.error.contains(says), "{bad} → {}", error.error);
        }
    }
}
