"""The routing part of the fault catalogue (cases 3, 6, 8's fallback part, 12, 13, 20, 21, 23, 25, 26; see
``tests/faults/README.md``), driven through the public API against the loopback fault server.

Two servers stand in for two providers: ``openai`` points at server A, and ``backup`` (an ``openai-compatible``
provider) at server B. Every test runs sync and async on computekit's default transports (urllib3 / aiohttp).
The retry loop's sleep records its waits and never sleeps; the router's clock is a fake one the test moves by
hand. Only cases 12 and 13 use real time, because a deadline against a slow server is the point there (each is
bounded to about a second or two).

Case 26 covers both kinds of polling: predict() (a Replicate prediction) and finetune() (an OpenAI job's status
during ``wait()``); a 5xx on a poll is retried (GETs are idempotent), with the attempts counted.
"""

from __future__ import annotations

import asyncio
import json
import time
import warnings
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from fault_server import (
    SSE,
    Drip,
    FaultServer,
    Hang,
    Reply,
    Request,
    Reset,
    Waits,
    chat,
    chat_events,
    close,
    error,
    policy,
    prediction,
    read_stream,
    run,
    sse_bytes,
)

import computekit as ck
from computekit._config import RoutingConfig
from computekit.routing import Router

KEY = "sk-fault-0123456789abcdef"
A_MODEL = "openai:gpt-4o-mini"
B_MODEL = "backup:gpt-4o-mini"
PLAN = [A_MODEL, B_MODEL]

both = pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
# The backup provider and made-up models have no price; case 25 records the warning itself.
pytestmark = pytest.mark.filterwarnings("ignore::computekit.UnknownPriceWarning")


# ============================================================================================= helpers


class Clock:
    """A fake monotonic clock for the router: it moves only when the test moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class ByModel:
    """A behaviour chosen by the request body's ``model`` (``default`` for any other model); mutable mid-test."""

    routes: dict[str, Any] = field(default_factory=dict)
    default: Any = None

    def __call__(self, srv: FaultServer, req: Request, sock: Any) -> bool:
        model = req.json().get("model")
        behaviour = self.routes.get(model, self.default)
        if behaviour is None:  # answer as the model asked for, so the result is priced as that model
            behaviour = chat("Hello", model=model)
        return bool(behaviour(srv, req, sock))


@dataclass
class Delay:
    """Read the request, wait ``seconds`` (bounded by the server's stop), then behave as ``then``."""

    seconds: float
    then: Any

    def __call__(self, srv: FaultServer, req: Request, sock: Any) -> bool:
        if srv.stop.wait(self.seconds):
            return False
        return bool(self.then(srv, req, sock))


