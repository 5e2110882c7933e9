"""Tags: every verb, sync and async, stores its tags with each attempt (failed ones too), reports group on them,
and tags that could not be grouped on are refused before any HTTP."""

from __future__ import annotations

import inspect
from decimal import Decimal
from typing import Any

import httpx
import pytest
from _support import KEY, Server, chat_chunks, chat_json, error, make_client, ok, sse, stream_response, usage_json

import computekit as ck

both = pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
TAGS = {"feature": "search", "customer": "acme"}
EMBEDDING = {"object": "list", "model": "text-embedding-3-small",
             "data": [{"object": "embedding", "index": 0, "embedding": [0.25, -0.5]}],
             "usage": {"prompt_tokens": 3, "total_tokens": 3}}
RERANK = {"id": "rr-1", "results": [{"index": 0, "relevance_score": 0.9}],
          "meta": {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}}}
PREDICTION = {"id": "p1", "model": "acme/m", "version": "v", "input": {}, "logs": "", "output": "done",
              "error": None, "status": "succeeded", "created_at": "2026-11-20T10:00:00.000Z",
              "urls": {"get": "https://api.replicate.com/v1/predictions/p1",
                       "cancel": "https://api.replicate.com/v1/predictions/p1/cancel"},
              "metrics": {"predict_time": 1.5}}
PROVIDERS = {"openai": {"api_key": KEY}, "cohere": {"api_key": KEY}, "replicate": {"api_key": "r8_" + "x" * 30}}
PRICES = {"cohere:rerank-v3.5": {"search_units": "0.002"}}  # no bundled table prices Cohere's search units


async def _await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


async def _call(client: Any, is_async: bool, verb: str, tags: Any) -> None:
    if verb == "stream":
        if is_async:
            async with client.stream("openai:gpt-4o-mini", "hi", tags=tags) as s:
                async for _ in s:
                    pass
        else:
            with client.stream("openai:gpt-4o-mini", "hi", tags=tags) as s:
                for _ in s:
                    pass
        return
    call = {
        "complete": lambda: client.complete("openai:gpt-4o-mini", "hi", tags=tags),
        "embed": lambda: client.embed("openai:text-embedding-3-small", "hi", tags=tags),
        "rerank": lambda: client.rerank("cohere:rerank-v3.5", "q", ["a"], tags=tags),
        "predict": lambda: client.predict("replicate:acme/m", {"prompt": "x"}, hardware="gpu-a40-large", tags=tags),
    }[verb]
    await _await(call())


def _reply(verb: str) -> httpx.Response:
    if verb == "stream":
        return stream_response(sse(*chat_chunks(["a", "b"], usage=usage_json(4, 2))))
    if verb == "predict":
        return httpx.Response(201, json=PREDICTION)
    return ok({"complete": chat_json(), "embed": EMBEDDING, "rerank": RERANK}[verb])


VERBS = ["complete", "stream", "embed", "rerank", "predict"]


@both
@pytest.mark.parametrize("verb", VERBS)
async def test_every_verb_records_its_tags(verb: str, is_async: bool) -> None:
    server = Server([_reply(verb)])
    client = make_client(server, is_async=is_async, providers=PROVIDERS, prices=PRICES)
    await _call(client, is_async, verb, TAGS)
    [row] = client.ledger.rows()
    assert (row.verb, row.outcome) == (verb, "success")
    assert row.tags == TAGS
    rep = client.ledger.report(by="tag:customer")
    assert [(r.key, r.calls) for r in rep.rows] == [("acme", 1)]


@both
async def test_failed_attempts_keep_the_tags_and_group_with_the_success(is_async: bool) -> None:
    server = Server([error(503), ok(chat_json(usage=usage_json(10, 4)))])
    client = make_client(server, is_async=is_async)
    r = await _await(client.complete("openai:gpt-4o-mini", "hi", tags={"feature": "search"}))
    await _await(client.complete("openai:gpt-4o-mini", "hi"))  # untagged
    rows = client.ledger.rows()
    assert [(row.outcome, row.tags) for row in rows] == [
        ("error", {"feature": "search"}), ("success", {"feature": "search"}), ("success", {})]
    rep = client.ledger.report(by="tag:feature")
    by_key = {g.key: g for g in rep.rows}
    assert set(by_key) == {"search", "(none)"}
    assert (by_key["search"].calls, by_key["search"].errors) == (2, 1)
    assert by_key["search"].cost == sum((row.cost for row in rows[:2] if row.cost is not None), Decimal(0))
    assert r.cost.total is not None
    assert rep.total == r.cost.total + rows[2].cost  # type: ignore[operator]


