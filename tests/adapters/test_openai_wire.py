"""The OpenAI wire format's request shaping and stream decoding, shared by ``openai``, ``azure`` and every
``openai-compatible`` provider: which field carries the output limit, what an assistant message sends back,
and how an error inside a 200 stream is typed."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from _clients import call, close, mode  # noqa: F401  (shared fixtures, registered by name)

import computekit as ck

KEY = "sk-test-placeholder"


@pytest.mark.parametrize(
    ("model", "field"),
    [("gpt-5", "max_completion_tokens"), ("gpt-5.1-mini", "max_completion_tokens"), ("o1", "max_completion_tokens"),
     ("o3-mini-2025-01-31", "max_completion_tokens"), ("ft:o4-mini-2025-04-16:org::abc", "max_completion_tokens"),
     ("gpt-4o-mini", "max_tokens"), ("gpt-4.1", "max_tokens"), ("omni-moderation-latest", "max_tokens")],
)
def test_token_limit_field_by_model_family(model: str, field: str) -> None:
    from pydantic import SecretStr

    from computekit.adapters._base import CompleteRequest, ProviderSettings
    from computekit.adapters.azure import AzureOpenAIAdapter
    from computekit.adapters.openai import OpenAIAdapter

    req = CompleteRequest(model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=77, stream=True)
    for cls, url in ((OpenAIAdapter, "https://api.openai.com/v1"), (AzureOpenAIAdapter, "https://r.openai.azure.com")):
        body = cls(ProviderSettings(name=cls.name, base_url=url, api_key=SecretStr("k" * 20), timeout=5)) \
            .build_complete(req).json
        assert body[field] == 77
        other = ({"max_tokens", "max_completion_tokens"} - {field}).pop()
        assert other not in body


async def test_new_families_are_configured_and_budgets_reserve_the_same_limit(mode: str) -> None:
    """A family the adapter does not know yet is named in config; the budget reserves the very limit sent."""
    import httpx

    sent: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return httpx.Response(400, json={"error": {"message": "stop here", "type": "invalid_request_error"}})

    cls = ck.Client if mode == "sync" else ck.AsyncClient
    http = (httpx.Client if mode == "sync" else httpx.AsyncClient)(transport=httpx.MockTransport(handler))
    client = cls(config=None, http_client=http, prices={"openai:o9-preview": {"input_mtok": "1", "output_mtok": "4"}},
                 providers={"openai": {"api_key": KEY, "max_completion_tokens_models": ["o9"]}},
                 budget={"limit_usd": "0.001"})
    with pytest.raises(ck.BudgetExceededError) as info:
        await call(client, "complete", "openai:o9-preview", "hi", max_tokens=100_000)
    assert info.value.requested is not None
    assert info.value.requested >= Decimal("0.4")  # 100,000 output x $4/M
    with pytest.raises(ck.BadRequestError):
        await call(client, "complete", "openai:o9-preview", "hi", max_tokens=10)
    await close(client)
    assert sent[0]["max_completion_tokens"] == 10
    assert "max_tokens" not in sent[0]
