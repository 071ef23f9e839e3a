"""Soak: the whole stream at a steady rate for a long while, with the memory of every
process of the pipeline sampled as it runs. Run it through `scripts/bench soak`; it needs
the stack up and the debug build the tests use (memory, not speed, is measured here).

`quiver produce` sends --rate users per second for --minutes to a new topic; the job
streams them in 1-s micro-batches through `quiver serve` (--engine flight) or in the
executors (--engine inprocess) into Cassandra. Every --sample-seconds it records the
resident memory (RSS) of `quiver serve`, the driver (spark-submit's JVM and its Python),
the executor's JVM and its Python workers (pyspark's daemon and workers), the driver JVM's
committed heap and metaspace (`jstat`), and how many rows the service has written. The
verdict compares each figure at the end with the one after --warmup-minutes: growth
beyond 10 % is reported as growth. Results: a table on stdout and JSON (--out).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from contextlib import ExitStack, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

from quiver_dev import machine, paths, stack
from quiver_dev.serve_process import running_serve
from quiver_dev.spark_job import stop_job

ROOT = stack.ROOT
EXECUTOR_CLASS = "org.apache.spark.executor.CoarseGrainedExecutorBackend"


@dataclass
class Sample:
    minute: float
    mib: dict[str, float]
    rows_written: int | None


@dataclass
class Soak:
    engine: str
    rate: float
    minutes: float
    samples: list[Sample] = field(default_factory=list)


def driver_heap_mib(pid: int) -> dict[str, float]:
    """The driver JVM's heap as `jstat -gc` reports it: what it has committed (which RSS follows
    as the heap grows towards its maximum) and its metaspace in use (classes loaded)."""
    out = subprocess.run(["jstat", "-gc", str(pid)], capture_output=True, text=True).stdout.split("\n")
    if len(out) < 2 or not out[1].strip():
        return {}
    gc = dict(zip(out[0].split(), (float(v) for v in out[1].split()), strict=False))
    committed = gc["S0C"] + gc["S1C"] + gc["EC"] + gc["OC"]
    return {"driver heap committed": round(committed / 1024, 1), "driver metaspace": round(gc["MU"] / 1024, 1)}


def memory_mib(job: subprocess.Popen, serve_pid: int | None, app_id: str | None) -> dict[str, float]:
    """RSS in MiB per part of the pipeline, the executor the one of this job's app; and
    the driver JVM's heap, which tells heap growth from other memory."""
    processes = machine.processes()
    # spark-submit's JVM leads the job's process group; the Python driver is in it too.
    driver_python = [pid for pid, _, group, _ in processes if group == job.pid and pid != job.pid]
    parts = {"driver JVM": machine.rss_mib([job.pid]), "driver Python": machine.rss_mib(driver_python)}
    if serve_pid is not None:
        parts["quiver serve"] = machine.rss_mib([serve_pid])
    executors = [pid for pid, _, _, cmd in processes if EXECUTOR_CLASS in cmd and app_id and app_id in cmd]
    parts["executor JVM"] = machine.rss_mib(executors)
    parts["executor Python"] = machine.rss_mib([p for e in executors for p in machine.descendants(e, processes)])
    return {**parts, **driver_heap_mib(job.pid)}


def app_id(s: stack.Settings, name: str) -> str | None:
    """The id of the running Spark application called `name`, from the master."""
    master = stack.http_json(f"http://{s.host}:{s.spark_master_ui_port}/json/")
    return next((app["id"] for app in master.get("activeapps", []) if app.get("name") == name), None)


