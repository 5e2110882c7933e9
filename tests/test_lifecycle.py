"""A long-running process: the clients it makes and lets go leave nothing behind (threads, open files, exit
handlers), whether closed or only dropped; what a client remembers per model stays bounded."""

from __future__ import annotations

import asyncio
import atexit
import gc
import os
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
from _support import chat_json, make_client, ok

import computekit as ck
from computekit import _core
from computekit.adapters._base import ModelInfo
from computekit.ledger import _buffered
from computekit.pricing import PriceBook, PriceRef, _book

both = pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
MODEL = "openai:gpt-4o-mini"
CLIENTS = 20


class _ExitHandlers:
    """``atexit`` as the ledger's writers see it, counting the handlers registered and not unregistered (CPython's
    own count keeps the slots of unregistered ones)."""

    def __init__(self) -> None:
        self.live: set[Any] = set()

    def register(self, handler: Any) -> None:
        self.live.add(handler)
        atexit.register(handler)

    def unregister(self, handler: Any) -> None:
        self.live.discard(handler)
        atexit.unregister(handler)


@pytest.fixture
def exit_handlers(monkeypatch: pytest.MonkeyPatch) -> _ExitHandlers:
    handlers = _ExitHandlers()
    monkeypatch.setattr(_buffered, "atexit", handlers)
    return handlers


def _within(now: tuple[int, ...], before: tuple[int, ...]) -> bool:
    """Whether nothing counted in ``now`` exceeds ``before`` (what earlier tests left may end meanwhile)."""
    return all(n <= b for n, b in zip(now, before, strict=True))


def _state(exit_handlers: _ExitHandlers) -> tuple[int, int, int, int]:
    """Writer threads, open files, exit handlers and live writers of this process."""
    gc.collect()
    gc.collect()  # what a finalizer of the first let go of
    writers = sum(1 for t in threading.enumerate() if t.name == "computekit-ledger-writer")
    return writers, len(os.listdir("/proc/self/fd")), len(exit_handlers.live), len(_buffered._LIVE)


async def _one_call(tmp_path: Path, is_async: bool, close: bool, url: str | None = None, **settings: Any) -> None:
    client = make_client(lambda request: ok(chat_json()), is_async=is_async,
                         ledger=url or f"sqlite:///{tmp_path / 'ledger.db'}", **settings)
    if is_async:
        await client.complete(MODEL, "hi")
        if close:
            await client.aclose()
    else:
        client.complete(MODEL, "hi")
        if close:
            client.close()


def _rows(tmp_path: Path, url: str | None = None) -> int:
    with ck.Client(config=None, ledger=url or f"sqlite:///{tmp_path / 'ledger.db'}") as client:
        return len(client.ledger.rows())


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts open files in /proc")
@both
@pytest.mark.parametrize("budget", [False, True], ids=["buffered", "budget"])
async def test_closing_a_client_releases_the_ledger_it_opened(tmp_path: Path, ledger_url: str, is_async: bool,
                                                              budget: bool, exit_handlers: _ExitHandlers) -> None:
    """On PostgreSQL, each connection left open would also hold one of the server's connection slots."""
    settings: dict[str, Any] = {"budget": {"limit_usd": "100"}} if budget else {}
    await _one_call(tmp_path, is_async, True, ledger_url, **settings)  # the first opens (and creates) the file
    before = _state(exit_handlers)
    for _ in range(CLIENTS):
        await _one_call(tmp_path, is_async, True, ledger_url, **settings)
    assert _within(_state(exit_handlers), before)
    assert _rows(tmp_path, ledger_url) == CLIENTS + 1  # every row written, by close()


@both
async def test_a_closed_clients_ledger_is_read_after_close(tmp_path: Path, is_async: bool) -> None:
    await _one_call(tmp_path, is_async, True)
    client = make_client(lambda request: ok(chat_json()), is_async=is_async,
                         ledger=f"sqlite:///{tmp_path / 'ledger.db'}")
    if is_async:
        async with client:
            await client.complete(MODEL, "hi")
    else:
        with client:
            client.complete(MODEL, "hi")
    assert len(client.ledger.rows()) == 2  # reopened for the read
    client.ledger.close()


@both
async def test_an_in_memory_ledger_keeps_its_rows_after_close(is_async: bool) -> None:
    """An in-memory ledger's rows live only in it: closing the client flushes it, and does not throw them away."""
    client = make_client(lambda request: ok(chat_json()), is_async=is_async, ledger="sqlite://:memory:")
    if is_async:
        async with client:
            await client.complete(MODEL, "hi")
    else:
        with client:
            client.complete(MODEL, "hi")
    assert len(client.ledger.rows()) == 1


