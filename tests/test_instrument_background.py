"""``ck.instrument``: background responses (``client.responses.create(..., background=True)``) through the real
openai SDK, sync and async.

The create is not billed by itself: it writes no row (its worst case is held under a budget); the look
(``responses.retrieve``, ``responses.cancel``) that finds the response ended writes its one row, keyed
``background:openai:{id}`` like computekit's own ``complete(..., background=True)``, and priced as that path
prices the same answer. The authored answers are the ``Response`` objects of ``test_background_client`` (checked
against OpenAI's spec there and here); the real recordings of background mode are replayed at the end.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx
import pytest
from _conformance import Exchange, load, require_conformance_dir
from _support import Server as CkServer
from _support import make_client
from test_background_client import RID, message, price, response
from test_background_client import openai_spec as openai_spec  # the fixture: the spec's schemas
from test_cassette_specs import errors
from test_instrument import Reply, Server, _lib_of, both, ck_client, drain, rows, run, sdk_client

import computekit as ck

pytest.importorskip("openai")

KEY_OF = f"background:openai:{RID}"


def reply(spec: dict[str, Any], body: dict[str, Any]) -> Reply:
    assert errors(spec, "Response", body) == [], body["status"]
    return Reply(body=body, headers={"x-request-id": "req_" + body["status"]})


def ck_background_cost(spec: dict[str, Any], *answers: dict[str, Any], cancel: bool = False) -> Decimal | None:
    """What computekit's own ``complete(..., background=True)`` records for the same answers."""
    client = make_client(CkServer([httpx.Response(200, json=a) for a in answers]), ledger="sqlite:///:memory:")
    h = client.complete("openai:o3", "x", background=True)
    h = client.responses.cancel(h) if cancel else client.responses.wait(h, poll_interval=0)
    [row] = client.ledger.rows()
    assert row.once_key == KEY_OF
    cost: Decimal | None = row.cost
    return cost


def metered(tmp_path: Any, replies: list[Reply], is_async: bool, vendor: str = "openai",
            **settings: Any) -> tuple[Server, ck.Client, Any]:
    server = Server(_lib_of("openai"), replies)
    ckc = ck_client(tmp_path, **settings)
    return server, ckc, ck.instrument(sdk_client(vendor, server, is_async, max_retries=0), using=ckc)


@both
async def test_recorded_once_when_a_retrieve_finds_it_ended(tmp_path: Any, is_async: bool,
                                                           openai_spec: dict[str, Any]) -> None:
    answers = [response("queued"), response("in_progress"), response("completed", message("42."))]
    server, ckc, client = metered(tmp_path, [*(reply(openai_spec, a) for a in answers),
                                             reply(openai_spec, answers[-1])], is_async)
    with ck.tags(job="nightly"):
        h = await run(client.responses.create(model="o3", input="Think hard.", background=True))
    assert (h.id, h.status) == (RID, "queued")  # the application's answer, untouched
    assert rows(ckc) == []  # not billed by itself: no row, not an unpriced one
    running = await run(client.responses.retrieve(h.id))
    assert running.status == "in_progress"
    assert rows(ckc) == []
    done = await run(client.responses.retrieve(h.id))  # outside the tags block: the create's tags still count
    assert done.output_text == "42."
    [row] = rows(ckc)
    assert (row.verb, row.provider, row.model, row.outcome) == ("complete", "openai", "o3", "success")
    assert (row.input_tokens, row.output_tokens, row.reasoning_tokens) == (40, 25, 10)
    assert (row.once_key, row.request_id, row.tags) == (KEY_OF, RID, {"job": "nightly"})
    assert row.cost == price()
    assert row.cost == ck_background_cost(openai_spec, *answers)
    await run(client.responses.retrieve(h.id))  # seen ended again: nothing more
    assert len(rows(ckc)) == 1
    assert [r.method for r in server.requests] == ["POST", "GET", "GET", "GET"]


