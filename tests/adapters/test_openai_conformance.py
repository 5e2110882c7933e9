"""Conformance: every real OpenAI and OpenAI-compatible recording in ``shared/conformance`` through the adapters.

Each file in ``conformance/openai/`` and ``conformance/openai-compatible/`` is either exercised here (every
exchange in it) or listed in :data:`UNSUPPORTED` with the reason. Expectations are read from the recorded JSON
itself, never from computekit: text, tool calls, finish reason, every usage field, the request id, and the cost,
recomputed with ``genai_prices.calc_price`` on the same usage (the price tables are the source of truth; no price
constant is written here).

Two levels:

- adapter level: the recorded response is fed to ``parse_complete`` / ``stream_decoder`` / ``parse_embed`` /
  ``map_error`` directly;
- client level: the recording is converted to a plain vcrpy cassette and replayed through ``ck.Client`` (real
  httpx stack, network blocked), so URL building, transport, SSE framing and pricing run as in production.
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
from _conformance import MISSING, Collection, Exchange, load, require_conformance_dir, to_vcr
from pydantic import SecretStr

import computekit as ck
from computekit._config import RetryConfig
from computekit._exceptions import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    NotFoundError,
)
from computekit._retry import RetryPolicy
from computekit._sse import SSEDecoder
from computekit.adapters._base import (
    CompleteRequest,
    EmbedRequest,
    HTTPResponse,
    ProviderSettings,
)
from computekit.adapters.openai import OpenAIAdapter, OpenAIWire
from computekit.adapters.openai_compatible import PROFILES, OpenAICompatibleAdapter
from computekit.pricing import PriceBook

pytestmark = pytest.mark.conformance

FOLDERS = ("openai", "openai-compatible")

# Files computekit cannot replay yet, each with the reason. A file listed here must only hold exchanges on the
# unsupported endpoints below (so a chat recording cannot hide in this list).
FINETUNE_REASON = "fine-tuning: exercised by test_finetune_conformance"
UNSUPPORTED: dict[str, str] = {
    "openai/files-upload-fine-tune-multipart.yaml": (
        f"POST /v1/files (training-file upload, multipart): {FINETUNE_REASON}; the SDK has no files verb yet"
    ),
    "openai/files-upload-get-delete.json": (
        f"Files API upload/get/delete: {FINETUNE_REASON}; the SDK has no files verb yet"
    ),
    "openai/fine-tuning-create-cancel-events.json": (f"fine-tuning job create/cancel/events: {FINETUNE_REASON}"),
    "openai/fine-tuning-jobs-list-succeeded.yaml": f"fine-tuning job list (succeeded jobs): {FINETUNE_REASON}",
    "openai/fine-tuning-jobs-list-with-failed.json": f"fine-tuning job list (a failed job): {FINETUNE_REASON}",
}
UNSUPPORTED_PATHS = ("/v1/files", "/v1/fine_tuning/")

# Where each recorded host is priced in genai-prices (stated here from the recordings, not read from computekit).
TABLE_PROVIDER = {
    "api.openai.com": "openai",
    "api.together.xyz": "together",
    "api.groq.com": "groq",
    "api.deepseek.com": "deepseek",
}

# computekit's finish-reason vocabulary, and the provider words the recordings use for it.
FINISH_WORDS = {"stop", "length", "tool_calls", "content_filter"}
FINISH_SYNONYMS = {"eos": "stop"}  # Together

# Usage keys seen in the recordings that computekit deliberately does not carry (timings, not billed).
USAGE_TIMINGS = {"queue_time", "prompt_time", "completion_time", "total_time"}  # Groq

ENDPOINTS = ("chat/completions", "embeddings", "completions")


# ------------------------------------------------------------------------------------------------ helpers


def kind(ex: Exchange) -> str | None:
    """What an exchange exercises, or ``None`` when computekit has no verb for it."""
    if ex.method != "POST":
        return None
    if ex.path.endswith("/chat/completions"):
        if ex.status >= 400:
            return "error"
        return "chat-stream" if ex.is_sse else "chat"
    if ex.path.endswith("/embeddings"):
        return "error" if ex.status >= 400 else "embeddings"
    if ex.path.endswith("/completions"):
        return "error" if ex.status >= 400 else "text"
    return None


def provider_of(ex: Exchange) -> str:
    folder, name = ex.file.split("/", 1)
    return "openai" if folder == "openai" else name.split("-", 1)[0]


def base_url_of(ex: Exchange) -> str:
    for suffix in ENDPOINTS:
        if ex.uri.split("?")[0].endswith("/" + suffix):
            return ex.uri.split("?")[0][: -len(suffix) - 1]
    raise AssertionError(f"{ex.id}: no known endpoint in {ex.uri}")


def adapter_for(ex: Exchange) -> OpenAIWire:
    provider = provider_of(ex)
    cls = OpenAIAdapter if provider == "openai" else OpenAICompatibleAdapter
    return cls(
        ProviderSettings(name=provider, base_url=base_url_of(ex), api_key=SecretStr("test-conformance-key"), timeout=30)
    )


def request_model(ex: Exchange) -> str:
    body = ex.request_body
    return body["model"] if isinstance(body, dict) and "model" in body else "unknown-model"


def when_of(ex: Exchange, data: dict[str, Any] | None) -> dt.datetime:
    """When the call was made: the response's ``created`` time, else the recording date."""
    if data and isinstance(data.get("created"), int):
        return dt.datetime.fromtimestamp(data["created"], dt.UTC)
    if ex.recorded_at is not None:
        return ex.recorded_at
    raise AssertionError(f"{ex.id}: no date to price at")


