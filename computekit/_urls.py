"""One strict reading of a URL's origin, shared by the key check and every transport (pure, a leaf module).

Python's ``urlsplit``, urllib3, aiohttp, httpx and browsers (WHATWG) do not agree on every string: a backslash
ends the authority for WHATWG and urllib3 but not for ``urlsplit``, so ``https://evil\\@api.openai.com`` is
``api.openai.com`` to one and ``evil`` to the other. A key check that reads a URL one way while the transport
connects the other way sends the key to the wrong host. So computekit refuses every URL on which the parsers can
disagree (backslashes, control characters and spaces, user info, percent-escapes or non-ASCII in the host, a bad
port) and reads the origin of what is left once: scheme, lowercased host, port (the scheme's default when absent).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from functools import lru_cache
from typing import NamedTuple
from urllib.parse import urlsplit

from ._exceptions import UnsafeURLError

__all__ = ["Origin", "check_url", "is_safe", "origin", "public_addresses", "same_origin", "without_query"]

_DEFAULT_PORTS = {"http": 80, "https": 443}
# Characters on which URL parsers disagree, or that no parser should see: backslash, controls, space, DEL.
_AMBIGUOUS = re.compile(r"[\\\x00-\x20\x7f]")
_HOST = re.compile(r"[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\]")


class Origin(NamedTuple):
    """Scheme, lowercased host and port of a URL: a key goes only to the exact origin it was configured for."""

    scheme: str
    host: str
    port: int | None


def check_url(url: str) -> str:
    """``url`` if every URL parser reads the same host in it, else raise.

    Raises:
        UnsafeURLError: It holds a backslash, a control character or space, user info (``user@``), a host with
            percent-escapes or non-ASCII characters, or a port that is not a number.
    """
    origin(url)
    return url


@lru_cache(maxsize=512)  # a client sends to a handful of URLs; parsing is the cost of every request
def origin(url: str) -> Origin:
    """The origin of an absolute ``scheme://host[:port]/...`` URL, read strictly (see :func:`check_url`).

    Raises:
        UnsafeURLError: The URL is ambiguous (see :func:`check_url`) or has no host.
    """
    if _AMBIGUOUS.search(url):
        raise UnsafeURLError(f"refusing the URL {_shown(url)}: it holds a backslash, a space or a control "
                             "character, which URL parsers read differently")
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        raise UnsafeURLError(f"refusing the URL {_shown(url)}: it holds user info ('user@host'); put credentials "
                             "in api_key or headers, never in a URL")
    host = parts.hostname or ""
    host_part = netloc.rsplit(":", 1)[0] if not netloc.endswith("]") else netloc
    if not host or not _HOST.fullmatch(host_part):
        raise UnsafeURLError(f"refusing the URL {_shown(url)}: its host must be plain ASCII letters, digits, dots "
                             "and hyphens (write international names in punycode) or a bracketed IPv6 address")
    try:
        port = parts.port
    except ValueError:
        raise UnsafeURLError(f"refusing the URL {_shown(url)}: its port is not a number from 0 to 65535") from None
    scheme = parts.scheme.lower()
    return Origin(scheme, host.lower(), port if port is not None else _DEFAULT_PORTS.get(scheme))


def is_safe(url: str) -> bool:
    """Whether every URL parser reads the same host in ``url`` (see :func:`check_url`)."""
    try:
        origin(url)
    except UnsafeURLError:
        return False
    return True


def same_origin(url: str, other: str) -> bool:
    """Whether both URLs are unambiguous and have the same scheme, host and port."""
    try:
        return origin(url) == origin(other)
    except UnsafeURLError:
        return False


def without_query(url: str) -> str:
    """``url`` without user info, query and fragment (a pre-signed URL's query is a credential), for messages."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return f"{parts.scheme}://{host}{parts.path}"


def _shown(url: str) -> str:
    # Shown with its odd characters escaped, user info masked and no query (either may hold a secret).
    scheme, sep, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        authority = "***@" + authority.rsplit("@", 1)[1]
    return repr(f"{scheme}{sep}{authority}{slash}{path}".split("?", 1)[0].split("#", 1)[0])


# --------------------------------------------------------------------------------------------- public addresses

ALLOW_PRIVATE_OPTION = "allow_private_network=True"
"""How a caller lets ``save()`` fetch from private, loopback and link-local addresses (named in refusals)."""


def refused_address(ip: str) -> str | None:
    """Why ``ip`` is no public destination (``"loopback"``, ``"private"`` ...), or ``None`` when it is public."""
    addr: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    for kind in ("loopback", "link_local", "unspecified", "multicast", "private", "reserved"):
        if getattr(addr, f"is_{kind}"):
            return kind.replace("_", "-")
    if not addr.is_global:  # shared address space (100.64/10), benchmarking, documentation ranges ...
        return "non-global"
    return None


def public_addresses(url: str) -> list[tuple[int, str]]:
    """Resolve ``url``'s host; every address it resolves to, as ``(family, ip)``, when all of them are public.

    An empty list means the name did not resolve here (the transport's own lookup will fail the same way, or the
    transport is not a network one: a mock).

    Raises:
        UnsafeURLError: The URL is ambiguous, or its host is (or resolves to) a private, loopback, link-local,
            multicast or reserved address.
    """
    o = origin(url)
    host = o.host.strip("[]")
    try:
        infos = socket.getaddrinfo(host, o.port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    found: list[tuple[int, str]] = []
    for family, _, _, _, sockaddr in infos:
        ip = str(sockaddr[0])
        why = refused_address(ip)
        if why is not None:
            raise UnsafeURLError(
                f"refusing to download {without_query(url)}: {o.host} is a {why} address ({ip}), not a public one; "
                f"pass {ALLOW_PRIVATE_OPTION} to save() if you trust this host")
        if (family, ip) not in found:
            found.append((int(family), ip))
    return found
