"""OpenAI-compatible hosts through their built-in profiles, sync and async, replayed from
cassettes/test_openai_compatible/: Together and Groq (keyed, priced by genai-prices), Ollama (local, no key, no
charge) and GooseAI (text completions at ``engines/{engine}/completions``, no price table).

To record one: set its key (``TOGETHER_API_KEY``, ``GROQ_API_KEY``, ``GOOSEAI_API_KEY``; Ollama needs a local
server) and run with ``--record-mode=rewrite -k <host>``.
"""

from __future__ import annotations

from typing import Any

import genai_prices
import pytest
from _clients import Seen, call, close, make_client, mode, vcr_config  # noqa: F401  (shared fixtures, registered by name)
from conftest import real_key

import computekit as ck
from computekit.pricing import UnknownPriceWarning


@pytest.fixture(autouse=True)
def _every_interaction_played(vcr: Any) -> Any:
    yield
    assert vcr is not None
    assert vcr.all_played


def genai_total(result: ck.Completion, table: str) -> Any:
    u = result.raw["usage"]
    return genai_prices.calc_price(
        genai_prices.Usage(input_tokens=u["prompt_tokens"], output_tokens=u["completion_tokens"]),
        result.raw["model"],
        provider_id=table,
        genai_request_timestamp=result.attempts[-1].started_at,
    ).total_price


@pytest.mark.vcr
@pytest.mark.default_cassette("together_chat.yaml")
async def test_together(mode: str) -> None:
    seen = Seen()
    key = real_key("TOGETHER_API_KEY", "together-test-placeholder")
    client = make_client(mode, providers={"together": {"api_key": key}}, http_client=seen.http_client(mode))
    r = await call(client, "complete", "together:meta-llama/Llama-3.3-70B-Instruct-Turbo", "Say this is a test")
    await close(client)
    (req,) = seen.requests
    assert str(req.url) == "https://api.together.xyz/v1/chat/completions"
    assert req.headers["authorization"] == f"Bearer {key}"
    assert r.provider == "together"
    assert r.model == "meta-llama/Llama-3.3-70B-Instruct-Turbo"
    assert r.text == "This is a test."
    assert r.finish_reason == "stop"
    assert r.tool_calls == []  # Together sends "tool_calls": [] on plain answers
    assert (r.usage.input_tokens, r.usage.output_tokens) == (40, 6)
    assert r.cost.total is not None
    assert r.cost.total == genai_total(r, "together")


@pytest.mark.vcr
@pytest.mark.default_cassette("groq_chat.yaml")
async def test_groq(mode: str) -> None:
    seen = Seen()
    key = real_key("GROQ_API_KEY", "groq-test-placeholder")
    client = make_client(mode, providers={"groq": {"api_key": key}}, http_client=seen.http_client(mode))
    r = await call(client, "complete", "groq:llama-3.1-8b-instant", "Say this is a test")
    await close(client)
    (req,) = seen.requests
    assert str(req.url) == "https://api.groq.com/openai/v1/chat/completions"
    assert req.headers["authorization"] == f"Bearer {key}"
    assert r.text == "This is a test."
    assert r.request_id == "req_01kb2c3d4e5f6a7b8c9d0e1f2a"
    assert r.service_tier == "on_demand"
    assert (r.usage.input_tokens, r.usage.output_tokens) == (40, 6)  # timings in usage are not tokens
    assert r.cost.total is not None
    assert r.cost.total == genai_total(r, "groq")


@pytest.mark.vcr
@pytest.mark.default_cassette("ollama_chat.yaml")
async def test_ollama_needs_no_key_and_costs_nothing(mode: str) -> None:
    seen = Seen()
    client = make_client(mode, http_client=seen.http_client(mode))
    r = await call(client, "complete", "ollama:llama3.2", "Say this is a test")
    await close(client)
    (req,) = seen.requests
    assert str(req.url) == "http://localhost:11434/v1/chat/completions"
    assert "authorization" not in req.headers
    assert r.text == "This is a test."
    assert (r.usage.input_tokens, r.usage.output_tokens) == (31, 6)
    assert r.cost.total == 0
    assert r.cost.price_source is not None
    assert r.cost.price_source.table == "self-hosted"


