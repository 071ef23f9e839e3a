package quiver.spark;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Map;
import org.apache.spark.util.LongAccumulator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The service dies (SIGKILL) in the middle of a task's stream: the task must fail. */
class ServiceKilledTest {
  private QuiverServe serve;
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
    return new FlightForeachWriter(
        serve.endpoint(), "users", null, null, maxRows, lingerMs, 1_000, 30_000, 256 << 20, rowsIn, null, null);
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
  void closeThrowsWhenTheServiceDiedWithRowsUnacknowledged() throws InterruptedException {
    FlightForeachWriter writer = writer(1000, 600_000);
    writer.open(2, 5);
    writer.process(KafkaRows.userRow(0));
    serve.kill();
    ExchangeException error = assertThrows(ExchangeException.class, () -> writer.close(null));
    assertNamesTheStream(error);
  }
}
