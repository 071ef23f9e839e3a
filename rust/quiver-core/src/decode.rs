//! Kafka-shaped Arrow batch → typed `raw_users` rows + rejects.
//!
//! JSON is parsed by simd-json into its tape (a flat array of nodes), and the fields are
//! read from it as borrowed strings, so strings are copied once, into the Arrow builders.
//! Only the columns the reader asks for are converted ([`UserFields`]). A record is
//! checked completely before anything is appended, so a reject never leaves a
//! half-written row behind.

use crate::error::CoreError;
use crate::schema::{kafka_input_schema, rejects_schema, users_schema};
use arrow::array::{
    Array, ArrayBuilder, ArrayRef, AsArray, BinaryArray, BinaryBuilder, Float64Builder, Int32Array,
    Int32Builder, Int64Array, Int64Builder, RecordBatch, StringBuilder, TimestampMillisecondArray,
    TimestampMillisecondBuilder, new_null_array,
};
use arrow::compute::kernels::cast_utils::string_to_timestamp_nanos;
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, Schema};
use simd_json::prelude::{TypedValue, ValueAsScalar, ValueIntoString};
use simd_json::tape::Value;
use simd_json::{Buffers, INPUT_PADDING, Tape, ValueType, fill_tape_padded};
use std::borrow::Cow;
use std::sync::Arc;

/// The result of decoding one input batch.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// Rows in [`users_schema`] order.
    pub rows: RecordBatch,
    /// Records that could not be decoded, in [`rejects_schema`] order.
    pub rejects: RecordBatch,
}

/// The columns of [`users_schema`] a pipeline reads. The decoder converts and copies only
/// these from each record and leaves the others null: a field that no query reads costs
/// its parse alone, and a bad value in it does not reject the record. `login_uuid`, the
/// record's identity, is always read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserFields(u64);

impl UserFields {
    /// Every column: what [`decode_users`] reads.
    pub const ALL: Self = Self(u64::MAX);

    /// The columns at these positions of [`users_schema`].
    pub fn at(positions: impl IntoIterator<Item = usize>) -> Self {
        Self(positions.into_iter().fold(0, |bits, i| bits | 1 << i))
    }

    fn reads(self, column: usize) -> bool {
        column == column::LOGIN_UUID
            || column >= column::KAFKA_PARTITION
            || self.0 >> column & 1 == 1
    }
}

/// Positions of the JSON-derived columns in [`users_schema`] (checked by a test).
mod column {
    pub const GENDER: usize = 0;
    pub const NAME_TITLE: usize = 1;
    pub const NAME_FIRST: usize = 2;
    pub const NAME_LAST: usize = 3;
    pub const STREET_NUMBER: usize = 4;
    pub const STREET_NAME: usize = 5;
    pub const CITY: usize = 6;
    pub const STATE: usize = 7;
    pub const COUNTRY: usize = 8;
    pub const POSTCODE: usize = 9;
    pub const LATITUDE: usize = 10;
    pub const LONGITUDE: usize = 11;
    pub const TZ_OFFSET: usize = 12;
    pub const TZ_DESCRIPTION: usize = 13;
    pub const EMAIL: usize = 14;
    pub const LOGIN_UUID: usize = 15;
    pub const USERNAME: usize = 16;
    pub const DOB_DATE: usize = 17;
    pub const DOB_AGE: usize = 18;
    pub const REGISTERED_DATE: usize = 19;
    pub const REGISTERED_AGE: usize = 20;
    pub const PHONE: usize = 21;
    pub const CELL: usize = 22;
    pub const ID_NAME: usize = 23;
    pub const ID_VALUE: usize = 24;
    pub const PICTURE_LARGE: usize = 25;
    pub const PICTURE_MEDIUM: usize = 26;
    pub const PICTURE_THUMBNAIL: usize = 27;
    pub const NAT: usize = 28;
    /// The first of the columns that do not come from the JSON.
    pub const KAFKA_PARTITION: usize = 29;
}

/// The fields of one randomuser record, borrowed from its parsed JSON.
struct User<'v> {
    gender: Option<&'v str>,
    name_title: Option<&'v str>,
    name_first: Option<&'v str>,
    name_last: Option<&'v str>,
    street_number: Option<i64>,
    street_name: Option<&'v str>,
    city: Option<&'v str>,
    state: Option<&'v str>,
    country: Option<&'v str>,
    postcode: Option<Cow<'v, str>>,
    latitude: Option<f64>,
    longitude: Option<f64>,
    tz_offset: Option<&'v str>,
    tz_description: Option<&'v str>,
    email: Option<&'v str>,
    uuid: uuid::fmt::Hyphenated,
    username: Option<&'v str>,
    dob_ms: Option<i64>,
    dob_age: Option<i32>,
    registered_ms: Option<i64>,
    registered_age: Option<i32>,
    phone: Option<&'v str>,
    cell: Option<&'v str>,
    id_name: Option<&'v str>,
    id_value: Option<&'v str>,
    picture_large: Option<&'v str>,
    picture_medium: Option<&'v str>,
    picture_thumbnail: Option<&'v str>,
    nat: Option<&'v str>,
}

