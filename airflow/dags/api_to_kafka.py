"""api_to_kafka: user records into Kafka with `quiver produce`, a bounded count per run.

Params: source (randomuser, the default, or synthetic), count, seed (same seed, same
records), topic. Kafka comes from the `kafka_default` connection.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import Param, dag, task

from quiver_common import TOPIC_PATTERN, kafka_bootstrap, quiver_bin, run


@dag(
    dag_id="api_to_kafka",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["quiver"],
    params={
        "source": Param("randomuser", enum=["randomuser", "synthetic"], description="where the users come from"),
        "count": Param(1000, type="integer", minimum=1, maximum=1_000_000, description="users to send"),
        "seed": Param(None, type=["null", "string"], description="the same seed sends the same users"),
        "topic": Param("users_created", type="string", pattern=TOPIC_PATTERN),
    },
    doc_md=__doc__,
)
def api_to_kafka():
    @task
    def produce(params: dict) -> None:
        argv = [quiver_bin(), "produce", "--source", params["source"], "--count", str(params["count"])]
        argv += ["--topic", params["topic"], "--bootstrap-servers", kafka_bootstrap()]
        if params["seed"]:
            argv += ["--seed", params["seed"]]
        run(argv)

    produce()


api_to_kafka()
