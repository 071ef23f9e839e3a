"""The local stack: Kafka, Cassandra, a Spark standalone cluster, Postgres and, on request,
Airflow as local processes under supervisord, each with its own data and log folder in the
state folder.

Run it through scripts/stack (which picks the project's Python environment):

    scripts/stack up [COMPONENT...]      start (in order) and wait until each answers
    scripts/stack up --nodes 3           ... as a cluster: 3 Kafka brokers, 3 Cassandra nodes, 2 Spark workers
    scripts/stack up --with-airflow      ... and Airflow's API server, scheduler and DAG processor
    scripts/stack up --with-monitoring   ... and Prometheus, scraping every component
    scripts/stack down                   stop everything the stack started
    scripts/stack status                 every component, its port, whether it answers
    scripts/stack check [--serve]        what would stop it starting: taken ports, memory, disk
    scripts/stack logs [COMPONENT] [-f]  the tail of a component's log
    scripts/stack topic NAME [--partitions N]   create a Kafka topic if it is missing
    scripts/stack env                    the stack's addresses as shell variables
    scripts/stack spark-submit ARGS...   spark-submit to the stack's master, Kafka connector included
    scripts/stack airflow ARGS...        the airflow CLI with the stack's Airflow settings

Every setting comes from QUIVER_* environment variables (see Settings); the defaults are
the ports of docs/ARCHITECTURE.md, bound to 127.0.0.1. In the cluster profile, node n of
Kafka, Cassandra and the Spark workers listens on 127.0.0.n with the same ports.
"""

from __future__ import annotations

import argparse
import base64
import functools
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
import xmlrpc.client
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from quiver_dev import paths
from quiver_dev.paths import ROOT

# Partitions of a topic made by `scripts/stack topic` (compose.yaml's kafka-init makes the same).
TOPIC_PARTITIONS = 4


def _env(name: str, default: str) -> str:
    return os.environ.get(f"QUIVER_{name}", default)


def _port(name: str, default: int) -> int:
    raw = _env(name, str(default))
    try:
        port = int(raw)
    except ValueError:
        raise SystemExit(f"error: QUIVER_{name}={raw!r} is not a port number (1-65535)") from None
    if not 0 < port < 65536:
        raise SystemExit(f"error: QUIVER_{name}={port} is out of range (1-65535)")
    return port


