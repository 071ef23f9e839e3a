"""The fault matrix on the single-node stack: under a steady stream (`quiver produce
--rate`, the job in 1-s micro-batches), one component goes away and comes back, and
afterwards Cassandra must hold exactly the produced users, each with its last version,
and the job must have ridden through without exiting. What each fault cost is measured
and written to $QUIVER_STATE_DIR/logs/test/faults/<test>.json for docs/STACK.md.

Its own suite (`scripts/test` runs it after the others; alone:
`scripts/test --only faults`): each case takes one to two minutes and takes down
components that every other test needs.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from spark_job import stop_job
from test_stream import read_topic, start_stream

import conftest
from conftest import ROOT

RATE = 2000
USERS = 120_000


@pytest.fixture(scope="module")
def quiver_bin() -> str:
    return str(conftest.quiver_bin())


def stack(*args: str) -> None:
    done = subprocess.run([str(ROOT / "scripts" / "stack"), *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"scripts/stack {' '.join(args)}:\n{done.stdout}{done.stderr}"


def _last_offsets(settings, keyspace: str) -> dict[uuid.UUID, tuple[int, int]]:
    """Each stored user's Kafka partition and offset; empty before the table exists."""
    from cassandra import InvalidRequest
    from cassandra.cluster import Cluster, NoHostAvailable

    cluster = Cluster([settings.host], port=settings.cassandra_port)
    try:
        rows = cluster.connect().execute(f"SELECT id, kafka_partition, kafka_offset FROM {keyspace}.created_users")
        return {r.id: (r.kafka_partition, r.kafka_offset) for r in rows}
    except (InvalidRequest, NoHostAvailable):
        return {}
    finally:
        cluster.shutdown()


@dataclass
class Outcome:
    """What one fault cost, in seconds from the start of the stream."""

    fault: str
    engine: str
    timeline: dict[str, float] = field(default_factory=dict)
    rows_before_fault: int = 0

    def mark(self, event: str, began: float) -> None:
        self.timeline[event] = round(time.monotonic() - began, 1)


def run_fault(
    quiver_bin, settings, unique_name: str, tmp_path: Path, engine: str, fault_name: str, fault: Callable[[], None]
) -> tuple[Outcome, str]:
    """Streams USERS users at RATE/s, runs `fault` once some have been written, waits
    until Cassandra holds every produced user, stops the job (SIGTERM) and checks it all."""
    topic = keyspace = unique_name
    log = tmp_path / "job.log"
    if engine == "flight":
        env = {
            **os.environ,
            "QUIVER_CASSANDRA_NODES": f"{settings.host}:{settings.cassandra_port}",
            "QUIVER_CASSANDRA_KEYSPACE": keyspace,
        }
        serve = conftest.running_serve(["--sink", "cassandra"], env, tmp_path / "serve.log")
    else:
        serve = None
    outcome = Outcome(fault_name, engine)
    stack("topic", topic, "--partitions", "2")
    began = time.monotonic()
    producer = subprocess.Popen(
        [
            *(quiver_bin, "produce", "--source", "synthetic", "--count", str(USERS), "--rate", str(RATE)),
            *("--topic", topic, "--partitions", "2", "--bootstrap-servers", settings.kafka_bootstrap),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        with serve if serve is not None else nullcontext() as running:
            if engine == "flight":
                args = ["--engine", "flight", "--flight-endpoint", running.location]
            else:
                args = ["--engine", "inprocess", "--cassandra-nodes", f"{settings.host}:{settings.cassandra_port}"]
                args += ["--cassandra-keyspace", keyspace]
            job = start_stream(settings, topic, args, tmp_path / "checkpoint", log)
            try:
                _wait(lambda: len(_last_offsets(settings, keyspace)) > 0, "the first users in Cassandra", job, log)
                outcome.mark("first rows written", began)
                outcome.rows_before_fault = len(_last_offsets(settings, keyspace))
                outcome.mark("fault", began)
                fault()
                outcome.mark("component back", began)
                written = len(_last_offsets(settings, keyspace))
                _wait(lambda: len(_last_offsets(settings, keyspace)) > written, "new rows after the fault", job, log)
                outcome.mark("rows written again", began)
                produced_out, _ = producer.communicate(timeout=600)
                assert producer.returncode == 0, produced_out[-3000:]
                outcome.mark("producer done", began)
                expected = _expected(settings, topic)
                assert len(expected) == USERS
                _wait(lambda: len(_last_offsets(settings, keyspace)) >= USERS, "every user in Cassandra", job, log)
                outcome.mark("caught up", began)
            finally:
                stop_job(job)
        text = log.read_text()
        assert job.returncode == 0, f"the job did not ride the fault out:\n{text[-6000:]}"
        stored = _last_offsets(settings, keyspace)
        assert stored.keys() == expected.keys(), (
            f"{len(stored.keys() - expected.keys())} extra, {len(expected.keys() - stored.keys())} missing"
        )
        assert stored == expected, "a user is stored with an older version than Kafka's last"
    finally:
        if producer.poll() is None:
            producer.kill()
            producer.wait()
    out = Path(os.environ.get("QUIVER_STATE_DIR", ROOT / ".quiver")) / "logs" / "test" / "faults"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{fault_name}-{engine}.json").write_text(json.dumps(outcome.__dict__, indent=2) + "\n")
    return outcome, log.read_text()


def _expected(settings, topic: str) -> dict[uuid.UUID, tuple[int, int]]:
    """Each produced user's last partition and offset in Kafka."""
    last: dict[uuid.UUID, tuple[int, int]] = {}
    for m in read_topic(settings, topic):
        key = uuid.UUID(m.key().decode())
        if key not in last or last[key][1] < m.offset():
            last[key] = (m.partition(), m.offset())
    return last


def _wait(done: Callable[[], bool], what: str, job: subprocess.Popen, log: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert job.poll() is None, f"the job ended while waiting for {what}:\n{log.read_text()[-6000:]}"
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout:.0f} s:\n{log.read_text()[-6000:]}")
        time.sleep(0.5)


def _down_for(component: str, seconds: float) -> Callable[[], None]:
    def fault() -> None:
        stack("down", component)
        time.sleep(seconds)
        stack("up", component)

    return fault


@pytest.mark.parametrize("engine", ["flight", "inprocess"])
def test_a_cassandra_outage_of_30_s_is_ridden_through(quiver_bin, settings, unique_name, tmp_path, engine):
    """Cassandra stopped for 30 s (and the time it takes to stop and start): the writes
    wait for it within their retry window, and no task, query or job fails."""
    outcome, text = run_fault(
        quiver_bin, settings, unique_name, tmp_path, engine, "cassandra-30s", _down_for("cassandra", 30)
    )
    assert "a restart resumes from checkpoint" not in text, text[-6000:]
    if engine == "flight":
        serve_log = (tmp_path / "serve.log").read_text()
        assert "Cassandra cannot take writes now" in serve_log, serve_log[-3000:]
        assert "Cassandra takes writes again" in serve_log, serve_log[-3000:]
    print(json.dumps(outcome.__dict__))


def test_a_kafka_outage_of_20_s_is_ridden_through(quiver_bin, settings, unique_name, tmp_path):
    """Kafka stopped for 20 s: the producer and Spark's Kafka source wait for it; the job
    neither fails nor loses or repeats a record."""
    outcome, text = run_fault(
        quiver_bin, settings, unique_name, tmp_path, "flight", "kafka-20s", _down_for("kafka", 20)
    )
    assert "a restart resumes from checkpoint" not in text, text[-6000:]
    print(json.dumps(outcome.__dict__))
