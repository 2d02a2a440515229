//! Schedules and their runs in SQLite.

use agentd_domain::{ProjectId, RunOutcome, Schedule, ScheduleId, ScheduleRun, ScheduleStatus, SessionId};
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::{SqliteStore, from_json, from_ms, insert_session_in, json, ms, opt_from_ms, uuid};
use crate::{ScheduleAdvance, StoreError, StoreResult};

fn schedule_from_row(row: &SqliteRow) -> StoreResult<Schedule> {
    let status: &str = row.try_get("status")?;
    let last_at = opt_from_ms(row.try_get("last_fire_at")?)?;
    let last_session = row
        .try_get::<Option<&str>, _>("last_session_id")?
        .map(|raw| uuid("last_session_id", raw).map(SessionId::from_uuid))
        .transpose()?;
    Ok(Schedule {
        id: ScheduleId::from_uuid(uuid("id", row.try_get("id")?)?),
        project_id: ProjectId::from_uuid(uuid("project_id", row.try_get("project_id")?)?),
        template: from_json("template", row.try_get("template")?)?,
        webhook_format: from_json("webhook_format", row.try_get("webhook_format")?)?,
        timetable: from_json("timetable", row.try_get("timetable")?)?,
        end_at: opt_from_ms(row.try_get("end_at")?)?,
        max_sessions_per_day: row.try_get::<Option<i64>, _>("max_sessions_per_day")?.map(|n| n as u32),
        status: ScheduleStatus::parse(status).ok_or_else(|| StoreError::Corrupt(format!("status: `{status}`")))?,
        next_fire_at: opt_from_ms(row.try_get("next_fire_at")?)?,
        fired: row.try_get::<i64, _>("fired")? as u64,
        skipped_missed: row.try_get::<i64, _>("skipped_missed")? as u64,
        skipped_quota: row.try_get::<i64, _>("skipped_quota")? as u64,
        last_fire: last_at.zip(last_session),
        created_at: from_ms(row.try_get("created_at")?)?,
        updated_at: from_ms(row.try_get("updated_at")?)?,
    })
}

fn run_from_row(row: &SqliteRow) -> StoreResult<ScheduleRun> {
    let outcome: &str = row.try_get("outcome")?;
    Ok(ScheduleRun {
        schedule_id: ScheduleId::from_uuid(uuid("schedule_id", row.try_get("schedule_id")?)?),
        slot_at: from_ms(row.try_get("slot_at")?)?,
        outcome: RunOutcome::parse(outcome).ok_or_else(|| StoreError::Corrupt(format!("outcome: `{outcome}`")))?,
        session_id: row
            .try_get::<Option<&str>, _>("session_id")?
            .map(|raw| uuid("session_id", raw).map(SessionId::from_uuid))
            .transpose()?,
        reason: row.try_get("reason")?,
        at: from_ms(row.try_get("at")?)?,
    })
}

