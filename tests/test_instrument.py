"""``ck.instrument(client)``: vendor SDK clients, metered at their HTTP transport.

Each SDK runs for real (its own request building, retries and stream parsing); under it, a mock transport of the
SDK's own HTTP library answers, its body handed over in pieces like a socket's, so that the tee under test sees
the bytes as the SDK reads them. Prices come from computekit's tables: each row's cost is compared with what the
same answer costs through ``ck.Client`` (the adapter's own path), never with a constant.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import sqlite3
import threading
import warnings
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

import computekit as ck
from computekit._instrument_meter import _library
from computekit.ledger import SQLiteLedger

openai = pytest.importorskip("openai")


def sdk(name: str) -> Any:
    """A vendor SDK, imported for the test that needs it (skipped where it is not installed)."""
    return pytest.importorskip(name)


both = pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
KEY = "sk-instrument-0123456789abcdef"
USAGE = {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
CHAT = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}, "finish_reason": "stop"}],
        "usage": USAGE}
MESSAGES = [{"role": "user", "content": "hi"}]


def _chunk(delta: dict[str, Any], finish: str | None = None, usage: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
            "choices": [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}], "usage": usage}


def chat_sse(usage: bool = True) -> list[bytes]:
    events = [_chunk({"role": "assistant", "content": "hel"}), _chunk({"content": "lo"}), _chunk({}, "stop")]
    if usage:
        events.append(_chunk({}, usage=USAGE))
    return [f"data: {json.dumps(e)}\n\n".encode() for e in events] + [b"data: [DONE]\n\n"]


class Reply:
    """One answer of the mock server: its status, headers and body pieces."""

    def __init__(self, status: int = 200, body: Any = None, pieces: list[bytes] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        self.status, self.headers = status, dict(headers or {})
        if pieces is None:
            pieces = [json.dumps(body).encode()]
            self.headers.setdefault("content-type", "application/json")
        else:
            self.headers.setdefault("content-type", "text/event-stream")
        self.pieces = pieces


class Server:
    """Answers in order; records each request. ``lib``: the SDK's HTTP library (``httpx`` or ``httpx2``)."""

    def __init__(self, lib: Any, replies: list[Reply]) -> None:
        self.lib, self.replies, self.requests = lib, list(replies), []
        self.read: list[int] = []

        class Pieces(lib.SyncByteStream, lib.AsyncByteStream):  # type: ignore[misc,name-defined]
            def __init__(self, pieces: list[bytes], read: list[int]) -> None:
                self.pieces, self.read = pieces, read

            def __iter__(self) -> Iterator[bytes]:
                for p in self.pieces:
                    self.read[-1] += 1
                    yield p

            async def __aiter__(self) -> AsyncIterator[bytes]:
                for p in self.pieces:
                    self.read[-1] += 1
                    yield p

        self._pieces = Pieces

    def __call__(self, request: Any) -> Any:
        self.requests.append(request)
        reply = self.replies.pop(0)
        self.read.append(0)
        return self.lib.Response(reply.status, headers=reply.headers, stream=self._pieces(reply.pieces, self.read))

    @property
    def hits(self) -> int:
        return len(self.requests)


def _lib_of(vendor: str) -> Any:
    """The HTTP library the SDK's default client comes from (``httpx2`` for openai/anthropic today)."""
    if vendor == "cohere":
        return httpx
    return _library((openai.OpenAI if vendor == "openai" else sdk("anthropic").Anthropic)(api_key=KEY)._client)


def sdk_client(vendor: str, server: Server, is_async: bool, **kwargs: Any) -> Any:
    lib = server.lib
    http = (lib.AsyncClient if is_async else lib.Client)(transport=lib.MockTransport(server))
    if vendor == "openai":
        cls = openai.AsyncOpenAI if is_async else openai.OpenAI
        return cls(api_key=KEY, http_client=http, **kwargs)
    if vendor == "azure":
        cls = openai.AsyncAzureOpenAI if is_async else openai.AzureOpenAI
        return cls(api_key=KEY, http_client=http, azure_endpoint="https://res.openai.azure.com",
                   api_version="2024-10-21", **kwargs)
    if vendor == "anthropic":
        cls = sdk("anthropic").AsyncAnthropic if is_async else sdk("anthropic").Anthropic
        return cls(api_key=KEY, http_client=http, **kwargs)
    cls = sdk("cohere").AsyncClientV2 if is_async else sdk("cohere").ClientV2
    return cls(api_key=KEY, httpx_client=http, **kwargs)


def ck_client(tmp_path: Any, **settings: Any) -> ck.Client:
    return ck.Client(config=None, ledger=f"sqlite:///{tmp_path / 'ck.db'}", **settings)


async def run(value: Any) -> Any:
    return await value if asyncio.iscoroutine(value) else value


async def drain(stream: Any) -> list[Any]:
    if hasattr(stream, "__aiter__"):
        return [c async for c in stream]
    return list(stream)


def ck_cost(tmp_path: Any, provider_model: str, reply: Reply, stream: bool = False, verb: str = "complete",
            prices: dict[str, Any] | None = None, **kwargs: Any) -> Decimal | None:
    """What the same answer costs through computekit's own client (its adapter, its prices)."""
    server = Server(httpx, [reply])
    provider = provider_model.split(":")[0]
    client = ck.Client(config=None, ledger="none", providers={provider: {"api_key": KEY}}, prices=prices or {},
                       http_client=httpx.Client(transport=httpx.MockTransport(server)))
    if stream:
        with client.stream(provider_model, "hi", **kwargs) as s:
            for _ in s:
                pass
        return s.result.cost.total
    if verb == "embed":
        return client.embed(provider_model, "hi", **kwargs).cost.total
    if verb == "rerank":
        return client.rerank(provider_model, "q", ["a"], **kwargs).cost.total
    return client.complete(provider_model, "hi", **kwargs).cost.total


def metered(tmp_path: Any, vendor: str, replies: list[Reply], is_async: bool,
            **settings: Any) -> tuple[Server, ck.Client, Any]:
    """A mock server answering ``replies``, a computekit client with its own ledger, and the vendor's SDK client
    on that server, instrumented with it."""
    server = Server(_lib_of(vendor), replies)
    ckc = ck_client(tmp_path, **settings)
    return server, ckc, ck.instrument(sdk_client(vendor, server, is_async), using=ckc)


def rows(client: ck.Client) -> list[Any]:
    client._core.flush()
    return client.ledger.rows()



@pytest.fixture
def oai_lib() -> Any:
    return _lib_of("openai")


# --------------------------------------------------------------------------------------------- openai


@both
async def test_openai_chat_is_priced_like_ck_complete_and_tagged(tmp_path: Any, oai_lib: Any, is_async: bool) -> None:
    reply = Reply(body=CHAT, headers={"x-request-id": "req_abc"})
    _server, ckc, client = metered(tmp_path, "openai", [reply], is_async)
    with ck.tags(feature="search", customer="acme"):
        answer = await run(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=50))
    assert answer.choices[0].message.content == "hello"  # the application's answer, untouched
    [row] = rows(ckc)
    assert (row.verb, row.provider, row.model, row.outcome) == ("complete", "openai", "gpt-4o-mini", "success")
    assert (row.input_tokens, row.output_tokens, row.request_id) == (12, 5, "req_abc")
    assert row.tags == {"feature": "search", "customer": "acme"}
    expected = ck_cost(tmp_path, "openai:gpt-4o-mini", Reply(body=CHAT), max_tokens=50)
    assert expected is not None
    assert row.cost == expected
    assert ckc.ledger.report(by="tag:customer").rows[0].key == "acme"


