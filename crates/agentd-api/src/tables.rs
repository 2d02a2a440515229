//! `/v1/tables`: the project's small database — typed columns, rows (one or in batches),
//! queries (nested AND/OR filters, sort, pages, joins with aliases, aggregates, group by),
//! full-text search, CSV import (direct, or through a single-use upload link) and per-key
//! permissions (READ, WRITE, DELETE).
//!
//! Wire choices:
//! - `{table}` in a path is the table's id (UUID), its resource number or its name.
//! - A row is a flat object: the system columns `id`, `created_at`, `updated_at`,
//!   `vector_status` (null unless the table has a vectorized column) beside the user columns.
//!   In a join every key is `alias.column`; an aggregate is keyed by its `alias`, or
//!   `function(column)` (`count(*)`, `sum(price)`).
//! - Pages are `{data, total, page, per_page}` (page 0-based, per_page 1..=100, default 20).
//! - A CSV import is all or nothing: a bad line answers 400 with
//!   `error.errors: [{line, column, message}]` (the first 20) and nothing is inserted.
//! - A key's grant lacking the permission answers 403 `permission_denied` with the message
//!   `Permission denied: READ access required` (WRITE, DELETE likewise). Changing or deleting
//!   a table, or its grants, needs all three (`manage`): a limited key cannot lift its limits.
//! - Search is `fulltext` (default), `semantic` or `hybrid` (the engine's `semantic.rs`).

use agentd_domain::table::{ColumnType, SortSpec};
use agentd_domain::{ApiKeyId, ColumnDef, QuerySpec, RowPage, TableDef, TablePermission};
use agentd_engine::{Access, BatchDelete, BatchUpdate, EngineError, ImportRefused, NewColumn, Search, SearchMode, TableChange};
use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::extract::{JsonBody, QueryParams, parse_id, read_body};
use crate::state::AppState;

/// A column as a request describes it.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ColumnRequest {
    /// Its name: letters, digits and `_` (not a system name: id, created_at, updated_at,
    /// vector_status, uniqueId, createdAt, lastUpdated).
    #[schema(pattern = "^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
    pub name: String,
    /// string, long_text, integer, float, boolean or timestamp.
    #[serde(rename = "type")]
    #[schema(pattern = "^([Ss][Tt][Rr][Ii][Nn][Gg]|[Ll][Oo][Nn][Gg]_[Tt][Ee][Xx][Tt]|[Ii][Nn][Tt][Ee][Gg][Ee][Rr]|[Ff][Ll][Oo][Aa][Tt]|[Bb][Oo][Oo][Ll][Ee][Aa][Nn]|[Tt][Ii][Mm][Ee][Ss][Tt][Aa][Mm][Pp])$")]
    pub column_type: String,
    /// Embed it for semantic search (text columns only).
    pub vectorized: Option<bool>,
    /// Rows must have a value.
    pub required: Option<bool>,
}

/// `POST /v1/tables`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTableRequest {
    /// Unique in the project: letters, digits and `_`, at most 64 (required).
    #[schema(value_type = String, pattern = "^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
    pub name: Option<String>,
    /// What it holds.
    pub description: Option<String>,
    /// Its columns (at most 100).
    #[schema(max_items = 100)]
    pub columns: Option<Vec<ColumnRequest>>,
}

/// `PATCH /v1/tables/{table}`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchTableRequest {
    /// A new name.
    #[schema(pattern = "^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
    pub name: Option<String>,
    /// A new description.
    pub description: Option<String>,
    /// Columns to add at the end.
    pub add_columns: Option<Vec<ColumnRequest>>,
}

/// A column.
#[derive(Debug, Serialize, ToSchema)]
pub struct ColumnView {
    /// Its name.
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub column_type: String,
    /// Embedded for semantic search.
    pub vectorized: bool,
    /// Rows must have a value.
    pub required: bool,
}

/// A table.
#[derive(Debug, Serialize, ToSchema)]
pub struct TableView {
    /// Its id.
    pub id: String,
    /// Its resource number (unique on the server; the Autessa API's `resourceId`).
    pub resource_id: u64,
    /// Its name.
    pub name: String,
    /// What it holds.
    pub description: String,
    /// Its user columns, in order (every row also has id, created_at, updated_at, vector_status).
    pub columns: Vec<ColumnView>,
    /// Rows it holds.
    pub row_count: u64,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When its definition last changed.
    pub updated_at: DateTime<Utc>,
}

/// The project's tables.
#[derive(Debug, Serialize, ToSchema)]
pub struct TableList {
    /// Newest first.
    pub data: Vec<TableView>,
}

