"""What runs on the executors: one task's Kafka rows, as Arrow, to the transformation
service and its acknowledgements back.

Every task opens one DoExchange stream, sends all of its batches, and reads one
acknowledgement per batch. Anything short of a complete set of acknowledgements raises,
which fails the task so that Spark retries it; the sink upserts by primary key, so a
retried task writes the same rows again and nothing twice.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import pyarrow as pa
from google.protobuf.descriptor import FieldDescriptor
from pyarrow import flight

from quiver_spark import quiver_pb2

# The columns of Spark's Kafka source that the service reads, in its input order.
KAFKA_COLUMNS = ["key", "value", "topic", "partition", "offset", "timestamp"]

# Each acknowledgement becomes one row, its columns taken from BatchAck in
# proto/quiver.proto so the two cannot drift apart.
_ARROW_TYPES = {
    FieldDescriptor.TYPE_STRING: pa.string(),
    FieldDescriptor.TYPE_INT32: pa.int32(),
    FieldDescriptor.TYPE_INT64: pa.int64(),
    # Spark has no unsigned integers; counts and microseconds fit in int64.
    FieldDescriptor.TYPE_UINT64: pa.int64(),
}
ACK_SCHEMA = pa.schema([(f.name, _ARROW_TYPES[f.type]) for f in quiver_pb2.BatchAck.DESCRIPTOR.fields])


class ExchangeError(RuntimeError):
    """The service did not take a task's batches; the task fails and Spark retries it."""


@dataclass(frozen=True)
class Target:
    """Where and how a task sends its batches: small and picklable, shipped to executors."""

    # One or more services: a task starts at one chosen by its partition and fails over to
    # the next that answers.
    endpoints: tuple[str, ...]
    pipeline: str
    # PEM of the CA that signed the service's certificate, for grpc+tls:// endpoints.
    tls_ca: bytes | None
    token: str | None
    timeout_s: float
    max_message_bytes: int
    # How long a task waits, with back-off, for a service that cannot be reached. Spark
    # retries a failed task at once, so without this a service restarting for a few
    # seconds would use up every attempt and fail the query.
    connect_retry_s: float = 30.0


def brief(error: Exception) -> str:
    """A Flight error's own message: pyarrow appends gRPC's debug context, which repeats
    the message with addresses and timestamps (the whole error stays chained)."""
    return str(error).split(". gRPC client debug context:", 1)[0]


def client_for(target: Target, endpoint: str) -> flight.FlightClient:
    return flight.FlightClient(
        endpoint,
        tls_root_certs=target.tls_ca,
        generic_options=[
            ("grpc.max_send_message_length", target.max_message_bytes),
            ("grpc.max_receive_message_length", target.max_message_bytes),
        ],
    )


def endpoints_from(target: Target, partition: int, attempt: int) -> list[str]:
    """The endpoints in the order a task tries them: partitions spread over the services,
    and a retried task starts at the next one."""
    first = (partition + attempt) % len(target.endpoints)
    return [*target.endpoints[first:], *target.endpoints[:first]]


def reachable_client(
    target: Target, options: flight.FlightCallOptions, order: list[str]
) -> tuple[flight.FlightClient, str]:
    """A client whose service has answered ListFlights, and its endpoint: each endpoint in
    `order` in turn, then again with back-off for `target.connect_retry_s`, each time on a
    new channel (a gRPC channel that failed to connect waits out its own back-off, up to
    minutes, before it tries again); then ExchangeError names what was tried."""
    deadline = time.monotonic() + target.connect_retry_s
    delay, attempts = 0.1, 0
    while True:
        errors: list[flight.FlightUnavailableError] = []
        for endpoint in order:
            attempts += 1
            client = client_for(target, endpoint)
            try:
                for _ in client.list_flights(options=options):
                    pass
                return client, endpoint
            except flight.FlightUnavailableError as error:
                client.close()
                errors.append(error)
            except BaseException:
                client.close()
                raise
        if time.monotonic() + delay > deadline:
            if len(order) == 1:
                what = f"the Flight service at {order[0]} could not be reached"
                why = brief(errors[0])
            else:
                what = f"none of the Flight services at {', '.join(order)} could be reached"
                why = "; ".join(f"{endpoint}: {brief(error)}" for endpoint, error in zip(order, errors, strict=True))
            raise ExchangeError(
                f"{what} in {attempts} attempts over {target.connect_retry_s:g} s "
                f"(is `quiver serve` running there?): {why}"
            ) from errors[-1]
        time.sleep(delay)
        delay = min(delay * 2, 2.0)


def exchange(
    target: Target, batch_id: int, partition: int, attempt: int, batches: Iterable[pa.RecordBatch]
) -> pa.RecordBatch:
    """Sends `batches` to the service; returns their acknowledgements as one batch."""
    command = quiver_pb2.ExchangeCommand(
        pipeline=target.pipeline, batch_id=batch_id, partition=partition, attempt=attempt
    )
    order = endpoints_from(target, partition, attempt)
    endpoint = order[0]

    def where() -> str:
        return f"{endpoint} (pipeline {target.pipeline}, batch {batch_id}, partition {partition}, attempt {attempt})"

    headers = [(b"authorization", f"Bearer {target.token}".encode())] if target.token else []
    options = flight.FlightCallOptions(timeout=target.timeout_s, headers=headers)
    acks: list[quiver_pb2.BatchAck] = []
    sent_batches = sent_rows = 0
    client = None
    try:
        client, endpoint = reachable_client(target, options, order)
        descriptor = flight.FlightDescriptor.for_command(command.SerializeToString())
        writer, reader = client.do_exchange(descriptor, options)
        with writer:
            for batch in batches:
                if batch.num_rows == 0:
                    continue
                if sent_batches == 0:
                    writer.begin(batch.schema)
                writer.write_batch(batch)
                sent_batches += 1
                sent_rows += batch.num_rows
            if sent_batches == 0:
                return acks_batch([])
            writer.done_writing()
            acks = read_acks(reader)
    except (flight.FlightError, pa.ArrowException, OSError) as error:
        raise ExchangeError(f"Flight exchange with {where()} failed: {brief(error)}") from error
    finally:
        if client is not None:
            client.close()
    acknowledged = sum(a.rows_in for a in acks)
    if len(acks) != sent_batches or acknowledged != sent_rows:
        raise ExchangeError(
            f"Flight exchange with {where()} ended early: sent {sent_batches} batches ({sent_rows} rows), "
            f"acknowledged {len(acks)} ({acknowledged} rows)"
        )
    return acks_batch(acks)


def read_acks(reader: flight.FlightStreamReader) -> list[quiver_pb2.BatchAck]:
    """The acknowledgements on an exchange's response stream, to its end."""
    acks = []
    while True:
        try:
            chunk = reader.read_chunk()
        except StopIteration:
            return acks
        if chunk.app_metadata is not None:
            acks.append(quiver_pb2.BatchAck.FromString(chunk.app_metadata.to_pybytes()))


def acks_batch(acks: list[quiver_pb2.BatchAck]) -> pa.RecordBatch:
    columns = {name: [getattr(a, name) for a in acks] for name in ACK_SCHEMA.names}
    return pa.RecordBatch.from_pydict(columns, schema=ACK_SCHEMA)


def task_exchange(target: Target, batch_id: int):
    """The function mapInArrow runs in each task, closed over the micro-batch id."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pyspark import TaskContext

        context = TaskContext.get()
        yield exchange(target, batch_id, context.partitionId(), context.attemptNumber(), batches)

    return run
