//! Tables: a project's small database. A table has typed user columns (string, long text,
//! integer, float, boolean, timestamp) beside its system columns (`id`, `created_at`,
//! `updated_at`, `vector_status`); rows are written with typed checks ([`TableDef::values`])
//! and read through one query model ([`Query`]: selection with aggregates, nested AND/OR
//! filters, joins, grouping, sort, pagination) that the store compiles to parameterised SQL.
//!
//! Choices:
//! - A column is named by its position (`c1`, `c2` …) in storage, never by its user name, so
//!   a user's name is never an SQL identifier.
//! - The Autessa names `uniqueId`, `createdAt` and `lastUpdated` are accepted wherever a column
//!   is named (filters, sort, select, group by) as the system columns; user columns may take
//!   none of the system names nor these.
//! - Values are checked strictly in JSON (an integer column takes a JSON integer, a timestamp
//!   RFC 3339, `YYYY-MM-DD` or epoch milliseconds); CSV cells are read from text (an empty cell
//!   is null; booleans `true/false/1/0/yes/no`).
//! - `ne` is null-safe (`IS NOT`: a null is "not equal" to a value); `like` is SQL LIKE (`%`,
//!   `_`; case-insensitive for ASCII).

use std::collections::HashSet;

use chrono::{DateTime, NaiveDate, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{FieldError, ProjectId, TableId};

/// User columns of one table.
pub const MAX_COLUMNS: usize = 100;
/// Characters of a table's or a column's name.
pub const MAX_NAME_CHARS: usize = 64;
/// Characters of a table's description.
pub const MAX_DESCRIPTION_CHARS: usize = 2_000;
/// Characters of a `string` value.
pub const MAX_STRING_CHARS: usize = 10_000;
/// Characters of a `long_text` value.
pub const MAX_LONG_TEXT_CHARS: usize = 1_000_000;
/// Nesting of filter groups (a leaf inside five groups is the deepest).
pub const MAX_FILTER_DEPTH: usize = 5;
/// Conditions (leaves) in one filter.
pub const MAX_FILTER_CONDITIONS: usize = 50;
/// Values of one `in` condition.
pub const MAX_IN_VALUES: usize = 100;
/// Sort keys of one query.
pub const MAX_SORT_KEYS: usize = 5;
/// Tables joined to the main one in one query.
pub const MAX_JOINS: usize = 3;
/// Items of a query's `select` (and of its `group_by`).
pub const MAX_SELECT: usize = 200;
/// Rows of one page.
pub const MAX_PER_PAGE: u32 = 100;
/// Rows of a page when the request names no size.
pub const DEFAULT_PER_PAGE: u32 = 20;

/// The type of a user column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnType {
    /// Text up to [`MAX_STRING_CHARS`].
    String,
    /// Text up to [`MAX_LONG_TEXT_CHARS`].
    LongText,
    /// A 64-bit integer.
    Integer,
    /// A finite 64-bit float.
    Float,
    /// true or false.
    Boolean,
    /// An instant, stored as epoch milliseconds, shown as RFC 3339.
    Timestamp,
}

