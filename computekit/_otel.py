"""OpenTelemetry: one span per recorded attempt, with the GenAI semantic-convention attributes and its cost.

Nothing happens unless ``opentelemetry-api`` is importable **and** the application configured a tracer provider
(``trace.set_tracer_provider(...)``, or ``OTEL_PYTHON_TRACER_PROVIDER``). computekit never imports
opentelemetry itself on the call path when the application has not: a provider can only be configured by code
that imported ``opentelemetry.trace`` first (or by the environment variable), so the check costs a dict lookup.

The span is written when the attempt is recorded, with the attempt's real start time and duration, as a child
of whatever span is current (the application's request span, say). Attribute names follow the GenAI semantic
conventions (https://opentelemetry.io/docs/specs/semconv/gen-ai/gen-ai-spans/, development status):
``gen_ai.provider.name`` (and ``gen_ai.system``, its name before semconv 1.37, which many backends still read),
``gen_ai.operation.name``, ``gen_ai.request.model``, ``gen_ai.response.model``, ``gen_ai.response.id``,
``gen_ai.usage.*``, ``error.type``. computekit adds ``computekit.cost_usd`` (a float, for dashboards) and
``computekit.cost_usd_exact`` (the exact decimal as a string), both absent when the attempt could not be
priced; never a key, a prompt or an output.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._types import Attempt, Result, Usage

__all__ = ["INSTRUMENTATION_NAME", "OPERATION_NAMES", "attempt_span", "note_response", "span_attributes", "tracing"]

INSTRUMENTATION_NAME = "computekit"
"""The instrumentation scope of computekit's spans."""

OPERATION_NAMES: dict[str, str] = {"complete": "chat", "stream": "chat", "embed": "embeddings"}
"""computekit verb -> ``gen_ai.operation.name`` where semconv has a well-known value; other verbs (``rerank``,
``predict``) keep their own name, as the convention allows."""

_PROVIDER_ENV = "OTEL_PYTHON_TRACER_PROVIDER"
_PROVIDER_ENV_KEY: Any = os.environ.encodekey(_PROVIDER_ENV) if hasattr(os.environ, "encodekey") else _PROVIDER_ENV
"""The variable's key in CPython's ``os.environ`` store (bytes on POSIX, upper-case text on Windows)."""
_UNSEEN = object()
_cached: tuple[Any, Any] | None = None
"""``(tracer provider, its tracer)``: a provider configured later (or a new one) gets its own tracer. The provider
is held, not its id: an id can be reused by a new provider once the old one is gone."""


def _provider_env() -> str | bytes | None:
    """``OTEL_PYTHON_TRACER_PROVIDER``'s value (``None``: unset), read afresh on every call (a test or an app may
    set it at any time). ``os.environ.get`` of an absent variable raises and catches a ``KeyError`` inside: ten
    times the cost of a look in the store that ``os.environ`` keeps in step with every change made through it."""
    store = getattr(os.environ, "_data", None)
    if type(store) is dict:
        value: str | bytes | None = store.get(_PROVIDER_ENV_KEY)
        return value
    return os.environ.get(_PROVIDER_ENV)  # os.environ replaced, or another interpreter: the public way


def _provider_env_set() -> bool:
    """Whether ``OTEL_PYTHON_TRACER_PROVIDER`` is set to something (what makes computekit import OpenTelemetry)."""
    return bool(_provider_env())


def _tracer() -> Any | None:
    """computekit's tracer, or ``None`` when OpenTelemetry is absent or no tracer provider is configured."""
    trace: Any = sys.modules.get("opentelemetry.trace")
    if trace is None:
        if not _provider_env_set():
            return None  # nobody configured tracing: do not even import it
        try:
            from opentelemetry import trace
        except ImportError:
            return None
    elif getattr(trace, "_TRACER_PROVIDER", _UNSEEN) is None and _provider_env() is None:
        # Imported (by the application, a library) but no provider set, in code or in the environment: what
        # get_tracer_provider() finds then (its proxy, spans going nowhere), without its KeyError inside.
        return None
    provider = trace.get_tracer_provider()
    if isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)):
        return None  # the API's default: nothing configured, spans would go nowhere
    global _cached
    cached = _cached
    if cached is not None and cached[0] is provider:
        return cached[1]
    from ._version import __version__

    tracer = provider.get_tracer(INSTRUMENTATION_NAME, __version__)
    _cached = (provider, tracer)
    return tracer


