"""The cost ledger: exact round trips, reports, exports, concurrency, budgets' reserve and settle, durability, and
the ``none`` ledger. The tests taking ``ledger`` or ``ledger_url`` run against both backends, SQLite and a real
PostgreSQL server (``tests/_postgres.py``); the ``sqlite_ledger`` ones check the file itself."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import sqlite3
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from computekit.ledger import Ledger, LedgerRow, NullLedger, SQLiteLedger, open_ledger
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
def ledger(ledger_url: str) -> Iterator[Ledger]:
    lg = open_ledger(ledger_url)
    yield lg
    lg.close()


@pytest.fixture
def sqlite_ledger(tmp_path: Path) -> Iterator[SQLiteLedger]:
    lg = SQLiteLedger(tmp_path / "l.db")
    yield lg
    lg.close()


def test_row_round_trips_exactly(ledger: Ledger) -> None:
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


def test_error_row_round_trips(ledger: Ledger) -> None:
    row = _row(outcome="error", cost=None, error_type="RateLimitError", status=429, input_tokens=0, output_tokens=0)
    ledger.record(row)
    [back] = ledger.rows()
    row.id = back.id
    assert back == row
    assert back.cost is None


def test_cost_is_stored_as_text(sqlite_ledger: SQLiteLedger, tmp_path: Path) -> None:
    ledger = sqlite_ledger
    ledger.record(_row(cost=Decimal("0.1")))
    ledger.record(_row(cost=None))
    con = sqlite3.connect(tmp_path / "l.db")
    try:
        values = con.execute("SELECT cost, typeof(cost) FROM attempts ORDER BY id").fetchall()
    finally:
        con.close()
    assert values == [("0.1", "text"), (None, "null")]


def test_small_amounts_read_back_in_plain_decimals_on_every_backend(ledger: Ledger) -> None:
    """A cost of a few tokens (1.0E-7 as ``Decimal`` prints it) reads back exact and prints as people read it."""
    ledger.record(_row(cost=Decimal("1.0E-7"), reserved=Decimal("2E-8")))
    ledger.record(_row(cost=None))
    first, unpriced = ledger.rows()
    assert first.cost == Decimal("1.0E-7")
    assert first.reserved == Decimal("2E-8")
    assert (str(first.cost), f"{first.cost}", str(first.reserved)) == ("0.00000010", "0.00000010", "0.00000002")
    assert unpriced.cost is None  # unknown stays unknown, never 0


def test_small_amounts_are_stored_in_plain_decimals(sqlite_ledger: SQLiteLedger, tmp_path: Path) -> None:
    """Someone reading the SQLite file itself sees 0.00000010, not 1.0E-7; rows written in exponent form by an
    earlier version read back the same."""
    sqlite_ledger.record(_row(cost=Decimal("1.0E-7"), reserved=Decimal("2E-8")))
    con = sqlite3.connect(tmp_path / "l.db")
    try:
        assert con.execute("SELECT cost, reserved FROM attempts").fetchall() == [("0.00000010", "0.00000002")]
        con.execute("UPDATE attempts SET cost = '1.0E-7'")
        con.commit()
    finally:
        con.close()
    (row,) = sqlite_ledger.rows()
    assert row.cost == Decimal("1.0E-7")
    assert str(row.cost) == "0.00000010"


def test_rows_are_in_time_order_and_filterable(ledger: Ledger) -> None:
    times = [T0 + dt.timedelta(hours=h) for h in (5, 1, 3)]
    for t in times:
        ledger.record(_row(ts=t))
    assert [r.ts for r in ledger.rows()] == sorted(times)
    assert [r.ts for r in ledger.rows(since=T0 + dt.timedelta(hours=2))] == sorted(times)[1:]
    assert [r.ts for r in ledger.rows(until=T0 + dt.timedelta(hours=3))] == [T0 + dt.timedelta(hours=1)]
    assert ledger.rows(since=T0 + dt.timedelta(hours=3), until=T0 + dt.timedelta(hours=5)) == ledger.rows()[1:2]


def test_a_row_dated_in_another_time_zone_counts_by_its_instant(ledger: Ledger) -> None:
    """A row of one's own dated in local time (``datetime.now().astimezone()``), or a provider's time with an
    offset, falls in the period and window its instant is in: SQLite compared the text of its time."""
    from computekit.ledger._budgets import Charge, period_start

    day = dt.datetime(2027, 3, 2, tzinfo=dt.UTC)
    west, east = dt.timezone(dt.timedelta(hours=-5)), dt.timezone(dt.timedelta(hours=2))
    ledger.record(_row(ts=dt.datetime(2027, 3, 1, 21, tzinfo=west), cost=Decimal(3)))  # 3/2 02:00 UTC
    ledger.record(_row(ts=dt.datetime(2027, 3, 2, 0, 30, tzinfo=east), cost=Decimal(4)))  # 3/1 22:30 UTC
    ledger.record(_row(ts=dt.datetime(2027, 3, 2, 1), cost=Decimal(5)))  # naive: UTC, as everywhere
    assert [(r.ts, r.cost) for r in ledger.rows(since=day)] == [
        (dt.datetime(2027, 3, 2, 1, tzinfo=dt.UTC), Decimal(5)),
        (dt.datetime(2027, 3, 2, 2, tzinfo=dt.UTC), Decimal(3)),
    ]
    assert [r.cost for r in ledger.rows(until=day)] == [Decimal(4)]
    budget = Charge(name="b", limit=Decimal(100), period="day", start=period_start("day", day), amount=Decimal(0))
    assert ledger.budget_usage(budget, now=day + dt.timedelta(hours=3)) == (Decimal(8), Decimal(0))


def _fill(ledger: Ledger) -> None:
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
def test_report_group_by(ledger: Ledger, group_by: str, expected: dict[str, tuple]) -> None:
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


def test_report_token_sums(ledger: Ledger) -> None:
    _fill(ledger)
    rows = {r.key: r for r in ledger.report("provider").rows}
    assert (rows["openai"].input_tokens, rows["openai"].output_tokens) == (20, 10)
    assert (rows["together"].input_tokens, rows["together"].output_tokens) == (20, 10)


def test_report_total_is_exact(ledger: Ledger) -> None:
    for _ in range(10):
        ledger.record(_row(cost=Decimal("0.1")))
    assert ledger.report().total == Decimal("1.0")


def test_report_window(ledger: Ledger) -> None:
    _fill(ledger)
    rep = ledger.report("day", since=T0 + dt.timedelta(hours=1))
    assert [r.key for r in rep.rows] == ["2026-03-02"]
    assert rep.total == Decimal("0.30")


def test_invalid_group_by(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="group_by must be one of"):
        ledger.report("colour")  # type: ignore[arg-type]


def test_empty_report(ledger: Ledger) -> None:
    rep = ledger.report()
    assert rep.rows == []
    assert rep.total == Decimal(0)
    assert rep.unpriced == 0


def test_to_csv_round_trip(ledger: Ledger, tmp_path: Path) -> None:
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


def test_to_json_round_trip(ledger: Ledger, tmp_path: Path) -> None:
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


def test_wal_mode(sqlite_ledger: SQLiteLedger, tmp_path: Path) -> None:
    ledger = sqlite_ledger
    ledger.record(_row())
    con = sqlite3.connect(tmp_path / "l.db")
    try:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert con.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        con.close()


def test_concurrent_writes_from_threads(ledger: Ledger) -> None:
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


def test_two_ledgers_on_one_store(ledger_url: str) -> None:
    """Two connections (as two processes would have) share one ledger."""
    a = open_ledger(ledger_url)
    b = open_ledger(ledger_url)
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


def test_once_key_writes_a_row_at_most_once_across_connections(ledger_url: str) -> None:
    """A finished job reported by two processes (two connections here) is one row; plain rows are unaffected."""
    a = open_ledger(ledger_url)
    b = open_ledger(ledger_url)
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


# ============================================================================================= batches, buffering


def test_record_many_commits_all_rows(ledger: Ledger) -> None:
    ledger.record_many([_row(request_id=f"r{i}", cost=Decimal(f"0.{i}1")) for i in range(5)])
    assert [r.request_id for r in ledger.rows()] == [f"r{i}" for i in range(5)]
    assert ledger.report().total == sum((Decimal(f"0.{i}1") for i in range(5)), Decimal(0))


def test_reserved_round_trips(ledger: Ledger) -> None:
    ledger.record(_row(cost=None, outcome="error", reserved=Decimal("0.000123")))
    [back] = ledger.rows()
    assert back.reserved == Decimal("0.000123")
    assert back.as_dict()["reserved"] == "0.000123"


def test_buffered_ledger_rows_are_read_after_a_flush(ledger_url: str) -> None:
    lg = open_ledger(ledger_url, buffered=True)
    try:
        for i in range(300):
            lg.record(_row(request_id=f"b{i}"))
        # rows() flushes first: every row recorded before it is there.
        assert [r.request_id for r in lg.rows()] == [f"b{i}" for i in range(300)]
        lg.record(_row(request_id="last"))
        other = open_ledger(ledger_url)  # another connection sees it once flushed
        try:
            lg.flush()
            assert other.rows()[-1].request_id == "last"
        finally:
            other.close()
    finally:
        lg.close()


def test_buffered_ledger_close_writes_everything_and_then_writes_through(ledger_url: str) -> None:
    lg = open_ledger(ledger_url, buffered=True)
    for i in range(50):
        lg.record(_row(request_id=f"c{i}"))
    lg.close()
    lg.record  # noqa: B018  (still usable as an object)
    other = open_ledger(ledger_url)
    try:
        assert len(other.rows()) == 50
    finally:
        other.close()


@pytest.mark.parametrize(("how", "n"), [
    ("lg.record(row())", 2000),
    ("lg.defer(lambda: (time.sleep(0.001), lg.record(row())))", 500),  # jobs still queued, each recording a row
], ids=["rows", "deferred-jobs"])
def test_buffered_writes_are_flushed_at_interpreter_exit(tmp_path: Path, how: str, n: int) -> None:
    """A script that records (or defers the bookkeeping that records) and exits normally, with no close and no
    flush, loses no row."""
    import subprocess
    import sys

    db = tmp_path / "exit.db"
    code = (
        "import datetime as dt, time\n"
        "from decimal import Decimal\n"
        "from computekit.ledger import LedgerRow, open_ledger\n"
        f"lg = open_ledger('sqlite:///{db}', buffered=True)\n"
        "row = lambda: LedgerRow(ts=dt.datetime.now(dt.UTC), verb='complete', provider='p', model='m',"
        " outcome='success', latency_ms=1.0, cost=Decimal('0.001'))\n"
        f"for i in range({n}):\n"
        f"    {how}\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    lg = SQLiteLedger(db)
    try:
        assert len(lg.rows()) == n
        assert lg.report().total == Decimal("0.001") * n
    finally:
        lg.close()


# ============================================================================================= many processes


def test_four_processes_times_fifty_rows(ledger_url: str) -> None:
    """4 processes x 50 rows, each row its own transaction, started together: every row present, total exact."""
    from _ledger_workers import in_processes, row_cost, write_rows

    open_ledger(ledger_url).close()  # the schema exists before the race (the race itself is tested below)
    assert in_processes(write_rows, [(ledger_url, w, 50) for w in range(4)]) == [50] * 4
    lg = open_ledger(ledger_url)
    try:
        rows = lg.rows()
        assert len(rows) == 200
        assert {r.request_id for r in rows} == {f"w{w}-{j}" for w in range(4) for j in range(50)}
        expected = sum((row_cost(w, j) for w in range(4) for j in range(50)), Decimal(0))
        assert lg.report().total == expected
        assert sum(r.cost for r in rows if r.cost is not None) == expected
    finally:
        lg.close()


def test_processes_opening_a_new_ledger_together_migrate_once(ledger_url: str) -> None:
    from _ledger_workers import in_processes, write_rows

    assert in_processes(write_rows, [(ledger_url, w, 5) for w in range(4)], together=False) == [5] * 4
    lg = open_ledger(ledger_url)
    try:
        assert len(lg.rows()) == 20
    finally:
        lg.close()


class _BusyConnection:
    """A connection whose ``PRAGMA journal_mode`` fails ``busy`` times with ``code``, then succeeds."""

    def __init__(self, busy: int, code: int = sqlite3.SQLITE_BUSY) -> None:
        self.busy, self.code, self.asks = busy, code, 0

    def execute(self, sql: str) -> None:
        assert sql == "PRAGMA journal_mode = WAL"
        self.asks += 1
        if self.asks <= self.busy:
            e = sqlite3.OperationalError("database is locked")
            e.sqlite_errorcode = self.code
            raise e


class _Clock:
    def __init__(self) -> None:
        self.now, self.pauses = 0.0, []  # type: ignore[var-annotated]

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.pauses.append(s)
        self.now += s


def test_a_file_busy_while_another_process_switches_it_to_wal_is_asked_again_until_the_busy_timeout() -> None:
    """SQLite can answer the switch to WAL with SQLITE_BUSY within milliseconds, busy timeout or not, while another
    process opening the same new ledger switches it: the ask is repeated (a growing pause, no real sleep here)
    until the busy timeout; any other error is raised at once."""
    from computekit.ledger._sqlite import _WAL_RETRY_MAX_S, _WAL_RETRY_S, BUSY_TIMEOUT_MS, _use_wal

    clock = _Clock()
    conn = _BusyConnection(busy=3)
    _use_wal(conn, clock=clock, sleep=clock.sleep)  # type: ignore[arg-type]
    assert conn.asks == 4
    assert clock.pauses == [_WAL_RETRY_S, 2 * _WAL_RETRY_S, 4 * _WAL_RETRY_S]

    # SQLITE_BUSY_RECOVERY and the other extended codes of SQLITE_BUSY are busy too
    clock, conn = _Clock(), _BusyConnection(busy=1, code=sqlite3.SQLITE_BUSY | (1 << 8))
    _use_wal(conn, clock=clock, sleep=clock.sleep)  # type: ignore[arg-type]
    assert conn.asks == 2

    clock, conn = _Clock(), _BusyConnection(busy=10**6)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        _use_wal(conn, clock=clock, sleep=clock.sleep)  # type: ignore[arg-type]
    assert clock.now <= BUSY_TIMEOUT_MS / 1000 < clock.now + _WAL_RETRY_MAX_S + 1e-9
    assert max(clock.pauses) == _WAL_RETRY_MAX_S

    clock, conn = _Clock(), _BusyConnection(busy=1, code=sqlite3.SQLITE_IOERR)
    with pytest.raises(sqlite3.OperationalError):
        _use_wal(conn, clock=clock, sleep=clock.sleep)  # type: ignore[arg-type]
    assert conn.asks == 1
    assert clock.pauses == []


# ============================================================================================= durability


def test_a_writer_killed_mid_batch_loses_no_committed_row(ledger_url: str) -> None:
    """SIGKILL while a writer commits batch after batch: the ledger opens cleanly, every batch it reported
    committed is there whole, and no batch is there in part."""
    import multiprocessing as mp
    import os
    import signal

    from _ledger_workers import write_batches_until_killed

    open_ledger(ledger_url).close()
    batch = 100
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=write_batches_until_killed, args=(ledger_url, batch, child))
    proc.start()
    committed = 0
    try:
        while committed < 5 * batch:  # several batches in, and the next one under way
            assert parent.poll(60), "the writer reported nothing"
            committed = parent.recv()
    finally:
        assert proc.pid is not None
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(30)
    assert proc.exitcode == -signal.SIGKILL
    lg = open_ledger(ledger_url)
    try:
        rows = lg.rows()
        assert len(rows) >= committed
        assert len(rows) % batch == 0  # a batch is one transaction: whole or absent
        assert {r.request_id for r in rows} >= {f"w1-{j}" for j in range(committed)}
        lg.record(_row(request_id="after"))  # and it takes writes
        assert lg.rows()[-1].request_id == "after" or any(r.request_id == "after" for r in lg.rows())
    finally:
        lg.close()
    if ledger_url.startswith("sqlite:///"):
        con = sqlite3.connect(path_from_url(ledger_url))
        try:
            assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        finally:
            con.close()


def test_a_process_killed_with_rows_queued_keeps_its_committed_rows(ledger_url: str) -> None:
    """Rows a buffered writer had not committed yet die with the process; the committed ones do not."""
    import multiprocessing as mp
    import signal

    from _ledger_workers import kill_self_mid_batch

    open_ledger(ledger_url).close()
    ctx = mp.get_context("spawn")
    proc = ctx.Process(target=kill_self_mid_batch, args=(ledger_url, 120, 5000))
    proc.start()
    proc.join(60)
    assert proc.exitcode == -signal.SIGKILL
    lg = open_ledger(ledger_url)
    try:
        ids = [r.request_id for r in lg.rows()]
        assert {f"w2-{j}" for j in range(120)} <= set(ids)
        assert len([i for i in ids if i and i.startswith("w2-")]) == 120
    finally:
        lg.close()


def test_a_deferred_job_runs_on_the_writer_and_its_rows_are_written_in_order(ledger_url: str) -> None:
    """A job queued with defer() runs on the writer thread; flush() waits for it and the rows it records."""
    lg = open_ledger(ledger_url, buffered=True)
    ran_on: list[int] = []

    def job(i: int) -> None:
        ran_on.append(threading.get_ident())
        lg.record(_row(request_id=f"job{i}"))

    try:
        lg.record(_row(request_id="before"))
        assert all(lg.defer(lambda i=i: job(i)) for i in range(3))  # type: ignore[misc]
        lg.record(_row(request_id="after"))
        lg.flush()
        ids = [r.request_id for r in lg.rows()]
        assert sorted(ids) == sorted(["before", "job0", "job1", "job2", "after"])
        assert len(ran_on) == 3
        assert threading.get_ident() not in ran_on
    finally:
        lg.close()


def test_a_ledger_that_writes_at_once_does_not_defer(tmp_path: Path) -> None:
    """Unbuffered (as under a budget), closed, or without a writer: defer() says no, the caller runs the job."""
    unbuffered = SQLiteLedger(tmp_path / "u.db", buffered=False)
    buffered = SQLiteLedger(tmp_path / "b.db", buffered=True)
    buffered.close()
    try:
        assert not unbuffered.defer(lambda: None)
        assert not buffered.defer(lambda: None)
        assert not NullLedger().defer(lambda: None)
    finally:
        unbuffered.close()


def test_a_failing_deferred_job_does_not_stop_the_writer(ledger_url: str, caplog: pytest.LogCaptureFixture) -> None:
    lg = open_ledger(ledger_url, buffered=True)

    def broken() -> None:
        lg.record(_row(request_id="recorded before it failed"))
        raise RuntimeError("boom")

    try:
        assert lg.defer(broken)
        lg.record(_row(request_id="next"))
        lg.flush()
        assert {r.request_id for r in lg.rows()} == {"recorded before it failed", "next"}
        assert "deferred bookkeeping step failed" in caplog.text
    finally:
        lg.close()


def test_a_forked_child_writes_through(tmp_path: Path) -> None:
    """A child forked after the writer thread started has no writer: its rows are written at once, not lost."""
    import os

    lg = SQLiteLedger(tmp_path / "fork.db", buffered=True)
    lg.record(_row(request_id="parent"))
    lg.flush()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            child = SQLiteLedger(tmp_path / "fork.db", buffered=True)
            child._writer = lg._writer  # the parent's writer, whose thread does not exist here
            child.record(_row(request_id="child"))
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    try:
        assert {r.request_id for r in lg.rows()} == {"parent", "child"}
    finally:
        lg.close()


def test_rows_recorded_together_reach_the_writer_together_and_in_order() -> None:
    """record_many hands its rows to the writer in one go: one transaction, in order, with the rows put around."""
    from computekit.ledger._buffered import BatchWriter

    writes: list[list[str | None]] = []
    writer = BatchWriter(lambda rows: writes.append([r.request_id for r in rows]), flush_interval=60,
                         flush_on_sigterm=False)
    try:
        assert writer.put(_row(request_id="a"))
        assert writer.put_many([_row(request_id=f"m{i}") for i in range(3)])
        assert writer.put(_row(request_id="z"))
        writer.flush()  # cuts the 60 s wait short
    finally:
        writer.close()
    assert writes == [["a", "m0", "m1", "m2", "z"]]
    assert not writer.put_many([_row()])  # closed: the caller writes them itself


def test_a_full_queue_makes_record_wait_for_the_writer_and_loses_nothing() -> None:
    from computekit.ledger._buffered import BatchWriter

    gate, writing, written = threading.Event(), threading.Event(), []

    def slow(rows: list[LedgerRow]) -> None:
        writing.set()
        gate.wait()  # the disk is slow: the writer holds its batch (of 1 or 2 rows)
        written.extend(r.request_id for r in rows)

    writer = BatchWriter(slow, max_queue=4, max_batch=2, flush_interval=0, flush_on_sigterm=False)
    producer = threading.Thread(target=lambda: [writer.put(_row(request_id=f"r{i}")) for i in range(20)])
    try:
        producer.start()
        # Only once the writer holds its batch does the queue stop shrinking: a queue seen full before that can
        # lose a batch to the writer at any moment, however long a loaded machine takes to schedule it.
        assert writing.wait(10)
        while len(writer._items) < 4 and producer.is_alive():  # 4 more fill the queue
            producer.join(0.001)
        producer.join(0.05)
        assert producer.is_alive()  # waiting for room, not queueing without bound
        assert len(writer._items) == 4
        gate.set()
        producer.join()
        writer.flush()
    finally:
        gate.set()
        writer.close()
    assert written == [f"r{i}" for i in range(20)]


def test_a_flush_by_a_job_on_the_writer_does_not_wait_for_itself(ledger_url: str) -> None:
    lg = open_ledger(ledger_url, buffered=True)
    try:
        assert lg.defer(lambda: (lg.record(_row(request_id="job")), lg.flush()))  # type: ignore[func-returns-value]
        waiter = threading.Thread(target=lg.flush, daemon=True)
        waiter.start()
        waiter.join(30)
        assert not waiter.is_alive(), "the writer waited for itself"
        assert [r.request_id for r in lg.rows()] == ["job"]
    finally:
        lg.close()


def test_a_flush_while_many_threads_record_sees_every_row_recorded_before_it(tmp_path: Path) -> None:
    lg = SQLiteLedger(tmp_path / "l.db", buffered=True)
    before = threading.Barrier(5)

    def record(t: int) -> None:
        for i in range(50):
            lg.record(_row(request_id=f"t{t}-{i}"))
        before.wait()  # every thread's rows are recorded before the flush starts
        for i in range(50, 100):
            lg.record(_row(request_id=f"t{t}-{i}"))

    threads = [threading.Thread(target=record, args=(t,)) for t in range(4)]
    try:
        for th in threads:
            th.start()
        before.wait()
        lg.flush()
        with lg._lock:  # read the store itself: rows() would flush again
            ids = {r[0] for r in lg._conn.execute("SELECT request_id FROM attempts")}
        for th in threads:
            th.join()
        assert {f"t{t}-{i}" for t in range(4) for i in range(50)} <= ids
        assert len(lg.rows()) == 400
    finally:
        lg.close()
