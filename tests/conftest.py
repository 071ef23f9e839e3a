"""Shared fixtures: the local stack's settings, read the same way scripts/stack reads them."""

from __future__ import annotations

import sys
import uuid
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
