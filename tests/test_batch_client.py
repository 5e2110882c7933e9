"""``batch()`` and ``client.batches`` through the public API, sync and async, replayed from
cassettes/test_batch_client/.

The OpenAI and Anthropic cassettes are authored from the official specs (validated against them in
``tests/adapters/test_batch_wire.py``, which holds the same exchanges); Mistral's, Gemini's and Azure's from their
API references (each file's first line says so). With keys set, ``pytest --record-mode=once`` records real
traffic instead. Costs are computed here from the price tables: each item's usage x the batch price.
"""

from __future__ import annotations

import inspect
import json
import sys
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from _paths import CASSETTES, real_key
from _support import WatchedLedger
from adapters._clients import (  # noqa: F401  (shared fixtures, registered by name)
    Sleeps,
    close,
    every_interaction_played,
    make_client,
    mode,
    policy,
    vcr_config,
)
from test_cassette_specs import _spec as openai_spec
from test_cassette_specs import errors as openai_errors
from test_cassette_specs import spec_path as openai_spec_path
from test_finetune import Host
from test_finetune import client as ft_client

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
    """``{provider}_batch.yaml`` for the tests that run on every provider (else the ``default_cassette`` marker's)."""
    marker = request.node.get_closest_marker("default_cassette")
    if marker is not None:
        return str(marker.args[0]).removesuffix(".yaml")
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
        assert out[2][1].cost is not None
        assert out[2][1].cost.total == by_id["q3"].cost  # the error carries the cost its row has
        assert all(r.provider == provider for r in rows)
    finally:
        await close(client)


RESPONSES_REQUESTS: list[dict[str, Any]] = [
    {"custom_id": "r1", "messages": [{"role": "user", "content": "Say this is a test"}], "max_tokens": 16,
     "api": "responses"},
    # the provider's own line shape for the Responses endpoint is read too
    {"custom_id": "r2", "method": "POST", "url": "/v1/responses",
     "body": {"model": "gpt-4o-mini", "instructions": "Answer with one number.", "input": "Name a prime number",
              "max_output_tokens": 16}},
]


@pytest.mark.vcr
@pytest.mark.default_cassette("openai_responses_batch.yaml")
async def test_openai_responses_endpoint_batch(mode: str) -> None:
    client = client_for(mode, CASES["openai"])
    try:
        job = await run(client.batch("openai:gpt-4o-mini", RESPONSES_REQUESTS))
        job = await run(client.batches.wait(job, poll_interval=0))
        out = await results(client, job)
        answers = [r for _, r in out]
        assert [cid for cid, _ in out] == ["r1", "r2"]
        assert [a.text for a in answers] == ["This is a test.", "7"]
        assert all(isinstance(a, Completion) for a in answers)
        for a in answers:
            assert a.cost.total == token_cost(client, "openai", "gpt-4o-mini", a, True)
        assert job.cost.total == priced(client, "openai", "gpt-4o-mini", answers, True)
        assert job.saved == priced(client, "openai", "gpt-4o-mini", answers, False) - job.cost.total
        assert len(batch_rows(client)) == 2
    finally:
        await close(client)


def test_responses_cassette_validates_against_the_spec() -> None:
    if not openai_spec_path().is_file():
        pytest.skip(f"spec not found at {openai_spec_path()}: set COMPUTEKIT_SPECS_DIR")
    spec = openai_spec()
    inters = yaml.safe_load((CASSETTES / "test_batch_client" / "openai_responses_batch.yaml").read_text("utf-8"))[
        "interactions"]
    body = lambda i: json.loads(inters[i]["response"]["body"]["string"])  # noqa: E731
    problems = openai_errors(spec, "OpenAIFile", body(0)) + openai_errors(spec, "Batch", body(1))
    problems += openai_errors(spec, "Batch", body(2))
    lines = [json.loads(x) for x in inters[3]["response"]["body"]["string"].splitlines() if x]
    for line in lines:
        problems += openai_errors(spec, "Response", line["response"]["body"])
    sent = [json.loads(x) for x in inters[0]["request"]["body"].split("\r\n\r\n")[2].splitlines()[:2]]
    for line in sent:
        assert line["url"] == "/v1/responses"
        problems += openai_errors(spec, "CreateResponse", line["body"])
    assert not problems, "\n".join(problems)
    assert openai_errors(spec, "Response", {**lines[0]["response"]["body"], "status": "done"})  # not vacuous


