"""Settings: ``computekit.toml`` (or ``$COMPUTEKIT_CONFIG``) + keyword arguments + env vars -> one object.

The file and ``Client(**kwargs)`` have the same shape; keyword arguments are merged over the file, key by key.
Any mistake is a :class:`~computekit.ConfigError` that names the key (``providers.NAME.timeout``) and what is
wrong with it.

``[providers.NAME]`` holds the keys every provider has (below, in :class:`ProviderConfig`) and the keys its adapter
declares itself (an API version, a deployment map, a region ...): each adapter names a pydantic model in
``Adapter.settings_model``, and the table's other keys are validated against it here, so this module names no
provider and a new adapter's settings need no change to it.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails

from . import _inprocess
from ._constants import (
    CONFIG_ENV,
    CONFIG_FILENAME,
    DEFAULT_BACKOFF_INITIAL_S,
    DEFAULT_BACKOFF_MAX_S,
    DEFAULT_BUDGET_NAME,
    DEFAULT_COOLDOWN_S,
    DEFAULT_FAILURE_WINDOW_S,
    DEFAULT_FAILURES_TO_COOL,
    DEFAULT_MAX_RETRIES,
    DEFAULT_RETRY_AFTER_CAP_S,
    DEFAULT_TIMEOUT_S,
    LEDGER_ENV,
    LEDGER_FLUSH_INTERVAL_S,
    MAX_COMPLETE_BYTES,
    MAX_EMBED_BYTES,
    MAX_PREDICT_BYTES,
    MAX_RERANK_BYTES,
    MAX_SSE_EVENT_BYTES,
    NOT_GIVEN,
    NotGiven,
)
from ._exceptions import ConfigError
from .pricing._book import price_key_error

if TYPE_CHECKING:
    from .adapters._base import Adapter, AdapterSettings

__all__ = [
    "BudgetConfig",
    "LedgerConfig",
    "ProviderConfig",
    "RetryConfig",
    "RouteConfig",
    "RoutingConfig",
    "Settings",
    "adapter_options",
    "load_settings",
]


_SHOWN_SECRET = "**********"  # noqa: S105  (what a repr or a dump shows instead of a secret, as SecretStr)
# The password of a URL's userinfo (``scheme://user:password@host``), and secret query parameters (libpq reads
# ``?password=``). Patterns, not a URL parser: a URL that does not parse must not be shown either.
_URL_PASSWORD = re.compile(r"(://[^/?#@\s]*?:)[^/?#\s]*@")
_URL_SECRET_PARAM = re.compile(r"(?i)([?&](?:password|passfile|sslpassword|sslkey|key|api_key|token|sig)=)[^&#\s]*")


def masked_url(url: str | None) -> str | None:
    """``url`` as it may be shown: the password of its userinfo and secret query parameters replaced (a ledger's
    ``postgresql://app:secret@db/spend``, a base URL with credentials)."""
    if not url:
        return url
    return _URL_SECRET_PARAM.sub(rf"\1{_SHOWN_SECRET}", _URL_PASSWORD.sub(rf"\1{_SHOWN_SECRET}@", url))


MAX_SECONDS = 10_000_000
"""The longest duration a setting may give (timeouts, backoff, cooldown, deadline, a prediction's billed time):
ten million seconds, about 16 weeks. Longer is a mistake, and the operating system's waits overflow not far
beyond (``inf`` and ``NaN`` are refused as well)."""


MAX_PRICE_USD = Decimal(1_000_000)
"""The highest price a ``[prices]`` entry may give (per million tokens, per request, per second, per unit): a
million dollars. Higher is a typo, and a worst case multiplied out of a price near ``Decimal``'s largest exponent
overflows (a raw ``decimal.Overflow`` while reserving a budget)."""


MAX_FLUSH_INTERVAL_S = 60
"""The longest ``ledger.flush_interval``: a minute of calls is already a lot to lose to a hard kill."""


def _check_port(url: str | None) -> str | None:
    """``url`` unchanged, or a ValueError naming its port when no connection could be made to it."""
    if url and "://" in url:
        from urllib.parse import urlsplit

        try:
            urlsplit(url).port  # noqa: B018 - parsing the port is the check (out of range: ValueError)
        except ValueError:
            port = url.split("://", 1)[1].split("/", 1)[0].rpartition("@")[2].rpartition(":")[2]
            raise ValueError(f"port {port!r} of {masked_url(url)!r} is not a port: use a number from 1 to 65535"
                             ) from None
    return url


class _Section(BaseModel):
    # allow_inf_nan=False: a timeout, backoff or weight of inf or NaN would hang a call or break a draw.
    # hide_input_in_errors: a ValidationError chained under a ConfigError never prints a value (a URL's password).
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True, allow_inf_nan=False,
                              hide_input_in_errors=True)

    _masked: ClassVar[dict[str, Callable[[Any], Any]]] = {}
    """Fields whose values may hold a secret, and how they are shown in a repr, a str and a dump."""

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            shown = self._masked.get(name or "")
            yield name, value if shown is None or value is None else shown(value)


