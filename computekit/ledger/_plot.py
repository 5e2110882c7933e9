"""The cost chart (cost per day, stacked by provider) and the self-contained HTML report around it.

matplotlib is an optional extra (``pip install 'computekit[plot]'``), imported on first use. The chart is drawn
on a bare :class:`matplotlib.figure.Figure` (no pyplot), so it needs no display and touches no global state.
The data behind it, :func:`daily_cost`, is pure and exact (``Decimal``); only the bar heights become floats.
Attempts that could not be priced are never drawn as 0: each day that has some is labelled ``+N unpriced``.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import math
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._row import day_of

if TYPE_CHECKING:
    from ._report import Calls, DayCell, Report
    from ._row import LedgerRow

__all__ = ["DailyCost", "daily_cost", "daily_cost_of_cells", "html_report", "plot_daily_cost", "plot_of_data", "usd"]

_PLOT_HINT = "pip install 'computekit[plot]' (or pip install matplotlib)"
_DPI = 150
_MAX_TICKS = 16
"""At most this many day labels under the bars; longer periods label every n-th day."""


def usd(d: Decimal) -> str:
    """An exact decimal in dollars, without trailing zeros beyond the cents: ``$0.0000021``, ``$1.50``."""
    s = format(d, "f")
    if "." in s:
        whole, frac = s.split(".")
        s = f"{whole}.{frac.rstrip('0').ljust(2, '0')}"
    else:
        s += ".00"
    return "$" + s


@dataclass(frozen=True, slots=True)
class DailyCost:
    """Cost per UTC day and provider: the data behind the chart.

    Attributes:
        days: Every day from the first attempt's to the last one's (days without calls included, at 0).
        providers: The providers with a priced attempt, the biggest spender first (the bottom of each stack).
        cost: Provider -> its exact cost on each day of ``days``.
        unpriced: Attempts on each day that could not be priced (left out of ``cost``).
        unpriced_by_provider: Provider -> its attempts that could not be priced, over the whole period.
    """

    days: list[dt.date]
    providers: list[str]
    cost: dict[str, list[Decimal]]
    unpriced: list[int]
    unpriced_by_provider: dict[str, int]

    @property
    def totals(self) -> list[Decimal]:
        """The exact cost of each day, all providers."""
        return [sum((self.cost[p][i] for p in self.providers), Decimal(0)) for i in range(len(self.days))]

    @property
    def total(self) -> Decimal:
        """The exact cost of the whole period."""
        return sum(self.totals, Decimal(0))


def daily_cost(rows: Iterable[LedgerRow]) -> DailyCost:
    """Group attempts by UTC day and provider (pure; one row at a time, so ``rows`` may be read lazily)."""
    return daily_cost_of_cells(
        (day_of(row), row.provider, Decimal(0) if row.cost is None else row.cost, 1, int(row.cost is None))
        for row in rows
    )


def daily_cost_of_cells(cells: Iterable[DayCell]) -> DailyCost:
    """The chart's data from sums per day and provider (a store's ``GROUP BY``, or :func:`daily_cost` one row at a
    time); parts with the same day and provider are added up. Unpriced attempts are counted apart, never as 0."""
    by_day: dict[dt.date, dict[str, Decimal]] = {}
    unpriced: dict[dt.date, int] = {}
    unpriced_by_provider: dict[str, int] = {}
    spent: dict[str, Decimal] = {}
    priced: set[str] = set()
    for day, provider, cost, calls, n_unpriced in cells:
        cell = by_day.setdefault(day, {})
        if n_unpriced:
            unpriced[day] = unpriced.get(day, 0) + n_unpriced
            unpriced_by_provider[provider] = unpriced_by_provider.get(provider, 0) + n_unpriced
        if calls > n_unpriced:  # a priced attempt (one that cost exactly 0 included: a known-free error)
            cell[provider] = cell.get(provider, Decimal(0)) + cost
            spent[provider] = spent.get(provider, Decimal(0)) + cost
            priced.add(provider)
    if not by_day:
        return DailyCost([], [], {}, [], {})
    first, last = min(by_day), max(by_day)
    days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    providers = sorted(priced, key=lambda p: (-spent[p], p))
    cost_of = {p: [by_day.get(d, {}).get(p, Decimal(0)) for d in days] for p in providers}
    return DailyCost(days, providers, cost_of, [unpriced.get(d, 0) for d in days], unpriced_by_provider)


def _matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError as e:
        raise ImportError(f"plots need matplotlib, which is not installed: {_PLOT_HINT}") from e


def _decimals(values: Iterable[float]) -> int:
    """Decimals enough to write every y tick exactly (at least cents, at most 8: costs per call are often
    fractions of a cent, and ticks at 0.025 must not read 0.03)."""
    most = 2
    for v in values:
        frac = f"{abs(v):.8f}".split(".")[1].rstrip("0")
        most = max(most, len(frac))
    return most


def figure(data: DailyCost, *, title: str | None = None) -> Any:
    """The chart of ``data``: one bar per day, one stacked segment per provider, ``+N unpriced`` above a day
    that has attempts it could not price.

    Raises:
        ImportError: matplotlib is not installed.
    """
    _matplotlib()
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    n = len(data.days)
    fig = Figure(figsize=(min(max(6.4, 3.2 + 0.45 * n), 14.0), 4.2), layout="constrained")
    ax = fig.add_subplot()
    heading = title or "Cost per day, stacked by provider (USD, UTC days)"
    unpriced = sum(data.unpriced)
    sub = f"total {usd(data.total)}"
    if unpriced:
        who = ", ".join(f"{p} {n}" for p, n in sorted(data.unpriced_by_provider.items(), key=lambda kv: -kv[1]))
        sub += f" + {unpriced} unpriced call{'s' if unpriced != 1 else ''}, not included ({who})"
    ax.set_title(f"{heading}\n{sub}", loc="left", fontsize=10)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    if not n:
        ax.text(0.5, 0.5, "no calls recorded", transform=ax.transAxes, ha="center", va="center", color="0.4")
        ax.set_xticks([])
        ax.set_yticks([])
        return fig
    x = list(range(n))
    bottom = [0.0] * n
    for provider in data.providers:
        heights = [float(v) for v in data.cost[provider]]
        ax.bar(x, heights, bottom=bottom, width=0.8, label=provider, zorder=2)
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    top = max(bottom)
    for i, count in enumerate(data.unpriced):
        if count:
            ax.annotate(f"+{count}\nunpriced", (i, bottom[i]), xytext=(0, 3), textcoords="offset points",
                        ha="center", va="bottom", fontsize=7, color="0.3")
    step = max(1, math.ceil(n / _MAX_TICKS))
    ax.set_xticks(x[::step], [d.isoformat() for d in data.days[::step]], rotation=45, ha="right", fontsize=8)
    ax.set_xlim(-0.6, n - 0.4)
    ax.set_ylim(0, top * 1.12 if top > 0 else 1)
    decimals = _decimals(ax.get_yticks())
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"${v:,.{decimals}f}"))
    ax.set_ylabel("cost (USD)")
    ax.grid(axis="y", color="0.9", zorder=0)
    handles, labels = ax.get_legend_handles_labels()
    # Listed top to bottom as the segments are stacked, so the legend reads like the bars.
    ax.legend(handles[::-1], labels[::-1], title="provider", loc="upper left", bbox_to_anchor=(1.0, 1.0),
              frameon=False, fontsize=8)
    return fig


def plot_daily_cost(rows: Iterable[LedgerRow], path: str | Path | None = None, *, title: str | None = None) -> Any:
    """Cost per day stacked by provider, as a matplotlib ``Figure``; saved to ``path`` when given.

    Raises:
        ImportError: matplotlib is not installed.
    """
    return plot_of_data(daily_cost(rows), path, title=title)


def plot_of_data(data: DailyCost, path: str | Path | None = None, *, title: str | None = None) -> Any:
    """The chart of ``data`` as a matplotlib ``Figure``; saved to ``path`` when given.

    Raises:
        ImportError: matplotlib is not installed.
    """
    fig = figure(data, title=title)
    if path is not None:
        fig.savefig(path, dpi=_DPI)
    return fig


def png_bytes(fig: Any) -> bytes:
    """``fig`` as PNG."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI)
    return buf.getvalue()


