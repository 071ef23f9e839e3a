"""What the benchmarks print about the machine they ran on."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def describe() -> str:
    """`N cores (model), platform`: the machine line of every benchmark's report."""
    return f"{os.cpu_count()} cores ({cpu_model()}), {platform.platform()}"
