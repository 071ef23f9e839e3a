//! Kafka-shaped batches of synthetic randomuser-1.4 records, for tests, benchmarks and
//! demos that must not depend on the live API. The records come from
//! [`quiver_source::synthetic`], the same generator `quiver produce --source synthetic`
//! sends to Kafka, quirks included.

use crate::schema::kafka_input_schema;
use arrow::array::{
    BinaryArray, Int32Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use quiver_source::synthetic::Synthetic;
use std::sync::Arc;

/// The first `n` synthetic records of `seed`, as compact JSON.
pub fn users(seed: u64, n: usize) -> Vec<String> {
    Synthetic::new(seed)
        .take(n)
        .map(|record| record.value)
        .collect()
}

/// A batch in Spark's Kafka source shape: values on one partition with consecutive
/// offsets from `first_offset`; `None` is a null value (tombstone).
pub fn kafka_batch(values: &[Option<&[u8]>], partition: i32, first_offset: i64) -> RecordBatch {
    let n = values.len();
    let timestamps: Vec<i64> = (0..n as i64).map(|i| 1_763_000_000_000 + i).collect();
    RecordBatch::try_new(
        kafka_input_schema(),
        vec![
            Arc::new(BinaryArray::from(vec![None::<&[u8]>; n])),
            Arc::new(BinaryArray::from(values.to_vec())),
            Arc::new(StringArray::from(vec!["users_created"; n])),
            Arc::new(Int32Array::from(vec![partition; n])),
            Arc::new(Int64Array::from_iter_values(
                first_offset..first_offset + n as i64,
            )),
            Arc::new(TimestampMillisecondArray::from(timestamps).with_timezone("UTC")),
        ],
    )
    .expect("the columns follow kafka_input_schema")
}

/// [`users`] as a Kafka-shaped batch.
pub fn users_batch(seed: u64, n: usize) -> RecordBatch {
    let records = users(seed, n);
    let values: Vec<Option<&[u8]>> = records.iter().map(|r| Some(r.as_bytes())).collect();
    kafka_batch(&values, 0, 0)
}
