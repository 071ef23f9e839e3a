"""quiver's Rust core in a Python process.

    import pyarrow as pa, quiver

    engine = quiver.Engine()                       # the `users` pipeline (pipelines/users.sql)
    processed = engine.process("users", kafka_batch)
    processed.rows, processed.rejects              # pyarrow.RecordBatch each, no copies
    sink = quiver.CassandraSink(["127.0.0.1:9042"])
    engine.store("users", processed, [sink])       # upserts; raises SinkUnavailableError to retry
    quiver.sql("SELECT gender, count(*) FROM t GROUP BY gender", {"t": [processed.rows]})

Safe to use in processes forked after import (PySpark's Python workers): the runtime
and the Cassandra connections are made anew in each process that uses them.
"""

from quiver._native import (
    CassandraSink,
    Engine,
    PipelineError,
    Processed,
    QuiverError,
    SinkRejectedError,
    SinkUnavailableError,
    Stored,
    __version__,
    sql,
)

__all__ = [
    "CassandraSink",
    "Engine",
    "PipelineError",
    "Processed",
    "QuiverError",
    "SinkRejectedError",
    "SinkUnavailableError",
    "Stored",
    "__version__",
    "sql",
]