def stream_payloads(ex: Exchange) -> list[dict[str, Any]]:
    data = ex.sse_data()
    assert data[-1] == "[DONE]", "an OpenAI stream ends with data: [DONE]"
    return [json.loads(d) for d in data[:-1]]


def expected_from_stream(ex: Exchange) -> dict[str, Any]:
    """Text, tool calls, finish reason and usage, assembled from the recorded chunks (independently)."""
    text: list[str] = []
    calls: dict[int, dict[str, str]] = {}
    finish = None
    usage = None
    meta: dict[str, Any] = {}
    for p in stream_payloads(ex):
        for k in ("id", "model", "created", "service_tier"):
            if p.get(k) is not None:
                meta[k] = p[k]
        if isinstance(p.get("usage"), dict):
            usage = p["usage"]
        for choice in p.get("choices") or []:
            delta = choice.get("delta") or {}
            text.append(delta.get("content") or "")
            for tc in delta.get("tool_calls") or []:
                acc = calls.setdefault(tc["index"], {"id": "", "name": "", "arguments": ""})
                acc["id"] = tc.get("id") or acc["id"]
                fn = tc.get("function") or {}
                acc["name"] += fn.get("name") or ""
                acc["arguments"] += fn.get("arguments") or ""
            if choice.get("finish_reason"):
                finish = choice["finish_reason"]
    return {
        "text": "".join(text),
        "tool_calls": [(c["id"], c["name"], c["arguments"]) for _, c in sorted(calls.items())],
        "finish_reason": finish,
        "usage": usage,
        "meta": meta,
    }


def check_finish(got: str | None, recorded: str | None) -> None:
    want = FINISH_SYNONYMS.get(recorded, recorded) if recorded else recorded
    assert got == want
    if recorded is not None:
        assert got in FINISH_WORDS, f"finish reason {got!r} is not in computekit's vocabulary"


def check_usage(usage: ck.Usage, raw: dict[str, Any]) -> None:
    """Every field of the recorded usage object is accounted for in computekit's Usage."""
    pd = raw.get("prompt_tokens_details") or {}
    cd = raw.get("completion_tokens_details") or {}
    for key, value in raw.items():
        if key == "prompt_tokens":
            assert usage.input_tokens == value
        elif key == "completion_tokens":
            assert usage.output_tokens == value
        elif key == "total_tokens":
            assert usage.input_tokens + usage.output_tokens == value
        elif key == "prompt_cache_hit_tokens":  # DeepSeek
            assert usage.cached_input_tokens == value
        elif key == "prompt_cache_miss_tokens":  # DeepSeek
            assert usage.input_tokens - usage.cached_input_tokens == value
        elif key in ("prompt_tokens_details", "completion_tokens_details") or key in USAGE_TIMINGS:
            continue
        else:
            raise AssertionError(f"usage field {key!r} is not handled: decide how computekit carries it")
    for key, value in pd.items():
        if key == "cached_tokens":
            assert usage.cached_input_tokens == value
        elif key == "audio_tokens":
            assert usage.input_audio_tokens == value
        elif key == "cache_write_tokens":
            assert usage.cache_write_tokens == value
        elif key in ("text_tokens", "image_tokens"):
            assert value <= usage.input_tokens  # a breakdown of prompt_tokens, priced as input
        else:
            raise AssertionError(f"prompt_tokens_details.{key} is not handled")
    for key, value in cd.items():
        if key == "reasoning_tokens":
            assert usage.reasoning_tokens == value
        elif key == "audio_tokens":
            assert usage.output_audio_tokens == value
        elif key in ("accepted_prediction_tokens", "rejected_prediction_tokens", "text_tokens"):
            # Billed as output tokens, and already counted in completion_tokens.
            assert value <= usage.output_tokens
        else:
            raise AssertionError(f"completion_tokens_details.{key} is not handled")
    if "cache_write_tokens" not in pd:
        assert usage.cache_write_tokens == 0


