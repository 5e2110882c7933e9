"""The cost ledger: every attempt recorded, and reports over it.

``computekit.ledger()`` (``ck.ledger()``) is the ledger of the module-level client, the one behind
``ck.complete()`` and ``ck.instrument()``: ``ck.ledger().report(by="tag:customer")``. This package holds the
ledger's types: ``Ledger``, ``SQLiteLedger``, ``PostgresLedger``, ``NullLedger``, ``LedgerRow``, ``Report``,
``ReportRow``, ``Calls``, and ``open_ledger()``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from .._constants import LEDGER_FLUSH_INTERVAL_S
from ._base import Ledger
from ._budgets import Charge
from ._null import NullLedger
from ._report import Calls, Report, ReportRow
from ._row import GroupBy, LedgerRow

if TYPE_CHECKING:
    from ._postgres import PostgresLedger
    from ._sqlite import SQLiteLedger

__all__ = [
    "Calls",
    "Charge",
    "GroupBy",
    "Ledger",
    "LedgerRow",
    "NullLedger",
    "PostgresLedger",
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


def open_ledger(url: str | None, *, buffered: bool = False, flush_interval: float = LEDGER_FLUSH_INTERVAL_S,
                flush_on_sigterm: bool = True) -> Ledger:
    """The ledger for a ``ledger.url`` setting: ``None`` -> the per-user default, ``"none"`` -> off,
    ``postgresql://...`` -> PostgreSQL. ``buffered``: rows are committed in batches by a writer thread, off the
    call path (not for a ledger that enforces budgets), within ``flush_interval`` seconds, and written out on
    SIGTERM unless ``flush_on_sigterm`` is false (see :class:`~computekit.ledger.SQLiteLedger`)."""
    if url == "none":
        return NullLedger()
    if url is not None and url.startswith(("postgresql://", "postgres://")):
        from ._postgres import PostgresLedger  # psycopg loads with the first PostgreSQL ledger

        return PostgresLedger(url, buffered=buffered, flush_interval=flush_interval,
                              flush_on_sigterm=flush_on_sigterm)
    from ._sqlite import SQLiteLedger, path_from_url  # sqlite3 loads with the first ledger, not at import

    return SQLiteLedger(default_ledger_path() if url is None else path_from_url(url), buffered=buffered,
                        flush_interval=flush_interval, flush_on_sigterm=flush_on_sigterm)


def __getattr__(name: str) -> Any:
    if name == "SQLiteLedger":
        from ._sqlite import SQLiteLedger

        return SQLiteLedger
    if name == "PostgresLedger":
        from ._postgres import PostgresLedger

        return PostgresLedger
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _Package(ModuleType):
    """This package, callable: ``ck.ledger()`` is the ledger of the module-level client (see
    :func:`computekit._defaults.ledger`), ``computekit.ledger.SQLiteLedger`` ... its types, as before."""

    def __call__(self) -> Ledger:
        from .._types import DEFAULT_CLIENTS  # filled by the module-level clients' module, above this package

        if "sync" not in DEFAULT_CLIENTS:
            # Not loaded yet (only a Client was made): the package's public door loads the module-level clients.
            sys.modules[__name__.rpartition(".")[0]].complete  # noqa: B018  (loading it is the point)
        ledger: Ledger = DEFAULT_CLIENTS["sync"]().ledger
        return ledger


sys.modules[__name__].__class__ = _Package
