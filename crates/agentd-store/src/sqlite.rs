//! The embedded SQLite implementation of [`Store`].

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentd_domain::{
    AgentDef, AgentId, AgentSpec, AgentVersion, ApiKeyId, Event, EventKind, Priority, ProjectId, ResourceKind, ResponseType, Schedule, ScheduleId, ScheduleRun, ScheduleStatus, Session, SessionId,
    SessionPatch, SessionSpec, SessionStatus, ToolDef, ToolId, ToolSpec, ToolVersion, Usage,
};
use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use serde::de::DeserializeOwned;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{AssertSqlSafe, Connection, QueryBuilder, Row, Sqlite, SqlitePool};
use uuid::Uuid;

use crate::{
    ApiKeyRecord, AttemptOutcome, ConversationRecord, DeliveryStatus, EventWrite, ScheduleAdvance, IdempotencyBegin, IdempotencyClaim, Project, Screenshot, SessionQuery,
    WebhookDelivery, WebhookEndpoint, WebhookSubscription,
    SessionSortField, SortValue, StorageFault, Store, StoreError, StoreResult, WriteHealth,
};

mod agents;
mod resources;
mod tools;
mod vectors;
mod versions;
mod schedules;
mod tables;
mod webhooks;

/// Rows per multi-row INSERT when appending events (well under SQLite's variable limit).
const EVENT_INSERT_CHUNK: usize = 200;

/// Columns stored on the session row.
const SESSION_COLUMNS: &str = "id, project_id, status, mode, priority, name, user_id, tags, \
     metadata, spec, created_at, updated_at, started_at, ended_at, error, response, \
     response_type, usage";

/// What a session read selects: its columns plus the seq of its newest event, read from the
/// events' primary key so that appending an event never has to touch the session row.
const SESSION_SELECT: &str = "id, project_id, status, mode, priority, name, user_id, tags, \
     metadata, spec, created_at, updated_at, started_at, ended_at, error, response, \
     response_type, usage, cleaned_at, \
     (SELECT COALESCE(MAX(e.seq), 0) FROM events e WHERE e.session_id = sessions.id) AS last_seq";

/// A SQLite database file in WAL mode.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// The last write probe: when, and what it found.
    probe: Arc<tokio::sync::Mutex<Option<(Instant, WriteHealth)>>>,
}

/// A write probe's answer is reused this long: `/healthz` polled by a load balancer costs at
/// most one tiny write a second.
const PROBE_REUSE: Duration = Duration::from_secs(1);
/// A write probe that has not committed by then (the write lock held that long) reports the
/// store as failing rather than keep `/healthz` waiting out the busy timeout.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

impl SqliteStore {
    /// Opens (creating if needed) `agentd.db` in `data_dir` and applies migrations. When that
    /// fails because of the disk (full, read-only, not writable by this user), the error says
    /// so ([`StoreError::Unavailable`]).
    pub async fn open(data_dir: &Path) -> StoreResult<Self> {
        Self::open_with(data_dir, |options| options).await
    }

    /// [`SqliteStore::open`] with the connection options adjusted by `adjust`.
    async fn open_with(
        data_dir: &Path,
        adjust: impl FnOnce(SqliteConnectOptions) -> SqliteConnectOptions,
    ) -> StoreResult<Self> {
        let database = data_dir.join("agentd.db");
        match Self::connect(&database, adjust).await {
            Ok(store) => Ok(store),
            // SQLite says "unable to open database file" whatever the cause: ask the disk.
            Err(error) => match StorageFault::diagnose(data_dir, &database) {
                Some(fault) => {
                    tracing::error!(%error, cause = %fault, "cannot open the database");
                    Err(StoreError::Unavailable(fault))
                }
                None => Err(error),
            },
        }
    }

    async fn connect(
        database: &Path,
        adjust: impl FnOnce(SqliteConnectOptions) -> SqliteConnectOptions,
    ) -> StoreResult<Self> {
        let options = SqliteConnectOptions::new()
            .filename(database)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL + NORMAL: a commit survives a crash of the process (kill -9); only an OS
            // crash or power loss can drop the last commits.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            // Checkpoints run in the background (below), not inside a commit on the hot path.
            .pragma("wal_autocheckpoint", "0");
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .min_connections(1)
            .after_release(|conn, _| Box::pin(outside_transaction(conn)))
            .connect_with(adjust(options))
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        tokio::spawn(checkpoint_periodically(pool.clone()));
        Ok(Self { pool, probe: Arc::default() })
    }

