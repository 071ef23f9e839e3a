//! Decoder: randomuser 1.4 quirks, rejects, and input batch shapes.

use arrow::array::{
    Array, AsArray, BinaryArray, Int32Array, Int64Array, LargeBinaryArray, RecordBatch,
    StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{
    DataType, Field, Float64Type, Int32Type, Int64Type, Schema, TimeUnit, TimestampMillisecondType,
};
use quiver_core::record::{FIELDS, Kind};
use quiver_core::schema::users_schema;
use quiver_core::{CoreError, UserFields, decode_user_fields, decode_users};
use quiver_testkit::kafka_batch;
use std::sync::Arc;

const NOW: i64 = 1_700_000_000_000;

const GB_USER: &str = r#"{"gender":"female","name":{"title":"Miss","first":"Zoë","last":"Ødegård"},"location":{"street":{"number":4127,"name":"Rue de l'Abbé-Migne"},"city":"Leeds","state":"West Yorkshire","country":"United Kingdom","postcode":"L4 7XY","coordinates":{"latitude":"-69.8246","longitude":"134.8719"},"timezone":{"offset":"+9:30","description":"Adelaide, Darwin"}},"email":"zoe@example.com","login":{"uuid":"7A0EED16-9430-4D68-901F-C0D4C1C3BF00","username":"yellowpeacock117","password":"addison","salt":"sld1yGtd","md5":"ab54ac4c0be9480ae8fa5e9e2a5196a3","sha1":"edcf2ce613cbdea349133c52dc2f3b83168dc51b","sha256":"48df5229235ada28389b91e60a935e4f9b73eb4bdb855ef9258a1751f10bdc5d"},"dob":{"date":"2000-01-01T00:00:00.123Z","age":24},"registered":{"date":"1970-01-02T00:00:00.001Z","age":54},"phone":"017683 08483","cell":"07525 394537","id":{"name":"NINO","value":"GL 36 37 10 M"},"picture":{"large":"https://randomuser.me/api/portraits/women/60.jpg","medium":"https://randomuser.me/api/portraits/med/women/60.jpg","thumbnail":"https://randomuser.me/api/portraits/thumb/women/60.jpg"},"nat":"GB"}"#;

const DE_USER: &str = r#"{"gender":"male","name":{"title":"Mr","first":"Jürgen","last":"Müller"},"location":{"street":{"number":7,"name":"Hauptstraße"},"city":"Köln","state":"NRW","country":"Germany","postcode":50667,"coordinates":{"latitude":"50.9375","longitude":"6.9603"},"timezone":{"offset":"+1:00","description":"Berlin"}},"email":"j@example.com","login":{"uuid":"0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0","username":"jm"},"dob":{"date":"1980-05-06T07:08:09.010Z","age":44},"registered":{"date":"2010-01-01T00:00:00.000Z","age":14},"phone":"0171","cell":"0172","id":{"name":"","value":null},"picture":{"medium":"m.jpg"},"nat":"DE"}"#;

fn one(values: &[&str]) -> RecordBatch {
    let v: Vec<Option<&[u8]>> = values.iter().map(|s| Some(s.as_bytes())).collect();
    kafka_batch(&v, 3, 100)
}

fn col<'a>(b: &'a RecordBatch, name: &str) -> &'a dyn Array {
    b.column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name}"))
        .as_ref()
}

fn s<'a>(b: &'a RecordBatch, name: &str) -> &'a StringArray {
    col(b, name).as_string::<i32>()
}

