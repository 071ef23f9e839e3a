"""The driver: a Structured Streaming query from Kafka whose foreachBatch hands each
micro-batch to the executors, which exchange it with the transformation service.

    spark-submit --master spark://127.0.0.1:7077 --deploy-mode client \
        --jars <the spark-sql-kafka connector jars> spark-app/stream_users.py --help
"""

from __future__ import annotations

import logging
import re
import signal
import sys
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from quiver_spark import metrics as job_metrics
from quiver_spark import options as opts
from quiver_spark.exchange import ACK_SCHEMA, KAFKA_COLUMNS, Target, task_exchange
from quiver_spark.inprocess import InProcessTarget, check, task_inprocess

log = logging.getLogger("quiver_spark")


@dataclass
class Totals:
    """What the query has done so far, for the per-batch log and the final summary."""

    batches: int = 0
    rows_in: int = 0
    rows_written: int = 0
    rows_rejected: int = 0
    last_batch_s: float = 0.0
    realtime: bool = False
    started: float = field(default_factory=time.monotonic)

    def summary(self) -> str:
        seconds = time.monotonic() - self.started
        rate = self.rows_in / seconds if seconds > 0 else 0.0
        return (
            f"{self.batches} {'real-time batches' if self.realtime else 'micro-batches'}, {self.rows_in} rows in, "
            f"{self.rows_written} written, {self.rows_rejected} rejected in {seconds:.1f} s ({rate:,.0f} rows/s)"
        )


class BatchHandler:
    """foreachBatch: runs on the driver once per micro-batch."""

    def __init__(self, options: opts.Options):
        from pyspark.sql.pandas.types import from_arrow_schema

        self.ack_type = from_arrow_schema(ACK_SCHEMA)
        if options.engine == "inprocess":
            target = InProcessTarget(
                pipeline=options.pipeline,
                pipeline_sql=options.pipeline_sql,
                cassandra=options.cassandra,
            )
            self.task = lambda batch_id: task_inprocess(target, batch_id)
            self.problem = check(target)
            self.destination = f"in-process to Cassandra {','.join(options.cassandra.nodes)}"
        else:
            target = Target(
                endpoints=options.flight_endpoints,
                pipeline=options.pipeline,
                tls_ca=options.tls_ca,
                token=options.token,
                timeout_s=options.exchange_timeout_s,
                max_message_bytes=options.max_message_bytes,
                connect_retry_s=options.connect_retry_s,
            )
            self.task = lambda batch_id: task_exchange(target, batch_id)
            self.problem = None
            self.destination = ",".join(options.flight_endpoints)
        self.totals = Totals(realtime=options.realtime)
        # Stopping a query while foreachBatch runs a job can kill the stream thread, so
        # a stop request waits until no batch is in flight.
        self.idle = threading.Event()
        self.idle.set()

    def __call__(self, frame, batch_id: int) -> None:
        self.idle.clear()
        try:
            started = time.monotonic()
            acks = frame.select(*KAFKA_COLUMNS).mapInArrow(self.task(batch_id), self.ack_type).collect()
            rows_in = sum(a.rows_in for a in acks)
            written = sum(a.rows_written for a in acks)
            rejected = sum(a.rows_rejected for a in acks)
            self.totals.batches += 1
            self.totals.rows_in += rows_in
            self.totals.rows_written += written
            self.totals.rows_rejected += rejected
            self.totals.last_batch_s = time.monotonic() - started
            # Stage times are summed over the tasks, which run in parallel.
            log.info(
                "batch %d: %d rows in, %d written, %d rejected, %d acks from %d tasks in %.2f s "
                "(task time: decode %d ms, sql %d ms, sink %d ms)",
                batch_id,
                rows_in,
                written,
                rejected,
                len(acks),
                len({a.partition for a in acks}),
                time.monotonic() - started,
                sum(a.decode_micros for a in acks) // 1000,
                sum(a.sql_micros for a in acks) // 1000,
                sum(a.sink_micros for a in acks) // 1000,
            )
        finally:
            self.idle.set()


