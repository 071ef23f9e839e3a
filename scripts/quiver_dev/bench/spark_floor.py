"""Spark's own cost per micro-batch job on the local cluster: N trivial `mapInArrow` jobs
(two tasks, nothing to do) after one warm-up, with the Python worker pids of each job to
show whether workers are reused.

    scripts/spark-submit scripts/quiver_dev/bench/spark_floor.py [--jobs 10]

What the streaming job pays on every micro-batch before quiver does any work; results in
docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import statistics
import time

import pyarrow as pa
from pyspark.sql import SparkSession


def report_worker(batches):
    import os

    for _ in batches:
        pass
    yield pa.RecordBatch.from_pydict({"pid": [os.getpid()]})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=10, help="timed jobs after the warm-up")
    args = parser.parse_args()
    spark = SparkSession.builder.appName("quiver-bench-spark-floor").getOrCreate()
    frame = spark.range(0, 1000, numPartitions=2)
    seconds = []
    for job in range(args.jobs + 1):
        started = time.perf_counter()
        pids = sorted(row.pid for row in frame.mapInArrow(report_worker, "pid long").collect())
        elapsed = time.perf_counter() - started
        if job:
            seconds.append(elapsed)
        print(f"job {job}{' (warm-up)' if not job else ''}: {elapsed * 1000:.0f} ms, Python workers {pids}")
    print(f"median of {args.jobs}: {statistics.median(seconds) * 1000:.0f} ms per job")
    spark.stop()


if __name__ == "__main__":
    main()
