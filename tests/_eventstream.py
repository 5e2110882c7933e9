"""AWS event-stream frames, written for tests (authored ConverseStream bodies and fault-server streams).

The layout is AWS's (docs.aws.amazon.com/transcribe/latest/dg/event-stream.html, "Event stream encoding"): a
12-byte prelude (total length, headers length, CRC32 of the two), the headers (name length, name, type 7 = string,
value length, value), the payload, and a CRC32 of everything before it. computekit reads frames with botocore's
parser; writing them is only needed here.
"""

from __future__ import annotations

import binascii
import json
import struct
from typing import Any

__all__ = ["converse_stream", "exception_frame", "frame"]


def _headers(headers: dict[str, str]) -> bytes:
    out = b""
    for name, value in headers.items():
        n, v = name.encode(), value.encode()
        out += struct.pack("!B", len(n)) + n + b"\x07" + struct.pack("!H", len(v)) + v
    return out


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message."""
    hdrs = _headers(headers)
    total = 12 + len(hdrs) + len(payload) + 4
    prelude = struct.pack("!II", total, len(hdrs))
    prelude += struct.pack("!I", binascii.crc32(prelude) & 0xFFFFFFFF)
    body = prelude + hdrs + payload
    return body + struct.pack("!I", binascii.crc32(body) & 0xFFFFFFFF)


def event(kind: str, payload: dict[str, Any]) -> bytes:
    """A ConverseStream event frame (``messageStart``, ``contentBlockDelta``, ``metadata`` ...)."""
    return frame({":event-type": kind, ":content-type": "application/json", ":message-type": "event"},
                 json.dumps(payload, separators=(",", ":")).encode())


def exception_frame(kind: str, message: str) -> bytes:
    """An exception frame, as ConverseStream sends one mid-stream (``throttlingException`` ...)."""
    return frame({":exception-type": kind, ":content-type": "application/json", ":message-type": "exception"},
                 json.dumps({"message": message}).encode())


def converse_stream(pieces: list[str], *, usage: dict[str, Any] | None = None, stop: str = "end_turn",
                    metadata: bool = True) -> list[bytes]:
    """The frames of a text answer: messageStart, one delta per piece, block stop, messageStop, metadata."""
    out = [event("messageStart", {"role": "assistant"})]
    out += [event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": p}}) for p in pieces]
    out.append(event("contentBlockStop", {"contentBlockIndex": 0}))
    out.append(event("messageStop", {"stopReason": stop}))
    if metadata:
        out.append(event("metadata", {"usage": usage or {"inputTokens": 12, "outputTokens": 5, "totalTokens": 17},
                                      "metrics": {"latencyMs": 210}}))
    return out
