"""Faults the attempt driver handles for every verb: an answer that does not parse (whatever the parser raises),
and a call stopped by the caller while it waits (Ctrl-C, a canceled task), sync and async, on the default
transports against the loopback fault server.

- Anything raised while parsing a provider's answer becomes a ``MalformedResponseError`` raised ``from`` it: the
  attempt gets its ledger row (cost unknown), is not retried, and the caller sees a typed error.
- Ctrl-C (``KeyboardInterrupt``) or a task canceled while the call waits for its answer, or while a stream blocks
  on a read, records the attempt as ``canceled`` (the provider had the request), then goes on up.
"""

from __future__ import annotations

import asyncio
import decimal
import signal
import socket
import threading
from typing import Any

import pydantic
import pytest
from fault_server import (
    SSE,
    FaultServer,
    Hang,
    Reply,
    Request,
    Waits,
    _head,
    chat,
    chat_events,
    close,
    make_client,
    policy,
    read_stream,
    sse_bytes,
)
from fault_server import run as run_call

import computekit as ck
from computekit.adapters.openai import OpenAIAdapter

CHAT = "openai:gpt-4o-mini"
both = pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])


def _client(is_async: bool, url: str, waits: Waits, tmp_path: Any) -> Any:
    return make_client(is_async, url, waits, ledger=f"sqlite:///{tmp_path / 'ledger.db'}")


def _rows(client: Any) -> list[tuple[str, str, int | None, str | None]]:
    return [(r.verb, r.outcome, r.status, r.error_type) for r in client.ledger.rows()]


def _validation_error() -> Exception:
    class M(pydantic.BaseModel):
        n: int

    try:
        M(n="not a number")  # type: ignore[arg-type]
    except pydantic.ValidationError as e:
        return e
    raise AssertionError("pydantic accepted a string for an int")


# ============================================================================================= parse failures


@both
async def test_a_deeply_nested_answer_is_malformed_not_a_recursion_error(faults: Any, waits: Waits, is_async: bool,
                                                                          tmp_path: Any) -> None:
    depth = 200_000  # deeper than any recursion limit: json.loads raises RecursionError
    srv = faults(Reply(200, "[" * depth + "]" * depth, {"content-type": "application/json"}))
    client = _client(is_async, srv.url, waits, tmp_path)
    try:
        with pytest.raises(ck.MalformedResponseError) as ei:
            await run_call(client.complete(CHAT, "hi"))
        assert isinstance(ei.value.__cause__, RecursionError)
        assert ei.value.status == 200
        assert srv.hits == 1  # a malformed answer is not retried
        assert waits.waits == []
        assert _rows(client) == [("complete", "error", 200, "MalformedResponseError")]
        [row] = client.ledger.rows()
        assert row.cost is None  # an answer that did not parse: cost unknown, never 0
    finally:
        await close(client)


@both
async def test_a_malformed_answer_falls_back_to_the_next_target(faults: Any, waits: Waits, is_async: bool,
                                                               tmp_path: Any) -> None:
    depth = 200_000
    bad = faults(Reply(200, "[" * depth + "]" * depth, {"content-type": "application/json"}))
    good = faults(chat("Hello", model="meta-llama/Llama-3.3-70B-Instruct-Turbo"))
    cls = ck.AsyncClient if is_async else ck.Client
    client = cls(config=None, retry_policy=policy(waits), ledger=f"sqlite:///{tmp_path / 'ledger.db'}",
                 providers={"openai": {"base_url": bad.url, "api_key": "sk-fault-0123456789abcdef"},
                            "together": {"base_url": good.url, "api_key": "tg-fault-0123456789abcdef"}})
    try:
        r = await run_call(client.complete([CHAT, "together:meta-llama/Llama-3.3-70B-Instruct-Turbo"], "hi"))
        assert r.text == "Hello"
        assert [(a.provider, a.outcome, a.error_type) for a in r.attempts] == [
            ("openai", "error", "MalformedResponseError"), ("together", "success", None)]
        assert (bad.hits, good.hits) == (1, 1)
        assert [(row.provider, row.outcome) for row in client.ledger.rows()] == [
            ("openai", "error"), ("together", "success")]
    finally:
        await close(client)


@both
@pytest.mark.parametrize(
    "raised",
    [AttributeError("'NoneType' object has no attribute 'get'"), TypeError("unhashable type: 'list'"),
     ValueError("invalid literal"), KeyError("choices"), decimal.InvalidOperation(), "validation"],
    ids=["AttributeError", "TypeError", "ValueError", "KeyError", "decimal", "ValidationError"],
)
async def test_whatever_the_parser_raises_is_a_malformed_response(faults: Any, waits: Waits, is_async: bool,
                                                                  tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
                                                                  raised: Any) -> None:
    error = _validation_error() if raised == "validation" else raised

    def parse(self: Any, req: Any, resp: Any) -> Any:
        raise error

    monkeypatch.setattr(OpenAIAdapter, "parse_complete", parse)
    srv = faults(chat("Hello"))
    client = _client(is_async, srv.url, waits, tmp_path)
    try:
        with pytest.raises(ck.MalformedResponseError) as ei:
            await run_call(client.complete(CHAT, "hi"))
        assert ei.value.__cause__ is error
        # a value the types refuse is named as such; anything else says what the parser raised
        assert ("values out of range" if raised == "validation" else type(error).__name__) in str(ei.value)
        assert ei.value.provider == "openai"
        assert ei.value.request_id is not None  # the facts of the answer are kept
        assert srv.hits == 1
        assert _rows(client) == [("complete", "error", 200, "MalformedResponseError")]
    finally:
        await close(client)


