"""End-to-end benchmark of the whole pipeline on the local stack, with every component
running: Kafka → Spark standalone → transformation → Cassandra. Run it through
`scripts/bench e2e`; it needs the stack up and release builds (it makes them).

For each variant (`realtime`: the job in Spark's real-time mode with its JVM writer and a
release `quiver serve`; `flight`: micro-batches through the same service; `inprocess`:
micro-batches transformed and written in the executors; `seed`: the seed-style job of
quiver_dev/bench/seed_job.py) it starts the streaming job on a new topic and keyspace, then:

1. warm-up: 2,000 users, waited for in Cassandra (executors and Python workers started);
2. throughput: --users users produced at full speed; sustained throughput is those users
   divided by the time from the first one's Kafka timestamp to the last one's write;
3. latency: for each of --rates, that many users per second for --seconds; per row, the
   time from its Kafka timestamp to its write; p50/p95/p99/max over the rows of the phase.
   With --settle, the stream idles that long before each phase, so that a phase measures
   its own rate and not the wake of the one before.

Every variant is measured to the same point: `written_at`, which Cassandra stamps with its
own clock when it executes the row's INSERT (`currentTimestamp()`). quiver's decode stamp,
`processed_at`, is reported beside it (p99 to decode).

The micro-batch variants run with a processing-time trigger of 0 (each micro-batch starts
when the last one ends) and --max-offsets-per-trigger; the real-time variant checkpoints
every --checkpoint-interval (make --seconds longer than it, so that each latency phase
includes a transition from one real-time batch to the next). Results: a table on stdout
and JSON (--out).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path

from quiver_dev import machine, paths, stack
from quiver_dev.serve_process import running_serve
from quiver_dev.spark_job import stop_job

ROOT = stack.ROOT
VARIANTS = ("realtime", "flight", "inprocess", "seed")
WARMUP_USERS = 2000


@dataclass
class Latency:
    rate: float
    rows: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    # Kafka timestamp to quiver's decode stamp (processed_at), for comparison.
    p99_decode_ms: float


@dataclass
class Result:
    variant: str
    users: int
    throughput_msgs_s: float
    latency: list[Latency]


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, round(q * (len(sorted_values) - 1)))]


class Bench:
    def __init__(self, args: argparse.Namespace, settings: stack.Settings):
        self.args = args
        self.s = settings
        self.quiver = paths.target_dir() / "release" / "quiver"
        self.cassandra = f"{settings.host}:{settings.cassandra_port}"
        self.logs = settings.state / "logs" / "bench-e2e"
        self.logs.mkdir(parents=True, exist_ok=True)

    def produce(self, topic: str, count: int, seed: int, rate: float | None = None) -> None:
        argv = [str(self.quiver), "produce", "--source", "synthetic", "--count", str(count), "--seed", str(seed)]
        argv += ["--topic", topic, "--partitions", str(self.args.partitions)]
        argv += ["--bootstrap-servers", self.s.kafka_bootstrap]
        if rate:
            # The Kafka timestamp is taken when a record is handed to the producer, so the
            # time it lingers there for a fuller batch counts as latency.
            argv += ["--rate", str(rate), "--linger-ms", str(self.args.producer_linger_ms)]
        done = subprocess.run(argv, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"quiver produce failed:\n{done.stderr[-3000:]}")
        # Its summary holds its own share of the latency (enqueue to broker acknowledgement).
        with (self.logs / f"{topic}-produce.log").open("a") as log:
            log.write(f"$ {' '.join(argv)}\n{done.stdout}{done.stderr}\n")

    def session(self):
        from cassandra.cluster import Cluster

        host, port = self.cassandra.rsplit(":", 1)
        cluster = Cluster([host], port=int(port))
        return cluster, cluster.connect()

    def last_ids(self, topic: str) -> list[uuid.UUID]:
        """The keys (user ids) of the newest message in each partition of `topic`."""
        from confluent_kafka import Consumer, TopicPartition

        consumer = Consumer({"bootstrap.servers": self.s.kafka_bootstrap, "group.id": f"{topic}-bench"})
        try:
            wanted = []
            for p in range(self.args.partitions):
                _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                if high > 0:
                    wanted.append(TopicPartition(topic, p, high - 1))
            consumer.assign(wanted)
            keys: list[uuid.UUID] = []
            while len(keys) < len(wanted):
                message = consumer.poll(10)
                if message is None:
                    raise SystemExit(f"could not read the newest messages of {topic}")
                if message.error() is None:
                    keys.append(uuid.UUID(message.key().decode()))
            return keys
        finally:
            consumer.close()

    def wait_for(self, topic: str, keyspace: str, job: subprocess.Popen, log: Path, timeout: float) -> None:
        """Until the newest user of every partition is in Cassandra: point reads, which
        barely load it (a count over a million rows times out in Cassandra)."""
        from cassandra import InvalidRequest
        from cassandra.cluster import NoHostAvailable
        from cassandra.query import ValueSequence

        ids = self.last_ids(topic)
        query = f"SELECT id FROM {keyspace}.created_users WHERE id IN %s"
        cluster, session = self.session()
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if job.poll() is not None:
                    raise SystemExit(f"the job exited with {job.returncode}:\n{log.read_text()[-4000:]}")
                try:
                    if len(list(session.execute(query, (ValueSequence(ids),)))) == len(ids):
                        return
                except InvalidRequest:  # the table appears with the first write
                    pass
                except NoHostAvailable as error:
                    # A table created a moment ago can still be unknown to the node's read path.
                    if "Unknown CF" not in str(error):
                        raise
                time.sleep(0.2)
        finally:
            cluster.shutdown()
        raise SystemExit(f"the newest users of {topic} did not reach Cassandra in {timeout:.0f} s; see {log}")

    def timings(self, keyspace: str) -> list[tuple[float, float, float]]:
        """(Kafka timestamp, decode stamp, write stamp) of every row, in seconds."""
        cluster, session = self.session()
        try:
            rows = session.execute(
                f"SELECT event_time, processed_at, written_at FROM {keyspace}.created_users", timeout=120
            )
            return [(r.event_time.timestamp(), r.processed_at.timestamp(), r.written_at.timestamp()) for r in rows]
        finally:
            cluster.shutdown()

    def job_command(self, variant: str, topic: str, keyspace: str, endpoint: str | None) -> list[str]:
        checkpoint = self.s.state / "checkpoints" / f"bench-{topic}"
        common = ["--bootstrap-servers", self.s.kafka_bootstrap, "--topic", topic]
        common += ["--checkpoint-location", str(checkpoint)]
        if variant == "realtime":
            common += ["--trigger", "realtime", "--checkpoint-interval", self.args.checkpoint_interval]
            common += ["--rt-max-rows", str(self.args.rt_max_rows), "--rt-linger-ms", str(self.args.rt_linger_ms)]
        else:
            common += ["--trigger", "0 seconds", "--max-offsets-per-trigger", str(self.args.max_offsets_per_trigger)]
        submit = [str(ROOT / "scripts" / "spark-submit")]
        if variant == "seed":
            seed = ["--cassandra-nodes", self.cassandra, "--keyspace", keyspace]
            return [*submit, str(ROOT / "scripts" / "quiver_dev" / "bench" / "seed_job.py"), *common, *seed]
        if variant == "inprocess":
            engine = ["--engine", "inprocess", "--cassandra-nodes", self.cassandra, "--cassandra-keyspace", keyspace]
        else:
            engine = ["--engine", "flight", "--flight-endpoint", endpoint]
        return [*submit, str(ROOT / "spark-app" / "stream_users.py"), *common, *engine]

    def run(self, variant: str) -> Result:
        name = f"bench_{variant}_{uuid.uuid4().hex[:8]}"
        log = self.logs / f"{name}.log"
        with ExitStack() as cleanup:
            endpoint = None
            if variant in ("flight", "realtime"):
                env = {**os.environ, "QUIVER_CASSANDRA_NODES": self.cassandra, "QUIVER_CASSANDRA_KEYSPACE": name}
                serve_log = self.logs / f"{name}-serve.log"
                endpoint = cleanup.enter_context(running_serve(self.quiver, [], env, serve_log)).location
            print(f"{variant}: topic and keyspace {name}; job log {log}", file=sys.stderr, flush=True)
            # The topic exists (with its partitions) before the job subscribes to it.
            self.produce(name, 1, seed=1)
            with log.open("w") as out:
                # Its own process group: spark-submit's JVM runs the Python driver as a child,
                # and stopping only the process we started left that driver running.
                job = subprocess.Popen(
                    self.job_command(variant, name, name, endpoint),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            try:
                self.produce(name, WARMUP_USERS - 1, seed=2)
                self.wait_for(name, name, job, log, timeout=300)

                started = time.time()
                self.produce(name, self.args.users, seed=3)
                self.wait_for(name, name, job, log, timeout=1800)

                # Phase i holds the rows whose Kafka timestamps fall in [starts[i], starts[i + 1]).
                starts, totals = [], []
                for i, rate in enumerate(self.args.rates):
                    time.sleep(self.args.settle)
                    starts.append(time.time())
                    totals.append(round(rate * self.args.seconds))
                    self.produce(name, totals[-1], seed=4 + i, rate=rate)
                    self.wait_for(name, name, job, log, timeout=600)
                starts.append(float("inf"))
            finally:
                stop_job(job, timeout=120)

        # The newest users can land before the rest of their micro-batch: read until
        # every phase is complete.
        for _ in range(30):
            rows = self.timings(name)
            throughput = [(e, w) for e, _, w in rows if started <= e < starts[0]]
            phases = [[(e, p, w) for e, p, w in rows if starts[i] <= e < starts[i + 1]] for i in range(len(totals))]
            if len(throughput) >= self.args.users and all(len(p) >= t for p, t in zip(phases, totals, strict=True)):
                break
            time.sleep(2)
        else:
            raise SystemExit(f"{name}: {len(throughput)} of {self.args.users} rows, phases {list(map(len, phases))}")
        first_event = min(e for e, _ in throughput)
        last_written = max(w for _, w in throughput)
        return Result(
            variant=variant,
            users=len(throughput),
            throughput_msgs_s=len(throughput) / (last_written - first_event),
            latency=[latency(rate, phase) for rate, phase in zip(self.args.rates, phases, strict=True)],
        )


def latency(rate: float, rows: list[tuple[float, float, float]]) -> Latency:
    to_write = sorted((w - e) * 1000 for e, _, w in rows)
    to_decode = sorted((p - e) * 1000 for e, p, _ in rows)
    return Latency(
        rate=rate,
        rows=len(rows),
        p50_ms=percentile(to_write, 0.50),
        p95_ms=percentile(to_write, 0.95),
        p99_ms=percentile(to_write, 0.99),
        max_ms=to_write[-1],
        p99_decode_ms=percentile(to_decode, 0.99),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=1_000_000, help="users in the throughput phase")
    parser.add_argument(
        "--rates",
        type=lambda v: [float(r) for r in v.split(",")],
        default=[10_000.0, 1_000.0],
        help="users per second of each latency phase, comma-separated",
    )
    parser.add_argument("--seconds", type=float, default=75, help="length of each latency phase")
    parser.add_argument("--partitions", type=int, default=2, help="Kafka partitions of each topic")
    parser.add_argument(
        "--producer-linger-ms", type=int, default=5, help="the producer's --linger-ms in the latency phases"
    )
    parser.add_argument("--settle", type=float, default=0, help="seconds the stream idles before each latency phase")
    parser.add_argument("--max-offsets-per-trigger", type=int, default=200_000, help="micro-batch variants")
    parser.add_argument("--checkpoint-interval", default="5 minutes", help="realtime: the job's --checkpoint-interval")
    parser.add_argument("--rt-max-rows", type=int, default=2000, help="realtime: the job's --rt-max-rows")
    parser.add_argument("--rt-linger-ms", type=int, default=20, help="realtime: the job's --rt-linger-ms")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated: " + ", ".join(VARIANTS))
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}; choose from {', '.join(VARIANTS)}")

    bench = Bench(args, stack.Settings())
    if not bench.quiver.is_file():
        parser.error(f"the release binary is missing ({bench.quiver}): scripts/bench e2e builds it")
    results = [bench.run(v) for v in variants]

    print(f"\nmachine: {machine.describe()}")
    rates = " then ".join(f"{r:,.0f}/s" for r in args.rates)
    print(
        f"workload: {args.users:,} users at full speed, then {rates} for {args.seconds:.0f} s each"
        f"{f' after {args.settle:.0f} s idle' if args.settle else ''}; "
        f"{args.partitions} partitions, producer linger {args.producer_linger_ms} ms; "
        f"micro-batch: max {args.max_offsets_per_trigger:,} offsets per trigger; "
        f"realtime: checkpoint every {args.checkpoint_interval}, --rt-max-rows {args.rt_max_rows}, "
        f"--rt-linger-ms {args.rt_linger_ms}\n"
    )
    print("Kafka timestamp to the row's write (written_at), in ms; p99 to decode is to processed_at.\n")
    print("| variant | throughput (msgs/s) | rate (msgs/s) | p50 | p95 | p99 | max | p99 to decode |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        for i, lat in enumerate(r.latency):
            throughput = f"{r.throughput_msgs_s:,.0f}" if i == 0 else ""
            print(
                f"| {r.variant if i == 0 else ''} | {throughput} | {lat.rate:,.0f} | {lat.p50_ms:,.0f} "
                f"| {lat.p95_ms:,.0f} | {lat.p99_ms:,.0f} | {lat.max_ms:,.0f} | {lat.p99_decode_ms:,.0f} |"
            )
    by_name = {r.variant: r for r in results}
    for a, b in (
        ("realtime", "seed"),
        ("flight", "seed"),
        ("inprocess", "seed"),
        ("inprocess", "flight"),
        ("realtime", "flight"),
    ):
        if a in by_name and b in by_name:
            ratio = by_name[a].throughput_msgs_s / by_name[b].throughput_msgs_s
            print(f"throughput {a} / {b}: {ratio:.2f}x")
    if args.out:
        args.out.write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
