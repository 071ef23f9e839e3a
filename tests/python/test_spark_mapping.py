"""The Spark baseline of the benchmarks (from_json + select in scripts/bench_seed_job.py, run
by `scripts/bench e2e` and `scripts/bench decode`) gives the rows that quiver's
pipelines/users.sql gives, so that the benchmarks compare the same work. Spark runs in this
process (local[1]); no stack is needed.
"""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

import quiver
from quiver_dev.bench.seed_job import users_select
from quiver_dev.kafka_batch import kafka_batch
from records import user


@pytest.fixture(scope="module")
def spark():
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[1]")
        .appName("quiver-test-spark-mapping")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    yield session
    session.stop()


def varied_values() -> list[bytes]:
    users = [user(i, "NO" if i % 2 else "DE") for i in range(6)]
    users[1]["location"]["street"]["name"] = 'Rue de l\'Église "Nord"'
    users[2]["location"]["postcode"] = 7778
    users[3]["name"]["first"] = "Sørina\tMæ"
    users[4]["dob"]["date"] = "1969-12-31T23:59:59.001Z"
    # Both the \u escapes of ensure_ascii and raw UTF-8, as producers write either.
    return [json.dumps(u, ensure_ascii=i % 2 == 0).encode() for i, u in enumerate(users)]


def test_the_spark_select_gives_the_rows_of_users_sql(spark):
    batch = kafka_batch(varied_values(), first_offset=40)
    processed = quiver.Engine().process("users", batch)
    assert (processed.rows_out, processed.rows_rejected) == (batch.num_rows, 0)
    expected = processed.rows.to_pylist()
    for row in expected:
        # Each side stamps its own time of processing.
        del row["processed_at"]

    got = users_select(spark.createDataFrame(pa.Table.from_batches([batch]))).toArrow()
    assert got.column_names == list(expected[0])
    key = lambda row: row["kafka_offset"]  # noqa: E731
    assert sorted(got.to_pylist(), key=key) == sorted(expected, key=key)
