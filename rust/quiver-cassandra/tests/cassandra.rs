//! The Cassandra sink against a real node (`scripts/stack up cassandra`; address from
//! QUIVER_CASSANDRA_NODES, default 127.0.0.1:9042). Each run writes to its own keyspace
//! and drops it afterwards, so the stack's `spark_streams` data is left alone.

use quiver_cassandra::{CassandraConfig, CassandraError, CassandraSink};
use quiver_core::{Engine, PipelineSpec};
use quiver_core::{Sink, SinkError};
use quiver_testkit::{kafka_batch, users};
use scylla::value::CqlTimestamp;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use uuid::Uuid;

fn nodes() -> Vec<String> {
    std::env::var("QUIVER_CASSANDRA_NODES")
        .unwrap_or_else(|_| "127.0.0.1:9042".into())
        .split(',')
        .map(|s| s.trim().to_string())
        .collect()
}

fn config(keyspace: &str) -> CassandraConfig {
    CassandraConfig {
        nodes: nodes(),
        keyspace: keyspace.into(),
        ..CassandraConfig::default()
    }
}

fn unique_keyspace() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "quiver_test_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000
    )
}

async fn count(sink: &CassandraSink, ks: &str, table: &str) -> i64 {
    sink.session()
        .query_unpaged(format!("SELECT count(*) FROM {ks}.{table}"), ())
        .await
        .unwrap()
        .into_rows_result()
        .unwrap()
        .single_row::<(i64,)>()
        .unwrap()
        .0
}

#[tokio::test]
#[ignore = "needs the local stack: scripts/stack up"]
async fn writes_are_idempotent_upserts_and_rejects_are_kept() {
    let ks = unique_keyspace();
    let sink = CassandraSink::connect(config(&ks)).await.unwrap();
    // Creating the schema a second time is a no-op.
    let sink_again = CassandraSink::connect(config(&ks)).await.unwrap();

    let engine = Engine::new(vec![PipelineSpec::users()], 0).await.unwrap();
    let pipeline = engine.pipeline("users").unwrap();
    let records = users(11, 200);
    let mut values: Vec<Option<&[u8]>> = records.iter().map(|r| Some(r.as_bytes())).collect();
    values.push(Some(b"{not json"));
    let batch = kafka_batch(&values, 1, 7000);
    let processed = pipeline.process(&batch).await.unwrap();

    let report = sink
        .write("users", &processed.output, &processed.rejects)
        .await
        .unwrap();
    assert_eq!((report.rows_written, report.rejects_written), (200, 1));
    assert_eq!(count(&sink, &ks, "created_users").await, 200);
    assert_eq!(count(&sink, &ks, "rejected_users").await, 1);
    // Looked up by id, across several IN reads, with ids that are not there.
    let mut ids: Vec<Uuid> = records
        .iter()
        .map(|r| Uuid::parse_str(&expected::parse(r).uuid).unwrap())
        .collect();
    ids.extend((0..7).map(|_| Uuid::new_v4()));
    assert_eq!(sink.count_present(&ids).await.unwrap(), 200);

    // A replayed batch (Spark retrying a task) rewrites the same keys.
    let replay = pipeline.process(&batch).await.unwrap();
    sink_again
        .write("users", &replay.output, &replay.rejects)
        .await
        .unwrap();
    assert_eq!(count(&sink, &ks, "created_users").await, 200);
    assert_eq!(count(&sink, &ks, "rejected_users").await, 1);

    // One row read back, field by field, against the decoded output.
    let v = expected::parse(&records[0]);
    let id = Uuid::parse_str(&v.uuid).unwrap();
    let (first, address, dob, offset): (
        Option<String>,
        Option<String>,
        Option<CqlTimestamp>,
        Option<i64>,
    ) = sink
        .session()
        .query_unpaged(
            format!(
                "SELECT first_name, address, dob, kafka_offset FROM {ks}.created_users WHERE id = ?"
            ),
            (id,),
        )
        .await
        .unwrap()
        .into_rows_result()
        .unwrap()
        .single_row()
        .unwrap();
    assert_eq!(first.as_deref(), Some(v.first.as_str()));
    assert!(address.unwrap().ends_with(&v.country));
    assert_eq!(dob.unwrap().0, v.dob_ms);
    assert_eq!(offset, Some(7000));

    let (reason, raw): (String, Vec<u8>) = sink
        .session()
        .query_unpaged(
            format!("SELECT reason, raw_value FROM {ks}.rejected_users WHERE kafka_topic = 'users_created' AND kafka_partition = 1 AND kafka_offset = 7200"),
            (),
        )
        .await
        .unwrap()
        .into_rows_result()
        .unwrap()
        .single_row()
        .unwrap();
    assert!(reason.contains("invalid JSON"), "{reason}");
    assert_eq!(raw, b"{not json");

    drop_keyspace(&sink, &ks).await;
}

