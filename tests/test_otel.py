"""OpenTelemetry (``computekit._otel``): one span per recorded attempt, sync and async, with the GenAI
semantic-convention attributes and the attempt's cost; error attempts carry ``error.type``; an unpriced attempt
has no cost attribute; nothing at all when no tracer provider is configured or OpenTelemetry is absent."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import _support
import pytest
from _support import KEY, Server, chat_chunks, chat_json, error, make_client, ok, sse, stream_response, usage_json
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import computekit as ck
from computekit import _otel

both = pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
MODEL = "gpt-4o-mini"
SNAPSHOT = "gpt-4o-mini-2024-07-18"


async def _complete(client: Any, is_async: bool, *args: Any, **kwargs: Any) -> ck.Completion:
    return await client.complete(*args, **kwargs) if is_async else client.complete(*args, **kwargs)


def _ns(when: Any) -> int:
    return int(when.timestamp() * 1_000_000_000)


def _no_secret(span: ReadableSpan) -> None:
    text = repr(dict(span.attributes or {})) + repr(span.status.description) + span.name
    assert KEY not in text
    assert "sk-" not in text


@both
async def test_one_span_per_attempt_with_genai_attributes_and_cost(
    is_async: bool, spans: InMemorySpanExporter
) -> None:
    server = Server([ok(chat_json("hi", usage=usage_json(12, 5, cached=4)))])
    client = make_client(server, is_async=is_async)
    r = await _complete(client, is_async, f"openai:{MODEL}", "Say hi", tags={"feature": "search"})
    [span] = spans.get_finished_spans()
    attrs = dict(span.attributes or {})
    assert span.name == f"chat {MODEL}"
    assert span.kind is SpanKind.CLIENT
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.name == "computekit"
    assert r.cost.total is not None
    assert attrs == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.system": "openai",
        "gen_ai.request.model": MODEL,
        "gen_ai.response.model": SNAPSHOT,
        "gen_ai.response.id": "chatcmpl-123",
        "gen_ai.usage.input_tokens": 12,
        "gen_ai.usage.output_tokens": 5,
        "gen_ai.usage.cache_read.input_tokens": 4,
        "computekit.verb": "complete",
        "computekit.outcome": "success",
        "computekit.latency_ms": pytest.approx(r.attempts[0].latency_s * 1000),
        "computekit.request_id": "req_ok",
        "computekit.cost_usd": float(r.cost.total),
        "computekit.cost_usd_exact": str(r.cost.total),
        "computekit.cost_estimated": False,
        "computekit.price_source": str(r.cost.price_source),
        "computekit.tag.feature": "search",
    }
    assert span.status.status_code is StatusCode.UNSET
    # The span covers the attempt itself: its start time and its measured duration.
    attempt = r.attempts[0]
    assert span.start_time == _ns(attempt.started_at)
    assert span.end_time is not None
    assert span.end_time - span.start_time == int(attempt.latency_s * 1_000_000_000)
    _no_secret(span)


@both
async def test_a_failed_attempt_has_error_attributes(is_async: bool, spans: InMemorySpanExporter) -> None:
    server = Server([error(503, "overloaded, try later"), ok(chat_json())])
    client = make_client(server, is_async=is_async)
    await _complete(client, is_async, f"openai:{MODEL}", "hi")
    failed, succeeded = spans.get_finished_spans()
    attrs = dict(failed.attributes or {})
    assert attrs["error.type"] == "ServerError"
    assert attrs["http.response.status_code"] == 503
    assert attrs["computekit.outcome"] == "error"
    assert "gen_ai.usage.input_tokens" not in attrs  # nothing was reported for it
    assert failed.status.status_code is StatusCode.ERROR
    assert "overloaded, try later" in (failed.status.description or "")
    assert "error.type" not in (succeeded.attributes or {})
    assert succeeded.status.status_code is StatusCode.UNSET
    assert failed.end_time is not None
    assert failed.end_time <= (succeeded.start_time or 0)  # the retry came after
    _no_secret(failed)


@both
async def test_an_unpriced_attempt_has_no_cost(is_async: bool, spans: InMemorySpanExporter) -> None:
    body = chat_json()
    del body["usage"]  # no usage reported: the cost is unknown
    client = make_client(Server([ok(body)]), is_async=is_async)
    r = await _complete(client, is_async, f"openai:{MODEL}", "hi")
    assert r.cost.total is None
    [span] = spans.get_finished_spans()
    attrs = dict(span.attributes or {})
    assert not [k for k in attrs if k.startswith("computekit.cost")]
    assert attrs["gen_ai.request.model"] == MODEL


@both
async def test_streams_and_embeddings_get_their_operation_names(is_async: bool, spans: InMemorySpanExporter) -> None:
    embedding = {"object": "list", "model": "text-embedding-3-small",
                 "data": [{"object": "embedding", "index": 0, "embedding": [0.5]}],
                 "usage": {"prompt_tokens": 3, "total_tokens": 3}}
    server = Server([stream_response(sse(*chat_chunks(["a", "b"], usage=usage_json(9, 2)))), ok(embedding)])
    client = make_client(server, is_async=is_async)
    if is_async:
        async with client.stream(f"openai:{MODEL}", "hi") as s:
            async for _ in s:
                pass
        await client.embed("openai:text-embedding-3-small", "hi")
    else:
        with client.stream(f"openai:{MODEL}", "hi") as s:
            for _ in s:
                pass
        client.embed("openai:text-embedding-3-small", "hi")
    streamed, embedded = spans.get_finished_spans()
    s_attrs, e_attrs = dict(streamed.attributes or {}), dict(embedded.attributes or {})
    assert (streamed.name, s_attrs["computekit.verb"]) == (f"chat {MODEL}", "stream")
    assert (s_attrs["gen_ai.usage.input_tokens"], s_attrs["gen_ai.usage.output_tokens"]) == (9, 2)
    assert s_attrs["gen_ai.response.id"] == "chatcmpl-s"
    assert (embedded.name, e_attrs["gen_ai.operation.name"]) == ("embeddings text-embedding-3-small", "embeddings")
    assert e_attrs["gen_ai.usage.input_tokens"] == 3


async def test_spans_are_children_of_the_applications_span(spans: InMemorySpanExporter) -> None:
    client = make_client(Server([ok(chat_json())]))
    tracer = trace.get_tracer("app")
    with tracer.start_as_current_span("handle request") as parent:
        client.complete(f"openai:{MODEL}", "hi")
    child, app_span = spans.get_finished_spans()
    assert app_span.name == "handle request"
    assert child.parent is not None
    assert child.parent.span_id == parent.get_span_context().span_id
    assert child.context is not None
    assert child.context.trace_id == parent.get_span_context().trace_id


async def test_a_broken_exporter_does_not_fail_the_call(
    spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: Any) -> None:
        raise RuntimeError("exporter down")

    monkeypatch.setattr(_otel, "_emit", boom)
    client = make_client(Server([ok(chat_json())]))
    r = client.complete(f"openai:{MODEL}", "hi")
    assert r.text == "Hello there"
    assert len(client.ledger.rows()) == 1  # the money is still recorded


def test_no_span_without_a_configured_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    _support.reset_tracer_provider(monkeypatch)
    monkeypatch.delenv("OTEL_PYTHON_TRACER_PROVIDER", raising=False)
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    assert _otel._tracer() is None
    started: list[Any] = []
    monkeypatch.setattr(_otel, "_emit", lambda *a: started.append(a))
    client = make_client(Server([ok(chat_json())]))
    client.complete(f"openai:{MODEL}", "hi")
    assert started == []


def test_no_span_when_opentelemetry_is_not_installed(monkeypatch: pytest.MonkeyPatch,
                                                      spans: InMemorySpanExporter) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "opentelemetry.trace", None)
    assert _otel._tracer() is None
    client = make_client(Server([ok(chat_json())]))
    client.complete(f"openai:{MODEL}", "hi")
    assert spans.get_finished_spans() == ()


def _in_a_new_interpreter(*statements: str) -> None:
    """Run ``statements`` (asserts) in a new Python, without this one's environment (no OTEL_* variable)."""
    subprocess.run([sys.executable, "-c", "; ".join(statements)], check=True,
                   env={"PATH": "", "PYTHONPATH": ":".join(sys.path)})


