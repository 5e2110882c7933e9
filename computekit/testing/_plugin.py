"""computekit's pytest plugin: record a test's provider calls once, replay them with the network blocked, keep
secrets out of the cassettes, and account for what every test spent.

Installed with computekit (the ``pytest11`` entry point), it does nothing until a test uses it:

- ``@pytest.mark.computekit_cassette`` (or the ``computekit_cassette`` fixture): the test runs under a
  pytest-recording cassette — recorded live with ``--record-mode=once``, replayed afterwards, network blocked
  while replaying — with the secret filters of :mod:`computekit.testing._filters` and a scan that refuses to
  write a cassette in which anything still looks like a secret;
- ``computekit_spend``: the calls the test made and their exact cost (``assert_cost(max_usd=...)``);
- ``computekit_fake``: a :class:`~computekit.testing.FakeProvider` mounted as ``fake:`` for the test.

A plain ``@pytest.mark.vcr`` test gets the same filters and scan when the ``vcr_config`` fixture returns
:func:`computekit.testing.cassette_config` (computekit's own test suite does this). At the end of the run, a
per-test cost summary lists what the tests that used the plugin spent (replayed calls cost what they cost when
recorded).

Settings (ini): ``computekit_cassette_dir`` (default: pytest-recording's ``vcr_cassette_dir``),
``computekit_filter_headers`` / ``computekit_filter_query`` / ``computekit_filter_fields`` / ``computekit_allow``
(extra names, one per line), ``computekit_spend_summary`` (true/false).
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ._fake import FakeProvider
    from ._filters import ScanningPersister, Scrubber
    from ._spend import Spend

MARKER = "computekit_cassette"
_FIXTURES = frozenset({"computekit_spend", "computekit_fake", "computekit_cassette"})
_SUMMARY_LINES = 20


@dataclass
class _TestSpend:
    calls: int
    total: Decimal
    unpriced: int
    recorded: bool


_CURRENT = pytest.StashKey["pytest.Item | None"]()
_RESULTS = pytest.StashKey[dict[str, _TestSpend]]()
_SPEND = pytest.StashKey["Spend"]()
_PERSISTERS = pytest.StashKey[list["ScanningPersister"]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("computekit_cassette_dir", "Folder of computekit_cassette cassettes (one sub-folder per test "
                  "module); default: pytest-recording's vcr_cassette_dir.", default="")
    parser.addini("computekit_filter_headers", "More headers to drop from cassettes.", type="linelist", default=[])
    parser.addini("computekit_filter_query", "More query parameters to mask in cassettes.", type="linelist",
                  default=[])
    parser.addini("computekit_filter_fields", "More JSON fields to mask in cassettes.", type="linelist", default=[])
    parser.addini("computekit_allow", "Header or field names the secret scan must not report.", type="linelist",
                  default=[])
    parser.addini("computekit_spend_summary", "Print what each computekit test spent at the end of the run.",
                  type="bool", default=True)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(name=None, *, cassette_dir=None, filter_headers=(), filter_query=(), filter_fields=(), "
        "allow=(), secrets=()): record this test's provider calls once (--record-mode=once) and replay them "
        "afterwards with the network blocked; secrets are filtered, and a cassette that still holds one is not "
        "written.",
    )
    config.stash[_RESULTS] = {}
    config.stash[_CURRENT] = None


def _uses_cassette(item: pytest.Item) -> bool:
    return item.get_closest_marker(MARKER) is not None or MARKER in getattr(item, "fixturenames", ())


def _uses(item: pytest.Item) -> bool:
    return item.get_closest_marker(MARKER) is not None or bool(_FIXTURES & set(getattr(item, "fixturenames", ())))


def _has_recording(config: pytest.Config) -> bool:
    pm = config.pluginmanager
    return pm.has_plugin("recording") or pm.has_plugin("pytest_recording.plugin")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if not _uses_cassette(item):
            continue
        # pytest-recording opens the cassette (and opens the network only while recording).
        item.add_marker(pytest.mark.vcr)
        item.add_marker(pytest.mark.block_network)
        marker = item.get_closest_marker(MARKER)
        if marker is not None and marker.args:
            item.add_marker(pytest.mark.default_cassette(str(marker.args[0])))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, Any, None]:
    config = item.config
    config.stash[_CURRENT] = item
    spend = None
    if _uses(item):
        if _uses_cassette(item) and not _has_recording(config):
            item.add_marker(pytest.mark.skip(reason="computekit_cassette needs pytest-recording: "
                                                    "pip install 'computekit[testing]'"))
        from ._spend import Spend

        spend = item.stash[_SPEND] = Spend().start()
        item.stash[_PERSISTERS] = []
    try:
        yield
    finally:
        config.stash[_CURRENT] = None
        if spend is not None:
            spend.stop()
            config.stash[_RESULTS][item.nodeid] = _TestSpend(
                calls=len(spend.calls), total=spend.total, unpriced=len(spend.unpriced),
                recorded=any(p.saved for p in item.stash.get(_PERSISTERS, [])),
            )


# --------------------------------------------------------------------------------------------- cassettes


def _names(config: pytest.Config, ini: str, marker: pytest.Mark | None, kwarg: str) -> list[str]:
    values = [str(v) for v in config.getini(ini)]
    if marker is not None:
        values += [str(v) for v in marker.kwargs.get(kwarg, ())]
    return values


def _scrubber(config: pytest.Config, marker: pytest.Mark | None) -> Scrubber:
    from ._filters import Scrubber

    return Scrubber(
        headers=_names(config, "computekit_filter_headers", marker, "filter_headers"),
        query=_names(config, "computekit_filter_query", marker, "filter_query"),
        fields=_names(config, "computekit_filter_fields", marker, "filter_fields"),
        allow=_names(config, "computekit_allow", marker, "allow"),
        secrets=[str(s) for s in (marker.kwargs.get("secrets", ()) if marker is not None else ())],
    )


def _cassette_dir(item: pytest.Item, marker: pytest.Mark | None) -> str | None:
    chosen = marker.kwargs.get("cassette_dir") if marker is not None else None
    if chosen:
        base = Path(str(chosen))
    else:
        ini = str(item.config.getini("computekit_cassette_dir") or "")
        if not ini:
            return None
        base = Path(ini)
    if not base.is_absolute():
        base = item.config.rootpath / base
    module = getattr(item, "module", None)
    name = module.__name__.rsplit(".", 1)[-1] if module is not None else Path(str(item.path)).stem
    return str(base / name)


@pytest.hookimpl(optionalhook=True)
def pytest_recording_configure(config: pytest.Config, vcr: Any) -> None:
    """pytest-recording made a VCR for the current test: add computekit's filters and scan to its cassette."""
    from ._filters import ScanningPersister, hooks_of, scrubber_in

    item = config.stash.get(_CURRENT, None)
    ours = item is not None and _uses_cassette(item)
    marker = item.get_closest_marker(MARKER) if item is not None else None
    original = vcr.use_cassette

    def use_cassette(path: Any = None, **kwargs: Any) -> Any:
        given = scrubber_in(kwargs)
        if given is None and not ours:
            return original(path, **kwargs)  # a vcr test that did not ask for computekit's filters
        sc = given
        if ours and (sc is None or (marker is not None and any(
            marker.kwargs.get(k) for k in ("filter_headers", "filter_query", "filter_fields", "allow", "secrets")
        ))):
            sc = _scrubber(config, marker)
            # Ours replace the vcr_config's computekit hooks (theirs plus this test's names), after any others.
            keep_req = [h for h in hooks_of(kwargs, "before_record_request") if h != getattr(given, "request", 0)]
            keep_resp = [h for h in hooks_of(kwargs, "before_record_response") if h != getattr(given, "response", 0)]
            kwargs["before_record_request"] = [*keep_req, sc.request]
            kwargs["before_record_response"] = [*keep_resp, sc.response]
            kwargs.setdefault("decode_compressed_response", True)
        assert sc is not None
        persister = ScanningPersister(kwargs.get("persister", vcr.persister), sc)
        kwargs["persister"] = persister
        if item is not None and _PERSISTERS in item.stash:
            item.stash[_PERSISTERS].append(persister)
        if ours and item is not None and isinstance(path, str) and not os.path.isabs(path):
            folder = _cassette_dir(item, marker)
            if folder is not None:
                path = os.path.join(folder, path)
        return original(path, **kwargs)

    vcr.use_cassette = use_cassette


