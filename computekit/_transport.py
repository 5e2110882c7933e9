"""The only I/O: HTTP, written once sync and once async with the same method names (``send``, ``stream``,
``close``). Everything else (building requests, parsing, pricing, deciding to retry) is shared, pure code.

Default transports are urllib3 (sync) and aiohttp (async): pooled, keep-alive clients whose per-request CPU is a
fraction of httpx's, which is what lets computekit add pricing and a ledger and still beat the vendor SDKs on
the call path (see benchmarks/). Passing ``http_client=`` an ``httpx.Client`` / ``httpx.AsyncClient`` uses
httpx instead (custom transports, mocks, proxies with auth ...). Neither library retries or follows redirects
here: computekit's loop is the only retry loop. Every client library is imported on first use.

What every transport guarantees (``docs/security.md``): a URL that URL parsers could read as different hosts is
refused before anything is sent; redirects are never followed (whatever client is passed); a decoded body larger
than the request's ``max_bytes`` is refused (``ResponseTooLargeError``) with memory bounded while decoding; the
request's total deadline bounds every phase (connect, headers, body, stream reads); ``public_only`` requests
(output downloads) never reach a private, loopback or link-local address; pools are dropped in a forked child.

Every transport hands ``inproc://`` URLs to :mod:`computekit._inprocess` (in-process servers such as
``computekit.testing.FakeProvider``) before touching the network: one string comparison per request.
"""


from __future__ import annotations

import contextlib
import functools
import heapq
import itertools
import os
import re
import socket
import sys
import threading
import time
import weakref
import zlib
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from . import _constants, _inprocess, _urls
from ._constants import DEFAULT_CONNECT_TIMEOUT_S, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_KEEPALIVE
from ._exceptions import (
    APIConnectionError,
    APITimeoutError,
    MalformedResponseError,
    ProviderError,
    ResponseTooLargeError,
    UnsafeURLError,
)
from ._http import HTTPRequest, HTTPResponse
from ._version import __version__

if TYPE_CHECKING:
    import asyncio
    import ssl

    import aiohttp
    import httpx
    import urllib3

__all__ = ["AsyncTransport", "SyncTransport", "async_transport", "sync_transport"]

_USER_AGENT = f"computekit/{__version__}"
ERROR_STATUS = 300
"""Statuses from here up are errors: redirects are not followed (a POST must not be replayed elsewhere)."""
_READ_SIZE = 65536
_ACCEPT_ENCODING = "gzip, deflate"
"""What computekit decodes itself, a bounded piece at a time (httpx would inflate a whole network read at once)."""
_MAX_ORIGINS = 32
"""Origins whose pool a sync transport keeps at hand (beyond them, the pool manager's own LRU finds them)."""
_PROXY_DECISIONS_KEPT = 1024
"""Origins whose proxy decision a transport remembers: past it, all are forgotten (and read again). A long-running
process may reach hosts without end (downloads, per-call base URLs)."""
_MIN_WAIT_S = 0.001
"""The shortest read timeout handed to a socket once a deadline has passed (zero would mean 'no timeout')."""


class SyncTransport(Protocol):
    """Blocking HTTP: what :class:`~computekit.Client` needs."""

    def send(self, req: HTTPRequest, provider: str, model: str | None) -> HTTPResponse: ...

    def stream(
        self, req: HTTPRequest, provider: str, model: str | None
    ) -> contextlib.AbstractContextManager[tuple[HTTPResponse, Iterator[bytes]]]: ...

    def close(self) -> None: ...


class AsyncTransport(Protocol):
    """Non-blocking HTTP: what :class:`~computekit.AsyncClient` needs."""

    async def send(self, req: HTTPRequest, provider: str, model: str | None) -> HTTPResponse: ...

    def stream(
        self, req: HTTPRequest, provider: str, model: str | None
    ) -> contextlib.AbstractAsyncContextManager[tuple[HTTPResponse, AsyncIterator[bytes]]]: ...

    async def close(self) -> None: ...


def sync_transport(default_timeout: float, http_client: Any = None) -> SyncTransport:
    """The sync transport: httpx when an ``httpx.Client`` is given, else urllib3."""
    if http_client is not None:
        return HttpxSyncTransport(default_timeout, http_client)
    return Urllib3Transport(default_timeout)


def async_transport(default_timeout: float, http_client: Any = None) -> AsyncTransport:
    """The async transport: httpx when an ``httpx.AsyncClient`` is given, else aiohttp."""
    if http_client is not None:
        return HttpxAsyncTransport(default_timeout, http_client)
    return AiohttpTransport(default_timeout)


# ============================================================================================= shared pieces


def _timeout_error(kind: str, provider: str, model: str | None, *, sent: bool = True) -> APITimeoutError:
    err = APITimeoutError(f"timed out ({kind})", provider=provider, model=model)
    err.maybe_processed = sent
    return err


_QUERY = re.compile(r"\?[^\s'\"<>)]*")


def _scrub(text: str) -> str:
    """``text`` with every URL query hidden: libraries name the URL in their errors, and a pre-signed URL's query
    is a credential."""
    return _QUERY.sub("?...", text)


# ``scheme://user:password@``: a proxy URL's credentials, should a library put one in its error message.
_URL_PASSWORD = re.compile(r"(?i)([a-z][a-z0-9+.-]*://[^/\s:@'\"]*:)[^/\s@'\"]*@")


def _connection_error(e: BaseException, provider: str, model: str | None, *, sent: bool = True
                      ) -> APIConnectionError:
    # The message names the failure only: never the request (its headers hold the key), nor a proxy's password,
    # nor a URL's query (a pre-signed URL's signature).
    why = _URL_PASSWORD.sub(r"\1****@", f"{type(e).__name__}: {e}")
    err = APIConnectionError(_scrub(f"connection failed: {why}"), provider=provider, model=model)
    # ``sent=False``: no connection was made (refused, DNS, connect timeout), so the host never saw the request
    # and even a request that starts billed work may be sent again.
    err.maybe_processed = sent
    return err


def _deadline(req: HTTPRequest) -> float | None:
    """The monotonic time the whole exchange must end by, if the request has a total deadline."""
    return None if req.total_timeout is None else time.monotonic() + req.total_timeout


def _watch(give_up: float | None, provider: str, model: str | None) -> Callable[[], None]:
    """A check to run while reading: raises once the request's total deadline has passed. Per-read timeouts
    cannot bound a server that drips bytes; the clock can."""
    if give_up is None:
        return _no_check

    def check() -> None:
        if time.monotonic() > give_up:
            raise _timeout_error("total deadline", provider, model)

    return check


def _no_check() -> None:
    return None


def _passed(give_up: float | None) -> bool:
    return give_up is not None and time.monotonic() >= give_up


def _headers(req: HTTPRequest) -> dict[str, str]:
    # Case-insensitive: a caller's ``User-Agent`` (provider ``headers``) must replace ours, not come second.
    if any(k.lower() == "user-agent" for k in req.headers):
        return req.headers
    return {**req.headers, "user-agent": _USER_AGENT}


