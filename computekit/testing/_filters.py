"""Keeping secrets out of cassettes: filters that run as each interaction is recorded, and a scan that refuses
to write a cassette in which anything still looks like a secret.

The filters (a :class:`Scrubber`, plugged into vcrpy as ``before_record_request`` / ``before_record_response``)

- drop credential headers (``authorization``, ``x-api-key``, ``api-key``, ``x-goog-api-key``, cookies, OpenAI
  organization and project ids ...) — after noting the key each one carried;
- mask secret query-string parameters (``key``, ``api_key``, ``token`` ...) and the signatures of signed URLs
  (S3, GCS, CloudFront, Replicate file URLs ...) wherever a URL appears, bodies included;
- mask secret-named JSON fields (``api_key``, ``client_secret``, ``password`` ...);
- mask every key the test used (noted from the request headers), the values of the key env vars of every
  provider (and of any ``*_API_KEY`` / ``*_TOKEN`` / ``*_SECRET`` variable), and key-shaped strings
  (``sk-…``, ``r8_…``, ``gsk_…``, ``hf_…``, ``AIza…``, JWTs, ``Bearer …``);
- look for those secrets in decoded forms too: inside JSON strings written with escapes (``"sk\u002d…"``),
  inside base64 (standard or URL-safe, e.g. a Basic header or an encoded payload in a body), and across the
  events of a server-sent stream (a key split over several deltas, found in each field's joined text). What is
  found is masked where it sits and the encoding is rebuilt; in AWS's binary event-stream (Bedrock's
  ConverseStream) each frame is masked on its own and written again with its lengths and checksums right, so the
  cassette still replays.

Filters run on requests both when recording and when matching, so masked requests still match on replay.
The scan (:func:`scan`, run by :class:`ScanningPersister` as the cassette is written) looks again — for the same
things, and for headers and JSON fields *named* like credentials that no filter knew — and raises
:class:`LeakedSecretError` instead of writing. Its messages never show the value they found.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import struct
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import quote, quote_plus, urlsplit

__all__ = [
    "CREDENTIAL_HEADERS",
    "MASK",
    "SECRET_FIELDS",
    "SECRET_QUERY_PARAMS",
    "Finding",
    "LeakedSecretError",
    "ScanningPersister",
    "Scrubber",
    "cassette_config",
    "scan",
]

MASK = "REDACTED"
_MASK_B = MASK.encode()

CREDENTIAL_HEADERS: tuple[str, ...] = (
    "authorization",
    "proxy-authorization",
    "api-key",
    "x-api-key",
    "x-goog-api-key",
    "x-auth-token",
    "ocp-apim-subscription-key",
    "cookie",
    "set-cookie",
    "openai-organization",
    "openai-project",
    "anthropic-organization-id",
    "x-amz-security-token",  # AWS temporary credentials' session token (SigV4-signed requests)
)
"""Headers that carry a credential or an account's identity: dropped from requests and responses."""

SECRET_QUERY_PARAMS: tuple[str, ...] = (
    "key",
    "api_key",
    "apikey",
    "api-key",
    "access_token",
    "token",
    "auth",
    "sig",
    "signature",
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
    "x-goog-signature",
    "x-goog-credential",
    "key-pair-id",
    "policy",
    # OAuth form bodies (application/x-www-form-urlencoded): google-auth refreshing Application Default
    # Credentials sends the user's refresh token and client secret, a service account its signed assertion.
    "client_secret",
    "refresh_token",
    "id_token",
    "assertion",
    "subject_token",
    "password",
)
"""Query-string parameters whose values are masked, in request URLs, in every URL found in a body (signed
URLs: S3 and GCS presigned URLs, CloudFront, Azure SAS ``sig``, Replicate's signed file URLs) and in form-encoded
bodies (an OAuth token request)."""

SECRET_FIELDS: tuple[str, ...] = (
    "api_key",
    "apikey",
    "api_token",
    "access_token",
    "refresh_token",
    "client_secret",
    "secret",
    "password",
    "private_key",
    "secretaccesskey",  # AWS temporary credentials (STS, SSO, container and instance roles), any capitalisation
    "sessiontoken",
)
"""JSON fields (and XML elements, as AWS STS answers) whose string values are masked in request and response
bodies; matched without regard to case."""

