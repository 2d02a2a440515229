//! The part of the [`crate::Store`] that keeps tables: definitions, rows, permissions and
//! upload links. Row reads all go through one compiled [`Query`]; every identifier in the
//! SQL is one agentd made (`ut_<n>`, `c<position>`, `t<source>`, `o<index>`) and every value
//! is a bound parameter.

use agentd_domain::table::{Filter, Query};
use agentd_domain::{ApiKeyId, ProjectId, RowPage, RowValues, TableDef, TableId, TablePermission};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::StoreResult;

/// Which rows a batch update or delete touches.
#[derive(Debug, Clone, PartialEq)]
pub enum RowTarget {
    /// These ids (ids the table does not have are skipped).
    Ids(Vec<i64>),
    /// The rows matching a filter (resolved against the table alone).
    Filter(Filter),
    /// Every row.
    All,
}

/// A link that lets whoever holds it upload a CSV into a table, once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadLink {
    /// Hex SHA-256 of the token (the token itself is never stored).
    pub token_hash: String,
    /// The table's project.
    pub project_id: ProjectId,
    /// The table.
    pub table_id: TableId,
    /// After this the link is refused.
    pub expires_at: DateTime<Utc>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// A file uploaded to be imported later (read only by `take_upload_link`).
    pub staged: Option<Vec<u8>>,
}

/// Tables in the store.
#[async_trait]
pub trait TableStore: Send + Sync {
    /// Stores a new table and makes its storage (rows table, full-text index) in one
    /// transaction; returns its resource number (a name the project already uses is a
    /// [`crate::StoreError::Conflict`]).
    async fn insert_table(&self, table: &TableDef) -> StoreResult<u64>;
    /// One table of the project.
    async fn get_table(&self, project: ProjectId, id: TableId) -> StoreResult<Option<TableDef>>;
    /// The project's table called `name`.
    async fn table_by_name(&self, project: ProjectId, name: &str) -> StoreResult<Option<TableDef>>;
    /// The project's tables, newest first.
    async fn list_tables(&self, project: ProjectId) -> StoreResult<Vec<TableDef>>;
    /// Stores a changed definition (name, description, `columns` with `added` at the end) and
    /// adds the added columns to the storage — only if the stored definition is still the one
    /// last changed at `previous` (the `updated_at` the change was made from); false when the
    /// table is unknown or changed meanwhile.
    async fn update_table(&self, table: &TableDef, added: &[agentd_domain::ColumnDef], previous: DateTime<Utc>) -> StoreResult<bool>;
    /// Deletes a table, its rows, grants and links; false when unknown.
    async fn delete_table(&self, project: ProjectId, id: TableId) -> StoreResult<bool>;
    /// How many rows the table holds.
    async fn count_rows(&self, table: &TableDef) -> StoreResult<u64>;

    /// Inserts rows, all or none; returns their ids in order.
    async fn insert_rows(&self, table: &TableDef, rows: &[RowValues], at: DateTime<Utc>) -> StoreResult<Vec<i64>>;
    /// Sets `values` on the rows `target` names; returns how many changed.
    async fn update_rows(&self, table: &TableDef, target: &RowTarget, values: &RowValues, at: DateTime<Utc>) -> StoreResult<u64>;
    /// Sets each row's own values, all or none; returns how many rows existed.
    async fn update_rows_each(&self, table: &TableDef, rows: &[(i64, RowValues)], at: DateTime<Utc>) -> StoreResult<u64>;
    /// Deletes the rows `target` names; returns how many.
    async fn delete_rows(&self, table: &TableDef, target: &RowTarget) -> StoreResult<u64>;
    /// Runs a query: one page of rows and the total.
    async fn query_rows(&self, query: &Query) -> StoreResult<RowPage>;
    /// Full-text search: the ids of the rows matching any of `terms` in the text columns at
    /// `positions` (all text columns when empty), best first, with a score (higher is better).
    async fn search_rows(&self, table: &TableDef, terms: &[String], positions: &[u32], limit: u32) -> StoreResult<Vec<(i64, f64)>>;
    /// Sets the `vector_status` of rows (the vectorizer's report); returns how many exist.
    async fn set_vector_status(&self, table: &TableDef, ids: &[i64], status: Option<&str>) -> StoreResult<u64>;

    /// Every key's grant on a table.
    async fn table_permissions(&self, table: TableId) -> StoreResult<Vec<(ApiKeyId, Vec<TablePermission>)>>;
    /// A key's grant on a table (None: no grant, so no restriction).
    async fn table_permission(&self, table: TableId, key: ApiKeyId) -> StoreResult<Option<Vec<TablePermission>>>;
    /// Sets a key's grant on a table.
    async fn put_table_permission(&self, table: TableId, key: ApiKeyId, permissions: &[TablePermission], at: DateTime<Utc>) -> StoreResult<()>;
    /// Removes a key's grant; false when it had none.
    async fn delete_table_permission(&self, table: TableId, key: ApiKeyId) -> StoreResult<bool>;

    /// Stores an upload link.
    async fn insert_upload_link(&self, link: &UploadLink) -> StoreResult<()>;
    /// Takes (deletes and returns) the link with this token hash, expired or not; links that
    /// expired before `now` are swept at the same time.
    async fn take_upload_link(&self, token_hash: &str, now: DateTime<Utc>) -> StoreResult<Option<UploadLink>>;
    /// The link with this token hash, left in place (`staged` is not read: only whether
    /// there is one, the flag beside the link).
    async fn peek_upload_link(&self, token_hash: &str) -> StoreResult<Option<(UploadLink, bool)>>;
    /// Keeps `file` with the link until it is taken; false when the link is gone or holds a
    /// file already.
    async fn stage_upload(&self, token_hash: &str, file: &[u8]) -> StoreResult<bool>;
}
