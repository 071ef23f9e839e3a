package quiver.spark;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.spark.util.LongAccumulator;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The writer against a real `quiver serve --sink none`, as a Spark task drives it. */
class FlightForeachWriterTest {
  // Long enough that only the row count sends a batch in the tests that say so.
  private static final long NO_LINGER_MS = 600_000;

  private static QuiverServe serve;

  private final LongAccumulator rowsIn = new LongAccumulator();
  private final LongAccumulator rowsWritten = new LongAccumulator();
  private final LongAccumulator rowsRejected = new LongAccumulator();

  @BeforeAll
  static void startService() throws Exception {
    serve = QuiverServe.start(Map.of());
  }

  @AfterAll
  static void stopService() throws InterruptedException {
    if (serve != null) {
      serve.stop();
    }
  }

  private FlightForeachWriter writer(String endpoint, String pipeline, int maxRows, long lingerMs, long connectRetryMs) {
    return new FlightForeachWriter(
        endpoint, pipeline, null, null, maxRows, lingerMs, connectRetryMs, 30_000, 256 << 20,
        rowsIn, rowsWritten, rowsRejected);
  }

  private FlightForeachWriter writer(int maxRows, long lingerMs) {
    return writer(serve.endpoint(), "users", maxRows, lingerMs, 5_000);
  }

  private String seen() {
    return "acknowledged rows_in " + rowsIn.sum() + "; service log:\n" + serve.logTail();
  }

  @Test
  void fullBatchesAreSentAndAcknowledgedWhileTheTaskRuns() throws InterruptedException {
    FlightForeachWriter writer = writer(10, NO_LINGER_MS);
    assertTrue(writer.open(3, 7));
    for (long i = 0; i < 25; i++) {
      writer.process(KafkaRows.userRow(i));
    }
    // Two full batches went out at 10 rows each; their acknowledgements arrive before close().
    Eventually.until(() -> rowsIn.sum() == 20, this::seen);
    writer.close(null);
    // close() sent the last 5 rows and checked that every batch and row was acknowledged.
    assertEquals(25, rowsIn.sum());
    assertEquals(0, rowsRejected.sum());
    // --sink none stores nothing.
    assertEquals(0, rowsWritten.sum());
  }

  @Test
  void aLoneRowIsSentByTheLingerTimer() throws InterruptedException {
    FlightForeachWriter writer = writer(1000, 200);
    writer.open(0, 1);
    writer.process(KafkaRows.userRow(1));
    // No further process() call: only the timer can send it.
    Eventually.until(() -> rowsIn.sum() == 1, this::seen);
    writer.close(null);
    assertEquals(1, rowsIn.sum());
  }

  @Test
  void aTaskWithoutRowsClosesCleanly() {
    FlightForeachWriter writer = writer(10, 100);
    writer.open(1, 2);
    writer.close(null);
    assertEquals(0, rowsIn.sum());
  }

  @Test
  void aCancelledTaskReleasesEverythingAlthoughItsThreadIsInterrupted() {
    FlightForeachWriter writer = writer(10, NO_LINGER_MS);
    writer.open(0, 6);
    for (long i = 0; i < 25; i++) {
      writer.process(KafkaRows.userRow(i));
    }
    RuntimeException killed = new RuntimeException("the task was cancelled");
    // Spark interrupts the thread of a task it cancels, then calls close() with the error.
    Thread.currentThread().interrupt();
    writer.close(killed);
    assertTrue(Thread.interrupted(), "close() must leave the task's interrupt set");
    // What failed to release (memory still in use: a leak) is attached to the task's error.
    assertArrayEquals(new Throwable[0], killed.getSuppressed());
  }

  @Test
  void malformedValuesAreCountedAsRejectedWithoutFailingTheTask() {
    FlightForeachWriter writer = writer(100, NO_LINGER_MS);
    writer.open(0, 3);
    for (long i = 0; i < 3; i++) {
      writer.process(KafkaRows.userRow(i));
    }
    writer.process(KafkaRows.row(3, "not json at all".getBytes(StandardCharsets.UTF_8)));
    writer.process(KafkaRows.row(4, "{\"gender\": \"female\", \"name\":".getBytes(StandardCharsets.UTF_8)));
    writer.close(null);
    assertEquals(5, rowsIn.sum());
    assertEquals(2, rowsRejected.sum());
  }