    /// One write that commits or fails like any other: the probe row rewritten.
    async fn probe_write(&self) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO store_probe (id, probed_at) VALUES (1, $1) \
             ON CONFLICT (id) DO UPDATE SET probed_at = excluded.probed_at",
        )
        .bind(ms(Utc::now()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// Whether a connection going back to the pool is outside any transaction; one that is not
/// is closed (closing rolls back whatever is open) instead of being handed out again.
///
/// A transaction dropped without commit or rollback (an error, an early return) has queued
/// its ROLLBACK: let it run, then look again. It can fail: after SQLITE_FULL or an I/O error
/// SQLite may already have rolled the transaction back on its own, and then sqlx goes on
/// counting the connection as inside a transaction, so every later `begin` on it becomes a
/// SAVEPOINT that opens a transaction nothing commits. That connection then holds the write
/// lock (every other writer waits out the busy timeout and fails "database is locked"), and
/// what is written on it looks committed but is seen by no one and lost.
async fn outside_transaction(conn: &mut SqliteConnection) -> Result<bool, sqlx::Error> {
    if !conn.is_in_transaction() {
        return Ok(true);
    }
    conn.ping().await?;
    let clean = !conn.is_in_transaction();
    if !clean {
        tracing::warn!("closing a database connection left inside a failed transaction");
    }
    Ok(clean)
}

impl SqliteStore {
    /// Runs a built session SELECT and reads its rows.
    async fn fetch_sessions(&self, mut sql: QueryBuilder<Sqlite>) -> StoreResult<Vec<Session>> {
        sql.build()
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(session_from_row)
            .collect()
    }

    /// Finishes `sql` (a `SELECT session_id, COUNT(*) AS n ... WHERE ...`) with a filter to
    /// `sessions` and a grouping, and reads the counts.
    async fn count_per_session(
        &self,
        mut sql: QueryBuilder<Sqlite>,
        sessions: &[SessionId],
    ) -> StoreResult<HashMap<SessionId, u64>> {
        if sessions.is_empty() {
            return Ok(HashMap::new());
        }
        sql.push(" AND session_id IN (");
        let mut list = sql.separated(", ");
        for id in sessions {
            list.push_bind(id.to_string());
        }
        sql.push(") GROUP BY session_id");
        sql.build()
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| {
                let id = SessionId::from_uuid(uuid("session_id", row.try_get("session_id")?)?);
                Ok((id, row.try_get::<i64, _>("n")? as u64))
            })
            .collect()
    }

    /// A transaction that takes SQLite's write lock at BEGIN, for read-then-write
    /// transactions: a deferred one fails at once with SQLITE_BUSY when another connection
    /// wrote in between (the busy timeout does not apply to that upgrade); IMMEDIATE waits
    /// instead. Transactions whose first statement writes need not pay for it.
    async fn write_transaction(&self) -> StoreResult<sqlx::Transaction<'static, Sqlite>> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }
}

/// How often the WAL is folded back into the database file. Each checkpoint that copies
/// pages ends in an fsync that can delay a concurrent commit by milliseconds (measured:
/// every 1 s tripled the p99 of POST → first event), so it runs rarely; the WAL holds at
/// most this long's writes.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(10);

/// Keeps the WAL short without stalling writers: a PASSIVE checkpoint never waits for
/// readers or writers. Ends when the pool is closed.
async fn checkpoint_periodically(pool: SqlitePool) {
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if pool.is_closed() {
            return;
        }
        if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&pool).await {
            tracing::warn!(%error, "WAL checkpoint failed");
        }
    }
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_ms(v: i64) -> StoreResult<DateTime<Utc>> {
    Utc.timestamp_millis_opt(v)
        .single()
        .ok_or_else(|| StoreError::Corrupt(format!("timestamp {v} out of range")))
}

fn opt_from_ms(v: Option<i64>) -> StoreResult<Option<DateTime<Utc>>> {
    v.map(from_ms).transpose()
}

/// A `conversations` row.
fn conversation_row(id: SessionId, row: &sqlx::sqlite::SqliteRow) -> StoreResult<ConversationRecord> {
    let closed_at = opt_from_ms(row.try_get("closed_at")?)?;
    let reason: Option<String> = row.try_get("close_reason")?;
    let opening: Option<String> = row.try_get("opening")?;
    Ok(ConversationRecord {
        id,
        project_id: ProjectId::from_uuid(uuid("project_id", row.try_get("project_id")?)?),
        last_message_at: from_ms(row.try_get("last_message_at")?)?,
        closed: closed_at.map(|at| (at, reason.unwrap_or_default())),
        opening: opening.as_deref().map(|raw| from_json("opening", raw)).transpose()?,
    })
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("domain values always serialise")
}

fn from_json<T: DeserializeOwned>(column: &str, raw: &str) -> StoreResult<T> {
    serde_json::from_str(raw).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

fn parse<T: FromStr>(column: &str, raw: &str) -> StoreResult<T> {
    raw.parse()
        .map_err(|_| StoreError::Corrupt(format!("{column}: unreadable value `{raw}`")))
}

fn uuid(column: &str, raw: &str) -> StoreResult<Uuid> {
    Uuid::parse_str(raw).map_err(|_| StoreError::Corrupt(format!("{column}: bad id `{raw}`")))
}

fn session_from_row(row: &SqliteRow) -> StoreResult<Session> {
    let spec: SessionSpec = from_json("spec", row.try_get("spec")?)?;
    Ok(Session {
        id: SessionId::from_uuid(uuid("id", row.try_get("id")?)?),
        project_id: ProjectId::from_uuid(uuid("project_id", row.try_get("project_id")?)?),
        status: parse("status", row.try_get("status")?)?,
        spec,
        name: row.try_get("name")?,
        tags: from_json("tags", row.try_get("tags")?)?,
        priority: Priority::from_rank(row.try_get("priority")?),
        user_id: row.try_get("user_id")?,
        metadata: from_json("metadata", row.try_get("metadata")?)?,
        created_at: from_ms(row.try_get("created_at")?)?,
        updated_at: from_ms(row.try_get("updated_at")?)?,
        started_at: opt_from_ms(row.try_get("started_at")?)?,
        ended_at: opt_from_ms(row.try_get("ended_at")?)?,
        error: row.try_get("error")?,
        response: row
            .try_get::<Option<&str>, _>("response")?
            .map(|raw| from_json("response", raw))
            .transpose()?,
        response_type: row
            .try_get::<Option<&str>, _>("response_type")?
            .map(|raw| parse::<ResponseType>("response_type", raw))
            .transpose()?,
        usage: from_json::<Usage>("usage", row.try_get("usage")?)?,
        last_seq: row.try_get::<i64, _>("last_seq")? as u64,
        cleaned_at: opt_from_ms(row.try_get("cleaned_at")?)?,
    })
}

fn event_from_row(row: &SqliteRow) -> StoreResult<Event> {
    let kind: &str = row.try_get("kind")?;
    let kind = EventKind::ALL
        .iter()
        .copied()
        .find(|k| k.as_str() == kind)
        .ok_or_else(|| StoreError::Corrupt(format!("kind: unknown event kind `{kind}`")))?;
    Ok(Event {
        session_id: SessionId::from_uuid(uuid("session_id", row.try_get("session_id")?)?),
        seq: row.try_get::<i64, _>("seq")? as u64,
        kind,
        data: from_json("data", row.try_get("data")?)?,
        created_at: from_ms(row.try_get("created_at")?)?,
    })
}

fn key_from_row(row: &SqliteRow) -> StoreResult<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        id: ApiKeyId::from_uuid(uuid("id", row.try_get("id")?)?),
        project_id: ProjectId::from_uuid(uuid("project_id", row.try_get("project_id")?)?),
        name: row.try_get("name")?,
        key_hash: row.try_get("key_hash")?,
        key_prefix: row.try_get("key_prefix")?,
        tier: row.try_get("tier")?,
        per_minute: row.try_get::<Option<i64>, _>("per_minute")?.map(|v| v as u64),
        per_day: row.try_get::<Option<i64>, _>("per_day")?.map(|v| v as u64),
        created_at: from_ms(row.try_get("created_at")?)?,
        revoked_at: opt_from_ms(row.try_get("revoked_at")?)?,
    })
}

