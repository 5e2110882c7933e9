"""Client and AsyncClient end to end over a mock HTTP transport: results, streams, embeddings, cost, fallback."""

from __future__ import annotations

import inspect
import warnings
from decimal import Decimal
from typing import Any

import httpx
import pytest
from _support import (
    KEY,
    Chunks,
    Server,
    chat_chunks,
    chat_json,
    error,
    make_client,
    ok,
    sse,
    stream_response,
    usage_json,
)

import computekit as ck
from computekit import _background_client, _batch_client, _defaults, _finetune_client, _predictions
from computekit.adapters import _registry
from computekit.adapters._base import Capabilities
from computekit.adapters.openai import OpenAIWire
from computekit.pricing import PriceBook, PriceRef, UnknownPriceWarning

both = pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
MODEL = "gpt-4o-mini"
SNAPSHOT = "gpt-4o-mini-2024-07-18"


def _expected_cost(model: str, usage: ck.Usage, tier: str | None = None) -> Decimal:
    ctx = (("service_tier", tier),) if tier else ()
    rates = PriceBook().rates(PriceRef("openai", model, "openai", ctx))
    assert rates is not None
    total = rates.cost(usage).total
    assert total is not None
    return total


async def _complete(client: Any, is_async: bool, *args: Any, **kwargs: Any) -> ck.Completion:
    if is_async:
        return await client.complete(*args, **kwargs)
    return client.complete(*args, **kwargs)


async def _embed(client: Any, is_async: bool, *args: Any, **kwargs: Any) -> ck.Embeddings:
    if is_async:
        return await client.embed(*args, **kwargs)
    return client.embed(*args, **kwargs)


async def _stream(client: Any, is_async: bool, *args: Any, **kwargs: Any) -> tuple[list[ck.Chunk], Any]:
    chunks: list[ck.Chunk] = []
    if is_async:
        async with client.stream(*args, **kwargs) as s:
            async for c in s:
                chunks.append(c)
    else:
        with client.stream(*args, **kwargs) as s:
            for c in s:
                chunks.append(c)
    return chunks, s


async def _drain(client: Any, is_async: bool, got: list[str], streams: list[Any], *args: Any) -> None:
    """Read a stream, keeping what arrived (and the stream) even when it fails part-way."""
    if is_async:
        async with client.stream(*args) as s:
            streams.append(s)
            async for c in s:
                got.append(c.text)
    else:
        with client.stream(*args) as s:
            streams.append(s)
            for c in s:
                got.append(c.text)


def _facts(r: ck.Completion | ck.Embeddings) -> dict[str, Any]:
    d = r.model_dump(exclude={"attempts"})
    d["attempts"] = [(a.provider, a.model, a.outcome, a.status, a.error_type, a.cost, a.request_id)
                     for a in r.attempts]
    return d


# ------------------------------------------------------------------------------------------------ complete


@both
async def test_complete(is_async: bool) -> None:
    server = Server([ok(chat_json("Hello there", usage=usage_json(12, 5, cached=4)))])
    client = make_client(server, is_async=is_async)
    r = await _complete(client, is_async, f"openai:{MODEL}", "Say hello", max_tokens=20, temperature=0.5,
                        tags={"team": "search"})
    # What was sent.
    seen = server.seen[0]
    assert seen.method == "POST"
    assert seen.url == "https://api.openai.com/v1/chat/completions"
    assert seen.auth == f"Bearer {KEY}"
    assert seen.body == {"model": MODEL, "max_tokens": 20, "temperature": 0.5,
                         "messages": [{"role": "user", "content": "Say hello"}]}
    # What came back.
    assert isinstance(r, ck.Completion)
    assert r.text == "Hello there"
    assert r.message == ck.Message(role="assistant", content="Hello there")
    assert (r.provider, r.model, r.target) == ("openai", MODEL, f"openai:{MODEL}")
    assert r.response_model == SNAPSHOT
    assert r.finish_reason == "stop"
    assert r.id == "chatcmpl-123"
    assert r.request_id == "req_ok"
    assert r.usage == ck.Usage(input_tokens=12, output_tokens=5, cached_input_tokens=4)
    assert r.raw["choices"][0]["message"]["content"] == "Hello there"
    # Cost: exact, from the price table, with its source.
    assert r.cost.total == _expected_cost(SNAPSHOT, r.usage)
    assert isinstance(r.cost.total, Decimal)
    assert r.cost.currency == "USD"
    assert [line.item for line in r.cost.lines] == ["input", "cached input", "output"]
    assert sum(line.amount for line in r.cost.lines) == r.cost.total
    assert r.cost.price_source is not None
    assert r.cost.price_source.table == "genai-prices"
    assert r.cost.estimated is False
    # One attempt, in the result and in the ledger.
    assert len(r.attempts) == 1
    a = r.attempts[0]
    assert (a.provider, a.model, a.outcome, a.cost, a.request_id) == ("openai", MODEL, "success", r.cost, "req_ok")
    assert a.latency_s >= 0
    rows = client.ledger.rows()
    assert len(rows) == 1
    row = rows[0]
    assert (row.verb, row.provider, row.model, row.outcome) == ("complete", "openai", MODEL, "success")
    assert (row.input_tokens, row.output_tokens, row.cached_input_tokens) == (12, 5, 4)
    assert row.cost == r.cost.total
    assert row.tags == {"team": "search"}
    assert row.request_id == "req_ok"
    assert row.price_source == str(r.cost.price_source)


