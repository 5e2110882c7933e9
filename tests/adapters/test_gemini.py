"""The ``gemini`` and ``vertex`` adapters through the public API, sync and async, on authored cassettes
(``cassettes/test_gemini/``: written from Google's API reference, see each file's header), plus the request
translation and the Vertex credential paths, which need no HTTP.

Costs are checked against genai-prices' own reading of the recorded ``usageMetadata`` (its Google extractor),
never against constants.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from decimal import Decimal
from typing import Any

import genai_prices
import pytest
import yaml
from _clients import (  # noqa: F401  (fixtures are used by name)
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
from _conformance import conformance_dir, files, load
from _paths import CASSETTES, real_key
from pydantic import SecretStr
from test_cassette_specs import MARKER, SECRET_PATTERNS

import computekit as ck
from computekit._exceptions import ConfigError, InvalidRequestError
from computekit.adapters._base import CompleteRequest, EmbedRequest, HTTPResponse, ProviderSettings, SSEEvent
from computekit.adapters.gemini import GEMINI_BASE_URL, GeminiAdapter
from computekit.adapters.vertex import TIER_HEADER, VertexAdapter, VertexSettings
from computekit.pricing import PriceBook

KEY = real_key("GEMINI_API_KEY", "test-gemini-placeholder-key")
TOKEN = "ya29.test-access-token"


def client_for(mode: str, **kwargs: Any) -> ck.Client | ck.AsyncClient:
    return make_client(mode, providers={"gemini": {"api_key": KEY}}, **kwargs)


def genai_cost(result: ck.Completion) -> Decimal:
    """genai-prices' price for the usage in the response, read by its own Google extractor, at the call's time."""
    extracted = genai_prices.extract_usage(result.raw, provider_id="google")
    when: dt.datetime = result.attempts[-1].started_at
    ctx = {"service_tier": result.service_tier} if result.service_tier in ("flex", "priority") else None
    return extracted.calc_price(genai_request_timestamp=when, price_context=ctx).total_price


def gemini() -> GeminiAdapter:
    return GeminiAdapter(ProviderSettings(name="gemini", base_url=GEMINI_BASE_URL, api_key=SecretStr(KEY),
                                          timeout=30))


class FakeCredentials:
    """What ``google.auth.default()`` returns: a token fetched on the first refresh."""

    def __init__(self) -> None:
        self.token: str | None = None
        self.refreshes = 0

    @property
    def valid(self) -> bool:
        return self.token is not None

    def refresh(self, request: Any) -> None:
        self.refreshes += 1
        self.token = TOKEN


@pytest.fixture
def adc(monkeypatch: pytest.MonkeyPatch) -> FakeCredentials:
    """Application Default Credentials stood in for (google-auth's default() returns these, project my-project)."""
    import google.auth

    creds = FakeCredentials()
    monkeypatch.setattr(google.auth, "default", lambda scopes=None: (creds, "my-project"))
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    monkeypatch.delenv("GOOGLE_CLOUD_LOCATION", raising=False)
    return creds


# ------------------------------------------------------------------------------------------------ through the client


@pytest.mark.vcr
@pytest.mark.default_cassette("tools.yaml")
async def test_tool_call_round_trip_carries_the_thought_signature(mode: str) -> None:
    client = client_for(mode)
    messages: list[Any] = [{"role": "user", "content": "What's the weather in Paris?"}]
    first = await call(client, "complete", "gemini:gemini-3-flash-preview", messages=messages, tools=[WEATHER])
    assert first.finish_reason == "tool_calls"
    (tc,) = first.tool_calls
    assert (tc.name, tc.parsed_arguments()) == ("get_weather", {"city": "Paris"})
    assert tc.id == "ck-call-0"  # Google sent no id: a local one, never sent back
    assert tc.signature == first.raw["candidates"][0]["content"]["parts"][0]["thoughtSignature"]
    assert first.usage.output_tokens == 16 + 56  # candidates + thoughts
    assert first.cost.total == genai_cost(first)
    # The cassette's second request body pins what goes back: the call with its signature, then the result.
    messages += [first.message, {"role": "tool", "tool_call_id": tc.id, "content": "18C and sunny"}]
    second = await call(client, "complete", "gemini:gemini-3-flash-preview", messages=messages, tools=[WEATHER])
    await close(client)
    assert second.text == "It's 18°C and sunny in Paris."
    assert second.finish_reason == "stop"
    assert second.cost.total == genai_cost(second)
    rows = client.ledger.rows()
    assert [(r.provider, r.outcome, r.cost) for r in rows] == [("gemini", "success", first.cost.total),
                                                               ("gemini", "success", second.cost.total)]


@pytest.mark.vcr
@pytest.mark.default_cassette("stream_thinking_cached.yaml")
async def test_stream_thinking_and_implicit_cache(mode: str) -> None:
    client = client_for(mode)
    chunks, result = await stream(
        client, "gemini:gemini-2.5-flash",
        messages=[{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Count to three."}],
        extra_body={"thinkingConfig": {"includeThoughts": True, "thinkingBudget": 512}})
    await close(client)
    assert "".join(c.text for c in chunks) == result.text == "1, 2, 3."
    assert "Counting" not in result.text  # the thought part stays out of the text
    usage_chunks = [c.usage for c in chunks if c.usage is not None]
    assert usage_chunks == [result.usage]
    assert (result.usage.input_tokens, result.usage.cached_input_tokens) == (4108, 4096)
    assert (result.usage.output_tokens, result.usage.reasoning_tokens) == (7 + 40, 40)
    assert result.cost.total == genai_cost(result)
    lines = {line.item: line for line in result.cost.lines}
    assert lines["cached input"].quantity == 4096
    assert lines["input"].quantity == 12


@pytest.mark.vcr
@pytest.mark.default_cassette("embed.yaml")
async def test_batch_embeddings(mode: str) -> None:
    client = client_for(mode)
    r = await call(client, "embed", "gemini:gemini-embedding-001", ["hello", "world"], dimensions=3)
    await close(client)
    assert r.vectors == [[0.012, -0.034, 0.056], [0.021, 0.043, -0.065]]
    assert r.cost.total is None  # the Gemini API reports no token count for embeddings: unknown, never 0
    assert r.cost.reason


@pytest.mark.vcr
@pytest.mark.default_cassette("rate_limited_then_ok.yaml")
async def test_429_retry_info_in_the_body_is_honoured(mode: str) -> None:
    sleeps = Sleeps()
    client = client_for(mode, retry_policy=policy(sleeps))
    r = await call(client, "complete", "gemini:gemini-2.5-flash-lite", "Say this is a test")
    await close(client)
    assert r.text == "This is a test."
    assert [a.outcome for a in r.attempts] == ["error", "success"]
    assert r.attempts[0].error_type == "RateLimitError"
    assert sleeps.waits == [7.0]  # google.rpc.RetryInfo.retryDelay "7s"


@pytest.mark.vcr
@pytest.mark.default_cassette("vertex_flex.yaml")
async def test_vertex_adc_flex_and_labels(mode: str, adc: FakeCredentials) -> None:
    client = make_client(mode, providers={"vertex": {"project": "my-project"}})
    r = await call(client, "complete", "vertex:gemini-2.5-flash", "Reply with exactly: OK", service_tier="flex",
                   extra_body={"labels": {"team": "search"}})
    await close(client)
    assert r.text == "OK"
    assert r.service_tier == "flex"  # from usageMetadata.trafficType
    assert r.cost.total == genai_cost(r)
    assert adc.refreshes == 1


# ------------------------------------------------------------------------------------------------ translation


def test_key_goes_in_a_header_never_the_url() -> None:
    http = gemini().build_complete(CompleteRequest(model="gemini-2.5-flash", messages=[{"role": "user",
                                                                                         "content": "hi"}]))
    assert http.headers["x-goog-api-key"] == KEY
    assert KEY not in http.url
    assert "authorization" not in http.headers
    assert http.url == f"{GEMINI_BASE_URL}/models/gemini-2.5-flash:generateContent"
    assert KEY not in repr(http)


def test_request_translation() -> None:
    req = CompleteRequest(
        model="gemini-2.5-flash",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [
                {"type": "text", "text": "Compare these."},
                {"type": "image_url", "url": "data:image/png;base64,iVBORw0KGgo="},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                {"type": "document", "url": "https://example.com/paper.pdf"},
                {"type": "video", "url": "https://www.youtube.com/watch?v=dQw4w9WgXcQ"},
            ]},
        ],
        max_tokens=100, temperature=0.2, top_p=0.9, stop="END", seed=7,
        tools=[WEATHER, {"googleSearch": {}}], tool_choice="required",
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
        service_tier="flex",
        extra={"thinkingConfig": {"thinkingBudget": 0}, "safetySettings": [{"category": "HARM_CATEGORY_HATE_SPEECH",
                                                                            "threshold": "BLOCK_NONE"}]},
    )
    body = gemini().complete_body(req)
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert body["contents"][0]["parts"] == [
        {"text": "Compare these."},
        {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
        {"fileData": {"fileUri": "https://example.com/cat.jpg", "mimeType": "image/jpeg"}},
        {"fileData": {"fileUri": "https://example.com/paper.pdf", "mimeType": "application/pdf"}},
        {"fileData": {"fileUri": "https://www.youtube.com/watch?v=dQw4w9WgXcQ", "mimeType": "video/mp4"}},
    ]
    assert body["tools"] == [{"googleSearch": {}}, {"functionDeclarations": [
        {"name": "get_weather", "description": WEATHER["description"], "parametersJsonSchema": WEATHER["parameters"]}]}]
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    assert body["generationConfig"] == {
        "temperature": 0.2, "topP": 0.9, "maxOutputTokens": 100, "stopSequences": ["END"], "seed": 7,
        "responseMimeType": "application/json", "responseJsonSchema": {"type": "object"},
        "thinkingConfig": {"thinkingBudget": 0}}
    assert body["serviceTier"] == "flex"
    assert body["safetySettings"][0]["threshold"] == "BLOCK_NONE"


@pytest.mark.parametrize(("choice", "want"), [
    ("auto", {"mode": "AUTO"}), ("none", {"mode": "NONE"}),
    ("get_weather", {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}),
    ({"type": "function", "function": {"name": "get_weather"}},
     {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}),
])
def test_tool_choice(choice: Any, want: dict[str, Any]) -> None:
    body = gemini().complete_body(CompleteRequest(model="m", messages=[{"role": "user", "content": "x"}],
                                                  tools=[WEATHER], tool_choice=choice))
    assert body["toolConfig"] == {"functionCallingConfig": want}


def test_native_schema_output_and_json_mode() -> None:
    native = {"responseMimeType": "application/json", "responseSchema": {"type": "OBJECT"}}
    body = gemini().complete_body(CompleteRequest(model="m", messages=[{"role": "user", "content": "x"}],
                                                  response_format=native))
    assert body["generationConfig"] == native
    body = gemini().complete_body(CompleteRequest(model="m", messages=[{"role": "user", "content": "x"}],
                                                  response_format={"type": "json_object"}))
    assert body["generationConfig"] == {"responseMimeType": "application/json"}


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"messages": [{"role": "tool", "tool_call_id": "x", "content": "1"}]}, "function's name"),
    ({"messages": [{"role": "user", "content": [{"type": "input_audio", "data": "x"}]}]}, "not supported"),
    ({"messages": [{"role": "user", "content": "x"}], "user": "u1"}, "end-user"),
    ({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "xml"}}, "not supported"),
    ({"messages": [{"role": "assistant", "content": "", "tool_calls": [{"id": "a", "name": "f",
                                                                          "arguments": "{not json"}]}]}, "not JSON"),
])
def test_bad_input_is_refused_before_sending(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidRequestError, match=match):
        gemini().complete_body(CompleteRequest(model="m", **kwargs))


