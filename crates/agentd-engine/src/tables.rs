//! Tables: a project's small database (see `agentd_domain::table`). The engine checks rows
//! and queries against a table's definition, enforces per-key permissions, imports CSV
//! (all or nothing, errors per line), issues upload links, and runs full-text search; the
//! store keeps rows and compiles queries.
//!
//! Choices:
//! - Permissions: a key with no grant on a table may do everything with it (the project's
//!   keys own its tables); a key with a grant may do only what it lists — READ (get, list,
//!   query, search), WRITE (insert, update, import, upload links, reindex), DELETE (delete
//!   rows). Managing tables and grants is open to every key of the project. A session's
//!   built-in table tools act for the project ([`Access::Project`]): no key, no restriction.
//! - A join needs READ on every table it reads.
//! - Upload links last [`UPLOAD_LINK_TTL`], are single use (taken by the first upload, whatever
//!   its outcome) and are stored as the SHA-256 of a 256-bit random token. A link either
//!   imports what is PUT at once (`upload_with_link`, the native route) or keeps the file
//!   with the link (`stage_upload`) until `import_staged_upload` imports it with a chosen
//!   delimiter (the Autessa `batch-insert`); either way the import is all or nothing.
//! - Vectorization: a table with a vectorized column marks a row `PENDING` when it is inserted
//!   or one of those columns changes; the vectorizer reads pending rows
//!   ([`Engine::pending_vector_rows`]) and reports ([`Engine::set_vector_status`]). Search in
//!   `semantic` or `hybrid` mode needs an embedding model (refused until one is wired).

use std::sync::Arc;
use std::time::Duration;

use agentd_domain::table::{self, ColumnKind, ColumnRef, Filter, FilterOp, MAX_PER_PAGE, SortSpec, SystemColumn};
use agentd_domain::{ApiKeyId, Cell, ColumnType, FieldError, ProjectId, QuerySpec, RowPage, RowValues, TableDef, TableId, TablePermission};
use agentd_store::{RowTarget, SharedStore, StoreError, UploadLink};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::clock::Clock;
use crate::engine::{Engine, EngineError};

/// Rows of one batch (insert, update by rows, delete by ids).
pub const MAX_BATCH_ROWS: usize = 1_000;
/// Bytes of one CSV import.
pub const MAX_CSV_BYTES: usize = 10 * 1024 * 1024;
/// Line errors an import reports (it stops looking after these).
pub const MAX_IMPORT_ERRORS: usize = 20;
/// How long an upload link works.
pub const UPLOAD_LINK_TTL: Duration = Duration::from_secs(15 * 60);
/// Results of one search, at most.
pub const MAX_SEARCH_LIMIT: u32 = 100;
/// Terms of a search query, at most.
const MAX_SEARCH_TERMS: usize = 32;

/// Who acts on a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// An API key (its grant on the table, if any, applies).
    Key(ApiKeyId),
    /// The project itself (an agent's session): no restriction.
    Project,
}

/// A column to add, as the caller describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewColumn {
    /// Its name.
    pub name: String,
    /// Its type.
    pub column_type: ColumnType,
    /// Embedded for semantic search (text columns only).
    pub vectorized: bool,
    /// A row must have a value.
    pub required: bool,
}

/// A change to a table's definition.
#[derive(Debug, Clone, Default)]
pub struct TableChange {
    /// A new name.
    pub name: Option<String>,
    /// A new description.
    pub description: Option<String>,
    /// Columns to add (at the end).
    pub add_columns: Vec<NewColumn>,
}

/// Which rows a batch update changes, and how.
#[derive(Debug, Clone)]
pub enum BatchUpdate {
    /// The same values on the rows matching a filter (`None`: every row).
    Filter {
        /// The filter (a JSON tree); None for every row.
        filter: Option<Value>,
        /// The values.
        values: Map<String, Value>,
    },
    /// Each row its own values.
    Rows(Vec<(i64, Map<String, Value>)>),
}

/// Which rows a batch delete removes.
#[derive(Debug, Clone)]
pub enum BatchDelete {
    /// These ids.
    Ids(Vec<i64>),
    /// The rows matching a filter (a JSON tree).
    Filter(Value),
    /// Every row.
    All,
}

/// How a search matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchMode {
    /// Words in the text columns (FTS5, BM25 ranking).
    FullText,
    /// Meaning, by embeddings of the vectorized columns.
    Semantic,
    /// Both, ranks fused.
    Hybrid,
}

