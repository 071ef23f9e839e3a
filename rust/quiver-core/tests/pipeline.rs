//! The `users` SQL mapping against rows computed independently from the JSON, plan
//! reuse across batches, and start-up validation of pipeline SQL.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Int32Type, Int64Type, TimestampMillisecondType};
use quiver_core::schema::created_users_schema;
use quiver_core::{CoreError, Engine, PipelineSpec, SchemaProblem};
use quiver_testkit::{kafka_batch, users};

fn ms(iso: &str) -> i64 {
    arrow::compute::kernels::cast_utils::string_to_timestamp_nanos(iso).unwrap() / 1_000_000
}

/// The expected `created_users` row for one record, worked out from a generic JSON
/// parse (not the decoder) and the mapping in DESIGN.md.
fn expected(record: &str) -> Vec<Option<String>> {
    let v: sonic_rs::Value = sonic_rs::from_str(record).unwrap();
    use sonic_rs::{JsonContainerTrait, JsonValueTrait};
    let get = |path: &[&str]| {
        let mut cur = &v;
        for p in path {
            cur = cur.get(p).unwrap();
        }
        cur.clone()
    };
    let text = |path: &[&str]| get(path).as_str().map(str::to_string);
    let postcode = get(&["location", "postcode"]);
    let postcode = postcode
        .as_str()
        .map(str::to_string)
        .or_else(|| postcode.as_i64().map(|n| n.to_string()));
    let street = get(&["location", "street"]);
    let address = format!(
        "{} {}, {}, {}, {}",
        street.get("number").unwrap().as_i64().unwrap(),
        street.get("name").unwrap().as_str().unwrap(),
        text(&["location", "city"]).unwrap(),
        text(&["location", "state"]).unwrap(),
        text(&["location", "country"]).unwrap(),
    );
    assert!(v.as_object().is_some());
    vec![
        text(&["login", "uuid"]),
        text(&["name", "first"]),
        text(&["name", "last"]),
        text(&["gender"]),
        Some(address),
        postcode,
        text(&["email"]),
        text(&["login", "username"]),
        Some(ms(&text(&["dob", "date"]).unwrap()).to_string()),
        Some(ms(&text(&["registered", "date"]).unwrap()).to_string()),
        text(&["phone"]),
        text(&["picture", "medium"]),
    ]
}

fn actual(b: &RecordBatch, i: usize) -> Vec<Option<String>> {
    let s = |n: &str| {
        let a = b.column_by_name(n).unwrap().as_string::<i32>();
        a.is_valid(i).then(|| a.value(i).to_string())
    };
    let t = |n: &str| {
        let a = b
            .column_by_name(n)
            .unwrap()
            .as_primitive::<TimestampMillisecondType>();
        a.is_valid(i).then(|| a.value(i).to_string())
    };
    vec![
        s("id"),
        s("first_name"),
        s("last_name"),
        s("gender"),
        s("address"),
        s("post_code"),
        s("email"),
        s("username"),
        t("dob"),
        t("registered_date"),
        s("phone"),
        s("picture"),
    ]
}

#[tokio::test]
async fn users_sql_reproduces_the_mapping() {
    let engine = Engine::new(vec![PipelineSpec::users()], 1000)
        .await
        .unwrap();
    let pipeline = engine.pipeline("users").unwrap();
    let records = users(7, 50);
    let values: Vec<Option<&[u8]>> = records.iter().map(|r| Some(r.as_bytes())).collect();
    let out = pipeline
        .process(&kafka_batch(&values, 4, 500))
        .await
        .unwrap();
    assert_eq!(out.rejects.num_rows(), 0);
    // The concat in the SQL yields Utf8View; the output is conformed to the table.
    assert_eq!(out.output.schema(), created_users_schema());
    assert_eq!(out.output.num_rows(), records.len());
    let part = out
        .output
        .column_by_name("kafka_partition")
        .unwrap()
        .as_primitive::<Int32Type>();
    let off = out
        .output
        .column_by_name("kafka_offset")
        .unwrap()
        .as_primitive::<Int64Type>();
    let event = out
        .output
        .column_by_name("event_time")
        .unwrap()
        .as_primitive::<TimestampMillisecondType>();
    for (i, record) in records.iter().enumerate() {
        assert_eq!(actual(&out.output, i), expected(record), "row {i}");
        assert_eq!(part.value(i), 4);
        assert_eq!(off.value(i), 500 + i as i64);
        assert_eq!(event.value(i), 1_763_000_000_000 + i as i64);
    }
    assert!(
        out.output
            .column_by_name("processed_at")
            .unwrap()
            .null_count()
            == 0
    );
}

