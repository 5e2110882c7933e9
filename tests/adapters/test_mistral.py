"""The ``mistral`` provider through the public client, sync and async, replayed from cassettes/test_mistral/.

The cassettes were authored from Mistral's API reference and guides (prompt caching, function calling, reasoning;
see each file's first line); there is no public recording of Mistral's API in ``shared/conformance``. With
``MISTRAL_API_KEY`` set, ``pytest --record-mode=rewrite tests/adapters/test_mistral.py`` replaces them with real
traffic. Requests are matched on their JSON body too, so each cassette also pins down what computekit sends
(``random_seed`` for ``seed``, no ``stream_options``).

Costs are checked against ``genai_prices.calc_price`` (provider ``mistral``) on the usage in the response, at the
time of the call.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import genai_prices
import pytest
import yaml
from _clients import (  # noqa: F401  (shared fixtures, registered by name)
    WEATHER,
    Sleeps,
    call,
    close,
    every_interaction_played,
    make_client,
    mode,
    policy,
    stream,
    vcr_config,
)
from _paths import CASSETTES, real_key
from pydantic import SecretStr

import computekit as ck
from computekit.adapters._base import CompleteRequest, HTTPResponse, ProviderSettings, SSEEvent
from computekit.adapters.mistral import MistralAdapter

KEY = real_key("MISTRAL_API_KEY", "mistral-test-placeholder")


def client_for(mode: str, **kwargs: Any) -> ck.Client | ck.AsyncClient:
    return make_client(mode, providers={"mistral": {"api_key": KEY}}, **kwargs)


def adapter() -> MistralAdapter:
    return MistralAdapter(
        ProviderSettings(name="mistral", base_url="https://api.mistral.ai/v1", api_key=SecretStr("m" * 12), timeout=30)
    )


def genai_cost(result: ck.Completion | ck.Embeddings) -> Decimal:
    """What genai-prices charges for the usage in the raw response, at the time of the call."""
    raw = result.raw["usage"]
    pd = raw.get("prompt_tokens_details") or {}
    values = {
        "input_tokens": raw["prompt_tokens"],
        "output_tokens": raw.get("completion_tokens"),
        "cache_read_tokens": pd.get("cached_tokens"),
    }
    usage = genai_prices.Usage(**{k: v for k, v in values.items() if v})
    when: dt.datetime = result.attempts[-1].started_at
    return genai_prices.calc_price(
        usage, result.raw["model"], provider_id="mistral", genai_request_timestamp=when
    ).total_price


def check_success(result: ck.Completion | ck.Embeddings, request_id: str) -> None:
    assert result.provider == "mistral"
    assert result.cost.total is not None, result.cost.reason
    assert result.cost.total == genai_cost(result)
    assert result.cost.total > 0
    assert result.cost.price_source is not None
    assert result.cost.price_source.table == "genai-prices"
    assert result.attempts[-1].outcome == "success"
    assert result.attempts[-1].cost == result.cost
    assert result.request_id == request_id


# ------------------------------------------------------------------------------------------------ complete


@pytest.mark.vcr
@pytest.mark.default_cassette("chat.yaml")
async def test_chat_with_cached_prompt_tokens(mode: str) -> None:
    """``seed`` goes out as ``random_seed`` (the cassette matches on the body); cached tokens are priced apart."""
    client = client_for(mode)
    r = await call(client, "complete", "mistral:mistral-small-latest", "Say this is a test", max_tokens=20, seed=7)
    await close(client)
    assert r.text == "This is a test."
    assert r.finish_reason == "stop"
    assert r.response_model == "mistral-small-latest"
    assert (r.usage.input_tokens, r.usage.output_tokens, r.usage.cached_input_tokens) == (1088, 6, 1024)
    check_success(r, "8d2f4a6c1e3b5d7f9a0c2e4b6d8f0a1c")
    items = {line.item: line.quantity for line in r.cost.lines}
    assert items == {"input": 64, "cached input": 1024, "output": 6}
    lines = {line.item: line.unit_price for line in r.cost.lines}
    assert lines["cached input"] < lines["input"], "cached prompt tokens are cheaper than fresh ones"
    rows = client.ledger.rows()
    assert [(row.provider, row.outcome, row.cost) for row in rows] == [("mistral", "success", r.cost.total)]


@pytest.mark.vcr
@pytest.mark.default_cassette("tools.yaml")
async def test_tool_call_round_trip(mode: str) -> None:
    client = client_for(mode)
    messages: list[Any] = [{"role": "user", "content": "What's the weather in Paris?"}]
    first = await call(client, "complete", "mistral:mistral-large-latest", messages=messages, tools=[WEATHER])
    assert first.finish_reason == "tool_calls"
    assert first.text == ""
    (tc,) = first.tool_calls
    assert (tc.id, tc.name, tc.parsed_arguments()) == ("D681PevKs", "get_weather", {"city": "Paris"})
    check_success(first, "1a3c5e7b9d0f2a4c6e8b0d2f4a6c8e0b")

    messages += [first.message, {"role": "tool", "tool_call_id": tc.id, "content": "18C and sunny"}]
    second = await call(client, "complete", "mistral:mistral-large-latest", messages=messages, tools=[WEATHER])
    await close(client)
    assert second.finish_reason == "stop"
    assert "18°C" in second.text
    check_success(second, "2b4d6f8a0c1e3a5c7e9b1d3f5a7c9e1d")


@pytest.mark.vcr
@pytest.mark.default_cassette("stream.yaml")
async def test_stream_with_usage_in_final_chunk(mode: str) -> None:
    client = client_for(mode)
    chunks, r = await stream(client, "mistral:mistral-small-latest", "Count to three.")
    await close(client)
    assert "".join(c.text for c in chunks) == "One, two, three." == r.text
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["stop"]
    assert [c for c in chunks if c.usage is not None] == [chunks[-1]]
    assert (r.usage.input_tokens, r.usage.output_tokens) == (9, 7)
    assert r.cost.total is not None
    assert r.cost.total == genai_cost(r)
    assert r.request_id == "3c5e7a9b1d2f4a6c8e0b2d4f6a8c0e2b"
    assert [a.outcome for a in r.attempts] == ["success"]


@pytest.mark.vcr
@pytest.mark.default_cassette("reasoning.yaml")
async def test_reasoning_answer_keeps_thinking_out_of_text(mode: str) -> None:
    client = client_for(mode)
    r = await call(client, "complete", "mistral:magistral-small-2509", "What is 2+2?")
    await close(client)
    assert r.text == "2 + 2 = 4."
    assert r.message.content == r.text
    content = r.raw["choices"][0]["message"]["content"]
    assert content[0]["type"] == "thinking"
    assert content[0]["thinking"][0]["text"] == "The user asks for 2+2. That is 4."
    # Thinking tokens are billed as output and already counted in completion_tokens.
    assert (r.usage.input_tokens, r.usage.output_tokens) == (12, 31)
    check_success(r, "4d6f8a0c2e1b3d5f7a9c1e3b5d7f9a1c")


@pytest.mark.vcr
@pytest.mark.default_cassette("reasoning_stream.yaml")
async def test_reasoning_stream(mode: str) -> None:
    client = client_for(mode)
    chunks, r = await stream(client, "mistral:magistral-small-2509", "What is 2+2?")
    await close(client)
    assert [c.text for c in chunks if c.text] == ["2 + 2", " = 4."]
    assert r.text == "2 + 2 = 4."
    assert r.raw["thinking"] == "The user asks for 2+2. That is 4."
    thinking_chunk = chunks[1]
    assert thinking_chunk.text == ""
    assert thinking_chunk.raw["choices"][0]["delta"]["content"][0]["type"] == "thinking", "chunk.raw is as sent"
    assert (r.usage.input_tokens, r.usage.output_tokens) == (12, 31)
    assert r.cost.total == genai_cost(r)


# ------------------------------------------------------------------------------------------------ embed


@pytest.mark.vcr
@pytest.mark.default_cassette("embeddings.yaml")
async def test_embeddings(mode: str) -> None:
    client = client_for(mode)
    e = await call(client, "embed", "mistral:mistral-embed", ["a red bicycle", "a blue car"])
    await close(client)
    assert len(e.vectors) == 2
    assert e.dimensions == 4
    assert e.vectors[1][0] == pytest.approx(-0.0211)
    assert (e.usage.input_tokens, e.usage.output_tokens) == (11, 0)
    check_success(e, "6f8a0c2e4b5d7f9a1c3e5b7d9f1a3c5e")


def test_embed_dimensions_are_sent_as_output_dimension() -> None:
    from computekit.adapters._base import EmbedRequest

    http = adapter().build_embed(EmbedRequest(model="codestral-embed", inputs=["a"], dimensions=256))
    assert http.json == {"model": "codestral-embed", "input": ["a"], "encoding_format": "float",
                         "output_dimension": 256}
    assert http.url == "https://api.mistral.ai/v1/embeddings"


# ------------------------------------------------------------------------------------------------ errors


@pytest.mark.vcr
@pytest.mark.default_cassette("rate_limit_then_ok.yaml")
async def test_rate_limit_then_success(mode: str) -> None:
    sleeps = Sleeps()
    client = client_for(mode, retry_policy=policy(sleeps))
    r = await call(client, "complete", "mistral:mistral-small-latest", "Say this is a test")
    await close(client)
    assert r.text == "This is a test."
    assert sleeps.waits == [1.0], "the retry waited what retry-after asked, and did not really sleep"
    failed, ok = r.attempts
    assert ok.outcome == "success"
    assert (failed.outcome, failed.status, failed.error_type) == ("error", 429, "RateLimitError")
    assert failed.request_id == "7a9c1e3b5d6f8a0c2e4b6d8f0a2c4e6b", "the gateway's body request_id is kept"
    assert failed.cost is not None
    assert failed.cost.total == 0
    check_success(r, "8b0d2f4a6c7e9b1d3f5a7c9e1b3d5f7a")
    assert [row.outcome for row in client.ledger.rows()] == ["error", "success"]


@pytest.mark.vcr
@pytest.mark.default_cassette("auth_error.yaml")
async def test_invalid_key(mode: str) -> None:
    sleeps = Sleeps()
    bad_key = "mistral-test-invalid-key-0123456789"
    client = make_client(mode, providers={"mistral": {"api_key": bad_key}}, retry_policy=policy(sleeps))
    with pytest.raises(ck.AuthenticationError) as info:
        await call(client, "complete", "mistral:mistral-small-latest", "Say this is a test")
    await close(client)
    err = info.value
    assert (err.status, err.provider, err.model) == (401, "mistral", "mistral-small-latest")
    assert "401 Unauthorized" in str(err)
    assert err.request_id == "a580d263fb1521778782b22104efb415"
    assert sleeps.waits == [], "401 is not retried"
    assert bad_key not in str(err) + repr(err) + json.dumps(err.body) + json.dumps(err.headers)
    (row,) = client.ledger.rows()
    assert (row.outcome, row.status, row.error_type) == ("error", 401, "AuthenticationError")


@pytest.mark.vcr
@pytest.mark.default_cassette("bad_request.yaml")
async def test_bad_request(mode: str) -> None:
    sleeps = Sleeps()
    client = client_for(mode, retry_policy=policy(sleeps))
    with pytest.raises(ck.BadRequestError) as info:
        await call(client, "complete", "mistral:mistral-small-latest",
                   messages=[{"role": "assistant", "content": "Say this is a test"}])
    await close(client)
    err = info.value
    assert type(err) is ck.BadRequestError
    assert err.status == 400
    assert "Expected last role User or Tool" in str(err)
    assert err.body["type"] == "invalid_request_message_order"
    assert err.request_id == "9c1e3a5b7d8f0a2c4e6b8d0f2a4c6e8b"
    assert sleeps.waits == []


@pytest.mark.parametrize("field", ["user", "service_tier"])
async def test_parameters_mistral_does_not_have_are_refused_before_sending(mode: str, field: str) -> None:
    client = client_for(mode)
    with pytest.raises(ck.InvalidRequestError, match=field):
        await call(client, "complete", "mistral:mistral-small-latest", "hi", **{field: "x"})
    await close(client)


def test_key_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MISTRAL_API_KEY", raising=False)
    client = make_client("sync")
    with pytest.raises(ck.MissingAPIKeyError, match="MISTRAL_API_KEY"):
        client.complete("mistral:mistral-small-latest", "hi")
    client.close()


# ------------------------------------------------------------------------------------------------ adapter level


def test_validation_error_message_and_context_window() -> None:
    a = adapter()
    body = {
        "object": "error",
        "message": {
            "detail": [{"type": "less_than_equal", "loc": ["body", "temperature"], "msg": "Input should be <= 1.5"}]
        },
        "type": "invalid_request_message_error",
        "param": None,
        "code": None,
    }
    err = a.map_error(HTTPResponse(422, {"x-kong-request-id": "rid-1"}, json.dumps(body).encode()), "m")
    assert type(err) is ck.BadRequestError
    assert "body.temperature: Input should be <= 1.5" in str(err)
    assert err.request_id == "rid-1"
    long = {"object": "error", "type": "invalid_request_error", "param": None, "code": "3051",
            "message": "Prompt contains 140000 tokens and 0 draft tokens, too large for model with 131072 maximum "
                       "context length"}
    err = a.map_error(HTTPResponse(400, {}, json.dumps(long).encode()), "m")
    assert isinstance(err, ck.ContextWindowExceededError)


def test_model_length_finish_is_normalised() -> None:
    a = adapter()
    body = {"id": "x", "object": "chat.completion", "created": 1, "model": "mistral-small-latest",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "a"}, "finish_reason": "model_length"}
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
    req = CompleteRequest(model="mistral-small-latest", messages=[])
    r = a.parse_complete(req, HTTPResponse(200, {}, json.dumps(body).encode()))
    assert r.finish_reason == "length"
    dec = a.stream_decoder(CompleteRequest(model="mistral-small-latest", messages=[], stream=True))
    (chunk,) = dec.feed(SSEEvent(data=json.dumps({**body, "choices": [
        {"index": 0, "delta": {"content": "a"}, "finish_reason": "model_length"}]})))
    assert chunk.finish_reason == "length"
    assert dec.result().finish_reason == "length"


def test_reasoning_tokens_read_when_reported() -> None:
    u = adapter().usage({"prompt_tokens": 5, "completion_tokens": 40, "total_tokens": 45,
                         "completion_tokens_details": {"reasoning_tokens": 30}})
    assert (u.output_tokens, u.reasoning_tokens) == (40, 30)


def test_no_stream_options_and_random_seed() -> None:
    http = adapter().build_complete(CompleteRequest(model="m", messages=[{"role": "user", "content": "hi"}],
                                                    seed=3, stream=True))
    assert http.json["random_seed"] == 3
    assert "seed" not in http.json
    assert "stream_options" not in http.json
    assert http.headers["authorization"] == "Bearer " + "m" * 12


# ------------------------------------------------------------------------------------------------ cassettes


@pytest.mark.parametrize("path", sorted((CASSETTES / "test_mistral").glob("*.yaml")), ids=lambda p: p.name)
def test_cassettes_are_marked_and_hold_no_credentials(path: Path) -> None:
    text = path.read_text("utf-8")
    assert text.startswith("# AUTHORED: written from ") or text.startswith("# RECORDED: ")
    for inter in yaml.safe_load(text)["interactions"]:
        names = {k.lower() for side in ("request", "response") for k in inter[side].get("headers", {})}
        assert not names & {"authorization", "api-key", "x-api-key", "cookie", "set-cookie"}
        assert inter["request"]["uri"].startswith("https://api.mistral.ai/v1/")


@pytest.mark.parametrize("streamed", [False, True])
def test_top_level_num_cached_tokens_are_cached_input_priced_at_the_cache_rate(streamed: bool) -> None:
    """Mistral reports cache hits as ``usage.num_cached_tokens`` (top level): they are cached input tokens, priced
    at genai-prices' cache-read rate (the same figure genai-prices computes for them)."""
    from computekit._sse import SSEDecoder
    from computekit.adapters._base import CompleteRequest, HTTPResponse
    from computekit.pricing import PriceBook

    usage = {"prompt_tokens": 2100, "completion_tokens": 40, "total_tokens": 2140, "num_cached_tokens": 2048}
    model = "mistral-medium-latest"
    message = {"role": "assistant", "content": "ok", "tool_calls": None, "prefix": False}
    body = {"id": "x", "object": "chat.completion", "created": 1, "model": model, "usage": usage,
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}
    req = CompleteRequest(model=model, messages=[], stream=streamed)
    a = adapter()
    if streamed:
        chunk = {"id": "x", "object": "chat.completion.chunk", "created": 1, "model": model, "usage": usage,
                 "choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": "stop"}]}
        decoder = a.stream_decoder(req)
        for event in SSEDecoder(1 << 20).feed(f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode()):
            decoder.feed(event)
        r = decoder.result()
    else:
        r = a.parse_complete(req, HTTPResponse(200, {}, json.dumps(body).encode()))
    assert (r.usage.input_tokens, r.usage.cached_input_tokens) == (2100, 2048)
    when = dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC)
    cost = PriceBook().token_cost(a.price_ref(model, r), r.usage, when)
    expected = genai_prices.calc_price(
        genai_prices.Usage(input_tokens=2100, output_tokens=40, cache_read_tokens=2048), model,
        provider_id="mistral", genai_request_timestamp=when,
    ).total_price
    assert cost.total == expected
    lines = {line.item: line for line in cost.lines}
    assert lines["cached input"].quantity == 2048
    assert lines["cached input"].unit_price < lines["input"].unit_price
