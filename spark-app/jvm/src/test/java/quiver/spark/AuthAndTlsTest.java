package quiver.spark;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.apache.spark.util.LongAccumulator;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A service that speaks TLS only and wants a bearer token, as a secured deployment runs it. */
class AuthAndTlsTest {
  private static final String TOKEN = "jvm-writer-token-123";

  @TempDir static Path certificates;
  private static QuiverServe serve;
  private static String caPem;

  @BeforeAll
  static void startService() throws Exception {
    makeCertificates(certificates);
    caPem = Files.readString(certificates.resolve("ca.pem"));
    serve =
        QuiverServe.start(
            Map.of(
                "QUIVER_TOKEN", TOKEN,
                "QUIVER_TLS_CERT_FILE", certificates.resolve("server.pem").toString(),
                "QUIVER_TLS_KEY_FILE", certificates.resolve("server.key").toString()));
  }

  @AfterAll
  static void stopService() throws InterruptedException {
    if (serve != null) {
      serve.stop();
    }
  }

  private static String endpoint() {
    return "grpc+tls://127.0.0.1:" + serve.flightPort;
  }

  private static FlightForeachWriter writer(String token, LongAccumulator rowsIn) {
    return new FlightForeachWriter(
        endpoint(), "users", token, caPem, 100, 100, 2_000, 30_000, 256 << 20, rowsIn, null, null);
  }

  @Test
  void theRightTokenOverTlsIsAcknowledged() {
    LongAccumulator rowsIn = new LongAccumulator();
    FlightForeachWriter writer = writer(TOKEN, rowsIn);
    writer.open(0, 1);
    for (long i = 0; i < 3; i++) {
      writer.process(KafkaRows.userRow(i));
    }
    writer.close(null);
    assertEquals(3, rowsIn.sum());
  }

  @Test
  void aWrongTokenFailsOpenWithTheServicesReason() {
    FlightForeachWriter writer = writer("not-the-token", null);
    ExchangeException error = assertThrows(ExchangeException.class, () -> writer.open(0, 2));
    String message = error.getMessage();
    assertTrue(message.contains(endpoint() + " (pipeline users, epoch 2, partition 0, attempt 0)"), message);
    assertTrue(message.contains("UNAUTHENTICATED: the bearer token is wrong"), message);
  }

  @Test
  void noTokenFailsOpenSayingOneIsNeeded() {
    FlightForeachWriter writer = writer(null, null);
    ExchangeException error = assertThrows(ExchangeException.class, () -> writer.open(0, 3));
    assertTrue(error.getMessage().contains("UNAUTHENTICATED: this server needs `authorization: Bearer <token>`"), error.getMessage());
  }

  /** ca.pem, and server.pem/server.key for 127.0.0.1 signed by it (openssl CLI). */
  private static void makeCertificates(Path folder) throws IOException, InterruptedException {
    Files.writeString(
        folder.resolve("ext.cnf"), "subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n");
    String ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes ";
    openssl(folder, "req -x509 " + ec + "-keyout ca.key -out ca.pem -days 1 -subj /CN=quiver-test-CA");
    openssl(folder, "req " + ec + "-keyout server.key -out server.csr -subj /CN=127.0.0.1");
    openssl(
        folder,
        "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 1"
            + " -extfile ext.cnf");
  }

  private static void openssl(Path folder, String args) throws IOException, InterruptedException {
    List<String> argv = new ArrayList<>(List.of("openssl"));
    argv.addAll(List.of(args.split(" ")));
    Process process = new ProcessBuilder(argv).directory(folder.toFile()).redirectErrorStream(true).start();
    String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    if (process.waitFor() != 0) {
      throw new IllegalStateException(String.join(" ", argv) + " failed:\n" + output);
    }
  }
}