async def test_complete_sync_async_parity() -> None:
    results = []
    for is_async in (False, True):
        server = Server([error(503), ok(chat_json("same", usage=usage_json(30, 7)))])
        client = make_client(server, is_async=is_async)
        results.append(await _complete(client, is_async, f"openai:{MODEL}", "hi", seed=3))
        assert server.seen[-1].body["seed"] == 3
    assert _facts(results[0]) == _facts(results[1])


@both
async def test_messages_and_prompt(is_async: bool) -> None:
    server = Server([ok(chat_json())])
    client = make_client(server, is_async=is_async)
    msgs = [ck.Message(role="system", content="Be brief."), {"role": "user", "content": "first"}]
    await _complete(client, is_async, f"openai:{MODEL}", "second", messages=msgs)
    assert server.seen[0].body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "first"},
        {"role": "user", "content": "second"},
    ]


@both
async def test_options_and_extra_body_are_sent(is_async: bool) -> None:
    server = Server([ok(chat_json())])
    client = make_client(server, is_async=is_async)
    await _complete(client, is_async, f"openai:{MODEL}", "hi", top_p=0.9, stop=["\n"], user="u1",
                    response_format={"type": "json_object"}, extra_body={"logprobs": True})
    body = server.seen[0].body
    assert body["top_p"] == 0.9
    assert body["stop"] == ["\n"]
    assert body["user"] == "u1"
    assert body["response_format"] == {"type": "json_object"}
    assert body["logprobs"] is True
    assert "temperature" not in body  # not given: not sent


