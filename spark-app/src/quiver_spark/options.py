"""The job's settings: command-line options, each with an environment variable as its
default, so the job is configured by spark-submit arguments or the environment and never by
editing code. An option's key is its flag without the dashes; its variable is QUIVER_ and
the key upper-cased with `-` as `_`, the rule of quiver's own subcommands, so that one key
means one variable everywhere."""

from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ENGINES = ("flight", "inprocess")
# Cassandra's write consistency levels; checked here so that a typo fails before Spark starts.
CONSISTENCY_LEVELS = ("ANY", "ONE", "TWO", "THREE", "QUORUM", "ALL", "LOCAL_QUORUM", "EACH_QUORUM", "LOCAL_ONE")
# The interval units Spark's processingTime trigger parses.
_PROCESSING_TIME = re.compile(r"^\d+\s+(milliseconds?|seconds?|minutes?)$")
# Old names that still work in this release, each use with a warning that names the new
# one. An old environment variable and the key whose variable replaces it:
OLD_VARIABLES = {
    "QUIVER_KAFKA_BOOTSTRAP": "bootstrap-servers",
    "QUIVER_PIPELINE_SQL": "sql-file",
    "QUIVER_FLIGHT_MAX_MESSAGE_MIB": "max-message-mib",
}
# An old flag and its new one. The job's metrics address is not --metrics-addr, so that
# QUIVER_METRICS_ADDR, `quiver produce`'s, never makes two processes bind one port.
OLD_FLAGS = {"--pipeline-sql": "--sql-file", "--metrics-addr": "--job-metrics-addr"}


class OptionsError(ValueError):
    """A setting that cannot work; the message names it and how to fix it."""


@dataclass(frozen=True)
class CassandraOptions:
    """The in-process engine's Cassandra sink: the keyword arguments of quiver.CassandraSink."""

    nodes: tuple[str, ...]
    keyspace: str
    credentials: tuple[str, str] | None
    replication_factor: int
    datacenter: str | None
    consistency: str
    retry_window_s: float

    def sink_kwargs(self) -> dict:
        username, password = self.credentials or (None, None)
        return {
            "nodes": list(self.nodes),
            "keyspace": self.keyspace,
            "replication_factor": self.replication_factor,
            "datacenter": self.datacenter,
            "consistency": self.consistency,
            "retry_window_seconds": self.retry_window_s,
            "username": username,
            "password": password,
        }


@dataclass(frozen=True)
class Options:
    bootstrap_servers: str
    topic: str
    starting_offsets: str
    max_offsets_per_trigger: int | None
    min_partitions: int | None
    fail_on_data_loss: bool
    checkpoint_location: str
    trigger: str
    app_name: str
    engine: str
    pipeline: str
    pipeline_sql: str | None
    # One or more services; each task starts at one (by partition) and fails over to the next.
    flight_endpoints: tuple[str, ...]
    tls_ca: bytes | None
    token: str | None
    exchange_timeout_s: float
    connect_retry_s: float
    max_message_bytes: int
    cassandra: CassandraOptions
    checkpoint_interval: str
    rt_max_rows: int
    rt_linger_ms: int
    max_restarts: int
    restart_backoff_s: float
    metrics_addr: tuple[str, int] | None

    @property
    def available_now(self) -> bool:
        return self.trigger == "available-now"

    @property
    def realtime(self) -> bool:
        return self.trigger == "realtime"


def _default_checkpoint() -> str:
    state = os.environ.get("QUIVER_STATE_DIR") or str(Path(__file__).resolve().parents[3] / ".quiver")
    return str(Path(state) / "checkpoints" / "stream-users")


def env_var(key: str) -> str:
    """The environment variable of an option's key (docs/SETTINGS.md)."""
    return "QUIVER_" + key.upper().replace("-", "_")


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def _from_env(env: dict[str, str], key: str, fallback: str | None) -> str | None:
    """The key's variable, else its old name's (with a warning), else `fallback`."""
    name = env_var(key)
    for old in [o for o, k in OLD_VARIABLES.items() if k == key and o in env]:
        if name in env:
            _warn(f"{old} is the old name of {name}, which is set too: {old} is ignored")
        else:
            _warn(f"{old} is the old name of {name}; it still works in this release")
            return env[old]
    return env.get(name, fallback)


class _Store(argparse.Action):
    """argparse's store, warning when the option was given by an old flag: only an action
    learns which of its flags was used."""

    def __call__(self, parser, namespace, values, option_string=None):
        if option_string in OLD_FLAGS:
            _warn(f"{option_string} is the old name of {OLD_FLAGS[option_string]}; it still works in this release")
        setattr(namespace, self.dest, values)


def _flag(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"{raw!r} is not a boolean (true or false)")


