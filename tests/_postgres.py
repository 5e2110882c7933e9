"""A real PostgreSQL server for the ledger and budget tests.

Where the server comes from, in order:

1. ``$COMPUTEKIT_TEST_POSTGRES_DSN`` (``postgresql://user@127.0.0.1:5432/db``): that server (``.ci/run`` starts
   one and sets it).
2. Else, when PostgreSQL's programs are installed (``initdb``, ``pg_ctl`` on ``PATH`` or under
   ``/usr/lib/postgresql/*/bin``): a throwaway cluster in a temporary directory, on a free loopback port, started
   once per test session and removed at its end (run as the ``postgres`` user when the tests run as root,
   because PostgreSQL refuses to run as root). So plain ``python -m pytest`` on a machine with PostgreSQL
   installed runs the PostgreSQL tests too.
3. Else the PostgreSQL tests are skipped, except in CI (``CI=true``), where a missing server is a failure.

Each test gets its own schema (``search_path`` in the URL), dropped when it ends, so tests never see each other's
rows. ``ledger_url`` gives each test a fresh ledger on both backends (SQLite, PostgreSQL). The fixtures are
registered in ``tests/conftest.py``.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

DSN_ENV = "COMPUTEKIT_TEST_POSTGRES_DSN"
_START_TIMEOUT_S = 60


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _unavailable(why: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"PostgreSQL is required in CI: {why}")
    pytest.skip(f"no PostgreSQL: {why}")


class _Throwaway:
    """A PostgreSQL cluster in a temporary directory, on loopback."""

    def __init__(self, *, fsync: bool = False) -> None:
        initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
        if not initdb or not pg_ctl:
            raise FileNotFoundError("initdb / pg_ctl not found")
        self.pg_ctl = pg_ctl
        self.dir = Path(tempfile.mkdtemp(prefix="ck-pg-"))
        self.data = self.dir / "data"
        self.port = _free_port()
        self.prefix: list[str] = []
        if os.geteuid() == 0:  # postgres refuses to run as root: run it as the postgres user
            import pwd

            user = pwd.getpwnam("postgres")
            os.chown(self.dir, user.pw_uid, user.pw_gid)
            self.prefix = ["runuser", "-u", "postgres", "--"]
        self._run([initdb, "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync",
                   "--locale=C"])
        # fsync off by default: the tests kill clients, never the server, and run faster without it.
        opts = f"-h 127.0.0.1 -p {self.port} -k {self.dir} -c fsync={'on' if fsync else 'off'} -c max_connections=200"
        self._run([pg_ctl, "-D", str(self.data), "-o", opts, "-l", str(self.dir / "log"), "-w",
                   "-t", str(_START_TIMEOUT_S), "start"])
        self.dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, cmd: list[str]) -> None:
        done = subprocess.run([*self.prefix, *cmd], capture_output=True, text=True, timeout=_START_TIMEOUT_S)
        if done.returncode != 0:
            log = self.dir / "log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(cmd)} failed: {done.stderr or done.stdout}\n{tail}")

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._run([self.pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop"])
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """A PostgreSQL server's URL (see the module doc); skips, or fails in CI, when there is none."""
    try:
        import psycopg
    except ImportError:
        _unavailable("psycopg is not installed (pip install 'psycopg[binary]')")
        raise  # unreachable: _unavailable skips or fails
    dsn = os.environ.get(DSN_ENV)
    server: _Throwaway | None = None
    if not dsn:
        try:
            server = _Throwaway()
        except (OSError, RuntimeError, subprocess.SubprocessError) as e:
            _unavailable(f"${DSN_ENV} is not set and no throwaway server could start ({e})")
        assert server is not None
        dsn = server.dsn
    try:
        with psycopg.connect(dsn, connect_timeout=10) as c:
            c.execute("SELECT 1")
    except psycopg.OperationalError as e:
        if server is not None:
            server.stop()
        _unavailable(f"cannot connect to {dsn.split('@')[-1]}: {e}")
    try:
        yield dsn
    finally:
        if server is not None:
            server.stop()


@pytest.fixture
def postgres_url(postgres_dsn: str) -> Iterator[str]:
    """A ledger URL on the test server, in a schema of this test's own (dropped at its end). Its sessions are
    named after the schema (``application_name``), so that the drop can find the ones still there."""
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_dsn, autocommit=True) as c:
        c.execute(f"CREATE SCHEMA {schema}")  # type: ignore[arg-type]
    sep = "&" if "?" in postgres_dsn else "?"
    yield f"{postgres_dsn}{sep}options={quote(f'-csearch_path={schema}')}&application_name={schema}"
    drop_schema(postgres_dsn, schema)


def drop_schema(dsn: str, schema: str) -> None:
    """Drop a test's schema once none of the test's sessions is left on the server.

    A client killed in the middle of a statement (the durability tests SIGKILL writers) leaves its session on the
    server running that statement until the server next talks to it. That session locks the schema's tables one
    by one, and ``DROP SCHEMA ... CASCADE`` takes them in another order: each can wait for the other, a deadlock
    the server breaks by failing the drop. So the test's sessions are ended first, and waited for."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as c:
        give_up = time.monotonic() + _START_TIMEOUT_S
        # Ended (pg_terminate_backend), a session is listed until its process has exited and let go of its locks.
        while time.monotonic() < give_up and c.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = %s AND pid <> pg_backend_pid()", (schema,)).fetchone() != (0,):
            time.sleep(0.01)
        c.execute(f"DROP SCHEMA {schema} CASCADE")  # type: ignore[arg-type]


@pytest.fixture(params=["sqlite", "postgres"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh ledger's URL on each backend: a SQLite file, and a schema on the PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'l.db'}"
    return str(request.getfixturevalue("postgres_url"))