impl ColumnType {
    const ALL: [ColumnType; 6] = [Self::String, Self::LongText, Self::Integer, Self::Float, Self::Boolean, Self::Timestamp];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::LongText => "long_text",
            Self::Integer => "integer",
            Self::Float => "float",
            Self::Boolean => "boolean",
            Self::Timestamp => "timestamp",
        }
    }

    /// The type named `raw` (the wire name, or the Autessa name: `STRING`, `LONG_TEXT` …).
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str().eq_ignore_ascii_case(raw))
    }

    /// Text types (full-text indexed; the only ones that may be vectorized).
    pub fn is_text(self) -> bool {
        matches!(self, Self::String | Self::LongText)
    }

    /// Numbers (what `sum` and `avg` take).
    pub fn is_numeric(self) -> bool {
        matches!(self, Self::Integer | Self::Float)
    }

    /// The storage type (SQLite affinity; portable SQL names).
    pub fn sql_type(self) -> &'static str {
        match self {
            Self::String | Self::LongText => "TEXT",
            Self::Integer | Self::Boolean | Self::Timestamp => "BIGINT",
            Self::Float => "DOUBLE PRECISION",
        }
    }

    /// A JSON value checked for this type (null is [`Cell::Null`]; the caller decides
    /// whether null is allowed).
    pub fn cell(self, value: &Value) -> Result<Cell, String> {
        if value.is_null() {
            return Ok(Cell::Null);
        }
        match self {
            Self::String | Self::LongText => match value {
                Value::String(text) => self.text(text.clone()),
                _ => Err(format!("expected a string ({}), got {}", self.as_str(), kind_of(value))),
            },
            Self::Integer => match value {
                Value::Number(n) if n.is_i64() => Ok(Cell::Integer(n.as_i64().unwrap_or_default())),
                Value::Number(n) => match n.as_f64() {
                    Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(Cell::Integer(f as i64)),
                    _ => Err(format!("expected an integer, got {n}")),
                },
                _ => Err(format!("expected an integer, got {}", kind_of(value))),
            },
            Self::Float => match value.as_f64() {
                Some(f) if f.is_finite() => Ok(Cell::Float(f)),
                _ => Err(format!("expected a number, got {}", kind_of(value))),
            },
            Self::Boolean => match value {
                Value::Bool(b) => Ok(Cell::Boolean(*b)),
                _ => Err(format!("expected true or false, got {}", kind_of(value))),
            },
            Self::Timestamp => match value {
                Value::Number(n) if n.is_i64() => timestamp_ms(n.as_i64().unwrap_or_default()),
                Value::String(text) => parse_timestamp(text),
                _ => Err(format!("expected an RFC 3339 timestamp or epoch milliseconds, got {}", kind_of(value))),
            },
        }
    }

    /// A value read from text (a CSV cell): empty is null.
    pub fn cell_from_text(self, raw: &str) -> Result<Cell, String> {
        if raw.is_empty() {
            return Ok(Cell::Null);
        }
        let trimmed = raw.trim();
        match self {
            Self::String | Self::LongText => self.text(raw.to_owned()),
            Self::Integer => trimmed.parse::<i64>().map(Cell::Integer).map_err(|_| format!("`{}` is not an integer", shorten(raw))),
            Self::Float => match trimmed.parse::<f64>() {
                Ok(f) if f.is_finite() => Ok(Cell::Float(f)),
                _ => Err(format!("`{}` is not a number", shorten(raw))),
            },
            Self::Boolean => match trimmed.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Ok(Cell::Boolean(true)),
                "false" | "0" | "no" => Ok(Cell::Boolean(false)),
                _ => Err(format!("`{}` is not a boolean (true/false, 1/0, yes/no)", shorten(raw))),
            },
            Self::Timestamp => match trimmed.parse::<i64>() {
                Ok(ms) => timestamp_ms(ms),
                Err(_) => parse_timestamp(trimmed),
            },
        }
    }

    fn text(self, text: String) -> Result<Cell, String> {
        let max = if self == Self::String { MAX_STRING_CHARS } else { MAX_LONG_TEXT_CHARS };
        let chars = text.chars().count();
        if chars > max {
            return Err(format!("a {} value is at most {max} characters, got {chars}", self.as_str()));
        }
        Ok(Cell::Text(text))
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn shorten(raw: &str) -> String {
    let mut s: String = raw.chars().take(40).collect();
    if s.len() < raw.len() {
        s.push('…');
    }
    s
}

fn timestamp_ms(ms: i64) -> Result<Cell, String> {
    match Utc.timestamp_millis_opt(ms).single() {
        Some(_) => Ok(Cell::Timestamp(ms)),
        None => Err(format!("{ms} is out of range for a timestamp")),
    }
}

fn parse_timestamp(text: &str) -> Result<Cell, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(Cell::Timestamp(t.timestamp_millis()));
    }
    if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(Cell::Timestamp(day.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp_millis()).unwrap_or_default()));
    }
    Err(format!("`{}` is not a timestamp (RFC 3339 such as 2026-01-31T12:00:00Z, a date YYYY-MM-DD, or epoch milliseconds)", shorten(text)))
}

/// One stored value.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// No value.
    Null,
    /// Text.
    Text(String),
    /// An integer.
    Integer(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Boolean(bool),
    /// Epoch milliseconds.
    Timestamp(i64),
}

impl Cell {
    /// The value as JSON (a timestamp as RFC 3339 with milliseconds, UTC).
    pub fn to_json(&self) -> Value {
        match self {
            Cell::Null => Value::Null,
            Cell::Text(text) => Value::String(text.clone()),
            Cell::Integer(i) => Value::from(*i),
            Cell::Float(f) => serde_json::Number::from_f64(*f).map(Value::Number).unwrap_or(Value::Null),
            Cell::Boolean(b) => Value::Bool(*b),
            Cell::Timestamp(ms) => Utc
                .timestamp_millis_opt(*ms)
                .single()
                .map(|t| Value::String(t.to_rfc3339_opts(SecondsFormat::Millis, true)))
                .unwrap_or(Value::Null),
        }
    }
}

/// A system column: every table has them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SystemColumn {
    /// The row's id (an integer, never reused in the table).
    Id,
    /// When the row was inserted.
    CreatedAt,
    /// When the row last changed.
    UpdatedAt,
    /// Where its vectorized columns stand: PENDING, DONE or FAILED (null when the table has
    /// no vectorized column).
    VectorStatus,
}

impl SystemColumn {
    /// In output order.
    pub const ALL: [SystemColumn; 4] = [Self::Id, Self::CreatedAt, Self::UpdatedAt, Self::VectorStatus];

    /// Its name (and its storage column's).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Id => "id",
            Self::CreatedAt => "created_at",
            Self::UpdatedAt => "updated_at",
            Self::VectorStatus => "vector_status",
        }
    }

    /// The system column `name` names (its name or its Autessa alias).
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "id" | "uniqueId" => Some(Self::Id),
            "created_at" | "createdAt" => Some(Self::CreatedAt),
            "updated_at" | "lastUpdated" => Some(Self::UpdatedAt),
            "vector_status" => Some(Self::VectorStatus),
            _ => None,
        }
    }

    /// The type its values have.
    pub fn column_type(self) -> ColumnType {
        match self {
            Self::Id => ColumnType::Integer,
            Self::CreatedAt | Self::UpdatedAt => ColumnType::Timestamp,
            Self::VectorStatus => ColumnType::String,
        }
    }
}

