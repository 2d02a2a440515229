//! Semantic search over tables: the vectorizer that embeds vectorized columns in the
//! background, and the searches that use the embeddings (semantic, and hybrid with full text).
//!
//! - A write to a table with vectorized columns leaves its rows `PENDING` (the store does it);
//!   the vectorizer wakes (or finds them within [`SWEEP`]), embeds a batch, and stores each
//!   row's vectors with its `DONE` status in one transaction — only if the row has not changed
//!   since it was read, so an edit made meanwhile is embedded on the next turn. Nothing is kept
//!   only in memory: after a restart the `PENDING` rows are simply found again.
//! - One vector per (row, vectorized column); rows with empty text have none. Vectors are kept
//!   with the model's name: when the configured model changes, rows embedded by another model
//!   are made `PENDING` again at the first sweep.
//! - Failures: an embedding call that fails is retried on later sweeps (with backoff); after
//!   [`MAX_ATTEMPTS`] failures in a row the batch's rows are tried one by one and those whose
//!   own text fails are marked `FAILED` (a reindex makes them `PENDING` again); when every row
//!   fails (an outage) they all stay `PENDING`. Tables are served round robin.
//! - Search: an in-memory exact index per (table, vectorized column) (`agentd_embed::VectorIndex`),
//!   loaded from the store on first use and kept current by the vectorizer; the query is
//!   embedded, each column searched, a row scores its best column. Hybrid fuses the full-text
//!   ranking and the semantic one by reciprocal rank (k = 60). Without an embedder both are
//!   refused with `agentd_embed::SEMANTIC_SEARCH_UNAVAILABLE`; full text always works.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use agentd_domain::table::vector_status;
use agentd_domain::{Cell, FieldError, RowPage, TableDef, TableId};
use agentd_embed::{Embedder, SEMANTIC_SEARCH_UNAVAILABLE, SharedVectorIndex};
use agentd_store::{RowVectors, SharedStore};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::engine::EngineError;

/// Rows embedded per turn of the vectorizer.
const BATCH_ROWS: u32 = 32;
/// How often the vectorizer looks for pending rows without being woken.
pub const SWEEP: Duration = Duration::from_secs(5);
/// Failed embedding calls in a row before a batch's rows are marked FAILED.
const MAX_ATTEMPTS: u32 = 3;
/// Reciprocal-rank fusion's constant.
const RRF_K: f64 = 60.0;

/// Embeddings for tables: the embedder (if any), the indexes, the vectorizer's wake-up.
pub(crate) struct Semantic {
    embedder: Option<Arc<dyn Embedder>>,
    /// Held while an index loads and while the vectorizer brings loaded ones up to date, so a
    /// vector stored during a load is never missed (it is either read by the load or added to
    /// the loaded index).
    indexes: tokio::sync::Mutex<HashMap<(TableId, u32), Arc<SharedVectorIndex>>>,
    wake: Notify,
    /// The table the vectorizer served last (round robin).
    last_served: tokio::sync::Mutex<Option<TableId>>,
}

impl Semantic {
    pub fn new(embedder: Option<Arc<dyn Embedder>>) -> Arc<Self> {
        Arc::new(Semantic { embedder, indexes: Default::default(), wake: Notify::new(), last_served: Default::default() })
    }

    /// The embedder, or the refusal naming `field`.
    pub fn embedder(&self, field: &str) -> Result<&Arc<dyn Embedder>, EngineError> {
        self.embedder.as_ref().ok_or_else(|| FieldError::new(field, SEMANTIC_SEARCH_UNAVAILABLE).into())
    }

    /// Tells the vectorizer that `table` has rows to embed.
    pub fn written(&self, table: &TableDef) {
        if table.has_vectorized() && self.embedder.is_some() {
            self.wake.notify_one();
        }
    }

    /// Forgets a deleted table's indexes.
    pub async fn forget(&self, table: TableId) {
        self.indexes.lock().await.retain(|(id, _), _| *id != table);
    }

    /// The index of a vectorized column, loaded from the store on first use.
    async fn index(&self, store: &SharedStore, table: &TableDef, position: u32) -> Result<Arc<SharedVectorIndex>, EngineError> {
        let mut indexes = self.indexes.lock().await;
        if let Some(index) = indexes.get(&(table.id, position)) {
            return Ok(index.clone());
        }
        let embedder = self.embedder("mode")?;
        let stored = store.column_vectors(table, position, embedder.model_name()).await?;
        let dims = embedder.dimensions().or_else(|| stored.first().map(|(_, v)| v.len())).unwrap_or(0);
        let index = SharedVectorIndex::new(dims.max(1));
        for (id, vector) in stored {
            // A vector of other dimensions (a model renamed in place) is skipped.
            let _ = index.insert(id as u64, &vector);
        }
        let index = Arc::new(index);
        indexes.insert((table.id, position), index.clone());
        Ok(index)
    }

