"""Price lookup: config overrides, then computekit's own dated tables, then genai-prices.

Everything here is pure and offline: no network at import or at pricing time. Rates are resolved once per
(provider, model, half hour, price context) and cached; pricing one call is then a handful of Decimal operations.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
import logging
import operator
import sys
import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, Generic, TypeVar

from .._constants import TARGETS_KEPT
from .._money import Money
from .._types import Cost, CostLine, PriceSource, Usage

__all__ = [
    "BATCH_CONTEXT", "PriceBook", "PriceRef", "TokenRates", "TrainingRates", "UnknownPriceWarning", "price_key_error",
]

log = logging.getLogger("computekit.pricing")

_MTOK = Decimal(1_000_000)
_ZERO = Decimal(0)
# genai-prices price keys computekit knows how to apply to its Usage fields.
_TOKEN_KEYS = (
    "input_mtok",
    "output_mtok",
    "cache_read_mtok",
    "cache_write_mtok",
    "cache_write_1h_mtok",
    "cache_audio_read_mtok",
    "input_audio_mtok",
    "output_audio_mtok",
    "output_reasoning_mtok",
    "output_image_mtok",
)


_TRAINING_KEYS = ("training_mtok", "training_hour")
"""Config price keys for fine-tuning: per 1M trained tokens, per hour of training."""

_FIXED_KEYS = (*_TOKEN_KEYS, "per_request", "per_second", *_TRAINING_KEYS)
"""Every ``[prices]`` key with a meaning of its own; any other name is the price of one unit of ``Usage.units``."""
_TOKEN_COUNTS = {
    **{k.removesuffix("_mtok") + "_tokens": k for k in _TOKEN_KEYS},
    "cached_input_tokens": "cache_read_mtok", "cached_input_audio_tokens": "cache_audio_read_mtok",
    "reasoning_tokens": "output_reasoning_mtok",
}
"""Token counts (``Usage`` fields and genai-prices' names) a price may be mistakenly keyed by -> their price key."""
_NEAR = 0.85
"""How alike (difflib's ratio) a key must be to a price key to be taken as its misspelling."""


def price_key_error(name: str) -> str | None:
    """Why ``name`` cannot be a ``[prices]`` key, with what to write instead; ``None`` when it can. A misspelled
    price key would otherwise be taken as the price of a unit no call reports, and its calls priced without it
    (a cache write at the input rate: understated)."""
    import difflib

    batch = name.startswith(_BATCH_PREFIX)
    bare = name.removeprefix(_BATCH_PREFIX)
    allowed = (*_TOKEN_KEYS, "per_request") if batch else _FIXED_KEYS
    if bare in allowed:
        return None
    if bare in _TOKEN_COUNTS:
        return (f"prices are per 1M tokens, not per token count: write "
                f"{_BATCH_PREFIX if batch else ''}{_TOKEN_COUNTS[bare]} (USD per 1M tokens)")
    close = difflib.get_close_matches(bare.lower(), allowed, n=1, cutoff=_NEAR)
    if close and not (bare.endswith("_tokens") and not batch):  # a unit reported per token: output_citation_tokens
        return f"not a price key: did you mean {_BATCH_PREFIX if batch else ''}{close[0]}?"
    if batch:
        return f"not a batch price key: write one of {', '.join(_BATCH_PREFIX + k for k in allowed)}"
    if bare.endswith("_mtok"):
        return f"not a price key: prices per 1M tokens are {', '.join((*_TOKEN_KEYS, 'training_mtok'))}"
    return None


_SELF_HOSTED_TABLE = "self-hosted"
BATCH_CONTEXT = ("processing", "batch")
"""The price context of a call run by a provider's batch API (genai-prices' price variant key and value)."""
_BATCH_PREFIX = "batch_"
"""Config ``[prices]`` keys with this prefix price a model's batch mode (``batch_input_mtok``)."""
# Context keys whose price is a variant of its own: when the tables hold no variant for them, the model's price in
# that mode is unknown (a batch price is never assumed to be the synchronous one).
_VARIANT_ONLY_KEYS = frozenset({BATCH_CONTEXT[0]})
_CACHE_MAX = 4096
_SLOT = dt.timedelta(minutes=30)
"""Rates are resolved per half hour (UTC): genai-prices' time-of-day windows start and end on the half hour."""


class UnknownPriceWarning(UserWarning):
    """A model has no known price: its cost is ``None``. Add it under ``[prices]`` in the config."""


@dataclass(frozen=True, slots=True)
class PriceRef:
    """What to price: asked of the adapter, so pricing never needs to know a provider.

    Attributes:
        provider: computekit provider name (config override keys are ``provider:model``).
        model: The model id as the provider reported it (or as requested).
        table_provider: The provider id in genai-prices, or ``None`` when genai-prices does not cover it.
        context: Request facts that select a price variant, e.g. ``(("service_tier", "priority"),)``.
    """

    provider: str
    model: str
    table_provider: str | None = None
    context: tuple[tuple[str, str], ...] = ()
    metered: bool = True
    """False for a self-hosted server: no per-call charge unless config prices it."""
    alternatives: tuple[str, ...] = ()
    """Other ids of the same model, tried in order when ``model`` itself has no price (a cross-region inference
    profile's base model)."""
    reported: tuple[tuple[str, Decimal], ...] = ()
    """Prices the provider itself stated with the response (``input_mtok``, ``output_mtok`` ... per 1M tokens,
    any other key per unit): used when config has none, before any table (e.g. ``computekit.testing``'s fake)."""


_ref_key = operator.attrgetter(*(f.name for f in dataclasses.fields(PriceRef)))
"""A ref's fields as a tuple: what it is cached by on the hot path (hashed and compared in C, unlike the ref)."""


_D = TypeVar("_D", bound=Decimal)


@dataclass(frozen=True, slots=True)
class _Tiered(Generic[_D]):
    """A cliff-tiered price: every token pays the tier reached by the total input tokens."""

    base: _D
    tiers: tuple[tuple[int, _D], ...]

    def at(self, total_input: int) -> _D:
        for start, price in reversed(self.tiers):
            if total_input > start:
                return price
        return self.base

    def per_token(self) -> _Tiered[Money]:
        """The same tiers, priced per token (as :class:`~computekit.Money`) rather than per 1M tokens."""
        return _Tiered(Money(self.base / _MTOK), tuple((start, Money(price / _MTOK)) for start, price in self.tiers))


# Cost lines whose own price falls back to another key's when the model has none (cache reads at the input price).
_FALLBACKS = (("cache_read_mtok", "input_mtok"), ("cache_write_mtok", "input_mtok"))


@dataclass(frozen=True, slots=True)
class TokenRates:
    """Per-1M-token rates for one model on one day, and where they came from."""

    prices: Mapping[str, Decimal | _Tiered[Decimal]]
    source: PriceSource
    per_request: Decimal | None = None
    extra_units: Mapping[str, tuple[Decimal, int]] = field(default_factory=dict)
    """Other priced units: usage key -> (price, per) (web searches, rerank searches ...)."""
    # The prices as cost lines carry them, worked out once rather than on every call: per token (a key without
    # a price of its own holds its fallback's), per request and per unit, each a Money.
    _per_token: dict[str, Money | _Tiered[Money]] = field(init=False, repr=False, compare=False)
    _per_request: Money | None = field(init=False, repr=False, compare=False)
    _per_unit: dict[str, Money] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        per_token: dict[str, Money | _Tiered[Money]] = {
            key: p.per_token() if isinstance(p, _Tiered) else Money(p / _MTOK) for key, p in self.prices.items()}
        for key, fallback in _FALLBACKS:
            if key not in per_token and fallback in per_token:
                per_token[key] = per_token[fallback]
        object.__setattr__(self, "_per_token", per_token)
        object.__setattr__(self, "_per_request", None if self.per_request is None else Money(self.per_request))
        object.__setattr__(self, "_per_unit",
                           {key: Money(price / per) for key, (price, per) in self.extra_units.items()})

    def rate(self, key: str, total_input: int) -> Decimal | None:
        p = self.prices.get(key)
        if p is None:
            return None
        return p.at(total_input) if isinstance(p, _Tiered) else p

    def cost(self, usage: Usage) -> Cost:
        """Price ``usage``: one line per charge, amounts exact.

        Raises:
            _MissingRate: ``usage`` has a charge (tokens of a kind, a unit) that these rates do not price.
        """
        # Straight-line on purpose (this runs on every call): a quantity of 0 costs one test, not a line.
        per_token = self._per_token
        total_in = usage.input_tokens
        cached = usage.cached_input_tokens
        written = usage.cache_write_tokens
        written_1h = usage.cache_write_1h_tokens
        audio_in = usage.input_audio_tokens if "input_audio_mtok" in per_token else 0
        audio_out = usage.output_audio_tokens if "output_audio_mtok" in per_token else 0
        reasoning = usage.reasoning_tokens if "output_reasoning_mtok" in per_token else 0
        cached_audio = usage.cached_input_audio_tokens if "cache_audio_read_mtok" in per_token else 0
        image_out = usage.output_image_tokens if "output_image_mtok" in per_token else 0
        lines: list[CostLine] = []
        if (qty := total_in - cached - written - audio_in) > 0:
            lines.append(_token_line("input", qty, per_token, "input_mtok", total_in))
        if qty := cached - cached_audio:
            lines.append(_token_line("cached input", qty, per_token, "cache_read_mtok", total_in))
        if cached_audio:
            lines.append(_token_line("cached input audio", cached_audio, per_token, "cache_audio_read_mtok", total_in))
        if qty := written - written_1h:
            lines.append(_token_line("cache write", qty, per_token, "cache_write_mtok", total_in))
        if written_1h:
            lines.append(_token_line("cache write (1h)", written_1h, per_token, "cache_write_1h_mtok", total_in))
        if audio_in:
            lines.append(_token_line("input audio", audio_in, per_token, "input_audio_mtok", total_in))
        if (qty := usage.output_tokens - reasoning - audio_out - image_out) > 0:
            lines.append(_token_line("output", qty, per_token, "output_mtok", total_in))
        if reasoning:
            lines.append(_token_line("reasoning", reasoning, per_token, "output_reasoning_mtok", total_in))
        if audio_out:
            lines.append(_token_line("output audio", audio_out, per_token, "output_audio_mtok", total_in))
        if image_out:
            lines.append(_token_line("output image", image_out, per_token, "output_image_mtok", total_in))
        if self._per_request is not None and usage.requests:
            q = Decimal(usage.requests)
            lines.append(CostLine._priced("request", q, "request", self._per_request, Money(q * self._per_request)))
        if usage.units:
            per_unit = self._per_unit
            for key, amount in usage.units.items():
                if not amount:
                    continue
                unit_price = per_unit.get(key)
                if unit_price is None:  # billed, but no price for it: the total would understate spend
                    raise _MissingRate(key)
                if type(amount) is Decimal and type(key) is str:
                    lines.append(CostLine._priced(key, amount, key, unit_price, Money(amount * unit_price)))
                else:  # not what validating a Usage leaves (set on its dict since): the public constructor's way
                    lines.append(CostLine(item=key, quantity=amount, unit=key, unit_price=unit_price,
                                          amount=amount * unit_price))
        total = _ZERO
        for line in lines:
            total += line.amount
        return Cost._priced(Money(total), lines, self.source)


def _token_line(item: str, qty: int, per_token: Mapping[str, Money | _Tiered[Money]], key: str,
                total_in: int) -> CostLine:
    """``qty`` tokens at ``key``'s price per token (its tier by ``total_in``)."""
    price = per_token.get(key)
    if price is None:
        raise _MissingRate(key)
    if isinstance(price, _Tiered):
        price = price.at(total_in)
    q = Decimal(qty)
    return CostLine._priced(item, q, "token", price, Money(q * price))


@dataclass(frozen=True, slots=True)
class TrainingRates:
    """What fine-tuning a base model costs, and the longest example it accepts.

    Attributes:
        per_mtok: USD per 1M trained tokens, or ``None`` when the model is not billed per token.
        per_hour: USD per hour of training (reinforcement fine-tuning), or ``None``.
        max_example_tokens: The longest training example the provider accepts for the model, when known.
        source: Where the price was read, and its date.
    """

    per_mtok: Decimal | None
    per_hour: Decimal | None
    max_example_tokens: int | None
    source: PriceSource


class _MissingRate(Exception):
    pass


def _reported_rates(ref: PriceRef) -> TokenRates:
    """Rates from the prices a provider stated with its response."""
    prices = dict(ref.reported)
    per_request = prices.pop("per_request", None)
    return TokenRates(
        prices={k: v for k, v in prices.items() if k in _TOKEN_KEYS},
        source=PriceSource(table=f"{ref.provider} (stated with the response)"),
        per_request=per_request,
        extra_units={k: (v, 1) for k, v in prices.items() if k not in _TOKEN_KEYS},
    )


def _decimal(v: Any) -> Decimal:
    return v if isinstance(v, Decimal) else Decimal(str(v))


@cache
def _own_tables() -> tuple[dict[tuple[str, str], TokenRates], dt.date | None, dict[tuple[str, str], TokenRates],
                           dict[tuple[str, str], TokenRates]]:
    """computekit's token table (matched by model family), its date, its per-unit table (matched exactly:
    per-output prices differ between close variants, e.g. ``sd3.5-large`` and ``sd3.5-large-turbo``), and its
    batch table (matched by model family)."""
    import tomllib
    from importlib import resources

    tokens: dict[tuple[str, str], TokenRates] = {}
    units_table: dict[tuple[str, str], TokenRates] = {}
    batch: dict[tuple[str, str], TokenRates] = {}
    table_date: dt.date | None = None
    # tokens.toml: per-token prices; units.toml: prices per unit of output (image, credit ...) for predictions;
    # batch.toml: batch-mode prices genai-prices lacks.
    tables = {"data/tokens.toml": tokens, "data/units.toml": units_table, "data/batch.toml": batch}
    for filename, out in tables.items():
        raw = tomllib.loads(resources.files(__package__).joinpath(filename).read_text("utf-8"))
        meta = raw.get("meta", {})
        for m in raw.get("models", []):
            prices = {k: _decimal(m[k]) for k in _TOKEN_KEYS if k in m}
            per_request = _decimal(m["per_request"]) if "per_request" in m else None
            per = int(m.get("units_per", 1))  # e.g. 1000000: the unit prices are per million (tokens)
            units = {name: (_decimal(price), per) for name, price in (m.get("units") or {}).items()}
            as_of = m.get("as_of")
            source = PriceSource(
                table=str(meta.get("name", "computekit:tokens")),
                as_of=dt.date.fromisoformat(str(as_of)) if as_of else None,
                url=m.get("source"),
            )
            out[(m["provider"], m["model"])] = TokenRates(
                prices=prices, source=source, per_request=per_request, extra_units=units
            )
        if filename == "data/tokens.toml" and meta.get("as_of"):
            table_date = dt.date.fromisoformat(str(meta["as_of"]))
    return tokens, table_date, units_table, batch


@cache
def tool_fees() -> dict[str, dict[str, list[tuple[Decimal, int, dt.date | None]]]]:
    """computekit's per-call prices of built-in tools (``data/tools.toml``): provider -> usage key -> its prices
    as (price, per, until): ``until`` is the first day a price no longer applies (``None``: still does)."""
    import tomllib
    from importlib import resources

    raw = tomllib.loads(resources.files(__package__).joinpath("data/tools.toml").read_text("utf-8"))
    out: dict[str, dict[str, list[tuple[Decimal, int, dt.date | None]]]] = {}
    for fee in raw.get("fees", []):
        until = dt.date.fromisoformat(str(fee["until"])) if fee.get("until") else None
        out.setdefault(fee["provider"], {}).setdefault(fee["unit"], []).append(
            (_decimal(fee["price"]), int(fee.get("per", 1)), until))
    return out


def _with_tool_fees(rates: TokenRates, provider: str, when: dt.datetime) -> TokenRates:
    """``rates`` with the tool fees that apply on ``when``'s day; a fee past its ``until`` is left out, so a call
    that used the tool then is unpriced (with a warning) rather than priced at a rate that no longer holds."""
    fees = tool_fees().get(provider)
    if not fees:
        return rates
    day = when.date()
    current = {unit: (price, per) for unit, entries in fees.items() for price, per, until in entries
               if until is None or day < until}
    return dataclasses.replace(rates, extra_units={**current, **rates.extra_units})  # a model's own price wins


def _match(tables: Mapping[tuple[str, str], TokenRates], provider: str, model: str) -> TokenRates | None:
    """The entry for ``model``, or for the longest listed id that prefixes it at a "-" boundary (so a dated
    snapshot such as ``gpt-4o-mini-2024-07-18``, which providers report, matches ``gpt-4o-mini``)."""
    hit = tables.get((provider, model))
    if hit is not None:
        return hit
    best: tuple[int, TokenRates] | None = None
    for (p, m), rates in tables.items():
        if p == provider and model.startswith(m + "-") and (best is None or len(m) > best[0]):
            best = (len(m), rates)
    return best[1] if best else None


@cache
def _genai_changes() -> tuple[dt.date, ...]:
    """Every date genai-prices' bundled data records a price change on, in order (announced ones included)."""
    import genai_prices.data as gp_data

    found = {start for provider in gp_data.providers for model in provider.models
             for cp in (model.prices if isinstance(model.prices, list) else [])
             if isinstance(start := getattr(cp.constraint, "start_date", None), dt.date)}
    return tuple(sorted(found))


@lru_cache(maxsize=64)
def _genai_source(day: dt.date) -> PriceSource:
    """genai-prices as the source of a price used on ``day`` (UTC): dated by the newest change in force that day,
    not the day the process started (a process running past a change prices at the new rate, and says so)."""
    from importlib.metadata import version

    changes = _genai_changes()
    in_force = bisect.bisect_right(changes, day)
    return PriceSource(
        table="genai-prices",
        version=version("genai-prices"),
        as_of=changes[in_force - 1] if in_force else None,
        url="https://github.com/pydantic/genai-prices",
    )


def _genai_rates(ref: PriceRef, when: dt.datetime) -> TokenRates | None:
    from genai_prices import data_snapshot
    from genai_prices.types import TieredPrices
    from genai_prices.units import _get_registry

    snapshot = data_snapshot.get_snapshot()
    try:
        provider, model = snapshot.find_provider_model(ref.model, None, ref.table_provider, None)
    except LookupError:
        return None
    context = dict(ref.context)
    for key in _VARIANT_ONLY_KEYS & context.keys():
        if not any(v.when.get(key) == context[key] and (v.constraint is None or v.constraint.active(when))
                   for v in model.price_variants or ()):
            return None  # genai-prices would answer with the standard price: unknown in this mode instead
    mp = model.get_prices(when, context or None)
    prices: dict[str, Decimal | _Tiered[Decimal]] = {}
    extra: dict[str, tuple[Decimal, int]] = {}
    registry = _get_registry()
    for key, value in vars(mp).items():
        if value is None or key.startswith("_"):
            continue
        price: Decimal | _Tiered[Decimal]
        if isinstance(value, TieredPrices):
            price = _Tiered(value.base, tuple((t.start, t.price) for t in value.tiers))
        else:
            price = _decimal(value)
        if key in _TOKEN_KEYS:
            prices[key] = price
        elif key == "requests_kcount" and isinstance(price, Decimal):
            continue  # handled below as a per-request line
        elif isinstance(price, Decimal):
            try:
                unit = registry.unit_for_price_key(key)
            except KeyError:
                continue
            extra[unit.usage_key] = (price, unit.per)
    per_request = getattr(mp, "requests_kcount", None)
    urls = provider.pricing_urls or []
    general = _genai_source(when.astimezone(dt.UTC).date())
    source = general.model_copy(update={"url": urls[0] if urls else general.url})
    return TokenRates(
        prices=prices,
        source=source,
        per_request=_decimal(per_request) / 1000 if per_request is not None else None,
        extra_units=extra,
    )


class PriceBook:
    """Prices calls: config overrides first, then computekit's tables, then genai-prices.

    Args:
        overrides: ``{"provider:model": {"input_mtok": "0.15", "output_mtok": "0.60", ...}}`` from config.
            Token prices are per 1M tokens (``*_mtok``), ``per_request`` is per request, and any other key is
            the price of one unit of that name in ``Usage.units`` (``search_units = "0.002"``).
    """

    def __init__(self, overrides: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self._overrides: dict[tuple[str, str], TokenRates] = {}
        self._per_second: dict[tuple[str, str], tuple[Decimal, PriceSource]] = {}
        self._training: dict[tuple[str, str], dict[str, Decimal]] = {}
        self._batch: dict[tuple[str, str], TokenRates] = {}
        for key, all_prices in (overrides or {}).items():
            batch = {k.removeprefix(_BATCH_PREFIX): _decimal(v) for k, v in all_prices.items()
                     if k.startswith(_BATCH_PREFIX)}
            if batch:
                provider, _, model = key.partition(":")
                self._batch[(provider, model)] = TokenRates(
                    prices={k: v for k, v in batch.items() if k in _TOKEN_KEYS}, source=PriceSource(table="config"),
                    per_request=batch.get("per_request"))
            prices = {k: v for k, v in all_prices.items() if not k.startswith(_BATCH_PREFIX)}
            if not prices:
                continue
            if "per_second" in prices:
                provider, _, sku = key.partition(":")
                self._per_second[(provider, sku)] = (_decimal(prices["per_second"]), PriceSource(table="config"))
            token_prices = {k: _decimal(v) for k, v in prices.items() if k in _TOKEN_KEYS}
            per_request = prices.get("per_request")
            if any(k in prices for k in _TRAINING_KEYS):
                provider, _, model = key.partition(":")
                self._training[(provider, model)] = {k: _decimal(prices[k]) for k in _TRAINING_KEYS if k in prices}
            units = {k: (_decimal(v), 1) for k, v in prices.items()
                     if k not in _TOKEN_KEYS and k not in ("per_request", "per_second", *_TRAINING_KEYS)}
            if not token_prices and per_request is None and not units:
                # Only a training or hardware price: the model's calls keep their table prices (an empty override
                # would leave every call unpriced, and refused by a budget).
                continue
            provider, _, model = key.partition(":")
            self._overrides[(provider, model)] = TokenRates(
                prices=token_prices,
                source=PriceSource(table="config", as_of=None),
                per_request=_decimal(per_request) if per_request is not None else None,
                extra_units=units,
            )
        self._cache: dict[tuple[PriceRef, dt.datetime], TokenRates | None] = {}
        # Per ref (by its fields), the half hour its rates were last resolved for: [start, end) and the rates.
        self._recent: dict[tuple[Any, ...], tuple[dt.datetime, dt.datetime, TokenRates | None]] = {}
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    def rates(self, ref: PriceRef, when: dt.datetime | None = None) -> TokenRates | None:
        """The token rates that apply to ``ref`` at ``when`` (default: now), or ``None``."""
        at = when or dt.datetime.now(dt.UTC)
        if at.tzinfo is None:
            at = at.replace(tzinfo=dt.UTC)  # a naive time is read as UTC
        # The fast path of every call: the rates last resolved for the same ref, while ``at`` is in their half
        # hour (an aware datetime compares by its instant, whatever its zone; one whose zone gives no offset
        # cannot be compared: TypeError, resolved as before).
        recent = self._recent.get(_ref_key(ref))
        if recent is not None:
            try:
                if recent[0] <= at < recent[1]:
                    return recent[2]
            except TypeError:
                pass
        return self._resolve(ref, at)

    def _resolve(self, ref: PriceRef, when: dt.datetime) -> TokenRates | None:
        at = when.astimezone(dt.UTC)
        # Prices can change with the time of day (DeepSeek's off-peak window): genai-prices' windows start and
        # end on the half hour, so rates are resolved (and cached) per half hour, not per day.
        slot = at.replace(minute=at.minute - at.minute % 30, second=0, microsecond=0)
        key = (ref, slot)
        try:
            found = self._cache[key]
        except KeyError:
            found = self._lookup(ref, slot)
            with self._lock:
                if len(self._cache) >= _CACHE_MAX:  # a long-running process moves through time slots: stay bounded
                    self._cache.clear()
                self._cache[key] = found
        with self._lock:
            if len(self._recent) >= _CACHE_MAX:
                self._recent.clear()
            self._recent[_ref_key(ref)] = (slot, slot + _SLOT, found)
        return found

    def _lookup(self, ref: PriceRef, slot: dt.datetime) -> TokenRates | None:
        override = None if BATCH_CONTEXT in ref.context else _match(self._overrides, ref.provider, ref.model)
        fees_only = (override is not None and bool(override.extra_units) and not override.prices
                     and override.per_request is None)
        found = self._batch_rates(ref, slot) if BATCH_CONTEXT in ref.context else (
            (None if fees_only else override)
            or (_reported_rates(ref) if ref.reported else None)
            or _own_tables()[2].get((ref.provider, ref.model))
            or _match(_own_tables()[0], ref.provider, ref.model)
            or (_genai_rates(ref, slot) if ref.table_provider else None)
        )
        for alt in ref.alternatives if found is None else ():
            found = self.rates(dataclasses.replace(ref, model=alt, alternatives=()), slot)
            if found is not None:
                break
        if fees_only and override is not None:
            # An entry of fees alone (a tool's per-call price) adds to the model's token rates, not replaces them.
            found = override if found is None else dataclasses.replace(
                found, extra_units={**found.extra_units, **override.extra_units})
        if found is not None:
            found = _with_tool_fees(found, ref.table_provider or ref.provider, slot)
        return found

    def _batch_rates(self, ref: PriceRef, slot: dt.datetime) -> TokenRates | None:
        """A model's batch-mode rates: config ``batch_*`` keys, then computekit's batch table, then genai-prices'
        batch variant; ``None`` when none has one (never the synchronous price)."""
        return (
            _match(self._batch, ref.provider, ref.model)
            or _match(_own_tables()[3], ref.provider, ref.model)
            or (_genai_rates(ref, slot) if ref.table_provider else None)
        )

    def token_cost(self, ref: PriceRef, usage: Usage, when: dt.datetime | None = None) -> Cost:
        """The cost of ``usage`` on ``ref``; ``Cost.total`` is ``None`` (never 0) when no price is known."""
        rates = self.rates(ref, when)
        if rates is None and not ref.metered:
            return Cost(total=_ZERO, price_source=PriceSource(table=_SELF_HOSTED_TABLE),
                        reason="self-hosted server: no per-call charge")
        if rates is None and BATCH_CONTEXT in ref.context:
            target = f"{ref.provider}:{ref.model}"
            return Cost.unknown(f'no batch price known for {target}: add [prices] "{target}" = '
                                '{ batch_input_mtok = "...", batch_output_mtok = "..." }')
        if rates is None:
            self._warn_once(ref)
            return Cost.unknown(f"no price known for {ref.provider}:{ref.model}")
        try:
            return rates.cost(usage)
        except _MissingRate as e:
            self._warn_unit_once(ref, str(e.args[0]))
            return Cost.unknown(f"{ref.provider}:{ref.model} has no {e.args[0]} price")

    @staticmethod
    def billed(table: Cost, amount: Decimal, source: PriceSource) -> Cost:
        """The cost of a call whose provider stated what it billed: ``amount`` is the total, named by ``source``;
        the tables' own price is kept beside it (``table_total``), and its lines are kept, with one more line
        for the difference, so that the lines still add up to the total."""
        if table.total is None:
            line = CostLine(item="billed by the provider", quantity=Decimal(1), unit="request", unit_price=amount,
                            amount=amount)
            return Cost(total=amount, lines=[line], price_source=source)
        lines = list(table.lines)
        diff = amount - table.total
        if diff:
            lines.append(CostLine(item="difference: the provider's bill less the table price", quantity=Decimal(1),
                                  unit="request", unit_price=diff, amount=diff))
        return Cost(total=amount, lines=lines, price_source=source, table_total=table.total)

    def parts_cost(self, parts: list[tuple[str, PriceRef, Usage]], when: dt.datetime | None = None) -> Cost:
        """The cost of a call billed in parts, each ``(kind, ref, usage)`` at its own rates: one line per kind
        and charge (``"compaction input"``; the empty kind keeps the plain names). Unknown when any part is."""
        lines: list[CostLine] = []
        source: PriceSource | None = None
        for kind, ref, usage in parts:
            cost = self.token_cost(ref, usage, when)
            if cost.total is None:
                return Cost.unknown(f"{kind or 'answer'}: {cost.reason}")
            source = source or cost.price_source
            lines += [line.model_copy(update={"item": f"{kind} {line.item}"}) if kind else line for line in cost.lines]
        return Cost(total=sum((line.amount for line in lines), _ZERO), lines=lines, price_source=source)

    def prices_units(self, ref: PriceRef, usage: Usage, when: dt.datetime | None = None) -> bool:
        """Whether a per-unit price is known for one of the units ``usage`` reports on ``ref`` (a model billed
        per token or per output rather than by run time)."""
        rates = self.rates(ref, when)
        return rates is not None and any(k in rates.extra_units for k in usage.units)

    def per_second(self, provider: str, hardware: str) -> tuple[Decimal, PriceSource] | None:
        """The per-second price of ``hardware`` on ``provider`` (config first, then computekit's GPU table)."""
        count, sku = _multi_gpu(hardware)
        found = self._per_second.get((provider, hardware))
        if found is None:
            base = self._per_second.get((provider, sku)) or _gpu_table().get((provider, sku))
            if base is None:
                return None
            found = (base[0] * count, base[1])
        return found

    def gpu_cost(self, provider: str, hardware: str | None, seconds: Decimal | None, *,
                 estimated: bool = False) -> Cost:
        """The cost of ``seconds`` of ``hardware`` on ``provider``; ``None`` (never a guessed SKU) when the
        hardware or its price is unknown, or the host reported no run time."""
        if seconds is None:
            return Cost.unknown(f"{provider} reported no run time (nor billed units)")
        if not hardware:
            return Cost.unknown(
                f"unknown {provider} hardware: pass hardware= to predict(), or set it for the model in config"
            )
        found = self.per_second(provider, hardware)
        if found is None:
            return Cost.unknown(
                f"no per-second price for {provider}:{hardware}: add "
                f'[prices] "{provider}:{hardware}" = {{ per_second = "..." }}'
            )
        price, source = found
        line = CostLine(item=hardware, quantity=seconds, unit="second", unit_price=price, amount=seconds * price)
        return Cost(total=line.amount, lines=[line], price_source=source, estimated=estimated)

    def training(self, provider: str, model: str) -> TrainingRates | None:
        """The fine-tuning rates of ``model`` on ``provider``: config ``[prices]`` first (``training_mtok``,
        ``training_hour``), then computekit's ``training.toml``; ``None`` when neither knows the model."""
        table: TrainingRates | None = _best_prefix(_training_table(), provider, model)
        over: dict[str, Decimal] | None = _best_prefix(self._training, provider, model)
        if over is None:
            return table
        return TrainingRates(
            per_mtok=over.get("training_mtok"),
            per_hour=over.get("training_hour"),
            max_example_tokens=table.max_example_tokens if table is not None else None,
            source=PriceSource(table="config"),
        )

    def context_window(self, ref: PriceRef) -> int | None:
        """The model's context window in tokens, when genai-prices knows it."""
        if not ref.table_provider:
            return None
        from genai_prices import data_snapshot

        try:
            _, model = data_snapshot.get_snapshot().find_provider_model(ref.model, None, ref.table_provider, None)
        except LookupError:
            return None
        return model.context_window

    def similar(self, ref: PriceRef, limit: int = 3) -> list[str]:
        """Model ids priced for ``ref``'s table provider that look like ``ref.model`` (a typo's likely fixes),
        closest first; empty when the model is known or nothing is close."""
        return similar_models(ref.table_provider, ref.model, limit)

    def warn_unknown(self, ref: PriceRef) -> None:
        """Warn (once per model) that ``ref`` has no price."""
        self._warn_once(ref)

    def _told(self, what: str) -> bool:
        """Whether ``what`` was warned of already; it counts as warned of from now. At most :data:`TARGETS_KEPT`
        are remembered (then all are forgotten, and may be warned of once more): a process that passes on whatever
        model its users name would otherwise remember every name."""
        if what in self._warned:
            return True
        if len(self._warned) >= TARGETS_KEPT:
            self._warned.clear()
        self._warned.add(what)
        return False

    def _warn_unit_once(self, ref: PriceRef, unit: str) -> None:
        """Say once per target and unit that a billed unit (a built-in tool's calls ...) has no price."""
        target = f"{ref.provider}:{ref.model}"
        if self._told(f"{target} {unit}"):
            return
        warnings.warn(
            f"no {unit} price known for {target}: the call's cost is None. Add it to computekit.toml, e.g. "
            f'[prices] "{target}" = {{ {unit} = "..." }}',
            UnknownPriceWarning,
            stacklevel=_caller_stacklevel(),
        )

    def _warn_once(self, ref: PriceRef) -> None:
        target = f"{ref.provider}:{ref.model}"
        if self._told(target):
            return
        close = self.similar(ref)
        hint = (f"did you mean {', '.join(f'{ref.provider}:{m}' for m in close)}? If not, add" if close
                else "Add")
        warnings.warn(
            f"no price known for {target}: its cost is None. {hint} it to computekit.toml, e.g. "
            f'[prices] "{target}" = {{ input_mtok = "...", output_mtok = "..." }}',
            UnknownPriceWarning,
            stacklevel=_caller_stacklevel(),
        )


def _table_models(table_provider: str) -> list[str]:
    from genai_prices import data_snapshot

    for p in data_snapshot.get_snapshot().providers:
        if p.id == table_provider:
            return [m.id for m in p.models if ":" not in m.id]  # not "ft:..." patterns
    return []


def similar_models(table_provider: str | None, model: str, limit: int = 3) -> list[str]:
    """Model ids of ``table_provider`` in genai-prices close to ``model`` (none when it matches one)."""
    import difflib

    if not table_provider or table_serves(table_provider, model):
        return []
    return difflib.get_close_matches(model, _table_models(table_provider), n=limit, cutoff=0.8)


def table_serves(table_provider: str, model: str) -> bool:
    """Whether genai-prices' ``table_provider`` table prices ``model`` (as a lookup would match it)."""
    from genai_prices import data_snapshot

    snapshot = data_snapshot.get_snapshot()
    for p in snapshot.providers:
        if p.id == table_provider:
            return p.find_model(model) is not None
    return False


def tables_serving(model: str) -> list[str]:
    """The genai-prices providers whose tables price ``model``, in the table's order."""
    from genai_prices import data_snapshot

    return [p.id for p in data_snapshot.get_snapshot().providers if p.find_model(model) is not None]


@cache
def _gpu_table() -> dict[tuple[str, str], tuple[Decimal, PriceSource]]:
    import tomllib
    from importlib import resources

    raw = tomllib.loads(resources.files(__package__).joinpath("data/gpu.toml").read_text("utf-8"))
    name = str(raw.get("meta", {}).get("name", "computekit:gpu"))
    out: dict[tuple[str, str], tuple[Decimal, PriceSource]] = {}
    for h in raw.get("hardware", []):
        as_of = h.get("as_of")
        source = PriceSource(table=name, as_of=dt.date.fromisoformat(str(as_of)) if as_of else None,
                             url=h.get("source"))
        out[(h["provider"], h["sku"])] = (_decimal(h["per_second"]), source)
    return out


def _best_prefix(table: Mapping[tuple[str, str], Any], provider: str, model: str) -> Any:
    """``table``'s entry for ``model``: exact, else the longest listed id that prefixes it at a "-" boundary."""
    hit = table.get((provider, model))
    if hit is not None:
        return hit
    best: tuple[int, Any] | None = None
    for (p, m), value in table.items():
        if p == provider and model.startswith(m + "-") and (best is None or len(m) > best[0]):
            best = (len(m), value)
    return best[1] if best else None


@cache
def _training_table() -> dict[tuple[str, str], TrainingRates]:
    import tomllib
    from importlib import resources

    raw = tomllib.loads(resources.files(__package__).joinpath("data/training.toml").read_text("utf-8"))
    name = str(raw.get("meta", {}).get("name", "computekit:training"))
    out: dict[tuple[str, str], TrainingRates] = {}
    for m in raw.get("models", []):
        as_of = m.get("as_of")
        out[(m["provider"], m["model"])] = TrainingRates(
            per_mtok=_decimal(m["training_mtok"]) if "training_mtok" in m else None,
            per_hour=_decimal(m["training_hour"]) if "training_hour" in m else None,
            max_example_tokens=int(m["max_example_tokens"]) if "max_example_tokens" in m else None,
            source=PriceSource(table=name, as_of=dt.date.fromisoformat(str(as_of)) if as_of else None,
                               url=m.get("source")),
        )
    return out


def _multi_gpu(sku: str) -> tuple[int, str]:
    """``"2x-gpu-a100-large"`` -> ``(2, "gpu-a100-large")``; a plain SKU -> ``(1, sku)``."""
    head, sep, rest = sku.partition("x-")
    if sep and head.isdigit() and rest:
        return int(head), rest
    return 1, sku


def table_date() -> dt.date | None:
    """The date of computekit's own token table."""
    return _own_tables()[1]


_PACKAGE_DIR = str(Path(__file__).resolve().parent.parent)


def _caller_stacklevel() -> int:
    """The stacklevel that points a warning at the first frame outside computekit (the user's call)."""
    frame = sys._getframe(1)
    level = 1
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    return level
