"""A loopback fault-injection HTTP/1.1 server, and the client-side helpers the fault suite drives it with.

The server
----------
:class:`FaultServer` listens on ``127.0.0.1:<free port>`` in a background thread (raw sockets, a thread per
connection, keep-alive) and answers the *n*-th request it reads with the *n*-th behaviour of its script (the last
behaviour repeats once the script is used up)::

    with FaultServer([Reply(500), Reset(), chat("ok")]) as srv:     # or the ``faults`` fixture (conftest.py)
        client = make_client(srv.url, waits)                         # providers.openai.base_url = srv.url
        ...
    srv.hits                 # requests read (a reset or hung request counts: the server read it)
    srv.requests[i]          # Request: method, path, headers (names lowercased), body, conn (connection no.),
                             #          index; .json(), .auth (the Authorization header)
    srv.connections          # TCP connections accepted
    srv.script.append(...)   # the script may be extended while the server runs

Behaviours (each a small dataclass; write your own: any ``callable(srv, req, sock) -> bool`` where the result
says whether the connection stays open for another request):

=================================  =============================================================================
``Reply(status, body, headers)``   a complete response; ``body`` is bytes, str, or JSON (dict/list);
                                   ``echo_auth=True`` puts the request's Authorization value in
                                   ``x-echo-authorization`` and ``x-request-id``, and (for an error status)
                                   in the JSON error message
``chat(text, ...)``                an OpenAI chat completion (a ``Reply``)
``error(status, ...)``             an OpenAI-shaped error body (a ``Reply``)
``SSE(events, cut=..., framing)``  a ``text/event-stream`` response, one write per event. ``events`` items:
                                   dict (sent as ``data: <json>``), str/bytes (raw). ``cut=b"..."``: after
                                   the events write these bytes and close (FIN) without ending the body
                                   (``framing="chunked"``: in a chunk declared longer, no last chunk)
``Oversize(nbytes)``               an SSE head, then one unterminated ``data:`` line of ``nbytes`` bytes
                                   (written until the client stops reading, or all of it is sent)
``Reset()``                        read the request, then abort the connection (RST, no response)
``Close()``                        read the request, then close the connection cleanly (FIN, no response)
``Hang(seconds)``                  read the request, send nothing for ``seconds`` (or until the server
                                   stops), then close: a read timeout on the client
``Drip(body, nbytes, every)``      a 200 whose declared body arrives ``nbytes`` every ``every`` seconds
                                   (stops when the client goes away, the server stops, or after
                                   ``max_seconds``)
``Truncated(body, missing)``       ``Content-Length: len(body)`` but only ``len(body) - missing`` bytes
                                   are sent, then the connection closes
=================================  =============================================================================

Helpers for events: :func:`chat_events` (OpenAI chat chunks, usage, ``[DONE]``), :func:`sse_bytes`.

Every wait is bounded: sockets time out after :data:`WAIT_S`, behaviours that wait use the server's stop event,
:meth:`FaultServer.close` shuts every socket and joins every thread with a timeout, then fails the test if a
thread is still alive or a behaviour raised. :func:`unused_port` gives a port nobody listens on (connection
refused).

The client side
---------------
:class:`Waits` is an injected sleep that records each wait and never sleeps; :func:`policy` builds a
:class:`~computekit._retry.RetryPolicy` around it (``MaxJitter`` makes backoff deterministic: always the
ceiling). :func:`make_client` builds a ``ck.Client`` / ``ck.AsyncClient`` with the default transports pointed at
a server; :func:`run` awaits a coroutine or returns a value, so one test body serves sync and async.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import random
import socket
import struct
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import computekit as ck
from computekit._config import RetryConfig
from computekit._retry import RetryPolicy

__all__ = [
    "SSE",
    "WAIT_S",
    "Close",
    "Drip",
    "FaultServer",
    "Hang",
    "MaxJitter",
    "Oversize",
    "Reply",
    "Request",
    "Reset",
    "Truncated",
    "Waits",
    "chat",
    "chat_events",
    "close",
    "error",
    "make_client",
    "policy",
    "read_stream",
    "run",
    "sse_bytes",
    "unused_port",
]

WAIT_S = 5.0
"""The longest any server thread waits for anything (a socket read, a hang, the join at close)."""


# ============================================================================================= requests


@dataclass
class Request:
    """One request the server read."""

    method: str
    path: str
    headers: dict[str, str]  # names lowercased
    body: bytes
    conn: int  # the connection it came on (1, 2, ...)
    index: int  # its place among all requests (0, 1, ...)

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def auth(self) -> str | None:
        return self.headers.get("authorization")


Behaviour = Callable[["FaultServer", Request, socket.socket], bool]


# ============================================================================================= writing


def _head(status: int, headers: dict[str, str], reason: str | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status} {reason or _REASONS.get(status, 'Status')}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            408: "Request Timeout", 409: "Conflict", 422: "Unprocessable Entity", 429: "Too Many Requests",
            500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
            529: "Site Overloaded"}


def _encode(body: bytes | str | dict[str, Any] | list[Any]) -> tuple[bytes, str]:
    if isinstance(body, bytes):
        return body, "application/octet-stream"
    if isinstance(body, str):
        return body.encode(), "text/plain; charset=utf-8"
    return json.dumps(body).encode(), "application/json"


def _abort(sock: socket.socket) -> None:
    """An RST, not a FIN."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


