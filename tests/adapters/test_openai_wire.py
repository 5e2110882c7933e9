"""The OpenAI wire format's request shaping and stream decoding, shared by ``openai``, ``azure`` and every
``openai-compatible`` provider: which field carries the output limit, what an assistant message sends back,
and how an error inside a 200 stream is typed."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from _clients import call, close, mode  # noqa: F401  (shared fixtures, registered by name)

import computekit as ck

KEY = "sk-test-placeholder"


@pytest.mark.parametrize(
    ("model", "field"),
    [("gpt-5", "max_completion_tokens"), ("gpt-5.1-mini", "max_completion_tokens"), ("o1", "max_completion_tokens"),
     ("o3-mini-2025-01-31", "max_completion_tokens"), ("ft:o4-mini-2025-04-16:org::abc", "max_completion_tokens"),
     ("gpt-4o-mini", "max_tokens"), ("gpt-4.1", "max_tokens"), ("omni-moderation-latest", "max_tokens")],
)
def test_token_limit_field_by_model_family(model: str, field: str) -> None:
    from pydantic import SecretStr

    from computekit.adapters._base import CompleteRequest, ProviderSettings
    from computekit.adapters.azure import AzureOpenAIAdapter
    from computekit.adapters.openai import OpenAIAdapter

    req = CompleteRequest(model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=77, stream=True)
    for cls, url in ((OpenAIAdapter, "https://api.openai.com/v1"), (AzureOpenAIAdapter, "https://r.openai.azure.com")):
        body = cls(ProviderSettings(name=cls.name, base_url=url, api_key=SecretStr("k" * 20), timeout=5)) \
            .build_complete(req).json
        assert body[field] == 77
        other = ({"max_tokens", "max_completion_tokens"} - {field}).pop()
        assert other not in body


async def test_new_families_are_configured_and_budgets_reserve_the_same_limit(mode: str) -> None:
    """A family the adapter does not know yet is named in config; the budget reserves the very limit sent."""
    import httpx

    sent: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return httpx.Response(400, json={"error": {"message": "stop here", "type": "invalid_request_error"}})

    cls = ck.Client if mode == "sync" else ck.AsyncClient
    http = (httpx.Client if mode == "sync" else httpx.AsyncClient)(transport=httpx.MockTransport(handler))
    client = cls(config=None, http_client=http, prices={"openai:o9-preview": {"input_mtok": "1", "output_mtok": "4"}},
                 providers={"openai": {"api_key": KEY, "max_completion_tokens_models": ["o9"]}},
                 budget={"limit_usd": "0.001"})
    with pytest.raises(ck.BudgetExceededError) as info:
        await call(client, "complete", "openai:o9-preview", "hi", max_tokens=100_000)
    assert info.value.requested is not None
    assert info.value.requested >= Decimal("0.4")  # 100,000 output x $4/M
    with pytest.raises(ck.BadRequestError):
        await call(client, "complete", "openai:o9-preview", "hi", max_tokens=10)
    await close(client)
    assert sent[0]["max_completion_tokens"] == 10
    assert "max_tokens" not in sent[0]


# ------------------------------------------------------------------------------------------------ provider fields


def _compatible(name: str, base_url: str) -> Any:
    from pydantic import SecretStr

    from computekit.adapters._base import ProviderSettings
    from computekit.adapters.openai_compatible import OpenAICompatibleAdapter

    return OpenAICompatibleAdapter(ProviderSettings(name=name, base_url=base_url, api_key=SecretStr("k" * 20),
                                                    timeout=5))


OPENROUTER = "https://openrouter.ai/api/v1"


def _exchange(rel: str) -> Any:
    from _conformance import load, require_conformance_dir

    require_conformance_dir()
    (ex,) = load(rel)
    return ex


def _decode(adapter: Any, ex: Any, model: str) -> tuple[Any, list[Any]]:
    """Feed a recorded event stream to the adapter's decoder: its final completion and its chunks."""
    from computekit._sse import SSEDecoder
    from computekit.adapters._base import CompleteRequest

    decoder = adapter.stream_decoder(CompleteRequest(model=model, messages=[], stream=True))
    chunks = [c for event in SSEDecoder(1 << 22).feed(ex.content) for c in decoder.feed(event)]
    return decoder.result(), chunks


def test_recorded_reasoning_fields_are_kept_and_sent_back() -> None:
    """A real OpenRouter answer (Claude with thinking): ``reasoning`` and ``reasoning_details`` stay on the
    message, and the next request carries them unchanged."""
    from computekit._core import normalise_messages
    from computekit.adapters._base import CompleteRequest, HTTPResponse

    ex = _exchange("openrouter/openrouter_map_messages_reasoning.yaml")
    a = _compatible("openrouter", OPENROUTER)
    model = ex.request_body["model"]
    r = a.parse_complete(CompleteRequest(model=model, messages=[]), HTTPResponse(200, ex.headers, ex.content))
    recorded = ex.json()["choices"][0]["message"]
    assert r.message.provider_fields == {"openrouter": {"reasoning": recorded["reasoning"],
                                                        "reasoning_details": recorded["reasoning_details"]}}
    messages = normalise_messages("Go on.", [*ex.request_body["messages"], r.message])
    sent = a.build_complete(CompleteRequest(model=model, messages=messages)).json["messages"][1]
    assert sent == {"role": "assistant", "content": recorded["content"], "reasoning": recorded["reasoning"],
                    "reasoning_details": recorded["reasoning_details"]}


