"""The ``ai21`` provider through the public client, sync and async, replayed from cassettes/test_ai21/.

The cassettes were authored from AI21's OpenAPI description (``shared/specs/ai21-openapi.json``); every request
and response body in them is validated against that description below, so a hand-written cassette cannot drift
from what AI21 documents. With ``AI21_API_KEY`` set, ``pytest --record-mode=rewrite tests/adapters/test_ai21.py``
replaces them with real traffic.

genai-prices has no AI21 prices: costs are checked against computekit's own token table
(``computekit/pricing/data/tokens.toml``), read here independently of the pricing code.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tomllib
from decimal import Decimal
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

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
from pydantic import SecretStr

import computekit as ck
from computekit.adapters._base import CompleteRequest, ProviderSettings, SSEEvent
from computekit.adapters.ai21 import AI21Adapter

KEY = real_key("AI21_API_KEY", "ai21-test-placeholder")
ROOT = Path(__file__).resolve().parents[2]


def client_for(mode: str, **kwargs: Any) -> ck.Client | ck.AsyncClient:
    return make_client(mode, providers={"ai21": {"api_key": KEY}}, **kwargs)


# ------------------------------------------------------------------------------------------------ prices


def table_entry(model: str) -> dict[str, Any]:
    """The tokens.toml entry for an AI21 model, read straight from the file (not through PriceBook)."""
    text = resources.files("computekit.pricing").joinpath("data/tokens.toml").read_text("utf-8")
    for m in tomllib.loads(text)["models"]:
        if m["provider"] == "ai21" and m["model"] == model:
            return dict(m)
    raise AssertionError(f"tokens.toml has no ai21 {model}")


def expected_cost(model: str, raw_usage: dict[str, Any]) -> Decimal:
    m = table_entry(model)
    mtok = Decimal(1_000_000)
    return (
        Decimal(raw_usage["prompt_tokens"]) * Decimal(m["input_mtok"]) / mtok
        + Decimal(raw_usage["completion_tokens"]) * Decimal(m["output_mtok"]) / mtok
    )


def check_success(result: ck.Completion, model: str) -> None:
    assert result.provider == "ai21"
    raw_usage = result.raw["usage"]
    assert (result.usage.input_tokens, result.usage.output_tokens) == (
        raw_usage["prompt_tokens"],
        raw_usage["completion_tokens"],
    )
    assert result.usage.input_tokens + result.usage.output_tokens == raw_usage["total_tokens"]
    assert result.cost.total is not None, result.cost.reason
    assert result.cost.total == expected_cost(model, raw_usage)
    assert result.cost.total > 0
    src = result.cost.price_source
    assert src is not None
    assert src.table == "computekit:tokens"
    entry = table_entry(model)
    assert src.url == entry["source"]
    assert src.as_of == dt.date.fromisoformat(str(entry["as_of"]))
    assert result.attempts[-1].outcome == "success"
    assert result.attempts[-1].cost == result.cost
    assert result.request_id is not None
    assert result.request_id == result.raw["id"], "AI21's body id is the request id"


# ------------------------------------------------------------------------------------------------ complete


@pytest.mark.vcr
@pytest.mark.default_cassette("chat.yaml")
async def test_chat(mode: str) -> None:
    client = client_for(mode)
    r = await call(client, "complete", "ai21:jamba-mini", "Say this is a test", max_tokens=20)
    await close(client)
    assert r.text == "This is a test."
    assert r.model == "jamba-mini"
    assert r.finish_reason == "stop"
    assert r.message.role == "assistant"
    assert r.message.content == r.text
    assert (r.usage.input_tokens, r.usage.output_tokens) == (14, 6)
    check_success(r, "jamba-mini")
    rows = client.ledger.rows()
    assert [(row.provider, row.outcome, row.cost) for row in rows] == [("ai21", "success", r.cost.total)]


@pytest.mark.vcr
@pytest.mark.default_cassette("tools.yaml")
async def test_tool_call_round_trip(mode: str) -> None:
    client = client_for(mode)
    messages: list[Any] = [{"role": "user", "content": "What's the weather in Paris?"}]
    first = await call(client, "complete", "ai21:jamba-large", messages=messages, tools=[WEATHER])
    assert first.finish_reason == "tool_calls"
    assert first.text == ""
    (tc,) = first.tool_calls
    assert (tc.name, tc.parsed_arguments()) == ("get_weather", {"city": "Paris"})
    check_success(first, "jamba-large")

    messages += [first.message, {"role": "tool", "tool_call_id": tc.id, "content": "18C and sunny"}]
    second = await call(client, "complete", "ai21:jamba-large", messages=messages, tools=[WEATHER])
    await close(client)
    assert second.finish_reason == "stop"
    assert "18°C" in second.text
    assert second.tool_calls == []
    check_success(second, "jamba-large")


@pytest.mark.vcr
@pytest.mark.default_cassette("stream.yaml")
async def test_stream_usage_in_last_chunk(mode: str) -> None:
    """AI21 puts usage in the last streamed message without stream_options (which its API does not have)."""
    client = client_for(mode)
    chunks, r = await stream(client, "ai21:jamba-mini", "Count to three.")
    await close(client)
    assert "".join(c.text for c in chunks) == "One, two, three." == r.text
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["stop"]
    usage_chunks = [c for c in chunks if c.usage is not None]
    assert usage_chunks == [chunks[-1]]
    assert (r.usage.input_tokens, r.usage.output_tokens) == (15, 8)
    check_success(r, "jamba-mini")
    assert [a.outcome for a in r.attempts] == ["success"]


@pytest.mark.vcr
@pytest.mark.default_cassette("stream_without_usage.yaml")
async def test_stream_without_usage_is_unpriced(mode: str) -> None:
    """A stream whose last message has no usage is not priced as 0: its cost is None, with the reason."""
    client = client_for(mode)
    chunks, r = await stream(client, "ai21:jamba-mini", "Count to three.")
    await close(client)
    assert r.text == "One, two, three."
    assert all(c.usage is None for c in chunks)
    assert r.cost.total is None
    assert r.cost.reason is not None
    assert "no usage" in r.cost.reason
    (row,) = client.ledger.rows()
    assert row.cost is None


# ------------------------------------------------------------------------------------------------ errors


@pytest.mark.vcr
@pytest.mark.default_cassette("rate_limit_then_ok.yaml")
async def test_rate_limit_then_success(mode: str) -> None:
    sleeps = Sleeps()
    client = client_for(mode, retry_policy=policy(sleeps))
    r = await call(client, "complete", "ai21:jamba-mini", "Say this is a test")
    await close(client)
    assert r.text == "This is a test."
    assert sleeps.waits == [1.0], "the retry waited what retry-after asked, and did not really sleep"
    failed, ok = r.attempts
    assert (failed.outcome, failed.status, failed.error_type) == ("error", 429, "RateLimitError")
    assert failed.error is not None
    assert "Too many requests" in failed.error
    assert failed.cost is not None
    assert failed.cost.total == 0
    assert ok.outcome == "success"
    check_success(r, "jamba-mini")
    assert [row.outcome for row in client.ledger.rows()] == ["error", "success"]


@pytest.mark.vcr
@pytest.mark.default_cassette("auth_error.yaml")
async def test_invalid_key(mode: str) -> None:
    sleeps = Sleeps()
    bad_key = "ai21-test-invalid-key-0123456789"
    client = make_client(mode, providers={"ai21": {"api_key": bad_key}}, retry_policy=policy(sleeps))
    with pytest.raises(ck.AuthenticationError) as info:
        await call(client, "complete", "ai21:jamba-mini", "Say this is a test")
    await close(client)
    err = info.value
    assert (err.status, err.provider, err.model) == (401, "ai21", "jamba-mini")
    assert err.body == {"detail": "Forbidden: Bad or missing API token."}
    assert "Bad or missing API token" in str(err)
    assert err.headers["date"] == "Thu, 26 Nov 2026 07:40:00 GMT"
    assert sleeps.waits == [], "401 is not retried"
    assert bad_key not in str(err) + repr(err) + json.dumps(err.body) + json.dumps(err.headers)
    (row,) = client.ledger.rows()
    assert (row.outcome, row.status, row.error_type) == ("error", 401, "AuthenticationError")


@pytest.mark.vcr
@pytest.mark.default_cassette("validation_error.yaml")
async def test_validation_error_is_bad_request(mode: str) -> None:
    sleeps = Sleeps()
    client = client_for(mode, retry_policy=policy(sleeps))
    with pytest.raises(ck.BadRequestError) as info:
        await call(client, "complete", "ai21:jamba-mini", "Say this is a test", temperature=5)
    await close(client)
    err = info.value
    assert err.status == 422
    assert "body.temperature: Input should be less than or equal to 2" in str(err)
    assert err.body["detail"][0]["loc"] == ["body", "temperature"]
    assert sleeps.waits == [], "a 422 is not retried"


@pytest.mark.parametrize("field", ["seed", "user", "service_tier", "tool_choice"])
async def test_parameters_ai21_does_not_have_are_refused_before_sending(mode: str, field: str) -> None:
    """AI21's ChatRequest has none of these (``tool_choice`` included: the model decides alone)."""
    client = client_for(mode)
    value: Any = 7 if field == "seed" else ("auto" if field == "tool_choice" else "x")
    with pytest.raises(ck.InvalidRequestError, match=field):
        await call(client, "complete", "ai21:jamba-mini", "hi", **{field: value})
    await close(client)


