"""The ``fal`` provider through the public client, sync and async, replayed from cassettes/test_fal/.

The cassettes were authored from fal's queue API documentation (submit, status, result, cancel; request errors):
each one says so on its first line. fal reports what a run billed in the ``x-fal-billable-units`` header of the
result; computekit holds no fal unit price, so the tests configure one in ``[prices]`` and the cost must be the
header's units times that configured price.
"""

from __future__ import annotations

import os
from decimal import Decimal
from typing import Any

import pytest
from _clients import Sleeps, call, close, every_interaction_played, mode, vcr_config  # noqa: F401  (shared fixtures, registered by name)

import computekit as ck
from computekit._config import RetryConfig, RoutingConfig
from computekit._exceptions import AuthenticationError, BadRequestError, PredictionFailedError
from computekit._retry import RetryPolicy
from computekit.adapters import adapter_class
from computekit.adapters._base import HTTPResponse, ProviderSettings
from computekit.pricing import PriceBook, PriceRef
from computekit.routing import Router

KEY = os.environ.get("FAL_KEY") or "fal-placeholder-0123456789abcdef:0123456789abcdef"
APP = "fal-ai/flux/schnell"
MODEL = f"fal:{APP}"
RID = "764cabcf-b745-4b3e-ae38-1200304cf45b"
BASE = f"https://queue.fal.run/fal-ai/flux/requests/{RID}"
UNIT_PRICE = "0.003"
"""The unit price the tests configure for the app (config ``[prices]``, not a computekit table)."""
PRICES = {MODEL: {"billable_units": UNIT_PRICE}}


def client_for(mode: str, sleeps: Sleeps, *, max_retries: int = 0, prices: dict[str, Any] | None = None) -> Any:
    cls = ck.Client if mode == "sync" else ck.AsyncClient
    config = {"prices": PRICES if prices is None else prices}
    return cls(config=config, providers={"fal": {"api_key": KEY}},
               retry_policy=RetryPolicy(RetryConfig(max_retries=max_retries), sleep=sleeps, asleep=sleeps.asleep),
               router=Router(RoutingConfig(), clock=sleeps.clock))


def unit_price() -> Decimal:
    """The configured price of one billable unit, read back through PriceBook."""
    rates = PriceBook(PRICES).rates(PriceRef(provider="fal", model=APP))
    assert rates is not None
    price, per = rates.extra_units["billable_units"]
    return price / per


async def _sync(value: Any) -> Any:
    return value


# ------------------------------------------------------------------------------------------------ replays


@pytest.mark.vcr
@pytest.mark.default_cassette("run_and_poll.yaml")
async def test_submit_poll_and_fetch_the_result(mode: str) -> None:
    sleeps = Sleeps()
    client = client_for(mode, sleeps)
    p = await call(client, "predict", MODEL, {"prompt": "a red bicycle"})
    await close(client)
    assert p.status == "succeeded"
    assert p.id == RID
    assert p.output["images"][0]["url"] == "https://v3.fal.media/files/rabbit/bicycle.jpg"
    assert p.usage.units == {"billable_units": Decimal(1)}
    assert p.cost.total == Decimal(1) * unit_price()
    assert p.cost.price_source is not None
    assert p.cost.price_source.table == "config"
    [line] = p.cost.lines
    assert (line.item, line.quantity, line.unit_price) == ("billable_units", Decimal(1), unit_price())
    # three polls: IN_PROGRESS, COMPLETED (the result is not in hand yet), then the result itself, fetched at
    # once: no poll interval is waited once fal says COMPLETED
    assert sleeps.waits == [0.5, 0.75]
    [row] = client.ledger.rows()
    assert (row.verb, row.provider, row.model, row.outcome, row.cost) == ("predict", "fal", APP, "success",
                                                                           p.cost.total)


