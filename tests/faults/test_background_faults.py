"""Faults on background responses (``complete(..., background=True)`` and ``client.responses``), against the
loopback fault server, sync and async, default transports.

The submit starts billed work: like a prediction's create it is sent at most once (a 5xx after it went out may have
started a response). Polls (``GET /responses/{id}``) and cancels change nothing and keep the normal retries. A
timeout cancels the response; a response followed from another client (another process) is recorded once. Every
test asserts the server's hit count and the waits the retry loop asked for (recorded, never slept).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import genai_prices
import pytest
from fault_server import FaultServer, Reply, Waits, close, error, make_client, run

import computekit as ck
from computekit._config import RoutingConfig
from computekit.routing import Router

RID = "resp_fault0123456789"
USAGE = {"input_tokens": 30, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 12,
         "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 42}
BACKOFF = [0.5, 1.0, 2.0]  # MaxJitter waits for tries 1, 2, 3 with the default backoff settings

both = pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])


def response(status: str, text: str | None = None, usage: dict[str, Any] | None = None) -> Reply:
    """A background ``Response`` object (OpenAI's reference) in ``status``."""
    output = [] if text is None else [{"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
                                       "content": [{"type": "output_text", "text": text, "annotations": []}]}]
    ended = status in ("completed", "cancelled", "failed", "incomplete")
    return Reply(200, {"id": RID, "object": "response", "created_at": 1_760_000_000, "status": status,
                       "background": True, "model": "gpt-4o-2024-08-06", "output": output, "error": None,
                       "usage": (usage or USAGE) if ended else None})


def price(usage: dict[str, Any] = USAGE) -> Any:
    return genai_prices.calc_price(genai_prices.Usage(input_tokens=usage["input_tokens"],
                                                      output_tokens=usage["output_tokens"]),
                                   "gpt-4o-2024-08-06", provider_id="openai").total_price


def ledger_of(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.db'}"


def rows(client: Any) -> list[tuple[str, int | None, str | None]]:
    return [(row.outcome, row.status, row.error_type) for row in client.ledger.rows()]


class ClockedWaits(Waits):
    """The injected sleep, which also moves the router's clock by what it was asked to wait."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def __call__(self, seconds: float) -> None:
        super().__call__(seconds)
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self(seconds)


@both
async def test_a_5xx_while_polling_is_retried(faults: Any, waits: Waits, is_async: bool, tmp_path: Path) -> None:
    srv: FaultServer = faults([response("queued"), error(500), error(502), response("completed", "4")])
    client = make_client(is_async, srv.url, waits, ledger=ledger_of(tmp_path))
    try:
        h = await run(client.complete("openai:gpt-4o", "2+2?", background=True))
        h = await run(client.responses.wait(h, poll_interval=1.0))
    finally:
        await close(client)
    assert h.status == "completed"
    assert h.text == "4"
    assert [(r.method, r.path) for r in srv.requests] == [("POST", "/v1/responses")] + [
        ("GET", f"/v1/responses/{RID}")] * 3
    assert waits.waits == [1.0, *BACKOFF[:2]]  # the poll interval, then one backoff per failed poll
    [row] = client.ledger.rows()
    assert (row.outcome, row.cost, row.once_key) == ("success", price(), f"background:openai:{RID}")


@both
async def test_a_5xx_on_the_submit_is_not_retried(faults: Any, waits: Waits, is_async: bool,
                                                  tmp_path: Path) -> None:
    srv: FaultServer = faults([error(500), response("queued")])
    client = make_client(is_async, srv.url, waits, ledger=ledger_of(tmp_path))
    try:
        with pytest.raises(ck.ServerError) as info:
            await run(client.complete("openai:gpt-4o", "2+2?", background=True))
    finally:
        await close(client)
    assert srv.hits == 1  # a second submit could run, and bill, a second response
    assert waits.waits == []
    assert any("not retried" in note for note in info.value.__notes__)
    assert rows(client) == [("error", 500, "ServerError")]


@both
async def test_a_timeout_cancels_the_response(faults: Any, is_async: bool, tmp_path: Path) -> None:
    partial = {**USAGE, "output_tokens": 3, "total_tokens": 33}
    srv: FaultServer = faults([response("queued"), response("in_progress"), response("in_progress"),
                               response("cancelled", usage=partial)])
    waits = ClockedWaits()
    client = make_client(is_async, srv.url, waits, ledger=ledger_of(tmp_path),
                         router=Router(RoutingConfig(), clock=waits.clock))
    try:
        h = await run(client.complete("openai:gpt-4o", "2+2?", background=True))
        with pytest.raises(ck.BackgroundTimeoutError) as info:
            await run(client.responses.wait(h, timeout=5, poll_interval=3))
    finally:
        await close(client)
    assert [(r.method, r.path) for r in srv.requests] == [
        ("POST", "/v1/responses"), ("GET", f"/v1/responses/{RID}"), ("GET", f"/v1/responses/{RID}"),
        ("POST", f"/v1/responses/{RID}/cancel")]
    assert waits.waits == [3, 2]  # never past the timeout
    assert info.value.response.status == "cancelled"
    [row] = client.ledger.rows()
    assert (row.outcome, row.output_tokens, row.cost) == ("canceled", 3, price(partial))


@both
async def test_a_process_that_attaches_later_records_once(faults: Any, waits: Waits, is_async: bool,
                                                          tmp_path: Path) -> None:
    """The submitter (under a budget) and a second client on the same ledger (another process, following the id
    it was handed) both see the response end: one row, written by whichever saw it first; the submitter's
    reservation is settled all the same."""
    srv: FaultServer = faults([response("queued"), response("completed", "4")])
    submitter = make_client(is_async, srv.url, waits, ledger=ledger_of(tmp_path), budget={"limit_usd": "5"})
    follower = make_client(is_async, srv.url, waits, ledger=ledger_of(tmp_path))
    try:
        h = await run(submitter.complete("openai:gpt-4o", "2+2?", background=True, max_tokens=100))
        assert submitter.budget_status()["default"].reserved > 0
        seen = await run(follower.responses.retrieve(h.handle))
        assert seen.status == "completed"
        assert seen.cost.total == price()
        assert len(follower.ledger.rows()) == 1
        done = await run(submitter.responses.wait(h, poll_interval=0))
        assert done.cost.total == price()
        status = submitter.budget_status()["default"]
    finally:
        await close(submitter)
        await close(follower)
    assert [(r.once_key, r.cost) for r in submitter.ledger.rows()] == [(f"background:openai:{RID}", price())]
    assert (status.reserved, status.spent) == (0, price())
    assert [r.method for r in srv.requests] == ["POST", "GET", "GET"]
