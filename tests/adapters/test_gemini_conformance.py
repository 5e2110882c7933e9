"""Conformance: every real Google recording in ``shared/conformance/google`` (Gemini API and Vertex AI).

The recordings are pydantic-ai's, made against the live APIs. Every ``generateContent`` and
``streamGenerateContent`` exchange is fed to the adapter that speaks its host (``gemini`` for
``generativelanguage.googleapis.com``, ``vertex`` for ``*aiplatform.googleapis.com``); expectations are read from
the recorded JSON itself, never from computekit: text (thought parts excluded), tool calls with their ids and thought
signatures, finish reason, every ``usageMetadata`` field, the tier that served the call, and the cost, which must
equal genai-prices' on the same usage (``genai_prices.extract_usage`` with its own Google extractor, plus the
grounded searches it does not read). Each file is also replayed through ``ck.Client`` and ``ck.AsyncClient``.

Exchanges of other kinds inside these files (pydantic-ai's own set-up calls) are listed in :data:`OTHER` with the
reason computekit does not send them; the two files that hold nothing else are in :data:`UNSUPPORTED`.
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
from _clients import MODES, call, close, stream
from _conformance import MISSING, Collection, Exchange, load, require_conformance_dir, to_vcr
from pydantic import SecretStr

import computekit as ck
from computekit._config import RetryConfig
from computekit._exceptions import ContentFilteredError
from computekit._retry import RetryPolicy
from computekit._sse import SSEDecoder
from computekit.adapters._base import CompleteRequest, HTTPResponse, ProviderSettings
from computekit.adapters.gemini import GEMINI_BASE_URL, GeminiAdapter, GeminiWire
from computekit.adapters.vertex import VertexAdapter, VertexSettings
from computekit.pricing import PriceBook

pytestmark = pytest.mark.conformance

FOLDER = "google"
KEY = "test-conformance-key"
PROJECT = "pydantic-ai"
WHEN = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
"""Google's responses carry no Date header: both sides price at this time."""

# Files holding no exchange computekit sends, with the reason.
UNSUPPORTED: dict[str, str] = {
    "google/google_model_usage_limit_exceeded.yaml": (
        "only a countTokens call: computekit has no token-counting verb (budgets estimate before sending)"
    ),
    "google/google_vertexai_model_usage_limit_exceeded.yaml": (
        "only a Vertex countTokens call: computekit has no token-counting verb (budgets estimate before sending)"
    ),
}

# Exchanges of other kinds inside exercised files, by kind, with the reason they are not sent by computekit.
OTHER: dict[str, str] = {
    "count-tokens": "countTokens: computekit has no token-counting verb",
    "file-search-store": "fileSearchStores set-up (create, upload, delete): computekit has no file-store verb; the "
                         "generateContent calls that use the store are exercised",
    "download": "pydantic-ai downloading a document to inline it: not a Google API call",
    "oauth-token": "google-auth refreshing an access token: done by google-auth itself, not by the adapter",
    "other-provider": "an OpenAI or Anthropic call earlier in the same conversation (pydantic-ai's cross-provider "
                      "history tests): their wire formats are exercised by their own conformance modules",
}

FINISH = {"STOP": "stop", "MAX_TOKENS": "length"}
USAGE_FACTS = {"totalTokenCount", "trafficType", "serviceTier", "promptTokensDetails", "candidatesTokensDetails",
               "cacheTokensDetails", "toolUsePromptTokensDetails"}


# ------------------------------------------------------------------------------------------------ helpers


def kind(ex: Exchange) -> str | None:
    host, path = ex.host, ex.path
    if host == "oauth2.googleapis.com":
        return "oauth-token"
    if not host.endswith("googleapis.com"):
        return "other-provider" if host in ("api.openai.com", "api.anthropic.com") else "download"
    if "fileSearchStores" in path:
        return "file-search-store"
    method = path.rsplit(":", 1)[-1]
    if method == "countTokens":
        return "count-tokens"
    if ex.method == "POST" and method == "streamGenerateContent":
        return "stream"
    if ex.method == "POST" and method == "generateContent":
        return "message"
    return None


