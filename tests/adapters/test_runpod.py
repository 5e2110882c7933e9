"""The ``runpod`` provider (RunPod Serverless) through the public client, sync and async.

Replays of cassettes/test_runpod/ (authored from RunPod's operation reference, marked so) cover the documented
flows; the lifecycle edges (timeout, a 5xx on a poll, hardware resolution) run on an ``httpx.MockTransport`` with
an injected fake clock and sleep, so nothing ever sleeps. RunPod publishes no price table computekit can cite per
GPU type, so the per-second price comes from config ``[prices]`` here, and expected costs are read back from a
``PriceBook`` built from that same config.
"""

from __future__ import annotations

import inspect
import json
import os
import random
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from _clients import Sleeps, call, close, every_interaction_played, mode, vcr_config  # noqa: F401  (shared fixtures, registered by name)

import computekit as ck
from computekit._config import RetryConfig, RoutingConfig
from computekit._exceptions import (
    PredictionFailedError,
    PredictionTimeoutError,
    ServerError,
)
from computekit._retry import RetryPolicy
from computekit.adapters import adapter_class
from computekit.pricing import PriceBook
from computekit.routing import Router

ROOT = Path(__file__).resolve().parents[2]
CASSETTES = ROOT / "cassettes" / "test_runpod"
KEY = os.environ.get("RUNPOD_API_KEY") or "rpa_placeholder0123456789ABCDEF"
BASE = "https://api.runpod.ai/v2"
SKU = "ADA_24"
PRICES = {f"runpod:{SKU}": {"per_second": "0.00031"}, "runpod:AMPERE_80": {"per_second": "0.00076"}}


def per_second(sku: str) -> Decimal:
    found = PriceBook(PRICES).per_second("runpod", sku)
    assert found is not None
    return found[0]