@pytest.fixture
async def clients(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """``clients(is_async, a_url, waits, b_url=..., clock=..., routing=..., ...)``: a client whose ``openai``
    provider is server A and ``backup`` provider server B, its router on ``clock`` (real time when ``None``), its
    ledger in ``tmp_path``; every client is closed at the end."""
    made: list[Any] = []

    def make(is_async: bool, a_url: str, waits: Waits, *, b_url: str | None = None, clock: Clock | None = None,
             routing: dict[str, Any] | None = None, retry: dict[str, Any] | None = None,
             provider: dict[str, Any] | None = None, backup: dict[str, Any] | None = None,
             **settings: Any) -> Any:
        providers: dict[str, Any] = {"openai": {"base_url": a_url, "api_key": KEY, **(provider or {})}}
        if b_url is not None:
            providers["backup"] = {"adapter": "openai-compatible", "base_url": b_url, "api_key": KEY,
                                   **(backup or {})}
        router = Router(RoutingConfig(**(routing or {})), **({"clock": clock} if clock else {}))
        settings.setdefault("ledger", f"sqlite:///{tmp_path / 'ledger.db'}")
        cls = ck.AsyncClient if is_async else ck.Client
        c = cls(config=None, retry_policy=policy(waits, **(retry or {})), router=router, providers=providers,
                **settings)
        made.append(c)
        return c

    yield make
    for c in made:
        await close(c)


def target(client: Any, model_id: str) -> Any:
    """The resolved target of ``model_id`` (the router keys its state by provider and model)."""
    return client._core.targets(model_id)[0]


def tries(r: Any) -> list[tuple[str, str, str, int | None]]:
    """(provider, model, outcome, status) of every attempt of a result or an AllTargetsFailedError."""
    return [(a.provider, a.model, a.outcome, a.status) for a in r.attempts]


def ledger(client: Any) -> list[tuple[str, str, str, int | None, str | None]]:
    return [(row.provider, row.model, row.outcome, row.status, row.error_type) for row in client.ledger.rows()]


def idempotency_keys(srv: FaultServer) -> list[str | None]:
    return [r.headers.get("idempotency-key") for r in srv.requests]


A_ERR = ("openai", "gpt-4o-mini", "error")
B_OK = ("backup", "gpt-4o-mini", "success", None)


# ============================================================================================= 3: Retry-After > cap


@both
async def test_case_03_retry_after_above_the_cap_cools_a_down_and_falls_back_at_once(
    faults: Any, clients: Any, waits: Waits, is_async: bool
) -> None:
    a = faults([error(429, "come back in 10 min", type_="rate_limit_error", headers={"retry-after": "600"}),
                chat("from A")])
    b = faults(chat("from B"))
    clock = Clock()
    client = clients(is_async, a.url, waits, b_url=b.url, clock=clock, retry={"max_retries": 3})
    assert client.settings.retry.retry_after_cap == 60

    r = await run(client.complete(PLAN, "hi"))
    assert r.text == "from B"
    assert tries(r) == [(*A_ERR, 429), B_OK]
    assert waits.waits == []  # 600 s asked, 60 s cap: no sleep, and no retry on A
    assert (a.hits, b.hits) == (1, 1)
    assert client._core.router.cooling(target(client, A_MODEL))
    assert not client._core.router.cooling(target(client, B_MODEL))

    clock.now += 599  # still inside what the server asked for: A gets no request
    r = await run(client.complete(PLAN, "hi"))
    assert tries(r) == [B_OK]
    assert (a.hits, b.hits) == (1, 2)

    clock.now += 2  # past the 600 s: A is tried again, and answers
    r = await run(client.complete(PLAN, "hi"))
    assert r.text == "from A"
    assert tries(r) == [("openai", "gpt-4o-mini", "success", None)]
    assert (a.hits, b.hits) == (2, 2)
    assert not client._core.router.cooling(target(client, A_MODEL))
    assert waits.waits == []
    assert [row[2:4] for row in ledger(client)] == [("error", 429), ("success", None), ("success", None),
                                                     ("success", None)]


# ============================================================================================= 6: 409 and idempotency


@both
async def test_case_06_409_is_retried_with_an_idempotency_key(faults: Any, clients: Any, waits: Waits,
                                                              is_async: bool) -> None:
    a = faults([error(409, "a request with this key is in progress", type_="invalid_request_error"),
                chat("Hello")])
    client = clients(is_async, a.url, waits, provider={"idempotency_header": "Idempotency-Key"})
    r = await run(client.complete(A_MODEL, "hi"))
    assert r.text == "Hello"
    assert tries(r) == [(*A_ERR, 409), ("openai", "gpt-4o-mini", "success", None)]
    assert waits.waits == [0.5]
    assert a.hits == 2
    keys = idempotency_keys(a)
    assert keys[0]
    assert keys[0] == keys[1]  # the retry carries the same key


@both
async def test_case_06_409_without_an_idempotency_key_is_not_retried_and_falls_back(
    faults: Any, clients: Any, waits: Waits, is_async: bool
) -> None:
    a = faults(error(409, "conflict", type_="invalid_request_error"))
    b = faults(chat("from B"))
    client = clients(is_async, a.url, waits, b_url=b.url, clock=Clock())
    with pytest.raises(ck.ConflictError) as ei:  # one target: its own error
        await run(client.complete(A_MODEL, "hi"))
    assert type(ei.value) is ck.ConflictError
    assert ei.value.status == 409
    assert (a.hits, b.hits, waits.waits) == (1, 0, [])
    assert idempotency_keys(a) == [None]

    r = await run(client.complete(PLAN, "hi"))  # with a fallback target: no retry on A, then B
    assert r.text == "from B"
    assert tries(r) == [(*A_ERR, 409), B_OK]
    assert (a.hits, b.hits, waits.waits) == (2, 1, [])


# ============================================================================================= 8: 401 / 403 fall back


@both
@pytest.mark.parametrize(("status", "cls"), [(401, ck.AuthenticationError), (403, ck.PermissionDeniedError)])
async def test_case_08_auth_errors_cool_down_and_fall_back(faults: Any, clients: Any, waits: Waits, is_async: bool,
                                                           status: int, cls: type[ck.APIStatusError]) -> None:
    a = faults(error(status, f"refused with {status}", type_="invalid_request_error"))
    b = faults(chat("from B"))
    clock = Clock()
    client = clients(is_async, a.url, waits, b_url=b.url, clock=clock, routing={"cooldown_s": 30})
    r = await run(client.complete(PLAN, "hi"))
    assert r.text == "from B"
    assert tries(r) == [(*A_ERR, status), B_OK]
    assert ledger(client)[0] == (*A_ERR, status, cls.__name__)
    assert waits.waits == []  # not retried
    assert (a.hits, b.hits) == (1, 1)
    assert client._core.router.cooling(target(client, A_MODEL))

    r = await run(client.complete(PLAN, "hi"))  # A is skipped while cooled down
    assert tries(r) == [B_OK]
    assert (a.hits, b.hits) == (1, 2)

    clock.now += 31  # the cooldown is over: A is tried (and refuses) again
    r = await run(client.complete(PLAN, "hi"))
    assert tries(r) == [(*A_ERR, status), B_OK]
    assert (a.hits, b.hits) == (2, 3)
    assert waits.waits == []


# ============================================================================================= 12: slow drip


def _chat_bytes() -> bytes:
    return json.dumps(chat("Hello").body).encode()


@both
async def test_case_12_slow_drip_hits_the_total_deadline(faults: Any, clients: Any, waits: Waits,
                                                         is_async: bool) -> None:
    body = _chat_bytes()
    a = faults(Drip(body, nbytes=1, every=0.05))  # ~len(body) * 0.05 s = well over 10 s (capped at 5 s)
    b = faults(chat("from B"))
    assert len(body) * 0.05 > 10
    client = clients(is_async, a.url, waits, b_url=b.url, routing={"deadline_s": 1.0})  # real clock
    t0 = time.monotonic()
    with pytest.raises(ck.APITimeoutError) as ei:
        await run(client.complete(PLAN, "hi"))
    elapsed = time.monotonic() - t0
    assert 0.9 < elapsed < 2.5, elapsed
    assert type(ei.value) is ck.APITimeoutError
    assert ei.value.status is None
    assert ei.value.provider == "openai"
    assert (a.hits, b.hits) == (1, 0)  # the deadline has passed: no retry, no fallback
    assert waits.waits == []
    assert ledger(client) == [(*A_ERR, None, "APITimeoutError")]


@both
async def test_case_12_slow_drip_stream_hits_the_total_deadline(faults: Any, clients: Any, waits: Waits,
                                                                is_async: bool) -> None:
    body = b"".join(sse_bytes(e) for e in chat_events(["Hel", "lo"] * 20))
    # The server gives up after 2.5 s (so a client that ignores its deadline fails the test in bounded time).
    a = faults(Drip(body, nbytes=1, every=0.05, max_seconds=2.5, headers={"content-type": "text/event-stream"}))
    assert len(body) * 0.05 > 10
    client = clients(is_async, a.url, waits, routing={"deadline_s": 1.0})
    t0 = time.monotonic()
    with pytest.raises(ck.APITimeoutError) as ei:
        await read_stream(client, A_MODEL)
    elapsed = time.monotonic() - t0
    assert 0.9 < elapsed < 2.5, elapsed
    assert ei.value.status is None
    assert a.hits == 1
    assert waits.waits == []
    assert ledger(client) == [(*A_ERR, None, "APITimeoutError")]


# ============================================================================================= 13: connection pool


N_CONCURRENT = 8


async def _concurrently(is_async: bool, n: int, call: Callable[[], Any]) -> list[BaseException | Any]:
    """Start ``n`` calls at once (tasks, or threads for a sync client); results or errors, in order."""
    if is_async:
        return list(await asyncio.gather(*(call() for _ in range(n)), return_exceptions=True))
    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(lambda _: _catch(call), range(n)))