@both
@pytest.mark.parametrize("verb", VERBS)
@pytest.mark.parametrize(
    ("tags", "match"),
    [
        (["feature"], "tags must be a dict"),
        ({"feature": 3}, "tag 'feature' must have a string value"),
        ({"": "x"}, "tag names must be non-empty strings"),
        ({1: "x"}, "tag names must be non-empty strings"),
    ],
)
async def test_bad_tags_are_refused_before_any_http(verb: str, is_async: bool, tags: Any, match: str) -> None:
    server = Server([_reply(verb)])
    client = make_client(server, is_async=is_async, providers=PROVIDERS, prices=PRICES)
    with pytest.raises(ck.InvalidRequestError, match=match):
        await _call(client, is_async, verb, tags)
    assert server.hits == 0
    assert client.ledger.rows() == []


# ----------------------------------------------------------------------------------- ck.tags(): blocks of code


@both
@pytest.mark.parametrize("verb", VERBS)
async def test_a_tags_block_tags_every_verb_and_a_calls_own_tags_win(verb: str, is_async: bool) -> None:
    server = Server([_reply(verb)])
    client = make_client(server, is_async=is_async, providers=PROVIDERS, prices=PRICES)
    with ck.tags(feature="search", customer="acme"):
        await _call(client, is_async, verb, {"customer": "globex", "step": "1"})
    [row] = client.ledger.rows()
    assert row.tags == {"feature": "search", "customer": "globex", "step": "1"}


@both
async def test_tags_blocks_nest_and_end(is_async: bool) -> None:
    server = Server([_reply("complete"), _reply("complete"), _reply("complete")])
    client = make_client(server, is_async=is_async)
    with ck.tags(feature="search", customer="acme"):
        with ck.tags(customer="globex"):
            await _await(client.complete("openai:gpt-4o-mini", "hi"))
        await _await(client.complete("openai:gpt-4o-mini", "hi"))
    await _await(client.complete("openai:gpt-4o-mini", "hi"))
    assert [row.tags for row in client.ledger.rows()] == [
        {"feature": "search", "customer": "globex"}, {"feature": "search", "customer": "acme"}, {}]


@both
async def test_tags_decorate_functions_and_coroutines(is_async: bool) -> None:
    client = make_client(Server([_reply("complete"), _reply("complete")]), is_async=is_async)

    @ck.tags(feature="sync")
    def run() -> Any:
        return client.complete("openai:gpt-4o-mini", "hi")

    @ck.tags(feature="async")
    async def arun() -> None:
        await client.complete("openai:gpt-4o-mini", "hi")

    await (arun() if is_async else _await(run()))
    await _await(client.complete("openai:gpt-4o-mini", "hi"))  # outside the decorated function: untagged
    assert [row.tags for row in client.ledger.rows()] == [{"feature": "async" if is_async else "sync"}, {}]
    assert (run.__name__, arun.__name__) == ("run", "arun")


async def test_tags_are_per_task_and_per_thread() -> None:
    import asyncio
    import threading

    seen: dict[str, Any] = {}

    async def task(name: str) -> None:
        async with ck.tags(customer=name):
            await asyncio.sleep(0)  # the other task runs inside its own block meanwhile
            seen[name] = ck._tags.active_tags()

    await asyncio.gather(task("a"), task("b"))
    barrier = threading.Barrier(2)

    def thread(name: str) -> None:
        with ck.tags(customer=name):
            barrier.wait()
            seen["t" + name] = ck._tags.active_tags()

    threads = [threading.Thread(target=thread, args=(n,)) for n in ("x", "y")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == {"a": {"customer": "a"}, "b": {"customer": "b"}, "tx": {"customer": "x"}, "ty": {"customer": "y"}}
    assert ck._tags.active_tags() is None


@pytest.mark.parametrize(("args", "match"), [({}, "at least one tag"), ({"feature": 3}, "must have a string value")])
def test_bad_tags_blocks_are_refused(args: dict[str, Any], match: str) -> None:
    with pytest.raises(ck.InvalidRequestError, match=match):
        ck.tags(**args)


def test_a_generator_cannot_be_decorated() -> None:
    def gen() -> Any:
        yield 1

    with pytest.raises(ck.InvalidRequestError, match="generator"):
        ck.tags(feature="x")(gen)
