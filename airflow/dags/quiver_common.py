"""What the quiver DAGs share: where the `quiver` binary is, the stack's connections, and
running a command so that its output lands in the task log and a failure carries the
reason.

The binary is `$QUIVER_BIN` if set, else `quiver` on PATH. Connections come from
Airflow (`AIRFLOW_CONN_<ID>` variables on the local stack, see docs/AIRFLOW.md):
`kafka_default` (host:port of a broker), `postgres_default`, `cassandra_default` and
`spark_default`.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections import deque
from pathlib import Path

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowException, AirflowFailException

log = logging.getLogger(__name__)

# The checkout: DAGs run the Spark job and the SQL from it.
ROOT = Path(__file__).resolve().parents[2]

# Kafka's rule for topic names.
TOPIC_PATTERN = r"^[A-Za-z0-9._-]{1,249}$"


def quiver_bin() -> str:
    explicit = os.environ.get("QUIVER_BIN")
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise AirflowFailException(
                f"QUIVER_BIN={explicit} is not an executable file: build it (cargo build --workspace) or fix QUIVER_BIN"
            )
        return explicit
    found = shutil.which("quiver")
    if not found:
        raise AirflowFailException(
            "the quiver binary was not found: set QUIVER_BIN to its path (e.g. ~/.cache/quiver/target/debug/quiver) "
            "or put it on PATH"
        )
    return found


def kafka_bootstrap(conn_id: str = "kafka_default") -> str:
    """host:port[,host:port] of the Kafka connection (its host may list several brokers)."""
    conn = BaseHook.get_connection(conn_id)
    if not conn.host:
        raise AirflowFailException(
            f"connection {conn_id} has no host: set e.g. AIRFLOW_CONN_KAFKA_DEFAULT=kafka://127.0.0.1:9092"
        )
    return conn.host if conn.port is None else f"{conn.host}:{conn.port}"


def run(argv: list[str], env: dict[str, str] | None = None, keep_lines: int = 40) -> None:
    """Runs argv, logging each output line as it comes. A non-zero exit fails the task
    with the last lines of the output as the reason."""
    log.info("running: %s", " ".join(argv))
    tail: deque[str] = deque(maxlen=keep_lines)
    with subprocess.Popen(
        # NO_COLOR: quiver's log lines without terminal colour codes in the task log.
        argv,
        env={**os.environ, "NO_COLOR": "1", **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            line = line.rstrip("\n")
            log.info("%s", line)
            tail.append(line)
    if process.returncode != 0:
        # Not AirflowFailException: a broker or database that was briefly away is worth a retry.
        raise AirflowException(
            f"{Path(argv[0]).name} {argv[1]} exited with status {process.returncode}:\n" + "\n".join(tail)
        )
