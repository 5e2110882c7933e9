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
import logging
import queue
import threading
import weakref
from collections.abc import Callable, Sequence

from .._constants import LEDGER_BATCH_MAX, LEDGER_LINGER_S, LEDGER_QUEUE_MAX
from ._base import LedgerRow

__all__ = ["BatchWriter", "Buffered"]

log = logging.getLogger("computekit.ledger")

_WRITE_TRIES = 3


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
        for attempt in range(_WRITE_TRIES):
            try:
                self._write_many(batch)
                return
            except Exception:  # a locked or full disk must not kill the writer: retry, then say so
                if attempt == _WRITE_TRIES - 1:
                    log.exception("computekit ledger: %d rows could not be written", len(batch))

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
