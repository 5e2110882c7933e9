"""The cost ledger: exact round trips, reports, exports, WAL, concurrency, and the ``none`` ledger."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import sqlite3
import threading
from decimal import Decimal
from pathlib import Path

import pytest

from computekit.ledger import LedgerRow, NullLedger, SQLiteLedger, open_ledger
from computekit.ledger._sqlite import SCHEMA_VERSION, path_from_url

T0 = dt.datetime(2026, 3, 1, 23, 59, 58, 123456, tzinfo=dt.UTC)


def _row(**kw: object) -> LedgerRow:
    base: dict[str, object] = {
        "ts": T0, "verb": "complete", "provider": "openai", "model": "gpt-4o-mini", "outcome": "success",
        "latency_ms": 12.5, "input_tokens": 10, "output_tokens": 5, "cost": Decimal("0.000004500"),
    }
    base.update(kw)
    return LedgerRow(**base)  # type: ignore[arg-type]


@pytest.fixture
def ledger(tmp_path: Path) -> SQLiteLedger:
    lg = SQLiteLedger(tmp_path / "l.db")
    yield lg  # type: ignore[misc]
    lg.close()


def test_row_round_trips_exactly(ledger: SQLiteLedger) -> None:
    row = _row(
        cached_input_tokens=3, cache_write_tokens=2, reasoning_tokens=1,
        gpu_seconds=Decimal("2.300000000000000000001"),
        cost=Decimal("0.00000000000000000000123456789012345678901234567890"),
        estimated=True, price_source="genai-prices 0.2.3 (as of 2026-01-01)", request_id="req_1",
        tags={"team": "search", "ünï": "✓"},
    )
    ledger.record(row)
    [back] = ledger.rows()
    assert back.id is not None
    row.id = back.id
    assert back == row
    assert back.cost == Decimal("0.00000000000000000000123456789012345678901234567890")
    assert str(back.cost) == str(row.cost)  # exact digits, not a float
    assert back.ts.tzinfo is not None
    assert back.ts == T0


def test_error_row_round_trips(ledger: SQLiteLedger) -> None:
    row = _row(outcome="error", cost=None, error_type="RateLimitError", status=429, input_tokens=0, output_tokens=0)
    ledger.record(row)
    [back] = ledger.rows()
    row.id = back.id
    assert back == row
    assert back.cost is None


def test_cost_is_stored_as_text(ledger: SQLiteLedger, tmp_path: Path) -> None:
    ledger.record(_row(cost=Decimal("0.1")))
    ledger.record(_row(cost=None))
    con = sqlite3.connect(tmp_path / "l.db")
    try:
        values = con.execute("SELECT cost, typeof(cost) FROM attempts ORDER BY id").fetchall()
    finally:
        con.close()
    assert values == [("0.1", "text"), (None, "null")]


def test_rows_are_in_time_order_and_filterable(ledger: SQLiteLedger) -> None:
    times = [T0 + dt.timedelta(hours=h) for h in (5, 1, 3)]
    for t in times:
        ledger.record(_row(ts=t))
    assert [r.ts for r in ledger.rows()] == sorted(times)
    assert [r.ts for r in ledger.rows(since=T0 + dt.timedelta(hours=2))] == sorted(times)[1:]
    assert [r.ts for r in ledger.rows(until=T0 + dt.timedelta(hours=3))] == [T0 + dt.timedelta(hours=1)]
    assert ledger.rows(since=T0 + dt.timedelta(hours=3), until=T0 + dt.timedelta(hours=5)) == ledger.rows()[1:2]


def _fill(ledger: SQLiteLedger) -> None:
    d1 = T0
    d2 = T0 + dt.timedelta(days=1)
    ledger.record(_row(ts=d1, provider="openai", model="gpt-4o-mini", cost=Decimal("0.10")))
    ledger.record(_row(ts=d1, provider="openai", model="gpt-4o-mini", outcome="error", cost=Decimal(0),
                       input_tokens=0, output_tokens=0, error_type="ServerError", status=500))
    ledger.record(_row(ts=d2, provider="openai", model="gpt-4o", cost=Decimal("0.25"), verb="stream"))
    ledger.record(_row(ts=d2, provider="together", model="llama", cost=None))  # unpriced
    ledger.record(_row(ts=d2, provider="together", model="llama", cost=Decimal("0.05"), verb="embed"))
    ledger.record(_row(ts=d2, provider="together", model="llama", outcome="error", cost=None,
                       input_tokens=0, output_tokens=0))


@pytest.mark.parametrize(
    ("group_by", "expected"),
    [
        ("provider", {"openai": (3, 1, "0.35", 0), "together": (3, 1, "0.05", 2)}),
        ("model", {"gpt-4o-mini": (2, 1, "0.10", 0), "gpt-4o": (1, 0, "0.25", 0), "llama": (3, 1, "0.05", 2)}),
        ("target", {"openai:gpt-4o-mini": (2, 1, "0.10", 0), "openai:gpt-4o": (1, 0, "0.25", 0),
                    "together:llama": (3, 1, "0.05", 2)}),
        ("verb", {"complete": (4, 2, "0.10", 2), "stream": (1, 0, "0.25", 0), "embed": (1, 0, "0.05", 0)}),
        ("day", {"2026-03-01": (2, 1, "0.10", 0), "2026-03-02": (4, 1, "0.30", 2)}),
        ("outcome", {"success": (4, 0, "0.40", 1), "error": (2, 2, "0", 1)}),
    ],
)
def test_report_group_by(ledger: SQLiteLedger, group_by: str, expected: dict[str, tuple]) -> None:
    _fill(ledger)
    rep = ledger.report(group_by)  # type: ignore[arg-type]
    assert rep.group_by == group_by
    got = {r.key: (r.calls, r.errors, r.cost, r.unpriced) for r in rep.rows}
    assert got == {k: (c, e, Decimal(cost), u) for k, (c, e, cost, u) in expected.items()}
    assert rep.total == Decimal("0.40")
    assert isinstance(rep.total, Decimal)
    # The unpriced success and the failed attempt of unknown cost (a timeout may have been billed); the 500
    # is recorded as costing 0 (not billed), so it is priced.
    assert rep.unpriced == 2
    # Most expensive first; a report by day reads in time order.
    order = [r.key for r in rep.rows] if group_by == "day" else [r.cost for r in rep.rows]
    assert order == sorted(order, reverse=group_by != "day")  # type: ignore[type-var]


def test_report_token_sums(ledger: SQLiteLedger) -> None:
    _fill(ledger)
    rows = {r.key: r for r in ledger.report("provider").rows}
    assert (rows["openai"].input_tokens, rows["openai"].output_tokens) == (20, 10)
    assert (rows["together"].input_tokens, rows["together"].output_tokens) == (20, 10)


def test_report_total_is_exact(ledger: SQLiteLedger) -> None:
    for _ in range(10):
        ledger.record(_row(cost=Decimal("0.1")))
    assert ledger.report().total == Decimal("1.0")


def test_report_window(ledger: SQLiteLedger) -> None:
    _fill(ledger)
    rep = ledger.report("day", since=T0 + dt.timedelta(hours=1))
    assert [r.key for r in rep.rows] == ["2026-03-02"]
    assert rep.total == Decimal("0.30")


def test_invalid_group_by(ledger: SQLiteLedger) -> None:
    with pytest.raises(ValueError, match="group_by must be one of"):
        ledger.report("colour")  # type: ignore[arg-type]


def test_empty_report(ledger: SQLiteLedger) -> None:
    rep = ledger.report()
    assert rep.rows == []
    assert rep.total == Decimal(0)
    assert rep.unpriced == 0


def test_to_csv_round_trip(ledger: SQLiteLedger, tmp_path: Path) -> None:
    _fill(ledger)
    rep = ledger.report("provider")
    out = tmp_path / "r.csv"
    text = rep.to_csv(out)
    assert out.read_text("utf-8") == text
    lines = list(csv.reader(io.StringIO(text)))
    assert lines[0] == ["provider", "calls", "errors", "input_tokens", "output_tokens", "cost", "unpriced"]
    body = [dict(zip(lines[0], line, strict=True)) for line in lines[1:-1]]
    assert [
        {"key": b["provider"], "calls": int(b["calls"]), "errors": int(b["errors"]),
         "input_tokens": int(b["input_tokens"]), "output_tokens": int(b["output_tokens"]), "cost": b["cost"],
         "unpriced": int(b["unpriced"])}
        for b in body
    ] == rep.to_records()
    assert lines[-1] == ["TOTAL", "6", "2", "40", "20", str(rep.total), "2"]
    assert sum(Decimal(b["cost"]) for b in body) == Decimal(lines[-1][5])


def test_to_json_round_trip(ledger: SQLiteLedger, tmp_path: Path) -> None:
    _fill(ledger)
    rep = ledger.report("model")
    out = tmp_path / "r.json"
    text = rep.to_json(out)
    assert out.read_text("utf-8") == text
    data = json.loads(text)
    assert data["group_by"] == "model"
    assert data["rows"] == rep.to_records()
    assert Decimal(data["total"]) == rep.total
    assert data["unpriced"] == 2
    assert data["currency"] == "USD"
    assert all(isinstance(r["cost"], str) for r in data["rows"])  # exact decimals, never floats


def test_wal_mode(ledger: SQLiteLedger, tmp_path: Path) -> None:
    ledger.record(_row())
    con = sqlite3.connect(tmp_path / "l.db")
    try:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert con.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        con.close()


def test_concurrent_writes_from_threads(ledger: SQLiteLedger) -> None:
    n_threads, per_thread = 8, 50
    barrier = threading.Barrier(n_threads)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            barrier.wait()
            for j in range(per_thread):
                ledger.record(_row(request_id=f"t{i}-{j}", cost=Decimal(f"0.00{i}{j}")))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    rows = ledger.rows()
    assert len(rows) == n_threads * per_thread
    assert {r.request_id for r in rows} == {f"t{i}-{j}" for i in range(n_threads) for j in range(per_thread)}
    assert ledger.report().total == sum(
        (Decimal(f"0.00{i}{j}") for i in range(n_threads) for j in range(per_thread)), Decimal(0))


def test_two_ledgers_on_one_file(tmp_path: Path) -> None:
    """Two connections (as two processes would have) share one file."""
    a = SQLiteLedger(tmp_path / "shared.db")
    b = SQLiteLedger(tmp_path / "shared.db")
    try:
        a.record(_row(request_id="a"))
        b.record(_row(request_id="b"))
        assert {r.request_id for r in a.rows()} == {"a", "b"}
        assert {r.request_id for r in b.rows()} == {"a", "b"}
    finally:
        a.close()
        b.close()


def test_reopen_keeps_rows_and_schema(tmp_path: Path) -> None:
    p = tmp_path / "sub" / "dir" / "l.db"
    a = SQLiteLedger(p)
    a.record(_row())
    a.close()
    b = SQLiteLedger(p)
    try:
        assert len(b.rows()) == 1
    finally:
        b.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "l.db"
    SQLiteLedger(p).close()
    con = sqlite3.connect(p)
    con.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION + 1,))
    con.commit()
    con.close()
    with pytest.raises(RuntimeError, match="newer"):
        SQLiteLedger(p)


def test_memory_ledger() -> None:
    lg = SQLiteLedger(":memory:")
    lg.record(_row())
    assert len(lg.rows()) == 1
    assert repr(lg) == "SQLiteLedger(':memory:')"


def test_null_ledger_records_nothing() -> None:
    lg = NullLedger()
    lg.record(_row())
    assert lg.rows() == []
    rep = lg.report("provider")
    assert rep.rows == []
    assert rep.total == Decimal(0)


def test_open_ledger(tmp_path: Path) -> None:
    assert isinstance(open_ledger("none"), NullLedger)
    lg = open_ledger(f"sqlite:///{tmp_path / 'x.db'}")
    assert isinstance(lg, SQLiteLedger)
    assert Path(lg.path) == tmp_path / "x.db"
    lg.close()
    assert path_from_url("sqlite://:memory:") == ":memory:"
    assert path_from_url("sqlite:////abs/path.db") == "/abs/path.db"
    assert path_from_url("sqlite:///rel.db") == "rel.db"


def test_as_dict_is_json_ready() -> None:
    d = _row(gpu_seconds=Decimal("1.5"), tags={"a": "b"}).as_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["cost"] == "0.000004500"
    assert d["gpu_seconds"] == "1.5"
    assert d["ts"] == T0.isoformat()


def test_once_key_writes_a_row_at_most_once_across_connections(tmp_path: Path) -> None:
    """A finished job reported by two processes (two connections here) is one row; plain rows are unaffected."""
    a = SQLiteLedger(tmp_path / "l.db")
    b = SQLiteLedger(tmp_path / "l.db")
    try:
        a.record(_row(verb="finetune", once_key="finetune:openai:ftjob-1", cost=Decimal("1.5")))
        b.record(_row(verb="finetune", once_key="finetune:openai:ftjob-1", cost=Decimal("1.5")))
        a.record(_row())
        a.record(_row())
        rows = b.rows()
        assert [r.once_key for r in rows].count("finetune:openai:ftjob-1") == 1
        assert sum(1 for r in rows if r.once_key is None) == 2
    finally:
        a.close()
        b.close()


def test_v1_ledger_is_migrated_in_place(tmp_path: Path) -> None:
    """A ledger written by schema v1 (no once_key column) opens, keeps its rows and gains the column."""
    p = tmp_path / "v1.db"
    con = sqlite3.connect(p)
    con.executescript(
        "CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES (1);"
        "CREATE TABLE attempts (id INTEGER PRIMARY KEY, ts TEXT NOT NULL, verb TEXT NOT NULL, provider TEXT NOT NULL,"
        " model TEXT NOT NULL, outcome TEXT NOT NULL, latency_ms REAL NOT NULL,"
        " input_tokens INTEGER NOT NULL DEFAULT 0, output_tokens INTEGER NOT NULL DEFAULT 0,"
        " cached_input_tokens INTEGER NOT NULL DEFAULT 0,"
        " cache_write_tokens INTEGER NOT NULL DEFAULT 0, reasoning_tokens INTEGER NOT NULL DEFAULT 0, gpu_seconds TEXT,"
        " cost TEXT, currency TEXT NOT NULL DEFAULT 'USD', estimated INTEGER NOT NULL DEFAULT 0, price_source TEXT,"
        " request_id TEXT, error_type TEXT, status INTEGER, tags TEXT NOT NULL DEFAULT '{}');"
        f"INSERT INTO attempts (ts, verb, provider, model, outcome, latency_ms, cost) VALUES"
        f" ('{T0.isoformat()}', 'complete', 'openai', 'gpt-4o-mini', 'success', 1.0, '0.25');"
    )
    con.commit()
    con.close()
    lg = SQLiteLedger(p)
    try:
        (row,) = lg.rows()
        assert row.cost == Decimal("0.25")
        assert row.once_key is None
        lg.record(_row(once_key="k"))
        assert {r.once_key for r in lg.rows()} == {None, "k"}
    finally:
        lg.close()
