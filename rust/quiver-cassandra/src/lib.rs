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
//!
//! A write that fails because Cassandra cannot be reached or cannot meet the consistency
//! level now (a node restarting, a lost connection, too few replicas up) is retried with
//! back-off for up to [`CassandraConfig::retry_window`], so a restart of up to a minute
//! costs the stream a pause, not a failed batch; a write Cassandra refuses outright (an
//! invalid statement, no permission) fails at once.

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
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::errors::{DbError, ExecutionError, RequestAttemptError};
use scylla::policies::load_balancing::DefaultPolicy;
use scylla::statement::Consistency;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlTimestamp;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use uuid::Uuid;

const SINK: &str = "cassandra";
/// Keys per `IN` read: Cassandra coordinates each key separately, and a large IN list
/// holds one coordinator long; a hundred is the usual bound.
pub const IDS_PER_READ: usize = 100;
/// The first pause before a failed write is tried again; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest pause between two attempts: writes go out within a second of the driver
/// having a connection again.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// The write consistency levels, by their CQL names. SERIAL and LOCAL_SERIAL apply to
/// lightweight transactions only, which the sink does not use.
pub const WRITE_CONSISTENCY_LEVELS: [Consistency; 9] = [
    Consistency::Any,
    Consistency::One,
    Consistency::Two,
    Consistency::Three,
    Consistency::Quorum,
    Consistency::All,
    Consistency::LocalQuorum,
    Consistency::EachQuorum,
    Consistency::LocalOne,
];

/// A write consistency level from its CQL name (`local_quorum` or `LOCAL_QUORUM`).
pub fn consistency_from_name(name: &str) -> Result<Consistency, CassandraError> {
    WRITE_CONSISTENCY_LEVELS
        .into_iter()
        .find(|c| consistency_name(*c).eq_ignore_ascii_case(name.trim()))
        .ok_or_else(|| CassandraError::BadConsistency(name.to_string()))
}

/// The CQL name of a consistency level (`LOCAL_QUORUM`).
pub fn consistency_name(consistency: Consistency) -> &'static str {
    match consistency {
        Consistency::Any => "ANY",
        Consistency::One => "ONE",
        Consistency::Two => "TWO",
        Consistency::Three => "THREE",
        Consistency::Quorum => "QUORUM",
        Consistency::All => "ALL",
        Consistency::LocalQuorum => "LOCAL_QUORUM",
        Consistency::EachQuorum => "EACH_QUORUM",
        Consistency::LocalOne => "LOCAL_ONE",
        Consistency::Serial => "SERIAL",
        Consistency::LocalSerial => "LOCAL_SERIAL",
    }
}

/// Connection and write settings.
#[derive(Debug, Clone)]
pub struct CassandraConfig {
    /// `host:port` contact points.
    pub nodes: Vec<String>,
    pub keyspace: String,
    /// Replicas of each row, used only when the keyspace is created; 1 suits the one-node
    /// local stack, 3 a cluster.
    pub replication_factor: u32,
    /// With a datacenter, the keyspace is created with `NetworkTopologyStrategy` and
    /// `replication_factor` replicas there, and requests go to that datacenter's nodes
    /// first; without, `SimpleStrategy`. It must be one the cluster has.
    pub datacenter: Option<String>,
    /// Of every write. LOCAL_QUORUM is a majority of the replicas (1 of 1, 2 of 3).
    pub consistency: Consistency,
    /// Concurrent INSERTs per batch.
    pub concurrency: usize,
    /// How long a write that Cassandra cannot take now is tried again, with back-off,
    /// before its batch fails as unavailable; zero fails at the first error.
    pub retry_window: Duration,
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
            datacenter: None,
            consistency: Consistency::LocalQuorum,
            concurrency: 256,
            // A node restart takes 15-30 s on a small machine; a minute covers it twice.
            retry_window: Duration::from_secs(60),
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
    #[error(
        "Cassandra node `{0}` is not host:port (e.g. 127.0.0.1:9042); separate nodes with commas"
    )]
    BadNode(String),
    #[error("replication factor 0 is invalid: every row needs at least one replica")]
    BadReplicationFactor,
    #[error("consistency level `{0}` is unknown: use one of {levels}", levels = consistency_names())]
    BadConsistency(String),
    #[error(
        "datacenter `{datacenter}` is not in the cluster at {nodes}; its datacenters are: {known}"
    )]
    UnknownDatacenter {
        datacenter: String,
        nodes: String,
        known: String,
    },
}