def genai_usage(raw: dict[str, Any]) -> genai_prices.Usage:
    """The recorded usage in genai-prices' vocabulary (read from the JSON, not from computekit)."""
    pd = raw.get("prompt_tokens_details") or {}
    cd = raw.get("completion_tokens_details") or {}
    cached = pd.get("cached_tokens")
    if cached is None:
        cached = raw.get("prompt_cache_hit_tokens")
    values = {
        "input_tokens": raw.get("prompt_tokens"),
        "output_tokens": raw.get("completion_tokens"),
        "cache_read_tokens": cached,
        "cache_write_tokens": pd.get("cache_write_tokens"),
        "input_audio_tokens": pd.get("audio_tokens"),
        "output_audio_tokens": cd.get("audio_tokens"),
        "output_reasoning_tokens": cd.get("reasoning_tokens"),
    }
    return genai_prices.Usage(**{k: v for k, v in values.items() if v})


def check_cost(
    ex: Exchange, adapter: OpenAIWire, result: Any, raw_usage: dict[str, Any], data: dict[str, Any], when: dt.datetime
) -> Decimal:
    """computekit's cost for ``result`` equals genai-prices' on the same usage, model, tier and time."""
    book = PriceBook()
    got = book.token_cost(adapter.price_ref(result.model, result), result.usage, when)
    model = data.get("model") or request_model(ex)
    tier = data.get("service_tier")
    ctx = {"service_tier": tier} if tier and tier != "default" else None
    want = genai_prices.calc_price(
        genai_usage(raw_usage),
        model,
        provider_id=TABLE_PROVIDER[ex.host],
        genai_request_timestamp=when,
        price_context=ctx,
    ).total_price
    if ex.host == "api.openai.com":
        # genai-prices' own reading of OpenAI's usage object agrees with the one above.
        flavor = "embeddings" if ex.path.endswith("/embeddings") else "chat"
        extracted = genai_prices.extract_usage(
            {"model": model, "usage": raw_usage}, provider_id="openai", api_flavor=flavor
        )
        assert extracted.calc_price(genai_request_timestamp=when, price_context=ctx).total_price == want
    assert got.total is not None, got.reason
    assert got.total == want, f"computekit {got.total} != genai-prices {want} for {model} at {when}"
    assert got.price_source is not None
    assert got.price_source.table == "genai-prices"
    assert sum(line.amount for line in got.lines) == got.total
    return got.total


def feed_stream(adapter: OpenAIWire, req: CompleteRequest, content: bytes, piece: int) -> tuple[Any, list[Any]]:
    decoder = adapter.stream_decoder(req)
    sse = SSEDecoder(4 * 1024 * 1024)
    chunks = []
    for i in range(0, len(content), piece):
        for event in sse.feed(content[i : i + piece]):
            chunks.extend(decoder.feed(event))
    events, cut = sse.close()
    for event in events:
        chunks.extend(decoder.feed(event))
    assert not cut
    assert decoder.done, "the decoder saw [DONE]"
    return decoder.result(), chunks


# ------------------------------------------------------------------------------------------------ collection


COLLECTION = Collection.of(*FOLDERS, unsupported=UNSUPPORTED)
ALL_FILES, EXCHANGES = COLLECTION.files, COLLECTION.exchanges


def _files_params() -> list[Any]:
    return ALL_FILES or [MISSING]


