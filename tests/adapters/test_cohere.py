"""The ``cohere`` provider through the public client, sync and async, replayed from cassettes/test_cohere/.

The cassettes are AUTHORED from Cohere's API reference (v2 chat, streaming, embed, errors): Cohere's API spec is
not redistributable, so their bodies are validated here against the official ``cohere`` SDK's own pydantic types
instead (requests and responses, every SSE event). With ``CO_API_KEY`` set,
``pytest --record-mode=rewrite tests/adapters/test_cohere.py`` replaces them with real traffic. Requests are
matched on their JSON body too, so each cassette also pins down what computekit sends.

Costs are checked against ``genai_prices.calc_price`` on the *billed* units of the response.
"""

from __future__ import annotations

import json
import re
import sys
import warnings
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
from pydantic import SecretStr, TypeAdapter, ValidationError

import computekit as ck
from computekit.adapters._base import (
    CompleteRequest,
    EmbedRequest,
    HTTPResponse,
    ProviderSettings,
    RerankRequest,
    SSEEvent,
)
from computekit.adapters.cohere import CohereAdapter, to_sdk
from computekit.pricing import PriceBook
from computekit.pricing._book import UnknownPriceWarning

KEY = real_key("CO_API_KEY", "co-test-placeholder")
MODEL = "command-a-03-2025"


def client_for(mode: str, **kwargs: Any) -> ck.Client | ck.AsyncClient:
    return make_client(mode, providers={"cohere": {"api_key": KEY}}, **kwargs)


def genai_cost(result: ck.Completion | ck.Embeddings, billed: dict[str, Any]) -> Decimal:
    """What genai-prices charges for the billed units in the raw response, at the time of the call."""
    usage = genai_prices.Usage(input_tokens=billed["input_tokens"], output_tokens=billed.get("output_tokens"))
    return genai_prices.calc_price(
        usage, result.model, provider_id="cohere", genai_request_timestamp=result.attempts[-1].started_at
    ).total_price


def check_success(result: ck.Completion | ck.Embeddings, billed: dict[str, Any]) -> None:
    assert result.provider == "cohere"
    assert result.cost.total is not None, result.cost.reason
    assert result.cost.total == genai_cost(result, billed)
    assert result.cost.price_source is not None
    assert result.cost.price_source.table == "genai-prices"
    assert result.attempts[-1].outcome == "success"
    assert result.attempts[-1].cost == result.cost
    assert result.request_id is not None
    assert re.fullmatch(r"[0-9a-f]{32}", result.request_id)  # Cohere's x-debug-trace-id


# ------------------------------------------------------------------------------------------------ complete


@pytest.mark.vcr
@pytest.mark.default_cassette("chat.yaml")
async def test_chat(mode: str) -> None:
    client = client_for(mode)
    r = await call(client, "complete", f"cohere:{MODEL}", "Say this is a test", max_tokens=20)
    await close(client)
    assert r.text == "This is a test."
    assert r.model == MODEL
    assert r.finish_reason == "stop"
    assert r.message.role == "assistant"
    assert r.message.content == r.text
    # Billed units, not the processed tokens (496/7) that Cohere also reports.
    assert (r.usage.input_tokens, r.usage.output_tokens) == (5, 5)
    assert r.raw["usage"]["tokens"] == {"input_tokens": 496, "output_tokens": 7}
    check_success(r, r.raw["usage"]["billed_units"])
    rows = client.ledger.rows()
    assert [(row.provider, row.outcome, row.cost) for row in rows] == [("cohere", "success", r.cost.total)]