fn consistency_names() -> String {
    WRITE_CONSISTENCY_LEVELS.map(consistency_name).join(", ")
}

#[derive(Debug)]
pub struct CassandraSink {
    session: Session,
    insert_user: PreparedStatement,
    insert_reject: PreparedStatement,
    select_ids: PreparedStatement,
    config: CassandraConfig,
    outage: Outage,
}

/// Whether writes are waiting for Cassandra now, so that an outage is logged once when it
/// begins and once when it ends, not once per INSERT.
#[derive(Debug, Default)]
struct Outage {
    /// `since.is_some()`, readable without the lock that every successful write would
    /// otherwise take.
    waiting: AtomicBool,
    since: Mutex<Option<Instant>>,
}

impl Outage {
    fn begin(&self, error: &ExecutionError, window: Duration) {
        let mut since = self.since.lock().unwrap_or_else(|e| e.into_inner());
        if since.is_none() {
            *since = Some(Instant::now());
            self.waiting.store(true, Ordering::Release);
            tracing::warn!(
                error = %error,
                "Cassandra cannot take writes now; each write is tried again for up to {}",
                humanize(window)
            );
        }
    }

    fn end(&self) {
        if self.waiting.load(Ordering::Acquire) {
            let mut since = self.since.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(began) = since.take() {
                self.waiting.store(false, Ordering::Release);
                tracing::warn!(
                    "Cassandra takes writes again, after {}",
                    humanize(began.elapsed())
                );
            }
        }
    }
}

fn humanize(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// Whether trying again later can help: Cassandra, a node or the connection was not
/// there, or too few replicas answered in time. A statement Cassandra refuses (invalid,
/// unauthorized) or values the driver cannot send fail the same way every time.
fn waiting_may_help(error: &ExecutionError) -> bool {
    match error {
        ExecutionError::BadQuery(_) => false,
        ExecutionError::LastAttemptError(attempt) => match attempt {
            RequestAttemptError::DbError(db, _) => !matches!(
                db,
                DbError::SyntaxError
                    | DbError::Invalid
                    | DbError::AlreadyExists { .. }
                    | DbError::FunctionFailure { .. }
                    | DbError::AuthenticationError
                    | DbError::Unauthorized
                    | DbError::ConfigError
                    | DbError::ProtocolError
            ),
            RequestAttemptError::SerializationError(_)
            | RequestAttemptError::CqlRequestSerialization(_) => false,
            _ => true,
        },
        _ => true,
    }
}

fn is_host_port(node: &str) -> bool {
    node.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty() && !host.contains(char::is_whitespace) && port.parse::<u16>().is_ok()
    })
}

fn replication(config: &CassandraConfig) -> String {
    let rf = config.replication_factor;
    match &config.datacenter {
        // The name is one the cluster reported (check_datacenter); quoted all the same.
        Some(dc) => format!(
            "{{'class': 'NetworkTopologyStrategy', '{}': {rf}}}",
            dc.replace('\'', "''")
        ),
        None => format!("{{'class': 'SimpleStrategy', 'replication_factor': {rf}}}"),
    }
}

