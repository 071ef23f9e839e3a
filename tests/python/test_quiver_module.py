"""quiver's Python module (rust/quiver-py): the Rust core in a Python process. Batches in
and out are pyarrow's, the mapping is checked against the JSON, stores go to the real
Cassandra of the stack, and a forked child (as PySpark forks its workers) works on its own
runtime and connections.
"""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
import uuid

import pyarrow as pa
import pytest

import quiver
from quiver_dev.kafka_batch import kafka_batch
from records import user


def batch_of(users: list[dict], extra: list[bytes | None] = ()) -> pa.RecordBatch:
    return kafka_batch([json.dumps(u).encode() for u in users] + list(extra))


@pytest.fixture(scope="module")
def engine() -> quiver.Engine:
    return quiver.Engine()


def test_process_maps_every_column_from_the_json(engine):
    users = [user(1, "NO"), user(2, "DE")]
    processed = engine.process("users", batch_of(users))
    rows = processed.rows
    assert isinstance(rows, pa.RecordBatch)
    assert rows.schema == engine.output_schema("users")
    assert (processed.rows_in, processed.rows_out, processed.rows_rejected) == (2, 2, 0)
    got = {r["id"]: r for r in rows.to_pylist()}
    for offset, u in enumerate(users):
        row = got[u["login"]["uuid"]]
        loc = u["location"]
        assert row["first_name"] == u["name"]["first"]
        assert row["address"] == (
            f"{loc['street']['number']} {loc['street']['name']}, {loc['city']}, {loc['state']}, {loc['country']}"
        )
        assert row["post_code"] == str(loc["postcode"])
        assert row["dob"] == dt.datetime(1990, 2, 3, 4, 5, 6, 789000, tzinfo=dt.timezone.utc)
        assert row["picture"] == u["picture"]["medium"]
        assert (row["kafka_partition"], row["kafka_offset"]) == (0, offset)
    assert processed.decode_seconds >= 0 and processed.sql_seconds >= 0


def test_bad_records_come_back_as_rejects_with_a_reason(engine):
    processed = engine.process("users", batch_of([user(3)], [b"{not json", None, b'{"login": {"uuid": 7}}']))
    assert (processed.rows_in, processed.rows_out, processed.rows_rejected) == (4, 1, 3)
    rejects = processed.rejects.to_pylist()
    assert [r["kafka_offset"] for r in rejects] == [1, 2, 3]
    assert rejects[0]["raw_value"] == b"{not json"
    assert all(r["reason"] for r in rejects)


def test_a_sliced_batch_is_read_at_its_offset(engine):
    """Slices share their parent's buffers with an offset, which the C interface carries."""
    batch = batch_of([user(i) for i in range(10)])
    processed = engine.process("users", batch.slice(4, 3))
    assert sorted(r["kafka_offset"] for r in processed.rows.to_pylist()) == [4, 5, 6]


def test_inputs_that_are_not_kafka_batches_are_refused(engine):
    with pytest.raises(TypeError, match="expected an Arrow record batch"):
        engine.process("users", [1, 2, 3])
    with pytest.raises(quiver.PipelineError, match="input batch"):
        engine.process("users", pa.record_batch({"value": pa.array([b"{}"])}))
    with pytest.raises(quiver.PipelineError, match="unknown pipeline `nope`"):
        engine.process("nope", batch_of([user(1)]))


def test_pipeline_sql_is_checked_when_the_engine_is_made():
    with pytest.raises(quiver.PipelineError, match="no_such_column"):
        quiver.Engine({"users": "SELECT no_such_column FROM raw_users"})
    custom = quiver.Engine({"copy": None})
    assert custom.pipelines == ["copy"]
    assert custom.input_schema("copy").names == ["key", "value", "topic", "partition", "offset", "timestamp"]


def test_sql_over_batches(engine):
    rows = engine.process("users", batch_of([user(i, "NO" if i % 2 else "DE") for i in range(6)])).rows
    result = quiver.sql(
        "SELECT post_code, count(*) AS n FROM users GROUP BY post_code ORDER BY post_code",
        {"users": [rows.slice(0, 3), rows.slice(3)]},
    )
    assert pa.Table.from_batches(result).to_pylist() == [{"post_code": "0150", "n": 3}, {"post_code": "12345", "n": 3}]
    with pytest.raises(quiver.PipelineError, match="SQL failed"):
        quiver.sql("SELECT nope FROM users", {"users": rows})
    with pytest.raises(ValueError, match="table `users` has no batches"):
        quiver.sql("SELECT 1", {"users": []})


def _cassandra_rows(settings, keyspace: str, table: str) -> list:
    from cassandra.cluster import Cluster

    cluster = Cluster([settings.host], port=settings.cassandra_port)
    try:
        return list(cluster.connect(keyspace).execute(f"SELECT * FROM {table}"))
    finally:
        cluster.shutdown()


def test_a_run_upserts_rows_and_rejects_in_cassandra(engine, settings, unique_name):
    sinks = engine.sinks([quiver.CassandraSink([f"{settings.host}:{settings.cassandra_port}"], unique_name)])
    batch = batch_of([user(i) for i in range(5)], [b"oops"])
    for _ in range(2):  # a replayed batch changes nothing
        run = sinks.run("users", batch)
        assert (run.rows_in, run.rows_out, run.rows_written, run.rows_rejected) == (6, 5, 5, 1)
        assert run.reports == {"cassandra": (5, 1)}
        assert run.decode_seconds >= 0 and run.sql_seconds >= 0 and run.sink_seconds > 0
    rows = _cassandra_rows(settings, unique_name, "created_users")
    assert sorted(r.id for r in rows) == sorted(uuid.UUID(user(i)["login"]["uuid"]) for i in range(5))
    [reject] = _cassandra_rows(settings, unique_name, "rejected_users")
    assert (reject.raw_value, reject.kafka_offset) == (b"oops", 5)


def test_an_unreachable_cassandra_is_a_retryable_error():
    with pytest.raises(quiver.SinkUnavailableError, match="127.0.0.1:1"):
        quiver.CassandraSink(["127.0.0.1:1"], request_timeout_seconds=2)
    with pytest.raises(ValueError, match="both username and password"):
        quiver.CassandraSink(["127.0.0.1:1"], username="only")


def _in_child(sinks, queue) -> None:
    queue.put(sinks.run("users", batch_of([user(i) for i in range(100, 103)])).rows_written)


def test_a_forked_child_uses_its_own_runtime_and_connection(engine, settings, unique_name):
    """Made and used in the parent, then used in a forked child, like PySpark's workers."""
    sinks = engine.sinks([quiver.CassandraSink([f"{settings.host}:{settings.cassandra_port}"], unique_name)])
    sinks.run("users", batch_of([user(1)]))
    fork = multiprocessing.get_context("fork")
    queue = fork.Queue()
    child = fork.Process(target=_in_child, args=(sinks, queue))
    child.start()
    child.join(timeout=120)
    assert child.exitcode == 0
    assert queue.get(timeout=5) == 3
    # The parent's own runtime and connection still work after the fork.
    sinks.run("users", batch_of([user(2)]))
    assert len(_cassandra_rows(settings, unique_name, "created_users")) == 5


def test_sinks_must_cover_every_sink_the_pipelines_name(engine):
    with pytest.raises(quiver.PipelineError, match="cassandra"):
        engine.sinks([])
