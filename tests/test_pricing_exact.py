"""Pricing's fast paths give exactly what the straightforward computation gives: the same Decimal digits and
exponents, the same lines in the same order, the same source, the same unknowns; and the rates cache follows the
clock across half-hour boundaries and time zones."""

from __future__ import annotations

import datetime as dt
import itertools
import warnings
import zoneinfo
from collections.abc import Callable
from decimal import Decimal
from functools import partial
from typing import Any

import pytest
from genai_prices import data_snapshot

import computekit as ck
from computekit.pricing import PriceBook, PriceRef, TokenRates
from computekit.pricing._book import _TOKEN_KEYS, _MissingRate, _own_tables, _Tiered

NOON = dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC)
_MTOK = Decimal(1_000_000)


def _reference_cost(rates: TokenRates, usage: ck.Usage) -> ck.Cost:
    """The cost of ``usage`` computed the plain way: every charge in order, its rate looked up and divided on the
    spot, each line and the cost built (and validated) by their public constructors."""
    lines: list[ck.CostLine] = []
    total_in = usage.input_tokens

    def add(item: str, qty: int, key: str, fallback: str | None = None) -> None:
        if not qty:
            return
        rate = rates.rate(key, total_in)
        if rate is None and fallback is not None:
            rate = rates.rate(fallback, total_in)
        if rate is None:
            raise _MissingRate(key)
        q = Decimal(qty)
        lines.append(ck.CostLine(item=item, quantity=q, unit="token", unit_price=rate / _MTOK,
                                 amount=q * (rate / _MTOK)))

    has = rates.prices.__contains__
    audio_in = usage.input_audio_tokens if has("input_audio_mtok") else 0
    audio_out = usage.output_audio_tokens if has("output_audio_mtok") else 0
    reasoning = usage.reasoning_tokens if has("output_reasoning_mtok") else 0
    cached_audio = usage.cached_input_audio_tokens if has("cache_audio_read_mtok") else 0
    image_out = usage.output_image_tokens if has("output_image_mtok") else 0
    add("input", max(usage.input_tokens - usage.cached_input_tokens - usage.cache_write_tokens - audio_in, 0),
        "input_mtok")
    add("cached input", usage.cached_input_tokens - cached_audio, "cache_read_mtok", "input_mtok")
    add("cached input audio", cached_audio, "cache_audio_read_mtok")
    add("cache write", usage.cache_write_tokens - usage.cache_write_1h_tokens, "cache_write_mtok", "input_mtok")
    add("cache write (1h)", usage.cache_write_1h_tokens, "cache_write_1h_mtok")
    add("input audio", audio_in, "input_audio_mtok")
    add("output", max(usage.output_tokens - reasoning - audio_out - image_out, 0), "output_mtok")
    add("reasoning", reasoning, "output_reasoning_mtok")
    add("output audio", audio_out, "output_audio_mtok")
    add("output image", image_out, "output_image_mtok")
    if rates.per_request is not None and usage.requests:
        q = Decimal(usage.requests)
        lines.append(ck.CostLine(item="request", quantity=q, unit="request", unit_price=rates.per_request,
                                 amount=q * rates.per_request))
    for key, qty in usage.units.items():
        if not qty:
            continue
        if key not in rates.extra_units:
            raise _MissingRate(key)
        price, per = rates.extra_units[key]
        lines.append(ck.CostLine(item=key, quantity=qty, unit=key, unit_price=price / per, amount=qty * (price / per)))
    return ck.Cost(total=sum((line.amount for line in lines), Decimal(0)), lines=lines, price_source=rates.source)


def _digits(value: Any) -> Any:
    """A value as compared here: a Decimal by its exact type, sign, digits and exponent (``1.50`` is not ``1.5``)."""
    return (type(value), value.as_tuple()) if isinstance(value, Decimal) else value


def _exact(cost: ck.Cost) -> Any:
    """Everything a cost holds, Decimals digit for digit, with what its constructor recorded as set."""
    fields = [(name, _digits(getattr(cost, name))) for name in type(cost).model_fields if name != "lines"]
    lines = [([(name, _digits(getattr(line, name))) for name in type(line).model_fields],
              line.__pydantic_fields_set__, line.__pydantic_extra__, line.__pydantic_private__) for line in cost.lines]
    return fields, lines, cost.__pydantic_fields_set__, cost.model_dump(), cost.model_dump_json(), str(cost)


