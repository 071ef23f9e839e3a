//! The randomuser 1.4 record, described once: each field the pipeline decodes, where it is
//! in the API's JSON and how its value is read. The `raw_users` columns
//! ([`crate::schema::users_schema`]), the decoder's walk over a record and its column
//! builders all follow from [`FIELDS`], so a new field is one more line here (and the SQL
//! that wants it).

use arrow::datatypes::{DataType, Field};

use crate::schema::ts_ms;

/// How a field's JSON value is read, and so the Arrow type of its column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A string (Utf8).
    Text,
    /// A number or a string, kept as text (Utf8): postcodes are numbers for most
    /// nationalities and strings for CA, GB, NO and others.
    NumberAsText,
    /// An integer in range (Int64).
    Int64,
    /// An integer in range (Int32).
    Int32,
    /// A number, or a string holding one (Float64): the API sends coordinates as strings.
    Float,
    /// An ISO-8601 timestamp, as milliseconds in UTC.
    Timestamp,
    /// The record's identity: a UUID, required, kept in its canonical lower-case
    /// hyphenated form (Utf8, not null). Exactly one field has this kind.
    Uuid,
}

impl Kind {
    pub fn data_type(self) -> DataType {
        match self {
            Kind::Text | Kind::NumberAsText | Kind::Uuid => DataType::Utf8,
            Kind::Int64 => DataType::Int64,
            Kind::Int32 => DataType::Int32,
            Kind::Float => DataType::Float64,
            Kind::Timestamp => ts_ms(),
        }
    }
}

/// One field of the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordField {
    /// Where the value is in a record: its keys from the top, joined by dots.
    pub path: &'static str,
    pub kind: Kind,
    /// The bytes a value takes on average, which sizes a batch's text buffers up front.
    pub bytes: usize,
}

impl RecordField {
    /// The column's name: the path joined with `_` (`location.street.number` is
    /// `location_street_number`), so that a pipeline's SQL needs no struct access.
    pub fn column(&self) -> String {
        self.path.replace('.', "_")
    }

    /// The column in [`crate::schema::users_schema`]; every value but the identity may
    /// be absent.
    pub fn arrow_field(&self) -> Field {
        Field::new(
            self.column(),
            self.kind.data_type(),
            self.kind != Kind::Uuid,
        )
    }
}

const fn field(path: &'static str, kind: Kind, bytes: usize) -> RecordField {
    RecordField { path, kind, bytes }
}

/// The decoded fields, in the API's order: the decoder finds a record's keys in one pass
/// when they come in this order. Login secrets (password, salt, hashes) are deliberately
/// not decoded.
pub const FIELDS: &[RecordField] = &[
    field("gender", Kind::Text, 6),
    field("name.title", Kind::Text, 4),
    field("name.first", Kind::Text, 8),
    field("name.last", Kind::Text, 8),
    field("location.street.number", Kind::Int64, 0),
    field("location.street.name", Kind::Text, 12),
    field("location.city", Kind::Text, 10),
    field("location.state", Kind::Text, 10),
    field("location.country", Kind::Text, 10),
    field("location.postcode", Kind::NumberAsText, 6),
    field("location.coordinates.latitude", Kind::Float, 0),
    field("location.coordinates.longitude", Kind::Float, 0),
    field("location.timezone.offset", Kind::Text, 6),
    field("location.timezone.description", Kind::Text, 32),
    field("email", Kind::Text, 28),
    field("login.uuid", Kind::Uuid, 36),
    field("login.username", Kind::Text, 16),
    field("dob.date", Kind::Timestamp, 0),
    field("dob.age", Kind::Int32, 0),
    field("registered.date", Kind::Timestamp, 0),
    field("registered.age", Kind::Int32, 0),
    field("phone", Kind::Text, 14),
    field("cell", Kind::Text, 14),
    field("id.name", Kind::Text, 4),
    field("id.value", Kind::Text, 12),
    field("picture.large", Kind::Text, 48),
    field("picture.medium", Kind::Text, 56),
    field("picture.thumbnail", Kind::Text, 56),
    field("nat", Kind::Text, 2),
];

/// The position of the identity (the one [`Kind::Uuid`] field) in [`FIELDS`].
pub const IDENTITY: usize = {
    let mut i = 0;
    while !matches!(FIELDS[i].kind, Kind::Uuid) {
        i += 1;
    }
    i
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_field_is_the_identity_and_every_path_is_unique() {
        let identities = FIELDS.iter().filter(|f| f.kind == Kind::Uuid).count();
        assert_eq!(identities, 1);
        assert_eq!(FIELDS[IDENTITY].path, "login.uuid");
        let mut columns: Vec<String> = FIELDS.iter().map(RecordField::column).collect();
        columns.sort();
        columns.dedup();
        assert_eq!(
            columns.len(),
            FIELDS.len(),
            "two paths give one column name"
        );
    }

    #[test]
    fn a_path_is_never_both_a_value_and_an_object() {
        for a in FIELDS {
            for b in FIELDS {
                assert!(
                    !b.path.starts_with(&format!("{}.", a.path)),
                    "{} is a value and {} reads inside it",
                    a.path,
                    b.path
                );
            }
        }
    }
}
