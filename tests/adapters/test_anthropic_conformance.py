"""Conformance: every real Anthropic recording in ``shared/conformance/anthropic`` through the adapter.

Each file is exercised here (every exchange in it); nothing is listed as unsupported. Expectations are read from
the recorded JSON / SSE events themselves, never from computekit: text, tool calls, finish reason, every usage
field, the request id, and the cost, recomputed with ``genai_prices.calc_price`` on the same usage (and
cross-checked with genai-prices' own reading of Anthropic's usage object, ``extract_usage``).

Two levels:

- adapter level: the recorded response is fed to ``parse_complete`` / ``stream_decoder`` / ``map_error``;
- client level: the recording is converted to a plain vcrpy cassette and replayed through ``ck.Client`` and
  ``ck.AsyncClient`` (real httpx stack, network blocked).

The one error recording is a 404 from ``/v1/messages/count_tokens``, an endpoint computekit has no verb for: its
error body is the same envelope ``/v1/messages`` uses, so it is checked at adapter level (``map_error``) only; see
:data:`ADAPTER_LEVEL_ONLY`.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import genai_prices
import pytest
import vcr
import yaml
from _anthropic_stream import assert_same, events_of
from _clients import MODES, call, close, stream
from _conformance import MISSING, Collection, Exchange, load, require_conformance_dir, to_vcr
from pydantic import SecretStr

import computekit as ck
from computekit._config import RetryConfig
from computekit._exceptions import NotFoundError
from computekit._retry import RetryPolicy
from computekit._sse import SSEDecoder
from computekit.adapters._base import CompleteRequest, HTTPResponse, ProviderSettings
from computekit.adapters.anthropic import AnthropicAdapter
from computekit.pricing import PriceBook

pytestmark = pytest.mark.conformance

FOLDER = "anthropic"
BASE_URL = "https://api.anthropic.com/v1"
KEY = "test-conformance-key"

# Files computekit cannot replay, with the reason. Empty: every Anthropic recording is exercised.
UNSUPPORTED: dict[str, str] = {}

# Files exercised at adapter level only (not replayed through the client), with the reason.
ADAPTER_LEVEL_ONLY: dict[str, str] = {
    "anthropic/error-404-not-found.yaml": (
        "POST /v1/messages/count_tokens: computekit has no token-counting verb; the error envelope is the one "
        "/v1/messages uses, so map_error is checked on it directly"
    ),
}

# computekit's finish-reason vocabulary, and Anthropic's words for it (Anthropic's docs, stated here).
FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls"}

# Usage keys that are not billed quantities (facts about where/how the call ran).
USAGE_FACTS = {"service_tier", "inference_geo"}


# ------------------------------------------------------------------------------------------------ helpers


def kind(ex: Exchange) -> str | None:
    if ex.method != "POST":
        return None
    if ex.status >= 400 and ex.path.startswith("/v1/messages"):
        return "error"
    if ex.path == "/v1/messages":
        return "stream" if ex.is_sse else "message"
    return None


def adapter() -> AnthropicAdapter:
    return AnthropicAdapter(ProviderSettings(name="anthropic", base_url=BASE_URL, api_key=SecretStr(KEY), timeout=30))


def request_model(ex: Exchange) -> str:
    body = ex.request_body
    return body["model"] if isinstance(body, dict) and "model" in body else "unknown-model"


def when_of(ex: Exchange) -> dt.datetime:
    assert ex.recorded_at is not None, f"{ex.id}: no date to price at"
    return ex.recorded_at


def events(ex: Exchange) -> list[dict[str, Any]]:
    return [json.loads(d) for d in ex.sse_data()]


def expected_from_stream(ex: Exchange) -> dict[str, Any]:
    """Text, tool calls, finish reason, usage and message meta, assembled from the recorded events."""
    text: list[str] = []
    tools: dict[int, dict[str, str]] = {}
    finish = None
    usage: dict[str, Any] = {}
    meta: dict[str, Any] = {}
    for e in events(ex):
        t = e["type"]
        if t == "message_start":
            meta = e["message"]
            usage.update(e["message"]["usage"])
        elif t == "content_block_start" and e["content_block"]["type"] == "tool_use":
            b = e["content_block"]
            tools[e["index"]] = {"id": b["id"], "name": b["name"], "arguments": ""}
        elif t == "content_block_delta":
            d = e["delta"]
            if d["type"] == "text_delta":
                text.append(d["text"])
            elif d["type"] == "input_json_delta":
                tools[e["index"]]["arguments"] += d["partial_json"]
        elif t == "message_delta":
            finish = e["delta"]["stop_reason"]
            usage.update({k: v for k, v in e["usage"].items() if v is not None})  # cumulative counts
    return {
        "text": "".join(text),
        "tool_calls": [(c["id"], c["name"], c["arguments"]) for _, c in sorted(tools.items())],
        "finish_reason": finish,
        "usage": usage,
        "meta": meta,
        "last": events(ex)[-1]["type"],
    }


def check_usage(usage: ck.Usage, raw: dict[str, Any]) -> None:
    """Every field of the recorded usage object is accounted for in computekit's Usage."""
    plain = raw["input_tokens"]
    write = raw.get("cache_creation_input_tokens") or 0
    read = raw.get("cache_read_input_tokens") or 0
    for key, value in raw.items():
        if key == "input_tokens":
            # Anthropic's input_tokens excludes the cache: computekit's counts all input.
            assert usage.input_tokens == value + write + read
        elif key == "output_tokens":
            assert usage.output_tokens == value
        elif key == "cache_creation_input_tokens":
            assert usage.cache_write_tokens == (value or 0)
        elif key == "cache_read_input_tokens":
            assert usage.cached_input_tokens == (value or 0)
        elif key == "cache_creation":
            assert value["ephemeral_5m_input_tokens"] + value["ephemeral_1h_input_tokens"] == write
        elif key == "server_tool_use":
            assert usage.units.get("web_searches", 0) == ((value or {}).get("web_search_requests") or 0)
        elif key in USAGE_FACTS:
            continue
        else:
            raise AssertionError(f"usage field {key!r} is not handled: decide how computekit carries it")
    assert usage.input_tokens >= plain
    assert usage.reasoning_tokens == 0  # thinking is billed inside output_tokens; Anthropic does not split it