def _exchange_params(*kinds: str) -> list[Any]:
    return COLLECTION.params(kind, *kinds)


# ------------------------------------------------------------------------------------------------ coverage


def test_conformance_directory_present() -> None:
    d = require_conformance_dir()
    for folder in FOLDERS:
        assert (d / folder).is_dir(), f"{d / folder} is missing"
    assert ALL_FILES, "no fixture files found"


def test_unsupported_list_names_real_files() -> None:
    require_conformance_dir()
    stale = sorted(set(UNSUPPORTED) - set(ALL_FILES))
    assert not stale, f"UNSUPPORTED lists files that no longer exist: {stale}"


@pytest.mark.parametrize("rel", _files_params())
def test_every_file_is_exercised_or_listed(rel: str | None) -> None:
    """Each fixture file either has every exchange exercised below, or is listed with its reason."""
    require_conformance_dir()
    assert rel is not None
    exchanges = load(rel)
    assert exchanges, f"{rel} holds no exchanges"
    if rel in UNSUPPORTED:
        assert UNSUPPORTED[rel].strip(), "an unsupported file needs a reason"
        for ex in exchanges:
            assert ex.path.startswith(UNSUPPORTED_PATHS), (
                f"{ex.id} ({ex.method} {ex.path}) is on an endpoint computekit supports: test it, do not list it"
            )
        return
    for ex in exchanges:
        assert kind(ex) is not None, f"{ex.id}: {ex.method} {ex.path} is neither exercised nor listed"


def test_counts() -> None:
    """The tally reported in the summary: files exercised vs listed with a reason."""
    require_conformance_dir()
    exercised = [f for f in ALL_FILES if f not in UNSUPPORTED]
    assert len(exercised) + len(UNSUPPORTED) == len(ALL_FILES)
    assert len(exercised) >= 11
    assert sum(1 for ex in EXCHANGES if kind(ex) is not None) == len(EXCHANGES)


# ------------------------------------------------------------------------------------------------ adapter level


@pytest.mark.parametrize("ex", _exchange_params("chat"))
def test_chat_completion(ex: Exchange | None) -> None:
    require_conformance_dir()
    assert ex is not None
    adapter = adapter_for(ex)
    data = ex.json()
    model = request_model(ex)
    req = CompleteRequest(model=model, messages=(ex.request_body or {}).get("messages", []))
    result = adapter.parse_complete(req, HTTPResponse(ex.status, ex.headers, ex.content, ex.uri))

    choice = data["choices"][0]
    msg = choice["message"]
    assert result.text == (msg.get("content") or "")
    want_calls = [(tc["id"], tc["function"]["name"], tc["function"]["arguments"]) for tc in msg.get("tool_calls") or []]
    assert [(c.id, c.name, c.arguments) for c in result.tool_calls] == want_calls
    assert [(c.id, c.name, c.arguments) for c in result.message.tool_calls or []] == want_calls
    for call in result.tool_calls:
        call.parsed_arguments()  # the recorded arguments are valid JSON
    check_finish(result.finish_reason, choice.get("finish_reason"))
    assert result.id == data.get("id")
    assert result.service_tier == data.get("service_tier")
    assert result.response_model == data.get("model")
    assert result.provider == provider_of(ex)
    assert result.raw == data
    if "x-request-id" in ex.headers:
        assert result.request_id == ex.headers["x-request-id"]
    check_usage(result.usage, data["usage"])
    assert result._usage_reported
    check_cost(ex, adapter, result, data["usage"], data, when_of(ex, data))


