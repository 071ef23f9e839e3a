"""Every DAG against the local stack with `airflow dags test`, its effect checked where
it lands: messages in Kafka, rows in Cassandra and Postgres. Records come from the
synthetic source (the machines the tests run on cannot reach randomuser.me)."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg
import pytest
from cassandra.cluster import Cluster
from confluent_kafka import Consumer, TopicPartition

from quiver_dev import stack
from quiver_dev.paths import built_quiver_bin
from quiver_dev.serve_process import free_port, running_serve

DAG_IDS = {"api_to_kafka", "stream_users", "batch_to_postgres", "cassandra_monitor"}


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


# Parsed as the DAG processor parses its `dags-folder` bundle: a fresh interpreter with
# Airflow's settings and the bundle's folder on sys.path (shared modules import from it).
DAGBAG = """
import json, os
from airflow.dag_processing.dagbag import BundleDagBag
folder = os.environ["AIRFLOW__CORE__DAGS_FOLDER"]
# safe_mode off: every .py file is imported, also one that does not look like a DAG.
bag = BundleDagBag(dag_folder=folder, bundle_path=folder, safe_mode=False)
errors = {path: str(error) for path, error in bag.import_errors.items()}
print(json.dumps({"errors": errors, "dags": {d: sorted(bag.get_dag(d).tags) for d in bag.dag_ids}}))
"""


def test_every_dag_imports_without_errors(settings, airflow_env):
    python = str(settings.airflow_venv / "bin" / "python")
    done = subprocess.run([python, "-c", DAGBAG], env=airflow_env, capture_output=True, text=True, check=True)
    bag = json.loads(done.stdout.strip().splitlines()[-1])
    assert bag["errors"] == {}
    assert bag["dags"] == {dag_id: ["quiver"] for dag_id in DAG_IDS}


def produce(settings: stack.Settings, topic: str, count: int, partitions: int = 1) -> None:
    subprocess.run(
        [str(built_quiver_bin()), "produce", "--source", "synthetic", "--count", str(count)]
        + ["--seed", "11", "--topic", topic, "--partitions", str(partitions)]
        + ["--bootstrap-servers", settings.kafka_bootstrap],
        check=True,
        capture_output=True,
    )


def topic_keys(settings: stack.Settings, topic: str, partitions: int) -> list[str]:
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": unique("check")})
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        keys: list[str] = []
        idle = time.monotonic() + 10
        while time.monotonic() < idle:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            keys.append(message.key().decode())
            idle = time.monotonic() + 3
        return keys
    finally:
        consumer.close()


def test_api_to_kafka_sends_the_bounded_count(settings, dags_test):
    topic = unique("af_produce")
    run = dags_test("api_to_kafka", {"source": "synthetic", "count": 120, "seed": "3", "topic": topic})
    assert run.ok, run.output[-3000:]
    keys = topic_keys(settings, topic, partitions=3)
    assert len(keys) == 120
    assert len(set(keys)) == 120


def test_an_out_of_range_param_is_refused_with_its_name(dags_test):
    run = dags_test("api_to_kafka", {"source": "synthetic", "count": 0})
    assert not run.ok
    assert "Invalid input for param count: 0 is less than the minimum of 1" in run.output


def test_a_missing_connection_fails_the_task_and_names_it(dags_test):
    run = dags_test("api_to_kafka", {"source": "synthetic", "count": 5}, env={"AIRFLOW_CONN_KAFKA_DEFAULT": None})
    assert not run.ok
    assert "The conn_id `kafka_default` isn't defined" in run.output


def postgres(settings: stack.Settings) -> psycopg.Connection:
    return psycopg.connect(
        host=settings.host,
        port=settings.postgres_port,
        user=settings.postgres_user,
        password=settings.postgres_password(),
        dbname=settings.postgres_db,
        autocommit=True,
    )


def rows_of_run(settings: stack.Settings, run_id: str) -> tuple[int, int]:
    """(rows of this run, rows in the whole table)."""
    with postgres(settings) as conn:
        mine = conn.execute("SELECT count(*) FROM batch_users WHERE run_id = %s", (run_id,)).fetchone()[0]
        total = conn.execute("SELECT count(*) FROM batch_users").fetchone()[0]
    return mine, total


def test_batch_to_postgres_loads_the_synthetic_batch_once(settings, dags_test):
    seed = uuid.uuid4().hex[:12]
    conf = {"source": "synthetic", "count": 300, "seed": seed}
    run = dags_test("batch_to_postgres", conf)
    assert run.ok, run.output[-3000:]
    mine, total = rows_of_run(settings, f"synthetic-{seed}-300")
    assert mine == 300

    again = dags_test("batch_to_postgres", conf)
    assert again.ok, again.output[-3000:]
    assert rows_of_run(settings, f"synthetic-{seed}-300") == (300, total)


def test_batch_to_postgres_reads_a_kafka_offset_range(settings, dags_test):
    topic = unique("af_batch")
    produce(settings, topic, 80)
    run = dags_test(
        "batch_to_postgres", {"source": "kafka", "topic": topic, "partition": 0, "from_offset": 10, "to_offset": 60}
    )
    assert run.ok, run.output[-3000:]
    with postgres(settings) as conn:
        offsets = conn.execute(
            "SELECT min(kafka_offset), max(kafka_offset), count(*) FROM batch_users WHERE run_id = %s",
            (f"kafka-{topic}-0-10-60",),
        ).fetchone()
    assert offsets == (10, 59, 50)


def cassandra(settings: stack.Settings):
    return Cluster([settings.host], port=settings.cassandra_port).connect()


def test_stream_users_lands_the_topic_in_cassandra(settings, dags_test, tmp_path):
    topic, keyspace = unique("af_stream"), unique("af_ks")
    produce(settings, topic, 200, partitions=2)
    env = {**os.environ, "QUIVER_CASSANDRA_NODES": f"{settings.host}:{settings.cassandra_port}"}
    env["QUIVER_CASSANDRA_KEYSPACE"] = keyspace
    with running_serve(built_quiver_bin(), ["--sink", "cassandra"], env, tmp_path / "serve.log") as serve:
        conf = {"topic": topic, "flight_endpoint": serve.location, "checkpoint_location": str(tmp_path / "ckpt")}
        run = dags_test("stream_users", conf)
    assert run.ok, run.output[-5000:]
    session = cassandra(settings)
    try:
        count = session.execute(f"SELECT count(*) FROM {keyspace}.created_users").one()[0]
        assert count == 200
    finally:
        session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")
        session.cluster.shutdown()


def test_a_failing_spark_job_fails_the_task_with_its_output(dags_test, tmp_path, settings):
    topic = unique("af_stream_fail")
    produce(settings, topic, 20)
    # Nothing listens there: every exchange fails, Spark gives up on the batch.
    conf = {
        "topic": topic,
        "flight_endpoint": f"grpc://127.0.0.1:{free_port()}",
        "checkpoint_location": str(tmp_path / "ckpt"),
    }
    run = dags_test("stream_users", conf)
    assert not run.ok
    assert "the query failed" in run.output  # the job's own log line, kept in the task log
    assert "Cannot execute" in run.output  # SparkSubmitHook's verdict on spark-submit's exit


@pytest.fixture
def monitored_keyspace(settings):
    """A keyspace with the two tables the monitor reads; yields (session, keyspace)."""
    keyspace = unique("af_monitor")
    session = cassandra(settings)
    session.execute(
        f"CREATE KEYSPACE {keyspace} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
    )
    session.execute(f"CREATE TABLE {keyspace}.created_users (id uuid PRIMARY KEY, processed_at timestamp)")
    session.execute(
        f"CREATE TABLE {keyspace}.rejected_users (kafka_topic text, kafka_partition int, kafka_offset bigint, "
        "reason text, PRIMARY KEY ((kafka_topic, kafka_partition, kafka_offset)))"
    )
    for offset in range(3):
        session.execute(
            f"INSERT INTO {keyspace}.rejected_users (kafka_topic, kafka_partition, kafka_offset, reason) "
            "VALUES ('t', 0, %s, 'not JSON')",
            (offset,),
        )
    try:
        yield session, keyspace
    finally:
        session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")
        session.cluster.shutdown()


def monitor(settings, dags_test, keyspace: str, max_age_minutes: int = 15):
    connection = f"cassandra://{settings.host}:{settings.cassandra_port}/{keyspace}"
    return dags_test(
        "cassandra_monitor", {"max_age_minutes": max_age_minutes}, env={"AIRFLOW_CONN_CASSANDRA_DEFAULT": connection}
    )


def insert_user(session, keyspace: str, processed_at: datetime) -> None:
    session.execute(
        f"INSERT INTO {keyspace}.created_users (id, processed_at) VALUES (%s, %s)", (uuid.uuid4(), processed_at)
    )


def test_cassandra_monitor_passes_on_fresh_data_and_counts_rejects(settings, dags_test, monitored_keyspace):
    session, keyspace = monitored_keyspace
    insert_user(session, keyspace, datetime.now(timezone.utc) - timedelta(hours=5))
    insert_user(session, keyspace, datetime.now(timezone.utc) - timedelta(minutes=1))
    run = monitor(settings, dags_test, keyspace)
    assert run.ok, run.output[-3000:]
    assert f"{keyspace}.created_users: 2 users" in run.output
    assert f"{keyspace}.rejected_users: 3 rejects" in run.output


def test_cassandra_monitor_fails_on_stale_data(settings, dags_test, monitored_keyspace):
    session, keyspace = monitored_keyspace
    insert_user(session, keyspace, datetime.now(timezone.utc) - timedelta(hours=2))
    run = monitor(settings, dags_test, keyspace, max_age_minutes=30)
    assert not run.ok
    assert f"{keyspace}.created_users is stale" in run.output
    assert "more than max_age_minutes=30" in run.output


def test_cassandra_monitor_fails_on_an_empty_table(settings, dags_test, monitored_keyspace):
    _, keyspace = monitored_keyspace
    run = monitor(settings, dags_test, keyspace)
    assert not run.ok
    assert f"{keyspace}.created_users is empty" in run.output


def test_the_airflow_api_wants_the_generated_password(settings):
    def token(password: str) -> int | str:
        body = json.dumps({"username": settings.airflow_user, "password": password}).encode()
        request = urllib.request.Request(
            f"{settings.airflow_url}/auth/token", data=body, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.load(response)["access_token"]
        except urllib.error.HTTPError as error:
            return error.code

    assert token("admin") == 401
    good = token(stack.airflow_password(settings))
    assert isinstance(good, str)
    try:
        urllib.request.urlopen(f"{settings.airflow_url}/api/v2/dags", timeout=10)
        pytest.fail("the DAG list answered without a token")
    except urllib.error.HTTPError as error:
        assert error.code in (401, 403)
    request = urllib.request.Request(f"{settings.airflow_url}/api/v2/dags", headers={"Authorization": f"Bearer {good}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def test_the_credentials_are_private(settings):
    mode = Path(settings.airflow_passwords_file).stat().st_mode & 0o777
    assert mode == 0o600
