"""The benchmarks, each a module run by `scripts/bench NAME` as `python -m quiver_dev.bench.NAME`.
seed_job and spark_floor are Spark applications: spark-submit runs their files."""
