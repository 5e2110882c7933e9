"""Ledger writes off the call path: a background thread commits recorded rows in batches.

Used when no budget is configured (a budget needs its reserve and settle to be synchronous). ``record()`` puts the
row on a bounded queue and returns; one writer thread commits each row within the *flush interval*
(``LEDGER_FLUSH_INTERVAL_S``, the ``ledger.flush_interval`` setting) of its ``record()``, in batches of up to
``LEDGER_BATCH_MAX`` rows, one transaction each. Reads (``rows()``, ``report()``) flush first, so they see every
row recorded before them. A full queue makes ``record()`` wait (memory stays bounded). A *job* (``defer()``: the
bookkeeping of an answer, which records its row) is queued like a row and run by the writer with its batch,
so that everything said below of a queued row holds for it.

When a process ends, the queue is written:

- at a normal interpreter exit (``atexit``), and when a ``multiprocessing`` worker ends (its finalizers run, its
  atexit handlers do not);
- on SIGTERM, when a writer was started in the main thread: computekit's handler writes the queue (for at most
  ``LEDGER_EXIT_FLUSH_TIMEOUT_S``), then calls the handler that was there before it, or, if there was none, ends
  the process by SIGTERM as it would have ended. A handler the application installs later replaces computekit's;
  one that ignores SIGTERM, or one set outside Python, is left alone (see docs/ledger.md);
- never on SIGKILL or ``os._exit()``: those lose the rows recorded within the last flush interval (and, if the
  disk cannot keep up, those still queued), never a committed one.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import logging
import os
import signal
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from .._constants import LEDGER_BATCH_MAX, LEDGER_EXIT_FLUSH_TIMEOUT_S, LEDGER_FLUSH_INTERVAL_S, LEDGER_QUEUE_MAX
from ._base import LedgerRow
from ._row import logged

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


_Item = tuple[float, LedgerRow | Callable[[], None]] | threading.Event | None
"""What the writer's queue holds: a row or a job with the time it was queued, a flush's mark, close()'s end."""
_POLL_S = 0.1
"""How often a put waiting for room, or a flush, checks that the writer is still there to make it."""
_IDLE_CHECK_S = 1.0
"""How often an idle writer looks at its queue unwoken: what a finalizer queues (see :meth:`BatchWriter.orphan`)
is seen within this time."""

_FINALIZER_PRIORITY = 10
"""multiprocessing runs finalizers with a priority first, highest first: the ledger's before pools and queues."""
_LIVE: weakref.WeakSet[BatchWriter] = weakref.WeakSet()
"""Every writer of this process (and those a fork copied, whose threads are gone): what SIGTERM writes out."""
_sigterm_installed = False
_previous_sigterm: Any = None


def install_sigterm_flush() -> bool:
    """Install the SIGTERM handler that writes every queued row before the process ends; whether it is installed.

    Done once per process, only from the main thread (Python's rule for signal handlers), and only over the
    default disposition or a handler written in Python, which it then calls: over ``SIG_IGN`` or a handler set
    outside Python it would change what SIGTERM does, so it is not installed. A handler installed after it (a web
    server's graceful shutdown) replaces it; the application then exits normally, and atexit writes the queue.
    """
    global _sigterm_installed, _previous_sigterm
    if _sigterm_installed or threading.current_thread() is not threading.main_thread():
        return _sigterm_installed
    if _in_multiprocessing_child():
        return False
    try:
        previous = signal.getsignal(signal.SIGTERM)
        if previous is signal.SIG_IGN or previous is None:
            return False
        signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError, AttributeError):  # no SIGTERM here, or an embedded interpreter that refuses
        return False
    _previous_sigterm, _sigterm_installed = previous, True
    return True


_SIGTERM_RETRY_S = 0.01
_LEDGER_DIR = os.path.dirname(os.path.abspath(__file__))
_deferred_until: float | None = None


def _in_ledger_code(frame: Any) -> bool:
    """Whether the main thread was interrupted inside the ledger's own code (``record()``, ``close()`` ...), which
    may hold a lock that its writer needs to write the queue."""
    while frame is not None:
        if os.path.dirname(frame.f_code.co_filename) == _LEDGER_DIR:
            return True
        frame = frame.f_back
    return False