@pytest.mark.parametrize("ex", _exchange_params("chat-stream"))
@pytest.mark.parametrize("piece", [1, 7, 1 << 20], ids=["byte-by-byte", "7-bytes", "whole"])
def test_chat_stream(ex: Exchange | None, piece: int) -> None:
    require_conformance_dir()
    assert ex is not None
    adapter = adapter_for(ex)
    body = ex.request_body or {}
    assert body.get("stream") is True
    req = CompleteRequest(model=request_model(ex), messages=body.get("messages", []), stream=True)
    result, chunks = feed_stream(adapter, req, ex.content, piece)
    want = expected_from_stream(ex)

    assert "".join(c.text for c in chunks) == want["text"] == result.text
    assert [(c.id, c.name, c.arguments) for c in result.tool_calls] == want["tool_calls"]
    for call in result.tool_calls:
        call.parsed_arguments()
    check_finish(result.finish_reason, want["finish_reason"])
    assert [c.finish_reason for c in chunks if c.finish_reason] == [result.finish_reason]
    assert result.id == want["meta"].get("id")
    assert result.response_model == want["meta"].get("model")
    assert want["usage"] is not None, "include_usage: the last chunk carries usage"
    usage_chunks = [c for c in chunks if c.usage is not None]
    assert len(usage_chunks) == 1
    assert usage_chunks[0].usage == result.usage
    check_usage(result.usage, want["usage"])
    assert result._usage_reported
    check_cost(ex, adapter, result, want["usage"], want["meta"], when_of(ex, want["meta"]))


@pytest.mark.parametrize("ex", _exchange_params("embeddings"))
def test_embeddings(ex: Exchange | None) -> None:
    require_conformance_dir()
    assert ex is not None
    adapter = adapter_for(ex)
    data = ex.json()
    body = ex.request_body
    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
    req = EmbedRequest(model=body["model"], inputs=inputs, dimensions=body.get("dimensions"))
    result = adapter.parse_embed(req, HTTPResponse(ex.status, ex.headers, ex.content, ex.uri))

    items = sorted(data["data"], key=lambda d: d["index"])
    assert result.vectors == [d["embedding"] for d in items]
    assert len(result.vectors) == len(inputs)
    if body.get("dimensions"):
        assert all(len(v) == body["dimensions"] for v in result.vectors)
    assert result.usage.input_tokens == data["usage"]["prompt_tokens"] == data["usage"]["total_tokens"]
    assert result.usage.output_tokens == 0
    assert result.request_id == ex.headers["x-request-id"]
    check_cost(ex, adapter, result, data["usage"], {"model": data.get("model")}, when_of(ex, None))


EXPECTED_ERRORS: dict[int, type[APIStatusError]] = {400: BadRequestError, 401: AuthenticationError, 404: NotFoundError}


@pytest.mark.parametrize("ex", _exchange_params("error"))
def test_error(ex: Exchange | None) -> None:
    require_conformance_dir()
    assert ex is not None
    adapter = adapter_for(ex)
    body = ex.json()
    err = adapter.map_error(HTTPResponse(ex.status, ex.headers, ex.content, ex.uri), request_model(ex))

    assert type(err) is EXPECTED_ERRORS[ex.status]
    assert err.status == ex.status
    assert err.body == body
    assert err.message == body["error"]["message"]
    assert err.provider == provider_of(ex)
    assert err.model == request_model(ex)
    assert err.request_id == ex.headers.get("x-request-id")
    assert err.headers.get("content-type") == ex.headers.get("content-type")
    assert str(ex.status) in str(err)
    assert body["error"]["message"][:40] in str(err)
    cost = adapter.error_cost(err)
    assert cost is not None
    assert cost.total == 0, "error responses are not billed"


# ------------------------------------------------------------------------------------------------ request side


@pytest.mark.parametrize("ex", _exchange_params("chat", "chat-stream", "error"))
def test_request_built_like_the_recording(ex: Exchange | None) -> None:
    """The adapter builds the recorded URL, and real conversations (tool calls, tool results) pass unchanged."""
    require_conformance_dir()
    assert ex is not None
    body = ex.request_body
    assert isinstance(body, dict)
    adapter = adapter_for(ex)
    req = CompleteRequest(
        model=body["model"],
        messages=body["messages"],
        tools=body.get("tools"),
        tool_choice=body.get("tool_choice"),
        stream=bool(body.get("stream")),
        service_tier=body.get("service_tier"),
    )
    http = adapter.build_complete(req)
    assert http.method == "POST"
    assert http.url == ex.uri
    assert http.json["model"] == body["model"]
    # Equal up to null fields (``"content": null`` next to tool calls and an absent content mean the same).
    assert _strip_none(http.json["messages"]) == _strip_none(body["messages"])
    if body.get("tools"):
        assert http.json["tools"] == body["tools"]
    if body.get("service_tier"):
        assert http.json["service_tier"] == body["service_tier"]
    if body.get("stream"):
        assert http.json["stream"] is True
        assert http.json["stream_options"] == {"include_usage": True}
    assert http.headers["authorization"] == "Bearer test-conformance-key"


