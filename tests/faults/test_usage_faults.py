"""Fault catalogue: a provider that reports absurd usage (negative, fractional, beyond any model's limits), and a
ledger row that the store refuses.

Absurd usage is a MalformedResponseError: the attempt is still recorded (its cost unknown, so a budget counts the
worst case it reserved — a negative count can no longer lower a budget's spend), it is not retried (the call was
billed), and a fallback target is tried as for any malformed answer. A row the store refuses never takes a batch
of other rows with it.
"""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fault_server import SSE, Reply, Waits, chat, chat_events, close, make_client, policy, read_stream, run

import computekit as ck
from computekit._constants import MAX_USAGE_COUNT
from computekit.ledger import LedgerRow, open_ledger

both = pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
CHAT = "openai:gpt-4o-mini"
EMBED = "openai:text-embedding-3-small"
ABSURD = {"negative": -1_000_000, "beyond-any-model": MAX_USAGE_COUNT + 1, "overflows-int64": 10**30,
          "fractional": 12.5, "not-a-number": "many"}
absurd = pytest.mark.parametrize("count", list(ABSURD.values()), ids=list(ABSURD))


def answer(verb: str, prompt_tokens: Any) -> Any:
    """``verb``'s success answer whose usage reports ``prompt_tokens``."""
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": 5, "total_tokens": 5}
    if verb == "stream":
        events = chat_events(["Hel", "lo"])
        events[-2] = {**events[-2], "usage": usage}  # type: ignore[dict-item]
        return SSE(events)
    if verb == "embed":
        return Reply(200, {"object": "list", "model": "text-embedding-3-small", "usage": usage,
                           "data": [{"object": "embedding", "index": 0, "embedding": [0.25, -0.5]}]})
    reply = chat("Hello")
    assert isinstance(reply.body, dict)
    reply.body["usage"] = usage
    return reply


async def call(client: Any, verb: str) -> Any:
    if verb == "stream":
        return (await read_stream(client, CHAT))[1].result
    if verb == "embed":
        return await run(client.embed(EMBED, ["a"]))
    return await run(client.complete(CHAT, "hi"))


