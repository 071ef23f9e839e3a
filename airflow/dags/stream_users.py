"""stream_users: the Spark Structured Streaming job (spark-app/stream_users.py) submitted
with SparkSubmitOperator to the standalone master of `spark_default`, in client mode
(Spark standalone runs Python applications only so).

The job reads the topic and hands its records over Arrow Flight to `quiver serve` at
`flight_endpoint`, which writes Cassandra. `trigger` is the job's `--trigger`:
`available-now` (the default) processes everything the topic holds, then the job and the
task end; an interval such as `1 second` streams in micro-batches, and `realtime` in
Spark's real-time mode (records written within milliseconds), until stopped. A streaming
run is a long-running task: start it with `airflow dags trigger stream_users --conf
'{"trigger": "realtime"}'`, stop it by marking the task failed or success in the UI (or
`airflow tasks clear`), which sends spark-submit SIGTERM; a restart resumes from the
checkpoint. spark-submit must be on PATH (the stack puts the
Spark side's there) and QUIVER_SPARK_KAFKA_JARS must list Spark's Kafka connector jars
(`scripts/stack env` prints them). The spark-submit output is in the task log.
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import Param, dag, task
from airflow.sdk.exceptions import AirflowFailException

from quiver_common import ROOT, TOPIC_PATTERN, kafka_bootstrap


@dag(
    dag_id="stream_users",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["quiver"],
    params={
        "topic": Param("users_created", type="string", pattern=TOPIC_PATTERN),
        "trigger": Param(
            "available-now",
            type="string",
            pattern=r"^(available-now|realtime|[0-9]+ (millisecond|second|minute)s?)$",
            description="available-now: the topic's records, then stop; realtime: Spark's real-time mode "
            "until stopped; or a micro-batch interval such as '1 second', until stopped",
        ),
        "checkpoint_interval": Param(
            None,
            type=["null", "string"],
            pattern=r"^[0-9]+ (second|minute)s?$",
            description="realtime: how often the query checkpoints (at least 5 seconds) [default: the job's own]",
        ),
        "flight_endpoint": Param(
            os.environ.get("QUIVER_FLIGHT_ENDPOINT", "grpc://127.0.0.1:50051"),
            type="string",
            pattern=r"^grpc(\+tls)?://[^/\s,]+:[0-9]+(,\s*grpc(\+tls)?://[^/\s,]+:[0-9]+)*$",
            description="`quiver serve`'s Flight address, or several, comma-separated (tasks spread over them)",
        ),
        "pipeline": Param("users", type="string", pattern=r"^[A-Za-z0-9_]+$"),
        "executor_cores": Param(
            1,
            type="integer",
            minimum=1,
            maximum=256,
            description="cores the job takes from the cluster; realtime needs one per Kafka partition",
        ),
        "checkpoint_location": Param(
            None, type=["null", "string"], description="Spark's checkpoint folder [default: the job's own]"
        ),
    },
    doc_md=__doc__,
)
def stream_users():
    @task(multiple_outputs=True)
    def job_arguments(params: dict) -> dict:
        jars = os.environ.get("QUIVER_SPARK_KAFKA_JARS", "")
        missing = [j for j in jars.split(",") if j and not os.path.isfile(j)]
        if not jars or missing:
            raise AirflowFailException(
                "QUIVER_SPARK_KAFKA_JARS must list Spark's Kafka connector jars, comma-separated "
                f"(`scripts/stack env` prints them; run scripts/setup to fetch them); missing: {missing or 'all'}"
            )
        trigger = params["trigger"]
        args = ["--bootstrap-servers", kafka_bootstrap(), "--topic", params["topic"], "--trigger", trigger]
        if trigger == "realtime" and params["checkpoint_interval"]:
            args += ["--checkpoint-interval", params["checkpoint_interval"]]
        args += ["--engine", "flight", "--flight-endpoint", params["flight_endpoint"]]
        args += ["--pipeline", params["pipeline"]]
        if params["checkpoint_location"]:
            args += ["--checkpoint-location", params["checkpoint_location"]]
        return {"jars": jars, "args": args, "cores": str(params["executor_cores"])}

    arguments = job_arguments()
    submit = SparkSubmitOperator(
        task_id="spark_submit",
        conn_id="spark_default",
        application=str(ROOT / "spark-app" / "stream_users.py"),
        name="quiver-stream-users",
        jars=arguments["jars"],
        application_args=arguments["args"],
        # By default one core of the two-core worker, so a second application can still
        # start; real-time mode needs a core per Kafka partition at once (the job checks).
        conf={"spark.cores.max": arguments["cores"]},
        verbose=False,
    )
    arguments >> submit


stream_users()
