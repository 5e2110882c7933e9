"""The ledger's row and report types, and the interface every backend implements."""

from __future__ import annotations

import datetime as dt
import io
import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from .._exceptions import ConfigError
from .._money import Money, plain
from ._budgets import Charge

__all__ = ["GroupBy", "Ledger", "LedgerRow", "Report", "ReportRow"]

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._report import Calls  # the calls view and the group keys live in _report, with the other report code

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

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ts"] = self.ts.isoformat()
        d["cost"] = None if self.cost is None else plain(self.cost)
        d["gpu_seconds"] = None if self.gpu_seconds is None else plain(self.gpu_seconds)
        d["reserved"] = None if self.reserved is None else plain(self.reserved)
        return d


@dataclass(slots=True)
class ReportRow:
    """One group of a report."""

    key: str
    calls: int
    errors: int
    input_tokens: int
    output_tokens: int
    cost: Decimal
    unpriced: int
    """Attempts whose cost is unknown (unpriced models, timeouts that may have been billed, canceled streams):
    ``cost`` leaves them out, so it is a lower bound when > 0."""

    def __post_init__(self) -> None:
        self.cost = Money(self.cost)  # prints plainly: 0.00000008, never 8E-8


@dataclass(slots=True)
class Report:
    """Rows grouped by one key, and the exact total.

    Attributes:
        group_by: What the rows are grouped by (``provider``, ``day``, ``tag:customer`` ...).
        rows: One row per group, the most expensive first (by ``day``: oldest first).
        total: The exact sum of the priced attempts.
        unpriced: How many attempts could not be priced (left out of ``total``: it is then a lower bound).
        since: The start of the period (included), when one was given.
        until: The end of the period (excluded), when one was given.
    """

    group_by: str
    rows: list[ReportRow]
    total: Decimal
    unpriced: int
    since: dt.datetime | None = None
    until: dt.datetime | None = None

    _COLUMNS = ("key", "calls", "errors", "input_tokens", "output_tokens", "cost", "unpriced")

    def __post_init__(self) -> None:
        self.total = Money(self.total)  # prints plainly: 0.00000008, never 8E-8

    @property
    def calls(self) -> int:
        """How many attempts the report covers."""
        return sum(r.calls for r in self.rows)

    def to_records(self) -> list[dict[str, Any]]:
        """Rows as plain dicts (cost as a decimal string, so nothing is rounded)."""
        return [
            {"key": r.key, "calls": r.calls, "errors": r.errors, "input_tokens": r.input_tokens,
             "output_tokens": r.output_tokens, "cost": plain(r.cost), "unpriced": r.unpriced}
            for r in self.rows
        ]

    def to_csv(self, path: str | Path | None = None) -> str:
        """The report as CSV (header + one line per group + a total line); written to ``path`` when given."""
        import csv

        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow((self.group_by, *self._COLUMNS[1:]))
        for rec in self.to_records():
            w.writerow([rec[c] for c in self._COLUMNS])
        w.writerow(["TOTAL", sum(r.calls for r in self.rows), sum(r.errors for r in self.rows),
                    sum(r.input_tokens for r in self.rows), sum(r.output_tokens for r in self.rows),
                    plain(self.total), self.unpriced])
        text = buf.getvalue()
        if path is not None:
            Path(path).write_text(text, "utf-8")
        return text

    def to_json(self, path: str | Path | None = None) -> str:
        """The report as JSON (``group_by``, ``rows``, ``total``, ``unpriced``, ``currency`` and the period);
        written to ``path`` when given. Costs are decimal strings."""
        text = json.dumps(
            {"group_by": self.group_by, "rows": self.to_records(), "total": plain(self.total),
             "unpriced": self.unpriced, "currency": "USD",
             "since": self.since.isoformat() if self.since else None,
             "until": self.until.isoformat() if self.until else None},
            indent=2,
        )
        if path is not None:
            Path(path).write_text(text, "utf-8")
        return text

    @classmethod
    def from_json(cls, text: str) -> Report:
        """A report back from :meth:`to_json`'s text, with its exact decimals."""
        data = json.loads(text)
        return cls(
            group_by=data["group_by"],
            rows=[ReportRow(r["key"], r["calls"], r["errors"], r["input_tokens"], r["output_tokens"],
                            Decimal(r["cost"]), r["unpriced"]) for r in data["rows"]],
            total=Decimal(data["total"]),
            unpriced=data["unpriced"],
            since=dt.datetime.fromisoformat(data["since"]) if data.get("since") else None,
            until=dt.datetime.fromisoformat(data["until"]) if data.get("until") else None,
        )

    def to_dataframe(self) -> Any:
        """The rows as a ``pandas.DataFrame`` (one column per field, the first named after ``group_by``).
        ``cost`` holds the exact ``Decimal`` objects; use ``df["cost"].astype(float)`` to plot.

        Raises:
            ImportError: pandas is not installed (``pip install 'computekit[pandas]'``).
        """
        from ._report import pandas

        records = [
            {self.group_by: r.key, "calls": r.calls, "errors": r.errors, "input_tokens": r.input_tokens,
             "output_tokens": r.output_tokens, "cost": r.cost, "unpriced": r.unpriced}
            for r in self.rows
        ]
        return pandas().DataFrame.from_records(records, columns=[self.group_by, *self._COLUMNS[1:]])


