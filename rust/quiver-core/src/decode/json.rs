//! One record's JSON: parsed by simd-json into its tape (a flat array of nodes), its values
//! read as borrowed strings and numbers, each failure worded for the rejects.
//!
//! The tape was chosen by measurement: serde structs were slower (every key matched by
//! name, unused fields skipped a token at a time), and so was sonic-rs's DOM, whose nodes
//! cost more to walk than the tape's flat array (docs/BENCHMARKS.md).

use arrow::compute::kernels::cast_utils::string_to_timestamp_nanos;
use simd_json::prelude::{TypedValue, ValueAsScalar, ValueIntoString};
use simd_json::tape::Value;
use simd_json::{Buffers, INPUT_PADDING, Tape, ValueType, fill_tape_padded};
use std::borrow::Cow;

/// Buffers reused from one record to the next.
pub(super) struct Scratch {
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

impl Scratch {
    /// `read` applied to the parsed `raw`, or why `raw` is not JSON.
    pub(super) fn parse<R>(
        &mut self,
        raw: &[u8],
        read: impl FnOnce(Value<'_, '_>) -> Result<R, String>,
    ) -> Result<R, String> {
        // simd-json unescapes strings in place, so it parses a copy of the record. The
        // copy carries the padding its SIMD loads need, which spares it a padded copy of
        // its own.
        self.json.clear();
        self.json.extend_from_slice(raw);
        self.json.extend_from_slice(&[b' '; INPUT_PADDING]);
        let mut tape = std::mem::replace(&mut self.tape, Tape(Vec::new())).reset();
        let result = fill_tape_padded(&mut self.json, raw.len(), &mut self.buffers, &mut tape)
            .map_err(invalid_json)
            .and_then(|()| read(tape.as_value()));
        self.tape = tape.reset();
        result
    }
}

fn invalid_json(e: simd_json::Error) -> String {
    let msg = e.to_string();
    format!(
        "invalid JSON: {}",
        msg.lines().next().unwrap_or("unreadable record")
    )
}

/// Why the value at `path` is not what was expected.
pub(super) fn wrong_type(path: &str, found: Value<'_, '_>, expected: &str) -> String {
    let found = match found.value_type() {
        ValueType::Null => "null",
        ValueType::Bool => "a boolean",
        ValueType::I64 | ValueType::U64 | ValueType::F64 => "a number",
        ValueType::String => "a string",
        ValueType::Object => "an object",
        ValueType::Array => "an array",
        _ => "an unsupported value",
    };
    format!("{path} is {found}, expected {expected}")
}

pub(super) fn text<'v>(v: Value<'v, 'v>, path: &str) -> Result<&'v str, String> {
    v.into_string()
        .ok_or_else(|| wrong_type(path, v, "a string"))
}

pub(super) fn int<T: TryFrom<i64>>(v: Value<'_, '_>, path: &str) -> Result<T, String> {
    v.as_i64()
        .and_then(|i| T::try_from(i).ok())
        .ok_or_else(|| wrong_type(path, v, "an integer in range"))
}

/// A number or a string, as text.
pub(super) fn number_as_text<'v>(v: Value<'v, 'v>, path: &str) -> Result<Cow<'v, str>, String> {
    match (v.into_string(), v.as_i64(), v.as_f64()) {
        (Some(s), _, _) => Ok(Cow::Borrowed(s)),
        (None, Some(i), _) => Ok(Cow::Owned(i.to_string())),
        (None, None, Some(f)) => Ok(Cow::Owned(f.to_string())),
        _ => Err(wrong_type(path, v, "a number or a string")),
    }
}

/// A number, or a string holding one.
pub(super) fn float(v: Value<'_, '_>, path: &str) -> Result<f64, String> {
    match (v.into_string(), v.cast_f64()) {
        (Some(s), _) => s
            .trim()
            .parse()
            .map_err(|_| format!("{path}: coordinate {s:?} is not a number")),
        (None, Some(f)) => Ok(f),
        _ => Err(wrong_type(path, v, "a number or a numeric string")),
    }
}

/// An ISO-8601 timestamp, as milliseconds since the epoch.
pub(super) fn timestamp_ms(v: Value<'_, '_>, path: &str) -> Result<i64, String> {
    let s = text(v, path)?;
    utc_millis(s)
        .or_else(|| {
            string_to_timestamp_nanos(s)
                .ok()
                .map(|ns| ns.div_euclid(1_000_000))
        })
        .ok_or_else(|| format!("{path} {s:?} is not an ISO-8601 timestamp"))
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