def test_the_docs_example_as_written(tmp_path: Any, oai_lib: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """``ck.instrument(openai.OpenAI())`` on the module-level client, tags, then ``ck.ledger().report(...)``."""
    from computekit import _defaults

    monkeypatch.setattr(_defaults, "_sync", ck_client(tmp_path))
    client = ck.instrument(sdk_client("openai", Server(oai_lib, [Reply(body=CHAT), Reply(body=CHAT)]), False))
    for customer in ("acme", "globex"):
        with ck.tags(feature="search", customer=customer):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    report = ck.ledger().report(by="tag:customer")
    one = ck_cost(tmp_path, "openai:gpt-4o-mini", Reply(body=CHAT))
    assert one is not None
    assert {(r.key, r.cost) for r in report.rows} == {("acme", one), ("globex", one)}
    assert report.total == 2 * one


RESPONSE = {"id": "resp_1", "object": "response", "created_at": 1, "status": "completed", "model": "gpt-4o-mini",
            "output": [{"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
                        "content": [{"type": "output_text", "text": "hello", "annotations": []}]}],
            "usage": {"input_tokens": 12, "output_tokens": 5, "total_tokens": 17,
                      "input_tokens_details": {"cached_tokens": 4}, "output_tokens_details": {"reasoning_tokens": 0}}}


def responses_sse() -> list[bytes]:
    events = [("response.created", {"type": "response.created", "sequence_number": 0,
                                    "response": {**RESPONSE, "status": "in_progress", "output": [], "usage": None}}),
              ("response.output_text.delta", {"type": "response.output_text.delta", "sequence_number": 1,
                                              "item_id": "msg_1", "output_index": 0, "content_index": 0,
                                              "delta": "hello"}),
              ("response.completed", {"type": "response.completed", "sequence_number": 2, "response": RESPONSE})]
    return [f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in events]


@both
@pytest.mark.parametrize("stream", [False, True], ids=["answer", "stream"])
async def test_openai_responses_are_priced_like_ck_complete_on_the_responses_api(
        tmp_path: Any, oai_lib: Any, is_async: bool, stream: bool) -> None:
    reply = Reply(pieces=responses_sse()) if stream else Reply(body=RESPONSE)
    _server, ckc, client = metered(tmp_path, "openai", [reply], is_async)
    with ck.tags(customer="acme"):
        if stream:
            got = await drain(await run(client.responses.create(model="gpt-4o-mini", input="hi", stream=True)))
            assert got[-1].type == "response.completed"
        else:
            answer = await run(client.responses.create(model="gpt-4o-mini", input="hi", instructions="be brief"))
            assert answer.output_text == "hello"
    [row] = rows(ckc)
    assert (row.model, row.outcome, row.tags) == ("gpt-4o-mini", "success", {"customer": "acme"})
    assert row.verb == ("stream" if stream else "complete")  # the verbs of ck.stream() and ck.complete()
    assert (row.input_tokens, row.cached_input_tokens, row.output_tokens) == (12, 4, 5)
    again = Reply(pieces=responses_sse()) if stream else Reply(body=RESPONSE)
    expected = ck_cost(tmp_path, "openai:gpt-4o-mini", again, stream=stream, api="responses")
    assert expected is not None
    assert row.cost == expected


@both
async def test_each_openai_route_is_read_as_its_own_wire_whatever_the_api_setting(
        tmp_path: Any, oai_lib: Any, is_async: bool) -> None:
    """``api = "responses"`` in computekit's settings picks the wire of computekit's own calls; an SDK's chat
    completion is still a chat completion."""
    _server, ckc, client = metered(tmp_path, "openai", [Reply(body=CHAT)], is_async,
                                   providers={"openai": {"api": "responses"}})
    await run(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES))
    [row] = rows(ckc)
    assert (row.outcome, row.input_tokens, row.cost) == (
        "success", 12, ck_cost(tmp_path, "openai:gpt-4o-mini", Reply(body=CHAT), api="chat"))


@both
async def test_a_responses_call_is_held_to_the_budget_before_it_is_sent(
        tmp_path: Any, oai_lib: Any, is_async: bool) -> None:
    server = Server(oai_lib, [Reply(body=RESPONSE)])
    ckc = ck_client(tmp_path, budget={"limit_usd": "0.000001", "period": "day"})
    client = ck.instrument(sdk_client("openai", server, is_async), using=ckc)
    with pytest.raises(ck.BudgetExceededError):
        await run(client.responses.create(model="gpt-4o-mini", input="hi", max_output_tokens=1000))
    assert server.hits == 0


def _spy_on(ckc: ck.Client, method: str) -> list[int]:
    """The threads that call ``ckc``'s ledger's ``method`` (record, settle), in order."""
    calls: list[int] = []
    ledger = ckc._core.ledger
    write = getattr(ledger, method)

    def spy(*args: Any) -> None:
        calls.append(threading.get_ident())
        write(*args)

    setattr(ledger, method, spy)
    return calls


@both
async def test_answers_are_recorded_in_batches_once_each_and_under_a_budget_at_once(
        tmp_path: Any, oai_lib: Any, is_async: bool) -> None:
    """Without a budget an answer's bookkeeping waits for a batch of them (done on the caller's thread) or for the
    ledger's next commit (its writer thread), whichever comes first, and each is recorded once, with the latency
    of its own call; under a budget it is settled before the call returns."""
    from computekit._instrument_meter import _BATCH

    n = _BATCH + 2
    replies = [Reply(body=CHAT, headers={"x-request-id": f"req_{i}"}) for i in range(n)]
    # A long flush interval: the writer's own commit does not come during the calls, only at the read.
    ckc = ck.Client(config=None, ledger={"url": f"sqlite:///{tmp_path / 'b.db'}", "flush_interval": 30.0})
    client = ck.instrument(sdk_client("openai", Server(oai_lib, replies), is_async), using=ckc)
    recorded_on = _spy_on(ckc, "record")
    await run(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES))
    assert recorded_on == []  # not yet: kept for the batch
    for _ in range(n - 1):
        await run(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES))
    assert recorded_on == [threading.get_ident()] * _BATCH  # the full batch, on the caller's thread
    got = rows(ckc)  # the two left: by the writer, at the read's flush
    assert sorted(r.request_id or "" for r in got) == sorted(f"req_{i}" for i in range(n))
    assert len(recorded_on) == n
    expected = ck_cost(tmp_path, "openai:gpt-4o-mini", Reply(body=CHAT))
    assert {r.cost for r in got} == {expected}
    assert max(r.latency_ms for r in got) < 1000
    ckc.close()

    _server, ckc, client = metered(tmp_path / "budget", "openai", [Reply(body=CHAT)], is_async,
                                   budget={"limit_usd": "5", "period": "day"})
    settled_on = _spy_on(ckc, "settle")
    await run(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES))
    assert settled_on == [threading.get_ident()]  # settled before the call returned
    ckc.close()


@pytest.mark.parametrize(("body", "read_now"), [
    (b'{"model": "gpt-4o-mini", "messages": []}', False),
    (b'{"model": "gpt-4o-mini", "messages": [], "stream": false}', False),
    (b'{"model": "gpt-4o-mini", "messages": [], "stream": true}', True),
    (b'{"model": "gpt-4o-mini", "messages": [], "stream" :1}', True),
    (b'{"model": "gpt-4o-mini", "messages": [], "stream": null}', False),
    (b'{"model": "gpt-4o-mini", "messages": [], "\\u0073tream": true}', True),
    (b'{"model": "gpt-4o-mini", "input": "hi", "background": true}', True),
    (b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "caf\\u00e9"}]}', False),
], ids=["plain", "stream-false", "stream", "stream-1", "stream-null", "escaped-key", "background", "escaped-text"])
def test_a_body_is_read_at_once_only_when_its_answer_needs_it(tmp_path: Any, oai_lib: Any, body: bytes,
                                                              read_now: bool) -> None:
    """Without a budget, a request's body is read with its answer's deferred bookkeeping, unless it may ask for
    a stream (decoded as it arrives) or a background response (which later looks must find): then at once. Read
    late or at once, it reads as the same request."""
    from computekit._instrument_meter import _Meter
    from computekit._instrument_sdks import SDKS

    ckc = ck_client(tmp_path)
    meter = _Meter(ckc._core, SDKS["openai"])
    path = "/v1/responses" if b"background" in body else "/v1/chat/completions"
    url = oai_lib.URL(f"https://api.openai.com{path}")
    t = meter.begin("POST", url, lambda: body)
    assert t is not None
    assert (t.unread is None) == read_now
    eager_target, eager_req = meter.read(t.route, url, body)
    assert (t.target.model, t.req) == (eager_target.model, eager_req)
    assert t.unread is None  # read on first use
    ckc.close()
    under_budget = ck_client(tmp_path / "budget", budget={"limit_usd": "5", "period": "day"})
    t = _Meter(under_budget._core, SDKS["openai"]).begin("POST", url, lambda: body)
    assert t is not None
    assert t.unread is None  # its worst case is reserved before it is sent: read at once
    under_budget.close()