    /// Removes rows that no longer exist from the loaded indexes of `table` (the store drops
    /// their vectors with them; a loaded index learns it when a search finds them gone).
    pub async fn drop_rows(&self, table: TableId, ids: &[i64]) {
        let indexes = self.indexes.lock().await;
        for ((id, _), index) in indexes.iter() {
            if *id == table {
                for row in ids {
                    index.remove(*row as u64);
                }
            }
        }
    }

    /// Rows most similar in meaning to `query` in the columns at `positions`: (row id, cosine),
    /// best first, at most `limit`.
    pub async fn similar(&self, store: &SharedStore, table: &TableDef, positions: &[u32], query: &str, limit: usize) -> Result<Vec<(i64, f64)>, EngineError> {
        let embedder = self.embedder("mode")?;
        let vector = embedder
            .embed(&[query.to_owned()])
            .await
            .map_err(|e| EngineError::Conflict(format!("the embedding model could not embed the query: {e}")))?
            .pop()
            .unwrap_or_default();
        let mut best: HashMap<i64, f64> = HashMap::new();
        for &position in positions {
            let index = self.index(store, table, position).await?;
            let query = vector.clone();
            // The scan is CPU work (split over threads for large indexes): off the async runtime.
            let hits = tokio::task::spawn_blocking(move || index.search(&query, limit, None))
                .await
                .map_err(|e| EngineError::Conflict(format!("semantic search failed: {e}")))?
                .map_err(|e| EngineError::Conflict(format!("semantic search failed: {e}")))?;
            for (id, score) in hits {
                let entry = best.entry(id as i64).or_insert(f64::MIN);
                *entry = entry.max(f64::from(score));
            }
        }
        let mut ranked: Vec<(i64, f64)> = best.into_iter().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked.truncate(limit);
        Ok(ranked)
    }

    /// Runs the vectorizer until `stop` (only when an embedder is configured).
    pub async fn run(self: Arc<Self>, store: SharedStore, tables: crate::tables::Tables, stop: CancellationToken) {
        let Some(embedder) = self.embedder.clone() else { return };
        let mut checked: HashSet<TableId> = HashSet::new();
        let mut failures: u32 = 0;
        loop {
            let worked = match self.turn(&store, &tables, &embedder, &mut checked, &mut failures).await {
                Ok(rows) => rows,
                Err(error) => {
                    tracing::warn!(%error, "vectorizer: a turn failed");
                    0
                }
            };
            if worked > 0 {
                continue;
            }
            let pause = if failures > 0 { SWEEP * 2u32.saturating_pow(failures.min(4)) } else { SWEEP };
            tokio::select! {
                _ = self.wake.notified(), if failures == 0 => {}
                _ = tokio::time::sleep(pause) => {}
                _ = stop.cancelled() => return,
            }
        }
    }

    /// One batch of one table's pending rows embedded; how many rows were stored.
    async fn turn(
        &self,
        store: &SharedStore,
        tables: &crate::tables::Tables,
        embedder: &Arc<dyn Embedder>,
        checked: &mut HashSet<TableId>,
        failures: &mut u32,
    ) -> Result<usize, EngineError> {
        let model = embedder.model_name().to_owned();
        // Round robin: start after the table served last, so a busy table starves no other.
        let mut tables_now = store.vectorized_tables().await?;
        tables_now.sort_by_key(|t| t.id);
        let start = self.last_served.lock().await.and_then(|last| tables_now.iter().position(|t| t.id > last)).unwrap_or(0);
        let start = start.min(tables_now.len());
        tables_now.rotate_left(start);
        for table in tables_now {
            if checked.insert(table.id) {
                let stale = store.stale_vector_rows(&table, &model).await?;
                if stale > 0 {
                    tracing::info!(table = %table.id, stale, "vectorizer: rows embedded by another model are embedded again");
                }
            }
            let page = tables.pending(&table, BATCH_ROWS).await?;
            if page.rows.is_empty() {
                continue;
            }
            let pending = PendingRows::read(&table, &page);
            let texts: Vec<String> = pending.texts.iter().map(|(_, _, text)| text.clone()).collect();
            *self.last_served.lock().await = Some(table.id);
            let embedded = embedder.embed(&texts).await.and_then(|vectors| {
                if vectors.len() == texts.len() {
                    Ok(vectors)
                } else {
                    Err(agentd_embed::EmbedError::BadResponse(format!("{} vectors for {} texts", vectors.len(), texts.len())))
                }
            });
            let vectors = match embedded {
                Ok(vectors) => {
                    *failures = 0;
                    vectors
                }
                Err(error) => {
                    *failures += 1;
                    if *failures >= MAX_ATTEMPTS {
                        *failures = 0;
                        self.isolate(store, &table, embedder, &pending).await?;
                    }
                    return Err(EngineError::Conflict(format!("the embedding model failed: {error}")));
                }
            };
            let mut stored = 0;
            for (row_id, read_at) in &pending.rows {
                let row_vectors: Vec<(u32, Vec<f32>)> = pending
                    .texts
                    .iter()
                    .zip(&vectors)
                    .filter(|((id, _, _), _)| id == row_id)
                    .map(|((_, position, _), vector)| (*position, vector.clone()))
                    .collect();
                let row = RowVectors { row_id: *row_id, model: model.clone(), vectors: row_vectors };
                if store.put_row_vectors(&table, &row, *read_at).await? {
                    stored += 1;
                    self.refresh(&table, &row).await;
                }
            }
            return Ok(stored.max(1));
        }
        Ok(0)
    }