def _outcome(price: Callable[[], ck.Cost]) -> Any:
    try:
        return _exact(price())
    except _MissingRate as e:
        return ("missing", e.args)


def _assert_exact(rates: TokenRates, usage: ck.Usage) -> None:
    """``rates.cost(usage)`` is exactly the straightforward computation (or both miss the same rate)."""
    assert _outcome(partial(rates.cost, usage)) == _outcome(partial(_reference_cost, rates, usage)), (rates, usage)


def _models_with(feature: str, limit: int = 3) -> list[tuple[str, str]]:
    """The first few genai-prices models (in the table's order) whose rates at NOON have ``feature``: a token
    price key (``"input_mtok"``, ``"input_mtok[tiered]"``), ``"per_request"``, or ``"unit:NAME"``."""
    book, found = PriceBook(), []
    for provider in data_snapshot.get_snapshot().providers:
        for model in provider.models:
            if ":" in model.id or "*" in model.id:
                continue
            rates = book.rates(PriceRef(provider.id, model.id, provider.id), NOON)
            if rates is not None and feature in _features(rates):
                found.append((provider.id, model.id))
                if len(found) == limit:
                    return found
    return found


def _features(rates: TokenRates) -> set[str]:
    out = {k + ("[tiered]" if isinstance(v, _Tiered) else "") for k, v in rates.prices.items()}
    out |= {f"unit:{k}" for k in rates.extra_units}
    return out | ({"per_request"} if rates.per_request is not None else set())


FEATURES = [*_TOKEN_KEYS, *(f"{k}[tiered]" for k in ("input_mtok", "output_mtok", "cache_read_mtok",
                                                       "cache_write_mtok", "cache_write_1h_mtok")),
            "per_request", "unit:web_searches", "unit:web_search_calls"]


def _usages(rates: TokenRates) -> list[ck.Usage]:
    """Usages that exercise every charge: none, plain, every kind of token at once (under and over any tier
    threshold), inconsistent counts whose differences go negative, several requests, priced units, unpriced ones
    (billed and zero)."""
    units = {key: Decimal(n) / 4 for n, key in enumerate(rates.extra_units, start=3)}
    every_kind = dict(output_tokens=9_000, cached_input_tokens=40_000, cache_write_tokens=20_000,
                      cache_write_1h_tokens=5_000, reasoning_tokens=2_000, input_audio_tokens=3_000,
                      cached_input_audio_tokens=1_000, output_audio_tokens=700, output_image_tokens=600)
    return [
        ck.Usage(),
        ck.Usage(input_tokens=9, output_tokens=9),
        ck.Usage(input_tokens=1, requests=0),
        ck.Usage(input_tokens=100_000, **every_kind),  # type: ignore[arg-type]
        ck.Usage(input_tokens=900_000, requests=3, **every_kind),  # type: ignore[arg-type]
        ck.Usage(input_tokens=10, output_tokens=5, cached_input_tokens=50, cache_write_tokens=2,
                 cache_write_1h_tokens=7, cached_input_audio_tokens=60, reasoning_tokens=8, output_audio_tokens=9),
        ck.Usage(input_tokens=1234, output_tokens=56, units=units),
        ck.Usage(input_tokens=1234, units={**units, "unpriced_thing": Decimal(0)}),
        ck.Usage(input_tokens=1234, units={"unpriced_thing": Decimal(2), **units}),
    ]


@pytest.mark.parametrize("feature", FEATURES)
def test_cost_is_exactly_the_straightforward_computation(feature: str) -> None:
    book = PriceBook()
    models = _models_with(feature)
    assert models, f"no model in the tables has {feature}"
    for provider, model in models:
        rates = book.rates(PriceRef(provider, model, provider), NOON)
        assert rates is not None
        for usage in _usages(rates):
            _assert_exact(rates, usage)