def test_computekit_never_imports_opentelemetry_itself() -> None:
    _in_a_new_interpreter(
        "import sys, computekit, computekit._otel as o",
        "assert o._tracer() is None",
        "assert not [m for m in sys.modules if m.startswith('opentelemetry')], 'imported'",
    )


def test_a_provider_named_in_the_environment_later_is_picked_up() -> None:
    # The variable is read on every call (not once): set after a first call found nothing, it is seen.
    _in_a_new_interpreter(
        "import os, sys, computekit._otel as o",
        "assert o._tracer() is None and not o.tracing()",
        "assert 'opentelemetry.trace' not in sys.modules",
        "os.environ['OTEL_PYTHON_TRACER_PROVIDER'] = 'sdk_tracer_provider'",
        "assert o.tracing(), 'not seen'",
        "assert type(o._tracer()).__module__.startswith('opentelemetry.sdk')",
    )


def test_the_environment_is_read_the_public_way_when_os_environ_is_not_cpythons() -> None:
    # os.environ replaced by a plain mapping: the variable is still read from it (set, then unset).
    _in_a_new_interpreter(
        "import os, computekit._otel as o",
        "os.environ = {}",
        "assert not o.tracing()",
        "os.environ['OTEL_PYTHON_TRACER_PROVIDER'] = 'sdk_tracer_provider'",
        "assert o._provider_env_set()",
        "os.environ['OTEL_PYTHON_TRACER_PROVIDER'] = ''",
        "assert not o._provider_env_set()",
    )


