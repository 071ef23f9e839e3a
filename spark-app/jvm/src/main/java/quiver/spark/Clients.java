package quiver.spark;

import java.io.ByteArrayInputStream;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Map;
import org.apache.arrow.flight.FlightClient;
import org.apache.arrow.flight.Location;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;

/**
 * The Flight clients of this JVM (a Spark executor), one per service and connection settings,
 * kept from one task to the next. In real-time mode every checkpoint interval ends a batch's
 * tasks and starts the next batch's, while the stream stands still; a new client per task added
 * a gRPC channel, its connection and, once gRPC had freed its idle event loop (a second after
 * the last channel closed), new Netty threads to that pause. The tasks that run at the same time
 * share a client; a client that failed to reach its service is dropped, and closed once the last
 * task using it has let go.
 */
final class Clients {
  // The clients' memory for incoming messages, and the parent of each task's own allocator. It
  // lives as long as the JVM: a task's child allocator is what finds a task's leaks.
  private static final BufferAllocator ROOT = new RootAllocator();

  private record Key(String endpoint, String tlsCaPem, int maxMessageBytes) {}

  /** A client in the pool; guarded by {@code Clients.class}. */
  private static final class Entry {
    final FlightClient client;
    final String endpoint;
    int users;
    boolean dropped;

    Entry(FlightClient client, String endpoint) {
      this.client = client;
      this.endpoint = endpoint;
    }
  }

  private static final Map<Key, Entry> POOL = new HashMap<>();

  private Clients() {}

  /** A task's use of a shared client; closing it lets go of the client. */
  static final class Lease implements AutoCloseable {
    private final Entry entry;
    private boolean closed;

    private Lease(Entry entry) {
      this.entry = entry;
    }

    FlightClient client() {
      return entry.client;
    }

    String endpoint() {
      return entry.endpoint;
    }

    /** The service did not answer on this client: later tasks get a new one. */
    void drop() {
      synchronized (Clients.class) {
        entry.dropped = true;
        POOL.values().remove(entry);
      }
    }

    @Override
    public void close() {
      synchronized (Clients.class) {
        if (closed) {
          return;
        }
        closed = true;
        entry.users--;
        if (!entry.dropped || entry.users > 0) {
          return;
        }
      }
      try {
        entry.client.close();
      } catch (InterruptedException e) {
        // Closing waits for the channel to end; an interrupted task still lets go of it.
        Thread.currentThread().interrupt();
      }
    }
  }

  /** An allocator for one task's buffers, which must all be freed when it is closed. */
  static BufferAllocator taskAllocator(String name) {
    return ROOT.newChildAllocator(name, 0, Long.MAX_VALUE);
  }

  /** The pooled client for the service at {@code endpoint} with {@code target}'s settings. */
  static synchronized Lease lease(Target target, String endpoint) {
    Key key = new Key(endpoint, target.tlsCaPem(), target.maxMessageBytes());
    Entry entry = POOL.computeIfAbsent(key, k -> new Entry(newClient(target, endpoint), endpoint));
    entry.users++;
    return new Lease(entry);
  }

  private static FlightClient newClient(Target target, String endpoint) {
    FlightClient.Builder builder =
        FlightClient.builder(ROOT, new Location(URI.create(endpoint)))
            .maxInboundMessageSize(target.maxMessageBytes());
    if (target.tlsCaPem() != null) {
      builder.trustedCertificates(
          new ByteArrayInputStream(target.tlsCaPem().getBytes(StandardCharsets.US_ASCII)));
    }
    return builder.build();
  }
}
