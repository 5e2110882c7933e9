"""The ledger's row and report types, and the interface every backend implements."""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

# Reports live in _report (pure, over rows()); re-exported here, where they were first defined.
from ._report import GROUP_KEYS, Calls, GroupBy, Report, ReportRow, build_report, check_group_by, utc

__all__ = ["GROUP_KEYS", "Calls", "GroupBy", "Ledger", "LedgerRow", "Report", "ReportRow", "build_report"]


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
    id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ts"] = self.ts.isoformat()
        d["cost"] = None if self.cost is None else str(self.cost)
        d["gpu_seconds"] = None if self.gpu_seconds is None else str(self.gpu_seconds)
        return d


class Ledger(ABC):
    """Where every attempt is recorded."""

    @abstractmethod
    def record(self, row: LedgerRow) -> None:
        """Append one attempt (committed before returning)."""

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
            group_by: The same as ``by`` (its name in computekit 0.1).

        Raises:
            ValueError: ``by`` is not one of the above, or ``by`` and ``group_by`` disagree.
        """
        if group_by is not None:
            if by not in ("provider", group_by):
                raise ValueError(f"pass by= or group_by=, not both ({by!r} and {group_by!r})")
            by = group_by
        check_group_by(by)  # before reading the rows
        since, until = utc(since), utc(until)
        return build_report(self.rows(since=since, until=until), by, since=since, until=until)

    def calls(self, *, since: dt.datetime | None = None, until: dt.datetime | None = None) -> Calls:
        """The individual attempts of a period (the calls view), with the same exports as a report."""
        since, until = utc(since), utc(until)
        return Calls(self.rows(since=since, until=until), since=since, until=until)

    def close(self) -> None:  # noqa: B027  (optional for backends)
        """Release the backend's resources."""

