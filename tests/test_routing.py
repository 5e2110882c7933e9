"""Routing: strategies, cooldowns (injected clock), what each error does, the total deadline, idempotency keys,
and routes swapped by config — through the public client, sync and async, with nothing really sleeping."""

from __future__ import annotations

import json
import warnings
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from _support import KEY, Server, chat_json, error, ok

import computekit as ck
from computekit import _costs
from computekit._attempt import Run
from computekit._config import RetryConfig, RoutingConfig
from computekit._retry import RetryPolicy
from computekit.pricing import PriceBook, PriceRef
from computekit.routing import Router, _router

both = pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
pytestmark = pytest.mark.filterwarnings("ignore::computekit.UnknownPriceWarning")  # made-up model names


class Clock:
    """A fake monotonic clock; the fake sleeps advance it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.now += s

    async def asleep(self, s: float) -> None:
        self.sleep(s)


def _model(request: httpx.Request) -> str:
    return str(json.loads(request.content)["model"])


def client_for(server: Any, clock: Clock, is_async: bool, *, retry: dict[str, Any] | None = None,
               routing: dict[str, Any] | None = None, **settings: Any) -> Any:
    transport = httpx.MockTransport(server)
    policy = RetryPolicy(RetryConfig(**(retry or {"max_retries": 0})), sleep=clock.sleep, asleep=clock.asleep)
    router = Router(RoutingConfig(**(routing or {})), clock=clock)
    kwargs: dict[str, Any] = {"config": None, "providers": {"openai": {"api_key": KEY}}, "retry_policy": policy,
                              "router": router, **settings}
    if is_async:
        return ck.AsyncClient(http_client=httpx.AsyncClient(transport=transport), **kwargs)
    return ck.Client(http_client=httpx.Client(transport=transport), **kwargs)


async def call(client: Any, is_async: bool, model: Any, **kw: Any) -> ck.Completion:
    if is_async:
        return await client.complete(model, "hi", **kw)  # type: ignore[no-any-return]
    return client.complete(model, "hi", **kw)  # type: ignore[no-any-return]


# ------------------------------------------------------------------------------------------------ strategies


@both
async def test_cheapest_tries_the_cheapest_first_and_unknown_prices_last(is_async: bool) -> None:
    prices = {"openai:pricey": {"input_mtok": "5", "output_mtok": "20"},
              "openai:thrifty": {"input_mtok": "0.1", "output_mtok": "0.4"}}
    routes = {"chat": {"targets": ["openai:mystery-model", "openai:pricey", "openai:thrifty"],
                       "strategy": "cheapest"}}
    server = Server([lambda r: ok(chat_json("x", model=_model(r)))])
    client = client_for(server, Clock(), is_async, prices=prices, routes=routes)
    book = PriceBook(prices)
    assert (book.rates(PriceRef("openai", "thrifty")).rate("output_mtok", 0)  # type: ignore[union-attr]
            < book.rates(PriceRef("openai", "pricey")).rate("output_mtok", 0))  # type: ignore[union-attr]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = await call(client, is_async, "chat", max_tokens=100)
    assert r.model == "thrifty"
    assert any(issubclass(w.category, ck.UnknownPriceWarning) and "mystery-model" in str(w.message)
               for w in caught)
    order = client._core.router.order(client._core.targets("chat"), "cheapest",
                                      estimate=lambda t: _costs.estimate(client._core.prices, t, _Req(100)))
    assert [t.model for t in order] == ["thrifty", "pricey", "mystery-model"]


class _Req:
    def __init__(self, max_tokens: int) -> None:
        self.messages = [{"role": "user", "content": "hi"}]
        self.max_tokens = max_tokens


@both
async def test_fastest_follows_observed_latency(is_async: bool) -> None:
    clock = Clock()
    routes = {"chat": {"targets": ["openai:slow", "openai:quick"], "strategy": "fastest"}}
    server = Server([lambda r: ok(chat_json("x", model=_model(r)))])
    client = client_for(server, clock, is_async, routes=routes)
    router = client._core.router
    slow, quick = client._core.targets("chat")
    router.succeeded(slow, 2.0)
    router.succeeded(quick, 0.2)
    r = await call(client, is_async, "chat")
    assert r.model == "quick"
    router.succeeded(quick, 9.0)  # it slowed down: the moving average follows
    router.succeeded(quick, 9.0)
    r = await call(client, is_async, "chat")
    assert r.model == "slow"


def test_weighted_draws_the_first_target_by_weight() -> None:
    import random

    router = Router(RoutingConfig(), rng=random.Random(7))
    core = ck.Client(config=None, providers={"openai": {"api_key": KEY}})._core
    targets = core.targets(["openai:a", "openai:b", "openai:c"])
    firsts = [router.order(targets, "weighted", weights=[0, 3, 1])[0].model for _ in range(400)]
    assert "a" not in firsts
    assert 250 < firsts.count("b") < 350  # 3:1 against c
    assert sorted(t.model for t in router.order(targets, "weighted", weights=[0, 3, 1])) == ["a", "b", "c"]


# ------------------------------------------------------------------------------------------------ cooldowns


@both
async def test_a_flapping_target_is_cooled_down_then_recovers(is_async: bool) -> None:
    clock = Clock()
    flaky = {"up": False}

    def server(request: httpx.Request) -> httpx.Response:
        if _model(request) == "primary" and not flaky["up"]:
            return error(503)
        return ok(chat_json("x", model=_model(request)))

    srv = Server([server])
    client = client_for(srv, clock, is_async, routing={"failures_to_cool": 2, "cooldown_s": 30})
    plan = ["openai:primary", "openai:backup"]
    for _ in range(2):  # two failures in the window cool the primary down
        r = await call(client, is_async, plan)
        assert r.model == "backup"
    hits_before = len(srv.seen)
    r = await call(client, is_async, plan)
    assert r.model == "backup"
    assert len(srv.seen) == hits_before + 1, "the cooled-down primary was skipped without a request"
    assert [a.model for a in r.attempts] == ["backup"]
    flaky["up"] = True
    clock.now += 31  # the cooldown ends
    r = await call(client, is_async, plan)
    assert r.model == "primary"


@both
async def test_auth_failure_cools_down_and_falls_back(is_async: bool) -> None:
    clock = Clock()
    srv = Server([lambda r: error(401, type_="invalid_api_key") if _model(r) == "a" else ok(chat_json("x"))])
    client = client_for(srv, clock, is_async, retry={"max_retries": 2})
    r = await call(client, is_async, ["openai:a", "openai:b"])
    assert [(a.model, a.outcome) for a in r.attempts] == [("a", "error"), ("b", "success")]
    assert clock.slept == []  # 401 is not retried
    assert client._core.router.cooling(client._core.targets("openai:a")[0])


@both
async def test_retry_after_above_the_cap_cools_down_and_falls_back_at_once(is_async: bool) -> None:
    clock = Clock()
    srv = Server([lambda r: error(429, **{"retry-after": "600"}) if _model(r) == "a" else ok(chat_json("x"))])
    client = client_for(srv, clock, is_async, retry={"max_retries": 3, "retry_after_cap": 60})
    r = await call(client, is_async, ["openai:a", "openai:b"])
    assert [(a.model, a.status) for a in r.attempts] == [("a", 429), ("b", None)]
    assert clock.slept == []  # no sleep: asked for 600 s, more than the cap
    target_a = client._core.targets("openai:a")[0]
    assert client._core.router.cooling(target_a)
    clock.now += 599
    assert client._core.router.cooling(target_a)
    clock.now += 2
    assert not client._core.router.cooling(target_a)


def test_when_every_target_is_cooled_down_the_least_recently_failed_goes_first() -> None:
    clock = Clock()
    router = Router(RoutingConfig(failures_to_cool=1, cooldown_s=100), clock=clock)
    core = ck.Client(config=None, providers={"openai": {"api_key": KEY}})._core
    a, b = core.targets(["openai:a", "openai:b"])
    router.failed(a, ck.ServerError("x", provider="openai", model="a", status=500), 60)
    clock.now += 5
    router.failed(b, ck.ServerError("x", provider="openai", model="b", status=500), 60)
    assert [t.model for t in router.order([a, b])] == ["a", "b"]
    assert [t.model for t in router.order([b, a])] == ["a", "b"]


# ------------------------------------------------------------------------------------------------ error -> action


@both
async def test_bad_request_does_not_fall_back(is_async: bool) -> None:
    srv = Server([error(400, type_="invalid_request_error")])
    client = client_for(srv, Clock(), is_async)
    with pytest.raises(ck.BadRequestError):
        await call(client, is_async, ["openai:a", "openai:b"])
    assert len(srv.seen) == 1


@both
async def test_context_window_falls_back_only_to_larger_windows(is_async: bool) -> None:
    def server(request: httpx.Request) -> httpx.Response:
        if _model(request) == "gpt-4o-mini":
            return httpx.Response(400, json={"error": {"message": "too long", "code": "context_length_exceeded"}})
        return ok(chat_json("x", model=_model(request)))

    srv = Server([server])
    client = client_for(srv, Clock(), is_async)
    core = client._core
    targets = core.targets(["openai:gpt-4o-mini", "openai:gpt-3.5-turbo", "openai:gpt-4.1"])
    windows = {t.model: _costs.context_window(core.prices, t) for t in targets}
    assert windows["gpt-3.5-turbo"] < windows["gpt-4o-mini"] < windows["gpt-4.1"]
    r = await call(client, is_async, ["openai:gpt-4o-mini", "openai:gpt-3.5-turbo", "openai:gpt-4.1"])
    assert r.model == "gpt-4.1"
    assert [_model_of(s) for s in srv.seen] == ["gpt-4o-mini", "gpt-4.1"], "the smaller window was not tried"


def _model_of(seen: Any) -> str:
    return str(seen.body["model"])


@both
@pytest.mark.parametrize("setting", ["raise", "fallback"])
async def test_content_filter_is_configurable(is_async: bool, setting: str) -> None:
    def server(request: httpx.Request) -> httpx.Response:
        if _model(request) == "a":
            return httpx.Response(400, json={"error": {"message": "filtered", "code": "content_filter"}})
        return ok(chat_json("x", model=_model(request)))

    client = client_for(Server([server]), Clock(), is_async, routing={"on_content_filter": setting})
    if setting == "raise":
        with pytest.raises(ck.ContentFilteredError):
            await call(client, is_async, ["openai:a", "openai:b"])
    else:
        assert (await call(client, is_async, ["openai:a", "openai:b"])).model == "b"


@both
async def test_every_target_failing_is_one_grouped_error_listing_every_attempt(is_async: bool) -> None:
    clock = Clock()
    srv = Server([lambda r: error(503) if _model(r) == "a" else error(429, "slow")])
    client = client_for(srv, clock, is_async, retry={"max_retries": 1, "backoff_initial": 0.1})
    with pytest.raises(ck.AllTargetsFailedError) as ei:
        await call(client, is_async, ["openai:a", "openai:b"])
    assert [type(e) for e in ei.value.exceptions] == [ck.ServerError, ck.RateLimitError]
    assert [(a.model, a.status) for a in ei.value.attempts] == [("a", 503), ("a", 503), ("b", 429), ("b", 429)]
    assert len(client.ledger.rows()) == 4
    with pytest.raises(ck.AllTargetsFailedError) as again:  # `except*` picks the kind out of the group
        await call(client, is_async, ["openai:a", "openai:b"])
    kinds: list[str] = []
    try:
        raise again.value
    except* ck.RateLimitError as group:
        kinds += [type(e).__name__ for e in group.exceptions]
    except* ck.ServerError as group:
        kinds += [type(e).__name__ for e in group.exceptions]
    assert sorted(kinds) == ["RateLimitError", "ServerError"]


# ------------------------------------------------------------------------------------------------ deadline


@both
async def test_the_total_deadline_counts_sleeps_and_stops_the_plan(is_async: bool) -> None:
    clock = Clock()
    srv = Server([error(503, **{"retry-after": "4"})])
    client = client_for(srv, clock, is_async, retry={"max_retries": 5}, routing={"deadline_s": 10})
    with pytest.raises(ck.AllTargetsFailedError) as ei:
        await call(client, is_async, ["openai:a", "openai:b"])
    # a: try, 4 s, try, 4 s, try; a third 4 s wait would overrun the 10 s deadline. b gets the 2 s left:
    # one try, and no wait that would pass the deadline.
    assert clock.slept == [4, 4]
    assert [s.body["model"] for s in srv.seen] == ["a", "a", "a", "b"]
    assert [type(e) for e in ei.value.exceptions] == [ck.ServerError, ck.ServerError]
    run = Run(client._core, client._core.targets("openai:a"))
    clock.now += 11
    with pytest.raises(ck.APITimeoutError, match="deadline"):  # nothing is sent once the deadline has passed
        run.check_deadline(run.targets[0])


@both
async def test_a_try_gets_no_more_time_than_is_left(is_async: bool) -> None:
    clock = Clock()
    seen: list[Any] = []

    def server(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions.get("timeout"))
        return ok(chat_json("x"))

    client = client_for(Server([server]), clock, is_async, routing={"deadline_s": 7}, timeout=600)
    await call(client, is_async, "openai:a")
    assert seen[0]["read"] <= 7


@both
async def test_the_total_deadline_counts_the_wait_for_a_budget_reservation(is_async: bool, tmp_path: Path) -> None:
    """A reservation can wait for the ledger (another process's write, up to SQLite's busy timeout): that wait is
    the call's time too. The try gets only what is left after it; a try with nothing left is not sent, and its
    reservation is released."""
    clock = Clock()
    seen: list[Any] = []

    def server(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions.get("timeout"))
        return ok(chat_json("x", model="gpt-4o-mini"))

    client = client_for(Server([server]), clock, is_async, routing={"deadline_s": 7}, timeout=600,
                        ledger=f"sqlite:///{tmp_path}/l.db", budget={"limit_usd": "5"})
    budgets = client._core.budgets
    reserve, waited = budgets.reserve, [5.0]

    def slow_reserve(*args: Any, **kwargs: Any) -> Any:
        clock.now += waited[0]  # the ledger was held by another writer this long
        return reserve(*args, **kwargs)

    budgets.reserve = slow_reserve
    await call(client, is_async, "openai:gpt-4o-mini")
    assert seen[0]["read"] <= 2  # the 7 s deadline, less the 5 s the reservation waited

    waited[0] = 8.0
    with pytest.raises(ck.APITimeoutError):
        await call(client, is_async, "openai:gpt-4o-mini")
    assert len(seen) == 1  # not sent
    (status,) = client.budget_status().values()
    assert status.reserved == 0
    assert status.spent > 0  # the first call's row, and no other


# ------------------------------------------------------------------------------------------------ idempotency


@both
async def test_idempotency_key_is_reused_across_retries_and_409_is_retried_only_with_one(is_async: bool) -> None:
    clock = Clock()
    srv = Server([error(409, "conflict"), ok(chat_json("x"))])
    providers = {"openai": {"api_key": KEY, "idempotency_header": "Idempotency-Key"}}
    client = client_for(srv, clock, is_async, retry={"max_retries": 2}, providers=providers)
    r = await call(client, is_async, "openai:a")
    keys = [s.headers.get("idempotency-key") for s in srv.seen]
    assert len(keys) == 2
    assert keys[0] == keys[1]
    assert keys[0]
    assert r.text == "x"
    await call(client, is_async, "openai:a")
    assert srv.seen[-1].headers["idempotency-key"] != keys[0], "a new request gets a new key"

    plain = Server([error(409, "conflict"), ok(chat_json("x"))])
    client = client_for(plain, clock, is_async, retry={"max_retries": 2})
    with pytest.raises(ck.ConflictError):
        await call(client, is_async, "openai:a")
    assert len(plain.seen) == 1
    assert "idempotency-key" not in plain.seen[0].headers


# ------------------------------------------------------------------------------------------------ config swap


@both
async def test_changing_a_route_in_the_config_file_switches_provider(tmp_path: Path, is_async: bool,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOGETHER_API_KEY", "tg-test-0123456789")
    srv = Server([lambda r: ok(chat_json("x", model=_model(r)))])
    path = tmp_path / "computekit.toml"
    path.write_text('[routes.chat]\ntargets = ["openai:gpt-4o-mini"]\n', "utf-8")
    client = client_for(srv, Clock(), is_async, config=path)
    assert (await call(client, is_async, "chat")).provider == "openai"

    path.write_text('[routes.chat]\ntargets = ["together:meta-llama/Llama-3.3-70B-Instruct-Turbo"]\n', "utf-8")
    client = client_for(srv, Clock(), is_async, config=path)
    r = await call(client, is_async, "chat")
    assert (r.provider, r.model) == ("together", "meta-llama/Llama-3.3-70B-Instruct-Turbo")
    assert str(srv.seen[-1].url).startswith("https://api.together.xyz/v1/")
    assert r.cost.total is not None
    assert r.cost.total > Decimal(0)


def test_the_router_keeps_the_state_of_at_most_targets_kept_targets(monkeypatch: pytest.MonkeyPatch) -> None:
    # A gateway that passes on whatever model its users name would otherwise grow one state per name, for ever.
    monkeypatch.setattr(_router, "TARGETS_KEPT", 3, raising=False)
    clock = Clock()
    router = Router(RoutingConfig(failures_to_cool=1, cooldown_s=100), clock=clock)
    core = ck.Client(config=None, providers={"openai": {"api_key": KEY}})._core
    cooled, *others = core.targets([f"openai:m{i}" for i in range(10)])
    router.failed(cooled, ck.ServerError("x", provider="openai", model=cooled.model, status=500), 60)
    for t in others:
        router.order([t])
        router.succeeded(t, 0.5)
    assert len(router._states) == 3
    assert router.cooling(cooled)  # a target cooling down is the last forgotten
    assert router.latency(others[-1]) == 0.5