def _in_multiprocessing_child() -> bool:
    """Whether this process is a multiprocessing worker. Its parent may end it with SIGTERM while it waits on a
    lock shared with its siblings (``Pool.terminate()``): a Python handler runs only once that wait returns, and
    it may never return, so the default action (end now) is kept there. Its rows are written when it ends
    normally (its finalizers), and within the flush interval."""
    mp = sys.modules.get("multiprocessing")
    return mp is not None and mp.parent_process() is not None


def _forget_sigterm_in_child() -> None:
    """In a forked child: give SIGTERM back its previous handler. The parent's writers are gone here (rows are
    written at once), and a child that starts its own writer installs the handler again if it may."""
    global _sigterm_installed
    if _sigterm_installed:
        _sigterm_installed = False
        with contextlib.suppress(ValueError, OSError, TypeError):
            if signal.getsignal(signal.SIGTERM) is _on_sigterm:
                signal.signal(signal.SIGTERM, _previous_sigterm)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_sigterm_in_child)


def _on_sigterm(signum: int, frame: Any) -> None:
    global _deferred_until
    now = time.monotonic()
    if _in_ledger_code(frame):
        if _deferred_until is None:
            _deferred_until = now + LEDGER_EXIT_FLUSH_TIMEOUT_S
        if now < _deferred_until:
            # Waiting here for the writer could wait for a lock the interrupted code holds: let that code return,
            # and take the signal again a moment later.
            again = threading.Timer(_SIGTERM_RETRY_S, os.kill, (os.getpid(), signum))
            again.daemon = True
            again.start()
            return
    flush_all(LEDGER_EXIT_FLUSH_TIMEOUT_S)
    previous = _previous_sigterm
    if callable(previous):
        previous(signum, frame)
        return
    # The default: end the process by the same signal, so that its parent sees what it would have seen.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def flush_all(timeout: float) -> bool:
    """Write the queue of every live writer of this process, waiting at most ``timeout`` seconds; whether all
    were written. The waiting is done by a helper thread: the caller (a signal handler) may have interrupted code
    that holds a lock the writers need, and must not wait for it forever."""
    # Closed ones too while their thread runs: a close() under way (atexit, a worker's finalizer) is still writing.
    writers = [w for w in list(_LIVE) if w._thread.is_alive()]
    if not writers:
        return True

    def write_out() -> None:
        for w in writers:
            w.flush()

    helper = threading.Thread(target=write_out, name="computekit-ledger-exit", daemon=True)
    helper.start()
    helper.join(timeout)
    if helper.is_alive():
        log.error("computekit ledger: queued rows were not all written within %.1f s of the process's end", timeout)
        return False
    return True


