"""Background responses (``complete(..., background=True)`` and ``client.responses``), sync and async: what is
sent (checked against ``CreateResponse`` in ``../shared/specs/openai-openapi.yaml``), the handle, polling, cancel,
a timeout that cancels, failures, structured output, budgets held from the submit to the end, one ledger row per
response, and the refusals made before any request.

The answers are authored from OpenAI's API reference (the ``Response`` object, ``GET /responses/{id}``, ``POST
/responses/{id}/cancel``) and validated against the same spec before they are served by a mock transport: nothing
leaves the process. The real recordings of background mode are replayed in
``tests/adapters/test_openai_responses_conformance.py``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from decimal import Decimal
from typing import Any

import genai_prices
import httpx
import pytest
from _support import KEY, Server, make_client, ok
from pydantic import BaseModel
from test_cassette_specs import errors, load_spec

import computekit as ck
from computekit._config import RetryConfig, RoutingConfig
from computekit._retry import RetryPolicy
from computekit.routing import Router

RID = "resp_bg0123456789abcdef"
USAGE = {"input_tokens": 40, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0}, "output_tokens": 25,
         "output_tokens_details": {"reasoning_tokens": 10}, "total_tokens": 65}
URL = f"https://api.openai.com/v1/responses/{RID}"


def response(status: str, *output: dict[str, Any], usage: dict[str, Any] | None = None,
             **extra: Any) -> dict[str, Any]:
    """A ``Response`` object as OpenAI's reference documents it, in the background."""
    ended = status in ("completed", "incomplete", "failed", "cancelled")
    body = {"id": RID, "object": "response", "created_at": 1_760_000_000, "status": status, "background": True,
            "error": None, "incomplete_details": None, "instructions": None, "max_output_tokens": None,
            "model": "o3-2025-04-16", "output": list(output), "parallel_tool_calls": True,
            "previous_response_id": None, "reasoning": {"effort": "medium", "summary": None}, "store": True,
            "temperature": 1.0, "text": {"format": {"type": "text"}}, "tool_choice": "auto", "tools": [],
            "top_p": 1.0, "truncation": "disabled", "metadata": {}, **extra}
    if ended:  # the spec's usage is an object: a response still running has none (the API sends null)
        body["usage"] = usage or USAGE
    return body


def message(text: str) -> dict[str, Any]:
    return {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]}


def served(schemas: dict[str, Any], *answers: dict[str, Any]) -> list[httpx.Response]:
    """Each answer checked against the spec's ``Response`` schema, then served in order."""
    for a in answers:
        assert errors(schemas, "Response", a) == [], a["status"]
    return [ok(a) for a in answers]


def price(usage: dict[str, Any] = USAGE) -> Decimal:
    """What genai-prices says the usage costs on o3 (the table, not a copied constant)."""
    return genai_prices.calc_price(
        genai_prices.Usage(input_tokens=usage["input_tokens"], output_tokens=usage["output_tokens"],
                           cache_read_tokens=usage["input_tokens_details"]["cached_tokens"]),
        "o3-2025-04-16", provider_id="openai").total_price


def run(is_async: bool, fn: Any) -> Any:
    out = fn()
    return asyncio.run(out) if is_async else out


class Clock:
    """The router's clock, moved by the injected sleep: a wait of 5 s takes no time."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def clocked(server: Server, is_async: bool) -> tuple[Any, Clock]:
    """A client whose router clock moves only when the retry policy's injected sleep is asked to wait."""
    clock = Clock()

    def advance(seconds: float) -> None:
        clock.now += seconds

    async def aadvance(seconds: float) -> None:
        clock.now += seconds

    kwargs: dict[str, Any] = {"config": None, "providers": {"openai": {"api_key": KEY}},
                              "retry_policy": RetryPolicy(RetryConfig(), sleep=advance, asleep=aadvance),
                              "router": Router(RoutingConfig(), clock=clock)}
    transport = httpx.MockTransport(server)
    if is_async:
        return ck.AsyncClient(http_client=httpx.AsyncClient(transport=transport), **kwargs), clock
    return ck.Client(http_client=httpx.Client(transport=transport), **kwargs), clock


@pytest.fixture(scope="session")
def openai_spec() -> dict[str, Any]:
    """The OpenAI spec's schemas (skipped outside CI when the spec is absent, as in ``test_cassette_specs``)."""
    return load_spec()


