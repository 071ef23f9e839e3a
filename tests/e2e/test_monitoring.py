"""Prometheus over the running stack: with users streaming from `quiver produce` through
Kafka, the Spark job and `quiver serve` into Cassandra, the stack's Prometheus (Debian's,
`scripts/stack up prometheus`) must scrape every component, and every metric that the
Grafana dashboard (monitoring/grafana/dashboards/quiver.json) or the Prometheus config
(monitoring/prometheus/prometheus.yml) names must really be there, each panel's query
returning data.

Needs the stack and the built binary; starts Prometheus if it is not running.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.parse
import urllib.request

import pytest
from test_stream import produce_users, start_stream

import conftest
from conftest import ROOT
from quiver_dev import stack
from quiver_dev.spark_job import stop_job

DASHBOARD = ROOT / "monitoring" / "grafana" / "dashboards" / "quiver.json"
PROMETHEUS_CONFIG = ROOT / "monitoring" / "prometheus" / "prometheus.yml"
PROMQL_WORDS = {"by", "on", "without", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset"}


def dashboard_queries() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel["targets"]]


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: identifiers that are not functions,
    keywords, labels (inside {} or by/on (...)) or durations."""
    expr = re.sub(r'"[^"]*"', "", expr)
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(by|on|without|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = set()
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr):
        follows = expr[match.end() :].lstrip()
        if not follows.startswith("(") and match.group() not in PROMQL_WORDS:
            names.add(match.group())
    return names


def config_names() -> set[str]:
    """Names the Prometheus config gives metrics (its relabelling's fixed replacements)."""
    text = PROMETHEUS_CONFIG.read_text()
    return set(re.findall(r"replacement: ([a-z_][a-z0-9_]*)\s*$", text, re.MULTILINE))


def prometheus(settings, path: str, **params: str) -> dict:
    url = f"http://{settings.host}:{settings.prometheus_port}{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]


def fresh(settings, name: str) -> bool:
    """Whether Prometheus has a sample of `name` from the last 20 s."""
    query = f'count(last_over_time({{__name__="{name}"}}[20s]))'
    return bool(prometheus(settings, "/api/v1/query", query=query)["result"])


def test_the_metric_names_are_read_from_the_queries():
    names = metric_names(
        'max by (topic, partition) (kafka_log_end_offset) - on (topic, partition) max by (topic) (x_total{a="b"}) - 1'
    )
    assert names == {"kafka_log_end_offset", "x_total"}
    assert metric_names("histogram_quantile(0.99, sum by (le) (rate(q_bucket[1m])))") == {"q_bucket"}
    assert {"spark_streaming_batch_duration_ms", "spark_streaming_input_rows_per_second"} <= config_names()


@pytest.fixture
def running_prometheus(settings) -> None:
    started = subprocess.run([str(ROOT / "scripts" / "stack"), "up", "prometheus"], capture_output=True, text=True)
    assert started.returncode == 0, started.stdout + started.stderr


def test_every_metric_the_dashboard_and_prometheus_name_is_exported(
    settings, unique_name, tmp_path, running_prometheus
):
    topic = keyspace = unique_name
    env = {
        **os.environ,
        "QUIVER_CASSANDRA_NODES": f"{settings.host}:{settings.cassandra_port}",
        "QUIVER_CASSANDRA_KEYSPACE": keyspace,
    }
    quiver = str(conftest.quiver_bin())
    # On the ports the stack's Prometheus scrapes.
    serve_log = tmp_path / "serve.log"
    with conftest.running_serve(["--sink", "cassandra"], env, serve_log, http_port=stack.SERVE_METRICS_PORT) as serve:
        produce_users(quiver, settings, topic, count=100)
        engine = ["--engine", "flight", "--flight-endpoint", serve.location]
        job_metrics = ("--job-metrics-addr", f"{settings.host}:{stack.JOB_METRICS_PORT}")
        job = start_stream(settings, topic, engine, tmp_path / "ckpt", tmp_path / "job.log", job_metrics)
        producer = subprocess.Popen(
            [quiver, "produce", "--source", "synthetic", "--count", "1000000", "--rate", "500", "--topic", topic,
             "--bootstrap-servers", settings.kafka_bootstrap,
             "--metrics-addr", f"{settings.host}:{stack.PRODUCE_METRICS_PORT}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            queries = dashboard_queries()
            wanted = set().union(*map(metric_names, queries)) | config_names()
            deadline = time.monotonic() + 180
            while True:
                time.sleep(3)
                # Scraped in the last 20 s: Prometheus keeps earlier runs' series too.
                missing = {name for name in wanted if not fresh(settings, name)}
                targets = prometheus(settings, "/api/v1/targets", state="active")["activeTargets"]
                down = {t["labels"]["job"]: t["lastError"] for t in targets if t["health"] != "up"}
                # Each panel's query, as Grafana runs it, returns series (a rate needs two
                # scrapes of a series).
                empty = [q for q in queries if not prometheus(settings, "/api/v1/query", query=q)["result"]]
                if not (missing or down or empty) or time.monotonic() > deadline:
                    break
            assert not missing, f"not scraped: {sorted(missing)}; targets down: {down}"
            assert not down, down
            assert not empty, empty
            assert {t["labels"]["job"] for t in targets} == set(stack.prometheus_targets(settings)) | {
                "spark-executors"
            }
        finally:
            producer.kill()
            producer.wait()
            stop_job(job)
