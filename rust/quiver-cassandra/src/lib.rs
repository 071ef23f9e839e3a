//! The Cassandra sink: `spark_streams.created_users` and `spark_streams.rejected_users`
//! through the scylla driver.
//!
//! Every write is an upsert by primary key (a user's own `login.uuid`; a reject's Kafka
//! coordinates), so a batch that Spark replays after a failure changes nothing. Rows are
//! written one prepared INSERT each, never as multi-partition batches (an anti-pattern in
//! Cassandra): token-aware routing sends each to a replica, with bounded concurrency.
//!
//! Each INSERT carries its Kafka offset as its write timestamp (`USING TIMESTAMP`), so
//! of two versions of one user the later offset wins whatever order they are written in:
//! a replay of older records, or INSERTs that overtake each other, cannot put an older
//! version over a newer one (docs/ARCHITECTURE.md, "Which version wins"). `written_at` is
//! stamped by Cassandra (`currentTimestamp()`) when it executes the INSERT: the moment
//! the row is written, which the write timestamp no longer tells.

use arrow::array::{
    Array, AsArray, BinaryArray, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMillisecondArray,
};
use arrow::datatypes::{SchemaRef, TimestampMillisecondType};
use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt, stream};
use quiver_core::schema::{created_users_schema, rejects_schema};
use quiver_core::{Sink, SinkError, SinkReport};
use scylla::SerializeRow;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlTimestamp;
use std::time::Duration;
use uuid::Uuid;

const SINK: &str = "cassandra";
/// Keys per `IN` read: Cassandra coordinates each key separately, and a large IN list
/// holds one coordinator long; a hundred is the usual bound.
pub const IDS_PER_READ: usize = 100;

/// Connection and write settings.
#[derive(Debug, Clone)]
pub struct CassandraConfig {
    /// `host:port` contact points.
    pub nodes: Vec<String>,
    pub keyspace: String,
    /// Used only when the keyspace is created; 1 suits the one-node local stack.
    pub replication_factor: u32,
    /// Concurrent INSERTs per batch.
    pub concurrency: usize,
    /// Further attempts after a failed INSERT, with doubling back-off.
    pub retries: u32,
    pub backoff: Duration,
    pub request_timeout: Duration,
    /// Optional credentials; there is no default.
    pub credentials: Option<(String, String)>,
}

impl Default for CassandraConfig {
    fn default() -> Self {
        Self {
            nodes: vec!["127.0.0.1:9042".into()],
            keyspace: "spark_streams".into(),
            replication_factor: 1,
            concurrency: 256,
            retries: 3,
            backoff: Duration::from_millis(100),
            request_timeout: Duration::from_secs(5),
            credentials: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CassandraError {
    #[error(
        "cannot connect to Cassandra at {nodes}: {message} (is it running? `scripts/stack up cassandra`; set QUIVER_CASSANDRA_NODES)"
    )]
    Connect { nodes: String, message: String },
    #[error("creating the Cassandra schema (`{statement}`) failed: {message}")]
    Schema { statement: String, message: String },
    #[error("keyspace name `{0}` is invalid: use letters, digits and `_` only")]
    BadKeyspace(String),
}

#[derive(Debug)]
pub struct CassandraSink {
    session: Session,
    insert_user: PreparedStatement,
    insert_reject: PreparedStatement,
    select_ids: PreparedStatement,
    config: CassandraConfig,
}

fn schema_statements(ks: &str, rf: u32) -> Vec<String> {
    vec![
        format!(
            "CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = \
             {{'class': 'SimpleStrategy', 'replication_factor': {rf}}}"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.created_users (\
             id uuid PRIMARY KEY, first_name text, last_name text, gender text, address text, \
             post_code text, email text, username text, dob timestamp, registered_date timestamp, \
             phone text, picture text, kafka_partition int, kafka_offset bigint, \
             event_time timestamp, processed_at timestamp, written_at timestamp)"
        ),
        // Tables made before `written_at` existed get it added.
        format!("ALTER TABLE {ks}.created_users ADD IF NOT EXISTS written_at timestamp"),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.rejected_users (\
             kafka_topic text, kafka_partition int, kafka_offset bigint, kafka_timestamp timestamp, \
             raw_value blob, reason text, rejected_at timestamp, \
             PRIMARY KEY ((kafka_topic, kafka_partition, kafka_offset)))"
        ),
    ]
}

