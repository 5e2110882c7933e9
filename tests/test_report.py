"""Reports (``computekit.ledger._report``): group-bys including ``tag:NAME`` and UTC days, periods, the calls
view, and CSV / JSON / pandas exports that keep every decimal exact and never turn an unknown cost into 0."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from computekit.ledger import Calls, Ledger, LedgerRow, NullLedger, Report, SQLiteLedger
from computekit.ledger._report import UNTAGGED, build_report

MIDNIGHT = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
TINY = Decimal("0.000000000000000000123456789")  # far below a float's precision next to the others


def _row(ts: dt.datetime, provider: str = "openai", cost: Decimal | None = Decimal("0.10"), **kw: object) -> LedgerRow:
    base: dict[str, object] = {"ts": ts, "verb": "complete", "provider": provider, "model": f"{provider}-m",
                               "outcome": "success", "latency_ms": 5.0, "input_tokens": 10, "output_tokens": 2,
                               "cost": cost}
    base.update(kw)
    return LedgerRow(**base)  # type: ignore[arg-type]


ROWS = [
    _row(MIDNIGHT - dt.timedelta(microseconds=1), tags={"customer": "acme", "feature": "search"}),
    _row(MIDNIGHT, provider="anthropic", cost=Decimal("0.30"), tags={"customer": "acme"}),
    _row(MIDNIGHT + dt.timedelta(hours=1), provider="anthropic", cost=None, tags={"customer": "globex"}),
    _row(MIDNIGHT + dt.timedelta(hours=2), cost=TINY, tags={"feature": "search"}),
    _row(MIDNIGHT + dt.timedelta(hours=3), outcome="error", cost=Decimal(0), input_tokens=0, output_tokens=0,
         error_type="RateLimitError", status=429, tags={"customer": "globex"}),
]
TOTAL = Decimal("0.40") + TINY


class ListLedger(Ledger):
    """The smallest backend: reports must work on any backend from ``rows()`` alone."""

    def __init__(self) -> None:
        self.kept: list[LedgerRow] = []

    def record(self, row: LedgerRow) -> None:
        self.kept.append(row)

    def rows(self, *, since: dt.datetime | None = None, until: dt.datetime | None = None) -> list[LedgerRow]:
        return sorted((r for r in self.kept if (since is None or r.ts >= since) and (until is None or r.ts < until)),
                      key=lambda r: r.ts)


@pytest.fixture(params=["sqlite", "list"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Ledger:
    lg: Ledger = SQLiteLedger(tmp_path / "l.db") if request.param == "sqlite" else ListLedger()
    for row in ROWS:
        lg.record(row)
    yield lg  # type: ignore[misc]
    lg.close()


def _groups(rep: Report) -> dict[str, tuple[int, int, Decimal, int]]:
    return {r.key: (r.calls, r.errors, r.cost, r.unpriced) for r in rep.rows}


# --------------------------------------------------------------------------------------------- group by


def test_group_by_tag(ledger: Ledger) -> None:
    rep = ledger.report(by="tag:customer")
    assert rep.group_by == "tag:customer"
    assert _groups(rep) == {
        "acme": (2, 0, Decimal("0.40"), 0),
        "globex": (2, 1, Decimal(0), 1),  # the unpriced call is counted apart, the free 429 costs 0
        UNTAGGED: (1, 0, TINY, 0),
    }
    assert rep.total == TOTAL
    assert rep.unpriced == 1


def test_group_by_another_tag_of_the_same_rows(ledger: Ledger) -> None:
    rep = ledger.report(by="tag:feature")
    assert _groups(rep) == {"search": (2, 0, Decimal("0.10") + TINY, 0), UNTAGGED: (3, 1, Decimal("0.30"), 1)}
    assert rep.total == TOTAL  # the same money, however it is grouped


def test_a_tag_value_stored_as_a_number_groups_as_its_text() -> None:
    rows = [_row(MIDNIGHT, tags={"n": 7}), _row(MIDNIGHT, tags={"n": "7"}), _row(MIDNIGHT)]  # type: ignore[dict-item]
    assert {r.key: r.calls for r in build_report(rows, "tag:n").rows} == {"7": 2, UNTAGGED: 1}


def test_day_is_the_utc_day_across_midnight(ledger: Ledger) -> None:
    rep = ledger.report(by="day")
    assert [r.key for r in rep.rows] == ["2026-03-01", "2026-03-02"]  # oldest first
    assert _groups(rep) == {"2026-03-01": (1, 0, Decimal("0.10"), 0), "2026-03-02": (4, 1, Decimal("0.30") + TINY, 1)}


def test_day_of_a_time_recorded_with_another_offset_is_its_utc_day() -> None:
    plus5 = dt.timezone(dt.timedelta(hours=5))
    rows = [_row(dt.datetime(2026, 3, 2, 3, 0, tzinfo=plus5)),    # 2026-03-01 22:00 UTC
            _row(dt.datetime(2026, 3, 1, 20, 0, tzinfo=dt.timezone(dt.timedelta(hours=-5))))]  # 03-02 01:00 UTC
    assert [r.key for r in build_report(rows, "day").rows] == ["2026-03-01", "2026-03-02"]


@pytest.mark.parametrize(
    ("by", "expected"),
    [
        ("provider", {"openai": 3, "anthropic": 2}),
        ("model", {"openai-m": 3, "anthropic-m": 2}),
        ("target", {"openai:openai-m": 3, "anthropic:anthropic-m": 2}),
        ("verb", {"complete": 5}),
        ("outcome", {"success": 4, "error": 1}),
    ],
)
def test_builtin_group_bys(ledger: Ledger, by: str, expected: dict[str, int]) -> None:
    rep = ledger.report(by)
    assert {r.key: r.calls for r in rep.rows} == expected
    assert rep.total == TOTAL
    assert sum(r.cost for r in rep.rows) == rep.total


def test_group_by_keyword_of_0_1_still_works(ledger: Ledger) -> None:
    assert ledger.report(group_by="tag:customer") == ledger.report(by="tag:customer")
    with pytest.raises(ValueError, match="not both"):
        ledger.report(by="model", group_by="day")


@pytest.mark.parametrize("by", ["tag:", "tag", "colour", "Provider", ""])
def test_invalid_group_by_names_the_choices(ledger: Ledger, by: str) -> None:
    with pytest.raises(ValueError, match=r"group_by must be one of provider, model, .*, outcome or tag:NAME"):
        ledger.report(by)


# --------------------------------------------------------------------------------------------- periods


def test_since_is_included_until_is_not(ledger: Ledger) -> None:
    rep = ledger.report("provider", since=MIDNIGHT, until=MIDNIGHT + dt.timedelta(hours=2))
    assert rep.calls == 2
    assert rep.total == Decimal("0.30")
    assert rep.unpriced == 1
    assert (rep.since, rep.until) == (MIDNIGHT, MIDNIGHT + dt.timedelta(hours=2))


def test_period_in_another_offset_or_naive_is_taken_in_utc(ledger: Ledger) -> None:
    plus2 = dt.timezone(dt.timedelta(hours=2))
    # 02:00+02:00 is midnight UTC: the same period as above, though its text sorts differently.
    rep = ledger.report("provider", since=dt.datetime(2026, 3, 2, 2, 0, tzinfo=plus2),
                        until=dt.datetime(2026, 3, 2, 2, 0))  # naive: UTC
    assert rep.calls == 2
    assert rep.since == MIDNIGHT
    assert rep.since.tzinfo is dt.UTC  # type: ignore[union-attr]
    assert ledger.calls(since=dt.datetime(2026, 3, 2, 2, 0, tzinfo=plus2)).rows == ledger.rows(since=MIDNIGHT)


def test_an_empty_period_is_an_empty_report(ledger: Ledger) -> None:
    rep = ledger.report("day", since=MIDNIGHT + dt.timedelta(days=5))
    assert (rep.rows, rep.total, rep.unpriced, rep.calls) == ([], Decimal(0), 0, 0)


# --------------------------------------------------------------------------------------------- exports


def test_report_json_round_trips_exactly(ledger: Ledger, tmp_path: Path) -> None:
    rep = ledger.report("tag:customer", since=MIDNIGHT - dt.timedelta(days=1))
    text = rep.to_json(tmp_path / "r.json")
    assert (tmp_path / "r.json").read_text("utf-8") == text
    data = json.loads(text)
    assert all(isinstance(r["cost"], str) for r in data["rows"])  # never a float
    assert data["since"] == (MIDNIGHT - dt.timedelta(days=1)).isoformat()
    back = Report.from_json(text)
    assert back == rep
    assert back.total == TOTAL
    assert str(back.total) == str(TOTAL)


def test_report_csv_round_trips_exactly(ledger: Ledger) -> None:
    rep = ledger.report("tag:feature")
    lines = list(csv.reader(io.StringIO(rep.to_csv())))
    assert lines[0] == ["tag:feature", "calls", "errors", "input_tokens", "output_tokens", "cost", "unpriced"]
    body, total = lines[1:-1], lines[-1]
    assert [(b[0], int(b[1]), int(b[2]), int(b[3]), int(b[4]), Decimal(b[5]), int(b[6])) for b in body] == [
        (r.key, r.calls, r.errors, r.input_tokens, r.output_tokens, r.cost, r.unpriced) for r in rep.rows]
    assert total[0] == "TOTAL"
    assert Decimal(total[5]) == TOTAL
    assert sum(Decimal(b[5]) for b in body) == Decimal(total[5])


def test_calls_view_lists_each_attempt(ledger: Ledger) -> None:
    calls = ledger.calls()
    assert isinstance(calls, Calls)
    assert len(calls) == len(ROWS)
    assert [r.ts for r in calls.rows] == [r.ts for r in ROWS]
    assert calls.total == TOTAL
    assert calls.unpriced == 1
    assert calls.report("tag:customer") == ledger.report("tag:customer")
    window = ledger.calls(since=MIDNIGHT, until=MIDNIGHT + dt.timedelta(hours=1))
    assert [r.provider for r in window.rows] == ["anthropic"]


def test_calls_json_round_trips_exactly(ledger: Ledger, tmp_path: Path) -> None:
    calls = ledger.calls()
    data = json.loads(calls.to_json(tmp_path / "c.json"))
    assert Decimal(data["total"]) == TOTAL
    assert data["unpriced"] == 1
    assert [r["cost"] for r in data["calls"]] == ["0.10", "0.30", None, format(TINY, "f"), "0"]  # null: not 0
    assert [r["tags"] for r in data["calls"]] == [r.tags for r in ROWS]
    assert [dt.datetime.fromisoformat(r["ts"]) for r in data["calls"]] == [r.ts for r in ROWS]
    assert data["calls"][4]["error_type"] == "RateLimitError"
    assert data["calls"][4]["status"] == 429


def test_calls_csv_round_trips_exactly(ledger: Ledger) -> None:
    rows = list(csv.DictReader(io.StringIO(ledger.calls().to_csv())))
    assert list(rows[0]) == list(Calls.COLUMNS)
    assert [r["cost"] for r in rows] == ["0.10", "0.30", "", format(TINY, "f"), "0"]  # unknown: an empty cell
    assert sum(Decimal(r["cost"]) for r in rows if r["cost"]) == TOTAL
    assert [json.loads(r["tags"]) for r in rows] == [r.tags for r in ROWS]
    assert [r["estimated"] for r in rows] == ["false"] * 5


def test_report_to_dataframe(ledger: Ledger) -> None:
    import pandas as pd  # in the test extra: this test runs in CI

    rep = ledger.report("tag:customer")
    df = rep.to_dataframe()
    assert isinstance(df, pd.DataFrame)
    assert list(df.columns) == ["tag:customer", "calls", "errors", "input_tokens", "output_tokens", "cost", "unpriced"]
    assert list(df["tag:customer"]) == [r.key for r in rep.rows]
    assert all(isinstance(c, Decimal) for c in df["cost"])
    assert sum(df["cost"], Decimal(0)) == TOTAL  # exact: Decimal objects, not floats
    assert list(df["unpriced"]) == [r.unpriced for r in rep.rows]


def test_calls_to_dataframe(ledger: Ledger) -> None:
    import pandas as pd

    df = ledger.calls().to_dataframe()
    assert len(df) == len(ROWS)
    assert list(df.columns) == list(Calls.COLUMNS)
    assert isinstance(df["ts"].dtype, pd.DatetimeTZDtype)
    assert str(df["ts"].dt.tz) == "UTC"
    assert list(df["ts"]) == [pd.Timestamp(r.ts) for r in ROWS]
    assert list(df["cost"]) == [r.cost for r in ROWS]
    assert df["cost"][2] is None  # unknown stays unknown, not NaN or 0
    assert df["cost"].dropna().sum() == TOTAL
    assert df.groupby("provider")["input_tokens"].sum().to_dict() == {"anthropic": 20, "openai": 20}


def test_dataframe_without_pandas_names_the_extra(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # as if not installed
    with pytest.raises(ImportError, match=r"computekit\[pandas\]"):
        ledger.report().to_dataframe()
    with pytest.raises(ImportError, match=r"computekit\[pandas\]"):
        ledger.calls().to_dataframe()


def test_null_ledger_has_empty_reports_and_calls() -> None:
    lg = NullLedger()
    assert lg.report("tag:x").rows == []
    assert len(lg.calls()) == 0
    assert lg.calls().total == Decimal(0)


HOSTILE = ['=HYPERLINK("http://evil.example","click")', "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx", 'a,"b"\nc', "plain"]
"""Text a user can put in a tag, a model id or a request id that a spreadsheet would run as a formula (OWASP's
CSV injection), or that breaks a naive CSV line."""


def _hostile_ledger(url: str) -> Ledger:
    from computekit.ledger import open_ledger

    lg = open_ledger(url)
    lg.record_many([_row(MIDNIGHT + dt.timedelta(seconds=i), model=v, request_id=v, tags={"customer": v})
                    for i, v in enumerate(HOSTILE)])
    return lg


def _as_text(value: str) -> str:
    """What a CSV text cell must hold for ``value``: a leading ``'`` when a spreadsheet would run it."""
    return "'" + value if value.startswith(("=", "+", "-", "@", "\t", "\r")) else value


