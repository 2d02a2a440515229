//! Tools: named, versioned user-defined tools (see `agentd_domain::ToolDef`) and their
//! execution. The engine keeps the version rules (as for agents), seals private variables
//! before they are stored and opens them only for the execution that needs them, and runs
//! tools through one [`ToolRunner`] (the egress policy and limits). Environment variables
//! exist only for the call that brings them.
//!
//! Variables of one execution: the version's own (plain and private), which nothing a caller
//! sends can replace, then the caller's `private_variables` and `environment_variables` (both
//! masked, neither stored; environment ones win between the two) for the names the version
//! does not set (see `agentd_tools::Variables` for how templates look names up and why).
//! Every output, error and debug line is masked with every private value in play.

use std::collections::BTreeMap;
use std::time::Instant;

use agentd_domain::{FieldError, ProjectId, SealedVariables, ToolDef, ToolId, ToolSpec, ToolVersion, VersionChoice, VersionState};
use agentd_store::{SharedStore, StoreError};
use agentd_tools::{DebugSink, McpToolInfo, ToolError, ToolKind, ToolOutput, ToolRunner, Variables};
use serde_json::Value;

use crate::engine::{Engine, EngineError};
use crate::sealing::SealingKey;

/// How tools run: the runner (egress policy and limits) and the key that seals private
/// variables at rest.
#[derive(Debug, Clone)]
pub struct ToolSettings {
    /// Executes tools.
    pub runner: ToolRunner,
    /// Seals private variables.
    pub sealing: SealingKey,
}

impl Default for ToolSettings {
    /// The default egress policy and limits, and a fresh key (sealed values do not outlive
    /// the process: servers pass the key kept in their data dir).
    fn default() -> Self {
        let runner = ToolRunner::new(agentd_egress::EgressPolicy::default(), agentd_tools::ToolLimits::default())
            .expect("the default HTTP client builds");
        Self { runner, sealing: SealingKey::random() }
    }
}

/// A tool version as a caller gives it: private values in the clear (sealed here).
#[derive(Clone)]
pub struct ToolDraft {
    /// What the tool does, for a model.
    pub description: String,
    /// The tool.
    pub kind: ToolKind,
    /// Plain variables.
    pub variables: BTreeMap<String, String>,
    /// Private variables; None keeps the latest version's.
    pub private_variables: Option<BTreeMap<String, String>>,
}

impl std::fmt::Debug for ToolDraft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolDraft")
            .field("description", &self.description)
            .field("kind", &self.kind)
            .field("variables", &self.variables)
            .field("private_variables", &self.private_variables.as_ref().map(|p| p.keys().collect::<Vec<_>>()))
            .finish()
    }
}

/// One execution's inputs beside the tool.
#[derive(Clone, Default)]
pub struct ToolCall {
    /// The arguments (a JSON object, checked against the tool's parameters).
    pub arguments: Value,
    /// The MCP server's tool to call (MCP tools only).
    pub mcp_tool: Option<String>,
    /// Secret values for this call (masked; never stored; for names the version does not set).
    pub private_variables: BTreeMap<String, String>,
    /// Environment values for this call (masked; never stored; for names the version does not
    /// set; over `private_variables`).
    pub environment_variables: BTreeMap<String, String>,
}

