//! Webhook endpoints, subscriptions and deliveries in SQLite.

use agentd_domain::{ProjectId, SessionId};
use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite};

use super::{SqliteStore, from_json, from_ms, json, ms, opt_from_ms, uuid};
use crate::{AttemptOutcome, DeliveryStatus, StoreError, StoreResult, WebhookDelivery, WebhookEndpoint, WebhookSubscription};

const DELIVERY_COLUMNS: &str = "id, project_id, endpoint_id, session_id, event_type, payload, status, attempts, \
     round_attempts, next_attempt_at, last_attempt_at, response_status, last_error, created_at, delivered_at, format";

fn endpoint_from_row(row: &SqliteRow) -> StoreResult<WebhookEndpoint> {
    let disabled_at = opt_from_ms(row.try_get("disabled_at")?)?;
    let reason: Option<String> = row.try_get("disabled_reason")?;
    Ok(WebhookEndpoint {
        id: row.try_get("id")?,
        project_id: ProjectId::from_uuid(uuid("project_id", row.try_get("project_id")?)?),
        url: row.try_get("url")?,
        secret: row.try_get("secret")?,
        created_at: from_ms(row.try_get("created_at")?)?,
        disabled: disabled_at.map(|at| (at, reason.unwrap_or_default())),
    })
}

fn subscription_from_row(row: &SqliteRow) -> StoreResult<WebhookSubscription> {
    Ok(WebhookSubscription {
        session_id: SessionId::from_uuid(uuid("session_id", row.try_get("session_id")?)?),
        endpoint_id: row.try_get("endpoint_id")?,
        format: row.try_get("format")?,
        context: from_json("context", row.try_get("context")?)?,
        cursor_seq: row.try_get::<i64, _>("cursor_seq")? as u64,
    })
}

fn delivery_from_row(row: &SqliteRow) -> StoreResult<WebhookDelivery> {
    let status: &str = row.try_get("status")?;
    Ok(WebhookDelivery {
        id: row.try_get("id")?,
        project_id: ProjectId::from_uuid(uuid("project_id", row.try_get("project_id")?)?),
        endpoint_id: row.try_get("endpoint_id")?,
        session_id: row
            .try_get::<Option<&str>, _>("session_id")?
            .map(|raw| uuid("session_id", raw).map(SessionId::from_uuid))
            .transpose()?,
        event_type: row.try_get("event_type")?,
        format: row.try_get("format")?,
        payload: row.try_get("payload")?,
        status: DeliveryStatus::parse(status).ok_or_else(|| StoreError::Corrupt(format!("status: `{status}`")))?,
        attempts: row.try_get::<i64, _>("attempts")? as u32,
        round_attempts: row.try_get::<i64, _>("round_attempts")? as u32,
        next_attempt_at: opt_from_ms(row.try_get("next_attempt_at")?)?,
        last_attempt_at: opt_from_ms(row.try_get("last_attempt_at")?)?,
        response_status: row.try_get::<Option<i64>, _>("response_status")?.map(|s| s as u16),
        last_error: row.try_get("last_error")?,
        created_at: from_ms(row.try_get("created_at")?)?,
        delivered_at: opt_from_ms(row.try_get("delivered_at")?)?,
    })
}

