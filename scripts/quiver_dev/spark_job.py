"""Stopping a Spark job started with `scripts/spark-submit`, for the tests and the benchmarks."""

from __future__ import annotations

import os
import signal
import subprocess


def stop_job(job: subprocess.Popen, timeout: float = 90) -> None:
    """SIGTERM to the job's process group (`job` must lead one: start_new_session=True),
    which stops the query between two batches and logs its summary (stream_users.py handles
    it in the driver and in spark-submit's JVM); kill -9 to the group if it lingers."""
    if job.poll() is None:
        os.killpg(job.pid, signal.SIGTERM)
        try:
            job.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait()