@pytest.mark.vcr
@pytest.mark.default_cassette("gooseai_completion.yaml")
async def test_gooseai_engine_completions(mode: str) -> None:
    seen = Seen()
    key = real_key("GOOSEAI_API_KEY", "gooseai-test-placeholder")
    client = make_client(mode, providers={"gooseai": {"api_key": key}}, http_client=seen.http_client(mode))
    with pytest.warns(UnknownPriceWarning, match="gooseai:gpt-neo-20b"):
        r = await call(client, "complete", "gooseai:gpt-neo-20b", "Once upon a time", max_tokens=10)
    await close(client)
    (req,) = seen.requests
    assert str(req.url) == "https://api.goose.ai/v1/engines/gpt-neo-20b/completions"
    assert req.headers["authorization"] == f"Bearer {key}"
    assert r.text == ", there was a small GPU in a big"
    assert r.finish_reason == "length"
    assert (r.usage.input_tokens, r.usage.output_tokens) == (4, 10)
    # No price table covers GooseAI: the cost is unknown (None, with the reason), never 0.
    assert r.cost.total is None
    assert r.cost.reason


@pytest.mark.vcr
@pytest.mark.default_cassette("deepseek_reasoning_tool_round_trip.yaml")
async def test_deepseek_reasoning_content_survives_tool_call_turns(mode: str) -> None:
    """DeepSeek's thinking mode answers 400 unless each assistant turn with tool calls is sent back with its
    ``reasoning_content`` (an empty one included): the cassette's request bodies pin it, for a message parsed
    from a plain answer and one assembled from a stream."""
    from _clients import WEATHER, stream

    client = make_client(mode, providers={"deepseek": {"api_key": real_key("DEEPSEEK_API_KEY", "ds-placeholder")}})
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris, then in Rome?"}]
    first = await call(client, "complete", "deepseek:deepseek-reasoner", messages=messages, tools=[WEATHER])
    assert first.message.provider_fields == {"reasoning_content": ""}
    messages += [first.message, {"role": "tool", "tool_call_id": first.tool_calls[0].id, "content": "18C"}]
    _, second = await stream(client, "deepseek:deepseek-reasoner", messages=messages, tools=[WEATHER])
    assert second.message.provider_fields == {"reasoning_content": "Paris is done; now Rome."}
    assert [tc.name for tc in second.tool_calls] == ["get_weather"]
    messages += [second.message, {"role": "tool", "tool_call_id": second.tool_calls[0].id, "content": "24C"}]
    third = await call(client, "complete", "deepseek:deepseek-reasoner", messages=messages, tools=[WEATHER])
    await close(client)
    assert third.text == "Paris: 18C. Rome: 24C."
    assert third.message.provider_fields == {"reasoning_content": "Both answers are in."}
    assert all(r.cost.total is not None for r in (first, second, third))


def hf_route_cost(result: ck.Completion, route: str, model: str) -> Any:
    u = result.raw["usage"]
    return genai_prices.calc_price(
        genai_prices.Usage(input_tokens=u["prompt_tokens"], output_tokens=u["completion_tokens"]), model,
        provider_id=f"huggingface_{route}", genai_request_timestamp=result.attempts[-1].started_at,
    ).total_price


@pytest.mark.vcr
@pytest.mark.default_cassette("huggingface_routes.yaml")
async def test_huggingface_router_priced_by_its_route(mode: str) -> None:
    """A ``model:provider`` suffix, or else the provider the router reports (``x-inference-provider``), picks
    genai-prices' Hugging Face route table; a policy suffix with no reported provider stays unpriced."""
    from _clients import stream

    model = "meta-llama/Llama-3.3-70B-Instruct"
    client = make_client(mode, providers={"huggingface": {"api_key": real_key("HF_TOKEN", "hf_placeholder")}})
    named = await call(client, "complete", f"huggingface:{model}:groq", "Say this is a test")
    reported = await call(client, "complete", f"huggingface:{model}", "Say this is a test")
    _, streamed = await stream(client, f"huggingface:{model}", "Say this is a test")
    with pytest.warns(UnknownPriceWarning):
        unknown = await call(client, "complete", f"huggingface:{model}:fastest", "Say this is a test")
    await close(client)
    assert named.cost.total == hf_route_cost(named, "groq", model)
    assert reported.cost.total == hf_route_cost(reported, "together", model)
    assert streamed.cost.total == hf_route_cost(streamed, "together", model)
    assert streamed.request_id == "Root=1-authored-hf-0003"
    assert named.cost.total != reported.cost.total, "the two routes have different prices"
    assert unknown.cost.total is None
