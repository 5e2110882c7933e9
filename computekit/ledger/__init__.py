"""The cost ledger: every attempt recorded, and reports over it."""

from __future__ import annotations

from pathlib import Path

from ._base import GroupBy, Ledger, LedgerRow, Report, ReportRow
from ._null import NullLedger
from ._sqlite import SQLiteLedger, path_from_url

__all__ = [
    "GroupBy",
    "Ledger",
    "LedgerRow",
    "NullLedger",
    "Report",
    "ReportRow",
    "SQLiteLedger",
    "default_ledger_path",
    "open_ledger",
]


def default_ledger_path() -> Path:
    """The per-user default: ``<user data dir>/computekit/ledger.db``."""
    import platformdirs

    return Path(platformdirs.user_data_dir("computekit", appauthor=False)) / "ledger.db"


def open_ledger(url: str | None) -> Ledger:
    """The ledger for a ``ledger.url`` setting: ``None`` -> the per-user default, ``"none"`` -> off."""
    if url == "none":
        return NullLedger()
    if url is None:
        return SQLiteLedger(default_ledger_path())
    return SQLiteLedger(path_from_url(url))
