"""The CLI's commands (`cmd_*`) and the stack's addresses as environment variables."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from quiver_dev.stack.airflow import airflow_env
from quiver_dev.stack.checks import check_ports, preflight
from quiver_dev.stack.components import Component, by_kind, by_name, components, expand, members
from quiver_dev.stack.postgres import postgres_dirs
from quiver_dev.stack.process import sh_quote, write
from quiver_dev.stack.prometheus import SPARK_DRIVER_UI_PORT
from quiver_dev.stack.settings import Settings, StackError
from quiver_dev.stack.spark import spark_env, spark_write_conf
from quiver_dev.stack.supervisor import Supervisor


def _tail(path: Path, lines: int) -> str:
    if not path.exists():
        return f"(no log yet at {path})"
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - 64 * 1024))
        return b"\n".join(f.read().splitlines()[-lines:]).decode(errors="replace")


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def choose_nodes(s: Settings, nodes: int | None) -> Settings:
    """The settings for `up --nodes`: a running stack keeps its nodes (a different number
    needs a 'down' first); a stopped one starts with what was asked, or one node."""
    sup = Supervisor(s)
    up = sup.running()
    running = [c.name for c in components(s) if up and sup.info(c.name)["statename"] == "RUNNING"]
    if running:
        if nodes is not None and nodes != s.nodes:
            raise StackError(
                f"the stack runs with {s.nodes} node{'s' if s.nodes > 1 else ''} ({', '.join(running)}): "
                f"'scripts/stack down' first, then 'scripts/stack up --nodes {nodes}'"
            )
        return s
    nodes = nodes or 1
    if nodes > 1 and s.host != "127.0.0.1":
        raise StackError(
            f"a cluster puts node n on 127.0.0.n, so it cannot listen on QUIVER_BIND_HOST={s.host}: unset it"
        )
    if nodes != s.nodes:
        # supervisord knows the other profile's programs: start it afresh.
        sup.shutdown()
    write(s.nodes_file, f"{nodes}\n")
    return Settings()


def cmd_up(s: Settings, names: list[str]) -> int:
    wanted = expand(s, names)
    known = by_name(s)
    sup = Supervisor(s)
    began = time.monotonic()
    # Before anything starts, so a taken port leaves nothing half-started.
    check_ports(s, sup, wanted)
    sup.ensure_started()
    started: list[str] = []
    try:
        for name in wanted:
            c = known[name]
            t0 = time.monotonic()
            if sup.info(name)["statename"] == "RUNNING":
                try:
                    say(f"  {name:<21} already up: {c.healthy(s)}")
                    continue
                except Exception:  # noqa: BLE001 - running but not answering: restart it below
                    sup.stop(name)
            c.prepare(s)
            sup.start(name)
            started.append(name)
            summary = _wait_healthy(s, sup, c)
            if c.after_start:
                c.after_start(s)
            say(f"  {name:<21} up in {time.monotonic() - t0:5.1f} s: {summary}")
    except (StackError, subprocess.CalledProcessError, OSError) as error:
        say(f"error: {error}")
        for name in reversed(started):
            sup.stop(name)
        if not any(sup.info(c.name)["statename"] == "RUNNING" for c in components(s)):
            sup.shutdown()
        say("stopped what this 'up' had started")
        return 1
    say(f"stack up in {time.monotonic() - began:.1f} s; 'scripts/stack status' shows it, 'scripts/stack down' stops it")
    return 0


def cmd_check(s: Settings, serve: bool) -> int:
    problems = preflight(s, serve)
    for problem in problems:
        say(f"error: {problem}")
    return 1 if problems else 0


def _wait_healthy(s: Settings, sup: Supervisor, c: Component) -> str:
    deadline = time.monotonic() + c.start_timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        state = sup.info(c.name)["statename"]
        if state not in ("RUNNING", "STARTING"):
            raise StackError(
                f"{c.name} exited while starting ({state}); last lines of {s.log_file(c.name)}:\n"
                + _tail(s.log_file(c.name), 30)
            )
        try:
            return c.healthy(s)
        except Exception as error:  # noqa: BLE001 - any failure means "not answering yet"
            last_error = error
            time.sleep(0.5)
    raise StackError(
        f"{c.name} did not answer within {c.start_timeout:.0f} s (last check: {last_error}); "
        f"last lines of {s.log_file(c.name)}:\n" + _tail(s.log_file(c.name), 30)
    )


def cmd_down(s: Settings, names: list[str]) -> int:
    sup = Supervisor(s)
    if not sup.running():
        say("the stack is not running")
        return 0

    def stop(together: list[str]) -> None:
        t0 = time.monotonic()
        sup.stop(*together)
        for name in together:
            say(f"  {name:<21} stopped in {time.monotonic() - t0:4.1f} s")

    if names:
        # Only these (a component taken down for a while, as the fault tests do); the
        # rest, and those that need them, keep running. `up NAME` starts it again.
        for name in names:
            stop(members(s, name))
        return 0
    # A cluster's nodes of one kind stop together: the last Kafka broker to stop alone has
    # no quorum of controllers left to shut down cleanly with, and waits to be killed.
    running = [c for c in components(s) if sup.info(c.name)["statename"] in ("RUNNING", "STARTING")]
    for together in reversed(by_kind(running).values()):
        stop(together)
    sup.shutdown()
    # The next 'up' starts a single node unless told --nodes again.
    s.nodes_file.unlink(missing_ok=True)
    say("stack down")
    return 0


def cmd_status(s: Settings) -> int:
    sup = Supervisor(s)
    up = sup.running()
    rows = []
    all_ok = True
    for c in components(s):
        info = sup.info(c.name) if up else {"statename": "STOPPED", "pid": 0}
        ports = ",".join(f"{p}" for p in c.ports(s).values())
        if c.node:
            ports = f"{s.node_host(c.node)}:{ports}"
        answer = "-"
        if info["statename"] != "RUNNING":
            if c.optional:
                answer = f"- (optional: up --with-{'monitoring' if c.name == 'prometheus' else 'airflow'})"
            else:
                all_ok = False
        else:
            try:
                answer = "yes: " + c.healthy(s)
            except Exception as error:  # noqa: BLE001 - shown to the user as is
                answer = f"NO: {str(error).splitlines()[0][:60]}"
                all_ok = False
        rows.append((c.name, info["statename"], str(info.get("pid") or "-"), ports, answer))
    header = ("component", "state", "pid", "ports", "answers")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(5)]
    for r in [header, *rows]:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=False)).rstrip())
    if s.nodes > 1:
        print(f"\ncluster: {s.nodes} nodes, node n on 127.0.0.n ('down', then 'up' starts a single-node stack)")
    print(f"\nstate folder: {s.state}   logs: {s.state / 'logs'}")
    data, _ = postgres_dirs(s)
    if not data.is_relative_to(s.state):
        print(f"postgres data: {data} (the postgres user cannot enter the state folder)")
    return 0 if all_ok else 1


def cmd_logs(s: Settings, name: str | None, follow: bool, lines: int) -> int:
    names = expand(s, [name]) if name else [c.name for c in components(s)]
    if follow:
        files = [str(s.log_file(n)) for n in names]
        return subprocess.call(["tail", "-n", str(lines), "-F", *files])
    for n in names:
        print(f"==> {s.log_file(n)} <==")
        print(_tail(s.log_file(n), lines))
    return 0


def cmd_topic(s: Settings, name: str, partitions: int) -> int:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": s.kafka_bootstrap})
    if name in admin.list_topics(timeout=5).topics:
        say(f"topic {name} exists")
        return 0
    topic = NewTopic(name, num_partitions=partitions, replication_factor=s.replication_factor)
    admin.create_topics([topic])[name].result(timeout=30)
    replicas = f", {s.replication_factor} replicas each" if s.replication_factor > 1 else ""
    say(f"topic {name} created with {partitions} partitions{replicas}")
    return 0


def stack_env(s: Settings) -> dict[str, str]:
    """The stack's addresses as the variables quiver, the Spark job and the tests read."""
    return {
        "QUIVER_STATE_DIR": str(s.state),
        "QUIVER_BOOTSTRAP_SERVERS": s.kafka_bootstrap,
        "QUIVER_CASSANDRA_NODES": s.cassandra_nodes,
        "QUIVER_SPARK_MASTER": s.spark_master_url,
        "QUIVER_SPARK_KAFKA_JARS": ",".join(s.spark_kafka_jars),
        "QUIVER_POSTGRES_URL": f"postgresql://{s.postgres_user}@{s.host}:{s.postgres_port}/{s.postgres_db}",
        "QUIVER_POSTGRES_PASSWORD_FILE": str(s.postgres_password_file),
        "QUIVER_AIRFLOW_URL": s.airflow_url,
        # Where quiver serve's dashboard asks the Spark driver for its batch durations.
        "QUIVER_SPARK_UI": f"http://{s.host}:{SPARK_DRIVER_UI_PORT}",
        # The links quiver serve's dashboard shows to the stack's other web pages.
        "QUIVER_DASHBOARD_LINKS": ",".join(
            [
                f"Spark master=http://{s.host}:{s.spark_master_ui_port}",
                f"Spark worker=http://{s.node_host(s.worker_ids[0])}:{s.spark_worker_ui_port}",
                f"Airflow={s.airflow_url}",
            ]
        ),
        **spark_env(s),
        **cluster_env(s),
    }


