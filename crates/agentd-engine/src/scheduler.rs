//! Schedules: a session template fired on a [`Timetable`]. The scheduler task wakes at the
//! earliest next slot (or when a schedule is made or resumed) and moves each due schedule
//! with one compare-and-set on its next slot that also records the slots passed and inserts
//! the session fired ([`agentd_store::ScheduleAdvance`]): a slot fires exactly once, even
//! across restarts. Slots that passed while the server was down are skipped and counted
//! (only a slot less than [`GRACE`] old still fires), not replayed in a burst; a slot past
//! the day's quota is skipped with its reason.

use std::time::Duration;

use agentd_domain::{
    FieldError, Priority, ProjectId, RunOutcome, Schedule, ScheduleId, ScheduleRun, ScheduleStatus, Session, SessionSpec,
    Timetable,
};
use agentd_store::{ScheduleAdvance, WebhookSubscription};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::clock::sleep_until_wall;
use crate::engine::{Engine, EngineError, NewSession, WebhookTarget, queued_session};

/// A slot this recent still fires when the scheduler gets to it late (a restart, a busy
/// node); older ones count as missed.
pub const GRACE: Duration = Duration::from_secs(60);
/// Slots looked at per schedule and pass (a long outage counts at most this many missed).
const MAX_SLOTS_PER_PASS: usize = 100_000;

/// What each fire creates, as stored with the schedule.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SessionTemplate {
    spec: SessionSpec,
    name: Option<String>,
    tags: Vec<String>,
    priority: Priority,
    user_id: Option<String>,
    metadata: Map<String, Value>,
}

/// When a schedule starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleStart {
    /// Its first slot is now.
    Now,
    /// Its first slot is the first at or after this time.
    At(DateTime<Utc>),
    /// Its first slot is the first after now.
    Next,
}

/// A schedule to create: the parsed request.
#[derive(Debug, Clone)]
pub struct NewSchedule {
    /// What each fire creates (no secrets: values are never stored).
    pub session: NewSession,
    /// Every N minutes (anchored at the start) or a cron expression.
    pub timetable: TimetableChoice,
    /// When it starts.
    pub start: ScheduleStart,
    /// No slot after this fires.
    pub end_at: Option<DateTime<Utc>>,
    /// Sessions a day at most.
    pub max_sessions_per_day: Option<u32>,
}

/// The timetable as asked for (the anchor of `Every` depends on the start).
#[derive(Debug, Clone)]
pub enum TimetableChoice {
    /// Every N minutes.
    Every(i64),
    /// A cron expression in a time zone.
    Cron(String, String),
}

impl Engine {
    /// Creates a schedule (its webhook endpoint too, when its sessions name a `webhook_url`).
    pub async fn create_schedule(&self, project: ProjectId, new: NewSchedule) -> Result<(Schedule, Option<WebhookTarget>), EngineError> {
        if new.session.spec.continues.is_some() {
            return Err(FieldError::new("continues", "a schedule's sessions each start a new conversation: continues cannot be scheduled").into());
        }
        if !new.session.secrets.is_empty() {
            return Err(FieldError::new("sensitive_data", "sensitive_data cannot be scheduled: secret values are never stored").into());
        }
        let Some(agent) = self.inner.registry.get(new.session.spec.mode) else {
            return Err(EngineError::ModeUnavailable(new.session.spec.mode));
        };
        agent.admit(&new.session.spec)?;
        let now = self.inner.clock.wall();
        let anchor = match new.start {
            ScheduleStart::Now | ScheduleStart::Next => now,
            ScheduleStart::At(at) => at,
        };
        let timetable = match &new.timetable {
            TimetableChoice::Every(minutes) => {
                let first = if new.start == ScheduleStart::Next { anchor + chrono::Duration::minutes(*minutes) } else { anchor };
                Timetable::every(*minutes, first)?
            }
            TimetableChoice::Cron(expression, zone) => Timetable::cron(expression, zone)?,
        };
        let first = match new.start {
            ScheduleStart::Now => Some(now),
            // A start in the past starts at the first slot from now (earlier ones were never due).
            ScheduleStart::At(at) => timetable.next_after(at.max(now), true),
            ScheduleStart::Next => timetable.next_after(now, false),
        };
        let Some(first) = first else {
            return Err(FieldError::new("cron", "the timetable has no future slot").into());
        };
        let end_at = match new.end_at {
            // Started now with an end already past: it runs once, now.
            Some(end) if new.start == ScheduleStart::Now && end < now => Some(now),
            Some(end) if end < first => {
                return Err(FieldError::new("end_at", "end_at must not be before the schedule's first run").into());
            }
            other => other,
        };
        let target = match &new.session.spec.webhook_url {
            Some(url) => Some(self.webhook_endpoint_for(project, url).await?),
            None => None,
        };
        let session = new.session;
        let template = SessionTemplate {
            spec: session.spec,
            name: session.name,
            tags: session.tags,
            priority: session.priority,
            user_id: session.user_id,
            metadata: session.metadata,
        };
        let schedule = Schedule {
            id: ScheduleId::new(),
            project_id: project,
            template: serde_json::to_value(&template).unwrap_or_default(),
            webhook_format: session.webhook_format,
            timetable,
            end_at,
            max_sessions_per_day: new.max_sessions_per_day,
            status: ScheduleStatus::Active,
            next_fire_at: Some(first),
            fired: 0,
            skipped_missed: 0,
            skipped_quota: 0,
            last_fire: None,
            created_at: now,
            updated_at: now,
        };
        self.inner.store.insert_schedule(&schedule).await?;
        let schedule = if new.start == ScheduleStart::Now {
            // The first run is now: made before this call returns, so its session is known.
            self.advance(schedule.clone(), now).await?;
            self.get_schedule(project, schedule.id).await?
        } else {
            schedule
        };
        self.inner.schedules_changed.notify_one();
        Ok((schedule, target))
    }

