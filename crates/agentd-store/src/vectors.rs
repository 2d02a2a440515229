//! The part of the [`crate::Store`] that keeps embeddings of tables' vectorized columns.

use agentd_domain::TableDef;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::StoreResult;

/// One row's embeddings: per vectorized column (by position), one unit vector.
#[derive(Debug, Clone, PartialEq)]
pub struct RowVectors {
    /// The row.
    pub row_id: i64,
    /// The model that made them.
    pub model: String,
    /// (column position, vector).
    pub vectors: Vec<(u32, Vec<f32>)>,
}

/// Embeddings in the store.
#[async_trait]
pub trait VectorStore: Send + Sync {
    /// Stores a row's vectors and marks it DONE, in one transaction — only if the row is still
    /// PENDING with the `updated_at` it was read at; false otherwise (nothing written).
    async fn put_row_vectors(&self, table: &TableDef, row: &RowVectors, read_at: DateTime<Utc>) -> StoreResult<bool>;
    /// Every vector of a column made by `model`: (row id, vector).
    async fn column_vectors(&self, table: &TableDef, position: u32, model: &str) -> StoreResult<Vec<(i64, Vec<f32>)>>;
    /// Every table (all projects) with a vectorized column.
    async fn vectorized_tables(&self) -> StoreResult<Vec<TableDef>>;
    /// Marks PENDING the rows whose vectors another model made; how many.
    async fn stale_vector_rows(&self, table: &TableDef, model: &str) -> StoreResult<u64>;
}