def test_recorded_streamed_reasoning_fields_are_joined() -> None:
    """The same fields from a real stream: text pieces joined, ``reasoning_details`` items merged by index (the
    signature arrives in its own piece)."""
    ex = _exchange("openrouter/openrouter_streaming_reasoning.yaml")
    r, _ = _decode(_compatible("openrouter", OPENROUTER), ex, ex.request_body["model"])
    deltas = [json.loads(d)["choices"][0]["delta"] for d in ex.sse_data()[:-1] if json.loads(d).get("choices")]
    reasoning = "".join(d.get("reasoning") or "" for d in deltas)
    pieces = [p for d in deltas for p in d.get("reasoning_details") or []]
    signature = "".join(p.get("signature") or "" for p in pieces)
    assert reasoning
    assert signature
    assert r.message.provider_fields == {"openrouter": {
        "reasoning": reasoning,
        "reasoning_details": [{"type": "reasoning.text", "text": reasoning, "signature": signature,
                               "format": "anthropic-claude-v1", "index": 0}],
    }}


def test_fields_given_by_hand_are_sent_on_every_openai_wire_provider() -> None:
    from pydantic import SecretStr

    from computekit._core import normalise_messages
    from computekit.adapters._base import CompleteRequest, ProviderSettings
    from computekit.adapters._registry import adapter_class

    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    messages = normalise_messages(None, [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None, "tool_calls": [call], "reasoning_content": ""},
    ])
    for name in ("openai", "azure", "mistral", "ai21", "deepseek", "groq", "together"):
        kept = normalise_messages(None, [ck.Message(role="assistant", content="ok",
                                                    provider_fields={name: {"reasoning_content": "why"}})])
        cls = adapter_class(name)
        a = cls(ProviderSettings(name=name, base_url="https://h.example/v1", api_key=SecretStr("k" * 20), timeout=5))
        sent = a.build_complete(CompleteRequest(model="m", messages=messages + kept)).json["messages"]
        assert sent[1]["reasoning_content"] == "", name
        assert sent[2] == {"role": "assistant", "content": "ok", "reasoning_content": "why"}, name


def test_fields_kept_for_one_provider_never_reach_another() -> None:
    """A conversation that moves on to another provider (a fallback, a route) does not carry the first one's
    fields there: Groq and Cerebras answer 400 to a reasoning_content they did not write."""
    from pydantic import SecretStr

    from computekit._core import normalise_messages
    from computekit.adapters._base import CompleteRequest, ProviderSettings
    from computekit.adapters._registry import adapter_class

    deepseek = ck.Message(role="assistant", content="ok", provider_fields={"deepseek": {"reasoning_content": ""}})
    thinking = [{"type": "thinking", "thinking": "t", "signature": "s"}, {"type": "text", "text": "ok"}]
    claude = ck.Message(role="assistant", content="ok", provider_fields={"anthropic": {"content": thinking}})
    messages = normalise_messages("next?", [{"role": "user", "content": "hi"}, deepseek, claude])
    for name in ("groq", "openai", "mistral"):
        a = adapter_class(name)(ProviderSettings(name=name, base_url="https://h.example/v1",
                                                 api_key=SecretStr("k" * 20), timeout=5))
        sent = a.build_complete(CompleteRequest(model="m", messages=messages)).json["messages"]
        assert sent[1:3] == [{"role": "assistant", "content": "ok"}] * 2, name
    a = adapter_class("anthropic")(ProviderSettings(name="anthropic", base_url="https://h.example/v1",
                                                    api_key=SecretStr("k" * 20), timeout=5))
    sent = a.build_complete(CompleteRequest(model="m", messages=messages)).json["messages"]
    assert sent[1] == {"role": "assistant", "content": "ok"}
    assert sent[2] == {"role": "assistant", "content": thinking}


# ------------------------------------------------------------------------------------------- errors in a 200 stream


STREAM_ERROR = "openrouter/openrouter_stream_error.yaml"


