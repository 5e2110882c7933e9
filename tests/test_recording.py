"""The recording path is real: with ``record_mode="once"`` and no cassette, computekit's own transports record
live traffic (here from a loopback server standing in for a provider), with credentials filtered out by the
same vcr settings the suite uses; the cassette then replays with the server gone, to the same usage and cost.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import vcr
from _support import LoopbackHandler, chat_json, serve

import computekit as ck

CANARY = "sk-canary-record-0123456789abcdefghij"
ORG = "org-canary-0123456789"
both = pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])


class _Provider(LoopbackHandler):
    hits = 0

    def do_POST(self) -> None:  # the stdlib's handler name
        type(self).hits += 1
        self.rfile.read(int(self.headers["content-length"]))
        self.reply(200, json.dumps(chat_json("recorded live")).encode(), x_request_id="req_live_1",
                   set_cookie=f"session={CANARY}", openai_organization=ORG)


@pytest.fixture
def provider() -> Iterator[str]:
    _Provider.hits = 0
    with serve(_Provider) as url:
        yield url


def _call(base_url: str, is_async: bool) -> ck.Completion:
    settings: dict[str, Any] = {
        "config": None,
        "ledger": "none",
        "retry": {"max_retries": 0},
        "providers": {"openai": {"base_url": base_url, "api_key": CANARY, "organization": ORG}},
    }
    if is_async:
        async def run() -> ck.Completion:
            async with ck.AsyncClient(**settings) as c:
                return await c.complete("openai:gpt-4o-mini", "hi")

        return asyncio.run(run())
    with ck.Client(**settings) as c:
        return c.complete("openai:gpt-4o-mini", "hi")


@both
def test_once_records_live_traffic_without_secrets_then_replays(
    provider: str, vcr_config: dict[str, Any], tmp_path: Path, is_async: bool
) -> None:
    cassette = tmp_path / "recorded.yaml"
    recorder = vcr.VCR(**vcr_config)

    with recorder.use_cassette(str(cassette), record_mode="once"):
        live = _call(provider, is_async)
    assert _Provider.hits == 1, "the first run went to the server"
    assert live.text == "recorded live"

    text = cassette.read_text("utf-8")
    assert "recorded live" in text  # the live response was written
    assert CANARY not in text
    assert ORG not in text
    assert "authorization" not in text.lower()
    assert "set-cookie" not in text.lower()

    # Replay: same answer, same usage and cost, and the server is not asked again.
    with recorder.use_cassette(str(cassette), record_mode="none"):
        replayed = _call(provider, is_async)
    assert _Provider.hits == 1
    assert (replayed.text, replayed.usage, replayed.cost.total) == (live.text, live.usage, live.cost.total)
    assert replayed.cost.total is not None