@pytest.mark.vcr
@pytest.mark.default_cassette("tools.yaml")
async def test_tool_call_round_trip(mode: str) -> None:
    client = client_for(mode)
    messages: list[Any] = [{"role": "user", "content": "What's the weather in Paris?"}]
    # The shorthand tool shape goes out as Cohere's {"type": "function", "function": {...}}.
    first = await call(client, "complete", f"cohere:{MODEL}", messages=messages, tools=[WEATHER])
    assert first.finish_reason == "tool_calls"
    assert first.text == ""
    (tc,) = first.tool_calls
    assert (tc.name, tc.parsed_arguments()) == ("get_weather", {"city": "Paris"})
    assert first.raw["message"]["tool_plan"] == "I will look up the weather in Paris."
    check_success(first, first.raw["usage"]["billed_units"])

    # Cohere's documented round trip: the assistant turn with its tool_plan, then the tool's result.
    messages += [
        {"role": "assistant", "tool_plan": first.raw["message"]["tool_plan"], "tool_calls": first.tool_calls},
        {"role": "tool", "tool_call_id": tc.id, "content": "18C and sunny"},
    ]
    second = await call(client, "complete", f"cohere:{MODEL}", messages=messages,
                        tools=[{"type": "function", "function": WEATHER}])
    await close(client)
    assert second.finish_reason == "stop"
    assert second.text == "It is 18°C and sunny in Paris."
    assert second.tool_calls == []
    (cite,) = second.raw["message"]["citations"]
    assert second.text[cite["start"] : cite["end"]] == cite["text"]
    check_success(second, second.raw["usage"]["billed_units"])


@pytest.mark.vcr
@pytest.mark.default_cassette("stream.yaml")
async def test_stream_with_usage(mode: str) -> None:
    client = client_for(mode)
    chunks, r = await stream(client, f"cohere:{MODEL}", "Count to three.")
    await close(client)
    assert "".join(c.text for c in chunks) == "One, two, three." == r.text
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["stop"]
    usage_chunks = [c for c in chunks if c.usage is not None]
    assert len(usage_chunks) == 1
    assert usage_chunks[0] is chunks[-1]
    assert (r.usage.input_tokens, r.usage.output_tokens) == (4, 6)
    assert r.finish_reason == "stop"
    assert r.id == "7c9e3a4d-2b5f-4d8c-9e0a-3f4b5c6d7e8f"
    check_success(r, r.raw["usage"]["billed_units"])
    assert [a.outcome for a in r.attempts] == ["success"]


# ------------------------------------------------------------------------------------------------ errors


@pytest.mark.vcr
@pytest.mark.default_cassette("auth_error.yaml")
async def test_invalid_key(mode: str) -> None:
    sleeps = Sleeps()
    bad_key = "co-test-invalid-key"
    client = make_client(mode, providers={"cohere": {"api_key": bad_key}}, retry_policy=policy(sleeps))
    with pytest.raises(ck.AuthenticationError) as info:
        await call(client, "complete", f"cohere:{MODEL}", "Say this is a test")
    await close(client)
    err = info.value
    assert (err.status, err.provider, err.model) == (401, "cohere", MODEL)
    assert err.message == "invalid api token"
    assert err.request_id == "8e6a7b8c9d0e1f2a3b4c5d6e7f809105"
    assert sleeps.waits == [], "401 is not retried"
    assert bad_key not in str(err) + repr(err) + json.dumps(err.body) + json.dumps(err.headers)
    (row,) = client.ledger.rows()
    assert (row.outcome, row.status, row.error_type, row.cost) == ("error", 401, "AuthenticationError", 0)


# ------------------------------------------------------------------------------------------------ embed


@pytest.mark.vcr
@pytest.mark.default_cassette("embed.yaml")
async def test_embed(mode: str) -> None:
    client = client_for(mode)
    e = await call(client, "embed", "cohere:embed-v4.0", ["a red bicycle", "a blue car"])
    await close(client)
    assert len(e.vectors) == 2
    assert e.dimensions == 4
    assert e.vectors[0][0] == pytest.approx(0.0132)
    assert (e.usage.input_tokens, e.usage.output_tokens) == (7, 0)
    check_success(e, e.raw["meta"]["billed_units"])


# ------------------------------------------------------------------------------------------------ pure adapter


def adapter(key: str | None = "co-test-placeholder-key") -> CohereAdapter:
    return CohereAdapter(ProviderSettings(name="cohere", base_url="https://api.cohere.com",
                                          api_key=SecretStr(key) if key else None, timeout=30))


