"""The whole stream, for real: `quiver produce` writes synthetic users to Kafka, and the
Spark job on the standalone cluster transforms them and writes Cassandra with each
engine: over Arrow Flight through `quiver serve` (in micro-batches and in Spark's
real-time mode), and in-process with quiver's Python module on the executors. Every
row is then checked against the mapping computed here, independently, from the JSON that
was produced, and bad records must land in the rejects table.

Needs the stack (scripts/stack up), the built binary ($QUIVER_BIN) and the Python module
(scripts/setup builds both).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer

import conftest
from conftest import ROOT
from quiver_dev.spark_job import stop_job

USERS = 3000
SEED = 424242


@pytest.fixture(scope="module")
def quiver_bin() -> str:
    return str(conftest.quiver_bin())


@dataclass
class Engine:
    """How the job transforms and stores: its engine arguments and the keyspace written."""

    name: str
    args: list[str]
    keyspace: str


@pytest.fixture(params=["flight", "inprocess"])
def engine(request, settings, unique_name, tmp_path) -> Iterator[Engine]:
    """Each engine writing to a keyspace of this test's own."""
    cassandra = f"{settings.host}:{settings.cassandra_port}"
    if request.param == "inprocess":
        yield Engine(
            "inprocess",
            ["--engine", "inprocess", "--cassandra-nodes", cassandra, "--cassandra-keyspace", unique_name],
            unique_name,
        )
        return
    env = {**os.environ, "QUIVER_CASSANDRA_NODES": cassandra, "QUIVER_CASSANDRA_KEYSPACE": unique_name}
    with conftest.running_serve(["--sink", "cassandra"], env, tmp_path / "serve.log") as running:
        yield Engine("flight", ["--engine", "flight", "--flight-endpoint", running.location], unique_name)


