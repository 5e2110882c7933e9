"""The shared ledger: PostgreSQL through psycopg 3, for many application instances sharing spend and budgets.

``ledger = "postgresql://user:password@host/db"`` (psycopg is the ``postgres`` extra: ``pip install
'computekit[postgres]'``). The tables are ``computekit_*`` in the connection's schema (``search_path``; add
``?options=-csearch_path%3Dmyschema`` to the URL to choose one). Money is ``NUMERIC`` (exact), times are
``timestamptz``, tags are ``jsonb``.

A budget reservation takes a transaction-level advisory lock per budget (in a fixed order, so two reservations
never deadlock), then reads spend and reservations in one statement (one snapshot) and inserts its own: two
processes can never both take the last dollar. Settling drops the reservation and inserts the attempt's row in
one transaction.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .._exceptions import ConfigError
from ._base import Ledger, LedgerRow
from ._budgets import Charge, fits, refusal
from ._buffered import BatchWriter

if TYPE_CHECKING:
    import psycopg

__all__ = ["SCHEMA_VERSION", "PostgresLedger"]

SCHEMA_VERSION = 1
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
}

_COLUMNS = (
    "ts, verb, provider, model, outcome, latency_ms, input_tokens, output_tokens, cached_input_tokens, "
    "cache_write_tokens, reasoning_tokens, gpu_seconds, cost, currency, estimated, price_source, request_id, "
    "error_type, status, tags, once_key, reserved"
)
_INSERT = (
    f"INSERT INTO computekit_attempts ({_COLUMNS}) VALUES ({', '.join(['%s'] * 22)}) "
    "ON CONFLICT (once_key) DO NOTHING"
)


def _import_psycopg() -> Any:
    try:
        import psycopg
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ConfigError(
            "a postgresql:// ledger needs psycopg 3: pip install 'computekit[postgres]'"
        ) from e
    return psycopg


class PostgresLedger(Ledger):
    """A ledger in PostgreSQL, shared safely by threads, processes and machines.

    Args:
        url: A libpq connection URL (``postgresql://user:password@host:5432/db``).
        buffered: Commit recorded rows in batches from a writer thread (see :class:`SQLiteLedger`).

    Raises:
        ConfigError: psycopg is not installed, or the server cannot be reached (the message never shows the
            password).
    """

    blocking_io = True  # every statement is a round trip to the server

    def __init__(self, url: str, *, buffered: bool = False) -> None:
        self.url = url
        self._psycopg = _import_psycopg()
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[Any] | None = None
        with self._lock:
            self._setup(self._connection())
        self._writer = BatchWriter(self._record_many) if buffered else None

    def _connection(self) -> psycopg.Connection[Any]:
        """The open connection (reconnecting once it has broken). Call with ``self._lock`` held."""
        if self._conn is None or self._conn.closed or self._conn.broken:
            try:
                self._conn = self._psycopg.connect(self.url, autocommit=True)
            except self._psycopg.OperationalError as e:
                raise ConfigError(f"cannot connect to the PostgreSQL ledger at {self._where()}: {e}") from None
            self._conn.execute("SET TIME ZONE 'UTC'")
        return self._conn

    def _where(self) -> str:
        from urllib.parse import urlsplit

        parts = urlsplit(self.url)
        return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path}"  # no user, no password

    def _setup(self, c: psycopg.Connection[Any]) -> None:
        with c.transaction():
            c.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            c.execute("CREATE TABLE IF NOT EXISTS computekit_schema_version (version INTEGER NOT NULL)")
            row = c.execute("SELECT MAX(version) FROM computekit_schema_version").fetchone()
            current = (row[0] if row else None) or 0
            if current > SCHEMA_VERSION:
                raise RuntimeError(
                    f"ledger {self._where()} has schema v{current}, newer than this computekit (v{SCHEMA_VERSION})"
                )
            for v in range(current + 1, SCHEMA_VERSION + 1):
                for stmt in _MIGRATIONS[v].split(";"):
                    if stmt.strip():
                        c.execute(stmt)  # a constant of this module
                c.execute("INSERT INTO computekit_schema_version (version) VALUES (%s)", (v,))

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
        values = self._values(row)
        with self._lock:
            self._connection().execute(_INSERT, values)  # autocommit: one short transaction

    def record_many(self, rows: Sequence[LedgerRow]) -> None:
        if self._writer is not None:
            rows = [row for row in rows if not self._writer.put(row)]  # what the writer could not take
            if not rows:
                return
        self._record_many(list(rows))

    def _record_many(self, rows: list[LedgerRow]) -> None:
        values = [self._values(r) for r in rows]
        with self._tx() as c, c.cursor() as cur:
            cur.executemany(_INSERT, values)

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def rows(self, *, since: dt.datetime | None = None, until: dt.datetime | None = None) -> list[LedgerRow]:
        sql = f"SELECT id, {_COLUMNS} FROM computekit_attempts"
        where: list[str] = []
        args: list[Any] = []
        if since is not None:
            where.append("ts >= %s")
            args.append(since)
        if until is not None:
            where.append("ts < %s")
            args.append(until)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY ts, id"
        self.flush()
        with self._lock:
            fetched = self._connection().execute(sql, args).fetchall()
        return [
            LedgerRow(
                id=r[0], ts=r[1], verb=r[2], provider=r[3], model=r[4], outcome=r[5], latency_ms=r[6],
                input_tokens=r[7], output_tokens=r[8], cached_input_tokens=r[9], cache_write_tokens=r[10],
                reasoning_tokens=r[11], gpu_seconds=r[12], cost=r[13], currency=r[14], estimated=r[15],
                price_source=r[16], request_id=r[17], error_type=r[18], status=r[19], tags=dict(r[20]),
                once_key=r[21], reserved=r[22],
            )
            for r in fetched
        ]

    # ----------------------------------------------------------------------------------------- budgets

    def reserve(self, charges: Sequence[Charge], *, now: dt.datetime, ttl_s: float) -> str:
        rid = uuid.uuid4().hex
        expires = now + dt.timedelta(seconds=ttl_s)
        self.flush()  # spend includes every row recorded before
        with self._tx() as c:
            self._lock_budgets(c, charges)
            c.execute("DELETE FROM computekit_reservations WHERE expires <= %s", (now,))
            for charge in charges:
                spent, reserved = self._usage(c, charge)
                if not fits(charge, spent, reserved):
                    raise refusal(charge, spent, reserved)  # rolls back: nothing reserved
            with c.cursor() as cur:
                cur.executemany(
                    "INSERT INTO computekit_reservations (id, budget, amount, expires) VALUES (%s, %s, %s, %s)",
                    [(rid, ch.key, ch.amount, expires) for ch in charges],
                )
        return rid

    def settle(self, reservation: str, row: LedgerRow | None) -> None:
        values = None if row is None else self._values(row)
        with self._tx() as c:
            c.execute("DELETE FROM computekit_reservations WHERE id = %s", (reservation,))
            if values is not None:
                c.execute(_INSERT, values)

    def budget_usage(self, charge: Charge, *, now: dt.datetime) -> tuple[Decimal, Decimal]:
        self.flush()
        with self._tx() as c:
            c.execute("DELETE FROM computekit_reservations WHERE expires <= %s", (now,))
            return self._usage(c, charge)

    @staticmethod
    def _lock_budgets(c: psycopg.Connection[Any], charges: Sequence[Charge]) -> None:
        # One lock per budget, taken in sorted order (no deadlock), held until the transaction ends.
        for key in sorted({ch.key for ch in charges}):
            c.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (key,))

    @staticmethod
    def _usage(c: psycopg.Connection[Any], charge: Charge) -> tuple[Decimal, Decimal]:
        """Spent and reserved, read in one statement (one snapshot: a settle that commits in between is seen
        either as its reservation or as its row, never as neither)."""
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
        sql = (
            "SELECT (SELECT COALESCE(SUM(COALESCE(cost, reserved, 0)), 0) FROM computekit_attempts WHERE "
            + " AND ".join(where)
            + "), (SELECT COALESCE(SUM(amount), 0) FROM computekit_reservations WHERE budget = %s)"
        )
        row = c.execute(sql, [*args, charge.key]).fetchone()
        assert row is not None
        return Decimal(row[0]), Decimal(row[1])

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        with self._lock:
            if self._conn is not None:
                self._conn.close()

    def __repr__(self) -> str:
        return f"PostgresLedger({self._where()!r})"