# Key-shaped strings, by the prefixes providers give their keys (and the shapes of tokens in general).
_KEY_SHAPES = re.compile(
    rb"(?<![A-Za-z0-9])(?:"
    rb"(?:sk|rk|pk)[-_][A-Za-z0-9_\-]{16,}"  # OpenAI, Anthropic (sk-ant-), DeepSeek, Stability ...
    rb"|r8_[A-Za-z0-9]{20,}"  # Replicate
    rb"|gsk_[A-Za-z0-9]{20,}"  # Groq
    rb"|hf_[A-Za-z0-9]{20,}"  # Hugging Face
    rb"|fw_[A-Za-z0-9]{16,}"  # Fireworks
    rb"|rpa_[A-Za-z0-9]{20,}"  # RunPod
    rb"|(?:xai|pplx|nvapi)-[A-Za-z0-9_\-]{20,}"
    rb"|AIza[0-9A-Za-z_\-]{35}"  # Google API keys
    rb"|(?:AKIA|ASIA)[0-9A-Z]{16}"  # AWS access key ids (long-term, temporary)
    rb"|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}"
    rb"|eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"  # JWTs
    rb")"
    rb"|(?<=Bearer )[A-Za-z0-9._~+/=\-]{16,}"
)

# A parameter after "?" or "&", or first in a form-encoded body (where nothing comes before it).
_SIGNED_PARAM = re.compile(
    rb"(?i)((?:^|[?&])(?:" + b"|".join(re.escape(p.encode()) for p in SECRET_QUERY_PARAMS) + rb")=)([^&\s\"'<>\\]+)"
)

# Env vars that hold keys, beyond the adapters' own: *_API_KEY, *_API_TOKEN, *_TOKEN, *_SECRET, *_KEY.
_KEY_ENV_NAME = re.compile(r"(?:API_?KEY|API_?TOKEN|_TOKEN|_SECRET|_KEY)$")
_MIN_SECRET = 8
"""Shorter values are not secrets (a placeholder, a flag) and masking them would mangle the recording."""
_MIN_GENERIC_ENV = 12

