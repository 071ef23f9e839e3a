//! The Postgres sink against the local stack's Postgres (`scripts/stack up postgres`;
//! address from QUIVER_POSTGRES_URL, password from QUIVER_POSTGRES_PASSWORD or the file in
//! QUIVER_POSTGRES_PASSWORD_FILE, as `scripts/stack env` exports them). Each test writes
//! its own tables and drops them afterwards.

use quiver_core::{Engine, PipelineSpec};
use quiver_postgres::{BatchReader, PostgresConfig, PostgresError, PostgresSink};
use quiver_testkit::{kafka_batch, users};
use std::time::{SystemTime, UNIX_EPOCH};

fn config(name: &str) -> PostgresConfig {
    let password = std::env::var("QUIVER_POSTGRES_PASSWORD").ok().or_else(|| {
        std::env::var("QUIVER_POSTGRES_PASSWORD_FILE")
            .ok()
            .map(|f| std::fs::read_to_string(f).unwrap().trim().to_string())
    });
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let suffix = format!("{name}_{}_{nanos}", std::process::id());
    PostgresConfig {
        url: std::env::var("QUIVER_POSTGRES_URL").unwrap_or(PostgresConfig::default().url),
        password,
        users_table: format!("test_users_{suffix}"),
        rejects_table: format!("test_rejects_{suffix}"),
        ..PostgresConfig::default()
    }
}

async fn count(sink: &PostgresSink, table: &str) -> i64 {
    sink.client()
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap()
        .get(0)
}

async fn drop_tables(sink: &PostgresSink, cfg: &PostgresConfig) {
    sink.client()
        .batch_execute(&format!(
            "DROP TABLE {}; DROP TABLE {}",
            cfg.users_table, cfg.rejects_table
        ))
        .await
        .unwrap();
}

