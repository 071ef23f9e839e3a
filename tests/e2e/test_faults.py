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

import datetime as dt
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_stream import produce_users, read_topic, start_stream, wait_for

import conftest
from conftest import ROOT, Serve
from quiver_dev import machine, stack
from quiver_dev.spark_job import stop_job

RATE = 2000
USERS = 120_000
# How often a read that timed out on the server is sent in all (_cluster).
READ_ATTEMPTS = 3


@pytest.fixture(scope="module")
def quiver_bin() -> str:
    return str(conftest.quiver_bin())


def stack_cli(*args: str) -> None:
    done = subprocess.run([str(ROOT / "scripts" / "stack"), *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"scripts/stack {' '.join(args)}:\n{done.stdout}{done.stderr}"


def _cluster(settings):
    """A driver for every Cassandra node of the stack (a cluster's too) whose reads that
    time out on the server are sent again, up to READ_ATTEMPTS times in all: on a saturated
    cluster a replica sometimes answers later than the coordinator waits (5 s), which says
    nothing about what is stored. The driver retries the one request (a page of a long
    read), not the read from its start."""
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import RetryPolicy

    class RetryReadTimeouts(RetryPolicy):
        def on_read_timeout(
            self, query, consistency, required_responses, received_responses, data_retrieved, retry_num
        ):
            if retry_num + 1 < READ_ATTEMPTS:
                return self.RETRY, consistency
            return self.RETHROW, None

    profile = ExecutionProfile(retry_policy=RetryReadTimeouts())
    return Cluster(
        settings.node_hosts, port=settings.cassandra_port, execution_profiles={EXEC_PROFILE_DEFAULT: profile}
    )


def _stored(settings, keyspace: str) -> dict[uuid.UUID, tuple[int, int, float]]:
    """Each stored user's Kafka partition and offset, and when Cassandra wrote it (epoch
    seconds); empty before the table exists or while Cassandra is away. Read at QUORUM, so
    that with a cluster's node down it still sees every write the sink made (LOCAL_QUORUM)."""
    from cassandra import ConsistencyLevel, InvalidRequest
    from cassandra.cluster import NoHostAvailable
    from cassandra.query import SimpleStatement

    cluster = _cluster(settings)
    query = SimpleStatement(
        f"SELECT id, kafka_partition, kafka_offset, written_at FROM {keyspace}.created_users",
        consistency_level=ConsistencyLevel.QUORUM,
    )
    try:
        rows = cluster.connect().execute(query)
        return {
            r.id: (r.kafka_partition, r.kafka_offset, r.written_at.replace(tzinfo=dt.UTC).timestamp()) for r in rows
        }
    except (InvalidRequest, NoHostAvailable):
        return {}
    finally:
        cluster.shutdown()


def _any_stored(settings, keyspace: str) -> bool:
    """Whether a user is in Cassandra yet: one row, not the table (a read of it all takes
    seconds once it holds tens of thousands)."""
    from cassandra import InvalidRequest
    from cassandra.cluster import NoHostAvailable

    cluster = _cluster(settings)
    try:
        return cluster.connect().execute(f"SELECT id FROM {keyspace}.created_users LIMIT 1").one() is not None
    except (InvalidRequest, NoHostAvailable):
        return False
    finally:
        cluster.shutdown()


@dataclass
class Outcome:
    """What one fault cost. Times are seconds from the start of the stream; the write
    times are Cassandra's own stamps (`written_at`) on the same machine's clock."""

    fault: str
    engine: str
    fault_began: float = 0
    component_back: float = 0
    # The last write before the fault's gap and the first after it: the stream's pause.
    last_write_before: float = 0
    first_write_after: float = 0
    caught_up: float = 0
    first_write: float = 0

    def timed(self, stamps: list[float], began: float) -> None:
        """Fills the write times from every row's `written_at`: the longest gap between
        two writes after the fault began is the pause."""
        stamps = sorted(stamps)
        fault = began + self.fault_began
        gaps = [(b - a, a, b) for a, b in zip(stamps, stamps[1:], strict=False) if b > fault]
        assert gaps, "every user was written before the fault began: it met no stream"
        _, before, after = max(gaps)
        self.last_write_before = round(before - began, 1)
        self.first_write_after = round(after - began, 1)
        self.caught_up = round(stamps[-1] - began, 1)
        self.first_write = round(stamps[0] - began, 1)


@dataclass
class Stream:
    """What a fault acts on: the flight engine's services and the running job, which a
    fault may kill and start again on its checkpoint."""

    serves: list[Serve]
    job: subprocess.Popen
    log: Path
    start: Callable[[Path], subprocess.Popen]

    def restart(self) -> None:
        """The job again, on the same checkpoint; its output in job-restarted.log."""
        self.log = self.log.with_name("job-restarted.log")
        self.job = self.start(self.log)


def run_fault(
    quiver_bin,
    settings,
    unique_name: str,
    tmp_path: Path,
    engine: str,
    fault_name: str,
    fault: Callable[[Stream], None],
    producer_through_fault: bool = True,
    serves: int = 1,
) -> tuple[Outcome, str]:
    """Streams USERS users at RATE/s, runs `fault` (given the flight engine's services)
    once some have been written, waits until Cassandra holds every produced user, stops the
    job (SIGTERM) and checks it all. Without `producer_through_fault`, half the users are
    sent before the fault and half after it, so that only the job meets it. With the flight
    engine, `serves` services take the job's batches (`--flight-endpoint` lists them all);
    service i logs to serve-i.log."""
    topic = keyspace = unique_name
    log = tmp_path / "job.log"
    # The stack's addresses as they are now: a cluster's, when the suite runs on one.
    serve_env = {**os.environ, **stack.stack_env(settings), "QUIVER_CASSANDRA_KEYSPACE": keyspace}
    outcome = Outcome(fault_name, engine)
    stack_cli("topic", topic, "--partitions", "2")

    def produce(count: int, seed: int) -> subprocess.Popen:
        return subprocess.Popen(
            [
                *(quiver_bin, "produce", "--source", "synthetic", "--count", str(count), "--rate", str(RATE)),
                *("--seed", str(seed), "--topic", topic, "--partitions", "2"),
                *("--bootstrap-servers", settings.kafka_bootstrap),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def delivered(producer: subprocess.Popen) -> None:
        out, _ = producer.communicate(timeout=600)
        assert producer.returncode == 0, out[-3000:]

    producer = None
    try:
        with ExitStack() as services:
            running = []
            if engine == "flight":
                for i in range(serves):
                    serve = conftest.running_serve(["--sink", "cassandra"], serve_env, tmp_path / f"serve-{i}.log")
                    running.append(services.enter_context(serve))
                args = ["--engine", "flight", "--flight-endpoint", ",".join(s.location for s in running)]
            else:
                args = ["--engine", "inprocess", "--cassandra-nodes", settings.cassandra_nodes]
                args += ["--cassandra-keyspace", keyspace]

            def start(job_log: Path) -> subprocess.Popen:
                return start_stream(settings, topic, args, tmp_path / "checkpoint", job_log)

            stream = Stream(running, start(log), log, start)
            try:
                # The users go out once the query runs, so that the fault meets a steady
                # stream rather than a backlog the job is still starting to read.
                wait_for("the query to start", lambda: "streaming " in log.read_text(), stream.job, log)
                began = time.time()
                producer = produce(USERS if producer_through_fault else USERS // 2, seed=1)
                wait_for("the first users in Cassandra", lambda: _any_stored(settings, keyspace), stream.job, log)
                if not producer_through_fault:
                    delivered(producer)
                outcome.fault_began = round(time.time() - began, 1)
                fault(stream)
                outcome.component_back = round(time.time() - began, 1)
                if not producer_through_fault:
                    producer = produce(USERS - USERS // 2, seed=2)
                delivered(producer)
                expected = _expected(settings, topic)
                assert len(expected) == USERS
                wait_for(
                    "every user in Cassandra",
                    lambda: len(_stored(settings, keyspace)) >= USERS,
                    stream.job,
                    stream.log,
                )
            finally:
                stop_job(stream.job)
        text = stream.log.read_text()
        assert stream.job.returncode == 0, f"the job did not ride the fault out:\n{text[-6000:]}"
        stored = _stored(settings, keyspace)
        assert stored.keys() == expected.keys(), (
            f"{len(stored.keys() - expected.keys())} extra, {len(expected.keys() - stored.keys())} missing"
        )
        offsets = {user: (partition, offset) for user, (partition, offset, _) in stored.items()}
        assert offsets == expected, "a user is stored with an older version than Kafka's last"
        outcome.timed([written for _, _, written in stored.values()], began)
    finally:
        if producer is not None and producer.poll() is None:
            producer.kill()
            producer.wait()
    out = Path(os.environ.get("QUIVER_STATE_DIR", ROOT / ".quiver")) / "logs" / "test" / "faults"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{fault_name}-{engine}.json").write_text(json.dumps(outcome.__dict__, indent=2) + "\n")
    return outcome, text


def _expected(settings, topic: str) -> dict[uuid.UUID, tuple[int, int]]:
    """Each produced user's last partition and offset in Kafka."""
    last: dict[uuid.UUID, tuple[int, int]] = {}
    for m in read_topic(settings, topic):
        key = uuid.UUID(m.key().decode())
        if key not in last or last[key][1] < m.offset():
            last[key] = (m.partition(), m.offset())
    return last


def _down_for(component: str, seconds: float) -> Callable[[Stream], None]:
    def fault(_: Stream) -> None:
        stack_cli("down", component)
        time.sleep(seconds)
        stack_cli("up", component)

    return fault


def killed_for(component: str, seconds: float, settings) -> Callable[[Stream], None]:
    """kill -9 of the component's process (supervisord does not restart it), and `up` later."""

    def fault(_: Stream) -> None:
        pid = stack.Supervisor(settings).info(component)["pid"]
        assert pid, f"{component} is not running"
        os.kill(pid, signal.SIGKILL)
        time.sleep(seconds)
        stack_cli("up", component)

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
        serve_log = (tmp_path / "serve-0.log").read_text()
        assert "Cassandra cannot take writes now" in serve_log, serve_log[-3000:]
        assert "Cassandra takes writes again" in serve_log, serve_log[-3000:]
    print(json.dumps(outcome.__dict__))


def test_a_kafka_outage_of_20_s_is_ridden_through(quiver_bin, settings, unique_name, tmp_path):
    """Kafka stopped for 20 s: Spark's Kafka source waits for it; the job neither fails nor
    loses or repeats a record. The producer sends before and after the outage, not through
    it: librdkafka sometimes never finds the partitions' leader again after its only broker
    restarted (docs/STACK.md, "Faults"), and `quiver produce` then fails after its delivery
    timeout, naming the records it could not deliver."""
    outcome, text = run_fault(
        quiver_bin,
        settings,
        unique_name,
        tmp_path,
        "flight",
        "kafka-20s",
        _down_for("kafka", 20),
        producer_through_fault=False,
    )
    assert "a restart resumes from checkpoint" not in text, text[-6000:]
    print(json.dumps(outcome.__dict__))


def test_a_killed_spark_worker_is_ridden_through(quiver_bin, settings, unique_name, tmp_path):
    """kill -9 of the Spark worker (its executor exits with it), started again 10 s later:
    the lost tasks run again on the new executor; the job neither fails nor loses or
    repeats a record."""
    outcome, text = run_fault(
        quiver_bin,
        settings,
        unique_name,
        tmp_path,
        "inprocess",
        "spark-worker-killed",
        killed_for("spark-worker", 10, settings),
    )
    assert "a restart resumes from checkpoint" not in text, text[-6000:]
    print(json.dumps(outcome.__dict__))


def test_a_killed_driver_is_recovered_by_a_restart_on_its_checkpoint(quiver_bin, settings, unique_name, tmp_path):
    """kill -9 of the job's whole process group (spark-submit's JVM, which is the driver,
    and its Python) under the steady stream: nothing can ride that out, so the job is
    started again 5 s later on the same checkpoint, as a supervisor would, and replays
    what the killed one had not committed; the upserts leave exactly the produced users."""

    def kill_driver(stream: Stream) -> None:
        os.killpg(stream.job.pid, signal.SIGKILL)
        stream.job.wait()
        deadline = time.monotonic() + 30
        while (left := _group_members(stream.job.pid)) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not left, f"processes {left} of the killed job are still alive"
        time.sleep(5)
        stream.restart()

    outcome, _ = run_fault(quiver_bin, settings, unique_name, tmp_path, "flight", "driver-killed", kill_driver)
    print(json.dumps(outcome.__dict__))


def _group_members(pgid: int) -> list[int]:
    """The processes still in process group `pgid`."""
    return [pid for pid, _, group, _ in machine.processes() if group == pgid]


def test_a_job_stopped_again_and_again_leaves_no_process_behind(quiver_bin, settings, unique_name, tmp_path):
    """The job started on one checkpoint and stopped with SIGTERM to its process group
    (as supervisord, systemd or compose stop it) five times: each time it exits 0 with its
    summary, and neither spark-submit nor the Python driver outlives it."""
    topic = keyspace = unique_name
    args = ["--engine", "inprocess", "--cassandra-nodes", f"{settings.host}:{settings.cassandra_port}"]
    args += ["--cassandra-keyspace", keyspace]
    for run in range(5):
        # New users each time, so that every run has a micro-batch to be stopped after.
        produce_users(quiver_bin, settings, topic, 100, seed=run)
        log = tmp_path / f"job-{run}.log"
        job = start_stream(settings, topic, args, tmp_path / "checkpoint", log)
        try:
            wait_for("a micro-batch", lambda log=log: "rows in" in log.read_text(), job, log)
        finally:
            stop_job(job)
        deadline = time.monotonic() + 30
        while (left := _group_members(job.pid)) and time.monotonic() < deadline:
            time.sleep(0.5)
        text = log.read_text()
        assert job.returncode == 0, f"run {run}:\n{text[-6000:]}"
        assert "done: " in text, f"run {run} printed no summary:\n{text[-6000:]}"
        assert not left, f"run {run} left processes {left} behind:\n{text[-6000:]}"
    assert len(_stored(settings, keyspace)) == 500