def is_vertex(ex: Exchange) -> bool:
    return ex.host.endswith("aiplatform.googleapis.com")


def adapter(ex: Exchange) -> GeminiWire:
    if is_vertex(ex):
        root = ex.uri.split("/projects/")[0]
        return VertexAdapter(ProviderSettings(name="vertex", base_url=root, api_key=None, timeout=30,
                                              options=VertexSettings(project=PROJECT)))
    return GeminiAdapter(ProviderSettings(name="gemini", base_url=GEMINI_BASE_URL, api_key=SecretStr(KEY), timeout=30))


def model_of(ex: Exchange) -> str:
    return ex.path.rsplit("/models/", 1)[1].split(":")[0]


def events(ex: Exchange) -> list[dict[str, Any]]:
    return [json.loads(d) for d in ex.sse_data()]


def responses(ex: Exchange) -> list[dict[str, Any]]:
    """The GenerateContentResponse objects of an exchange (one, or one per stream event)."""
    return events(ex) if ex.is_sse else [ex.json()]


def expected(ex: Exchange) -> dict[str, Any]:
    """Text, calls, finish reason, usage and meta, read from the recorded response(s)."""
    text: list[str] = []
    thoughts: list[str] = []
    calls: list[tuple[str | None, str, Any, str | None]] = []
    finish = None
    usage: dict[str, Any] = {}
    grounding: dict[str, Any] = {}
    last: dict[str, Any] = {}
    for r in responses(ex):
        last = r
        if r.get("usageMetadata"):
            usage = r["usageMetadata"]  # running totals: the last event's are the call's
        for cand in r.get("candidates") or []:
            for p in (cand.get("content") or {}).get("parts") or []:
                if "functionCall" in p:
                    fc = p["functionCall"]
                    calls.append((fc.get("id"), fc["name"], fc.get("args") or {}, p.get("thoughtSignature")))
                elif "text" in p:
                    (thoughts if p.get("thought") else text).append(p["text"])
            finish = cand.get("finishReason") or finish
            grounding = cand.get("groundingMetadata") or grounding
    return {"text": "".join(text), "thoughts": thoughts, "calls": calls, "finish": finish, "usage": usage,
            "model": last.get("modelVersion"), "id": last.get("responseId"), "grounding": grounding}


def parse(ex: Exchange, piece: int = 1 << 20) -> tuple[ck.Completion, list[ck.Chunk]]:
    ad = adapter(ex)
    req = CompleteRequest(model=model_of(ex), messages=[], stream=ex.is_sse)
    if not ex.is_sse:
        return ad.parse_complete(req, HTTPResponse(ex.status, ex.headers, ex.content, ex.uri)), []
    decoder = ad.stream_decoder(req)
    sse = SSEDecoder(4 * 1024 * 1024)
    chunks: list[ck.Chunk] = []
    for i in range(0, len(ex.content), piece):
        for event in sse.feed(ex.content[i : i + piece]):
            chunks.extend(decoder.feed(event))
    evs, cut = sse.close()
    for event in evs:
        chunks.extend(decoder.feed(event))
    assert not cut
    assert decoder.done, "the last event has a finish reason"
    return decoder.result(), chunks


def web_searches(model: str, grounding: dict[str, Any]) -> int:
    """Google bills Gemini 3 grounding per search query and earlier models per grounded prompt."""
    queries = grounding.get("webSearchQueries") or []
    if not queries:
        return 0
    return len(queries) if model.startswith("gemini-3") else 1