def _limit(req: HTTPRequest) -> int:
    # Read at call time, so that the module default can be changed.
    return req.max_bytes if req.max_bytes is not None else _constants.MAX_RESPONSE_BYTES


def _too_large(limit: int, status: int | None, headers: Mapping[str, str], provider: str, model: str | None
               ) -> ResponseTooLargeError:
    err = ResponseTooLargeError(
        f"the response body is larger than the {limit}-byte limit for this call and was refused (raise the "
        "verb's limit under [limits] in computekit.toml if such answers are expected)",
        provider=provider, model=model, status=status, headers={k.lower(): v for k, v in headers.items()},
    )
    err.limit = limit
    return err


class _Body:
    """A response body collected up to its limit (announced or received): the rest is never read."""

    __slots__ = ("headers", "limit", "model", "parts", "provider", "size", "status")

    def __init__(self, req: HTTPRequest, status: int, headers: Mapping[str, str], provider: str,
                 model: str | None) -> None:
        self.limit = _limit(req)
        self.status, self.headers, self.provider, self.model = status, headers, provider, model
        self.parts: list[bytes] = []
        self.size = 0
        announced = headers.get("content-length")
        if announced and announced.strip().isdigit() and int(announced) > self.limit:
            raise self.error()

    def error(self) -> ResponseTooLargeError:
        return _too_large(self.limit, self.status, self.headers, self.provider, self.model)

    def add(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise self.error()
        self.parts.append(data)

    def content(self) -> bytes:
        return self.parts[0] if len(self.parts) == 1 else b"".join(self.parts)


class _Inflater:
    """Decodes ``gzip`` / ``deflate`` bodies at most :data:`_READ_SIZE` bytes at a time: a small compressed answer
    that inflates to gigabytes is refused after its limit, never held in memory whole."""

    def __init__(self, encoding: str | None, provider: str, model: str | None) -> None:
        codings = [c.strip().lower() for c in (encoding or "").split(",")]
        codings = [c for c in codings if c and c != "identity"]
        self._raw_deflate = False
        if not codings:
            self._d: Any = None
        elif codings in (["gzip"], ["x-gzip"]):
            self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif codings == ["deflate"]:
            self._d = zlib.decompressobj()
            self._raw_deflate = True  # some servers send raw deflate: retried as such on the first error
        else:
            raise MalformedResponseError(f"unsupported content-encoding {encoding!r} (computekit asks for "
                                         f"{_ACCEPT_ENCODING})", provider=provider, model=model)
        self.provider, self.model = provider, model

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self._d is None:
            if data:
                yield data
            return
        while True:
            try:
                out = self._d.decompress(data, _READ_SIZE)
            except zlib.error as e:
                if self._raw_deflate:
                    self._raw_deflate = False
                    self._d = zlib.decompressobj(-zlib.MAX_WBITS)
                    continue
                raise MalformedResponseError(f"the response body does not decode: {e}", provider=self.provider,
                                             model=self.model) from e
            self._raw_deflate = False
            if out:
                yield out
            data = self._d.unconsumed_tail
            if not data and len(out) < _READ_SIZE:
                return


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """One TLS context for every connection: building one (and loading CA certificates) costs ~50 ms."""
    import ssl

    try:
        import certifi

        return ssl.create_default_context(cafile=certifi.where())
    except ImportError:  # pragma: no cover - certifi comes with httpx
        return ssl.create_default_context()


def _env_proxy(url: str, seen: dict[tuple[str, str], str | None]) -> str | None:
    """The proxy the environment (``HTTP(S)_PROXY``, ``NO_PROXY``) sets for ``url``'s origin, if any.

    Read once per origin per client (``seen`` is the client's): reading the environment and parsing NO_PROXY
    per request is measurable. A process-wide cache would hand a new client the proxy decision of an old one
    made under another environment; httpx likewise reads it when a client is made.
    """
    scheme, _, rest = url.partition("://")
    key = (scheme.lower(), rest.split("/", 1)[0].rsplit("@", 1)[-1].lower())
    try:
        return seen[key]
    except KeyError:
        if len(seen) >= _PROXY_DECISIONS_KEPT:
            seen.clear()
        proxy = seen[key] = _env_proxy_for(*key)
        return proxy


def _proxy_credentials(proxy: str) -> tuple[str, str | None]:
    """``proxy`` without its userinfo, and the ``Proxy-Authorization`` value the userinfo stands for. The
    libraries are given the bare URL: they print the URL they hold in their errors (which reach messages and
    spans), and urllib3 would not send the credentials of a URL at all."""
    import base64
    from urllib.parse import unquote, urlsplit, urlunsplit

    parts = urlsplit(proxy)
    userinfo, at, host = parts.netloc.rpartition("@")
    if not at:
        return proxy, None
    user, _, password = userinfo.partition(":")
    token = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode("ascii")
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment)), f"Basic {token}"


def _env_proxy_for(scheme: str, netloc: str) -> str | None:
    import urllib.request

    host = netloc.rsplit(":", 1)[0] if not netloc.endswith("]") else netloc
    proxy = urllib.request.getproxies().get(scheme)
    if proxy and not urllib.request.proxy_bypass(host):
        return proxy
    return None


# ============================================================================================= fork safety

_TRANSPORTS: weakref.WeakSet[Any] = weakref.WeakSet()
"""Every default transport alive: a forked child drops their pools (the parent's sockets are not the child's)."""


def _after_fork_in_child() -> None:
    global _WATCHDOG
    _WATCHDOG = _Watchdog()  # the parent's watchdog thread does not exist here
    for transport in list(_TRANSPORTS):
        transport._forget_pools()


if hasattr(os, "register_at_fork"):  # pragma: no branch - POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)


# ============================================================================================= deadline watchdog


