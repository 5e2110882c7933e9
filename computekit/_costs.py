"""Pricing a call (pure): what a result cost from what the provider reported, what a request is likely to cost
before it is sent (the ``cheapest`` routing strategy), and a model's context window. Reads the price tables
(:class:`~computekit.pricing.PriceBook`); writes nothing but the result's own fields it is asked to price.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ._types import Cost, Prediction, Result
from .adapters._base import CompleteRequest

if TYPE_CHECKING:
    from ._targets import Target
    from .pricing import PriceBook

__all__ = ["context_window", "estimate", "price"]

_MTOK = Decimal(1_000_000)


def price(prices: PriceBook, target: Target, result: Result, when: dt.datetime) -> Cost:
    """The cost of a successful result, from what the provider reported."""
    if isinstance(result, Prediction):
        if not result.done:
            return Cost.unknown("the run has not finished: its cost is known when it ends")
        ref = target.adapter.price_ref(target.model, result)
        if result.usage.units and (result.usage.gpu_seconds is None or prices.prices_units(ref, result.usage)):
            # Billed per output or per token (images, credits, billable units, an official model's tokens):
            # priced per unit, by model, rather than by run time.
            return prices.token_cost(ref, result.usage, when)
        return prices.gpu_cost(target.provider, result.usage.hardware, result.usage.gpu_seconds,
                               estimated=result._hardware_assumed or result._wall_time)
    # Read from pydantic's private store directly: the attribute goes through BaseModel.__getattr__ (after a
    # failed lookup), a microsecond on every call.
    privates = result.__pydantic_private__
    if not (privates["_usage_reported"] if privates else result._usage_reported):
        return Cost.unknown(f"{target.provider} reported no usage for this call")
    ref = target.adapter.price_ref(target.model, result)
    parts = target.adapter.billed_parts(ref, result)  # e.g. passes run inside the call at other rates
    if parts:
        cost = prices.parts_cost([(p.kind, p.ref, p.usage) for p in parts], when)
    else:
        cost = prices.token_cost(ref, result.usage, when)
    billed = target.adapter.billed_total(result)  # what the provider said it charged, when it says so
    return cost if billed is None else prices.billed(cost, *billed)


def estimate(prices: PriceBook, target: Target, req: Any) -> Decimal | None:
    """A request's likely cost on ``target`` before sending it, for the ``cheapest`` strategy: prompt tokens
    estimated at four characters a token, plus ``max_tokens`` of output when given."""
    rates = prices.rates(target.adapter.price_ref(target.model))
    if rates is None:
        prices.warn_unknown(target.adapter.price_ref(target.model))
        return None
    messages = getattr(req, "messages", None) or []
    prompt_tokens = len(json.dumps(messages, default=str)) // 4 + len(getattr(req, "prompt", None) or "") // 4
    rate_in = rates.rate("input_mtok", prompt_tokens)
    rate_out = rates.rate("output_mtok", prompt_tokens)
    if rate_in is None:
        return None
    max_tokens = (target.adapter.output_limit(req) if isinstance(req, CompleteRequest) else None) or 0
    return (Decimal(prompt_tokens) * rate_in + Decimal(max_tokens) * (rate_out or Decimal(0))) / _MTOK


def context_window(prices: PriceBook, target: Target) -> int | None:
    """``target``'s context window in tokens, when the price tables know it."""
    return prices.context_window(target.adapter.price_ref(target.model))