_URL_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
"""Control characters, which no URL holds."""
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
"""An environment variable's name, as a shell writes it."""
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
"""An HTTP header name (RFC 9110's token)."""
_HEADER_VALUE_BAD = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
"""What a header value may not hold: control characters but the tab (a CR or LF would start another header)."""


def _masked_headers(headers: Mapping[str, str]) -> dict[str, str]:
    # Any extra header may carry a credential (a gateway's key, a proxy token): names are shown, values never.
    return dict.fromkeys(headers, _SHOWN_SECRET)


class ProviderConfig(_Section):
    """One provider: a built-in one by name, or any name with ``adapter`` naming the adapter that serves it. The
    keys below apply to every provider; an adapter may add its own (listed under its name)."""

    adapter: str | None = Field(None, description="Adapter to use; defaults to the provider's own name.")
    base_url: str | None = Field(None, description="API base URL; defaults to the adapter's (or profile's).")
    api_key: SecretStr | None = Field(None, description="The key itself. Prefer api_key_env or the default env var.")
    api_key_env: str | None = Field(None, description="Environment variable that holds the key.")
    timeout: float | None = Field(None, gt=0, le=MAX_SECONDS, description="Read timeout in seconds for this provider.")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra headers sent with every request.")
    hardware: dict[str, str] = Field(
        default_factory=dict, description="predict(): model -> hardware SKU it runs on (prices its GPU-seconds)."
    )
    default_hardware: str | None = Field(
        None, description="predict(): hardware assumed when a model has none; such costs are marked estimated."
    )
    idempotency_header: str | None = Field(
        None,
        description="Header in which the host accepts an idempotency key (e.g. 'Idempotency-Key'): one key per "
        "request, the same on its retries, so a retried POST is not billed twice.",
    )
    max_output_tokens: dict[str, int] = Field(
        default_factory=dict,
        description="Budgets: model -> the most tokens it can generate (above 0), reserved when a call sets no "
        "max_tokens.",
    )
    max_seconds: float | None = Field(
        None,
        gt=0, le=MAX_SECONDS,
        description="The longest a prediction or a GPU-time training can bill, seconds: a budget's worst case, and "
        "a training billed by GPU time's estimate.",
    )
    max_units: int | None = Field(
        None, gt=0, description="Budgets: the most billed units (images, credits) one prediction can produce."
    )
    _options: AdapterSettings | None = PrivateAttr(default=None)

    @property
    def options(self) -> AdapterSettings | None:
        """The keys the adapter declares, validated against its ``settings_model`` (``None``: none were set)."""
        return self._options

    _masked = {"headers": _masked_headers, "base_url": masked_url}

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, v: str | None) -> str | None:
        if v and not v.lower().startswith(("https://", "http://", _inprocess.SCHEME)):
            # Otherwise each call failed as a connection error (and was retried) on a URL no transport speaks.
            raise ValueError(f"{masked_url(v)!r} is not a URL computekit can call: write 'https://host/path'")
        return _check_port(v)

    @field_validator("api_key", mode="before")
    @classmethod
    def _api_key(cls, v: Any) -> Any:
        # The whitespace around a pasted key is not part of it; a key no header can carry is refused here, where
        # its key is named, rather than on the wire, where the error would quote the header whole.
        if isinstance(v, SecretStr):
            v = v.get_secret_value()
        if not isinstance(v, str):
            return v
        from .adapters._base import key_problem

        v = v.strip()
        if not v:
            return None
        if (problem := key_problem(v)) is not None:
            raise ValueError(problem)
        return v

    @field_validator("api_key_env")
    @classmethod
    def _api_key_env(cls, v: str | None) -> str | None:
        if v is not None and not _ENV_NAME.fullmatch(v):
            if _ENV_NAME.fullmatch(v.removeprefix("$").strip("{}")):
                raise ValueError(f"write the variable's name without the $: {v.removeprefix('$').strip('{}')!r}")
            # Not shown: what lands here is often the key itself, pasted in the wrong place.
            raise ValueError("it is not the name of an environment variable (letters, digits and _): name the "
                             "variable that holds the key, not the key")
        return v

    @field_validator("headers")
    @classmethod
    def _headers(cls, v: dict[str, str]) -> dict[str, str]:
        for name, value in v.items():
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a header name (letters, digits and !#$%&'*+-.^_`|~ only)")
            if _HEADER_VALUE_BAD.search(value):
                # The value may be a credential: named by its header, never shown.
                raise ValueError(f"the value of header {name!r} holds a control character (a line break?), which "
                                 "would split the request's headers")
        return v

    @field_validator("max_output_tokens")
    @classmethod
    def _max_output_tokens(cls, v: dict[str, int]) -> dict[str, int]:
        # A budget reserves this many output tokens: 0 or fewer would lower (or turn negative) a call's worst case.
        for model, tokens in v.items():
            if tokens <= 0:
                raise ValueError(f"{model}: {tokens} tokens cannot bound an answer: give a number above 0")
        return v

    @field_validator("idempotency_header")
    @classmethod
    def _idempotency_header(cls, v: str | None) -> str | None:
        if v is not None and not _HEADER_NAME.fullmatch(v):
            raise ValueError(f"{v!r} is not a header name (letters, digits and !#$%&'*+-.^_`|~ only)")
        return v

    @field_serializer("headers")
    def _dump_headers(self, headers: dict[str, str]) -> dict[str, str]:
        return _masked_headers(headers)

    @field_serializer("base_url")
    def _dump_base_url(self, url: str | None) -> str | None:
        return masked_url(url)


class RouteConfig(_Section):
    """A named route: targets tried in order (fallback), or chosen by a strategy."""

    targets: list[str] = Field(min_length=1, description="Model ids, 'provider:model'.")
    strategy: Literal["ordered", "cheapest", "fastest", "weighted"] = Field(
        "ordered",
        description="ordered: as listed; cheapest: by this request's estimated cost; fastest: by observed "
        "latency; weighted: first target drawn by weight, the rest as listed.",
    )
    weights: list[float] | None = Field(None, description="For 'weighted': one weight per target.")

    @model_validator(mode="after")
    def _weights(self) -> RouteConfig:
        if self.weights is not None:
            if self.strategy != "weighted":
                raise ValueError("weights are only used with strategy = 'weighted'")
            if len(self.weights) != len(self.targets) or any(w < 0 for w in self.weights) or not any(self.weights):
                raise ValueError("weights: one non-negative weight per target, not all zero")
        return self

    @field_validator("targets")
    @classmethod
    def _ids(cls, v: list[str]) -> list[str]:
        for t in v:
            if (problem := _model_id_problem(t)) is not None:
                raise ValueError(problem)
        if len(set(v)) < len(v):
            # Tried twice, a failing target gets twice its retries (and is billed twice if it answers slowly).
            twice = next(t for t in v if v.count(t) > 1)
            raise ValueError(f"{twice!r} is listed twice: list each target once")
        return v


def _model_id_problem(model_id: str, *, bare: bool = False) -> str | None:
    """What is wrong with ``model_id`` as a ``provider:model`` (or, with ``bare``, a model name alone too)."""
    provider, sep, model = model_id.partition(":")
    if model_id != model_id.strip() or provider != provider.strip() or model != model.strip():
        return f"{model_id!r} has spaces around a name: write 'provider:model' without them"
    if not sep and bare and model_id:
        return None
    if not sep or not provider or not model:
        return f"{model_id!r} is not a model id: write 'provider:model'"
    return None


class RetryConfig(_Section):
    """The retry loop for one request on one target."""

    max_retries: int = Field(DEFAULT_MAX_RETRIES, ge=0, le=20, description="Retries after the first try.")
    backoff_initial: float = Field(
        DEFAULT_BACKOFF_INITIAL_S, ge=0, le=MAX_SECONDS, description="First backoff, seconds."
    )
    backoff_max: float = Field(DEFAULT_BACKOFF_MAX_S, ge=0, le=MAX_SECONDS, description="Largest backoff, seconds.")
    retry_after_cap: float = Field(
        DEFAULT_RETRY_AFTER_CAP_S, ge=0, le=MAX_SECONDS,
        description="Longest Retry-After honoured inside a call, seconds.",
    )


class LimitsConfig(_Section):
    """Size limits on what a provider sends back: a larger answer is refused with ``ResponseTooLargeError``."""

    complete_bytes: int = Field(MAX_COMPLETE_BYTES, gt=0, description="Largest decoded complete() answer, bytes.")
    embed_bytes: int = Field(MAX_EMBED_BYTES, gt=0, description="Largest decoded embed() answer, bytes.")
    rerank_bytes: int = Field(MAX_RERANK_BYTES, gt=0, description="Largest decoded rerank() answer, bytes.")
    predict_bytes: int = Field(
        MAX_PREDICT_BYTES, gt=0, description="Largest decoded answer of predict() and its polls and cancels, bytes."
    )
    stream_event_bytes: int = Field(
        MAX_SSE_EVENT_BYTES, gt=0, description="Largest server-sent event (or line) of a stream, bytes."
    )

    def body_bytes(self) -> dict[str, int]:
        """The body limit of each verb, by verb name."""
        return {"complete": self.complete_bytes, "embed": self.embed_bytes, "rerank": self.rerank_bytes,
                "predict": self.predict_bytes}


class RoutingConfig(_Section):
    """Cooldowns of failing targets, the total deadline of a call, and fallback choices."""

    cooldown_s: float = Field(
        DEFAULT_COOLDOWN_S, ge=0, le=MAX_SECONDS, description="How long a failing target is skipped."
    )
    failure_window_s: float = Field(
        DEFAULT_FAILURE_WINDOW_S, gt=0, le=MAX_SECONDS, description="Window in which failures are counted, seconds."
    )
    failures_to_cool: int = Field(
        DEFAULT_FAILURES_TO_COOL, ge=1, description="Failures within the window that cool a target down."
    )
    deadline_s: float | None = Field(
        None, gt=0, le=MAX_SECONDS, description="Total time one call may take, retries, sleeps and fallbacks included."
    )
    on_content_filter: Literal["raise", "fallback"] = Field(
        "raise", description="Whether a content-filter refusal falls back to the next target."
    )
    on_invalid_output: Literal["raise", "fallback"] = Field(
        "raise", description="Whether a structured-output refusal or an answer that does not validate falls back "
                             "to the next target."
    )


class LedgerConfig(_Section):
    """Where every attempt is recorded: ``sqlite:///path.db``, or ``none`` to turn the ledger off."""

    url: str | None = Field(
        None, description="sqlite:///path, postgresql://..., or 'none'. Default: a per-user data directory."
    )
    flush_interval: float = Field(
        LEDGER_FLUSH_INTERVAL_S, ge=0, le=MAX_FLUSH_INTERVAL_S,
        description="Without a budget, rows are committed in the background within this many seconds of the call: "
        "what a process killed with SIGKILL or ended by os._exit() can lose. 0 commits each row at once.",
    )
    flush_on_sigterm: bool = Field(
        True, description="Write queued rows when the process gets SIGTERM (chaining the handler already there). "
        "false: leave SIGTERM to the application; rows still queued then are lost if it does not exit normally.",
    )

    @field_validator("url")
    @classmethod
    def _scheme(cls, v: str | None) -> str | None:
        if v is not None and _URL_CONTROL.search(v):
            # 'sqlite:///ledger.db\n' would open another file than 'sqlite:///ledger.db': budgets split in two.
            raise ValueError(f"{masked_url(v)!r} holds a control character (a line break?): write the URL alone")
        if v is None or v == "none" or v.startswith("sqlite:///") or v == "sqlite://:memory:":
            return v
        if v.startswith(("postgresql://", "postgres://")):
            return _check_port(v)
        raise ValueError(f"{masked_url(v)!r}: use 'sqlite:///path/to/ledger.db', 'postgresql://user@host/db' or "
                         "'none'")

    _masked = {"url": masked_url}

    @field_serializer("url")
    def _dump_url(self, url: str | None) -> str | None:
        return masked_url(url)


class BudgetConfig(_Section):
    """A spending limit, enforced before each attempt is sent: its worst-case cost is reserved, and the call is
    refused with :class:`~computekit.BudgetExceededError` when it does not fit (see ``docs/budgets.md``)."""

    limit_usd: Decimal | None = Field(None, ge=0, description="The limit in USD; no limit when not set.")
    period: Literal["day", "week", "month", "total"] = Field(
        "day", description="The UTC calendar period the limit applies to (weeks start on Monday)."
    )
    provider: str | None = Field(None, description="Count only calls to this provider.")
    model: str | None = Field(
        None, description="Count only calls to this model: 'provider:model', or a model name on any provider."
    )
    tags: dict[str, str] = Field(
        default_factory=dict, description="Count only calls whose tags include all of these."
    )
    unknown_price: Literal["refuse", "allow"] = Field(
        "refuse", description="A call this budget covers whose worst-case cost is unknown: refuse it, or allow it."
    )

    @field_validator("model")
    @classmethod
    def _model(cls, v: str | None) -> str | None:
        # A scope no call can match would leave the budget covering nothing, silently.
        if v is not None and (problem := _model_id_problem(v, bare=True)) is not None:
            raise ValueError(problem)
        return v


class Settings(_Section):
    """Every setting computekit reads, validated."""

    providers: dict[str, ProviderConfig] = Field(
        default_factory=dict, description="Provider settings, by provider name. A built-in provider needs none."
    )
    routes: dict[str, RouteConfig] = Field(
        default_factory=dict, description="Named routes, by route name: pass the name where a model id goes."
    )
    retry: RetryConfig = Field(
        default_factory=RetryConfig, description="The retry loop. 'retry = 3' is short for 'retry.max_retries = 3'."
    )
    routing: RoutingConfig = Field(default_factory=RoutingConfig, description="Cooldowns, deadline, fallback choices.")
    ledger: LedgerConfig = Field(
        default_factory=LedgerConfig,
        description="Where attempts are recorded. 'ledger = \"none\"' is short for 'ledger.url = \"none\"'.",
    )
    budget: BudgetConfig = Field(
        default_factory=BudgetConfig, description="A spending limit, enforced as the budget named 'default'."
    )
    budgets: dict[str, BudgetConfig] = Field(
        default_factory=dict, description="Named budgets, all enforced together (with [budget], named 'default')."
    )
    prices: dict[str, dict[str, Decimal]] = Field(
        default_factory=dict, description='Price overrides: "provider:model" = { input_mtok = "0.15", ... }.'
    )
    timeout: float = Field(DEFAULT_TIMEOUT_S, gt=0, le=MAX_SECONDS, description="Default read timeout, seconds.")
    limits: LimitsConfig = Field(default_factory=LimitsConfig, description="Size limits on answers, per verb.")

    @model_validator(mode="before")
    @classmethod
    def _shorthands(cls, data: Any) -> Any:
        return _expanded(data)

    @model_validator(mode="after")
    def _budgets(self) -> Settings:
        for name, b in self.budgets.items():
            if b.limit_usd is None:
                raise ValueError(f"budgets.{name}: set limit_usd")
        if self.budget.limit_usd is not None and DEFAULT_BUDGET_NAME in self.budgets:
            raise ValueError(f"[budget] is the budget named {DEFAULT_BUDGET_NAME!r}: rename budgets.default")
        if self.active_budgets() and self.ledger.url == "none":
            raise ValueError("a budget needs a ledger to count spend in: remove ledger = 'none' or the budget")
        return self

    def active_budgets(self) -> dict[str, BudgetConfig]:
        """Every budget with a limit, by name (``[budget]`` is named ``"default"``)."""
        out = {DEFAULT_BUDGET_NAME: self.budget} if self.budget.limit_usd is not None else {}
        out.update(self.budgets)
        return out

    @field_validator("prices")
    @classmethod
    def _price_keys(cls, v: dict[str, dict[str, Decimal]]) -> dict[str, dict[str, Decimal]]:
        for key, prices in v.items():
            provider, _, model = key.partition(":")
            if not provider.strip() or not model.strip():  # no call is ever priced by it
                raise ValueError(f"{key!r}: price keys are 'provider:model' or 'provider:hardware'")
            for name, price in prices.items():
                if price < 0:
                    raise ValueError(f"{key}.{name}: a price cannot be negative")
                if price > MAX_PRICE_USD:
                    raise ValueError(f"{key}.{name}: {price} USD is not a price: give one of at most {MAX_PRICE_USD}")
                if (problem := price_key_error(name)) is not None:
                    raise ValueError(f"{key}.{name}: {problem}")
        return v


def _expanded(data: Any) -> Any:
    """``data`` with its shorthands written out: ``ledger = "..."`` is ``ledger.url``, ``retry = 3`` is
    ``retry.max_retries``."""
    if isinstance(data, Mapping) and isinstance(data.get("ledger"), str):
        data = {**data, "ledger": {"url": data["ledger"]}}
    if isinstance(data, Mapping) and isinstance(data.get("retry"), int):
        data = {**data, "retry": {"max_retries": data["retry"]}}
    return data


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # a name too long, a NUL character: answered by _not_a_file
        return False


def _not_a_file(path: Path) -> str:
    """What ``path`` is instead of a config file."""
    try:
        if path.is_dir():
            return "is a folder: name the computekit.toml file in it"
        return "exists, but is not a file" if path.exists() else "does not exist"
    except OSError as e:
        return f"cannot be looked at: {e.strerror or e}"
    except ValueError:
        return "is not a file name (it holds a NUL character)"


def _find_file(config: str | os.PathLike[str] | NotGiven | None) -> Path | None:
    if config is None:
        return None  # explicitly no file
    if config is not NOT_GIVEN:
        path = Path(config)
        if not _is_file(path):
            raise ConfigError(f"config file {str(path)!r} {_not_a_file(path)}")
        return path
    env = os.environ.get(CONFIG_ENV)
    if env:
        path = Path(env)
        if not _is_file(path):
            raise ConfigError(f"${CONFIG_ENV} points to {env!r}, which {_not_a_file(path)}")
        return path
    local = Path.cwd() / CONFIG_FILENAME
    return local if local.is_file() else None


def _keys_at(model: type[BaseModel], path: tuple[int | str, ...]) -> list[str]:
    """The keys the table at ``path`` (under ``model``) takes, or ``[]`` when that is not one model's table."""
    parts = list(path)
    while parts:
        field = model.model_fields.get(str(parts.pop(0)))
        if field is None:
            return []
        inner: Any = field.annotation
        if get_origin(inner) is dict:  # [providers.NAME], [routes.NAME] ...: NAME is the next part
            if not parts:
                return []
            parts.pop(0)
            inner = get_args(inner)[1]
        if not (isinstance(inner, type) and issubclass(inner, BaseModel)):
            return []
        model = inner
    return list(model.model_fields)


def _explain(e: ValidationError, origin: str, prefix: tuple[str, ...] = (), model: type[BaseModel] | None = None,
             also: Iterable[str] = ()) -> str:
    from .adapters._registry import did_you_mean

    lines = []
    for err in e.errors():
        loc = ".".join(str(p) for p in (*prefix, *err["loc"])) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            # A misspelt key is the likeliest reason: name the one it is close to.
            keys = [*_keys_at(model or Settings, err["loc"][:-1]), *also]
            hint = did_you_mean(str(err["loc"][-1]), keys)
            msg = f"unknown key{hint or ' (check its spelling against the configuration reference)'}"
        lines.append(f"  {loc}: {msg}")
    return f"invalid configuration in {origin}:\n" + "\n".join(lines)


def _scrubbed(e: ValidationError) -> ValidationError | None:
    """``e`` without the values it was given: the cause chained under a ConfigError, which a traceback prints
    and a logger keeps, never carries a secret (a ledger URL's password, an API key next to a bad setting).
    The messages stay: the validators' own mask what they quote."""
    try:
        details: list[InitErrorDetails] = []
        for err in e.errors(include_url=False):
            detail = InitErrorDetails(type=err["type"], loc=err["loc"], input=None)
            if "ctx" in err:
                detail["ctx"] = err["ctx"]
            details.append(detail)
        return ValidationError.from_exception_data(e.title, details, hide_input=True)
    except Exception:  # an error kind that cannot be rebuilt (a third-party validator's own): no cause at all
        return None


def load_settings(
    config: str | os.PathLike[str] | Mapping[str, Any] | NotGiven | None = NOT_GIVEN,
    **overrides: Any,
) -> Settings:
    """Read the config file (if any), merge keyword arguments over it and validate.

    Args:
        config: A path to a TOML file, a mapping of the same shape, ``None`` for no file at all, or not given:
            then ``$COMPUTEKIT_CONFIG``, else ``./computekit.toml`` when present.
        **overrides: Settings with the file's shape, merged over it (``providers={...}``, ``retry={...}``).

    Returns:
        The validated settings.

    Raises:
        ConfigError: The file cannot be read or parsed, or a setting is invalid. The message names the key.
    """
    data: dict[str, Any] = {}
    origin = "keyword arguments"
    if isinstance(config, Mapping):
        data = dict(config)
    else:
        path = _find_file(config)
        if path is not None:
            origin = str(path)
            data = _read_toml(path)
    if overrides:
        try:
            # Shorthands written out first: Client(ledger="...") names the ledger, and keeps the file's other
            # [ledger] settings (flush_on_sigterm = false), as $COMPUTEKIT_LEDGER does.
            data = _merge(_expanded(data), _expanded(overrides))
        except RecursionError as e:  # mappings of arguments nested thousands deep
            raise ConfigError(f"invalid configuration in {origin} + keyword arguments: nested too deeply") from e
        if origin != "keyword arguments":
            origin += " + keyword arguments"
    env_ledger = (os.environ.get(LEDGER_ENV) or "").strip()  # a value set from a file may end in a newline
    if env_ledger and "ledger" not in overrides:
        # The variable names the ledger; the file's other ledger settings (flush_interval ...) still apply.
        kept = data.get("ledger")
        data["ledger"] = {**(kept if isinstance(kept, Mapping) else {}), "url": env_ledger}
        origin += f" + ${LEDGER_ENV}"  # an error about the ledger's URL names where it came from
    data, own = _adapter_keys(data)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_explain(e, origin)) from _scrubbed(e)
    except RecursionError as e:  # a mapping nested thousands deep
        raise ConfigError(f"invalid configuration in {origin}: nested too deeply") from e
    for name, (cls, keys) in own.items():
        settings.providers[name]._options = adapter_options(name, cls, keys, origin)
    if problems := _unknown_names(settings):
        raise ConfigError(f"invalid configuration in {origin}:\n" + "\n".join(f"  {p}" for p in problems))
    return settings


