"""Budgets: the ledger's reserve and settle on both backends (atomic across threads and processes), the worst case
of each kind of request, and enforcement through the public API against a loopback server (nothing is sent when a
budget refuses). The 50-concurrent-calls race is fault case 24, in ``tests/faults/test_budget_faults.py``.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import warnings
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from _support import Chunks, WatchedLedger, chat_chunks, make_client, sse, stream_response, usage_json

import computekit as ck
from computekit import _budget, _costs
from computekit._budget import FALLBACK_OUTPUT_TOKENS, Reservation, worst_case
from computekit.adapters._base import CompleteRequest, EmbedRequest, PredictRequest, RerankRequest
from computekit.ledger import Charge, Ledger, LedgerRow, open_ledger
from computekit.ledger._budgets import counted, period_start

NOW = dt.datetime(2026, 3, 4, 15, 30, tzinfo=dt.UTC)  # a Wednesday
DAY = period_start("day", NOW)
KEY = "sk-budget-0123456789abcdef"


def charge(amount: str | None, limit: str = "1", **kw: Any) -> Charge:
    base: dict[str, Any] = {"name": "default", "limit": Decimal(limit), "period": "day", "start": DAY,
                            "amount": None if amount is None else Decimal(amount), "target": "openai:gpt-4o-mini"}
    base.update(kw)
    return Charge(**base)


def row(cost: str | None, *, ts: dt.datetime = NOW, reserved: str | None = None, **kw: Any) -> LedgerRow:
    base: dict[str, Any] = {"ts": ts, "verb": "complete", "provider": "openai", "model": "gpt-4o-mini",
                            "outcome": "success", "latency_ms": 1.0, "cost": None if cost is None else Decimal(cost),
                            "reserved": None if reserved is None else Decimal(reserved)}
    base.update(kw)
    return LedgerRow(**base)


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[Ledger]:
    lg = open_ledger(ledger_url)
    yield lg
    lg.close()


# ============================================================================================= periods


@pytest.mark.parametrize(
    ("period", "start"),
    [
        ("day", dt.datetime(2026, 3, 4, tzinfo=dt.UTC)),
        ("week", dt.datetime(2026, 3, 2, tzinfo=dt.UTC)),  # the Monday
        ("month", dt.datetime(2026, 3, 1, tzinfo=dt.UTC)),
        ("total", dt.datetime(1970, 1, 1, tzinfo=dt.UTC)),
    ],
)
def test_period_start(period: str, start: dt.datetime) -> None:
    assert period_start(period, NOW) == start
    # Periods are UTC: 01:00 in UTC+2 is still the previous UTC day.
    local = dt.datetime(2026, 3, 5, 1, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert period_start("day", local) == dt.datetime(2026, 3, 4, tzinfo=dt.UTC)


def test_counted_uses_the_reservation_only_when_the_cost_is_unknown() -> None:
    assert counted(Decimal("0.2"), Decimal("0.5")) == Decimal("0.2")
    assert counted(None, Decimal("0.5")) == Decimal("0.5")
    assert counted(None, None) == 0


# ============================================================================================= reserve / settle


def test_reservations_fill_the_budget_then_refuse_with_the_figures(ledger: Ledger) -> None:
    ledger.record(row("0.25"))
    ids = [ledger.reserve([charge("0.25")], now=NOW, ttl_s=60) for _ in range(3)]
    assert len(set(ids)) == 3
    with pytest.raises(ck.BudgetExceededError) as info:
        ledger.reserve([charge("0.01")], now=NOW, ttl_s=60)
    e = info.value
    assert (e.budget, e.limit, e.period) == ("default", Decimal("1"), "day")
    assert (e.spent, e.reserved, e.requested) == (Decimal("0.25"), Decimal("0.75"), Decimal("0.01"))
    assert e.remaining == 0
    assert (e.provider, e.model) == ("openai", "gpt-4o-mini")
    assert "nothing was sent" in str(e)
    assert ledger.budget_usage(charge("0"), now=NOW) == (Decimal("0.25"), Decimal("0.75"))


def test_settle_replaces_the_reservation_with_the_row_and_release_frees_it(ledger: Ledger) -> None:
    a = ledger.reserve([charge("0.5")], now=NOW, ttl_s=60)
    b = ledger.reserve([charge("0.5")], now=NOW, ttl_s=60)
    ledger.settle(a, row("0.125", reserved="0.5"))
    assert ledger.budget_usage(charge("0"), now=NOW) == (Decimal("0.125"), Decimal("0.5"))
    ledger.release(b)
    assert ledger.budget_usage(charge("0"), now=NOW) == (Decimal("0.125"), Decimal(0))
    assert ledger.reserve([charge("0.875")], now=NOW, ttl_s=60)  # exactly what is left fits
    with pytest.raises(ck.BudgetExceededError):
        ledger.reserve([charge("0.000001")], now=NOW, ttl_s=60)


def test_an_attempt_of_unknown_cost_counts_what_it_reserved(ledger: Ledger) -> None:
    rid = ledger.reserve([charge("0.4")], now=NOW, ttl_s=60)
    ledger.settle(rid, row(None, outcome="error", error_type="APITimeoutError", reserved="0.4"))
    assert ledger.budget_usage(charge("0"), now=NOW) == (Decimal("0.4"), Decimal(0))
    [r] = ledger.rows()
    assert r.cost is None
    assert r.reserved == Decimal("0.4")


def test_an_unknown_amount_is_refused(ledger: Ledger) -> None:
    with pytest.raises(ck.BudgetExceededError) as info:
        ledger.reserve([charge(None)], now=NOW, ttl_s=60)
    assert info.value.requested is None
    assert "price is unknown" in str(info.value)
    assert "unknown_price = 'allow'" in str(info.value)


def test_a_refusal_reserves_nothing_in_any_budget(ledger: Ledger) -> None:
    roomy, tight = charge("0.5", name="roomy", limit="10"), charge("0.5", name="tight", limit="0.4")
    with pytest.raises(ck.BudgetExceededError) as info:
        ledger.reserve([roomy, tight], now=NOW, ttl_s=60)
    assert info.value.budget == "tight"
    assert ledger.budget_usage(roomy, now=NOW) == (Decimal(0), Decimal(0))


def test_expired_reservations_stop_counting(ledger: Ledger) -> None:
    ledger.reserve([charge("0.9")], now=NOW, ttl_s=60)
    with pytest.raises(ck.BudgetExceededError):
        ledger.reserve([charge("0.2")], now=NOW + dt.timedelta(seconds=59), ttl_s=60)
    ledger.reserve([charge("0.2")], now=NOW + dt.timedelta(seconds=61), ttl_s=60)  # its process died


def test_only_the_current_period_counts(ledger: Ledger) -> None:
    ledger.record(row("0.9", ts=DAY - dt.timedelta(seconds=1)))  # yesterday
    ledger.record(row("0.5", ts=DAY))
    assert ledger.budget_usage(charge("0"), now=NOW)[0] == Decimal("0.5")
    # The next day starts from zero; the running total moves on with it.
    tomorrow = charge("0", start=DAY + dt.timedelta(days=1))
    assert ledger.budget_usage(tomorrow, now=NOW + dt.timedelta(days=1))[0] == 0
    ledger.record(row("0.25", ts=NOW + dt.timedelta(days=1)))
    assert ledger.budget_usage(tomorrow, now=NOW + dt.timedelta(days=1))[0] == Decimal("0.25")
    total = charge("0", period="total", start=period_start("total", NOW))
    assert ledger.budget_usage(total, now=NOW)[0] == Decimal("1.65")


def test_running_totals_follow_rows_from_other_connections(ledger_url: str) -> None:
    a, b = open_ledger(ledger_url), open_ledger(ledger_url)
    try:
        a.record(row("0.1"))
        assert a.budget_usage(charge("0"), now=NOW)[0] == Decimal("0.1")
        b.record(row("0.2"))
        b.record_many([row("0.3"), row(None, reserved="0.05")])
        assert a.budget_usage(charge("0"), now=NOW)[0] == Decimal("0.65")
    finally:
        a.close()
        b.close()


def test_a_row_written_once_counts_once(ledger_url: str) -> None:
    """A finished job's row (``once_key``) reported by two processes: one row, counted once in the total."""
    a, b = open_ledger(ledger_url), open_ledger(ledger_url)
    try:
        assert a.budget_usage(charge("0"), now=NOW) == (0, 0)  # the running total exists from here on
        a.record(row("0.3", once_key="finetune:openai:ftjob-1"))
        b.settle(b.reserve([charge("0.5")], now=NOW, ttl_s=60), row("0.3", once_key="finetune:openai:ftjob-1"))
        assert a.budget_usage(charge("0"), now=NOW) == (Decimal("0.3"), Decimal(0))
        assert len(a.rows()) == 1
    finally:
        a.close()
        b.close()


