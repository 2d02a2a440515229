//! Tables in SQLite. A table's rows live in `ut_<resource number>` (`id INTEGER PRIMARY KEY
//! AUTOINCREMENT`, `created_at`, `updated_at`, `vector_status`, then `c<position>` per user
//! column), and its text columns in an external-content FTS5 index `ut_<n>_fts` kept by
//! triggers (insert, delete, and updates of the text columns). Adding a text column rebuilds
//! the index. Every identifier in the SQL is one made here; every value is bound.

use agentd_domain::table::{Aggregate, ColumnRef, Filter, FilterOp, JoinKind, Query, Selected, SortKey};
use agentd_domain::{ApiKeyId, Cell, ColumnDef, ColumnType, ProjectId, ResourceKind, RowPage, RowValues, TableDef, TableId, TablePermission};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{AssertSqlSafe, QueryBuilder, Row, Sqlite, Transaction};

use super::resources::assign_number;
use super::{SqliteStore, from_json, from_ms, json, ms, uuid};
use crate::tables::{RowTarget, TableStore, UploadLink};
use crate::{StoreError, StoreResult};

pub(super) const SELECT_TABLES: &str = "SELECT t.*, r.number AS resource_number FROM tables t JOIN resource_numbers r ON r.resource_id = t.id";

pub(super) fn rows_table(table: &TableDef) -> String {
    format!("ut_{}", table.resource_number)
}

pub(super) fn table_from_row(row: &SqliteRow) -> StoreResult<TableDef> {
    Ok(TableDef {
        id: TableId::from_uuid(uuid("id", row.try_get("id")?)?),
        resource_number: row.try_get::<i64, _>("resource_number")? as u64,
        project_id: ProjectId::from_uuid(uuid("project_id", row.try_get("project_id")?)?),
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        columns: from_json("columns", row.try_get("columns")?)?,
        created_at: from_ms(row.try_get("created_at")?)?,
        updated_at: from_ms(row.try_get("updated_at")?)?,
    })
}

fn name_taken(error: sqlx::Error, name: &str) -> StoreError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(format!("a table named `{name}` already exists")),
        _ => error.into(),
    }
}

/// The statements that (re)make a table's full-text index over its text columns.
fn fts_statements(table: &TableDef) -> Vec<String> {
    let t = rows_table(table);
    let mut out = vec![
        format!("DROP TRIGGER IF EXISTS {t}_ai"),
        format!("DROP TRIGGER IF EXISTS {t}_ad"),
        format!("DROP TRIGGER IF EXISTS {t}_au"),
        format!("DROP TABLE IF EXISTS {t}_fts"),
    ];
    let text: Vec<String> = table.columns.iter().filter(|c| c.column_type.is_text()).map(ColumnDef::physical).collect();
    if text.is_empty() {
        return out;
    }
    let cols = text.join(", ");
    let new = text.iter().map(|c| format!("new.{c}")).collect::<Vec<_>>().join(", ");
    let old = text.iter().map(|c| format!("old.{c}")).collect::<Vec<_>>().join(", ");
    out.push(format!("CREATE VIRTUAL TABLE {t}_fts USING fts5({cols}, content='{t}', content_rowid='id')"));
    out.push(format!("CREATE TRIGGER {t}_ai AFTER INSERT ON {t} BEGIN INSERT INTO {t}_fts(rowid, {cols}) VALUES (new.id, {new}); END"));
    out.push(format!("CREATE TRIGGER {t}_ad AFTER DELETE ON {t} BEGIN INSERT INTO {t}_fts({t}_fts, rowid, {cols}) VALUES ('delete', old.id, {old}); END"));
    out.push(format!(
        "CREATE TRIGGER {t}_au AFTER UPDATE OF {cols} ON {t} BEGIN \
         INSERT INTO {t}_fts({t}_fts, rowid, {cols}) VALUES ('delete', old.id, {old}); \
         INSERT INTO {t}_fts(rowid, {cols}) VALUES (new.id, {new}); END"
    ));
    out.push(format!("INSERT INTO {t}_fts({t}_fts) VALUES ('rebuild')"));
    out
}