@both
async def test_tool_calls(is_async: bool) -> None:
    calls = [{"id": "call_1", "type": "function",
              "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]
    server = Server([ok(chat_json("", tool_calls=calls, finish_reason="tool_calls"))])
    client = make_client(server, is_async=is_async)
    tools = [{"name": "get_weather", "description": "Weather", "parameters": {"type": "object"}}]
    r = await _complete(client, is_async, f"openai:{MODEL}", "weather?", tools=tools, tool_choice="auto")
    assert server.seen[0].body["tools"] == [{"type": "function", "function": tools[0]}]
    assert server.seen[0].body["tool_choice"] == "auto"
    assert r.finish_reason == "tool_calls"
    assert r.text == ""
    assert r.tool_calls == [ck.ToolCall(id="call_1", name="get_weather", arguments='{"city": "Paris"}')]
    assert r.tool_calls[0].parsed_arguments() == {"city": "Paris"}
    assert r.message.tool_calls == r.tool_calls
    # The assistant message goes back into the conversation as it is.
    server.replies = [ok(chat_json("It is sunny."))]
    follow = [{"role": "user", "content": "weather?"}, r.message,
              {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 21}'}]
    r2 = await _complete(client, is_async, f"openai:{MODEL}", messages=follow, tools=tools)
    sent = server.seen[-1].body["messages"]
    assert sent[1]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    assert sent[2] == {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 21}'}
    assert r2.text == "It is sunny."


@both
async def test_text_completion_endpoint(is_async: bool) -> None:
    body = {"id": "cmpl-1", "object": "text_completion", "model": "gpt-3.5-turbo-instruct",
            "choices": [{"index": 0, "text": " a poem", "finish_reason": "length"}],
            "usage": {"prompt_tokens": 6, "completion_tokens": 3, "total_tokens": 9}}
    server = Server([ok(body)])
    client = make_client(server, is_async=is_async)
    r = await _complete(client, is_async, "openai:gpt-3.5-turbo-instruct", "Write", max_tokens=3)
    seen = server.seen[0]
    assert seen.url.endswith("/completions")
    assert not seen.url.endswith("/chat/completions")
    assert seen.body["prompt"] == "Write"
    assert "messages" not in seen.body
    assert r.text == " a poem"
    assert r.finish_reason == "length"
    assert r.usage.input_tokens == 6
    assert r.cost.total == _expected_cost("gpt-3.5-turbo-instruct", r.usage)


@both
async def test_service_tier_priority_costs_more(is_async: bool) -> None:
    usage = usage_json(1000, 500)
    server = Server([ok(chat_json(usage=usage, service_tier="priority")), ok(chat_json(usage=usage))])
    client = make_client(server, is_async=is_async)
    fast = await _complete(client, is_async, f"openai:{MODEL}", "hi", service_tier="priority")
    normal = await _complete(client, is_async, f"openai:{MODEL}", "hi")
    assert server.seen[0].body["service_tier"] == "priority"
    assert fast.service_tier == "priority"
    assert normal.service_tier == "default"
    assert fast.usage == normal.usage
    assert fast.cost.total == _expected_cost(SNAPSHOT, fast.usage, "priority")
    assert normal.cost.total == _expected_cost(SNAPSHOT, normal.usage)
    assert fast.cost.total is not None
    assert normal.cost.total is not None
    assert fast.cost.total > normal.cost.total


@both
async def test_unknown_model_is_unpriced_and_warns_once_per_model(is_async: bool) -> None:
    server = Server([
        ok(chat_json(model="mystery-model-1")), ok(chat_json(model="mystery-model-1")),
        ok(chat_json(model="mystery-model-2")),
    ])
    client = make_client(server, is_async=is_async)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r1 = await _complete(client, is_async, "openai:mystery-model-1", "hi")
        r2 = await _complete(client, is_async, "openai:mystery-model-1", "hi")
        r3 = await _complete(client, is_async, "openai:mystery-model-2", "hi")
    ours = [w for w in caught if issubclass(w.category, UnknownPriceWarning)]
    assert len(ours) == 2
    assert "openai:mystery-model-1" in str(ours[0].message)
    assert "openai:mystery-model-2" in str(ours[1].message)
    for r in (r1, r2, r3):
        assert r.cost.total is None
        assert r.cost.reason
        assert r.usage.input_tokens == 12  # usage is still reported
    rows = client.ledger.rows()
    assert [row.cost for row in rows] == [None, None, None]
    assert client.ledger.report().unpriced == 3


@both
async def test_no_usage_reported_is_unpriced_not_free(is_async: bool) -> None:
    body = chat_json()
    del body["usage"]
    client = make_client(Server([ok(body)]), is_async=is_async)
    r = await _complete(client, is_async, f"openai:{MODEL}", "hi")
    assert r.cost.total is None
    assert "usage" in (r.cost.reason or "")


# ------------------------------------------------------------------------------------------------ fallback


@both
async def test_fallback_to_the_next_target_after_retries(is_async: bool) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "api.openai.com":
            return error(500)
        return ok(chat_json("from local", model="llama3"))

    server = Server([handler])
    providers = {"openai": {"api_key": KEY},
                 "local": {"adapter": "openai-compatible", "base_url": "https://local.example/v1",
                           "api_key": "sk-local-1234567890"}}
    client = make_client(server, is_async=is_async, providers=providers, retry={"max_retries": 2},
                         prices={"local:llama3": {"input_mtok": "1", "output_mtok": "2"}})
    r = await _complete(client, is_async, [f"openai:{MODEL}", "local:llama3"], "hi")
    assert r.text == "from local"
    assert (r.provider, r.model) == ("local", "llama3")
    assert [(a.target, a.outcome) for a in r.attempts] == [
        (f"openai:{MODEL}", "error"), (f"openai:{MODEL}", "error"), (f"openai:{MODEL}", "error"),
        ("local:llama3", "success"),
    ]
    assert server.hits == 4
    assert server.seen[-1].auth == "Bearer sk-local-1234567890"  # each target gets its own key
    assert r.cost.total == Decimal(12) * 1 / 1_000_000 + Decimal(5) * 2 / 1_000_000
    assert r.cost.price_source is not None
    assert r.cost.price_source.table == "config"
    rows = client.ledger.rows()
    assert [row.provider for row in rows] == ["openai", "openai", "openai", "local"]


@both
async def test_bad_request_does_not_fall_back(is_async: bool) -> None:
    server = Server([error(400, "bad param", type_="invalid_request_error"), ok(chat_json())])
    client = make_client(server, is_async=is_async)
    with pytest.raises(ck.BadRequestError):
        await _complete(client, is_async, [f"openai:{MODEL}", "openai:gpt-4o"], "hi")
    assert server.hits == 1
    assert len(client.ledger.rows()) == 1


@both
async def test_route_from_config(is_async: bool) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        import json

        model = json.loads(request.content)["model"]
        return error(429) if model == "gpt-4o" else ok(chat_json(model=model))

    server = Server([handler])
    client = make_client(server, is_async=is_async, retry={"max_retries": 0},
                         routes={"chat": {"targets": ["openai:gpt-4o", f"openai:{MODEL}"]}})
    r = await _complete(client, is_async, "chat", "hi")
    assert r.model == MODEL
    assert [a.model for a in r.attempts] == ["gpt-4o", MODEL]
    assert r.attempts[0].error_type == "RateLimitError"


@both
async def test_all_targets_fail_raises_one_grouped_error(is_async: bool) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        import json

        return error(503) if json.loads(request.content)["model"] == "gpt-4o" else error(429, "slow")

    client = make_client(Server([handler]), is_async=is_async, retry={"max_retries": 0})
    with pytest.raises(ck.AllTargetsFailedError) as ei:
        await _complete(client, is_async, ["openai:gpt-4o", f"openai:{MODEL}"], "hi")
    assert [type(e) for e in ei.value.exceptions] == [ck.ServerError, ck.RateLimitError]
    assert [(a.model, a.error_type) for a in ei.value.attempts] == [
        ("gpt-4o", "ServerError"), (MODEL, "RateLimitError")]
    assert isinstance(ei.value, ck.ComputeKitError)
    assert [row.error_type for row in client.ledger.rows()] == ["ServerError", "RateLimitError"]


# ------------------------------------------------------------------------------------------------ embed


EMBED_BODY = {
    "object": "list",
    "data": [
        {"object": "embedding", "index": 1, "embedding": [0.4, 0.5, 0.6]},
        {"object": "embedding", "index": 0, "embedding": [0.1, 0.2, 0.3]},
    ],
    "model": "text-embedding-3-small",
    "usage": {"prompt_tokens": 4, "total_tokens": 4},
}


@both
async def test_embed(is_async: bool) -> None:
    server = Server([ok(EMBED_BODY)])
    client = make_client(server, is_async=is_async)
    e = await _embed(client, is_async, "openai:text-embedding-3-small", ["a", "b"], dimensions=3)
    seen = server.seen[0]
    assert seen.url == "https://api.openai.com/v1/embeddings"
    assert seen.body == {"model": "text-embedding-3-small", "input": ["a", "b"], "encoding_format": "float",
                         "dimensions": 3}
    assert e.vectors == [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]]  # in input order
    assert e.dimensions == 3
    assert e.usage.input_tokens == 4
    rates = PriceBook().rates(PriceRef("openai", "text-embedding-3-small", "openai"))
    assert rates is not None
    assert e.cost.total == rates.cost(e.usage).total
    assert e.cost.total is not None
    assert e.cost.total > 0
    assert [row.verb for row in client.ledger.rows()] == ["embed"]


async def test_embed_sync_async_parity() -> None:
    results = []
    for is_async in (False, True):
        client = make_client(Server([ok(EMBED_BODY)]), is_async=is_async)
        results.append(await _embed(client, is_async, "openai:text-embedding-3-small", "a"))
    assert _facts(results[0]) == _facts(results[1])


@both
async def test_embed_single_string_and_bad_inputs(is_async: bool) -> None:
    server = Server([ok(EMBED_BODY)])
    client = make_client(server, is_async=is_async)
    await _embed(client, is_async, "openai:text-embedding-3-small", "just one")
    assert server.seen[0].body["input"] == ["just one"]
    for bad in ([], [1, 2], ["ok", None]):
        with pytest.raises(ck.InvalidRequestError):
            await _embed(client, is_async, "openai:text-embedding-3-small", bad)
    assert server.hits == 1


# ------------------------------------------------------------------------------------------------ stream


@both
async def test_stream_with_usage(is_async: bool) -> None:
    body = sse(*chat_chunks(["Hel", "lo", " world"], usage=usage_json(9, 3)))
    server = Server([stream_response(body, split=5)])
    client = make_client(server, is_async=is_async)
    chunks, s = await _stream(client, is_async, f"openai:{MODEL}", "hi", tags={"k": "v"})
    assert server.seen[0].body["stream"] is True
    assert server.seen[0].body["stream_options"] == {"include_usage": True}
    assert "".join(c.text for c in chunks) == "Hello world"
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["stop"]
    assert chunks[-1].usage == ck.Usage(input_tokens=9, output_tokens=3)
    r = s.result
    assert r.text == "Hello world"
    assert r.finish_reason == "stop"
    assert r.usage == ck.Usage(input_tokens=9, output_tokens=3)
    assert r.response_model == SNAPSHOT
    assert r.cost.total == _expected_cost(SNAPSHOT, r.usage)
    assert r.cost.total is not None
    assert r.cost.total > 0
    assert [a.outcome for a in r.attempts] == ["success"]
    assert s.attempts == r.attempts
    rows = client.ledger.rows()
    assert [(row.verb, row.outcome, row.cost, row.tags) for row in rows] == [
        ("stream", "success", r.cost.total, {"k": "v"})]


async def test_stream_sync_async_parity() -> None:
    out = []
    for is_async in (False, True):
        body = sse(*chat_chunks(["a", "b", "c"], usage=usage_json(3, 3)))
        client = make_client(Server([stream_response(body, split=3)]), is_async=is_async)
        chunks, s = await _stream(client, is_async, f"openai:{MODEL}", "hi")
        out.append(([c.model_dump() for c in chunks], _facts(s.result)))
    assert out[0] == out[1]


@both
async def test_stream_without_usage_is_unpriced(is_async: bool) -> None:
    body = sse(*chat_chunks(["x"]))
    client = make_client(Server([stream_response(body)]), is_async=is_async)
    _, s = await _stream(client, is_async, f"openai:{MODEL}", "hi")
    assert s.result.text == "x"
    assert s.result.cost.total is None
    assert s.result.cost.reason


@both
async def test_stream_tool_calls(is_async: bool) -> None:
    base = {"id": "c", "object": "chat.completion.chunk", "model": SNAPSHOT}
    events = [
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [
            {"index": 0, "id": "call_9", "type": "function", "function": {"name": "lookup", "arguments": ""}}]}}]},
        *({**base, "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": part}}]}}]}
          for part in ('{"q": ', '"x"}')),
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
    ]
    client = make_client(Server([stream_response(sse(*events))]), is_async=is_async)
    chunks, s = await _stream(client, is_async, f"openai:{MODEL}", "hi", tools=[{"name": "lookup", "parameters": {}}])
    assert chunks[0].tool_calls == [{"index": 0, "id": "call_9", "name": "lookup", "arguments": ""}]
    assert s.result.tool_calls == [ck.ToolCall(id="call_9", name="lookup", arguments='{"q": "x"}')]
    assert s.result.tool_calls[0].parsed_arguments() == {"q": "x"}
    assert s.result.finish_reason == "tool_calls"


