"""The Flight hop as the Spark job pays it, against the job's in-process engine, in the same
run over the same batches. Run it through `scripts/bench hop`, which makes the release builds.

- inprocess: the release `quiver` module in this process, `Engine().process("users", batch)`
  for each batch, what `--engine inprocess` runs for a task's batches (without the sink).
- do_exchange: the job's client library (pyarrow.flight) with one connection kept open, one
  DoExchange per round: every batch of the round in, one acknowledgement per batch out,
  served by a release `quiver serve --sink none` on loopback (another process, on the
  same cores, as on a machine that runs both).
- do_exchange_sliced: the same with each batch sent as --slices zero-copy slices, each its
  own message and acknowledgement, so that the service can start on the first while the
  rest are in transit.
- task_exchange: `quiver_spark.exchange.exchange()`, what a Spark task calls: a new
  channel, the ListFlights probe that tells a service that is down from one that is up,
  then the DoExchange.
- tcp_floor: the round's batches as one Arrow IPC stream over a plain loopback socket to
  another process that only receives them: what moving the bytes costs before any protocol.

Each round sends one shape, BATCHESxRECORDS: by default one 10,000-record batch (Spark's
default Arrow batch), one of 100,000, and ten of 10,000 in one exchange (a task's
partition). The variants take turns round by round, so that the machine's drift is shared,
after untimed warm-up rounds; the table compares medians. The service's acknowledgements
carry its own decode and SQL time, shown next to the in-process engine's, so that what the
hop adds can be told apart from a difference in processing.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import shlex
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from multiprocessing.connection import Connection
from pathlib import Path

import pyarrow as pa
from pyarrow import flight

import quiver
from quiver_dev import paths
from quiver_dev.bench.decode import kafka_batch, synthetic_lines
from quiver_dev.machine import cpu_model
from quiver_dev.serve_process import running_serve
from quiver_spark import quiver_pb2
from quiver_spark.exchange import Target, exchange, read_acks

# One Spark Arrow batch (spark.sql.execution.arrow.maxRecordsPerBatch: 10,000), one large
# batch, and a task's partition of ten Spark batches.
DEFAULT_SHAPES = "1x10000,1x100000,10x10000"
MAX_MESSAGE_BYTES = 256 * 1024 * 1024


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
        with writer:
            writer.begin(batches[0].schema)
            for batch in batches:
                writer.write_batch(batch)
            writer.done_writing()
            return read_acks(reader)


def tcp_sink(port_out: Connection) -> None:
    """Receives length-prefixed payloads on a loopback socket into a buffer made beforehand and
    answers each with the count: no framing, no copy but the kernel's. Runs in its own
    process, as the service does, until the connection closes."""
    listener = socket.create_server(("127.0.0.1", 0))
    port_out.send(listener.getsockname()[1])
    conn, _ = listener.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buffer = bytearray()
    while header := conn.recv(8, socket.MSG_WAITALL):
        size = int.from_bytes(header, "little")
        if len(buffer) < size:
            buffer = bytearray(size)
        view, got = memoryview(buffer), 0
        while got < size and (n := conn.recv_into(view[got:size])):
            got += n
        conn.sendall(got.to_bytes(8, "little"))


class TcpFloor:
    """The transport's floor: a round's bytes over a plain loopback socket to `tcp_sink`."""

    def __init__(self):
        context = multiprocessing.get_context("spawn")
        port_in, port_out = context.Pipe()
        self.sink = context.Process(target=tcp_sink, args=(port_out,), daemon=True)
        self.sink.start()
        self.sock = socket.create_connection(("127.0.0.1", port_in.recv()))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, payload: pa.Buffer) -> int:
        self.sock.sendall(payload.size.to_bytes(8, "little"))
        self.sock.sendall(payload)
        return int.from_bytes(self.sock.recv(8, socket.MSG_WAITALL), "little")

    def close(self) -> None:
        self.sock.close()
        self.sink.join(timeout=10)


def ipc_stream(batches: list[pa.RecordBatch]) -> pa.Buffer:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batches[0].schema) as writer:
        for batch in batches:
            writer.write_batch(batch)
    return sink.getvalue()


def parse_shapes(raw: str) -> dict[str, tuple[int, int]]:
    shapes = {}
    for shape in (s.strip() for s in raw.split(",") if s.strip()):
        count, _, records = shape.partition("x")
        if not (count.isdigit() and records.isdigit() and int(count) > 0 and int(records) > 0):
            raise ValueError(f"'{shape}' is not BATCHESxRECORDS (e.g. 1x10000 or 10x10000)")
        shapes[shape] = (int(count), int(records))
    if not shapes:
        raise ValueError("no shapes given")
    return shapes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--shapes", default=DEFAULT_SHAPES, help=f"comma-separated BATCHESxRECORDS per round (default {DEFAULT_SHAPES})"
    )
    parser.add_argument(
        "--slices", type=int, default=4, help="do_exchange_sliced sends each batch as this many slices (1: not run)"
    )
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds per shape and variant")
    parser.add_argument("--rounds", type=int, default=15, help="timed rounds per shape and variant")
    parser.add_argument("--seed", type=int, default=42, help="seed of the synthetic records")
    args = parser.parse_args(argv)
    try:
        shapes = parse_shapes(args.shapes)
    except ValueError as error:
        parser.error(f"--shapes: {error}")
    if args.rounds < 1 or args.warmup < 0 or args.slices < 1:
        parser.error("--rounds and --slices need at least 1, --warmup at least 0")
    binary = paths.target_dir() / "release" / "quiver"
    if not binary.is_file():
        parser.error(f"the release binary is missing ({binary}): scripts/bench hop builds it")

    most = max(count * n for count, n in shapes.values())
    print(f"generating {most:,} synthetic records (seed {args.seed})", file=sys.stderr)
    lines = synthetic_lines(args.seed, most)
    engine = quiver.Engine()
    schema = engine.input_schema("users")
    inputs = {
        shape: [kafka_batch(schema, lines[i * n : (i + 1) * n]) for i in range(count)]
        for shape, (count, n) in shapes.items()
    }

    log = Path(tempfile.mkdtemp(prefix="quiver-bench-hop-")) / "serve.log"
    load_before = os.getloadavg()
    # shape -> variant -> per round: (wall seconds, processing seconds)
    results: dict[str, dict[str, list[tuple[float, float]]]] = {}
    with ExitStack() as cleanup:
        endpoint = cleanup.enter_context(running_serve(binary, ["--sink", "none"], None, log)).location
        service = Service(endpoint)
        floor = TcpFloor()
        cleanup.callback(floor.close)
        task_target = Target(
            endpoints=(endpoint,),
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

        def do_exchange_sliced(batches: list[pa.RecordBatch]) -> tuple[int, float]:
            # Zero-copy slices: the service can work on the first while the rest are in transit.
            sliced = []
            for batch in batches:
                step = -(-batch.num_rows // args.slices)
                sliced += [batch.slice(i, step) for i in range(0, batch.num_rows, step)]
            return do_exchange(sliced)

        def task_exchange(batches: list[pa.RecordBatch]) -> tuple[int, float]:
            acks = exchange(task_target, batch_id=0, partition=0, attempt=0, batches=batches)
            return sum(acks.column("rows_out").to_pylist()), float("nan")

        variants: dict[str, Callable[[list[pa.RecordBatch]], tuple[int, float]]] = {
            "inprocess": inprocess,
            "do_exchange": do_exchange,
        }
        if args.slices > 1:
            variants["do_exchange_sliced"] = do_exchange_sliced
        variants["task_exchange"] = task_exchange
        for shape, batches in inputs.items():
            records = sum(b.num_rows for b in batches)
            payload = ipc_stream(batches)

            def tcp_floor(_batches, payload=payload, records=records) -> tuple[int, float]:
                received = floor.send(payload)
                if received != payload.size:
                    raise SystemExit(f"the loopback socket delivered {received} of {payload.size} bytes")
                return records, float("nan")

            rounds: dict[str, list[tuple[float, float]]] = {name: [] for name in [*variants, "tcp_floor"]}
            for i in range(args.warmup + args.rounds):
                for name, run in [*variants.items(), ("tcp_floor", tcp_floor)]:
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
            print(f"{shape} ({payload.size / 1e6:,.1f} MB of IPC): {medians} (medians)", file=sys.stderr)
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
        "the variants taking turns; medians, and each as a ratio to inprocess. processing: decode + SQL as timed "
        "by the engine itself (in-process: this process's `quiver` module; Flight: the service, from its "
        "acknowledgements). tcp_floor: the round's IPC bytes over a plain loopback socket, nothing done with them\n"
    )
    names = list(next(iter(results.values())))
    print(f"| shape | {' | '.join(names)} | processing in-process / service |")
    print(f"|---|{'---:|' * len(names)}---:|")
    for shape, rounds in results.items():
        wall = {name: statistics.median(w for w, _ in r) for name, r in rounds.items()}
        local, served = (statistics.median(p for _, p in rounds[name]) for name in ("inprocess", "do_exchange"))
        cells = [f"{wall['inprocess'] * 1e3:,.1f} ms"]
        cells += [f"{wall[name] * 1e3:,.1f} ms ({wall[name] / wall['inprocess']:.2f}x)" for name in names[1:]]
        print(f"| {shape} | {' | '.join(cells)} | {local * 1e3:,.1f} / {served * 1e3:,.1f} ms |")
    print("\nrounds (wall ms):")
    for shape, rounds in results.items():
        for name, r in rounds.items():
            print(f"  {shape} {name}: {', '.join(f'{w * 1e3:,.1f}' for w, _ in r)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