# ============================================================================================= behaviours


@dataclass
class Reply:
    """A complete response. ``echo_auth``: reflect the request's Authorization value back (see module doc)."""

    status: int = 200
    body: bytes | str | dict[str, Any] | list[Any] = b""
    headers: dict[str, str] = field(default_factory=dict)
    echo_auth: bool = False
    reason: str | None = None

    def __call__(self, srv: FaultServer, req: Request, sock: socket.socket) -> bool:
        body = self.body
        headers = dict(self.headers)
        if self.echo_auth:
            auth = req.auth or ""
            headers.setdefault("x-echo-authorization", auth)
            headers.setdefault("x-request-id", auth)
            if self.status >= 300 and isinstance(body, dict):
                body = {"error": {"message": f"Incorrect API key provided: {auth}", "type": "invalid_request_error",
                                  "code": "invalid_api_key", "echo": auth}}
        data, ctype = _encode(body)
        headers.setdefault("content-type", ctype)
        headers["content-length"] = str(len(data))
        sock.sendall(_head(self.status, headers, self.reason) + data)
        return True


def usage_json(prompt: int = 12, completion: int = 5) -> dict[str, Any]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": 0}}


def chat(text: str = "ok", *, model: str = "gpt-4o-mini-2024-07-18", usage: bool = True,
         headers: dict[str, str] | None = None, echo_auth: bool = False) -> Reply:
    """An OpenAI chat completion answering ``text``."""
    body: dict[str, Any] = {
        "id": "chatcmpl-fault", "object": "chat.completion", "created": 1_700_000_000, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
    }
    if usage:
        body["usage"] = usage_json()
    return Reply(200, body, {"x-request-id": "req_ok", **(headers or {})}, echo_auth=echo_auth)


def error(status: int, message: str = "injected fault", *, type_: str = "server_error",
          headers: dict[str, str] | None = None, echo_auth: bool = False) -> Reply:
    """An OpenAI-shaped error response."""
    return Reply(status, {"error": {"message": message, "type": type_}}, dict(headers or {}), echo_auth=echo_auth)


def prediction(status: str, code: int = 200, *, pid: str = "pf01", version: str = "v1",
               **extra: Any) -> Callable[..., bool]:
    """A Replicate prediction ``pid`` whose URLs point back at the server answering (built when the request
    arrives); ``extra``: more fields (``output``, ``metrics`` ...)."""

    def behave(srv: FaultServer, req: Request, sock: Any) -> bool:
        body = {"id": pid, "model": "acme/upscaler", "version": version, "input": {"x": 1}, "logs": "",
                "output": None, "data_removed": False, "error": None, "status": status,
                "created_at": "2026-11-20T10:00:00Z",
                "urls": {"get": f"{srv.url}/predictions/{pid}", "cancel": f"{srv.url}/predictions/{pid}/cancel",
                         "web": f"https://replicate.com/p/{pid}"}, **extra}
        return Reply(code, body)(srv, req, sock)

    return behave