def check_usage(usage: ck.Usage, raw: dict[str, Any]) -> None:
    """Every field of the recorded usageMetadata is accounted for in computekit's Usage."""
    for key in raw:
        assert key in USAGE_FACTS or key in {"promptTokenCount", "candidatesTokenCount", "thoughtsTokenCount",
                                             "cachedContentTokenCount", "toolUsePromptTokenCount"}, (
            f"usage field {key!r} is not handled: decide how computekit carries it")
    prompt = raw.get("promptTokenCount", 0)
    tool = raw.get("toolUsePromptTokenCount", 0)
    assert usage.input_tokens == prompt + tool  # promptTokenCount already includes the cached tokens
    assert usage.cached_input_tokens == raw.get("cachedContentTokenCount", 0)
    assert usage.output_tokens == raw.get("candidatesTokenCount", 0) + raw.get("thoughtsTokenCount", 0)
    assert usage.reasoning_tokens == raw.get("thoughtsTokenCount", 0)
    audio = sum(d["tokenCount"] for k in ("promptTokensDetails", "toolUsePromptTokensDetails")
                for d in raw.get(k) or [] if d.get("modality") == "AUDIO")
    assert usage.input_audio_tokens == audio - cached_audio(raw)  # cached audio is inside the cached count
    assert usage.cached_input_audio_tokens == cached_audio(raw)
    assert usage.output_image_tokens == sum(d["tokenCount"] for d in raw.get("candidatesTokensDetails") or []
                                            if d.get("modality") == "IMAGE")
    if "totalTokenCount" in raw and raw.get("candidatesTokenCount") is not None:
        assert usage.total_tokens == raw["totalTokenCount"]


def cached_audio(raw: dict[str, Any]) -> int:
    return sum(d["tokenCount"] for d in raw.get("cacheTokensDetails") or [] if d.get("modality") == "AUDIO")


def check_cost(result: ck.Completion, ex: Exchange, want: dict[str, Any]) -> Decimal:
    """computekit's cost equals genai-prices' reading of the same response (its own Google extractor)."""
    ad = adapter(ex)
    got = PriceBook().token_cost(ad.price_ref(result.model, result), result.usage, WHEN)
    last = responses(ex)[-1]
    extracted = genai_prices.extract_usage({**last, "usageMetadata": want["usage"]}, provider_id="google")
    ctx = {"service_tier": result.service_tier} if result.service_tier in ("flex", "priority") else None
    model = extracted.model
    assert model is not None
    base = extracted.calc_price(genai_request_timestamp=WHEN, price_context=ctx)
    searches = web_searches(want["model"], want["grounding"])
    assert result.usage.units.get("web_searches", 0) == searches
    price = base.model_price
    search_price = Decimal(searches) * (price.web_searches_kcount or 0) / 1000
    assert got.total is not None, got.reason
    assert got.price_source is not None
    assert got.price_source.table == "genai-prices"
    assert sum(line.amount for line in got.lines) == got.total
    assert got.total == base.total_price + search_price, f"{ex.id}: computekit {got.total} != genai-prices"
    return got.total


# ------------------------------------------------------------------------------------------------ collection


COLLECTION = Collection.of(FOLDER, unsupported=UNSUPPORTED)
ALL_FILES, EXCHANGES = COLLECTION.files, COLLECTION.exchanges


def _params(*kinds: str) -> list[Any]:
    return COLLECTION.params(kind, *kinds)


def test_conformance_directory_present() -> None:
    d = require_conformance_dir()
    assert (d / FOLDER).is_dir()
    assert len(ALL_FILES) == 69


@pytest.mark.parametrize("rel", ALL_FILES or [MISSING])
def test_every_file_is_exercised_or_listed(rel: str | None) -> None:
    require_conformance_dir()
    assert rel is not None
    exchanges = load(rel)
    assert exchanges
    kinds = [kind(ex) for ex in exchanges]
    assert None not in kinds, f"{rel}: an exchange is neither exercised nor listed: {kinds}"
    assert all(k in ("message", "stream") or k in OTHER for k in kinds)
    if rel in UNSUPPORTED:
        assert not {"message", "stream"} & set(kinds), f"{rel} holds calls computekit sends: exercise it"
    else:
        assert {"message", "stream"} & set(kinds), f"{rel} has no generateContent call: list it with a reason"


