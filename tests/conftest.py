"""Shared fixtures: the local stack's settings (read the way scripts/stack reads them) and a
running `quiver serve`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import stack  # noqa: E402  (scripts/stack.py, found through the path set above)


@pytest.fixture(scope="session")
def settings() -> stack.Settings:
    return stack.Settings()


@pytest.fixture
def unique_name() -> str:
    """A name no earlier run used, so tests never see each other's topics or tables."""
    return f"t_{uuid.uuid4().hex[:12]}"


def quiver_bin() -> Path:
    """The built `quiver` binary: $QUIVER_BIN, else the debug build in $CARGO_TARGET_DIR."""
    explicit = os.environ.get("QUIVER_BIN")
    target = Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache" / "quiver" / "target"))
    path = Path(explicit) if explicit else target / "debug" / "quiver"
    if not path.is_file():
        pytest.fail(f"the quiver binary is not built at {path}: run `cargo build --workspace` or set QUIVER_BIN")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Serve:
    location: str  # the Flight endpoint, grpc://127.0.0.1:PORT
    http: str  # /metrics and /healthz
    log: Path
    process: subprocess.Popen


@contextmanager
def running_serve(args: list[str], env: dict[str, str], log: Path, flight_port: int | None = None) -> Iterator[Serve]:
    """`quiver serve ARGS` on free ports (or the Flight port given) until /healthz answers;
    stopped by its PID."""
    flight_port, http_port = flight_port or free_port(), free_port()
    argv = [str(quiver_bin()), "serve", *args, "--flight-listen", f"127.0.0.1:{flight_port}"]
    argv += ["--http-listen", f"127.0.0.1:{http_port}"]
    http = f"http://127.0.0.1:{http_port}"
    with log.open("ab") as out:
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"quiver serve exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{http}/healthz", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"quiver serve did not answer /healthz within 60 s:\n{log.read_text()[-3000:]}")
                time.sleep(0.1)
        yield Serve(f"grpc://127.0.0.1:{flight_port}", http, log, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