/// `POST /v1/tables/{table}/rows`: one row (`values`) or a batch (`rows`, all or none).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InsertRequest {
    /// One row: `{column: value}`.
    #[schema(value_type = Option<Object>)]
    pub values: Option<Map<String, Value>>,
    /// Several rows (at most 1,000), inserted together or not at all.
    #[schema(value_type = Option<Vec<Object>>, max_items = 1000)]
    pub rows: Option<Vec<Map<String, Value>>>,
}

/// `PATCH /v1/tables/{table}/rows/{row_id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRowRequest {
    /// The values to set, `{column: value}` (the columns left out keep theirs).
    #[schema(value_type = Object)]
    pub values: Map<String, Value>,
}

/// What a batch insert did.
#[derive(Debug, Serialize, ToSchema)]
pub struct Inserted {
    /// Rows inserted.
    pub inserted: u64,
    /// Their ids, in order.
    pub ids: Vec<i64>,
}

/// A page of rows.
#[derive(Debug, Serialize, ToSchema)]
pub struct RowsPage {
    /// The rows (flat objects).
    #[schema(value_type = Vec<Object>)]
    pub data: Vec<Map<String, Value>>,
    /// Rows matching in all.
    pub total: u64,
    /// This page (0-based).
    pub page: u64,
    /// Rows per page.
    pub per_page: u32,
}

/// `GET /v1/tables/{table}/rows` query.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListRowsQuery {
    /// 0-based page.
    pub page: Option<u64>,
    /// Rows per page (1..=100).
    pub per_page: Option<u32>,
    /// A column to sort by (default id).
    pub sort: Option<String>,
    /// asc or desc.
    pub direction: Option<String>,
}

/// `POST /v1/tables/{table}/rows/batch-update`: `{filter, values}` (a filter, or `all: true`)
/// or `{rows: [{id, values}]}`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchUpdateRequest {
    /// Which rows (see the query's `filter`).
    #[schema(value_type = Option<Object>)]
    pub filter: Option<Value>,
    /// Every row (instead of a filter).
    pub all: Option<bool>,
    /// The values to set on them.
    #[schema(value_type = Option<Object>)]
    pub values: Option<Map<String, Value>>,
    /// Or each row its own values (at most 1,000).
    #[schema(max_items = 1000)]
    pub rows: Option<Vec<RowUpdate>>,
}

/// One row of a batch update.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RowUpdate {
    /// The row.
    pub id: i64,
    /// Its new values.
    #[schema(value_type = Object)]
    pub values: Map<String, Value>,
}

/// `POST /v1/tables/{table}/rows/batch-delete`: `{ids}`, `{filter}` or `{all: true}`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchDeleteRequest {
    /// These rows (at most 1,000).
    #[schema(max_items = 1000)]
    pub ids: Option<Vec<i64>>,
    /// The rows matching.
    #[schema(value_type = Option<Object>)]
    pub filter: Option<Value>,
    /// Every row.
    pub all: Option<bool>,
}

/// How many rows changed.
#[derive(Debug, Serialize, ToSchema)]
pub struct Updated {
    /// Rows updated.
    pub updated: u64,
}

/// How many rows went.
#[derive(Debug, Serialize, ToSchema)]
pub struct Deleted {
    /// Rows deleted.
    pub deleted: u64,
}

/// `POST /v1/tables/{table}/query` (documentation of the body, which the domain's `QuerySpec`
/// reads; see the module docs).
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryRequestDoc {
    /// The main table's alias (default its name).
    pub alias: Option<String>,
    /// Output columns and aggregates (default: every column of every source).
    #[schema(max_items = 200)]
    pub select: Option<Vec<SelectDoc>>,
    /// `{"and"|"or": [filter…]}` or `{"column", "op": eq|ne|lt|lte|gt|gte|like|in|is_null|is_not_null, "value"}`,
    /// groups nested at most 5 deep, at most 50 conditions.
    #[schema(value_type = Option<Object>)]
    pub filter: Option<Value>,
    /// Sort keys (at most 5).
    #[schema(max_items = 5)]
    pub sort: Option<Vec<SortDoc>>,
    /// 0-based page.
    pub page: Option<u64>,
    /// Rows per page (1..=100, default 20).
    #[schema(minimum = 1, maximum = 100)]
    pub per_page: Option<u32>,
    /// One join, or a list of up to 3; with joins, columns are named `alias.column`.
    #[schema(schema_with = joins_schema)]
    pub join: Option<Value>,
    /// Columns to group by.
    #[schema(max_items = 200)]
    pub group_by: Option<Vec<String>>,
}

/// An output column of a query.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SelectDoc {
    /// A column (`name`, `alias.name`, or `*` with `count`).
    pub column: String,
    /// Its key in the output (default: the column as written, or `function(column)`).
    pub alias: Option<String>,
    /// count, sum, min, max or avg.
    pub function: Option<String>,
}

