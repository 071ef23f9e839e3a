package quiver.spark;

import static java.util.concurrent.TimeUnit.MILLISECONDS;
import static java.util.concurrent.TimeUnit.NANOSECONDS;

import com.google.protobuf.InvalidProtocolBufferException;
import java.nio.channels.ClosedChannelException;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Consumer;
import org.apache.arrow.flight.CallHeaders;
import org.apache.arrow.flight.CallOption;
import org.apache.arrow.flight.CallOptions;
import org.apache.arrow.flight.Criteria;
import org.apache.arrow.flight.FlightCallHeaders;
import org.apache.arrow.flight.FlightClient;
import org.apache.arrow.flight.FlightDescriptor;
import org.apache.arrow.flight.FlightRuntimeException;
import org.apache.arrow.flight.FlightStatusCode;
import org.apache.arrow.flight.FlightStream;
import org.apache.arrow.flight.HeaderCallOption;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.spark.sql.Row;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import quiver.v1.Quiver.BatchAck;
import quiver.v1.Quiver.ExchangeCommand;

/**
 * One Spark task's DoExchange stream with {@code quiver serve}: rows go out as Arrow record
 * batches of at most {@code maxRows} rows, each sent at the latest {@code lingerMs} after its
 * first row; one acknowledgement per batch comes back and is read as it arrives. Anything short
 * of a complete set of acknowledgements throws, which fails the task so that Spark retries it.
 *
 * <p>Threads: the task's thread calls {@link #append}, {@link #finish} and {@link #abort}; a
 * timer thread sends batches that waited {@code lingerMs}; an ack-reader thread reads the
 * replies. The batch and the sending side are guarded by {@code this}; a failure on any thread
 * is kept in {@link #failure} and thrown by the task's next call.
 */
final class TaskExchange {
  private static final Logger LOG = LoggerFactory.getLogger(TaskExchange.class);
  // The probe only asks for the list of pipelines: a service that needs longer is not serving.
  private static final long PROBE_TIMEOUT_MS = 10_000;
  private static final long FIRST_RETRY_DELAY_MS = 100;
  private static final long MAX_RETRY_DELAY_MS = 2_000;

  private final Target target;
  // Names the stream in every message: endpoint, pipeline, epoch, partition, attempt.
  private final String where;
  private final Consumer<BatchAck> onAck;
  private final BufferAllocator allocator;
  private final Clients.Lease lease;
  private final KafkaBatch batch;
  private final FlightClient.ExchangeReaderWriter call;
  private final ScheduledThreadPoolExecutor timer;
  private final Thread ackReader;
  private final AtomicReference<Throwable> failure = new AtomicReference<>();

  // Guarded by this.
  private long sentBatches;
  private long sentRows;

  // Written by the ack reader only; read by the task's thread after joining it, or for logs.
  private volatile long ackedBatches;
  private volatile long ackedRows;
  private volatile long rowsWritten;
  private volatile long rowsRejected;

  private TaskExchange(
      Target target,
      String where,
      Consumer<BatchAck> onAck,
      BufferAllocator allocator,
      Clients.Lease lease,
      KafkaBatch batch,
      FlightClient.ExchangeReaderWriter call) {
    this.target = target;
    this.where = where;
    this.onAck = onAck;
    this.allocator = allocator;
    this.lease = lease;
    this.batch = batch;
    this.call = call;
    timer =
        new ScheduledThreadPoolExecutor(
            1, runnable -> daemon(runnable, "quiver-linger " + where));
    // Stopping the timer drops the linger flushes still waiting: finish() sends the rest.
    timer.setExecuteExistingDelayedTasksAfterShutdownPolicy(false);
    ackReader = daemon(this::readAcks, "quiver-acks " + where);
  }

