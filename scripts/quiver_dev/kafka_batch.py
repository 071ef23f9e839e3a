"""Kafka-shaped Arrow batches, as the Spark job hands them to quiver: the one builder of the
tests and the benchmarks that feed the pipeline from Python."""

from __future__ import annotations

import pyarrow as pa

KAFKA_SCHEMA = pa.schema(
    [
        ("key", pa.binary()),
        ("value", pa.binary()),
        ("topic", pa.string()),
        ("partition", pa.int32()),
        ("offset", pa.int64()),
        ("timestamp", pa.timestamp("ms", tz="UTC")),
    ]
)
# Kafka timestamps of the records, one millisecond apart from this one.
FIRST_TIMESTAMP_MS = 1_700_000_000_000


def kafka_batch(
    values: list[bytes | None],
    first_offset: int = 0,
    *,
    keys: list[bytes | None] | None = None,
    schema: pa.Schema = KAFKA_SCHEMA,
) -> pa.RecordBatch:
    """`values` as the records of partition 0 of `users_created` from `first_offset` on;
    no keys unless given. `schema` may be a compatible one, such as the engine's own."""
    n = len(values)
    return pa.RecordBatch.from_arrays(
        [
            pa.array(keys if keys is not None else [None] * n, pa.binary()),
            pa.array(values, pa.binary()),
            pa.array(["users_created"] * n, pa.string()),
            pa.array([0] * n, pa.int32()),
            pa.array(range(first_offset, first_offset + n), pa.int64()),
            pa.array([FIRST_TIMESTAMP_MS + k for k in range(n)], pa.timestamp("ms", tz="UTC")),
        ],
        schema=schema,
    )
