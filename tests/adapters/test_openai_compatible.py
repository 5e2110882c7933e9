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
from _paths import real_key

import computekit as ck
from computekit.pricing import UnknownPriceWarning


@pytest.fixture(autouse=True)
def _every_interaction_played(request: pytest.FixtureRequest) -> Any:
    if request.node.get_closest_marker("vcr") is None:  # an adapter-level test: no cassette
        yield
        return
    vcr = request.getfixturevalue("vcr")
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


# ------------------------------------------------------------------------------------------------ hosted profiles
# One authored cassette per profile (cassettes/test_openai_compatible/<name>_chat.yaml): the URL and key header each
# profile sends, and its price read from genai-prices' table for that host (or what the host said it billed).

PROFILE_CASES = {
    # profile: (key env var, model, genai-prices provider id)
    "cerebras": ("CEREBRAS_API_KEY", "llama-3.3-70b", "cerebras"),
    "xai": ("XAI_API_KEY", "grok-3-mini", "x-ai"),
    "moonshot": ("MOONSHOT_API_KEY", "kimi-k2-0905-preview", "moonshotai"),
    "novita": ("NOVITA_API_KEY", "meta-llama/llama-3.1-70b-instruct", "novita"),
    "gemini-openai": ("GEMINI_API_KEY", "gemini-2.5-flash", "google"),
    "perplexity": ("PERPLEXITY_API_KEY", "sonar", "perplexity"),
    "openrouter": ("OPENROUTER_API_KEY", "openai/gpt-4o-mini", "openrouter"),
}


@pytest.fixture
def default_cassette_name(request: pytest.FixtureRequest) -> str:
    """``default_cassette`` when marked, else ``<profile>_chat`` for the parametrised profile test."""
    marker = request.node.get_closest_marker("default_cassette")
    if marker is not None:
        return str(marker.args[0]).removesuffix(".yaml")
    params = getattr(request.node, "callspec", None)
    return f"{params.params['name']}_chat" if params and "name" in params.params else request.node.name


@pytest.mark.vcr
@pytest.mark.parametrize("name", sorted(PROFILE_CASES))
async def test_hosted_profile(name: str, mode: str) -> None:
    from decimal import Decimal

    from computekit.adapters._registry import adapter_class
    from computekit.adapters.openai_compatible import PROFILES, OpenAICompatibleAdapter

    env, model, table = PROFILE_CASES[name]
    assert adapter_class(name) is OpenAICompatibleAdapter
    assert PROFILES[name].key_env_vars[0] == env
    assert PROFILES[name].table_provider == table
    seen = Seen()
    key = real_key(env, f"{name}-test-placeholder")
    client = make_client(mode, providers={name: {"api_key": key}}, http_client=seen.http_client(mode))
    r = await call(client, "complete", f"{name}:{model}", "Say this is a test")
    await close(client)
    (req,) = seen.requests
    assert str(req.url) == f"{PROFILES[name].base_url}/chat/completions"
    assert req.headers["authorization"] == f"Bearer {key}"
    assert r.provider == name
    assert r.text == "This is a test."
    raw = r.raw["usage"]
    when = r.attempts[-1].started_at
    # genai-prices' own reading of the host's usage object prices the same tokens (and fees) as computekit's.
    # (Perplexity's own extractor; the others' usage is OpenAI's, read as the OpenAI conformance reads it.)
    if name == "perplexity":
        usage = genai_prices.extract_usage({"model": model, "usage": raw}, provider_id=table).usage
    else:
        from test_openai_conformance import genai_usage

        usage = genai_usage(raw)
    own = genai_prices.calc_price(usage, model, provider_id=table, genai_request_timestamp=when).total_price
    if "cost" in raw:
        # The host stated what it billed: that is the cost, named, with the table price kept beside it.
        stated = raw["cost"]["total_cost"] if isinstance(raw["cost"], dict) else raw["cost"]
        assert r.cost.total == Decimal(str(stated))
        assert r.cost.table_total == own
        assert r.cost.price_source is not None
        assert r.cost.price_source.table.startswith(f"{name}: usage.cost")
        assert sum(line.amount for line in r.cost.lines) == r.cost.total
    else:
        assert r.cost.total == own
        assert r.cost.table_total is None
    assert r.cost.total is not None
    assert r.attempts[-1].cost == r.cost


