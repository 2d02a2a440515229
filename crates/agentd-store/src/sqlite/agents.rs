//! Agents and their versions in SQLite.

use agentd_domain::{AgentDef, AgentId, AgentSpec, AgentVersion, ProjectId, VersionState};
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::{SqliteStore, from_json, from_ms, json, ms, opt_from_ms, uuid};
use crate::{StoreError, StoreResult};

fn agent_from_row(row: &SqliteRow) -> StoreResult<AgentDef> {
    Ok(AgentDef {
        id: AgentId::from_uuid(uuid("id", row.try_get("id")?)?),
        project_id: ProjectId::from_uuid(uuid("project_id", row.try_get("project_id")?)?),
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        created_at: from_ms(row.try_get("created_at")?)?,
        updated_at: from_ms(row.try_get("updated_at")?)?,
    })
}

fn version_from_row(row: &SqliteRow) -> StoreResult<AgentVersion> {
    let state: &str = row.try_get("state")?;
    Ok(AgentVersion {
        agent_id: AgentId::from_uuid(uuid("agent_id", row.try_get("agent_id")?)?),
        number: row.try_get::<i64, _>("number")? as u32,
        state: VersionState::parse(state).ok_or_else(|| StoreError::Corrupt(format!("state: `{state}`")))?,
        spec: from_json::<AgentSpec>("spec", row.try_get("spec")?)?,
        created_at: from_ms(row.try_get("created_at")?)?,
        published_at: opt_from_ms(row.try_get("published_at")?)?,
    })
}

impl SqliteStore {
    pub(super) async fn insert_agent_row(&self, agent: &AgentDef, first: &AgentVersion) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO agents (id, project_id, name, description, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(agent.id.to_string())
            .bind(agent.project_id.to_string())
            .bind(&agent.name)
            .bind(&agent.description)
            .bind(ms(agent.created_at))
            .bind(ms(agent.updated_at))
            .execute(&mut *tx)
            .await?;
        insert_version(&mut tx, first).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn agent(&self, project: ProjectId, id: AgentId) -> StoreResult<Option<AgentDef>> {
        let row = sqlx::query("SELECT * FROM agents WHERE project_id = $1 AND id = $2")
            .bind(project.to_string())
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(agent_from_row).transpose()
    }

    pub(super) async fn agents(&self, project: ProjectId) -> StoreResult<Vec<AgentDef>> {
        sqlx::query("SELECT * FROM agents WHERE project_id = $1 ORDER BY created_at DESC, id DESC")
            .bind(project.to_string())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(agent_from_row)
            .collect()
    }

    pub(super) async fn rename_agent(
        &self,
        project: ProjectId,
        id: AgentId,
        name: Option<&str>,
        description: Option<Option<&str>>,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE agents SET name = COALESCE($1, name), description = CASE WHEN $2 THEN $3 ELSE description END, updated_at = $4 \
             WHERE project_id = $5 AND id = $6",
        )
        .bind(name)
        .bind(description.is_some())
        .bind(description.flatten())
        .bind(ms(at))
        .bind(project.to_string())
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn remove_agent(&self, project: ProjectId, id: AgentId) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM agents WHERE project_id = $1 AND id = $2")
            .bind(project.to_string())
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn versions(&self, agent: AgentId) -> StoreResult<Vec<AgentVersion>> {
        sqlx::query("SELECT * FROM agent_versions WHERE agent_id = $1 ORDER BY number")
            .bind(agent.to_string())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(version_from_row)
            .collect()
    }

    pub(super) async fn put_draft(&self, agent: AgentId, spec: &AgentSpec, at: DateTime<Utc>) -> StoreResult<AgentVersion> {
        let mut tx = self.write_transaction().await?;
        let draft: Option<i64> = sqlx::query_scalar("SELECT number FROM agent_versions WHERE agent_id = $1 AND state = 'DRAFT'")
            .bind(agent.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        let number = match draft {
            Some(number) => {
                sqlx::query("UPDATE agent_versions SET spec = $1 WHERE agent_id = $2 AND number = $3")
                    .bind(json(spec))
                    .bind(agent.to_string())
                    .bind(number)
                    .execute(&mut *tx)
                    .await?;
                number
            }
            None => {
                let next: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(number), 0) + 1 FROM agent_versions WHERE agent_id = $1")
                    .bind(agent.to_string())
                    .fetch_one(&mut *tx)
                    .await?;
                let version = AgentVersion { agent_id: agent, number: next as u32, state: VersionState::Draft, spec: spec.clone(), created_at: at, published_at: None };
                insert_version(&mut tx, &version).await?;
                next
            }
        };
        touch_agent(&mut tx, agent, at).await?;
        let row = sqlx::query("SELECT * FROM agent_versions WHERE agent_id = $1 AND number = $2")
            .bind(agent.to_string())
            .bind(number)
            .fetch_one(&mut *tx)
            .await?;
        let version = version_from_row(&row)?;
        tx.commit().await?;
        Ok(version)
    }

    pub(super) async fn publish(&self, agent: AgentId, at: DateTime<Utc>) -> StoreResult<Option<AgentVersion>> {
        let mut tx = self.write_transaction().await?;
        let draft: Option<i64> = sqlx::query_scalar("SELECT number FROM agent_versions WHERE agent_id = $1 AND state = 'DRAFT'")
            .bind(agent.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(number) = draft else { return Ok(None) };
        sqlx::query("UPDATE agent_versions SET state = 'ARCHIVED' WHERE agent_id = $1 AND state = 'PUBLISHED'")
            .bind(agent.to_string())
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE agent_versions SET state = 'PUBLISHED', published_at = $1 WHERE agent_id = $2 AND number = $3")
            .bind(ms(at))
            .bind(agent.to_string())
            .bind(number)
            .execute(&mut *tx)
            .await?;
        touch_agent(&mut tx, agent, at).await?;
        let row = sqlx::query("SELECT * FROM agent_versions WHERE agent_id = $1 AND number = $2")
            .bind(agent.to_string())
            .bind(number)
            .fetch_one(&mut *tx)
            .await?;
        let version = version_from_row(&row)?;
        tx.commit().await?;
        Ok(Some(version))
    }
}

async fn insert_version(tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>, v: &AgentVersion) -> StoreResult<()> {
    sqlx::query("INSERT INTO agent_versions (agent_id, number, state, spec, created_at, published_at) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(v.agent_id.to_string())
        .bind(i64::from(v.number))
        .bind(v.state.as_str())
        .bind(json(&v.spec))
        .bind(ms(v.created_at))
        .bind(v.published_at.map(ms))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn touch_agent(tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>, agent: AgentId, at: DateTime<Utc>) -> StoreResult<()> {
    sqlx::query("UPDATE agents SET updated_at = $1 WHERE id = $2").bind(ms(at)).bind(agent.to_string()).execute(&mut **tx).await?;
    Ok(())
}
