//! Resource numbers: every agent and tool (and, later, table) also has a small integer,
//! unique on the server and never reused (SQLite AUTOINCREMENT) — the Autessa API's
//! `resourceId`. It is given in the transaction that stores the resource and removed with it.

use agentd_domain::{ProjectId, ResourceKind};
use sqlx::{Row, Sqlite, Transaction};
use uuid::Uuid;

use super::{SqliteStore, uuid};
use crate::{StoreError, StoreResult};

/// Gives a new resource its number (within the caller's transaction).
pub(super) async fn assign_number(
    tx: &mut Transaction<'_, Sqlite>,
    project: ProjectId,
    kind: ResourceKind,
    id: Uuid,
) -> StoreResult<u64> {
    let number: i64 = sqlx::query_scalar("INSERT INTO resource_numbers (project_id, kind, resource_id) VALUES ($1, $2, $3) RETURNING number")
        .bind(project.to_string())
        .bind(kind.as_str())
        .bind(id.to_string())
        .fetch_one(&mut **tx)
        .await?;
    Ok(number as u64)
}

/// Removes a deleted resource's number (within the caller's transaction; never reused).
pub(super) async fn forget_number(tx: &mut Transaction<'_, Sqlite>, project: ProjectId, id: Uuid) -> StoreResult<()> {
    sqlx::query("DELETE FROM resource_numbers WHERE project_id = $1 AND resource_id = $2")
        .bind(project.to_string())
        .bind(id.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

impl SqliteStore {
    /// Deletes a versioned resource (its versions cascade) and its number (never reused).
    pub(super) async fn remove_resource(&self, table: &'static str, project: ProjectId, id: Uuid) -> StoreResult<bool> {
        let mut tx = self.write_transaction().await?;
        let done = sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table} WHERE project_id = $1 AND id = $2")))
            .bind(project.to_string())
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        forget_number(&mut tx, project, id).await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// The resource a number names in the project.
    pub(super) async fn resource_numbered(&self, project: ProjectId, number: u64) -> StoreResult<Option<(ResourceKind, Uuid)>> {
        let row = sqlx::query("SELECT kind, resource_id FROM resource_numbers WHERE project_id = $1 AND number = $2")
            .bind(project.to_string())
            .bind(number as i64)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let kind: &str = row.try_get("kind")?;
        let kind = ResourceKind::parse(kind).ok_or_else(|| StoreError::Corrupt(format!("resource kind `{kind}`")))?;
        Ok(Some((kind, uuid("resource_id", row.try_get("resource_id")?)?)))
    }
}
