//! The AutessaDB API (SPECS §3.4): `POST /clients/autessadb/{insert, batch-insert, get-data,
//! get-single-row, query, join-query, search, update, batch-update, delete-row,
//! batch-delete, generate-upload-link, index-record}?resourceId=<table>` and the upload
//! link's `PUT /clients/autessadb/uploads/{token}`, as a thin adapter over the native tables
//! (`agentd_engine::tables`): each body is turned into one engine call (a `QuerySpec`, a
//! filter tree, a batch) and each answer into the vendor's shapes. Every rule (types,
//! required columns, permissions, all-or-nothing batches and imports, limits) is the
//! engine's.
//!
//! Choices where the documents are silent ([INF] in SPECS §3.4):
//! - `resourceId` is the table's resource number (the native `resource_id`); a number the
//!   project does not have, or that names an agent or a tool → 404 `Resource with ID <n>
//!   not found`. `tableId` in a body may be left out; given, it must equal `resourceId`.
//! - Permissions per endpoint as SPECS lists them (READ: get-data, get-single-row, query,
//!   join-query, search; WRITE: insert, batch-insert, update, batch-update,
//!   generate-upload-link, index-record; DELETE: delete-row, batch-delete), checked once the
//!   table is known and before any body field but `tableId` is read: a key whose grant lacks
//!   one → 403 `Permission denied: WRITE access required` (the status the rest of the adapter uses for refusals; the vendor documents
//!   only 200/401/429/500). A join needs READ on the joined table too.
//! - Statuses: 400 bad input, naming the field as the client wrote it
//!   (`filters.groups[0].statements[1].value: …`, `values.price: …`, `rowId is required …`);
//!   404 unknown row (`Row 7 not found`) or upload; 409 an upload link that expired, or
//!   that already holds a file (PUT) or holds none yet (`batch-insert`).
//! - Values in: a flat `{column: value}` map, `{column: {columnType, value}}` pairs
//!   (`AutessaDbColumnValue`), or the legacy list `[{columnName, value: {columnType,
//!   value}}]`. The column's own type decides; a pair's `columnType` must be one of
//!   `UNIQUE_ID STRING LONG_TEXT INTEGER FLOAT BOOLEAN TIMESTAMP UNKNOWN` and is otherwise
//!   advisory. A string given for an integer, float, boolean or timestamp column is read
//!   the way a CSV cell is (`"42"`, `"true"`, `"2026-01-31"`); `UNKNOWN` values (and any
//!   number or boolean given for a text column with `UNKNOWN`) are taken as their text.
//!   Filter values are read the same way.
//! - Rows out: flat `{column: value}` with the system columns `uniqueId`, `createdAt`,
//!   `lastUpdated` (RFC 3339, UTC), and `computationStatus` (`COMPUTING`, `DONE`,
//!   `FAILED`) on tables with a vectorized column — the native `vector_status` (`PENDING`
//!   reads `COMPUTING`). In a join every key is `alias.column`; with `selectedColumns` the
//!   keys are the `columnAlias`, else the column as named (`uniqueId`, `o.quantity`), and
//!   an aggregate's default key is `FUNCTION(column)` (`COUNT(*)`, `SUM(price)`).
//! - `insert` answers `computationStatus` always: `COMPUTING` when the new row waits for
//!   embeddings, else `DONE`. `insert` with `rows: [values…]` inserts a batch (at most
//!   1,000, all or none) → `{recordsImpacted, insertedIds, computationStatus}`.
//! - Pagination `{currentPage (0-based), totalRecordsPerPage, ascending}`: per page 10..50
//!   or 400 (no clamping: a client asking 51 rows is told, not silently given 50); absent,
//!   page 0 of 50; `ascending` (default true) orders by `uniqueId`. An aggregated query
//!   has no order.
//! - `get-data` → `{tableSchema: {tableId, tableName, description, columns: [{columnName,
//!   columnType, system, required, vectorized}]}, table, totalRecords}` (system columns
//!   first, typed `UNIQUE_ID`/`TIMESTAMP`; user columns in the Autessa type names).
//! - `query`: `filters` is a `WhereFilter` → the native tree `{AND|OR: [{AND|OR:
//!   [statement…]}…]}`; an empty `groups` (or group) filters nothing. Operators EQUALS,
//!   NOT_EQUALS, GREATER_THAN(_OR_EQUALS), LESS_THAN(_OR_EQUALS), LIKE (`%`, `_`; ASCII
//!   case-insensitive), IN (a list), IS_NULL, IS_NOT_NULL (their `value` is ignored).
//!   `selectedColumns[].functions` takes one of COUNT, SUM, MIN, MAX, AVG (`columnName:
//!   "*"` with COUNT); beside an aggregate, the plain selected columns are what the rows are
//!   grouped by (the legacy compute query's reading). A column is named by
//!   `{columnName, tableAlias?, tableId?}` or a plain string.
//! - `join-query`: `joinStatements[]` → native joins (INNER, LEFT; RIGHT, FULL, CROSS → 400
//!   `… is not supported`), at most 3. The main table's alias is the body's `tableAlias`
//!   (an agentd field), else its name; a joined table's is `joinTableAlias`, else its name
//!   (a self-join needs one). A column with neither `tableAlias` nor a `tableId` of a joined
//!   table is the main table's; in `joinFilters` it is that join's table.
//!   `mainTableColumn` names a column of the main table (or `alias.column` of an earlier
//!   one). `joinFilters` are ANDed into the WHERE: on a LEFT join they also drop the rows
//!   that found no match, unless they allow nulls (`IS_NULL`).
//! - `update` → `{recordsImpacted: 1, updatedRow, computationStatus}`; `batch-update`
//!   `{filters, values}` or `{rows: [{rowId, values}]}`, `batch-delete` `{rowIds}` or
//!   `{filters}` → `{recordsImpacted}`. A filter with no statement is refused (a batch
//!   never means "every row" by accident). `delete-row`, `update`, `get-single-row`,
//!   `index-record` of a row the table does not have → 404 `Row <id> not found`. `rowId`
//!   (legacy `uniqueId`) is an integer or its digits as a string.
//! - Uploads: `generate-upload-link` `{fileType: "CSV", fileName?}` makes an engine upload
//!   link (15 minutes, single use) → `{uploadUrl, tempPath, expiresAt}`; `uploadUrl` is
//!   `http(s)://<Host>/clients/autessadb/uploads/<token>` (`X-Forwarded-Proto: https`
//!   honoured), `tempPath` the token. The client PUTs the CSV there (no key: the link is the
//!   key; at most 10 MiB; answer `{"errors": []}`), which only keeps the file; `batch-insert`
//!   `{tempPath, fileDelimiter: COMMA|SEMICOLON|TAB|PIPE}` imports it — every row or none —
//!   → `{recordsImpacted}`, or 400 with one `errors` line per bad CSV line (`line 3: column
//!   price: `abc` is not a number`, at most 20) and nothing inserted. Either way the upload
//!   is used up: correct the file and make a new link. A `batch-insert` before the PUT is
//!   409 and leaves the link usable. `tempPath` may also be the whole `uploadUrl`.
//! - `index-record` marks the row for embedding → `computationStatus: "COMPUTING"`; on a
//!   table without vectorized columns there is nothing to compute: `"DONE"` (the row must
//!   exist). The row's `computationStatus` turns `DONE` when the vectorizer has embedded it.
//! - `search` `{columnName?, query, limit? (1..100, default 10)}` is the engine's semantic
//!   search (`mode`, an agentd field: `semantic` by default, `hybrid`, `fulltext`) → `{table:
//!   [Row + score], totalRecords}` best first. Where the engine cannot search that way (no
//!   embedding model) its refusal is passed on in `errors`, with its status.

