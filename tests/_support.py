"""Test helpers shared by the core unit tests: a scripted mock HTTP server and client factories.

HTTP goes through ``httpx.MockTransport``: nothing leaves the process.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

import computekit as ck
from computekit._config import RetryConfig
from computekit._retry import RetryPolicy
from computekit.ledger import LedgerRow

KEY = "sk-test-0123456789abcdef"

Reply = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


@dataclass
class Seen:
    """One request the mock server received."""

    method: str
    url: str
    headers: dict[str, str]
    body: Any

    @property
    def auth(self) -> str | None:
        return self.headers.get("authorization")


@dataclass
class Server:
    """Answers each request with the next scripted reply (the last one repeats), recording what it saw."""

    replies: list[Reply] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body: Any = None
        if request.content:
            try:
                body = json.loads(request.content)
            except ValueError:
                body = request.content
        self.seen.append(Seen(request.method, str(request.url), dict(request.headers), body))
        reply = self.replies[min(len(self.seen) - 1, len(self.replies) - 1)]
        if isinstance(reply, Exception):
            raise reply
        if callable(reply) and not isinstance(reply, httpx.Response):
            return reply(request)
        return reply

    @property
    def hits(self) -> int:
        return len(self.seen)


class WatchedLedger:
    """A SQLite ledger (``.ledger``) that notes the thread of each reserve, settle (``release``: without a row),
    record, ``part`` (a batch item's share settled), ``key`` (a job's reservation named) and ``find`` (looked up
    by its key) in ``threads``, can say it is remote (``blocking_io``), and holds ``reserve()`` while ``go`` is
    clear."""

    def __init__(self, path: Any, *, remote: bool) -> None:
        from computekit.ledger import SQLiteLedger

        outer = self

        class Watched(SQLiteLedger):
            blocking_io = remote

            def reserve(self, charges: Any, *, now: dt.datetime, ttl_s: float) -> str:
                outer.threads.append(("reserve", threading.current_thread()))
                outer.entered.set()
                assert outer.go.wait(10)
                return super().reserve(charges, now=now, ttl_s=ttl_s)

            def settle(self, reservation: str, row: LedgerRow | None) -> None:
                outer.threads.append(("settle" if row is not None else "release", threading.current_thread()))
                super().settle(reservation, row)

            def record(self, row: LedgerRow) -> None:
                outer.threads.append(("record", threading.current_thread()))
                super().record(row)

            def settle_part(self, reservation: str, row: LedgerRow, amount: Any) -> None:
                outer.threads.append(("part", threading.current_thread()))
                super().settle_part(reservation, row, amount)

            def key_reservation(self, reservation: str, key: str) -> None:
                outer.threads.append(("key", threading.current_thread()))
                super().key_reservation(reservation, key)

            def reservation(self, key: str, *, now: dt.datetime) -> Any:
                outer.threads.append(("find", threading.current_thread()))
                return super().reservation(key, now=now)

        self.threads: list[tuple[str, threading.Thread]] = []
        self.entered, self.go = threading.Event(), threading.Event()
        self.go.set()
        self.ledger = Watched(path)

    def steps(self) -> list[str]:
        return [name for name, _ in self.threads]

    def off(self, thread: threading.Thread) -> list[bool]:
        """For each step, whether it ran in another thread than ``thread`` (the event loop's)."""
        return [t is not thread for _, t in self.threads]


class Waits:
    """A fake sleep: records the waits asked for, sleeps never."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)

    async def asleep(self, seconds: float) -> None:
        self.waits.append(seconds)


def policy(waits: Waits | None = None, **retry: Any) -> RetryPolicy:
    w = waits or Waits()
    return RetryPolicy(RetryConfig(**retry), sleep=w, asleep=w.asleep)


def make_client(
    server: Callable[[httpx.Request], httpx.Response],
    *,
    is_async: bool = False,
    waits: Waits | None = None,
    retry: dict[str, Any] | None = None,
    providers: dict[str, Any] | None = None,
    **settings: Any,
) -> Any:
    """A Client (or AsyncClient) whose HTTP goes to ``server`` and whose retries never sleep."""
    transport = httpx.MockTransport(server)
    kwargs: dict[str, Any] = {
        "config": None,
        "providers": providers if providers is not None else {"openai": {"api_key": KEY}},
        "retry_policy": policy(waits, **(retry or {})),
        **settings,
    }
    if is_async:
        return ck.AsyncClient(http_client=httpx.AsyncClient(transport=transport), **kwargs)
    return ck.Client(http_client=httpx.Client(transport=transport), **kwargs)


def usage_json(prompt: int = 12, completion: int = 5, cached: int = 0) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    }


def chat_json(
    text: str = "Hello there",
    *,
    model: str = "gpt-4o-mini-2024-07-18",
    usage: dict[str, Any] | None = None,
    service_tier: str | None = "default",
    tool_calls: list[dict[str, Any]] | None = None,
    finish_reason: str = "stop",
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if tool_calls:
        message["tool_calls"] = tool_calls
    out: dict[str, Any] = {
        "id": "chatcmpl-123",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": usage if usage is not None else usage_json(),
    }
    if service_tier is not None:
        out["service_tier"] = service_tier
    return out


def ok(body: Any, **headers: str) -> httpx.Response:
    return httpx.Response(200, json=body, headers={"x-request-id": "req_ok", **headers})


def error(status: int, message: str = "boom", *, type_: str = "server_error", **headers: str) -> httpx.Response:
    hdrs = {k.replace("_", "-"): v for k, v in headers.items()}
    return httpx.Response(status, json={"error": {"message": message, "type": type_}}, headers=hdrs)


class Chunks(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A response body delivered in the given pieces, sync or async; optionally failing after them."""

    def __init__(self, pieces: list[bytes], fail: Exception | None = None) -> None:
        self.pieces = pieces
        self.fail = fail

    def __iter__(self) -> Iterator[bytes]:
        yield from self.pieces
        if self.fail is not None:
            raise self.fail

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for p in self.pieces:
            yield p
        if self.fail is not None:
            raise self.fail


def sse(*events: Any, done: bool = True) -> bytes:
    """Server-sent events: each item JSON-encoded as one ``data:`` event, then ``[DONE]``."""
    out = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)
    return out + (b"data: [DONE]\n\n" if done else b"")


