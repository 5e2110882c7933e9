"""Ledger writes off the call path: a background thread commits recorded rows in batches.

Used when no budget is configured (a budget needs its reserve and settle to be synchronous). ``record()`` puts the
row on a bounded queue and returns; one writer thread waits ``LEDGER_LINGER_S`` after a first row, then takes
what is queued (up to ``LEDGER_BATCH_MAX`` rows) and commits it in one transaction. Reads (``rows()``,
``report()``) flush first, so they see every row recorded before them. ``flush()`` and ``close()`` wait for the
queue to be written; so does interpreter exit (``atexit``), so a normal exit loses nothing. A full queue makes
``record()`` wait (memory stays bounded); a killed process loses at most the rows not yet committed, never a
committed one.
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import logging
import queue
import threading
import weakref
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from .._constants import LEDGER_BATCH_MAX, LEDGER_LINGER_S, LEDGER_QUEUE_MAX
from ._base import LedgerRow

__all__ = ["BatchWriter", "Buffered"]

log = logging.getLogger("computekit.ledger")

_WRITE_TRIES = 3
_REFUSALS_BEFORE_GIVING_UP = 3
"""Rows refused in a row (even in their safe form) after which the store itself is taken to be failing."""
_INT64_MAX = 2**63 - 1  # the integer columns of SQLite and PostgreSQL (BIGINT)


def safe_form(row: LedgerRow) -> LedgerRow | None:
    """``row`` with the values a store may refuse cleared: token counts outside 0..2^63-1 set to 0, and then its
    cost, whose counts are no longer known, to unknown (budgets count the amount it reserved); non-finite amounts
    to unknown. ``None`` when there is nothing to clear (the row was refused for another reason)."""
    changes: dict[str, Any] = {}
    for name in _COUNTS:
        value = getattr(row, name)
        if not isinstance(value, int) or not 0 <= value <= _INT64_MAX:
            changes[name] = 0
    for name in ("cost", "gpu_seconds", "reserved"):
        value = getattr(row, name)
        if value is not None and (not isinstance(value, Decimal) or not value.is_finite()):
            changes[name] = None
    if not changes:
        return None
    if any(name in changes for name in _COUNTS):
        changes["cost"] = None
    return dataclasses.replace(row, **changes)


_COUNTS = ("input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens", "reasoning_tokens")


def _facts(row: LedgerRow) -> str:
    """A row as a log line: every field, so that it can be re-entered by hand."""
    return json.dumps(row.as_dict(), default=str, sort_keys=True)


class BatchWriter:
    """A writer thread that commits queued rows in batches through ``write_many`` (a backend's direct,
    one-transaction write).

    Args:
        write_many: Writes a list of rows in one transaction.
        max_queue: Rows held before :meth:`put` waits.
        max_batch: Rows committed in one transaction at most.
        linger: How long the writer lets a batch build after its first row (unless someone is waiting). Waking
            and committing once per row would cost the caller more than it saves: the writer would take the
            GIL and the disk for every call.
    """

    def __init__(self, write_many: Callable[[list[LedgerRow]], None], *, max_queue: int = LEDGER_QUEUE_MAX,
                 max_batch: int = LEDGER_BATCH_MAX, linger: float = LEDGER_LINGER_S) -> None:
        self._write_many = write_many
        self._queue: queue.Queue[LedgerRow | None] = queue.Queue(max_queue)
        self._max_batch = max_batch
        self._linger = linger
        # Set while someone waits for the queue (flush, close): the writer then commits at once.
        self._urgent = threading.Event()
        self._waiting = 0
        self._waiting_lock = threading.Lock()
        self.closed = False
        self._thread = threading.Thread(target=self._drain, name="computekit-ledger-writer", daemon=True)
        self._thread.start()
        # At exit, write what is queued: the writer is a daemon thread, still running while atexit handlers run.
        ref = weakref.ref(self)

        def at_exit() -> None:
            writer = ref()
            if writer is not None:
                writer.close()

        self._atexit = at_exit
        atexit.register(at_exit)

    def _drain(self) -> None:
        q = self._queue
        while True:
            first = q.get()
            if first is None:
                q.task_done()
                return
            if not self._urgent.is_set():
                self._urgent.wait(self._linger)  # let the batch build; flush() and close() cut this short
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
        # A locked or full disk must not kill the writer: retry, then look for the row at fault.
        if not any(self._tried(batch) for _ in range(_WRITE_TRIES)):
            self._write_one_by_one(batch)

    def _tried(self, rows: list[LedgerRow]) -> bool:
        """Whether ``rows`` were written (in one transaction)."""
        try:
            self._write_many(rows)
        except Exception:
            log.debug("computekit ledger: a write of %d rows failed", len(rows), exc_info=True)
            return False
        return True

    def _write_one_by_one(self, batch: list[LedgerRow]) -> None:
        """The batch failed as a whole: write its rows one by one, so that one row the store refuses (a count
        beyond its integer columns ...) does not take the others with it. A refused row is written in a safe
        form (see :func:`safe_form`), else logged in full: never dropped silently. When the store refuses good
        rows too (it is locked, full, gone), the rest are logged, not tried one by one."""
        refused = 0  # consecutive rows the store refused even in their safe form
        for i, row in enumerate(batch):
            if refused >= _REFUSALS_BEFORE_GIVING_UP:
                for lost in batch[i:]:
                    log.error("computekit ledger: row not written (the ledger refuses writes): %s", _facts(lost))
                return
            if self._tried([row]):
                refused = 0
                continue
            safe = safe_form(row)
            if safe is not None and self._tried([safe]):
                log.error("computekit ledger: a row the ledger refused was written with its out-of-range values "
                          "cleared (cost unknown): %s", _facts(row))
                refused = 0
            else:
                refused += 1
                log.error("computekit ledger: row not written: %s", _facts(row))

    def put(self, row: LedgerRow) -> bool:
        """Queue ``row``; ``False`` when the writer is closed, or gone (a forked child): write it yourself."""
        if self.closed or not self._thread.is_alive():
            return False
        self._queue.put(row)
        return True

    def flush(self) -> None:
        """Wait until every row queued so far is committed."""
        if not self._thread.is_alive():
            return
        with self._waiting_lock:
            self._waiting += 1
            self._urgent.set()
        try:
            self._queue.join()
        finally:
            with self._waiting_lock:
                self._waiting -= 1
                if self._waiting == 0 and not self.closed:
                    self._urgent.clear()

    def close(self) -> None:
        """Write what is queued and stop the thread."""
        if self.closed:
            return
        self.closed = True
        atexit.unregister(self._atexit)
        if self._thread.is_alive():
            self._urgent.set()
            self._queue.put(None)
            self._thread.join()


class Buffered:
    """``record_many`` and ``flush`` for a backend whose rows may go through a :class:`BatchWriter` (``_writer``;
    ``None``: unbuffered, as under a budget); the backend's ``_record_many`` writes rows in one transaction.
    Listed before :class:`Ledger` in the backend's bases, so that these win."""

    _writer: BatchWriter | None

    def _record_many(self, rows: list[LedgerRow]) -> None:
        raise NotImplementedError

    def record_many(self, rows: Sequence[LedgerRow]) -> None:
        if self._writer is not None:
            rows = [row for row in rows if not self._writer.put(row)]  # what the writer could not take
            if not rows:
                return
        self._record_many(list(rows))

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()