def progress_logger(realtime_totals: Totals | None):
    """Logs where each micro-batch's time went, from Spark's own progress report: the
    offsets lookup, the checkpoint's write-ahead log and commit, and the batch itself
    (addBatch: the exchange or in-process work). In real-time mode, where no batch passes
    through the driver, it also counts the batches into `realtime_totals`."""
    from pyspark.sql.streaming import StreamingQueryListener

    class ProgressLogger(StreamingQueryListener):
        def onQueryStarted(self, event) -> None:
            pass

        def onQueryProgress(self, event) -> None:
            progress = event.progress
            if not progress.numInputRows:
                return
            if realtime_totals is not None:
                realtime_totals.batches += 1
            durations = dict(progress.durationMs)
            total = durations.pop("triggerExecution", 0)
            stages = ", ".join(f"{stage} {ms}" for stage, ms in sorted(durations.items(), key=lambda kv: -kv[1]))
            log.info("batch %d took %d ms: %s", progress.batchId, total, stages)

        def onQueryIdle(self, event) -> None:
            pass

        def onQueryTerminated(self, event) -> None:
            pass

    return ProgressLogger()


def build_query(spark, options: opts.Options, handler: BatchHandler, counters: RealtimeCounters | None):
    """The query: micro-batches through `handler`, or in real-time mode the JVM writer,
    counting into `counters`."""
    reader = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", options.bootstrap_servers)
        .option("subscribe", options.topic)
        .option("startingOffsets", options.starting_offsets)
        .option("failOnDataLoss", str(options.fail_on_data_loss).lower())
    )
    if options.min_partitions:
        reader = reader.option("minPartitions", options.min_partitions)
    if counters is not None:
        return build_realtime_query(spark, options, reader.load(), counters)
    if options.max_offsets_per_trigger:
        reader = reader.option("maxOffsetsPerTrigger", options.max_offsets_per_trigger)
    writer = (
        reader.load()
        .writeStream.queryName(options.app_name.replace("-", "_"))
        .option("checkpointLocation", options.checkpoint_location)
        .foreachBatch(handler)
    )
    writer = (
        writer.trigger(availableNow=True) if options.available_now else writer.trigger(processingTime=options.trigger)
    )
    return writer.start()


# The JVM writer of spark-app/jvm, in the stack's spark.jars: real-time mode takes only a
# JVM ForeachWriter, so the rows go from Spark's Kafka reader to the Flight stream without
# passing through Python.
WRITER_CLASS = "quiver.spark.FlightForeachWriter"


class RealtimeCounters:
    """What the writers' acknowledgements counted, summed by Spark accumulators: in
    real-time mode no batch passes through the driver. Tasks report them when they end,
    that is at the end of each real-time batch."""

    def __init__(self, spark):
        sc = spark.sparkContext._jsc.sc()
        self.rows_in, self.rows_written, self.rows_rejected = (
            sc.longAccumulator(f"quiver rows {what}") for what in ("in", "written", "rejected")
        )

    def update(self, totals: Totals) -> None:
        totals.rows_in = self.rows_in.value()
        totals.rows_written = self.rows_written.value()
        totals.rows_rejected = self.rows_rejected.value()


def build_realtime_query(spark, options: opts.Options, kafka, counters: RealtimeCounters):
    """Real-time mode: one long-running task per Kafka partition, each streaming its rows
    to `quiver serve` as they arrive; a real-time batch ends, and the offsets are
    checkpointed, every --checkpoint-interval."""
    from pyspark.sql.streaming.query import StreamingQuery

    writer_class = spark._jvm
    for part in WRITER_CLASS.split("."):
        writer_class = getattr(writer_class, part)
    writer = writer_class(
        ",".join(options.flight_endpoints),
        options.pipeline,
        options.token,
        options.tls_ca.decode() if options.tls_ca else None,
        options.rt_max_rows,
        options.rt_linger_ms,
        int(options.connect_retry_s * 1000),
        int(options.exchange_timeout_s * 1000),
        options.max_message_bytes,
        counters.rows_in,
        counters.rows_written,
        counters.rows_rejected,
    )
    stream = (
        kafka.select(*KAFKA_COLUMNS)
        .writeStream.queryName(options.app_name.replace("-", "_"))
        .outputMode("update")
        .option("checkpointLocation", options.checkpoint_location)
        .trigger(realTime=options.checkpoint_interval)
    )
    return StreamingQuery(stream._jwrite.foreach(writer).start())


