"""The Flight hop as the Spark job pays it, against the job's in-process engine, in the same
run over the same batches. Run it through `scripts/bench hop`, which makes the release builds.

- inprocess: the release `quiver` module in this process, `Engine().process("users", batch)`
  for each batch, what `--engine inprocess` runs for a task's batches (without the sink).
- do_exchange: the job's client library (pyarrow.flight) with one connection kept open, one
  DoExchange per round: every batch of the round in, one acknowledgement per batch out,
  served by a release `quiver serve --sink none` on loopback (another process, on the
  same cores, as on a machine that runs both).
- task_exchange: `quiver_spark.exchange.exchange()`, what a Spark task calls: a new
  channel, the ListFlights probe that tells a service that is down from one that is up,
  then the DoExchange.

Each round sends one shape: one 10,000-record batch (Spark's default Arrow batch), one of
100,000, or ten of 10,000 in one exchange (a task's partition). The variants take turns
round by round, so that the machine's drift is shared, after untimed warm-up rounds; the
table compares medians. The service's acknowledgements carry its own decode and SQL time,
shown next to the in-process engine's, so that what the hop adds can be told apart from a
difference in processing.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
from bench_decode import cpu_model, kafka_batch, synthetic_lines
from pyarrow import flight

import quiver
from quiver_spark import quiver_pb2
from quiver_spark.exchange import Target, exchange

# Spark's default Arrow batch (spark.sql.execution.arrow.maxRecordsPerBatch).
SPARK_BATCH = 10_000
SHAPES = {"1x10000": (1, SPARK_BATCH), "1x100000": (1, 100_000), "10x10000": (10, SPARK_BATCH)}
MAX_MESSAGE_BYTES = 256 * 1024 * 1024


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_serve(binary: Path, log: Path) -> tuple[subprocess.Popen, str]:
    """A release `quiver serve --sink none` on free loopback ports, once /healthz answers."""
    port, http_port = free_port(), free_port()
    argv = [str(binary), "serve", "--sink", "none", "--flight-listen", f"127.0.0.1:{port}"]
    argv += ["--http-listen", f"127.0.0.1:{http_port}"]
    with log.open("w") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise SystemExit(f"quiver serve exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/healthz", timeout=1) as response:
                if response.status == 200:
                    return process, f"grpc://127.0.0.1:{port}"
        except OSError as error:
            if time.monotonic() > deadline:
                process.terminate()
                raise SystemExit(
                    f"quiver serve did not answer /healthz within 60 s ({error}):\n{log.read_text()[-3000:]}"
                ) from error
            time.sleep(0.1)


class Service:
    """One open pyarrow.flight connection to the service; each `exchange` is one DoExchange."""

    def __init__(self, endpoint: str):
        self.client = flight.FlightClient(
            endpoint,
            generic_options=[
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ],
        )
        command = quiver_pb2.ExchangeCommand(pipeline="users")
        self.descriptor = flight.FlightDescriptor.for_command(command.SerializeToString())

    def exchange(self, batches: list[pa.RecordBatch]) -> list[quiver_pb2.BatchAck]:
        writer, reader = self.client.do_exchange(self.descriptor)
        acks = []
        with writer:
            writer.begin(batches[0].schema)
            for batch in batches:
                writer.write_batch(batch)
            writer.done_writing()
            while True:
                try:
                    chunk = reader.read_chunk()
                except StopIteration:
                    break
                if chunk.app_metadata is not None:
                    acks.append(quiver_pb2.BatchAck.FromString(chunk.app_metadata.to_pybytes()))
        return acks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", default=",".join(SHAPES), help="comma-separated: " + ", ".join(SHAPES))
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds per shape and variant")
    parser.add_argument("--rounds", type=int, default=15, help="timed rounds per shape and variant")
    parser.add_argument("--seed", type=int, default=42, help="seed of the synthetic records")
    args = parser.parse_args(argv)
    shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
    unknown = set(shapes) - set(SHAPES)
    if unknown or not shapes:
        parser.error(f"unknown shapes {sorted(unknown)}; choose from {', '.join(SHAPES)}")
    if args.rounds < 1 or args.warmup < 0:
        parser.error("--rounds needs at least 1 and --warmup at least 0")
    target_dir = Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache" / "quiver" / "target"))
    binary = target_dir / "release" / "quiver"
    if not binary.is_file():
        parser.error(f"the release binary is missing ({binary}): scripts/bench hop builds it")

    most = max(count * n for count, n in (SHAPES[s] for s in shapes))
    print(f"generating {most:,} synthetic records (seed {args.seed})", file=sys.stderr)
    lines = synthetic_lines(args.seed, most)
    engine = quiver.Engine()
    schema = engine.input_schema("users")
    inputs = {
        shape: [kafka_batch(schema, lines[i * n : (i + 1) * n]) for i in range(count)]
        for shape, (count, n) in ((s, SHAPES[s]) for s in shapes)
    }

    log = Path(tempfile.mkdtemp(prefix="quiver-bench-hop-")) / "serve.log"
    serve, endpoint = start_serve(binary, log)
    load_before = os.getloadavg()
    # shape -> variant -> per round: (wall seconds, processing seconds)
    results: dict[str, dict[str, list[tuple[float, float]]]] = {}
    try:
        service = Service(endpoint)
        task_target = Target(
            endpoint=endpoint,
            pipeline="users",
            tls_ca=None,
            token=None,
            timeout_s=600,
            max_message_bytes=MAX_MESSAGE_BYTES,
        )

        def inprocess(batches: list[pa.RecordBatch]) -> tuple[int, float]:
            done = [engine.process("users", b) for b in batches]
            return sum(p.rows_out for p in done), sum(p.decode_seconds + p.sql_seconds for p in done)

        def do_exchange(batches: list[pa.RecordBatch]) -> tuple[int, float]:
            acks = service.exchange(batches)
            return sum(a.rows_out for a in acks), sum(a.decode_micros + a.sql_micros for a in acks) / 1e6

        def task_exchange(batches: list[pa.RecordBatch]) -> tuple[int, float]:
            acks = exchange(task_target, batch_id=0, partition=0, attempt=0, batches=batches)
            return sum(acks.column("rows_out").to_pylist()), float("nan")

        variants: dict[str, Callable[[list[pa.RecordBatch]], tuple[int, float]]] = {
            "inprocess": inprocess,
            "do_exchange": do_exchange,
            "task_exchange": task_exchange,
        }
        for shape in shapes:
            batches = inputs[shape]
            records = sum(b.num_rows for b in batches)
            rounds: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
            for i in range(args.warmup + args.rounds):
                for name, run in variants.items():
                    t0 = time.perf_counter()
                    rows, processing = run(batches)
                    wall = time.perf_counter() - t0
                    if rows != records:
                        raise SystemExit(f"{name} transformed {rows} of {records} records ({shape})")
                    if i >= args.warmup:
                        rounds[name].append((wall, processing))
            results[shape] = rounds
            medians = ", ".join(
                f"{name} {statistics.median(w for w, _ in r) * 1e3:,.1f} ms" for name, r in rounds.items()
            )
            print(f"{shape}: {medians} (medians)", file=sys.stderr)
    finally:
        serve.terminate()
        serve.wait(timeout=60)
    load_after = os.getloadavg()

    command = shlex.join([sys.executable, sys.argv[0], *sys.argv[1:]])
    print(f"\ncommand: {command}")
    print(f"machine: nproc {os.cpu_count()}, {cpu_model()}, {platform.platform()}; pyarrow {pa.__version__}")
    print(
        f"load average (1/5/15 min): {' '.join(f'{x:.2f}' for x in load_before)} before, "
        f"{' '.join(f'{x:.2f}' for x in load_after)} after"
    )
    print(
        f"records: synthetic seed {args.seed}; {args.warmup} untimed then {args.rounds} timed rounds per shape, "
        "the variants taking turns; medians. processing: decode + SQL as timed by the engine itself "
        "(in-process: this process's `quiver` module; Flight: the service, from its acknowledgements)\n"
    )
    print(
        "| shape | inprocess (ms) | do_exchange (ms) | do_exchange / inprocess | task_exchange (ms) "
        "| task_exchange / inprocess | processing in-process / service (ms) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for shape, rounds in results.items():
        wall = {name: statistics.median(w for w, _ in r) for name, r in rounds.items()}
        local, served = (statistics.median(p for _, p in rounds[name]) for name in ("inprocess", "do_exchange"))
        base = wall["inprocess"]
        print(
            f"| {shape} | {base * 1e3:,.1f} | {wall['do_exchange'] * 1e3:,.1f} | {wall['do_exchange'] / base:.2f}x "
            f"| {wall['task_exchange'] * 1e3:,.1f} | {wall['task_exchange'] / base:.2f}x "
            f"| {local * 1e3:,.1f} / {served * 1e3:,.1f} |"
        )
    print("\nrounds (wall ms):")
    for shape, rounds in results.items():
        for name, r in rounds.items():
            print(f"  {shape} {name}: {', '.join(f'{w * 1e3:,.1f}' for w, _ in r)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
