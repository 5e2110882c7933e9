"""The pure core shared by :class:`Client` and :class:`AsyncClient`: resolving targets, building requests,
finishing results (pricing, attempts) and writing the ledger. No network I/O happens here.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final, TypeVar

from pydantic import SecretStr

from . import _urls
from ._budget import BudgetStatus, Estimated, Reservation, budget_status, charges
from ._config import MAX_SECONDS, RouteConfig, Settings, adapter_options, load_settings
from ._constants import FINETUNE_RESERVATION_TTL_S, NOT_GIVEN, RESERVATION_TTL_S, NotGiven
from ._exceptions import (
    AllTargetsFailedError,
    APITimeoutError,
    BudgetExceededError,
    ConfigError,
    InvalidRequestError,
    NotFoundError,
    ProviderError,
    StructuredOutputError,
)
from ._otel import attempt_span, note_response
from ._retry import RetryPolicy
from ._targets import Target, split_model_id
from ._types import Attempt, Completion, Cost, Embeddings, FineTuneJob, Message, Prediction, Reranking, Result, Usage
from .adapters._base import (
    Adapter,
    CompleteRequest,
    EmbedRequest,
    HTTPRequest,
    ModelInfo,
    ProviderSettings,
    RerankRequest,
    StreamUpdate,
    env_key,
)
from .adapters._registry import adapter_class
from .ledger import Ledger, LedgerRow, open_ledger
from .pricing import PriceBook
from .routing import Action, Router

__all__ = ["ROW_TAPS", "Core", "Target", "ledger_call"]

_T = TypeVar("_T")

ROW_TAPS: list[Callable[[LedgerRow], None]] = []
"""Called with every ledger row as it is recorded, whichever client and ledger (``"none"`` included) wrote it:
how ``computekit.testing`` sums the spend of a test. Empty unless a test installs one."""

_PRICED_RESULTS = (Completion, Embeddings, Reranking, Prediction)
_ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
_MTOK = Decimal(1_000_000)




def _origin(url: str | None) -> tuple[str, str, int | None]:
    """Scheme, host and port, read as the transports read them: a key goes only to the exact origin it was
    configured for (an ambiguous URL raises :class:`~computekit._urls.UnsafeURLError`)."""
    return _urls.origin(url) if url else ("", "", None)


def normalise_messages(
    prompt: str | NotGiven | None, messages: Sequence[Message | Mapping[str, Any]] | NotGiven | None
) -> list[dict[str, Any]]:
    """A prompt and/or messages -> a list of plain message dicts.

    Raises:
        InvalidRequestError: Neither was given, or a message has no valid role.
    """
    out: list[dict[str, Any]] = []
    if messages is not NOT_GIVEN and messages is not None:
        if isinstance(messages, str | bytes) or not isinstance(messages, Sequence):
            raise InvalidRequestError("messages must be a list of messages (dicts or computekit.Message)")
        for i, m in enumerate(messages):
            if isinstance(m, Message):
                out.append(m.model_dump(exclude_none=True))
                continue
            if not isinstance(m, Mapping):
                raise InvalidRequestError(f"messages[{i}] must be a dict or computekit.Message, not {type(m).__name__}")
            role = m.get("role")
            if role not in _ROLES:
                raise InvalidRequestError(
                    f"messages[{i}] has role {role!r}; use one of {', '.join(sorted(_ROLES))}"
                )
            out.append(m if isinstance(m, dict) else dict(m))
    if prompt is not NOT_GIVEN and prompt is not None:
        if not isinstance(prompt, str):
            fix = ("for a conversation pass messages=[{'role': 'user', 'content': ...}, ...], or join the strings "
                   "into one prompt" if isinstance(prompt, list | tuple) else "pass the text as a string")
            raise InvalidRequestError(f"prompt must be a str, not {type(prompt).__name__}: {fix}")
        out.append({"role": "user", "content": prompt})
    if not out:
        raise InvalidRequestError("nothing to send: pass a prompt string or messages=[...]")
    return out


def flatten_prompt(messages: list[dict[str, Any]]) -> str:
    """Messages -> one prompt, for text-completion endpoints."""
    texts = []
    for m in messages:
        c = m.get("content")
        if isinstance(c, list):
            c = "".join(p.get("text", "") for p in c if isinstance(p, Mapping))
        if c:
            texts.append(str(c))
    return "\n\n".join(texts)


class Core:
    """Settings, adapters, prices, ledger and the bookkeeping of every attempt."""

    def __init__(
        self,
        config: str | os.PathLike[str] | Mapping[str, Any] | NotGiven | None = NOT_GIVEN,
        *,
        ledger: Ledger | str | Mapping[str, Any] | None = None,
        retry_policy: RetryPolicy | None = None,
        router: Router | None = None,
        **settings: Any,
    ) -> None:
        # ``ledger=`` is a Ledger object, or the setting itself ("sqlite:///...", "none", {"url": ...}).
        if ledger is not None and not isinstance(ledger, Ledger):
            settings["ledger"] = ledger
            ledger = None
        self.settings: Settings = load_settings(config, **settings)
        self.prices = PriceBook(self.settings.prices)
        self.retry = retry_policy or RetryPolicy(self.settings.retry)
        self.router = router or Router(self.settings.routing)
        self._ledger = ledger
        self._adapters: dict[str, Adapter] = {}
        self._lock = threading.Lock()
        self._model_info: dict[tuple[str, str], ModelInfo] = {}
        """What hosts published about models (input schemas, hardware), looked up once per client."""
        self.budgets = self.settings.active_budgets()
        # prediction id / finetune once_key -> its reservation, settled when the run or job ends
        self._held: dict[str, Reservation] = {}

    # ----------------------------------------------------------------------------------------- ledger

    @property
    def ledger(self) -> Ledger:
        """The cost ledger (opened on first use)."""
        if self._ledger is None:
            with self._lock:
                if self._ledger is None:
                    # Without a budget, rows are committed in batches by a writer thread, off the call path; a
                    # budget needs its reserve and settle done before and after each attempt.
                    conf = self.settings.ledger
                    self._ledger = open_ledger(conf.url, buffered=not self.budgets,
                                               flush_interval=conf.flush_interval,
                                               flush_on_sigterm=conf.flush_on_sigterm)
        return self._ledger

    # ----------------------------------------------------------------------------------------- budgets

    def reserve(self, target: Target, req: Any, tags: Mapping[str, str] | None,
                ttl_s: float = RESERVATION_TTL_S) -> Reservation | None:
        """Reserve an attempt's worst-case cost in every budget that covers it, before it is sent (``None``: no
        budget covers it). ``ttl_s``: how long it counts if it is never settled.

        Raises:
            BudgetExceededError: It does not fit in a budget, or its worst case is unknown (nothing was sent).
        """
        if not self.budgets:
            return None
        wanted = charges(self, self.budgets, target, req, tags, now())
        if not wanted:
            return None
        rid = self.ledger.reserve(wanted, now=now(), ttl_s=ttl_s)
        amounts = [c.amount for c in wanted if c.amount is not None]
        return Reservation(rid, max(amounts) if amounts else None)

    def budget_status(self) -> dict[str, BudgetStatus]:
        """Each configured budget's limit, spend, reservations and what is left, by name (read from the ledger).

        Raises:
            ConfigError: The ledger cannot enforce budgets.
        """
        if not self.budgets:
            return {}
        return budget_status(self.budgets, self.ledger, now())

    @property
    def ledger_blocks(self) -> bool:
        """Whether a reservation or its settlement waits on the network: under a budget, with a remote ledger
        (:attr:`Ledger.blocking_io`), or one not opened yet (opening it may connect). Without a budget rows are
        queued to the writer thread and never block."""
        if not self.budgets:
            return False
        opened = self._ledger
        return opened is None or opened.blocking_io

    def flush(self) -> None:
        """Write every row recorded so far (the ledger may batch them off the call path)."""
        if self._ledger is not None:
            self._ledger.flush()

    def release(self, reservation: Reservation | None) -> None:
        """Drop the reservation of an attempt that ended without a ledger row (canceled, or never sent)."""
        if reservation is not None:
            self.ledger.release(reservation.id)

    # ----------------------------------------------------------------------------------------- resolution

    def provider_settings(self, provider: str, *, base_url: str | None = None, api_key: str | None = None) -> tuple[
        type[Adapter], ProviderSettings
    ]:
        """The adapter class and resolved settings for ``provider``, with optional per-call overrides.

        A per-call ``base_url`` on another host than the configured one gets no configured key: only a key
        passed with it, so a key is never sent to a host it was not meant for.
        """
        conf = self.settings.providers.get(provider)
        cls = adapter_class(conf.adapter if conf and conf.adapter else provider)
        default_url, env_vars, _ = cls.defaults_for(provider)
        default_url = cls.env_base_url(provider) or default_url  # the vendor's own variable, below any config
        if conf and conf.api_key_env:
            env_vars = (conf.api_key_env,)
        configured_url = (conf.base_url if conf else None) or default_url
        key: SecretStr | None = conf.api_key if conf and conf.api_key else env_key(env_vars)
        url = configured_url
        if base_url is not None:
            url = base_url
            if _origin(base_url) != _origin(configured_url):
                key = None
        if api_key is not None:
            key = SecretStr(api_key)
        if not url:
            raise ConfigError(f"provider {provider!r} has no base_url: set [providers.{provider}] base_url")
        return cls, ProviderSettings(
            name=provider,
            base_url=url,
            api_key=key,
            timeout=(conf.timeout if conf and conf.timeout else None) or self.settings.timeout,
            headers=dict(conf.headers) if conf else {},
            idempotency_header=conf.idempotency_header if conf else None,
            key_env_vars=env_vars,
            max_body_bytes=self.settings.limits.body_bytes(),
            max_event_bytes=self.settings.limits.stream_event_bytes,
            options=conf.options if conf and conf.options else adapter_options(provider, cls, {}),
        )

    def adapter(self, provider: str, *, base_url: str | None = None, api_key: str | None = None) -> Adapter:
        """The adapter for ``provider`` (cached when no per-call override is given)."""
        if base_url is None and api_key is None:
            cached = self._adapters.get(provider)
            if cached is not None:
                return cached
        cls, ps = self.provider_settings(provider, base_url=base_url, api_key=api_key)
        adapter = cls(ps)
        if base_url is None and api_key is None:
            with self._lock:
                self._adapters[provider] = adapter
        return adapter

    def targets(
        self, model: str | Sequence[str], *, base_url: str | None = None, api_key: str | None = None
    ) -> list[Target]:
        """A model id, a list of them (fallback order) or a route name -> targets, as listed."""
        if isinstance(model, str):
            route = self.settings.routes.get(model)
            ids = route.targets if route is not None else [model]
        else:
            ids = list(check_model_list(model))
            if not ids:
                raise InvalidRequestError("the list of targets is empty")
        out = []
        for mid in ids:
            provider, name = split_model_id(mid if ":" in mid else self.resolve_bare(mid))
            out.append(Target(self.adapter(provider, base_url=base_url, api_key=api_key), name))
        return out

    def resolve_bare(self, model: str) -> str:
        """A bare model name (``"gpt-4o-mini"``) -> ``"provider:model"``: the one provider that serves it (by
        the price tables), preferring those set up (configured, or with a key in the environment).

        Raises:
            InvalidRequestError: No provider is known to serve it (the message suggests close names).
            ConfigError: Several do: the message lists them.
        """
        if not model:
            split_model_id(model)  # raises: not a model id
        from .adapters._registry import providers
        from .pricing._book import similar_models, tables_serving

        tables = set(tables_serving(model))
        serving = [p for p in providers() if adapter_class(p).table_for(p) in tables] if tables else []
        if not serving:
            close = list(dict.fromkeys(f"{p}:{m}" for p in providers()
                                       for m in similar_models(adapter_class(p).table_for(p), model, 2)))
            hint = f" (did you mean {', '.join(close[:3])}?)" if close else ""
            raise InvalidRequestError(
                f"{model!r} is not a model id and no provider is known to serve it{hint}: write 'provider:model' "
                "(e.g. 'openai:gpt-4o-mini'), or name a route defined under [routes] in computekit.toml"
            )
        ready = [p for p in serving if self._set_up(p)]
        for group in (ready, serving):
            if len(group) == 1:
                return f"{group[0]}:{model}"
        listed = ", ".join(f"'{p}:{model}'" for p in (ready or serving))
        raise ConfigError(f"{model!r} is served by several providers: write one of {listed}")

    def _set_up(self, provider: str) -> bool:
        """Whether ``provider`` is configured here, or has its key in the environment."""
        if provider in self.settings.providers:
            return True
        _, env_vars, requires_key = adapter_class(provider).defaults_for(provider)
        return requires_key and env_key(env_vars) is not None

    def route(self, model: str | Sequence[str]) -> RouteConfig | None:
        """The named route ``model`` refers to, if it is one."""
        return self.settings.routes.get(model) if isinstance(model, str) else None

    def estimate(self, target: Target, req: Any) -> Decimal | None:
        """A request's likely cost on ``target`` before sending it, for the ``cheapest`` strategy: prompt
        tokens estimated at four characters a token, plus ``max_tokens`` of output when given."""
        rates = self.prices.rates(target.adapter.price_ref(target.model))
        if rates is None:
            self.prices.warn_unknown(target.adapter.price_ref(target.model))
            return None
        messages = getattr(req, "messages", None) or []
        prompt_tokens = len(json.dumps(messages, default=str)) // 4 + len(getattr(req, "prompt", None) or "") // 4
        rate_in = rates.rate("input_mtok", prompt_tokens)
        rate_out = rates.rate("output_mtok", prompt_tokens)
        if rate_in is None:
            return None
        max_tokens = (target.adapter.output_limit(req) if isinstance(req, CompleteRequest) else None) or 0
        return (Decimal(prompt_tokens) * rate_in + Decimal(max_tokens) * (rate_out or Decimal(0))) / _MTOK

    def hardware(self, target: Target, asked: str | None) -> tuple[str | None, bool]:
        """The hardware a prediction runs on, and whether that is an assumption: ``hardware=``, else the model's
        entry in config, else what the host reported (a deployment's configuration), else the provider's
        configured default (an estimate) — never a guess."""
        if asked:
            return asked, False
        conf = self.settings.providers.get(target.provider)
        if conf is not None and target.model in conf.hardware:
            return conf.hardware[target.model], False
        info = self.model_info(target)
        if info is not None and info.hardware:
            return info.hardware, False
        if conf is not None and conf.default_hardware:
            return conf.default_hardware, True
        return None, False

    def needs_hardware(self, target: Target, asked: str | None) -> bool:
        """Whether the hardware must be asked of the host: neither ``hardware=`` nor config names it."""
        conf = self.settings.providers.get(target.provider)
        return not asked and not (conf is not None and target.model in conf.hardware)

    # ----------------------------------------------------------------------------------------- model lookups

    def model_info(self, target: Target) -> ModelInfo | None:
        """What the host published about ``target``'s model so far (cached per client)."""
        return self._model_info.get((target.provider, target.model))

    def model_info_request(self, target: Target, *, schema: bool, hardware: bool) -> HTTPRequest | None:
        """The next lookup the adapter needs for ``target`` (``None``: all known, or nothing published)."""
        return target.adapter.model_info_request(target.model, self.model_info(target), schema=schema,
                                                 hardware=hardware)

    def add_model_info(self, target: Target, info: ModelInfo) -> None:
        with self._lock:
            self._model_info[(target.provider, target.model)] = info

    def check_input(self, target: Target, value: Mapping[str, Any]) -> None:
        """Check ``value`` against the model's published input schema, when one was found.

        Raises:
            InputValidationError: The input does not match (nothing is sent).
        """
        info = self.model_info(target)
        if info is None or info.input_schema is None:
            return
        from ._schema import check_input

        check_input(info.input_schema, value, root=info.schema_root, provider=target.provider, model=target.model)

    def context_window(self, target: Target) -> int | None:
        """``target``'s context window in tokens, when the price tables know it."""
        return self.prices.context_window(target.adapter.price_ref(target.model))

    # ----------------------------------------------------------------------------------------- requests

    def complete_request(
        self,
        target: Target,
        messages: list[dict[str, Any]],
        options: dict[str, Any],
        *,
        stream: bool,
    ) -> CompleteRequest:
        adapter = target.adapter
        caps = adapter.capabilities
        if not caps.complete:
            raise adapter.unsupported("complete")
        if stream and not caps.stream:
            raise adapter.unsupported("stream")
        if options.get("tools") and not caps.tools:
            raise adapter.unsupported("tools")
        api = options.get("api")
        if api is not None and api not in adapter.wire_formats():
            if api not in ("chat", "responses"):
                raise InvalidRequestError(f"api must be 'chat' or 'responses', not {api!r}")
            raise adapter.unsupported(f"api={api!r}")
        req = CompleteRequest(model=target.model, messages=messages, stream=stream, **options)
        if adapter.uses_text_endpoint(target.model):
            req.prompt = flatten_prompt(messages)
            req.messages = []
        return req

    @staticmethod
    def embed_request(target: Target, inputs: str | Sequence[str], options: dict[str, Any]) -> EmbedRequest:
        if not target.adapter.capabilities.embed:
            raise target.adapter.unsupported("embed")
        items = [inputs] if isinstance(inputs, str) else list(inputs)
        if not items or not all(isinstance(i, str) for i in items):
            raise InvalidRequestError("embed() takes a string or a non-empty list of strings")
        return EmbedRequest(model=target.model, inputs=items, **options)

    @staticmethod
    def rerank_request(
        target: Target, query: str, documents: Sequence[str], options: dict[str, Any]
    ) -> RerankRequest:
        if not target.adapter.capabilities.rerank:
            raise target.adapter.unsupported("rerank")
        if not isinstance(query, str) or not query:
            raise InvalidRequestError("rerank() needs a non-empty query string")
        docs = list(documents) if not isinstance(documents, str) else None
        if not docs or not all(isinstance(d, str) for d in docs):
            raise InvalidRequestError("rerank() takes a non-empty list of document strings")
        return RerankRequest(model=target.model, query=query, documents=docs, **options)

    # ----------------------------------------------------------------------------------------- bookkeeping

    def price(self, target: Target, result: Result, when: dt.datetime) -> Cost:
        """The cost of a successful result, from what the provider reported."""
        if isinstance(result, Prediction):
            if not result.done:
                return Cost.unknown("the run has not finished: its cost is known when it ends")
            ref = target.adapter.price_ref(target.model, result)
            if result.usage.units and (result.usage.gpu_seconds is None or self.prices.prices_units(ref, result.usage)):
                # Billed per output or per token (images, credits, billable units, an official model's tokens):
                # priced per unit, by model, rather than by run time.
                return self.prices.token_cost(ref, result.usage, when)
            return self.prices.gpu_cost(target.provider, result.usage.hardware, result.usage.gpu_seconds,
                                        estimated=result._hardware_assumed or result._wall_time)
        if not result._usage_reported:
            return Cost.unknown(f"{target.provider} reported no usage for this call")
        ref = target.adapter.price_ref(target.model, result)
        parts = target.adapter.billed_parts(ref, result)  # e.g. passes run inside the call at other rates
        if parts:
            cost = self.prices.parts_cost([(p.kind, p.ref, p.usage) for p in parts], when)
        else:
            cost = self.prices.token_cost(ref, result.usage, when)
        billed = target.adapter.billed_total(result)  # what the provider said it charged, when it says so
        return cost if billed is None else self.prices.billed(cost, *billed)

    def succeeded(
        self,
        verb: str,
        target: Target,
        result: Result,
        started: dt.datetime,
        t0: float,
        attempts: list[Attempt],
        tags: Mapping[str, str] | None,
        first_byte_s: float | None = None,
        record: bool = True,
        reservation: Reservation | None = None,
    ) -> None:
        """Price ``result``, record its attempt (settling its budget reservation), give it the whole attempt
        list, and tell the router how long it took (``first_byte_s``, the time to the first chunk, for a
        stream)."""
        latency = time.perf_counter() - t0
        self.router.succeeded(target, latency if first_byte_s is None else first_byte_s)
        if isinstance(result, ModelInfo | StreamUpdate):  # a lookup or a stream poll: nothing billed, not an attempt
            return
        if not isinstance(result, _PRICED_RESULTS):
            # A fine-tuning step (an upload, the job, its events): not billed by itself; the job's cost is priced
            # and recorded once, when it ends (finetune_ended).
            attempts.append(Attempt(provider=target.provider, model=target.model, outcome="success",
                                    latency_s=latency, started_at=started))
            if isinstance(result, FineTuneJob) and record:
                result.attempts = attempts
            return
        if isinstance(result, Prediction) and result._wall_time and result.usage.gpu_seconds is None:
            # The host reports no run time: the measured time of the call stands in for it (an estimate).
            result.usage.gpu_seconds = Decimal(str(round(latency, 6)))
        result.request_id = target.adapter.redact(result.request_id)  # a header a server could abuse
        result.cost = self.price(target, result, started)
        attempt = Attempt(
            provider=target.provider,
            model=target.model,
            outcome="success",
            latency_s=latency,
            cost=result.cost,
            request_id=result.request_id,
            started_at=started,
        )
        note_response(attempt, result)  # for its OpenTelemetry span
        attempts.append(attempt)
        if record:  # a poll or cancel (not recorded) keeps the attempts of the call that started the run
            result.attempts = attempts
        # A prediction still running is recorded when it ends (once, with its GPU time and cost).
        # A prediction is recorded when it ends (once, with its GPU time and cost): see prediction_ended.
        if record and not isinstance(result, Prediction):
            self.record(verb, attempt, result.usage, tags, reservation)
        elif reservation is not None:
            if isinstance(result, Prediction) and result.id and not result._recorded:
                self._held[result.id] = reservation  # held until the run ends and is priced
            else:
                self.release(reservation)

    def failed(
        self,
        verb: str,
        target: Target,
        error: ProviderError,
        started: dt.datetime,
        t0: float,
        attempts: list[Attempt],
        tags: Mapping[str, str] | None,
        record: bool = True,
        reservation: Reservation | None = None,
    ) -> None:
        """Record a failed attempt (settling its reservation: an error of unknown cost keeps its worst case).
        An answer that failed validation was billed: it is priced from its usage."""
        billed = error.completion if isinstance(error, StructuredOutputError) else None
        if billed is not None:
            billed.cost = self.price(target, billed, started)
            billed.attempts = attempts
        attempt = Attempt(
            provider=target.provider,
            model=target.model,
            outcome="error",
            error=str(error),
            error_type=type(error).__name__,
            status=error.status,
            latency_s=time.perf_counter() - t0,
            cost=billed.cost if billed is not None else target.adapter.error_cost(error),
            request_id=error.request_id,
            started_at=started,
        )
        attempts.append(attempt)
        if record:
            self.record(verb, attempt, billed.usage if billed is not None else Usage(), tags, reservation)
        else:
            self.release(reservation)

    def canceled(
        self,
        verb: str,
        target: Target,
        usage: Usage | None,
        started: dt.datetime,
        t0: float,
        attempts: list[Attempt],
        tags: Mapping[str, str] | None,
        reservation: Reservation | None = None,
    ) -> None:
        """Record a stream the caller closed early: it was billed, but its usage (and so its cost) is unknown
        unless the provider already sent it."""
        cost = (
            self.prices.token_cost(target.adapter.price_ref(target.model), usage, started)
            if usage is not None
            else Cost.unknown("stream closed by the caller before the provider reported usage")
        )
        attempt = Attempt(
            provider=target.provider,
            model=target.model,
            outcome="canceled",
            error="stream closed by the caller before its end",
            latency_s=time.perf_counter() - t0,
            cost=cost,
            started_at=started,
        )
        attempts.append(attempt)
        self.record(verb, attempt, usage or Usage(), tags, reservation)

    def prediction_ended(self, target: Target, prediction: Prediction, tags: Mapping[str, str] | None) -> None:
        """Price a finished prediction from its reported GPU time and record it in the ledger, once."""
        if prediction._recorded:
            return
        prediction.cost = self.price(target, prediction, now())
        prediction._recorded = True
        # The attempt that started the run now gets its outcome and cost (polls are not billed attempts).
        attempt = prediction.attempts[-1] if prediction.attempts else Attempt(
            provider=target.provider, model=target.model, outcome="success", started_at=now()
        )
        if prediction.status != "succeeded":
            attempt.outcome = "error"
            attempt.error = f"prediction {prediction.status}: {prediction.error or ''}".strip()
            attempt.error_type = "PredictionFailedError" if prediction.status == "failed" else "PredictionCanceled"
        note_response(attempt, prediction)
        attempt.cost = prediction.cost
        attempt.request_id = attempt.request_id or prediction.id
        held = self._held.pop(prediction.id, None) if prediction.id else None
        self.record("predict", attempt, prediction.usage, tags, held)

    def finetune_estimate(self, model: str, training_file: Any, **options: Any) -> Cost:
        """What a ``finetune()`` call would cost, before anything is sent (pure: reads the training file, no HTTP):
        the estimate a budget reserves. ``options`` are ``finetune()``'s (``epochs``, ``method`` ...).

        Raises:
            InvalidRequestError: The arguments are wrong.
            TrainingDataError: The data is refused.
            UnsupportedCapabilityError: The provider has no fine-tuning API.
        """
        from ._finetune import prepare

        return prepare(self, model, training_file, **options).estimate

    def finetune_reserve(self, target: Target, estimate: Cost, tags: Mapping[str, str] | None) -> Reservation | None:
        """Reserve a fine-tuning job's estimate (``job.estimate``) in every budget that covers it, before anything
        is uploaded; an unknown estimate follows the budget's ``unknown_price``.

        Raises:
            BudgetExceededError: The estimate does not fit, or is unknown and a budget refuses that.
        """
        return self.reserve(target, Estimated(estimate.total), tags, ttl_s=FINETUNE_RESERVATION_TTL_S)

    def finetune_launched(self, job: FineTuneJob, reservation: Reservation | None) -> None:
        """Hold a launched job's reservation until its cost is recorded (:meth:`finetune_ended`); a launch that
        returned no job id has nothing to settle later, so its reservation is dropped."""
        if reservation is None:
            return
        if job.id is None:
            self.release(reservation)
            return
        self._held[_finetune_key(job.provider, job.id)] = reservation

    def finetune_ended(self, target: Target, job: FineTuneJob, tags: Mapping[str, str] | None) -> None:
        """Price a job that has ended from what the provider reported, and write it to the ledger once (keyed by
        provider and job id, so another process or a second ``wait()`` does not write it again)."""
        if job._recorded or not job.done or job.id is None:
            return
        from ._finetune import actual_cost

        hardware, assumed = self.hardware(target, None)
        job.cost = actual_cost(self.prices, target.adapter, job, hardware)
        if assumed and job.cost.total is not None:
            job.cost.estimated = True
        job._recorded = True
        bill = target.adapter.finetune_billing(job)
        # Dated when the job ended, which is when it is billed: a job that runs past midnight (UTC) counts in the
        # day, budget period and report it finished in, not the one it was created in.
        attempt = Attempt(provider=target.provider, model=job.base_model, outcome="success",
                          cost=job.cost, request_id=job.id, started_at=job.finished_at or now())
        if job.finished_at is not None and job.created_at is not None:
            attempt.latency_s = (job.finished_at - job.created_at).total_seconds()
        if job.status != "succeeded":
            attempt.outcome = "error"
            attempt.error = f"fine-tuning job {job.status}: {job.error or ''}".strip()
            attempt.error_type = "FineTuneFailedError" if job.status == "failed" else "FineTuneCanceled"
        usage = Usage(input_tokens=bill.trained_tokens or 0, gpu_seconds=bill.gpu_seconds, hardware=hardware)
        key = _finetune_key(target.provider, job.id)
        # The reservation taken at launch (by this client) is settled by the job's one row; a job followed from
        # another client or process has none here: the launcher's lapses after FINETUNE_RESERVATION_TTL_S.
        held = self._held.pop(key, None)
        self.record("finetune", attempt, usage, tags, held, once_key=key)

    def record(self, verb: str, attempt: Attempt, usage: Usage, tags: Mapping[str, str] | None,
               reservation: Reservation | None = None, once_key: str | None = None) -> None:
        """Write an attempt's row; under a budget, settle its reservation with it (one transaction)."""
        cost = attempt.cost
        row = LedgerRow(
            ts=attempt.started_at,
            verb=verb,
            provider=attempt.provider,
            model=attempt.model,
            outcome=attempt.outcome,
            latency_ms=attempt.latency_s * 1000,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cached_input_tokens=usage.cached_input_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            gpu_seconds=usage.gpu_seconds,
            cost=cost.total if cost is not None else None,
            estimated=cost.estimated if cost is not None else False,
            price_source=str(cost.price_source) if cost is not None and cost.price_source else None,
            request_id=attempt.request_id,
            error_type=attempt.error_type,
            status=attempt.status,
            tags=dict(tags) if tags else {},
            reserved=reservation.amount if reservation is not None else None,
            once_key=once_key,
        )
        if reservation is not None:
            self.ledger.settle(reservation.id, row)
        else:
            self.ledger.record(row)
        for tap in ROW_TAPS:  # empty outside tests: computekit.testing's spend fixture listens here
            tap(row)
        attempt_span(verb, attempt, usage, tags)  # OpenTelemetry, when the application configured it


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def ledger_call(core: Core, step: Callable[[], _T], *, offload: bool = True) -> _T:
    """Run a step that reserves, settles or records (``step``) from async code: in a worker thread when the
    ledger waits on the network (:attr:`Core.ledger_blocks`), so the event loop never does; inline otherwise
    (SQLite answers in well under a millisecond, less than the hop to a thread). ``offload=False``: inline.

    A call canceled while its step runs in the thread lets the step finish; a reservation it made is released.
    """
    if not offload or not core.ledger_blocks:
        return step()
    import asyncio

    task = asyncio.ensure_future(asyncio.to_thread(step))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        loop = asyncio.get_running_loop()

        def drop(done: asyncio.Future[_T]) -> None:
            if not done.cancelled() and done.exception() is None:
                made = done.result()
                if isinstance(made, Reservation):  # nobody will settle it: free it now, not at its TTL
                    loop.run_in_executor(None, core.release, made)

        task.add_done_callback(drop)
        raise


def _finetune_key(provider: str, job_id: str) -> str:
    """A job's ``once_key`` in the ledger (and the key of its held reservation)."""
    return f"finetune:{provider}:{job_id}"


def call_options(**given: Any) -> dict[str, Any]:
    """Keyword arguments that were actually passed (sentinel-free), each checked for its type.

    Raises:
        InvalidRequestError: An option has the wrong type (the message shows a right one).
    """
    out = {k: v for k, v in given.items() if v is not NOT_GIVEN}
    for name, value in out.items():
        check_option(name, value)
    return out


# Options whose type is checked before anything is sent, with an example of a right value for the message.
_WHOLE: Final = {"max_tokens": 60, "seed": 42, "dimensions": 256, "top_n": 3}
_REAL: Final = {"temperature": 0.7, "top_p": 0.9}
_TEXT: Final = {"user": "user-123", "service_tier": "auto"}


def check_option(name: str, value: Any) -> None:
    """Refuse a call option of the wrong type (``max_tokens="sixty"``) with the fix, before any HTTP.

    Raises:
        InvalidRequestError: ``value`` is not what ``name`` takes.
    """
    if value is None:
        return
    example: Any
    if name in _WHOLE:
        ok = isinstance(value, int) and not isinstance(value, bool)
        example = _WHOLE[name]
        if ok and value < 1 and name != "seed":
            raise InvalidRequestError(f"{name} must be at least 1, not {value}: e.g. {name}={example}")
    elif name in _REAL:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        example = _REAL[name]
    elif name in _TEXT:
        ok = isinstance(value, str)
        example = _TEXT[name]
    elif name == "stop":
        ok = isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))
        example = ["\n\n"]
    else:
        return
    if not ok:
        fix = f"e.g. {name}={example!r}"
        if isinstance(value, str) and not isinstance(example, str):
            with contextlib.suppress(ValueError):  # a number written as a string: show it as a number
                fix = f"pass {name}={type(example)(value)!r}"
        raise InvalidRequestError(
            f"{name} must be {_KIND.get(type(example), type(example).__name__)}, not {type(value).__name__} "
            f"{value!r}: {fix}"
        )


