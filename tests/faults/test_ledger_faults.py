"""Fault catalogue: the ledger's files and durability — who can read the file, and what survives a process that
ends abruptly (SIGTERM, ``os._exit``, a multiprocessing worker's end) or a row that cannot be written.

The process cases run real subprocesses (``sys.executable``) against a real SQLite file.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sqlite3
import stat
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fault_server import Waits, chat, close, make_client, run

import computekit as ck
from computekit._config import RoutingConfig
from computekit.ledger import LedgerRow, SQLiteLedger
from computekit.routing import Router

both = pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """umask 0: the modes below come from computekit, not from a cautious umask of the machine running tests."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


# ============================================================================================= file modes


@posix_only
@both
async def test_default_ledger_is_private_to_its_owner(faults: Any, waits: Waits, is_async: bool, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch, open_umask: None) -> None:
    """The per-user default ledger: its folder 0700, the file and its -wal/-shm 0600, even under umask 0."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("COMPUTEKIT_LEDGER", raising=False)
    srv = faults(chat("Hello"))
    client = make_client(is_async, srv.url, waits, ledger=None)
    try:
        r = await run(client.complete("openai:gpt-4o-mini", "hi", tags={"customer": "acme-42"}))
        assert r.text == "Hello"
        assert [row.tags for row in client.ledger.rows()] == [{"customer": "acme-42"}]
        folder = tmp_path / "xdg" / "computekit"
        files = {p.name: mode(p) for p in folder.iterdir()}  # while open: the WAL files exist
    finally:
        await close(client)
    assert mode(folder) == 0o700
    assert files == {"ledger.db": 0o600, "ledger.db-wal": 0o600, "ledger.db-shm": 0o600}


@posix_only
def test_ledger_in_a_new_folder_of_the_users_choice_is_private(tmp_path: Path, open_umask: None) -> None:
    db = tmp_path / "a" / "b" / "spend.db"
    lg = SQLiteLedger(db, buffered=True)
    try:
        lg.rows()
        assert {p.name: mode(p) for p in db.parent.iterdir()} == {
            "spend.db": 0o600, "spend.db-wal": 0o600, "spend.db-shm": 0o600}
        assert mode(db.parent) == 0o700
    finally:
        lg.close()


@posix_only
def test_existing_ledger_file_and_folder_keep_their_modes(tmp_path: Path, open_umask: None) -> None:
    """A file the user made group-readable on purpose (a shared reporting group) stays so, as does its folder."""
    folder = tmp_path / "shared"
    folder.mkdir(mode=0o750)
    folder.chmod(0o750)
    db = folder / "ledger.db"
    SQLiteLedger(db).close()
    db.chmod(0o640)
    lg = SQLiteLedger(db)
    try:
        lg.rows()
        assert mode(db) == 0o640
        assert mode(Path(f"{db}-wal")) == 0o640  # SQLite follows the database file
        assert mode(folder) == 0o750
    finally:
        lg.close()


# ============================================================================================= process ends

N = 300  # calls per process: rows still queued when it ends (a 30 s flush interval)
TESTS = Path(__file__).resolve().parent.parent  # where _ledger_workers lives

CHILD = """
import os, signal, sys, time
sys.path.insert(0, {tests!r})
from _ledger_workers import fake_calls

mode, is_async = {mode!r}, {is_async!r}

def app_handler(signum, frame):
    print("app handler ran", flush=True)
    sys.exit(3)

if mode == "app-handler-before":
    signal.signal(signal.SIGTERM, app_handler)
client = fake_calls({url!r}, {n}, "child", is_async=is_async, flush_on_sigterm=(mode != "opted-out"),
                    flush_interval={interval})
if mode == "app-handler-after":
    signal.signal(signal.SIGTERM, app_handler)
if mode == "os-exit-at-once":
    os._exit(0)
if mode == "os-exit-after-interval":
    # Once another connection (which flushes nothing) sees every row, the writer has committed them on its own.
    # Waited for, not slept for: a loaded machine may run the writer later than a fixed sleep allows.
    import sqlite3
    give_up = time.monotonic() + 60
    while time.monotonic() < give_up:
        con = sqlite3.connect({url!r}.removeprefix("sqlite:///"))
        seen = con.execute("SELECT count(*) FROM attempts").fetchone()[0]
        con.close()
        if seen >= {n}:
            break
        time.sleep(0.05)
    os._exit(0)
print("ready", flush=True)
for _ in range(600):
    time.sleep(0.1)
