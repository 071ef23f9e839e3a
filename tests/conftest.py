"""Shared fixtures: the local stack's settings (read the way scripts/stack reads them) and a
running `quiver serve`."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import serve_process  # noqa: E402  (scripts/, found through the path set above)
from serve_process import Serve, free_port  # noqa: E402, F401  (the tests import them from here)

import stack  # noqa: E402


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


@contextmanager
def running_serve(
    args: list[str], env: dict[str, str], log: Path, flight_port: int | None = None, http_port: int | None = None
) -> Iterator[Serve]:
    """`quiver serve ARGS` on free ports (or the ports given) until /healthz answers;
    stopped by its PID."""
    try:
        with serve_process.running_serve(quiver_bin(), args, env, log, flight_port, http_port) as server:
            yield server
    except serve_process.ServeFailed as error:
        pytest.fail(str(error))
