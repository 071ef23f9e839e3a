"""quiver's Rust core in a Python process.

    import pyarrow as pa, quiver

    engine = quiver.Engine()                       # the `users` pipeline (pipelines/users.sql)
    processed = engine.process("users", kafka_batch)
    processed.rows, processed.rejects              # pyarrow.RecordBatch each, no copies
    sinks = engine.sinks([quiver.CassandraSink(["127.0.0.1:9042"])])
    run = sinks.run("users", kafka_batch)          # decode, SQL, upsert rows and rejects;
    run.rows_written, run.rows_rejected            # raises SinkUnavailableError to retry
    quiver.sql("SELECT gender, count(*) FROM t GROUP BY gender", {"t": [processed.rows]})

Safe to use in processes forked after import (PySpark's Python workers): the runtime
and the Cassandra connections are made anew in each process that uses them.
"""

from quiver._native import (
    BatchRun,
    CassandraSink,
    Engine,
    PipelineError,
    Processed,
    QuiverError,
    SinkRejectedError,
    Sinks,
    SinkUnavailableError,
    __version__,
    sql,
)

__all__ = [
    "BatchRun",
    "CassandraSink",
    "Engine",
    "PipelineError",
    "Processed",
    "QuiverError",
    "SinkRejectedError",
    "SinkUnavailableError",
    "Sinks",
    "__version__",
    "sql",
]
