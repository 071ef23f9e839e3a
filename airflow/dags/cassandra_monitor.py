"""cassandra_monitor: is the stream's output fresh? Fails when the newest
`processed_at` in `created_users` is older than `max_age_minutes` (or the table is
empty), and reports how many records sit in `rejected_users`.

Cassandra comes from the `cassandra_default` connection; its schema is the keyspace
(`spark_streams`). The newest row is found with an aggregate over the table: fine for
the local stack, a full scan on a big cluster.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from airflow.providers.apache.cassandra.hooks.cassandra import CassandraHook
from airflow.sdk import Param, dag, task
from airflow.sdk.exceptions import AirflowFailException


@dag(
    dag_id="cassandra_monitor",
    schedule=timedelta(minutes=10),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["quiver"],
    params={
        "max_age_minutes": Param(15, type="integer", minimum=1, maximum=7 * 24 * 60),
    },
    doc_md=__doc__,
)
def cassandra_monitor():
    @task
    def check_freshness(params: dict) -> dict:
        hook = CassandraHook(cassandra_conn_id="cassandra_default")
        keyspace = hook.keyspace
        session = hook.get_conn()
        try:
            newest = session.execute(f"SELECT max(processed_at) FROM {keyspace}.created_users").one()[0]
            users = session.execute(f"SELECT count(*) FROM {keyspace}.created_users").one()[0]
            rejects = session.execute(f"SELECT count(*) FROM {keyspace}.rejected_users").one()[0]
        finally:
            hook.shutdown_cluster()
        limit = timedelta(minutes=params["max_age_minutes"])
        if newest is None:
            raise AirflowFailException(
                f"{keyspace}.created_users is empty: nothing has been streamed yet "
                "(run api_to_kafka and stream_users, with quiver serve up)"
            )
        age = datetime.now(timezone.utc) - newest.replace(tzinfo=timezone.utc)
        print(
            f"{keyspace}.created_users: {users} users, newest processed_at {newest:%Y-%m-%d %H:%M:%S} UTC ({age} ago)"
        )
        print(f"{keyspace}.rejected_users: {rejects} rejects")
        if age > limit:
            raise AirflowFailException(
                f"{keyspace}.created_users is stale: the newest row was processed {age} ago, "
                f"more than max_age_minutes={params['max_age_minutes']}; is the stream running "
                "(stream_users, quiver serve) and is data arriving in Kafka?"
            )
        return {"users": users, "rejects": rejects, "age_seconds": int(age.total_seconds())}

    check_freshness()


cassandra_monitor()