fn schema_statements(ks: &str, replication: &str) -> Vec<String> {
    vec![
        format!("CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = {replication}"),
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
        if let Some(bad) = config.nodes.iter().find(|n| !is_host_port(n)) {
            return Err(CassandraError::BadNode(bad.clone()));
        }
        if config.replication_factor == 0 {
            return Err(CassandraError::BadReplicationFactor);
        }
        let connect_err = |message: String| CassandraError::Connect {
            nodes: config.nodes.join(","),
            message,
        };
        let mut policy = DefaultPolicy::builder().token_aware(true);
        if let Some(dc) = &config.datacenter {
            policy = policy.prefer_datacenter(dc.clone());
        }
        let profile = ExecutionProfile::builder()
            .consistency(config.consistency)
            .request_timeout(Some(config.request_timeout))
            .load_balancing_policy(policy.build())
            .build();
        let mut builder = SessionBuilder::new()
            .known_nodes(&config.nodes)
            .connection_timeout(config.request_timeout)
            .default_execution_profile_handle(profile.into_handle());
        if let Some((user, password)) = &config.credentials {
            builder = builder.user(user, password);
        }
        let session = builder
            .build()
            .await
            .map_err(|e| connect_err(e.to_string()))?;
        check_datacenter(&session, &config)?;
        for statement in schema_statements(ks, &replication(&config)) {
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
                async move {
                    let mut p = session.prepare(cql.as_str()).await.map_err(|e| {
                        CassandraError::Schema {
                            statement: cql.clone(),
                            message: e.to_string(),
                        }
                    })?;
                    // INSERTs are upserts, so the driver may safely retry them too.
                    p.set_is_idempotent(true);
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
            outage: Outage::default(),
        })
    }

    /// [`connect`](Self::connect), trying again with back-off for up to the retry window
    /// while Cassandra cannot be reached: for a process that joins a running stream (a new
    /// Spark worker) during an outage, which should wait like the writes do. Start-up
    /// checks use `connect`, which reports an unreachable cluster at once.
    pub async fn connect_waiting(config: CassandraConfig) -> Result<Self, CassandraError> {
        let started = Instant::now();
        let mut delay = FIRST_BACKOFF;
        loop {
            match Self::connect(config.clone()).await {
                Err(e @ CassandraError::Connect { .. })
                    if started.elapsed() + delay <= config.retry_window =>
                {
                    tracing::debug!(error = %e, "connecting to Cassandra, trying again");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(MAX_BACKOFF);
                }
                done => return done,
            }
        }
    }

    /// One round trip to a node (`system.local`), for a health view: an error says
    /// Cassandra cannot be reached now, whether or not batches are flowing.
    pub async fn ping(&self) -> Result<(), SinkError> {
        self.session
            .query_unpaged("SELECT release_version FROM system.local", ())
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

    /// Runs one INSERT, trying again with back-off while waiting may help and the retry
    /// window, counted from its first failure, has room for the next pause.
    async fn execute_with_retry<V: scylla::serialize::row::SerializeRow + Sync>(
        &self,
        statement: &PreparedStatement,
        table: &str,
        values: V,
    ) -> Result<(), SinkError> {
        let window = self.config.retry_window;
        let mut delay = FIRST_BACKOFF;
        let mut first_failure = None;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let error = match self.session.execute_unpaged(statement, &values).await {
                Ok(_) => {
                    self.outage.end();
                    return Ok(());
                }
                Err(e) => e,
            };
            let table = format!("{}.{table}", self.config.keyspace);
            if !waiting_may_help(&error) {
                return Err(refused(format!(
                    "Cassandra refused the INSERT into {table}: {error}"
                )));
            }
            let failing_for = first_failure.get_or_insert_with(Instant::now).elapsed();
            if failing_for + delay > window {
                return Err(SinkError::Unavailable {
                    sink: SINK.into(),
                    message: format!(
                        "an INSERT into {table} failed {attempts} times over {} (retry window {}): {error}",
                        humanize(failing_for),
                        humanize(window)
                    ),
                });
            }
            self.outage.begin(&error, window);
            tracing::debug!(attempts, error = %error, "Cassandra write failed, retrying");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(MAX_BACKOFF);
        }
    }
}

