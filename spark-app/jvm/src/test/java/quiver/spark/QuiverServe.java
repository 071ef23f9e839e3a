package quiver.spark;

import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * A real {@code quiver serve --sink none} as a child process on free loopback ports, once its
 * /healthz answers; stopped by its Process handle (stop(), kill()). Mirrors scripts/quiver_dev/serve_process.py.
 */
final class QuiverServe {
  private static final Duration STARTUP = Duration.ofSeconds(60);

  final Process process;
  final int flightPort;
  final Path log;

  private QuiverServe(Process process, int flightPort, Path log) {
    this.process = process;
    this.flightPort = flightPort;
    this.log = log;
  }

  /** The binary from -Dquiver.bin or $QUIVER_BIN; a missing one fails the tests, loudly. */
  static Path binary() {
    String configured = System.getProperty("quiver.bin", System.getenv("QUIVER_BIN"));
    if (configured == null || configured.isEmpty()) {
      throw new IllegalStateException(
          "these tests run a real `quiver serve`: set QUIVER_BIN to the quiver binary, e.g."
              + " QUIVER_BIN=$HOME/.cache/quiver/target/debug/quiver mvn test"
              + " (scripts/test sets it; build it with cargo build -p quiver)");
    }
    Path binary = Path.of(configured);
    if (!Files.isExecutable(binary)) {
      throw new IllegalStateException(
          "QUIVER_BIN is " + binary + ", which is not an executable file: build it with cargo build -p quiver");
    }
    return binary;
  }

  /** Starts the service with these QUIVER_* settings (e.g. QUIVER_TOKEN) in its environment. */
  static QuiverServe start(Map<String, String> settings) throws IOException, InterruptedException {
    return start(settings, freePort());
  }

  /** ... with its Flight service on this port, e.g. that of a service that was killed. */
  static QuiverServe start(Map<String, String> settings, int flightPort)
      throws IOException, InterruptedException {
    int httpPort = freePort();
    List<String> argv = new ArrayList<>();
    argv.add(binary().toString());
    argv.addAll(
        List.of(
            "serve",
            "--sink",
            "none",
            "--flight-listen",
            "127.0.0.1:" + flightPort,
            "--http-listen",
            "127.0.0.1:" + httpPort));
    // Under target/ (the tests run in the module's folder), kept for a look after a failure.
    Path logs = Files.createDirectories(Path.of("target", "quiver-serve"));
    Path log = Files.createTempFile(logs, "serve-" + flightPort + "-", ".log");
    ProcessBuilder builder = new ProcessBuilder(argv).redirectErrorStream(true).redirectOutput(log.toFile());
    // Only the settings of the test: none inherited from the shell (scripts/test's stack env).
    builder.environment().keySet().removeIf(name -> name.startsWith("QUIVER_"));
    builder.environment().putAll(settings);
    QuiverServe serve = new QuiverServe(builder.start(), flightPort, log);
    try {
      serve.awaitHealthy(httpPort);
    } catch (InterruptedException | RuntimeException e) {
      serve.stop();
      throw e;
    }
    return serve;
  }

  String endpoint() {
    return "grpc://127.0.0.1:" + flightPort;
  }

  /** The end of the service's output, for assertion messages. */
  String logTail() {
    try {
      String text = Files.readString(log);
      return text.substring(Math.max(0, text.length() - 3000));
    } catch (IOException e) {
      return "(no log: " + e + ")";
    }
  }

  /** SIGKILL: the service vanishes mid-stream, as in a crash. */
  void kill() throws InterruptedException {
    process.destroyForcibly();
    process.waitFor();
  }

  /** SIGTERM, then SIGKILL if it has not exited within 30 s. */
  void stop() throws InterruptedException {
    process.destroy();
    if (!process.waitFor(30, TimeUnit.SECONDS)) {
      process.destroyForcibly();
      process.waitFor();
    }
  }

  private void awaitHealthy(int httpPort) throws InterruptedException {
    HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(1)).build();
    HttpRequest healthz =
        HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + httpPort + "/healthz"))
            .timeout(Duration.ofSeconds(1))
            .build();
    long deadline = System.nanoTime() + STARTUP.toNanos();
    String last = "no answer yet";
    while (true) {
      if (!process.isAlive()) {
        throw new IllegalStateException(
            "quiver serve exited with " + process.exitValue() + ":\n" + logTail());
      }
      try {
        int status = http.send(healthz, HttpResponse.BodyHandlers.discarding()).statusCode();
        if (status == 200) {
          return;
        }
        last = "HTTP " + status;
      } catch (IOException e) {
        last = e.toString();
      }
      if (System.nanoTime() > deadline) {
        throw new IllegalStateException(
            "quiver serve did not answer /healthz within " + STARTUP + " (" + last + "):\n" + logTail());
      }
      Thread.sleep(100);
    }
  }

  static int freePort() throws IOException {
    try (ServerSocket socket = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
      return socket.getLocalPort();
    }
  }
}
