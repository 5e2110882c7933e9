"""Reports over the ledger: spend grouped by a key (provider, model, day, a tag ...), and the calls view of
individual attempts, with CSV, JSON and pandas exports.

Everything here is pure and works from :meth:`Ledger.rows`, so every backend gets the same reports. Money stays
``Decimal`` end to end: exports write it as a decimal string (nothing rounded), and an attempt that could not be
priced is counted as *unpriced*, never as 0.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._money import Money, plain
from ._row import GROUP_KEYS, LedgerRow, day_of, utc

if TYPE_CHECKING:
    from ._plot import DailyCost

__all__ = [
    "TAG_PREFIX", "UNTAGGED", "Calls", "Group", "Report", "ReportRow", "build_report", "check_group_by", "group_key",
    "pandas", "report_of_groups", "utc",
]

TAG_PREFIX = "tag:"
UNTAGGED = "(none)"
"""The key of the group of attempts that do not carry the tag a report groups by."""

_PANDAS_HINT = "pip install 'computekit[pandas]' (or pip install pandas)"

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
"""A spreadsheet takes a cell that begins with one of these as a formula (OWASP's CSV injection): a text cell
(a tag, a model id, a request id) that does is written with a leading ``'``, so that it opens as text."""

_CSV_QUOTED = (",", '"', "\r", "\n")
"""A CSV cell holding one of these is quoted (RFC 4180). The csv module leaves a lone CR unquoted when lines end
in LF, and the file then reads back as two lines."""


def _csv_cell(value: object, *, text: bool) -> str:
    """One CSV cell: ``None`` empty, a text cell safe to open in a spreadsheet, quoted when it must be."""
    cell = "" if value is None else str(value)
    if text and cell.startswith(FORMULA_START):
        cell = "'" + cell
    if any(c in cell for c in _CSV_QUOTED):
        cell = '"' + cell.replace('"', '""') + '"'
    return cell


def _csv(header: Sequence[str], lines: Sequence[Sequence[object]], text: Sequence[bool]) -> str:
    """CSV text, one line per item of ``lines``; ``text[i]``: column ``i`` holds text (numbers are left as they
    are: a cost may be negative)."""
    out = [",".join(_csv_cell(h, text=True) for h in header)]
    out += [",".join(_csv_cell(v, text=t) for v, t in zip(line, text, strict=True)) for line in lines]
    return "\n".join(out) + "\n"


def check_group_by(by: str) -> str:
    """``by`` if it names a way to group.

    Raises:
        ValueError: ``by`` is not one of provider, model, target, verb, day, outcome or ``tag:NAME``.
    """
    if by in GROUP_KEYS or (isinstance(by, str) and by.startswith(TAG_PREFIX) and len(by) > len(TAG_PREFIX)):
        return by
    raise ValueError(
        f"group_by must be one of {', '.join(GROUP_KEYS)} or tag:NAME (e.g. 'tag:customer'), not {by!r}"
    )


def group_key(row: LedgerRow, by: str) -> str:
    """The group ``row`` falls in."""
    if by == "day":
        return day_of(row).isoformat()
    if by == "target":
        return f"{row.provider}:{row.model}"
    if by.startswith(TAG_PREFIX):
        value = row.tags.get(by[len(TAG_PREFIX):])
        return UNTAGGED if value is None else str(value)  # str(): a row written by an older computekit
    return str(getattr(row, by))


def pandas() -> Any:
    """The pandas module, imported on first use.

    Raises:
        ImportError: pandas is not installed, with the extra to install.
    """
    import importlib

    try:
        return importlib.import_module("pandas")  # typed as a module: pandas ships no stubs
    except ImportError as e:
        raise ImportError(f"to_dataframe() needs pandas, which is not installed: {_PANDAS_HINT}") from e


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
        """The report as CSV (header + one line per group + a total line); written to ``path`` when given. A text
        cell a spreadsheet would run as a formula gets a leading ``'`` (see :data:`FORMULA_START`).

        Raises:
            OSError: ``path`` cannot be written (a folder, no permission, its folder does not exist).
        """
        lines: list[list[object]] = [[rec[c] for c in self._COLUMNS] for rec in self.to_records()]
        lines.append(["TOTAL", sum(r.calls for r in self.rows), sum(r.errors for r in self.rows),
                      sum(r.input_tokens for r in self.rows), sum(r.output_tokens for r in self.rows),
                      plain(self.total), self.unpriced])
        text = _csv((self.group_by, *self._COLUMNS[1:]), lines, [True] + [False] * (len(self._COLUMNS) - 1))
        return _write(text, path)

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
        records = [
            {self.group_by: r.key, "calls": r.calls, "errors": r.errors, "input_tokens": r.input_tokens,
             "output_tokens": r.output_tokens, "cost": r.cost, "unpriced": r.unpriced}
            for r in self.rows
        ]
        return pandas().DataFrame.from_records(records, columns=[self.group_by, *self._COLUMNS[1:]])


Group = tuple[str, int, int, int, int, Decimal, int]
"""One group as a store sums it: key, calls, errors, input tokens, output tokens, priced cost, unpriced attempts."""


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
    check_group_by(group_by)
    zero = Decimal(0)
    return report_of_groups(
        ((group_key(r, group_by), 1, int(r.outcome == "error"), r.input_tokens, r.output_tokens,
          zero if r.cost is None else r.cost, int(r.cost is None)) for r in rows),
        group_by, since=since, until=until,
    )


def report_of_groups(
    groups: Iterable[Group],
    group_by: str,
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> Report:
    """A report from sums made elsewhere (a store's ``GROUP BY``, or :func:`build_report` one row at a time); parts
    with the same key are added up."""
    found: dict[str, ReportRow] = {}
    for key, calls, errors, input_tokens, output_tokens, cost, unpriced in groups:
        g = found.get(key)
        if g is None:
            g = found[key] = ReportRow(key, 0, 0, 0, 0, Decimal(0), 0)
        g.calls += calls
        g.errors += errors
        g.input_tokens += input_tokens
        g.output_tokens += output_tokens
        g.cost += cost  # unpriced attempts are counted apart, never as 0 (a known-free error is recorded as 0)
        g.unpriced += unpriced
    for g in found.values():
        g.cost = Money(g.cost)  # a sum is a plain Decimal again: 1E-7 unless made Money
    if group_by == "day":  # a day report reads in time order
        ordered = sorted(found.values(), key=lambda r: r.key)
    else:
        ordered = sorted(found.values(), key=lambda r: (-r.cost, r.key))
    total = sum((r.cost for r in ordered), Decimal(0))
    return Report(group_by=group_by, rows=ordered, total=total, unpriced=sum(r.unpriced for r in ordered),
                  since=since, until=until)


def _write(text: str, path: str | Path | None) -> str:
    if path is not None:
        Path(path).write_text(text, "utf-8")
    return text


_CALL_COLUMNS = (
    "id", "ts", "verb", "provider", "model", "outcome", "status", "error_type", "latency_ms", "input_tokens",
    "output_tokens", "cached_input_tokens", "cache_write_tokens", "reasoning_tokens", "gpu_seconds", "cost",
    "currency", "estimated", "price_source", "request_id", "tags",
)
_CALL_NUMBERS = frozenset({
    "id", "latency_ms", "input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens",
    "reasoning_tokens", "gpu_seconds", "cost", "status",
})
"""The calls view's columns that hold numbers (left as they are in CSV; every other one is text)."""


@dataclass(slots=True)
class Calls:
    """The calls view: every recorded attempt of a period, one row each, in time order.

    Attributes:
        rows: The attempts (:class:`LedgerRow`), oldest first.
        since: The start of the period (included), when one was given.
        until: The end of the period (excluded), when one was given.
    """

    rows: list[LedgerRow]
    since: dt.datetime | None = None
    until: dt.datetime | None = None

    COLUMNS = _CALL_COLUMNS

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def total(self) -> Decimal:
        """The exact sum of the priced attempts."""
        return Money(sum((r.cost for r in self.rows if r.cost is not None), Decimal(0)))

    @property
    def unpriced(self) -> int:
        """How many attempts could not be priced (left out of :attr:`total`)."""
        return sum(1 for r in self.rows if r.cost is None)

    def report(self, by: str = "provider") -> Report:
        """These attempts grouped by ``by`` (see :meth:`Ledger.report`).

        Raises:
            ValueError: ``by`` is not a way to group.
        """
        return build_report(self.rows, by, since=self.since, until=self.until)

    def to_records(self) -> list[dict[str, Any]]:
        """One dict per attempt: times as ISO strings, ``cost`` and ``gpu_seconds`` as decimal strings (``None``
        when unknown, never 0), ``tags`` as a dict."""
        out = []
        for r in self.rows:
            d = r.as_dict()
            out.append({c: d[c] for c in _CALL_COLUMNS})
        return out

    def to_csv(self, path: str | Path | None = None) -> str:
        """The attempts as CSV, one line each (an unknown cost is an empty cell; ``tags`` is a JSON object);
        written to ``path`` when given. A text cell a spreadsheet would run as a formula gets a leading ``'``.

        Raises:
            OSError: ``path`` cannot be written (a folder, no permission, its folder does not exist).
        """
        lines = []
        for rec in self.to_records():
            rec["tags"] = json.dumps(rec["tags"], ensure_ascii=False, sort_keys=True)
            rec["estimated"] = "true" if rec["estimated"] else "false"
            lines.append([rec[c] for c in _CALL_COLUMNS])
        return _write(_csv(_CALL_COLUMNS, lines, [c not in _CALL_NUMBERS for c in _CALL_COLUMNS]), path)

    def to_json(self, path: str | Path | None = None) -> str:
        """The attempts as JSON (``calls``, ``total``, ``unpriced``, ``currency`` and the period); written to
        ``path`` when given."""
        text = json.dumps(
            {"calls": self.to_records(), "total": plain(self.total), "unpriced": self.unpriced, "currency": "USD",
             "since": self.since.isoformat() if self.since else None,
             "until": self.until.isoformat() if self.until else None},
            indent=2, ensure_ascii=False,
        )
        return _write(text, path)

    def to_dataframe(self) -> Any:
        """The attempts as a ``pandas.DataFrame``: ``ts`` as UTC datetimes, ``cost`` and ``gpu_seconds`` as
        exact ``Decimal`` objects (``None`` when unknown), ``tags`` as dicts.

        Raises:
            ImportError: pandas is not installed (``pip install 'computekit[pandas]'``).
        """
        pd = pandas()
        records = []
        for r in self.rows:
            records.append({c: getattr(r, c) for c in _CALL_COLUMNS})
        df = pd.DataFrame.from_records(records, columns=list(_CALL_COLUMNS))
        df["ts"] = pd.to_datetime(df["ts"], utc=True)
        # pandas would turn a missing cost into NaN in a numeric column; object keeps Decimal and None apart.
        df["cost"] = pd.Series([r.cost for r in self.rows], dtype=object)
        df["gpu_seconds"] = pd.Series([r.gpu_seconds for r in self.rows], dtype=object)
        return df

    def daily_cost(self) -> DailyCost:
        """The exact numbers behind :meth:`plot`: cost per UTC day and provider, and unpriced attempts per day."""
        from ._plot import daily_cost

        return daily_cost(self.rows)

    def plot(self, path: str | Path | None = None, *, title: str | None = None) -> Any:
        """Cost per day, stacked by provider, as a matplotlib ``Figure``; saved to ``path`` when given (the
        format follows the suffix: ``.png``, ``.svg``, ``.pdf``).

        Raises:
            ImportError: matplotlib is not installed (``pip install 'computekit[plot]'``).
        """
        from ._plot import plot_daily_cost

        return plot_daily_cost(self.rows, path, title=title)

    def to_html(self, path: str | Path | None = None, *, by: str = "provider", title: str | None = None) -> str:
        """A self-contained HTML report: the cost-per-day chart (an embedded PNG), the spend grouped by ``by``
        and the daily totals; written to ``path`` when given.

        Raises:
            ImportError: matplotlib is not installed (``pip install 'computekit[plot]'``).
            ValueError: ``by`` is not a way to group.
        """
        from ._plot import html_report

        return html_report(self, path, by=by, title=title)

