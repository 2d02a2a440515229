//! Numbered versions, shared by agents and tools: one table per owner kind with the same
//! columns (`<owner>`, number, state, spec as JSON, created_at, published_at) and the same
//! rules — at most one DRAFT (edited in place), at most one PUBLISHED; publishing the draft
//! archives the version published before, in one write transaction.

use agentd_domain::VersionState;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::sqlite::SqliteRow;
use sqlx::{AssertSqlSafe, Row, Sqlite, Transaction};
use uuid::Uuid;

use super::{SqliteStore, from_json, from_ms, json, ms, opt_from_ms, uuid};
use crate::{StoreError, StoreResult};

/// Where one kind's versions live.
pub(super) struct VersionTable {
    /// The versions table.
    pub table: &'static str,
    /// Its column naming the owner.
    pub owner: &'static str,
    /// The owners' table (its `updated_at` is touched on every change).
    pub parent: &'static str,
}

pub(super) const AGENT_VERSIONS: VersionTable = VersionTable { table: "agent_versions", owner: "agent_id", parent: "agents" };
pub(super) const TOOL_VERSIONS: VersionTable = VersionTable { table: "tool_versions", owner: "tool_id", parent: "tools" };

/// One stored version, its spec still generic.
pub(super) struct Stored<S> {
    pub owner: Uuid,
    pub number: u32,
    pub state: VersionState,
    pub spec: S,
    pub created_at: DateTime<Utc>,
    pub published_at: Option<DateTime<Utc>>,
}

impl VersionTable {
    fn read<S: DeserializeOwned>(&self, row: &SqliteRow) -> StoreResult<Stored<S>> {
        let state: &str = row.try_get("state")?;
        Ok(Stored {
            owner: uuid(self.owner, row.try_get(self.owner)?)?,
            number: row.try_get::<i64, _>("number")? as u32,
            state: VersionState::parse(state).ok_or_else(|| StoreError::Corrupt(format!("state: `{state}`")))?,
            spec: from_json("spec", row.try_get("spec")?)?,
            created_at: from_ms(row.try_get("created_at")?)?,
            published_at: opt_from_ms(row.try_get("published_at")?)?,
        })
    }

    /// Inserts a version (within the caller's transaction).
    pub async fn insert<S: Serialize>(&self, tx: &mut Transaction<'_, Sqlite>, v: &Stored<S>) -> StoreResult<()> {
        let sql = format!(
            "INSERT INTO {} ({}, number, state, spec, created_at, published_at) VALUES ($1, $2, $3, $4, $5, $6)",
            self.table, self.owner
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(v.owner.to_string())
            .bind(i64::from(v.number))
            .bind(v.state.as_str())
            .bind(json(&v.spec))
            .bind(ms(v.created_at))
            .bind(v.published_at.map(ms))
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// The owner's versions, oldest first.
    pub async fn list<S: DeserializeOwned>(&self, store: &SqliteStore, owner: Uuid) -> StoreResult<Vec<Stored<S>>> {
        let sql = format!("SELECT * FROM {} WHERE {} = $1 ORDER BY number", self.table, self.owner);
        sqlx::query(AssertSqlSafe(sql))
            .bind(owner.to_string())
            .fetch_all(&store.pool)
            .await?
            .iter()
            .map(|row| self.read(row))
            .collect()
    }

    async fn numbered_in_state(&self, tx: &mut Transaction<'_, Sqlite>, owner: Uuid, state: VersionState) -> StoreResult<Option<i64>> {
        let sql = format!("SELECT number FROM {} WHERE {} = $1 AND state = $2", self.table, self.owner);
        Ok(sqlx::query_scalar(AssertSqlSafe(sql)).bind(owner.to_string()).bind(state.as_str()).fetch_optional(&mut **tx).await?)
    }

    async fn fetch<S: DeserializeOwned>(&self, tx: &mut Transaction<'_, Sqlite>, owner: Uuid, number: i64) -> StoreResult<Stored<S>> {
        let sql = format!("SELECT * FROM {} WHERE {} = $1 AND number = $2", self.table, self.owner);
        let row = sqlx::query(AssertSqlSafe(sql)).bind(owner.to_string()).bind(number).fetch_one(&mut **tx).await?;
        self.read(&row)
    }

    async fn touch(&self, tx: &mut Transaction<'_, Sqlite>, owner: Uuid, at: DateTime<Utc>) -> StoreResult<()> {
        let sql = format!("UPDATE {} SET updated_at = $1 WHERE id = $2", self.parent);
        sqlx::query(AssertSqlSafe(sql)).bind(ms(at)).bind(owner.to_string()).execute(&mut **tx).await?;
        Ok(())
    }

    /// Sets the owner's draft: edits it, or makes one as the next number.
    pub async fn put_draft<S: Serialize + DeserializeOwned>(
        &self,
        store: &SqliteStore,
        owner: Uuid,
        spec: &S,
        at: DateTime<Utc>,
    ) -> StoreResult<Stored<S>> {
        let mut tx = store.write_transaction().await?;
        let number = match self.numbered_in_state(&mut tx, owner, VersionState::Draft).await? {
            Some(number) => {
                let sql = format!("UPDATE {} SET spec = $1 WHERE {} = $2 AND number = $3", self.table, self.owner);
                sqlx::query(AssertSqlSafe(sql)).bind(json(spec)).bind(owner.to_string()).bind(number).execute(&mut *tx).await?;
                number
            }
            None => {
                let sql = format!("SELECT COALESCE(MAX(number), 0) + 1 FROM {} WHERE {} = $1", self.table, self.owner);
                let next: i64 = sqlx::query_scalar(AssertSqlSafe(sql)).bind(owner.to_string()).fetch_one(&mut *tx).await?;
                let draft = Stored { owner, number: next as u32, state: VersionState::Draft, spec, created_at: at, published_at: None };
                self.insert(&mut tx, &draft).await?;
                next
            }
        };
        self.touch(&mut tx, owner, at).await?;
        let version = self.fetch(&mut tx, owner, number).await?;
        tx.commit().await?;
        Ok(version)
    }

    /// Publishes the owner's draft and archives the version published before; None when
    /// there is no draft.
    pub async fn publish<S: DeserializeOwned>(&self, store: &SqliteStore, owner: Uuid, at: DateTime<Utc>) -> StoreResult<Option<Stored<S>>> {
        let mut tx = store.write_transaction().await?;
        let Some(number) = self.numbered_in_state(&mut tx, owner, VersionState::Draft).await? else { return Ok(None) };
        let archive = format!("UPDATE {} SET state = 'ARCHIVED' WHERE {} = $1 AND state = 'PUBLISHED'", self.table, self.owner);
        sqlx::query(AssertSqlSafe(archive)).bind(owner.to_string()).execute(&mut *tx).await?;
        let publish = format!("UPDATE {} SET state = 'PUBLISHED', published_at = $1 WHERE {} = $2 AND number = $3", self.table, self.owner);
        sqlx::query(AssertSqlSafe(publish)).bind(ms(at)).bind(owner.to_string()).bind(number).execute(&mut *tx).await?;
        self.touch(&mut tx, owner, at).await?;
        let version = self.fetch(&mut tx, owner, number).await?;
        tx.commit().await?;
        Ok(Some(version))
    }
}
