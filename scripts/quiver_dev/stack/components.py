"""The stack's components in start order, the groups that name several, and what each
kind needs running first."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from quiver_dev.stack.airflow import (
    airflow_api_server_healthy,
    airflow_api_server_prepare,
    airflow_dag_processor_prepare,
    airflow_heartbeat,
    airflow_scheduler_prepare,
)
from quiver_dev.stack.cassandra import cassandra_healthy, cassandra_ports, cassandra_prepare
from quiver_dev.stack.kafka import kafka_healthy, kafka_ports, kafka_prepare
from quiver_dev.stack.postgres import postgres_after_start, postgres_healthy, postgres_prepare
from quiver_dev.stack.prometheus import prometheus_healthy, prometheus_prepare
from quiver_dev.stack.settings import Settings, StackError, node_name
from quiver_dev.stack.spark import (
    spark_master_healthy,
    spark_master_prepare,
    spark_worker_healthy,
    spark_worker_ports,
    spark_worker_prepare,
)


@dataclass
class Component:
    name: str  # the single-node stack's name, or NAME-n for node n of a cluster
    ports: Callable[[Settings], dict[str, int]]  # QUIVER_<name> setting -> port
    prepare: Callable[[Settings], Path]  # writes config, returns the launcher script
    healthy: Callable[[Settings], str]  # raises when not answering, else a short summary
    start_timeout: float
    run_as_postgres: bool = False
    after_start: Callable[[Settings], None] | None = None
    # Started only when asked for by name or with --with-airflow / --with-monitoring; not
    # needed for 'status' to pass.
    optional: bool = False
    node: int = 0  # Settings.node_host(node) is where it listens
    kind: str = ""  # what every node of a cluster shares: kafka, cassandra, spark-worker

    def __post_init__(self) -> None:
        self.kind = self.kind or self.name


def _per_node(base: str, nodes: list[int], ports, prepare, healthy, start_timeout: float) -> list[Component]:
    """A component for each node, whose functions are given the node."""
    return [
        Component(
            node_name(base, n),
            functools.partial(ports, node=n),
            functools.partial(prepare, node=n),
            functools.partial(healthy, node=n),
            start_timeout,
            node=n,
            kind=base,
        )
        for n in nodes
    ]


def components(s: Settings) -> list[Component]:
    """The stack's components in start order, with a Kafka broker and a Cassandra node for
    each of `s.node_ids` and a Spark worker for each of `s.worker_ids`."""
    kafka = _per_node("kafka", s.node_ids, kafka_ports, kafka_prepare, kafka_healthy, 90)
    cassandra = _per_node("cassandra", s.node_ids, cassandra_ports, cassandra_prepare, cassandra_healthy, 180)
    workers = _per_node(
        "spark-worker", s.worker_ids, spark_worker_ports, spark_worker_prepare, spark_worker_healthy, 90
    )
    return [
        # Postgres first: it is quick and not a JVM. The JVMs start one after another.
        Component(
            "postgres",
            lambda s: {"POSTGRES_PORT": s.postgres_port},
            postgres_prepare,
            postgres_healthy,
            60,
            run_as_postgres=True,
            after_start=postgres_after_start,
        ),
        *kafka,
        *cassandra,
        Component(
            "spark-master",
            lambda s: {"SPARK_MASTER_PORT": s.spark_master_port, "SPARK_MASTER_UI_PORT": s.spark_master_ui_port},
            spark_master_prepare,
            spark_master_healthy,
            90,
        ),
        *workers,
        Component(
            "prometheus",
            lambda s: {"PROMETHEUS_PORT": s.prometheus_port},
            prometheus_prepare,
            prometheus_healthy,
            60,
            optional=True,
        ),
        Component(
            "airflow-api-server",
            lambda s: {"AIRFLOW_PORT": s.airflow_port},
            airflow_api_server_prepare,
            airflow_api_server_healthy,
            180,
            optional=True,
        ),
        Component(
            "airflow-scheduler",
            lambda s: {},
            airflow_scheduler_prepare,
            airflow_heartbeat("scheduler"),
            120,
            optional=True,
        ),
        Component(
            "airflow-dag-processor",
            lambda s: {},
            airflow_dag_processor_prepare,
            airflow_heartbeat("dag_processor"),
            120,
            optional=True,
        ),
    ]


def by_name(s: Settings) -> dict[str, Component]:
    return {c.name: c for c in components(s)}


def by_kind(components: list[Component]) -> dict[str, list[str]]:
    """The components' names, kind by kind, in start order."""
    kinds: dict[str, list[str]] = {}
    for c in components:
        kinds.setdefault(c.kind, []).append(c.name)
    return kinds


def groups(s: Settings) -> dict[str, list[str]]:
    """Short names that start several components: in a cluster, 'kafka', 'cassandra' and
    'spark-worker' name all their nodes."""
    kinds = by_kind(components(s))
    return {
        **{kind: names for kind, names in kinds.items() if names != [kind]},
        "spark": ["spark-master", *kinds["spark-worker"]],
        "airflow": ["airflow-api-server", "airflow-scheduler", "airflow-dag-processor"],
        "monitoring": ["prometheus"],
    }


# Health checks of the scheduler and DAG processor ask the API server.
_AIRFLOW_NEEDS = ["postgres", "airflow-api-server"]


# What each kind of component needs running first.
REQUIRES = {
    "spark-worker": ["spark-master"],
    "airflow-api-server": ["postgres"],
    "airflow-scheduler": _AIRFLOW_NEEDS,
    "airflow-dag-processor": _AIRFLOW_NEEDS,
}


def members(s: Settings, name: str) -> list[str]:
    """The components a name given on the command line stands for."""
    known, named = by_name(s), groups(s)
    chosen = named.get(name, [name])
    if any(member not in known for member in chosen):
        raise StackError(f"unknown component '{name}': choose from {', '.join([*known, *named])}")
    return chosen


def expand(s: Settings, names: list[str]) -> list[str]:
    known = by_name(s)
    wanted: list[str] = []
    for name in names or [c.name for c in known.values() if not c.optional]:
        for member in members(s, name):
            for needed in [*REQUIRES.get(known[member].kind, []), member]:
                if needed not in wanted:
                    wanted.append(needed)
    return [name for name in known if name in wanted]
