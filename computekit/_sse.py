"""Server-sent events, decoded from raw bytes with a bound on memory (pure: no I/O)."""

from __future__ import annotations

from ._exceptions import ResponseTooLargeError
from ._http import SSEEvent

__all__ = ["FrameError", "SSEDecoder", "SSETooLarge"]


class FrameError(ValueError):
    """A frame of a stream does not parse (a binary framing's bad checksum ...).

    ``events``: what the same read completed before it, delivered before the error.
    """

    def __init__(self, message: str, events: list[SSEEvent] | None = None) -> None:
        super().__init__(message)
        self.events: list[SSEEvent] = events or []


class SSETooLarge(Exception):
    """An event (or a line) grew past the limit: the server is broken or hostile.

    ``events``: what the same read completed before it, delivered before the error.
    """

    def __init__(self, limit: int, what: str = "a server-sent event (or line)") -> None:
        super().__init__(f"{what} is larger than the {limit}-byte limit ([limits] stream_event_bytes)")
        self.limit = limit
        self.events: list[SSEEvent] = []

    def error(self, provider: str, model: str | None) -> ResponseTooLargeError:
        """The typed error for the caller."""
        err = ResponseTooLargeError(str(self), provider=provider, model=model)
        err.limit = self.limit
        return err


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
            SSETooLarge: An event or line exceeds ``max_event_bytes`` (its ``events``: those completed before).
        """
        if len(self._buf) + len(chunk) + self._size > self._max and b"\n" not in chunk:
            raise SSETooLarge(self._max)  # checked before joining: an endless line never doubles in memory
        buf = self._buf + chunk if self._buf else chunk
        out: list[SSEEvent] = []
        start = 0
        try:
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
                raise SSETooLarge(self._max)
        except SSETooLarge as e:
            e.events = out  # the events before it are still delivered
            raise
        return out

    def _line(self, line: bytes) -> SSEEvent | None:
        if not line:
            return self._dispatch()
        name, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        # Every line counts toward the event's size, before it is decoded: a data line its value, any other line
        # (comment, event, id, unknown field) all of it, so that no kind of line can grow without bound.
        self._size += len(value) if name == b"data" else len(line)
        if self._size > self._max:
            raise SSETooLarge(self._max)
        if not name:
            return None  # comment / keep-alive
        text = value.decode("utf-8", "replace")
        if name == b"data":
            self._data.append(text)
        elif name == b"event":
            self._event = text
        elif name == b"id":
            self._id = text
        return None

    def _dispatch(self) -> SSEEvent | None:
        if not self._data and self._event is None:
            self._size = 0  # comments between events
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
