//! The user tools a session may call: the project's tools its agent version names (`tools`),
//! at their published version when the session first asks. An HTTP tool is one function; an
//! MCP server is one function per tool it offers, named `<tool>__<mcp tool>`. Calls run
//! through the engine's [`ToolBox`] (egress policy, sealed private variables, masking), so
//! what an agent records of them (results, errors) never holds a private value.

use std::sync::Arc;

use agentd_domain::{BUILT_IN_TOOLS, ToolDef, ToolVersion, VersionChoice};
use agentd_tools::{DebugSink, ToolKind};
use serde_json::{Value, json};

use crate::agent::SessionContext;
use crate::tools::{ToolBox, ToolCall};

/// The longest function name models accept.
const MAX_FUNCTION_NAME: usize = 64;

/// A user tool as a model sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct UserTool {
    /// The function name to call it by.
    pub name: String,
    /// What it does.
    pub description: String,
    /// The JSON schema of its arguments.
    pub parameters: Value,
}

pub(crate) struct Entry {
    function: UserTool,
    tool: ToolDef,
    version: ToolVersion,
    mcp_tool: Option<String>,
}

/// The session's user tools, resolved once.
pub(crate) type Resolved = Arc<Vec<Entry>>;

pub(crate) async fn resolve(ctx: &SessionContext) -> Resolved {
    let Some(names) = ctx.spec().tools.clone() else { return Arc::default() };
    let project = ctx.project_id();
    let toolbox = &ctx.tools;
    let mut entries = Vec::new();
    for name in names.iter().filter(|n| !BUILT_IN_TOOLS.contains(&n.as_str())) {
        let found = match toolbox.store.tool_by_name(project, name).await {
            Ok(Some(tool)) => toolbox.resolve(project, tool.id, VersionChoice::Published, "tools").await.ok(),
            _ => None,
        };
        let Some((tool, version)) = found else {
            skipped(ctx, format!("tool `{name}` is not one of the project's published tools; the agent does without it")).await;
            continue;
        };
        match ToolBox::kind(&version.spec) {
            Ok(ToolKind::Http(http)) => entries.push(Entry {
                function: UserTool { name: tool.name.clone(), description: version.spec.description.clone(), parameters: http.parameters.clone() },
                tool,
                version,
                mcp_tool: None,
            }),
            Ok(ToolKind::Mcp { .. }) => match toolbox.mcp_tools(&tool, &version.spec, &ToolCall::default()).await {
                Ok(Ok(offered)) => {
                    for mcp in offered {
                        // Function names models accept: letters, digits, `_`, `-`; unique.
                        let function: String = format!("{}__{}", tool.name, mcp.name)
                            .chars()
                            .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' })
                            .take(MAX_FUNCTION_NAME)
                            .collect();
                        if entries.iter().any(|e: &Entry| e.function.name == function) {
                            skipped(ctx, format!("tool `{name}`: its MCP tool `{}` has the same name as another once shortened; left out", mcp.name)).await;
                            continue;
                        }
                        let description = mcp.description.clone().unwrap_or_else(|| version.spec.description.clone());
                        entries.push(Entry {
                            function: UserTool { name: function, description, parameters: mcp.input_schema.clone() },
                            tool: tool.clone(),
                            version: version.clone(),
                            mcp_tool: Some(mcp.name.clone()),
                        });
                    }
                }
                Ok(Err(error)) => skipped(ctx, format!("tool `{name}`: its MCP server could not be listed ({error}); the agent does without it")).await,
                Err(error) => skipped(ctx, format!("tool `{name}`: {error}; the agent does without it")).await,
            },
            Err(error) => skipped(ctx, format!("tool `{name}`: {error}")).await,
        }
    }
    Arc::new(entries)
}

async fn skipped(ctx: &SessionContext, message: String) {
    let _ = ctx.emit(agentd_domain::EventKind::Log, json!({"level": "warn", "message": message})).await;
}

impl SessionContext {
    /// The user tools the session's agent version allows, as a model sees them.
    pub async fn user_tools(&self) -> Vec<UserTool> {
        self.user_tools.get_or_init(|| resolve(self)).await.iter().map(|e| e.function.clone()).collect()
    }

    /// Calls the user tool `name` (a function of [`SessionContext::user_tools`]): its result as
    /// a model reads it, or why it failed — masked either way. None when there is no such tool.
    pub async fn call_user_tool(&self, name: &str, arguments: &Value) -> Option<Result<String, String>> {
        let entries = self.user_tools.get_or_init(|| resolve(self)).await.clone();
        let entry = entries.iter().find(|e| e.function.name == name)?;
        let call = ToolCall { arguments: arguments.clone(), mcp_tool: entry.mcp_tool.clone(), ..ToolCall::default() };
        let executed = self.tools.execute(entry.tool.clone(), &entry.version, &call, &DebugSink::none()).await;
        Some(match executed {
            Ok(execution) => execution.outcome.map(|output| output.text()).map_err(|error| error.to_string()),
            Err(error) => Err(error.to_string()),
        })
    }
}
