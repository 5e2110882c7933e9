"""Fault case 24 of the catalogue (``tests/faults/README.md``), the budget race: many calls at once (async tasks,
threads, processes) against a budget that affords ten of them, through the public API against the loopback fault
server, on both ledger backends (SQLite file, PostgreSQL).

The server answers with exactly the usage each call reserved (its prompt bound and ``max_tokens``), so a call
settles at its reservation and the budget affords exactly ten, however the calls interleave. Every test asserts
that at most ten requests reached the server, that the spend is within the limit, and that every other call was
refused with :class:`~computekit.BudgetExceededError` without sending anything.
"""

from __future__ import annotations

import asyncio
import threading
from decimal import Decimal
from typing import Any

import pytest
from fault_server import FaultServer, Reply, Waits, make_client

import computekit as ck
from computekit._budget import worst_case
from computekit.adapters._base import CompleteRequest, ProviderSettings
from computekit.adapters.openai import OpenAIAdapter

MODEL = "openai:gpt-4o-mini"
MAX_TOKENS = 7
CALLS = 50
AFFORDED = 10


def _usage_reply() -> Reply:
    """A chat completion whose usage is the call's worst case: the prompt's bound and all of max_tokens."""
    adapter = OpenAIAdapter(ProviderSettings(name="openai", base_url="https://api.openai.com/v1", api_key=None,
                                             timeout=5))
    prompt = adapter.input_bound(CompleteRequest(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]),
                                 None)
    assert prompt is not None
    body = {
        "id": "chatcmpl-budget", "object": "chat.completion", "created": 1_700_000_000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": MAX_TOKENS, "total_tokens": prompt + MAX_TOKENS},
    }
    return Reply(200, body, {"x-request-id": "req_budget"})


def _reservation() -> Decimal:
    probe = ck.Client(config=None, ledger="none", providers={"openai": {"api_key": "sk-probe-0123456789abcdef"}})
    core = probe._core
    [t] = core.targets(MODEL)
    req = core.complete_request(t, [{"role": "user", "content": "hi"}], {"max_tokens": MAX_TOKENS}, stream=False)
    r = worst_case(core, t, req)
    assert r is not None
    return r


def _check(srv: FaultServer, ledger_url: str, results: list[Any], r: Decimal, limit: Decimal) -> None:
    answered = [x for x in results if isinstance(x, ck.Completion)]
    refused = [x for x in results if isinstance(x, ck.BudgetExceededError)]
    assert len(answered) + len(refused) == len(results), [x for x in results if x not in answered + refused][:3]
    assert len(answered) == AFFORDED
    assert srv.hits == len(answered)  # a refused call sent nothing
    assert all(c.cost.total == r for c in answered)  # each settled at exactly its reservation
    assert all(e.requested == r and e.limit == limit and e.budget == "default" for e in refused)
    assert all(e.spent + e.reserved + r > limit for e in refused)
    ledger = ck.Client(config=None, ledger=ledger_url).ledger
    try:
        rows = ledger.rows()
        assert len(rows) == AFFORDED
        spend = ledger.report().total
        assert spend == AFFORDED * r
        assert spend <= limit
        assert all(row.reserved == r for row in rows)
    finally:
        ledger.close()


async def test_case_24_fifty_async_calls_race_for_a_budget_that_affords_ten(faults: Any, waits: Waits,
                                                                            ledger_url: str) -> None:
    srv = faults(_usage_reply())
    r = _reservation()
    limit = AFFORDED * r
    client = make_client(True, srv.url, waits, ledger=ledger_url, budget={"limit_usd": str(limit)},
                         retry={"max_retries": 0})
    try:
        results = await asyncio.gather(
            *(client.complete(MODEL, "hi", max_tokens=MAX_TOKENS) for _ in range(CALLS)), return_exceptions=True
        )
    finally:
        await client.aclose()
        client.ledger.close()
    _check(srv, ledger_url, list(results), r, limit)


def test_case_24_fifty_threads_race_for_a_budget_that_affords_ten(faults: Any, waits: Waits,
                                                                  ledger_url: str) -> None:
    srv = faults(_usage_reply())
    r = _reservation()
    limit = AFFORDED * r
    client = make_client(False, srv.url, waits, ledger=ledger_url, budget={"limit_usd": str(limit)},
                         retry={"max_retries": 0})
    barrier = threading.Barrier(CALLS)
    results: list[Any] = []
    lock = threading.Lock()

    def call() -> None:
        barrier.wait()
        try:
            out: Any = client.complete(MODEL, "hi", max_tokens=MAX_TOKENS)
        except Exception as e:  # collected and checked below
            out = e
        with lock:
            results.append(out)

    threads = [threading.Thread(target=call) for _ in range(CALLS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    client.close()
    client.ledger.close()
    _check(srv, ledger_url, results, r, limit)


@pytest.mark.parametrize("processes", [4])
def test_case_24_four_processes_race_for_a_budget_that_affords_ten(faults: Any, ledger_url: str,
                                                                   processes: int) -> None:
    """4 processes, 13 concurrent async calls each (52 in all), one shared ledger: 10 answered in all."""
    from _ledger_workers import budget_calls, in_processes

    srv = faults(_usage_reply())
    r = _reservation()
    limit = AFFORDED * r
    ck.Client(config=None, ledger=ledger_url).ledger.close()  # the schema exists before the race
    per = -(-CALLS // processes)
    out = in_processes(budget_calls, [(ledger_url, srv.url, per, str(limit), MAX_TOKENS)] * processes)
    answered = sum(a for a, _, _ in out)
    refused = sum(n for _, n, _ in out)
    assert (answered, refused) == (AFFORDED, per * processes - AFFORDED)
    assert srv.hits == AFFORDED
    assert {name for _, _, names in out for name in names} == {"default"}
    ledger = ck.Client(config=None, ledger=ledger_url).ledger
    try:
        assert len(ledger.rows()) == AFFORDED
        assert ledger.report().total == AFFORDED * r <= limit
    finally:
        ledger.close()