@both
async def test_a_body_read_late_keeps_the_time_it_was_sent_and_one_it_cannot_read_is_billed_unpriced(
        tmp_path: Any, oai_lib: Any, is_async: bool) -> None:
    """A deferred try is recorded with the time it was sent, whenever its bookkeeping runs; a body computekit
    cannot read as a request (the SDK sent it, the provider billed it) is recorded unpriced, and the call goes on;
    a stream asked for with an escaped key is still decoded as it arrives."""
    import datetime as dt

    replies = [Reply(body=CHAT, headers={"x-request-id": "req_late"}), Reply(body=CHAT),
               Reply(pieces=chat_sse())]
    _server, ckc, client = metered(tmp_path, "openai", replies, is_async)
    before = dt.datetime.now(dt.UTC)
    await run(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES))
    sent_by = dt.datetime.now(dt.UTC)
    http = client._client  # the SDK's own HTTP client (metered): bodies the SDK itself would never build
    unreadable = b'{"model": "gpt-4o-mini", "messages": 5}'
    answer = await run(http.post("https://api.openai.com/v1/chat/completions", content=unreadable))
    if is_async:
        await answer.aread()
    assert answer.json()["choices"][0]["message"]["content"] == "hello"
    escaped = b'{"model": "gpt-4o-mini", "messages": [], "\\u0073tream": true, "stream_options": {"include_usage": 1}}'
    if is_async:
        async with http.stream("POST", "https://api.openai.com/v1/chat/completions", content=escaped) as r:
            [_ async for _ in r.aiter_bytes()]
    else:
        with http.stream("POST", "https://api.openai.com/v1/chat/completions", content=escaped) as r:
            list(r.iter_bytes())
    late, unpriced, stream = rows(ckc)
    assert late.request_id == "req_late"
    assert before <= late.ts <= sent_by
    expected = ck_cost(tmp_path, "openai:gpt-4o-mini", Reply(body=CHAT))
    assert expected is not None
    assert late.cost == expected
    assert (unpriced.model, unpriced.outcome, unpriced.input_tokens, unpriced.cost) == ("gpt-4o-mini", "success", 0,
                                                                                         None)
    assert (stream.verb, stream.input_tokens, stream.output_tokens) == ("stream", 12, 5)
    assert stream.cost == ck_cost(tmp_path, "openai:gpt-4o-mini", Reply(pieces=chat_sse()), stream=True)
    ckc.close()


def test_a_pending_answer_is_written_within_the_flush_interval_without_a_read(tmp_path: Any, oai_lib: Any) -> None:
    """Nobody reads and no batch fills: the ledger's writer still records the answer with its next commit."""
    import time

    db = tmp_path / "w.db"
    ckc = ck.Client(config=None, ledger={"url": f"sqlite:///{db}", "flush_interval": 0.05})
    client = ck.instrument(sdk_client("openai", Server(oai_lib, [Reply(body=CHAT)]), False), using=ckc)
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    other = ck.Client(config=None, ledger=f"sqlite:///{db}").ledger  # another connection: no flush of the writer
    deadline = time.monotonic() + 10
    while not other.rows() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [(r.outcome, r.input_tokens) for r in other.rows()] == [("success", 12)]
    ckc.close()


def test_a_forked_child_does_not_record_its_parents_pending_answers(tmp_path: Any, oai_lib: Any) -> None:
    import os

    from computekit._instrument_meter import _BATCH

    server = Server(oai_lib, [Reply(body=CHAT, headers={"x-request-id": f"req_{i}"}) for i in range(_BATCH + 1)])
    ckc = ck_client(tmp_path)
    client = ck.instrument(sdk_client("openai", server, False), using=ckc)
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # pending in the parent
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child: its calls are recorded at once (its writer thread is gone)
        try:
            for _ in range(_BATCH):
                client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    ids = [r.request_id for r in rows(ckc)]
    assert sorted(ids) == sorted(f"req_{i}" for i in range(_BATCH + 1))  # each once: the parent's by the parent
    ckc.close()


def test_pending_answers_are_recorded_at_exit(tmp_path: Any) -> None:
    """A script whose last answers are still pending when it ends (no flush, no close) loses none."""
    import subprocess
    import sys

    db = tmp_path / "exit.db"
    code = (
        "import httpx2, json, openai\n"
        "import computekit as ck\n"
        f"body = json.dumps({CHAT!r}).encode()\n"
        "answer = lambda request: httpx2.Response(200, content=body, headers={'content-type': 'application/json'})\n"
        "sdk = openai.OpenAI(api_key='sk-x', http_client=httpx2.Client(transport=httpx2.MockTransport(answer)))\n"
        f"client = ck.instrument(sdk, using=ck.Client(config=None, ledger='sqlite:///{db}'))\n"
        "for _ in range(5):\n"
        "    client.chat.completions.create(model='gpt-4o-mini', messages=[{'role': 'user', 'content': 'hi'}])\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    ledger = ck.Client(config=None, ledger=f"sqlite:///{db}").ledger
    got = ledger.rows()
    assert [(r.outcome, r.input_tokens) for r in got] == [("success", 12)] * 5
    assert {r.cost for r in got} == {ck_cost(tmp_path, "openai:gpt-4o-mini", Reply(body=CHAT))}


@both
async def test_openai_stream_is_passed_through_as_it_arrives_and_priced_at_its_end(
        tmp_path: Any, oai_lib: Any, is_async: bool) -> None:
    server, ckc, client = metered(tmp_path, "openai", [Reply(pieces=chat_sse())], is_async)
    stream = await run(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True,
                                                      stream_options={"include_usage": True}))
    it = stream.__aiter__() if is_async else iter(stream)
    first = await it.__anext__() if is_async else next(it)
    assert first.choices[0].delta.content == "hel"
    assert server.read == [1]  # teed, not buffered: only what the SDK asked for has been read
    assert rows(ckc) == []  # priced when it ends
    rest = [c async for c in it] if is_async else list(it)
    assert "".join(c.choices[0].delta.content or "" for c in rest if c.choices) == "lo"
    [row] = rows(ckc)
    assert (row.verb, row.outcome, row.input_tokens, row.output_tokens) == ("stream", "success", 12, 5)
    assert row.cost == ck_cost(tmp_path, "openai:gpt-4o-mini", Reply(pieces=chat_sse()), stream=True)


@both
@pytest.mark.parametrize("stream", [False, True], ids=["answer", "stream"])
async def test_a_compressed_answer_is_priced_from_the_body_the_sdk_reads(tmp_path: Any, oai_lib: Any, is_async: bool,
                                                                         stream: bool) -> None:
    """Providers compress what they send (``Content-Encoding: gzip``): the transport's bytes are the compressed
    ones, and the adapter reads them decoded, as the SDK does."""
    plain = b"".join(chat_sse()) if stream else json.dumps(CHAT).encode()
    packed = gzip.compress(plain)
    headers = {"content-encoding": "gzip", "content-type": "text/event-stream" if stream else "application/json"}
    _server, ckc, client = metered(tmp_path, "openai", [Reply(pieces=[packed[:25], packed[25:]], headers=headers)],
                                   is_async)
    if stream:
        chunks = await drain(await run(client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True})))
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "hello"
    else:
        answer = await run(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES))
        assert answer.choices[0].message.content == "hello"
    [row] = rows(ckc)
    assert (row.outcome, row.input_tokens, row.output_tokens) == ("success", 12, 5)
    expected = ck_cost(tmp_path, "openai:gpt-4o-mini", Reply(pieces=chat_sse()) if stream else Reply(body=CHAT),
                       stream=stream)
    assert expected is not None
    assert row.cost == expected


@both
async def test_openai_embeddings_asked_in_base64_as_the_sdk_asks_by_default_are_priced(
        tmp_path: Any, oai_lib: Any, is_async: bool) -> None:
    """The openai SDK asks for ``encoding_format="base64"`` unless told otherwise (the spec's request documents
    ``float`` or ``base64``): each vector comes as the base64 of its little-endian float32s, which the adapter
    reads as the SDK does, not as a malformed answer."""
    import base64
    import struct

    vector = [0.25, -0.5, 1.0]
    packed = base64.b64encode(struct.pack("<3f", *vector)).decode()
    floats = {"object": "list", "model": "text-embedding-3-small", "usage": {"prompt_tokens": 5, "total_tokens": 5},
              "data": [{"object": "embedding", "index": 0, "embedding": vector}]}
    answer = {**floats, "data": [{"object": "embedding", "index": 0, "embedding": packed}]}
    server, ckc, client = metered(tmp_path, "openai", [Reply(body=answer)], is_async)
    got = await run(client.embeddings.create(model="text-embedding-3-small", input="hello"))
    assert json.loads(server.requests[0].content)["encoding_format"] == "base64"
    assert got.data[0].embedding == vector
    [row] = rows(ckc)
    assert (row.verb, row.outcome, row.input_tokens) == ("embed", "success", 5)
    expected = ck_cost(tmp_path, "openai:text-embedding-3-small", Reply(body=floats), verb="embed")
    assert expected is not None
    assert row.cost == expected


