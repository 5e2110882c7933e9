"""Read the recorded provider exchanges in ``../shared/conformance`` into one shape, whatever their format.

The fixtures come in five formats (see ``shared/conformance/SOURCES.md``):

- ``vcrpy``: ``interactions[].request{body,headers,method,uri}``, ``response{body.string,headers,status}``;
  bodies may be ``!!binary`` gzip (decompressed here);
- ``vcrpy-legacy-httpx``: ``response{content,headers,http_version,status_code}``;
- ``pydantic-ai``: vcrpy with JSON bodies stored parsed under ``request.parsed_body`` / ``response.parsed_body``;
- ``ruby-vcr``: ``http_interactions[]`` with ``body{encoding,string}`` and a ``recorded_at`` date;
- ``openai-dotnet``: ``{"Entries": [{RequestUri, RequestMethod, ..., ResponseBody}]}`` with JSON bodies parsed.

:func:`load` turns any of them into a list of :class:`Exchange`: lowercased headers, the response body as the
bytes that were on the wire (decompressed), and the status. :func:`to_vcr` writes exchanges back out as a plain
vcrpy cassette, so that any recording can be replayed through the real HTTP stack.

The directory is ``$COMPUTEKIT_CONFORMANCE_DIR``, else ``../shared/conformance`` next to the repository. When it is
missing, tests skip with a message, except in CI (``$CI`` set), where they fail.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import gzip
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent

__all__ = [
    "Exchange",
    "conformance_dir",
    "detect_format",
    "feed_pieces",
    "files",
    "fragments",
    "load",
    "require_conformance_dir",
    "to_vcr",
]

_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class Exchange:
    """One recorded request/response pair.

    Attributes:
        file: The fixture's path relative to the conformance directory (``openai/chat-basic-usage-details.yaml``).
        index: The exchange's position in the file (0-based).
        format: Which of the five formats the file is in.
        method: Upper-case HTTP method.
        uri: The full request URL.
        request_headers: Request headers, names lowercased, repeated values joined with ``", "``.
        request_body: The request body: parsed JSON when it is JSON, else the text (``None`` when absent).
        status: The response status code.
        headers: Response headers, names lowercased, repeated values joined with ``", "``.
        content: The response body as sent on the wire, decompressed when it was stored gzip.
        recorded_at: When it was recorded, when the file says (Ruby VCR ``recorded_at``, else the ``Date`` header).
    """

    file: str
    index: int
    format: str
    method: str
    uri: str
    request_headers: dict[str, str]
    request_body: Any
    status: int
    headers: dict[str, str]
    content: bytes
    recorded_at: dt.datetime | None = field(default=None, compare=False)

    @property
    def id(self) -> str:
        return f"{self.file}#{self.index}"

    @property
    def path(self) -> str:
        return urlsplit(self.uri).path

    @property
    def host(self) -> str:
        return urlsplit(self.uri).hostname or ""

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    @property
    def is_sse(self) -> bool:
        return self.content_type == "text/event-stream"

    def json(self) -> Any:
        """The response body parsed as JSON."""
        return json.loads(self.content)

    def sse_data(self) -> list[str]:
        """The ``data:`` payloads of an event-stream body, in order (``[DONE]`` included)."""
        out: list[str] = []
        for block in self.content.decode("utf-8").replace("\r\n", "\n").split("\n\n"):
            lines = [ln[5:].lstrip(" ") for ln in block.split("\n") if ln.startswith("data:")]
            if lines:
                out.append("\n".join(lines))
        return out


# ------------------------------------------------------------------------------------------------ directory


def conformance_dir() -> Path:
    """``$COMPUTEKIT_CONFORMANCE_DIR``, else ``<repo>/../shared/conformance`` (may not exist)."""
    env = os.environ.get("COMPUTEKIT_CONFORMANCE_DIR")
    if env:
        p = Path(env)
        return p if p.is_absolute() else (ROOT / p).resolve()
    return (ROOT.parent / "shared" / "conformance").resolve()


def require_conformance_dir() -> Path:
    """The conformance directory; skips (outside CI) or fails (in CI) when it is missing."""
    d = conformance_dir()
    if not d.is_dir():
        if in_ci():
            pytest.fail(f"{MISSING_REASON} (looked in {d}; required in CI)")
        pytest.skip(MISSING_REASON)
    return d


# One reason for every skipped conformance test, whatever the path looked in, so a run without the recordings
# reports them as one line.
MISSING_REASON = (
    "needs the conformance recordings (../shared/conformance beside the repository, or COMPUTEKIT_CONFORMANCE_DIR)"
)


def in_ci() -> bool:
    """``$CI`` set to anything but an explicit no (CI services set ``CI=true``)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def files(*providers: str) -> list[str]:
    """Every fixture file under the given provider folders, relative paths, sorted (empty if none)."""
    d = conformance_dir()
    out: list[str] = []
    for prov in providers:
        folder = d / prov
        if folder.is_dir():
            out.extend(
                f"{prov}/{p.name}"
                for p in sorted(folder.iterdir())
                if p.is_file() and p.suffix in (".yaml", ".yml", ".json")
            )
    return out


