"""The job's own figures for Prometheus (--job-metrics-addr): batches, rows in, written and
rejected, and the last batch's duration, whichever engine ran them. Spark's own servlet
has the query's progress (rates, batch durations) but not what quiver wrote or rejected;
with the in-process engine nothing else counts those."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = logging.getLogger("quiver_spark")

# name, type, help, the figure's attribute on the totals
FIGURES = (
    ("quiver_job_batches_total", "counter", "Micro-batches (or real-time batches) the query completed.", "batches"),
    ("quiver_job_rows_in_total", "counter", "Records the query read from Kafka.", "rows_in"),
    ("quiver_job_rows_written_total", "counter", "Rows the sinks stored.", "rows_written"),
    ("quiver_job_rows_rejected_total", "counter", "Records that went to the rejects table.", "rows_rejected"),
    ("quiver_job_last_batch_seconds", "gauge", "How long the latest micro-batch took on the driver.", "last_batch_s"),
)


def render(totals, labels: dict[str, str]) -> str:
    """Prometheus text for `totals` (any object with FIGURES' attributes)."""
    label_text = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    lines = []
    for name, kind, help_text, attribute in FIGURES:
        value = getattr(totals, attribute)
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name}{{{label_text}}} {value}"]
    return "\n".join(lines) + "\n"


def serve(address: tuple[str, int], text: Callable[[], str]) -> ThreadingHTTPServer:
    """`text()` at http://HOST:PORT/metrics on a daemon thread, until `shutdown()`."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            if self.path != "/metrics":
                self.send_error(404, "only /metrics is here")
                return
            body = text().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args) -> None:  # noqa: A002 (the base class's name)
            pass  # one line per scrape would drown the job's own log

    try:
        server = ThreadingHTTPServer(address, Handler)
    except OSError as error:
        host, port = address
        raise OSError(f"cannot serve the job's metrics on {host}:{port} (--job-metrics-addr): {error}") from error
    threading.Thread(target=server.serve_forever, name="quiver-job-metrics", daemon=True).start()
    log.info("the job's metrics at http://%s:%d/metrics", *address)
    return server
