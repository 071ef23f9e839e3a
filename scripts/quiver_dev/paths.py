"""Where the checkout, the Rust build output and the quiver binary are, as scripts/lib.sh
sets them for the shell scripts."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class NotBuilt(RuntimeError):
    """The quiver binary is not where quiver_bin() says; the message says how to build it."""


def target_dir() -> Path:
    """$CARGO_TARGET_DIR, else scripts/lib.sh's default: outside the clone, so that fresh
    clones reuse the build."""
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(os.environ.get("CARGO_TARGET_DIR") or Path(cache) / "quiver" / "target")


def quiver_bin() -> Path:
    """The `quiver` binary: $QUIVER_BIN, else the debug build in target_dir()."""
    return Path(os.environ.get("QUIVER_BIN") or target_dir() / "debug" / "quiver")


def built_quiver_bin() -> Path:
    """quiver_bin(), which the caller is about to run: NotBuilt when it is missing."""
    path = quiver_bin()
    if not path.is_file():
        raise NotBuilt(f"the quiver binary is not built at {path}: run `cargo build --workspace` or set QUIVER_BIN")
    return path