@pytest.fixture(params=[False, True], ids=["sync", "async"])
def is_async(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


# ------------------------------------------------------------------------------------------------ the handle


def test_submit_poll_and_record_once(is_async: bool, openai_spec: dict[str, Any]) -> None:
    server = Server(served(openai_spec, response("queued"), response("in_progress"),
                           response("completed", message("42."))))
    client = make_client(server, is_async=is_async)
    h = run(is_async, lambda: client.complete("openai:o3", "Think hard.", background=True, max_tokens=500,
                                              tags={"job": "nightly"}))
    assert isinstance(h, ck.BackgroundResponse)
    assert (h.id, h.status, h.done, h.completion, h.handle) == (RID, "queued", False, None, f"openai:{RID}")
    assert h.cost.total is None
    sent = server.seen[0].body
    assert errors(openai_spec, "CreateResponse", sent) == []
    assert sent == {"model": "o3", "input": [{"role": "user", "content": "Think hard."}], "max_output_tokens": 500,
                    "background": True}
    assert client.ledger.rows() == []  # nothing is written until it ends

    done = run(is_async, lambda: client.responses.wait(h, poll_interval=0))
    assert [(s.method, s.url) for s in server.seen[1:]] == [("GET", URL), ("GET", URL)]
    assert done.status == "completed"
    assert done.completion is not None
    assert done.completion.text == "42."
    assert done.text == "42."
    assert done.completion.usage.output_tokens == 25
    assert done.completion.usage.reasoning_tokens == 10
    assert done.model == "o3"  # the model asked for, the dated one in response_model
    assert done.completion.response_model == "o3-2025-04-16"
    assert done.cost.total == price()
    [row] = client.ledger.rows()
    assert (row.verb, row.outcome, row.cost, row.input_tokens, row.request_id) == (
        "complete", "success", price(), 40, RID)
    assert row.once_key == f"background:openai:{RID}"
    assert row.tags == {"job": "nightly"}
    assert [a.outcome for a in done.completion.attempts] == ["success"]
    # Seen again (another refresh, a second wait): not written again.
    run(is_async, lambda: client.responses.refresh(done))
    run(is_async, lambda: client.responses.wait(done))
    assert len(client.ledger.rows()) == 1


def test_handle_conveniences_and_the_wrong_flavour(openai_spec: dict[str, Any]) -> None:
    server = Server(served(openai_spec, response("queued"), response("completed", message("ok"))))
    client = make_client(server)
    h = client.complete("openai:o3", "x", background=True)
    same = h.wait(poll_interval=0)
    assert same is h
    assert h.status == "completed"
    assert h.text == "ok"
    with pytest.raises(ck.InvalidRequestError, match=r"await h.async_wait"):
        asyncio.run(_async_handle(openai_spec)).wait()
    with pytest.raises(ck.InvalidRequestError, match=r"h.refresh\(\.\.\.\)"):
        asyncio.run(h.async_refresh())
    assert "status='completed'" in repr(h)
    assert "cost=$" in repr(h)


async def _async_handle(openai_spec: dict[str, Any]) -> ck.BackgroundResponse:
    client = make_client(Server(served(openai_spec, response("queued"))), is_async=True)
    handle: ck.BackgroundResponse = await client.complete("openai:o3", "x", background=True)
    return handle


def test_async_handle_conveniences(openai_spec: dict[str, Any]) -> None:
    server = Server(served(openai_spec, response("queued"), response("completed", message("ok"))))

    async def go() -> ck.BackgroundResponse:
        client = make_client(server, is_async=True)
        h: ck.BackgroundResponse = await client.complete("openai:o3", "x", background=True)
        await h.async_wait(poll_interval=0)
        return h

    h = asyncio.run(go())
    assert h.status == "completed"
    assert h.text == "ok"


# ------------------------------------------------------------------------------------------------ budgets


def test_budget_reserves_the_worst_case_at_submit_and_settles_at_the_end(is_async: bool,
                                                                         openai_spec: dict[str, Any]) -> None:
    server = Server(served(openai_spec, response("queued"), response("in_progress"),
                           response("completed", message("done"))))
    client = make_client(server, is_async=is_async, budget={"limit_usd": "5"})
    h = run(is_async, lambda: client.complete("openai:o3", "x", background=True, max_tokens=1000))
    running = client.budget_status()["default"]
    assert running.reserved > 0
    assert running.spent == 0
    h = run(is_async, lambda: client.responses.refresh(h))
    assert client.budget_status()["default"].reserved == running.reserved  # a poll changes nothing
    h = run(is_async, lambda: client.responses.wait(h, poll_interval=0))
    ended = client.budget_status()["default"]
    assert (ended.reserved, ended.spent) == (0, price())
    assert client.ledger.rows()[0].reserved == running.reserved


def test_a_response_that_ends_in_another_process_settles_the_submitters_reservation(
        is_async: bool, openai_spec: dict[str, Any], ledger_url: str) -> None:
    """On SQLite and PostgreSQL: the submit's reservation is held in the shared ledger under the response's key,
    so the process that sees it end settles it with its one row; the submitter then settles and writes nothing."""
    server = Server(served(openai_spec, response("queued"), response("completed", message("done"))))
    a = make_client(server, is_async=is_async, ledger=ledger_url, budget={"limit_usd": "5"})
    b = make_client(server, is_async=is_async, ledger=ledger_url, budget={"limit_usd": "5"})
    try:
        h = run(is_async, lambda: a.complete("openai:o3", "x", background=True, max_tokens=1000))
        held = b.budget_status()["default"].reserved
        assert held > 0  # the other process sees it in the shared ledger
        other = run(is_async, lambda: b.responses.retrieve(f"openai:{RID}"))
        assert other.done
        for c in (a, b):
            st = c.budget_status()["default"]
            assert (st.spent, st.reserved) == (price(), 0)
        [row] = b.ledger.rows()
        assert (row.once_key, row.reserved) == (f"background:openai:{RID}", held)
        h = run(is_async, lambda: a.responses.wait(h, poll_interval=0))  # the submitter sees the end too
        st = a.budget_status()["default"]
        assert (st.spent, st.reserved) == (price(), 0)
        assert len(a.ledger.rows()) == 1
    finally:
        for c in (a, b):
            run(is_async, c.aclose if is_async else c.close)


def test_a_submit_the_budget_refuses_sends_nothing(openai_spec: dict[str, Any]) -> None:
    server = Server(served(openai_spec, response("queued")))
    client = make_client(server, budget={"limit_usd": "0.000001"})
    with pytest.raises(ck.BudgetExceededError):
        client.complete("openai:o3", "x", background=True, max_tokens=100_000)
    assert server.hits == 0


# ------------------------------------------------------------------------------------------------ how it ends


def test_timeout_cancels_and_the_cancelled_response_is_billed(is_async: bool, openai_spec: dict[str, Any]) -> None:
    partial = {**USAGE, "output_tokens": 7, "output_tokens_details": {"reasoning_tokens": 7}, "total_tokens": 47}
    server = Server(served(openai_spec, response("queued"), response("in_progress"), response("in_progress"),
                           response("cancelled", usage=partial)))
    client, clock = clocked(server, is_async)
    h = run(is_async, lambda: client.complete("openai:o3", "x", background=True))
    with pytest.raises(ck.BackgroundTimeoutError, match="was cancelled") as info:
        run(is_async, lambda: client.responses.wait(h, timeout=3, poll_interval=2))
    assert [(s.method, s.url) for s in server.seen[1:]] == [("GET", URL), ("GET", URL), ("POST", f"{URL}/cancel")]
    assert clock.now == 3  # 2 s, then the 1 s left: never past the timeout
    last = info.value.response
    assert last.status == "cancelled"
    assert info.value.request_id == RID
    assert isinstance(info.value, ck.APITimeoutError)
    [row] = client.ledger.rows()
    assert (row.outcome, row.output_tokens) == ("canceled", 7)
    assert row.cost == last.cost.total == price(partial)


def test_timeout_without_cancel_keeps_it_running(openai_spec: dict[str, Any]) -> None:
    server = Server(served(openai_spec, response("queued"), response("in_progress")))
    client, _ = clocked(server, False)
    h = client.complete("openai:o3", "x", background=True)
    with pytest.raises(ck.BackgroundTimeoutError, match="keeps running"):
        client.responses.wait(h, timeout=1, poll_interval=1, cancel_on_timeout=False)
    assert [s.method for s in server.seen] == ["POST", "GET"]
    assert client.ledger.rows() == []


def test_cancel_of_a_queued_response_that_reported_no_usage_is_unpriced_not_free(openai_spec: dict[str, Any]) -> None:
    unreported = {k: v for k, v in response("cancelled").items() if k != "usage"}
    server = Server(served(openai_spec, response("queued"), unreported))
    client = make_client(server)
    h = client.responses.cancel(client.complete("openai:o3", "x", background=True))
    assert h.status == "cancelled"
    assert h.cost.total is None
    [row] = client.ledger.rows()
    assert (row.outcome, row.cost) == ("canceled", None)


def test_cancel_of_one_that_just_ended_returns_its_final_state(openai_spec: dict[str, Any]) -> None:
    server = Server([*served(openai_spec, response("queued")),
                     httpx.Response(400, json={"error": {"message": "Cannot cancel a completed response.",
                                                         "type": "invalid_request_error", "param": None,
                                                         "code": None}}),
                     *served(openai_spec, response("completed", message("ok")))])
    client = make_client(server)
    h = client.responses.cancel(client.complete("openai:o3", "x", background=True))
    assert h.status == "completed"
    assert [s.method for s in server.seen] == ["POST", "POST", "GET"]
    assert client.ledger.rows()[0].outcome == "success"


def test_failed_is_typed_and_billed(is_async: bool, openai_spec: dict[str, Any]) -> None:
    failed = response("failed", error={"code": "server_error", "message": "The model failed."})
    server = Server(served(openai_spec, response("queued"), failed))
    client = make_client(server, is_async=is_async)
    h = run(is_async, lambda: client.complete("openai:o3", "x", background=True))
    with pytest.raises(ck.BackgroundFailedError, match="The model failed") as info:
        run(is_async, lambda: client.responses.wait(h, poll_interval=0))
    assert isinstance(info.value.__cause__, ck.ServerError)
    assert info.value.response.status == "failed"
    assert info.value.body == {"code": "server_error", "message": "The model failed."}
    [row] = client.ledger.rows()
    assert (row.outcome, row.error_type, row.cost) == ("error", "BackgroundFailedError", price())


def test_incomplete_after_billing_tokens_is_priced(is_async: bool, openai_spec: dict[str, Any]) -> None:
    cut = response("incomplete", message("The fir"), incomplete_details={"reason": "max_output_tokens"})
    server = Server(served(openai_spec, response("queued"), cut))
    client = make_client(server, is_async=is_async)
    h = run(is_async, lambda: client.complete("openai:o3", "x", background=True, max_tokens=25))
    h = run(is_async, lambda: client.responses.wait(h, poll_interval=0))
    assert h.completion is not None
    assert h.completion.finish_reason == "length"
    assert h.cost.total == price()
    assert client.ledger.rows()[0].outcome == "success"


class City(BaseModel):
    name: str


def test_structured_output_in_the_background(openai_spec: dict[str, Any]) -> None:
    server = Server(served(openai_spec, response("queued"), response("completed", message('{"name": "Paris"}'))))
    client = make_client(server)
    h = client.complete("openai:o3", "x", background=True, response_format=City)
    assert server.seen[0].body["text"]["format"]["type"] == "json_schema"
    h = client.responses.wait(h, poll_interval=0)
    assert h.completion is not None
    assert h.completion.parsed == City(name="Paris")


def test_structured_output_that_does_not_validate_is_billed(openai_spec: dict[str, Any]) -> None:
    server = Server(served(openai_spec, response("queued"), response("completed", message("Paris"))))
    client = make_client(server)
    h = client.complete("openai:o3", "x", background=True, response_format=City)
    with pytest.raises(ck.StructuredOutputError) as info:
        client.responses.wait(h, poll_interval=0)
    assert info.value.cost is not None
    assert info.value.cost.total == price()
    row = client.ledger.rows()[0]
    assert (row.cost, row.outcome, row.error_type) == (price(), "error", "StructuredOutputError")


# ------------------------------------------------------------------------------------------------ attach


def test_retrieve_follows_a_response_from_elsewhere(is_async: bool, openai_spec: dict[str, Any]) -> None:
    server = Server(served(openai_spec, response("completed", message("hi"))))
    client = make_client(server, is_async=is_async)
    h = run(is_async, lambda: client.responses.retrieve(f"openai:{RID}"))
    assert server.seen[0].method == "GET"
    assert server.seen[0].url == URL
    assert (h.status, h.model, h.text) == ("completed", "o3-2025-04-16", "hi")  # its model, read from it
    assert h.cost.total == price()
    assert [r.once_key for r in client.ledger.rows()] == [f"background:openai:{RID}"]


@pytest.mark.parametrize("bad", ["openai:resp_1/../files", "openai:resp_1?x=1", "openai:", "resp_1"])
def test_retrieve_refuses_what_is_not_an_id(bad: str) -> None:
    server = Server([])
    with pytest.raises(ck.InvalidRequestError):
        make_client(server).responses.retrieve(bad)
    assert server.hits == 0


# ------------------------------------------------------------------------------------------------ refusals


def test_providers_without_background_refuse_before_any_request() -> None:
    server = Server([])
    client = make_client(server, providers={"anthropic": {"api_key": "sk-ant-test-0123456789"},
                                            "groq": {"api_key": "gsk-test-0123456789"},
                                            "openrouter": {"api_key": "sk-or-test-0123456789"},
                                            "openai": {"api_key": "sk-test-0123456789abcdef"}})
    for model in ("anthropic:claude-sonnet-4-5", "groq:llama-3.3-70b-versatile", "openrouter:openai/gpt-4o",
                  ["openai:o3", "anthropic:claude-sonnet-4-5"]):
        with pytest.raises(ck.UnsupportedCapabilityError, match="background") as info:
            client.complete(model, "x", background=True)
        assert info.value.capability == "background"
    with pytest.raises(ck.UnsupportedCapabilityError, match="background"):
        client.responses.retrieve("anthropic:msg_1")
    with pytest.raises(ck.InvalidRequestError, match="api='chat'"):
        client.complete("openai:o3", "x", background=True, api="chat")
    with pytest.raises(ck.InvalidRequestError, match="background=True"):
        client.complete("openai:o3", "x", api="responses", extra_body={"background": True})
    with pytest.raises(ck.InvalidRequestError, match="stream cannot run in the background"):
        list(client.stream("openai:o3", "x", api="responses", extra_body={"background": True}))
    assert server.hits == 0


def test_wait_checks_its_arguments_before_polling(openai_spec: dict[str, Any]) -> None:
    server = Server(served(openai_spec, response("queued")))
    client = make_client(server)
    h = client.complete("openai:o3", "x", background=True)
    for kwargs in ({"timeout": -1}, {"poll_interval": float("nan")}):
        with pytest.raises(ck.InvalidRequestError):
            client.responses.wait(h, **kwargs)
    with pytest.raises(ck.InvalidRequestError, match="did you mean"):
        client.responses.wait(h, interval=1)  # type: ignore[call-arg]
    assert server.hits == 1


def test_the_row_is_dated_when_it_was_submitted(openai_spec: dict[str, Any]) -> None:
    server = Server(served(openai_spec, response("queued"), response("completed", message("ok"))))
    client = make_client(server)
    before = dt.datetime.now(dt.UTC)
    client.responses.wait(client.complete("openai:o3", "x", background=True), poll_interval=0)
    assert client.ledger.rows()[0].ts >= before


def test_module_level_complete_takes_background(monkeypatch: pytest.MonkeyPatch, openai_spec: dict[str, Any]) -> None:
    from computekit import _defaults

    server = Server(served(openai_spec, response("queued"), response("completed", message("ok"))))
    monkeypatch.setattr(_defaults, "_sync", make_client(server))
    h = ck.complete("openai:o3", "x", background=True)
    assert isinstance(h, ck.BackgroundResponse)
    assert server.seen[0].body["background"] is True
    assert h.wait(poll_interval=0).text == "ok"


def test_progress_line_while_waiting(openai_spec: dict[str, Any]) -> None:
    import io

    from rich.console import Console

    server = Server(served(openai_spec, response("queued"), response("in_progress"),
                           response("completed", message("ok"))))
    client = make_client(server)
    out = io.StringIO()
    h = client.complete("openai:o3", "x", background=True)
    client.responses.wait(h, poll_interval=0, progress=Console(file=out, width=100, force_terminal=False))
    shown = out.getvalue()
    assert "openai:o3" in shown
    assert "completed" in shown
    assert f"${price():f}" in shown


def test_azure_serves_background_responses_on_its_v1_path(openai_spec: dict[str, Any]) -> None:
    server = Server(served(openai_spec, response("queued"), response("completed", message("ok"))))
    client = make_client(server, providers={"azure": {"api_key": "azure-test-key-0123456789",
                                                      "base_url": "https://acme.openai.azure.com"}})
    h = client.complete("azure:o3", "x", background=True)
    h = client.responses.wait(h, poll_interval=0)
    assert [(s.method, s.url) for s in server.seen] == [
        ("POST", "https://acme.openai.azure.com/openai/v1/responses"),
        ("GET", f"https://acme.openai.azure.com/openai/v1/responses/{RID}")]
    assert server.seen[1].headers["api-key"] == "azure-test-key-0123456789"
    assert h.text == "ok"
    assert [r.once_key for r in client.ledger.rows()] == [f"background:azure:{RID}"]