impl CassandraSink {
    /// Connects, creates the keyspace and tables if missing, and prepares the INSERTs.
    pub async fn connect(config: CassandraConfig) -> Result<Self, CassandraError> {
        let ks = &config.keyspace;
        if ks.is_empty() || !ks.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(CassandraError::BadKeyspace(ks.clone()));
        }
        let connect_err = |message: String| CassandraError::Connect {
            nodes: config.nodes.join(","),
            message,
        };
        let mut builder = SessionBuilder::new()
            .known_nodes(&config.nodes)
            .connection_timeout(config.request_timeout);
        if let Some((user, password)) = &config.credentials {
            builder = builder.user(user, password);
        }
        let session = builder
            .build()
            .await
            .map_err(|e| connect_err(e.to_string()))?;
        for statement in schema_statements(ks, config.replication_factor) {
            session
                .query_unpaged(statement.as_str(), ())
                .await
                .map_err(|e| CassandraError::Schema {
                    statement: statement.clone(),
                    message: e.to_string(),
                })?;
        }
        session
            .await_schema_agreement()
            .await
            .map_err(|e| CassandraError::Schema {
                statement: "(schema agreement)".into(),
                message: e.to_string(),
            })?;
        let prepare =
            |cql: String| {
                let session = &session;
                let timeout = config.request_timeout;
                async move {
                    let mut p = session.prepare(cql.as_str()).await.map_err(|e| {
                        CassandraError::Schema {
                            statement: cql.clone(),
                            message: e.to_string(),
                        }
                    })?;
                    // INSERTs are upserts, so the driver may safely retry them too.
                    p.set_is_idempotent(true);
                    p.set_request_timeout(Some(timeout));
                    Ok::<_, CassandraError>(p)
                }
            };
        let insert_user = prepare(format!(
            "INSERT INTO {ks}.created_users (id, first_name, last_name, gender, address, \
             post_code, email, username, dob, registered_date, phone, picture, kafka_partition, \
             kafka_offset, event_time, processed_at, written_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, currentTimestamp()) USING TIMESTAMP ?"
        ))
        .await?;
        let insert_reject = prepare(format!(
            "INSERT INTO {ks}.rejected_users (kafka_topic, kafka_partition, kafka_offset, \
             kafka_timestamp, raw_value, reason, rejected_at) VALUES (?, ?, ?, ?, ?, ?, ?) \
             USING TIMESTAMP ?"
        ))
        .await?;
        let select_ids =
            prepare(format!("SELECT id FROM {ks}.created_users WHERE id IN ?")).await?;
        Ok(Self {
            session,
            insert_user,
            insert_reject,
            select_ids,
            config,
        })
    }

    /// One round trip to a node (`system.local`), for a health view: an error says
    /// Cassandra cannot be reached now, whether or not batches are flowing.
    pub async fn ping(&self) -> Result<(), SinkError> {
        let mut statement =
            scylla::statement::Statement::new("SELECT release_version FROM system.local");
        statement.set_request_timeout(Some(self.config.request_timeout));
        self.session
            .query_unpaged(statement, ())
            .await
            .map(drop)
            .map_err(|e| SinkError::Unavailable {
                sink: SINK.into(),
                message: format!("{} (nodes {})", e, self.config.nodes.join(",")),
            })
    }

    /// How many of `ids` have a row in `created_users`: the dashboard's check of a batch
    /// run against the stream. Asks by primary key, in chunks of [`IDS_PER_READ`].
    pub async fn count_present(&self, ids: &[Uuid]) -> Result<u64, SinkError> {
        let unavailable = |e: String| SinkError::Unavailable {
            sink: SINK.into(),
            message: format!("reading created_users back: {e}"),
        };
        let mut present = 0;
        for chunk in ids.chunks(IDS_PER_READ) {
            let rows = self
                .session
                .execute_unpaged(&self.select_ids, (chunk,))
                .await
                .map_err(|e| unavailable(e.to_string()))?
                .into_rows_result()
                .map_err(|e| unavailable(e.to_string()))?
                .rows_num();
            present += rows as u64;
        }
        Ok(present)
    }

    /// The driver session, for callers that read back what was written.
    pub fn session(&self) -> &Session {
        &self.session
    }

    async fn execute_with_retry<V: scylla::serialize::row::SerializeRow + Sync>(
        &self,
        statement: &PreparedStatement,
        values: V,
    ) -> Result<(), SinkError> {
        let mut delay = self.config.backoff;
        let mut attempt = 0;
        loop {
            match self.session.execute_unpaged(statement, &values).await {
                Ok(_) => return Ok(()),
                Err(e) if attempt < self.config.retries => {
                    tracing::debug!(attempt, error = %e, "Cassandra write failed, retrying");
                    tokio::time::sleep(delay).await;
                    delay = delay.saturating_mul(2);
                    attempt += 1;
                }
                Err(e) => {
                    return Err(SinkError::Unavailable {
                        sink: SINK.into(),
                        message: format!(
                            "INSERT into {} failed after {} attempts: {e}",
                            self.config.keyspace,
                            attempt + 1
                        ),
                    });
                }
            }
        }
    }
}

fn refused(message: String) -> SinkError {
    SinkError::Rejected {
        sink: SINK.into(),
        message,
    }
}

fn expect_schema(batch: &RecordBatch, want: &SchemaRef, table: &str) -> Result<(), SinkError> {
    if batch.schema().fields() != want.fields() {
        return Err(refused(format!(
            "rows do not have the `{table}` schema; the pipeline must conform its output to it"
        )));
    }
    Ok(())
}

