"""Reading a large ledger back lazily: ``Ledger.iter_rows()`` (chunks on SQLite, a server-side cursor on
PostgreSQL), the calls view whose exports stream and whose totals and chart are summed by the store, and the
``computekit report --calls`` table capped. Each on both backends, against the list version (``rows()``)."""

from __future__ import annotations

import datetime as dt
import io
import json
import threading
import tracemalloc
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import computekit.cli as cli_module
import computekit.ledger._postgres as pg_module
import computekit.ledger._sqlite as sqlite_module
from computekit import InvalidRequestError, LedgerError, Usage
from computekit.cli import app
from computekit.ledger import Calls, Ledger, LedgerRow, SQLiteLedger, open_ledger
from computekit.ledger._plot import daily_cost
from computekit.pricing import PriceBook, PriceRef

T0 = dt.datetime(2026, 3, 1, 23, 0, tzinfo=dt.UTC)
SMALL_CHUNK = 3
"""Read this many rows at a time in the tests, so that a handful of rows spans many chunks."""


_RATES = PriceBook().rates(PriceRef("openai", "gpt-4o-mini-2024-07-18", "openai"))


def _price(tokens_in: int, tokens_out: int) -> Decimal:
    """An exact cost from the price tables (never a copied constant)."""
    assert _RATES is not None
    total = _RATES.cost(Usage(input_tokens=tokens_in, output_tokens=tokens_out)).total
    assert total is not None
    return total


def _rows(n: int, *, same_ts_every: int = 4) -> list[LedgerRow]:
    """``n`` attempts over two UTC days: groups of ``same_ts_every`` share one time (the read order must break
    the tie by id, across chunk ends), one in five is unpriced (``None``), one in seven a free error (0), and
    text that a spreadsheet would run as a formula."""
    out = []
    for i in range(n):
        ts = T0 + dt.timedelta(minutes=(i // same_ts_every) * 7)
        provider = ("openai", "anthropic", "groq")[i % 3]
        error = i % 7 == 3
        cost = None if i % 5 == 0 else Decimal(0) if error else _price(100 + i, 7 + i % 50)
        out.append(LedgerRow(
            ts=ts, verb="complete", provider=provider, model="=cmd|' /C calc'!A0" if i % 11 == 0 else "gpt-4o-mini",
            outcome="error" if error else "success", latency_ms=1.5 + i, input_tokens=100 + i,
            output_tokens=7 + i % 50, cost=cost, request_id=f"req_{i}", error_type="RateLimitError" if error else None,
            status=429 if error else None, tags={"customer": f"c{i % 4}", "note": "-1+2" if i % 6 == 0 else "x"},
        ))
    return out


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_module, "LEDGER_READ_CHUNK", SMALL_CHUNK)
    monkeypatch.setattr(pg_module, "LEDGER_READ_CHUNK", SMALL_CHUNK)


@pytest.fixture
def filled(ledger_url: str) -> Iterator[Ledger]:
    lg = open_ledger(ledger_url)
    lg.record_many(_rows(40))
    yield lg
    lg.close()


WINDOWS = [
    {},
    {"since": T0 + dt.timedelta(minutes=7)},  # on a time several rows share
    {"until": T0 + dt.timedelta(minutes=63)},
    {"since": T0 + dt.timedelta(minutes=10), "until": T0 + dt.timedelta(hours=1)},
    {"since": dt.datetime(2026, 3, 2, 0, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))},  # another offset
    {"since": T0 + dt.timedelta(days=5)},  # empty
]


# ------------------------------------------------------------------------------------------------ iter_rows