/// A search.
#[derive(Debug, Clone)]
pub struct Search {
    /// The words.
    pub query: String,
    /// Text columns to look in (all when empty).
    pub columns: Vec<String>,
    /// Results at most (1..=100).
    pub limit: u32,
    /// How to match.
    pub mode: SearchMode,
}

/// One line of a CSV that cannot be imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// 1-based line in the file (the header is line 1).
    pub line: u64,
    /// The column at fault, when one is.
    pub column: Option<String>,
    /// What is wrong.
    pub message: String,
}

/// A refused import: the lines at fault (the first [`MAX_IMPORT_ERRORS`]); nothing was inserted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRefused {
    /// The lines at fault.
    pub errors: Vec<LineError>,
}

/// What sessions and the API use to reach tables.
#[derive(Clone)]
pub(crate) struct Tables {
    pub store: SharedStore,
    pub clock: Arc<dyn Clock>,
    /// Embeddings: the vectorizer's wake-up and the semantic indexes.
    pub semantic: Arc<crate::semantic::Semantic>,
}

fn conflict(error: StoreError) -> EngineError {
    match error {
        StoreError::Conflict(why) => EngineError::Conflict(why),
        other => other.into(),
    }
}

fn id_filter(ids: &[i64]) -> Filter {
    Filter::Condition {
        column: ColumnRef { source: 0, column: ColumnKind::System(SystemColumn::Id) },
        op: FilterOp::In,
        values: ids.iter().map(|id| Cell::Integer(*id)).collect(),
    }
}

/// The hex SHA-256 of an upload token.
fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn new_columns(existing: &[agentd_domain::ColumnDef], new: &[NewColumn], field: &str) -> Result<Vec<agentd_domain::ColumnDef>, EngineError> {
    let spec: Vec<_> = new.iter().map(|c| (c.name.clone(), c.column_type, c.vectorized, c.required)).collect();
    Ok(table::check_new_columns(existing, &spec, field)?)
}

impl Tables {
    /// Refuses `access` without `needed` on `table` (403: `Permission denied: READ access required`).
    pub async fn check(&self, access: Access, table: &TableDef, needed: TablePermission) -> Result<(), EngineError> {
        let Access::Key(key) = access else { return Ok(()) };
        match self.store.table_permission(table.id, key).await? {
            Some(granted) if !granted.contains(&needed) => Err(EngineError::Forbidden(format!("Permission denied: {} access required", needed.as_str()))),
            _ => Ok(()),
        }
    }

    /// The project's table named by `raw`: its id, resource number or name.
    pub async fn find(&self, project: ProjectId, raw: &str) -> Result<TableDef, EngineError> {
        let found = if let Ok(id) = raw.parse::<TableId>() {
            self.store.get_table(project, id).await?
        } else if let Ok(number) = raw.parse::<u64>() {
            match self.store.resource_by_number(project, number).await? {
                Some((agentd_domain::ResourceKind::Table, id)) => self.store.get_table(project, TableId::from_uuid(id)).await?,
                _ => None,
            }
        } else {
            self.store.table_by_name(project, raw).await?
        };
        found.ok_or(EngineError::NotFound)
    }

    pub async fn rows_by_id(&self, table: &TableDef, ids: &[i64]) -> Result<RowPage, EngineError> {
        let spec = QuerySpec { per_page: Some(MAX_PER_PAGE), ..QuerySpec::default() };
        let mut query = spec.resolve(table, &[])?;
        query.filter = Some(id_filter(ids));
        query.limit = ids.len().max(1) as u32;
        Ok(self.store.query_rows(&query).await?)
    }

    pub async fn insert(&self, access: Access, table: &TableDef, rows: &[Map<String, Value>], field: &str) -> Result<Vec<i64>, EngineError> {
        self.check(access, table, TablePermission::Write).await?;
        if rows.len() > MAX_BATCH_ROWS {
            return Err(FieldError::new(field, format!("a batch holds at most {MAX_BATCH_ROWS} rows, got {}", rows.len())).into());
        }
        let values = rows
            .iter()
            .enumerate()
            .map(|(i, row)| table.values(row, &if field == "values" { field.to_owned() } else { format!("{field}[{i}]") }, true))
            .collect::<Result<Vec<_>, _>>()?;
        let ids = self.store.insert_rows(table, &values, self.clock.wall()).await?;
        self.semantic.written(table);
        Ok(ids)
    }