  /**
   * Connects (retrying a service that cannot be reached), starts the DoExchange with the
   * command and the schema, and starts reading acknowledgements; {@code onAck} is called on
   * the ack reader's thread for each.
   */
  static TaskExchange open(
      Target target, long epoch, int partition, int attempt, Consumer<BatchAck> onAck) {
    String task =
        String.format(
            "pipeline %s, epoch %d, partition %d, attempt %d",
            target.pipeline(), epoch, partition, attempt);
    List<String> order = target.order(partition, attempt);
    String where = String.join(", ", order) + " (" + task + ")";
    long started = System.nanoTime();
    CallOption[] headers = headers(target);
    BufferAllocator allocator = Clients.taskAllocator(task);
    Clients.Lease lease = null;
    KafkaBatch batch = null;
    FlightClient.ExchangeReaderWriter call = null;
    try {
      lease = reachableClient(target, order, headers);
      where = lease.endpoint() + " (" + task + ")";
      batch = new KafkaBatch(allocator);
      ExchangeCommand command =
          ExchangeCommand.newBuilder()
              .setPipeline(target.pipeline())
              .setBatchId(epoch)
              .setPartition(partition)
              .setAttempt(attempt)
              .build();
      call = lease.client().doExchange(FlightDescriptor.command(command.toByteArray()), headers);
      // The first message: the descriptor and the schema, so that the service checks the
      // pipeline and the schema now rather than at the first batch.
      call.getWriter().start(batch.root());
      TaskExchange exchange =
          new TaskExchange(target, where, onAck, allocator, lease, batch, call);
      exchange.ackReader.start();
      LOG.info(
          "opened the Flight exchange with {} in {} ms",
          where,
          MILLISECONDS.convert(System.nanoTime() - started, NANOSECONDS));
      return exchange;
    } catch (RuntimeException e) {
      ExchangeException error =
          e instanceof ExchangeException named
              ? named
              : new ExchangeException(
                  "opening the Flight exchange with " + where + " failed: " + describe(e), e);
      Exception closing = closeAll(call, batch, lease, allocator);
      if (closing != null) {
        error.addSuppressed(closing);
      }
      throw error;
    }
  }

  /** Adds a row to the current batch; sends the batch when it is full. */
  void append(Row row) {
    throwIfFailed();
    synchronized (this) {
      if (batch.rows() == 0) {
        long generation = sentBatches;
        timer.schedule(() -> sendLingering(generation), target.lingerMs(), MILLISECONDS);
      }
      batch.append(row);
      if (batch.rows() >= target.maxRows()) {
        send();
      }
    }
  }