@both
async def test_stream_error_event_mid_stream(is_async: bool) -> None:
    events = [*chat_chunks(["partial"]), {"error": {"message": "model overloaded", "type": "overloaded_error"}}]
    server = Server([stream_response(sse(*events, done=False))])
    client = make_client(server, is_async=is_async, providers={"openai": {"api_key": KEY}},
                         routes={"r": {"targets": [f"openai:{MODEL}", "openai:gpt-4o"]}})
    got: list[str] = []
    streams: list[Any] = []
    with pytest.raises(ck.OverloadedError) as info:
        await _drain(client, is_async, got, streams, "r", "hi")
    [s] = streams
    assert "model overloaded" in str(info.value)
    assert "partial" in got
    assert server.hits == 1  # text already reached the caller: no retry, no fallback
    assert [(a.outcome, a.error_type) for a in s.attempts] == [("error", "OverloadedError")]
    with pytest.raises(RuntimeError):
        _ = s.result


@both
@pytest.mark.parametrize("cut", ["before_done", "mid_line"])
async def test_stream_cut_short(cut: str, is_async: bool) -> None:
    body = sse(*chat_chunks(["a", "b"]), done=False)
    if cut == "mid_line":
        body += b'data: {"id": "c", "choi'
    client = make_client(Server([stream_response(body)]), is_async=is_async)
    with pytest.raises(ck.APIConnectionError, match="ended before"):
        await _stream(client, is_async, f"openai:{MODEL}", "hi")
    rows = client.ledger.rows()
    assert [(row.outcome, row.error_type) for row in rows] == [("error", "APIConnectionError")]