def run(args: argparse.Namespace, s: stack.Settings) -> Soak:
    quiver = paths.quiver_bin()
    if not quiver.is_file():
        raise SystemExit(f"the quiver binary is missing ({quiver}): cargo build --workspace, or set QUIVER_BIN")
    name = f"soak_{uuid.uuid4().hex[:8]}"
    logs = s.state / "logs" / "bench-soak"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{name}.log"
    cassandra = f"{s.host}:{s.cassandra_port}"
    soak = Soak(args.engine, args.rate, args.minutes)
    stack.cmd_topic(s, name, 2)
    with ExitStack() as cleanup:
        if args.engine == "flight":
            env = {**os.environ, "QUIVER_CASSANDRA_NODES": cassandra, "QUIVER_CASSANDRA_KEYSPACE": name}
            serve = cleanup.enter_context(running_serve(quiver, [], env, logs / f"{name}-serve.log"))
            engine = ["--engine", "flight", "--flight-endpoint", serve.location]
        else:
            serve = cleanup.enter_context(nullcontext())
            engine = ["--engine", "inprocess", "--cassandra-nodes", cassandra, "--cassandra-keyspace", name]
        command = [str(ROOT / "scripts" / "spark-submit"), str(ROOT / "spark-app" / "stream_users.py")]
        command += ["--bootstrap-servers", s.kafka_bootstrap, "--topic", name, "--trigger", "1 second"]
        command += ["--checkpoint-location", str(s.state / "checkpoints" / name), "--app-name", name, *engine]
        print(f"soak {name}: job log {log}", file=sys.stderr, flush=True)
        with log.open("w") as out:
            job = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        cleanup.callback(stop_job, job, 120)
        count = round(args.rate * args.minutes * 60)
        producer = subprocess.Popen(
            [str(quiver), "produce", "--source", "synthetic", "--count", str(count), "--rate", str(args.rate)]
            + ["--topic", name, "--partitions", "2", "--bootstrap-servers", s.kafka_bootstrap],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        cleanup.callback(producer.kill)
        began = time.monotonic()
        while True:
            if job.poll() is not None:
                raise SystemExit(f"the job exited with {job.returncode}:\n{log.read_text()[-4000:]}")
            sample = Sample(
                minute=round((time.monotonic() - began) / 60, 2),
                mib=memory_mib(job, serve.process.pid if serve else None, app_id(s, name)),
                rows_written=serve.rows_written() if serve else None,
            )
            soak.samples.append(sample)
            print(json.dumps(asdict(sample)), file=sys.stderr, flush=True)
            if producer.poll() is not None:
                break
            time.sleep(args.sample_seconds)
        if producer.returncode != 0:
            raise SystemExit(f"quiver produce exited with {producer.returncode}")
    return soak


def report(soak: Soak, warmup_minutes: float) -> None:
    print(f"\nmachine: {machine.describe()}")
    print(f"workload: {soak.rate:,.0f} users/s for {soak.minutes:g} min, --engine {soak.engine}, 1-s micro-batches\n")
    parts = list(dict.fromkeys(p for sample in soak.samples for p in sample.mib))
    print("| minute | " + " | ".join(f"{p} (MiB)" for p in parts) + " | rows written |")
    print("|---:|" + "---:|" * (len(parts) + 1))
    for sample in soak.samples:
        cells = " | ".join(f"{sample.mib.get(p, 0):,.0f}" for p in parts)
        written = "" if sample.rows_written is None else f"{sample.rows_written:,}"
        print(f"| {sample.minute:.1f} | {cells} | {written} |")
    after = [x for x in soak.samples if x.minute >= warmup_minutes]
    if not after:
        print(f"\nno sample after the {warmup_minutes:g}-minute warm-up: run longer")
        return
    print(f"\nafter the {warmup_minutes:g}-minute warm-up (first sample at minute {after[0].minute:.1f}):")
    for p in parts:
        start, end = after[0].mib.get(p, 0), after[-1].mib.get(p, 0)
        peak = max(x.mib.get(p, 0) for x in after)
        growth = (end - start) / start if start else 0.0
        verdict = "flat" if abs(growth) <= 0.10 else "GROWS" if growth > 0 else "shrinks"
        print(f"- {p}: {start:,.0f} → {end:,.0f} MiB (peak {peak:,.0f}), {growth:+.1%}: {verdict}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30, help="how long the producer sends")
    parser.add_argument("--rate", type=float, default=2000, help="users per second")
    parser.add_argument("--engine", choices=("flight", "inprocess"), default="flight")
    parser.add_argument("--sample-seconds", type=float, default=30, help="time between two samples")
    parser.add_argument("--warmup-minutes", type=float, default=5, help="growth is measured from here")
    parser.add_argument("--out", type=Path, help="also write the samples as JSON here")
    args = parser.parse_args(argv)
    soak = run(args, stack.Settings())
    report(soak, args.warmup_minutes)
    if args.out:
        args.out.write_text(json.dumps(asdict(soak), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
