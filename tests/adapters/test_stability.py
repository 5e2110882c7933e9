"""The ``stability`` provider through the public client, sync and async.

Replays come from cassettes/test_stability/, authored from Stability AI's REST v2beta reference. The cassettes
match requests without their body; the multipart body is checked here instead, by sending through an
``httpx.MockTransport`` and parsing the body back with the standard library's MIME parser. Prices per image are
read from ``PriceBook`` (computekit's ``units.toml``), never copied into this file.
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import os
from decimal import Decimal
from typing import Any

import httpx
import pytest
from _clients import call, close, every_interaction_played, mode  # noqa: F401  (shared fixtures, registered by name)

import computekit as ck
from computekit._config import RetryConfig
from computekit._exceptions import (
    BadRequestError,
    ContentFilteredError,
    PermissionDeniedError,
    UnsupportedCapabilityError,
)
from computekit._retry import RetryPolicy
from computekit.adapters import adapter_class
from computekit.adapters._base import HTTPResponse, ProviderSettings
from computekit.adapters.stability import encode_multipart
from computekit.pricing import PriceBook, PriceRef

KEY = os.environ.get("STABILITY_API_KEY") or "sk-placeholder0123456789abcdefghij"
PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


@pytest.fixture(scope="module")
def vcr_config(vcr_config: dict[str, Any]) -> dict[str, Any]:
    return {**vcr_config, "match_on": ["method", "scheme", "host", "port", "path", "query"]}


class NoSleep:
    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)

    async def asleep(self, seconds: float) -> None:
        self.waits.append(seconds)


def client_for(mode: str, http_client: Any = None) -> Any:
    cls = ck.Client if mode == "sync" else ck.AsyncClient
    sleeps = NoSleep()
    kwargs: dict[str, Any] = {"config": None, "providers": {"stability": {"api_key": KEY}},
                              "retry_policy": RetryPolicy(RetryConfig(max_retries=0), sleep=sleeps,
                                                          asleep=sleeps.asleep)}
    if http_client is not None:
        kwargs["http_client"] = http_client
    return cls(**kwargs)


def per_image(model: str) -> Decimal:
    rates = PriceBook().rates(PriceRef(provider="stability", model=model))
    assert rates is not None, f"units.toml has no stability {model}"
    price, per = rates.extra_units["image"]
    return price / per


def parse_multipart(content_type: str, body: bytes) -> dict[str, Any]:
    """The form fields of a multipart body: text values as str, file parts as (filename, bytes, content type)."""
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    assert msg.is_multipart()
    fields: dict[str, Any] = {}
    for part in msg.iter_parts():
        assert part.get_content_disposition() == "form-data"
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        filename = part.get_filename()
        fields[name] = (filename, payload, part.get_content_type()) if filename else payload.decode()
    return fields


# ------------------------------------------------------------------------------------------------ replays


@pytest.mark.vcr
@pytest.mark.default_cassette("ultra.yaml")
async def test_ultra_is_priced_per_image(mode: str) -> None:
    client = client_for(mode)
    p = await call(client, "predict", "stability:ultra", {"prompt": "a lighthouse at dawn", "aspect_ratio": "3:2"})
    await close(client)
    assert p.status == "succeeded"
    assert p.done
    assert base64.b64decode(p.output["image"]).startswith(b"\x89PNG")
    assert p.metrics == {"finish_reason": "SUCCESS", "seed": 3405691582}
    assert p.id.startswith("stability-")
    assert p.usage.units == {"image": Decimal(1)}
    assert p.cost.total == per_image("ultra")
    assert p.cost.price_source is not None
    assert p.cost.price_source.table == "computekit:units"
    [row] = client.ledger.rows()
    assert (row.verb, row.provider, row.model, row.outcome, row.cost) == ("predict", "stability", "ultra", "success",
                                                                           per_image("ultra"))


@pytest.mark.vcr
@pytest.mark.default_cassette("sd35_large.yaml")
async def test_sd35_large_uses_the_sd3_endpoint_and_its_price(mode: str) -> None:
    client = client_for(mode)
    p = await call(client, "predict", "stability:sd3.5-large", {"prompt": "a lighthouse at dawn"}, wait=False)
    await close(client)
    assert p.status == "succeeded"  # synchronous: done even without waiting
    assert p.metrics["seed"] == 42
    assert p.cost.total == per_image("sd3.5-large")
    assert per_image("sd3.5-large") != per_image("ultra")


@pytest.mark.vcr
@pytest.mark.default_cassette("moderation.yaml")
async def test_content_moderation_is_content_filtered(mode: str) -> None:
    client = client_for(mode)
    with pytest.raises(ContentFilteredError) as info:
        await call(client, "predict", "stability:core", {"prompt": "something not allowed"})
    await close(client)
    assert info.value.status == 403
    assert info.value.message.startswith("content_moderation: Your request was flagged")
    assert info.value.body["id"] == "ed14ad5e8ba2ab7ac8d0aee9a39ad0f5"
    [row] = client.ledger.rows()
    assert (row.outcome, row.error_type, row.cost) == ("error", "ContentFilteredError", Decimal(0))


@pytest.mark.vcr
@pytest.mark.default_cassette("bad_request.yaml")
async def test_bad_request_is_typed(mode: str) -> None:
    client = client_for(mode)
    with pytest.raises(BadRequestError) as info:
        await call(client, "predict", "stability:core", {"prompt": ""})
    await close(client)
    assert type(info.value) is BadRequestError
    assert info.value.message == "bad_request: prompt: cannot be empty"


# ------------------------------------------------------------------------------------------------ the body


@pytest.mark.parametrize(("model", "path", "model_field"), [
    ("sd3.5-large", "/v2beta/stable-image/generate/sd3", "sd3.5-large"),
    ("core", "/v2beta/stable-image/generate/core", None),
])
async def test_the_multipart_body_parses_back(mode: str, model: str, path: str, model_field: str | None) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"image": PNG_B64, "finish_reason": "SUCCESS", "seed": 7})

    transport = httpx.MockTransport(handler)
    http = httpx.Client(transport=transport) if mode == "sync" else httpx.AsyncClient(transport=transport)
    client = client_for(mode, http)
    init = b"\x89PNG\r\n\x1a\n--not-a-boundary\r\n\x00\xff"
    p = await call(client, "predict", f"stability:{model}", {
        "prompt": 'a "quoted" lighthouse\nat dawn', "seed": 7, "negative_prompt": None, "strength": 0.6,
        "image": ("init.png", init, "image/png"), "mode": "image-to-image",
    })
    await close(client)
    assert p.cost.total == per_image(model)
    [req] = seen
    assert (req.method, req.url.path) == ("POST", path)
    assert req.headers["accept"] == "application/json"
    assert req.headers["authorization"] == f"Bearer {KEY}"
    ctype = req.headers["content-type"]
    assert ctype.startswith("multipart/form-data; boundary=")
    body = req.content
    assert body.endswith(b"--" + ctype.split("boundary=")[1].encode() + b"--\r\n")
    fields = parse_multipart(ctype, body)
    expected: dict[str, Any] = {"prompt": 'a "quoted" lighthouse\nat dawn', "seed": "7", "strength": "0.6",
                                "image": ("init.png", init, "image/png"), "mode": "image-to-image"}
    if model_field:
        expected["model"] = model_field
    assert fields == expected  # None (negative_prompt) is left out


def test_the_same_fields_encode_to_the_same_bytes() -> None:
    a = encode_multipart({"prompt": "x", "image": b"\x00\x01"})
    b = encode_multipart({"prompt": "x", "image": b"\x00\x01"})
    c = encode_multipart({"prompt": "y", "image": b"\x00\x01"})
    assert a == b
    assert a[1] != c[1]  # the boundary follows the content
    fields = parse_multipart(a[1], a[0])
    assert fields == {"prompt": "x", "image": ("image", b"\x00\x01", "application/octet-stream")}


# ------------------------------------------------------------------------------------------------ the adapter


def adapter() -> Any:
    from pydantic import SecretStr

    cls = adapter_class("stability")
    return cls(ProviderSettings(name="stability", base_url=cls.default_base_url or "", api_key=SecretStr(KEY),
                                timeout=30))


def test_a_403_that_is_not_moderation_is_permission_denied() -> None:
    err = adapter().map_error(HTTPResponse(403, {}, b'{"id": "1", "name": "forbidden", "errors": ["no access"]}'),
                              "core")
    assert type(err) is PermissionDeniedError
    assert err.message == "forbidden: no access"


def test_unknown_models_and_polls_are_refused() -> None:
    from computekit.adapters._base import PredictRequest

    a = adapter()
    with pytest.raises(UnsupportedCapabilityError, match="unknown Stability model"):
        a.build_predict(PredictRequest(model="dalle", input={"prompt": "x"}))
    p = a.parse_prediction("core", HTTPResponse(200, {}, f'{{"image": "{PNG_B64}"}}'.encode()))
    with pytest.raises(UnsupportedCapabilityError, match="synchronous"):
        a.build_get(p)
    with pytest.raises(UnsupportedCapabilityError, match="synchronous"):
        a.build_cancel(p)
