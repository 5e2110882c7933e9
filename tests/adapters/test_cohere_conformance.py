"""Conformance: every real Cohere recording in ``shared/conformance/cohere`` through the Cohere adapter.

Each file is exercised here (every exchange in it) or listed in :data:`UNSUPPORTED` with the reason (none is
today). Expectations are read from the recorded JSON itself, never from computekit: text, tool calls, finish
reason, every usage / billed-units field, the ids, and the cost, recomputed with ``genai_prices.calc_price`` on the
**billed** units (Cohere's invoice quantity). No price constant is written here.

- v2 (``/v2/chat``, SSE stream, ``/v2/embed``, errors): through the adapter's verbs, and replayed whole through
  ``ck.Client`` (real httpx stack, network blocked);
- v1 (``/v1/chat``, NDJSON stream, ``/v1/generate``, ``/v1/embed``): the client speaks v2 only, so these go
  through the adapter's pure v1 helpers (teams still have v1 traffic in their ledgers to price);
- ``/v2/rerank``: through the pure ``build_rerank`` / ``parse_rerank`` (the client verb is wired later).

Recordings whose model genai-prices does not price are listed in :data:`UNPRICED` with the reason: for those,
computekit's cost must be ``None`` (never 0) and genai-prices must agree that it has no price.
"""

from __future__ import annotations

import datetime as dt
import json
import warnings
from pathlib import Path
from typing import Any

import genai_prices
import pytest
import vcr
import yaml
from _conformance import MISSING, Collection, Exchange, load, require_conformance_dir, to_vcr
from pydantic import SecretStr

import computekit as ck
from computekit._config import RetryConfig
from computekit._exceptions import NotFoundError
from computekit._retry import RetryPolicy
from computekit._sse import SSEDecoder
from computekit._types import Reranking
from computekit.adapters._base import CompleteRequest, EmbedRequest, HTTPResponse, ProviderSettings, RerankRequest
from computekit.adapters.cohere import CohereAdapter, to_sdk
from computekit.pricing import PriceBook
from computekit.pricing._book import UnknownPriceWarning

pytestmark = pytest.mark.conformance

FOLDER = "cohere"
BASE = "https://api.cohere.com"

# Files computekit cannot exercise, each with its reason. Empty: every Cohere recording is exercised.
UNSUPPORTED: dict[str, str] = {}

# Exchanges computekit parses fully but cannot price, because the price tables have no price: cost is None.
UNPRICED: dict[str, str] = {
    "cohere/v1-chat-documents-citations.yaml": "the request names no model (v1 chat's default) and v1 responses "
    "do not report one: there is nothing to price against",
    "cohere/v1-chat-tool-calls.yaml": "the request names no model (v1 chat's default) and v1 responses do not "
    "report one: there is nothing to price against",
    "cohere/v1-embed-float.yaml": "embed-english-v2.0 (retired) has no price in genai-prices",
    "cohere/v2-embed.yaml": "embed-english-light-v3.0 has no price in genai-prices",
    "cohere/v2-chat-reasoning-thinking-tool-call.yaml": "command-a-reasoning-08-2025 has no price in genai-prices",
    "cohere/v2-rerank.yaml": "genai-prices has no Cohere rerank (search-unit) price, nor does computekit's table",
}

# Cohere's finish words -> computekit's vocabulary (stated here from Cohere's docs, not read from computekit).
FINISH = {"COMPLETE": "stop", "MAX_TOKENS": "length", "TOOL_CALL": "tool_calls", "STOP_SEQUENCE": "stop"}
FINISH_WORDS = {"stop", "length", "tool_calls", "content_filter"}


# ------------------------------------------------------------------------------------------------ helpers


def kind(ex: Exchange) -> str | None:
    """What an exchange exercises, or ``None`` when computekit has no code for it."""
    if ex.method != "POST":
        return None
    if ex.status >= 400:
        return "error"
    return {
        "/v2/chat": "v2-chat-stream" if ex.is_sse else "v2-chat",
        "/v2/embed": "v2-embed",
        "/v2/rerank": "v2-rerank",
        "/v1/chat": "v1-chat-stream" if ex.content_type == "application/stream+json" else "v1-chat",
        "/v1/generate": "v1-generate",
        "/v1/embed": "v1-embed",
    }.get(ex.path)