def test_report_csv_never_opens_a_text_cell_as_a_formula(ledger_url: str) -> None:
    lg = _hostile_ledger(ledger_url)
    try:
        for by in ("tag:customer", "model"):
            rep = lg.report(by)
            lines = list(csv.reader(io.StringIO(rep.to_csv(), newline="")))
            body = lines[1:-1]
            assert len(body) == len(HOSTILE)  # one line per group: a CR inside a value does not split it
            assert sorted(b[0] for b in body) == sorted(_as_text(v) for v in HOSTILE)
            assert Decimal(lines[-1][5]) == rep.total == sum((b.cost for b in rep.rows), Decimal(0))
    finally:
        lg.close()


def test_calls_csv_never_opens_a_text_cell_as_a_formula(ledger_url: str) -> None:
    lg = _hostile_ledger(ledger_url)
    try:
        rows = list(csv.DictReader(io.StringIO(lg.calls().to_csv(), newline="")))
        assert len(rows) == len(HOSTILE)
        assert [r["model"] for r in rows] == [_as_text(v) for v in HOSTILE]
        assert [r["request_id"] for r in rows] == [_as_text(v) for v in HOSTILE]
        assert [json.loads(r["tags"])["customer"] for r in rows] == HOSTILE  # a JSON object: opens as text as is
        # the JSON export keeps the values as they are
        assert [c["model"] for c in json.loads(lg.calls().to_json())["calls"]] == HOSTILE
    finally:
        lg.close()