def genai_usage(raw: dict[str, Any]) -> genai_prices.Usage:
    """The recorded usage in genai-prices' vocabulary (its input_tokens counts all input, caches included)."""
    write = raw.get("cache_creation_input_tokens") or 0
    read = raw.get("cache_read_input_tokens") or 0
    return genai_prices.Usage(
        input_tokens=raw["input_tokens"] + write + read,
        output_tokens=raw["output_tokens"],
        cache_read_tokens=read or None,
        cache_write_tokens=write or None,
    )


def check_cost(result: ck.Completion, raw_usage: dict[str, Any], model: str, when: dt.datetime) -> Decimal:
    """computekit's cost equals genai-prices' on the same usage, model and time."""
    ad = adapter()
    got = PriceBook().token_cost(ad.price_ref(result.model, result), result.usage, when)
    want = genai_prices.calc_price(
        genai_usage(raw_usage), model, provider_id="anthropic", genai_request_timestamp=when
    ).total_price
    # genai-prices' own reading of Anthropic's usage object agrees with the one above.
    extracted = genai_prices.extract_usage({"model": model, "usage": raw_usage}, provider_id="anthropic")
    assert extracted.calc_price(genai_request_timestamp=when).total_price == want
    assert got.total is not None, got.reason
    assert got.total == want, f"computekit {got.total} != genai-prices {want} for {model} at {when}"
    assert got.price_source is not None
    assert got.price_source.table == "genai-prices"
    assert sum(line.amount for line in got.lines) == got.total
    return got.total


def feed_stream(req: CompleteRequest, content: bytes, piece: int) -> tuple[ck.Completion, list[ck.Chunk]]:
    decoder = adapter().stream_decoder(req)
    sse = SSEDecoder(4 * 1024 * 1024)
    chunks: list[ck.Chunk] = []
    for i in range(0, len(content), piece):
        for event in sse.feed(content[i : i + piece]):
            chunks.extend(decoder.feed(event))
    evs, cut = sse.close()
    for event in evs:
        chunks.extend(decoder.feed(event))
    assert not cut
    assert decoder.done, "the decoder saw message_stop"
    return decoder.result(), chunks


# ------------------------------------------------------------------------------------------------ collection


COLLECTION = Collection.of(FOLDER, unsupported=UNSUPPORTED)
ALL_FILES, EXCHANGES = COLLECTION.files, COLLECTION.exchanges


def _exchange_params(*kinds: str) -> list[Any]:
    return COLLECTION.params(kind, *kinds)


# ------------------------------------------------------------------------------------------------ coverage


def test_conformance_directory_present() -> None:
    d = require_conformance_dir()
    assert (d / FOLDER).is_dir()
    assert ALL_FILES, "no fixture files found"


