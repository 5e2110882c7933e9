"""The one retry loop: what is retried, how long it waits (Retry-After honoured), and how often. Never sleeps."""

from __future__ import annotations

import email.utils
import random
from typing import Any

import httpx
import pytest
from _support import Server, Waits, chat_json, error, make_client, ok

import computekit as ck
from computekit._config import RetryConfig
from computekit._retry import RetryPolicy, retry_after_seconds

NOW = 1_700_000_000.0


async def _call(client: Any, is_async: bool, model: Any = "openai:gpt-4o-mini") -> ck.Completion:
    if is_async:
        return await client.complete(model, "hi")
    return client.complete(model, "hi")


both = pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])


# ------------------------------------------------------------------------------------------------ through the client


@both
@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504, 529])
async def test_retried_statuses_then_success(status: int, is_async: bool) -> None:
    waits = Waits()
    server = Server([error(status), error(status), ok(chat_json("finally"))])
    client = make_client(server, is_async=is_async, waits=waits, retry={"max_retries": 2})
    r = await _call(client, is_async)
    assert r.text == "finally"
    assert server.hits == 3
    assert [a.outcome for a in r.attempts] == ["error", "error", "success"]
    assert [a.status for a in r.attempts] == [status, status, None]
    assert all(a.error_type for a in r.attempts[:2])
    assert len(waits.waits) == 2
    rows = client.ledger.rows()
    assert [row.outcome for row in rows] == ["error", "error", "success"]
    assert [row.status for row in rows] == [status, status, None]
    # A failed response is not billed: its cost is a known 0, not unknown.
    assert rows[0].cost == 0
    assert rows[2].cost is not None
    assert rows[2].cost > 0


@both
@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
async def test_client_errors_are_not_retried(status: int, is_async: bool) -> None:
    waits = Waits()
    server = Server([error(status), ok(chat_json())])
    client = make_client(server, is_async=is_async, waits=waits, retry={"max_retries": 3})
    with pytest.raises(ck.APIStatusError) as info:
        await _call(client, is_async)
    assert info.value.status == status
    assert server.hits == 1
    assert waits.waits == []
    assert len(client.ledger.rows()) == 1


@both
async def test_x_should_retry_false_overrides_a_retryable_status(is_async: bool) -> None:
    server = Server([error(500, x_should_retry="false"), ok(chat_json())])
    client = make_client(server, is_async=is_async, retry={"max_retries": 3})
    with pytest.raises(ck.ServerError):
        await _call(client, is_async)
    assert server.hits == 1


@both
async def test_x_should_retry_true_overrides_a_client_error(is_async: bool) -> None:
    server = Server([error(400, x_should_retry="true"), ok(chat_json("second"))])
    client = make_client(server, is_async=is_async, retry={"max_retries": 3})
    r = await _call(client, is_async)
    assert r.text == "second"
    assert server.hits == 2
    assert [a.outcome for a in r.attempts] == ["error", "success"]


@both
@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry_after_ms": "1500"}, 1.5),
        ({"retry_after": "3"}, 3.0),
        ({"retry_after": "0"}, 0.0),
        ({"retry_after": "2.5"}, 2.5),
        ({"retry_after_ms": "250", "retry_after": "30"}, 0.25),  # ms wins
        ({"retry_after": email.utils.formatdate(NOW + 7, usegmt=True)}, 7.0),
        ({"retry_after": email.utils.formatdate(NOW - 100, usegmt=True)}, 0.0),  # a date in the past: now
    ],
)
async def test_retry_after_is_honoured(headers: dict[str, str], expected: float, is_async: bool) -> None:
    waits = Waits()
    server = Server([error(429, **headers), ok(chat_json())])
    transport = httpx.MockTransport(server)
    pol = RetryPolicy(RetryConfig(max_retries=2), sleep=waits, asleep=waits.asleep, now=lambda: NOW)
    common: dict[str, Any] = {"config": None, "providers": {"openai": {"api_key": "sk-test-123456789"}},
                              "retry_policy": pol}
    if is_async:
        client: Any = ck.AsyncClient(http_client=httpx.AsyncClient(transport=transport), **common)
    else:
        client = ck.Client(http_client=httpx.Client(transport=transport), **common)
    await _call(client, is_async)
    assert server.hits == 2
    assert waits.waits == [pytest.approx(expected)]


@both
async def test_retry_after_above_the_cap_is_not_retried(is_async: bool) -> None:
    waits = Waits()
    server = Server([error(429, retry_after="120"), ok(chat_json())])
    client = make_client(server, is_async=is_async, waits=waits, retry={"max_retries": 3, "retry_after_cap": 60})
    with pytest.raises(ck.RateLimitError) as info:
        await _call(client, is_async)
    assert info.value.headers["retry-after"] == "120"
    assert server.hits == 1
    assert waits.waits == []


@both
@pytest.mark.parametrize("value", ["inf", "nan", "junk", "-5", "", "Thu, 99 Foo 2024"])
async def test_malformed_retry_after_backs_off_within_bounds(value: str, is_async: bool) -> None:
    waits = Waits()
    server = Server([error(503, retry_after=value)] * 3 + [ok(chat_json())])
    client = make_client(server, is_async=is_async, waits=waits,
                         retry={"max_retries": 3, "backoff_initial": 0.5, "backoff_max": 1.5})
    await _call(client, is_async)
    assert server.hits == 4
    assert len(waits.waits) == 3
    for n, w in enumerate(waits.waits, start=1):
        assert 0 <= w <= min(1.5, 0.5 * 2 ** (n - 1))