def test_a_keyed_reservation_is_settled_once_by_whichever_connection_records_the_job(ledger_url: str) -> None:
    """A job's reservation, named by its key once the provider has the job, is found and settled by another
    process (its row carries the amount reserved); the submitter settling it afterwards changes nothing."""
    a, b = open_ledger(ledger_url), open_ledger(ledger_url)
    key = "finetune:openai:ftjob-1"
    try:
        assert b.reservation(key, now=NOW) is None
        a.key_reservation(a.reserve([charge("0.5"), charge("0.5", name="team")], now=NOW, ttl_s=60), key)
        assert b.reservation(key, now=NOW) == Decimal("0.5")
        assert b.reservation(key, now=NOW + dt.timedelta(seconds=60)) is None  # lapsed
        b.settle(key, row("0.3", reserved="0.5", once_key=key))
        a.settle(key, row("0.3", reserved="0.5", once_key=key))  # the submitter sees the end too: a no-op
        assert a.reservation(key, now=NOW) is None
        for budget in ("default", "team"):
            assert a.budget_usage(charge("0", name=budget), now=NOW) == (Decimal("0.3"), Decimal(0))
        assert [r.once_key for r in a.rows()] == [key]
    finally:
        a.close()
        b.close()


def test_parts_of_a_keyed_reservation_settle_once_each_whoever_reads_them(ledger_url: str) -> None:
    """A batch's items settle their share of its reservation: an item another reader recorded first lowers it
    no more, and the reservation keeps what it first reserved for a reader that starts later."""
    a, b = open_ledger(ledger_url), open_ledger(ledger_url)
    key = "batch:openai:batch_1"
    part = Decimal("0.3")

    def item(j: int) -> LedgerRow:
        return row("0.01", reserved=str(part), verb="batch", once_key=f"{key}:q{j}")

    try:
        a.key_reservation(a.reserve([charge("0.9")], now=NOW, ttl_s=60), key)
        b.settle_part(key, item(1), part)
        a.settle_part(key, item(1), part)  # read again by another process: nothing settled twice
        assert a.budget_usage(charge("0"), now=NOW) == (Decimal("0.01"), Decimal("0.6"))
        assert a.reservation(key, now=NOW) == Decimal("0.9")  # what the next reader divides into shares
        a.settle_part(key, item(2), part)
        b.settle_part(key, item(3), part)
        assert b.budget_usage(charge("0"), now=NOW) == (Decimal("0.03"), Decimal(0))
        b.release(key)
        a.release(key)
        assert b.reservation(key, now=NOW) is None
        assert len(a.rows()) == 3
    finally:
        a.close()
        b.close()


def test_processes_reading_one_batch_together_settle_each_item_once(ledger_url: str) -> None:
    """Three processes read the same 40 items of a batch at once and each releases the rest at its end: 40 rows,
    and the reservation is settled item by item and then gone, never lowered twice for one item."""
    from _ledger_workers import in_processes, settle_items

    lg = open_ledger(ledger_url)
    key = "batch:openai:batch_race"
    budget = charge("0.8", limit="5", period="total", start=period_start("total", NOW))  # the workers' rows' dates
    try:
        lg.key_reservation(lg.reserve([budget], now=NOW, ttl_s=3600), key)
        in_processes(settle_items, [(ledger_url, key, 40, "0.01", False)] * 3)
        assert lg.budget_usage(budget, now=NOW) == (Decimal("0.40"), Decimal("0.40"))
        in_processes(settle_items, [(ledger_url, key, 40, "0.01", True)] * 2)
        assert lg.budget_usage(budget, now=NOW) == (Decimal("0.40"), Decimal(0))
        assert len(lg.rows()) == 40
    finally:
        lg.close()


def test_processes_seeing_one_job_end_together_settle_it_once(ledger_url: str) -> None:
    """Four processes see a job end at once and each settles its reservation with the job's row: one row, its
    cost spent, nothing left reserved."""
    from _ledger_workers import in_processes, settle_job

    lg = open_ledger(ledger_url)
    key = "finetune:openai:ftjob-race"
    budget = charge("0.9", limit="5", period="total", start=period_start("total", NOW))
    try:
        lg.key_reservation(lg.reserve([budget], now=NOW, ttl_s=3600), key)
        in_processes(settle_job, [(ledger_url, key, "0.25")] * 4)
        assert lg.budget_usage(budget, now=NOW) == (Decimal("0.25"), Decimal(0))
        assert [r.once_key for r in lg.rows()] == [key]
    finally:
        lg.close()


