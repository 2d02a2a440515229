//! The user tools a session may call: the project's tools its agent version names (`tools`),
//! at their published version when the session first asks. An HTTP tool is one function; an
//! MCP server is one function per tool it offers, named `<tool>__<mcp tool>`. Calls run
//! through the engine's [`ToolBox`] (egress policy, sealed private variables, masking), so
//! what an agent records of them (results, errors) never holds a private value.
//!
//! The built-in table tools (`table_query`, `table_insert`, `table_search`) are offered when
//! the version names them too; they act for the project (no key, so no grant applies) on its
//! tables, named by name, id or resource number.

use std::sync::Arc;

use agentd_domain::{BUILT_IN_TOOLS, QuerySpec, ToolDef, ToolVersion, VersionChoice};
use agentd_tools::{DebugSink, ToolKind};
use serde_json::{Value, json};

use crate::agent::SessionContext;
use crate::tables::{Access, Search, SearchMode};
use crate::tools::{ToolBox, ToolCall};

/// Characters of a table tool's result a model reads (the rest is cut, with a note).
const MAX_TABLE_RESULT_CHARS: usize = 20_000;
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
    call: Call,
}

enum Call {
    /// A user tool (an MCP server's tool when named).
    User { tool: ToolDef, version: ToolVersion, mcp_tool: Option<String> },
    /// A built-in table tool.
    Table(TableTool),
}

#[derive(Clone, Copy)]
enum TableTool {
    Query,
    Insert,
    Search,
}

fn table_tool(name: &str) -> Option<(TableTool, UserTool)> {
    let table = json!({"type": "string", "description": "The table's name (or id)"});
    let (tool, description, parameters) = match name {
        "table_query" => (
            TableTool::Query,
            "Query a table: filter ({\"and\"|\"or\": [...]} or {\"column\", \"op\": eq|ne|lt|lte|gt|gte|like|in|is_null|is_not_null, \"value\"}), sort, select with count/sum/min/max/avg, group_by, join, page.",
            json!({"type": "object", "properties": {"table": table, "filter": {"type": "object"}, "sort": {"type": "array", "items": {"type": "object"}},
                   "select": {"type": "array", "items": {"type": "object"}}, "group_by": {"type": "array", "items": {"type": "string"}},
                   "join": {"type": "object"}, "alias": {"type": "string"}, "page": {"type": "integer"}, "per_page": {"type": "integer"}}, "required": ["table"]}),
        ),
        "table_insert" => (
            TableTool::Insert,
            "Insert rows into a table: rows is a list of {column: value}.",
            json!({"type": "object", "properties": {"table": table, "rows": {"type": "array", "items": {"type": "object"}}}, "required": ["table", "rows"]}),
        ),
        "table_search" => (
            TableTool::Search,
            "Search a table: by words (fulltext, the default), by meaning over its vectorized columns (semantic), or both (hybrid); best matches first.",
            json!({"type": "object", "properties": {"table": table, "query": {"type": "string"}, "columns": {"type": "array", "items": {"type": "string"}},
                   "limit": {"type": "integer"}, "mode": {"enum": ["fulltext", "semantic", "hybrid"]}}, "required": ["table", "query"]}),
        ),
        _ => return None,
    };
    Some((tool, UserTool { name: name.to_owned(), description: description.to_owned(), parameters }))
}

/// The session's user tools, resolved once.
pub(crate) type Resolved = Arc<Vec<Entry>>;

pub(crate) async fn resolve(ctx: &SessionContext) -> Resolved {
    let Some(names) = ctx.spec().tools.clone() else { return Arc::default() };
    let project = ctx.project_id();
    let toolbox = &ctx.tools;
    let mut entries = Vec::new();
    for name in names.iter() {
        if let Some((tool, function)) = table_tool(name) {
            entries.push(Entry { function, call: Call::Table(tool) });
        }
    }
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
                call: Call::User { tool, version, mcp_tool: None },
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
                            call: Call::User { tool: tool.clone(), version: version.clone(), mcp_tool: Some(mcp.name.clone()) },
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
        let (tool, version, mcp_tool) = match &entry.call {
            Call::User { tool, version, mcp_tool } => (tool, version, mcp_tool),
            Call::Table(table_tool) => return Some(self.call_table_tool(*table_tool, arguments).await),
        };
        let call = ToolCall { arguments: arguments.clone(), mcp_tool: mcp_tool.clone(), ..ToolCall::default() };
        let executed = self.tools.execute(tool.clone(), version, &call, &DebugSink::none()).await;
        Some(match executed {
            Ok(execution) => execution.outcome.map(|output| output.text()).map_err(|error| error.to_string()),
            Err(error) => Err(error.to_string()),
        })
    }

    /// Runs a built-in table tool for the project: the result as JSON text, or why not.
    async fn call_table_tool(&self, tool: TableTool, arguments: &Value) -> Result<String, String> {
        let tables = &self.tools.tables;
        let mut arguments = arguments.as_object().cloned().unwrap_or_default();
        let name = match arguments.remove("table") {
            Some(Value::String(name)) => name,
            Some(Value::Number(n)) => n.to_string(),
            _ => return Err("`table` is required: the table's name".into()),
        };
        let table = tables.find(self.project_id(), &name).await.map_err(|_| format!("there is no table `{name}`"))?;
        let result = match tool {
            TableTool::Query => {
                let spec: QuerySpec = serde_json::from_value(Value::Object(arguments)).map_err(|e| format!("bad arguments: {e}"))?;
                tables.query(self.project_id(), Access::Project, &table, &spec).await.map(|page| json!({"rows": page.objects(), "total": page.total}))
            }
            TableTool::Insert => {
                let rows: Vec<serde_json::Map<String, Value>> = match arguments.remove("rows") {
                    Some(rows) => serde_json::from_value(rows).map_err(|_| "`rows` is a list of {column: value} objects".to_owned())?,
                    None => return Err("`rows` is required".into()),
                };
                tables.insert(Access::Project, &table, &rows, "rows").await.map(|ids| json!({"inserted": ids.len(), "ids": ids}))
            }
            TableTool::Search => {
                let search = Search {
                    query: arguments.get("query").and_then(Value::as_str).unwrap_or_default().to_owned(),
                    columns: arguments.get("columns").and_then(|c| serde_json::from_value(c.clone()).ok()).unwrap_or_default(),
                    limit: arguments.get("limit").and_then(Value::as_u64).map(|l| l.min(100) as u32).unwrap_or(10),
                    mode: match arguments.get("mode").and_then(Value::as_str) {
                        Some("semantic") => SearchMode::Semantic,
                        Some("hybrid") => SearchMode::Hybrid,
                        _ => SearchMode::FullText,
                    },
                };
                tables.search(Access::Project, &table, &search).await.map(|(page, scores)| {
                    let rows: Vec<Value> = page.objects().into_iter().zip(scores).map(|(mut row, score)| {
                        row.insert("score".into(), json!(score));
                        Value::Object(row)
                    }).collect();
                    json!({"rows": rows})
                })
            }
        };
        match result {
            Ok(value) => {
                let text = value.to_string();
                if text.chars().count() > MAX_TABLE_RESULT_CHARS {
                    let cut: String = text.chars().take(MAX_TABLE_RESULT_CHARS).collect();
                    Ok(format!("{cut}… [cut at {MAX_TABLE_RESULT_CHARS} characters: ask for fewer rows or columns]"))
                } else {
                    Ok(text)
                }
            }
            Err(crate::EngineError::Invalid(field)) => Err(format!("{}: {}", field.field, field.message)),
            Err(error) => Err(error.to_string()),
        }
    }
}