use agentd_domain::table::{Aggregate, FilterOp, SystemColumn, vector_status};
use agentd_domain::{ColumnType, FieldError, QuerySpec, RowPage, TableDef, TablePermission};
use agentd_domain::table::{JoinOn, JoinSpec, SelectSpec, SortSpec};
use agentd_engine::{Access, BatchDelete, BatchUpdate, EngineError, ImportRefused, Resource, Search, SearchMode};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::error::{AutessaError, AutessaResult, ok};
use super::{Query, body_object, same_resource};
use crate::auth::Caller;
use crate::state::AppState;

/// Rows per page: the vendor's bounds.
const MIN_PER_PAGE: u32 = 10;
const MAX_PER_PAGE: u32 = 50;
/// Rows per page when the request has no `pagination`.
const DEFAULT_PER_PAGE: u32 = 50;
/// Results of a search when the request names no `limit`.
const DEFAULT_SEARCH_LIMIT: u32 = 10;

/// One AutessaDB request: the caller, its table (permission checked) and its body.
struct Call {
    state: AppState,
    caller: Caller,
    table: TableDef,
    body: Map<String, Value>,
}

impl Call {
    /// Reads `?resourceId`, the body and the table, checks `tableId` and `needed`.
    async fn open(state: AppState, caller: Caller, query: Option<String>, body: Result<Bytes, BytesRejection>, needed: TablePermission) -> AutessaResult<Self> {
        let number = Query::parse(query.as_deref()).resource_number()?;
        let body = body_object(body)?;
        let table = table_of(&state, caller, number).await?;
        same_resource(&body, "tableId", number)?;
        state.engine.check_table_access(access(caller), &table, needed).await?;
        Ok(Self { state, caller, table, body })
    }

    fn access(&self) -> Access {
        access(self.caller)
    }
}

fn access(caller: Caller) -> Access {
    Access::Key(caller.key_id)
}

/// The table resource `number` names (an agent's or a tool's number is not found here).
async fn table_of(state: &AppState, caller: Caller, number: u64) -> AutessaResult<TableDef> {
    match super::resource(state, caller, number).await? {
        Resource::Table(id) => match state.engine.get_table(caller.project_id, id).await {
            Ok(table) => Ok(table),
            Err(EngineError::NotFound) => Err(AutessaError::resource_not_found(number)),
            Err(other) => Err(other.into()),
        },
        Resource::Agent(_) | Resource::Tool(_) => Err(AutessaError::resource_not_found(number)),
    }
}

fn row_not_found(id: i64) -> impl FnOnce(EngineError) -> AutessaError {
    move |e| match e {
        EngineError::NotFound => AutessaError::new(StatusCode::NOT_FOUND, format!("Row {id} not found")),
        other => engine_error(other, &Paths::default()),
    }
}

/// An engine refusal in the client's words: a field error names the field as the client
/// wrote it (see [`Paths`]).
fn engine_error(e: EngineError, paths: &Paths) -> AutessaError {
    match e {
        EngineError::Invalid(field) => paths.error(field),
        other => other.into(),
    }
}

/// How native field paths read in the request the client sent (`filter.and[0].or[1]` →
/// `filters.groups[0].statements[1]`), longest first.
#[derive(Default)]
struct Paths(Vec<(String, String)>);

impl Paths {
    fn add(&mut self, native: impl Into<String>, autessa: impl Into<String>) {
        self.0.push((native.into(), autessa.into()));
    }

    /// A native field path as the client wrote it.
    fn field(&self, field: &str) -> String {
        let found = self
            .0
            .iter()
            .filter(|(native, _)| field.strip_prefix(native.as_str()).is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '['])))
            .max_by_key(|(native, _)| native.len());
        let mut out = match found {
            Some((native, autessa)) => format!("{autessa}{}", &field[native.len()..]),
            None => field.to_owned(),
        };
        for (native, autessa) in [(".op", ".operator"), (".function", ".functions"), (".on.left", ".mainTableColumn"), (".on.right", ".joinTableColumn"), (".type", ".joinType"), (".table", ".joinTableId")] {
            if let Some(stem) = out.strip_suffix(native) {
                out = format!("{stem}{autessa}");
            }
        }
        out
    }

    /// A message with the native paths it quotes (those with an index) as the client's.
    fn message(&self, text: &str) -> String {
        let mut pairs: Vec<&(String, String)> = self.0.iter().filter(|(native, _)| native.contains('[')).collect();
        pairs.sort_by_key(|(native, _)| std::cmp::Reverse(native.len()));
        let mut out = text.to_owned();
        for (native, autessa) in pairs {
            out = out.replace(native.as_str(), autessa);
        }
        out
    }

    /// 400 `<field>: <message>`, both translated.
    fn error(&self, e: FieldError) -> AutessaError {
        let field = self.field(&e.field);
        let message = self.message(&e.message);
        if message.starts_with(&field) {
            AutessaError::bad_request(message)
        } else {
            AutessaError::bad_request(format!("{field}: {message}"))
        }
    }
}

// ---- values in ----

/// The Autessa value types (`AutessaDbColumnValue.columnType`).
const VALUE_TYPES: [&str; 8] = ["UNIQUE_ID", "STRING", "LONG_TEXT", "INTEGER", "FLOAT", "BOOLEAN", "TIMESTAMP", "UNKNOWN"];

/// The type of column `name` of `table` (a user column, or a system one by either name).
fn type_of(table: &TableDef, name: &str) -> Option<ColumnType> {
    table.column(name).map(|c| c.column_type).or_else(|| SystemColumn::parse(name).map(SystemColumn::column_type))
}

/// One value as the engine takes it: a `{columnType, value}` pair unwrapped, a string for a
/// non-text column read as text.
fn value_in(column_type: Option<ColumnType>, raw: &Value, field: &str) -> AutessaResult<Value> {
    let (declared, value) = match raw {
        Value::Object(pair) if pair.contains_key("value") && pair.keys().all(|k| k == "value" || k == "columnType") => {
            let declared = match pair.get("columnType") {
                None | Some(Value::Null) => None,
                Some(Value::String(t)) if VALUE_TYPES.contains(&t.to_ascii_uppercase().as_str()) => Some(t.to_ascii_uppercase()),
                Some(other) => {
                    return Err(AutessaError::bad_request(format!("{field}.columnType: unknown type {other}: one of {}", VALUE_TYPES.join(", "))));
                }
            };
            (declared, &pair["value"])
        }
        other => (None, other),
    };
    let Some(column_type) = column_type else { return Ok(value.clone()) };
    Ok(match value {
        Value::String(text) if !column_type.is_text() => match column_type.cell_from_text(text) {
            Ok(cell) => cell.to_json(),
            Err(why) => return Err(AutessaError::bad_request(format!("{field}: {why}"))),
        },
        Value::Number(_) | Value::Bool(_) if column_type.is_text() && declared.as_deref() == Some("UNKNOWN") => Value::String(value.to_string()),
        other => other.clone(),
    })
}