/// Where a row's vectorized columns stand.
pub mod vector_status {
    /// Written, not yet embedded.
    pub const PENDING: &str = "PENDING";
    /// Embedded.
    pub const DONE: &str = "DONE";
    /// Embedding failed.
    pub const FAILED: &str = "FAILED";
}

/// A user column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnDef {
    /// Its name (an identifier, unique in the table).
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub column_type: ColumnType,
    /// Embedded for semantic search (text columns only).
    #[serde(default)]
    pub vectorized: bool,
    /// A row must have a value.
    #[serde(default)]
    pub required: bool,
    /// Its storage column is `c<position>` (1, 2, … in the order columns were added).
    pub position: u32,
}

impl ColumnDef {
    /// The storage column's name.
    pub fn physical(&self) -> String {
        format!("c{}", self.position)
    }
}

/// Checks a table's or column's name: 1 to 64 letters, digits and `_`, not starting with a
/// digit.
pub fn check_name(what: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.chars().count() <= MAX_NAME_CHARS
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(format!("a {what} name is 1 to {MAX_NAME_CHARS} letters, digits and `_`, not starting with a digit; got `{}`", shorten(name)))
    }
}

/// A new column as a caller describes it, checked against the table's existing columns.
pub fn check_new_columns(existing: &[ColumnDef], new: &[(String, ColumnType, bool, bool)], field: &str) -> Result<Vec<ColumnDef>, FieldError> {
    if existing.len() + new.len() > MAX_COLUMNS {
        return Err(FieldError::new(field, format!("a table has at most {MAX_COLUMNS} columns, this would make {}", existing.len() + new.len())));
    }
    let mut seen: HashSet<String> = existing.iter().map(|c| c.name.to_ascii_lowercase()).collect();
    let mut next = existing.iter().map(|c| c.position).max().unwrap_or(0) + 1;
    let mut out = Vec::new();
    for (i, (name, column_type, vectorized, required)) in new.iter().enumerate() {
        let at = format!("{field}[{i}]");
        check_name("column", name).map_err(|why| FieldError::new(format!("{at}.name"), why))?;
        if SystemColumn::parse(name).is_some() {
            return Err(FieldError::new(format!("{at}.name"), format!("`{name}` is a system column's name (id, created_at, updated_at, vector_status and their aliases uniqueId, createdAt, lastUpdated)")));
        }
        if !seen.insert(name.to_ascii_lowercase()) {
            return Err(FieldError::new(format!("{at}.name"), format!("the table already has a column named `{name}`")));
        }
        if *vectorized && !column_type.is_text() {
            return Err(FieldError::new(format!("{at}.vectorized"), "only string and long_text columns can be vectorized"));
        }
        out.push(ColumnDef { name: name.clone(), column_type: *column_type, vectorized: *vectorized, required: *required, position: next });
        next += 1;
    }
    Ok(out)
}

/// A table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableDef {
    /// Its id.
    pub id: TableId,
    /// Its resource number (unique on the server; the Autessa API's `resourceId`, `tableId`).
    pub resource_number: u64,
    /// The owning project.
    pub project_id: ProjectId,
    /// Its name, unique in the project.
    pub name: String,
    /// What it holds.
    pub description: String,
    /// Its user columns, in order.
    pub columns: Vec<ColumnDef>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When its definition last changed.
    pub updated_at: DateTime<Utc>,
}

/// Values to write: each column's position with its checked value.
pub type RowValues = Vec<(u32, Cell)>;

impl TableDef {
    /// Its user column called `name`.
    pub fn column(&self, name: &str) -> Option<&ColumnDef> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Whether any column is vectorized (its rows then carry a `vector_status`).
    pub fn has_vectorized(&self) -> bool {
        self.columns.iter().any(|c| c.vectorized)
    }

    /// The user column at `position`.
    pub fn at(&self, position: u32) -> Option<&ColumnDef> {
        self.columns.iter().find(|c| c.position == position)
    }

    /// Checks a row's values (`{column: value}`), naming `field.column` at fault. For an
    /// insert (`full`), required columns must be there; for an update, only the columns given
    /// change, and a required one may not become null.
    pub fn values(&self, raw: &serde_json::Map<String, Value>, field: &str, full: bool) -> Result<RowValues, FieldError> {
        let mut out = Vec::with_capacity(raw.len());
        for (name, value) in raw {
            let at = format!("{field}.{name}");
            let Some(column) = self.column(name) else {
                if SystemColumn::parse(name).is_some() {
                    return Err(FieldError::new(at, format!("`{name}` is a system column: it is set by the server")));
                }
                return Err(FieldError::new(at, format!("the table has no column `{name}`")));
            };
            let cell = column.column_type.cell(value).map_err(|why| FieldError::new(&at, format!("{at}: {why}")))?;
            if cell == Cell::Null && column.required {
                return Err(FieldError::new(&at, format!("{at} is required (the column is required)")));
            }
            out.push((column.position, cell));
        }
        if full {
            self.check_required(&out, field)?;
        }
        Ok(out)
    }

    /// Checks that every required column has a value in `values`.
    pub fn check_required(&self, values: &RowValues, field: &str) -> Result<(), FieldError> {
        for column in self.columns.iter().filter(|c| c.required) {
            if !values.iter().any(|(p, cell)| *p == column.position && *cell != Cell::Null) {
                return Err(FieldError::new(format!("{field}.{}", column.name), format!("{field}.{} is required (the column is required)", column.name)));
            }
        }
        Ok(())
    }

