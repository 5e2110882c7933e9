"""computekit's default transports (urllib3 sync, aiohttp async) against a real HTTP/1.1 server on loopback.

No ``http_client=`` is passed, so every call goes through :class:`~computekit._transport.Urllib3Transport` or
:class:`~computekit._transport.AiohttpTransport` and real sockets. The server (:class:`Loopback`) is raw sockets in
threads so each test controls the bytes on the wire: framing (chunked, Content-Length, connection close), gzip,
pauses, resets, truncation, redirects, proxies. It counts connections, so keep-alive is observable.

Every wait is bounded: sockets have timeouts, the server's waits time out, its threads are joined with a timeout
(a thread still alive fails the test), and no client retries (``retry={"max_retries": 0}``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import gzip
import json
import socket
import struct
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from _support import chat_chunks, chat_json, usage_json

import computekit as ck
from computekit._transport import AiohttpTransport, Urllib3Transport
from computekit.pricing import PriceBook, PriceRef

KEY = "sk-test-transport-0000000000"
MODEL = "gpt-4o-mini"
SNAPSHOT = "gpt-4o-mini-2024-07-18"
WAIT_S = 5.0  # the longest any server thread waits for anything
both = pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
framings = pytest.mark.parametrize("framing", ["chunked", "length", "close"])

PROXY_VARS = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", "no_proxy",
              "NO_PROXY")


# ============================================================================================= the server


@dataclass
class Req:
    """One request the server read."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    conn: int
    fields: list[tuple[str, str]]  # every header line, in order, names lowercased

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.fields if k == name]

    def json(self) -> Any:
        return json.loads(self.body)


Handler = Callable[["Loopback", Req, socket.socket], "bool | None"]
"""Answers one request by writing to the socket; returns False when the connection must end afterwards."""


class Loopback:
    """An HTTP/1.1 server on 127.0.0.1: a thread per connection, keep-alive, each request answered by ``handler``."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[Req] = []
        self.connections = 0
        self.errors: list[BaseException] = []
        self.gate_waits: list[bool] = []  # what each gated stream's wait returned (True: the test opened the gate)
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        self._start(self._accept)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _start(self, target: Callable[..., None], *args: Any) -> None:
        t = threading.Thread(target=target, args=args, daemon=True)
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

    def _serve(self, sock: socket.socket, n: int) -> None:
        buf = b""
        try:
            while not self.stop.is_set():
                while b"\r\n\r\n" not in buf:
                    data = sock.recv(65536)
                    if not data:
                        return
                    buf += data
                head, buf = buf.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                fields = [(k.strip().lower(), v.strip()) for k, v in (line.split(":", 1) for line in lines[1:])]
                headers = dict(fields)
                size = int(headers.get("content-length", "0"))
                while len(buf) < size:
                    data = sock.recv(65536)
                    if not data:
                        return
                    buf += data
                req = Req(method, target, headers, buf[:size], n, fields)
                buf = buf[size:]
                with self._lock:
                    self.requests.append(req)
                if self.handler(self, req, sock) is False:
                    return
        except OSError:
            pass  # the client went away, or close() shut the socket
        except BaseException as e:  # a broken handler must fail the test, not vanish in a thread
            self.errors.append(e)
        finally:
            sock.close()

    def close(self) -> None:
        self.stop.set()
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
        assert not any(t.is_alive() for t in threads), "a server thread did not stop"
        assert not self.errors, self.errors


@pytest.fixture
def serve() -> Iterator[Callable[[Handler], Loopback]]:
    """Start loopback servers; each is stopped (threads joined, errors raised) when the test ends."""
    servers: list[Loopback] = []

    def start(handler: Handler) -> Loopback:
        s = Loopback(handler)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.close()


@pytest.fixture(autouse=True)
def _no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's proxy settings must not route loopback calls."""
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)


# ----------------------------------------------------------------------------------------- writing responses


