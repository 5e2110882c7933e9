"""The ledger that records nothing (``ledger = "none"``)."""

from __future__ import annotations

import datetime as dt

from ._base import Ledger, LedgerRow

__all__ = ["NullLedger"]


class NullLedger(Ledger):
    """Records nothing; reports are empty."""

    def record(self, row: LedgerRow) -> None:
        return None

    def rows(self, *, since: dt.datetime | None = None, until: dt.datetime | None = None) -> list[LedgerRow]:
        return []

    def __repr__(self) -> str:
        return "NullLedger()"