def test_a_v3_sqlite_ledger_keeps_its_reservations_and_can_key_them(tmp_path: Path) -> None:
    """A ledger file written by the previous schema (v3: reservations without what they first reserved) opens,
    is migrated in place, and its reservations still count and can be named, found and settled."""
    import sqlite3

    from computekit.ledger import _sqlite

    p = tmp_path / "v3.db"
    con = sqlite3.connect(p)
    con.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for v in (1, 2, 3):  # the schema as the previous version created it
        con.executescript(_sqlite._MIGRATIONS[v])
        con.execute("INSERT INTO schema_version (version) VALUES (?)", (v,))
    con.execute("INSERT INTO reservations (id, budget, amount, expires) VALUES (?, ?, ?, ?)",
                ("old-rid", charge("0").key, "0.4", (NOW + dt.timedelta(hours=1)).isoformat()))
    con.commit()
    con.close()
    lg = _sqlite.SQLiteLedger(p)
    try:
        assert lg.budget_usage(charge("0"), now=NOW) == (Decimal(0), Decimal("0.4"))
        lg.key_reservation("old-rid", "batch:openai:b1")
        assert lg.reservation("batch:openai:b1", now=NOW) == Decimal("0.4")  # what is left stands in
        lg.settle_part("batch:openai:b1", row("0.1", reserved="0.2", once_key="i1"), Decimal("0.2"))
        assert lg.budget_usage(charge("0"), now=NOW) == (Decimal("0.1"), Decimal("0.2"))
        lg.release("batch:openai:b1")
        assert lg.budget_usage(charge("0"), now=NOW) == (Decimal("0.1"), Decimal(0))
        assert sqlite3.connect(p).execute("SELECT MAX(version) FROM schema_version").fetchone() == (4,)
    finally:
        lg.close()


def test_writers_and_reservations_racing_keep_the_total_exact(ledger_url: str) -> None:
    """Threads on three connections record rows (some in batches) and reserve + settle, while the first
    reservation creates the budget's running total: at the end it equals the sum of the rows."""
    ledgers = [open_ledger(ledger_url) for _ in range(3)]
    barrier = threading.Barrier(6)
    errors: list[BaseException] = []
    roomy = charge("0.001", limit="1000")

    def writer(i: int) -> None:
        barrier.wait()
        for n in range(20):
            if n % 5 == 0:
                ledgers[i % 3].record_many([row("0.002"), row(None, reserved="0.003")])
            else:
                ledgers[i % 3].record(row("0.001"))

    def reserver(i: int) -> None:
        barrier.wait()
        for _ in range(20):
            rid = ledgers[i % 3].reserve([roomy], now=NOW, ttl_s=60)
            ledgers[i % 3].settle(rid, row("0.0005", reserved="0.001"))

    def guarded(fn: Any, i: int) -> None:
        try:
            fn(i)
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=guarded, args=(writer if i % 2 else reserver, i)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        rows_ = ledgers[0].rows()
        assert len(rows_) == 3 * 20 + 3 * 4 + 3 * 20
        expected = sum((counted(r.cost, r.reserved) for r in rows_), Decimal(0))
        for lg in ledgers:
            assert lg.budget_usage(roomy, now=NOW) == (expected, Decimal(0))
    finally:
        for lg in ledgers:
            lg.close()


def test_postgres_reads_the_running_total_not_the_rows(postgres_url: str) -> None:
    """Once a budget's total exists, reserve and settle read and update it (O(1)); the rows are summed again
    only for a new period. A row inserted behind the ledger's back shows it."""
    import psycopg

    lg = open_ledger(postgres_url)
    try:
        lg.settle(lg.reserve([charge("0.5")], now=NOW, ttl_s=60), row("0.25", reserved="0.5"))
        with psycopg.connect(postgres_url, autocommit=True) as c:
            c.execute("INSERT INTO computekit_attempts (ts, verb, provider, model, outcome, latency_ms, cost) "
                      "VALUES (%s, 'complete', 'openai', 'gpt-4o-mini', 'success', 1, 0.125)", (NOW,))
            [(total,)] = c.execute("SELECT spent FROM computekit_budget_totals").fetchall()
        assert total == Decimal("0.25")
        assert lg.budget_usage(charge("0"), now=NOW)[0] == Decimal("0.25")  # the total, not a sum
        week = charge("0", period="week", start=period_start("week", NOW))  # a new budget: summed from the rows
        assert lg.budget_usage(week, now=NOW)[0] == Decimal("0.375")
    finally:
        lg.close()


def test_postgres_v1_ledger_is_migrated_and_its_rows_counted(postgres_url: str) -> None:
    import psycopg

    lg = open_ledger(postgres_url)
    lg.record(row("0.25"))
    lg.close()
    with psycopg.connect(postgres_url, autocommit=True) as c:  # back to schema v1, as computekit 0.1 left it
        c.execute("DROP TABLE computekit_budget_totals")
        c.execute("DROP INDEX computekit_reservations_expires")
        c.execute("ALTER TABLE computekit_reservations DROP COLUMN reserved")
        c.execute("DELETE FROM computekit_schema_version WHERE version > 1")
    lg = open_ledger(postgres_url)
    try:
        assert lg.budget_usage(charge("0"), now=NOW)[0] == Decimal("0.25")
        lg.settle(lg.reserve([charge("0.5")], now=NOW, ttl_s=60), row("0.5", reserved="0.5"))
        assert lg.budget_usage(charge("0"), now=NOW) == (Decimal("0.75"), Decimal(0))
        with psycopg.connect(postgres_url) as c:
            assert c.execute("SELECT MAX(version) FROM computekit_schema_version").fetchone() == (3,)
    finally:
        lg.close()


@pytest.mark.parametrize(
    ("scope", "counted_ids"),
    [
        ({"provider": "openai"}, {"a", "b", "t"}),
        ({"model": "gpt-4o-mini"}, {"a", "c", "t"}),  # a model name on any provider
        ({"model": "openai:gpt-4o-mini"}, {"a", "t"}),
        ({"tags": (("team", "search"),)}, {"t"}),
        ({"provider": "openai", "tags": (("team", "ads"),)}, set()),
    ],
)
def test_scopes_count_only_their_calls(ledger: Ledger, scope: dict[str, Any], counted_ids: set[str]) -> None:
    costs = {"a": "0.001", "b": "0.01", "c": "0.1", "t": "1"}
    ledger.record(row(costs["a"], request_id="a"))
    ledger.record(row(costs["b"], request_id="b", model="gpt-4o"))
    ledger.record(row(costs["c"], request_id="c", provider="azure"))
    ledger.record(row(costs["t"], request_id="t", tags={"team": "search", "customer": "acme"}))
    spent, _ = ledger.budget_usage(charge("0", limit="100", **scope), now=NOW)
    assert spent == sum((Decimal(costs[i]) for i in counted_ids), Decimal(0))


