"""Measures the local stack: start-up time from an installed state, idle memory of each
component, and the disk used by the state folder. Run it through `scripts/bench stack`.

It restarts the stack: anything running on it is interrupted.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

from quiver_dev import machine, stack


def _du_mib(path: Path) -> float:
    if not path.exists():
        return 0.0
    out = subprocess.run(["du", "-sk", "--dereference-args", str(path)], capture_output=True, text=True).stdout
    return int(out.split()[0]) / 1024


def main() -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench stack", description=__doc__.split("\n\n")[0])
    parser.add_argument("--idle-seconds", type=float, default=30, help="wait before reading memory (default 30)")
    parser.add_argument("--fresh", action="store_true", help="start on empty data folders (first start)")
    parser.add_argument("--nodes", type=int, choices=[1, 3], default=1, help="1 (default), or 3: the cluster profile")
    args = parser.parse_args()

    s = stack.Settings()
    script = str(stack.ROOT / "scripts" / "stack")
    subprocess.run([script, "down"], check=True)
    if args.fresh:
        subprocess.run(["rm", "-rf", str(s.state / "data")], check=True)
    t0 = time.monotonic()
    up = subprocess.run([script, "up", "--nodes", str(args.nodes)], capture_output=True, text=True)
    up_seconds = time.monotonic() - t0
    sys.stderr.write(up.stderr)
    if up.returncode != 0:
        return 1
    per_component = dict(re.findall(r"^\s+(\S+)\s+up in\s+([\d.]+) s", up.stderr, re.MULTILINE))

    time.sleep(args.idle_seconds)
    s = stack.Settings()  # the profile 'up' chose
    sup = stack.Supervisor(s)
    rows = []
    processes = machine.processes()
    for c in stack.components(s):
        # A JVM may sit under a shell: the process and everything under it.
        pid = sup.info(c.name).get("pid") or 0
        tree = [pid, *machine.descendants(pid, processes)] if pid else []
        rows.append((c.name, per_component.get(c.name, "-"), machine.rss_mib(tree) / 1024))

    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    print(f"machine: {os.cpu_count()} cores ({machine.cpu_model()}), {mem_gib:.0f} GiB, {platform.platform()}")
    profile = f"{args.nodes} nodes" if args.nodes > 1 else "single node"
    state = "first start, empty data" if args.fresh else "restart, existing data"
    print(f"stack up, {profile} ({state}): {up_seconds:.1f} s\n")
    print("| component | start-up (s) | idle RSS (GiB) |")
    print("|---|---:|---:|")
    for name, seconds, rss in rows:
        print(f"| {name} | {seconds} | {rss:.2f} |")
    print(f"| **total** | {up_seconds:.1f} | {sum(r[2] for r in rows):.2f} |\n")
    print("| state folder | MiB |")
    print("|---|---:|")
    for part in ["lib", "venv", "data", "logs"]:
        print(f"| {part}/ | {_du_mib(s.state / part):.0f} |")
    print(f"| **total** | {_du_mib(s.state):.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
