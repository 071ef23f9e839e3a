"""quiver's Spark job: reads Kafka with Structured Streaming and hands every micro-batch,
as Arrow, to the Rust transformation service (over Arrow Flight, or in-process)."""