@both
@pytest.mark.parametrize("max_retries", [0, 1, 4])
async def test_max_retries_is_respected(max_retries: int, is_async: bool) -> None:
    waits = Waits()
    server = Server([error(503)])
    client = make_client(server, is_async=is_async, waits=waits, retry={"max_retries": max_retries})
    with pytest.raises(ck.ServerError):
        await _call(client, is_async)
    assert server.hits == 1 + max_retries
    assert len(waits.waits) == max_retries
    rows = client.ledger.rows()
    assert len(rows) == 1 + max_retries
    assert {row.error_type for row in rows} == {"ServerError"}


@both
@pytest.mark.parametrize(
    ("exc", "cls"),
    [
        (httpx.ConnectError("connection refused"), ck.APIConnectionError),
        (httpx.RemoteProtocolError("peer closed connection"), ck.APIConnectionError),
        (httpx.ReadTimeout("timed out"), ck.APITimeoutError),
        (httpx.ConnectTimeout("timed out"), ck.APITimeoutError),
    ],
)
async def test_transport_failures_are_typed_and_retried(exc: Exception, cls: type, is_async: bool) -> None:
    server = Server([exc])
    client = make_client(server, is_async=is_async, retry={"max_retries": 2})
    with pytest.raises(ck.ProviderError) as info:
        await _call(client, is_async)
    assert type(info.value) is cls
    assert info.value.provider == "openai"
    assert info.value.model == "gpt-4o-mini"
    assert info.value.status is None
    assert server.hits == 3
    rows = client.ledger.rows()
    assert [row.error_type for row in rows] == [cls.__name__] * 3
    assert all(row.cost is None for row in rows)  # no response: whether it was billed is unknown


@both
async def test_transport_failure_then_success(is_async: bool) -> None:
    server = Server([httpx.ReadTimeout("timed out"), ok(chat_json("ok"))])
    client = make_client(server, is_async=is_async)
    r = await _call(client, is_async)
    assert r.text == "ok"
    assert [a.error_type for a in r.attempts] == ["APITimeoutError", None]


def test_malformed_success_is_not_retried() -> None:
    server = Server([httpx.Response(200, text="<html>"), ok(chat_json())])
    client = make_client(server, retry={"max_retries": 3})
    with pytest.raises(ck.MalformedResponseError):
        client.complete("openai:gpt-4o-mini", "hi")
    assert server.hits == 1


# ------------------------------------------------------------------------------------------------ the pure parts


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"retry-after": "5"}, 5.0),
        ({"retry-after-ms": "100"}, 0.1),
        ({"retry-after-ms": "junk", "retry-after": "4"}, 4.0),
        ({"retry-after-ms": "-1", "retry-after": "4"}, 4.0),
        ({"retry-after": "inf"}, None),
        ({"retry-after": "-inf"}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "-3"}, None),
        ({"retry-after": "soon"}, None),
        ({"retry-after": email.utils.formatdate(NOW + 30, usegmt=True)}, 30.0),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00"}, 0.0),  # no zone: read as UTC, long past
    ],
)
def test_retry_after_seconds(headers: dict[str, str], expected: float | None) -> None:
    got = retry_after_seconds(headers, now=lambda: NOW)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected)


def _status_error(status: int, **headers: str) -> ck.APIStatusError:
    return ck.APIStatusError("x", provider="p", status=status, headers=headers)


@pytest.mark.parametrize(
    ("exc", "retried"),
    [
        (_status_error(408), True),
        (_status_error(429), True),
        (_status_error(500), True),
        (_status_error(501), True),
        (_status_error(529), True),
        (_status_error(400), False),
        (_status_error(404), False),
        (_status_error(409), False),
        (_status_error(503, **{"x-should-retry": "false"}), False),
        (_status_error(409, **{"x-should-retry": "true"}), True),
        (_status_error(429, **{"retry-after": "61"}), False),
        (_status_error(429, **{"retry-after": "60"}), True),
        (ck.APITimeoutError("t", provider="p"), True),
        (ck.APIConnectionError("c", provider="p"), True),
        (ck.MalformedResponseError("m", provider="p", status=200), False),
        (ValueError("not ours"), False),
    ],
)
def test_should_retry(exc: BaseException, retried: bool) -> None:
    assert RetryPolicy(RetryConfig(retry_after_cap=60)).should_retry(exc) is retried


def test_backoff_is_full_jitter_under_an_exponential_ceiling() -> None:
    pol = RetryPolicy(RetryConfig(backoff_initial=0.5, backoff_max=4.0), rng=random.Random(1234))
    for attempt in range(1, 9):
        ceiling = min(4.0, 0.5 * 2 ** (attempt - 1))
        waits = [pol.wait_for(_status_error(503), attempt) for _ in range(200)]
        assert all(0 <= w <= ceiling for w in waits)
        assert max(waits) > ceiling * 0.8  # jitter spreads over the whole range


def test_wait_for_uses_retry_after_when_within_cap() -> None:
    pol = RetryPolicy(RetryConfig(retry_after_cap=10), now=lambda: NOW)
    assert pol.wait_for(_status_error(429, **{"retry-after": "7"}), 1) == 7.0
    assert pol.wait_for(_status_error(429, **{"retry-after-ms": "10000"}), 3) == 10.0
