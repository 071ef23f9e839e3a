//! A record's fields ([`FIELDS`]) found in its JSON, read as their kind says and appended
//! to the batch's columns. A record is read completely before anything is appended, so a
//! reject never leaves a half-written row behind.

use super::UserFields;
use super::json::{self, wrong_type};
use crate::error::CoreError;
use crate::record::{FIELDS, IDENTITY, Kind, RecordField};
use crate::schema::users_schema;
use arrow::array::{
    ArrayBuilder, ArrayRef, Float64Builder, Int32Builder, Int64Builder, RecordBatch, StringBuilder,
    TimestampMillisecondArray, TimestampMillisecondBuilder, new_null_array,
};
use simd_json::ValueType;
use simd_json::prelude::TypedValue;
use simd_json::tape::{Object as JsonObject, Value};
use std::borrow::Cow;
use std::sync::{Arc, LazyLock};

const N: usize = FIELDS.len();

/// An object of the record: the keys read in it, in [`FIELDS`] order, and what each holds.
struct Object {
    /// Its keys from the top, joined by dots, for the reasons of rejects.
    path: String,
    keys: Vec<&'static str>,
    entries: Vec<Entry>,
}

enum Entry {
    /// The field at this position of [`FIELDS`].
    Value(usize),
    Object(Object),
}

/// The record's objects as [`FIELDS`] describes them, built once.
static RECORD: LazyLock<Object> = LazyLock::new(|| {
    let mut root = Object::new(String::new());
    for (i, field) in FIELDS.iter().enumerate() {
        root.insert(&field.path.split('.').collect::<Vec<_>>(), i);
    }
    root
});

impl Object {
    fn new(path: String) -> Self {
        Self {
            path,
            keys: Vec::new(),
            entries: Vec::new(),
        }
    }

    /// Adds the field at position `i` of [`FIELDS`], whose keys from this object on are
    /// `keys`.
    fn insert(&mut self, keys: &[&'static str], i: usize) {
        let (&key, rest) = keys.split_first().expect("a field's path has a key");
        let at = match self.keys.iter().position(|&k| k == key) {
            Some(at) => at,
            None => {
                self.keys.push(key);
                self.entries.push(if rest.is_empty() {
                    Entry::Value(i)
                } else {
                    Entry::Object(Object::new(match self.path.as_str() {
                        "" => key.to_string(),
                        parent => format!("{parent}.{key}"),
                    }))
                });
                self.keys.len() - 1
            }
        };
        if let Entry::Object(inner) = &mut self.entries[at] {
            inner.insert(rest, i);
        }
    }

    /// Puts the values of this object's fields, found in `json`, into `found`, in one pass
    /// over its entries. The search for each entry starts after the last key found, so
    /// entries in the API's order cost one comparison each; looking the keys up one by one
    /// would scan the object once per key. The first of two equal keys counts, absent and
    /// null values read as absent, and an object whose fields nobody reads is still
    /// checked to be an object.
    fn locate<'v>(
        &self,
        json: JsonObject<'v, 'v>,
        found: &mut [Option<Value<'v, 'v>>; N],
    ) -> Result<(), String> {
        let n = self.keys.len();
        let mut seen = 0u64;
        let mut next = 0;
        for (name, value) in json.iter() {
            let hit = (0..n)
                .map(|i| (next + i) % n)
                .find(|&j| seen >> j & 1 == 0 && self.keys[j] == name);
            let Some(j) = hit else { continue };
            seen |= 1 << j;
            next = j + 1;
            if value.value_type() == ValueType::Null {
                continue;
            }
            match &self.entries[j] {
                Entry::Value(i) => found[*i] = Some(value),
                Entry::Object(inner) => match value.as_object() {
                    Some(object) => inner.locate(object, found)?,
                    None => return Err(wrong_type(&inner.path, value, "an object")),
                },
            }
        }
        Ok(())
    }
}

/// One field's value, read and checked, waiting for the rest of its record.
enum Cell<'v> {
    Absent,
    Text(Cow<'v, str>),
    Int64(i64),
    Int32(i32),
    Float(f64),
    Uuid(uuid::fmt::Hyphenated),
}

fn read<'v>(field: &RecordField, v: Value<'v, 'v>) -> Result<Cell<'v>, String> {
    let path = field.path;
    Ok(match field.kind {
        Kind::Text => Cell::Text(Cow::Borrowed(json::text(v, path)?)),
        Kind::NumberAsText => Cell::Text(json::number_as_text(v, path)?),
        Kind::Int64 => Cell::Int64(json::int(v, path)?),
        Kind::Int32 => Cell::Int32(json::int(v, path)?),
        Kind::Float => Cell::Float(json::float(v, path)?),
        Kind::Timestamp => Cell::Int64(json::timestamp_ms(v, path)?),
        Kind::Uuid => {
            let text = json::text(v, path)?;
            let uuid = uuid::Uuid::try_parse(text)
                .map_err(|_| format!("{path} {text:?} is not a UUID"))?;
            Cell::Uuid(uuid.hyphenated())
        }
    })
}

