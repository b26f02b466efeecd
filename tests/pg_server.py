"""A throwaway PostgreSQL cluster on 127.0.0.1 for tests (Debian's ``postgresql`` package).

``initdb`` refuses to run as root, so under root the cluster belongs to the ``postgres`` system user
(``runuser -u postgres``) and lives in a folder under the system temp dir that user can reach; otherwise
it runs as the current user. fsync is off (throwaway data), the Unix socket is off (TCP on 127.0.0.1
only), and authentication is ``trust`` for the cluster's superuser ``benchd``. Start fails loudly.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.mlflow_server import free_port
from tests.system_tools import require_tool

SUPERUSER = "benchd"


def _bin(name: str) -> str:
    """Return the path of a PostgreSQL server program (PATH, else Debian's versioned folder)."""
    return require_tool(name)


def _as_owner() -> list[str]:
    """Return the command prefix that runs a server program as a user initdb accepts."""
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


@dataclass(frozen=True)
class PGServer:
    """A running cluster: its port and an admin URL; :meth:`create_database` makes a fresh database."""

    port: int
    root: Path

    def url(self, database: str = "postgres") -> str:
        """Return the URL of ``database`` as the superuser (no password: trust on 127.0.0.1)."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, prefix: str = "t") -> str:
        """Create an empty database with a unique name; return its URL."""
        import psycopg

        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Drop a database made by :meth:`create_database` (its connections are terminated first)."""
        import psycopg

        name = url.rsplit("/", 1)[1].split("?", 1)[0]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def running_pg_server(max_connections: int = 300) -> Iterator[PGServer]:
    """Start a cluster on a free port, yield it, then stop it and delete its files.

    Raises:
        RuntimeError: initdb or the server failed (the message carries their output).
    """
    root = Path(tempfile.mkdtemp(prefix="benchd-pg-"))
    os.chmod(root, 0o755)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    data = root / "data"
    prefix = _as_owner()
    run = subprocess.run(
        [
            *prefix,
            _bin("initdb"),
            "-D",
            str(data),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if run.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"initdb failed ({run.returncode}):\n{run.stdout}\n{run.stderr}")
    port = free_port()
    options = (
        f"-p {port} -h 127.0.0.1 -k '' -c fsync=off -c synchronous_commit=off -c full_page_writes=off "
        f"-c max_connections={max_connections}"
    )
    start = subprocess.run(
        [
            *prefix,
            _bin("pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(root / "server.log"),
            "-w",
            "-t",
            "60",
            "-o",
            options,
            "start",
        ],
        capture_output=True,
        text=True,
        timeout=90,
    )
    if start.returncode != 0:
        log = (root / "server.log").read_text(errors="replace") if (root / "server.log").exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(
            f"PostgreSQL did not start ({start.returncode}):\n{start.stdout}\n{start.stderr}\n{log}"
        )
    try:
        yield PGServer(port, root)
    finally:
        subprocess.run(
            [*prefix, _bin("pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(root, ignore_errors=True)


def pg_server_fixture() -> Callable[[], Iterator[PGServer]]:
    """Return a generator function for a session-scoped pytest fixture (wrap it with ``pytest.fixture``)."""

    def fixture() -> Iterator[PGServer]:
        with running_pg_server() as server:
            yield server

    return fixture