"""


def run_child(mode: str, is_async: bool, db: Path, *, sigterm: bool = True, interval: float = 30.0
              ) -> tuple[int, str]:
    """Run the child script; once it has made its calls, send SIGTERM (when ``sigterm``). Its exit status and
    output."""
    import signal
    import subprocess

    code = CHILD.format(tests=str(TESTS), mode=mode, is_async=is_async, url=f"sqlite:///{db}", n=N,
                        interval=interval)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        if sigterm:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line == "ready\n", proc.stderr.read() if proc.stderr else line
            proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, out + err


def child_rows(db: Path) -> int:
    lg = SQLiteLedger(db)
    try:
        return sum(1 for r in lg.rows() if r.tags == {"run": "child"})
    finally:
        lg.close()


posix_signals = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


@posix_signals
@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_sigterm_writes_queued_rows_and_still_ends_the_process(tmp_path: Path, is_async: bool) -> None:
    """No handler of the application's: every queued row is written, then the process ends by SIGTERM, as it
    would have without computekit (its parent sees -SIGTERM)."""
    import signal

    db = tmp_path / "ledger.db"
    code, out = run_child("default", is_async, db)
    assert code == -signal.SIGTERM, out
    assert child_rows(db) == N


@posix_signals
def test_sigterm_flush_can_be_turned_off(tmp_path: Path) -> None:
    """``flush_on_sigterm = false`` leaves SIGTERM alone: the queued rows die with the process — which also shows
    that the rows in the other cases were still queued when the signal came."""
    import signal

    db = tmp_path / "ledger.db"
    code, out = run_child("opted-out", False, db)
    assert code == -signal.SIGTERM, out
    assert child_rows(db) == 0


@posix_signals
@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_sigterm_chains_the_applications_handler(tmp_path: Path, is_async: bool) -> None:
    """A handler installed before the ledger opened still runs (after the rows are written) and decides how the
    process ends."""
    db = tmp_path / "ledger.db"
    code, out = run_child("app-handler-before", is_async, db)
    assert code == 3, out
    assert "app handler ran" in out
    assert child_rows(db) == N


@posix_signals
def test_a_handler_installed_later_wins_and_exit_still_writes_the_rows(tmp_path: Path) -> None:
    """A framework that installs its own handler after computekit replaces it; its graceful exit runs atexit,
    which writes the queue."""
    db = tmp_path / "ledger.db"
    code, out = run_child("app-handler-after", False, db)
    assert code == 3, out
    assert "app handler ran" in out
    assert child_rows(db) == N


def test_os_exit_loses_only_the_last_flush_interval(tmp_path: Path) -> None:
    """``os._exit()`` runs no handler at all: rows recorded more than a flush interval before it are committed (by
    the writer on its own: the child waits until another connection sees them, 60 s at most); rows of the last
    interval are lost (here, all of them: the process ends right after its calls)."""
    code, out = run_child("os-exit-after-interval", False, tmp_path / "waited.db", sigterm=False, interval=0.2)
    assert code == 0, out
    assert child_rows(tmp_path / "waited.db") == N
    code, out = run_child("os-exit-at-once", False, tmp_path / "at-once.db", sigterm=False, interval=30.0)
    assert code == 0, out
    assert child_rows(tmp_path / "at-once.db") == 0  # the window is real, and documented


@posix_signals
def test_sigterm_handler_is_not_installed_from_a_thread(tmp_path: Path) -> None:
    """Python allows signal handlers only from the main thread: a ledger first opened elsewhere installs none
    (documented: open it from the main thread, e.g. touch ``client.ledger`` at startup), and one opened from the
    main thread afterwards does."""
    import subprocess

    code = (
        "import signal, threading\n"
        "from computekit.ledger import SQLiteLedger\n"
        f"opened = lambda: SQLiteLedger({str(tmp_path / 'l.db')!r}, buffered=True)\n"
        "t = threading.Thread(target=opened); t.start(); t.join()\n"
        "print(signal.getsignal(signal.SIGTERM) is signal.SIG_DFL)\n"
        "opened()\n"
        "print(signal.getsignal(signal.SIGTERM).__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.split() == ["True", "_on_sigterm"]


@pytest.mark.parametrize("method", ["spawn", "fork"])  # forkserver: a Unix socket, which the test network guard refuses
def test_multiprocessing_worker_end_writes_its_queued_rows(tmp_path: Path, method: str) -> None:
    """A worker process ends with os._exit() after its target returns: its finalizers write the queue."""
    import multiprocessing as mp

    from _ledger_workers import worker_calls

    db = tmp_path / "ledger.db"
    SQLiteLedger(db).close()  # the schema exists before the workers race to it
    ctx = mp.get_context(method)
    procs = [ctx.Process(target=worker_calls, args=(f"sqlite:///{db}", 100, "child")) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    assert child_rows(db) == 200


@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_pool_closed_and_joined_keeps_its_rows(tmp_path: Path, method: str) -> None:
    """Pool workers that end normally (``close()`` then ``join()``) write their queued rows (their finalizers)."""
    import multiprocessing as mp

    from _ledger_workers import pool_task

    db = tmp_path / "ledger.db"
    SQLiteLedger(db).close()  # the schema exists before the workers race to it
    pool = mp.get_context(method).Pool(2)
    try:
        assert pool.starmap(pool_task, [(f"sqlite:///{db}", 50, "child")] * 4) == [50] * 4
        pool.close()
        pool.join()
    finally:
        pool.terminate()
    assert child_rows(db) == 200


@posix_signals
def test_no_sigterm_handler_in_multiprocessing_workers(tmp_path: Path) -> None:
    """A worker keeps SIGTERM's default action: Pool.terminate() must end it even while it waits on a lock shared
    with its siblings (a Python handler would run only once that wait returns). Its handler is SIG_DFL though it
    opened a buffered ledger in its main thread."""
    import multiprocessing as mp

    from _ledger_workers import sigterm_handler_after_calls

    with mp.get_context("spawn").Pool(1) as pool:
        assert pool.apply(sigterm_handler_after_calls, (f"sqlite:///{tmp_path / 'ledger.db'}",)) == "SIG_DFL"


# ============================================================================ the store failing on the call's path


class StoreDown(SQLiteLedger):
    """A SQLite ledger whose store fails, as one locked past its busy timeout or unreachable does, in the
    operations named in ``down`` (``reserve``, ``settle``, ``release``); ``down`` can change while in use."""

    def __init__(self, path: Path, *down: str) -> None:
        super().__init__(path)
        self.down = set(down)

    def _fails(self, operation: str) -> None:
        if operation in self.down:
            raise sqlite3.OperationalError("database is locked")

    def reserve(self, charges: Any, *, now: dt.datetime, ttl_s: float) -> str:
        self._fails("reserve")
        return super().reserve(charges, now=now, ttl_s=ttl_s)

    def settle(self, reservation: str, row: LedgerRow | None) -> None:
        self._fails("settle")
        super().settle(reservation, row)

    def release(self, reservation: str) -> None:
        self._fails("release")
        super().release(reservation)


BUDGET = {"limit_usd": "5", "period": "day"}


@both
async def test_a_reservation_the_store_cannot_make_is_a_ledger_error_and_nothing_is_sent(
        faults: Any, waits: Waits, is_async: bool, tmp_path: Path) -> None:
    """Budgets fail closed: a store that fails while reserving is a typed ``LedgerError`` (the store's error its
    cause, the target named), nothing is sent, and it does not fall back to another target (a ledger's failure
    is not a provider's)."""
    srv = faults(chat("Hello"))
    ledger = StoreDown(tmp_path / "ledger.db", "reserve")
    client = make_client(is_async, srv.url, waits, ledger=ledger, budget=BUDGET)
    try:
        with pytest.raises(ck.LedgerError) as caught:
            await run(client.complete(["openai:gpt-4o-mini", "openai:gpt-4o"], "hi"))
        assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
        assert (caught.value.provider, caught.value.model) == ("openai", "gpt-4o-mini")
        assert "nothing was sent" in str(caught.value)
        assert srv.hits == 0
        ledger.down.clear()  # the store is back: the next call goes through and is recorded
        r = await run(client.complete("openai:gpt-4o-mini", "hi"))
        assert r.text == "Hello"
        assert [row.cost for row in client.ledger.rows()] == [r.cost.total]
    finally:
        await close(client)


@both
async def test_a_store_failing_after_the_answer_keeps_the_answer_and_logs_the_row(
        faults: Any, waits: Waits, is_async: bool, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The provider answered (and billed): a store that fails as the row settles the reservation never takes the
    answer from the caller. The row is logged in full (ERROR) and the reservation keeps counting the call's worst
    case, as if it could have been billed that much, until its time to live lapses."""
    srv = faults(chat("Hello"))
    ledger = StoreDown(tmp_path / "ledger.db", "settle")
    client = make_client(is_async, srv.url, waits, ledger=ledger, budget=BUDGET)
    try:
        with caplog.at_level(logging.ERROR, logger="computekit"):
            r = await run(client.complete("openai:gpt-4o-mini", "hi", tags={"customer": "acme"}))
        assert r.text == "Hello"
        assert r.cost.total is not None
        assert r.cost.total > 0
        assert srv.hits == 1
        [record] = [rec for rec in caplog.records if "row not written" in rec.getMessage()]
        assert record.levelno == logging.ERROR
        logged = json.loads(record.getMessage().split("row not written: ", 1)[1])
        assert (logged["model"], logged["cost"], logged["tags"]) == ("gpt-4o-mini", str(r.cost.total),
                                                                     {"customer": "acme"})
        assert client.ledger.rows() == []
        status = client.budget_status()["default"]
        assert status.reserved >= r.cost.total  # held, not lost: budgets err on the safe side
    finally:
        await close(client)


@both
async def test_a_release_the_store_cannot_make_does_not_hide_the_calls_own_error(
        faults: Any, waits: Waits, is_async: bool, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A try that ends without a row releases its reservation; when the store fails then, the caller still gets
    the call's own error (here the total deadline, spent while the reservation waited for the ledger), and the
    failure is logged."""
    srv = faults(chat("Hello"))
    ledger = StoreDown(tmp_path / "ledger.db", "release")
    now = [1000.0]
    router = Router(RoutingConfig(deadline_s=7), clock=lambda: now[0])
    client = make_client(is_async, srv.url, waits, ledger=ledger, budget=BUDGET, router=router)
    budgets = client._core.budgets
    reserve = budgets.reserve

    def slow_reserve(*args: Any, **kwargs: Any) -> Any:
        now[0] += 8  # the ledger was held by another writer past the call's 7 s deadline
        return reserve(*args, **kwargs)

    budgets.reserve = slow_reserve
    try:
        with caplog.at_level(logging.ERROR, logger="computekit"), pytest.raises(ck.APITimeoutError):
            await run(client.complete("openai:gpt-4o-mini", "hi"))
        assert srv.hits == 0
        [record] = [rec for rec in caplog.records if "could not release a reservation" in rec.getMessage()]
        assert record.exc_info is not None
        assert isinstance(record.exc_info[1], sqlite3.OperationalError)
    finally:
        await close(client)


# ============================================================================ a real store failing (D14)


def _login_role(postgres_dsn: str, postgres_url: str) -> tuple[str, str, str]:
    """A new login role with every right on the test's schema: the ledger URL that logs in as it, the role and the
    schema (a test can then stop the role from logging in, as a server that is down refuses every session)."""
    import uuid

    import psycopg

    role = f"r_{uuid.uuid4().hex[:12]}"
    schema = postgres_url.split("search_path%3D", 1)[1].split("&", 1)[0]
    with psycopg.connect(postgres_dsn, autocommit=True) as c:
        c.execute(f"CREATE ROLE {role} LOGIN")  # type: ignore[arg-type]
        c.execute(f"GRANT ALL ON SCHEMA {schema} TO {role}")  # type: ignore[arg-type]
    return postgres_url.replace("postgres@", f"{role}@", 1), role, schema


def end_sessions(dsn: str, ledger: Any) -> None:
    """End the PostgreSQL ledger's session at the server (as a restart, a failover or an idle timeout does), and
    wait until its socket has heard the end: what a process sees the next time it uses a session the server
    ended a while ago."""
    import select

    import psycopg

    conn = ledger._conn
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("SELECT pg_terminate_backend(%s)", (conn.info.backend_pid,))
    heard = select.poll()
    heard.register(conn.pgconn.socket, select.POLLIN)
    assert heard.poll(10_000)


@both
@pytest.mark.parametrize("budget", [True, False], ids=["budget", "no-budget"])
async def test_a_postgres_session_the_server_ended_is_opened_again_before_a_statement_is_sent(
        faults: Any, waits: Waits, is_async: bool, budget: bool, postgres_dsn: str, postgres_url: str,
        caplog: pytest.LogCaptureFixture) -> None:
    """A server that ended the ledger's session (restarted, failed over, an idle timeout) between two calls, or
    between a call's reservation and its settlement: the next statement goes on a new session, so the call is
    neither refused (``LedgerError``) nor its row lost, and nothing is written twice."""
    srv = faults([chat("Hello")] * 3)
    client = make_client(is_async, srv.url, waits, ledger=postgres_url, **({"budget": BUDGET} if budget else {}))
    try:
        r1 = await run(client.complete("openai:gpt-4o-mini", "hi"))
        client.ledger.flush()
        end_sessions(postgres_dsn, client.ledger)  # between two calls
        with caplog.at_level(logging.DEBUG, logger="computekit"):
            r2 = await run(client.complete("openai:gpt-4o-mini", "hi"))
            client.ledger.flush()
            if budget:  # between the reservation and the settlement of a call
                budgets = client._core.budgets
                reserve = budgets.reserve

                def reserve_then_end(*args: Any, **kwargs: Any) -> Any:
                    held = reserve(*args, **kwargs)
                    end_sessions(postgres_dsn, client.ledger)
                    return held

                budgets.reserve = reserve_then_end
            r3 = await run(client.complete("openai:gpt-4o-mini", "hi"))
            client.ledger.flush()
        assert srv.hits == 3
        assert [rec.getMessage() for rec in caplog.records if rec.name == "computekit.ledger"] == []
        assert [row.cost for row in client.ledger.rows()] == [r1.cost.total, r2.cost.total, r3.cost.total]
        if budget:
            assert client.budget_status()["default"].reserved == 0
    finally:
        await close(client)


@both
@pytest.mark.parametrize("budget", [True, False], ids=["budget", "no-budget"])
async def test_a_postgres_server_that_cannot_be_reached_again_is_a_ledger_error_and_nothing_is_sent(
        faults: Any, waits: Waits, is_async: bool, budget: bool, postgres_dsn: str, postgres_url: str,
        caplog: pytest.LogCaptureFixture) -> None:
    """The server is down when a session must be opened again (here: its role may no longer log in): under a
    budget the call is a ``LedgerError`` (the driver's error its cause), not a ``ConfigError`` as when the ledger
    is first opened, and nothing is sent; without one, the call has its answer and the writer thread logs its row
    in full. Once the server is back, the next call goes through and is written."""
    import psycopg

    url, role, schema = _login_role(postgres_dsn, postgres_url)
    srv = faults([chat("Hello")] * 3)
    client = make_client(is_async, srv.url, waits, ledger=url, **({"budget": BUDGET} if budget else {}))
    try:
        r1 = await run(client.complete("openai:gpt-4o-mini", "hi"))
        client.ledger.flush()
        with psycopg.connect(postgres_dsn, autocommit=True) as c:
            c.execute(f"ALTER ROLE {role} NOLOGIN")  # type: ignore[arg-type]
        end_sessions(postgres_dsn, client.ledger)
        if budget:
            for _ in range(2):  # the session found ended, then a connection refused: each the same error
                with pytest.raises(ck.LedgerError) as caught:
                    await run(client.complete("openai:gpt-4o-mini", "hi"))
                assert isinstance(caught.value.__cause__, psycopg.OperationalError)
            assert srv.hits == 1
        else:
            with caplog.at_level(logging.ERROR, logger="computekit.ledger"):
                lost = await run(client.complete("openai:gpt-4o-mini", "hi", tags={"customer": "acme"}))
                client.ledger.flush()
            [logged] = [rec.getMessage() for rec in caplog.records if "row not written" in rec.getMessage()]
            assert f'"cost": "{lost.cost.total}"' in logged
            assert srv.hits == 2
        with psycopg.connect(postgres_dsn, autocommit=True) as c:
            c.execute(f"ALTER ROLE {role} LOGIN")  # type: ignore[arg-type]
        r2 = await run(client.complete("openai:gpt-4o-mini", "hi"))
        assert [row.cost for row in client.ledger.rows()] == [r1.cost.total, r2.cost.total]
    finally:
        await close(client)
        with psycopg.connect(postgres_dsn, autocommit=True) as c:
            c.execute(f"REVOKE ALL ON SCHEMA {schema} FROM {role}")  # type: ignore[arg-type]
            c.execute(f"DROP OWNED BY {role}")  # type: ignore[arg-type]
            c.execute(f"DROP ROLE {role}")  # type: ignore[arg-type]


@pytest.fixture
def locked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A SQLite ledger whose write lock another process's connection holds past the busy timeout (shortened
    here, so that the test does not wait out the real one)."""
    import computekit.ledger._sqlite as sqlite_ledger

    db = tmp_path / "ledger.db"
    SQLiteLedger(db).close()
    monkeypatch.setattr(sqlite_ledger, "BUSY_TIMEOUT_MS", 50)
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        yield db
    finally:
        other.execute("ROLLBACK")
        other.close()


BUDGETS_TOML = '[budget]\nlimit_usd = "5"\n'


def test_reading_a_ledger_whose_store_fails_is_a_ledger_error(locked: Path, tmp_path: Path) -> None:
    """Opening a ledger, reading its rows or a report, and a budget's status: a store that fails (here: locked
    past its busy timeout, as a read needing the write lock and an open that migrates are) is a ``LedgerError``
    naming the ledger, the store's own error its cause, never the store's exception itself."""
    with pytest.raises(ck.LedgerError) as opening:
        SQLiteLedger(locked)
    assert isinstance(opening.value.__cause__, sqlite3.OperationalError)
    assert str(locked) in str(opening.value)
    client = ck.Client(ledger=f"sqlite:///{locked}", budget={"limit_usd": "5"})
    with pytest.raises(ck.LedgerError) as status:
        client.budget_status()
    assert isinstance(status.value.__cause__, sqlite3.OperationalError)
    client.close()


@both
async def test_a_call_under_a_budget_whose_ledger_cannot_be_opened_is_a_ledger_error_naming_its_target(
        faults: Any, waits: Waits, is_async: bool, locked: Path) -> None:
    """The ledger is opened by the first call's reservation: a store that cannot be opened then is the call's
    ``LedgerError`` (its target named, SQLite's error the cause) and nothing is sent."""
    srv = faults(chat("Hello"))
    client = make_client(is_async, srv.url, waits, ledger=f"sqlite:///{locked}", budget=BUDGET)
    try:
        with pytest.raises(ck.LedgerError) as caught:
            await run(client.complete("openai:gpt-4o-mini", "hi"))
        assert (caught.value.provider, caught.value.model) == ("openai", "gpt-4o-mini")
        assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
        assert "nothing was sent" in str(caught.value)
        assert srv.hits == 0
    finally:
        await close(client)


@both
async def test_reading_a_postgres_ledger_while_the_server_is_down_is_a_ledger_error(
        is_async: bool, postgres_dsn: str, postgres_url: str) -> None:
    """``client.ledger.rows()``, ``.report()`` and ``client.budget_status()`` while the server cannot be reached:
    a ``LedgerError`` from the driver's error; once it is back, they read again."""
    import psycopg

    url, role, schema = _login_role(postgres_dsn, postgres_url)
    client = (ck.AsyncClient if is_async else ck.Client)(ledger=url, budget={"limit_usd": "5"})
    try:
        assert client.ledger.rows() == []
        with psycopg.connect(postgres_dsn, autocommit=True) as c:
            c.execute(f"ALTER ROLE {role} NOLOGIN")  # type: ignore[arg-type]
        end_sessions(postgres_dsn, client.ledger)
        for read in (client.ledger.rows, client.ledger.report, client.budget_status):
            with pytest.raises(ck.LedgerError) as caught:
                await run(read())
            assert isinstance(caught.value.__cause__, psycopg.OperationalError)
        with psycopg.connect(postgres_dsn, autocommit=True) as c:
            c.execute(f"ALTER ROLE {role} LOGIN")  # type: ignore[arg-type]
        assert client.ledger.rows() == []
        assert (await run(client.budget_status()))["default"].remaining == 5
    finally:
        await close(client)
        with psycopg.connect(postgres_dsn, autocommit=True) as c:
            c.execute(f"REVOKE ALL ON SCHEMA {schema} FROM {role}")  # type: ignore[arg-type]
            c.execute(f"DROP OWNED BY {role}")  # type: ignore[arg-type]
            c.execute(f"DROP ROLE {role}")  # type: ignore[arg-type]


@pytest.mark.parametrize("command", ["report", "budgets"])
def test_the_cli_on_a_ledger_whose_store_fails_prints_one_line_and_exits_non_zero(
        command: str, locked: Path, tmp_path: Path) -> None:
    """``computekit report`` and ``computekit budgets`` on a ledger locked past its busy timeout: one line naming
    the ledger and the store's error, exit status 2, no traceback."""
    from typer.testing import CliRunner

    from computekit.cli import app

    cfg = tmp_path / "computekit.toml"
    cfg.write_text(BUDGETS_TOML)
    result = CliRunner().invoke(app, [command, "--ledger", f"sqlite:///{locked}", "--config", str(cfg)])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    [line] = result.output.strip().splitlines()
    assert line.startswith("error: LedgerError:")
    assert "database is locked" in line


@both
async def test_a_sqlite_ledger_locked_by_another_process_fails_closed_before_and_keeps_the_answer_after(
        faults: Any, waits: Waits, is_async: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """A real lock, held by another connection past the busy timeout: while reserving, a ``LedgerError`` and
    nothing sent; once the answer is in (the lock taken between reserve and settle), the answer is kept and the
    row logged in full; without a budget, the writer thread logs the rows it cannot write and goes on writing
    once the lock is let go."""
    import computekit.ledger._sqlite as sqlite_ledger

    monkeypatch.setattr(sqlite_ledger, "BUSY_TIMEOUT_MS", 50)
    db = tmp_path / "ledger.db"
    srv = faults([chat("Hello")] * 4)
    client = make_client(is_async, srv.url, waits, ledger=f"sqlite:///{db}", budget=BUDGET)
    other = sqlite3.connect(db, isolation_level=None)
    try:
        await run(client.complete("openai:gpt-4o-mini", "hi"))  # opens the ledger
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(ck.LedgerError) as caught:
            await run(client.complete("openai:gpt-4o-mini", "hi"))
        assert "database is locked" in str(caught.value.__cause__)
        assert srv.hits == 1
        other.execute("ROLLBACK")
        budgets = client._core.budgets
        reserve = budgets.reserve

        def reserve_then_lock(*args: Any, **kwargs: Any) -> Any:
            held = reserve(*args, **kwargs)
            other.execute("BEGIN IMMEDIATE")
            return held

        budgets.reserve = reserve_then_lock
        with caplog.at_level(logging.ERROR, logger="computekit.ledger"):
            r = await run(client.complete("openai:gpt-4o-mini", "hi"))
        assert r.text == "Hello"
        assert srv.hits == 2
        assert [rec.getMessage() for rec in caplog.records if "row not written" in rec.getMessage()] != []
        other.execute("ROLLBACK")
        assert len(client.ledger.rows()) == 1
    finally:
        other.close()
        await close(client)
    # Without a budget: the writer thread.
    caplog.clear()
    client = make_client(is_async, srv.url, waits, ledger=f"sqlite:///{db}")
    other = sqlite3.connect(db, isolation_level=None)
    try:
        client.ledger.rows()  # opened before the lock
        other.execute("BEGIN IMMEDIATE")
        with caplog.at_level(logging.ERROR, logger="computekit.ledger"):
            r = await run(client.complete("openai:gpt-4o-mini", "hi", tags={"customer": "acme"}))
            client.ledger.flush()
        [lost] = [rec.getMessage() for rec in caplog.records if "row not written" in rec.getMessage()]
        assert '"customer": "acme"' in lost
        other.execute("ROLLBACK")
        await run(client.complete("openai:gpt-4o-mini", "hi"))
        assert len(client.ledger.rows()) == 2  # the writer survived: the next row is written
    finally:
        other.close()
        await close(client)


@posix_only
def test_a_postgres_session_is_kept_in_a_process_with_more_than_1024_files_open(postgres_url: str) -> None:
    """Looking whether the server ended the session must work on any socket: in a process with many files open
    (a busy server), the ledger's socket is past ``select()``'s 1024, and the session is kept, not opened again
    for every statement nor failed."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2048:
        pytest.skip("fewer than 2048 files may be open")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 2048), hard))
    files = [os.dup(0) for _ in range(1100)]
    ledger = None
    try:
        ledger = ck.ledger.PostgresLedger(postgres_url)
        assert ledger._conn.pgconn.socket > 1024
        pid = ledger._conn.info.backend_pid
        assert ledger.rows() == []
        assert ledger.rows() == []
        assert ledger._conn.info.backend_pid == pid
    finally:
        if ledger is not None:
            ledger.close()
        for fd in files:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_postgres_role_that_may_only_read_reads_the_ledger(postgres_dsn: str, postgres_url: str) -> None:
    """A reporting role granted ``SELECT`` only opens an existing ledger and reads its rows and reports (opening
    it creates nothing when its tables are there, at this version); on a ledger not created yet, opening it is a
    ``LedgerError`` from the server's refusal, not the driver's exception."""
    import uuid

    import psycopg

    from computekit.ledger import open_ledger

    writer = open_ledger(postgres_url)
    writer.record(LedgerRow(ts=dt.datetime.now(dt.UTC), verb="complete", provider="openai", model="gpt-4o-mini",
                            outcome="success", latency_ms=1.0, cost=Decimal("0.25")))
    writer.close()
    role = f"r_{uuid.uuid4().hex[:12]}"
    schema = postgres_url.split("search_path%3D", 1)[1].split("&", 1)[0]
    empty = f"e_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_dsn, autocommit=True) as c:
        c.execute(f"CREATE ROLE {role} LOGIN")  # type: ignore[arg-type]
        c.execute(f"GRANT USAGE ON SCHEMA {schema} TO {role}")  # type: ignore[arg-type]
        c.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {role}")  # type: ignore[arg-type]
        c.execute(f"CREATE SCHEMA {empty}")  # type: ignore[arg-type]
        c.execute(f"GRANT USAGE ON SCHEMA {empty} TO {role}")  # type: ignore[arg-type]
    try:
        reader = open_ledger(postgres_url.replace("postgres@", f"{role}@", 1))
        try:
            assert [row.cost for row in reader.rows()] == [Decimal("0.25")]
            assert reader.report().total == Decimal("0.25")
        finally:
            reader.close()
        with pytest.raises(ck.LedgerError) as caught:
            open_ledger(postgres_url.replace("postgres@", f"{role}@", 1).replace(schema, empty))
        assert isinstance(caught.value.__cause__, psycopg.errors.InsufficientPrivilege)
    finally:
        with psycopg.connect(postgres_dsn, autocommit=True) as c:
            c.execute(f"DROP SCHEMA {empty} CASCADE")  # type: ignore[arg-type]
            c.execute(f"DROP OWNED BY {role}")  # type: ignore[arg-type]
            c.execute(f"DROP ROLE {role}")  # type: ignore[arg-type]


@both
@pytest.mark.parametrize("text", ["acme\x00", "acme\ud800"], ids=["nul", "lone-surrogate"])
async def test_a_tag_no_ledger_can_store_is_refused_before_anything_is_sent(
        faults: Any, waits: Waits, is_async: bool, text: str, tmp_path: Path, postgres_url: str) -> None:
    """A tag holding a NUL character or a lone surrogate (user input put in a tag) is a row PostgreSQL refuses
    (``jsonb`` cannot hold it): the billed call's row would be lost, and a budget would stop counting it once its
    reservation lapsed. Such a tag (name or value) is an ``InvalidRequestError`` before anything is sent, in a
    call's ``tags=`` and in ``ck.tags()``."""
    import psycopg

    from computekit.ledger import open_ledger

    store = open_ledger(postgres_url)
    with pytest.raises(psycopg.DataError):  # what the row would meet
        store.record(LedgerRow(ts=dt.datetime.now(dt.UTC), verb="complete", provider="openai", model="m",
                               outcome="success", latency_ms=1.0, tags={"customer": text}))
    store.close()
    srv = faults(chat("Hello"))
    client = make_client(is_async, srv.url, waits, ledger=f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        for tags in ({"customer": text}, {text: "x"}):
            with pytest.raises(ck.InvalidRequestError, match="cannot be stored"):
                await run(client.complete("openai:gpt-4o-mini", "hi", tags=tags))
        with pytest.raises(ck.InvalidRequestError, match="cannot be stored"):
            ck.tags(customer=text)
        assert srv.hits == 0
    finally:
        await close(client)


# ============================================================================================= D15: forks


def _waited(pid: int, seconds: float) -> int | None:
    """The child's exit status, or ``None`` (then killed) when it has not ended within ``seconds``."""
    import time

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return None


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork")
@both
@pytest.mark.parametrize("budget", [False, True], ids=["buffered", "budget"])
def test_a_forked_child_records_through_its_own_connection(faults: Any, waits: Waits, ledger_url: str,
                                                           is_async: bool, budget: bool) -> None:
    """A client used before a fork (gunicorn --preload, a fork pool), forked while another thread holds its ledger's
    connection (the writer committing a batch): the child's calls are recorded on a connection of its own, without
    waiting for a lock nobody in it will release, and every row is written once."""
    import asyncio
    import threading

    srv = faults(chat("Hello"))
    settings: dict[str, Any] = {"budget": {"limit_usd": "100"}} if budget else {}
    client = make_client(is_async, srv.url, waits, ledger=ledger_url, **settings)

    def call(tag: str) -> None:
        result = client.complete("openai:gpt-4o-mini", "hi", tags={"who": tag})
        if is_async:
            asyncio.run(result)

    call("parent")
    ledger = client.ledger
    held, fork_done = threading.Event(), threading.Event()

    def commit() -> None:  # a thread in the middle of a write when the process forks
        with ledger._lock:
            held.set()
            fork_done.wait()

    holder = threading.Thread(target=commit)
    holder.start()
    held.wait()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            call("child")
            client.ledger.flush()
            code = 0
        finally:
            os._exit(code)
    fork_done.set()
    holder.join()
    try:
        assert _waited(pid, 10) == 0, "the child hung on its parent's ledger lock, or failed"
        call("parent")
        client.ledger.flush()
        assert sorted(r.tags["who"] for r in client.ledger.rows()) == ["child", "parent", "parent"]
        if ledger_url.startswith("sqlite:"):
            with sqlite3.connect(ledger_url.removeprefix("sqlite:///")) as check:
                assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        asyncio.run(close(client))
