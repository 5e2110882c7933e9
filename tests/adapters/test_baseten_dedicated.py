"""The ``baseten-dedicated`` provider (a model deployed on Baseten, called with ``predict()``), sync and async.

Replays of cassettes/test_baseten_dedicated/ (authored from Baseten's inference API reference, marked so), and
edges on an ``httpx.MockTransport``. Baseten answers with the model output only and reports no run time, so the
client times the call: cost = measured seconds x the instance's per-second price (from config ``[prices]`` here:
computekit has no cited Baseten instance table), marked estimated. Expected costs are read back from a
``PriceBook`` built from that same config.
"""

from __future__ import annotations

import inspect
import json
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from _clients import Sleeps, call, close, every_interaction_played, mode, vcr_config  # noqa: F401  (shared fixtures, registered by name)

import computekit as ck
from computekit._config import RetryConfig, RoutingConfig
from computekit._exceptions import AuthenticationError, InvalidRequestError, ServerError
from computekit._retry import RetryPolicy
from computekit.adapters import adapter_class
from computekit.pricing import PriceBook
from computekit.routing import Router

ROOT = Path(__file__).resolve().parents[2]
CASSETTES = ROOT / "cassettes" / "test_baseten_dedicated"
KEY = os.environ.get("BASETEN_API_KEY") or "bt_placeholder.0123456789abcdef"
MODEL_ID = "4q9k2m7w"
URL = f"https://model-{MODEL_ID}.api.baseten.co/environments/production/predict"
SKU = "H100"
PRICES = {f"baseten-dedicated:{SKU}": {"per_second": "0.0018"}, "baseten-dedicated:L4": {"per_second": "0.00024"}}


def per_second(sku: str) -> Decimal:
    found = PriceBook(PRICES).per_second("baseten-dedicated", sku)
    assert found is not None
    return found[0]


