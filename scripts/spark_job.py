"""Stopping a Spark job started with `scripts/spark-submit`, for the tests and the benchmarks."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path


def stop_job(job: subprocess.Popen, timeout: float = 90) -> None:
    """SIGTERM to the Python driver, which stops the query and logs its summary, then kill -9
    to the job's process group if it lingers (`job` must lead one: start_new_session=True).
    Only the driver: a signal to spark-submit's JVM (or to the whole group) shuts the
    SparkContext down under the running query, and the driver can then hang on its way out."""
    if job.poll() is None:
        # spark-submit's JVM (the process started) runs the Python driver as its child,
        # started by one of its threads: each thread lists the children it started.
        for children in Path(f"/proc/{job.pid}/task").glob("*/children"):
            for child in children.read_text().split():
                os.kill(int(child), signal.SIGTERM)
        try:
            job.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait()
