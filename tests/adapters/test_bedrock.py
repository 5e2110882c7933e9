"""AWS Bedrock through ``ck.Client`` and ``ck.AsyncClient``, replayed from cassettes/test_bedrock/ (authored from the
Bedrock Runtime API reference): tools over two turns, ConverseStream's event-stream frames, a throttled call
retried, Titan and Cohere embeddings; then auth (SigV4 from the AWS chain, Bearer API keys), region, errors,
refusals before anything is sent, budgets, and what a recorded cassette may hold.

To record: set AWS credentials (or ``AWS_BEARER_TOKEN_BEDROCK``) and ``AWS_REGION=us-east-1``, and run with
``--record-mode=rewrite -k bedrock``; the recording filter drops the signature and the session token.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

import genai_prices
import pytest
from _clients import WEATHER, Seen, call, close, make_client, mode, stream, vcr_config  # noqa: F401
from _eventstream import converse_stream, exception_frame
from _support import LoopbackHandler, serve

import computekit as ck
from computekit._exceptions import (
    BadRequestError,
    ConfigError,
    ContextWindowExceededError,
    InvalidRequestError,
    MissingAPIKeyError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    UnsupportedCapabilityError,
)
from computekit._types import Usage
from computekit.adapters._base import CompleteRequest, HTTPResponse, ProviderSettings
from computekit.adapters.bedrock import BedrockAdapter, BedrockSettings, EventStreamDecoder
from computekit.pricing import PriceBook

REGION = "us-east-1"
ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SESSION_TOKEN = "IQoJb3JpZ2luX2VjEXAMPLE-session-token-0123456789"


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Placeholder AWS credentials, and no developer AWS files or instance metadata (real ones when recording)."""
    if not os.environ.get("AWS_ACCESS_KEY_ID"):
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
        monkeypatch.delenv("AWS_BEARER_TOKEN_BEDROCK", raising=False)
        monkeypatch.delenv("AWS_PROFILE", raising=False)
        monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_REGION", os.environ.get("AWS_REGION") or REGION)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)


def genai_cost(model: str, raw: dict[str, Any], when: dt.datetime) -> Decimal:
    """genai-prices' price of a Converse usage object (its own reading of it)."""
    extracted = genai_prices.extract_usage({"model": model, "usage": raw}, provider_id="aws")
    return extracted.calc_price(genai_request_timestamp=when).total_price


def adapter(**settings: Any) -> BedrockAdapter:
    ps = ProviderSettings(name="bedrock", api_key=settings.pop("api_key", None), timeout=30,
                          base_url=settings.pop("base_url", "https://bedrock-runtime.{region}.amazonaws.com"),
                          options=BedrockSettings(**settings))
    return BedrockAdapter(ps)


def signed_by_sigv4(headers: Any, region: str = REGION) -> None:
    auth = headers["authorization"]
    assert auth.startswith(f"AWS4-HMAC-SHA256 Credential={os.environ['AWS_ACCESS_KEY_ID']}/")
    assert f"/{region}/bedrock/aws4_request" in auth
    assert "SignedHeaders=" in auth
    assert "x-amz-date" in headers


# ------------------------------------------------------------------------------------------------ replayed calls


