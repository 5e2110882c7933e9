"""The cost ledger: every attempt recorded, and reports over it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._base import GroupBy, Ledger, LedgerRow, Report, ReportRow
from ._null import NullLedger
from ._report import Calls

if TYPE_CHECKING:
    from ._sqlite import SQLiteLedger

__all__ = [
    "Calls",
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
    from ._sqlite import SQLiteLedger, path_from_url  # sqlite3 loads with the first ledger, not at import

    if url == "none":
        return NullLedger()
    if url is None:
        return SQLiteLedger(default_ledger_path())
    return SQLiteLedger(path_from_url(url))


def __getattr__(name: str) -> Any:
    if name == "SQLiteLedger":
        from ._sqlite import SQLiteLedger

        return SQLiteLedger
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