def _read_versions() -> dict[str, str]:
    versions = {}
    for line in (ROOT / "scripts" / "versions.env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            versions[key] = value
    return versions


@dataclass(frozen=True)
class Settings:
    """Where the stack lives and what it listens on; each field has a QUIVER_* variable."""

    state: Path = field(default_factory=lambda: Path(_env("STATE_DIR", str(ROOT / ".quiver"))).resolve())
    host: str = field(default_factory=lambda: _env("BIND_HOST", "127.0.0.1"))
    kafka_port: int = field(default_factory=lambda: _port("KAFKA_PORT", 9092))
    kafka_controller_port: int = field(default_factory=lambda: _port("KAFKA_CONTROLLER_PORT", 9093))
    # Per node; unset, 1g, or 512m in the cluster profile (see __post_init__).
    kafka_heap: str = field(default_factory=lambda: _env("KAFKA_HEAP", ""))
    # Where the JMX exporter agents of Kafka and Cassandra answer Prometheus.
    kafka_metrics_port: int = field(default_factory=lambda: _port("KAFKA_METRICS_PORT", 9404))
    cassandra_metrics_port: int = field(default_factory=lambda: _port("CASSANDRA_METRICS_PORT", 9405))
    prometheus_port: int = field(default_factory=lambda: _port("PROMETHEUS_PORT", 9096))
    cassandra_port: int = field(default_factory=lambda: _port("CASSANDRA_PORT", 9042))
    cassandra_storage_port: int = field(default_factory=lambda: _port("CASSANDRA_STORAGE_PORT", 7000))
    cassandra_jmx_port: int = field(default_factory=lambda: _port("CASSANDRA_JMX_PORT", 7199))
    # Per node; unset, 2g, or 1g in the cluster profile.
    cassandra_heap: str = field(default_factory=lambda: _env("CASSANDRA_HEAP", ""))
    spark_master_port: int = field(default_factory=lambda: _port("SPARK_MASTER_PORT", 7077))
    spark_master_ui_port: int = field(default_factory=lambda: _port("SPARK_MASTER_UI_PORT", 9090))
    spark_worker_ui_port: int = field(default_factory=lambda: _port("SPARK_WORKER_UI_PORT", 9091))
    spark_worker_cores: str = field(default_factory=lambda: _env("SPARK_WORKER_CORES", "2"))
    spark_worker_memory: str = field(default_factory=lambda: _env("SPARK_WORKER_MEMORY", "4g"))
    postgres_port: int = field(default_factory=lambda: _port("POSTGRES_PORT", 5432))
    postgres_user: str = field(default_factory=lambda: _env("POSTGRES_USER", "quiver"))
    postgres_db: str = field(default_factory=lambda: _env("POSTGRES_DB", "quiver"))
    airflow_port: int = field(default_factory=lambda: _port("AIRFLOW_PORT", 8080))
    airflow_user: str = field(default_factory=lambda: _env("AIRFLOW_USER", "quiver"))
    airflow_db: str = field(default_factory=lambda: _env("AIRFLOW_DB", "airflow"))
    # Kafka brokers and Cassandra nodes: 1, or what `up --nodes N` chose for the running
    # stack, kept in the run folder until 'down' so that every later command sees it.
    nodes: int = field(init=False)

    def __post_init__(self) -> None:
        try:
            nodes = int(self.nodes_file.read_text())
        except (OSError, ValueError):
            nodes = 1
        object.__setattr__(self, "nodes", nodes)
        # Three nodes of each beside Spark must fit the memory one node of each had.
        if not self.kafka_heap:
            object.__setattr__(self, "kafka_heap", "512m" if nodes > 1 else "1g")
        if not self.cassandra_heap:
            object.__setattr__(self, "cassandra_heap", "1g" if nodes > 1 else "2g")

    @property
    def nodes_file(self) -> Path:
        return self.run / "nodes"

    @property
    def node_ids(self) -> list[int]:
        """0 for the single-node stack's one node; 1..n for a cluster's."""
        return [0] if self.nodes == 1 else list(range(1, self.nodes + 1))

    @property
    def worker_ids(self) -> list[int]:
        """The Spark workers: one, or two in a cluster (an executor can be lost)."""
        return [0] if self.nodes == 1 else [1, 2]

    def node_host(self, node: int) -> str:
        """Where node `node` listens: cluster node n on 127.0.0.n (all of 127/8 is loopback
        on Linux), so that every node keeps the single-node stack's ports."""
        return self.host if node == 0 else f"127.0.0.{node}"

    @property
    def node_hosts(self) -> list[str]:
        """Where each Kafka broker and Cassandra node listens."""
        return [self.node_host(n) for n in self.node_ids]

    @property
    def replication_factor(self) -> int:
        """Replicas of each Kafka partition and Cassandra row."""
        return min(3, self.nodes)

    @property
    def versions(self) -> dict[str, str]:
        return _read_versions()

    @property
    def venv(self) -> Path:
        return self.state / "venv"

    @property
    def airflow_venv(self) -> Path:
        return self.state / "airflow-venv"

    @property
    def run(self) -> Path:
        return self.state / "run"

    def data(self, component: str) -> Path:
        return self.state / "data" / component

    def logs(self, component: str) -> Path:
        return self.state / "logs" / component

    def log_file(self, component: str) -> Path:
        return self.logs(component) / f"{component}.log"

    def lib(self, name: str) -> Path:
        return self.state / "lib" / name

    @property
    def jmx_exporter_jar(self) -> Path:
        version = self.versions["JMX_EXPORTER_VERSION"]
        return self.lib(f"jmx-exporter-{version}") / f"jmx_prometheus_javaagent-{version}.jar"

    @property
    def kafka_lib(self) -> Path:
        return self.lib(f"kafka-{self.versions['KAFKA_VERSION']}")

    @property
    def cassandra_lib(self) -> Path:
        return self.lib(f"cassandra-{self.versions['CASSANDRA_VERSION']}")

    @property
    def spark_kafka_lib(self) -> Path:
        return self.lib(f"spark-kafka-{self.versions['SPARK_VERSION']}")

    @property
    def spark_kafka_jars(self) -> list[str]:
        return sorted(str(p) for p in self.spark_kafka_lib.glob("*.jar"))

    @property
    def spark_writer_jar(self) -> Path:
        """The job's JVM writer for real-time mode (spark-app/jvm), built by scripts/setup."""
        return self.lib("quiver-spark-writer.jar")

    @property
    def spark_home(self) -> Path:
        found = sorted(self.venv.glob("lib/python3*/site-packages/pyspark"))
        if not found:
            raise StackError(f"pyspark is not installed in {self.venv}: run scripts/setup")
        return found[-1]

    @property
    def spark_conf_dir(self) -> Path:
        return self.run / "spark-conf"

    @property
    def postgres_bin(self) -> Path:
        return Path(f"/usr/lib/postgresql/{self.versions['POSTGRES_MAJOR']}/bin")

    @property
    def postgres_password_file(self) -> Path:
        return self.state / "secrets" / "postgres-password"

    def postgres_password(self) -> str:
        from_env = os.environ.get("QUIVER_POSTGRES_PASSWORD")
        if from_env:
            return from_env
        return self.postgres_password_file.read_text().strip()

    @property
    def airflow_passwords_file(self) -> Path:
        return self.state / "secrets" / "airflow-passwords.json"

    @property
    def airflow_url(self) -> str:
        return f"http://{self.host}:{self.airflow_port}"

    @property
    def kafka_bootstrap(self) -> str:
        return ",".join(f"{host}:{self.kafka_port}" for host in self.node_hosts)

    @property
    def cassandra_nodes(self) -> str:
        return ",".join(f"{host}:{self.cassandra_port}" for host in self.node_hosts)

    @property
    def spark_master_url(self) -> str:
        return f"spark://{self.host}:{self.spark_master_port}"


class StackError(Exception):
    """A failure with a message that says what failed and what to do."""


def _java() -> str:
    java = shutil.which("java")
    if not java:
        raise StackError("java is not on PATH: install a JDK 17 (apt-get install openjdk-17-jdk-headless)")
    return java


def _write(path: Path, text: str, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def _launcher(s: Settings, name: str, env: dict[str, str], argv: list[str], secret_env: Path | None = None) -> Path:
    """A small shell script that supervisord runs: the environment plus one exec, so the
    supervised process is the server itself and the command is easy to read and re-run.
    Secrets stay in `secret_env` (mode 0600), which the script sources. It lies in
    `launcher_folder(s, name)`."""
    lines = ["#!/bin/sh", f"# Generated by scripts/stack for the '{name}' component; rewritten on every 'up'."]
    lines += [f"export {k}={_sh_quote(v)}" for k, v in env.items()]
    if secret_env:
        lines.append(f"set -a; . {_sh_quote(str(secret_env))}; set +a")
    lines.append("exec " + " ".join(_sh_quote(a) for a in argv))
    return _write(launcher_folder(s, name) / f"{name}.sh", "\n".join(lines) + "\n", 0o755)


def launcher_folder(s: Settings, name: str) -> Path:
    """Where a component's launcher lies and runs: the state's run folder, but for a
    component that runs as the postgres user, Postgres's socket folder, which that user
    can always enter (the state folder may be inside a private one)."""
    return postgres_dirs(s)[1] if by_name(s)[name].run_as_postgres else s.run


def _sh_quote(value: str) -> str:
    if value and all(c.isalnum() or c in "-_./:=,@%+" for c in value):
        return value
    return "'" + value.replace("'", "'\"'\"'") + "'"


def _http_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=2) as response:
        return json.load(response)


# --- components ------------------------------------------------------------------------


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


def node_name(base: str, node: int) -> str:
    return base if node == 0 else f"{base}-{node}"


MONITORING = ROOT / "monitoring"


def jmx_agent(s: Settings, component: str, host: str, port: int) -> str:
    """The JVM flag that serves the component's metrics (monitoring/jmx/COMPONENT.yaml) to
    Prometheus on `host:port`."""
    jar = s.jmx_exporter_jar
    if not jar.is_file():
        raise StackError(f"the Prometheus JMX exporter is missing ({jar}): run scripts/setup")
    return f"-javaagent:{jar}={host}:{port}:{MONITORING / 'jmx' / f'{component}.yaml'}"


def _kafka_node_id(node: int) -> int:
    return max(node, 1)


def kafka_prepare(s: Settings, node: int = 0) -> Path:
    lib = s.kafka_lib
    if not lib.is_dir():
        raise StackError(f"Kafka jars are missing ({lib}): run scripts/setup")
    name, host = node_name("kafka", node), s.node_host(node)
    data, conf = s.data(name), s.run / name
    voters = ",".join(f"{_kafka_node_id(n)}@{s.node_host(n)}:{s.kafka_controller_port}" for n in s.node_ids)
    # A cluster keeps every partition on 3 brokers and takes a write once 2 hold it, so
    # that one broker can be lost without losing a record or refusing a write.
    replicas, in_sync = str(s.replication_factor), "2" if s.replication_factor >= 3 else "1"
    props = {
        # Each node is both a broker and one of the controllers' quorum (a majority of
        # them must be up for the cluster to work).
        "process.roles": "broker,controller",
        "node.id": str(_kafka_node_id(node)),
        "controller.quorum.voters": voters,
        "listeners": f"PLAINTEXT://{host}:{s.kafka_port},CONTROLLER://{host}:{s.kafka_controller_port}",
        "advertised.listeners": f"PLAINTEXT://{host}:{s.kafka_port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(data),
        "num.partitions": "1",
        "default.replication.factor": replicas,
        "min.insync.replicas": in_sync,
        "offsets.topic.replication.factor": replicas,
        "transaction.state.log.replication.factor": replicas,
        "transaction.state.log.min.isr": in_sync,
        "share.coordinator.state.topic.replication.factor": replicas,
        "share.coordinator.state.topic.min.isr": in_sync,
        "group.initial.rebalance.delay.ms": "0",
        # Topics are created on purpose (scripts/stack topic, quiver produce), so a typo
        # in a topic name is an error rather than a new empty topic.
        "auto.create.topics.enable": "false",
        "log.retention.hours": "24",
    }
    server_properties = _write(conf / "server.properties", "".join(f"{k}={v}\n" for k, v in props.items()))
    log4j = _write(
        conf / "log4j2.properties",
        "\n".join(
            [
                "appender.console.type = Console",
                "appender.console.name = STDOUT",
                "appender.console.layout.type = PatternLayout",
                "appender.console.layout.pattern = [%d] %p %m (%c)%n",
                "rootLogger.level = INFO",
                "rootLogger.appenderRef.stdout.ref = STDOUT",
                # The per-request and state-change loggers repeat every request at INFO.
                "logger.request.name = kafka.request.logger",
                "logger.request.level = WARN",
                "logger.state.name = state.change.logger",
                "logger.state.level = WARN",
                "",
            ]
        ),
    )
    classpath = f"{lib}/*"
    if not (data / "meta.properties").exists():
        data.mkdir(parents=True, exist_ok=True)
        formatted = subprocess.run(
            [
                _java(),
                f"-Dlog4j2.configurationFile={log4j}",
                "-cp",
                classpath,
                "kafka.tools.StorageTool",
                "format",
                "-t",
                _kafka_cluster_id(s, node),
                "-c",
                str(server_properties),
            ],
            capture_output=True,
            text=True,
        )
        if formatted.returncode != 0:
            raise StackError(f"formatting Kafka's storage in {data} failed:\n{formatted.stdout}{formatted.stderr}")
    return _launcher(
        s,
        name,
        {"LOG_DIR": str(s.logs(name))},
        [
            _java(),
            "-server",
            f"-Xms{s.kafka_heap}",
            f"-Xmx{s.kafka_heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={s.logs(name)}",
            f"-Dlog4j2.configurationFile={log4j}",
            jmx_agent(s, "kafka", host, s.kafka_metrics_port),
            "-cp",
            classpath,
            "kafka.Kafka",
            str(server_properties),
        ],
    )


def _kafka_cluster_id(s: Settings, node: int) -> str:
    """A new id for a single node's storage; one id, kept in the data folder, for all of
    a cluster's nodes (a node formatted with another id is refused by the others)."""
    # KRaft cluster ids are 16 random bytes in URL-safe base64 without padding.
    new = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    if node == 0:
        return new
    kept = s.state / "data" / "kafka-cluster.id"
    if not kept.exists():
        _write(kept, new + "\n")
    return kept.read_text().strip()


def _accepts(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


def kafka_healthy(s: Settings, node: int = 0) -> str:
    from confluent_kafka.admin import AdminClient

    host = s.node_host(node)
    # librdkafka retries in the background and logs every refused connection: ask only
    # once the port accepts, and keep its log quiet.
    if not _accepts(host, s.kafka_port):
        # A broker serves once the controllers' quorum has a leader: until a majority of
        # a cluster's nodes runs, a started node is as healthy as it can be.
        controllers = sum(_accepts(other, s.kafka_controller_port) for other in s.node_hosts)
        if node and _accepts(host, s.kafka_controller_port) and controllers <= s.nodes // 2:
            return f"controller started, waiting for a quorum ({controllers} of {s.nodes} controllers up)"
        raise StackError(f"{host}:{s.kafka_port} does not accept connections yet")
    bootstrap = f"{host}:{s.kafka_port}"
    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 2000, "log_level": 0})
    metadata = admin.list_topics(timeout=3)
    if _kafka_node_id(node) not in metadata.brokers:
        raise StackError(f"broker {_kafka_node_id(node)} is not in the cluster metadata yet")
    topics = len([t for t in metadata.topics if not t.startswith("__")])
    if node == 0:
        return f"1 broker, {topics} topics"
    return f"broker {node}: {len(metadata.brokers)} of {s.nodes} brokers, {topics} topics"