/// A row's values (`field` names them in errors): a flat map, a map of pairs, or the legacy
/// list `[{columnName, value}]`.
fn values_in(table: &TableDef, raw: Option<&Value>, field: &str) -> AutessaResult<Map<String, Value>> {
    let mut out = Map::new();
    match raw {
        None | Some(Value::Null) => return Err(AutessaError::bad_request(format!("{field} is required: {{\"column\": value}}"))),
        Some(Value::Object(map)) => {
            for (name, value) in map {
                out.insert(name.clone(), value_in(type_of(table, name), value, &format!("{field}.{name}"))?);
            }
        }
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let name = item.get("columnName").and_then(Value::as_str).ok_or_else(|| {
                    AutessaError::bad_request(format!("{field}[{i}].columnName is required (a list of values is [{{columnName, value}}])"))
                })?;
                let value = item.get("value").unwrap_or(&Value::Null);
                out.insert(name.to_owned(), value_in(type_of(table, name), value, &format!("{field}.{name}"))?);
            }
        }
        Some(_) => return Err(AutessaError::bad_request(format!("{field} must be an object {{\"column\": value}}"))),
    }
    Ok(out)
}

/// A row id: an integer or its digits.
fn id_value(raw: &Value) -> Option<i64> {
    match raw {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// `rowId` (legacy `uniqueId`) of `body`.
fn row_id(body: &Map<String, Value>) -> AutessaResult<i64> {
    let (field, raw) = match (body.get("rowId"), body.get("uniqueId")) {
        (Some(raw), _) if !raw.is_null() => ("rowId", raw),
        (_, Some(raw)) if !raw.is_null() => ("uniqueId", raw),
        _ => return Err(AutessaError::bad_request("rowId is required: the row's uniqueId (an integer)")),
    };
    id_value(raw).ok_or_else(|| AutessaError::bad_request(format!("{field} must be a row's uniqueId (an integer), got {raw}")))
}

// ---- rows out ----

/// `PENDING`/`DONE`/`FAILED` → `COMPUTING`/`DONE`/`FAILED`.
fn computation(status: &str) -> &str {
    if status == vector_status::PENDING { "COMPUTING" } else { status }
}

/// A native row (default selection) with the Autessa system names; `computationStatus`
/// only where the table has one (`alias.` prefixes kept in joins).
fn row_out(row: Map<String, Value>) -> Map<String, Value> {
    row.into_iter()
        .filter_map(|(key, value)| {
            let (prefix, name) = match key.rsplit_once('.') {
                Some((alias, name)) => (format!("{alias}."), name.to_owned()),
                None => (String::new(), key.clone()),
            };
            let (name, value) = match SystemColumn::parse(&name) {
                Some(SystemColumn::Id) => ("uniqueId", value),
                Some(SystemColumn::CreatedAt) => ("createdAt", value),
                Some(SystemColumn::UpdatedAt) => ("lastUpdated", value),
                Some(SystemColumn::VectorStatus) => match value.as_str() {
                    Some(status) => ("computationStatus", Value::String(computation(status).to_owned())),
                    None => return None,
                },
                None => return Some((key, value)),
            };
            Some((format!("{prefix}{name}"), value))
        })
        .collect()
}

fn rows_out(page: RowPage) -> Vec<Value> {
    page.objects().into_iter().map(|row| Value::Object(row_out(row))).collect()
}

fn one_row(page: RowPage) -> Map<String, Value> {
    page.objects().into_iter().next().map(row_out).unwrap_or_default()
}

/// The `computationStatus` of an answer about `row`: COMPUTING while it waits.
fn status_of(row: &Map<String, Value>) -> &str {
    row.get("computationStatus").and_then(Value::as_str).unwrap_or("DONE")
}

/// The Autessa name of a column type.
fn type_name(column_type: ColumnType) -> String {
    column_type.as_str().to_ascii_uppercase()
}

fn table_schema(table: &TableDef) -> Value {
    let system = |name: &str, t: &str| json!({"columnName": name, "columnType": t, "system": true, "required": true, "vectorized": false});
    let mut columns = vec![system("uniqueId", "UNIQUE_ID"), system("createdAt", "TIMESTAMP"), system("lastUpdated", "TIMESTAMP")];
    columns.extend(table.columns.iter().map(|c| {
        json!({"columnName": c.name, "columnType": type_name(c.column_type), "system": false, "required": c.required, "vectorized": c.vectorized})
    }));
    json!({"tableId": table.resource_number, "tableName": table.name, "description": table.description, "columns": columns})
}

// ---- queries ----

/// `pagination` → (page, per page, ascending).
fn pagination(body: &Map<String, Value>) -> AutessaResult<(u64, u32, bool)> {
    let p = match body.get("pagination") {
        None | Some(Value::Null) => return Ok((0, DEFAULT_PER_PAGE, true)),
        Some(Value::Object(p)) => p,
        Some(_) => return Err(AutessaError::bad_request("pagination must be an object {currentPage, totalRecordsPerPage, ascending}")),
    };
    let page = match p.get("currentPage") {
        None | Some(Value::Null) => 0,
        Some(v) => v.as_u64().ok_or_else(|| AutessaError::bad_request(format!("pagination.currentPage is a page number from 0, got {v}")))?,
    };
    let per_page = match p.get("totalRecordsPerPage") {
        None | Some(Value::Null) => DEFAULT_PER_PAGE,
        Some(v) => match v.as_u64() {
            Some(n) if (u64::from(MIN_PER_PAGE)..=u64::from(MAX_PER_PAGE)).contains(&n) => n as u32,
            _ => return Err(AutessaError::bad_request(format!("pagination.totalRecordsPerPage is {MIN_PER_PAGE} to {MAX_PER_PAGE}, got {v}"))),
        },
    };
    let ascending = match p.get("ascending") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(v) => return Err(AutessaError::bad_request(format!("pagination.ascending is true or false, got {v}"))),
    };
    Ok((page, per_page, ascending))
}

/// The tables of a query under their aliases: the main one first, then each join's.
struct Sources<'a> {
    tables: Vec<(&'a TableDef, String)>,
}

impl Sources<'_> {
    fn joined(&self) -> bool {
        self.tables.len() > 1
    }

    /// A column as the native query names it (`alias.column` in a join), and its type.
    /// `default` is the source a column with no `tableAlias`/`tableId` belongs to.
    fn column(&self, raw: &Value, field: &str, default: usize) -> AutessaResult<(String, Option<ColumnType>)> {
        let (name, alias, table_id) = match raw {
            Value::String(name) => (name.as_str(), None, None),
            Value::Object(c) => {
                let name = c.get("columnName").and_then(Value::as_str).ok_or_else(|| AutessaError::bad_request(format!("{field}.columnName is required")))?;
                let alias = c.get("tableAlias").and_then(Value::as_str).filter(|a| !a.is_empty());
                (name, alias, c.get("tableId").filter(|v| !v.is_null()))
            }
            _ => return Err(AutessaError::bad_request(format!("{field} must name a column: {{columnName, tableAlias?}}"))),
        };
        if let Some((alias, column)) = name.split_once('.') {
            let source = self.tables.iter().find(|(_, a)| a == alias);
            return Ok((name.to_owned(), source.and_then(|(t, _)| type_of(t, column))));
        }
        let source = if !self.joined() {
            0
        } else if let Some(alias) = alias {
            match self.tables.iter().position(|(_, a)| a == alias) {
                Some(i) => i,
                None => return Ok((format!("{alias}.{name}"), None)), // the engine names the aliases
            }
        } else if let Some(raw_id) = table_id {
            let number = id_value(raw_id).and_then(|n| u64::try_from(n).ok());
            let at = |i: usize| self.tables.get(i).is_some_and(|(t, _)| Some(t.resource_number) == number);
            if at(default) {
                default
            } else if let Some(i) = (0..self.tables.len()).find(|i| at(*i)) {
                i
            } else {
                return Err(AutessaError::bad_request(format!("{field}.tableId {raw_id} is not a table of this query")));
            }
        } else {
            default
        };
        let (table, alias) = &self.tables[source];
        let qualified = if self.joined() { format!("{alias}.{name}") } else { name.to_owned() };
        Ok((qualified, type_of(table, name)))
    }
}