async def test_a_ledger_passed_in_is_left_open(tmp_path: Path) -> None:
    ledger = ck.ledger.SQLiteLedger(tmp_path / "ledger.db", buffered=True)
    client = make_client(lambda request: ok(chat_json()), ledger=ledger)
    client.complete(MODEL, "hi")
    client.close()
    assert len(ledger.rows()) == 1  # still usable: its owner closes it
    ledger.close()


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts open files in /proc")
@both
async def test_a_client_dropped_unclosed_lets_its_writer_go(tmp_path: Path, is_async: bool,
                                                           exit_handlers: _ExitHandlers,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_buffered, "_IDLE_CHECK_S", 0.01, raising=False)
    await _one_call(tmp_path, is_async, True)
    before = _state(exit_handlers)
    for _ in range(CLIENTS):
        await _one_call(tmp_path, is_async, False)
    gc.collect()
    for _ in range(200):  # each writer writes its queue, then ends
        if _within(_state(exit_handlers), before):
            break
        await asyncio.sleep(0.01)
    assert _within(_state(exit_handlers), before)
    assert _rows(tmp_path) == CLIENTS + 1  # no row lost


async def test_a_ledger_kept_from_a_dropped_client_still_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    monkeypatch.setattr(_buffered, "_IDLE_CHECK_S", 0.01, raising=False)
    client = make_client(lambda request: ok(chat_json()), ledger=f"sqlite:///{tmp_path / 'ledger.db'}")
    client.complete(MODEL, "hi")
    ledger = client.ledger
    del client
    gc.collect()
    ledger.record(ledger.rows()[0])  # written at once: its writer has let go
    assert len(ledger.rows()) == 2
    ledger.close()


# ------------------------------------------------------------------------------------------- per-model memory
# A gateway that passes on whatever model its users name meets an unbounded number of names.


def test_the_models_told_unpriced_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_book, "TARGETS_KEPT", 3, raising=False)
    book = PriceBook()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i in range(10):
            book.warn_unknown(PriceRef("plain", f"m{i}"))
        book.warn_unknown(PriceRef("plain", "m9"))  # told already: once per model still
    assert len(caught) == 10
    assert len(book._warned) <= 3


def test_the_models_told_of_streams_without_usage_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from computekit import _instrument_meter

    monkeypatch.setattr(_instrument_meter, "TARGETS_KEPT", 3, raising=False)
    monkeypatch.setattr(_instrument_meter, "_TOLD", set())
    core = ck.Client(config=None, ledger="none", providers={"openai": {"api_key": "sk-test"}})._core
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for target in core.targets([f"openai:m{i}" for i in range(10)]):
            _instrument_meter._tell_no_usage(target, "stream_options")
    assert len(caught) == 10
    assert len(_instrument_meter._TOLD) <= 3


def test_the_published_model_facts_a_client_keeps_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_core, "MODELS_KEPT", 3, raising=False)
    core = ck.Client(config=None, ledger="none", providers={"replicate": {"api_key": "r8_test"}})._core
    targets = core.targets([f"replicate:owner/m{i}" for i in range(10)])
    for t in targets:
        core.add_model_info(t, ModelInfo(hardware="gpu-a100-large"))
    assert len(core._model_info) == 3
    assert core.model_info(targets[-1]) == ModelInfo(hardware="gpu-a100-large")
    assert core.model_info(targets[0]) is None  # the oldest, looked up again if asked for


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts open files in /proc")
@pytest.mark.parametrize("close", [True, False], ids=["closed", "dropped"])
def test_instrumented_sdk_clients_made_and_let_go_leave_nothing(tmp_path: Path, close: bool,
                                                                exit_handlers: _ExitHandlers,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    openai = pytest.importorskip("openai")
    import httpx

    from computekit import _instrument_meter

    monkeypatch.setattr(_buffered, "_IDLE_CHECK_S", 0.01, raising=False)

    def one(close: bool) -> None:
        using = ck.Client(config=None, ledger=f"sqlite:///{tmp_path / 'ledger.db'}")
        sdk = ck.instrument(openai.OpenAI(api_key="sk-test", http_client=httpx.Client(
            transport=httpx.MockTransport(lambda request: ok(chat_json())))), using=using)
        sdk.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        if close:
            sdk.close()
            using.close()

    one(True)  # the first opens (and creates) the file
    before = (*_state(exit_handlers), len(_instrument_meter._METERS))
    for _ in range(CLIENTS):
        one(close)
    for _ in range(200):  # a dropped client's writer writes its queue, then ends
        if _within((*_state(exit_handlers), len(_instrument_meter._METERS)), before):
            break
        time.sleep(0.01)
    assert _within((*_state(exit_handlers), len(_instrument_meter._METERS)), before)
    assert _rows(tmp_path) == CLIENTS + 1


def test_the_proxy_decisions_a_transport_keeps_are_bounded() -> None:
    # Downloads and per-call base URLs reach hosts without end; each one's proxy decision is remembered.
    from computekit import _transport

    seen: dict[tuple[str, str], str | None] = {}
    for i in range(3 * _transport._PROXY_DECISIONS_KEPT):
        _transport._env_proxy(f"https://host{i}.example/v1/x", seen)
    assert len(seen) <= _transport._PROXY_DECISIONS_KEPT
    assert ("https", "host0.example") not in seen