def test_rates_with_every_price_cost_exactly_the_straightforward_computation() -> None:
    """No table model has every kind of price at once: rates made of each kind's table price, plain and tiered,
    price every kind of token in one usage."""
    book = PriceBook()
    prices: dict[str, Decimal | _Tiered] = {}
    tiered: dict[str, Decimal | _Tiered] = {}
    units: dict[str, tuple[Decimal, int]] = {}
    per_request = None
    for feature in FEATURES:
        provider, model = _models_with(feature, 1)[0]
        rates = book.rates(PriceRef(provider, model, provider), NOON)
        assert rates is not None
        key = feature.removesuffix("[tiered]").removeprefix("unit:")
        if feature.endswith("[tiered]"):
            tiered[key] = rates.prices[key]
        elif feature.startswith("unit:"):
            units[key] = rates.extra_units[key]
        elif feature == "per_request":
            per_request = rates.per_request
        else:
            prices[key] = rates.prices[key]
    assert set(prices) == set(_TOKEN_KEYS)
    assert per_request is not None
    for every in (TokenRates(prices, rates.source, per_request, units),
                  TokenRates({**prices, **tiered}, rates.source, per_request, units)):
        for usage in _usages(every):
            _assert_exact(every, usage)


def test_own_tables_cost_exactly_the_straightforward_computation() -> None:
    tokens, _, units, batch = _own_tables()
    for rates in itertools.chain(tokens.values(), units.values(), batch.values()):
        for usage in _usages(rates):
            _assert_exact(rates, usage)


def test_config_rates_cost_exactly_the_straightforward_computation() -> None:
    """Config prices written with trailing zeros and per-request and per-unit prices keep their digits."""
    table = PriceBook().rates(PriceRef("openai", "gpt-4o-mini", "openai"), NOON)
    assert table is not None
    written = {k: f"{v:f}0" for k, v in table.prices.items() if isinstance(v, Decimal)}
    book = PriceBook({"x:m": {**written, "per_request": "0.0050", "web_searches": "0.010"}})
    rates = book.rates(PriceRef("x", "m"), NOON)
    assert rates is not None
    for usage in [*_usages(rates), ck.Usage(input_tokens=5, cached_input_tokens=2, cache_write_tokens=1)]:
        _assert_exact(rates, usage)


def test_cached_and_written_tokens_fall_back_to_the_input_price_only_when_they_have_none() -> None:
    table = PriceBook().rates(PriceRef("anthropic", "claude-sonnet-4-5", "anthropic"), NOON)
    assert table is not None
    usage = ck.Usage(input_tokens=300_000, cached_input_tokens=1000, cache_write_tokens=500, output_tokens=1)
    only_input = TokenRates(prices={"input_mtok": table.prices["input_mtok"],
                                    "output_mtok": table.prices["output_mtok"]}, source=table.source)
    lines = {line.item: line for line in only_input.cost(usage).lines}
    assert lines["cached input"].unit_price == lines["cache write"].unit_price == lines["input"].unit_price
    assert _exact(only_input.cost(usage)) == _exact(_reference_cost(only_input, usage))
    # A replaced price is recomputed: the rates never carry a stale per-token price.
    cheaper = TokenRates(prices={**only_input.prices, "cache_read_mtok": table.prices["cache_read_mtok"]},
                         source=table.source)
    assert _exact(cheaper.cost(usage)) == _exact(_reference_cost(cheaper, usage))
    assert cheaper.cost(usage).total != only_input.cost(usage).total
    no_input = TokenRates(prices={"output_mtok": table.prices["output_mtok"]}, source=table.source)
    with pytest.raises(_MissingRate, match="cache_read_mtok"):
        no_input.cost(ck.Usage(input_tokens=5, cached_input_tokens=5))


def test_units_set_after_validation_cost_as_the_public_constructor_makes_them() -> None:
    """A count put on a Usage's ``units`` after it was built (an int, a Money) is priced as validation would
    take it; one that cannot be multiplied fails as it always did."""
    rates = PriceBook().rates(PriceRef("openai", "gpt-4o-mini", "openai"), NOON)
    assert rates is not None
    for amount in (3, ck.Money("2.50")):
        usage = ck.Usage(input_tokens=5)
        usage.units["web_searches"] = amount  # type: ignore[assignment]
        _assert_exact(rates, usage)
        assert type(rates.cost(usage).lines[-1].quantity) is Decimal
    usage = ck.Usage(input_tokens=5)
    usage.units["web_searches"] = 1.5  # type: ignore[assignment]
    with pytest.raises(TypeError):
        rates.cost(usage)
    with pytest.raises(TypeError):
        _reference_cost(rates, usage)