/// A `WhereFilter` `{operand, groups: [{operand, statements}]}` as a native tree (None when
/// it holds no statement); `native` is where it sits in the native filter.
fn where_filter(sources: &Sources, raw: Option<&Value>, field: &str, native: &str, paths: &mut Paths) -> AutessaResult<Option<Value>> {
    let filter = match raw {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(f)) => f,
        Some(_) => return Err(AutessaError::bad_request(format!("{field} must be a WhereFilter {{operand, groups: [{{operand, statements}}]}}"))),
    };
    let top = operand(filter.get("operand"), &format!("{field}.operand"))?;
    let groups = match filter.get("groups") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(groups)) => groups,
        Some(_) => return Err(AutessaError::bad_request(format!("{field}.groups must be a list of {{operand, statements}}"))),
    };
    let mut out = Vec::new();
    for (g, group) in groups.iter().enumerate() {
        let at = format!("{field}.groups[{g}]");
        let Value::Object(group) = group else {
            return Err(AutessaError::bad_request(format!("{at} must be {{operand, statements}}")));
        };
        let inner = operand(group.get("operand"), &format!("{at}.operand"))?;
        let statements = match group.get("statements") {
            None | Some(Value::Null) => continue,
            Some(Value::Array(s)) => s,
            Some(_) => return Err(AutessaError::bad_request(format!("{at}.statements must be a list of {{operator, column, value}}"))),
        };
        if statements.is_empty() {
            continue;
        }
        let group_native = format!("{native}.{top}[{}]", out.len());
        let mut converted = Vec::new();
        for (s, statement) in statements.iter().enumerate() {
            let statement_native = format!("{group_native}.{inner}[{s}]");
            paths.add(&statement_native, format!("{at}.statements[{s}]"));
            converted.push(condition(sources, statement, &format!("{at}.statements[{s}]"), 0)?);
        }
        out.push(json!({ inner: converted }));
    }
    if out.is_empty() {
        return Ok(None);
    }
    paths.add(format!("{native}.{top}"), format!("{field}.groups"));
    Ok(Some(json!({ top: out })))
}

/// `AND` or `OR` (default AND) as the native group key.
fn operand(raw: Option<&Value>, field: &str) -> AutessaResult<&'static str> {
    match raw {
        None | Some(Value::Null) => Ok("and"),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("and") => Ok("and"),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("or") => Ok("or"),
        Some(other) => Err(AutessaError::bad_request(format!("{field} is AND or OR, got {other}"))),
    }
}

/// A statement `{operator, column, value}` as a native condition.
fn condition(sources: &Sources, raw: &Value, field: &str, default: usize) -> AutessaResult<Value> {
    let Value::Object(statement) = raw else {
        return Err(AutessaError::bad_request(format!("{field} must be {{operator, column, value}}")));
    };
    let operator = statement.get("operator").and_then(Value::as_str).ok_or_else(|| AutessaError::bad_request(format!("{field}.operator is required")))?;
    let op = FilterOp::parse(operator).ok_or_else(|| {
        AutessaError::bad_request(format!(
            "{field}.operator: unknown operator `{operator}`: EQUALS, NOT_EQUALS, GREATER_THAN, GREATER_THAN_OR_EQUALS, LESS_THAN, LESS_THAN_OR_EQUALS, LIKE, IN, IS_NULL or IS_NOT_NULL"
        ))
    })?;
    let column = statement.get("column").ok_or_else(|| AutessaError::bad_request(format!("{field}.column is required")))?;
    let (name, column_type) = sources.column(column, &format!("{field}.column"), default)?;
    let raw_value = statement.get("value").unwrap_or(&Value::Null);
    let value = match op {
        FilterOp::IsNull | FilterOp::IsNotNull => Value::Null,
        FilterOp::In => match value_in(None, raw_value, &format!("{field}.value"))? {
            Value::Array(items) => Value::Array(
                items.iter().enumerate().map(|(i, v)| value_in(column_type, v, &format!("{field}.value[{i}]"))).collect::<AutessaResult<_>>()?,
            ),
            other => other,
        },
        // A LIKE pattern is text whatever the column.
        FilterOp::Like => value_in(None, raw_value, &format!("{field}.value"))?,
        _ => value_in(column_type, raw_value, &format!("{field}.value"))?,
    };
    Ok(json!({"column": name, "op": operator, "value": value}))
}