def sse_bytes(event: dict[str, Any] | str | bytes) -> bytes:
    """One SSE event: a dict becomes ``data: <json>\\n\\n``; str/bytes are sent as they are."""
    if isinstance(event, dict):
        return b"data: " + json.dumps(event).encode() + b"\n\n"
    return event.encode() if isinstance(event, str) else event


def chat_events(pieces: Iterable[str], *, usage: bool = True, done: bool = True,
                model: str = "gpt-4o-mini-2024-07-18") -> list[dict[str, Any] | str]:
    """OpenAI chat-completion chunks for ``pieces``: a role chunk, one per piece, finish, usage, ``[DONE]``."""
    base = {"id": "chatcmpl-s", "object": "chat.completion.chunk", "model": model}
    out: list[dict[str, Any] | str] = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant"}}]}]
    out += [{**base, "choices": [{"index": 0, "delta": {"content": p}}]} for p in pieces]
    out.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    if usage:
        out.append({**base, "choices": [], "usage": usage_json()})
    if done:
        out.append("data: [DONE]\n\n")
    return out


@dataclass
class SSE:
    """A ``text/event-stream`` response, one write per event (``together``: all of them in one write, so that a
    client reads them in one go); ``cut``: end it abruptly after ``cut``'s bytes."""

    events: Sequence[dict[str, Any] | str | bytes]
    cut: bytes | None = None
    framing: str = "chunked"  # "chunked" | "close" (no length: the body ends when the connection does)
    pause: float = 0.002  # between events, so that they arrive as separate reads
    headers: dict[str, str] = field(default_factory=dict)
    together: bool = False

    def __call__(self, srv: FaultServer, req: Request, sock: socket.socket) -> bool:
        chunked = self.framing == "chunked"
        hdrs = {"content-type": "text/event-stream", "x-request-id": "req_sse", **self.headers}
        hdrs["transfer-encoding" if chunked else "connection"] = "chunked" if chunked else "close"
        sock.sendall(_head(200, hdrs))

        def write(data: bytes) -> None:
            sock.sendall(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)

        if self.together:
            write(b"".join(sse_bytes(ev) for ev in self.events))
        for ev in () if self.together else self.events:
            write(sse_bytes(ev))
            if srv.stop.wait(self.pause):
                return False
        if self.cut is not None:
            # Chunked: a chunk that declares more bytes than follow, and no last chunk. Then a FIN (not an RST,
            # which could discard the events already sent before the client reads them).
            sock.sendall(b"%x\r\n%s" % (len(self.cut) + 64, self.cut) if chunked else self.cut)
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            return False
        if chunked:
            sock.sendall(b"0\r\n\r\n")
        return chunked


@dataclass
class Oversize:
    """An SSE event that never ends: one ``data:`` line of ``nbytes`` bytes with no newline."""

    nbytes: int
    write_size: int = 64 * 1024

    def __call__(self, srv: FaultServer, req: Request, sock: socket.socket) -> bool:
        sock.sendall(_head(200, {"content-type": "text/event-stream", "connection": "close"}) + b"data: ")
        block = b"x" * self.write_size
        sent = 0
        deadline = time.monotonic() + WAIT_S
        while sent < self.nbytes and not srv.stop.is_set() and time.monotonic() < deadline:
            n = min(self.write_size, self.nbytes - sent)
            sock.sendall(block[:n])  # raises once the client has given up and closed
            sent += n
            srv.sent[req.index] = sent
        return False


@dataclass
class Reset:
    """Read the request, then abort the connection (RST) without a response."""

    def __call__(self, srv: FaultServer, req: Request, sock: socket.socket) -> bool:
        _abort(sock)
        return False


@dataclass
class Close:
    """Read the request, then close the connection (FIN) without a response."""

    def __call__(self, srv: FaultServer, req: Request, sock: socket.socket) -> bool:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        return False


@dataclass
class Hang:
    """Read the request and send nothing for ``seconds`` (bounded by the server's stop), then close."""

    seconds: float = WAIT_S

    def __call__(self, srv: FaultServer, req: Request, sock: socket.socket) -> bool:
        srv.stop.wait(min(self.seconds, WAIT_S))
        return False


