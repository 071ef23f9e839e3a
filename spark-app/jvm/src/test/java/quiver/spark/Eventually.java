package quiver.spark;

import static org.junit.jupiter.api.Assertions.fail;

import java.util.function.BooleanSupplier;
import java.util.function.Supplier;

/** Polling with a generous deadline: the tests wait for things to happen, never time them. */
final class Eventually {
  private static final long DEADLINE_MS = 60_000;

  private Eventually() {}

  static void until(BooleanSupplier condition, Supplier<String> whatWasSeen) throws InterruptedException {
    long deadline = System.nanoTime() + DEADLINE_MS * 1_000_000;
    while (!condition.getAsBoolean()) {
      if (System.nanoTime() > deadline) {
        fail("not within " + DEADLINE_MS + " ms: " + whatWasSeen.get());
      }
      Thread.sleep(20);
    }
  }
}
