//! Kafka-shaped Arrow batch → typed `raw_users` rows + rejects.
//!
//! JSON is parsed by sonic-rs (SIMD) straight into borrowed serde structs, so unused
//! fields are skipped without allocation and strings are copied once, into the Arrow
//! builders. A record is validated completely before anything is appended, so a reject
//! never leaves a half-written row behind.

use crate::error::CoreError;
use crate::schema::{kafka_input_schema, rejects_schema, users_schema};
use arrow::array::{
    Array, ArrayBuilder, ArrayRef, AsArray, BinaryArray, BinaryBuilder, Float64Builder, Int32Array,
    Int32Builder, Int64Array, Int64Builder, RecordBatch, StringBuilder, TimestampMillisecondArray,
    TimestampMillisecondBuilder,
};
use arrow::compute::kernels::cast_utils::string_to_timestamp_nanos;
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, Schema};
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

/// The result of decoding one input batch.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// Rows in [`users_schema`] order.
    pub rows: RecordBatch,
    /// Records that could not be decoded, in [`rejects_schema`] order.
    pub rejects: RecordBatch,
}

type Str<'a> = Option<Cow<'a, str>>;

#[derive(Deserialize, Default)]
struct RawUser<'a> {
    #[serde(borrow, default)]
    gender: Str<'a>,
    #[serde(borrow, default)]
    name: Option<RawName<'a>>,
    #[serde(borrow, default)]
    location: Option<RawLocation<'a>>,
    #[serde(borrow, default)]
    email: Str<'a>,
    #[serde(borrow, default)]
    login: Option<RawLogin<'a>>,
    #[serde(borrow, default)]
    dob: Option<RawDated<'a>>,
    #[serde(borrow, default)]
    registered: Option<RawDated<'a>>,
    #[serde(borrow, default)]
    phone: Str<'a>,
    #[serde(borrow, default)]
    cell: Str<'a>,
    #[serde(borrow, default)]
    id: Option<RawId<'a>>,
    #[serde(borrow, default)]
    picture: Option<RawPicture<'a>>,
    #[serde(borrow, default)]
    nat: Str<'a>,
}

#[derive(Deserialize, Default)]
struct RawName<'a> {
    #[serde(borrow, default)]
    title: Str<'a>,
    #[serde(borrow, default)]
    first: Str<'a>,
    #[serde(borrow, default)]
    last: Str<'a>,
}

#[derive(Deserialize, Default)]
struct RawLocation<'a> {
    #[serde(borrow, default)]
    street: Option<RawStreet<'a>>,
    #[serde(borrow, default)]
    city: Str<'a>,
    #[serde(borrow, default)]
    state: Str<'a>,
    #[serde(borrow, default)]
    country: Str<'a>,
    // A number for most nationalities, a string for CA, GB, NO (and others).
    #[serde(borrow, default, deserialize_with = "number_or_string")]
    postcode: Str<'a>,
    #[serde(default)]
    coordinates: Option<RawCoordinates>,
    #[serde(borrow, default)]
    timezone: Option<RawTimezone<'a>>,
}

#[derive(Deserialize, Default)]
struct RawStreet<'a> {
    #[serde(default)]
    number: Option<i64>,
    #[serde(borrow, default)]
    name: Str<'a>,
}

#[derive(Deserialize, Default)]
struct RawCoordinates {
    // The API sends coordinates as strings ("-69.8246"); numbers are taken too.
    #[serde(default, deserialize_with = "float_or_string")]
    latitude: Option<f64>,
    #[serde(default, deserialize_with = "float_or_string")]
    longitude: Option<f64>,
}

#[derive(Deserialize, Default)]
struct RawTimezone<'a> {
    #[serde(borrow, default)]
    offset: Str<'a>,
    #[serde(borrow, default)]
    description: Str<'a>,
}

#[derive(Deserialize, Default)]
struct RawLogin<'a> {
    #[serde(borrow, default)]
    uuid: Str<'a>,
    #[serde(borrow, default)]
    username: Str<'a>,
}

#[derive(Deserialize, Default)]
struct RawDated<'a> {
    #[serde(borrow, default)]
    date: Str<'a>,
    #[serde(default)]
    age: Option<i32>,
}

#[derive(Deserialize, Default)]
struct RawId<'a> {
    #[serde(borrow, default)]
    name: Str<'a>,
    // null for many nationalities.
    #[serde(borrow, default)]
    value: Str<'a>,
}

#[derive(Deserialize, Default)]
struct RawPicture<'a> {
    #[serde(borrow, default)]
    large: Str<'a>,
    #[serde(borrow, default)]
    medium: Str<'a>,
    #[serde(borrow, default)]
    thumbnail: Str<'a>,
}

fn number_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'de, str>>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<Cow<'de, str>>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a number or a string")
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v.to_string())))
        }
        fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v.to_string())))
        }
        fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v.to_string())))
        }
        fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Borrowed(v)))
        }
        fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v.to_owned())))
        }
    }
    d.deserialize_any(V)
}