@pytest.mark.vcr
@pytest.mark.default_cassette("run_and_poll.yaml")
async def test_wait_false_then_refresh_until_done(mode: str) -> None:
    sleeps = Sleeps()
    client = client_for(mode, sleeps)
    p = await call(client, "predict", MODEL, {"prompt": "a red bicycle"}, wait=False)
    assert (p.status, p.urls["cancel"]) == ("queued", f"{BASE}/cancel")
    assert p.cost.total is None
    seen = []
    for _ in range(3):
        p = await (p.async_refresh() if mode == "async" else _sync(p.refresh()))
        seen.append((p.status, p.metrics.get("fal_status")))
    await close(client)
    assert seen == [("running", "IN_PROGRESS"), ("running", "COMPLETED"), ("succeeded", None)]
    assert "4/4 steps" not in p.logs  # the result carries no logs; the status polls did
    assert p.cost.total == unit_price()
    assert sleeps.waits == []


@pytest.mark.vcr
@pytest.mark.default_cassette("poll_5xx_retried.yaml")
async def test_a_5xx_on_a_poll_is_retried(mode: str) -> None:
    sleeps = Sleeps()
    client = client_for(mode, sleeps, max_retries=2)
    p = await call(client, "predict", MODEL, {"prompt": "a red bicycle"})
    await close(client)
    assert p.status == "succeeded"
    assert p.usage.units == {"billable_units": Decimal("1.5")}
    assert p.cost.total == Decimal("1.5") * unit_price()
    # poll wait, the retry's backoff after the 503 (the retried GET says COMPLETED), then the result at once
    assert len(sleeps.waits) == 2
    assert sleeps.waits[0] == 0.5
    assert 0 < sleeps.waits[1] < 0.5
    [row] = client.ledger.rows()  # the failed poll is not a billed attempt
    assert row.outcome == "success"


@pytest.mark.vcr
@pytest.mark.default_cassette("poll_5xx_retried.yaml")
async def test_without_a_configured_price_the_cost_is_unknown(mode: str) -> None:
    client = client_for(mode, Sleeps(), max_retries=1, prices={})
    with pytest.warns(ck.UnknownPriceWarning):
        p = await call(client, "predict", MODEL, {"prompt": "a red bicycle"})
    await close(client)
    assert p.usage.units == {"billable_units": Decimal("1.5")}
    assert p.cost.total is None
    assert APP in (p.cost.reason or "")


@pytest.mark.vcr
@pytest.mark.default_cassette("failed.yaml")
async def test_a_run_that_ends_in_error_raises_typed(mode: str) -> None:
    sleeps = Sleeps()
    client = client_for(mode, sleeps)
    with pytest.raises(PredictionFailedError) as info:
        await call(client, "predict", MODEL, {"prompt": "a red bicycle"})
    await close(client)
    p = info.value.prediction
    assert (p.status, p.error) == ("failed", "Request timed out")
    assert p.metrics["fal_status"] == "COMPLETED"
    assert "Loading pipeline" in p.logs
    assert p.cost.total is None  # fal reported no billable units for it
    [row] = client.ledger.rows()
    assert (row.outcome, row.error_type) == ("error", "PredictionFailedError")


@pytest.mark.vcr
@pytest.mark.default_cassette("result_error.yaml")
async def test_a_result_that_is_an_error_raises_typed(mode: str) -> None:
    client = client_for(mode, Sleeps())
    with pytest.raises(BadRequestError) as info:
        await call(client, "predict", MODEL, {"prompt": "a red bicycle", "num_images": 9})
    await close(client)
    assert info.value.status == 422
    assert info.value.message == "num_images: ensure this value is less than or equal to 4"


@pytest.mark.vcr
@pytest.mark.default_cassette("cancel.yaml")
async def test_cancel(mode: str) -> None:
    sleeps = Sleeps()
    client = client_for(mode, sleeps)
    p = await call(client, "predict", MODEL, {"prompt": "a red bicycle"}, wait=False)
    assert p.status == "queued"
    done = await (p.async_cancel() if mode == "async" else _sync(p.cancel()))
    await close(client)
    assert done.status == "canceled"
    assert done.id == RID
    assert done.metrics["fal_status"] == "CANCELLATION_REQUESTED"
    assert done.cost.total is None  # fal reports no units for a canceled request
    assert sleeps.waits == []
    [row] = client.ledger.rows()
    assert row.error_type == "PredictionCanceled"