def _strip_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_strip_none(v) for v in value]
    return value


def test_profiles_point_at_the_recorded_hosts() -> None:
    """Built-in profiles use the base URLs the recordings were made against."""
    require_conformance_dir()
    seen = {}
    for ex in EXCHANGES:
        if provider_of(ex) != "openai":
            seen.setdefault(provider_of(ex), base_url_of(ex))
    assert set(seen) >= {"together", "groq", "deepseek"}
    for provider, base in seen.items():
        profile = PROFILES[provider]
        if provider == "deepseek":
            # The recording used DeepSeek's /beta prefix; the profile uses the documented /v1 path, same host.
            assert profile.base_url.split("/")[2] == base.split("/")[2]
            continue
        assert profile.base_url == base
        assert profile.table_provider == TABLE_PROVIDER[base.split("/")[2]]


# ------------------------------------------------------------------------------------------------ file facts


def _file(rel: str) -> list[Exchange]:
    require_conformance_dir()
    return load(rel)


def _parse(ex: Exchange) -> ck.Completion:
    return adapter_for(ex).parse_complete(
        CompleteRequest(model=request_model(ex), messages=[]), HTTPResponse(ex.status, ex.headers, ex.content)
    )


def test_cached_prompt_tokens_priced_as_cache_reads() -> None:
    exs = _file("openai/chat-cached-prompt-tokens.yaml")
    results = [_parse(ex) for ex in exs]
    assert [r.usage.cached_input_tokens for r in results] == [0, 1024, 0, 0]
    hit = results[1]
    cost = PriceBook().token_cost(
        adapter_for(exs[1]).price_ref(hit.model, hit), hit.usage, when_of(exs[1], exs[1].json())
    )
    items = {line.item: line for line in cost.lines}
    assert items["cached input"].quantity == 1024
    assert items["input"].quantity == hit.usage.input_tokens - 1024
    assert items["cached input"].unit_price < items["input"].unit_price


def test_reasoning_tokens() -> None:
    results = [_parse(ex) for ex in _file("openai/chat-reasoning-tokens-gpt5-nano.yaml")]
    assert [(r.usage.reasoning_tokens, r.usage.output_tokens) for r in results] == [(192, 228), (192, 202), (128, 138)]


def test_service_tier_priority_reaches_pricing() -> None:
    for ex in _file("openai/chat-service-tier-priority.yaml"):
        assert ex.request_body["service_tier"] == "priority"
        r = _parse(ex)
        assert r.service_tier == "priority"
        assert ("service_tier", "priority") in adapter_for(ex).price_ref(r.model, r).context


def test_together_quirks() -> None:
    (ex,) = _file("openai-compatible/together-chat.yaml")
    r = _parse(ex)
    assert ex.json()["choices"][0]["finish_reason"] == "eos"
    assert r.finish_reason == "stop"
    assert r.id == "88fa668fac30bb19-MXP"  # no chatcmpl- prefix
    assert r.text.startswith(" Why don't we")


def test_deepseek_cache_fields_and_off_peak_price() -> None:
    (ex,) = _file("openai-compatible/deepseek-stream-include-usage.yaml")
    adapter = adapter_for(ex)
    result, _ = feed_stream(adapter, CompleteRequest(model="deepseek-chat", messages=[], stream=True), ex.content, 64)
    raw = expected_from_stream(ex)["usage"]
    assert raw["prompt_cache_miss_tokens"] == result.usage.input_tokens - result.usage.cached_input_tokens
    # Recorded at 17:56 UTC: DeepSeek's off-peak window. The cost must follow the time of day, not just the day.
    when = when_of(ex, expected_from_stream(ex)["meta"])
    assert when.hour == 17
    got = PriceBook().token_cost(adapter.price_ref(result.model, result), result.usage, when)
    noon = PriceBook().token_cost(adapter.price_ref(result.model, result), result.usage, when.replace(hour=12))
    assert got.total is not None
    assert noon.total is not None
    assert got.total < noon.total


