//! Auto-trigger (seed 002, SPECS §1.3 and §1.6): a create request carrying `auto_trigger`
//! (or the SDK's `withAutoTrigger`) asks for the session to be re-created every `interval`
//! minutes until `end_at`, its progress sent as `trigger.*` webhooks to `web_hook_url` (the
//! `assisfy` webhook format, [`super::events::TriggerWebhooks`]).
//!
//! A valid trigger becomes an engine schedule (`/v1/schedules`): every `interval` minutes
//! from now (`start_now`) or from `start_at` (else one interval from now) until `end_at`, at
//! most `max_session_per_day` a day; its sessions report to `web_hook_url` in the `assisfy`
//! format, signed like every agentd webhook (Standard Webhooks, keyed with the endpoint
//! secret the response shows as `auto_trigger_web_hook_signature`). The schedule's id is the
//! `auto_trigger_tracking_id` (and the webhooks' `tracking_id`).

use agentd_engine::{NewSchedule, NewSession, ScheduleStart, TimetableChoice};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Map, Value, json};

use crate::auth::Caller;
use crate::state::AppState;

use super::error::{AssisfyError, AssisfyResult};

/// The SDK's message for a trigger that is not an object.
const NOT_AN_OBJECT: &str = "Auto trigger must be an object";
/// The SDK's message for a trigger missing one of its required fields (or giving it falsy).
const INCOMPLETE: &str = "Auto trigger must have a interval, end_at and web_hook_url";

/// A valid trigger object.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AutoTrigger {
    /// Minutes between runs (at least 1).
    pub interval_minutes: u64,
    /// The first run, when it is not now.
    pub start_at: Option<DateTime<Utc>>,
    /// No run after this.
    pub end_at: DateTime<Utc>,
    /// Run once at once (the SDK then connects to that first session).
    pub start_now: bool,
    /// Where the `trigger.*` webhooks go (http or https; the egress policy is applied when
    /// the endpoint is made).
    pub web_hook_url: String,
}

/// The trigger a create body asks for: `auto_trigger` first, else `withAutoTrigger`, with the
/// key it came under; None when neither is there or both are null (a normal session).
pub(crate) fn requested(body: &Map<String, Value>) -> Option<(&'static str, &Value)> {
    ["auto_trigger", "withAutoTrigger"]
        .into_iter()
        .find_map(|key| body.get(key).filter(|v| !v.is_null()).map(|v| (key, v)))
}

/// Checks a trigger object (given under `key`), or says what is wrong (400).
pub(crate) fn parse(key: &str, value: &Value) -> AssisfyResult<AutoTrigger> {
    let Some(trigger) = value.as_object() else {
        return Err(AssisfyError::bad_request(NOT_AN_OBJECT));
    };
    let truthy = |name: &str| trigger.get(name).filter(|v| !matches!(v, Value::Null | Value::Bool(false)) && **v != 0 && **v != "");
    let (Some(interval), Some(end_at), Some(url)) = (truthy("interval"), truthy("end_at"), truthy("web_hook_url")) else {
        return Err(AssisfyError::bad_request(INCOMPLETE));
    };
    let interval_minutes = match interval {
        Value::Number(n) => n.as_u64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && *f >= 1.0).map(|f| f as u64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|m| (1..=MAX_INTERVAL_MINUTES).contains(m))
    .ok_or_else(|| {
        AssisfyError::bad_request(format!("{key}.interval must be a whole number of minutes from 1 to {MAX_INTERVAL_MINUTES}"))
    })?;
    let end_at = time(key, "end_at", end_at)?;
    let start_at = match trigger.get("start_at") {
        None | Some(Value::Null) => None,
        Some(raw) => Some(time(key, "start_at", raw)?),
    };
    if start_at.is_some_and(|start| start >= end_at) {
        return Err(AssisfyError::bad_request(format!("{key}.end_at must be after {key}.start_at")));
    }
    let start_now = match trigger.get("start_now") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(AssisfyError::bad_request(format!("{key}.start_now must be true or false"))),
    };
    let Some(url) = url.as_str() else {
        return Err(AssisfyError::bad_request(format!("{key}.web_hook_url must be a string")));
    };
    let web_hook_url = agentd_domain::parse_http_url(&format!("{key}.web_hook_url"), url).map_err(crate::error::ApiError::from)?;
    Ok(AutoTrigger { interval_minutes, start_at, end_at, start_now, web_hook_url })
}