@dataclass
class Drip:
    """A 200 with ``Content-Length: len(body)`` whose bytes arrive ``nbytes`` every ``every`` seconds."""

    body: bytes
    nbytes: int = 1
    every: float = 0.05
    max_seconds: float = WAIT_S
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": "application/json"})

    def __call__(self, srv: FaultServer, req: Request, sock: socket.socket) -> bool:
        sock.sendall(_head(200, {**self.headers, "content-length": str(len(self.body))}))
        deadline = time.monotonic() + min(self.max_seconds, WAIT_S)
        for i in range(0, len(self.body), self.nbytes):
            if time.monotonic() > deadline or srv.stop.wait(self.every):
                return False
            sock.sendall(self.body[i : i + self.nbytes])
        return True


@dataclass
class Truncated:
    """Declare ``len(body)`` bytes, send ``missing`` fewer, then close the connection."""

    body: bytes | str | dict[str, Any] | list[Any] = field(default_factory=lambda: chat().body)
    missing: int = 10

    def __call__(self, srv: FaultServer, req: Request, sock: socket.socket) -> bool:
        data, ctype = _encode(self.body)
        sock.sendall(_head(200, {"content-type": ctype, "content-length": str(len(data))}) + data[: -self.missing])
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        return False


# ============================================================================================= the server


class FaultServer:
    """An HTTP/1.1 server on 127.0.0.1 answering request *n* with ``script[n]`` (the last one repeats).

    Args:
        script: One behaviour, or a list of them in request order.
        path_prefix: Prefix of :attr:`url` (the provider's base URL).
    """

    def __init__(self, script: Behaviour | list[Behaviour], *, path_prefix: str = "/v1") -> None:
        self.script: list[Behaviour] = list(script) if isinstance(script, list) else [script]
        if not self.script:
            raise ValueError("the script is empty")
        self.path_prefix = path_prefix
        self.requests: list[Request] = []
        self.sent: dict[int, int] = {}  # request index -> body bytes written (Oversize)
        self.connections = 0
        self.errors: list[BaseException] = []
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        self._closed = False
        self._start(self._accept)

    @property
    def url(self) -> str:
        """The base URL to configure as a provider's ``base_url``."""
        return f"http://127.0.0.1:{self.port}{self.path_prefix}"

    @property
    def hits(self) -> int:
        """Requests read so far."""
        return len(self.requests)

    def __enter__(self) -> FaultServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self, target: Callable[..., None], *args: Any) -> None:
        t = threading.Thread(target=target, args=args, daemon=True, name=f"fault-server-{self.port}")
        with self._lock:
            self._threads.append(t)
        t.start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            sock.settimeout(WAIT_S)
            with self._lock:
                self.connections += 1
                n = self.connections
                self._socks.append(sock)
            self._start(self._serve, sock, n)

    def _read(self, sock: socket.socket, buf: bytes, n: int) -> tuple[Request | None, bytes]:
        while b"\r\n\r\n" not in buf:
            data = sock.recv(65536)
            if not data:
                return None, buf
            buf += data
        head, buf = buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        size = int(headers.get("content-length", "0"))
        while len(buf) < size:
            data = sock.recv(65536)
            if not data:
                return None, buf
            buf += data
        with self._lock:
            req = Request(method, target, headers, buf[:size], n, len(self.requests))
            self.requests.append(req)
        return req, buf[size:]

    def _serve(self, sock: socket.socket, n: int) -> None:
        buf = b""
        try:
            while not self.stop.is_set():
                req, buf = self._read(sock, buf, n)
                if req is None:
                    return
                behaviour = self.script[min(req.index, len(self.script) - 1)]
                if not behaviour(self, req, sock):
                    return
        except OSError:
            pass  # the client went away (or close() shut the socket): part of many faults
        except BaseException as e:  # a broken behaviour must fail the test, not vanish in a thread
            self.errors.append(e)
        finally:
            sock.close()

    def close(self) -> None:
        """Stop: close every socket, join every thread (bounded); fail if one lives on or a behaviour raised."""
        if self._closed:
            return
        self._closed = True
        self.stop.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() at once (Linux)
        self._listener.close()
        with self._lock:
            socks, threads = list(self._socks), list(self._threads)
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        deadline = time.monotonic() + WAIT_S
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        alive = [t for t in threads if t.is_alive()]
        assert not alive, f"{len(alive)} fault-server thread(s) did not stop"
        assert not self.errors, self.errors