/// A sort key of a query.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SortDoc {
    /// A column, or an output name of `select`.
    pub column: String,
    /// asc (default) or desc.
    #[schema(pattern = "^([Aa][Ss][Cc]|[Dd][Ee][Ss][Cc])$")]
    pub direction: Option<String>,
}

/// A joined table.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinDoc {
    /// The table: its id, resource number or name.
    #[schema(value_type = Object)]
    pub table: Value,
    /// Its alias (default: its name).
    pub alias: Option<String>,
    /// inner (default) or left.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// The condition.
    pub on: JoinOnDoc,
}

/// A join condition.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinOnDoc {
    /// A column of an earlier table (`alias.column`).
    pub left: String,
    /// A column of the joined table.
    pub right: String,
}

/// `join`: one join, or a list of up to [`agentd_domain::table::MAX_JOINS`].
fn joins_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::PartialSchema;
    use utoipa::openapi::schema::{ArrayBuilder, Object, OneOfBuilder, Schema, Type};
    Schema::OneOf(
        OneOfBuilder::new()
            .item(JoinDoc::schema())
            .item(ArrayBuilder::new().items(JoinDoc::schema()).max_items(Some(agentd_domain::table::MAX_JOINS)))
            .item(Object::with_type(Type::Null))
            .build(),
    )
}

/// `POST /v1/tables/{table}/search`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    /// The words (required: 1 to 32 words, at most 1,000 characters).
    #[schema(value_type = String, max_length = 1_000, pattern = r"\S")]
    pub query: Option<String>,
    /// Text columns to look in (default: all).
    pub columns: Option<Vec<String>>,
    /// Results at most (1..=100, default 10).
    #[schema(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// fulltext (default); semantic and hybrid need an embedding model.
    #[schema(pattern = "^([Ff][Uu][Ll][Ll]_?[Tt][Ee][Xx][Tt]|[Ss][Ee][Mm][Aa][Nn][Tt][Ii][Cc]|[Hh][Yy][Bb][Rr][Ii][Dd])$")]
    pub mode: Option<String>,
}

/// Search results, best first; each row has a `score` (higher is better).
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchResults {
    /// The rows.
    #[schema(value_type = Vec<Object>)]
    pub data: Vec<Map<String, Value>>,
}

/// What an import did.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportResult {
    /// Rows inserted.
    pub inserted: u64,
}

/// An upload link.
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadLinkView {
    /// PUT a CSV here (no API key needed: the link is the key; it works once).
    pub upload_url: String,
    /// The same, as a path on this server.
    pub upload_path: String,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

/// `PUT /v1/tables/{table}/permissions/{key_id}`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PermissionsRequest {
    /// READ, WRITE and/or DELETE (required).
    #[schema(schema_with = permissions_schema, required = true)]
    pub permissions: Option<Vec<String>>,
}

/// `permissions`: READ, WRITE and/or DELETE (any case).
fn permissions_schema() -> utoipa::openapi::schema::Schema {
    let permission = utoipa::openapi::schema::ObjectBuilder::new().pattern(Some("^([Rr][Ee][Aa][Dd]|[Ww][Rr][Ii][Tt][Ee]|[Dd][Ee][Ll][Ee][Tt][Ee])$"));
    crate::contract::strings(None, permission, false)
}

/// A key's grant on a table.
#[derive(Debug, Serialize, ToSchema)]
pub struct PermissionView {
    /// The key's id.
    pub key_id: String,
    /// What it may do.
    pub permissions: Vec<String>,
}

/// The grants on a table (keys without one may do everything).
#[derive(Debug, Serialize, ToSchema)]
pub struct PermissionList {
    /// By key.
    pub data: Vec<PermissionView>,
}

/// A row's vectorization status.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReindexView {
    /// PENDING until the vectorizer has embedded it.
    pub vector_status: Option<String>,
}

fn table_not_found(error: EngineError) -> ApiError {
    match error {
        EngineError::NotFound => ApiError::not_found("table"),
        other => other.into(),
    }
}

fn row_not_found(error: EngineError) -> ApiError {
    match error {
        EngineError::NotFound => ApiError::not_found("row"),
        other => other.into(),
    }
}

async fn find(state: &AppState, caller: &Caller, raw: &str) -> ApiResult<TableDef> {
    state.engine.find_table(caller.project_id, raw).await.map_err(table_not_found)
}

fn access(caller: &Caller) -> Access {
    Access::Key(caller.key_id)
}