@pytest.mark.parametrize("rel", ALL_FILES or [MISSING])
def test_every_file_is_exercised_or_listed(rel: str | None) -> None:
    require_conformance_dir()
    assert rel is not None
    exchanges = load(rel)
    assert exchanges
    assert rel not in UNSUPPORTED
    for ex in exchanges:
        assert kind(ex) is not None, f"{ex.id}: {ex.method} {ex.path} is neither exercised nor listed"
    if rel in ADAPTER_LEVEL_ONLY:
        assert ADAPTER_LEVEL_ONLY[rel].strip()
        assert all(ex.path != "/v1/messages" for ex in exchanges), "a /v1/messages file must replay via the client"


def test_counts() -> None:
    require_conformance_dir()
    assert len(ALL_FILES) >= 7
    assert not UNSUPPORTED
    assert set(ADAPTER_LEVEL_ONLY) <= set(ALL_FILES)
    assert len(EXCHANGES) == sum(len(load(f)) for f in ALL_FILES)


# ------------------------------------------------------------------------------------------------ adapter level


@pytest.mark.parametrize("ex", _exchange_params("message"))
def test_message(ex: Exchange | None) -> None:
    require_conformance_dir()
    assert ex is not None
    data = ex.json()
    req = CompleteRequest(model=request_model(ex), messages=[])
    result = adapter().parse_complete(req, HTTPResponse(ex.status, ex.headers, ex.content, ex.uri))

    blocks = data["content"]
    assert result.text == "".join(b["text"] for b in blocks if b["type"] == "text")
    want_calls = [(b["id"], b["name"], b["input"]) for b in blocks if b["type"] == "tool_use"]
    assert [(c.id, c.name, c.parsed_arguments()) for c in result.tool_calls] == want_calls
    assert [(c.id, c.name) for c in result.message.tool_calls or []] == [(i, n) for i, n, _ in want_calls]
    assert result.finish_reason == FINISH[data["stop_reason"]]
    assert result.id == data["id"]
    assert result.response_model == data["model"]
    assert result.provider == "anthropic"
    assert result.raw == data  # thinking blocks (and their signatures) are kept here
    assert result.request_id == ex.headers["request-id"]
    for b in blocks:
        if b["type"] == "thinking":
            assert b["thinking"][:30] not in result.text, "thinking is not part of the answer text"
    check_usage(result.usage, data["usage"])
    assert result._usage_reported
    check_cost(result, data["usage"], data["model"], when_of(ex))


@pytest.mark.parametrize("ex", _exchange_params("stream"))
@pytest.mark.parametrize("piece", [1, 7, 1 << 20], ids=["byte-by-byte", "7-bytes", "whole"])
def test_stream(ex: Exchange | None, piece: int) -> None:
    require_conformance_dir()
    assert ex is not None
    body = ex.request_body
    assert body["stream"] is True
    req = CompleteRequest(model=request_model(ex), messages=[], stream=True)
    result, chunks = feed_stream(req, ex.content, piece)
    want = expected_from_stream(ex)

    assert want["last"] == "message_stop"
    assert "".join(c.text for c in chunks) == want["text"] == result.text
    assert [(c.id, c.name, c.arguments) for c in result.tool_calls] == want["tool_calls"]
    for c in result.tool_calls:
        c.parsed_arguments()
    # The fragments in the chunks rebuild the same calls.
    frags: dict[int, dict[str, str]] = {}
    for c in chunks:
        for tc in c.tool_calls:
            acc = frags.setdefault(tc["index"], {"id": "", "name": "", "arguments": ""})
            acc["id"] = tc["id"] or acc["id"]
            acc["name"] = tc["name"] or acc["name"]
            acc["arguments"] += tc["arguments"] or ""
    assert [(f["id"], f["name"], f["arguments"]) for _, f in sorted(frags.items())] == want["tool_calls"]
    assert result.finish_reason == FINISH[want["finish_reason"]]
    assert [c.finish_reason for c in chunks if c.finish_reason] == [result.finish_reason]
    assert result.id == want["meta"]["id"]
    assert result.response_model == want["meta"]["model"]
    usage_chunks = [c for c in chunks if c.usage is not None]
    assert len(usage_chunks) == 1, "the final usage arrives with message_delta"
    assert usage_chunks[0].usage == result.usage
    check_usage(result.usage, want["usage"])
    # The split: input counts come from message_start, the final output count from message_delta.
    start_usage = want["meta"]["usage"]
    assert result.usage.output_tokens != start_usage["output_tokens"]
    assert result._usage_reported
    check_cost(result, want["usage"], want["meta"]["model"], when_of(ex))


