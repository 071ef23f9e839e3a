"""Fixtures of the DAG tests, which run in Airflow's own environment: the local stack's
settings, Airflow's environment as the stack runs it, and `airflow dags test`."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from quiver_dev import stack
from quiver_dev.paths import built_quiver_bin


@pytest.fixture(scope="session")
def settings() -> stack.Settings:
    return stack.Settings()


@pytest.fixture(scope="session")
def airflow_env(settings: stack.Settings) -> dict[str, str]:
    plain, secret = stack.airflow_env(settings)
    return {**os.environ, **plain, **secret, "QUIVER_BIN": str(built_quiver_bin())}


@dataclass
class DagRun:
    ok: bool
    output: str


@pytest.fixture
def dags_test(settings: stack.Settings, airflow_env: dict[str, str], tmp_path: Path):
    """Runs `airflow dags test DAG_ID -c CONF` against the stack; `env` overrides (None
    removes) variables, e.g. connections."""

    def run(dag_id: str, conf: dict, env: dict[str, str | None] | None = None, timeout: float = 600) -> DagRun:
        environment = dict(airflow_env)
        for key, value in (env or {}).items():
            if value is None:
                environment.pop(key, None)
            else:
                environment[key] = value
        argv = [str(settings.airflow_venv / "bin" / "airflow"), "dags", "test", dag_id, "-c", json.dumps(conf)]
        done = subprocess.run(
            argv, env=environment, cwd=tmp_path, capture_output=True, text=True, timeout=timeout, check=False
        )
        output = done.stdout + done.stderr
        log = tmp_path / f"{dag_id}.log"
        log.write_text(output)
        # A failed run exits non-zero and says so in its last line.
        ok = done.returncode == 0 and "DagRun failed" not in output
        return DagRun(ok, output)

    return run