def cluster_env(s: Settings) -> dict[str, str]:
    """In a cluster, what quiver and the job create is replicated: topics on 3 brokers, the
    keyspace on 3 Cassandra nodes of SimpleSnitch's one datacenter."""
    if s.nodes == 1:
        return {}
    factor = str(s.replication_factor)
    return {
        "QUIVER_REPLICATION_FACTOR": factor,
        "QUIVER_CASSANDRA_REPLICATION_FACTOR": factor,
        "QUIVER_CASSANDRA_DATACENTER": "datacenter1",
    }


def cmd_env(s: Settings) -> int:
    for k, v in stack_env(s).items():
        print(f"export {k}={sh_quote(v)}")
    return 0


def cmd_spark_submit(s: Settings, args: list[str]) -> int:
    """spark-submit against the stack's master, with the Kafka connector and the project's
    Python; everything after 'spark-submit' is passed on unchanged."""
    spark_write_conf(s)
    env = {**os.environ, **spark_env(s)}
    spark_submit = s.spark_home / "bin" / "spark-submit"
    os.execve(spark_submit, [str(spark_submit), *args], env)


def cmd_airflow(s: Settings, args: list[str]) -> int:
    """The airflow CLI as the stack's Airflow processes run it (same database, DAGs,
    connections); everything after 'airflow' is passed on unchanged."""
    airflow = s.airflow_venv / "bin" / "airflow"
    try:
        if not airflow.exists():
            raise StackError(f"Airflow is not installed ({s.airflow_venv}): run scripts/setup")
        plain, secret = airflow_env(s)
    except (StackError, OSError) as error:
        say(f"error: {error}")
        return 1
    os.execve(airflow, [str(airflow), *args], {**os.environ, **plain, **secret})