impl std::fmt::Debug for ToolCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolCall")
            .field("arguments", &self.arguments)
            .field("mcp_tool", &self.mcp_tool)
            .field("private_variables", &self.private_variables.keys().collect::<Vec<_>>())
            .field("environment_variables", &self.environment_variables.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// What one execution did.
#[derive(Debug)]
pub struct ToolExecution {
    /// The tool.
    pub tool: ToolDef,
    /// The version that ran.
    pub version: u32,
    /// The tool's output, or why it failed (masked).
    pub outcome: Result<ToolOutput, ToolError>,
    /// How long it took, in milliseconds.
    pub elapsed_ms: u64,
}

/// What sessions and the API use to run tools: shared by the engine and every session.
#[derive(Clone)]
pub(crate) struct ToolBox {
    pub store: SharedStore,
    pub settings: ToolSettings,
    /// Tables, for the built-in table tools.
    pub tables: crate::tables::Tables,
}

impl ToolBox {
    fn seal(&self, owner: &ToolDef, values: &BTreeMap<String, String>) -> SealedVariables {
        SealedVariables { names: values.keys().cloned().collect(), sealed: self.settings.sealing.seal(&sealed_for(owner), values) }
    }

    fn spec(&self, owner: &ToolDef, draft: ToolDraft, base: Option<&ToolSpec>) -> ToolSpec {
        let private_variables = match (&draft.private_variables, base) {
            (Some(values), _) => self.seal(owner, values),
            (None, Some(base)) => base.private_variables.clone(),
            (None, None) => SealedVariables::default(),
        };
        ToolSpec {
            description: draft.description,
            definition: serde_json::to_value(&draft.kind).expect("tool definitions serialise"),
            variables: draft.variables,
            private_variables,
        }
    }

    /// The stored definition, read back.
    pub fn kind(spec: &ToolSpec) -> Result<ToolKind, EngineError> {
        serde_json::from_value(spec.definition.clone())
            .map_err(|e| EngineError::Store(StoreError::Corrupt(format!("tool definition: {e}"))))
    }

    /// The variables of one execution of `tool`'s version `spec` (private ones opened).
    pub fn variables(&self, tool: &ToolDef, spec: &ToolSpec, call: &ToolCall) -> Result<Variables, EngineError> {
        let private = self
            .settings
            .sealing
            .open(&sealed_for(tool), spec.private_variables.sealed.as_deref())
            .map_err(|e| EngineError::Conflict(e.to_string()))?;
        let mut environment = call.private_variables.clone();
        environment.extend(call.environment_variables.clone());
        Ok(Variables { variables: spec.variables.clone(), private_variables: private, environment_variables: environment })
    }

    /// Runs `version` of `tool` with `call`, reporting debug lines to `debug`.
    pub async fn execute(&self, tool: ToolDef, version: &ToolVersion, call: &ToolCall, debug: &DebugSink) -> Result<ToolExecution, EngineError> {
        let kind = Self::kind(&version.spec)?;
        let definition = kind.definition(call.mcp_tool.as_deref()).map_err(|why| FieldError::new("mcp_tool", why))?;
        let variables = self.variables(&tool, &version.spec, call)?;
        let started = Instant::now();
        let outcome = self.settings.runner.execute(&definition, &call.arguments, &variables, debug).await;
        Ok(ToolExecution { tool, version: version.number, outcome, elapsed_ms: started.elapsed().as_millis() as u64 })
    }

    /// The tools an MCP server version offers.
    pub async fn mcp_tools(&self, tool: &ToolDef, spec: &ToolSpec, call: &ToolCall) -> Result<Result<Vec<McpToolInfo>, ToolError>, EngineError> {
        let ToolKind::Mcp { server } = Self::kind(spec)? else {
            return Err(EngineError::Conflict("an HTTP tool has no MCP tools to list".into()));
        };
        let variables = self.variables(tool, spec, call)?;
        let session = match self.settings.runner.connect_mcp(&server, &variables, &DebugSink::none()).await {
            Ok(session) => session,
            Err(error) => return Ok(Err(error)),
        };
        let listed = session.list_tools().await;
        if let Err(error) = session.shutdown().await {
            tracing::warn!(%error, "tools: MCP server did not stop cleanly");
        }
        Ok(listed)
    }

    /// The project's tool `id` with the version `choice` picks (errors name `field`).
    pub async fn resolve(&self, project: ProjectId, id: ToolId, choice: VersionChoice, field: &str) -> Result<(ToolDef, ToolVersion), EngineError> {
        let tool = self.store.get_tool(project, id).await?.ok_or(EngineError::NotFound)?;
        let versions = self.store.tool_versions(id).await?;
        let version = choice.pick(versions).ok_or_else(|| FieldError::new(field, choice.missing("tool")))?;
        Ok((tool, version))
    }
}

/// What a tool's sealed values are bound to: they open for this tool of this project only.
fn sealed_for(tool: &ToolDef) -> Vec<u8> {
    format!("{}/{}", tool.project_id, tool.id).into_bytes()
}

fn conflict(error: StoreError) -> EngineError {
    match error {
        StoreError::Conflict(why) => EngineError::Conflict(why),
        other => other.into(),
    }
}

impl Engine {
    /// Creates a tool with version 1 — a draft, or published when `publish`.
    pub async fn create_tool(&self, project: ProjectId, name: String, draft: ToolDraft, publish: bool) -> Result<(ToolDef, ToolVersion), EngineError> {
        let now = self.inner.clock.wall();
        let mut tool = ToolDef { id: ToolId::new(), resource_number: 0, project_id: project, name, created_at: now, updated_at: now };
        let (state, published_at) = if publish { (VersionState::Published, Some(now)) } else { (VersionState::Draft, None) };
        let spec = self.inner.tools.spec(&tool, draft, None);
        let first = ToolVersion { tool_id: tool.id, number: 1, state, spec, created_at: now, published_at };
        tool.resource_number = self.inner.store.insert_tool(&tool, &first).await.map_err(conflict)?;
        Ok((tool, first))
    }

    /// One tool.
    pub async fn get_tool(&self, project: ProjectId, id: ToolId) -> Result<ToolDef, EngineError> {
        self.inner.store.get_tool(project, id).await?.ok_or(EngineError::NotFound)
    }

    /// The project's tools, newest first.
    pub async fn list_tools(&self, project: ProjectId) -> Result<Vec<ToolDef>, EngineError> {
        Ok(self.inner.store.list_tools(project).await?)
    }

    /// Renames a tool (agents call it by its name).
    pub async fn rename_tool(&self, project: ProjectId, id: ToolId, name: &str) -> Result<ToolDef, EngineError> {
        if !self.inner.store.rename_tool(project, id, name, self.inner.clock.wall()).await.map_err(conflict)? {
            return Err(EngineError::NotFound);
        }
        self.get_tool(project, id).await
    }

    /// Deletes a tool and its versions.
    pub async fn delete_tool(&self, project: ProjectId, id: ToolId) -> Result<(), EngineError> {
        if self.inner.store.delete_tool(project, id).await? { Ok(()) } else { Err(EngineError::NotFound) }
    }

    /// A tool's versions, oldest first.
    pub async fn tool_versions(&self, project: ProjectId, id: ToolId) -> Result<Vec<ToolVersion>, EngineError> {
        self.get_tool(project, id).await?;
        Ok(self.inner.store.tool_versions(id).await?)
    }

    /// Sets the tool's draft (edits it, or makes one as the next version); private variables
    /// left out keep the latest version's.
    pub async fn put_tool_draft(&self, project: ProjectId, id: ToolId, draft: ToolDraft) -> Result<ToolVersion, EngineError> {
        let tool = self.get_tool(project, id).await?;
        let versions = self.inner.store.tool_versions(id).await?;
        let spec = self.inner.tools.spec(&tool, draft, versions.last().map(|v| &v.spec));
        Ok(self.inner.store.put_tool_draft(id, &spec, self.inner.clock.wall()).await?)
    }

    /// Publishes the tool's draft; the version published before is archived.
    pub async fn publish_tool(&self, project: ProjectId, id: ToolId) -> Result<ToolVersion, EngineError> {
        self.get_tool(project, id).await?;
        self.inner
            .store
            .publish_tool_draft(id, self.inner.clock.wall())
            .await?
            .ok_or_else(|| EngineError::Conflict("the tool has no draft to publish: make one first (PUT /v1/tools/{id}/draft)".into()))
    }

    /// Whether a stdio MCP server may run `command` on this server.
    pub fn stdio_command_allowed(&self, command: &str) -> bool {
        self.inner.tools.settings.runner.limits().stdio_commands.allows(command)
    }

    /// The stored definition of a version.
    pub fn tool_kind(&self, version: &ToolVersion) -> Result<ToolKind, EngineError> {
        ToolBox::kind(&version.spec)
    }

    /// Tool `id` and the version `choice` picks (a missing version is an error on `version`).
    pub async fn resolve_tool(&self, project: ProjectId, id: ToolId, choice: VersionChoice) -> Result<(ToolDef, ToolVersion), EngineError> {
        self.inner.tools.resolve(project, id, choice, "version").await
    }

    /// Executes `version` of `tool` (as [`Engine::resolve_tool`] gave them).
    pub async fn run_tool(&self, tool: ToolDef, version: &ToolVersion, call: &ToolCall, debug: &DebugSink) -> Result<ToolExecution, EngineError> {
        self.inner.tools.execute(tool, version, call, debug).await
    }

    /// Executes the version `choice` picks of tool `id`; debug lines go to `debug` as they come.
    /// A tool that fails is an execution whose outcome is the error; a request that cannot run
    /// (unknown tool or version, an MCP tool name missing) is an `EngineError`.
    pub async fn execute_tool(
        &self,
        project: ProjectId,
        id: ToolId,
        choice: VersionChoice,
        call: &ToolCall,
        debug: &DebugSink,
    ) -> Result<ToolExecution, EngineError> {
        let (tool, version) = self.resolve_tool(project, id, choice).await?;
        self.run_tool(tool, &version, call, debug).await
    }

    /// The tools the MCP server of version `choice` of tool `id` offers (it is started for it).
    pub async fn list_mcp_tools(
        &self,
        project: ProjectId,
        id: ToolId,
        choice: VersionChoice,
        call: &ToolCall,
    ) -> Result<Result<Vec<McpToolInfo>, ToolError>, EngineError> {
        let (tool, version) = self.resolve_tool(project, id, choice).await?;
        self.inner.tools.mcp_tools(&tool, &version.spec, call).await
    }
}
