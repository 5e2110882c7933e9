"""Any OpenAI-compatible server, with built-in profiles for hosted ones and local servers.

A profile is a base URL, the env var that holds the key, and the provider's id in the price tables. Use a
profile by name (``together:meta-llama/...``, ``groq:llama-3.1-8b-instant``, ``ollama:llama3.2``), or declare
your own in config::

    [providers.myhost]
    adapter = "openai-compatible"
    base_url = "https://llm.example.com/v1"
    api_key_env = "MYHOST_KEY"
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from .._types import Result
from ..pricing import PriceRef
from ._base import Capabilities, CompleteRequest, HTTPRequest
from .openai import OpenAIWire

__all__ = ["PROFILES", "OpenAICompatibleAdapter", "Profile"]


_ALL = Capabilities(complete=True, stream=True, tools=True, json_mode=True, embed=True, text_completion=True)


@dataclass(frozen=True, slots=True)
class Profile:
    """Where a known OpenAI-compatible host lives and how it is keyed and priced."""

    base_url: str
    key_env_vars: tuple[str, ...] = ()
    table_provider: str | None = None
    requires_key: bool = True
    metered: bool = True
    """False for self-hosted servers: no per-call charge (a config price still applies)."""
    text_only_engines: bool = False
    """GooseAI: text completions at ``engines/{engine}/completions``, no chat endpoint."""
    capabilities: Capabilities = _ALL
    docs_url: str | None = None


# What the hosted APIs offer on their OpenAI-compatible endpoints (each host's API reference).
_CHAT_ONLY = Capabilities(complete=True, stream=True, tools=True, json_mode=True)
_CHAT_AND_EMBED = Capabilities(complete=True, stream=True, tools=True, json_mode=True, embed=True)
_TEXT_ONLY = Capabilities(complete=True, stream=True, text_completion=True)


PROFILES: Final[dict[str, Profile]] = {
    "together": Profile("https://api.together.xyz/v1", ("TOGETHER_API_KEY",), "together",
                        capabilities=_CHAT_AND_EMBED,
                        docs_url="https://docs.together.ai/reference"),
    "groq": Profile("https://api.groq.com/openai/v1", ("GROQ_API_KEY",), "groq", capabilities=_CHAT_ONLY,
                    docs_url="https://console.groq.com/docs/api-reference"),
    "fireworks": Profile("https://api.fireworks.ai/inference/v1", ("FIREWORKS_API_KEY",), "fireworks",
                         capabilities=_CHAT_AND_EMBED,
                         docs_url="https://docs.fireworks.ai/api-reference"),
    "deepseek": Profile("https://api.deepseek.com/v1", ("DEEPSEEK_API_KEY",), "deepseek", capabilities=_CHAT_ONLY,
                        docs_url="https://api-docs.deepseek.com"),
    "huggingface": Profile("https://router.huggingface.co/v1", ("HF_TOKEN", "HUGGINGFACE_API_KEY"), None,
                           capabilities=_CHAT_ONLY,
                           docs_url="https://huggingface.co/docs/inference-providers"),
    "baseten": Profile("https://inference.baseten.co/v1", ("BASETEN_API_KEY",), "baseten", capabilities=_CHAT_ONLY,
                       docs_url="https://docs.baseten.co/development/model-apis/overview"),
    "gooseai": Profile("https://api.goose.ai/v1", ("GOOSEAI_API_KEY",), None, text_only_engines=True,
                       capabilities=_TEXT_ONLY,
                       docs_url="https://goose.ai/docs/api"),
    "vllm": Profile("http://localhost:8000/v1", requires_key=False, metered=False),
    "ollama": Profile("http://localhost:11434/v1", requires_key=False, metered=False),
    "llamacpp": Profile("http://localhost:8080/v1", requires_key=False, metered=False),
}

_GENERIC = Profile(base_url="", requires_key=False)


class OpenAICompatibleAdapter(OpenAIWire):
    """Any server that speaks OpenAI's chat-completions wire format."""

    name = "openai-compatible"
    capabilities = _ALL
    requires_key = False

    @property
    def profile(self) -> Profile:
        """This provider's profile (a generic one for a configured host)."""
        return PROFILES.get(self.provider, _GENERIC)

    @classmethod
    def capabilities_for(cls, provider: str) -> Capabilities:
        return PROFILES.get(provider, _GENERIC).capabilities

    @classmethod
    def pricing_for(cls, provider: str) -> str:
        p = PROFILES.get(provider, _GENERIC)
        if not p.metered:
            return "self-hosted: $0 (config `[prices]` to charge)"
        return f"genai-prices (`{p.table_provider}`)" if p.table_provider else "config `[prices]` only"

    @classmethod
    def defaults_for(cls, provider: str) -> tuple[str | None, tuple[str, ...], bool]:
        p = PROFILES.get(provider, _GENERIC)
        return p.base_url or None, p.key_env_vars, p.requires_key

    def uses_text_endpoint(self, model: str) -> bool:
        return self.profile.text_only_engines or super().uses_text_endpoint(model)

    def text_path(self, model: str) -> str:
        return f"engines/{model}/completions" if self.profile.text_only_engines else "completions"

    def build_complete(self, req: CompleteRequest) -> HTTPRequest:
        http = super().build_complete(req)
        if self.profile.text_only_engines and isinstance(http.json, dict):
            http.json.pop("model", None)  # the engine is in the URL
        return http

    def price_ref(self, model: str, result: Result | None = None) -> PriceRef:
        ref = super().price_ref(model, result)
        p = self.profile
        return PriceRef(
            provider=ref.provider,
            model=ref.model,
            table_provider=p.table_provider,
            context=ref.context,
            metered=p.metered,
        )
