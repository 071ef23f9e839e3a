"""Counts the records of a Kafka topic with Spark's Kafka connector and checks the count.

Submitted by the smoke test to the standalone master; exits 1 when the count differs, so
a wrong connector, a wrong bootstrap address or a lost message fails the test.
"""

import argparse
import sys

from pyspark.sql import SparkSession
from pyspark.sql import functions as F


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap-servers", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--expect", type=int, required=True)
    args = parser.parse_args()

    spark = SparkSession.builder.appName("quiver-smoke-kafka-count").getOrCreate()
    frame = (
        spark.read.format("kafka")
        .option("kafka.bootstrap.servers", args.bootstrap_servers)
        .option("subscribe", args.topic)
        .option("startingOffsets", "earliest")
        .option("endingOffsets", "latest")
        .load()
    )
    # Distinct keys prove the records were read, not just counted from offsets.
    row = frame.agg(F.count("*").alias("n"), F.countDistinct("key").alias("keys")).first()
    master = spark.sparkContext.master
    spark.stop()
    print(f"read {row.n} records with {row.keys} distinct keys from {args.topic} on {master}")
    return 0 if row.n == args.expect and row.keys == args.expect else 1


if __name__ == "__main__":
    sys.exit(main())