    pub async fn query(&self, project: ProjectId, access: Access, table: &TableDef, spec: &QuerySpec) -> Result<RowPage, EngineError> {
        self.check(access, table, TablePermission::Read).await?;
        let joins = spec.join.iter().flatten().count();
        if joins > table::MAX_JOINS {
            return Err(FieldError::new("join", format!("at most {} joins", table::MAX_JOINS)).into());
        }
        let mut joined = Vec::new();
        for (i, join) in spec.join.iter().flatten().enumerate() {
            let raw = match &join.table {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return Err(FieldError::new(format!("join[{i}].table"), "join[].table is a table's id, resource number or name").into()),
            };
            let other = self.find(project, &raw).await.map_err(|e| match e {
                EngineError::NotFound => FieldError::new(format!("join[{i}].table"), format!("no table `{raw}` in this project")).into(),
                other => other,
            })?;
            self.check(access, &other, TablePermission::Read).await?;
            joined.push(other);
        }
        let query = spec.resolve(table, &joined)?;
        Ok(self.store.query_rows(&query).await?)
    }

    pub async fn search(&self, access: Access, table: &TableDef, search: &Search) -> Result<(RowPage, Vec<f64>), EngineError> {
        self.check(access, table, TablePermission::Read).await?;
        if search.limit == 0 || search.limit > MAX_SEARCH_LIMIT {
            return Err(FieldError::new("limit", format!("limit is 1 to {MAX_SEARCH_LIMIT}")).into());
        }
        let terms: Vec<String> = search.query.split_whitespace().map(str::to_owned).collect();
        if terms.is_empty() || terms.len() > MAX_SEARCH_TERMS || search.query.chars().count() > 1_000 {
            return Err(FieldError::new("query", format!("query is 1 to {MAX_SEARCH_TERMS} words (at most 1,000 characters)")).into());
        }
        let mut positions = Vec::new();
        for (i, name) in search.columns.iter().enumerate() {
            match table.column(name) {
                Some(c) if c.column_type.is_text() => positions.push(c.position),
                Some(_) => return Err(FieldError::new(format!("columns[{i}]"), format!("`{name}` is not a text column")).into()),
                None => return Err(FieldError::new(format!("columns[{i}]"), format!("the table has no column `{name}`")).into()),
            }
        }
        if !table.columns.iter().any(|c| c.column_type.is_text()) {
            return Err(EngineError::Conflict("the table has no text column to search".into()));
        }
        let limit = search.limit as usize;
        let hits = match search.mode {
            SearchMode::FullText => self.store.search_rows(table, &terms, &positions, search.limit).await?,
            // A little more than asked: rows deleted since they were embedded are dropped below.
            SearchMode::Semantic => self.similar(table, &search.columns, &positions, &search.query, limit + 16).await?,
            SearchMode::Hybrid => {
                let meaning = self.similar(table, &search.columns, &positions, &search.query, limit * 2 + 16).await?;
                let words = self.store.search_rows(table, &terms, &positions, search.limit * 2).await?;
                crate::semantic::fuse(&words, &meaning, limit)
            }
        };
        let ids: Vec<i64> = hits.iter().map(|(id, _)| *id).collect();
        let mut page = if ids.is_empty() { RowPage { names: Vec::new(), rows: Vec::new(), total: 0 } } else { self.rows_by_id(table, &ids).await? };
        // In rank order, with their scores (rows deleted since they were embedded drop out).
        let id_at = page.names.iter().position(|n| n == "id").unwrap_or(0);
        let mut ranked = Vec::with_capacity(hits.len());
        let mut scores = Vec::with_capacity(hits.len());
        for (id, score) in &hits {
            if let Some(i) = page.rows.iter().position(|r| r.get(id_at) == Some(&Cell::Integer(*id))) {
                ranked.push(page.rows.swap_remove(i));
                scores.push(*score);
            }
        }
        if search.mode != SearchMode::FullText && ranked.len() < hits.len() {
            let found: Vec<&Cell> = ranked.iter().filter_map(|r| r.get(id_at)).collect();
            let gone: Vec<i64> = hits.iter().map(|(id, _)| *id).filter(|id| !found.contains(&&Cell::Integer(*id))).collect();
            self.semantic.drop_rows(table.id, &gone).await;
        }
        ranked.truncate(limit);
        scores.truncate(limit);
        page.total = ranked.len() as u64;
        page.rows = ranked;
        Ok((page, scores))
    }