# The JVM flags Cassandra 5.0 needs on Java 17: its module exports/opens (from the
# project's conf/jvm17-server.options) and G1 settings sized for a small heap.
CASSANDRA_JAVA17_FLAGS = [
    "-XX:+UseG1GC",
    "-XX:+ParallelRefProcEnabled",
    "-XX:MaxTenuringThreshold=1",
    "-XX:MaxGCPauseMillis=300",
    "-XX:InitiatingHeapOccupancyPercent=70",
    "-Djdk.attach.allowAttachSelf=true",
    "--add-exports",
    "java.base/jdk.internal.misc=ALL-UNNAMED",
    "--add-exports",
    "java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED",
    "--add-exports",
    "java.rmi/sun.rmi.registry=ALL-UNNAMED",
    "--add-exports",
    "java.rmi/sun.rmi.server=ALL-UNNAMED",
    "--add-exports",
    "java.sql/java.sql=ALL-UNNAMED",
    "--add-exports",
    "java.base/java.lang.ref=ALL-UNNAMED",
    "--add-exports",
    "jdk.unsupported/sun.misc=ALL-UNNAMED",
    "--add-exports",
    "jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED",
    "--add-exports",
    "jdk.attach/sun.tools.attach=ALL-UNNAMED",
    "--add-opens",
    "java.base/java.lang.module=ALL-UNNAMED",
    "--add-opens",
    "java.base/jdk.internal.loader=ALL-UNNAMED",
    "--add-opens",
    "java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-opens",
    "java.base/jdk.internal.reflect=ALL-UNNAMED",
    "--add-opens",
    "java.base/jdk.internal.math=ALL-UNNAMED",
    "--add-opens",
    "java.base/jdk.internal.module=ALL-UNNAMED",
    "--add-opens",
    "java.base/jdk.internal.util.jar=ALL-UNNAMED",
    "--add-opens",
    "jdk.management/com.sun.management.internal=ALL-UNNAMED",
    "--add-opens",
    "java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens",
    "java.base/java.io=ALL-UNNAMED",
    "--add-opens",
    "java.base/java.lang.reflect=ALL-UNNAMED",
    "--add-opens",
    "jdk.compiler/com.sun.tools.javac=ALL-UNNAMED",
    "--add-opens",
    "java.base/java.lang=ALL-UNNAMED",
    "--add-opens",
    "java.base/java.util=ALL-UNNAMED",
    "-Dio.netty.tryReflectionSetAccessible=true",
    "-Dio.netty.allocator.useCacheForAllThreads=true",
    "-Dio.netty.allocator.maxOrder=11",
]


def cassandra_jmx_port(s: Settings, node: int) -> int:
    """Local JMX listens on 127.0.0.1 whatever the node's address: one port per node."""
    return s.cassandra_jmx_port + 100 * max(node - 1, 0)


def cassandra_prepare(s: Settings, node: int = 0) -> Path:
    lib = s.cassandra_lib
    if not lib.is_dir():
        raise StackError(f"Cassandra jars are missing ({lib}): run scripts/setup")
    name, host = node_name("cassandra", node), s.node_host(node)
    data, conf = s.data(name), s.run / name
    seed = s.node_host(s.node_ids[0])
    yaml_lines = [
        "cluster_name: quiver",
        "num_tokens: 16",
        f"allocate_tokens_for_local_replication_factor: {s.replication_factor}",
        "partitioner: org.apache.cassandra.dht.Murmur3Partitioner",
        "endpoint_snitch: SimpleSnitch",
        "commitlog_sync: periodic",
        "commitlog_sync_period: 10000ms",
        "seed_provider:",
        "  - class_name: org.apache.cassandra.locator.SimpleSeedProvider",
        "    parameters:",
        f'      - seeds: "{seed}:{s.cassandra_storage_port}"',
        f"listen_address: {host}",
        f"rpc_address: {host}",
        # A new cluster's nodes hold no data yet, so there is nothing to stream to a
        # joining node: it takes its tokens at once instead of bootstrapping (minutes of
        # waiting on gossip per node). A restarted node keeps its tokens either way.
        f"auto_bootstrap: {'false' if node else 'true'}",
        f"storage_port: {s.cassandra_storage_port}",
        "start_native_transport: true",
        f"native_transport_port: {s.cassandra_port}",
        # Loopback only and no built-in superuser: PasswordAuthenticator would create the
        # well-known cassandra/cassandra login. Enable it with real roles before binding
        # Cassandra to a reachable address.
        "authenticator: AllowAllAuthenticator",
        "authorizer: AllowAllAuthorizer",
        "data_file_directories:",
        f"  - {data / 'data'}",
        f"commitlog_directory: {data / 'commitlog'}",
        f"saved_caches_directory: {data / 'saved_caches'}",
        f"hints_directory: {data / 'hints'}",
        f"cdc_raw_directory: {data / 'cdc_raw'}",
        # Two cores: keep background work from starving the pipeline.
        "concurrent_compactors: 1",
        "compaction_throughput: 64MiB/s",
        "disk_optimization_strategy: ssd",
        "",
    ]
    yaml = _write(conf / "cassandra.yaml", "\n".join(yaml_lines))
    logback = _write(
        conf / "logback.xml",
        "<configuration>\n"
        '  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">\n'
        "    <encoder><pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern></encoder>\n"
        "  </appender>\n"
        '  <root level="INFO"><appender-ref ref="STDOUT"/></root>\n'
        "</configuration>\n",
    )
    jamm = sorted(lib.glob("jamm-*.jar"))
    if not jamm:
        raise StackError(f"jamm is missing from {lib} (Cassandra measures memory with it): run scripts/setup")
    return _launcher(
        s,
        name,
        {"CASSANDRA_CONF": str(conf)},
        [
            _java(),
            "-server",
            f"-Xms{s.cassandra_heap}",
            f"-Xmx{s.cassandra_heap}",
            "-Xss256k",
            *CASSANDRA_JAVA17_FLAGS,
            f"-javaagent:{jamm[-1]}",
            jmx_agent(s, "cassandra", host, s.cassandra_metrics_port),
            f"-Dcassandra.config=file://{yaml}",
            "-Dcassandra-foreground=yes",
            f"-Dcassandra.storagedir={data}",
            f"-Dcassandra.logdir={s.logs(name)}",
            f"-Dlogback.configurationFile={logback}",
            f"-Dcassandra.jmx.local.port={cassandra_jmx_port(s, node)}",
            # One node has no gossip to wait for; the nodes of a cluster on one machine
            # see each other at once.
            "-Dcassandra.skip_wait_for_gossip_to_settle=0",
            "-Djava.net.preferIPv4Stack=true",
            "-cp",
            f"{conf}:{lib}/*",
            "org.apache.cassandra.service.CassandraDaemon",
        ],
    )


def cassandra_healthy(s: Settings, node: int = 0) -> str:
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import WhiteListRoundRobinPolicy

    logging.getLogger("cassandra").setLevel(logging.CRITICAL)
    host = s.node_host(node)
    # This node only: the driver would otherwise answer through any node it found.
    only_this = ExecutionProfile(load_balancing_policy=WhiteListRoundRobinPolicy([host]), request_timeout=3)
    cluster = Cluster(
        [host],
        port=s.cassandra_port,
        connect_timeout=2,
        control_connection_timeout=2,
        execution_profiles={EXEC_PROFILE_DEFAULT: only_this},
    )
    try:
        session = cluster.connect()
        row = session.execute("SELECT release_version FROM system.local").one()
        if node == 0:
            return f"Cassandra {row.release_version}"
        peers = session.execute("SELECT peer FROM system.peers_v2").all()
        return f"Cassandra {row.release_version}, node {node}, {len(peers)} peers"
    finally:
        cluster.shutdown()


def spark_env(s: Settings) -> dict[str, str]:
    """What a Spark process of the stack runs with: the daemons and spark-submit alike."""
    return {
        "SPARK_HOME": str(s.spark_home),
        "SPARK_CONF_DIR": str(s.spark_conf_dir),
        # Also the bind address of the web UIs, which otherwise listen on every interface.
        "SPARK_LOCAL_IP": s.host,
        "SPARK_DAEMON_MEMORY": "512m",
        "PYSPARK_PYTHON": str(s.venv / "bin" / "python"),
        "PYSPARK_DRIVER_PYTHON": str(s.venv / "bin" / "python"),
    }


