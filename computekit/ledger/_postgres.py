"""The shared ledger: PostgreSQL through psycopg 3, for many application instances sharing spend and budgets.

``ledger = "postgresql://user:password@host/db"`` (psycopg is the ``postgres`` extra: ``pip install
'computekit[postgres]'``). The tables are ``computekit_*`` in the connection's schema (``search_path``; add
``?options=-csearch_path%3Dmyschema`` to the URL to choose one). Money is ``NUMERIC`` (exact), times are
``timestamptz``, tags are ``jsonb``.

Budgets keep a running total per budget (``computekit_budget_totals``: the budget's scope, the start of the period
it counts, and what that period spent), so that a reservation and its settlement cost the same however many rows
the period holds:

- Every write of attempts (``record``, ``record_many``, ``settle``) is one statement: it inserts the rows, adds
  what they count to the totals of the budgets whose scope and period cover them (a row lock on each total until
  it commits), and, for a settle, drops the reservation. One round trip, one transaction. Two writers whose rows
  count in several budgets may lock them in different orders: the server breaks such a deadlock by rolling one
  back, and it is run again.
- A reservation locks its budgets' total rows (``SELECT ... FOR UPDATE``, in budget order), then, in a second
  statement (a snapshot taken with the locks held), reads what they spent and what is reserved in flight and
  reserves if everything fits: two processes can never both take the last dollar, and a settle of the same budget
  waits for it (and it for the settle). Both statements go in one pipelined round trip.
- A total that does not exist yet, or counts an earlier period, is (re)computed from the rows of the period once,
  in its own transaction, under ``SHARE ROW EXCLUSIVE`` on the totals table: this waits for every writer that may
  have inserted a row the sum cannot see yet, and holds new writers until the total exists, so no row is counted
  twice or missed.
"""

from __future__ import annotations

import datetime as dt
import functools
import select
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .._constants import LEDGER_FLUSH_INTERVAL_S, LEDGER_READ_CHUNK
from .._exceptions import ConfigError
from ._base import Ledger, LedgerRow, forks_with, store_errors, window
from ._budgets import Charge, fits, refusal
from ._buffered import BatchWriter, Buffered
from ._report import TAG_PREFIX, UNTAGGED, DayCell, Group
from ._row import period

if TYPE_CHECKING:
    import psycopg

__all__ = ["SCHEMA_VERSION", "PostgresLedger"]

SCHEMA_VERSION = 3
_MIGRATION_LOCK = 0x636B6C6564676572  # "ckledger": one process migrates at a time

_MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE computekit_attempts (
        id BIGSERIAL PRIMARY KEY,
        ts TIMESTAMPTZ NOT NULL,
        verb TEXT NOT NULL,
        provider TEXT NOT NULL,
        model TEXT NOT NULL,
        outcome TEXT NOT NULL,
        latency_ms DOUBLE PRECISION NOT NULL,
        input_tokens BIGINT NOT NULL DEFAULT 0,
        output_tokens BIGINT NOT NULL DEFAULT 0,
        cached_input_tokens BIGINT NOT NULL DEFAULT 0,
        cache_write_tokens BIGINT NOT NULL DEFAULT 0,
        reasoning_tokens BIGINT NOT NULL DEFAULT 0,
        gpu_seconds NUMERIC,
        cost NUMERIC,              -- exact, NULL = could not be priced
        currency TEXT NOT NULL DEFAULT 'USD',
        estimated BOOLEAN NOT NULL DEFAULT FALSE,
        price_source TEXT,
        request_id TEXT,
        error_type TEXT,
        status INTEGER,
        tags JSONB NOT NULL DEFAULT '{}',
        once_key TEXT UNIQUE,
        reserved NUMERIC           -- the worst case it reserved under a budget
    );
    CREATE INDEX computekit_attempts_ts ON computekit_attempts (ts);
    CREATE TABLE computekit_reservations (
        id TEXT NOT NULL,
        budget TEXT NOT NULL,
        amount NUMERIC NOT NULL,
        expires TIMESTAMPTZ NOT NULL
    );
    CREATE INDEX computekit_reservations_id ON computekit_reservations (id);
    CREATE INDEX computekit_reservations_budget ON computekit_reservations (budget);
    """,
    # v2: each budget's running total (reserve + settle no longer sum the period's rows), with its scope so that
    # a writer can tell which totals a row counts in.
    2: """
    CREATE TABLE computekit_budget_totals (
        budget TEXT PRIMARY KEY,
        period_start TIMESTAMPTZ NOT NULL,
        provider TEXT,
        model TEXT,
        tags JSONB NOT NULL DEFAULT '{}',
        spent NUMERIC NOT NULL
    );
    CREATE INDEX computekit_reservations_expires ON computekit_reservations (expires);
    """,
    # v3: a reservation keeps what it first reserved, read back by another process that settles it by its key (a
    # job's once-only key, set as its id); one made before keeps only what is left (``amount``).
    3: """
    ALTER TABLE computekit_reservations ADD COLUMN reserved NUMERIC;
    """,
}

_GROUP_SQL = {
    "provider": "provider", "model": "model", "verb": "verb", "outcome": "outcome",
    "target": "provider || ':' || model", "day": "to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
}
"""How a report's group is computed in SQL, for each ``by`` but ``tag:NAME``."""

_COLUMNS = (
    "ts, verb, provider, model, outcome, latency_ms, input_tokens, output_tokens, cached_input_tokens, "
    "cache_write_tokens, reasoning_tokens, gpu_seconds, cost, currency, estimated, price_source, request_id, "
    "error_type, status, tags, once_key, reserved"
)
# Taken to (re)compute a total: it waits for the writers in flight (each write statement holds the totals table
# in ROW EXCLUSIVE mode from before it reads anything), and holds new ones (and other refreshes) off.
_REFRESH_LOCK = "LOCK TABLE computekit_budget_totals IN SHARE ROW EXCLUSIVE MODE"
_REFRESH_TRIES = 3
_LOCK_TOTALS = "SELECT 1 FROM computekit_budget_totals WHERE budget = ANY(%s) ORDER BY budget FOR UPDATE"
# Reserve each charge if every one fits, all or none. ``fresh`` is false (or NULL) for a total that does not exist
# yet or counts another period: then nothing is reserved, and the caller computes it and tries again. Expired
# reservations (their process died) are dropped on the way; one locked by another transaction is skipped (that
# one drops it), never waited for.
_RESERVE = """
WITH k AS (
    SELECT * FROM unnest(%(keys)s::text[], %(starts)s::timestamptz[], %(amounts)s::numeric[], %(limits)s::numeric[])
        AS k(budget, start, amount, lim)
), gone AS (
    DELETE FROM computekit_reservations WHERE ctid IN (
        SELECT ctid FROM computekit_reservations WHERE expires <= %(now)s FOR UPDATE SKIP LOCKED)
), r AS (
    SELECT budget, SUM(amount) AS amount FROM computekit_reservations
    WHERE budget = ANY(%(keys)s) AND expires > %(now)s GROUP BY budget
), f AS (
    SELECT k.budget, k.amount, k.lim, COALESCE(t.period_start = k.start, FALSE) AS fresh,
           COALESCE(t.spent, 0) AS spent, COALESCE(r.amount, 0) AS reserved
    FROM k LEFT JOIN computekit_budget_totals t USING (budget) LEFT JOIN r USING (budget)
), ok AS (
    SELECT COALESCE(bool_and(fresh AND amount IS NOT NULL AND spent + reserved + amount <= lim), FALSE) AS fits
    FROM f
), ins AS (
    INSERT INTO computekit_reservations (id, budget, amount, expires, reserved)
    SELECT %(rid)s, budget, amount, %(expires)s, amount FROM f WHERE (SELECT fits FROM ok)
)
SELECT budget, fresh, spent, reserved, (SELECT fits FROM ok) FROM f
"""
_DEADLOCK_TRIES = 3
_ROWS_PER_STATEMENT = 1000  # 22 parameters a row: PostgreSQL takes at most 65,535 in one statement
# Which totals an attempt ``a`` counts in: the budget's period and scope (as ``covers`` in _budgets.py).
_COUNTS_IN = (
    "a.ts >= t.period_start AND (t.provider IS NULL OR t.provider = a.provider) AND (t.model IS NULL OR t.model = "
    "CASE WHEN strpos(t.model, ':') > 0 THEN a.provider || ':' || a.model ELSE a.model END) AND a.tags @> t.tags"
)


