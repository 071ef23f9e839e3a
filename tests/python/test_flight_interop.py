"""`quiver serve` from a stock pyarrow.flight client: proves that any Arrow Flight client
can use the service with nothing but the bindings generated from proto/quiver.proto.

Each server runs with `--sink none` on free ports and is stopped by its PID.
"""

from __future__ import annotations

import os
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.flight as flight
import pytest

from conftest import Serve, running_serve
from quiver_dev.kafka_batch import KAFKA_SCHEMA, kafka_batch
from quiver_spark.quiver_pb2 import BatchAck, ExchangeCommand, SqlQuery
from records import good_values


def exchange_command(pipeline: str, return_rows: bool = False) -> bytes:
    return ExchangeCommand(pipeline=pipeline, batch_id=1, return_rows=return_rows).SerializeToString()


def start(token: str | None, tmp, extra_env: dict[str, str] | None = None) -> Iterator[Serve]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUIVER_")}
    env["RUST_LOG"] = "warn"
    if token:
        env["QUIVER_TOKEN"] = token
    env.update(extra_env or {})
    with running_serve(["--sink", "none"], env, tmp / "serve.log") as server:
        yield server


def make_certificates(folder: Path) -> None:
    """ca.pem, and server.pem/server.key for 127.0.0.1 signed by it (openssl CLI)."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    (folder / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n")
    for argv in (
        ["req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "1", "-subj", "/CN=quiver test CA"],
        ["req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"],
        ["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial"]
        + ["-out", "server.pem", "-days", "1", "-extfile", "ext.cnf"],
    ):
        subprocess.run(["openssl", *argv], cwd=folder, check=True, capture_output=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    yield from start(None, tmp_path_factory.mktemp("quiver"))


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    yield from start("interop-token-123", tmp_path_factory.mktemp("quiver-auth"))


def exchange(
    client: flight.FlightClient,
    batches: list[pa.RecordBatch],
    return_rows: bool = False,
    options: flight.FlightCallOptions | None = None,
):
    descriptor = flight.FlightDescriptor.for_command(exchange_command("users", return_rows=return_rows))
    writer, reader = client.do_exchange(descriptor, options=options) if options else client.do_exchange(descriptor)
    writer.begin(KAFKA_SCHEMA)
    for b in batches:
        writer.write_batch(b)
    writer.done_writing()
    return writer, reader


def read_acks(reader: flight.FlightStreamReader) -> list[BatchAck]:
    """Acknowledgements are metadata-only messages: no schema, no rows."""
    acks = []
    while True:
        try:
            chunk = reader.read_chunk()
        except StopIteration:
            return acks
        assert chunk.data is None
        acks.append(BatchAck.FromString(chunk.app_metadata.to_pybytes()))


def test_exchange_acknowledges_each_batch_including_empty_ones(server: Serve) -> None:
    client = flight.connect(server.location)
    values = good_values(5) + [b'{"login": {"uuid": "nope"}}', b"{broken"]
    writer, reader = exchange(client, [kafka_batch(values), kafka_batch([], 100)])
    acks = read_acks(reader)
    writer.close()
    assert [a.sequence for a in acks] == [0, 1]
    assert (acks[0].rows_in, acks[0].rows_out, acks[0].rows_rejected) == (7, 5, 2)
    assert acks[1].rows_in == 0


def test_exchange_can_return_transformed_rows(server: Serve) -> None:
    client = flight.connect(server.location)
    writer, reader = exchange(client, [kafka_batch(good_values(3, 50))], return_rows=True)
    table = reader.read_all()
    writer.close()
    assert table.num_rows == 3
    rows = sorted(table.to_pylist(), key=lambda r: r["id"])
    assert rows[0]["id"] == "00000000-0000-4000-8000-000000000050"
    assert rows[0]["address"] == "60 Kirkegata, Oslo, Østfold, Norway"
    assert rows[0]["post_code"] == "12345"
    assert rows[1]["post_code"] == "0150"
    assert rows[0]["picture"] == "m50.jpg"
    assert table.schema.field("dob").type == pa.timestamp("ms", tz="UTC")
    assert rows[0]["dob"].isoformat() == "1990-02-03T04:05:06.789000+00:00"


def test_pipelines_schemas_and_sql(server: Serve) -> None:
    client = flight.connect(server.location)
    names = [f.descriptor.path[0].decode() for f in client.list_flights()]
    assert names == ["users"]
    schema = client.get_schema(flight.FlightDescriptor.for_path("users", "input")).schema
    assert "value" in schema.names
    writer, reader = exchange(client, [kafka_batch(good_values(4, 200))])
    assert read_acks(reader)[0].rows_out == 4
    writer.close()
    ticket = flight.Ticket(
        SqlQuery(sql="SELECT count(*) AS n FROM users WHERE username = 'user201'").SerializeToString()
    )
    table = client.do_get(ticket).read_all()
    assert table.column("n").to_pylist() == [1]


def test_unknown_pipeline_and_bad_schema_are_refused(server: Serve) -> None:
    client = flight.connect(server.location)
    descriptor = flight.FlightDescriptor.for_command(exchange_command("nope"))
    writer, reader = client.do_exchange(descriptor)
    with pytest.raises(pa.ArrowException, match="unknown pipeline `nope`"):
        writer.begin(KAFKA_SCHEMA)
        writer.write_batch(kafka_batch(good_values(1)))
        writer.done_writing()
        reader.read_all()

    bad = pa.RecordBatch.from_arrays([pa.array([1, 2], pa.int32())], names=["value"])
    descriptor = flight.FlightDescriptor.for_command(exchange_command("users"))
    writer, reader = client.do_exchange(descriptor)
    with pytest.raises(pa.ArrowInvalid, match="column `value` is Int32"):
        writer.begin(bad.schema)
        writer.write_batch(bad)
        writer.done_writing()
        reader.read_all()


def test_metrics_count_the_batches(server: Serve) -> None:
    client = flight.connect(server.location)
    writer, reader = exchange(client, [kafka_batch(good_values(2, 300))])
    read_acks(reader)
    writer.close()
    with urllib.request.urlopen(f"{server.http}/metrics", timeout=5) as r:
        text = r.read().decode()
    assert 'quiver_batches_total{outcome="ok",pipeline="users"}' in text
    assert "quiver_stage_seconds_bucket" in text


def test_a_token_is_required_when_configured(secured: Serve) -> None:
    client = flight.connect(secured.location)
    with pytest.raises(flight.FlightUnauthenticatedError):
        list(client.list_flights())
    wrong = flight.FlightCallOptions(headers=[(b"authorization", b"Bearer wrong")])
    with pytest.raises(flight.FlightUnauthenticatedError):
        list(client.list_flights(options=wrong))
    right = flight.FlightCallOptions(headers=[(b"authorization", b"Bearer interop-token-123")])
    assert [f.descriptor.path[0] for f in client.list_flights(options=right)] == [b"users"]


def test_the_spark_jobs_client_speaks_tls(tmp_path: Path) -> None:
    """`quiver serve` with a certificate, and the job's own exchange() over grpc+tls."""
    from quiver_spark.exchange import ExchangeError, Target, exchange

    make_certificates(tmp_path)
    tls = {"QUIVER_TLS_CERT_FILE": str(tmp_path / "server.pem"), "QUIVER_TLS_KEY_FILE": str(tmp_path / "server.key")}
    for server in start(None, tmp_path, tls):
        location = server.location.replace("grpc://", "grpc+tls://")
        target = Target((location,), "users", (tmp_path / "ca.pem").read_bytes(), None, 30.0, 64 * 1024 * 1024)
        acks = exchange(target, 1, 0, 0, [kafka_batch(good_values(3, 900))])
        assert acks.column("rows_out").to_pylist() == [3]
        other = tmp_path / "other"
        other.mkdir()
        make_certificates(other)
        untrusted = Target((location,), "users", (other / "ca.pem").read_bytes(), None, 30.0, 64 * 1024 * 1024, 0.5)
        with pytest.raises(ExchangeError, match="could not be reached"):
            exchange(untrusted, 1, 0, 0, [kafka_batch(good_values(1))])


