"""The one line the job logs for a failed query: the innermost error that is not Spark's."""

# The samples are Spark's failure texts as they come, long lines included.
# ruff: noqa: E501

from __future__ import annotations

from quiver_spark.job import failure_reason

PYTHON_WORKER = """[STREAM_FAILED] Query [id = cc9b, runId = f870] terminated with exception: [FOREACH_BATCH_USER_FUNCTION_ERROR] An error occurred in the user provided function in foreach batch sink. Reason: An exception was thrown from the Python worker: Traceback (most recent call last):
  File "/opt/quiver/spark-app/src/quiver_spark/exchange.py", line 167, in run
    yield exchange(target, batch_id, context.partitionId(), context.attemptNumber(), batches)
pyspark.errors.exceptions.captured.PythonException: An exception was thrown from the Python worker:
Traceback (most recent call last):
  File "./quiver_spark.zip/quiver_spark/exchange.py", line 86, in reachable_client
    raise ExchangeError(
quiver_spark.exchange.ExchangeError: the Flight service at grpc://127.0.0.1:54001 could not be reached in 4 attempts over 1 s (is `quiver serve` running there?): Flight returned unavailable error
 SQLSTATE: 39000 SQLSTATE: XXKST
=== Streaming Query ===
Current State: ACTIVE"""

JVM_WRITER = """[STREAM_FAILED] Query [id = 1, runId = 2] terminated with exception: Job aborted due to stage failure: Task 0 in stage 3.0 failed 1 times, most recent failure: Lost task 0.0 in stage 3.0 (TID 7): quiver.spark.ExchangeException: the Flight exchange with grpc://127.0.0.1:50051 (pipeline users, epoch 3, partition 0, attempt 0) failed: UNAVAILABLE: Network closed for unknown reason
\tat quiver.spark.TaskExchange.throwIfFailed(TaskExchange.java:262)
\tat org.apache.spark.scheduler.Task.run(Task.scala:147)
Driver stacktrace:
\tat org.apache.spark.scheduler.DAGScheduler.failJobAndIndependentStages(DAGScheduler.scala:2935)
Caused by: quiver.spark.ExchangeException: the Flight exchange with grpc://127.0.0.1:50051 (pipeline users, epoch 3, partition 0, attempt 0) failed: UNAVAILABLE: Network closed for unknown reason
\tat quiver.spark.TaskExchange.throwIfFailed(TaskExchange.java:262)"""


class Failure(Exception):
    pass


def test_a_python_worker_error_is_named_by_its_own_line():
    assert failure_reason(Failure(PYTHON_WORKER)) == (
        "ExchangeError: the Flight service at grpc://127.0.0.1:54001 could not be reached in 4 attempts over 1 s "
        "(is `quiver serve` running there?): Flight returned unavailable error"
    )


def test_the_jvm_writer_s_error_is_found_under_spark_s_layers():
    assert failure_reason(Failure(JVM_WRITER)) == (
        "ExchangeException: the Flight exchange with grpc://127.0.0.1:50051 (pipeline users, epoch 3, partition 0, "
        "attempt 0) failed: UNAVAILABLE: Network closed for unknown reason"
    )


def test_another_library_s_error_is_named_when_quiver_raised_none():
    text = "[STREAM_FAILED] Query terminated with exception: boom\norg.apache.spark.SparkException: boom\n"
    text += "Caused by: java.net.ConnectException: Connection refused\n\tat sun.nio.ch.Net.connect0(Native Method)"
    assert failure_reason(Failure(text)) == "ConnectException: Connection refused"


def test_only_spark_s_own_words_give_their_first_line():
    text = "[STREAM_FAILED] Query terminated with exception: the source went away\n"
    text += "org.apache.spark.SparkException: the source went away\n\tat org.apache.spark.Foo.bar(Foo.scala:1)"
    assert failure_reason(Failure(text)) == "[STREAM_FAILED] Query terminated with exception: the source went away"
    assert failure_reason(Failure("")) == "Failure"