#[tokio::test]
async fn the_plan_is_reused_for_each_new_batch() {
    let engine = Engine::new(vec![PipelineSpec::users()], 1000)
        .await
        .unwrap();
    let pipeline = engine.pipeline("users").unwrap();
    let (a, b) = (users(1, 3), users(2, 5));
    let batch = |r: &[String]| {
        let v: Vec<Option<&[u8]>> = r.iter().map(|s| Some(s.as_bytes())).collect();
        kafka_batch(&v, 0, 0)
    };
    let out_a = pipeline.process(&batch(&a)).await.unwrap().output;
    let out_b = pipeline.process(&batch(&b)).await.unwrap().output;
    assert_eq!((out_a.num_rows(), out_b.num_rows()), (3, 5));
    assert_eq!(actual(&out_b, 4), expected(&b[4]));
    assert_eq!(actual(&out_a, 0), expected(&a[0]));
    let empty = pipeline.process(&batch(&[])).await.unwrap().output;
    assert_eq!(empty.num_rows(), 0);
    assert_eq!(empty.schema(), created_users_schema());
}

#[tokio::test]
async fn a_user_filter_keeps_working_across_batches() {
    let sql = quiver_core::pipeline::USERS_SQL
        .replace("FROM raw_users", "FROM raw_users WHERE gender = 'female'");
    let engine = Engine::new(vec![PipelineSpec::users_with_sql("women", &sql)], 0)
        .await
        .unwrap();
    let p = engine.pipeline("women").unwrap();
    let records = users(3, 40);
    let females = records
        .iter()
        .filter(|r| r.contains(r#""gender":"female""#))
        .count();
    assert!(females > 0 && females < records.len());
    let v: Vec<Option<&[u8]>> = records.iter().map(|s| Some(s.as_bytes())).collect();
    for _ in 0..2 {
        let out = p.process(&kafka_batch(&v, 0, 0)).await.unwrap();
        assert_eq!(out.output.num_rows(), females);
    }
}

#[tokio::test]
async fn records_the_sql_cannot_transform_become_rejects_and_the_rest_goes_through() {
    // Fails at run time, for postcodes with letters (GB, CA) only.
    let sql = quiver_core::pipeline::USERS_SQL.replace(
        "location_postcode AS post_code",
        "CAST(CAST(location_postcode AS BIGINT) AS VARCHAR) AS post_code",
    );
    let engine = Engine::new(vec![PipelineSpec::users_with_sql("strict", &sql)], 0)
        .await
        .unwrap();
    let p = engine.pipeline("strict").unwrap();
    let records = users(11, 200);
    let unparsable: Vec<usize> = records
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            let v: sonic_rs::Value = sonic_rs::from_str(r).unwrap();
            use sonic_rs::JsonValueTrait;
            let postcode = v.get("location").unwrap().get("postcode").unwrap();
            postcode.as_str().is_some_and(|s| s.parse::<i64>().is_err())
        })
        .map(|(i, _)| i)
        .collect();
    assert!(!unparsable.is_empty() && unparsable.len() < records.len());
    let mut values: Vec<Option<&[u8]>> = records.iter().map(|s| Some(s.as_bytes())).collect();
    values.push(Some(b"{not json"));

    let out = p.process(&kafka_batch(&values, 3, 100)).await.unwrap();
    assert_eq!(out.rows_in, records.len() + 1);
    assert_eq!(out.output.num_rows(), records.len() - unparsable.len());
    assert_eq!(
        out.rejects.num_rows(),
        unparsable.len() + 1,
        "SQL and decode rejects"
    );
    let offsets = out
        .rejects
        .column_by_name("kafka_offset")
        .unwrap()
        .as_primitive::<Int64Type>();
    let reasons = out
        .rejects
        .column_by_name("reason")
        .unwrap()
        .as_string::<i32>();
    let raw = out
        .rejects
        .column_by_name("raw_value")
        .unwrap()
        .as_binary::<i32>();
    let mut sql_rejects: Vec<i64> = Vec::new();
    for i in 0..out.rejects.num_rows() {
        if reasons.value(i).contains("the SQL failed on this record") {
            let index = (offsets.value(i) - 100) as usize;
            assert_eq!(raw.value(i), records[index].as_bytes());
            sql_rejects.push(offsets.value(i));
        }
    }
    sql_rejects.sort_unstable();
    let expected: Vec<i64> = unparsable.iter().map(|&i| 100 + i as i64).collect();
    assert_eq!(sql_rejects, expected);
}

async fn invalid(sql: &str) -> CoreError {
    Engine::new(vec![PipelineSpec::users_with_sql("custom", sql)], 0)
        .await
        .expect_err("the SQL should be refused at start-up")
}

#[tokio::test]
async fn a_syntax_error_is_reported_at_start_up() {
    let err = invalid("SELEC login_uuid AS id FROM raw_users").await;
    assert!(
        matches!(err, CoreError::SqlSyntax { ref pipeline, .. } if pipeline == "custom"),
        "{err}"
    );
}

