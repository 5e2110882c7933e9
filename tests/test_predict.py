"""``predict()``: the lifecycle of a run on a serverless GPU host (Replicate), sync and async, never sleeping.

HTTP goes to an ``httpx.MockTransport`` server that answers by method and path. The retry loop's sleep and the
poll loop's sleep are one injected fake that records each wait and moves the router's fake clock by it, so a
``timeout`` passes on that clock, not on the wall. Prices are read from ``PriceBook`` (computekit's ``gpu.toml``),
never copied into this file.
"""

from __future__ import annotations

import inspect
import random
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest
from _support import Server, WatchedLedger

import computekit as ck
from computekit import _defaults
from computekit._config import RetryConfig, RoutingConfig
from computekit._exceptions import (
    AuthenticationError,
    InvalidRequestError,
    PredictionFailedError,
    PredictionTimeoutError,
    ServerError,
    UnsupportedCapabilityError,
)
from computekit._retry import RetryPolicy
from computekit.pricing import PriceBook
from computekit.routing import Router

TOKEN = "r8_test0123456789abcdefghijklmn"
BASE = "https://api.replicate.com/v1"
MODEL = "replicate:acme/upscaler"
PID = "p0k3m4ne2srj20cj9x1a"
GET_URL = f"{BASE}/predictions/{PID}"
# The host's own cancel URL, on purpose not the one computekit would build (but on the provider's origin, where
# the key may go): the request must go where urls say.
CANCEL_URL = f"{BASE}/predictions/{PID}/named-by-host/cancel"

both = pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])


def price(sku: str) -> Decimal:
    found = PriceBook().per_second("replicate", sku)
    assert found is not None, f"gpu.toml has no replicate {sku}"
    return found[0]


# ------------------------------------------------------------------------------------------------ fakes


class Clock:
    """The router's fake monotonic clock; only :class:`Sleeps` moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Sleeps:
    """The injected sleep (retries and polls): records each wait and advances the fake clock by it."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.clock.now += seconds

    async def asleep(self, seconds: float) -> None:
        self(seconds)