@both
async def test_a_stream_that_did_not_ask_for_usage_is_unpriced_and_said_once(
        tmp_path: Any, oai_lib: Any, is_async: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The request is sent as the application wrote it (no usage asked for on its behalf: the extra chunk, with
    no choices, would break ``chunk.choices[0]``); the stream is recorded with an unknown cost, never 0, and the
    fix is named once per model."""
    from computekit import _instrument_meter

    monkeypatch.setattr(_instrument_meter, "_TOLD", set())
    server, ckc, client = metered(tmp_path, "openai", [Reply(pieces=chat_sse(usage=False))] * 2, is_async)
    with pytest.warns(ck.UnknownPriceWarning, match=r'openai:gpt-4o-mini: .*stream_options=\{"include_usage": True\}'):
        chunks = await drain(await run(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES,
                                                                      stream=True)))
    assert all(c.choices for c in chunks)  # what the application reads is what the server sent
    assert "stream_options" not in json.loads(server.requests[0].content)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once
        await drain(await run(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)))
    assert [(r.verb, r.outcome, r.cost, r.output_tokens) for r in rows(ckc)] == [("stream", "success", None, 0)] * 2


@both
async def test_a_stream_the_application_stops_reading_is_recorded_as_canceled(
        tmp_path: Any, oai_lib: Any, is_async: bool) -> None:
    _server, ckc, client = metered(tmp_path, "openai", [Reply(pieces=chat_sse())], is_async)
    stream = await run(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    if is_async:
        await stream.__aiter__().__anext__()
        await stream.close()
    else:
        next(iter(stream))
        stream.close()
    [row] = rows(ckc)
    assert (row.verb, row.outcome, row.cost) == ("stream", "canceled", None)


@both
@pytest.mark.parametrize("call", ["answer-under-a-budget", "stream", "stream-closed", "error"])
async def test_a_bookkeeping_failure_never_breaks_the_sdks_call(tmp_path: Any, oai_lib: Any, is_async: bool,
                                                                call: str, caplog: pytest.LogCaptureFixture) -> None:
    """The ledger failing as an answer is recorded (its store down: a disk error) leaves the application its SDK
    call's own result (or the SDK's own error), not computekit's exception; the failure is logged."""
    import sqlite3

    error = {"error": {"message": "overloaded", "type": "server_error"}}
    reply = {"stream": Reply(pieces=chat_sse()), "stream-closed": Reply(pieces=chat_sse()),
             "error": Reply(500, error)}.get(call, Reply(body=CHAT))
    budget = {"budget": {"limit_usd": "5", "period": "day"}} if call == "answer-under-a-budget" else {}
    server, ckc, client = metered(tmp_path, "openai", [reply], is_async, **budget)
    client = client.with_options(max_retries=0)

    def broken(*args: Any) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    for method in ("record", "settle"):
        setattr(ckc._core.ledger, method, broken)
    create = client.chat.completions.create
    if call == "error":
        with pytest.raises(openai.InternalServerError):
            await run(create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=10))
    elif call == "stream-closed":
        stream = await run(create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
        it = stream.__aiter__() if is_async else iter(stream)
        await (it.__anext__() if is_async else run(next(it)))
        await run(stream.close())
    elif call == "stream":
        chunks = await drain(await run(create(model="gpt-4o-mini", messages=MESSAGES, stream=True,
                                              stream_options={"include_usage": True})))
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "hello"
    else:
        answer = await run(create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=10))
        assert answer.choices[0].message.content == "hello"
    assert server.hits == 1
    assert "disk I/O error" in caplog.text
    assert "bookkeeping" in caplog.text


@both
async def test_a_request_stopped_by_its_caller_after_it_was_sent_is_recorded_as_canceled(
        tmp_path: Any, oai_lib: Any, is_async: bool) -> None:
    """A task canceled (or a ``KeyboardInterrupt``) while the request is out: it may be billed, so it is a
    ``canceled`` row of unknown cost, as computekit's own calls record it, and its reservation is settled."""
    sent = asyncio.Event()

    class Hang(oai_lib.BaseTransport, oai_lib.AsyncBaseTransport):  # type: ignore[misc,name-defined]
        def handle_request(self, request: Any) -> Any:
            raise KeyboardInterrupt

        async def handle_async_request(self, request: Any) -> Any:
            sent.set()
            await asyncio.sleep(30)

    ckc = ck_client(tmp_path, budget={"limit_usd": "5", "period": "day"})
    http = (oai_lib.AsyncClient if is_async else oai_lib.Client)(transport=Hang())
    cls = openai.AsyncOpenAI if is_async else openai.OpenAI
    client = ck.instrument(cls(api_key=KEY, http_client=http, max_retries=0), using=ckc)
    call = client.chat.completions.create
    if is_async:
        task = asyncio.ensure_future(call(model="gpt-4o-mini", messages=MESSAGES, max_tokens=10))
        await sent.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    else:
        with pytest.raises(KeyboardInterrupt):
            call(model="gpt-4o-mini", messages=MESSAGES, max_tokens=10)
    [row] = rows(ckc)
    assert (row.verb, row.outcome, row.cost) == ("complete", "canceled", None)
    assert ckc.budget_status()["default"].reserved == 0


def _within(seconds: float, done: Any) -> None:
    """Wait until ``done()`` (something another thread does), for at most ``seconds``."""
    import time

    deadline = time.monotonic() + seconds
    while not done() and time.monotonic() < deadline:
        time.sleep(0.01)


def _rows_within(client: ck.Client, seconds: float, count: int = 1) -> list[Any]:
    """The ledger's rows once there are ``count`` (written by another thread), or after ``seconds``."""
    _within(seconds, lambda: len(rows(client)) >= count)
    return rows(client)


