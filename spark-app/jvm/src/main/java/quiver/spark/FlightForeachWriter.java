package quiver.spark;

import org.apache.spark.TaskContext;
import org.apache.spark.sql.ForeachWriter;
import org.apache.spark.sql.Row;
import org.apache.spark.util.LongAccumulator;
import quiver.v1.Quiver.BatchAck;

/**
 * Spark sink for Structured Streaming's real-time mode, which takes only a JVM ForeachWriter:
 * each task streams its Kafka rows (key, value, topic, partition, offset, timestamp, taken by
 * name) as Arrow record batches over one Arrow Flight DoExchange to {@code quiver serve}, and
 * fails unless every batch is acknowledged. From PySpark:
 *
 * <pre>
 * writer = spark._jvm.quiver.spark.FlightForeachWriter(
 *     "grpc://127.0.0.1:50051", "users", None, None, 10000, 100, 30000, 60000, 256 * 1024 * 1024,
 *     None, None, None)
 * query = df.writeStream.outputMode("update").option("checkpointLocation", checkpoint) \
 *     .trigger(realTime="30 seconds")._jwrite.foreach(writer).start()
 * </pre>
 *
 * Made on the driver and serialized to the executors. A task's stream, its memory and its threads
 * exist only between open() and close(); the Flight client (the gRPC channel) is kept in the
 * executor for the next tasks, so that a real-time batch starts without connecting again.
 */
public final class FlightForeachWriter extends ForeachWriter<Row> {
  private static final long serialVersionUID = 1L;

  private final Target target;
  private final LongAccumulator rowsIn;
  private final LongAccumulator rowsWritten;
  private final LongAccumulator rowsRejected;
  private transient TaskExchange exchange;

  /**
   * @param endpoints {@code grpc://host:port} or {@code grpc+tls://host:port}, or several,
   *     comma-separated: each task starts at one chosen by its partition and fails over to the
   *     next that answers
   * @param pipeline the service's pipeline that runs the rows, e.g. "users"
   * @param token bearer token, sent as {@code authorization: Bearer <token>}; null for none
   * @param tlsCaPem PEM text of the CA that signed the service's certificate, for grpc+tls://;
   *     null to trust the JVM's CAs
   * @param maxRows a batch is sent when it holds this many rows
   * @param lingerMs ... or when its first row has waited this many milliseconds
   * @param connectRetryMs how long, in milliseconds, open() retries a service that cannot be
   *     reached (0: one attempt)
   * @param ackTimeoutMs how long, in milliseconds, close() waits for the outstanding
   *     acknowledgements, and process() for a service that takes no more data
   * @param maxMessageBytes largest gRPC message, in bytes, accepted from the service
   * @param rowsIn driver-side counter of rows the service acknowledged, or null
   * @param rowsWritten ... of rows its sinks stored, or null
   * @param rowsRejected ... of rows it rejected (malformed records), or null
   */
  public FlightForeachWriter(
      String endpoints,
      String pipeline,
      String token,
      String tlsCaPem,
      int maxRows,
      long lingerMs,
      long connectRetryMs,
      long ackTimeoutMs,
      int maxMessageBytes,
      LongAccumulator rowsIn,
      LongAccumulator rowsWritten,
      LongAccumulator rowsRejected) {
    target =
        new Target(
            Target.endpointList(endpoints),
            pipeline,
            token,
            tlsCaPem,
            maxRows,
            lingerMs,
            connectRetryMs,
            ackTimeoutMs,
            maxMessageBytes);
    this.rowsIn = rowsIn;
    this.rowsWritten = rowsWritten;
    this.rowsRejected = rowsRejected;
  }

  @Override
  public boolean open(long partitionId, long epochId) {
    TaskContext context = TaskContext.get();
    int attempt = context == null ? 0 : context.attemptNumber();
    exchange = TaskExchange.open(target, epochId, Math.toIntExact(partitionId), attempt, this::count);
    return true;
  }

  @Override
  public void process(Row row) {
    exchange.append(row);
  }

  @Override
  public void close(Throwable errorOrNull) {
    TaskExchange ending = exchange;
    exchange = null;
    // Null when open() failed: it released what it had opened.
    if (ending == null) {
      return;
    }
    if (errorOrNull == null) {
      ending.finish();
    } else {
      ending.abort(errorOrNull);
    }
  }

  /** On the ack reader's thread; Spark sends the task's counts to the driver when it ends. */
  private void count(BatchAck ack) {
    add(rowsIn, ack.getRowsIn());
    add(rowsWritten, ack.getRowsWritten());
    add(rowsRejected, ack.getRowsRejected());
  }

  private static void add(LongAccumulator counter, long value) {
    if (counter != null) {
      counter.add(value);
    }
  }
}