/// The bound values of one created_users INSERT, in the statement's order.
#[derive(SerializeRow)]
#[scylla(flavor = "enforce_order", skip_name_checks)]
struct UserRow<'a> {
    id: Uuid,
    first_name: Option<&'a str>,
    last_name: Option<&'a str>,
    gender: Option<&'a str>,
    address: Option<&'a str>,
    post_code: Option<&'a str>,
    email: Option<&'a str>,
    username: Option<&'a str>,
    dob: Option<CqlTimestamp>,
    registered_date: Option<CqlTimestamp>,
    phone: Option<&'a str>,
    picture: Option<&'a str>,
    kafka_partition: Option<i32>,
    kafka_offset: i64,
    event_time: Option<CqlTimestamp>,
    processed_at: Option<CqlTimestamp>,
    /// `USING TIMESTAMP`: the Kafka offset. Kafka gives every record of a partition a
    /// larger offset than the ones before it, and the producer keys each user to one
    /// partition, so the later version of a user always has the larger write timestamp. A
    /// replayed record gets the same timestamp as before; Cassandra then keeps the larger
    /// cell value, and the two writes differ only in their processing stamps. Rejects are
    /// written with their offset the same way.
    write_timestamp: i64,
}

fn ts(a: &TimestampMillisecondArray, i: usize) -> Option<CqlTimestamp> {
    a.is_valid(i).then(|| CqlTimestamp(a.value(i)))
}

fn text(a: &StringArray, i: usize) -> Option<&str> {
    a.is_valid(i).then(|| a.value(i))
}

#[async_trait]
impl Sink for CassandraSink {
    fn name(&self) -> &str {
        SINK
    }

    async fn write(
        &self,
        pipeline: &str,
        rows: &RecordBatch,
        rejects: &RecordBatch,
    ) -> Result<SinkReport, SinkError> {
        expect_schema(rows, &created_users_schema(), "created_users")?;
        expect_schema(rejects, &rejects_schema(), "rejected_users")?;
        let s = |i: usize| rows.column(i).as_string::<i32>();
        let t = |i: usize| rows.column(i).as_primitive::<TimestampMillisecondType>();
        let (id, first, last, gender, address, post_code, email, username) =
            (s(0), s(1), s(2), s(3), s(4), s(5), s(6), s(7));
        let (dob, registered, phone, picture) = (t(8), t(9), s(10), s(11));
        let partition: &Int32Array = rows.column(12).as_primitive();
        let offset: &Int64Array = rows.column(13).as_primitive();
        let (event_time, processed_at) = (t(14), t(15));

        // Check every key and write timestamp before the first write, so a bad row fails
        // the batch untouched.
        let ids = (0..rows.num_rows())
            .map(|i| {
                Uuid::try_parse(id.value(i)).map_err(|_| {
                    refused(format!(
                        "pipeline `{pipeline}` produced id {:?}, which is not a UUID",
                        id.value(i)
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if offset.null_count() > 0 {
            return Err(refused(format!(
                "pipeline `{pipeline}` produced rows without kafka_offset, which orders the versions \
                 of a user (it is each row's write timestamp): select raw_users.kafka_offset"
            )));
        }
        stream::iter(0..rows.num_rows())
            .map(|i| {
                let values = UserRow {
                    id: ids[i],
                    first_name: text(first, i),
                    last_name: text(last, i),
                    gender: text(gender, i),
                    address: text(address, i),
                    post_code: text(post_code, i),
                    email: text(email, i),
                    username: text(username, i),
                    dob: ts(dob, i),
                    registered_date: ts(registered, i),
                    phone: text(phone, i),
                    picture: text(picture, i),
                    kafka_partition: partition.is_valid(i).then(|| partition.value(i)),
                    kafka_offset: offset.value(i),
                    event_time: ts(event_time, i),
                    processed_at: ts(processed_at, i),
                    write_timestamp: offset.value(i),
                };
                self.execute_with_retry(&self.insert_user, values)
            })
            .buffer_unordered(self.config.concurrency)
            .try_collect::<()>()
            .await?;

        let topic = rejects.column(0).as_string::<i32>();
        let r_partition: &Int32Array = rejects.column(1).as_primitive();
        let r_offset: &Int64Array = rejects.column(2).as_primitive();
        let r_ts = rejects.column(3).as_primitive::<TimestampMillisecondType>();
        let raw: &BinaryArray = rejects.column(4).as_binary();
        let reason = rejects.column(5).as_string::<i32>();
        let at = rejects.column(6).as_primitive::<TimestampMillisecondType>();
        stream::iter(0..rejects.num_rows())
            .map(|i| {
                let values = (
                    // Part of the key, so never null; "" marks a client that sent no topic.
                    text(topic, i).unwrap_or(""),
                    r_partition.value(i),
                    r_offset.value(i),
                    ts(r_ts, i),
                    raw.is_valid(i).then(|| raw.value(i)),
                    reason.value(i),
                    ts(at, i),
                    // USING TIMESTAMP, as for rows (UserRow::write_timestamp).
                    r_offset.value(i),
                );
                self.execute_with_retry(&self.insert_reject, values)
            })
            .buffer_unordered(self.config.concurrency)
            .try_collect::<()>()
            .await?;
        Ok(SinkReport {
            rows_written: rows.num_rows() as u64,
            rejects_written: rejects.num_rows() as u64,
        })
    }
}