/// The builder of one field's column.
enum Column {
    Text(StringBuilder),
    Int64(Int64Builder),
    Int32(Int32Builder),
    Float(Float64Builder),
    Timestamp(TimestampMillisecondBuilder),
}

impl Column {
    fn with_capacity(field: &RecordField, n: usize) -> Self {
        match field.kind {
            Kind::Text | Kind::NumberAsText | Kind::Uuid => {
                Column::Text(StringBuilder::with_capacity(n, n * field.bytes))
            }
            Kind::Int64 => Column::Int64(Int64Builder::with_capacity(n)),
            Kind::Int32 => Column::Int32(Int32Builder::with_capacity(n)),
            Kind::Float => Column::Float(Float64Builder::with_capacity(n)),
            Kind::Timestamp => Column::Timestamp(timestamps(n)),
        }
    }

    fn append(&mut self, cell: Cell<'_>) {
        match (self, cell) {
            (Column::Text(b), Cell::Text(s)) => b.append_value(s),
            (Column::Text(b), Cell::Uuid(u)) => {
                b.append_value(u.encode_lower(&mut uuid::Uuid::encode_buffer()))
            }
            (Column::Int64(b), Cell::Int64(v)) => b.append_value(v),
            (Column::Timestamp(b), Cell::Int64(v)) => b.append_value(v),
            (Column::Int32(b), Cell::Int32(v)) => b.append_value(v),
            (Column::Float(b), Cell::Float(v)) => b.append_value(v),
            (Column::Text(b), Cell::Absent) => b.append_null(),
            (Column::Int64(b), Cell::Absent) => b.append_null(),
            (Column::Timestamp(b), Cell::Absent) => b.append_null(),
            (Column::Int32(b), Cell::Absent) => b.append_null(),
            (Column::Float(b), Cell::Absent) => b.append_null(),
            _ => unreachable!("a field's cell and its column both follow its kind"),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Column::Text(b) => Arc::new(b.finish()),
            Column::Int64(b) => Arc::new(b.finish()),
            Column::Int32(b) => Arc::new(b.finish()),
            Column::Float(b) => Arc::new(b.finish()),
            Column::Timestamp(b) => Arc::new(b.finish()),
        }
    }
}

fn timestamps(n: usize) -> TimestampMillisecondBuilder {
    TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC")
}

/// The columns of [`users_schema`] being built for one batch.
pub(super) struct UserColumns {
    /// The columns filled; the others stay empty and are null in the batch.
    reads: UserFields,
    /// The record's objects, looked up once per batch rather than once per record.
    objects: &'static Object,
    record: Vec<Column>,
    partition: Int32Builder,
    offset: Int64Builder,
    kafka_ts: TimestampMillisecondBuilder,
}

impl UserColumns {
    pub(super) fn with_capacity(n: usize, reads: UserFields) -> Self {
        Self {
            reads,
            objects: &RECORD,
            record: FIELDS.iter().map(|f| Column::with_capacity(f, n)).collect(),
            partition: Int32Builder::with_capacity(n),
            offset: Int64Builder::with_capacity(n),
            kafka_ts: timestamps(n),
        }
    }

    /// Reads the fields of one parsed record and appends them with the record's Kafka
    /// coordinates, or says why the record is rejected.
    pub(super) fn append(
        &mut self,
        record: Value<'_, '_>,
        partition: i32,
        offset: i64,
        kafka_ts: Option<i64>,
    ) -> Result<(), String> {
        let Some(object) = record.as_object() else {
            return Err("invalid JSON: a record must be a JSON object".into());
        };
        let mut found = [None; N];
        self.objects.locate(object, &mut found)?;
        let identity = &FIELDS[IDENTITY];
        let Some(id) = found[IDENTITY] else {
            return Err(format!(
                "{} is missing; it is the primary key",
                identity.path
            ));
        };
        let mut cells = [const { Cell::Absent }; N];
        cells[IDENTITY] = read(identity, id)?;
        for (i, value) in found.into_iter().enumerate() {
            if let Some(value) = value
                && i != IDENTITY
                && self.reads.reads(i)
            {
                cells[i] = read(&FIELDS[i], value)?;
            }
        }
        for (i, (column, cell)) in self.record.iter_mut().zip(cells).enumerate() {
            if self.reads.reads(i) {
                column.append(cell);
            }
        }
        self.partition.append_value(partition);
        self.offset.append_value(offset);
        self.kafka_ts.append_option(kafka_ts);
        Ok(())
    }

    pub(super) fn finish(mut self, processed_at_ms: i64) -> Result<RecordBatch, CoreError> {
        let n = self.partition.len();
        let schema = users_schema();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
        for (i, column) in self.record.iter_mut().enumerate() {
            columns.push(if self.reads.reads(i) {
                column.finish()
            } else {
                new_null_array(schema.field(i).data_type(), n)
            });
        }
        columns.push(Arc::new(self.partition.finish()));
        columns.push(Arc::new(self.offset.finish()));
        columns.push(Arc::new(self.kafka_ts.finish()));
        columns.push(Arc::new(
            TimestampMillisecondArray::from(vec![processed_at_ms; n]).with_timezone("UTC"),
        ));
        Ok(RecordBatch::try_new(schema, columns)?)
    }
}
