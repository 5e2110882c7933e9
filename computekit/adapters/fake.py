"""The fake provider (``fake:`` models): the adapter of :class:`computekit.testing.FakeProvider`.

A fake is a *server* mounted in-process at ``inproc://NAME`` (see :mod:`computekit._inprocess`); this adapter
only translates, as every adapter does, so a ``fake:`` call goes through the real client path: routing,
retries, fallbacks, pricing and the ledger behave as with a remote provider. The fake speaks OpenAI's wire format
for chat and embeddings, and Replicate's for predictions; an error is an error status whose body names the
computekit error type (``{"error": {"type": "RateLimitError", ...}}``), with ``retry-after`` when scripted.

Prices: what the fake states with its response (``usage.price`` — from ``FakeProvider(price_in=, price_out=)``),
unless config ``[prices]`` names one for the model; else the cost is ``None``.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from .. import _exceptions
from .._exceptions import APIStatusError
from .._types import Prediction, Result
from ..pricing import PriceRef
from ._base import Capabilities, HTTPRequest, HTTPResponse, ModelInfo
from .openai import OpenAIWire
from .replicate import ReplicateAdapter

__all__ = ["FakeAdapter"]


class FakeAdapter(OpenAIWire, ReplicateAdapter):
    """``fake:`` models, answered in-process by :class:`computekit.testing.FakeProvider`. No key needed."""

    name = "fake"
    capabilities = Capabilities(complete=True, stream=True, tools=True, json_mode=True, embed=True, predict=True)
    # (ReplicateAdapter, whose predictions wire this reuses, narrows these two to str: the fake has neither.)
    key_env_vars = ()  # type: ignore[assignment]
    default_base_url = "inproc://fake"
    base_url_env = None  # type: ignore[assignment]  # not REPLICATE_BASE_URL: a fake lives in-process
    requires_key = False
    unique_run_ids = False  # each FakeProvider counts its runs from 1: two share ids in one ledger
    table_provider = None
    docs_url = None  # type: ignore[assignment]

    @classmethod
    def listed(cls, provider: str) -> bool:
        return False  # a test double, not a provider to offer

    @classmethod
    def defaults_for(cls, provider: str) -> tuple[str | None, tuple[str, ...], bool]:
        # Each provider served by this adapter has its own in-process host: [providers.fake2] adapter = "fake"
        # talks to FakeProvider(name="fake2").
        return f"inproc://{provider}", (), False

    @classmethod
    def pricing_for(cls, provider: str) -> str:
        return "the price named in `FakeProvider(price_in=, price_out=)`, or config `[prices]`"

    def uses_text_endpoint(self, model: str) -> bool:
        return False

    def model_info_request(self, model: str, info: ModelInfo | None, *, schema: bool,
                           hardware: bool) -> HTTPRequest | None:
        return None  # the fake publishes no input schema and no hardware: Replicate's lookups don't apply

    def parse_prediction(self, model: str, resp: HTTPResponse) -> Prediction:
        pred = super().parse_prediction(model, resp)
        units = pred.metrics.get("units")
        if isinstance(units, dict):  # billed per output unit (images ...), priced by the stated price
            pred.usage.units.update({k: Decimal(str(v)) for k, v in units.items()})
        return pred

    def price_ref(self, model: str, result: Result | None = None) -> PriceRef:
        ref = super().price_ref(model, result)
        raw = result.raw if result is not None and isinstance(result.raw, dict) else {}
        usage = raw.get("usage")
        stated = usage.get("price") if isinstance(usage, dict) else raw.get("price")
        if not isinstance(stated, Mapping):
            return ref
        try:
            reported = tuple(sorted((str(k), Decimal(str(v))) for k, v in stated.items()))
        except InvalidOperation:
            return ref
        return PriceRef(provider=ref.provider, model=ref.model, table_provider=None, context=ref.context,
                        reported=reported)

    def classify_error(self, status: int, body: Any) -> type[APIStatusError] | None:
        err = body.get("error") if isinstance(body, dict) else None
        kind = getattr(_exceptions, str(err.get("type")), None) if isinstance(err, dict) else None
        if isinstance(kind, type) and issubclass(kind, APIStatusError):
            return kind
        return super().classify_error(status, body)
