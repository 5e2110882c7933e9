"""The only I/O: HTTP over pooled httpx clients, written once sync and once async with the same method names.

Everything else (building requests, parsing, pricing, deciding to retry) is shared, pure code. httpx is imported
on the first request, not with ``import computekit``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from ._constants import DEFAULT_CONNECT_TIMEOUT_S, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_KEEPALIVE
from ._exceptions import APIConnectionError, APITimeoutError, ProviderError
from .adapters._base import HTTPRequest, HTTPResponse

if TYPE_CHECKING:
    import httpx

__all__ = ["AsyncTransport", "SyncTransport"]


def _timeout(req: HTTPRequest, default: float) -> httpx.Timeout:
    import httpx

    return httpx.Timeout(req.timeout or default, connect=DEFAULT_CONNECT_TIMEOUT_S)


def _kwargs(req: HTTPRequest, default_timeout: float) -> dict[str, Any]:
    return {"headers": req.headers, "content": req.body(), "timeout": _timeout(req, default_timeout)}


def _limits() -> httpx.Limits:
    import httpx

    return httpx.Limits(max_connections=DEFAULT_MAX_CONNECTIONS, max_keepalive_connections=DEFAULT_MAX_KEEPALIVE)


def _convert(e: Exception, provider: str, model: str | None) -> ProviderError:
    """httpx's exceptions -> computekit's (the message never includes request headers)."""
    import httpx

    if isinstance(e, httpx.TimeoutException):
        kind = type(e).__name__
        return APITimeoutError(f"timed out ({kind})", provider=provider, model=model)
    return APIConnectionError(f"connection failed: {type(e).__name__}: {e}", provider=provider, model=model)


def _head(r: httpx.Response, content: bytes = b"") -> HTTPResponse:
    # httpx.Headers lookups are case-insensitive, but a plain dict with lowercase keys is what the rest
    # of computekit (and the error objects) keep.
    return HTTPResponse(
        status=r.status_code,
        headers={k.lower(): v for k, v in r.headers.items()},
        content=content,
        url=str(r.url),
    )


def _errors() -> tuple[type[Exception], ...]:
    import httpx

    return (httpx.TransportError, httpx.StreamError)


class SyncTransport:
    """Blocking HTTP over one pooled :class:`httpx.Client`."""

    def __init__(self, default_timeout: float, client: Any = None) -> None:
        self._default_timeout = default_timeout
        self._client: httpx.Client | None = client

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            import httpx

            self._client = httpx.Client(limits=_limits(), timeout=self._default_timeout)
        return self._client

    def send(self, req: HTTPRequest, provider: str, model: str | None) -> HTTPResponse:
        """Send ``req`` and read the whole response.

        Raises:
            APITimeoutError: Connect or read timed out.
            APIConnectionError: The connection failed or broke.
        """
        try:
            r = self.client.request(
                req.method, req.url, **_kwargs(req, self._default_timeout)
            )
            return _head(r, r.content)
        except _errors() as e:
            raise _convert(e, provider, model) from e

    @contextlib.contextmanager
    def stream(
        self, req: HTTPRequest, provider: str, model: str | None
    ) -> Iterator[tuple[HTTPResponse, Iterator[bytes]]]:
        """Open a streamed response: its head (the full body when the status is an error) and its bytes.

        Raises:
            APITimeoutError: Connect or read timed out.
            APIConnectionError: The connection failed or broke.
        """
        try:
            with self.client.stream(
                req.method, req.url, **_kwargs(req, self._default_timeout)
            ) as r:
                if r.status_code >= 400:
                    yield _head(r, r.read()), iter(())
                    return

                def chunks() -> Iterator[bytes]:
                    try:
                        yield from r.iter_bytes()
                    except _errors() as e:
                        raise _convert(e, provider, model) from e

                yield _head(r), chunks()
        except _errors() as e:
            raise _convert(e, provider, model) from e

    def close(self) -> None:
        """Close pooled connections."""
        if self._client is not None:
            self._client.close()
            self._client = None


class AsyncTransport:
    """Non-blocking HTTP over one pooled :class:`httpx.AsyncClient`."""

    def __init__(self, default_timeout: float, client: Any = None) -> None:
        self._default_timeout = default_timeout
        self._client: httpx.AsyncClient | None = client

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            import httpx

            self._client = httpx.AsyncClient(limits=_limits(), timeout=self._default_timeout)
        return self._client

    async def send(self, req: HTTPRequest, provider: str, model: str | None) -> HTTPResponse:
        """Send ``req`` and read the whole response (see :meth:`SyncTransport.send`)."""
        try:
            r = await self.client.request(
                req.method, req.url, **_kwargs(req, self._default_timeout)
            )
            return _head(r, r.content)
        except _errors() as e:
            raise _convert(e, provider, model) from e

    @contextlib.asynccontextmanager
    async def stream(
        self, req: HTTPRequest, provider: str, model: str | None
    ) -> AsyncIterator[tuple[HTTPResponse, AsyncIterator[bytes]]]:
        """Open a streamed response (see :meth:`SyncTransport.stream`)."""
        try:
            async with self.client.stream(
                req.method, req.url, **_kwargs(req, self._default_timeout)
            ) as r:
                if r.status_code >= 400:
                    yield _head(r, await r.aread()), _empty()
                    return

                async def chunks() -> AsyncIterator[bytes]:
                    try:
                        async for b in r.aiter_bytes():
                            yield b
                    except _errors() as e:
                        raise _convert(e, provider, model) from e

                yield _head(r), chunks()
        except _errors() as e:
            raise _convert(e, provider, model) from e

    async def close(self) -> None:
        """Close pooled connections."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None


async def _empty() -> AsyncIterator[bytes]:
    return
    yield  # pragma: no cover  (makes this an async generator)
