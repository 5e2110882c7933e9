"""The embedded ledger: one SQLite file in WAL mode, a versioned schema, one short transaction per attempt."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

from .._constants import LEDGER_FLUSH_INTERVAL_S, LEDGER_READ_CHUNK
from .._money import plain
from ._base import Ledger, LedgerRow, forks_with, store_errors, window
from ._budgets import Charge, counted, covers, fits, refusal
from ._buffered import BatchWriter, Buffered
from ._report import TAG_PREFIX, UNTAGGED, DayCell, Group
from ._row import period

__all__ = ["SCHEMA_VERSION", "SQLiteLedger"]

SCHEMA_VERSION = 4
BUSY_TIMEOUT_MS = 5000
"""How long a writer waits for another process's transaction before failing."""
FILE_MODE = 0o600
"""A new ledger file's permissions: its owner only (tags may name customers). SQLite gives its ``-wal`` and
``-shm`` files the database file's mode. An existing file keeps its mode."""
DIR_MODE = 0o700
"""The permissions of a folder the ledger creates for its file (the per-user default's ``computekit`` folder)."""

_WAL_RETRY_S = 0.01
"""The first pause before asking again for WAL mode when the file is busy (then doubling, up to the next)."""
_WAL_RETRY_MAX_S = 0.25
"""The longest pause between two asks for WAL mode; they go on until ``BUSY_TIMEOUT_MS`` has passed."""

log = logging.getLogger("computekit.ledger")


def _use_wal(c: sqlite3.Connection, *, clock: Callable[[], float] = time.monotonic,
             sleep: Callable[[float], None] = time.sleep) -> None:
    """Put the file in WAL mode, waiting up to the busy timeout for other processes.

    Several processes opening a new ledger at once can find the file busy while one of them switches it to WAL,
    and SQLite can answer ``PRAGMA journal_mode`` with ``SQLITE_BUSY`` there within milliseconds, without
    waiting out the busy timeout; so the switch is asked again, with a growing pause, until the same timeout a
    write would wait.
    """
    deadline = clock() + BUSY_TIMEOUT_MS / 1000
    pause = _WAL_RETRY_S
    while True:
        try:
            c.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as e:
            if e.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or clock() + pause > deadline:
                raise
        sleep(pause)
        pause = min(pause * 2, _WAL_RETRY_MAX_S)


_MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE attempts (
        id INTEGER PRIMARY KEY,
        ts TEXT NOT NULL,
        verb TEXT NOT NULL,
        provider TEXT NOT NULL,
        model TEXT NOT NULL,
        outcome TEXT NOT NULL,
        latency_ms REAL NOT NULL,
        input_tokens INTEGER NOT NULL DEFAULT 0,
        output_tokens INTEGER NOT NULL DEFAULT 0,
        cached_input_tokens INTEGER NOT NULL DEFAULT 0,
        cache_write_tokens INTEGER NOT NULL DEFAULT 0,
        reasoning_tokens INTEGER NOT NULL DEFAULT 0,
        gpu_seconds TEXT,
        cost TEXT,            -- exact decimal as text, NULL = could not be priced
        currency TEXT NOT NULL DEFAULT 'USD',
        estimated INTEGER NOT NULL DEFAULT 0,
        price_source TEXT,
        request_id TEXT,
        error_type TEXT,
        status INTEGER,
        tags TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX attempts_ts ON attempts (ts);
    """,
    # v2: rows that must be written once however often they are reported (a finished fine-tune's cost, seen by
    # wait() in two processes). NULLs are distinct in a UNIQUE index, so ordinary attempts are unaffected.
    2: """
    ALTER TABLE attempts ADD COLUMN once_key TEXT;
    CREATE UNIQUE INDEX attempts_once_key ON attempts (once_key);
    """,
    # v3: budgets. An attempt keeps the worst case it reserved (counted when its cost is unknown); reservations
    # of attempts in flight; and each budget's running total, so that a reservation reads only the rows written
    # since the last one (ids grow in commit order: every write takes the one write lock).
    3: """
    ALTER TABLE attempts ADD COLUMN reserved TEXT;
    CREATE TABLE reservations (
        id TEXT NOT NULL,
        budget TEXT NOT NULL,
        amount TEXT NOT NULL,
        expires TEXT NOT NULL
    );
    CREATE INDEX reservations_id ON reservations (id);
    CREATE INDEX reservations_budget ON reservations (budget);
    CREATE TABLE budget_totals (
        budget TEXT PRIMARY KEY,
        period_start TEXT NOT NULL,
        upto_id INTEGER NOT NULL,
        spent TEXT NOT NULL
    );
    """,
    # v4: a reservation keeps what it first reserved (``reserved``), read back by another process that settles it
    # by its key (a job's once-only key, set as its id); one made before keeps only what is left (``amount``).
    4: """
    ALTER TABLE reservations ADD COLUMN reserved TEXT;
    """,
}

_COLUMNS = (
    "ts, verb, provider, model, outcome, latency_ms, input_tokens, output_tokens, cached_input_tokens, "
    "cache_write_tokens, reasoning_tokens, gpu_seconds, cost, currency, estimated, price_source, request_id, "
    "error_type, status, tags, once_key, reserved"
)
_INSERT = f"INSERT INTO attempts ({_COLUMNS}) VALUES ({', '.join('?' * 22)}) ON CONFLICT (once_key) DO NOTHING"


def _values(row: LedgerRow) -> tuple[object, ...]:
    return (
        row.ts.isoformat(),  # in UTC (see LedgerRow): periods and windows compare the text
        row.verb,
        row.provider,
        row.model,
        row.outcome,
        row.latency_ms,
        row.input_tokens,
        row.output_tokens,
        row.cached_input_tokens,
        row.cache_write_tokens,
        row.reasoning_tokens,
        None if row.gpu_seconds is None else str(row.gpu_seconds),
        None if row.cost is None else plain(row.cost),
        row.currency,
        int(row.estimated),
        row.price_source,
        row.request_id,
        row.error_type,
        row.status,
        json.dumps(row.tags) if row.tags else "{}",
        row.once_key,
        None if row.reserved is None else plain(row.reserved),
    )


_GROUP_SQL = {
    "provider": "provider", "model": "model", "verb": "verb", "outcome": "outcome",
    "target": "provider || ':' || model",
    "day": "date(ts)",  # SQLite's date() turns any +HH:MM offset into UTC (rows of older versions may have one)
}
"""How a report's group is computed in SQL, for each ``by`` but ``tag:NAME``."""
_DECIMAL_SUM = "computekit_decimal_sum"


class _DecimalSum:
    """The exact sum of decimal strings, as an SQL aggregate: SQLite's own ``SUM`` of text would be a float."""

    def __init__(self) -> None:
        self.total = Decimal(0)

    def step(self, value: str | None) -> None:
        if value is not None:  # unpriced: counted apart by the query, never as 0
            self.total += Decimal(value)

    def finalize(self) -> str:
        return plain(self.total)


def _row_of(r: tuple[Any, ...]) -> LedgerRow:
    """A row as ``SELECT id, {_COLUMNS}`` reads it."""
    return LedgerRow(
        id=r[0], ts=dt.datetime.fromisoformat(r[1]), verb=r[2], provider=r[3], model=r[4], outcome=r[5],
        latency_ms=r[6], input_tokens=r[7], output_tokens=r[8], cached_input_tokens=r[9],
        cache_write_tokens=r[10], reasoning_tokens=r[11], gpu_seconds=None if r[12] is None else Decimal(r[12]),
        cost=None if r[13] is None else Decimal(r[13]), currency=r[14], estimated=bool(r[15]),
        price_source=r[16], request_id=r[17], error_type=r[18], status=r[19],
        tags=json.loads(r[20]), once_key=r[21], reserved=None if r[22] is None else Decimal(r[22]),
    )


def path_from_url(url: str) -> str:
    """``sqlite:///path`` -> path (``sqlite://:memory:`` -> ``:memory:``)."""
    if url == "sqlite://:memory:":
        return ":memory:"
    return url.removeprefix("sqlite:///")


def _create_private(path: Path) -> None:
    """Create ``path``'s folder (``DIR_MODE``) and an empty ``path`` (``FILE_MODE``) unless they exist, so that
    SQLite opens a file only its owner can read; an existing file or folder is left as it is."""
    if not path.parent.is_dir():
        path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    # O_EXCL: another process creating it at the same moment wins, and its file is as private as this one.
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))