def test_counts() -> None:
    require_conformance_dir()
    exercised = [f for f in ALL_FILES if f not in UNSUPPORTED]
    assert len(exercised) + len(UNSUPPORTED) == len(ALL_FILES) == 69
    assert len(exercised) == 67
    streams = [ex for ex in EXCHANGES if kind(ex) == "stream"]
    messages = [ex for ex in EXCHANGES if kind(ex) == "message"]
    assert (len(streams), len(messages)) == (11, 76)
    assert sum(is_vertex(ex) for ex in streams + messages) >= 15


# ------------------------------------------------------------------------------------------------ adapter level


@pytest.mark.parametrize("ex", _params("message", "stream"))
def test_response(ex: Exchange | None) -> None:
    require_conformance_dir()
    assert ex is not None
    want = expected(ex)
    last = responses(ex)[-1]
    blocked = (last.get("promptFeedback") or {}).get("blockReason")
    if blocked or (want["finish"] == "SAFETY" and not want["text"]):
        with pytest.raises(ContentFilteredError) as info:
            parse(ex)
        err = info.value
        assert err.provider == adapter(ex).provider
        assert err.status == 200
        assert str(blocked or "SAFETY") in str(err)
        assert KEY not in repr(err) + str(err)
        cost = adapter(ex).error_cost(err)
        assert cost is not None
        if want["usage"].get("promptTokenCount"):
            assert cost.total is None, "a blocked prompt with counted tokens may be billed: unknown, never 0"
        else:
            assert cost.total == 0
        return
    result, _ = parse(ex)
    assert result.text == want["text"]
    for thought in want["thoughts"]:
        if thought.strip():
            assert thought not in result.text, "thought parts are never in the answer text"
    assert [(c.name, c.parsed_arguments(), c.signature) for c in result.tool_calls] == [
        (n, a, s) for _, n, a, s in want["calls"]]
    for c, (call_id, _, _, _) in zip(result.tool_calls, want["calls"], strict=True):
        assert c.id == call_id if call_id else c.id.startswith("ck-call-")
    assert [c.name for c in result.message.tool_calls or []] == [n for _, n, _, _ in want["calls"]]
    wanted_finish = "tool_calls" if want["calls"] and want["finish"] == "STOP" else FINISH[want["finish"]]
    assert result.finish_reason == wanted_finish
    assert result.id == want["id"]
    assert result.response_model == want["model"]
    check_usage(result.usage, want["usage"])
    assert result._usage_reported
    limit = (ex.request_body.get("generationConfig") or {}).get("maxOutputTokens")
    if limit is not None:  # thoughts count inside maxOutputTokens: a budget's worst case (max_tokens) bounds output
        assert result.usage.output_tokens <= limit
    traffic = want["usage"].get("trafficType")
    if traffic == "ON_DEMAND_FLEX":
        assert result.service_tier == "flex"
    check_cost(result, ex, want)


@pytest.mark.parametrize("ex", _params("stream"))
@pytest.mark.parametrize("piece", [1, 7, 1 << 20], ids=["byte-by-byte", "7-bytes", "whole"])
def test_stream_chunks(ex: Exchange | None, piece: int) -> None:
    require_conformance_dir()
    assert ex is not None
    result, chunks = parse(ex, piece)
    want = expected(ex)
    assert "".join(c.text for c in chunks) == want["text"] == result.text
    frags = [(tc["id"], tc["name"], tc["arguments"]) for c in chunks for tc in c.tool_calls]
    assert frags == [(c.id, c.name, c.arguments) for c in result.tool_calls]
    assert [c.finish_reason for c in chunks if c.finish_reason] == [result.finish_reason]
    usage_chunks = [c.usage for c in chunks if c.usage is not None]
    assert usage_chunks == [result.usage], "usage is reported once, with the last event (counts are running totals)"


