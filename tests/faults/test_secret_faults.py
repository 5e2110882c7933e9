"""Fault catalogue: secrets that are not API keys — the ledger URL's password, extra provider headers, a proxy's
password — never shown in a repr, a str, a dump, an error, a log record, a ledger row or an OpenTelemetry span.

Each test plants a canary, proves it was used (sent to the server or the proxy), and looks for it everywhere.
"""

from __future__ import annotations

import base64
import json
import logging
import traceback
from typing import Any

import pytest
from fault_server import Reply, Waits, chat, close, make_client, run
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import computekit as ck
from computekit.ledger import NullLedger

both = pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
DB_PASSWORD = "pg-canary-5d1e8f20b7"
HEADER_SECRET = "hdr-canary-9c44a1e07d"
PROXY_PASSWORD = "proxy-canary-3b7f6e21"


def settings_surfaces(client: Any) -> dict[str, str]:
    s = client.settings
    return {"repr(settings)": repr(s), "str(settings)": str(s), "settings JSON": s.model_dump_json(),
            "settings dump": repr(s.model_dump()), "repr(ledger section)": repr(s.ledger),
            "repr(provider section)": repr(s.providers["openai"]), "repr(client)": repr(client),
            "str(client)": str(client)}


def error_surfaces(e: BaseException) -> dict[str, str]:
    return {"str(error)": str(e), "repr(error)": repr(e), "traceback": "".join(traceback.format_exception(e))}


def span_text(exporter: InMemorySpanExporter) -> str:
    return repr([(s.name, dict(s.attributes or {}), s.status.description, [e.attributes for e in s.events])
                 for s in exporter.get_finished_spans()])


# ============================================================================================= settings


@both
async def test_settings_never_show_the_ledger_password_or_header_values(faults: Any, waits: Waits,
                                                                         is_async: bool) -> None:
    srv = faults(chat("Hello"))
    ledger_url = f"postgresql://app:{DB_PASSWORD}@db.internal:5432/spend?sslmode=require&password={DB_PASSWORD}"
    client = make_client(is_async, srv.url, waits, ledger=ledger_url,
                         provider={"headers": {"X-Gateway-Key": HEADER_SECRET, "X-Title": "demo"}})
    # No PostgreSQL server here: the configured ledger is never opened (a null one records the call instead).
    client._core._ledger = NullLedger()
    try:
        surfaces = settings_surfaces(client)
        r = await run(client.complete("openai:gpt-4o-mini", "hi"))
        assert r.text == "Hello"
    finally:
        await close(client)
    assert srv.requests[0].headers["x-gateway-key"] == HEADER_SECRET  # the header was sent: not vacuous
    assert client.settings.ledger.url == ledger_url  # the setting itself is intact
    leaked = sorted(n for n, text in surfaces.items() if DB_PASSWORD in text or HEADER_SECRET in text)
    assert leaked == []
    assert "X-Gateway-Key" in surfaces["repr(settings)"]  # names are shown, values are not
    assert "postgresql://app:**********@db.internal:5432/spend" in surfaces["settings JSON"]


@pytest.mark.parametrize("url", [f"mysql://app:{DB_PASSWORD}@db/spend", f"postgres ql://app:{DB_PASSWORD}@db/x"])
def test_invalid_ledger_url_error_hides_its_password(url: str) -> None:
    with pytest.raises(ck.ConfigError, match="ledger") as info:
        ck.Client(config=None, ledger=url)
    assert all(DB_PASSWORD not in text for text in error_surfaces(info.value).values())


# ============================================================================================= proxy


@both
async def test_proxy_password_never_reaches_an_error_a_span_or_the_ledger(
        faults: Any, waits: Waits, is_async: bool, monkeypatch: pytest.MonkeyPatch, tmp_path: Any,
        spans: InMemorySpanExporter, caplog: pytest.LogCaptureFixture) -> None:
    """The proxy refuses the tunnel (407): the error, its traceback, the log, the ledger and the span say so
    without the password the proxy URL holds."""
    caplog.set_level(logging.DEBUG)
    proxy = faults(Reply(407, {"error": "proxy authentication required"}, {"proxy-authenticate": "Basic"}))
    monkeypatch.setenv("HTTPS_PROXY", f"http://ck-user:{PROXY_PASSWORD}@127.0.0.1:{proxy.port}")
    client = make_client(is_async, "https://api.openai.com/v1", waits, retry={"max_retries": 0},
                         ledger=f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        with pytest.raises(ck.APIConnectionError) as info:
            await run(client.complete("openai:gpt-4o-mini", "hi"))
        rows = client.ledger.rows()
    finally:
        await close(client)
    # The proxy was asked for the tunnel with the right credentials: the password was used, only never shown.
    assert proxy.requests[0].method == "CONNECT"
    sent = proxy.requests[0].headers["proxy-authorization"]
    assert base64.b64decode(sent.removeprefix("Basic ")).decode() == f"ck-user:{PROXY_PASSWORD}"
    assert len(rows) == 1
    assert rows[0].error_type == "APIConnectionError"
    surfaces = error_surfaces(info.value)
    surfaces["span"] = span_text(spans)
    surfaces["log"] = caplog.text
    surfaces["ledger"] = repr(rows) + json.dumps([r.as_dict() for r in rows])
    assert "407" in surfaces["str(error)"] + surfaces["traceback"]  # the failure itself is reported
    assert len(spans.get_finished_spans()) == 1
    leaked = sorted(n for n, text in surfaces.items() if PROXY_PASSWORD in text)
    assert leaked == []
