"""The adapter registry: provider name -> adapter class, imported on first use.

Built-in providers are one line each below. Third-party packages register under the ``computekit.adapters``
entry-point group; they are looked up only when a name is not built in, so ``import computekit`` reads no
entry points.
"""

from __future__ import annotations

import importlib
import threading
from typing import Final

from .._exceptions import ConfigError
from ._base import Adapter

__all__ = ["BUILTIN", "ENTRY_POINT_GROUP", "adapter_class", "available", "did_you_mean", "providers"]

ENTRY_POINT_GROUP: Final = "computekit.adapters"

_OPENAI_COMPATIBLE = "computekit.adapters.openai_compatible:OpenAICompatibleAdapter"

BUILTIN: Final[dict[str, str]] = {
    "openai": "computekit.adapters.openai:OpenAIAdapter",
    "azure": "computekit.adapters.azure:AzureOpenAIAdapter",
    "openai-compatible": _OPENAI_COMPATIBLE,
    "anthropic": "computekit.adapters.anthropic:AnthropicAdapter",
    "cohere": "computekit.adapters.cohere:CohereAdapter",
    "ai21": "computekit.adapters.ai21:AI21Adapter",
    "mistral": "computekit.adapters.mistral:MistralAdapter",
    "gemini": "computekit.adapters.gemini:GeminiAdapter",
    "vertex": "computekit.adapters.vertex:VertexAdapter",
    "replicate": "computekit.adapters.replicate:ReplicateAdapter",
    # OpenAI-compatible hosts with a built-in profile (see openai_compatible.PROFILES).
    "together": _OPENAI_COMPATIBLE,
    "groq": _OPENAI_COMPATIBLE,
    "fireworks": _OPENAI_COMPATIBLE,
    "deepseek": _OPENAI_COMPATIBLE,
    "huggingface": _OPENAI_COMPATIBLE,
    "baseten": _OPENAI_COMPATIBLE,
    "gooseai": _OPENAI_COMPATIBLE,
    "vllm": _OPENAI_COMPATIBLE,
    "ollama": _OPENAI_COMPATIBLE,
    "llamacpp": _OPENAI_COMPATIBLE,
    "bedrock": "computekit.adapters.bedrock:BedrockAdapter",
    "openrouter": _OPENAI_COMPATIBLE,
    "cerebras": _OPENAI_COMPATIBLE,
    "xai": _OPENAI_COMPATIBLE,
    "perplexity": _OPENAI_COMPATIBLE,
    "moonshot": _OPENAI_COMPATIBLE,
    "novita": _OPENAI_COMPATIBLE,
    "gemini-openai": _OPENAI_COMPATIBLE,
    "runpod": "computekit.adapters.runpod:RunPodAdapter",
    "baseten-dedicated": "computekit.adapters.baseten_dedicated:BasetenDedicatedAdapter",
    "fal": "computekit.adapters.fal:FalAdapter",
    "stability": "computekit.adapters.stability:StabilityAdapter",
    "hf-endpoint": "computekit.adapters.hf_endpoint:HFEndpointAdapter",
    # In-process fake for offline tests (computekit.testing.FakeProvider).
    "fake": "computekit.adapters.fake:FakeAdapter",
}

_loaded: dict[str, type[Adapter]] = {}
_lock = threading.Lock()


def _import(path: str) -> type[Adapter]:
    module, _, attr = path.partition(":")
    cls = getattr(importlib.import_module(module), attr)
    if not (isinstance(cls, type) and issubclass(cls, Adapter)):
        raise ConfigError(f"{path} is not a computekit Adapter subclass")
    return cls


def _plugins() -> dict[str, str]:
    from importlib.metadata import entry_points  # only when a name is not built in

    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available() -> dict[str, str]:
    """Every adapter name known: built-in and installed plugins (``name -> "module:Class"``)."""
    return {**_plugins(), **BUILTIN}


def providers() -> list[str]:
    """The provider names offered to users, sorted: every adapter name but the internal ones (a test fake, the
    generic OpenAI-compatible adapter, which serves hosts you name yourself)."""
    return sorted(n for n in available() if adapter_class(n).listed(n))


def did_you_mean(name: str, candidates: list[str]) -> str:
    """``" (did you mean 'openai'?)"`` when a candidate is close to ``name``, else ``""``."""
    import difflib

    by_lower = {c.lower(): c for c in candidates}  # 'OpenAI' is 'openai' written as a brand name
    close = [by_lower[c] for c in difflib.get_close_matches(name.lower(), list(by_lower), n=2, cutoff=0.6)]
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


def adapter_class(name: str) -> type[Adapter]:
    """The adapter class registered as ``name``.

    Raises:
        ConfigError: No adapter has that name (the message lists the known ones).
    """
    try:
        return _loaded[name]
    except KeyError:
        pass
    path = BUILTIN.get(name) or _plugins().get(name)
    if path is None:
        names = providers()
        close = did_you_mean(name, names)
        raise ConfigError(
            f"unknown provider {name!r}{close}. Known: {', '.join(names)}. For another OpenAI-compatible host, "
            f'add [providers.{name}] adapter = "openai-compatible" and base_url = "..." to computekit.toml'
        )
    cls = _import(path)
    with _lock:
        _loaded[name] = cls
    return cls