def test_a_budget_is_keyed_by_its_scope_not_its_limit() -> None:
    assert charge("1", limit="5").key == charge("2", limit="7").key
    assert charge("1").key != charge("1", provider="openai").key
    assert charge("1").key != charge("1", period="week").key
    assert charge("1").key != charge("1", name="other").key


def test_threads_race_for_the_last_reservations(ledger_url: str) -> None:
    """16 threads on two connections (as two processes would have) ask for 0.1 each of a 1.0 budget: 10 get it."""
    ledgers = [open_ledger(ledger_url), open_ledger(ledger_url)]
    barrier = threading.Barrier(16)
    got: list[str] = []
    refused: list[ck.BudgetExceededError] = []
    lock = threading.Lock()

    def work(i: int) -> None:
        barrier.wait()
        try:
            rid = ledgers[i % 2].reserve([charge("0.1")], now=NOW, ttl_s=60)
        except ck.BudgetExceededError as e:
            with lock:
                refused.append(e)
        else:
            with lock:
                got.append(rid)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert (len(got), len(refused)) == (10, 6)
        assert ledgers[0].budget_usage(charge("0"), now=NOW) == (Decimal(0), Decimal("1.0"))
    finally:
        for lg in ledgers:
            lg.close()


def test_processes_race_for_the_last_reservations(ledger_url: str) -> None:
    """4 processes x 8 reservations of 0.1 against 1.0: exactly 10 in all."""
    from _ledger_workers import in_processes, reserve_many

    open_ledger(ledger_url).close()
    assert sum(in_processes(reserve_many, [(ledger_url, 8, "0.1", "1.0")] * 4)) == 10


def test_a_ledger_that_cannot_enforce_budgets_says_so() -> None:
    from computekit.ledger import NullLedger

    with pytest.raises(ck.ConfigError, match="cannot enforce budgets"):
        NullLedger().reserve([charge("0.1")], now=NOW, ttl_s=60)
    with pytest.raises(ck.ConfigError, match="cannot enforce budgets"):
        NullLedger().key_reservation("rid", "batch:openai:b1")
    assert NullLedger().reservation("batch:openai:b1", now=NOW) is None  # it holds none: nothing to settle


# ============================================================================================= worst cases


def _core(**settings: Any) -> Any:
    from computekit._core import Core

    return Core(None, ledger="none", **settings)


def _rates(core: Any, target: Any) -> Any:
    return core.prices.rates(target.adapter.price_ref(target.model))


def _bytes(messages: list[dict[str, Any]]) -> int:
    return len(json.dumps([messages], ensure_ascii=False).encode())


def test_worst_case_of_a_completion_is_its_prompt_bound_plus_max_tokens() -> None:
    core = _core()
    [t] = core.targets("openai:gpt-4o-mini")
    msgs = [{"role": "user", "content": "héllo"}]
    rates = _rates(core, t)
    expected = (Decimal(_bytes(msgs)) * rates.rate("input_mtok", 0) + 100 * rates.rate("output_mtok", 0)) / 10**6
    assert worst_case(core, t, CompleteRequest(model=t.model, messages=msgs, max_tokens=100)) == expected


def test_without_max_tokens_a_completion_reserves_the_configured_maximum_then_the_context_window() -> None:
    msgs = [{"role": "user", "content": "hi"}]
    core = _core(providers={"openai": {"max_output_tokens": {"gpt-4o-mini": 16384}}})
    [t] = core.targets("openai:gpt-4o-mini")
    rates = _rates(core, t)
    req = CompleteRequest(model=t.model, messages=msgs)
    out = rates.rate("output_mtok", 0)
    base = Decimal(_bytes(msgs)) * rates.rate("input_mtok", 0)
    assert worst_case(core, t, req) == (base + 16384 * out) / 10**6
    plain = _core()
    window = _costs.context_window(plain.prices, t)
    assert window
    assert window > 16384
    assert worst_case(plain, plain.targets("openai:gpt-4o-mini")[0], req) == (base + window * out) / 10**6


def test_without_a_context_window_the_fallback_output_is_reserved() -> None:
    core = _core(prices={"acme:m": {"input_mtok": "1", "output_mtok": "2"}},
                 providers={"acme": {"adapter": "openai-compatible", "base_url": "http://127.0.0.1:9/v1"}})
    [t] = core.targets("acme:m")
    msgs = [{"role": "user", "content": "hi"}]
    expected = (Decimal(_bytes(msgs)) * 1 + FALLBACK_OUTPUT_TOKENS * 2) / Decimal(10**6)
    assert worst_case(core, t, CompleteRequest(model="m", messages=msgs)) == expected


def test_the_highest_input_side_rate_is_reserved() -> None:
    """A cache write can cost more than plain input (Anthropic: 1.25x): the worst case pays it."""
    core = _core(prices={"acme:m": {"input_mtok": "1", "cache_write_mtok": "1.25", "output_mtok": "2"}},
                 providers={"acme": {"adapter": "openai-compatible", "base_url": "http://127.0.0.1:9/v1"}})
    [t] = core.targets("acme:m")
    msgs = [{"role": "user", "content": "hi"}]
    expected = (Decimal(_bytes(msgs)) * Decimal("1.25") + 10 * 2) / Decimal(10**6)
    assert worst_case(core, t, CompleteRequest(model="m", messages=msgs, max_tokens=10)) == expected


def test_worst_case_unknown_or_free() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ck.UnknownPriceWarning)
        core = _core(providers={"acme": {"adapter": "openai-compatible", "base_url": "http://127.0.0.1:9/v1"}})
        msgs = [{"role": "user", "content": "hi"}]
        [unknown] = core.targets("acme:mystery")
        assert worst_case(core, unknown, CompleteRequest(model="mystery", messages=msgs, max_tokens=5)) is None
        [local] = core.targets("vllm:my-model")  # a self-hosted server: its price is known, nothing
        assert worst_case(core, local, CompleteRequest(model="my-model", messages=msgs, max_tokens=5)) == 0
        [cohere] = core.targets("cohere:rerank-v3.5")
        assert worst_case(core, cohere, RerankRequest(model="rerank-v3.5", query="q", documents=["d"])) is None


def test_worst_case_of_embeddings() -> None:
    core = _core()
    [t] = core.targets("openai:text-embedding-3-small")
    inputs = ["a", "bb"]
    expected = Decimal(len(json.dumps([inputs]).encode())) * _rates(core, t).rate("input_mtok", 0) / 10**6
    assert worst_case(core, t, EmbedRequest(model=t.model, inputs=inputs)) == expected