def _until(cond: Callable[[], bool], limit: float = 3.0) -> None:
    """Poll ``cond`` (bounded) from a thread."""
    give_up = time.monotonic() + limit
    while not cond() and time.monotonic() < give_up:
        time.sleep(0.01)


def _sync_pool_scenario(a: FaultServer, holder: Any, victim: Any) -> tuple[list[Any], list[Any], float]:
    """Two held calls on ``holder`` (threads), then three calls on ``victim`` while the pool is full."""
    with ThreadPoolExecutor(2) as pool:
        held_f = [pool.submit(holder.complete, A_MODEL, "hi") for _ in range(2)]
        _until(lambda: a.hits >= 2)
        t0 = time.monotonic()
        with ThreadPoolExecutor(3) as late_pool:
            late = list(late_pool.map(lambda _: _catch(lambda: victim.complete(A_MODEL, "hi")), range(3)))
        elapsed = time.monotonic() - t0
        return [f.result(timeout=5) for f in held_f], late, elapsed


def _catch(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except Exception as e:
        return e


@both
async def test_case_13_many_calls_held_by_the_server_fail_typed_and_bounded_then_recover(
    faults: Any, clients: Any, waits: Waits, is_async: bool
) -> None:
    """Default transports: the pools cannot be exhausted by a handful of calls (urllib3 opens extra connections
    when its 100 are busy, it never blocks; aiohttp allows 1000). What matters is that calls a server holds fail
    typed within the deadline, side by side rather than one after another, and that nothing is left stuck."""
    a = faults([*[Hang() for _ in range(N_CONCURRENT)], chat("Hello")])
    client = clients(is_async, a.url, waits, routing={"deadline_s": 0.5}, ledger="none")
    t0 = time.monotonic()
    out = await _concurrently(is_async, N_CONCURRENT, lambda: client.complete(A_MODEL, "hi"))
    elapsed = time.monotonic() - t0
    assert [type(e) for e in out] == [ck.APITimeoutError] * N_CONCURRENT
    assert elapsed < 2.0, elapsed  # side by side: about one deadline, not N of them (nor the server's 5 s hang)
    assert a.hits == N_CONCURRENT
    assert a.connections == N_CONCURRENT  # one connection each: nobody queued behind a held one
    assert waits.waits == []
    r = await run(client.complete(A_MODEL, "hi"))  # the held connections were dropped, not returned to the pool
    assert r.text == "Hello"
    assert a.hits == N_CONCURRENT + 1
    assert a.connections == N_CONCURRENT + 1


@both
async def test_case_13_an_exhausted_pool_fails_typed_within_the_deadline(faults: Any, clients: Any, waits: Waits,
                                                                         is_async: bool) -> None:
    """A pool that can be exhausted: an ``http_client=`` with two connections, shared by a client whose calls the
    server holds for 1 s and a client with a 0.3 s deadline. The latter's calls wait for a free connection, fail
    with APITimeoutError at the deadline without reaching the server, and succeed once the connections are free."""
    hold = 1.0
    a = faults([Delay(hold, chat("held")), Delay(hold, chat("held")), chat("Hello")])
    limits = httpx.Limits(max_connections=2, max_keepalive_connections=2)
    http = (httpx.AsyncClient if is_async else httpx.Client)(limits=limits)
    try:
        holder = clients(is_async, a.url, waits, http_client=http, ledger="none")
        victim = clients(is_async, a.url, waits, http_client=http, routing={"deadline_s": 0.3}, ledger="none")

        if is_async:
            held_tasks = [asyncio.ensure_future(holder.complete(A_MODEL, "hi")) for _ in range(2)]
            await asyncio.to_thread(_until, lambda: a.hits >= 2)  # both connections are taken
            t0 = time.monotonic()
            late = await _concurrently(True, 3, lambda: victim.complete(A_MODEL, "hi"))
            elapsed = time.monotonic() - t0
            held = list(await asyncio.gather(*held_tasks))
        else:
            held, late, elapsed = _sync_pool_scenario(a, holder, victim)
        assert [type(e) for e in late] == [ck.APITimeoutError] * 3
        assert elapsed < hold * 0.8, elapsed  # at the 0.3 s deadline, not when a connection came free
        assert [r.text for r in held] == ["held", "held"]
        assert a.hits == 2  # the victims never reached the server
        assert a.connections == 2
        r = await run(victim.complete(A_MODEL, "hi"))  # the pool has room again
        assert r.text == "Hello"
        assert a.hits == 3
        assert a.connections == 2  # a pooled connection was reused
        assert waits.waits == []
    finally:
        await run(http.aclose() if is_async else http.close())


# ============================================================================================= 20: flapping target


@both
async def test_case_20_a_flapping_target_is_cooled_skipped_and_recovers(faults: Any, clients: Any, waits: Waits,
                                                                        is_async: bool) -> None:
    a = faults([error(503), error(503), chat("from A")])
    b = faults(chat("from B"))
    clock = Clock()
    client = clients(is_async, a.url, waits, b_url=b.url, clock=clock, retry={"max_retries": 0},
                     routing={"failures_to_cool": 2, "cooldown_s": 30})
    router = client._core.router
    for n in (1, 2):  # two failures within the window
        r = await run(client.complete(PLAN, "hi"))
        assert r.text == "from B"
        assert tries(r) == [(*A_ERR, 503), B_OK]
        assert router.cooling(target(client, A_MODEL)) is (n == 2)
        clock.now += 1
    assert (a.hits, b.hits) == (2, 2)

    r = await run(client.complete(PLAN, "hi"))  # cooled down: skipped without a request
    assert tries(r) == [B_OK]
    assert (a.hits, b.hits) == (2, 3)

    clock.now += 29  # 30 s after the second failure, the cooldown ends
    assert not router.cooling(target(client, A_MODEL))
    r = await run(client.complete(PLAN, "hi"))
    assert r.text == "from A"
    assert tries(r) == [("openai", "gpt-4o-mini", "success", None)]
    assert (a.hits, b.hits) == (3, 3)
    assert waits.waits == []
    assert [row[:4] for row in ledger(client)] == [(*A_ERR, 503), B_OK, (*A_ERR, 503), B_OK, B_OK,
                                                   ("openai", "gpt-4o-mini", "success", None)]


# ============================================================================================= 21: every target fails


@both
async def test_case_21_every_target_fails_as_one_grouped_error(faults: Any, clients: Any, waits: Waits,
                                                               is_async: bool) -> None:
    a = faults(ByModel({"gpt-4o-mini": error(503), "gpt-4o": Reset()}))
    b = faults(error(429, "slow down", type_="rate_limit_error"))
    client = clients(is_async, a.url, waits, b_url=b.url, clock=Clock(), retry={"max_retries": 1})
    plan = [A_MODEL, B_MODEL, "openai:gpt-4o"]
    with pytest.raises(ck.AllTargetsFailedError) as ei:
        await run(client.complete(plan, "hi"))
    err = ei.value
    assert isinstance(err, ExceptionGroup)
    assert [type(e) for e in err.exceptions] == [ck.ServerError, ck.RateLimitError, ck.APIConnectionError]
    assert [(e.provider, e.model, e.status) for e in err.exceptions] == [
        ("openai", "gpt-4o-mini", 503), ("backup", "gpt-4o-mini", 429), ("openai", "gpt-4o", None)]
    assert "openai:gpt-4o-mini, backup:gpt-4o-mini, openai:gpt-4o" in str(err)
    expected = [("openai", "gpt-4o-mini", "error", 503)] * 2 + [("backup", "gpt-4o-mini", "error", 429)] * 2 + [
        ("openai", "gpt-4o", "error", None)] * 2
    assert tries(err) == expected
    assert [a_.error_type for a_ in err.attempts] == ["ServerError"] * 2 + ["RateLimitError"] * 2 + [
        "APIConnectionError"] * 2
    assert [row[:4] for row in ledger(client)] == expected  # one row per try, retries included
    assert [r.json()["model"] for r in a.requests] == ["gpt-4o-mini"] * 2 + ["gpt-4o"] * 2
    assert (a.hits, b.hits) == (4, 2)
    assert waits.waits == [0.5, 0.5, 0.5]  # one backoff per target
    caught: list[str] = []
    try:
        raise err
    except* ck.RateLimitError as group:
        caught += [type(e).__name__ for e in group.exceptions]
    except* ck.ProviderError as group:
        caught += [type(e).__name__ for e in group.exceptions]
    assert sorted(caught) == ["APIConnectionError", "RateLimitError", "ServerError"]


# ============================================================================================= 23: reset, same key


@both
@pytest.mark.parametrize("verb", ["complete", "stream", "embed"])
async def test_case_23_a_post_reset_after_it_was_read_is_retried_with_the_same_key(
    faults: Any, clients: Any, waits: Waits, is_async: bool, verb: str
) -> None:
    if verb == "stream":
        good: Any = SSE(chat_events(["Hel", "lo"]))
    elif verb == "embed":
        good = Reply(200, {"object": "list", "model": "text-embedding-3-small",
                           "data": [{"object": "embedding", "index": 0, "embedding": [0.25, -0.5]}],
                           "usage": {"prompt_tokens": 1, "total_tokens": 1}})
    else:
        good = chat("Hello")
    a = faults([Reset(), good])
    client = clients(is_async, a.url, waits, provider={"idempotency_header": "Idempotency-Key"})
    if verb == "stream":
        _, s = await read_stream(client, A_MODEL)
        r = s.result
        assert r.text == "Hello"
    elif verb == "embed":
        r = await run(client.embed("openai:text-embedding-3-small", ["a"]))
        assert r.vectors == [[0.25, -0.5]]
    else:
        r = await run(client.complete(A_MODEL, "hi"))
        assert r.text == "Hello"
    assert [(a_.outcome, a_.error_type) for a_ in r.attempts] == [("error", "APIConnectionError"),
                                                                  ("success", None)]
    assert a.hits == 2
    assert a.requests[0].method == "POST"
    assert a.requests[0].conn != a.requests[1].conn  # sent again on a new connection
    assert a.requests[0].body == a.requests[1].body
    keys = idempotency_keys(a)
    assert keys[0]
    assert keys[0] == keys[1]
    assert waits.waits == [0.5]


@both
async def test_case_23_each_call_gets_its_own_key(faults: Any, clients: Any, waits: Waits, is_async: bool) -> None:
    a = faults([Reset(), chat("Hello")])
    client = clients(is_async, a.url, waits, provider={"idempotency_header": "Idempotency-Key"})
    await run(client.complete(A_MODEL, "hi"))
    await run(client.complete(A_MODEL, "hi"))
    keys = idempotency_keys(a)
    assert len(keys) == 3
    assert keys[0] == keys[1] != keys[2]


# ============================================================================================= 25: unknown price


def _route(*targets: str) -> dict[str, Any]:
    return {"chat": {"targets": list(targets), "strategy": "cheapest"}}


PRICES = {"openai:thrifty": {"input_mtok": "0.1", "output_mtok": "0.4"}}


@both
async def test_case_25_cheapest_tries_the_priced_target_first_and_the_unknown_last(
    faults: Any, clients: Any, waits: Waits, is_async: bool
) -> None:
    a = faults(ByModel())  # answers as whichever model was asked
    client = clients(is_async, a.url, waits, prices=PRICES, routes=_route("openai:mystery-model", "openai:thrifty"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = await run(client.complete("chat", "hi", max_tokens=50))
    assert r.model == "thrifty"
    assert [req.json()["model"] for req in a.requests] == ["thrifty"]
    unknown = [w for w in caught if issubclass(w.category, ck.UnknownPriceWarning)]
    assert unknown
    assert all("mystery-model" in str(w.message) for w in unknown)
    assert r.cost.total is not None
    assert r.cost.total > 0
    assert waits.waits == []


@both
async def test_case_25_when_the_unknown_priced_target_answers_its_cost_is_none(
    faults: Any, clients: Any, waits: Waits, is_async: bool
) -> None:
    a = faults(ByModel({"thrifty": error(503)}))
    client = clients(is_async, a.url, waits, clock=Clock(), retry={"max_retries": 0}, prices=PRICES,
                     routes=_route("openai:mystery-model", "openai:thrifty"))
    with pytest.warns(ck.UnknownPriceWarning, match="mystery-model"):
        r = await run(client.complete("chat", "hi", max_tokens=50))
    assert r.text == "Hello"
    assert r.model == "mystery-model"
    assert [req.json()["model"] for req in a.requests] == ["thrifty", "mystery-model"]
    assert tries(r) == [("openai", "thrifty", "error", 503), ("openai", "mystery-model", "success", None)]
    assert r.cost.total is None  # unknown, not free
    assert r.attempts[-1].cost.total is None
    assert [(row.model, row.outcome, row.cost) for row in client.ledger.rows()][-1] == ("mystery-model", "success",
                                                                                     None)
    assert waits.waits == []



# ============================================================================================= 26: 5xx on a poll


@both
async def test_case_26_a_5xx_on_a_prediction_poll_is_retried(faults: Any, waits: Waits, is_async: bool,
                                                             tmp_path: Path) -> None:
    a = faults([
        prediction("starting", 201, pid="pf26", version="v26"),
        error(503, "upstream unavailable"),
        error(502, "bad gateway"),
        prediction("succeeded", pid="pf26", version="v26", output=["ok"], metrics={"predict_time": 2.0}),
    ])
    clock = Clock()
    router = Router(RoutingConfig(), clock=clock)
    cls = ck.AsyncClient if is_async else ck.Client
    client = cls(config=None, retry_policy=policy(waits, max_retries=2), router=router,
                 providers={"replicate": {"base_url": a.url, "api_key": "r8_fault0123456789abcdef"}},
                 ledger=f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        p = await run(client.predict("replicate:acme/upscaler", {"x": 1}, hardware="gpu-t4", poll_interval=1.0,
                                     validate=False))
    finally:
        await close(client)
    assert p.status == "succeeded"
    assert p.output == ["ok"]
    assert [(r.method, r.path) for r in a.requests] == [
        ("POST", "/v1/models/acme/upscaler/predictions"),
        ("GET", "/v1/predictions/pf26"), ("GET", "/v1/predictions/pf26"), ("GET", "/v1/predictions/pf26"),
    ]
    assert a.requests[0].headers["prefer"] == "wait=60"
    assert waits.waits[0] == 1.0
    assert len(waits.waits) == 3
    from computekit.pricing import PriceBook

    found = PriceBook().per_second("replicate", "gpu-t4")
    assert found is not None
    assert p.cost.total == Decimal("2.0") * found[0]
    [row] = client.ledger.rows()  # polls are not billed attempts: one row, the run's
    assert (row.verb, row.outcome, row.cost) == ("predict", "success", p.cost.total)


def _ft_job(status: str, **extra: Any) -> Reply:
    """An OpenAI fine-tuning job object."""
    return Reply(200, {"object": "fine_tuning.job", "id": "ftjob-f26", "model": "gpt-4o-mini-2024-07-18",
                       "created_at": 1_764_000_000, "finished_at": None, "fine_tuned_model": None,
                       "status": status, "training_file": "file-f26", "validation_file": None,
                       "hyperparameters": {"n_epochs": 3}, "trained_tokens": None, "error": {}, **extra})


@both
async def test_case_26_a_5xx_on_a_fine_tuning_status_poll_is_retried(faults: Any, waits: Waits, is_async: bool,
                                                                      tmp_path: Path) -> None:
    """The fine-tune half of case 26: a job status GET that answers 503 then 502 during ``wait()`` is retried
    (GETs are idempotent), the wait goes on, and the job's cost is written once when it ends."""
    a = faults([
        _ft_job("running"),  # the re-attach
        error(503, "upstream unavailable"),
        error(502, "bad gateway"),
        _ft_job("succeeded", finished_at=1_764_000_600, trained_tokens=4000,
                fine_tuned_model="ft:gpt-4o-mini-2024-07-18:org::f26"),
    ])
    clock = Clock()
    router = Router(RoutingConfig(), clock=clock)
    cls = ck.AsyncClient if is_async else ck.Client
    client = cls(config=None, retry_policy=policy(waits, max_retries=2), router=router,
                 providers={"openai": {"base_url": a.url, "api_key": KEY}},
                 ledger=f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        if is_async:
            job = await ck.FineTuneJob.async_attach("openai:ftjob-f26", client=client)
            attached = job.status
            done = await job.async_wait(poll_interval=30.0)
        else:
            job = ck.FineTuneJob.attach("openai:ftjob-f26", client=client)
            attached = job.status
            done = job.wait(poll_interval=30.0)
    finally:
        await close(client)
    assert attached == "running"
    assert done.status == "succeeded"
    assert done.fine_tuned_model == "openai:ft:gpt-4o-mini-2024-07-18:org::f26"
    assert [(r.method, r.path) for r in a.requests] == [("GET", "/v1/fine_tuning/jobs/ftjob-f26")] * 4
    assert waits.waits[0] == 30.0  # the poll pause, then the retry loop's two backoff waits
    assert len(waits.waits) == 3
    from computekit.pricing import PriceBook

    rates = PriceBook().training("openai", "gpt-4o-mini-2024-07-18")
    assert rates is not None
    assert rates.per_mtok is not None
    assert done.cost.total == Decimal(4000) * rates.per_mtok / Decimal(1_000_000)
    [row] = client.ledger.rows()  # the retried polls are not billed attempts: one row, the job's
    assert (row.verb, row.outcome, row.cost, row.once_key) == ("finetune", "success", done.cost.total,
                                                               "finetune:openai:ftjob-f26")