class Ledger(ABC):
    """Where every attempt is recorded, and where budgets are enforced.

    A backend implements :meth:`record` and :meth:`rows`; one that can enforce budgets also implements
    :meth:`reserve`, :meth:`settle` and :meth:`budget_usage`, each atomic across threads and processes that share
    the ledger.
    """

    blocking_io: bool = False
    """Whether a write waits on the network (a remote server): async clients then run reservations and their
    settlement in a worker thread, off the event loop. An embedded ledger (SQLite: sub-millisecond) says no."""

    @abstractmethod
    def record(self, row: LedgerRow) -> None:
        """Append one attempt (committed before returning)."""

    def record_many(self, rows: Sequence[LedgerRow]) -> None:
        """Append several attempts; a backend commits them in one transaction (all or none)."""
        for row in rows:
            self.record(row)

    @abstractmethod
    def rows(self, *, since: dt.datetime | None = None, until: dt.datetime | None = None) -> list[LedgerRow]:
        """The recorded attempts in time order, optionally within ``[since, until)``."""

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
        """
        from ._report import check_group_by, utc

        if group_by is not None:
            if by not in ("provider", group_by):
                raise ValueError(f"pass by= or group_by=, not both ({by!r} and {group_by!r})")
            by = group_by
        check_group_by(by)  # before reading the rows
        since, until = utc(since), utc(until)
        return build_report(self.rows(since=since, until=until), by, since=since, until=until)

    def calls(self, *, since: dt.datetime | None = None, until: dt.datetime | None = None) -> Calls:
        """The individual attempts of a period (the calls view), with the same exports as a report."""
        from ._report import Calls, utc

        since, until = utc(since), utc(until)
        return Calls(self.rows(since=since, until=until), since=since, until=until)

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

    def release(self, reservation: str) -> None:
        """Drop a reservation whose attempt was never sent or recorded."""
        self.settle(reservation, None)

    def budget_usage(self, charge: Charge, *, now: dt.datetime) -> tuple[Decimal, Decimal]:
        """``(spent, reserved)`` of ``charge``'s budget in its current period.

        Raises:
            ConfigError: This ledger cannot enforce budgets.
        """
        raise ConfigError(f"{type(self).__name__} cannot enforce budgets: use a SQLite or PostgreSQL ledger")

    def flush(self) -> None:  # noqa: B027  (only buffered backends have anything to flush)
        """Write every row recorded so far (a no-op for backends that write at once)."""

    def close(self) -> None:  # noqa: B027  (optional for backends)
        """Release the backend's resources."""


def build_report(
    rows: Sequence[LedgerRow],
    group_by: str,
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> Report:
    """Group rows (pure; shared by every backend).

    Raises:
        ValueError: ``group_by`` is not a way to group (see ``Ledger.report``).
    """
    from ._report import check_group_by, group_key

    check_group_by(group_by)
    groups: dict[str, ReportRow] = {}
    for row in rows:
        k = group_key(row, group_by)
        g = groups.get(k)
        if g is None:
            g = groups[k] = ReportRow(k, 0, 0, 0, 0, Decimal(0), 0)
        g.calls += 1
        if row.outcome == "error":
            g.errors += 1
        g.input_tokens += row.input_tokens
        g.output_tokens += row.output_tokens
        if row.cost is not None:
            g.cost += row.cost
        else:  # could not be priced (a known-free error is recorded as 0, not None)
            g.unpriced += 1
    if group_by == "day":  # a day report reads in time order
        ordered = sorted(groups.values(), key=lambda r: r.key)
    else:
        ordered = sorted(groups.values(), key=lambda r: (-r.cost, r.key))
    total = sum((r.cost for r in ordered), Decimal(0))
    return Report(group_by=group_by, rows=ordered, total=total, unpriced=sum(r.unpriced for r in ordered),
                  since=since, until=until)
