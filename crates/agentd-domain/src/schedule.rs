//! Schedules: a session template fired on a timetable — every N minutes from an anchor, or
//! a cron expression in a time zone — between a start and an optional end, at most N
//! sessions a day. [`Timetable::next_after`] is the one place slots are computed.

use std::str::FromStr;

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{FieldError, ProjectId, ScheduleId};

/// When a schedule fires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Timetable {
    /// Every `minutes`, counted from `anchor` (the first slot).
    Every {
        /// Minutes between slots.
        minutes: u32,
        /// The first slot.
        anchor: DateTime<Utc>,
    },
    /// A cron expression (5 fields, or 6 with seconds) read in `timezone`.
    Cron {
        /// The expression.
        expression: String,
        /// An IANA time zone name (`UTC`, `Europe/Paris`).
        timezone: String,
    },
}

/// The longest interval: a year.
pub const MAX_EVERY_MINUTES: u32 = 525_600;

impl Timetable {
    /// Every `minutes` from `anchor`, checked.
    pub fn every(minutes: i64, anchor: DateTime<Utc>) -> Result<Self, FieldError> {
        if !(1..=i64::from(MAX_EVERY_MINUTES)).contains(&minutes) {
            return Err(FieldError::new("every_minutes", format!("every_minutes must be between 1 and {MAX_EVERY_MINUTES}, got {minutes}")));
        }
        Ok(Timetable::Every { minutes: minutes as u32, anchor })
    }

    /// A cron expression in `timezone`, checked.
    pub fn cron(expression: &str, timezone: &str) -> Result<Self, FieldError> {
        croner::Cron::from_str(expression.trim())
            .map_err(|e| FieldError::new("cron", format!("`{expression}` is not a cron expression: {e}")))?;
        chrono_tz::Tz::from_str(timezone.trim())
            .map_err(|_| FieldError::new("timezone", format!("`{timezone}` is not an IANA time zone such as UTC or Europe/Paris")))?;
        Ok(Timetable::Cron { expression: expression.trim().to_owned(), timezone: timezone.trim().to_owned() })
    }

    /// The time zone days are counted in (for the daily quota).
    pub fn zone(&self) -> chrono_tz::Tz {
        match self {
            Timetable::Every { .. } => chrono_tz::UTC,
            Timetable::Cron { timezone, .. } => chrono_tz::Tz::from_str(timezone).unwrap_or(chrono_tz::UTC),
        }
    }

    /// The first slot at or after `t` (`inclusive`) or strictly after it.
    pub fn next_after(&self, t: DateTime<Utc>, inclusive: bool) -> Option<DateTime<Utc>> {
        match self {
            Timetable::Every { minutes, anchor } => {
                if t < *anchor || (inclusive && t == *anchor) {
                    return Some(*anchor);
                }
                let step = Duration::minutes(i64::from(*minutes)).num_milliseconds();
                let since = (t - *anchor).num_milliseconds();
                let mut k = since / step;
                let at = |k: i64| *anchor + Duration::milliseconds(k * step);
                if at(k) < t || (!inclusive && at(k) == t) {
                    k += 1;
                }
                Some(at(k))
            }
            Timetable::Cron { expression, timezone } => {
                let cron = croner::Cron::from_str(expression).ok()?;
                let zone = chrono_tz::Tz::from_str(timezone).ok()?;
                // When clocks go back, a local time happens twice and the search may answer
                // the earlier one, before `t`: search on past it until the answer is later.
                let mut from = t;
                let mut inclusive = inclusive;
                for _ in 0..1_000 {
                    let found = cron.find_next_occurrence(&from.with_timezone(&zone), inclusive).ok()?.with_timezone(&Utc);
                    if found > t || (inclusive && found == t) {
                        return Some(found);
                    }
                    from = found.max(from) + Duration::minutes(1);
                    inclusive = true;
                }
                None
            }
        }
    }

    /// The start of the day holding `t`, in the timetable's zone.
    pub fn day_start(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        let zone = self.zone();
        let midnight = t.with_timezone(&zone).date_naive().and_time(NaiveTime::MIN);
        // Where the clocks skip midnight, the day starts at the first local time that exists.
        (0..=180)
            .find_map(|m| zone.from_local_datetime(&(midnight + Duration::minutes(m))).earliest())
            .map_or(t, |d| d.with_timezone(&Utc))
    }
}

/// Where a schedule stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleStatus {
    /// Fires at its slots.
    Active,
    /// Held by a user: no slot fires, none is counted missed.
    Paused,
    /// Past its end: fires no more.
    Ended,
}

impl ScheduleStatus {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ScheduleStatus::Active => "active",
            ScheduleStatus::Paused => "paused",
            ScheduleStatus::Ended => "ended",
        }
    }

    /// The status named `raw`.
    pub fn parse(raw: &str) -> Option<Self> {
        [ScheduleStatus::Active, ScheduleStatus::Paused, ScheduleStatus::Ended].into_iter().find(|s| s.as_str() == raw)
    }
}