  /**
   * Sends what is left, ends the stream, waits for the acknowledgements and checks that they
   * cover every batch and row sent; releases everything either way.
   */
  void finish() {
    try {
      stopTimer();
      synchronized (this) {
        throwIfFailed();
        if (batch.rows() > 0) {
          send();
        }
      }
      call.getWriter().completed();
      ackReader.join(target.ackTimeoutMs());
      throwIfFailed();
      if (ackReader.isAlive() || ackedBatches != sentBatches || ackedRows != sentRows) {
        throw new ExchangeException(
            String.format(
                "the Flight exchange with %s ended early: sent %d batches (%d rows), acknowledged %d (%d rows)%s",
                where,
                sentBatches,
                sentRows,
                ackedBatches,
                ackedRows,
                ackReader.isAlive() ? " within " + target.ackTimeoutMs() + " ms" : ""));
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      ExchangeException error =
          new ExchangeException("interrupted waiting for the acknowledgements of " + where, e);
      releaseAfter(error);
      throw error;
    } catch (RuntimeException e) {
      releaseAfter(e);
      throw e;
    }
    release();
    LOG.info("closed the Flight exchange with {}: {}", where, counts());
  }

  /** Cancels the stream (the task failed) and releases everything. */
  void abort(Throwable cause) {
    releaseAfter(cause);
    LOG.warn("cancelled the Flight exchange with {} after {}: {}", where, cause, counts());
  }

  /** Holds this. Sends the batch; a failure is kept for the task's next call and thrown. */
  private void send() {
    int rows = batch.rows();
    try {
      awaitReady();
      batch.seal();
      call.getWriter().putNext();
    } catch (RuntimeException e) {
      failure.compareAndSet(null, e);
      throwIfFailed();
    }
    sentBatches++;
    sentRows += rows;
    batch.clear();
  }

  // putNext() itself busy-spins while gRPC's outbound buffer is full (the service is slower
  // than Spark); this waits without using a core, and gives up when the stream failed or the
  // service took nothing for ackTimeoutMs.
  private void awaitReady() {
    long deadline = System.nanoTime() + MILLISECONDS.toNanos(target.ackTimeoutMs());
    while (!call.getWriter().isReady()) {
      throwIfFailed();
      if (System.nanoTime() > deadline) {
        throw new ExchangeException("the service took no data for " + target.ackTimeoutMs() + " ms");
      }
      try {
        Thread.sleep(1);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new ExchangeException("interrupted waiting to send to " + where, e);
      }
    }
  }

  /** On the timer: sends the batch that {@code generation} started unless it has gone already. */
  private synchronized void sendLingering(long generation) {
    if (sentBatches != generation || batch.rows() == 0 || failure.get() != null) {
      return;
    }
    try {
      send();
    } catch (ExchangeException e) {
      // Kept in `failure` by send(): the task's next process() or close() throws it.
    }
  }

  private void readAcks() {
    FlightStream reader = call.getReader();
    try {
      while (reader.next()) {
        ArrowBuf metadata = reader.getLatestMetadata();
        // Every reply carries an acknowledgement; a message without one is no reply to a
        // batch, and the counts in finish() notice if acknowledgements are missing.
        if (metadata == null) {
          continue;
        }
        BatchAck ack = BatchAck.parseFrom(metadata.nioBuffer());
        ackedBatches++;
        ackedRows += ack.getRowsIn();
        rowsWritten += ack.getRowsWritten();
        rowsRejected += ack.getRowsRejected();
        onAck.accept(ack);
      }
    } catch (RuntimeException | InvalidProtocolBufferException e) {
      failure.compareAndSet(null, e);
    }
  }

  private void throwIfFailed() {
    Throwable cause = failure.get();
    if (cause != null) {
      throw new ExchangeException(
          "the Flight exchange with " + where + " failed: " + describe(cause), cause);
    }
  }

  private void stopTimer() {
    timer.shutdown();
    try {
      // A linger flush under way waits at most ackTimeoutMs for the stream (awaitReady).
      if (!timer.awaitTermination(target.ackTimeoutMs(), MILLISECONDS)) {
        LOG.warn("the linger timer of {} did not stop", where);
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  /** Cancels the stream if it still runs, stops the threads and frees the memory. */
  private void release() {
    // Spark interrupts the task's thread when it cancels the task. The waits below must happen
    // all the same, or memory that gRPC still uses would be freed under it (and the allocator
    // reports a leak): the interrupt is set aside and restored afterwards.
    boolean interrupted = Thread.interrupted();
    try {
      if (ackReader.isAlive()) {
        call.getReader().cancel("the Spark task ended the stream", null);
      }
      stopTimer();
      interrupted |= Thread.interrupted();
      try {
        ackReader.join(target.ackTimeoutMs());
      } catch (InterruptedException e) {
        interrupted = true;
      }
      // The stream first (it holds buffers of the client's allocator), the task's allocator
      // last: it throws if any of the task's buffers was not released.
      Exception error = closeAll(this::closeCall, batch, lease, allocator);
      if (error != null) {
        throw new ExchangeException("releasing the Flight exchange with " + where + " failed: " + error, error);
      }
    } finally {
      if (interrupted) {
        Thread.currentThread().interrupt();
      }
    }
  }

  // Closing a stream that failed, or that release() cancelled, frees its buffers and then
  // throws that failure again, which the ack reader has kept and reported already.
  private void closeCall() throws Exception {
    try {
      call.close();
    } catch (FlightRuntimeException e) {
      if (failure.get() == null) {
        throw e;
      }
    }
  }

  private void releaseAfter(Throwable cause) {
    try {
      release();
    } catch (RuntimeException e) {
      cause.addSuppressed(e);
    }
  }

  private String counts() {
    synchronized (this) {
      return String.format(
          "sent %d rows in %d batches; %d acknowledged (%d rows in, %d written, %d rejected)",
          sentRows, sentBatches, ackedBatches, ackedRows, rowsWritten, rowsRejected);
    }
  }

  private static CallOption[] headers(Target target) {
    if (target.token() == null) {
      return new CallOption[0];
    }
    CallHeaders headers = new FlightCallHeaders();
    headers.insert("authorization", "Bearer " + target.token());
    return new CallOption[] {new HeaderCallOption(headers)};
  }

  /**
   * A lease on a client whose service has answered ListFlights: each endpoint of {@code order} in
   * turn, then again with back-off for {@code connectRetryMs}, each time on a new client (a gRPC
   * channel that failed to connect waits out its own back-off, up to minutes, before it tries
   * again). Spark retries a failed task at once, so without this a service restarting for a few
   * seconds would use up every attempt and fail the query.
   */
  private static Clients.Lease reachableClient(
      Target target, List<String> order, CallOption[] headers) {
    CallOption[] probe = new CallOption[headers.length + 1];
    System.arraycopy(headers, 0, probe, 0, headers.length);
    probe[headers.length] = CallOptions.timeout(PROBE_TIMEOUT_MS, MILLISECONDS);
    long started = System.nanoTime();
    long deadline = started + MILLISECONDS.toNanos(target.connectRetryMs());
    long delayMs = FIRST_RETRY_DELAY_MS;
    for (int attempts = 0; ; ) {
      List<String> errors = new ArrayList<>();
      FlightRuntimeException last = null;
      for (String endpoint : order) {
        attempts++;
        Clients.Lease lease = Clients.lease(target, endpoint);
        try {
          // The answer does not matter, only that there is one.
          lease.client().listFlights(Criteria.ALL, probe).forEach(info -> {});
          return lease;
        } catch (FlightRuntimeException e) {
          boolean unreachable = unreachable(e);
          if (unreachable) {
            lease.drop();
          }
          Exception closing = closeAll(lease);
          if (closing != null) {
            e.addSuppressed(closing);
          }
          if (!unreachable) {
            throw e;
          }
          errors.add(order.size() == 1 ? describe(e) : endpoint + ": " + describe(e));
          last = e;
        }
      }
      if (System.nanoTime() + MILLISECONDS.toNanos(delayMs) > deadline) {
        String what =
            order.size() == 1
                ? "the Flight service at " + order.get(0) + " could not be reached"
                : "none of the Flight services at " + String.join(", ", order) + " could be reached";
        throw new ExchangeException(
            String.format(
                "%s in %d attempts over %d ms (is `quiver serve` running there?): %s",
                what,
                attempts,
                (System.nanoTime() - started) / 1_000_000,
                String.join("; ", errors)),
            last);
      }
      try {
        Thread.sleep(delayMs);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new ExchangeException("interrupted connecting to " + String.join(", ", order), e);
      }
      delayMs = Math.min(delayMs * 2, MAX_RETRY_DELAY_MS);
    }
  }

  /**
   * Whether a failed probe means the service is not there: UNAVAILABLE, or a pooled client whose
   * connection the service closed (it was killed), which fails its next call with UNKNOWN:
   * channel closed before it connects again.
   */
  private static boolean unreachable(FlightRuntimeException e) {
    if (e.status().code() == FlightStatusCode.UNAVAILABLE) {
      return true;
    }
    for (Throwable cause = e.getCause(); cause != null; cause = cause.getCause()) {
      if (cause instanceof ClosedChannelException) {
        return true;
      }
    }
    return false;
  }

  private static String describe(Throwable e) {
    if (e instanceof FlightRuntimeException f) {
      return f.status().code() + ": " + f.getMessage();
    }
    return e.getMessage() == null ? e.toString() : e.getMessage();
  }

  private static Thread daemon(Runnable body, String name) {
    Thread thread = new Thread(body, name);
    // Never keeps an executor JVM alive; release() ends both threads in any case.
    thread.setDaemon(true);
    return thread;
  }

  /** Closes each resource that is not null, in order; returns what they threw, or null. */
  private static Exception closeAll(AutoCloseable... resources) {
    Exception first = null;
    for (AutoCloseable resource : resources) {
      if (resource == null) {
        continue;
      }
      try {
        resource.close();
      } catch (Exception e) {
        if (e instanceof InterruptedException) {
          Thread.currentThread().interrupt();
        }
        if (first == null) {
          first = e;
        } else {
          first.addSuppressed(e);
        }
      }
    }
    return first;
  }
}
