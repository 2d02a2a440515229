//! Agents and their versions in SQLite.

use agentd_domain::{AgentDef, AgentId, AgentSpec, AgentVersion, ProjectId, ResourceKind};
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::resources::assign_number;
use super::versions::{AGENT_VERSIONS, Stored};
use super::{SqliteStore, from_ms, ms, uuid};
use crate::StoreResult;

const SELECT_AGENTS: &str = "SELECT a.*, r.number AS resource_number FROM agents a JOIN resource_numbers r ON r.resource_id = a.id";

fn agent_from_row(row: &SqliteRow) -> StoreResult<AgentDef> {
    Ok(AgentDef {
        id: AgentId::from_uuid(uuid("id", row.try_get("id")?)?),
        resource_number: row.try_get::<i64, _>("resource_number")? as u64,
        project_id: ProjectId::from_uuid(uuid("project_id", row.try_get("project_id")?)?),
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        created_at: from_ms(row.try_get("created_at")?)?,
        updated_at: from_ms(row.try_get("updated_at")?)?,
    })
}

fn version(v: Stored<AgentSpec>) -> AgentVersion {
    AgentVersion {
        agent_id: AgentId::from_uuid(v.owner),
        number: v.number,
        state: v.state,
        spec: v.spec,
        created_at: v.created_at,
        published_at: v.published_at,
    }
}

impl SqliteStore {
    /// Stores the agent and its first version; returns its resource number.
    pub(super) async fn insert_agent_row(&self, agent: &AgentDef, first: &AgentVersion) -> StoreResult<u64> {
        let mut tx = self.write_transaction().await?;
        sqlx::query("INSERT INTO agents (id, project_id, name, description, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(agent.id.to_string())
            .bind(agent.project_id.to_string())
            .bind(&agent.name)
            .bind(&agent.description)
            .bind(ms(agent.created_at))
            .bind(ms(agent.updated_at))
            .execute(&mut *tx)
            .await?;
        let number = assign_number(&mut tx, agent.project_id, ResourceKind::Agent, agent.id.as_uuid()).await?;
        let first = Stored {
            owner: agent.id.as_uuid(),
            number: first.number,
            state: first.state,
            spec: &first.spec,
            created_at: first.created_at,
            published_at: first.published_at,
        };
        AGENT_VERSIONS.insert(&mut tx, &first).await?;
        tx.commit().await?;
        Ok(number)
    }

    pub(super) async fn agent(&self, project: ProjectId, id: AgentId) -> StoreResult<Option<AgentDef>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT_AGENTS} WHERE a.project_id = $1 AND a.id = $2")))
            .bind(project.to_string())
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(agent_from_row).transpose()
    }

    pub(super) async fn agents(&self, project: ProjectId) -> StoreResult<Vec<AgentDef>> {
        sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT_AGENTS} WHERE a.project_id = $1 ORDER BY a.created_at DESC, a.id DESC")))
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
        self.remove_resource("agents", project, id.as_uuid()).await
    }

    pub(super) async fn versions(&self, agent: AgentId) -> StoreResult<Vec<AgentVersion>> {
        Ok(AGENT_VERSIONS.list(self, agent.as_uuid()).await?.into_iter().map(version).collect())
    }

    pub(super) async fn put_draft(&self, agent: AgentId, spec: &AgentSpec, at: DateTime<Utc>) -> StoreResult<AgentVersion> {
        AGENT_VERSIONS.put_draft(self, agent.as_uuid(), spec, at).await.map(version)
    }

    pub(super) async fn publish(&self, agent: AgentId, at: DateTime<Utc>) -> StoreResult<Option<AgentVersion>> {
        Ok(AGENT_VERSIONS.publish(self, agent.as_uuid(), at).await?.map(version))
    }
}