/// Versions of one user at rising offsets, in one batch whose INSERTs run concurrently,
/// then the older half again (a replay from an older checkpoint): the row is always the
/// last version, and Cassandra stamps when each row was written.
#[tokio::test]
#[ignore = "needs the local stack: scripts/stack up"]
async fn the_latest_offset_of_a_user_wins_in_any_write_order() {
    let ks = unique_keyspace();
    let sink = CassandraSink::connect(config(&ks)).await.unwrap();
    let engine = Engine::new(vec![PipelineSpec::users()], 0).await.unwrap();
    let pipeline = engine.pipeline("users").unwrap();
    let record = &users(12, 1)[0];
    let v = expected::parse(record);
    let original = format!(r#""first":"{}""#, v.first);
    let versions: Vec<String> = (0..64)
        .map(|i| record.replacen(&original, &format!(r#""first":"version {i}""#), 1))
        .collect();
    assert!(
        versions.iter().all(|r| r != record),
        "the first name was not found"
    );
    let id = Uuid::parse_str(&v.uuid).unwrap();
    let read = || async {
        sink.session()
            .query_unpaged(
                format!("SELECT first_name, kafka_offset, written_at FROM {ks}.created_users WHERE id = ?"),
                (id,),
            )
            .await
            .unwrap()
            .into_rows_result()
            .unwrap()
            .single_row::<(String, i64, CqlTimestamp)>()
            .unwrap()
    };

    let before_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let values: Vec<Option<&[u8]>> = versions.iter().map(|r| Some(r.as_bytes())).collect();
    let all = pipeline
        .process(&kafka_batch(&values, 0, 1000))
        .await
        .unwrap();
    sink.write("users", &all.output, &all.rejects)
        .await
        .unwrap();
    let (first, offset, written_at) = read().await;
    assert_eq!((first.as_str(), offset), ("version 63", 1063));
    let after_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert!(
        (before_ms..=after_ms).contains(&written_at.0),
        "written_at {} is not between {before_ms} and {after_ms}",
        written_at.0
    );

    // The older half replayed, newest of them last: each INSERT is newer in time but older
    // in Kafka, and loses.
    let older = pipeline
        .process(&kafka_batch(&values[..32], 0, 1000))
        .await
        .unwrap();
    sink.write("users", &older.output, &older.rejects)
        .await
        .unwrap();
    let (first, offset, _) = read().await;
    assert_eq!((first.as_str(), offset), ("version 63", 1063));

    drop_keyspace(&sink, &ks).await;
}

/// Writes `n` new users (no rejects) to `sink`.
async fn write_users(sink: &CassandraSink, n: usize) -> Result<quiver_core::SinkReport, SinkError> {
    let engine = Engine::new(vec![PipelineSpec::users()], 0).await.unwrap();
    let records = users(13, n);
    let values: Vec<Option<&[u8]>> = records.iter().map(|r| Some(r.as_bytes())).collect();
    let batch = engine
        .pipeline("users")
        .unwrap()
        .process(&kafka_batch(&values, 0, 0))
        .await
        .unwrap();
    sink.write("users", &batch.output, &batch.rejects).await
}

async fn drop_keyspace(sink: &CassandraSink, ks: &str) {
    sink.session()
        .query_unpaged(format!("DROP KEYSPACE {ks}"), ())
        .await
        .unwrap();
}

/// A consistency level that one node with one replica cannot meet: the write waits out
/// its retry window and fails as unavailable (a retry may help once nodes are back), with
/// Cassandra's own reason, never as a refused batch.
#[tokio::test]
#[ignore = "needs the local stack: scripts/stack up"]
async fn a_consistency_the_cluster_cannot_meet_is_unavailable_with_cassandras_reason() {
    let ks = unique_keyspace();
    let sink = CassandraSink::connect(CassandraConfig {
        consistency: quiver_cassandra::consistency_from_name("three").unwrap(),
        retry_window: Duration::from_secs(1),
        ..config(&ks)
    })
    .await
    .unwrap();
    let err = write_users(&sink, 3).await.unwrap_err();
    assert!(matches!(err, SinkError::Unavailable { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("Cannot achieve consistency level THREE"),
        "{message}"
    );
    assert!(message.contains("retry window 1.0 s"), "{message}");
    drop_keyspace(&sink, &ks).await;
}

/// A write Cassandra refuses for good (here: its table was dropped) fails at once as a
/// refused batch; it does not wait out the (here long) retry window first.
#[tokio::test]
#[ignore = "needs the local stack: scripts/stack up"]
async fn a_write_cassandra_refuses_is_not_retried() {
    let ks = unique_keyspace();
    let sink = CassandraSink::connect(CassandraConfig {
        retry_window: Duration::from_secs(3600),
        ..config(&ks)
    })
    .await
    .unwrap();
    sink.session()
        .query_unpaged(format!("DROP TABLE {ks}.created_users"), ())
        .await
        .unwrap();
    let err = write_users(&sink, 3).await.unwrap_err();
    assert!(matches!(err, SinkError::Rejected { .. }), "{err}");
    assert!(err.to_string().contains("created_users"), "{err}");
    drop_keyspace(&sink, &ks).await;
}

/// With a datacenter the keyspace is made with NetworkTopologyStrategy there; a
/// datacenter the cluster lacks is an error at start that names the ones it has.
#[tokio::test]
#[ignore = "needs the local stack: scripts/stack up"]
async fn a_datacenter_makes_a_network_topology_keyspace_and_a_wrong_one_names_the_real_ones() {
    let ks = unique_keyspace();
    let err = CassandraSink::connect(CassandraConfig {
        datacenter: Some("nowhere".into()),
        ..config(&ks)
    })
    .await
    .unwrap_err();
    let CassandraError::UnknownDatacenter { known, .. } = &err else {
        panic!("expected an unknown datacenter, got {err}");
    };
    assert!(err.to_string().contains("`nowhere`"), "{err}");

    // The node's own datacenter, as it reports it.
    let probe = CassandraSink::connect(config(&ks)).await.unwrap();
    let (dc,): (String,) = probe
        .session()
        .query_unpaged("SELECT data_center FROM system.local", ())
        .await
        .unwrap()
        .into_rows_result()
        .unwrap()
        .single_row()
        .unwrap();
    assert_eq!(known, &dc);
    drop_keyspace(&probe, &ks).await;

    let sink = CassandraSink::connect(CassandraConfig {
        datacenter: Some(dc.clone()),
        ..config(&ks)
    })
    .await
    .unwrap();
    let (replication,): (std::collections::HashMap<String, String>,) = sink
        .session()
        .query_unpaged(
            "SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = ?",
            (&ks,),
        )
        .await
        .unwrap()
        .into_rows_result()
        .unwrap()
        .single_row()
        .unwrap();
    assert!(
        replication["class"].ends_with("NetworkTopologyStrategy"),
        "{replication:?}"
    );
    assert_eq!(replication.get(&dc).map(String::as_str), Some("1"));
    write_users(&sink, 3).await.unwrap();
    assert_eq!(count(&sink, &ks, "created_users").await, 3);
    drop_keyspace(&sink, &ks).await;
}

#[tokio::test]
async fn a_malformed_node_is_named_before_connecting() {
    let err = CassandraSink::connect(CassandraConfig {
        nodes: vec!["127.0.0.1:9042".into(), "db.example".into()],
        ..CassandraConfig::default()
    })
    .await
    .unwrap_err();
    assert!(matches!(err, CassandraError::BadNode(_)), "{err}");
    assert!(err.to_string().contains("`db.example`"), "{err}");
}

#[tokio::test]
async fn an_unreachable_cluster_is_a_clear_error() {
    let config = CassandraConfig {
        // Port 1 on loopback: nothing listens there, so the connection is refused.
        nodes: vec!["127.0.0.1:1".into()],
        request_timeout: Duration::from_secs(2),
        ..CassandraConfig::default()
    };
    let err = CassandraSink::connect(config).await.unwrap_err();
    assert!(matches!(err, CassandraError::Connect { .. }), "{err}");
    assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
}

#[tokio::test]
async fn a_bad_keyspace_name_is_refused_before_connecting() {
    let err = CassandraSink::connect(config("spark-streams; DROP"))
        .await
        .unwrap_err();
    assert!(matches!(err, CassandraError::BadKeyspace(_)), "{err}");
}

/// The few fields the read-back test checks, from a generic JSON parse (not the decoder).
mod expected {
    use sonic_rs::{JsonValueTrait, Value};

    pub struct User {
        pub uuid: String,
        pub first: String,
        pub country: String,
        pub dob_ms: i64,
    }

    pub fn parse(s: &str) -> User {
        let v: Value = sonic_rs::from_str(s).unwrap();
        let text = |a: &str, b: &str| v[a][b].as_str().unwrap().to_string();
        User {
            uuid: text("login", "uuid"),
            first: text("name", "first"),
            country: text("location", "country"),
            dob_ms: arrow::compute::kernels::cast_utils::string_to_timestamp_nanos(&text(
                "dob", "date",
            ))
            .unwrap()
                / 1_000_000,
        }
    }
}
