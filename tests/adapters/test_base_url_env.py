"""Each vendor's own base-URL variable (what its SDK reads) is honoured in that vendor's convention; a configured
base URL and a per-call one still win, and no other provider reads it."""

from __future__ import annotations

import pytest

from computekit._core import Core
from computekit.adapters import adapter_class
from computekit.adapters._base import CompleteRequest

# provider, the vendor's variable, a value as the vendor documents it, the base URL computekit then uses
CASES = [
    ("openai", "OPENAI_BASE_URL", "https://proxy.example/v1", "https://proxy.example/v1"),
    ("anthropic", "ANTHROPIC_BASE_URL", "https://proxy.example", "https://proxy.example/v1"),
    ("anthropic", "ANTHROPIC_BASE_URL", "https://proxy.example/", "https://proxy.example/v1"),
    ("cohere", "CO_API_URL", "https://proxy.example", "https://proxy.example"),
    ("replicate", "REPLICATE_BASE_URL", "https://proxy.example", "https://proxy.example/v1"),
    ("ai21", "AI21_API_HOST", "https://proxy.example/studio/v1", "https://proxy.example/studio/v1"),
    ("groq", "GROQ_BASE_URL", "https://proxy.example", "https://proxy.example/openai/v1"),
    ("together", "TOGETHER_BASE_URL", "https://proxy.example", "https://proxy.example/v1"),
]
VARS = sorted({c[1] for c in CASES})


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in VARS:
        monkeypatch.delenv(var, raising=False)


def base_url(provider: str, **providers: dict[str, str]) -> str:
    return Core(None, providers=providers, ledger="none").adapter(provider).settings.base_url


@pytest.mark.parametrize(("provider", "var", "value", "expected"), CASES)
def test_the_vendor_variable_sets_the_base_url(provider: str, var: str, value: str, expected: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    default = adapter_class(provider).defaults_for(provider)[0]
    assert base_url(provider) == default
    monkeypatch.setenv(var, value)
    assert base_url(provider) == expected


def test_requests_go_to_the_variable_s_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "https://proxy.example")
    adapter = Core(None, providers={"anthropic": {"api_key": "k"}}, ledger="none").adapter("anthropic")
    req = CompleteRequest(model="claude-x", messages=[{"role": "user", "content": "hi"}], max_tokens=5)
    assert adapter.build_complete(req).url == "https://proxy.example/v1/messages"


def test_config_and_per_call_base_urls_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "https://from-env.example/v1")
    assert base_url("openai", openai={"base_url": "https://configured.example/v1"}) == \
        "https://configured.example/v1"
    core = Core(None, ledger="none")
    assert core.adapter("openai", base_url="https://per-call.example/v1").settings.base_url == \
        "https://per-call.example/v1"


@pytest.mark.parametrize("provider", ["groq", "together", "fireworks", "azure", "fake"])
def test_no_other_provider_reads_openai_s_or_replicate_s_variable(provider: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://resource.openai.azure.com")
    before = base_url(provider)
    monkeypatch.setenv("OPENAI_BASE_URL", "https://from-env.example/v1")
    monkeypatch.setenv("REPLICATE_BASE_URL", "https://from-env.example")
    assert base_url(provider) == before


def test_an_empty_variable_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "  ")
    assert base_url("openai") == "https://api.openai.com/v1"
