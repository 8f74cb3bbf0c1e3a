"""A throw-away PostgreSQL server for the tests (pytest plugin, loaded by tests/conftest.py).

Starts the PostgreSQL binaries of Debian's ``postgresql`` package (``.ci/run`` installs it) in a
temporary folder on a free loopback port, with password authentication over TCP, and removes it
afterwards. initdb refuses to run as root, so as root the server runs as the ``postgres`` user
that the package creates. Missing binaries fail the tests in CI (``CI`` set) and skip them, with
the same message, elsewhere; ``SEESAW_NO_POSTGRES=1`` skips them on purpose.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

USER, PASSWORD = "seesaw", "seesaw-test-pw"


def pg_bin_dir() -> Path | None:
    """The folder of initdb/pg_ctl: $SEESAW_PG_BIN, Debian's /usr/lib/postgresql/N/bin, or $PATH."""
    if os.environ.get("SEESAW_PG_BIN"):
        return Path(os.environ["SEESAW_PG_BIN"])
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    """One PostgreSQL server in a temporary folder; ``url(db)`` is what ``--storage`` takes."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="seesaw-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:  # initdb refuses root: run the server as the package's postgres user
            if shutil.which("runuser") is None:
                raise RuntimeError("running as root needs runuser (util-linux) to start PostgreSQL as user postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.root, "postgres", "postgres")
        pwfile = self.root / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if self.as_user:
            shutil.chown(pwfile, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", USER, f"--pwfile={pwfile}", "--auth-host=scram-sha-256",
                  "--auth-local=trust", "--encoding=UTF8", "--no-sync")
        with open(self.data / "postgresql.conf", "a") as f:
            f.write(f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\nunix_socket_directories = '{self.root}'\n"
                    "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 200\n")
        self.start()

    def _run(self, tool: str, *args: str) -> str:
        proc = subprocess.run([*self.as_user, str(self.bin / tool), *args], capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"{tool} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
        return proc.stdout

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def psql(self, sql: str, db: str = "postgres") -> str:
        return self._run("psql", "-h", str(self.root), "-p", str(self.port), "-U", USER, "-d", db, "-v",
                         "ON_ERROR_STOP=1", "-At", "-c", sql)

    def create_database(self, name: str | None = None) -> str:
        name = name or "t_" + uuid.uuid4().hex[:12]
        self.psql(f'CREATE DATABASE "{name}"')
        return name

    def url(self, db: str, password: str = PASSWORD) -> str:
        return f"postgresql://{USER}:{password}@127.0.0.1:{self.port}/{db}"

    def close(self) -> None:
        try:
            self.stop("immediate")
        except RuntimeError:
            pass  # already stopped
        shutil.rmtree(self.root, ignore_errors=True)


def start_server() -> PgServer:
    """A running server, or what is missing: a test failure in CI (``CI`` set, where .ci/run installs
    the binaries), a skip saying how to get them elsewhere (the README's test command on a machine
    without PostgreSQL)."""
    if os.environ.get("SEESAW_NO_POSTGRES") == "1":
        pytest.skip("SEESAW_NO_POSTGRES=1: PostgreSQL tests skipped on request")
    bin_dir = pg_bin_dir()
    if bin_dir is None or not (bin_dir / "initdb").exists():
        missing = ("PostgreSQL binaries (initdb, pg_ctl) not found: `apt-get install -y postgresql` (.ci/run does), "
                   "or set SEESAW_PG_BIN")
        if os.environ.get("CI"):
            pytest.fail(missing, pytrace=False)
        pytest.skip(missing + "; CI installs them and runs these tests")
    try:
        import psycopg  # noqa: F401  (psycopg 3: the driver SQLAlchemy 2.1 uses for postgresql:// URLs)
    except ImportError:
        pytest.fail("psycopg is missing: pip install -r requirements-test.txt", pytrace=False)
    return PgServer(bin_dir)


@pytest.fixture(scope="session")
def pg_server():
    """One PostgreSQL server for the test session."""
    server = start_server()
    yield server
    server.close()


@pytest.fixture
def pg_url(pg_server) -> str:
    """A fresh, empty database on the session's server, as a storage URL."""
    return pg_server.url(pg_server.create_database())


@pytest.fixture
def own_pg_server():
    """A server of the test's own, for tests that stop and start it."""
    server = start_server()
    yield server
    server.close()
