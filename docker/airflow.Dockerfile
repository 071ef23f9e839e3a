# Airflow 3 with the Spark provider, spark-submit and the quiver binary, for the DAGs in
# airflow/dags. Spark (with its Kafka connector and spark-app/) and quiver come from the
# compose stack's own images, passed as the build contexts "spark" and "quiver"; compose.yaml
# does that. By hand, from the repository root:
#   docker build -f docker/airflow.Dockerfile \
#     --build-context spark=docker-image://quiver-spark:0.1.0 \
#     --build-context quiver=docker-image://quiver:0.1.0 -t quiver-airflow:0.1.0 .

# Python 3.11 like the Spark image: a client-mode driver started by a DAG must run the same
# Python minor version as the executors.
FROM apache/airflow:3.3.2-python3.11

USER 0
# Debian's slim images drop the man folders that the JRE's install scripts link into.
# hadolint ignore=DL3008
RUN mkdir -p /usr/share/man/man1 \
    && apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless procps \
    && rm -rf /var/lib/apt/lists/*
# The checkpoints of streaming jobs that DAGs submit (a named volume in compose.yaml).
RUN mkdir -p /var/lib/quiver/checkpoints && chown 50000:0 /var/lib/quiver/checkpoints
# "spark" and "quiver" are named build contexts (see the top of this file), not stages.
# hadolint ignore=DL3022
COPY --from=spark /opt/spark /opt/spark
# hadolint ignore=DL3022
COPY --from=spark /opt/quiver /opt/quiver
# hadolint ignore=DL3022
COPY --from=quiver /usr/local/bin/quiver /usr/local/bin/quiver
ENV SPARK_HOME=/opt/spark \
    PATH=/opt/spark/bin:$PATH \
    PYTHONPATH=/opt/quiver/spark-app/src \
    QUIVER_STATE_DIR=/var/lib/quiver \
    QUIVER_BIN=/usr/local/bin/quiver

USER 50000
COPY --chown=50000:0 scripts/requirements.txt scripts/versions.env /tmp/quiver/
# The provider needs pyspark-client, pinned to the cluster's Spark version; the driver of a
# submitted job needs the executors' pyarrow, pandas, numpy and protobuf; psycopg is the
# metadata database's async driver. Airflow itself stays at the image's version.
RUN . /tmp/quiver/versions.env \
    && grep -E '^(pyarrow|pandas|numpy|protobuf|psycopg\[binary\])==' /tmp/quiver/requirements.txt > /tmp/quiver/pins.txt \
    && pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" \
        "apache-airflow-providers-apache-spark==6.3.4" "pyspark-client==${SPARK_VERSION}" \
        -r /tmp/quiver/pins.txt \
    && rm -rf /tmp/quiver
