"""Run the same public call on ``ck.Client`` and ``ck.AsyncClient``, so that each cassette is replayed both ways."""

from __future__ import annotations

import inspect
from typing import Any

import httpx
import pytest

import computekit as ck
from computekit._config import RetryConfig
from computekit._retry import RetryPolicy

MODES = ("sync", "async")

# Cassettes are matched on the request body as well (JSON-compared by vcrpy), so each one also pins down the
# exact request computekit sends.
MATCH_ON = ["method", "scheme", "host", "port", "path", "query", "body"]


# The tool every adapter's tool-call test offers, in computekit's shorthand shape (each adapter converts it:
# Anthropic's {name, description, input_schema}, Cohere's v2 function tool ...).
WEATHER = {
    "name": "get_weather",
    "description": "Current weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


class Sleeps:
    """Retry and poll sleeps: recorded, moving a fake clock (``clock`` is a router clock), never sleeping."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.now

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self(seconds)


def policy(sleeps: Sleeps, max_retries: int = 2) -> RetryPolicy:
    return RetryPolicy(RetryConfig(max_retries=max_retries), sleep=sleeps, asleep=sleeps.asleep)


class Seen:
    """The requests that left computekit (as httpx built them), captured by an httpx event hook."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def hook(self, request: httpx.Request) -> None:
        self.requests.append(request)

    async def ahook(self, request: httpx.Request) -> None:
        self.requests.append(request)

    def http_client(self, mode: str) -> httpx.Client | httpx.AsyncClient:
        if mode == "sync":
            return httpx.Client(event_hooks={"request": [self.hook]})
        return httpx.AsyncClient(event_hooks={"request": [self.ahook]})


def make_client(mode: str, **kwargs: Any) -> ck.Client | ck.AsyncClient:
    """A client with no config file (the isolation fixture points the ledger at a temp file)."""
    cls = ck.Client if mode == "sync" else ck.AsyncClient
    return cls(config=None, **kwargs)


async def call(client: ck.Client | ck.AsyncClient, method: str, *args: Any, **kwargs: Any) -> Any:
    """``client.method(*args, **kwargs)``, awaited when the client is async."""
    out = getattr(client, method)(*args, **kwargs)
    return await out if inspect.isawaitable(out) else out


async def stream(client: ck.Client | ck.AsyncClient, *args: Any, **kwargs: Any) -> tuple[list[ck.Chunk], Any]:
    """All chunks of a stream and its final result, sync or async."""
    if isinstance(client, ck.AsyncClient):
        async with client.stream(*args, **kwargs) as s:
            chunks = [c async for c in s]
        return chunks, s.result
    with client.stream(*args, **kwargs) as s:
        chunks = list(s)
    return chunks, s.result


async def close(client: ck.Client | ck.AsyncClient) -> None:
    if isinstance(client, ck.AsyncClient):
        await client.aclose()
    else:
        client.close()


# ------------------------------------------------------------------------------------------------ shared fixtures
# Test modules import these by name (``from _clients import every_interaction_played, mode, vcr_config``):
# pytest registers a fixture wherever its function is a module global.


@pytest.fixture(scope="module")
def vcr_config(vcr_config: dict[str, Any]) -> dict[str, Any]:
    """The suite's vcr settings, matching requests on their JSON body too: a cassette pins what is sent."""
    return {**vcr_config, "match_on": MATCH_ON}


@pytest.fixture(autouse=True)
def every_interaction_played(request: pytest.FixtureRequest) -> Any:
    """Each cassette test consumes its whole cassette: nothing recorded goes unused, nothing bypasses vcrpy."""
    if request.node.get_closest_marker("vcr") is None:
        yield
        return
    vcr = request.getfixturevalue("vcr")
    yield
    assert vcr is not None
    assert vcr.play_count == len(vcr.data)
    assert vcr.all_played


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    """Each public call runs sync and async."""
    return str(request.param)
