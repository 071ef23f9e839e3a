"""scripts/stack's failures: each names what failed and the fix, and leaves nothing running.

These use a state folder of their own (sharing the downloads of the real one) and ports
nobody uses, so they run beside a running stack without touching it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT, free_port, stack


@pytest.fixture
def scratch_state(settings, tmp_path):
    """A state folder with the real downloads linked in and nothing started."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "lib").symlink_to(settings.state / "lib")
    (state / "venv").symlink_to(settings.state / "venv")
    return state


def _stack(state, *args, **env):
    return subprocess.run(
        [str(ROOT / "scripts" / "stack"), *args],
        env={**os.environ, "QUIVER_STATE_DIR": str(state), **env},
        capture_output=True,
        text=True,
        timeout=180,
    )


def _supervisord_alive(state) -> bool:
    pidfile = state / "run" / "supervisord.pid"
    if not pidfile.exists():
        return False
    try:
        os.kill(int(pidfile.read_text()), 0)
        return True
    except ProcessLookupError:
        return False


def test_a_taken_port_is_named_and_nothing_starts(scratch_state):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        result = _stack(
            scratch_state,
            "up",
            "kafka",
            QUIVER_KAFKA_PORT=str(taken),
            QUIVER_KAFKA_CONTROLLER_PORT=str(free_port()),
            QUIVER_KAFKA_METRICS_PORT=str(free_port()),
        )
    assert result.returncode == 1
    assert f"port {taken} on 127.0.0.1 (kafka) is taken" in result.stderr
    assert "set QUIVER_KAFKA_PORT to a free port" in result.stderr
    assert not _supervisord_alive(scratch_state)


def test_a_component_that_dies_shows_its_log_and_leaves_nothing_running(scratch_state):
    result = _stack(
        scratch_state,
        "up",
        "kafka",
        QUIVER_KAFKA_PORT=str(free_port()),
        QUIVER_KAFKA_CONTROLLER_PORT=str(free_port()),
        QUIVER_KAFKA_METRICS_PORT=str(free_port()),
        QUIVER_KAFKA_HEAP="not-a-size",
    )
    assert result.returncode == 1
    assert "kafka exited while starting" in result.stderr
    # The end of the component's own log says why.
    assert "Invalid initial heap size" in result.stderr
    assert "stopped what this 'up' had started" in result.stderr
    assert not _supervisord_alive(scratch_state)


def test_an_unknown_component_lists_the_known_ones(scratch_state):
    result = _stack(scratch_state, "up", "zookeeper")
    assert result.returncode == 1
    assert "unknown component 'zookeeper': choose from postgres, kafka, cassandra" in result.stderr


def test_a_bad_port_setting_names_the_variable(scratch_state):
    result = _stack(scratch_state, "status", QUIVER_CASSANDRA_PORT="nine")
    assert result.returncode != 0
    assert "QUIVER_CASSANDRA_PORT='nine' is not a port number" in result.stderr


def test_status_fails_while_a_component_is_down(scratch_state):
    result = _stack(scratch_state, "status")
    assert result.returncode == 1
    assert result.stdout.count("STOPPED") == 9
    # Airflow and Prometheus are optional: stopped, they are marked so and do not count
    # against the stack.
    assert result.stdout.count("optional: up --with-airflow") == 3
    assert result.stdout.count("optional: up --with-monitoring") == 1


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs Postgres as another user")
def test_as_root_postgres_runs_from_a_state_folder_inside_a_private_one(scratch_state, tmp_path):
    """pytest's tmp_path lies in /tmp/pytest-of-root (mode 0700), which the postgres user
    cannot enter, like a clone under /root: the stack puts Postgres's data elsewhere and
    says where."""
    assert os.stat(tmp_path.parent.parent).st_mode & 0o777 == 0o700
    home = (
        Path("/var/lib/quiver") / f"postgres-{hashlib.sha256(str(scratch_state.resolve()).encode()).hexdigest()[:12]}"
    )
    port = str(free_port())
    try:
        up = _stack(scratch_state, "up", "postgres", QUIVER_POSTGRES_PORT=port)
        assert up.returncode == 0, up.stderr[-3000:]
        status = _stack(scratch_state, "status", QUIVER_POSTGRES_PORT=port)
        assert f"postgres data: {home / 'data'}" in status.stdout, status.stdout
        postgres = next(row for row in status.stdout.splitlines() if row.startswith("postgres "))
        assert "RUNNING" in postgres and "yes:" in postgres, status.stdout
        assert (home / "data" / "PG_VERSION").is_file()
    finally:
        _stack(scratch_state, "down", QUIVER_POSTGRES_PORT=port)
        shutil.rmtree(home, ignore_errors=True)