# ------------------------------------------------------------------------------------------------ parsing


def _headers(raw: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    if not raw:
        return out
    items: Iterator[tuple[Any, Any]]
    items = iter(raw.items()) if isinstance(raw, Mapping) else iter(raw)  # legacy layouts: list of pairs
    for name, value in items:
        vals = value if isinstance(value, list) else [value]
        text = ", ".join(v.decode() if isinstance(v, bytes) else str(v) for v in vals)
        key = str(name).lower()
        out[key] = f"{out[key]}, {text}" if key in out else text
    return out


def _as_bytes(body: Any) -> bytes:
    if body is None:
        return b""
    if isinstance(body, bytes):
        data = body
    elif isinstance(body, str):
        data = body.encode("utf-8")
    else:  # a parsed JSON body: serialise it back (key order is kept)
        data = json.dumps(body).encode("utf-8")
    if data.startswith(_GZIP_MAGIC):
        data = gzip.decompress(data)
    return data


def _request_body(body: Any) -> Any:
    if isinstance(body, Mapping) and set(body) <= {"string", "encoding", "base64_string"}:
        body = body.get("string")
    if body is None or body == "":
        return None
    if isinstance(body, bytes):
        if body.startswith(_GZIP_MAGIC):
            body = gzip.decompress(body)
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError:
            return body
    if isinstance(body, str):
        try:
            return json.loads(body)
        except ValueError:
            return body
    return body  # already parsed


def _date(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _detect(doc: Any) -> str:
    if isinstance(doc, dict) and "Entries" in doc:
        return "openai-dotnet"
    if isinstance(doc, dict) and "http_interactions" in doc:
        return "ruby-vcr"
    if isinstance(doc, dict) and "interactions" in doc:
        inter = doc["interactions"]
        resp = inter[0]["response"] if inter else {}
        if "status_code" in resp or "content" in resp:
            return "vcrpy-legacy-httpx"
        if any("parsed_body" in i["response"] or "parsed_body" in i["request"] for i in inter):
            return "pydantic-ai"
        return "vcrpy"
    raise ValueError("unknown cassette format")


def _vcr_exchange(rel: str, fmt: str, i: int, inter: Mapping[str, Any]) -> Exchange:
    req, resp = inter["request"], inter["response"]
    req_body = req["parsed_body"] if "parsed_body" in req else req.get("body")
    if "status_code" in resp:  # legacy httpx layout
        status = int(resp["status_code"])
        body: Any = resp.get("content")
    else:
        status = int(resp["status"]["code"])
        body = resp["parsed_body"] if "parsed_body" in resp else (resp.get("body") or {}).get("string")
    headers = _headers(resp.get("headers"))
    recorded = inter.get("recorded_at")
    return Exchange(
        file=rel,
        index=i,
        format=fmt,
        method=str(req["method"]).upper(),
        uri=req["uri"],
        request_headers=_headers(req.get("headers")),
        request_body=_request_body(req_body),
        status=status,
        headers=headers,
        content=_as_bytes(body),
        recorded_at=_date(recorded) if isinstance(recorded, str) else _date(headers.get("date")),
    )


def _dotnet_exchange(rel: str, i: int, e: Mapping[str, Any]) -> Exchange:
    headers = _headers(e.get("ResponseHeaders"))
    return Exchange(
        file=rel,
        index=i,
        format="openai-dotnet",
        method=str(e["RequestMethod"]).upper(),
        uri=e["RequestUri"],
        request_headers=_headers(e.get("RequestHeaders")),
        request_body=_request_body(e.get("RequestBody")),
        status=int(e["StatusCode"]),
        headers=headers,
        content=_as_bytes(e.get("ResponseBody")),
        recorded_at=_date(headers.get("date")),
    )


@cache
def _load(path: Path, rel: str) -> tuple[Exchange, ...]:
    text = path.read_text("utf-8")
    doc = json.loads(text) if path.suffix == ".json" else yaml.load(text, Loader=yaml.CSafeLoader)
    fmt = _detect(doc)
    if fmt == "openai-dotnet":
        return tuple(_dotnet_exchange(rel, i, e) for i, e in enumerate(doc["Entries"]))
    inters = doc["http_interactions"] if fmt == "ruby-vcr" else doc["interactions"]
    return tuple(_vcr_exchange(rel, fmt, i, inter) for i, inter in enumerate(inters))


def load(rel: str) -> list[Exchange]:
    """Every exchange in the fixture ``rel`` (``"openai/chat-basic-usage-details.yaml"``), in order."""
    d = conformance_dir()
    return list(_load(d / rel, rel))


def detect_format(rel: str) -> str:
    """The fixture's format: ``vcrpy``, ``vcrpy-legacy-httpx``, ``pydantic-ai``, ``ruby-vcr`` or ``openai-dotnet``."""
    return load(rel)[0].format


# ------------------------------------------------------------------------------------------------ writing


def to_vcr(exchanges: list[Exchange]) -> dict[str, Any]:
    """A plain vcrpy (v1) cassette document replaying ``exchanges``: bodies as sent, never compressed.

    ``Content-Encoding`` and ``Content-Length`` are dropped, since the body is written decompressed.
    """
    interactions = []
    for ex in exchanges:
        body = ex.request_body
        req_body = json.dumps(body) if isinstance(body, dict | list) else body
        headers = {
            k: [v]
            for k, v in ex.headers.items()
            if k not in ("content-encoding", "content-length", "transfer-encoding")
        }
        interactions.append(
            {
                "request": {"body": req_body, "headers": {}, "method": ex.method, "uri": ex.uri},
                "response": {
                    "body": {"string": ex.content.decode("utf-8")},
                    "headers": headers,
                    "status": {"code": ex.status, "message": ""},
                },
            }
        )
    return {"interactions": interactions, "version": 1}


# ------------------------------------------------------------------------------------------------ collection
# What each provider's conformance module parametrises over: its folder's files (none when ../shared/conformance
# is missing: the tests then say so through MISSING), the exchanges of the files it does not list as unsupported,
# and those exchanges by kind.

MISSING = pytest.param(None, id="conformance-dir-missing")


@dataclass(frozen=True)
class Collection:
    files: list[str]
    exchanges: list[Exchange]

    @classmethod
    def of(cls, *folders: str, unsupported: Mapping[str, str]) -> Collection:
        found = files(*folders) if conformance_dir().is_dir() else []
        return cls(found, [ex for f in found if f not in unsupported for ex in load(f)])

    def params(self, kind: Any, *kinds: str) -> list[Any]:
        """The exchanges whose ``kind(ex)`` is one of ``kinds``, as pytest params (``MISSING`` without the dir)."""
        if not self.files:
            return [MISSING]
        return [pytest.param(ex, id=ex.id) for ex in self.exchanges if kind(ex) in kinds]


# ------------------------------------------------------------------------------------------------ streams


def feed_pieces(frames: Any, decoder: Any, content: bytes, piece: int) -> list[Any]:
    """Feed a recorded stream body ``piece`` bytes at a time through ``frames`` (the event framing: server-sent
    events, or AWS's event-stream) into the adapter's stream ``decoder``; the chunks, in order. The body must end on
    a whole event."""
    chunks: list[Any] = []
    for i in range(0, len(content), piece):
        for event in frames.feed(content[i : i + piece]):
            chunks.extend(decoder.feed(event))
    events, cut = frames.close()
    for event in events:
        chunks.extend(decoder.feed(event))
    assert not cut, "the body ended inside an event"
    return chunks


def fragments(chunks: list[Any]) -> list[tuple[str, str, str]]:
    """The tool calls the chunks' fragments rebuild: ``(id, name, arguments)`` by call index."""
    calls: dict[int, dict[str, str]] = {}
    for c in chunks:
        for tc in c.tool_calls:
            acc = calls.setdefault(tc["index"], {"id": "", "name": "", "arguments": ""})
            acc["id"] = tc["id"] or acc["id"]
            acc["name"] = tc["name"] or acc["name"]
            acc["arguments"] += tc["arguments"] or ""
    return [(f["id"], f["name"], f["arguments"]) for _, f in sorted(calls.items())]