def adapter() -> CohereAdapter:
    return CohereAdapter(
        ProviderSettings(name="cohere", base_url=BASE, api_key=SecretStr("test-conformance-key"), timeout=30)
    )


def request_model(ex: Exchange) -> str:
    body = ex.request_body
    return str(body["model"]) if isinstance(body, dict) and body.get("model") else ""


def when_of(ex: Exchange) -> dt.datetime:
    """When the call was made: the recording's date; pydantic-ai recordings keep none, so now (both sides alike)."""
    return ex.recorded_at or dt.datetime.now(dt.UTC)


def response(ex: Exchange) -> HTTPResponse:
    return HTTPResponse(ex.status, ex.headers, ex.content, ex.uri)


def check_finish(got: str | None, recorded: str | None) -> None:
    assert recorded is not None
    assert got == FINISH[recorded]
    assert got in FINISH_WORDS


def check_billed(usage: ck.Usage, billed: dict[str, Any]) -> None:
    """Every billed-units field is carried: tokens as tokens, anything else in ``units``."""
    for key, value in billed.items():
        if key == "input_tokens":
            assert usage.input_tokens == value
        elif key == "output_tokens":
            assert usage.output_tokens == value
        else:
            assert usage.units[key] == value
    if "output_tokens" not in billed:
        assert usage.output_tokens == 0
    assert usage.cached_input_tokens == usage.cache_write_tokens == usage.reasoning_tokens == 0


def check_usage(usage: ck.Usage, raw: dict[str, Any]) -> None:
    """Every field of a recorded v2 ``usage`` (or v1 ``meta``) is accounted for."""
    billed = raw["billed_units"]
    for key, value in raw.items():
        if key == "billed_units":
            check_billed(usage, value)
        elif key == "tokens":
            # Processed tokens (Cohere's prompt template included): informational, never billed. Billed <= processed.
            assert usage.input_tokens <= value["input_tokens"]
            assert usage.output_tokens <= value.get("output_tokens", usage.output_tokens)
        elif key == "cached_tokens":
            # A share of the *processed* input, not of the billed one (2928 cached > 2406 billed in one recording):
            # not a cache discount on the bill, so not cached_input_tokens.
            assert value <= raw["tokens"]["input_tokens"]
            assert usage.cached_input_tokens == 0
        elif key in ("api_version", "warnings"):  # v1 meta: not usage
            continue
        else:
            raise AssertionError(f"usage field {key!r} is not handled: decide how computekit carries it")
    assert billed, "every exercised recording reports billed units"


def check_cost(ex: Exchange, result: Any, billed: dict[str, Any], model: str, when: dt.datetime) -> None:
    """computekit's cost equals genai-prices' price for the billed units; or both have no price (UNPRICED)."""
    a = adapter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnknownPriceWarning)
        got = PriceBook().token_cost(a.price_ref(result.model, result), result.usage, when)
    tokens = {k: billed[k] for k in ("input_tokens", "output_tokens") if billed.get(k)}
    if ex.file in UNPRICED:
        assert got.total is None, f"{ex.file} is listed as unpriced but computekit priced it: update UNPRICED"
        assert got.reason
        if model:
            with pytest.raises(LookupError):
                genai_prices.calc_price(genai_prices.Usage(**tokens), model, provider_id="cohere",
                                        genai_request_timestamp=when)
        return
    want = genai_prices.calc_price(
        genai_prices.Usage(**tokens), model, provider_id="cohere", genai_request_timestamp=when
    ).total_price
    assert got.total is not None, got.reason
    assert got.total == want, f"computekit {got.total} != genai-prices {want} for {model} at {when}"
    assert got.price_source is not None
    assert got.price_source.table == "genai-prices"
    assert sum(line.amount for line in got.lines) == got.total


def sse_payloads(ex: Exchange) -> list[dict[str, Any]]:
    data = ex.sse_data()
    assert data[-1] == "[DONE]"
    return [json.loads(d) for d in data[:-1]]


