"""``finetune()``: the job lifecycle through the public API, sync and async, on a scripted OpenAI-shaped server.

HTTP goes to an ``httpx.MockTransport`` host that answers by method and path and counts what it saw. Waits are
recorded by a fake sleep that moves a fake clock (nothing sleeps). Prices come from the price tables.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from _support import WatchedLedger
from adapters._clients import Sleeps, close, mode, policy  # noqa: F401  (mode: a shared fixture, registered by name)

import computekit as ck
from computekit._config import RoutingConfig
from computekit._finetune import Progress, count_example_tokens, load_training
from computekit.adapters._base import FineTuneSpec
from computekit.pricing import PriceBook
from computekit.routing import Router

KEY = "sk-test-0123456789abcdef"
BASE = "gpt-4o-mini-2024-07-18"
MODEL = f"openai:{BASE}"


def examples(n: int = 10) -> list[dict[str, Any]]:
    return [{"messages": [{"role": "system", "content": "You are terse."},
                          {"role": "user", "content": f"What is {i} + {i}?"},
                          {"role": "assistant", "content": str(i + i)}]} for i in range(n)]


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), "utf-8")
    return path


def job_json(status: str, **extra: Any) -> dict[str, Any]:
    return {"object": "fine_tuning.job", "id": "ftjob-abc", "model": BASE, "created_at": 1_764_000_000,
            "finished_at": None, "fine_tuned_model": None, "organization_id": "org-x", "result_files": [],
            "status": status, "validation_file": None, "training_file": "file-train",
            "hyperparameters": {"n_epochs": 3, "batch_size": 1, "learning_rate_multiplier": 1.8},
            "trained_tokens": None, "error": {}, **extra}


def done_json(trained: int = 1500) -> dict[str, Any]:
    return job_json("succeeded", finished_at=1_764_000_900, trained_tokens=trained,
                    fine_tuned_model=f"ft:{BASE}:org-x::AbC123")


@dataclass
class Host:
    """Answers by (method, path prefix) with the next scripted reply for that route (the last one repeats)."""

    routes: dict[tuple[str, str], list[Any]] = field(default_factory=dict)
    seen: list[httpx.Request] = field(default_factory=list)

    def on(self, method: str, path: str, *replies: Any) -> Host:
        self.routes[(method, path)] = list(replies)
        return self

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        for (method, path), replies in self.routes.items():
            if request.method == method and request.url.path == path:
                n = sum(1 for r in self.seen if r.method == method and r.url.path == path)
                reply = replies[min(n - 1, len(replies) - 1)]
                if isinstance(reply, httpx.Response):
                    return reply
                return httpx.Response(200, json=reply, headers={"x-request-id": "req_1"})
        return httpx.Response(404, json={"error": {"message": f"no route {request.method} {request.url.path}"}})

    def hits(self, method: str | None = None, path: str | None = None) -> int:
        return sum(1 for r in self.seen if (method is None or r.method == method)
                   and (path is None or r.url.path == path))


def client(mode: str, host: Host, tmp_path: Path, sleeps: Sleeps | None = None, **settings: Any) -> Any:
    sleeps = sleeps or Sleeps()
    transport = httpx.MockTransport(host)
    kwargs: dict[str, Any] = {
        "config": None, "providers": settings.pop("providers", {"openai": {"api_key": KEY}}),
        "retry_policy": policy(sleeps),
        "router": Router(RoutingConfig(), clock=sleeps.clock),
        "ledger": settings.pop("ledger", f"sqlite:///{tmp_path / 'ledger.db'}"), **settings,
    }
    if mode == "async":
        return ck.AsyncClient(http_client=httpx.AsyncClient(transport=transport), **kwargs)
    return ck.Client(http_client=httpx.Client(transport=transport), **kwargs)


async def run(value: Any) -> Any:
    import inspect

    return await value if inspect.isawaitable(value) else value


async def job_call(job: ck.FineTuneJob, name: str, *args: Any, **kwargs: Any) -> Any:
    """``job.name(...)``, or ``job.async_name(...)`` when the job is bound to an async client."""
    if isinstance(job._client, ck.AsyncClient):
        return await getattr(job, f"async_{name}")(*args, **kwargs)
    return getattr(job, name)(*args, **kwargs)


def training_price(model: str = BASE) -> Decimal:
    rates = PriceBook().training("openai", model)
    assert rates is not None
    assert rates.per_mtok is not None
    return rates.per_mtok / Decimal(1_000_000)


def tokens_of(rows: list[dict[str, Any]], encoding: str = "o200k_base") -> int:
    from computekit._finetune import _Counter

    count = _Counter(encoding)
    return sum(count_example_tokens(r, count) for r in rows)


def launch_host() -> Host:
    return (Host()
            .on("POST", "/v1/files", {"object": "file", "id": "file-train", "purpose": "fine-tune",
                                      "filename": "train.jsonl", "bytes": 1, "status": "processed"})
            .on("POST", "/v1/fine_tuning/jobs", job_json("validating_files")))


# ------------------------------------------------------------------------------------------------ success


async def test_launch_wait_success_prices_trained_tokens_and_writes_the_ledger_once(mode: str,
                                                                                   tmp_path: Path) -> None:
    rows = examples(10)
    host = launch_host().on("GET", "/v1/fine_tuning/jobs/ftjob-abc", job_json("queued"), job_json("running"),
                            done_json(1500))
    sleeps = Sleeps()
    c = client(mode, host, tmp_path, sleeps)
    try:
        job = await run(c.finetune(MODEL, training_file=write_jsonl(tmp_path / "t.jsonl", rows), epochs=3,
                                   tags={"team": "ml"}))
        assert job.status == "validating"
        assert job.id == "ftjob-abc"
        assert job.provider == "openai"
        assert job.estimate.estimated is True
        assert job.estimate.total == Decimal(tokens_of(rows) * 3) * training_price()
        assert job.cost.total is None  # not ended: unknown, not 0
        done = await job_call(job, "wait", poll_interval=10)
        assert done.status == "succeeded"
        assert done.fine_tuned_model == f"openai:ft:{BASE}:org-x::AbC123"
        assert done.trained_tokens == 1500
        assert done.cost.total == Decimal(1500) * training_price()
        assert done.cost.estimated is False
        assert done.estimate == job.estimate
        assert sleeps.waits == [10, 10, 10]
        again = await job_call(done, "wait")  # a second wait on an ended job: nothing new is written
        assert again.status == "succeeded"
        [row] = c.ledger.rows()
        assert (row.verb, row.provider, row.model, row.outcome) == ("finetune", "openai", BASE, "success")
        assert row.cost == done.cost.total
        assert row.input_tokens == 1500
        assert row.once_key == "finetune:openai:ftjob-abc"
        assert row.tags == {"team": "ml"}
        assert row.request_id == "ftjob-abc"
    finally:
        await close(c)
    # what was sent: the file (multipart, purpose fine-tune), then the job with the epochs asked for
    upload = next(r for r in host.seen if r.url.path == "/v1/files")
    assert upload.headers["content-type"].startswith("multipart/form-data; boundary=computekit-")
    assert b'name="purpose"\r\n\r\nfine-tune' in upload.content
    assert upload.content.count(b'{"messages"') == 10
    created = json.loads(next(r for r in host.seen if r.url.path == "/v1/fine_tuning/jobs").content)
    assert created == {"model": BASE, "training_file": "file-train",
                       "method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 3}}}}


async def test_a_zero_poll_interval_does_not_wait_and_a_negative_one_is_refused(mode: str, tmp_path: Path) -> None:
    host = launch_host().on("GET", "/v1/fine_tuning/jobs/ftjob-abc", job_json("running"), done_json(1500))
    sleeps = Sleeps()
    c = client(mode, host, tmp_path, sleeps)
    try:
        with pytest.raises(ck.InvalidRequestError, match="poll_interval"):  # refused before anything is sent
            await run(c.finetune(MODEL, training_file=examples(10), wait=True, poll_interval=-5))
        assert host.seen == []
        job = await run(c.finetune(MODEL, training_file=examples(10)))
        with pytest.raises(ck.InvalidRequestError, match="poll_interval"):
            await job_call(job, "wait", poll_interval=-5)
        await job_call(job, "wait", poll_interval=0)
        assert job.status == "succeeded"
        assert sleeps.waits == [0, 0]  # 0 is a real interval, not "use the default"
    finally:
        await close(c)


async def test_a_second_client_reattaching_does_not_write_the_job_again(mode: str, tmp_path: Path) -> None:
    host = Host().on("GET", "/v1/fine_tuning/jobs/ftjob-abc", done_json(2000))
    ledger = f"sqlite:///{tmp_path / 'shared.db'}"
    a, b = client(mode, host, tmp_path, ledger=ledger), client(mode, host, tmp_path, ledger=ledger)
    try:
        attach = ck.FineTuneJob.async_attach if mode == "async" else ck.FineTuneJob.attach
        one = await run(attach("openai:ftjob-abc", client=a))
        two = await run(attach("openai:ftjob-abc", client=b))
        assert one.status == two.status == "succeeded"
        assert one.cost.total == two.cost.total == Decimal(2000) * training_price()
        rows = a.ledger.rows()
        assert len(rows) == 1
        assert rows[0].once_key == "finetune:openai:ftjob-abc"
    finally:
        await close(a)
        await close(b)
    assert host.hits("GET") == 2


async def test_reattach_a_running_job_then_follow_it(mode: str, tmp_path: Path) -> None:
    host = Host().on("GET", "/v1/fine_tuning/jobs/ftjob-abc", job_json("running"), done_json())
    c = client(mode, host, tmp_path)
    try:
        attach = ck.FineTuneJob.async_attach if mode == "async" else ck.FineTuneJob.attach
        job = await run(attach("openai:ftjob-abc", client=c))
        assert (job.status, job.base_model, job.estimate) == ("running", BASE, None)
        assert c.ledger.rows() == []
        done = await job_call(job, "refresh")
        assert done.status == "succeeded"
        assert len(c.ledger.rows()) == 1
        [row] = c.ledger.rows()
        assert row.ts == done.finished_at  # dated when it ended (and was billed), not when it was created
        assert done is job  # the job the caller holds is updated in place
        assert job.status == "succeeded"
        assert job.fine_tuned_model is not None
    finally:
        await close(c)


# ------------------------------------------------------------------------------------------------ failure, cancel


async def test_a_failed_job_raises_with_the_providers_error_object(mode: str, tmp_path: Path) -> None:
    error = {"code": "invalid_training_file", "param": "training_file",
             "message": "The job failed due to an invalid training file."}
    host = launch_host().on("GET", "/v1/fine_tuning/jobs/ftjob-abc", job_json("failed", error=error))
    c = client(mode, host, tmp_path)
    try:
        with pytest.raises(ck.FineTuneFailedError) as info:
            await run(c.finetune(MODEL, training_file=examples(), wait=True, poll_interval=1))
        err = info.value
        assert err.body == error
        assert "invalid training file" in str(err)
        assert err.provider == "openai"
        assert err.job.status == "failed"
        assert err.job.cost.total is None  # no trained tokens reported: unknown, not 0
        [row] = c.ledger.rows()
        assert (row.outcome, row.error_type, row.cost) == ("error", "FineTuneFailedError", None)
    finally:
        await close(c)


async def test_cancel(mode: str, tmp_path: Path) -> None:
    host = launch_host().on("POST", "/v1/fine_tuning/jobs/ftjob-abc/cancel", job_json("cancelled"))
    c = client(mode, host, tmp_path)
    try:
        job = await run(c.finetune(MODEL, training_file=examples()))
        done = await job_call(job, "cancel")
        assert done.status == "canceled"
        assert done.estimate == job.estimate
        [row] = c.ledger.rows()
        assert (row.outcome, row.error_type) == ("error", "FineTuneCanceled")
    finally:
        await close(c)
    assert host.hits("POST", "/v1/fine_tuning/jobs/ftjob-abc/cancel") == 1


async def test_wait_timeout_raises_and_does_not_cancel(mode: str, tmp_path: Path) -> None:
    host = launch_host().on("GET", "/v1/fine_tuning/jobs/ftjob-abc", job_json("running"))
    sleeps = Sleeps()
    c = client(mode, host, tmp_path, sleeps)
    try:
        job = await run(c.finetune(MODEL, training_file=examples()))
        with pytest.raises(ck.FineTuneTimeoutError) as info:
            await job_call(job, "wait", timeout=30, poll_interval=10)
        assert info.value.job.status == "running"
        assert sleeps.waits == [10, 10, 10]
        assert c.ledger.rows() == []
    finally:
        await close(c)
    assert host.hits("POST", "/v1/fine_tuning/jobs/ftjob-abc/cancel") == 0


async def test_events_and_checkpoints(mode: str, tmp_path: Path) -> None:
    events = {"object": "list", "has_more": False, "data": [
        {"object": "fine_tuning.job.event", "id": "ev2", "created_at": 1_764_000_200, "level": "info",
         "message": "Step 10/30: training loss=0.42", "type": "metrics",
         "data": {"step": 10, "total_steps": 30, "train_loss": 0.42}},
        {"object": "fine_tuning.job.event", "id": "ev1", "created_at": 1_764_000_100, "level": "info",
         "message": "Fine-tuning job started", "type": "message", "data": {}},
    ]}
    ckpts = {"object": "list", "has_more": False, "data": [
        {"object": "fine_tuning.job.checkpoint", "id": "ftckpt_1", "created_at": 1_764_000_300,
         "fine_tuned_model_checkpoint": f"ft:{BASE}:org-x::AbC123:ckpt-step-10", "step_number": 10,
         "metrics": {"train_loss": 0.42}, "fine_tuning_job_id": "ftjob-abc"},
    ]}
    host = (launch_host().on("GET", "/v1/fine_tuning/jobs/ftjob-abc/events", events)
            .on("GET", "/v1/fine_tuning/jobs/ftjob-abc/checkpoints", ckpts))
    c = client(mode, host, tmp_path)
    try:
        job = await run(c.finetune(MODEL, training_file=examples()))
        evs = await job_call(job, "events", limit=2)
        assert [e.id for e in evs] == ["ev1", "ev2"]  # oldest first
        assert evs[1].data["train_loss"] == 0.42
        [cp] = await job_call(job, "checkpoints")
        assert cp.step == 10
        assert cp.model == f"openai:ft:{BASE}:org-x::AbC123:ckpt-step-10"
    finally:
        await close(c)
    assert next(r for r in host.seen if r.url.path.endswith("/events")).url.params["limit"] == "2"


# ------------------------------------------------------------------------------------------------ refused, dry run


@pytest.mark.parametrize(("rows", "line", "words"), [
    (["{not json"], 1, "not valid JSON"),
    ([{"messages": [{"role": "user", "content": "hi"}]}], 1, "no assistant message"),
    ([{"messages": [{"role": "robot", "content": "hi"}]}], 1, "role 'robot'"),
    ([{"prompt": "a", "completion": "b"}], 1, 'needs "messages"'),
    ([{"messages": [{"role": "user"}, {"role": "assistant", "content": "x"}]}], 1, "has no content"),
    ([{"messages": []}], 1, "non-empty list"),
    (['{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x"}], "tools": [{"type": '
      '"function", "function": {"name": "f", "parameters": {"type": "number", "maximum": Infinity}}}]}'],
     1, "not valid JSON (Infinity is not a JSON value"),
    (['{"messages": [{"role": "user", "content": "caf\\udce9"}, {"role": "assistant", "content": "x"}]}'],
     1, "not valid Unicode"),
])
async def test_bad_data_is_refused_with_its_line_and_nothing_is_sent(mode: str, tmp_path: Path, rows: list[Any],
                                                                     line: int, words: str) -> None:
    good = [json.dumps(r) for r in examples(12)]
    bad = [r if isinstance(r, str) else json.dumps(r) for r in rows]
    path = write_jsonl(tmp_path / "bad.jsonl", good[:4] + bad + good[4:])
    host = launch_host()
    c = client(mode, host, tmp_path)
    try:
        with pytest.raises(ck.TrainingDataError) as info:
            await run(c.finetune(MODEL, training_file=path))
    finally:
        await close(c)
    assert info.value.line == 4 + line
    assert f"line {4 + line}" in str(info.value)
    assert words in str(info.value)
    assert isinstance(info.value, ck.InvalidRequestError)
    assert host.seen == []


async def test_too_few_examples_and_too_long_examples_are_refused(mode: str, tmp_path: Path) -> None:
    host = launch_host()
    c = client(mode, host, tmp_path)
    try:
        with pytest.raises(ck.TrainingDataError, match="at least 10"):
            await run(c.finetune(MODEL, training_file=examples(9)))
        rates = PriceBook().training("openai", "gpt-3.5-turbo-0613")
        assert rates is not None
        assert rates.max_example_tokens is not None
        long = examples(10)
        long[6]["messages"][1]["content"] = "word " * rates.max_example_tokens
        with pytest.raises(ck.TrainingDataError) as info:
            await run(c.finetune("openai:gpt-3.5-turbo-0613", training_file=long))
        assert info.value.line == 7
        assert f"at most {rates.max_example_tokens}" in str(info.value)
    finally:
        await close(c)
    assert host.seen == []


async def test_bad_tags_are_refused_before_any_upload(mode: str, tmp_path: Path) -> None:
    host = launch_host()
    c = client(mode, host, tmp_path)
    try:
        with pytest.raises(ck.InvalidRequestError, match="tag 'team' must have a string value"):
            await run(c.finetune(MODEL, training_file=examples(12), tags={"team": 7}))
    finally:
        await close(c)
    assert host.seen == []


async def test_dry_run_validates_and_estimates_without_any_http(mode: str, tmp_path: Path) -> None:
    rows = examples(20)
    host = launch_host()
    c = client(mode, host, tmp_path)
    try:
        job = await run(c.finetune(MODEL, training_file=rows, dry_run=True))
    finally:
        await close(c)
    assert host.seen == []
    assert job.dry_run is True
    assert job.id is None
    # OpenAI's default for 20 examples: 100 // 20 = 5 epochs (each example seen at least 100 times in all)
    assert job.estimate.total == Decimal(tokens_of(rows) * 5) * training_price()
    assert job.estimate.estimated is True
    [line] = job.estimate.lines
    assert "x 5 epochs" in line.item
    assert "tiktoken o200k_base" in line.item
    assert job.cost.total is None
    with pytest.raises(ck.InvalidRequestError, match="dry run"):
        job.refresh()


def test_default_epochs_follow_openais_rule() -> None:
    from computekit.adapters.openai import OpenAIAdapter

    a = OpenAIAdapter.__new__(OpenAIAdapter)
    assert [a.default_epochs(BASE, n) for n in (10, 20, 33, 34, 1000, 10_000, 100_000)] == [10, 5, 3, 3, 3, 2, 1]


async def test_unknown_training_price_is_none_not_zero(mode: str, tmp_path: Path) -> None:
    c = client(mode, Host(), tmp_path)
    try:
        job = await run(c.finetune("openai:davinci-002", training_file=examples(), dry_run=True))
        assert job.estimate.total is None
        assert 'training_mtok = "..."' in (job.estimate.reason or "")
        hourly = await run(c.finetune("openai:o4-mini-2025-04-16", training_file=examples(), dry_run=True))
        assert hourly.estimate.total is None
        assert "per hour" in (hourly.estimate.reason or "")
    finally:
        await close(c)


async def test_config_training_price_overrides_the_table(mode: str, tmp_path: Path) -> None:
    rows = examples(10)
    c = client(mode, Host(), tmp_path, prices={MODEL: {"training_mtok": "2.00"}})
    try:
        job = await run(c.finetune(MODEL, training_file=rows, epochs=2, dry_run=True))
    finally:
        await close(c)
    assert job.estimate.total == Decimal(tokens_of(rows) * 2) * Decimal("2.00") / Decimal(1_000_000)
    assert job.estimate.price_source is not None
    assert job.estimate.price_source.table == "config"


@pytest.mark.parametrize(("model", "words"), [
    ("cohere:command-r-08-2024", "Cohere retired its fine-tuning API on 2025-09-15"),
    ("anthropic:claude-haiku-4-5", "anthropic offers no fine-tuning API"),
    ("ai21:jamba-mini", "ai21 offers no fine-tuning API"),
    ("groq:llama-3.1-8b-instant", "groq offers no fine-tuning API"),
])
async def test_providers_without_fine_tuning_refuse_before_any_http(mode: str, tmp_path: Path, model: str,
                                                                     words: str) -> None:
    host = Host()
    provider = model.split(":")[0]
    c = client(mode, host, tmp_path, providers={provider: {"api_key": KEY}})
    try:
        with pytest.raises(ck.UnsupportedCapabilityError) as info:
            await run(c.finetune(model, training_file=examples()))
    finally:
        await close(c)
    assert words in str(info.value)
    assert info.value.capability == "finetune"
    assert host.seen == []


async def test_dpo_examples_are_checked_and_sent_as_the_dpo_method(mode: str, tmp_path: Path) -> None:
    pair = {"input": {"messages": [{"role": "user", "content": "Hi"}]},
            "preferred_output": [{"role": "assistant", "content": "Hello!"}],
            "non_preferred_output": [{"role": "assistant", "content": "What."}]}
    host = launch_host()
    c = client(mode, host, tmp_path)
    try:
        with pytest.raises(ck.TrainingDataError, match="non_preferred_output"):
            await run(c.finetune(MODEL, training_file=[{"input": pair["input"],
                                                        "preferred_output": pair["preferred_output"]}] * 10,
                                 method="dpo"))
        job = await run(c.finetune(MODEL, training_file=[pair] * 10, method="dpo", hyperparameters={"beta": 0.1}))
        assert job.status == "validating"
    finally:
        await close(c)
    body = json.loads(next(r for r in host.seen if r.url.path == "/v1/fine_tuning/jobs").content)
    assert body["method"] == {"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.1}}}


async def test_a_route_or_a_list_is_refused(mode: str, tmp_path: Path) -> None:
    c = client(mode, Host(), tmp_path)
    try:
        with pytest.raises(ck.InvalidRequestError, match="one 'provider:model'"):
            await run(c.finetune([MODEL], training_file=examples()))  # type: ignore[arg-type]
        with pytest.raises(ck.InvalidRequestError, match="epochs"):
            await run(c.finetune(MODEL, training_file=examples(), epochs=0))
    finally:
        await close(c)


# ------------------------------------------------------------------------------------------------ pieces


def test_load_training_counts_a_list_and_a_file_alike(tmp_path: Path) -> None:
    spec = FineTuneSpec(encoding="o200k_base", min_examples=1)
    rows = examples(3)
    from_list = load_training(rows, spec, "supervised", None)
    from_file = load_training(write_jsonl(tmp_path / "x.jsonl", rows), spec, "supervised", None)
    assert from_list.tokens == from_file.tokens == tokens_of(rows) > 0
    assert from_list.content == from_file.content
    assert from_file.filename == "x.jsonl"
    assert from_list.examples == 3
    heuristic = load_training(rows, FineTuneSpec(encoding=None), "supervised", None)
    assert "characters a token" in heuristic.counted_by


def test_progress_bar_shows_status_and_latest_metrics_on_a_terminal() -> None:
    from rich.console import Console

    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    job = ck.FineTuneJob(id="ftjob-abc", provider="openai", base_model=BASE, status="running")
    bar = Progress(job, console=console)
    assert bar.shown
    job.metrics = {"step": 10, "total_steps": 30, "train_loss": 0.4213}
    bar.update(job)
    bar.close()
    text = out.getvalue()
    assert "running" in text
    assert "train_loss=0.4213" in text
    quiet = Progress(job, console=Console(file=io.StringIO(), force_terminal=False))
    assert not quiet.shown


async def test_module_level_verbs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    job = ck.finetune(MODEL, training_file=examples(), dry_run=True)
    ajob = await ck.afinetune(MODEL, training_file=examples(), dry_run=True)
    assert job.estimate == ajob.estimate
    assert job.estimate.total is not None


def test_finetune_estimate_is_pure_for_budgets(tmp_path: Path) -> None:
    from computekit._core import Core

    core = Core(None, providers={"openai": {"api_key": KEY}}, ledger="none")
    rows = examples(10)
    cost = core.finetune_estimate(MODEL, rows, epochs=4)
    assert cost.total == Decimal(tokens_of(rows) * 4) * training_price()
    assert cost.estimated



# ------------------------------------------------------------------------------------------------ budgets
# The job's row is dated when the job was created (2025-11 in these replies): the budgets here count "total".


def _status(c: Any, name: str = "default") -> tuple[Decimal, Decimal]:
    st = c.budget_status()[name]
    assert st.remaining == max(st.limit - st.spent - st.reserved, Decimal(0))
    return st.spent, st.reserved


async def test_a_job_over_budget_is_refused_before_any_upload(mode: str, tmp_path: Path) -> None:
    host = launch_host()
    c = client(mode, host, tmp_path, budget={"limit_usd": "0.000001"})
    rows = examples(10)
    try:
        with pytest.raises(ck.BudgetExceededError) as info:
            await run(c.finetune(MODEL, training_file=rows, epochs=3))
        assert host.seen == []  # no upload, no launch
        assert info.value.requested == Decimal(tokens_of(rows) * 3) * training_price()
        assert info.value.budget == "default"
        assert _status(c) == (0, 0)
        assert c.ledger.rows() == []
        # a dry run reserves nothing, under the same budget
        dry = await run(c.finetune(MODEL, training_file=rows, epochs=3, dry_run=True))
        assert dry.estimate.total == info.value.requested
        assert _status(c) == (0, 0)
    finally:
        await close(c)


async def test_a_job_reserves_its_estimate_while_it_runs_then_settles_to_its_cost(mode: str,
                                                                                 tmp_path: Path) -> None:
    rows = examples(10)
    host = launch_host().on("GET", "/v1/fine_tuning/jobs/ftjob-abc", job_json("running"), done_json(1500))
    c = client(mode, host, tmp_path, budget={"limit_usd": "5", "period": "total"})
    try:
        job = await run(c.finetune(MODEL, training_file=rows, epochs=3))
        estimate = job.estimate.total
        assert estimate == Decimal(tokens_of(rows) * 3) * training_price()
        assert _status(c) == (0, estimate)  # held while the job runs
        running = await job_call(job, "refresh")
        assert running.status == "running"
        assert _status(c) == (0, estimate)
        done = await job_call(running, "wait", poll_interval=1)
        actual = Decimal(1500) * training_price()
        assert done.cost.total == actual != estimate
        assert _status(c) == (actual, 0)  # settled: the row counts, the reservation is gone
        [row] = c.ledger.rows()
        assert (row.cost, row.reserved, row.once_key) == (actual, estimate, "finetune:openai:ftjob-abc")
        await job_call(done, "wait")  # ended already: nothing settled or written twice
        assert _status(c) == (actual, 0)
        assert len(c.ledger.rows()) == 1
    finally:
        await close(c)


async def test_a_failed_launch_releases_the_reservation(mode: str, tmp_path: Path) -> None:
    host = launch_host().on("POST", "/v1/fine_tuning/jobs", httpx.Response(
        400, json={"error": {"message": "invalid model", "type": "invalid_request_error"}}))
    c = client(mode, host, tmp_path, budget={"limit_usd": "5", "period": "total"})
    try:
        with pytest.raises(ck.BadRequestError):
            await run(c.finetune(MODEL, training_file=examples(), epochs=3))
        assert host.hits("POST", "/v1/files") == 1
        assert host.hits("POST", "/v1/fine_tuning/jobs") == 1
        assert _status(c) == (0, 0)
        assert c.ledger.rows() == []
    finally:
        await close(c)


async def test_an_unknown_estimate_follows_the_budgets_unknown_price(mode: str, tmp_path: Path) -> None:
    model = "openai:davinci-002"  # no training price in the tables
    refused = client(mode, launch_host(), tmp_path, budget={"limit_usd": "5", "period": "total"})
    try:
        with pytest.raises(ck.BudgetExceededError, match="price is unknown"):
            await run(refused.finetune(model, training_file=examples()))
    finally:
        await close(refused)
    host = launch_host()
    allowed = client(mode, host, tmp_path, budget={"limit_usd": "5", "period": "total", "unknown_price": "allow"})
    try:
        job = await run(allowed.finetune(model, training_file=examples()))
        assert job.estimate.total is None
        assert host.hits("POST", "/v1/fine_tuning/jobs") == 1
        assert _status(allowed) == (0, 0)  # allowed: reserved as 0
        # still held in the ledger under the job's key (as 0), to be settled by the job's row
        assert allowed.ledger.reservation(f"finetune:openai:{job.id}", now=dt.datetime.now(dt.UTC)) == 0
    finally:
        await close(allowed)


async def test_a_job_followed_elsewhere_settles_the_launchers_reservation(mode: str, tmp_path: Path,
                                                                         ledger_url: str) -> None:
    """On SQLite and PostgreSQL: the launcher's reservation is held in the ledger under the job's key, so the
    process that sees the job end settles it with the job's one row."""
    host = launch_host().on("GET", "/v1/fine_tuning/jobs/ftjob-abc", done_json(1500))
    a = client(mode, host, tmp_path, ledger=ledger_url, budget={"limit_usd": "5", "period": "total"})
    b = client(mode, host, tmp_path, ledger=ledger_url, budget={"limit_usd": "5", "period": "total"})
    try:
        job = await run(a.finetune(MODEL, training_file=examples(), epochs=3))
        assert job.estimate.total is not None
        assert _status(b) == (0, job.estimate.total)  # b sees a's reservation in the shared ledger
        attach = ck.FineTuneJob.async_attach if mode == "async" else ck.FineTuneJob.attach
        await run(attach("openai:ftjob-abc", client=b))  # b records the cost and settles a's reservation
        actual = Decimal(1500) * training_price()
        assert _status(b) == (actual, 0)
        assert _status(a) == (actual, 0)
        [row] = b.ledger.rows()
        assert row.reserved == job.estimate.total  # counted if its cost were unknown
        await job_call(job, "refresh")  # back in the launcher: nothing settled or written twice
        assert _status(b) == (actual, 0)
        assert len(b.ledger.rows()) == 1
    finally:
        await close(a)
        await close(b)