@pytest.mark.parametrize("window", WINDOWS)
def test_iter_rows_reads_the_same_rows_as_rows(filled: Ledger, small_chunks: None, window: dict[str, Any]) -> None:
    listed = filled.rows(**window)
    streamed = filled.iter_rows(**window)
    assert not isinstance(streamed, list)
    got = list(streamed)
    assert got == listed  # every field: ids, exact Decimals, None costs, tags, in (ts, id) order
    assert [r.id for r in got] == sorted(r.id for r in got if r.id is not None) or window  # time order = id order
    assert sum(r.cost is None for r in got) == sum(r.cost is None for r in listed)
    if not window:
        assert len(got) == 40
        assert any(r.cost is None for r in got)
        assert any(r.cost == 0 for r in got)  # a free error stays 0, an unknown cost stays None


def test_iter_rows_checks_its_period_before_reading(filled: Ledger) -> None:
    with pytest.raises(InvalidRequestError, match="must be a datetime"):
        filled.iter_rows(since=dt.date(2026, 3, 1))  # type: ignore[arg-type]  # raised at once, not on next()
    with pytest.raises(InvalidRequestError, match="swap them"):
        filled.iter_rows(since=T0 + dt.timedelta(hours=1), until=T0)


def test_a_caller_may_record_while_it_iterates(filled: Ledger, small_chunks: None) -> None:
    """The ledger's lock is not held between chunks: recording from the loop neither deadlocks nor repeats a row."""
    seen: list[int | None] = []
    done = threading.Event()

    def read() -> None:
        for row in filled.iter_rows():
            seen.append(row.id)
            if len(seen) == 5:
                filled.record(_rows(1)[0])  # a time already passed: not read again, not read twice
        done.set()

    t = threading.Thread(target=read, daemon=True)
    t.start()
    assert done.wait(30), "iterating and recording deadlocked"
    assert len(seen) == len(set(seen)) == 40


def test_a_store_failure_while_iterating_is_a_ledger_error(tmp_path: Path, small_chunks: None) -> None:
    lg = SQLiteLedger(tmp_path / "l.db")
    lg.record_many(_rows(10))
    it = lg.iter_rows()
    next(it)
    lg.close()
    with pytest.raises(LedgerError, match="reading its rows") as e:
        list(it)
    assert e.value.__cause__ is not None


def test_postgres_reads_through_a_server_side_cursor_and_lets_it_go(postgres_url: str, small_chunks: None) -> None:
    import psycopg

    lg = open_ledger(postgres_url)
    lg.record_many(_rows(20))
    app_name = postgres_url.rsplit("application_name=", 1)[1]

    def cursors() -> list[str]:
        with psycopg.connect(postgres_url, autocommit=True) as c:
            return [r[0] for r in c.execute("SELECT name FROM pg_cursors").fetchall()] + [
                r[0] for r in c.execute("SELECT state FROM pg_stat_activity WHERE application_name = %s "
                                        "AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%%'",
                                        (app_name,)).fetchall()]

    try:
        it = lg.iter_rows()
        first = next(it)
        assert first == lg.rows()[0]
        assert cursors() == ["idle in transaction"]  # a cursor open in its own session, the ledger's stays free
        lg.record(_rows(1)[0])  # the ledger still writes meanwhile
        it.close()  # type: ignore[attr-defined]  # stopped early: its session ends
        assert cursors() == []
    finally:
        lg.close()


# ----------------------------------------------------------------------------------------- bounded memory


def _peak(work: Any) -> int:
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_iterating_holds_a_chunk_not_the_ledger(tmp_path: Path) -> None:
    n = 50_000
    lg = SQLiteLedger(tmp_path / "big.db")
    lg.record_many(_rows(n, same_ts_every=1))
    try:
        counted: list[int] = []
        listed = _peak(lambda: counted.append(len(lg.rows())))
        streamed = _peak(lambda: counted.append(sum(1 for _ in lg.iter_rows())))
        assert counted == [n, n]
        assert streamed * 10 < listed, (streamed, listed)
    finally:
        lg.close()