@pytest.mark.parametrize("name", ["openai", "azure", "mistral", "ai21", "openrouter"])
def test_recorded_error_inside_a_200_stream_is_typed_by_its_status(name: str) -> None:
    """A real stream that ends with ``{"error": {"code": 400, ...}}`` after a 200: a bad request on every
    OpenAI-wire adapter (it was a ServerError, which routing falls back on)."""
    from pydantic import SecretStr

    from computekit.adapters._base import ProviderSettings
    from computekit.adapters._registry import adapter_class

    ex = _exchange(STREAM_ERROR)
    cls = adapter_class("openai-compatible" if name == "openrouter" else name)
    a = cls(ProviderSettings(name=name, base_url=OPENROUTER, api_key=SecretStr("k" * 20), timeout=5))
    with pytest.raises(ck.BadRequestError) as info:
        _decode(a, ex, ex.request_body["model"])
    assert info.value.status == 400
    assert info.value.message == "Token limit reached"
    assert not isinstance(info.value, ck.ServerError)


@pytest.mark.parametrize(
    ("body", "status", "kind"),
    [
        ({"error": {"message": "m", "type": "invalid_request_error", "status_code": 400}}, 400, ck.BadRequestError),
        ({"error": {"message": "m", "type": "server_error", "code": None}}, 500, ck.ServerError),
        ({"error": {"message": "m", "type": "rate_limit_exceeded"}}, 429, ck.RateLimitError),
        ({"error": {"message": "m", "code": "401"}}, 401, ck.AuthenticationError),
        ({"error": {"message": "m", "code": "context_length_exceeded", "type": "invalid_request_error"}}, 400,
         ck.ContextWindowExceededError),
        ({"error": "boom"}, 500, ck.ServerError),
    ],
)
def test_error_events_are_typed_by_what_they_carry(body: dict[str, Any], status: int, kind: type) -> None:
    from computekit.adapters._base import CompleteRequest, SSEEvent

    decoder = _compatible("openai", "https://api.openai.com/v1").stream_decoder(
        CompleteRequest(model="m", messages=[], stream=True))
    with pytest.raises(kind) as info:
        decoder.feed(SSEEvent(data=json.dumps(body)))
    assert info.value.status == status


async def test_recorded_mid_stream_bad_request_is_neither_retried_nor_a_fallback(mode: str, tmp_path: Any) -> None:
    """Through the client (sync and async): the recorded stream fails with BadRequestError, once, and the
    second model of the list is never called (a fallback would send a request vcrpy has no answer for)."""
    import vcr
    import yaml
    from _clients import Sleeps, policy, stream
    from _conformance import to_vcr

    ex = _exchange(STREAM_ERROR)
    cassette = tmp_path / "cassette.yaml"
    doc = to_vcr([ex])
    doc["interactions"][0]["request"]["headers"] = {"content-type": ["application/json"]}
    cassette.write_text(yaml.safe_dump(doc, allow_unicode=True), "utf-8")
    sleeps = Sleeps()
    cls = ck.Client if mode == "sync" else ck.AsyncClient
    client = cls(config=None, retry_policy=policy(sleeps), providers={
        "openrouter": {"adapter": "openai-compatible", "base_url": OPENROUTER, "api_key": "or-placeholder-key"},
        "openai": {"api_key": KEY}})
    body = ex.request_body
    recorder = vcr.VCR(record_mode="none", match_on=["method", "scheme", "host", "port", "path", "query", "body"])
    with recorder.use_cassette(str(cassette)) as cass, pytest.raises(ck.BadRequestError) as info:
        await stream(client, [f"openrouter:{body['model']}", "openai:gpt-4o-mini"], messages=body["messages"],
                     extra_body={"max_completion_tokens": body["max_completion_tokens"]})
    assert cass.all_played
    assert info.value.status == 400
    assert sleeps.waits == []
    rows = client.ledger.rows()
    await close(client)
    assert [(r.provider, r.outcome, r.error_type) for r in rows] == [("openrouter", "error", "BadRequestError")]


@pytest.mark.parametrize(("embedding", "parses"), [
    ("AACAPgAAAL8AAIA/", True),  # the base64 of the little-endian float32s 0.25, -0.5, 1.0
    ("AACAPgAAAL8AAIA", False),  # not base64
    ("AACAPgAA", False),  # six bytes: not whole float32s
], ids=["base64", "not-base64", "not-whole-floats"])
def test_an_embedding_asked_in_base64_is_read_as_its_floats(embedding: str, parses: bool) -> None:
    """``encoding_format="base64"`` (what the openai SDK asks for by default) answers each vector as the base64
    of its little-endian float32s."""
    from computekit.adapters._base import EmbedRequest, HTTPResponse

    adapter = ck.Client(config=None, ledger="none")._core.adapter("openai")
    body = {"object": "list", "model": "text-embedding-3-small", "usage": {"prompt_tokens": 5, "total_tokens": 5},
            "data": [{"object": "embedding", "index": 0, "embedding": embedding}]}
    resp = HTTPResponse(200, {}, json.dumps(body).encode())
    req = EmbedRequest(model="text-embedding-3-small", inputs=["hi"])
    if parses:
        got = adapter.parse_embed(req, resp)
        assert (got.vectors, got.usage.input_tokens) == ([[0.25, -0.5, 1.0]], 5)
    else:
        with pytest.raises(ck.MalformedResponseError, match="not an embeddings list"):
            adapter.parse_embed(req, resp)
