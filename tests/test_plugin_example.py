"""The provider plugin of ``docs/plugins.md`` works as documented: installed through its entry point, it serves
``echohost:`` models through ``Client`` and ``AsyncClient`` (retried, priced from config, in the ledger).

The plugin is "installed" the way pip would leave it: a ``*.dist-info`` folder whose ``entry_points.txt`` is made
from the plugin's own ``pyproject.toml``, on ``sys.path``. EchoHost is played by a loopback server.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from _support import LoopbackHandler, serve

import computekit as ck
from computekit.adapters import ENTRY_POINT_GROUP, _registry, available

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = ROOT / "examples" / "plugin_adapter"
PRICES = {"input_mtok": "0.40", "output_mtok": "1.20"}


class _EchoHost(LoopbackHandler):
    """EchoHost's API: the first request of each test answers 503 (``retry-after: 0``), the rest answer."""

    requests: list[tuple[str, dict[str, str], Any]] = []

    def do_POST(self) -> None:  # the stdlib's handler name
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        type(self).requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        if len(type(self).requests) == 1:
            status, answer = 503, {"error": {"message": "warming up", "type": "unavailable"}}
        else:
            status, answer = 200, {"id": "gen_1", "model": "tiny-2026-01", "output": f"echo: {body['prompt']}",
                                   "usage": {"prompt_tokens": 12, "output_tokens": 30}}
        retry_after = {"retry_after": "0"} if status == 503 else {}
        self.reply(status, json.dumps(answer).encode(), x_request_id=f"req_{len(type(self).requests)}",
                   **retry_after)


@pytest.fixture
def echohost() -> Iterator[str]:
    _EchoHost.requests = []
    with serve(_EchoHost) as url:
        yield url


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The plugin, installed: its module importable and its entry point (from its pyproject.toml) registered."""
    project = tomllib.loads((PLUGIN / "pyproject.toml").read_text("utf-8"))["project"]
    points = project["entry-points"][ENTRY_POINT_GROUP]
    dist = tmp_path / "site" / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    lines = [f"[{ENTRY_POINT_GROUP}]", *(f"{name} = {target}" for name, target in points.items())]
    (dist / "entry_points.txt").write_text("\n".join(lines) + "\n")
    monkeypatch.syspath_prepend(str(PLUGIN))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setenv("ECHOHOST_API_KEY", "test-echohost-key")
    yield "echohost"
    _registry._loaded.pop("echohost", None)


def settings(base_url: str) -> dict[str, Any]:
    return {"config": None, "retry": {"max_retries": 1}, "providers": {"echohost": {"base_url": base_url}},
            "prices": {"echohost:tiny": PRICES}}


def expected_cost(input_tokens: int, output_tokens: int) -> Decimal:
    return (input_tokens * Decimal(PRICES["input_mtok"]) + output_tokens * Decimal(PRICES["output_mtok"])) / 10**6


def check(r: ck.Completion) -> None:
    assert r.text == "echo: hi"
    assert (r.provider, r.model, r.response_model, r.request_id) == ("echohost", "tiny", "tiny-2026-01", "req_2")
    assert (r.usage.input_tokens, r.usage.output_tokens) == (12, 30)
    assert r.cost.total == expected_cost(12, 30)
    assert r.cost.price_source is not None
    assert r.cost.price_source.table == "config"
    # the 503 was retried by computekit's loop (the adapter does no retrying): two attempts, the first unbilled
    assert [(a.outcome, a.status) for a in r.attempts] == [("error", 503), ("success", None)]
    assert r.attempts[0].cost is not None
    assert r.attempts[0].cost.total == 0
    path, headers, body = _EchoHost.requests[-1]
    assert path == "/v1/generate"
    assert headers["authorization"] == "Bearer test-echohost-key"
    assert body == {"model": "tiny", "prompt": "hi", "max_tokens": 20}


def test_the_entry_point_registers_the_adapter(installed: str) -> None:
    assert available()[installed] == "computekit_echohost:EchoHostAdapter"


def test_sync_client_calls_the_plugin(installed: str, echohost: str) -> None:
    with ck.Client(**settings(echohost)) as client:
        r = client.complete("echohost:tiny", "hi", max_tokens=20)
        check(r)
        rows = client.ledger.report(group_by="target").rows
    assert [(row.key, row.calls, row.errors, row.cost) for row in rows] == [
        ("echohost:tiny", 2, 1, expected_cost(12, 30))]


async def test_async_client_calls_the_plugin(installed: str, echohost: str) -> None:
    async with ck.AsyncClient(**settings(echohost)) as client:
        check(await client.complete("echohost:tiny", "hi", max_tokens=20))


def test_what_the_plugin_cannot_do_is_refused_before_any_http(installed: str, echohost: str) -> None:
    with ck.Client(**settings(echohost)) as client:
        with pytest.raises(ck.UnsupportedCapabilityError):
            client.embed("echohost:tiny", ["a"])
        with pytest.raises(ck.UnsupportedCapabilityError):
            client.complete("echohost:tiny", "hi", tools=[{"name": "f", "parameters": {"type": "object"}}])
    assert _EchoHost.requests == []


def test_a_missing_key_names_the_plugins_variable(installed: str, echohost: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ECHOHOST_API_KEY")
    with ck.Client(**settings(echohost)) as client, pytest.raises(ck.MissingAPIKeyError, match="ECHOHOST_API_KEY"):
        client.complete("echohost:tiny", "hi")
    assert _EchoHost.requests == []


def test_the_docs_page_includes_the_tested_code() -> None:
    page = (ROOT / "docs" / "plugins.md").read_text("utf-8")
    assert '--8<-- "examples/plugin_adapter/computekit_echohost.py"' in page
    assert '--8<-- "examples/plugin_adapter/pyproject.toml:entry-point"' in page