    /// Semantic hits over the vectorized columns among `positions` (all of them when the search
    /// names no columns); a named column that is not vectorized is refused.
    async fn similar(&self, table: &TableDef, names: &[String], positions: &[u32], query: &str, limit: usize) -> Result<Vec<(i64, f64)>, EngineError> {
        self.semantic.embedder("mode")?;
        let vectorized: Vec<u32> = if positions.is_empty() {
            table.columns.iter().filter(|c| c.vectorized).map(|c| c.position).collect()
        } else {
            for (i, position) in positions.iter().enumerate() {
                if !table.at(*position).is_some_and(|c| c.vectorized) {
                    return Err(FieldError::new(format!("columns[{i}]"), format!("`{}` is not a vectorized column", names[i])).into());
                }
            }
            positions.to_vec()
        };
        if vectorized.is_empty() {
            return Err(EngineError::Conflict("the table has no vectorized column: add one (\"vectorized\": true) for semantic search".into()));
        }
        self.semantic.similar(&self.store, table, &vectorized, query, limit).await
    }

    /// Up to `limit` rows of `table` waiting for embeddings.
    pub async fn pending(&self, table: &TableDef, limit: u32) -> Result<RowPage, EngineError> {
        let mut query = QuerySpec { per_page: Some(limit.clamp(1, MAX_PER_PAGE)), ..QuerySpec::default() }.resolve(table, &[])?;
        query.filter = Some(Filter::Condition {
            column: ColumnRef { source: 0, column: ColumnKind::System(SystemColumn::VectorStatus) },
            op: FilterOp::Eq,
            values: vec![Cell::Text(table::vector_status::PENDING.into())],
        });
        Ok(self.store.query_rows(&query).await?)
    }

    /// Reads a CSV (header row: column names; fields split by `delimiter`) and inserts every
    /// row, or none.
    pub async fn import(&self, table: &TableDef, csv: &[u8], delimiter: u8) -> Result<Result<u64, ImportRefused>, EngineError> {
        if csv.len() > MAX_CSV_BYTES {
            return Err(FieldError::new("body", format!("a CSV is at most {MAX_CSV_BYTES} bytes")).into());
        }
        let rows = match parse_csv(table, csv, delimiter) {
            Ok(rows) => rows,
            Err(errors) => return Ok(Err(ImportRefused { errors })),
        };
        let ids = self.store.insert_rows(table, &rows, self.clock.wall()).await?;
        self.semantic.written(table);
        Ok(Ok(ids.len() as u64))
    }
}

/// Parses a CSV against a table: every row's values, or the lines at fault.
/// Rows a CSV may hold (one transaction holds the write lock while they go in).
pub const MAX_IMPORT_ROWS: usize = 100_000;