  @Test
  void timestampsMayComeAsInstants() {
    // spark.sql.datetime.java8API.enabled hands out java.time.Instant instead of Timestamp.
    FlightForeachWriter writer = writer(10, NO_LINGER_MS);
    writer.open(0, 4);
    writer.process(
        KafkaRows.of(null, KafkaRows.user(9), "users_created", 0, 9L, Instant.ofEpochMilli(1_700_000_000_009L), 0));
    writer.close(null);
    assertEquals(1, rowsIn.sum());
    assertEquals(0, rowsRejected.sum());
  }

  @Test
  void anUnknownPipelineFailsTheTaskNamingTheStream() {
    FlightForeachWriter writer = writer(serve.endpoint(), "no_such_pipeline", 10, NO_LINGER_MS, 5_000);
    writer.open(2, 5);
    // The service's error reaches the writer at some point after open(): the next process()
    // or close() throws it.
    ExchangeException error =
        assertThrows(
            ExchangeException.class,
            () -> {
              writer.process(KafkaRows.userRow(0));
              writer.close(null);
            });
    writer.close(error);
    String message = error.getMessage();
    assertTrue(message.contains(serve.endpoint()), message);
    assertTrue(message.contains("pipeline no_such_pipeline, epoch 5, partition 2, attempt 0"), message);
    // The service's own answer.
    assertTrue(message.contains("NOT_FOUND: unknown pipeline `no_such_pipeline`"), message);
  }

  @Test
  void anUnreachableEndpointFailsOpenNamingItAndTheAttempts() throws Exception {
    String nobody = "grpc://127.0.0.1:" + QuiverServe.freePort();
    FlightForeachWriter writer = writer(nobody, "users", 10, 100, 1_000);
    ExchangeException error = assertThrows(ExchangeException.class, () -> writer.open(0, 0));
    String message = error.getMessage();
    assertTrue(message.contains("the Flight service at " + nobody + " could not be reached"), message);
    assertTrue(message.contains("is `quiver serve` running there?"), message);
    Matcher attempts = Pattern.compile("in (\\d+) attempts over \\d+ ms").matcher(message);
    assertTrue(attempts.find(), message);
    assertTrue(Integer.parseInt(attempts.group(1)) > 1, message);
    // Spark calls close() after a failed open(): nothing is left to release.
    writer.close(error);
  }

  @Test
  void aTaskFailsOverToTheNextEndpointThatAnswers() throws Exception {
    String nobody = "grpc://127.0.0.1:" + QuiverServe.freePort();
    // Partition 0 starts at the first endpoint, where nothing listens.
    FlightForeachWriter writer = writer(nobody + "," + serve.endpoint(), "users", 1, 100, 5_000);
    writer.open(0, 4);
    writer.process(KafkaRows.userRow(0));
    writer.close(null);
    assertEquals(1, rowsIn.sum(), this::seen);

    String nobodyElse = "grpc://127.0.0.1:" + QuiverServe.freePort();
    FlightForeachWriter neither = writer(nobody + "," + nobodyElse, "users", 1, 100, 500);
    ExchangeException error = assertThrows(ExchangeException.class, () -> neither.open(1, 4));
    String message = error.getMessage();
    // Partition 1 started at the second endpoint.
    assertTrue(
        message.contains("none of the Flight services at " + nobodyElse + ", " + nobody + " could be reached"),
        message);
    assertTrue(message.contains(nobody + ": ") && message.contains(nobodyElse + ": "), message);
    neither.close(error);
  }

  @Test
  void badSettingsFailWhereTheWriterIsMade() {
    IllegalArgumentException error =
        assertThrows(IllegalArgumentException.class, () -> writer("http://127.0.0.1:1", "users", 10, 100, 0));
    assertTrue(error.getMessage().contains("must be grpc://host:port or grpc+tls://host:port"), error.getMessage());
    assertThrows(IllegalArgumentException.class, () -> writer(0, 100));
    IllegalArgumentException twice =
        assertThrows(
            IllegalArgumentException.class,
            () -> writer(serve.endpoint() + ", " + serve.endpoint(), "users", 10, 100, 0));
    assertTrue(twice.getMessage().contains("name one twice"), twice.getMessage());
  }
}
