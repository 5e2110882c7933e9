"""Shared test set-up: an isolated ledger and config, and computekit's own pytest plugin (eating our own cooking):
its ``cassette_config`` filters secrets out of every cassette, and its scan refuses to write one that still holds
anything key-shaped."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _conformance import require_conformance_dir
from _paths import CASSETTES, ROOT, real_key  # noqa: F401 - test modules import them from _paths

from computekit.testing import cassette_config

# computekit.testing's plugin is also registered by the pytest11 entry point once computekit is installed (under
# the same name, so this does not register it twice); pytester runs the plugin's own tests in subprocesses.
pytest_plugins = ["computekit.testing._plugin", "pytester"]


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads the developer's config or writes the per-user ledger."""
    monkeypatch.setenv("COMPUTEKIT_LEDGER", f"sqlite:///{tmp_path / 'ledger.db'}")
    monkeypatch.delenv("COMPUTEKIT_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Tests marked ``conformance`` replay ../shared/conformance: without it they skip with one reason outside CI
    and fail in CI (``require_conformance_dir``), before any of them looks for a file."""
    if item.get_closest_marker("conformance") is not None:
        require_conformance_dir()


@pytest.fixture(scope="module")
def vcr_config() -> dict[str, Any]:
    """Every ``@pytest.mark.vcr`` cassette: credential headers dropped, keys (the ones used, the env vars', and
    key-shaped strings) and signed-URL parameters masked — and scanned again before anything is written."""
    return cassette_config()


@pytest.fixture(scope="module")
def vcr_cassette_dir(request: pytest.FixtureRequest) -> str:
    """cassettes/<test module>/ — one folder per test module."""
    return str(CASSETTES / request.module.__name__.split(".")[-1])


# PostgreSQL for the ledger and budget tests: one server per session (see tests/_postgres.py).
from _postgres import ledger_url, postgres_dsn, postgres_url  # noqa: E402, F401


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A configured OpenTelemetry SDK tracer provider whose spans are kept in memory (an InMemorySpanExporter)."""
    from _support import reset_tracer_provider
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    reset_tracer_provider(monkeypatch)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    yield exporter
    provider.shutdown()