class _Alarm:
    """One armed exchange: the connection whose socket is shut if its deadline passes first."""

    __slots__ = ("conn", "done", "fired")

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.done = False
        self.fired = False

    def fire(self) -> None:
        self.fired = True
        sock = getattr(self.conn, "sock", None)
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                # The base class's shutdown, also for a TLS socket: a blocked read returns at once, in any thread.
                socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Watchdog:
    """One daemon thread for every sync exchange with a deadline: when a deadline passes it shuts that exchange's
    socket, which ends a read blocked on a server that drips its headers or body a byte at a time (urllib3's
    timeouts are per read, so they alone cannot bound the exchange)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Alarm]] = []
        self._seq = itertools.count()
        self._live = 0
        self._thread: threading.Thread | None = None

    def arm(self, give_up: float, conn: Any) -> _Alarm:
        alarm = _Alarm(conn)
        with self._cond:
            if len(self._heap) > 64 and len(self._heap) > 2 * self._live:  # drop alarms already disarmed
                self._heap = [e for e in self._heap if not e[2].done]
                heapq.heapify(self._heap)
            entry = (give_up, next(self._seq), alarm)
            heapq.heappush(self._heap, entry)
            self._live += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="computekit-deadlines", daemon=True)
                self._thread.start()
            # Wake the thread only when this deadline comes first: otherwise it already wakes in time (at the
            # earlier deadline it waits for) and sees this one then. A wake-up per request costs a thread switch
            # on every call.
            if self._heap[0] is entry:
                self._cond.notify()
        return alarm

    def disarm(self, alarm: _Alarm | None) -> None:
        if alarm is not None and not alarm.done:
            with self._cond:
                alarm.done = True
                self._live -= 1

    def _run(self) -> None:
        with self._cond:
            while True:
                if not self._heap:
                    self._cond.wait()
                    continue
                give_up, _, alarm = self._heap[0]
                if alarm.done:
                    heapq.heappop(self._heap)
                    continue
                wait = give_up - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
                alarm.done = True
                self._live -= 1
                alarm.fire()


_WATCHDOG = _Watchdog()
_armed = threading.local()
"""The deadline of the exchange this thread is about to send (``give_up``) and its alarm once armed."""


class _ArmOnRequest:
    """Mixed into urllib3's connection classes: arms the watchdog when a request starts on the connection."""

    def request(self, *args: Any, **kwargs: Any) -> Any:
        give_up = getattr(_armed, "give_up", None)
        if give_up is not None:
            _armed.alarm = _WATCHDOG.arm(give_up, self)
        return super().request(*args, **kwargs)  # type: ignore[misc]


_HEADER_LINE = re.compile(rb"([\x21-\x39\x3b-\x7e]+):([^\r\n]*)\r?\n")
"""A plain ``name: value`` header line: a name the email parser takes as one (printable ASCII but ``:``), no
continuation, no stray CR or LF inside."""


def _parse_head(fp: Any, _class: type | None = None) -> Any:
    """``http.client.parse_headers`` without the email parser when every line is a plain ``name: value``: the
    same message (names, values with leading blanks stripped, an empty payload, no defects) in a tenth of the
    time (~30 µs a response). Any other line (folded, malformed, a bare CR) goes to the email parser as there."""
    import email.parser
    import http.client

    cls = http.client.HTTPMessage if _class is None else _class
    lines = http.client._read_headers(fp)  # type: ignore[attr-defined]  # (its limits: line length, count)
    if lines[-1] in (b"\r\n", b"\n"):
        msg = cls()
        for line in lines[:-1]:
            m = _HEADER_LINE.fullmatch(line)
            if m is None:
                break
            msg.set_raw(m[1].decode("ascii"), m[2].decode("iso-8859-1").lstrip(" \t"))
        else:
            msg.set_payload("")
            return msg
    return email.parser.Parser(_class=cls).parsestr(b"".join(lines).decode("iso-8859-1"))


@functools.cache
def _response_class() -> type | None:
    """``http.client.HTTPResponse`` whose ``begin`` parses the head with :func:`_parse_head`: the stdlib's own
    ``begin``, its global ``parse_headers`` bound to ours. ``None`` (the stock class is kept) when this Python's
    ``begin`` or ``parse_headers`` is not the one this was written against."""
    import http.client
    import inspect
    import types

    begin = http.client.HTTPResponse.begin
    code = begin.__code__
    known = list(inspect.signature(http.client.parse_headers).parameters) == ["fp", "_class"]
    if code.co_freevars or "parse_headers" not in code.co_names or not known \
            or not hasattr(http.client, "_read_headers"):
        return None
    # A snapshot of http.client's globals, with parse_headers replaced: begin reads its constants from it.
    names = {**vars(http.client), "parse_headers": _parse_head}
    fast = types.FunctionType(code, names, begin.__name__, begin.__defaults__)
    return type("HTTPResponse", (http.client.HTTPResponse,), {"begin": fast, "__module__": __name__})


class _OneWrite:
    """Mixed into urllib3's own connection classes: the request head goes out with the first piece of the body, in
    one ``sendall``, instead of a write for each (http.client writes the head alone). Half the system calls and
    server wake-ups of a small POST, the same bytes on the wire. Responses are read with :func:`_response_class`."""

    _held: bytes | None = None
    _hold: bool = False

    def request(self, *args: Any, **kwargs: Any) -> Any:
        try:
            done = super().request(*args, **kwargs)  # type: ignore[misc]
        except BaseException:
            self._held, self._hold = None, False  # a request that failed half-built is not sent in part
            raise
        held, self._held, self._hold = self._held, None, False
        if held is not None:  # a request without a body: its head goes out now
            super().send(held)  # type: ignore[misc]
        return done

    def endheaders(self, *args: Any, **kwargs: Any) -> None:
        self._hold = True  # the next send() is the head: held for the body
        super().endheaders(*args, **kwargs)  # type: ignore[misc]

    def send(self, data: Any) -> None:
        if self._hold and isinstance(data, bytes):
            self._hold, self._held = False, data
            return
        held, self._held, self._hold = self._held, None, False
        if held is not None:
            if isinstance(data, bytes):
                data = held + data
            else:
                super().send(held)  # type: ignore[misc]
        super().send(data)  # type: ignore[misc]


_ARMED_CLASSES: dict[type, type] = {}


def _armed_class(base: type) -> type:
    """``base`` (urllib3's connection class, or the stand-in vcrpy puts in its place) with the watchdog mixed in
    (and, for urllib3's own classes, the head written with the body: a stand-in records what it is sent)."""
    cls = _ARMED_CLASSES.get(base)
    if cls is None:
        from urllib3.connection import HTTPConnection, HTTPSConnection

        mixins: tuple[type, ...] = (_ArmOnRequest,)
        attrs: dict[str, Any] = {}
        if base in (HTTPConnection, HTTPSConnection):
            mixins = (_ArmOnRequest, _OneWrite)
            response = _response_class()
            if response is not None:
                attrs["response_class"] = response
        cls = _ARMED_CLASSES[base] = type(f"Armed{base.__name__}", (*mixins, base), attrs)
    return cls


@functools.cache
def _pool_classes() -> dict[str, type]:
    """urllib3 pool classes whose connections arm the watchdog. ``ConnectionCls`` is looked up on the base class
    at each connection, so that vcrpy's recording stand-ins (patched there) are still used."""
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    class Pool(HTTPConnectionPool):
        @property
        def ConnectionCls(self) -> type:  # type: ignore[override]
            return _armed_class(HTTPConnectionPool.ConnectionCls)

    class TLSPool(HTTPSConnectionPool):
        @property
        def ConnectionCls(self) -> type:  # type: ignore[override]
            return _armed_class(HTTPSConnectionPool.ConnectionCls)

    return {"http": Pool, "https": TLSPool}


# ============================================================================================= urllib3 (sync)