@both
async def test_stream_connection_breaks_mid_body(is_async: bool) -> None:
    body = sse(*chat_chunks(["a", "b"]))
    resp = httpx.Response(200, headers={"content-type": "text/event-stream"},
                          stream=Chunks([body[:40]], fail=httpx.ReadError("connection reset")))
    client = make_client(Server([resp]), is_async=is_async)
    with pytest.raises(ck.APIConnectionError):
        await _stream(client, is_async, f"openai:{MODEL}", "hi")


@both
async def test_stream_retries_and_falls_back_before_the_first_chunk(is_async: bool) -> None:
    import json

    def handler(request: httpx.Request) -> httpx.Response:
        if json.loads(request.content)["model"] == "gpt-4o":
            return error(503)
        return stream_response(sse(*chat_chunks(["ok"], usage=usage_json(2, 1))))

    server = Server([handler])
    client = make_client(server, is_async=is_async, retry={"max_retries": 1})
    chunks, s = await _stream(client, is_async, ["openai:gpt-4o", f"openai:{MODEL}"], "hi")
    assert "".join(c.text for c in chunks) == "ok"
    assert [(a.model, a.outcome) for a in s.result.attempts] == [
        ("gpt-4o", "error"), ("gpt-4o", "error"), (MODEL, "success")]
    assert server.hits == 3