def unused_port() -> int:
    """A loopback port nobody listens on (connecting to it is refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ============================================================================================= the client side


class Waits:
    """An injected sleep: records each wait asked for, never sleeps (sync: call it; async: ``asleep``)."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)

    async def asleep(self, seconds: float) -> None:
        self.waits.append(seconds)


class MaxJitter(random.Random):
    """A random source whose ``uniform(a, b)`` is always ``b``: backoff waits are exactly their ceiling."""

    def uniform(self, a: float, b: float) -> float:
        return b


FIXED_NOW = 1_750_000_000.0
"""The injected wall clock (``RetryPolicy.now``): 2025-06-15T15:06:40Z."""


def policy(waits: Waits, **retry: Any) -> RetryPolicy:
    """A retry policy that records its waits in ``waits``; ``retry`` is :class:`RetryConfig`'s fields."""
    return RetryPolicy(RetryConfig(**retry), sleep=waits, asleep=waits.asleep, rng=MaxJitter(), now=lambda: FIXED_NOW)


def make_client(is_async: bool, base_url: str, waits: Waits, *, api_key: str = "sk-fault-0123456789abcdef",
                retry: dict[str, Any] | None = None, provider: dict[str, Any] | None = None,
                **settings: Any) -> Any:
    """A ``ck.Client`` / ``ck.AsyncClient`` on the default transports, its openai provider at ``base_url``.

    ``retry``: :class:`RetryConfig` fields (default ``max_retries=2``); ``provider``: more openai settings
    (``timeout`` ...); ``settings``: more client settings (``ledger=`` ...; default ``ledger="none"``).
    """
    cls = ck.AsyncClient if is_async else ck.Client
    settings.setdefault("ledger", "none")
    return cls(config=None, retry_policy=policy(waits, **(retry or {})),
               providers={"openai": {"base_url": base_url, "api_key": api_key, **(provider or {})}}, **settings)


@contextlib.asynccontextmanager
async def provider_clients(tmp_path: Path, provider: str, key: str) -> AsyncIterator[Callable[..., Any]]:
    """``make(is_async, url, waits, backup_url=None, **retry)``: a client whose ``provider`` is the fault server at
    ``url`` (and ``backup``, an OpenAI-compatible provider, another one), ``retry`` its :class:`RetryConfig`
    fields, its ledger in ``tmp_path``; every client made is closed on exit."""
    made: list[Any] = []

    def make(is_async: bool, url: str, waits: Waits, backup_url: str | None = None, **retry: Any) -> Any:
        providers: dict[str, Any] = {provider: {"base_url": url, "api_key": key}}
        if backup_url is not None:
            providers["backup"] = {"adapter": "openai-compatible", "base_url": backup_url, "api_key": key}
        cls = ck.AsyncClient if is_async else ck.Client
        c = cls(config=None, retry_policy=policy(waits, **retry), providers=providers,
                ledger=f"sqlite:///{tmp_path / 'ledger.db'}")
        made.append(c)
        return c

    try:
        yield make
    finally:
        for c in made:
            await close(c)


async def run(value: Any) -> Any:
    """``await value`` when it is awaitable, else ``value``: one test body for sync and async clients."""
    return await value if inspect.isawaitable(value) else value


async def close(client: Any) -> None:
    """Close a client of either kind."""
    await run(client.aclose() if isinstance(client, ck.AsyncClient) else client.close())


async def read_stream(client: Any, model: str, prompt: str = "hi") -> tuple[list[ck.Chunk], Any]:
    """Read a whole stream from a client of either kind; returns the chunks read and the stream object.

    The error, if any, propagates; what was read before it is in ``.partial`` on the raised exception.
    """
    got: list[ck.Chunk] = []
    try:
        if isinstance(client, ck.AsyncClient):
            async with client.stream(model, prompt) as s:
                async for c in s:
                    got.append(c)
        else:
            with client.stream(model, prompt) as s:
                for c in s:
                    got.append(c)
    except ck.ProviderError as e:
        e.partial = got  # type: ignore[attr-defined]
        raise
    return got, s
