//! The synthetic generator: determinism and the randomuser 1.4 quirks.

use quiver_source::synthetic::{self, Synthetic};
use serde_json::Value;

fn parsed(seed: u64, n: usize) -> Vec<(String, Value)> {
    Synthetic::new(seed)
        .take(n)
        .map(|r| {
            let v: Value = serde_json::from_str(&r.value)
                .unwrap_or_else(|e| panic!("record is not JSON ({e}): {}", r.value));
            (r.key, v)
        })
        .collect()
}

#[test]
fn same_seed_same_records_other_seed_other_records() {
    let a: Vec<_> = Synthetic::new(42).take(500).collect();
    let b: Vec<_> = Synthetic::new(42).take(500).collect();
    let c: Vec<_> = Synthetic::new(43).take(500).collect();
    assert_eq!(a, b);
    assert!(a.iter().zip(&c).all(|(x, y)| x.key != y.key));
    // Any record can be regenerated on its own.
    assert_eq!(synthetic::record(42, 321), a[321]);
    assert_eq!(Synthetic::starting_at(42, 400).next().unwrap(), a[400]);
}

#[test]
fn keys_are_distinct_v4_uuids_equal_to_login_uuid() {
    let records = parsed(7, 5000);
    let mut keys = std::collections::HashSet::new();
    for (key, v) in &records {
        assert_eq!(v["login"]["uuid"].as_str(), Some(key.as_str()));
        let b = key.as_bytes();
        assert_eq!(key.len(), 36, "{key}");
        for (i, c) in b.iter().enumerate() {
            if [8, 13, 18, 23].contains(&i) {
                assert_eq!(*c, b'-', "{key}");
            } else {
                assert!(c.is_ascii_hexdigit() && !c.is_ascii_uppercase(), "{key}");
            }
        }
        assert_eq!(b[14], b'4', "version nibble of {key}");
        assert!(
            matches!(b[19], b'8' | b'9' | b'a' | b'b'),
            "variant of {key}"
        );
        assert!(keys.insert(key.clone()), "duplicate key {key}");
    }
}

#[test]
fn records_have_the_randomuser_quirks() {
    let records = parsed(1, 5000);
    let mut null_ids = 0;
    let mut non_ascii = 0;
    let mut nats = std::collections::BTreeSet::new();
    for (_, v) in &records {
        let nat = v["nat"].as_str().unwrap();
        nats.insert(nat.to_string());
        let postcode = &v["location"]["postcode"];
        match nat {
            "CA" | "GB" | "NO" => assert!(postcode.is_string(), "{nat}: {postcode}"),
            _ => assert!(postcode.is_u64(), "{nat}: {postcode}"),
        }
        assert!(v["location"]["street"]["number"].is_u64());
        for axis in ["latitude", "longitude"] {
            let c = v["location"]["coordinates"][axis].as_str().unwrap();
            c.parse::<f64>().unwrap();
        }
        for field in ["dob", "registered"] {
            let date = v[field]["date"].as_str().unwrap();
            // 2001-02-03T04:05:06.789Z
            assert_eq!(date.len(), 24, "{date}");
            assert_eq!(&date[10..11], "T");
            assert_eq!(&date[19..20], ".");
            assert!(date.ends_with('Z'));
            assert!(v[field]["age"].is_u64());
        }
        match &v["id"]["value"] {
            Value::Null => null_ids += 1,
            Value::String(_) => {}
            other => panic!("id.value {other}"),
        }
        let name = format!("{}{}", v["name"]["first"], v["name"]["last"]);
        if !name.is_ascii() {
            non_ascii += 1;
        }
        assert!(matches!(v["gender"].as_str(), Some("male" | "female")));
        assert!(
            v["picture"]["medium"]
                .as_str()
                .unwrap()
                .starts_with("https://")
        );
    }
    for nat in ["CA", "GB", "NO", "US", "DE"] {
        assert!(nats.contains(nat), "no {nat} among {nats:?}");
    }
    assert!(null_ids > 0 && null_ids < records.len());
    assert!(non_ascii > 0);
}

#[test]
fn records_are_compact_json() {
    for r in Synthetic::new(3).take(200) {
        let v: Value = serde_json::from_str(&r.value).unwrap();
        // serde_json keeps no key order, so compare lengths of the compact forms instead.
        assert_eq!(serde_json::to_string(&v).unwrap().len(), r.value.len());
        assert!(!r.value.contains(": ") && !r.value.contains('\n'));
    }
}