#[test]
fn quirks_of_the_api_are_decoded() {
    let d = decode_users(&one(&[GB_USER, DE_USER]), NOW).unwrap();
    assert_eq!(d.rejects.num_rows(), 0, "{:?}", d.rejects);
    let r = &d.rows;
    assert_eq!(r.num_rows(), 2);
    // postcode: string for GB, number for DE, both as text
    assert_eq!(s(r, "location_postcode").value(0), "L4 7XY");
    assert_eq!(s(r, "location_postcode").value(1), "50667");
    // id.value null
    assert_eq!(s(r, "id_value").value(0), "GL 36 37 10 M");
    assert!(s(r, "id_value").is_null(1));
    // street.number is an integer
    let num = col(r, "location_street_number").as_primitive::<Int64Type>();
    assert_eq!((num.value(0), num.value(1)), (4127, 7));
    // coordinates arrive as strings
    let lat = col(r, "location_coordinates_latitude").as_primitive::<Float64Type>();
    assert_eq!(lat.value(0), -69.8246);
    // ISO dates with milliseconds and Z; epoch values worked out by hand
    let dob = col(r, "dob_date").as_primitive::<TimestampMillisecondType>();
    assert_eq!(dob.value(0), 946_684_800_123);
    let reg = col(r, "registered_date").as_primitive::<TimestampMillisecondType>();
    assert_eq!(reg.value(0), 86_400_001);
    assert_eq!(col(r, "dob_age").as_primitive::<Int32Type>().value(1), 44);
    // uuid normalised to lower case
    assert_eq!(
        s(r, "login_uuid").value(0),
        "7a0eed16-9430-4d68-901f-c0d4c1c3bf00"
    );
    // non-ASCII survives
    assert_eq!(s(r, "name_first").value(0), "Zoë");
    assert_eq!(s(r, "location_street_name").value(1), "Hauptstraße");
    // missing optional fields are null
    assert!(s(r, "picture_large").is_null(1));
    assert_eq!(s(r, "picture_medium").value(1), "m.jpg");
    // lineage
    let part = col(r, "kafka_partition").as_primitive::<Int32Type>();
    let off = col(r, "kafka_offset").as_primitive::<Int64Type>();
    assert_eq!((part.value(1), off.value(1)), (3, 101));
    let processed = col(r, "processed_at").as_primitive::<TimestampMillisecondType>();
    assert_eq!(processed.value(0), NOW);
}

#[test]
fn fields_are_found_in_any_order_and_the_first_of_a_repeated_key_wins() {
    let reordered = r#"{"nat":"GB","picture":{"thumbnail":"t","medium":"m"},"id":{"value":null,"name":"NINO"},"login":{"username":"u","uuid":"7a0eed16-9430-4d68-901f-c0d4c1c3bf00"},"name":{"last":"Ødegård","first":"Zoë","first":"Other"},"location":{"postcode":"L4 7XY","street":{"name":"High St","number":4127}},"gender":"female"}"#;
    let d = decode_users(&one(&[reordered]), NOW).unwrap();
    assert_eq!(d.rejects.num_rows(), 0, "{:?}", d.rejects);
    let r = &d.rows;
    assert_eq!(s(r, "nat").value(0), "GB");
    assert_eq!(s(r, "gender").value(0), "female");
    assert_eq!(s(r, "name_first").value(0), "Zoë");
    assert_eq!(s(r, "name_last").value(0), "Ødegård");
    assert_eq!(s(r, "login_username").value(0), "u");
    assert_eq!(s(r, "id_name").value(0), "NINO");
    assert!(s(r, "id_value").is_null(0));
    assert_eq!(s(r, "picture_medium").value(0), "m");
    assert_eq!(s(r, "location_street_name").value(0), "High St");
    let num = col(r, "location_street_number").as_primitive::<Int64Type>();
    assert_eq!(num.value(0), 4127);
}

#[test]
fn numbers_beyond_64_bits_in_fields_not_used_are_accepted() {
    let rec = r#"{"login":{"uuid":"0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0","salt":123456789012345678901234567890},"extra":[-98765432109876543210,1e300]}"#;
    let d = decode_users(&one(&[rec]), NOW).unwrap();
    assert_eq!(d.rejects.num_rows(), 0, "{:?}", d.rejects);
    assert_eq!(d.rows.num_rows(), 1);
}

#[test]
fn escaped_strings_are_unescaped() {
    let rec = r#"{"login":{"uuid":"0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"},"name":{"first":"Z\u00f6e \"Q\""}}"#;
    let d = decode_users(&one(&[rec]), NOW).unwrap();
    assert_eq!(s(&d.rows, "name_first").value(0), "Zöe \"Q\"");
}

