"""Conformance: every real AWS Bedrock recording in ``shared/conformance/bedrock`` through the ``bedrock`` adapter.

Expectations are read from the recordings, never from computekit: text, tool calls, finish reason, every usage
field and the cost, recomputed with ``genai_prices.calc_price`` on the same usage, model and time (provider
``aws``) under Decimal equality, and cross-checked with genai-prices' own reading of the Converse usage object
(``extract_usage``). ConverseStream bodies are AWS event-stream binary frames: the expectations are read from them
with botocore's parser directly, and computekit's decoder is fed the same bytes one at a time, seven at a time and
whole.

Two levels: the adapter (``parse_complete``, the event-stream decoder and stream decoder, ``map_error``), and the
client replaying each recording's Bedrock exchanges as a vcrpy cassette matched on the request body, sync and async,
with SigV4 signing from AWS credentials in the environment (fake ones: the recordings hold no signature).

Exchanges that are not Bedrock Converse calls are listed with their reason (:data:`NOT_EXERCISED`); a file made
only of those is listed in :data:`UNSUPPORTED`.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import genai_prices
import pytest
import vcr
import yaml
from _clients import MODES, call, close, stream
from _conformance import MISSING, Collection, Exchange, feed_pieces, fragments, load, require_conformance_dir
from botocore.eventstream import EventStreamBuffer

import computekit as ck
from computekit._config import RetryConfig
from computekit._exceptions import BadRequestError
from computekit._retry import RetryPolicy
from computekit.adapters._base import CompleteRequest, HTTPResponse, ProviderSettings
from computekit.adapters.bedrock import BedrockAdapter, BedrockSettings, base_model
from computekit.pricing import PriceBook

pytestmark = [pytest.mark.conformance, pytest.mark.filterwarnings("ignore::computekit.pricing.UnknownPriceWarning")]

FOLDER = "bedrock"
REGION = "us-east-1"
BASE_URL = f"https://bedrock-runtime.{REGION}.amazonaws.com"

COUNT_TOKENS = "POST /model/{id}/count-tokens: computekit has no token-counting verb"
# Exchanges in these files that are not Bedrock Converse calls, and why they are not exercised.
NOT_EXERCISED = {
    "count-tokens": COUNT_TOKENS,
    "media": ("a GET of the document/image/video by the recording's own client, which downloaded the URL before "
              "calling Bedrock: not a Bedrock exchange"),
    "openai": "an OpenAI Responses call the recording's test made before its Bedrock call: not a Bedrock exchange",
}
# Files with no Converse exchange at all.
UNSUPPORTED: dict[str, str] = {
    "bedrock/bedrock_count_tokens_tool_config.yaml": COUNT_TOKENS,
    "bedrock/bedrock_model_usage_limit_exceeded.yaml": COUNT_TOKENS,
}
# The count-tokens error answer shares Converse's error envelope: checked with map_error at adapter level.
ADAPTER_LEVEL_ONLY = {"bedrock/bedrock_count_tokens_error.yaml": COUNT_TOKENS + "; its 400 error body is checked"}
# Recorded request bodies that are not valid JSON (cut short in the upstream cassette): replayed without body match.
BROKEN_REQUEST_BODY = {"bedrock/bedrock_model_other_parameters.yaml"}

FINISH = {"end_turn": "stop", "max_tokens": "length", "tool_use": "tool_calls", "stop_sequence": "stop"}
USAGE_KEYS = {"inputTokens", "outputTokens", "totalTokens", "cacheReadInputTokens", "cacheWriteInputTokens",
              "serverToolUsage", "cacheDetails", "cacheReadInputTokenCount", "cacheWriteInputTokenCount"}


# ------------------------------------------------------------------------------------------------ helpers


def kind(ex: Exchange) -> str | None:
    if not ex.host.startswith("bedrock-runtime."):
        return "openai" if ex.host == "api.openai.com" else "media"
    action = ex.path.rsplit("/", 1)[-1]
    if action == "count-tokens":
        return "count-tokens-error" if ex.status >= 400 else "count-tokens"
    if action == "converse":
        return "converse"
    if action == "converse-stream":
        return "stream"
    return None


def model_of(ex: Exchange) -> str:
    return unquote(ex.path.split("/")[2])


def region_of(ex: Exchange) -> str:
    return ex.host.split(".")[1] if ex.host.startswith("bedrock-runtime.") else REGION


def adapter(api_key: str | None = None, region: str = REGION) -> BedrockAdapter:
    from pydantic import SecretStr

    settings = ProviderSettings(name="bedrock", base_url=BASE_URL.replace(REGION, region),
                                api_key=SecretStr(api_key) if api_key else None, timeout=30,
                                options=BedrockSettings(region=region))
    return BedrockAdapter(settings)


def when_of(ex: Exchange) -> dt.datetime:
    # Converse answers carry no timestamp and these recordings no Date header: any instant prices both sides alike.
    return ex.recorded_at or dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def frames(content: bytes) -> list[tuple[str, dict[str, Any]]]:
    """(event type, payload) of each event-stream frame, read with botocore's parser."""
    buf = EventStreamBuffer()
    buf.add_data(content)
    return [(m.headers[":event-type"], json.loads(m.payload)) for m in buf]


