"""randomuser-shaped records for the tests that feed the pipeline from Python (their
Kafka-shaped batches: quiver_dev.kafka_batch)."""

from __future__ import annotations

import json


def user(i: int, nat: str = "GB") -> dict:
    return {
        "gender": "female",
        "name": {"title": "Ms", "first": f"Zoë{i}", "last": "Ødegård"},
        "location": {
            "street": {"number": 10 + i, "name": "Kirkegata"},
            "city": "Oslo",
            "state": "Østfold",
            "country": "Norway",
            "postcode": "0150" if nat == "NO" else 12345,
            "coordinates": {"latitude": "59.9", "longitude": "10.7"},
            "timezone": {"offset": "+1:00", "description": "Oslo"},
        },
        "email": f"u{i}@example.com",
        "login": {"uuid": f"00000000-0000-4000-8000-{i:012d}", "username": f"user{i}"},
        "dob": {"date": "1990-02-03T04:05:06.789Z", "age": 34},
        "registered": {"date": "2015-06-07T08:09:10.111Z", "age": 9},
        "phone": "22 33 44 55",
        "cell": "99 88 77 66",
        "id": {"name": "FN", "value": None},
        "picture": {"large": "l.jpg", "medium": f"m{i}.jpg", "thumbnail": "t.jpg"},
        "nat": nat,
    }


def good_values(n: int, start: int = 0) -> list[bytes | None]:
    return [json.dumps(user(start + k, "NO" if k % 2 else "DE")).encode() for k in range(n)]