/// Each field of the record table is read from its own place in the JSON: a full record's
/// columns are all filled, and its text fields hold the strings found at their paths by a
/// generic JSON parse (not the decoder).
#[test]
fn every_field_of_the_record_is_read_from_its_path() {
    use sonic_rs::JsonValueTrait;
    let d = decode_users(&one(&[GB_USER]), NOW).unwrap();
    let json: sonic_rs::Value = sonic_rs::from_str(GB_USER).unwrap();
    for field in FIELDS {
        let column = field.column();
        assert!(col(&d.rows, &column).is_valid(0), "{} is null", field.path);
        if field.kind == Kind::Text {
            let value = field
                .path
                .split('.')
                .try_fold(&json, |v, key| v.get(key))
                .and_then(|v| v.as_str());
            assert_eq!(Some(s(&d.rows, &column).value(0)), value, "{}", field.path);
        }
    }
}

#[test]
fn bad_records_go_to_rejects_and_the_rest_is_kept() {
    let cases: &[(&str, &str)] = &[
        ("{not json", "invalid JSON"),
        (
            r#"{"login":{"uuid":"0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"},"name":{"first":42}}"#,
            "name.first is a number, expected a string",
        ),
        (r#"{"name":{"first":"x"}}"#, "login.uuid is missing"),
        (r#"[1, 2]"#, "a record must be a JSON object"),
        (
            r#"{"login":{"uuid":"0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"}} trailing"#,
            "invalid JSON",
        ),
        (
            r#"{"login":{"uuid":"0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0","salt":[1,}}"#,
            "invalid JSON",
        ),
        (
            r#"{"login":{"uuid":"0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"},"location":"Leeds"}"#,
            "location is a string, expected an object",
        ),
        (
            r#"{"login":{"uuid":"0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"},"dob":{"age":3000000000}}"#,
            "dob.age is a number, expected an integer in range",
        ),
        (r#"{"login":{"uuid":"not-a-uuid"}}"#, "is not a UUID"),
        (
            r#"{"login":{"uuid":"0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"},"dob":{"date":"yesterday"}}"#,
            "dob.date",
        ),
        (
            r#"{"login":{"uuid":"0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"},"location":{"coordinates":{"latitude":"north"}}}"#,
            "coordinate",
        ),
        (
            r#"{"login":{"uuid":"0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"},"location":{"postcode":true}}"#,
            "location.postcode is a boolean, expected a number or a string",
        ),
    ];
    let mut values: Vec<Option<&[u8]>> = vec![Some(GB_USER.as_bytes())];
    values.extend(cases.iter().map(|(v, _)| Some(v.as_bytes())));
    values.push(None);
    values.push(Some(b"\xff\xfe{}"));
    let batch = kafka_batch(&values, 5, 1000);
    let d = decode_users(&batch, NOW).unwrap();

    assert_eq!(d.rows.num_rows(), 1);
    assert_eq!(s(&d.rows, "name_first").value(0), "Zoë");
    let n = cases.len() + 2;
    assert_eq!(d.rejects.num_rows(), n);
    let rj = &d.rejects;
    let reason = s(rj, "reason");
    let offset = col(rj, "kafka_offset").as_primitive::<Int64Type>();
    let partition = col(rj, "kafka_partition").as_primitive::<Int32Type>();
    let raw = col(rj, "raw_value").as_binary::<i32>();
    for (i, (value, expected)) in cases.iter().enumerate() {
        assert!(
            reason.value(i).contains(expected),
            "case {i}: reason {:?} should mention {expected:?}",
            reason.value(i)
        );
        assert_eq!(offset.value(i), 1001 + i as i64);
        assert_eq!(partition.value(i), 5);
        assert_eq!(raw.value(i), value.as_bytes());
    }
    assert!(reason.value(n - 2).contains("value is null"));
    assert!(raw.is_null(n - 2));
    assert!(reason.value(n - 1).contains("invalid JSON"));
    assert_eq!(raw.value(n - 1), b"\xff\xfe{}");
    assert_eq!(s(rj, "kafka_topic").value(0), "users_created");
}

#[test]
fn input_columns_are_found_by_name_and_widened() {
    // LargeBinary values, Int64 partition, microsecond timestamps, no key or topic,
    // columns in another order: all taken.
    let schema = Arc::new(Schema::new(vec![
        Field::new(
            "timestamp",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new("offset", DataType::Int64, false),
        Field::new("partition", DataType::Int64, false),
        Field::new("value", DataType::LargeBinary, true),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(TimestampMicrosecondArray::from(vec![1_500_000]).with_timezone("UTC")),
            Arc::new(Int64Array::from(vec![9])),
            Arc::new(Int64Array::from(vec![2])),
            Arc::new(LargeBinaryArray::from(vec![Some(DE_USER.as_bytes())])),
        ],
    )
    .unwrap();
    let d = decode_users(&batch, NOW).unwrap();
    assert_eq!(d.rows.num_rows(), 1);
    let ts = col(&d.rows, "kafka_timestamp").as_primitive::<TimestampMillisecondType>();
    assert_eq!(ts.value(0), 1_500);
    assert_eq!(
        col(&d.rows, "kafka_partition")
            .as_primitive::<Int32Type>()
            .value(0),
        2
    );
}

#[test]
fn a_batch_of_the_wrong_shape_is_a_typed_error() {
    let missing_value = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("partition", DataType::Int32, false),
            Field::new("offset", DataType::Int64, false),
        ])),
        vec![
            Arc::new(Int32Array::from(vec![0])),
            Arc::new(Int64Array::from(vec![0])),
        ],
    )
    .unwrap();
    let err = decode_users(&missing_value, NOW).unwrap_err();
    assert!(
        matches!(&err, CoreError::InputSchema(m) if m.contains("`value` is missing")),
        "{err}"
    );

    let text_partition = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("value", DataType::Binary, true),
            Field::new("partition", DataType::Utf8, false),
            Field::new("offset", DataType::Int64, false),
        ])),
        vec![
            Arc::new(BinaryArray::from(vec![Some(DE_USER.as_bytes())])),
            Arc::new(StringArray::from(vec!["zero"])),
            Arc::new(Int64Array::from(vec![0])),
        ],
    )
    .unwrap();
    let err = decode_users(&text_partition, NOW).unwrap_err();
    assert!(
        matches!(&err, CoreError::InputSchema(m) if m.contains("`partition` is Utf8")),
        "{err}"
    );
}

