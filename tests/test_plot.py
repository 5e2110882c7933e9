"""The cost chart and the HTML report (``computekit.ledger._plot``): the per-day, per-provider stacks are exact;
the figure has one bar series per provider stacked in that order; the PNG opens; the HTML page carries the same
chart and the tables, needs no other file, and escapes what it shows."""

from __future__ import annotations

import base64
import datetime as dt
import re
import struct
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from computekit.ledger import Calls, LedgerRow, SQLiteLedger
from computekit.ledger._plot import daily_cost, figure, html_report, plot_daily_cost

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
D1 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
LATE = dt.datetime(2026, 3, 1, 23, 59, 59, 999999, tzinfo=dt.UTC)
NEXT = dt.datetime(2026, 3, 2, 0, 0, tzinfo=dt.UTC)
D4 = dt.datetime(2026, 3, 4, 9, 0, tzinfo=dt.UTC)  # 03-03 has no calls: it is drawn at 0


def _row(ts: dt.datetime, provider: str, cost: str | None, **kw: object) -> LedgerRow:
    return LedgerRow(ts=ts, verb="complete", provider=provider, model="m", outcome="success", latency_ms=1.0,
                     cost=None if cost is None else Decimal(cost), **kw)  # type: ignore[arg-type]


ROWS = [
    _row(D1, "openai", "0.25"),
    _row(LATE, "openai", "0.125"),
    _row(D1, "anthropic", "0.5"),
    _row(NEXT, "anthropic", "1.0"),
    _row(NEXT, "anthropic", None),  # unpriced: not in the stack, labelled
    _row(NEXT, "mistral", "0.0001"),
    _row(D4, "openai", "0.2", tags={"customer": "<script>alert(1)</script>"}),
    _row(D4, "in-house", None),  # a provider no table prices: no series of $0, counted as unpriced
]
DAYS = [dt.date(2026, 3, 1), dt.date(2026, 3, 2), dt.date(2026, 3, 3), dt.date(2026, 3, 4)]
STACKS = {
    "anthropic": [Decimal("0.5"), Decimal("1.0"), Decimal(0), Decimal(0)],
    "openai": [Decimal("0.375"), Decimal(0), Decimal(0), Decimal("0.2")],
    "mistral": [Decimal(0), Decimal("0.0001"), Decimal(0), Decimal(0)],
}


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


# --------------------------------------------------------------------------------------------- data


def test_daily_cost_stacks_each_provider_per_utc_day() -> None:
    data = daily_cost(ROWS)
    assert data.days == DAYS  # contiguous: a day without calls is still a bar (of 0)
    assert data.providers == ["anthropic", "openai", "mistral"]  # the biggest spender at the bottom
    assert data.cost == STACKS
    assert data.unpriced == [0, 1, 0, 1]
    assert data.unpriced_by_provider == {"anthropic": 1, "in-house": 1}
    assert data.totals == [Decimal("0.875"), Decimal("1.0001"), Decimal(0), Decimal("0.2")]
    assert data.total == Decimal("2.0751")
    assert all(isinstance(v, Decimal) for stack in data.cost.values() for v in stack)


def test_daily_cost_of_nothing() -> None:
    data = daily_cost([])
    assert (data.days, data.providers, data.cost, data.unpriced, data.unpriced_by_provider, data.total) == (
        [], [], {}, [], {}, Decimal(0))


# --------------------------------------------------------------------------------------------- figure


def test_figure_has_one_stacked_series_per_provider() -> None:
    from matplotlib.container import BarContainer

    fig = figure(daily_cost(ROWS))
    [ax] = fig.axes
    bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert [c.get_label() for c in bars] == ["anthropic", "openai", "mistral"]
    bottom = [0.0] * len(DAYS)
    for container, provider in zip(bars, ["anthropic", "openai", "mistral"], strict=True):
        heights = [p.get_height() for p in container.patches]
        assert heights == pytest.approx([float(v) for v in STACKS[provider]])
        assert [p.get_y() for p in container.patches] == pytest.approx(bottom)  # stacked on the ones below
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    # The legend reads top to bottom like the stacks.
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["mistral", "openai", "anthropic"]
    assert [t.get_text() for t in ax.get_xticklabels()] == [d.isoformat() for d in DAYS]
    assert [t.get_text() for t in ax.texts] == ["+1\nunpriced"] * 2  # over 03-02 and 03-04, never drawn as $0
    assert [t.xy for t in ax.texts] == [(1, pytest.approx(1.0001)), (3, pytest.approx(0.2))]  # on top of the stack
    assert "total $2.0751 + 2 unpriced calls, not included (anthropic 1, in-house 1)" in ax.get_title(loc="left")
    assert ax.get_ylabel() == "cost (USD)"