fn parse_csv(table: &TableDef, csv: &[u8], delimiter: u8) -> Result<Vec<RowValues>, Vec<LineError>> {
    let csv = csv.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(csv);
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).delimiter(delimiter).from_reader(csv);
    let mut records = reader.records();
    // The physical line where a record starts (the reader's own count skips blank lines).
    // The reader puts a record after blank lines at the first of them: skip those.
    // Counted from the last record on (records come in order), so reading is linear in the file.
    let mut counted = (0usize, 1u64);
    let mut line_at = |position: Option<&csv::Position>| {
        let Some(p) = position else { return 0 };
        let mut at = (p.byte() as usize).min(csv.len());
        while at < csv.len() && matches!(csv[at], b'\n' | b'\r') {
            at += 1;
        }
        let (from, line) = counted;
        if at < from {
            return 1 + csv[..at].iter().filter(|b| **b == b'\n').count() as u64;
        }
        counted = (at, line + csv[from..at].iter().filter(|b| **b == b'\n').count() as u64);
        counted.1
    };
    let line_error = |line: u64, column: Option<&str>, message: String| LineError { line, column: column.map(str::to_owned), message };
    let header = match records.next() {
        None => return Err(vec![line_error(1, None, "the CSV is empty: its first line names the columns".into())]),
        Some(Err(e)) => return Err(vec![line_error(1, None, format!("unreadable header: {e}"))]),
        Some(Ok(header)) => header,
    };
    let mut errors = Vec::new();
    // Each field's column position (None: a system column, ignored).
    let mut slots: Vec<Option<(u32, &agentd_domain::ColumnDef)>> = Vec::new();
    for name in header.iter() {
        let name = name.trim();
        if SystemColumn::parse(name).is_some() {
            slots.push(None);
            continue;
        }
        match table.column(name) {
            Some(c) if slots.iter().flatten().any(|(p, _)| *p == c.position) => errors.push(line_error(1, Some(name), format!("the column `{name}` is named twice"))),
            Some(c) => slots.push(Some((c.position, c))),
            None => errors.push(line_error(1, Some(name), format!("the table has no column `{name}`"))),
        }
    }
    for c in table.columns.iter().filter(|c| c.required) {
        if !slots.iter().flatten().any(|(p, _)| *p == c.position) {
            errors.push(line_error(1, Some(&c.name), format!("the required column `{}` is missing from the header", c.name)));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut rows = Vec::new();
    for record in records {
        if errors.len() >= MAX_IMPORT_ERRORS {
            break;
        }
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = line_at(e.position());
                errors.push(line_error(line, None, format!("unreadable line: {e}")));
                continue;
            }
        };
        let line = line_at(record.position());
        if record.len() == 1 && record.get(0) == Some("") {
            continue; // a blank line
        }
        if rows.len() >= MAX_IMPORT_ROWS {
            errors.push(line_error(line, None, format!("a CSV holds at most {MAX_IMPORT_ROWS} rows: split the file")));
            break;
        }
        if record.len() != slots.len() {
            errors.push(line_error(line, None, format!("expected {} fields, got {}", slots.len(), record.len())));
            continue;
        }
        let mut values = RowValues::new();
        let mut ok = true;
        for (raw, slot) in record.iter().zip(&slots) {
            let Some((position, column)) = slot else { continue };
            match column.column_type.cell_from_text(raw) {
                Ok(Cell::Null) if column.required => {
                    errors.push(line_error(line, Some(&column.name), format!("`{}` is required", column.name)));
                    ok = false;
                }
                // An empty cell is the column's default (null): nothing to store.
                Ok(Cell::Null) => {}
                Ok(cell) => values.push((*position, cell)),
                Err(why) => {
                    errors.push(line_error(line, Some(&column.name), why));
                    ok = false;
                }
            }
            if errors.len() >= MAX_IMPORT_ERRORS {
                break;
            }
        }
        if ok {
            rows.push(values);
        }
    }
    if errors.is_empty() { Ok(rows) } else { Err(errors) }
}

impl Engine {
    fn tables(&self) -> &Tables {
        &self.inner.tools.tables
    }

    /// Creates a table with its columns.
    pub async fn create_table(&self, project: ProjectId, name: String, description: String, columns: Vec<NewColumn>) -> Result<TableDef, EngineError> {
        table::check_name("table", &name).map_err(|why| FieldError::new("name", why))?;
        let columns = new_columns(&[], &columns, "columns")?;
        let now = self.inner.clock.wall();
        let mut def = TableDef { id: TableId::new(), resource_number: 0, project_id: project, name, description, columns, created_at: now, updated_at: now };
        def.resource_number = self.inner.store.insert_table(&def).await.map_err(conflict)?;
        Ok(def)
    }

    /// The project's table named by `raw`: its id (UUID), resource number or name.
    pub async fn find_table(&self, project: ProjectId, raw: &str) -> Result<TableDef, EngineError> {
        self.tables().find(project, raw).await
    }

    /// One table by id.
    pub async fn get_table(&self, project: ProjectId, id: TableId) -> Result<TableDef, EngineError> {
        self.inner.store.get_table(project, id).await?.ok_or(EngineError::NotFound)
    }

    /// The project's tables, newest first.
    pub async fn list_tables(&self, project: ProjectId) -> Result<Vec<TableDef>, EngineError> {
        Ok(self.inner.store.list_tables(project).await?)
    }

    /// How many rows a table holds.
    pub async fn count_rows(&self, table: &TableDef) -> Result<u64, EngineError> {
        Ok(self.inner.store.count_rows(table).await?)
    }