_KIND: Final = {int: "a whole number", float: "a number", str: "a string", list: "a string or a list of strings"}


def check_tags(tags: Mapping[str, str] | None) -> Mapping[str, str] | None:
    """``tags`` if they can be stored and grouped on (``report(by="tag:NAME")``): a mapping of non-empty string
    names to string values.

    Raises:
        InvalidRequestError: ``tags`` is not such a mapping (raised before any HTTP).
    """
    if tags is None:
        return None
    if not isinstance(tags, Mapping):
        raise InvalidRequestError(f"tags must be a dict of strings, e.g. tags={{'feature': 'search'}}, "
                                  f"not {type(tags).__name__}")
    for name, value in tags.items():
        if not isinstance(name, str) or not name:
            raise InvalidRequestError(f"tag names must be non-empty strings, not {name!r}")
        if not isinstance(value, str):
            raise InvalidRequestError(f"tag {name!r} must have a string value (reports group on it), "
                                      f"not {type(value).__name__}: write str(value)")
    return tags


def check_seconds(name: str, value: float | None, *, zero: bool = False) -> float | None:
    """``value`` when it is a usable duration argument: a finite number of seconds above 0 (or 0, when ``zero``)
    and at most ``MAX_SECONDS``; ``None`` (not given) passes.

    Raises:
        InvalidRequestError: It is not (``inf``, ``NaN``, negative, a string ...).
    """
    if value is None:
        return None
    low_ok = isinstance(value, int | float) and not isinstance(value, bool) and (
        value >= 0 if zero else value > 0)
    if not low_ok or not value <= MAX_SECONDS:  # NaN fails both comparisons
        raise InvalidRequestError(f"{name} must be a number of seconds, {'>= 0' if zero else '> 0'} and at most "
                                  f"{MAX_SECONDS}, not {value!r}")
    return value


