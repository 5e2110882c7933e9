"""The Responses wire format through the public client, sync and async: which calls go there, what is sent (checked
against ``CreateResponse`` in ``../shared/specs/openai-openapi.yaml``), reasoning items carried across turns, built-in
tools and their fees, budgets' worst case, structured output, and errors.

The answers are authored from OpenAI's API reference (the ``Response`` object) and validated against the same spec
before they are served, by a mock transport: nothing leaves the process.
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
from _support import Server, make_client, ok, stream_response
from pydantic import BaseModel
from test_cassette_specs import (
    errors,
    spec,  # noqa: F401  (the session fixture, registered by name)
)

import computekit as ck
from computekit.pricing import PriceBook

TOOLS_TABLE = Path(__file__).resolve().parents[2] / "computekit" / "pricing" / "data" / "tools.toml"
USAGE = {"input_tokens": 120, "input_tokens_details": {"cached_tokens": 20, "cache_write_tokens": 0},
         "output_tokens": 80,
         "output_tokens_details": {"reasoning_tokens": 64}, "total_tokens": 200}
REASONING = {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAAAB-opaque"}


def response(*output: dict[str, Any], model: str = "o4-mini-2025-04-16", status: str = "completed",
             usage: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """A ``Response`` object as OpenAI's reference documents it."""
    return {"id": "resp_1", "object": "response", "created_at": 1_760_000_000, "status": status, "error": None,
            "incomplete_details": None, "instructions": None, "max_output_tokens": None, "model": model,
            "output": list(output), "parallel_tool_calls": True, "previous_response_id": None,
            "reasoning": {"effort": "medium", "summary": None}, "store": True, "temperature": 1.0,
            "text": {"format": {"type": "text"}}, "tool_choice": "auto", "tools": [], "top_p": 1.0,
            "truncation": "disabled", "usage": usage or USAGE, "metadata": {}, **extra}


def message(text: str) -> dict[str, Any]:
    return {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]}


def call(name: str = "get_weather", arguments: str = '{"city":"Paris"}') -> dict[str, Any]:
    return {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": name, "arguments": arguments,
            "status": "completed"}


# The spec's InputItem is a oneOf of EasyInputMessage and InputMessage, and a user message with a list of parts is
# both (the two overlap): jsonschema reports that as "valid under each of". Each such item is checked against
# EasyInputMessage instead, so the check still fails on a shape that is neither.
_AMBIGUOUS = "is valid under each of"


def spec_errors(spec: dict[str, Any], name: str, instance: Any) -> list[str]:
    if name != "CreateResponse":
        return errors(spec, name, instance)
    items = instance.get("input") or []
    rest = {**instance, "input": [i for i in items if "role" not in i]}
    found = [e for e in errors(spec, name, rest) if _AMBIGUOUS not in e]
    for item in items:
        if "role" in item:
            found += errors(spec, "EasyInputMessage", item)
    return found


def run(is_async: bool, fn: Any) -> Any:
    out = fn()
    return asyncio.run(out) if is_async else out


def complete(client: Any, is_async: bool, *args: Any, **kwargs: Any) -> Any:
    return run(is_async, lambda: client.complete(*args, **kwargs))


def body_of(server: Server, i: int = 0) -> dict[str, Any]:
    body: dict[str, Any] = server.seen[i].body
    return body