/// One field of a record, found or not, with its path for the reasons of rejects. Absent
/// and null fields read as `None`: every field of the record is optional except
/// `login.uuid`.
#[derive(Clone, Copy)]
struct Field<'v> {
    value: Option<Value<'v, 'v>>,
    parent: &'static str,
    key: &'static str,
}

/// The fields `keys` of a JSON object (absent: an object without fields), found in one
/// pass over its entries. The search for each entry starts
/// after the last key found, so entries in the API's order cost one comparison each;
/// looking the keys up one by one would scan the object once per key.
fn fields<'v, const N: usize>(
    object: Option<Value<'v, 'v>>,
    parent: &'static str,
    keys: [&'static str; N],
) -> [Field<'v>; N] {
    let mut found = keys.map(|key| Field {
        value: None,
        parent,
        key,
    });
    let Some(entries) = object.and_then(|o| o.as_object()) else {
        return found;
    };
    let mut next = 0;
    for (name, value) in entries.iter() {
        let hit = (0..N)
            .map(|i| (next + i) % N)
            .find(|&j| keys[j] == name && found[j].value.is_none());
        if let Some(j) = hit {
            found[j].value = Some(value).filter(|v| v.value_type() != ValueType::Null);
            next = j + 1;
        }
    }
    found
}

fn invalid_json(e: simd_json::Error) -> String {
    let msg = e.to_string();
    format!(
        "invalid JSON: {}",
        msg.lines().next().unwrap_or("unreadable record")
    )
}

impl<'v> Field<'v> {
    fn wrong_type(&self, found: Value<'v, 'v>, expected: &str) -> String {
        let found = match found.value_type() {
            ValueType::Null => "null",
            ValueType::Bool => "a boolean",
            ValueType::I64 | ValueType::U64 | ValueType::F64 => "a number",
            ValueType::String => "a string",
            ValueType::Object => "an object",
            ValueType::Array => "an array",
            _ => "an unsupported value",
        };
        format!("{} is {found}, expected {expected}", self.path())
    }

    fn path(&self) -> String {
        if self.parent.is_empty() {
            self.key.to_string()
        } else {
            format!("{}.{}", self.parent, self.key)
        }
    }

    /// This field, or an absent one when `fields` does not read `column`.
    fn for_column(self, fields: UserFields, column: usize) -> Self {
        if fields.reads(column) {
            self
        } else {
            Self {
                value: None,
                ..self
            }
        }
    }

    fn read<T>(
        &self,
        convert: impl FnOnce(Value<'v, 'v>) -> Result<T, String>,
    ) -> Result<Option<T>, String> {
        self.value.map(convert).transpose()
    }

    fn object(&self) -> Result<Option<Value<'v, 'v>>, String> {
        self.read(|v| {
            v.is_object()
                .then_some(v)
                .ok_or_else(|| self.wrong_type(v, "an object"))
        })
    }

    fn text(&self) -> Result<Option<&'v str>, String> {
        self.read(|v| {
            v.into_string()
                .ok_or_else(|| self.wrong_type(v, "a string"))
        })
    }

    fn int<T: TryFrom<i64>>(&self) -> Result<Option<T>, String> {
        self.read(|v| {
            v.as_i64()
                .and_then(|i| T::try_from(i).ok())
                .ok_or_else(|| self.wrong_type(v, "an integer in range"))
        })
    }

    /// A number or a string: postcodes are numbers for most nationalities and strings
    /// for CA, GB, NO and others.
    fn number_as_text(&self) -> Result<Option<Cow<'v, str>>, String> {
        self.read(|v| match (v.into_string(), v.as_i64(), v.as_f64()) {
            (Some(s), _, _) => Ok(Cow::Borrowed(s)),
            (None, Some(i), _) => Ok(Cow::Owned(i.to_string())),
            (None, None, Some(f)) => Ok(Cow::Owned(f.to_string())),
            _ => Err(self.wrong_type(v, "a number or a string")),
        })
    }

    /// A number, or a string holding one: the API sends coordinates as strings.
    fn float(&self) -> Result<Option<f64>, String> {
        self.read(|v| match (v.into_string(), v.cast_f64()) {
            (Some(s), _) => s
                .trim()
                .parse()
                .map_err(|_| format!("{}: coordinate {s:?} is not a number", self.path())),
            (None, Some(f)) => Ok(f),
            _ => Err(self.wrong_type(v, "a number or a numeric string")),
        })
    }

    /// An ISO-8601 timestamp, as milliseconds since the epoch.
    fn timestamp_ms(&self) -> Result<Option<i64>, String> {
        self.text()?
            .map(|s| {
                utc_millis(s)
                    .or_else(|| {
                        string_to_timestamp_nanos(s)
                            .ok()
                            .map(|ns| ns.div_euclid(1_000_000))
                    })
                    .ok_or_else(|| format!("{} {s:?} is not an ISO-8601 timestamp", self.path()))
            })
            .transpose()
    }
}