def test_the_calls_exports_hold_a_chunk_not_the_period(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``write_csv`` / ``write_json`` of a ledger's view hold about one chunk of rows (made small here, so that a
    few thousand rows, quick to trace, are many chunks), where ``to_csv`` of the listed rows holds them all."""
    n = 5_000
    monkeypatch.setattr(sqlite_module, "LEDGER_READ_CHUNK", 100)
    lg = SQLiteLedger(tmp_path / "l.db")
    lg.record_many(_rows(n, same_ts_every=1))
    try:
        listed = _peak(lambda: Calls(lg.rows()).to_csv(tmp_path / "listed.csv"))
        for write, out in ((Calls.write_csv, tmp_path / "calls.csv"), (Calls.write_json, tmp_path / "calls.json")):
            assert _peak(lambda write=write, out=out: write(lg.calls(), out)) * 10 < listed
        assert (tmp_path / "calls.csv").read_text("utf-8") == (tmp_path / "listed.csv").read_text("utf-8")
        assert len(json.loads((tmp_path / "calls.json").read_text("utf-8"))["calls"]) == n
    finally:
        lg.close()


def test_iterating_postgres_holds_a_chunk_not_the_ledger(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    n = 20_000
    monkeypatch.setattr(pg_module, "LEDGER_READ_CHUNK", 500)  # many fetches of the server-side cursor
    lg = open_ledger(postgres_url)
    lg.record_many(_rows(n, same_ts_every=1))
    try:
        counted: list[int] = []
        listed = _peak(lambda: counted.append(len(lg.rows())))
        streamed = _peak(lambda: counted.append(sum(1 for _ in lg.iter_rows())))
        assert counted == [n, n]
        assert streamed * 10 < listed, (streamed, listed)
    finally:
        lg.close()


# ------------------------------------------------------------------------------------------------ calls view


@pytest.mark.parametrize("window", WINDOWS)
def test_the_calls_views_exports_match_the_list_version(filled: Ledger, small_chunks: None,
                                                        window: dict[str, Any]) -> None:
    lazy = filled.calls(**window)
    listed = Calls(filled.rows(**window), since=lazy.since, until=lazy.until)
    assert lazy.to_json() == listed.to_json()  # the same text, byte for byte
    assert lazy.to_csv() == listed.to_csv()
    buf = io.StringIO()
    assert lazy.write_csv(buf) == len(listed.rows)
    assert buf.getvalue() == listed.to_csv()
    assert (len(lazy), lazy.total, lazy.unpriced) == (len(listed.rows), listed.total, listed.unpriced)
    assert lazy.report("tag:customer") == listed.report("tag:customer")
    assert lazy.daily_cost() == listed.daily_cost()
    assert lazy.rows == listed.rows
    data = json.loads(lazy.to_json())
    assert data["total"] == str(listed.total)
    assert data["unpriced"] == listed.unpriced
    assert [c["cost"] for c in data["calls"]] == [None if r.cost is None else str(r.cost) for r in listed.rows]


def test_the_old_json_text_is_kept(filled: Ledger) -> None:
    """The streamed JSON is the text the whole-list ``json.dumps`` wrote: empty period, and a row whose tags are
    not all text (written by an older computekit) included."""
    filled.record(LedgerRow(ts=T0 + dt.timedelta(hours=9), verb="complete", provider="openai", model="m",
                            outcome="success", latency_ms=1.0, tags={"n": 42, "deep": {"a": [1, "é"]}, "e": ""}))  # type: ignore[dict-item]
    for window in ({}, {"since": T0 + dt.timedelta(days=5)}):
        view = filled.calls(**window)
        records = [{c: r.as_dict()[c] for c in Calls.COLUMNS} for r in filled.rows(**window)]
        total = sum((r.cost for r in filled.rows(**window) if r.cost is not None), Decimal(0))
        assert view.to_json() == json.dumps(
            {"calls": records, "total": str(total) if records else "0",
             "unpriced": sum(r.cost is None for r in filled.rows(**window)), "currency": "USD",
             "since": view.since.isoformat() if view.since else None, "until": None},
            indent=2, ensure_ascii=False)


def test_streamed_csv_keeps_formula_escaping(filled: Ledger, tmp_path: Path) -> None:
    out = tmp_path / "calls.csv"
    filled.calls().write_csv(out)
    text = out.read_text("utf-8")
    assert "'=cmd|' /C calc'!A0" in text
    assert ",=cmd" not in text
    assert '""note"": ""-1+2""' in text  # tags: one JSON cell, quoted


def test_the_chart_is_summed_by_the_store(filled: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    """A day and provider with only free and unpriced attempts stays a provider of the chart (at 0), its unpriced
    attempts counted apart, exactly as summing the rows does; no row is read."""
    rows = filled.rows()
    filled.record_many([
        LedgerRow(ts=T0 + dt.timedelta(days=3), verb="complete", provider="mistral", model="m", outcome="error",
                  latency_ms=1.0, cost=Decimal(0)),
        LedgerRow(ts=T0 + dt.timedelta(days=3, hours=1), verb="complete", provider="mistral", model="m",
                  outcome="success", latency_ms=1.0, cost=None),
    ])
    after = filled.rows()[len(rows):]
    expected = daily_cost(filled.rows())
    assert "mistral" in expected.providers
    assert expected.unpriced_by_provider["mistral"] == 1

    def refuse(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("the chart read every row")

    monkeypatch.setattr(type(filled), "rows", refuse)
    monkeypatch.setattr(type(filled), "iter_rows", refuse)
    assert filled.calls().daily_cost() == expected
    assert filled.calls(since=T0 + dt.timedelta(hours=1)).daily_cost() == daily_cost(
        r for r in [*rows, *after] if r.ts >= T0 + dt.timedelta(hours=1))
    assert len(filled.calls()) == len(rows) + 2


# -------------------------------------------------------------------------------------------------- the CLI


def _cli(*args: str) -> Any:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_cli_calls_exports_stream_the_same_text(ledger_url: str, small_chunks: None, monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    lg = open_ledger(ledger_url)
    lg.record_many(_rows(25))
    listed = Calls(lg.rows())
    lg.close()
    assert _cli("report", "--calls", "--format", "csv", "--ledger", ledger_url).stdout == listed.to_csv()
    assert _cli("report", "--calls", "--format", "json", "--ledger", ledger_url).stdout == listed.to_json() + "\n"


def test_cli_calls_table_is_capped_with_a_note(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli_module, "CALLS_TABLE_MAX", 5)
    url = f"sqlite:///{tmp_path}/l.db"
    lg = open_ledger(url)
    lg.record_many(_rows(12))
    total = Calls(lg.rows()).total
    lg.close()
    monkeypatch.setenv("COLUMNS", "200")
    out = _cli("report", "--calls", "--ledger", url).stdout
    assert "showing the first 5 of 12 calls" in out
    assert "12 calls" in out
    assert out.count("2026-03-0") == 5  # five lines of calls
    unpriced = sum(r.cost is None for r in _rows(12))
    assert f"total: {cli_module._money(total)} USD + {unpriced} unpriced calls not included" in out  # all 12


def test_cli_plot_and_html_read_no_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path}/l.db"
    lg = open_ledger(url)
    lg.record_many(_rows(30))
    expected = daily_cost(lg.rows())
    lg.close()

    def refuse(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("read every row")

    monkeypatch.setattr(SQLiteLedger, "rows", refuse)
    monkeypatch.setattr(SQLiteLedger, "iter_rows", refuse)
    _cli("report", "--plot", str(tmp_path / "c.png"), "--html", str(tmp_path / "r.html"), "--ledger", url)
    page = (tmp_path / "r.html").read_text("utf-8")
    assert (tmp_path / "c.png").stat().st_size > 0
    for provider in expected.providers:
        assert f"<th>{provider}</th>" in page
    assert f"{sum(expected.unpriced)} unpriced calls not included" in page
