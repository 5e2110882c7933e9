"""Structured output: ``response_format=`` a type, on every chat provider, sync and async.

Each provider is answered by a mock server (nothing leaves the process) with the body its API reference documents;
each test checks the native mechanism the request used (strict ``json_schema``, ``output_config.format``, a forced
tool, ``responseSchema``, JSON mode with the schema in a system message), that ``.parsed`` is the validated instance,
and that an answer which does not validate raises :class:`computekit.StructuredOutputError` with the raw text, the
validation errors and the cost (the same as a valid answer's with the same usage: it was billed), with the attempt
in the ledger.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import itertools
import json
import sys
from collections.abc import Callable
from decimal import Decimal
from typing import Annotated, Any, Literal

import genai_prices
import httpx
import pytest
from _support import Server, chat_chunks, chat_json, make_client, ok, sse, stream_response
from pydantic import BaseModel, Field, ValidationError, create_model

import computekit as ck
from computekit._structured import (
    FORCED_TOOL_NAME,
    MAX_SCHEMA_NODES,
    inline_refs,
    output_type,
    recursive_def,
    strict_schema,
    subset_schema,
)
from computekit.adapters.anthropic import TOOL_PROMPT_MAX_TOKENS

KEY = "sk-test-0123456789abcdef"


class Address(BaseModel):
    city: str
    zip_code: str | None = None


class Person(BaseModel):
    name: str
    age: int = Field(ge=0, le=150)
    addresses: list[Address] = []


GOOD = {"name": "Ada", "age": 36, "addresses": [{"city": "London", "zip_code": None}]}
BAD = {"name": "Ada", "age": "very old"}


# ------------------------------------------------------------------------------------------------ provider bodies


def openai_body(answer: Any, model: str = "gpt-4o-mini-2024-07-18") -> dict[str, Any]:
    return chat_json(json.dumps(answer), model=model)


def anthropic_body(answer: Any, *, tool: bool = False) -> dict[str, Any]:
    block = ({"type": "tool_use", "id": "toolu_01", "name": FORCED_TOOL_NAME, "input": answer} if tool
             else {"type": "text", "text": json.dumps(answer)})
    return {"id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
            "content": [block], "stop_reason": "tool_use" if tool else "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": 40, "output_tokens": 12}}


def gemini_body(answer: Any) -> dict[str, Any]:
    return {"candidates": [{"content": {"role": "model", "parts": [{"text": json.dumps(answer)}]},
                            "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 40, "candidatesTokenCount": 12, "totalTokenCount": 52},
            "modelVersion": "gemini-2.5-flash", "responseId": "resp-1"}


def cohere_body(answer: Any) -> dict[str, Any]:
    return {"id": "c-1", "finish_reason": "COMPLETE",
            "message": {"role": "assistant", "content": [{"type": "text", "text": json.dumps(answer)}]},
            "usage": {"billed_units": {"input_tokens": 40, "output_tokens": 12},
                      "tokens": {"input_tokens": 40, "output_tokens": 12}}}


def bedrock_body(answer: Any) -> dict[str, Any]:
    return {"output": {"message": {"role": "assistant", "content": [
                {"toolUse": {"toolUseId": "tooluse_1", "name": FORCED_TOOL_NAME, "input": answer}}]}},
            "stopReason": "tool_use", "usage": {"inputTokens": 40, "outputTokens": 12, "totalTokens": 52},
            "metrics": {"latencyMs": 300}}


@dataclasses.dataclass(frozen=True)
class Case:
    """One provider: how to configure it, the model, the documented answer body, and what the request must hold."""

    provider: str
    model: str
    body: Callable[[Any], dict[str, Any]]
    check: Callable[[dict[str, Any]], None]
    settings: dict[str, Any] = dataclasses.field(default_factory=lambda: {"api_key": KEY})


def strict_request(body: dict[str, Any]) -> None:
    fmt = body["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["strict"] is True
    assert fmt["json_schema"]["name"] == "Person"
    schema = fmt["json_schema"]["schema"]
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["name", "age", "addresses"]
    assert "default" not in json.dumps(schema)


def schema_request(body: dict[str, Any]) -> None:
    fmt = body["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["strict"] is False
    assert fmt["json_schema"]["schema"] == Person.model_json_schema()


def json_mode_request(body: dict[str, Any]) -> None:
    assert body["response_format"] == {"type": "json_object"}
    system = body["messages"][0]
    assert system["role"] == "system"
    assert json.dumps(Person.model_json_schema(), separators=(",", ":")) in system[
        "content"]


def anthropic_native(body: dict[str, Any]) -> None:
    fmt = body["output_config"]["format"]
    assert fmt["type"] == "json_schema"
    assert fmt["schema"]["additionalProperties"] is False
    assert "minimum" not in json.dumps(fmt["schema"])  # Anthropic refuses numeric bounds; validation keeps them
    assert "tools" not in body


def anthropic_tool(body: dict[str, Any]) -> None:
    assert body["tool_choice"] == {"type": "tool", "name": FORCED_TOOL_NAME}
    assert body["tools"][0]["name"] == FORCED_TOOL_NAME
    assert "input_schema" in body["tools"][0]
    assert "output_config" not in body


def gemini_request(body: dict[str, Any]) -> None:
    config = body["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    schema = config["responseSchema"]
    assert "$ref" not in json.dumps(schema)
    assert "$defs" not in schema
    assert schema["propertyOrdering"] == ["name", "age", "addresses"]
    assert schema["properties"]["addresses"]["items"]["properties"]["zip_code"] == {
        "type": "string", "title": "Zip Code", "nullable": True}


def cohere_request(body: dict[str, Any]) -> None:
    assert body["response_format"] == {"type": "json_object", "json_schema": Person.model_json_schema()}


def bedrock_request(body: dict[str, Any]) -> None:
    config = body["toolConfig"]
    assert config["toolChoice"] == {"tool": {"name": FORCED_TOOL_NAME}}
    assert config["tools"][0]["toolSpec"]["inputSchema"]["json"] == Person.model_json_schema()


CASES = {
    "openai": Case("openai", "gpt-4o-mini", openai_body, strict_request),
    "azure": Case("azure", "my-deployment", openai_body, strict_request,
                  {"api_key": KEY, "base_url": "https://res.openai.azure.com", "api_version": "2024-10-21"}),
    "mistral": Case("mistral", "mistral-small-latest", lambda a: openai_body(a, "mistral-small-latest"),
                    strict_request),
    "groq": Case("groq", "llama-3.3-70b-versatile", lambda a: openai_body(a, "llama-3.3-70b-versatile"),
                 schema_request),
    "together": Case("together", "meta-llama/Llama-3.3-70B-Instruct-Turbo",
                     lambda a: openai_body(a, "meta-llama/Llama-3.3-70B-Instruct-Turbo"), schema_request),
    "deepseek": Case("deepseek", "deepseek-chat", lambda a: openai_body(a, "deepseek-chat"), json_mode_request),
    "ai21": Case("ai21", "jamba-mini", lambda a: openai_body(a, "jamba-mini"), json_mode_request),
    "anthropic-native": Case("anthropic", "claude-sonnet-4-5-20250929", anthropic_body, anthropic_native),
    "anthropic-tool": Case("anthropic", "claude-3-5-haiku-20241022", lambda a: anthropic_body(a, tool=True),
                           anthropic_tool),
    "gemini": Case("gemini", "gemini-2.5-flash", gemini_body, gemini_request),
    "vertex": Case("vertex", "gemini-2.5-flash", gemini_body, gemini_request),  # express mode: an API key
    "cohere": Case("cohere", "command-r-plus-08-2024", cohere_body, cohere_request),
    "bedrock": Case("bedrock", "anthropic.claude-3-5-haiku-20241022-v1:0", bedrock_body, bedrock_request,
                    {"api_key": KEY, "region": "us-east-1"}),
}


_LEDGERS = itertools.count()


def run(case: Case, answer: Any, is_async: bool, **kwargs: Any) -> tuple[Any, Server, Any]:
    """``complete(case.model, response_format=Person)`` answered with ``answer``: (result or error, server, client)."""
    server = Server([ok(case.body(answer))])
    # A ledger of its own: a test that runs twice must not read the other client's rows (flushed or not yet).
    client = make_client(server, is_async=is_async, providers={case.provider: case.settings},
                         ledger=f"sqlite:///ledger-{next(_LEDGERS)}.db")
    kwargs.setdefault("response_format", Person)
    try:
        call = client.complete(f"{case.provider}:{case.model}", "Who is Ada?", **kwargs)
        result = asyncio.run(call) if is_async else call
    except ck.StructuredOutputError as e:
        return e, server, client
    return result, server, client


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("name", list(CASES))
def test_answer_is_parsed_into_the_type(name: str, is_async: bool) -> None:
    case = CASES[name]
    result, server, client = run(case, GOOD, is_async)
    assert isinstance(result, ck.Completion), result
    case.check(server.seen[0].body)
    assert result.parsed == Person.model_validate(GOOD)
    assert isinstance(result.parsed, Person)
    assert result.tool_calls == []  # a forced tool's call is the answer, not a call for the application
    assert result.cost.total is not None
    assert result.cost.total > 0
    assert [r.outcome for r in client.ledger.rows()] == ["success"]


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("name", list(CASES))
def test_an_answer_that_does_not_validate_is_a_billed_typed_error(name: str, is_async: bool) -> None:
    case = CASES[name]
    good, _, _ = run(case, GOOD, is_async)
    err, server, client = run(case, BAD, is_async)
    assert isinstance(err, ck.StructuredOutputError), err
    assert isinstance(err, ck.ProviderError)
    assert server.hits == 1  # not retried: the same request tends to get the same answer
    assert json.loads(err.text) == BAD
    assert {e["loc"][0] for e in err.errors} == {"age"}
    assert err.cost is not None
    assert err.cost.total == good.cost.total
    assert err.completion.parsed is None
    assert err.completion.usage.output_tokens == good.usage.output_tokens
    rows = client.ledger.rows()
    assert [r.outcome for r in rows] == ["error"]
    assert rows[0].error_type == "StructuredOutputError"
    assert rows[0].cost == err.cost.total
    assert rows[0].output_tokens == good.usage.output_tokens


def test_openai_cost_is_the_price_tables() -> None:
    result, _, _ = run(CASES["openai"], GOOD, False)
    usage = genai_prices.Usage(input_tokens=12, output_tokens=5)
    expected = genai_prices.calc_price(usage, model_ref="gpt-4o-mini", provider_id="openai").total_price
    assert result.cost.total == expected


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_a_refusal_raises_with_the_refusal(is_async: bool) -> None:
    body = chat_json("")
    body["choices"][0]["message"].update(content=None, refusal="I can't help with that.")
    server = Server([ok(body)])
    client = make_client(server, is_async=is_async)
    def complete() -> Any:
        call = client.complete("openai:gpt-4o-mini", "x", response_format=Person)
        return asyncio.run(call) if is_async else call

    with pytest.raises(ck.StructuredOutputError) as info:
        complete()
    assert info.value.refusal == "I can't help with that."
    assert info.value.errors == []
    assert info.value.cost is not None
    assert info.value.cost.total is not None


def test_anthropic_refusal_stop_reason() -> None:
    body = anthropic_body(GOOD)
    body.update(stop_reason="refusal", content=[{"type": "text", "text": "No."}])
    client = make_client(Server([ok(body)]), providers={"anthropic": {"api_key": KEY}})
    with pytest.raises(ck.StructuredOutputError, match="refused"):
        client.complete("anthropic:claude-sonnet-4-5", "x", response_format=Person)


def test_fallback_from_an_invalid_answer_when_configured() -> None:
    def reply(request: httpx.Request) -> httpx.Response:
        return ok(openai_body(BAD) if "openai.com" in str(request.url) else anthropic_body(GOOD))

    providers = {"openai": {"api_key": KEY}, "anthropic": {"api_key": KEY}}
    targets = ["openai:gpt-4o-mini", "anthropic:claude-sonnet-4-5"]
    raising = make_client(Server([reply]), providers=providers)
    with pytest.raises(ck.StructuredOutputError):
        raising.complete(targets, "x", response_format=Person)
    falling = make_client(Server([reply]), providers=providers, routing={"on_invalid_output": "fallback"})
    result = falling.complete(targets, "x", response_format=Person)
    assert result.provider == "anthropic"
    assert result.parsed == Person.model_validate(GOOD)
    assert [a.outcome for a in result.attempts] == ["error", "success"]
    assert result.attempts[0].cost is not None
    assert result.attempts[0].cost.total is not None


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_stream_yields_text_then_parsed(is_async: bool) -> None:
    text = json.dumps(GOOD)
    pieces = [text[i:i + 9] for i in range(0, len(text), 9)]
    usage = {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
    server = Server([stream_response(sse(*chat_chunks(pieces, usage=usage)))])
    client = make_client(server, is_async=is_async)
    stream = client.stream("openai:gpt-4o-mini", "x", response_format=Person)

    async def drain() -> list[str]:
        return [c.text async for c in stream]

    seen = asyncio.run(drain()) if is_async else [c.text for c in stream]
    assert "".join(seen) == text
    assert stream.result.parsed == Person.model_validate(GOOD)
    strict_request(server.seen[0].body)


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_stream_with_an_invalid_answer_raises_at_its_end_and_is_recorded(is_async: bool) -> None:
    usage = {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
    server = Server([stream_response(sse(*chat_chunks([json.dumps(BAD)], usage=usage)))])
    client = make_client(server, is_async=is_async)
    stream = client.stream("openai:gpt-4o-mini", "x", response_format=Person)

    async def drain() -> None:
        async for _ in stream:
            pass

    with pytest.raises(ck.StructuredOutputError) as info:
        asyncio.run(drain()) if is_async else list(stream)
    assert info.value.cost is not None
    assert info.value.cost.total is not None
    rows = client.ledger.rows()
    assert [r.outcome for r in rows] == ["error"]
    assert rows[0].cost == info.value.cost.total


def test_dict_forms_still_pass_as_they_are() -> None:
    server = Server([ok(chat_json('{"a": 1}'))])
    client = make_client(server)
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
    result = client.complete("openai:gpt-4o-mini", "x", response_format=fmt)
    assert server.seen[0].body["response_format"] == fmt
    assert result.parsed is None


def test_any_type_pydantic_accepts() -> None:
    server = Server([ok(chat_json("[1, 2, 3]"))])
    client = make_client(server)
    result = client.complete("openai:gpt-4o-mini", "x", response_format=list[int])
    assert result.parsed == [1, 2, 3]
    assert server.seen[0].body["response_format"]["json_schema"]["name"] == "list"


def test_a_type_pydantic_cannot_describe_is_refused_before_sending() -> None:
    server = Server([ok(chat_json("{}"))])
    client = make_client(server)
    with pytest.raises(ck.InvalidRequestError, match="response_format"):
        client.complete("openai:gpt-4o-mini", "x", response_format=object())  # type: ignore[arg-type]
    assert server.hits == 0


def test_anthropic_forced_tool_with_user_tools_is_refused() -> None:
    server = Server([ok(anthropic_body(GOOD))])
    client = make_client(server, providers={"anthropic": {"api_key": KEY}})
    with pytest.raises(ck.InvalidRequestError, match="forced tool"):
        client.complete("anthropic:claude-3-5-haiku-20241022", "x", response_format=Person,
                        tools=[{"name": "f", "parameters": {"type": "object"}}])
    assert server.hits == 0


# ------------------------------------------------------------------------------------------------ schema dialects


def test_strict_schema_closes_objects_requires_all_and_drops_unsupported_keywords() -> None:
    schema = strict_schema(Person.model_json_schema())
    address = schema["$defs"]["Address"]
    assert address == {"properties": {"city": {"title": "City", "type": "string"},
                                      "zip_code": {"anyOf": [{"type": "string"}, {"type": "null"}],
                                                   "title": "Zip Code"}},
                       "required": ["city", "zip_code"], "title": "Address", "type": "object",
                       "additionalProperties": False}
    assert schema["properties"]["age"] == {"maximum": 150, "minimum": 0, "title": "Age", "type": "integer"}


def test_subset_schema_inlines_and_refuses_recursion() -> None:
    class Node(BaseModel):
        children: list[Node] = []

    out = output_type(Node)
    assert out is not None
    with pytest.raises(ck.InvalidRequestError, match="recursive"):
        subset_schema(out.schema)
    assert "$defs" not in inline_refs(Person.model_json_schema())
    assert subset_schema({"const": "a"}) == {"enum": ["a"], "type": "string"}


def test_fenced_json_is_accepted() -> None:
    out = output_type(Person)
    assert out is not None
    assert out.validate("```json\n" + json.dumps(GOOD) + "\n```") == Person.model_validate(GOOD)


def test_parsed_is_typed_for_mypy(tmp_path: Any) -> None:
    """``Completion[Person]``: mypy infers the type of ``.parsed`` from ``response_format``."""
    from mypy import api

    src = tmp_path / "typed.py"
    src.write_text(
        "import computekit as ck\nfrom pydantic import BaseModel\n\nclass P(BaseModel):\n    name: str\n\n"
        "c = ck.Client()\nreveal_type(c.complete('openai:x', 'y', response_format=P).parsed)\n"
        "reveal_type(c.complete('openai:x', 'y').parsed)\n"
        "reveal_type(c.stream('openai:x', 'y', response_format=list[int]).result.parsed)\n"
        "reveal_type(ck.complete('openai:x', 'y', response_format=P))\n"
        "async def f() -> None:\n"
        "    reveal_type((await ck.AsyncClient().complete('openai:x', response_format=P)).parsed)\n"
    )
    # mypy, run in this process, raises the recursion limit and the garbage collector's thresholds for itself and
    # leaves them so: they are put back, or the tests after this one run on another interpreter (one where input
    # nested thousands deep parses without a RecursionError, and cycles are collected at other times).
    limit, thresholds = sys.getrecursionlimit(), gc.get_threshold()
    try:
        out, _, _ = api.run(["--strict", "--no-incremental", "--follow-imports=silent", str(src)])
    finally:
        sys.setrecursionlimit(limit)
        gc.set_threshold(*thresholds)
    revealed = [line.split("Revealed type is ")[1] for line in out.splitlines() if "Revealed type" in line]
    assert revealed == ['"typed.P | None"', '"Any | None"', '"list[int] | None"',
                        '"computekit._types.Completion[typed.P]"', '"typed.P | None"'], out


def test_cost_is_decimal() -> None:
    result, _, _ = run(CASES["openai"], GOOD, False)
    assert isinstance(result.cost.total, Decimal)


# ------------------------------------------------------------------------------------------------ hostile types


class Scores(BaseModel):
    player: str
    scores: dict[str, int]


class Cat(BaseModel):
    kind: Literal["cat"]
    meows: int


class Dog(BaseModel):
    kind: Literal["dog"]
    barks: str


class Owner(BaseModel):
    pet: Annotated[Cat | Dog, Field(discriminator="kind")]


class Bounds(BaseModel):
    """Field names that are JSON-schema keywords: each is a name, not a keyword, wherever it appears."""

    minimum: int
    maximum: int
    default: str
    properties: str
    required: bool


def sent_schema(name: str, body: dict[str, Any]) -> dict[str, Any]:
    """The schema a request carried, wherever the provider takes it."""
    if "generationConfig" in body:
        schema: dict[str, Any] = body["generationConfig"]["responseSchema"]
    elif "output_config" in body:
        schema = body["output_config"]["format"]["schema"]
    elif "toolConfig" in body:
        schema = body["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"]
    elif "tools" in body:
        schema = body["tools"][0]["input_schema"]
    elif body["response_format"]["type"] == "json_object" and "json_schema" in body["response_format"]:
        schema = body["response_format"]["json_schema"]
    elif body["response_format"]["type"] == "json_object":
        system = body["messages"][0]["content"]
        schema = json.loads(system[system.index("{"):])
    else:
        schema = body["response_format"]["json_schema"]["schema"]
    return schema


def complete(client: Any, is_async: bool, *args: Any, **kwargs: Any) -> Any:
    """``client.complete(...)``, awaited when the client is async."""
    call = client.complete(*args, **kwargs)
    return asyncio.run(call) if is_async else call


CLOSED = ["openai", "azure", "mistral", "anthropic-native", "gemini", "vertex"]


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("name", CLOSED)
def test_a_dict_field_is_refused_before_sending_where_every_object_is_closed(name: str, is_async: bool) -> None:
    """Strict dialects close every object: a dict[str, int] field sent closed could only be answered {} (which
    validates), so it is refused before sending, naming the field."""
    case = CASES[name]
    server = Server([ok(case.body({"player": "Ada", "scores": {"a": 1}}))])
    client = make_client(server, is_async=is_async, providers={case.provider: case.settings})
    with pytest.raises(ck.InvalidRequestError, match=r"Scores\.scores is a dict with free keys"):
        complete(client, is_async, f"{case.provider}:{case.model}", "x", response_format=Scores)
    assert server.hits == 0


@pytest.mark.parametrize("name", ["anthropic-tool", "bedrock", "cohere", "groq"])
def test_a_dict_field_stays_open_where_the_schema_is_not_strict(name: str) -> None:
    case = CASES[name]
    answer = {"player": "Ada", "scores": {"a": 1, "b": 2}}
    result, server, _ = run(case, answer, False, response_format=Scores)
    assert isinstance(result, ck.Completion), result
    assert sent_schema(name, server.seen[0].body)["properties"]["scores"]["additionalProperties"] == {
        "type": "integer"}
    assert result.parsed == Scores.model_validate(answer)


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("name", list(CASES))
def test_a_type_that_is_not_an_object_is_asked_for_as_one(name: str, is_async: bool) -> None:
    """OpenAI's strict mode and a tool's input schema (Anthropic, Converse) take only an object at the root:
    list[int] is asked for as {"value": [...]} everywhere, and .parsed is the list."""
    case = CASES[name]
    result, server, client = run(case, {"value": [1, 2, 3]}, is_async, response_format=list[int])
    assert isinstance(result, ck.Completion), result
    schema = sent_schema(name, server.seen[0].body)
    assert schema["type"] == "object"
    assert schema["required"] == ["value"]
    assert schema["properties"]["value"]["type"] == "array"
    assert result.parsed == [1, 2, 3]
    assert [r.outcome for r in client.ledger.rows()] == ["success"]


def test_a_wrapped_type_also_takes_the_bare_value_and_refuses_what_fits_neither() -> None:
    out = output_type(Literal["yes", "no"])
    assert out is not None
    assert out.validate('{"value": "yes"}') == "yes"
    assert out.validate('"no"') == "no"  # a host without a schema mode may answer the bare value
    with pytest.raises(ValidationError):
        out.validate('{"value": "maybe"}')
    with pytest.raises(ValidationError):
        out.validate('{"value": "yes", "other": 1}')


@pytest.mark.parametrize("name", list(CASES))
def test_a_discriminated_union_is_sent_as_anyof_and_parsed(name: str) -> None:
    """pydantic writes a discriminated union as oneOf, which OpenAI's and Anthropic's strict modes refuse and
    Gemini's subset does not know: it goes as anyOf (the answer is still validated against the union)."""
    case = CASES[name]
    answer = {"pet": {"kind": "dog", "barks": "woof"}}
    result, server, _ = run(case, answer, False, response_format=Owner)
    assert isinstance(result, ck.Completion), result
    schema = sent_schema(name, server.seen[0].body)
    if name not in ("bedrock", "cohere", "groq", "together", "deepseek", "ai21"):  # pydantic's schema as it is
        assert "oneOf" not in json.dumps(schema)
    if name in ("gemini", "vertex"):
        branches = schema["properties"]["pet"]["anyOf"]
        assert [b["properties"]["kind"]["enum"] for b in branches] == [["cat"], ["dog"]]
    assert result.parsed == Owner.model_validate(answer)