@both
async def test_a_stream_the_application_drops_unread_and_unclosed_is_recorded_as_canceled(
        tmp_path: Any, oai_lib: Any, is_async: bool) -> None:
    """Billed, though nobody reads it nor closes it: a ``canceled`` row when it is collected; a forked child
    that collects its parent's never writes its parent's row."""
    import gc
    import os

    _server, ckc, client = metered(tmp_path, "openai", [Reply(pieces=chat_sse())] * 2, is_async)
    stream = await run(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    other = await run(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            del other
            gc.collect()
            _rows_within(ckc, 0.2)  # what the child would have recorded, written
        finally:
            os._exit(0)
    await asyncio.to_thread(os.waitpid, pid, 0)
    del stream
    gc.collect()
    [row] = _rows_within(ckc, 10)  # recorded by the reaper thread (a finalizer must not take the ledger's locks)
    assert (row.verb, row.outcome, row.cost) == ("stream", "canceled", None)


def test_a_stream_collected_inside_the_ledgers_own_code_is_recorded_without_reentering_it(
        tmp_path: Any, oai_lib: Any) -> None:
    """The garbage collector may run a dropped stream's finalizer anywhere, even inside the ledger's locked code
    on the same thread: recording it there would take that lock again (a deadlock with a real store's lock)."""
    import gc

    _server, ckc, client = metered(tmp_path, "openai", [Reply(pieces=chat_sse())] * 2, False)
    ledger = ckc._core.ledger
    lock, reentered = threading.Lock(), []
    write = ledger.record

    def record(row: Any) -> None:
        if not lock.acquire(timeout=1):  # taken already: by this thread, inside the collection below
            reentered.append(row)
            return
        try:
            gc.collect()  # a collection that finds the dropped stream, inside the ledger's "locked" code
            write(row)
        finally:
            lock.release()

    ledger.record = record
    gc.disable()  # the collection is the one in record(), nowhere before
    try:
        dropped = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
        cycle: list[Any] = [dropped]
        cycle.append(cycle)  # only the cyclic collector frees it
        del dropped, cycle
        assert list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    finally:
        gc.enable()
    got = _rows_within(ckc, 10, count=2)
    assert reentered == []
    assert sorted(r.outcome for r in got) == ["canceled", "success"]


async def test_a_call_canceled_while_its_reservation_is_made_off_the_loop_leaves_none_held(
        tmp_path: Any, oai_lib: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a ledger that waits on the network, the reservation is made in a worker thread; a task canceled
    meanwhile sends nothing, and the reservation the thread made is released, not left to count until its TTL."""
    import time

    from computekit._budget import Budgets

    monkeypatch.setattr(Budgets, "blocking", property(lambda self: bool(self.active)))  # as a remote ledger's
    server, ckc, client = metered(tmp_path, "openai", [Reply(body=CHAT)], True,
                                  budget={"limit_usd": "5", "period": "day"})
    ledger = ckc._core.ledger
    reserve, started = ledger.reserve, threading.Event()

    def slow(*args: Any, **kwargs: Any) -> Any:
        started.set()
        time.sleep(0.2)  # the round trip, in the worker thread
        return reserve(*args, **kwargs)

    ledger.reserve = slow
    task = asyncio.ensure_future(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES,
                                                                 max_tokens=10))
    await asyncio.to_thread(started.wait, 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The thread's reservation made, then released (by the loop's executor: waited for, within seconds).
    await asyncio.to_thread(_within, 10, lambda: ckc.budget_status()["default"].reserved == 0)
    assert server.hits == 0
    assert ckc.budget_status()["default"].reserved == 0


@both
@pytest.mark.parametrize("budget", [False, True], ids=["no-budget", "budget"])
async def test_each_sdk_retry_is_an_attempt(tmp_path: Any, oai_lib: Any, is_async: bool, budget: bool,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Each try the SDK sends (a 429, a 500, then the answer) is one row; under a budget each reserves before it
    is sent and is settled once, by its row."""
    monkeypatch.setattr(openai._base_client.BaseClient, "_calculate_retry_timeout", lambda *a, **k: 0)
    error = {"error": {"message": "overloaded", "type": "server_error"}}
    server = Server(oai_lib, [Reply(429, error), Reply(500, error), Reply(body=CHAT)])
    ckc = ck_client(tmp_path, **({"budget": {"limit_usd": "5", "period": "day"}} if budget else {}))
    client = ck.instrument(sdk_client("openai", server, is_async, max_retries=2), using=ckc)
    settled = _spy_on(ckc, "settle")
    await run(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=10))
    assert server.hits == 3
    got = rows(ckc)
    assert [(r.outcome, r.status) for r in got] == [("error", 429), ("error", 500), ("success", None)]
    if budget:
        assert len(settled) == 3
        assert all(r.reserved is not None and r.reserved > 0 for r in got)
        status = ckc.budget_status()["default"]
        assert (status.reserved, status.spent) == (0, got[-1].cost)
    else:
        assert settled == []


@both
async def test_a_budget_refuses_before_anything_is_sent(tmp_path: Any, oai_lib: Any, is_async: bool) -> None:
    server = Server(oai_lib, [Reply(body=CHAT)])
    ckc = ck_client(tmp_path, budget={"limit_usd": "0.000001", "period": "day"})
    client = ck.instrument(sdk_client("openai", server, is_async), using=ckc)
    with pytest.raises(ck.BudgetExceededError):
        await run(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=1000))
    assert server.hits == 0
    assert rows(ckc) == []


@both
async def test_a_reservation_the_ledger_cannot_make_is_a_ledger_error_the_sdk_catches_and_nothing_is_sent(
        tmp_path: Any, oai_lib: Any, is_async: bool) -> None:
    import openai

    class Locked(SQLiteLedger):
        def reserve(self, charges: Any, *, now: Any, ttl_s: float) -> str:
            raise sqlite3.OperationalError("database is locked")

    server = Server(oai_lib, [Reply(body=CHAT)])
    ckc = ck.Client(config=None, ledger=Locked(tmp_path / "ck.db"), budget={"limit_usd": "5", "period": "day"})
    client = ck.instrument(sdk_client("openai", server, is_async), using=ckc)
    with pytest.raises(ck.LedgerError) as caught:
        await run(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=10))
    assert isinstance(caught.value, openai.OpenAIError)  # what the application catches already catches it
    assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
    assert (caught.value.provider, caught.value.model) == ("openai", "gpt-4o-mini")
    assert server.hits == 0
    assert rows(ckc) == []


@both
async def test_a_budget_reserves_and_settles_with_the_row(tmp_path: Any, oai_lib: Any, is_async: bool) -> None:
    server = Server(oai_lib, [Reply(body=CHAT)])
    ckc = ck_client(tmp_path, budget={"limit_usd": "5", "period": "day"})
    client = ck.instrument(sdk_client("openai", server, is_async), using=ckc)
    await run(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=100))
    [row] = rows(ckc)
    assert row.reserved is not None
    assert row.reserved >= row.cost > 0
    status = ckc.budget_status()["default"]
    assert status.spent == row.cost
    assert status.reserved == 0


@both
async def test_unpriced_endpoints_pass_through(tmp_path: Any, oai_lib: Any, is_async: bool) -> None:
    image = {"created": 1, "data": [{"url": "https://example.com/a.png"}]}
    models = {"object": "list", "data": []}
    moderation = {"id": "m", "model": "omni-moderation-latest", "results": []}
    replies = [Reply(body=image), Reply(body=models), Reply(body=moderation)]
    _server, ckc, client = metered(tmp_path, "openai", replies, is_async)
    got = await run(client.images.generate(model="dall-e-3", prompt="a cat"))
    assert got.data[0].url == "https://example.com/a.png"
    await run(client.models.list())
    await run(client.moderations.create(input="hi"))
    [row] = rows(ckc)  # the image is billed: recorded, unpriced; the model list and the moderation are free
    assert (row.verb, row.model, row.outcome, row.cost) == ("images", "dall-e-3", "success", None)


# Answers authored from the examples of OpenAI's spec (``/responses/compact``, ``/videos``), validated against it.
COMPACTION = {"id": "resp_001", "object": "response.compaction", "created_at": 1764967971,
              "output": [{"id": "msg_000", "type": "message", "status": "completed", "role": "user",
                          "content": [{"type": "input_text", "text": "hi"}]},
                         {"id": "cmp_001", "type": "compaction", "encrypted_content": "gAAAAABpM0Yj-...="}],
              "usage": {"input_tokens": 139, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                        "output_tokens": 438, "output_tokens_details": {"reasoning_tokens": 64}, "total_tokens": 577}}
VIDEO = {"id": "video_123", "object": "video", "model": "sora-2", "status": "queued", "progress": 0,
         "created_at": 1712697600, "size": "1024x1792", "seconds": "8", "quality": "standard",
         "completed_at": None, "expires_at": None, "prompt": "a cat on a skateboard", "remixed_from_video_id": None,
         "error": None}


@both
@pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")
async def test_billed_endpoints_beyond_chat_are_recorded(tmp_path: Any, oai_lib: Any, is_async: bool) -> None:
    """A compaction (``responses.compact``) is billed by its usage: priced like a Responses answer with that
    usage; a video (``videos.create``) is billed by the second: recorded with an unknown cost (its body, a form
    that may carry a file, is not read: its model is unknown too)."""
    from test_background_client import load_spec
    from test_cassette_specs import errors

    spec = load_spec()
    assert errors(spec, "CompactResource", COMPACTION) == []
    assert errors(spec, "VideoResource", VIDEO) == []
    _server, ckc, client = metered(tmp_path, "openai", [Reply(body=COMPACTION), Reply(body=VIDEO)], is_async)
    compacted = await run(client.responses.compact(model="gpt-4o-mini", input=[{"role": "user", "content": "hi"}]))
    assert compacted.usage.output_tokens == 438
    video = await run(client.videos.create(model="sora-2", prompt="a cat on a skateboard"))
    assert video.status == "queued"
    compaction, videos = rows(ckc)
    assert (compaction.verb, compaction.outcome, compaction.input_tokens, compaction.output_tokens) == (
        "complete", "success", 139, 438)
    same_usage = {**RESPONSE, "usage": COMPACTION["usage"]}
    expected = ck_cost(tmp_path, "openai:gpt-4o-mini", Reply(body=same_usage), api="responses")
    assert expected is not None
    assert compaction.cost == expected
    assert (videos.verb, videos.model, videos.outcome, videos.cost) == ("videos", "unknown", "success", None)


def test_instrumenting_twice_records_once(tmp_path: Any, oai_lib: Any) -> None:
    server = Server(oai_lib, [Reply(body=CHAT)])
    ckc = ck_client(tmp_path)
    client = sdk_client("openai", server, False)
    assert ck.instrument(ck.instrument(client, using=ckc), using=ckc) is client
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert len(rows(ckc)) == 1


def test_a_client_metered_already_with_other_settings_is_refused_not_silently_kept(tmp_path: Any,
                                                                                    oai_lib: Any) -> None:
    """Its rows would go to the first ``using=``'s ledger, or (an Azure client sharing an OpenAI client's
    ``http_client``) be priced as the other SDK's: a clear error instead, and the first metering stays whole."""
    server = Server(oai_lib, [Reply(body=CHAT)])
    first, other = ck_client(tmp_path / "first"), ck_client(tmp_path / "other")
    client = ck.instrument(sdk_client("openai", server, False), using=first)
    with pytest.raises(ck.InvalidRequestError, match="metered already"):
        ck.instrument(client, using=other)
    azure = openai.AzureOpenAI(api_key=KEY, http_client=client._client, azure_endpoint="https://res.openai.azure.com",
                               api_version="2024-10-21")
    with pytest.raises(ck.InvalidRequestError, match="metered already"):
        ck.instrument(azure, using=first)
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert (len(rows(first)), rows(other)) == (1, [])


