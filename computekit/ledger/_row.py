"""The ledger's row: one recorded attempt, and the time helpers every view of the rows shares.

A leaf of the ledger package: the backends (:mod:`._base` and below), the reports (:mod:`._report`) and the chart
(:mod:`._plot`) all read rows, and this module imports none of them.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any, Literal

from .._exceptions import InvalidRequestError
from .._money import money, plain

__all__ = ["GROUP_KEYS", "GroupBy", "LedgerRow", "day_of", "logged", "period", "utc", "when_utc"]

GroupBy = Literal["provider", "model", "target", "verb", "day", "outcome"]
GROUP_KEYS: tuple[str, ...] = ("provider", "model", "target", "verb", "day", "outcome")


@dataclass(slots=True)
class LedgerRow:
    """One attempt, as recorded. ``cost`` is ``None`` when it could not be priced."""

    ts: dt.datetime
    verb: str
    provider: str
    model: str
    outcome: str
    latency_ms: float
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    gpu_seconds: Decimal | None = None
    cost: Decimal | None = None
    currency: str = "USD"
    estimated: bool = False
    price_source: str | None = None
    request_id: str | None = None
    error_type: str | None = None
    status: int | None = None
    tags: dict[str, str] = field(default_factory=dict)
    once_key: str | None = None
    """Set on a row that must be written at most once (a finished job's cost): a second row with the same key is
    dropped by the ledger, even from another process."""
    reserved: Decimal | None = None
    """The worst case this attempt reserved under a budget (``None``: no budget covered it). When ``cost`` is
    unknown, budgets count this amount: the attempt may have been billed up to it."""
    id: int | None = None

    def __post_init__(self) -> None:
        # Amounts print as people read them (0.00000010, never 1.0E-7), whichever backend or caller made the row.
        self.cost, self.reserved = money(self.cost), money(self.reserved)
        # Stored in UTC (a naive time is UTC, as for since/until): SQLite compares times as ISO text, so a row
        # kept at another offset would fall on the wrong side of a period's bounds.
        if isinstance(self.ts, dt.datetime):
            self.ts = when_utc(self.ts)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ts"] = self.ts.isoformat()
        d["cost"] = None if self.cost is None else plain(self.cost)
        d["gpu_seconds"] = None if self.gpu_seconds is None else plain(self.gpu_seconds)
        d["reserved"] = None if self.reserved is None else plain(self.reserved)
        return d


def utc(when: dt.datetime | None, name: str = "since") -> dt.datetime | None:
    """``when`` in UTC (a naive datetime is taken as UTC), so that it compares right with recorded times.

    Raises:
        InvalidRequestError: ``when`` is not a datetime (a date, a string ...); ``name`` is the argument's.
    """
    if when is None:
        return None
    if not isinstance(when, dt.datetime):
        hint = (f"datetime({when.year}, {when.month}, {when.day}, tzinfo=UTC)" if isinstance(when, dt.date)
                else "datetime(2026, 1, 1, tzinfo=UTC)")
        raise InvalidRequestError(f"{name} must be a datetime, e.g. {name}={hint}, not {type(when).__name__}")
    return when_utc(when)


def when_utc(when: dt.datetime) -> dt.datetime:
    """``when`` in UTC, a naive datetime taken as UTC."""
    return when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)


def period(since: dt.datetime | None, until: dt.datetime | None) -> tuple[dt.datetime | None, dt.datetime | None]:
    """``[since, until)`` in UTC (see :func:`utc`).

    Raises:
        InvalidRequestError: One is not a datetime, or ``since`` is after ``until`` (no time is in such a period:
            the two are likely swapped).
    """
    since, until = utc(since), utc(until, "until")
    if since is not None and until is not None and since > until:
        raise InvalidRequestError(f"since ({since.isoformat()}) is after until ({until.isoformat()}): the period "
                                  "is empty; swap them (since is the start, included; until the end, excluded)")
    return since, until


def day_of(row: LedgerRow) -> dt.date:
    """The UTC day of an attempt."""
    ts = utc(row.ts)
    assert ts is not None
    return ts.date()


def logged(row: LedgerRow) -> str:
    """A row as a log line: every field, so that a row no store took can be re-entered by hand."""
    return json.dumps(row.as_dict(), default=str, sort_keys=True)