@pytest.mark.vcr
@pytest.mark.default_cassette("auth_error.yaml")
async def test_auth_error(mode: str) -> None:
    client = client_for(mode, Sleeps())
    with pytest.raises(AuthenticationError) as info:
        await call(client, "predict", MODEL, {"prompt": "a red bicycle"})
    await close(client)
    assert info.value.status == 401
    assert info.value.request_id == RID
    assert "No user found" in str(info.value)


# ------------------------------------------------------------------------------------------------ the adapter


def adapter() -> Any:
    cls = adapter_class("fal")
    return cls(ProviderSettings(name="fal", base_url=cls.default_base_url or "", api_key=None, timeout=30))


def test_requests_follow_the_urls_fal_returned() -> None:
    from pydantic import SecretStr

    cls = adapter_class("fal")
    a = cls(ProviderSettings(name="fal", base_url="https://queue.fal.run", api_key=SecretStr(KEY), timeout=30))
    from computekit.adapters._base import PredictRequest

    http = a.build_predict(PredictRequest(model=APP, input={"prompt": "x"}, webhook="https://me.test/hook?a=1"))
    assert (http.method, http.url) == ("POST", f"https://queue.fal.run/{APP}?fal_webhook=https%3A%2F%2Fme.test%2Fhook%3Fa%3D1")
    assert http.headers["authorization"] == f"Key {KEY}"
    assert http.json == {"prompt": "x"}
    q = "https://queue.fal.run/o/a/requests/r1"
    submitted = a.parse_prediction(APP, HTTPResponse(200, {}, (
        f'{{"request_id": "r1", "status_url": "{q}/status", "response_url": "{q}", "cancel_url": "{q}/cancel"}}'
    ).encode(), f"https://queue.fal.run/{APP}"))
    assert a.build_get(submitted).url == f"{q}/status?logs=1"
    assert (a.build_cancel(submitted).method, a.build_cancel(submitted).url) == ("PUT", f"{q}/cancel")


def test_urls_fal_returned_on_another_host_are_not_followed_with_the_key() -> None:
    from pydantic import SecretStr

    cls = adapter_class("fal")
    a = cls(ProviderSettings(name="fal", base_url="https://queue.fal.run", api_key=SecretStr(KEY), timeout=30))
    submitted = a.parse_prediction(APP, HTTPResponse(200, {}, (
        b'{"request_id": "r1", "status_url": "https://q.test/o/a/requests/r1/status",'
        b' "response_url": "http://queue.fal.run/o/a/requests/r1", "cancel_url": "https://q.test/o/a/requests/r1/cancel"}'
    ), f"https://queue.fal.run/{APP}"))
    built = "https://queue.fal.run/fal-ai/flux/requests/r1"
    assert a.build_get(submitted).url == f"{built}/status?logs=1"
    assert a.build_cancel(submitted).url == f"{built}/cancel"
    done = submitted.model_copy(update={"urls": {**submitted.urls, "get": submitted.urls["response"]}})
    assert a.build_get(done).url == built  # plain http on fal's host is another origin too


def test_a_malformed_billable_units_header_is_malformed() -> None:
    from computekit._exceptions import MalformedResponseError

    with pytest.raises(MalformedResponseError):
        adapter().parse_prediction(APP, HTTPResponse(200, {"x-fal-billable-units": "lots"}, b"{}", BASE))


def test_an_unknown_status_is_malformed() -> None:
    from computekit._exceptions import MalformedResponseError

    with pytest.raises(MalformedResponseError):
        adapter().parse_prediction(APP, HTTPResponse(200, {}, b'{"status": "EXPLODED"}', f"{BASE}/status?logs=1"))
