"""The baseline of `scripts/bench e2e`: the streaming job as the original tutorials
build it, done properly. Spark parses the Kafka values with from_json and maps them with
select; each micro-batch is written from the executors with the Python Cassandra driver
(prepared INSERTs, concurrent execution, one session per Python worker), since the Spark
Cassandra connector has no Spark 4 release. Same table and columns as quiver's pipeline,
so the two runs are measured the same way.

    scripts/spark-submit scripts/quiver_dev/bench/seed_job.py --topic T --keyspace K [--trigger '0 seconds']
"""

from __future__ import annotations

import argparse
import sys

# Only the fields the mapping reads: from_json skips the rest.
USER_SCHEMA = """
    gender STRING,
    name STRUCT<first: STRING, last: STRING>,
    location STRUCT<street: STRUCT<number: BIGINT, name: STRING>, city: STRING, state: STRING,
                    country: STRING, postcode: STRING>,
    email STRING,
    login STRUCT<uuid: STRING, username: STRING>,
    dob STRUCT<date: STRING>,
    registered STRUCT<date: STRING>,
    phone STRING,
    picture STRUCT<medium: STRING>
"""

COLUMNS = [
    "id",
    "first_name",
    "last_name",
    "gender",
    "address",
    "post_code",
    "email",
    "username",
    "dob",
    "registered_date",
    "phone",
    "picture",
    "kafka_partition",
    "kafka_offset",
    "event_time",
    "processed_at",
]


def users_select(kafka):
    """pipelines/users.sql in Spark: the Kafka frame's value parsed with from_json and mapped
    with select to the columns of `created_users` but processed_at, which the writer stamps.
    `kafka` has the Kafka source's columns (value binary, partition, offset, timestamp)."""
    from pyspark.sql import functions as F

    user = F.from_json(F.col("value").cast("string"), USER_SCHEMA)
    timestamp = "yyyy-MM-dd'T'HH:mm:ss.SSSX"
    return kafka.select(user.alias("u"), "partition", "offset", "timestamp").select(
        F.col("u.login.uuid").alias("id"),
        F.col("u.name.first").alias("first_name"),
        F.col("u.name.last").alias("last_name"),
        F.col("u.gender").alias("gender"),
        F.concat_ws(
            ", ",
            F.concat_ws(" ", F.col("u.location.street.number").cast("string"), F.col("u.location.street.name")),
            F.col("u.location.city"),
            F.col("u.location.state"),
            F.col("u.location.country"),
        ).alias("address"),
        F.col("u.location.postcode").alias("post_code"),
        F.col("u.email").alias("email"),
        F.col("u.login.username").alias("username"),
        F.to_timestamp(F.col("u.dob.date"), timestamp).alias("dob"),
        F.to_timestamp(F.col("u.registered.date"), timestamp).alias("registered_date"),
        F.col("u.phone").alias("phone"),
        F.col("u.picture.medium").alias("picture"),
        F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"),
        F.col("timestamp").alias("event_time"),
    )


_session = {}


def _cassandra(nodes: list[str], keyspace: str):
    """One session and prepared statement per Python worker, reused across tasks."""
    key = (tuple(nodes), keyspace)
    if key not in _session:
        from cassandra.cluster import Cluster

        host, port = nodes[0].rsplit(":", 1)
        cluster = Cluster([host], port=int(port))
        session = cluster.connect(keyspace)
        # written_at: Cassandra's clock when it executes the INSERT, the point to which
        # every variant of the benchmark measures latency.
        insert = session.prepare(
            f"INSERT INTO created_users ({', '.join(COLUMNS)}, written_at) "
            f"VALUES ({', '.join('?' * len(COLUMNS))}, currentTimestamp())"
        )
        _session[key] = (session, insert)
    return _session[key]


def create_table(nodes: list[str], keyspace: str) -> None:
    from cassandra.cluster import Cluster

    host, port = nodes[0].rsplit(":", 1)
    cluster = Cluster([host], port=int(port))
    try:
        session = cluster.connect()
        session.execute(
            f"CREATE KEYSPACE IF NOT EXISTS {keyspace} "
            "WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}"
        )
        session.execute(
            f"CREATE TABLE IF NOT EXISTS {keyspace}.created_users (id uuid PRIMARY KEY, first_name text, "
            "last_name text, gender text, address text, post_code text, email text, username text, "
            "dob timestamp, registered_date timestamp, phone text, picture text, kafka_partition int, "
            "kafka_offset bigint, event_time timestamp, processed_at timestamp, written_at timestamp)"
        )
    finally:
        cluster.shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap-servers", default="127.0.0.1:9092")
    parser.add_argument("--topic", required=True)
    parser.add_argument("--cassandra-nodes", default="127.0.0.1:9042")
    parser.add_argument("--keyspace", required=True)
    parser.add_argument("--checkpoint-location", required=True)
    parser.add_argument("--trigger", default="0 seconds", help="processing-time interval, or available-now")
    parser.add_argument("--max-offsets-per-trigger", type=int, default=200000)
    parser.add_argument("--concurrency", type=int, default=256, help="concurrent INSERTs per task")
    args = parser.parse_args(argv)
    nodes = args.cassandra_nodes.split(",")
    create_table(nodes, args.keyspace)

    from pyspark.sql import SparkSession

    spark = SparkSession.builder.appName("quiver-bench-seed-job").getOrCreate()
    frame = users_select(
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", args.bootstrap_servers)
        .option("subscribe", args.topic)
        .option("startingOffsets", "earliest")
        .option("maxOffsetsPerTrigger", args.max_offsets_per_trigger)
        .load()
    )
    nodes_, keyspace, concurrency = nodes, args.keyspace, args.concurrency

    def write_partition(rows) -> None:
        import datetime as dt
        import uuid

        from cassandra.concurrent import execute_concurrent_with_args

        session, insert = _cassandra(nodes_, keyspace)
        # processed_at is stamped as each row's INSERT is handed to the driver (the values
        # are a generator, consumed as the concurrent execution goes), not once before the
        # partition is read.
        values = ((uuid.UUID(r.id), *r[1:], dt.datetime.now(dt.timezone.utc)) for r in rows if r.id)
        execute_concurrent_with_args(session, insert, values, concurrency=concurrency, raise_on_first_error=True)

    def write_batch(batch, _batch_id: int) -> None:
        batch.foreachPartition(write_partition)

    writer = (
        frame.writeStream.queryName("quiver_bench_seed_job")
        .option("checkpointLocation", args.checkpoint_location)
        .foreachBatch(write_batch)
    )
    writer = (
        writer.trigger(availableNow=True)
        if args.trigger == "available-now"
        else writer.trigger(processingTime=args.trigger)
    )
    query = writer.start()
    query.awaitTermination()
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