def call_deadline(core: Core, timeout: float | None) -> float | None:
    """When a call given ``timeout=`` must end, on the router's clock (``None``: no timeout).

    Raises:
        InvalidRequestError: ``timeout`` is not a usable number of seconds.
    """
    seconds = check_seconds("timeout", timeout, zero=True)  # 0: already over (nothing is sent)
    return None if seconds is None else core.router.clock() + seconds


def check_model_list(model: object) -> Sequence[str]:
    """``model`` when it is a list of model ids (fallback order).

    Raises:
        InvalidRequestError: It is something else (``None``, a number ...), or holds something else.
    """
    if not isinstance(model, Sequence) or isinstance(model, bytes | bytearray):
        raise InvalidRequestError(
            f"model must be a model id ('provider:model', e.g. 'openai:gpt-4o-mini'), a route name, or a list of "
            f"model ids, not {type(model).__name__}"
        )
    for mid in model:
        if not isinstance(mid, str):
            raise InvalidRequestError(f"each model in the list must be a 'provider:model' string, not "
                                      f"{type(mid).__name__}: {mid!r}"[:200])
    return model


def check_tools(tools: object) -> list[dict[str, Any]]:
    """``tools`` when it is a list of tool definitions that can be sent as JSON.

    Raises:
        InvalidRequestError: It is not a list of dicts, or a definition holds a value JSON cannot carry (a set,
            an object, NaN ...): the message names the tool (raised before any HTTP).
    """
    if not isinstance(tools, list | tuple) or not all(isinstance(t, Mapping) for t in tools):
        raise InvalidRequestError(f"tools must be a list of tool definitions (dicts), not {type(tools).__name__}")
    for i, tool in enumerate(tools):
        try:
            json.dumps(tool, allow_nan=False)
        except (TypeError, ValueError, RecursionError) as e:
            fn = tool.get("function")
            name = tool.get("name") or (fn.get("name") if isinstance(fn, Mapping) else None)
            raise InvalidRequestError(
                f"tools[{i}]{f' ({name!r})' if isinstance(name, str) else ''} cannot be sent as JSON: {e}. A tool "
                "definition holds only dicts, lists, strings, finite numbers, booleans and None"
            ) from e
    return list(tools)


