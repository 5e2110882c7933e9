"""The ``openai`` provider through the public client, sync and async, replayed from cassettes/test_openai/.

The cassettes were authored from OpenAI's OpenAPI description (see each file's first line); with
``OPENAI_API_KEY`` set, ``pytest --record-mode=rewrite tests/adapters/test_openai.py`` replaces them with real
traffic (credentials and account headers are filtered by tests/conftest.py). Requests are matched on their JSON
body too, so each cassette also pins down what computekit sends.

Costs are checked against ``genai_prices.calc_price`` on the usage in the response, at the time of the call.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import genai_prices
import pytest
from _clients import Sleeps, call, close, make_client, mode, policy, stream, vcr_config  # noqa: F401  (shared fixtures, registered by name)
from _paths import real_key

import computekit as ck

KEY = real_key("OPENAI_API_KEY", "sk-test-placeholder")


@pytest.fixture(autouse=True)
def _every_interaction_played(vcr: Any) -> Any:
    """Each test consumes its whole cassette: nothing recorded goes unused, nothing bypasses vcrpy."""
    yield
    assert vcr is not None
    assert vcr.play_count == len(vcr.data)
    assert vcr.all_played


def client_for(mode: str, **kwargs: Any) -> ck.Client | ck.AsyncClient:
    return make_client(mode, providers={"openai": {"api_key": KEY}}, **kwargs)


def genai_cost(result: ck.Completion | ck.Embeddings, tier: str | None = None) -> Decimal:
    """What genai-prices charges for the usage in the raw response, at the time of the call."""
    raw = result.raw["usage"]
    pd = raw.get("prompt_tokens_details") or {}
    cd = raw.get("completion_tokens_details") or {}
    values = {
        "input_tokens": raw["prompt_tokens"],
        "output_tokens": raw.get("completion_tokens"),
        "cache_read_tokens": pd.get("cached_tokens"),
        "output_reasoning_tokens": cd.get("reasoning_tokens"),
    }
    usage = genai_prices.Usage(**{k: v for k, v in values.items() if v})
    when: dt.datetime = result.attempts[-1].started_at
    return genai_prices.calc_price(
        usage,
        result.raw["model"],
        provider_id="openai",
        genai_request_timestamp=when,
        price_context={"service_tier": tier} if tier else None,
    ).total_price


def check_success(result: ck.Completion | ck.Embeddings) -> None:
    assert result.provider == "openai"
    assert result.cost.total is not None, result.cost.reason
    assert result.cost.total == genai_cost(result)
    assert result.cost.price_source is not None
    assert result.cost.price_source.table == "genai-prices"
    assert result.attempts[-1].outcome == "success"
    assert result.attempts[-1].cost == result.cost
    assert result.request_id is not None
    assert result.request_id.startswith("req_")


# ------------------------------------------------------------------------------------------------ complete


@pytest.mark.vcr
@pytest.mark.default_cassette("chat.yaml")
async def test_chat(mode: str) -> None:
    client = client_for(mode)
    r = await call(client, "complete", "openai:gpt-4o-mini", "Say this is a test", max_tokens=20)
    await close(client)
    assert r.text == "This is a test."
    assert r.model == "gpt-4o-mini"
    assert r.response_model == "gpt-4o-mini-2024-07-18"
    assert r.finish_reason == "stop"
    assert r.message.role == "assistant"
    assert r.message.content == r.text
    assert (r.usage.input_tokens, r.usage.output_tokens) == (12, 5)
    check_success(r)
    rows = client.ledger.rows()
    assert [(row.provider, row.outcome, row.cost) for row in rows] == [("openai", "success", r.cost.total)]


# OpenAI's strict-schema form of the shared tool (additionalProperties: false), as its cassette pins it.
WEATHER = {
    "name": "get_weather",
    "description": "Current weather for a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
}


@pytest.mark.vcr
@pytest.mark.default_cassette("tools.yaml")
async def test_tool_call_round_trip(mode: str) -> None:
    client = client_for(mode)
    messages: list[Any] = [{"role": "user", "content": "What's the weather in Paris?"}]
    first = await call(client, "complete", "openai:gpt-4o-mini", messages=messages, tools=[WEATHER])
    assert first.finish_reason == "tool_calls"
    assert first.text == ""
    (tc,) = first.tool_calls
    assert (tc.name, tc.parsed_arguments()) == ("get_weather", {"city": "Paris"})
    check_success(first)

    # The assistant message goes back as it came, followed by the tool's result.
    messages += [first.message, {"role": "tool", "tool_call_id": tc.id, "content": "18C and sunny"}]
    second = await call(client, "complete", "openai:gpt-4o-mini", messages=messages, tools=[WEATHER])
    await close(client)
    assert second.finish_reason == "stop"
    assert "18°C" in second.text
    assert second.tool_calls == []
    check_success(second)


@pytest.mark.vcr
@pytest.mark.default_cassette("json_mode.yaml")
async def test_json_response_format(mode: str) -> None:
    client = client_for(mode)
    r = await call(
        client,
        "complete",
        "openai:gpt-4o-mini",
        messages=[
            {"role": "system", "content": "Reply with a JSON object only."},
            {"role": "user", "content": 'Two primary colours, as {"colours": [...]}'},
        ],
        response_format={"type": "json_object"},
    )
    await close(client)
    assert json.loads(r.text) == {"colours": ["red", "blue"]}
    check_success(r)


@pytest.mark.vcr
@pytest.mark.default_cassette("stream.yaml")
async def test_stream_with_usage(mode: str) -> None:
    client = client_for(mode)
    chunks, r = await stream(client, "openai:gpt-4o-mini", "Count to three.")
    await close(client)
    assert "".join(c.text for c in chunks) == "One, two, three." == r.text
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["stop"]
    usage_chunks = [c for c in chunks if c.usage is not None]
    assert len(usage_chunks) == 1
    assert usage_chunks[0] is chunks[-1]
    assert (r.usage.input_tokens, r.usage.output_tokens) == (13, 7)
    assert r.finish_reason == "stop"
    assert r.cost.total is not None
    assert r.cost.total == genai_cost(r)
    assert [a.outcome for a in r.attempts] == ["success"]


@pytest.mark.vcr
@pytest.mark.default_cassette("completions.yaml")
async def test_legacy_text_completion(mode: str) -> None:
    """gpt-3.5-turbo-instruct is served by /v1/completions: the prompt is sent as ``prompt``."""
    client = client_for(mode)
    r = await call(client, "complete", "openai:gpt-3.5-turbo-instruct", "Say this is a test", max_tokens=7)
    await close(client)
    assert r.text == "\n\nThis is indeed a test"
    assert r.finish_reason == "length"
    assert (r.usage.input_tokens, r.usage.output_tokens) == (5, 7)
    assert r.cost.total is not None
    # The response names a dated build; it is priced as its family.
    assert (
        r.cost.total
        == genai_prices.calc_price(
            genai_prices.Usage(input_tokens=5, output_tokens=7),
            "gpt-3.5-turbo-instruct",
            provider_id="openai",
            genai_request_timestamp=r.attempts[-1].started_at,
        ).total_price
    )


@pytest.mark.vcr
@pytest.mark.default_cassette("service_tier.yaml")
async def test_service_tier_priority_is_priced_as_priority(mode: str) -> None:
    client = client_for(mode)
    r = await call(client, "complete", "openai:gpt-4o-mini", "Say hello", service_tier="priority")
    await close(client)
    assert r.service_tier == "priority"
    assert r.cost.total == genai_cost(r, tier="priority")
    default = genai_cost(r)
    assert r.cost.total is not None
    assert r.cost.total > default, "the priority tier costs more than default"


# ------------------------------------------------------------------------------------------------ errors


@pytest.mark.vcr
@pytest.mark.default_cassette("rate_limit_then_ok.yaml")
async def test_rate_limit_then_success(mode: str) -> None:
    sleeps = Sleeps()
    client = client_for(mode, retry_policy=policy(sleeps))
    r = await call(client, "complete", "openai:gpt-4o-mini", "Say this is a test")
    await close(client)
    assert r.text == "This is a test."
    assert sleeps.waits == [2.0], "the retry waited what retry-after asked, and did not really sleep"
    failed, ok = r.attempts
    assert (failed.outcome, failed.status, failed.error_type) == ("error", 429, "RateLimitError")
    assert failed.request_id == "req_718293a4b5c6d7e8f90a1b2c3d4e5f60"
    assert failed.cost is not None
    assert failed.cost.total == 0
    assert ok.outcome == "success"
    check_success(r)
    assert [row.outcome for row in client.ledger.rows()] == ["error", "success"]


@pytest.mark.vcr
@pytest.mark.default_cassette("auth_error.yaml")
async def test_invalid_key(mode: str) -> None:
    sleeps = Sleeps()
    bad_key = "sk-test-invalid"
    client = make_client(mode, providers={"openai": {"api_key": bad_key}}, retry_policy=policy(sleeps))
    with pytest.raises(ck.AuthenticationError) as info:
        await call(client, "complete", "openai:gpt-4o-mini", "Say this is a test")
    await close(client)
    err = info.value
    assert err.status == 401
    assert err.provider == "openai"
    assert err.model == "gpt-4o-mini"
    assert err.body["error"]["code"] == "invalid_api_key"
    assert err.request_id == "req_93a4b5c6d7e8f90a1b2c3d4e5f607182"
    assert sleeps.waits == [], "401 is not retried"
    assert bad_key not in str(err) + repr(err) + json.dumps(err.body) + json.dumps(err.headers)
    (row,) = client.ledger.rows()
    assert (row.outcome, row.status, row.error_type) == ("error", 401, "AuthenticationError")


# ------------------------------------------------------------------------------------------------ embed


@pytest.mark.vcr
@pytest.mark.default_cassette("embeddings.yaml")
async def test_embeddings(mode: str) -> None:
    client = client_for(mode)
    e = await call(client, "embed", "openai:text-embedding-3-small", ["a red bicycle", "a blue car"], dimensions=8)
    await close(client)
    assert len(e.vectors) == 2
    assert all(len(v) == 8 for v in e.vectors)
    assert e.vectors[0][0] == pytest.approx(0.0132)
    assert e.usage.input_tokens == 7
    assert e.usage.output_tokens == 0
    check_success(e)


# ------------------------------------------------------------------------------------------------ reasoning models


@pytest.mark.vcr
@pytest.mark.default_cassette("reasoning_max_completion_tokens.yaml")
async def test_reasoning_models_get_max_completion_tokens_in_chat_and_stream(mode: str) -> None:
    """OpenAI's reasoning families answer 400 to ``max_tokens``: the cassette's request bodies pin
    ``max_completion_tokens`` (vcrpy matches on the body), for a chat call and a streamed one."""
    client = client_for(mode)
    r = await call(client, "complete", "openai:gpt-5-nano", "Count r's in strawberry", max_tokens=600)
    assert r.text == "There are 3 r's in strawberry."
    assert (r.usage.output_tokens, r.usage.reasoning_tokens) == (202, 192)
    check_success(r)
    _, s = await stream(client, "openai:o4-mini", "Count to three.", max_tokens=300)
    await close(client)
    assert s.text == "One, two, three."
    assert s.usage.reasoning_tokens == 128
    check_success(s)