def expected_from_stream(ex: Exchange) -> dict[str, Any]:
    text: list[str] = []
    tools: dict[int, dict[str, str]] = {}
    out: dict[str, Any] = {"finish": None, "usage": None}
    for event, p in frames(ex.content):
        if event == "contentBlockStart" and "toolUse" in p["start"]:
            use = p["start"]["toolUse"]
            tools[p["contentBlockIndex"]] = {"id": use["toolUseId"], "name": use["name"], "arguments": ""}
        elif event == "contentBlockDelta":
            d = p["delta"]
            if "text" in d:
                text.append(d["text"])
            elif "toolUse" in d:
                tools[p["contentBlockIndex"]]["arguments"] += d["toolUse"]["input"]
        elif event == "messageStop":
            out["finish"] = p["stopReason"]
        elif event == "metadata":
            out["usage"] = p["usage"]
    out["text"] = "".join(text)
    out["tool_calls"] = [(c["id"], c["name"], c["arguments"]) for _, c in sorted(tools.items())]
    out["last"] = frames(ex.content)[-1][0]
    return out


def check_usage(usage: ck.Usage, raw: dict[str, Any]) -> None:
    """Every field of the recorded usage is accounted for: input counts all input, the caches added back."""
    assert set(raw) <= USAGE_KEYS, f"usage fields not handled: {set(raw) - USAGE_KEYS}"
    read = raw.get("cacheReadInputTokens") or 0
    write = raw.get("cacheWriteInputTokens") or 0
    assert usage.input_tokens == raw["inputTokens"] + read + write
    assert usage.output_tokens == raw["outputTokens"]
    assert usage.cached_input_tokens == read
    assert usage.cache_write_tokens == write
    assert raw["totalTokens"] == raw["inputTokens"] + raw["outputTokens"] + read + write
    assert not raw.get("serverToolUsage"), "server tool usage would need a price of its own"
    # The older names of the cache counts, sent beside the new ones, say the same.
    assert raw.get("cacheReadInputTokenCount", read) == read
    assert raw.get("cacheWriteInputTokenCount", write) == write
    ttl_1h = sum(d["inputTokens"] for d in raw.get("cacheDetails") or [] if d["ttl"] == "1h")
    assert usage.cache_write_1h_tokens == ttl_1h


def genai_usage(raw: dict[str, Any]) -> genai_prices.Usage:
    read = raw.get("cacheReadInputTokens") or 0
    write = raw.get("cacheWriteInputTokens") or 0
    return genai_prices.Usage(input_tokens=raw["inputTokens"] + read + write, output_tokens=raw["outputTokens"],
                              cache_read_tokens=read or None, cache_write_tokens=write or None)


def check_cost(result: ck.Completion, raw: dict[str, Any], model: str, when: dt.datetime) -> Decimal | None:
    """computekit's cost equals genai-prices' on the same usage, model and time (None where genai-prices does
    not know the model: an application inference profile ARN, a retired model)."""
    got = PriceBook().token_cost(adapter().price_ref(result.model, result), result.usage, when)
    try:
        want = genai_prices.calc_price(genai_usage(raw), model, provider_id="aws",
                                       genai_request_timestamp=when).total_price
    except LookupError:
        assert got.total is None
        assert got.reason
        assert model in got.reason
        return None
    extracted = genai_prices.extract_usage({"model": model, "usage": raw}, provider_id="aws")
    assert extracted.calc_price(genai_request_timestamp=when).total_price == want
    assert got.total == want, f"computekit {got.total} != genai-prices {want} for {model}"
    assert got.price_source is not None
    assert got.price_source.table == "genai-prices"
    assert sum(line.amount for line in got.lines) == got.total
    return got.total


