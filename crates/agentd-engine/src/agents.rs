//! Agents: named, versioned definitions (see `agentd_domain::AgentDef`). The engine keeps
//! the version rules: one editable draft at most, one published at most, publishing
//! archives the one before; a session resolves the version it asks for (the published one
//! by default, the draft by name, or a number) and copies it, so it stays pinned to it.

use agentd_domain::{AgentDef, AgentId, AgentSpec, AgentVersion, FieldError, ProjectId, VersionChoice, VersionState};

use crate::engine::{Engine, EngineError};

impl Engine {
    /// Creates an agent with version 1 — a draft, or published when `publish`.
    pub async fn create_agent(
        &self,
        project: ProjectId,
        name: String,
        description: Option<String>,
        spec: AgentSpec,
        publish: bool,
    ) -> Result<(AgentDef, AgentVersion), EngineError> {
        let now = self.inner.clock.wall();
        let mut agent = AgentDef { id: AgentId::new(), resource_number: 0, project_id: project, name, description, created_at: now, updated_at: now };
        let (state, published_at) = if publish { (VersionState::Published, Some(now)) } else { (VersionState::Draft, None) };
        let first = AgentVersion { agent_id: agent.id, number: 1, state, spec, created_at: now, published_at };
        agent.resource_number = self.inner.store.insert_agent(&agent, &first).await?;
        Ok((agent, first))
    }

    /// One agent.
    pub async fn get_agent(&self, project: ProjectId, id: AgentId) -> Result<AgentDef, EngineError> {
        self.inner.store.get_agent(project, id).await?.ok_or(EngineError::NotFound)
    }

    /// The project's agents, newest first.
    pub async fn list_agents(&self, project: ProjectId) -> Result<Vec<AgentDef>, EngineError> {
        Ok(self.inner.store.list_agents(project).await?)
    }

    /// Renames an agent or changes its description.
    pub async fn update_agent(
        &self,
        project: ProjectId,
        id: AgentId,
        name: Option<&str>,
        description: Option<Option<&str>>,
    ) -> Result<AgentDef, EngineError> {
        if !self.inner.store.update_agent(project, id, name, description, self.inner.clock.wall()).await? {
            return Err(EngineError::NotFound);
        }
        self.get_agent(project, id).await
    }

    /// Deletes an agent (sessions keep the version they were pinned to).
    pub async fn delete_agent(&self, project: ProjectId, id: AgentId) -> Result<(), EngineError> {
        if self.inner.store.delete_agent(project, id).await? { Ok(()) } else { Err(EngineError::NotFound) }
    }

    /// An agent's versions, oldest first.
    pub async fn agent_versions(&self, project: ProjectId, id: AgentId) -> Result<Vec<AgentVersion>, EngineError> {
        self.get_agent(project, id).await?;
        Ok(self.inner.store.agent_versions(id).await?)
    }

    /// Sets the agent's draft: edits it, or makes one as the next version.
    pub async fn put_agent_draft(&self, project: ProjectId, id: AgentId, spec: AgentSpec) -> Result<AgentVersion, EngineError> {
        self.get_agent(project, id).await?;
        Ok(self.inner.store.put_agent_draft(id, &spec, self.inner.clock.wall()).await?)
    }

    /// Publishes the agent's draft; the version published before is archived.
    pub async fn publish_agent(&self, project: ProjectId, id: AgentId) -> Result<AgentVersion, EngineError> {
        self.get_agent(project, id).await?;
        self.inner
            .store
            .publish_agent_draft(id, self.inner.clock.wall())
            .await?
            .ok_or_else(|| EngineError::Conflict("the agent has no draft to publish: make one first (PUT /v1/agents/{id}/draft)".into()))
    }

    /// The version a session asks for, or why there is none (naming the field at fault).
    pub async fn resolve_agent_version(&self, project: ProjectId, id: AgentId, choice: VersionChoice) -> Result<AgentVersion, EngineError> {
        match self.get_agent(project, id).await {
            Ok(_) => {}
            Err(EngineError::NotFound) => return Err(FieldError::new("agent_id", format!("no agent {id}")).into()),
            Err(other) => return Err(other),
        }
        let versions = self.inner.store.agent_versions(id).await?;
        let found = match choice {
            VersionChoice::Published => versions.into_iter().find(|v| v.state == VersionState::Published),
            VersionChoice::Draft => versions.into_iter().find(|v| v.state == VersionState::Draft),
            VersionChoice::Number(n) => versions.into_iter().find(|v| v.number == n),
            VersionChoice::LatestArchived => versions.into_iter().rev().find(|v| v.state == VersionState::Archived),
        };
        found.ok_or_else(|| {
            let why = match choice {
                VersionChoice::Published => "the agent has no published version: publish its draft, or ask for version_state DRAFT".to_owned(),
                VersionChoice::Draft => "the agent has no draft".to_owned(),
                VersionChoice::Number(n) => format!("the agent has no version {n}"),
                VersionChoice::LatestArchived => "the agent has no archived version".to_owned(),
            };
            FieldError::new("agent_version", why).into()
        })
    }
}