# ------------------------------------------------------------------------------------------------ lifecycle
# A scripted OpenAI-shaped host (test_finetune.Host): answers by method and path, counts what it saw.

BATCH_ID = "batch_abc"
OUT, ERR = "file-out", "file-err"


def batch_json(status: str, completed: int = 0, failed: int = 0, **extra: Any) -> dict[str, Any]:
    total = 3 if status not in ("validating",) else 0
    return {"id": BATCH_ID, "object": "batch", "endpoint": "/v1/chat/completions", "input_file_id": "file-in",
            "completion_window": "24h", "status": status, "created_at": 1_764_236_401,
            "request_counts": {"total": total, "completed": completed, "failed": failed}, **extra}


def done_json(status: str = "completed", **extra: Any) -> dict[str, Any]:
    return batch_json(status, 2, 1, output_file_id=OUT, error_file_id=ERR, completed_at=1_764_240_060, **extra)


def answer_line(cid: str, prompt: int, completion: int, text: str = "ok") -> str:
    body = {"id": f"chatcmpl-{cid}", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini-2024-07-18",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                      "total_tokens": prompt + completion}}
    return json.dumps({"id": f"r-{cid}", "custom_id": cid, "response": {"status_code": 200, "request_id": f"req-{cid}",
                                                                       "body": body}, "error": None}) + "\n"


OUT_BODY = answer_line("q1", 12, 5) + answer_line("q2", 12, 4)
ERR_BODY = json.dumps({"id": "r-q3", "custom_id": "q3", "response": {"status_code": 400, "request_id": "req-q3",
                       "body": {"error": {"message": "too long", "type": "invalid_request_error",
                                          "code": "string_above_max_length"}}}, "error": None}) + "\n"


def file_reply(body: str) -> httpx.Response:
    return httpx.Response(200, content=body.encode(), headers={"content-type": "application/octet-stream"})


def openai_host(*polls: dict[str, Any]) -> Host:
    return (Host()
            .on("POST", "/v1/files", {"object": "file", "id": "file-in", "purpose": "batch", "filename": "batch.jsonl",
                                      "bytes": 1, "status": "processed"})
            .on("POST", "/v1/batches", batch_json("validating"))
            .on("GET", f"/v1/batches/{BATCH_ID}", *(polls or (done_json(),)))
            .on("GET", f"/v1/files/{OUT}/content", file_reply(OUT_BODY))
            .on("GET", f"/v1/files/{ERR}/content", file_reply(ERR_BODY)))


def item_cost(prompt: int, completion: int, batch: bool = True) -> Decimal:
    """What an answer of gpt-4o-mini costs: its usage x the table's batch (or synchronous) token prices."""
    ref = ck.Client(config=None, ledger="none")._core.adapter("openai").price_ref("gpt-4o-mini-2024-07-18")
    found = PriceBook().rates(PriceRef(ref.provider, ref.model, ref.table_provider,
                                       context=(BATCH_CONTEXT,) if batch else ()))
    assert found is not None
    return (prompt * found.prices["input_mtok"] + completion * found.prices["output_mtok"]) / MTOK


def budget_state(c: Any, name: str = "default") -> tuple[Decimal, Decimal]:
    st = c.budget_status()[name]
    return st.spent, st.reserved


async def job_call(job: ck.BatchJob, name: str, *args: Any, **kwargs: Any) -> Any:
    """``job.name(...)``, or ``job.async_name(...)`` when the job is bound to an async client."""
    if isinstance(job._client, ck.AsyncClient):
        return await getattr(job, f"async_{name}")(*args, **kwargs)
    return getattr(job, name)(*args, **kwargs)


async def job_results(job: ck.BatchJob, stop_after: int | None = None) -> list[tuple[str, Any]]:
    """``job.results()`` (or ``job.async_results()``), read to its end or ``stop_after`` items."""
    out: list[tuple[str, Any]] = []
    if isinstance(job._client, ck.AsyncClient):
        it = job.async_results()
        async for x in it:
            out.append(x)
            if stop_after is not None and len(out) == stop_after:
                await it.aclose()
                break
        return out
    sync_it = job.results()
    for x in sync_it:
        out.append(x)
        if stop_after is not None and len(out) == stop_after:
            sync_it.close()
            break
    return out


async def test_estimate_only_sends_nothing_and_cannot_be_followed(mode: str, tmp_path: Path) -> None:
    host = openai_host()
    c = ft_client(mode, host, tmp_path)
    try:
        job = await run(c.batch("openai:gpt-4o-mini", REQUESTS, estimate_only=True))
        assert host.seen == []
        assert (job.id, job.estimate_only, job.total, job.kind) == (None, True, 3, "complete")
        assert job.estimate is not None
        assert job.estimate.estimated
        assert job.estimate.total is not None
        assert all(line.item.startswith("batch ") for line in job.estimate.lines)
        with pytest.raises(ck.InvalidRequestError, match="estimate only"):
            await job_call(job, "wait")
    finally:
        await close(c)


async def test_an_estimate_needs_no_key_and_sends_nothing(mode: str, case: Case,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from computekit.adapters._registry import adapter_class

    for var in (*adapter_class(case.provider).key_env_vars, "GOOGLE_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    keyed = client_for(mode, case)
    keyless = make_client(mode, providers={case.provider: {k: v for k, v in case.settings.items()
                                                           if k != "api_key"}}, retry_policy=policy(Sleeps()))
    try:
        expected = (await run(keyed.batch(case.model, REQUESTS, estimate_only=True))).estimate
        job = await run(keyless.batch(case.model, REQUESTS, estimate_only=True))
        assert (job.estimate_only, job.total) == (True, len(REQUESTS))
        assert job.estimate == expected
        assert job.estimate is not None
        assert job.estimate.total is not None
        # Submitting is what needs the key: refused before anything is sent.
        with pytest.raises(ck.MissingAPIKeyError):
            await run(keyless.batch(case.model, REQUESTS))
    finally:
        await close(keyed)
        await close(keyless)


async def test_total_is_the_number_submitted_until_the_provider_counts(mode: str, tmp_path: Path) -> None:
    host = openai_host(batch_json("validating"), batch_json("in_progress", 1), done_json())
    c = ft_client(mode, host, tmp_path)
    try:
        job = await run(c.batch("openai:gpt-4o-mini", REQUESTS))
        assert batch_json("validating")["request_counts"]["total"] == 0  # what the provider says while validating
        assert (job.status, job.total) == ("validating", len(REQUESTS))
        job = await job_call(job, "refresh")
        assert (job.status, job.total) == ("validating", len(REQUESTS))
        job = await job_call(job, "refresh")
        assert (job.status, job.total, job.completed) == ("in_progress", 3, 1)
    finally:
        await close(c)


@pytest.mark.parametrize("model", ["cohere:command-r", "replicate:acme/model", "groq:llama-3.1-8b-instant"])
async def test_providers_without_a_batch_api_refuse_before_any_http(mode: str, tmp_path: Path, model: str) -> None:
    host = openai_host()
    provider = model.split(":")[0]
    c = ft_client(mode, host, tmp_path, providers={provider: {"api_key": "k" * 20}},
                  budget={"limit_usd": "5", "period": "total"})
    try:
        with pytest.raises(ck.UnsupportedCapabilityError, match="batch"):
            await run(c.batch(model, REQUESTS))
        with pytest.raises(ck.UnsupportedCapabilityError, match="batch"):
            await run(c.batches.retrieve(f"{provider}:b1"))
        assert host.seen == []
        assert budget_state(c) == (0, 0)
    finally:
        await close(c)


async def test_bad_lines_are_refused_before_any_upload(mode: str, tmp_path: Path) -> None:
    host = openai_host()
    c = ft_client(mode, host, tmp_path)
    try:
        bad = [*REQUESTS, {"custom_id": "q1", "messages": [{"role": "user", "content": "again"}]},
               {"custom_id": "q5", "messages": [{"role": "user", "content": "x"}], "temperatur": 1}]
        with pytest.raises(ck.InvalidRequestError, match=r"line 4: custom_id 'q1' repeats line 1.*line 5: unknown"):
            await run(c.batch("openai:gpt-4o-mini", bad))
        with pytest.raises(ck.InvalidRequestError, match="estimate_onyl"):
            await run(c.batch("openai:gpt-4o-mini", REQUESTS, estimate_onyl=True))
        assert host.seen == []
    finally:
        await close(c)


async def test_a_batch_over_budget_is_refused_before_the_upload(mode: str, tmp_path: Path) -> None:
    host = openai_host()
    c = ft_client(mode, host, tmp_path, budget={"limit_usd": "0.0000001"})
    try:
        with pytest.raises(ck.BudgetExceededError) as info:
            await run(c.batch("openai:gpt-4o-mini", REQUESTS))
        assert host.seen == []
        estimate = (await run(c.batch("openai:gpt-4o-mini", REQUESTS, estimate_only=True))).estimate
        assert info.value.requested == estimate.total
        assert budget_state(c) == (0, 0)
        assert c.ledger.rows() == []
    finally:
        await close(c)


async def test_a_batch_without_max_tokens_has_no_worst_case_and_a_budget_refuses_it(mode: str,
                                                                                    tmp_path: Path) -> None:
    host = openai_host()
    c = ft_client(mode, host, tmp_path, budget={"limit_usd": "5", "period": "total"})
    try:
        unbounded = [{k: v for k, v in r.items() if k != "max_tokens"} for r in REQUESTS]
        with pytest.raises(ck.BudgetExceededError, match="unknown"):
            await run(c.batch("openai:gpt-4o-mini", unbounded))
        assert host.seen == []
    finally:
        await close(c)


async def test_budget_reserves_the_estimate_settles_each_item_and_releases_the_rest(mode: str, tmp_path: Path,
                                                                                   ledger_url: str) -> None:
    """On SQLite and PostgreSQL: each item settles its share of the reservation in the row's transaction."""
    host = openai_host(batch_json("in_progress"), batch_json("in_progress"), done_json())
    c = ft_client(mode, host, tmp_path, ledger=ledger_url, budget={"limit_usd": "5", "period": "total"})
    try:
        job = await run(c.batch("openai:gpt-4o-mini", REQUESTS))
        estimate = job.estimate.total
        assert estimate is not None
        assert [r.url.path for r in host.seen] == ["/v1/files", "/v1/batches"]
        assert budget_state(c) == (0, estimate)  # held from before the upload while the batch runs
        job = await job_call(job, "refresh")
        assert job.status == "in_progress"
        with pytest.raises(ck.InvalidRequestError, match="still in_progress"):  # polled once more first
            await job_results(job)
        job = await job_call(job, "wait", poll_interval=0)
        assert budget_state(c) == (0, estimate)  # ended, results not read yet: still held
        first = await job_results(job, stop_after=1)
        assert [cid for cid, _ in first] == ["q1"]
        share = estimate / 3
        spent, reserved = budget_state(c)
        assert spent == item_cost(12, 5)
        assert reserved == estimate - share  # q1 settled its share of the worst case
        out = await job_results(job)
        assert [cid for cid, _ in out] == ["q1", "q2", "q3"]
        actual = item_cost(12, 5) + item_cost(12, 4)
        assert job.cost.total == actual
        assert job.synchronous == item_cost(12, 5, False) + item_cost(12, 4, False)
        assert job.saved == job.synchronous - actual
        assert budget_state(c) == (actual, 0)  # every item settled, the rest released
        rows = [r for r in c.ledger.rows() if r.verb == "batch"]
        assert len(rows) == 3
        assert {r.reserved for r in rows} == {share}
        # read again: nothing written or settled twice
        again = await job_results(job)
        assert [cid for cid, _ in again] == ["q1", "q2", "q3"]
        assert len([r for r in c.ledger.rows() if r.verb == "batch"]) == 3
        assert budget_state(c) == (actual, 0)
        assert job.cost.total == actual
    finally:
        await close(c)


async def test_a_failed_batch_raises_and_releases_its_reservation(mode: str, tmp_path: Path) -> None:
    failed = batch_json("failed", errors={"object": "list", "data": [
        {"code": "invalid_json_line", "line": 2, "message": "This line is not parseable as valid JSON."}]},
        failed_at=1_764_236_500)
    host = openai_host(failed)
    c = ft_client(mode, host, tmp_path, budget={"limit_usd": "5", "period": "total"})
    try:
        job = await run(c.batch("openai:gpt-4o-mini", REQUESTS))
        with pytest.raises(ck.BatchFailedError, match="invalid_json_line") as info:
            await job_call(job, "wait", poll_interval=0)
        assert info.value.job.status == "failed"
        assert job.status == "failed"  # adopted before the error was raised
        assert budget_state(c) == (0, 0)
        assert await job_results(job) == []
        assert [r for r in c.ledger.rows() if r.verb == "batch"] == []
    finally:
        await close(c)


async def test_cancel_then_results_price_what_ran_and_type_what_did_not(mode: str, tmp_path: Path) -> None:
    never_ran = json.dumps({"id": "r-q3", "custom_id": "q3", "response": None, "error": {
        "code": "batch_cancelled", "message": "This request was not executed: the batch was cancelled."}}) + "\n"
    host = (openai_host(batch_json("cancelling"), done_json("cancelled", cancelled_at=1_764_237_000))
            .on("POST", f"/v1/batches/{BATCH_ID}/cancel", batch_json("cancelling"))
            .on("GET", f"/v1/files/{ERR}/content", file_reply(never_ran)))
    c = ft_client(mode, host, tmp_path, budget={"limit_usd": "5", "period": "total"})
    try:
        job = await run(c.batch("openai:gpt-4o-mini", REQUESTS))
        job = await job_call(job, "cancel")
        assert job.status == "canceling"
        assert host.hits("POST", f"/v1/batches/{BATCH_ID}/cancel") == 1
        job = await job_call(job, "wait", poll_interval=0)
        assert job.status == "canceled"
        out = dict(await job_results(job))
        assert isinstance(out["q1"], Completion)
        assert isinstance(out["q3"], ck.ProviderError)
        assert "cancelled" in str(out["q3"])
        rows = {r.tags["custom_id"]: r for r in c.ledger.rows() if r.verb == "batch"}
        assert rows["q3"].cost == 0  # never ran: not billed
        assert out["q3"].cost.total == 0
        assert rows["q1"].cost == item_cost(12, 5)
        assert budget_state(c) == (item_cost(12, 5) + item_cost(12, 4), 0)
    finally:
        await close(c)


async def test_a_failed_item_the_provider_billed_carries_its_unknown_cost(mode: str, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A provider that bills a failed item without its usage (none of today's does): the error's cost is
    unknown, with the reason, like its ledger row's, and the batch's total is unknown (never a partial sum)."""
    from computekit.adapters.openai import OpenAIAdapter

    failure = OpenAIAdapter.batch_failure
    monkeypatch.setattr(OpenAIAdapter, "batch_failure",
                        lambda self, *a, **kw: failure(self, *a, **{**kw, "billed": True}))
    c = ft_client(mode, openai_host(), tmp_path)
    try:
        job = await run(c.batch("openai:gpt-4o-mini", REQUESTS))
        job = await job_call(job, "wait", poll_interval=0)
        out = dict(await job_results(job))
        error = out["q3"]
        assert isinstance(error, ck.ProviderError)
        assert error.cost is not None
        assert error.cost.total is None
        assert "no usage" in (error.cost.reason or "")
        rows = {r.tags["custom_id"]: r for r in c.ledger.rows() if r.verb == "batch"}
        assert rows["q3"].cost is None
        assert job.cost.total is None
    finally:
        await close(c)


async def test_an_expired_batch_prices_what_ran_and_reads_results_on_a_job_not_yet_refreshed(
    mode: str, tmp_path: Path
) -> None:
    expired_item = json.dumps({"id": "r-q3", "custom_id": "q3", "response": None, "error": {
        "code": "batch_expired", "message": "This request could not be executed before the completion window "
                                            "expired."}}) + "\n"
    host = (openai_host(done_json("expired", expired_at=1_764_322_801))
            .on("GET", f"/v1/files/{ERR}/content", file_reply(expired_item)))
    c = ft_client(mode, host, tmp_path, budget={"limit_usd": "5", "period": "total"})
    try:
        job = await run(c.batch("openai:gpt-4o-mini", REQUESTS))
        assert job.status == "validating"
        out = dict(await results(c, job))  # polled once, found ended, read: the job held here is updated
        assert job.status == "expired"
        assert isinstance(out["q3"], ck.ProviderError)
        assert "expired" in str(out["q3"])
        actual = item_cost(12, 5) + item_cost(12, 4)
        assert job.cost.total == actual  # what ran before the window closed is billed; q3 is not
        assert budget_state(c) == (actual, 0)
    finally:
        await close(c)


async def test_a_large_gemini_batch_streams_its_responses_file(mode: str, tmp_path: Path) -> None:
    """A batch too large to answer inline names a responses file: it is downloaded from the API's host and read
    line by line like any other provider's."""
    def gemini_answer(text: str, prompt: int, out: int) -> dict[str, Any]:
        return {"candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP"}],
                "usageMetadata": {"promptTokenCount": prompt, "candidatesTokenCount": out,
                                  "totalTokenCount": prompt + out}, "modelVersion": "gemini-2.5-flash"}

    meta = {"name": "batches/big1", "model": "models/gemini-2.5-flash", "displayName": "computekit batch",
            "state": "BATCH_STATE_PENDING", "batchStats": {"requestCount": "3"}}
    done = {**meta, "state": "BATCH_STATE_SUCCEEDED", "output": {"responsesFile": "files/out-1"},
            "batchStats": {"requestCount": "3", "successfulRequestCount": "3"}}
    lines = "".join(json.dumps({"key": f"q{i}", "response": gemini_answer(str(i), 6, i)}) + "\n" for i in (1, 2, 3))
    host = (Host()
            .on("POST", "/v1beta/models/gemini-2.5-flash:batchGenerateContent", {"name": "batches/big1",
                                                                                "metadata": meta})
            .on("GET", "/v1beta/batches/big1", {"name": "batches/big1", "metadata": done, "done": True})
            .on("GET", "/download/v1beta/files/out-1:download", file_reply(lines)))
    c = ft_client(mode, host, tmp_path, providers={"gemini": {"api_key": "gemini-test-0123456789"}})
    try:
        job = await run(c.batch("gemini:gemini-2.5-flash", REQUESTS))
        job = await run(c.batches.wait(job, poll_interval=0))
        out = await results(c, job)
        assert [(cid, r.text) for cid, r in out] == [("q1", "1"), ("q2", "2"), ("q3", "3")]
        download = host.seen[-1]
        assert (download.url.host, download.url.params["alt"]) == ("generativelanguage.googleapis.com", "media")
        assert download.headers["x-goog-api-key"] == "gemini-test-0123456789"  # the API's own host: its key
        answers = [r for _, r in out]
        assert job.cost.total == priced(c, "gemini", "gemini-2.5-flash", answers, True)
        assert len(batch_rows(c)) == 3
    finally:
        await close(c)


async def test_wait_with_progress_shows_the_counts_on_a_terminal(mode: str, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    host = openai_host(batch_json("in_progress", 1, 0), done_json())
    c = ft_client(mode, host, tmp_path)
    try:
        job = await run(c.batch("openai:gpt-4o-mini", REQUESTS))
        monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
        await run(c.batches.wait(job, poll_interval=0, progress=True))
        err = capsys.readouterr().err
        assert f"openai:gpt-4o-mini {BATCH_ID}: in_progress, 1/3 completed, 0 failed" in err
        assert f"{BATCH_ID}: completed, 2/3 completed, 1 failed" in err
        monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
        await run(c.batches.wait(job, poll_interval=0, progress=True))
        assert capsys.readouterr().err == ""  # not a terminal: nothing drawn
    finally:
        await close(c)


async def test_a_sync_method_on_an_async_batch_fails_clearly(mode: str, tmp_path: Path) -> None:
    host = openai_host()
    c = ft_client(mode, host, tmp_path)
    try:
        job = await run(c.batch("openai:gpt-4o-mini", REQUESTS))
        if mode == "async":
            with pytest.raises(ck.InvalidRequestError, match=r"await job.async_wait"):
                job.wait()
            with pytest.raises(ck.InvalidRequestError, match=r"async_results"):
                job.results()
        else:
            with pytest.raises(ck.InvalidRequestError, match=r"call job.wait"):
                await job.async_wait()
            with pytest.raises(ck.InvalidRequestError, match=r"sync Client"):
                job.async_results()
        with pytest.raises(ck.InvalidRequestError, match="timout"):
            await run(c.batches.wait(job, timout=1))
    finally:
        await close(c)


async def test_wait_times_out_with_the_last_state_and_never_sleeps(mode: str, tmp_path: Path) -> None:
    sleeps = Sleeps()
    host = openai_host(batch_json("in_progress"))
    c = ft_client(mode, host, tmp_path, sleeps)
    try:
        job = await run(c.batch("openai:gpt-4o-mini", REQUESTS))
        with pytest.raises(ck.BatchTimeoutError) as info:
            await run(c.batches.wait(job, timeout=100))
        assert info.value.job.status == "in_progress"
        assert sum(sleeps.waits) == 100  # 10, 15, 22.5 ... then what is left of the 100 s
        assert sleeps.waits[:3] == [10.0, 15.0, 22.5]
        assert host.hits("GET", f"/v1/batches/{BATCH_ID}") == len(sleeps.waits)
    finally:
        await close(c)


async def test_attach_from_another_client_records_each_item_once(mode: str, tmp_path: Path) -> None:
    host = openai_host(batch_json("in_progress"), done_json())
    ledger = f"sqlite:///{tmp_path / 'shared.db'}"
    a = ft_client(mode, host, tmp_path, ledger=ledger)
    b = ft_client(mode, host, tmp_path, ledger=ledger)
    try:
        submitted = await run(a.batch("openai:gpt-4o-mini", REQUESTS, tags={"team": "search"}))
        await close(a)  # the submitting process goes away before reading anything
        if mode == "async":
            job = await ck.BatchJob.async_attach(f"openai:{submitted.id}", client=b)
        else:
            job = ck.BatchJob.attach(f"openai:{submitted.id}", client=b)
        assert (job.id, job.provider, job.status) == (BATCH_ID, "openai", "in_progress")
        assert job.model == ""  # this batch object names no model: each item is priced at its answer's model
        job = await job_call(job, "wait", poll_interval=0)
        out = await job_results(job)
        assert [cid for cid, _ in out] == ["q1", "q2", "q3"]
        assert job.cost.total == item_cost(12, 5) + item_cost(12, 4)
        c = ft_client(mode, host, tmp_path, ledger=ledger)  # a third process reads them again
        again = await run(c.batches.retrieve(f"openai:{BATCH_ID}"))
        assert len(await results(c, again)) == 3
        await close(c)
        rows = [r for r in b.ledger.rows() if r.verb == "batch"]
        assert sorted(r.once_key for r in rows) == [f"batch:openai:{BATCH_ID}:q{i}" for i in (1, 2, 3)]
    finally:
        await close(b)


async def test_an_attached_anthropic_batch_learns_its_model_from_the_first_answer(mode: str, tmp_path: Path) -> None:
    """Anthropic's batch object names no model: unknown on attach, then the first answer's, on every row."""
    inters = yaml.safe_load((CASSETTES / "test_batch_client" / "anthropic_batch.yaml").read_text("utf-8"))
    create, done, lines = (i["response"]["body"]["string"] for i in inters["interactions"])
    batch_id = json.loads(create)["id"]
    assert "model" not in json.loads(done)
    host = (Host().on("GET", f"/v1/messages/batches/{batch_id}", json.loads(done))
            .on("GET", f"/v1/messages/batches/{batch_id}/results", file_reply(lines)))
    c = ft_client(mode, host, tmp_path, providers={"anthropic": {"api_key": "sk-ant-test-0123456789"}})
    try:
        job = await run(c.batches.retrieve(f"anthropic:{batch_id}"))
        assert (job.status, job.model) == ("completed", "")  # unknown until results are read
        out = dict(await results(c, job))
        named = json.loads(lines.splitlines()[0])["result"]["message"]["model"]
        assert job.model == named
        assert out["q1"].model == named
        assert out["q3"].cost.total == 0
        rows = batch_rows(c)
        assert {r.tags["custom_id"]: r.model for r in rows} == {"q1": named, "q2": named, "q3": named}
        assert job.cost.total == priced(c, "anthropic", named, [out["q1"], out["q2"]], True)
    finally:
        await close(c)


async def test_results_read_in_another_process_settle_the_submitters_reservation(mode: str, tmp_path: Path,
                                                                                  ledger_url: str) -> None:
    """On SQLite and PostgreSQL, as ``computekit batch submit`` then ``computekit batch results`` run: the batch's
    reservation is held in the shared ledger under its key, so the items read by another client settle their
    shares of it, each once, and the rest is released when every result has been read."""
    host = openai_host(done_json())
    budget = {"limit_usd": "5", "period": "total"}
    a = ft_client(mode, host, tmp_path, ledger=ledger_url, budget=budget)
    b = ft_client(mode, host, tmp_path, ledger=ledger_url, budget=budget)
    c = ft_client(mode, host, tmp_path, ledger=ledger_url, budget=budget)
    try:
        submitted = await run(a.batch("openai:gpt-4o-mini", REQUESTS))
        estimate = submitted.estimate.total
        assert estimate is not None
        await close(a)  # the submitting process is gone
        assert budget_state(b) == (0, estimate)
        job = await run(b.batches.retrieve(f"openai:{submitted.id}"))
        first = await job_results(job, stop_after=1)  # b stops after one item
        assert [cid for cid, _ in first] == ["q1"]
        share = estimate / 3
        assert budget_state(c) == (item_cost(12, 5), estimate - share)
        other = await run(c.batches.retrieve(f"openai:{submitted.id}"))
        out = await results(c, other)  # a third process reads them all: q1 is neither written nor settled again
        assert [cid for cid, _ in out] == ["q1", "q2", "q3"]
        actual = item_cost(12, 5) + item_cost(12, 4)
        for client in (b, c):
            assert budget_state(client) == (actual, 0)
        rows = [r for r in c.ledger.rows() if r.verb == "batch"]
        assert len(rows) == 3
        assert {r.reserved for r in rows} == {share}
        assert len(await job_results(job)) == 3  # b reads to the end now: nothing written, settled or released twice
        assert budget_state(b) == (actual, 0)
        assert len([r for r in b.ledger.rows() if r.verb == "batch"]) == 3
    finally:
        await close(b)
        await close(c)


@pytest.mark.parametrize("remote", [False, True], ids=["embedded", "remote"])
async def test_a_reader_without_budgets_settles_off_the_event_loop_only_async_with_a_remote_ledger(
        mode: str, remote: bool, tmp_path: Path) -> None:
    """A client with no budget of its own that reads a batch submitted under one still finds and settles its
    reservation: off the event loop when it is async and the ledger is remote, inline otherwise."""
    import threading

    host = openai_host(done_json())
    path = tmp_path / "shared.db"
    a = ft_client(mode, host, tmp_path, ledger=f"sqlite:///{path}", budget={"limit_usd": "5", "period": "total"})
    watched = WatchedLedger(path, remote=remote)
    b = ft_client(mode, host, tmp_path, ledger=watched.ledger)
    caller = threading.current_thread()
    try:
        submitted = await run(a.batch("openai:gpt-4o-mini", REQUESTS))
        job = await run(b.batches.retrieve(f"openai:{submitted.id}"))
        assert len(await results(b, job)) == 3
        assert watched.steps() == ["find", "part", "part", "part", "release"]
        assert watched.off(caller) == [mode == "async" and remote] * 5
        assert budget_state(a) == (item_cost(12, 5) + item_cost(12, 4), 0)
    finally:
        await close(a)
        await close(b)


async def test_module_level_batch_uses_the_default_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789abcdef")
    job = ck.batch("openai:gpt-4o-mini", REQUESTS, estimate_only=True)
    ajob = await ck.abatch("openai:gpt-4o-mini", REQUESTS, estimate_only=True)
    assert job.estimate is not None
    assert ajob.estimate is not None
    assert job.estimate.total == ajob.estimate.total
    assert job.estimate.total is not None
    with pytest.raises(ck.InvalidRequestError, match="estimate_onyl"):
        ck.batch("openai:gpt-4o-mini", REQUESTS, estimate_onyl=True)  # type: ignore[call-arg]


async def test_a_key_echoed_back_in_result_lines_never_reaches_errors_or_the_ledger(mode: str,
                                                                                    tmp_path: Path) -> None:
    from test_finetune import KEY

    echoed = json.dumps({"id": "r-q3", "custom_id": "q3", "response": {
        "status_code": 401, "request_id": KEY,
        "body": {"error": {"message": f"Incorrect API key provided: {KEY}", "type": "invalid_request_error"}}},
        "error": None}) + "\n"
    host = openai_host().on("GET", f"/v1/files/{ERR}/content", file_reply(echoed))
    c = ft_client(mode, host, tmp_path)
    try:
        job = await run(c.batch("openai:gpt-4o-mini", REQUESTS))
        job = await run(c.batches.wait(job, poll_interval=0))
        out = dict(await results(c, job))
        err = out["q3"]
        assert isinstance(err, ck.AuthenticationError)
        for text in (str(err), repr(err), json.dumps(err.body), str(err.request_id), repr(job)):
            assert KEY not in text
        for row in c.ledger.rows():
            assert KEY not in repr(row)
    finally:
        await close(c)