def head(status: int, headers: dict[str, str], reason: str = "OK") -> bytes:
    lines = [f"HTTP/1.1 {status} {reason}"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def send_body(sock: socket.socket, status: int, body: bytes, reason: str = "OK", **headers: str) -> None:
    hdrs = {k.replace("_", "-"): v for k, v in headers.items()}
    sock.sendall(head(status, {"content-length": str(len(body)), **hdrs}, reason) + body)


def send_json(sock: socket.socket, obj: Any, status: int = 200, reason: str = "OK", **headers: str) -> None:
    send_body(sock, status, json.dumps(obj).encode(), reason, content_type="application/json", **headers)


def events(pieces: list[str], *, usage: bool = True) -> list[bytes]:
    """One SSE event per chat-completion chunk for ``pieces`` (then a usage chunk and ``[DONE]``)."""
    chunks = chat_chunks(pieces, usage=usage_json() if usage else None)
    return [b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks] + [b"data: [DONE]\n\n"]


def send_stream(srv: Loopback, sock: socket.socket, evs: list[bytes], framing: str,
                gate: threading.Event | None = None, gate_after: int = 2) -> bool:
    """Write ``evs`` as an SSE response, one write per event; with ``gate``, wait for it after ``gate_after``."""
    hdrs = {"content-type": "text/event-stream", "x-request-id": "req_stream"}
    if framing == "chunked":
        hdrs["transfer-encoding"] = "chunked"
    elif framing == "length":
        hdrs["content-length"] = str(sum(map(len, evs)))
    else:
        hdrs["connection"] = "close"
    sock.sendall(head(200, hdrs))
    for i, ev in enumerate(evs):
        if gate is not None and i == gate_after:
            srv.gate_waits.append(gate.wait(WAIT_S))
        sock.sendall(b"%x\r\n%s\r\n" % (len(ev), ev) if framing == "chunked" else ev)
        time.sleep(0.002)
    if framing == "chunked":
        sock.sendall(b"0\r\n\r\n")
    return framing != "close"


def reset(sock: socket.socket) -> bool:
    """Abort the connection: an RST, not a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
    return False


def chat(marker: str = "Hello there") -> Handler:
    """A handler answering ``marker``: as JSON, or as a chunked SSE stream when the request asks to stream."""

    def handler(srv: Loopback, req: Req, sock: socket.socket) -> bool | None:
        if req.json().get("stream"):
            return send_stream(srv, sock, events([marker]), "chunked")
        send_json(sock, chat_json(marker), x_request_id=f"req_{len(srv.requests)}")
        return None

    return handler


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ============================================================================================= the client


def make(is_async: bool, base_url: str, settings: dict[str, Any] | None = None, **provider: Any) -> Any:
    """A client of the default transport for ``base_url``; ``provider`` adds to its openai settings."""
    cls = ck.AsyncClient if is_async else ck.Client
    client = cls(config=None, ledger="none", retry={"max_retries": 0},
                 providers={"openai": {"base_url": base_url, "api_key": KEY, **provider}}, **(settings or {}))
    assert isinstance(client._transport, AiohttpTransport if is_async else Urllib3Transport)
    return client


async def close(client: Any, is_async: bool) -> None:
    if is_async:
        await client.aclose()
    else:
        client.close()


async def complete(client: Any, is_async: bool, prompt: str = "hi") -> ck.Completion:
    r: ck.Completion = await client.complete(f"openai:{MODEL}", prompt) if is_async else client.complete(
        f"openai:{MODEL}", prompt)
    return r


async def read_stream(client: Any, is_async: bool, on_chunk: Callable[[ck.Chunk], bool] | None = None,
                      ) -> tuple[list[ck.Chunk], Any]:
    """Read a stream; ``on_chunk`` returning True stops early (the stream is then closed by its ``with``)."""
    got: list[ck.Chunk] = []
    if is_async:
        async with client.stream(f"openai:{MODEL}", "hi") as s:
            async for c in s:
                got.append(c)
                if on_chunk is not None and on_chunk(c):
                    break
    else:
        with client.stream(f"openai:{MODEL}", "hi") as s:
            for c in s:
                got.append(c)
                if on_chunk is not None and on_chunk(c):
                    break
    return got, s


def expected_cost(usage: ck.Usage) -> Decimal:
    rates = PriceBook().rates(PriceRef("openai", SNAPSHOT, "openai", ()))
    assert rates is not None
    total = rates.cost(usage).total
    assert total is not None
    return total


# ============================================================================================= tests


@both
async def test_completion_is_sent_parsed_and_priced(serve: Any, is_async: bool) -> None:
    srv = serve(chat("ck-transport-complete"))
    client = make(is_async, srv.url)
    try:
        r = await complete(client, is_async, "Say hello")
    finally:
        await close(client, is_async)
    assert r.text == "ck-transport-complete"
    assert r.request_id == "req_1"
    assert r.usage == ck.Usage(input_tokens=12, output_tokens=5, cached_input_tokens=0)
    assert r.cost.total == expected_cost(r.usage) > 0
    assert r.cost.estimated is False
    [req] = srv.requests
    assert (req.method, req.target) == ("POST", "/v1/chat/completions")
    assert req.headers["authorization"] == f"Bearer {KEY}"
    assert req.headers["content-type"] == "application/json"
    assert req.headers["content-length"] == str(len(req.body))
    assert req.json() == {"model": MODEL, "messages": [{"role": "user", "content": "Say hello"}]}


@both
async def test_user_agent_is_computekit(serve: Any, is_async: bool) -> None:
    srv = serve(chat())
    client = make(is_async, srv.url)
    try:
        await complete(client, is_async)
        await read_stream(client, is_async)
    finally:
        await close(client, is_async)
    assert len(srv.requests) == 2
    for req in srv.requests:
        [ua] = req.all("user-agent")
        assert ua.startswith("computekit/")


@both
async def test_user_agent_set_by_the_caller_is_the_only_one(serve: Any, is_async: bool) -> None:
    srv = serve(chat())
    client = make(is_async, srv.url, headers={"User-Agent": "my-app/2.0"})
    try:
        await complete(client, is_async)
    finally:
        await close(client, is_async)
    [req] = srv.requests
    assert req.all("user-agent") == ["my-app/2.0"]


@both
async def test_sequential_calls_reuse_one_connection(serve: Any, is_async: bool) -> None:
    srv = serve(chat())
    client = make(is_async, srv.url)
    try:
        texts = [(await complete(client, is_async)).text for _ in range(20)]
        _, s = await read_stream(client, is_async)  # a stream read to its end gives its connection back too
        assert s.result.text == "Hello there"
        texts.append((await complete(client, is_async)).text)
    finally:
        await close(client, is_async)
    assert texts == ["Hello there"] * 21
    assert len(srv.requests) == 22
    assert srv.connections == 1
    assert {r.conn for r in srv.requests} == {1}


@both
async def test_gzip_body_is_decoded(serve: Any, is_async: bool) -> None:
    def handler(srv: Loopback, req: Req, sock: socket.socket) -> None:
        body = gzip.compress(json.dumps(chat_json("ck-transport-gzip")).encode())
        send_body(sock, 200, body, content_type="application/json", content_encoding="gzip")

    srv = serve(handler)
    client = make(is_async, srv.url)
    try:
        r1 = await complete(client, is_async)
        r2 = await complete(client, is_async)
    finally:
        await close(client, is_async)
    assert r1.text == r2.text == "ck-transport-gzip"
    assert srv.connections == 1


# ----------------------------------------------------------------------------------------- streaming


@both
@framings
async def test_stream_chunks_arrive_incrementally(serve: Any, is_async: bool, framing: str) -> None:
    gate = threading.Event()
    evs = events(["Hel", "lo", " there"])

    srv = serve(lambda srv, req, sock: send_stream(srv, sock, evs, framing, gate=gate, gate_after=2))
    client = make(is_async, srv.url)

    def first(c: ck.Chunk) -> bool:
        if c.text:
            gate.set()  # the server holds back the rest of the events until now
        return False

    try:
        chunks, s = await read_stream(client, is_async, first)
        again = await read_stream(client, is_async) if framing != "close" else None
    finally:
        await close(client, is_async)
    assert srv.gate_waits[0] is True, "the first chunk was not delivered before the server sent the rest"
    assert "".join(c.text for c in chunks) == "Hello there"
    assert s.result.text == "Hello there"
    assert s.result.request_id == "req_stream"
    assert s.result.usage == ck.Usage(input_tokens=12, output_tokens=5, cached_input_tokens=0)
    assert s.result.cost.total == expected_cost(s.result.usage)
    if again is not None:  # a fully read stream leaves its connection reusable
        assert again[1].result.text == "Hello there"
        assert srv.connections == 1


@both
@pytest.mark.parametrize("framing", ["chunked", "length"])
async def test_abandoned_stream_does_not_poison_the_pool(serve: Any, is_async: bool, framing: str) -> None:
    long = events([f"w{i} " for i in range(300)])

    def handler(srv: Loopback, req: Req, sock: socket.socket) -> bool | None:
        if req.json().get("stream"):
            return send_stream(srv, sock, long, framing)
        send_json(sock, chat_json("ck-transport-after-abandon"))
        return None

    srv = serve(handler)
    client = make(is_async, srv.url)
    try:
        for _ in range(2):
            got, _s = await read_stream(client, is_async, lambda c: bool(c.text))
            assert [c.text for c in got if c.text] == ["w0 "]
            r = await complete(client, is_async)
            assert r.text == "ck-transport-after-abandon"
    finally:
        await close(client, is_async)
    assert [bool(r.json().get("stream")) for r in srv.requests] == [True, False, True, False]


@both
async def test_stream_error_status_is_typed_with_its_body(serve: Any, is_async: bool) -> None:
    def handler(srv: Loopback, req: Req, sock: socket.socket) -> None:
        if len(srv.requests) == 1:
            send_json(sock, {"error": {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"}},
                      status=429, reason="Too Many Requests", x_request_id="req_429", retry_after="1")
        else:
            send_json(sock, chat_json("ck-transport-after-error"))

    srv = serve(handler)
    client = make(is_async, srv.url)
    try:
        with pytest.raises(ck.RateLimitError) as ei:
            await read_stream(client, is_async)
        r = await complete(client, is_async)
    finally:
        await close(client, is_async)
    e = ei.value
    assert e.status == 429
    assert e.body == {"error": {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"}}
    assert e.request_id == "req_429"
    assert e.headers["retry-after"] == "1"
    assert "slow down" in str(e)
    assert r.text == "ck-transport-after-error"
    assert srv.connections == 1, "the error body was read, so its connection is reused"


# ----------------------------------------------------------------------------------------- failures


@both
@pytest.mark.parametrize("kind", ["complete", "stream"])
async def test_connection_refused(is_async: bool, kind: str) -> None:
    client = make(is_async, f"http://127.0.0.1:{unused_port()}/v1")
    try:
        with pytest.raises(ck.APIConnectionError) as ei:
            await (complete(client, is_async) if kind == "complete" else read_stream(client, is_async))
    finally:
        await close(client, is_async)
    assert ei.value.status is None
    assert KEY not in str(ei.value)


def hang(seconds: float = WAIT_S) -> Handler:
    """A handler that reads the request and answers nothing (until the server stops, or ``seconds`` pass)."""

    def handler(srv: Loopback, req: Req, sock: socket.socket) -> bool:
        srv.stop.wait(seconds)
        return False

    return handler


@both
@pytest.mark.parametrize("kind", ["complete", "stream"])
async def test_no_answer_times_out(serve: Any, is_async: bool, kind: str) -> None:
    srv = serve(hang())
    client = make(is_async, srv.url, {"timeout": 0.3})
    t0 = time.monotonic()
    try:
        with pytest.raises(ck.APITimeoutError) as ei:
            await (complete(client, is_async) if kind == "complete" else read_stream(client, is_async))
    finally:
        await close(client, is_async)
    assert 0.25 < time.monotonic() - t0 < 3
    assert len(srv.requests) == 1, "no retry"
    assert type(ei.value) is ck.APITimeoutError  # a timeout, typed as one (also an APIConnectionError)
    assert ei.value.status is None


@both
async def test_provider_timeout_applies(serve: Any, is_async: bool) -> None:
    srv = serve(hang(1.5))  # then it hangs up: APIConnectionError, not the timeout 0.3 s asks for
    client = make(is_async, srv.url, timeout=0.3)
    try:
        with pytest.raises(ck.APITimeoutError):
            await complete(client, is_async)
    finally:
        await close(client, is_async)


@both
async def test_stream_that_stalls_mid_body_times_out(serve: Any, is_async: bool) -> None:
    never = threading.Event()
    evs = events(["Hel", "lo"])

    def handler(srv: Loopback, req: Req, sock: socket.socket) -> bool:
        send_stream(srv, sock, evs, "chunked", gate=never, gate_after=2)
        return False

    srv = serve(handler)
    client = make(is_async, srv.url, {"timeout": 0.3})
    got: list[str] = []

    def keep(c: ck.Chunk) -> bool:
        got.append(c.text)
        return False

    t0 = time.monotonic()
    try:
        with pytest.raises(ck.APITimeoutError):
            await read_stream(client, is_async, keep)
    finally:
        never.set()
        await close(client, is_async)
    assert time.monotonic() - t0 < 3
    assert "Hel" in got


@both
@pytest.mark.parametrize("kind", ["complete", "stream"])
async def test_reset_mid_body_is_a_connection_error(serve: Any, is_async: bool, kind: str) -> None:
    def handler(srv: Loopback, req: Req, sock: socket.socket) -> bool:
        if req.json().get("stream"):
            evs = events(["Hel", "lo"])
            sock.sendall(head(200, {"content-type": "text/event-stream", "transfer-encoding": "chunked"}))
            sock.sendall(b"%x\r\n%s\r\n" % (len(evs[0]), evs[0]))
        else:
            body = json.dumps(chat_json()).encode()
            sock.sendall(head(200, {"content-type": "application/json", "content-length": str(len(body))})
                         + body[:40])
        time.sleep(0.05)
        return reset(sock)

    srv = serve(handler)
    client = make(is_async, srv.url)
    try:
        with pytest.raises(ck.APIConnectionError) as ei:
            await (complete(client, is_async) if kind == "complete" else read_stream(client, is_async))
    finally:
        await close(client, is_async)
    assert KEY not in str(ei.value)
    assert len(srv.requests) == 1


@both
@pytest.mark.parametrize("kind", ["complete", "stream"])
async def test_body_shorter_than_its_content_length_is_a_connection_error(
    serve: Any, is_async: bool, kind: str
) -> None:
    """The response never fully arrived: a transport failure (retryable), not a malformed answer."""

    def handler(srv: Loopback, req: Req, sock: socket.socket) -> bool:
        if req.json().get("stream"):
            body = b"".join(events(["Hel", "lo"]))
            ctype = "text/event-stream"
        else:
            body = json.dumps(chat_json()).encode()
            ctype = "application/json"
        sock.sendall(head(200, {"content-type": ctype, "content-length": str(len(body) + 100)}) + body)
        sock.shutdown(socket.SHUT_WR)  # a clean FIN, 100 bytes early
        return False

    srv = serve(handler)
    client = make(is_async, srv.url)
    try:
        with pytest.raises(ck.APIConnectionError):
            await (complete(client, is_async) if kind == "complete" else read_stream(client, is_async))
    finally:
        await close(client, is_async)


@both
async def test_redirect_is_not_followed(serve: Any, is_async: bool) -> None:
    def handler(srv: Loopback, req: Req, sock: socket.socket) -> None:
        if req.target.startswith("/moved/"):
            send_json(sock, chat_json("followed"))
        else:
            send_body(sock, 307, b"", "Temporary Redirect",
                      location=f"http://127.0.0.1:{srv.port}/moved/v1/chat/completions")

    srv = serve(handler)
    client = make(is_async, srv.url)
    try:
        with pytest.raises(ck.APIStatusError) as ei:
            await complete(client, is_async)
    finally:
        await close(client, is_async)
    assert ei.value.status == 307
    assert [r.target for r in srv.requests] == ["/v1/chat/completions"]


# ----------------------------------------------------------------------------------------- proxies, loops


@both
async def test_http_proxy_from_the_environment(serve: Any, monkeypatch: pytest.MonkeyPatch, is_async: bool) -> None:
    target = serve(chat("direct"))
    proxy = serve(chat("via-proxy"))
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
    client = make(is_async, target.url)
    try:
        r = await complete(client, is_async)
    finally:
        await close(client, is_async)
    assert r.text == "via-proxy"
    assert target.requests == []
    [req] = proxy.requests
    assert req.method == "POST"
    assert req.target == f"http://127.0.0.1:{target.port}/v1/chat/completions", "absolute-form request line"
    assert req.headers["authorization"] == f"Bearer {KEY}"


@both
async def test_no_proxy_bypasses_the_proxy(serve: Any, monkeypatch: pytest.MonkeyPatch, is_async: bool) -> None:
    target = serve(chat("direct"))
    proxy = serve(chat("via-proxy"))
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    client = make(is_async, target.url)
    try:
        r = await complete(client, is_async)
    finally:
        await close(client, is_async)
    assert r.text == "direct"
    assert proxy.requests == []
    assert [q.target for q in target.requests] == ["/v1/chat/completions"]


@both
async def test_a_new_client_reads_the_proxy_environment_again(
    serve: Any, monkeypatch: pytest.MonkeyPatch, is_async: bool
) -> None:
    """A proxy decision made for one client (no proxy) is not handed to a client made after HTTP_PROXY is set."""
    target = serve(chat("direct"))
    proxy = serve(chat("via-proxy"))
    before = make(is_async, target.url)
    try:
        assert (await complete(before, is_async)).text == "direct"
    finally:
        await close(before, is_async)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
    after = make(is_async, target.url)
    try:
        assert (await complete(after, is_async)).text == "via-proxy"
    finally:
        await close(after, is_async)
    assert len(target.requests) == len(proxy.requests) == 1


def test_async_client_on_two_event_loops(serve: Any, caplog: pytest.LogCaptureFixture) -> None:
    """Each loop gets its own session; the one left on a finished loop is closed, not reported as leaked."""
    srv = serve(chat("ck-transport-two-loops"))
    client = make(True, srv.url)

    async def call(last: bool = False) -> str:
        try:
            r: ck.Completion = await client.complete(f"openai:{MODEL}", "hi")
            return r.text
        finally:
            if last:
                await client.aclose()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = asyncio.run(call())
        second = asyncio.run(call(last=True))
        gc.collect()
    assert (first, second) == ("ck-transport-two-loops", "ck-transport-two-loops")
    assert len(srv.requests) == 2
    assert srv.connections == 2, "a session (and its connections) belongs to one loop"
    # The first loop's socket can only be closed by the collector once that loop is gone (a silent-by-default
    # "unclosed transport" ResourceWarning); the session and connector must not be reported as leaked.
    leaks = [str(w.message) for w in caught if "Unclosed" in str(w.message)]
    assert leaks == []
    assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == []


# ------------------------------------------------------------------------------------------------ decoding, limits


def test_the_inflater_decodes_a_bounded_piece_at_a_time() -> None:
    import gzip
    import zlib

    from computekit._transport import _READ_SIZE, _Inflater

    bomb = gzip.compress(b"\0" * (8 * 1024 * 1024))
    pieces = list(_Inflater("gzip", "p", None).feed(bomb))
    assert sum(map(len, pieces)) == 8 * 1024 * 1024
    assert max(map(len, pieces)) <= _READ_SIZE
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    deflated = raw.compress(b"hello") + raw.flush()
    assert b"".join(_Inflater("deflate", "p", None).feed(deflated)) == b"hello"  # raw deflate, as some servers send
    assert b"".join(_Inflater("deflate", "p", None).feed(zlib.compress(b"hello"))) == b"hello"
    assert b"".join(_Inflater("identity", "p", None).feed(b"plain")) == b"plain"
    with pytest.raises(ck.MalformedResponseError, match="content-encoding"):
        _Inflater("br", "p", None)
    with pytest.raises(ck.MalformedResponseError, match="does not decode"):
        list(_Inflater("gzip", "p", None).feed(b"not gzip at all"))


def test_an_announced_body_over_the_limit_is_refused_before_reading() -> None:
    from computekit._http import HTTPRequest
    from computekit._transport import _Body

    req = HTTPRequest("GET", "https://h.test/", {}, max_bytes=10)
    with pytest.raises(ck.ResponseTooLargeError) as info:
        _Body(req, 200, {"content-length": "11"}, "p", "m")
    assert (info.value.limit, info.value.status, info.value.provider) == (10, 200, "p")
    body = _Body(req, 200, {}, "p", "m")
    body.add(b"0123456789")
    with pytest.raises(ck.ResponseTooLargeError):
        body.add(b"x")


def test_connection_errors_never_show_a_query() -> None:
    from computekit._transport import _connection_error

    err = _connection_error(OSError("GET /out.png?X-Amz-Signature=topsecret&b=1 failed"), "p", None)
    assert "topsecret" not in str(err)
    assert "/out.png?..." in str(err)


def test_an_async_client_dropped_without_aclose_is_not_reported_as_leaked(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A forgotten ``aclose()`` must not flood stderr with aiohttp's "Unclosed client session" / "Unclosed
    connector" reports when the client is collected: its session is closed as it goes."""
    srv = serve(chat("ck-transport-dropped"))

    async def call() -> str:
        client = make(True, srv.url)
        r: ck.Completion = await client.complete(f"openai:{MODEL}", "hi")
        del client  # no aclose(): collected while its loop still runs
        gc.collect()
        await asyncio.sleep(0)
        return r.text

    gc.collect()  # what earlier tests left is reported now, not in the window below
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert asyncio.run(call()) == "ck-transport-dropped"
        gc.collect()
    assert [str(w.message) for w in caught if "Unclosed" in str(w.message)] == []
    assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == []


def test_a_dropped_async_clients_sessions_are_closed_before_anything_collected_with_it_is_finalized(
    serve: Any,
) -> None:
    """Python runs the ``__del__`` methods of objects collected together (a reference cycle) in no set order: had
    the transport closed its sessions in its own ``__del__``, aiohttp's, run first, would report them unclosed.
    Here the first finalizer of the cycle (its object was made first) already finds them closed."""
    srv = serve(chat("ck-transport-cycle"))
    seen: list[list[bool]] = []

    class Probe:
        box: dict[str, Any]

        def __del__(self) -> None:
            seen.append([s.closed for s in sessions])

    async def call() -> list[Any]:
        probe = Probe()
        client = make(True, srv.url)
        await client.complete(f"openai:{MODEL}", "hi")
        probe.box = {"probe": probe, "client": client}  # garbage only together: left to the collector
        return list(client._transport._sessions.values())

    gc.collect()
    gc.disable()  # collected by the gc.collect() below, not whenever the interpreter chooses
    try:
        sessions = asyncio.run(call())
        assert sessions
        assert not any(s.closed for s in sessions)
        gc.collect()
    finally:
        gc.enable()
    assert seen == [[True] * len(sessions)]


# ------------------------------------------------------------------------------------------------ the sync call path


class _Wire:
    """A stand-in socket that records each ``sendall``."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def sendall(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def settimeout(self, _: float | None) -> None:
        return None


def _written(cls: type, method: str, body: Any) -> list[bytes]:
    conn = cls("h.test", 80)
    conn.sock = wire = _Wire()
    conn.request(method, "/v1/x?a=1", body=body, headers={"content-type": "application/json"})
    return wire.writes


@pytest.mark.parametrize("body", [b'{"a":1}', None, [b'{"a":', b"1}"]], ids=["bytes", "none", "chunked"])
def test_a_request_head_leaves_with_its_body_in_one_write(body: Any) -> None:
    from urllib3.connection import HTTPConnection, HTTPSConnection

    from computekit._transport import _armed_class

    method = "GET" if body is None else "POST"
    ours, stock = _written(_armed_class(HTTPConnection), method, body), _written(HTTPConnection, method, body)
    assert b"".join(ours) == b"".join(stock), "the same bytes on the wire"
    assert len(ours) == max(len(stock) - 1, 1)
    assert ours[0].startswith(f"{method} /v1/x?a=1 HTTP/1.1\r\n".encode())
    if body == b'{"a":1}':
        assert ours == [stock[0] + body]
    assert len(_written(_armed_class(HTTPSConnection), method, body)) == len(ours)


def test_a_request_whose_body_fails_is_not_sent_in_part() -> None:
    from urllib3.connection import HTTPConnection

    from computekit._transport import _armed_class

    def body() -> Iterator[bytes]:
        raise OSError("the body's file went away")
        yield b""  # pragma: no cover

    conn = _armed_class(HTTPConnection)("h.test", 80)
    conn.sock = wire = _Wire()
    with pytest.raises(OSError, match="went away"):
        conn.request("POST", "/v1/x", body=body(), headers={"content-type": "application/json"})
    assert wire.writes == []
    assert conn._held is None


def test_a_stand_in_connection_class_is_sent_to_as_it_is() -> None:
    """vcrpy's recording stand-ins take each write as a piece of the request: they keep http.client's writes."""
    from urllib3.connection import HTTPConnection

    from computekit._transport import _armed_class, _OneWrite

    stand_in = type("VCRConnection", (HTTPConnection,), {})
    assert _OneWrite not in _armed_class(stand_in).__mro__
    assert "response_class" not in vars(_armed_class(stand_in))


HEADS = {
    "plain": b"content-type: application/json\r\ncontent-length: 2\r\nx-request-id: req_1\r\n\r\n",
    "blanks": b"x-a:\r\nx-b:   spaced  \r\nx-c:\t\ttabbed\r\nx-d:no-space\r\n\r\n",
    "repeated": b"set-cookie: a=1\r\nset-cookie: b=2\r\nx-ratelimit-limit-requests: 30000\r\n\r\n",
    "latin-1": b"x-name: caf\xe9\r\n\r\n",
    "lf only": b"x-a: 1\nx-b: 2\n\n",
    "folded": b"x-long: first\r\n  second\r\nx-b: 2\r\n\r\n",
    "no colon": b"x-a: 1\r\nnot a header\r\nx-b: 2\r\n\r\n",
    "space in name": b"x a: 1\r\nx-b: 2\r\n\r\n",
    "empty name": b": 1\r\nx-b: 2\r\n\r\n",
    "bare CR": b"x-a: 1\rx-c: 3\r\nx-b: 2\r\n\r\n",
    "no end": b"x-a: 1\r\nx-b: 2",
    "none": b"\r\n",
}


@pytest.mark.parametrize("raw", list(HEADS.values()), ids=list(HEADS))
def test_a_response_head_parses_as_the_email_parser_parses_it(raw: bytes) -> None:
    import http.client
    import io

    from computekit._transport import _parse_head, _response_class

    def state(parse: Callable[[Any], Any]) -> dict[str, Any]:
        fp = io.BufferedReader(io.BytesIO(raw + b"BODY"))
        msg = parse(fp)
        seen = {k: v for k, v in vars(msg).items() if k != "defects"}
        return {**seen, "defects": [type(d) for d in msg.defects], "class": type(msg), "rest": fp.read()}

    assert state(_parse_head) == state(http.client.parse_headers)
    assert _response_class() is not None, "this Python's http.client is the one the fast parse is written for"


def test_the_response_class_reads_what_the_stock_one_reads() -> None:
    import http.client

    from computekit._transport import _response_class

    cls = _response_class()
    assert cls is not None
    assert issubclass(cls, http.client.HTTPResponse)
    raw = head(200, {"content-length": "5", "x-request-id": "req_7"}) + b"hello"

    class Sock:
        def makefile(self, mode: str) -> Any:
            import io

            return io.BufferedReader(io.BytesIO(raw))

    for kind in (cls, http.client.HTTPResponse):
        r = kind(Sock(), method="POST")  # type: ignore[arg-type]
        r.begin()
        assert (r.status, r.length, r.chunked, r.will_close, r.getheader("x-request-id"), r.read()) == (
            200, 5, False, False, "req_7", b"hello")


def test_a_request_reaches_its_origin_pool_with_its_query(serve: Any) -> None:
    from computekit._http import HTTPRequest

    srv = serve(lambda s, req, sock: send_json(sock, {"ok": True}))
    transport = Urllib3Transport(WAIT_S)
    url = f"{srv.url}/models?after=a%20b&limit=2"
    assert transport.send(HTTPRequest("GET", url, {}), "p", None).json() == {"ok": True}
    assert srv.requests[-1].target == "/v1/models?after=a%20b&limit=2"
    pool = transport._origins[f"http://127.0.0.1:{srv.port}"]
    transport.send(HTTPRequest("GET", url, {}), "p", None)
    assert transport._origins[f"http://127.0.0.1:{srv.port}"] is pool
    assert srv.connections == 1
    pool.close()
    assert transport._direct is not None
    transport._direct.clear()  # a pool closed and dropped: the next request takes a fresh one
    assert transport.send(HTTPRequest("GET", url, {}), "p", None).status == 200
    assert transport._origins[f"http://127.0.0.1:{srv.port}"] is not pool
    assert srv.connections == 2
    transport.close()
    assert transport._origins == {}
    assert transport.send(HTTPRequest("GET", url, {}), "p", None).status == 200
    assert srv.connections == 3
    transport.close()


def test_a_body_announced_twice_over_the_limit_is_refused(serve: Any) -> None:
    from computekit._http import HTTPRequest

    def twice(srv: Loopback, req: Req, sock: socket.socket) -> bool:
        sock.sendall(head(200, {"content-length": "20, 20"}) + b"x" * 20)
        return False

    srv = serve(twice)
    transport = Urllib3Transport(WAIT_S)
    with pytest.raises(ck.ResponseTooLargeError):
        transport.send(HTTPRequest("GET", srv.url, {}, max_bytes=10), "p", None)
    transport.close()
