"""The job's own metrics endpoint (--job-metrics-addr): its address, its text, its server."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from dataclasses import dataclass

import pytest

from quiver_spark import metrics, options


@dataclass
class Figures:
    batches: int = 3
    rows_in: int = 1003
    rows_written: int = 1000
    rows_rejected: int = 3
    last_batch_s: float = 0.25


def test_the_address_is_host_and_port(capsys):
    assert options.parse(["--job-metrics-addr", "127.0.0.1:9466"], env={}).metrics_addr == ("127.0.0.1", 9466)
    assert options.parse([], env={"QUIVER_JOB_METRICS_ADDR": "0.0.0.0:9466"}).metrics_addr == ("0.0.0.0", 9466)
    assert options.parse([], env={}).metrics_addr is None
    for bad in ("9466", "host:", "host:99999"):
        with pytest.raises(SystemExit):
            options.parse(["--job-metrics-addr", bad], env={})
        assert "is not HOST:PORT" in capsys.readouterr().err


def test_quiver_produces_metrics_address_is_not_the_jobs():
    """`quiver produce` reads QUIVER_METRICS_ADDR; a job in the same environment must not
    try to bind the same port."""
    assert options.parse([], env={"QUIVER_METRICS_ADDR": "127.0.0.1:9465"}).metrics_addr is None


def test_every_figure_is_exported_with_its_labels():
    text = metrics.render(Figures(), {"engine": "inprocess", "topic": "t"})
    assert 'quiver_job_rows_written_total{engine="inprocess",topic="t"} 1000\n' in text
    assert 'quiver_job_rows_rejected_total{engine="inprocess",topic="t"} 3\n' in text
    assert 'quiver_job_last_batch_seconds{engine="inprocess",topic="t"} 0.25\n' in text
    assert text.count("# TYPE ") == len(metrics.FIGURES)


def test_the_server_answers_metrics_only_and_a_taken_port_is_named():
    figures = Figures()
    server = metrics.serve(("127.0.0.1", 0), lambda: metrics.render(figures, {}))
    try:
        port = server.server_address[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            assert "quiver_job_batches_total{} 3" in response.read().decode()
        figures.batches = 4
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            assert "quiver_job_batches_total{} 4" in response.read().decode()
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/other", timeout=5)
        assert missing.value.code == 404
        with socket.socket() as holder:
            holder.bind(("127.0.0.1", 0))
            holder.listen()
            with pytest.raises(OSError, match="--job-metrics-addr"):
                metrics.serve(holder.getsockname(), lambda: "")
    finally:
        server.shutdown()
