"""The SSE decoder: byte-level framing, with bounded memory."""

from __future__ import annotations

import pytest

from computekit._sse import SSEDecoder, SSETooLarge
from computekit.adapters._base import SSEEvent

BIG = 1 << 20


def _feed_all(pieces: list[bytes], limit: int = BIG) -> tuple[list[SSEEvent], bool]:
    d = SSEDecoder(limit)
    out: list[SSEEvent] = []
    for p in pieces:
        out.extend(d.feed(p))
    tail, cut = d.close()
    return out + tail, cut


STREAM = (
    b": keep-alive\n\n"
    b"event: message\nid: 1\ndata: {\"a\": 1}\n\n"
    b"data: line one\ndata: line two\n\n"
    b"data: caf\xc3\xa9 \xe2\x9c\x93\n\n"
    b"data:no-space\n\n"
    b"data: [DONE]\n\n"
)
# The event type resets after each event; the last event id persists (as the SSE specification says).
EXPECTED = [
    SSEEvent(data='{"a": 1}', event="message", id="1"),
    SSEEvent(data="line one\nline two", id="1"),
    SSEEvent(data="café ✓", id="1"),
    SSEEvent(data="no-space", id="1"),
    SSEEvent(data="[DONE]", id="1"),
]


def test_whole_stream() -> None:
    events, cut = _feed_all([STREAM])
    assert events == EXPECTED
    assert cut is False


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 13, 64])
def test_split_across_chunk_boundaries(size: int) -> None:
    """Any split (including inside a multi-byte UTF-8 character) decodes the same events."""
    pieces = [STREAM[i : i + size] for i in range(0, len(STREAM), size)]
    events, cut = _feed_all(pieces)
    assert events == EXPECTED
    assert cut is False


def test_crlf_line_endings() -> None:
    events, cut = _feed_all([STREAM.replace(b"\n", b"\r\n")])
    assert events == EXPECTED
    assert cut is False


def test_crlf_split_between_cr_and_lf() -> None:
    data = b"data: x\r\n\r\ndata: y\r\n\r\n"
    pieces = [data[:8], data[8:]]  # "data: x\r" | "\n\r\n..."
    events, _ = _feed_all(pieces)
    assert [e.data for e in events] == ["x", "y"]


def test_comments_only_produce_no_events() -> None:
    events, cut = _feed_all([b": ping\n\n: ping\n\n"])
    assert events == []
    assert cut is False


def test_feed_returns_only_completed_events() -> None:
    d = SSEDecoder(BIG)
    assert d.feed(b"data: hel") == []
    assert d.feed(b"lo\n") == []  # line done, event not yet
    assert d.feed(b"\n") == [SSEEvent(data="hello")]


def test_empty_data_line_is_an_event() -> None:
    events, _ = _feed_all([b"data:\n\n"])
    assert events == [SSEEvent(data="")]


def test_unknown_fields_are_ignored() -> None:
    events, _ = _feed_all([b"retry: 1000\nfoo: bar\ndata: x\n\n"])
    assert events == [SSEEvent(data="x")]


def test_close_dispatches_a_complete_but_unterminated_event() -> None:
    d = SSEDecoder(BIG)
    assert d.feed(b"data: last\n") == []
    events, cut = d.close()
    assert events == [SSEEvent(data="last")]
    assert cut is False


def test_close_reports_a_cut_line() -> None:
    d = SSEDecoder(BIG)
    assert d.feed(b'data: {"a": 1}\n\ndata: {"b"') == [SSEEvent(data='{"a": 1}')]
    events, cut = d.close()
    assert events == []
    assert cut is True


def test_close_on_clean_end() -> None:
    d = SSEDecoder(BIG)
    d.feed(b"data: a\n\n")
    assert d.close() == ([], False)


def test_oversized_event_raises() -> None:
    d = SSEDecoder(100)
    for _ in range(10):  # exactly at the limit: fine
        assert d.feed(b"data: " + b"x" * 10 + b"\n") == []
    with pytest.raises(SSETooLarge):
        d.feed(b"data: " + b"x" * 10 + b"\n")


def test_oversized_event_keeps_the_events_before_it_in_the_same_chunk() -> None:
    d = SSEDecoder(100)
    with pytest.raises(SSETooLarge) as ei:
        d.feed(b"data: one\n\ndata: two\n\ndata: " + b"x" * 200 + b"\n")
    assert [e.data for e in ei.value.events] == ["one", "two"]


def test_oversized_unterminated_line_raises() -> None:
    d = SSEDecoder(100)
    d.feed(b"data: " + b"x" * 50)
    with pytest.raises(SSETooLarge):
        d.feed(b"x" * 60)


def test_limit_is_per_event() -> None:
    """Many events, each under the limit, never trip it however long the stream."""
    d = SSEDecoder(100)
    total = 0
    for _ in range(1000):
        total += len(d.feed(b"data: " + b"x" * 50 + b"\n\n"))
    assert total == 1000