    /// One schedule.
    pub async fn get_schedule(&self, project: ProjectId, id: ScheduleId) -> Result<Schedule, EngineError> {
        self.inner.store.get_schedule(project, id).await?.ok_or(EngineError::NotFound)
    }

    /// The project's schedules, newest first.
    pub async fn list_schedules(&self, project: ProjectId) -> Result<Vec<Schedule>, EngineError> {
        Ok(self.inner.store.list_schedules(project).await?)
    }

    /// Deletes a schedule (the sessions it made stay).
    pub async fn delete_schedule(&self, project: ProjectId, id: ScheduleId) -> Result<(), EngineError> {
        if self.inner.store.delete_schedule(project, id).await? { Ok(()) } else { Err(EngineError::NotFound) }
    }

    /// Pauses an active schedule: no slot fires (none is counted missed) until resumed.
    pub async fn pause_schedule(&self, project: ProjectId, id: ScheduleId) -> Result<Schedule, EngineError> {
        let schedule = self.get_schedule(project, id).await?;
        if schedule.status != ScheduleStatus::Active {
            return Err(EngineError::Conflict(format!("cannot pause a schedule that is {}", schedule.status.as_str())));
        }
        self.inner.store.set_schedule_state(project, id, ScheduleStatus::Paused, schedule.next_fire_at, self.inner.clock.wall()).await?;
        self.get_schedule(project, id).await
    }

    /// Resumes a paused schedule from its next slot after now.
    pub async fn resume_schedule(&self, project: ProjectId, id: ScheduleId) -> Result<Schedule, EngineError> {
        let schedule = self.get_schedule(project, id).await?;
        if schedule.status != ScheduleStatus::Paused {
            return Err(EngineError::Conflict(format!("cannot resume a schedule that is {}", schedule.status.as_str())));
        }
        let now = self.inner.clock.wall();
        let next = schedule.timetable.next_after(now, true).filter(|n| schedule.end_at.is_none_or(|end| *n <= end));
        let status = if next.is_some() { ScheduleStatus::Active } else { ScheduleStatus::Ended };
        self.inner.store.set_schedule_state(project, id, status, next, now).await?;
        self.inner.schedules_changed.notify_one();
        self.get_schedule(project, id).await
    }

    /// Sessions the schedule fired today (in its timetable's zone).
    pub async fn schedule_sessions_today(&self, schedule: &Schedule) -> Result<u64, EngineError> {
        let since = schedule.timetable.day_start(self.inner.clock.wall());
        Ok(self.inner.store.count_fired_since(schedule.id, since).await?)
    }

    /// The schedule's newest runs.
    pub async fn schedule_runs(&self, schedule: &Schedule, limit: u32) -> Result<Vec<ScheduleRun>, EngineError> {
        Ok(self.inner.store.schedule_runs(schedule.id, limit).await?)
    }

    /// The scheduler task.
    pub(crate) async fn run_scheduler(self, stop: tokio_util::sync::CancellationToken) {
        let mut backoff = crate::clock::Backoff::default();
        loop {
            let now = self.inner.clock.wall();
            let passed = async {
                for schedule in self.inner.store.due_schedules(now).await? {
                    self.advance(schedule, now).await?;
                }
                self.inner.store.next_schedule_due().await.map_err(EngineError::from)
            };
            let next = match passed.await {
                Ok(next) => {
                    backoff.reset();
                    next
                }
                Err(error) => {
                    tracing::warn!(%error, "the scheduler failed a pass; retrying");
                    Some(now + backoff.next())
                }
            };
            // Woken at the next slot, at a change, or every half minute to look again (a
            // clock that jumped, a slot another node added).
            let at = next.map_or(now + crate::clock::RECHECK, |next| next.min(now + crate::clock::RECHECK));
            let wait = sleep_until_wall(self.inner.clock.as_ref(), at);
            tokio::select! {
                () = wait => {}
                () = self.inner.schedules_changed.notified() => {}
                () = stop.cancelled() => return,
            }
        }
    }