#[tokio::test]
async fn an_unknown_column_is_reported_at_start_up() {
    let sql = quiver_core::pipeline::USERS_SQL.replace("name_first AS", "name_frist AS");
    let err = invalid(&sql).await;
    assert!(
        matches!(err, CoreError::UnknownColumn { ref message, .. } if message.contains("name_frist")),
        "{err}"
    );
}

#[tokio::test]
async fn a_result_that_does_not_fit_the_table_is_reported() {
    let sql = quiver_core::pipeline::USERS_SQL
        .replace("dob_date AS dob", "dob_age AS dob")
        .replace("    phone,\n", "    phone AS telephone,\n");
    let err = invalid(&sql).await;
    let CoreError::SchemaMismatch {
        problems, table, ..
    } = &err
    else {
        panic!("expected SchemaMismatch, got {err}");
    };
    assert_eq!(table, "created_users");
    assert!(
        problems
            .iter()
            .any(|p| matches!(p, SchemaProblem::WrongType { name, .. } if name == "dob")),
        "{err}"
    );
    assert!(
        problems.contains(&SchemaProblem::UnexpectedColumn {
            name: "telephone".into()
        }),
        "{err}"
    );
    assert!(
        problems
            .iter()
            .any(|p| matches!(p, SchemaProblem::MissingColumn { name, .. } if name == "phone")),
        "{err}"
    );
    assert!(err.to_string().contains("add a CAST"), "{err}");
}

#[tokio::test]
async fn statements_other_than_a_query_are_refused() {
    let err = invalid("CREATE TABLE t AS SELECT 1").await;
    assert!(
        matches!(err, CoreError::NotAQuery { .. } | CoreError::Plan { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn pipeline_names_are_checked() {
    let err = Engine::new(vec![PipelineSpec::users(), PipelineSpec::users()], 0)
        .await
        .unwrap_err();
    assert!(
        matches!(err, CoreError::DuplicatePipeline(ref n) if n == "users"),
        "{err}"
    );
    let engine = Engine::new(vec![PipelineSpec::users()], 0).await.unwrap();
    let err = engine.pipeline("nope").unwrap_err();
    assert!(err.to_string().contains("known pipelines: users"), "{err}");
}

#[tokio::test]
async fn the_recent_output_window_is_queryable() {
    let engine = Engine::new(vec![PipelineSpec::users()], 25).await.unwrap();
    let p = engine.pipeline("users").unwrap();
    for seed in 0..3 {
        let records = users(seed, 10);
        let v: Vec<Option<&[u8]>> = records.iter().map(|s| Some(s.as_bytes())).collect();
        let out = p
            .process(&kafka_batch(&v, 0, seed as i64 * 10))
            .await
            .unwrap();
        p.window().push(out.output);
    }
    // 30 rows pushed into a 25-row window: the oldest batch of 10 is dropped.
    let (_, batches) = engine
        .query("SELECT count(*) AS n, min(kafka_offset) AS first FROM users")
        .await
        .unwrap();
    let b = &batches[0];
    assert_eq!(b.column(0).as_primitive::<Int64Type>().value(0), 20);
    assert_eq!(b.column(1).as_primitive::<Int64Type>().value(0), 10);
    let err = engine.query("DROP TABLE users").await.unwrap_err();
    assert!(matches!(err, CoreError::Query(_)), "{err}");
}

#[tokio::test]
async fn a_pipeline_decodes_only_the_columns_its_sql_reads() {
    // users.sql does not read the coordinates; a pipeline that filters on them does.
    let record = users(5, 1)[0].clone();
    let latitude = record
        .split(r#""latitude":"#)
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap()
        .to_string();
    let bad = record.replace(
        &format!(r#""latitude":{latitude}"#),
        r#""latitude":"north""#,
    );
    assert_ne!(bad, record);
    let with_latitude = quiver_core::pipeline::USERS_SQL.replace(
        "FROM raw_users",
        "FROM raw_users WHERE location_coordinates_latitude > -91",
    );
    let engine = Engine::new(
        vec![
            PipelineSpec::users(),
            PipelineSpec::users_with_sql("located", &with_latitude),
        ],
        0,
    )
    .await
    .unwrap();
    let batch = kafka_batch(&[Some(record.as_bytes()), Some(bad.as_bytes())], 0, 0);

    let users = engine
        .pipeline("users")
        .unwrap()
        .process(&batch)
        .await
        .unwrap();
    assert_eq!((users.output.num_rows(), users.rejects.num_rows()), (2, 0));
    assert_eq!(actual(&users.output, 1), expected(&bad));

    let located = engine
        .pipeline("located")
        .unwrap()
        .process(&batch)
        .await
        .unwrap();
    assert_eq!(
        (located.output.num_rows(), located.rejects.num_rows()),
        (1, 1)
    );
    let reason = located
        .rejects
        .column_by_name("reason")
        .unwrap()
        .as_string::<i32>();
    assert!(
        reason.value(0).contains("coordinate"),
        "{}",
        reason.value(0)
    );
}
