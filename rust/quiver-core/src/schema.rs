//! The Arrow schemas at each stage of the `users` flow.
//!
//! Timestamps are milliseconds in UTC throughout: that is Kafka's and Cassandra's
//! resolution, so no stage silently truncates.

use crate::record::{FIELDS, RecordField};
use arrow::array::{
    BinaryArray, Int32Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use std::sync::{Arc, LazyLock};

/// The name under which the decoded rows are visible to a pipeline's SQL.
pub const INPUT_TABLE: &str = "raw_users";

pub fn ts_ms() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

/// The batch shape Spark's Kafka source produces (and any Flight client must send).
/// `value`, `partition` and `offset` are required; `key`, `topic` and `timestamp` may be
/// absent, which suits clients that are not Spark.
pub fn kafka_input_schema() -> SchemaRef {
    static S: LazyLock<SchemaRef> = LazyLock::new(|| {
        Arc::new(Schema::new(vec![
            Field::new("key", DataType::Binary, true),
            Field::new("value", DataType::Binary, true),
            Field::new("topic", DataType::Utf8, true),
            Field::new("partition", DataType::Int32, false),
            Field::new("offset", DataType::Int64, false),
            Field::new("timestamp", ts_ms(), true),
        ]))
    });
    S.clone()
}

/// A batch in [`kafka_input_schema`], without keys: `topic` on every row (or none), then per
/// row its partition, offset, timestamp (ms) and value (`None`: a tombstone).
pub fn kafka_input_batch(
    topic: Option<&str>,
    partitions: &[i32],
    offsets: &[i64],
    timestamps_ms: &[Option<i64>],
    values: &[Option<&[u8]>],
) -> RecordBatch {
    let n = values.len();
    RecordBatch::try_new(
        kafka_input_schema(),
        vec![
            Arc::new(BinaryArray::from(vec![None::<&[u8]>; n])),
            Arc::new(BinaryArray::from(values.to_vec())),
            Arc::new(StringArray::from(vec![topic; n])),
            Arc::new(Int32Array::from(partitions.to_vec())),
            Arc::new(Int64Array::from(offsets.to_vec())),
            Arc::new(TimestampMillisecondArray::from(timestamps_ms.to_vec()).with_timezone("UTC")),
        ],
    )
    .expect("the columns follow kafka_input_schema and have one length")
}

/// The decoded randomuser record: one column per field of [`crate::record::FIELDS`], then
/// where the record was in Kafka and when it was decoded.
pub fn users_schema() -> SchemaRef {
    static S: LazyLock<SchemaRef> = LazyLock::new(|| {
        let record = FIELDS.iter().map(RecordField::arrow_field);
        let kafka = [
            Field::new("kafka_partition", DataType::Int32, false),
            Field::new("kafka_offset", DataType::Int64, false),
            Field::new("kafka_timestamp", ts_ms(), true),
            Field::new("processed_at", ts_ms(), false),
        ];
        Arc::new(Schema::new(record.chain(kafka).collect::<Vec<_>>()))
    });
    S.clone()
}

/// The Cassandra table `spark_streams.created_users`, as Arrow. `id` is the canonical
/// lower-case UUID text; the sink binds it as a CQL `uuid`.
pub fn created_users_schema() -> SchemaRef {
    static S: LazyLock<SchemaRef> = LazyLock::new(|| {
        let s = |n: &str| Field::new(n, DataType::Utf8, true);
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            s("first_name"),
            s("last_name"),
            s("gender"),
            s("address"),
            s("post_code"),
            s("email"),
            s("username"),
            Field::new("dob", ts_ms(), true),
            Field::new("registered_date", ts_ms(), true),
            s("phone"),
            s("picture"),
            Field::new("kafka_partition", DataType::Int32, true),
            Field::new("kafka_offset", DataType::Int64, true),
            Field::new("event_time", ts_ms(), true),
            Field::new("processed_at", ts_ms(), true),
        ]))
    });
    S.clone()
}

/// Records that could not be decoded, with where they came from and why.
/// Matches the Cassandra table `spark_streams.rejected_users`.
pub fn rejects_schema() -> SchemaRef {
    static S: LazyLock<SchemaRef> = LazyLock::new(|| {
        Arc::new(Schema::new(vec![
            Field::new("kafka_topic", DataType::Utf8, true),
            Field::new("kafka_partition", DataType::Int32, false),
            Field::new("kafka_offset", DataType::Int64, false),
            Field::new("kafka_timestamp", ts_ms(), true),
            Field::new("raw_value", DataType::Binary, true),
            Field::new("reason", DataType::Utf8, false),
            Field::new("rejected_at", ts_ms(), false),
        ]))
    });
    S.clone()
}