@pytest.fixture(params=[False, True], ids=["sync", "async"])
def is_async(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


# ------------------------------------------------------------------------------------------------ which calls go there


def test_api_per_call_and_the_answer(is_async: bool, spec: dict[str, Any]) -> None:
    answer = response(REASONING, message("Paris."))
    assert spec_errors(spec, "Response", answer) == []
    server = Server([ok(answer)])
    client = make_client(server, is_async=is_async)
    result = complete(client, is_async, "openai:o4-mini", messages=[
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Capital of France?"},
                                     {"type": "image_url", "url": "https://example.com/a.png"}]},
    ], max_tokens=500, api="responses")
    assert server.seen[0].url == "https://api.openai.com/v1/responses"
    sent = body_of(server)
    assert spec_errors(spec, "CreateResponse", sent) == []
    assert sent == {"model": "o4-mini", "max_output_tokens": 500, "input": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "input_text", "text": "Capital of France?"},
                                     {"type": "input_image", "image_url": "https://example.com/a.png",
                                      "detail": "auto"}]}]}
    assert result.text == "Paris."
    assert result.finish_reason == "stop"
    assert result.usage.input_tokens == 120
    assert result.usage.cached_input_tokens == 20
    assert result.usage.output_tokens == 80
    assert result.usage.reasoning_tokens == 64
    want = genai_prices.calc_price(genai_prices.Usage(input_tokens=120, cache_read_tokens=20, output_tokens=80),
                                   "o4-mini-2025-04-16", provider_id="openai").total_price
    assert result.cost.total == want
    assert [r.cost for r in client.ledger.rows()] == [want]