    /// Whether writing `values` touches a vectorized column (the row then needs embedding).
    pub fn touches_vectorized(&self, values: &RowValues) -> bool {
        values.iter().any(|(p, _)| self.at(*p).is_some_and(|c| c.vectorized))
    }
}

/// What a key may do with a table (a key with no grant on a table may do everything).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum TablePermission {
    /// Read rows: list, get, query, search.
    Read,
    /// Write rows: insert, update, import, upload links, reindex.
    Write,
    /// Delete rows.
    Delete,
}

impl TablePermission {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "READ",
            Self::Write => "WRITE",
            Self::Delete => "DELETE",
        }
    }

    /// The permission named `raw` (any case).
    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Read, Self::Write, Self::Delete].into_iter().find(|p| p.as_str().eq_ignore_ascii_case(raw))
    }
}

/// A comparison of a filter condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterOp {
    /// `=`.
    Eq,
    /// Null-safe `<>` (a null differs from any value).
    Ne,
    /// `<`.
    Lt,
    /// `<=`.
    Lte,
    /// `>`.
    Gt,
    /// `>=`.
    Gte,
    /// SQL LIKE (`%`, `_`).
    Like,
    /// One of a list.
    In,
    /// No value.
    IsNull,
    /// Some value.
    IsNotNull,
}

impl FilterOp {
    /// The op named `raw`: `eq ne lt lte gt gte like in is_null is_not_null`, or the Autessa
    /// names (`EQUALS`, `NOT_EQUALS`, `GREATER_THAN_OR_EQUALS` …).
    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw.to_ascii_lowercase().as_str() {
            "eq" | "equals" | "=" => Self::Eq,
            "ne" | "not_equals" | "!=" | "<>" => Self::Ne,
            "lt" | "less_than" | "<" => Self::Lt,
            "lte" | "less_than_or_equals" | "<=" => Self::Lte,
            "gt" | "greater_than" | ">" => Self::Gt,
            "gte" | "greater_than_or_equals" | ">=" => Self::Gte,
            "like" => Self::Like,
            "in" => Self::In,
            "is_null" => Self::IsNull,
            "is_not_null" => Self::IsNotNull,
            _ => return None,
        })
    }
}

/// A column of one of a query's sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColumnRef {
    /// The source: 0 the main table, 1… the joined ones.
    pub source: usize,
    /// The column.
    pub column: ColumnKind,
}

/// A system or user column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// A system column.
    System(SystemColumn),
    /// A user column: its position and type.
    User(u32, ColumnType),
}

impl ColumnRef {
    /// Its values' type.
    pub fn column_type(&self) -> ColumnType {
        match self.column {
            ColumnKind::System(s) => s.column_type(),
            ColumnKind::User(_, t) => t,
        }
    }

    /// The storage column's name (an identifier agentd made, never a user's).
    pub fn physical(&self) -> String {
        match self.column {
            ColumnKind::System(s) => s.as_str().to_owned(),
            ColumnKind::User(p, _) => format!("c{p}"),
        }
    }
}

/// A resolved filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// Every one holds.
    And(Vec<Filter>),
    /// Any one holds.
    Or(Vec<Filter>),
    /// A condition on a column.
    Condition {
        /// The column.
        column: ColumnRef,
        /// The comparison.
        op: FilterOp,
        /// Its operand(s): one for comparisons, the list for `in`, none for null checks.
        values: Vec<Cell>,
    },
}

/// An aggregate function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    /// Rows (`*`) or values.
    Count,
    /// Sum of numbers.
    Sum,
    /// Smallest.
    Min,
    /// Largest.
    Max,
    /// Mean of numbers.
    Avg,
}

impl Aggregate {
    /// The function named `raw` (any case).
    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw.to_ascii_lowercase().as_str() {
            "count" => Self::Count,
            "sum" => Self::Sum,
            "min" => Self::Min,
            "max" => Self::Max,
            "avg" => Self::Avg,
            _ => return None,
        })
    }

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Count => "count",
            Self::Sum => "sum",
            Self::Min => "min",
            Self::Max => "max",
            Self::Avg => "avg",
        }
    }
}

/// One output column of a query.
#[derive(Debug, Clone, PartialEq)]
pub struct Selected {
    /// The column (None: `count(*)`).
    pub column: Option<ColumnRef>,
    /// Aggregated by.
    pub function: Option<Aggregate>,
    /// Its key in an output row.
    pub name: String,
    /// The type of its values.
    pub output: ColumnType,
}

/// How a joined table meets the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinKind {
    /// Rows that match on both sides.
    Inner,
    /// Every row of the left side, with nulls where nothing matches.
    Left,
}

/// A joined source: `sources[i + 1]` joined on `left = right`.
#[derive(Debug, Clone, PartialEq)]
pub struct Join {
    /// Inner or left.
    pub kind: JoinKind,
    /// A column of an earlier source.
    pub left: ColumnRef,
    /// A column of the joined source.
    pub right: ColumnRef,
}

/// What a query sorts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    /// A column.
    Column(ColumnRef),
    /// An output column (an aggregate named in `select`), by index.
    Output(usize),
}