def test_cost_amounts_are_money() -> None:
    rates = PriceBook().rates(PriceRef("openai", "gpt-4o-mini", "openai"), NOON)
    assert rates is not None
    cost = rates.cost(ck.Usage(input_tokens=1, output_tokens=1, units={"web_searches": Decimal(1)}))
    assert isinstance(cost.total, ck.Money)
    for line in cost.lines:
        assert isinstance(line.unit_price, ck.Money)
        assert isinstance(line.amount, ck.Money)
        assert "E" not in f"{line.unit_price} {line.amount}"


def test_token_cost_unknowns_are_unchanged() -> None:
    book = PriceBook()
    ref = PriceRef("openai", "gpt-4o-mini", "openai")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        cost = book.token_cost(ref, ck.Usage(input_tokens=3, units={"unpriced_thing": Decimal(1)}), NOON)
    assert cost.total is None
    assert cost.reason == "openai:gpt-4o-mini has no unpriced_thing price"
    assert [str(w.message).split(":")[0] for w in seen] == ["no unpriced_thing price known for openai"]


# --------------------------------------------------------------------------------------------- the rates cache


def _slot_of(when: dt.datetime) -> dt.datetime:
    at = when.astimezone(dt.UTC) if when.tzinfo else when.replace(tzinfo=dt.UTC)
    return at.replace(minute=at.minute - at.minute % 30, second=0, microsecond=0)


class _Counting(PriceBook):
    """A PriceBook that counts how often it resolves rates (rather than answering from its cache)."""

    def __init__(self) -> None:
        super().__init__()
        self.resolved: list[dt.datetime] = []

    def _batch_rates(self, ref: PriceRef, slot: dt.datetime) -> Any:
        self.resolved.append(slot)
        return super()._batch_rates(ref, slot)


def test_rates_cache_turns_over_at_the_half_hour() -> None:
    """The same half hour answers from the cache; the next one resolves again, in any order."""
    book = _Counting()
    ref = PriceRef("openai", "gpt-4o-mini", "openai", (("processing", "batch"),))
    first = book.rates(ref, NOON.replace(minute=29, second=59, microsecond=999_999))
    assert book.rates(ref, NOON) is first
    assert book.resolved == [NOON]
    after = book.rates(ref, NOON.replace(minute=30))
    assert book.resolved == [NOON, NOON.replace(minute=30)]
    assert after is not first
    assert book.rates(ref, NOON.replace(minute=10)) is first  # back: still cached, not resolved again
    assert book.rates(ref, NOON.replace(minute=59, second=59)) is after
    assert book.rates(ref, NOON - dt.timedelta(microseconds=1)) is not first
    assert book.resolved == [NOON, NOON.replace(minute=30), NOON - dt.timedelta(minutes=30)]


@pytest.mark.parametrize("zone", ["Asia/Kolkata", "America/St_Johns", "Australia/Eucla", "Europe/Berlin"])
def test_rates_cache_reads_other_time_zones_by_their_instant(zone: str) -> None:
    """A ``when`` in a zone whose offset is not whole hours lands in the half hour of its UTC instant."""
    tz = zoneinfo.ZoneInfo(zone)
    ref = PriceRef("openai", "gpt-4o-mini", "openai", (("processing", "batch"),))
    book = _Counting()
    for minutes in range(0, 24 * 60, 7):
        when = (NOON + dt.timedelta(minutes=minutes, seconds=minutes % 60)).astimezone(tz)
        assert book.rates(ref, when) == PriceBook().rates(ref, when)
        assert book.rates(ref, when.astimezone(dt.UTC)) is book.rates(ref, when)
        assert book.resolved[-1] == _slot_of(when)
    assert sorted(set(book.resolved)) == sorted(book.resolved)  # each half hour resolved once


