from collections.abc import Mapping, Sequence

import pyarrow as pa

__version__: str

class QuiverError(Exception):
    """Base class of quiver's errors."""

class PipelineError(QuiverError):
    """A pipeline's SQL or input is invalid; the same call will fail again."""

class SinkUnavailableError(QuiverError):
    """A sink could not be reached or timed out; retrying the batch can succeed."""

class SinkRejectedError(QuiverError):
    """A sink refused the batch; retrying the same batch will not help."""

class Processed:
    """One batch after decoding and SQL."""

    @property
    def rows(self) -> pa.RecordBatch: ...
    @property
    def rejects(self) -> pa.RecordBatch: ...
    @property
    def rows_in(self) -> int: ...
    @property
    def rows_out(self) -> int: ...
    @property
    def rows_rejected(self) -> int: ...
    @property
    def decode_seconds(self) -> float: ...
    @property
    def sql_seconds(self) -> float: ...

class BatchRun:
    """What `Sinks.run` did with one batch: the figures of its acknowledgement."""

    @property
    def rows_in(self) -> int: ...
    @property
    def rows_out(self) -> int: ...
    @property
    def rows_written(self) -> int: ...
    @property
    def rows_rejected(self) -> int: ...
    @property
    def reports(self) -> dict[str, tuple[int, int]]: ...
    @property
    def decode_seconds(self) -> float: ...
    @property
    def sql_seconds(self) -> float: ...
    @property
    def sink_seconds(self) -> float: ...

class CassandraSink:
    """`created_users` and `rejected_users` in `keyspace`, created if missing.

    A setting left at None takes the Rust sink's default: nodes ["127.0.0.1:9042"],
    keyspace "spark_streams", replication_factor 1 (SimpleStrategy; NetworkTopologyStrategy
    in `datacenter` when given), consistency "LOCAL_QUORUM", concurrency 256,
    retry_window_seconds 60 (how long a write waits for Cassandra to come back),
    request_timeout_seconds 5. It connects at once and raises SinkUnavailableError when
    Cassandra cannot be reached; with `wait`, only after trying for the retry window.
    """

    def __init__(
        self,
        nodes: Sequence[str] | None = None,
        keyspace: str | None = None,
        *,
        replication_factor: int | None = None,
        datacenter: str | None = None,
        consistency: str | None = None,
        concurrency: int | None = None,
        retry_window_seconds: float | None = None,
        request_timeout_seconds: float | None = None,
        username: str | None = None,
        password: str | None = None,
        wait: bool = False,
    ) -> None: ...
    @property
    def keyspace(self) -> str: ...

class Engine:
    """The pipelines of one process, each planned once and reused for every batch."""

    def __init__(self, pipelines: Mapping[str, str | None] | None = None) -> None: ...
    @property
    def pipelines(self) -> list[str]: ...
    def input_schema(self, pipeline: str) -> pa.Schema: ...
    def output_schema(self, pipeline: str) -> pa.Schema: ...
    def process(self, pipeline: str, batch: pa.RecordBatch) -> Processed: ...
    def sinks(self, sinks: Sequence[CassandraSink]) -> Sinks: ...

class Sinks:
    """The sinks of an engine: `run` decodes, transforms and stores one batch."""

    def run(self, pipeline: str, batch: pa.RecordBatch) -> BatchRun: ...

def sql(query: str, tables: Mapping[str, pa.RecordBatch | Sequence[pa.RecordBatch]]) -> list[pa.RecordBatch]: ...