/// A resolved query, ready for the store.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// The tables read: the main one first; each appears once per alias (self-joins).
    pub sources: Vec<TableDef>,
    /// `joins[i]` joins `sources[i + 1]`.
    pub joins: Vec<Join>,
    /// The output columns.
    pub select: Vec<Selected>,
    /// Which rows.
    pub filter: Option<Filter>,
    /// Grouped by.
    pub group_by: Vec<ColumnRef>,
    /// Order (ascending when the flag is false); the main table's id breaks ties.
    pub sort: Vec<(SortKey, bool)>,
    /// Rows skipped.
    pub offset: u64,
    /// Rows returned at most.
    pub limit: u32,
}

impl Query {
    /// Whether the rows are aggregates (grouped, or one row of aggregates).
    pub fn aggregated(&self) -> bool {
        !self.group_by.is_empty() || self.select.iter().any(|s| s.function.is_some())
    }
}

/// A page of output rows.
#[derive(Debug, Clone, PartialEq)]
pub struct RowPage {
    /// Each row's keys (the selection's names).
    pub names: Vec<String>,
    /// The rows: one cell per name.
    pub rows: Vec<Vec<Cell>>,
    /// Rows matching in all (every page).
    pub total: u64,
}

impl RowPage {
    /// Each row as a JSON object.
    pub fn objects(&self) -> Vec<serde_json::Map<String, Value>> {
        self.rows
            .iter()
            .map(|row| self.names.iter().cloned().zip(row.iter().map(Cell::to_json)).collect())
            .collect()
    }
}

/// A query as a caller gives it: names, not yet checked against the tables.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuerySpec {
    /// The main table's alias (default: its name).
    pub alias: Option<String>,
    /// Output columns (default: every column of every source).
    pub select: Option<Vec<SelectSpec>>,
    /// `{"and"|"or": [...]}` or `{"column", "op", "value"}`.
    pub filter: Option<Value>,
    /// Order.
    pub sort: Option<Vec<SortSpec>>,
    /// 0-based page.
    pub page: Option<u64>,
    /// Rows per page (1..=100).
    pub per_page: Option<u32>,
    /// Joined tables (one object or a list).
    #[serde(default, deserialize_with = "one_or_many")]
    pub join: Option<Vec<JoinSpec>>,
    /// Grouped by these columns.
    pub group_by: Option<Vec<String>>,
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Option<Vec<JoinSpec>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(JoinSpec),
        Many(Vec<JoinSpec>),
    }
    Ok(Option::<OneOrMany>::deserialize(de)?.map(|v| match v {
        OneOrMany::One(j) => vec![j],
        OneOrMany::Many(js) => js,
    }))
}

/// An output column as a caller names it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectSpec {
    /// A column (`name`, `alias.name`, or `*` for `count`).
    pub column: String,
    /// Its key in the output (default: the column as written, or `function(column)`).
    pub alias: Option<String>,
    /// count, sum, min, max or avg.
    pub function: Option<String>,
}

/// A sort key as a caller names it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SortSpec {
    /// A column, or an output name of `select`.
    pub column: String,
    /// asc (default) or desc.
    pub direction: Option<String>,
}

/// A join as a caller gives it; the table is found by the engine.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinSpec {
    /// The table: its id, resource number or name.
    pub table: Value,
    /// Its alias (default: its name).
    pub alias: Option<String>,
    /// inner (default) or left.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// `{"left": "a.col", "right": "b.col"}`.
    pub on: JoinOn,
}

/// A join condition.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinOn {
    /// A column of an earlier table.
    pub left: String,
    /// A column of the joined table.
    pub right: String,
}

/// The tables a query reads, each under its alias.
struct Sources<'a> {
    tables: Vec<(&'a TableDef, String)>,
}

impl Sources<'_> {
    fn resolve(&self, name: &str, field: &str, visible: usize) -> Result<ColumnRef, FieldError> {
        let (source, column) = match name.split_once('.') {
            Some((alias, column)) => {
                let found = self.tables.iter().take(visible).position(|(_, a)| a == alias);
                let Some(source) = found else {
                    let known: Vec<&str> = self.tables.iter().take(visible).map(|(_, a)| a.as_str()).collect();
                    return Err(FieldError::new(field, format!("`{alias}` is not a table alias of this query (aliases: {})", known.join(", "))));
                };
                (source, column)
            }
            None if self.tables.len() > 1 => {
                return Err(FieldError::new(field, format!("in a join, name columns as `alias.column`; got `{name}`")));
            }
            None => (0, name),
        };
        let table = self.tables[source].0;
        let kind = match SystemColumn::parse(column) {
            Some(system) => ColumnKind::System(system),
            None => match table.column(column) {
                Some(c) => ColumnKind::User(c.position, c.column_type),
                None => return Err(FieldError::new(field, format!("the table `{}` has no column `{column}`", table.name))),
            },
        };
        Ok(ColumnRef { source, column: kind })
    }

    fn joined(&self) -> bool {
        self.tables.len() > 1
    }
}

/// Parses and resolves a filter (a JSON tree) against a single table.
pub fn resolve_filter(table: &TableDef, raw: &Value, field: &str) -> Result<Filter, FieldError> {
    let sources = Sources { tables: vec![(table, table.name.clone())] };
    let mut conditions = 0;
    filter(&sources, raw, field, 1, &mut conditions)
}

