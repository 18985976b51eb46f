"""A throw-away PostgreSQL server for the tests: ``initdb`` + ``pg_ctl`` in a temporary folder on 127.0.0.1.

Uses the server binaries of the Debian ``postgresql`` package (``make system-deps`` installs it when run as
root). PostgreSQL refuses to run as root, so as root the server runs as the ``postgres`` user (``runuser``).
The server trusts local TCP connections, listens on 127.0.0.1 only, on a free port, and is tuned for
speed, not durability (fsync off): it lives for one test session.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

__all__ = ["PostgresServer", "find_server_binaries"]

#: A password put into test URLs; the server trusts 127.0.0.1, so it is never checked, only hidden.
TEST_PASSWORD = "not-a-real-secret-4711"


def find_server_binaries() -> Path:
    """The folder with ``initdb`` and ``pg_ctl`` (the newest Debian PostgreSQL, else ``$PATH``)."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                        key=lambda path: int(path.parts[-3]) if path.parts[-3].isdigit() else 0)
    if candidates:
        return candidates[-1].parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) not found: install the Debian package "
                       "`postgresql` (`make system-deps` does it as root)")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PostgresServer:
    """One running server; :meth:`stop` removes it and its folder."""

    def __init__(self, root: Path, port: int, binaries: Path, run_as: list[str]) -> None:
        self.root, self.port, self._binaries, self._run_as = root, port, binaries, run_as
        self._shared_database = ""

    @classmethod
    def start(cls) -> PostgresServer:
        """initdb and start a server in a new temporary folder."""
        binaries = find_server_binaries()
        root = Path(tempfile.mkdtemp(prefix="gmsdask-pg-"))
        run_as: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(root, user.pw_uid, user.pw_gid)
            run_as = ["runuser", "-u", "postgres", "--"]
        server = cls(root, _free_port(), binaries, run_as)
        try:
            server._run("initdb", "-D", str(root / "data"), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                        "--no-sync", "--no-instructions")
            options = (f"-h 127.0.0.1 -p {server.port} -k {root} -F -c fsync=off -c synchronous_commit=off "
                       "-c full_page_writes=off -c max_connections=60")
            server._run("pg_ctl", "-D", str(root / "data"), "-o", options, "-l", str(root / "server.log"),
                        "-w", "-t", "60", "start")
        except BaseException:
            server.stop()
            raise
        return server

    def _run(self, program: str, *args: str) -> None:
        result = subprocess.run([*self._run_as, str(self._binaries / program), *args],
                                capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            log = self.root / "server.log"
            detail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{program} failed ({result.returncode}): {result.stderr.strip()}\n{detail}")

    def url(self, database: str = "postgres", *, password: str | None = TEST_PASSWORD) -> str:
        """A SQLAlchemy URL (psycopg 3 driver) of ``database`` on this server."""
        secret = f":{password}" if password else ""
        return f"postgresql+psycopg://postgres{secret}@127.0.0.1:{self.port}/{database}"

    def _execute(self, statement: str, database: str = "postgres") -> None:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname=database,
                             autocommit=True) as connection:
            connection.execute(statement)

    def create_database(self, prefix: str = "catalog") -> str:
        """A new empty database; returns its URL (about 0.3 s: tests use :meth:`create_schema`)."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        self._execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def create_schema(self, prefix: str = "catalog") -> str:
        """A new empty schema in the shared test database; returns a URL whose ``search_path`` is it, so
        that a catalogue opened on it sees only its own tables (a database per test costs ten times more)."""
        if not self._shared_database:
            self._shared_database = self.create_database("tests").rsplit("/", 1)[1]
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        self._execute(f'CREATE SCHEMA "{name}"', self._shared_database)
        return f"{self.url(self._shared_database)}?options=-csearch_path%3D{name}"

    def stop(self) -> None:
        """Stop the server (immediately: nothing in it is kept) and delete its folder."""
        if (self.root / "data" / "postmaster.pid").exists():
            subprocess.run([*self._run_as, str(self._binaries / "pg_ctl"), "-D", str(self.root / "data"),
                            "-m", "immediate", "-w", "stop"], capture_output=True, timeout=60, check=False)
        shutil.rmtree(self.root, ignore_errors=True)