/// Inserts a subscription in `tx`.
pub(super) async fn insert_subscription_in(tx: &mut sqlx::Transaction<'_, Sqlite>, s: &WebhookSubscription) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO webhook_subscriptions (session_id, endpoint_id, format, context, cursor_seq, finished) \
         VALUES ($1, $2, $3, $4, $5, 0)",
    )
    .bind(s.session_id.to_string())
    .bind(&s.endpoint_id)
    .bind(&s.format)
    .bind(json(&s.context))
    .bind(s.cursor_seq as i64)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl SqliteStore {
    pub(super) async fn ensure_endpoint(
        &self,
        project: ProjectId,
        url: &str,
        new_secret: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<(WebhookEndpoint, bool)> {
        let id = format!("ep_{}", uuid::Uuid::now_v7().simple());
        let inserted = sqlx::query(
            "INSERT INTO webhook_endpoints (id, project_id, url, secret, created_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (project_id, url) DO NOTHING",
        )
        .bind(&id)
        .bind(project.to_string())
        .bind(url)
        .bind(new_secret)
        .bind(ms(at))
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1;
        let row = sqlx::query("SELECT * FROM webhook_endpoints WHERE project_id = $1 AND url = $2")
            .bind(project.to_string())
            .bind(url)
            .fetch_one(&self.pool)
            .await?;
        Ok((endpoint_from_row(&row)?, inserted))
    }

    pub(super) async fn endpoint(&self, id: &str) -> StoreResult<Option<WebhookEndpoint>> {
        let row = sqlx::query("SELECT * FROM webhook_endpoints WHERE id = $1").bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(endpoint_from_row).transpose()
    }

    pub(super) async fn endpoints(&self, project: ProjectId) -> StoreResult<Vec<WebhookEndpoint>> {
        sqlx::query("SELECT * FROM webhook_endpoints WHERE project_id = $1 ORDER BY created_at, id")
            .bind(project.to_string())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(endpoint_from_row)
            .collect()
    }

    pub(super) async fn endpoint_disabled(
        &self,
        project: ProjectId,
        id: &str,
        disabled: Option<(DateTime<Utc>, String)>,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let (at, reason) = disabled.clone().map_or((None, None), |(at, reason)| (Some(ms(at)), Some(reason)));
        let changed = sqlx::query("UPDATE webhook_endpoints SET disabled_at = $1, disabled_reason = $2 WHERE project_id = $3 AND id = $4")
            .bind(at)
            .bind(&reason)
            .bind(project.to_string())
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if changed && let Some(reason) = reason {
            sqlx::query(
                "UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = NULL, last_error = $1 \
                 WHERE endpoint_id = $2 AND status = 'pending'",
            )
            .bind(format!("not sent: {reason}"))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(changed)
    }

    pub(super) async fn insert_subscription(&self, s: &WebhookSubscription) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        insert_subscription_in(&mut tx, s).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn lagging_subscriptions(&self) -> StoreResult<Vec<(WebhookSubscription, u64)>> {
        let rows = sqlx::query(
            "SELECT s.*, (SELECT COALESCE(MAX(e.seq), 0) FROM events e WHERE e.session_id = s.session_id) AS last_seq \
             FROM webhook_subscriptions s WHERE s.finished = 0",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::new();
        for row in &rows {
            let subscription = subscription_from_row(row)?;
            let last = row.try_get::<i64, _>("last_seq")? as u64;
            if last > subscription.cursor_seq {
                out.push((subscription, last));
            }
        }
        Ok(out)
    }

    pub(super) async fn queue_deliveries(
        &self,
        session: SessionId,
        cursor_seq: u64,
        finished: bool,
        deliveries: &[WebhookDelivery],
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        // The cursor first: if another pass moved it already, this one queues nothing.
        let moved = sqlx::query("UPDATE webhook_subscriptions SET cursor_seq = $1, finished = $2 WHERE session_id = $3 AND cursor_seq < $1")
            .bind(cursor_seq as i64)
            .bind(i64::from(finished))
            .bind(session.to_string())
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if !moved {
            return Ok(());
        }
        for d in deliveries {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO webhook_deliveries ({DELIVERY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
            )))
            .bind(&d.id)
            .bind(d.project_id.to_string())
            .bind(&d.endpoint_id)
            .bind(d.session_id.map(|s| s.to_string()))
            .bind(&d.event_type)
            .bind(&d.payload)
            .bind(d.status.as_str())
            .bind(i64::from(d.attempts))
            .bind(i64::from(d.round_attempts))
            .bind(d.next_attempt_at.map(ms))
            .bind(d.last_attempt_at.map(ms))
            .bind(d.response_status.map(i64::from))
            .bind(&d.last_error)
            .bind(ms(d.created_at))
            .bind(d.delivered_at.map(ms))
            .bind(&d.format)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn due_deliveries(&self, now: DateTime<Utc>, skip: &[String], limit: u32) -> StoreResult<Vec<WebhookDelivery>> {
        let mut sql: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= "
        ));
        sql.push_bind(ms(now));
        if !skip.is_empty() {
            sql.push(" AND endpoint_id NOT IN (");
            let mut list = sql.separated(", ");
            for endpoint in skip {
                list.push_bind(endpoint.clone());
            }
            sql.push(")");
        }
        sql.push(" ORDER BY next_attempt_at, id LIMIT ").push_bind(i64::from(limit));
        sql.build().fetch_all(&self.pool).await?.iter().map(delivery_from_row).collect()
    }

    pub(super) async fn next_due(&self, skip: &[String]) -> StoreResult<Option<DateTime<Utc>>> {
        let mut sql: QueryBuilder<Sqlite> = QueryBuilder::new("SELECT MIN(next_attempt_at) FROM webhook_deliveries WHERE status = 'pending'");
        if !skip.is_empty() {
            sql.push(" AND endpoint_id NOT IN (");
            let mut list = sql.separated(", ");
            for endpoint in skip {
                list.push_bind(endpoint.clone());
            }
            sql.push(")");
        }
        let at: Option<i64> = sql.build_query_scalar().fetch_one(&self.pool).await?;
        opt_from_ms(at)
    }

    pub(super) async fn record_attempt(&self, id: &str, o: &AttemptOutcome) -> StoreResult<()> {
        sqlx::query(
            "UPDATE webhook_deliveries SET status = $1, attempts = attempts + 1, round_attempts = round_attempts + 1, \
             next_attempt_at = $2, last_attempt_at = $3, response_status = $4, last_error = $5, \
             delivered_at = CASE WHEN $1 = 'delivered' THEN $3 ELSE delivered_at END WHERE id = $6",
        )
        .bind(o.status.as_str())
        .bind(o.next_attempt_at.map(ms))
        .bind(ms(o.at))
        .bind(o.response_status.map(i64::from))
        .bind(&o.error)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(super) async fn deliveries(
        &self,
        project: ProjectId,
        status: Option<DeliveryStatus>,
        session: Option<SessionId>,
        limit: u32,
    ) -> StoreResult<Vec<WebhookDelivery>> {
        let mut sql: QueryBuilder<Sqlite> =
            QueryBuilder::new(format!("SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE project_id = "));
        sql.push_bind(project.to_string());
        if let Some(status) = status {
            sql.push(" AND status = ").push_bind(status.as_str());
        }
        if let Some(session) = session {
            sql.push(" AND session_id = ").push_bind(session.to_string());
        }
        sql.push(" ORDER BY created_at DESC, id DESC LIMIT ").push_bind(i64::from(limit));
        sql.build().fetch_all(&self.pool).await?.iter().map(delivery_from_row).collect()
    }

    pub(super) async fn delivery(&self, project: ProjectId, id: &str) -> StoreResult<Option<WebhookDelivery>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE project_id = $1 AND id = $2"
        )))
        .bind(project.to_string())
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(delivery_from_row).transpose()
    }

    pub(super) async fn requeue(&self, project: ProjectId, id: &str, at: DateTime<Utc>) -> StoreResult<Option<WebhookDelivery>> {
        sqlx::query(
            "UPDATE webhook_deliveries SET status = 'pending', round_attempts = 0, next_attempt_at = $1 \
             WHERE project_id = $2 AND id = $3",
        )
        .bind(ms(at))
        .bind(project.to_string())
        .bind(id)
        .execute(&self.pool)
        .await?;
        self.delivery(project, id).await
    }
}
