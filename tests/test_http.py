"""The wire vocabulary (``computekit._http``): a response body parses as ``json.loads`` parses it, whatever its
encoding, and fails the same way."""

from __future__ import annotations

import json

import pytest

from computekit._http import HTTPResponse

BODIES = [
    b'{"a": 1, "b": [true, null]}',
    '{"text": "caf\u00e9 \u2603"}'.encode(),
    '{"a": 1}'.encode("utf-16-le"),
    '{"a": 1}'.encode("utf-16"),
    '{"a": 1}'.encode("utf-32"),
    '\ufeff{"a": 1}'.encode(),
    b"[1, 2]",
    b'{"lone surrogate": "\xed\xa0\x80"}',
    b'{"bad utf-8": "\xff"}',
    b"{",
    b"",
    b"  {}",
]


@pytest.mark.parametrize("body", BODIES)
def test_json_parses_and_fails_as_json_loads_does(body: bytes) -> None:
    def outcome(parse: object) -> tuple[str, object]:
        try:
            return "parsed", parse()  # type: ignore[operator]
        except ValueError as e:
            return type(e).__name__, str(e)

    assert outcome(HTTPResponse(200, {}, body).json) == outcome(lambda: json.loads(body))
