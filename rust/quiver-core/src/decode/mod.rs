//! Kafka-shaped Arrow batch → typed `raw_users` rows + rejects.
//!
//! The input batch is read whatever compatible types a client sent (`input`); each
//! record is parsed by simd-json into its tape and its values read from it as borrowed
//! strings, so strings are copied once, into the Arrow builders (`json`); the fields
//! [`crate::record::FIELDS`] describes are found and appended to their columns
//! (`columns`). Only the columns the reader asks for are converted ([`UserFields`]). A
//! record is checked completely before anything is appended, so a reject never leaves a
//! half-written row behind.

mod columns;
mod input;
mod json;

use crate::error::CoreError;
use crate::record::{FIELDS, IDENTITY};
use arrow::array::{Array, RecordBatch};
use columns::UserColumns;
use input::{Rejects, normalise_input};
use json::Scratch;

/// The result of decoding one input batch.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// Rows in [`users_schema`](crate::schema::users_schema) order.
    pub rows: RecordBatch,
    /// Records that could not be decoded, in
    /// [`rejects_schema`](crate::schema::rejects_schema) order.
    pub rejects: RecordBatch,
}

/// The columns of [`users_schema`](crate::schema::users_schema) a pipeline reads. The
/// decoder converts and copies only these from each record and leaves the others null: a
/// field that no query reads costs its parse alone, and a bad value in it does not reject
/// the record. `login_uuid`, the
/// record's identity, is always read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserFields(u64);

// One bit per field of the record.
const _: () = assert!(FIELDS.len() <= u64::BITS as usize);

impl UserFields {
    /// Every column: what [`decode_users`] reads.
    pub const ALL: Self = Self(u64::MAX);

    /// The columns at these positions of [`users_schema`](crate::schema::users_schema).
    pub fn at(positions: impl IntoIterator<Item = usize>) -> Self {
        Self(positions.into_iter().fold(0, |bits, i| bits | 1 << i))
    }

    /// The columns after the record's (its Kafka coordinates and `processed_at`) are
    /// always filled.
    fn reads(self, column: usize) -> bool {
        column == IDENTITY || column >= FIELDS.len() || self.0 >> column & 1 == 1
    }
}

/// Rejects for input rows that decoded but that the pipeline's SQL could not transform,
/// found by their Kafka coordinates; `failed` holds (partition, offset, reason).
pub(crate) fn reject_input_rows(
    batch: &RecordBatch,
    failed: &[(i32, i64, String)],
    now_ms: i64,
) -> Result<RecordBatch, CoreError> {
    let input = normalise_input(batch)?;
    let rows: std::collections::HashMap<(i32, i64), usize> = (0..batch.num_rows())
        .map(|i| ((input.partition.value(i), input.offset.value(i)), i))
        .collect();
    let mut rejects = Rejects::new();
    for (partition, offset, reason) in failed {
        if let Some(&i) = rows.get(&(*partition, *offset)) {
            rejects.push(&input, i, reason);
        }
    }
    rejects.finish(now_ms)
}

/// Decodes a Kafka-shaped batch of randomuser JSON values.
///
/// Fails only when the batch itself has the wrong shape; a bad record becomes a row of
/// `rejects`. `now_ms` stamps `processed_at` and `rejected_at`: it is passed in so the
/// core stays deterministic under test.
pub fn decode_users(batch: &RecordBatch, now_ms: i64) -> Result<Decoded, CoreError> {
    decode_user_fields(batch, now_ms, UserFields::ALL)
}

/// [`decode_users`] for a reader of only some columns: the others are null.
pub fn decode_user_fields(
    batch: &RecordBatch,
    now_ms: i64,
    wanted: UserFields,
) -> Result<Decoded, CoreError> {
    let input = normalise_input(batch)?;
    let n = batch.num_rows();
    let mut cols = UserColumns::with_capacity(n, wanted);
    let mut rejects = Rejects::new();
    let mut scratch = Scratch::default();
    for i in 0..n {
        let partition = input.partition.value(i);
        let offset = input.offset.value(i);
        let ts = input
            .timestamp
            .as_ref()
            .and_then(|t| t.is_valid(i).then(|| t.value(i)));
        let appended = match input.value.is_valid(i).then(|| input.value.value(i)) {
            None => Err("value is null (a tombstone or an empty message)".to_string()),
            Some(raw) => scratch.parse(raw, |record| cols.append(record, partition, offset, ts)),
        };
        if let Err(reason) = appended {
            rejects.push(&input, i, &reason);
        }
    }
    Ok(Decoded {
        rows: cols.finish(now_ms)?,
        rejects: rejects.finish(now_ms)?,
    })
}