/// The API's own form, `YYYY-MM-DDTHH:MM:SS.mmmZ`, read directly; `None` for anything
/// else, which arrow-cast's general parser then reads. The general parser cost 4 % of
/// decoding for the two dates of every record.
fn utc_millis(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 24 || [b[4], b[7], b[10], b[13], b[16], b[19], b[23]] != *b"--T::.Z" {
        return None;
    }
    let number = |from: usize, to: usize| {
        b[from..to].iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    let (year, month, day) = (number(0, 4)?, number(5, 7)?, number(8, 10)?);
    let (hour, minute, second) = (number(11, 13)?, number(14, 16)?, number(17, 19)?);
    let millis = number(20, 23)?;
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => return None,
    };
    if day == 0 || day > month_days || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    // Days since 1970-01-01 in the proleptic Gregorian calendar, counting years from
    // March so that the leap day ends a year (H. Hinnant's `days_from_civil`).
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * ((i64::from(month) + 9) % 12) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    let seconds = i64::from(hour * 3600 + minute * 60 + second);
    Some((days * 86_400 + seconds) * 1000 + i64::from(millis))
}

/// The input columns after normalisation to [`kafka_input_schema`] types.
struct Input {
    value: BinaryArray,
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

fn normalise_input(batch: &RecordBatch) -> Result<Input, CoreError> {
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

struct UserColumns {
    /// The columns filled; the others stay empty and are null in the batch.
    reads: UserFields,
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
    fn with_capacity(n: usize, reads: UserFields) -> Self {
        let s = |bytes_per_row: usize| StringBuilder::with_capacity(n, n * bytes_per_row);
        let ts = || TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC");
        Self {
            reads,
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
        let mut columns: Vec<ArrayRef> = vec![
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
        let schema = users_schema();
        for (i, column) in columns.iter_mut().enumerate() {
            if !self.reads.reads(i) {
                *column = new_null_array(schema.field(i).data_type(), n);
            }
        }
        Ok(RecordBatch::try_new(schema, columns)?)
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
    fn push(&mut self, input: &Input, i: usize, reason: &str) {
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

/// Decodes one record into `columns`. Every field is read and checked before anything is
/// appended, so a reject never leaves a half-written row behind.
///
/// The record is parsed into simd-json's tape and the fields are read from it. Serde
/// structs were slower (every key matched by name, unused fields skipped a token at a
/// time), and so was sonic-rs's DOM, whose nodes cost more to walk than the tape's flat
/// array of nodes (docs/BENCHMARKS.md).
fn decode_record(
    raw: &[u8],
    wanted: UserFields,
    scratch: &mut Scratch,
    columns: &mut UserColumns,
) -> Result<(), String> {
    // simd-json unescapes strings in place, so it parses a copy of the record. The copy
    // carries the padding its SIMD loads need, which spares it a padded copy of its own.
    scratch.json.clear();
    scratch.json.extend_from_slice(raw);
    scratch.json.extend_from_slice(&[b' '; INPUT_PADDING]);
    let mut tape = std::mem::replace(&mut scratch.tape, Tape(Vec::new())).reset();
    let read = fill_tape_padded(
        &mut scratch.json,
        raw.len(),
        &mut scratch.buffers,
        &mut tape,
    )
    .map_err(invalid_json)
    .and_then(|()| read_record(tape.as_value(), wanted, columns));
    scratch.tape = tape.reset();
    read
}

/// Reads the fields of one parsed record into `columns`.
fn read_record(
    record: Value<'_, '_>,
    wanted: UserFields,
    columns: &mut UserColumns,
) -> Result<(), String> {
    if !record.is_object() {
        return Err("invalid JSON: a record must be a JSON object".into());
    }
    let [
        gender,
        name,
        location,
        email,
        login,
        dob,
        registered,
        phone,
        cell,
        id,
        picture,
        nat,
    ] = fields(
        Some(record),
        "",
        [
            "gender",
            "name",
            "location",
            "email",
            "login",
            "dob",
            "registered",
            "phone",
            "cell",
            "id",
            "picture",
            "nat",
        ],
    );
    let [uuid, username] = fields(login.object()?, "login", ["uuid", "username"]);
    let uuid_text = uuid
        .text()?
        .ok_or_else(|| "login.uuid is missing; it is the primary key".to_string())?;
    let uuid = uuid::Uuid::try_parse(uuid_text)
        .map_err(|_| format!("login.uuid {uuid_text:?} is not a UUID"))?
        .hyphenated();
    let [title, first, last] = fields(name.object()?, "name", ["title", "first", "last"]);
    let [
        street,
        city,
        state,
        country,
        postcode,
        coordinates,
        timezone,
    ] = fields(
        location.object()?,
        "location",
        [
            "street",
            "city",
            "state",
            "country",
            "postcode",
            "coordinates",
            "timezone",
        ],
    );
    let [street_number, street_name] =
        fields(street.object()?, "location.street", ["number", "name"]);
    let [latitude, longitude] = fields(
        coordinates.object()?,
        "location.coordinates",
        ["latitude", "longitude"],
    );
    let [tz_offset, tz_description] = fields(
        timezone.object()?,
        "location.timezone",
        ["offset", "description"],
    );
    let [dob_date, dob_age] = fields(dob.object()?, "dob", ["date", "age"]);
    let [registered_date, registered_age] =
        fields(registered.object()?, "registered", ["date", "age"]);
    let [id_name, id_value] = fields(id.object()?, "id", ["name", "value"]);
    let [large, medium, thumbnail] = fields(
        picture.object()?,
        "picture",
        ["large", "medium", "thumbnail"],
    );
    let user = User {
        gender: gender.for_column(wanted, column::GENDER).text()?,
        name_title: title.for_column(wanted, column::NAME_TITLE).text()?,
        name_first: first.for_column(wanted, column::NAME_FIRST).text()?,
        name_last: last.for_column(wanted, column::NAME_LAST).text()?,
        street_number: street_number
            .for_column(wanted, column::STREET_NUMBER)
            .int()?,
        street_name: street_name.for_column(wanted, column::STREET_NAME).text()?,
        city: city.for_column(wanted, column::CITY).text()?,
        state: state.for_column(wanted, column::STATE).text()?,
        country: country.for_column(wanted, column::COUNTRY).text()?,
        postcode: postcode
            .for_column(wanted, column::POSTCODE)
            .number_as_text()?,
        latitude: latitude.for_column(wanted, column::LATITUDE).float()?,
        longitude: longitude.for_column(wanted, column::LONGITUDE).float()?,
        tz_offset: tz_offset.for_column(wanted, column::TZ_OFFSET).text()?,
        tz_description: tz_description
            .for_column(wanted, column::TZ_DESCRIPTION)
            .text()?,
        email: email.for_column(wanted, column::EMAIL).text()?,
        uuid,
        username: username.for_column(wanted, column::USERNAME).text()?,
        dob_ms: dob_date
            .for_column(wanted, column::DOB_DATE)
            .timestamp_ms()?,
        dob_age: dob_age.for_column(wanted, column::DOB_AGE).int()?,
        registered_ms: registered_date
            .for_column(wanted, column::REGISTERED_DATE)
            .timestamp_ms()?,
        registered_age: registered_age
            .for_column(wanted, column::REGISTERED_AGE)
            .int()?,
        phone: phone.for_column(wanted, column::PHONE).text()?,
        cell: cell.for_column(wanted, column::CELL).text()?,
        id_name: id_name.for_column(wanted, column::ID_NAME).text()?,
        id_value: id_value.for_column(wanted, column::ID_VALUE).text()?,
        picture_large: large.for_column(wanted, column::PICTURE_LARGE).text()?,
        picture_medium: medium.for_column(wanted, column::PICTURE_MEDIUM).text()?,
        picture_thumbnail: thumbnail
            .for_column(wanted, column::PICTURE_THUMBNAIL)
            .text()?,
        nat: nat.for_column(wanted, column::NAT).text()?,
    };
    append(columns, user);
    Ok(())
}

fn append(c: &mut UserColumns, u: User<'_>) {
    let reads = c.reads;
    macro_rules! put {
        ($($builder:ident = $value:expr, $column:ident;)*) => {$(
            if reads.reads(column::$column) {
                c.$builder.append_option($value);
            }
        )*};
    }
    put! {
        gender = u.gender, GENDER;
        name_title = u.name_title, NAME_TITLE;
        name_first = u.name_first, NAME_FIRST;
        name_last = u.name_last, NAME_LAST;
        street_number = u.street_number, STREET_NUMBER;
        street_name = u.street_name, STREET_NAME;
        city = u.city, CITY;
        state = u.state, STATE;
        country = u.country, COUNTRY;
        postcode = u.postcode, POSTCODE;
        latitude = u.latitude, LATITUDE;
        longitude = u.longitude, LONGITUDE;
        tz_offset = u.tz_offset, TZ_OFFSET;
        tz_description = u.tz_description, TZ_DESCRIPTION;
        email = u.email, EMAIL;
        username = u.username, USERNAME;
        dob_date = u.dob_ms, DOB_DATE;
        dob_age = u.dob_age, DOB_AGE;
        registered_date = u.registered_ms, REGISTERED_DATE;
        registered_age = u.registered_age, REGISTERED_AGE;
        phone = u.phone, PHONE;
        cell = u.cell, CELL;
        id_name = u.id_name, ID_NAME;
        id_value = u.id_value, ID_VALUE;
        picture_large = u.picture_large, PICTURE_LARGE;
        picture_medium = u.picture_medium, PICTURE_MEDIUM;
        picture_thumbnail = u.picture_thumbnail, PICTURE_THUMBNAIL;
        nat = u.nat, NAT;
    }
    c.uuid
        .append_value(u.uuid.encode_lower(&mut uuid::Uuid::encode_buffer()));
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

/// Buffers reused from one record to the next.
struct Scratch {
    json: Vec<u8>,
    buffers: Buffers,
    /// Empty between records.
    tape: Tape<'static>,
}

impl Default for Scratch {
    fn default() -> Self {
        Self {
            json: Vec::new(),
            buffers: Buffers::default(),
            tape: Tape(Vec::new()),
        }
    }
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
        let parsed = match input.value.is_valid(i).then(|| input.value.value(i)) {
            None => Err("value is null (a tombstone or an empty message)".to_string()),
            Some(raw) => decode_record(raw, wanted, &mut scratch, &mut cols),
        };
        match parsed {
            Ok(()) => {
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

#[cfg(test)]
mod tests {
    use super::utc_millis;
    use arrow::compute::kernels::cast_utils::string_to_timestamp_nanos;

    fn general(s: &str) -> Option<i64> {
        string_to_timestamp_nanos(s)
            .ok()
            .map(|ns| ns.div_euclid(1_000_000))
    }

    #[test]
    fn the_api_form_reads_as_the_general_parser_reads_it() {
        // Every day of every third year that nanoseconds since the epoch can hold (the
        // general parser's range), at a few times of day, and of leap and century years.
        let mut checked = 0;
        for year in (1678..=2261)
            .step_by(3)
            .chain([1700, 1900, 1969, 1970, 2000, 2024])
        {
            for month in 1..=12 {
                for day in 1..=31 {
                    for time in ["00:00:00.000", "12:34:56.789", "23:59:59.999"] {
                        let s = format!("{year:04}-{month:02}-{day:02}T{time}Z");
                        let expected = general(&s);
                        assert_eq!(utc_millis(&s).is_some(), expected.is_some(), "{s}");
                        if let Some(ms) = utc_millis(&s) {
                            assert_eq!(Some(ms), expected, "{s}");
                            checked += 1;
                        }
                    }
                }
            }
        }
        assert!(checked > 100_000, "{checked}");
    }

    #[test]
    fn dates_beyond_the_general_parsers_range_are_read() {
        assert_eq!(
            utc_millis("0001-01-01T00:00:00.000Z"),
            Some(-62_135_596_800_000)
        );
        assert_eq!(
            utc_millis("9999-12-31T23:59:59.999Z"),
            Some(253_402_300_799_999)
        );
    }

    #[test]
    fn other_forms_are_left_to_the_general_parser() {
        for s in [
            "2000-01-01T00:00:00Z",
            "2000-01-01T00:00:00.123+01:00",
            "2000-01-01 00:00:00.123Z",
            "2000-13-01T00:00:00.000Z",
            "2000-02-30T00:00:00.000Z",
            "2000-01-01T24:00:00.000Z",
            "2000-01-01T00:00:60.000Z",
            "20a0-01-01T00:00:00.000Z",
            "+200-01-01T00:00:00.000Z",
            "2000-01-01T00:00:00.000z",
            "yesterday",
        ] {
            assert_eq!(utc_millis(s), None, "{s}");
        }
    }
}