def spark_write_conf(s: Settings) -> None:
    jars = s.spark_kafka_jars
    if not jars:
        raise StackError(f"Spark's Kafka connector jars are missing ({s.spark_kafka_lib}): run scripts/setup")
    if not s.spark_writer_jar.is_file():
        raise StackError(f"the Spark job's JVM writer is missing ({s.spark_writer_jar}): run scripts/setup")
    jars.append(str(s.spark_writer_jar))
    defaults = {
        "spark.master": s.spark_master_url,
        "spark.jars": ",".join(jars),
        "spark.pyspark.python": str(s.venv / "bin" / "python"),
        "spark.driver.host": s.host,
        "spark.driver.bindAddress": s.host,
        "spark.ui.showConsoleProgress": "false",
        # Small jobs on two cores: Spark's default of 200 shuffle partitions is all overhead.
        "spark.sql.shuffle.partitions": "4",
        # Prometheus: each query's progress (latency, input and processing rates) as
        # metrics, under a fixed namespace rather than the application id of each run, and
        # the executors' metrics on the driver's UI (/metrics/executors/prometheus).
        "spark.sql.streaming.metricsEnabled": "true",
        "spark.metrics.namespace": "quiver",
        "spark.ui.prometheus.enabled": "true",
        # A streaming job's driver runs for days: the UI keeps 1,000 jobs, stages and SQL
        # executions by default, the plans and metrics of a thousand micro-batches on its
        # heap. A hundred bound its memory within minutes; the streaming tab keeps its own.
        "spark.ui.retainedJobs": "100",
        "spark.ui.retainedStages": "100",
        "spark.sql.ui.retainedExecutions": "100",
    }
    _write(s.spark_conf_dir / "spark-defaults.conf", "".join(f"{k} {v}\n" for k, v in defaults.items()))
    _write(s.spark_conf_dir / "metrics.properties", (MONITORING / "spark" / "metrics.properties").read_text())
    _write(
        s.spark_conf_dir / "log4j2.properties",
        "\n".join(
            [
                "rootLogger.level = warn",
                "rootLogger.appenderRef.stdout.ref = console",
                "appender.console.type = Console",
                "appender.console.name = console",
                "appender.console.target = SYSTEM_ERR",
                "appender.console.layout.type = PatternLayout",
                # Milliseconds: a real-time batch's tasks end and start within a second.
                "appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss.SSS} %p %c{1}: %m%n",
                "logger.deploy.name = org.apache.spark.deploy",
                "logger.deploy.level = info",
                # The JVM writer's lines: each task's exchange opened (and how long that took)
                # and closed, with its counts.
                "logger.quiver.name = quiver.spark",
                "logger.quiver.level = info",
                "",
            ]
        ),
    )


def spark_master_prepare(s: Settings) -> Path:
    spark_write_conf(s)
    return _launcher(
        s,
        "spark-master",
        spark_env(s),
        [
            str(s.spark_home / "bin" / "spark-class"),
            "org.apache.spark.deploy.master.Master",
            "--host",
            s.host,
            "--port",
            str(s.spark_master_port),
            "--webui-port",
            str(s.spark_master_ui_port),
        ],
    )


def spark_master_healthy(s: Settings) -> str:
    state = _http_json(f"http://{s.host}:{s.spark_master_ui_port}/json/")
    if state.get("status") != "ALIVE":
        raise StackError(f"master status is {state.get('status')}")
    return f"{state.get('aliveworkers', 0)} alive workers"


def spark_worker_prepare(s: Settings, node: int = 0) -> Path:
    spark_write_conf(s)
    name, host = node_name("spark-worker", node), s.node_host(node)
    work_dir = s.data(name)
    work_dir.mkdir(parents=True, exist_ok=True)
    return _launcher(
        s,
        name,
        {**spark_env(s), "SPARK_LOCAL_IP": host, "SPARK_WORKER_DIR": str(work_dir)},
        [
            str(s.spark_home / "bin" / "spark-class"),
            "org.apache.spark.deploy.worker.Worker",
            "--host",
            host,
            "--webui-port",
            str(s.spark_worker_ui_port),
            "--cores",
            s.spark_worker_cores,
            "--memory",
            s.spark_worker_memory,
            "--work-dir",
            str(work_dir),
            s.spark_master_url,
        ],
    )


def spark_worker_healthy(s: Settings, node: int = 0) -> str:
    worker = _http_json(f"http://{s.node_host(node)}:{s.spark_worker_ui_port}/json/")
    master = _http_json(f"http://{s.host}:{s.spark_master_ui_port}/json/")
    alive = [w for w in master.get("workers", []) if w.get("state") == "ALIVE" and w.get("id") == worker.get("id")]
    if not alive:
        raise StackError("the worker is not registered with the master yet")
    return f"{worker.get('cores')} cores, {worker.get('memory')} MB for executors"


def _as_postgres_user() -> list[str]:
    """Postgres refuses to run as root; under root, run its tools as the postgres user."""
    # runuser lives in /usr/sbin, which a root shell's PATH may leave out.
    runuser = shutil.which("runuser") or "/usr/sbin/runuser"
    return [runuser, "-u", "postgres", "--"] if os.geteuid() == 0 else []


# Where Postgres's folders go when the postgres user cannot enter the state folder.
POSTGRES_SHARED_HOME = Path("/var/lib/quiver")


def postgres_dirs(s: Settings) -> tuple[Path, Path]:
    """Postgres's data and socket folders: in the state folder, unless the stack runs as
    root with the state folder inside a private one (such as /root), which the postgres
    user that Postgres runs as cannot enter. Then under /var/lib/quiver, in a folder named
    after the state folder, so that two checkouts keep apart."""
    data, sockets = s.data("postgres"), s.run / "postgres"
    owner = _as_postgres_user()
    if not owner:
        return data, sockets
    existing = s.state
    while not existing.exists():
        existing = existing.parent
    if subprocess.run([*owner, "test", "-x", str(existing)]).returncode == 0:
        return data, sockets
    home = POSTGRES_SHARED_HOME / f"postgres-{hashlib.sha256(str(s.state.resolve()).encode()).hexdigest()[:12]}"
    return home / "data", home / "run"


