"""Cassandra 5.0 on Java 17, one node per node of a cluster."""

from __future__ import annotations

import logging
from pathlib import Path

from quiver_dev.stack.process import java_bin, launcher, write
from quiver_dev.stack.prometheus import jmx_agent
from quiver_dev.stack.settings import Settings, StackError, node_name

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
    yaml = write(conf / "cassandra.yaml", "\n".join(yaml_lines))
    logback = write(
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
    return launcher(
        s,
        name,
        {"CASSANDRA_CONF": str(conf)},
        [
            java_bin(),
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


def cassandra_ports(s: Settings, node: int) -> dict[str, int]:
    return {
        "CASSANDRA_PORT": s.cassandra_port,
        "CASSANDRA_STORAGE_PORT": s.cassandra_storage_port,
        "CASSANDRA_JMX_PORT": cassandra_jmx_port(s, node),
        "CASSANDRA_METRICS_PORT": s.cassandra_metrics_port,
    }
