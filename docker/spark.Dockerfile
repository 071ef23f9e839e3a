# Spark standalone (master, workers) and the streaming job's driver: Apache Spark from the
# official apache/spark image, Spark's Kafka connector, the Python packages the executors
# need (versions from scripts/requirements.txt), quiver's Python module (the job's
# in-process engine), the job's JVM writer (real-time mode) and spark-app/ with its proto
# bindings.
# Build from the repository root: docker build -f docker/spark.Dockerfile -t quiver-spark:0.1.0 .

# The connector jars, resolved by the same POM as scripts/setup's.
FROM maven:3.9.11-eclipse-temurin-17 AS connector
WORKDIR /build
COPY scripts/versions.env scripts/maven/settings.xml scripts/maven/spark-kafka.xml ./
RUN . ./versions.env \
    && mvn -B -q -s settings.xml -f spark-kafka.xml dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory=/jars \
        -Dspark.version="$SPARK_VERSION" -Dscala.binary.version="$SCALA_BINARY_VERSION"

# The job's JVM writer for real-time mode (spark-app/jvm), built as scripts/setup builds it.
FROM maven:3.9.11-eclipse-temurin-17 AS writer
WORKDIR /build
COPY scripts/maven/settings.xml ./
COPY proto proto
COPY spark-app/jvm spark-app/jvm
RUN mvn -B -q -s settings.xml -f spark-app/jvm/pom.xml package -DskipTests \
    && cp spark-app/jvm/target/quiver-spark-writer.jar /quiver-spark-writer.jar

# proto/quiver.proto's Python bindings, as scripts/gen-proto makes them.
FROM python:3.11.14-slim-bookworm AS proto
WORKDIR /build
COPY scripts/requirements.txt proto/quiver.proto ./
RUN grep -E '^(grpcio-tools|protobuf)==' requirements.txt > pins.txt \
    && pip install --no-cache-dir -r pins.txt \
    && mkdir /out \
    && python -m grpc_tools.protoc -I . --python_out=/out --pyi_out=/out quiver.proto

# quiver's Python module (rust/quiver-py), built by maturin as scripts/setup builds it.
FROM rust:1.95.0-slim-bookworm AS module
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends g++ make python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY scripts/requirements.txt ./
RUN grep -E '^maturin==' requirements.txt > maturin.txt \
    && python3 -m venv /opt/maturin \
    && /opt/maturin/bin/pip install --no-cache-dir -r maturin.txt
COPY Cargo.toml Cargo.lock ./
COPY rust rust
COPY proto proto
COPY pipelines pipelines
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    /opt/maturin/bin/maturin build --release --locked -m rust/quiver-py/Cargo.toml -o /wheels

FROM apache/spark:4.2.0-scala2.13-java17-ubuntu AS spark

# The official image's Python is Ubuntu 22.04's 3.10, which the pinned pyarrow and numpy
# do not support and which would differ from Airflow's: PySpark refuses executors whose
# Python minor version differs from the driver's. So Spark runs on the project's Python.
FROM python:3.11.14-slim-bookworm
# Debian's slim images drop the man folders that the JRE's install scripts link into.
# hadolint ignore=DL3008
RUN mkdir -p /usr/share/man/man1 \
    && apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless procps \
    && rm -rf /var/lib/apt/lists/*
COPY scripts/requirements.txt /tmp/requirements.txt
COPY --from=module /wheels/ /tmp/wheels/
RUN grep -E '^(pyarrow|pandas|numpy|protobuf)==' /tmp/requirements.txt > /tmp/executor.txt \
    && pip install --no-cache-dir -r /tmp/executor.txt /tmp/wheels/quiver-*.whl \
    && rm -r /tmp/requirements.txt /tmp/executor.txt /tmp/wheels
# The uid of the official image's spark user, so files it owns keep their owner.
RUN useradd --system --uid 185 --gid 0 --home-dir /opt/spark --shell /bin/bash spark \
    && mkdir -p /var/lib/quiver/checkpoints \
    && chown spark:0 /var/lib/quiver/checkpoints
COPY --from=spark --chown=spark:0 /opt/spark /opt/spark
COPY --from=connector /jars/ /opt/spark/jars/
COPY --from=writer /quiver-spark-writer.jar /opt/spark/jars/
COPY docker/spark-defaults.conf /opt/spark/conf/spark-defaults.conf
COPY monitoring/spark/metrics.properties /opt/spark/conf/metrics.properties
COPY docker/spark_health.py /opt/quiver/spark_health.py
COPY spark-app /opt/quiver/spark-app
COPY --from=proto /out/ /opt/quiver/spark-app/src/quiver_spark/
ENV SPARK_HOME=/opt/spark \
    PATH=/opt/spark/bin:$PATH \
    PYTHONPATH=/opt/quiver/spark-app/src \
    SPARK_DAEMON_MEMORY=512m
WORKDIR /opt/spark/work-dir
USER 185
