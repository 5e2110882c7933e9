"""Reports over the ledger: spend grouped by a key (provider, model, day, a tag ...), and the calls view of
individual attempts, with CSV, JSON and pandas exports.

Everything here is pure and works from :meth:`Ledger.iter_rows` (or sums a store made), so every backend gets
the same reports. Money stays
``Decimal`` end to end: exports write it as a decimal string (nothing rounded), and an attempt that could not be
priced is counted as *unpriced*, never as 0.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import textwrap
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from json.encoder import encode_basestring
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from .._money import Money, plain
from ._row import GROUP_KEYS, LedgerRow, day_of, utc

if TYPE_CHECKING:
    from ._base import Ledger
    from ._plot import DailyCost

__all__ = [
    "TAG_PREFIX", "UNTAGGED", "Calls", "DayCell", "Group", "Report", "ReportRow", "build_report", "check_group_by",
    "group_key", "pandas", "report_of_groups", "utc",
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


_CSV_QUOTING = re.compile("[" + re.escape("".join(_CSV_QUOTED)) + "]")
"""Finds a character of :data:`_CSV_QUOTED` (one search a cell, in C: an export runs it on every cell)."""


def _csv_cell(value: object, *, text: bool) -> str:
    """One CSV cell: ``None`` empty, a text cell safe to open in a spreadsheet, quoted when it must be."""
    cell = "" if value is None else str(value)
    if text and cell.startswith(FORMULA_START):
        cell = "'" + cell
    if _CSV_QUOTING.search(cell):
        cell = '"' + cell.replace('"', '""') + '"'
    return cell


def _csv_line(line: Sequence[object], text: Sequence[bool]) -> str:
    """One CSV line (no line end); ``text[i]``: column ``i`` holds text (numbers are left as they are: a cost may
    be negative)."""
    return ",".join(_csv_cell(v, text=t) for v, t in zip(line, text, strict=True))


def _csv(header: Sequence[str], lines: Sequence[Sequence[object]], text: Sequence[bool]) -> str:
    """CSV text, one line per item of ``lines`` (see :func:`_csv_line`)."""
    out = [_csv_line(header, [True] * len(header))]
    out += [_csv_line(line, text) for line in lines]
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

DayCell = tuple[dt.date, str, Decimal, int, int]
"""One UTC day and provider as a store sums it (the cost chart): day, provider, priced cost, attempts, unpriced
attempts."""


def build_report(
    rows: Iterable[LedgerRow],
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


class Calls:
    """The calls view: every recorded attempt of a period, one row each, in time order.

    ``Ledger.calls()`` makes a view that reads its ledger when it is used, each time as the ledger is then: its
    CSV and JSON writers stream the rows (:meth:`write_csv`, :meth:`write_json`), and its count, totals, report
    and chart are summed by the store, so none of them holds the period's rows in memory. Only :attr:`rows` (and
    :meth:`to_dataframe`) list them all. Use the view before its ledger is closed. ``Calls(rows)`` is a view of
    rows already in memory.

    Attributes:
        since: The start of the period (included), when one was given.
        until: The end of the period (excluded), when one was given.
    """

    __slots__ = ("_ledger", "_rows", "since", "until")

    COLUMNS = _CALL_COLUMNS

    def __init__(self, rows: Iterable[LedgerRow] = (), since: dt.datetime | None = None,
                 until: dt.datetime | None = None) -> None:
        self._rows: list[LedgerRow] | None = list(rows)
        self._ledger: Ledger | None = None
        self.since = since
        self.until = until

    @classmethod
    def of_ledger(cls, ledger: Ledger, *, since: dt.datetime | None = None,
                  until: dt.datetime | None = None) -> Calls:
        """The view of ``ledger``'s attempts in ``[since, until)`` (already in UTC), read when it is used."""
        view = cls(since=since, until=until)
        view._rows, view._ledger = None, ledger
        return view

    @property
    def rows(self) -> list[LedgerRow]:
        """The attempts (:class:`LedgerRow`), oldest first, in one list: read once, on first use (all in memory;
        iterate the view itself to read them lazily).

        Raises:
            LedgerError: The store failed.
        """
        if self._rows is None:
            assert self._ledger is not None
            self._rows = self._ledger.rows(since=self.since, until=self.until)
        return self._rows

    def __iter__(self) -> Iterator[LedgerRow]:
        """The attempts, oldest first, read lazily from the ledger (bounded memory; see ``Ledger.iter_rows``)."""
        if self._rows is not None:
            return iter(self._rows)
        assert self._ledger is not None
        return self._ledger.iter_rows(since=self.since, until=self.until)

    def __len__(self) -> int:
        return len(self._rows) if self._rows is not None else self._summary().calls

    def __repr__(self) -> str:
        held = f"{len(self._rows)} rows" if self._rows is not None else repr(self._ledger)
        return f"Calls({held}, since={self.since!r}, until={self.until!r})"

    def _summary(self) -> Report:
        """Count, total and unpriced of the period, summed by the store (one row per outcome)."""
        return self.report("outcome")

    @property
    def total(self) -> Decimal:
        """The exact sum of the priced attempts."""
        if self._rows is not None:
            return Money(sum((r.cost for r in self._rows if r.cost is not None), Decimal(0)))
        return self._summary().total

    @property
    def unpriced(self) -> int:
        """How many attempts could not be priced (left out of :attr:`total`)."""
        if self._rows is not None:
            return sum(1 for r in self._rows if r.cost is None)
        return self._summary().unpriced

    def report(self, by: str = "provider") -> Report:
        """These attempts grouped by ``by`` (see :meth:`Ledger.report`; summed by the store when it can).

        Raises:
            ValueError: ``by`` is not a way to group.
        """
        if self._rows is None:
            assert self._ledger is not None
            return self._ledger.report(by, since=self.since, until=self.until)
        return build_report(self._rows, by, since=self.since, until=self.until)

    def to_records(self) -> list[dict[str, Any]]:
        """One dict per attempt: times as ISO strings, ``cost`` and ``gpu_seconds`` as decimal strings (``None``
        when unknown, never 0), ``tags`` as a dict."""
        return [_call_record(r) for r in self]

    def write_csv(self, out: str | Path | TextIO) -> int:
        """Write the attempts as CSV (as :meth:`to_csv`) to a path or an open text file, one line at a time as
        they are read: memory stays bounded however many there are.

        Returns:
            How many attempts were written.

        Raises:
            OSError: ``out`` cannot be written.
            LedgerError: The store failed while reading.
        """
        with _opened(out) as f:
            f.write(_csv_line(_CALL_COLUMNS, _ALL_TEXT) + "\n")
            n = 0
            for row in self:
                rec = _call_record(row)
                rec["tags"] = json.dumps(rec["tags"], ensure_ascii=False, sort_keys=True)
                rec["estimated"] = "true" if rec["estimated"] else "false"
                f.write(_csv_line([rec[c] for c in _CALL_COLUMNS], _CALL_TEXT) + "\n")
                n += 1
        return n

    def write_json(self, out: str | Path | TextIO) -> int:
        """Write the attempts as JSON (as :meth:`to_json`, the same text) to a path or an open text file, one
        attempt at a time as they are read; ``total`` and ``unpriced`` are summed on the way, so they add up the
        attempts written.

        Returns:
            How many attempts were written.

        Raises:
            OSError: ``out`` cannot be written.
            LedgerError: The store failed while reading.
        """
        total, unpriced, n = Decimal(0), 0, 0
        with _opened(out) as f:
            f.write('{\n  "calls": [')
            for row in self:
                f.write(",\n" if n else "\n")
                f.write(_json_record(_call_record(row)))
                n += 1
                if row.cost is None:
                    unpriced += 1  # never counted as 0
                else:
                    total += row.cost
            f.write("\n  ],\n" if n else "],\n")
            tail = json.dumps(
                {"total": plain(Money(total)), "unpriced": unpriced, "currency": "USD",
                 "since": self.since.isoformat() if self.since else None,
                 "until": self.until.isoformat() if self.until else None},
                indent=2, ensure_ascii=False,
            )
            f.write(tail[2:])  # the same object, opened above
        return n

    def to_csv(self, path: str | Path | None = None) -> str:
        """The attempts as CSV, one line each (an unknown cost is an empty cell; ``tags`` is a JSON object);
        written to ``path`` when given. A text cell a spreadsheet would run as a formula gets a leading ``'``.
        The whole text is built in memory: on a large ledger, :meth:`write_csv` streams it.

        Raises:
            OSError: ``path`` cannot be written (a folder, no permission, its folder does not exist).
        """
        buf = io.StringIO()
        self.write_csv(buf)
        return _write(buf.getvalue(), path)

    def to_json(self, path: str | Path | None = None) -> str:
        """The attempts as JSON (``calls``, ``total``, ``unpriced``, ``currency`` and the period); written to
        ``path`` when given. The whole text is built in memory: on a large ledger, :meth:`write_json` streams
        it."""
        buf = io.StringIO()
        self.write_json(buf)
        return _write(buf.getvalue(), path)

    def to_dataframe(self) -> Any:
        """The attempts as a ``pandas.DataFrame``: ``ts`` as UTC datetimes, ``cost`` and ``gpu_seconds`` as
        exact ``Decimal`` objects (``None`` when unknown), ``tags`` as dicts. A DataFrame holds every row in
        memory.

        Raises:
            ImportError: pandas is not installed (``pip install 'computekit[pandas]'``).
        """
        pd = pandas()
        rows = self.rows
        records = []
        for r in rows:
            records.append({c: getattr(r, c) for c in _CALL_COLUMNS})
        df = pd.DataFrame.from_records(records, columns=list(_CALL_COLUMNS))
        df["ts"] = pd.to_datetime(df["ts"], utc=True)
        # pandas would turn a missing cost into NaN in a numeric column; object keeps Decimal and None apart.
        df["cost"] = pd.Series([r.cost for r in rows], dtype=object)
        df["gpu_seconds"] = pd.Series([r.gpu_seconds for r in rows], dtype=object)
        return df

    def daily_cost(self) -> DailyCost:
        """The exact numbers behind :meth:`plot`: cost per UTC day and provider, and unpriced attempts per day
        (summed by the store when it can: no row is read into Python)."""
        from ._plot import daily_cost, daily_cost_of_cells

        if self._rows is None:
            assert self._ledger is not None
            cells = self._ledger._daily(self.since, self.until)
            if cells is not None:
                return daily_cost_of_cells(cells)
        return daily_cost(self)

    def plot(self, path: str | Path | None = None, *, title: str | None = None) -> Any:
        """Cost per day, stacked by provider, as a matplotlib ``Figure``; saved to ``path`` when given (the
        format follows the suffix: ``.png``, ``.svg``, ``.pdf``).

        Raises:
            ImportError: matplotlib is not installed (``pip install 'computekit[plot]'``).
        """
        from ._plot import plot_of_data

        return plot_of_data(self.daily_cost(), path, title=title)

    def to_html(self, path: str | Path | None = None, *, by: str = "provider", title: str | None = None) -> str:
        """A self-contained HTML report: the cost-per-day chart (an embedded PNG), the spend grouped by ``by``
        and the daily totals; written to ``path`` when given.

        Raises:
            ImportError: matplotlib is not installed (``pip install 'computekit[plot]'``).
            ValueError: ``by`` is not a way to group.
        """
        from ._plot import html_report

        return html_report(self, path, by=by, title=title)


