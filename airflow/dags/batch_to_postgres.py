"""batch_to_postgres: `quiver batch` applies the stream's pipeline SQL
(pipelines/users.sql) to a batch of records and loads the result into Postgres
`batch_users` (rejects into `batch_rejects`, with the reason).

Params: source (randomuser, synthetic, or kafka: an offset range of one partition),
count and seed (randomuser, synthetic), topic, partition, from_offset and to_offset
(kafka; unset means the partition's start and its current end). A run with the same
params rewrites the same rows: users are upserted by id. Postgres comes from the
`postgres_default` connection (the password is handed to `quiver batch` in its
environment, never on its command line), Kafka from `kafka_default`.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import BaseHook, Param, dag, task

from quiver_common import TOPIC_PATTERN, kafka_bootstrap, quiver_bin, run


@dag(
    dag_id="batch_to_postgres",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["quiver"],
    params={
        "source": Param("randomuser", enum=["randomuser", "synthetic", "kafka"]),
        "count": Param(1000, type="integer", minimum=1, maximum=1_000_000, description="randomuser, synthetic"),
        "seed": Param(None, type=["null", "string"], description="randomuser, synthetic: same seed, same users"),
        "topic": Param("users_created", type="string", pattern=TOPIC_PATTERN),
        "partition": Param(0, type="integer", minimum=0),
        "from_offset": Param(None, type=["null", "integer"], minimum=0),
        "to_offset": Param(None, type=["null", "integer"], minimum=0),
    },
    doc_md=__doc__,
)
def batch_to_postgres():
    @task
    def load(params: dict) -> None:
        pg = BaseHook.get_connection("postgres_default")
        env = {
            "QUIVER_POSTGRES_URL": f"postgresql://{pg.login}@{pg.host}:{pg.port or 5432}/{pg.schema or pg.login}",
            "QUIVER_POSTGRES_PASSWORD": pg.password or "",
        }
        argv = [quiver_bin(), "batch", "--source", params["source"]]
        if params["source"] == "kafka":
            argv += ["--bootstrap-servers", kafka_bootstrap(), "--topic", params["topic"]]
            argv += ["--partition", str(params["partition"])]
            for name in ("from_offset", "to_offset"):
                if params[name] is not None:
                    argv += [f"--{name.replace('_', '-')}", str(params[name])]
        else:
            argv += ["--count", str(params["count"])]
            if params["seed"]:
                argv += ["--seed", params["seed"]]
        run(argv, env=env)

    load()


batch_to_postgres()