fn float_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = Option<f64>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a number or a numeric string")
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v as f64))
        }
        fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v as f64))
        }
        fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            v.trim()
                .parse()
                .map(Some)
                .map_err(|_| E::custom(format!("coordinate {v:?} is not a number")))
        }
    }
    d.deserialize_any(V)
}

/// The input columns after normalisation to [`kafka_input_schema`] types.
struct Input<'b> {
    value: Cow<'b, BinaryArray>,
    topic: Option<ArrayRef>,
    partition: Int32Array,
    offset: Int64Array,
    timestamp: Option<TimestampMillisecondArray>,
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

fn normalise_input(batch: &RecordBatch) -> Result<Input<'_>, CoreError> {
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
        value: Cow::Owned(value.as_binary::<i32>().clone()),
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

struct UserColumns {
    gender: StringBuilder,
    name_title: StringBuilder,
    name_first: StringBuilder,
    name_last: StringBuilder,
    street_number: Int64Builder,
    street_name: StringBuilder,
    city: StringBuilder,
    state: StringBuilder,
    country: StringBuilder,
    postcode: StringBuilder,
    latitude: Float64Builder,
    longitude: Float64Builder,
    tz_offset: StringBuilder,
    tz_description: StringBuilder,
    email: StringBuilder,
    uuid: StringBuilder,
    username: StringBuilder,
    dob_date: TimestampMillisecondBuilder,
    dob_age: Int32Builder,
    registered_date: TimestampMillisecondBuilder,
    registered_age: Int32Builder,
    phone: StringBuilder,
    cell: StringBuilder,
    id_name: StringBuilder,
    id_value: StringBuilder,
    picture_large: StringBuilder,
    picture_medium: StringBuilder,
    picture_thumbnail: StringBuilder,
    nat: StringBuilder,
    partition: Int32Builder,
    offset: Int64Builder,
    kafka_ts: TimestampMillisecondBuilder,
}

impl UserColumns {
    fn with_capacity(n: usize) -> Self {
        let s = |bytes_per_row: usize| StringBuilder::with_capacity(n, n * bytes_per_row);
        let ts = || TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC");
        Self {
            gender: s(6),
            name_title: s(4),
            name_first: s(8),
            name_last: s(8),
            street_number: Int64Builder::with_capacity(n),
            street_name: s(12),
            city: s(10),
            state: s(10),
            country: s(10),
            postcode: s(6),
            latitude: Float64Builder::with_capacity(n),
            longitude: Float64Builder::with_capacity(n),
            tz_offset: s(6),
            tz_description: s(32),
            email: s(28),
            uuid: s(36),
            username: s(16),
            dob_date: ts(),
            dob_age: Int32Builder::with_capacity(n),
            registered_date: ts(),
            registered_age: Int32Builder::with_capacity(n),
            phone: s(14),
            cell: s(14),
            id_name: s(4),
            id_value: s(12),
            picture_large: s(48),
            picture_medium: s(56),
            picture_thumbnail: s(56),
            nat: s(2),
            partition: Int32Builder::with_capacity(n),
            offset: Int64Builder::with_capacity(n),
            kafka_ts: ts(),
        }
    }

    fn finish(mut self, processed_at_ms: i64) -> Result<RecordBatch, CoreError> {
        let n = self.partition.len();
        let processed_at =
            TimestampMillisecondArray::from(vec![processed_at_ms; n]).with_timezone("UTC");
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.gender.finish()),
            Arc::new(self.name_title.finish()),
            Arc::new(self.name_first.finish()),
            Arc::new(self.name_last.finish()),
            Arc::new(self.street_number.finish()),
            Arc::new(self.street_name.finish()),
            Arc::new(self.city.finish()),
            Arc::new(self.state.finish()),
            Arc::new(self.country.finish()),
            Arc::new(self.postcode.finish()),
            Arc::new(self.latitude.finish()),
            Arc::new(self.longitude.finish()),
            Arc::new(self.tz_offset.finish()),
            Arc::new(self.tz_description.finish()),
            Arc::new(self.email.finish()),
            Arc::new(self.uuid.finish()),
            Arc::new(self.username.finish()),
            Arc::new(self.dob_date.finish()),
            Arc::new(self.dob_age.finish()),
            Arc::new(self.registered_date.finish()),
            Arc::new(self.registered_age.finish()),
            Arc::new(self.phone.finish()),
            Arc::new(self.cell.finish()),
            Arc::new(self.id_name.finish()),
            Arc::new(self.id_value.finish()),
            Arc::new(self.picture_large.finish()),
            Arc::new(self.picture_medium.finish()),
            Arc::new(self.picture_thumbnail.finish()),
            Arc::new(self.nat.finish()),
            Arc::new(self.partition.finish()),
            Arc::new(self.offset.finish()),
            Arc::new(self.kafka_ts.finish()),
            Arc::new(processed_at),
        ];
        Ok(RecordBatch::try_new(users_schema(), columns)?)
    }
}