@both
async def test_a_budget_holds_the_worst_case_from_the_create_to_the_end(tmp_path: Any, is_async: bool,
                                                                       openai_spec: dict[str, Any]) -> None:
    answers = [response("queued"), response("completed", message("done"))]
    _server, ckc, client = metered(tmp_path, [reply(openai_spec, a) for a in answers], is_async,
                                   budget={"limit_usd": "5"})
    h = await run(client.responses.create(model="o3", input="x", background=True, max_output_tokens=1000))
    held = ckc.budget_status()["default"]
    assert held.reserved > 0
    assert held.spent == 0
    await run(client.responses.retrieve(h.id))
    ended = ckc.budget_status()["default"]
    assert (ended.reserved, ended.spent) == (0, price())
    assert rows(ckc)[0].reserved == held.reserved


@both
async def test_a_create_the_budget_refuses_sends_nothing(tmp_path: Any, is_async: bool,
                                                        openai_spec: dict[str, Any]) -> None:
    server, ckc, client = metered(tmp_path, [reply(openai_spec, response("queued"))], is_async,
                                  budget={"limit_usd": "0.000001"})
    with pytest.raises(ck.BudgetExceededError):
        await run(client.responses.create(model="o3", input="x", background=True, max_output_tokens=1000))
    assert server.hits == 0
    assert rows(ckc) == []


@both
async def test_a_cancel_records_what_it_was_billed(tmp_path: Any, is_async: bool,
                                                   openai_spec: dict[str, Any]) -> None:
    usage = {"input_tokens": 40, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
             "output_tokens": 3, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 43}
    answers = [response("queued"), response("cancelled", usage=usage)]
    _server, ckc, client = metered(tmp_path, [reply(openai_spec, a) for a in answers], is_async)
    h = await run(client.responses.create(model="o3", input="x", background=True))
    await run(client.responses.cancel(h.id))
    [row] = rows(ckc)
    assert (row.outcome, row.once_key, row.output_tokens) == ("canceled", KEY_OF, 3)
    assert row.cost == price(usage)
    assert row.cost == ck_background_cost(openai_spec, *answers, cancel=True)


@both
async def test_a_failed_one_is_an_error_row_and_a_failed_look_none(tmp_path: Any, is_async: bool,
                                                                   openai_spec: dict[str, Any]) -> None:
    failed = response("failed", error={"code": "server_error", "message": "boom"})
    replies = [reply(openai_spec, response("queued")),
               Reply(500, {"error": {"message": "try again", "type": "server_error"}}),
               reply(openai_spec, failed)]
    _server, ckc, client = metered(tmp_path, replies, is_async)
    h = await run(client.responses.create(model="o3", input="x", background=True))
    with pytest.raises(Exception, match="try again"):  # a look that failed: not billed, not a row
        await run(client.responses.retrieve(h.id))
    assert rows(ckc) == []
    await run(client.responses.retrieve(h.id))
    [row] = rows(ckc)
    assert (row.outcome, row.error_type, row.once_key) == ("error", "BackgroundFailedError", KEY_OF)
    assert row.cost == price()


@both
async def test_a_response_started_elsewhere_is_recorded_by_the_look_that_finds_it_ended(
        tmp_path: Any, is_async: bool, openai_spec: dict[str, Any]) -> None:
    _server, ckc, client = metered(tmp_path, [reply(openai_spec, response("completed", message("ok")))], is_async)
    with ck.tags(feature="reports"):
        await run(client.responses.retrieve(RID))
    [row] = rows(ckc)
    assert (row.model, row.once_key, row.tags, row.cost) == ("o3-2025-04-16", KEY_OF, {"feature": "reports"},
                                                             price())


def test_mixed_with_computekits_own_client_it_is_recorded_once(tmp_path: Any, openai_spec: dict[str, Any]) -> None:
    """The same response followed by computekit's own ``wait()`` and by an instrumented retrieve: one row."""
    done = response("completed", message("ok"))
    own = make_client(CkServer([httpx.Response(200, json=a) for a in (response("queued"), done)]),
                      ledger=f"sqlite:///{tmp_path / 'ck.db'}")
    own.responses.wait(own.complete("openai:o3", "x", background=True), poll_interval=0)
    server = Server(_lib_of("openai"), [reply(openai_spec, done)])
    client = ck.instrument(sdk_client("openai", server, False), using=own)
    client.responses.retrieve(RID)
    assert [r.once_key for r in rows(own)] == [KEY_OF]


