//! Embeddings of tables' vectorized columns in SQLite (`table_vectors`): written with the
//! row's DONE status in one transaction, only while the row is as it was read (so an edit
//! made while its text was being embedded is embedded again), read back per column for the
//! in-memory index.

use agentd_domain::TableDef;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{AssertSqlSafe, Row};

use super::{SqliteStore, ms};
use crate::StoreResult;
use crate::vectors::{RowVectors, VectorStore};

/// Little-endian f32s.
fn to_blob(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn from_blob(blob: &[u8]) -> Vec<f32> {
    blob.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

/// The statement that makes a rows table drop its rows' vectors with them.
pub(super) fn vector_cleanup_trigger(table: &TableDef, rows_table: &str) -> String {
    format!(
        "CREATE TRIGGER IF NOT EXISTS {rows_table}_vd AFTER DELETE ON {rows_table} BEGIN \
         DELETE FROM table_vectors WHERE table_id = '{}' AND row_id = old.id; END",
        table.id
    )
}

#[async_trait]
impl VectorStore for SqliteStore {
    async fn put_row_vectors(&self, table: &TableDef, row: &RowVectors, read_at: DateTime<Utc>) -> StoreResult<bool> {
        let t = super::tables::rows_table(table);
        let mut tx = self.write_transaction().await?;
        let done = sqlx::query(AssertSqlSafe(format!(
            "UPDATE {t} SET vector_status = 'DONE' WHERE id = $1 AND updated_at = $2 AND vector_status = 'PENDING'"
        )))
        .bind(row.row_id)
        .bind(ms(read_at))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            // Changed (or deleted, or reindexed) since it was read: its next turn embeds it.
            return Ok(false);
        }
        sqlx::query("DELETE FROM table_vectors WHERE table_id = $1 AND row_id = $2")
            .bind(table.id.to_string())
            .bind(row.row_id)
            .execute(&mut *tx)
            .await?;
        for (position, vector) in &row.vectors {
            sqlx::query("INSERT INTO table_vectors (table_id, row_id, position, model, vector) VALUES ($1, $2, $3, $4, $5)")
                .bind(table.id.to_string())
                .bind(row.row_id)
                .bind(i64::from(*position))
                .bind(&row.model)
                .bind(to_blob(vector))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn column_vectors(&self, table: &TableDef, position: u32, model: &str) -> StoreResult<Vec<(i64, Vec<f32>)>> {
        let rows = sqlx::query("SELECT row_id, vector FROM table_vectors WHERE table_id = $1 AND position = $2 AND model = $3")
            .bind(table.id.to_string())
            .bind(i64::from(position))
            .bind(model)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok((r.try_get::<i64, _>(0)?, from_blob(r.try_get::<&[u8], _>(1)?)))).collect()
    }

    async fn vectorized_tables(&self) -> StoreResult<Vec<TableDef>> {
        let all = sqlx::query(AssertSqlSafe(super::tables::SELECT_TABLES.to_owned())).fetch_all(&self.pool).await?;
        let tables: StoreResult<Vec<TableDef>> = all.iter().map(super::tables::table_from_row).collect();
        Ok(tables?.into_iter().filter(TableDef::has_vectorized).collect())
    }

    async fn stale_vector_rows(&self, table: &TableDef, model: &str) -> StoreResult<u64> {
        let t = super::tables::rows_table(table);
        let stale = sqlx::query(AssertSqlSafe(format!(
            "UPDATE {t} SET vector_status = 'PENDING' WHERE id IN \
             (SELECT row_id FROM table_vectors WHERE table_id = $1 AND model <> $2)"
        )))
        .bind(table.id.to_string())
        .bind(model)
        .execute(&self.pool)
        .await?;
        Ok(stale.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_round_trip_through_blobs() {
        let v = vec![0.25_f32, -1.5, 3.0e-7];
        assert_eq!(from_blob(&to_blob(&v)), v);
    }
}
