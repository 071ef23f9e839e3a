"""The whole stream, for real: `quiver produce` writes synthetic users to Kafka, the
Spark job on the standalone cluster hands them over Arrow Flight to `quiver serve`,
which writes Cassandra. Every row is then checked against the mapping computed here,
independently, from the JSON that was produced, and bad records must land in the
rejects table.

Needs the stack (scripts/stack up) and the built binary ($QUIVER_BIN).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer

import conftest
from conftest import ROOT

USERS = 3000
SEED = 424242


@pytest.fixture(scope="module")
def quiver_bin() -> str:
    return str(conftest.quiver_bin())


@pytest.fixture
def serve(settings, unique_name, tmp_path):
    """`quiver serve` writing to a keyspace of this test's own."""
    env = {
        **os.environ,
        "QUIVER_CASSANDRA_NODES": f"{settings.host}:{settings.cassandra_port}",
        "QUIVER_CASSANDRA_KEYSPACE": unique_name,
    }
    with conftest.running_serve(["--sink", "cassandra"], env, tmp_path / "serve.log") as running:
        yield {"endpoint": running.location, "keyspace": unique_name}


def _produce_users(quiver_bin, settings, topic: str) -> None:
    produced = subprocess.run(
        [
            quiver_bin,
            "produce",
            "--source",
            "synthetic",
            "--count",
            str(USERS),
            "--seed",
            str(SEED),
            "--topic",
            topic,
            "--partitions",
            "2",
            "--bootstrap-servers",
            settings.kafka_bootstrap,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert produced.returncode == 0, produced.stderr[-3000:]


def _produce_bad_records(settings, topic: str) -> dict[bytes, str]:
    """Records the decoder must reject, by value, with what makes each one bad."""
    bad = {
        b"{not json": "malformed JSON",
        json.dumps({"gender": "female"}).encode(): "no login.uuid",
        json.dumps({"login": {"uuid": "not-a-uuid"}, "name": {"first": 1}}).encode(): "wrong types",
    }
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap, "acks": "all"})
    for value in bad:
        producer.produce(topic, value, key=b"bad")
    assert producer.flush(30) == 0
    return bad


def _read_topic(settings, topic: str) -> list:
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"{topic}-check",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    messages = []
    idle_polls = 0
    try:
        while idle_polls < 10:
            batch = consumer.consume(num_messages=1000, timeout=0.5)
            idle_polls = 0 if batch else idle_polls + 1
            messages.extend(m for m in batch if m.error() is None)
    finally:
        consumer.close()
    return messages


def _iso_ms(text: str) -> dt.datetime:
    """randomuser's dates (2019-05-04T10:22:31.123Z) as the naive UTC datetimes the
    Cassandra driver returns."""
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")


def expected_row(message) -> dict:
    """The users pipeline's mapping, written out again in Python from the produced JSON."""
    user = json.loads(message.value())
    street = user["location"]["street"]
    location = user["location"]
    return {
        "id": uuid.UUID(user["login"]["uuid"]),
        "first_name": user["name"]["first"],
        "last_name": user["name"]["last"],
        "gender": user["gender"],
        "address": f"{street['number']} {street['name']}, {location['city']}, {location['state']}, "
        f"{location['country']}",
        "post_code": str(location["postcode"]),
        "email": user["email"],
        "username": user["login"]["username"],
        "dob": _iso_ms(user["dob"]["date"]),
        "registered_date": _iso_ms(user["registered"]["date"]),
        "phone": user["phone"],
        "picture": user["picture"]["medium"],
        "kafka_partition": message.partition(),
        "kafka_offset": message.offset(),
        "event_time": dt.datetime.fromtimestamp(message.timestamp()[1] / 1000, dt.timezone.utc).replace(tzinfo=None),
    }


def _run_stream(settings, topic: str, endpoint: str, checkpoint: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            str(ROOT / "scripts" / "spark-submit"),
            "--master",
            settings.spark_master_url,
            "--deploy-mode",
            "client",
            str(ROOT / "spark-app" / "stream_users.py"),
            "--bootstrap-servers",
            settings.kafka_bootstrap,
            "--topic",
            topic,
            "--trigger",
            "available-now",
            "--max-offsets-per-trigger",
            "1000",
            "--flight-endpoint",
            endpoint,
            "--checkpoint-location",
            str(checkpoint),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_every_produced_user_lands_in_cassandra_exactly_as_mapped(quiver_bin, settings, serve, unique_name, tmp_path):
    from cassandra.cluster import Cluster

    topic = unique_name
    _produce_users(quiver_bin, settings, topic)
    bad = _produce_bad_records(settings, topic)
    messages = _read_topic(settings, topic)
    good = [m for m in messages if m.value() not in bad]
    assert len(good) == USERS and len(messages) == USERS + len(bad)

    streamed = _run_stream(settings, topic, serve["endpoint"], tmp_path / "checkpoint")
    assert streamed.returncode == 0, streamed.stdout[-6000:]
    # spark-submit prints the driver's Python output (the job's log) on its stdout.
    summary = [line for line in streamed.stdout.splitlines() if "quiver_spark: done" in line]
    assert f"{USERS + len(bad)} rows in, {USERS} written, {len(bad)} rejected" in summary[-1], summary

    cluster = Cluster([settings.host], port=settings.cassandra_port)
    session = cluster.connect(serve["keyspace"])
    try:
        rows = {r["id"]: r for r in _as_dicts(session.execute("SELECT * FROM created_users"))}
        rejects = list(_as_dicts(session.execute("SELECT * FROM rejected_users")))
    finally:
        cluster.shutdown()

    expected = {row["id"]: row for row in map(expected_row, good)}
    assert set(rows) == set(expected), "the ids in Cassandra differ from the produced login.uuids"
    for user_id, want in expected.items():
        got = {k: rows[user_id][k] for k in want}
        assert got == want, f"row {user_id} differs from the mapping of its JSON"
        assert rows[user_id]["processed_at"] >= want["event_time"]

    bad_offsets = {(m.partition(), m.offset()): m.value() for m in messages if m.value() in bad}
    assert {(r["kafka_partition"], r["kafka_offset"]): r["raw_value"] for r in rejects} == bad_offsets
    assert all(r["reason"] for r in rejects)


def test_a_replayed_stream_changes_nothing(quiver_bin, settings, serve, unique_name, tmp_path):
    """Running the whole topic again from a new checkpoint rewrites the same rows."""
    from cassandra.cluster import Cluster

    topic = unique_name
    _produce_users(quiver_bin, settings, topic)
    for attempt in ("first", "replay"):
        streamed = _run_stream(settings, topic, serve["endpoint"], tmp_path / f"checkpoint-{attempt}")
        assert streamed.returncode == 0, streamed.stdout[-6000:]
    cluster = Cluster([settings.host], port=settings.cassandra_port)
    session = cluster.connect(serve["keyspace"])
    try:
        count = session.execute("SELECT count(*) FROM created_users").one()[0]
    finally:
        cluster.shutdown()
    assert count == USERS


def _as_dicts(result):
    for row in result:
        yield row._asdict()