def postgres_prepare(s: Settings) -> Path:
    pg = s.postgres_bin
    if not (pg / "postgres").exists():
        raise StackError(f"PostgreSQL {s.versions['POSTGRES_MAJOR']} is not installed ({pg}): run scripts/setup")
    data, sockets = postgres_dirs(s)
    owner = _as_postgres_user()
    for d in (data, sockets):
        d.mkdir(parents=True, exist_ok=True)
        if owner:
            shutil.chown(d, "postgres", "postgres")
    data.chmod(0o700)
    if owner and subprocess.run([*owner, "test", "-w", str(data)]).returncode != 0:
        raise StackError(f"the postgres user cannot write {data}: give it that folder (chown postgres)")
    if not (data / "PG_VERSION").exists():
        password_file = s.postgres_password_file
        if not os.environ.get("QUIVER_POSTGRES_PASSWORD") and not password_file.exists():
            _write(password_file, secrets.token_urlsafe(24) + "\n", 0o600)
        # initdb reads the password from a file the postgres user can open; remove it after.
        pwfile = sockets / "initdb-password"
        _write(pwfile, s.postgres_password() + "\n", 0o600)
        if owner:
            shutil.chown(pwfile, "postgres", "postgres")
        try:
            init = subprocess.run(
                [
                    *owner,
                    str(pg / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    s.postgres_user,
                    f"--pwfile={pwfile}",
                    "--auth-host=scram-sha-256",
                    "--auth-local=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                ],
                capture_output=True,
                text=True,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if init.returncode != 0:
            raise StackError(f"initdb in {data} failed:\n{init.stdout}{init.stderr}")
    return _launcher(
        s,
        "postgres",
        {},
        [
            str(pg / "postgres"),
            "-D",
            str(data),
            "-c",
            f"listen_addresses={s.host}",
            "-c",
            f"port={s.postgres_port}",
            "-c",
            f"unix_socket_directories={sockets}",
            "-c",
            "shared_buffers=128MB",
            "-c",
            "max_connections=100",
            "-c",
            "logging_collector=off",
        ],
    )


def _postgres_connect(s: Settings, dbname: str):
    import psycopg

    return psycopg.connect(
        host=s.host,
        port=s.postgres_port,
        user=s.postgres_user,
        password=s.postgres_password(),
        dbname=dbname,
        connect_timeout=2,
        autocommit=True,
    )


def postgres_healthy(s: Settings) -> str:
    with _postgres_connect(s, "postgres") as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
    return f"PostgreSQL {version}"


def postgres_after_start(s: Settings) -> None:
    with _postgres_connect(s, "postgres") as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (s.postgres_db,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{s.postgres_db}"')


# --- Airflow ---------------------------------------------------------------------------
# Airflow runs from its own environment (scripts/setup) with every setting as an
# AIRFLOW__* variable, so there is no airflow.cfg to keep in step. Its metadata lives in
# the stack's Postgres, in a database of its own.

AIRFLOW_DAGS = ROOT / "airflow" / "dags"


def _secret(path: Path, make: Callable[[], str]) -> str:
    """The secret kept in `path`, made (mode 0600) on first use."""
    if not path.exists():
        _write(path, make() + "\n", 0o600)
    return path.read_text().strip()


def airflow_password(s: Settings) -> str:
    users = json.loads(s.airflow_passwords_file.read_text())
    return users[s.airflow_user]


def airflow_env(s: Settings) -> tuple[dict[str, str], dict[str, str]]:
    """Airflow's settings for the stack: (plain, secret). Every Airflow process and the
    `airflow` CLI (`scripts/stack airflow`) run with both."""
    secrets_dir = s.state / "secrets"
    if not s.airflow_passwords_file.exists():
        # Airflow's simple auth manager reads this file; no default password exists.
        _write(s.airflow_passwords_file, json.dumps({s.airflow_user: secrets.token_urlsafe(18)}) + "\n", 0o600)
    password = s.postgres_password()
    db = f"{s.postgres_user}:{password}@{s.host}:{s.postgres_port}"
    plain = {
        "AIRFLOW_HOME": str(s.data("airflow")),
        "AIRFLOW__CORE__DAGS_FOLDER": str(AIRFLOW_DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        # Two cores shared with the JVMs: at most two tasks at a time.
        "AIRFLOW__CORE__PARALLELISM": "2",
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "2",
        "AIRFLOW__CORE__MAX_ACTIVE_RUNS_PER_DAG": "1",
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{s.airflow_user}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(s.airflow_passwords_file),
        "AIRFLOW__API__HOST": s.host,
        "AIRFLOW__API__PORT": str(s.airflow_port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__BASE_URL": s.airflow_url,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{s.airflow_url}/execution/",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(s.logs("airflow-tasks")),
        "AIRFLOW__LOGGING__DAG_PROCESSOR_CHILD_PROCESS_LOG_DIRECTORY": str(s.logs("airflow-dag-processor")),
        # What the DAGs run: the quiver binary, and spark-submit of the Spark side's
        # pyspark (Airflow's own pyspark is the thin client's twin, without the cluster conf).
        "QUIVER_BIN": str(paths.quiver_bin()),
        "QUIVER_SPARK_KAFKA_JARS": ",".join(s.spark_kafka_jars),
        "PATH": f"{s.spark_home / 'bin'}:{s.airflow_venv / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        **spark_env(s),
        "AIRFLOW_CONN_SPARK_DEFAULT": f"spark://{s.host}:{s.spark_master_port}?deploy-mode=client",
        "AIRFLOW_CONN_KAFKA_DEFAULT": f"kafka://{s.kafka_bootstrap}",
        "AIRFLOW_CONN_CASSANDRA_DEFAULT": f"cassandra://{s.host}:{s.cassandra_port}/spark_streams",
    }
    secret = {
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg://{db}/{s.airflow_db}",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": f"postgresql+psycopg_async://{db}/{s.airflow_db}",
        # Shared by the API server and the processes that sign or check its tokens.
        "AIRFLOW__API_AUTH__JWT_SECRET": _secret(secrets_dir / "airflow-jwt-secret", lambda: secrets.token_urlsafe(32)),
        "AIRFLOW__API__SECRET_KEY": _secret(secrets_dir / "airflow-secret-key", lambda: secrets.token_urlsafe(32)),
        "AIRFLOW__CORE__FERNET_KEY": _secret(
            secrets_dir / "airflow-fernet-key", lambda: base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
        ),
        "AIRFLOW_CONN_POSTGRES_DEFAULT": f"postgresql://{db}/{s.postgres_db}",
    }
    return plain, secret


def airflow_write_env(s: Settings) -> tuple[dict[str, str], Path]:
    plain, secret = airflow_env(s)
    env_file = _write(
        s.state / "secrets" / "airflow.env", "".join(f"{k}={_sh_quote(v)}\n" for k, v in secret.items()), 0o600
    )
    return plain, env_file


def airflow_api_server_prepare(s: Settings) -> Path:
    airflow = s.airflow_venv / "bin" / "airflow"
    if not airflow.exists():
        raise StackError(f"Airflow is not installed ({s.airflow_venv}): run scripts/setup")
    with _postgres_connect(s, "postgres") as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (s.airflow_db,)).fetchone():
            conn.execute(f'CREATE DATABASE "{s.airflow_db}"')
    plain, secret = airflow_env(s)
    s.data("airflow").mkdir(parents=True, exist_ok=True)
    # Creates or upgrades the metadata schema; a no-op in seconds when it is current.
    migrate = subprocess.run(
        [str(airflow), "db", "migrate"], env={**os.environ, **plain, **secret}, capture_output=True, text=True
    )
    if migrate.returncode != 0:
        raise StackError(f"airflow db migrate failed:\n{(migrate.stdout + migrate.stderr)[-3000:]}")
    return _airflow_launcher(s, "airflow-api-server", ["api-server"])


def _airflow_launcher(s: Settings, name: str, args: list[str]) -> Path:
    plain, env_file = airflow_write_env(s)
    return _launcher(s, name, plain, [str(s.airflow_venv / "bin" / "airflow"), *args], secret_env=env_file)


def _airflow_health(s: Settings) -> dict:
    return _http_json(f"{s.airflow_url}/api/v2/monitor/health")


def airflow_api_server_healthy(s: Settings) -> str:
    # A real sign-in and an authenticated call: proves the API, the auth manager and
    # the generated password, not just an open port.
    body = json.dumps({"username": s.airflow_user, "password": airflow_password(s)}).encode()
    request = urllib.request.Request(
        f"{s.airflow_url}/auth/token", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        token = json.load(response)["access_token"]
    request = urllib.request.Request(f"{s.airflow_url}/api/v2/version", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        version = json.load(response)["version"]
    health = _airflow_health(s)
    if health["metadatabase"]["status"] != "healthy":
        raise StackError(f"Airflow's metadata database is {health['metadatabase']['status']}")
    return f"Airflow {version}, signed in as {s.airflow_user}"


def _airflow_heartbeat(part: str) -> Callable[[Settings], str]:
    def healthy(s: Settings) -> str:
        status = _airflow_health(s).get(part) or {}
        if status.get("status") != "healthy":
            raise StackError(f"the {part.replace('_', ' ')} has no recent heartbeat ({status})")
        return f"heartbeat {status.get('latest_' + part + '_heartbeat') or status.get('latest_scheduler_heartbeat')}"

    return healthy


def airflow_scheduler_prepare(s: Settings) -> Path:
    return _airflow_launcher(s, "airflow-scheduler", ["scheduler"])


def airflow_dag_processor_prepare(s: Settings) -> Path:
    return _airflow_launcher(s, "airflow-dag-processor", ["dag-processor"])


PROMETHEUS = Path("/usr/bin/prometheus")
# Where quiver's own processes answer Prometheus on the local stack: `quiver serve`'s HTTP
# port and `quiver produce --metrics-addr` (neither started by the stack).
SERVE_METRICS_PORT = 9464
PRODUCE_METRICS_PORT = 9465
# ... and the Spark job's own figures (stream_users.py --job-metrics-addr).
JOB_METRICS_PORT = 9466
SPARK_DRIVER_UI_PORT = 4040


def prometheus_targets(s: Settings) -> dict[str, list[str]]:
    """monitoring/prometheus/prometheus.yml's jobs and where each answers on this stack."""

    def on_nodes(port: int, nodes: list[int]) -> list[str]:
        return [f"{s.node_host(n)}:{port}" for n in nodes]

    return {
        "prometheus": [f"{s.host}:{s.prometheus_port}"],
        "quiver-serve": [f"{s.host}:{SERVE_METRICS_PORT}"],
        "quiver-produce": [f"{s.host}:{PRODUCE_METRICS_PORT}"],
        "quiver-job": [f"{s.host}:{JOB_METRICS_PORT}"],
        "kafka": on_nodes(s.kafka_metrics_port, s.node_ids),
        "cassandra": on_nodes(s.cassandra_metrics_port, s.node_ids),
        "spark-master": [f"{s.host}:{s.spark_master_ui_port}"],
        "spark-worker": on_nodes(s.spark_worker_ui_port, s.worker_ids),
        "spark-driver": [f"{s.host}:{SPARK_DRIVER_UI_PORT}"],
    }


def prometheus_prepare(s: Settings) -> Path:
    if not PROMETHEUS.is_file():
        raise StackError(f"Prometheus is not installed ({PROMETHEUS}): run scripts/setup")
    conf = s.run / "prometheus"
    config = _write(conf / "prometheus.yml", (MONITORING / "prometheus" / "prometheus.yml").read_text())
    for job, targets in prometheus_targets(s).items():
        _write(conf / "targets" / f"{job}.json", json.dumps([{"targets": targets}]) + "\n")
    return _launcher(
        s,
        "prometheus",
        {},
        [
            str(PROMETHEUS),
            f"--config.file={config}",
            f"--storage.tsdb.path={s.data('prometheus')}",
            "--storage.tsdb.retention.time=2d",
            f"--web.listen-address={s.host}:{s.prometheus_port}",
        ],
    )


def prometheus_healthy(s: Settings) -> str:
    with urllib.request.urlopen(f"http://{s.host}:{s.prometheus_port}/-/ready", timeout=2) as response:
        response.read()
    targets = _http_json(f"http://{s.host}:{s.prometheus_port}/api/v1/targets?state=active")["data"]["activeTargets"]
    up = sorted(t["labels"]["job"] for t in targets if t["health"] == "up")
    return f"scraping {len(up)} of {len(targets)} targets up ({', '.join(up) or 'none yet'})"


def kafka_ports(s: Settings, node: int) -> dict[str, int]:
    return {
        "KAFKA_PORT": s.kafka_port,
        "KAFKA_CONTROLLER_PORT": s.kafka_controller_port,
        "KAFKA_METRICS_PORT": s.kafka_metrics_port,
    }


def cassandra_ports(s: Settings, node: int) -> dict[str, int]:
    return {
        "CASSANDRA_PORT": s.cassandra_port,
        "CASSANDRA_STORAGE_PORT": s.cassandra_storage_port,
        "CASSANDRA_JMX_PORT": cassandra_jmx_port(s, node),
        "CASSANDRA_METRICS_PORT": s.cassandra_metrics_port,
    }


def spark_worker_ports(s: Settings, node: int) -> dict[str, int]:
    return {"SPARK_WORKER_UI_PORT": s.spark_worker_ui_port}


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
            _airflow_heartbeat("scheduler"),
            120,
            optional=True,
        ),
        Component(
            "airflow-dag-processor",
            lambda s: {},
            airflow_dag_processor_prepare,
            _airflow_heartbeat("dag_processor"),
            120,
            optional=True,
        ),
    ]


def by_name(s: Settings) -> dict[str, Component]:
    return {c.name: c for c in components(s)}


def _by_kind(components: list[Component]) -> dict[str, list[str]]:
    """The components' names, kind by kind, in start order."""
    kinds: dict[str, list[str]] = {}
    for c in components:
        kinds.setdefault(c.kind, []).append(c.name)
    return kinds


def groups(s: Settings) -> dict[str, list[str]]:
    """Short names that start several components: in a cluster, 'kafka', 'cassandra' and
    'spark-worker' name all their nodes."""
    kinds = _by_kind(components(s))
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


# --- supervisord -----------------------------------------------------------------------


class Supervisor:
    """supervisord runs the components; this talks to it over its XML-RPC unix socket."""

    def __init__(self, s: Settings):
        self.s = s
        self.conf = s.run / "supervisord.conf"
        self.pidfile = s.run / "supervisord.pid"
        self.socket = s.run / "supervisord.sock"
        if len(str(self.socket)) > 100:  # unix socket paths are limited to ~108 bytes
            digest = hashlib.sha256(str(s.state).encode()).hexdigest()[:12]
            self.socket = Path("/tmp") / f"quiver-supervisor-{digest}.sock"

    def write_conf(self) -> None:
        s = self.s
        sections = [
            "[unix_http_server]",
            f"file={self.socket}",
            "chmod=0700",
            "",
            "[supervisord]",
            f"logfile={s.state / 'logs' / 'supervisord.log'}",
            f"pidfile={self.pidfile}",
            f"directory={s.state}",
            "nodaemon=false",
            "",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
            "",
            "[supervisorctl]",
            f"serverurl=unix://{self.socket}",
            "",
        ]
        for c in components(s):
            s.logs(c.name).mkdir(parents=True, exist_ok=True)
            sections += [
                f"[program:{c.name}]",
                f"command={launcher_folder(s, c.name) / (c.name + '.sh')}",
                f"directory={launcher_folder(s, c.name) if c.run_as_postgres else s.state}",
                "autostart=false",
                # A crash shows as EXITED in 'status' instead of a silent restart loop.
                "autorestart=false",
                "startsecs=0",
                "stopsignal=TERM",
                # Graceful first; supervisord sends SIGKILL to the group after this.
                "stopwaitsecs=30",
                "stopasgroup=true",
                "killasgroup=true",
                "redirect_stderr=true",
                f"stdout_logfile={s.log_file(c.name)}",
                "stdout_logfile_maxbytes=50MB",
                "stdout_logfile_backups=3",
            ]
            if c.run_as_postgres and os.geteuid() == 0:
                sections.append("user=postgres")
            sections.append("")
        _write(self.conf, "\n".join(sections))

    def proxy(self):
        from supervisor.xmlrpc import SupervisorTransport

        transport = SupervisorTransport(None, None, f"unix://{self.socket}")
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport).supervisor

    def running(self) -> bool:
        try:
            return self.proxy().getState()["statename"] == "RUNNING"
        except (OSError, xmlrpc.client.Fault):
            return False

    def ensure_started(self) -> None:
        self.write_conf()
        if self.running():
            # Picks up programs added since supervisord started; starts nothing.
            self.proxy().reloadConfig()
            for name in [c.name for c in components(self.s)]:
                try:
                    self.proxy().addProcessGroup(name)
                except xmlrpc.client.Fault:
                    pass
            return
        supervisord = self.s.venv / "bin" / "supervisord"
        subprocess.run([str(supervisord), "-c", str(self.conf)], check=True)
        deadline = time.monotonic() + 15
        while not self.running():
            if time.monotonic() > deadline:
                raise StackError(f"supervisord did not start: see {self.s.state / 'logs' / 'supervisord.log'}")
            time.sleep(0.1)

    def info(self, name: str) -> dict:
        try:
            return self.proxy().getProcessInfo(name)
        except (OSError, xmlrpc.client.Fault):
            return {"statename": "STOPPED", "pid": 0}

    def start(self, name: str) -> None:
        self.proxy().startProcess(name, True)

    def stop(self, *names: str) -> None:
        """Stops these at once and waits until each has stopped (supervisord sends SIGKILL
        after stopwaitsecs)."""
        for name in names:
            try:
                self.proxy().stopProcess(name, False)
            except xmlrpc.client.Fault as fault:
                if "NOT_RUNNING" not in fault.faultString:
                    raise
        while any(self.info(name)["statename"] in ("RUNNING", "STARTING", "STOPPING") for name in names):
            time.sleep(0.1)

    def pid(self) -> int:
        """supervisord's pid if it is alive, else 0. Standard library only: `check` runs
        before the environment that holds supervisor's own client exists."""
        try:
            pid = int(self.pidfile.read_text())
        except (OSError, ValueError):
            return 0
        return pid if _alive(pid) else 0

    def shutdown(self) -> None:
        if self.running():
            pid = self.pid()
            self.proxy().shutdown()
            deadline = time.monotonic() + 10
            while pid and _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def _port_taken(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def _taken(host: str, port: int, owner: str, variable: str, what: str) -> str:
    return (
        f"port {port} on {host} ({owner}) is taken{_who_listens(port)}: "
        f"stop what holds it, or set {variable} to a free {what}"
    )


def _who_listens(port: int) -> str:
    try:
        out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True).stdout.strip()
    except FileNotFoundError:
        return ""
    # users:(("java",pid=1960,fd=272)) -> " (java, pid 1960)"
    found = re.search(r'users:\(\("([^"]+)",pid=(\d+)', out)
    return f" ({found[1]}, pid {found[2]})" if found else ""


def _tail(path: Path, lines: int) -> str:
    if not path.exists():
        return f"(no log yet at {path})"
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - 64 * 1024))
        return b"\n".join(f.read().splitlines()[-lines:]).decode(errors="replace")


def _members(s: Settings, name: str) -> list[str]:
    """The components a name given on the command line stands for."""
    known, named = by_name(s), groups(s)
    members = named.get(name, [name])
    if any(member not in known for member in members):
        raise StackError(f"unknown component '{name}': choose from {', '.join([*known, *named])}")
    return members


def _expand(s: Settings, names: list[str]) -> list[str]:
    known = by_name(s)
    wanted: list[str] = []
    for name in names or [c.name for c in known.values() if not c.optional]:
        for member in _members(s, name):
            for needed in [*REQUIRES.get(known[member].kind, []), member]:
                if needed not in wanted:
                    wanted.append(needed)
    return [name for name in known if name in wanted]


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- commands --------------------------------------------------------------------------


def choose_nodes(s: Settings, nodes: int | None) -> Settings:
    """The settings for `up --nodes`: a running stack keeps its nodes (a different number
    needs a 'down' first); a stopped one starts with what was asked, or one node."""
    sup = Supervisor(s)
    up = sup.running()
    running = [c.name for c in components(s) if up and sup.info(c.name)["statename"] == "RUNNING"]
    if running:
        if nodes is not None and nodes != s.nodes:
            raise StackError(
                f"the stack runs with {s.nodes} node{'s' if s.nodes > 1 else ''} ({', '.join(running)}): "
                f"'scripts/stack down' first, then 'scripts/stack up --nodes {nodes}'"
            )
        return s
    nodes = nodes or 1
    if nodes > 1 and s.host != "127.0.0.1":
        raise StackError(
            f"a cluster puts node n on 127.0.0.n, so it cannot listen on QUIVER_BIND_HOST={s.host}: unset it"
        )
    if nodes != s.nodes:
        # supervisord knows the other profile's programs: start it afresh.
        sup.shutdown()
    _write(s.nodes_file, f"{nodes}\n")
    return Settings()


def cmd_up(s: Settings, names: list[str]) -> int:
    wanted = _expand(s, names)
    known = by_name(s)
    sup = Supervisor(s)
    began = time.monotonic()
    # Before anything starts, so a taken port leaves nothing half-started.
    _check_ports(s, sup, wanted)
    sup.ensure_started()
    started: list[str] = []
    try:
        for name in wanted:
            c = known[name]
            t0 = time.monotonic()
            if sup.info(name)["statename"] == "RUNNING":
                try:
                    _say(f"  {name:<21} already up: {c.healthy(s)}")
                    continue
                except Exception:  # noqa: BLE001 - running but not answering: restart it below
                    sup.stop(name)
            c.prepare(s)
            sup.start(name)
            started.append(name)
            summary = _wait_healthy(s, sup, c)
            if c.after_start:
                c.after_start(s)
            _say(f"  {name:<21} up in {time.monotonic() - t0:5.1f} s: {summary}")
    except (StackError, subprocess.CalledProcessError, OSError) as error:
        _say(f"error: {error}")
        for name in reversed(started):
            sup.stop(name)
        if not any(sup.info(c.name)["statename"] == "RUNNING" for c in components(s)):
            sup.shutdown()
        _say("stopped what this 'up' had started")
        return 1
    _say(
        f"stack up in {time.monotonic() - began:.1f} s; 'scripts/stack status' shows it, 'scripts/stack down' stops it"
    )
    return 0


def _check_ports(s: Settings, sup: Supervisor, wanted: list[str]) -> None:
    supervised = sup.running()
    starting = [name for name in wanted if not (supervised and sup.info(name)["statename"] == "RUNNING")]
    taken = _taken_ports(s, starting)
    if taken:
        raise StackError("\n".join(taken))


def _taken_ports(s: Settings, names: list[str]) -> list[str]:
    """One line for each port of these components that something else holds."""
    known = by_name(s)
    return [
        _taken(s.node_host(known[name].node), port, name, f"QUIVER_{setting}", "port")
        for name in names
        for setting, port in known[name].ports(s).items()
        if _port_taken(s.node_host(known[name].node), port)
    ]


# What a first run needs beyond the heaps: Spark's master and worker (512 MiB each), its
# driver and executor (1 GiB each), Cassandra's memory off the heap, quiver serve and a
# cargo build (up to ~2 GiB while it links).
_MEMORY_BESIDE_HEAPS = 5 << 30
# Measured on a first run: the two Python environments (~2.5 GiB), the jars, Cargo's
# downloads and the debug build (~6 GiB); then the stack's data and logs.
_DISK_INSTALL = 3 << 30
_DISK_BUILD = 7 << 30
_DISK_DATA = 2 << 30


def _bytes(size: str) -> int:
    """A JVM-style size ("512m", "2g") in bytes."""
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    unit = units.get(size[-1:].lower(), 1)
    try:
        return int(size[:-1] if unit > 1 else size) * unit
    except ValueError:
        raise StackError(f"{size!r} is not a size like 512m or 2g") from None


def _gib(n: int) -> str:
    return f"{n / (1 << 30):.1f} GiB"


def _available_memory() -> int:
    """MemAvailable, or what a cgroup limit (a container's) leaves, if that is less."""
    meminfo = Path("/proc/meminfo").read_text()
    available = int(next(line.split()[1] for line in meminfo.splitlines() if line.startswith("MemAvailable:"))) << 10
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text())
            available = min(available, int(limit) - used)
    except (OSError, ValueError):
        pass
    return available


def _existing(path: Path) -> Path:
    while not path.exists():
        path = path.parent
    return path


def preflight(s: Settings, serve: bool) -> list[str]:
    """What would stop the stack (and, with serve, quiver serve) from starting, one line each
    naming the problem and the fix; empty when nothing would. Runs on the system's Python
    before anything is installed, so it uses the standard library only."""
    problems = []
    # Its ports are the stack's own then ('up' checks those of components not running yet).
    stack_running = Supervisor(s).pid() != 0
    if not stack_running:
        problems += _taken_ports(s, [c.name for c in components(s) if not c.optional])
    if serve:
        for variable, default in (
            ("QUIVER_FLIGHT_LISTEN", "127.0.0.1:50051"),
            ("QUIVER_HTTP_LISTEN", "127.0.0.1:9464"),
        ):
            host, _, port = os.environ.get(variable, default).rpartition(":")
            if port.isdigit() and _port_taken(host.strip("[]"), int(port)):
                problems.append(_taken(host, int(port), "quiver serve", variable, "address"))
    if not stack_running:
        nodes = len(s.node_ids)
        needed = nodes * (_bytes(s.kafka_heap) + _bytes(s.cassandra_heap)) + _MEMORY_BESIDE_HEAPS
        available = _available_memory()
        if available < needed:
            each = f"{nodes} × " if nodes > 1 else ""
            problems.append(
                f"{_gib(available)} of memory is available, the stack needs about {_gib(needed)} "
                f"(Kafka {each}{s.kafka_heap}, Cassandra {each}{s.cassandra_heap}, "
                f"Spark and the build {_gib(_MEMORY_BESIDE_HEAPS)}): "
                "free memory, or give the JVMs less, e.g. QUIVER_KAFKA_HEAP=512m QUIVER_CASSANDRA_HEAP=1g"
            )
    target = paths.target_dir()
    needs: dict[int, tuple[Path, int]] = {}
    for path, size in (
        (s.state, _DISK_DATA + (0 if s.venv.is_dir() else _DISK_INSTALL)),
        (target, 0 if (target / "debug").is_dir() else _DISK_BUILD),
    ):
        device = os.stat(_existing(path)).st_dev
        where, total = needs.get(device, (path, 0))
        needs[device] = (where, total + size)
    for where, size in needs.values():
        stat = os.statvfs(_existing(where))
        free = stat.f_bavail * stat.f_frsize
        if free < size:
            problems.append(
                f"{_gib(free)} free on the disk of {where}, a first run needs about {_gib(size)}: "
                "free some space, or put the state elsewhere with QUIVER_STATE_DIR "
                "(and the build with CARGO_TARGET_DIR)"
            )
    return problems


def cmd_check(s: Settings, serve: bool) -> int:
    problems = preflight(s, serve)
    for problem in problems:
        _say(f"error: {problem}")
    return 1 if problems else 0


def _wait_healthy(s: Settings, sup: Supervisor, c: Component) -> str:
    deadline = time.monotonic() + c.start_timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        state = sup.info(c.name)["statename"]
        if state not in ("RUNNING", "STARTING"):
            raise StackError(
                f"{c.name} exited while starting ({state}); last lines of {s.log_file(c.name)}:\n"
                + _tail(s.log_file(c.name), 30)
            )
        try:
            return c.healthy(s)
        except Exception as error:  # noqa: BLE001 - any failure means "not answering yet"
            last_error = error
            time.sleep(0.5)
    raise StackError(
        f"{c.name} did not answer within {c.start_timeout:.0f} s (last check: {last_error}); "
        f"last lines of {s.log_file(c.name)}:\n" + _tail(s.log_file(c.name), 30)
    )


def cmd_down(s: Settings, names: list[str]) -> int:
    sup = Supervisor(s)
    if not sup.running():
        _say("the stack is not running")
        return 0

    def stop(together: list[str]) -> None:
        t0 = time.monotonic()
        sup.stop(*together)
        for name in together:
            _say(f"  {name:<21} stopped in {time.monotonic() - t0:4.1f} s")

    if names:
        # Only these (a component taken down for a while, as the fault tests do); the
        # rest, and those that need them, keep running. `up NAME` starts it again.
        for name in names:
            stop(_members(s, name))
        return 0
    # A cluster's nodes of one kind stop together: the last Kafka broker to stop alone has
    # no quorum of controllers left to shut down cleanly with, and waits to be killed.
    running = [c for c in components(s) if sup.info(c.name)["statename"] in ("RUNNING", "STARTING")]
    for together in reversed(_by_kind(running).values()):
        stop(together)
    sup.shutdown()
    # The next 'up' starts a single node unless told --nodes again.
    s.nodes_file.unlink(missing_ok=True)
    _say("stack down")
    return 0


def cmd_status(s: Settings) -> int:
    sup = Supervisor(s)
    up = sup.running()
    rows = []
    all_ok = True
    for c in components(s):
        info = sup.info(c.name) if up else {"statename": "STOPPED", "pid": 0}
        ports = ",".join(f"{p}" for p in c.ports(s).values())
        if c.node:
            ports = f"{s.node_host(c.node)}:{ports}"
        answer = "-"
        if info["statename"] != "RUNNING":
            if c.optional:
                answer = f"- (optional: up --with-{'monitoring' if c.name == 'prometheus' else 'airflow'})"
            else:
                all_ok = False
        else:
            try:
                answer = "yes: " + c.healthy(s)
            except Exception as error:  # noqa: BLE001 - shown to the user as is
                answer = f"NO: {str(error).splitlines()[0][:60]}"
                all_ok = False
        rows.append((c.name, info["statename"], str(info.get("pid") or "-"), ports, answer))
    header = ("component", "state", "pid", "ports", "answers")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(5)]
    for r in [header, *rows]:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=False)).rstrip())
    if s.nodes > 1:
        print(f"\ncluster: {s.nodes} nodes, node n on 127.0.0.n ('down', then 'up' starts a single-node stack)")
    print(f"\nstate folder: {s.state}   logs: {s.state / 'logs'}")
    data, _ = postgres_dirs(s)
    if not data.is_relative_to(s.state):
        print(f"postgres data: {data} (the postgres user cannot enter the state folder)")
    return 0 if all_ok else 1