def _traced_provider() -> Any:
    """The tracer provider whose tracer computekit holds (the last one it traced with)."""
    assert _otel._cached is not None
    return _otel._cached[0]


def test_imported_but_unconfigured_opentelemetry_is_seen_configured_later_in_code_or_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _support.reset_tracer_provider(monkeypatch)
    monkeypatch.delenv("OTEL_PYTHON_TRACER_PROVIDER", raising=False)
    assert _otel._tracer() is None
    assert not _otel.tracing()
    monkeypatch.setenv("OTEL_PYTHON_TRACER_PROVIDER", "sdk_tracer_provider")  # the API loads it on first use
    assert _otel.tracing()
    assert _traced_provider() is trace.get_tracer_provider()
    _support.reset_tracer_provider(monkeypatch)
    monkeypatch.delenv("OTEL_PYTHON_TRACER_PROVIDER")
    assert not _otel.tracing()
    provider = TracerProvider()
    trace.set_tracer_provider(provider)
    assert _otel.tracing()
    assert _traced_provider() is provider


def test_an_opentelemetry_without_the_global_it_looks_at_is_asked_the_public_way(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Another OpenTelemetry API version, whose module has no _TRACER_PROVIDER: get_tracer_provider() answers.
    provider = TracerProvider()
    api = type(sys)("opentelemetry.trace")
    api.ProxyTracerProvider, api.NoOpTracerProvider = trace.ProxyTracerProvider, trace.NoOpTracerProvider
    api.get_tracer_provider = lambda: provider
    monkeypatch.setitem(sys.modules, "opentelemetry.trace", api)
    monkeypatch.delenv("OTEL_PYTHON_TRACER_PROVIDER", raising=False)
    assert _otel.tracing()
    assert _traced_provider() is provider
    api.get_tracer_provider = trace.ProxyTracerProvider
    assert not _otel.tracing()


def test_an_empty_or_removed_provider_variable_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_PYTHON_TRACER_PROVIDER", "sdk_tracer_provider")
    assert _otel._provider_env_set()
    monkeypatch.setenv("OTEL_PYTHON_TRACER_PROVIDER", "")
    assert not _otel._provider_env_set()
    monkeypatch.delenv("OTEL_PYTHON_TRACER_PROVIDER")
    assert not _otel._provider_env_set()


def test_a_provider_configured_later_is_picked_up(monkeypatch: pytest.MonkeyPatch) -> None:
    _support.reset_tracer_provider(monkeypatch)
    client = make_client(Server([ok(chat_json())]))
    client.complete(f"openai:{MODEL}", "hi")  # not configured yet: nothing
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    client.complete(f"openai:{MODEL}", "hi")
    assert len(exporter.get_finished_spans()) == 1
    assert len(client.ledger.rows()) == 2


@both
async def test_a_prediction_span_has_its_gpu_time_and_no_token_counts(
    is_async: bool, spans: InMemorySpanExporter
) -> None:
    import httpx

    prediction = {"id": "p1", "model": "acme/m", "version": "v", "input": {}, "logs": "", "output": "done",
                  "error": None, "status": "succeeded", "created_at": "2026-11-20T10:00:00.000Z",
                  "urls": {"get": "https://api.replicate.com/v1/predictions/p1",
                           "cancel": "https://api.replicate.com/v1/predictions/p1/cancel"},
                  "metrics": {"predict_time": 1.5}}
    client = make_client(Server([httpx.Response(201, json=prediction)]), is_async=is_async,
                         providers={"replicate": {"api_key": "r8_" + "x" * 30}})
    call = client.predict("replicate:acme/m", {"prompt": "x"}, hardware="gpu-a40-large")
    p = await call if is_async else call
    [span] = spans.get_finished_spans()
    attrs = dict(span.attributes or {})
    assert span.name == "predict acme/m"
    assert attrs["gen_ai.operation.name"] == "predict"
    assert attrs["gen_ai.response.id"] == "p1"
    assert attrs["computekit.gpu_seconds"] == 1.5
    assert attrs["computekit.hardware"] == "gpu-a40-large"
    assert p.cost.total is not None
    assert attrs["computekit.cost_usd_exact"] == str(p.cost.total)
    assert not [k for k in attrs if k.startswith("gen_ai.usage")]
    assert "r8_" not in repr(attrs)


def test_a_new_provider_never_gets_the_tracer_of_an_old_one(monkeypatch: pytest.MonkeyPatch) -> None:
    # A provider freed and a new one at the same address look the same by id(): make every id equal.
    monkeypatch.setattr(_otel, "id", lambda obj: 1, raising=False)
    exporters = []
    client = make_client(Server([ok(chat_json())]))
    for _ in range(2):
        _support.reset_tracer_provider(monkeypatch)
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        exporters.append(exporter)
        client.complete(f"openai:{MODEL}", "hi")
        provider.shutdown()
    assert [len(e.get_finished_spans()) for e in exporters] == [1, 1]