def test_groq_tool_use_failed_then_recovers() -> None:
    err_ex, first, second = _file("openai-compatible/groq-error-400-tool-use-failed.yaml")
    err = adapter_for(err_ex).map_error(
        HTTPResponse(err_ex.status, err_ex.headers, err_ex.content), "openai/gpt-oss-120b"
    )
    assert isinstance(err, BadRequestError)
    assert err.body["error"]["code"] == "tool_use_failed"
    assert "get_something_by_name" in err.body["error"]["failed_generation"]
    r1, r2 = _parse(first), _parse(second)
    assert r1.finish_reason == "tool_calls"
    assert r1.tool_calls[0].parsed_arguments() == {"name": "test"}
    assert r1.text == ""  # the model's `reasoning` field is not the answer
    assert r2.finish_reason == "stop"
    assert r2.usage.cached_input_tokens == 256


def test_error_messages_never_carry_the_key_shape() -> None:
    (ex,) = _file("openai/error-401-invalid-api-key.json")
    err = adapter_for(ex).map_error(HTTPResponse(ex.status, ex.headers, ex.content), "gpt-4o-mini")
    assert isinstance(err, AuthenticationError)
    assert err.body["error"]["code"] == "invalid_api_key"
    assert "test-conformance-key" not in repr(err) + str(err)


# ------------------------------------------------------------------------------------------------ client level


def _client_call(client: ck.Client, ex: Exchange, provider: str) -> Any:
    body = ex.request_body
    model = f"{provider}:{body['model']}"
    k = kind(ex)
    if k == "embeddings":
        inputs = body["input"]
        return client.embed(model, inputs, dimensions=body.get("dimensions") or ck.NOT_GIVEN)
    messages = body["messages"]
    opts: dict[str, Any] = {}
    if body.get("tools"):
        opts["tools"] = body["tools"]
    if body.get("service_tier"):
        opts["service_tier"] = body["service_tier"]
    if k == "chat-stream":
        with client.stream(model, messages=messages, **opts) as s:
            chunks = list(s)
        assert chunks
        return s.result
    return client.complete(model, messages=messages, **opts)


def _replay_params() -> list[Any]:
    if not ALL_FILES:
        return [MISSING]
    return [pytest.param(f, id=f) for f in ALL_FILES if f not in UNSUPPORTED]


@pytest.mark.parametrize("rel", _replay_params())
def test_replay_through_client(rel: str | None, tmp_path: Path) -> None:
    """The whole recording, converted to a vcrpy cassette, replayed through ``ck.Client`` with the network off."""
    require_conformance_dir()
    assert rel is not None
    exchanges = load(rel)
    cassette = tmp_path / "cassette.yaml"
    cassette.write_text(yaml.safe_dump(to_vcr(exchanges), allow_unicode=True), "utf-8")
    provider = provider_of(exchanges[0])
    client = ck.Client(
        config=None,
        providers={provider: {"api_key": "test-conformance-key", "base_url": base_url_of(exchanges[0])}},
        ledger="none",
        retry_policy=RetryPolicy(RetryConfig(max_retries=0), sleep=lambda s: None),
    )
    recorder = vcr.VCR(record_mode="none", match_on=["method", "scheme", "host", "port", "path", "query"])
    with recorder.use_cassette(str(cassette)) as cass, client:
        for ex in exchanges:
            if kind(ex) == "error":
                with pytest.raises(EXPECTED_ERRORS[ex.status]) as info:
                    _client_call(client, ex, provider)
                assert info.value.status == ex.status
                assert info.value.body == ex.json()
                assert info.value.request_id == ex.headers.get("x-request-id")
                continue
            result = _client_call(client, ex, provider)
            assert result.cost.total is not None, result.cost.reason
            assert [a.outcome for a in result.attempts] == ["success"]
            if kind(ex) == "chat":
                data = ex.json()
                assert result.text == (data["choices"][0]["message"].get("content") or "")
                raw_usage, meta = data["usage"], data
            elif kind(ex) == "chat-stream":
                want = expected_from_stream(ex)
                assert result.text == want["text"]
                raw_usage, meta = want["usage"], want["meta"]
            else:
                raw_usage, meta = ex.json()["usage"], {"model": ex.json().get("model")}
            if kind(ex) != "embeddings":
                check_usage(result.usage, raw_usage)
            # Priced at the time of the call (now), the same way genai-prices prices it.
            check_cost(ex, client._core.adapter(provider), result, raw_usage, meta, result.attempts[0].started_at)
        assert cass.all_played, "every recorded exchange was requested"