async fn execute_all(tx: &mut Transaction<'_, Sqlite>, statements: Vec<String>) -> StoreResult<()> {
    for statement in statements {
        sqlx::query(AssertSqlSafe(statement)).execute(&mut **tx).await?;
    }
    Ok(())
}

fn bind_cell(sql: &mut QueryBuilder<Sqlite>, cell: &Cell) {
    match cell {
        Cell::Null => sql.push_bind(None::<i64>),
        Cell::Text(text) => sql.push_bind(text.clone()),
        Cell::Integer(i) | Cell::Timestamp(i) => sql.push_bind(*i),
        Cell::Float(f) => sql.push_bind(*f),
        Cell::Boolean(b) => sql.push_bind(i64::from(*b)),
    };
}

fn read_cell(row: &SqliteRow, index: usize, column_type: ColumnType) -> StoreResult<Cell> {
    let cell = match column_type {
        ColumnType::String | ColumnType::LongText => row.try_get_unchecked::<Option<String>, _>(index)?.map(Cell::Text),
        ColumnType::Integer => row.try_get_unchecked::<Option<i64>, _>(index)?.map(Cell::Integer),
        ColumnType::Timestamp => row.try_get_unchecked::<Option<i64>, _>(index)?.map(Cell::Timestamp),
        ColumnType::Boolean => row.try_get_unchecked::<Option<i64>, _>(index)?.map(|v| Cell::Boolean(v != 0)),
        ColumnType::Float => row.try_get_unchecked::<Option<f64>, _>(index)?.map(Cell::Float),
    };
    Ok(cell.unwrap_or(Cell::Null))
}

fn column_expr(column: &ColumnRef) -> String {
    format!("t{}.{}", column.source, column.physical())
}

fn push_filter(sql: &mut QueryBuilder<Sqlite>, filter: &Filter) {
    match filter {
        Filter::And(children) | Filter::Or(children) => {
            let joiner = if matches!(filter, Filter::And(_)) { " AND " } else { " OR " };
            sql.push("(");
            for (i, child) in children.iter().enumerate() {
                if i > 0 {
                    sql.push(joiner);
                }
                push_filter(sql, child);
            }
            sql.push(")");
        }
        Filter::Condition { column, op, values } => {
            sql.push(column_expr(column));
            let comparison = match op {
                FilterOp::Eq => " = ",
                FilterOp::Ne => " IS NOT ",
                FilterOp::Lt => " < ",
                FilterOp::Lte => " <= ",
                FilterOp::Gt => " > ",
                FilterOp::Gte => " >= ",
                FilterOp::Like => " LIKE ",
                FilterOp::IsNull => {
                    sql.push(" IS NULL");
                    return;
                }
                FilterOp::IsNotNull => {
                    sql.push(" IS NOT NULL");
                    return;
                }
                FilterOp::In => {
                    sql.push(" IN (");
                    for (i, value) in values.iter().enumerate() {
                        if i > 0 {
                            sql.push(", ");
                        }
                        bind_cell(sql, value);
                    }
                    sql.push(")");
                    return;
                }
            };
            sql.push(comparison);
            bind_cell(sql, values.first().unwrap_or(&Cell::Null));
        }
    }
}

fn selected_expr(selected: &Selected) -> String {
    let column = selected.column.as_ref().map(column_expr).unwrap_or_else(|| "*".into());
    match selected.function {
        None => column,
        Some(Aggregate::Count) => format!("COUNT({column})"),
        Some(Aggregate::Sum) => format!("SUM({column})"),
        Some(Aggregate::Min) => format!("MIN({column})"),
        Some(Aggregate::Max) => format!("MAX({column})"),
        Some(Aggregate::Avg) => format!("AVG({column})"),
    }
}

/// FROM, joins, WHERE and GROUP BY of a query.
fn push_body(sql: &mut QueryBuilder<Sqlite>, query: &Query) {
    sql.push(format!(" FROM {} AS t0", rows_table(&query.sources[0])));
    for (i, join) in query.joins.iter().enumerate() {
        let kind = match join.kind {
            JoinKind::Inner => "INNER",
            JoinKind::Left => "LEFT",
        };
        sql.push(format!(
            " {kind} JOIN {} AS t{} ON {} = {}",
            rows_table(&query.sources[i + 1]),
            i + 1,
            column_expr(&join.left),
            column_expr(&join.right)
        ));
    }
    if let Some(filter) = &query.filter {
        sql.push(" WHERE ");
        push_filter(sql, filter);
    }
    if !query.group_by.is_empty() {
        sql.push(" GROUP BY ");
        sql.push(query.group_by.iter().map(column_expr).collect::<Vec<_>>().join(", "));
    }
}

