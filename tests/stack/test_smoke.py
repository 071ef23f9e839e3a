"""Each component of the local stack is the real thing and answers its own protocol.

Needs the stack: scripts/stack up (scripts/test brings it up first).
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import ROOT


def _create_topic(settings, name: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])[name].result(30)


def _produce(settings, topic: str, count: int) -> dict[bytes, bytes]:
    sent = {f"key-{i}".encode(): f'{{"n": {i}}}'.encode() for i in range(count)}
    failures: list[str] = []
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap, "acks": "all", "enable.idempotence": True})
    for key, value in sent.items():
        producer.produce(topic, value, key, on_delivery=lambda err, _msg: err and failures.append(str(err)))
    assert producer.flush(30) == 0, "messages still in flight after 30 s"
    assert failures == []
    return sent


def test_kafka_round_trip(settings, unique_name):
    _create_topic(settings, unique_name, partitions=3)
    sent = _produce(settings, unique_name, 500)

    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": unique_name,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([unique_name])
    received: dict[bytes, bytes] = {}
    try:
        for _ in range(200):
            for message in consumer.consume(num_messages=500, timeout=0.5):
                assert message.error() is None, message.error()
                received[message.key()] = message.value()
            if len(received) >= len(sent):
                break
    finally:
        consumer.close()
    assert received == sent


def test_cassandra_round_trip(settings, unique_name):
    from cassandra.cluster import Cluster

    cluster = Cluster([settings.host], port=settings.cassandra_port)
    session = cluster.connect()
    try:
        session.execute(
            f"CREATE KEYSPACE {unique_name} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
        )
        session.execute(f"CREATE TABLE {unique_name}.users (id int PRIMARY KEY, name text)")
        insert = session.prepare(f"INSERT INTO {unique_name}.users (id, name) VALUES (?, ?)")
        for i in range(50):
            session.execute(insert, (i, f"user {i}"))
        rows = {r.id: r.name for r in session.execute(f"SELECT id, name FROM {unique_name}.users")}
        assert rows == {i: f"user {i}" for i in range(50)}
    finally:
        session.execute(f"DROP KEYSPACE IF EXISTS {unique_name}")
        cluster.shutdown()


def test_postgres_query(settings, unique_name):
    import psycopg

    with psycopg.connect(
        host=settings.host,
        port=settings.postgres_port,
        user=settings.postgres_user,
        password=settings.postgres_password(),
        dbname=settings.postgres_db,
    ) as conn:
        conn.execute(f"CREATE TEMP TABLE {unique_name} (id int PRIMARY KEY, name text)")
        with conn.cursor().copy(f"COPY {unique_name} (id, name) FROM STDIN") as copy:
            for i in range(100):
                copy.write_row((i, f"user {i}"))
        count, total = conn.execute(f"SELECT count(*), sum(id) FROM {unique_name}").fetchone()
    assert (count, total) == (100, sum(range(100)))


def test_postgres_refuses_a_wrong_password(settings):
    import psycopg

    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(
            host=settings.host,
            port=settings.postgres_port,
            user=settings.postgres_user,
            password="not-the-password",
            dbname=settings.postgres_db,
            connect_timeout=5,
        )


def test_spark_job_reads_kafka_on_the_standalone_cluster(settings, unique_name):
    _create_topic(settings, unique_name, partitions=2)
    sent = _produce(settings, unique_name, 1234)

    submitted = subprocess.run(
        [
            str(ROOT / "scripts" / "spark-submit"),
            "--master",
            settings.spark_master_url,
            "--deploy-mode",
            "client",
            str(ROOT / "tests" / "stack" / "spark_kafka_count.py"),
            "--bootstrap-servers",
            settings.kafka_bootstrap,
            "--topic",
            unique_name,
            "--expect",
            str(len(sent)),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    sys.stderr.write(submitted.stderr[-4000:])
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr[-4000:]
    assert f"read 1234 records with 1234 distinct keys from {unique_name} on {settings.spark_master_url}" in (
        submitted.stdout
    )
