"""Prometheus (optional: `up --with-monitoring`), what it scrapes on the stack, and the
JMX exporter agent through which Kafka and Cassandra serve it their metrics."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from quiver_dev.paths import ROOT
from quiver_dev.stack.process import http_json, launcher, write
from quiver_dev.stack.settings import Settings, StackError

MONITORING = ROOT / "monitoring"


def jmx_agent(s: Settings, component: str, host: str, port: int) -> str:
    """The JVM flag that serves the component's metrics (monitoring/jmx/COMPONENT.yaml) to
    Prometheus on `host:port`."""
    jar = s.jmx_exporter_jar
    if not jar.is_file():
        raise StackError(f"the Prometheus JMX exporter is missing ({jar}): run scripts/setup")
    return f"-javaagent:{jar}={host}:{port}:{MONITORING / 'jmx' / f'{component}.yaml'}"


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
    config = write(conf / "prometheus.yml", (MONITORING / "prometheus" / "prometheus.yml").read_text())
    for job, targets in prometheus_targets(s).items():
        write(conf / "targets" / f"{job}.json", json.dumps([{"targets": targets}]) + "\n")
    return launcher(
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
    targets = http_json(f"http://{s.host}:{s.prometheus_port}/api/v1/targets?state=active")["data"]["activeTargets"]
    up = sorted(t["labels"]["job"] for t in targets if t["health"] == "up")
    return f"scraping {len(up)} of {len(targets)} targets up ({', '.join(up) or 'none yet'})"