def tracing() -> bool:
    """Whether spans are being exported (OpenTelemetry is configured)."""
    return _tracer() is not None


def _ns(when: dt.datetime) -> int:
    return int(when.timestamp() * 1_000_000_000)


def note_response(attempt: Attempt, result: Result) -> None:
    """Keep the response's id and model on ``attempt`` (private), for its span: the ledger row has no room for
    them, and the span is written where the row is."""
    response_id = getattr(result, "id", None)
    private = attempt.__pydantic_private__  # set in place: pydantic's __setattr__ costs five times more
    assert private is not None  # Attempt has private attributes: pydantic gives it their dict
    private["_response_id"] = str(response_id) if response_id else None
    private["_response_model"] = getattr(result, "response_model", None)


def attempt_span(verb: str, attempt: Attempt, usage: Usage, tags: Mapping[str, str] | None = None) -> None:
    """Emit one span for ``attempt`` when tracing is configured; a no-op otherwise. Never raises: telemetry
    must not break a call whose money is already spent."""
    tracer = _tracer()
    if tracer is None:
        return
    with contextlib.suppress(Exception):  # a broken exporter or SDK must not fail the call
        _emit(tracer, verb, attempt, usage, tags)


def span_attributes(verb: str, attempt: Attempt, usage: Usage, tags: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The attributes of an attempt's span (pure)."""
    operation = OPERATION_NAMES.get(verb, verb)
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": operation,
        "gen_ai.provider.name": attempt.provider,
        "gen_ai.system": attempt.provider,
        "gen_ai.request.model": attempt.model,
        "computekit.verb": verb,
        "computekit.outcome": attempt.outcome,
        "computekit.latency_ms": attempt.latency_s * 1000,
    }
    if attempt._response_model:
        attrs["gen_ai.response.model"] = attempt._response_model
    if attempt._response_id:
        attrs["gen_ai.response.id"] = attempt._response_id
    if attempt.request_id:
        attrs["computekit.request_id"] = attempt.request_id
    has_tokens = bool(usage.input_tokens or usage.output_tokens)
    if has_tokens or (attempt.outcome == "success" and verb != "predict"):  # a success reports usage, even 0
        attrs["gen_ai.usage.input_tokens"] = usage.input_tokens
        attrs["gen_ai.usage.output_tokens"] = usage.output_tokens
    if usage.cached_input_tokens:
        attrs["gen_ai.usage.cache_read.input_tokens"] = usage.cached_input_tokens
    if usage.cache_write_tokens:
        attrs["gen_ai.usage.cache_creation.input_tokens"] = usage.cache_write_tokens
    if usage.gpu_seconds is not None:
        attrs["computekit.gpu_seconds"] = float(usage.gpu_seconds)
    if usage.hardware:
        attrs["computekit.hardware"] = usage.hardware
    cost = attempt.cost
    if cost is not None and cost.total is not None:  # unpriced: no cost attribute at all, never 0
        attrs["computekit.cost_usd"] = float(cost.total)
        attrs["computekit.cost_usd_exact"] = format(cost.total, "f")
        attrs["computekit.cost_estimated"] = cost.estimated
        if cost.price_source is not None:
            attrs["computekit.price_source"] = str(cost.price_source)
    if attempt.outcome == "error":
        attrs["error.type"] = attempt.error_type or "error"
    if attempt.status is not None:
        attrs["http.response.status_code"] = attempt.status
    for name, value in (tags or {}).items():
        attrs[f"computekit.tag.{name}"] = value
    return attrs


def _emit(tracer: Any, verb: str, attempt: Attempt, usage: Usage, tags: Mapping[str, str] | None) -> None:
    from opentelemetry.trace import SpanKind, Status, StatusCode

    attrs = span_attributes(verb, attempt, usage, tags)
    start = _ns(attempt.started_at)
    end = start + max(int(attempt.latency_s * 1_000_000_000), 0)
    span = tracer.start_span(
        f"{attrs['gen_ai.operation.name']} {attempt.model}", kind=SpanKind.CLIENT, attributes=attrs,
        start_time=start,
    )
    if attempt.outcome == "error":
        # The attempt's message says what failed; it never holds a key (see computekit._exceptions).
        span.set_status(Status(StatusCode.ERROR, attempt.error or attrs["error.type"]))
    span.end(end_time=end)