@pytest.mark.parametrize("name", list(CASES))
def test_field_names_that_are_schema_keywords_are_sent_as_fields(name: str) -> None:
    case = CASES[name]
    answer = {"minimum": 1, "maximum": 2, "default": "d", "properties": "p", "required": True}
    result, server, _ = run(case, answer, False, response_format=Bounds)
    assert isinstance(result, ck.Completion), result
    schema = sent_schema(name, server.seen[0].body)
    assert list(schema["properties"]) == list(Bounds.model_fields)
    assert sorted(schema["required"]) == sorted(Bounds.model_fields)
    assert schema["properties"]["default"]["type"] == "string"
    assert result.parsed == Bounds.model_validate(answer)


class Tree(BaseModel):
    label: str
    children: list[Tree] = []


class Even(BaseModel):
    next: Odd | None = None


class Odd(BaseModel):
    next: Even | None = None


TREE = {"label": "root", "children": [{"label": "leaf", "children": []}]}


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_a_recursive_type_is_refused_before_sending_to_anthropic_structured_outputs(is_async: bool) -> None:
    """Anthropic's structured outputs refuse a schema that refers to itself (a 400): refused before sending."""
    case = CASES["anthropic-native"]
    server = Server([ok(case.body(TREE))])
    client = make_client(server, is_async=is_async, providers={case.provider: case.settings})
    with pytest.raises(ck.InvalidRequestError, match="Tree is recursive"):
        complete(client, is_async, f"{case.provider}:{case.model}", "x", response_format=Tree)
    assert server.hits == 0


