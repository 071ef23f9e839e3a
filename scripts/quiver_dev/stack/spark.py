"""The Spark standalone cluster: a master and one worker per worker id, and the
configuration that spark-submit shares with them."""

from __future__ import annotations

from pathlib import Path

from quiver_dev.stack.process import http_json, launcher, write
from quiver_dev.stack.prometheus import MONITORING
from quiver_dev.stack.settings import Settings, StackError, node_name


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


# Where the local stack and the compose stack differ by nature (docker/spark-defaults.conf
# holds the compose stack's); every other setting is the same in both, which a test checks.
PER_STACK_SETTINGS = (
    "spark.master",
    "spark.jars",
    "spark.pyspark.python",
    "spark.driver.host",
    "spark.driver.bindAddress",
)


def spark_defaults(s: Settings, jars: list[str]) -> dict[str, str]:
    """The stack's spark-defaults.conf: the daemons' and spark-submit's settings."""
    return {
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


def spark_write_conf(s: Settings) -> None:
    jars = s.spark_kafka_jars
    if not jars:
        raise StackError(f"Spark's Kafka connector jars are missing ({s.spark_kafka_lib}): run scripts/setup")
    if not s.spark_writer_jar.is_file():
        raise StackError(f"the Spark job's JVM writer is missing ({s.spark_writer_jar}): run scripts/setup")
    defaults = spark_defaults(s, [*jars, str(s.spark_writer_jar)])
    write(s.spark_conf_dir / "spark-defaults.conf", "".join(f"{k} {v}\n" for k, v in defaults.items()))
    write(s.spark_conf_dir / "metrics.properties", (MONITORING / "spark" / "metrics.properties").read_text())
    write(
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
    return launcher(
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
    state = http_json(f"http://{s.host}:{s.spark_master_ui_port}/json/")
    if state.get("status") != "ALIVE":
        raise StackError(f"master status is {state.get('status')}")
    return f"{state.get('aliveworkers', 0)} alive workers"


def spark_worker_prepare(s: Settings, node: int = 0) -> Path:
    spark_write_conf(s)
    name, host = node_name("spark-worker", node), s.node_host(node)
    work_dir = s.data(name)
    work_dir.mkdir(parents=True, exist_ok=True)
    return launcher(
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
    worker = http_json(f"http://{s.node_host(node)}:{s.spark_worker_ui_port}/json/")
    master = http_json(f"http://{s.host}:{s.spark_master_ui_port}/json/")
    alive = [w for w in master.get("workers", []) if w.get("state") == "ALIVE" and w.get("id") == worker.get("id")]
    if not alive:
        raise StackError("the worker is not registered with the master yet")
    return f"{worker.get('cores')} cores, {worker.get('memory')} MB for executors"


def spark_worker_ports(s: Settings, node: int) -> dict[str, int]:
    return {"SPARK_WORKER_UI_PORT": s.spark_worker_ui_port}
