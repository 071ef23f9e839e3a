"""The fault matrix on the 3-node cluster (`scripts/stack up --nodes 3`: 3 Kafka brokers
with topics of 3 replicas and min.insync.replicas=2, 3 Cassandra nodes with the keyspace
at replication factor 3 written at LOCAL_QUORUM, 2 Spark workers) and two `quiver serve`
instances: under a steady stream one node of a kind is killed with SIGKILL, and the stream
must go on through it, without the job exiting or its query restarting; afterwards
Cassandra holds exactly the produced users, each with its last version. What each fault
cost is written to $QUIVER_STATE_DIR/logs/test/faults/ for docs/STACK.md.

Its own suite, which restarts the stack as a cluster: `scripts/test --only faults-cluster`
(or, on a running cluster, pytest on this file).
"""

from __future__ import annotations

import json
import signal
from collections.abc import Callable

import pytest
from test_faults import Stream, killed_for, run_fault
from test_stream import wait_for

import conftest
from quiver_dev import stack


@pytest.fixture(scope="module")
def quiver_bin() -> str:
    return str(conftest.quiver_bin())


@pytest.fixture(scope="module", autouse=True)
def cluster(settings) -> None:
    if settings.nodes < 3:
        pytest.fail(
            "these tests need the stack's cluster profile: 'scripts/stack down', then "
            "'scripts/stack up --nodes 3' (scripts/test --only faults-cluster does both)"
        )


def _kill_one_service(stream: Stream) -> None:
    """kill -9 of the first `quiver serve`, not started again, once it has taken batches;
    then the other one must take them."""
    killed, survivor = stream.serves
    # Its first task may start later than the other's.
    wait_for("the first service to take a batch", lambda: killed.rows_written() > 0, stream.job, stream.log, 120)
    killed.process.send_signal(signal.SIGKILL)
    killed.process.wait()
    before = survivor.rows_written()
    wait_for(
        "a batch to reach the other service", lambda: survivor.rows_written() > before, stream.job, stream.log, 120
    )


# Each node killed under the stream, and why the stream can go on without it.
FAULTS: dict[str, Callable[[stack.Settings], Callable[[Stream], None]]] = {
    # One of three brokers, started again 10 s later: its partitions' leadership moves to
    # the others, which still make min.insync.replicas=2; the producer sends through it.
    "cluster-kafka-broker-killed": lambda s: killed_for("kafka-2", 10, s),
    # One of three Cassandra nodes, started again 60 s later: LOCAL_QUORUM is two of each
    # row's three replicas; the node catches up from the others' hints once it is back.
    "cluster-cassandra-node-killed-60s": lambda s: killed_for("cassandra-3", 60, s),
    # One of the two `quiver serve`: each task whose service is gone fails over to the other.
    "cluster-serve-killed": lambda s: _kill_one_service,
    # One of the two Spark workers (its executor exits with it), started again 10 s later:
    # the lost tasks run again on the other worker's executor.
    "cluster-spark-worker-killed": lambda s: killed_for("spark-worker-2", 10, s),
}


@pytest.mark.parametrize("fault_name", list(FAULTS))
def test_a_killed_node_is_ridden_through(quiver_bin, settings, unique_name, tmp_path, fault_name):
    outcome, text = run_fault(
        quiver_bin, settings, unique_name, tmp_path, "flight", fault_name, FAULTS[fault_name](settings), serves=2
    )
    assert "a restart resumes from checkpoint" not in text, text[-6000:]
    print(json.dumps(outcome.__dict__))