@pytest.mark.parametrize("remote", [False, True], ids=["embedded", "remote"])
async def test_an_ended_job_is_written_off_the_event_loop_only_async_with_a_remote_ledger(mode: str, remote: bool,
                                                                                         tmp_path: Path) -> None:
    import threading

    watched = WatchedLedger(tmp_path / "w.db", remote=remote)
    host = launch_host().on("GET", "/v1/fine_tuning/jobs/ftjob-abc", done_json(1500))
    c = client(mode, host, tmp_path, ledger=watched.ledger, budget={"limit_usd": "5", "period": "total"})
    caller = threading.current_thread()
    try:
        job = await run(c.finetune(MODEL, training_file=examples(), epochs=3, wait=True, poll_interval=0))
        assert job.status == "succeeded"
        # the estimate, named by the job's key once launched, found there when the job ends, settled by its row
        assert watched.steps() == ["reserve", "key", "find", "settle"]
        assert watched.off(caller) == [mode == "async" and remote] * 4
        [row] = c.ledger.rows()
        assert row.cost == Decimal(1500) * training_price() == job.cost.total
    finally:
        await close(c)
        watched.ledger.close()


def test_budget_status_without_budgets_is_empty(tmp_path: Path) -> None:
    c = client("sync", Host(), tmp_path)
    try:
        assert c.budget_status() == {}
    finally:
        c.close()