def test_rates_cache_across_a_daylight_saving_fold() -> None:
    """The repeated hour when clocks go back: ``fold`` picks the instant, and the cache follows it."""
    tz = zoneinfo.ZoneInfo("America/New_York")
    ref = PriceRef("openai", "gpt-4o-mini", "openai")
    book = PriceBook()
    first = dt.datetime(2026, 11, 1, 1, 40, tzinfo=tz)
    second = first.replace(fold=1)
    assert first.astimezone(dt.UTC) + dt.timedelta(hours=1) == second.astimezone(dt.UTC)
    a, b = book.rates(ref, first), book.rates(ref, second)
    assert a is not b
    assert book.rates(ref, first.astimezone(dt.UTC)) is a
    assert book.rates(ref, second.astimezone(dt.UTC)) is b


def test_rates_cache_reads_a_naive_when_as_utc() -> None:
    ref = PriceRef("openai", "gpt-4o-mini", "openai", (("processing", "batch"),))
    book = _Counting()
    aware = book.rates(ref, NOON)
    assert book.rates(ref, NOON.replace(tzinfo=None)) is aware
    assert book.rates(ref, NOON.replace(tzinfo=None, minute=29)) is aware
    assert book.resolved == [NOON]
    assert book.rates(ref, NOON.replace(tzinfo=None, minute=30)) is not aware
    assert book.rates(ref, NOON.replace(minute=15)) is aware
    assert book.resolved == [NOON, NOON.replace(minute=30)]


class _NoOffset(dt.tzinfo):
    """A zone that does not know its offset: Python reads such a time as the machine's local time."""

    def utcoffset(self, when: dt.datetime | None) -> None:
        return None


def test_rates_cache_reads_a_time_without_an_offset_as_local_time() -> None:
    ref = PriceRef("openai", "gpt-4o-mini", "openai", (("processing", "batch"),))
    book = _Counting()
    for when in (NOON.replace(tzinfo=_NoOffset()), NOON.replace(minute=45, tzinfo=_NoOffset())):
        for _ in range(2):
            assert book.rates(ref, when) == PriceBook().rates(ref, when)
            assert book.resolved[-1] == _slot_of(when)


_OVERRIDES = {"a:m": {"input_mtok": "1"}, "b:m": {"input_mtok": "2"}, "a:n": {"input_mtok": "3"}}


def test_rates_cache_tells_refs_apart_by_every_field() -> None:
    """Refs that differ in one field only, asked in the same half hour, each get their own rates."""
    book = PriceBook(_OVERRIDES)
    pairs = {
        "provider": (PriceRef("a", "m"), PriceRef("b", "m")),
        "model": (PriceRef("a", "m"), PriceRef("a", "n")),
        "table_provider": (PriceRef("openai", "gpt-4o-mini", "openai"), PriceRef("openai", "gpt-4o-mini")),
        "context": (PriceRef("openai", "gpt-4o-mini", "openai"),
                    PriceRef("openai", "gpt-4o-mini", "openai", (("service_tier", "priority"),))),
        "alternatives": (PriceRef("a", "zzz"), PriceRef("a", "zzz", alternatives=("n",))),
        "reported": (PriceRef("c", "m"), PriceRef("c", "m", reported=(("input_mtok", Decimal(4)),))),
    }
    # ``metered`` is the one field rates() does not read (token_cost does): it needs no pair.
    assert set(pairs) | {"metered"} == set(PriceRef.__dataclass_fields__)
    for field_name, (one, other) in pairs.items():
        first = book.rates(one, NOON)
        assert book.rates(other, NOON) != first, field_name
        assert book.rates(other, NOON) == PriceBook(_OVERRIDES).rates(other, NOON), field_name
        assert book.rates(one, NOON) is first


def test_rates_cache_stays_bounded() -> None:
    from computekit.pricing import _book

    book = PriceBook()
    ref = PriceRef("openai", "gpt-4o-mini", "openai")
    for n in range(_book._CACHE_MAX + 10):
        book.rates(PriceRef(ref.provider, f"m-{n}", None, metered=False), NOON)
    assert len(book._cache) <= _book._CACHE_MAX
    assert len(book._recent) <= _book._CACHE_MAX
    assert book.rates(ref, NOON) is not None