def _unknown_names(settings: Settings) -> list[str]:
    """Each provider a setting names that no adapter serves, as ``"key: what is wrong"``. Checked when the settings
    are made: a misspelt ``[providers.NAME]`` would be silently unused (its base_url, its limits), a budget scoped
    to a provider no call has would silently cover nothing, and a route's bad target would fail only when called."""
    from .adapters._registry import adapter_class

    problems: list[str] = []

    def check(key: str, provider: str, *, table: bool = False) -> None:
        if provider in settings.providers and not table:
            return  # a name of the user's own, served by its table's adapter (checked as that table)
        try:
            adapter_class(provider)
        except ConfigError as e:
            problems.append(f"{key}: {e}")

    for name, conf in settings.providers.items():
        if conf.adapter is not None:
            check(f"providers.{name}.adapter", conf.adapter, table=True)
        else:
            check(f"providers.{name}", name, table=True)
    for name, route in settings.routes.items():
        for i, target in enumerate(route.targets):
            check(f"routes.{name}.targets.{i}", target.partition(":")[0])
    for name, budget in settings.active_budgets().items():
        key = "budget" if name == DEFAULT_BUDGET_NAME and budget is settings.budget else f"budgets.{name}"
        if budget.provider is not None:
            check(f"{key}.provider", budget.provider)
        if budget.model is not None and ":" in budget.model:
            check(f"{key}.model", budget.model.partition(":")[0])
    return problems