/// Fails with the cluster's datacenters when the configured one is not among them, and
/// warns when it has fewer nodes than the replication factor asks for (writes at a quorum
/// would then never succeed).
fn check_datacenter(session: &Session, config: &CassandraConfig) -> Result<(), CassandraError> {
    let state = session.get_cluster_state();
    let mut nodes_per_dc: BTreeMap<String, u32> = BTreeMap::new();
    for node in state.get_nodes_info() {
        if let Some(dc) = &node.datacenter {
            *nodes_per_dc.entry(dc.clone()).or_default() += 1;
        }
    }
    let nodes = match &config.datacenter {
        Some(dc) => match nodes_per_dc.get(dc) {
            Some(n) => *n,
            None => {
                return Err(CassandraError::UnknownDatacenter {
                    datacenter: dc.clone(),
                    nodes: config.nodes.join(","),
                    known: nodes_per_dc.keys().cloned().collect::<Vec<_>>().join(", "),
                });
            }
        },
        None => nodes_per_dc.values().sum(),
    };
    if config.replication_factor > nodes {
        tracing::warn!(
            "replication factor {} but the cluster has {nodes} node(s){}: a new keyspace \
             cannot place every replica, and writes at {} wait for nodes that are not there",
            config.replication_factor,
            config
                .datacenter
                .as_ref()
                .map(|dc| format!(" in {dc}"))
                .unwrap_or_default(),
            consistency_name(config.consistency)
        );
    }
    Ok(())
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
                self.execute_with_retry(&self.insert_user, "created_users", values)
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
                self.execute_with_retry(&self.insert_reject, "rejected_users", values)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consistency_levels_go_by_their_cql_names() {
        for level in WRITE_CONSISTENCY_LEVELS {
            let name = consistency_name(level);
            assert_eq!(consistency_from_name(name).unwrap(), level);
            assert_eq!(consistency_from_name(&name.to_lowercase()).unwrap(), level);
        }
        let err = consistency_from_name("SERIAL").unwrap_err().to_string();
        assert!(
            err.contains("`SERIAL`") && err.contains("LOCAL_QUORUM"),
            "{err}"
        );
    }

    #[test]
    fn nodes_are_host_and_port() {
        for good in ["127.0.0.1:9042", "cassandra-1:9042", "[::1]:9042"] {
            assert!(is_host_port(good), "{good}");
        }
        for bad in ["127.0.0.1", ":9042", "db:port", "db:99999", "a b:9042", ""] {
            assert!(!is_host_port(bad), "{bad}");
        }
    }

    #[test]
    fn only_errors_that_may_pass_are_waited_out() {
        let db = |e: DbError| {
            ExecutionError::LastAttemptError(RequestAttemptError::DbError(e, "reason".into()))
        };
        let unavailable = DbError::Unavailable {
            consistency: Consistency::Quorum,
            required: 2,
            alive: 1,
        };
        assert!(waiting_may_help(&db(unavailable)));
        assert!(waiting_may_help(&db(DbError::Overloaded)));
        assert!(waiting_may_help(&db(DbError::IsBootstrapping)));
        assert!(waiting_may_help(&ExecutionError::RequestTimeout(
            Duration::from_secs(5)
        )));
        assert!(!waiting_may_help(&db(DbError::Invalid)));
        assert!(!waiting_may_help(&db(DbError::Unauthorized)));
        assert!(!waiting_may_help(&db(DbError::SyntaxError)));
    }

    #[test]
    fn replication_follows_the_datacenter() {
        let mut config = CassandraConfig::default();
        assert_eq!(
            replication(&config),
            "{'class': 'SimpleStrategy', 'replication_factor': 1}"
        );
        config.datacenter = Some("dc1".into());
        config.replication_factor = 3;
        assert_eq!(
            replication(&config),
            "{'class': 'NetworkTopologyStrategy', 'dc1': 3}"
        );
    }
}