def _call_record(r: LedgerRow) -> dict[str, Any]:
    """The calls view's columns of a row, as :meth:`LedgerRow.as_dict` writes them (built directly: ``asdict``
    copies every field deeply, and this runs once per row of an export)."""
    return {
        "id": r.id, "ts": r.ts.isoformat(), "verb": r.verb, "provider": r.provider, "model": r.model,
        "outcome": r.outcome, "status": r.status, "error_type": r.error_type, "latency_ms": r.latency_ms,
        "input_tokens": r.input_tokens, "output_tokens": r.output_tokens,
        "cached_input_tokens": r.cached_input_tokens, "cache_write_tokens": r.cache_write_tokens,
        "reasoning_tokens": r.reasoning_tokens,
        "gpu_seconds": None if r.gpu_seconds is None else plain(r.gpu_seconds),
        "cost": None if r.cost is None else plain(r.cost), "currency": r.currency, "estimated": r.estimated,
        "price_source": r.price_source, "request_id": r.request_id, "tags": dict(r.tags),
    }


def _json_value(v: object) -> str:
    """A scalar as ``json.dumps(v, ensure_ascii=False)`` writes it, without making an encoder for each."""
    if isinstance(v, str):
        return encode_basestring(v)
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return int.__repr__(v)
    return json.dumps(v, ensure_ascii=False)  # a float (NaN, Infinity), or a value of an older row