fn push_values(sql: &mut QueryBuilder<Sqlite>, values: &RowValues) {
    for (position, cell) in values {
        sql.push(format!(", c{position} = "));
        bind_cell(sql, cell);
    }
}

fn push_target(sql: &mut QueryBuilder<Sqlite>, table: &TableDef, target: &RowTarget) {
    match target {
        RowTarget::All => {}
        RowTarget::Ids(ids) => {
            sql.push(" WHERE id IN (");
            for (i, id) in ids.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.push_bind(*id);
            }
            sql.push(")");
        }
        RowTarget::Filter(filter) => {
            sql.push(format!(" WHERE id IN (SELECT t0.id FROM {} AS t0 WHERE ", rows_table(table)));
            push_filter(sql, filter);
            sql.push(")");
        }
    }
}

fn fts_match(terms: &[String], columns: &[String]) -> String {
    let quoted: Vec<String> = terms.iter().map(|t| format!("\"{}\"", t.replace('"', "\"\""))).collect();
    let any = quoted.join(" OR ");
    if columns.is_empty() { any } else { format!("{{{}}} : ({any})", columns.join(" ")) }
}

impl SqliteStore {
    async fn table_where(&self, clause: &str, project: ProjectId, value: String) -> StoreResult<Option<TableDef>> {
        let row = sqlx::query(AssertSqlSafe(format!("{SELECT_TABLES} WHERE t.project_id = $1 AND {clause} = $2")))
            .bind(project.to_string())
            .bind(value)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(table_from_row).transpose()
    }

    async fn update_one(tx: &mut Transaction<'_, Sqlite>, table: &TableDef, target: &RowTarget, values: &RowValues, at: DateTime<Utc>) -> StoreResult<u64> {
        // Strictly later than before, even within one millisecond (or if the clock stepped
        // back): the vectorizer tells an edited row from the one it read by `updated_at`.
        let mut sql = QueryBuilder::<Sqlite>::new(format!("UPDATE {} SET updated_at = MAX(updated_at + 1, ", rows_table(table)));
        sql.push_bind(ms(at));
        sql.push(")");
        if table.touches_vectorized(values) {
            sql.push(", vector_status = ");
            sql.push_bind(agentd_domain::table::vector_status::PENDING);
        }
        push_values(&mut sql, values);
        push_target(&mut sql, table, target);
        Ok(sql.build().execute(&mut **tx).await?.rows_affected())
    }
}