def check_cores(spark, options: opts.Options, wait_s: float = 60.0) -> str | None:
    """Real-time mode runs a task per Kafka partition, all at once, for as long as the
    query runs: with fewer cores than partitions some partitions would never be read.
    Returns the problem, or None. Executors register a moment after the session starts,
    so this waits up to `wait_s` for enough of them."""
    jvm, sc = spark._jvm, spark.sparkContext._jsc.sc()
    props = jvm.java.util.Properties()
    props.put("bootstrap.servers", options.bootstrap_servers)
    deserializer = "org.apache.kafka.common.serialization.ByteArrayDeserializer"
    props.put("key.deserializer", deserializer)
    props.put("value.deserializer", deserializer)
    # A look at the topic must not create it with the broker's default partitions.
    props.put("allow.auto.create.topics", "false")
    consumer = jvm.org.apache.kafka.clients.consumer.KafkaConsumer(props)
    try:
        partitions = consumer.partitionsFor(options.topic, jvm.java.time.Duration.ofSeconds(30)).size()
    finally:
        consumer.close()
    if partitions == 0:
        return (
            f"topic {options.topic} does not exist on {options.bootstrap_servers}: real-time mode starts a task "
            f"per partition, so create it first (scripts/stack topic {options.topic} --partitions N)"
        )
    tasks = max(partitions, options.min_partitions or 0)
    profile = sc.resourceProfileManager().defaultResourceProfile()
    deadline = time.monotonic() + wait_s
    while (cores := sc.maxNumConcurrentTasks(profile)) < tasks and time.monotonic() < deadline:
        time.sleep(0.5)
    if cores >= tasks:
        return None
    return (
        f"topic {options.topic} has {partitions} partitions, so real-time mode runs {tasks} tasks at once, but "
        f"the job has {cores} executor cores: add cores (the stack's QUIVER_SPARK_WORKER_CORES, or "
        f"spark.cores.max) or use a micro-batch trigger such as --trigger '1 second'"
    )


def ship_package(spark) -> None:
    """Sends this package to the executors, so a cluster needs only pyspark, pyarrow and
    protobuf installed, not quiver itself."""
    package = Path(__file__).resolve().parent
    archive = Path(tempfile.mkdtemp(prefix="quiver-spark-")) / "quiver_spark.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in package.rglob("*.py"):
            zipped.write(path, path.relative_to(package.parent))
    spark.sparkContext.addPyFile(str(archive))


def main(argv: list[str] | None = None) -> int:
    # spark-submit's PythonRunner merges the driver's stderr into its own stdout.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    options = opts.parse(argv)

    from pyspark.sql import SparkSession

    spark = SparkSession.builder.appName(options.app_name).getOrCreate()
    handler = BatchHandler(options)
    if handler.problem:
        log.error("%s", handler.problem)
        spark.stop()
        return 2
    if options.realtime and (problem := check_cores(spark, options)):
        log.error("%s", problem)
        spark.stop()
        return 2
    ship_package(spark)
    spark.streams.addListener(progress_logger(handler.totals if options.realtime else None))
    # One set for the whole run, so that the summary covers every restart of the query.
    counters = RealtimeCounters(spark) if options.realtime else None

    stop_requested = threading.Event()

    def request_stop(signum, _frame=None, where: str = ""):
        if not stop_requested.is_set():
            log.info("%s received%s: stopping after the batch in flight", signal.Signals(signum).name, where)
        stop_requested.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    stop_on_jvm_sigterm(spark, lambda: request_stop(signal.SIGTERM, where=" by spark-submit"))

    metrics_server = None
    if options.metrics_addr:

        def figures() -> str:
            # In real-time mode the rows are counted by accumulators, read when asked.
            if counters is not None:
                counters.update(handler.totals)
            return job_metrics.render(handler.totals, {"engine": options.engine, "topic": options.topic})

        try:
            metrics_server = job_metrics.serve(options.metrics_addr, figures)
        except OSError as error:
            log.error("%s", error)
            spark.stop()
            return 2

    restarts = 0
    while True:
        batches_before = handler.totals.batches
        query = build_query(spark, options, handler, counters)
        log.info(
            "streaming %s from %s to %s (pipeline %s, trigger %s, checkpoint %s)",
            options.topic,
            options.bootstrap_servers,
            handler.destination,
            options.pipeline,
            f"realtime, checkpoint every {options.checkpoint_interval}" if options.realtime else options.trigger,
            options.checkpoint_location,
        )
        failure = run_until_stopped(query, handler, stop_requested)
        if failure is None or stop_requested.is_set():
            break
        # A query that got batches through was healthy: its failure starts a new count.
        restarts = 1 if handler.totals.batches > batches_before else restarts + 1
        if restarts > options.max_restarts:
            break
        delay = min(options.restart_backoff_s * 2 ** (restarts - 1), 60.0)
        log.warning(
            "the query failed; restart %d of %d from checkpoint %s in %.0f s: %s",
            restarts,
            options.max_restarts,
            options.checkpoint_location,
            delay,
            failure_reason(failure),
        )
        if stop_requested.wait(delay):
            failure = None
            break
    if counters is not None:
        counters.update(handler.totals)
    log.info("done: %s", handler.totals.summary())
    if metrics_server is not None:
        metrics_server.shutdown()
    spark.stop()
    if failure is not None:
        log.info("the query's failure in full: %s", failure)
        log.error(
            "the query failed%s; a restart resumes from checkpoint %s: %s",
            f" after {options.max_restarts} restarts" if options.max_restarts else "",
            options.checkpoint_location,
            failure_reason(failure),
        )
        return 1
    return 0