class MaxJitter(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return b


def pred(status: str, *, output: Any = None, error: str | None = None, logs: str = "",
         predict_time: float | None = None, pid: str = PID) -> dict[str, Any]:
    """A Replicate prediction object (shape of the OpenAPI ``schemas_prediction_response``)."""
    body: dict[str, Any] = {
        "id": pid,
        "model": "acme/upscaler",
        "version": "5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa",
        "input": {"image": "https://example.com/in.png"},
        "logs": logs,
        "output": output,
        "data_removed": False,
        "error": error,
        "status": status,
        "created_at": "2026-11-20T10:00:00.000Z",
        "urls": {"get": GET_URL, "cancel": CANCEL_URL, "web": f"https://replicate.com/p/{pid}"},
    }
    if predict_time is not None:
        body["metrics"] = {"predict_time": predict_time, "total_time": predict_time + 0.2}
    return body


def resp(body: dict[str, Any], status: int = 200) -> httpx.Response:
    return httpx.Response(status, json=body)


MODEL_INFO: dict[str, Any] = {"url": "https://replicate.com/acme/upscaler", "owner": "acme", "name": "upscaler",
                              "visibility": "public", "latest_version": None}
"""A model with no published version (so no input schema): what the metadata lookup answers by default."""


class Host:
    """A scripted Replicate: creates answer ``create``; GETs of predictions answer ``polls`` in order (the last
    repeats); cancels answer ``cancel``; model / version / deployment lookups answer ``meta`` (by path, else the
    model above). Predictions traffic is kept in ``server.seen``, lookups in ``lookups``."""

    def __init__(self, create: httpx.Response, polls: list[httpx.Response] | None = None,
                 cancel: httpx.Response | None = None, meta: dict[str, httpx.Response] | None = None) -> None:
        self.create, self.polls, self.cancel = create, list(polls or []), cancel
        self.meta = dict(meta or {})
        self.server = Server([self.answer])
        self.lookups: list[Any] = []
        self._polled = 0

    def answer(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "GET" and path.startswith(("/v1/models/", "/v1/deployments/")):
            self.lookups.append(self.server.seen.pop())
            return self.meta.get(path) or httpx.Response(200, json=MODEL_INFO)
        if request.method == "GET":
            r = self.polls[min(self._polled, len(self.polls) - 1)]
            self._polled += 1
            return r
        if request.url.path.endswith("/cancel"):
            assert self.cancel is not None, "unexpected cancel"
            return self.cancel
        return self.create

    def requests(self, method: str | None = None, ending: str = "") -> list[Any]:
        return [s for s in self.server.seen if (method is None or s.method == method) and s.url.endswith(ending)]

    @property
    def gets(self) -> list[Any]:
        return self.requests("GET")

    @property
    def cancels(self) -> list[Any]:
        return self.requests("POST", "/cancel")


def make(is_async: bool, server: Callable[[httpx.Request], httpx.Response], *, replicate: dict[str, Any] | None = None,
         max_retries: int = 2, **settings: Any) -> tuple[Any, Sleeps, Clock]:
    clock = Clock()
    sleeps = Sleeps(clock)
    retry = RetryPolicy(RetryConfig(max_retries=max_retries), sleep=sleeps, asleep=sleeps.asleep, rng=MaxJitter())
    conf = {"api_key": TOKEN, **(replicate or {})}
    kwargs: dict[str, Any] = {"config": None, "providers": {"replicate": conf, "openai": {"api_key": "sk-x" * 6}},
                              "retry_policy": retry, "router": Router(RoutingConfig(), clock=clock), **settings}
    transport = httpx.MockTransport(server)
    if is_async:
        return ck.AsyncClient(http_client=httpx.AsyncClient(transport=transport), **kwargs), sleeps, clock
    return ck.Client(http_client=httpx.Client(transport=transport), **kwargs), sleeps, clock


async def run(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


async def wait(p: ck.Prediction, is_async: bool, **kwargs: Any) -> ck.Prediction:
    return await p.async_wait(**kwargs) if is_async else p.wait(**kwargs)


async def cancel(p: ck.Prediction, is_async: bool) -> ck.Prediction:
    return await p.async_cancel() if is_async else p.cancel()


async def refresh(p: ck.Prediction, is_async: bool) -> ck.Prediction:
    return await p.async_refresh() if is_async else p.refresh()


def rows(client: Any) -> list[Any]:
    return list(client.ledger.rows())


# ------------------------------------------------------------------------------------------------ success


@both
async def test_success_after_polls_waits_grow_and_one_ledger_row(is_async: bool) -> None:
    host = Host(resp(pred("starting"), 201), [
        resp(pred("processing")),
        resp(pred("processing", logs="step 1/2\n")),
        resp(pred("succeeded", output=["https://replicate.delivery/out.png"], logs="step 1/2\nstep 2/2\n",
                  predict_time=3.5)),
    ])
    client, sleeps, clock = make(is_async, host.server)
    p = await run(client.predict(MODEL, {"image": "https://example.com/in.png"}, hardware="gpu-a40-large",
                                 tags={"job": "42"}))

    assert p.status == "succeeded"
    assert p.done
    assert p.output == ["https://replicate.delivery/out.png"]
    assert p.logs == "step 1/2\nstep 2/2\n"
    assert p.urls["get"] == GET_URL
    assert p.usage.gpu_seconds == Decimal("3.5")
    assert p.usage.hardware == "gpu-a40-large"
    expected = Decimal("3.5") * price("gpu-a40-large")
    assert p.cost.total == expected
    assert p.cost.estimated is False
    assert p.cost.lines[0].unit == "second"
    assert p.cost.lines[0].quantity == Decimal("3.5")
    # one create, three polls of the host's get URL, with waits of 0.5 s growing by 1.5x
    assert [s.method for s in host.server.seen] == ["POST", "GET", "GET", "GET"]
    assert all(s.url == GET_URL for s in host.gets)
    assert sleeps.waits == [0.5, 0.75, 1.125]
    assert clock.now == 1000.0 + 0.5 + 0.75 + 1.125
    # the prediction keeps the attempt that started it (polls are not billed attempts)
    assert len(p.attempts) == 1
    assert p.attempts[0].request_id == PID
    [row] = rows(client)
    assert (row.verb, row.provider, row.model, row.outcome) == ("predict", "replicate", "acme/upscaler", "success")
    assert row.cost == expected
    assert row.gpu_seconds == Decimal("3.5")
    assert row.estimated is False
    assert row.request_id == PID
    assert row.tags == {"job": "42"}
    assert row.ts == p.attempts[0].started_at


@both
async def test_poll_waits_grow_by_half_up_to_five_seconds(is_async: bool) -> None:
    host = Host(resp(pred("starting"), 201), [resp(pred("processing"))] * 9 + [
        resp(pred("succeeded", output="done", predict_time=40.0))])
    client, sleeps, _ = make(is_async, host.server)
    p = await run(client.predict(MODEL, {"x": 1}, hardware="gpu-t4"))
    assert p.status == "succeeded"
    assert sleeps.waits == [0.5, 0.75, 1.125, 1.6875, 2.53125, 3.796875, 5.0, 5.0, 5.0, 5.0]
    assert len(host.gets) == 10


@both
async def test_a_fixed_poll_interval_does_not_grow(is_async: bool) -> None:
    host = Host(resp(pred("starting"), 201), [resp(pred("processing"))] * 3 + [
        resp(pred("succeeded", predict_time=1.0))])
    client, sleeps, _ = make(is_async, host.server)
    p = await run(client.predict(MODEL, {"x": 1}, hardware="gpu-t4", poll_interval=2.0))
    assert p.status == "succeeded"
    assert sleeps.waits == [2.0, 2.0, 2.0, 2.0]


@both
async def test_a_create_that_already_finished_is_not_polled(is_async: bool) -> None:
    host = Host(resp(pred("succeeded", output="hi", predict_time=0.25), 201),
                [resp(pred("succeeded", output="hi", predict_time=0.25))])
    client, sleeps, _ = make(is_async, host.server)
    p = await run(client.predict(MODEL, {"x": 1}, hardware="gpu-l40s"))
    assert p.output == "hi"
    assert host.server.hits == 1
    assert sleeps.waits == []
    assert p.cost.total == Decimal("0.25") * price("gpu-l40s")
    assert len(rows(client)) == 1
    # refreshing an ended prediction does not record it twice
    again = await refresh(p, is_async)
    assert again.status == "succeeded"
    assert len(host.gets) == 1
    assert len(rows(client)) == 1


# ------------------------------------------------------------------------------------------------ failure


@both
async def test_failure_raises_with_the_prediction_and_its_cost_is_in_the_ledger(is_async: bool) -> None:
    logs = "loading weights\nCUDA out of memory\n"
    host = Host(resp(pred("starting"), 201), [
        resp(pred("processing")),
        resp(pred("failed", error="CUDA out of memory", logs=logs, predict_time=1.25)),
    ])
    client, _, _ = make(is_async, host.server)
    with pytest.raises(PredictionFailedError) as info:
        await run(client.predict(MODEL, {"x": 1}, hardware="gpu-a100-large"))
    err = info.value
    assert "CUDA out of memory" in str(err)
    assert err.provider == "replicate"
    assert err.model == "acme/upscaler"
    p = err.prediction
    assert isinstance(p, ck.Prediction)
    assert (p.status, p.error, p.logs) == ("failed", "CUDA out of memory", logs)
    expected = Decimal("1.25") * price("gpu-a100-large")
    assert p.cost.total == expected
    [row] = rows(client)
    assert (row.verb, row.outcome, row.error_type) == ("predict", "error", "PredictionFailedError")
    assert row.cost == expected
    assert row.gpu_seconds == Decimal("1.25")


# ------------------------------------------------------------------------------------------------ cancel


@both
async def test_cancel_goes_to_the_hosts_cancel_url(is_async: bool) -> None:
    host = Host(resp(pred("starting"), 201), [resp(pred("processing"))],
                cancel=resp(pred("canceled", predict_time=0.4)))
    client, sleeps, _ = make(is_async, host.server)
    p = await run(client.predict(MODEL, {"x": 1}, wait=False, hardware="gpu-a40-small"))
    assert p.status == "queued"
    assert not p.done
    assert p.cost is not None
    assert p.cost.total is None
    assert rows(client) == []
    running = await refresh(p, is_async)
    assert running.status == "running"
    done = await cancel(running, is_async)
    assert done.status == "canceled"
    assert done.done
    assert [(s.method, s.url) for s in host.cancels] == [("POST", CANCEL_URL)]
    assert host.cancels[0].auth == f"Bearer {TOKEN}"
    assert sleeps.waits == []
    expected = Decimal("0.4") * price("gpu-a40-small")
    assert done.cost.total == expected
    [row] = rows(client)
    assert (row.verb, row.outcome, row.error_type, row.cost) == ("predict", "error", "PredictionCanceled", expected)


@both
async def test_aborted_is_canceled(is_async: bool) -> None:
    host = Host(resp(pred("starting"), 201), [resp(pred("aborted"))])
    client, _, _ = make(is_async, host.server)
    p = await run(client.predict(MODEL, {"x": 1}, hardware="gpu-t4"))
    assert p.status == "canceled"
    assert p.cost.total is None
    assert "no run time" in (p.cost.reason or "")


# ------------------------------------------------------------------------------------------------ timeout


@both
async def test_timeout_cancels_the_remote_run(is_async: bool) -> None:
    host = Host(resp(pred("starting"), 201), [resp(pred("processing"))],
                cancel=resp(pred("canceled", predict_time=2.75)))
    client, sleeps, clock = make(is_async, host.server)
    with pytest.raises(PredictionTimeoutError) as info:
        await run(client.predict(MODEL, {"x": 1}, timeout=3.0, hardware="gpu-t4"))
    p = info.value.prediction
    assert p.status == "canceled"
    assert [s.url for s in host.cancels] == [CANCEL_URL]
    # polls until the timeout passed on the fake clock, the last wait cut to what was left
    assert sleeps.waits == [0.5, 0.75, 1.125, 0.625]
    assert clock.now == 1003.0
    assert len(host.gets) == 4
    assert p.cost.total == Decimal("2.75") * price("gpu-t4")
    [row] = rows(client)
    assert row.error_type == "PredictionCanceled"
    assert row.cost == p.cost.total


@both
async def test_timeout_without_cancel_leaves_the_run_alone(is_async: bool) -> None:
    host = Host(resp(pred("starting"), 201), [resp(pred("processing"))])
    client, sleeps, _ = make(is_async, host.server)
    with pytest.raises(PredictionTimeoutError) as info:
        await run(client.predict(MODEL, {"x": 1}, timeout=1.0, cancel_on_timeout=False, hardware="gpu-t4"))
    assert info.value.prediction.status == "running"
    assert host.cancels == []
    assert sum(sleeps.waits) == 1.0
    assert rows(client) == []  # still running: nothing billed is known yet


@both
async def test_wait_false_returns_at_once_then_wait(is_async: bool) -> None:
    host = Host(resp(pred("starting"), 201), [resp(pred("processing")),
                                             resp(pred("succeeded", output=[1, 2], predict_time=2.0))])
    client, sleeps, _ = make(is_async, host.server)
    p = await run(client.predict(MODEL, {"x": 1}, wait=False, hardware="gpu-h100"))
    assert p.status == "queued"
    assert host.server.hits == 1
    assert sleeps.waits == []
    assert "prefer" not in host.server.seen[0].headers
    done = await wait(p, is_async, poll_interval=1.0)
    assert done.status == "succeeded"
    assert done.output == [1, 2]
    assert sleeps.waits == [1.0, 1.0]
    assert done.cost.total == Decimal("2.0") * price("gpu-h100")
    assert len(rows(client)) == 1
    # The prediction the caller holds is the one that was waited on: updated in place, no rebinding needed.
    assert done is p
    assert (p.status, p.output, p.cost.total) == ("succeeded", [1, 2], done.cost.total)


@both
async def test_a_held_prediction_is_updated_even_when_wait_raises(is_async: bool) -> None:
    host = Host(resp(pred("starting"), 201), [resp(pred("failed", error="CUDA out of memory", predict_time=1.0))])
    client, _, _ = make(is_async, host.server)
    p = await run(client.predict(MODEL, {"x": 1}, wait=False, hardware="gpu-h100"))
    with pytest.raises(PredictionFailedError) as info:
        await wait(p, is_async, poll_interval=1.0)
    assert (p.status, p.error) == ("failed", "CUDA out of memory")
    assert p.cost.total == info.value.prediction.cost.total == Decimal("1.0") * price("gpu-h100")


@both
async def test_wait_with_a_timeout_on_a_prediction(is_async: bool) -> None:
    host = Host(resp(pred("starting"), 201), [resp(pred("processing"))],
                cancel=resp(pred("canceled", predict_time=0.5)))
    client, _, _ = make(is_async, host.server)
    p = await run(client.predict(MODEL, {"x": 1}, wait=False, hardware="gpu-t4"))
    with pytest.raises(PredictionTimeoutError) as info:
        await wait(p, is_async, timeout=0.5)
    assert info.value.prediction.status == "canceled"
    assert len(host.cancels) == 1


# ------------------------------------------------------------------------------------------------ retries


@both
async def test_a_5xx_on_a_poll_is_retried(is_async: bool) -> None:
    host = Host(resp(pred("starting"), 201), [
        httpx.Response(503, json={"detail": "upstream unavailable", "status": 503}),
        httpx.Response(502, json={"detail": "bad gateway", "status": 502}),
        resp(pred("succeeded", output="ok", predict_time=1.5)),
    ])
    client, sleeps, _ = make(is_async, host.server)
    p = await run(client.predict(MODEL, {"x": 1}, hardware="gpu-t4"))
    assert p.status == "succeeded"
    assert len(host.gets) == 3
    # one poll wait, then the two retry backoffs (GETs are idempotent)
    assert sleeps.waits[0] == 0.5
    assert len(sleeps.waits) == 3
    [row] = rows(client)  # failed polls are not billed attempts
    assert row.outcome == "success"
    assert row.cost == Decimal("1.5") * price("gpu-t4")


@both
async def test_a_poll_that_keeps_failing_raises_the_server_error(is_async: bool) -> None:
    host = Host(resp(pred("starting"), 201), [httpx.Response(500, json={"detail": "boom", "status": 500})])
    client, _, _ = make(is_async, host.server, max_retries=1)
    with pytest.raises(ServerError) as info:
        await run(client.predict(MODEL, {"x": 1}, hardware="gpu-t4"))
    assert info.value.status == 500
    assert len(host.gets) == 2
    assert rows(client) == []


@both
async def test_a_401_is_typed(is_async: bool) -> None:
    body = {"title": "Unauthenticated", "detail": "You did not pass a valid authentication token", "status": 401}
    host = Host(httpx.Response(401, json=body, headers={"content-type": "application/problem+json"}))
    client, _, _ = make(is_async, host.server)
    with pytest.raises(AuthenticationError) as info:
        await run(client.predict(MODEL, {"x": 1}))
    assert info.value.status == 401
    assert info.value.body == body
    assert "valid authentication token" in str(info.value)


# ------------------------------------------------------------------------------------------------ hardware & cost


@both
async def test_unknown_hardware_has_no_cost_and_says_why(is_async: bool) -> None:
    host = Host(resp(pred("succeeded", predict_time=10.0), 201))
    client, _, _ = make(is_async, host.server)
    p = await run(client.predict(MODEL, {"x": 1}))
    assert p.usage.hardware is None
    assert p.cost.total is None  # never a guessed A100
    assert "unknown replicate hardware" in (p.cost.reason or "")
    assert "hardware=" in (p.cost.reason or "")
    [row] = rows(client)
    assert row.cost is None
    assert row.gpu_seconds == Decimal("10.0")


@both
async def test_a_sku_without_a_price_has_no_cost(is_async: bool) -> None:
    host = Host(resp(pred("succeeded", predict_time=10.0), 201))
    client, _, _ = make(is_async, host.server)
    p = await run(client.predict(MODEL, {"x": 1}, hardware="gpu-made-up"))
    assert p.cost.total is None
    assert "replicate:gpu-made-up" in (p.cost.reason or "")


@both
async def test_config_hardware_prices_the_model(is_async: bool) -> None:
    host = Host(resp(pred("succeeded", predict_time=8.0), 201))
    client, _, _ = make(is_async, host.server, replicate={"hardware": {"acme/upscaler": "gpu-l40s"},
                                                          "default_hardware": "gpu-t4"})
    p = await run(client.predict(MODEL, {"x": 1}))
    assert p.usage.hardware == "gpu-l40s"
    assert p.cost.total == Decimal("8.0") * price("gpu-l40s")
    assert p.cost.estimated is False
    # hardware= wins over config
    p2 = await run(client.predict(MODEL, {"x": 1}, hardware="gpu-h100"))
    assert p2.cost.total == Decimal("8.0") * price("gpu-h100")


@both
async def test_default_hardware_is_an_estimate(is_async: bool) -> None:
    host = Host(resp(pred("succeeded", predict_time=8.0), 201))
    client, _, _ = make(is_async, host.server, replicate={"default_hardware": "gpu-a40-large"})
    p = await run(client.predict(MODEL, {"x": 1}))
    assert p.usage.hardware == "gpu-a40-large"
    assert p.cost.total == Decimal("8.0") * price("gpu-a40-large")
    assert p.cost.estimated is True
    [row] = rows(client)
    assert row.estimated is True


@both
async def test_default_hardware_estimate_survives_polling(is_async: bool) -> None:
    host = Host(resp(pred("starting"), 201), [resp(pred("succeeded", predict_time=2.0))])
    client, _, _ = make(is_async, host.server, replicate={"default_hardware": "gpu-t4"})
    p = await run(client.predict(MODEL, {"x": 1}))
    assert p.usage.hardware == "gpu-t4"
    assert p.cost.estimated is True


@both
async def test_a_two_gpu_sku_costs_twice_the_single_price(is_async: bool) -> None:
    host = Host(resp(pred("succeeded", predict_time=6.0), 201))
    client, _, _ = make(is_async, host.server)
    one = await run(client.predict(MODEL, {"x": 1}, hardware="gpu-a100-large"))
    two = await run(client.predict(MODEL, {"x": 1}, hardware="2x-gpu-a100-large"))
    assert two.cost.total == 2 * one.cost.total == Decimal("6.0") * 2 * price("gpu-a100-large")


# ------------------------------------------------------------------------------------------------ requests


@both
@pytest.mark.parametrize(("model", "path", "version"), [
    ("replicate:acme/upscaler", "/v1/models/acme/upscaler/predictions", None),
    ("replicate:acme/upscaler:5c7d5dc6dd8b", "/v1/predictions", "5c7d5dc6dd8b"),
    ("replicate:deployments/acme/upscaler-prod", "/v1/deployments/acme/upscaler-prod/predictions", None),
], ids=["model", "version", "deployment"])
async def test_model_id_forms(is_async: bool, model: str, path: str, version: str | None) -> None:
    host = Host(resp(pred("starting"), 201))
    client, _, _ = make(is_async, host.server)
    await run(client.predict(model, {"prompt": "a cat"}, wait=False, webhook="https://example.com/hook"))
    [seen] = host.server.seen
    assert seen.method == "POST"
    assert seen.url == "https://api.replicate.com" + path
    expected: dict[str, Any] = {"input": {"prompt": "a cat"}, "webhook": "https://example.com/hook"}
    if version:
        expected["version"] = version
    assert seen.body == expected


@both
async def test_wait_true_asks_for_the_sync_mode(is_async: bool) -> None:
    host = Host(resp(pred("succeeded", predict_time=1.0), 201))
    client, _, _ = make(is_async, host.server)
    await run(client.predict(MODEL, {"x": 1}, extra_body={"cancel_after": "5m"}))
    [seen] = host.server.seen
    assert seen.headers["prefer"] == "wait=60"
    assert seen.body == {"input": {"x": 1}, "cancel_after": "5m"}


@both
async def test_the_key_comes_from_replicate_api_token(is_async: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPLICATE_API_TOKEN", "r8_fromenv0123456789abcdefgh")
    host = Host(resp(pred("succeeded", predict_time=1.0), 201))
    transport = httpx.MockTransport(host.server)
    if is_async:
        client: Any = ck.AsyncClient(config=None, http_client=httpx.AsyncClient(transport=transport))
    else:
        client = ck.Client(config=None, http_client=httpx.Client(transport=transport))
    await run(client.predict(MODEL, {"x": 1}))
    assert host.server.seen[0].auth == "Bearer r8_fromenv0123456789abcdefgh"


@both
@pytest.mark.parametrize("bad", [["a", "b"], "a prompt", None, 3])
async def test_input_that_is_not_a_dict_is_refused_before_sending(is_async: bool, bad: Any) -> None:
    host = Host(resp(pred("starting"), 201))
    client, _, _ = make(is_async, host.server)
    with pytest.raises(InvalidRequestError, match="dict"):
        await run(client.predict(MODEL, bad))
    assert host.server.hits == 0


@both
async def test_a_provider_without_predict_is_refused_before_sending(is_async: bool) -> None:
    host = Host(resp(pred("starting"), 201))
    client, _, _ = make(is_async, host.server)
    with pytest.raises(UnsupportedCapabilityError) as info:
        await run(client.predict("openai:gpt-4o-mini", {"prompt": "hi"}))
    assert info.value.capability == "predict"
    assert host.server.hits == 0


def test_a_prediction_built_by_hand_cannot_poll() -> None:
    p = ck.Prediction(provider="replicate", model="a/b", id="x", status="running")
    with pytest.raises(RuntimeError, match="not attached"):
        p.refresh()


# ------------------------------------------------------------------------------------------------ module level


def test_module_level_predict_uses_the_default_client(monkeypatch: pytest.MonkeyPatch) -> None:
    host = Host(resp(pred("succeeded", output="sync", predict_time=1.0), 201))
    client, _, _ = make(False, host.server)
    monkeypatch.setattr(_defaults, "_sync", client)
    p = ck.predict(MODEL, {"x": 1}, hardware="gpu-t4")
    assert p.output == "sync"
    assert p.cost.total == price("gpu-t4")
    assert host.server.hits == 1
    assert len(rows(client)) == 1


async def test_module_level_apredict_uses_the_default_async_client(monkeypatch: pytest.MonkeyPatch) -> None:
    host = Host(resp(pred("succeeded", output="async", predict_time=1.0), 201))
    client, _, _ = make(True, host.server)
    monkeypatch.setattr(_defaults, "_async", client)
    p = await ck.apredict(MODEL, {"x": 1})
    assert p.output == "async"
    assert host.server.hits == 1


# ------------------------------------------------------------------------------------------------ input schemas

SCHEMA_MODEL: dict[str, Any] = {**MODEL_INFO, "latest_version": {"id": "v1", "openapi_schema": {
    "openapi": "3.0.2",
    "components": {"schemas": {
        "Input": {"type": "object", "required": ["image"], "properties": {
            "image": {"type": "string", "format": "uri"},
            "scale": {"type": "number", "minimum": 1, "maximum": 8, "default": 4},
            "mode": {"allOf": [{"$ref": "#/components/schemas/mode"}], "default": "fast"},
            "tiles": {"type": "array", "items": {"type": "integer"}, "maxItems": 2},
        }},
        "mode": {"enum": ["fast", "best"], "type": "string"},
    }},
}}}


def schema_host(create: httpx.Response | None = None, **kwargs: Any) -> Host:
    meta = {"/v1/models/acme/upscaler": httpx.Response(200, json=SCHEMA_MODEL)}
    return Host(create or resp(pred("succeeded", predict_time=1.0), 201), meta=meta, **kwargs)


@both
@pytest.mark.parametrize(("bad", "field", "says"), [
    ({"imag": "https://x/in.png"}, "imag", "is not an input of this model; did you mean 'image'?"),
    ({"image": "https://x/in.png", "scale": "2"}, "scale", "must be a number, not a string '2'"),
    ({"image": "https://x/in.png", "scale": 9}, "scale", "9 is above the maximum 8"),
    ({"image": "https://x/in.png", "mode": "slow"}, "mode", "'slow' is not one of 'fast', 'best'"),
    ({"image": "https://x/in.png", "tiles": [1, True]}, "tiles[1]", "must be an integer, not a boolean True"),
    ({"scale": 2}, "image", "is required"),
], ids=["unknown-name", "type", "maximum", "enum", "item-type", "required"])
async def test_bad_input_is_refused_naming_the_field_and_nothing_is_created(
    is_async: bool, bad: dict[str, Any], field: str, says: str
) -> None:
    host = schema_host()
    client, sleeps, _ = make(is_async, host.server)
    with pytest.raises(ck.InputValidationError) as info:
        await run(client.predict(MODEL, bad, hardware="gpu-t4"))
    assert info.value.field == field
    assert f"{field}: {says}" in str(info.value)
    assert "validate=False" in str(info.value)  # says how to skip the check
    assert isinstance(info.value, InvalidRequestError)
    assert [s.url for s in host.lookups] == [f"{BASE}/models/acme/upscaler"]
    assert host.server.seen == []  # no create: nothing ran, nothing billed
    assert rows(client) == []
    assert sleeps.waits == []


@both
async def test_schemas_are_looked_up_once_per_client(is_async: bool) -> None:
    host = schema_host()
    client, _, _ = make(is_async, host.server)
    for scale in (2, 3):
        p = await run(client.predict(MODEL, {"image": "https://x/in.png", "scale": scale}, hardware="gpu-t4"))
        assert p.status == "succeeded"
    assert len(host.lookups) == 1
    assert host.lookups[0].auth == f"Bearer {TOKEN}"
    assert len(host.requests("POST")) == 2
    # another client looks it up again (the cache is the client's)
    other, _, _ = make(is_async, host.server)
    await run(other.predict(MODEL, {"image": "https://x/in.png"}, hardware="gpu-t4"))
    assert len(host.lookups) == 2


@both
async def test_validate_false_skips_the_lookup_and_the_check(is_async: bool) -> None:
    host = schema_host()
    client, _, _ = make(is_async, host.server)
    p = await run(client.predict(MODEL, {"imag": "anything"}, validate=False, hardware="gpu-t4"))
    assert p.status == "succeeded"
    assert host.lookups == []
    assert host.server.seen[0].body == {"input": {"imag": "anything"}}


@both
async def test_a_version_id_looks_up_that_version(is_async: bool) -> None:
    version = SCHEMA_MODEL["latest_version"]
    host = Host(resp(pred("succeeded", predict_time=1.0), 201),
                meta={"/v1/models/acme/upscaler/versions/v1": httpx.Response(200, json=version)})
    client, _, _ = make(is_async, host.server)
    with pytest.raises(ck.InputValidationError):
        await run(client.predict(MODEL + ":v1", {"image": "x", "scale": 0}))
    assert [s.url for s in host.lookups] == [f"{BASE}/models/acme/upscaler/versions/v1"]


@both
async def test_a_model_without_a_published_schema_is_not_checked(is_async: bool) -> None:
    host = Host(resp(pred("succeeded", predict_time=1.0), 201))  # latest_version: null
    client, _, _ = make(is_async, host.server)
    p = await run(client.predict(MODEL, {"anything": 1}, hardware="gpu-t4"))
    assert p.status == "succeeded"
    assert len(host.lookups) == 1


# ------------------------------------------------------------------------------------------------ deployments

DEPLOYMENT = "replicate:deployments/acme/upscaler-prod"


def deployment(hardware: str | None) -> dict[str, Any]:
    config = {"min_instances": 0, "max_instances": 1, **({"hardware": hardware} if hardware else {})}
    return {"owner": "acme", "name": "upscaler-prod", "current_release": {
        "number": 1, "model": "acme/upscaler", "version": "v1", "configuration": config}}


def deployment_host(hardware: str | None) -> Host:
    return Host(resp(pred("succeeded", predict_time=4.0), 201),
                meta={"/v1/deployments/acme/upscaler-prod": httpx.Response(200, json=deployment(hardware))})


@both
async def test_a_deployment_is_priced_on_its_configured_hardware(is_async: bool) -> None:
    host = deployment_host("gpu-a100-large")
    client, _, _ = make(is_async, host.server)
    p = await run(client.predict(DEPLOYMENT, {"image": "x"}, validate=False))
    p2 = await run(client.predict(DEPLOYMENT, {"image": "y"}, validate=False))
    assert [s.url for s in host.lookups] == [f"{BASE}/deployments/acme/upscaler-prod"]  # cached per client
    assert p.usage.hardware == p2.usage.hardware == "gpu-a100-large"
    assert p.cost.total == Decimal("4.0") * price("gpu-a100-large")
    assert p.cost.estimated is False


@both
async def test_hardware_given_or_configured_needs_no_deployment_lookup(is_async: bool) -> None:
    host = deployment_host("gpu-a100-large")
    client, _, _ = make(is_async, host.server,
                        replicate={"hardware": {"deployments/acme/upscaler-prod": "gpu-l40s"}})
    p = await run(client.predict(DEPLOYMENT, {"image": "x"}, validate=False))
    q = await run(client.predict(DEPLOYMENT, {"image": "x"}, validate=False, hardware="gpu-t4"))
    assert host.lookups == []
    assert (p.usage.hardware, q.usage.hardware) == ("gpu-l40s", "gpu-t4")


@both
async def test_a_deployment_that_names_no_hardware_has_no_cost(is_async: bool) -> None:
    host = deployment_host(None)
    client, _, _ = make(is_async, host.server)
    p = await run(client.predict(DEPLOYMENT, {"image": "x"}, validate=False))
    assert len(host.lookups) == 1
    assert p.usage.hardware is None
    assert p.cost.total is None  # never a guessed A100
    assert "unknown replicate hardware" in (p.cost.reason or "")


@both
async def test_the_deployment_configuration_wins_over_the_default_estimate(is_async: bool) -> None:
    host = deployment_host("gpu-l40s")
    client, _, _ = make(is_async, host.server, replicate={"default_hardware": "gpu-t4"})
    p = await run(client.predict(DEPLOYMENT, {"image": "x"}, validate=False))
    assert (p.usage.hardware, p.cost.estimated) == ("gpu-l40s", False)


@both
async def test_a_deployment_schema_is_its_versions(is_async: bool) -> None:
    host = Host(resp(pred("succeeded", predict_time=1.0), 201), meta={
        "/v1/deployments/acme/upscaler-prod": httpx.Response(200, json=deployment("gpu-t4")),
        "/v1/models/acme/upscaler/versions/v1": httpx.Response(200, json=SCHEMA_MODEL["latest_version"]),
    })
    client, _, _ = make(is_async, host.server)
    with pytest.raises(ck.InputValidationError) as info:
        await run(client.predict(DEPLOYMENT, {"image": "x", "mode": "slow"}))
    assert info.value.field == "mode"
    assert [s.url.removeprefix(BASE) for s in host.lookups] == ["/deployments/acme/upscaler-prod",
                                                                "/models/acme/upscaler/versions/v1"]
    assert host.server.seen == []


# ------------------------------------------------------------------------------------------------ per-unit prices


def tokens(inp: int, out: int, predict_time: float = 3.0) -> dict[str, Any]:
    body = pred("succeeded", output=["hi"], predict_time=predict_time)
    body["metrics"].update({"input_token_count": inp, "output_token_count": out})
    return body


@both
async def test_a_configured_per_token_price_wins_over_run_time(is_async: bool) -> None:
    host = Host(resp(tokens(1000, 500), 201))
    clock = Clock()
    sleeps = Sleeps(clock)
    retry = RetryPolicy(RetryConfig(max_retries=0), sleep=sleeps, asleep=sleeps.asleep)
    cls = ck.AsyncClient if is_async else ck.Client
    transport = httpx.MockTransport(host.server)
    http = httpx.AsyncClient(transport=transport) if is_async else httpx.Client(transport=transport)
    prices = {"replicate:acme/upscaler": {"input_token_count": "0.000001", "output_token_count": "0.000004"}}
    client = cls(config=None, providers={"replicate": {"api_key": TOKEN}}, prices=prices, retry_policy=retry,
                 router=Router(RoutingConfig(), clock=clock), http_client=http)
    p = await run(client.predict(MODEL, {"x": 1}, hardware="gpu-h100", validate=False))
    book = PriceBook(prices)
    from computekit.pricing import PriceRef

    rates = book.rates(PriceRef(provider="replicate", model="acme/upscaler"))
    assert rates is not None
    expected = 1000 * rates.extra_units["input_token_count"][0] + 500 * rates.extra_units["output_token_count"][0]
    assert p.cost.total == expected
    assert all(line.unit != "second" for line in p.cost.lines)


@both
async def test_tokens_without_a_unit_price_fall_back_to_run_time(is_async: bool) -> None:
    # a community language model reports tokens too, but bills run time: no unit price, so GPU-seconds
    host = Host(resp(tokens(10, 20, predict_time=3.0), 201))
    client, _, _ = make(is_async, host.server)
    p = await run(client.predict(MODEL, {"x": 1}, hardware="gpu-t4", validate=False))
    assert p.usage.units == {"input_token_count": Decimal(10), "output_token_count": Decimal(20)}
    assert p.cost.total == Decimal("3.0") * price("gpu-t4")


@both
async def test_an_unpriced_model_with_tokens_and_no_hardware_has_no_cost(is_async: bool) -> None:
    host = Host(resp(tokens(10, 20), 201))
    client, _, _ = make(is_async, host.server)
    p = await run(client.predict(MODEL, {"x": 1}, validate=False))
    assert p.cost.total is None  # never a guess


# ------------------------------------------------------------------------------------------------ streaming

STREAM_URL = "https://stream.replicate.test/v1/files/abc"


def sse_body(*events: tuple[str, str]) -> bytes:
    return b"".join(f"event: {name}\ndata: {data}\n\n".encode() for name, data in events)


async def read_stream(p: ck.Prediction, is_async: bool, got: list[Any]) -> Any:
    if is_async:
        async with p.async_stream() as s:
            async for piece in s:
                got.append(piece)
        return s
    with p.stream() as s:
        for piece in s:
            got.append(piece)
    return s


@both
async def test_an_error_event_ends_the_stream_and_raises_with_the_cost(is_async: bool) -> None:
    started = pred("starting")
    started["urls"]["stream"] = STREAM_URL

    def stream_or_host(request: httpx.Request) -> httpx.Response:
        if str(request.url) == STREAM_URL:
            return httpx.Response(200, headers={"content-type": "text/event-stream"},
                                  content=sse_body(("output", "Once"), ("logs", "oom"), ("error", "CUDA OOM"),
                                                   ("output", "never read")))
        return host.answer(request)

    host = Host(resp(started, 201), [resp(pred("failed", error="CUDA OOM", logs="oom\n", predict_time=0.8))])
    host.server.replies = [stream_or_host]
    client, sleeps, _ = make(is_async, host.server)
    p = await run(client.predict(MODEL, {"x": 1}, wait=False, validate=False, hardware="gpu-t4"))
    got: list[Any] = []
    with pytest.raises(PredictionFailedError) as info:
        await read_stream(p, is_async, got)
    assert got == ["Once"]
    assert info.value.prediction.cost.total == Decimal("0.8") * price("gpu-t4")
    stream_req = [s for s in host.server.seen if s.url == STREAM_URL]
    assert len(stream_req) == 1
    assert stream_req[0].headers["accept"] == "text/event-stream"
    assert stream_req[0].auth is None  # the stream host is another origin: its URL is the capability, no key
    assert len(host.gets) == 2  # the stream, then the final state once (no poll interval waited)
    assert sleeps.waits == []
    [row] = rows(client)
    assert row.error_type == "PredictionFailedError"


@both
async def test_a_model_that_does_not_stream_is_refused_before_any_request(is_async: bool) -> None:
    host = Host(resp(pred("starting"), 201))  # no urls.stream
    client, _, _ = make(is_async, host.server)
    p = await run(client.predict(MODEL, {"x": 1}, wait=False, validate=False))
    before = host.server.hits
    with pytest.raises(UnsupportedCapabilityError) as info:
        p.async_stream() if is_async else p.stream()
    assert "urls.stream" in str(info.value)
    assert host.server.hits == before


@both
@pytest.mark.parametrize("provider", ["fal", "baseten-dedicated", "stability", "hf-endpoint"])
async def test_hosts_without_streaming_refuse_before_any_request(is_async: bool, provider: str) -> None:
    hits: list[Any] = []
    client, _, _ = make(is_async, lambda r: hits.append(r) or httpx.Response(500))
    p = ck.Prediction(provider=provider, model="some/model", id="r1", status="running")
    p._client = client
    with pytest.raises(UnsupportedCapabilityError) as info:
        p.async_stream() if is_async else p.stream()
    assert info.value.capability is not None
    assert "predict_stream" in info.value.capability
    assert hits == []


@both
async def test_streaming_an_ended_prediction_yields_its_output_without_a_request(is_async: bool) -> None:
    done = pred("succeeded", output=["a", "b"], predict_time=1.0)
    done["urls"]["stream"] = STREAM_URL
    host = Host(resp(done, 201))
    client, _, _ = make(is_async, host.server)
    p = await run(client.predict(MODEL, {"x": 1}, validate=False, hardware="gpu-t4"))
    got: list[Any] = []
    s = await read_stream(p, is_async, got)
    assert got == ["a", "b"]
    assert host.server.hits == 1
    assert s.result.cost.total == price("gpu-t4")
    assert len(rows(client)) == 1


# ------------------------------------------------------------------------------------------------ progress


def recording_console() -> Any:
    import io

    from rich.console import Console

    return Console(record=True, file=io.StringIO(), force_terminal=True, width=120)


@both
async def test_progress_shows_status_elapsed_and_the_latest_log_line(is_async: bool) -> None:
    host = Host(resp(pred("starting"), 201), [
        resp(pred("processing", logs="loading\n")),
        resp(pred("processing", logs="loading\n 50%|#####     | 2/4\r 75%|#######   | 3/4\n")),
        resp(pred("succeeded", output="ok", logs="done\n", predict_time=1.5)),
    ])
    client, _, _ = make(is_async, host.server)
    console = recording_console()
    p = await run(client.predict(MODEL, {"x": 1}, hardware="gpu-t4", validate=False, progress=console))
    text = console.export_text()
    assert "replicate:acme/upscaler  queued  0.0s" in text
    assert "replicate:acme/upscaler  running  0.5s  loading" in text
    assert "running  1.2s  75%|#######   | 3/4" in text  # the last frame of a \r progress bar
    final = f"replicate:acme/upscaler  succeeded  2.4s  ${p.cost.total:f}"
    assert text.rstrip().endswith(final)


@both
async def test_progress_on_wait_and_on_a_timeout(is_async: bool) -> None:
    host = Host(resp(pred("starting"), 201), [resp(pred("processing"))],
                cancel=resp(pred("canceled", predict_time=0.5)))
    client, _, _ = make(is_async, host.server)
    p = await run(client.predict(MODEL, {"x": 1}, wait=False, hardware="gpu-t4", validate=False))
    console = recording_console()
    with pytest.raises(PredictionTimeoutError):
        await (p.async_wait(timeout=1.0, progress=console) if is_async else run(p.wait(timeout=1.0,
                                                                                        progress=console)))
    text = console.export_text()
    assert "running" in text
    assert text.rstrip().endswith(f"canceled  1.0s  ${Decimal('0.5') * price('gpu-t4'):f}")


def test_progress_line_is_pure_and_short() -> None:
    from computekit._progress import describe, last_log_line

    p = ck.Prediction(provider="runpod", model="ep1", id="j", status="running", logs="x" * 500 + "\n")
    line = describe(p, 3.25)
    assert line.startswith("runpod:ep1  running  3.2s  ")
    assert len(last_log_line(p.logs)) == 80
    assert last_log_line("\n\n") == ""


# ------------------------------------------------------------------------------------------------ timeout


@both
async def test_timeout_caps_how_long_replicate_holds_the_create(is_async: bool) -> None:
    host = Host(resp(pred("succeeded", predict_time=1.0), 201))
    client, _, _ = make(is_async, host.server)
    await run(client.predict(MODEL, {"x": 1}, timeout=12.7, validate=False))
    await run(client.predict(MODEL, {"x": 1}, timeout=300, validate=False))
    await run(client.predict(MODEL, {"x": 1}, timeout=0.2, validate=False))
    assert [s.headers["prefer"] for s in host.server.seen] == ["wait=12", "wait=60", "wait=1"]


@both
async def test_a_create_that_times_out_raises_the_prediction_timeout(is_async: bool) -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("no answer", request=request)

    server = Server([slow])
    client, sleeps, _ = make(is_async, server)
    with pytest.raises(PredictionTimeoutError) as info:
        await run(client.predict(MODEL, {"x": 1}, timeout=5.0, validate=False))
    assert info.value.prediction is None
    assert server.hits == 1  # a read timeout on a create is not retried (the job may be running)
    assert sleeps.waits == []


@both
async def test_a_zero_poll_interval_polls_without_waiting_and_a_negative_one_is_refused(is_async: bool) -> None:
    host = Host(resp(pred("starting"), 201), [resp(pred("processing")),
                                             resp(pred("succeeded", output=[1], predict_time=1.0))])
    client, sleeps, _ = make(is_async, host.server)
    p = await run(client.predict(MODEL, {"x": 1}, wait=False, hardware="gpu-h100"))
    await wait(p, is_async, poll_interval=0)
    assert p.status == "succeeded"
    assert sleeps.waits == [0, 0]  # 0 is a real interval, not "use the default"
    with pytest.raises(ck.InvalidRequestError, match="poll_interval"):
        await wait(p, is_async, poll_interval=-1)


# ------------------------------------------------------------------------------------------------ remote ledger


@both
@pytest.mark.parametrize("remote", [False, True], ids=["embedded", "remote"])
async def test_an_ended_prediction_is_written_off_the_event_loop_only_async_with_a_remote_ledger(
        is_async: bool, remote: bool, tmp_path: Any) -> None:
    import threading

    watched = WatchedLedger(tmp_path / "w.db", remote=remote)
    host = Host(resp(pred("starting"), 201), [resp(pred("processing")), resp(pred("succeeded", predict_time=2.0))])
    client, _, _ = make(is_async, host.server, replicate={"max_seconds": 60}, ledger=watched.ledger,
                        budget={"limit_usd": "5"})
    caller = threading.current_thread()
    p = await run(client.predict(MODEL, {"image": "https://example.com/in.png"}, hardware="gpu-a40-large"))
    assert p.status == "succeeded"
    # reserved before the create, held while the run goes on, settled by the run's one row when it ended
    assert watched.steps() == ["reserve", "settle"]
    assert watched.off(caller) == [is_async and remote] * 2
    [row] = rows(client)
    assert row.cost == Decimal("2.0") * price("gpu-a40-large") == p.cost.total
    await run(client.aclose() if is_async else client.close())
    watched.ledger.close()


# ---------------------------------------------------------------------------------------- lifecycle on the client


@both
async def test_the_lifecycle_lives_on_the_client(is_async: bool) -> None:
    host = Host(resp(pred("starting"), 201), [resp(pred("processing")),
                                             resp(pred("succeeded", output=[1, 2], predict_time=2.0))])
    client, sleeps, _ = make(is_async, host.server)
    p = await run(client.predict(MODEL, {"x": 1}, wait=False, hardware="gpu-h100"))
    fresh = await run(client.predictions.refresh(p))
    assert fresh is not p  # the namespace returns the latest state; the held prediction is left as it was
    assert (fresh.status, p.status) == ("running", "queued")
    done = await run(client.predictions.wait(fresh, poll_interval=1.0))
    assert (done.status, done.output) == ("succeeded", [1, 2])
    assert done.cost.total == Decimal("2.0") * price("gpu-h100")
    assert len(rows(client)) == 1
    assert sleeps.waits == [1.0]


@both
@pytest.mark.parametrize("method", ["wait", "refresh", "cancel", "stream", "save"])
async def test_a_lifecycle_method_of_the_other_flavour_fails_at_once(is_async: bool, method: str,
                                                                     tmp_path: Any) -> None:
    host = Host(resp(pred("starting"), 201), [resp(pred("processing"))], cancel=resp(pred("canceled")))
    client, _, _ = make(is_async, host.server)
    p = await run(client.predict(MODEL, {"x": 1}, wait=False, hardware="gpu-h100"))
    sent = host.server.hits
    args = (tmp_path,) if method == "save" else ()
    if is_async:  # the sync method on an AsyncClient's prediction
        with pytest.raises(ck.InvalidRequestError, match=rf"AsyncClient: use `(await )?p\.async_{method}") as ei:
            getattr(p, method)(*args)
    else:  # the async method on a sync Client's prediction
        with pytest.raises(ck.InvalidRequestError, match=rf"sync Client: call p\.{method}\(") as ei:
            await run(getattr(p, f"async_{method}")(*args))
    assert "coroutine" not in str(ei.value)
    assert host.server.hits == sent  # nothing was sent
    assert p.status == "queued"  # and the prediction is as it was


@both
async def test_a_runs_reservation_lives_as_long_as_the_run_may_bill(is_async: bool) -> None:
    """With ``max_seconds`` past the reservation's usual hour, the run's worst case stays reserved while it may
    still be billing: lapsed after an hour, another call could take the money the run goes on spending."""
    import datetime as dt

    from computekit._budget import budget_status
    from computekit._constants import RESERVATION_TTL_S

    seconds = 3 * RESERVATION_TTL_S
    worst = Decimal(str(seconds)) * price("gpu-a40-large")
    host = Host(resp(pred("starting"), 201), [resp(pred("processing"))])
    client, _, _ = make(is_async, host.server, replicate={"max_seconds": seconds},
                        budget={"limit_usd": str(worst * 2), "period": "total"})
    p = await run(client.predict(MODEL, {"x": 1}, wait=False, hardware="gpu-a40-large", validate=False))
    assert p.status == "queued"
    budgets = client._core.settings.active_budgets()
    start = dt.datetime.now(dt.UTC)
    for later in (RESERVATION_TTL_S + 1, seconds):
        status = budget_status(budgets, client._core.ledger, start + dt.timedelta(seconds=later))
        assert status["default"].reserved == worst
    await run(client.aclose() if is_async else client.close())