_SETTLES = {
    None: "",
    "all": ", gone AS (DELETE FROM computekit_reservations WHERE id = %s)",
    # A part (a batch's item) lowers the reservation only when its row was written here: a row another reader
    # wrote first (its once_key taken) settled its part then.
    "part": ", part AS (UPDATE computekit_reservations SET amount = GREATEST(amount - %s, 0) WHERE id = %s "
            "AND EXISTS (SELECT 1 FROM a))",
}


@functools.lru_cache(maxsize=64)
def _write_statement(rows: int, settles: str | None) -> str:
    """Insert ``rows`` attempts and add what they count to every budget total that covers them, in one
    statement; ``settles``: also drop a reservation (``"all"``: its id is the last parameter), or lower it by a
    part (``"part"``: the amount, then the id)."""
    values = ", ".join([f"({', '.join(['%s'] * 22)})"] * rows)
    drop = _SETTLES[settles]
    sql = (
        f"WITH a AS (INSERT INTO computekit_attempts ({_COLUMNS}) VALUES {values} ON CONFLICT (once_key) DO NOTHING "
        "RETURNING ts, provider, model, tags, COALESCE(cost, reserved, 0) AS amount), "
        f"adds AS (SELECT t.budget, SUM(a.amount) AS amount FROM a JOIN computekit_budget_totals t ON {_COUNTS_IN} "
        f"GROUP BY t.budget){drop} "
        "UPDATE computekit_budget_totals AS t SET spent = t.spent + adds.amount FROM adds "
        "WHERE t.budget = adds.budget AND adds.amount <> 0"
    )
    return sql


def _heard(fd: int) -> bool:
    """Whether the socket ``fd`` has something to read, or was closed, looked at without waiting. ``poll``: a
    process with more than ``FD_SETSIZE`` (1024) files open has sockets ``select`` cannot look at."""
    if hasattr(select, "poll"):
        p = select.poll()
        p.register(fd, select.POLLIN)
        return bool(p.poll(0))
    return bool(select.select([fd], [], [], 0)[0])  # Windows: no poll, and no FD_SETSIZE limit on a value


def _row_of(r: Any) -> LedgerRow:
    """A row as ``SELECT id, {_COLUMNS}`` reads it (NUMERIC as Decimal, timestamptz as an aware datetime)."""
    return LedgerRow(
        id=r[0], ts=r[1], verb=r[2], provider=r[3], model=r[4], outcome=r[5], latency_ms=r[6],
        input_tokens=r[7], output_tokens=r[8], cached_input_tokens=r[9], cache_write_tokens=r[10],
        reasoning_tokens=r[11], gpu_seconds=r[12], cost=r[13], currency=r[14], estimated=r[15],
        price_source=r[16], request_id=r[17], error_type=r[18], status=r[19], tags=dict(r[20]),
        once_key=r[21], reserved=r[22],
    )


def _import_psycopg() -> Any:
    try:
        import psycopg
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ConfigError(
            "a postgresql:// ledger needs psycopg 3: pip install 'computekit[postgres]'"
        ) from e
    return psycopg


