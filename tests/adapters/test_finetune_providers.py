"""``finetune()`` on Azure OpenAI, Together, Mistral and Fireworks, replayed from authored cassettes (marked
``# AUTHORED:`` with their sources): upload, the provider's own estimate where it gives one, launch, one poll to
the end, and the actual cost from what each provider reports. Each runs sync and async on the same cassette.

With a real key set and ``--record-mode=once`` (after deleting a cassette) the same tests record.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from _clients import Sleeps, close, every_interaction_played, make_client, mode, policy, vcr_config  # noqa: F401
from conftest import real_key

import computekit as ck
from computekit._config import RoutingConfig
from computekit.routing import Router

ROWS = [{"messages": [{"role": "system", "content": "You answer in one word."},
                      {"role": "user", "content": f"Capital of country number {i}?"},
                      {"role": "assistant", "content": f"City{i}"}]} for i in range(10)]


def client(mode: str, sleeps: Sleeps, providers: dict[str, Any]) -> Any:
    return make_client(mode, providers=providers, retry_policy=policy(sleeps), ledger="sqlite:///ledger.db",
                       router=Router(RoutingConfig(), clock=sleeps.clock))


async def launch_and_wait(c: Any, model: str, **kwargs: Any) -> tuple[ck.FineTuneJob, ck.FineTuneJob]:
    if isinstance(c, ck.AsyncClient):
        job = await c.finetune(model, training_file=ROWS, **kwargs)
        return job, await job.async_wait(poll_interval=60)
    job = c.finetune(model, training_file=ROWS, **kwargs)
    return job, job.wait(poll_interval=60)


@pytest.mark.vcr
@pytest.mark.default_cassette("test_azure_launch_wait_succeeded.yaml")
async def test_azure_launch_wait_succeeded(mode: str) -> None:
    sleeps = Sleeps()
    c = client(mode, sleeps, {"azure": {"api_key": real_key("AZURE_OPENAI_API_KEY", "test-key-0123456789"),
                                        "base_url": "https://example-resource.openai.azure.com",
                                        "api_version": "2024-10-21"}})
    try:
        job, done = await launch_and_wait(c, "azure:gpt-4o-mini-2024-07-18", epochs=2)
    finally:
        await close(c)
    assert job.status == "validating"
    assert job.estimate is not None
    assert job.estimate.total is None  # no Azure training price in the tables: unknown, never 0
    assert "training_mtok" in (job.estimate.reason or "")
    assert done.status == "succeeded"
    assert done.fine_tuned_model == "azure:gpt-4o-mini-2024-07-18.ft-4f1e2d3c4b5a69788796a5b4c3d2e1f0"
    assert done.trained_tokens == 1260
    assert done.cost.total is None
    assert sleeps.waits == [60]
    [row] = c.ledger.rows()
    assert (row.provider, row.outcome, row.input_tokens, row.cost) == ("azure", "success", 1260, None)


@pytest.mark.vcr
@pytest.mark.default_cassette("test_together_launch_wait_succeeded.yaml")
async def test_together_launch_wait_succeeded(mode: str) -> None:
    sleeps = Sleeps()
    c = client(mode, sleeps, {"together": {"api_key": real_key("TOGETHER_API_KEY", "test-key-0123456789")}})
    try:
        job, done = await launch_and_wait(c, "together:meta-llama/Meta-Llama-3.1-8B-Instruct-Reference", epochs=3)
    finally:
        await close(c)
    assert job.estimate is not None
    assert job.estimate.total == Decimal("1.5")  # Together's estimate-price figure, in USD
    assert job.estimate.estimated
    assert job.estimate.lines[0].item == "estimated by together (estimate-price)"
    assert done.status == "succeeded"
    assert done.fine_tuned_model == "together:user_abc/Meta-Llama-3.1-8B-Instruct-Reference-ck-6e4b2a90"
    assert done.trained_tokens == 2970
    assert done.cost.total == Decimal(1544400) / Decimal(1_000_000_000)  # total_price, nano-dollars
    assert done.cost.lines[0].item == "reported by together (total_price)"
    [ev] = [e for e in done.raw["events"]]
    assert ev["message"] == "Training completed"
    assert len(c.ledger.rows()) == 1


@pytest.mark.vcr
@pytest.mark.default_cassette("test_mistral_launch_wait_succeeded.yaml")
async def test_mistral_launch_wait_succeeded(mode: str) -> None:
    sleeps = Sleeps()
    c = client(mode, sleeps, {"mistral": {"api_key": real_key("MISTRAL_API_KEY", "test-key-0123456789")}})
    try:
        job, done = await launch_and_wait(c, "mistral:open-mistral-7b", epochs=2)
        if isinstance(c, ck.AsyncClient):
            events, ckpts = await done.async_events(), await done.async_checkpoints()
        else:
            events, ckpts = done.events(), done.checkpoints()
    finally:
        await close(c)
    assert job.estimate is not None
    assert job.estimate.total == Decimal("4.0")  # the dry run's cost
    assert done.status == "succeeded"
    assert done.fine_tuned_model == "mistral:ft:open-mistral-7b:a1b2c3d4:20261125:e5f6a7b8"
    assert done.cost.total == Decimal("4.0")  # metadata.cost
    assert done.cost.lines[0].item == "reported by mistral (metadata.cost)"
    assert [e.data.get("status") for e in events] == ["RUNNING", "SUCCESS"]
    assert [(cp.step, cp.metrics["train_loss"]) for cp in ckpts] == [(1, 0.82)]
    [row] = c.ledger.rows()
    assert row.cost == Decimal("4.0")


@pytest.mark.vcr
@pytest.mark.default_cassette("test_fireworks_launch_wait_succeeded.yaml")
async def test_fireworks_launch_wait_succeeded(mode: str) -> None:
    sleeps = Sleeps()
    c = client(mode, sleeps, {"fireworks": {"api_key": real_key("FIREWORKS_API_KEY", "test-key-0123456789"),
                                            "organization": "acme"}})
    try:
        job, done = await launch_and_wait(c, "fireworks:llama-v3p1-8b-instruct", epochs=1)
    finally:
        await close(c)
    assert job.status == "queued"
    assert done.status == "succeeded"
    assert done.fine_tuned_model == "fireworks:accounts/acme/models/ck0sftjob1"
    assert done.metrics == {"percent": 100, "epoch": 1}
    assert done.cost.total is None  # Fireworks reports neither a price nor trained tokens on the job
    assert "no billable quantity" in (done.cost.reason or "")


def test_fireworks_needs_an_account_before_any_http(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FIREWORKS_ACCOUNT_ID", raising=False)
    c = ck.Client(config=None, providers={"fireworks": {"api_key": "test-key-0123456789"}}, ledger="none")
    with pytest.raises(ck.ConfigError, match="FIREWORKS_ACCOUNT_ID"):
        c.finetune("fireworks:llama-v3p1-8b-instruct", training_file=ROWS)
    c.close()