def test_perplexity_search_fees_priced() -> None:
    """Sonar's per-request search fee is a line of its own; Deep Research's search queries, reasoning and
    citation tokens each at their rate: both equal genai-prices' reading of the same usage object."""
    from computekit.adapters._base import ProviderSettings
    from computekit.adapters.openai_compatible import OpenAICompatibleAdapter
    from computekit.pricing import PriceBook

    ad = OpenAICompatibleAdapter(ProviderSettings(name="perplexity", base_url="https://api.perplexity.ai",
                                                  api_key=None, timeout=30))
    book = PriceBook()
    sonar = {"prompt_tokens": 12, "completion_tokens": 30, "total_tokens": 42, "search_context_size": "high"}
    deep = {"prompt_tokens": 40, "completion_tokens": 900, "total_tokens": 940, "citation_tokens": 5000,
            "num_search_queries": 12, "reasoning_tokens": 70000}
    for model, raw in (("sonar", sonar), ("sonar-deep-research", deep)):
        cost = book.token_cost(ad.price_ref(model), ad.usage(raw))
        want = genai_prices.extract_usage({"model": model, "usage": raw}, provider_id="perplexity",
                                          api_flavor="default").calc_price().total_price
        assert cost.total == want, (model, cost.lines)
    items = {line.item for line in book.token_cost(ad.price_ref("sonar"), ad.usage(sonar)).lines}
    assert "request" in items
    deep_items = {line.item for line in book.token_cost(ad.price_ref("sonar-deep-research"), ad.usage(deep)).lines}
    assert {"web_searches", "output_citation_tokens", "reasoning"} <= deep_items


@pytest.mark.parametrize(("raw", "output"), [
    # Thoughts inside completion_tokens (OpenAI's convention): nothing to add.
    ({"prompt_tokens": 20, "completion_tokens": 533, "total_tokens": 553,
      "completion_tokens_details": {"reasoning_tokens": 382}}, 533),
    # Thoughts left out of completion_tokens, as the total shows: added to the output.
    ({"prompt_tokens": 20, "completion_tokens": 151, "total_tokens": 553,
      "completion_tokens_details": {"reasoning_tokens": 382}}, 533),
])
def test_gemini_openai_reasoning_read_from_the_total(raw: dict[str, Any], output: int) -> None:
    from computekit.adapters._base import ProviderSettings
    from computekit.adapters.openai_compatible import OpenAICompatibleAdapter

    ad = OpenAICompatibleAdapter(ProviderSettings(name="gemini-openai", base_url="https://x", api_key=None,
                                                  timeout=30))
    usage = ad.usage(raw)
    assert (usage.output_tokens, usage.reasoning_tokens) == (output, 382)
    assert usage.input_tokens + usage.output_tokens == raw["total_tokens"]


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
    assert first.message.provider_fields == {"deepseek": {"reasoning_content": ""}}
    messages += [first.message, {"role": "tool", "tool_call_id": first.tool_calls[0].id, "content": "18C"}]
    _, second = await stream(client, "deepseek:deepseek-reasoner", messages=messages, tools=[WEATHER])
    assert second.message.provider_fields == {"deepseek": {"reasoning_content": "Paris is done; now Rome."}}
    assert [tc.name for tc in second.tool_calls] == ["get_weather"]
    messages += [second.message, {"role": "tool", "tool_call_id": second.tool_calls[0].id, "content": "24C"}]
    third = await call(client, "complete", "deepseek:deepseek-reasoner", messages=messages, tools=[WEATHER])
    await close(client)
    assert third.text == "Paris: 18C. Rome: 24C."
    assert third.message.provider_fields == {"deepseek": {"reasoning_content": "Both answers are in."}}
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
