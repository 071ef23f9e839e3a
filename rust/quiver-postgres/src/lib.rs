//! The Postgres sink of the batch leg: `batch_users` and `batch_rejects`.
//!
//! A load is one transaction: the rows go into a temporary table with binary COPY (the
//! fastest way into Postgres), then into the real table with `INSERT … ON CONFLICT DO
//! UPDATE` by primary key. So a re-run of the same batch rewrites the same rows instead
//! of adding copies, and a failed load leaves nothing half-written.
//!
//! The tables' columns are derived from the core's Arrow schemas (`created_users` and
//! the rejects), plus the `run_id` that wrote each row and when it was loaded.

use std::fmt::Write as _;
use std::pin::pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{
    DataType, Int32Type, Int64Type, SchemaRef, TimeUnit, TimestampMillisecondType,
};
use quiver_core::schema::{created_users_schema, rejects_schema};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, NoTls};
use uuid::Uuid;

/// Where to load, and as whom.
#[derive(Debug, Clone)]
pub struct PostgresConfig {
    /// `postgresql://USER@HOST:PORT/DB`; a password in the URL works but belongs in a file.
    pub url: String,
    /// Overrides a password in the URL.
    pub password: Option<String>,
    pub users_table: String,
    pub rejects_table: String,
    pub connect_timeout: Duration,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        Self {
            url: "postgresql://quiver@127.0.0.1:5432/quiver".into(),
            password: None,
            users_table: "batch_users".into(),
            rejects_table: "batch_rejects".into(),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PostgresError {
    #[error("invalid Postgres URL {url:?}: {message} (expected postgresql://USER@HOST:PORT/DB)")]
    BadUrl { url: String, message: String },
    #[error("table name {0:?} is invalid: use letters, digits and `_` only")]
    BadTable(String),
    #[error(
        "cannot connect to Postgres at {target}: {message} (is it running? `scripts/stack up postgres`; \
         check QUIVER_POSTGRES_URL and the password in QUIVER_POSTGRES_PASSWORD_FILE)"
    )]
    Connect { target: String, message: String },
    #[error("creating table {table} failed: {message}")]
    Schema { table: String, message: String },
    #[error("reading {table} failed: {message}")]
    Read { table: String, message: String },
    #[error("loading run {run_id:?} into {table} failed: {message}")]
    Load {
        run_id: String,
        table: String,
        message: String,
    },
}

/// What one load stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Rows inserted or updated in the users table.
    pub rows: u64,
    pub rejects: u64,
}

/// One table: its name, the Arrow schema of the rows it takes and its key.
#[derive(Debug, Clone)]
struct Table {
    name: String,
    schema: SchemaRef,
    /// Primary key columns; `run_id` may be one of them.
    key: &'static [&'static str],
    /// Which copy of a key wins when a batch holds it twice (a replayed Kafka record).
    latest_first: &'static str,
    types: Vec<Type>,
}

impl Table {
    fn new(
        name: &str,
        schema: SchemaRef,
        key: &'static [&'static str],
        latest_first: &'static str,
    ) -> Result<Self, PostgresError> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(PostgresError::BadTable(name.into()));
        }
        let mut types = schema
            .fields()
            .iter()
            .map(|f| pg_type(f.name(), f.data_type(), key))
            .collect::<Vec<_>>();
        types.push(Type::TEXT); // run_id
        Ok(Self {
            name: name.into(),
            schema,
            key,
            latest_first,
            types,
        })
    }

    /// The copied columns: the schema's, then `run_id`.
    fn columns(&self) -> Vec<String> {
        let mut columns: Vec<String> = self
            .schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        columns.push("run_id".into());
        columns
    }

    fn create_statement(&self) -> String {
        let mut sql = format!("CREATE TABLE IF NOT EXISTS {} (", self.name);
        for (field, ty) in self.schema.fields().iter().zip(&self.types) {
            let not_null = !field.is_nullable() || self.key.contains(&field.name().as_str());
            let _ = write!(
                sql,
                "{} {}{}, ",
                field.name(),
                ty.name(),
                if not_null { " NOT NULL" } else { "" }
            );
        }
        sql.push_str("run_id text NOT NULL, ");
        let _ = write!(
            sql,
            "loaded_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY ({}))",
            self.key.join(", ")
        );
        sql
    }

    /// Moves the staged rows into the table: one row per key, newer rows replace older.
    fn upsert_statement(&self, staged: &str) -> String {
        let columns = self.columns();
        let list = columns.join(", ");
        let key = self.key.join(", ");
        let updates = columns
            .iter()
            .filter(|c| !self.key.contains(&c.as_str()))
            .map(|c| format!("{c} = EXCLUDED.{c}"))
            .chain(["loaded_at = now()".to_string()])
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "INSERT INTO {table} ({list}) SELECT DISTINCT ON ({key}) {list} FROM {staged} \
             ORDER BY {key}, {order} ON CONFLICT ({key}) DO UPDATE SET {updates}",
            table = self.name,
            order = self.latest_first,
        )
    }
}

