"""The fault catalogue (``tests/faults/README.md``), driven through the public API against a loopback
fault-injection server.

Each test is named after its case number (``test_case_NN_...``) and runs sync and async, on computekit's
default transports (urllib3 / aiohttp: no ``http_client=``), with a retry policy whose sleep records the waits
and never sleeps (:mod:`fault_server`). Each asserts the typed error, its status, the number of attempts (on the
result, else in the ledger), the server's hit count and the waits the retry loop asked for.

Backoff is made deterministic by :class:`fault_server.MaxJitter` (full jitter at its ceiling): with the default
``backoff_initial=0.5`` the waits are 0.5, 1.0, 2.0 ...

The routing cases (3, 6, 8's cool-down/fallback part, 12, 13, 20, 21, 23, 25) are in ``test_routing_faults.py``.
24 (the budget race) is in ``test_budget_faults.py``; 26 (a 5xx while polling a prediction or a fine-tuning job) is
in ``test_routing_faults.py``.
"""

from __future__ import annotations

import email.utils
import gc
import logging
import time
import traceback
import tracemalloc
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import openai
import pytest
import vcr
from fault_server import (
    FIXED_NOW,
    SSE,
    Hang,
    Oversize,
    Reply,
    Reset,
    Truncated,
    Waits,
    chat,
    chat_events,
    close,
    error,
    make_client,
    read_stream,
    run,
    unused_port,
)

import computekit as ck
from computekit._constants import MAX_SSE_EVENT_BYTES

CHAT = "openai:gpt-4o-mini"
EMBED = "openai:text-embedding-3-small"
CANARY = "sk-canary-faults-7f3a9c1e5b2d4086ae11"
BACKOFF = [0.5, 1.0, 2.0, 4.0]  # MaxJitter waits for tries 1, 2, 3, 4 with the default backoff settings

both = pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
verbs = pytest.mark.parametrize("verb", ["complete", "stream", "embed"])


# ============================================================================================= helpers


def ok(verb: str) -> Any:
    """The success response of ``verb``."""
    if verb == "stream":
        return SSE(chat_events(["Hel", "lo"]))
    if verb == "embed":
        return Reply(200, {"object": "list", "model": "text-embedding-3-small",
                           "data": [{"object": "embedding", "index": 0, "embedding": [0.25, -0.5]}],
                           "usage": {"prompt_tokens": 1, "total_tokens": 1}}, {"x-request-id": "req_ok"})
    return chat("Hello")


async def call(client: Any, verb: str = "complete") -> Any:
    """One call of ``verb`` through the public API; returns the result (a stream's final result)."""
    if verb == "stream":
        _, s = await read_stream(client, CHAT)
        return s.result
    if verb == "embed":
        return await run(client.embed(EMBED, ["a"]))
    return await run(client.complete(CHAT, "hi"))


def check_success(r: Any, verb: str) -> None:
    if verb == "embed":
        assert r.vectors == [[0.25, -0.5]]
    else:
        assert r.text == "Hello"