@both
async def test_on_azure(tmp_path: Any, is_async: bool, openai_spec: dict[str, Any]) -> None:
    answers = [response("queued"), response("completed", message("ok"))]
    server, ckc, client = metered(tmp_path, [reply(openai_spec, a) for a in answers], is_async, vendor="azure",
                                  providers={"azure": {"deployments": {"o3": "prod-o3"}}})
    h = await run(client.responses.create(model="prod-o3", input="x", background=True))
    assert rows(ckc) == []
    await run(client.responses.retrieve(h.id))
    assert [r.url.path for r in server.requests] == ["/openai/responses", f"/openai/responses/{RID}"]
    [row] = rows(ckc)
    assert (row.provider, row.model, row.once_key) == ("azure", "o3", f"background:azure:{RID}")
    assert row.cost == price()


# ------------------------------------------------------------------------------------------------ streams


def _sse(*events: dict[str, Any]) -> list[bytes]:
    return [f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events]


def _events(final: dict[str, Any]) -> list[bytes]:
    """A background stream as OpenAI sends it: created (queued), in progress, the text, completed."""
    queued = {**final, "status": "queued", "output": [], "usage": None}
    return _sse({"type": "response.created", "sequence_number": 0, "response": queued},
                {"type": "response.in_progress", "sequence_number": 1, "response": {**queued, "status": "in_progress"}},
                {"type": "response.output_text.delta", "sequence_number": 2, "item_id": "msg_1", "output_index": 0,
                 "content_index": 0, "delta": "ok", "logprobs": []},
                {"type": "response.completed", "sequence_number": 3, "response": final})


@both
async def test_a_background_stream_read_to_its_end_and_resumed_is_recorded_once(
        tmp_path: Any, is_async: bool, openai_spec: dict[str, Any]) -> None:
    final = response("completed", message("ok"))
    assert errors(openai_spec, "Response", final) == []
    _server, ckc, client = metered(tmp_path, [Reply(pieces=_events(final)), Reply(pieces=_events(final))], is_async)
    await drain(await run(client.responses.create(model="o3", input="x", background=True, stream=True)))
    [row] = rows(ckc)
    assert (row.once_key, row.cost, row.outcome) == (KEY_OF, price(), "success")
    # The same events again, resumed (``retrieve(stream=True)``): recorded already.
    await drain(await run(client.responses.retrieve(RID, stream=True, starting_after=0)))
    assert len(rows(ckc)) == 1


@both
async def test_a_background_stream_left_unread_goes_on_and_a_look_records_it(
        tmp_path: Any, is_async: bool, openai_spec: dict[str, Any]) -> None:
    """Closing a background stream does not stop the response: it is not a canceled row; its reservation is
    held until a resumed stream or a retrieve sees it end."""
    final = response("completed", message("ok"))
    replies = [Reply(pieces=_events(final)), Reply(pieces=_events(final)[:2]), Reply(body=final)]
    _server, ckc, client = metered(tmp_path, replies, is_async, budget={"limit_usd": "5"})
    stream = await run(client.responses.create(model="o3", input="x", background=True, stream=True,
                                               max_output_tokens=1000))
    first = await (stream.__anext__() if is_async else run(next(iter(stream))))
    assert first.type == "response.created"
    await run(stream.close())
    assert rows(ckc) == []
    assert ckc.budget_status()["default"].reserved > 0
    resumed = await run(client.responses.retrieve(RID, stream=True, starting_after=1))  # cut again
    await run(resumed.close())
    assert rows(ckc) == []
    await run(client.responses.retrieve(RID))
    [row] = rows(ckc)
    assert (row.once_key, row.cost) == (KEY_OF, price())
    assert ckc.budget_status()["default"].reserved == 0


# ------------------------------------------------------------------------------------------------ recordings


