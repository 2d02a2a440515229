//! How a session reads in the Computer Use Agent API: its status word, its summary (lists),
//! its status (logs, reasoning, screenshot, pending safety checks) and its details — all
//! translated from the session and its event log.

use std::collections::HashMap;

use agentd_domain::{Event, EventKind, ProjectId, Session, SessionId, SessionStatus};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::state::AppState;

use super::envelope::CuaResult;

/// Lines kept in `logs` (the original app's cap).
const MAX_LOGS: usize = 1000;
/// Entries kept in `reasoning` / `reasoning_data` (the original app's cap).
const MAX_REASONING: usize = 50;
/// Entries kept in `actions` (the original app's cap).
const MAX_ACTIONS: usize = 100;

/// The only environment agentd drives: a real Chromium.
pub(crate) const ENVIRONMENT: &str = "browser";

/// This API's word for a session's status. A session waiting on a person is
/// `awaiting_safety_confirmation` when a safety check is pending, else `awaiting_input`
/// (agentd's person-in-the-loop request, which the original app does not have).
pub(crate) fn status_word(status: SessionStatus, check_pending: bool) -> &'static str {
    match status {
        SessionStatus::Queued => "starting",
        SessionStatus::Running => "running",
        SessionStatus::Paused => "paused",
        SessionStatus::Waiting if check_pending => "awaiting_safety_confirmation",
        SessionStatus::Waiting => "awaiting_input",
        SessionStatus::Completed => "completed",
        SessionStatus::Failed => "failed",
        SessionStatus::Stopped => "stopped",
        SessionStatus::TimedOut => "timeout",
    }
}

/// The word for `session`: [`status_word`], and `cleaned` for a session a user stopped by
/// cleaning it up (`cleanup_session`).
pub(crate) fn word(session: &Session, check_pending: bool) -> &'static str {
    if session.cleaned_at.is_some() && session.status == SessionStatus::Stopped {
        return "cleaned";
    }
    status_word(session.status, check_pending)
}

/// Words finer than the store's statuses: a list filtered by one is filtered again by word.
pub(crate) const FINE_WORDS: [&str; 3] = ["awaiting_safety_confirmation", "awaiting_input", "cleaned"];

/// The statuses a filter word stands for (`None`: not a word of this API).
pub(crate) fn statuses_for(word: &str) -> Option<&'static [SessionStatus]> {
    use SessionStatus::*;
    Some(match word {
        "created" | "starting" | "queued" => &[Queued],
        "running" => &[Running],
        "paused" => &[Paused],
        "awaiting_safety_confirmation" | "awaiting_input" | "waiting" => &[Waiting],
        "completed" => &[Completed],
        "failed" | "error" => &[Failed],
        "stopped" | "stopping" | "cleaned" => &[Stopped],
        "timeout" | "timed_out" => &[TimedOut],
        _ => return None,
    })
}

/// The words [`statuses_for`] knows, for error messages.
pub(crate) const STATUS_WORDS: &str = "starting, running, paused, awaiting_safety_confirmation, awaiting_input, \
completed, failed, stopped, cleaned, timeout";

/// The fields of a list entry ([`summary`]): what lists sort and `filter_by` compares by.
pub(crate) const SUMMARY_FIELDS: [&str; 26] = [
    "id", "task_id", "name", "task", "status", "environment", "created_at", "updated_at", "started_at",
    "completed_at", "duration", "user_id", "tags", "priority", "is_paused", "is_completed", "is_active",
    "logs_count", "screenshots_count", "reasoning_data_count", "has_reasoning_data", "current_url",
    "has_error", "error", "starting_url", "cleaned_at",
];

/// A start URL as clients wrote it: without the `/` a bare origin is given when stored.
pub(crate) fn as_written(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(parsed) if parsed.path() == "/" && parsed.query().is_none() && parsed.fragment().is_none() => {
            url.trim_end_matches('/').to_owned()
        }
        _ => url.to_owned(),
    }
}

/// The name a session shows: its own, or `Session <first 8 characters of its id>`.
pub(crate) fn name_of(session: &Session) -> String {
    session.name.clone().unwrap_or_else(|| format!("Session {}", &session.id.to_string()[..8]))
}

/// RFC 3339 with a `Z`, as the original app's examples show.
pub(crate) fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn opt_time(t: Option<DateTime<Utc>>) -> Value {
    t.map_or(Value::Null, |t| json!(time(t)))
}

/// Seconds from the session's start (or creation) to its end, or to now while it runs.
pub(crate) fn duration_seconds(session: &Session) -> f64 {
    let from = session.started_at.unwrap_or(session.created_at);
    let to = session.ended_at.unwrap_or_else(Utc::now);
    (to - from).num_milliseconds().max(0) as f64 / 1000.0
}