def _check(state, *args, **env):
    """`python3 -m quiver_dev.stack check` on the system's Python, as set-up runs it before
    anything is installed."""
    # Every port of the stack's components and of quiver serve free, so that check looks at
    # these only, beside a running stack.
    defaults = stack.Settings(state=state)
    settings = [f"QUIVER_{name}" for c in stack.components(defaults) for name in c.ports(defaults)]
    free = {name: str(free_port()) for name in settings}
    free["QUIVER_FLIGHT_LISTEN"] = f"127.0.0.1:{free_port()}"
    free["QUIVER_HTTP_LISTEN"] = f"127.0.0.1:{free_port()}"
    return subprocess.run(
        ["/usr/bin/python3", "-m", "quiver_dev.stack", "check", *args],
        env={
            "PATH": os.environ["PATH"],
            "HOME": os.environ["HOME"],
            # What scripts/lib.sh exports for set-up.
            "PYTHONPATH": str(ROOT / "scripts"),
            "QUIVER_STATE_DIR": str(state),
            **free,
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_check_passes_when_nothing_is_in_the_way(scratch_state):
    result = _check(scratch_state, "--serve")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_check_names_each_taken_port_with_its_setting(scratch_state):
    with socket.socket() as kafka, socket.socket() as flight:
        for holder in (kafka, flight):
            holder.bind(("127.0.0.1", 0))
            holder.listen()
        kafka_port, flight_port = kafka.getsockname()[1], flight.getsockname()[1]
        result = _check(
            scratch_state,
            "--serve",
            QUIVER_KAFKA_PORT=str(kafka_port),
            QUIVER_FLIGHT_LISTEN=f"127.0.0.1:{flight_port}",
        )
        # Without --serve, quiver serve's ports are not looked at.
        without_serve = _check(scratch_state, QUIVER_FLIGHT_LISTEN=f"127.0.0.1:{flight_port}")
    lines = result.stderr.splitlines()
    assert result.returncode == 1
    assert len(lines) == 2, result.stderr
    assert f"port {kafka_port} on 127.0.0.1 (kafka) is taken" in lines[0]
    assert "set QUIVER_KAFKA_PORT to a free port" in lines[0]
    assert f"port {flight_port} on 127.0.0.1 (quiver serve) is taken" in lines[1]
    assert "set QUIVER_FLIGHT_LISTEN to a free address" in lines[1]
    assert without_serve.returncode == 0, without_serve.stderr


def test_check_says_how_much_memory_the_heaps_need(scratch_state):
    result = _check(scratch_state, QUIVER_CASSANDRA_HEAP="4096g")
    assert result.returncode == 1
    assert "the stack needs about 4102.0 GiB (Kafka 1g, Cassandra 4096g" in result.stderr
    assert "QUIVER_CASSANDRA_HEAP=1g" in result.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts a small file system")
def test_check_finds_a_disk_too_small_for_a_first_run(tmp_path):
    """A fresh state folder and build folder on a 64 MiB file system: no room for the
    Python environments, the jars and the build."""
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(small)], check=True)
    try:
        result = _check(small / "state", CARGO_TARGET_DIR=str(small / "target"))
    finally:
        subprocess.run(["umount", str(small)], check=True)
    assert result.returncode == 1
    assert f"free on the disk of {small / 'state'}, a first run needs about 12.0 GiB" in result.stderr
    assert "QUIVER_STATE_DIR" in result.stderr