/// A stored schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// Its id.
    pub id: ScheduleId,
    /// The owning project.
    pub project_id: ProjectId,
    /// What each fire creates: the session fields as the client gave them (a JSON object),
    /// turned into a session by the same checks as `POST /v1/sessions`.
    pub template: Value,
    /// How its sessions' events read at the webhook (format name and context).
    pub webhook_format: (String, Value),
    /// When it fires.
    pub timetable: Timetable,
    /// No slot after this fires (the schedule then ends).
    pub end_at: Option<DateTime<Utc>>,
    /// Sessions a day at most (days in the timetable's zone).
    pub max_sessions_per_day: Option<u32>,
    /// Where it stands.
    pub status: ScheduleStatus,
    /// The next slot (None once ended).
    pub next_fire_at: Option<DateTime<Utc>>,
    /// Sessions fired.
    pub fired: u64,
    /// Slots skipped because the server was down at the time.
    pub skipped_missed: u64,
    /// Slots skipped because the day's quota was used.
    pub skipped_quota: u64,
    /// When it last fired, and the session it made.
    pub last_fire: Option<(DateTime<Utc>, crate::SessionId)>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// What became of one slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    /// A session was created.
    Fired,
    /// The server was down at the slot's time.
    SkippedMissed,
    /// The day's quota was used.
    SkippedQuota,
    /// The session could not be created (its reason says why).
    Failed,
}

impl RunOutcome {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Fired => "fired",
            RunOutcome::SkippedMissed => "skipped_missed",
            RunOutcome::SkippedQuota => "skipped_quota",
            RunOutcome::Failed => "failed",
        }
    }

    /// The outcome named `raw`.
    pub fn parse(raw: &str) -> Option<Self> {
        [RunOutcome::Fired, RunOutcome::SkippedMissed, RunOutcome::SkippedQuota, RunOutcome::Failed]
            .into_iter()
            .find(|o| o.as_str() == raw)
    }
}

/// One slot's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleRun {
    /// The schedule.
    pub schedule_id: ScheduleId,
    /// The slot.
    pub slot_at: DateTime<Utc>,
    /// What became of it.
    pub outcome: RunOutcome,
    /// The session made, when it fired.
    pub session_id: Option<crate::SessionId>,
    /// Why it was skipped or failed.
    pub reason: Option<String>,
    /// When this was decided.
    pub at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn every_counts_from_its_anchor() {
        let every = Timetable::every(30, t("2026-01-01T10:00:00Z")).unwrap();
        assert_eq!(every.next_after(t("2026-01-01T09:00:00Z"), false), Some(t("2026-01-01T10:00:00Z")));
        assert_eq!(every.next_after(t("2026-01-01T10:00:00Z"), true), Some(t("2026-01-01T10:00:00Z")));
        assert_eq!(every.next_after(t("2026-01-01T10:00:00Z"), false), Some(t("2026-01-01T10:30:00Z")));
        assert_eq!(every.next_after(t("2026-01-01T10:31:00Z"), false), Some(t("2026-01-01T11:00:00Z")));
        assert_eq!(every.next_after(t("2026-01-01T11:00:00Z"), true), Some(t("2026-01-01T11:00:00Z")));
        assert!(Timetable::every(0, t("2026-01-01T10:00:00Z")).is_err());
        assert!(Timetable::every(i64::from(MAX_EVERY_MINUTES) + 1, t("2026-01-01T10:00:00Z")).is_err());
        assert!(Timetable::every(i64::from(MAX_EVERY_MINUTES), t("2026-01-01T10:00:00Z")).is_ok());
    }

    #[test]
    fn cron_moves_forward_across_both_clock_changes() {
        let paris = Timetable::cron("*/30 * * * *", "Europe/Paris").unwrap();
        // 2026-10-25: at 03:00 local (01:00 UTC) clocks go back to 02:00; 02:xx happens twice.
        let mut t = t("2026-10-24T23:50:00Z");
        let mut seen = Vec::new();
        for _ in 0..8 {
            let next = paris.next_after(t, false).unwrap();
            assert!(next > t, "{next} after {t}");
            seen.push(next);
            t = next;
        }
        // The repeated hour's local times are not run a second time (as cron does); the
        // timetable never answers a time before the one asked about.
        assert_eq!(seen[1..3], [super::tests::t("2026-10-25T00:30:00Z"), super::tests::t("2026-10-25T02:00:00Z")], "{seen:?}");
        // 2026-03-29: at 02:00 local (01:00 UTC) clocks go forward to 03:00.
        let spring = paris.next_after(super::tests::t("2026-03-29T00:45:00Z"), false).unwrap();
        assert_eq!(spring, super::tests::t("2026-03-29T01:00:00Z"));
        // Havana skips midnight on its spring change: the day still starts somewhere.
        let havana = Timetable::cron("0 12 * * *", "America/Havana").unwrap();
        let start = havana.day_start(super::tests::t("2026-03-08T12:00:00Z"));
        assert!(start < super::tests::t("2026-03-08T12:00:00Z"));
    }

    #[test]
    fn cron_reads_its_time_zone() {
        let paris = Timetable::cron("0 9 * * *", "Europe/Paris").unwrap();
        // 09:00 in Paris is 08:00 UTC in winter.
        assert_eq!(paris.next_after(t("2026-01-05T07:00:00Z"), false), Some(t("2026-01-05T08:00:00Z")));
        assert_eq!(paris.day_start(t("2026-01-05T23:30:00Z")), t("2026-01-05T23:00:00Z"));
        assert_eq!(Timetable::cron("nope", "UTC").unwrap_err().field, "cron");
        assert_eq!(Timetable::cron("0 9 * * *", "Mars/Olympus").unwrap_err().field, "timezone");
    }
}