def test_a_period_holds_the_rows_of_any_offset_recorded_in_it(ledger_url: str) -> None:
    from computekit.ledger import open_ledger

    lg = open_ledger(ledger_url)
    plus5 = dt.timezone(dt.timedelta(hours=5))
    try:
        lg.record_many([
            _row(MIDNIGHT.replace(tzinfo=None), model="naive-midnight"),  # naive: UTC, in the period
            _row(MIDNIGHT.astimezone(plus5) - dt.timedelta(hours=1), model="before"),  # 23:00 UTC the day before
            _row(MIDNIGHT.astimezone(plus5) + dt.timedelta(hours=23), model="last-hour"),
        ])
        day = {"since": MIDNIGHT, "until": MIDNIGHT + dt.timedelta(days=1)}
        assert [r.model for r in lg.rows(**day)] == ["naive-midnight", "last-hour"]
        assert {r.key: r.calls for r in lg.report("day").rows} == {"2026-03-01": 1, MIDNIGHT.date().isoformat(): 2}
        assert lg.report("model", **day) == lg.calls(**day).report("model")
    finally:
        lg.close()


def test_a_period_that_ends_before_it_starts_is_refused(ledger_url: str) -> None:
    from computekit import InvalidRequestError
    from computekit.ledger import open_ledger

    lg = open_ledger(ledger_url)
    try:
        later = MIDNIGHT + dt.timedelta(days=1)
        for read in (lg.rows, lg.calls, lg.report):
            with pytest.raises(InvalidRequestError, match=r"since .* is after until .*swap them"):
                read(since=later, until=MIDNIGHT)
        assert lg.report(since=MIDNIGHT, until=MIDNIGHT).rows == []  # empty, but not swapped
    finally:
        lg.close()


