package quiver.spark;

import java.sql.Timestamp;
import java.time.Instant;
import java.util.List;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.vector.BigIntVector;
import org.apache.arrow.vector.IntVector;
import org.apache.arrow.vector.TimeStampMilliTZVector;
import org.apache.arrow.vector.VarBinaryVector;
import org.apache.arrow.vector.VarCharVector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.types.TimeUnit;
import org.apache.arrow.vector.types.pojo.ArrowType;
import org.apache.arrow.vector.types.pojo.Field;
import org.apache.arrow.vector.types.pojo.Schema;
import org.apache.arrow.vector.util.Text;
import org.apache.spark.sql.Row;

/** Spark's Kafka rows as the Arrow record batch the service reads. Not thread-safe. */
final class KafkaBatch implements AutoCloseable {
  /** The service's input schema: the columns of Spark's Kafka source that it reads. */
  static final Schema SCHEMA =
      new Schema(
          List.of(
              Field.nullable("key", ArrowType.Binary.INSTANCE),
              Field.nullable("value", ArrowType.Binary.INSTANCE),
              Field.nullable("topic", ArrowType.Utf8.INSTANCE),
              Field.notNullable("partition", new ArrowType.Int(32, true)),
              Field.notNullable("offset", new ArrowType.Int(64, true)),
              Field.nullable("timestamp", new ArrowType.Timestamp(TimeUnit.MILLISECOND, "UTC"))));

  private final VectorSchemaRoot root;
  private final VarBinaryVector key;
  private final VarBinaryVector value;
  private final VarCharVector topic;
  private final IntVector partition;
  private final BigIntVector offset;
  private final TimeStampMilliTZVector timestamp;
  // Where the Kafka columns are in Spark's rows (the query may select more or reorder
  // them), looked up by name on the first row: every row of a query has the same schema.
  private int[] columns;
  private int rows;

  KafkaBatch(BufferAllocator allocator) {
    root = VectorSchemaRoot.create(SCHEMA, allocator);
    key = (VarBinaryVector) root.getVector("key");
    value = (VarBinaryVector) root.getVector("value");
    topic = (VarCharVector) root.getVector("topic");
    partition = (IntVector) root.getVector("partition");
    offset = (BigIntVector) root.getVector("offset");
    timestamp = (TimeStampMilliTZVector) root.getVector("timestamp");
    root.allocateNew();
  }

  /** The vectors that the Flight writer sends. */
  VectorSchemaRoot root() {
    return root;
  }

  int rows() {
    return rows;
  }

  void append(Row row) {
    if (columns == null) {
      columns = new int[SCHEMA.getFields().size()];
      for (int c = 0; c < columns.length; c++) {
        columns[c] = row.fieldIndex(SCHEMA.getFields().get(c).getName());
      }
    }
    int i = rows;
    setBytes(key, i, row, columns[0]);
    setBytes(value, i, row, columns[1]);
    if (row.isNullAt(columns[2])) {
      topic.setNull(i);
    } else {
      topic.setSafe(i, new Text(row.getString(columns[2])));
    }
    partition.setSafe(i, row.getInt(columns[3]));
    offset.setSafe(i, row.getLong(columns[4]));
    Object time = row.get(columns[5]);
    if (time == null) {
      timestamp.setNull(i);
    } else {
      timestamp.setSafe(i, epochMillis(time));
    }
    rows = i + 1;
  }

  /** Sets the vectors' value counts to the rows appended, before the batch is sent. */
  void seal() {
    root.setRowCount(rows);
  }

  /** Empties the batch after it was sent; the sent message keeps its own buffer references. */
  void clear() {
    root.allocateNew();
    rows = 0;
  }

  @Override
  public void close() {
    root.close();
  }

  private static void setBytes(VarBinaryVector vector, int i, Row row, int column) {
    if (row.isNullAt(column)) {
      vector.setNull(i);
    } else {
      vector.setSafe(i, (byte[]) row.get(column));
    }
  }

  // Spark hands out java.sql.Timestamp, or java.time.Instant with
  // spark.sql.datetime.java8API.enabled.
  private static long epochMillis(Object time) {
    if (time instanceof Timestamp t) {
      return t.getTime();
    }
    if (time instanceof Instant t) {
      return t.toEpochMilli();
    }
    throw new IllegalArgumentException(
        "the timestamp column holds a " + time.getClass().getName() + ", not a timestamp");
  }
}
