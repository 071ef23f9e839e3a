"""Where the stack lives and what it listens on (`Settings`, every field a QUIVER_*
variable), the pinned versions (scripts/versions.env), and the error every part of the
stack raises with a message that says what to do."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

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


def node_name(base: str, node: int) -> str:
    return base if node == 0 else f"{base}-{node}"