def _urllib3_error(e: Exception, provider: str, model: str | None, give_up: float | None = None) -> ProviderError:
    import urllib3.exceptions as ux

    if _passed(give_up):  # the watchdog shut the socket, or a read ran out of time at the deadline
        return _timeout_error("total deadline", provider, model)
    # urllib3 2 makes NewConnectionError (refused, unresolvable) a ConnectTimeoutError: it is not a timeout.
    # Both mean no connection was made: the request was never sent.
    sent = not isinstance(e, ux.ConnectTimeoutError)
    if isinstance(e, (ux.TimeoutError, TimeoutError)) and not isinstance(e, ux.NewConnectionError):
        return _timeout_error(type(e).__name__, provider, model, sent=sent)
    return _connection_error(e, provider, model, sent=sent)


class _Opened:
    """A urllib3 response being read, with what must happen when reading ends."""

    __slots__ = ("alarm", "give_up", "pool", "r")

    def __init__(self, r: urllib3.BaseHTTPResponse, alarm: _Alarm | None, give_up: float | None,
                 pool: Any) -> None:
        self.r, self.alarm, self.give_up, self.pool = r, alarm, give_up, pool

    def pieces(self) -> Iterator[bytes]:
        r = self.r
        # (getattr: under vcrpy the response is a stand-in without urllib3's chunked reader.) Bounded reads: urllib3
        # inflates at most that much per read, and a huge HTTP chunk is read a piece at a time.
        if getattr(r, "chunked", False) and r.supports_chunked_reads():  # type: ignore[attr-defined]
            return r.read_chunked(_READ_SIZE, decode_content=True)
        # read1 returns what has arrived (an SSE event at a time), not a full 64 KiB buffer.
        return iter(lambda: r.read1(_READ_SIZE), b"")

    def bounded(self, limit: int) -> bool:
        """Whether the body's size is announced, within ``limit``, and nothing inflates it: one read of that size
        takes it all, in bounded memory."""
        r = self.r
        length = getattr(r, "length_remaining", None)  # (getattr: vcrpy's stand-in response)
        return isinstance(length, int) and length <= limit and not getattr(r, "chunked", False) \
            and not r.headers.get("content-encoding")

    def end(self, *, complete: bool) -> None:
        _WATCHDOG.disarm(self.alarm)
        if not complete or (self.alarm is not None and self.alarm.fired):
            self.r.close()  # unread bytes (or a shut socket) would poison the next request on this connection
        self.r.release_conn()
        if self.pool is not None:  # a one-off pool pinned to a checked address
            self.pool.close()


class Urllib3Transport:
    """Blocking HTTP over urllib3 connection pools (one per origin), honouring ``HTTP(S)_PROXY``/``NO_PROXY``."""

    def __init__(self, default_timeout: float) -> None:
        self._default_timeout = default_timeout
        self._proxy_for: dict[tuple[str, str], str | None] = {}
        self._direct: urllib3.PoolManager | None = None
        self._proxies: dict[str, urllib3.ProxyManager] = {}
        self._origins: dict[str, Any] = {}
        """``scheme://host:port`` -> the direct manager's pool for it: looked up once, not per request."""
        _TRANSPORTS.add(self)

    def _forget_pools(self) -> None:
        # In a forked child: the pooled sockets are the parent's too. Dropped, not closed: closing could end the
        # parent's TLS sessions; the child opens its own connections.
        self._direct = None
        self._proxies = {}
        self._origins = {}

    def _pool(self, url: str) -> urllib3.PoolManager:
        import urllib3

        proxy = _env_proxy(url, self._proxy_for)
        if proxy:
            pm = self._proxies.get(proxy)
            if pm is None:
                bare, auth = _proxy_credentials(proxy)
                pm = self._proxies[proxy] = urllib3.ProxyManager(
                    bare, maxsize=DEFAULT_MAX_KEEPALIVE, ssl_context=_ssl_context(), retries=False,
                    proxy_headers={"proxy-authorization": auth} if auth else None,
                )
                pm.pool_classes_by_scheme = _pool_classes()
            return pm
        return self._direct_manager()

    def _direct_manager(self) -> urllib3.PoolManager:
        import urllib3

        if self._direct is None:
            self._direct = urllib3.PoolManager(
                maxsize=DEFAULT_MAX_KEEPALIVE, ssl_context=_ssl_context(), retries=False
            )
            self._direct.pool_classes_by_scheme = _pool_classes()
        return self._direct

    def _origin_pool(self, url: str) -> tuple[Any, str] | None:
        """The connection pool of ``url``'s origin and the target to ask it for, when no proxy is involved.

        What ``PoolManager.urlopen`` does per request (parse the URL, find the pool, wrap the headers), done once
        per origin: about 20 µs of a sequential call. ``None``: a proxy, or a URL form left to the manager.
        """
        split = _split_target(url)
        if split is None or _env_proxy(url, self._proxy_for):
            return None
        origin, target = split
        pool = self._origins.get(origin)
        if pool is None or pool.pool is None:  # new, or closed
            if len(self._origins) >= _MAX_ORIGINS:  # many hosts (downloads ...): the manager's LRU keeps them
                self._origins = {}
            pool = self._origins[origin] = self._direct_manager().connection_from_url(origin)
        return pool, target

    def _timeout(self, req: HTTPRequest, give_up: float | None) -> urllib3.Timeout:
        import urllib3

        read = req.timeout or self._default_timeout
        connect = DEFAULT_CONNECT_TIMEOUT_S
        if give_up is not None:
            left = max(give_up - time.monotonic(), _MIN_WAIT_S)
            read, connect = min(read, left), min(connect, left)
        return urllib3.Timeout(connect=connect, read=read)

    def _pinned(self, req: HTTPRequest) -> tuple[Any, str] | None:
        """For a ``public_only`` request: a one-off pool connected to the checked address (a second lookup could
        answer differently: DNS rebinding), and the path to ask it for. ``None``: use the shared pools (a proxy
        resolves the name itself; a name that does not resolve here fails there)."""
        found = _urls.public_addresses(req.url)
        if not found or _env_proxy(req.url, self._proxy_for):
            return None
        from urllib.parse import urlsplit

        o = _urls.origin(req.url)
        parts = urlsplit(req.url)
        cls = _pool_classes()[o.scheme]
        # IPv4 first when there is one: a host without an IPv6 route would fail on an IPv6 address.
        _, ip = min(found, key=lambda f: f[0] != socket.AF_INET)
        kwargs: dict[str, Any] = {"host": ip, "port": o.port, "maxsize": 1, "retries": False}
        if o.scheme == "https":
            kwargs.update(ssl_context=_ssl_context(), server_hostname=o.host, assert_hostname=o.host)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return cls(**kwargs), path

    def _open(self, req: HTTPRequest, provider: str, model: str | None) -> _Opened:
        import urllib3.exceptions as ux

        _urls.check_url(req.url)
        give_up = _deadline(req)
        pinned = self._pinned(req) if req.public_only else None
        headers = _headers(req)
        _armed.give_up, _armed.alarm = give_up, None
        try:
            kwargs: dict[str, Any] = {
                "body": req.body(), "timeout": self._timeout(req, give_up), "retries": False, "redirect": False,
                "preload_content": False,
            }
            if pinned is not None:
                pool, path = pinned
                host = _netloc(req.url)
                r = pool.urlopen(req.method, path, headers={**headers, "host": host}, **kwargs)
            elif (direct := self._origin_pool(req.url)) is not None:
                pool = None
                r = direct[0].urlopen(req.method, direct[1], headers=headers, assert_same_host=False,
                                      **{**kwargs, "retries": _no_retries()})
            else:
                pool = None
                r = self._pool(req.url).request(req.method, req.url, headers=headers, **kwargs)
            return _Opened(r, _armed.alarm, give_up, pool)
        except (ux.HTTPError, OSError) as e:
            _WATCHDOG.disarm(_armed.alarm)
            raise _urllib3_error(e, provider, model, give_up) from e
        finally:
            _armed.give_up = _armed.alarm = None

    def send(self, req: HTTPRequest, provider: str, model: str | None) -> HTTPResponse:
        """Send ``req`` and read the whole response.

        Raises:
            APITimeoutError: Connect or read timed out, or the total deadline passed.
            APIConnectionError: The connection failed or broke.
            ResponseTooLargeError: The decoded body is larger than ``req.max_bytes``.
            UnsafeURLError: The URL is ambiguous, or a ``public_only`` request's host is not public.
        """
        if req.url.startswith(_inprocess.SCHEME):
            return _inprocess.send(req, provider, model)
        import urllib3.exceptions as ux

        opened = self._open(req, provider, model)
        r, complete = opened.r, False
        try:
            body = _Body(req, r.status, r.headers, provider, model)
            check = _watch(opened.give_up, provider, model)
            if opened.bounded(body.limit):
                # Announced and within the limit, not encoded: one read of exactly that many
                # bytes, as pieces would end in one (plus an empty read to see the end). A server that drips it
                # is still cut at the deadline: the watchdog shuts the socket under the read.
                body.add(r.read())
                check()
            else:
                for data in opened.pieces():
                    body.add(data)
                    check()
            complete = True
            return HTTPResponse(status=r.status, headers=r.headers, content=body.content(), url=req.url)
        except (ux.HTTPError, OSError) as e:
            raise _urllib3_error(e, provider, model, opened.give_up) from e
        finally:
            opened.end(complete=complete)

    @contextlib.contextmanager
    def stream(
        self, req: HTTPRequest, provider: str, model: str | None
    ) -> Iterator[tuple[HTTPResponse, Iterator[bytes]]]:
        """Open a streamed response: its head (the full body when the status is an error) and its bytes.

        Raises:
            APITimeoutError: Connect or read timed out, or the total deadline passed.
            APIConnectionError: The connection failed or broke.
            ResponseTooLargeError: An error status's body is larger than ``req.max_bytes``.
            UnsafeURLError: The URL is ambiguous, or a ``public_only`` request's host is not public.
        """
        if req.url.startswith(_inprocess.SCHEME):
            with _inprocess.stream(req, provider, model) as opened_:
                yield opened_
            return
        import urllib3.exceptions as ux

        opened = self._open(req, provider, model)
        r = opened.r
        check = _watch(opened.give_up, provider, model)
        complete = False

        def chunks() -> Iterator[bytes]:
            nonlocal complete
            try:
                for data in opened.pieces():
                    check()
                    yield data
                complete = True
            except (ux.HTTPError, OSError) as e:
                raise _urllib3_error(e, provider, model, opened.give_up) from e

        try:
            if r.status >= ERROR_STATUS:
                body = _Body(req, r.status, r.headers, provider, model)
                for data in chunks():
                    body.add(data)
                yield HTTPResponse(status=r.status, headers=r.headers, content=body.content(), url=req.url), iter(())
            else:
                yield HTTPResponse(status=r.status, headers=r.headers, content=b"", url=req.url), chunks()
        finally:
            opened.end(complete=complete)

    def close(self) -> None:
        """Close pooled connections."""
        origins, self._origins = self._origins, {}
        for pool in origins.values():
            pool.close()
        if self._direct is not None:
            self._direct.clear()
            self._direct = None
        for pm in self._proxies.values():
            pm.clear()
        self._proxies.clear()