def test_worst_case_of_a_prediction_needs_max_seconds_or_max_units() -> None:
    hardware = "gpu-a100-large"
    plain = _core()
    [t] = plain.targets("replicate:owner/model")
    req = PredictRequest(model="owner/model", input={}, hardware=hardware)
    assert worst_case(plain, t, req) is None
    core = _core(providers={"replicate": {"max_seconds": 30}})
    [t] = core.targets("replicate:owner/model")
    per_second = core.prices.per_second("replicate", hardware)
    assert per_second is not None
    assert worst_case(core, t, req) == 30 * per_second[0]


def test_a_request_can_bring_its_own_worst_case() -> None:
    """The hook a fine-tuning request uses: ``worst_case_cost(prices)``."""
    core = _core()
    [t] = core.targets("openai:gpt-4o-mini")

    class Job:
        def worst_case_cost(self, prices: Any) -> Decimal:
            assert prices is core.prices
            return Decimal("12.5")

    assert worst_case(core, t, Job()) == Decimal("12.5")


# ============================================================================================= through the client


def _answer(prompt_tokens: int, completion_tokens: int, model: str = "gpt-4o-mini-2024-07-18") -> dict[str, Any]:
    return {
        "id": "chatcmpl-b", "object": "chat.completion", "created": 1_700_000_000, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


class Server:
    """A loopback OpenAI-compatible server: answers chat completions, counts hits (or fails on demand)."""

    def __init__(self, status: int = 200, body: dict[str, Any] | None = None, delay: float = 0.0) -> None:
        import http.server

        self.hits = 0
        self.status = status
        self.body = body or _answer(12, 5)
        self.delay = delay
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", 0)))
                outer.hits += 1
                if outer.delay:
                    import time

                    time.sleep(outer.delay)
                data = json.dumps(outer.body if outer.status < 400 else
                                  {"error": {"message": "boom", "type": "server_error"}}).encode()
                self.send_response(outer.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server()
    yield srv
    srv.close()


def _client(is_async: bool, url: str, ledger_url: str, budget: dict[str, Any] | None = None, **settings: Any) -> Any:
    cls = ck.AsyncClient if is_async else ck.Client
    providers = settings.pop("providers", {})
    providers.setdefault("openai", {})
    providers["openai"] = {"base_url": url, "api_key": KEY, **providers["openai"]}
    if budget is not None:
        settings["budget"] = budget
    return cls(config=None, ledger=ledger_url, providers=providers, retry={"max_retries": 0}, **settings)


async def _call(client: Any, *args: Any, **kwargs: Any) -> Any:
    out = client.complete(*args, **kwargs)
    return await out if isinstance(client, ck.AsyncClient) else out


def _reservation(client: Any, model: str = "openai:gpt-4o-mini", max_tokens: int = 5) -> Decimal:
    core = client._core
    [t] = core.targets(model)
    req = core.complete_request(t, [{"role": "user", "content": "hi"}], {"max_tokens": max_tokens}, stream=False)
    r = worst_case(core, t, req)
    assert r is not None
    return r


both = pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])


@both
async def test_a_call_that_does_not_fit_is_refused_before_any_http(server: Server, ledger_url: str,
                                                                   is_async: bool) -> None:
    client = _client(is_async, server.url, ledger_url, {"limit_usd": "0.000001"})
    with pytest.raises(ck.BudgetExceededError) as info:
        await _call(client, "openai:gpt-4o-mini", "hi", max_tokens=5)
    assert server.hits == 0
    assert info.value.requested == _reservation(client)
    assert info.value.limit == Decimal("0.000001")
    assert client.ledger.rows() == []
    client.ledger.close()


@both
async def test_a_call_settles_to_its_actual_cost(server: Server, ledger_url: str, is_async: bool) -> None:
    client = _client(is_async, server.url, ledger_url, {"limit_usd": "1"})
    r = await _call(client, "openai:gpt-4o-mini", "hi", max_tokens=5)
    assert server.hits == 1
    [row_] = client.ledger.rows()
    assert row_.cost == r.cost.total
    assert row_.reserved == _reservation(client)
    assert r.cost.total < row_.reserved
    ch = charge("0", start=period_start("day", ck_now()))
    assert client.ledger.budget_usage(ch, now=ck_now()) == (r.cost.total, Decimal(0))
    client.ledger.close()


def ck_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@both
async def test_an_error_that_is_not_billed_frees_its_reservation(ledger_url: str, is_async: bool) -> None:
    srv = Server(status=500)
    try:
        client = _client(is_async, srv.url, ledger_url, {"limit_usd": "1"})
        with pytest.raises(ck.ServerError):
            await _call(client, "openai:gpt-4o-mini", "hi", max_tokens=5)
        [row_] = client.ledger.rows()
        assert (row_.outcome, row_.cost) == ("error", Decimal(0))
        assert client.ledger.budget_usage(charge("0", start=period_start("day", ck_now())), now=ck_now()) == (0, 0)
        client.ledger.close()
    finally:
        srv.close()


@both
async def test_a_timeout_keeps_its_worst_case_counted(ledger_url: str, is_async: bool) -> None:
    """A timed-out request may have been billed: its row's cost is unknown, and the budget counts its
    reservation."""
    srv = Server(delay=1.0)
    try:
        client = _client(is_async, srv.url, ledger_url, {"limit_usd": "1"},
                         providers={"openai": {"timeout": 0.2}})
        with pytest.raises(ck.APITimeoutError):
            await _call(client, "openai:gpt-4o-mini", "hi", max_tokens=5)
        [row_] = client.ledger.rows()
        assert row_.cost is None
        assert row_.reserved == _reservation(client)
        spent, reserved = client.ledger.budget_usage(charge("0", start=period_start("day", ck_now())), now=ck_now())
        assert (spent, reserved) == (_reservation(client), 0)
        client.ledger.close()
    finally:
        srv.close()


@both
async def test_an_unknown_price_is_refused_by_default_and_allowed_on_request(server: Server, ledger_url: str,
                                                                             is_async: bool) -> None:
    providers = {"acme": {"adapter": "openai-compatible", "base_url": server.url, "api_key": KEY}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ck.UnknownPriceWarning)
        strict = _client(is_async, server.url, ledger_url, {"limit_usd": "100"}, providers=dict(providers))
        with pytest.raises(ck.BudgetExceededError, match="price is unknown"):
            await _call(strict, "acme:mystery", "hi", max_tokens=5)
        assert server.hits == 0
        strict.ledger.close()
        lax = _client(is_async, server.url, ledger_url, {"limit_usd": "100", "unknown_price": "allow"},
                      providers=dict(providers))
        r = await _call(lax, "acme:mystery", "hi", max_tokens=5)
        assert server.hits == 1
        assert r.cost.total is None
        lax.ledger.close()