impl SqliteStore {
    pub(super) async fn insert_schedule_row(&self, s: &Schedule) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO schedules (id, project_id, template, webhook_format, timetable, end_at, max_sessions_per_day, \
             status, next_fire_at, fired, skipped_missed, skipped_quota, last_fire_at, last_session_id, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        )
        .bind(s.id.to_string())
        .bind(s.project_id.to_string())
        .bind(json(&s.template))
        .bind(json(&s.webhook_format))
        .bind(json(&s.timetable))
        .bind(s.end_at.map(ms))
        .bind(s.max_sessions_per_day.map(i64::from))
        .bind(s.status.as_str())
        .bind(s.next_fire_at.map(ms))
        .bind(s.fired as i64)
        .bind(s.skipped_missed as i64)
        .bind(s.skipped_quota as i64)
        .bind(s.last_fire.map(|(at, _)| ms(at)))
        .bind(s.last_fire.map(|(_, id)| id.to_string()))
        .bind(ms(s.created_at))
        .bind(ms(s.updated_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(super) async fn schedule(&self, project: ProjectId, id: ScheduleId) -> StoreResult<Option<Schedule>> {
        let row = sqlx::query("SELECT * FROM schedules WHERE project_id = $1 AND id = $2")
            .bind(project.to_string())
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(schedule_from_row).transpose()
    }

    pub(super) async fn schedules(&self, project: ProjectId) -> StoreResult<Vec<Schedule>> {
        sqlx::query("SELECT * FROM schedules WHERE project_id = $1 ORDER BY created_at DESC, id DESC")
            .bind(project.to_string())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(schedule_from_row)
            .collect()
    }

    pub(super) async fn remove_schedule(&self, project: ProjectId, id: ScheduleId) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM schedules WHERE project_id = $1 AND id = $2")
            .bind(project.to_string())
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn schedule_state(
        &self,
        project: ProjectId,
        id: ScheduleId,
        status: ScheduleStatus,
        next_fire_at: Option<DateTime<Utc>>,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE schedules SET status = $1, next_fire_at = $2, updated_at = $3 WHERE project_id = $4 AND id = $5")
            .bind(status.as_str())
            .bind(next_fire_at.map(ms))
            .bind(ms(at))
            .bind(project.to_string())
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn due(&self, now: DateTime<Utc>) -> StoreResult<Vec<Schedule>> {
        sqlx::query("SELECT * FROM schedules WHERE status = 'active' AND next_fire_at <= $1 ORDER BY next_fire_at, id")
            .bind(ms(now))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(schedule_from_row)
            .collect()
    }

    pub(super) async fn next_due_schedule(&self) -> StoreResult<Option<DateTime<Utc>>> {
        let at: Option<i64> = sqlx::query_scalar("SELECT MIN(next_fire_at) FROM schedules WHERE status = 'active'")
            .fetch_one(&self.pool)
            .await?;
        opt_from_ms(at)
    }

    pub(super) async fn advance(&self, a: &ScheduleAdvance) -> StoreResult<bool> {
        let count = |outcome: RunOutcome| a.runs.iter().filter(|r| r.outcome == outcome).count() as i64;
        let mut tx = self.write_transaction().await?;
        let moved = sqlx::query(
            "UPDATE schedules SET next_fire_at = $1, status = $2, fired = fired + $3, skipped_missed = skipped_missed + $4, \
             skipped_quota = skipped_quota + $5, last_fire_at = COALESCE($6, last_fire_at), \
             last_session_id = COALESCE($7, last_session_id), updated_at = $8 \
             WHERE id = $9 AND status = 'active' AND next_fire_at IS $10",
        )
        .bind(a.next_fire_at.map(ms))
        .bind(a.status.as_str())
        .bind(count(RunOutcome::Fired))
        .bind(count(RunOutcome::SkippedMissed))
        .bind(count(RunOutcome::SkippedQuota))
        .bind(a.fired.as_ref().map(|_| ms(a.at)))
        .bind(a.fired.as_ref().map(|(s, _)| s.id.to_string()))
        .bind(ms(a.at))
        .bind(a.schedule_id.to_string())
        .bind(a.expected_next.map(ms))
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !moved {
            return Ok(false);
        }
        for run in &a.runs {
            sqlx::query(
                "INSERT INTO schedule_runs (schedule_id, slot_at, outcome, session_id, reason, at) VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (schedule_id, slot_at) DO NOTHING",
            )
            .bind(run.schedule_id.to_string())
            .bind(ms(run.slot_at))
            .bind(run.outcome.as_str())
            .bind(run.session_id.map(|s| s.to_string()))
            .bind(&run.reason)
            .bind(ms(run.at))
            .execute(&mut *tx)
            .await?;
        }
        if let Some((session, subscription)) = &a.fired {
            insert_session_in(&mut tx, session).await?;
            if let Some(subscription) = subscription {
                super::webhooks::insert_subscription_in(&mut tx, subscription).await?;
            }
        }
        tx.commit().await?;
        Ok(true)
    }

    pub(super) async fn fired_since(&self, id: ScheduleId, since: DateTime<Utc>) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM schedule_runs WHERE schedule_id = $1 AND outcome = 'fired' AND slot_at >= $2")
            .bind(id.to_string())
            .bind(ms(since))
            .fetch_one(&self.pool)
            .await?;
        Ok(n as u64)
    }

    pub(super) async fn runs(&self, id: ScheduleId, limit: u32) -> StoreResult<Vec<ScheduleRun>> {
        sqlx::query("SELECT * FROM schedule_runs WHERE schedule_id = $1 ORDER BY slot_at DESC LIMIT $2")
            .bind(id.to_string())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(run_from_row)
            .collect()
    }
}
