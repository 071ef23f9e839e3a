"""The local stack: Kafka, Cassandra, a Spark standalone cluster, Postgres and, on request,
Airflow as local processes under supervisord, each with its own data and log folder in the
state folder.

Run it through scripts/stack (which picks the project's Python environment):

    scripts/stack up [COMPONENT...]      start (in order) and wait until each answers
    scripts/stack up --nodes 3           ... as a cluster: 3 Kafka brokers, 3 Cassandra nodes, 2 Spark workers
    scripts/stack up --with-airflow      ... and Airflow's API server, scheduler and DAG processor
    scripts/stack up --with-monitoring   ... and Prometheus, scraping every component
    scripts/stack down                   stop everything the stack started
    scripts/stack status                 every component, its port, whether it answers
    scripts/stack check [--serve]        what would stop it starting: taken ports, memory, disk
    scripts/stack logs [COMPONENT] [-f]  the tail of a component's log
    scripts/stack topic NAME [--partitions N]   create a Kafka topic if it is missing
    scripts/stack env                    the stack's addresses as shell variables
    scripts/stack spark-submit ARGS...   spark-submit to the stack's master, Kafka connector included
    scripts/stack airflow ARGS...        the airflow CLI with the stack's Airflow settings

Every setting comes from QUIVER_* environment variables (see Settings); the defaults are
the ports of docs/ARCHITECTURE.md, bound to 127.0.0.1. In the cluster profile, node n of
Kafka, Cassandra and the Spark workers listens on 127.0.0.n with the same ports.
"""

from __future__ import annotations

import argparse
import sys

from quiver_dev.stack.commands import (
    choose_nodes,
    cmd_airflow,
    cmd_check,
    cmd_down,
    cmd_env,
    cmd_logs,
    cmd_spark_submit,
    cmd_status,
    cmd_topic,
    cmd_up,
    say,
)
from quiver_dev.stack.components import by_name, components, groups
from quiver_dev.stack.settings import TOPIC_PARTITIONS, Settings, StackError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/stack",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start components (all by default) and wait until each answers")
    s = Settings()
    up.add_argument(
        "components",
        nargs="*",
        help=f"any of: {', '.join([*by_name(s), *groups(s)])} "
        "(in a cluster, kafka-N, cassandra-N and spark-worker-N name one node)",
    )
    up.add_argument(
        "--nodes",
        type=int,
        choices=[1, 3],
        help="3: a cluster on this machine (3 Kafka brokers and 3 Cassandra nodes, node n on 127.0.0.n, "
        "replication factor 3; 2 Spark workers); 1: one of each (the default when the stack is down)",
    )
    up.add_argument(
        "--with-airflow", action="store_true", help="also start Airflow (API server, scheduler, DAG processor)"
    )
    up.add_argument(
        "--with-monitoring", action="store_true", help="also start Prometheus, scraping every component (port 9096)"
    )
    down = sub.add_parser("down", help="stop everything the stack started, or only the components named")
    down.add_argument("components", nargs="*", help="any of the components or groups; all when none is named")
    sub.add_parser("status", help="each component, its ports and whether it answers")
    check = sub.add_parser("check", help="what would stop the stack from starting: taken ports, memory, disk")
    check.add_argument("--serve", action="store_true", help="also the ports of quiver serve (scripts/run starts it)")
    logs = sub.add_parser("logs", help="the last lines of a component's log (all by default)")
    logs.add_argument("component", nargs="?")
    logs.add_argument("-f", "--follow", action="store_true")
    logs.add_argument("-n", "--lines", type=int, default=40)
    topic = sub.add_parser("topic", help="create a Kafka topic if it is missing")
    topic.add_argument("name")
    topic.add_argument("--partitions", type=int, default=TOPIC_PARTITIONS)
    sub.add_parser("env", help="print the stack's addresses as shell exports")
    sub.add_parser("spark-submit", help="spark-submit to the stack's master with the Kafka connector jars")
    sub.add_parser("airflow", help="the airflow CLI (Airflow's environment) with the stack's Airflow settings")
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["spark-submit"]:
        # Everything after it belongs to spark-submit, options included.
        return cmd_spark_submit(s, argv[1:])
    if argv[:1] == ["airflow"]:
        return cmd_airflow(s, argv[1:])
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            s = choose_nodes(s, args.nodes)
            names = args.components
            for wanted, group in ((args.with_airflow, "airflow"), (args.with_monitoring, "monitoring")):
                if wanted:
                    names = [*(names or [c.name for c in components(s) if not c.optional]), group]
            return cmd_up(s, names)
        if args.command == "down":
            return cmd_down(s, args.components)
        if args.command == "status":
            return cmd_status(s)
        if args.command == "check":
            return cmd_check(s, args.serve)
        if args.command == "logs":
            return cmd_logs(s, args.component, args.follow, args.lines)
        if args.command == "topic":
            return cmd_topic(s, args.name, args.partitions)
        return cmd_env(s)
    except StackError as error:
        say(f"error: {error}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