def expected_from_v2_stream(ex: Exchange) -> dict[str, Any]:
    """Text, tool plan, tool calls, finish reason and usage, assembled from the recorded events (independently)."""
    text, plan = [], []
    calls: dict[int, dict[str, str]] = {}
    out: dict[str, Any] = {}
    for p in sse_payloads(ex):
        msg = (p.get("delta") or {}).get("message") or {}
        if p["type"] == "message-start":
            out["id"] = p["id"]
        elif p["type"] == "content-delta":
            text.append(msg["content"].get("text") or "")
        elif p["type"] == "tool-plan-delta":
            plan.append(msg["tool_plan"])
        elif p["type"] in ("tool-call-start", "tool-call-delta"):
            acc = calls.setdefault(p["index"], {"id": "", "name": "", "arguments": ""})
            tc = msg["tool_calls"]
            acc["id"] = tc.get("id") or acc["id"]
            acc["name"] += (tc.get("function") or {}).get("name") or ""
            acc["arguments"] += (tc.get("function") or {}).get("arguments") or ""
        elif p["type"] == "message-end":
            out["finish_reason"] = p["delta"]["finish_reason"]
            out["usage"] = p["delta"]["usage"]
    out["text"] = "".join(text)
    out["tool_plan"] = "".join(plan)
    out["tool_calls"] = [(c["id"], c["name"], c["arguments"]) for _, c in sorted(calls.items())]
    return out


def feed_sse(a: CohereAdapter, req: CompleteRequest, content: bytes, piece: int) -> tuple[ck.Completion, list[Any]]:
    decoder = a.stream_decoder(req)
    sse = SSEDecoder(4 * 1024 * 1024)
    chunks = []
    for i in range(0, len(content), piece):
        for event in sse.feed(content[i : i + piece]):
            chunks.extend(decoder.feed(event))
    events, cut = sse.close()
    for event in events:
        chunks.extend(decoder.feed(event))
    assert not cut
    assert decoder.done
    return decoder.result(), chunks


# ------------------------------------------------------------------------------------------------ collection


COLLECTION = Collection.of(FOLDER, unsupported=UNSUPPORTED)
ALL_FILES, EXCHANGES = COLLECTION.files, COLLECTION.exchanges


def _params(*kinds: str) -> list[Any]:
    return COLLECTION.params(kind, *kinds)


# ------------------------------------------------------------------------------------------------ coverage


def test_conformance_directory_present() -> None:
    d = require_conformance_dir()
    assert (d / FOLDER).is_dir()
    assert ALL_FILES, "no Cohere fixture files found"


@pytest.mark.parametrize("rel", ALL_FILES or [MISSING])
def test_every_file_is_exercised_or_listed(rel: str | None) -> None:
    require_conformance_dir()
    assert rel is not None
    exchanges = load(rel)
    assert exchanges
    if rel in UNSUPPORTED:
        assert UNSUPPORTED[rel].strip()
        return
    for ex in exchanges:
        assert kind(ex) is not None, f"{ex.id}: {ex.method} {ex.path} is neither exercised nor listed"


def test_lists_name_real_files() -> None:
    require_conformance_dir()
    assert not set(UNSUPPORTED) - set(ALL_FILES)
    assert not set(UNPRICED) - set(ALL_FILES)
    assert all(reason.strip() for reason in UNPRICED.values())


def test_counts() -> None:
    """The tally for the summary: every Cohere file is exercised (12), none listed as unsupported."""
    require_conformance_dir()
    exercised = [f for f in ALL_FILES if f not in UNSUPPORTED]
    assert len(exercised) + len(UNSUPPORTED) == len(ALL_FILES)
    assert len(exercised) >= 12
    assert len(EXCHANGES) >= 13


# ------------------------------------------------------------------------------------------------ v2 chat


