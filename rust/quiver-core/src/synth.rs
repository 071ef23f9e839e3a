//! A seeded generator of randomuser-1.4-shaped records and Kafka-shaped batches, for
//! tests, benchmarks and demos that must not depend on the live API.
//!
//! It reproduces the API's quirks on purpose: string postcodes for CA/GB/NO and numbers
//! elsewhere, `id.value` null for some nationalities, string coordinates, ISO dates with
//! milliseconds and `Z`, and non-ASCII names.

use crate::schema::kafka_input_schema;
use arrow::array::{
    BinaryArray, Int32Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use std::sync::Arc;

/// splitmix64: tiny, fast, and the same sequence on every platform for a given seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const FIRST: &[&str] = &[
    "Emma",
    "Noah",
    "Jüri",
    "Søren",
    "Zoë",
    "Ahmet",
    "Hélène",
    "Miłosz",
    "آرمین",
    "Оксана",
    "Liam",
    "Chloé",
    "Ngaio",
    "Ines",
];
const LAST: &[&str] = &[
    "Smith",
    "Müller",
    "Ødegård",
    "Yılmaz",
    "Lefèvre",
    "Kowalski",
    "کامروا",
    "Шевченко",
    "O'Brien",
    "García",
];
const STREETS: &[&str] = &[
    "Main St",
    "Rue de l'Abbé-Migne",
    "Kirkegata",
    "Tuğla Sk",
    "Hauptstraße",
];
const CITIES: &[&str] = &[
    "Oslo", "Lyon", "Leeds", "Toronto", "Ankara", "Köln", "Kraków",
];
const NATS: &[&str] = &[
    "AU", "BR", "CA", "CH", "DE", "DK", "ES", "FI", "FR", "GB", "IE", "IR", "NO", "NL", "NZ", "TR",
    "US",
];

/// One randomuser-1.4-shaped result object as compact JSON.
pub fn user_json(rng: &mut Rng) -> String {
    let nat = rng.pick(NATS);
    let first = rng.pick(FIRST);
    let last = rng.pick(LAST);
    let postcode = match nat {
        "CA" => sonic_rs::json!(format!(
            "T{}A {}B{}",
            rng.below(10),
            rng.below(10),
            rng.below(10)
        )),
        "GB" => sonic_rs::json!(format!("L{} {}XY", rng.below(99), rng.below(10))),
        "NO" => sonic_rs::json!(format!("{:04}", rng.below(10_000))),
        _ => sonic_rs::json!(rng.below(99_999)),
    };
    let id_value = if matches!(nat, "IE" | "NL" | "IR") {
        sonic_rs::Value::new_null()
    } else {
        sonic_rs::json!(format!("{}-{}", rng.below(1_000_000), rng.below(100)))
    };
    let uuid = uuid::Uuid::from_u64_pair(rng.next_u64(), rng.next_u64());
    let date = |rng: &mut Rng, from_year: u64, span: u64| {
        format!(
            "{}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            from_year + rng.below(span),
            1 + rng.below(12),
            1 + rng.below(28),
            rng.below(24),
            rng.below(60),
            rng.below(60),
            rng.below(1000)
        )
    };
    let dob = date(rng, 1945, 60);
    let registered = date(rng, 2002, 22);
    let username = format!("{}{}", first.to_lowercase(), rng.below(1000));
    let value = sonic_rs::json!({
        "gender": if rng.below(2) == 0 { "female" } else { "male" },
        "name": {"title": "Ms", "first": first, "last": last},
        "location": {
            "street": {"number": rng.below(9_999) as i64, "name": rng.pick(STREETS)},
            "city": rng.pick(CITIES),
            "state": "Østfold",
            "country": "Norway",
            "postcode": postcode,
            "coordinates": {
                "latitude": format!("{:.4}", (rng.below(180_000) as f64) / 1000.0 - 90.0),
                "longitude": format!("{:.4}", (rng.below(360_000) as f64) / 1000.0 - 180.0)
            },
            "timezone": {"offset": "+9:30", "description": "Adelaide, Darwin"}
        },
        "email": format!("{}.{}@example.com", first.to_lowercase(), last.to_lowercase()),
        "login": {
            "uuid": uuid.to_string(),
            "username": username,
            "password": "ranger",
            "salt": "J3qAy4ZU",
            "md5": "ba7a36c8d9d4f4a9d0b9a1a8b1f7bd1b",
            "sha1": "2b3b8e2c8b5f7dbb0b4d9f1cb1f0f8b6e0c0b7b1",
            "sha256": "d1a8b8e5a0d8c0a6f1b9e4b0c4a8e2f1d3c5b7a9e1f3a5c7b9d1e3f5a7c9b1d3"
        },
        "dob": {"date": dob, "age": 30 + rng.below(50) as i64},
        "registered": {"date": registered, "age": 1 + rng.below(20) as i64},
        "phone": format!("0{}-{:07}", rng.below(10), rng.below(10_000_000)),
        "cell": format!("0{}-{:07}", rng.below(10), rng.below(10_000_000)),
        "id": {"name": "SSN", "value": id_value},
        "picture": {
            "large": "https://randomuser.me/api/portraits/women/1.jpg",
            "medium": "https://randomuser.me/api/portraits/med/women/1.jpg",
            "thumbnail": "https://randomuser.me/api/portraits/thumb/women/1.jpg"
        },
        "nat": nat
    });
    value.to_string()
}

/// `n` records from `seed`.
pub fn users(seed: u64, n: usize) -> Vec<String> {
    let mut rng = Rng::new(seed);
    (0..n).map(|_| user_json(&mut rng)).collect()
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