class MaxJitter(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return b


def client_for(mode: str, sleeps: Sleeps, *, transport: httpx.MockTransport | None = None,
               runpod: dict[str, Any] | None = None, max_retries: int = 0) -> Any:
    kwargs: dict[str, Any] = {
        "config": None,
        "providers": {"runpod": {"api_key": KEY, **(runpod or {})}},
        "prices": PRICES,
        "retry_policy": RetryPolicy(RetryConfig(max_retries=max_retries), sleep=sleeps, asleep=sleeps.asleep,
                                    rng=MaxJitter()),
        "router": Router(RoutingConfig(), clock=sleeps.clock),
    }
    if mode == "sync":
        if transport is not None:
            kwargs["http_client"] = httpx.Client(transport=transport)
        return ck.Client(**kwargs)
    if transport is not None:
        kwargs["http_client"] = httpx.AsyncClient(transport=transport)
    return ck.AsyncClient(**kwargs)


async def run(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


# ------------------------------------------------------------------------------------------------ replays


@pytest.mark.vcr
@pytest.mark.default_cassette("runsync_success.yaml")
async def test_runsync_success(mode: str) -> None:
    sleeps = Sleeps(start=1000.0)
    client = client_for(mode, sleeps)
    p = await call(client, "predict", "runpod:sdxl7x2k9q4m1p", {"prompt": "a lighthouse at dusk", "seed": 46578},
                   hardware=SKU)
    await close(client)
    assert p.status == "succeeded"
    assert p.id == "sync-79164ff4-d212-44bc-9fe3-389e199a5c15-u1"
    assert p.output == [{"image": "https://image.url/lighthouse.png", "seed": 46578}]
    assert p.metrics == {"delayTime": 824, "executionTime": 3391, "workerId": "p7a3k2m9x1q5rt"}
    assert p.usage.gpu_seconds == Decimal("3.391")
    assert p.usage.hardware == SKU
    expected = Decimal("3.391") * per_second(SKU)
    assert p.cost.total == expected
    assert p.cost.estimated is False
    assert p.cost.lines[0].unit == "second"
    assert p.cost.price_source is not None
    assert p.cost.price_source.table == "config"
    assert sleeps.waits == []  # /runsync answered with the finished job: nothing polled
    [row] = client.ledger.rows()
    assert (row.verb, row.provider, row.model, row.outcome) == ("predict", "runpod", "sdxl7x2k9q4m1p", "success")
    assert row.cost == expected
    assert row.gpu_seconds == Decimal("3.391")
    assert row.request_id == p.id


@pytest.mark.vcr
@pytest.mark.default_cassette("run_and_poll.yaml")
async def test_async_run_then_polls_to_completed(mode: str) -> None:
    sleeps = Sleeps(start=1000.0)
    client = client_for(mode, sleeps)
    p = await call(client, "predict", "runpod:vllm5q8r2t6y0w", {"prompt": "Hello, world!"}, wait=False,
                   webhook="https://example.com/runpod-hook", hardware="AMPERE_80")
    assert p.status == "queued"
    assert p.cost.total is None
    assert client.ledger.rows() == []
    assert p.urls["get"] == f"{BASE}/vllm5q8r2t6y0w/status/60902e6c-08a1-426e-9cb9-9eaec90f5e2b-u1"
    done = await (p.async_wait(poll_interval=2.0) if mode == "async" else run(p.wait(poll_interval=2.0)))
    await close(client)
    assert done.status == "succeeded"
    assert done.output["text"] == ["Hello! How can I assist you today?"]
    assert done.usage.gpu_seconds == Decimal("1.437")
    assert done.cost.total == Decimal("1.437") * per_second("AMPERE_80")
    assert sleeps.waits == [2.0, 2.0]
    [row] = client.ledger.rows()
    assert row.cost == done.cost.total


@pytest.mark.vcr
@pytest.mark.default_cassette("failed.yaml")
async def test_failed_job_raises_with_its_error_and_is_billed(mode: str) -> None:
    client = client_for(mode, Sleeps(start=1000.0))
    with pytest.raises(PredictionFailedError) as info:
        await call(client, "predict", "runpod:upsc4l3r9b2n7m", {"image": "https://example.com/in.png", "scale": 8},
                   hardware=SKU)
    await close(client)
    p = info.value.prediction
    assert p.status == "failed"
    assert p.error == "OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"
    assert "CUDA out of memory" in str(info.value)
    assert p.logs.startswith("Traceback (most recent call last):")
    assert p.cost.total == Decimal("2.25") * per_second(SKU)
    [row] = client.ledger.rows()
    assert (row.outcome, row.error_type, row.cost) == ("error", "PredictionFailedError", p.cost.total)


@pytest.mark.vcr
@pytest.mark.default_cassette("cancel.yaml")
async def test_cancel(mode: str) -> None:
    sleeps = Sleeps(start=1000.0)
    client = client_for(mode, sleeps)
    p = await call(client, "predict", "runpod:vid3o0g3n8k2w5", {"prompt": "a long video"}, wait=False,
                   extra_body={"policy": {"executionTimeout": 600000}}, hardware=SKU)
    assert p.status == "queued"
    done = await (p.async_cancel() if mode == "async" else run(p.cancel()))
    await close(client)
    assert done.status == "canceled"
    # RunPod's cancel answer carries no executionTime; the job's status does (it ran 4.21 s before the cancel,
    # and that time was billed): computekit fetches it once, so the canceled run is priced
    assert done.usage.gpu_seconds == Decimal("4.21")
    expected = Decimal("4.21") * per_second(SKU)
    assert done.cost.total == expected
    assert sleeps.waits == []
    [row] = client.ledger.rows()
    assert (row.outcome, row.error_type, row.cost) == ("error", "PredictionCanceled", expected)


async def test_a_job_canceled_in_the_queue_has_no_run_time(mode: str) -> None:
    host = Host(ok(job("IN_QUEUE")), [ok(job("CANCELLED"))], cancel=ok(job("CANCELLED")))
    client = client_for(mode, Sleeps(start=1000.0), transport=httpx.MockTransport(host))
    p = await run(client.predict("runpod:ep1", {"x": 1}, wait=False, hardware=SKU))
    done = await (p.async_cancel() if mode == "async" else run(p.cancel()))
    await close(client)
    assert len(host.cancels) == 1
    assert len(host.gets) == 1  # one status fetch for the run time, not a loop
    assert done.status == "canceled"
    assert done.cost.total is None  # never ran, reports no executionTime: unknown, never 0
    assert "runpod reported no run time" in (done.cost.reason or "")


def test_cassettes_are_marked_and_hold_no_key() -> None:
    paths = sorted(CASSETTES.glob("*.yaml"))
    assert [p.name for p in paths] == ["cancel.yaml", "failed.yaml", "run_and_poll.yaml", "runsync_success.yaml",
                                       "stream.yaml"]
    for path in paths:
        text = path.read_text("utf-8")
        assert text.startswith("# AUTHORED: written from ")
        assert text.splitlines()[0].endswith(", not recorded.")
        for inter in yaml.safe_load(text)["interactions"]:
            assert inter["request"]["uri"].startswith(BASE + "/")
            assert "authorization" not in {k.lower() for k in inter["request"]["headers"]}
            data = json.loads(inter["response"]["body"]["string"])
            if "/stream/" in inter["request"]["uri"]:  # /stream answers {status, stream: [{output}]}
                assert set(data) == {"status", "stream"}
                assert all(set(item) == {"output"} for item in data["stream"])
            else:
                assert set(data) >= {"id", "status"}


# ------------------------------------------------------------------------------------------------ lifecycle


def job(status: str, *, jid: str = "job-1-u1", execution_ms: int | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"id": jid, "status": status, **extra}
    if execution_ms is not None:
        body["delayTime"] = 120
        body["executionTime"] = execution_ms
    return body


class Host:
    """A scripted RunPod endpoint: ``create`` answers /run and /runsync, GET /status answers ``polls`` in order
    (the last repeats), POST /cancel answers ``cancel``."""

    def __init__(self, create: httpx.Response, polls: list[httpx.Response] | None = None,
                 cancel: httpx.Response | None = None) -> None:
        self.create, self.polls, self.cancel = create, list(polls or []), cancel
        self.seen: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        path = request.url.path
        if request.method == "GET" and "/status/" in path:
            r = self.polls[min(len(self.gets) - 1, len(self.polls) - 1)]
            return r
        if "/cancel/" in path:
            assert self.cancel is not None, "unexpected cancel"
            return self.cancel
        return self.create

    @property
    def gets(self) -> list[httpx.Request]:
        return [r for r in self.seen if r.method == "GET"]

    @property
    def cancels(self) -> list[httpx.Request]:
        return [r for r in self.seen if "/cancel/" in r.url.path]


def ok(body: dict[str, Any]) -> httpx.Response:
    return httpx.Response(200, json=body)


async def test_timeout_cancels_the_remote_job(mode: str) -> None:
    host = Host(ok(job("IN_PROGRESS")), [ok(job("IN_PROGRESS")), ok(job("IN_PROGRESS")), ok(job("IN_PROGRESS")),
                                         ok(job("CANCELLED", execution_ms=1900))],
                cancel=ok(job("CANCELLED")))
    sleeps = Sleeps(start=1000.0)
    client = client_for(mode, sleeps, transport=httpx.MockTransport(host))
    with pytest.raises(PredictionTimeoutError) as info:
        await run(client.predict("runpod:ep1", {"x": 1}, timeout=2.0, hardware=SKU))
    await close(client)
    p = info.value.prediction
    assert p.status == "canceled"
    # a 2 s timeout is shorter than RunPod's /runsync hold: submitted with /run, so the job's id came back at once
    assert str(host.seen[0].url) == f"{BASE}/ep1/run"
    assert [(r.method, str(r.url)) for r in host.cancels] == [("POST", f"{BASE}/ep1/cancel/job-1-u1")]
    assert host.cancels[0].headers["authorization"] == f"Bearer {KEY}"
    assert sleeps.waits == [0.5, 0.75, 0.75]  # the last wait cut to what was left of the 2 s
    assert sleeps.now == 1002.0
    assert len(host.gets) == 4  # three polls, then the status that gives the canceled job's run time
    assert p.cost.total == Decimal("1.9") * per_second(SKU)
    [row] = client.ledger.rows()
    assert row.error_type == "PredictionCanceled"


async def test_a_5xx_on_a_poll_is_retried(mode: str) -> None:
    host = Host(ok(job("IN_QUEUE")), [
        httpx.Response(503, json={"error": "service unavailable"}),
        httpx.Response(502, text="bad gateway"),
        ok(job("COMPLETED", execution_ms=4200, output={"ok": True})),
    ])
    sleeps = Sleeps(start=1000.0)
    client = client_for(mode, sleeps, transport=httpx.MockTransport(host), max_retries=2)
    p = await run(client.predict("runpod:ep1", {"x": 1}, hardware=SKU))
    await close(client)
    assert p.status == "succeeded"
    assert p.output == {"ok": True}
    assert len(host.gets) == 3
    assert sleeps.waits[0] == 0.5  # one poll wait, then the two retry backoffs (GETs are idempotent)
    assert len(sleeps.waits) == 3
    assert p.cost.total == Decimal("4.2") * per_second(SKU)
    [row] = client.ledger.rows()  # failed polls are not billed attempts
    assert row.outcome == "success"


async def test_a_poll_that_keeps_failing_raises_the_server_error(mode: str) -> None:
    host = Host(ok(job("IN_QUEUE")), [httpx.Response(500, json={"error": "boom"})])
    client = client_for(mode, Sleeps(start=1000.0), transport=httpx.MockTransport(host), max_retries=1)
    with pytest.raises(ServerError) as info:
        await run(client.predict("runpod:ep1", {"x": 1}, hardware=SKU))
    await close(client)
    assert info.value.status == 500
    assert len(host.gets) == 2


async def test_timed_out_is_a_failure(mode: str) -> None:
    host = Host(ok(job("TIMED_OUT")))
    client = client_for(mode, Sleeps(start=1000.0), transport=httpx.MockTransport(host))
    with pytest.raises(PredictionFailedError) as info:
        await run(client.predict("runpod:ep1", {"x": 1}, hardware=SKU))
    await close(client)
    assert info.value.prediction.status == "failed"
    assert "TIMED_OUT" in info.value.prediction.error


# ------------------------------------------------------------------------------------------------ cost


async def test_unknown_hardware_has_no_cost(mode: str) -> None:
    host = Host(ok(job("COMPLETED", execution_ms=10_000)))
    client = client_for(mode, Sleeps(start=1000.0), transport=httpx.MockTransport(host))
    p = await run(client.predict("runpod:ep1", {"x": 1}))
    await close(client)
    assert p.usage.gpu_seconds == Decimal(10)
    assert p.usage.hardware is None
    assert p.cost.total is None  # never a guessed GPU
    assert "unknown runpod hardware" in (p.cost.reason or "")
    [row] = client.ledger.rows()
    assert row.cost is None
    assert row.gpu_seconds == Decimal(10)


async def test_a_gpu_type_without_a_price_has_no_cost(mode: str) -> None:
    host = Host(ok(job("COMPLETED", execution_ms=1000)))
    client = client_for(mode, Sleeps(start=1000.0), transport=httpx.MockTransport(host))
    p = await run(client.predict("runpod:ep1", {"x": 1}, hardware="HOPPER_141"))
    await close(client)
    assert p.cost.total is None
    assert "runpod:HOPPER_141" in (p.cost.reason or "")


async def test_config_hardware_for_the_endpoint(mode: str) -> None:
    host = Host(ok(job("COMPLETED", execution_ms=8000)))
    client = client_for(mode, Sleeps(start=1000.0), transport=httpx.MockTransport(host),
                        runpod={"hardware": {"ep1": SKU}})
    p = await run(client.predict("runpod:ep1", {"x": 1}))
    await close(client)
    assert p.usage.hardware == SKU
    assert p.cost.total == Decimal(8) * per_second(SKU)
    assert p.cost.estimated is False


# ------------------------------------------------------------------------------------------------ requests


async def test_requests_sent(mode: str) -> None:
    host = Host(ok(job("IN_QUEUE")), [ok(job("IN_QUEUE"))])
    client = client_for(mode, Sleeps(start=1000.0), transport=httpx.MockTransport(host))
    await run(client.predict("runpod:ep1", {"prompt": "a cat"}, wait=False, webhook="https://example.com/h",
                             extra_body={"policy": {"ttl": 60000}}))
    with pytest.raises(PredictionTimeoutError):  # a timeout longer than RunPod's hold: /runsync, then polls
        await run(client.predict("runpod:ep1", {"prompt": "a cat"}, timeout=120, cancel_on_timeout=False))
    with pytest.raises(PredictionTimeoutError):  # timeout=0: no time to send anything
        await run(client.predict("runpod:ep1", {"prompt": "a cat"}, timeout=0, cancel_on_timeout=False))
    await close(client)
    run_req, sync_req = [r for r in host.seen if r.method == "POST"]
    assert (run_req.method, str(run_req.url)) == ("POST", f"{BASE}/ep1/run")
    assert json.loads(run_req.content) == {"input": {"prompt": "a cat"}, "webhook": "https://example.com/h",
                                           "policy": {"ttl": 60000}}
    assert run_req.headers["authorization"] == f"Bearer {KEY}"
    assert (sync_req.method, str(sync_req.url)) == ("POST", f"{BASE}/ep1/runsync")
    assert json.loads(sync_req.content) == {"input": {"prompt": "a cat"}}


def test_runsync_read_timeout_outlasts_runpods_hold() -> None:
    from computekit.adapters._base import PredictRequest, ProviderSettings

    cls = adapter_class("runpod")
    adapter = cls(ProviderSettings(name="runpod", base_url=BASE, api_key=None, timeout=30.0))
    with pytest.raises(ck.MissingAPIKeyError):
        adapter.build_predict(PredictRequest(model="ep1", input={}))
    from pydantic import SecretStr

    adapter = cls(ProviderSettings(name="runpod", base_url=BASE, api_key=SecretStr(KEY), timeout=30.0))
    sync = adapter.build_predict(PredictRequest(model="ep1", input={}))
    assert sync.timeout is not None
    assert sync.timeout > 90  # RunPod holds /runsync up to 90 s: a 30 s read timeout would drop a billed job
    assert adapter.build_predict(PredictRequest(model="ep1", input={}, wait=False)).timeout is None


def test_a_non_job_body_is_malformed() -> None:
    from pydantic import SecretStr

    from computekit._exceptions import MalformedResponseError
    from computekit.adapters._base import HTTPResponse, ProviderSettings

    adapter = adapter_class("runpod")(ProviderSettings(name="runpod", base_url=BASE, api_key=SecretStr(KEY),
                                                       timeout=30.0))
    for body in (b"[]", b"not json", b'{"id": "j", "status": "DONE"}'):
        with pytest.raises(MalformedResponseError):
            adapter.parse_prediction("ep1", HTTPResponse(200, {}, body))


def test_job_urls_off_the_configured_origin_are_not_followed_with_the_key() -> None:
    from pydantic import SecretStr

    from computekit.adapters._base import ProviderSettings

    adapter = adapter_class("runpod")(ProviderSettings(name="runpod", base_url=BASE, api_key=SecretStr(KEY),
                                                       timeout=30.0))
    own = ck.Prediction(id="j1", provider="runpod", model="ep1", status="running",
                        urls={"get": f"{BASE}/ep1/status/j1?x=1", "cancel": f"{BASE}/ep1/cancel/j1?x=1",
                              "stream": f"{BASE}/ep1/stream/j1?x=1"})
    assert [adapter.build_get(own).url, adapter.build_cancel(own).url, adapter.build_prediction_stream(own).url] == [
        f"{BASE}/ep1/status/j1?x=1", f"{BASE}/ep1/cancel/j1?x=1", f"{BASE}/ep1/stream/j1?x=1"]
    plain = BASE.replace("https://", "http://")
    foreign = own.model_copy(update={"urls": {"get": "https://evil.test/ep1/status/j1",
                                              "cancel": f"{plain}/ep1/cancel/j1",
                                              "stream": f"{BASE}\\@evil.test/ep1/stream/j1"}})
    built = [adapter.build_get(foreign), adapter.build_cancel(foreign), adapter.build_prediction_stream(foreign)]
    assert [r.url for r in built] == [f"{BASE}/ep1/status/j1", f"{BASE}/ep1/cancel/j1", f"{BASE}/ep1/stream/j1"]
    assert all(KEY in r.headers["authorization"] for r in built)  # the key goes to the configured origin only


# ------------------------------------------------------------------------------------------------ streaming


@pytest.mark.vcr
@pytest.mark.default_cassette("stream.yaml")
async def test_stream_polls_the_stream_endpoint_then_prices_the_job(mode: str) -> None:
    sleeps = Sleeps(start=1000.0)
    client = client_for(mode, sleeps)
    p = await call(client, "predict", "runpod:llm7s2t4r6e8am", {"prompt": "Count to three"}, wait=False,
                   hardware=SKU)
    if mode == "async":
        s = p.async_stream(poll_interval=0.25)
        pieces = [piece async for piece in s]
    else:
        s = p.stream(poll_interval=0.25)
        pieces = list(s)
    await close(client)
    assert pieces == [{"text": "one"}, {"text": " two"}, {"text": " three"}]
    assert sleeps.waits == [0.25]  # one pause between the two /stream polls; none after COMPLETED
    done = s.result
    assert done.status == "succeeded"
    assert done.cost.total == Decimal("2.15") * per_second(SKU)
    [row] = client.ledger.rows()
    assert row.cost == done.cost.total


async def test_a_failed_stream_raises_with_the_jobs_cost(mode: str) -> None:
    stream_answers = [ok({"status": "IN_PROGRESS", "stream": [{"output": "half"}]}),
                      ok({"status": "FAILED", "stream": [], "error": "boom"})]
    seen: list[httpx.Request] = []

    def host(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if "/stream/" in request.url.path:
            return stream_answers[min(len([r for r in seen if "/stream/" in r.url.path]) - 1, 1)]
        if "/status/" in request.url.path:
            return ok(job("FAILED", execution_ms=700, error="boom"))
        return ok(job("IN_QUEUE"))

    sleeps = Sleeps(start=1000.0)
    client = client_for(mode, sleeps, transport=httpx.MockTransport(host))
    p = await run(client.predict("runpod:ep1", {"x": 1}, wait=False, hardware=SKU))
    got: list[Any] = []

    async def read() -> None:
        if mode == "async":
            async for piece in p.async_stream():
                got.append(piece)
        else:
            for piece in p.stream():
                got.append(piece)

    with pytest.raises(PredictionFailedError) as info:
        await read()
    await close(client)
    assert got == ["half"]
    assert info.value.prediction.cost.total == Decimal("0.7") * per_second(SKU)
    assert [r.url.path.split("/")[3] for r in seen] == ["run", "stream", "stream", "status"]
    assert sleeps.waits == [0.5]
