"""The job's settings: arguments, QUIVER_* defaults, and errors that name the fix."""

from __future__ import annotations

import pytest

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
        "QUIVER_KAFKA_BOOTSTRAP": "broker:19092",
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
        (["--pipeline-sql", "/etc/hostname"], "--pipeline-sql applies to --engine inprocess"),
        (["--engine", "inprocess", "--pipeline-sql", "/nonexistent.sql"], "--pipeline-sql /nonexistent.sql: No such"),
        (["--cassandra-consistency", "most"], "--cassandra-consistency 'most' is not a write consistency level"),
        (["--cassandra-retry-window", "-1"], "--cassandra-retry-window must be 0 seconds"),
        (["--cassandra-replication-factor", "0"], "0 must be greater than 0"),
        (["--cassandra-username", "quiver"], "need both --cassandra-username and --cassandra-password-file"),
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
    argv = ["--engine", "inprocess", "--pipeline-sql", str(sql), "--cassandra-username", "quiver"]
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
