"""The core shared by :class:`Client` and :class:`AsyncClient`: settings and adapters, and the parts a client is
made of. No network I/O happens here.

What lives where, and what writes:

- here, :class:`Core`: the settings, the adapters, resolving ``"provider:model"`` (and routes) to targets, what
  hosts published about models, and building each verb's typed request. **Pure**, but for two caches (adapters,
  model lookups) and opening the ledger on first use.
- :mod:`computekit._costs`: pricing a result, estimating a request, context windows. **Pure** (reads the price
  tables).
- :mod:`computekit._budget`: :class:`~computekit._budget.Budgets` (``core.budgets``): what an attempt may cost at
  worst (pure), and the reservations: **writes** the ledger (reserve, release).
- :mod:`computekit._bookkeeping`: every attempt's row, the ends of runs and jobs: **writes** the ledger, the
  router (latency, cool-downs) and the result (cost, attempts).
- :mod:`computekit._attempt` (pure: plans, a call's way through its targets, an attempt's facts) and
  :mod:`computekit._driver` (the I/O loop, once per flavour) use all of the above.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Final, TypeVar

from pydantic import SecretStr

from . import _urls
from ._budget import Budgets, Reservation
from ._config import MAX_SECONDS, RouteConfig, Settings, adapter_options, load_settings
from ._constants import MODELS_KEPT, NOT_GIVEN, NotGiven
from ._exceptions import (
    ConfigError,
    InvalidRequestError,
    MissingAPIKeyError,
    UnsafeURLError,
)
from ._retry import RetryPolicy
from ._targets import Target, split_model_id
from ._types import Cost, Message
from .adapters._base import (
    Adapter,
    CompleteRequest,
    EmbedRequest,
    HTTPRequest,
    ModelInfo,
    ProviderSettings,
    RerankRequest,
    env_key,
    env_key_source,
    key_problem,
)
from .adapters._registry import adapter_class
from .ledger import Ledger, open_ledger
from .pricing import PriceBook
from .routing import Router

__all__ = ["Core", "Target", "ledger_call", "split_model_id"]

_T = TypeVar("_T")

_ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
_MTOK = Decimal(1_000_000)




def _configured_origin(url: str | None) -> tuple[str, str, int | None] | None:
    """The configured base URL's origin; ``None`` when it is a template its adapter fills in
    (``https://bedrock-runtime.{region}.amazonaws.com``): no per-call URL is on it."""
    try:
        return _origin(url)
    except UnsafeURLError:
        return None


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
    """One client's settings and adapters, and the parts it is made of: ``prices`` (the price tables), ``retry``
    (the policy), ``router`` (routing state), ``ledger`` (opened on first use) and ``budgets``."""

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
        self._owns_ledger = ledger is None
        """Whether the ledger is this client's own (opened from its settings): then closing the client closes it;
        a ``Ledger`` passed in is its owner's to close."""
        self._orphan: weakref.finalize[..., Any] | None = None
        """Stops the writer thread of the ledger this client opened, if the client is collected unclosed."""
        self._adapters: dict[str, Adapter] = {}
        self._lock = threading.Lock()
        self._model_info: dict[tuple[str, str], ModelInfo] = {}
        """What hosts published about models (input schemas, hardware), looked up once per client (at most
        :data:`MODELS_KEPT` models: past it, the oldest is forgotten, and looked up again if asked for)."""
        self.budgets = Budgets(self, self.settings.active_budgets())

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
                    self._ledger = open_ledger(conf.url, buffered=not self.budgets.active,
                                               flush_interval=conf.flush_interval,
                                               flush_on_sigterm=conf.flush_on_sigterm)
                    orphan = getattr(self._ledger, "_orphan", None)  # a backend with a writer thread
                    if orphan is not None:
                        # A client collected unclosed: its writer thread (which holds the ledger, not the client)
                        # would run, and hold the connection, for the life of the process.
                        self._orphan = weakref.finalize(self, orphan)
                        self._orphan.atexit = False  # at exit, the writer's own handler writes the queue
        return self._ledger

    def flush(self) -> None:
        """Write every row recorded so far (the ledger may batch them off the call path)."""
        if self._ledger is not None:
            self._ledger.flush()

    def close(self) -> None:
        """Write every row recorded so far, and close the ledger if this client opened it: its writer thread, its
        connection and its exit handler would otherwise outlive the client (a process that makes a client per
        request would gather them). A later use opens it again."""
        ledger = self._ledger
        if ledger is None:
            return
        if not self._owns_ledger or ledger.ephemeral:  # its owner's to close; or closing it would drop its rows
            ledger.flush()
            return
        # Closed before it is let go of: the bookkeeping its writer still runs (an instrumented SDK client's
        # deferred rows) records through this client, and must find this ledger, not open another.
        ledger.close()
        with self._lock:
            if self._ledger is ledger:
                self._ledger = None
                if self._orphan is not None:
                    self._orphan.detach()
                    self._orphan = None

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
        ambient = True
        if base_url is not None:
            url = base_url
            if _origin(base_url) != _configured_origin(configured_url) and not cls.own_endpoint(provider, base_url):
                key = None
                ambient = False  # nor the credentials an adapter finds itself (AWS's chain, Google's ADC)
        if api_key is not None:
            key = SecretStr(api_key.strip() if isinstance(api_key, str) else api_key)
        if key is not None and (problem := key_problem(key.get_secret_value())) is not None:
            # Refused here, for every adapter: sent, it would be a raw ValueError quoting the whole header.
            source = ("api_key=" if api_key is not None else f"providers.{provider}.api_key"
                      if conf and conf.api_key else env_key_source(env_vars) or "the environment")
            raise MissingAPIKeyError(provider, env_vars, f"the API key for provider {provider!r} ({source}) is not "
                                                         f"usable: {problem}")
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
            ambient_credentials=ambient,
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
        key = (target.provider, target.model)
        with self._lock:
            known = self._model_info
            if key not in known and len(known) >= MODELS_KEPT:
                del known[next(iter(known))]
            known[key] = info

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


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def ledger_call(core: Core, step: Callable[[], _T], *, offload: bool = True, keyed: bool = False) -> _T:
    """Run a step that reserves, settles or records (``step``) from async code: in a worker thread when the
    ledger waits on the network (``core.budgets.blocking``), so the event loop never does; inline otherwise
    (SQLite answers in well under a millisecond, less than the hop to a thread). ``offload=False``: inline.
    ``keyed``: the step finds or settles a job's reservation by its key (``Budgets.find``), which goes to the
    ledger whether this client has budgets or not (the process that reserved it had).

    A call canceled while its step runs in the thread lets the step finish; a reservation it made is released.
    """
    if not offload or not (core.budgets.blocking or (keyed and core.budgets.finding_blocks)):
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
                # A reservation it made: nobody will settle it, free it now, not at its TTL. One a keyed step
                # found belongs to a job still running: it stays.
                if isinstance(made, Reservation) and not keyed:
                    loop.run_in_executor(None, core.budgets.release, made)

        task.add_done_callback(drop)
        raise


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