def feed_stream(req: CompleteRequest, content: bytes, piece: int) -> tuple[ck.Completion, list[ck.Chunk]]:
    ad = adapter()
    decoder = ad.stream_decoder(req)
    chunks = feed_pieces(ad.event_decoder(4 * 1024 * 1024), decoder, content, piece)
    assert decoder.done, "the decoder saw the metadata event"
    return decoder.result(), chunks


def call_kwargs(body: dict[str, Any]) -> dict[str, Any]:
    """The recorded Converse body as computekit arguments: messages (Bedrock-native blocks pass as they are), and
    every other field through extra_body."""
    kw: dict[str, Any] = {"messages": body["messages"]}
    extra = {k: v for k, v in body.items() if k != "messages"}
    if extra:
        kw["extra_body"] = extra
    return kw


COLLECTION = Collection.of(FOLDER, unsupported=UNSUPPORTED)
ALL_FILES, EXCHANGES = COLLECTION.files, COLLECTION.exchanges


# ------------------------------------------------------------------------------------------------ coverage


def test_conformance_directory_present() -> None:
    d = require_conformance_dir()
    assert (d / FOLDER).is_dir()
    assert len(ALL_FILES) >= 44


@pytest.mark.parametrize("rel", ALL_FILES or [MISSING])
def test_every_file_is_exercised_or_listed(rel: str | None) -> None:
    require_conformance_dir()
    assert rel is not None
    kinds = [kind(ex) for ex in load(rel)]
    assert None not in kinds, f"{rel}: an exchange is neither exercised nor listed"
    exercised = {"converse", "stream", "count-tokens-error"}
    if rel in UNSUPPORTED:
        assert not exercised & set(kinds), f"{rel} is listed but holds a Converse exchange"
        assert set(kinds) == {"count-tokens"}
    else:
        assert exercised & set(kinds), f"{rel}: nothing in it is exercised"
        assert set(kinds) - exercised <= set(NOT_EXERCISED)


def test_counts() -> None:
    require_conformance_dir()
    by_kind: dict[str | None, int] = {}
    for rel in ALL_FILES:
        for ex in load(rel):
            by_kind[kind(ex)] = by_kind.get(kind(ex), 0) + 1
    assert by_kind["converse"] >= 40
    assert by_kind["stream"] >= 5
    assert set(UNSUPPORTED) | set(ADAPTER_LEVEL_ONLY) <= set(ALL_FILES)


# ------------------------------------------------------------------------------------------------ adapter level


def _parse(ex: Exchange) -> ck.Completion:
    return adapter().parse_complete(CompleteRequest(model=model_of(ex), messages=[]),
                                    HTTPResponse(ex.status, ex.headers, ex.content, ex.uri))


@pytest.mark.parametrize("ex", COLLECTION.params(kind, "converse"))
def test_converse(ex: Exchange | None) -> None:
    require_conformance_dir()
    assert ex is not None
    data = ex.json()
    result = _parse(ex)
    blocks = data["output"]["message"]["content"]
    assert result.text == "".join(b["text"] for b in blocks if "text" in b)
    want_calls = [(b["toolUse"]["toolUseId"], b["toolUse"]["name"], b["toolUse"]["input"])
                  for b in blocks if "toolUse" in b]
    assert [(c.id, c.name, c.parsed_arguments()) for c in result.tool_calls] == want_calls
    assert result.finish_reason == FINISH[data["stopReason"]]
    assert result.raw == data  # reasoning blocks and their signatures are kept here
    for b in blocks:
        if "reasoningContent" in b and "reasoningText" in b["reasoningContent"]:
            thought = b["reasoningContent"]["reasoningText"]["text"]
            assert not thought or thought[:40] not in result.text, "reasoning is not part of the answer"
    check_usage(result.usage, data["usage"])
    assert result._usage_reported
    check_cost(result, data["usage"], model_of(ex), when_of(ex))


