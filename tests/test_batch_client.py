"""``batch()`` and ``client.batches`` through the public API, sync and async, replayed from
cassettes/test_batch_client/.

The OpenAI and Anthropic cassettes are authored from the official specs (validated against them in
``tests/adapters/test_batch_wire.py``, which holds the same exchanges); Mistral's, Gemini's and Azure's from their
API references (each file's first line says so). With keys set, ``pytest --record-mode=once`` records real
traffic instead. Costs are computed here from the price tables: each item's usage x the batch price.
"""

from __future__ import annotations

import inspect
from decimal import Decimal
from typing import Any

import pytest
from _paths import real_key
from adapters._clients import (  # noqa: F401  (shared fixtures, registered by name)
    Sleeps,
    close,
    every_interaction_played,
    make_client,
    mode,
    policy,
    vcr_config,
)

import computekit as ck
from computekit._types import Completion
from computekit.pricing import BATCH_CONTEXT, PriceBook, PriceRef

OPENAI_KEY = real_key("OPENAI_API_KEY", "sk-test-0123456789abcdef")
ANTHROPIC_KEY = real_key("ANTHROPIC_API_KEY", "sk-ant-test-0123456789")
REQUESTS: list[dict[str, Any]] = [
    {"custom_id": "q1", "messages": [{"role": "user", "content": "Say this is a test"}], "max_tokens": 16},
    {"custom_id": "q2", "messages": [{"role": "user", "content": "Name a prime number"}], "max_tokens": 16},
    {"custom_id": "q3", "messages": [{"role": "user", "content": "x" * 40}], "max_tokens": 16},
]
MTOK = Decimal(1_000_000)


async def run(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


async def results(client: Any, job: ck.BatchJob) -> list[tuple[str, Any]]:
    """``client.batches.results(job)`` read to its end, sync or async."""
    it = client.batches.results(job)
    if isinstance(client, ck.AsyncClient):
        return [x async for x in it]
    return list(it)


def token_cost(client: Any, provider: str, model: str, answer: Any, batch: bool) -> Decimal:
    """The answer's usage x the table's token prices: at the batch price, or the synchronous one."""
    ref = client._core.adapter(provider).price_ref(model, answer)
    found = PriceBook().rates(PriceRef(ref.provider, ref.model, ref.table_provider,
                                       context=(BATCH_CONTEXT,) if batch else ()))
    assert found is not None
    usage = answer.usage
    return (usage.input_tokens * found.prices["input_mtok"] + usage.output_tokens * found.prices["output_mtok"]) / MTOK


def priced(client: Any, provider: str, model: str, answers: list[Any], batch: bool) -> Decimal:
    return sum((token_cost(client, provider, model, a, batch) for a in answers), Decimal(0))


def batch_rows(client: Any) -> list[Any]:
    client._core.ledger.flush()
    return [r for r in client._core.ledger.rows() if r.verb == "batch"]


@pytest.mark.vcr
@pytest.mark.default_cassette("openai_batch.yaml")
async def test_openai_submit_wait_results_prices_each_item_at_the_batch_price(mode: str) -> None:
    sleeps = Sleeps()
    client = make_client(mode, providers={"openai": {"api_key": OPENAI_KEY}}, retry_policy=policy(sleeps))
    try:
        job = await run(client.batch("openai:gpt-4o-mini", REQUESTS, tags={"project": "demo"}))
        assert isinstance(job, ck.BatchJob)
        assert (job.id, job.provider, job.status) == ("batch_6f1b2c3d4e5f", "openai", "validating")
        assert job.estimate is not None
        assert job.estimate.estimated
        assert job.cost.total is None  # unknown until the results are read, never 0
        job = await run(client.batches.wait(job, poll_interval=0))
        assert (job.status, job.total, job.completed, job.failed) == ("completed", 3, 2, 1)
        out = await results(client, job)
        assert [cid for cid, _ in out] == ["q1", "q2", "q3"]
        answers = [r for _, r in out if isinstance(r, Completion)]
        assert [a.text for a in answers] == ["This is a test.", "7"]
        for a in answers:
            assert a.cost.total == token_cost(client, "openai", "gpt-4o-mini", a, True)
            assert all(line.item.startswith("batch ") for line in a.cost.lines)
        assert isinstance(out[2][1], ck.ContextWindowExceededError)
        want = priced(client, "openai", "gpt-4o-mini", answers, True)
        sync = priced(client, "openai", "gpt-4o-mini", answers, False)
        assert job.cost.total == want
        assert job.synchronous == sync
        assert job.saved == sync - want
        assert job.saved > 0
        assert job.estimate.total is not None
        assert job.estimate.total >= want
        rows = batch_rows(client)
        assert sorted(r.tags["custom_id"] for r in rows) == ["q1", "q2", "q3"]
        assert {r.tags["batch_id"] for r in rows} == {"batch_6f1b2c3d4e5f"}
        assert all(r.tags["project"] == "demo" for r in rows)
        assert sorted(r.once_key for r in rows) == [f"batch:openai:batch_6f1b2c3d4e5f:q{i}" for i in (1, 2, 3)]
        assert sum((r.cost for r in rows if r.cost is not None), Decimal(0)) == want
        assert [r.outcome for r in sorted(rows, key=lambda r: r.tags["custom_id"])] == ["success", "success",
                                                                                        "error"]
    finally:
        await close(client)
