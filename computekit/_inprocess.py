"""In-process servers: requests to ``inproc://HOST/...`` are answered by an object mounted at ``HOST``, through
the same transports, retry loop, pricing and ledger as HTTP — without a socket.

This is what :class:`computekit.testing.FakeProvider` plugs into: the fake is a *server* (it answers
:class:`HTTPRequest` objects with wire-format responses), its adapter (``computekit.adapters.fake``) only
translates, and the client cannot tell it from a remote provider. Every transport checks the URL's scheme first
(one string comparison per request) and hands ``inproc://`` requests to :func:`send` / :func:`stream` here; the
sync and async twins differ only in how they wait out a simulated latency.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator, Awaitable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

from ._exceptions import APIConnectionError, APITimeoutError, ProviderError
from ._http import HTTPRequest, HTTPResponse

__all__ = ["SCHEME", "LocalReply", "LocalServer", "asend", "astream", "mount", "mounted", "send", "stream",
           "unmount"]

SCHEME: Final = "inproc://"


@dataclass(slots=True)
class LocalReply:
    """What an in-process server answers: a status, headers and the body in pieces, after ``delay`` seconds.

    ``error`` (a timeout or a broken connection) is raised instead of answering, as a real transport would.
    """

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    chunks: Sequence[bytes] = ()
    delay: float = 0.0
    error: ProviderError | None = None


class LocalServer(Protocol):
    """An object that answers requests in-process (see :class:`computekit.testing.FakeProvider`)."""

    def respond(self, req: HTTPRequest, provider: str, model: str | None) -> LocalReply:
        """Answer ``req`` (pure: no sleeping here; the transport waits ``delay`` with :meth:`sleep`)."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (sync clients): injectable, so tests never really sleep."""
        ...

    def asleep(self, seconds: float) -> Awaitable[None]:
        """Wait ``seconds`` (async clients)."""
        ...


_servers: dict[str, LocalServer] = {}
_lock = threading.Lock()


def mount(host: str, server: LocalServer) -> None:
    """Serve ``inproc://{host}/...`` with ``server`` (replacing whatever was mounted there)."""
    with _lock:
        _servers[host] = server


def unmount(host: str, server: LocalServer | None = None) -> None:
    """Stop serving ``host`` (only if ``server`` is the one mounted, when given)."""
    with _lock:
        if server is None or _servers.get(host) is server:
            _servers.pop(host, None)


def mounted(host: str) -> LocalServer | None:
    """The server mounted at ``host``, if any."""
    return _servers.get(host)


def _server(req: HTTPRequest, provider: str, model: str | None) -> LocalServer:
    host = req.url[len(SCHEME):].split("/", 1)[0]
    server = _servers.get(host)
    if server is None:
        raise APIConnectionError(
            f"nothing is mounted at {SCHEME}{host}: create a computekit.testing.FakeProvider(name={host!r}) "
            "(or use the computekit_fake fixture) before calling it",
            provider=provider,
            model=model,
        )
    return server


def _plan(req: HTTPRequest, reply: LocalReply, provider: str, model: str | None) -> tuple[float, ProviderError | None]:
    """How long to wait, and the error to raise after waiting: a reply slower than the request's timeout (or
    the call's deadline) times out after that long, as it would over a socket."""
    limits = [t for t in (req.timeout, req.total_timeout) if t is not None]
    limit = min(limits) if limits else None
    if limit is not None and reply.delay > limit:
        return limit, APITimeoutError(f"timed out (in-process server took {reply.delay} s)", provider=provider,
                                      model=model)
    return reply.delay, reply.error


def _head(req: HTTPRequest, reply: LocalReply, content: bytes = b"") -> HTTPResponse:
    return HTTPResponse(status=reply.status, headers={k.lower(): v for k, v in reply.headers.items()},
                        content=content, url=req.url)


def send(req: HTTPRequest, provider: str, model: str | None) -> HTTPResponse:
    """Answer ``req`` in-process (sync transports).

    Raises:
        APIConnectionError: Nothing is mounted at the URL's host.
        APITimeoutError: The server is slower than the request's timeout.
    """
    server = _server(req, provider, model)
    reply = server.respond(req, provider, model)
    wait, error = _plan(req, reply, provider, model)
    if wait:
        server.sleep(wait)
    if error is not None:
        raise error
    return _head(req, reply, b"".join(reply.chunks))


async def asend(req: HTTPRequest, provider: str, model: str | None) -> HTTPResponse:
    """Answer ``req`` in-process (async transports; see :func:`send`)."""
    server = _server(req, provider, model)
    reply = server.respond(req, provider, model)
    wait, error = _plan(req, reply, provider, model)
    if wait:
        await server.asleep(wait)
    if error is not None:
        raise error
    return _head(req, reply, b"".join(reply.chunks))


@contextlib.contextmanager
def stream(req: HTTPRequest, provider: str, model: str | None) -> Iterator[tuple[HTTPResponse, Iterator[bytes]]]:
    """Open a streamed in-process response: its head (the whole body when the status is an error) and its
    pieces, as :meth:`Urllib3Transport.stream` does."""
    server = _server(req, provider, model)
    reply = server.respond(req, provider, model)
    wait, error = _plan(req, reply, provider, model)
    if wait:
        server.sleep(wait)
    if error is not None:
        raise error
    if reply.status >= _ERROR_STATUS:
        yield _head(req, reply, b"".join(reply.chunks)), iter(())
    else:
        yield _head(req, reply), iter(list(reply.chunks))


@contextlib.asynccontextmanager
async def astream(
    req: HTTPRequest, provider: str, model: str | None
) -> AsyncIterator[tuple[HTTPResponse, AsyncIterator[bytes]]]:
    """Open a streamed in-process response (async transports; see :func:`stream`)."""
    server = _server(req, provider, model)
    reply = server.respond(req, provider, model)
    wait, error = _plan(req, reply, provider, model)
    if wait:
        await server.asleep(wait)
    if error is not None:
        raise error
    body = reply.chunks if reply.status < _ERROR_STATUS else ()
    head = _head(req, reply, b"".join(reply.chunks)) if reply.status >= _ERROR_STATUS else _head(req, reply)
    yield head, _aiter(list(body))


async def _aiter(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for c in chunks:
        yield c


_ERROR_STATUS: Final = 300
"""As in ``_transport``: statuses from here up are errors (their body comes whole, with the head)."""
