"""Module-level verbs (``ck.complete`` ...) on lazily created default clients."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from ._client import AsyncClient, AsyncStream, Client, Stream
from ._types import DEFAULT_CLIENTS, Completion, Embeddings, FineTuneJob, ParsedT, Prediction, Reranking

__all__ = [
    "acomplete", "aembed", "afinetune", "apredict", "arerank", "astream", "complete", "embed", "finetune", "predict",
    "rerank", "stream",
]

_lock = threading.Lock()
_sync: Client | None = None
_async: AsyncClient | None = None


def default_client() -> Client:
    """The client behind ``ck.complete()`` and friends (zero config: env vars and ./computekit.toml)."""
    global _sync
    if _sync is None:
        with _lock:
            if _sync is None:
                _sync = Client()
    return _sync


def default_async_client() -> AsyncClient:
    """The client behind ``ck.acomplete()`` and friends."""
    global _async
    if _async is None:
        with _lock:
            if _async is None:
                _async = AsyncClient()
    return _async


def complete(model: Any, prompt: Any = None, /, *,
             response_format: type[ParsedT] | Mapping[str, Any] | None = None, **kwargs: Any) -> Completion[ParsedT]:
    """:meth:`Client.complete` on the default client."""
    if prompt is not None:
        kwargs["prompt"] = prompt
    if response_format is not None:
        kwargs["response_format"] = response_format
    return default_client().complete(model, **kwargs)


def stream(model: Any, prompt: Any = None, /, *,
           response_format: type[ParsedT] | Mapping[str, Any] | None = None, **kwargs: Any) -> Stream[ParsedT]:
    """:meth:`Client.stream` on the default client."""
    if prompt is not None:
        kwargs["prompt"] = prompt
    if response_format is not None:
        kwargs["response_format"] = response_format
    return default_client().stream(model, **kwargs)


def embed(model: Any, inputs: Any, /, **kwargs: Any) -> Embeddings:
    """:meth:`Client.embed` on the default client."""
    return default_client().embed(model, inputs, **kwargs)


DEFAULT_CLIENTS["sync"] = default_client
DEFAULT_CLIENTS["async"] = default_async_client


async def acomplete(model: Any, prompt: Any = None, /, *,
                    response_format: type[ParsedT] | Mapping[str, Any] | None = None,
                    **kwargs: Any) -> Completion[ParsedT]:
    """:meth:`AsyncClient.complete` on the default async client."""
    if prompt is not None:
        kwargs["prompt"] = prompt
    if response_format is not None:
        kwargs["response_format"] = response_format
    return await default_async_client().complete(model, **kwargs)


def astream(model: Any, prompt: Any = None, /, *, response_format: type[ParsedT] | Mapping[str, Any] | None = None,
            **kwargs: Any) -> AsyncStream[ParsedT]:
    """:meth:`AsyncClient.stream` on the default async client."""
    if prompt is not None:
        kwargs["prompt"] = prompt
    if response_format is not None:
        kwargs["response_format"] = response_format
    return default_async_client().stream(model, **kwargs)


async def aembed(model: Any, inputs: Any, /, **kwargs: Any) -> Embeddings:
    """:meth:`AsyncClient.embed` on the default async client."""
    return await default_async_client().embed(model, inputs, **kwargs)


def rerank(model: Any, query: str, documents: Any, /, **kwargs: Any) -> Reranking:
    """:meth:`Client.rerank` on the default client."""
    return default_client().rerank(model, query, documents, **kwargs)


async def arerank(model: Any, query: str, documents: Any, /, **kwargs: Any) -> Reranking:
    """:meth:`AsyncClient.rerank` on the default async client."""
    return await default_async_client().rerank(model, query, documents, **kwargs)


def predict(model: Any, input: Any, /, **kwargs: Any) -> Prediction:
    """:meth:`Client.predict` on the default client."""
    return default_client().predict(model, input, **kwargs)


async def apredict(model: Any, input: Any, /, **kwargs: Any) -> Prediction:
    """:meth:`AsyncClient.predict` on the default async client."""
    return await default_async_client().predict(model, input, **kwargs)


def finetune(model: Any, /, **kwargs: Any) -> FineTuneJob:
    """:meth:`Client.finetune` on the default client."""
    return default_client().finetune(model, **kwargs)


async def afinetune(model: Any, /, **kwargs: Any) -> FineTuneJob:
    """:meth:`AsyncClient.finetune` on the default async client."""
    return await default_async_client().finetune(model, **kwargs)