def test_the_spark_jobs_client_waits_for_an_unreachable_service_then_names_it() -> None:
    from conftest import free_port
    from quiver_spark.exchange import ExchangeError, Target, exchange

    endpoint = f"grpc://127.0.0.1:{free_port()}"
    target = Target((endpoint,), "users", None, None, 30.0, 64 * 1024 * 1024, connect_retry_s=1.0)
    with pytest.raises(ExchangeError) as raised:
        exchange(target, 1, 0, 0, [kafka_batch(good_values(1))])
    message = str(raised.value)
    assert f"the Flight service at {endpoint} could not be reached in" in message
    attempts = int(message.split(" could not be reached in ")[1].split()[0])
    assert attempts >= 2, message


def test_a_task_fails_over_to_the_next_flight_service_that_answers(tmp_path: Path) -> None:
    """Two endpoints, the first with no service: partition 0 starts there and ends up at
    the second; with neither answering, the error names both."""
    from conftest import free_port
    from quiver_spark.exchange import ExchangeError, Target, endpoints_from, exchange

    dead = f"grpc://127.0.0.1:{free_port()}"
    for server in start(None, tmp_path):
        target = Target((dead, server.location), "users", None, None, 30.0, 64 * 1024 * 1024, connect_retry_s=1.0)
        assert endpoints_from(target, 0, 0) == [dead, server.location]
        # A retried task (attempt 1) and the next partition start at the other service.
        assert endpoints_from(target, 0, 1) == endpoints_from(target, 1, 0) == [server.location, dead]
        for partition in (0, 1):
            acks = exchange(target, 1, partition, 0, [kafka_batch(good_values(2, 700 + partition))])
            assert acks.column("rows_out").to_pylist() == [2]
    other_dead = f"grpc://127.0.0.1:{free_port()}"
    target = Target((dead, other_dead), "users", None, None, 30.0, 64 * 1024 * 1024, connect_retry_s=0.5)
    with pytest.raises(ExchangeError) as raised:
        exchange(target, 1, 0, 0, [kafka_batch(good_values(1))])
    message = str(raised.value)
    assert f"none of the Flight services at {dead}, {other_dead} could be reached in" in message, message
    assert f"{dead}: " in message and f"{other_dead}: " in message, message
    # gRPC's debug context, which repeats each reason, is left to the chained error.
    assert "debug context" not in message, message
