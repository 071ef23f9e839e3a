"""Airflow (optional: `up --with-airflow`): its API server, scheduler and DAG processor.

Airflow runs from its own environment (scripts/setup) with every setting as an
AIRFLOW__* variable, so there is no airflow.cfg to keep in step. Its metadata lives in
the stack's Postgres, in a database of its own.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import urllib.request
from collections.abc import Callable
from pathlib import Path

from quiver_dev import paths
from quiver_dev.paths import ROOT
from quiver_dev.stack.postgres import postgres_connect
from quiver_dev.stack.process import http_json, launcher, sh_quote, write
from quiver_dev.stack.settings import Settings, StackError
from quiver_dev.stack.spark import spark_env

AIRFLOW_DAGS = ROOT / "airflow" / "dags"


def _secret(path: Path, make: Callable[[], str]) -> str:
    """The secret kept in `path`, made (mode 0600) on first use."""
    if not path.exists():
        write(path, make() + "\n", 0o600)
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
        write(s.airflow_passwords_file, json.dumps({s.airflow_user: secrets.token_urlsafe(18)}) + "\n", 0o600)
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
    env_file = write(
        s.state / "secrets" / "airflow.env", "".join(f"{k}={sh_quote(v)}\n" for k, v in secret.items()), 0o600
    )
    return plain, env_file


def airflow_api_server_prepare(s: Settings) -> Path:
    airflow = s.airflow_venv / "bin" / "airflow"
    if not airflow.exists():
        raise StackError(f"Airflow is not installed ({s.airflow_venv}): run scripts/setup")
    with postgres_connect(s, "postgres") as conn:
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
    return launcher(s, name, plain, [str(s.airflow_venv / "bin" / "airflow"), *args], secret_env=env_file)


def _airflow_health(s: Settings) -> dict:
    return http_json(f"{s.airflow_url}/api/v2/monitor/health")


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


def airflow_heartbeat(part: str) -> Callable[[Settings], str]:
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