def cmd_logs(s: Settings, name: str | None, follow: bool, lines: int) -> int:
    names = _expand(s, [name]) if name else [c.name for c in components(s)]
    if follow:
        files = [str(s.log_file(n)) for n in names]
        return subprocess.call(["tail", "-n", str(lines), "-F", *files])
    for n in names:
        print(f"==> {s.log_file(n)} <==")
        print(_tail(s.log_file(n), lines))
    return 0


def cmd_topic(s: Settings, name: str, partitions: int) -> int:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": s.kafka_bootstrap})
    if name in admin.list_topics(timeout=5).topics:
        _say(f"topic {name} exists")
        return 0
    topic = NewTopic(name, num_partitions=partitions, replication_factor=s.replication_factor)
    admin.create_topics([topic])[name].result(timeout=30)
    replicas = f", {s.replication_factor} replicas each" if s.replication_factor > 1 else ""
    _say(f"topic {name} created with {partitions} partitions{replicas}")
    return 0


def stack_env(s: Settings) -> dict[str, str]:
    """The stack's addresses as the variables quiver, the Spark job and the tests read."""
    return {
        "QUIVER_STATE_DIR": str(s.state),
        "QUIVER_BOOTSTRAP_SERVERS": s.kafka_bootstrap,
        "QUIVER_CASSANDRA_NODES": s.cassandra_nodes,
        "QUIVER_SPARK_MASTER": s.spark_master_url,
        "QUIVER_SPARK_KAFKA_JARS": ",".join(s.spark_kafka_jars),
        "QUIVER_POSTGRES_URL": f"postgresql://{s.postgres_user}@{s.host}:{s.postgres_port}/{s.postgres_db}",
        "QUIVER_POSTGRES_PASSWORD_FILE": str(s.postgres_password_file),
        "QUIVER_AIRFLOW_URL": s.airflow_url,
        # Where quiver serve's dashboard asks the Spark driver for its batch durations.
        "QUIVER_SPARK_UI": f"http://{s.host}:{SPARK_DRIVER_UI_PORT}",
        # The links quiver serve's dashboard shows to the stack's other web pages.
        "QUIVER_DASHBOARD_LINKS": ",".join(
            [
                f"Spark master=http://{s.host}:{s.spark_master_ui_port}",
                f"Spark worker=http://{s.node_host(s.worker_ids[0])}:{s.spark_worker_ui_port}",
                f"Airflow={s.airflow_url}",
            ]
        ),
        **spark_env(s),
        **cluster_env(s),
    }


