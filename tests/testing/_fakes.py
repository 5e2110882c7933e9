"""Run one public call on ``ck.Client`` or ``ck.AsyncClient`` built on a fake, so each test runs both ways."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest
from _support import Waits, policy

import computekit as ck
from computekit.testing import FakeProvider

both = pytest.mark.parametrize("mode", ["sync", "async"])


def client(fake: FakeProvider, mode: str, waits: Waits | None = None, max_retries: int = 2,
           **settings: Any) -> ck.Client | ck.AsyncClient:
    """A client on ``fake`` whose retry sleeps and fake latencies are recorded in ``waits``, never slept."""
    retry = policy(waits, max_retries=max_retries)
    if mode == "sync":
        return fake.client(retry_policy=retry, **settings)
    return fake.async_client(retry_policy=retry, **settings)


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
