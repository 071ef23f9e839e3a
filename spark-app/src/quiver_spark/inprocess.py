"""The in-process engine: each task decodes, transforms and stores its Kafka rows with
quiver's Rust core inside the executor's Python worker (the `quiver` module built from
rust/quiver-py), with no network hop to a service.

A Python worker is reused across tasks, so its engine (pipelines planned once) and its
Cassandra connections are made once per worker process and kept. A sink that cannot be
reached raises, which fails the task so that Spark retries it; writes are upserts, so a
retried task changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa

from quiver_spark import quiver_pb2
from quiver_spark.exchange import acks_batch
from quiver_spark.options import CassandraOptions

if TYPE_CHECKING:
    # Imported where it is used: the driver may lack the module (check() says so).
    import quiver


@dataclass(frozen=True)
class InProcessTarget:
    """What a task needs to run a pipeline itself: small and picklable, shipped to executors."""

    pipeline: str
    # None: the module's built-in pipelines/users.sql.
    pipeline_sql: str | None
    cassandra: CassandraOptions


# Per worker process: what each target needs, made on first use.
_resources: dict[InProcessTarget, quiver.Sinks] = {}


def _sinks(target: InProcessTarget, wait: bool) -> quiver.Sinks:
    """The engine and sinks of `target` in this process. `wait`: a worker joining the
    stream during a Cassandra outage waits for it as the writes do (the retry window);
    the driver's check before the stream reports an unreachable Cassandra at once."""
    found = _resources.get(target)
    if found is None:
        import quiver

        engine = quiver.Engine({target.pipeline: target.pipeline_sql})
        sink = quiver.CassandraSink(**target.cassandra.sink_kwargs(), wait=wait)
        found = _resources[target] = engine.sinks([sink])
    return found


def check(target: InProcessTarget) -> str | None:
    """What stops the engine from running, checked on the driver before the query
    starts: the module missing, invalid pipeline SQL, Cassandra unreachable. None if
    nothing."""
    try:
        import quiver
    except ImportError as error:
        return (
            f"--engine inprocess needs quiver's Python module on the driver and on every executor ({error}); "
            "scripts/setup builds it into the stack's Python environment, elsewhere: pip install rust/quiver-py"
        )
    try:
        _sinks(target, wait=False)
    except quiver.QuiverError as error:
        return f"--engine inprocess cannot run pipeline {target.pipeline!r}: {error}"
    return None


def process(
    target: InProcessTarget, batch_id: int, partition: int, attempt: int, batches: Iterable[pa.RecordBatch]
) -> pa.RecordBatch:
    """Transforms and stores `batches`; returns one acknowledgement per batch, as the
    Flight service would."""
    sinks = _sinks(target, wait=True)
    acks = []
    for sequence, batch in enumerate(b for b in batches if b.num_rows > 0):
        run = sinks.run(target.pipeline, batch)
        acks.append(
            quiver_pb2.BatchAck(
                pipeline=target.pipeline,
                batch_id=batch_id,
                partition=partition,
                attempt=attempt,
                sequence=sequence,
                rows_in=run.rows_in,
                rows_out=run.rows_out,
                rows_written=run.rows_written,
                rows_rejected=run.rows_rejected,
                decode_micros=round(run.decode_seconds * 1e6),
                sql_micros=round(run.sql_seconds * 1e6),
                sink_micros=round(run.sink_seconds * 1e6),
            )
        )
    return acks_batch(acks)


def task_inprocess(target: InProcessTarget, batch_id: int):
    """The function mapInArrow runs in each task, closed over the micro-batch id."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pyspark import TaskContext

        context = TaskContext.get()
        yield process(target, batch_id, context.partitionId(), context.attemptNumber(), batches)

    return run