/// The Postgres type of an Arrow column; the key's text column `id` holds UUIDs.
fn pg_type(name: &str, dt: &DataType, key: &[&str]) -> Type {
    match dt {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            if name == "id" && key.contains(&"id") =>
        {
            Type::UUID
        }
        DataType::Int32 => Type::INT4,
        DataType::Int64 => Type::INT8,
        DataType::Timestamp(..) => Type::TIMESTAMPTZ,
        DataType::Binary | DataType::LargeBinary => Type::BYTEA,
        _ => Type::TEXT,
    }
}

/// A connection and the two tables, created if missing.
pub struct PostgresSink {
    client: Client,
    users: Table,
    rejects: Table,
    target: String,
}

impl std::fmt::Debug for PostgresSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSink")
            .field("target", &self.target)
            .field("users", &self.users.name)
            .field("rejects", &self.rejects.name)
            .finish_non_exhaustive()
    }
}

impl PostgresSink {
    /// Connects and creates the tables if they are missing.
    pub async fn connect(config: &PostgresConfig) -> Result<Self, PostgresError> {
        let users = Table::new(
            &config.users_table,
            created_users_schema(),
            &["id"],
            "kafka_partition DESC NULLS LAST, kafka_offset DESC NULLS LAST",
        )?;
        let rejects = Table::new(
            &config.rejects_table,
            rejects_schema(),
            &["run_id", "kafka_partition", "kafka_offset"],
            "rejected_at DESC",
        )?;
        let (client, target) = connect(config, "quiver batch").await?;
        for table in [&users, &rejects] {
            client
                .batch_execute(&table.create_statement())
                .await
                .map_err(|e| PostgresError::Schema {
                    table: table.name.clone(),
                    message: error_text(&e),
                })?;
        }
        Ok(Self {
            client,
            users,
            rejects,
            target,
        })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// `user@host:port/db`, without the password.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Loads one run's output rows (in `created_users` shape) and rejects (in the core's
    /// rejects shape) in one transaction. Loading the same run again updates the same rows.
    pub async fn load(
        &mut self,
        run_id: &str,
        rows: &[RecordBatch],
        rejects: &[RecordBatch],
    ) -> Result<LoadReport, PostgresError> {
        let fail = |table: &Table| {
            let table = table.name.clone();
            move |message: String| PostgresError::Load {
                run_id: run_id.to_string(),
                table: table.clone(),
                message,
            }
        };
        let tx = self
            .client
            .transaction()
            .await
            .map_err(|e| fail(&self.users)(error_text(&e)))?;
        let mut report = LoadReport::default();
        for (table, batches, count) in [
            (&self.users, rows, &mut report.rows),
            (&self.rejects, rejects, &mut report.rejects),
        ] {
            let fail = fail(table);
            if batches.iter().all(|b| b.num_rows() == 0) {
                continue;
            }
            let staged = format!("staged_{}", table.name);
            tx.batch_execute(&format!(
                "CREATE TEMP TABLE {staged} (LIKE {} INCLUDING DEFAULTS) ON COMMIT DROP",
                table.name
            ))
            .await
            .map_err(|e| fail(error_text(&e)))?;
            let sink = tx
                .copy_in(&format!(
                    "COPY {staged} ({}) FROM STDIN (FORMAT binary)",
                    table.columns().join(", ")
                ))
                .await
                .map_err(|e| fail(error_text(&e)))?;
            let mut writer = pin!(BinaryCopyInWriter::new(sink, &table.types));
            for batch in batches {
                write_batch(writer.as_mut(), table, batch, run_id)
                    .await
                    .map_err(&fail)?;
            }
            writer.finish().await.map_err(|e| fail(error_text(&e)))?;
            *count = tx
                .execute(&table.upsert_statement(&staged), &[])
                .await
                .map_err(|e| fail(error_text(&e)))?;
        }
        tx.commit()
            .await
            .map_err(|e| fail(&self.users)(error_text(&e)))?;
        Ok(report)
    }
}

async fn write_batch(
    mut writer: std::pin::Pin<&mut BinaryCopyInWriter>,
    table: &Table,
    batch: &RecordBatch,
    run_id: &str,
) -> Result<(), String> {
    let columns = table
        .schema
        .fields()
        .iter()
        .map(|f| {
            batch
                .column_by_name(f.name())
                .ok_or_else(|| format!("the batch has no column `{}`", f.name()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    for row in 0..batch.num_rows() {
        let mut cells: Vec<Box<dyn ToSql + Sync + Send + '_>> =
            Vec::with_capacity(columns.len() + 1);
        for (column, ty) in columns.iter().zip(&table.types) {
            cells.push(cell(column.as_ref(), ty, row)?);
        }
        cells.push(Box::new(run_id));
        let refs: Vec<&(dyn ToSql + Sync)> = cells.iter().map(|c| c.as_ref() as _).collect();
        writer
            .as_mut()
            .write(&refs)
            .await
            .map_err(|e| error_text(&e))?;
    }
    Ok(())
}

/// One Arrow value as the Postgres value of type `ty`.
fn cell<'a>(
    column: &'a dyn Array,
    ty: &Type,
    row: usize,
) -> Result<Box<dyn ToSql + Sync + Send + 'a>, String> {
    let valid = column.is_valid(row);
    Ok(match column.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let text = valid.then(|| string_at(column, row));
            if *ty == Type::UUID {
                let id = text
                    .map(|t| Uuid::try_parse(t).map_err(|_| format!("{t:?} is not a UUID")))
                    .transpose()?;
                Box::new(id)
            } else {
                Box::new(text)
            }
        }
        DataType::Int32 => Box::new(valid.then(|| column.as_primitive::<Int32Type>().value(row))),
        DataType::Int64 => Box::new(valid.then(|| column.as_primitive::<Int64Type>().value(row))),
        // The core's schemas keep every timestamp in milliseconds.
        DataType::Timestamp(TimeUnit::Millisecond, _) => Box::new(
            valid
                .then(|| system_time(column.as_primitive::<TimestampMillisecondType>().value(row))),
        ),
        DataType::Binary => Box::new(valid.then(|| column.as_binary::<i32>().value(row))),
        DataType::LargeBinary => Box::new(valid.then(|| column.as_binary::<i64>().value(row))),
        other => return Err(format!("Arrow type {other} has no Postgres mapping")),
    })
}

fn string_at(column: &dyn Array, row: usize) -> &str {
    match column.data_type() {
        DataType::Utf8View => column.as_string_view().value(row),
        DataType::LargeUtf8 => column.as_string::<i64>().value(row),
        _ => column.as_string::<i32>().value(row),
    }
}

fn system_time(millis: i64) -> SystemTime {
    let magnitude = Duration::from_millis(millis.unsigned_abs());
    if millis >= 0 {
        UNIX_EPOCH + magnitude
    } else {
        UNIX_EPOCH - magnitude
    }
}

/// A connection for `application`, its driver task spawned; with the target it reached.
async fn connect(
    config: &PostgresConfig,
    application: &str,
) -> Result<(Client, String), PostgresError> {
    let mut pg: tokio_postgres::Config =
        config
            .url
            .parse()
            .map_err(|e: tokio_postgres::Error| PostgresError::BadUrl {
                url: config.url.clone(),
                message: e.to_string(),
            })?;
    if let Some(password) = &config.password {
        pg.password(password);
    }
    pg.connect_timeout(config.connect_timeout)
        .application_name(application)
        // `CREATE TABLE IF NOT EXISTS` would otherwise log a NOTICE on every run.
        .options("-c client_min_messages=warning");
    let target = describe(&pg);
    let (client, connection) = pg
        .connect(NoTls)
        .await
        .map_err(|e| PostgresError::Connect {
            target: target.clone(),
            message: error_text(&e),
        })?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %error_text(&e), "Postgres connection closed");
        }
    });
    Ok((client, target))
}

