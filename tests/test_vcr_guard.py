"""vcrpy really intercepts every HTTP stack in use, so no cassette test can silently reach the network.

Each stack (plain httpx sync/async, plain httpx2 sync/async, plain urllib3 (sync) and aiohttp (async): the libraries
computekit's default transports use, the official ``openai`` SDK on httpx2 sync/async, and computekit's own
transport) must replay a unique marker from cassettes/test_vcr_guard/ with the network blocked;
and a request that is not in the cassette must raise vcrpy's ``CannotOverwriteExistingCassetteException``. If a
stack bypassed vcrpy, the first kind of test would fail (blocked socket, or an ``.invalid`` host) and the second
would not see vcrpy's exception.
"""

from __future__ import annotations

import socket
from typing import Any

import aiohttp
import httpx
import httpx2
import openai
import pytest
import urllib3
from vcr.errors import CannotOverwriteExistingCassetteException

import computekit as ck
from computekit._config import RetryConfig
from computekit._retry import RetryPolicy
from computekit._transport import AiohttpTransport, Urllib3Transport

GUARD = "https://vcr-guard.invalid"
NOT_RECORDED = "https://vcr-guard.invalid/not-in-the-cassette"
KEY = "sk-test-placeholder"


@pytest.fixture(autouse=True)
def _cassette_fully_used(vcr: Any, request: pytest.FixtureRequest) -> Any:
    yield
    if vcr is not None and "bypass" not in request.node.name:
        assert vcr.play_count >= 1


def test_network_is_blocked() -> None:
    """The premise: with --block-network, a real connection fails outright."""
    with pytest.raises(RuntimeError, match="Network is disabled"), socket.create_connection(("192.0.2.1", 443), 1):
        pass


# ------------------------------------------------------------------------------------------------ httpx / httpx2


@pytest.mark.vcr
@pytest.mark.default_cassette("plain_httpx.yaml")
def test_httpx_sync_replays() -> None:
    with httpx.Client() as client:
        r = client.get(f"{GUARD}/httpx/sync")
    assert r.json() == {"marker": "ck-vcr-guard-httpx-sync-4c1e9b"}


@pytest.mark.vcr
@pytest.mark.default_cassette("plain_httpx.yaml")
async def test_httpx_async_replays() -> None:
    async with httpx.AsyncClient() as client:
        r = await client.get(f"{GUARD}/httpx/async")
    assert r.json() == {"marker": "ck-vcr-guard-httpx-async-8d2f0a"}


@pytest.mark.vcr
@pytest.mark.default_cassette("plain_httpx.yaml")
def test_httpx2_sync_replays() -> None:
    with httpx2.Client() as client:
        r = client.get(f"{GUARD}/httpx2/sync")
    assert r.json() == {"marker": "ck-vcr-guard-httpx2-sync-1a7c55"}


@pytest.mark.vcr
@pytest.mark.default_cassette("plain_httpx.yaml")
async def test_httpx2_async_replays() -> None:
    async with httpx2.AsyncClient() as client:
        r = await client.get(f"{GUARD}/httpx2/async")
    assert r.json() == {"marker": "ck-vcr-guard-httpx2-async-93be10"}


@pytest.mark.vcr
@pytest.mark.default_cassette("plain_httpx.yaml")
def test_httpx_sync_bypass_is_caught() -> None:
    with httpx.Client() as client, pytest.raises(CannotOverwriteExistingCassetteException):
        client.get(NOT_RECORDED)


@pytest.mark.vcr
@pytest.mark.default_cassette("plain_httpx.yaml")
async def test_httpx_async_bypass_is_caught() -> None:
    async with httpx.AsyncClient() as client:
        with pytest.raises(CannotOverwriteExistingCassetteException):
            await client.get(NOT_RECORDED)


@pytest.mark.vcr
@pytest.mark.default_cassette("plain_httpx.yaml")
def test_httpx2_sync_bypass_is_caught() -> None:
    with httpx2.Client() as client, pytest.raises(CannotOverwriteExistingCassetteException):
        client.get(NOT_RECORDED)


@pytest.mark.vcr
@pytest.mark.default_cassette("plain_httpx.yaml")
async def test_httpx2_async_bypass_is_caught() -> None:
    async with httpx2.AsyncClient() as client:
        with pytest.raises(CannotOverwriteExistingCassetteException):
            await client.get(NOT_RECORDED)


# ------------------------------------------------------------------------------------------------ urllib3 / aiohttp


@pytest.mark.vcr
@pytest.mark.default_cassette("plain_urllib3_aiohttp.yaml")
def test_urllib3_sync_replays() -> None:
    with urllib3.PoolManager(retries=False) as pool:
        r = pool.request("GET", f"{GUARD}/urllib3/sync")
    assert r.status == 200
    assert r.json() == {"marker": "ck-vcr-guard-urllib3-sync-7b3d2e"}