def stream_response(body: bytes, *, split: int = 7) -> httpx.Response:
    """An SSE response whose bytes arrive in pieces of ``split`` bytes (events straddle pieces)."""
    pieces = [body[i : i + split] for i in range(0, len(body), split)]
    return httpx.Response(200, headers={"content-type": "text/event-stream", "x-request-id": "req_s"},
                          stream=Chunks(pieces))


def chat_chunks(text_pieces: list[str], *, usage: dict[str, Any] | None = None,
                model: str = "gpt-4o-mini-2024-07-18") -> list[dict[str, Any]]:
    """OpenAI chat-completion chunks for ``text_pieces``, a finish chunk, and (optionally) a usage chunk."""
    base = {"id": "chatcmpl-s", "object": "chat.completion.chunk", "model": model, "service_tier": "default"}
    out = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}]
    out += [{**base, "choices": [{"index": 0, "delta": {"content": p}}]} for p in text_pieces]
    out.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    if usage is not None:
        out.append({**base, "choices": [], "usage": usage})
    return out


# ------------------------------------------------------------------------------------------------ real loopback HTTP
# For what must cross a real socket (a subprocess, vcrpy recording, an installed plugin): a stdlib handler class.


@contextmanager
def serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Run ``handler`` on a loopback port in a thread: yields its ``/v1`` base URL; shut down on exit."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


class LoopbackHandler(BaseHTTPRequestHandler):
    """A quiet HTTP/1.1 handler for :func:`serve`, with :meth:`reply` to answer."""

    protocol_version = "HTTP/1.1"

    def reply(self, status: int, body: bytes, content_type: str = "application/json", **headers: str) -> None:
        """Answer: status, content type and length, ``headers`` (``x_request_id`` is sent as ``x-request-id``),
        then the body."""
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def reset_tracer_provider(monkeypatch: Any) -> None:
    """Let a test set OpenTelemetry's global tracer provider. The API lets a process set it once; tests each get a
    fresh one (as OpenTelemetry's own test utilities do), and monkeypatch puts the process's back afterwards."""
    from opentelemetry import trace
    from opentelemetry.util._once import Once

    monkeypatch.setattr(trace, "_TRACER_PROVIDER_SET_ONCE", Once())
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)