/// Changing a table itself (its definition, its grants) or deleting it needs every
/// permission on it: a key with a narrower grant cannot widen it or remove the table.
async fn manage(state: &AppState, caller: &Caller, table: &agentd_domain::TableDef) -> ApiResult<()> {
    for needed in [TablePermission::Read, TablePermission::Write, TablePermission::Delete] {
        state.engine.check_table_access(access(caller), table, needed).await?;
    }
    Ok(())
}

fn columns(raw: Vec<ColumnRequest>, field: &str) -> ApiResult<Vec<NewColumn>> {
    raw.into_iter()
        .enumerate()
        .map(|(i, c)| {
            let column_type = ColumnType::parse(&c.column_type).ok_or_else(|| {
                ApiError::invalid(format!("{field}[{i}].type"), format!("unknown column type `{}`: string, long_text, integer, float, boolean or timestamp", c.column_type))
            })?;
            Ok(NewColumn { name: c.name, column_type, vectorized: c.vectorized.unwrap_or(false), required: c.required.unwrap_or(false) })
        })
        .collect()
}

fn description(raw: Option<String>) -> ApiResult<Option<String>> {
    let Some(text) = raw else { return Ok(None) };
    if text.chars().count() > agentd_domain::table::MAX_DESCRIPTION_CHARS {
        return Err(ApiError::invalid("description", format!("description is at most {} characters", agentd_domain::table::MAX_DESCRIPTION_CHARS)));
    }
    Ok(Some(text))
}

fn column_view(c: &ColumnDef) -> ColumnView {
    ColumnView { name: c.name.clone(), column_type: c.column_type.as_str().to_owned(), vectorized: c.vectorized, required: c.required }
}

async fn view(state: &AppState, table: &TableDef) -> ApiResult<TableView> {
    Ok(TableView {
        id: table.id.to_string(),
        resource_id: table.resource_number,
        name: table.name.clone(),
        description: table.description.clone(),
        columns: table.columns.iter().map(column_view).collect(),
        row_count: state.engine.count_rows(table).await?,
        created_at: table.created_at,
        updated_at: table.updated_at,
    })
}

fn one_row(page: RowPage) -> Map<String, Value> {
    page.objects().into_iter().next().unwrap_or_default()
}

fn rows_page(page: RowPage, number: u64, per_page: u32) -> RowsPage {
    RowsPage { total: page.total, data: page.objects(), page: number, per_page }
}

fn import_refused(refused: ImportRefused) -> ApiError {
    let n = refused.errors.len();
    let errors: Vec<Value> = refused.errors.into_iter().map(|e| json!({"line": e.line, "column": e.column, "message": e.message})).collect();
    let mut error = ApiError::invalid("body", format!("{n} problem(s) in the CSV (listed in `errors`, at most 20); nothing was imported"));
    error.errors = Some(Value::Array(errors));
    error
}

fn row_id(raw: &str) -> ApiResult<i64> {
    raw.parse().map_err(|_| ApiError::invalid("row_id", format!("`{raw}` is not a row id (an integer)")))
}

/// Create a table.
#[utoipa::path(post, path = "/v1/tables", tag = "tables", request_body = CreateTableRequest,
    responses((status = 201, body = TableView), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)), security(("api_key" = [])))]
pub async fn create_table(State(state): State<AppState>, caller: Caller, JsonBody(req): JsonBody<CreateTableRequest>) -> ApiResult<(StatusCode, Json<TableView>)> {
    let name = req.name.ok_or_else(|| ApiError::invalid("name", "name is required"))?;
    let cols = columns(req.columns.unwrap_or_default(), "columns")?;
    let table = state.engine.create_table(caller.project_id, name, description(req.description)?.unwrap_or_default(), cols).await?;
    Ok((StatusCode::CREATED, Json(view(&state, &table).await?)))
}

/// The project's tables.
#[utoipa::path(get, path = "/v1/tables", tag = "tables", responses((status = 200, body = TableList)), security(("api_key" = [])))]
pub async fn list_tables(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<TableList>> {
    let mut data = Vec::new();
    for table in state.engine.list_tables(caller.project_id).await? {
        data.push(view(&state, &table).await?);
    }
    Ok(Json(TableList { data }))
}

/// One table: its columns and row count.
#[utoipa::path(get, path = "/v1/tables/{table}", tag = "tables", params(("table" = String, Path, description = "Table id, resource number or name")),
    responses((status = 200, body = TableView), (status = 404, body = ErrorBody)), security(("api_key" = [])))]
pub async fn get_table(State(state): State<AppState>, caller: Caller, Path(table): Path<String>) -> ApiResult<Json<TableView>> {
    let table = find(&state, &caller, &table).await?;
    Ok(Json(view(&state, &table).await?))
}