# ---------------------------------------------------------------------------------------- lifecycle on the client


async def test_the_job_lifecycle_lives_on_the_client(mode: str, tmp_path: Path) -> None:
    host = launch_host().on("GET", "/v1/fine_tuning/jobs/ftjob-abc", job_json("running"), done_json())
    c = client(mode, host, tmp_path)
    try:
        job = await run(c.finetune(MODEL, training_file=examples()))
        fresh = await run(c.finetunes.refresh(job))
        assert fresh is not job
        assert (fresh.status, job.status) == ("running", "validating")
        done = await run(c.finetunes.wait(fresh, poll_interval=0))
        assert done.status == "succeeded"
        assert done.estimate == job.estimate  # kept from the launch
        assert [r.verb for r in c.ledger.rows()] == ["finetune"]
        again = await run(c.finetunes.attach("openai:ftjob-abc"))
        assert again.status == "succeeded"
        assert [r.verb for r in c.ledger.rows()] == ["finetune"]  # written once
    finally:
        await run(c.aclose() if mode == "async" else c.close())


@pytest.mark.parametrize("method", ["wait", "refresh", "cancel", "events", "checkpoints"])
async def test_a_job_method_of_the_other_flavour_fails_at_once(mode: str, tmp_path: Path, method: str) -> None:
    host = launch_host()
    c = client(mode, host, tmp_path)
    try:
        job = await run(c.finetune(MODEL, training_file=examples()))
        sent = host.hits()
        if mode == "async":
            with pytest.raises(ck.InvalidRequestError, match=rf"AsyncClient: use `await job\.async_{method}"):
                getattr(job, method)()
        else:
            with pytest.raises(ck.InvalidRequestError, match=rf"sync Client: call job\.{method}\("):
                await getattr(job, f"async_{method}")()
        assert host.hits() == sent
        wrong_attach = ck.FineTuneJob.attach if mode == "async" else ck.FineTuneJob.async_attach
        with pytest.raises(ck.InvalidRequestError, match="attach"):
            await run(wrong_attach("openai:ftjob-abc", client=c))
        assert host.hits() == sent
    finally:
        await run(c.aclose() if mode == "async" else c.close())