/// The INSERT of a new session's row.
fn insert_session_query(s: &Session) -> sqlx::query::Query<'static, Sqlite, sqlx::sqlite::SqliteArguments> {
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO sessions ({SESSION_COLUMNS}) VALUES \
         ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
    )))
    .bind(s.id.to_string())
    .bind(s.project_id.to_string())
    .bind(s.status.as_str())
    .bind(s.spec.mode.as_str())
    .bind(s.priority.rank())
    .bind(s.name.clone())
    .bind(s.user_id.clone())
    .bind(json(&s.tags))
    .bind(json(&s.metadata))
    .bind(json(&s.spec))
    .bind(ms(s.created_at))
    .bind(ms(s.updated_at))
    .bind(s.started_at.map(ms))
    .bind(s.ended_at.map(ms))
    .bind(s.error.clone())
    .bind(s.response.as_ref().map(json))
    .bind(s.response_type.map(|t| t.as_str()))
    .bind(json(&s.usage))
}

/// Inserts a new session and its tags in `tx`.
async fn insert_session_in(tx: &mut sqlx::Transaction<'_, Sqlite>, s: &Session) -> StoreResult<()> {
    insert_session_query(s).execute(&mut **tx).await?;
    replace_tags(tx, s.id, &s.tags).await
}

async fn replace_tags(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    session: SessionId,
    tags: &[String],
) -> StoreResult<()> {
    sqlx::query("DELETE FROM session_tags WHERE session_id = $1")
        .bind(session.to_string())
        .execute(&mut **tx)
        .await?;
    for tag in tags {
        sqlx::query("INSERT INTO session_tags (session_id, tag) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(session.to_string())
            .bind(tag)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// One multi-row INSERT of `writes`' events.
fn insert_events(writes: &[EventWrite]) -> QueryBuilder<Sqlite> {
    let mut sql: QueryBuilder<Sqlite> =
        QueryBuilder::new("INSERT INTO events (session_id, seq, kind, data, created_at) ");
    sql.push_values(writes, |mut row, write| {
        let e = &write.event;
        row.push_bind(e.session_id.to_string())
            .push_bind(e.seq as i64)
            .push_bind(e.kind.as_str())
            .push_bind(json(&e.data))
            .push_bind(ms(e.created_at));
    });
    sql
}

/// The SQL expression a sort field orders by; `now` (milliseconds, ours, never a client's
/// text) ends live sessions' durations.
fn sort_column(field: SessionSortField, now: i64) -> String {
    match field {
        SessionSortField::CreatedAt => "created_at".into(),
        SessionSortField::UpdatedAt => "updated_at".into(),
        SessionSortField::Priority => "priority".into(),
        SessionSortField::Name => "COALESCE(name, '')".into(),
        SessionSortField::Status => "status".into(),
        SessionSortField::EndedAt => format!("COALESCE(ended_at, {})", i64::MAX),
        SessionSortField::Duration => duration_sql(now),
    }
}

/// A session's run time in milliseconds: from its start (or creation) to its end, or `now`.
fn duration_sql(now: i64) -> String {
    format!("(COALESCE(ended_at, {now}) - COALESCE(started_at, created_at))")
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn write_health(&self) -> WriteHealth {
        let mut last = self.probe.lock().await;
        if let Some((at, health)) = *last
            && at.elapsed() < PROBE_REUSE
        {
            return health;
        }
        let health = match tokio::time::timeout(PROBE_TIMEOUT, self.probe_write()).await {
            Ok(Ok(())) => WriteHealth::Writable,
            Ok(Err(StoreError::Unavailable(fault))) => WriteHealth::Unavailable(fault),
            Ok(Err(error)) => {
                tracing::warn!(%error, "the store's write probe failed");
                WriteHealth::Failing
            }
            Err(_) => {
                tracing::warn!(timeout = ?PROBE_TIMEOUT, "the store's write probe did not commit in time");
                WriteHealth::Failing
            }
        };
        *last = Some((Instant::now(), health));
        health
    }

    async fn ensure_project(&self, name: &str) -> StoreResult<Project> {
        sqlx::query("INSERT INTO projects (id, name, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING")
            .bind(ProjectId::new().to_string())
            .bind(name)
            .bind(ms(Utc::now()))
            .execute(&self.pool)
            .await?;
        self.project_by_name(name)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("project `{name}` vanished after insert")))
    }

    async fn project_by_name(&self, name: &str) -> StoreResult<Option<Project>> {
        let row = sqlx::query("SELECT id, name FROM projects WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            Ok(Project {
                id: ProjectId::from_uuid(uuid("id", row.try_get("id")?)?),
                name: row.try_get("name")?,
            })
        })
        .transpose()
    }

    async fn insert_api_key(&self, key: &ApiKeyRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO api_keys (id, project_id, name, key_hash, key_prefix, tier, per_minute, per_day, created_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(key.id.to_string())
        .bind(key.project_id.to_string())
        .bind(&key.name)
        .bind(&key.key_hash)
        .bind(&key.key_prefix)
        .bind(&key.tier)
        .bind(key.per_minute.map(|v| v as i64))
        .bind(key.per_day.map(|v| v as i64))
        .bind(ms(key.created_at))
        .bind(key.revoked_at.map(ms))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn api_key_by_hash(&self, key_hash: &str) -> StoreResult<Option<ApiKeyRecord>> {
        sqlx::query("SELECT * FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL")
            .bind(key_hash)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(key_from_row)
            .transpose()
    }

    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKeyRecord>> {
        sqlx::query("SELECT * FROM api_keys ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(key_from_row)
            .collect()
    }

    async fn revoke_api_key(&self, id: ApiKeyId, at: DateTime<Utc>) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(ms(at))
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn insert_session(&self, s: &Session) -> StoreResult<()> {
        if s.tags.is_empty() {
            // One statement is atomic on its own: no transaction round trips.
            insert_session_query(s).execute(&self.pool).await?;
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        insert_session_in(&mut tx, s).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn insert_session_subscribed(&self, session: &Session, subscription: &WebhookSubscription) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        insert_session_in(&mut tx, session).await?;
        webhooks::insert_subscription_in(&mut tx, subscription).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_session(&self, project: ProjectId, id: SessionId) -> StoreResult<Option<Session>> {
        sqlx::query(AssertSqlSafe(format!(
            "SELECT {SESSION_SELECT} FROM sessions WHERE project_id = $1 AND id = $2"
        )))
        .bind(project.to_string())
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(session_from_row)
        .transpose()
    }

    async fn project_of_session(&self, id: SessionId) -> StoreResult<Option<ProjectId>> {
        let row: Option<String> = sqlx::query_scalar("SELECT project_id FROM sessions WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|raw| Ok(ProjectId::from_uuid(uuid("project_id", &raw)?))).transpose()
    }

    async fn list_sessions(&self, q: &SessionQuery) -> StoreResult<Vec<Session>> {
        let mut sql: QueryBuilder<Sqlite> =
            QueryBuilder::new(format!("SELECT {SESSION_SELECT} FROM sessions WHERE project_id = "));
        sql.push_bind(q.project_id.to_string());
        if !q.statuses.is_empty() {
            sql.push(" AND status IN (");
            let mut list = sql.separated(", ");
            for status in &q.statuses {
                list.push_bind(status.as_str());
            }
            sql.push(")");
        }
        if let Some(tag) = &q.tag {
            sql.push(" AND EXISTS (SELECT 1 FROM session_tags t WHERE t.session_id = sessions.id AND t.tag = ");
            sql.push_bind(tag.clone());
            sql.push(")");
        }
        if !q.any_tag.is_empty() {
            sql.push(" AND EXISTS (SELECT 1 FROM session_tags t WHERE t.session_id = sessions.id AND t.tag IN (");
            let mut list = sql.separated(", ");
            for tag in &q.any_tag {
                list.push_bind(tag.clone());
            }
            sql.push("))");
        }
        if let Some(user_id) = &q.user_id {
            sql.push(" AND user_id = ").push_bind(user_id.clone());
        }
        if let Some(after) = q.created_after {
            sql.push(" AND created_at >= ").push_bind(ms(after));
        }
        if let Some(before) = q.created_before {
            sql.push(" AND created_at < ").push_bind(ms(before));
        }
        match q.has_error {
            Some(true) => {
                sql.push(" AND error IS NOT NULL");
            }
            Some(false) => {
                sql.push(" AND error IS NULL");
            }
            None => {}
        }
        if let Some(limit) = q.duration_less_than {
            sql.push(format!(" AND {} < ", duration_sql(ms(q.now)))).push_bind(limit.num_milliseconds());
        }
        let column = sort_column(q.sort, ms(q.now));
        let (cmp, dir) = if q.descending { ("<", "DESC") } else { (">", "ASC") };
        if let Some((value, id)) = &q.after {
            let push_value = |sql: &mut QueryBuilder<Sqlite>| match value {
                SortValue::Int(v) => {
                    sql.push_bind(*v);
                }
                SortValue::Text(v) => {
                    sql.push_bind(v.clone());
                }
            };
            sql.push(format!(" AND ({column} {cmp} "));
            push_value(&mut sql);
            sql.push(format!(" OR ({column} = "));
            push_value(&mut sql);
            sql.push(format!(" AND id {cmp} "));
            sql.push_bind(id.to_string());
            sql.push("))");
        }
        sql.push(format!(" ORDER BY {column} {dir}, id {dir} LIMIT "));
        sql.push_bind(i64::from(q.limit) + 1);
        self.fetch_sessions(sql).await
    }

    async fn patch_session(
        &self,
        project: ProjectId,
        id: SessionId,
        patch: &SessionPatch,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<Session>> {
        let mut tx = self.write_transaction().await?;
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {SESSION_SELECT} FROM sessions WHERE project_id = $1 AND id = $2"
        )))
        .bind(project.to_string())
        .bind(id.to_string())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let mut session = session_from_row(&row)?;
        patch.apply_to(&mut session);
        session.updated_at = at;
        sqlx::query(
            "UPDATE sessions SET name = $1, tags = $2, priority = $3, user_id = $4, metadata = $5, updated_at = $6 WHERE id = $7",
        )
        .bind(&session.name)
        .bind(json(&session.tags))
        .bind(session.priority.rank())
        .bind(&session.user_id)
        .bind(json(&session.metadata))
        .bind(ms(at))
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        if patch.tags.is_some() {
            replace_tags(&mut tx, id, &session.tags).await?;
        }
        tx.commit().await?;
        Ok(Some(session))
    }

    async fn delete_session(&self, project: ProjectId, id: SessionId) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM sessions WHERE project_id = $1 AND id = $2")
            .bind(project.to_string())
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_sessions_ended_before(
        &self,
        project: ProjectId,
        before: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let done = sqlx::query(
            "DELETE FROM sessions WHERE project_id = $1 AND ended_at IS NOT NULL AND ended_at < $2",
        )
        .bind(project.to_string())
        .bind(ms(before))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn sessions_in_status(&self, statuses: &[SessionStatus]) -> StoreResult<Vec<Session>> {
        if statuses.is_empty() {
            return Ok(Vec::new());
        }
        let mut sql: QueryBuilder<Sqlite> =
            QueryBuilder::new(format!("SELECT {SESSION_SELECT} FROM sessions WHERE status IN ("));
        let mut list = sql.separated(", ");
        for status in statuses {
            list.push_bind(status.as_str());
        }
        sql.push(") ORDER BY created_at, id");
        self.fetch_sessions(sql).await
    }

    async fn count_sessions_by_status(&self) -> StoreResult<Vec<(SessionStatus, u64)>> {
        let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM sessions GROUP BY status")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    parse::<SessionStatus>("status", row.try_get("status")?)?,
                    row.try_get::<i64, _>("n")? as u64,
                ))
            })
            .collect()
    }

    async fn append_events(&self, writes: &[EventWrite]) -> StoreResult<()> {
        if writes.is_empty() {
            return Ok(());
        }
        if writes.len() <= EVENT_INSERT_CHUNK && writes.iter().all(|w| w.change.is_none()) {
            // The common case: plain events, one statement, atomic on its own. Skipping
            // BEGIN/COMMIT saves two round trips to SQLite's thread per group commit.
            insert_events(writes).build().execute(&self.pool).await?;
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for chunk in writes.chunks(EVENT_INSERT_CHUNK) {
            insert_events(chunk).build().execute(&mut *tx).await?;
        }
        // Only events that change the session touch its row; plain events are one INSERT.
        for write in writes {
            let Some(change) = &write.change else { continue };
            let e = &write.event;
            sqlx::query(
                "UPDATE sessions SET updated_at = $1, \
                 status = COALESCE($2, status), started_at = COALESCE($3, started_at), \
                 ended_at = COALESCE($4, ended_at), error = COALESCE($5, error), \
                 response = COALESCE($6, response), response_type = COALESCE($7, response_type), \
                 usage = COALESCE($8, usage) WHERE id = $9",
            )
            .bind(ms(e.created_at))
            .bind(change.status.map(|s| s.as_str()))
            .bind(change.started_at.map(ms))
            .bind(change.ended_at.map(ms))
            .bind(&change.error)
            .bind(change.response.as_ref().map(json))
            .bind(change.response_type.map(|t| t.as_str()))
            .bind(change.usage.as_ref().map(json))
            .bind(e.session_id.to_string())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn events_after(&self, session: SessionId, after: u64, limit: u32) -> StoreResult<Vec<Event>> {
        sqlx::query(
            "SELECT session_id, seq, kind, data, created_at FROM events \
             WHERE session_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(session.to_string())
        .bind(after.min(i64::MAX as u64) as i64)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(event_from_row)
        .collect()
    }

    async fn last_event_of(&self, session: SessionId, kinds: &[EventKind]) -> StoreResult<Option<Event>> {
        if kinds.is_empty() {
            return Ok(None);
        }
        let mut sql: QueryBuilder<Sqlite> =
            QueryBuilder::new("SELECT session_id, seq, kind, data, created_at FROM events WHERE session_id = ");
        sql.push_bind(session.to_string()).push(" AND kind IN (");
        let mut list = sql.separated(", ");
        for kind in kinds {
            list.push_bind(kind.as_str());
        }
        sql.push(") ORDER BY seq DESC LIMIT 1");
        sql.build().fetch_optional(&self.pool).await?.as_ref().map(event_from_row).transpose()
    }

    async fn count_events_of(&self, sessions: &[SessionId], kind: EventKind) -> StoreResult<HashMap<SessionId, u64>> {
        let mut sql: QueryBuilder<Sqlite> = QueryBuilder::new("SELECT session_id, COUNT(*) AS n FROM events WHERE kind = ");
        sql.push_bind(kind.as_str());
        self.count_per_session(sql, sessions).await
    }

    async fn mark_cleaned(&self, project: ProjectId, id: SessionId, at: DateTime<Utc>) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE sessions SET cleaned_at = $1, updated_at = $1 \
             WHERE project_id = $2 AND id = $3 AND cleaned_at IS NULL",
        )
        .bind(ms(at))
        .bind(project.to_string())
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn save_screenshot(&self, session: SessionId, shot: &Screenshot, keep: u32) -> StoreResult<()> {
        let id = session.to_string();
        let mut tx = self.write_transaction().await?;
        sqlx::query(
            "INSERT INTO session_screenshots (session_id, seq, taken_at, png_base64) \
             SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3 FROM session_screenshots WHERE session_id = $1",
        )
        .bind(&id)
        .bind(ms(shot.taken_at))
        .bind(&shot.png_base64)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM session_screenshots WHERE session_id = $1 AND seq <= \
             (SELECT MAX(seq) FROM session_screenshots WHERE session_id = $1) - $2",
        )
        .bind(&id)
        .bind(i64::from(keep))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn latest_screenshot(&self, session: SessionId) -> StoreResult<Option<Screenshot>> {
        let row = sqlx::query(
            "SELECT taken_at, png_base64 FROM session_screenshots WHERE session_id = $1 ORDER BY seq DESC LIMIT 1",
        )
        .bind(session.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(Screenshot { taken_at: from_ms(row.try_get("taken_at")?)?, png_base64: row.try_get("png_base64")? })
        })
        .transpose()
    }

    async fn count_screenshots(&self, sessions: &[SessionId]) -> StoreResult<HashMap<SessionId, u64>> {
        let sql: QueryBuilder<Sqlite> = QueryBuilder::new("SELECT session_id, COUNT(*) AS n FROM session_screenshots WHERE 1 = 1");
        self.count_per_session(sql, sessions).await
    }

    async fn ensure_webhook_endpoint(
        &self,
        project: ProjectId,
        url: &str,
        new_secret: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<(WebhookEndpoint, bool)> {
        self.ensure_endpoint(project, url, new_secret, at).await
    }

    async fn webhook_endpoint(&self, id: &str) -> StoreResult<Option<WebhookEndpoint>> {
        self.endpoint(id).await
    }

    async fn list_webhook_endpoints(&self, project: ProjectId) -> StoreResult<Vec<WebhookEndpoint>> {
        self.endpoints(project).await
    }

    async fn set_webhook_endpoint_disabled(
        &self,
        project: ProjectId,
        id: &str,
        disabled: Option<(DateTime<Utc>, String)>,
    ) -> StoreResult<bool> {
        self.endpoint_disabled(project, id, disabled).await
    }

    async fn insert_webhook_subscription(&self, subscription: &WebhookSubscription) -> StoreResult<()> {
        self.insert_subscription(subscription).await
    }

    async fn lagging_webhook_subscriptions(&self) -> StoreResult<Vec<(WebhookSubscription, u64)>> {
        self.lagging_subscriptions().await
    }

    async fn queue_webhook_deliveries(
        &self,
        session: SessionId,
        cursor_seq: u64,
        finished: bool,
        deliveries: &[WebhookDelivery],
    ) -> StoreResult<()> {
        self.queue_deliveries(session, cursor_seq, finished, deliveries).await
    }

    async fn due_webhook_deliveries(&self, now: DateTime<Utc>, skip: &[String], limit: u32) -> StoreResult<Vec<WebhookDelivery>> {
        self.due_deliveries(now, skip, limit).await
    }

    async fn next_webhook_due(&self, skip: &[String]) -> StoreResult<Option<DateTime<Utc>>> {
        self.next_due(skip).await
    }

    async fn record_webhook_attempt(&self, id: &str, outcome: &AttemptOutcome) -> StoreResult<()> {
        self.record_attempt(id, outcome).await
    }

    async fn list_webhook_deliveries(
        &self,
        project: ProjectId,
        status: Option<DeliveryStatus>,
        session: Option<SessionId>,
        limit: u32,
    ) -> StoreResult<Vec<WebhookDelivery>> {
        self.deliveries(project, status, session, limit).await
    }

    async fn webhook_delivery(&self, project: ProjectId, id: &str) -> StoreResult<Option<WebhookDelivery>> {
        self.delivery(project, id).await
    }

    async fn requeue_webhook_delivery(&self, project: ProjectId, id: &str, at: DateTime<Utc>) -> StoreResult<Option<WebhookDelivery>> {
        self.requeue(project, id, at).await
    }

    async fn insert_schedule(&self, schedule: &Schedule) -> StoreResult<()> {
        self.insert_schedule_row(schedule).await
    }

    async fn get_schedule(&self, project: ProjectId, id: ScheduleId) -> StoreResult<Option<Schedule>> {
        self.schedule(project, id).await
    }

    async fn list_schedules(&self, project: ProjectId) -> StoreResult<Vec<Schedule>> {
        self.schedules(project).await
    }

    async fn delete_schedule(&self, project: ProjectId, id: ScheduleId) -> StoreResult<bool> {
        self.remove_schedule(project, id).await
    }

    async fn set_schedule_state(
        &self,
        project: ProjectId,
        id: ScheduleId,
        status: ScheduleStatus,
        next_fire_at: Option<DateTime<Utc>>,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.schedule_state(project, id, status, next_fire_at, at).await
    }

    async fn due_schedules(&self, now: DateTime<Utc>) -> StoreResult<Vec<Schedule>> {
        self.due(now).await
    }

    async fn next_schedule_due(&self) -> StoreResult<Option<DateTime<Utc>>> {
        self.next_due_schedule().await
    }

    async fn advance_schedule(&self, advance: &ScheduleAdvance) -> StoreResult<bool> {
        self.advance(advance).await
    }

    async fn count_fired_since(&self, id: ScheduleId, since: DateTime<Utc>) -> StoreResult<u64> {
        self.fired_since(id, since).await
    }

    async fn schedule_runs(&self, id: ScheduleId, limit: u32) -> StoreResult<Vec<ScheduleRun>> {
        self.runs(id, limit).await
    }

    async fn insert_agent(&self, agent: &AgentDef, first: &AgentVersion) -> StoreResult<u64> {
        self.insert_agent_row(agent, first).await
    }

    async fn get_agent(&self, project: ProjectId, id: AgentId) -> StoreResult<Option<AgentDef>> {
        self.agent(project, id).await
    }

    async fn list_agents(&self, project: ProjectId) -> StoreResult<Vec<AgentDef>> {
        self.agents(project).await
    }

    async fn update_agent(
        &self,
        project: ProjectId,
        id: AgentId,
        name: Option<&str>,
        description: Option<Option<&str>>,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.rename_agent(project, id, name, description, at).await
    }

    async fn delete_agent(&self, project: ProjectId, id: AgentId) -> StoreResult<bool> {
        self.remove_agent(project, id).await
    }

    async fn agent_versions(&self, agent: AgentId) -> StoreResult<Vec<AgentVersion>> {
        self.versions(agent).await
    }

    async fn put_agent_draft(&self, agent: AgentId, spec: &AgentSpec, at: DateTime<Utc>) -> StoreResult<AgentVersion> {
        self.put_draft(agent, spec, at).await
    }

    async fn publish_agent_draft(&self, agent: AgentId, at: DateTime<Utc>) -> StoreResult<Option<AgentVersion>> {
        self.publish(agent, at).await
    }

    async fn insert_tool(&self, tool: &ToolDef, first: &ToolVersion) -> StoreResult<u64> {
        self.insert_tool_row(tool, first).await
    }

    async fn get_tool(&self, project: ProjectId, id: ToolId) -> StoreResult<Option<ToolDef>> {
        self.tool(project, id).await
    }

    async fn tool_by_name(&self, project: ProjectId, name: &str) -> StoreResult<Option<ToolDef>> {
        self.tool_named(project, name).await
    }

    async fn list_tools(&self, project: ProjectId) -> StoreResult<Vec<ToolDef>> {
        self.tools(project).await
    }

    async fn rename_tool(&self, project: ProjectId, id: ToolId, name: &str, at: DateTime<Utc>) -> StoreResult<bool> {
        self.rename_tool_row(project, id, name, at).await
    }

    async fn delete_tool(&self, project: ProjectId, id: ToolId) -> StoreResult<bool> {
        self.remove_tool(project, id).await
    }

    async fn tool_versions(&self, tool: ToolId) -> StoreResult<Vec<ToolVersion>> {
        self.tool_version_list(tool).await
    }

    async fn put_tool_draft(&self, tool: ToolId, spec: &ToolSpec, at: DateTime<Utc>) -> StoreResult<ToolVersion> {
        self.put_tool_draft_row(tool, spec, at).await
    }

    async fn publish_tool_draft(&self, tool: ToolId, at: DateTime<Utc>) -> StoreResult<Option<ToolVersion>> {
        self.publish_tool_row(tool, at).await
    }

    async fn resource_by_number(&self, project: ProjectId, number: u64) -> StoreResult<Option<(ResourceKind, Uuid)>> {
        self.resource_numbered(project, number).await
    }

    async fn ensure_conversation(&self, project: ProjectId, id: SessionId, since: DateTime<Utc>) -> StoreResult<ConversationRecord> {
        sqlx::query("INSERT INTO conversations (id, project_id, last_message_at) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING")
            .bind(id.to_string())
            .bind(project.to_string())
            .bind(ms(since))
            .execute(&self.pool)
            .await?;
        let row = sqlx::query("SELECT * FROM conversations WHERE id = $1").bind(id.to_string()).fetch_one(&self.pool).await?;
        conversation_row(id, &row)
    }

    async fn insert_conversation(&self, project: ProjectId, id: SessionId, at: DateTime<Utc>, opening: &agentd_domain::SessionSpec) -> StoreResult<()> {
        sqlx::query("INSERT INTO conversations (id, project_id, last_message_at, opening) VALUES ($1, $2, $3, $4)")
            .bind(id.to_string())
            .bind(project.to_string())
            .bind(ms(at))
            .bind(json(opening))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn get_conversation(&self, project: ProjectId, id: SessionId) -> StoreResult<Option<ConversationRecord>> {
        let row = sqlx::query("SELECT * FROM conversations WHERE id = $1 AND project_id = $2")
            .bind(id.to_string())
            .bind(project.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| conversation_row(id, &row)).transpose()
    }

    async fn touch_conversation(&self, id: SessionId, at: DateTime<Utc>) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE conversations SET last_message_at = $1 WHERE id = $2 AND closed_at IS NULL")
            .bind(ms(at))
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn close_conversation(&self, id: SessionId, at: DateTime<Utc>, reason: &str) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE conversations SET closed_at = $1, close_reason = $2 WHERE id = $3 AND closed_at IS NULL")
            .bind(ms(at))
            .bind(reason)
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn idempotency_begin(&self, claim: &IdempotencyClaim) -> StoreResult<IdempotencyBegin> {
        let project = claim.project_id.to_string();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE project_id = $1 AND (created_at < $2 \
             OR (idem_key = $3 AND status_code IS NULL AND created_at < $4))",
        )
        .bind(&project)
        .bind(ms(claim.expire_before))
        .bind(&claim.key)
        .bind(ms(claim.abandoned_before))
        .execute(&mut *tx)
        .await?;
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys (project_id, idem_key, request_hash, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(&project)
        .bind(&claim.key)
        .bind(&claim.request_hash)
        .bind(ms(claim.at))
        .execute(&mut *tx)
        .await?;
        let result = if inserted.rows_affected() == 1 {
            IdempotencyBegin::Claimed
        } else {
            let row = sqlx::query(
                "SELECT request_hash, status_code, response_body FROM idempotency_keys \
                 WHERE project_id = $1 AND idem_key = $2",
            )
            .bind(&project)
            .bind(&claim.key)
            .fetch_one(&mut *tx)
            .await?;
            let status: Option<i64> = row.try_get("status_code")?;
            let body: Option<String> = row.try_get("response_body")?;
            IdempotencyBegin::Seen {
                request_hash: row.try_get("request_hash")?,
                response: status.zip(body).map(|(s, b)| (s as u16, b)),
            }
        };
        tx.commit().await?;
        Ok(result)
    }

    async fn idempotency_complete(
        &self,
        project: ProjectId,
        key: &str,
        status: u16,
        body: &str,
    ) -> StoreResult<()> {
        sqlx::query("UPDATE idempotency_keys SET status_code = $1, response_body = $2 WHERE project_id = $3 AND idem_key = $4")
            .bind(i64::from(status))
            .bind(body)
            .bind(project.to_string())
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn idempotency_release(&self, project: ProjectId, key: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM idempotency_keys WHERE project_id = $1 AND idem_key = $2 AND status_code IS NULL")
            .bind(project.to_string())
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod fault_tests {
    //! A full disk, played by SQLite's `max_page_count`: past it every write fails with
    //! SQLITE_FULL exactly as when the device has no space left.

    use agentd_domain::{Driver, Mode};
    use serde_json::{Map, Value, json};
    use sqlx::ConnectOptions;
    use tokio::task::JoinSet;

    use super::*;
    use crate::SessionChange;

    fn spec() -> SessionSpec {
        SessionSpec {
            mode: Mode::Browser,
            goal: "g".into(),
            start_url: None,
            max_actions: 10,
            max_cycles: 1,
            timeout_seconds: 3600,
            inactivity_timeout_seconds: 3600,
            display_width: 1024,
            display_height: 768,
            headless: true,
            webhook_url: None,
            allowed_domains: vec![],
            model: None,
            output_schema: None,
            secret_names: vec![],
            driver: Driver::default(),
            continues: None,
            conversation: Vec::new(),
            conversation_id: None,
            agent: None,
            instructions: None,
            tools: None,
        }
    }

    fn padding(bytes: usize) -> Map<String, Value> {
        Map::from_iter([("padding".to_owned(), json!("x".repeat(bytes)))])
    }

    /// A session with a tag (so that storing it is a transaction) and `bytes` of metadata.
    fn session(project: ProjectId, bytes: usize) -> Session {
        let mut session = Session::queued(project, spec(), Utc::now());
        session.tags = vec!["fill".into()];
        session.metadata = padding(bytes);
        session
    }

    /// A store over `dir` whose database may grow by `spare` pages at most.
    async fn capped(dir: &Path, spare: i64) -> SqliteStore {
        let store = SqliteStore::open(dir).await.unwrap();
        let pages: i64 = sqlx::query_scalar("PRAGMA page_count").fetch_one(&store.pool).await.unwrap();
        store.pool.close().await;
        SqliteStore::open_with(dir, |options| options.pragma("max_page_count", (pages + spare).to_string()))
            .await
            .unwrap()
    }

    /// A connection of its own to the same database, as another process would have, that
    /// waits for the write lock 1 s at most.
    async fn outsider(dir: &Path) -> SqliteConnection {
        SqliteConnectOptions::new()
            .filename(dir.join("agentd.db"))
            .busy_timeout(Duration::from_secs(1))
            .connect()
            .await
            .unwrap()
    }

    /// Waits until no connection of the pool is checked out (released ones have gone back
    /// to the pool or been closed).
    async fn settled(pool: &SqlitePool) {
        for _ in 0..10_000 {
            if pool.size() as usize == pool.num_idle() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        panic!("the pool's connections never came back");
    }

    /// An event with `bytes` of text.
    fn event(session: SessionId, seq: u64, change: bool, bytes: usize) -> EventWrite {
        EventWrite {
            event: Event { session_id: session, seq, kind: EventKind::Thought, data: json!({"thought": "x".repeat(bytes)}), created_at: Utc::now() },
            change: change.then(|| SessionChange { status: Some(SessionStatus::Running), ..SessionChange::default() }),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_disk_fails_each_write_cleanly_and_writes_work_again_once_space_returns() {
        let dir = tempfile::tempdir().unwrap();
        let store = capped(dir.path(), 48).await;
        let project = store.ensure_project("p").await.unwrap().id;
        let mut stored = Vec::new();
        let full = loop {
            let s = session(project, 3000);
            match store.insert_session(&s).await {
                Ok(()) => stored.push(s.id),
                Err(error) => break error,
            }
            assert!(stored.len() < 1000, "the cap never bit");
        };
        assert_eq!(full.fault(), Some(StorageFault::Full), "{full}");
        assert!(full.to_string().contains("full"), "{full}");

        // Every kind of write fails the same way while full: a read-then-write transaction
        // (BEGIN IMMEDIATE), events with the session change they carry, plain events.
        let victim = stored[0];
        let patch = SessionPatch { metadata: Some(padding(20_000)), ..SessionPatch::default() };
        let error = store.patch_session(project, victim, &patch, Utc::now()).await.unwrap_err();
        assert_eq!(error.fault(), Some(StorageFault::Full), "{error}");
        let error = store.append_events(&(1..=40).map(|seq| event(victim, seq, seq == 1, 2000)).collect::<Vec<_>>()).await.unwrap_err();
        assert_eq!(error.fault(), Some(StorageFault::Full), "{error}");
        let error = store.append_events(&(1..=40).map(|seq| event(victim, seq, false, 2000)).collect::<Vec<_>>()).await.unwrap_err();
        assert_eq!(error.fault(), Some(StorageFault::Full), "{error}");
        // None of it was written.
        assert_eq!(store.get_session(project, victim).await.unwrap().unwrap().metadata, padding(3000));
        assert!(store.events_after(victim, 0, 100).await.unwrap().is_empty());

        // Space returns.
        for id in stored.split_off(1) {
            assert!(store.delete_session(project, id).await.unwrap());
        }
        assert_eq!(store.write_health().await, WriteHealth::Writable);

        // Every pooled connection writes, and what it writes is committed: another
        // connection sees it, and the write lock is free for it.
        let mut outside = outsider(dir.path()).await;
        for round in 0..4 {
            let mut writers = JoinSet::new();
            for _ in 0..8 {
                let store = store.clone();
                writers.spawn(async move {
                    let s = session(project, 100);
                    store.insert_session(&s).await.unwrap();
                    let patch = SessionPatch { name: Some(Some("patched".into())), ..SessionPatch::default() };
                    store.patch_session(project, s.id, &patch, Utc::now()).await.unwrap().unwrap();
                    store.append_events(&[event(s.id, 1, true, 10), event(s.id, 2, false, 10)]).await.unwrap();
                    store.append_events(&[event(s.id, 3, false, 10)]).await.unwrap();
                    s.id
                });
            }
            for id in writers.join_all().await {
                let row: (Option<String>, String, i64) = sqlx::query_as(
                    "SELECT name, status, (SELECT COUNT(*) FROM events WHERE session_id = sessions.id) FROM sessions WHERE id = $1",
                )
                .bind(id.to_string())
                .fetch_one(&mut outside)
                .await
                .unwrap();
                assert_eq!(row, (Some("patched".to_owned()), "running".to_owned(), 3), "round {round}");
            }
            sqlx::query("UPDATE store_probe SET probed_at = probed_at + 1").execute(&mut outside).await.unwrap();
        }
        sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&store.pool).await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_connection_whose_transaction_ended_behind_sqlx_is_closed_not_reused() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).await.unwrap();
        {
            let mut tx = store.pool.begin().await.unwrap();
            // What SQLITE_FULL or an I/O error can do: SQLite ends the transaction on its
            // own, and sqlx still counts it open; the ROLLBACK queued at drop then fails.
            sqlx::query("ROLLBACK").execute(&mut *tx).await.unwrap();
        }
        settled(&store.pool).await;
        let mut held = Vec::new();
        for _ in 0..8 {
            let conn = store.pool.acquire().await.unwrap();
            assert!(!conn.is_in_transaction(), "a connection left inside a transaction was handed out");
            held.push(conn);
        }
        drop(held);
        settled(&store.pool).await;
        // BEGIN IMMEDIATE is refused on a connection sqlx believes is in a transaction.
        for _ in 0..8 {
            let tx = store.write_transaction().await.unwrap();
            tx.commit().await.unwrap();
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_transaction_dropped_on_an_early_return_keeps_its_connection() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).await.unwrap();
        let project = store.ensure_project("p").await.unwrap().id;
        settled(&store.pool).await;
        let size = store.pool.size();
        // A patch of an unknown session returns from inside its transaction.
        let patch = SessionPatch { name: Some(None), ..SessionPatch::default() };
        assert!(store.patch_session(project, SessionId::new(), &patch, Utc::now()).await.unwrap().is_none());
        settled(&store.pool).await;
        assert_eq!(store.pool.size(), size, "rolled back cleanly: the connection stays");
        let conn = store.pool.acquire().await.unwrap();
        assert!(!conn.is_in_transaction());
    }
}