@dataclass
class Run:
    """One call's way through its targets: order, deadline, fallback decisions and the errors met (pure
    bookkeeping, shared by the sync and async clients).

    Args:
        core: The client's core (router, prices, settings).
        targets: The targets as listed.
        route: The named route they come from, for its strategy.
        first_request: Builds a target's request, for the ``cheapest`` estimate.
    """

    core: Core
    targets: list[Target]
    route: RouteConfig | None = None
    first_request: Any = None
    errors: list[ProviderError] = field(default_factory=list)
    refusals: list[BudgetExceededError] = field(default_factory=list)
    deadline: float | None = None
    min_context: int | None = None
    _pos: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        limit = self.core.router.config.deadline_s
        self.deadline = self.core.router.clock() + limit if limit else None
        strategy = self.route.strategy if self.route else "ordered"
        estimate = None
        if strategy == "cheapest" and self.first_request is not None:
            build = self.first_request

            def estimate(t: Target) -> Decimal | None:
                return self.core.estimate(t, build(t))

        self.targets = self.core.router.order(
            self.targets, strategy, estimate=estimate, weights=self.route.weights if self.route else None
        )

    def _eligible(self, target: Target) -> bool:
        if self.min_context is None:
            return True
        window = self.core.context_window(target)  # a context-window failure falls back only to a larger one
        return window is not None and window > self.min_context

    def next(self) -> Target | None:
        """The next target worth trying, or ``None`` when none is left."""
        while self._pos < len(self.targets):
            target = self.targets[self._pos]
            self._pos += 1
            if self._eligible(target):
                return target
        return None

    def has_more(self) -> bool:
        """Whether a target is left after the current one."""
        return any(self._eligible(t) for t in self.targets[self._pos :])

    def remaining(self) -> float:
        """Seconds left before the call's total deadline (infinite without one)."""
        return math.inf if self.deadline is None else self.deadline - self.core.router.clock()

    def remaining_fn(self) -> Callable[[], float] | None:
        """:meth:`remaining`, or ``None`` when there is no deadline (retry loops then skip the check)."""
        return None if self.deadline is None else self.remaining

    def check_deadline(self, target: Target) -> float | None:
        """Seconds left, or ``None`` without a deadline.

        Raises:
            APITimeoutError: The call's total deadline has passed.
        """
        if self.deadline is None:
            return None
        left = self.remaining()
        if left <= 0:
            raise APITimeoutError(
                f"the call's total deadline ({self.core.router.config.deadline_s} s) passed",
                provider=target.provider,
                model=target.model,
            )
        return left

    def failed(self, target: Target, error: ProviderError) -> None:
        """A target's last try failed: tell the router, and raise when the plan must stop here."""
        self.errors.append(error)
        if isinstance(error, NotFoundError) and not getattr(error, "__notes__", None):
            close = self.core.prices.similar(target.adapter.price_ref(target.model))
            if close:  # a 404 on a misspelled model: name the likely one
                error.add_note(f"did you mean {' or '.join(f'{target.provider}:{m}' for m in close)}?")
        action = self.core.router.failed(target, error, self.core.retry.config.retry_after_cap)
        if action is Action.RAISE or (isinstance(error, APITimeoutError) and self.remaining() <= 0):
            raise error
        if action is Action.LARGER_CONTEXT:
            window = self.core.context_window(target)
            if window is None:
                raise error  # nothing to compare with: no target is known to be larger
            self.min_context = max(window, self.min_context or 0)

    def refused(self, target: Target, error: BudgetExceededError) -> None:
        """A budget refused ``target`` before anything was sent: the next target (perhaps a cheaper one) is
        tried; the refused target is not cooled down (it did not fail)."""
        self.refusals.append(error)

    def exhausted(self, attempts: list[Attempt]) -> Exception:
        """The error to raise when no target is left: the one error, or all of them grouped (a budget's
        refusal, when every target was refused)."""
        if self.refusals and not self.errors:
            return self.refusals[0]
        spent = _attempts_summary(attempts)
        if len(self.errors) == 1 and not self.refusals:
            error = self.errors[0]
            if len(attempts) > 1:  # retried: the traceback says how hard computekit tried
                error.add_note(f"computekit gave up {spent}")
            return error
        if not self.errors:
            return InvalidRequestError("no target could be tried (all need larger context windows)")
        if self.refusals:
            tried = ", ".join(dict.fromkeys(f"{e.provider}:{e.model}" for e in self.errors))
            return AllTargetsFailedError(
                f"{len(self.errors)} targets failed ({tried}) and {len(self.refusals)} were refused by a budget, "
                f"{spent}",
                [*self.errors, *self.refusals], attempts,
            )
        tried = ", ".join(dict.fromkeys(f"{e.provider}:{e.model}" for e in self.errors))  # in the order tried
        return AllTargetsFailedError(f"all {len(self.errors)} targets failed ({tried}), {spent}", self.errors,
                                     attempts)


def _attempts_summary(attempts: list[Attempt]) -> str:
    """``after 3 attempts in 2.4 s``: from the first attempt's start to the last one's end."""
    if not attempts:
        return "after 0 attempts"
    start = min(a.started_at for a in attempts)
    end = max(a.started_at + dt.timedelta(seconds=a.latency_s) for a in attempts)
    n = len(attempts)
    return f"after {n} attempt{'s' if n != 1 else ''} in {(end - start).total_seconds():.1f} s"
