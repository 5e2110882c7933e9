"""The ``anthropic`` provider through the public client, sync and async, replayed from cassettes/test_anthropic/.

The cassettes are AUTHORED, not recorded: written from Anthropic's OpenAPI description
(``shared/specs/anthropic-openapi.yaml``, JSON despite its name) and the Messages API docs (see each file's first
line). :func:`test_cassette_bodies_match_the_spec` validates every response body, every SSE event and every error
envelope in them against the spec's ``Message`` / ``MessageStreamEvent`` / ``ErrorResponse`` schemas. With
``ANTHROPIC_API_KEY`` set, ``pytest --record-mode=rewrite tests/adapters/test_anthropic.py`` replaces them with real
traffic (``x-api-key`` is filtered by tests/conftest.py). Requests are matched on their JSON body too, so each
cassette also pins down what computekit sends (system moved to ``system``, tools converted, the default
``max_tokens``).

Costs are checked against ``genai_prices.calc_price`` on the usage in the response, at the time of the call.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from decimal import Decimal
from functools import cache
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
from _paths import CASSETTES, ROOT, real_key

import computekit as ck
from computekit.adapters.anthropic import DEFAULT_MAX_TOKENS

KEY = real_key("ANTHROPIC_API_KEY", "test-anthropic-placeholder-key")
HERE = CASSETTES / "test_anthropic"


def client_for(mode: str, **kwargs: Any) -> ck.Client | ck.AsyncClient:
    return make_client(mode, providers={"anthropic": {"api_key": KEY}}, **kwargs)


def genai_cost(result: ck.Completion) -> Decimal:
    """What genai-prices charges for the usage in the raw response (Anthropic's own fields), at the call's time."""
    raw = result.raw["usage"]
    extracted = genai_prices.extract_usage({"model": result.raw["model"], "usage": raw}, provider_id="anthropic")
    when: dt.datetime = result.attempts[-1].started_at
    return extracted.calc_price(genai_request_timestamp=when).total_price


def check_success(result: ck.Completion, request_id: str) -> None:
    assert result.provider == "anthropic"
    assert result.cost.total is not None, result.cost.reason
    assert result.cost.total == genai_cost(result)
    assert result.cost.price_source is not None
    assert result.cost.price_source.table == "genai-prices"
    assert result.attempts[-1].outcome == "success"
    assert result.attempts[-1].cost == result.cost
    assert result.request_id == request_id


# ------------------------------------------------------------------------------------------------ complete


@pytest.mark.vcr
@pytest.mark.default_cassette("text.yaml")
async def test_text_with_system_and_default_max_tokens(mode: str) -> None:
    client = client_for(mode)
    r = await call(
        client,
        "complete",
        "anthropic:claude-haiku-4-5",
        messages=[{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Say this is a test"}],
    )
    await close(client)
    assert DEFAULT_MAX_TOKENS == 4096  # the cassette's request body pins the value sent
    assert r.text == "This is a test."
    assert r.model == "claude-haiku-4-5"
    assert r.response_model == "claude-haiku-4-5-20251001"
    assert r.finish_reason == "stop"
    assert r.message.role == "assistant"
    assert r.message.content == r.text
    assert (r.usage.input_tokens, r.usage.output_tokens, r.usage.cached_input_tokens) == (14, 8, 0)
    check_success(r, "req_011CAuthoredText0000000001")
    rows = client.ledger.rows()
    assert [(row.provider, row.outcome, row.cost) for row in rows] == [("anthropic", "success", r.cost.total)]


@pytest.mark.vcr
@pytest.mark.default_cassette("tools.yaml")
async def test_tool_call_round_trip(mode: str) -> None:
    client = client_for(mode)
    messages: list[Any] = [{"role": "user", "content": "What's the weather in Paris?"}]
    first = await call(client, "complete", "anthropic:claude-haiku-4-5", messages=messages, tools=[WEATHER],
                       max_tokens=1024)
    assert first.finish_reason == "tool_calls"
    assert first.text == "I'll check the weather in Paris."
    (tc,) = first.tool_calls
    assert tc.id == "toolu_01A09q90qw90lq917835lq9"
    assert (tc.name, tc.parsed_arguments()) == ("get_weather", {"city": "Paris"})
    check_success(first, "req_011CAuthoredTools000000001")

    # The assistant message goes back as it came (-> text + tool_use blocks), then the tool's result
    # (-> a user message with a tool_result block); the cassette's second request body pins both.
    messages += [first.message, {"role": "tool", "tool_call_id": tc.id, "content": "18C and sunny"}]
    second = await call(client, "complete", "anthropic:claude-haiku-4-5", messages=messages, tools=[WEATHER],
                        max_tokens=1024)
    await close(client)
    assert second.finish_reason == "stop"
    assert second.text == "It's 18°C and sunny in Paris."
    assert second.tool_calls == []
    check_success(second, "req_011CAuthoredTools000000002")


@pytest.mark.vcr
@pytest.mark.default_cassette("stream.yaml")
async def test_stream_usage_split_between_start_and_delta(mode: str) -> None:
    client = client_for(mode)
    chunks, r = await stream(client, "anthropic:claude-haiku-4-5", "Count to three.")
    await close(client)
    assert "".join(c.text for c in chunks) == "One, two, three." == r.text
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["stop"]
    usage_chunks = [c for c in chunks if c.usage is not None]
    assert len(usage_chunks) == 1, "usage is reported once, with message_delta"
    # message_start said 13 in / 1 out; message_delta's cumulative 9 out is the final count.
    assert (r.usage.input_tokens, r.usage.output_tokens) == (13, 9)
    assert usage_chunks[0].usage == r.usage
    assert r.id == "msg_01StreamAuthored000001"
    assert r.response_model == "claude-haiku-4-5-20251001"
    check_success(r, "req_011CAuthoredStream00000001")


@pytest.mark.vcr
@pytest.mark.default_cassette("thinking.yaml")
async def test_extended_thinking_streamed(mode: str) -> None:
    client = client_for(mode)
    chunks, r = await stream(
        client,
        "anthropic:claude-sonnet-4-5",
        "What is 27 * 453?",
        extra_body={"thinking": {"type": "enabled", "budget_tokens": 2048}},
    )
    await close(client)
    assert r.text == "27 × 453 = 12,231"
    assert "".join(c.text for c in chunks) == r.text, "thinking never reaches the answer text"
    thinking, answer = r.raw["content"]
    assert thinking == {
        "type": "thinking",
        "thinking": "27 * 453 = 27 * 400 + 27 * 53 = 10800 + 1431 = 12231.",
        "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds",
    }
    assert answer["type"] == "text"
    assert answer["text"] == r.text
    assert r.usage.output_tokens == 112  # thinking is billed as output
    check_success(r, "req_011CAuthoredThink000000001")


@pytest.mark.vcr
@pytest.mark.default_cassette("caching.yaml")
async def test_prompt_caching_write_then_read(mode: str) -> None:
    doc = "computekit prices every call. " * 200
    system = [
        {"type": "text", "text": "Answer questions about the document."},
        {"type": "text", "text": doc.strip(), "cache_control": {"type": "ephemeral"}},
    ]
    messages = [{"role": "system", "content": system}, {"role": "user", "content": "What does computekit do?"}]
    client = client_for(mode)
    write = await call(client, "complete", "anthropic:claude-sonnet-4-5", messages=messages, max_tokens=256)
    read = await call(client, "complete", "anthropic:claude-sonnet-4-5", messages=messages, max_tokens=256)
    await close(client)
    # Anthropic's input_tokens (12) excludes the cache; computekit's counts all input.
    w, rd = write.usage, read.usage
    assert (w.input_tokens, w.cache_write_tokens, w.cached_input_tokens) == (1222, 1210, 0)
    assert (rd.input_tokens, rd.cache_write_tokens, rd.cached_input_tokens) == (1222, 0, 1210)
    check_success(write, "req_011CAuthoredCache000000001")
    check_success(read, "req_011CAuthoredCache000000002")
    assert write.cost.total is not None
    assert read.cost.total is not None
    assert read.cost.total < write.cost.total, "a cache read costs less than the cache write"
    lines = {line.item: line for line in write.cost.lines}
    assert lines["cache write"].quantity == 1210
    assert lines["input"].quantity == 12


# ------------------------------------------------------------------------------------------------ errors


@pytest.mark.vcr
@pytest.mark.default_cassette("overloaded_then_ok.yaml")
async def test_overloaded_529_retried_then_success(mode: str) -> None:
    sleeps = Sleeps()
    client = client_for(mode, retry_policy=policy(sleeps))
    r = await call(client, "complete", "anthropic:claude-haiku-4-5", "Say this is a test")
    await close(client)
    assert r.text == "This is a test."
    assert len(sleeps.waits) == 1, "one retry, through the injected sleep (no real wait)"
    failed, ok = r.attempts
    assert (failed.outcome, failed.status, failed.error_type) == ("error", 529, "OverloadedError")
    assert failed.request_id == "req_011CAuthoredOverload0000001"
    assert failed.cost is not None
    assert failed.cost.total == 0
    assert ok.outcome == "success"
    check_success(r, "req_011CAuthoredOverload0000002")
    assert [row.outcome for row in client.ledger.rows()] == ["error", "success"]


@pytest.mark.vcr
@pytest.mark.default_cassette("stream_error.yaml")
async def test_error_event_mid_stream_is_typed(mode: str) -> None:
    sleeps = Sleeps()
    client = client_for(mode, retry_policy=policy(sleeps))
    with pytest.raises(ck.OverloadedError) as info:
        # The replayed body arrives in one read, so the error is raised before its chunks are handed out; the
        # decoder-level test below checks that the text before the error is decoded.
        await stream(client, "anthropic:claude-haiku-4-5", "Tell me a story.")
    await close(client)
    err = info.value
    assert err.status == 529  # Anthropic's documented status for overloaded_error (the HTTP status was 200)
    assert err.body["error"] == {"type": "overloaded_error", "message": "Overloaded"}
    assert err.provider == "anthropic"
    assert err.model == "claude-haiku-4-5"
    assert sleeps.waits == [], "an error inside a started stream is not retried"
    (row,) = client.ledger.rows()
    assert (row.outcome, row.error_type) == ("error", "OverloadedError")


def test_error_event_after_text_at_decoder_level() -> None:
    from computekit._sse import SSEDecoder
    from computekit.adapters._base import CompleteRequest

    inter = yaml.safe_load((HERE / "stream_error.yaml").read_text("utf-8"))["interactions"][0]
    decoder = _adapter().stream_decoder(CompleteRequest(model="claude-haiku-4-5", messages=[], stream=True))
    *before, error_event = SSEDecoder(1 << 20).feed(inter["response"]["body"]["string"].encode())
    texts = [c.text for event in before for c in decoder.feed(event)]
    with pytest.raises(ck.OverloadedError) as info:
        decoder.feed(error_event)
    assert "".join(texts) == "Once upon"
    assert info.value.status == 529
    assert not decoder.done


@pytest.mark.vcr
@pytest.mark.default_cassette("context_window.yaml")
async def test_prompt_too_long_is_context_window_error(mode: str) -> None:
    sleeps = Sleeps()
    client = client_for(mode, retry_policy=policy(sleeps))
    with pytest.raises(ck.ContextWindowExceededError) as info:
        await call(client, "complete", "anthropic:claude-haiku-4-5", "Summarise this.")
    await close(client)
    err = info.value
    assert isinstance(err, ck.BadRequestError)
    assert err.status == 400
    assert err.request_id == "req_011CAuthoredTooLong00000001"
    assert err.body["error"]["type"] == "invalid_request_error"
    assert sleeps.waits == []
    assert KEY not in str(err) + repr(err) + json.dumps(err.body) + json.dumps(err.headers)


async def test_missing_key_names_the_env_var(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    client = make_client(mode)
    with pytest.raises(ck.MissingAPIKeyError, match="ANTHROPIC_API_KEY"):
        await call(client, "complete", "anthropic:claude-haiku-4-5", "hi")
    await close(client)


async def test_json_mode_and_embed_are_refused_before_sending(mode: str) -> None:
    client = client_for(mode)
    with pytest.raises(ck.UnsupportedCapabilityError):
        await call(client, "complete", "anthropic:claude-haiku-4-5", "hi", response_format={"type": "json_object"})
    with pytest.raises(ck.UnsupportedCapabilityError):
        await call(client, "embed", "anthropic:claude-haiku-4-5", ["a"])
    await close(client)


# ------------------------------------------------------------------------------------------------ request shaping


def _adapter() -> Any:
    from pydantic import SecretStr

    from computekit.adapters._base import ProviderSettings
    from computekit.adapters.anthropic import AnthropicAdapter

    return AnthropicAdapter(
        ProviderSettings(name="anthropic", base_url="https://api.anthropic.com/v1", api_key=SecretStr(KEY), timeout=30)
    )


def test_openai_shaped_tools_tool_choice_and_parallel_results() -> None:
    from computekit.adapters._base import CompleteRequest

    req = CompleteRequest(
        model="claude-haiku-4-5",
        messages=[
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "t1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
                {"id": "t2", "name": "get_weather", "arguments": '{"city": "Rome"}'},
            ]},
            {"role": "tool", "tool_call_id": "t1", "content": "18C"},
            {"role": "tool", "tool_call_id": "t2", "content": "24C"},
            {"role": "user", "content": [{"type": "image_url", "url": "data:image/png;base64,AAAA"}]},
        ],
        tools=[{"type": "function", "function": WEATHER}],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        stop="END",
        user="u-1",
    )
    body = _adapter().build_complete(req).json
    assert body["system"] == "Be brief."
    assert body["tools"] == [{"name": "get_weather", "description": WEATHER["description"],
                              "input_schema": WEATHER["parameters"]}]
    assert body["tool_choice"] == {"type": "tool", "name": "get_weather"}
    assert body["stop_sequences"] == ["END"]
    assert body["metadata"] == {"user_id": "u-1"}
    assert body["max_tokens"] == DEFAULT_MAX_TOKENS
    assert body["messages"][1] == {"role": "assistant", "content": [
        {"type": "tool_use", "id": "t1", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "t2", "name": "get_weather", "input": {"city": "Rome"}},
    ]}
    # Parallel tool results travel together in one user turn.
    assert body["messages"][2] == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "t1", "content": "18C"},
        {"type": "tool_result", "tool_use_id": "t2", "content": "24C"},
    ]}
    assert body["messages"][3]["content"] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}
    ]
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user", "user"]


def test_max_tokens_default_exceeds_a_large_thinking_budget() -> None:
    from computekit.adapters._base import CompleteRequest

    req = CompleteRequest(model="claude-sonnet-4-5", messages=[{"role": "user", "content": "hi"}],
                          extra={"thinking": {"type": "enabled", "budget_tokens": 10000}})
    assert _adapter().build_complete(req).json["max_tokens"] > 10000
    req.max_tokens = 20000
    assert _adapter().build_complete(req).json["max_tokens"] == 20000


@pytest.mark.parametrize(
    ("status", "etype", "message", "expected"),
    [
        (529, "overloaded_error", "Overloaded", ck.OverloadedError),
        (429, "rate_limit_error", "Number of request tokens has exceeded your rate limit", ck.RateLimitError),
        (400, "invalid_request_error", "prompt is too long: 215389 tokens > 200000 maximum",
         ck.ContextWindowExceededError),
        (400, "invalid_request_error", "max_tokens: Field required", ck.BadRequestError),
        (401, "authentication_error", "invalid x-api-key", ck.AuthenticationError),
        (403, "permission_error", "Your API key does not have permission", ck.PermissionDeniedError),
        (404, "not_found_error", "model: claude-nope", ck.NotFoundError),
        (500, "api_error", "Internal server error", ck.ServerError),
    ],
)
def test_error_types(status: int, etype: str, message: str, expected: type[Exception]) -> None:
    from computekit.adapters._base import HTTPResponse

    body = {"type": "error", "error": {"type": etype, "message": message}, "request_id": "req_body_id"}
    err = _adapter().map_error(
        HTTPResponse(status, {"content-type": "application/json"}, json.dumps(body).encode()), "claude-haiku-4-5"
    )
    assert type(err) is expected
    assert (err.status, err.message, err.request_id, err.body) == (status, message, "req_body_id", body)
    # The request-id header wins over the body's copy.
    err = _adapter().map_error(
        HTTPResponse(status, {"request-id": "req_header_id"}, json.dumps(body).encode()), "claude-haiku-4-5"
    )
    assert err.request_id == "req_header_id"


# ------------------------------------------------------------------------------------------------ the spec


def spec_path() -> Path:
    env = os.environ.get("COMPUTEKIT_SPECS_DIR")
    return (Path(env) if env else ROOT.parent / "shared" / "specs") / "anthropic-openapi.yaml"


@cache
def _spec() -> dict[str, Any]:
    return {"components": {"schemas": json.loads(spec_path().read_text("utf-8"))["components"]["schemas"]}}


@cache
def _validator(name: str) -> Any:
    from jsonschema import Draft202012Validator

    return Draft202012Validator({"$ref": f"#/components/schemas/{name}", **_spec()})


def schema_errors(name: str, instance: Any) -> list[str]:
    assert name in _spec()["components"]["schemas"], f"{name} is not in the spec"
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:300]}" for e in _validator(name).iter_errors(instance)]


@pytest.fixture(scope="module")
def spec() -> None:
    if not spec_path().is_file():
        msg = f"Anthropic OpenAPI spec not found at {spec_path()}: set COMPUTEKIT_SPECS_DIR"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)


def _cassettes() -> list[Path]:
    return sorted(HERE.glob("*.yaml"))


def _interactions() -> list[Any]:
    return [
        pytest.param(p, i, id=f"{p.name}#{i}")
        for p in _cassettes()
        for i, _ in enumerate(yaml.safe_load(p.read_text("utf-8"))["interactions"])
    ]


MARKER = re.compile(r"^# (AUTHORED: written from .+, not recorded\.|RECORDED: \d{4}-\d{2}-\d{2}.*)$")


@pytest.mark.parametrize("path", _cassettes(), ids=lambda p: p.name)
def test_cassette_marked_and_keyless(path: Path) -> None:
    text = path.read_text("utf-8")
    assert MARKER.match(text.splitlines()[0]), f"{path.name} must start with '# AUTHORED: ... not recorded.'"
    assert not re.search(r"sk-ant-[A-Za-z0-9_\-]{20,}", text)
    for inter in yaml.safe_load(text)["interactions"]:
        for side in ("request", "response"):
            names = {k.lower() for k in inter[side].get("headers", {})}
            assert not names & {"x-api-key", "authorization", "cookie", "set-cookie"}


@pytest.mark.usefixtures("spec")
@pytest.mark.parametrize(("path", "index"), _interactions())
def test_cassette_bodies_match_the_spec(path: Path, index: int) -> None:
    inter = yaml.safe_load(path.read_text("utf-8"))["interactions"][index]
    resp = inter["response"]
    ctype = resp["headers"]["content-type"][0].split(";")[0]
    body = resp["body"]["string"]
    assert json.loads(inter["request"]["body"])["model"]
    problems: list[str] = []
    # A request that opts into beta features (anthropic-beta: compaction, the advisor tool) gets Beta* shapes.
    beta = "Beta" if "anthropic-beta" in inter["request"]["headers"] else ""
    if ctype == "text/event-stream":
        for block in body.strip().split("\n\n"):
            lines = dict(line.split(": ", 1) for line in block.split("\n"))
            event = json.loads(lines["data"])
            assert lines["event"] == event["type"], "the SSE event name repeats the payload's type"
            name = "ErrorResponse" if event["type"] == "error" else f"{beta}MessageStreamEvent"
            problems += [f"{event['type']}: {e}" for e in schema_errors(name, event)]
    else:
        assert ctype == "application/json"
        name = "ErrorResponse" if resp["status"]["code"] >= 400 else f"{beta}Message"
        problems = schema_errors(name, json.loads(body))
    assert not problems, "\n".join(problems)


@pytest.mark.usefixtures("spec")
def test_spec_validation_is_not_vacuous() -> None:
    good = {"id": "m", "type": "message", "role": "assistant", "model": "claude-haiku-4-5",
            "content": [{"type": "text", "text": "hi", "citations": None}], "stop_reason": "end_turn",
            "stop_sequence": None, "stop_details": None, "container": None,
            "usage": {"input_tokens": 1, "output_tokens": 1, "cache_creation_input_tokens": 0,
                      "cache_read_input_tokens": 0, "cache_creation": None, "server_tool_use": None,
                      "service_tier": "standard", "inference_geo": None}}
    assert schema_errors("Message", good) == []
    assert schema_errors("Message", {**good, "stop_reason": "finished"})
    assert schema_errors("Message", {**good, "usage": {**good["usage"], "input_tokens": "1"}})
    assert schema_errors("ErrorResponse", {"type": "error", "error": {"type": "overloaded_error"}, "request_id": None})
    assert schema_errors("MessageStreamEvent", {"type": "content_block_delta", "index": 0,
                                                "delta": {"type": "text_delta"}})


def test_one_hour_cache_writes_are_priced_at_their_own_rate() -> None:
    """``cache_creation.ephemeral_1h_input_tokens`` is a part of the cache writes with a dearer rate."""
    from computekit.pricing import PriceBook

    a = _adapter()
    raw = {"input_tokens": 10, "output_tokens": 20, "cache_creation_input_tokens": 3000,
           "cache_read_input_tokens": 0,
           "cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 2000}}
    usage = a.usage(raw)
    assert (usage.cache_write_tokens, usage.cache_write_1h_tokens) == (3000, 2000)
    model = "claude-sonnet-4-5-20250929"
    when = dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC)
    cost = PriceBook().token_cost(a.price_ref(model), usage, when)
    expected = genai_prices.calc_price(
        genai_prices.Usage(input_tokens=3010, output_tokens=20, cache_write_tokens=3000, cache_write_1h_tokens=2000),
        model, provider_id="anthropic", genai_request_timestamp=when,
    ).total_price
    assert cost.total == expected
    lines = {line.item: line for line in cost.lines}
    assert lines["cache write"].quantity == 1000
    assert lines["cache write (1h)"].quantity == 2000
    assert lines["cache write (1h)"].unit_price > lines["cache write"].unit_price


@pytest.mark.usefixtures("spec")
def test_converted_tools_keep_strict_and_the_other_documented_fields() -> None:
    """``strict`` (inside OpenAI's ``function``, or beside the name in the shorthand) and Anthropic's other Tool
    fields survive the conversion, and the tools validate against the spec's ``Tool``."""
    from computekit.adapters.anthropic import wire_tool

    strict_schema = {**WEATHER["parameters"], "additionalProperties": False}
    openai_shape = {"type": "function", "function": {**WEATHER, "parameters": strict_schema, "strict": True}}
    shorthand = {**WEATHER, "strict": True, "cache_control": {"type": "ephemeral"}, "defer_loading": True,
                 "eager_input_streaming": True, "input_examples": [{"city": "Paris"}]}
    a, b = wire_tool(openai_shape), wire_tool(shorthand)
    assert a == {"name": "get_weather", "description": WEATHER["description"], "input_schema": strict_schema,
                 "strict": True}
    assert b["strict"] is True
    assert (b["cache_control"], b["defer_loading"], b["eager_input_streaming"], b["input_examples"]) == (
        {"type": "ephemeral"}, True, True, [{"city": "Paris"}])
    assert schema_errors("Tool", a) == []
    assert schema_errors("Tool", b) == []
    assert wire_tool({**WEATHER, "type": "custom"})["type"] == "custom"


# ------------------------------------------------------------------------------------------------ server tools

WEB_TOOLS = [{"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
             {"type": "web_fetch_20250910", "name": "web_fetch", "max_uses": 2}]
CODE_TOOLS = [{"type": "code_execution_20250825", "name": "code_execution"},
              {"name": WEATHER["name"], "description": WEATHER["description"], "input_schema": WEATHER["parameters"]}]


@pytest.mark.vcr
@pytest.mark.default_cassette("server_tools.yaml")
async def test_server_tools_are_not_the_callers_tool_calls(mode: str) -> None:
    """Web search, web fetch, bash, text-editor and code execution run at Anthropic: their ``server_tool_use``
    blocks are never the caller's ``tool_calls``, plain or streamed, and each exchange parses the same both ways.
    The web search is billed per call, on a cost line of its own."""
    from _anthropic_stream import assert_same

    from computekit.pricing import PriceBook

    client = client_for(mode)
    ask = "What's the weather in Paris today? Search the web."
    plain = await call(client, "complete", "anthropic:claude-sonnet-4-5", ask, tools=WEB_TOOLS, max_tokens=1024)
    chunks, streamed = await stream(client, "anthropic:claude-sonnet-4-5", ask, tools=WEB_TOOLS, max_tokens=1024)
    assert plain.tool_calls == []
    assert [c for c in chunks if c.tool_calls] == []
    assert plain.finish_reason == "stop"
    assert plain.text == "I'll look that up.It is sunny in Paris today, with a high of 18°C."
    assert_same(plain, streamed)
    for r in (plain, streamed):
        assert r.usage.units == {"web_searches": 1}
        rates = PriceBook().rates(_adapter().price_ref(r.model, r), r.attempts[-1].started_at)
        assert rates is not None
        price, per = rates.extra_units["web_searches"]
        (line,) = [line for line in r.cost.lines if line.item == "web_searches"]
        assert (line.quantity, line.unit_price, line.amount) == (1, price / per, price / per)
        assert r.cost.total == sum(line.amount for line in r.cost.lines)
        assert r.cost.total > genai_cost_tokens_only(r)

    ask = "Write the city to a file, read it back, then get its weather."
    plain = await call(client, "complete", "anthropic:claude-sonnet-4-5", ask, tools=CODE_TOOLS, max_tokens=1024)
    chunks, streamed = await stream(client, "anthropic:claude-sonnet-4-5", ask, tools=CODE_TOOLS, max_tokens=1024)
    await close(client)
    assert [(t.id, t.name, t.parsed_arguments()) for t in plain.tool_calls] == [
        ("toolu_01WeatherAuthored0001", "get_weather", {"city": "Paris"})]
    assert plain.finish_reason == "tool_calls"
    assert {c.tool_calls[0]["index"] for c in chunks if c.tool_calls} == {0}, "one caller tool call, index 0"
    assert_same(plain, streamed)
    servers = [b["name"] for b in streamed.raw["content"] if b["type"] == "server_tool_use"]
    assert servers == ["bash_code_execution", "text_editor_code_execution", "code_execution"]
    assert streamed.raw["content"][4]["input"] == {"code": "print(open('city.txt').read().strip())"}


def genai_cost_tokens_only(result: ck.Completion) -> Decimal:
    """The tokens alone, priced by genai-prices: what the call would cost without its server tool fees."""
    u = result.usage
    return genai_prices.calc_price(
        genai_prices.Usage(input_tokens=u.input_tokens, output_tokens=u.output_tokens), result.raw["model"],
        provider_id="anthropic", genai_request_timestamp=result.attempts[-1].started_at,
    ).total_price


# ------------------------------------------------------------------------------------------------ usage iterations


def _genai(model: str, when: dt.datetime, **tokens: int) -> Decimal:
    return genai_prices.calc_price(genai_prices.Usage(**tokens), model, provider_id="anthropic",
                                   genai_request_timestamp=when).total_price


@pytest.mark.vcr
@pytest.mark.default_cassette("compaction_advisor.yaml")
async def test_compaction_and_advisor_iterations_are_billed_at_their_own_rates(mode: str) -> None:
    """``usage.iterations``: the compaction pass (180,000 tokens in, outside the top-level counts) is billed at
    the answering model's rates and the advisor's turn at the advisor model's, each kind on lines of its own;
    plain and streamed agree."""
    from _anthropic_stream import assert_same

    client = make_client(mode, providers={"anthropic": {
        "api_key": KEY, "headers": {"anthropic-beta": "compact-2026-01-12,advisor-tool-2026-03-01"}}})
    ask = "Which leg of my Paris, Lyon, Turin trip should I book first?"
    options: dict[str, Any] = {
        "tools": [{"type": "advisor_20260301", "name": "advisor", "model": "claude-opus-4-1"}], "max_tokens": 2048,
        "extra_body": {"context_management": {"edits": [{"type": "compact_20260112",
                                                          "trigger": {"type": "input_tokens", "value": 150000}}]}},
    }
    plain = await call(client, "complete", "anthropic:claude-sonnet-4-5", ask, **options)
    _, streamed = await stream(client, "anthropic:claude-sonnet-4-5", ask, **options)
    rows = client.ledger.rows()
    await close(client)
    assert_same(plain, streamed)
    assert plain.tool_calls == []
    for r in (plain, streamed):
        when = r.attempts[-1].started_at
        model = r.response_model
        assert model is not None
        answer = _genai(model, when, input_tokens=23000, output_tokens=1000)
        compaction = _genai(model, when, input_tokens=180000, output_tokens=3500)
        advisor = _genai("claude-opus-4-1", when, input_tokens=15000, output_tokens=600)
        assert r.cost.total == answer + compaction + advisor
        assert r.cost.total > 5 * answer, "the top level alone under-bills the call"
        lines = {line.item: line.quantity for line in r.cost.lines}
        assert lines == {"input": 23000, "output": 1000, "compaction input": 180000, "compaction output": 3500,
                         "advisor input": 15000, "advisor output": 600}
        assert (r.usage.input_tokens, r.usage.output_tokens, r.usage.requests) == (218000, 5100, 1)
    assert [row.cost for row in rows] == [plain.cost.total, streamed.cost.total]


def test_thinking_tokens_are_reasoning_tokens() -> None:
    """``output_tokens_details.thinking_tokens``: the thinking share of ``output_tokens`` (already in it)."""
    usage = _adapter().usage({"input_tokens": 10, "output_tokens": 500,
                              "output_tokens_details": {"thinking_tokens": 420}})
    assert (usage.output_tokens, usage.reasoning_tokens) == (500, 420)
    assert _adapter().usage({"input_tokens": 10, "output_tokens": 5}).reasoning_tokens == 0


def test_a_server_tool_turn_goes_back_with_all_its_blocks() -> None:
    """The code-execution answer (server tool uses and results, then the caller's tool call), plain and streamed:
    appended to the conversation with the tool's result, it is sent back block for block."""
    from _anthropic_stream import assert_same

    from computekit._core import normalise_messages
    from computekit._sse import SSEDecoder
    from computekit.adapters._base import CompleteRequest, HTTPResponse

    inters = yaml.safe_load((HERE / "server_tools.yaml").read_text("utf-8"))["interactions"]
    plain_body, stream_body = inters[2]["response"]["body"]["string"], inters[3]["response"]["body"]["string"]
    a = _adapter()
    req = CompleteRequest(model="claude-sonnet-4-5", messages=[])
    plain = a.parse_complete(req, HTTPResponse(200, {}, plain_body.encode()))
    decoder = a.stream_decoder(req)
    for event in SSEDecoder(1 << 20).feed(stream_body.encode()):
        decoder.feed(event)
    streamed = decoder.result()
    assert_same(plain, streamed)
    blocks = json.loads(plain_body)["content"]
    for r in (plain, streamed):
        (tc,) = r.tool_calls
        messages = normalise_messages(None, [{"role": "user", "content": "go"}, r.message,
                                             {"role": "tool", "tool_call_id": tc.id, "content": "18C"}])
        sent = a.build_complete(CompleteRequest(model="claude-sonnet-4-5", messages=messages)).json["messages"]
        assert sent[1] == {"role": "assistant", "content": blocks}
        assert sent[2] == {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tc.id,
                                                         "content": "18C"}]}