@functools.lru_cache(maxsize=256)
def _split_target(url: str) -> tuple[str, str] | None:
    """``(scheme://host[:port], /path?query)`` of an ``http(s)`` URL without userinfo; ``None`` for any other form
    (the pool manager handles those). Cached: a client asks the same few endpoints again and again."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or "@" in parts.netloc or not parts.hostname:
        return None
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return f"{parts.scheme}://{parts.netloc}", target


@functools.cache
def _no_retries() -> Any:
    """urllib3's "never retry, never follow a redirect", built once (it is immutable) instead of per request."""
    from urllib3.util.retry import Retry

    return Retry(False, redirect=False)


def _netloc(url: str) -> str:
    """The ``host[:port]`` of ``url`` (a ``Host`` header)."""
    from urllib.parse import urlsplit

    return urlsplit(url).netloc


# ============================================================================================= aiohttp (async)


def _aiohttp_sent(e: BaseException) -> bool:
    """Whether the request may have reached the server: not when no connection was made."""
    import aiohttp

    return not isinstance(e, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError)


def _public_resolver() -> Any:
    """An aiohttp resolver that refuses private, loopback and link-local addresses. aiohttp connects to the
    addresses the resolver returns, so what was checked is what is reached (no DNS rebinding)."""
    import aiohttp
    from aiohttp.abc import AbstractResolver

    class PublicResolver(AbstractResolver):
        def __init__(self) -> None:
            self._inner = aiohttp.ThreadedResolver()

        async def resolve(self, host: str, port: int = 0, family: Any = socket.AF_INET) -> Any:
            found = await self._inner.resolve(host, port, family)
            for entry in found:
                why = _urls.refused_address(entry["host"])
                if why is not None:
                    raise UnsafeURLError(
                        f"refusing to download from {host}: it resolves to a {why} address ({entry['host']}), not "
                        f"a public one; pass {_urls.ALLOW_PRIVATE_OPTION} to save() if you trust this host")
            return found

        async def close(self) -> None:
            await self._inner.close()

    return PublicResolver()


def _refuse_private_literal(url: str) -> None:
    """A host written as an IP address is not resolved (so no resolver sees it): checked here, without DNS."""
    import ipaddress

    host = _urls.origin(url).host.strip("[]")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return
    _urls.public_addresses(url)


