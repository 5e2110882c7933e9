"""Conformance: every real OpenRouter recording in ``shared/conformance/openrouter`` through the ``openrouter``
profile of the OpenAI-compatible adapter.

Every file is exercised (nothing is listed as unsupported). Expectations are read from the recorded JSON and SSE
chunks, never from computekit: text, tool calls, finish reason, every usage field, and the cost:

- computekit's own price for the recorded usage equals ``genai_prices.calc_price`` on the same usage, model and
  time (provider ``openrouter``), under Decimal equality;
- where OpenRouter's ``usage.cost`` is present (what it billed, tool and search fees included), the call's cost is
  that figure, named ``openrouter: usage.cost``, with computekit's own price kept beside it in ``table_total``.

Two levels: the adapter fed the recorded bytes (``parse_complete``, the stream decoder byte by byte, ``map_error``),
and the client replaying each whole recording as a vcrpy cassette matched on the request body, sync and async.
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
from _clients import MODES, Sleeps, call, close, policy, stream
from _conformance import MISSING, Collection, Exchange, load, require_conformance_dir, to_vcr
from pydantic import SecretStr
from test_openai_conformance import check_usage as check_openai_usage
from test_openai_conformance import expected_from_stream, genai_usage
from test_openai_conformance import feed_stream as openai_feed_stream

import computekit as ck
from computekit._exceptions import ProviderError, RateLimitError
from computekit.adapters._base import CompleteRequest, HTTPResponse, ProviderSettings
from computekit.adapters.openai_compatible import PROFILES, OpenAICompatibleAdapter
from computekit.pricing import PriceBook

pytestmark = [pytest.mark.conformance, pytest.mark.filterwarnings("ignore::computekit.pricing.UnknownPriceWarning")]

FOLDER = "openrouter"
BASE_URL = "https://openrouter.ai/api/v1"
KEY = "test-conformance-key"

# Files computekit cannot replay, with the reason. Empty: every OpenRouter recording is exercised.
UNSUPPORTED: dict[str, str] = {}

# Usage keys OpenRouter adds to OpenAI's: its billing facts (read by billed_total, checked below), and the server
# tools it ran (web search, advisor), whose fees no token price covers: they are inside usage.cost.
BILLING_KEYS = {"cost", "is_byok", "cost_details", "server_tool_use_details"}
# Breakdowns OpenRouter sends as zeros in these recordings (of prompt and completion tokens, priced with them).
ZERO_DETAILS = {"video_tokens", "image_tokens"}

FINISH = {"stop": "stop", "length": "length", "tool_calls": "tool_calls"}

# The request fields computekit sends from its own arguments; anything else recorded goes through extra_body.
OWN_FIELDS = {"model", "messages", "tools", "tool_choice", "stream", "stream_options"}


# ------------------------------------------------------------------------------------------------ helpers


def kind(ex: Exchange) -> str | None:
    if ex.method != "POST" or not ex.path.endswith("/chat/completions"):
        return None
    if ex.status >= 400:
        return "error"
    return "chat-stream" if ex.is_sse else "chat"


def adapter() -> OpenAICompatibleAdapter:
    return OpenAICompatibleAdapter(
        ProviderSettings(name="openrouter", base_url=BASE_URL, api_key=SecretStr(KEY), timeout=30)
    )


def when_of(ex: Exchange, created: Any) -> dt.datetime:
    if isinstance(created, int):
        return dt.datetime.fromtimestamp(created, dt.UTC)
    assert ex.recorded_at is not None, f"{ex.id}: no date to price at"
    return ex.recorded_at


def stream_error(ex: Exchange) -> dict[str, Any] | None:
    for d in ex.sse_data():
        if d != "[DONE]" and "error" in (p := json.loads(d)):
            return dict(p["error"])
    return None


def check_usage(usage: ck.Usage, raw: dict[str, Any]) -> None:
    """OpenAI's usage fields as the OpenAI conformance checks them; OpenRouter's billing keys and zero
    breakdowns apart."""
    plain = {k: v for k, v in raw.items() if k not in BILLING_KEYS}
    for details in ("prompt_tokens_details", "completion_tokens_details"):
        if isinstance(plain.get(details), dict):
            extra = {k: v for k, v in plain[details].items() if k in ZERO_DETAILS}
            assert all(v == 0 for v in extra.values()), f"{details}: {extra}"
            plain[details] = {k: v for k, v in plain[details].items() if k not in ZERO_DETAILS}
    assert set(raw) - set(plain) <= BILLING_KEYS
    check_openai_usage(usage, plain)


def billed(raw: dict[str, Any]) -> Decimal | None:
    """What OpenRouter billed, read from the recorded usage (BYOK adds the upstream's own charge)."""
    if not isinstance(raw.get("cost"), int | float):
        return None
    total = Decimal(str(raw["cost"]))
    upstream = (raw.get("cost_details") or {}).get("upstream_inference_cost")
    if raw.get("is_byok") and upstream:
        total += Decimal(str(upstream))
    return total


def check_cost(cost: ck.Cost, table: ck.Cost, raw: dict[str, Any], model: str, when: dt.datetime) -> None:
    """The table price equals genai-prices' on the recorded usage; the call's cost is OpenRouter's bill when
    it sent one, else the table price."""
    pd = raw.get("prompt_tokens_details") or {}
    cd = raw.get("completion_tokens_details") or {}
    plain = {k: v for k, v in raw.items() if k not in BILLING_KEYS}
    plain["prompt_tokens_details"] = {k: v for k, v in pd.items() if k not in ZERO_DETAILS}
    plain["completion_tokens_details"] = {k: v for k, v in cd.items() if k not in ZERO_DETAILS}
    want: Decimal | None
    try:
        want = genai_prices.calc_price(genai_usage(plain), model, provider_id="openrouter",
                                       genai_request_timestamp=when).total_price
    except LookupError:  # a model genai-prices does not list under OpenRouter: no table price, never a guess
        want = None
    assert table.total == want, f"computekit {table.total} != genai-prices {want} for {model}"
    if want is not None:
        assert table.price_source is not None
        assert table.price_source.table == "genai-prices"
    bill = billed(raw)
    if bill is None:
        assert cost.total == want
        assert cost.table_total is None
        if want is None:
            assert cost.reason
            assert model in cost.reason
        else:
            assert sum((line.amount for line in cost.lines), Decimal(0)) == cost.total
        return
    assert sum((line.amount for line in cost.lines), Decimal(0)) == cost.total
    assert cost.total == bill
    assert cost.table_total == want
    assert cost.price_source is not None
    assert cost.price_source.table == "openrouter: usage.cost"


def priced(result: ck.Completion, when: dt.datetime) -> tuple[ck.Cost, ck.Cost]:
    """(the call's cost, the table price) as the client prices a result."""
    ad = adapter()
    book = PriceBook()
    table = book.token_cost(ad.price_ref(result.model, result), result.usage, when)
    bill = ad.billed_total(result)
    return (table if bill is None else book.billed(table, *bill)), table


def feed_stream(req: CompleteRequest, content: bytes, piece: int) -> tuple[ck.Completion, list[ck.Chunk]]:
    result, chunks = openai_feed_stream(adapter(), req, content, piece)
    return result, chunks


def call_kwargs(body: dict[str, Any]) -> dict[str, Any]:
    kw: dict[str, Any] = {"messages": body["messages"]}
    if body.get("tools"):
        kw["tools"] = body["tools"]
    if "tool_choice" in body:
        kw["tool_choice"] = body["tool_choice"]
    extra = {k: v for k, v in body.items() if k not in OWN_FIELDS}
    if body.get("stream") is False:
        extra["stream"] = False  # sent by the recording's client; computekit sends stream only when streaming
    if extra:
        kw["extra_body"] = extra
    return kw


COLLECTION = Collection.of(FOLDER, unsupported=UNSUPPORTED)
ALL_FILES, EXCHANGES = COLLECTION.files, COLLECTION.exchanges


# ------------------------------------------------------------------------------------------------ coverage


def test_conformance_directory_present() -> None:
    d = require_conformance_dir()
    assert (d / FOLDER).is_dir()
    assert len(ALL_FILES) >= 24


@pytest.mark.parametrize("rel", ALL_FILES or [MISSING])
def test_every_file_is_exercised_or_listed(rel: str | None) -> None:
    require_conformance_dir()
    assert rel is not None
    assert rel not in UNSUPPORTED
    for ex in load(rel):
        assert ex.host == "openrouter.ai"
        assert kind(ex) is not None, f"{ex.id}: {ex.method} {ex.path} is neither exercised nor listed"


def test_profile_points_at_the_recorded_host() -> None:
    require_conformance_dir()
    assert {ex.uri for ex in EXCHANGES} == {f"{PROFILES['openrouter'].base_url}/chat/completions"}
    assert PROFILES["openrouter"].table_provider == "openrouter"
    assert PROFILES["openrouter"].key_env_vars == ("OPENROUTER_API_KEY",)


# ------------------------------------------------------------------------------------------------ adapter level


@pytest.mark.parametrize("ex", COLLECTION.params(kind, "chat"))
def test_chat(ex: Exchange | None) -> None:
    require_conformance_dir()
    assert ex is not None
    data = ex.json()
    req = CompleteRequest(model=ex.request_body["model"], messages=[])
    result = adapter().parse_complete(req, HTTPResponse(ex.status, ex.headers, ex.content, ex.uri))
    msg = data["choices"][0]["message"]
    assert result.text == (msg.get("content") or "")
    if msg.get("reasoning"):
        assert msg["reasoning"][:40] not in result.text, "reasoning is not part of the answer"
    # A call without arguments (a tool whose parameters are all optional) comes with no "arguments" at all.
    want_calls = [(c["id"], c["function"]["name"], c["function"].get("arguments") or "")
                  for c in msg.get("tool_calls") or []]
    assert [(c.id, c.name, c.arguments) for c in result.tool_calls] == want_calls
    assert result.finish_reason == FINISH[data["choices"][0]["finish_reason"]]
    assert result.id == data["id"]
    assert result.response_model == data["model"]
    check_usage(result.usage, data["usage"])
    cost, table = priced(result, when_of(ex, data.get("created")))
    check_cost(cost, table, data["usage"], data["model"], when_of(ex, data.get("created")))


@pytest.mark.parametrize("ex", COLLECTION.params(kind, "chat-stream"))
@pytest.mark.parametrize("piece", [1, 7, 1 << 20], ids=["byte-by-byte", "7-bytes", "whole"])
def test_stream(ex: Exchange | None, piece: int) -> None:
    require_conformance_dir()
    assert ex is not None
    req = CompleteRequest(model=ex.request_body["model"], messages=[], stream=True)
    error = stream_error(ex)
    if error is not None:
        # An error inside a 200 stream is raised typed, with its message, once the decoder reaches it.
        with pytest.raises(ProviderError) as info:
            feed_stream(req, ex.content, piece)
        assert error["message"] in str(info.value)
        assert info.value.provider == "openrouter"
        return
    result, chunks = feed_stream(req, ex.content, piece)
    want = expected_from_stream(ex)
    assert "".join(c.text for c in chunks) == want["text"] == result.text
    assert [(c.id, c.name, c.arguments) for c in result.tool_calls] == want["tool_calls"]
    assert result.finish_reason == FINISH[want["finish_reason"]]
    assert result.id == want["meta"]["id"]
    check_usage(result.usage, want["usage"])
    when = when_of(ex, want["meta"].get("created"))
    cost, table = priced(result, when)
    check_cost(cost, table, want["usage"], want["meta"]["model"], when)


@pytest.mark.parametrize("ex", COLLECTION.params(kind, "error"))
def test_error(ex: Exchange | None) -> None:
    require_conformance_dir()
    assert ex is not None
    body = ex.json()
    err = adapter().map_error(HTTPResponse(ex.status, ex.headers, ex.content, ex.uri), ex.request_body["model"])
    assert ex.status == 429
    assert type(err) is RateLimitError
    assert err.body == body
    assert err.message == body["error"]["message"]
    assert KEY not in repr(err) + str(err)
    cost = adapter().error_cost(err)
    assert cost is not None
    assert cost.total == 0


@pytest.mark.parametrize("ex", COLLECTION.params(kind, "chat", "chat-stream", "error"))
def test_request_built_like_the_recording(ex: Exchange | None) -> None:
    require_conformance_dir()
    assert ex is not None
    body = ex.request_body
    kw = call_kwargs(body)
    req = CompleteRequest(model=body["model"], messages=kw["messages"], tools=kw.get("tools"),
                          tool_choice=kw.get("tool_choice"), stream=bool(body.get("stream")),
                          extra=dict(kw.get("extra_body") or {}))
    http = adapter().build_complete(req)
    assert http.url == ex.uri
    assert http.json == body
    assert http.headers["authorization"] == f"Bearer {KEY}"


def test_billed_cost_covers_fees_the_tables_do_not_know() -> None:
    """The advisor tool's fee is in OpenRouter's bill, not in any token price: the bill is the cost."""
    require_conformance_dir()
    (ex,) = load("openrouter/openrouter_advisor_tool.yaml")
    data = ex.json()
    result = adapter().parse_complete(CompleteRequest(model=data["model"], messages=[]),
                                      HTTPResponse(200, ex.headers, ex.content))
    cost, table = priced(result, when_of(ex, data["created"]))
    assert table.total is not None
    assert cost.total is not None
    assert cost.table_total is not None
    assert cost.total == Decimal(str(data["usage"]["cost"])) > table.total
    assert cost.lines[-1].amount == cost.total - table.total
    assert str(cost.price_source).startswith("openrouter: usage.cost")


# ------------------------------------------------------------------------------------------------ client level


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("rel", ALL_FILES or [MISSING])
async def test_replay_through_client(rel: str | None, mode: str, tmp_path: Path) -> None:
    require_conformance_dir()
    assert rel is not None
    exchanges = load(rel)
    doc = to_vcr(exchanges)
    for inter in doc["interactions"]:  # vcrpy compares bodies as JSON when the request says it is JSON
        inter["request"]["headers"] = {"content-type": ["application/json"]}
    cassette = tmp_path / "cassette.yaml"
    cassette.write_text(yaml.safe_dump(doc, allow_unicode=True), "utf-8")
    sleeps = Sleeps()
    cls = ck.Client if mode == "sync" else ck.AsyncClient
    client = cls(config=None, providers={"openrouter": {"api_key": KEY}}, ledger="none",
                 retry_policy=policy(sleeps, max_retries=len(exchanges) - 1))
    recorder = vcr.VCR(record_mode="none", match_on=["method", "scheme", "host", "port", "path", "query", "body"])
    first = exchanges[0]
    body = first.request_body
    model = f"openrouter:{body['model']}"
    with recorder.use_cassette(str(cassette)) as cass:
        if kind(first) == "error":
            with pytest.raises(RateLimitError) as info:
                await call(client, "complete", model, **call_kwargs(body))
            assert info.value.status == 429
            assert len(sleeps.waits) == len(exchanges) - 1, "retried, then gave up"
        elif stream_error(first) is not None:
            with pytest.raises(ProviderError):
                await stream(client, model, **call_kwargs(body))
        else:
            for ex in exchanges:
                kw = call_kwargs(ex.request_body)
                if kind(ex) == "chat-stream":
                    _, result = await stream(client, model, **kw)
                    want = expected_from_stream(ex)
                    raw, answered = want["usage"], want["meta"]["model"]
                    assert result.text == want["text"]
                else:
                    result = await call(client, "complete", model, **kw)
                    data = ex.json()
                    raw, answered = data["usage"], data["model"]
                    assert result.text == (data["choices"][0]["message"].get("content") or "")
                assert [a.outcome for a in result.attempts] == ["success"]
                check_usage(result.usage, raw)
                when = result.attempts[0].started_at
                table = PriceBook().token_cost(adapter().price_ref(result.model, result), result.usage, when)
                check_cost(result.cost, table, raw, answered, when)
                assert result.attempts[0].cost == result.cost
        assert cass.all_played, "every recorded exchange was requested"
    await close(client)


@pytest.mark.parametrize("mode", MODES)
async def test_a_stream_error_that_reports_usage_is_billed_that_usage(mode: str, tmp_path: Path) -> None:
    """OpenRouter's error chunk ("Token limit reached", a 400 inside the 200 stream) carries the call's usage and
    its bill: the failed attempt's ledger row has that usage and that price, not "error response: not billed"."""
    require_conformance_dir()
    exchanges = load("openrouter/openrouter_stream_error.yaml")
    doc = to_vcr(exchanges)
    for inter in doc["interactions"]:
        inter["request"]["headers"] = {"content-type": ["application/json"]}
    cassette = tmp_path / "cassette.yaml"
    cassette.write_text(yaml.safe_dump(doc, allow_unicode=True), "utf-8")
    (ex,) = exchanges
    error_chunk = next(json.loads(d) for d in ex.sse_data() if d != "[DONE]" and "error" in json.loads(d))
    raw = error_chunk["usage"]  # what the recording says, read from it: 43 prompt and 10 completion tokens
    body = ex.request_body
    cls = ck.Client if mode == "sync" else ck.AsyncClient
    client = cls(config=None, providers={"openrouter": {"api_key": KEY}}, ledger=f"sqlite:///{tmp_path / 'l.db'}",
                 retry_policy=policy(Sleeps(), max_retries=0))
    recorder = vcr.VCR(record_mode="none", match_on=["method", "scheme", "host", "port", "path", "query", "body"])
    with recorder.use_cassette(str(cassette)), pytest.raises(ck.BadRequestError) as info:
        await stream(client, f"openrouter:{body['model']}", **call_kwargs(body))
    assert info.value.message == error_chunk["error"]["message"]
    rows = client.ledger.rows()
    await close(client)
    assert [(r.outcome, r.status, r.error_type) for r in rows] == [("error", 400, "BadRequestError")]
    (row,) = rows
    assert (row.input_tokens, row.output_tokens) == (raw["prompt_tokens"], raw["completion_tokens"])
    assert row.reasoning_tokens == raw["completion_tokens_details"]["reasoning_tokens"]
    # Its price: OpenRouter's bill for the call (usage.cost) is the cost, as for a call that succeeded.
    assert row.cost == billed(raw)
    assert row.price_source is not None
    assert str(row.price_source).startswith("openrouter: usage.cost")