def test_a_subclass_of_an_sdk_client_is_the_sdk_client_it_extends() -> None:
    """An application's own subclass is recognised by the SDK class it extends, whatever its own name."""
    from computekit._instrument_sdks import sdk_of

    class Client(openai.AzureOpenAI):
        pass

    class AzureGateway(openai.OpenAI):  # an OpenAI client, whatever its name says
        pass

    azure = Client(api_key=KEY, azure_endpoint="https://res.openai.azure.com", api_version="2024-10-21")
    plain = AzureGateway(api_key=KEY)
    assert (getattr(sdk_of(azure), "name", None), getattr(sdk_of(plain), "name", None)) == ("azure", "openai")


def test_an_unknown_client_is_refused() -> None:
    with pytest.raises(ck.InvalidRequestError, match="does not know"):
        ck.instrument(httpx.Client())
    with pytest.raises(ck.InvalidRequestError, match="using="):
        ck.instrument(openai.OpenAI(api_key=KEY), using=object())


@both
async def test_azure_deployments_are_priced_as_their_model(tmp_path: Any, oai_lib: Any, is_async: bool) -> None:
    server = Server(oai_lib, [Reply(body=CHAT)])
    ckc = ck_client(tmp_path, providers={"azure": {"base_url": "https://res.openai.azure.com",
                                                   "deployments": {"gpt-4o-mini": "prod-mini"}}})
    client = ck.instrument(sdk_client("azure", server, is_async), using=ckc)
    await run(client.chat.completions.create(model="prod-mini", messages=MESSAGES))
    assert "/deployments/prod-mini/" in str(server.requests[0].url)
    [row] = rows(ckc)
    assert (row.provider, row.model) == ("azure", "gpt-4o-mini")
    assert row.cost is not None
    assert row.cost > 0


@both
async def test_azure_responses_are_priced_as_the_deployments_model(tmp_path: Any, oai_lib: Any,
                                                                   is_async: bool) -> None:
    """On Azure the Responses API names the deployment in the body's ``model`` (not in the URL)."""
    server = Server(oai_lib, [Reply(body=RESPONSE)])
    azure = {"base_url": "https://res.openai.azure.com", "deployments": {"gpt-4o-mini": "prod-mini"}}
    ckc = ck_client(tmp_path, providers={"azure": azure})
    client = ck.instrument(sdk_client("azure", server, is_async), using=ckc)
    await run(client.responses.create(model="prod-mini", input="hi"))
    assert "/deployments/" not in str(server.requests[0].url)
    [row] = rows(ckc)
    assert (row.provider, row.model, row.outcome) == ("azure", "gpt-4o-mini", "success")
    own = ck.Client(config=None, ledger="none", providers={"azure": {**azure, "api_key": KEY}},
                    http_client=httpx.Client(transport=httpx.MockTransport(Server(httpx, [Reply(body=RESPONSE)]))))
    expected = own.complete("azure:gpt-4o-mini", "hi", api="responses").cost.total
    assert expected is not None
    assert row.cost == expected


@both
@pytest.mark.parametrize("include_usage", [True, False], ids=["usage", "no-usage"])
async def test_azure_streams_through_the_real_azure_sdk(tmp_path: Any, oai_lib: Any, is_async: bool,
                                                        include_usage: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """``openai.AzureOpenAI`` / ``AsyncAzureOpenAI`` streaming from a deployment: teed as it arrives, priced as
    the deployment's model at its end, exactly as ``ck.stream()`` on Azure prices it (unknown without usage)."""
    from computekit import _instrument_meter

    monkeypatch.setattr(_instrument_meter, "_TOLD", set())
    azure = {"base_url": "https://res.openai.azure.com", "deployments": {"gpt-4o-mini": "prod-mini"}}
    server = Server(oai_lib, [Reply(pieces=chat_sse(usage=include_usage))])
    ckc = ck_client(tmp_path, providers={"azure": azure})
    client = ck.instrument(sdk_client("azure", server, is_async), using=ckc)
    options = {"stream_options": {"include_usage": True}} if include_usage else {}
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        stream = await run(client.chat.completions.create(model="prod-mini", messages=MESSAGES, stream=True,
                                                          **options))
        it = stream.__aiter__() if is_async else iter(stream)
        first = await it.__anext__() if is_async else next(it)
        assert (first.choices[0].delta.content, server.read) == ("hel", [1])  # teed, not buffered
        rest = [c async for c in it] if is_async else list(it)
    assert "".join(c.choices[0].delta.content or "" for c in rest if c.choices) == "lo"
    assert "/openai/deployments/prod-mini/chat/completions" in str(server.requests[0].url)
    [row] = rows(ckc)
    assert (row.verb, row.provider, row.model, row.outcome) == ("stream", "azure", "gpt-4o-mini", "success")
    own = ck.Client(config=None, ledger="none", providers={"azure": {**azure, "api_key": KEY}},
                    http_client=httpx.Client(transport=httpx.MockTransport(
                        Server(httpx, [Reply(pieces=chat_sse(usage=include_usage))]))))
    with own.stream("azure:gpt-4o-mini", "hi") as s:
        for _ in s:
            pass
    assert row.cost == s.result.cost.total
    if include_usage:
        assert row.cost is not None
        assert (row.cost > 0, row.output_tokens) == (True, 5)
        assert not [w for w in said if issubclass(w.category, ck.UnknownPriceWarning)]
    else:
        assert row.cost is None
        assert [str(w.message) for w in said if issubclass(w.category, ck.UnknownPriceWarning)] == [
            'azure:gpt-4o-mini: an instrumented stream that did not ask for its usage is recorded with an unknown '
            'cost (None). Pass stream_options={"include_usage": True} to the SDK call to have it priced.']


# ---------------------------------------------------------------------------------------- anthropic

CLAUDE = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-3-5-haiku-20241022",
          "content": [{"type": "text", "text": "hello"}], "stop_reason": "end_turn", "stop_sequence": None,
          "usage": {"input_tokens": 20, "output_tokens": 7}}


def claude_sse() -> list[bytes]:
    events = [
        ("message_start", {"type": "message_start", "message": {**CLAUDE, "content": [], "stop_reason": None,
                                                                "usage": {"input_tokens": 20, "output_tokens": 1}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": "hello"}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                           "usage": {"output_tokens": 7}}),
        ("message_stop", {"type": "message_stop"}),
    ]
    return [f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in events]


@both
async def test_anthropic_messages_sync_async_and_streamed(tmp_path: Any, oai_lib: Any, is_async: bool) -> None:
    lib = _lib_of("anthropic")
    server = Server(lib, [Reply(body=CLAUDE, headers={"request-id": "req_1"}), Reply(pieces=claude_sse())])
    ckc = ck_client(tmp_path)
    client = ck.instrument(sdk_client("anthropic", server, is_async), using=ckc)
    model = "claude-3-5-haiku-20241022"
    msg = await run(client.messages.create(model=model, max_tokens=100, messages=MESSAGES, system="be brief"))
    assert msg.content[0].text == "hello"
    stream = await run(client.messages.create(model=model, max_tokens=100, messages=MESSAGES, stream=True))
    events = await drain(stream)
    assert events[-1].type == "message_stop"
    complete, streamed = rows(ckc)
    assert (complete.verb, complete.provider, complete.input_tokens, complete.output_tokens) == (
        "complete", "anthropic", 20, 7)
    assert (streamed.verb, streamed.outcome, streamed.input_tokens, streamed.output_tokens) == (
        "stream", "success", 20, 7)
    expected = ck_cost(tmp_path, f"anthropic:{model}", Reply(body=CLAUDE), max_tokens=100)
    assert expected is not None
    assert complete.cost == expected == streamed.cost


# ------------------------------------------------------------------------------------------- cohere

COHERE_CHAT = {"id": "c1", "finish_reason": "COMPLETE",
               "message": {"role": "assistant", "content": [{"type": "text", "text": "hello"}]},
               "usage": {"billed_units": {"input_tokens": 9, "output_tokens": 4},
                         "tokens": {"input_tokens": 70, "output_tokens": 4}}}
COHERE_EMBED = {"id": "e1", "embeddings": {"float": [[0.1, 0.2]]}, "texts": ["hi"],
                "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": 3}}}
COHERE_RERANK = {"id": "r1", "results": [{"index": 0, "relevance_score": 0.9}],
                 "meta": {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}}}