/// `selectedColumns` → the native selection and (beside aggregates) its grouping.
fn selection(sources: &Sources, raw: Option<&Value>, paths: &mut Paths) -> AutessaResult<Option<(Vec<SelectSpec>, Vec<String>)>> {
    let items = match raw {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(items)) if items.is_empty() => return Ok(None),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(AutessaError::bad_request("selectedColumns must be a list of {columnName, tableAlias?, columnAlias?, functions?}")),
    };
    let mut select = Vec::new();
    let mut plain = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let field = format!("selectedColumns[{i}]");
        paths.add(format!("select[{i}]"), &field);
        paths.add(format!("select[{i}].column"), format!("{field}.columnName"));
        paths.add(format!("select[{i}].alias"), format!("{field}.columnAlias"));
        let function = match item.get("functions") {
            None | Some(Value::Null) => None,
            Some(Value::Array(fs)) if fs.is_empty() => None,
            Some(Value::Array(fs)) if fs.len() == 1 => {
                let name = fs[0].as_str().unwrap_or_default();
                if Aggregate::parse(name).is_none() {
                    return Err(AutessaError::bad_request(format!("{field}.functions: `{}` is not supported: COUNT, SUM, MIN, MAX or AVG", fs[0].as_str().unwrap_or("?"))));
                }
                Some(name.to_ascii_uppercase())
            }
            Some(_) => return Err(AutessaError::bad_request(format!("{field}.functions takes one function: COUNT, SUM, MIN, MAX or AVG"))),
        };
        let star = item.get("columnName").and_then(Value::as_str) == Some("*");
        let (column, as_named) = if star {
            ("*".to_owned(), "*".to_owned())
        } else {
            let (qualified, _) = sources.column(item, &field, 0)?;
            // Single-table: the key is the column as the client named it (no alias prefix).
            let as_named = match item.get("columnName").and_then(Value::as_str) {
                Some(name) if !sources.joined() => name.to_owned(),
                _ => qualified.clone(),
            };
            (qualified, as_named)
        };
        let alias = match item.get("columnAlias").and_then(Value::as_str).filter(|a| !a.is_empty()) {
            Some(alias) => alias.to_owned(),
            None => match &function {
                Some(f) => format!("{f}({as_named})"),
                None => as_named,
            },
        };
        if function.is_none() {
            if star {
                return Err(AutessaError::bad_request(format!("{field}.columnName `*` is for COUNT only")));
            }
            plain.push(column.clone());
        }
        select.push(SelectSpec { column, alias: Some(alias), function });
    }
    let aggregated = select.iter().any(|s| s.function.is_some());
    Ok(Some((select, if aggregated { plain } else { Vec::new() })))
}

/// A `query` or `join-query` body as a native query.
async fn query_spec(call: &Call, joins_allowed: bool, paths: &mut Paths) -> AutessaResult<(QuerySpec, bool)> {
    let body = &call.body;
    let main_alias = match body.get("tableAlias") {
        None | Some(Value::Null) => call.table.name.clone(),
        Some(Value::String(a)) if !a.is_empty() => a.clone(),
        Some(_) => return Err(AutessaError::bad_request("tableAlias must be a name for the main table")),
    };
    paths.add("alias", "tableAlias");
    let statements = match body.get("joinStatements") {
        None | Some(Value::Null) => &Vec::new(),
        Some(Value::Array(s)) => s,
        Some(_) => return Err(AutessaError::bad_request("joinStatements must be a list of JoinStatement")),
    };
    if !joins_allowed && !statements.is_empty() {
        return Err(AutessaError::bad_request("joinStatements belong to join-query: POST /clients/autessadb/join-query"));
    }
    if statements.len() > agentd_domain::table::MAX_JOINS {
        return Err(AutessaError::bad_request(format!("joinStatements: at most {} joins", agentd_domain::table::MAX_JOINS)));
    }
    // Each join's table, kind and alias, read before any column is resolved.
    let mut joined = Vec::new();
    for (i, statement) in statements.iter().enumerate() {
        let at = format!("joinStatements[{i}]");
        paths.add(format!("join[{i}]"), &at);
        paths.add(format!("join[{i}].alias"), format!("{at}.joinTableAlias"));
        let kind = match statement.get("joinType").and_then(Value::as_str).map(str::to_ascii_uppercase).as_deref() {
            None | Some("INNER") => "inner",
            Some("LEFT") => "left",
            Some(other @ ("RIGHT" | "FULL" | "CROSS")) => {
                return Err(AutessaError::bad_request(format!("{at}.joinType: {other} joins are not supported: INNER or LEFT")));
            }
            Some(other) => return Err(AutessaError::bad_request(format!("{at}.joinType: unknown join type `{other}`: INNER or LEFT"))),
        };
        let raw_id = statement.get("joinTableId").filter(|v| !v.is_null()).ok_or_else(|| AutessaError::bad_request(format!("{at}.joinTableId is required")))?;
        let number = id_value(raw_id).and_then(|n| u64::try_from(n).ok()).ok_or_else(|| AutessaError::bad_request(format!("{at}.joinTableId must be a table's ID, got {raw_id}")))?;
        let table = match call.state.engine.find_table(call.caller.project_id, &number.to_string()).await {
            Ok(table) => table,
            Err(EngineError::NotFound) => return Err(AutessaError::bad_request(format!("{at}.joinTableId: no table {number} in this project"))),
            Err(other) => return Err(other.into()),
        };
        let alias = match statement.get("joinTableAlias") {
            None | Some(Value::Null) => table.name.clone(),
            Some(Value::String(a)) if !a.is_empty() => a.clone(),
            Some(_) => return Err(AutessaError::bad_request(format!("{at}.joinTableAlias must be a name"))),
        };
        joined.push((table, alias, kind));
    }
    let mut sources = Sources { tables: vec![(&call.table, main_alias.clone())] };
    sources.tables.extend(joined.iter().map(|(t, a, _)| (t, a.clone())));

    let mut join = Vec::new();
    let mut filters = Vec::new();
    if let Some(main) = where_filter(&sources, body.get("filters"), "filters", if statements.is_empty() { "filter" } else { "filter.and[0]" }, paths)? {
        filters.push(main);
    }
    for (i, (statement, (table, alias, kind))) in statements.iter().zip(&joined).enumerate() {
        let at = format!("joinStatements[{i}]");
        let main_column = statement.get("mainTableColumn").filter(|v| !v.is_null()).ok_or_else(|| AutessaError::bad_request(format!("{at}.mainTableColumn is required")))?;
        let (left, _) = sources.column(main_column, &format!("{at}.mainTableColumn"), 0)?;
        let join_column = statement.get("joinTableColumn").filter(|v| !v.is_null()).ok_or_else(|| AutessaError::bad_request(format!("{at}.joinTableColumn is required")))?;
        let (right, _) = sources.column(join_column, &format!("{at}.joinTableColumn"), i + 1)?;
        join.push(JoinSpec { table: Value::String(table.id.to_string()), alias: Some(alias.clone()), kind: Some((*kind).to_owned()), on: JoinOn { left, right } });
        match statement.get("joinFilters") {
            None | Some(Value::Null) => {}
            Some(Value::Array(conditions)) => {
                for (k, raw) in conditions.iter().enumerate() {
                    let field = format!("{at}.joinFilters[{k}]");
                    paths.add(format!("filter.and[{}]", filters.len()), &field);
                    filters.push(condition(&sources, raw, &field, i + 1)?);
                }
            }
            Some(_) => return Err(AutessaError::bad_request(format!("{at}.joinFilters must be a list of {{operator, column, value}}"))),
        }
    }
    let filter = match filters.len() {
        0 => None,
        1 if statements.is_empty() => filters.pop(),
        _ => Some(json!({"and": filters})),
    };

    let selected = selection(&sources, body.get("selectedColumns"), paths)?;
    let (page, per_page, ascending) = pagination(body)?;
    paths.add("per_page", "pagination.totalRecordsPerPage");
    paths.add("page", "pagination.currentPage");
    let aggregated = selected.as_ref().is_some_and(|(select, _)| select.iter().any(|s| s.function.is_some()));
    let id = if sources.joined() { format!("{main_alias}.uniqueId") } else { "uniqueId".to_owned() };
    let sort = (!aggregated).then(|| vec![SortSpec { column: id, direction: Some(if ascending { "asc" } else { "desc" }.to_owned()) }]);
    let renamed = selected.is_none();
    let (select, group_by) = match selected {
        Some((select, group_by)) => (Some(select), (!group_by.is_empty()).then_some(group_by)),
        None => (None, None),
    };
    let spec = QuerySpec {
        alias: Some(main_alias),
        select,
        filter,
        sort,
        page: Some(page),
        per_page: Some(per_page),
        join: (!join.is_empty()).then_some(join),
        group_by,
    };
    Ok((spec, renamed))
}

