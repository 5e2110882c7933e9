"""The public data types: messages in, results out, and what every call used and cost."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Generic, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr
from typing_extensions import TypeVar as DefaultedTypeVar

from ._constants import CURRENCY, MAX_USAGE_COUNT
from ._display import HTML_CHARS, Shown, html_table, preview
from ._money import Money, money

if TYPE_CHECKING:
    from ._exceptions import ProviderError

__all__ = [
    "Attempt",
    "BatchJob",
    "BatchStatus",
    "Chunk",
    "Completion",
    "ContentPart",
    "Cost",
    "CostLine",
    "Embeddings",
    "FineTuneCheckpoint",
    "FineTuneEvent",
    "FineTuneJob",
    "FineTuneStatus",
    "ImagePart",
    "Message",
    "Prediction",
    "PredictionStatus",
    "PriceSource",
    "RerankHit",
    "Reranking",
    "TextPart",
    "ToolCall",
    "Usage",
]

Role = Literal["system", "developer", "user", "assistant", "tool"]


_CONSTANT_DEFAULTS = (type(None), bool, int, float, str)
_PYDANTIC_PRIVATE_INIT = ("pydantic._internal._model_construction", "init_private_attributes")


def _private_init(defaults: dict[str, Any]) -> Callable[[BaseModel, Any], None]:
    """A ``model_post_init`` that sets a new instance's private attributes to their constant ``defaults``: what
    pydantic's own set-up does, without its calls per attribute (a few µs per object on every call's results)."""

    def model_post_init(self: BaseModel, context: Any, /) -> None:
        if getattr(self, "__pydantic_private__", None) is None:
            object.__setattr__(self, "__pydantic_private__", dict(defaults))

    model_post_init._computekit_private_init = True  # type: ignore[attr-defined]
    return model_post_init


def _only_sets_privates(func: Any) -> bool:
    """Whether ``func`` (a class's ``model_post_init``) only sets private attributes: pydantic's own set-up,
    ours, or pydantic's wrapping of an inherited one of those (``__wrapped__``)."""
    while func is not None:
        if not (getattr(func, "_computekit_private_init", False)
                or (getattr(func, "__module__", None), getattr(func, "__name__", None)) == _PYDANTIC_PRIVATE_INIT):
            return False
        func = getattr(func, "__wrapped__", None)
    return True


class _Model(BaseModel):
    # defer_build: schemas are built on first use, not at import (import time is a feature of this SDK).
    model_config = ConfigDict(extra="forbid", frozen=False, arbitrary_types_allowed=True, defer_build=True)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        privates = cls.__private_attributes__
        if not privates or not _only_sets_privates(cls.__dict__.get("model_post_init")):
            return
        # A private attribute without a default (pydantic's ``PydanticUndefined``) is not a constant: pydantic's.
        defaults: dict[str, Any] = {name: attr.default for name, attr in privates.items()}
        if all(attr.default_factory is None for attr in privates.values()) and all(
                type(value) in _CONSTANT_DEFAULTS for value in defaults.values()):
            cls.model_post_init = _private_init(defaults)  # type: ignore[method-assign]


class _Readable:
    """A one-line repr of the facts a person looks for, and the same (in more detail) as HTML in notebooks."""

    def _facts(self) -> list[tuple[str, Any]]:
        raise NotImplementedError

    def _details(self) -> list[tuple[str, Any]]:
        return self._facts()

    def __repr_args__(self) -> Any:  # pydantic builds repr() (and str()) from these
        return self._facts()

    def _repr_html_(self) -> str:
        return html_table(type(self).__name__, self._details())


def _cost_shown(cost: Cost | None) -> Shown:
    if cost is None:
        return Shown("unknown")
    return Shown(str(cost) if cost.total is not None else "unpriced")


_M = TypeVar("_M", bound=BaseModel)


def _adopt(obj: _M, fresh: Any) -> _M:
    """Make ``obj`` (the job the user holds) the latest state ``fresh``, in place, and return it: after
    ``p.wait()`` or ``job.refresh()``, ``p.status`` is current without rebinding ``p``."""
    if isinstance(fresh, type(obj)) and fresh is not obj:
        for name in type(obj).model_fields:
            setattr(obj, name, getattr(fresh, name))
        if fresh.__pydantic_private__ is not None:
            obj.__pydantic_private__ = dict(fresh.__pydantic_private__)
    return obj


DEFAULT_CLIENTS: dict[str, Callable[[], Any]] = {}
"""The module-level clients (``"sync"``, ``"async"``), registered by :mod:`computekit._defaults` as it is
imported: a result that needs one (``FineTuneJob.attach()``) finds it here, so data types never import the
client layer above them."""


def _default_client(kind: str) -> Any:
    try:
        return DEFAULT_CLIENTS[kind]()
    except KeyError:
        raise RuntimeError("import computekit first: the module-level clients are not registered") from None


def _adopting(obj: _M, call: Callable[[], Any], attr: str) -> _M:
    """Run a lifecycle call and adopt its answer; an error that carries the last state (``attr``) is adopted
    too before it is raised, so the object the user holds is never staler than the exception."""
    try:
        return _adopt(obj, call())
    except Exception as e:
        _adopt(obj, getattr(e, attr, None))
        raise


async def _async_adopting(obj: _M, call: Callable[[], Awaitable[Any]], attr: str) -> _M:
    """:func:`_adopting` for async clients."""
    try:
        return _adopt(obj, await call())
    except Exception as e:
        _adopt(obj, getattr(e, attr, None))
        raise


def _lifecycle_of(namespace: Any, noun: str, var: str, method: str, want_async: bool) -> Any:
    """A client's lifecycle namespace (``client.predictions``, ``client.finetunes``) for a result method; a
    sync method on an async client's result (or the other way round) fails at once, saying what to call."""
    if bool(namespace.is_async) != want_async:
        from ._exceptions import InvalidRequestError

        if want_async:
            raise InvalidRequestError(f"this {noun} came from a sync Client: call {var}.{method}(...), not "
                                      f"{var}.async_{method}(...)")
        prefix = "" if method == "stream" else "await "
        raise InvalidRequestError(f"this {noun} came from an AsyncClient: use `{prefix}{var}.async_{method}(...)`, "
                                  f"not {var}.{method}(...)")
    return namespace


# --------------------------------------------------------------------------------------------- messages


class TextPart(_Model):
    """A text part of a multi-part message."""

    type: Literal["text"] = "text"
    text: str


class ImagePart(_Model):
    """An image part of a multi-part message: an ``https:`` or ``data:`` URL."""

    type: Literal["image_url"] = "image_url"
    url: str
    detail: Literal["auto", "low", "high"] | None = None


ContentPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class ToolCall(_Model):
    """A call the model asks the application to make.

    Attributes:
        id: The provider's id for this call; send it back in the tool result's ``tool_call_id``.
        name: The tool (function) name.
        arguments: The arguments as the model wrote them (a JSON string; it may be invalid JSON).
        signature: An opaque token the provider attached to the call and needs back with it on the next turn
            (Gemini's thought signature); sent back as it came when the message is, ``None`` when there is none.
    """

    id: str
    name: str
    arguments: str = ""
    signature: str | None = None

    def parsed_arguments(self) -> Any:
        """The arguments decoded from JSON.

        Raises:
            ValueError: The model wrote arguments that are not valid JSON.
        """
        return json.loads(self.arguments) if self.arguments else {}


class Message(_Model):
    """One chat message.

    ``content`` is a string or a list of parts (text, images). An assistant message may carry ``tool_calls``;
    a ``tool`` message answers one of them with ``tool_call_id``.
    """

    role: Role
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    provider_fields: dict[str, dict[str, Any]] | None = None
    """What a provider put on this message beyond the fields above, by the provider's name (``{"deepseek":
    {"reasoning_content": ""}}``; Anthropic's whole ``content`` when it holds thinking or server-tool blocks). They
    are sent back unchanged when the message goes to that same provider again (some refuse a conversation whose
    assistant turns lost them), and never to another one (which could refuse them)."""

    @property
    def text(self) -> str:
        """The text of the message, parts joined."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text for p in self.content if isinstance(p, TextPart))


# --------------------------------------------------------------------------------------------- usage & cost


# A usage count or amount: whole (counts), never negative, never absurd (see MAX_USAGE_COUNT). Checked by
# pydantic-core where a Usage is built, so an adapter's translation needs no checks of its own.
_Count = Annotated[int, Field(ge=0, le=MAX_USAGE_COUNT)]
_Amount = Annotated[Decimal, Field(ge=0, le=MAX_USAGE_COUNT, allow_inf_nan=False)]


class Usage(_Model):
    """What a call used, as the provider reported it.

    Token counts follow one convention whatever the provider: ``input_tokens`` counts **all** input tokens,
    including ``cached_input_tokens`` and ``cache_write_tokens``; ``output_tokens`` counts all output tokens,
    including ``reasoning_tokens``. Adapters convert providers that count otherwise.

    Every count is a whole number from 0 to ``MAX_USAGE_COUNT`` (ten billion), and ``gpu_seconds`` and ``units``
    are finite amounts in the same range: building a Usage from anything else raises pydantic's
    ``ValidationError``, which the client reports as a :class:`~computekit.MalformedResponseError`.
    """

    input_tokens: _Count = 0
    output_tokens: _Count = 0
    cached_input_tokens: _Count = 0
    cache_write_tokens: _Count = 0
    cache_write_1h_tokens: _Count = 0
    """Of ``cache_write_tokens``, those written with a 1-hour lifetime (Anthropic prices them higher)."""
    reasoning_tokens: _Count = 0
    input_audio_tokens: _Count = 0
    cached_input_audio_tokens: _Count = 0
    """Of ``cached_input_tokens``, those of audio (Gemini prices them at a cache rate of their own)."""
    output_audio_tokens: _Count = 0
    output_image_tokens: _Count = 0
    """Of ``output_tokens``, those of generated images (Gemini's image models price them apart)."""
    requests: _Count = 1
    gpu_seconds: _Amount | None = None
    hardware: str | None = None
    images: _Count | None = None
    units: dict[str, _Amount] = Field(default_factory=dict)
    """Other billed units the provider reported (search units, credits, characters ...)."""

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        units = dict(self.units)
        for k, v in other.units.items():
            units[k] = units.get(k, Decimal(0)) + v
        gpu: Decimal | None
        if self.gpu_seconds is None and other.gpu_seconds is None:
            gpu = None
        else:
            gpu = (self.gpu_seconds or Decimal(0)) + (other.gpu_seconds or Decimal(0))
        images = None if self.images is None and other.images is None else (self.images or 0) + (other.images or 0)
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cached_input_tokens=self.cached_input_tokens + other.cached_input_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
            cache_write_1h_tokens=self.cache_write_1h_tokens + other.cache_write_1h_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
            input_audio_tokens=self.input_audio_tokens + other.input_audio_tokens,
            cached_input_audio_tokens=self.cached_input_audio_tokens + other.cached_input_audio_tokens,
            output_audio_tokens=self.output_audio_tokens + other.output_audio_tokens,
            output_image_tokens=self.output_image_tokens + other.output_image_tokens,
            requests=self.requests + other.requests,
            gpu_seconds=gpu,
            hardware=self.hardware or other.hardware,
            images=images,
            units=units,
        )


class PriceSource(_Model):
    """Which price table priced a call, and how current it is.

    Attributes:
        table: The table's name (``"genai-prices"``, ``"computekit:tokens"``, ``"config"`` ...).
        version: The table's version, when it has one (the genai-prices package version).
        as_of: The date the table's prices were last checked or took effect.
        url: Where the prices were read from.
    """

    table: str
    version: str | None = None
    as_of: dt.date | None = None
    url: str | None = None

    def __str__(self) -> str:
        out = self.table + (f" {self.version}" if self.version else "")
        return out + (f" (as of {self.as_of.isoformat()})" if self.as_of else "")


# BaseModel's own slots, set through their descriptors (what object.__setattr__ would find, without the search).
_new_object = object.__new__
_set_dict, _set_fields_set, _set_extra, _set_private = (
    vars(BaseModel)[name].__set__
    for name in ("__dict__", "__pydantic_fields_set__", "__pydantic_extra__", "__pydantic_private__"))


def _built(cls: type[_M], values: dict[str, Any], fields_set: set[str]) -> _M:
    """The instance of ``cls`` that validating ``values`` (all its fields, in order, already of their types) would
    build, given ``fields_set`` as passed: pydantic's own ``model_construct`` in five steps (it and validation cost
    microseconds, and pricing builds a few of these on every call). Only for models without private attributes."""
    obj = _new_object(cls)
    _set_dict(obj, values)
    _set_fields_set(obj, fields_set)
    _set_extra(obj, None)
    _set_private(obj, None)
    return obj


class CostLine(_Model):
    """One charge: ``quantity`` units at ``unit_price`` each (``amount = quantity * unit_price``)."""

    item: str
    quantity: Decimal
    unit: str
    unit_price: Annotated[Decimal, AfterValidator(Money)]
    amount: Annotated[Decimal, AfterValidator(Money)]

    @classmethod
    def _priced(cls, item: str, quantity: Decimal, unit: str, unit_price: Money, amount: Money) -> CostLine:
        """``CostLine(item=..., ...)``, unvalidated: for pricing, whose values already have the fields' types."""
        return _built(cls, {"item": item, "quantity": quantity, "unit": unit, "unit_price": unit_price,
                            "amount": amount}, {"item", "quantity", "unit", "unit_price", "amount"})


class Cost(_Readable, _Model):
    """What a call cost.

    Attributes:
        total: The total in ``currency``; ``None`` when it could not be priced (never 0 for "unknown").
        currency: Always ``"USD"`` today.
        lines: One line per charge (input tokens, cached input, output ...).
        price_source: Which table priced it, and its date.
        estimated: True when the provider reported no billable quantity and computekit estimated one.
        reason: Why ``total`` is ``None``, when it is.
        table_total: computekit's own price for the same usage, from its price tables, when ``total`` is the
            figure the provider said it billed (``price_source`` then names where that figure was read); ``None``
            otherwise, or when the tables do not price the model.
    """

    total: Annotated[Decimal | None, AfterValidator(money)]
    """A :class:`~computekit.Money`: a ``Decimal`` that prints plainly (``0.00000008``, never ``8E-8``)."""
    currency: str = CURRENCY
    lines: list[CostLine] = Field(default_factory=list)
    price_source: PriceSource | None = None
    estimated: bool = False
    reason: str | None = None
    table_total: Decimal | None = None

    @classmethod
    def unknown(cls, reason: str) -> Cost:
        """A cost that could not be computed, with the reason."""
        if type(reason) is not str:
            return cls(total=None, reason=reason)  # validated: says what is wrong with it
        # Unvalidated otherwise: every result starts with one ("not priced yet"), on every call.
        return _built(cls, {"total": None, "currency": CURRENCY, "lines": [], "price_source": None,
                            "estimated": False, "reason": reason, "table_total": None}, {"total", "reason"})

    @classmethod
    def _priced(cls, total: Money, lines: list[CostLine], price_source: PriceSource) -> Cost:
        """``Cost(total=..., lines=..., price_source=...)``, unvalidated: for pricing, whose values already have
        the fields' types (``lines`` is the cost's own, not shared)."""
        return _built(cls, {"total": total, "currency": CURRENCY, "lines": lines, "price_source": price_source,
                            "estimated": False, "reason": None, "table_total": None},
                      {"total", "lines", "price_source"})

    def __str__(self) -> str:
        if self.total is None:
            return f"unpriced ({self.reason})" if self.reason else "unpriced"
        return f"${self.total:f}" + (" (estimated)" if self.estimated else "")

    def _facts(self) -> list[tuple[str, Any]]:
        if self.total is None:
            return [("total", None), ("reason", self.reason)]
        facts: list[tuple[str, Any]] = [("total", Shown(str(self)))]
        if self.lines:
            facts.append(("lines", len(self.lines)))
        if self.price_source is not None:
            facts.append(("price_source", Shown(str(self.price_source))))
        return facts

    def _details(self) -> list[tuple[str, Any]]:
        lines = [(f"  {ln.item}", f"{ln.quantity} {ln.unit} x ${ln.unit_price} = ${ln.amount}") for ln in self.lines]
        return [("total", str(self)), *lines, ("price source", self.price_source), ("reason", self.reason)]


def sum_costs(costs: list[Cost | None]) -> Decimal | None:
    """The sum of known totals; ``None`` when any is unknown (a partial sum would understate spend)."""
    total = Decimal(0)
    for c in costs:
        if c is None or c.total is None:
            return None
        total += c.total
    return total


# --------------------------------------------------------------------------------------------- attempts


class Attempt(_Model):
    """One try of one request on one target: successes, failures and fallbacks all get one.

    Attributes:
        provider: The provider tried.
        model: The model tried.
        outcome: ``"success"``, ``"error"``, or ``"canceled"`` (a stream the caller closed before its end:
            the provider billed what it generated, but reported no usage, so its cost is unknown).
        error: The error's type and message (never a secret), when it failed.
        error_type: The error class name, when it failed.
        status: The HTTP status, when one arrived.
        latency_s: Seconds from sending to the full answer (or the failure).
        cost: What this attempt cost; ``None`` when nothing was billed or it could not be priced.
        request_id: The provider's request id.
        started_at: When the attempt started (UTC).
    """

    provider: str
    model: str
    outcome: Literal["success", "error", "canceled"]
    error: str | None = None
    error_type: str | None = None
    status: int | None = None
    latency_s: float = 0.0
    cost: Cost | None = None
    request_id: str | None = None
    started_at: dt.datetime
    _response_id: str | None = PrivateAttr(default=None)
    """The response's own id (a completion's, a prediction's), for the attempt's OpenTelemetry span."""
    _response_model: str | None = PrivateAttr(default=None)
    """The exact model that answered, for the attempt's OpenTelemetry span."""

    @property
    def target(self) -> str:
        """``provider:model``."""
        return f"{self.provider}:{self.model}"


# --------------------------------------------------------------------------------------------- results


class _Result(_Model):
    provider: str
    model: str
    usage: Usage = Field(default_factory=Usage)
    cost: Cost = Field(default_factory=lambda: Cost.unknown("not priced yet"))
    attempts: list[Attempt] = Field(default_factory=list)
    request_id: str | None = None
    raw: Any = Field(default=None, repr=False)
    """The provider's own response (parsed JSON)."""
    _usage_reported: bool = PrivateAttr(default=True)
    _served_by: str | None = PrivateAttr(default=None)
    """The upstream provider a router says served the call (its price depends on it), when one says so."""

    @property
    def target(self) -> str:
        """``provider:model`` of the target that answered."""
        return f"{self.provider}:{self.model}"


ParsedT = DefaultedTypeVar("ParsedT", default=Any)  # a bare Completion is Completion[Any]


class Completion(_Readable, _Result, Generic[ParsedT]):
    """The result of ``complete()``; ``Completion[Person]`` when ``response_format=Person``.

    Attributes:
        text: The generated text (empty when the model only called tools).
        message: The assistant message, ready to append to a conversation.
        tool_calls: The tool calls the model made.
        finish_reason: Normalised: ``stop``, ``length``, ``tool_calls``, ``content_filter``, or the
            provider's own word.
        id: The provider's id for the completion.
        service_tier: The tier that served the call (it changes the price), when reported.
        response_model: The exact model version that answered, when reported.
        parsed: With ``response_format=`` a type (a pydantic model, ``list[int]`` ...): the answer validated
            into it. ``None`` otherwise.
        refusal: The model's refusal message, when it declined to answer (OpenAI's ``refusal``, Anthropic's
            ``refusal`` stop reason).
    """

    text: str = ""
    message: Message = Field(default_factory=lambda: Message(role="assistant", content=""))
    tool_calls: list[ToolCall] = Field(default_factory=list)
    finish_reason: str | None = None
    id: str | None = None
    service_tier: str | None = None
    response_model: str | None = None
    refusal: str | None = None
    parsed: ParsedT | None = Field(default=None, repr=False)

    def _facts(self) -> list[tuple[str, Any]]:
        facts: list[tuple[str, Any]] = [("target", Shown(self.target))]
        if self.text or not self.tool_calls:
            facts.append(("text", preview(self.text)))
        if self.tool_calls:
            facts.append(("tool_calls", Shown(", ".join(f"{c.name}()" for c in self.tool_calls))))
        facts += [("tokens", Shown(f"{self.usage.input_tokens}→{self.usage.output_tokens}")),
                  ("cost", _cost_shown(self.cost))]
        return facts

    def _details(self) -> list[tuple[str, Any]]:
        calls = "\n".join(f"{c.name}({preview(c.arguments, 200)})" for c in self.tool_calls)
        return [("target", self.target), ("text", preview(self.text, HTML_CHARS)), ("tool calls", calls),
                ("finish reason", self.finish_reason),
                ("tokens", f"{self.usage.input_tokens:,} in, {self.usage.output_tokens:,} out"),
                ("cost", str(self.cost)), ("price source", self.cost.price_source),
                ("attempts", len(self.attempts)), ("request id", self.request_id)]


class Chunk(_Model):
    """One piece of a streamed completion.

    Attributes:
        text: The new text in this chunk.
        tool_calls: Tool-call fragments: ``index``, and ``id``/``name``/``arguments`` as they arrive.
        finish_reason: Set on the chunk that ends a choice.
        usage: Set on the last chunk when the provider reports usage there.
    """

    text: str = ""
    tool_calls: list[dict[str, Any]] = Field(default_factory=list)
    finish_reason: str | None = None
    usage: Usage | None = None
    raw: Any = Field(default=None, repr=False)


class RerankHit(_Model):
    """One reranked document: its position in the input, its relevance, and the document when returned."""

    index: int
    relevance_score: float
    document: Any = None


class Reranking(_Result):
    """The result of ``rerank()``: hits, most relevant first."""

    results: list[RerankHit] = Field(default_factory=list)


class Embeddings(_Readable, _Result):
    """The result of ``embed()``: one vector per input, in input order."""

    vectors: list[list[float]] = Field(default_factory=list, repr=False)

    @property
    def dimensions(self) -> int:
        """Length of each vector (0 when there are none)."""
        return len(self.vectors[0]) if self.vectors else 0

    def _facts(self) -> list[tuple[str, Any]]:
        return [("target", Shown(self.target)), ("vectors", Shown(f"{len(self.vectors)}x{self.dimensions}")),
                ("tokens", self.usage.input_tokens), ("cost", _cost_shown(self.cost))]

    def _details(self) -> list[tuple[str, Any]]:
        return [("target", self.target), ("vectors", f"{len(self.vectors)} x {self.dimensions} dimensions"),
                ("tokens", f"{self.usage.input_tokens:,}"), ("cost", str(self.cost)),
                ("price source", self.cost.price_source), ("request id", self.request_id)]


PredictionStatus = Literal["queued", "running", "succeeded", "failed", "canceled"]
_TERMINAL = frozenset({"succeeded", "failed", "canceled"})


class Prediction(_Readable, _Result):
    """A run of a model on a serverless GPU host (``predict()``).

    ``status`` is normalised across hosts: ``queued | running | succeeded | failed | canceled``. The cost comes
    from what the host reports (GPU-seconds x the hardware's per-second price) once the run has finished.

    Attributes:
        id: The host's id for the prediction.
        status: Normalised status.
        output: The model's output (file URLs, text pieces, JSON ...), once there is one.
        logs: The run's logs so far.
        error: The host's error message, when it failed.
        metrics: The host's metrics (``predict_time`` ...).
        urls: The host's own URLs (get, cancel, stream ...).
    """

    id: str
    status: PredictionStatus
    output: Any = None
    logs: str = ""
    error: Any = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    urls: dict[str, str] = Field(default_factory=dict)
    _client: Any = PrivateAttr(default=None)
    _recorded: bool = PrivateAttr(default=False)
    _hardware_assumed: bool = PrivateAttr(default=False)
    _tags: Any = PrivateAttr(default=None)
    _wall_time: bool = PrivateAttr(default=False)
    """Set by an adapter whose host bills instance time but reports none: the call's measured time is used
    (and the cost is marked estimated)."""

    @property
    def done(self) -> bool:
        """Whether the run has ended (succeeded, failed or canceled)."""
        return self.status in _TERMINAL

    def _facts(self) -> list[tuple[str, Any]]:
        facts: list[tuple[str, Any]] = [("target", Shown(self.target)), ("id", self.id), ("status", self.status)]
        if self.output is not None:
            facts.append(("output", preview(self.output)))
        if self.error:
            facts.append(("error", preview(self.error)))
        return [*facts, ("cost", _cost_shown(self.cost))]

    def _details(self) -> list[tuple[str, Any]]:
        return [("target", self.target), ("id", self.id), ("status", self.status),
                ("output", None if self.output is None else preview(self.output, HTML_CHARS)),
                ("error", self.error), ("GPU seconds", self.usage.gpu_seconds), ("hardware", self.usage.hardware),
                ("cost", str(self.cost)), ("price source", self.cost.price_source)]

    def _bound_client(self) -> Any:
        if self._client is None:
            raise RuntimeError("this prediction is not attached to a client (it was built by hand)")
        return self._client

    def _bind(self, client: Any, tags: Any) -> Prediction:
        """Attach the client that follows this run (and the tags its ledger row gets)."""
        self._client, self._tags = client, tags
        return self

    def _set_hardware(self, hardware: str | None, assumed: bool) -> None:
        self.usage.hardware, self._hardware_assumed = hardware, assumed

    def _carry_from(self, old: Prediction) -> Prediction:
        """A fresh state of ``old``'s run keeps what the host does not send again: its hardware, its client,
        tags and attempts, and whether it is in the ledger."""
        self.usage.hardware, self._hardware_assumed = old.usage.hardware, old._hardware_assumed
        self._client, self._recorded, self._tags = old._client, old._recorded, old._tags
        self.attempts = old.attempts
        return self

    def _lifecycle(self, method: str, want_async: bool) -> Any:
        """The client's ``predictions``, after checking that ``method`` suits it (sync or async).

        Raises:
            InvalidRequestError: A sync method on an async client's prediction, or the other way round.
        """
        return _lifecycle_of(self._bound_client().predictions, "prediction", "p", method, want_async)

    def refresh(self) -> Prediction:
        """Fetch the latest state from the host (sync clients; ``client.predictions.refresh(p)``), in place.

        Raises:
            InvalidRequestError: The prediction came from an :class:`~computekit.AsyncClient` (use
                ``await p.async_refresh()``).
            ProviderError: The host failed after retries.
        """
        ns = self._lifecycle("refresh", False)
        return _adopting(self, lambda: ns.refresh(self), "prediction")

    def wait(self, timeout: float | None = None, poll_interval: float | None = None, progress: Any = False
             ) -> Prediction:
        """Poll until the run ends, in place (``client.predictions.wait(p)``); on timeout the remote run is
        canceled (so nothing keeps billing).

        Args:
            timeout: Seconds to wait.
            poll_interval: Seconds between polls (default: 0.5 s, growing to 5 s).
            progress: Show status, elapsed time and the latest log line: ``True`` (on stderr) or a
                ``rich.console.Console``.

        Raises:
            InvalidRequestError: The prediction came from an :class:`~computekit.AsyncClient` (use
                ``await p.async_wait()``).
            PredictionFailedError: The run failed (its GPU time was still billed, and is in the ledger).
            PredictionTimeoutError: ``timeout`` passed first.
        """
        ns = self._lifecycle("wait", False)
        return _adopting(self, lambda: ns.wait(self, timeout, poll_interval, progress=progress), "prediction")

    def stream(self, poll_interval: float | None = None) -> Any:
        """The run's output as the host streams it, piece by piece (sync clients); a
        :class:`~computekit.PredictionStream` whose ``result`` is the ended, priced prediction.

        Args:
            poll_interval: Seconds between polls of a polled stream (RunPod); default 0.5 s.

        Raises:
            InvalidRequestError: The prediction came from an :class:`~computekit.AsyncClient` (use
                ``p.async_stream()``).
            UnsupportedCapabilityError: The host, or this model, does not stream (raised before any request).
            PredictionFailedError: While iterating: the run failed (its cost is in the ledger).
            ProviderError: While iterating: the host failed.
        """
        return self._lifecycle("stream", False).stream(self, poll_interval)

    def cancel(self) -> Prediction:
        """Cancel the run on the host, in place (``client.predictions.cancel(p)``).

        Raises:
            InvalidRequestError: The prediction came from an :class:`~computekit.AsyncClient` (use
                ``await p.async_cancel()``).
            ProviderError: The host refused or failed.
        """
        ns = self._lifecycle("cancel", False)
        return _adopting(self, lambda: ns.cancel(self), "prediction")

    async def async_refresh(self) -> Prediction:
        """:meth:`refresh` for async clients.

        Raises:
            InvalidRequestError: The prediction came from a sync :class:`~computekit.Client` (use ``p.refresh()``).
            ProviderError: The host failed after retries.
        """
        ns = self._lifecycle("refresh", True)
        return await _async_adopting(self, lambda: ns.refresh(self), "prediction")

    async def async_wait(self, timeout: float | None = None, poll_interval: float | None = None,
                         progress: Any = False) -> Prediction:
        """:meth:`wait` for async clients.

        Raises:
            InvalidRequestError: The prediction came from a sync :class:`~computekit.Client` (use ``p.wait()``).
            PredictionFailedError: The run failed (its GPU time was still billed, and is in the ledger).
            PredictionTimeoutError: ``timeout`` passed first.
        """
        ns = self._lifecycle("wait", True)
        return await _async_adopting(self, lambda: ns.wait(self, timeout, poll_interval, progress=progress),
                                     "prediction")

    def async_stream(self, poll_interval: float | None = None) -> Any:
        """:meth:`stream` for async clients: ``async for piece in p.async_stream()``, an
        :class:`~computekit.AsyncPredictionStream`.

        Raises:
            InvalidRequestError: The prediction came from a sync :class:`~computekit.Client` (use ``p.stream()``).
            UnsupportedCapabilityError: The host, or this model, does not stream (raised before any request).
        """
        return self._lifecycle("stream", True).stream(self, poll_interval)

    async def async_cancel(self) -> Prediction:
        """:meth:`cancel` for async clients.

        Raises:
            InvalidRequestError: The prediction came from a sync :class:`~computekit.Client` (use ``p.cancel()``).
            ProviderError: The host refused or failed.
        """
        ns = self._lifecycle("cancel", True)
        return await _async_adopting(self, lambda: ns.cancel(self), "prediction")

    def save(self, directory: str | os.PathLike[str], *, allow_private_network: bool = False) -> list[Path]:
        """Download every file in ``output`` into ``directory`` (created if needed); return the written paths.

        Files are the ``http(s)`` URLs in ``output`` (a URL, or URLs anywhere in its lists and dicts) and its
        ``data:`` URIs. Each is named after the last part of its URL path (``out-0.png``); a repeated name gets a
        numeric suffix (``out-0-1.png``); an existing file of that name is replaced. The download is a plain GET
        **without the provider's key** (output URLs are pre-signed), bounded by ``MAX_DOWNLOAD_BYTES`` (512 MiB).
        A URL (or a redirect) whose host is or resolves to a private, loopback or link-local address is refused:
        a model's output must not make your machine fetch from your own network. Messages never show a URL's
        query (a pre-signed URL's signature).

        Args:
            directory: Where to write the files.
            allow_private_network: Also fetch from private, loopback and link-local addresses (a self-hosted
                model whose outputs live on your own network).

        Raises:
            InvalidRequestError: ``output`` holds no file URL, or the prediction came from an
                :class:`~computekit.AsyncClient` (use ``await p.async_save(directory)``).
            UnsafeURLError: A URL is ambiguous, or its host is not a public address.
            MalformedResponseError: A file name would leave ``directory``, or a file is over the size limit.
            ProviderError: A download failed (``NotFoundError`` for an expired URL ...).
        """
        if self._client is not None:  # one built by hand saves its data: URIs (a download says it has no client)
            self._lifecycle("save", False)
        from . import _outputs

        return _outputs.save(self, directory, lambda *a, **kw: self._lifecycle("save", False).download(*a, **kw),
                             allow_private_network=allow_private_network)

    async def async_save(self, directory: str | os.PathLike[str], *,
                         allow_private_network: bool = False) -> list[Path]:
        """:meth:`save` for async clients.

        Raises:
            InvalidRequestError: The prediction came from a sync :class:`~computekit.Client` (use ``p.save()``).
            UnsafeURLError: A URL is ambiguous, or its host is not a public address.
            ProviderError: A download failed.
        """
        if self._client is not None:
            self._lifecycle("save", True)
        from . import _outputs

        return await _outputs.async_save(
            self, directory, lambda *a, **kw: self._lifecycle("save", True).download(*a, **kw),
            allow_private_network=allow_private_network)


# --------------------------------------------------------------------------------------------- fine-tuning


FineTuneStatus = Literal["validating", "queued", "running", "succeeded", "failed", "canceled"]


class FineTuneEvent(_Model):
    """One event of a fine-tuning job (a log line, or a metrics report).

    Attributes:
        id: The provider's event id, when it has one.
        created_at: When it happened (UTC), when reported.
        level: ``info``, ``warn``, ``error`` ... as the provider says.
        message: The event's text.
        type: ``message`` or ``metrics`` (OpenAI), or the provider's own word.
        data: The event's data (for a metrics event: ``step``, ``train_loss`` ...).
    """

    id: str | None = None
    created_at: dt.datetime | None = None
    level: str | None = None
    message: str = ""
    type: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class FineTuneCheckpoint(_Model):
    """A checkpoint a job saved along the way (where the provider offers them).

    Attributes:
        id: The provider's checkpoint id.
        step: The training step it was taken at.
        model: The checkpoint as a computekit model id (``openai:ft:...:ckpt-step-10``), usable in ``complete()``.
        metrics: The metrics reported with it.
        created_at: When it was saved (UTC).
    """

    id: str
    step: int | None = None
    model: str | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    created_at: dt.datetime | None = None


class FineTuneJob(_Readable, _Model):
    """A fine-tuning job (``finetune()``), normalised across providers.

    ``status`` is one of ``validating | queued | running | succeeded | failed | canceled``. ``estimate`` is what
    computekit expected the job to cost before it was launched (``estimated=True``); ``cost`` is the actual cost,
    known once the job has ended and the provider reported its billable quantity (trained tokens, GPU-seconds or
    its own price); until then it is unknown (``total=None``), never 0.

    Attributes:
        id: The provider's job id (``None`` for a dry run: nothing was launched).
        provider: The provider running the job.
        base_model: The model being fine-tuned, as the provider names it.
        status: Normalised status.
        fine_tuned_model: The new model as a computekit model id (``openai:ft:gpt-4o-mini-...``), usable as-is in
            ``complete()`` once the job has succeeded.
        estimate: The cost expected before launch.
        cost: The actual cost (``total=None`` until known).
        trained_tokens: Tokens the provider reports it trained on (all epochs), when it reports them.
        epochs: The number of epochs, when known.
        hyperparameters: The hyperparameters the provider reports.
        training_file: The provider's id (or URL) of the training data.
        validation_file: The provider's id of the validation data, if any.
        error: The provider's error object, when the job failed.
        metrics: The latest training metrics seen (step, loss ...).
        created_at: When the job was created (UTC).
        finished_at: When it ended (UTC).
        dry_run: True for ``finetune(..., dry_run=True)``: validated and estimated, nothing uploaded or launched.
        raw: The provider's own job object.
    """

    id: str | None = None
    provider: str
    base_model: str
    status: FineTuneStatus
    fine_tuned_model: str | None = None
    estimate: Cost | None = None
    cost: Cost = Field(default_factory=lambda: Cost.unknown("the job has not ended: its cost is known when it ends"))
    trained_tokens: int | None = None
    epochs: int | float | None = None
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    training_file: str | None = None
    validation_file: str | None = None
    error: Any = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    created_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    dry_run: bool = False
    attempts: list[Attempt] = Field(default_factory=list)
    request_id: str | None = None
    raw: Any = Field(default=None, repr=False)
    _client: Any = PrivateAttr(default=None)
    _recorded: bool = PrivateAttr(default=False)
    _tags: Any = PrivateAttr(default=None)

    @property
    def done(self) -> bool:
        """Whether the job has ended (succeeded, failed or canceled)."""
        return self.status in _TERMINAL

    @property
    def target(self) -> str:
        """``provider:base_model``."""
        return f"{self.provider}:{self.base_model}"

    def _facts(self) -> list[tuple[str, Any]]:
        facts: list[tuple[str, Any]] = [("target", Shown(self.target)), ("id", self.id), ("status", self.status)]
        if self.fine_tuned_model:
            facts.append(("fine_tuned_model", self.fine_tuned_model))
        if self.cost.total is None and self.estimate is not None and self.estimate.total is not None:
            return [*facts, ("estimate", _cost_shown(self.estimate))]
        return [*facts, ("cost", _cost_shown(self.cost))]

    def _details(self) -> list[tuple[str, Any]]:
        return [("target", self.target), ("id", self.id), ("status", self.status),
                ("fine-tuned model", self.fine_tuned_model), ("trained tokens", self.trained_tokens),
                ("epochs", self.epochs), ("error", self.error),
                ("estimate", None if self.estimate is None else str(self.estimate)), ("cost", str(self.cost))]

    def _bound_client(self) -> Any:
        if self.dry_run:
            from ._exceptions import InvalidRequestError

            raise InvalidRequestError("this job is a dry run: nothing was launched (call finetune() without dry_run)")
        if self._client is None:
            raise RuntimeError("this job is not attached to a client: use FineTuneJob.attach(id, client=...)")
        return self._client

    def _bind(self, client: Any, tags: Any) -> FineTuneJob:
        """Attach the client that follows this job (and the tags its ledger row gets)."""
        self._client, self._tags = client, tags
        return self

    def _carry_from(self, old: FineTuneJob) -> FineTuneJob:
        """A fresh state of ``old``'s job keeps its estimate, client, tags and ledger state (and the metrics
        seen so far, when the provider sends none)."""
        self.estimate = old.estimate
        self._client, self._recorded, self._tags = old._client, old._recorded, old._tags
        if old._recorded:
            self.cost = old.cost
        if not self.metrics and old.metrics:
            self.metrics = old.metrics
        return self

    def _lifecycle(self, method: str, want_async: bool) -> Any:
        """The client's ``finetunes``, after checking that ``method`` suits it (sync or async).

        Raises:
            InvalidRequestError: A dry run; or a sync method on an async client's job, or the other way round.
        """
        return _lifecycle_of(self._bound_client().finetunes, "job", "job", method, want_async)

    @classmethod
    def attach(cls, job_id: str, *, client: Any = None) -> FineTuneJob:
        """Re-attach to a job started elsewhere (another process, yesterday): fetch its state
        (``client.finetunes.attach(job_id)``).

        Args:
            job_id: ``"provider:job-id"`` (``"openai:ftjob-abc123"``).
            client: The :class:`~computekit.Client` to follow it with (default: the module-level client).

        Raises:
            InvalidRequestError: ``job_id`` is not ``provider:id``, or ``client`` is an AsyncClient (use
                ``await FineTuneJob.async_attach(...)``).
            UnsupportedCapabilityError: The provider has no fine-tuning API.
            ProviderError: The provider failed (``NotFoundError`` for an unknown job).
        """
        if client is None:
            client = _default_client("sync")
        finetunes = _lifecycle_of(client.finetunes, "client", "FineTuneJob", "attach", False)
        return finetunes.attach(job_id)  # type: ignore[no-any-return]

    @classmethod
    async def async_attach(cls, job_id: str, *, client: Any = None) -> FineTuneJob:
        """:meth:`attach` with an :class:`~computekit.AsyncClient` (default: the module-level async client).

        Raises:
            InvalidRequestError: ``job_id`` is not ``provider:id``, or ``client`` is a sync Client.
            UnsupportedCapabilityError: The provider has no fine-tuning API.
            ProviderError: The provider failed (``NotFoundError`` for an unknown job).
        """
        if client is None:
            client = _default_client("async")
        finetunes = _lifecycle_of(client.finetunes, "client", "FineTuneJob", "attach", True)
        return await finetunes.attach(job_id)  # type: ignore[no-any-return]

    def refresh(self) -> FineTuneJob:
        """Fetch the job's latest state, in place (sync clients; ``client.finetunes.refresh(job)``); a job that
        has ended is priced and recorded once.

        Raises:
            InvalidRequestError: The job came from an AsyncClient (use ``await job.async_refresh()``).
            ProviderError: The provider failed after retries.
        """
        ns = self._lifecycle("refresh", False)
        return _adopting(self, lambda: ns.refresh(self), "job")

    def wait(self, timeout: float | None = None, poll_interval: float | None = None,
             progress: bool = False) -> FineTuneJob:
        """Poll until the job ends, in place (``client.finetunes.wait(job)``); its actual cost is then written to
        the ledger, once.

        Args:
            timeout: Seconds to wait; the job keeps running when they pass.
            poll_interval: Seconds between polls (default: 5 s, growing to 60 s).
            progress: Show a progress bar with the latest metrics (on a terminal only).

        Raises:
            InvalidRequestError: The job came from an AsyncClient (use ``await job.async_wait()``).
            FineTuneFailedError: The job failed (``body`` is the provider's error object).
            FineTuneTimeoutError: ``timeout`` passed first (the job was not canceled).
            ProviderError: The provider failed after retries.
        """
        ns = self._lifecycle("wait", False)
        return _adopting(self, lambda: ns.wait(self, timeout, poll_interval, progress), "job")

    def cancel(self) -> FineTuneJob:
        """Cancel the job, in place (``client.finetunes.cancel(job)``).

        Raises:
            InvalidRequestError: The job came from an AsyncClient (use ``await job.async_cancel()``).
            ProviderError: The provider refused or failed.
        """
        ns = self._lifecycle("cancel", False)
        return _adopting(self, lambda: ns.cancel(self), "job")

    def events(self, limit: int = 20) -> list[FineTuneEvent]:
        """The job's latest events, oldest first (``client.finetunes.events(job)``).

        Raises:
            InvalidRequestError: The job came from an AsyncClient (use ``await job.async_events()``).
            ProviderError: The provider failed after retries.
        """
        return self._lifecycle("events", False).events(self, limit)  # type: ignore[no-any-return]

    def checkpoints(self) -> list[FineTuneCheckpoint]:
        """The checkpoints the job saved (empty where the provider offers none; ``client.finetunes.checkpoints``).

        Raises:
            InvalidRequestError: The job came from an AsyncClient (use ``await job.async_checkpoints()``).
            ProviderError: The provider failed after retries.
        """
        return self._lifecycle("checkpoints", False).checkpoints(self)  # type: ignore[no-any-return]

    async def async_refresh(self) -> FineTuneJob:
        """:meth:`refresh` for async clients.

        Raises:
            InvalidRequestError: The job came from a sync Client (use ``job.refresh()``).
            ProviderError: The provider failed after retries.
        """
        ns = self._lifecycle("refresh", True)
        return await _async_adopting(self, lambda: ns.refresh(self), "job")

    async def async_wait(self, timeout: float | None = None, poll_interval: float | None = None,
                         progress: bool = False) -> FineTuneJob:
        """:meth:`wait` for async clients.

        Raises:
            InvalidRequestError: The job came from a sync Client (use ``job.wait()``).
            FineTuneFailedError: The job failed.
            FineTuneTimeoutError: ``timeout`` passed first (the job was not canceled).
        """
        ns = self._lifecycle("wait", True)
        return await _async_adopting(self, lambda: ns.wait(self, timeout, poll_interval, progress), "job")

    async def async_cancel(self) -> FineTuneJob:
        """:meth:`cancel` for async clients.

        Raises:
            InvalidRequestError: The job came from a sync Client (use ``job.cancel()``).
            ProviderError: The provider refused or failed.
        """
        ns = self._lifecycle("cancel", True)
        return await _async_adopting(self, lambda: ns.cancel(self), "job")

    async def async_events(self, limit: int = 20) -> list[FineTuneEvent]:
        """:meth:`events` for async clients.

        Raises:
            InvalidRequestError: The job came from a sync Client (use ``job.events()``).
            ProviderError: The provider failed after retries.
        """
        return await self._lifecycle("events", True).events(self, limit)  # type: ignore[no-any-return]

    async def async_checkpoints(self) -> list[FineTuneCheckpoint]:
        """:meth:`checkpoints` for async clients.

        Raises:
            InvalidRequestError: The job came from a sync Client (use ``job.checkpoints()``).
            ProviderError: The provider failed after retries.
        """
        return await self._lifecycle("checkpoints", True).checkpoints(self)  # type: ignore[no-any-return]


BatchStatus = Literal["validating", "in_progress", "finalizing", "completed", "failed", "expired", "canceling",
                      "canceled"]
_BATCH_ENDED = frozenset({"completed", "failed", "expired", "canceled"})


class BatchJob(_Readable, _Model):
    """A batch of ``complete()`` or ``embed()`` calls run by the provider's batch API (``batch()``), normalised.

    ``status`` is one of ``validating | in_progress | finalizing | completed | failed | expired | canceling |
    canceled``. ``estimate`` is what computekit expected before submitting (every request at its ``max_tokens``,
    at the batch price; ``estimated=True``). ``cost`` is the actual cost at the batch price, summed as
    ``results()`` reads the items (each is priced and written to the ledger once); until every result has been
    read it is unknown (``total=None``), never 0. ``synchronous`` is what the same usage would have cost through
    the synchronous API, and ``saved`` the difference.

    Attributes:
        id: The provider's batch id (``None`` for ``estimate_only``: nothing was submitted).
        provider: The provider running the batch.
        model: The model every request runs on. ``""`` for a batch attached by id whose provider's batch object
            names no model (Anthropic's): unknown until results are read, then the first answer's model.
        status: Normalised status; ``provider_status`` keeps the provider's own word.
        kind: ``complete`` or ``embed``.
        total: Requests in the batch, as the provider counts them; until it has counted them (OpenAI counts 0
            while validating), the number this process submitted.
        completed: Requests that succeeded so far.
        failed: Requests that failed so far (expired and canceled ones included).
        estimate: The cost expected before submitting.
        cost: The actual cost at the batch price (``total=None`` until every result has been read).
        synchronous: What the same usage costs through the synchronous API, once the results are read.
        saved: ``synchronous - cost``, once both are known.
        items: How many results have been priced and recorded.
        estimate_only: True for ``batch(..., estimate_only=True)``: checked and estimated, nothing uploaded.
        created_at: When the batch was created (UTC).
        finished_at: When it ended (UTC).
        raw: The provider's own batch object.
    """

    id: str | None = None
    provider: str
    model: str
    status: BatchStatus
    provider_status: str = ""
    kind: Literal["complete", "embed"] = "complete"
    total: int | None = None
    completed: int = 0
    failed: int = 0
    estimate: Cost | None = None
    cost: Cost = Field(default_factory=lambda: Cost.unknown(
        "the batch's results have not all been read: its cost is known once results() has read them"))
    synchronous: Annotated[Decimal | None, AfterValidator(money)] = None
    saved: Annotated[Decimal | None, AfterValidator(money)] = None
    items: int = 0
    estimate_only: bool = False
    created_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    raw: Any = Field(default=None, repr=False)
    _client: Any = PrivateAttr(default=None)
    _tags: Any = PrivateAttr(default=None)
    _state: Any = PrivateAttr(default=None)
    _read: int = PrivateAttr(default=0)
    """Results already priced and recorded by this process (in the order the files give them)."""
    _totals: Any = PrivateAttr(default=None)

    @property
    def done(self) -> bool:
        """Whether the batch has ended (completed, failed, expired or canceled)."""
        return self.status in _BATCH_ENDED

    @property
    def target(self) -> str:
        """``provider:model``."""
        return f"{self.provider}:{self.model}"

    def _facts(self) -> list[tuple[str, Any]]:
        facts: list[tuple[str, Any]] = [("target", Shown(self.target)), ("id", self.id), ("status", self.status)]
        if self.total is not None:
            facts.append(("requests", Shown(f"{self.completed}/{self.total} completed, {self.failed} failed")))
        if self.cost.total is None and self.estimate is not None and self.estimate.total is not None:
            return [*facts, ("estimate", _cost_shown(self.estimate))]
        facts.append(("cost", _cost_shown(self.cost)))
        if self.saved is not None:
            facts.append(("saved", Shown(f"${self.saved:f}")))
        return facts

    def _details(self) -> list[tuple[str, Any]]:
        return [("target", self.target), ("id", self.id), ("status", self.status), ("kind", self.kind),
                ("requests", self.total), ("completed", self.completed), ("failed", self.failed),
                ("estimate", None if self.estimate is None else str(self.estimate)), ("cost", str(self.cost)),
                ("synchronous price", None if self.synchronous is None else f"${self.synchronous:f}"),
                ("saved", None if self.saved is None else f"${self.saved:f}")]

    def _lifecycle(self, method: str, want_async: bool) -> Any:
        """The client's ``batches``, after checking that ``method`` suits it (sync or async).

        Raises:
            InvalidRequestError: An estimate only; or a sync method on an async client's batch, or the other way.
        """
        if self.estimate_only:
            from ._exceptions import InvalidRequestError

            raise InvalidRequestError("this batch is an estimate only: nothing was submitted (call batch() "
                                      "without estimate_only)")
        if self._client is None:
            raise RuntimeError("this batch is not attached to a client: use BatchJob.attach(id, client=...)")
        return _lifecycle_of(self._client.batches, "batch", "job", method, want_async)

    @classmethod
    def attach(cls, batch_id: str, *, client: Any = None) -> BatchJob:
        """Re-attach to a batch submitted elsewhere (another process, yesterday): fetch its state
        (``client.batches.retrieve(batch_id)``). Its results, read here, are recorded in the ledger once in all
        (the rows are keyed by batch and request); budgets are per process, so the submitting process's
        reservation is not settled here (it lapses on its own).

        Args:
            batch_id: ``"provider:batch-id"`` (``"openai:batch_abc123"``).
            client: The :class:`~computekit.Client` to follow it with (default: the module-level client).

        Raises:
            InvalidRequestError: ``batch_id`` is not ``provider:id``, or ``client`` is an AsyncClient (use
                ``await BatchJob.async_attach(...)``).
            UnsupportedCapabilityError: The provider has no batch API.
            ProviderError: The provider failed (``NotFoundError`` for an unknown batch).
        """
        if client is None:
            client = _default_client("sync")
        batches = _lifecycle_of(client.batches, "client", "BatchJob", "attach", False)
        return batches.retrieve(batch_id)  # type: ignore[no-any-return]

    @classmethod
    async def async_attach(cls, batch_id: str, *, client: Any = None) -> BatchJob:
        """:meth:`attach` with an :class:`~computekit.AsyncClient` (default: the module-level async client).

        Raises:
            InvalidRequestError: ``batch_id`` is not ``provider:id``, or ``client`` is a sync Client.
            UnsupportedCapabilityError: The provider has no batch API.
            ProviderError: The provider failed (``NotFoundError`` for an unknown batch).
        """
        if client is None:
            client = _default_client("async")
        batches = _lifecycle_of(client.batches, "client", "BatchJob", "attach", True)
        return await batches.retrieve(batch_id)  # type: ignore[no-any-return]

    def refresh(self) -> BatchJob:
        """Fetch the batch's latest state, in place (sync clients; ``client.batches.refresh(job)``).

        Raises:
            InvalidRequestError: The batch came from an AsyncClient (use ``await job.async_refresh()``).
            ProviderError: The provider failed after retries.
        """
        ns = self._lifecycle("refresh", False)
        return _adopting(self, lambda: ns.refresh(self), "job")

    def wait(self, timeout: float | None = None, poll_interval: float | None = None,
             progress: bool = False) -> BatchJob:
        """Poll until the batch ends, in place (``client.batches.wait(job)``).

        Args:
            timeout: Seconds to wait; the batch keeps running when they pass.
            poll_interval: Seconds between polls (default: 5 s, growing to 60 s).
            progress: Show the request counts as they change (on a terminal only).

        Raises:
            InvalidRequestError: The batch came from an AsyncClient (use ``await job.async_wait()``).
            BatchFailedError: The batch failed as a whole (its input was refused); ``body`` says why.
            BatchTimeoutError: ``timeout`` passed first (the batch was not canceled).
            ProviderError: The provider failed after retries.
        """
        ns = self._lifecycle("wait", False)
        return _adopting(self, lambda: ns.wait(self, timeout, poll_interval, progress), "job")

    def cancel(self) -> BatchJob:
        """Cancel the batch, in place (``client.batches.cancel(job)``); what it ran before is still billed and
        is read with ``results()``.

        Raises:
            InvalidRequestError: The batch came from an AsyncClient (use ``await job.async_cancel()``).
            ProviderError: The provider refused or failed.
        """
        ns = self._lifecycle("cancel", False)
        return _adopting(self, lambda: ns.cancel(self), "job")

    def results(self) -> Iterator[tuple[str, Completion | Embeddings | ProviderError]]:
        """The items' outcomes, ``(custom_id, Completion | Embeddings | ProviderError)``, streamed from the
        provider's result files line by line (``client.batches.results(job)``); each is priced at the batch price
        and recorded in the ledger once.

        Raises:
            InvalidRequestError: The batch came from an AsyncClient (use ``job.async_results()``), or it has not
                ended yet.
            ProviderError: The provider failed after retries.
        """
        return self._lifecycle("results", False).results(self)  # type: ignore[no-any-return]

    async def async_refresh(self) -> BatchJob:
        """:meth:`refresh` for async clients.

        Raises:
            InvalidRequestError: The batch came from a sync Client (use ``job.refresh()``).
            ProviderError: The provider failed after retries.
        """
        ns = self._lifecycle("refresh", True)
        return await _async_adopting(self, lambda: ns.refresh(self), "job")

    async def async_wait(self, timeout: float | None = None, poll_interval: float | None = None,
                         progress: bool = False) -> BatchJob:
        """:meth:`wait` for async clients.

        Raises:
            InvalidRequestError: The batch came from a sync Client (use ``job.wait()``).
            BatchFailedError: The batch failed as a whole.
            BatchTimeoutError: ``timeout`` passed first (the batch was not canceled).
            ProviderError: The provider failed after retries.
        """
        ns = self._lifecycle("wait", True)
        return await _async_adopting(self, lambda: ns.wait(self, timeout, poll_interval, progress), "job")

    async def async_cancel(self) -> BatchJob:
        """:meth:`cancel` for async clients.

        Raises:
            InvalidRequestError: The batch came from a sync Client (use ``job.cancel()``).
            ProviderError: The provider refused or failed.
        """
        ns = self._lifecycle("cancel", True)
        return await _async_adopting(self, lambda: ns.cancel(self), "job")

    def async_results(self) -> AsyncIterator[tuple[str, Completion | Embeddings | ProviderError]]:
        """:meth:`results` for async clients: an async iterator (``async for cid, r in job.async_results()``).

        Raises:
            InvalidRequestError: The batch came from a sync Client (use ``job.results()``), or it has not ended.
            ProviderError: The provider failed after retries.
        """
        return self._lifecycle("results", True).results(self)  # type: ignore[no-any-return]


Result = Completion | Embeddings | Reranking | Prediction
"""Any verb's result: what an adapter is asked to price."""