#[async_trait]
impl TableStore for SqliteStore {
    async fn insert_table(&self, table: &TableDef) -> StoreResult<u64> {
        let mut tx = self.write_transaction().await?;
        sqlx::query("INSERT INTO tables (id, project_id, name, description, columns, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(table.id.to_string())
            .bind(table.project_id.to_string())
            .bind(&table.name)
            .bind(&table.description)
            .bind(json(&table.columns))
            .bind(ms(table.created_at))
            .bind(ms(table.updated_at))
            .execute(&mut *tx)
            .await
            .map_err(|e| name_taken(e, &table.name))?;
        let number = assign_number(&mut tx, table.project_id, ResourceKind::Table, table.id.as_uuid()).await?;
        let numbered = TableDef { resource_number: number, ..table.clone() };
        let t = rows_table(&numbered);
        let mut columns = String::new();
        for c in &numbered.columns {
            columns.push_str(&format!(", {} {}", c.physical(), c.column_type.sql_type()));
        }
        let mut statements = vec![format!(
            "CREATE TABLE {t} (id INTEGER PRIMARY KEY AUTOINCREMENT, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, vector_status TEXT{columns})"
        )];
        statements.push(format!("CREATE INDEX {t}_vector_status ON {t} (vector_status) WHERE vector_status IS NOT NULL"));
        statements.extend(fts_statements(&numbered));
        statements.push(super::vectors::vector_cleanup_trigger(&numbered, &t));
        execute_all(&mut tx, statements).await?;
        tx.commit().await?;
        Ok(number)
    }

    async fn get_table(&self, project: ProjectId, id: TableId) -> StoreResult<Option<TableDef>> {
        self.table_where("t.id", project, id.to_string()).await
    }

    async fn table_by_name(&self, project: ProjectId, name: &str) -> StoreResult<Option<TableDef>> {
        self.table_where("t.name", project, name.to_owned()).await
    }

    async fn list_tables(&self, project: ProjectId) -> StoreResult<Vec<TableDef>> {
        sqlx::query(AssertSqlSafe(format!("{SELECT_TABLES} WHERE t.project_id = $1 ORDER BY t.created_at DESC, t.id DESC")))
            .bind(project.to_string())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(table_from_row)
            .collect()
    }

    async fn update_table(&self, table: &TableDef, added: &[ColumnDef], previous: DateTime<Utc>) -> StoreResult<bool> {
        let mut tx = self.write_transaction().await?;
        let done = sqlx::query(
            "UPDATE tables SET name = $1, description = $2, columns = $3, updated_at = $4 WHERE project_id = $5 AND id = $6 AND updated_at = $7",
        )
            .bind(&table.name)
            .bind(&table.description)
            .bind(json(&table.columns))
            .bind(ms(table.updated_at))
            .bind(table.project_id.to_string())
            .bind(table.id.to_string())
            .bind(ms(previous))
            .execute(&mut *tx)
            .await
            .map_err(|e| name_taken(e, &table.name))?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        let t = rows_table(table);
        let mut statements: Vec<String> =
            added.iter().map(|c| format!("ALTER TABLE {t} ADD COLUMN {} {}", c.physical(), c.column_type.sql_type())).collect();
        if added.iter().any(|c| c.column_type.is_text()) {
            statements.extend(fts_statements(table));
        }
        execute_all(&mut tx, statements).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn delete_table(&self, project: ProjectId, id: TableId) -> StoreResult<bool> {
        let Some(table) = self.get_table(project, id).await? else { return Ok(false) };
        let mut tx = self.write_transaction().await?;
        let t = rows_table(&table);
        execute_all(&mut tx, vec![format!("DROP TABLE IF EXISTS {t}_fts"), format!("DROP TABLE IF EXISTS {t}")]).await?;
        sqlx::query("DELETE FROM table_vectors WHERE table_id = $1").bind(id.to_string()).execute(&mut *tx).await?;
        let done = sqlx::query("DELETE FROM tables WHERE project_id = $1 AND id = $2")
            .bind(project.to_string())
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        super::resources::forget_number(&mut tx, project, id.as_uuid()).await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    async fn count_rows(&self, table: &TableDef) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar(AssertSqlSafe(format!("SELECT COUNT(*) FROM {}", rows_table(table)))).fetch_one(&self.pool).await?;
        Ok(n as u64)
    }

    async fn insert_rows(&self, table: &TableDef, rows: &[RowValues], at: DateTime<Utc>) -> StoreResult<Vec<i64>> {
        let status = table.has_vectorized().then_some(agentd_domain::table::vector_status::PENDING);
        let mut tx = self.write_transaction().await?;
        let mut ids = Vec::with_capacity(rows.len());
        for values in rows {
            let mut sql = QueryBuilder::<Sqlite>::new(format!("INSERT INTO {} (created_at, updated_at, vector_status", rows_table(table)));
            for (position, _) in values {
                sql.push(format!(", c{position}"));
            }
            sql.push(") VALUES (");
            sql.push_bind(ms(at));
            sql.push(", ");
            sql.push_bind(ms(at));
            sql.push(", ");
            sql.push_bind(status);
            for (_, cell) in values {
                sql.push(", ");
                bind_cell(&mut sql, cell);
            }
            sql.push(") RETURNING id");
            let id: i64 = sql.build().fetch_one(&mut *tx).await?.try_get(0)?;
            ids.push(id);
        }
        tx.commit().await?;
        Ok(ids)
    }

    async fn update_rows(&self, table: &TableDef, target: &RowTarget, values: &RowValues, at: DateTime<Utc>) -> StoreResult<u64> {
        let mut tx = self.write_transaction().await?;
        let n = Self::update_one(&mut tx, table, target, values, at).await?;
        tx.commit().await?;
        Ok(n)
    }

    async fn update_rows_each(&self, table: &TableDef, rows: &[(i64, RowValues)], at: DateTime<Utc>) -> StoreResult<u64> {
        let mut tx = self.write_transaction().await?;
        let mut n = 0;
        for (id, values) in rows {
            n += Self::update_one(&mut tx, table, &RowTarget::Ids(vec![*id]), values, at).await?;
        }
        tx.commit().await?;
        Ok(n)
    }

    async fn delete_rows(&self, table: &TableDef, target: &RowTarget) -> StoreResult<u64> {
        let mut sql = QueryBuilder::<Sqlite>::new(format!("DELETE FROM {}", rows_table(table)));
        push_target(&mut sql, table, target);
        Ok(sql.build().execute(&self.pool).await?.rows_affected())
    }

    async fn query_rows(&self, query: &Query) -> StoreResult<RowPage> {
        let mut sql = QueryBuilder::<Sqlite>::new("SELECT ");
        let items: Vec<String> = query.select.iter().enumerate().map(|(i, s)| format!("{} AS o{i}", selected_expr(s))).collect();
        sql.push(items.join(", "));
        push_body(&mut sql, query);
        let mut order: Vec<String> = query
            .sort
            .iter()
            .map(|(key, descending)| {
                let expr = match key {
                    SortKey::Column(c) => column_expr(c),
                    SortKey::Output(i) => format!("o{i}"),
                };
                format!("{expr} {}", if *descending { "DESC" } else { "ASC" })
            })
            .collect();
        if !query.group_by.is_empty() {
            order.extend(query.group_by.iter().map(|c| format!("{} ASC", column_expr(c))));
        } else if !query.aggregated() {
            order.extend((0..query.sources.len()).map(|i| format!("t{i}.id ASC")));
        }
        if !order.is_empty() {
            sql.push(" ORDER BY ");
            sql.push(order.join(", "));
        }
        sql.push(" LIMIT ");
        sql.push_bind(i64::from(query.limit));
        sql.push(" OFFSET ");
        sql.push_bind(query.offset as i64);
        let rows = sql
            .build()
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| query.select.iter().enumerate().map(|(i, s)| read_cell(row, i, s.output)).collect::<StoreResult<Vec<_>>>())
            .collect::<StoreResult<Vec<_>>>()?;

        let total = if !query.group_by.is_empty() {
            let mut count = QueryBuilder::<Sqlite>::new("SELECT COUNT(*) FROM (SELECT 1");
            push_body(&mut count, query);
            count.push(") AS g");
            count.build().fetch_one(&self.pool).await?.try_get::<i64, _>(0)? as u64
        } else if query.aggregated() {
            1
        } else {
            let mut count = QueryBuilder::<Sqlite>::new("SELECT COUNT(*)");
            push_body(&mut count, query);
            count.build().fetch_one(&self.pool).await?.try_get::<i64, _>(0)? as u64
        };
        Ok(RowPage { names: query.select.iter().map(|s| s.name.clone()).collect(), rows, total })
    }

    async fn search_rows(&self, table: &TableDef, terms: &[String], positions: &[u32], limit: u32) -> StoreResult<Vec<(i64, f64)>> {
        if terms.is_empty() || !table.columns.iter().any(|c| c.column_type.is_text()) {
            return Ok(Vec::new());
        }
        let t = rows_table(table);
        let columns: Vec<String> = positions.iter().map(|p| format!("c{p}")).collect();
        let rows = sqlx::query(AssertSqlSafe(format!("SELECT rowid, bm25({t}_fts) AS rank FROM {t}_fts WHERE {t}_fts MATCH $1 ORDER BY rank, rowid LIMIT $2")))
            .bind(fts_match(terms, &columns))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|row| Ok((row.try_get::<i64, _>(0)?, -row.try_get::<f64, _>(1)?))).collect()
    }

