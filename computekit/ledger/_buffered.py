"""Ledger writes off the call path: a background thread commits recorded rows in batches.

Used when no budget is configured (a budget needs its reserve and settle to be synchronous). ``record()`` puts the
row on a bounded queue and returns; one writer thread takes what is queued (up to ``LEDGER_BATCH_MAX`` rows) and
commits it in one transaction. Reads (``rows()``, ``report()``) flush first, so they see every row recorded before
them. ``flush()`` and ``close()`` wait for the queue to be written; so does interpreter exit (``atexit``), so a
normal exit loses nothing. A full queue makes ``record()`` wait (memory stays bounded); a killed process loses at
most the rows not yet committed, never a committed one.
"""

from __future__ import annotations

import atexit
import datetime as dt
import logging
import queue
import threading
import weakref
from collections.abc import Sequence
from decimal import Decimal

from .._constants import LEDGER_BATCH_MAX, LEDGER_QUEUE_MAX
from ._base import Ledger, LedgerRow
from ._budgets import Charge

__all__ = ["BufferedLedger"]

log = logging.getLogger("computekit.ledger")

_WRITE_TRIES = 3


class BufferedLedger(Ledger):
    """Wraps a ledger so that :meth:`record` returns at once and a writer thread commits rows in batches.

    Args:
        inner: The ledger the rows are written to.
        max_queue: Rows held before :meth:`record` waits.
        max_batch: Rows committed in one transaction at most.
    """

    def __init__(self, inner: Ledger, *, max_queue: int = LEDGER_QUEUE_MAX, max_batch: int = LEDGER_BATCH_MAX) -> None:
        self.inner = inner
        self._queue: queue.Queue[LedgerRow | None] = queue.Queue(max_queue)
        self._max_batch = max_batch
        self._closed = False
        self._thread = threading.Thread(target=self._drain, name="computekit-ledger-writer", daemon=True)
        self._thread.start()
        # At exit, write what is queued: the writer is a daemon thread, still running while atexit handlers run.
        ref = weakref.ref(self)
        self._atexit = lambda: (lg := ref()) is not None and lg.close()
        atexit.register(self._atexit)

    def _drain(self) -> None:
        q = self._queue
        while True:
            first = q.get()
            if first is None:
                q.task_done()
                return
            batch = [first]
            stop = False
            while len(batch) < self._max_batch:
                try:
                    nxt = q.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            self._write(batch)
            for _ in range(len(batch) + stop):
                q.task_done()
            if stop:
                return

    def _write(self, batch: list[LedgerRow]) -> None:
        for attempt in range(_WRITE_TRIES):
            try:
                self.inner.record_many(batch)
                return
            except Exception:  # a locked or full disk must not kill the writer: retry, then say so
                if attempt == _WRITE_TRIES - 1:
                    log.exception("computekit ledger: %d rows could not be written", len(batch))

    def record(self, row: LedgerRow) -> None:
        if self._closed:
            self.inner.record(row)  # after close(): write through
            return
        self._queue.put(row)

    def record_many(self, rows: Sequence[LedgerRow]) -> None:
        for row in rows:
            self.record(row)

    def flush(self) -> None:
        """Wait until every row recorded so far is committed."""
        if self._thread.is_alive():
            self._queue.join()

    def rows(self, *, since: dt.datetime | None = None, until: dt.datetime | None = None) -> list[LedgerRow]:
        self.flush()
        return self.inner.rows(since=since, until=until)

    def reserve(self, charges: Sequence[Charge], *, now: dt.datetime, ttl_s: float) -> str:
        self.flush()  # spend must include every row recorded before
        return self.inner.reserve(charges, now=now, ttl_s=ttl_s)

    def settle(self, reservation: str, row: LedgerRow | None) -> None:
        self.inner.settle(reservation, row)

    def budget_usage(self, charge: Charge, *, now: dt.datetime) -> tuple[Decimal, Decimal]:
        self.flush()
        return self.inner.budget_usage(charge, now=now)

    def close(self) -> None:
        """Write what is queued, stop the writer and close the ledger under it."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self._atexit)
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        self.inner.close()

    def __getattr__(self, name: str) -> object:
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)  # e.g. ``path`` of a SQLite ledger

    def __repr__(self) -> str:
        return repr(self.inner)
