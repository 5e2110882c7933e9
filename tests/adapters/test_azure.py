"""Azure OpenAI through the public client, sync and async, replayed from cassettes/test_azure/.

Azure serves OpenAI's wire format on a per-deployment URL with an ``api-version`` query and an ``api-key``
header. The cassettes pin the URL (path and query are part of the match) and the JSON body; the header is
checked on the request as it left computekit (an httpx event hook), since cassettes never store credentials.

To record: set ``AZURE_OPENAI_API_KEY`` and ``AZURE_OPENAI_ENDPOINT``, deploy ``gpt-4o-mini`` as
``my-gpt-4o-mini`` and ``text-embedding-3-small`` as ``my-embeddings``, and run with ``--record-mode=rewrite``.
"""

from __future__ import annotations

from typing import Any

import genai_prices
import pytest
from _clients import Seen, Sleeps, call, close, make_client, mode, policy, vcr_config  # noqa: F401  (shared fixtures, registered by name)
from _paths import real_key

import computekit as ck

KEY = real_key("AZURE_OPENAI_API_KEY", "azure-test-placeholder-key")
ENDPOINT = real_key("AZURE_OPENAI_ENDPOINT", "https://example-resource.openai.azure.com")
API_VERSION = "2024-10-21"


@pytest.fixture(autouse=True)
def _every_interaction_played(vcr: Any) -> Any:
    yield
    assert vcr is not None
    assert vcr.all_played


def client_for(mode: str, seen: Seen, **kwargs: Any) -> ck.Client | ck.AsyncClient:
    return make_client(
        mode,
        providers={
            "azure": {
                "api_key": KEY,
                "base_url": ENDPOINT,
                "api_version": API_VERSION,
                "deployments": {"gpt-4o-mini": "my-gpt-4o-mini", "text-embedding-3-small": "my-embeddings"},
            }
        },
        http_client=seen.http_client(mode),
        **kwargs,
    )


def check_sent(seen: Seen, deployment: str, path: str) -> None:
    (req,) = seen.requests
    assert req.url.path == f"/openai/deployments/{deployment}/{path}"
    assert req.url.params["api-version"] == API_VERSION
    assert req.headers["api-key"] == KEY
    assert "authorization" not in req.headers, "Azure's key goes in api-key, never as a bearer token"


@pytest.mark.vcr
@pytest.mark.default_cassette("chat.yaml")
async def test_chat_on_deployment(mode: str) -> None:
    seen = Seen()
    client = client_for(mode, seen)
    r = await call(client, "complete", "azure:gpt-4o-mini", "Say this is a test")
    await close(client)
    check_sent(seen, "my-gpt-4o-mini", "chat/completions")
    assert r.provider == "azure"
    assert r.model == "gpt-4o-mini"
    assert r.text == "This is a test."
    assert r.finish_reason == "stop"
    assert r.request_id == "5d6e7f80-91a2-4b3c-8d4e-5f6071829304", "apim-request-id is Azure's request id"
    assert (r.usage.input_tokens, r.usage.output_tokens) == (12, 5)
    assert r.raw["prompt_filter_results"][0]["content_filter_results"]["hate"]["filtered"] is False
    assert (
        r.cost.total
        == genai_prices.calc_price(
            genai_prices.Usage(input_tokens=12, output_tokens=5),
            "gpt-4o-mini-2024-07-18",
            provider_id="azure",
            genai_request_timestamp=r.attempts[-1].started_at,
        ).total_price
    )


@pytest.mark.vcr
@pytest.mark.default_cassette("embeddings.yaml")
async def test_embeddings_on_deployment(mode: str) -> None:
    seen = Seen()
    client = client_for(mode, seen)
    e = await call(client, "embed", "azure:text-embedding-3-small", "a red bicycle", dimensions=8)
    await close(client)
    check_sent(seen, "my-embeddings", "embeddings")
    assert len(e.vectors) == 1
    assert len(e.vectors[0]) == 8
    assert e.usage.input_tokens == 4
    assert (
        e.cost.total
        == genai_prices.calc_price(
            genai_prices.Usage(input_tokens=4),
            "text-embedding-3-small",
            provider_id="azure",
            genai_request_timestamp=e.attempts[-1].started_at,
        ).total_price
    )


@pytest.mark.vcr
@pytest.mark.default_cassette("content_filter.yaml")
async def test_content_filter_error(mode: str) -> None:
    seen, sleeps = Seen(), Sleeps()
    client = client_for(mode, seen, retry_policy=policy(sleeps))
    with pytest.raises(ck.ContentFilteredError) as info:
        await call(client, "complete", "azure:gpt-4o-mini", "Describe something the filter blocks.")
    await close(client)
    check_sent(seen, "my-gpt-4o-mini", "chat/completions")
    err = info.value
    assert isinstance(err, ck.BadRequestError)
    assert err.status == 400
    assert err.body["error"]["innererror"]["code"] == "ResponsibleAIPolicyViolation"
    assert err.request_id == "5d6e7f80-91a2-4b3c-8d4e-5f6071829304"
    assert sleeps.waits == []
    assert KEY not in str(err) + repr(err)