@pytest.mark.parametrize("ex", _exchange_params("error"))
def test_error(ex: Exchange | None) -> None:
    require_conformance_dir()
    assert ex is not None
    body = ex.json()
    err = adapter().map_error(HTTPResponse(ex.status, ex.headers, ex.content, ex.uri), request_model(ex))
    assert body["type"] == "error"
    assert body["error"]["type"] == "not_found_error"
    assert type(err) is NotFoundError
    assert err.status == ex.status == 404
    assert err.body == body
    assert err.message == body["error"]["message"]
    assert err.provider == "anthropic"
    assert err.model == request_model(ex)
    assert err.request_id == body["request_id"]
    assert body["request_id"] in str(err)
    assert KEY not in repr(err) + str(err)
    cost = adapter().error_cost(err)
    assert cost is not None
    assert cost.total == 0, "error responses are not billed"


@pytest.mark.parametrize("ex", _exchange_params("message", "stream"))
def test_request_built_like_the_recording(ex: Exchange | None) -> None:
    """The adapter builds the recorded URL and body from computekit's arguments (system moved to its field)."""
    require_conformance_dir()
    assert ex is not None
    body = ex.request_body
    messages = list(body["messages"])
    if "system" in body:
        messages.insert(0, {"role": "system", "content": body["system"]})
    extra = {"thinking": body["thinking"]} if "thinking" in body else {}
    req = CompleteRequest(
        model=body["model"],
        messages=messages,
        max_tokens=body["max_tokens"],
        temperature=body.get("temperature"),
        tools=body.get("tools"),
        stream=bool(body.get("stream")),
        extra=extra,
    )
    http = adapter().build_complete(req)
    assert http.method == "POST"
    assert http.url == ex.uri
    assert http.json == body
    assert http.headers["anthropic-version"] == ex.request_headers["anthropic-version"]
    assert http.headers["x-api-key"] == KEY
    assert "authorization" not in http.headers


# ------------------------------------------------------------------------------------------------ file facts


def _file(rel: str) -> list[Exchange]:
    require_conformance_dir()
    return load(rel)


def _parse(ex: Exchange) -> ck.Completion:
    return adapter().parse_complete(CompleteRequest(model=request_model(ex), messages=[]),
                                    HTTPResponse(ex.status, ex.headers, ex.content))


def test_prompt_caching_write_then_read_priced_at_their_own_rates() -> None:
    write_ex, read_ex = _file("anthropic/messages-prompt-caching.yaml")
    w, r = _parse(write_ex), _parse(read_ex)
    assert (w.usage.cache_write_tokens, w.usage.cached_input_tokens) == (1163, 0)
    assert (r.usage.cache_write_tokens, r.usage.cached_input_tokens) == (0, 1163)
    assert w.usage.input_tokens == r.usage.input_tokens == 4 + 1163
    book = PriceBook()
    wc = book.token_cost(adapter().price_ref(w.model, w), w.usage, when_of(write_ex))
    rc = book.token_cost(adapter().price_ref(r.model, r), r.usage, when_of(read_ex))
    wl = {line.item: line for line in wc.lines}
    rl = {line.item: line for line in rc.lines}
    assert wl["input"].quantity == rl["input"].quantity == 4
    assert wl["cache write"].quantity == rl["cached input"].quantity == 1163
    assert rl["cached input"].unit_price < rl["input"].unit_price < wl["cache write"].unit_price


def test_thinking_kept_in_raw_not_in_text() -> None:
    (ex,) = _file("anthropic/messages-thinking.yaml")
    r = _parse(ex)
    thinking = [b for b in r.raw["content"] if b["type"] == "thinking"]
    assert len(thinking) == 1
    assert thinking[0]["signature"]
    assert r.text == "The letter 'r' appears 3 times in the word \"strawberry\"."
    assert "count = 1" in thinking[0]["thinking"]