def client_for(mode: str, sleeps: Sleeps, *, transport: httpx.MockTransport | None = None,
               conf: dict[str, Any] | None = None) -> Any:
    kwargs: dict[str, Any] = {
        "config": None,
        "providers": {"baseten-dedicated": {"api_key": KEY, **(conf or {})}},
        "prices": PRICES,
        "retry_policy": RetryPolicy(RetryConfig(max_retries=0), sleep=sleeps, asleep=sleeps.asleep),
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
@pytest.mark.default_cassette("predict_production.yaml")
async def test_predict_production_is_priced_from_the_measured_time(mode: str) -> None:
    sleeps = Sleeps()
    client = client_for(mode, sleeps)
    p = await call(client, "predict", f"baseten-dedicated:{MODEL_ID}",
                   {"prompt": "a watercolor fox", "num_inference_steps": 4}, hardware=SKU)
    await close(client)
    assert p.status == "succeeded"
    assert p.done
    assert p.output == {"image_url": "https://example.com/outputs/fox.png", "seed": 1234}
    assert p.id == p.request_id == "9f1c2a7e4b6d48a0b3e5c7d9f1a2b3c4"
    # Baseten reports no run time: the call's measured time stands in, and the cost is an estimate
    seconds = p.usage.gpu_seconds
    assert seconds is not None
    assert seconds > 0
    assert seconds == Decimal(str(round(p.attempts[0].latency_s, 6)))
    assert p.cost.total == seconds * per_second(SKU)
    assert p.cost.estimated is True
    assert p.cost.lines[0].item == SKU
    assert sleeps.waits == []
    [row] = client.ledger.rows()
    assert (row.verb, row.provider, row.model, row.outcome) == ("predict", "baseten-dedicated", MODEL_ID, "success")
    assert row.cost == p.cost.total
    assert row.estimated is True
    assert row.gpu_seconds == seconds


@pytest.mark.vcr
@pytest.mark.default_cassette("predict_deployment.yaml")
async def test_predict_one_deployment(mode: str) -> None:
    client = client_for(mode, Sleeps(), conf={"hardware": {f"{MODEL_ID}/deployment/w3n8x5p": "L4"}})
    p = await call(client, "predict", f"baseten-dedicated:{MODEL_ID}/deployment/w3n8x5p",
                   {"text": "The quick brown fox"})
    await close(client)
    assert p.output == [0.0123, -0.0456, 0.0789]
    assert p.usage.hardware == "L4"
    assert p.cost.total == p.usage.gpu_seconds * per_second("L4")
    assert p.cost.estimated is True


def test_cassettes_are_marked_and_hold_no_key() -> None:
    paths = sorted(CASSETTES.glob("*.yaml"))
    assert [p.name for p in paths] == ["predict_deployment.yaml", "predict_production.yaml"]
    for path in paths:
        text = path.read_text("utf-8")
        assert text.startswith("# AUTHORED: written from ")
        assert text.splitlines()[0].endswith(", not recorded.")
        for inter in yaml.safe_load(text)["interactions"]:
            assert inter["request"]["uri"].startswith(f"https://model-{MODEL_ID}.api.baseten.co/")
            assert inter["request"]["uri"].endswith("/predict")
            assert "authorization" not in {k.lower() for k in inter["request"]["headers"]}
            json.loads(inter["response"]["body"]["string"])


# ------------------------------------------------------------------------------------------------ edges


class Host:
    def __init__(self, reply: httpx.Response) -> None:
        self.reply = reply
        self.seen: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        return self.reply


async def test_the_request_is_the_model_input_with_an_api_key_header(mode: str) -> None:
    host = Host(httpx.Response(200, json={"ok": True}, headers={"x-baseten-request-id": "r1"}))
    client = client_for(mode, Sleeps(), transport=httpx.MockTransport(host))
    await run(client.predict(f"baseten-dedicated:{MODEL_ID}", {"prompt": "hi"}, extra_body={"max_new_tokens": 8}))
    await run(client.predict(f"baseten-dedicated:{MODEL_ID}/environments/staging", {"prompt": "hi"}))
    await close(client)
    first, second = host.seen
    assert (first.method, str(first.url)) == ("POST", URL)
    assert first.headers["authorization"] == f"Api-Key {KEY}"
    assert json.loads(first.content) == {"prompt": "hi", "max_new_tokens": 8}
    assert str(second.url) == f"https://model-{MODEL_ID}.api.baseten.co/environments/staging/predict"


async def test_unknown_hardware_has_no_cost(mode: str) -> None:
    host = Host(httpx.Response(200, json="done"))
    client = client_for(mode, Sleeps(), transport=httpx.MockTransport(host))
    p = await run(client.predict(f"baseten-dedicated:{MODEL_ID}", {"x": 1}))
    await close(client)
    assert p.output == "done"
    assert p.id.startswith("local-")  # no request id header: a local id stands in
    assert p.usage.gpu_seconds is not None  # measured
    assert p.cost.total is None  # never a guessed instance
    assert "unknown baseten-dedicated hardware" in (p.cost.reason or "")
    [row] = client.ledger.rows()
    assert row.cost is None


async def test_wait_false_and_webhooks_are_refused_before_sending(mode: str) -> None:
    host = Host(httpx.Response(200, json={}))
    client = client_for(mode, Sleeps(), transport=httpx.MockTransport(host))
    with pytest.raises(InvalidRequestError, match="synchronous"):
        await run(client.predict(f"baseten-dedicated:{MODEL_ID}", {"x": 1}, wait=False))
    with pytest.raises(InvalidRequestError, match="async_predict"):
        await run(client.predict(f"baseten-dedicated:{MODEL_ID}", {"x": 1}, webhook="https://example.com/h"))
    with pytest.raises(InvalidRequestError, match="environments/NAME"):
        await run(client.predict(f"baseten-dedicated:{MODEL_ID}/v1/chat", {"x": 1}))
    await close(client)
    assert host.seen == []
    assert client.ledger.rows() == []


async def test_errors_are_typed(mode: str) -> None:
    for status, cls in ((401, AuthenticationError), (500, ServerError)):
        host = Host(httpx.Response(status, json={"error": "nope"}))
        client = client_for(mode, Sleeps(), transport=httpx.MockTransport(host))
        with pytest.raises(cls) as info:
            await run(client.predict(f"baseten-dedicated:{MODEL_ID}", {"x": 1}, hardware=SKU))
        await close(client)
        assert info.value.status == status
        assert "nope" in str(info.value)


async def test_a_text_answer_is_kept_as_text(mode: str) -> None:
    host = Host(httpx.Response(200, text="plain words", headers={"content-type": "text/plain"}))
    client = client_for(mode, Sleeps(), transport=httpx.MockTransport(host))
    p = await run(client.predict(f"baseten-dedicated:{MODEL_ID}", {"x": 1}, hardware=SKU))
    await close(client)
    assert p.output == "plain words"
    assert p.cost.total == p.usage.gpu_seconds * per_second(SKU)


def test_a_finished_prediction_cannot_be_polled_or_canceled() -> None:
    from pydantic import SecretStr

    from computekit.adapters._base import ProviderSettings

    cls = adapter_class("baseten-dedicated")
    adapter = cls(ProviderSettings(name="baseten-dedicated", base_url=cls.default_base_url or "",
                                   api_key=SecretStr(KEY), timeout=60.0))
    p = ck.Prediction(provider="baseten-dedicated", model=MODEL_ID, id="r1", status="succeeded")
    with pytest.raises(InvalidRequestError, match="nothing to refresh"):
        adapter.build_get(p)
    with pytest.raises(InvalidRequestError, match="nothing to cancel"):
        adapter.build_cancel(p)


def test_the_model_apis_provider_is_a_different_adapter() -> None:
    assert adapter_class("baseten").__name__ == "OpenAICompatibleAdapter"
    assert adapter_class("baseten-dedicated").__name__ == "BasetenDedicatedAdapter"
    assert adapter_class("baseten").defaults_for("baseten")[1] == adapter_class("baseten-dedicated").key_env_vars