def _reply_of(e: Exchange) -> Reply:
    headers = {k: v for k, v in e.headers.items() if k not in ("content-encoding", "content-length",
                                                                "transfer-encoding")}
    step = max(1, len(e.content) // 3)
    return Reply(e.status, pieces=[e.content[i:i + step] for i in range(0, len(e.content), step)], headers=headers)


def _own_cost(exchanges: list[Exchange]) -> list[Decimal | None]:
    """What computekit's own client records for the recorded background responses (create, then wait)."""
    client = make_client(CkServer([httpx.Response(e.status, content=e.content, headers={
        "content-type": "application/json"}) for e in exchanges]), ledger="sqlite:///:memory:")
    for e in exchanges:
        if e.method == "POST":
            client.responses.wait(client.complete(f"openai:{e.request_body['model']}", "x", background=True),
                                  poll_interval=0)
    return [r.cost for r in client.ledger.rows()]


async def _replay(client: Any, exchanges: list[Exchange]) -> None:
    """The application's calls, as recorded: each create, then each retrieve."""
    for e in exchanges:
        if e.method == "POST":
            body = dict(e.request_body)
            stream = bool(body.pop("stream", False))
            made = await run(client.responses.create(**body, stream=stream) if stream else
                             client.responses.create(**body))
            if stream:
                await drain(made)
        else:
            query = dict(httpx.URL(e.uri).params)
            rid = e.path.rsplit("/", 1)[-1]
            if query.get("stream") == "true":
                await drain(await run(client.responses.retrieve(rid, stream=True,
                                                                starting_after=int(query["starting_after"]))))
            else:
                await run(client.responses.retrieve(rid))


@both
@pytest.mark.conformance
@pytest.mark.parametrize("name", ["background_mode_vcr", "background_mode_with_tool_vcr",
                                  "background_mode_streaming_without_starting_after_vcr",
                                  "background_mode_streaming_starting_after_vcr"])
async def test_the_recordings(tmp_path: Any, is_async: bool, name: str) -> None:
    """Each recorded response is recorded once, when its end is seen, at the cost computekit's own client gives
    it (the streamed one, which computekit's own client does not send, at the cost of its final response
    object); one never seen ending is not recorded."""
    require_conformance_dir()
    exchanges = load(f"openai-responses/{name}.yaml")
    _server, ckc, client = metered(tmp_path, [_reply_of(e) for e in exchanges], is_async)
    await _replay(client, exchanges)
    got = rows(ckc)
    assert all(r.once_key and r.once_key.startswith("background:openai:resp_") for r in got)
    if name.startswith("background_mode_streaming"):
        ended = [e for e in exchanges if b"response.completed" in e.content]
        assert len(got) == (1 if ended else 0)
        if ended:
            text = ended[0].content.decode()
            final = json.loads(text[text.index("data: ", text.index("event: response.completed")) + 6:].split(
                "\n", 1)[0])["response"]
            own = make_client(CkServer([httpx.Response(200, json={**final, "background": False})]),
                              ledger="none")
            expected = own.complete(f"openai:{exchanges[0].request_body['model']}", "x", api="responses").cost
            assert got[0].cost == expected.total
            assert got[0].cost
        return
    assert [r.cost for r in got] == _own_cost(exchanges)
    assert all(r.cost for r in got)


@both
async def test_a_background_stream_that_fails_is_recorded_once_from_its_failed_response(
        tmp_path: Any, is_async: bool, openai_spec: dict[str, Any]) -> None:
    """``response.failed`` carries the response object (its usage): that is its one row, keyed by its id."""
    failed = response("failed", error={"code": "server_error", "message": "boom"})
    assert errors(openai_spec, "Response", failed) == []
    events = _events(failed)[:3] + _sse({"type": "response.failed", "sequence_number": 3, "response": failed})
    _server, ckc, client = metered(tmp_path, [Reply(pieces=events), reply(openai_spec, failed)], is_async,
                                   budget={"limit_usd": "5"})
    await drain(await run(client.responses.create(model="o3", input="x", background=True, stream=True,
                                                  max_output_tokens=1000)))
    [row] = rows(ckc)
    assert (row.outcome, row.error_type, row.once_key, row.cost) == ("error", "BackgroundFailedError", KEY_OF,
                                                                     price())
    assert ckc.budget_status()["default"].reserved == 0
    await run(client.responses.retrieve(RID))
    assert len(rows(ckc)) == 1


@both
async def test_a_background_stream_cut_by_an_error_event_is_recorded_once_by_the_look(
        tmp_path: Any, is_async: bool, openai_spec: dict[str, Any]) -> None:
    """An ``error`` event ends the stream, not the response (the provider keeps running and billing it): no
    row from the stream, the reservation held, and the retrieve that finds it ended writes its one row."""
    final = response("completed", message("ok"))
    events = _events(final)[:2] + _sse({"type": "error", "sequence_number": 2, "code": "server_error",
                                        "message": "the stream was interrupted", "param": None})
    _server, ckc, client = metered(tmp_path, [Reply(pieces=events), reply(openai_spec, final)], is_async,
                                   budget={"limit_usd": "5"})
    await drain(await run(client.responses.create(model="o3", input="x", background=True, stream=True,
                                                  max_output_tokens=1000)))  # the SDK yields the error event
    assert rows(ckc) == []
    assert ckc.budget_status()["default"].reserved > 0
    await run(client.responses.retrieve(RID))
    [row] = rows(ckc)
    assert (row.once_key, row.cost, row.outcome) == (KEY_OF, price(), "success")
    assert ckc.budget_status()["default"].reserved == 0


@both
async def test_a_retrieve_of_a_response_answered_in_the_foreground_writes_nothing(
        tmp_path: Any, is_async: bool, openai_spec: dict[str, Any]) -> None:
    """Its create was its row: a later ``retrieve`` of the stored response bills nothing."""
    foreground = {**response("completed", message("ok")), "background": False}
    _server, ckc, client = metered(tmp_path, [reply(openai_spec, foreground), reply(openai_spec, foreground)],
                                   is_async)
    await run(client.responses.create(model="o3", input="x"))
    [row] = rows(ckc)
    assert (row.once_key, row.cost) == (None, price())
    await run(client.responses.retrieve(RID))
    assert len(rows(ckc)) == 1


@both
async def test_a_retrieve_in_another_process_settles_the_creates_reservation(
        tmp_path: Any, is_async: bool, openai_spec: dict[str, Any]) -> None:
    """The reservation is held in the ledger under the response's key: a second client on the same ledger (as
    another process would be) that sees the response end settles it with the row."""
    db = f"sqlite:///{tmp_path / 'shared.db'}"
    first = Server(_lib_of("openai"), [reply(openai_spec, response("queued"))])
    creator = ck.Client(config=None, ledger=db, budget={"limit_usd": "5"})
    client = ck.instrument(sdk_client("openai", first, is_async), using=creator)
    await run(client.responses.create(model="o3", input="x", background=True, max_output_tokens=1000))
    held = creator.budget_status()["default"].reserved
    assert held > 0
    creator._core.flush()
    second = Server(_lib_of("openai"), [reply(openai_spec, response("completed", message("ok")))])
    follower = ck.Client(config=None, ledger=db)  # no budget of its own
    other = ck.instrument(sdk_client("openai", second, is_async), using=follower)
    await run(other.responses.retrieve(RID))
    [row] = rows(follower)
    assert (row.once_key, row.cost, row.reserved) == (KEY_OF, price(), held)
    after = creator.budget_status()["default"]
    assert (after.reserved, after.spent) == (0, price())


@both
async def test_an_incomplete_one_is_priced_from_what_it_billed(tmp_path: Any, is_async: bool,
                                                               openai_spec: dict[str, Any]) -> None:
    cut = response("incomplete", message("The fir"), incomplete_details={"reason": "max_output_tokens"})
    answers = [response("queued"), cut]
    _server, ckc, client = metered(tmp_path, [reply(openai_spec, a) for a in answers], is_async)
    h = await run(client.responses.create(model="o3", input="x", background=True, max_output_tokens=25))
    await run(client.responses.retrieve(h.id))
    [row] = rows(ckc)
    assert (row.outcome, row.once_key, row.output_tokens) == ("success", KEY_OF, 25)
    assert row.cost == price()
    assert row.cost == ck_background_cost(openai_spec, *answers)