def test_default_is_chat_and_the_setting_switches(is_async: bool) -> None:
    server = Server([ok(response(message("hi"), model="gpt-4o"))])
    chat = make_client(Server([ok({"id": "c", "object": "chat.completion", "created": 1, "model": "gpt-4o",
                                   "choices": [{"index": 0, "finish_reason": "stop",
                                                "message": {"role": "assistant", "content": "hi"}}],
                                   "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})]),
                       is_async=is_async)
    assert complete(chat, is_async, "openai:gpt-4o", "x").text == "hi"
    configured = make_client(server, is_async=is_async, providers={"openai": {"api_key": "sk-test-0123456789ab",
                                                                              "api": "responses"}})
    assert complete(configured, is_async, "openai:gpt-4o", "x").text == "hi"
    assert server.seen[0].url.endswith("/v1/responses")
    # The call's own api= wins over the setting.
    with pytest.raises(ck.ProviderError):  # the chat answer the server does not give
        complete(configured, is_async, "openai:gpt-4o", "x", api="chat")
    assert server.seen[1].url.endswith("/v1/chat/completions")


@pytest.mark.parametrize("model", ["o3-pro", "gpt-5-pro", "gpt-5.1-codex-max", "o3-deep-research",
                                   "computer-use-preview", "codex-mini-latest"])
def test_models_served_only_there_go_there(model: str) -> None:
    server = Server([ok(response(message("ok"), model=model))])
    make_client(server).complete(f"openai:{model}", "x")
    assert server.seen[0].url.endswith("/v1/responses")


def test_hosts_without_it_refuse_before_sending() -> None:
    server = Server([ok(response(message("ok")))])
    client = make_client(server, providers={"groq": {"api_key": "gsk-test-0123456789"},
                                            "anthropic": {"api_key": "sk-ant-test-0123456789"}})
    for model in ("groq:llama-3.3-70b-versatile", "anthropic:claude-sonnet-4-5"):
        with pytest.raises(ck.UnsupportedCapabilityError, match="responses"):
            client.complete(model, "x", api="responses")
    with pytest.raises(ck.InvalidRequestError, match="api must be"):
        client.complete("openai:gpt-4o", "x", api="assistants")  # type: ignore[arg-type]
    assert server.hits == 0


def test_openrouter_profile_serves_it() -> None:
    server = Server([ok(response(message("ok"), model="openai/gpt-4o"))])
    client = make_client(server, providers={"openrouter": {"api_key": "sk-or-test-0123456789"}})
    client.complete("openrouter:openai/gpt-4o", "x", api="responses")
    assert server.seen[0].url == "https://openrouter.ai/api/v1/responses"


def test_parameters_the_api_does_not_have_are_refused() -> None:
    server = Server([ok(response(message("ok")))])
    client = make_client(server)
    for kwargs in ({"stop": "\n"}, {"seed": 1}):
        with pytest.raises(ck.InvalidRequestError, match="Responses API has no"):
            client.complete("openai:gpt-4o", "x", api="responses", **kwargs)
    assert server.hits == 0


# ------------------------------------------------------------------------------------------------ tools and turns


def test_tool_call_turn_and_reasoning_items_go_back(is_async: bool, spec: dict[str, Any]) -> None:
    first = response(REASONING, call())
    second = response(message("Sunny in Paris."))
    for answer in (first, second):
        assert spec_errors(spec, "Response", answer) == []
    server = Server([ok(first), ok(second)])
    client = make_client(server, is_async=is_async)
    tools = [{"name": "get_weather", "description": "Weather.",
              "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]
    opts = {"api": "responses", "extra_body": {"store": False}}
    turn = complete(client, is_async, "openai:o4-mini", "Weather in Paris?", tools=tools,
                    tool_choice={"type": "function", "function": {"name": "get_weather"}}, **opts)
    assert turn.finish_reason == "tool_calls"
    assert [(c.id, c.name, c.arguments) for c in turn.tool_calls] == [("call_1", "get_weather", '{"city":"Paris"}')]
    sent = body_of(server)
    assert sent["tools"] == [{"type": "function", **tools[0], "strict": False}]
    assert sent["tool_choice"] == {"type": "function", "name": "get_weather"}
    # Not stored: computekit asks for the reasoning back, encrypted, to send it on the next turn.
    assert sent["store"] is False
    assert sent["include"] == ["reasoning.encrypted_content"]
    assert spec_errors(spec, "CreateResponse", sent) == []

    history = [{"role": "user", "content": "Weather in Paris?"}, turn.message,
               {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}]
    final = complete(client, is_async, "openai:o4-mini", messages=history, tools=tools, **opts)
    assert final.text == "Sunny in Paris."
    sent = body_of(server, 1)
    assert spec_errors(spec, "CreateResponse", sent) == []
    assert sent["input"] == [
        {"role": "user", "content": "Weather in Paris?"},
        REASONING,  # exactly as it came, encrypted content included
        {k: v for k, v in call().items() if k != "status"},
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
    ]


def test_previous_response_id_and_conversation_pass_through() -> None:
    server = Server([ok(response(message("ok")))])
    client = make_client(server)
    client.complete("openai:gpt-4o", "and then?", api="responses",
                    extra_body={"previous_response_id": "resp_0", "conversation": "conv_1"})
    sent = body_of(server)
    assert sent["previous_response_id"] == "resp_0"
    assert sent["conversation"] == "conv_1"
    assert "include" not in sent  # stored: nothing to ask back


def test_built_in_tools_pass_through_items_kept_and_fees_priced(is_async: bool,
                                                                spec: dict[str, Any]) -> None:
    items = [
        {"type": "web_search_call", "id": "ws_1", "status": "completed",
         "action": {"type": "search", "query": "weather"}},
        {"type": "web_search_call", "id": "ws_2", "status": "completed",
         "action": {"type": "search", "query": "forecast"}},
        {"type": "code_interpreter_call", "id": "ci_1", "status": "completed", "code": "1+1",
         "container_id": "cntr_1", "outputs": [{"type": "logs", "logs": "2"}]},
        message("Done."),
    ]
    answer = response(*items, model="gpt-4.1-2025-04-14")
    assert spec_errors(spec, "Response", answer) == []
    server = Server([ok(answer)])
    client = make_client(server, is_async=is_async)
    tools = [{"type": "web_search"}, {"type": "code_interpreter", "container": {"type": "auto"}}]
    with pytest.warns(ck.UnknownPriceWarning, match="no containers price known"):
        result = complete(client, is_async, "openai:gpt-4.1", "x", tools=tools, api="responses")
    assert body_of(server)["tools"] == tools
    assert result.message.provider_fields == {"openai:responses": {"output": items, "id": "resp_1"}}
    assert result.usage.units == {"web_search_calls": Decimal(2), "containers": Decimal(1)}
    # Containers have had no single price since 2026-03-31 (billed by memory size and minutes, which an answer
    # does not report): a call made now that used one is unpriced, never priced without it.
    assert result.cost.total is None
    assert "containers" in str(result.cost.reason)
    # On a day the table's container price held, every fee is its own line.
    when = dt.datetime(2025, 10, 1, tzinfo=dt.UTC)
    fees = {f["unit"]: Decimal(f["price"]) / int(f["per"])
            for f in tomllib.loads(TOOLS_TABLE.read_text("utf-8"))["fees"] if f["provider"] == "openai"}
    tokens = genai_prices.calc_price(genai_prices.Usage(input_tokens=120, cache_read_tokens=20, output_tokens=80),
                                     "gpt-4.1-2025-04-14", provider_id="openai",
                                     genai_request_timestamp=when).total_price
    adapter = client._core.adapter("openai")
    then = PriceBook().token_cost(adapter.price_ref(result.model, result), result.usage, when)
    assert then.total == tokens + 2 * fees["web_search_calls"] + fees["containers"]
    lines = {line.item: line.amount for line in then.lines}
    assert lines["web_search_calls"] == 2 * fees["web_search_calls"]
    assert lines["containers"] == fees["containers"]


def test_web_search_preview_calls_are_counted_apart_and_left_unpriced(spec: dict[str, Any]) -> None:
    """The older ``web_search_preview`` tool costs $10 or $25 per 1k calls by model family (tools.toml): its calls
    are their own usage key, unpriced with a warning, and a budget refuses a call that could make them."""
    item = {"type": "web_search_call", "id": "ws_1", "status": "completed",
            "action": {"type": "search", "query": "weather"}}
    answer = response(item, message("Sunny."), model="gpt-4o-2024-08-06")
    assert spec_errors(spec, "Response", answer) == []
    client = make_client(Server([ok(answer)]))
    with pytest.warns(ck.UnknownPriceWarning, match="web_search_preview_calls"):
        result = client.complete("openai:gpt-4o", "x", tools=[{"type": "web_search_preview"}], api="responses")
    assert result.usage.units == {"web_search_preview_calls": Decimal(1)}
    assert result.cost.total is None
    budgeted = make_client(Server([ok(answer)]), budget={"limit_usd": "5"})
    with pytest.raises(ck.BudgetExceededError):
        budgeted.complete("openai:gpt-4o", "x", tools=[{"type": "web_search_preview"}], api="responses",
                          max_tokens=10, extra_body={"max_tool_calls": 1})


def test_image_generation_calls_are_counted_and_left_unpriced(is_async: bool, spec: dict[str, Any]) -> None:
    """Each image of the ``image_generation`` tool is billed at the image model's rates, outside the answer's usage
    (tools.toml): its calls are counted, the cost is unknown with a warning (not the text tokens alone, as if the
    image were free), a budget refuses a call that could make them, and a ``[prices]`` entry prices them."""
    item = {"type": "image_generation_call", "id": "ig_1", "status": "completed", "result": "aGVsbG8="}
    answer = response(item, message("Here it is."), model="gpt-4o-2024-08-06")
    assert spec_errors(spec, "Response", answer) == []
    tools = [{"type": "image_generation"}]
    client = make_client(Server([ok(answer)]), is_async=is_async)
    with pytest.warns(ck.UnknownPriceWarning, match="image_generation_calls"):
        result = complete(client, is_async, "openai:gpt-4o", "x", tools=tools, api="responses")
    assert result.usage.units == {"image_generation_calls": Decimal(1)}
    assert result.cost.total is None
    assert [r.cost for r in client.ledger.rows()] == [None]
    budgeted = make_client(Server([ok(answer)]), is_async=is_async, budget={"limit_usd": "5"})
    with pytest.raises(ck.BudgetExceededError):
        complete(budgeted, is_async, "openai:gpt-4o", "x", tools=tools, api="responses", max_tokens=10,
                 extra_body={"max_tool_calls": 1})
    per_image = Decimal("0.25")
    priced = make_client(Server([ok(answer)]), is_async=is_async,
                         prices={"openai:gpt-4o-2024-08-06": {"image_generation_calls": str(per_image)}})
    result = complete(priced, is_async, "openai:gpt-4o", "x", tools=tools, api="responses")
    tokens = PriceBook().token_cost(priced._core.adapter("openai").price_ref("gpt-4o-2024-08-06"),
                                    ck.Usage(input_tokens=120, cached_input_tokens=20, output_tokens=80,
                                             reasoning_tokens=64), result.attempts[0].started_at).total
    assert tokens is not None
    assert result.cost.total == tokens + per_image


# ------------------------------------------------------------------------------------------------ budgets


def test_budget_refuses_built_in_tools_without_a_bound_and_reserves_the_bounded_worst_case() -> None:
    server = Server([ok(response(message("ok"), model="gpt-4.1-2025-04-14"))])
    client = make_client(server, budget={"limit_usd": "5"})
    tools = [{"type": "web_search"}]
    with pytest.raises(ck.BudgetExceededError):
        client.complete("openai:gpt-4.1", "x", tools=tools, api="responses", max_tokens=100)
    assert server.hits == 0
    core = client._core
    from computekit._budget import worst_case

    target = core.targets("openai:gpt-4.1")[0]
    msgs = [{"role": "user", "content": "x"}]
    plain = worst_case(core, target, core.complete_request(target, msgs, {"api": "responses", "max_tokens": 100},
                                                           stream=False))
    bounded = worst_case(core, target, core.complete_request(
        target, msgs, {"api": "responses", "max_tokens": 100, "tools": tools, "extra": {"max_tool_calls": 3}},
        stream=False))
    assert plain is not None
    assert bounded is not None
    fee = Decimal("10.00") / 1000  # tools.toml: web search calls
    assert bounded >= plain + 3 * fee  # three calls' fees, and the input billed again after each
    result = client.complete("openai:gpt-4.1", "x", tools=tools, api="responses", max_tokens=100,
                             extra_body={"max_tool_calls": 3})
    assert result.text == "ok"


@pytest.mark.parametrize("stored", [{"previous_response_id": "resp_0"}, {"conversation": "conv_1"},
                                    {"prompt": {"id": "pmpt_1"}}], ids=["previous_response_id", "conversation",
                                                                        "prompt"])
def test_budget_bounds_the_stored_context_the_host_prepends(is_async: bool, stored: dict[str, Any]) -> None:
    """With a previous response, a conversation or a stored prompt, the host bills input the request does not
    carry (up to the model's context window): the worst case reserves the window, not the few bytes sent."""
    model = "gpt-4.1-2025-04-14"
    client = make_client(Server([]), is_async=is_async)
    core = client._core
    target = core.targets("openai:gpt-4.1")[0]
    from computekit._budget import worst_case
    from computekit._costs import context_window

    window = context_window(core.prices, target)
    assert window is not None
    msgs = [{"role": "user", "content": "And then?"}]
    chained = core.complete_request(target, msgs, {"api": "responses", "max_tokens": 10, "extra": stored},
                                    stream=False)
    bound = worst_case(core, target, chained)
    # What the host may bill: the whole window of input, and the output asked for.
    full = PriceBook().token_cost(target.adapter.price_ref(model), ck.Usage(input_tokens=window, output_tokens=10))
    assert full.total is not None
    assert bound is not None
    assert bound >= full.total
    # Through the client: a budget that covers the few bytes sent but not the window refuses before sending.
    server = Server([ok(response(message("ok"), model=model))])
    budgeted = make_client(server, is_async=is_async, budget={"limit_usd": str(full.total / 2)})
    with pytest.raises(ck.BudgetExceededError):
        complete(budgeted, is_async, "openai:gpt-4.1", "And then?", api="responses", max_tokens=10,
                 extra_body=stored)
    assert server.hits == 0
    assert complete(budgeted, is_async, "openai:gpt-4.1", "And then?", api="responses", max_tokens=10).text == "ok"


def test_budget_counts_instructions_sent_in_extra_body(is_async: bool) -> None:
    """``instructions`` (the Responses system prompt) goes in ``extra_body`` and is billed as input: the worst case
    counts its size like the messages', so a long one is not reserved as if it were free."""
    model = "gpt-4.1-2025-04-14"
    instructions = "Answer in the voice of a ship's log. " * 10_000
    client = make_client(Server([]), is_async=is_async)
    core = client._core
    target = core.targets("openai:gpt-4.1")[0]
    from computekit._budget import worst_case

    msgs = [{"role": "user", "content": "x"}]
    plain = worst_case(core, target, core.complete_request(target, msgs, {"api": "responses", "max_tokens": 10},
                                                           stream=False))
    long = worst_case(core, target, core.complete_request(
        target, msgs, {"api": "responses", "max_tokens": 10, "extra": {"instructions": instructions}}, stream=False))
    # A token is at least one byte: the instructions can bill at most their size in input tokens, and at least
    # a quarter of it (about four characters a token), which the worst case must cover.
    least = PriceBook().token_cost(target.adapter.price_ref(model), ck.Usage(input_tokens=len(instructions) // 4))
    assert plain is not None
    assert long is not None
    assert least.total is not None
    assert long - plain >= least.total
    server = Server([ok(response(message("ok"), model=model))])
    budgeted = make_client(server, is_async=is_async, budget={"limit_usd": str(plain + least.total / 2)})
    with pytest.raises(ck.BudgetExceededError):
        complete(budgeted, is_async, "openai:gpt-4.1", "x", api="responses", max_tokens=10,
                 extra_body={"instructions": instructions})
    assert server.hits == 0


# ------------------------------------------------------------------------------------------------ structured output


class City(BaseModel):
    name: str
    country: str


def test_structured_output_uses_text_format(is_async: bool, spec: dict[str, Any]) -> None:
    server = Server([ok(response(message('{"name": "Paris", "country": "France"}'), model="gpt-4o"))])
    client = make_client(server, is_async=is_async)
    result = complete(client, is_async, "openai:gpt-4o", "x", response_format=City, api="responses")
    assert result.parsed == City(name="Paris", country="France")
    sent = body_of(server)
    assert sent["text"] == {"format": {"type": "json_schema", "name": "City", "strict": True, "schema": {
        "properties": {"name": {"title": "Name", "type": "string"}, "country": {"title": "Country", "type": "string"}},
        "required": ["name", "country"], "title": "City", "type": "object", "additionalProperties": False}}}
    assert spec_errors(spec, "CreateResponse", sent) == []


def test_refusal_part_raises() -> None:
    refusal = {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
               "content": [{"type": "refusal", "refusal": "I can't."}]}
    client = make_client(Server([ok(response(refusal, model="gpt-4o"))]))
    with pytest.raises(ck.StructuredOutputError) as info:
        client.complete("openai:gpt-4o", "x", response_format=City, api="responses")
    assert info.value.refusal == "I can't."


def test_dict_json_schema_is_flattened_into_text_format() -> None:
    server = Server([ok(response(message("{}"), model="gpt-4o"))])
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}, "strict": False}}
    make_client(server).complete("openai:gpt-4o", "x", response_format=fmt, api="responses")
    assert body_of(server)["text"] == {"format": {"type": "json_schema", "name": "x", "schema": {"type": "object"},
                                                  "strict": False}}


# ------------------------------------------------------------------------------------------------ streams and errors


def sse(*events: dict[str, Any]) -> bytes:
    return b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)


def test_stream(is_async: bool, spec: dict[str, Any]) -> None:
    final = response(message("Hello there"), model="gpt-4o")
    events = [
        {"type": "response.created", "sequence_number": 0, "response": {**final, "status": "in_progress",
                                                                         "output": []}},
        {"type": "response.output_text.delta", "sequence_number": 1, "item_id": "msg_1", "output_index": 0,
         "content_index": 0, "delta": "Hello", "logprobs": []},
        {"type": "response.output_text.delta", "sequence_number": 2, "item_id": "msg_1", "output_index": 0,
         "content_index": 0, "delta": " there", "logprobs": []},
        {"type": "response.completed", "sequence_number": 3, "response": final},
    ]
    for event in events:
        assert spec_errors(spec, "ResponseStreamEvent", event) == []
    server = Server([stream_response(sse(*events))])
    client = make_client(server, is_async=is_async)
    stream = client.stream("openai:gpt-4o", "x", api="responses")

    async def drain() -> list[str]:
        return [c.text async for c in stream]

    texts = asyncio.run(drain()) if is_async else [c.text for c in stream]
    assert "".join(texts) == "Hello there"
    assert body_of(server)["stream"] is True
    assert stream.result.text == "Hello there"
    assert stream.result.cost.total is not None
    assert [r.outcome for r in client.ledger.rows()] == ["success"]


def test_error_inside_a_200_stream_is_typed_and_recorded() -> None:
    events = [{"type": "response.created", "sequence_number": 0,
               "response": {**response(model="gpt-4o"), "status": "in_progress"}},
              {"type": "error", "sequence_number": 1, "code": "rate_limit_exceeded", "message": "Slow down.",
               "param": None}]
    client = make_client(Server([stream_response(sse(*events))]), retry={"max_retries": 0})
    with pytest.raises(ck.RateLimitError, match="Slow down"):
        list(client.stream("openai:gpt-4o", "x", api="responses"))
    assert [r.outcome for r in client.ledger.rows()] == ["error"]


def test_failed_and_incomplete_responses() -> None:
    failed = response(model="gpt-4o", status="failed", error={"code": "server_error", "message": "Boom."})
    client = make_client(Server([ok(failed)]), retry={"max_retries": 0})
    with pytest.raises(ck.ServerError, match="Boom"):
        client.complete("openai:gpt-4o", "x", api="responses")
    cut = response(message("Hel"), model="gpt-4o", status="incomplete",
                   incomplete_details={"reason": "max_output_tokens"})
    result = make_client(Server([ok(cut)])).complete("openai:gpt-4o", "x", api="responses", max_tokens=3)
    assert result.finish_reason == "length"
    assert result.text == "Hel"


def test_incomplete_without_a_reason_is_not_the_string_none(is_async: bool, spec: dict[str, Any]) -> None:
    """``incomplete_details`` is nullable: an incomplete answer that gives no reason finishes ``incomplete``, priced
    as any other, never with the text ``"None"``."""
    cut = response(message("Hel"), model="gpt-4o", status="incomplete", incomplete_details=None)
    assert spec_errors(spec, "Response", cut) == []
    client = make_client(Server([ok(cut)]), is_async=is_async)
    result = complete(client, is_async, "openai:gpt-4o", "x", api="responses")
    assert result.finish_reason == "incomplete"
    assert result.cost.total is not None


def test_http_error_is_typed_like_chat() -> None:
    bad = httpx.Response(400, json={"error": {"message": "Invalid 'temperature'.", "type": "invalid_request_error",
                                              "param": "temperature", "code": "decimal_below_min_value"}})
    with pytest.raises(ck.BadRequestError, match="temperature"):
        make_client(Server([bad])).complete("openai:gpt-4o", "x", api="responses", temperature=-1)


def test_to_sdk_gives_the_sdk_response_object() -> None:
    pytest.importorskip("openai")
    from computekit.adapters.openai import to_sdk

    result = make_client(Server([ok(response(message("Paris."), model="gpt-4o"))])).complete(
        "openai:gpt-4o", "x", api="responses")
    sdk = to_sdk(result)
    assert type(sdk).__name__ == "Response"
    assert sdk.output_text == "Paris."


# ------------------------------------------------------------------------------------------------ failed, billed


def table_cost(client: Any, row: Any) -> Any:
    """What the price tables say the row's tokens cost (a ``failed`` answer is billed what it used)."""
    usage = ck.Usage(input_tokens=row.input_tokens, output_tokens=row.output_tokens,
                     cached_input_tokens=row.cached_input_tokens, reasoning_tokens=row.reasoning_tokens)
    return PriceBook().token_cost(client._core.adapter("openai").price_ref("gpt-4o-2024-08-06"), usage, row.ts).total


def test_a_failed_answer_is_billed_its_usage_and_unknown_without_it(is_async: bool, spec: dict[str, Any]) -> None:
    """A 200 answer whose status is ``failed`` ran on the model: its row is priced from the usage it reports (not
    the 0 of an error response), and a failed answer that reports no usage costs unknown (``None``), never 0."""
    failed = response(message("Partial"), model="gpt-4o-2024-08-06", status="failed",
                      error={"code": "server_error", "message": "The model failed."})
    silent = {k: v for k, v in failed.items() if k != "usage"}
    for answer in (failed, silent):
        assert spec_errors(spec, "Response", answer) == []
    client = make_client(Server([ok(failed), ok(silent)]), is_async=is_async, retry={"max_retries": 0})
    for _ in range(2):
        with pytest.raises(ck.ServerError, match="The model failed"):
            complete(client, is_async, "openai:gpt-4o", "x", api="responses")
    billed, unknown = client.ledger.rows()
    assert (billed.outcome, billed.error_type, billed.input_tokens, billed.output_tokens,
            billed.cached_input_tokens, billed.reasoning_tokens) == ("error", "ServerError", 120, 80, 20, 64)
    assert billed.cost is not None
    assert billed.cost > 0
    assert billed.cost == table_cost(client, billed)
    assert (unknown.outcome, unknown.input_tokens, unknown.cost) == ("error", 0, None)


def test_a_failed_event_after_text_is_billed_the_usage_it_carries(is_async: bool, spec: dict[str, Any]) -> None:
    """``response.failed`` in a 200 stream carries the response and its usage: the failed attempt's row is priced
    from it, once."""
    failed = response(message("Hel"), model="gpt-4o-2024-08-06", status="failed",
                      error={"code": "server_error", "message": "The model failed."})
    events = [{"type": "response.created", "sequence_number": 0,
               "response": {**{k: v for k, v in failed.items() if k != "usage"}, "status": "in_progress",
                            "output": [], "error": None}},
              {"type": "response.output_text.delta", "sequence_number": 1, "item_id": "msg_1", "output_index": 0,
               "content_index": 0, "delta": "Hel", "logprobs": []},
              {"type": "response.failed", "sequence_number": 2, "response": failed}]
    for event in events:
        assert spec_errors(spec, "ResponseStreamEvent", event) == []
    client = make_client(Server([stream_response(sse(*events))]), is_async=is_async, retry={"max_retries": 0})
    stream = client.stream("openai:gpt-4o", "x", api="responses")
    seen: list[str] = []

    async def drain() -> None:
        async for chunk in stream:
            seen.append(chunk.text)

    with pytest.raises(ck.ServerError, match="The model failed"):
        asyncio.run(drain()) if is_async else seen.extend(c.text for c in stream)
    assert "".join(seen) == "Hel"
    (row,) = client.ledger.rows()
    assert (row.outcome, row.error_type, row.input_tokens, row.output_tokens, row.reasoning_tokens) == (
        "error", "ServerError", 120, 80, 64)
    assert row.cost is not None
    assert row.cost > 0
    assert row.cost == table_cost(client, row)
