"""The only I/O: HTTP, written once sync and once async with the same method names (``send``, ``stream``,
``close``). Everything else (building requests, parsing, pricing, deciding to retry) is shared, pure code.

Default transports are urllib3 (sync) and aiohttp (async): pooled, keep-alive clients whose per-request CPU is a
fraction of httpx's, which is what lets computekit add pricing and a ledger and still beat the vendor SDKs on
the call path (see benchmarks/). Passing ``http_client=`` an ``httpx.Client`` / ``httpx.AsyncClient`` uses
httpx instead (custom transports, mocks, proxies with auth ...). Neither library retries or follows redirects
here: computekit's loop is the only retry loop. Every client library is imported on first use.

Every transport hands ``inproc://`` URLs to :mod:`computekit._inprocess` (in-process servers such as
``computekit.testing.FakeProvider``) before touching the network: one string comparison per request.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from functools import cache
from typing import TYPE_CHECKING, Any, Protocol

from . import _inprocess
from ._constants import DEFAULT_CONNECT_TIMEOUT_S, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_KEEPALIVE
from ._exceptions import APIConnectionError, APITimeoutError, ProviderError
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


def _timeout_error(kind: str, provider: str, model: str | None, *, sent: bool = True) -> APITimeoutError:
    err = APITimeoutError(f"timed out ({kind})", provider=provider, model=model)
    err.maybe_processed = sent
    return err


# ``scheme://user:password@``: a proxy URL's credentials, should a library put one in its error message.
_URL_PASSWORD = re.compile(r"(?i)([a-z][a-z0-9+.-]*://[^/\s:@'\"]*:)[^/\s@'\"]*@")


def _connection_error(e: BaseException, provider: str, model: str | None, *, sent: bool = True
                      ) -> APIConnectionError:
    # The message names the failure only: never the request (its headers hold the key), nor a proxy's password.
    why = _URL_PASSWORD.sub(r"\1****@", f"{type(e).__name__}: {e}")
    err = APIConnectionError(f"connection failed: {why}", provider=provider, model=model)
    # ``sent=False``: no connection was made (refused, DNS, connect timeout), so the host never saw the request
    # and even a request that starts billed work may be sent again.
    err.maybe_processed = sent
    return err


def _watch(req: HTTPRequest, provider: str, model: str | None) -> Callable[[], None]:
    """A check to run while reading: raises once the request's total deadline has passed. Per-read timeouts
    cannot bound a server that drips bytes; the clock can."""
    if req.total_timeout is None:
        return _no_check
    give_up = time.monotonic() + req.total_timeout

    def check() -> None:
        if time.monotonic() > give_up:
            raise _timeout_error("total deadline", provider, model)

    return check


def _no_check() -> None:
    return None


def _headers(req: HTTPRequest) -> dict[str, str]:
    # Case-insensitive: a caller's ``User-Agent`` (provider ``headers``) must replace ours, not come second.
    if any(k.lower() == "user-agent" for k in req.headers):
        return req.headers
    return {**req.headers, "user-agent": _USER_AGENT}


@cache
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


# ============================================================================================= urllib3 (sync)


def _urllib3_error(e: Exception, provider: str, model: str | None) -> ProviderError:
    import urllib3.exceptions as ux

    # urllib3 2 makes NewConnectionError (refused, unresolvable) a ConnectTimeoutError: it is not a timeout.
    # Both mean no connection was made: the request was never sent.
    sent = not isinstance(e, ux.ConnectTimeoutError)
    if isinstance(e, (ux.TimeoutError, TimeoutError)) and not isinstance(e, ux.NewConnectionError):
        return _timeout_error(type(e).__name__, provider, model, sent=sent)
    return _connection_error(e, provider, model, sent=sent)


class Urllib3Transport:
    """Blocking HTTP over urllib3 connection pools (one per origin), honouring ``HTTP(S)_PROXY``/``NO_PROXY``."""

    def __init__(self, default_timeout: float) -> None:
        self._default_timeout = default_timeout
        self._proxy_for: dict[tuple[str, str], str | None] = {}
        self._direct: urllib3.PoolManager | None = None
        self._proxies: dict[str, urllib3.ProxyManager] = {}

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
            return pm
        if self._direct is None:
            self._direct = urllib3.PoolManager(
                maxsize=DEFAULT_MAX_KEEPALIVE, ssl_context=_ssl_context(), retries=False
            )
        return self._direct

    def _timeout(self, req: HTTPRequest) -> urllib3.Timeout:
        import urllib3

        return urllib3.Timeout(connect=DEFAULT_CONNECT_TIMEOUT_S, read=req.timeout or self._default_timeout)

    def _request(self, req: HTTPRequest, *, stream: bool) -> urllib3.BaseHTTPResponse:
        return self._pool(req.url).request(
            req.method,
            req.url,
            body=req.body(),
            headers=_headers(req),
            timeout=self._timeout(req),
            retries=False,
            redirect=False,
            preload_content=not stream,
        )

    @staticmethod
    def _head(r: urllib3.BaseHTTPResponse, url: str, content: bytes = b"") -> HTTPResponse:
        return HTTPResponse(status=r.status, headers=r.headers, content=content, url=url)

    def send(self, req: HTTPRequest, provider: str, model: str | None) -> HTTPResponse:
        """Send ``req`` and read the whole response.

        Raises:
            APITimeoutError: Connect or read timed out.
            APIConnectionError: The connection failed or broke.
        """
        if req.url.startswith(_inprocess.SCHEME):
            return _inprocess.send(req, provider, model)
        import urllib3.exceptions as ux

        try:
            if req.total_timeout is None:
                r = self._request(req, stream=False)
                return self._head(r, req.url, r.data)
            # A deadline: read in pieces and check the clock between them.
            check = _watch(req, provider, model)
            r = self._request(req, stream=True)
            parts, done = [], False
            try:
                while data := r.read1(_READ_SIZE):
                    parts.append(data)
                    check()
                done = True
            finally:
                if not done:  # unread bytes would poison the next request on this connection
                    r.close()
                r.release_conn()
            return self._head(r, req.url, b"".join(parts))
        except (ux.HTTPError, OSError) as e:
            raise _urllib3_error(e, provider, model) from e

    @contextlib.contextmanager
    def stream(
        self, req: HTTPRequest, provider: str, model: str | None
    ) -> Iterator[tuple[HTTPResponse, Iterator[bytes]]]:
        """Open a streamed response: its head (the full body when the status is an error) and its bytes.

        Raises:
            APITimeoutError: Connect or read timed out.
            APIConnectionError: The connection failed or broke.
        """
        if req.url.startswith(_inprocess.SCHEME):
            with _inprocess.stream(req, provider, model) as opened:
                yield opened
            return
        import urllib3.exceptions as ux

        check = _watch(req, provider, model)
        try:
            r = self._request(req, stream=True)
        except (ux.HTTPError, OSError) as e:
            raise _urllib3_error(e, provider, model) from e

        done = False

        def chunks() -> Iterator[bytes]:
            nonlocal done
            try:
                # (getattr: under vcrpy the response is a stand-in without urllib3's chunked reader)
                if getattr(r, "chunked", False) and r.supports_chunked_reads():  # type: ignore[attr-defined]
                    pieces: Iterator[bytes] = r.read_chunked(None, decode_content=True)
                else:
                    # read1 returns what has arrived (an SSE event at a time), not a full 64 KiB buffer.
                    pieces = iter(lambda: r.read1(_READ_SIZE), b"")
                for data in pieces:
                    check()
                    yield data
                done = True
            except (ux.HTTPError, OSError) as e:
                raise _urllib3_error(e, provider, model) from e

        try:
            if r.status >= ERROR_STATUS:
                head = self._head(r, req.url, r.read())
                done = True
                yield head, iter(())
            else:
                yield self._head(r, req.url), chunks()
        finally:
            if not done:  # left early: unread bytes would poison the next request on this connection
                r.close()
            r.release_conn()

    def close(self) -> None:
        """Close pooled connections."""
        if self._direct is not None:
            self._direct.clear()
            self._direct = None
        for pm in self._proxies.values():
            pm.clear()
        self._proxies.clear()


# ============================================================================================= aiohttp (async)


def _aiohttp_sent(e: BaseException) -> bool:
    """Whether the request may have reached the server: not when no connection was made."""
    import aiohttp

    return not isinstance(e, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError)


class AiohttpTransport:
    """Non-blocking HTTP over one pooled aiohttp session per event loop (proxies from the environment)."""

    def __init__(self, default_timeout: float) -> None:
        self._default_timeout = default_timeout
        self._proxy_for: dict[tuple[str, str], str | None] = {}
        self._proxy_auth: dict[str, tuple[str, dict[str, str] | None]] = {}
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def _client(self) -> aiohttp.ClientSession:
        import asyncio

        loop = asyncio.get_running_loop()
        # A session belongs to the loop that made it; a client used from another loop (tests, asyncio.run
        # called twice) gets its own session there.
        if self._session is None or self._loop is not loop or self._session.closed:
            import aiohttp

            if self._session is not None and self._loop is not None and self._loop.is_closed():
                # Its loop is gone (asyncio.run returned), so closing it touches no loop; left open, it would be
                # reported ("Unclosed client session", "Unclosed connector") when collected.
                await self._session.close()
            connector = aiohttp.TCPConnector(limit=DEFAULT_MAX_CONNECTIONS, limit_per_host=0, ssl=_ssl_context())
            # trust_env=False: aiohttp would then read ~/.netrc and the proxy settings in a worker thread on
            # every request (two thread hops per call). Proxies are resolved once per origin instead, and no
            # cookie outlives the response that set it.
            self._session = aiohttp.ClientSession(
                connector=connector, trust_env=False, auto_decompress=True, cookie_jar=aiohttp.DummyCookieJar()
            )
            self._loop = loop
        return self._session

    def _timeout(self, req: HTTPRequest) -> aiohttp.ClientTimeout:
        import aiohttp

        return aiohttp.ClientTimeout(total=req.total_timeout, connect=DEFAULT_CONNECT_TIMEOUT_S,
                                     sock_read=req.timeout or self._default_timeout)

    @staticmethod
    def _head(r: aiohttp.ClientResponse, url: str, content: bytes = b"") -> HTTPResponse:
        return HTTPResponse(status=r.status, headers=r.headers, content=content, url=url)

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
        proxy, proxy_headers = self._proxy(req.url)
        return (await self._client()).request(
            req.method, req.url, data=req.body(), headers=_headers(req), timeout=self._timeout(req),
            allow_redirects=False, proxy=proxy, proxy_headers=proxy_headers,
        )

    async def send(self, req: HTTPRequest, provider: str, model: str | None) -> HTTPResponse:
        """Send ``req`` and read the whole response (see :meth:`Urllib3Transport.send`)."""
        if req.url.startswith(_inprocess.SCHEME):
            return await _inprocess.asend(req, provider, model)
        import aiohttp

        try:
            async with await self._open(req) as r:
                return self._head(r, req.url, await r.read())
        except (TimeoutError, aiohttp.ServerTimeoutError) as e:
            raise _timeout_error(type(e).__name__, provider, model, sent=_aiohttp_sent(e)) from e
        except (aiohttp.ClientError, OSError) as e:
            raise _connection_error(e, provider, model, sent=_aiohttp_sent(e)) from e

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
            raise _connection_error(e, provider, model, sent=_aiohttp_sent(e)) from e

        async def chunks() -> AsyncIterator[bytes]:
            try:
                async for data in r.content.iter_any():
                    yield data
            except (TimeoutError, aiohttp.ServerTimeoutError) as e:
                raise _timeout_error(type(e).__name__, provider, model) from e
            except (aiohttp.ClientError, OSError) as e:
                raise _connection_error(e, provider, model) from e

        try:
            if r.status >= ERROR_STATUS:
                yield self._head(r, req.url, await r.read()), _empty()
            else:
                yield self._head(r, req.url), chunks()
        finally:
            await cm.__aexit__(None, None, None)

    async def close(self) -> None:
        """Close pooled connections."""
        if self._session is not None and not self._session.closed:
            with contextlib.suppress(RuntimeError):  # its loop may be gone already
                await self._session.close()
        self._session = None


# ============================================================================================= httpx (injected)


def _httpx_timeout(req: HTTPRequest, default: float) -> httpx.Timeout:
    import httpx

    return httpx.Timeout(req.timeout or default, connect=DEFAULT_CONNECT_TIMEOUT_S)


def _httpx_kwargs(req: HTTPRequest, default_timeout: float) -> dict[str, Any]:
    return {"headers": _headers(req), "content": req.body(), "timeout": _httpx_timeout(req, default_timeout)}


def _httpx_convert(e: Exception, provider: str, model: str | None) -> ProviderError:
    import httpx

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


def _httpx_errors() -> tuple[type[Exception], ...]:
    import httpx

    return (httpx.TransportError, httpx.StreamError)


class HttpxSyncTransport:
    """Blocking HTTP over a caller-supplied :class:`httpx.Client`."""

    def __init__(self, default_timeout: float, client: httpx.Client) -> None:
        self._default_timeout = default_timeout
        self.client = client

    def send(self, req: HTTPRequest, provider: str, model: str | None) -> HTTPResponse:
        """Send ``req`` and read the whole response (see :meth:`Urllib3Transport.send`)."""
        if req.url.startswith(_inprocess.SCHEME):
            return _inprocess.send(req, provider, model)
        try:
            if req.total_timeout is None:
                r = self.client.request(req.method, req.url, **_httpx_kwargs(req, self._default_timeout))
                return _httpx_head(r, r.content)
            check = _watch(req, provider, model)  # httpx has no total timeout: check between reads
            with self.client.stream(req.method, req.url, **_httpx_kwargs(req, self._default_timeout)) as r:
                parts = []
                for data in r.iter_bytes():
                    parts.append(data)
                    check()
                return _httpx_head(r, b"".join(parts))
        except _httpx_errors() as e:
            raise _httpx_convert(e, provider, model) from e

    @contextlib.contextmanager
    def stream(
        self, req: HTTPRequest, provider: str, model: str | None
    ) -> Iterator[tuple[HTTPResponse, Iterator[bytes]]]:
        """Open a streamed response (see :meth:`Urllib3Transport.stream`)."""
        if req.url.startswith(_inprocess.SCHEME):
            with _inprocess.stream(req, provider, model) as opened:
                yield opened
            return
        check = _watch(req, provider, model)
        try:
            with self.client.stream(req.method, req.url, **_httpx_kwargs(req, self._default_timeout)) as r:
                if r.status_code >= ERROR_STATUS:
                    yield _httpx_head(r, r.read()), iter(())
                    return

                def chunks() -> Iterator[bytes]:
                    try:
                        for data in r.iter_bytes():
                            check()
                            yield data
                    except _httpx_errors() as e:
                        raise _httpx_convert(e, provider, model) from e

                yield _httpx_head(r), chunks()
        except _httpx_errors() as e:
            raise _httpx_convert(e, provider, model) from e

    def close(self) -> None:
        """Close the client's pooled connections."""
        self.client.close()


