"""``Prediction.save()``: find the file URLs in a prediction's output, name them safely, fetch and write them.

Finding and naming are pure; fetching goes through the prediction's client (``client.predictions.download``),
which sends a plain GET with no credential: output URLs are pre-signed, often on a CDN host, and a provider key
must never go there. ``data:`` URIs are decoded here, with no request at all.
"""

from __future__ import annotations

import base64
import binascii
import inspect
import mimetypes
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, unquote_to_bytes, urljoin, urlsplit

from . import _constants
from ._exceptions import (
    APIStatusError,
    InvalidRequestError,
    MalformedResponseError,
    ProviderError,
    ServerError,
)
from ._http import STATUS_ERRORS, HTTPRequest, HTTPResponse
from ._urls import without_query

if TYPE_CHECKING:
    from ._types import Prediction

__all__ = ["async_save", "file_names", "file_urls", "save"]

_SCHEMES = ("http://", "https://", "data:")
_DEFAULT_STEM = "output"


def file_urls(output: Any) -> list[str]:
    """The ``http(s)`` and ``data:`` URLs in ``output`` (a string, or lists/dicts of them, nested), in order."""
    return list(_walk(output))


def _walk(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        if value.lower().startswith(_SCHEMES):
            yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _walk(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _walk(v)


def public_url(url: str) -> str:
    """``url`` without user info, query and fragment (a pre-signed URL's query is a credential), for messages."""
    if url.lower().startswith("data:"):
        return url[: url.find(",") + 1] + "..." if "," in url else "data:..."
    return without_query(url)


def _name_for(url: str, provider: str, model: str | None) -> str:
    if url.lower().startswith("data:"):
        media = url[5:].split(",", 1)[0].split(";", 1)[0].strip().lower()
        ext = (mimetypes.guess_extension(media) or ".bin") if media else ".txt"
        return _DEFAULT_STEM + ext
    raw = urlsplit(url).path.rsplit("/", 1)[-1]
    name = unquote(raw)
    if not name:
        return _DEFAULT_STEM
    seps = {"/", "\\", "\x00", os.sep} | ({os.altsep} if os.altsep else set())
    if name in (".", "..") or any(s in name for s in seps) or ":" in name:
        raise MalformedResponseError(
            f"refusing to save {public_url(url)}: its file name {name!r} would write outside the directory",
            provider=provider, model=model,
        )
    return name


def file_names(urls: list[str], provider: str = "computekit", model: str | None = None) -> list[str]:
    """A safe, distinct file name for each URL: the last part of its path (``out.png``, then ``out-1.png``...).

    Raises:
        MalformedResponseError: A name would leave the directory (``..``, a path separator, a drive).
    """
    names: list[str] = []
    taken: set[str] = set()
    for url in urls:
        name = _name_for(url, provider, model)
        stem, dot, ext = name.rpartition(".") if "." in name.lstrip(".") else (name, "", "")
        candidate, n = name, 0
        while candidate.lower() in taken:
            n += 1
            candidate = f"{stem}-{n}{dot}{ext}"
        taken.add(candidate.lower())
        names.append(candidate)
    return names


def decode_data_uri(url: str, provider: str, model: str | None) -> bytes:
    """The bytes of a ``data:[<media type>][;base64],<data>`` URI.

    Raises:
        MalformedResponseError: It is not a valid data URI, or it decodes to more than the download limit.
    """
    head, sep, payload = url[5:].partition(",")
    if not sep:
        raise MalformedResponseError("malformed data: URI in the output (no comma)", provider=provider, model=model)
    try:
        if head.lower().endswith(";base64"):
            data = base64.b64decode(unquote_to_bytes(payload), validate=False)
        else:
            data = unquote_to_bytes(payload)
    except (binascii.Error, ValueError) as e:
        raise MalformedResponseError(f"malformed data: URI in the output: {e}", provider=provider,
                                     model=model) from None
    check_size(len(data), url, provider, model)
    return data


def check_size(size: int, url: str, provider: str, model: str | None) -> None:
    """Raise once a download passes ``MAX_DOWNLOAD_BYTES`` (read at call time, so it can be changed)."""
    limit = _constants.MAX_DOWNLOAD_BYTES
    if size > limit:
        raise MalformedResponseError(
            f"output file {public_url(url)} is larger than the download limit of {limit} bytes "
            "(computekit._constants.MAX_DOWNLOAD_BYTES); download it yourself",
            provider=provider, model=model,
        )


def _plan(prediction: Prediction, directory: str | os.PathLike[str]) -> tuple[Path, list[str], list[str]]:
    urls = file_urls(prediction.output)
    if not urls:
        raise InvalidRequestError(
            f"prediction {prediction.id} has no file URLs in its output to save"
            + ("" if prediction.done else f" (status {prediction.status}: wait for it to finish first)")
        )
    names = file_names(urls, prediction.provider, prediction.model)  # all names checked before any download
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    return folder, urls, names


def _write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    if path.resolve().parent != folder.resolve():  # a symlink or odd name that escapes: refuse it
        raise InvalidRequestError(f"refusing to write {name!r}: it resolves outside {folder}")
    path.write_bytes(data)
    return path


def save(prediction: Prediction, directory: str | os.PathLike[str], download: Callable[..., Any], *,
         allow_private_network: bool = False) -> list[Path]:
    """See :meth:`Prediction.save`; ``download(url, provider, model, public_only=)`` fetches one file (the
    client's ``predictions.download``)."""
    folder, urls, names = _plan(prediction, directory)
    written = []
    for url, name in zip(urls, names, strict=True):
        if url.lower().startswith("data:"):
            data = decode_data_uri(url, prediction.provider, prediction.model)
        else:
            got = download(url, prediction.provider, prediction.model, public_only=not allow_private_network)
            if inspect.iscoroutine(got):
                got.close()  # not awaited: an AsyncClient's download, called from sync code
                raise InvalidRequestError("this prediction came from an AsyncClient: use await p.async_save(dir)")
            data = got
        written.append(_write(folder, name, data))
    return written


async def async_save(prediction: Prediction, directory: str | os.PathLike[str], download: Callable[..., Any], *,
                     allow_private_network: bool = False) -> list[Path]:
    """See :meth:`Prediction.async_save`; ``download`` as for :func:`save`, awaited."""
    folder, urls, names = _plan(prediction, directory)
    written = []
    for url, name in zip(urls, names, strict=True):
        if url.lower().startswith("data:"):
            data = decode_data_uri(url, prediction.provider, prediction.model)
        else:
            got = download(url, prediction.provider, prediction.model, public_only=not allow_private_network)
            data = await got if inspect.isawaitable(got) else got
        written.append(_write(folder, name, data))
    return written


# --------------------------------------------------------------------------------------------- one download


_REDIRECTS = frozenset({301, 302, 303, 307, 308})


def download_request(url: str, timeout: float, *, public_only: bool = True) -> HTTPRequest:
    """A plain GET of ``url``: no credential, no provider header; ``public_only``: the transport refuses a host
    that is, or resolves to, a private, loopback or link-local address."""
    if not url.lower().startswith(("http://", "https://")):
        raise InvalidRequestError(f"can only download http(s) URLs, not {public_url(url)}")
    return HTTPRequest(method="GET", url=url, headers={"accept": "*/*"}, timeout=timeout,
                       max_bytes=_constants.MAX_DOWNLOAD_BYTES, public_only=public_only)


def redirect_to(head: HTTPResponse, url: str, provider: str, model: str | None) -> str | None:
    """Where a redirect points (absolute), or ``None`` when ``head`` is not a redirect."""
    if head.status not in _REDIRECTS:
        return None
    location = head.headers.get("location")
    if not location:
        raise MalformedResponseError(f"redirect without a location from {public_url(url)}", provider=provider,
                                     model=model, status=head.status)
    target = urljoin(url, location)
    if not target.lower().startswith(("http://", "https://")):
        raise MalformedResponseError(f"refusing a redirect from {public_url(url)} to a non-http(s) URL",
                                     provider=provider, model=model, status=head.status)
    return target


def too_many_redirects(url: str, provider: str, model: str | None) -> MalformedResponseError:
    return MalformedResponseError(
        f"more than {_constants.MAX_DOWNLOAD_REDIRECTS} redirects downloading {public_url(url)}",
        provider=provider, model=model,
    )


def status_error(head: HTTPResponse, url: str, provider: str, model: str | None) -> ProviderError:
    """The typed error for a failed download (404 -> NotFoundError, 5xx -> ServerError ...)."""
    cls = STATUS_ERRORS.get(head.status) or (ServerError if head.status >= 500 else APIStatusError)
    headers = {k.lower(): v for k, v in head.headers.items()}
    return cls(f"download of {public_url(url)} failed", provider=provider, model=model, status=head.status,
               headers=headers, body=head.body_for_error())


class Sink:
    """Collects a download's bytes, refusing more than ``MAX_DOWNLOAD_BYTES`` (announced or received)."""

    def __init__(self, head: HTTPResponse, url: str, provider: str, model: str | None) -> None:
        self.url, self.provider, self.model = url, provider, model
        self.parts: list[bytes] = []
        self.size = 0
        announced = head.headers.get("content-length")
        if announced and announced.strip().isdigit():
            check_size(int(announced), url, provider, model)

    def add(self, data: bytes) -> None:
        self.size += len(data)
        check_size(self.size, self.url, self.provider, self.model)
        self.parts.append(data)

    def content(self) -> bytes:
        return b"".join(self.parts)
