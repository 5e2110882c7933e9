"""Conformance: every real recording in ``shared/conformance/openai-responses`` (OpenAI's Responses API, and the
same API on Azure OpenAI and OpenRouter) through computekit's Responses wire format.

Each exchange on ``POST /responses`` is exercised; every other exchange is on an endpoint computekit has no verb for
and is listed below with the reason (the files it sits in are still exercised for their ``/responses`` calls).
Expectations are read from the recorded JSON and events, never from computekit: text, tool calls, finish reason,
every usage field, the built-in tool calls billed per call, and the cost:

- the tokens equal ``genai_prices.calc_price`` on the recorded usage (genai-prices' own reading of a Responses
  usage object, ``api_flavor="responses"``), at the time of the call;
- each billed built-in tool call is one more line, priced from ``computekit/pricing/data/tools.toml`` (read here
  directly): web search and file search calls, and code-interpreter containers.

Two levels: the adapter fed the recorded bytes (``parse_complete``, the ``response.*`` stream decoder at several
piece sizes, ``map_error``), and the public client replaying each recorded answer, sync and async, through a mock
transport, with its ledger row.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any

import genai_prices
import httpx
import pytest
from _conformance import MISSING, Collection, Exchange, feed_pieces, fragments, load, require_conformance_dir
from pydantic import SecretStr

import computekit as ck
from computekit._sse import SSEDecoder
from computekit.adapters._base import CompleteRequest, HTTPResponse, ProviderSettings
from computekit.adapters.azure import AzureOpenAIAdapter, AzureSettings
from computekit.adapters.openai import OpenAIAdapter, OpenAIWire
from computekit.adapters.openai_compatible import OpenAICompatibleAdapter
from computekit.adapters.openai_responses import items_key
from computekit.pricing import PriceBook

pytestmark = [pytest.mark.conformance, pytest.mark.filterwarnings("ignore::computekit.pricing.UnknownPriceWarning")]

FOLDER = "openai-responses"
KEY = "test-conformance-key"
TOOLS_TABLE = Path(__file__).resolve().parents[2] / "computekit" / "pricing" / "data" / "tools.toml"

# Whole files computekit does not replay, with the reason.
UNSUPPORTED: dict[str, str] = {
    "background_mode_streaming_starting_after_vcr.yaml": "background mode with stream=True (the submit streams its "
                                                         "events, and GET /responses/{id}?stream=true&starting_after= "
                                                         "resumes them): computekit refuses a background stream before "
                                                         "any request and polls instead (complete(background=True)); "
                                                         "ck.instrument records it through the openai SDK "
                                                         "(test_instrument_background)",
    "openai_responses_compact_messages.yaml": "POST /responses/compact (server-side compaction of a conversation "
                                              "into an opaque item) has no computekit verb: it is not a completion "
                                              "and its answer carries no text to return",
    "openai_responses_compact_with_auto_previous_response_id.yaml": "POST /responses/compact: see "
                                                                    "openai_responses_compact_messages.yaml",
    "openai_responses_compact_with_instructions.yaml": "POST /responses/compact: see "
                                                       "openai_responses_compact_messages.yaml",
    "responses_count_tokens_with_tools.yaml": "POST /responses/input_tokens (server-side token counting, not billed) "
                                              "has no computekit verb: budgets bound a call's input from the "
                                              "request itself",
    "responses_usage_limit_exceeded.yaml": "POST /responses/input_tokens only (a client-side usage limit checked "
                                           "with token counting): no computekit verb, as above",
}
# Exchanges, inside exercised files, on endpoints computekit has no verb for.
OTHER_ENDPOINTS: dict[str, str] = {
    "/v1/responses/input_tokens": "token counting is not a computekit verb",
    "/v1/conversations": "creating and deleting a conversation is the application's (computekit sends its id: "
                         "extra_body={'conversation': ...})",
    "/v1/files": "uploading a file for file search is the application's",
    "/v1/vector_stores": "building a vector store for file search is the application's",
    "/v1/messages": "an Anthropic Messages call recorded in the same test (the anthropic folder covers that API)",
}


def kind(ex: Exchange) -> str | None:
    """What an exchange exercises, or ``None`` when computekit has no verb for it."""
    if ex.method == "GET" and ex.path.startswith("/v1/responses/"):
        return "poll"  # a background response's state (client.responses)
    if ex.method != "POST" or not ex.path.endswith("/responses"):
        return None
    if isinstance(ex.request_body, dict) and ex.request_body.get("background"):
        return "background"
    if ex.status >= 400:
        return "error"
    return "stream" if ex.is_sse else "response"


COLLECTION = Collection.of(FOLDER, unsupported={f"{FOLDER}/{k}": v for k, v in UNSUPPORTED.items()})
ALL_FILES, EXCHANGES = COLLECTION.files, COLLECTION.exchanges


def params(*kinds: str) -> list[Any]:
    return COLLECTION.params(kind, *kinds)


def adapter_for(ex: Exchange) -> OpenAIWire:
    if ex.host.endswith(".openai.azure.com"):
        return AzureOpenAIAdapter(ProviderSettings(name="azure", base_url=f"https://{ex.host}", api_key=SecretStr(KEY),
                                                   timeout=30, options=AzureSettings()))
    if ex.host == "openrouter.ai":
        return OpenAICompatibleAdapter(ProviderSettings(name="openrouter", base_url="https://openrouter.ai/api/v1",
                                                        api_key=SecretStr(KEY), timeout=30))
    assert ex.host == "api.openai.com", ex.host
    return OpenAIAdapter(ProviderSettings(name="openai", base_url="https://api.openai.com/v1", api_key=SecretStr(KEY),
                                          timeout=30))


def request_of(ex: Exchange, *, stream: bool) -> CompleteRequest:
    body = ex.request_body if isinstance(ex.request_body, dict) else {}
    return CompleteRequest(model=str(body.get("model") or "unknown"), messages=[], stream=stream, api="responses")


def final_response(ex: Exchange) -> dict[str, Any]:
    """The response object the recording ends with (a whole body, or a stream's completed event)."""
    if not ex.is_sse:
        data = ex.json()
        assert isinstance(data, dict)
        return data
    for payload in reversed(ex.sse_data()):
        if payload == "[DONE]":  # OpenRouter ends the stream the chat way too
            continue
        event = json.loads(payload)
        if event.get("type") in ("response.completed", "response.incomplete"):
            return dict(event["response"])
    raise AssertionError(f"{ex.id}: the stream has no completed response")


def expected_text(data: dict[str, Any]) -> str:
    return "".join(part.get("text", "") for item in data["output"] if item["type"] == "message"
                   for part in item.get("content") or [] if part.get("type") == "output_text")


def expected_calls(data: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(i["call_id"], i["name"], i["arguments"]) for i in data["output"] if i["type"] == "function_call"]


def expected_fees(data: dict[str, Any]) -> dict[str, int]:
    items = data["output"]
    fees = {"web_search_calls": sum(i["type"] == "web_search_call" for i in items),
            "file_search_calls": sum(i["type"] == "file_search_call" for i in items),
            "image_generation_calls": sum(i["type"] == "image_generation_call" for i in items),
            "containers": len({i["container_id"] for i in items if i["type"] == "code_interpreter_call"})}
    return {k: v for k, v in fees.items() if v}


def tool_prices(provider: str, when: dt.datetime) -> dict[str, Decimal]:
    """USD per unit of each built-in tool fee that applies on ``when``'s day, read from the table itself."""
    table = tomllib.loads(TOOLS_TABLE.read_text("utf-8"))
    return {f["unit"]: Decimal(f["price"]) / int(f["per"]) for f in table["fees"] if f["provider"] == provider
            and ("until" not in f or when.date() < dt.date.fromisoformat(f["until"]))}


def when_of(data: dict[str, Any]) -> dt.datetime:
    return dt.datetime.fromtimestamp(data["created_at"], dt.UTC)


def genai_usage(raw: dict[str, Any]) -> genai_prices.Usage:
    """A Responses usage object in genai-prices' vocabulary, read from the JSON."""
    return genai_prices.Usage(input_tokens=raw["input_tokens"], output_tokens=raw["output_tokens"],
                              cache_read_tokens=raw["input_tokens_details"]["cached_tokens"],
                              output_reasoning_tokens=raw["output_tokens_details"]["reasoning_tokens"])


def expected_cost(ex: Exchange, data: dict[str, Any], when: dt.datetime | None = None) -> Decimal | None:
    """genai-prices on the recorded usage at ``when`` (default: the time of the call), plus the tool fees from the
    table; ``None`` where genai-prices has no price for the model (OpenRouter's open-weight route), or the table
    none for a fee on that day (code-interpreter containers from 2026-03-31)."""
    provider = {"api.openai.com": "openai", "openrouter.ai": "openrouter"}.get(ex.host, "azure")
    at = when or when_of(data)
    tier = data.get("service_tier")
    ctx = {"service_tier": tier} if tier and tier not in ("default", "auto") else None
    try:
        tokens = genai_prices.calc_price(genai_usage(data["usage"]), data["model"], provider_id=provider,
                                         genai_request_timestamp=at, price_context=ctx).total_price
    except LookupError:
        return None
    if provider == "openai":  # genai-prices' own reading of a Responses usage object agrees
        extracted = genai_prices.extract_usage({"model": data["model"], "usage": data["usage"]},
                                               provider_id="openai", api_flavor="responses")
        assert extracted.calc_price(genai_request_timestamp=at, price_context=ctx).total_price == tokens
    prices = tool_prices(provider, at)
    fees = expected_fees(data)
    if any(k not in prices for k in fees):
        return None  # a fee with no price that day: the call is unpriced, never priced without it
    return tokens + sum((prices[k] * n for k, n in fees.items()), Decimal(0))


def check(ex: Exchange, adapter: OpenAIWire, result: ck.Completion, data: dict[str, Any]) -> None:
    assert result.text == expected_text(data)
    assert [(c.id, c.name, c.arguments) for c in result.tool_calls] == expected_calls(data)
    assert result.finish_reason == ("tool_calls" if expected_calls(data) else "stop")
    usage = data["usage"]
    assert result.usage.input_tokens == usage["input_tokens"]
    assert result.usage.output_tokens == usage["output_tokens"]
    assert result.usage.cached_input_tokens == usage["input_tokens_details"]["cached_tokens"]
    assert result.usage.reasoning_tokens == usage["output_tokens_details"]["reasoning_tokens"]
    assert {k: int(v) for k, v in result.usage.units.items()} == expected_fees(data)
    assert result.id == data["id"]
    # Every output item is kept, to go back on the next turn (reasoning, tool calls, built-in tool items).
    assert result.message.provider_fields == {items_key(adapter.provider): {"output": data["output"],
                                                                            "id": data["id"]}}
    cost = PriceBook().token_cost(adapter.price_ref(result.model, result), result.usage, when_of(data))
    want = expected_cost(ex, data)
    assert cost.total == want, (cost, want)
    if want is not None:
        assert sum(line.amount for line in cost.lines) == cost.total
        assert {line.item for line in cost.lines} >= set(expected_fees(data))


# ------------------------------------------------------------------------------------------------ coverage


def test_unsupported_list_names_real_files() -> None:
    require_conformance_dir()
    stale = sorted(f"{FOLDER}/{k}" for k in UNSUPPORTED if f"{FOLDER}/{k}" not in ALL_FILES)
    assert not stale, f"UNSUPPORTED lists files that no longer exist: {stale}"


@pytest.mark.parametrize("rel", ALL_FILES or [MISSING])
def test_every_file_is_exercised_or_listed(rel: str | None) -> None:
    require_conformance_dir()
    assert rel is not None
    exchanges = load(rel)
    assert exchanges, f"{rel} holds no exchanges"
    name = rel.split("/", 1)[1]
    if name in UNSUPPORTED:
        assert UNSUPPORTED[name].strip()
        return
    assert any(kind(ex) for ex in exchanges), f"{rel}: no Responses call exercised"
    for ex in exchanges:
        other = next((p for p in OTHER_ENDPOINTS if ex.path.startswith(p)), None)
        assert kind(ex) is not None or other is not None, f"{ex.id}: {ex.method} {ex.path} neither exercised nor listed"


def test_counts() -> None:
    require_conformance_dir()
    assert len(ALL_FILES) == 60
    assert len(ALL_FILES) - len(UNSUPPORTED) == 54
    assert sum(1 for ex in EXCHANGES if kind(ex) in ("response", "stream")) == 64
    assert sum(1 for ex in EXCHANGES if kind(ex) == "background") == 4
    assert sum(1 for ex in EXCHANGES if kind(ex) == "poll") == 6


# ------------------------------------------------------------------------------------------------ adapter level


@pytest.mark.parametrize("ex", params("response"))
def test_response(ex: Exchange | None) -> None:
    require_conformance_dir()
    assert ex is not None
    adapter = adapter_for(ex)
    result = adapter.parse_complete(request_of(ex, stream=False), HTTPResponse(ex.status, ex.headers, ex.content))
    check(ex, adapter, result, final_response(ex))
    assert result.request_id == adapter.request_id(ex.headers)


@pytest.mark.parametrize("piece", [7, 4096])
@pytest.mark.parametrize("ex", params("stream"))
def test_stream(ex: Exchange | None, piece: int) -> None:
    require_conformance_dir()
    assert ex is not None
    adapter = adapter_for(ex)
    decoder = adapter.stream_decoder(request_of(ex, stream=True))
    chunks = feed_pieces(SSEDecoder(10**8), decoder, ex.content, piece)
    assert decoder.done
    data = final_response(ex)
    result = decoder.result()
    check(ex, adapter, result, data)
    assert "".join(c.text for c in chunks) == expected_text(data)  # the text as it came, piece by piece
    assert fragments(chunks) == expected_calls(data)
    assert [c.usage for c in chunks if c.usage is not None] == [result.usage.model_copy(update={"units": {}})]


@pytest.mark.parametrize("ex", params("error"))
def test_error(ex: Exchange | None) -> None:
    require_conformance_dir()
    assert ex is not None
    adapter = adapter_for(ex)
    err = adapter.map_error(HTTPResponse(ex.status, ex.headers, ex.content), request_of(ex, stream=False).model)
    body = ex.json()
    assert isinstance(err, ck.BadRequestError)
    assert err.status == ex.status == 400
    assert err.message == body["error"]["message"]
    assert err.body == body


def test_failed_response_in_a_200_stream_is_typed() -> None:
    """An ``error`` event and a ``response.failed`` event inside a 200 stream are typed by what they carry."""
    adapter = OpenAIAdapter(ProviderSettings(name="openai", base_url="https://api.openai.com/v1",
                                             api_key=SecretStr(KEY), timeout=30))
    req = CompleteRequest(model="gpt-4o", messages=[], stream=True, api="responses")
    from computekit._http import SSEEvent

    limit = SSEEvent(data=json.dumps({"type": "error", "code": "rate_limit_exceeded", "message": "slow down",
                                      "param": None, "sequence_number": 3}), event="error")
    with pytest.raises(ck.RateLimitError, match="slow down"):
        adapter.stream_decoder(req).feed(limit)
    failed = SSEEvent(data=json.dumps({"type": "response.failed", "response": {
        "id": "resp_1", "status": "failed", "output": [],
        "error": {"code": "server_error", "message": "The model failed."}}}), event="response.failed")
    with pytest.raises(ck.ServerError, match="The model failed"):
        adapter.stream_decoder(req).feed(failed)


# ------------------------------------------------------------------------------------------------ client level


def replay(ex: Exchange) -> httpx.Response:
    headers = {k: v for k, v in ex.headers.items() if k not in ("content-encoding", "content-length",
                                                                  "transfer-encoding")}
    return httpx.Response(ex.status, headers=headers, content=ex.content)


def client_for(ex: Exchange, seen: list[httpx.Request], *, is_async: bool) -> tuple[Any, str]:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return replay(ex)

    transport = httpx.MockTransport(handler)
    adapter = adapter_for(ex)
    provider = adapter.provider
    settings: dict[str, Any] = {"api_key": KEY}
    if provider == "azure":
        settings["base_url"] = f"https://{ex.host}"
    http: Any = httpx.AsyncClient(transport=transport) if is_async else httpx.Client(transport=transport)
    cls = ck.AsyncClient if is_async else ck.Client
    return cls(config=None, providers={provider: settings}, http_client=http), provider


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("ex", params("response", "stream"))
def test_replay_through_client(ex: Exchange | None, is_async: bool) -> None:
    require_conformance_dir()
    assert ex is not None
    data = final_response(ex)
    model = str(ex.request_body["model"])
    seen: list[httpx.Request] = []
    client, provider = client_for(ex, seen, is_async=is_async)

    async def run_async() -> ck.Completion:
        if ex.is_sse:
            stream = client.stream(f"{provider}:{model}", "hi", api="responses")
            async for _ in stream:
                pass
            return stream.result
        result: ck.Completion = await client.complete(f"{provider}:{model}", "hi", api="responses")
        return result

    def run_sync() -> ck.Completion:
        if ex.is_sse:
            stream = client.stream(f"{provider}:{model}", "hi", api="responses")
            for _ in stream:
                pass
            return stream.result
        result: ck.Completion = client.complete(f"{provider}:{model}", "hi", api="responses")
        return result

    before = dt.datetime.now(dt.UTC)
    result = asyncio.run(run_async()) if is_async else run_sync()
    assert seen[0].url.path.endswith("/responses")
    sent = json.loads(seen[0].content)
    assert sent["input"] == [{"role": "user", "content": "hi"}]
    assert result.text == expected_text(data)
    want = expected_cost(ex, data, before)  # the client prices a call at the time it is made
    if provider == "openrouter":  # what OpenRouter says it billed is the call's cost
        want = Decimal(str(data["usage"]["cost"]))
    assert result.cost.total == want
    rows = client.ledger.rows()
    assert len(rows) == 1
    assert rows[0].cost == want
    assert rows[0].input_tokens == data["usage"]["input_tokens"]


def test_azure_responses_endpoint_and_deployment() -> None:
    """Azure's Responses API is on the resource's ``/openai/v1/responses``, the deployment named as the model."""
    require_conformance_dir()
    (ex,) = [e for e in EXCHANGES if e.host.endswith(".openai.azure.com")]
    adapter = AzureOpenAIAdapter(ProviderSettings(
        name="azure", base_url=f"https://{ex.host}", api_key=SecretStr(KEY), timeout=30,
        options=AzureSettings(deployments={"gpt-5": str(ex.request_body["model"])})))
    http = adapter.build_complete(CompleteRequest(model="gpt-5", messages=[{"role": "user", "content": "x"}],
                                                  api="responses"))
    assert http.url == ex.uri
    assert http.json is not None
    assert http.json["model"] == ex.request_body["model"]
    assert http.headers["api-key"] == KEY


# ------------------------------------------------------------------------------------------------ background mode

BACKGROUND = sorted({ex.file for ex in EXCHANGES if kind(ex) == "background"})


@pytest.mark.parametrize("ex", params("background", "poll"))
def test_background_states(ex: Exchange | None) -> None:
    """Every recorded background state (the queued submit, each poll) read by the adapter: the id and status as
    recorded; the final completion, with its usage, once it has ended."""
    require_conformance_dir()
    assert ex is not None
    adapter = adapter_for(ex)
    data = ex.json()
    assert isinstance(data, dict)
    h = adapter.parse_background(request_of(ex, stream=False), HTTPResponse(ex.status, ex.headers, ex.content))
    assert (h.id, h.status, h.done) == (data["id"], data["status"], data["status"] == "completed")
    if h.done:
        assert h.completion is not None
        check(ex, adapter, h.completion, data)
    else:
        assert h.completion is None
    if kind(ex) == "poll":
        assert ex.path == f"/v1/responses/{data['id']}"
        assert adapter.build_background_get(data["id"]).url == ex.uri.split("?")[0]


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("rel", BACKGROUND or [MISSING])
def test_background_replay_through_client(rel: str | None, is_async: bool) -> None:
    """Each recorded background conversation through ``complete(..., background=True)`` and
    ``client.responses.wait``: the requests computekit sends follow the recording (a submit with
    ``background: true``, then GETs of the response's id until it ends), and each response that ended is priced
    from its recorded usage and written to the ledger once, keyed by its id. A recording that stops while the
    response is still queued leaves no row."""
    require_conformance_dir()
    assert rel is not None
    exchanges = [ex for ex in load(rel) if kind(ex)]
    seen: list[httpx.Request] = []
    replies = iter(exchanges)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return replay(next(replies))

    http: Any = httpx.AsyncClient(transport=httpx.MockTransport(handler)) if is_async else httpx.Client(
        transport=httpx.MockTransport(handler))
    client = (ck.AsyncClient if is_async else ck.Client)(config=None, providers={"openai": {"api_key": KEY}},
                                                         http_client=http)
    submits = [i for i, ex in enumerate(exchanges) if kind(ex) == "background"]
    ends = [*submits[1:], len(exchanges)]
    before = dt.datetime.now(dt.UTC)

    async def follow(model: str, last: dict[str, Any]) -> ck.BackgroundResponse:
        h: ck.BackgroundResponse = await client.complete(f"openai:{model}", "hi", background=True)
        if last["status"] in ("queued", "in_progress"):
            return await client.responses.refresh(h)
        return await client.responses.wait(h, poll_interval=0)

    def follow_sync(model: str, last: dict[str, Any]) -> ck.BackgroundResponse:
        h = client.complete(f"openai:{model}", "hi", background=True)
        if last["status"] in ("queued", "in_progress"):
            return client.responses.refresh(h)
        return client.responses.wait(h, poll_interval=0)

    want_rows = []
    for start, end in zip(submits, ends, strict=True):
        model = str(exchanges[start].request_body["model"])
        last_ex = exchanges[end - 1]
        last = last_ex.json()
        assert isinstance(last, dict)
        h = asyncio.run(follow(model, last)) if is_async else follow_sync(model, last)
        assert h.id == last["id"]
        assert h.status == last["status"]
        if not h.done:
            assert h.completion is None
            continue
        assert h.completion is not None
        assert h.completion.text == expected_text(last)
        assert [(c.id, c.name, c.arguments) for c in h.completion.tool_calls] == expected_calls(last)
        want = expected_cost(last_ex, last, before)
        assert h.cost.total == want
        want_rows.append((f"background:openai:{last['id']}", want, last["usage"]["input_tokens"]))
    sent = [(r.method, r.url.path) for r in seen]
    assert sent == [(ex.method, ex.path) for ex in exchanges]
    for r, ex in zip(seen, exchanges, strict=True):
        if kind(ex) == "background":
            assert json.loads(r.content)["background"] is True
    assert [(r.once_key, r.cost, r.input_tokens) for r in client.ledger.rows()] == want_rows