fn filter(sources: &Sources, raw: &Value, field: &str, depth: usize, conditions: &mut usize) -> Result<Filter, FieldError> {
    let Value::Object(map) = raw else {
        return Err(FieldError::new(field, format!("{field} must be an object: {{\"and\"|\"or\": [...]}} or {{\"column\", \"op\", \"value\"}}")));
    };
    for group in ["and", "or"] {
        let Some(children) = map.get(group) else { continue };
        if map.len() != 1 {
            return Err(FieldError::new(field, format!("a group `{group}` has no other keys")));
        }
        let at = format!("{field}.{group}");
        if depth > MAX_FILTER_DEPTH {
            return Err(FieldError::new(at, format!("filter groups nest at most {MAX_FILTER_DEPTH} deep")));
        }
        let Value::Array(children) = children else {
            return Err(FieldError::new(at, format!("{group} must be a list of filters")));
        };
        if children.is_empty() {
            return Err(FieldError::new(at, format!("{group} must hold at least one filter")));
        }
        let parsed = children
            .iter()
            .enumerate()
            .map(|(i, child)| filter(sources, child, &format!("{at}[{i}]"), depth + 1, conditions))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(if group == "and" { Filter::And(parsed) } else { Filter::Or(parsed) });
    }
    *conditions += 1;
    if *conditions > MAX_FILTER_CONDITIONS {
        return Err(FieldError::new(field, format!("a filter holds at most {MAX_FILTER_CONDITIONS} conditions")));
    }
    if let Some(key) = map.keys().find(|k| !["column", "op", "value"].contains(&k.as_str())) {
        return Err(FieldError::new(format!("{field}.{key}"), format!("unknown filter key `{key}` (a condition has column, op, value; a group and or or)")));
    }
    let column_raw = map.get("column").and_then(Value::as_str).ok_or_else(|| FieldError::new(format!("{field}.column"), format!("{field}.column is required (a column name)")))?;
    let column = sources.resolve(column_raw, &format!("{field}.column"), sources.tables.len())?;
    let op_raw = map.get("op").and_then(Value::as_str).ok_or_else(|| FieldError::new(format!("{field}.op"), format!("{field}.op is required")))?;
    let op = FilterOp::parse(op_raw).ok_or_else(|| {
        FieldError::new(format!("{field}.op"), format!("unknown op `{op_raw}`: one of eq, ne, lt, lte, gt, gte, like, in, is_null, is_not_null"))
    })?;
    let value_at = format!("{field}.value");
    let value = map.get("value").unwrap_or(&Value::Null);
    let column_type = column.column_type();
    let one = |v: &Value, at: &str| -> Result<Cell, FieldError> {
        match column_type.cell(v) {
            Ok(Cell::Null) => Err(FieldError::new(at, format!("{at} is required (use is_null / is_not_null for nulls)"))),
            Ok(cell) => Ok(cell),
            Err(why) => Err(FieldError::new(at, format!("{at}: {why}"))),
        }
    };
    let values = match op {
        FilterOp::IsNull | FilterOp::IsNotNull => {
            if !value.is_null() {
                return Err(FieldError::new(value_at, format!("{op_raw} takes no value")));
            }
            Vec::new()
        }
        FilterOp::In => {
            let Value::Array(items) = value else {
                return Err(FieldError::new(value_at, "in takes a list of values"));
            };
            if items.is_empty() || items.len() > MAX_IN_VALUES {
                return Err(FieldError::new(value_at, format!("in takes 1 to {MAX_IN_VALUES} values, got {}", items.len())));
            }
            items.iter().enumerate().map(|(i, v)| one(v, &format!("{value_at}[{i}]"))).collect::<Result<_, _>>()?
        }
        FilterOp::Like => {
            if !column_type.is_text() {
                return Err(FieldError::new(format!("{field}.op"), format!("like compares text; `{column_raw}` is {}", column_type.as_str())));
            }
            vec![one(value, &value_at)?]
        }
        _ => vec![one(value, &value_at)?],
    };
    Ok(Filter::Condition { column, op, values })
}

