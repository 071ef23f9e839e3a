"""What would stop the stack from starting: taken ports, too little memory or disk.

`scripts/stack check` runs this on the system's Python before the project's environment
exists (scripts/setup, scripts/run), so the modules it imports use the standard library
only at import time: third-party clients are imported inside the functions that use them.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
from pathlib import Path

from quiver_dev import paths
from quiver_dev.stack.components import by_name, components
from quiver_dev.stack.settings import Settings, StackError
from quiver_dev.stack.supervisor import Supervisor


def _port_taken(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def _taken(host: str, port: int, owner: str, variable: str, what: str) -> str:
    return (
        f"port {port} on {host} ({owner}) is taken{_who_listens(port)}: "
        f"stop what holds it, or set {variable} to a free {what}"
    )


def _who_listens(port: int) -> str:
    try:
        out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True).stdout.strip()
    except FileNotFoundError:
        return ""
    # users:(("java",pid=1960,fd=272)) -> " (java, pid 1960)"
    found = re.search(r'users:\(\("([^"]+)",pid=(\d+)', out)
    return f" ({found[1]}, pid {found[2]})" if found else ""


def check_ports(s: Settings, sup: Supervisor, wanted: list[str]) -> None:
    supervised = sup.running()
    starting = [name for name in wanted if not (supervised and sup.info(name)["statename"] == "RUNNING")]
    taken = _taken_ports(s, starting)
    if taken:
        raise StackError("\n".join(taken))


def _taken_ports(s: Settings, names: list[str]) -> list[str]:
    """One line for each port of these components that something else holds."""
    known = by_name(s)
    return [
        _taken(s.node_host(known[name].node), port, name, f"QUIVER_{setting}", "port")
        for name in names
        for setting, port in known[name].ports(s).items()
        if _port_taken(s.node_host(known[name].node), port)
    ]


# What a first run needs beyond the heaps: Spark's master and worker (512 MiB each), its
# driver and executor (1 GiB each), Cassandra's memory off the heap, quiver serve and a
# cargo build (up to ~2 GiB while it links).
_MEMORY_BESIDE_HEAPS = 5 << 30
# Measured on a first run: the two Python environments (~2.5 GiB), the jars, Cargo's
# downloads and the debug build (~6 GiB); then the stack's data and logs.
_DISK_INSTALL = 3 << 30
_DISK_BUILD = 7 << 30
_DISK_DATA = 2 << 30


def _bytes(size: str) -> int:
    """A JVM-style size ("512m", "2g") in bytes."""
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    unit = units.get(size[-1:].lower(), 1)
    try:
        return int(size[:-1] if unit > 1 else size) * unit
    except ValueError:
        raise StackError(f"{size!r} is not a size like 512m or 2g") from None


def _gib(n: int) -> str:
    return f"{n / (1 << 30):.1f} GiB"


def _available_memory() -> int:
    """MemAvailable, or what a cgroup limit (a container's) leaves, if that is less."""
    meminfo = Path("/proc/meminfo").read_text()
    available = int(next(line.split()[1] for line in meminfo.splitlines() if line.startswith("MemAvailable:"))) << 10
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text())
            available = min(available, int(limit) - used)
    except (OSError, ValueError):
        pass
    return available


def _existing(path: Path) -> Path:
    while not path.exists():
        path = path.parent
    return path


def preflight(s: Settings, serve: bool) -> list[str]:
    """What would stop the stack (and, with serve, quiver serve) from starting, one line each
    naming the problem and the fix; empty when nothing would. Runs on the system's Python
    before anything is installed, so it uses the standard library only."""
    problems = []
    # Its ports are the stack's own then ('up' checks those of components not running yet).
    stack_running = Supervisor(s).pid() != 0
    if not stack_running:
        problems += _taken_ports(s, [c.name for c in components(s) if not c.optional])
    if serve:
        for variable, default in (
            ("QUIVER_FLIGHT_LISTEN", "127.0.0.1:50051"),
            ("QUIVER_HTTP_LISTEN", "127.0.0.1:9464"),
        ):
            host, _, port = os.environ.get(variable, default).rpartition(":")
            if port.isdigit() and _port_taken(host.strip("[]"), int(port)):
                problems.append(_taken(host, int(port), "quiver serve", variable, "address"))
    if not stack_running:
        nodes = len(s.node_ids)
        needed = nodes * (_bytes(s.kafka_heap) + _bytes(s.cassandra_heap)) + _MEMORY_BESIDE_HEAPS
        available = _available_memory()
        if available < needed:
            each = f"{nodes} × " if nodes > 1 else ""
            problems.append(
                f"{_gib(available)} of memory is available, the stack needs about {_gib(needed)} "
                f"(Kafka {each}{s.kafka_heap}, Cassandra {each}{s.cassandra_heap}, "
                f"Spark and the build {_gib(_MEMORY_BESIDE_HEAPS)}): "
                "free memory, or give the JVMs less, e.g. QUIVER_KAFKA_HEAP=512m QUIVER_CASSANDRA_HEAP=1g"
            )
    target = paths.target_dir()
    needs: dict[int, tuple[Path, int]] = {}
    for path, size in (
        (s.state, _DISK_DATA + (0 if s.venv.is_dir() else _DISK_INSTALL)),
        (target, 0 if (target / "debug").is_dir() else _DISK_BUILD),
    ):
        device = os.stat(_existing(path)).st_dev
        where, total = needs.get(device, (path, 0))
        needs[device] = (where, total + size)
    for where, size in needs.values():
        stat = os.statvfs(_existing(where))
        free = stat.f_bavail * stat.f_frsize
        if free < size:
            problems.append(
                f"{_gib(free)} free on the disk of {where}, a first run needs about {_gib(size)}: "
                "free some space, or put the state elsewhere with QUIVER_STATE_DIR "
                "(and the build with CARGO_TARGET_DIR)"
            )
    return problems