_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 72rem;
       padding: 0 1rem; color: #1f2328; }
h1 { font-size: 1.5rem; margin-bottom: .2rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
.meta { color: #59636e; margin-top: 0; }
figure { margin: 1rem 0; } figure img { max-width: 100%; height: auto; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: .3rem .7rem; border-bottom: 1px solid #d1d9e0; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
tfoot td { font-weight: 600; border-top: 2px solid #59636e; }
.note { color: #9a6700; }
"""


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _cost_cell(cost: Decimal, unpriced: int) -> str:
    # A group with unpriced calls costs at least its priced part: never show it as a plain $0.
    if not unpriced:
        return usd(cost)
    return f"≥ {usd(cost)}" if cost else "unpriced"


def _group_table(report: Report) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in
                   (report.group_by, "calls", "errors", "input tokens", "output tokens", "cost (USD)", "unpriced"))
    body = "\n".join(
        f"<tr><td>{_esc(r.key)}</td><td>{r.calls}</td><td>{r.errors}</td><td>{r.input_tokens:,}</td>"
        f"<td>{r.output_tokens:,}</td><td>{_esc(_cost_cell(r.cost, r.unpriced))}</td>"
        f"<td>{r.unpriced or ''}</td></tr>"
        for r in report.rows
    )
    rows = report.rows
    foot = (f"<tr><td>TOTAL</td><td>{report.calls}</td><td>{sum(r.errors for r in rows)}</td>"
            f"<td>{sum(r.input_tokens for r in rows):,}</td><td>{sum(r.output_tokens for r in rows):,}</td>"
            f"<td>{_esc(_cost_cell(report.total, report.unpriced))}</td>"
            f"<td>{report.unpriced}</td></tr>")
    return (f'<table class="groups"><thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n'
            f"<tfoot>{foot}</tfoot></table>")


def _daily_table(data: DailyCost) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in ("day", *data.providers, "total", "unpriced"))
    body = "\n".join(
        f"<tr><td>{day.isoformat()}</td>"
        + "".join(f"<td>{_esc(usd(data.cost[p][i]))}</td>" for p in data.providers)
        + f"<td>{_esc(usd(total))}</td><td>{data.unpriced[i] or ''}</td></tr>"
        for i, (day, total) in enumerate(zip(data.days, data.totals, strict=True))
    )
    return f'<table class="days"><thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody></table>'


def _period(calls: Calls) -> str:
    def fmt(when: dt.datetime | None) -> str:
        return when.strftime("%Y-%m-%d %H:%M UTC") if when else "…"

    if calls.since is None and calls.until is None:
        return "all recorded calls"
    return f"from {fmt(calls.since)} up to {fmt(calls.until)}"


def html_report(calls: Calls, path: str | Path | None = None, *, by: str = "provider",
                title: str | None = None) -> str:
    """A self-contained HTML page (no external file or script): the cost chart embedded as a PNG, the spend
    grouped by ``by``, and the cost of each day by provider; written to ``path`` when given.

    Raises:
        ImportError: matplotlib is not installed.
        ValueError: ``by`` is not a way to group.
    """
    # Both summed by the store for a ledger's view: the page never holds the period's rows.
    report = calls.report(by)
    data = calls.daily_cost()
    png = base64.b64encode(png_bytes(figure(data))).decode("ascii")
    heading = title or "computekit cost report"
    meta = f"{_period(calls)} · {report.calls} call{'s' if report.calls != 1 else ''} · total {usd(report.total)}"
    note = ""
    if report.unpriced:
        note = (f'<p class="note">{report.unpriced} unpriced call{"s" if report.unpriced != 1 else ""} not '
                "included: the real total is higher.</p>")
    page = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="computekit">
<title>{_esc(heading)}</title>
<style>{_CSS}</style>
</head>
<body>
<h1>{_esc(heading)}</h1>
<p class="meta">{_esc(meta)}</p>
{note}
<figure id="chart"><img alt="Cost per day, stacked by provider" src="data:image/png;base64,{png}"></figure>
<h2>Spend by {_esc(by)}</h2>
{_group_table(report)}
<h2>Cost per day by provider</h2>
{_daily_table(data)}
<p class="meta">Costs are exact (USD, from computekit's ledger); days are UTC.</p>
</body>
</html>
"""
    if path is not None:
        Path(path).write_text(page, "utf-8")
    return page
