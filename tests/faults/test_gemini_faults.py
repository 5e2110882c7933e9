"""The fault catalogue's wire cases on the Gemini wire format, through the public API, sync and async.

The same cases as ``test_faults.py`` (1/2: a 429 with retry hints, 5: retryable statuses, 15/16: malformed bodies,
17: a stream cut mid-event, 18: an error mid-stream) and a fallback from ``test_routing_faults.py`` (a Gemini
target failing over to another provider), against the loopback fault server answering as the Gemini API does:
``usageMetadata`` usage, ``{"error": {"code", "message", "status", "details"}}`` errors, ``alt=sse`` streams of
whole ``GenerateContentResponse`` objects. The retry loop's sleep records its waits and never sleeps.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from fault_server import SSE, Reply, Waits, chat, provider_clients, read_stream, run

import computekit as ck

KEY = "AIza-fault-0123456789abcdefghijklmnop"
MODEL = "gemini:gemini-2.5-flash"
BACKOFF = [0.5, 1.0, 2.0]

both = pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
pytestmark = pytest.mark.filterwarnings("ignore::computekit.UnknownPriceWarning")


def answer(text: str = "Hello", *, finish: bool = True, usage: bool = True) -> dict[str, Any]:
    cand: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
    if finish:
        cand["finishReason"] = "STOP"
    body: dict[str, Any] = {"candidates": [cand], "modelVersion": "gemini-2.5-flash", "responseId": "fault-ok"}
    if usage:
        body["usageMetadata"] = {"promptTokenCount": 4, "candidatesTokenCount": 2, "totalTokenCount": 6}
    return body


def gemini_error(code: int, status: str, message: str = "injected fault", *, retry_delay: str | None = None,
                 headers: dict[str, str] | None = None) -> Reply:
    err: dict[str, Any] = {"code": code, "message": message, "status": status}
    if retry_delay is not None:
        err["details"] = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay}]
    return Reply(code, {"error": err}, dict(headers or {}))


OK = Reply(200, answer(), {"x-request-id": "req_ok"})


def ok_stream() -> SSE:
    return SSE([answer("Hel", finish=False, usage=False), answer("lo")])


@pytest.fixture
async def clients(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """``clients(is_async, url, waits, backup_url=None, **retry)``: a client whose ``gemini`` provider is the
    fault server (and ``backup``, an OpenAI-compatible provider, another one); its ledger in ``tmp_path``."""
    async with provider_clients(tmp_path, "gemini", KEY) as make:
        yield make


def outcomes(r: Any) -> list[tuple[str, int | None, str | None]]:
    return [(a.outcome, a.status, a.error_type) for a in r.attempts]


def ledger_outcomes(client: Any) -> list[tuple[str, int | None, str | None]]:
    return [(r.outcome, r.status, r.error_type) for r in client.ledger.rows()]


# ============================================================================================= 1, 2: 429 hints


@both
@pytest.mark.parametrize(("reply", "wait"), [
    (gemini_error(429, "RESOURCE_EXHAUSTED", retry_delay="3s"), 3.0),
    (gemini_error(429, "RESOURCE_EXHAUSTED", retry_delay="1.5s"), 1.5),
    (gemini_error(429, "RESOURCE_EXHAUSTED", retry_delay="30s", headers={"retry-after": "2"}), 2.0),
    (gemini_error(429, "RESOURCE_EXHAUSTED"), BACKOFF[0]),
], ids=["retry-info", "retry-info-fraction", "header-wins", "no-hint-backs-off"])
async def test_429_retry_hints(faults: Any, clients: Any, waits: Waits, is_async: bool, reply: Reply,
                               wait: float) -> None:
    srv = faults([reply, OK])
    client = clients(is_async, srv.url, waits)
    r = await run(client.complete(MODEL, "hi"))
    assert r.text == "Hello"
    assert waits.waits == [wait]
    assert srv.hits == 2
    assert outcomes(r) == [("error", 429, "RateLimitError"), ("success", None, None)]
    assert ledger_outcomes(client) == outcomes(r)
    assert srv.requests[0].headers["x-goog-api-key"] == KEY
    assert KEY not in srv.requests[0].path


@both
async def test_429_until_retries_run_out_keeps_google_error(faults: Any, clients: Any, waits: Waits,
                                                            is_async: bool) -> None:
    srv = faults(gemini_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded", retry_delay="4s"))
    client = clients(is_async, srv.url, waits)
    with pytest.raises(ck.RateLimitError) as ei:
        await run(client.complete(MODEL, "hi"))
    assert ei.value.message == "Quota exceeded"
    assert ei.value.body["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert ei.value.headers["retry-after"] == "4"
    assert waits.waits == [4.0, 4.0]
    assert srv.hits == 3
    assert ledger_outcomes(client) == [("error", 429, "RateLimitError")] * 3


# ============================================================================================= 5: 5xx


@both
@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
@pytest.mark.parametrize(("code", "status", "error_type"), [
    (500, "INTERNAL", "ServerError"), (503, "UNAVAILABLE", "OverloadedError"),
    (504, "DEADLINE_EXCEEDED", "ServerError"),
])
async def test_5xx_then_success(faults: Any, clients: Any, waits: Waits, is_async: bool, stream: bool, code: int,
                                status: str, error_type: str) -> None:
    srv = faults([gemini_error(code, status), ok_stream() if stream else OK])
    client = clients(is_async, srv.url, waits)
    if stream:
        chunks, s = await read_stream(client, MODEL)
        r = s.result
        assert "".join(c.text for c in chunks) == "Hello"
    else:
        r = await run(client.complete(MODEL, "hi"))
    assert r.text == "Hello"
    assert waits.waits == BACKOFF[:1]
    assert srv.hits == 2
    assert outcomes(r) == [("error", code, error_type), ("success", None, None)]
    assert r.cost.total is not None
    assert r.cost.total > 0
    assert ledger_outcomes(client) == outcomes(r)


# ============================================================================================= 15, 16: bodies


@both
@pytest.mark.parametrize("body", [
    "<html><body>502 Bad Gateway</body></html>",
    [1, 2, 3],
    {"candidates": "none", "usageMetadata": {"promptTokenCount": 1}},
    {"candidates": [["not", "an", "object"]]},
    {"modelVersion": "gemini-2.5-flash"},
], ids=["not-json", "array", "candidates-not-a-list", "candidate-not-an-object", "no-candidates-no-usage"])
async def test_malformed_body(faults: Any, clients: Any, waits: Waits, is_async: bool, body: Any) -> None:
    srv = faults(Reply(200, body, {"content-type": "text/html"} if isinstance(body, str) else {}))
    client = clients(is_async, srv.url, waits)
    with pytest.raises(ck.MalformedResponseError) as ei:
        await run(client.complete(MODEL, "hi"))
    assert ei.value.status == 200
    assert ei.value.body == body
    assert waits.waits == []
    assert srv.hits == 1
    assert ledger_outcomes(client) == [("error", 200, "MalformedResponseError")]


# ============================================================================================= 17, 18: streams


@both
@pytest.mark.parametrize("framing", ["chunked", "close"])
@pytest.mark.parametrize("cut", [b'data: {"candidates": [{"content": {"par', b""], ids=["mid-event", "no-finish"])
async def test_stream_cut(faults: Any, clients: Any, waits: Waits, is_async: bool, framing: str,
                          cut: bytes) -> None:
    srv = faults([SSE([answer("Hel", finish=False, usage=False)], cut=cut, framing=framing), ok_stream()])
    client = clients(is_async, srv.url, waits)
    with pytest.raises(ck.APIConnectionError) as ei:
        await read_stream(client, MODEL)
    assert ei.value.status is None
    assert "".join(c.text or "" for c in ei.value.partial) == "Hel"  # type: ignore[attr-defined]
    assert waits.waits == []  # a chunk reached the caller: no second try
    assert srv.hits == 1
    assert ledger_outcomes(client) == [("error", None, "APIConnectionError")]


@both
async def test_error_object_mid_stream(faults: Any, clients: Any, waits: Waits, is_async: bool) -> None:
    events = [answer("Hel", finish=False, usage=False),
              {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}]
    # In one write: the text decoded in the same read as the error still reaches the caller first.
    srv = faults([SSE(events, together=True), ok_stream()])
    client = clients(is_async, srv.url, waits)
    with pytest.raises(ck.OverloadedError) as ei:
        await read_stream(client, MODEL)
    assert ei.value.message == "The model is overloaded."
    assert ei.value.status == 503
    assert "".join(c.text or "" for c in ei.value.partial) == "Hel"  # type: ignore[attr-defined]
    assert waits.waits == []
    assert srv.hits == 1
    assert ledger_outcomes(client) == [("error", 503, "OverloadedError")]


# ============================================================================================= routing: fallback


@both
async def test_gemini_failing_falls_back_to_another_provider(faults: Any, clients: Any, waits: Waits,
                                                             is_async: bool) -> None:
    a = faults(gemini_error(503, "UNAVAILABLE"))
    b = faults(chat("from backup", model="gpt-4o-mini"))
    client = clients(is_async, a.url, waits, backup_url=b.url, max_retries=1)
    r = await run(client.complete([MODEL, "backup:gpt-4o-mini"], "hi"))
    assert r.text == "from backup"
    assert [(x.provider, x.outcome, x.status) for x in r.attempts] == [
        ("gemini", "error", 503), ("gemini", "error", 503), ("backup", "success", None)]
    assert (a.hits, b.hits) == (2, 1)
    assert waits.waits == BACKOFF[:1]


# ============================================================================================= 27: the canary key


def echo_key(srv: Any, req: Any, sock: Any) -> bool:
    """A 400 that reflects the request's x-goog-api-key in a header and in the error message."""
    key = req.headers.get("x-goog-api-key", "")
    body = {"error": {"code": 400, "message": f"API key not valid: {key}", "status": "INVALID_ARGUMENT",
                      "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                                   "metadata": {"key": key}}]}}
    return Reply(400, body, {"x-echo-key": key, "x-request-id": key})(srv, req, sock)


@both
async def test_canary_key_never_leaks(faults: Any, clients: Any, waits: Waits, is_async: bool,
                                      caplog: pytest.LogCaptureFixture) -> None:
    srv = faults([echo_key, SSE([answer("Hel", finish=False, usage=False),
                                 {"error": {"code": 400, "message": f"bad key {KEY}", "status": "INVALID_ARGUMENT"}}])])
    client = clients(is_async, srv.url, waits)
    texts: list[str] = []
    with caplog.at_level("DEBUG"):
        with pytest.raises(ck.BadRequestError) as ei:
            await run(client.complete(MODEL, "hi"))
        texts += [str(ei.value), repr(ei.value), repr(ei.value.body), repr(ei.value.headers)]
        with pytest.raises(ck.BadRequestError) as ei2:
            await read_stream(client, MODEL)
        texts += [str(ei2.value), repr(ei2.value), repr(ei2.value.body)]
    assert srv.requests[0].headers["x-goog-api-key"] == KEY  # it was sent, to its own origin only, in a header
    assert all(KEY not in r.path for r in srv.requests)
    texts += [r.getMessage() for r in caplog.records]
    texts += [repr(row.as_dict()) for row in client.ledger.rows()]
    for text in texts:
        assert KEY not in text, text[:300]
    assert "**********" in str(ei.value)  # masked where the server echoed it
