"""``batch()`` and ``client.batches`` through the public API, sync and async, replayed from
cassettes/test_batch_client/.

The OpenAI and Anthropic cassettes are authored from the official specs (validated against them in
``tests/adapters/test_batch_wire.py``, which holds the same exchanges); Mistral's, Gemini's and Azure's from their
API references (each file's first line says so). With keys set, ``pytest --record-mode=once`` records real
traffic instead. Costs are computed here from the price tables: each item's usage x the batch price.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
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

REQUESTS: list[dict[str, Any]] = [
    {"custom_id": "q1", "messages": [{"role": "user", "content": "Say this is a test"}], "max_tokens": 16},
    {"custom_id": "q2", "messages": [{"role": "user", "content": "Name a prime number"}], "max_tokens": 16},
    {"custom_id": "q3", "messages": [{"role": "user", "content": "x" * 40}], "max_tokens": 16},
]


@dataclass(frozen=True)
class Case:
    """One provider's batch, replayed from ``{provider}_batch.yaml``: the same three requests; q1 and q2 answered,
    q3 refused (not billed)."""

    model: str
    settings: dict[str, Any]
    tags: dict[str, str] | None
    batch_id: str

    @property
    def provider(self) -> str:
        return self.model.split(":")[0]


CASES = {
    "openai": Case("openai:gpt-4o-mini", {"api_key": real_key("OPENAI_API_KEY", "sk-test-0123456789abcdef")},
                   {"project": "demo"}, "batch_6f1b2c3d4e5f"),
    "azure": Case("azure:gpt-4o-mini", {"api_key": real_key("AZURE_OPENAI_API_KEY", "azure-test-0123456789"),
                                        "base_url": "https://res.openai.azure.com",
                                        "deployments": {"gpt-4o-mini": "gpt-4o-mini-batch"}},
                  {"project": "demo"}, "batch_3e7a9c1d-5f2b-4e8a-b6c4-1d2e3f4a5b6c"),
    "anthropic": Case("anthropic:claude-haiku-4-5",
                      {"api_key": real_key("ANTHROPIC_API_KEY", "sk-ant-test-0123456789")}, None,
                      "msgbatch_013Zva2CMHLNnXjNJJKqJ2EF"),
    "mistral": Case("mistral:mistral-small-latest", {"api_key": real_key("MISTRAL_API_KEY", "mistral-test-0123456789")},
                    {"project": "demo"}, "b7e2c9d1-0a4f-4c3b-9e8d-7f6a5b4c3d21"),
    "gemini": Case("gemini:gemini-2.5-flash", {"api_key": real_key("GEMINI_API_KEY", "gemini-test-0123456789")},
                   None, "qz8l4kx1m2n3p4r5"),
}


@pytest.fixture(params=sorted(CASES))
def case(request: pytest.FixtureRequest) -> Case:
    return CASES[request.param]


@pytest.fixture
def default_cassette_name(request: pytest.FixtureRequest) -> str:
    """``{provider}_batch.yaml`` for the tests that run on every provider."""
    params = getattr(request.node, "callspec", None)
    provider = params.params.get("case") if params is not None else None
    return f"{provider}_batch" if provider else request.node.name


def client_for(mode: str, case: Case, sleeps: Sleeps | None = None, **kwargs: Any) -> Any:
    return make_client(mode, providers={case.provider: case.settings}, retry_policy=policy(sleeps or Sleeps()),
                       **kwargs)


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
async def test_submit_wait_results_prices_each_item_at_the_batch_price(mode: str, case: Case) -> None:
    client = client_for(mode, case)
    provider, model = case.model.split(":")
    try:
        job = await run(client.batch(case.model, REQUESTS, tags=case.tags))
        assert isinstance(job, ck.BatchJob)
        assert (job.id, job.provider, job.model) == (case.batch_id, provider, model)
        assert job.status in ("validating", "in_progress")
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
            assert a.cost.total == token_cost(client, provider, model, a, True)
            assert all(line.item.startswith("batch ") for line in a.cost.lines)
        assert isinstance(out[2][1], ck.ProviderError)
        assert out[2][1].status == 400
        want = priced(client, provider, model, answers, True)
        sync = priced(client, provider, model, answers, False)
        assert job.cost.total == want
        assert job.synchronous == sync
        assert job.saved == sync - want
        assert job.saved > 0
        assert job.estimate.total is not None
        assert job.estimate.total >= want  # every output at its max_tokens
        rows = batch_rows(client)
        assert sorted(r.tags["custom_id"] for r in rows) == ["q1", "q2", "q3"]
        assert {r.tags["batch_id"] for r in rows} == {case.batch_id}
        assert all(r.tags.get("project") == (case.tags or {}).get("project") for r in rows)
        assert sorted(r.once_key for r in rows) == [f"batch:{provider}:{case.batch_id}:q{i}" for i in (1, 2, 3)]
        assert sum((r.cost for r in rows if r.cost is not None), Decimal(0)) == want
        by_id = {r.tags["custom_id"]: r for r in rows}
        assert [by_id[c].outcome for c in ("q1", "q2", "q3")] == ["success", "success", "error"]
        assert by_id["q3"].cost == 0  # refused before it ran: not billed
        assert all(r.provider == provider for r in rows)
    finally:
        await close(client)
