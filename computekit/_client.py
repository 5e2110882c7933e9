"""``Client`` and ``AsyncClient``: the same methods, sync and async, over one pure core.

A verb turns its arguments into a plan (:mod:`computekit._plans`) and hands it to the client's attempt driver
(:mod:`computekit._driver`: written once per I/O flavour), which reserves, sends, parses, retries, falls back and
records. Streams are in :mod:`computekit._streaming`; the prediction and fine-tuning lifecycles are
``client.predictions`` (:mod:`computekit._predictions`), ``client.finetunes``
(:mod:`computekit._finetune_client`) and ``client.batches`` (:mod:`computekit._batch_client`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Never, Unpack, overload

from ._arguments import refuse
from ._background import BackgroundResponse
from ._background_client import AsyncBackgroundResponses, BackgroundResponses
from ._batch_client import AsyncBatches, AsyncBatching, Batches, Batching
from ._budget import BudgetStatus
from ._constants import NOT_GIVEN, NotGiven
from ._core import Core
from ._driver import AsyncDriver, SyncDriver
from ._finetune_client import AsyncFineTunes, AsyncFineTuning, FineTunes, FineTuning
from ._plans import (
    CompleteOptions,
    Messages,
    ModelSpec,
    background_plan,
    complete_options,
    complete_plan,
    embed_plan,
    rerank_plan,
)
from ._predictions import AsyncPredicting, AsyncPredictions, Predicting, Predictions
from ._retry import RetryPolicy
from ._streaming import AsyncPredictionStream, AsyncStream, PredictionStream, Stream, _StreamState
from ._transport import async_transport, sync_transport
from ._types import Completion, Embeddings, ParsedT, Reranking
from .ledger import Ledger
from .routing import Router

if TYPE_CHECKING:
    pass

__all__ = ["AsyncClient", "AsyncPredictionStream", "AsyncStream", "Client", "PredictionStream", "Stream"]


class _BaseClient:
    def __init__(
        self,
        config: str | os.PathLike[str] | Mapping[str, Any] | NotGiven | None = NOT_GIVEN,
        *,
        ledger: Ledger | str | Mapping[str, Any] | None = None,
        retry_policy: RetryPolicy | None = None,
        router: Router | None = None,
        **settings: Any,
    ) -> None:
        self._core = Core(config, ledger=ledger, retry_policy=retry_policy, router=router, **settings)

    @property
    def ledger(self) -> Ledger:
        """The cost ledger: every attempt of every call made through this client's settings (opened on first use).

        Raises:
            LedgerError: Its store cannot be opened (a SQLite file locked past its busy timeout, unreadable ...).
            ConfigError: Its URL cannot be used (a PostgreSQL server that cannot be reached, psycopg missing).
        """
        return self._core.ledger

    def budget_status(self) -> dict[str, BudgetStatus]:
        """Where each configured budget stands in its current period, by name: ``limit``, ``period``, ``spent``,
        ``reserved`` (calls in flight, fine-tuning jobs still running) and ``remaining``. Empty without budgets.

        Returns:
            A :class:`BudgetStatus` per budget name (``"default"`` for ``[budget]``).

        Raises:
            ConfigError: The ledger cannot enforce budgets.
            LedgerError: The ledger's store failed (it is locked past its busy timeout, unreachable ...): its own
                error is the cause.
        """
        return self._core.budgets.status()

    @property
    def settings(self) -> Any:
        """The validated settings (keys shown masked)."""
        return self._core.settings

    def __repr__(self) -> str:
        providers = sorted(self._core.settings.providers)
        return f"{type(self).__name__}(providers={providers}, ledger={self._core._ledger!r})"


class Client(_BaseClient, Predicting, FineTuning, Batching):
    """A computekit client: configuration, pooled connections, the retry loop and the ledger.

    Args:
        config: Path to a ``computekit.toml``, a mapping of the same shape, ``None`` for no file; not given:
            ``$COMPUTEKIT_CONFIG``, else ``./computekit.toml`` when present.
        ledger: A ledger object to use instead of the configured one.
        retry_policy: A retry policy (tests inject one whose sleep does not sleep).
        router: Routing state (cooldowns, latency) with an injectable clock; one per client by default.
        **settings: Settings shaped like the file (``providers={...}``, ``retry={...}``, ``ledger="none"``),
            merged over it.

    Raises:
        ConfigError: The configuration is invalid; the message names the key.
    """

    def __init__(
        self,
        config: str | os.PathLike[str] | Mapping[str, Any] | NotGiven | None = NOT_GIVEN,
        *,
        ledger: Ledger | str | Mapping[str, Any] | None = None,
        retry_policy: RetryPolicy | None = None,
        router: Router | None = None,
        http_client: Any = None,
        **settings: Any,
    ) -> None:
        super().__init__(config, ledger=ledger, retry_policy=retry_policy, router=router, **settings)
        self._transport = sync_transport(self._core.settings.timeout, http_client)
        self._driver = SyncDriver(self._core, self._transport)
        self.predictions = Predictions(self._core, self._driver)
        """The lifecycle of predictions: ``client.predictions.wait(p)``, ``refresh``, ``cancel``, ``stream``."""
        self.responses = BackgroundResponses(self._core, self._driver, self)
        """Background responses: ``client.responses.wait(h)``, ``refresh``, ``cancel``, ``retrieve``."""
        self.finetunes = FineTunes(self._core, self._driver, self)
        """The lifecycle of fine-tuning jobs: ``client.finetunes.wait(job)``, ``refresh``, ``cancel``, ``events``,
        ``checkpoints``, ``attach``."""
        self.batches = Batches(self._core, self._driver, self)
        """The lifecycle of batches: ``client.batches.wait(job)``, ``refresh``, ``cancel``, ``results``,
        ``retrieve``."""

    @overload
    def complete(
        self,
        model: ModelSpec,
        prompt: str | NotGiven = ...,
        *,
        response_format: type[ParsedT] | Mapping[str, Any] | NotGiven = ...,
        background: Literal[False] = ...,
        **options: Unpack[CompleteOptions],
    ) -> Completion[ParsedT]: ...

    @overload
    def complete(
        self,
        model: ModelSpec,
        prompt: str | NotGiven = ...,
        *,
        response_format: type[ParsedT] | Mapping[str, Any] | NotGiven = ...,
        background: Literal[True],
        **options: Unpack[CompleteOptions],
    ) -> BackgroundResponse[ParsedT]: ...

    @overload
    def complete(
        self,
        model: ModelSpec,
        prompt: str | NotGiven = ...,
        *,
        response_format: type[ParsedT] | Mapping[str, Any] | NotGiven = ...,
        background: bool,
        **options: Unpack[CompleteOptions],
    ) -> Completion[ParsedT] | BackgroundResponse[ParsedT]: ...

    def complete(
        self,
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
        """Generate a completion.

        Args:
            model: ``"provider:model"``, a list of them (tried in order), or a route name from the config.
            prompt: A string: sent as one user message (after ``messages``, when both are given).
            messages: The conversation: dicts or :class:`Message` objects.
            max_tokens: Upper bound on generated tokens.
            temperature: Sampling temperature.
            top_p: Nucleus sampling.
            stop: Stop sequence(s).
            tools: Tool (function) definitions, in OpenAI's shape or ``{"name", "description", "parameters"}``.
            tool_choice: ``"auto"``, ``"none"``, ``"required"`` or a specific tool.
            response_format: A type (a pydantic model, a dataclass, ``list[int]`` ...: the answer is validated
                into ``result.parsed``, typed), or a dict: ``{"type": "json_object"}`` or a JSON schema.
            seed: Sampling seed, where supported.
            service_tier: The provider's service tier (it changes the price; the result reports the tier used).
            user: An end-user id for the provider's abuse monitoring.
            extra_body: Provider-specific body fields, sent as they are.
            api: The wire format, where a provider has two: ``"chat"`` or ``"responses"`` (OpenAI's Responses
                API). Default: the provider's ``api`` setting (models served only on Responses always use it).
            background: Run it in the provider's background (the Responses API): the call returns a
                :class:`BackgroundResponse` at once, to ``wait()`` for, ``cancel()`` or follow from another process
                (``client.responses``); priced and recorded once, when it ends. Refused before any request on a
                provider without background responses, and with ``api="chat"``.
            tags: Labels stored with every attempt in the ledger.
            base_url: Send this call to another base URL (a configured key goes only to its own host).
            api_key: A key for this call only.

        Returns:
            The completion, with usage, cost and every attempt (with ``background=True``: its handle).

        Raises:
            InvalidRequestError: The arguments are wrong (nothing was sent).
            ConfigError: The provider is unknown or has no key (nothing was sent).
            UnsupportedCapabilityError: The provider cannot do this (nothing was sent).
            StructuredOutputError: ``response_format`` is a type and the model refused, or its answer does not
                validate (billed: the error carries the cost and the raw text).
            BudgetExceededError: A budget refused every target's worst case (nothing was sent).
            LedgerError: The ledger's store failed making a budget's reservation (nothing was sent).
            ProviderError: The provider failed after retries; a subclass says how.
        """
        if unknown:
            refuse(unknown, self.complete)
        opts = complete_options(max_tokens, temperature, top_p, stop, tools, tool_choice, response_format, seed,
                                 service_tier, user, extra_body, api)
        if background:
            plan = background_plan(self._core, model, prompt, messages, opts, tags, base_url, api_key)
            return self.responses.submit(plan, opts.get("output"))
        result: Completion[ParsedT] = self._driver.run(
            complete_plan(self._core, model, prompt, messages, opts, tags, base_url, api_key)
        )
        return result

    def stream(
        self,
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
        """Stream a completion: the same arguments as :meth:`complete`; nothing is sent until you iterate.

        Returns:
            A :class:`Stream`; its ``result`` (usage and cost included) is ready once it is exhausted.

        Raises:
            InvalidRequestError: The arguments are wrong (nothing was sent).
            ConfigError: The provider is unknown or has no key (nothing was sent).
            UnsupportedCapabilityError: The provider cannot stream (nothing was sent).
            BudgetExceededError: A budget refused every target's worst case (nothing was sent).
            LedgerError: The ledger's store failed making a budget's reservation (nothing was sent).
            ProviderError: While iterating: the provider failed, before or during the stream.
        """
        if unknown:
            refuse(unknown, self.stream)
        opts = complete_options(max_tokens, temperature, top_p, stop, tools, tool_choice, response_format, seed,
                                 service_tier, user, extra_body, api)
        plan = complete_plan(self._core, model, prompt, messages, opts, tags, base_url, api_key, stream=True)
        return Stream(self._driver, _StreamState(self._core, plan))

    def embed(
        self,
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
        """Embed one string or a list of strings.

        Returns:
            One vector per input, in order, with usage and cost.

        Raises:
            InvalidRequestError: The inputs are not strings (nothing was sent).
            UnsupportedCapabilityError: The provider has no embeddings API (nothing was sent).
            BudgetExceededError: A budget refused every target's worst case (nothing was sent).
            LedgerError: The ledger's store failed making a budget's reservation (nothing was sent).
            ProviderError: The provider failed after retries.
        """
        if unknown:
            refuse(unknown, self.embed)
        result: Embeddings = self._driver.run(
            embed_plan(self._core, model, inputs, dimensions, extra_body, tags, base_url, api_key)
        )
        return result

    def rerank(
        self,
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
        """Order ``documents`` by relevance to ``query`` (Cohere ``rerank-*`` models).

        Args:
            model: ``"provider:model"``, a list of them (tried in order), or a route name.
            query: What the documents are ranked against.
            documents: The candidate texts.
            top_n: Return only the best ``top_n`` hits.
            extra_body: Provider-specific body fields, sent as they are.
            tags: Labels stored with every attempt in the ledger.
            base_url: Send this call to another base URL (a configured key goes only to its own origin).
            api_key: A key for this call only.

        Returns:
            Hits, most relevant first, with the billed search units and their cost (``None`` unless a price
            for the model's search units is known, e.g. from ``[prices]``).

        Raises:
            InvalidRequestError: The query or documents are not strings (nothing was sent).
            UnsupportedCapabilityError: The provider has no rerank API (nothing was sent).
            BudgetExceededError: A budget refused every target's worst case (nothing was sent).
            LedgerError: The ledger's store failed making a budget's reservation (nothing was sent).
            ProviderError: The provider failed after retries.
        """
        if unknown:
            refuse(unknown, self.rerank)
        result: Reranking = self._driver.run(
            rerank_plan(self._core, model, query, documents, top_n, extra_body, tags, base_url, api_key)
        )
        return result

    def close(self) -> None:
        """Close pooled connections, write what the ledger still holds, and close the ledger if the client opened
        it (from its settings; a ``Ledger`` passed in is left open): its writer thread and its connection end. A
        later use of the client, or of ``client.ledger``, opens it again."""
        self._transport.close()
        self._core.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient(_BaseClient, AsyncPredicting, AsyncFineTuning, AsyncBatching):
    """The async twin of :class:`Client`: the same constructor and the same methods, awaited."""

    def __init__(
        self,
        config: str | os.PathLike[str] | Mapping[str, Any] | NotGiven | None = NOT_GIVEN,
        *,
        ledger: Ledger | str | Mapping[str, Any] | None = None,
        retry_policy: RetryPolicy | None = None,
        router: Router | None = None,
        http_client: Any = None,
        **settings: Any,
    ) -> None:
        super().__init__(config, ledger=ledger, retry_policy=retry_policy, router=router, **settings)
        self._transport = async_transport(self._core.settings.timeout, http_client)
        self._driver = AsyncDriver(self._core, self._transport)
        self.predictions = AsyncPredictions(self._core, self._driver)
        """The lifecycle of predictions, awaited: ``await client.predictions.wait(p)`` ..."""
        self.responses = AsyncBackgroundResponses(self._core, self._driver, self)
        """Background responses, awaited: ``await client.responses.wait(h)`` ..."""
        self.finetunes = AsyncFineTunes(self._core, self._driver, self)
        """The lifecycle of fine-tuning jobs, awaited: ``await client.finetunes.wait(job)`` ..."""
        self.batches = AsyncBatches(self._core, self._driver, self)
        """The lifecycle of batches, awaited: ``await client.batches.wait(job)`` ..."""

    @overload
    async def complete(
        self,
        model: ModelSpec,
        prompt: str | NotGiven = ...,
        *,
        response_format: type[ParsedT] | Mapping[str, Any] | NotGiven = ...,
        background: Literal[False] = ...,
        **options: Unpack[CompleteOptions],
    ) -> Completion[ParsedT]: ...

    @overload
    async def complete(
        self,
        model: ModelSpec,
        prompt: str | NotGiven = ...,
        *,
        response_format: type[ParsedT] | Mapping[str, Any] | NotGiven = ...,
        background: Literal[True],
        **options: Unpack[CompleteOptions],
    ) -> BackgroundResponse[ParsedT]: ...

    @overload
    async def complete(
        self,
        model: ModelSpec,
        prompt: str | NotGiven = ...,
        *,
        response_format: type[ParsedT] | Mapping[str, Any] | NotGiven = ...,
        background: bool,
        **options: Unpack[CompleteOptions],
    ) -> Completion[ParsedT] | BackgroundResponse[ParsedT]: ...

    async def complete(
        self,
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
        """Generate a completion (see :meth:`Client.complete`).

        Raises:
            InvalidRequestError: The arguments are wrong (nothing was sent).
            ConfigError: The provider is unknown or has no key (nothing was sent).
            UnsupportedCapabilityError: The provider cannot do this (nothing was sent).
            StructuredOutputError: ``response_format`` is a type and the model refused, or its answer does not
                validate (billed: the error carries the cost and the raw text).
            BudgetExceededError: A budget refused every target's worst case (nothing was sent).
            LedgerError: The ledger's store failed making a budget's reservation (nothing was sent).
            ProviderError: The provider failed after retries; a subclass says how.
        """
        if unknown:
            refuse(unknown, self.complete)
        opts = complete_options(max_tokens, temperature, top_p, stop, tools, tool_choice, response_format, seed,
                                 service_tier, user, extra_body, api)
        if background:
            plan = background_plan(self._core, model, prompt, messages, opts, tags, base_url, api_key)
            return await self.responses.submit(plan, opts.get("output"))
        result: Completion[ParsedT] = await self._driver.run(
            complete_plan(self._core, model, prompt, messages, opts, tags, base_url, api_key)
        )
        return result

    def stream(
        self,
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
        """Stream a completion (see :meth:`Client.stream`): ``async with client.stream(...) as s``.

        Raises:
            InvalidRequestError: The arguments are wrong (nothing was sent).
            ConfigError: The provider is unknown or has no key (nothing was sent).
            UnsupportedCapabilityError: The provider cannot stream (nothing was sent).
            BudgetExceededError: A budget refused every target's worst case (nothing was sent).
            LedgerError: The ledger's store failed making a budget's reservation (nothing was sent).
            ProviderError: While iterating: the provider failed, before or during the stream.
        """
        if unknown:
            refuse(unknown, self.stream)
        opts = complete_options(max_tokens, temperature, top_p, stop, tools, tool_choice, response_format, seed,
                                 service_tier, user, extra_body, api)
        plan = complete_plan(self._core, model, prompt, messages, opts, tags, base_url, api_key, stream=True)
        return AsyncStream(self._driver, _StreamState(self._core, plan))

    async def embed(
        self,
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
        """Embed one string or a list of strings (see :meth:`Client.embed`).

        Raises:
            InvalidRequestError: The inputs are not strings (nothing was sent).
            UnsupportedCapabilityError: The provider has no embeddings API (nothing was sent).
            BudgetExceededError: A budget refused every target's worst case (nothing was sent).
            LedgerError: The ledger's store failed making a budget's reservation (nothing was sent).
            ProviderError: The provider failed after retries.
        """
        if unknown:
            refuse(unknown, self.embed)
        result: Embeddings = await self._driver.run(
            embed_plan(self._core, model, inputs, dimensions, extra_body, tags, base_url, api_key)
        )
        return result

    async def rerank(
        self,
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
        """Order ``documents`` by relevance to ``query`` (Cohere ``rerank-*`` models).

        Args:
            model: ``"provider:model"``, a list of them (tried in order), or a route name.
            query: What the documents are ranked against.
            documents: The candidate texts.
            top_n: Return only the best ``top_n`` hits.
            extra_body: Provider-specific body fields, sent as they are.
            tags: Labels stored with every attempt in the ledger.
            base_url: Send this call to another base URL (a configured key goes only to its own origin).
            api_key: A key for this call only.

        Returns:
            Hits, most relevant first, with the billed search units and their cost (``None`` unless a price
            for the model's search units is known, e.g. from ``[prices]``).

        Raises:
            InvalidRequestError: The query or documents are not strings (nothing was sent).
            UnsupportedCapabilityError: The provider has no rerank API (nothing was sent).
            BudgetExceededError: A budget refused every target's worst case (nothing was sent).
            LedgerError: The ledger's store failed making a budget's reservation (nothing was sent).
            ProviderError: The provider failed after retries.
        """
        if unknown:
            refuse(unknown, self.rerank)
        result: Reranking = await self._driver.run(
            rerank_plan(self._core, model, query, documents, top_n, extra_body, tags, base_url, api_key)
        )
        return result

    async def aclose(self) -> None:
        """Close pooled connections, write what the ledger still holds, and close the ledger if the client opened
        it (see :meth:`Client.close`)."""
        await self._transport.close()
        self._core.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