@both
async def test_stream_too_large_event(is_async: bool) -> None:
    body = b"data: " + b"x" * 5000 + b"\n\n"
    client = make_client(Server([stream_response(body, split=100)]), is_async=is_async,
                         limits={"stream_event_bytes": 1000})
    with pytest.raises(ck.ResponseTooLargeError, match="larger than") as info:
        await _stream(client, is_async, f"openai:{MODEL}", "hi")
    assert info.value.limit == 1000


def test_stream_result_before_the_end_raises() -> None:
    client = make_client(Server([stream_response(sse(*chat_chunks(["a", "b"])))]))
    with client.stream(f"openai:{MODEL}", "hi") as s:
        with pytest.raises(RuntimeError):
            _ = s.result
        first = next(iter(s))
        assert first.text == ""  # the role chunk
        with pytest.raises(RuntimeError):
            _ = s.result


def test_stream_sends_nothing_until_iterated() -> None:
    server = Server([stream_response(sse(*chat_chunks(["a"])))])
    client = make_client(server)
    s = client.stream(f"openai:{MODEL}", "hi")
    assert server.hits == 0
    assert [c.text for c in s] == ["", "a", ""]
    assert server.hits == 1


# ------------------------------------------------------------------------------------------------ invalid requests


@both
@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"messages": []},
        {"messages": "hello"},
        {"messages": [{"role": "robot", "content": "x"}]},
        {"messages": [{"content": "no role"}]},
        {"messages": ["just a string"]},
        {"prompt": 42},
    ],
)
async def test_invalid_messages(kwargs: dict[str, Any], is_async: bool) -> None:
    server = Server([ok(chat_json())])
    client = make_client(server, is_async=is_async)
    prompt = kwargs.pop("prompt", ck.NOT_GIVEN)
    with pytest.raises(ck.InvalidRequestError):
        await _complete(client, is_async, f"openai:{MODEL}", prompt, **kwargs)
    assert server.hits == 0


# (A bare name that one provider serves, "gpt-4o-mini", resolves: see test_model_names.)
@both
@pytest.mark.parametrize("model", ["no-such-model-zzz", "openai:", ":gpt-4o", "", []])
async def test_invalid_model_ids(model: Any, is_async: bool) -> None:
    server = Server([ok(chat_json())])
    client = make_client(server, is_async=is_async)
    with pytest.raises(ck.InvalidRequestError):
        await _complete(client, is_async, model, "hi")
    with pytest.raises(ck.InvalidRequestError):
        client.stream(model, "hi")  # checked before anything is sent, sync and async alike
    assert server.hits == 0