/// Rename a table, change its description, add columns.
#[utoipa::path(patch, path = "/v1/tables/{table}", tag = "tables", request_body = PatchTableRequest, params(("table" = String, Path, description = "Table id, resource number or name")),
    responses((status = 200, body = TableView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)), security(("api_key" = [])))]
pub async fn patch_table(State(state): State<AppState>, caller: Caller, Path(table): Path<String>, JsonBody(req): JsonBody<PatchTableRequest>) -> ApiResult<Json<TableView>> {
    let table = find(&state, &caller, &table).await?;
    manage(&state, &caller, &table).await?;
    let change = TableChange { name: req.name, description: description(req.description)?, add_columns: columns(req.add_columns.unwrap_or_default(), "add_columns")? };
    let table = state.engine.update_table(&table, change).await.map_err(table_not_found)?;
    Ok(Json(view(&state, &table).await?))
}

/// Delete a table and all its rows.
#[utoipa::path(delete, path = "/v1/tables/{table}", tag = "tables", params(("table" = String, Path, description = "Table id, resource number or name")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("api_key" = [])))]
pub async fn delete_table(State(state): State<AppState>, caller: Caller, Path(table): Path<String>) -> ApiResult<StatusCode> {
    let table = find(&state, &caller, &table).await?;
    manage(&state, &caller, &table).await?;
    state.engine.delete_table(&table).await.map_err(table_not_found)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Insert a row (`values`: answers the row) or a batch (`rows`: all or none).
#[utoipa::path(post, path = "/v1/tables/{table}/rows", tag = "tables", request_body = InsertRequest, params(("table" = String, Path, description = "Table id, resource number or name")),
    responses((status = 201, body = Object), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("api_key" = [])))]
pub async fn insert_rows(State(state): State<AppState>, caller: Caller, Path(table): Path<String>, JsonBody(req): JsonBody<InsertRequest>) -> ApiResult<(StatusCode, Json<Value>)> {
    let table = find(&state, &caller, &table).await?;
    match (req.values, req.rows) {
        (Some(values), None) => {
            let row = state.engine.insert_row(access(&caller), &table, &values).await?;
            Ok((StatusCode::CREATED, Json(Value::Object(one_row(row)))))
        }
        (None, Some(rows)) => {
            let ids = state.engine.insert_rows(access(&caller), &table, &rows).await?;
            Ok((StatusCode::CREATED, Json(json!(Inserted { inserted: ids.len() as u64, ids }))))
        }
        _ => Err(ApiError::invalid("values", "give either `values` (one row) or `rows` (a batch)")),
    }
}

/// A page of rows.
#[utoipa::path(get, path = "/v1/tables/{table}/rows", tag = "tables",
    params(("table" = String, Path, description = "Table id, resource number or name"), ("page" = Option<u64>, Query, description = "0-based"),
        ("per_page" = Option<u32>, Query, minimum = 1, maximum = 100, description = "1..=100, default 20"),
        ("sort" = Option<String>, Query, description = "A column (default id)"),
        ("direction" = Option<String>, Query, pattern = "^([Aa][Ss][Cc]|[Dd][Ee][Ss][Cc])$", description = "asc (default) or desc")),
    responses((status = 200, body = RowsPage), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("api_key" = [])))]
pub async fn list_rows(State(state): State<AppState>, caller: Caller, Path(table): Path<String>, QueryParams(q): QueryParams<ListRowsQuery>) -> ApiResult<Json<RowsPage>> {
    let table = find(&state, &caller, &table).await?;
    let (page, per_page) = (q.page.unwrap_or(0), q.per_page.unwrap_or(agentd_domain::table::DEFAULT_PER_PAGE));
    // A direction alone orders by the default column.
    let sort = match (q.sort, q.direction) {
        (None, None) => None,
        (column, direction) => Some(SortSpec { column: column.unwrap_or_else(|| "id".to_owned()), direction }),
    };
    // The engine names the sort as a query body would (`sort[0].column`); here they are parameters.
    let rows = state.engine.list_rows(access(&caller), &table, page, per_page, sort).await.map_err(|error| match error {
        EngineError::Invalid(mut invalid) => {
            invalid.field = match invalid.field.as_str() {
                "sort[0].column" => "sort".to_owned(),
                "sort[0].direction" => "direction".to_owned(),
                _ => invalid.field,
            };
            EngineError::Invalid(invalid)
        }
        other => other,
    })?;
    Ok(Json(rows_page(rows, page, per_page)))
}

/// One row.
#[utoipa::path(get, path = "/v1/tables/{table}/rows/{row_id}", tag = "tables",
    params(("table" = String, Path, description = "Table id, resource number or name"), ("row_id" = i64, Path, description = "Row id")),
    responses((status = 200, body = Object), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("api_key" = [])))]
