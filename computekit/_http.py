"""The wire vocabulary every layer shares: one HTTP request and response, described, and one server-sent event.

A leaf module: adapters build and parse these, the transports send and receive them, and neither imports the
other for them.
"""

from __future__ import annotations

import json
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

__all__ = ["STATUS_ERRORS", "HTTPRequest", "HTTPResponse", "SSEEvent"]


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
            InvalidRequestError: A string in it is not valid Unicode (a lone surrogate, from text decoded with
                ``surrogateescape`` or cut in the middle of a pair): it cannot be sent (nothing was).
        """
        if self.content is not None:
            return self.content
        if self.json is None:
            return None
        text = json.dumps(self.json, separators=(",", ":"), ensure_ascii=False)
        try:
            return text.encode()
        except UnicodeEncodeError as e:
            bad = e.object[e.start:e.end]
            raise InvalidRequestError(
                f"the request holds text that is not valid Unicode ({bad!r}, a lone surrogate, at character "
                f"{e.start} of its JSON body), which cannot be sent: clean the text first, e.g. "
                "text.encode('utf-8', 'replace').decode('utf-8')") from e

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
