"""`quiver serve` as a child process on free loopback ports, for the tests and the benchmarks."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


class ServeFailed(RuntimeError):
    """`quiver serve` exited or did not answer /healthz; the message ends with its log."""


@dataclass
class Serve:
    location: str  # the Flight endpoint, grpc://127.0.0.1:PORT
    http: str  # /metrics and /healthz
    log: Path
    process: subprocess.Popen

    def rows_written(self) -> int:
        """Rows the service has written, over every pipeline and sink (its metrics)."""
        with urllib.request.urlopen(f"{self.http}/metrics", timeout=5) as response:
            text = response.read().decode()
        counts = [line.rsplit(" ", 1)[1] for line in text.splitlines() if line.startswith("quiver_rows_written_total")]
        return sum(int(float(count)) for count in counts)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_serve(
    binary: Path,
    args: list[str],
    env: dict[str, str] | None,
    log: Path,
    flight_port: int | None = None,
    http_port: int | None = None,
) -> Iterator[Serve]:
    """`binary serve ARGS` on free ports (or the ports given), its output appended to
    `log`, once /healthz answers; stopped by its PID when the block ends."""
    flight_port, http_port = flight_port or free_port(), http_port or free_port()
    argv = [str(binary), "serve", *args, "--flight-listen", f"127.0.0.1:{flight_port}"]
    argv += ["--http-listen", f"127.0.0.1:{http_port}"]
    http = f"http://127.0.0.1:{http_port}"
    with log.open("ab") as out:
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise ServeFailed(f"quiver serve exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{http}/healthz", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError as error:
                if time.monotonic() > deadline:
                    raise ServeFailed(
                        f"quiver serve did not answer /healthz within 60 s ({error}):\n{log.read_text()[-3000:]}"
                    ) from error
                time.sleep(0.1)
        yield Serve(f"grpc://127.0.0.1:{flight_port}", http, log, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