    /// Renames a table, changes its description, adds columns.
    pub async fn update_table(&self, table: &TableDef, change: TableChange) -> Result<TableDef, EngineError> {
        let mut def = table.clone();
        if let Some(name) = change.name {
            table::check_name("table", &name).map_err(|why| FieldError::new("name", why))?;
            def.name = name;
        }
        if let Some(description) = change.description {
            def.description = description;
        }
        let added = new_columns(&def.columns, &change.add_columns, "add_columns")?;
        def.columns.extend(added.iter().cloned());
        // Strictly later than the definition it replaces (the store compares them).
        def.updated_at = self.inner.clock.wall().max(table.updated_at + chrono::Duration::milliseconds(1));
        if !self.inner.store.update_table(&def, &added, table.updated_at).await.map_err(conflict)? {
            return match self.inner.store.get_table(table.project_id, table.id).await? {
                Some(_) => Err(EngineError::Conflict("the table changed while this change was made: read it again and retry".into())),
                None => Err(EngineError::NotFound),
            };
        }
        Ok(def)
    }

    /// Deletes a table and its rows.
    pub async fn delete_table(&self, table: &TableDef) -> Result<(), EngineError> {
        if !self.inner.store.delete_table(table.project_id, table.id).await? {
            return Err(EngineError::NotFound);
        }
        self.tables().semantic.forget(table.id).await;
        Ok(())
    }

    /// Checks `access` has `needed` on `table` (403 otherwise).
    pub async fn check_table_access(&self, access: Access, table: &TableDef, needed: TablePermission) -> Result<(), EngineError> {
        self.tables().check(access, table, needed).await
    }

    /// Inserts one row (`values`; errors name `values.<column>`); returns it.
    pub async fn insert_row(&self, access: Access, table: &TableDef, values: &Map<String, Value>) -> Result<RowPage, EngineError> {
        let ids = self.tables().insert(access, table, std::slice::from_ref(values), "values").await?;
        self.tables().rows_by_id(table, &ids).await
    }

    /// Inserts rows, all or none (errors name `rows[i].<column>`); returns their ids.
    pub async fn insert_rows(&self, access: Access, table: &TableDef, rows: &[Map<String, Value>]) -> Result<Vec<i64>, EngineError> {
        self.tables().insert(access, table, rows, "rows").await
    }

    /// One row (NotFound when the table has no such row).
    pub async fn get_row(&self, access: Access, table: &TableDef, id: i64) -> Result<RowPage, EngineError> {
        self.tables().check(access, table, TablePermission::Read).await?;
        let page = self.tables().rows_by_id(table, &[id]).await?;
        if page.rows.is_empty() { Err(EngineError::NotFound) } else { Ok(page) }
    }

    /// Changes one row's values (errors name `values.<column>`); returns it.
    pub async fn update_row(&self, access: Access, table: &TableDef, id: i64, values: &Map<String, Value>) -> Result<RowPage, EngineError> {
        self.tables().check(access, table, TablePermission::Write).await?;
        let values = table.values(values, "values", false)?;
        if self.inner.store.update_rows(table, &RowTarget::Ids(vec![id]), &values, self.inner.clock.wall()).await? == 0 {
            return Err(EngineError::NotFound);
        }
        self.tables().semantic.written(table);
        self.tables().rows_by_id(table, &[id]).await
    }

    /// Deletes one row.
    pub async fn delete_row(&self, access: Access, table: &TableDef, id: i64) -> Result<(), EngineError> {
        self.tables().check(access, table, TablePermission::Delete).await?;
        if self.inner.store.delete_rows(table, &RowTarget::Ids(vec![id])).await? == 0 { Err(EngineError::NotFound) } else { Ok(()) }
    }

    /// Updates many rows (one transaction); returns how many changed.
    pub async fn update_rows(&self, access: Access, table: &TableDef, update: &BatchUpdate) -> Result<u64, EngineError> {
        self.tables().check(access, table, TablePermission::Write).await?;
        let at = self.inner.clock.wall();
        match update {
            BatchUpdate::Filter { filter, values } => {
                let values = table.values(values, "values", false)?;
                let target = match filter {
                    Some(raw) => RowTarget::Filter(table::resolve_filter(table, raw, "filter")?),
                    None => RowTarget::All,
                };
                let changed = self.inner.store.update_rows(table, &target, &values, at).await?;
                self.tables().semantic.written(table);
                Ok(changed)
            }
            BatchUpdate::Rows(rows) => {
                if rows.len() > MAX_BATCH_ROWS {
                    return Err(FieldError::new("rows", format!("a batch holds at most {MAX_BATCH_ROWS} rows, got {}", rows.len())).into());
                }
                let rows = rows
                    .iter()
                    .enumerate()
                    .map(|(i, (id, values))| Ok((*id, table.values(values, &format!("rows[{i}].values"), false)?)))
                    .collect::<Result<Vec<_>, FieldError>>()?;
                let changed = self.inner.store.update_rows_each(table, &rows, at).await?;
                self.tables().semantic.written(table);
                Ok(changed)
            }
        }
    }

