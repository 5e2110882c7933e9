"""The interface every ledger backend implements (records, reservations, and the reports built from its rows).

Rows are :mod:`._row`'s, reports :mod:`._report`'s: this module sits above both.
"""

from __future__ import annotations

import datetime as dt
import os
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal

from .._exceptions import ConfigError, LedgerError
from ._budgets import Charge
from ._report import Calls, DayCell, Group, Report, build_report, check_group_by, report_of_groups
from ._row import GroupBy, LedgerRow, period

# LedgerRow: the backends take it from here, with the interface.
__all__ = ["Ledger", "LedgerRow", "forks_with", "store_errors"]


_FORKED: weakref.WeakSet[Ledger] = weakref.WeakSet()
"""The open ledgers of this process that hold a connection: a forked child gives each one of its own."""


def window(since: dt.datetime | None, until: dt.datetime | None, mark: str,
           value: Callable[[dt.datetime], object] = lambda t: t) -> tuple[str, list[object]]:
    """The SQL ``WHERE`` clause of a period (``since`` included, ``until`` excluded; empty: all time) with the
    store's parameter ``mark`` (``?``, ``%s``), and its arguments (each time as ``value`` makes it)."""
    where, args = [], []
    if since is not None:
        where.append(f"ts >= {mark}")
        args.append(value(since))
    if until is not None:
        where.append(f"ts < {mark}")
        args.append(value(until))
    return (" WHERE " + " AND ".join(where) if where else ""), args


def forks_with(ledger: Ledger, keep: bool = True) -> None:
    """Have ``ledger._forked()`` run in every child forked from now on (``keep=False``: no longer, once closed)."""
    if keep:
        _FORKED.add(ledger)
    else:
        _FORKED.discard(ledger)


def _after_fork_in_child() -> None:
    for ledger in list(_FORKED):
        ledger._forked()


if hasattr(os, "register_at_fork"):  # pragma: no branch - POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)


@contextmanager
def store_errors(ledger: object, doing: str, errors: type[Exception] | tuple[type[Exception], ...]) -> Iterator[None]:
    """A store's own error (one of ``errors``) met while ``doing`` something for its caller (opening the ledger,
    reading it) raised as a :class:`LedgerError` naming the ledger (its ``repr``: never a password), from it."""
    try:
        yield
    except errors as e:
        raise LedgerError(f"{ledger!r}: the ledger's store failed while {doing} ({type(e).__name__}: {e}). Check "
                          "that it is reachable and writable (SQLite: another process may hold it past its busy "
                          "timeout)") from e