class _CompleteOnly(OpenAIWire):
    """A provider that can only complete (no streaming, tools or embeddings)."""

    name = "complete-only"
    capabilities = Capabilities(complete=True)
    default_base_url = "https://plain.example/v1"
    requires_key = False


@both
async def test_unsupported_capabilities_fail_before_http(is_async: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(_registry._loaded, "plain", _CompleteOnly)
    server = Server([ok(chat_json(model="m"))])
    client = make_client(server, is_async=is_async, providers={}, prices={"plain:m": {"input_mtok": "1"}})
    with pytest.raises(ck.UnsupportedCapabilityError) as info:
        client.stream("plain:m", "hi")
    assert (info.value.provider, info.value.capability) == ("plain", "stream")
    with pytest.raises(ck.UnsupportedCapabilityError, match="tools"):
        await _complete(client, is_async, "plain:m", "hi", tools=[{"name": "t", "parameters": {}}])
    with pytest.raises(ck.UnsupportedCapabilityError, match="embed"):
        await _embed(client, is_async, "plain:m", "hi")
    assert server.hits == 0
    r = await _complete(client, is_async, "plain:m", "hi")  # what it can do still works
    assert r.provider == "plain"
    assert server.seen[0].auth is None


# ------------------------------------------------------------------------------------------------ module-level verbs


def test_module_level_verbs_use_the_default_client(monkeypatch: pytest.MonkeyPatch) -> None:
    server = Server([ok(chat_json("via default")), ok(EMBED_BODY), stream_response(sse(*chat_chunks(["s"])))])
    client = make_client(server)
    monkeypatch.setattr(_defaults, "_sync", client)
    r = ck.complete(f"openai:{MODEL}", "hi", max_tokens=5)
    assert r.text == "via default"
    assert server.seen[0].body["messages"] == [{"role": "user", "content": "hi"}]
    assert server.seen[0].body["max_tokens"] == 5
    e = ck.embed("openai:text-embedding-3-small", ["a", "b"])
    assert len(e.vectors) == 2
    with ck.stream(f"openai:{MODEL}", "hi") as s:
        assert "".join(c.text for c in s) == "s"
    assert [row.verb for row in client.ledger.rows()] == ["complete", "embed", "stream"]


async def test_module_level_async_verbs_use_the_default_async_client(monkeypatch: pytest.MonkeyPatch) -> None:
    server = Server([ok(chat_json("async default")), ok(EMBED_BODY), stream_response(sse(*chat_chunks(["s"])))])
    client = make_client(server, is_async=True)
    monkeypatch.setattr(_defaults, "_async", client)
    r = await ck.acomplete(f"openai:{MODEL}", messages=[{"role": "user", "content": "hi"}])
    assert r.text == "async default"
    e = await ck.aembed("openai:text-embedding-3-small", "a")
    assert e.dimensions == 3
    async with ck.astream(f"openai:{MODEL}", "hi") as s:
        assert "".join([c.text async for c in s]) == "s"
    assert server.hits == 3


def test_default_client_is_created_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_defaults, "_sync", None)
    monkeypatch.setattr(_defaults, "_async", None)
    c1 = _defaults.default_client()
    assert isinstance(c1, ck.Client)
    assert _defaults.default_client() is c1
    a1 = _defaults.default_async_client()
    assert isinstance(a1, ck.AsyncClient)
    assert _defaults.default_async_client() is a1


# ------------------------------------------------------------------------------------------------ lifecycle


def test_client_context_manager_closes_the_pool() -> None:
    http = httpx.Client(transport=httpx.MockTransport(Server([ok(chat_json())])))
    with ck.Client(None, providers={"openai": {"api_key": KEY}}, http_client=http) as c:
        c.complete(f"openai:{MODEL}", "hi")
    assert http.is_closed


async def test_async_client_context_manager_closes_the_pool() -> None:
    http = httpx.AsyncClient(transport=httpx.MockTransport(Server([ok(chat_json())])))
    async with ck.AsyncClient(None, providers={"openai": {"api_key": KEY}}, http_client=http) as c:
        await c.complete(f"openai:{MODEL}", "hi")
    assert http.is_closed


def test_ledger_none_records_nothing(tmp_path: Any) -> None:
    client = make_client(Server([ok(chat_json())]), ledger="none")
    client.complete(f"openai:{MODEL}", "hi")
    assert client.ledger.rows() == []
    assert client.ledger.report().rows == []
    assert not (tmp_path / "ledger.db").exists()


