package quiver.spark;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Map;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.spark.util.LongAccumulator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The service dies (SIGKILL) in the middle of a task's stream: the task must fail. */
class ServiceKilledTest {
  // Replaced by a test that restarts the service; the last one is stopped after each test.
  private volatile QuiverServe serve;
  private final LongAccumulator rowsIn = new LongAccumulator();

  @BeforeEach
  void startService() throws Exception {
    serve = QuiverServe.start(Map.of());
  }

  @AfterEach
  void stopService() throws InterruptedException {
    serve.stop();
  }

  private FlightForeachWriter writer(int maxRows, long lingerMs) {
    return writer(maxRows, lingerMs, 1_000);
  }

  private FlightForeachWriter writer(int maxRows, long lingerMs, long connectRetryMs) {
    return new FlightForeachWriter(
        serve.endpoint(), "users", null, null, maxRows, lingerMs, connectRetryMs, 30_000, 256 << 20, rowsIn,
        null, null);
  }

  private void assertNamesTheStream(ExchangeException error) {
    String message = error.getMessage();
    assertTrue(message.contains(serve.endpoint() + " (pipeline users, epoch 5, partition 2, attempt 0)"), message);
  }

  @Test
  void processThrowsOnceTheServiceIsGone() throws InterruptedException {
    FlightForeachWriter writer = writer(1, 600_000);
    writer.open(2, 5);
    writer.process(KafkaRows.userRow(0));
    Eventually.until(() -> rowsIn.sum() == 1, () -> "no acknowledgement; service log:\n" + serve.logTail());
    serve.kill();
    // Each row is a batch of its own; the stream's failure reaches the writer shortly.
    ExchangeException error = null;
    long deadline = System.nanoTime() + 60_000_000_000L;
    for (long i = 1; error == null && System.nanoTime() < deadline; i++) {
      try {
        writer.process(KafkaRows.userRow(i));
        Thread.sleep(20);
      } catch (ExchangeException e) {
        error = e;
      }
    }
    assertTrue(error != null, "process() kept taking rows for 60 s after the service was killed");
    assertNamesTheStream(error);
    // What Spark does next: close() with the error cancels and releases without throwing.
    writer.close(error);
  }

  @Test
  void theNextTaskReachesTheServiceRestartedOnItsPort() throws Exception {
    // A first task leaves its Flight client to the executor's next tasks.
    FlightForeachWriter first = writer(1000, 600_000);
    first.open(0, 1);
    first.process(KafkaRows.userRow(0));
    first.close(null);
    serve.kill();
    // The next task starts while the service is down, and must reach it once it is back on the
    // same port, not keep the client that lost it.
    int port = serve.flightPort;
    AtomicReference<Exception> restartFailed = new AtomicReference<>();
    Thread restart =
        new Thread(
            () -> {
              try {
                Thread.sleep(1_500);
                serve = QuiverServe.start(Map.of(), port);
              } catch (Exception e) {
                restartFailed.set(e);
              }
            });
    restart.start();
    FlightForeachWriter second = writer(1000, 600_000, 30_000);
    try {
      second.open(0, 2);
      second.process(KafkaRows.userRow(1));
      second.close(null);
    } finally {
      restart.join();
    }
    assertNull(restartFailed.get());
    assertEquals(2, rowsIn.sum());
  }

  @Test
  void closeThrowsWhenTheServiceDiedWithRowsUnacknowledged() throws InterruptedException {
    FlightForeachWriter writer = writer(1000, 600_000);
    writer.open(2, 5);
    writer.process(KafkaRows.userRow(0));
    serve.kill();
    ExchangeException error = assertThrows(ExchangeException.class, () -> writer.close(null));
    assertNamesTheStream(error);
  }
}