@both
async def test_cohere_chat_embed_rerank(tmp_path: Any, is_async: bool) -> None:
    server = Server(httpx, [Reply(body=COHERE_CHAT), Reply(body=COHERE_EMBED), Reply(body=COHERE_RERANK)])
    prices = {"cohere:rerank-v3.5": {"search_units": "0.002"}, "cohere:embed-english-v3.0": {"input_mtok": "0.1"}}
    ckc = ck_client(tmp_path, prices=prices)
    client = ck.instrument(sdk_client("cohere", server, is_async), using=ckc)
    chat = await run(client.chat(model="command-r-08-2024", messages=MESSAGES))
    assert chat.message.content[0].text == "hello"
    await run(client.embed(model="embed-english-v3.0", texts=["hi"], input_type="search_query",
                           embedding_types=["float"]))
    await run(client.rerank(model="rerank-v3.5", query="q", documents=["a"]))
    chat_row, embed_row, rerank_row = rows(ckc)
    assert [r.verb for r in (chat_row, embed_row, rerank_row)] == ["complete", "embed", "rerank"]
    assert (chat_row.input_tokens, chat_row.output_tokens) == (9, 4)
    expected = ck_cost(tmp_path, "cohere:command-r-08-2024", Reply(body=COHERE_CHAT))
    assert expected is not None
    assert chat_row.cost == expected
    assert embed_row.cost == ck_cost(tmp_path, "cohere:embed-english-v3.0", Reply(body=COHERE_EMBED), verb="embed",
                                     prices=prices)
    assert rerank_row.cost == ck_cost(tmp_path, "cohere:rerank-v3.5", Reply(body=COHERE_RERANK), verb="rerank",
                                      prices=prices)
    assert (embed_row.input_tokens, rerank_row.cost) == (3, Decimal("0.002"))  # one search unit, as configured



@both
async def test_cohere_embeddings_of_other_types_than_float_are_priced(tmp_path: Any, is_async: bool) -> None:
    """An application may ask Cohere for compressed embeddings only (``int8``, ``ubinary``, ``base64`` ...): what
    is billed is the same input, priced from the answer's billed units, not recorded as a malformed answer."""
    prices = {"cohere:embed-english-v3.0": {"input_mtok": "0.1"}}
    typed = {**COHERE_EMBED, "embeddings": {"int8": [[12, -7]], "base64": ["AAAAAA=="]}}
    server = Server(httpx, [Reply(body=typed)])
    ckc = ck_client(tmp_path, prices=prices)
    client = ck.instrument(sdk_client("cohere", server, is_async), using=ckc)
    got = await run(client.embed(model="embed-english-v3.0", texts=["hi"], input_type="search_query",
                                 embedding_types=["int8", "base64"]))
    assert got.embeddings.int8 == [[12, -7]]
    [row] = rows(ckc)
    assert (row.verb, row.outcome, row.input_tokens) == ("embed", "success", 3)
    assert row.cost == ck_cost(tmp_path, "cohere:embed-english-v3.0", Reply(body=COHERE_EMBED), verb="embed",
                               prices=prices)


# ---------------------------------------------------------------------------------------- replicate

PREDICTION = {"id": "p1", "model": "acme/m", "version": "v", "input": {"prompt": "x"}, "logs": "", "output": None,
              "error": None, "status": "starting", "created_at": "2026-11-20T10:00:00.000Z",
              "urls": {"get": "https://api.replicate.com/v1/predictions/p1",
                       "cancel": "https://api.replicate.com/v1/predictions/p1/cancel"}}
ENDED = {**PREDICTION, "status": "succeeded", "output": "done", "metrics": {"predict_time": 1.5}}


@both
async def test_replicate_runs_are_recorded_once_when_they_end(tmp_path: Any, is_async: bool) -> None:
    from computekit.pricing import PriceBook

    server = Server(httpx, [Reply(201, PREDICTION), Reply(body={**PREDICTION, "status": "processing"}),
                            Reply(body=ENDED), Reply(body=ENDED)])
    ckc = ck_client(tmp_path, providers={"replicate": {"hardware": {"acme/m": "gpu-a40-large"}}})
    client = sdk("replicate").Client(api_token="r8_" + "x" * 30, transport=httpx.MockTransport(server))
    client.poll_interval = 0
    ck.instrument(client, using=ckc)
    with ck.tags(customer="acme"):
        if is_async:
            prediction = await client.models.predictions.async_create(model="acme/m", input={"prompt": "x"})
        else:
            prediction = client.models.predictions.create(model="acme/m", input={"prompt": "x"})
    assert rows(ckc) == []  # started, not ended: nothing to price yet
    await (prediction.async_wait() if is_async else run(prediction.wait()))
    await (prediction.async_reload() if is_async else run(prediction.reload()))  # a look after the end
    assert prediction.status == "succeeded"
    assert [(r.method, r.url.path) for r in server.requests] == [
        ("POST", "/v1/models/acme/m/predictions"), ("GET", "/v1/predictions/p1"), ("GET", "/v1/predictions/p1"),
        ("GET", "/v1/predictions/p1")]
    [row] = rows(ckc)  # one row for the run, whatever the number of polls
    per_second = PriceBook().per_second("replicate", "gpu-a40-large")
    assert per_second is not None
    assert (row.verb, row.model, row.outcome, row.tags) == ("predict", "acme/m", "success", {"customer": "acme"})
    assert (row.gpu_seconds, row.cost) == (Decimal("1.5"), Decimal("1.5") * per_second[0])