@pytest.mark.parametrize("ex", _params("v2-chat"))
def test_v2_chat(ex: Exchange | None) -> None:
    require_conformance_dir()
    assert ex is not None
    a = adapter()
    data = ex.json()
    model = request_model(ex)
    result = a.parse_complete(CompleteRequest(model=model, messages=[]), response(ex))

    msg = data["message"]
    blocks = msg.get("content") or []
    want_text = "".join(b["text"] for b in blocks if b["type"] == "text")
    assert result.text == want_text
    for b in blocks:
        if b["type"] == "thinking":
            assert b["thinking"] not in result.text  # thinking is kept in raw, not in the answer
    want_calls = [(tc["id"], tc["function"]["name"], tc["function"]["arguments"]) for tc in msg.get("tool_calls") or []]
    assert [(c.id, c.name, c.arguments) for c in result.tool_calls] == want_calls
    assert [(c.id, c.name, c.arguments) for c in result.message.tool_calls or []] == want_calls
    for call in result.tool_calls:
        call.parsed_arguments()
    check_finish(result.finish_reason, data["finish_reason"])
    assert result.id == data["id"]
    assert result.raw == data  # citations, tool_plan and thinking blocks are all kept
    assert result.provider == "cohere"
    assert result.request_id == ex.headers.get("x-debug-trace-id")
    check_usage(result.usage, data["usage"])
    assert result._usage_reported
    check_cost(ex, result, data["usage"]["billed_units"], model, when_of(ex))

    # The official SDK's typed view of the same body agrees.
    sdk = to_sdk(result)
    assert sdk.id == result.id
    sdk_calls = [(t.id, t.function.name) for t in sdk.message.tool_calls or []]
    assert sdk_calls == [(c.id, c.name) for c in result.tool_calls]


@pytest.mark.parametrize("ex", _params("v2-chat-stream"))
@pytest.mark.parametrize("piece", [1, 7, 1 << 20], ids=["byte-by-byte", "7-bytes", "whole"])
def test_v2_chat_stream(ex: Exchange | None, piece: int) -> None:
    require_conformance_dir()
    assert ex is not None
    body = ex.request_body
    assert body["stream"] is True
    a = adapter()
    req = CompleteRequest(model=request_model(ex), messages=body["messages"], stream=True)
    result, chunks = feed_sse(a, req, ex.content, piece)
    want = expected_from_v2_stream(ex)

    assert "".join(c.text for c in chunks) == want["text"] == result.text
    assert [(c.id, c.name, c.arguments) for c in result.tool_calls] == want["tool_calls"]
    assert want["tool_calls"], "the recording streams tool calls"
    for call in result.tool_calls:
        call.parsed_arguments()
    assert result.raw["message"]["tool_plan"] == want["tool_plan"]
    check_finish(result.finish_reason, want["finish_reason"])
    assert [c.finish_reason for c in chunks if c.finish_reason] == [result.finish_reason]
    assert result.id == want["id"]
    usage_chunks = [c for c in chunks if c.usage is not None]
    assert len(usage_chunks) == 1
    assert usage_chunks[0].usage == result.usage
    check_usage(result.usage, want["usage"])
    check_cost(ex, result, want["usage"]["billed_units"], req.model, when_of(ex))


@pytest.mark.parametrize("ex", _params("v2-chat", "v2-chat-stream"))
def test_v2_request_built_like_the_recording(ex: Exchange | None) -> None:
    """The adapter builds the recorded URL and body: real conversations (tool calls, tool results) pass through."""
    require_conformance_dir()
    assert ex is not None
    body = ex.request_body
    req = CompleteRequest(
        model=body["model"],
        messages=body["messages"],
        tools=body.get("tools"),
        temperature=body.get("temperature"),
        stream=bool(body.get("stream")),
    )
    http = adapter().build_complete(req)
    assert (http.method, http.url) == ("POST", ex.uri)
    want = {k: v for k, v in _strip_none(body).items() if not (k == "stream" and v is False)}
    assert http.json == want
    assert http.headers["authorization"] == "Bearer test-conformance-key"


def _strip_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_strip_none(v) for v in value]
    return value


# ------------------------------------------------------------------------------------------------ v2 embed, rerank