def test_ledger_object_is_used() -> None:
    from computekit.ledger import SQLiteLedger

    ledger = SQLiteLedger(":memory:")
    client = make_client(Server([ok(chat_json())]), ledger=ledger)
    client.complete(f"openai:{MODEL}", "hi")
    assert client.ledger is ledger
    assert len(ledger.rows()) == 1


def test_repr_shows_no_key() -> None:
    client = make_client(Server([ok(chat_json())]))
    assert repr(client).startswith("Client(providers=['openai']")
    assert KEY not in repr(client)


@both
async def test_profile_capabilities_are_checked_before_http(is_async: bool) -> None:
    server = Server([ok(EMBED_BODY)])
    client = make_client(server, is_async=is_async, providers={"groq": {"api_key": "gsk-test-1234567890"}})
    with pytest.raises(ck.UnsupportedCapabilityError) as info:
        await _embed(client, is_async, "groq:some-embedder", "hi")
    assert (info.value.provider, info.value.capability) == ("groq", "embed")
    assert server.hits == 0


@both
async def test_target_without_a_key_is_skipped_when_another_remains(
    is_async: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TOGETHER_API_KEY", raising=False)
    server = Server([ok(chat_json("from openai"))])
    client = make_client(server, is_async=is_async)
    r = await _complete(client, is_async, ["together:meta-llama/Llama-3-8b", f"openai:{MODEL}"], "hi")
    assert r.provider == "openai"
    assert server.hits == 1
    assert server.seen[0].url.startswith("https://api.openai.com/")
    # ... but when it is the last one left, the missing key is the error.
    with pytest.raises(ck.MissingAPIKeyError, match="TOGETHER_API_KEY"):
        await _complete(client, is_async, "together:m", "hi")
    assert server.hits == 1


@both
async def test_stream_closed_early_is_recorded_as_canceled(is_async: bool) -> None:
    """A stream the caller stops reading was still billed: its attempt reaches the ledger, unpriced."""
    body = sse(*chat_chunks(["a", "b", "c"], usage=usage_json(3, 3)))
    client = make_client(Server([stream_response(body, split=1)]), is_async=is_async)
    if is_async:
        async with client.stream(f"openai:{MODEL}", "hi") as s:
            async for _ in s:
                break
    else:
        with client.stream(f"openai:{MODEL}", "hi") as s:
            for _ in s:
                break
    assert [a.outcome for a in s.attempts] == ["canceled"]
    assert s.attempts[0].cost is not None
    assert s.attempts[0].cost.total is None
    rows = client.ledger.rows()
    assert [(r.verb, r.outcome, r.cost) for r in rows] == [("stream", "canceled", None)]
    assert client.ledger.report().unpriced == 1
    with pytest.raises(RuntimeError):
        _ = s.result


@pytest.mark.parametrize(("sync_cls", "async_cls"), [
    (ck.Client, ck.AsyncClient),
    (_predictions.Predictions, _predictions.AsyncPredictions),
    (_finetune_client.FineTunes, _finetune_client.AsyncFineTunes),
    (_background_client.BackgroundResponses, _background_client.AsyncBackgroundResponses),
    (_batch_client.Batches, _batch_client.AsyncBatches),
], ids=["client", "predictions", "finetunes", "background", "batches"])
def test_sync_and_async_have_the_same_methods_and_arguments(sync_cls: type, async_cls: type) -> None:
    def public(cls: type) -> dict[str, Any]:
        return {n: getattr(cls, n) for n in dir(cls) if not n.startswith("_") and callable(getattr(cls, n))}

    sync, asy = public(sync_cls), public(async_cls)
    sync.pop("close", None)
    asy.pop("aclose", None)  # the one pair named apart: ``close`` / ``await aclose``
    assert sorted(sync) == sorted(asy)
    for name, fn in sync.items():
        params = list(inspect.signature(fn).parameters.values())
        assert list(inspect.signature(asy[name]).parameters.values()) == params, name
        if asy[name] is fn:
            continue  # shared by both (``budget_status`` reads the ledger): nothing to await
        # every async method that does I/O is awaited; a stream and a batch's results are iterated with
        # ``async for``
        iterated = name in ("stream", "results")
        assert inspect.iscoroutinefunction(asy[name]) == (not iterated), name
        assert inspect.isasyncgenfunction(asy[name]) == (name == "results"), name