def test_runs_not_seen_ending_are_kept_up_to_a_bound(tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    """A process told of its runs' end by webhooks never looks at them again: the runs it remembers are bounded
    (the oldest forgotten, with a warning), and one still remembered is recorded when a look sees it end."""
    from computekit import _instrument_meter

    monkeypatch.setattr(_instrument_meter, "RUNS_KEPT", 2)
    started = [{**PREDICTION, "id": f"p{i}", "urls": {"get": f"https://api.replicate.com/v1/predictions/p{i}"}}
               for i in range(3)]
    server = Server(httpx, [*(Reply(201, p) for p in started), Reply(body={**ENDED, "id": "p2"}),
                            Reply(body={**ENDED, "id": "p0"})])
    ckc = ck_client(tmp_path, providers={"replicate": {"hardware": {"acme/m": "gpu-a40-large"}}})
    client = ck.instrument(sdk("replicate").Client(api_token="r8_" + "x" * 30, transport=httpx.MockTransport(server)),
                           using=ckc)
    with caplog.at_level(logging.WARNING, logger="computekit.instrument"):
        for _ in started:
            client.models.predictions.create(model="acme/m", input={"prompt": "x"})
    [meter] = [m for m in _instrument_meter._METERS if m.core is ckc._core]
    assert list(meter.runs) == ["p1", "p2"]
    assert any("(p0) is forgotten" in r.getMessage() for r in caplog.records)
    assert client.predictions.get("p2").status == "succeeded"  # remembered: recorded when seen ending
    assert client.predictions.get("p0").status == "succeeded"  # forgotten: passes through
    assert [(r.verb, r.request_id) for r in rows(ckc)] == [("predict", "p2")]
    assert list(meter.runs) == ["p1"]


def test_replicate_polls_of_runs_it_did_not_start_pass_through(tmp_path: Any) -> None:
    server = Server(httpx, [Reply(body=ENDED)])
    ckc = ck_client(tmp_path)
    client = ck.instrument(sdk("replicate").Client(api_token="r8_" + "x" * 30, transport=httpx.MockTransport(server)),
                           using=ckc)
    assert client.predictions.get("p1").status == "succeeded"
    assert rows(ckc) == []


@both
@pytest.mark.parametrize("vendor", ["openai", "azure", "anthropic", "cohere", "replicate"])
async def test_every_sdk_gets_the_budget_refusal_with_nothing_sent(tmp_path: Any, vendor: str,
                                                                   is_async: bool) -> None:
    """Refused before it leaves: the transport sees no request, no row is written, no reservation is left held
    (a Replicate run has no worst case to reserve: refused by the default ``unknown_price``)."""
    budget = {"limit_usd": "0.000001", "period": "day"}
    if vendor == "replicate":
        server = Server(httpx, [])
        ckc = ck_client(tmp_path, budget=budget, providers={"replicate": {"hardware": {"acme/m": "gpu-a40-large"}}})
        client = ck.instrument(sdk("replicate").Client(api_token="r8_" + "x" * 30,
                                                       transport=httpx.MockTransport(server)), using=ckc)
    else:
        server, ckc, client = metered(tmp_path, vendor, [], is_async, budget=budget)

    def call() -> Any:
        if vendor in ("openai", "azure"):
            return client.chat.completions.create(model="gpt-4o-mini", max_tokens=1000, messages=MESSAGES)
        if vendor == "anthropic":
            return client.messages.create(model="claude-3-5-haiku-20241022", max_tokens=1000, messages=MESSAGES)
        if vendor == "replicate":
            create = client.models.predictions.async_create if is_async else client.models.predictions.create
            return create(model="acme/m", input={"prompt": "x"})
        return client.chat(model="command-r-08-2024", messages=MESSAGES, max_tokens=1000)

    with pytest.raises(ck.BudgetExceededError, match="nothing was sent") as refused:
        await run(call())
    assert refused.value.budget == "default"
    assert server.hits == 0
    assert rows(ckc) == []
    assert ckc.budget_status()["default"].reserved == 0


@both
async def test_a_connection_broken_mid_answer_is_a_failed_attempt(tmp_path: Any, oai_lib: Any,
                                                                  is_async: bool) -> None:
    pieces = chat_sse()

    class Broken(oai_lib.SyncByteStream, oai_lib.AsyncByteStream):  # type: ignore[misc,name-defined]
        def __iter__(self) -> Iterator[bytes]:
            yield pieces[0]
            raise oai_lib.ReadError("connection reset")

        async def __aiter__(self) -> AsyncIterator[bytes]:
            yield pieces[0]
            raise oai_lib.ReadError("connection reset")

    def serve(request: Any) -> Any:
        return oai_lib.Response(200, headers={"content-type": "text/event-stream"}, stream=Broken())

    ckc = ck_client(tmp_path)
    http = (oai_lib.AsyncClient if is_async else oai_lib.Client)(transport=oai_lib.MockTransport(serve))
    cls = openai.AsyncOpenAI if is_async else openai.OpenAI
    client = ck.instrument(cls(api_key=KEY, http_client=http, max_retries=0), using=ckc)
    stream = await run(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    with pytest.raises((openai.APIConnectionError, oai_lib.ReadError)):  # as the SDK words it
        await drain(stream)
    [row] = rows(ckc)
    assert (row.verb, row.outcome, row.error_type) == ("stream", "error", "APIConnectionError")


def _echo(lib: Any, ok: dict[str, Any], events: list[bytes]) -> Any:
    """A hostile server: echoes the credential the SDK sent back everywhere it can (the request id header, an
    error's message, a body that does not parse), by the request's first message."""
    pieces = Server(lib, [])._pieces

    def serve(request: Any) -> Any:
        sent = request.headers.get("authorization") or request.headers.get("x-api-key") or request.headers["api-key"]
        headers = {"x-request-id": sent, "request-id": sent, "content-type": "application/json"}
        if request.url.path.endswith("/images/generations"):
            return lib.Response(200, headers=headers, json={"created": 1, "data": []})
        say = json.loads(request.content)["messages"][0]["content"]
        if say == "ok":
            return lib.Response(200, headers=headers, json=ok)
        if say == "stream":
            return lib.Response(200, headers={**headers, "content-type": "text/event-stream"},
                                stream=pieces(events, [0]))
        if say == "garbage":
            return lib.Response(200, headers=headers, content=f"<garbage {sent}>".encode())
        return lib.Response(401, headers=headers, json={"error": {"message": f"Incorrect API key provided: {sent}",
                                                                  "type": "authentication_error"}})

    return serve


@both
@pytest.mark.parametrize("vendor", ["openai", "azure", "anthropic"])
@pytest.mark.parametrize("traced", [False, True], ids=["untraced", "traced"])
async def test_the_sdks_key_never_reaches_the_ledger_or_computekits_logs_or_errors(
        tmp_path: Any, vendor: str, is_async: bool, traced: bool, caplog: pytest.LogCaptureFixture,
        request: pytest.FixtureRequest) -> None:
    """The SDK's key, echoed back by the server in a request id, an error body or a body that does not parse,
    is masked in every row (answers, errors, malformed answers, canceled streams, unpriced endpoints), in
    computekit's logs, spans and a budget's refusal, with a budget or without, sync and async."""
    import logging

    caplog.set_level(logging.DEBUG, logger="computekit")
    spans = request.getfixturevalue("spans") if traced else None
    lib = _lib_of(vendor)
    oai = vendor != "anthropic"
    model = "gpt-4o-mini" if oai else "claude-3-5-haiku-20241022"
    transport = lib.MockTransport(_echo(lib, *((CHAT, chat_sse()) if oai else (CLAUDE, claude_sse()))))
    texts: list[str] = []
    for budget in ({}, {"budget": {"limit_usd": "0.001", "period": "day"}}):
        ckc = ck_client(tmp_path / str(bool(budget)), **budget)
        http = (lib.AsyncClient if is_async else lib.Client)(transport=transport)
        if vendor == "azure":  # its key goes in an api-key header
            client: Any = (openai.AsyncAzureOpenAI if is_async else openai.AzureOpenAI)(
                api_key=KEY, http_client=http, max_retries=0, azure_endpoint="https://res.openai.azure.com",
                api_version="2024-10-21")
        elif vendor == "openai":
            client = (openai.AsyncOpenAI if is_async else openai.OpenAI)(api_key=KEY, http_client=http,
                                                                             max_retries=0)
        else:
            anthropic = sdk("anthropic")
            client = (anthropic.AsyncAnthropic if is_async else anthropic.Anthropic)(api_key=KEY, http_client=http,
                                                                                    max_retries=0)
        create = client.chat.completions.create if oai else client.messages.create
        sdk_error = openai.OpenAIError if oai else sdk("anthropic").AnthropicError
        ck.instrument(client, using=ckc)
        for say in ("ok", "garbage", "bad", "stream"):
            def call(say: str = say, create: Any = create) -> Any:
                return create(model=model, max_tokens=100, stream=say == "stream",
                              messages=[{"role": "user", "content": say}])

            if say in ("bad", "garbage"):  # the SDK's own error, of the 401 or of the body it cannot parse
                with pytest.raises((sdk_error, json.JSONDecodeError)):
                    await run(call())
                continue
            answer = await run(call())
            if say == "stream":  # left after its first event: canceled
                it = answer.__aiter__() if is_async else iter(answer)
                await (it.__anext__() if is_async else run(next(it)))
                await run(answer.close())
        if vendor == "openai" and not budget:  # unpriced (a budget would refuse it: its price is unknown)
            await run(client.images.generate(model="dall-e-3", prompt="a cat"))
        if budget:
            with pytest.raises(ck.BudgetExceededError) as refused:
                await run(create(model=model, max_tokens=8000, messages=[{"role": "user", "content": "ok"}]))
            texts += [str(refused.value), repr(refused.value)]
        recorded = rows(ckc)
        assert {r.outcome for r in recorded} >= {"success", "error", "canceled"}
        assert any(r.request_id and "*" in r.request_id for r in recorded)  # the echo was there, masked
        texts += [json.dumps(r.as_dict(), default=str) for r in recorded]
        ckc.close()
        texts.append(b"".join(p.read_bytes() for p in (tmp_path / str(bool(budget))).iterdir()).decode("latin-1"))
    texts.append(caplog.text)
    if spans is not None:
        finished = [span for span in spans.get_finished_spans()  # computekit's (an SDK may trace its own)
                    if span.instrumentation_scope is not None and span.instrumentation_scope.name == "computekit"]
        assert finished
        texts += [repr(dict(span.attributes or {})) + repr(span.status.description) + span.name for span in finished]
    for i, text in enumerate(texts):
        assert KEY not in text, f"the key leaked in text #{i}: {text[:300]}"


@both
async def test_answers_whose_ledger_cannot_be_opened_are_logged_in_full_not_left_pending(
        tmp_path: Any, oai_lib: Any, is_async: bool, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """No budget: an answer's bookkeeping is deferred to the ledger's writer, which the first answer opens. A
    store that cannot be opened then (locked past its busy timeout) keeps the answer for the SDK's caller, and
    each answer's row is logged in full at once, not kept pending for a writer that never came."""
    import computekit.ledger._sqlite as sqlite_ledger

    monkeypatch.setattr(sqlite_ledger, "BUSY_TIMEOUT_MS", 50)
    db = tmp_path / "ck.db"
    SQLiteLedger(db).close()
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    server = Server(oai_lib, [Reply(body=CHAT)] * 2)
    ckc = ck.Client(config=None, ledger=f"sqlite:///{db}")
    client = ck.instrument(sdk_client("openai", server, is_async), using=ckc)
    try:
        with caplog.at_level(logging.ERROR, logger="computekit"):
            for _ in range(2):
                answer = await run(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES))
                assert answer.choices[0].message.content
        assert len([r for r in caplog.records if "row not written" in r.getMessage()]) == 2
    finally:
        other.execute("ROLLBACK")
        other.close()
        ckc.close()