class HttpxAsyncTransport:
    """Non-blocking HTTP over a caller-supplied :class:`httpx.AsyncClient`."""

    def __init__(self, default_timeout: float, client: httpx.AsyncClient) -> None:
        self._default_timeout = default_timeout
        self.client = client

    async def send(self, req: HTTPRequest, provider: str, model: str | None) -> HTTPResponse:
        """Send ``req`` and read the whole response (see :meth:`Urllib3Transport.send`)."""
        if req.url.startswith(_inprocess.SCHEME):
            return await _inprocess.asend(req, provider, model)
        import asyncio

        try:
            coro = self.client.request(req.method, req.url, **_httpx_kwargs(req, self._default_timeout))
            if req.total_timeout is None:
                r = await coro
            else:
                r = await asyncio.wait_for(coro, req.total_timeout)  # httpx has no total timeout
            return _httpx_head(r, r.content)
        except TimeoutError as e:
            raise _timeout_error("total deadline", provider, model) from e
        except _httpx_errors() as e:
            raise _httpx_convert(e, provider, model) from e

    @contextlib.asynccontextmanager
    async def stream(
        self, req: HTTPRequest, provider: str, model: str | None
    ) -> AsyncIterator[tuple[HTTPResponse, AsyncIterator[bytes]]]:
        """Open a streamed response (see :meth:`Urllib3Transport.stream`)."""
        if req.url.startswith(_inprocess.SCHEME):
            async with _inprocess.astream(req, provider, model) as opened:
                yield opened
            return
        check = _watch(req, provider, model)
        try:
            async with self.client.stream(req.method, req.url, **_httpx_kwargs(req, self._default_timeout)) as r:
                if r.status_code >= ERROR_STATUS:
                    yield _httpx_head(r, await r.aread()), _empty()
                    return

                async def chunks() -> AsyncIterator[bytes]:
                    try:
                        async for b in r.aiter_bytes():
                            check()
                            yield b
                    except _httpx_errors() as e:
                        raise _httpx_convert(e, provider, model) from e

                yield _httpx_head(r), chunks()
        except _httpx_errors() as e:
            raise _httpx_convert(e, provider, model) from e

    async def close(self) -> None:
        """Close the client's pooled connections."""
        await self.client.aclose()


async def _empty() -> AsyncIterator[bytes]:
    return
    yield  # pragma: no cover  (makes this an async generator)