def produce_users(quiver_bin, settings, topic: str, count: int = USERS, seed: int = SEED) -> None:
    produced = subprocess.run(
        [
            quiver_bin,
            "produce",
            "--source",
            "synthetic",
            "--count",
            str(count),
            "--seed",
            str(seed),
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


def read_topic(settings, topic: str) -> list:
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


def stream_command(settings, topic: str, engine_args: list[str], checkpoint: Path) -> list[str]:
    """spark-submit of the job: everything in `topic` (available-now), 1000 records a batch."""
    return [
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
        "--checkpoint-location",
        str(checkpoint),
        *engine_args,
    ]


def run_stream(settings, topic: str, engine_args: list[str], checkpoint: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        stream_command(settings, topic, engine_args, checkpoint), capture_output=True, text=True, timeout=600
    )


def cassandra_session(settings, keyspace: str):
    from cassandra.cluster import Cluster

    cluster = Cluster([settings.host], port=settings.cassandra_port)
    return cluster, cluster.connect(keyspace)


def test_every_produced_user_lands_in_cassandra_exactly_as_mapped(quiver_bin, settings, engine, unique_name, tmp_path):
    topic = unique_name
    produce_users(quiver_bin, settings, topic)
    bad = _produce_bad_records(settings, topic)
    messages = read_topic(settings, topic)
    good = [m for m in messages if m.value() not in bad]
    assert len(good) == USERS and len(messages) == USERS + len(bad)

    streamed = run_stream(settings, topic, engine.args, tmp_path / "checkpoint")
    assert streamed.returncode == 0, streamed.stdout[-6000:]
    # spark-submit prints the driver's Python output (the job's log) on its stdout.
    summary = [line for line in streamed.stdout.splitlines() if "quiver_spark: done" in line]
    assert f"{USERS + len(bad)} rows in, {USERS} written, {len(bad)} rejected" in summary[-1], summary

    cluster, session = cassandra_session(settings, engine.keyspace)
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


def test_a_replayed_stream_changes_nothing(quiver_bin, settings, engine, unique_name, tmp_path):
    """Running the whole topic again from a new checkpoint rewrites the same rows."""
    topic = unique_name
    produce_users(quiver_bin, settings, topic)
    for attempt in ("first", "replay"):
        streamed = run_stream(settings, topic, engine.args, tmp_path / f"checkpoint-{attempt}")
        assert streamed.returncode == 0, streamed.stdout[-6000:]
    cluster, session = cassandra_session(settings, engine.keyspace)
    try:
        count = session.execute("SELECT count(*) FROM created_users").one()[0]
    finally:
        cluster.shutdown()
    assert count == USERS


def test_inprocess_engine_reports_bad_pipeline_sql_before_streaming(settings, unique_name, tmp_path):
    sql = tmp_path / "bad.sql"
    sql.write_text("SELECT no_such_column FROM raw_users")
    args = ["--engine", "inprocess", "--sql-file", str(sql)]
    args += ["--cassandra-nodes", f"{settings.host}:{settings.cassandra_port}", "--cassandra-keyspace", unique_name]
    streamed = run_stream(settings, unique_name, args, tmp_path / "checkpoint")
    assert streamed.returncode == 2, streamed.stdout[-3000:]
    assert "--engine inprocess cannot run pipeline 'users'" in streamed.stdout
    assert "no_such_column" in streamed.stdout


# Faults: nothing lost, nothing extra. Each run is killed once some but not all of the
# users are in Cassandra, then started again on the same checkpoint.
FAULT_USERS = 20000


def _stored_ids(settings, keyspace: str) -> set[uuid.UUID]:
    """The ids in created_users; none while the job has not created the table yet."""
    from cassandra import InvalidRequest
    from cassandra.cluster import Cluster

    cluster = Cluster([settings.host], port=settings.cassandra_port)
    try:
        return {row.id for row in cluster.connect().execute(f"SELECT id FROM {keyspace}.created_users")}
    except InvalidRequest:
        return set()
    finally:
        cluster.shutdown()


def _wait_for_partial_progress(
    settings, keyspace: str, job: subprocess.Popen, log: Path, users: int = FAULT_USERS
) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        stored = len(_stored_ids(settings, keyspace))
        if 0 < stored < users:
            return
        assert stored < users, f"the job stored all {users} users before the fault; produce more"
        assert job.poll() is None, f"the job ended before the fault:\n{log.read_text()[-4000:]}"
        time.sleep(0.2)
    pytest.fail(f"no users reached Cassandra within 300 s:\n{log.read_text()[-4000:]}")


def _produced_ids(settings, topic: str) -> set[uuid.UUID]:
    return {uuid.UUID(m.key().decode()) for m in read_topic(settings, topic)}


def _serve_env(settings, keyspace: str) -> dict[str, str]:
    return {
        **os.environ,
        "QUIVER_CASSANDRA_NODES": f"{settings.host}:{settings.cassandra_port}",
        "QUIVER_CASSANDRA_KEYSPACE": keyspace,
    }


def _kill_serve_mid_run(settings, topic: str, env, port: int, job_args, checkpoint, tmp_path) -> subprocess.Popen:
    """Starts `quiver serve` on `port` and the job, and kills -9 the service once some but
    not all users are stored; returns the job, still running."""
    keyspace = env["QUIVER_CASSANDRA_KEYSPACE"]
    job_log = tmp_path / "job-1.log"
    with conftest.running_serve(["--sink", "cassandra"], env, tmp_path / "serve.log", flight_port=port) as serve:
        with job_log.open("w") as out:
            job = subprocess.Popen(stream_command(settings, topic, job_args, checkpoint), stdout=out, stderr=out)
        _wait_for_partial_progress(settings, keyspace, job, job_log)
        serve.process.kill()
        serve.process.wait()
    return job


def test_a_killed_flight_service_loses_nothing(quiver_bin, settings, unique_name, tmp_path):
    """kill -9 of `quiver serve` mid-run, down for longer than the tasks wait for it,
    fails the job with the reason; with the service back, the job restarted on its
    checkpoint stores exactly the produced users."""
    topic, keyspace, checkpoint = unique_name, unique_name, tmp_path / "checkpoint"
    produce_users(quiver_bin, settings, topic, FAULT_USERS)
    env, port = _serve_env(settings, keyspace), conftest.free_port()
    args = ["--engine", "flight", "--flight-endpoint", f"grpc://127.0.0.1:{port}"]
    job = _kill_serve_mid_run(settings, topic, env, port, [*args, "--connect-retry", "1"], checkpoint, tmp_path)
    job_log = (tmp_path / "job-1.log").read_text
    assert job.wait(timeout=600) != 0, "the job must fail while the Flight service is down"
    assert f"the Flight service at grpc://127.0.0.1:{port} could not be reached" in job_log()
    assert "a restart resumes from checkpoint" in job_log()

    with conftest.running_serve(["--sink", "cassandra"], env, tmp_path / "serve.log", flight_port=port):
        resumed = run_stream(settings, topic, args, checkpoint)
    assert resumed.returncode == 0, resumed.stdout[-6000:]
    assert _stored_ids(settings, keyspace) == _produced_ids(settings, topic)


def test_a_flight_service_restarted_within_the_retry_window_costs_nothing(quiver_bin, settings, unique_name, tmp_path):
    """kill -9 of `quiver serve` mid-run and a new one on the same port: the tasks wait
    for it (--connect-retry) and the job finishes with exactly the produced users."""
    topic, keyspace, checkpoint = unique_name, unique_name, tmp_path / "checkpoint"
    produce_users(quiver_bin, settings, topic, FAULT_USERS)
    env, port = _serve_env(settings, keyspace), conftest.free_port()
    args = ["--engine", "flight", "--flight-endpoint", f"grpc://127.0.0.1:{port}", "--connect-retry", "60"]
    job = _kill_serve_mid_run(settings, topic, env, port, args, checkpoint, tmp_path)
    with conftest.running_serve(["--sink", "cassandra"], env, tmp_path / "serve-2.log", flight_port=port):
        assert job.wait(timeout=600) == 0, (tmp_path / "job-1.log").read_text()[-6000:]
    assert _stored_ids(settings, keyspace) == _produced_ids(settings, topic)


def test_a_killed_driver_resumes_from_its_checkpoint(quiver_bin, settings, unique_name, tmp_path):
    """kill -9 of the Spark driver (spark-submit and its Python) mid-run; the job started
    again on the same checkpoint stores exactly the produced users. In-process engine."""
    topic, keyspace, checkpoint = unique_name, unique_name, tmp_path / "checkpoint"
    produce_users(quiver_bin, settings, topic, FAULT_USERS)
    args = ["--engine", "inprocess", "--cassandra-nodes", f"{settings.host}:{settings.cassandra_port}"]
    args += ["--cassandra-keyspace", keyspace]
    job_log = tmp_path / "job-1.log"
    with job_log.open("w") as out:
        job = subprocess.Popen(
            stream_command(settings, topic, args, checkpoint), stdout=out, stderr=out, start_new_session=True
        )
    try:
        _wait_for_partial_progress(settings, keyspace, job, job_log)
    finally:
        os.killpg(job.pid, signal.SIGKILL)
        job.wait()

    resumed = run_stream(settings, topic, args, checkpoint)
    assert resumed.returncode == 0, resumed.stdout[-6000:]
    assert _stored_ids(settings, keyspace) == _produced_ids(settings, topic)


@pytest.mark.parametrize("target", ["spark-submit", "its process group"])
def test_a_sigterm_to_spark_submit_stops_the_job_gracefully(quiver_bin, settings, unique_name, tmp_path, target):
    """A SIGTERM to spark-submit, or to its whole process group, as supervisord, systemd,
    `timeout` and `docker compose stop` send it, stops the query between two batches: the
    job logs its summary, exits 0 and leaves no process behind."""
    topic = keyspace = unique_name
    produce_users(quiver_bin, settings, topic, 500)
    args = ["--engine", "inprocess", "--cassandra-nodes", f"{settings.host}:{settings.cassandra_port}"]
    args += ["--cassandra-keyspace", keyspace]
    command = stream_command(settings, topic, args, tmp_path / "checkpoint")
    # Micro-batches every second until stopped.
    command[command.index("available-now")] = "1 second"
    log = tmp_path / "job.log"
    with log.open("w") as out:
        job = subprocess.Popen(command, stdout=out, stderr=out, start_new_session=True)
    try:
        wait_for("the users in Cassandra", lambda: len(_stored_ids(settings, keyspace)) == 500, job, log)
        drivers = [
            int(child)
            for children in Path(f"/proc/{job.pid}/task").glob("*/children")
            for child in children.read_text().split()
        ]
        assert drivers, "spark-submit runs no Python driver"
        if target == "spark-submit":
            os.kill(job.pid, signal.SIGTERM)
        else:
            os.killpg(job.pid, signal.SIGTERM)
        returncode = job.wait(timeout=120)
        deadline = time.monotonic() + 30
        while any(Path(f"/proc/{pid}").exists() for pid in drivers) and time.monotonic() < deadline:
            time.sleep(0.5)
        left = [pid for pid in drivers if Path(f"/proc/{pid}").exists()]
    finally:
        # Whatever is left of the group (a driver that outlived spark-submit, too).
        try:
            os.killpg(job.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        job.wait()
    text = log.read_text()
    assert returncode == 0, text[-6000:]
    assert "SIGTERM received" in text and "done: " in text, text[-6000:]
    assert not left, f"the Python driver outlived the job:\n{text[-6000:]}"


# Real-time mode: the query never ends by itself, so each test streams until Cassandra
# holds what it waits for, then stops the job.
REALTIME_ARGS = ["--trigger", "realtime", "--checkpoint-interval", "10 seconds", "--restart-backoff", "1"]


def start_stream(
    settings, topic: str, engine_args: list[str], checkpoint: Path, log: Path, extra_args: tuple[str, ...] = ()
) -> subprocess.Popen:
    """The job running until stopped (stop_job): the job's default trigger (1-s micro-batches)
    unless `extra_args` name another, its output in `log`."""
    command = stream_command(settings, topic, engine_args, checkpoint)
    command = [*command[: command.index("--trigger")], *command[command.index("--max-offsets-per-trigger") + 2 :]]
    with log.open("w") as out:
        # Its own process group, so that stopping it reaches spark-submit and the Python driver.
        return subprocess.Popen([*command, *extra_args], stdout=out, stderr=out, start_new_session=True)


def start_realtime(settings, topic: str, engine_args: list[str], checkpoint: Path, log: Path) -> subprocess.Popen:
    return start_stream(settings, topic, engine_args, checkpoint, log, tuple(REALTIME_ARGS))


def wait_for(what: str, done, job: subprocess.Popen, log: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert job.poll() is None, f"the job ended while waiting for {what}:\n{log.read_text()[-6000:]}"
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout:.0f} s:\n{log.read_text()[-6000:]}")
        time.sleep(0.5)


def _produce_versions(settings, topic: str, message, count: int) -> None:
    """`count` new versions of the user in `message`, with the same key, each with another
    first name; Kafka keeps them in order on the key's partition."""
    user = json.loads(message.value())
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap, "acks": "all"})
    for i in range(count):
        user["name"]["first"] = f"version {i}"
        producer.produce(topic, json.dumps(user).encode(), key=message.key())
    assert producer.flush(30) == 0


def _first_name(settings, keyspace: str, message) -> str | None:
    """The first name stored for the user of `message`, or None while there is no row."""
    cluster, session = cassandra_session(settings, keyspace)
    try:
        row = session.execute(
            "SELECT first_name FROM created_users WHERE id = %s", (expected_row(message)["id"],)
        ).one()
    finally:
        cluster.shutdown()
    return row.first_name if row else None


def _last_versions(messages, bad: dict[bytes, str]) -> dict[uuid.UUID, dict]:
    """The expected row of every user: its newest record's, by offset on its partition."""
    expected = {}
    for message in sorted(messages, key=lambda m: (m.partition(), m.offset())):
        if message.value() not in bad:
            row = expected_row(message)
            expected[row["id"]] = row
    return expected


def test_realtime_mode_writes_every_user_s_last_version_and_rejects_bad_records(
    quiver_bin, settings, unique_name, tmp_path
):
    """Real-time mode through the JVM writer and `quiver serve`: users already in the topic
    and users produced while the query runs, many versions of one user and malformed
    records; then a replay of the whole topic from a new checkpoint. Every user lands as
    the mapping of its last version, every bad record as a reject, nothing else."""
    topic = keyspace = unique_name
    produce_users(quiver_bin, settings, topic)
    env = _serve_env(settings, keyspace)
    log = tmp_path / "job.log"
    with conftest.running_serve(["--sink", "cassandra"], env, tmp_path / "serve.log") as serve:
        args = ["--engine", "flight", "--flight-endpoint", serve.location]
        job = start_realtime(settings, topic, args, tmp_path / "checkpoint", log)
        try:
            wait_for("the first users in Cassandra", lambda: _stored_ids(settings, keyspace), job, log)
            # While the query runs: more users, versions of one user, bad records.
            produce_users(quiver_bin, settings, topic, count=1000, seed=SEED + 1)
            first = read_topic(settings, topic)[0]
            _produce_versions(settings, topic, first, 50)
            bad = _produce_bad_records(settings, topic)
            messages = read_topic(settings, topic)
            expected = _last_versions(messages, bad)
            assert len(expected) == USERS + 1000

            def landed() -> bool:
                cluster, session = cassandra_session(settings, keyspace)
                try:
                    rejects = session.execute("SELECT count(*) FROM rejected_users").one()[0]
                finally:
                    cluster.shutdown()
                return (
                    _stored_ids(settings, keyspace) == set(expected)
                    and rejects == len(bad)
                    and _first_name(settings, keyspace, first) == "version 49"
                )

            wait_for("every user and reject in Cassandra", landed, job, log)
        finally:
            stop_job(job)
        assert "real-time batches" in log.read_text(), log.read_text()[-6000:]

        # A replay of everything (a new checkpoint, micro-batches) puts no older version back.
        replayed = run_stream(settings, topic, args, tmp_path / "checkpoint-replay")
        assert replayed.returncode == 0, replayed.stdout[-6000:]

    cluster, session = cassandra_session(settings, keyspace)
    try:
        rows = {r["id"]: r for r in _as_dicts(session.execute("SELECT * FROM created_users"))}
        rejects = list(_as_dicts(session.execute("SELECT * FROM rejected_users")))
    finally:
        cluster.shutdown()
    assert set(rows) == set(expected)
    for user_id, want in expected.items():
        got = {k: rows[user_id][k] for k in want}
        assert got == want, f"row {user_id} is not the mapping of its last version"
        assert want["event_time"] <= rows[user_id]["processed_at"] <= rows[user_id]["written_at"]
    bad_offsets = {(m.partition(), m.offset()): m.value() for m in messages if m.value() in bad}
    assert {(r["kafka_partition"], r["kafka_offset"]): r["raw_value"] for r in rejects} == bad_offsets


def test_realtime_mode_rides_out_a_killed_flight_service(quiver_bin, settings, unique_name, tmp_path):
    """kill -9 of `quiver serve` while real-time tasks stream to it, and a new one 10 s
    later on the same port: the tasks fail, the driver restarts the query from its
    checkpoint, and Cassandra ends with exactly the produced users, each its last version."""
    topic = keyspace = unique_name
    # Real-time tasks write a backlog fast: enough users that the kill comes mid-stream.
    produce_users(quiver_bin, settings, topic, 5 * FAULT_USERS)
    env, port = _serve_env(settings, keyspace), conftest.free_port()
    args = ["--engine", "flight", "--flight-endpoint", f"grpc://127.0.0.1:{port}", "--connect-retry", "1"]
    log = tmp_path / "job.log"
    with conftest.running_serve(["--sink", "cassandra"], env, tmp_path / "serve-1.log", flight_port=port) as serve:
        job = start_realtime(settings, topic, args, tmp_path / "checkpoint", log)
        try:
            _wait_for_partial_progress(settings, keyspace, job, log, 5 * FAULT_USERS)
            serve.process.kill()
            serve.process.wait()
        except BaseException:
            stop_job(job)
            raise
    try:
        # Users produced while the service is down wait in Kafka.
        produce_users(quiver_bin, settings, topic, count=1000, seed=SEED + 1)
        first = read_topic(settings, topic)[0]
        _produce_versions(settings, topic, first, 20)
        time.sleep(10)
        with conftest.running_serve(["--sink", "cassandra"], env, tmp_path / "serve-2.log", flight_port=port):
            expected = _last_versions(read_topic(settings, topic), {})

            def landed() -> bool:
                return (
                    _stored_ids(settings, keyspace) == set(expected)
                    and _first_name(settings, keyspace, first) == "version 19"
                )

            wait_for("every user after the restart", landed, job, log, timeout=600)
    finally:
        stop_job(job)
    text = log.read_text()
    assert "the query failed; restart 1 of 5 from checkpoint" in text, text[-6000:]
    cluster, session = cassandra_session(settings, keyspace)
    try:
        rows = {r.id: r.first_name for r in session.execute("SELECT id, first_name FROM created_users")}
    finally:
        cluster.shutdown()
    assert rows == {user_id: want["first_name"] for user_id, want in expected.items()}


def _as_dicts(result):
    for row in result:
        yield row._asdict()