@pytest.mark.parametrize("ex", _params("message", "stream"))
def test_request_built_like_the_recording(ex: Exchange | None) -> None:
    """Where the recorded body says only what computekit's arguments say, the adapter builds the same body."""
    require_conformance_dir()
    assert ex is not None
    body = ex.request_body
    assert isinstance(body, dict)
    ad = adapter(ex)
    messages = _messages(body)
    extra = {k: v for k, v in body.items() if k not in ("contents", "systemInstruction", "tools", "generationConfig")}
    config = dict(body.get("generationConfig") or {})
    kw: dict[str, Any] = {}
    if "temperature" in config:
        kw["temperature"] = config.pop("temperature")
    if "maxOutputTokens" in config:
        kw["max_tokens"] = config.pop("maxOutputTokens")
    extra.update(config)
    req = CompleteRequest(model=model_of(ex), messages=messages, stream=ex.is_sse, tools=_tools(body), extra=extra,
                          **kw)
    built = ad.complete_body(req)
    assert built["contents"] == _contents(body["contents"])
    if "systemInstruction" in body:
        assert built["systemInstruction"]["parts"] == body["systemInstruction"]["parts"]
    if "tools" in body:
        assert built["tools"] == _native_tools(body["tools"])
    assert built.get("generationConfig", {}) == {**body.get("generationConfig", {})}
    if not is_vertex(ex):  # Vertex's URL and credentials are checked by the replays (ADC stood in for)
        http = ad.build_complete(req)
        assert http.url == ex.uri
        assert http.headers["x-goog-api-key"] == KEY
        assert KEY not in http.url
        assert "authorization" not in http.headers


# The recorded bodies, rewritten the way a computekit user writes the same conversation.


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if "systemInstruction" in body:
        out.append({"role": "system", "content": body["systemInstruction"]["parts"]})
    for c in body["contents"]:
        calls = [p for p in c["parts"] if "functionCall" in p]
        results = [p for p in c["parts"] if "functionResponse" in p]
        if results:
            for p in results:
                fr = p["functionResponse"]
                out.append({"role": "tool", "tool_call_id": fr.get("id") or f"ck-call-{fr['name']}",
                            "name": fr["name"], "content": json.dumps(fr["response"])})
            continue
        others = [p for p in c["parts"] if "functionCall" not in p]
        role = "assistant" if c["role"] == "model" else "user"
        msg: dict[str, Any] = {"role": role, "content": others}
        if calls:
            msg["tool_calls"] = [{"id": p["functionCall"].get("id") or "ck-call-0", "name": p["functionCall"]["name"],
                                  "arguments": json.dumps(p["functionCall"].get("args", {})),
                                  **({"signature": p["thoughtSignature"]} if "thoughtSignature" in p else {})}
                                 for p in calls]
        out.append(msg)
    return out