/// Runs a `query`/`join-query` body → `{table, totalRecords}`.
async fn run_query(call: &Call, joins_allowed: bool) -> AutessaResult<Value> {
    let mut paths = Paths::default();
    let (spec, renamed) = query_spec(call, joins_allowed, &mut paths).await?;
    let page = call.state.engine.query_table(call.access(), &call.table, &spec).await.map_err(|e| engine_error(e, &paths))?;
    let total = page.total;
    let table: Vec<Value> = if renamed { rows_out(page) } else { page.objects().into_iter().map(Value::Object).collect() };
    Ok(json!({"table": table, "totalRecords": total}))
}

/// A single-table `filters` for a batch (at least one statement).
fn batch_filter(call: &Call, paths: &mut Paths) -> AutessaResult<Value> {
    let sources = Sources { tables: vec![(&call.table, call.table.name.clone())] };
    where_filter(&sources, call.body.get("filters"), "filters", "filter", paths)?
        .ok_or_else(|| AutessaError::bad_request("filters must hold at least one statement (a batch never changes every row by accident)"))
}

/// A list of row ids (`field` names it).
fn ids(raw: &Value, field: &str) -> AutessaResult<Vec<i64>> {
    let Value::Array(items) = raw else {
        return Err(AutessaError::bad_request(format!("{field} must be a list of uniqueIds")));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, v)| id_value(v).ok_or_else(|| AutessaError::bad_request(format!("{field}[{i}] must be a uniqueId (an integer), got {v}"))))
        .collect()
}

// ---- handlers ----

macro_rules! endpoint {
    ($name:ident, $permission:expr, $run:ident) => {
        pub(super) async fn $name(State(state): State<AppState>, caller: Caller, RawQuery(query): RawQuery, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> AutessaResult<Response> {
            let call = Call::open(state, caller, query, body, $permission).await?;
            $run(&call, &headers).await.map(ok)
        }
    };
}

endpoint!(insert, TablePermission::Write, run_insert);
endpoint!(batch_insert, TablePermission::Write, run_batch_insert);
endpoint!(get_data, TablePermission::Read, run_get_data);
endpoint!(get_single_row, TablePermission::Read, run_get_single_row);
endpoint!(query, TablePermission::Read, run_plain_query);
endpoint!(join_query, TablePermission::Read, run_join_query);
endpoint!(search, TablePermission::Read, run_search);
endpoint!(update, TablePermission::Write, run_update);
endpoint!(batch_update, TablePermission::Write, run_batch_update);
endpoint!(delete_row, TablePermission::Delete, run_delete_row);
endpoint!(batch_delete, TablePermission::Delete, run_batch_delete);
endpoint!(generate_upload_link, TablePermission::Write, run_generate_upload_link);
endpoint!(index_record, TablePermission::Write, run_index_record);

async fn run_insert(call: &Call, _: &HeaderMap) -> AutessaResult<Value> {
    let engine = &call.state.engine;
    match (call.body.get("values").filter(|v| !v.is_null()), call.body.get("rows").filter(|v| !v.is_null())) {
        (Some(_), Some(_)) => Err(AutessaError::bad_request("give `values` (one row) or `rows` (a batch), not both")),
        (None, Some(Value::Array(raw))) => {
            let rows = raw.iter().enumerate().map(|(i, row)| values_in(&call.table, Some(row), &format!("rows[{i}]"))).collect::<AutessaResult<Vec<_>>>()?;
            let ids = engine.insert_rows(call.access(), &call.table, &rows).await.map_err(|e| engine_error(e, &Paths::default()))?;
            let status = if call.table.has_vectorized() && !ids.is_empty() { "COMPUTING" } else { "DONE" };
            Ok(json!({"recordsImpacted": ids.len(), "insertedIds": ids, "computationStatus": status}))
        }
        (None, Some(_)) => Err(AutessaError::bad_request("rows must be a list of {column: value}")),
        (values, None) => {
            let values = values_in(&call.table, values, "values")?;
            let row = one_row(engine.insert_row(call.access(), &call.table, &values).await.map_err(|e| engine_error(e, &Paths::default()))?);
            Ok(json!({"insertedId": row.get("uniqueId"), "computationStatus": status_of(&row), "newRow": row}))
        }
    }
}

async fn run_get_data(call: &Call, _: &HeaderMap) -> AutessaResult<Value> {
    let (page, per_page, ascending) = pagination(&call.body)?;
    let sort = SortSpec { column: "id".into(), direction: Some(if ascending { "asc" } else { "desc" }.into()) };
    let rows = call.state.engine.list_rows(call.access(), &call.table, page, per_page, Some(sort)).await?;
    let total = rows.total;
    Ok(json!({"tableSchema": table_schema(&call.table), "table": rows_out(rows), "totalRecords": total}))
}

async fn run_get_single_row(call: &Call, _: &HeaderMap) -> AutessaResult<Value> {
    let id = row_id(&call.body)?;
    let row = call.state.engine.get_row(call.access(), &call.table, id).await.map_err(row_not_found(id))?;
    Ok(json!({"row": one_row(row)}))
}

async fn run_plain_query(call: &Call, _: &HeaderMap) -> AutessaResult<Value> {
    run_query(call, false).await
}

async fn run_join_query(call: &Call, _: &HeaderMap) -> AutessaResult<Value> {
    run_query(call, true).await
}

/// The search a body asks for: the one place the Autessa `search` meets the engine's modes.
fn search_of(body: &Map<String, Value>) -> AutessaResult<Search> {
    let query = body.get("query").and_then(Value::as_str).filter(|q| !q.trim().is_empty()).ok_or_else(|| AutessaError::bad_request("query is required: the text to search for"))?;
    let columns = match body.get("columnName") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(name)) => vec![name.clone()],
        Some(_) => return Err(AutessaError::bad_request("columnName must be the name of a text column")),
    };
    let limit = match body.get("limit") {
        None | Some(Value::Null) => DEFAULT_SEARCH_LIMIT,
        Some(v) => v.as_u64().and_then(|n| u32::try_from(n).ok()).ok_or_else(|| AutessaError::bad_request(format!("limit is a number of rows, got {v}")))?,
    };
    let mode = match body.get("mode").and_then(Value::as_str).map(str::to_ascii_lowercase).as_deref() {
        None | Some("semantic") => SearchMode::Semantic,
        Some("hybrid") => SearchMode::Hybrid,
        Some("fulltext" | "full_text") => SearchMode::FullText,
        Some(other) => return Err(AutessaError::bad_request(format!("mode: unknown search mode `{other}`: semantic (default), hybrid or fulltext"))),
    };
    Ok(Search { query: query.to_owned(), columns, limit, mode })
}