@pytest.mark.parametrize("ex", COLLECTION.params(kind, "stream"))
@pytest.mark.parametrize("piece", [1, 7, 1 << 20], ids=["byte-by-byte", "7-bytes", "whole"])
def test_stream(ex: Exchange | None, piece: int) -> None:
    require_conformance_dir()
    assert ex is not None
    assert ex.content_type == "application/vnd.amazon.eventstream"
    req = CompleteRequest(model=model_of(ex), messages=[], stream=True)
    result, chunks = feed_stream(req, ex.content, piece)
    want = expected_from_stream(ex)
    assert want["last"] == "metadata"
    assert "".join(c.text for c in chunks) == want["text"] == result.text
    assert [(c.id, c.name, c.arguments) for c in result.tool_calls] == want["tool_calls"]
    assert fragments(chunks) == want["tool_calls"]
    assert result.finish_reason == FINISH[want["finish"]]
    assert [c.finish_reason for c in chunks if c.finish_reason] == [result.finish_reason]
    usage_chunks = [c for c in chunks if c.usage is not None]
    assert len(usage_chunks) == 1, "usage arrives once, with the metadata event"
    assert usage_chunks[0].usage == result.usage
    check_usage(result.usage, want["usage"])
    check_cost(result, want["usage"], model_of(ex), when_of(ex))


def test_redacted_reasoning_kept_out_of_text() -> None:
    require_conformance_dir()
    (ex,) = load("bedrock/bedrock_model_thinking_part_redacted_stream.yaml")
    result, _ = feed_stream(CompleteRequest(model=model_of(ex), messages=[], stream=True), ex.content, 1 << 20)
    blocks = result.raw["output"]["message"]["content"]
    redacted = [b for b in blocks if "redactedContent" in b.get("reasoningContent", {})]
    assert redacted, "the redacted reasoning block is kept in raw"
    assert redacted[0]["reasoningContent"]["redactedContent"] not in result.text


def test_cache_write_then_read_priced_at_their_own_rates() -> None:
    require_conformance_dir()
    write_ex, read_ex = load("bedrock/bedrock_cache_messages_with_document_as_last_content.yaml")
    w, r = _parse(write_ex), _parse(read_ex)
    assert w.usage.cache_write_tokens > 0
    assert r.usage.cached_input_tokens > 0
    book = PriceBook()
    wl = {x.item: x for x in book.token_cost(adapter().price_ref(w.model, w), w.usage, when_of(write_ex)).lines}
    rl = {x.item: x for x in book.token_cost(adapter().price_ref(r.model, r), r.usage, when_of(read_ex)).lines}
    assert rl["cached input"].unit_price < rl["input"].unit_price < wl["cache write"].unit_price


def test_inference_profiles_priced_as_their_base_model() -> None:
    """Every cross-region id in the recordings (``us.``/``global.`` ...) has the price genai-prices gives its base
    model, or the profile's own where genai-prices lists one: never unpriced because of the prefix."""
    require_conformance_dir()
    book = PriceBook()
    seen = {model_of(ex) for ex in EXCHANGES if kind(ex) in ("converse", "stream")}
    prefixed = {m for m in seen if base_model(m) != m}
    assert prefixed
    usage = ck.Usage(input_tokens=1000, output_tokens=100)
    for model in prefixed:
        got = book.token_cost(adapter().price_ref(model), usage).total
        assert got is not None, model
        want = genai_prices.calc_price(genai_prices.Usage(input_tokens=1000, output_tokens=100), model,
                                       provider_id="aws").total_price
        assert got == want


@pytest.mark.parametrize("ex", COLLECTION.params(kind, "count-tokens-error"))
def test_error(ex: Exchange | None) -> None:
    require_conformance_dir()
    assert ex is not None
    err = adapter().map_error(HTTPResponse(ex.status, ex.headers, ex.content, ex.uri), model_of(ex))
    assert type(err) is BadRequestError
    assert err.status == 400
    assert err.message == ex.json()["message"]
    assert err.provider == "bedrock"
    cost = adapter().error_cost(err)
    assert cost is not None
    assert cost.total == 0