pub async fn get_row(State(state): State<AppState>, caller: Caller, Path((table, row)): Path<(String, String)>) -> ApiResult<Json<Map<String, Value>>> {
    let table = find(&state, &caller, &table).await?;
    let row = state.engine.get_row(access(&caller), &table, row_id(&row)?).await.map_err(row_not_found)?;
    Ok(Json(one_row(row)))
}

/// Change a row's values (those given).
#[utoipa::path(patch, path = "/v1/tables/{table}/rows/{row_id}", tag = "tables", request_body = UpdateRowRequest,
    params(("table" = String, Path, description = "Table id, resource number or name"), ("row_id" = i64, Path, description = "Row id")),
    responses((status = 200, body = Object), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("api_key" = [])))]
pub async fn update_row(State(state): State<AppState>, caller: Caller, Path((table, row)): Path<(String, String)>, JsonBody(req): JsonBody<UpdateRowRequest>) -> ApiResult<Json<Map<String, Value>>> {
    let table = find(&state, &caller, &table).await?;
    let row = state.engine.update_row(access(&caller), &table, row_id(&row)?, &req.values).await.map_err(row_not_found)?;
    Ok(Json(one_row(row)))
}

/// Delete a row.
#[utoipa::path(delete, path = "/v1/tables/{table}/rows/{row_id}", tag = "tables",
    params(("table" = String, Path, description = "Table id, resource number or name"), ("row_id" = i64, Path, description = "Row id")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("api_key" = [])))]
pub async fn delete_row(State(state): State<AppState>, caller: Caller, Path((table, row)): Path<(String, String)>) -> ApiResult<StatusCode> {
    let table = find(&state, &caller, &table).await?;
    state.engine.delete_row(access(&caller), &table, row_id(&row)?).await.map_err(row_not_found)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Update many rows: the same values on the rows a filter matches, or each row its own.
#[utoipa::path(post, path = "/v1/tables/{table}/rows/batch-update", tag = "tables", request_body = BatchUpdateRequest,
    params(("table" = String, Path, description = "Table id, resource number or name")),
    responses((status = 200, body = Updated), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)), security(("api_key" = [])))]
pub async fn batch_update(State(state): State<AppState>, caller: Caller, Path(table): Path<String>, JsonBody(req): JsonBody<BatchUpdateRequest>) -> ApiResult<Json<Updated>> {
    let table = find(&state, &caller, &table).await?;
    let update = match (req.rows, req.values) {
        (Some(rows), None) if req.filter.is_none() && req.all.is_none() => BatchUpdate::Rows(rows.into_iter().map(|r| (r.id, r.values)).collect()),
        (None, Some(values)) => match (req.filter, req.all) {
            (Some(filter), None) => BatchUpdate::Filter { filter: Some(filter), values },
            (None, Some(true)) => BatchUpdate::Filter { filter: None, values },
            _ => return Err(ApiError::invalid("filter", "give a `filter`, or `all: true` to update every row")),
        },
        _ => return Err(ApiError::invalid("values", "give `filter` (or `all: true`) with `values`, or `rows: [{id, values}]`")),
    };
    Ok(Json(Updated { updated: state.engine.update_rows(access(&caller), &table, &update).await? }))
}

/// Delete many rows: by ids, by filter, or every row (`all: true`).
#[utoipa::path(post, path = "/v1/tables/{table}/rows/batch-delete", tag = "tables", request_body = BatchDeleteRequest,
    params(("table" = String, Path, description = "Table id, resource number or name")),
    responses((status = 200, body = Deleted), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)), security(("api_key" = [])))]
pub async fn batch_delete(State(state): State<AppState>, caller: Caller, Path(table): Path<String>, JsonBody(req): JsonBody<BatchDeleteRequest>) -> ApiResult<Json<Deleted>> {
    let table = find(&state, &caller, &table).await?;
    let delete = match (req.ids, req.filter, req.all) {
        (Some(ids), None, None) => BatchDelete::Ids(ids),
        (None, Some(filter), None) => BatchDelete::Filter(filter),
        (None, None, Some(true)) => BatchDelete::All,
        _ => return Err(ApiError::invalid("ids", "give one of `ids`, `filter`, or `all: true` (to delete every row)")),
    };
    Ok(Json(Deleted { deleted: state.engine.delete_rows(access(&caller), &table, &delete).await? }))
}

/// Query a table: selection and aggregates, filters, joins, grouping, sort, pages.
#[utoipa::path(post, path = "/v1/tables/{table}/query", tag = "tables", request_body = QueryRequestDoc,
    params(("table" = String, Path, description = "Table id, resource number or name")),
    responses((status = 200, body = RowsPage), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)), security(("api_key" = [])))]