async fn run_search(call: &Call, _: &HeaderMap) -> AutessaResult<Value> {
    let search = search_of(&call.body)?;
    let mut paths = Paths::default();
    paths.add("columns[0]", "columnName");
    // Without an embedding model the engine refuses semantic/hybrid (400, saying how to
    // configure one); that refusal is what the client reads.
    let (rows, scores) = call.state.engine.search_table(call.access(), &call.table, &search).await.map_err(|e| engine_error(e, &paths))?;
    let table: Vec<Value> = rows_out(rows)
        .into_iter()
        .zip(scores)
        .map(|(mut row, score)| {
            row["score"] = json!(score);
            row
        })
        .collect();
    Ok(json!({"totalRecords": table.len(), "table": table}))
}

async fn run_update(call: &Call, _: &HeaderMap) -> AutessaResult<Value> {
    let id = row_id(&call.body)?;
    let values = values_in(&call.table, call.body.get("values"), "values")?;
    let row = call.state.engine.update_row(call.access(), &call.table, id, &values).await.map_err(row_not_found(id))?;
    let row = one_row(row);
    Ok(json!({"recordsImpacted": 1, "computationStatus": status_of(&row), "updatedRow": row}))
}

async fn run_batch_update(call: &Call, _: &HeaderMap) -> AutessaResult<Value> {
    let mut paths = Paths::default();
    let update = match (call.body.get("rows").filter(|v| !v.is_null()), call.body.get("filters").filter(|v| !v.is_null())) {
        (Some(_), Some(_)) => return Err(AutessaError::bad_request("give `filters` with `values`, or `rows: [{rowId, values}]`, not both")),
        (Some(Value::Array(rows)), None) => {
            let mut out = Vec::new();
            for (i, row) in rows.iter().enumerate() {
                let Value::Object(row) = row else {
                    return Err(AutessaError::bad_request(format!("rows[{i}] must be {{rowId, values}}")));
                };
                let id = row_id(row).map_err(|e| AutessaError::bad_request(format!("rows[{i}].{}", e.errors[0])))?;
                paths.add(format!("rows[{i}].values"), format!("rows[{i}].values"));
                out.push((id, values_in(&call.table, row.get("values"), &format!("rows[{i}].values"))?));
            }
            BatchUpdate::Rows(out)
        }
        (Some(_), None) => return Err(AutessaError::bad_request("rows must be a list of {rowId, values}")),
        (None, Some(_)) => {
            let filter = batch_filter(call, &mut paths)?;
            BatchUpdate::Filter { filter: Some(filter), values: values_in(&call.table, call.body.get("values"), "values")? }
        }
        (None, None) => return Err(AutessaError::bad_request("give `filters` with `values`, or `rows: [{rowId, values}]`")),
    };
    let n = call.state.engine.update_rows(call.access(), &call.table, &update).await.map_err(|e| engine_error(e, &paths))?;
    Ok(json!({"recordsImpacted": n}))
}

async fn run_delete_row(call: &Call, _: &HeaderMap) -> AutessaResult<Value> {
    let id = row_id(&call.body)?;
    call.state.engine.delete_row(call.access(), &call.table, id).await.map_err(row_not_found(id))?;
    Ok(json!({"recordsImpacted": 1}))
}

async fn run_batch_delete(call: &Call, _: &HeaderMap) -> AutessaResult<Value> {
    let mut paths = Paths::default();
    let delete = match (call.body.get("rowIds").filter(|v| !v.is_null()), call.body.get("filters").filter(|v| !v.is_null())) {
        (Some(raw), None) => BatchDelete::Ids(ids(raw, "rowIds")?),
        (None, Some(_)) => BatchDelete::Filter(batch_filter(call, &mut paths)?),
        _ => return Err(AutessaError::bad_request("give `rowIds: [uniqueId…]` or `filters` (one of them)")),
    };
    paths.add("ids", "rowIds");
    let n = call.state.engine.delete_rows(call.access(), &call.table, &delete).await.map_err(|e| engine_error(e, &paths))?;
    Ok(json!({"recordsImpacted": n}))
}

async fn run_index_record(call: &Call, _: &HeaderMap) -> AutessaResult<Value> {
    let id = row_id(&call.body)?;
    let engine = &call.state.engine;
    if !call.table.has_vectorized() {
        // Nothing to compute; the row must still be there (WRITE was checked on open).
        engine.get_row(Access::Project, &call.table, id).await.map_err(row_not_found(id))?;
        return Ok(json!({"computationStatus": "DONE"}));
    }
    let status = engine.reindex_row(call.access(), &call.table, id).await.map_err(row_not_found(id))?;
    Ok(json!({"computationStatus": computation(status.as_deref().unwrap_or(vector_status::PENDING))}))
}

async fn run_generate_upload_link(call: &Call, headers: &HeaderMap) -> AutessaResult<Value> {
    match call.body.get("fileType") {
        None | Some(Value::Null) => {}
        Some(Value::String(t)) if t.eq_ignore_ascii_case("csv") => {}
        Some(other) => return Err(AutessaError::bad_request(format!("fileType: only CSV files can be uploaded, got {other}"))),
    }
    let (token, expires_at) = call.state.engine.create_upload_link(call.access(), &call.table).await?;
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    let scheme = headers.get("x-forwarded-proto").and_then(|h| h.to_str().ok()).filter(|p| *p == "https").unwrap_or("http");
    Ok(json!({
        "uploadUrl": format!("{scheme}://{host}/clients/autessadb/uploads/{token}"),
        "tempPath": token,
        "fileName": call.body.get("fileName"),
        "expiresAt": expires_at,
    }))
}

/// An upload link's token: 64 hex digits (a whole `uploadUrl` is read to its last segment).
fn token_of(raw: &str) -> Option<&str> {
    let token = raw.trim().trim_end_matches('/').rsplit('/').next().unwrap_or_default();
    (token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit())).then_some(token)
}

fn upload_not_found() -> AutessaError {
    AutessaError::new(StatusCode::NOT_FOUND, "Upload not found: the link was never made for this table, or was used already")
}

fn upload_error(e: EngineError) -> AutessaError {
    match e {
        EngineError::NotFound => upload_not_found(),
        other => other.into(),
    }
}

/// One `errors` line per CSV line at fault.
fn import_refused(refused: ImportRefused) -> AutessaError {
    let errors = refused
        .errors
        .into_iter()
        .map(|e| match e.column {
            Some(column) => format!("line {}: column {column}: {}", e.line, e.message),
            None => format!("line {}: {}", e.line, e.message),
        })
        .collect();
    AutessaError { status: StatusCode::BAD_REQUEST, errors, retry_after: None }
}