def _host_port(raw: str) -> tuple[str, int]:
    host, _, port = raw.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{raw!r} is not HOST:PORT (e.g. 127.0.0.1:9466)")
    return host, int(port)


def _positive_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} must be greater than 0")
    return value


def build_parser(env: dict[str, str]) -> argparse.ArgumentParser:
    def option(group: argparse._ArgumentGroup, flag: str, default: str | None, help: str, **kwargs) -> None:
        """Adds `flag`, and its old flags, with its variable as the default and named in its help."""
        key = flag.removeprefix("--")
        old_flags = [old for old, new in OLD_FLAGS.items() if new == flag]
        group.add_argument(
            flag,
            *old_flags,
            action=_Store,
            default=_from_env(env, key, default),
            help=f"{help} ({env_var(key)})",
            **kwargs,
        )

    parser = argparse.ArgumentParser(
        prog="stream_users.py",
        description=(
            "Reads user records from Kafka with Spark Structured Streaming and hands every "
            "micro-batch, as Arrow, to quiver's Rust transformation service, which writes "
            "Cassandra. Every option can also be set by its environment variable, QUIVER_ and "
            "the option's name upper-cased with - as _, named in its help."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    kafka = parser.add_argument_group("Kafka source")
    option(kafka, "--bootstrap-servers", "127.0.0.1:9092", "Kafka brokers, host:port[,host:port]")
    option(kafka, "--topic", "users_created", "topic to read")
    option(
        kafka,
        "--starting-offsets",
        "earliest",
        "where a query without a checkpoint starts: earliest, latest or Spark's JSON form; a "
        "checkpoint's offsets always win",
    )
    option(
        kafka,
        "--max-offsets-per-trigger",
        "200000",
        "upper bound of records per micro-batch",
        type=_positive_int,
    )
    option(
        kafka,
        "--min-partitions",
        None,
        "split Kafka partitions into at least this many Spark tasks",
        type=_positive_int,
    )
    option(
        kafka,
        "--fail-on-data-loss",
        "true",
        "fail when offsets were deleted before they were read",
        type=_flag,
    )
    stream = parser.add_argument_group("stream")
    option(
        stream,
        "--checkpoint-location",
        _default_checkpoint(),
        "where Spark keeps offsets and commits; a restarted job resumes from it",
    )
    option(
        stream,
        "--trigger",
        "1 second",
        "a micro-batch interval such as '500 milliseconds' or '1 second'; 'available-now' to "
        "process what the topic holds and stop; or 'realtime' for Spark's real-time mode: long-running "
        "tasks, one per Kafka partition, that pass each record on within milliseconds (flight engine "
        "only)",
    )
    option(
        stream,
        "--checkpoint-interval",
        "5 minutes",
        "realtime: how often the query checkpoints its offsets and starts its next real-time batch, "
        "at least '5 seconds'; each such transition holds the stream for ~0.4 s, and a failure replays at "
        "most this much",
    )
    option(
        stream,
        "--max-restarts",
        None,
        "times in a row the driver restarts a failed query from its checkpoint, with back-off, before "
        "it gives up; a query that made progress starts the count again. Default: 5 with --trigger realtime "
        "(its tasks are not retried), 0 otherwise (Spark retries each task)",
        type=int,
    )
    option(
        stream,
        "--restart-backoff",
        "2",
        "seconds before the first restart, doubling up to a minute",
        type=float,
    )
    option(stream, "--app-name", "quiver-stream-users", "the Spark application's name")
    option(
        stream,
        "--job-metrics-addr",
        None,
        "serve the job's own figures (batches, rows in, written, rejected) for Prometheus at "
        "http://HOST:PORT/metrics, e.g. 127.0.0.1:9466",
        type=_host_port,
    )
    engine = parser.add_argument_group("transformation")
    option(
        engine,
        "--engine",
        "flight",
        "flight: send batches to `quiver serve` over Arrow Flight; inprocess: transform and store them "
        "inside the executors with quiver's Python module, no network hop",
        choices=ENGINES,
    )
    option(engine, "--pipeline", "users", "pipeline to run")
    option(
        engine,
        "--sql-file",
        None,
        "inprocess: file with the pipeline's SQL over raw_users; by default the repository's "
        "pipelines/users.sql. The flight engine runs the service's pipelines",
    )
    flight = parser.add_argument_group("flight engine")
    option(
        flight,
        "--flight-endpoint",
        "grpc://127.0.0.1:50051",
        "the Flight service, grpc://host:port or grpc+tls://host:port, or several, comma-separated: "
        "each task starts at one chosen by its Kafka partition and fails over to the next that answers",
    )
    option(
        flight,
        "--tls-ca-file",
        None,
        "PEM certificate of the CA that signed the service's, for a grpc+tls:// endpoint",
    )
    option(
        flight,
        "--token-file",
        None,
        "file holding the Flight bearer token, or set QUIVER_TOKEN to the token itself; not a "
        "command-line value, so it never shows in `ps`",
    )
    option(
        flight,
        "--exchange-timeout",
        "120",
        "seconds one task may spend on its exchange before it fails and Spark retries it",
        type=float,
    )
    option(
        flight,
        "--connect-retry",
        "30",
        "seconds a task waits, with back-off, for a Flight service it cannot reach before it fails; "
        "covers a restart of the service",
        type=float,
    )
    option(
        flight,
        "--rt-max-rows",
        "2000",
        "realtime: a task sends its rows as soon as it holds this many",
        type=_positive_int,
    )
    option(
        flight,
        "--rt-linger-ms",
        "20",
        "realtime: ... or when its oldest row has waited this many milliseconds, also when no further row arrives",
        type=int,
    )
    option(
        flight,
        "--max-message-mib",
        "256",
        "largest Flight message sent or received, in MiB",
        type=_positive_int,
    )
    cassandra = parser.add_argument_group("inprocess engine: Cassandra")
    option(cassandra, "--cassandra-nodes", "127.0.0.1:9042", "contact points, host:port[,host:port]")
    option(
        cassandra,
        "--cassandra-keyspace",
        "spark_streams",
        "keyspace of created_users and rejected_users, created if missing",
    )
    option(
        cassandra,
        "--cassandra-replication-factor",
        "1",
        "replicas of each row, used when the keyspace is created",
        type=_positive_int,
    )
    option(
        cassandra,
        "--cassandra-datacenter",
        None,
        "create the keyspace with NetworkTopologyStrategy in this datacenter and write there first; "
        "unset: SimpleStrategy",
    )
    option(cassandra, "--cassandra-consistency", "LOCAL_QUORUM", "consistency level of every write")
    option(
        cassandra,
        "--cassandra-retry-window",
        "60",
        "seconds a write waits, retrying, for Cassandra to come back (a node restart) before the task fails",
        type=float,
    )
    option(
        cassandra,
        "--cassandra-username",
        None,
        "with --cassandra-password-file, when Cassandra requires a login",
    )
    option(cassandra, "--cassandra-password-file", None, "file holding the Cassandra password")
    return parser


def parse(argv: list[str] | None = None, env: dict[str, str] | None = None) -> Options:
    env = dict(os.environ) if env is None else env
    parser = build_parser(env)
    args = parser.parse_args(argv)
    try:
        return _validate(args, env)
    except OptionsError as error:
        parser.error(str(error))
        raise  # parser.error exits; this keeps type checkers informed


def _validate(args: argparse.Namespace, env: dict[str, str]) -> Options:
    trigger = args.trigger.strip()
    if trigger not in ("available-now", "realtime") and not _PROCESSING_TIME.match(trigger):
        raise OptionsError(
            f"--trigger {trigger!r} is neither 'available-now', 'realtime' nor an interval such as "
            "'500 milliseconds' or '1 second'"
        )
    if trigger == "realtime" and args.engine == "inprocess":
        raise OptionsError(
            "--trigger realtime needs --engine flight: real-time mode takes only a JVM writer, which hands the "
            "records to `quiver serve`; the in-process engine runs in micro-batches"
        )
    interval = args.checkpoint_interval.strip()
    if not _PROCESSING_TIME.match(interval) or _seconds(interval) < 5:
        raise OptionsError(
            f"--checkpoint-interval {interval!r} is not an interval of at least '5 seconds' (e.g. '1 minute')"
        )
    if args.rt_linger_ms < 0:
        raise OptionsError("--rt-linger-ms must be 0 (send every row at once) or more")
    max_restarts = args.max_restarts if args.max_restarts is not None else (5 if trigger == "realtime" else 0)
    if max_restarts < 0:
        raise OptionsError("--max-restarts must be 0 (never restart) or more")
    if args.restart_backoff < 0:
        raise OptionsError("--restart-backoff must be 0 seconds or more")
    endpoints = tuple(e.strip() for e in args.flight_endpoint.split(",") if e.strip())
    if args.engine == "flight":
        if not endpoints:
            raise OptionsError("--flight-endpoint is empty: give grpc://host:port[,grpc://host:port]")
        for endpoint in endpoints:
            if not re.match(r"^grpc(\+tls|\+tcp)?://[^/:]+:\d+$", endpoint):
                raise OptionsError(
                    f"--flight-endpoint {endpoint!r} is not grpc://host:port (or grpc+tls://host:port)"
                    + (f" in {args.flight_endpoint!r}" if len(endpoints) > 1 else "")
                )
        if len(set(endpoints)) < len(endpoints):
            raise OptionsError(f"--flight-endpoint {args.flight_endpoint!r} names an endpoint twice")
    # A secret's variable wins over its file, as in `quiver serve`.
    token = env.get("QUIVER_TOKEN") or (_read_nonempty("--token-file", args.token_file) if args.token_file else None)
    if args.exchange_timeout <= 0:
        raise OptionsError("--exchange-timeout must be greater than 0 seconds")
    if args.connect_retry < 0:
        raise OptionsError("--connect-retry must be 0 seconds (no waiting) or more")
    tls_ca = None
    tls_endpoints = [e for e in endpoints if e.startswith("grpc+tls://")]
    if args.engine == "flight" and tls_endpoints:
        if not args.tls_ca_file:
            raise OptionsError(
                f"--flight-endpoint {tls_endpoints[0]} speaks TLS: give the CA certificate with --tls-ca-file"
            )
        tls_ca = _read_nonempty("--tls-ca-file", args.tls_ca_file).encode()
    pipeline_sql = None
    if args.sql_file:
        if args.engine != "inprocess":
            raise OptionsError(
                "--sql-file applies to --engine inprocess; the flight engine runs the pipelines "
                "`quiver serve` was configured with"
            )
        pipeline_sql = _read_nonempty("--sql-file", args.sql_file)
    nodes = tuple(n.strip() for n in args.cassandra_nodes.split(",") if n.strip())
    if not nodes or not all(re.match(r"^[^\s:]+:\d+$", n) for n in nodes):
        raise OptionsError(f"--cassandra-nodes {args.cassandra_nodes!r} is not host:port[,host:port]")
    credentials = None
    password = env.get("QUIVER_CASSANDRA_PASSWORD") or (
        _read_nonempty("--cassandra-password-file", args.cassandra_password_file)
        if args.cassandra_password_file
        else None
    )
    if bool(args.cassandra_username) != bool(password):
        raise OptionsError(
            "Cassandra credentials need both --cassandra-username and a password "
            "(--cassandra-password-file or QUIVER_CASSANDRA_PASSWORD)"
        )
    if args.cassandra_username:
        credentials = (args.cassandra_username, password)
    if args.cassandra_retry_window < 0:
        raise OptionsError("--cassandra-retry-window must be 0 seconds (fail at the first error) or more")
    consistency = args.cassandra_consistency.strip().upper()
    if consistency not in CONSISTENCY_LEVELS:
        raise OptionsError(
            f"--cassandra-consistency {args.cassandra_consistency!r} is not a write consistency level: "
            f"use one of {', '.join(CONSISTENCY_LEVELS)}"
        )
    return Options(
        bootstrap_servers=args.bootstrap_servers,
        topic=args.topic,
        starting_offsets=args.starting_offsets,
        # argparse has already converted defaults taken from the environment.
        max_offsets_per_trigger=args.max_offsets_per_trigger,
        min_partitions=args.min_partitions,
        fail_on_data_loss=args.fail_on_data_loss,
        checkpoint_location=args.checkpoint_location,
        trigger=trigger,
        app_name=args.app_name,
        engine=args.engine,
        pipeline=args.pipeline,
        pipeline_sql=pipeline_sql,
        flight_endpoints=endpoints,
        tls_ca=tls_ca,
        token=token,
        exchange_timeout_s=args.exchange_timeout,
        connect_retry_s=args.connect_retry,
        max_message_bytes=args.max_message_mib * 1024 * 1024,
        cassandra=CassandraOptions(
            nodes=nodes,
            keyspace=args.cassandra_keyspace,
            credentials=credentials,
            replication_factor=args.cassandra_replication_factor,
            datacenter=args.cassandra_datacenter or None,
            consistency=consistency,
            retry_window_s=args.cassandra_retry_window,
        ),
        checkpoint_interval=interval,
        rt_max_rows=args.rt_max_rows,
        rt_linger_ms=args.rt_linger_ms,
        max_restarts=max_restarts,
        restart_backoff_s=args.restart_backoff,
        metrics_addr=args.job_metrics_addr,
    )


def _seconds(interval: str) -> float:
    """An interval that _PROCESSING_TIME accepted, in seconds."""
    number, unit = interval.split()
    scale = {"millisecond": 0.001, "second": 1, "minute": 60}[unit.rstrip("s")]
    return int(number) * scale


def _read_nonempty(option: str, path: str) -> str:
    """The trimmed contents of a file named by `option`; empty or unreadable is an error."""
    try:
        text = Path(path).read_text().strip()
    except OSError as error:
        raise OptionsError(f"{option} {path}: {error.strerror}") from None
    if not text:
        raise OptionsError(f"{option} {path} is empty")
    return text