def _varied_rows() -> list[LedgerRow]:
    plus5 = dt.timezone(dt.timedelta(hours=5))
    rows = list(ROWS)
    rows += [
        _row(MIDNIGHT.astimezone(plus5) - dt.timedelta(microseconds=1), model="m'1", cost=Decimal("1E-7"),
             tags={'we"ird.name': "x", "customer": "ACME"}),
        _row(MIDNIGHT.replace(tzinfo=None) + dt.timedelta(days=1), verb="embed", cost=None, outcome="error",
             tags={'we"ird.name': "y", "customer": "acme"}),
        _row(MIDNIGHT + dt.timedelta(days=2, seconds=1), provider="groq", cost=Decimal("0.10"), tags={"customer": ""}),
    ]
    return rows


@pytest.mark.parametrize("by", ["provider", "model", "target", "verb", "day", "outcome", "tag:customer",
                                'tag:we"ird.name', "tag:absent"])
def test_a_store_sums_its_report_as_python_would_from_its_rows(ledger_url: str, by: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from computekit.ledger import open_ledger

    lg = open_ledger(ledger_url)
    try:
        lg.record_many(_varied_rows())
        for since, until in [(None, None), (MIDNIGHT, None), (MIDNIGHT, MIDNIGHT + dt.timedelta(days=1)),
                             (None, MIDNIGHT + dt.timedelta(days=2, seconds=1))]:
            expected = build_report(lg.rows(since=since, until=until), by, since=since, until=until)
            with monkeypatch.context() as m:  # summed by the store: no row is read into Python
                m.setattr(type(lg), "rows", lambda *a, **k: pytest.fail("report() read every row"))
                got = lg.report(by, since=since, until=until)
            assert got == expected
            assert got.total == sum((r.cost for r in got.rows), Decimal(0))
            assert all("E" not in str(r.cost) for r in got.rows)  # 0.0000001, never 1E-7
    finally:
        lg.close()


def test_a_summed_cost_prints_plainly(ledger: Ledger) -> None:
    ledger.record(_row(MIDNIGHT + dt.timedelta(days=5), provider="tiny", cost=Decimal("0.0000001")))
    row = next(r for r in ledger.report().rows if r.key == "tiny")
    assert str(row.cost) == "0.0000001"  # a plain Decimal sum would print 1E-7
