"""Server-sent events, decoded from raw bytes with a bound on memory (pure: no I/O)."""

from __future__ import annotations

from ._http import SSEEvent

__all__ = ["SSEDecoder", "SSETooLarge"]


class SSETooLarge(Exception):
    """An event (or a line) grew past the limit: the server is broken or hostile."""


class SSEDecoder:
    """Feed bytes as they arrive; get complete events back.

    Args:
        max_event_bytes: The largest event (or unterminated line) buffered before giving up.
    """

    __slots__ = ("_buf", "_data", "_event", "_id", "_max", "_size")

    def __init__(self, max_event_bytes: int) -> None:
        self._buf = b""
        self._data: list[str] = []
        self._event: str | None = None
        self._id: str | None = None
        self._max = max_event_bytes
        self._size = 0

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Decode ``chunk``; returns the events it completed.

        Raises:
            SSETooLarge: An event or line exceeds ``max_event_bytes``.
        """
        buf = self._buf + chunk if self._buf else chunk
        out: list[SSEEvent] = []
        start = 0
        while True:
            nl = buf.find(b"\n", start)
            if nl < 0:
                break
            line = buf[start:nl]
            start = nl + 1
            if line.endswith(b"\r"):
                line = line[:-1]
            ev = self._line(line)
            if ev is not None:
                out.append(ev)
        self._buf = buf[start:]
        if len(self._buf) + self._size > self._max:
            raise SSETooLarge(f"server-sent event larger than {self._max} bytes")
        return out

    def _line(self, line: bytes) -> SSEEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(b":"):
            return None  # comment / keep-alive
        name, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        text = value.decode("utf-8", "replace")
        if name == b"data":
            self._data.append(text)
            self._size += len(value)
            if self._size > self._max:
                raise SSETooLarge(f"server-sent event larger than {self._max} bytes")
        elif name == b"event":
            self._event = text
        elif name == b"id":
            self._id = text
        return None

    def _dispatch(self) -> SSEEvent | None:
        if not self._data and self._event is None:
            return None
        ev = SSEEvent(data="\n".join(self._data), event=self._event, id=self._id)
        self._data = []
        self._event = None
        self._size = 0
        return ev

    def close(self) -> tuple[list[SSEEvent], bool]:
        """End of stream: the last event (if complete lines were pending) and whether a line was cut short."""
        cut = bool(self._buf.strip())
        self._buf = b""
        last = self._dispatch()
        return ([last] if last else []), cut