class PostgresLedger(Buffered, Ledger):
    """A ledger in PostgreSQL, shared safely by threads, processes and machines.

    Args:
        url: A libpq connection URL (``postgresql://user:password@host:5432/db``).
        buffered: Commit recorded rows in batches from a writer thread (see :class:`SQLiteLedger`).
        flush_interval: See :class:`SQLiteLedger`.
        flush_on_sigterm: See :class:`SQLiteLedger`.

    Raises:
        ConfigError: psycopg is not installed, or the server cannot be reached (the message never shows the
            password).
        LedgerError: The server refused to set up the tables (a role that may not create them, on a ledger not
            created yet or older than this computekit): its error is the cause.
    """

    blocking_io = True  # every statement is a round trip to the server

    def __init__(self, url: str, *, buffered: bool = False, flush_interval: float = LEDGER_FLUSH_INTERVAL_S,
                 flush_on_sigterm: bool = True) -> None:
        self.url = url
        self._psycopg = _import_psycopg()
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[Any] | None = None
        with self._lock, store_errors(self, "opening it", self._psycopg.Error):
            self._setup(self._connection())
        self._writer = BatchWriter(self._record_many, flush_interval=flush_interval,
                                   flush_on_sigterm=flush_on_sigterm) if buffered else None
        self._parents: list[psycopg.Connection[Any]] = []
        """The connections of the processes this one was forked from (see :meth:`_forked`)."""
        forks_with(self)

    def _forked(self) -> None:
        """In a forked child. The lock may be held by a thread of the parent (its writer mid-statement), which does
        not exist here: a new one. The connection's socket is the parent's session: used here, the two processes'
        statements and answers would interleave on it. The child connects anew (on first use), and keeps the
        parent's unused and unclosed (closing it would end the parent's session)."""
        self._lock = threading.Lock()
        if self._conn is not None:
            self._parents.append(self._conn)
            self._conn = None

    def _connection(self) -> psycopg.Connection[Any]:
        """The open connection (reconnecting once it has broken, or once the server has ended it). Call with
        ``self._lock`` held.

        Raises:
            ConfigError: The first connection cannot be made (the ledger is being opened).
            psycopg.OperationalError: A new connection cannot be made (the server is down): the store failed.
        """
        conn = self._conn
        if conn is None or conn.closed or conn.broken or not self._open(conn):
            if conn is not None:
                conn.close()
            try:
                fresh = self._psycopg.connect(self.url, autocommit=True)
            except self._psycopg.OperationalError as e:
                if conn is not None:
                    raise  # it was open before: the store is down, not the configuration wrong
                raise ConfigError(f"cannot connect to the PostgreSQL ledger at {self._where()}: {e}") from None
            self._conn = conn = fresh
            conn.execute("SET TIME ZONE 'UTC'")
        return conn

    @staticmethod
    def _open(conn: psycopg.Connection[Any]) -> bool:
        """Whether an idle connection is still open at the server's end. A server that restarted, or ended the
        session (``pg_terminate_backend``, an idle timeout, a failover), has said so on the socket, which an idle
        session of this ledger otherwise never hears from (it listens to nothing): looked at without waiting, so
        that a statement is never sent on a session that is gone (it would fail, and a write could not tell
        whether it was applied). A session lost without a word (a host gone) is found by the statement."""
        try:
            return not _heard(conn.pgconn.socket)
        except (OSError, conn.OperationalError):  # no socket left
            return False

    def _where(self) -> str:
        from urllib.parse import urlsplit

        parts = urlsplit(self.url)
        return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path}"  # no user, no password

    def _setup(self, c: psycopg.Connection[Any]) -> None:
        with c.transaction():
            current = self._version(c)
            if current == SCHEMA_VERSION:
                return  # nothing to create: no lock, no DDL (so a role that may only read can open it)
            if current < SCHEMA_VERSION:
                c.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
                c.execute("CREATE TABLE IF NOT EXISTS computekit_schema_version (version INTEGER NOT NULL)")
                current = self._version(c)  # another process may have migrated it meanwhile
            if current > SCHEMA_VERSION:
                raise RuntimeError(
                    f"ledger {self._where()} has schema v{current}, newer than this computekit (v{SCHEMA_VERSION})"
                )
            for v in range(current + 1, SCHEMA_VERSION + 1):
                for stmt in _MIGRATIONS[v].split(";"):
                    if stmt.strip():
                        c.execute(stmt)  # a constant of this module
                c.execute("INSERT INTO computekit_schema_version (version) VALUES (%s)", (v,))

    @staticmethod
    def _version(c: psycopg.Connection[Any]) -> int:
        """The schema version of the ledger in the connection's ``search_path`` (0: none yet)."""
        row = c.execute("SELECT to_regclass('computekit_schema_version') IS NOT NULL").fetchone()
        if not row or not row[0]:
            return 0
        found = c.execute("SELECT MAX(version) FROM computekit_schema_version").fetchone()
        return int(found[0] or 0) if found else 0

    @contextmanager
    def _tx(self) -> Iterator[psycopg.Connection[Any]]:
        with self._lock:
            c = self._connection()
            with c.transaction():
                yield c

    @staticmethod
    def _values(row: LedgerRow) -> tuple[object, ...]:
        from psycopg.types.json import Jsonb

        return (
            row.ts, row.verb, row.provider, row.model, row.outcome, row.latency_ms, row.input_tokens,
            row.output_tokens, row.cached_input_tokens, row.cache_write_tokens, row.reasoning_tokens,
            row.gpu_seconds, row.cost, row.currency, row.estimated, row.price_source, row.request_id,
            row.error_type, row.status, Jsonb(row.tags or {}), row.once_key, row.reserved,
        )

    def record(self, row: LedgerRow) -> None:
        if self._writer is not None and self._writer.put(row):
            return
        self._write([row])

    def _record_many(self, rows: list[LedgerRow]) -> None:
        self._write(rows)

    def _write(self, rows: Sequence[LedgerRow], reservation: str | None = None, part: Decimal | None = None) -> None:
        """Insert attempts, add them to the running totals that count them, and drop ``reservation`` (or lower it
        by ``part``): one statement per batch (one round trip, one transaction)."""
        for start in range(0, len(rows), _ROWS_PER_STATEMENT):
            chunk = rows[start:start + _ROWS_PER_STATEMENT]
            sql = _write_statement(len(chunk), None if reservation is None else "all" if part is None else "part")
            values = [v for row in chunk for v in self._values(row)]
            if reservation is not None:
                values += [reservation] if part is None else [part, reservation]
                reservation = None  # settled with the first chunk

            def run(c: psycopg.Connection[Any], sql: str = sql, values: list[object] = values) -> None:
                c.execute(sql, values)  # a statement built by this module

            self._retrying(run)

    def _retrying(self, work: Callable[[psycopg.Connection[Any]], object]) -> None:
        """Run one statement (autocommit: its own transaction), again if the server broke a deadlock with it
        (two writers whose rows count in the same budgets, locked in another order): nothing of it was kept."""
        for attempt in range(_DEADLOCK_TRIES):
            try:
                with self._lock:
                    work(self._connection())
                return
            except self._psycopg.errors.DeadlockDetected:
                if attempt == _DEADLOCK_TRIES - 1:
                    raise

    def _groups(self, by: str, since: dt.datetime | None, until: dt.datetime | None) -> list[Group] | None:
        args: list[Any] = []
        if by.startswith(TAG_PREFIX):
            key = "tags ->> %s"
            args.append(by[len(TAG_PREFIX):])
        else:
            key = _GROUP_SQL[by]
        where, period_args = window(since, until, "%s")
        args += period_args
        # NUMERIC sums are exact: no cost is read into Python.
        sql = ("SELECT " + key + ", COUNT(*), COUNT(*) FILTER (WHERE outcome = 'error'), "
               "COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0), COALESCE(SUM(cost), 0), "
               "COUNT(*) FILTER (WHERE cost IS NULL) FROM computekit_attempts" + where + " GROUP BY 1")
        self.flush()
        with store_errors(self, "reading its rows", self._psycopg.Error), self._lock:
            fetched = self._connection().execute(sql, args).fetchall()
        return [(UNTAGGED if k is None else str(k), n, errors, int(tin), int(tout), Decimal(cost), unpriced)
                for k, n, errors, tin, tout, cost, unpriced in fetched]

    def _daily(self, since: dt.datetime | None, until: dt.datetime | None) -> list[DayCell] | None:
        where, args = window(since, until, "%s")
        sql = ("SELECT (ts AT TIME ZONE 'UTC')::date, provider, COALESCE(SUM(cost), 0), COUNT(*), "
               "COUNT(*) FILTER (WHERE cost IS NULL) FROM computekit_attempts" + where + " GROUP BY 1, 2")
        self.flush()
        with store_errors(self, "reading its rows", self._psycopg.Error), self._lock:
            fetched = self._connection().execute(sql, args).fetchall()
        return [(day, provider, Decimal(cost), n, unpriced) for day, provider, cost, n, unpriced in fetched]

    def rows(self, *, since: dt.datetime | None = None, until: dt.datetime | None = None) -> list[LedgerRow]:
        since, until = period(since, until)  # any time zone compares right; a date is refused
        where, args = window(since, until, "%s")
        sql = f"SELECT id, {_COLUMNS} FROM computekit_attempts{where} ORDER BY ts, id"
        self.flush()
        with store_errors(self, "reading its rows", self._psycopg.Error), self._lock:
            fetched = self._connection().execute(sql, args).fetchall()
        return [_row_of(r) for r in fetched]

    def iter_rows(self, *, since: dt.datetime | None = None,
                  until: dt.datetime | None = None) -> Iterator[LedgerRow]:
        since, until = period(since, until)  # checked now, not at the first row
        return self._iter_rows(since, until)

    def _iter_rows(self, since: dt.datetime | None, until: dt.datetime | None) -> Iterator[LedgerRow]:
        """A server-side cursor, ``LEDGER_READ_CHUNK`` rows a fetch, on a connection of its own: its transaction
        (one snapshot of the rows) stays open while the caller iterates, which the ledger's shared connection
        (autocommit, and used by writes meanwhile) cannot do, and nothing here holds the ledger's lock."""
        where, args = window(since, until, "%s")
        sql = f"SELECT id, {_COLUMNS} FROM computekit_attempts{where} ORDER BY ts, id"
        self.flush()
        errors = self._psycopg.Error
        with store_errors(self, "reading its rows", errors):
            conn = self._psycopg.connect(self.url)  # a transaction from the first statement: a cursor needs one
        try:
            with store_errors(self, "reading its rows", errors):
                conn.execute("SET TIME ZONE 'UTC'")
                cur = conn.cursor(name=f"computekit_rows_{uuid.uuid4().hex}")
                cur.execute(sql, args)
            while True:
                with store_errors(self, "reading its rows", errors):
                    chunk = cur.fetchmany(LEDGER_READ_CHUNK)
                if not chunk:
                    return
                for r in chunk:
                    yield _row_of(r)
        finally:
            conn.close()  # ends the transaction and the cursor, also when the caller stops early

    # ----------------------------------------------------------------------------------------- budgets

    def reserve(self, charges: Sequence[Charge], *, now: dt.datetime, ttl_s: float) -> str:
        rid = uuid.uuid4().hex
        keys = [ch.key for ch in charges]
        params = {"keys": keys, "starts": [ch.start for ch in charges], "amounts": [ch.amount for ch in charges],
                  "limits": [ch.limit for ch in charges], "now": now, "rid": rid,
                  "expires": now + dt.timedelta(seconds=ttl_s)}
        self.flush()  # spend includes every row recorded before
        deadlocks = 0
        for _ in range(_REFRESH_TRIES + _DEADLOCK_TRIES):
            # One round trip: the totals are locked in budget order by the first statement; the second (a new
            # snapshot, taken once the locks are held) reads spend and reservations and reserves if all fit.
            try:
                with self._lock:
                    c = self._connection()
                    try:
                        # BEGIN and COMMIT sent as statements: psycopg's transaction() would wait for each
                        with c.pipeline():
                            c.execute("BEGIN")
                            c.execute(_LOCK_TOTALS, (sorted(set(keys)),))
                            cur = c.execute(_RESERVE, params)
                            c.execute("COMMIT")
                    except BaseException:
                        if not c.closed and c.info.transaction_status != self._psycopg.pq.TransactionStatus.IDLE:
                            c.execute("ROLLBACK")  # a failed statement left the transaction open: nothing kept
                        raise
                    found = {row[0]: row[1:] for row in cur.fetchall()}  # budget -> fresh, spent, reserved, fits
            except self._psycopg.errors.DeadlockDetected:
                # A settle whose row counts in several of these budgets locked them in another order; the server
                # rolled this transaction back: nothing was reserved.
                deadlocks += 1
                if deadlocks == _DEADLOCK_TRIES:
                    raise
                continue
            stale = [ch for ch in charges if not found[ch.key][0]]
            if stale:
                self._refresh(stale)  # nothing was reserved: compute the totals, then try again
                continue
            if found[keys[0]][3]:
                return rid
            for charge in charges:
                _, spent, reserved, _ = found[charge.key]
                spent, reserved = Decimal(spent), Decimal(reserved)
                if not fits(charge, spent, reserved):
                    raise refusal(charge, spent, reserved)
            raise refusal(charges[0], Decimal(found[keys[0]][1]), Decimal(found[keys[0]][2]))  # pragma: no cover
        raise RuntimeError("budget totals kept changing period while reserving")  # pragma: no cover

    def settle(self, reservation: str, row: LedgerRow | None) -> None:
        if row is None:
            with self._lock:
                self._connection().execute("DELETE FROM computekit_reservations WHERE id = %s", (reservation,))
            return
        self._write([row], reservation)

    def settle_part(self, reservation: str, row: LedgerRow, amount: Decimal) -> None:
        self._write([row], reservation, amount)

    def key_reservation(self, reservation: str, key: str) -> None:
        with self._lock:
            self._connection().execute("UPDATE computekit_reservations SET id = %s WHERE id = %s", (key, reservation))

    def reservation(self, key: str, *, now: dt.datetime) -> Decimal | None:
        with self._lock:
            found = self._connection().execute(
                "SELECT MAX(COALESCE(reserved, amount)) FROM computekit_reservations WHERE id = %s AND expires > %s",
                (key, now)).fetchone()
        return None if found is None or found[0] is None else Decimal(found[0])

    def budget_usage(self, charge: Charge, *, now: dt.datetime) -> tuple[Decimal, Decimal]:
        self.flush()
        with store_errors(self, "reading a budget's spend", self._psycopg.Error):
            for _ in range(_REFRESH_TRIES):
                with self._tx() as c:
                    usage = self._locked_usage(c, [charge], now)
                    if isinstance(usage, dict):
                        return usage[charge.key]
                self._refresh(usage)
        raise RuntimeError("budget totals kept changing period while reading")  # pragma: no cover

    @staticmethod
    def _locked_usage(c: psycopg.Connection[Any], charges: Sequence[Charge],
                      now: dt.datetime) -> dict[str, tuple[Decimal, Decimal]] | list[Charge]:
        """Spent and reserved per budget key, with the budgets' totals locked (in budget order) until the
        transaction ends; or the charges whose total is missing or counts another period (the caller ends this
        transaction, then :meth:`_refresh` computes them: that needs a table lock that waits for writers, who may
        be waiting for the rows locked here)."""
        wanted = {ch.key: ch for ch in charges}
        keys = sorted(wanted)
        totals = {key: (start, spent) for key, start, spent in c.execute(
            "SELECT budget, period_start, spent FROM computekit_budget_totals WHERE budget = ANY(%s) "
            "ORDER BY budget FOR UPDATE", (keys,)).fetchall()}
        stale = [wanted[k] for k in keys if k not in totals or totals[k][0] != wanted[k].start]
        if stale:
            return stale
        # Expired reservations (their process died) are dropped on the way; one locked by another transaction is
        # skipped (it drops it), never waited for.
        reserved = dict(c.execute(
            "WITH gone AS (DELETE FROM computekit_reservations WHERE ctid IN (SELECT ctid FROM "
            "computekit_reservations WHERE expires <= %s FOR UPDATE SKIP LOCKED)) "
            "SELECT budget, SUM(amount) FROM computekit_reservations WHERE budget = ANY(%s) AND expires > %s "
            "GROUP BY budget", (now, keys, now)).fetchall())
        return {k: (Decimal(totals[k][1]), Decimal(reserved.get(k, 0))) for k in keys}

    def _refresh(self, charges: Sequence[Charge]) -> None:
        """(Re)compute the running totals of ``charges`` from the rows of their period: once per budget and
        period. The table lock waits for every writer in flight (so the sum sees their rows) and holds new ones
        until the totals are written (so they add their rows to them)."""
        from psycopg.types.json import Jsonb

        with self._tx() as c:
            c.execute(_REFRESH_LOCK)
            current = dict(c.execute("SELECT budget, period_start FROM computekit_budget_totals "
                                     "WHERE budget = ANY(%s)", ([ch.key for ch in charges],)).fetchall())
            for ch in sorted(charges, key=lambda ch: ch.key):
                if current.get(ch.key) == ch.start:
                    continue  # another process computed it meanwhile
                c.execute(
                    "INSERT INTO computekit_budget_totals (budget, period_start, provider, model, tags, spent) "
                    "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (budget) DO UPDATE SET "
                    "period_start = excluded.period_start, provider = excluded.provider, "
                    "model = excluded.model, tags = excluded.tags, spent = excluded.spent",
                    (ch.key, ch.start, ch.provider, ch.model, Jsonb(dict(ch.tags)), self._period_spent(c, ch)),
                )

    @staticmethod
    def _period_spent(c: psycopg.Connection[Any], charge: Charge) -> Decimal:
        """What ``charge``'s budget spent in its period, summed from the rows (the slow path: once a period)."""
        from psycopg.types.json import Jsonb

        where = ["ts >= %s"]
        args: list[Any] = [charge.start]
        if charge.provider is not None:
            where.append("provider = %s")
            args.append(charge.provider)
        if charge.model is not None:
            if ":" in charge.model:
                provider, _, model = charge.model.partition(":")
                where.append("provider = %s AND model = %s")
                args += [provider, model]
            else:
                where.append("model = %s")
                args.append(charge.model)
        if charge.tags:
            where.append("tags @> %s")
            args.append(Jsonb(dict(charge.tags)))
        row = c.execute(
            "SELECT COALESCE(SUM(COALESCE(cost, reserved, 0)), 0) FROM computekit_attempts WHERE "
            + " AND ".join(where), args,
        ).fetchone()
        assert row is not None
        return Decimal(row[0])

    def close(self) -> None:
        forks_with(self, keep=False)  # a child forked from now on has nothing to do for it
        if self._writer is not None:
            self._writer.close()
        with self._lock:
            if self._conn is not None:
                self._conn.close()

    def __repr__(self) -> str:
        return f"PostgresLedger({self._where()!r})"