@pytest.mark.parametrize("name", ["openai", "anthropic-tool", "bedrock"])
def test_a_recursive_type_goes_where_the_schema_may_refer_to_itself(name: str) -> None:
    result, server, _ = run(CASES[name], TREE, False, response_format=Tree)
    assert isinstance(result, ck.Completion), result
    schema = sent_schema(name, server.seen[0].body)
    assert schema["type"] == "object"  # pydantic's root {"$ref": ...} resolved: a tool input must be an object
    assert "$defs" in schema
    assert result.parsed == Tree.model_validate(TREE)


def test_recursive_def_finds_self_and_mutual_reference() -> None:
    assert recursive_def(Tree.model_json_schema()) == "Tree"
    assert recursive_def(Even.model_json_schema()) in {"Even", "Odd"}
    assert recursive_def(Person.model_json_schema()) is None


def _nested(depth: int) -> type[BaseModel]:
    """A model that holds the previous one twice, with a description on each: pydantic writes each level once,
    a dialect that inlines described $refs writes 2**depth copies."""
    level: type[BaseModel] = create_model("Level0", n=(int, ...))
    for i in range(1, depth + 1):
        level = create_model(f"Level{i}", left=(level, Field(description="left")),
                             right=(level, Field(description="right")))
    return level


@pytest.mark.parametrize("name", ["openai", "anthropic-native", "gemini"])
def test_a_schema_that_explodes_when_inlined_is_refused_before_sending(name: str) -> None:
    case = CASES[name]
    server = Server([ok(case.body({}))])
    client = make_client(server, providers={case.provider: case.settings})
    with pytest.raises(ck.InvalidRequestError, match=f"past {MAX_SCHEMA_NODES} nodes"):
        client.complete(f"{case.provider}:{case.model}", "x", response_format=_nested(16))
    assert server.hits == 0


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize(("name", "ref"), [("openai", ("gpt-4o-mini", "openai")),
                                           ("gemini", ("gemini-2.5-flash", "google"))])