@pytest.mark.parametrize("ex", _params("v2-embed", "v1-embed"))
def test_embed(ex: Exchange | None) -> None:
    require_conformance_dir()
    assert ex is not None
    a = adapter()
    data = ex.json()
    body = ex.request_body
    req = EmbedRequest(model=body["model"], inputs=body["texts"])
    parse = a.parse_v1_embed if kind(ex) == "v1-embed" else a.parse_embed
    result = parse(req, response(ex))

    vectors = data["embeddings"] if kind(ex) == "v1-embed" else data["embeddings"]["float"]
    assert result.vectors == vectors
    assert len(result.vectors) == len(body["texts"])
    assert result.request_id == ex.headers["x-debug-trace-id"]
    check_usage(result.usage, data["meta"])
    assert result.usage.input_tokens > 0
    check_cost(ex, result, data["meta"]["billed_units"], body["model"], when_of(ex))

    if kind(ex) == "v2-embed":
        http = a.build_embed(EmbedRequest(model=body["model"], inputs=body["texts"]))
        assert http.url == ex.uri
        assert {k: http.json[k] for k in body} == body  # what was recorded, plus embedding_types
        assert http.json["embedding_types"] == ["float"]
        assert to_sdk(result).embeddings.float_ == vectors


def test_embed_usage_extracted_like_genai_prices() -> None:
    """genai-prices' own Cohere embeddings extractor reads the same billed input tokens."""
    (ex,) = _file("cohere/v2-embed.yaml")
    result = adapter().parse_embed(EmbedRequest(model="embed-v4.0", inputs=[]), response(ex))
    extracted = genai_prices.extract_usage({**ex.json(), "model": "embed-v4.0"}, provider_id="cohere",
                                           api_flavor="embeddings")
    assert extracted.usage.input_tokens == result.usage.input_tokens


@pytest.mark.parametrize("ex", _params("v2-rerank"))
def test_rerank(ex: Exchange | None) -> None:
    require_conformance_dir()
    assert ex is not None
    a = adapter()
    data = ex.json()
    body = ex.request_body
    req = RerankRequest(model=body["model"], query=body["query"], documents=body["documents"], top_n=body["top_n"])
    http = a.build_rerank(req)
    assert http.url == ex.uri
    assert http.json == _strip_none(body)

    result = a.parse_rerank(req, response(ex))
    assert isinstance(result, Reranking)
    assert [(h.index, h.relevance_score) for h in result.results] == [
        (r["index"], r["relevance_score"]) for r in data["results"]
    ]
    check_usage(result.usage, data["meta"])
    assert result.usage.units["search_units"] == data["meta"]["billed_units"]["search_units"]
    assert result.usage.input_tokens == result.usage.output_tokens == 0
    check_cost(ex, result, data["meta"]["billed_units"], body["model"], when_of(ex))
    assert to_sdk(result).results[0].index == data["results"][0]["index"]


# ------------------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize("ex", _params("error"))
def test_error(ex: Exchange | None) -> None:
    require_conformance_dir()
    assert ex is not None
    a = adapter()
    body = ex.json()
    err = a.map_error(response(ex), request_model(ex))
    assert type(err) is {404: NotFoundError}[ex.status]
    assert err.status == ex.status
    assert err.body == body
    assert err.message == body["message"]
    assert err.provider == "cohere"
    assert err.model == request_model(ex)
    assert err.request_id == body["id"]  # Cohere error bodies carry the request id
    assert err.headers.get("content-type") == ex.headers.get("content-type")
    assert body["message"][:40] in str(err)
    cost = a.error_cost(err)
    assert cost is not None
    assert cost.total == 0, "error responses are not billed"


# ------------------------------------------------------------------------------------------------ v1


@pytest.mark.parametrize("ex", _params("v1-chat"))
def test_v1_chat(ex: Exchange | None) -> None:
    require_conformance_dir()
    assert ex is not None
    data = ex.json()
    model = request_model(ex)
    result = adapter().parse_v1_chat(CompleteRequest(model=model, messages=[]), response(ex))
    assert result.text == data["text"]
    want_calls = [(tc["name"], tc["parameters"]) for tc in data.get("tool_calls") or []]
    assert [(c.name, c.parsed_arguments()) for c in result.tool_calls] == want_calls
    # v1 says COMPLETE even when it called tools: normalised to tool_calls then.
    assert data["finish_reason"] == "COMPLETE"
    assert result.finish_reason == ("tool_calls" if want_calls else "stop")
    assert result.id == data["response_id"]
    assert result.raw == data  # citations, documents, search queries kept
    check_usage(result.usage, data["meta"])
    check_cost(ex, result, data["meta"]["billed_units"], model, when_of(ex))


