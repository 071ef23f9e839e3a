package quiver.spark;

/**
 * The service did not take a task's rows: the task fails and Spark retries it. The sink
 * upserts by primary key, so a retried task writes the same rows again and nothing twice.
 */
public final class ExchangeException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  ExchangeException(String message) {
    super(message);
  }

  ExchangeException(String message, Throwable cause) {
    super(message, cause);
  }
}