def test_single_embedding_uses_embed_content() -> None:
    http = gemini().build_embed(EmbedRequest(model="gemini-embedding-001", inputs=["hi"]))
    assert http.url.endswith("/models/gemini-embedding-001:embedContent")
    assert http.json == {"content": {"parts": [{"text": "hi"}]}}
    out = gemini().parse_embed(EmbedRequest(model="gemini-embedding-001", inputs=["hi"]),
                               HTTPResponse(200, {}, b'{"embedding": {"values": [0.5, 0.25]}}'))
    assert out.vectors == [[0.5, 0.25]]
    with pytest.raises(ck.MalformedResponseError):
        gemini().parse_embed(EmbedRequest(model="m", inputs=["a", "b"]), HTTPResponse(200, {}, b'{"embeddings": []}'))


def test_errors_are_typed_and_keep_their_facts() -> None:
    ad = gemini()
    body = {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}
    err = ad.map_error(HTTPResponse(503, {"x-request-id": "r1"}, json.dumps(body).encode()), "gemini-2.5-flash")
    assert type(err) is ck.OverloadedError
    assert (err.status, err.body, err.request_id) == (503, body, "r1")
    long = {"error": {"code": 400, "message": "The input token count (1200000) exceeds the maximum number of tokens "
                                              "allowed (1048576).", "status": "INVALID_ARGUMENT"}}
    assert type(ad.map_error(HTTPResponse(400, {}, json.dumps(long).encode()), "m")) is ck.ContextWindowExceededError
    denied = {"error": {"code": 403, "message": "Method doesn't allow unregistered callers",
                        "status": "PERMISSION_DENIED"}}
    assert type(ad.map_error(HTTPResponse(403, {}, json.dumps(denied).encode()), "m")) is ck.PermissionDeniedError