async fn run_batch_insert(call: &Call, _: &HeaderMap) -> AutessaResult<Value> {
    let raw = call.body.get("tempPath").and_then(Value::as_str).ok_or_else(|| AutessaError::bad_request("tempPath is required: the tempPath generate-upload-link answered"))?;
    let token = token_of(raw).ok_or_else(upload_not_found)?;
    let delimiter = match call.body.get("fileDelimiter").and_then(Value::as_str).map(str::to_ascii_uppercase).as_deref() {
        None | Some("COMMA") => b',',
        Some("SEMICOLON") => b';',
        Some("TAB") => b'\t',
        Some("PIPE") => b'|',
        Some(other) => return Err(AutessaError::bad_request(format!("fileDelimiter: unknown delimiter `{other}`: COMMA, SEMICOLON, TAB or PIPE"))),
    };
    match call.state.engine.import_staged_upload(call.access(), &call.table, token, delimiter).await.map_err(upload_error)? {
        Ok(n) => Ok(json!({"recordsImpacted": n})),
        Err(refused) => Err(import_refused(refused)),
    }
}

/// `PUT /clients/autessadb/uploads/{token}`: keeps the CSV for `batch-insert` (no key: the
/// link is the key).
pub(super) async fn upload(State(state): State<AppState>, Path(token): Path<String>, body: Result<Bytes, BytesRejection>) -> AutessaResult<Response> {
    let token = token_of(&token).ok_or_else(upload_not_found)?;
    let body = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => AutessaError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("A CSV is at most {} bytes", agentd_engine::MAX_CSV_BYTES)),
        status => AutessaError::new(status, format!("Could not read the file: {rejection}")),
    })?;
    state.engine.stage_upload(token, &body).await.map_err(upload_error)?;
    Ok(ok(json!({"bytes": body.len()})))
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentd_domain::table::check_new_columns;
    use agentd_domain::{ProjectId, TableId};

    fn table() -> TableDef {
        let columns = check_new_columns(
            &[],
            &[("name".into(), ColumnType::String, false, true), ("price".into(), ColumnType::Float, false, false), ("seen".into(), ColumnType::Timestamp, false, false)],
            "columns",
        )
        .unwrap();
        TableDef { id: TableId::new(), resource_number: 7, project_id: ProjectId::new(), name: "products".into(), description: String::new(), columns, created_at: chrono::Utc::now(), updated_at: chrono::Utc::now() }
    }

    #[test]
    fn values_come_flat_as_pairs_or_as_a_list() {
        let t = table();
        let flat = values_in(&t, Some(&json!({"name": "a", "price": 2.5})), "values").unwrap();
        let pairs = values_in(&t, Some(&json!({"name": {"columnType": "STRING", "value": "a"}, "price": {"columnType": "FLOAT", "value": "2.5"}})), "values").unwrap();
        let list = values_in(&t, Some(&json!([{"columnName": "name", "value": {"columnType": "UNKNOWN", "value": "a"}}, {"columnName": "price", "value": 2.5}])), "values").unwrap();
        assert_eq!(flat, pairs);
        assert_eq!(flat, list);
        let number_as_text = values_in(&t, Some(&json!({"name": {"columnType": "UNKNOWN", "value": 42}})), "values").unwrap();
        assert_eq!(number_as_text["name"], json!("42"));
        assert_eq!(values_in(&t, Some(&json!({"seen": "1970-01-02"})), "values").unwrap()["seen"], json!("1970-01-02T00:00:00.000Z"));
        let e = values_in(&t, Some(&json!({"price": "abc"})), "values").unwrap_err();
        assert_eq!(e.errors, vec!["values.price: `abc` is not a number"]);
        let e = values_in(&t, Some(&json!({"price": {"columnType": "MONEY", "value": 1}})), "values").unwrap_err();
        assert!(e.errors[0].starts_with("values.price.columnType: unknown type"), "{:?}", e.errors);
        assert!(values_in(&t, None, "values").is_err());
    }

    #[test]
    fn rows_read_with_autessa_system_names() {
        let row = json!({"id": 1, "created_at": "t0", "updated_at": "t1", "vector_status": null, "name": "a", "o.id": 3, "o.vector_status": "PENDING"});
        let out = row_out(row.as_object().unwrap().clone());
        assert_eq!(Value::Object(out), json!({"uniqueId": 1, "createdAt": "t0", "lastUpdated": "t1", "name": "a", "o.uniqueId": 3, "o.computationStatus": "COMPUTING"}));
    }

    #[test]
    fn pagination_is_ten_to_fifty() {
        let p = |v: Value| pagination(v.as_object().unwrap());
        assert_eq!(p(json!({})).unwrap(), (0, 50, true));
        assert_eq!(p(json!({"pagination": {"currentPage": 2, "totalRecordsPerPage": 10, "ascending": false}})).unwrap(), (2, 10, false));
        assert_eq!(p(json!({"pagination": {"totalRecordsPerPage": 50}})).unwrap().1, 50);
        for bad in [9, 51] {
            let e = p(json!({"pagination": {"totalRecordsPerPage": bad}})).unwrap_err();
            assert_eq!(e.errors, vec![format!("pagination.totalRecordsPerPage is 10 to 50, got {bad}")]);
        }
        assert!(p(json!({"pagination": {"currentPage": -1}})).is_err());
    }

    #[test]
    fn where_filters_become_the_native_tree_and_errors_read_back() {
        let t = table();
        let sources = Sources { tables: vec![(&t, t.name.clone())] };
        let raw = json!({"operand": "OR", "groups": [
            {"operand": "AND", "statements": [{"operator": "GREATER_THAN", "column": {"columnName": "price"}, "value": "2"}, {"operator": "IS_NULL", "column": "name", "value": ""}]},
            {"operand": "AND", "statements": []},
            {"statements": [{"operator": "LIKE", "column": {"columnName": "name", "tableAlias": null}, "value": "A%"}]}]});
        let mut paths = Paths::default();
        let tree = where_filter(&sources, Some(&raw), "filters", "filter", &mut paths).unwrap().unwrap();
        assert_eq!(
            tree,
            json!({"or": [
                {"and": [{"column": "price", "op": "GREATER_THAN", "value": 2.0}, {"column": "name", "op": "IS_NULL", "value": null}]},
                {"and": [{"column": "name", "op": "LIKE", "value": "A%"}]}]})
        );
        let e = paths.error(FieldError::new("filter.or[1].and[0].op", "like compares text"));
        assert_eq!(e.errors, vec!["filters.groups[2].statements[0].operator: like compares text"]);
        let e = paths.error(FieldError::new("filter.or[0].and[1].value", "filter.or[0].and[1].value: expected a string"));
        assert_eq!(e.errors, vec!["filters.groups[0].statements[1].value: expected a string"]);
        assert!(where_filter(&sources, Some(&json!({"groups": []})), "filters", "filter", &mut paths).unwrap().is_none());
        let bad = json!({"groups": [{"statements": [{"operator": "BETWEEN", "column": "price", "value": 1}]}]});
        assert!(where_filter(&sources, Some(&bad), "filters", "filter", &mut paths).unwrap_err().errors[0].starts_with("filters.groups[0].statements[0].operator: unknown operator"));
    }

    #[test]
    fn upload_tokens_are_read_from_a_path_or_url() {
        let token = "a".repeat(64);
        assert_eq!(token_of(&token), Some(token.as_str()));
        assert_eq!(token_of(&format!("http://h/clients/autessadb/uploads/{token}")), Some(token.as_str()));
        assert_eq!(token_of("nope"), None);
    }
}