class AiohttpTransport:
    """Non-blocking HTTP over one pooled aiohttp session per event loop (proxies from the environment)."""

    def __init__(self, default_timeout: float) -> None:
        self._default_timeout = default_timeout
        self._proxy_for: dict[tuple[str, str], str | None] = {}
        # (loop, public_only) -> session. A session belongs to the loop that made it: a client used from several
        # loops (threads, asyncio.run called twice) keeps one per loop, and closes them all.
        self._sessions: dict[tuple[asyncio.AbstractEventLoop, bool], aiohttp.ClientSession] = {}
        self._forgotten: list[Any] = []
        self._proxy_auth: dict[str, tuple[str, dict[str, str] | None]] = {}
        self._lock = threading.Lock()
        _TRANSPORTS.add(self)
        # A client collected without aclose() has its connections closed then (see _drop_sessions). By a weakref
        # finalizer, not __del__: a transport and its sessions collected together (in a reference cycle) have
        # their __del__ methods run in no set order, and aiohttp's, run first, reports "Unclosed client session"
        # / "Unclosed connector"; the collector calls weakref callbacks before any of them. The finalizer holds
        # the sessions' dict itself: it is emptied in place, never replaced.
        weakref.finalize(self, _drop_sessions, self._sessions)

    def _forget_pools(self) -> None:
        # In a forked child: the sessions' sockets and loops are the parent's. Kept referenced (never collected,
        # so no "Unclosed client session" report) but never used again.
        self._forgotten.extend(self._sessions.values())
        self._sessions.clear()

    async def _client(self, public_only: bool = False) -> aiohttp.ClientSession:
        import asyncio

        loop = asyncio.get_running_loop()
        session = self._sessions.get((loop, public_only))
        if session is not None and not session.closed:
            return session
        import aiohttp

        with self._lock:
            gone = [k for k in self._sessions if k[0].is_closed()]
            stale = [self._sessions.pop(k) for k in gone]
        for old in stale:
            # Its loop is gone (asyncio.run returned), so closing it touches no loop; left open, it would be
            # reported ("Unclosed client session", "Unclosed connector") when collected.
            with contextlib.suppress(RuntimeError):
                await old.close()
        connector = aiohttp.TCPConnector(
            limit=DEFAULT_MAX_CONNECTIONS, limit_per_host=0, ssl=_ssl_context(),
            # Downloads resolve through the checking resolver at every connection (no cached answer).
            **({"resolver": _public_resolver(), "use_dns_cache": False} if public_only else {}),
        )
        # trust_env=False: aiohttp would then read ~/.netrc and the proxy settings in a worker thread on
        # every request (two thread hops per call). Proxies are resolved once per origin instead, and no
        # cookie outlives the response that set it.
        session = aiohttp.ClientSession(
            connector=connector, trust_env=False, auto_decompress=True, cookie_jar=aiohttp.DummyCookieJar()
        )
        with self._lock:
            self._sessions[(loop, public_only)] = session
        return session

    def _timeout(self, req: HTTPRequest) -> aiohttp.ClientTimeout:
        import aiohttp

        # ``total`` bounds every phase: connect, headers and the body or stream read through this response.
        return aiohttp.ClientTimeout(total=req.total_timeout, connect=DEFAULT_CONNECT_TIMEOUT_S,
                                     sock_read=req.timeout or self._default_timeout)

    def _proxy(self, url: str) -> tuple[str | None, dict[str, str] | None]:
        """The proxy for ``url`` and the headers that authenticate to it (see :func:`_proxy_credentials`)."""
        proxy = _env_proxy(url, self._proxy_for)
        if proxy is None:
            return None, None
        try:
            return self._proxy_auth[proxy]
        except KeyError:
            bare, auth = _proxy_credentials(proxy)
            found = self._proxy_auth[proxy] = (bare, {"Proxy-Authorization": auth} if auth else None)
            return found

    async def _open(self, req: HTTPRequest) -> Any:
        _urls.check_url(req.url)
        if req.public_only:
            _refuse_private_literal(req.url)
        proxy, proxy_headers = self._proxy(req.url)
        return (await self._client(req.public_only)).request(
            req.method, req.url, data=req.body(), headers=_headers(req), timeout=self._timeout(req),
            allow_redirects=False, proxy=proxy, proxy_headers=proxy_headers,
        )

    @staticmethod
    async def _read(req: HTTPRequest, r: aiohttp.ClientResponse, provider: str, model: str | None) -> bytes:
        body = _Body(req, r.status, r.headers, provider, model)
        # Bounded reads: aiohttp inflates at most a piece at a time, so the limit bounds memory.
        async for data in r.content.iter_chunked(_READ_SIZE):
            body.add(data)
        return body.content()

    async def send(self, req: HTTPRequest, provider: str, model: str | None) -> HTTPResponse:
        """Send ``req`` and read the whole response (see :meth:`Urllib3Transport.send`)."""
        if req.url.startswith(_inprocess.SCHEME):
            return await _inprocess.asend(req, provider, model)
        import aiohttp

        try:
            async with await self._open(req) as r:
                return HTTPResponse(status=r.status, headers=r.headers, content=await self._read(req, r, provider,
                                                                                                  model), url=req.url)
        except (TimeoutError, aiohttp.ServerTimeoutError) as e:
            raise _timeout_error(type(e).__name__, provider, model, sent=_aiohttp_sent(e)) from e
        except (aiohttp.ClientError, OSError) as e:
            raise _aiohttp_error(e, provider, model) from e

    @contextlib.asynccontextmanager
    async def stream(
        self, req: HTTPRequest, provider: str, model: str | None
    ) -> AsyncIterator[tuple[HTTPResponse, AsyncIterator[bytes]]]:
        """Open a streamed response (see :meth:`Urllib3Transport.stream`)."""
        if req.url.startswith(_inprocess.SCHEME):
            async with _inprocess.astream(req, provider, model) as opened:
                yield opened
            return
        import aiohttp

        try:
            cm = await self._open(req)
            r = await cm.__aenter__()
        except (TimeoutError, aiohttp.ServerTimeoutError) as e:
            raise _timeout_error(type(e).__name__, provider, model, sent=_aiohttp_sent(e)) from e
        except (aiohttp.ClientError, OSError) as e:
            raise _aiohttp_error(e, provider, model) from e

        async def chunks() -> AsyncIterator[bytes]:
            try:
                # What has arrived (an SSE event at a time); aiohttp inflates and buffers a bounded piece at a time.
                async for data in r.content.iter_any():
                    yield data
            except (TimeoutError, aiohttp.ServerTimeoutError) as e:
                raise _timeout_error(type(e).__name__, provider, model) from e
            except (aiohttp.ClientError, OSError) as e:
                raise _connection_error(e, provider, model) from e

        try:
            if r.status >= ERROR_STATUS:
                try:
                    content = await self._read(req, r, provider, model)
                except (TimeoutError, aiohttp.ServerTimeoutError) as e:
                    raise _timeout_error(type(e).__name__, provider, model) from e
                except (aiohttp.ClientError, OSError) as e:
                    raise _connection_error(e, provider, model) from e
                yield HTTPResponse(status=r.status, headers=r.headers, content=content, url=req.url), _empty()
            else:
                yield HTTPResponse(status=r.status, headers=r.headers, content=b"", url=req.url), chunks()
        finally:
            await cm.__aexit__(None, None, None)

    async def close(self) -> None:
        """Close pooled connections: the session of every event loop this transport was used from."""
        import asyncio

        with self._lock:
            sessions = dict(self._sessions)
            self._sessions.clear()
        current = asyncio.get_running_loop()
        for (loop, _), session in sessions.items():
            if session.closed:
                continue
            if loop is current or loop.is_closed():
                with contextlib.suppress(RuntimeError):  # a closed loop's transports may complain
                    await session.close()
            elif loop.is_running():  # another thread's loop: closed there
                asyncio.run_coroutine_threadsafe(session.close(), loop)
            else:  # a loop neither running nor closed: nothing can run there now; let go of it unreported
                session.detach()