    /// Moves a due schedule past `now`: the slots passed are recorded (missed, over quota,
    /// or the one that fires), in one compare-and-set with the session fired.
    async fn advance(&self, schedule: Schedule, now: DateTime<Utc>) -> Result<(), EngineError> {
        let Some(slot) = schedule.next_fire_at else { return Ok(()) };
        let within_end = |t: &DateTime<Utc>| schedule.end_at.is_none_or(|end| *t <= end);
        let mut passed = vec![slot];
        let mut cursor = slot;
        while passed.len() < MAX_SLOTS_PER_PASS {
            match schedule.timetable.next_after(cursor, false) {
                Some(next) if next <= now => {
                    passed.push(next);
                    cursor = next;
                }
                _ => break,
            }
        }
        passed.retain(within_end);
        let next = schedule.timetable.next_after(now.max(cursor), false).filter(within_end);
        let status = if next.is_some() { ScheduleStatus::Active } else { ScheduleStatus::Ended };
        let grace = chrono::Duration::from_std(GRACE).unwrap_or_default();
        let latest = passed.last().copied().filter(|t| now - *t <= grace);
        let run = |slot_at, outcome, session_id, reason: Option<String>| ScheduleRun {
            schedule_id: schedule.id,
            slot_at,
            outcome,
            session_id,
            reason,
            at: now,
        };
        let mut runs: Vec<ScheduleRun> = passed
            .iter()
            .filter(|t| Some(**t) != latest)
            .map(|t| run(*t, RunOutcome::SkippedMissed, None, Some("the server was not running at this time".into())))
            .collect();
        let mut fired = None;
        if let Some(slot_at) = latest {
            match self.fire(&schedule, slot_at).await {
                Ok(Fire::Session(session, subscription)) => {
                    runs.push(run(slot_at, RunOutcome::Fired, Some(session.id), None));
                    fired = Some((*session, subscription));
                }
                Ok(Fire::OverQuota(reason)) => runs.push(run(slot_at, RunOutcome::SkippedQuota, None, Some(reason))),
                Err(error) => runs.push(run(slot_at, RunOutcome::Failed, None, Some(error.to_string()))),
            }
        }
        let advance = ScheduleAdvance {
            schedule_id: schedule.id,
            expected_next: Some(slot),
            next_fire_at: next,
            status,
            runs,
            fired: fired.clone(),
            at: now,
        };
        if self.inner.store.advance_schedule(&advance).await?
            && let Some((session, _)) = fired
        {
            self.enqueue(&session);
        }
        Ok(())
    }

    /// The session a slot fires, or why it does not.
    async fn fire(&self, schedule: &Schedule, slot_at: DateTime<Utc>) -> Result<Fire, EngineError> {
        if let Some(max) = schedule.max_sessions_per_day {
            let today = self.inner.store.count_fired_since(schedule.id, schedule.timetable.day_start(slot_at)).await?;
            if today >= u64::from(max) {
                return Ok(Fire::OverQuota(format!("max_sessions_per_day ({max}) reached")));
            }
        }
        let template: SessionTemplate =
            serde_json::from_value(schedule.template.clone()).map_err(|e| EngineError::Conflict(format!("the schedule's template is unreadable: {e}")))?;
        let Some(agent) = self.inner.registry.get(template.spec.mode) else {
            return Err(EngineError::ModeUnavailable(template.spec.mode));
        };
        agent.admit(&template.spec)?;
        let endpoint = match &template.spec.webhook_url {
            Some(url) => Some(self.webhook_endpoint_for(schedule.project_id, url).await?),
            None => None,
        };
        let mut context = schedule.webhook_format.1.clone();
        if let Value::Object(map) = &mut context {
            map.insert("schedule_id".into(), Value::String(schedule.id.to_string()));
            map.entry("tracking_id").or_insert_with(|| Value::String(schedule.id.to_string()));
        }
        let new = NewSession {
            spec: template.spec,
            name: template.name,
            tags: template.tags,
            priority: template.priority,
            user_id: template.user_id,
            metadata: template.metadata,
            secrets: Default::default(),
            webhook_format: (schedule.webhook_format.0.clone(), context.clone()),
        };
        let session = queued_session(schedule.project_id, new, agentd_domain::now());
        let subscription = endpoint.map(|target| WebhookSubscription {
            session_id: session.id,
            endpoint_id: target.endpoint_id,
            format: schedule.webhook_format.0.clone(),
            context,
            cursor_seq: 0,
        });
        Ok(Fire::Session(Box::new(session), subscription))
    }
}

/// What a slot becomes.
enum Fire {
    Session(Box<Session>, Option<WebhookSubscription>),
    OverQuota(String),
}
