"""The `users` transformation on one core, quiver against Spark, in the same run over the
same records. Run it through `scripts/bench decode`, which makes the release builds and
pins this process to CPU 0 with taskset; the JVM that pyspark starts inherits the pin.

- quiver: the release `quiver` module, `Engine().process("users", batch)` on a Kafka-shaped
  Arrow batch: sonic-rs JSON decode into Arrow, then the DataFusion plan of pipelines/users.sql.
- spark: pyspark `local[1]`, the from_json + select of scripts/bench_seed_job.py (the baseline
  of the end-to-end benchmark) plus processed_at, over the same batch as a cached DataFrame,
  evaluated in full by a `noop` write.

The records come from the project's synthetic generator (release example `synthetic`), keyed
by login.uuid. For each batch size both sides are warmed up once, then timed for --rounds
rounds, alternating, and the medians are compared.
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
from bench_seed_job import users_select

FIRST_TIMESTAMP_MS = 1_700_000_000_000


def synthetic_lines(seed: int, count: int) -> list[bytes]:
    target = Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache" / "quiver" / "target"))
    generator = target / "release" / "examples" / "synthetic"
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


def kafka_batch(schema: pa.Schema, values: list[bytes]) -> pa.RecordBatch:
    n = len(values)
    keys = [json.loads(v)["login"]["uuid"].encode() for v in values]
    return pa.RecordBatch.from_arrays(
        [
            pa.array(keys, pa.binary()),
            pa.array(values, pa.binary()),
            pa.array(["users_created"] * n, pa.string()),
            pa.array([0] * n, pa.int32()),
            pa.array(range(n), pa.int64()),
            pa.array([FIRST_TIMESTAMP_MS + k for k in range(n)], pa.timestamp("ms", tz="UTC")),
        ],
        schema=schema,
    )


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


def timed(run) -> float:
    t0 = time.perf_counter()
    run()
    return time.perf_counter() - t0


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", default="10000,100000", help="comma-separated batch sizes")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per batch size and side")
    parser.add_argument("--seed", type=int, default=42, help="seed of the synthetic records")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.records.split(",") if s.strip()]
    if not sizes or min(sizes) < 1 or args.rounds < 1:
        parser.error("--records needs positive sizes and --rounds at least 1")
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
    print("starting Spark (local[1])", file=sys.stderr)
    spark = spark_session()
    from pyspark.sql import functions as F

    results = []
    for n in sizes:
        batch = kafka_batch(schema, lines[:n])
        processed = engine.process("users", batch)
        if (processed.rows_out, processed.rows_rejected) != (n, 0):
            raise SystemExit(f"quiver transformed {processed.rows_out} of {n} records")

        # The input is materialised in Spark's cache before any timing, so the rounds time the
        # transformation over in-memory rows, as quiver's rounds time it over an Arrow batch.
        source = spark.createDataFrame(pa.Table.from_batches([batch])).cache()
        if source.count() != n:
            raise SystemExit("Spark's cached input lost records")
        frame = users_select(source).withColumn("processed_at", F.current_timestamp())
        writer = frame.write.format("noop").mode("overwrite")
        writer.save()

        quiver_s, spark_s = [], []
        for _ in range(args.rounds):
            quiver_s.append(timed(lambda b=batch: engine.process("users", b)))
            spark_s.append(timed(writer.save))
        source.unpersist(blocking=True)
        q, s = statistics.median(quiver_s), statistics.median(spark_s)
        results.append((n, q, s, quiver_s, spark_s))
        print(f"{n:,} records: quiver {q * 1e3:,.1f} ms, spark {s * 1e3:,.1f} ms (medians)", file=sys.stderr)
    spark.stop()
    load_after = os.getloadavg()

    mean_bytes = sum(map(len, lines)) / len(lines)
    command = shlex.join(["taskset", "-c", str(cpus[0]), sys.executable, sys.argv[0], *sys.argv[1:]])
    print(f"\ncommand: {command}")
    print(f"machine: nproc {os.cpu_count()}, {cpu_model()}, {platform.platform()}")
    print(
        f"pinned: this process and the JVM that pyspark started run on CPU {cpus[0]} only (taskset -c {cpus[0]}); "
        "Spark master local[1]"
    )
    print(
        f"load average (1/5/15 min): {' '.join(f'{x:.2f}' for x in load_before)} before, "
        f"{' '.join(f'{x:.2f}' for x in load_after)} after"
    )
    print(
        f"records: synthetic seed {args.seed}, {mean_bytes:,.0f} bytes of JSON each on average; "
        f"1 warm-up + {args.rounds} timed rounds per side; medians\n"
    )
    print("| records | quiver (ms) | quiver (records/s) | spark (ms) | spark (records/s) | quiver / spark |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n, q, s, _, _ in results:
        print(f"| {n:,} | {q * 1e3:,.1f} | {n / q:,.0f} | {s * 1e3:,.1f} | {n / s:,.0f} | {s / q:.2f}x |")
    print("\nrounds (ms):")
    for n, _, _, quiver_s, spark_s in results:
        print(f"  {n:,} quiver: {', '.join(f'{t * 1e3:,.1f}' for t in quiver_s)}")
        print(f"  {n:,} spark:  {', '.join(f'{t * 1e3:,.1f}' for t in spark_s)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
