"""The wire vocabulary every layer shares: one HTTP request and response, described, and one server-sent event.

A leaf module: adapters build and parse these, the transports send and receive them, and neither imports the
other for them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._exceptions import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    RateLimitError,
)

__all__ = ["STATUS_ERRORS", "HTTPRequest", "HTTPResponse", "SSEEvent", "encode_json"]


def encode_json(value: Any, what: str = "the request") -> bytes:
    """``value`` as compact UTF-8 JSON, as it goes on the wire (a request body, a batch's or a training file's line).

    Raises:
        InvalidRequestError: ``value`` holds what JSON cannot carry, which the provider would refuse (or, in a file,
            fail on later): a number that is not finite (``NaN``, ``Infinity``; ``json.dumps`` writes them as
            bare words, which are not JSON), text that is not valid Unicode (a lone surrogate), a value of
            another type (a set, an object), or nesting too deep to encode. Nothing is sent.
    """
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except ValueError as e:
        found = _non_finite(value)
        where = f" ({found[1]!r} at {found[0]})" if found else ""
        raise InvalidRequestError(
            f"{what} holds a number JSON cannot carry{where}: NaN and Infinity are not JSON, and a provider "
            "refuses them; pass a finite number") from e
    except (TypeError, RecursionError) as e:
        raise InvalidRequestError(
            f"{what} cannot be sent as JSON ({e}): it may hold only objects, lists, strings, finite numbers, "
            "booleans and null") from e
    try:
        return text.encode()
    except UnicodeEncodeError as e:
        bad = e.object[e.start:e.end]
        raise InvalidRequestError(
            f"{what} holds text that is not valid Unicode ({bad!r}, a lone surrogate, at character {e.start} of "
            "its JSON), which cannot be sent: clean the text first, e.g. "
            "text.encode('utf-8', 'replace').decode('utf-8')") from e


def _non_finite(value: Any) -> tuple[str, float] | None:
    """Where in ``value`` the first float that is not finite is (a path such as ``messages[0].content``), and it.
    Walked without recursion: only ever on a value that failed to encode, which may be deeply nested."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, v = stack.pop()
        if isinstance(v, float) and not math.isfinite(v):
            return path or "its top level", v
        if isinstance(v, Mapping):
            stack.extend(reversed([(f"{path}.{k}" if path else str(k), x) for k, x in v.items()]))
        elif isinstance(v, list | tuple):
            stack.extend(reversed([(f"{path}[{i}]", x) for i, x in enumerate(v)]))
    return None



@dataclass(slots=True)
class HTTPRequest:
    """One HTTP request, described (the client sends it)."""

    method: str
    url: str
    headers: dict[str, str]
    json: Any = None
    content: bytes | None = None
    stream: bool = False
    timeout: float | None = None
    total_timeout: float | None = None
    """Seconds the whole exchange may take (the call's deadline): bounds a server that drips bytes."""
    max_bytes: int | None = None
    """The largest decoded response body accepted (``None``: ``MAX_RESPONSE_BYTES``); streams cap each event."""
    public_only: bool = False
    """Refuse a host that is, or resolves to, a private, loopback or link-local address (output downloads)."""

    def body(self) -> bytes | None:
        """The encoded body.

        Raises:
            InvalidRequestError: It holds what JSON cannot carry (see :func:`encode_json`): a number that is not
                finite, or a string that is not valid Unicode (a lone surrogate, from text decoded with
                ``surrogateescape`` or cut in the middle of a pair). It cannot be sent (nothing was).
        """
        if self.content is not None:
            return self.content
        if self.json is None:
            return None
        return encode_json(self.json)

    def __repr__(self) -> str:
        # Headers hold credentials: never shown.
        return f"HTTPRequest({self.method} {self.url})"


@dataclass(slots=True)
class HTTPResponse:
    """One HTTP response, read in full.

    ``headers`` is looked up with lowercase names: a plain dict of lowercase names, or the HTTP library's own
    case-insensitive mapping (copying it on every response would cost more than parsing the body).
    """

    status: int
    headers: Mapping[str, str]
    content: bytes
    url: str = ""

    def json(self) -> Any:
        """The body parsed as JSON.

        Raises:
            ValueError: The body is not JSON.
        """
        content = self.content
        if content[:1] == b"{" and content[1:2] != b"\x00":
            # UTF-8 (what json.loads would detect: no BOM, not UTF-16/32), decoded here: json.loads of bytes
            # looks for the encoding in Python first, a tenth of the parse of a small answer.
            return json.loads(content.decode("utf-8", "surrogatepass"))
        return json.loads(content)

    def body_for_error(self) -> Any:
        """The body as JSON when it parses, else as text (JSON nested too deep to parse is kept as text)."""
        try:
            return json.loads(self.content)
        except (ValueError, RecursionError):
            return self.content.decode("utf-8", "replace")


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One server-sent event."""

    data: str
    event: str | None = None
    id: str | None = None


STATUS_ERRORS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: BadRequestError,
    429: RateLimitError,
    529: OverloadedError,
}
"""The error class of a status whose meaning is the same at every provider."""
