"""The local stack, one module per component (kafka, cassandra, spark, postgres, airflow,
prometheus: each its configuration, launcher, health check and ports), with its settings,
the list of components, supervisord, the preflight checks and the CLI's commands;
`python -m quiver_dev.stack` is the CLI (scripts/stack).

The names the tests, the benchmarks and the scripts use are here, as `stack.NAME`.
"""

from quiver_dev.paths import ROOT
from quiver_dev.stack.airflow import airflow_env, airflow_password
from quiver_dev.stack.commands import cmd_topic, stack_env
from quiver_dev.stack.components import by_name, components, groups
from quiver_dev.stack.process import http_json
from quiver_dev.stack.prometheus import (
    JOB_METRICS_PORT,
    PRODUCE_METRICS_PORT,
    SERVE_METRICS_PORT,
    SPARK_DRIVER_UI_PORT,
    prometheus_targets,
)
from quiver_dev.stack.settings import TOPIC_PARTITIONS, Settings, StackError
from quiver_dev.stack.supervisor import Supervisor

__all__ = [
    "JOB_METRICS_PORT",
    "PRODUCE_METRICS_PORT",
    "ROOT",
    "SERVE_METRICS_PORT",
    "SPARK_DRIVER_UI_PORT",
    "TOPIC_PARTITIONS",
    "Settings",
    "StackError",
    "Supervisor",
    "http_json",
    "airflow_env",
    "airflow_password",
    "by_name",
    "cmd_topic",
    "components",
    "groups",
    "prometheus_targets",
    "stack_env",
]
