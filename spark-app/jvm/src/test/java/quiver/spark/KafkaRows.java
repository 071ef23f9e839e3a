package quiver.spark;

import java.nio.charset.StandardCharsets;
import java.sql.Timestamp;
import java.util.List;
import org.apache.spark.sql.Row;

/**
 * Rows as Spark's Kafka source hands them to a ForeachWriter (there a GenericRowWithSchema),
 * with randomuser-shaped values. A Row with a StructType would need Spark's catalyst module and
 * ICU on the test classpath; the writer needs of a Row only its values and fieldIndex().
 */
final class KafkaRows {
  /** The Kafka source's columns, in its order (the writer takes the columns by name). */
  private static final List<String> COLUMNS =
      List.of("key", "value", "topic", "partition", "offset", "timestamp", "timestampType");

  private KafkaRows() {}

  /** A Row of Kafka's columns, in that order. */
  static Row of(Object... values) {
    return new KafkaRow(values);
  }

  static Row row(long offset, byte[] value) {
    byte[] key = String.format("00000000-0000-4000-8000-%012d", offset).getBytes(StandardCharsets.UTF_8);
    return of(key, value, "users_created", 0, offset, new Timestamp(1_700_000_000_000L + offset), 0);
  }

  /** A user as randomuser.me returns it (tests/python/records.py), as the Kafka value. */
  static byte[] user(long i) {
    String nat = i % 2 == 0 ? "DE" : "NO";
    String postcode = nat.equals("NO") ? "\"0150\"" : "12345";
    String json =
        """
        {"gender": "female",
         "name": {"title": "Ms", "first": "Zoë%1$d", "last": "Ødegård"},
         "location": {"street": {"number": %2$d, "name": "Kirkegata"}, "city": "Oslo",
                      "state": "Østfold", "country": "Norway", "postcode": %3$s,
                      "coordinates": {"latitude": "59.9", "longitude": "10.7"},
                      "timezone": {"offset": "+1:00", "description": "Oslo"}},
         "email": "u%1$d@example.com",
         "login": {"uuid": "00000000-0000-4000-8000-%1$012d", "username": "user%1$d"},
         "dob": {"date": "1990-02-03T04:05:06.789Z", "age": 34},
         "registered": {"date": "2015-06-07T08:09:10.111Z", "age": 9},
         "phone": "22 33 44 55", "cell": "99 88 77 66",
         "id": {"name": "FN", "value": null},
         "picture": {"large": "l.jpg", "medium": "m%1$d.jpg", "thumbnail": "t.jpg"},
         "nat": "%4$s"}
        """
            .formatted(i, 10 + i, postcode, nat);
    return json.getBytes(StandardCharsets.UTF_8);
  }

  /** Row {@code i}: user {@code i} at offset {@code i}. */
  static Row userRow(long i) {
    return row(i, user(i));
  }

  private static final class KafkaRow implements Row {
    private static final long serialVersionUID = 1L;
    private final Object[] values;

    KafkaRow(Object[] values) {
      this.values = values.clone();
    }

    @Override
    public int length() {
      return values.length;
    }

    @Override
    public Object get(int i) {
      return values[i];
    }

    @Override
    public int fieldIndex(String name) {
      int i = COLUMNS.indexOf(name);
      if (i < 0) {
        throw new IllegalArgumentException(name + " is not one of " + COLUMNS);
      }
      return i;
    }

    @Override
    public Row copy() {
      return new KafkaRow(values);
    }
  }
}
