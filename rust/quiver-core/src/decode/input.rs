//! The Kafka-shaped input batch, read in whatever compatible types a client sent, and the
//! rejects made from its rows.

use crate::error::CoreError;
use crate::schema::{kafka_input_schema, rejects_schema};
use arrow::array::{
    Array, ArrayBuilder, ArrayRef, AsArray, BinaryArray, BinaryBuilder, Int32Array, Int32Builder,
    Int64Array, Int64Builder, RecordBatch, StringBuilder, TimestampMillisecondArray,
    TimestampMillisecondBuilder,
};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, Schema};
use std::sync::Arc;

/// The input columns after normalisation to [`kafka_input_schema`] types.
pub(super) struct Input {
    pub(super) value: BinaryArray,
    topic: Option<ArrayRef>,
    pub(super) partition: Int32Array,
    pub(super) offset: Int64Array,
    pub(super) timestamp: Option<TimestampMillisecondArray>,
}

fn column_family_ok(name: &str, dt: &DataType) -> bool {
    use DataType::*;
    match name {
        "value" | "key" => matches!(
            dt,
            Binary | LargeBinary | BinaryView | Utf8 | LargeUtf8 | Utf8View
        ),
        "topic" => matches!(dt, Utf8 | LargeUtf8 | Utf8View),
        "partition" | "offset" => dt.is_integer(),
        "timestamp" => matches!(dt, Timestamp(_, _) | Int64),
        _ => true,
    }
}

pub(super) fn normalise_input(batch: &RecordBatch) -> Result<Input, CoreError> {
    let want = kafka_input_schema();
    let schema = batch.schema();
    let opts = CastOptions {
        safe: false,
        ..Default::default()
    };
    let mut cols: Vec<Option<ArrayRef>> = Vec::with_capacity(want.fields().len());
    for f in want.fields() {
        let Ok(idx) = schema.index_of(f.name()) else {
            if f.is_nullable() && f.name() != "value" {
                cols.push(None);
                continue;
            }
            return Err(CoreError::InputSchema(format!(
                "column `{}` is missing; expected the Kafka source shape {}",
                f.name(),
                describe(&want)
            )));
        };
        let col = batch.column(idx);
        if !column_family_ok(f.name(), col.data_type()) {
            return Err(CoreError::InputSchema(format!(
                "column `{}` is {}, expected {}",
                f.name(),
                col.data_type(),
                f.data_type()
            )));
        }
        let col = if col.data_type() == f.data_type() {
            col.clone()
        } else {
            cast_with_options(col, f.data_type(), &opts).map_err(|e| {
                CoreError::InputSchema(format!(
                    "column `{}` ({}) cannot be read as {}: {e}",
                    f.name(),
                    col.data_type(),
                    f.data_type()
                ))
            })?
        };
        cols.push(Some(col));
    }
    let take = |i: usize| cols[i].clone();
    let value = take(1).expect("value is required above");
    let partition = take(3).expect("partition is required above");
    let offset = take(4).expect("offset is required above");
    if partition.null_count() > 0 || offset.null_count() > 0 {
        return Err(CoreError::InputSchema(
            "`partition` and `offset` must not be null: they identify a record for rejects and replays"
                .into(),
        ));
    }
    Ok(Input {
        value: value.as_binary::<i32>().clone(),
        topic: take(2),
        partition: partition.as_primitive().clone(),
        offset: offset.as_primitive().clone(),
        timestamp: take(5).map(|t| t.as_primitive().clone()),
    })
}

fn describe(schema: &Schema) -> String {
    let fields: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| format!("{}: {}", f.name(), f.data_type()))
        .collect();
    format!("({})", fields.join(", "))
}

pub(super) struct Rejects {
    topic: StringBuilder,
    partition: Int32Builder,
    offset: Int64Builder,
    kafka_ts: TimestampMillisecondBuilder,
    raw: BinaryBuilder,
    reason: StringBuilder,
}

impl Rejects {
    pub(super) fn new() -> Self {
        Self {
            topic: StringBuilder::new(),
            partition: Int32Builder::new(),
            offset: Int64Builder::new(),
            kafka_ts: TimestampMillisecondBuilder::new().with_timezone("UTC"),
            raw: BinaryBuilder::new(),
            reason: StringBuilder::new(),
        }
    }

    /// Records input row `i` as rejected for `reason`, with its Kafka coordinates and
    /// raw value.
    pub(super) fn push(&mut self, input: &Input, i: usize, reason: &str) {
        let topic = input.topic.as_ref().map(|t| t.as_string::<i32>());
        self.topic
            .append_option(topic.and_then(|t| t.is_valid(i).then(|| t.value(i))));
        self.partition.append_value(input.partition.value(i));
        self.offset.append_value(input.offset.value(i));
        let ts = input.timestamp.as_ref();
        self.kafka_ts
            .append_option(ts.and_then(|t| t.is_valid(i).then(|| t.value(i))));
        self.raw
            .append_option(input.value.is_valid(i).then(|| input.value.value(i)));
        self.reason.append_value(reason);
    }

    pub(super) fn finish(mut self, rejected_at_ms: i64) -> Result<RecordBatch, CoreError> {
        let n = self.partition.len();
        let at = TimestampMillisecondArray::from(vec![rejected_at_ms; n]).with_timezone("UTC");
        Ok(RecordBatch::try_new(
            rejects_schema(),
            vec![
                Arc::new(self.topic.finish()),
                Arc::new(self.partition.finish()),
                Arc::new(self.offset.finish()),
                Arc::new(self.kafka_ts.finish()),
                Arc::new(self.raw.finish()),
                Arc::new(self.reason.finish()),
                Arc::new(at),
            ],
        )?)
    }
}