pub async fn query(State(state): State<AppState>, caller: Caller, Path(table): Path<String>, JsonBody(spec): JsonBody<QuerySpec>) -> ApiResult<Json<RowsPage>> {
    let table = find(&state, &caller, &table).await?;
    let rows = state.engine.query_table(access(&caller), &table, &spec).await?;
    Ok(Json(rows_page(rows, spec.page.unwrap_or(0), spec.per_page.unwrap_or(agentd_domain::table::DEFAULT_PER_PAGE))))
}

/// Search a table: by words (full text, BM25), by meaning (semantic, over its vectorized
/// columns) or both (hybrid).
#[utoipa::path(post, path = "/v1/tables/{table}/search", tag = "tables", request_body = SearchRequest,
    params(("table" = String, Path, description = "Table id, resource number or name")),
    responses((status = 200, body = SearchResults), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)), security(("api_key" = [])))]
pub async fn search(State(state): State<AppState>, caller: Caller, Path(table): Path<String>, JsonBody(req): JsonBody<SearchRequest>) -> ApiResult<Json<SearchResults>> {
    let table = find(&state, &caller, &table).await?;
    let mode = match req.mode.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("fulltext") | Some("full_text") => SearchMode::FullText,
        Some("semantic") => SearchMode::Semantic,
        Some("hybrid") => SearchMode::Hybrid,
        Some(other) => return Err(ApiError::invalid("mode", format!("unknown mode `{other}`: fulltext, semantic or hybrid"))),
    };
    let search = Search { query: req.query.unwrap_or_default(), columns: req.columns.unwrap_or_default(), limit: req.limit.unwrap_or(10), mode };
    let (rows, scores) = state.engine.search_table(access(&caller), &table, &search).await?;
    let data = rows
        .objects()
        .into_iter()
        .zip(scores)
        .map(|(mut row, score)| {
            row.insert("score".into(), json!(score));
            row
        })
        .collect();
    Ok(Json(SearchResults { data }))
}

fn is_csv(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| matches!(m.trim().to_ascii_lowercase().as_str(), "text/csv" | "text/plain" | "application/csv"))
}

/// Import a CSV (`Content-Type: text/csv`; header row: column names; at most 10 MiB): every
/// row or none.
#[utoipa::path(post, path = "/v1/tables/{table}/import", tag = "tables", request_body(content = String, content_type = "text/csv"),
    params(("table" = String, Path, description = "Table id, resource number or name")),
    responses((status = 200, body = ImportResult), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 413, body = ErrorBody)), security(("api_key" = [])))]
pub async fn import(State(state): State<AppState>, caller: Caller, Path(table): Path<String>, request: Request) -> ApiResult<Json<ImportResult>> {
    let table = find(&state, &caller, &table).await?;
    if !is_csv(request.headers()) {
        return Err(ApiError::invalid("body", "send the CSV with Content-Type: text/csv"));
    }
    let body = read_body(request, &()).await?;
    match state.engine.import_csv(access(&caller), &table, &body).await? {
        Ok(inserted) => Ok(Json(ImportResult { inserted })),
        Err(refused) => Err(import_refused(refused)),
    }
}

/// Make an upload link: a URL that takes one CSV by PUT, without an API key, for 15 minutes.
#[utoipa::path(post, path = "/v1/tables/{table}/upload-links", tag = "tables",
    params(("table" = String, Path, description = "Table id, resource number or name")),
    responses((status = 201, body = UploadLinkView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("api_key" = [])))]
pub async fn create_upload_link(State(state): State<AppState>, caller: Caller, Path(table): Path<String>, headers: HeaderMap) -> ApiResult<(StatusCode, Json<UploadLinkView>)> {
    let table = find(&state, &caller, &table).await?;
    let (token, expires_at) = state.engine.create_upload_link(access(&caller), &table).await?;
    let upload_path = format!("/v1/uploads/{token}");
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("localhost");
    let scheme = headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).unwrap_or("http");
    Ok((StatusCode::CREATED, Json(UploadLinkView { upload_url: format!("{scheme}://{host}{upload_path}"), upload_path, expires_at })))
}

/// Upload a CSV through an upload link (no API key: the link is the key; it works once).
#[utoipa::path(put, path = "/v1/uploads/{token}", tag = "tables", request_body(content = String, content_type = "text/csv"),
    params(("token" = String, Path, description = "The link's token")),
    responses((status = 200, body = ImportResult), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody)))]