struct Rejects {
    topic: StringBuilder,
    partition: Int32Builder,
    offset: Int64Builder,
    kafka_ts: TimestampMillisecondBuilder,
    raw: BinaryBuilder,
    reason: StringBuilder,
}

impl Rejects {
    fn new() -> Self {
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
    fn push(&mut self, input: &Input<'_>, i: usize, reason: &str) {
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

    fn finish(mut self, rejected_at_ms: i64) -> Result<RecordBatch, CoreError> {
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

/// A fully validated record, ready to append.
struct Valid<'a> {
    user: RawUser<'a>,
    uuid: uuid::fmt::Hyphenated,
    dob_ms: Option<i64>,
    registered_ms: Option<i64>,
}

fn parse_date(field: &str, s: &Str<'_>) -> Result<Option<i64>, String> {
    match s {
        None => Ok(None),
        Some(s) => string_to_timestamp_nanos(s)
            .map(|ns| Some(ns.div_euclid(1_000_000)))
            .map_err(|_| format!("{field} {s:?} is not an ISO-8601 timestamp")),
    }
}

fn validate(raw: &[u8]) -> Result<Valid<'_>, String> {
    let user: RawUser<'_> = sonic_rs::from_slice(raw).map_err(|e| {
        let msg = e.to_string();
        format!(
            "invalid JSON: {}",
            msg.lines().next().unwrap_or("unreadable record")
        )
    })?;
    let uuid_text = user
        .login
        .as_ref()
        .and_then(|l| l.uuid.as_deref())
        .ok_or_else(|| "login.uuid is missing; it is the primary key".to_string())?;
    let uuid = uuid::Uuid::try_parse(uuid_text)
        .map_err(|_| format!("login.uuid {uuid_text:?} is not a UUID"))?
        .hyphenated();
    let dob_ms = parse_date("dob.date", &user.dob.as_ref().and_then(|d| d.date.clone()))?;
    let registered_ms = parse_date(
        "registered.date",
        &user.registered.as_ref().and_then(|d| d.date.clone()),
    )?;
    Ok(Valid {
        user,
        uuid,
        dob_ms,
        registered_ms,
    })
}

fn append(c: &mut UserColumns, v: Valid<'_>) {
    let u = v.user;
    let name = u.name.unwrap_or_default();
    let loc = u.location.unwrap_or_default();
    let street = loc.street.unwrap_or_default();
    let coords = loc.coordinates.unwrap_or_default();
    let tz = loc.timezone.unwrap_or_default();
    let login = u.login.unwrap_or_default();
    let dob = u.dob.unwrap_or_default();
    let registered = u.registered.unwrap_or_default();
    let id = u.id.unwrap_or_default();
    let pic = u.picture.unwrap_or_default();

    c.gender.append_option(u.gender);
    c.name_title.append_option(name.title);
    c.name_first.append_option(name.first);
    c.name_last.append_option(name.last);
    c.street_number.append_option(street.number);
    c.street_name.append_option(street.name);
    c.city.append_option(loc.city);
    c.state.append_option(loc.state);
    c.country.append_option(loc.country);
    c.postcode.append_option(loc.postcode);
    c.latitude.append_option(coords.latitude);
    c.longitude.append_option(coords.longitude);
    c.tz_offset.append_option(tz.offset);
    c.tz_description.append_option(tz.description);
    c.email.append_option(u.email);
    c.uuid
        .append_value(v.uuid.encode_lower(&mut uuid::Uuid::encode_buffer()));
    c.username.append_option(login.username);
    c.dob_date.append_option(v.dob_ms);
    c.dob_age.append_option(dob.age);
    c.registered_date.append_option(v.registered_ms);
    c.registered_age.append_option(registered.age);
    c.phone.append_option(u.phone);
    c.cell.append_option(u.cell);
    c.id_name.append_option(id.name);
    c.id_value.append_option(id.value);
    c.picture_large.append_option(pic.large);
    c.picture_medium.append_option(pic.medium);
    c.picture_thumbnail.append_option(pic.thumbnail);
    c.nat.append_option(u.nat);
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
    let input = normalise_input(batch)?;
    let n = batch.num_rows();
    let mut cols = UserColumns::with_capacity(n);
    let mut rejects = Rejects::new();
    for i in 0..n {
        let partition = input.partition.value(i);
        let offset = input.offset.value(i);
        let ts = input
            .timestamp
            .as_ref()
            .and_then(|t| t.is_valid(i).then(|| t.value(i)));
        let raw = input.value.is_valid(i).then(|| input.value.value(i));
        let outcome = match raw {
            None => Err("value is null (a tombstone or an empty message)".to_string()),
            Some(raw) => validate(raw),
        };
        match outcome {
            Ok(valid) => {
                append(&mut cols, valid);
                cols.partition.append_value(partition);
                cols.offset.append_value(offset);
                cols.kafka_ts.append_option(ts);
            }
            Err(reason) => rejects.push(&input, i, &reason),
        }
    }
    Ok(Decoded {
        rows: cols.finish(now_ms)?,
        rejects: rejects.finish(now_ms)?,
    })
}