impl QuerySpec {
    /// Resolves the query against its tables: `main`, then each joined table (in the order of
    /// `join`). Errors name the field (`filter.and[1].column`, `join[0].on.left` …).
    pub fn resolve(&self, main: &TableDef, joined: &[TableDef]) -> Result<Query, FieldError> {
        let joins = self.join.as_deref().unwrap_or_default();
        if joins.len() > MAX_JOINS {
            return Err(FieldError::new("join", format!("a query joins at most {MAX_JOINS} tables")));
        }
        let main_alias = self.alias.clone().unwrap_or_else(|| main.name.clone());
        check_name("alias", &main_alias).map_err(|why| FieldError::new("alias", why))?;
        let mut sources = Sources { tables: vec![(main, main_alias)] };
        for (i, (spec, table)) in joins.iter().zip(joined).enumerate() {
            let alias = spec.alias.clone().unwrap_or_else(|| table.name.clone());
            check_name("alias", &alias).map_err(|why| FieldError::new(format!("join[{i}].alias"), why))?;
            if sources.tables.iter().any(|(_, a)| *a == alias) {
                return Err(FieldError::new(format!("join[{i}].alias"), format!("the alias `{alias}` is taken: give each table its own (a self-join needs two)")));
            }
            sources.tables.push((table, alias));
        }
        let mut resolved_joins = Vec::new();
        for (i, spec) in joins.iter().enumerate() {
            let kind = match spec.kind.as_deref().map(str::to_ascii_lowercase).as_deref() {
                None | Some("inner") => JoinKind::Inner,
                Some("left") => JoinKind::Left,
                Some(other) => return Err(FieldError::new(format!("join[{i}].type"), format!("unknown join type `{other}`: inner or left"))),
            };
            let left = sources.resolve(&spec.on.left, &format!("join[{i}].on.left"), i + 1)?;
            let right = sources.resolve(&spec.on.right, &format!("join[{i}].on.right"), i + 2)?;
            if right.source != i + 1 {
                return Err(FieldError::new(format!("join[{i}].on.right"), "on.right names a column of the joined table"));
            }
            resolved_joins.push(Join { kind, left, right });
        }

        let filter = match &self.filter {
            None | Some(Value::Null) => None,
            Some(raw) => {
                let mut conditions = 0;
                Some(filter(&sources, raw, "filter", 1, &mut conditions)?)
            }
        };

        let mut group_by = Vec::new();
        for (i, name) in self.group_by.iter().flatten().enumerate() {
            if i >= MAX_SELECT {
                return Err(FieldError::new("group_by", format!("at most {MAX_SELECT} columns")));
            }
            group_by.push(sources.resolve(name, &format!("group_by[{i}]"), sources.tables.len())?);
        }

        let select = match &self.select {
            None => default_select(&sources, &group_by),
            Some(items) => select(&sources, items, &group_by)?,
        };
        if select.is_empty() {
            return Err(FieldError::new("select", "select names at least one column"));
        }

        let mut sort = Vec::new();
        let specs = self.sort.as_deref().unwrap_or_default();
        if specs.len() > MAX_SORT_KEYS {
            return Err(FieldError::new("sort", format!("at most {MAX_SORT_KEYS} sort keys")));
        }
        let aggregated = !group_by.is_empty() || select.iter().any(|s| s.function.is_some());
        for (i, spec) in specs.iter().enumerate() {
            let at = format!("sort[{i}]");
            let descending = match spec.direction.as_deref().map(str::to_ascii_lowercase).as_deref() {
                None | Some("asc") => false,
                Some("desc") => true,
                Some(other) => return Err(FieldError::new(format!("{at}.direction"), format!("unknown direction `{other}`: asc or desc"))),
            };
            let key = match select.iter().position(|s| s.name == spec.column && (s.function.is_some() || aggregated)) {
                Some(index) => SortKey::Output(index),
                None => {
                    let column = sources.resolve(&spec.column, &format!("{at}.column"), sources.tables.len())?;
                    if aggregated && !group_by.contains(&column) {
                        return Err(FieldError::new(format!("{at}.column"), "an aggregated query sorts by its group_by columns or its select names"));
                    }
                    SortKey::Column(column)
                }
            };
            sort.push((key, descending));
        }

        let per_page = self.per_page.unwrap_or(DEFAULT_PER_PAGE);
        if per_page == 0 || per_page > MAX_PER_PAGE {
            return Err(FieldError::new("per_page", format!("per_page is 1 to {MAX_PER_PAGE}, got {per_page}")));
        }
        let page = self.page.unwrap_or(0);
        let offset = page.checked_mul(per_page as u64).filter(|o| *o <= i64::MAX as u64).ok_or_else(|| FieldError::new("page", "page is too large"))?;

        Ok(Query {
            sources: sources.tables.iter().map(|(t, _)| (*t).clone()).collect(),
            joins: resolved_joins,
            select,
            filter,
            group_by,
            sort,
            offset,
            limit: per_page,
        })
    }
}

/// Every column of every source (grouped: the group's columns).
fn default_select(sources: &Sources, group_by: &[ColumnRef]) -> Vec<Selected> {
    let mut out = Vec::new();
    for (source, (table, alias)) in sources.tables.iter().enumerate() {
        let prefix = if sources.joined() { format!("{alias}.") } else { String::new() };
        let mut push = |column: ColumnRef, name: &str| {
            if group_by.is_empty() || group_by.contains(&column) {
                out.push(Selected { column: Some(column), function: None, name: format!("{prefix}{name}"), output: column.column_type() });
            }
        };
        for system in SystemColumn::ALL {
            push(ColumnRef { source, column: ColumnKind::System(system) }, system.as_str());
        }
        for c in &table.columns {
            push(ColumnRef { source, column: ColumnKind::User(c.position, c.column_type) }, &c.name);
        }
    }
    out
}