def test_a_budget_reserves_the_schema_as_it_is_sent(name: str, ref: tuple[str, str], is_async: bool) -> None:
    """The schema goes as input in the provider's dialect, $refs inlined: a budget's worst case counts that
    (a token is at least a byte), not pydantic's much smaller form."""
    case = CASES[name]
    server = Server([ok(case.body({}))])
    client = make_client(server, is_async=is_async, providers={case.provider: case.settings},
                         budget={"limit_usd": "100"})
    with pytest.raises(ck.StructuredOutputError):  # the answer ({}) does not fit: it is the request that counts
        complete(client, is_async, f"{case.provider}:{case.model}", "x", response_format=_nested(7), max_tokens=1)
    sent = len(json.dumps(sent_schema(name, server.seen[0].body)).encode())
    assert sent > 20 * len(json.dumps(_nested(7).model_json_schema()))  # what made the old bound far too low
    floor = genai_prices.calc_price(genai_prices.Usage(input_tokens=sent, output_tokens=1), model_ref=ref[0],
                                    provider_id=ref[1]).total_price
    [row] = client.ledger.rows()
    assert row.reserved is not None
    assert row.reserved >= floor


def test_anthropic_forced_tool_reserves_the_tool_use_system_prompt() -> None:
    """A forced tool is a tool: Anthropic adds its tool-use system prompt, which a budget counts with the tool."""
    case = CASES["anthropic-tool"]
    padding = 1000

    def reserve(prompt: str, **options: Any) -> tuple[Decimal, dict[str, Any]]:
        server = Server([ok(case.body(GOOD))])
        client = make_client(server, providers={case.provider: case.settings}, budget={"limit_usd": "100"},
                             ledger=f"sqlite:///ledger-{next(_LEDGERS)}.db")
        client.complete(f"{case.provider}:{case.model}", prompt, max_tokens=10, **options)
        [row] = client.ledger.rows()
        assert row.reserved is not None
        return row.reserved, server.seen[0].body

    plain, _ = reserve("Who is Ada?")
    padded, _ = reserve("Who is Ada?" + "x" * padding)
    per_token = (padded - plain) / padding  # the rate a budget reserves input at, a byte counted as a token
    typed, body = reserve("Who is Ada?", response_format=Person)
    schema = len(json.dumps(body["tools"][0]["input_schema"]).encode())
    assert typed - plain >= (TOOL_PROMPT_MAX_TOKENS + schema) * per_token


# ------------------------------------------------------------------------------------------------ what happened


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_a_tool_call_instead_of_an_answer_says_so(is_async: bool) -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
    body = chat_json("", tool_calls=[call], finish_reason="tool_calls")
    body["choices"][0]["message"]["content"] = None
    server = Server([ok(body)])
    client = make_client(server, is_async=is_async)
    with pytest.raises(ck.StructuredOutputError, match="the model called lookup instead of answering") as info:
        complete(client, is_async, "openai:gpt-4o-mini", "x", response_format=Person)
    assert info.value.text == ""
    assert [t.name for t in info.value.completion.tool_calls] == ["lookup"]
    assert info.value.cost is not None
    [row] = client.ledger.rows()
    assert (row.outcome, row.cost) == ("error", info.value.cost.total)


def test_an_empty_answer_says_so() -> None:
    server = Server([ok(chat_json(""))])
    client = make_client(server)
    with pytest.raises(ck.StructuredOutputError, match=r"\(the answer is empty\)") as info:
        client.complete("openai:gpt-4o-mini", "x", response_format=Person)
    assert info.value.cost is not None
    assert [r.outcome for r in client.ledger.rows()] == ["error"]
