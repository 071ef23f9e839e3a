package quiver.spark;

import java.io.Serializable;
import java.net.URI;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * Where and how a task sends its rows; small and serializable, shipped to the executors
 * inside the writer.
 *
 * @param endpoints one or more services, each {@code grpc://host:port} or {@code
 *     grpc+tls://host:port}: a task starts at one chosen by its partition and fails over to the
 *     next that answers
 * @param pipeline the service's pipeline that runs the rows
 * @param token bearer token sent as {@code authorization: Bearer <token>}, or null
 * @param tlsCaPem PEM of the CA that signed the service's certificate, or null for the
 *     JVM's trusted CAs (used with grpc+tls:// only)
 * @param maxRows rows per record batch
 * @param lingerMs longest time a row waits in a batch that is not full
 * @param connectRetryMs how long open() retries a service that cannot be reached
 * @param ackTimeoutMs how long close() waits for the outstanding acknowledgements, and
 *     process() for a service that takes no more data
 * @param maxMessageBytes largest gRPC message accepted from the service
 */
record Target(
    List<String> endpoints,
    String pipeline,
    String token,
    String tlsCaPem,
    int maxRows,
    long lingerMs,
    long connectRetryMs,
    long ackTimeoutMs,
    int maxMessageBytes)
    implements Serializable {

  private static final long serialVersionUID = 1L;
  private static final Set<String> SCHEMES = Set.of("grpc", "grpc+tcp", "grpc+tls");

  // Checked where the writer is made, on the driver, so that a mistake fails the query at once
  // rather than every task.
  Target {
    require(endpoints != null && !endpoints.isEmpty(), "at least one endpoint is required");
    endpoints = List.copyOf(endpoints);
    require(
        new HashSet<>(endpoints).size() == endpoints.size(),
        "endpoints " + endpoints + " name one twice");
    for (String endpoint : endpoints) {
      String scheme = URI.create(endpoint).getScheme();
      require(
          scheme != null && SCHEMES.contains(scheme),
          "endpoint " + endpoint + " must be grpc://host:port or grpc+tls://host:port");
      require(
          tlsCaPem == null || scheme.equals("grpc+tls"),
          "a TLS CA certificate was given for " + endpoint + ", which is not grpc+tls://");
    }
    require(pipeline != null && !pipeline.isEmpty(), "pipeline is required");
    require(maxRows > 0, "maxRows must be positive, got " + maxRows);
    require(lingerMs > 0, "lingerMs must be positive, got " + lingerMs);
    require(connectRetryMs >= 0, "connectRetryMs must not be negative, got " + connectRetryMs);
    require(ackTimeoutMs > 0, "ackTimeoutMs must be positive, got " + ackTimeoutMs);
    require(maxMessageBytes > 0, "maxMessageBytes must be positive, got " + maxMessageBytes);
  }

  /** Endpoints from a comma-separated list, as the PySpark job passes them. */
  static List<String> endpointList(String commaSeparated) {
    List<String> endpoints = new ArrayList<>();
    for (String endpoint : commaSeparated.split(",")) {
      if (!endpoint.isBlank()) {
        endpoints.add(endpoint.strip());
      }
    }
    return endpoints;
  }

  /**
   * The endpoints in the order a task tries them: partitions spread over the services, and a
   * retried task starts at the next one.
   */
  List<String> order(int partition, int attempt) {
    int first = Math.floorMod(partition + attempt, endpoints.size());
    List<String> order = new ArrayList<>(endpoints.subList(first, endpoints.size()));
    order.addAll(endpoints.subList(0, first));
    return order;
  }

  private static void require(boolean condition, String message) {
    if (!condition) {
      throw new IllegalArgumentException(message);
    }
  }
}