# For the scan: names that say "credential" (header names split at "-", JSON field names at "_"/"-").
_SECRET_NAME_PARTS = frozenset({
    "key", "apikey", "token", "secret", "auth", "authorization", "signature", "cookie", "session", "password",
    "passwd", "credential", "credentials", "assertion",
})
_DEFAULT_ALLOW = frozenset({
    "idempotency-key",  # computekit's own per-request key (a random id, not a credential)
    "next_page_token", "page_token", "next_token", "pagination_token",
    "eos_token", "bos_token", "pad_token", "unk_token", "sep_token", "cls_token", "mask_token",
})
_JSON_FIELD = re.compile(rb'"([A-Za-z0-9_\-]{1,64})"\s*:\s*"((?:[^"\\]|\\.)*)"')
_FORM = re.compile(rb"[A-Za-z0-9_.\-]{1,64}=[A-Za-z0-9_.~%+\-]*(?:&[A-Za-z0-9_.\-]{1,64}=[A-Za-z0-9_.~%+\-]*)*")
_XML_TEXT = re.compile(rb"<([A-Za-z][A-Za-z0-9_.\-]{0,63})>([^<]*)</\1>")
# Decoded views of a body, where a secret can hide from a literal search.
_ESCAPED_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*\\(?:[^"\\]|\\.)*"')  # a JSON string with an escape
_BASE64_RUN = re.compile(rb"(?<![A-Za-z0-9+/_\-])[A-Za-z0-9+/_\-]{12,}={0,2}")
"""Candidate base64 (standard or URL-safe): 12 characters encode the shortest secret looked for (8 bytes)."""
_DECODE_DEPTH = 2
"""How many encodings deep a secret is looked for (base64 of an escaped JSON string: 2)."""
_KEY_SHAPES_TEXT = re.compile(_KEY_SHAPES.pattern.decode("ascii"))
_SSE_DATA = re.compile(rb"^data:[ ]?(.*?)\r?$", re.MULTILINE)
_SCHEMES = ("bearer ", "token ", "key ", "api-key ", "basic ")


@cache
def _adapter_key_vars() -> frozenset[str]:
    """The key env vars of every registered provider."""
    from ..adapters import adapter_class, available

    names: set[str] = set()
    for provider in available():
        try:
            names.update(adapter_class(provider).defaults_for(provider)[1])
        except Exception:  # noqa: S112 - a broken third-party plugin must not stop the filters
            continue
    return frozenset(names)


def env_secrets() -> list[str]:
    """The values of the key env vars that are set: what a real recording would send."""
    out = []
    known = _adapter_key_vars()
    for name, value in os.environ.items():
        if (name in known and len(value) >= _MIN_SECRET) or (
            _KEY_ENV_NAME.search(name.upper()) and len(value) >= _MIN_GENERIC_ENV
        ):
            out.append(value)
    return out


def _forms(secret: str) -> list[bytes]:
    """A secret as it may appear: literal, and URL-encoded."""
    return list(dict.fromkeys(s.encode() for s in (secret, quote(secret, safe=""), quote_plus(secret))))


@dataclass(frozen=True, slots=True)
class Finding:
    """Something that still looks like a secret: where (``"response 1 header 'x-token'"``) and what kind. Never
    the value."""

    where: str
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


class LeakedSecretError(AssertionError):
    """A cassette was not written because something in it still looks like a secret after filtering.

    Attributes:
        path: The cassette that was not written.
        findings: What was found, and where (never the values).
    """

    def __init__(self, path: str, findings: Sequence[Finding]) -> None:
        self.path = path
        self.findings = list(findings)
        lines = "\n".join(f"  - {f}" for f in self.findings)
        super().__init__(
            f"computekit.testing did not write the cassette {path}: {len(self.findings)} thing(s) still look like "
            f"secrets after filtering:\n{lines}\n"
            "Filter them — @pytest.mark.computekit_cassette(filter_headers=[...], filter_query=[...], "
            "filter_fields=[...]) or the computekit_filter_* ini options — or, if they are not secrets, allow "
            "them by name (allow=[...])."
        )


class Scrubber:
    """The filters of one cassette (or one test module): vcrpy hooks, plus the keys noted along the way.

    Args:
        headers: More header names to drop (beyond :data:`CREDENTIAL_HEADERS`).
        query: More query parameters to mask (beyond :data:`SECRET_QUERY_PARAMS`).
        fields: More JSON fields to mask (beyond :data:`SECRET_FIELDS`).
        secrets: Literal values to mask wherever they appear (beyond the noted keys and the env vars).
        allow: Header or field names the scan must not report (they are not secrets).
    """

    def __init__(
        self,
        *,
        headers: Iterable[str] = (),
        query: Iterable[str] = (),
        fields: Iterable[str] = (),
        secrets: Iterable[str] = (),
        allow: Iterable[str] = (),
    ) -> None:
        self.headers = frozenset(h.lower() for h in (*CREDENTIAL_HEADERS, *headers))
        self.query = frozenset(q.lower() for q in (*SECRET_QUERY_PARAMS, *query))
        self.fields = frozenset(f.lower() for f in (*SECRET_FIELDS, *fields))
        self.allow = frozenset(a.lower() for a in allow) | _DEFAULT_ALLOW
        self._secrets: set[str] = {s for s in secrets if len(s) >= _MIN_SECRET}
        self._lock = threading.Lock()
        extra_params = sorted(self.query - set(SECRET_QUERY_PARAMS))
        self._signed = _SIGNED_PARAM if not extra_params else re.compile(
            rb"(?i)((?:^|[?&])(?:" + b"|".join(re.escape(p.encode()) for p in sorted(self.query)) + rb")=)"
            rb"([^&\s\"'<>\\]+)"
        )
        names = b"|".join(re.escape(f.encode()) for f in sorted(self.fields))
        self._field = re.compile(rb'("(?:' + names + rb')"\s*:\s*")((?:[^"\\]|\\.)*)(")', re.IGNORECASE)
        self._element = re.compile(rb"(<(" + names + rb")>)([^<]*)(</\2>)", re.IGNORECASE)

    def __deepcopy__(self, memo: dict[int, Any]) -> Scrubber:
        # pytest-recording deep-copies vcr_config for each test: the copy must be this scrubber, whose noted
        # keys the scan of the cassette needs.
        return self

    # ----------------------------------------------------------------------------------------- secrets

    def note(self, value: str) -> None:
        """Remember a secret (a key seen in a request) so that it is masked wherever it appears."""
        v = value.strip()
        low = v.lower()
        for scheme in _SCHEMES:
            if low.startswith(scheme):
                v = v[len(scheme):].strip()
                if scheme == "basic ":
                    try:
                        for part in base64.b64decode(v, validate=True).decode().split(":", 1):
                            self.note(part)
                    except (binascii.Error, UnicodeDecodeError):
                        pass
                break
        if len(v) >= _MIN_SECRET and v != MASK:
            with self._lock:
                self._secrets.add(v)

    def secrets(self) -> list[str]:
        """Every literal to mask: noted keys, given ones and the key env vars' values, longest first."""
        with self._lock:
            found = set(self._secrets)
        found.update(env_secrets())
        return sorted(found, key=len, reverse=True)

    # ----------------------------------------------------------------------------------------- masking

    def mask(self, data: bytes) -> bytes:
        """``data`` with every known secret, key-shaped string, signed-URL parameter and secret field masked —
        also where they are base64-encoded or written with JSON escapes."""
        return self._mask(data, self.secrets(), 0)

    def _mask(self, data: bytes, secrets: list[str], depth: int) -> bytes:
        for secret in secrets:
            for form in _forms(secret):
                data = data.replace(form, _MASK_B)
        if depth < _DECODE_DEPTH:
            if b"\\" in data:
                data = _ESCAPED_JSON_STRING.sub(lambda m: self._mask_json_string(m.group(0), secrets, depth), data)
            data = _BASE64_RUN.sub(lambda m: self._mask_base64(m.group(0), secrets, depth), data)
        data = _KEY_SHAPES.sub(_MASK_B, data)
        data = self._signed.sub(rb"\1" + _MASK_B, data)
        data = self._element.sub(rb"\1" + _MASK_B + rb"\4", data)
        return self._field.sub(rb"\1" + _MASK_B + rb"\3", data)

    def _mask_json_string(self, literal: bytes, secrets: list[str], depth: int) -> bytes:
        """A JSON string literal whose decoded text holds a secret, rebuilt with it masked (else unchanged)."""
        text = _json_text(literal)
        if text is None:
            return literal
        raw = text.encode("utf-8", "surrogatepass")
        masked = self._mask(raw, secrets, depth + 1)
        if masked == raw:
            return literal
        return json.dumps(masked.decode("utf-8", "surrogatepass")).encode()

    def _mask_base64(self, run: bytes, secrets: list[str], depth: int) -> bytes:
        """A base64 run whose decoded bytes hold a secret, re-encoded with it masked (else unchanged)."""
        decoded = _b64decode(run)
        if decoded is None:
            return run
        raw, urlsafe = decoded
        masked = self._mask(raw, secrets, depth + 1)
        if masked == raw:
            return run
        encoded = base64.urlsafe_b64encode(masked) if urlsafe else base64.b64encode(masked)
        return encoded if run.endswith(b"=") else encoded.rstrip(b"=")

    def mask_stream(self, data: bytes) -> bytes:
        """A server-sent-events body with the secrets that only appear when a field's pieces are joined (a key
        split over several deltas) masked in each piece they span. Other bodies are returned as they are."""
        events = _sse_events(data)
        if not events:
            return data
        secrets = self.secrets()
        changed: set[int] = set()
        for pieces in _joined_fields(events).values():
            joined = "".join(value for _, _, value in pieces)
            for start, end in _secret_spans(joined, secrets):
                _mask_pieces(events, pieces, start, end)
                changed.update(index for index, _, _ in pieces)
        for index in sorted(changed, reverse=True):
            line_start, line_end, payload = events[index]
            rebuilt = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False,
                                                                         separators=(",", ":"))
            data = data[:line_start] + b"data: " + rebuilt.encode() + data[line_end:]
        return data

    def mask_text(self, text: str) -> str:
        """:meth:`mask` for a ``str``."""
        return self.mask(text.encode("utf-8", "surrogateescape")).decode("utf-8", "surrogateescape")

    def mask_frames(self, data: bytes) -> bytes | None:
        """An AWS event-stream body (every frame whole, checksums right) with each frame's payload and string
        header values masked, and each frame written again with its new lengths and checksums: masking the body's
        bytes as they are would leave frames shorter than their prelude says, which no client can read back.
        ``None`` when ``data`` is not such a body."""
        frames = _eventstream_frames(data)
        if frames is None:
            return None
        out = []
        for headers, payload in frames:
            masked = _mask_header_values(headers, self.mask)
            if masked is None:  # a header of a type AWS does not define: the whole frame is masked as bytes
                return None
            out.append(_eventstream_frame(masked, self.mask(payload)))
        rebuilt = b"".join(out)
        return data if rebuilt == data else rebuilt

    def _mask_body(self, body: Any, *, stream: bool = False) -> Any:
        if isinstance(body, bytes):
            framed = self.mask_frames(body) if stream else None
            if framed is not None:
                return framed
            masked = self.mask(body)
            return self.mask_stream(masked) if stream else masked
        if isinstance(body, str):
            data = self.mask(body.encode("utf-8", "surrogateescape"))
            return (self.mask_stream(data) if stream else data).decode("utf-8", "surrogateescape")
        return body

    # ----------------------------------------------------------------------------------------- vcrpy hooks

    def request(self, request: Any) -> Any:
        """vcrpy ``before_record_request``: note and drop credential headers, mask the URL and the body."""
        for name in list(request.headers):
            if name.lower() in self.headers:
                self.note(str(request.headers[name]))
                del request.headers[name]
        query = urlsplit(request.uri).query
        for pair in query.split("&") if query else ():
            name, _, value = pair.partition("=")
            if name.lower() in self.query and value:
                self.note(_unquote(value))
        body = getattr(request, "_body", None)  # the stored bytes (``body`` may wrap them in a file object)
        if isinstance(body, bytes | str):
            raw = body.encode() if isinstance(body, str) else body
            for m in _JSON_FIELD.finditer(raw):
                if m.group(1).decode().lower() in self.fields:
                    self.note(m.group(2).decode("utf-8", "replace"))
            for name, value in _form_pairs(raw):  # an OAuth token request: its secrets, masked wherever seen
                if name.lower() in self.query and value:
                    self.note(_unquote(value))
        for name in list(request.headers):
            request.headers[name] = self.mask_text(str(request.headers[name]))
        request.uri = self.mask_text(request.uri)
        if isinstance(body, bytes | str):
            request.body = self._mask_body(body)
        return request

    def response(self, response: dict[str, Any]) -> dict[str, Any]:
        """vcrpy ``before_record_response``: drop credential headers, mask the other headers and the body."""
        headers = response.get("headers") or {}
        for name in list(headers):
            if name.lower() in self.headers:
                del headers[name]
                continue
            values = headers[name] if isinstance(headers[name], list) else [headers[name]]
            headers[name] = [self.mask_text(str(v)) for v in values]
        body = response.get("body")
        if isinstance(body, dict) and "string" in body:
            body["string"] = self._mask_body(body["string"], stream=True)
        return response

    # ----------------------------------------------------------------------------------------- the scan

    def scan(self, cassette: Mapping[str, Any]) -> list[Finding]:
        """What still looks like a secret in a cassette's ``{"requests": [...], "responses": [...]}``."""
        return scan(cassette, self)


def _unquote(value: str) -> str:
    from urllib.parse import unquote_plus

    return unquote_plus(value)


def _json_text(literal: bytes) -> str | None:
    """The text of a JSON string literal (``"..."`` with its escapes), or ``None`` when it is not one."""
    try:
        text = json.loads(literal)
    except ValueError:
        return None
    return text if isinstance(text, str) else None


def _b64decode(run: bytes) -> tuple[bytes, bool] | None:
    """The bytes a base64 run encodes, and whether it is the URL-safe alphabet; ``None`` when it is not base64."""
    urlsafe = b"-" in run or b"_" in run
    if urlsafe and (b"+" in run or b"/" in run):
        return None
    core = run.rstrip(b"=")
    if len(core) % 4 == 1:
        return None
    padded = core + b"=" * (-len(core) % 4)
    try:
        raw = base64.urlsafe_b64decode(padded) if urlsafe else base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw, urlsafe


def _secret_spans(text: str, secrets: Sequence[str]) -> list[tuple[int, int]]:
    """Where in ``text`` a known secret (in any of its forms) or a key-shaped string is."""
    spans = [m.span() for m in _KEY_SHAPES_TEXT.finditer(text) if MASK not in m.group(0)]
    for secret in secrets:
        for form in {secret, quote(secret, safe=""), quote_plus(secret)}:
            start = text.find(form)
            while start >= 0:
                spans.append((start, start + len(form)))
                start = text.find(form, start + 1)
    return spans


# One event of a stream: where its data line starts and ends in the body, and its payload (parsed JSON, or the
# raw text when it is not JSON).
_Event = tuple[int, int, Any]
# One string of a stream, in event order: (event index, JSON path inside the event, value).
_Piece = tuple[int, tuple[Any, ...], str]


def _sse_events(data: bytes) -> list[_Event]:
    if not (data.startswith(b"data:") or b"\ndata:" in data):
        return []
    events: list[_Event] = []
    for m in _SSE_DATA.finditer(data):
        payload = m.group(1).decode("utf-8", "replace")
        try:
            parsed: Any = json.loads(payload)
        except ValueError:
            parsed = payload
        events.append((m.start(), m.end(1), parsed))
    return events


def _joined_fields(events: list[_Event]) -> dict[tuple[Any, ...], list[_Piece]]:
    """The strings of a stream grouped by where they sit in their event (``choices.0.delta.content``): each
    group, joined in order, is one field's whole text, as the client assembles it."""
    groups: dict[tuple[Any, ...], list[_Piece]] = {}

    def walk(index: int, value: Any, path: tuple[Any, ...]) -> None:
        if isinstance(value, str):
            groups.setdefault(path, []).append((index, path, value))
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(index, v, (*path, k))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(index, v, (*path, i))

    for index, (_, _, payload) in enumerate(events):
        walk(index, payload, ())
    return groups


def _mask_pieces(events: list[_Event], pieces: list[_Piece], start: int, end: int) -> None:
    """Mask characters ``start:end`` of a field's joined text in the pieces (and so the events) they fall in."""
    offset = 0
    for n, (index, path, value) in enumerate(pieces):
        lo, hi = max(start - offset, 0), min(end - offset, len(value))
        offset += len(value)
        if lo >= hi:
            continue
        new = value[:lo] + MASK + value[hi:]
        pieces[n] = (index, path, new)
        line_start, line_end, payload = events[index]
        if not path:  # a raw (not JSON) event
            events[index] = (line_start, line_end, new)
            continue
        node = payload
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = new


# AWS event-stream framing (docs.aws.amazon.com/transcribe/latest/dg/event-stream.html): a prelude (total length,
# headers length, CRC32 of the two), the headers, the payload, a CRC32 of everything before it.
_PRELUDE = 12
_FRAME_OVERHEAD = _PRELUDE + 4
# Header value types of a fixed size (bool true/false, byte, short, int, long, timestamp, uuid); 6 (bytes) and
# 7 (string) are a 2-byte length and that many bytes.
_FIXED_HEADER_SIZES = {0: 0, 1: 0, 2: 1, 3: 2, 4: 4, 5: 8, 8: 8, 9: 16}
_SIZED_HEADER_TYPES = (6, 7)


def _eventstream_frames(data: bytes) -> list[tuple[bytes, bytes]] | None:
    """The headers and payload of each frame of an AWS event-stream body, or ``None`` when ``data`` is not one
    (a frame cut short or with a wrong checksum included)."""
    frames: list[tuple[bytes, bytes]] = []
    at = 0
    while at < len(data):
        if len(data) - at < _FRAME_OVERHEAD:
            return None
        total, size, prelude_crc = struct.unpack_from("!III", data, at)
        end = at + total
        if total < _FRAME_OVERHEAD or size > total - _FRAME_OVERHEAD or end > len(data):
            return None
        if binascii.crc32(data[at:at + 8]) != prelude_crc:
            return None
        if binascii.crc32(data[at:end - 4]) != struct.unpack_from("!I", data, end - 4)[0]:
            return None
        frames.append((data[at + _PRELUDE:at + _PRELUDE + size], data[at + _PRELUDE + size:end - 4]))
        at = end
    return frames or None


def _mask_header_values(headers: bytes, mask: Callable[[bytes], bytes]) -> bytes | None:
    """A frame's headers with each string and bytes value masked (names are AWS's own); ``None`` when they do not
    parse."""
    out = b""
    at = 0
    try:
        while at < len(headers):
            start = at
            at += 1 + headers[at]  # the name's length, the name
            kind = headers[at]
            at += 1
            if kind in _SIZED_HEADER_TYPES:
                (size,) = struct.unpack_from("!H", headers, at)
                value = mask(headers[at + 2:at + 2 + size])
                out += headers[start:at] + struct.pack("!H", len(value)) + value
                at += 2 + size
            elif kind in _FIXED_HEADER_SIZES:
                at += _FIXED_HEADER_SIZES[kind]
                out += headers[start:at]
            else:
                return None
    except (IndexError, struct.error):
        return None
    return out if at == len(headers) else None


def _eventstream_frame(headers: bytes, payload: bytes) -> bytes:
    prelude = struct.pack("!II", _FRAME_OVERHEAD + len(headers) + len(payload), len(headers))
    prelude += struct.pack("!I", binascii.crc32(prelude))
    message = prelude + headers + payload
    return message + struct.pack("!I", binascii.crc32(message))


def _name_says_secret(name: str, allow: frozenset[str]) -> bool:
    low = name.lower()
    if low in allow:
        return False
    parts = set(re.split(r"[-_.]", low))
    return bool(parts & _SECRET_NAME_PARTS) or "apikey" in low or "secret" in low or "password" in low


def _value_is_masked(value: str) -> bool:
    return MASK in value or len(value.strip()) < _MIN_SECRET


def _secrets_in(data: bytes, secrets: Sequence[str]) -> list[str]:
    """What secret-like things ``data`` holds (never their values): a known secret, a key-shaped string."""
    found = []
    for secret in secrets:
        if any(form in data for form in _forms(secret)):
            found.append(f"a key this test used or an env var holds ({len(secret)} chars)")
            break
    for m in _KEY_SHAPES.finditer(data):
        if _MASK_B not in m.group(0):
            found.append(f"a key-shaped string ({m.group(0)[:3].decode(errors='replace')}…, {len(m.group(0))} chars)")
            break
    return found


def _decoded_views(data: bytes) -> list[tuple[str, bytes]]:
    """What ``data`` says once decoded: its escaped JSON strings, its base64 runs, and each field of a stream's
    events joined. Each with how it was encoded."""
    views: list[tuple[str, bytes]] = []
    if b"\\" in data:
        for m in _ESCAPED_JSON_STRING.finditer(data):
            text = _json_text(m.group(0))
            if text is not None:
                views.append(("written with JSON escapes", text.encode("utf-8", "surrogatepass")))
    for m in _BASE64_RUN.finditer(data):
        decoded = _b64decode(m.group(0))
        if decoded is not None:
            views.append(("base64-encoded", decoded[0]))
    events = _sse_events(data)
    for pieces in _joined_fields(events).values() if events else ():
        if len(pieces) > 1:
            views.append(("split across stream events", "".join(v for _, _, v in pieces).encode()))
    return views


def _scan_blob(where: str, data: bytes, scrubber: Scrubber, out: list[Finding]) -> None:
    secrets = scrubber.secrets()
    found = _secrets_in(data, secrets)
    out.extend(Finding(where, what) for what in found)
    if not found:
        for how, view in _decoded_views(data):
            hidden = _secrets_in(view, secrets)
            if hidden:
                out.append(Finding(where, f"{hidden[0]}, {how}"))
                break
    for m in scrubber._signed.finditer(data):
        if m.group(2) != _MASK_B:
            param = m.group(1).decode(errors="replace").strip("?&=")
            out.append(Finding(where, f"an unmasked {param!r} URL parameter (a signed URL or a key)"))
            break
    for m in _JSON_FIELD.finditer(data):
        name, value = m.group(1).decode(), m.group(2).decode("utf-8", "replace")
        if _name_says_secret(name, scrubber.allow) and not _value_is_masked(value) and not value.isdigit():
            out.append(Finding(where, f"a JSON field named like a credential: {name!r} ({len(value)} chars)"))
    for kind, pairs in (("a form field", _form_pairs(data)), ("an XML element", _xml_elements(data))):
        for name, value in pairs:
            if _name_says_secret(name, scrubber.allow) and not _value_is_masked(value) and not value.isdigit():
                out.append(Finding(where, f"{kind} named like a credential: {name!r} ({len(value)} chars)"))


def _form_pairs(data: bytes) -> list[tuple[str, str]]:
    """The ``name=value`` pairs of a form-encoded body (``a=1&b=2``); none when ``data`` is not one."""
    if not _FORM.fullmatch(data):
        return []
    return [(name.decode(), value.decode("ascii", "replace"))
            for name, _, value in (pair.partition(b"=") for pair in data.split(b"&"))]


def _xml_elements(data: bytes) -> list[tuple[str, str]]:
    """The elements of an XML body that hold text only (``<SessionToken>...</SessionToken>``)."""
    if not data.lstrip().startswith(b"<"):
        return []
    return [(m.group(1).decode(), m.group(2).decode("utf-8", "replace")) for m in _XML_TEXT.finditer(data)]


def _as_bytes(body: Any) -> bytes:
    if isinstance(body, dict):
        body = body.get("string")
    if isinstance(body, str):
        return body.encode("utf-8", "surrogateescape")
    return body if isinstance(body, bytes) else b""


def _header_items(headers: Any) -> list[tuple[str, str]]:
    out = []
    for name in list(headers or {}):
        values = headers[name]
        for v in values if isinstance(values, list) else [values]:
            out.append((str(name), str(v)))
    return out


def scan(cassette: Mapping[str, Any], scrubber: Scrubber | None = None) -> list[Finding]:
    """What in ``cassette`` (``{"requests": [...], "responses": [...]}`` as vcrpy saves it) still looks like a
    secret: credential headers, known keys (noted by ``scrubber``, or in env vars), key-shaped strings, unmasked
    signed-URL parameters, and headers or JSON fields named like credentials.

    Returns:
        The findings, without the values found.
    """
    sc = scrubber or Scrubber()
    out: list[Finding] = []
    pairs: list[tuple[str, Any, Any, Any]] = []
    for i, r in enumerate(cassette.get("requests") or [], 1):
        body = getattr(r, "_body", None)
        pairs.append((f"request {i}", getattr(r, "headers", {}), getattr(r, "uri", ""), body))
    for i, r in enumerate(cassette.get("responses") or [], 1):
        pairs.append((f"response {i}", r.get("headers"), "", r.get("body")))
    for where, headers, uri, body in pairs:
        for name, value in _header_items(headers):
            at = f"{where} header {name.lower()!r}"
            if name.lower() in sc.headers and not _value_is_masked(value):
                out.append(Finding(at, "a credential header was kept"))
            elif _name_says_secret(name, sc.allow) and not _value_is_masked(value):
                out.append(Finding(at, f"a header named like a credential ({len(value)} chars)"))
            else:
                _scan_blob(at, value.encode("utf-8", "surrogateescape"), sc, out)
        if uri:
            _scan_blob(f"{where} URL", str(uri).encode("utf-8", "surrogateescape"), sc, out)
        data = _as_bytes(body)
        if data:
            _scan_blob(f"{where} body", data, sc, out)
    return list(dict.fromkeys(out))


class ScanningPersister:
    """A vcrpy persister that scans a cassette before handing it to ``inner`` to write, and refuses (raises
    :class:`LeakedSecretError`, writing nothing) when anything still looks like a secret.

    Args:
        inner: The persister that writes (vcrpy's ``FilesystemPersister``, pytest-recording's own ...).
        scrubber: The filters that ran on the cassette (their noted keys are scanned for too).
    """

    def __init__(self, inner: Any, scrubber: Scrubber) -> None:
        self.inner = inner
        self.scrubber = scrubber
        self.saved = False
        """Whether a cassette was written (the test recorded live calls)."""

    def load_cassette(self, cassette_path: Any, serializer: Any) -> Any:
        return self.inner.load_cassette(cassette_path, serializer)

    def save_cassette(self, cassette_path: Any, cassette_dict: Mapping[str, Any], serializer: Any) -> None:
        findings = scan(cassette_dict, self.scrubber)
        if findings:
            raise LeakedSecretError(str(cassette_path), findings)
        self.inner.save_cassette(cassette_path, cassette_dict, serializer=serializer)
        self.saved = True


def hooks_of(config: Mapping[str, Any], key: str) -> list[Callable[..., Any]]:
    """A vcrpy hook setting (one function or several) as a list."""
    value = config.get(key)
    if value is None:
        return []
    if callable(value):
        return [value]
    return list(value)


def scrubber_in(config: Mapping[str, Any]) -> Scrubber | None:
    """The :class:`Scrubber` whose hooks ``config`` already holds (from :func:`cassette_config`), if any."""
    for hook in hooks_of(config, "before_record_request"):
        owner = getattr(hook, "__self__", None)
        if isinstance(owner, Scrubber):
            return owner
    return None


def cassette_config(
    *,
    filter_headers: Iterable[str] = (),
    filter_query: Iterable[str] = (),
    filter_fields: Iterable[str] = (),
    secrets: Iterable[str] = (),
    allow: Iterable[str] = (),
    **vcr_options: Any,
) -> dict[str, Any]:
    """vcrpy settings that keep secrets out of cassettes: return it from your ``vcr_config`` fixture to filter
    (and, under the computekit pytest plugin, scan) every ``@pytest.mark.vcr`` cassette, not only the
    ``computekit_cassette`` ones.

    Args:
        filter_headers: More header names to drop.
        filter_query: More query parameters to mask.
        filter_fields: More JSON fields to mask.
        secrets: Literal values to mask.
        allow: Header or field names the scan must not report.
        **vcr_options: Other ``vcr.use_cassette`` options (``match_on`` ...), passed through.

    Returns:
        ``before_record_request``, ``before_record_response`` and ``decode_compressed_response=True``, merged
        with ``vcr_options``.
    """
    sc = Scrubber(headers=filter_headers, query=filter_query, fields=filter_fields, secrets=secrets, allow=allow)
    return {
        "decode_compressed_response": True,
        **vcr_options,
        "before_record_request": [*hooks_of(vcr_options, "before_record_request"), sc.request],
        "before_record_response": [*hooks_of(vcr_options, "before_record_response"), sc.response],
    }