pub async fn upload(State(state): State<AppState>, Path(token): Path<String>, request: Request) -> ApiResult<Json<ImportResult>> {
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::not_found("upload link"));
    }
    let body = read_body(request, &()).await?;
    match state.engine.upload_with_link(&token, &body).await {
        Ok(Ok(inserted)) => Ok(Json(ImportResult { inserted })),
        Ok(Err(refused)) => Err(import_refused(refused)),
        Err(EngineError::NotFound) => Err(ApiError::new(ErrorCode::NotFound, "upload link not found: it was never made, or was used already")),
        Err(other) => Err(other.into()),
    }
}

/// Mark a row for (re)vectorization.
#[utoipa::path(post, path = "/v1/tables/{table}/rows/{row_id}/reindex", tag = "tables",
    params(("table" = String, Path, description = "Table id, resource number or name"), ("row_id" = i64, Path, description = "Row id")),
    responses((status = 200, body = ReindexView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)), security(("api_key" = [])))]
pub async fn reindex(State(state): State<AppState>, caller: Caller, Path((table, row)): Path<(String, String)>) -> ApiResult<Json<ReindexView>> {
    let table = find(&state, &caller, &table).await?;
    let vector_status = state.engine.reindex_row(access(&caller), &table, row_id(&row)?).await.map_err(row_not_found)?;
    Ok(Json(ReindexView { vector_status }))
}

/// The grants on a table.
#[utoipa::path(get, path = "/v1/tables/{table}/permissions", tag = "tables",
    params(("table" = String, Path, description = "Table id, resource number or name")),
    responses((status = 200, body = PermissionList), (status = 404, body = ErrorBody)), security(("api_key" = [])))]
pub async fn list_permissions(State(state): State<AppState>, caller: Caller, Path(table): Path<String>) -> ApiResult<Json<PermissionList>> {
    let table = find(&state, &caller, &table).await?;
    let data = state
        .engine
        .table_permissions(&table)
        .await?
        .into_iter()
        .map(|(key, perms)| PermissionView { key_id: key.to_string(), permissions: perms.iter().map(|p| p.as_str().to_owned()).collect() })
        .collect();
    Ok(Json(PermissionList { data }))
}

/// Grant a key of the project exactly these permissions on the table.
#[utoipa::path(put, path = "/v1/tables/{table}/permissions/{key_id}", tag = "tables", request_body = PermissionsRequest,
    params(("table" = String, Path, description = "Table id, resource number or name"), ("key_id" = uuid::Uuid, Path, description = "API key id")),
    responses((status = 200, body = PermissionView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("api_key" = [])))]
pub async fn put_permission(State(state): State<AppState>, caller: Caller, Path((table, key)): Path<(String, String)>, JsonBody(req): JsonBody<PermissionsRequest>) -> ApiResult<Json<PermissionView>> {
    let table = find(&state, &caller, &table).await?;
    manage(&state, &caller, &table).await?;
    let key: ApiKeyId = parse_id("key_id", &key)?;
    let raw = req.permissions.ok_or_else(|| ApiError::invalid("permissions", "permissions is required: a list of READ, WRITE, DELETE"))?;
    let permissions = raw
        .iter()
        .enumerate()
        .map(|(i, p)| TablePermission::parse(p).ok_or_else(|| ApiError::invalid(format!("permissions[{i}]"), format!("unknown permission `{p}`: READ, WRITE or DELETE"))))
        .collect::<ApiResult<Vec<_>>>()?;
    state.engine.set_table_permission(&table, key, permissions).await.map_err(|e| match e {
        EngineError::NotFound => ApiError::not_found("API key"),
        other => other.into(),
    })?;
    let granted = state.engine.table_permissions(&table).await?.into_iter().find(|(k, _)| *k == key).map(|(_, p)| p).unwrap_or_default();
    Ok(Json(PermissionView { key_id: key.to_string(), permissions: granted.iter().map(|p| p.as_str().to_owned()).collect() }))
}

/// Remove a key's grant (it may then do everything again).
#[utoipa::path(delete, path = "/v1/tables/{table}/permissions/{key_id}", tag = "tables",
    params(("table" = String, Path, description = "Table id, resource number or name"), ("key_id" = uuid::Uuid, Path, description = "API key id")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("api_key" = [])))]
pub async fn delete_permission(State(state): State<AppState>, caller: Caller, Path((table, key)): Path<(String, String)>) -> ApiResult<StatusCode> {
    let table = find(&state, &caller, &table).await?;
    manage(&state, &caller, &table).await?;
    let key: ApiKeyId = parse_id("key_id", &key)?;
    state.engine.delete_table_permission(&table, key).await.map_err(|e| match e {
        EngineError::NotFound => ApiError::not_found("permission"),
        other => other.into(),
    })?;
    Ok(StatusCode::NO_CONTENT)
}
