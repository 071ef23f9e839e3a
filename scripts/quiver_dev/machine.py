"""What the benchmarks print about the machine they ran on, and read of its processes."""

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


def processes() -> list[tuple[int, int, int, str]]:
    """(pid, parent, process group, command line) of every process now."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The fields after the command's closing parenthesis: state, ppid, pgrp, ...
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_text().replace("\0", " ")
        except OSError:  # ended since it was listed
            continue
        found.append((int(stat.parent.name), int(fields[1]), int(fields[2]), cmdline))
    return found


def descendants(root: int, processes: list[tuple[int, int, int, str]]) -> list[int]:
    """The pids of `root`'s children, their children and so on, from `processes()`."""
    children: dict[int, list[int]] = {}
    for pid, parent, _, _ in processes:
        children.setdefault(parent, []).append(pid)
    found, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def rss_mib(pids: list[int]) -> float:
    """The resident memory of these processes together, in MiB; 0 for one that has ended."""
    kib = 0
    for pid in pids:
        try:
            status = (Path("/proc") / str(pid) / "status").read_text()
        except OSError:  # ended since it was listed
            continue
        kib += next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    return round(kib / 1024, 1)
