"""The ``hf-endpoint`` provider (Hugging Face Inference Endpoints, called with ``predict()``), sync and async.

Replays of cassettes/test_hf_endpoint/ (authored from Hugging Face's Inference Endpoints guides, marked so), and
edges on an ``httpx.MockTransport``. An endpoint answers with the model output only and reports no usage, so the
client times the call: cost = measured seconds x the endpoint hardware's per-second price (from config
``[prices]`` here: computekit bundles no Inference Endpoints table), marked estimated. Expected costs are read
back from a ``PriceBook`` built from that same config.
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
from computekit._exceptions import (
    AuthenticationError,
    InvalidRequestError,
    OverloadedError,
    ServerError,
    UnsupportedCapabilityError,
)
from computekit._retry import RetryPolicy
from computekit.adapters import adapter_class
from computekit.pricing import PriceBook
from computekit.routing import Router

ROOT = Path(__file__).resolve().parents[2]
CASSETTES = ROOT / "cassettes" / "test_hf_endpoint"
KEY = os.environ.get("HF_TOKEN") or "hf_placeholder0123456789abcdef"
URL = "https://uu149rez6gw9ehej.eu-west-1.aws.endpoints.huggingface.cloud"
NAMED_URL = "https://k3v9q2x7m1p4z8w6.us-east-1.aws.endpoints.huggingface.cloud"
NAME = "llama-chat"
SKU = "nvidia-a10g"
# Per-second prices as a user would configure them: the endpoint's hourly rate / 3600 (illustrative values).
PRICES = {f"hf-endpoint:{SKU}": {"per_second": "0.000278"}, "hf-endpoint:nvidia-l4-x4": {"per_second": "0.001056"}}


def per_second(sku: str) -> Decimal:
    found = PriceBook(PRICES).per_second("hf-endpoint", sku)
    assert found is not None
    return found[0]


@pytest.fixture(autouse=True)
def _no_env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("HF_TOKEN", "HUGGINGFACE_API_KEY"):
        monkeypatch.delenv(var, raising=False)


def client_for(mode: str, sleeps: Sleeps, *, transport: httpx.MockTransport | None = None,
               conf: dict[str, Any] | None = None, retries: int = 0, key: str | None = KEY) -> Any:
    provider: dict[str, Any] = {**({"api_key": key} if key else {}), **(conf or {})}
    kwargs: dict[str, Any] = {
        "config": None,
        "providers": {"hf-endpoint": provider},
        "prices": PRICES,
        "retry_policy": RetryPolicy(RetryConfig(max_retries=retries), sleep=sleeps, asleep=sleeps.asleep),
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


def measured(p: ck.Prediction) -> Decimal:
    seconds = p.usage.gpu_seconds
    assert seconds is not None
    assert seconds > 0
    assert seconds == Decimal(str(round(p.attempts[-1].latency_s, 6)))  # the successful call's own time
    return seconds


# ------------------------------------------------------------------------------------------------ replays


@pytest.mark.vcr
@pytest.mark.default_cassette("predict_url.yaml")
async def test_the_url_form_is_priced_from_the_measured_time(mode: str) -> None:
    sleeps = Sleeps()
    client = client_for(mode, sleeps, conf={"hardware": {URL: SKU}})
    p = await call(client, "predict", f"hf-endpoint:{URL}",
                   {"inputs": "Deploying my first endpoint was an amazing experience."})
    await close(client)
    assert p.status == "succeeded"
    assert p.done
    assert p.output == [{"label": "POSITIVE", "score": 0.9998}]
    assert p.id.startswith("local-")  # no request id header in the answer: a local id stands in
    assert p.model == URL
    assert p.usage.hardware == SKU
    # No usage reported: the call's measured time stands in, and the cost is an estimate
    seconds = measured(p)
    assert p.cost.total == seconds * per_second(SKU)
    assert p.cost.estimated is True
    assert p.cost.lines[0].item == SKU
    assert p.cost.lines[0].unit_price == per_second(SKU)
    assert sleeps.waits == []
    [row] = client.ledger.rows()
    assert (row.verb, row.provider, row.model, row.outcome) == ("predict", "hf-endpoint", URL, "success")
    assert row.cost == p.cost.total
    assert row.estimated is True
    assert row.gpu_seconds == seconds


@pytest.mark.vcr
@pytest.mark.default_cassette("predict_named.yaml")
async def test_a_named_endpoint_resolves_through_config(mode: str) -> None:
    client = client_for(mode, Sleeps(), conf={"deployments": {NAME: NAMED_URL}})
    p = await call(client, "predict", f"hf-endpoint:{NAME}",
                   {"inputs": "The answer to the universe is", "parameters": {"max_new_tokens": 8}},
                   hardware="nvidia-l4-x4")
    await close(client)
    assert p.output == [{"generated_text": "The answer to the universe is 42."}]
    assert p.model == NAME
    assert p.usage.hardware == "nvidia-l4-x4"
    assert p.cost.total == measured(p) * per_second("nvidia-l4-x4")
    assert p.cost.estimated is True


@pytest.mark.vcr
@pytest.mark.default_cassette("scale_up_503.yaml")
async def test_a_503_while_scaling_up_is_retried_then_succeeds(mode: str) -> None:
    sleeps = Sleeps()
    client = client_for(mode, sleeps, conf={"hardware": {URL: SKU}}, retries=2)
    p = await call(client, "predict", f"hf-endpoint:{URL}", {"inputs": "a watercolor fox"})
    await close(client)
    assert p.output == {"image_url": "https://example.com/outputs/fox.png"}
    assert len(sleeps.waits) == 1  # one retry, through the injected sleep: nothing really slept
    first, second = p.attempts
    assert first.outcome != "success"
    assert "estimated_time: 20 s" in (first.error or "")
    assert second.outcome == "success"
    assert p.cost.total == measured(p) * per_second(SKU)  # the successful call's time only
    assert p.cost.estimated is True


def test_cassettes_are_marked_and_hold_no_key() -> None:
    paths = sorted(CASSETTES.glob("*.yaml"))
    assert [p.name for p in paths] == ["predict_named.yaml", "predict_url.yaml", "scale_up_503.yaml"]
    for path in paths:
        text = path.read_text("utf-8")
        assert text.startswith("# AUTHORED: written from ")
        assert text.splitlines()[0].endswith(", not recorded.")
        for inter in yaml.safe_load(text)["interactions"]:
            assert inter["request"]["uri"].endswith(".endpoints.huggingface.cloud/")
            assert "authorization" not in {k.lower() for k in inter["request"]["headers"]}
            json.loads(inter["response"]["body"]["string"])


# ------------------------------------------------------------------------------------------------ edges


class Host:
    def __init__(self, *replies: httpx.Response) -> None:
        self.replies = list(replies)
        self.seen: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]


async def test_the_input_is_the_body_with_a_bearer_token(mode: str) -> None:
    host = Host(httpx.Response(200, json={"ok": True}, headers={"x-request-id": "req-1"}))
    client = client_for(mode, Sleeps(), transport=httpx.MockTransport(host),
                        conf={"base_url": NAMED_URL, "headers": {"X-Scale-Up-Timeout": "600"}})
    body = {"inputs": ["a", "b"], "parameters": {"top_k": 2}, "options": {"x": None}}
    p = await run(client.predict("hf-endpoint:anything", body))
    await run(client.predict(f"hf-endpoint:{URL}/generate", {"inputs": "hi"}, extra_body={"stream": False}))
    await close(client)
    assert p.id == p.request_id == "req-1"
    first, second = host.seen
    assert (first.method, str(first.url)) == ("POST", NAMED_URL)  # base_url: the one configured endpoint
    assert first.headers["authorization"] == f"Bearer {KEY}"
    assert first.headers["x-scale-up-timeout"] == "600"
    assert json.loads(first.content) == body  # sent as it is
    assert str(second.url) == f"{URL}/generate"  # the URL form wins over base_url, path kept
    assert json.loads(second.content) == {"inputs": "hi", "stream": False}


async def test_the_key_comes_from_hf_token_then_huggingface_api_key(mode: str,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    for var, value in (("HUGGINGFACE_API_KEY", "hf_second_choice_0123"), ("HF_TOKEN", "hf_first_choice_0123")):
        monkeypatch.setenv(var, value)
        host = Host(httpx.Response(200, json=[]))
        client = client_for(mode, Sleeps(), transport=httpx.MockTransport(host), key=None)
        await run(client.predict(f"hf-endpoint:{URL}", {"inputs": "x"}))
        await close(client)
        assert host.seen[0].headers["authorization"] == f"Bearer {value}"


async def test_unknown_hardware_has_no_cost(mode: str) -> None:
    host = Host(httpx.Response(200, json="done"))
    client = client_for(mode, Sleeps(), transport=httpx.MockTransport(host))
    p = await run(client.predict(f"hf-endpoint:{URL}", {"inputs": 1}))
    q = await run(client.predict(f"hf-endpoint:{URL}", {"inputs": 1}, hardware="nvidia-h200"))
    await close(client)
    assert p.output == "done"
    assert p.usage.gpu_seconds is not None  # measured
    assert p.cost.total is None  # never a guessed instance
    assert "unknown hf-endpoint hardware" in (p.cost.reason or "")
    assert q.cost.total is None  # hardware known, but no price configured for it
    assert '"hf-endpoint:nvidia-h200" = { per_second' in (q.cost.reason or "")
    assert [row.cost for row in client.ledger.rows()] == [None, None]


async def test_a_503_keeps_the_estimate_and_is_typed_when_retries_run_out(mode: str) -> None:
    host = Host(httpx.Response(503, json={"error": "Model is currently loading", "estimated_time": 42.5}))
    sleeps = Sleeps()
    client = client_for(mode, sleeps, transport=httpx.MockTransport(host), retries=2)
    with pytest.raises(OverloadedError) as info:
        await run(client.predict(f"hf-endpoint:{URL}", {"inputs": "x"}, hardware=SKU))
    await close(client)
    assert isinstance(info.value, ServerError)
    assert info.value.status == 503
    assert "Model is currently loading" in str(info.value)
    assert "estimated_time: 42.5 s" in str(info.value)
    assert info.value.body == {"error": "Model is currently loading", "estimated_time": 42.5}
    assert len(host.seen) == 3  # retried: the first try and two retries
    assert len(sleeps.waits) == 2


async def test_a_401_is_typed_and_not_retried(mode: str) -> None:
    host = Host(httpx.Response(401, json={"error": "Authorization header is correct, but the token seems invalid"}))
    sleeps = Sleeps()
    client = client_for(mode, sleeps, transport=httpx.MockTransport(host), retries=2)
    with pytest.raises(AuthenticationError) as info:
        await run(client.predict(f"hf-endpoint:{URL}", {"inputs": "x"}, hardware=SKU))
    await close(client)
    assert info.value.status == 401
    assert "token seems invalid" in str(info.value)
    assert len(host.seen) == 1
    assert sleeps.waits == []


async def test_bad_targets_wait_false_and_webhooks_are_refused_before_sending(mode: str) -> None:
    host = Host(httpx.Response(200, json={}))
    client = client_for(mode, Sleeps(), transport=httpx.MockTransport(host))
    with pytest.raises(InvalidRequestError, match="no URL for the endpoint 'mine'"):
        await run(client.predict("hf-endpoint:mine", {"inputs": 1}))  # a name with nothing configured
    for bad in ("http://uu149rez6gw9ehej.eu-west-1.aws.endpoints.huggingface.cloud",
                "https://evil.example.com/endpoints.huggingface.cloud",
                "https://endpoints.huggingface.cloud.evil.example.com"):
        with pytest.raises(InvalidRequestError, match="not an Inference Endpoints URL"):
            await run(client.predict(f"hf-endpoint:{bad}", {"inputs": 1}))
    with pytest.raises(InvalidRequestError, match="synchronously"):
        await run(client.predict(f"hf-endpoint:{URL}", {"inputs": 1}, wait=False))
    with pytest.raises(InvalidRequestError, match="webhooks"):
        await run(client.predict(f"hf-endpoint:{URL}", {"inputs": 1}, webhook="https://example.com/h"))
    await close(client)
    assert host.seen == []
    assert client.ledger.rows() == []


async def test_a_text_answer_is_kept_as_text(mode: str) -> None:
    host = Host(httpx.Response(200, text="plain words", headers={"content-type": "text/plain"}))
    client = client_for(mode, Sleeps(), transport=httpx.MockTransport(host))
    p = await run(client.predict(f"hf-endpoint:{URL}", {"inputs": "x"}, hardware=SKU))
    await close(client)
    assert p.output == "plain words"
    assert p.cost.total == measured(p) * per_second(SKU)


async def test_refresh_and_cancel_are_unsupported(mode: str) -> None:
    host = Host(httpx.Response(200, json={"ok": 1}))
    client = client_for(mode, Sleeps(), transport=httpx.MockTransport(host))
    p = await run(client.predict(f"hf-endpoint:{URL}", {"inputs": "x"}, hardware=SKU))
    refresh, cancel = (p.refresh, p.cancel) if mode == "sync" else (p.async_refresh, p.async_cancel)
    with pytest.raises(UnsupportedCapabilityError, match="nothing to refresh"):
        await run(refresh())
    with pytest.raises(UnsupportedCapabilityError, match="nothing to cancel"):
        await run(cancel())
    await close(client)
    assert len(host.seen) == 1  # neither sent anything
    assert len(client.ledger.rows()) == 1


def test_the_adapter_is_registered() -> None:
    cls = adapter_class("hf-endpoint")
    assert cls.__name__ == "HFEndpointAdapter"
    assert cls.capabilities.predict is True
    assert cls.defaults_for("hf-endpoint")[1] == ("HF_TOKEN", "HUGGINGFACE_API_KEY")