def _json_record(rec: dict[str, Any]) -> str:
    """``rec`` as ``json.dumps(..., indent=2, ensure_ascii=False)`` writes it inside the calls list (indented by
    four), without the pure-Python indenting encoder that ``indent`` takes (three times slower a row)."""
    tags = rec["tags"]
    if not all(isinstance(v, (str, int, float, bool, type(None))) for v in tags.values()):
        # A tag of an older row that is neither text nor a number: json.dumps lays out what it holds.
        return textwrap.indent(json.dumps(rec, indent=2, ensure_ascii=False), "    ")
    lines = []
    for key, value in rec.items():
        if key == "tags" and value:
            inner = ",\n".join(f"        {_json_value(k)}: {_json_value(v)}" for k, v in value.items())
            lines.append(f'      "tags": {{\n{inner}\n      }}')
        else:
            lines.append(f"      {_json_value(key)}: {_json_value(value)}")
    return "    {\n" + ",\n".join(lines) + "\n    }"


_CALL_TEXT = [c not in _CALL_NUMBERS for c in _CALL_COLUMNS]
_ALL_TEXT = [True] * len(_CALL_COLUMNS)


@contextmanager
def _opened(out: str | Path | TextIO) -> Iterator[TextIO]:
    """``out`` to write to: a path opened (and closed after), or an open text file as it is."""
    if isinstance(out, (str, Path)):
        with Path(out).open("w", encoding="utf-8") as f:  # as to_csv(path) writes it (Path.write_text)
            yield f
    else:
        yield out