class Ledger(ABC):
    """Where every attempt is recorded, and where budgets are enforced.

    A backend implements :meth:`record` and :meth:`rows` (and :meth:`iter_rows`, when it can read a chunk at a
    time: the default lists :meth:`rows`); one that can enforce budgets also implements
    :meth:`reserve`, :meth:`settle` and :meth:`budget_usage`, each atomic across threads and processes that share
    the ledger.
    """

    blocking_io: bool = False
    """Whether a write waits on the network (a remote server): async clients then run reservations and their
    settlement in a worker thread, off the event loop. An embedded ledger (SQLite: sub-millisecond) says no."""

    ephemeral: bool = False
    """Whether its rows live only in this object (an in-memory SQLite ledger): a client that opened it only flushes
    it when the client is closed, so that its rows stay readable (closed, they would be gone)."""

    @abstractmethod
    def record(self, row: LedgerRow) -> None:
        """Append one attempt (committed before returning)."""

    def record_many(self, rows: Sequence[LedgerRow]) -> None:
        """Append several attempts; a backend commits them in one transaction (all or none)."""
        for row in rows:
            self.record(row)

    @abstractmethod
    def rows(self, *, since: dt.datetime | None = None, until: dt.datetime | None = None) -> list[LedgerRow]:
        """The recorded attempts in time order, optionally within ``[since, until)``, all in one list (in memory:
        on a large ledger, iterate :meth:`iter_rows` instead).

        Raises:
            InvalidRequestError: ``since`` or ``until`` is not a datetime, or ``since`` is after ``until``.
            LedgerError: The store failed (locked past its busy timeout, unreachable ...): its own error is the
                cause (the SQLite and PostgreSQL ledgers).
        """

    def iter_rows(self, *, since: dt.datetime | None = None,
                  until: dt.datetime | None = None) -> Iterator[LedgerRow]:
        """The recorded attempts in time order, optionally within ``[since, until)``, read lazily: the SQLite and
        PostgreSQL ledgers fetch ``LEDGER_READ_CHUNK`` rows at a time, so memory stays bounded however many rows
        the period holds. The same rows as :meth:`rows`; a row recorded while you iterate may or may not be
        included, never twice. ``since`` and ``until`` are checked at once, before the first row is read.

        Raises:
            InvalidRequestError: ``since`` or ``until`` is not a datetime, or ``since`` is after ``until``.
            LedgerError: The store failed (see :meth:`rows`), raised by the iteration when it reads.
        """
        # A backend that cannot read lazily (one written before this method) lists its rows.
        return iter(self.rows(since=since, until=until))

    def report(
        self,
        by: GroupBy | str = "provider",
        *,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        group_by: GroupBy | str | None = None,
    ) -> Report:
        """Spend grouped by ``by``, with an exact Decimal total; unpriced attempts are counted apart, never as 0.

        Args:
            by: ``provider``, ``model``, ``target`` (``provider:model``), ``verb``, ``day`` (UTC), ``outcome``, or
                ``tag:NAME`` (the value of the tag ``NAME``; attempts without it form the group ``(none)``).
            since: From this time, included (a naive datetime is UTC).
            until: Up to this time, excluded.
            group_by: Another name for ``by`` (the field's name on ``Report``).

        Raises:
            ValueError: ``by`` is not one of the above, or ``by`` and ``group_by`` disagree.
            InvalidRequestError: ``since`` or ``until`` is not a datetime (a ``date`` ...), or ``since`` is after
                ``until``.
            LedgerError: The store failed (see :meth:`rows`).
        """
        if group_by is not None:
            if by not in ("provider", group_by):
                raise ValueError(f"pass by= or group_by=, not both ({by!r} and {group_by!r})")
            by = group_by
        check_group_by(by)  # before reading the rows
        since, until = period(since, until)
        groups = self._groups(by, since, until)
        if groups is not None:
            return report_of_groups(groups, by, since=since, until=until)
        return build_report(self.iter_rows(since=since, until=until), by, since=since, until=until)

    def _groups(self, by: str, since: dt.datetime | None, until: dt.datetime | None) -> list[Group] | None:
        """The report's groups summed by the store itself (``GROUP BY``: no row is read into Python), or ``None``
        for a backend that cannot (its report is then built from :meth:`iter_rows`, one row at a time)."""
        return None

    def _daily(self, since: dt.datetime | None, until: dt.datetime | None) -> list[DayCell] | None:
        """The cost per UTC day and provider summed by the store itself, or ``None`` for a backend that cannot
        (the chart is then summed from :meth:`iter_rows`)."""
        return None

    def calls(self, *, since: dt.datetime | None = None, until: dt.datetime | None = None) -> Calls:
        """The individual attempts of a period (the calls view), with the same exports as a report. Nothing is
        read until it is used: its CSV and JSON writers stream the rows, its totals, report and chart are summed
        by the store; only :attr:`Calls.rows` lists them all in memory.

        Raises:
            InvalidRequestError: ``since`` or ``until`` is not a datetime, or ``since`` is after ``until``.
            LedgerError: The store failed (see :meth:`rows`), raised when the view reads it.
        """
        since, until = period(since, until)
        return Calls.of_ledger(self, since=since, until=until)

    # ----------------------------------------------------------------------------------------- budgets

    def reserve(self, charges: Sequence[Charge], *, now: dt.datetime, ttl_s: float) -> str:
        """Reserve each charge's amount against its budget, all or none, atomically; the reservation counts until
        it is settled or ``ttl_s`` passes (its process died).

        Returns:
            The reservation's id, for :meth:`settle`.

        Raises:
            BudgetExceededError: A charge does not fit in what its budget has left, or its amount is unknown.
            ConfigError: This ledger cannot enforce budgets.
        """
        raise ConfigError(f"{type(self).__name__} cannot enforce budgets: use a SQLite or PostgreSQL ledger")

    def settle(self, reservation: str, row: LedgerRow | None) -> None:
        """Drop a reservation and record the attempt it covered (``row``; ``None``: nothing to record), in one
        transaction, so a budget never counts both or neither.

        Raises:
            ConfigError: This ledger cannot enforce budgets.
        """
        raise ConfigError(f"{type(self).__name__} cannot enforce budgets: use a SQLite or PostgreSQL ledger")

    def settle_part(self, reservation: str, row: LedgerRow, amount: Decimal) -> None:
        """Record ``row`` (one part of what a reservation covers: a batch's item) and lower the reservation by
        ``amount`` (never below 0), in one transaction; the rest stays reserved until it is settled or released.
        A row already recorded (its ``once_key`` is taken: another process read the item first) lowers nothing,
        so each part is settled once however many processes read it.

        Raises:
            ConfigError: This ledger cannot enforce budgets.
        """
        raise ConfigError(f"{type(self).__name__} cannot enforce budgets: use a SQLite or PostgreSQL ledger")

    def key_reservation(self, reservation: str, key: str) -> None:
        """Name a reservation by ``key`` (a job's once-only key, known only once the provider has the job): from
        then on :meth:`settle`, :meth:`settle_part`, :meth:`release` and :meth:`reservation` take ``key``, in any
        process that shares the ledger, so whichever one records the job settles it.

        Raises:
            ConfigError: This ledger cannot enforce budgets.
        """
        raise ConfigError(f"{type(self).__name__} cannot enforce budgets: use a SQLite or PostgreSQL ledger")

    def reservation(self, key: str, *, now: dt.datetime) -> Decimal | None:
        """The amount first reserved (the largest of its budgets') by the live reservation named ``key``
        (:meth:`key_reservation`); ``None`` when there is none: settled, released, lapsed, or never made. A ledger
        that cannot enforce budgets holds none."""
        return None

    def release(self, reservation: str) -> None:
        """Drop a reservation whose attempt was never sent or recorded."""
        self.settle(reservation, None)

    def budget_usage(self, charge: Charge, *, now: dt.datetime) -> tuple[Decimal, Decimal]:
        """``(spent, reserved)`` of ``charge``'s budget in its current period.

        Raises:
            ConfigError: This ledger cannot enforce budgets.
            LedgerError: The store failed (see :meth:`rows`).
        """
        raise ConfigError(f"{type(self).__name__} cannot enforce budgets: use a SQLite or PostgreSQL ledger")

    def defer(self, job: Callable[[], None]) -> bool:
        """Run ``job`` (which records rows) later, on the thread that writes this ledger's rows, before the rows
        queued after it are written; :meth:`flush` waits for it too. ``False``: this ledger writes at once (no
        writer thread, a closed one, a forked child's): run ``job`` yourself."""
        return False

    def flush(self) -> None:  # noqa: B027  (only buffered backends have anything to flush)
        """Write every row recorded so far (a no-op for backends that write at once)."""

    def close(self) -> None:  # noqa: B027  (optional for backends)
        """Release the backend's resources."""

    def _forked(self) -> None:  # noqa: B027  (only backends that hold a connection have anything to do)
        """In a forked child (see :func:`forks_with`): take a lock and a connection of the child's own."""