@both
@absurd
@pytest.mark.parametrize("verb", ["complete", "stream", "embed"])
async def test_absurd_usage_is_malformed_and_still_recorded(faults: Any, waits: Waits, is_async: bool, verb: str,
                                                            count: Any, tmp_path: Path) -> None:
    srv = faults([answer(verb, count), answer(verb, 12)])
    client = make_client(is_async, srv.url, waits, ledger=f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        with pytest.raises(ck.MalformedResponseError, match=r"values out of range \(usage\.input_tokens: ") as info:
            await call(client, verb)
        rows = client.ledger.rows()
        ok = await call(client, verb)  # the client goes on working
    finally:
        await close(client)
    assert info.value.provider == "openai"
    assert info.value.status == 200
    assert srv.hits == 2  # not retried: the provider billed the call
    assert [(r.outcome, r.error_type, r.cost, r.input_tokens) for r in rows] == [
        ("error", "MalformedResponseError", None, 0)]  # recorded, cost unknown, no absurd count stored
    assert ok.usage.input_tokens == 12


@both
async def test_negative_usage_cannot_lower_a_budgets_spend(faults: Any, waits: Waits, is_async: bool,
                                                           tmp_path: Path) -> None:
    """A negative count used to price as a negative cost that lowered the spend and let calls past the limit: now
    the attempt counts its reserved worst case, and its reservation is settled (nothing left in flight)."""
    srv = faults([answer("complete", -10**9), answer("complete", 12)])
    client = make_client(is_async, srv.url, waits, ledger=f"sqlite:///{tmp_path / 'ledger.db'}",
                         budget={"limit_usd": "5"})
    try:
        with pytest.raises(ck.MalformedResponseError):
            await run(client.complete(CHAT, "hi", max_tokens=100))
        status = client.budget_status()["default"]
        rows = client.ledger.rows()
    finally:
        await close(client)
    assert rows[0].cost is None
    assert rows[0].reserved is not None
    assert rows[0].reserved > 0
    assert status.spent == rows[0].reserved  # counted at its worst case, never below 0
    assert status.reserved == 0  # settled, not left to expire


@both
@pytest.mark.filterwarnings("ignore::computekit.UnknownPriceWarning")  # the backup has no price: not the point
async def test_absurd_usage_falls_back_like_any_malformed_answer(faults: Any, waits: Waits, is_async: bool,
                                                                 tmp_path: Path) -> None:
    bad, good = faults(answer("complete", -5)), faults(chat("from the backup"))
    cls = ck.AsyncClient if is_async else ck.Client
    client = cls(config=None, retry_policy=policy(waits), ledger=f"sqlite:///{tmp_path / 'ledger.db'}",
                 providers={"openai": {"base_url": bad.url, "api_key": "sk-fault-0123456789abcdef"},
                            "backup": {"adapter": "openai-compatible", "base_url": good.url,
                                       "api_key": "sk-fault-backup-0123456789"}})
    try:
        r = await run(client.complete([CHAT, "backup:gpt-4o-mini"], "hi"))
        rows = client.ledger.rows()
    finally:
        await close(client)
    assert r.text == "from the backup"
    assert [(a.provider, a.outcome, a.error_type) for a in r.attempts] == [
        ("openai", "error", "MalformedResponseError"), ("backup", "success", None)]
    assert [(row.provider, row.outcome) for row in rows] == [("openai", "error"), ("backup", "success")]


# ============================================================================================= the batch writer


def _row(i: int, **kw: Any) -> LedgerRow:
    fields: dict[str, Any] = {"input_tokens": i, "cost": Decimal("0.001"), **kw}
    return LedgerRow(ts=dt.datetime(2026, 3, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=i), verb="complete",
                     provider="openai", model="gpt-4o-mini", outcome="success", latency_ms=1.0, request_id=f"r{i}",
                     **fields)


def test_one_row_the_store_refuses_does_not_drop_its_batch(ledger_url: str, caplog: pytest.LogCaptureFixture
                                                           ) -> None:
    """300 rows in one batch, one of them with a count no integer column holds: 299 rows as they were, the bad one
    with its counts cleared and its cost unknown, and a log line with its facts."""
    lg = open_ledger(ledger_url, buffered=True)
    try:
        for i in range(300):
            lg.record(_row(i, input_tokens=10**30) if i == 150 else _row(i))
        rows = {r.request_id: r for r in lg.rows()}
    finally:
        lg.close()
    assert len(rows) == 300
    assert rows["r150"].input_tokens == 0
    assert rows["r150"].cost is None
    assert all(rows[f"r{i}"].input_tokens == i and rows[f"r{i}"].cost == Decimal("0.001")
               for i in range(300) if i != 150)
    logged = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(logged) == 1
    assert '"request_id": "r150"' in logged[0].getMessage()
    assert str(10**30) in logged[0].getMessage()  # the original count is kept in the log


def test_a_store_that_refuses_everything_logs_every_row(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """When the store itself fails (locked, full), each row is logged (never lost silently), and the writer does
    not try hundreds of rows one by one against it."""
    from computekit.ledger._buffered import BatchWriter

    tries: list[int] = []

    def broken(rows: list[LedgerRow]) -> None:
        tries.append(len(rows))
        raise OSError("disk full")

    writer = BatchWriter(broken, flush_interval=60)  # one batch: flush() cuts the wait short
    try:
        for i in range(50):
            writer.put(_row(i))
        writer.flush()
    finally:
        writer.close()
    lost = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert sorted(int(m.split('"request_id": "r')[1].split('"')[0]) for m in lost) == list(range(50))
    assert tries == [50, 50, 50, 1, 1, 1]  # the batch three times, then three rows alone: the store is at fault


# ============================================================================================= fine-tuning

_FT_MODEL = "openai:gpt-4o-mini-2024-07-18"
_EXAMPLES = [{"messages": [{"role": "user", "content": f"question {i}"}, {"role": "assistant", "content": "yes"}]}
             for i in range(10)]


def _ft_job(status: str, **extra: Any) -> Reply:
    """An OpenAI fine-tuning job object."""
    return Reply(200, {"object": "fine_tuning.job", "id": "ftjob-d20", "model": "gpt-4o-mini-2024-07-18",
                       "created_at": 1_764_000_000, "finished_at": None, "fine_tuned_model": None,
                       "status": status, "training_file": "file-d20", "validation_file": None,
                       "hyperparameters": {"n_epochs": 3}, "trained_tokens": None, "error": {}, **extra})


@both
@pytest.mark.parametrize("tokens", [-1_000_000, True, 10**30, 12.5], ids=["negative", "boolean", "absurd",
                                                                         "fractional"])
async def test_trained_tokens_that_are_not_a_count_leave_the_cost_unknown(faults: Any, waits: Waits,
                                                                          is_async: bool, tmp_path: Path,
                                                                          tokens: Any) -> None:
    """A job that ends reporting trained tokens that are no count: its cost is unknown (never negative, never a
    guess from 1 token), its one row says so, and under a budget the reserved worst case counts, settled once."""
    ended = {"finished_at": 1_764_000_600, "trained_tokens": tokens, "fine_tuned_model": "ft:gpt-4o-mini:org::d20"}
    srv = faults([Reply(200, {"object": "file", "id": "file-d20", "purpose": "fine-tune", "bytes": 1}),
                  _ft_job("validating_files"), _ft_job("succeeded", **ended)])
    client = make_client(is_async, srv.url, waits, ledger=f"sqlite:///{tmp_path / 'ledger.db'}",
                         budget={"limit_usd": "5", "period": "total"})
    try:
        job = await run(client.finetune(_FT_MODEL, training_file=_EXAMPLES))
        estimate = job.estimate.total
        assert estimate is not None
        job = await run(client.finetunes.wait(job, poll_interval=0))
        status = client.budget_status()["default"]
    finally:
        await close(client)
    assert job.status == "succeeded"
    assert job.cost.total is None
    assert "not a count" in (job.cost.reason or "") or "no billable quantity" in (job.cost.reason or "")
    [row] = client.ledger.rows()
    assert row.cost is None
    assert (status.spent, status.reserved) == (estimate, 0)  # the worst case it reserved counts, nothing held