@both
async def test_a_scoped_budget_leaves_other_calls_alone(server: Server, ledger_url: str, is_async: bool) -> None:
    client = _client(is_async, server.url, ledger_url, None,
                     budgets={"acme": {"limit_usd": "0.000001", "tags": {"customer": "acme"}}})
    await _call(client, "openai:gpt-4o-mini", "hi", max_tokens=5, tags={"customer": "globex"})
    with pytest.raises(ck.BudgetExceededError) as info:
        await _call(client, "openai:gpt-4o-mini", "hi", max_tokens=5, tags={"customer": "acme"})
    assert info.value.budget == "acme"
    assert server.hits == 1
    client.ledger.close()


@both
async def test_the_tightest_of_several_budgets_refuses(server: Server, ledger_url: str, is_async: bool) -> None:
    r = _reservation(_client(is_async, server.url, "sqlite://:memory:", None))
    client = _client(is_async, server.url, ledger_url, {"limit_usd": "10"},
                     budgets={"openai-daily": {"limit_usd": str(r * 2), "provider": "openai"},
                              "monthly": {"limit_usd": "100", "period": "month"}})
    await _call(client, "openai:gpt-4o-mini", "hi", max_tokens=5)
    await _call(client, "openai:gpt-4o-mini", "hi", max_tokens=5)  # settled below its worst case: fits again
    srv_hits = server.hits
    big = _reservation(client, max_tokens=10_000)
    with pytest.raises(ck.BudgetExceededError) as info:
        await _call(client, "openai:gpt-4o-mini", "hi", max_tokens=10_000)
    assert info.value.budget == "openai-daily"
    assert info.value.requested == big
    assert server.hits == srv_hits
    client.ledger.close()


@both
async def test_a_refused_target_falls_back_to_a_cheaper_one_without_sending(server: Server, ledger_url: str,
                                                                           is_async: bool) -> None:
    """The expensive target's worst case does not fit; the next target's does, and it answers. The refused target
    gets no request and is not cooled down."""
    backup = Server(body=_answer(12, 5, model="gpt-4o-mini"))
    try:
        providers = {"backup": {"adapter": "openai-compatible", "base_url": backup.url, "api_key": KEY}}
        probe = _client(is_async, server.url, "sqlite://:memory:", None)
        expensive, cheap = _reservation(probe, "openai:gpt-4o", 1000), _reservation(probe, "openai:gpt-4o-mini", 1000)
        assert cheap < expensive
        prices = {"backup:gpt-4o-mini": {k: str(v) for k, v in _rates(probe._core, probe._core.targets(
            "openai:gpt-4o-mini")[0]).prices.items()}}
        client = _client(is_async, server.url, ledger_url, {"limit_usd": str(cheap)}, providers=providers,
                         prices=prices)
        r = await _call(client, ["openai:gpt-4o", "backup:gpt-4o-mini"], "hi", max_tokens=1000)
        assert r.provider == "backup"
        assert (server.hits, backup.hits) == (0, 1)
        assert [a.provider for a in r.attempts] == ["backup"]
        assert not client._core.router.cooling(client._core.targets("openai:gpt-4o")[0])
        # Nothing fits any more: every target refused -> the first refusal, typed.
        client2 = _client(is_async, server.url, ledger_url, {"limit_usd": "0.0000001"}, providers=providers,
                          prices=prices)
        with pytest.raises(ck.BudgetExceededError) as info:
            await _call(client2, ["openai:gpt-4o", "backup:gpt-4o-mini"], "hi", max_tokens=1000)
        assert info.value.model == "gpt-4o"
        assert (server.hits, backup.hits) == (0, 1)
        client.ledger.close()
        client2.ledger.close()
    finally:
        backup.close()


def test_a_budget_needs_a_ledger() -> None:
    with pytest.raises(ck.ConfigError, match="a budget needs a ledger"):
        ck.Client(config=None, ledger="none", budget={"limit_usd": "1"})


def test_budget_config_forms(tmp_path: Path) -> None:
    p = tmp_path / "computekit.toml"
    p.write_text(
        '[budget]\nlimit_usd = "5.00"\nperiod = "week"\n\n'
        '[budgets.acme]\nlimit_usd = "1"\ntags = { customer = "acme" }\nunknown_price = "allow"\n\n'
        '[budgets.gpt4o]\nlimit_usd = "20"\nperiod = "month"\nmodel = "openai:gpt-4o"\n'
    )
    s = ck.Client(config=p).settings
    active = s.active_budgets()
    assert list(active) == ["default", "acme", "gpt4o"]
    assert (active["default"].limit_usd, active["default"].period) == (Decimal("5.00"), "week")
    assert active["acme"].tags == {"customer": "acme"}
    assert active["acme"].unknown_price == "allow"
    assert active["default"].unknown_price == "refuse"
    assert active["gpt4o"].model == "openai:gpt-4o"
    assert ck.Client(config=None, ledger="none").settings.active_budgets() == {}


# ============================================================================================= async, remote ledger


@pytest.mark.parametrize("remote", [False, True], ids=["embedded", "remote"])
async def test_async_reservations_leave_the_event_loop_only_for_a_remote_ledger(server: Server, tmp_path: Path,
                                                                                remote: bool) -> None:
    watched = WatchedLedger(tmp_path / "w.db", remote=remote)
    client = ck.AsyncClient(config=None, ledger=watched.ledger, budget={"limit_usd": "1"}, retry={"max_retries": 0},
                            providers={"openai": {"base_url": server.url, "api_key": KEY}})
    loop_thread = threading.current_thread()
    r = await client.complete("openai:gpt-4o-mini", "hi", max_tokens=5)
    assert [name for name, _ in watched.threads] == ["reserve", "settle"]
    off_loop = [t is not loop_thread for _, t in watched.threads]
    assert off_loop == [remote, remote]
    assert client.ledger.budget_usage(charge("0", start=period_start("day", ck_now())), now=ck_now()) == (
        r.cost.total, Decimal(0))
    await client.aclose()
    watched.ledger.close()