@pytest.mark.parametrize("ex", _params("v1-generate"))
def test_v1_generate(ex: Exchange | None) -> None:
    require_conformance_dir()
    assert ex is not None
    data = ex.json()
    model = request_model(ex)
    result = adapter().parse_v1_generate(CompleteRequest(model=model, messages=[]), response(ex))
    gen = data["generations"][0]
    assert result.text == gen["text"]
    check_finish(result.finish_reason, gen["finish_reason"])
    assert result.id == data["id"]
    check_usage(result.usage, data["meta"])
    check_cost(ex, result, data["meta"]["billed_units"], model, when_of(ex))


@pytest.mark.parametrize("ex", _params("v1-chat-stream"))
@pytest.mark.parametrize("piece", [1, 7, 1 << 20], ids=["byte-by-byte", "7-bytes", "whole"])
def test_v1_chat_stream(ex: Exchange | None, piece: int) -> None:
    require_conformance_dir()
    assert ex is not None
    events = [json.loads(line) for line in ex.content.decode().splitlines() if line.strip()]
    end = events[-1]
    assert end["event_type"] == "stream-end"
    model = request_model(ex)
    decoder = adapter().v1_stream_decoder(CompleteRequest(model=model, messages=[], stream=True))
    chunks = []
    for i in range(0, len(ex.content), piece):
        chunks.extend(decoder.feed(ex.content[i : i + piece]))
    chunks.extend(decoder.close())
    result = decoder.result()

    streamed = "".join(e.get("text", "") for e in events if e["event_type"] == "text-generation")
    assert "".join(c.text for c in chunks) == streamed
    assert result.text == end["response"]["text"]
    check_finish(result.finish_reason, end["finish_reason"])
    assert [c.finish_reason for c in chunks if c.finish_reason] == [result.finish_reason]
    assert result.id == end["response"]["response_id"]
    check_usage(result.usage, end["response"]["meta"])
    check_cost(ex, result, end["response"]["meta"]["billed_units"], model, when_of(ex))


