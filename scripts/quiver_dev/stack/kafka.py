"""Kafka in KRaft mode: a broker that is also a controller, one per node of a cluster."""

from __future__ import annotations

import base64
import socket
import subprocess
import uuid
from pathlib import Path

from quiver_dev.stack.process import java_bin, launcher, write
from quiver_dev.stack.prometheus import jmx_agent
from quiver_dev.stack.settings import Settings, StackError, node_name


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
    server_properties = write(conf / "server.properties", "".join(f"{k}={v}\n" for k, v in props.items()))
    log4j = write(
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
                java_bin(),
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
    return launcher(
        s,
        name,
        {"LOG_DIR": str(s.logs(name))},
        [
            java_bin(),
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
        write(kept, new + "\n")
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


def kafka_ports(s: Settings, node: int) -> dict[str, int]:
    return {
        "KAFKA_PORT": s.kafka_port,
        "KAFKA_CONTROLLER_PORT": s.kafka_controller_port,
        "KAFKA_METRICS_PORT": s.kafka_metrics_port,
    }
