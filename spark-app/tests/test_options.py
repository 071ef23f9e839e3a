"""The job's settings: arguments, QUIVER_* defaults derived from the flags, old names, the
Cassandra defaults it shares with `quiver serve`, and errors that name the fix."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import tomllib

from quiver_dev.paths import built_quiver_bin
from quiver_spark import options


def test_defaults_are_the_local_stack():
    o = options.parse([], env={})
    assert (o.bootstrap_servers, o.topic, o.flight_endpoints, o.pipeline) == (
        "127.0.0.1:9092",
        "users_created",
        ("grpc://127.0.0.1:50051",),
        "users",
    )
    assert (o.starting_offsets, o.max_offsets_per_trigger, o.fail_on_data_loss) == ("earliest", 200000, True)
    assert o.trigger == "1 second" and not o.available_now
    assert o.token is None
    assert o.max_message_bytes == 256 * 1024 * 1024


def test_environment_sets_defaults_and_arguments_win():
    env = {
        "QUIVER_BOOTSTRAP_SERVERS": "broker:19092",
        "QUIVER_TOPIC": "from_env",
        "QUIVER_MAX_OFFSETS_PER_TRIGGER": "5000",
        "QUIVER_FAIL_ON_DATA_LOSS": "false",
        "QUIVER_TRIGGER": "available-now",
    }
    o = options.parse(["--topic", "from_args"], env=env)
    assert o.bootstrap_servers == "broker:19092"
    assert o.topic == "from_args"
    assert o.max_offsets_per_trigger == 5000
    assert o.fail_on_data_loss is False
    assert o.available_now


def test_token_comes_from_a_file_or_the_environment(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("s3cret\n")
    assert options.parse(["--token-file", str(token_file)], env={}).token == "s3cret"
    assert options.parse([], env={"QUIVER_TOKEN": "from-env"}).token == "from-env"
    # The variable wins over the file, as the secret reader of `quiver serve` has it.
    both = options.parse(["--token-file", str(token_file)], env={"QUIVER_TOKEN": "from-env"})
    assert both.token == "from-env"


def test_the_cassandra_password_comes_from_its_variable_or_else_its_file(tmp_path):
    password = tmp_path / "password"
    password.write_text("from-file\n")
    argv = ["--engine", "inprocess", "--cassandra-username", "quiver"]
    from_env = options.parse(argv, env={"QUIVER_CASSANDRA_PASSWORD": "from-env"})
    assert from_env.cassandra.credentials == ("quiver", "from-env")
    from_file = options.parse([*argv, "--cassandra-password-file", str(password)], env={})
    assert from_file.cassandra.credentials == ("quiver", "from-file")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--trigger", "soon"], "--trigger 'soon' is neither 'available-now', 'realtime' nor an interval"),
        (["--trigger", "500 ms"], "--trigger '500 ms' is neither 'available-now', 'realtime' nor an interval"),
        (["--trigger", "realtime", "--engine", "inprocess"], "--trigger realtime needs --engine flight"),
        (["--checkpoint-interval", "2 seconds"], "--checkpoint-interval '2 seconds' is not an interval of at least"),
        (["--checkpoint-interval", "soon"], "--checkpoint-interval 'soon' is not an interval of at least"),
        (["--rt-max-rows", "0"], "0 must be greater than 0"),
        (["--rt-linger-ms", "-1"], "--rt-linger-ms must be 0"),
        (["--max-restarts", "-1"], "--max-restarts must be 0"),
        (["--flight-endpoint", "http://x:1"], "--flight-endpoint 'http://x:1' is not grpc://host:port"),
        (
            ["--flight-endpoint", "grpc://a:1,b:2"],
            "--flight-endpoint 'b:2' is not grpc://host:port (or grpc+tls://host:port) in 'grpc://a:1,b:2'",
        ),
        (["--flight-endpoint", "grpc://a:1, grpc://a:1"], "names an endpoint twice"),
        (["--flight-endpoint", " , "], "--flight-endpoint is empty"),
        (["--max-offsets-per-trigger", "0"], "0 must be greater than 0"),
        (["--fail-on-data-loss", "maybe"], "'maybe' is not a boolean"),
        (["--token-file", "/nonexistent/token"], "--token-file /nonexistent/token: No such file or directory"),
        (["--engine", "carrier-pigeon"], "invalid choice: 'carrier-pigeon'"),
        (["--engine", "inprocess", "--cassandra-nodes", "db"], "--cassandra-nodes 'db' is not host:port"),
        (["--sql-file", "/etc/hostname"], "--sql-file applies to --engine inprocess"),
        (["--engine", "inprocess", "--sql-file", "/nonexistent.sql"], "--sql-file /nonexistent.sql: No such"),
        (["--cassandra-consistency", "most"], "--cassandra-consistency 'most' is not a write consistency level"),
        (["--cassandra-retry-window", "-1"], "--cassandra-retry-window must be 0 seconds"),
        (["--cassandra-replication-factor", "0"], "0 must be greater than 0"),
        (["--cassandra-username", "quiver"], "need both --cassandra-username and a password"),
        (["--flight-endpoint", "grpc+tls://svc:50051"], "speaks TLS: give the CA certificate with --tls-ca-file"),
    ],
)
def test_bad_settings_name_the_problem(argv, message, capsys):
    with pytest.raises(SystemExit) as exited:
        options.parse(argv, env={})
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_processing_time_triggers_are_accepted():
    for trigger in ["500 milliseconds", "1 second", "2 seconds", "1 minute"]:
        assert options.parse(["--trigger", trigger], env={}).trigger == trigger


def test_inprocess_engine_settings(tmp_path):
    sql = tmp_path / "users.sql"
    sql.write_text("SELECT * FROM raw_users\n")
    password = tmp_path / "password"
    password.write_text("pw\n")
    env = {"QUIVER_CASSANDRA_NODES": "a:9042, b:9043", "QUIVER_CASSANDRA_PASSWORD_FILE": str(password)}
    argv = ["--engine", "inprocess", "--sql-file", str(sql), "--cassandra-username", "quiver"]
    o = options.parse(argv, env=env)
    assert o.engine == "inprocess"
    assert o.pipeline_sql == "SELECT * FROM raw_users"
    assert o.cassandra.nodes == ("a:9042", "b:9043")
    assert o.cassandra.keyspace == "spark_streams"
    assert o.cassandra.credentials == ("quiver", "pw")
    assert (o.cassandra.consistency, o.cassandra.retry_window_s, o.cassandra.datacenter) == ("LOCAL_QUORUM", 60, None)


def test_several_flight_endpoints():
    o = options.parse(["--flight-endpoint", "grpc://a:50051, grpc://b:50051"], env={})
    assert o.flight_endpoints == ("grpc://a:50051", "grpc://b:50051")


def test_the_token_file_variable_is_the_one_quiver_serve_reads(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("t0ken")
    assert options.parse([], env={"QUIVER_TOKEN_FILE": str(token_file)}).token == "t0ken"


def test_realtime_settings_and_their_defaults():
    o = options.parse(["--trigger", "realtime"], env={})
    assert o.realtime and not o.available_now
    assert (o.checkpoint_interval, o.rt_max_rows, o.rt_linger_ms) == ("5 minutes", 2000, 20)
    # Real-time tasks are not retried, so the driver restarts the query; micro-batches rely
    # on Spark's task retries.
    assert o.max_restarts == 5
    assert options.parse([], env={}).max_restarts == 0
    env = {
        "QUIVER_TRIGGER": "realtime",
        "QUIVER_CHECKPOINT_INTERVAL": "30 seconds",
        "QUIVER_RT_MAX_ROWS": "500",
        "QUIVER_RT_LINGER_MS": "0",
        "QUIVER_MAX_RESTARTS": "2",
    }
    o = options.parse([], env=env)
    assert (o.checkpoint_interval, o.rt_max_rows, o.rt_linger_ms, o.max_restarts) == ("30 seconds", 500, 0, 2)


def test_every_option_is_set_by_the_variable_its_flag_names(capsys):
    """QUIVER_ and the flag without its dashes, upper-cased, `-` as `_`: the rule of quiver's
    own subcommands, so that one key is one variable everywhere."""
    parser = options.build_parser({})
    # argparse lists its options in this attribute only.
    flagged = [a for a in parser._actions if "--help" not in a.option_strings]
    variables = []
    for action in flagged:
        flag = action.option_strings[0]
        variable = "QUIVER_" + flag.removeprefix("--").upper().replace("-", "_")
        assert action.help.endswith(f"({variable})"), f"{flag}'s help names its variable"
        assert options.build_parser({variable: "from-env"}).get_default(action.dest) == "from-env", flag
        variables.append(variable)
    assert {"QUIVER_BOOTSTRAP_SERVERS", "QUIVER_SQL_FILE", "QUIVER_MAX_MESSAGE_MIB", "QUIVER_JOB_METRICS_ADDR"} <= set(
        variables
    )
    assert capsys.readouterr().err == "", "no old name was used, so nothing warns"


# Each old variable, its new one, arguments the setting needs to apply, and how it reads
# back; the tests give it "1" or "2".
RENAMED_VARIABLES = [
    ("QUIVER_KAFKA_BOOTSTRAP", "QUIVER_BOOTSTRAP_SERVERS", [], lambda o: o.bootstrap_servers),
    ("QUIVER_PIPELINE_SQL", "QUIVER_SQL_FILE", ["--engine", "inprocess"], lambda o: o.pipeline_sql),
    ("QUIVER_FLIGHT_MAX_MESSAGE_MIB", "QUIVER_MAX_MESSAGE_MIB", [], lambda o: str(o.max_message_bytes // 2**20)),
]
# Each old flag, its new one, arguments the setting needs to apply, a value and how it reads back.
RENAMED_FLAGS = [
    ("--pipeline-sql", "--sql-file", ["--engine", "inprocess"], "users.sql", lambda o: o.pipeline_sql),
    ("--metrics-addr", "--job-metrics-addr", [], "127.0.0.1:9466", lambda o: "{}:{}".format(*o.metrics_addr)),
]


@pytest.fixture
def files_holding_their_names(tmp_path, monkeypatch):
    """The test runs in a folder where 1, 2 and users.sql are files that hold their own
    names, so that a pipeline file given by name reads back as that name."""
    monkeypatch.chdir(tmp_path)
    for name in ("1", "2", "users.sql"):
        (tmp_path / name).write_text(name)


def test_every_old_name_is_tested():
    assert sorted(old for old, *_ in RENAMED_VARIABLES) == sorted(options.OLD_VARIABLES)
    assert sorted(old for old, *_ in RENAMED_FLAGS) == sorted(options.OLD_FLAGS)


@pytest.mark.usefixtures("files_holding_their_names")
@pytest.mark.parametrize(("old", "new", "argv", "read"), RENAMED_VARIABLES)
def test_an_old_variable_still_works_and_names_the_new_one(old, new, argv, read, capsys):
    assert read(options.parse(argv, env={old: "1"})) == "1"
    assert capsys.readouterr().err == f"warning: {old} is the old name of {new}; it still works in this release\n"
    assert read(options.parse(argv, env={old: "1", new: "2"})) == "2"
    assert capsys.readouterr().err == f"warning: {old} is the old name of {new}, which is set too: {old} is ignored\n"
    assert read(options.parse(argv, env={new: "2"})) == "2"
    assert capsys.readouterr().err == ""


@pytest.mark.usefixtures("files_holding_their_names")
@pytest.mark.parametrize(("old", "new", "argv", "value", "read"), RENAMED_FLAGS)
def test_an_old_flag_still_works_and_names_the_new_one(old, new, argv, value, read, capsys):
    assert read(options.parse([*argv, old, value], env={})) == value
    assert capsys.readouterr().err == f"warning: {old} is the old name of {new}; it still works in this release\n"
    assert read(options.parse([*argv, new, value], env={})) == value
    assert capsys.readouterr().err == ""


# --- the Cassandra defaults, shared with `quiver serve` ---------------------------------

# The units of the humantime durations quiver prints ("1m", "500ms", "1m 30s", "2h").
DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
_DURATION_PART = r"(\d+)\s*(ms|s|m|h)"


def duration_seconds(value: str | int | float) -> float:
    """A duration as quiver prints it, in seconds; a bare number is seconds."""
    if isinstance(value, (int, float)) or re.fullmatch(r"\d+", value):
        return float(value)
    if not re.fullmatch(rf"\s*(?:{_DURATION_PART}\s*)+", value):
        raise ValueError(f"{value!r} is not a duration such as '1m 30s'")
    return sum(int(number) * DURATION_UNITS[unit] for number, unit in re.findall(_DURATION_PART, value))


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("1m", 60), ("500ms", 0.5), ("1m 30s", 90), ("2h", 7200), ("1h 1ms", 3600.001), ("45", 45), (45, 45)],
)
def test_durations_read_as_quiver_prints_them(value, seconds):
    assert duration_seconds(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["", "m", "1.5m", "1 fortnight", "1m 30"])
def test_a_duration_in_another_form_is_an_error(value):
    with pytest.raises(ValueError, match="is not a duration"):
        duration_seconds(value)


def serve_defaults(folder: Path) -> dict:
    """The [serve] table of `quiver serve --print-config` with no setting: run in an empty
    folder, without the QUIVER_* variables (scripts/test exports the stack's)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUIVER_")}
    done = subprocess.run(
        [str(built_quiver_bin()), "serve", "--print-config"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return tomllib.loads(done.stdout)["serve"]


def test_cassandra_defaults_mirror_quiver_serve(tmp_path):
    """The in-process engine creates and writes the tables `quiver serve` does: unset, both
    must do it alike."""
    serve = serve_defaults(tmp_path)
    job = options.parse([], env={}).cassandra
    assert {
        "cassandra-nodes": tuple(serve["cassandra-nodes"]),
        "cassandra-keyspace": serve["cassandra-keyspace"],
        "cassandra-replication-factor": serve["cassandra-replication-factor"],
        "cassandra-datacenter": serve.get("cassandra-datacenter"),
        "cassandra-consistency": serve["cassandra-consistency"],
        "cassandra-retry-window": duration_seconds(serve["cassandra-retry-window"]),
    } == {
        "cassandra-nodes": job.nodes,
        "cassandra-keyspace": job.keyspace,
        "cassandra-replication-factor": job.replication_factor,
        "cassandra-datacenter": job.datacenter,
        "cassandra-consistency": job.consistency,
        "cassandra-retry-window": job.retry_window_s,
    }