@pytest.mark.vcr
@pytest.mark.default_cassette("tools.yaml")
async def test_tools_over_two_turns(mode: str) -> None:
    seen = Seen()
    client = make_client(mode, http_client=seen.http_client(mode))
    model = "bedrock:us.amazon.nova-micro-v1:0"
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You answer about the weather."},
        {"role": "user", "content": "Weather in Paris?"},
    ]
    r1 = await call(client, "complete", model, messages=messages, tools=[WEATHER], tool_choice="auto",
                    max_tokens=256, temperature=0.2)
    assert r1.finish_reason == "tool_calls"
    (tc,) = r1.tool_calls
    assert (tc.name, tc.parsed_arguments()) == ("get_weather", {"city": "Paris"})
    assert r1.text == "Let me check."
    messages += [r1.message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": tc.id, "content": "18 C, light rain"}]
    r2 = await call(client, "complete", model, messages=messages, tools=[WEATHER], tool_choice="auto",
                    max_tokens=256, temperature=0.2)
    await close(client)
    assert r2.text == "It is 18 C with light rain in Paris."
    assert r2.finish_reason == "stop"
    first, second = seen.requests
    body = json.loads(first.content)
    assert body["system"] == [{"text": "You answer about the weather."}]
    assert body["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"] == {"json": WEATHER["parameters"]}
    assert body["toolConfig"]["toolChoice"] == {"auto": {}}
    assert body["inferenceConfig"] == {"maxTokens": 256, "temperature": 0.2}
    turn2 = json.loads(second.content)["messages"]
    want_use = {"toolUse": {"toolUseId": tc.id, "name": "get_weather", "input": {"city": "Paris"}}}
    assert turn2[1]["content"][1] == want_use
    assert turn2[2] == {"role": "user", "content": [{"toolResult": {"toolUseId": tc.id,
                                                                    "content": [{"text": "18 C, light rain"}]}}]}
    for req in (first, second):
        signed_by_sigv4(req.headers)
        assert str(req.url) == (f"https://bedrock-runtime.{REGION}.amazonaws.com/model/us.amazon.nova-micro-v1:0/"
                                "converse")
    for r in (r1, r2):
        assert r.cost.total == genai_cost("us.amazon.nova-micro-v1:0", r.raw["usage"], r.attempts[0].started_at)
        assert r.request_id
        assert r.request_id == r.attempts[0].request_id


@pytest.mark.vcr
@pytest.mark.default_cassette("stream.yaml")
async def test_stream_event_frames_with_cache_usage(mode: str) -> None:
    client = make_client(mode)
    model = "global.anthropic.claude-haiku-4-5-20251001-v1:0"
    chunks, result = await stream(client, f"bedrock:{model}", "Count to three.", max_tokens=64)
    await close(client)
    assert [c.text for c in chunks if c.text] == ["One, ", "two, ", "three."]
    assert result.text == "One, two, three."
    assert result.finish_reason == "stop"
    raw = result.raw["usage"]
    # inputTokens excludes the cache: computekit's input counts all of it, each part priced at its own rate.
    assert result.usage.input_tokens == raw["inputTokens"] + raw["cacheReadInputTokens"] + raw["cacheWriteInputTokens"]
    assert (result.usage.cached_input_tokens, result.usage.cache_write_tokens) == (1200, 300)
    assert result.cost.total == genai_cost(model, raw, result.attempts[0].started_at)
    items = {line.item for line in result.cost.lines}
    assert {"input", "cached input", "cache write", "output"} <= items
    assert result.request_id == "9d8c7b6a-5e4f-4a3b-8c2d-1e0f9a8b7c6d"


@pytest.mark.vcr
@pytest.mark.default_cassette("stream.yaml")
async def test_stream_closed_early_is_a_canceled_attempt(mode: str) -> None:
    client = make_client(mode)
    target = "bedrock:global.anthropic.claude-haiku-4-5-20251001-v1:0"
    if isinstance(client, ck.AsyncClient):
        async with client.stream(target, "Count to three.", max_tokens=64) as s:
            first = await s.__anext__()
    else:
        with client.stream(target, "Count to three.", max_tokens=64) as s:
            first = next(iter(s))
    rows = client.ledger.rows()
    await close(client)
    assert first.text == "One, "
    assert [(r.provider, r.outcome) for r in rows] == [("bedrock", "canceled")]
    # The replayed body arrives in one read: its last frame (metadata, the usage) was decoded before the caller
    # stopped, so the canceled attempt is priced from it, like any Bedrock call.
    usage = {"inputTokens": 9, "outputTokens": 7, "cacheReadInputTokens": 1200, "cacheWriteInputTokens": 300}
    assert rows[0].cost == genai_cost("global.anthropic.claude-haiku-4-5-20251001-v1:0", usage, rows[0].ts)


@pytest.mark.vcr
@pytest.mark.default_cassette("throttled_then_ok.yaml")
async def test_throttling_is_a_rate_limit_error_retried(mode: str) -> None:
    from _clients import Sleeps, policy

    sleeps = Sleeps()
    client = make_client(mode, retry_policy=policy(sleeps))
    r = await call(client, "complete", "bedrock:us.amazon.nova-micro-v1:0", "hi")
    await close(client)
    assert r.text == "Hello!"
    assert [(a.outcome, a.error_type, a.status) for a in r.attempts] == [
        ("error", "RateLimitError", 429), ("success", None, None)]
    assert sleeps.waits == [2.0], "the Retry-After hint was honoured"
    assert r.attempts[0].cost is not None
    assert r.attempts[0].cost.total == 0


@pytest.mark.vcr
@pytest.mark.default_cassette("embed_titan.yaml")
async def test_embed_titan(mode: str) -> None:
    client = make_client(mode)
    v = await call(client, "embed", "bedrock:amazon.titan-embed-text-v2:0", "a red bicycle", dimensions=256)
    await close(client)
    assert v.dimensions == 256
    assert v.usage.input_tokens == 5
    want = genai_prices.calc_price(genai_prices.Usage(input_tokens=5), "amazon.titan-embed-text-v2:0",
                                   provider_id="aws", genai_request_timestamp=v.attempts[0].started_at).total_price
    assert v.cost.total == want


@pytest.mark.vcr
@pytest.mark.default_cassette("embed_cohere.yaml")
async def test_embed_cohere(mode: str) -> None:
    client = make_client(mode)
    v = await call(client, "embed", "bedrock:cohere.embed-english-v3", ["a red bicycle", "a blue car"])
    await close(client)
    assert len(v.vectors) == 2
    assert v.usage.input_tokens == 8  # from X-Amzn-Bedrock-Input-Token-Count
    rates = PriceBook().rates(adapter(region=REGION).price_ref("cohere.embed-english-v3"))
    assert rates is not None
    assert rates.source.table == "computekit:tokens"
    assert v.cost.total == 8 * rates.prices["input_mtok"] / 1_000_000  # type: ignore[operator]


# ------------------------------------------------------------------------------------------------ auth & region


async def test_bedrock_api_key_is_a_bearer_token_and_nothing_is_signed(mode: str, monkeypatch: pytest.MonkeyPatch,
                                                                      faults_free_server: Any) -> None:
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", "bedrock-api-key-ABSKexample0123456789")
    url, requests = faults_free_server
    client = make_client(mode, providers={"bedrock": {"base_url": url}})
    r = await call(client, "complete", "bedrock:us.amazon.nova-micro-v1:0", "hi")
    await close(client)
    assert r.text == "Hello!"
    (req,) = requests
    assert req["headers"]["authorization"] == "Bearer bedrock-api-key-ABSKexample0123456789"
    assert "x-amz-date" not in req["headers"]
    assert req["path"] == "/model/us.amazon.nova-micro-v1:0/converse"


def test_session_token_is_signed_and_filtered_from_cassettes(monkeypatch: pytest.MonkeyPatch) -> None:
    from vcr.request import Request

    from computekit.testing import cassette_config

    monkeypatch.setenv("AWS_SESSION_TOKEN", SESSION_TOKEN)
    http = adapter(region=REGION).build_complete(CompleteRequest(model="amazon.nova-micro-v1:0",
                                                                 messages=[{"role": "user", "content": "hi"}]))
    assert http.headers["x-amz-security-token"] == SESSION_TOKEN
    signed_by_sigv4(http.headers)
    assert "x-amz-security-token" in http.headers["authorization"].split("SignedHeaders=")[1]
    scrub = cassette_config()["before_record_request"]
    req = Request("POST", http.url, http.body(), dict(http.headers))
    hooks = scrub if isinstance(scrub, list) else [scrub]
    for hook in hooks:
        req = hook(req)
    kept = json.dumps(dict(req.headers)) + req.uri + (req.body or b"").decode()
    for secret in (SESSION_TOKEN, ACCESS_KEY, SECRET_KEY):
        assert secret not in kept
    assert "authorization" not in {k.lower() for k in req.headers}
    assert SECRET_KEY not in repr(http) + repr(adapter(region=REGION).settings)


def test_sigv4_credentials_are_dropped_from_a_request_off_its_origin(monkeypatch: pytest.MonkeyPatch) -> None:
    """A SigV4 signature and session token are no configured key, yet a request that leaves the provider's
    origin loses them like one (they were kept)."""
    monkeypatch.setenv("AWS_SESSION_TOKEN", SESSION_TOKEN)
    ad = adapter(region=REGION)
    http = ad.build_complete(CompleteRequest(model="amazon.nova-micro-v1:0",
                                             messages=[{"role": "user", "content": "hi"}]))
    signed_by_sigv4(http.headers)
    kept = ad.without_key(http.headers)
    assert {"authorization", "x-amz-security-token"} & set(kept) == set()
    assert kept["content-type"] == "application/json"


@pytest.mark.parametrize(("env", "base_url", "want"), [
    ({"AWS_REGION": "eu-west-1"}, None, "eu-west-1"),
    ({"AWS_DEFAULT_REGION": "ap-southeast-2"}, None, "ap-southeast-2"),
    ({"AWS_REGION": "eu-west-1"}, "https://bedrock-runtime.us-west-2.amazonaws.com", "us-west-2"),
])
def test_region(env: dict[str, str], base_url: str | None, want: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_REGION", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    kw = {"base_url": base_url} if base_url else {}
    url = kw.get("base_url", "https://bedrock-runtime.{region}.amazonaws.com")
    ad = BedrockAdapter(ProviderSettings(name="bedrock", timeout=30, api_key=None, base_url=url))
    http = ad.build_complete(CompleteRequest(model="amazon.nova-micro-v1:0",
                                             messages=[{"role": "user", "content": "x"}]))
    assert http.url == f"https://bedrock-runtime.{want}.amazonaws.com/model/amazon.nova-micro-v1:0/converse"
    signed_by_sigv4(http.headers, want)


async def test_region_and_profile_declared_in_config(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    seen = Seen()
    client = make_client(mode, http_client=seen.http_client(mode),
                         providers={"bedrock": {"region": "ap-northeast-1", "timeout": 5}})
    with pytest.raises(ck.APIConnectionError):  # nothing answers; the request shows where it went
        await call(client, "complete", "bedrock:amazon.nova-micro-v1:0", "hi")
    await close(client)
    assert seen.requests
    assert str(seen.requests[0].url).startswith("https://bedrock-runtime.ap-northeast-1.amazonaws.com/")
    signed_by_sigv4(seen.requests[0].headers, "ap-northeast-1")
    with pytest.raises(ConfigError, match=r"providers\.bedrock\.regoin"):
        make_client(mode, providers={"bedrock": {"regoin": "x"}})


def test_region_from_the_aws_profile(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text("[profile team]\nregion = eu-central-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_PROFILE", "team")
    monkeypatch.delenv("AWS_REGION", raising=False)
    ad = BedrockAdapter(ProviderSettings(name="bedrock", base_url="https://bedrock-runtime.{region}.amazonaws.com",
                                         api_key=None, timeout=30))
    assert ad.region == "eu-central-1"


async def test_no_region_is_a_config_error_before_any_http(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_REGION", raising=False)
    seen = Seen()
    client = make_client(mode, http_client=seen.http_client(mode))
    with pytest.raises(ConfigError, match="AWS_REGION"):
        await call(client, "complete", "bedrock:amazon.nova-micro-v1:0", "hi")
    await close(client)
    assert seen.requests == []


async def test_no_credentials_is_a_clear_error_before_any_http(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_BEARER_TOKEN_BEDROCK"):
        monkeypatch.delenv(var, raising=False)
    seen = Seen()
    client = make_client(mode, http_client=seen.http_client(mode))
    with pytest.raises(MissingAPIKeyError) as info:
        await call(client, "complete", "bedrock:amazon.nova-micro-v1:0", "hi")
    await close(client)
    assert "AWS_BEARER_TOKEN_BEDROCK" in str(info.value)
    assert "AWS_ACCESS_KEY_ID" in str(info.value)
    assert seen.requests == []


def test_botocore_is_loaded_on_first_use_only() -> None:
    import subprocess
    import sys

    code = ("import sys, computekit, computekit.adapters.bedrock\n"
            "print('botocore' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(("status", "kind", "message", "cls"), [
    (429, "ThrottlingException", "Too many requests", RateLimitError),
    (429, "ModelNotReadyException", "Model is not ready", OverloadedError),
    (503, "ServiceUnavailableException", "Service unavailable", ServerError),
    (500, "InternalServerException", "Internal error", ServerError),
    (400, "ValidationException", "Malformed input request", BadRequestError),
    (400, "ValidationException", "Input is too long for requested model.", ContextWindowExceededError),
    (403, "AccessDeniedException", "You don't have access to the model", PermissionDeniedError),
    (404, "ResourceNotFoundException", "Model not found", NotFoundError),
    (403, "UnrecognizedClientException", "The security token included in the request is invalid",
     ck.AuthenticationError),
])
def test_error_types(status: int, kind: str, message: str, cls: type[Exception]) -> None:
    headers = {"x-amzn-errortype": f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/",
               "x-amzn-requestid": "req-err-1"}
    err = adapter(region=REGION).map_error(HTTPResponse(status, headers, json.dumps({"message": message}).encode()),
                                           "amazon.nova-micro-v1:0")
    assert type(err) is cls
    assert err.status == status
    assert err.message == message
    assert err.request_id == "req-err-1"
    assert err.headers["x-amzn-errortype"].startswith(kind)
    # The body's __type names it too, when the header is missing.
    bare = adapter(region=REGION).map_error(
        HTTPResponse(status, {}, json.dumps({"__type": f"com.amazon.bedrock#{kind}", "message": message}).encode()),
        "m")
    assert type(bare) is cls


def test_retry_classes() -> None:
    """Throttling, a model not ready and an unavailable service are retried; validation errors are not."""
    from _clients import Sleeps, policy

    pol = policy(Sleeps())
    ad = adapter(region=REGION)

    def err(status: int, kind: str) -> Exception:
        return ad.map_error(HTTPResponse(status, {"x-amzn-errortype": kind}, b'{"message": "x"}'), "m")

    retried = {kind: pol.should_retry(err(status, kind))
               for status, kind in [(429, "ThrottlingException"), (429, "ModelNotReadyException"),
                                    (503, "ServiceUnavailableException"), (400, "ValidationException")]}
    assert retried == {"ThrottlingException": True, "ModelNotReadyException": True,
                       "ServiceUnavailableException": True, "ValidationException": False}


def test_exception_frame_mid_stream_is_raised_typed() -> None:
    ad = adapter(region=REGION)
    frames = EventStreamDecoder(1 << 20)
    decoder = ad.stream_decoder(CompleteRequest(model="amazon.nova-micro-v1:0", messages=[], stream=True))
    body = b"".join(converse_stream(["Hel"], metadata=False)[:2]) + exception_frame("throttlingException", "Slow down")
    events = frames.feed(body)
    assert [e.event for e in events] == ["messageStart", "contentBlockDelta", "exception"]
    assert [c.text for e in events[:2] for c in decoder.feed(e)] == ["Hel"]
    with pytest.raises(RateLimitError) as info:
        decoder.feed(events[2])
    assert info.value.status == 429
    assert info.value.message == "Slow down"


def test_corrupt_frame_and_cut_stream() -> None:
    good = b"".join(converse_stream(["a"]))
    bad = bytearray(good)
    bad[20] ^= 0xFF  # inside the first frame's headers: its CRC no longer matches
    with pytest.raises(ValueError, match="corrupt event-stream frame"):
        EventStreamDecoder(1 << 20).feed(bytes(bad))
    frames = EventStreamDecoder(1 << 20)
    frames.feed(good[:-5])
    assert frames.close() == ([], True)
    from computekit._sse import SSETooLarge

    with pytest.raises(SSETooLarge):
        EventStreamDecoder(64).feed(good)


# ------------------------------------------------------------------------------------------------ refusals


@pytest.mark.parametrize(("verb", "kwargs", "error"), [
    ("complete", {"response_format": {"type": "json_object"}}, UnsupportedCapabilityError),
    ("complete", {"tools": [WEATHER], "tool_choice": "none"}, InvalidRequestError),
    ("complete", {"seed": 3}, InvalidRequestError),
    ("complete", {"messages": [{"role": "user", "content": [{"type": "image_url",
                                                             "image_url": {"url": "https://x/a.png"}}]}]},
     InvalidRequestError),
    ("embed", {}, InvalidRequestError),
])
async def test_refused_before_anything_is_sent(mode: str, verb: str, kwargs: dict[str, Any], error: type) -> None:
    seen = Seen()
    client = make_client(mode, http_client=seen.http_client(mode))
    if verb == "embed":
        args: tuple[Any, ...] = ("embed", "bedrock:amazon.titan-embed-text-v2:0", ["one", "two"])
    elif "messages" in kwargs:
        args = ("complete", "bedrock:amazon.nova-micro-v1:0")
    else:
        args = ("complete", "bedrock:amazon.nova-micro-v1:0", "hi")
    with pytest.raises(error):
        await call(client, *args, **kwargs)
    await close(client)
    assert seen.requests == []


async def test_finetune_refused_from_capabilities(mode: str, tmp_path: Path) -> None:
    data = tmp_path / "train.jsonl"
    data.write_text(json.dumps({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]})
                    + "\n")
    client = make_client(mode)
    with pytest.raises(UnsupportedCapabilityError, match="customization"):
        await call(client, "finetune", "bedrock:amazon.nova-micro-v1:0", training_file=str(data))
    await close(client)
    assert "finetune" not in BedrockAdapter.capabilities.names()


async def test_budget_refuses_before_signing_or_sending(mode: str) -> None:
    seen = Seen()
    client = make_client(mode, http_client=seen.http_client(mode), budget={"limit_usd": "0.0000001", "period": "day"})
    with pytest.raises(ck.BudgetExceededError):
        await call(client, "complete", "bedrock:us.amazon.nova-micro-v1:0", "hi", max_tokens=1000)
    await close(client)
    assert seen.requests == []


# ------------------------------------------------------------------------------------------------ translation


def test_native_blocks_and_pass_through_fields() -> None:
    ad = adapter(region=REGION)
    req = CompleteRequest(
        model="us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        messages=[
            {"role": "system", "content": [{"text": "Be brief."}, {"cachePoint": {"type": "default"}}]},
            {"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"document": {"format": "pdf", "name": "doc", "source": {"bytes": "JVBERi0="}}},
            ]},
        ],
        stop=["END"], top_p=0.9, service_tier="priority", user="u-1",
        extra={"additionalModelRequestFields": {"thinking": {"type": "enabled", "budget_tokens": 1024}},
               "guardrailConfig": {"guardrailIdentifier": "gr-1", "guardrailVersion": "1"},
               "performanceConfig": {"latency": "optimized"}},
    )
    body = json.loads(ad.build_complete(req).body() or b"")
    assert body["system"] == [{"text": "Be brief."}, {"cachePoint": {"type": "default"}}]
    content = body["messages"][0]["content"]
    assert content[1] == {"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}}
    assert content[2]["document"]["format"] == "pdf"
    assert body["inferenceConfig"] == {"topP": 0.9, "stopSequences": ["END"]}
    assert body["serviceTier"] == {"type": "priority"}
    assert body["requestMetadata"] == {"user": "u-1"}
    assert body["additionalModelRequestFields"]["thinking"]["budget_tokens"] == 1024
    assert body["guardrailConfig"]["guardrailIdentifier"] == "gr-1"
    assert body["performanceConfig"] == {"latency": "optimized"}


@pytest.mark.parametrize(("req", "match"), [
    ({"temperature": float("nan")}, r"number JSON cannot carry \(nan at inferenceConfig\.temperature\)"),
    ({"messages": [{"role": "user", "content": "caf\udce9"}]}, "not valid Unicode"),
], ids=["nan", "lone-surrogate"])
def test_a_body_json_cannot_carry_is_refused_before_it_is_signed(req: dict[str, Any], match: str) -> None:
    """Bedrock encodes its body itself (it signs those bytes): NaN, Infinity and lone surrogates are refused
    there, typed, as on the other providers (json.dumps would write NaN, which AWS refuses as not JSON)."""
    with pytest.raises(InvalidRequestError, match=match):
        adapter(region=REGION).build_complete(CompleteRequest(**{
            "model": "amazon.nova-micro-v1:0", "messages": [{"role": "user", "content": "hi"}], **req}))


def test_application_inference_profile_arn_is_escaped_and_unpriced() -> None:
    arn = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123"
    ad = adapter(region=REGION)
    http = ad.build_complete(CompleteRequest(model=arn, messages=[{"role": "user", "content": "x"}]))
    assert http.url.endswith("/model/arn:aws:bedrock:us-east-1:123456789012:application-inference-profile%2Fabc123/"
                             "converse")
    with pytest.warns(ck.UnknownPriceWarning):
        cost = PriceBook().token_cost(ad.price_ref(arn), Usage(input_tokens=10, output_tokens=2))
    assert cost.total is None
    assert cost.reason


@pytest.mark.parametrize("model", ["in.anthropic.claude-sonnet-4-5-20250929-v1:0",
                                   "ca.anthropic.claude-haiku-4-5-20251001-v1:0"])
def test_a_profile_genai_prices_does_not_list_is_priced_as_its_base_model(model: str) -> None:
    base = model.split(".", 1)[1]
    usage = Usage(input_tokens=1000, output_tokens=100)
    with pytest.raises(LookupError):  # the prefixed id itself is not in the table
        genai_prices.calc_price(genai_prices.Usage(input_tokens=1000, output_tokens=100), model, provider_id="aws")
    want = genai_prices.calc_price(genai_prices.Usage(input_tokens=1000, output_tokens=100), base,
                                   provider_id="aws").total_price
    assert PriceBook().token_cost(adapter(region=REGION).price_ref(model), usage).total == want


def test_guardrail_intervention_is_a_content_filter_finish() -> None:
    data = {"output": {"message": {"role": "assistant", "content": [{"text": "Sorry."}]}},
            "stopReason": "guardrail_intervened", "usage": {"inputTokens": 3, "outputTokens": 2, "totalTokens": 5}}
    r = adapter(region=REGION).parse_complete(CompleteRequest(model="m", messages=[]),
                                              HTTPResponse(200, {}, json.dumps(data).encode()))
    assert r.finish_reason == "content_filter"


def test_malformed_answer() -> None:
    with pytest.raises(ck.MalformedResponseError):
        adapter(region=REGION).parse_complete(CompleteRequest(model="m", messages=[]),
                                              HTTPResponse(200, {}, b'{"output": {}}'))


# ------------------------------------------------------------------------------------------------ a loopback host

CONVERSE_OK = json.dumps({"output": {"message": {"role": "assistant", "content": [{"text": "Hello!"}]}},
                          "stopReason": "end_turn",
                          "usage": {"inputTokens": 1, "outputTokens": 3, "totalTokens": 4}}).encode()


@pytest.fixture
def faults_free_server() -> Any:
    """A loopback host answering every POST with one Converse response; ``requests`` lists what it received (the
    raw path, lowercased headers, the body)."""
    requests: list[dict[str, Any]] = []

    class Handler(LoopbackHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                             "body": self.rfile.read(length)})
            self.reply(200, CONVERSE_OK)

    with serve(Handler) as url:
        yield url.removesuffix("/v1"), requests


@pytest.mark.parametrize("model", ["us.amazon.nova-micro-v1:0",
                                   "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123"])
async def test_the_signature_covers_the_bytes_on_the_wire(mode: str, model: str, faults_free_server: Any) -> None:
    """The host recomputes SigV4 from what it received (raw path, signed headers, body), as AWS does: it matches
    the signature sent, on each transport (urllib3, aiohttp), colons and an ARN's escaped slash included."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    url, requests = faults_free_server
    client = make_client(mode, providers={"bedrock": {"base_url": url, "region": REGION}})
    with pytest.warns(ck.UnknownPriceWarning) if model.startswith("arn:") else contextlib.nullcontext():
        r = await call(client, "complete", f"bedrock:{model}", "hi")
    await close(client)
    assert r.text == "Hello!"
    (got,) = requests
    headers = got["headers"]
    auth = headers["authorization"]
    signed = auth.split("SignedHeaders=")[1].split(",")[0].split(";")
    assert {"host", "x-amz-date", "content-type"} <= set(signed)
    aws = AWSRequest(method="POST", url=f"http://{headers['host']}{got['path']}", data=got["body"],
                     headers={h: headers[h] for h in signed})
    aws.context["timestamp"] = headers["x-amz-date"]
    signer = SigV4Auth(Credentials(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]), "bedrock",
                       REGION)
    canonical = signer.canonical_request(aws)
    assert auth.endswith("Signature=" + signer.signature(signer.string_to_sign(aws, canonical), aws))
    assert got["path"] == f"/model/{quote(model, safe=':')}/converse"