    async fn set_vector_status(&self, table: &TableDef, ids: &[i64], status: Option<&str>) -> StoreResult<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut sql = QueryBuilder::<Sqlite>::new(format!("UPDATE {} SET vector_status = ", rows_table(table)));
        sql.push_bind(status.map(str::to_owned));
        push_target(&mut sql, table, &RowTarget::Ids(ids.to_vec()));
        Ok(sql.build().execute(&self.pool).await?.rows_affected())
    }

    async fn table_permissions(&self, table: TableId) -> StoreResult<Vec<(ApiKeyId, Vec<TablePermission>)>> {
        sqlx::query("SELECT key_id, permissions FROM table_permissions WHERE table_id = $1 ORDER BY key_id")
            .bind(table.to_string())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| Ok((ApiKeyId::from_uuid(uuid("key_id", row.try_get("key_id")?)?), from_json("permissions", row.try_get("permissions")?)?)))
            .collect()
    }

    async fn table_permission(&self, table: TableId, key: ApiKeyId) -> StoreResult<Option<Vec<TablePermission>>> {
        let raw: Option<String> = sqlx::query_scalar("SELECT permissions FROM table_permissions WHERE table_id = $1 AND key_id = $2")
            .bind(table.to_string())
            .bind(key.to_string())
            .fetch_optional(&self.pool)
            .await?;
        raw.as_deref().map(|raw| from_json("permissions", raw)).transpose()
    }

    async fn put_table_permission(&self, table: TableId, key: ApiKeyId, permissions: &[TablePermission], at: DateTime<Utc>) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO table_permissions (table_id, key_id, permissions, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (table_id, key_id) DO UPDATE SET permissions = excluded.permissions, updated_at = excluded.updated_at",
        )
        .bind(table.to_string())
        .bind(key.to_string())
        .bind(json(&permissions))
        .bind(ms(at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn delete_table_permission(&self, table: TableId, key: ApiKeyId) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM table_permissions WHERE table_id = $1 AND key_id = $2")
            .bind(table.to_string())
            .bind(key.to_string())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn insert_upload_link(&self, link: &UploadLink) -> StoreResult<()> {
        // Links that expired (and the files staged with them) go as new ones come.
        sqlx::query("DELETE FROM table_upload_links WHERE expires_at < $1").bind(ms(link.created_at)).execute(&self.pool).await?;
        sqlx::query("INSERT INTO table_upload_links (token_hash, project_id, table_id, expires_at, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&link.token_hash)
            .bind(link.project_id.to_string())
            .bind(link.table_id.to_string())
            .bind(ms(link.expires_at))
            .bind(ms(link.created_at))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn take_upload_link(&self, token_hash: &str, now: DateTime<Utc>) -> StoreResult<Option<UploadLink>> {
        let mut tx = self.write_transaction().await?;
        let row = sqlx::query("DELETE FROM table_upload_links WHERE token_hash = $1 RETURNING project_id, table_id, expires_at, created_at, staged")
            .bind(token_hash)
            .fetch_optional(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM table_upload_links WHERE expires_at < $1").bind(ms(now)).execute(&mut *tx).await?;
        tx.commit().await?;
        let Some(row) = row else { return Ok(None) };
        let mut link = upload_link(token_hash, &row)?;
        link.staged = row.try_get("staged")?;
        Ok(Some(link))
    }

    async fn peek_upload_link(&self, token_hash: &str) -> StoreResult<Option<(UploadLink, bool)>> {
        let row = sqlx::query("SELECT project_id, table_id, expires_at, created_at, staged IS NOT NULL AS has_file FROM table_upload_links WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some((upload_link(token_hash, &row)?, row.try_get::<bool, _>("has_file")?)))
    }

    async fn stage_upload(&self, token_hash: &str, file: &[u8]) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE table_upload_links SET staged = $2 WHERE token_hash = $1 AND staged IS NULL")
            .bind(token_hash)
            .bind(file)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}

/// An upload link's row (without its file).
fn upload_link(token_hash: &str, row: &sqlx::sqlite::SqliteRow) -> StoreResult<UploadLink> {
    Ok(UploadLink {
        token_hash: token_hash.to_owned(),
        project_id: ProjectId::from_uuid(uuid("project_id", row.try_get("project_id")?)?),
        table_id: TableId::from_uuid(uuid("table_id", row.try_get("table_id")?)?),
        expires_at: from_ms(row.try_get("expires_at")?)?,
        created_at: from_ms(row.try_get("created_at")?)?,
        staged: None,
    })
}