def test_an_error_object_mid_stream_is_typed_and_a_bad_event_is_malformed() -> None:
    ad = gemini()
    dec = ad.stream_decoder(CompleteRequest(model="gemini-2.5-flash", messages=[], stream=True))
    first = {"candidates": [{"content": {"parts": [{"text": "Hel"}], "role": "model"}}]}
    assert dec.feed(SSEEvent(json.dumps(first)))[0].text == "Hel"
    with pytest.raises(ck.RateLimitError):
        dec.feed(SSEEvent(json.dumps({"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED"}})))
    with pytest.raises(ck.MalformedResponseError):
        ad.stream_decoder(CompleteRequest(model="m", messages=[], stream=True)).feed(SSEEvent("{not json"))
    with pytest.raises(ck.MalformedResponseError):
        ad.parse_complete(CompleteRequest(model="m", messages=[]), HTTPResponse(200, {}, b"[1, 2]"))


def test_a_blocked_prompt_is_content_filtered() -> None:
    body = {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
            "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9}, "modelVersion": "gemini-2.5-flash"}
    ad = gemini()
    with pytest.raises(ck.ContentFilteredError) as info:
        ad.parse_complete(CompleteRequest(model="m", messages=[]), HTTPResponse(200, {}, json.dumps(body).encode()))
    cost = ad.error_cost(info.value)
    assert cost is not None
    assert cost.total is None  # prompt tokens were counted: maybe billed, never shown as 0


def test_finetune_is_refused_from_the_capability_flags() -> None:
    for cls in (GeminiAdapter, VertexAdapter):
        assert not cls.capabilities.finetune
    client = ck.Client(config=None, providers={"gemini": {"api_key": KEY}})
    with pytest.raises(ck.UnsupportedCapabilityError, match="tuning"):
        client.finetune("gemini:gemini-2.5-flash", training_file=[{"messages": [
            {"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}])
    client.close()


# ------------------------------------------------------------------------------------------------ vertex


def vertex(api_key: str | None = None, project: str | None = "my-project") -> VertexAdapter:
    return VertexAdapter(ProviderSettings(name="vertex", base_url=VertexAdapter.default_base_url,
                                          api_key=SecretStr(api_key) if api_key else None, timeout=30,
                                          options=VertexSettings(project=project)))


def test_vertex_url_from_project_and_location(adc: FakeCredentials, monkeypatch: pytest.MonkeyPatch) -> None:
    req = CompleteRequest(model="gemini-2.5-flash", messages=[{"role": "user", "content": "x"}], stream=True)
    http = vertex().build_complete(req)
    assert http.url == ("https://aiplatform.googleapis.com/v1/projects/my-project/locations/global/publishers/google/"
                        "models/gemini-2.5-flash:streamGenerateContent?alt=sse")
    assert http.headers["authorization"] == f"Bearer {TOKEN}"
    monkeypatch.setenv("GOOGLE_CLOUD_LOCATION", "europe-west4")
    http = vertex(project=None).build_complete(req)  # the project comes from the credentials, the location the env
    assert http.url.startswith("https://europe-west4-aiplatform.googleapis.com/v1/projects/my-project/locations/"
                               "europe-west4/")
    assert adc.refreshes == 1  # a valid token is reused, not fetched per request
    configured = VertexAdapter(ProviderSettings(name="vertex", base_url=VertexAdapter.default_base_url, api_key=None,
                                                timeout=30, options=VertexSettings(project="p2", location="us-east5")))
    assert configured.build_complete(req).url.startswith(
        "https://us-east5-aiplatform.googleapis.com/v1/projects/p2/locations/us-east5/")  # config wins over the env
    assert "serviceTier" not in vertex().complete_body(CompleteRequest(model="m", messages=[], service_tier="flex"))


def test_vertex_access_token_is_dropped_from_a_request_off_its_origin(adc: FakeCredentials) -> None:
    """An access token of Application Default Credentials is no configured key, yet a request that leaves the
    provider's origin loses it like one (it was kept)."""
    ad = vertex()
    http = ad.build_complete(CompleteRequest(model="gemini-2.5-flash", messages=[{"role": "user", "content": "x"}]))
    assert ad.on_origin(http.url)
    assert http.headers["authorization"] == f"Bearer {TOKEN}"
    assert not ad.on_origin("https://elsewhere.example/v1")
    assert {k: v for k, v in ad.without_key(http.headers).items() if TOKEN in v or k == "authorization"} == {}


def test_vertex_express_mode_uses_the_key_and_no_project() -> None:
    http = vertex(api_key="AQ.express-key-0123456789", project=None).build_complete(
        CompleteRequest(model="gemini-2.5-flash", messages=[{"role": "user", "content": "x"}], service_tier="priority"))
    assert http.url == ("https://aiplatform.googleapis.com/v1/publishers/google/models/gemini-2.5-flash:"
                        "generateContent")
    assert http.headers["x-goog-api-key"] == "AQ.express-key-0123456789"
    assert http.headers[TIER_HEADER] == "priority"
    assert "authorization" not in http.headers


def test_vertex_without_google_auth_or_credentials_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "google.auth", None)  # as if the [vertex] extra were not installed
    with pytest.raises(ConfigError, match=r"computekit\[vertex\]"):
        vertex().build_complete(CompleteRequest(model="m", messages=[{"role": "user", "content": "x"}]))
    monkeypatch.undo()
    import google.auth
    import google.auth.exceptions

    def no_credentials(scopes: Any = None) -> Any:
        raise google.auth.exceptions.DefaultCredentialsError("no ADC")

    monkeypatch.setattr(google.auth, "default", no_credentials)
    with pytest.raises(ConfigError, match="application-default login"):
        vertex().build_complete(CompleteRequest(model="m", messages=[{"role": "user", "content": "x"}]))


def test_vertex_tier_from_traffic_type_and_bad_tier_refused(adc: FakeCredentials) -> None:
    ad = vertex()
    with pytest.raises(InvalidRequestError, match="flex, priority"):
        ad.build_complete(CompleteRequest(model="m", messages=[{"role": "user", "content": "x"}], service_tier="max"))
    body = {"candidates": [{"content": {"parts": [{"text": "ok"}]}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 1, "trafficType": "ON_DEMAND_PRIORITY"},
            "modelVersion": "gemini-2.5-pro"}
    r = ad.parse_complete(CompleteRequest(model="gemini-2.5-pro", messages=[]),
                          HTTPResponse(200, {}, json.dumps(body).encode()))
    assert r.service_tier == "priority"
    assert ad.price_ref(r.model, r).context == (("service_tier", "priority"),)


def test_vertex_embeddings_are_priced_from_their_token_counts(adc: FakeCredentials) -> None:
    ad = vertex()
    req = EmbedRequest(model="text-embedding-005", inputs=["a b", "c"], dimensions=2)
    http = ad.build_embed(req)
    assert http.url.endswith("/publishers/google/models/text-embedding-005:predict")
    assert http.json == {"instances": [{"content": "a b"}, {"content": "c"}],
                         "parameters": {"outputDimensionality": 2}}
    answer = {"predictions": [{"embeddings": {"values": [0.1, 0.2], "statistics": {"token_count": 2}}},
                              {"embeddings": {"values": [0.3, 0.4], "statistics": {"token_count": 1}}}]}
    out = ad.parse_embed(req, HTTPResponse(200, {}, json.dumps(answer).encode()))
    assert out.vectors == [[0.1, 0.2], [0.3, 0.4]]
    assert out.usage.input_tokens == 3
    assert out._usage_reported


async def test_a_budget_refuses_a_gemini_call_before_sending(mode: str, tmp_path: Any) -> None:
    client = make_client(mode, providers={"gemini": {"api_key": KEY}}, ledger=f"sqlite:///{tmp_path / 'l.db'}",
                         budget={"limit_usd": "0.00001"})
    with pytest.raises(ck.BudgetExceededError) as info:
        await call(client, "complete", "gemini:gemini-2.5-flash", "hi", max_tokens=100)
    # The worst case is priced from genai-prices' google table: 100 output tokens alone cost more than the limit.
    assert info.value.requested is not None
    assert info.value.requested > Decimal("0.00001")
    assert client.ledger.rows() == []  # nothing was sent (the network is blocked: a request would fail)
    await close(client)


@pytest.mark.vcr
@pytest.mark.default_cassette("vertex_embed.yaml")
async def test_vertex_embeddings_through_the_client(mode: str, adc: FakeCredentials) -> None:
    client = make_client(mode, providers={"vertex": {"project": "my-project"}})
    r = await call(client, "embed", "vertex:gemini-embedding-001", ["hello world", "computekit prices every call"],
                   dimensions=3)
    await close(client)
    assert r.vectors == [[0.0123, -0.0456, 0.0789], [-0.0321, 0.0654, -0.0987]]
    assert r.usage.input_tokens == 2 + 6  # statistics.token_count of each input
    want = genai_prices.calc_price(genai_prices.Usage(input_tokens=8), "gemini-embedding-001", provider_id="google",
                                   genai_request_timestamp=r.attempts[-1].started_at).total_price
    assert r.cost.total == want


@pytest.mark.parametrize("usage", [{"promptTokenCount": -3}, {"promptTokenCount": "12"},
                                   {"candidatesTokenCount": True}, {"thoughtsTokenCount": 1.5},
                                   {"promptTokensDetails": [{"modality": "AUDIO", "tokenCount": "x"}]}])
@pytest.mark.parametrize("streamed", [False, True], ids=["complete", "stream"])
def test_a_usage_count_that_is_not_a_count_is_malformed(usage: dict[str, Any], streamed: bool) -> None:
    body = {"candidates": [{"content": {"parts": [{"text": "ok"}]}, "finishReason": "STOP"}], "usageMetadata": usage}
    ad = gemini()
    req = CompleteRequest(model="gemini-2.5-flash", messages=[], stream=streamed)
    def parse() -> Any:
        if streamed:
            return ad.stream_decoder(req).feed(SSEEvent(json.dumps(body)))
        return ad.parse_complete(req, HTTPResponse(200, {}, json.dumps(body).encode()))

    with pytest.raises(ck.MalformedResponseError, match="usageMetadata"):
        parse()


# ------------------------------------------------------------------------------------------------ the cassettes


def _paths(node: Any, prefix: str = "") -> set[str]:
    """Every key path in a JSON value (list items share their list's path)."""
    out: set[str] = set()
    if isinstance(node, dict):
        for k, v in node.items():
            out.add(f"{prefix}.{k}")
            out |= _paths(v, f"{prefix}.{k}")
    elif isinstance(node, list):
        for v in node:
            out |= _paths(v, prefix + "[]")
    return out


def _bodies(content: bytes, sse: bool) -> list[Any]:
    text = content.decode()
    if not sse:
        return [json.loads(text)]
    return [json.loads(line[5:]) for line in text.replace("\r\n", "\n").split("\n") if line.startswith("data:")]


def test_authored_cassettes_are_marked_hold_no_secrets_and_use_only_real_fields() -> None:
    """Each authored cassette says so on its first line and holds no key; every field of its generateContent and
    embedContent answers occurs in Google's real answers (``shared/conformance/google``), so no field is made up.
    Vertex's ``:predict`` embeddings have no recording: their fields are the ones Vertex's reference documents."""
    real: set[str] = set()
    if conformance_dir().is_dir():
        for rel in files("google"):
            for ex in load(rel):
                method = ex.path.rsplit(":", 1)[-1]
                if method in ("generateContent", "streamGenerateContent") and ex.status == 200:
                    for body in _bodies(ex.content, ex.is_sse):
                        real |= _paths(body)
    # Embeddings (ai.google.dev/api/embeddings) and errors (google.rpc.Status) have no recording.
    documented = {".embeddings", ".embeddings[].values", ".embedding", ".embedding.values",
                  ".error", ".error.code", ".error.message", ".error.status", ".error.details",
                  ".error.details[].@type", ".error.details[].retryDelay", ".error.details[].violations",
                  ".error.details[].violations[].quotaMetric", ".error.details[].violations[].quotaId"}
    paths = sorted((CASSETTES / "test_gemini").glob("*.yaml"))
    assert len(paths) == 6
    for path in paths:
        text = path.read_text("utf-8")
        assert MARKER.match(text.splitlines()[0]), path.name
        assert text.startswith("# AUTHORED:"), path.name
        for pattern in SECRET_PATTERNS:
            assert pattern.search(text) is None, path.name
        for inter in yaml.safe_load(text)["interactions"]:
            assert not {k.lower() for k in inter["request"]["headers"]} & {"x-goog-api-key", "authorization"}
            if inter["request"]["uri"].endswith(":predict") or not real:
                continue
            resp = inter["response"]
            sse = "event-stream" in resp["headers"]["content-type"][0]
            for body in _bodies(resp["body"]["string"].encode(), sse):
                made_up = _paths(body) - real - documented
                assert not made_up, f"{path.name}: fields no real Google answer has: {sorted(made_up)}"


def test_generated_images_are_priced_at_the_image_output_rate() -> None:
    """An image model's answer: the IMAGE tokens at genai-prices' image output rate, the text at the text rate
    (the equality with genai-prices' own reading of the usage proves the split)."""
    body = {"candidates": [{"content": {"role": "model", "parts": [
        {"text": "Here is your fox."}, {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}]},
        "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 1295, "totalTokenCount": 1304,
                          "candidatesTokensDetails": [{"modality": "TEXT", "tokenCount": 5},
                                                      {"modality": "IMAGE", "tokenCount": 1290}]},
        "modelVersion": "gemini-2.5-flash-image", "responseId": "image-1"}
    ad = gemini()
    r = ad.parse_complete(CompleteRequest(model="gemini-2.5-flash-image", messages=[]),
                          HTTPResponse(200, {}, json.dumps(body).encode()))
    assert r.text == "Here is your fox."  # the image stays in r.raw
    assert (r.usage.output_tokens, r.usage.output_image_tokens) == (1295, 1290)
    when = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    cost = PriceBook().token_cost(ad.price_ref(r.model, r), r.usage, when)
    want = genai_prices.extract_usage(body, provider_id="google").calc_price(genai_request_timestamp=when)
    assert cost.total == want.total_price
    lines = {line.item: line for line in cost.lines}
    assert (lines["output"].quantity, lines["output image"].quantity) == (5, 1290)
    assert lines["output image"].unit_price > lines["output"].unit_price