def _read_toml(path: Path) -> dict[str, Any]:
    """A config file's settings; every way it can fail is a ConfigError that says what to fix."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"{path}: cannot be read: {e}") from e
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start + 1}, line {line}): save it as UTF-8") from e
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from e
    except RecursionError as e:  # tomllib recurses once per nested array or inline table
        raise ConfigError(f"{path}: arrays or inline tables nested too deeply to be settings") from e


def _adapter_keys(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, tuple[type[Adapter], dict[str, Any]]]]:
    """Take the keys each ``[providers.NAME]`` table has beyond the common ones out of ``data``, with the adapter
    that declares them. A table whose adapter is unknown keeps them, and they are reported as unknown keys."""
    from .adapters._registry import adapter_class  # adapters are imported only for the providers configured

    providers = data.get("providers")
    if not isinstance(providers, Mapping):
        return data, {}
    common = ProviderConfig.model_fields
    tables: dict[str, Any] = {}
    own: dict[str, tuple[type[Adapter], dict[str, Any]]] = {}
    for name, table in providers.items():
        tables[name] = table
        if not isinstance(table, Mapping) or common.keys() >= table.keys():
            continue
        adapter = table.get("adapter") or name
        try:
            cls = adapter_class(adapter) if isinstance(adapter, str) else None
        except ConfigError:
            cls = None
        if cls is None:
            continue
        own[name] = (cls, {k: v for k, v in table.items() if k not in common})
        tables[name] = {k: v for k, v in table.items() if k in common}
    return {**data, "providers": tables}, own


def adapter_options(
    provider: str, adapter: type[Adapter], keys: Mapping[str, Any], origin: str = "settings"
) -> AdapterSettings:
    """``[providers.NAME]``'s adapter-declared ``keys``, validated against ``adapter.settings_model``.

    Raises:
        ConfigError: A key is unknown to the adapter or invalid; the message names it (``providers.NAME.key``).
    """
    try:
        return adapter.settings_model.model_validate(keys)
    except ValidationError as e:
        raise ConfigError(_explain(e, origin, ("providers", provider), adapter.settings_model,
                                   also=ProviderConfig.model_fields)) from _scrubbed(e)
