//! Resource numbers: the small integer every agent, tool and table also has (unique on the server,
//! never reused), by which the Autessa API names them (`resourceId`).

use agentd_domain::{AgentId, ProjectId, ResourceKind, TableId, ToolId};

use crate::engine::{Engine, EngineError};

/// What a resource number names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// An agent.
    Agent(AgentId),
    /// A tool.
    Tool(ToolId),
    /// A table.
    Table(TableId),
}

impl Engine {
    /// The project's resource numbered `number` (NotFound when there is none).
    pub async fn resource(&self, project: ProjectId, number: u64) -> Result<Resource, EngineError> {
        match self.inner.store.resource_by_number(project, number).await? {
            Some((ResourceKind::Agent, id)) => Ok(Resource::Agent(AgentId::from_uuid(id))),
            Some((ResourceKind::Tool, id)) => Ok(Resource::Tool(ToolId::from_uuid(id))),
            Some((ResourceKind::Table, id)) => Ok(Resource::Table(TableId::from_uuid(id))),
            None => Err(EngineError::NotFound),
        }
    }
}
