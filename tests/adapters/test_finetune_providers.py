"""``finetune()`` on Azure OpenAI, Together, Mistral and Fireworks, replayed from authored cassettes (marked
``# AUTHORED:`` with their sources): upload, the provider's own estimate where it gives one, launch, one poll to
the end, and the actual cost from what each provider reports. Each runs sync and async on the same cassette.
Expected figures come from the price tables (``training.toml``), not copied constants; the dry-run estimates send
no HTTP at all.

With a real key set and ``--record-mode=once`` (after deleting a cassette) the same tests record.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from _clients import Sleeps, close, every_interaction_played, make_client, mode, policy, vcr_config  # noqa: F401
from _paths import real_key

import computekit as ck
from computekit._config import RoutingConfig
from computekit._finetune import _Counter, count_example_tokens
from computekit.pricing import PriceBook
from computekit.routing import Router

ROWS = [{"messages": [{"role": "system", "content": "You answer in one word."},
                      {"role": "user", "content": f"Capital of country number {i}?"},
                      {"role": "assistant", "content": f"City{i}"}]} for i in range(10)]


MTOK = Decimal(1_000_000)
AZURE = {"api_key": real_key("AZURE_OPENAI_API_KEY", "test-key-0123456789"),
         "base_url": "https://example-resource.openai.azure.com", "api_version": "2024-10-21"}


def client(mode: str, sleeps: Sleeps, providers: dict[str, Any], **kwargs: Any) -> Any:
    return make_client(mode, providers=providers, retry_policy=policy(sleeps), ledger="sqlite:///ledger.db",
                       router=Router(RoutingConfig(), clock=sleeps.clock), **kwargs)


def rate(provider: str, model: str, overrides: dict[str, Any] | None = None) -> Decimal:
    """USD per training token, from the tables (or a config override)."""
    rates = PriceBook(overrides).training(provider, model)
    assert rates is not None
    assert rates.per_mtok is not None
    return rates.per_mtok / MTOK


def by_length(rows: list[dict[str, Any]]) -> int:
    """The launch count for hosts whose tokenizer is not public (about 4 characters a token)."""
    count = _Counter(None)
    return sum(count_example_tokens(r, count) for r in rows)


async def dry_run(c: Any, model: str, **kwargs: Any) -> ck.FineTuneJob:
    job = c.finetune(model, training_file=ROWS, dry_run=True, **kwargs)
    return await job if isinstance(c, ck.AsyncClient) else job  # type: ignore[no-any-return]


async def launch_and_wait(c: Any, model: str, **kwargs: Any) -> tuple[ck.FineTuneJob, ck.FineTuneJob]:
    """The job as launched (a snapshot: wait() updates the job in place), and the job once it ended."""
    if isinstance(c, ck.AsyncClient):
        job = await c.finetune(model, training_file=ROWS, **kwargs)
        launched = job.model_copy()
        done = await job.async_wait(poll_interval=60)
    else:
        job = c.finetune(model, training_file=ROWS, **kwargs)
        launched = job.model_copy()
        done = job.wait(poll_interval=60)
    assert done is job
    return launched, done


@pytest.mark.vcr
@pytest.mark.default_cassette("test_azure_launch_wait_succeeded.yaml")
async def test_azure_launch_wait_succeeded(mode: str) -> None:
    sleeps = Sleeps()
    c = client(mode, sleeps, {"azure": AZURE})
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
@pytest.mark.default_cassette("test_azure_launch_wait_succeeded.yaml")
async def test_azure_with_a_config_price_estimates_and_prices_trained_tokens(mode: str) -> None:
    prices = {"azure:gpt-4o-mini-2024-07-18": {"training_mtok": "3.30"}}
    sleeps = Sleeps()
    c = client(mode, sleeps, {"azure": AZURE}, prices=prices)
    try:
        job, done = await launch_and_wait(c, "azure:gpt-4o-mini-2024-07-18", epochs=2)
    finally:
        await close(c)
    unit = rate("azure", "gpt-4o-mini-2024-07-18", prices)
    count = _Counter("o200k_base")
    counted = sum(count_example_tokens(r, count) for r in ROWS)
    assert job.estimate is not None
    assert job.estimate.total == Decimal(counted * 2) * unit
    assert job.estimate.price_source is not None
    assert job.estimate.price_source.table == "config"
    assert done.cost.total == Decimal(done.trained_tokens or 0) * unit  # trained_tokens x the rate, as for OpenAI
    assert done.cost.total is not None
    assert not done.cost.estimated
    [row] = c.ledger.rows()
    assert row.cost == done.cost.total


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
    # computekit's own figure, from the table's supervised-LoRA rate, is kept beside Together's (not added)
    model = "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"
    [mine] = job.estimate.lines[1:]
    assert mine.item.endswith("[computed, not added]")
    assert mine.amount == Decimal(by_length(ROWS) * 3) * rate("together", model)
    assert done.status == "succeeded"
    assert done.fine_tuned_model == "together:user_abc/Meta-Llama-3.1-8B-Instruct-Reference-ck-6e4b2a90"
    assert done.trained_tokens == 2970
    assert done.cost.total == Decimal(1544400) / Decimal(1_000_000_000)  # total_price, nano-dollars
    assert done.cost.lines[0].item == "reported by together (total_price)"
    [check] = done.cost.lines[1:]  # token_count x the table's rate, kept as a check
    assert check.amount == Decimal(2970) * rate("together", model)
    assert check.item == "trained tokens [computed, not added]"
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
    assert done.metrics == {"percent": 100, "epoch": 1, "inputTokens": 690, "outputTokens": 0}
    # No billed quantity on the job (jobProgress.inputTokens is generic progress, not documented as trained
    # tokens): the launch count x the job's epochs x the table's rate, marked estimated, with the reason.
    counted = by_length(ROWS)
    assert job.estimate is not None
    assert job.estimate.total == Decimal(counted * 1) * rate("fireworks", "llama-v3p1-8b-instruct")
    assert done.cost.total == Decimal(counted * 1) * rate("fireworks", "llama-v3p1-8b-instruct")
    assert done.cost.estimated is True
    assert "fireworks reports no billed quantity" in (done.cost.reason or "")
    assert done.cost.lines[0].item == f"training tokens counted at launch: {counted} x 1 epochs (estimated)"
    [row] = c.ledger.rows()
    assert row.cost == done.cost.total


def test_fireworks_needs_an_account_before_any_http(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FIREWORKS_ACCOUNT_ID", raising=False)
    c = ck.Client(config=None, providers={"fireworks": {"api_key": "test-key-0123456789"}}, ledger="none")
    with pytest.raises(ck.ConfigError, match="FIREWORKS_ACCOUNT_ID"):
        c.finetune("fireworks:llama-v3p1-8b-instruct", training_file=ROWS)
    c.close()


# ------------------------------------------------------------------------------------------------ no HTTP


PROVIDERS = {"together": {"api_key": "test-key-0123456789"}, "mistral": {"api_key": "test-key-0123456789"},
             "fireworks": {"api_key": "test-key-0123456789", "organization": "acme"}, "azure": AZURE}


@pytest.mark.parametrize(("provider", "model", "epochs"), [
    ("together", "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference", None),  # Together's default: 1 epoch
    ("together", "Qwen/Qwen2.5-72B-Instruct", 2),
    ("fireworks", "llama-v3p1-8b-instruct", None),  # Fireworks' default: 1 epoch
    ("fireworks", "llama-v3p1-70b-instruct", 3),
    ("fireworks", "accounts/fireworks/models/qwen2p5-7b-instruct", 2),  # the full resource name prices the same
])
async def test_dry_run_estimates_from_the_tables_without_any_http(mode: str, provider: str, model: str,
                                                                  epochs: int | None) -> None:
    c = client(mode, Sleeps(), PROVIDERS)  # the network is blocked: any request would fail the test
    try:
        job = await dry_run(c, f"{provider}:{model}", epochs=epochs)
    finally:
        await close(c)
    assert job.dry_run is True
    priced = model.removeprefix("accounts/fireworks/models/")
    assert job.estimate is not None
    assert job.estimate.total == Decimal(by_length(ROWS) * (epochs or 1)) * rate(provider, priced)
    assert job.estimate.estimated is True
    assert job.estimate.price_source is not None
    assert job.estimate.price_source.url


@pytest.mark.parametrize("model", ["fireworks:some-unlisted-model", "together:org/unlisted-model",
                                   "azure:gpt-4o-mini-2024-07-18", "mistral:open-mistral-7b"])
async def test_an_unknown_training_price_estimates_none_not_zero(mode: str, model: str) -> None:
    c = client(mode, Sleeps(), PROVIDERS)
    try:
        job = await dry_run(c, model, epochs=2)
    finally:
        await close(c)
    assert job.estimate is not None
    assert job.estimate.total is None
    assert 'training_mtok = "..."' in (job.estimate.reason or "")


async def test_a_config_price_wins_over_the_table_and_prices_mistral_without_an_upload(mode: str) -> None:
    prices = {"fireworks:llama-v3p1-8b-instruct": {"training_mtok": "0.25"},
              "mistral:open-mistral-7b": {"training_mtok": "1.00"}}
    c = client(mode, Sleeps(), PROVIDERS, prices=prices)
    try:
        fw = await dry_run(c, "fireworks:llama-v3p1-8b-instruct", epochs=2)
        mi = await dry_run(c, "mistral:open-mistral-7b", epochs=2)
        mi_default = await dry_run(c, "mistral:open-mistral-7b")
    finally:
        await close(c)
    assert rate("fireworks", "llama-v3p1-8b-instruct", prices) != rate("fireworks", "llama-v3p1-8b-instruct")
    assert fw.estimate is not None
    assert mi.estimate is not None
    assert mi_default.estimate is not None
    assert fw.estimate.total == Decimal(by_length(ROWS) * 2) * rate("fireworks", "llama-v3p1-8b-instruct", prices)
    assert fw.estimate.price_source is not None
    assert fw.estimate.price_source.table == "config"
    assert mi.estimate.total == Decimal(by_length(ROWS) * 2) * rate("mistral", "open-mistral-7b", prices)
    assert mi_default.estimate.total is None  # Mistral documents no default epochs: say so, never guess
    assert "pass epochs=" in (mi_default.estimate.reason or "")


@pytest.mark.parametrize(("kwargs", "what"), [
    ({"method": "dpo"}, "dpo"),
    ({"extra_body": {"training_type": {"type": "Full"}}}, "supervised"),
    ({"hyperparameters": {"lora": False}}, "supervised"),
])
async def test_together_jobs_the_table_does_not_price_estimate_none(mode: str, kwargs: dict[str, Any],
                                                                    what: str) -> None:
    rows = ROWS if what != "dpo" else [
        {"input": {"messages": [{"role": "user", "content": f"Q{i}"}]},
         "preferred_output": [{"role": "assistant", "content": "good"}],
         "non_preferred_output": [{"role": "assistant", "content": "bad"}]} for i in range(10)]
    c = client(mode, Sleeps(), PROVIDERS)
    try:
        job = c.finetune("together:meta-llama/Meta-Llama-3.1-8B-Instruct-Reference", training_file=rows,
                         dry_run=True, **kwargs)
        job = await job if isinstance(c, ck.AsyncClient) else job
    finally:
        await close(c)
    assert job.estimate.total is None  # DPO and full fine-tuning are billed at rates the table does not hold
    assert f"bills this {what} job" in (job.estimate.reason or "")


def fireworks_job(c: Any, raw_extra: dict[str, Any], estimate: ck.Cost | None) -> ck.FineTuneJob:
    raw = {"name": "accounts/acme/supervisedFineTuningJobs/j1", "state": "JOB_STATE_COMPLETED", "epochs": 2,
           "baseModel": "accounts/fireworks/models/llama-v3p1-8b-instruct", **raw_extra}
    return ck.FineTuneJob(id="j1", provider="fireworks", base_model="llama-v3p1-8b-instruct", status="succeeded",
                          epochs=2, raw=raw, estimate=estimate)


def test_fireworks_estimated_cost_is_the_total_when_the_job_reports_one() -> None:
    from computekit._finetune import actual_cost

    c = ck.Client(config=None, providers=PROVIDERS, ledger="none")
    try:
        adapter = c._core.adapter("fireworks")
        est = c._core.finetune_estimate("fireworks:llama-v3p1-8b-instruct", ROWS, epochs=1)
        job = fireworks_job(c, {"estimatedCost": {"currencyCode": "USD", "units": "1", "nanos": 250000000}}, est)
        cost = actual_cost(c._core.prices, adapter, job, None)
        # the job's epochs (2) re-scale the launch count (1 epoch); Money 1 unit + 250000000 nanos = $1.25
        computed = Decimal(by_length(ROWS) * 2) * rate("fireworks", "llama-v3p1-8b-instruct")
        assert cost.total == Decimal("1.25")
        assert cost.estimated is True
        assert [ln.amount for ln in cost.lines] == [Decimal("1.25"), computed]
        assert cost.lines[1].item.endswith("[computed, not added]")
        zero = actual_cost(c._core.prices, adapter, fireworks_job(c, {"estimatedCost": {}}, est), None)
        assert zero.total == computed  # an unset (all-zero) Money is not read as $0
        attached = actual_cost(c._core.prices, adapter, fireworks_job(c, {}, None), None)
        assert attached.total is None  # attached without its launch count: nothing known, so None, never a guess
        assert "no launch count" in (attached.reason or "")
    finally:
        c.close()
