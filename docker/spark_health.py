"""Healthcheck of the compose stack's Spark containers, the same answers the local stack
waits for (scripts/quiver_dev/stack/spark.py): the master's JSON status is ALIVE; a worker is listed ALIVE
by the master; a driver's UI lists its application.

    python3 spark_health.py master|worker|driver
"""

import json
import sys
import urllib.request

MASTER_UI = "http://spark-master:9090/json/"
WORKER_UI = "http://127.0.0.1:9091/json/"
DRIVER_UI = "http://127.0.0.1:4040/api/v1/applications"


def get(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def check(role: str) -> str:
    if role == "master":
        status = get(MASTER_UI).get("status")
        if status != "ALIVE":
            raise RuntimeError(f"master status is {status}")
        return "master ALIVE"
    if role == "worker":
        worker_id = get(WORKER_UI).get("id")
        alive = [w for w in get(MASTER_UI).get("workers", []) if w.get("id") == worker_id and w.get("state") == "ALIVE"]
        if not alive:
            raise RuntimeError(f"worker {worker_id} is not registered with the master yet")
        return f"worker {worker_id} ALIVE"
    if role == "driver":
        apps = get(DRIVER_UI)
        if not apps:
            raise RuntimeError("the driver runs no application yet")
        return f"driver of {apps[0].get('name')}"
    raise SystemExit(f"unknown role {role!r}: use master, worker or driver")


if __name__ == "__main__":
    try:
        print(check(sys.argv[1] if len(sys.argv) > 1 else ""))
    except (OSError, RuntimeError, ValueError) as error:
        print(f"unhealthy: {error}", file=sys.stderr)
        sys.exit(1)
