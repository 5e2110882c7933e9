"""Run one public call on ``ck.Client`` or ``ck.AsyncClient`` built on a fake, so each test runs both ways."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest

import computekit as ck
from computekit._config import RetryConfig
from computekit._retry import RetryPolicy
from computekit.testing import FakeProvider

both = pytest.mark.parametrize("mode", ["sync", "async"])


class Sleeps:
    """Retry sleeps and fake latencies: recorded, never slept."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)

    async def asleep(self, seconds: float) -> None:
        self.waits.append(seconds)


def client(fake: FakeProvider, mode: str, sleeps: Sleeps | None = None, max_retries: int = 2,
           **settings: Any) -> ck.Client | ck.AsyncClient:
    s = sleeps or Sleeps()
    policy = RetryPolicy(RetryConfig(max_retries=max_retries), sleep=s, asleep=s.asleep)
    if mode == "sync":
        return fake.client(retry_policy=policy, **settings)
    return fake.async_client(retry_policy=policy, **settings)


def call(c: ck.Client | ck.AsyncClient, method: str, *args: Any, **kwargs: Any) -> Any:
    """``c.method(...)``, run to completion whether ``c`` is sync or async."""
    out = getattr(c, method)(*args, **kwargs)
    if inspect.isawaitable(out):
        async def run() -> Any:
            return await out

        return asyncio.run(run())
    return out


def stream(c: ck.Client | ck.AsyncClient, *args: Any, **kwargs: Any) -> tuple[list[ck.Chunk], ck.Completion]:
    """Every chunk of a stream and its result."""
    if isinstance(c, ck.AsyncClient):
        async def run() -> tuple[list[ck.Chunk], ck.Completion]:
            async with c.stream(*args, **kwargs) as s:
                chunks = [x async for x in s]
            return chunks, s.result

        return asyncio.run(run())
    with c.stream(*args, **kwargs) as s:
        chunks = list(s)
    return chunks, s.result
