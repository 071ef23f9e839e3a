"""PostgreSQL: the batch leg's sink and the home of Airflow's metadata database."""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import subprocess
from pathlib import Path

from quiver_dev.stack.process import launcher, write
from quiver_dev.stack.settings import Settings, StackError


def _as_postgres_user() -> list[str]:
    """Postgres refuses to run as root; under root, run its tools as the postgres user."""
    # runuser lives in /usr/sbin, which a root shell's PATH may leave out.
    runuser = shutil.which("runuser") or "/usr/sbin/runuser"
    return [runuser, "-u", "postgres", "--"] if os.geteuid() == 0 else []


# Where Postgres's folders go when the postgres user cannot enter the state folder.
POSTGRES_SHARED_HOME = Path("/var/lib/quiver")


def postgres_dirs(s: Settings) -> tuple[Path, Path]:
    """Postgres's data and socket folders: in the state folder, unless the stack runs as
    root with the state folder inside a private one (such as /root), which the postgres
    user that Postgres runs as cannot enter. Then under /var/lib/quiver, in a folder named
    after the state folder, so that two checkouts keep apart."""
    data, sockets = s.data("postgres"), s.run / "postgres"
    owner = _as_postgres_user()
    if not owner:
        return data, sockets
    existing = s.state
    while not existing.exists():
        existing = existing.parent
    if subprocess.run([*owner, "test", "-x", str(existing)]).returncode == 0:
        return data, sockets
    home = POSTGRES_SHARED_HOME / f"postgres-{hashlib.sha256(str(s.state.resolve()).encode()).hexdigest()[:12]}"
    return home / "data", home / "run"


def postgres_prepare(s: Settings) -> Path:
    pg = s.postgres_bin
    if not (pg / "postgres").exists():
        raise StackError(f"PostgreSQL {s.versions['POSTGRES_MAJOR']} is not installed ({pg}): run scripts/setup")
    data, sockets = postgres_dirs(s)
    owner = _as_postgres_user()
    for d in (data, sockets):
        d.mkdir(parents=True, exist_ok=True)
        if owner:
            shutil.chown(d, "postgres", "postgres")
    data.chmod(0o700)
    if owner and subprocess.run([*owner, "test", "-w", str(data)]).returncode != 0:
        raise StackError(f"the postgres user cannot write {data}: give it that folder (chown postgres)")
    if not (data / "PG_VERSION").exists():
        password_file = s.postgres_password_file
        if not os.environ.get("QUIVER_POSTGRES_PASSWORD") and not password_file.exists():
            write(password_file, secrets.token_urlsafe(24) + "\n", 0o600)
        # initdb reads the password from a file the postgres user can open; remove it after.
        pwfile = sockets / "initdb-password"
        write(pwfile, s.postgres_password() + "\n", 0o600)
        if owner:
            shutil.chown(pwfile, "postgres", "postgres")
        try:
            init = subprocess.run(
                [
                    *owner,
                    str(pg / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    s.postgres_user,
                    f"--pwfile={pwfile}",
                    "--auth-host=scram-sha-256",
                    "--auth-local=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                ],
                capture_output=True,
                text=True,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if init.returncode != 0:
            raise StackError(f"initdb in {data} failed:\n{init.stdout}{init.stderr}")
    return launcher(
        s,
        "postgres",
        {},
        [
            str(pg / "postgres"),
            "-D",
            str(data),
            "-c",
            f"listen_addresses={s.host}",
            "-c",
            f"port={s.postgres_port}",
            "-c",
            f"unix_socket_directories={sockets}",
            "-c",
            "shared_buffers=128MB",
            "-c",
            "max_connections=100",
            "-c",
            "logging_collector=off",
        ],
    )


def postgres_connect(s: Settings, dbname: str):
    import psycopg

    return psycopg.connect(
        host=s.host,
        port=s.postgres_port,
        user=s.postgres_user,
        password=s.postgres_password(),
        dbname=dbname,
        connect_timeout=2,
        autocommit=True,
    )


def postgres_healthy(s: Settings) -> str:
    with postgres_connect(s, "postgres") as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
    return f"PostgreSQL {version}"


def postgres_after_start(s: Settings) -> None:
    with postgres_connect(s, "postgres") as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (s.postgres_db,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{s.postgres_db}"')