@pytest.mark.parametrize("ex", _exchange_params("message", "stream"))
def test_streamed_and_plain_parsing_agree(ex: Exchange | None) -> None:
    """Every recording, both ways: a recorded message is also fed as the event stream Anthropic sends for it, a
    recorded stream's assembled message is also parsed as a plain answer; the two results agree."""
    require_conformance_dir()
    assert ex is not None
    req = CompleteRequest(model=request_model(ex), messages=[])
    if kind(ex) == "message":
        plain = adapter().parse_complete(req, HTTPResponse(ex.status, ex.headers, ex.content, ex.uri))
        streamed, _ = feed_stream(req, events_of(ex.json()), 97)
    else:
        streamed, _ = feed_stream(req, ex.content, 97)
        message = {"type": "message", "role": "assistant", **streamed.raw}
        plain = adapter().parse_complete(req, HTTPResponse(200, ex.headers, json.dumps(message).encode(), ex.uri))
    assert_same(plain, streamed)


# ------------------------------------------------------------------------------------------------ client level


def _replay_params() -> list[Any]:
    if not ALL_FILES:
        return [MISSING]
    return [pytest.param(f, id=f) for f in ALL_FILES if f not in UNSUPPORTED and f not in ADAPTER_LEVEL_ONLY]


def _call_kwargs(body: dict[str, Any]) -> dict[str, Any]:
    messages = list(body["messages"])
    if "system" in body:
        messages.insert(0, {"role": "system", "content": body["system"]})
    kw: dict[str, Any] = {"messages": messages, "max_tokens": body["max_tokens"]}
    if "temperature" in body:
        kw["temperature"] = body["temperature"]
    if body.get("tools"):
        kw["tools"] = body["tools"]
    if "thinking" in body:
        kw["extra_body"] = {"thinking": body["thinking"]}
    return kw


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("rel", _replay_params())
async def test_replay_through_client(rel: str | None, mode: str, tmp_path: Path) -> None:
    """The whole recording, as a vcrpy cassette matched on the request body too, replayed through the client."""
    require_conformance_dir()
    assert rel is not None
    exchanges = load(rel)
    cassette = tmp_path / "cassette.yaml"
    doc = to_vcr(exchanges)
    for inter in doc["interactions"]:  # vcrpy compares bodies as JSON when the request says it is JSON
        inter["request"]["headers"] = {"content-type": ["application/json"]}
    cassette.write_text(yaml.safe_dump(doc, allow_unicode=True), "utf-8")
    cls = ck.Client if mode == "sync" else ck.AsyncClient
    client = cls(
        config=None,
        providers={"anthropic": {"api_key": KEY}},
        ledger="none",
        retry_policy=RetryPolicy(RetryConfig(max_retries=0), sleep=lambda s: None),
    )
    recorder = vcr.VCR(record_mode="none", match_on=["method", "scheme", "host", "port", "path", "query", "body"])
    with recorder.use_cassette(str(cassette)) as cass:
        for ex in exchanges:
            body = ex.request_body
            model = f"anthropic:{body['model']}"
            if kind(ex) == "stream":
                chunks, result = await stream(client, model, **_call_kwargs(body))
                assert chunks
                want = expected_from_stream(ex)
                raw_usage, answered = want["usage"], want["meta"]["model"]
                assert result.text == want["text"]
            else:
                result = await call(client, "complete", model, **_call_kwargs(body))
                data = ex.json()
                raw_usage, answered = data["usage"], data["model"]
                assert result.text == "".join(b["text"] for b in data["content"] if b["type"] == "text")
            assert result.request_id == ex.headers["request-id"]
            assert [a.outcome for a in result.attempts] == ["success"]
            check_usage(result.usage, raw_usage)
            # Priced at the time of the call (now), the same way genai-prices prices it.
            assert result.cost.total == check_cost(result, raw_usage, answered, result.attempts[0].started_at)
        assert cass.all_played, "every recorded exchange was requested"
    await close(client)


def test_thinking_blocks_go_back_with_the_message() -> None:
    """The recorded answer with extended thinking: its message keeps the thinking block (signature included) and
    sends it back first, as Anthropic requires on a tool-use turn with thinking on; the text-only answers of the
    other recordings keep the plain shape."""
    require_conformance_dir()
    from computekit._core import normalise_messages

    (ex,) = _file("anthropic/messages-thinking.yaml")
    r = _parse(ex)
    blocks = ex.json()["content"]
    assert r.message.provider_fields == {"anthropic": {"content": blocks}}
    assert [b["type"] for b in blocks] == ["thinking", "text"]
    messages = normalise_messages("And in 'raspberry'?", [*ex.request_body["messages"], r.message])
    body = adapter().build_complete(CompleteRequest(model=request_model(ex), messages=messages)).json
    assert body["messages"][1] == {"role": "assistant", "content": blocks}
    (basic,) = _file("anthropic/messages-basic.yaml")
    assert _parse(basic).message.provider_fields is None