class _JvmTermHandler:
    """A `sun.misc.SignalHandler` in Python, called from the JVM through py4j."""

    def __init__(self, signal_class, on_term):
        self.signal_class = signal_class
        self.on_term = on_term
        self.default = None

    def handle(self, sig) -> None:
        # A second SIGTERM gets the JVM's own handling: it ends the job at once.
        self.signal_class.handle(sig, self.default)
        self.on_term()

    class Java:
        implements = ["sun.misc.SignalHandler"]


def stop_on_jvm_sigterm(spark, on_term) -> None:
    """Makes a SIGTERM to spark-submit's JVM stop the query like one to this driver: that
    is what supervisord, systemd, `timeout` and `docker compose stop` (spark-submit
    is PID 1 in compose's spark-job) send, to the process or to its whole group. The JVM's
    own handling exits at once, its shutdown hooks stopping the SparkContext under the
    running batch."""
    from pyspark.java_gateway import ensure_callback_server_started

    gateway = spark.sparkContext._gateway
    ensure_callback_server_started(gateway)
    signal_class = gateway.jvm.sun.misc.Signal
    handler = _JvmTermHandler(signal_class, on_term)
    # py4j keeps the Python object for as long as the JVM holds its proxy: here, for good.
    handler.default = signal_class.handle(signal_class("TERM"), handler)


def run_until_stopped(query, handler: BatchHandler, stop_requested: threading.Event):
    """Waits for the query to end, stopping it between two batches once a stop is
    requested; returns its failure, or None."""
    from pyspark.errors import StreamingQueryException

    try:
        while query.isActive:
            if stop_requested.is_set() and handler.idle.wait(timeout=60):
                query.stop()
                break
            query.awaitTermination(0.5)
    except StreamingQueryException as error:
        return error
    # A query that failed between two checks has ended without raising.
    return query.exception()


# A line that names an exception and its message, in a Python traceback or a JVM stack
# trace ("Caused by: ..." included).
_EXCEPTION_LINE = re.compile(r"^\s*(?:Caused by: )?([A-Za-z_][\w.]*(?:Error|Exception)): (\S.*)$")
# Spark's and py4j's wrappers around the error that failed the query.
_WRAPPERS = ("pyspark.", "py4j.", "org.apache.spark.", "java.util.concurrent.")


def failure_reason(error: BaseException) -> str:
    """One line that says why a query failed. Spark wraps the error of a task in layers of
    its own, each with a stack trace: the reason is the innermost error that is not one of
    those wrappers, quiver's own first (quiver_spark's, the JVM writer's, the module's)."""
    text = str(error).strip()
    found = [m for m in map(_EXCEPTION_LINE.match, text.splitlines()) if m]
    ours = [m for m in found if m.group(1).startswith("quiver")]
    others = [m for m in found if not m.group(1).startswith(_WRAPPERS)]
    for matches in (ours, others):
        if matches:
            name, message = matches[-1].groups()
            return f"{name.rsplit('.', 1)[-1]}: {message}"
    return text.splitlines()[0] if text else type(error).__name__