#[test]
fn an_empty_batch_decodes_to_empty_outputs() {
    let d = decode_users(&kafka_batch(&[], 0, 0), NOW).unwrap();
    assert_eq!((d.rows.num_rows(), d.rejects.num_rows()), (0, 0));
    assert_eq!(d.rows.schema(), quiver_core::schema::users_schema());
}

#[test]
fn a_reader_of_some_columns_gets_exactly_those_and_the_record_identity() {
    let batch = one(&[GB_USER]);
    let full = decode_users(&batch, NOW).unwrap().rows;
    let schema = users_schema();
    let identity = [
        "login_uuid",
        "kafka_partition",
        "kafka_offset",
        "kafka_timestamp",
        "processed_at",
    ];
    for (i, field) in schema.fields().iter().enumerate() {
        if identity.contains(&field.name().as_str()) {
            continue;
        }
        let d = decode_user_fields(&batch, NOW, UserFields::at([i])).unwrap();
        assert_eq!(d.rejects.num_rows(), 0);
        for (j, other) in schema.fields().iter().enumerate() {
            let read = j == i || identity.contains(&other.name().as_str());
            if read {
                assert_eq!(
                    d.rows.column(j),
                    full.column(j),
                    "{} reading {}",
                    other.name(),
                    field.name()
                );
            } else {
                assert_eq!(
                    d.rows.column(j).null_count(),
                    1,
                    "{} is read when only {} is asked for",
                    other.name(),
                    field.name()
                );
            }
        }
    }
}

#[test]
fn a_bad_value_in_a_column_nobody_reads_does_not_reject_the_record() {
    let record = GB_USER.replace(r#""latitude":"-69.8246""#, r#""latitude":"north""#);
    let batch = one(&[&record]);
    assert_eq!(decode_users(&batch, NOW).unwrap().rejects.num_rows(), 1);
    let latitude = users_schema()
        .index_of("location_coordinates_latitude")
        .unwrap();
    let others = (0..users_schema().fields().len()).filter(|&i| i != latitude);
    let d = decode_user_fields(&batch, NOW, UserFields::at(others)).unwrap();
    assert_eq!((d.rows.num_rows(), d.rejects.num_rows()), (1, 0));
    assert!(col(&d.rows, "location_coordinates_latitude").is_null(0));
}