def test_request_options_mapped() -> None:
    req = CompleteRequest(
        model=MODEL,
        messages=[
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                         {"type": "image_url", "url": "https://example.com/a.png", "detail": "low"}]},
        ],
        max_tokens=10, temperature=0.2, top_p=0.9, stop="END", seed=7, tool_choice="required", tools=[WEATHER],
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
        user="ignored", extra={"safety_mode": "STRICT"},
    )
    body = adapter().build_complete(req).json
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert body["messages"][1]["content"][1] == {"type": "image_url",
                                                  "image_url": {"url": "https://example.com/a.png", "detail": "low"}}
    assert (body["max_tokens"], body["temperature"], body["p"], body["stop_sequences"], body["seed"]) == (
        10, 0.2, 0.9, ["END"], 7)
    assert body["tool_choice"] == "REQUIRED"
    assert body["tools"] == [{"type": "function", "function": WEATHER}]
    assert body["response_format"] == {"type": "json_object", "json_schema": {"type": "object"}}
    assert body["safety_mode"] == "STRICT"
    assert "user" not in body
    assert "stream" not in body
    with pytest.raises(ck.InvalidRequestError):
        adapter().build_complete(CompleteRequest(model=MODEL, messages=[], tool_choice={"type": "function"}))
    with pytest.raises(ck.InvalidRequestError):
        adapter().build_complete(CompleteRequest(model=MODEL, messages=[{"role": "tool", "content": "x"}]))


def test_our_own_assistant_message_goes_back() -> None:
    """A Completion's message (no tool_plan) is a valid Cohere assistant turn: empty content is left out."""
    msg = ck.Message(role="assistant", content="", tool_calls=[ck.ToolCall(id="c1", name="f", arguments="{}")])
    body = adapter().build_complete(CompleteRequest(model=MODEL, messages=[msg.model_dump(exclude_none=True)])).json
    assert body["messages"] == [
        {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function",
                                               "function": {"name": "f", "arguments": "{}"}}]}
    ]


def test_embed_input_type_overridable_and_dimensions() -> None:
    http = adapter().build_embed(EmbedRequest(model="embed-v4.0", inputs=["q"], dimensions=256,
                                              extra={"input_type": "search_query"}))
    assert http.url == "https://api.cohere.com/v2/embed"
    assert http.json == {"model": "embed-v4.0", "texts": ["q"], "input_type": "search_query",
                         "embedding_types": ["float"], "output_dimension": 256}


def test_keys_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CO_API_KEY", raising=False)
    monkeypatch.setenv("COHERE_API_KEY", "co-from-the-second-var")
    client = ck.Client(config=None, ledger="none")
    assert client._core.adapter("cohere").settings.api_key.get_secret_value() == "co-from-the-second-var"
    monkeypatch.setenv("CO_API_KEY", "co-from-the-first-var")
    client = ck.Client(config=None, ledger="none")
    assert client._core.adapter("cohere").settings.api_key.get_secret_value() == "co-from-the-first-var"
    with pytest.raises(ck.MissingAPIKeyError, match="CO_API_KEY or COHERE_API_KEY"):
        adapter(None).build_complete(CompleteRequest(model=MODEL, messages=[]))