/// Whether a session still holds a browser: not ended, not cleaned up.
pub(crate) fn is_active(session: &Session) -> bool {
    !session.status.is_terminal() && session.cleaned_at.is_none()
}

/// What a list entry needs beyond the session row.
#[derive(Debug, Default, Clone)]
pub(crate) struct Digest {
    pub thoughts: u64,
    pub screenshots: u64,
    pub current_url: Option<String>,
    pub check_pending: bool,
}

/// The digests of `sessions`, in a few queries.
pub(crate) async fn digests(state: &AppState, sessions: &[Session]) -> CuaResult<HashMap<SessionId, Digest>> {
    let store = state.store();
    let ids: Vec<SessionId> = sessions.iter().map(|s| s.id).collect();
    let internal = |e| super::envelope::CuaError::from(crate::error::ApiError::internal(e));
    let thoughts = store.count_events_of(&ids, EventKind::Thought).await.map_err(internal)?;
    let screenshots = store.count_screenshots(&ids).await.map_err(internal)?;
    let mut out = HashMap::with_capacity(sessions.len());
    for session in sessions {
        let located = store
            .last_event_of(session.id, &[EventKind::Thought, EventKind::BrowserStarted])
            .await
            .map_err(internal)?;
        let check_pending = session.status == SessionStatus::Waiting && check_of(state, session).await?.is_some();
        out.insert(
            session.id,
            Digest {
                thoughts: thoughts.get(&session.id).copied().unwrap_or(0),
                screenshots: screenshots.get(&session.id).copied().unwrap_or(0),
                current_url: located.and_then(|e| e.data["url"].as_str().map(str::to_owned)),
                check_pending,
            },
        );
    }
    Ok(out)
}

/// The safety check `session` waits on (or, paused, would wait on), if one is pending.
pub(crate) async fn check_of(state: &AppState, session: &Session) -> CuaResult<Option<Value>> {
    match session.status {
        SessionStatus::Waiting | SessionStatus::Paused => pending_check(state, session.id).await,
        _ => Ok(None),
    }
}

/// The safety check a session's log shows pending, `{id, code, message}`, if one is.
async fn pending_check(state: &AppState, id: SessionId) -> CuaResult<Option<Value>> {
    let last = state
        .store()
        .last_event_of(id, &[EventKind::SafetyCheckPending, EventKind::SafetyCheckResolved])
        .await
        .map_err(|e| super::envelope::CuaError::from(crate::error::ApiError::internal(e)))?;
    Ok(last.filter(|e| e.kind == EventKind::SafetyCheckPending).map(|e| {
        json!({"id": e.data["check_id"], "code": e.data["code"], "message": e.data["message"]})
    }))
}

/// A list entry.
pub(crate) fn summary(session: &Session, task_id: &str, digest: &Digest) -> Value {
    json!({
        "id": session.id.to_string(),
        "task_id": task_id,
        "name": name_of(session),
        "task": session.spec.goal,
        "status": word(session, digest.check_pending),
        "environment": ENVIRONMENT,
        "starting_url": session.spec.start_url.as_deref().map(as_written),
        "cleaned_at": opt_time(session.cleaned_at),
        "created_at": time(session.created_at),
        "updated_at": time(session.updated_at),
        "started_at": opt_time(session.started_at),
        "completed_at": opt_time(session.ended_at),
        "duration": duration_seconds(session),
        "user_id": session.user_id,
        "tags": session.tags,
        "priority": session.priority.as_str(),
        "is_paused": session.status == SessionStatus::Paused,
        "is_completed": session.status.is_terminal(),
        "is_active": is_active(session),
        "logs_count": session.last_seq,
        "screenshots_count": digest.screenshots,
        "reasoning_data_count": digest.thoughts,
        "has_reasoning_data": digest.thoughts > 0,
        "current_url": digest.current_url.clone().or_else(|| session.spec.start_url.as_deref().map(as_written)),
        "has_error": session.error.is_some(),
        "error": session.error,
    })
}

/// Every event of a session, in order.
pub(crate) async fn all_events(state: &AppState, project: ProjectId, id: SessionId) -> CuaResult<Vec<Event>> {
    const PAGE: u32 = 1000;
    let mut events = Vec::new();
    loop {
        let after = events.last().map_or(0, |e: &Event| e.seq);
        let page = state.engine.events(project, id, after, PAGE).await?;
        let done = page.len() < PAGE as usize;
        events.extend(page);
        if done {
            return Ok(events);
        }
    }
}

