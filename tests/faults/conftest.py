"""Fixtures of the fault suite: fault servers that are always stopped, recorded waits, no proxy from the env."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fault_server import Behaviour, FaultServer, Waits

PROXY_VARS = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", "no_proxy",
              "NO_PROXY")


@pytest.fixture
def faults() -> Iterator[Callable[..., FaultServer]]:
    """``faults(script)`` starts a :class:`FaultServer`; every one is stopped (and checked) when the test ends."""
    servers: list[FaultServer] = []

    def start(script: Behaviour | list[Behaviour], **kwargs: object) -> FaultServer:
        srv = FaultServer(script, **kwargs)  # type: ignore[arg-type]
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.close()


@pytest.fixture
def waits() -> Waits:
    """The injected sleep: ``waits.waits`` lists every wait the retry loop asked for."""
    return Waits()


@pytest.fixture(autouse=True)
def _no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's proxy settings must not route loopback calls."""
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