def test_stream_thinking_is_not_text_and_errors_are_typed() -> None:
    dec = adapter().stream_decoder(CompleteRequest(model="command-a-reasoning-08-2025", messages=[], stream=True))
    events = [
        {"type": "message-start", "id": "m1", "delta": {"message": {"role": "assistant"}}},
        {"type": "content-start", "index": 0, "delta": {"message": {"content": {"type": "thinking", "thinking": ""}}}},
        {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"thinking": "hmm"}}}},
        {"type": "content-start", "index": 1, "delta": {"message": {"content": {"type": "text", "text": ""}}}},
        {"type": "content-delta", "index": 1, "delta": {"message": {"content": {"text": "Hi"}}}},
    ]
    chunks = [c for ev in events for c in dec.feed(SSEEvent(json.dumps(ev), ev["type"]))]
    assert "".join(c.text for c in chunks) == "Hi"
    end = {"type": "message-end", "delta": {"finish_reason": "MAX_TOKENS",
                                            "usage": {"billed_units": {"input_tokens": 3, "output_tokens": 2}}}}
    dec.feed(SSEEvent(json.dumps(end), "message-end"))
    r = dec.result()
    assert (r.text, r.finish_reason, r.usage.output_tokens) == ("Hi", "length", 2)
    assert r.raw["message"]["content"][0] == {"type": "thinking", "thinking": "hmm"}
    bad = {"type": "message-end", "delta": {"finish_reason": "ERROR", "error": "internal failure"}}
    with pytest.raises(ck.ServerError, match="internal failure"):
        adapter().stream_decoder(CompleteRequest(model=MODEL, messages=[])).feed(SSEEvent(json.dumps(bad)))


@pytest.mark.parametrize(
    ("status", "body", "cls"),
    [
        (400, {"id": "r1", "message": "too many tokens: total number of tokens in the prompt cannot exceed 4081"},
         ck.ContextWindowExceededError),
        (429, {"id": "r2", "message": "You are using a Trial key, which is limited to 10 API calls / minute."},
         ck.RateLimitError),
        (498, {"id": "r3", "message": "invalid api token"}, ck.AuthenticationError),
        (500, {"id": "r4", "message": "internal server error"}, ck.ServerError),
    ],
)
def test_errors_typed(status: int, body: dict[str, Any], cls: type[Exception]) -> None:
    err = adapter().map_error(HTTPResponse(status, {"content-type": "application/json"}, json.dumps(body).encode()),
                              MODEL)
    assert type(err) is cls
    assert (err.status, err.request_id, err.message) == (status, body["id"], body["message"])


def test_malformed_bodies() -> None:
    with pytest.raises(ck.MalformedResponseError):
        adapter().parse_complete(CompleteRequest(model=MODEL, messages=[]), HTTPResponse(200, {}, b"{}"))
    with pytest.raises(ck.MalformedResponseError):
        adapter().parse_embed(EmbedRequest(model="embed-v4.0", inputs=["a"]), HTTPResponse(200, {}, b"[1]"))


def test_an_embed_that_asked_for_other_types_only_is_read_for_its_billed_units() -> None:
    """Asked for ``int8`` or ``base64`` vectors only (an instrumented SDK's call), the answer has no float vectors to
    give but bills the same input; asked for floats (computekit's own calls) and given none, it is malformed."""
    body = {"id": "e1", "embeddings": {"int8": [[12, -7]]}, "texts": ["a"],
            "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": 3}}}
    resp = HTTPResponse(200, {}, json.dumps(body).encode())
    got = adapter().parse_embed(EmbedRequest(model="embed-v4.0", inputs=["a"], extra={"embedding_types": ["int8"]}),
                                resp)
    assert (got.vectors, got.usage.input_tokens) == ([], 3)
    for asked in ({}, {"embedding_types": ["float", "int8"]}):
        with pytest.raises(ck.MalformedResponseError, match="no float embeddings"):
            adapter().parse_embed(EmbedRequest(model="embed-v4.0", inputs=["a"], extra=asked), resp)


def test_rerank_pure_and_unpriced() -> None:
    a = adapter()
    req = RerankRequest(model="rerank-v3.5", query="q", documents=["a", "b"], top_n=1)
    http = a.build_rerank(req)
    assert (http.url, http.json) == ("https://api.cohere.com/v2/rerank",
                                     {"model": "rerank-v3.5", "query": "q", "documents": ["a", "b"], "top_n": 1})
    body = {"id": "x", "results": [{"index": 1, "relevance_score": 0.9}],
            "meta": {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}}}
    r = a.parse_rerank(req, HTTPResponse(200, {}, json.dumps(body).encode()))
    assert r.results[0].index == 1
    assert r.usage.units == {"search_units": Decimal(1)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnknownPriceWarning)
        cost = PriceBook().token_cost(a.price_ref(r.model), r.usage)
    assert cost.total is None, "no table prices Cohere search units: unknown, never 0"