    /// After repeated failures of a batch, tries its rows one by one: a row whose own text
    /// cannot be embedded is marked FAILED; the others stay PENDING (an outage fails them all,
    /// and then nothing is marked: they are tried again later).
    async fn isolate(&self, store: &SharedStore, table: &TableDef, embedder: &Arc<dyn Embedder>, pending: &PendingRows) -> Result<(), EngineError> {
        let mut failed = Vec::new();
        for (row_id, _) in &pending.rows {
            let texts: Vec<String> = pending.texts.iter().filter(|(id, _, _)| id == row_id).map(|(_, _, t)| t.clone()).collect();
            if embedder.embed(&texts).await.is_err() {
                failed.push(*row_id);
            }
        }
        if failed.len() == pending.rows.len() {
            tracing::warn!(table = %table.id, rows = failed.len(), "vectorizer: the embedding model fails every row; they stay PENDING and are tried again later");
            return Ok(());
        }
        tracing::warn!(table = %table.id, rows = ?failed, "vectorizer: these rows' text cannot be embedded; they are marked FAILED");
        store.set_vector_status(table, &failed, Some(vector_status::FAILED)).await?;
        Ok(())
    }

    /// Brings the loaded indexes of `table` up to date with a row's new vectors.
    async fn refresh(&self, table: &TableDef, row: &RowVectors) {
        let indexes = self.indexes.lock().await;
        for column in table.columns.iter().filter(|c| c.vectorized) {
            let Some(index) = indexes.get(&(table.id, column.position)) else { continue };
            match row.vectors.iter().find(|(p, _)| *p == column.position) {
                Some((_, vector)) => {
                    let _ = index.insert(row.row_id as u64, vector);
                }
                None => {
                    index.remove(row.row_id as u64);
                }
            }
        }
    }
}

/// A batch of pending rows as the vectorizer reads it.
struct PendingRows {
    /// (row id, its updated_at as read).
    rows: Vec<(i64, chrono::DateTime<chrono::Utc>)>,
    /// (row id, column position, text) for every non-empty vectorized cell.
    texts: Vec<(i64, u32, String)>,
}

impl PendingRows {
    fn read(table: &TableDef, page: &RowPage) -> Self {
        let at = |name: &str| page.names.iter().position(|n| n == name);
        let (id_at, updated_at) = (at("id"), at("updated_at"));
        let mut rows = Vec::new();
        let mut texts = Vec::new();
        for row in &page.rows {
            let id = match id_at.and_then(|i| row.get(i)) {
                Some(Cell::Integer(id)) => *id,
                _ => continue,
            };
            let read_at = match updated_at.and_then(|i| row.get(i)) {
                Some(Cell::Timestamp(ms)) | Some(Cell::Integer(ms)) => chrono::DateTime::from_timestamp_millis(*ms),
                _ => None,
            };
            let Some(read_at) = read_at else { continue };
            rows.push((id, read_at));
            for column in table.columns.iter().filter(|c| c.vectorized) {
                if let Some(Cell::Text(text)) = at(&column.name).and_then(|i| row.get(i)) {
                    if !text.trim().is_empty() {
                        texts.push((id, column.position, text.clone()));
                    }
                }
            }
        }
        PendingRows { rows, texts }
    }
}

/// Reciprocal-rank fusion of two rankings (best first): (row id, fused score), best first.
pub(crate) fn fuse(first: &[(i64, f64)], second: &[(i64, f64)], limit: usize) -> Vec<(i64, f64)> {
    let mut scores: HashMap<i64, f64> = HashMap::new();
    for ranking in [first, second] {
        for (rank, (id, _)) in ranking.iter().enumerate() {
            *scores.entry(*id).or_default() += 1.0 / (RRF_K + rank as f64 + 1.0);
        }
    }
    let mut fused: Vec<(i64, f64)> = scores.into_iter().collect();
    fused.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    fused.truncate(limit);
    fused
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fusion_favours_rows_both_rankings_like() {
        let words = [(1, 9.0), (2, 8.0), (3, 7.0)];
        let meaning = [(3, 0.9), (4, 0.8), (1, 0.7)];
        let fused = fuse(&words, &meaning, 3);
        let ids: Vec<i64> = fused.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, [1, 3, 2], "1 and 3 are in both; 1 ranks higher overall");
    }
}