def _contents(contents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The recorded contents with what computekit sends differently: no id on calls that had none, args always."""
    out = []
    for c in contents:
        parts = []
        for p in c["parts"]:
            if "functionCall" in p:
                fc = {"name": p["functionCall"]["name"], "args": p["functionCall"].get("args", {})}
                if p["functionCall"].get("id"):
                    fc["id"] = p["functionCall"]["id"]
                p = {**p, "functionCall": fc}
            parts.append(p)
        out.append({"role": c["role"], "parts": parts})
    return out


def _tools(body: dict[str, Any]) -> list[dict[str, Any]] | None:
    tools: list[dict[str, Any]] = []
    for t in body.get("tools") or []:
        if "functionDeclarations" in t:
            for d in t["functionDeclarations"]:
                tools.append({"name": d["name"], "description": d.get("description", ""),
                              "parameters": d.get("parameters_json_schema") or d.get("parametersJsonSchema")})
        else:
            tools.append(t)
    return tools or None


def _native_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Function declarations as computekit writes them (camelCase ``parametersJsonSchema``; empty description
    omitted), native tools first."""
    native = [t for t in tools if "functionDeclarations" not in t]
    decls = []
    for t in tools:
        for d in t.get("functionDeclarations", []):
            out = {"name": d["name"]}
            if d.get("description"):
                out["description"] = d["description"]
            schema = d.get("parameters_json_schema") or d.get("parametersJsonSchema")
            if schema:
                out["parametersJsonSchema"] = schema
            decls.append(out)
    return native + ([{"functionDeclarations": decls}] if decls else [])


# ------------------------------------------------------------------------------------------------ file facts


def _one(rel: str, index: int = 0) -> Exchange:
    require_conformance_dir()
    return load(rel)[index]


def test_thought_signature_goes_back_with_its_call() -> None:
    require_conformance_dir()
    first, second = load("google/google_streaming_tool_call_thought_signature.yaml")
    result, _ = parse(first)
    (call_made,) = result.tool_calls
    assert call_made.signature is not None
    assert call_made.signature.startswith("EpwICpkIAXLI2nx")
    # Sent back on the next turn, the call carries its signature (as the recorded second request does).
    ad = adapter(second)
    msgs = [{"role": "user", "content": "What is the capital of the user country? Call the tool"},
            result.message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call_made.id, "content": "Mexico"}]
    body = ad.complete_body(CompleteRequest(model=model_of(second), messages=msgs))
    sent_call = body["contents"][1]["parts"][0]
    assert sent_call["thoughtSignature"] == call_made.signature
    assert sent_call["functionCall"] == {"name": "get_country", "args": {}}  # Google gave no id: none is invented
    assert body["contents"][2]["parts"][0]["functionResponse"] == {"name": "get_country",
                                                                   "response": {"result": "Mexico"}}


def test_thinking_parts_stay_out_of_the_text_and_are_billed_as_output() -> None:
    ex = _one("google/google_model_thinking_part.yaml")
    result, _ = parse(ex)
    thought_parts = [p for p in result.raw["candidates"][0]["content"]["parts"] if p.get("thought")]
    assert thought_parts
    for p in thought_parts:
        assert p["text"][:40] not in result.text
    raw = ex.json()["usageMetadata"]
    assert result.usage.reasoning_tokens == raw["thoughtsTokenCount"] > 0
    assert result.usage.output_tokens == raw["candidatesTokenCount"] + raw["thoughtsTokenCount"]


def test_implicit_cache_is_priced_at_the_cache_rate() -> None:
    ex = _one("google/google_model_mobile_youtube_video_url_input.yaml")
    result, _ = parse(ex)
    raw = ex.json()["usageMetadata"]
    assert result.usage.cached_input_tokens == raw["cachedContentTokenCount"] == 17379
    assert result.usage.input_tokens == raw["promptTokenCount"]  # the cached tokens are inside the prompt count
    cost = PriceBook().token_cost(adapter(ex).price_ref(result.model, result), result.usage, WHEN)
    lines = {line.item: line for line in cost.lines}
    audio = cached_audio(raw)
    assert audio == 1881
    assert lines["cached input"].quantity == 17379 - audio  # video and text read from the cache
    assert lines["cached input audio"].quantity == audio  # audio read from the cache, at its own rate
    assert lines["cached input"].unit_price < lines["input"].unit_price
    assert lines["cached input audio"].unit_price < lines["input audio"].unit_price


def test_grounded_search_is_billed_per_prompt_before_gemini_3_and_per_query_after() -> None:
    older = _one("google/google_model_web_search_tool.yaml")
    r_old, _ = parse(older)
    assert older.json()["candidates"][0]["groundingMetadata"]["webSearchQueries"]
    assert r_old.usage.units["web_searches"] == 1
    newer = load("google/google_vertex_tool_combination_omits_include_server_side_tool_invocations.yaml")[1]
    r_new, _ = parse(newer)
    queries = newer.json()["candidates"][0]["groundingMetadata"]["webSearchQueries"]
    assert r_new.usage.units["web_searches"] == len(queries)