def test_sdk_not_imported_with_computekit() -> None:
    import subprocess

    code = "import computekit, computekit.adapters.cohere, sys; print('cohere' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_to_sdk_types_the_raw_body() -> None:
    body = {"id": "x", "finish_reason": "COMPLETE",
            "message": {"role": "assistant", "content": [{"type": "text", "text": "hi"}]},
            "usage": {"billed_units": {"input_tokens": 1, "output_tokens": 1}}}
    r = adapter().parse_complete(CompleteRequest(model=MODEL, messages=[]),
                                 HTTPResponse(200, {}, json.dumps(body).encode()))
    sdk = to_sdk(r)
    assert type(sdk).__name__ == "V2ChatResponse"
    assert sdk.message.content[0].text == "hi"


# ------------------------------------------------------------------------------------------------ cassettes


CASSETTE_DIR = CASSETTES / "test_cohere"
MARKER = re.compile(r"^# (AUTHORED: written from .+, not recorded\.|RECORDED: \d{4}-\d{2}-\d{2}.*)$")


def _cassettes() -> list[Path]:
    return sorted(CASSETTE_DIR.glob("*.yaml"))


def _sse_events(text: str) -> list[dict[str, Any]]:
    out = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        data = [ln[5:].lstrip() for ln in block.split("\n") if ln.startswith("data:")]
        if data and data != ["[DONE]"]:
            out.append(json.loads("\n".join(data)))
    return out


def test_cassettes_exist() -> None:
    assert {p.name for p in _cassettes()} >= {"chat.yaml", "tools.yaml", "stream.yaml", "embed.yaml",
                                              "auth_error.yaml"}


@pytest.mark.parametrize("path", _cassettes(), ids=lambda p: p.name)
def test_cassette_marker_and_no_secrets(path: Path) -> None:
    text = path.read_text("utf-8")
    assert MARKER.match(text.splitlines()[0]), f"{path.name} must start with '# AUTHORED: ..., not recorded.'"
    assert "authorization" not in text.lower()
    assert "bearer" not in text.lower()
    assert KEY not in text


@pytest.mark.parametrize("path", _cassettes(), ids=lambda p: p.name)
def test_cassette_bodies_match_the_sdk_types(path: Path) -> None:
    """Authored bodies are what Cohere's official SDK types accept (the closest schema that can be shipped)."""
    import cohere

    messages = TypeAdapter(list[cohere.ChatMessageV2])
    tools = TypeAdapter(list[cohere.ToolV2])
    event = TypeAdapter(cohere.StreamedChatResponseV2)
    for inter in yaml.safe_load(path.read_text("utf-8"))["interactions"]:
        req = json.loads(inter["request"]["body"])
        resp = inter["response"]
        text = resp["body"]["string"]
        if inter["request"]["uri"].endswith("/v2/chat"):
            messages.validate_python(req["messages"])
            tools.validate_python(req.get("tools") or [])
            if resp["status"]["code"] >= 400:
                assert set(json.loads(text)) == {"id", "message"}
            elif req.get("stream"):
                evs = _sse_events(text)
                assert evs[0]["type"] == "message-start"
                assert evs[-1]["type"] == "message-end"
                for ev in evs:
                    event.validate_python(ev)
            else:
                cohere.V2ChatResponse.model_validate_json(text)
        else:
            assert inter["request"]["uri"].endswith("/v2/embed")
            cohere.EmbedByTypeResponse.model_validate_json(text)


def test_sdk_validation_is_not_vacuous() -> None:
    import cohere

    with pytest.raises(ValidationError):
        cohere.V2ChatResponse.model_validate({"id": "x", "finish_reason": "COMPLETE",
                                              "message": {"role": "assistant", "content": [{"type": "text"}]}})
    with pytest.raises(ValidationError):
        TypeAdapter(list[cohere.ChatMessageV2]).validate_python([{"role": "robot", "content": "x"}])