def _drop_sessions(sessions: dict[Any, Any]) -> None:
    """Close the sessions of a transport collected without ``close()`` (its finalizer): synchronously, as there is
    no loop to await on, so that aiohttp does not report "Unclosed client session" and "Unclosed connector" on
    stderr for what is a forgotten close, not a leak. Every loop's session, not just one."""
    for session in list(sessions.values()):
        if session.closed:
            continue
        connector = session.connector
        session.detach()  # the session counts as closed from here
        if connector is not None:
            with contextlib.suppress(Exception):
                connector._close()  # closes every pooled transport now; close() would need awaiting


def _aiohttp_error(e: BaseException, provider: str, model: str | None) -> Exception:
    cause = e.__cause__ or e.__context__
    if isinstance(e, UnsafeURLError):  # pragma: no cover - depends on how aiohttp wraps a resolver's error
        return e
    if isinstance(cause, UnsafeURLError):  # the checking resolver refused the address
        return cause
    return _connection_error(e, provider, model, sent=_aiohttp_sent(e))


# ============================================================================================= httpx (injected)


class _Shrinking(dict[str, Any]):
    """httpx's per-request timeouts, whose ``read``/``write``/``connect``/``pool`` shrink to what is left of the
    deadline: httpcore looks them up before each socket operation, so a server that drips bytes is cut off at
    the deadline instead of resetting a per-read timer forever."""

    def __init__(self, base: Mapping[str, Any], give_up: float) -> None:
        super().__init__(base)
        self.give_up = give_up

    def get(self, key: str, default: Any = None) -> Any:
        value = super().get(key, default)
        left = max(self.give_up - time.monotonic(), _MIN_WAIT_S)
        return left if value is None else min(value, left)


def _httpx_timeout(req: HTTPRequest, default: float) -> httpx.Timeout:
    import httpx

    return httpx.Timeout(req.timeout or default, connect=DEFAULT_CONNECT_TIMEOUT_S)


class _Socket:
    """What an :class:`_Alarm` shuts: a socket found by :func:`_httpx_tracer`."""

    __slots__ = ("sock",)

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock


def _httpx_tracer(give_up: float, alarms: list[_Alarm]) -> Callable[[str, dict[str, Any]], None]:
    """An httpcore ``trace`` hook that arms the watchdog with the socket a request is about to be sent on.

    httpcore reads a response head with one read timeout for all its reads, so a server dripping the head a byte
    at a time would never time out. The hook runs inside httpcore's connection (the caller of the trace), whose
    network stream holds the socket; when that layout is not found (another transport), reads stay bounded by
    the remaining time at the start of each phase only.
    """

    def trace(event: str, info: dict[str, Any]) -> None:
        if not event.endswith("send_request_headers.started"):
            return
        frame: Any = sys._getframe(1)
        for _ in range(8):  # Trace.trace -> Trace.__enter__ -> the connection's handle_request
            if frame is None:
                return
            stream = getattr(frame.f_locals.get("self"), "_network_stream", None)
            sock = stream.get_extra_info("socket") if stream is not None else None
            if isinstance(sock, socket.socket):
                alarms.append(_WATCHDOG.arm(give_up, _Socket(sock)))
                return
            frame = frame.f_back

    return trace


def _httpx_request(client: Any, req: HTTPRequest, default_timeout: float, alarms: list[_Alarm] | None = None
                   ) -> tuple[httpx.Request, float | None]:
    _urls.check_url(req.url)
    headers = _headers(req)
    if not any(k.lower() == "accept-encoding" for k in headers):
        headers = {**headers, "accept-encoding": _ACCEPT_ENCODING}
    request = client.build_request(req.method, req.url, headers=headers, content=req.body(),
                                   timeout=_httpx_timeout(req, default_timeout))
    give_up = _deadline(req)
    if give_up is not None:
        request.extensions["timeout"] = _Shrinking(request.extensions.get("timeout") or {}, give_up)
        if alarms is not None:
            request.extensions["trace"] = _httpx_tracer(give_up, alarms)
    return request, give_up


def _httpx_convert(e: Exception, provider: str, model: str | None, give_up: float | None = None) -> ProviderError:
    import httpx

    if _passed(give_up):
        return _timeout_error("total deadline", provider, model)
    sent = not isinstance(e, httpx.ConnectError | httpx.ConnectTimeout)  # no connection: never sent
    if isinstance(e, httpx.TimeoutException):
        return _timeout_error(type(e).__name__, provider, model, sent=sent)
    return _connection_error(e, provider, model, sent=sent)


def _httpx_head(r: httpx.Response, content: bytes = b"") -> HTTPResponse:
    return HTTPResponse(
        status=r.status_code,
        headers={k.lower(): v for k, v in r.headers.items()},
        content=content,
        url=str(r.url),
    )


def _whole(r: httpx.Response) -> Iterator[bytes]:
    return iter((r.content,) if r.content else ())


def _httpx_errors() -> tuple[type[Exception], ...]:
    import httpx

    return (httpx.TransportError, httpx.StreamError)