#[tokio::test]
#[ignore = "needs the local stack: scripts/stack up postgres"]
async fn a_load_is_copied_transformed_and_idempotent_with_rejects_kept() {
    let cfg = config("load");
    let mut sink = PostgresSink::connect(&cfg).await.unwrap();
    // The tables exist now; connecting again must not fail on them.
    PostgresSink::connect(&cfg).await.unwrap();

    let records = users(7, 500);
    let mut values: Vec<Option<&[u8]>> = records.iter().map(|r| Some(r.as_bytes())).collect();
    values.push(Some(b"{not json"));
    values.push(None);
    // The same user again later in the batch (a replayed Kafka record): one row, the later copy.
    values.push(Some(records[0].as_bytes()));
    let input = kafka_batch(&values, 2, 1000);
    let engine = Engine::new(vec![PipelineSpec::users()], 0).await.unwrap();
    let processed = engine
        .pipeline("users")
        .unwrap()
        .process(&input)
        .await
        .unwrap();
    assert_eq!(processed.rejects.num_rows(), 2);

    let report = sink
        .load(
            "run-1",
            std::slice::from_ref(&processed.output),
            std::slice::from_ref(&processed.rejects),
        )
        .await
        .unwrap();
    assert_eq!((report.rows, report.rejects), (500, 2));
    assert_eq!(count(&sink, &cfg.users_table).await, 500);
    assert_eq!(count(&sink, &cfg.rejects_table).await, 2);

    // Loading the same run again replaces rows instead of adding them.
    sink.load(
        "run-1",
        std::slice::from_ref(&processed.output),
        std::slice::from_ref(&processed.rejects),
    )
    .await
    .unwrap();
    assert_eq!(count(&sink, &cfg.users_table).await, 500);
    assert_eq!(count(&sink, &cfg.rejects_table).await, 2);

    // Every column arrives with its type: the uuid key, text, timestamps, lineage.
    let row = sink
        .client()
        .query_one(
            &format!(
                "SELECT id::text, first_name, address, dob IS NOT NULL, kafka_partition, kafka_offset, run_id \
                 FROM {} WHERE kafka_offset > 1000 ORDER BY kafka_offset DESC LIMIT 1",
                cfg.users_table
            ),
            &[],
        )
        .await
        .unwrap();
    let user: serde_json::Value = serde_json::from_str(&records[0]).unwrap();
    assert_eq!(
        row.get::<_, String>(0),
        user["login"]["uuid"].as_str().unwrap()
    );
    assert_eq!(
        row.get::<_, String>(1),
        user["name"]["first"].as_str().unwrap()
    );
    let address: String = row.get(2);
    assert!(
        address.contains(user["location"]["city"].as_str().unwrap()),
        "{address}"
    );
    assert!(row.get::<_, bool>(3));
    // The later copy of the repeated user won.
    assert_eq!((row.get::<_, i32>(4), row.get::<_, i64>(5)), (2, 1502));
    assert_eq!(row.get::<_, String>(6), "run-1");

    let reasons: Vec<(i64, String)> = sink
        .client()
        .query(
            &format!(
                "SELECT kafka_offset, reason FROM {} ORDER BY kafka_offset",
                cfg.rejects_table
            ),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(reasons[0].0, 1500);
    assert_eq!(reasons[1].0, 1501);
    assert!(reasons.iter().all(|(_, r)| !r.is_empty()), "{reasons:?}");
    drop_tables(&sink, &cfg).await;
}

#[tokio::test]
#[ignore = "needs the local stack: scripts/stack up postgres"]
async fn a_wrong_password_is_a_connect_error_that_names_the_fix() {
    let cfg = PostgresConfig {
        password: Some("not-the-password".into()),
        ..config("password")
    };
    let err = PostgresSink::connect(&cfg).await.unwrap_err();
    assert!(matches!(err, PostgresError::Connect { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("password authentication failed"), "{text}");
    assert!(text.contains("QUIVER_POSTGRES_PASSWORD_FILE"), "{text}");
}

#[tokio::test]
async fn a_table_name_that_is_not_an_identifier_is_refused() {
    let cfg = PostgresConfig {
        users_table: "users; DROP TABLE x".into(),
        ..PostgresConfig::default()
    };
    let err = PostgresSink::connect(&cfg).await.unwrap_err();
    assert!(matches!(err, PostgresError::BadTable(_)), "{err}");
}

#[tokio::test]
#[ignore = "needs the local stack: scripts/stack up postgres"]
async fn the_reader_lists_recent_runs_newest_first_and_creates_nothing() {
    let cfg = config("runs");
    let reader = BatchReader::connect(&cfg).await.unwrap();
    assert!(
        reader.recent_runs(5, 10).await.unwrap().is_empty(),
        "no table yet: no run"
    );
    // Reading created no table (asked over another sink's connection, on its own tables).
    let other = config("other");
    let other_sink = PostgresSink::connect(&other).await.unwrap();
    let missing: bool = other_sink
        .client()
        .query_one("SELECT to_regclass($1) IS NULL", &[&cfg.users_table])
        .await
        .unwrap()
        .get(0);
    assert!(missing, "the reader created {}", cfg.users_table);
    drop_tables(&other_sink, &other).await;

    let mut sink = PostgresSink::connect(&cfg).await.unwrap();
    let engine = Engine::new(vec![PipelineSpec::users()], 0).await.unwrap();
    for (run, seed, n) in [("run-a", 1, 30), ("run-b", 2, 20)] {
        let records = users(seed, n);
        let values: Vec<Option<&[u8]>> = records.iter().map(|r| Some(r.as_bytes())).collect();
        let processed = engine
            .pipeline("users")
            .unwrap()
            .process(&kafka_batch(&values, 0, 0))
            .await
            .unwrap();
        sink.load(run, std::slice::from_ref(&processed.output), &[])
            .await
            .unwrap();
    }
    let runs = reader.recent_runs(5, 10).await.unwrap();
    let summary: Vec<(&str, u64, usize)> = runs
        .iter()
        .map(|r| (r.run.run_id.as_str(), r.run.rows, r.ids.len()))
        .collect();
    assert_eq!(summary, [("run-b", 20, 10), ("run-a", 30, 10)]);
    assert!(runs[0].run.first_event_ms.unwrap() <= runs[0].run.last_event_ms.unwrap());
    assert_eq!(reader.recent_runs(1, 100).await.unwrap()[0].ids.len(), 20);
    drop_tables(&sink, &cfg).await;
}