def test_long_periods_label_every_nth_day() -> None:
    rows = [_row(D1 + dt.timedelta(days=i), "openai", "1") for i in range(60)]
    [ax] = figure(daily_cost(rows)).axes
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert len(ax.containers[0].patches) == 60
    assert 8 <= len(labels) <= 16
    assert labels[0] == "2026-03-01"


@pytest.mark.parametrize("cost", ["0.185", "0.0000375", "42", "1234.5"])
def test_y_ticks_read_exactly(cost: str) -> None:
    [ax] = figure(daily_cost([_row(D1, "openai", cost)])).axes
    fmt = ax.yaxis.get_major_formatter()
    ticks = [t for t in ax.get_yticks() if t >= 0]
    assert len(ticks) >= 3
    for t in ticks:
        label = fmt(t)
        assert label.startswith("$")
        # A tick at 0.025 reads $0.025, not $0.03; every label has the same number of decimals.
        assert Decimal(label[1:].replace(",", "")) == Decimal(f"{t:.8f}").normalize()
    assert len({len(fmt(t).split(".")[1]) for t in ticks}) == 1


def test_empty_figure_says_so() -> None:
    [ax] = figure(daily_cost([])).axes
    assert ax.containers == []
    assert [t.get_text() for t in ax.texts] == ["no calls recorded"]


def test_plot_writes_a_png_that_opens(tmp_path: Path) -> None:
    from matplotlib.image import imread

    out = tmp_path / "cost.png"
    fig = plot_daily_cost(ROWS, out)
    data = out.read_bytes()
    width, height = _png_size(data)
    dpi = 150
    assert (width, height) == (round(fig.get_figwidth() * dpi), round(fig.get_figheight() * dpi))
    assert width >= 900
    assert height >= 600
    pixels = imread(out)
    assert pixels.shape[:2] == (height, width)
    assert len(set(map(tuple, pixels.reshape(-1, pixels.shape[2])[:: 97].tolist()))) > 5  # not a blank image


def test_plot_from_a_ledger_as_svg(tmp_path: Path) -> None:
    lg = SQLiteLedger(tmp_path / "l.db")
    for row in ROWS:
        lg.record(row)
    out = tmp_path / "cost.svg"
    lg.calls(since=NEXT).plot(out)
    lg.close()
    text = out.read_text("utf-8")
    assert text.lstrip().startswith("<?xml")
    assert "<svg" in text


def test_plots_without_matplotlib_name_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    with pytest.raises(ImportError, match=r"computekit\[plot\]"):
        plot_daily_cost(ROWS, tmp_path / "x.png")
    with pytest.raises(ImportError, match=r"computekit\[plot\]"):
        Calls(ROWS).to_html(tmp_path / "x.html")
    assert not (tmp_path / "x.png").exists()


# --------------------------------------------------------------------------------------------- HTML


def test_html_report_has_the_chart_and_the_tables(tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    page = html_report(Calls(ROWS, since=D1.replace(hour=0), until=None), out, by="tag:customer")
    assert out.read_text("utf-8") == page
    assert page.startswith("<!doctype html>")
    # The chart: an embedded PNG, the same figure as --plot draws.
    [b64] = re.findall(r'<img alt="Cost per day, stacked by provider" src="data:image/png;base64,([A-Za-z0-9+/=]+)"',
                       page)
    png = base64.b64decode(b64)
    assert _png_size(png) == _png_size(_png_of_plot(tmp_path))
    # Self-contained: no other file, script or stylesheet is fetched.
    assert not re.search(r'(src|href)="(?!data:)', page)
    assert "<script" not in page
    # The grouped table, with exact costs and the unpriced call shown as such.
    assert "<h2>Spend by tag:customer</h2>" in page
    assert "<td>(none)</td><td>7</td><td>0</td>" in page
    assert "≥ $1.8751" in page  # the untagged group: priced part of 6 calls, 1 of them unpriced
    assert "<td>$0.20</td>" in page
    assert "2 unpriced calls not included" in page
    # The daily table: one column per provider, every day.
    assert "<th>day</th><th>anthropic</th><th>openai</th><th>mistral</th><th>total</th><th>unpriced</th>" in page
    assert "<tr><td>2026-03-02</td><td>$1.00</td><td>$0.00</td><td>$0.0001</td><td>$1.0001</td><td>1</td></tr>" in page
    assert "<tr><td>2026-03-03</td><td>$0.00</td><td>$0.00</td><td>$0.00</td><td>$0.00</td><td></td></tr>" in page
    assert "from 2026-03-01 00:00 UTC" in page
    # A tag value is shown, escaped.
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def _png_of_plot(tmp_path: Path) -> bytes:
    out = tmp_path / "same.png"
    plot_daily_cost(ROWS, out)
    return out.read_bytes()


def test_html_report_rejects_a_bad_group_by(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="tag:NAME"):
        Calls(ROWS).to_html(tmp_path / "r.html", by="colour")
    assert not (tmp_path / "r.html").exists()