@pytest.fixture
async def clients(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """``clients(is_async, url, waits, **kw)``: a client with a ledger in ``tmp_path``; closed at the end."""
    made: list[Any] = []

    def make(is_async: bool, url: str, waits: Waits, **kw: Any) -> Any:
        kw.setdefault("ledger", f"sqlite:///{tmp_path / 'ledger.db'}")
        c = make_client(is_async, url, waits, **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        await close(c)


def ledger_outcomes(client: Any) -> list[tuple[str, int | None, str | None]]:
    """(outcome, status, error type) of every attempt in the ledger, in order."""
    return [(r.outcome, r.status, r.error_type) for r in client.ledger.rows()]


def outcomes(r: Any) -> list[tuple[str, int | None, str | None]]:
    return [(a.outcome, a.status, a.error_type) for a in r.attempts]


def http_date(seconds_from_now: float) -> str:
    return email.utils.formatdate(FIXED_NOW + seconds_from_now, usegmt=True)


# ============================================================================================= 1, 2: Retry-After


@both
@verbs
@pytest.mark.parametrize("value", ["2", http_date(2)], ids=["seconds", "http-date"])
async def test_case_01_429_retry_after_is_honoured(faults: Any, clients: Any, waits: Waits, is_async: bool,
                                                    verb: str, value: str) -> None:
    srv = faults([error(429, "slow down", type_="rate_limit_error", headers={"retry-after": value}), ok(verb)])
    client = clients(is_async, srv.url, waits)
    r = await call(client, verb)
    check_success(r, verb)
    assert waits.waits == [2.0]
    assert srv.hits == 2
    assert outcomes(r) == [("error", 429, "RateLimitError"), ("success", None, None)]
    assert ledger_outcomes(client) == outcomes(r)


@both
async def test_case_01_429_retry_after_until_retries_run_out(faults: Any, clients: Any, waits: Waits,
                                                             is_async: bool) -> None:
    srv = faults(error(429, "slow down", type_="rate_limit_error", headers={"retry-after": "2"}))
    client = clients(is_async, srv.url, waits)
    with pytest.raises(ck.RateLimitError) as ei:
        await call(client)
    assert ei.value.status == 429
    assert ei.value.headers["retry-after"] == "2"
    assert waits.waits == [2.0, 2.0]
    assert srv.hits == 3
    assert ledger_outcomes(client) == [("error", 429, "RateLimitError")] * 3


@both
@verbs
@pytest.mark.parametrize(
    ("headers", "wait"),
    [({"retry-after-ms": "1500"}, 1.5), ({"retry-after-ms": "250", "retry-after": "7"}, 0.25)],
    ids=["ms", "ms-wins-over-seconds"],
)
async def test_case_02_429_retry_after_ms(faults: Any, clients: Any, waits: Waits, is_async: bool, verb: str,
                                          headers: dict[str, str], wait: float) -> None:
    srv = faults([error(429, type_="rate_limit_error", headers=headers), ok(verb)])
    client = clients(is_async, srv.url, waits)
    r = await call(client, verb)
    check_success(r, verb)
    assert waits.waits == [wait]
    assert srv.hits == 2
    assert outcomes(r) == [("error", 429, "RateLimitError"), ("success", None, None)]


# ============================================================================================= 4: malformed Retry-After


@both
@pytest.mark.parametrize(
    "value",
    [
        "inf",
        "nan",
        "-5",
        "soon, probably",
        "Fri, 31 Dec 9999 23:59:59 GMT",
    ],
    ids=["inf", "nan", "negative", "junk", "far-future-date"],
)
async def test_case_04_malformed_retry_after_backs_off_and_keeps_the_error(
    faults: Any, clients: Any, waits: Waits, is_async: bool, value: str
) -> None:
    srv = faults(error(429, "slow down", type_="rate_limit_error", headers={"retry-after": value}))
    client = clients(is_async, srv.url, waits)
    with pytest.raises(ck.RateLimitError) as ei:
        await call(client)
    # The original error, with the header as the server sent it.
    assert ei.value.status == 429
    assert ei.value.headers["retry-after"] == value
    assert ei.value.message == "slow down"
    assert waits.waits == BACKOFF[:2]  # exponential backoff, not the header
    assert srv.hits == 3
    assert ledger_outcomes(client) == [("error", 429, "RateLimitError")] * 3


# ============================================================================================= 5: retryable statuses


@both
@verbs
@pytest.mark.parametrize(
    ("status", "error_type"),
    [(408, "APIStatusError"), (500, "ServerError"), (502, "ServerError"), (503, "ServerError"),
     (504, "ServerError"), (529, "OverloadedError")],
)
async def test_case_05_retryable_status_then_success(faults: Any, clients: Any, waits: Waits, is_async: bool,
                                                     verb: str, status: int, error_type: str) -> None:
    srv = faults([error(status), ok(verb)])
    client = clients(is_async, srv.url, waits)
    r = await call(client, verb)
    check_success(r, verb)
    assert waits.waits == BACKOFF[:1]
    assert srv.hits == 2
    assert outcomes(r) == [("error", status, error_type), ("success", None, None)]
    assert r.cost.total is not None
    assert r.cost.total > 0


# ============================================================================================= 7: x-should-retry


@both
@verbs
async def test_case_07_should_retry_false_on_500_is_not_retried(faults: Any, clients: Any, waits: Waits,
                                                                is_async: bool, verb: str) -> None:
    srv = faults([error(500, "do not retry", headers={"x-should-retry": "false"}), ok(verb)])
    client = clients(is_async, srv.url, waits)
    with pytest.raises(ck.ServerError) as ei:
        await call(client, verb)
    assert ei.value.status == 500
    assert waits.waits == []
    assert srv.hits == 1
    assert ledger_outcomes(client) == [("error", 500, "ServerError")]


@both
@verbs
async def test_case_07_should_retry_true_on_400_is_retried(faults: Any, clients: Any, waits: Waits, is_async: bool,
                                                           verb: str) -> None:
    srv = faults([error(400, "retry me", type_="invalid_request_error", headers={"x-should-retry": "true"}),
                  ok(verb)])
    client = clients(is_async, srv.url, waits)
    r = await call(client, verb)
    check_success(r, verb)
    assert waits.waits == BACKOFF[:1]
    assert srv.hits == 2
    assert outcomes(r) == [("error", 400, "BadRequestError"), ("success", None, None)]


# ============================================================================================= 8: client errors


@both
@verbs
@pytest.mark.parametrize(
    ("status", "cls"),
    [(400, ck.BadRequestError), (401, ck.AuthenticationError), (403, ck.PermissionDeniedError),
     (404, ck.NotFoundError), (422, ck.BadRequestError)],
)
async def test_case_08_client_errors_are_not_retried(faults: Any, clients: Any, waits: Waits, is_async: bool,
                                                     verb: str, status: int, cls: type[ck.APIStatusError]) -> None:
    srv = faults([error(status, f"refused with {status}", type_="invalid_request_error"), ok(verb)])
    client = clients(is_async, srv.url, waits)
    with pytest.raises(cls) as ei:
        await call(client, verb)
    assert type(ei.value) is cls
    assert ei.value.status == status
    assert ei.value.message == f"refused with {status}"
    assert waits.waits == []
    assert srv.hits == 1
    assert ledger_outcomes(client) == [("error", status, cls.__name__)]


# ============================================================================================= 9, 10, 11: connections


@both
@verbs
async def test_case_09_connection_refused(clients: Any, waits: Waits, is_async: bool, verb: str) -> None:
    client = clients(is_async, f"http://127.0.0.1:{unused_port()}/v1", waits)
    t0 = time.monotonic()
    with pytest.raises(ck.APIConnectionError) as ei:
        await call(client, verb)
    assert type(ei.value) is ck.APIConnectionError
    assert ei.value.status is None
    assert waits.waits == BACKOFF[:2]
    assert ledger_outcomes(client) == [("error", None, "APIConnectionError")] * 3
    assert time.monotonic() - t0 < 3  # refused at once: no connect timeout was waited for


@both
@verbs
async def test_case_10_reset_after_the_request_was_read_then_success(faults: Any, clients: Any, waits: Waits,
                                                                     is_async: bool, verb: str) -> None:
    srv = faults([Reset(), ok(verb)])
    client = clients(is_async, srv.url, waits)
    r = await call(client, verb)
    check_success(r, verb)
    assert waits.waits == BACKOFF[:1]
    assert srv.hits == 2
    assert srv.requests[0].body == srv.requests[1].body  # the same request, sent again
    assert srv.requests[0].conn != srv.requests[1].conn  # on a new connection
    assert outcomes(r) == [("error", None, "APIConnectionError"), ("success", None, None)]


@both
@verbs
async def test_case_10_reset_every_time(faults: Any, clients: Any, waits: Waits, is_async: bool, verb: str) -> None:
    srv = faults(Reset())
    client = clients(is_async, srv.url, waits)
    with pytest.raises(ck.APIConnectionError) as ei:
        await call(client, verb)
    assert ei.value.status is None
    assert waits.waits == BACKOFF[:2]
    assert srv.hits == 3
    assert ledger_outcomes(client) == [("error", None, "APIConnectionError")] * 3


@both
@verbs
@pytest.mark.parametrize("recovers", [False, True], ids=["always-hangs", "then-answers"])
async def test_case_11_hang_before_headers_is_a_read_timeout(faults: Any, clients: Any, waits: Waits,
                                                             is_async: bool, verb: str, recovers: bool) -> None:
    srv = faults([Hang(), ok(verb)] if recovers else Hang())
    client = clients(is_async, srv.url, waits, retry={"max_retries": 1}, provider={"timeout": 0.2})
    t0 = time.monotonic()
    if recovers:
        r = await call(client, verb)
        check_success(r, verb)
        assert outcomes(r) == [("error", None, "APITimeoutError"), ("success", None, None)]
    else:
        with pytest.raises(ck.APITimeoutError) as ei:
            await call(client, verb)
        assert ei.value.status is None
        assert ledger_outcomes(client) == [("error", None, "APITimeoutError")] * 2
    assert time.monotonic() - t0 < 3  # two 0.2 s read timeouts, not the server's 5 s hang
    assert waits.waits == BACKOFF[:1]
    assert srv.hits == 2


# ============================================================================================= 14, 15, 16: bad bodies


@both
@pytest.mark.parametrize("verb", ["complete", "embed"])
@pytest.mark.parametrize("recovers", [False, True], ids=["always-truncated", "then-whole"])
async def test_case_14_truncated_body(faults: Any, clients: Any, waits: Waits, is_async: bool, verb: str,
                                      recovers: bool) -> None:
    body = ok(verb).body
    srv = faults([Truncated(body), ok(verb)] if recovers else Truncated(body))
    client = clients(is_async, srv.url, waits, retry={"max_retries": 1})
    if recovers:
        r = await call(client, verb)
        check_success(r, verb)
        assert outcomes(r) == [("error", None, "APIConnectionError"), ("success", None, None)]
    else:
        with pytest.raises(ck.APIConnectionError) as ei:
            await call(client, verb)
        assert ei.value.status is None
        assert ledger_outcomes(client) == [("error", None, "APIConnectionError")] * 2
    assert waits.waits == BACKOFF[:1]
    assert srv.hits == 2


@both
@pytest.mark.parametrize("verb", ["complete", "embed"])
async def test_case_15_200_that_is_not_json(faults: Any, clients: Any, waits: Waits, is_async: bool,
                                            verb: str) -> None:
    srv = faults(Reply(200, "<html><body>502 Bad Gateway</body></html>", {"content-type": "text/html"}))
    client = clients(is_async, srv.url, waits)
    with pytest.raises(ck.MalformedResponseError) as ei:
        await call(client, verb)
    assert ei.value.status == 200
    assert "502 Bad Gateway" in str(ei.value.body)  # the body is kept
    assert waits.waits == []
    assert srv.hits == 1
    assert ledger_outcomes(client) == [("error", 200, "MalformedResponseError")]


@both
@pytest.mark.parametrize(
    ("verb", "body"),
    [("complete", {"object": "chat.completion", "choices": "none"}),
     ("complete", {"object": "chat.completion", "choices": [{"index": 0, "message": "hi"}]}),
     ("complete", [1, 2, 3]),
     ("embed", {"object": "list", "data": [{"index": 0}]})],
    ids=["choices-not-a-list", "message-not-an-object", "array", "embedding-missing"],
)
async def test_case_16_200_with_json_of_the_wrong_shape(faults: Any, clients: Any, waits: Waits, is_async: bool,
                                                        verb: str, body: Any) -> None:
    srv = faults(Reply(200, body))
    client = clients(is_async, srv.url, waits)
    with pytest.raises(ck.MalformedResponseError) as ei:
        await call(client, verb)
    assert ei.value.status == 200
    assert ei.value.body == body
    assert waits.waits == []
    assert srv.hits == 1
    assert ledger_outcomes(client) == [("error", 200, "MalformedResponseError")]


# ============================================================================================= 17, 18, 19: streams


@both
@pytest.mark.parametrize("framing", ["chunked", "close"])
@pytest.mark.parametrize("cut", [b'data: {"id": "chatcmpl-s", "cho', b""], ids=["mid-event", "before-done"])
async def test_case_17_sse_cut(faults: Any, clients: Any, waits: Waits, is_async: bool, framing: str,
                               cut: bytes) -> None:
    srv = faults([SSE(chat_events(["Hel"], usage=False, done=False)[:2], cut=cut, framing=framing),
                  ok("stream")])
    client = clients(is_async, srv.url, waits)
    with pytest.raises(ck.APIConnectionError) as ei:
        await call(client, "stream")
    assert ei.value.status is None
    assert "".join(c.text or "" for c in ei.value.partial) == "Hel"  # type: ignore[attr-defined]
    assert waits.waits == []  # a chunk reached the caller: no second try
    assert srv.hits == 1
    assert ledger_outcomes(client) == [("error", None, "APIConnectionError")]


@both
async def test_case_18_sse_error_event_mid_stream(faults: Any, clients: Any, waits: Waits, is_async: bool) -> None:
    events = [*chat_events(["Hel"], usage=False, done=False)[:2],
              {"error": {"message": "overloaded mid-stream", "type": "server_error"}}]
    srv = faults([SSE(events, together=True), ok("stream")])  # one read: the text still reaches the caller first
    client = clients(is_async, srv.url, waits)
    with pytest.raises(ck.ServerError) as ei:
        await call(client, "stream")
    assert ei.value.message == "overloaded mid-stream"
    assert ei.value.status == 500
    assert "".join(c.text or "" for c in ei.value.partial) == "Hel"  # type: ignore[attr-defined]
    assert waits.waits == []
    assert srv.hits == 1
    assert ledger_outcomes(client) == [("error", 500, "ServerError")]


@both
async def test_case_18_error_event_after_usage_is_billed_that_usage(faults: Any, clients: Any, waits: Waits,
                                                                    is_async: bool) -> None:
    """The stream reported its usage, then an error event: the failed attempt's row has that usage, priced from
    the tables (not the error response's cost of 0)."""
    from computekit.pricing import PriceBook

    error = {"error": {"message": "overloaded mid-stream", "type": "server_error"}}
    events = [*chat_events(["Hel"], done=False), error]
    srv = faults([SSE(events, together=True), ok("stream")])
    client = clients(is_async, srv.url, waits)
    with pytest.raises(ck.ServerError):
        await call(client, "stream")
    (row,) = client.ledger.rows()
    assert (row.outcome, row.status, row.error_type) == ("error", 500, "ServerError")
    reported = next(e["usage"] for e in events if isinstance(e, dict) and e.get("usage"))
    assert (row.input_tokens, row.output_tokens) == (reported["prompt_tokens"], reported["completion_tokens"])
    usage = ck.Usage(input_tokens=row.input_tokens, output_tokens=row.output_tokens)
    table = PriceBook().token_cost(client._core.adapter("openai").price_ref("gpt-4o-mini"), usage, row.ts)
    assert table.total is not None
    assert table.total > 0
    assert row.cost == table.total


@both
async def test_case_19_oversized_sse_event_is_refused_with_bounded_memory(faults: Any, clients: Any, waits: Waits,
                                                                         is_async: bool) -> None:
    offered = 16 * MAX_SSE_EVENT_BYTES  # 64 MiB in one unterminated line
    srv = faults(Oversize(offered))
    client = clients(is_async, srv.url, waits)
    gc.collect()
    tracemalloc.start()
    try:
        with pytest.raises(ck.ResponseTooLargeError, match="larger than") as ei:
            await call(client, "stream")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert ei.value.status is None
    assert peak < 6 * MAX_SSE_EVENT_BYTES, f"peak {peak} bytes"
    assert waits.waits == []
    assert srv.hits == 1
    assert ei.value.limit == MAX_SSE_EVENT_BYTES
    assert ledger_outcomes(client) == [("error", None, "ResponseTooLargeError")]
    srv.close()  # the writer thread has ended: the client stopped reading long before the end
    assert srv.sent[0] < offered // 2


# ============================================================================================= 22: retry amplification


@both
@verbs
@pytest.mark.parametrize("max_retries", [0, 1, 3])
async def test_case_22_hits_are_one_plus_max_retries(faults: Any, clients: Any, waits: Waits, is_async: bool,
                                                     verb: str, max_retries: int) -> None:
    srv = faults(error(500))
    client = clients(is_async, srv.url, waits, retry={"max_retries": max_retries})
    with pytest.raises(ck.ServerError) as ei:
        await call(client, verb)
    assert ei.value.status == 500
    assert srv.hits == 1 + max_retries
    assert waits.waits == BACKOFF[:max_retries]
    assert ledger_outcomes(client) == [("error", 500, "ServerError")] * (1 + max_retries)


@both
@pytest.mark.parametrize("max_retries", [0, 2])
async def test_case_22_hits_per_target_with_fallback(faults: Any, clients: Any, waits: Waits, is_async: bool,
                                                     max_retries: int) -> None:
    srv = faults(error(503))
    client = clients(is_async, srv.url, waits, retry={"max_retries": max_retries})
    with pytest.raises(ck.AllTargetsFailedError) as ei:
        await run(client.complete(["openai:gpt-4o-mini", "openai:gpt-4o"], "hi"))
    errors = [e for e in ei.value.exceptions if isinstance(e, ck.ServerError)]
    assert [(e.status, e.model) for e in errors] == [(503, "gpt-4o-mini"), (503, "gpt-4o")]
    assert len(ei.value.exceptions) == 2
    per_target = 1 + max_retries
    assert [(a.model, a.status) for a in ei.value.attempts] == (
        [("gpt-4o-mini", 503)] * per_target + [("gpt-4o", 503)] * per_target)
    assert [r.json()["model"] for r in srv.requests] == ["gpt-4o-mini"] * per_target + ["gpt-4o"] * per_target
    assert waits.waits == BACKOFF[:max_retries] * 2
    assert ledger_outcomes(client) == [("error", 503, "ServerError")] * (2 * per_target)


@both
async def test_case_22_vendor_sdk_with_max_retries_0_sends_once(faults: Any, is_async: bool) -> None:
    srv = faults(error(500))
    if is_async:
        async with openai.AsyncOpenAI(base_url=srv.url, api_key=CANARY, max_retries=0) as aclient:
            with pytest.raises(openai.InternalServerError):
                await aclient.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    else:
        with openai.OpenAI(base_url=srv.url, api_key=CANARY, max_retries=0) as sclient, \
                pytest.raises(openai.InternalServerError):
            sclient.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert srv.hits == 1


# ============================================================================================= 27: the canary key


def _leak_surfaces(client: Any, results: list[Any], errors: list[BaseException]) -> dict[str, str]:
    out = {"repr(client)": repr(client), "repr(settings)": repr(client.settings), "str(settings)": str(client.settings)}
    for i, r in enumerate(results):
        out[f"repr(result {i})"] = repr(r)
        out[f"attempts of result {i}"] = repr(r.attempts) + " ".join(str(a.error) for a in r.attempts)
        out[f"request id of result {i}"] = str(r.request_id)
    for i, e in enumerate(errors):
        out[f"str(error {i})"] = str(e)
        out[f"repr(error {i})"] = repr(e)
        out[f"traceback of error {i}"] = "".join(traceback.format_exception(e))
        if isinstance(e, ck.ProviderError):
            out[f"facts of error {i}"] = repr((e.message, e.headers, e.body, e.request_id))
    return out


async def _canary_calls(client: Any, results: list[Any], errors: list[BaseException]) -> None:
    for verb in ("complete", "complete", "stream", "complete", "complete"):
        try:
            results.append(await call(client, verb))
        except ck.ProviderError as e:
            errors.append(e)


def _canary_script() -> list[Any]:
    """A server that reflects the Authorization header everywhere it can: headers, error bodies, request ids."""
    return [
        error(401, echo_auth=True),  # call 1: 401, not retried
        error(500, echo_auth=True),  # call 2: 500, retried ...
        chat("Hello", echo_auth=True),  # ... then 200 (key in x-request-id / x-echo-authorization)
        SSE([*chat_events(["Hel"], usage=False, done=False)[:2],
             {"error": {"message": f"bad key {'Bearer ' + CANARY}", "type": "server_error"}}]),  # call 3
        Reply(200, f"<html>your key is {CANARY}</html>", {"content-type": "text/html", "x-request-id": CANARY}),
        Reset(),  # call 5: reset, retried, reset again, then:
        Reset(),
        Reply(200, {"choices": CANARY, "echo": CANARY}, echo_auth=True),  # wrong shape, with the key in the body
    ]


@both
async def test_case_27_canary_key_never_leaks(faults: Any, waits: Waits, is_async: bool, tmp_path: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    srv = faults(_canary_script())
    db = tmp_path / "canary-ledger.db"
    client = make_client(is_async, srv.url, waits, api_key=CANARY, ledger=f"sqlite:///{db}")
    results: list[Any] = []
    errors: list[BaseException] = []
    try:
        await _canary_calls(client, results, errors)
        surfaces = _leak_surfaces(client, results, errors)
        rows = client.ledger.rows()
    finally:
        await close(client)
    # The server did see (and echo) the key: the test is not vacuous.
    assert srv.requests[0].auth == f"Bearer {CANARY}"
    assert [type(e) for e in errors] == [ck.AuthenticationError, ck.ServerError, ck.MalformedResponseError,
                                         ck.MalformedResponseError]
    assert len(results) == 1
    assert results[0].text == "Hello"
    assert srv.hits == 8
    assert len(rows) == 8  # every attempt: 1 + 2 + 1 + 1 + 3
    surfaces["log records"] = caplog.text + repr([(r.msg, r.args) for r in caplog.records])
    surfaces["ledger rows"] = repr(rows)
    for name in sorted(db.parent.glob(db.name + "*")):  # the database, and its -wal / -shm files
        surfaces[name.name] = name.read_bytes().decode("latin-1")
    leaked = sorted(name for name, text in surfaces.items() if CANARY in text)
    assert leaked == []


@both
async def test_case_27_canary_key_not_in_a_recorded_cassette(faults: Any, waits: Waits, is_async: bool,
                                                             tmp_path: Path, vcr_config: dict[str, Any]) -> None:
    srv = faults(_canary_script())
    cassette = tmp_path / "canary.yaml"
    client = make_client(is_async, srv.url, waits, api_key=CANARY)
    results: list[Any] = []
    errors: list[BaseException] = []
    try:
        with vcr.VCR(**vcr_config).use_cassette(str(cassette), record_mode="all"):
            await _canary_calls(client, results, errors)
    finally:
        await close(client)
    assert srv.hits == 8
    text = cassette.read_text("utf-8")
    assert "Incorrect API key provided" in text  # the echoing responses were recorded
    assert CANARY not in text