class HttpxSyncTransport:
    """Blocking HTTP over a caller-supplied :class:`httpx.Client` (never following its redirects)."""

    def __init__(self, default_timeout: float, client: httpx.Client) -> None:
        self._default_timeout = default_timeout
        self.client = client

    def _public(self, req: HTTPRequest) -> None:
        if req.public_only:  # the caller's client connects itself: checked here, just before (best effort)
            _urls.public_addresses(req.url)

    @staticmethod
    def _decoded(r: httpx.Response, provider: str, model: str | None, check: Callable[[], None]
                 ) -> Iterator[bytes]:
        if r.is_stream_consumed:  # built in memory (a mock transport): its content is already decoded and read
            yield from _whole(r)
            return
        inflater = _Inflater(r.headers.get("content-encoding"), provider, model)
        for raw in r.iter_raw():
            for data in inflater.feed(raw):
                check()
                yield data

    def send(self, req: HTTPRequest, provider: str, model: str | None) -> HTTPResponse:
        """Send ``req`` and read the whole response (see :meth:`Urllib3Transport.send`)."""
        if req.url.startswith(_inprocess.SCHEME):
            return _inprocess.send(req, provider, model)
        self._public(req)
        alarms: list[_Alarm] = []
        request, give_up = _httpx_request(self.client, req, self._default_timeout, alarms)
        try:
            r = self.client.send(request, stream=True, follow_redirects=False)
            try:
                body = _Body(req, r.status_code, r.headers, provider, model)
                for data in self._decoded(r, provider, model, _watch(give_up, provider, model)):
                    body.add(data)
                return _httpx_head(r, body.content())
            finally:
                r.close()
        except _httpx_errors() as e:
            raise _httpx_convert(e, provider, model, give_up) from e
        finally:
            for alarm in alarms:
                _WATCHDOG.disarm(alarm)

    @contextlib.contextmanager
    def stream(
        self, req: HTTPRequest, provider: str, model: str | None
    ) -> Iterator[tuple[HTTPResponse, Iterator[bytes]]]:
        """Open a streamed response (see :meth:`Urllib3Transport.stream`)."""
        if req.url.startswith(_inprocess.SCHEME):
            with _inprocess.stream(req, provider, model) as opened:
                yield opened
            return
        self._public(req)
        alarms: list[_Alarm] = []
        request, give_up = _httpx_request(self.client, req, self._default_timeout, alarms)
        check = _watch(give_up, provider, model)
        try:
            r = self.client.send(request, stream=True, follow_redirects=False)
        except _httpx_errors() as e:
            for alarm in alarms:
                _WATCHDOG.disarm(alarm)
            raise _httpx_convert(e, provider, model, give_up) from e
        try:
            if r.status_code >= ERROR_STATUS:
                body = _Body(req, r.status_code, r.headers, provider, model)
                try:
                    for data in self._decoded(r, provider, model, check):
                        body.add(data)
                except _httpx_errors() as e:
                    raise _httpx_convert(e, provider, model, give_up) from e
                yield _httpx_head(r, body.content()), iter(())
                return

            def chunks() -> Iterator[bytes]:
                try:
                    yield from self._decoded(r, provider, model, check)
                except _httpx_errors() as e:
                    raise _httpx_convert(e, provider, model, give_up) from e

            yield _httpx_head(r), chunks()
        finally:
            for alarm in alarms:
                _WATCHDOG.disarm(alarm)
            r.close()

    def close(self) -> None:
        """Close the client's pooled connections."""
        self.client.close()


class HttpxAsyncTransport:
    """Non-blocking HTTP over a caller-supplied :class:`httpx.AsyncClient` (never following its redirects)."""

    def __init__(self, default_timeout: float, client: httpx.AsyncClient) -> None:
        self._default_timeout = default_timeout
        self.client = client

    @staticmethod
    async def _public(req: HTTPRequest) -> None:
        if req.public_only:  # the caller's client connects itself: checked here, just before (best effort)
            import asyncio

            await asyncio.to_thread(_urls.public_addresses, req.url)

    @staticmethod
    async def _decoded(r: httpx.Response, provider: str, model: str | None, check: Callable[[], None]
                       ) -> AsyncIterator[bytes]:
        if r.is_stream_consumed:  # built in memory (a mock transport): its content is already decoded and read
            for data in _whole(r):
                yield data
            return
        inflater = _Inflater(r.headers.get("content-encoding"), provider, model)
        async for raw in r.aiter_raw():
            for data in inflater.feed(raw):
                check()
                yield data

    async def _body(self, req: HTTPRequest, r: httpx.Response, provider: str, model: str | None,
                    check: Callable[[], None]) -> bytes:
        body = _Body(req, r.status_code, r.headers, provider, model)
        async for data in self._decoded(r, provider, model, check):
            body.add(data)
        return body.content()

    async def send(self, req: HTTPRequest, provider: str, model: str | None) -> HTTPResponse:
        """Send ``req`` and read the whole response (see :meth:`Urllib3Transport.send`)."""
        if req.url.startswith(_inprocess.SCHEME):
            return await _inprocess.asend(req, provider, model)
        import asyncio

        await self._public(req)
        request, give_up = _httpx_request(self.client, req, self._default_timeout)
        check = _watch(give_up, provider, model)

        async def exchange() -> HTTPResponse:
            r = await self.client.send(request, stream=True, follow_redirects=False)
            try:
                return _httpx_head(r, await self._body(req, r, provider, model, check))
            finally:
                await r.aclose()

        try:
            if req.total_timeout is None:
                return await exchange()
            return await asyncio.wait_for(exchange(), req.total_timeout)  # bounds every phase at once
        except TimeoutError as e:
            raise _timeout_error("total deadline", provider, model) from e
        except _httpx_errors() as e:
            raise _httpx_convert(e, provider, model, give_up) from e

    @contextlib.asynccontextmanager
    async def stream(
        self, req: HTTPRequest, provider: str, model: str | None
    ) -> AsyncIterator[tuple[HTTPResponse, AsyncIterator[bytes]]]:
        """Open a streamed response (see :meth:`Urllib3Transport.stream`)."""
        if req.url.startswith(_inprocess.SCHEME):
            async with _inprocess.astream(req, provider, model) as opened:
                yield opened
            return
        await self._public(req)
        request, give_up = _httpx_request(self.client, req, self._default_timeout)
        check = _watch(give_up, provider, model)
        try:
            r = await _within(self.client.send(request, stream=True, follow_redirects=False), give_up)
        except TimeoutError as e:
            raise _timeout_error("total deadline", provider, model) from e
        except _httpx_errors() as e:
            raise _httpx_convert(e, provider, model, give_up) from e
        try:
            if r.status_code >= ERROR_STATUS:
                try:
                    content = await self._body(req, r, provider, model, check)
                except _httpx_errors() as e:
                    raise _httpx_convert(e, provider, model, give_up) from e
                yield _httpx_head(r, content), _empty()
                return

            async def chunks() -> AsyncIterator[bytes]:
                pieces = self._decoded(r, provider, model, check)
                try:
                    while True:
                        try:
                            b = await _within(anext(pieces), give_up)
                        except StopAsyncIteration:
                            return
                        yield b
                except TimeoutError as e:
                    raise _timeout_error("total deadline", provider, model) from e
                except _httpx_errors() as e:
                    raise _httpx_convert(e, provider, model, give_up) from e

            yield _httpx_head(r), chunks()
        finally:
            await r.aclose()

    async def close(self) -> None:
        """Close the client's pooled connections."""
        await self.client.aclose()


async def _within(awaitable: Any, give_up: float | None) -> Any:
    """``await awaitable``, cut at ``give_up`` (monotonic) with ``TimeoutError``."""
    if give_up is None:
        return await awaitable
    import asyncio

    return await asyncio.wait_for(awaitable, max(give_up - time.monotonic(), _MIN_WAIT_S))


async def _empty() -> AsyncIterator[bytes]:
    return
    yield  # pragma: no cover  (makes this an async generator)