def cluster_env(s: Settings) -> dict[str, str]:
    """In a cluster, what quiver and the job create is replicated: topics on 3 brokers, the
    keyspace on 3 Cassandra nodes of SimpleSnitch's one datacenter."""
    if s.nodes == 1:
        return {}
    factor = str(s.replication_factor)
    return {
        "QUIVER_REPLICATION_FACTOR": factor,
        "QUIVER_CASSANDRA_REPLICATION_FACTOR": factor,
        "QUIVER_CASSANDRA_DATACENTER": "datacenter1",
    }


def cmd_env(s: Settings) -> int:
    for k, v in stack_env(s).items():
        print(f"export {k}={_sh_quote(v)}")
    return 0


def cmd_spark_submit(s: Settings, args: list[str]) -> int:
    """spark-submit against the stack's master, with the Kafka connector and the project's
    Python; everything after 'spark-submit' is passed on unchanged."""
    spark_write_conf(s)
    env = {**os.environ, **spark_env(s)}
    spark_submit = s.spark_home / "bin" / "spark-submit"
    os.execve(spark_submit, [str(spark_submit), *args], env)


def cmd_airflow(s: Settings, args: list[str]) -> int:
    """The airflow CLI as the stack's Airflow processes run it (same database, DAGs,
    connections); everything after 'airflow' is passed on unchanged."""
    airflow = s.airflow_venv / "bin" / "airflow"
    try:
        if not airflow.exists():
            raise StackError(f"Airflow is not installed ({s.airflow_venv}): run scripts/setup")
        plain, secret = airflow_env(s)
    except (StackError, OSError) as error:
        _say(f"error: {error}")
        return 1
    os.execve(airflow, [str(airflow), *args], {**os.environ, **plain, **secret})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/stack",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start components (all by default) and wait until each answers")
    s = Settings()
    up.add_argument(
        "components",
        nargs="*",
        help=f"any of: {', '.join([*by_name(s), *groups(s)])} "
        "(in a cluster, kafka-N, cassandra-N and spark-worker-N name one node)",
    )
    up.add_argument(
        "--nodes",
        type=int,
        choices=[1, 3],
        help="3: a cluster on this machine (3 Kafka brokers and 3 Cassandra nodes, node n on 127.0.0.n, "
        "replication factor 3; 2 Spark workers); 1: one of each (the default when the stack is down)",
    )
    up.add_argument(
        "--with-airflow", action="store_true", help="also start Airflow (API server, scheduler, DAG processor)"
    )
    up.add_argument(
        "--with-monitoring", action="store_true", help="also start Prometheus, scraping every component (port 9096)"
    )
    down = sub.add_parser("down", help="stop everything the stack started, or only the components named")
    down.add_argument("components", nargs="*", help="any of the components or groups; all when none is named")
    sub.add_parser("status", help="each component, its ports and whether it answers")
    check = sub.add_parser("check", help="what would stop the stack from starting: taken ports, memory, disk")
    check.add_argument("--serve", action="store_true", help="also the ports of quiver serve (scripts/run starts it)")
    logs = sub.add_parser("logs", help="the last lines of a component's log (all by default)")
    logs.add_argument("component", nargs="?")
    logs.add_argument("-f", "--follow", action="store_true")
    logs.add_argument("-n", "--lines", type=int, default=40)
    topic = sub.add_parser("topic", help="create a Kafka topic if it is missing")
    topic.add_argument("name")
    topic.add_argument("--partitions", type=int, default=TOPIC_PARTITIONS)
    sub.add_parser("env", help="print the stack's addresses as shell exports")
    sub.add_parser("spark-submit", help="spark-submit to the stack's master with the Kafka connector jars")
    sub.add_parser("airflow", help="the airflow CLI (Airflow's environment) with the stack's Airflow settings")
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["spark-submit"]:
        # Everything after it belongs to spark-submit, options included.
        return cmd_spark_submit(s, argv[1:])
    if argv[:1] == ["airflow"]:
        return cmd_airflow(s, argv[1:])
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            s = choose_nodes(s, args.nodes)
            names = args.components
            for wanted, group in ((args.with_airflow, "airflow"), (args.with_monitoring, "monitoring")):
                if wanted:
                    names = [*(names or [c.name for c in components(s) if not c.optional]), group]
            return cmd_up(s, names)
        if args.command == "down":
            return cmd_down(s, args.components)
        if args.command == "status":
            return cmd_status(s)
        if args.command == "check":
            return cmd_check(s, args.serve)
        if args.command == "logs":
            return cmd_logs(s, args.component, args.follow, args.lines)
        if args.command == "topic":
            return cmd_topic(s, args.name, args.partitions)
        return cmd_env(s)
    except StackError as error:
        _say(f"error: {error}")
        return 1
