//! Fixtures for the tests and benchmarks of quiver's crates, never a dependency of their
//! production code: Kafka-shaped batches of synthetic randomuser-1.4 records, which must
//! not depend on the live API. The records come from [`quiver_source::synthetic`], the same
//! generator `quiver produce --source synthetic` sends to Kafka, quirks included.

use arrow::array::RecordBatch;
use quiver_core::schema::kafka_input_batch;
use quiver_source::synthetic::Synthetic;

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
    let timestamps: Vec<Option<i64>> = (0..n as i64).map(|i| Some(1_763_000_000_000 + i)).collect();
    let offsets: Vec<i64> = (first_offset..first_offset + n as i64).collect();
    kafka_input_batch(
        Some("users_created"),
        &vec![partition; n],
        &offsets,
        &timestamps,
        values,
    )
}

/// [`users`] as a Kafka-shaped batch.
pub fn users_batch(seed: u64, n: usize) -> RecordBatch {
    let records = users(seed, n);
    let values: Vec<Option<&[u8]>> = records.iter().map(|r| Some(r.as_bytes())).collect();
    kafka_batch(&values, 0, 0)
}