async def test_no_embeddings(mode: str) -> None:
    client = client_for(mode)
    with pytest.raises(ck.UnsupportedCapabilityError):
        await call(client, "embed", "ai21:jamba-mini", ["a"])
    await close(client)


def test_key_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AI21_API_KEY", raising=False)
    client = make_client("sync")
    with pytest.raises(ck.MissingAPIKeyError, match="AI21_API_KEY"):
        client.complete("ai21:jamba-mini", "hi")
    client.close()


def test_stream_decoder_without_done_marker_keeps_usage() -> None:
    """The decoder reads usage from the last message whatever comes after it."""
    adapter = AI21Adapter(
        ProviderSettings(name="ai21", base_url=AI21Adapter.default_base_url or "", api_key=SecretStr("k" * 10),
                         timeout=30)
    )
    dec = adapter.stream_decoder(CompleteRequest(model="jamba-mini", messages=[], stream=True))
    dec.feed(SSEEvent(data=json.dumps({"id": "chat-1", "choices": [{"index": 0, "delta": {"content": "Hi"}}]})))
    dec.feed(SSEEvent(data=json.dumps({
        "id": "chat-1",
        "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "length"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    })))
    r = dec.result()
    assert (r.text, r.finish_reason, r.usage.input_tokens, r.usage.output_tokens) == ("Hi", "length", 3, 1)
    assert r._usage_reported
    assert r.request_id == "chat-1"


# ------------------------------------------------------------------------------------------------ the spec


def spec_path() -> Path:
    env = os.environ.get("COMPUTEKIT_SPECS_DIR")
    base = Path(env) if env else ROOT.parent / "shared" / "specs"
    return base / "ai21-openapi.json"


@cache
def _spec() -> dict[str, Any]:
    doc = json.loads(spec_path().read_text("utf-8"))
    return {"components": {"schemas": doc["components"]["schemas"]}}


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    if not spec_path().is_file():
        msg = f"AI21 OpenAPI description not found at {spec_path()}: set COMPUTEKIT_SPECS_DIR"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return _spec()


@cache
def _validator(name: str) -> Any:
    from jsonschema import Draft202012Validator

    return Draft202012Validator({"$ref": f"#/components/schemas/{name}", **_spec()})


def schema_errors(name: str, instance: Any) -> list[str]:
    assert name in _spec()["components"]["schemas"], f"{name} is not in the spec"
    return [
        f"{'/'.join(str(p) for p in e.absolute_path)}: {e.message[:300]}"
        for e in _validator(name).iter_errors(instance)
    ]


def _cassettes() -> list[Path]:
    return sorted((CASSETTES / "test_ai21").glob("*.yaml"))


def _interactions() -> list[Any]:
    out = []
    for path in _cassettes():
        doc = yaml.safe_load(path.read_text("utf-8"))
        for i, _ in enumerate(doc["interactions"]):
            out.append(pytest.param(path, i, id=f"{path.name}#{i}"))
    return out


# Statuses whose body the spec does not describe (it documents 200 and 422 only): checked for FastAPI's shape.
UNDOCUMENTED_ERRORS = {401, 429}


@pytest.mark.parametrize(("path", "index"), _interactions())
def test_cassette_matches_ai21_spec(spec: dict[str, Any], path: Path, index: int) -> None:
    text = path.read_text("utf-8")
    assert text.startswith("# AUTHORED: written from ") or text.startswith("# RECORDED: "), path.name
    inter = yaml.safe_load(text)["interactions"][index]
    req, resp = inter["request"], inter["response"]
    assert req["uri"] == "https://api.ai21.com/studio/v1/chat/completions"
    assert not schema_errors("ChatRequest", json.loads(req["body"]))
    headers = {k.lower(): v[0] for k, v in resp["headers"].items()}
    assert not {"authorization", "api-key", "x-api-key"} & {k.lower() for k in req["headers"]}
    status = resp["status"]["code"]
    body = resp["body"]["string"]
    if headers["content-type"].startswith("text/event-stream"):
        events = [blk[len("data: "):] for blk in body.split("\n\n") if blk.startswith("data: ")]
        assert events[-1] == "[DONE]"
        problems = [
            f"chunk {i}: {e}"
            for i, ev in enumerate(events[:-1])
            for e in schema_errors("ChatCompletionVllmStreamingMessage", json.loads(ev))
        ]
        assert not problems, "\n".join(problems)
        return
    data = json.loads(body)
    if status == 200:
        assert not schema_errors("ChatCompletion", data)
    elif status == 422:
        assert not schema_errors("HTTPValidationError", data)
    else:
        assert status in UNDOCUMENTED_ERRORS
        assert isinstance(data.get("detail"), str)


def test_spec_validation_is_not_vacuous(spec: dict[str, Any]) -> None:
    assert schema_errors("ChatCompletion", {"id": "x", "choices": []})  # usage missing
    assert schema_errors(
        "ChatCompletion",
        {"id": "x", "choices": [], "usage": {"prompt_tokens": "1", "completion_tokens": 1, "total_tokens": 2}},
    )
    assert schema_errors("ChatCompletionVllmStreamingMessage", {"choices": []})
    assert schema_errors("ChatRequest", {"model": "jamba-mini"})
    assert schema_errors("ChatRequest", {"model": "jamba-mini", "messages": [], "stream_options": 1}) == [], (
        "the spec does not forbid extra fields: stream_options is left out by the adapter, not by the schema"
    )
    assert schema_errors("HTTPValidationError", {"detail": [{"loc": ["body"]}]})


def test_tool_call_turn_without_text_is_sent_without_content(spec: dict[str, Any]) -> None:
    """An assistant tool-call turn with ``content: None`` (OpenAI's shape) is sent without ``content``: AI21's
    AssistantMessage takes a string or nothing, and the body validates against its ChatRequest schema."""
    from pydantic import SecretStr

    from computekit.adapters._base import CompleteRequest, ProviderSettings
    from computekit.adapters.ai21 import AI21Adapter

    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}
    messages = [{"role": "user", "content": "Weather?"}, {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "call_1", "content": "18C"}]
    a = AI21Adapter(ProviderSettings(name="ai21", base_url="https://api.ai21.com/studio/v1",
                                     api_key=SecretStr("k" * 20), timeout=5))
    body = a.build_complete(CompleteRequest(model="jamba-large", messages=messages, tools=[WEATHER])).json
    assert body["messages"][1] == {"role": "assistant", "tool_calls": [call]}
    assert messages[1]["content"] is None, "the caller's message is not modified"
    assert schema_errors("ChatRequest", body) == []
    assert schema_errors("ChatRequest", {**body, "messages": [*messages[:1], {**messages[1]}]}), "null is refused"