def test_v1_stream_cut_short_is_an_error() -> None:
    (ex,) = _file("cohere/v1-chat-stream-ndjson.yaml")
    decoder = adapter().v1_stream_decoder(CompleteRequest(model="command", messages=[], stream=True))
    decoder.feed(ex.content[: len(ex.content) // 2])
    with pytest.raises(ck.MalformedResponseError):
        decoder.close()


# ------------------------------------------------------------------------------------------------ file facts


def _file(rel: str) -> list[Exchange]:
    require_conformance_dir()
    return load(rel)


def test_billed_units_not_processed_tokens() -> None:
    """A reasoning answer billed 80/301 tokens for 1494/330 processed: the bill follows billed_units."""
    (ex,) = _file("cohere/v2-chat-reasoning-thinking-tool-call.yaml")
    r = adapter().parse_complete(CompleteRequest(model="command-a-reasoning-08-2025", messages=[]), response(ex))
    assert (r.usage.input_tokens, r.usage.output_tokens) == (80, 301)
    assert r.raw["usage"]["tokens"] == {"input_tokens": 1494, "output_tokens": 330}
    assert r.text == ""  # only a thinking block and a tool call
    assert r.raw["message"]["content"][0]["type"] == "thinking"


def test_cached_tokens_convention_matches_genai_prices() -> None:
    """``cached_tokens`` (2928) exceeds the billed input (2406): it is not a billed cache read.

    genai-prices' own Cohere extractor (the default flavour) reads the same billed quantities, with no cache field.
    """
    (ex,) = _file("cohere/v2-chat-cached-tokens.yaml")
    data = ex.json()
    r = adapter().parse_complete(CompleteRequest(model="command-r7b-12-2024", messages=[]), response(ex))
    assert data["usage"]["cached_tokens"] > data["usage"]["billed_units"]["input_tokens"]
    extracted = genai_prices.extract_usage({**data, "model": "command-r7b-12-2024"}, provider_id="cohere")
    assert extracted.usage.input_tokens == r.usage.input_tokens
    assert extracted.usage.output_tokens == r.usage.output_tokens
    assert not extracted.usage.cache_read_tokens
    assert r.usage.cached_input_tokens == 0
    cost = PriceBook().token_cost(adapter().price_ref(r.model, r), r.usage)
    assert cost.total == extracted.calc_price().total_price


def test_citations_kept() -> None:
    _, second = _file("cohere/v2-chat-tool-calls-with-history.yaml")
    r = adapter().parse_complete(CompleteRequest(model="command-r", messages=[]), response(second))
    cites = r.raw["message"]["citations"]
    assert [c["text"] for c in cites] == ["4:20 PM", "sunny with a temperature of 20°C."]
    assert all(r.text[c["start"] : c["end"]] == c["text"] for c in cites)
    assert to_sdk(r).message.citations[0].sources[0].type == "tool"


# ------------------------------------------------------------------------------------------------ client level


CLIENT_KINDS = ("v2-chat", "v2-chat-stream", "v2-embed", "error")


def _client_call(client: ck.Client, ex: Exchange) -> Any:
    body = ex.request_body
    model = f"cohere:{body['model']}"
    if ex.path == "/v2/embed":
        extra = {"input_type": body["input_type"]} if body.get("input_type") != "search_document" else {}
        return client.embed(model, body["texts"], extra_body=extra or ck.NOT_GIVEN)
    opts: dict[str, Any] = {}
    if body.get("tools"):
        opts["tools"] = body["tools"]
    if body.get("stream"):
        with client.stream(model, messages=body["messages"], **opts) as s:
            assert list(s)
        return s.result
    return client.complete(model, messages=body["messages"], **opts)


def _replay_params() -> list[Any]:
    if not ALL_FILES:
        return [MISSING]
    return [
        pytest.param(f, id=f)
        for f in ALL_FILES
        if f not in UNSUPPORTED and all(kind(ex) in CLIENT_KINDS for ex in load(f))
    ]


@pytest.mark.parametrize("rel", _replay_params())
def test_replay_through_client(rel: str | None, tmp_path: Path) -> None:
    """The whole v2 recording, as a vcrpy cassette, replayed through ``ck.Client`` with the network off."""
    require_conformance_dir()
    assert rel is not None
    exchanges = load(rel)
    cassette = tmp_path / "cassette.yaml"
    cassette.write_text(yaml.safe_dump(to_vcr(exchanges), allow_unicode=True), "utf-8")
    client = ck.Client(
        config=None,
        providers={"cohere": {"api_key": "test-conformance-key"}},
        ledger="none",
        retry_policy=RetryPolicy(RetryConfig(max_retries=0), sleep=lambda s: None),
    )
    recorder = vcr.VCR(record_mode="none", match_on=["method", "scheme", "host", "port", "path", "query"])
    with recorder.use_cassette(str(cassette)) as cass, client, warnings.catch_warnings():
        warnings.simplefilter("ignore", UnknownPriceWarning)
        for ex in exchanges:
            if kind(ex) == "error":
                with pytest.raises(NotFoundError) as info:
                    _client_call(client, ex)
                assert info.value.status == ex.status
                assert info.value.body == ex.json()
                assert info.value.request_id == ex.json()["id"]
                continue
            result = _client_call(client, ex)
            assert [a.outcome for a in result.attempts] == ["success"]
            if kind(ex) == "v2-chat-stream":
                want = expected_from_v2_stream(ex)
                assert result.text == want["text"]
                raw_usage = want["usage"]
                billed = raw_usage["billed_units"]
            elif kind(ex) == "v2-chat":
                data = ex.json()
                assert result.text == "".join(b["text"] for b in data["message"].get("content") or []
                                              if b["type"] == "text")
                raw_usage = data["usage"]
                billed = raw_usage["billed_units"]
            else:
                raw_usage = ex.json()["meta"]
                billed = raw_usage["billed_units"]
            check_usage(result.usage, raw_usage)
            check_cost(ex, result, billed, request_model(ex), result.attempts[0].started_at)
            if ex.file not in UNPRICED:
                assert result.cost.total is not None
            else:
                assert result.cost.total is None
        assert cass.all_played