# --------------------------------------------------------------------------------------------- fixtures


@pytest.fixture
def computekit_spend(request: pytest.FixtureRequest) -> Spend:
    """The calls this test made through computekit (any client) and their exact cost.

    ``.calls`` (ledger rows), ``.total`` (a ``Decimal``, USD), ``.unpriced``, and
    ``.assert_cost(max_usd=..., min_usd=...)``.
    """
    spend: Spend = request.node.stash[_SPEND]
    return spend


@pytest.fixture
def computekit_fake() -> Iterator[FakeProvider]:
    """A :class:`~computekit.testing.FakeProvider` answering ``fake:`` models for this test (echo until
    scripted: ``computekit_fake.script("a reply", Fail(ck.RateLimitError), ...)``)."""
    from ._fake import FakeProvider

    with FakeProvider() as fake:
        yield fake


@pytest.fixture
def computekit_cassette(request: pytest.FixtureRequest) -> Any:
    """The test's vcrpy cassette (the fixture form of ``@pytest.mark.computekit_cassette``)."""
    return request.getfixturevalue("vcr")


# --------------------------------------------------------------------------------------------- summary


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    results = config.stash.get(_RESULTS, {})
    if not results or not config.getini("computekit_spend_summary"):
        return
    tr = terminalreporter
    tr.write_sep("-", "computekit spend")
    spent = sorted(((r.total, node, r) for node, r in results.items() if r.calls), key=lambda x: x[0], reverse=True)
    for total, node, r in spent[:_SUMMARY_LINES]:
        notes = []
        if r.unpriced:
            notes.append(f"{r.unpriced} unpriced")
        if r.recorded:
            notes.append("recorded live")
        note = f"  ({', '.join(notes)})" if notes else ""
        cost = f"${total}" + (" + unknown" if r.unpriced else "")
        tr.write_line(f"{cost:<18} {r.calls:>3} call(s)  {node}{note}")
    if len(spent) > _SUMMARY_LINES:
        tr.write_line(f"... and {len(spent) - _SUMMARY_LINES} more test(s) with calls")
    calls = sum(r.calls for r in results.values())
    unpriced = sum(r.unpriced for r in results.values())
    grand = sum((r.total for r in results.values()), Decimal(0))
    tail = f", {unpriced} unpriced" if unpriced else ""
    tr.write_line(f"total ${grand} over {calls} call(s) in {len(results)} test(s){tail}")