/// One load of the batch leg as its users table holds it now (a later run that loaded the
/// same ids owns them since).
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedRun {
    pub run: RunSummary,
    /// The run's ids, up to the limit asked for.
    pub ids: Vec<Uuid>,
}

/// What a run loaded, as the dashboard shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RunSummary {
    pub run_id: String,
    /// Rows the run owns in the batch table.
    pub rows: u64,
    /// The range of the rows' Kafka timestamps, ms since the epoch.
    pub first_event_ms: Option<i64>,
    pub last_event_ms: Option<i64>,
    pub loaded_at_ms: i64,
}

/// Reads what the batch leg loaded, without creating or changing anything.
pub struct BatchReader {
    client: Client,
    users_table: String,
    target: String,
}

impl BatchReader {
    pub async fn connect(config: &PostgresConfig) -> Result<Self, PostgresError> {
        let users = &config.users_table;
        if users.is_empty() || !users.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(PostgresError::BadTable(users.clone()));
        }
        let (client, target) = connect(config, "quiver serve").await?;
        Ok(Self {
            client,
            users_table: users.clone(),
            target,
        })
    }

    /// `user@host:port/db`, without the password.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The `runs` most recently loaded runs, newest first, each with up to `ids` of its ids.
    /// No table yet (no batch has run) is no run, not an error.
    pub async fn recent_runs(&self, runs: i64, ids: i64) -> Result<Vec<LoadedRun>, PostgresError> {
        let read_err = |e: tokio_postgres::Error| PostgresError::Read {
            table: self.users_table.clone(),
            message: error_text(&e),
        };
        let exists = self
            .client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&self.users_table])
            .await
            .map_err(read_err)?;
        if !exists.get::<_, bool>(0) {
            return Ok(Vec::new());
        }
        let table = &self.users_table;
        let summaries = self
            .client
            .query(
                &format!(
                    "SELECT run_id, count(*), min(event_time), max(event_time), max(loaded_at) \
                     FROM {table} GROUP BY run_id ORDER BY max(loaded_at) DESC LIMIT $1"
                ),
                &[&runs],
            )
            .await
            .map_err(read_err)?;
        let ms = |t: Option<SystemTime>| {
            t.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_millis() as i64)
        };
        let mut out = Vec::with_capacity(summaries.len());
        for row in summaries {
            let run_id: String = row.get(0);
            let ids = self
                .client
                .query(
                    &format!("SELECT id FROM {table} WHERE run_id = $1 LIMIT $2"),
                    &[&run_id, &ids],
                )
                .await
                .map_err(read_err)?
                .iter()
                .map(|r| r.get::<_, Uuid>(0))
                .collect();
            out.push(LoadedRun {
                run: RunSummary {
                    rows: row.get::<_, i64>(1) as u64,
                    first_event_ms: ms(row.get(2)),
                    last_event_ms: ms(row.get(3)),
                    loaded_at_ms: ms(row.get(4)).unwrap_or(0),
                    run_id,
                },
                ids,
            });
        }
        Ok(out)
    }
}

fn describe(pg: &tokio_postgres::Config) -> String {
    use tokio_postgres::config::Host;
    let host = match pg.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = pg.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{}@{host}:{port}/{}",
        pg.get_user().unwrap_or("?"),
        pg.get_dbname().unwrap_or("?")
    )
}

/// The server's own message (with its detail) rather than tokio-postgres' "db error".
fn error_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{}: {} ({detail})", db.severity(), db.message()),
            None => format!("{}: {}", db.severity(), db.message()),
        },
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                let _ = write!(text, ": {s}");
                source = s.source();
            }
            text
        }
    }
}