def test_flex_traffic_is_priced_at_the_flex_rate() -> None:
    for ex in (_one("google/google_vertex_service_tier_flex.yaml"),
               _one("google/google_vertex_service_tier_flex_stream.yaml")):
        result, _ = parse(ex)
        assert responses(ex)[-1]["usageMetadata"]["trafficType"] == "ON_DEMAND_FLEX"
        assert result.service_tier == "flex"
        # The tier selects genai-prices' flex variant (this preview model has none yet: standard rates apply).
        assert adapter(ex).price_ref(result.model, result).context == (("service_tier", "flex"),)


def test_safety_block_is_a_content_filtered_error() -> None:
    ex = _one("google/google_model_safety_settings.yaml")
    with pytest.raises(ContentFilteredError) as info:
        parse(ex)
    assert info.value.body == ex.json()
    assert "SAFETY" in str(info.value)


# ------------------------------------------------------------------------------------------------ client level


def _replay_params() -> list[Any]:
    if not ALL_FILES:
        return [MISSING]
    return [pytest.param(f, id=f) for f in ALL_FILES if f not in UNSUPPORTED]


class _FakeCredentials:
    """Application Default Credentials as google-auth returns them, with a token already fetched."""

    token = "ya29.fake-token-for-replay"
    valid = True

    def refresh(self, request: Any) -> None:  # pragma: no cover - valid tokens are never refreshed
        raise AssertionError("a valid token is not refreshed")


def _client(mode: str, vertex: dict[str, Any] | None) -> ck.Client | ck.AsyncClient:
    providers: dict[str, Any] = {"gemini": {"api_key": KEY}}
    if vertex is not None:
        providers["vertex"] = vertex
    cls = ck.Client if mode == "sync" else ck.AsyncClient
    return cls(config=None, providers=providers, ledger="none",
               retry_policy=RetryPolicy(RetryConfig(max_retries=0), sleep=lambda s: None))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("rel", _replay_params())
async def test_replay_through_client(rel: str | None, mode: str, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Each recorded generateContent call, replayed through the client over the real HTTP stack."""
    require_conformance_dir()
    assert rel is not None
    exchanges = [ex for ex in load(rel) if kind(ex) in ("message", "stream")]
    vertex = None
    if any(is_vertex(ex) for ex in exchanges):
        pytest.importorskip("google.auth")
        import google.auth

        monkeypatch.setattr(google.auth, "default", lambda scopes=None: (_FakeCredentials(), PROJECT))
        uri = exchanges[0].uri  # the root, project and location of the recording, as [providers.vertex] keys
        vertex = {"base_url": uri.split("/projects/")[0], "project": uri.split("/projects/")[1].split("/")[0],
                  "location": uri.split("/locations/")[1].split("/")[0]}
    cassette = tmp_path / "cassette.yaml"
    cassette.write_text(yaml.safe_dump(to_vcr(exchanges), allow_unicode=True), "utf-8")
    client = _client(mode, vertex)
    recorder = vcr.VCR(record_mode="none", match_on=["method", "scheme", "host", "port", "path", "query"])
    with recorder.use_cassette(str(cassette)) as cass:
        for ex in exchanges:
            provider = "vertex" if is_vertex(ex) else "gemini"
            model = f"{provider}:{model_of(ex)}"
            messages = _messages(ex.request_body)
            want = expected(ex)
            last = responses(ex)[-1]
            if (last.get("promptFeedback") or {}).get("blockReason") or (
                    want["finish"] == "SAFETY" and not want["text"]):
                with pytest.raises(ContentFilteredError):
                    await call(client, "complete", model, messages=messages)
                continue
            if ex.is_sse:
                chunks, result = await stream(client, model, messages=messages)
                assert chunks
            else:
                result = await call(client, "complete", model, messages=messages)
            assert result.text == want["text"]
            assert [a.outcome for a in result.attempts] == ["success"]
            check_usage(result.usage, want["usage"])
            assert result.cost.total is not None
            assert result.cost.total == PriceBook().token_cost(
                adapter(ex).price_ref(result.model, result), result.usage, result.attempts[0].started_at).total
        assert cass.all_played
    await close(client)