/// `[HH:MM:SS] line` for each event, the newest [`MAX_LOGS`].
pub(crate) fn logs(events: &[Event]) -> Vec<String> {
    let skip = events.len().saturating_sub(MAX_LOGS);
    events.iter().skip(skip).map(|e| format!("[{}] {}", e.created_at.format("%H:%M:%S"), e.line())).collect()
}

/// The agent's thoughts as `{id, timestamp, content: [{type: "text", text}]}`, newest
/// [`MAX_REASONING`].
pub(crate) fn reasoning(events: &[Event]) -> Vec<Value> {
    let thoughts: Vec<&Event> = events.iter().filter(|e| e.kind == EventKind::Thought).collect();
    let skip = thoughts.len().saturating_sub(MAX_REASONING);
    thoughts
        .iter()
        .enumerate()
        .skip(skip)
        .map(|(i, e)| {
            let text = ["thought", "next_goal"]
                .iter()
                .filter_map(|k| e.data[*k].as_str())
                .find(|t| !t.trim().is_empty())
                .unwrap_or_default();
            json!({
                "id": format!("reason_{}", i + 1),
                "timestamp": time(e.created_at),
                "content": [{"type": "text", "text": text}],
            })
        })
        .collect()
}

/// The browser actions as `{type, url, description, ok, timestamp}`, newest [`MAX_ACTIONS`].
fn actions(events: &[Event]) -> Vec<Value> {
    let mut url = None::<String>;
    let mut out = Vec::new();
    for e in events {
        match e.kind {
            EventKind::BrowserStarted | EventKind::Thought => {
                if let Some(u) = e.data["url"].as_str() {
                    url = Some(u.to_owned());
                }
            }
            EventKind::Action => {
                let target = e.data["action"]["url"].as_str().map(str::to_owned).or_else(|| url.clone());
                out.push(json!({
                    "type": e.data["name"],
                    "url": target,
                    "description": e.data["description"],
                    "ok": e.data["ok"],
                    "timestamp": time(e.created_at),
                }));
            }
            _ => {}
        }
    }
    let skip = out.len().saturating_sub(MAX_ACTIONS);
    out.split_off(skip)
}

/// The codes of the safety checks the session was asked to confirm.
fn safety_codes(events: &[Event]) -> Vec<Value> {
    events.iter().filter(|e| e.kind == EventKind::SafetyCheckPending).map(|e| e.data["code"].clone()).collect()
}

/// The page the session was last seen on.
fn current_url(session: &Session, events: &[Event]) -> Option<String> {
    events
        .iter()
        .rev()
        .filter(|e| matches!(e.kind, EventKind::Thought | EventKind::BrowserStarted))
        .find_map(|e| e.data["url"].as_str().map(str::to_owned))
        .or_else(|| session.spec.start_url.as_deref().map(as_written))
}

/// The full record of `GET /api/sessions/{id}/details`.
pub(crate) fn record(session: &Session, task_id: &str, events: &[Event], check: Option<&Value>) -> Value {
    let reasoning = reasoning(events);
    json!({
        "id": session.id.to_string(),
        "task_id": task_id,
        "name": name_of(session),
        "task": session.spec.goal,
        "status": word(session, check.is_some() && session.status == SessionStatus::Waiting),
        "created_at": time(session.created_at),
        "updated_at": time(session.updated_at),
        "started_at": opt_time(session.started_at),
        "completed_at": opt_time(session.ended_at),
        "completion_time": opt_time(session.ended_at),
        "cleaned_at": opt_time(session.cleaned_at),
        "duration": duration_seconds(session),
        "user_id": session.user_id,
        "tags": session.tags,
        "priority": session.priority.as_str(),
        "environment": ENVIRONMENT,
        "browser_config": {
            "environment": ENVIRONMENT,
            "display_width": session.spec.display_width,
            "display_height": session.spec.display_height,
            "headless": session.spec.headless,
            "starting_url": session.spec.start_url.as_deref().map(as_written),
        },
        "logs": logs(events),
        "actions": actions(events),
        "reasoning_data": reasoning,
        "safety_checks": safety_codes(events),
        "pending_safety_checks": check.map(|c| json!([c])),
        "current_url": current_url(session, events),
        "is_paused": session.status == SessionStatus::Paused,
        "is_completed": session.status.is_terminal(),
        "error": session.error,
        "response": session.response,
        "response_type": session.response_type.map(|t| t.as_str()),
        "usage": {
            "input_tokens": session.usage.input_tokens,
            "output_tokens": session.usage.output_tokens,
            "cost_usd": session.usage.cost_usd,
        },
    })
}