class BatchWriter:
    """A writer thread that commits queued rows in batches through ``write_many`` (a backend's direct,
    one-transaction write).

    Args:
        write_many: Writes a list of rows in one transaction.
        max_queue: Rows held before :meth:`put` waits.
        max_batch: Rows committed in one transaction at most.
        flush_interval: The longest a row waits before its batch is committed (unless someone is waiting, or a
            full batch is queued). Waking and committing once per row would cost the caller more than it saves:
            the writer would take the GIL and the disk for every call. It bounds what a hard kill loses.
        flush_on_sigterm: Write the queue when the process gets SIGTERM (see the module docs); ``False`` leaves
            the process's SIGTERM handling untouched.
    """

    def __init__(self, write_many: Callable[[list[LedgerRow]], None], *, max_queue: int = LEDGER_QUEUE_MAX,
                 max_batch: int = LEDGER_BATCH_MAX, flush_interval: float = LEDGER_FLUSH_INTERVAL_S,
                 flush_on_sigterm: bool = True) -> None:
        self._write_many = write_many
        # Each row with the time it was queued: the writer commits it within flush_interval of that time.
        # A job (see defer) is queued in place of a row: the writer runs it, and writes the rows it records.
        # A flush queues its mark (an Event the writer sets once everything before it is written); close queues
        # None. A deque, not a queue.Queue: appending to it is atomic (one C call under the GIL), so a row is
        # handed over without a lock, and the writer takes its batch without one either.
        self._items: deque[_Item] = deque()
        self._max_queue = max_queue
        self._made: list[LedgerRow] = []
        """Rows recorded by the job the writer is running (it puts them in its own batch, not on the queue)."""
        self._max_batch = max_batch
        self._interval = flush_interval
        # Set while someone waits for the queue (flush, close): the writer then commits at once.
        self._urgent = threading.Event()
        self._waiting = 0
        self._waiting_lock = threading.Lock()
        self._idle = False
        """Whether the writer is waiting for the queue to stop being empty (on ``_wake``): only then does a put
        set ``_wake``, so that a row queued while the writer waits out its interval costs no system call."""
        self._wake = threading.Event()
        self._full = False
        """Whether a put is waiting for room (on ``_room``), which the writer sets as it takes a batch."""
        self._room = threading.Event()
        self.closed = False
        self._orphaned = False
        self._thread = threading.Thread(target=self._drain, name="computekit-ledger-writer", daemon=True)
        self._thread.start()
        self._ident = self._thread.ident
        # At exit, write what is queued: the writer is a daemon thread, still running while atexit handlers run.
        ref = weakref.ref(self)

        def at_exit() -> None:
            writer = ref()
            if writer is not None:
                writer.close()

        self._atexit = at_exit
        atexit.register(at_exit)
        if "multiprocessing" in sys.modules:
            # A multiprocessing worker ends with os._exit() after running its finalizers, not its atexit handlers.
            from multiprocessing import util

            util.Finalize(self, at_exit, exitpriority=_FINALIZER_PRIORITY)
        _LIVE.add(self)
        if flush_on_sigterm:
            install_sigterm_flush()

    def _drain(self) -> None:
        items = self._items
        while True:
            self._await_items()
            head = items[0]
            if isinstance(head, tuple):
                # Let the batch build until the first row has waited flush_interval; flush(), close() and a full
                # batch cut this short. Queued jobs are run then, one after the other, with the batch.
                wait = head[0] + self._interval - time.monotonic()
                if wait > 0 and not self._urgent.is_set() and len(items) < self._max_batch:
                    self._urgent.wait(wait)
            # Not held while idle: a job (an instrumented SDK client's bookkeeping) holds its client, which would
            # never be collected, nor let this writer go (see orphan()).
            head = None
            if self._write_next():
                if self._orphaned:  # nothing will close() it: what close() would do, done here
                    self.closed = True
                    atexit.unregister(self._atexit)
                while items:  # anything a put racing close() queued after its end: written too
                    self._write_next()
                return

    def _await_items(self) -> None:
        """Wait until the queue is not empty. A put sets ``_wake`` when it finds the writer idle: ``_idle`` is set
        before the queue is looked at again, so a row queued in between is either seen or wakes the wait."""
        items = self._items
        while not items:
            self._wake.clear()
            self._idle = True
            if not items:
                self._wake.wait(_IDLE_CHECK_S)
            self._idle = False

    def _write_next(self) -> bool:
        """Take up to a batch of rows (running the jobs queued among them) and commit them, then tell the flushes
        whose marks were taken; whether close() was (its end of the queue)."""
        items = self._items
        batch: list[LedgerRow] = []
        marks: list[threading.Event] = []
        taken, stop = 0, False
        while taken < self._max_batch:
            try:
                item = items.popleft()
            except IndexError:
                break
            if isinstance(item, tuple):
                taken += 1
                self._take(item[1], batch)
            elif item is None:
                stop = True
                break
            else:
                marks.append(item)
        if self._full:  # a put waits for room: there is some now
            self._full = False
            self._room.set()
        if batch:
            self._write(batch)
        for mark in marks:
            mark.set()
        return stop

    def _take(self, item: LedgerRow | Callable[[], None], batch: list[LedgerRow]) -> None:
        """A queued row joins ``batch``; a queued job is run, and the rows it records join it."""
        if isinstance(item, LedgerRow):
            batch.append(item)
            return
        try:
            item()
        except Exception:  # a job records what it can itself; the writer must survive one that fails
            log.exception("computekit ledger: a deferred bookkeeping step failed")
        batch.extend(self._made)
        self._made.clear()

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
                    log.error("computekit ledger: row not written (the ledger refuses writes): %s", logged(lost))
                return
            if self._tried([row]):
                refused = 0
                continue
            safe = safe_form(row)
            if safe is not None and self._tried([safe]):
                log.error("computekit ledger: a row the ledger refused was written with its out-of-range values "
                          "cleared (cost unknown): %s", logged(row))
                refused = 0
            else:
                refused += 1
                log.error("computekit ledger: row not written: %s", logged(row))

    def put(self, row: LedgerRow) -> bool:
        """Queue ``row``; ``False`` when the writer is closed, or gone (a forked child): write it yourself."""
        if threading.get_ident() == self._ident:  # recorded by a job the writer runs: its own batch
            self._made.append(row)
            return True
        return self._enqueue([(time.monotonic(), row)])

    def put_many(self, rows: Sequence[LedgerRow]) -> bool:
        """Queue ``rows``, in one hand-off; ``False`` as :meth:`put` (then none was queued)."""
        if threading.get_ident() == self._ident:
            self._made.extend(rows)
            return True
        when = time.monotonic()
        return self._enqueue([(when, row) for row in rows])

    def defer(self, job: Callable[[], None]) -> bool:
        """Queue ``job``, run by the writer with its next batch (see :meth:`Ledger.defer`); ``False`` as
        :meth:`put`."""
        # The writer itself (a job deferring another) never waits for room: only it could make some.
        return self._enqueue([(time.monotonic(), job)], wait=threading.get_ident() != self._ident)

    def _enqueue(self, new: list[_Item], wait: bool = True) -> bool:
        """Append ``new`` to the queue in one call (its items stay together, in order), once there is room;
        ``False`` when the writer is closed or gone."""
        if self.closed or not self._thread.is_alive():
            return False
        items = self._items
        if wait and len(items) >= self._max_queue:
            self._wait_for_room()
        items.extend(new)
        if self._idle:
            self._wake.set()
        return True

    def _wait_for_room(self) -> None:
        """Wait until the queue has room (memory stays bounded), or the writer is gone. ``_full`` is set before
        the queue is looked at again, so a batch taken in between is either seen or sets ``_room``."""
        while len(self._items) >= self._max_queue and self._thread.is_alive():
            self._room.clear()
            self._full = True
            if len(self._items) >= self._max_queue:
                self._room.wait(_POLL_S)

    def flush(self) -> None:
        """Wait until every row queued so far is committed."""
        if not self._thread.is_alive() or threading.get_ident() == self._ident:
            return  # no writer (a forked child's), or the writer itself (a job), which cannot wait for itself
        with self._waiting_lock:
            self._waiting += 1
            self._urgent.set()
        try:
            mark = threading.Event()
            self._items.append(mark)
            if self._idle:
                self._wake.set()
            # A writer that ended before it reached the mark (a close() under way) will never set it.
            while not mark.wait(_POLL_S) and self._thread.is_alive():
                pass
        finally:
            with self._waiting_lock:
                self._waiting -= 1
                if self._waiting == 0 and not self.closed:
                    self._urgent.clear()

    def orphan(self) -> None:
        """Write what is queued and stop the thread, without waiting: its ledger's client was collected unclosed
        (a finalizer calls this). A finalizer may run on any thread, the writer's own included, inside code that
        holds a lock: this only queues the end, which the writer sees within :data:`_IDLE_CHECK_S`. The ledger
        stays usable (its rows are then written at once)."""
        self._orphaned = True
        self._items.append(None)

    def close(self) -> None:
        """Write what is queued and stop the thread."""
        if self.closed:
            return
        self.closed = True
        atexit.unregister(self._atexit)
        if self._thread.is_alive():
            self._urgent.set()
            self._items.append(None)
            self._wake.set()
            self._thread.join()


class Buffered:
    """``record_many`` and ``flush`` for a backend whose rows may go through a :class:`BatchWriter` (``_writer``;
    ``None``: unbuffered, as under a budget); the backend's ``_record_many`` writes rows in one transaction.
    Listed before :class:`Ledger` in the backend's bases, so that these win."""

    _writer: BatchWriter | None

    def _record_many(self, rows: list[LedgerRow]) -> None:
        raise NotImplementedError

    def record_many(self, rows: Sequence[LedgerRow]) -> None:
        if self._writer is not None and self._writer.put_many(rows):
            return
        self._record_many(list(rows))

    def defer(self, job: Callable[[], None]) -> bool:
        return self._writer is not None and self._writer.defer(job)

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def _orphan(self) -> None:
        """Stop the writer thread once it has written its queue (see :meth:`BatchWriter.orphan`)."""
        if self._writer is not None:
            self._writer.orphan()
