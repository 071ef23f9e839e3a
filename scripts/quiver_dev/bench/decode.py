"""The `users` transformation on one core, quiver against Spark, in the same run over the
same records. Run it through `scripts/bench decode`, which makes the release builds and
pins this process to CPU 0 with taskset; the JVM that pyspark starts inherits the pin.

- quiver: the release `quiver` module, `Engine().process("users", batch)` on a Kafka-shaped
  Arrow batch: simd-json decode into Arrow, then the DataFusion plan of pipelines/users.sql.
- spark: pyspark `local[1]`, the from_json + select of quiver_dev/bench/seed_job.py (the baseline
  of the end-to-end benchmark) plus processed_at, over the same batch as a cached DataFrame,
  evaluated in full by a `noop` write.

The records come from the project's synthetic generator (release example `synthetic`), keyed
by login.uuid. For each batch size each side runs untimed rounds (at least --warmup of them
and for at least --warmup-seconds), then --rounds timed ones, and the medians are compared.

quiver is measured first, before pyspark starts its JVM: on a shared core the JVM's
background threads (JIT compilers, GC) keep running after a Spark job and would be charged
to quiver's next round if the two alternated. Spark's JIT takes many jobs to settle on one
core (from a cold start, 10,000-record rounds fell from 2.5 s to 0.6 s over the first 7 jobs
and were still falling slowly after 30), hence the warm-up by time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa

import quiver
from quiver_dev import paths
from quiver_dev.bench.seed_job import users_select
from quiver_dev.kafka_batch import kafka_batch
from quiver_dev.machine import cpu_model


def synthetic_lines(seed: int, count: int) -> list[bytes]:
    generator = paths.target_dir() / "release" / "examples" / "synthetic"
    if not generator.is_file():
        raise SystemExit(
            f"the synthetic generator is missing ({generator}): "
            "cargo build --release --workspace --locked --examples (scripts/bench decode does)"
        )
    done = subprocess.run([str(generator), str(seed), str(count)], capture_output=True, check=True)
    lines = done.stdout.splitlines()
    if len(lines) != count:
        raise SystemExit(f"{generator} printed {len(lines)} records, not {count}")
    return lines


def spark_session():
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master("local[1]")
        .appName("quiver-bench-decode")
        # 100,000 records cached plus their transformation need more than the default 1 GiB.
        .config("spark.driver.memory", "2g")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def rounds(run, args: argparse.Namespace) -> list[float]:
    t0, done = time.perf_counter(), 0
    while done < args.warmup or time.perf_counter() - t0 < args.warmup_seconds:
        run()
        done += 1
    seconds = []
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - t0)
    return seconds


def descendants_cpus() -> dict[str, set[int]]:
    """The CPUs each process started by this one (pyspark's JVM) may run on, by name."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = {}, {os.getpid()}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier}
        for pid in frontier:
            try:
                found[f"{Path(f'/proc/{pid}/comm').read_text().strip()} ({pid})"] = os.sched_getaffinity(pid)
            except OSError:
                continue
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", default="10000,100000", help="comma-separated batch sizes")
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds per batch size and side, at least")
    parser.add_argument(
        "--warmup-seconds", type=float, default=30, help="untimed rounds per batch size and side for this long"
    )
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds per batch size and side")
    parser.add_argument("--seed", type=int, default=42, help="seed of the synthetic records")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.records.split(",") if s.strip()]
    if not sizes or min(sizes) < 1 or args.rounds < 1 or args.warmup < 0:
        parser.error("--records needs positive sizes, --rounds at least 1 and --warmup at least 0")
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) != 1:
        parser.error(
            f"this process may run on CPUs {cpus}; the comparison is per core: "
            f"taskset -c 0 {sys.executable} {sys.argv[0]} ... (scripts/bench decode does this)"
        )
    load_before = os.getloadavg()

    print(f"generating {max(sizes):,} synthetic records (seed {args.seed})", file=sys.stderr)
    lines = synthetic_lines(args.seed, max(sizes))
    engine = quiver.Engine()
    schema = engine.input_schema("users")
    keys = [json.loads(v)["login"]["uuid"].encode() for v in lines]
    batches = {n: kafka_batch(lines[:n], keys=keys[:n], schema=schema) for n in sizes}
    quiver_rounds = {}
    for n, batch in batches.items():
        processed = engine.process("users", batch)
        if (processed.rows_out, processed.rows_rejected) != (n, 0):
            raise SystemExit(f"quiver transformed {processed.rows_out} of {n} records")
        quiver_rounds[n] = rounds(lambda b=batch: engine.process("users", b), args)
        print(f"quiver, {n:,} records: {statistics.median(quiver_rounds[n]) * 1e3:,.1f} ms (median)", file=sys.stderr)

    print("starting Spark (local[1])", file=sys.stderr)
    spark = spark_session()
    from pyspark.sql import functions as F

    children = descendants_cpus()
    if not any(name.startswith("java") for name in children):
        raise SystemExit(f"pyspark's JVM is not among this process's children: {sorted(children)}")
    if any(cpus_ != set(cpus) for cpus_ in children.values()):
        raise SystemExit(f"pyspark's JVM may run on other CPUs than this process ({cpus}): {children}")

    spark_rounds = {}
    for n, batch in batches.items():
        # The input is materialised in Spark's cache before any timing, so the rounds time the
        # transformation over in-memory rows, as quiver's rounds time it over an Arrow batch.
        source = spark.createDataFrame(pa.Table.from_batches([batch])).cache()
        if source.count() != n:
            raise SystemExit("Spark's cached input lost records")
        frame = users_select(source).withColumn("processed_at", F.current_timestamp())
        writer = frame.write.format("noop").mode("overwrite")
        spark_rounds[n] = rounds(writer.save, args)
        source.unpersist(blocking=True)
        print(f"spark, {n:,} records: {statistics.median(spark_rounds[n]) * 1e3:,.1f} ms (median)", file=sys.stderr)
    spark.stop()
    load_after = os.getloadavg()

    mean_bytes = sum(map(len, lines)) / len(lines)
    command = shlex.join(["taskset", "-c", str(cpus[0]), sys.executable, sys.argv[0], *sys.argv[1:]])
    print(f"\ncommand: {command}")
    print(f"machine: nproc {os.cpu_count()}, {cpu_model()}, {platform.platform()}")
    print(
        f"pinned: this process and the ones it started ({', '.join(sorted(children))}) run on CPU {cpus[0]} only "
        f"(taskset -c {cpus[0]}); Spark master local[1]"
    )
    print(
        f"load average (1/5/15 min): {' '.join(f'{x:.2f}' for x in load_before)} before, "
        f"{' '.join(f'{x:.2f}' for x in load_after)} after"
    )
    print(
        f"records: synthetic seed {args.seed}, {mean_bytes:,.0f} bytes of JSON each on average; "
        f"warm-up of {args.warmup}+ rounds and {args.warmup_seconds:g}+ s, then {args.rounds} timed rounds, "
        "per batch size and side; medians\n"
    )
    print("| records | quiver (ms) | quiver (records/s) | spark (ms) | spark (records/s) | quiver / spark |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n in sizes:
        q, s = statistics.median(quiver_rounds[n]), statistics.median(spark_rounds[n])
        print(f"| {n:,} | {q * 1e3:,.1f} | {n / q:,.0f} | {s * 1e3:,.1f} | {n / s:,.0f} | {s / q:.2f}x |")
    print("\nrounds (ms):")
    for n in sizes:
        print(f"  {n:,} quiver: {', '.join(f'{t * 1e3:,.1f}' for t in quiver_rounds[n])}")
        print(f"  {n:,} spark:  {', '.join(f'{t * 1e3:,.1f}' for t in spark_rounds[n])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