@both
async def test_a_stream_event_the_decoder_cannot_read_is_malformed(faults: Any, waits: Waits, is_async: bool,
                                                                   tmp_path: Any) -> None:
    # "choices" of the wrong type inside an otherwise well-formed chunk
    srv = faults(SSE([{"id": "c1", "object": "chat.completion.chunk", "choices": 7}, "data: [DONE]\n\n"]))
    client = _client(is_async, srv.url, waits, tmp_path)
    try:
        with pytest.raises(ck.MalformedResponseError):
            await read_stream(client, CHAT)
        assert srv.hits == 1
        assert _rows(client) == [("stream", "error", 200, "MalformedResponseError")]
    finally:
        await close(client)


def test_the_cli_prints_a_malformed_answer_without_a_traceback(faults: Any, tmp_path: Any,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from computekit.cli import app

    depth = 200_000
    srv = faults(Reply(200, "[" * depth + "]" * depth, {"content-type": "application/json"}))
    config = tmp_path / "computekit.toml"
    config.write_text(f'ledger = "none"\n[retry]\nmax_retries = 0\n[providers.openai]\nbase_url = "{srv.url}"\n'
                      'api_key = "sk-cli-0123456789"\n')
    monkeypatch.setenv("COMPUTEKIT_CONFIG", str(config))
    result = CliRunner().invoke(app, ["complete", CHAT, "hi"])
    assert result.exit_code != 0
    assert "MalformedResponseError" in result.output or "malformed" in result.output.lower()
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, RecursionError)


# ============================================================================================= stopped while waiting


class _Stall:
    """A stream that sends its head and one chunk, then nothing (until the server stops)."""

    def __call__(self, srv: FaultServer, req: Request, sock: socket.socket) -> bool:
        sock.sendall(_head(200, {"content-type": "text/event-stream", "transfer-encoding": "chunked",
                                 "x-request-id": "req_stall"}))
        first = b"".join(sse_bytes(ev) for ev in chat_events(["Hel"], usage=False, done=False)[:2])
        sock.sendall(b"%x\r\n%s\r\n" % (len(first), first))
        srv.stop.wait(10)
        return False


def _read_all(client: ck.Client, verb: str) -> None:
    if verb == "complete":
        client.complete(CHAT, "hi")
        return
    with client.stream(CHAT, "hi") as s:
        for _ in s:
            pass


def _interrupt_when(srv: FaultServer) -> threading.Thread:
    """Send SIGINT to the main thread once the server has read the request (Ctrl-C while waiting)."""
    main = threading.main_thread().ident
    assert main is not None

    def fire() -> None:
        for _ in range(500):
            if srv.hits >= 1:
                break
            threading.Event().wait(0.01)
        threading.Event().wait(0.1)  # the client is blocked reading by now
        signal.pthread_kill(main, signal.SIGINT)

    t = threading.Thread(target=fire, daemon=True)
    t.start()
    return t


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="needs the main thread")
@pytest.mark.parametrize("verb", ["complete", "stream"])
def test_ctrl_c_while_waiting_records_a_canceled_attempt(faults: Any, waits: Waits, tmp_path: Any,
                                                         verb: str) -> None:
    srv = faults(Hang(10) if verb == "complete" else _Stall())
    client = _client(False, srv.url, waits, tmp_path)
    try:
        t = _interrupt_when(srv)
        with pytest.raises(KeyboardInterrupt):
            _read_all(client, verb)
        t.join(5)
        assert srv.hits == 1
        [row] = client.ledger.rows()
        assert (row.verb, row.outcome) == (verb, "canceled")
        assert row.cost is None  # billed, but unpriced: the provider never reported usage
    finally:
        client.close()


@pytest.mark.parametrize("verb", ["complete", "stream"])
async def test_a_task_canceled_while_waiting_records_a_canceled_attempt(faults: Any, waits: Waits, tmp_path: Any,
                                                                        verb: str) -> None:
    srv = faults(Hang(10) if verb == "complete" else _Stall())
    client = _client(True, srv.url, waits, tmp_path)

    async def call() -> None:
        if verb == "complete":
            await client.complete(CHAT, "hi")
        else:
            async with client.stream(CHAT, "hi") as s:
                async for _ in s:
                    pass

    try:
        task = asyncio.ensure_future(call())
        for _ in range(500):
            if srv.hits >= 1:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert srv.hits == 1
        [row] = client.ledger.rows()
        assert (row.verb, row.outcome) == (verb, "canceled")
        assert row.cost is None
    finally:
        await close(client)
