//! Tools and their versions in SQLite.

use agentd_domain::{ProjectId, ResourceKind, ToolDef, ToolId, ToolSpec, ToolVersion};
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::resources::assign_number;
use super::versions::{Stored, TOOL_VERSIONS};
use super::{SqliteStore, from_ms, ms, uuid};
use crate::{StoreError, StoreResult};

const SELECT_TOOLS: &str = "SELECT t.*, r.number AS resource_number FROM tools t JOIN resource_numbers r ON r.resource_id = t.id";

fn tool_from_row(row: &SqliteRow) -> StoreResult<ToolDef> {
    Ok(ToolDef {
        id: ToolId::from_uuid(uuid("id", row.try_get("id")?)?),
        resource_number: row.try_get::<i64, _>("resource_number")? as u64,
        project_id: ProjectId::from_uuid(uuid("project_id", row.try_get("project_id")?)?),
        name: row.try_get("name")?,
        created_at: from_ms(row.try_get("created_at")?)?,
        updated_at: from_ms(row.try_get("updated_at")?)?,
    })
}

fn version(v: Stored<ToolSpec>) -> ToolVersion {
    ToolVersion {
        tool_id: ToolId::from_uuid(v.owner),
        number: v.number,
        state: v.state,
        spec: v.spec,
        created_at: v.created_at,
        published_at: v.published_at,
    }
}

fn name_taken(error: sqlx::Error, name: &str) -> StoreError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(format!("a tool named `{name}` already exists")),
        _ => error.into(),
    }
}

impl SqliteStore {
    /// Stores the tool and its first version; returns its resource number.
    pub(super) async fn insert_tool_row(&self, tool: &ToolDef, first: &ToolVersion) -> StoreResult<u64> {
        let mut tx = self.write_transaction().await?;
        sqlx::query("INSERT INTO tools (id, project_id, name, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(tool.id.to_string())
            .bind(tool.project_id.to_string())
            .bind(&tool.name)
            .bind(ms(tool.created_at))
            .bind(ms(tool.updated_at))
            .execute(&mut *tx)
            .await
            .map_err(|e| name_taken(e, &tool.name))?;
        let number = assign_number(&mut tx, tool.project_id, ResourceKind::Tool, tool.id.as_uuid()).await?;
        let first = Stored {
            owner: tool.id.as_uuid(),
            number: first.number,
            state: first.state,
            spec: &first.spec,
            created_at: first.created_at,
            published_at: first.published_at,
        };
        TOOL_VERSIONS.insert(&mut tx, &first).await?;
        tx.commit().await?;
        Ok(number)
    }

    pub(super) async fn tool(&self, project: ProjectId, id: ToolId) -> StoreResult<Option<ToolDef>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT_TOOLS} WHERE t.project_id = $1 AND t.id = $2")))
            .bind(project.to_string())
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(tool_from_row).transpose()
    }

    pub(super) async fn tool_named(&self, project: ProjectId, name: &str) -> StoreResult<Option<ToolDef>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT_TOOLS} WHERE t.project_id = $1 AND t.name = $2")))
            .bind(project.to_string())
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(tool_from_row).transpose()
    }

    pub(super) async fn tools(&self, project: ProjectId) -> StoreResult<Vec<ToolDef>> {
        sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT_TOOLS} WHERE t.project_id = $1 ORDER BY t.created_at DESC, t.id DESC")))
            .bind(project.to_string())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(tool_from_row)
            .collect()
    }

    pub(super) async fn rename_tool_row(&self, project: ProjectId, id: ToolId, name: &str, at: DateTime<Utc>) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE tools SET name = $1, updated_at = $2 WHERE project_id = $3 AND id = $4")
            .bind(name)
            .bind(ms(at))
            .bind(project.to_string())
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(|e| name_taken(e, name))?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn remove_tool(&self, project: ProjectId, id: ToolId) -> StoreResult<bool> {
        self.remove_resource("tools", project, id.as_uuid()).await
    }

    pub(super) async fn tool_version_list(&self, tool: ToolId) -> StoreResult<Vec<ToolVersion>> {
        Ok(TOOL_VERSIONS.list(self, tool.as_uuid()).await?.into_iter().map(version).collect())
    }

    pub(super) async fn put_tool_draft_row(&self, tool: ToolId, spec: &ToolSpec, at: DateTime<Utc>) -> StoreResult<ToolVersion> {
        TOOL_VERSIONS.put_draft(self, tool.as_uuid(), spec, at).await.map(version)
    }

    pub(super) async fn publish_tool_row(&self, tool: ToolId, at: DateTime<Utc>) -> StoreResult<Option<ToolVersion>> {
        Ok(TOOL_VERSIONS.publish(self, tool.as_uuid(), at).await?.map(version))
    }
}