class SQLiteLedger(Buffered, Ledger):
    """A ledger in one SQLite file, shared safely by threads and processes.

    Args:
        path: The database file, or ``":memory:"``. A new file is created readable by its owner only (``0600``;
            SQLite's ``-wal`` and ``-shm`` files follow it), in a new folder of mode ``0700`` when its folder
            does not exist. An existing file keeps its mode.
        buffered: Commit recorded rows in batches from a writer thread, off the caller's path (reads, budget
            reservations, ``flush()``, ``close()``, interpreter exit, a multiprocessing worker's end and SIGTERM
            wait for it). Rows whose process is killed (SIGKILL, ``os._exit()``) before their batch commits are
            lost; committed rows never are.
        flush_interval: With ``buffered``: each row is committed within this many seconds of ``record()`` (the
            most a hard kill loses).
        flush_on_sigterm: With ``buffered``: write queued rows on SIGTERM (installed from the main thread only,
            chaining the handler already there; see docs/ledger.md).

    Raises:
        LedgerError: The file cannot be opened or set up (locked past its busy timeout, read-only, not a
            database ...): SQLite's error is the cause.
    """

    def __init__(self, path: str | Path, *, buffered: bool = False, flush_interval: float = LEDGER_FLUSH_INTERVAL_S,
                 flush_on_sigterm: bool = True) -> None:
        self.path = str(path)
        self.ephemeral = self.path == ":memory:"
        if self.path != ":memory:":
            _create_private(Path(self.path).expanduser())
        self._lock = threading.Lock()
        with store_errors(self, "opening it", sqlite3.Error):
            # One connection per ledger, guarded by a lock: sqlite3 connections are not safe to share unguarded,
            # and opening one per call would cost more than the insert.
            self._conn = self._connect()
            try:
                self._setup()
            except BaseException:
                self._conn.close()
                raise
        self._writer = BatchWriter(self._record_many, flush_interval=flush_interval,
                                   flush_on_sigterm=flush_on_sigterm) if buffered else None
        self._parents: list[sqlite3.Connection] = []
        """The connections of the processes this one was forked from (see :meth:`_forked`)."""
        forks_with(self)

    def _connect(self) -> sqlite3.Connection:
        c = sqlite3.connect(
            Path(self.path).expanduser() if self.path != ":memory:" else ":memory:",
            check_same_thread=False,
            isolation_level=None,
            timeout=BUSY_TIMEOUT_MS / 1000,
        )
        try:
            c.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            if self.path != ":memory:":
                _use_wal(c)
            # WAL + NORMAL: a commit survives a process crash; only an OS crash can lose the newest commits.
            c.execute("PRAGMA synchronous = NORMAL")
            c.create_aggregate(_DECIMAL_SUM, 1, _DecimalSum)  # type: ignore[arg-type]  # typeshed: ints only
        except BaseException:
            c.close()
            raise
        return c

    def _forked(self) -> None:
        """In a forked child. The lock may be held by a thread of the parent (its writer committing), which does not
        exist here: a new one. SQLite forbids using a connection opened before a fork (its file locks are the
        parent's; the two would corrupt the file): the child opens its own, and keeps the parent's unused and
        unclosed (closing it could end what the parent's is doing). An in-memory ledger is the child's copy."""
        self._lock = threading.Lock()
        if self.path != ":memory:":
            self._parents.append(self._conn)
            try:
                self._conn = self._connect()
            except sqlite3.Error:  # left with the parent's: as before, rather than none
                log.exception("computekit ledger: a forked child could not open its own connection to %s",
                              self.path)

    def _setup(self) -> None:
        c = self._conn
        with self._lock:
            c.execute("BEGIN IMMEDIATE")
            try:
                c.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
                row = c.execute("SELECT MAX(version) FROM schema_version").fetchone()
                current = row[0] or 0
                if current > SCHEMA_VERSION:
                    raise RuntimeError(
                        f"ledger {self.path} has schema v{current}, newer than this computekit (v{SCHEMA_VERSION})"
                    )
                for v in range(current + 1, SCHEMA_VERSION + 1):
                    for stmt in _MIGRATIONS[v].split(";"):
                        if stmt.strip():
                            c.execute(stmt)
                    c.execute("INSERT INTO schema_version (version) VALUES (?)", (v,))
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise

    def record(self, row: LedgerRow) -> None:
        if self._writer is not None and self._writer.put(row):
            return
        values = _values(row)
        with self._lock:
            self._conn.execute(_INSERT, values)  # autocommit: one short write transaction

    def _record_many(self, rows: list[LedgerRow]) -> None:
        values = [_values(r) for r in rows]
        with self._lock, self._write():
            self._conn.executemany(_INSERT, values)

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken at once (``BEGIN IMMEDIATE``): it waits for other writers up to the busy
        timeout, and no one writes between its reads and its writes. Call with ``self._lock`` held."""
        c = self._conn
        c.execute("BEGIN IMMEDIATE")
        try:
            yield c
        except BaseException:
            c.execute("ROLLBACK")
            raise
        c.execute("COMMIT")

    # ----------------------------------------------------------------------------------------- budgets

    def reserve(self, charges: Sequence[Charge], *, now: dt.datetime, ttl_s: float) -> str:
        rid = uuid.uuid4().hex
        expires = (now + dt.timedelta(seconds=ttl_s)).isoformat()
        self.flush()  # spend includes every row recorded before
        with self._lock, self._write() as c:
            c.execute("DELETE FROM reservations WHERE expires <= ?", (now.isoformat(),))
            for charge in charges:
                spent, reserved = self._usage(c, charge)
                if not fits(charge, spent, reserved):
                    raise refusal(charge, spent, reserved)  # rolls back: nothing reserved
            c.executemany(
                "INSERT INTO reservations (id, budget, amount, expires, reserved) VALUES (?, ?, ?, ?, ?)",
                [(rid, ch.key, str(ch.amount), expires, str(ch.amount)) for ch in charges],
            )
        return rid

    def settle(self, reservation: str, row: LedgerRow | None) -> None:
        values = None if row is None else _values(row)
        with self._lock, self._write() as c:
            c.execute("DELETE FROM reservations WHERE id = ?", (reservation,))
            if values is not None:
                c.execute(_INSERT, values)

    def settle_part(self, reservation: str, row: LedgerRow, amount: Decimal) -> None:
        values = _values(row)
        with self._lock, self._write() as c:
            if c.execute(_INSERT, values).rowcount == 0:
                return  # recorded already (another reader): its part was settled then
            held = c.execute("SELECT rowid, amount FROM reservations WHERE id = ?", (reservation,)).fetchall()
            c.executemany("UPDATE reservations SET amount = ? WHERE rowid = ?",
                          [(str(max(Decimal(left) - amount, Decimal(0))), rowid) for rowid, left in held])

    def key_reservation(self, reservation: str, key: str) -> None:
        with self._lock, self._write() as c:
            c.execute("UPDATE reservations SET id = ? WHERE id = ?", (key, reservation))

    def reservation(self, key: str, *, now: dt.datetime) -> Decimal | None:
        with self._lock:
            found = self._conn.execute("SELECT COALESCE(reserved, amount) FROM reservations WHERE id = ? AND "
                                       "expires > ?", (key, now.isoformat())).fetchall()
        return max(Decimal(a) for (a,) in found) if found else None

    def budget_usage(self, charge: Charge, *, now: dt.datetime) -> tuple[Decimal, Decimal]:
        self.flush()
        with store_errors(self, "reading a budget's spend", sqlite3.Error), self._lock, self._write() as c:
            c.execute("DELETE FROM reservations WHERE expires <= ?", (now.isoformat(),))
            return self._usage(c, charge)

    def _usage(self, c: sqlite3.Connection, charge: Charge) -> tuple[Decimal, Decimal]:
        """Spent and reserved for ``charge``'s budget (inside a write transaction). The budget's running total is
        brought up to date with the rows written since it was last read, then saved."""
        start = charge.start.isoformat()
        saved = c.execute(
            "SELECT period_start, upto_id, spent FROM budget_totals WHERE budget = ?", (charge.key,)
        ).fetchone()
        # The rows are read one at a time (a cursor, not fetchall()): the first read of a period may cover a
        # million of them.
        if saved is not None and saved[0] == start:
            spent, upto = Decimal(saved[2]), saved[1]
            new = c.execute(
                "SELECT id, ts, provider, model, tags, cost, reserved FROM attempts WHERE id > ?", (saved[1],)
            )
        else:  # a new period, or a budget not seen before: count its period from the start
            spent = Decimal(0)
            upto = c.execute("SELECT COALESCE(MAX(id), 0) FROM attempts").fetchone()[0]
            new = c.execute(
                "SELECT id, ts, provider, model, tags, cost, reserved FROM attempts WHERE ts >= ?", (start,)
            )
        for rid, ts, provider, model, tags, cost, reserved in new:
            upto = max(upto, rid)
            if dt.datetime.fromisoformat(ts) < charge.start:
                continue
            if covers(charge, provider, model, json.loads(tags) if charge.tags else None):
                spent += counted(None if cost is None else Decimal(cost),
                                 None if reserved is None else Decimal(reserved))
        c.execute(
            "INSERT INTO budget_totals (budget, period_start, upto_id, spent) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (budget) DO UPDATE SET period_start = excluded.period_start, upto_id = excluded.upto_id, "
            "spent = excluded.spent",
            (charge.key, start, upto, str(spent)),
        )
        reserved_total = sum(
            (Decimal(a) for (a,) in c.execute("SELECT amount FROM reservations WHERE budget = ?", (charge.key,))),
            Decimal(0),
        )
        return spent, reserved_total

    def _groups(self, by: str, since: dt.datetime | None, until: dt.datetime | None) -> list[Group] | None:
        args: list[object]
        if by.startswith(TAG_PREFIX):
            key, args = "(SELECT value FROM json_each(tags) WHERE key = ?)", [by[len(TAG_PREFIX):]]
        else:
            key, args = _GROUP_SQL[by], []
        where, period_args = window(since, until, "?", dt.datetime.isoformat)
        args += period_args
        sql = (f"SELECT {key}, COUNT(*), SUM(outcome = 'error'), SUM(input_tokens), SUM(output_tokens), "
               f"{_DECIMAL_SUM}(cost), SUM(cost IS NULL) FROM attempts{where} GROUP BY 1")
        self.flush()
        with store_errors(self, "reading its rows", sqlite3.Error), self._lock:
            fetched = self._conn.execute(sql, args).fetchall()
        return [(UNTAGGED if k is None else str(k), n, errors, tin, tout, Decimal(cost), unpriced)
                for k, n, errors, tin, tout, cost, unpriced in fetched]

    def _daily(self, since: dt.datetime | None, until: dt.datetime | None) -> list[DayCell] | None:
        where, args = window(since, until, "?", dt.datetime.isoformat)
        sql = (f"SELECT date(ts), provider, {_DECIMAL_SUM}(cost), COUNT(*), SUM(cost IS NULL) FROM attempts{where} "
               "GROUP BY 1, 2")
        self.flush()
        with store_errors(self, "reading its rows", sqlite3.Error), self._lock:
            fetched = self._conn.execute(sql, args).fetchall()
        return [(dt.date.fromisoformat(day), provider, Decimal(cost), n, unpriced)
                for day, provider, cost, n, unpriced in fetched]

    def rows(self, *, since: dt.datetime | None = None, until: dt.datetime | None = None) -> list[LedgerRow]:
        return list(self.iter_rows(since=since, until=until))

    def iter_rows(self, *, since: dt.datetime | None = None,
                  until: dt.datetime | None = None) -> Iterator[LedgerRow]:
        since, until = period(since, until)  # any time zone compares right; a date is refused: checked now
        return self._iter_rows(since, until)

    def _iter_rows(self, since: dt.datetime | None, until: dt.datetime | None) -> Iterator[LedgerRow]:
        """Chunks of ``LEDGER_READ_CHUNK`` rows, each read from where the last one ended (its ``(ts, id)``): the
        lock is held only while a chunk is read, never while the caller works on a row (it may record one), and
        no statement stays open on the shared connection between chunks."""
        where, args = window(since, until, "?", dt.datetime.isoformat)
        sql = f"SELECT id, {_COLUMNS} FROM attempts{where}"
        after = sql + (" AND" if where else " WHERE") + " (ts, id) > (?, ?)"
        self.flush()
        last: tuple[str, int] | None = None
        while True:
            with store_errors(self, "reading its rows", sqlite3.Error), self._lock:
                if last is None:
                    chunk = self._conn.execute(f"{sql} ORDER BY ts, id LIMIT ?", [*args, LEDGER_READ_CHUNK]).fetchall()
                else:
                    chunk = self._conn.execute(f"{after} ORDER BY ts, id LIMIT ?",
                                               [*args, *last, LEDGER_READ_CHUNK]).fetchall()
            for r in chunk:
                yield _row_of(r)
            if len(chunk) < LEDGER_READ_CHUNK:
                return
            last = (chunk[-1][1], chunk[-1][0])

    def close(self) -> None:
        forks_with(self, keep=False)  # a child forked from now on opens nothing for it
        if self._writer is not None:
            self._writer.close()
        with self._lock:
            self._conn.close()

    def __repr__(self) -> str:
        return f"SQLiteLedger({self.path!r})"