    /// Deletes many rows; returns how many.
    pub async fn delete_rows(&self, access: Access, table: &TableDef, delete: &BatchDelete) -> Result<u64, EngineError> {
        self.tables().check(access, table, TablePermission::Delete).await?;
        let target = match delete {
            BatchDelete::Ids(ids) if ids.len() > MAX_BATCH_ROWS => {
                return Err(FieldError::new("ids", format!("a batch holds at most {MAX_BATCH_ROWS} ids, got {}", ids.len())).into());
            }
            BatchDelete::Ids(ids) if ids.is_empty() => return Ok(0),
            BatchDelete::Ids(ids) => RowTarget::Ids(ids.clone()),
            BatchDelete::Filter(raw) => RowTarget::Filter(table::resolve_filter(table, raw, "filter")?),
            BatchDelete::All => RowTarget::All,
        };
        Ok(self.inner.store.delete_rows(table, &target).await?)
    }

    /// Runs a query on `table` (joins name other tables of the project).
    pub async fn query_table(&self, access: Access, table: &TableDef, spec: &QuerySpec) -> Result<RowPage, EngineError> {
        self.tables().query(table.project_id, access, table, spec).await
    }

    /// A page of rows, sorted by one column.
    pub async fn list_rows(&self, access: Access, table: &TableDef, page: u64, per_page: u32, sort: Option<SortSpec>) -> Result<RowPage, EngineError> {
        let spec = QuerySpec { page: Some(page), per_page: Some(per_page), sort: sort.map(|s| vec![s]), ..QuerySpec::default() };
        self.query_table(access, table, &spec).await
    }

    /// Searches a table; the rows best first, with their scores.
    pub async fn search_table(&self, access: Access, table: &TableDef, search: &Search) -> Result<(RowPage, Vec<f64>), EngineError> {
        self.tables().search(access, table, search).await
    }

    /// Imports a CSV (header row: column names; system columns ignored): every row or none.
    pub async fn import_csv(&self, access: Access, table: &TableDef, csv: &[u8]) -> Result<Result<u64, ImportRefused>, EngineError> {
        self.tables().check(access, table, TablePermission::Write).await?;
        self.tables().import(table, csv, b',').await
    }

    /// Makes an upload link for `table`: the token (shown once) and when it expires.
    pub async fn create_upload_link(&self, access: Access, table: &TableDef) -> Result<(String, DateTime<Utc>), EngineError> {
        self.tables().check(access, table, TablePermission::Write).await?;
        let token = hex(&rand::random::<[u8; 32]>());
        let now = self.inner.clock.wall();
        let expires_at = now + chrono::Duration::from_std(UPLOAD_LINK_TTL).unwrap_or_default();
        let link = UploadLink { token_hash: token_hash(&token), project_id: table.project_id, table_id: table.id, expires_at, created_at: now, staged: None };
        self.inner.store.insert_upload_link(&link).await?;
        Ok((token, expires_at))
    }

    /// Imports a CSV through an upload link (used up by this call). NotFound for an unknown or
    /// used link; Conflict for an expired one.
    pub async fn upload_with_link(&self, token: &str, csv: &[u8]) -> Result<Result<u64, ImportRefused>, EngineError> {
        let now = self.inner.clock.wall();
        let link = self.inner.store.take_upload_link(&token_hash(token), now).await?.ok_or(EngineError::NotFound)?;
        if link.expires_at < now {
            return Err(EngineError::Conflict("the upload link has expired: make a new one".into()));
        }
        let table = self.get_table(link.project_id, link.table_id).await?;
        self.tables().import(&table, csv, b',').await
    }