@pytest.mark.parametrize("ex", COLLECTION.params(kind, "converse", "stream"))
def test_request_built_like_the_recording(ex: Exchange | None) -> None:
    """The adapter sends the recorded body, to the recorded model path (colons unescaped: see model_url)."""
    require_conformance_dir()
    assert ex is not None
    if ex.file in BROKEN_REQUEST_BODY:
        pytest.skip("the recorded request body is not JSON (cut short upstream)")
    body = ex.request_body
    kw = call_kwargs(body)
    req = CompleteRequest(model=model_of(ex), messages=kw["messages"], stream=kind(ex) == "stream",
                          extra=dict(kw.get("extra_body") or {}))
    http = adapter(api_key="bedrock-api-key-0123456789", region=region_of(ex)).build_complete(req)
    assert http.url == ex.uri.replace("%3A", ":")
    assert unquote(http.url) == unquote(ex.uri)
    assert json.loads(http.body() or b"") == body
    assert http.headers["authorization"] == "Bearer bedrock-api-key-0123456789"


# ------------------------------------------------------------------------------------------------ client level


def _replay_params() -> list[Any]:
    if not ALL_FILES:
        return [MISSING]
    return [pytest.param(f, id=f) for f in ALL_FILES if f not in UNSUPPORTED and f not in ADAPTER_LEVEL_ONLY]


def cassette_doc(exchanges: list[Exchange]) -> dict[str, Any]:
    """A vcrpy cassette of the Bedrock Converse exchanges, binary bodies as bytes (``!!binary`` in YAML)."""
    out = []
    for ex in exchanges:
        body = ex.request_body
        out.append({
            "request": {"body": body if isinstance(body, str) else json.dumps(body), "method": ex.method,
                        "headers": {"content-type": ["application/json"]}, "uri": ex.uri.replace("%3A", ":")},
            "response": {"body": {"string": ex.content}, "status": {"code": ex.status, "message": ""},
                         "headers": {k: [v] for k, v in ex.headers.items()
                                     if k not in ("content-length", "transfer-encoding")}},
        })
    return {"interactions": out, "version": 1}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("rel", _replay_params())
async def test_replay_through_client(rel: str | None, mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                     ) -> None:
    require_conformance_dir()
    assert rel is not None
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    monkeypatch.delenv("AWS_BEARER_TOKEN_BEDROCK", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    exchanges = [ex for ex in load(rel) if kind(ex) in ("converse", "stream")]
    region = region_of(exchanges[0])
    monkeypatch.setenv("AWS_REGION", region)
    cassette = tmp_path / "cassette.yaml"
    cassette.write_text(yaml.safe_dump(cassette_doc(exchanges), allow_unicode=True), "utf-8")
    cls = ck.Client if mode == "sync" else ck.AsyncClient
    client = cls(config=None, ledger="none", retry_policy=RetryPolicy(RetryConfig(max_retries=0), sleep=lambda s: None))
    match = ["method", "scheme", "host", "port", "path", "query"] + ([] if rel in BROKEN_REQUEST_BODY else ["body"])
    sent: list[Any] = []

    def seen(request: Any) -> Any:  # every live request, before vcrpy matches it
        sent.append(request)
        return request

    recorder = vcr.VCR(record_mode="none", match_on=match, before_record_request=seen)
    with recorder.use_cassette(str(cassette)) as cass:
        sent.clear()  # vcrpy ran the hook on the recorded requests as it loaded them: keep only live ones
        for ex in exchanges:
            model = f"bedrock:{model_of(ex)}"
            body = ex.request_body
            kw = call_kwargs(json.loads(body + "}") if isinstance(body, str) else body)
            if kind(ex) == "stream":
                _chunks, result = await stream(client, model, **kw)
                want = expected_from_stream(ex)
                raw = want["usage"]
                assert result.text == want["text"]
            else:
                result = await call(client, "complete", model, **kw)
                data = ex.json()
                raw = data["usage"]
                assert result.text == "".join(b["text"] for b in data["output"]["message"]["content"] if "text" in b)
            assert [a.outcome for a in result.attempts] == ["success"]
            check_usage(result.usage, raw)
            assert result.cost.total == check_cost(result, raw, model_of(ex), result.attempts[0].started_at)
        assert cass.all_played, "every recorded Bedrock exchange was requested"
    assert sent
    for request in sent:  # signed with SigV4 for the recording's region, by botocore
        headers = {k.lower(): v for k, v in request.headers.items()}
        assert headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/")
        assert f"/{region}/bedrock/aws4_request" in headers["authorization"]
        assert "x-amz-date" in headers
    await close(client)