async def test_an_async_call_canceled_while_reserving_off_the_loop_releases_its_reservation(
        server: Server, tmp_path: Path) -> None:
    import asyncio

    watched = WatchedLedger(tmp_path / "w.db", remote=True)
    watched.go.clear()  # reserve() waits in its worker thread until told
    client = ck.AsyncClient(config=None, ledger=watched.ledger, budget={"limit_usd": "1"}, retry={"max_retries": 0},
                            providers={"openai": {"base_url": server.url, "api_key": KEY}})
    task = asyncio.ensure_future(client.complete("openai:gpt-4o-mini", "hi", max_tokens=5))
    assert await asyncio.to_thread(watched.entered.wait, 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    watched.go.set()  # the reservation is made after all: it must not outlive the canceled call
    day = charge("0", start=period_start("day", ck_now()))
    for _ in range(200):
        if [n for n, _ in watched.threads] == ["reserve", "release"]:
            break
        await asyncio.sleep(0.01)
    assert [n for n, _ in watched.threads] == ["reserve", "release"]
    assert client.ledger.budget_usage(day, now=ck_now()) == (Decimal(0), Decimal(0))
    assert server.hits == 0
    await client.aclose()
    watched.ledger.close()


@pytest.mark.parametrize("remote", [False, True], ids=["embedded", "remote"])
async def test_an_async_stream_closed_early_or_cut_settles_off_the_event_loop_only_for_a_remote_ledger(
        tmp_path: Path, remote: bool) -> None:
    from _support import Server as MockServer

    watched = WatchedLedger(tmp_path / "w.db", remote=remote)
    body = sse(*chat_chunks(["a", "b", "c"], usage=usage_json(3, 3)))
    cut = httpx.Response(200, headers={"content-type": "text/event-stream"},
                         stream=Chunks([body[:60]], fail=httpx.ReadError("connection reset")))
    mock = MockServer([stream_response(body, split=5), cut])
    client = make_client(mock, is_async=True, ledger=watched.ledger, budget={"limit_usd": "1"})
    loop_thread = threading.current_thread()
    async with client.stream("openai:gpt-4o-mini", "hi", max_tokens=5) as s:
        async for _ in s:
            break  # closed by the caller: a billed attempt, its row settles the reservation

    async def read_to_the_end() -> None:
        async with client.stream("openai:gpt-4o-mini", "hi", max_tokens=5) as s:
            async for _ in s:
                pass

    with pytest.raises(ck.APIConnectionError):
        await read_to_the_end()  # cut mid-stream: a failed attempt, its row settles the reservation
    assert watched.steps() == ["reserve", "settle", "reserve", "settle"]
    assert watched.off(loop_thread) == [remote] * 4
    assert [r.outcome for r in client.ledger.rows()] == ["canceled", "error"]
    assert client.ledger.budget_usage(charge("0", start=period_start("day", ck_now())), now=ck_now())[1] == 0
    await client.aclose()
    watched.ledger.close()


# ============================================================================================= every kind of input
# An image by URL is a few dozen bytes and can cost tens of thousands of tokens: the worst case asks the adapter for
# its published per-item rule (else the model's context window), never the request's size alone.

IMAGE = {"type": "image_url", "image_url": {"url": "https://images.example/cat.png", "detail": "high"}}
LOOK = [{"role": "user", "content": [{"type": "text", "text": "What is in this image?"}, IMAGE]}]
# OpenAI's published example: one 1024x1024 high-detail image on gpt-4o-mini is 2,833 + 4 x 5,667 tokens.
GPT_4O_MINI_1024_HIGH = 25_501


def _input_tokens(core: Any, model: str, messages: list[dict[str, Any]], **options: Any) -> int | None:
    [t] = core.targets(model)
    req = core.complete_request(t, messages, {"max_tokens": 1, **options}, stream=False)
    return t.adapter.input_bound(req, _costs.context_window(core.prices, t))


def test_an_image_is_bounded_by_the_providers_published_rule_not_its_bytes() -> None:
    core = _core()
    # the same request with the image's place left empty: its text, by its size
    text_only = _input_tokens(core, "openai:gpt-4o-mini", [
        {"role": "user", "content": [{"type": "text", "text": "What is in this image?"}, None]}])
    high = _input_tokens(core, "openai:gpt-4o-mini", LOOK)
    assert text_only is not None
    assert high is not None
    assert high - text_only >= GPT_4O_MINI_1024_HIGH
    assert high - text_only == 2833 + 8 * 5667  # the most tiles a high-detail image can have: 2 x 4
    low = [{"role": "user", "content": [{"type": "image_url", "url": "https://images.example/cat.png",
                                         "detail": "low"}]}]
    low_tokens = _input_tokens(core, "openai:gpt-4o-mini-2024-07-18", low)
    assert low_tokens is not None
    assert low_tokens >= 2833
    assert _input_tokens(core, "openai:gpt-4o", LOOK) == _input_tokens(core, "openai:gpt-4o", [
        {"role": "user", "content": [{"type": "text", "text": "What is in this image?"}, None]}]) + 85 + 8 * 170
    [t] = core.targets("openai:gpt-4o-mini")
    rates = _rates(core, t)
    req = core.complete_request(t, LOOK, {"max_tokens": 10}, stream=False)
    assert worst_case(core, t, req) == (Decimal(high) * rates.rate("input_mtok", high)
                                        + 10 * rates.rate("output_mtok", high)) / 10**6


@pytest.mark.parametrize("part", [
    {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
    {"type": "file", "file": {"file_id": "file-abc"}},
    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
], ids=["audio", "file", "inline-image-on-an-unruled-model"])
def test_media_without_a_published_rule_counts_the_context_window(part: dict[str, Any]) -> None:
    core = _core(prices={"acme:vision-1": {"input_mtok": "1", "output_mtok": "1"}},
                 providers={"acme": {"adapter": "openai-compatible", "base_url": "https://acme.example/v1"}})
    [t] = core.targets("openai:gpt-4o-mini")
    window = _costs.context_window(core.prices, t)
    assert window
    messages = [{"role": "user", "content": [{"type": "text", "text": "hi"}, part]}]
    if part["type"] != "image_url":  # OpenAI publishes no per-item rule for audio or files
        assert _input_tokens(core, "openai:gpt-4o-mini", messages) == window
    # a host with no rule and no known window: the worst case is unknown (refused under unknown_price = "refuse")
    assert _input_tokens(core, "acme:vision-1", messages) is None
    [acme] = core.targets("acme:vision-1")
    assert worst_case(core, acme, core.complete_request(acme, messages, {"max_tokens": 1}, stream=False)) is None


def test_anthropic_images_tools_and_server_loops_follow_its_published_rules() -> None:
    from computekit.adapters.anthropic import IMAGE_MAX_TOKENS, SERVER_LOOP_MAX_ITERATIONS, TOOL_PROMPT_MAX_TOKENS

    core = _core()
    model = "anthropic:claude-sonnet-4-5"
    hi = [{"role": "user", "content": "hi"}]
    plain = _input_tokens(core, model, hi)
    assert plain is not None
    image = _input_tokens(core, model, [{"role": "user", "content": [{"type": "text", "text": "hi"}, IMAGE]}])
    assert image is not None
    assert image >= IMAGE_MAX_TOKENS >= 1568 * 1568 // 750
    # Opus 4.7 reads images up to 2576px on the long edge; a model with no published rule counts its window
    opus = _input_tokens(core, "anthropic:claude-opus-4-7", [{"role": "user", "content": [IMAGE]}])
    assert opus is not None
    assert opus >= 2576 * 2576 // 750
    [newer] = core.targets("anthropic:claude-opus-5")
    assert _input_tokens(core, "anthropic:claude-opus-5", [{"role": "user", "content": [IMAGE]}]) == \
        _costs.context_window(core.prices, newer)
    tool = {"name": "f", "description": "", "parameters": {"type": "object"}}
    with_tool = _input_tokens(core, model, hi, tools=[tool])
    assert with_tool is not None
    assert with_tool - plain >= TOOL_PROMPT_MAX_TOKENS
    search = _input_tokens(core, model, hi, tools=[{"type": "web_search_20250305", "name": "web_search"}])
    assert search is not None
    assert search >= SERVER_LOOP_MAX_ITERATIONS * plain
    pdf = {"type": "document", "source": {"type": "url", "url": "https://docs.example/a.pdf"}}
    [t] = core.targets(model)
    assert _input_tokens(core, model, [{"role": "user", "content": [pdf]}]) == _costs.context_window(core.prices, t)


class ImageServer(Server):
    """The loopback server, answering every call with the usage OpenAI reports for one 1024x1024 high-detail image
    on gpt-4o-mini (plus the text), a little slowly, so that calls overlap."""

    def __init__(self) -> None:
        super().__init__(body=_answer(GPT_4O_MINI_1024_HIGH + 14, 10), delay=0.05)


@both
async def test_concurrent_image_calls_never_spend_past_the_limit(ledger_url: str, is_async: bool) -> None:
    """16 concurrent image calls (threads with their own clients, or one async client) against a budget that
    holds a few: the spend recorded never exceeds the limit, on SQLite and PostgreSQL. Bounded by bytes, every
    call fit and the 16 spent several times the limit."""
    import asyncio

    srv = ImageServer()
    limit = Decimal("0.02")
    budget = {"limit_usd": str(limit), "period": "total"}
    outcomes: list[str] = []
    lock = threading.Lock()
    try:
        if is_async:
            client = _client(True, srv.url, ledger_url, budget)

            async def one() -> None:
                try:
                    await client.complete("openai:gpt-4o-mini", messages=LOOK, max_tokens=10)
                    outcome = "ok"
                except ck.BudgetExceededError:
                    outcome = "refused"
                outcomes.append(outcome)

            await asyncio.gather(*(one() for _ in range(16)))
            rows = client.ledger.rows()
            await client.aclose()
        else:
            barrier = threading.Barrier(8)
            clients = [_client(False, srv.url, ledger_url, budget) for _ in range(8)]

            def work(c: Any) -> None:
                barrier.wait()
                for _ in range(2):
                    try:
                        c.complete("openai:gpt-4o-mini", messages=LOOK, max_tokens=10)
                        outcome = "ok"
                    except ck.BudgetExceededError:
                        outcome = "refused"
                    with lock:
                        outcomes.append(outcome)

            threads = [threading.Thread(target=work, args=(c,)) for c in clients]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            rows = clients[0].ledger.rows()
            for c in clients:
                c.close()
    finally:
        srv.close()
    spent = sum((r.cost for r in rows if r.cost is not None), Decimal(0))
    one_call = rows[0].cost
    assert one_call is not None
    assert one_call * 16 > 2 * limit, "sixteen such calls would overspend the budget"
    assert spent <= limit
    assert outcomes.count("ok") == srv.hits == len(rows) >= 1
    assert outcomes.count("refused") >= 1
    assert len(outcomes) == 16


def test_a_budget_already_over_its_limit_does_not_advise_a_smaller_max_tokens() -> None:
    from computekit.ledger._budgets import refusal

    spent = refusal(charge("0.01", limit="1"), spent=Decimal("1.2"), reserved=Decimal(0))
    assert "max_tokens" not in str(spent)
    assert "used up" in str(spent)
    assert "next day" in str(spent)
    busy = refusal(charge("0.01", limit="1"), spent=Decimal("0.5"), reserved=Decimal("0.5"))
    assert "max_tokens" not in str(busy)
    assert "in flight" in str(busy)
    room = refusal(charge("0.6", limit="1"), spent=Decimal("0.5"), reserved=Decimal(0))
    assert "max_tokens" in str(room)


def test_runs_held_in_memory_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         caplog: pytest.LogCaptureFixture) -> None:
    """Runs under a budget that are never waited for (told of by webhooks) do not hold memory for ever: past
    ``RUNS_KEPT``, the oldest run's reservation is forgotten here (the ledger lets it lapse at its TTL)."""
    monkeypatch.setattr(_budget, "RUNS_KEPT", 2)
    client = ck.Client(config=None, ledger=f"sqlite:///{tmp_path / 'l.db'}", budget={"limit_usd": "5"})
    budgets = client._core.budgets
    with caplog.at_level("WARNING", logger="computekit.budgets"):
        for run_id in ("r1", "r2", "r3"):
            budgets.keep(run_id, Reservation(f"res-{run_id}", Decimal("0.1")))
    assert list(budgets.held) == ["r2", "r3"]
    assert any("oldest (r1)" in r.getMessage() for r in caplog.records)
    assert budgets.find("r3") == Reservation("res-r3", Decimal("0.1"))
    assert budgets.find("r1") is None  # forgotten here, and never named in this ledger
    client.close()


def test_a_budgets_first_read_of_a_period_holds_no_rows_in_memory(tmp_path: Path) -> None:
    import tracemalloc

    now = dt.datetime(2026, 3, 2, 12, tzinfo=dt.UTC)
    lg = open_ledger(f"sqlite:///{tmp_path / 'l.db'}")
    n = 20_000
    lg.record_many([LedgerRow(ts=now - dt.timedelta(seconds=i), verb="complete", provider="openai", model="m",
                              outcome="success", latency_ms=1.0, cost=Decimal("0.0001"), tags={"customer": "acme"})
                    for i in range(n)])
    charge = Charge(name="default", limit=Decimal(100), period="day", start=period_start("day", now),
                    amount=Decimal(0))
    tracemalloc.start()
    try:
        spent, _ = lg.budget_usage(charge, now=now)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        lg.close()
    assert spent == Decimal("0.0001") * n
    assert peak < 1_000_000, f"{peak:,} bytes traced for {n:,} rows: they were all read at once"