fn select(sources: &Sources, items: &[SelectSpec], group_by: &[ColumnRef]) -> Result<Vec<Selected>, FieldError> {
    if items.len() > MAX_SELECT {
        return Err(FieldError::new("select", format!("select names at most {MAX_SELECT} columns")));
    }
    let mut out: Vec<Selected> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("select[{i}]");
        let function = match &item.function {
            None => None,
            Some(raw) => Some(Aggregate::parse(raw).ok_or_else(|| FieldError::new(format!("{at}.function"), format!("unknown function `{raw}`: count, sum, min, max or avg")))?),
        };
        let column = if item.column == "*" {
            if function != Some(Aggregate::Count) {
                return Err(FieldError::new(format!("{at}.column"), "`*` is for count only"));
            }
            None
        } else {
            Some(sources.resolve(&item.column, &format!("{at}.column"), sources.tables.len())?)
        };
        let output = match (function, column) {
            (Some(Aggregate::Count), _) => ColumnType::Integer,
            (Some(f @ (Aggregate::Sum | Aggregate::Avg)), Some(c)) => {
                if !c.column_type().is_numeric() {
                    return Err(FieldError::new(format!("{at}.function"), format!("{} takes a number column; `{}` is {}", f.as_str(), item.column, c.column_type().as_str())));
                }
                if f == Aggregate::Avg { ColumnType::Float } else { c.column_type() }
            }
            (_, Some(c)) => c.column_type(),
            (_, None) => ColumnType::Integer,
        };
        if function.is_none() && let Some(c) = column {
            let aggregated = !group_by.is_empty() || items.iter().any(|s| s.function.is_some());
            if aggregated && !group_by.contains(&c) {
                return Err(FieldError::new(format!("{at}.column"), "beside aggregates, a plain column must be one of group_by"));
            }
        }
        let name = match (&item.alias, function) {
            (Some(alias), _) => alias.clone(),
            (None, Some(f)) => format!("{}({})", f.as_str(), item.column),
            (None, None) => item.column.clone(),
        };
        if name.is_empty() || name.chars().count() > 128 {
            return Err(FieldError::new(format!("{at}.alias"), "an output name is 1 to 128 characters"));
        }
        if out.iter().any(|s| s.name == name) {
            return Err(FieldError::new(format!("{at}.alias"), format!("two outputs are named `{name}`: give one an alias")));
        }
        out.push(Selected { column, function, name, output });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn table() -> TableDef {
        let columns = check_new_columns(
            &[],
            &[
                ("name".into(), ColumnType::String, false, true),
                ("price".into(), ColumnType::Float, false, false),
                ("stock".into(), ColumnType::Integer, false, false),
            ],
            "columns",
        )
        .unwrap();
        TableDef {
            id: TableId::new(),
            resource_number: 1,
            project_id: ProjectId::new(),
            name: "products".into(),
            description: String::new(),
            columns,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn values_are_typed_and_errors_name_the_field() {
        let t = table();
        let ok = t.values(json!({"name": "a", "price": 2.5, "stock": 3}).as_object().unwrap(), "values", true).unwrap();
        assert_eq!(ok.len(), 3);
        let e = t.values(json!({"name": "a", "stock": "3"}).as_object().unwrap(), "rows[3]", true).unwrap_err();
        assert_eq!(e.field, "rows[3].stock");
        let e = t.values(json!({"price": 1}).as_object().unwrap(), "values", true).unwrap_err();
        assert_eq!(e.field, "values.name");
        let e = t.values(json!({"nope": 1}).as_object().unwrap(), "values", false).unwrap_err();
        assert_eq!(e.field, "values.nope");
    }

    #[test]
    fn timestamps_read_every_accepted_form() {
        let t = ColumnType::Timestamp;
        assert_eq!(t.cell(&json!("1970-01-01T00:00:01Z")).unwrap(), Cell::Timestamp(1000));
        assert_eq!(t.cell(&json!(5)).unwrap(), Cell::Timestamp(5));
        assert_eq!(t.cell_from_text("1970-01-02").unwrap(), Cell::Timestamp(86_400_000));
        assert!(t.cell(&json!("yesterday")).is_err());
        assert_eq!(Cell::Timestamp(1000).to_json(), json!("1970-01-01T00:00:01.000Z"));
    }

    #[test]
    fn filters_nest_to_a_bound() {
        let t = table();
        let leaf = json!({"column": "price", "op": "gt", "value": 1});
        let mut deep = leaf.clone();
        for _ in 0..MAX_FILTER_DEPTH {
            deep = json!({"and": [deep]});
        }
        assert!(resolve_filter(&t, &deep, "filter").is_ok());
        let deeper = json!({"or": [deep]});
        assert!(resolve_filter(&t, &deeper, "filter").is_err());
        let e = resolve_filter(&t, &json!({"and": [leaf, {"column": "nope", "op": "eq", "value": 1}]}), "filter").unwrap_err();
        assert_eq!(e.field, "filter.and[1].column");
        let e = resolve_filter(&t, &json!({"column": "price", "op": "like", "value": "x"}), "filter").unwrap_err();
        assert_eq!(e.field, "filter.op");
    }

    #[test]
    fn column_names_are_checked() {
        assert!(check_new_columns(&[], &[("id".into(), ColumnType::String, false, false)], "columns").is_err());
        assert!(check_new_columns(&[], &[("a b".into(), ColumnType::String, false, false)], "columns").is_err());
        assert!(check_new_columns(&[], &[("n".into(), ColumnType::Integer, true, false)], "columns").is_err());
        let max = "x".repeat(MAX_NAME_CHARS);
        assert!(check_new_columns(&[], &[(max.clone(), ColumnType::String, false, false)], "columns").is_ok());
        assert!(check_new_columns(&[], &[(format!("{max}x"), ColumnType::String, false, false)], "columns").is_err());
    }
}
