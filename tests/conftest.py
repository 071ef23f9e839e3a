"""Shared fixtures: the local stack's settings (read the way scripts/stack reads them) and a
running `quiver serve`."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from quiver_dev import paths, serve_process, stack
from quiver_dev.paths import ROOT  # noqa: F401  (the tests import it from here)
from quiver_dev.serve_process import Serve, free_port  # noqa: F401  (the tests import them from here)


@pytest.fixture(scope="session")
def settings() -> stack.Settings:
    return stack.Settings()


@pytest.fixture
def unique_name() -> str:
    """A name no earlier run used, so tests never see each other's topics or tables."""
    return f"t_{uuid.uuid4().hex[:12]}"


def quiver_bin() -> Path:
    """The built `quiver` binary (quiver_dev.paths), a failure when it is missing."""
    try:
        return paths.built_quiver_bin()
    except paths.NotBuilt as error:
        pytest.fail(str(error))


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