@pytest.mark.vcr
@pytest.mark.default_cassette("plain_urllib3_aiohttp.yaml")
async def test_aiohttp_async_replays() -> None:
    async with aiohttp.ClientSession() as session, session.get(f"{GUARD}/aiohttp/async") as r:
        assert r.status == 200
        body = await r.json()
    assert body == {"marker": "ck-vcr-guard-aiohttp-async-e5190f"}


@pytest.mark.vcr
@pytest.mark.default_cassette("plain_urllib3_aiohttp.yaml")
def test_urllib3_sync_bypass_is_caught() -> None:
    with urllib3.PoolManager(retries=False) as pool, pytest.raises(CannotOverwriteExistingCassetteException):
        pool.request("GET", NOT_RECORDED)


@pytest.mark.vcr
@pytest.mark.default_cassette("plain_urllib3_aiohttp.yaml")
async def test_aiohttp_async_bypass_is_caught() -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(CannotOverwriteExistingCassetteException):
            await session.get(NOT_RECORDED)


# ------------------------------------------------------------------------------------------------ openai SDK


MESSAGES: list[Any] = [{"role": "user", "content": "guard"}]


@pytest.mark.vcr
@pytest.mark.default_cassette("openai_sdk_sync.yaml")
def test_openai_sdk_sync_replays() -> None:
    client = openai.OpenAI(api_key=KEY, max_retries=0)
    assert isinstance(client._client, httpx2.Client), "the SDK's transport is httpx2: the stack under test"
    r = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert r.choices[0].message.content == "ck-vcr-guard-openai-sdk-sync-5e03d7"


@pytest.mark.vcr
@pytest.mark.default_cassette("openai_sdk_async.yaml")
async def test_openai_sdk_async_replays() -> None:
    client = openai.AsyncOpenAI(api_key=KEY, max_retries=0)
    assert isinstance(client._client, httpx2.AsyncClient)
    r = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert r.choices[0].message.content == "ck-vcr-guard-openai-sdk-async-b6419c"


@pytest.mark.vcr
@pytest.mark.default_cassette("openai_sdk_sync.yaml")
def test_openai_sdk_sync_bypass_is_caught() -> None:
    client = openai.OpenAI(api_key=KEY, max_retries=0, base_url="https://vcr-guard.invalid/v1")
    with pytest.raises(CannotOverwriteExistingCassetteException):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)


@pytest.mark.vcr
@pytest.mark.default_cassette("openai_sdk_async.yaml")
async def test_openai_sdk_async_bypass_is_caught() -> None:
    client = openai.AsyncOpenAI(api_key=KEY, max_retries=0, base_url="https://vcr-guard.invalid/v1")
    with pytest.raises(CannotOverwriteExistingCassetteException):
        await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)


# ------------------------------------------------------------------------------------------------ computekit


def _ck(cls: type[Any]) -> Any:
    client = cls(
        config=None, providers={"openai": {"api_key": KEY}}, retry_policy=RetryPolicy(RetryConfig(max_retries=0))
    )
    # The default transports: the urllib3 / aiohttp stacks guarded above.
    assert isinstance(client._transport, AiohttpTransport if cls is ck.AsyncClient else Urllib3Transport)
    return client


@pytest.mark.vcr
@pytest.mark.default_cassette("computekit_sync.yaml")
def test_computekit_sync_replays() -> None:
    with _ck(ck.Client) as client:
        r = client.complete("openai:gpt-4o-mini", "guard")
    assert r.text == "ck-vcr-guard-computekit-sync-2f8e61"


@pytest.mark.vcr
@pytest.mark.default_cassette("computekit_async.yaml")
async def test_computekit_async_replays() -> None:
    async with _ck(ck.AsyncClient) as client:
        r = await client.complete("openai:gpt-4o-mini", "guard")
    assert r.text == "ck-vcr-guard-computekit-async-c40d9a"


@pytest.mark.vcr
@pytest.mark.default_cassette("computekit_sync.yaml")
def test_computekit_sync_bypass_is_caught() -> None:
    with _ck(ck.Client) as client, pytest.raises(CannotOverwriteExistingCassetteException):
        client.complete("openai:gpt-4o-mini", "guard", base_url="https://vcr-guard.invalid/v1", api_key=KEY)


@pytest.mark.vcr
@pytest.mark.default_cassette("computekit_async.yaml")
async def test_computekit_async_bypass_is_caught() -> None:
    async with _ck(ck.AsyncClient) as client:
        with pytest.raises(CannotOverwriteExistingCassetteException):
            await client.complete("openai:gpt-4o-mini", "guard", base_url="https://vcr-guard.invalid/v1", api_key=KEY)