    /// Keeps a CSV uploaded through a link until [`Engine::import_staged_upload`] imports it
    /// (the link stays valid until then). NotFound for an unknown or used link; Conflict for
    /// an expired one or one that holds a file already.
    pub async fn stage_upload(&self, token: &str, csv: &[u8]) -> Result<(), EngineError> {
        if csv.len() > MAX_CSV_BYTES {
            return Err(FieldError::new("body", format!("a CSV is at most {MAX_CSV_BYTES} bytes")).into());
        }
        let hash = token_hash(token);
        let (link, has_file) = self.inner.store.peek_upload_link(&hash).await?.ok_or(EngineError::NotFound)?;
        if link.expires_at < self.inner.clock.wall() {
            return Err(EngineError::Conflict("the upload link has expired: make a new one".into()));
        }
        if has_file || !self.inner.store.stage_upload(&hash, csv).await? {
            return Err(EngineError::Conflict("a file was uploaded through this link already".into()));
        }
        Ok(())
    }

    /// Imports the CSV staged through the upload link `token` of `table` (fields split by
    /// `delimiter`): every row or none. The link is used up by this call — unless nothing
    /// was uploaded yet (Conflict, the link stays). NotFound for an unknown or used link, or
    /// one of another table; Conflict for an expired one.
    pub async fn import_staged_upload(&self, access: Access, table: &TableDef, token: &str, delimiter: u8) -> Result<Result<u64, ImportRefused>, EngineError> {
        self.tables().check(access, table, TablePermission::Write).await?;
        let hash = token_hash(token);
        let now = self.inner.clock.wall();
        let (link, has_file) = self.inner.store.peek_upload_link(&hash).await?.ok_or(EngineError::NotFound)?;
        if link.table_id != table.id || link.project_id != table.project_id {
            return Err(EngineError::NotFound);
        }
        if link.expires_at < now {
            return Err(EngineError::Conflict("the upload link has expired: make a new one".into()));
        }
        if !has_file {
            return Err(EngineError::Conflict("nothing was uploaded through this link yet: PUT the CSV to its URL first".into()));
        }
        // Taken before the import: of two concurrent calls, one imports.
        let link = self.inner.store.take_upload_link(&hash, now).await?.ok_or(EngineError::NotFound)?;
        let csv = link.staged.unwrap_or_default();
        self.tables().import(table, &csv, delimiter).await
    }

    /// Every key's grant on a table.
    pub async fn table_permissions(&self, table: &TableDef) -> Result<Vec<(ApiKeyId, Vec<TablePermission>)>, EngineError> {
        Ok(self.inner.store.table_permissions(table.id).await?)
    }

    /// Grants `key` (a key of the table's project) exactly `permissions` on `table`.
    pub async fn set_table_permission(&self, table: &TableDef, key: ApiKeyId, mut permissions: Vec<TablePermission>) -> Result<(), EngineError> {
        let known = self.inner.store.list_api_keys().await?.into_iter().any(|k| k.id == key && k.project_id == table.project_id && k.revoked_at.is_none());
        if !known {
            return Err(EngineError::NotFound);
        }
        permissions.sort();
        permissions.dedup();
        Ok(self.inner.store.put_table_permission(table.id, key, &permissions, self.inner.clock.wall()).await?)
    }

    /// Removes `key`'s grant (it may then do everything again).
    pub async fn delete_table_permission(&self, table: &TableDef, key: ApiKeyId) -> Result<(), EngineError> {
        if self.inner.store.delete_table_permission(table.id, key).await? { Ok(()) } else { Err(EngineError::NotFound) }
    }

    /// Marks a row for (re)vectorization; returns its status.
    pub async fn reindex_row(&self, access: Access, table: &TableDef, id: i64) -> Result<Option<String>, EngineError> {
        self.tables().check(access, table, TablePermission::Write).await?;
        if !table.has_vectorized() {
            return Err(EngineError::Conflict("the table has no vectorized column".into()));
        }
        let status = table::vector_status::PENDING;
        if self.inner.store.set_vector_status(table, &[id], Some(status)).await? == 0 {
            return Err(EngineError::NotFound);
        }
        self.tables().semantic.written(table);
        Ok(Some(status.to_owned()))
    }

    /// For the vectorizer: up to `limit` rows of `table` waiting for embeddings.
    pub async fn pending_vector_rows(&self, table: &TableDef, limit: u32) -> Result<RowPage, EngineError> {
        self.tables().pending(table, limit).await
    }

    /// For the vectorizer: records where rows stand (DONE, FAILED, or PENDING again).
    pub async fn set_vector_status(&self, table: &TableDef, ids: &[i64], status: &str) -> Result<u64, EngineError> {
        Ok(self.inner.store.set_vector_status(table, ids, Some(status)).await?)
    }
}
