"""Module-level verbs (``ck.complete`` ...) on lazily created default clients.

Each verb has its ``Client`` method's full signature (a test keeps them equal), so type checkers and editors see
every argument, and ends in ``**unknown: Never``: a misspelled or foreign argument (``max_tokns=``, ``n=2``) is
a type error for mypy, and at run time an ``InvalidRequestError`` that names the fix instead of a bare
``TypeError``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Never, Unpack, overload

from ._arguments import refuse
from ._background import BackgroundResponse
from ._client import AsyncClient, AsyncStream, Client, Stream
from ._constants import NOT_GIVEN, NotGiven
from ._plans import CompleteOptions, Messages, ModelSpec
from ._types import DEFAULT_CLIENTS, BatchJob, Completion, Embeddings, FineTuneJob, ParsedT, Prediction, Reranking

if TYPE_CHECKING:
    from rich.console import Console

    from .ledger import Ledger

__all__ = [
    "abatch", "acomplete", "aembed", "afinetune", "apredict", "arerank", "astream", "batch", "complete", "embed",
    "finetune", "ledger", "predict", "rerank", "stream",
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


def ledger() -> Ledger:
    """The ledger of the module-level client (``ck.complete()``'s, and ``ck.instrument()``'s without
    ``using=``): ``ck.ledger().report(by="tag:customer")``. Reads flush the rows still queued first.

    ``computekit.ledger`` stays the package of the ledger types (``computekit.ledger.SQLiteLedger`` ...): calling
    it is this function.

    Returns:
        The :class:`~computekit.ledger.Ledger` configured by ``computekit.toml`` and ``COMPUTEKIT_LEDGER``.

    Raises:
        ConfigError: The configuration does not load (the module-level client is made on first use).
    """
    return default_client().ledger


DEFAULT_CLIENTS["sync"] = default_client
DEFAULT_CLIENTS["async"] = default_async_client


def _refuse(unknown: dict[str, Any], verb: str) -> None:
    """An ``InvalidRequestError`` for arguments ``verb`` does not take, with a likely fix."""
    if unknown:
        refuse(unknown, getattr(Client, verb))


@overload
def complete(
    model: ModelSpec,
    prompt: str | NotGiven = ...,
    *,
    response_format: type[ParsedT] | Mapping[str, Any] | NotGiven = ...,
    background: Literal[False] = ...,
    **options: Unpack[CompleteOptions],
) -> Completion[ParsedT]: ...


@overload
def complete(
    model: ModelSpec,
    prompt: str | NotGiven = ...,
    *,
    response_format: type[ParsedT] | Mapping[str, Any] | NotGiven = ...,
    background: Literal[True],
    **options: Unpack[CompleteOptions],
) -> BackgroundResponse[ParsedT]: ...


@overload
def complete(
    model: ModelSpec,
    prompt: str | NotGiven = ...,
    *,
    response_format: type[ParsedT] | Mapping[str, Any] | NotGiven = ...,
    background: bool,
    **options: Unpack[CompleteOptions],
) -> Completion[ParsedT] | BackgroundResponse[ParsedT]: ...


def complete(
    model: ModelSpec,
    prompt: str | NotGiven = NOT_GIVEN,
    *,
    messages: Messages | NotGiven = NOT_GIVEN,
    max_tokens: int | NotGiven = NOT_GIVEN,
    temperature: float | NotGiven = NOT_GIVEN,
    top_p: float | NotGiven = NOT_GIVEN,
    stop: str | list[str] | NotGiven = NOT_GIVEN,
    tools: list[dict[str, Any]] | NotGiven = NOT_GIVEN,
    tool_choice: Any = NOT_GIVEN,
    response_format: type[ParsedT] | Mapping[str, Any] | NotGiven = NOT_GIVEN,
    seed: int | NotGiven = NOT_GIVEN,
    service_tier: str | NotGiven = NOT_GIVEN,
    user: str | NotGiven = NOT_GIVEN,
    extra_body: Mapping[str, Any] | NotGiven = NOT_GIVEN,
    api: Literal["chat", "responses"] | NotGiven = NOT_GIVEN,
    background: bool = False,
    tags: Mapping[str, str] | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    **unknown: Never,
) -> Completion[ParsedT] | BackgroundResponse[ParsedT]:
    """Generate a completion with the default client: `Client.complete`, same arguments.

    Raises:
        InvalidRequestError: An argument `Client.complete` does not take (the message names the fix), or
            a wrong one.
        ComputeKitError: As `Client.complete`.
    """
    _refuse(unknown, "complete")
    return default_client().complete(
        model, prompt, messages=messages, max_tokens=max_tokens, temperature=temperature, top_p=top_p,
        stop=stop, tools=tools, tool_choice=tool_choice, response_format=response_format, seed=seed,
        service_tier=service_tier, user=user, extra_body=extra_body, api=api, background=background, tags=tags,
        base_url=base_url, api_key=api_key,
    )


def stream(
    model: ModelSpec,
    prompt: str | NotGiven = NOT_GIVEN,
    *,
    messages: Messages | NotGiven = NOT_GIVEN,
    max_tokens: int | NotGiven = NOT_GIVEN,
    temperature: float | NotGiven = NOT_GIVEN,
    top_p: float | NotGiven = NOT_GIVEN,
    stop: str | list[str] | NotGiven = NOT_GIVEN,
    tools: list[dict[str, Any]] | NotGiven = NOT_GIVEN,
    tool_choice: Any = NOT_GIVEN,
    response_format: type[ParsedT] | Mapping[str, Any] | NotGiven = NOT_GIVEN,
    seed: int | NotGiven = NOT_GIVEN,
    service_tier: str | NotGiven = NOT_GIVEN,
    user: str | NotGiven = NOT_GIVEN,
    extra_body: Mapping[str, Any] | NotGiven = NOT_GIVEN,
    api: Literal["chat", "responses"] | NotGiven = NOT_GIVEN,
    tags: Mapping[str, str] | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    **unknown: Never,
) -> Stream[ParsedT]:
    """Stream a completion with the default client: `Client.stream`, same arguments.

    Raises:
        InvalidRequestError: An argument `Client.stream` does not take (the message names the fix), or
            a wrong one.
        ComputeKitError: As `Client.stream`.
    """
    _refuse(unknown, "stream")
    return default_client().stream(
        model, prompt, messages=messages, max_tokens=max_tokens, temperature=temperature, top_p=top_p,
        stop=stop, tools=tools, tool_choice=tool_choice, response_format=response_format, seed=seed,
        service_tier=service_tier, user=user, extra_body=extra_body, api=api, tags=tags, base_url=base_url,
        api_key=api_key,
    )


def embed(
    model: ModelSpec,
    inputs: str | Sequence[str],
    *,
    dimensions: int | NotGiven = NOT_GIVEN,
    extra_body: Mapping[str, Any] | NotGiven = NOT_GIVEN,
    tags: Mapping[str, str] | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    **unknown: Never,
) -> Embeddings:
    """Embed texts with the default client: `Client.embed`, same arguments.

    Raises:
        InvalidRequestError: An argument `Client.embed` does not take (the message names the fix), or
            a wrong one.
        ComputeKitError: As `Client.embed`.
    """
    _refuse(unknown, "embed")
    return default_client().embed(
        model, inputs, dimensions=dimensions, extra_body=extra_body, tags=tags, base_url=base_url,
        api_key=api_key,
    )


def rerank(
    model: ModelSpec,
    query: str,
    documents: Sequence[str],
    *,
    top_n: int | NotGiven = NOT_GIVEN,
    extra_body: Mapping[str, Any] | NotGiven = NOT_GIVEN,
    tags: Mapping[str, str] | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    **unknown: Never,
) -> Reranking:
    """Rerank documents against a query with the default client: `Client.rerank`, same arguments.

    Raises:
        InvalidRequestError: An argument `Client.rerank` does not take (the message names the fix), or
            a wrong one.
        ComputeKitError: As `Client.rerank`.
    """
    _refuse(unknown, "rerank")
    return default_client().rerank(
        model, query, documents, top_n=top_n, extra_body=extra_body, tags=tags, base_url=base_url,
        api_key=api_key,
    )


def predict(
    model: ModelSpec,
    input: Mapping[str, Any],
    *,
    wait: bool = True,
    timeout: float | None = None,
    poll_interval: float | None = None,
    hardware: str | None = None,
    webhook: str | None = None,
    cancel_on_timeout: bool = True,
    validate: bool = True,
    progress: bool | Console = False,
    extra_body: Mapping[str, Any] | NotGiven = NOT_GIVEN,
    tags: Mapping[str, str] | None = None,
    **unknown: Never,
) -> Prediction:
    """Run a model on a serverless GPU host with the default client: `Client.predict`, same arguments.

    Raises:
        InvalidRequestError: An argument `Client.predict` does not take (the message names the fix), or
            a wrong one.
        ComputeKitError: As `Client.predict`.
    """
    _refuse(unknown, "predict")
    return default_client().predict(
        model, input, wait=wait, timeout=timeout, poll_interval=poll_interval, hardware=hardware,
        webhook=webhook, cancel_on_timeout=cancel_on_timeout, validate=validate, progress=progress,
        extra_body=extra_body, tags=tags,
    )


def finetune(
    model: str,
    *,
    training_file: Any,
    validation_file: Any = None,
    epochs: int | None = None,
    hyperparameters: Mapping[str, Any] | None = None,
    suffix: str | None = None,
    method: str = "supervised",
    destination: str | None = None,
    dry_run: bool = False,
    wait: bool = False,
    timeout: float | None = None,
    poll_interval: float | None = None,
    progress: bool = False,
    extra_body: Mapping[str, Any] | NotGiven = NOT_GIVEN,
    tags: Mapping[str, str] | None = None,
    **unknown: Never,
) -> FineTuneJob:
    """Launch (or estimate) a fine-tuning job with the default client: `Client.finetune`, same arguments.

    Raises:
        InvalidRequestError: An argument `Client.finetune` does not take (the message names the fix), or
            a wrong one.
        ComputeKitError: As `Client.finetune`.
    """
    _refuse(unknown, "finetune")
    return default_client().finetune(
        model, training_file=training_file, validation_file=validation_file, epochs=epochs,
        hyperparameters=hyperparameters, suffix=suffix, method=method, destination=destination, dry_run=dry_run,
        wait=wait, timeout=timeout, poll_interval=poll_interval, progress=progress, extra_body=extra_body,
        tags=tags,
    )


@overload
async def acomplete(
    model: ModelSpec,
    prompt: str | NotGiven = ...,
    *,
    response_format: type[ParsedT] | Mapping[str, Any] | NotGiven = ...,
    background: Literal[False] = ...,
    **options: Unpack[CompleteOptions],
) -> Completion[ParsedT]: ...


@overload
async def acomplete(
    model: ModelSpec,
    prompt: str | NotGiven = ...,
    *,
    response_format: type[ParsedT] | Mapping[str, Any] | NotGiven = ...,
    background: Literal[True],
    **options: Unpack[CompleteOptions],
) -> BackgroundResponse[ParsedT]: ...


@overload
async def acomplete(
    model: ModelSpec,
    prompt: str | NotGiven = ...,
    *,
    response_format: type[ParsedT] | Mapping[str, Any] | NotGiven = ...,
    background: bool,
    **options: Unpack[CompleteOptions],
) -> Completion[ParsedT] | BackgroundResponse[ParsedT]: ...


async def acomplete(
    model: ModelSpec,
    prompt: str | NotGiven = NOT_GIVEN,
    *,
    messages: Messages | NotGiven = NOT_GIVEN,
    max_tokens: int | NotGiven = NOT_GIVEN,
    temperature: float | NotGiven = NOT_GIVEN,
    top_p: float | NotGiven = NOT_GIVEN,
    stop: str | list[str] | NotGiven = NOT_GIVEN,
    tools: list[dict[str, Any]] | NotGiven = NOT_GIVEN,
    tool_choice: Any = NOT_GIVEN,
    response_format: type[ParsedT] | Mapping[str, Any] | NotGiven = NOT_GIVEN,
    seed: int | NotGiven = NOT_GIVEN,
    service_tier: str | NotGiven = NOT_GIVEN,
    user: str | NotGiven = NOT_GIVEN,
    extra_body: Mapping[str, Any] | NotGiven = NOT_GIVEN,
    api: Literal["chat", "responses"] | NotGiven = NOT_GIVEN,
    background: bool = False,
    tags: Mapping[str, str] | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    **unknown: Never,
) -> Completion[ParsedT] | BackgroundResponse[ParsedT]:
    """Generate a completion with the default async client: `AsyncClient.complete`, same arguments.

    Raises:
        InvalidRequestError: An argument `AsyncClient.complete` does not take (the message names the fix), or
            a wrong one.
        ComputeKitError: As `AsyncClient.complete`.
    """
    _refuse(unknown, "complete")
    return await default_async_client().complete(
        model, prompt, messages=messages, max_tokens=max_tokens, temperature=temperature, top_p=top_p,
        stop=stop, tools=tools, tool_choice=tool_choice, response_format=response_format, seed=seed,
        service_tier=service_tier, user=user, extra_body=extra_body, api=api, background=background, tags=tags,
        base_url=base_url, api_key=api_key,
    )


def astream(
    model: ModelSpec,
    prompt: str | NotGiven = NOT_GIVEN,
    *,
    messages: Messages | NotGiven = NOT_GIVEN,
    max_tokens: int | NotGiven = NOT_GIVEN,
    temperature: float | NotGiven = NOT_GIVEN,
    top_p: float | NotGiven = NOT_GIVEN,
    stop: str | list[str] | NotGiven = NOT_GIVEN,
    tools: list[dict[str, Any]] | NotGiven = NOT_GIVEN,
    tool_choice: Any = NOT_GIVEN,
    response_format: type[ParsedT] | Mapping[str, Any] | NotGiven = NOT_GIVEN,
    seed: int | NotGiven = NOT_GIVEN,
    service_tier: str | NotGiven = NOT_GIVEN,
    user: str | NotGiven = NOT_GIVEN,
    extra_body: Mapping[str, Any] | NotGiven = NOT_GIVEN,
    api: Literal["chat", "responses"] | NotGiven = NOT_GIVEN,
    tags: Mapping[str, str] | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    **unknown: Never,
) -> AsyncStream[ParsedT]:
    """Stream a completion with the default async client: `AsyncClient.stream`, same arguments.

    Raises:
        InvalidRequestError: An argument `AsyncClient.stream` does not take (the message names the fix), or
            a wrong one.
        ComputeKitError: As `AsyncClient.stream`.
    """
    _refuse(unknown, "stream")
    return default_async_client().stream(
        model, prompt, messages=messages, max_tokens=max_tokens, temperature=temperature, top_p=top_p,
        stop=stop, tools=tools, tool_choice=tool_choice, response_format=response_format, seed=seed,
        service_tier=service_tier, user=user, extra_body=extra_body, api=api, tags=tags, base_url=base_url,
        api_key=api_key,
    )


async def aembed(
    model: ModelSpec,
    inputs: str | Sequence[str],
    *,
    dimensions: int | NotGiven = NOT_GIVEN,
    extra_body: Mapping[str, Any] | NotGiven = NOT_GIVEN,
    tags: Mapping[str, str] | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    **unknown: Never,
) -> Embeddings:
    """Embed texts with the default async client: `AsyncClient.embed`, same arguments.

    Raises:
        InvalidRequestError: An argument `AsyncClient.embed` does not take (the message names the fix), or
            a wrong one.
        ComputeKitError: As `AsyncClient.embed`.
    """
    _refuse(unknown, "embed")
    return await default_async_client().embed(
        model, inputs, dimensions=dimensions, extra_body=extra_body, tags=tags, base_url=base_url,
        api_key=api_key,
    )


async def arerank(
    model: ModelSpec,
    query: str,
    documents: Sequence[str],
    *,
    top_n: int | NotGiven = NOT_GIVEN,
    extra_body: Mapping[str, Any] | NotGiven = NOT_GIVEN,
    tags: Mapping[str, str] | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    **unknown: Never,
) -> Reranking:
    """Rerank documents against a query with the default async client: `AsyncClient.rerank`, same arguments.

    Raises:
        InvalidRequestError: An argument `AsyncClient.rerank` does not take (the message names the fix), or
            a wrong one.
        ComputeKitError: As `AsyncClient.rerank`.
    """
    _refuse(unknown, "rerank")
    return await default_async_client().rerank(
        model, query, documents, top_n=top_n, extra_body=extra_body, tags=tags, base_url=base_url,
        api_key=api_key,
    )


async def apredict(
    model: ModelSpec,
    input: Mapping[str, Any],
    *,
    wait: bool = True,
    timeout: float | None = None,
    poll_interval: float | None = None,
    hardware: str | None = None,
    webhook: str | None = None,
    cancel_on_timeout: bool = True,
    validate: bool = True,
    progress: bool | Console = False,
    extra_body: Mapping[str, Any] | NotGiven = NOT_GIVEN,
    tags: Mapping[str, str] | None = None,
    **unknown: Never,
) -> Prediction:
    """Run a model on a serverless GPU host with the default async client: `AsyncClient.predict`, same arguments.

    Raises:
        InvalidRequestError: An argument `AsyncClient.predict` does not take (the message names the fix), or
            a wrong one.
        ComputeKitError: As `AsyncClient.predict`.
    """
    _refuse(unknown, "predict")
    return await default_async_client().predict(
        model, input, wait=wait, timeout=timeout, poll_interval=poll_interval, hardware=hardware,
        webhook=webhook, cancel_on_timeout=cancel_on_timeout, validate=validate, progress=progress,
        extra_body=extra_body, tags=tags,
    )


def batch(model: str, requests: Any, *, tags: Mapping[str, str] | None = None, estimate_only: bool = False,
          **unknown: Never) -> BatchJob:
    """Submit (or estimate) a batch with the default client: `Client.batch`, same arguments.

    Raises:
        InvalidRequestError: An argument `Client.batch` does not take (the message names the fix), or a wrong one.
        ComputeKitError: As `Client.batch`.
    """
    _refuse(unknown, "batch")
    return default_client().batch(model, requests, tags=tags, estimate_only=estimate_only)


async def abatch(model: str, requests: Any, *, tags: Mapping[str, str] | None = None, estimate_only: bool = False,
                 **unknown: Never) -> BatchJob:
    """Submit (or estimate) a batch with the default async client: `AsyncClient.batch`, same arguments.

    Raises:
        InvalidRequestError: An argument `AsyncClient.batch` does not take (the message names the fix), or a
            wrong one.
        ComputeKitError: As `AsyncClient.batch`.
    """
    _refuse(unknown, "batch")
    return await default_async_client().batch(model, requests, tags=tags, estimate_only=estimate_only)


async def afinetune(
    model: str,
    *,
    training_file: Any,
    validation_file: Any = None,
    epochs: int | None = None,
    hyperparameters: Mapping[str, Any] | None = None,
    suffix: str | None = None,
    method: str = "supervised",
    destination: str | None = None,
    dry_run: bool = False,
    wait: bool = False,
    timeout: float | None = None,
    poll_interval: float | None = None,
    progress: bool = False,
    extra_body: Mapping[str, Any] | NotGiven = NOT_GIVEN,
    tags: Mapping[str, str] | None = None,
    **unknown: Never,
) -> FineTuneJob:
    """Launch (or estimate) a fine-tuning job with the default async client: `AsyncClient.finetune`, same arguments.

    Raises:
        InvalidRequestError: An argument `AsyncClient.finetune` does not take (the message names the fix), or
            a wrong one.
        ComputeKitError: As `AsyncClient.finetune`.
    """
    _refuse(unknown, "finetune")
    return await default_async_client().finetune(
        model, training_file=training_file, validation_file=validation_file, epochs=epochs,
        hyperparameters=hyperparameters, suffix=suffix, method=method, destination=destination, dry_run=dry_run,
        wait=wait, timeout=timeout, poll_interval=poll_interval, progress=progress, extra_body=extra_body,
        tags=tags,
    )