/// The longest interval accepted: a year.
const MAX_INTERVAL_MINUTES: u64 = 366 * 24 * 60;

/// An ISO 8601 time (RFC 3339, or a date read as its midnight UTC) in `key.name`.
fn time(key: &str, name: &str, value: &Value) -> AssisfyResult<DateTime<Utc>> {
    let bad = || AssisfyError::bad_request(format!("{key}.{name} must be an ISO 8601 time such as 2025-01-20T00:00:00Z"));
    let raw = value.as_str().map(str::trim).ok_or_else(bad)?;
    if let Ok(date) = NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        return date.and_hms_opt(0, 0, 0).map(|t| t.and_utc()).ok_or_else(bad);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Ok(t.with_timezone(&Utc));
    }
    // Without an offset (Python's isoformat() of a naive time): read as UTC.
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"]
        .iter()
        .find_map(|format| chrono::NaiveDateTime::parse_from_str(raw, format).ok())
        .map(|t| t.and_utc())
        .ok_or_else(bad)
}

/// The most sessions a day a trigger may ask for.
const MAX_PER_DAY: u64 = 10_000;

/// Answers a create request that asks for an auto-trigger: `body` is the whole request body,
/// `session` its session fields, already checked by the caller (who found a trigger with
/// [`requested`]). Creates the schedule; with `start_now` its first session is made before
/// this answers, and its id is in `data.sessionId`.
pub(crate) async fn create(state: &AppState, caller: Caller, body: &Map<String, Value>, mut session: NewSession) -> AssisfyResult {
    let Some((key, value)) = requested(body) else {
        return Err(AssisfyError::bad_request(NOT_AN_OBJECT));
    };
    let trigger = parse(key, value)?;
    let per_day = value.get("max_session_per_day").or_else(|| body.get("max_session_per_day")).filter(|v| !v.is_null());
    let max_sessions_per_day = match per_day {
        None => None,
        Some(v) => match v.as_u64().filter(|n| (1..=MAX_PER_DAY).contains(n)) {
            Some(n) => Some(n as u32),
            None => return Err(AssisfyError::bad_request(format!("max_session_per_day must be a whole number from 1 to {MAX_PER_DAY}"))),
        },
    };
    session.spec.webhook_url = Some(trigger.web_hook_url.clone());
    session.webhook_format = (super::events::WEBHOOK_FORMAT.into(), json!({}));
    let goal = session.spec.goal.clone();
    let config = json!({
        "start_url": session.spec.start_url,
        "max_actions": session.spec.max_actions,
        "interval": trigger.interval_minutes,
        "start_at": trigger.start_at.map(|t| t.to_rfc3339()),
        "start_now": trigger.start_now,
        "end_at": trigger.end_at.to_rfc3339(),
    });
    let start = match (trigger.start_now, trigger.start_at) {
        (true, _) => ScheduleStart::Now,
        (false, Some(at)) => ScheduleStart::At(at),
        (false, None) => ScheduleStart::Next,
    };
    let new = NewSchedule {
        session,
        timetable: TimetableChoice::Every(trigger.interval_minutes as i64),
        start,
        end_at: Some(trigger.end_at),
        max_sessions_per_day,
    };
    let (schedule, target) = state.engine.create_schedule(caller.project_id, new).await.map_err(|e| {
        // The trigger's URL went to the engine as the sessions' webhook_url: name it as sent.
        let mut e = crate::error::ApiError::from(e);
        if e.field.as_deref() == Some("webhook_url") {
            e.field = Some(format!("{key}.web_hook_url"));
            e.message = e.message.replace("webhook_url", &format!("{key}.web_hook_url"));
        }
        AssisfyError::from(e)
    })?;
    let signature = match &target {
        Some(target) => Some(state.engine.webhook_secret(caller.project_id, &target.endpoint_id).await?),
        None => None,
    };
    let today = state.engine.schedule_sessions_today(&schedule).await?;
    let mut data = json!({
        "goal": goal,
        "email": Value::Null,
        "config": config,
        "max_session_per_day": max_sessions_per_day,
        "today_sessions": today,
        "sessions_left": max_sessions_per_day.map(|max| u64::from(max).saturating_sub(today)),
        "auto_trigger_tracking_id": schedule.id.to_string(),
        "auto_trigger_web_hook_url": trigger.web_hook_url,
        "auto_trigger_web_hook_signature": signature,
        "status": schedule.status.as_str(),
        "next_run_at": schedule.next_fire_at.map(|t| t.to_rfc3339()),
    });
    if trigger.start_now
        && let Some((_, session_id)) = schedule.last_fire
    {
        data["sessionId"] = json!(session_id.to_string());
        data["session_id"] = json!(session_id.to_string());
    }
    let mut answer = data.clone();
    answer["data"] = data;
    Ok((StatusCode::CREATED, axum::Json(answer)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_sdk_shape_is_accepted_and_each_flaw_is_named() {
        let good = json!({"interval": 30, "end_at": "2025-01-20T00:00:00Z", "start_now": true, "web_hook_url": "https://example.com/webhook"});
        let trigger = parse("withAutoTrigger", &good).unwrap();
        assert_eq!((trigger.interval_minutes, trigger.start_now), (30, true));
        assert_eq!(trigger.web_hook_url, "https://example.com/webhook");
        assert_eq!(trigger.start_at, None);

        let with = |patch: Value| {
            let mut value = good.clone();
            for (k, v) in patch.as_object().unwrap() {
                value[k] = v.clone();
            }
            value
        };
        for (value, says) in [
            (json!("daily"), NOT_AN_OBJECT.to_owned()),
            (json!([1]), NOT_AN_OBJECT.to_owned()),
            (json!({"end_at": "2025-01-20T00:00:00Z", "web_hook_url": "https://x.org"}), INCOMPLETE.to_owned()),
            (with(json!({"interval": 0})), INCOMPLETE.to_owned()),
            (with(json!({"end_at": ""})), INCOMPLETE.to_owned()),
            (with(json!({"web_hook_url": null})), INCOMPLETE.to_owned()),
            (with(json!({"interval": 1.5})), "auto_trigger.interval".to_owned()),
            (with(json!({"interval": -5})), "auto_trigger.interval".to_owned()),
            (with(json!({"end_at": "tomorrow"})), "auto_trigger.end_at must be an ISO 8601".to_owned()),
            (with(json!({"start_at": "2025-02-01T00:00:00Z"})), "auto_trigger.end_at must be after".to_owned()),
            (with(json!({"start_now": "yes"})), "auto_trigger.start_now".to_owned()),
            (with(json!({"web_hook_url": "ftp://x.org/hook"})), "auto_trigger.web_hook_url".to_owned()),
        ] {
            let error = parse("auto_trigger", &value).unwrap_err();
            assert_eq!(error.status, 400, "{value}");
            assert!(error.error.contains(&says), "{value} → {}", error.error);
        }
        let dated = parse("auto_trigger", &with(json!({"start_at": "2025-01-01", "interval": "1440"}))).unwrap();
        assert_eq!(dated.interval_minutes, 1440);
        assert_eq!(dated.start_at.unwrap().to_rfc3339(), "2025-01-01T00:00:00+00:00");
    }

    #[test]
    fn auto_trigger_is_read_first_and_null_means_none() {
        let body = |v: Value| v.as_object().unwrap().clone();
        assert_eq!(requested(&body(json!({"goal": "x", "auto_trigger": null}))), None);
        assert_eq!(requested(&body(json!({"goal": "x"}))), None);
        let both = body(json!({"auto_trigger": {"interval": 1}, "withAutoTrigger": {"interval": 2}}));
        assert_eq!(requested(&both).unwrap().0, "auto_trigger");
        let fallback = body(json!({"auto_trigger": null, "withAutoTrigger": {"interval": 2}}));
        assert_eq!(requested(&fallback).unwrap().0, "withAutoTrigger");
    }
}
