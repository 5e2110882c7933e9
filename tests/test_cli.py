"""The ``computekit`` command, run in-process with typer's CliRunner.

``complete`` talks real HTTP to a scripted server on 127.0.0.1 (the only host the test network allows), pointed
at by a computekit.toml; everything else needs no network at all.
"""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from _support import serve
from typer.testing import CliRunner

from computekit import Usage
from computekit.adapters import ProviderSettings, adapter_class
from computekit.cli import _money, app
from computekit.pricing import PriceBook, PriceRef
from computekit.pricing._book import _Tiered

KEY = "sk-cli-test-secret-0123456789abcdef"

runner = CliRunner()

# pytest-recording blocks the network for every test; this module's scripted server lives on loopback only.
pytestmark = pytest.mark.block_network(allowed_hosts=[r"127\.0\.0\.1"])


# --------------------------------------------------------------------------------------------- loopback server


def _usage(prompt: int, completion: int) -> dict[str, Any]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0}}


def _chat(text: str, prompt: int = 11, completion: int = 7) -> dict[str, Any]:
    return {"id": "chatcmpl-cli1", "object": "chat.completion", "created": 1795581600,
            "model": "gpt-4o-mini-2024-07-18", "service_tier": "default",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": None},
                         "logprobs": None, "finish_reason": "stop"}],
            "usage": _usage(prompt, completion)}


def _sse(pieces: list[str], prompt: int = 9, completion: int = 3) -> bytes:
    base = {"id": "chatcmpl-cli2", "object": "chat.completion.chunk", "created": 1795581600,
            "model": "gpt-4o-mini-2024-07-18", "service_tier": "default"}
    events: list[dict[str, Any]] = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}],
                                     "usage": None}]
    events += [{**base, "choices": [{"index": 0, "delta": {"content": p}}], "usage": None} for p in pieces]
    events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": None})
    events.append({**base, "choices": [], "usage": _usage(prompt, completion)})
    out = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)
    return out + b"data: [DONE]\n\n"


@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": "application/json"})


@dataclass
class Loopback:
    """A scripted OpenAI-shaped server on 127.0.0.1: each request gets the next reply (the last repeats)."""

    url: str
    replies: list[Reply] = field(default_factory=list)
    seen: list[dict[str, Any]] = field(default_factory=list)

    def reply_json(self, body: Any, status: int = 200) -> None:
        self.replies.append(Reply(status, json.dumps(body).encode()))


def _send(handler: BaseHTTPRequestHandler, reply: Reply) -> None:
    handler.send_response(reply.status)
    for k, v in reply.headers.items():
        handler.send_header(k, v)
    handler.send_header("content-length", str(len(reply.body)))
    handler.end_headers()
    handler.wfile.write(reply.body)


@pytest.fixture
def loopback() -> Iterator[Loopback]:
    state: Loopback

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = json.loads(self.rfile.read(length) or b"null")
            state.seen.append({"path": self.path, "body": body, "auth": self.headers.get("authorization")})
            _send(self, state.replies[min(len(state.seen) - 1, len(state.replies) - 1)])

        def do_GET(self) -> None:  # output file downloads (predict --save)
            state.seen.append({"path": self.path, "body": None, "auth": self.headers.get("authorization")})
            _send(self, state.replies[min(len(state.seen) - 1, len(state.replies) - 1)])

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with serve(Handler) as url:
        state = Loopback(url=url)
        yield state


@pytest.fixture
def config(tmp_path: Path, loopback: Loopback, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A computekit.toml that sends openai: calls to the loopback server, keyed from $OPENAI_API_KEY."""
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    path = tmp_path / "loopback.toml"
    path.write_text(f'[providers.openai]\nbase_url = "{loopback.url}"\n\n[retry]\nmax_retries = 0\n', "utf-8")
    return path


def _invoke(*args: str, env: dict[str, str] | None = None) -> Any:
    return runner.invoke(app, list(args), env=env, catch_exceptions=False)


# --------------------------------------------------------------------------------------------- import cost


def test_import_computekit_loads_no_cli_or_http_libraries() -> None:
    code = (
        "import computekit, sys; "
        "heavy = [m for m in ('typer', 'rich', 'httpx', 'openai') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_help_lists_the_commands() -> None:
    result = _invoke("--help")
    assert result.exit_code == 0
    for cmd in ("complete", "providers", "prices", "report", "demo"):
        assert cmd in result.output


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version(flag: str) -> None:
    import computekit

    result = _invoke(flag)
    assert result.exit_code == 0
    assert result.output.strip() == f"computekit {computekit.__version__}"


@pytest.mark.parametrize("args", [["-h"], ["report", "-h"], ["complete", "-h"]])
def test_short_help(args: list[str]) -> None:
    short, long = _invoke(*args), _invoke(*args[:-1], "--help")
    assert short.exit_code == 0
    assert short.output == long.output
    assert "Usage:" in short.output


def test_help_keeps_bracketed_extras() -> None:
    result = runner.invoke(app, ["report", "--help"], env={"COLUMNS": "120"})
    assert "computekit[plot]" in result.output


def test_main_is_the_console_script() -> None:
    text = (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text("utf-8")
    assert 'computekit = "computekit.cli:main"' in text


# --------------------------------------------------------------------------------------------- complete


def test_complete_prints_text_then_cost(config: Path, loopback: Loopback) -> None:
    loopback.reply_json(_chat("GPUs hum in the dark"))
    result = _invoke("complete", "openai:gpt-4o-mini", "haiku please", "--max-tokens", "20", "--config", str(config))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "GPUs hum in the dark"
    assert lines[1].startswith("cost: $")
    assert "price source: genai-prices" in result.stdout
    assert "input" in result.stdout
    assert "output" in result.stdout
    # What was sent: the prompt as one user message, max_tokens, the key from the environment.
    sent = loopback.seen[0]
    assert sent["path"] == "/v1/chat/completions"
    assert sent["body"]["messages"] == [{"role": "user", "content": "haiku please"}]
    assert sent["body"]["max_tokens"] == 20
    assert sent["auth"] == f"Bearer {KEY}"
    assert KEY not in result.output


def test_complete_reads_stdin_and_takes_system_and_sampling(config: Path, loopback: Loopback) -> None:
    loopback.reply_json(_chat("short"))
    result = runner.invoke(app, ["complete", "openai:gpt-4o-mini", "-", "--system", "Be brief", "--temperature",
                                 "0.2", "--max-tokens", "30", "--config", str(config)],
                           input="a long text\nto summarise\n", catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "short"
    body = loopback.seen[0]["body"]
    assert body["messages"] == [{"role": "system", "content": "Be brief"},
                                {"role": "user", "content": "a long text\nto summarise\n"}]
    assert body["temperature"] == 0.2
    assert body["max_tokens"] == 30


def test_complete_refuses_an_empty_stdin_prompt(config: Path) -> None:
    result = runner.invoke(app, ["complete", "openai:gpt-4o-mini", "-", "--config", str(config)], input="  \n")
    assert result.exit_code == 2
    assert "empty" in result.output


def test_complete_json_is_the_completion(config: Path, loopback: Loopback) -> None:
    loopback.reply_json(_chat("hello", prompt=11, completion=7))
    result = _invoke("complete", "openai:gpt-4o-mini", "hi", "--json", "--config", str(config))
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["text"] == "hello"
    assert data["provider"] == "openai"
    assert data["model"] == "gpt-4o-mini"
    assert "raw" not in data
    assert data["usage"]["input_tokens"] == 11
    assert data["usage"]["output_tokens"] == 7
    rates = PriceBook().rates(PriceRef("openai", "gpt-4o-mini-2024-07-18", "openai"))
    assert rates is not None
    expected = rates.cost(_usage_of(11, 7)).total
    assert Decimal(data["cost"]["total"]) == expected
    assert len(data["attempts"]) == 1
    assert data["attempts"][0]["outcome"] == "success"


def _usage_of(prompt: int, completion: int) -> Usage:
    return Usage(input_tokens=prompt, output_tokens=completion)


def test_complete_stream_prints_chunks_then_cost(config: Path, loopback: Loopback) -> None:
    loopback.replies.append(Reply(200, _sse(["Hel", "lo", " world"]), {"content-type": "text/event-stream"}))
    result = _invoke("complete", "openai:gpt-4o-mini", "hi", "--stream", "--config", str(config))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "Hello world"
    assert lines[1].startswith("cost: $")
    assert loopback.seen[0]["body"]["stream"] is True


def test_complete_stream_json(config: Path, loopback: Loopback) -> None:
    loopback.replies.append(Reply(200, _sse(["a", "b"], 9, 3), {"content-type": "text/event-stream"}))
    result = _invoke("complete", "openai:gpt-4o-mini", "hi", "--stream", "--json", "--config", str(config))
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["text"] == "ab"
    assert data["usage"]["input_tokens"] == 9
    assert Decimal(data["cost"]["total"]) > 0


def test_complete_reads_config_from_env(config: Path, loopback: Loopback, monkeypatch: pytest.MonkeyPatch) -> None:
    loopback.reply_json(_chat("from env config"))
    monkeypatch.setenv("COMPUTEKIT_CONFIG", str(config))
    result = _invoke("complete", "openai:gpt-4o-mini", "hi")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("from env config\n")


def test_complete_unpriced_model_says_unpriced_not_zero(config: Path, loopback: Loopback) -> None:
    body = _chat("hi")
    body["model"] = "acme/unlisted-model-1"
    loopback.reply_json(body)
    result = _invoke("complete", "openai:acme/unlisted-model-1", "hi", "--config", str(config))
    assert result.exit_code == 0, result.output
    assert "unpriced" in result.stdout
    assert "$0.00" not in result.stdout
    assert '[prices] "openai:acme/unlisted-model-1"' in result.stdout
    assert "Warning" not in result.output  # shown in the cost line, not as a Python warning


def test_provider_error_is_one_red_line_exit_2_and_never_the_key(config: Path, loopback: Loopback) -> None:
    # A hostile (or careless) server echoes the key back in its error message.
    loopback.replies.append(Reply(401, json.dumps(
        {"error": {"message": f"Incorrect API key provided: {KEY}", "type": "invalid_request_error",
                   "code": "invalid_api_key"}}).encode()))
    result = _invoke("complete", "openai:gpt-4o-mini", "hi", "--config", str(config))
    assert result.exit_code == 2
    assert KEY not in result.output
    assert result.stdout == ""
    err = result.stderr.strip()
    assert err.startswith("error: AuthenticationError")
    assert "401" in err
    assert "\n" not in err
    assert "Traceback" not in result.output


def test_missing_key_exit_2_names_the_env_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    result = _invoke("complete", "openai:gpt-4o-mini", "hi")
    assert result.exit_code == 2
    assert "OPENAI_API_KEY" in result.stderr
    assert "MissingAPIKeyError" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["complete", "no-colon-model", "hi"], "provider:model"),
        (["complete", "nosuchprovider:m", "hi"], "unknown provider"),
        (["complete", "openai:gpt-4o-mini", "hi", "--config", "does-not-exist.toml"], "does not exist"),
        (["report", "--since", "yesterday"], "--since"),
        (["prices", "nosuchprovider:m"], "unknown provider"),
    ],
)
def test_errors_exit_2_with_a_message(args: list[str], needle: str) -> None:
    result = _invoke(*args)
    assert result.exit_code == 2, result.output
    assert needle in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_invalid_config_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[providers.openai]\ntimeout = -1\nbogus = 1\n", "utf-8")
    result = _invoke("providers", "--config", str(bad))
    assert result.exit_code == 2
    assert "providers.openai.timeout" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


# --------------------------------------------------------------------------------------------- providers


def test_providers_table_lists_adapters_with_capabilities() -> None:
    result = _invoke("providers")
    assert result.exit_code == 0, result.output
    for name in ("openai", "azure", "together", "ollama"):
        assert name in result.stdout
        for cap in adapter_class(name).capabilities.names():
            assert cap in result.stdout
    assert "OPENAI_API_KEY" in result.stdout
    assert "TOGETHER_API_KEY" in result.stdout


def test_providers_json_is_asked_of_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    from computekit.adapters import available
    from computekit.adapters._registry import providers

    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.delenv("TOGETHER_API_KEY", raising=False)
    result = _invoke("providers", "--json")
    assert result.exit_code == 0, result.output
    assert KEY not in result.output
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert set(rows) == set(providers()) == set(available()) - {"fake", "openai-compatible"}
    for name in ("openai", "azure", "together", "ollama"):
        cls = adapter_class(name)
        url, env_vars, requires_key = cls.defaults_for(name)
        assert rows[name]["capabilities"] == cls.capabilities_for(name).names()
        assert rows[name]["pricing"] == cls.pricing_for(name)
        assert rows[name]["key_env_vars"] == list(env_vars)
        assert rows[name]["requires_key"] == requires_key
        assert rows[name]["adapter"] == cls.name
        if url:
            assert rows[name]["base_url"] == url
    assert rows["openai"]["configured"] is True
    assert "OPENAI_API_KEY" in rows["openai"]["status"]
    assert rows["together"]["configured"] is False
    assert rows["ollama"]["configured"] is True  # a local server needs no key


@pytest.mark.parametrize("json_out", [False, True], ids=["table", "json"])
def test_providers_never_show_a_base_urls_credentials(tmp_path: Path, json_out: bool) -> None:
    """A configured base URL holding a key in its query (Gemini's ``?key=``) or a password in its user info is
    listed with them masked, as everywhere settings are shown (they were printed as they were)."""
    key, password = "AIza" + "Q" * 35, "cli-url-password-0123456789"
    conf = tmp_path / "c.toml"
    conf.write_text(f'[providers.gemini]\nbase_url = "https://gw.example.com/v1beta?key={key}"\n'
                    f'[providers.vertex]\nbase_url = "https://app:{password}@gw.example.com/v1"\n', "utf-8")
    result = _invoke("providers", *(["--json"] if json_out else []), "--config", str(conf))
    assert result.exit_code == 0, result.output
    assert key not in result.output
    assert password not in result.output
    if json_out:
        rows = {r["name"]: r for r in json.loads(result.stdout)}
        assert rows["gemini"]["base_url"] == "https://gw.example.com/v1beta?key=**********"
        assert rows["vertex"]["base_url"] == "https://app:**********@gw.example.com/v1"


def test_providers_include_configured_hosts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MYHOST_KEY", "myhost-key-123456789")
    conf = tmp_path / "c.toml"
    conf.write_text('[providers.myhost]\nadapter = "openai-compatible"\nbase_url = "https://llm.example.com/v1"\n'
                    'api_key_env = "MYHOST_KEY"\n', "utf-8")
    result = _invoke("providers", "--json", "--config", str(conf))
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows["myhost"]["adapter"] == "openai-compatible"
    assert rows["myhost"]["base_url"] == "https://llm.example.com/v1"
    assert rows["myhost"]["key_env_vars"] == ["MYHOST_KEY"]
    assert rows["myhost"]["configured"] is True
    assert "myhost-key-123456789" not in result.output


# --------------------------------------------------------------------------------------------- prices


def _openai_rates(model: str) -> Any:
    cls = adapter_class("openai")
    adapter = cls(ProviderSettings(name="openai", base_url="", api_key=None, timeout=10))
    return PriceBook().rates(adapter.price_ref(model))


def test_prices_json_equals_the_price_book() -> None:
    rates = _openai_rates("gpt-4o-mini")
    assert rates is not None
    result = _invoke("prices", "openai:gpt-4o-mini", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["known"] is True
    assert {k: Decimal(v) for k, v in data["rates"].items()} == {
        k: (v.base if isinstance(v, _Tiered) else v) for k, v in rates.prices.items()
    }
    assert data["source"]["table"] == rates.source.table
    assert data["source"]["as_of"] == (rates.source.as_of.isoformat() if rates.source.as_of else None)


def test_prices_table_shows_the_rates_and_source() -> None:
    rates = _openai_rates("gpt-4o-mini")
    assert rates is not None
    result = _invoke("prices", "openai:gpt-4o-mini")
    assert result.exit_code == 0, result.output
    for value in rates.prices.values():
        if isinstance(value, Decimal):
            assert f"{_money(value)}/1M tokens" in result.stdout
    assert str(rates.source) in result.stdout


def test_prices_unknown_model_exits_1_with_how_to_add_one() -> None:
    result = _invoke("prices", "openai:acme-unlisted-model-9")
    assert result.exit_code == 1
    assert "no price known" in result.stdout
    assert "[prices]" in result.stdout
    assert '"openai:acme-unlisted-model-9"' in result.stdout


def test_prices_from_config_override(tmp_path: Path) -> None:
    conf = tmp_path / "p.toml"
    conf.write_text('[prices]\n"openai:my-ft" = { input_mtok = "1.25", output_mtok = "5" }\n', "utf-8")
    result = _invoke("prices", "openai:my-ft", "--json", "--config", str(conf))
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["rates"] == {"input_mtok": "1.25", "output_mtok": "5"}
    assert data["source"]["table"] == "config"


def test_prices_self_hosted_is_not_unknown() -> None:
    result = _invoke("prices", "ollama:llama3.2")
    assert result.exit_code == 0
    assert "self-hosted" in result.stdout


# --------------------------------------------------------------------------------------------- report


@pytest.fixture
def spent(config: Path, loopback: Loopback) -> Path:
    """Two successful calls and one failed one, through the CLI, into the test's ledger."""
    loopback.reply_json(_chat("one", 11, 7))
    assert _invoke("complete", "openai:gpt-4o-mini", "a", "--config", str(config)).exit_code == 0
    loopback.replies.clear()
    loopback.reply_json(_chat("two", 20, 10))
    assert _invoke("complete", "openai:gpt-4o-mini", "b", "--config", str(config)).exit_code == 0
    loopback.replies.clear()
    loopback.reply_json({"error": {"message": "bad", "type": "invalid_request_error"}}, status=400)
    assert _invoke("complete", "openai:gpt-4o-mini", "c", "--config", str(config)).exit_code == 2
    return config


def _expected_total() -> Decimal:
    rates = PriceBook().rates(PriceRef("openai", "gpt-4o-mini-2024-07-18", "openai"))
    assert rates is not None
    a, b = rates.cost(_usage_of(11, 7)).total, rates.cost(_usage_of(20, 10)).total
    assert a is not None
    assert b is not None
    return a + b


def test_report_csv_parses(spent: Path) -> None:
    result = _invoke("report", "--by", "model", "--format", "csv", "--config", str(spent))
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert rows[0]["model"] == "gpt-4o-mini"
    assert rows[0]["calls"] == "3"
    assert rows[0]["errors"] == "1"
    assert rows[-1]["model"] == "TOTAL"
    assert Decimal(rows[-1]["cost"]) == _expected_total()


def test_report_json_parses(spent: Path) -> None:
    result = _invoke("report", "--by", "outcome", "--format", "json", "--config", str(spent))
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["group_by"] == "outcome"
    assert Decimal(data["total"]) == _expected_total()
    by_key = {r["key"]: r for r in data["rows"]}
    assert by_key["success"]["calls"] == 2
    assert by_key["error"]["calls"] == 1


def test_report_table_shows_the_total(spent: Path) -> None:
    result = _invoke("report", "--config", str(spent))
    assert result.exit_code == 0, result.output
    assert "openai" in result.stdout
    assert f"total: {_money(_expected_total())} USD" in result.stdout


def test_report_since_until(spent: Path) -> None:
    result = _invoke("report", "--format", "json", "--since", "2000-01-01", "--until", "2000-12-31",
                     "--config", str(spent))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows"] == []
    result = _invoke("report", "--format", "json", "--since", "2000-01-01", "--config", str(spent))
    assert Decimal(json.loads(result.stdout)["total"]) == _expected_total()


def test_report_empty_ledger() -> None:
    result = _invoke("report")
    assert result.exit_code == 0, result.output
    assert "no calls recorded" in result.stdout


def test_report_does_not_create_a_ledger(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"  # where conftest points COMPUTEKIT_LEDGER
    result = _invoke("report", "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows"] == []
    assert not db.exists()


# ------------------------------------------------------------------------------ report: tags, calls, plot, html

_MIDNIGHT = "2026-03-02T00:00:00+00:00"


@pytest.fixture
def recorded(tmp_path: Path) -> list[Any]:
    """Attempts written straight into the test's ledger (conftest points COMPUTEKIT_LEDGER at it)."""
    import datetime as dt

    from computekit.ledger import LedgerRow, SQLiteLedger

    midnight = dt.datetime.fromisoformat(_MIDNIGHT)

    def row(ts: dt.datetime, provider: str, cost: str | None, **kw: Any) -> LedgerRow:
        fields: dict[str, Any] = {"outcome": "success", "input_tokens": 100, "output_tokens": 20, **kw}
        return LedgerRow(ts=ts, verb="complete", provider=provider, model=f"{provider}-m", latency_ms=3.0,
                         cost=None if cost is None else Decimal(cost), **fields)

    rows = [
        row(midnight - dt.timedelta(seconds=1), "openai", "0.000123", tags={"customer": "acme"}),
        row(midnight, "anthropic", "0.5", tags={"customer": "acme"}),
        row(midnight + dt.timedelta(hours=5), "anthropic", None, tags={"customer": "globex"}),
        row(midnight + dt.timedelta(days=2), "openai", "0.25", outcome="error", error_type="ServerError",
            status=500),
    ]
    lg = SQLiteLedger(tmp_path / "ledger.db")
    for r in rows:
        lg.record(r)
    lg.close()
    return rows


def test_report_by_tag(recorded: list[Any]) -> None:
    result = _invoke("report", "--by", "tag:customer", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["group_by"] == "tag:customer"
    assert {r["key"]: (r["calls"], r["cost"], r["unpriced"]) for r in data["rows"]} == {
        "acme": (2, "0.500123", 0), "globex": (1, "0", 1), "(none)": (1, "0.25", 0)}
    assert Decimal(data["total"]) == Decimal("0.750123")


def test_report_by_tag_table_marks_unpriced_groups(recorded: list[Any]) -> None:
    result = _invoke("report", "--by", "tag:customer")
    assert result.exit_code == 0, result.output
    assert "tag:customer" in result.stdout
    assert "globex" in result.stdout
    assert "unpriced" in result.stdout
    assert "total: $0.750123 USD + 1 unpriced call not included" in result.stdout


def test_report_by_day_splits_at_utc_midnight(recorded: list[Any]) -> None:
    result = _invoke("report", "--by", "day", "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["day"], r["calls"], r["cost"]) for r in rows] == [
        ("2026-03-01", "1", "0.000123"), ("2026-03-02", "2", "0.5"), ("2026-03-04", "1", "0.25"),
        ("TOTAL", "4", "0.750123")]


def test_report_period_selects_attempts(recorded: list[Any]) -> None:
    result = _invoke("report", "--since", "2026-03-02", "--until", "2026-03-02", "--format", "json")
    data = json.loads(result.stdout)
    assert Decimal(data["total"]) == Decimal("0.5")
    assert data["unpriced"] == 1
    result = _invoke("report", "--calls", "--since", _MIDNIGHT, "--format", "json")  # an ISO datetime: to the second
    assert [c["ts"] for c in json.loads(result.stdout)["calls"]] == [_MIDNIGHT, "2026-03-02T05:00:00+00:00",
                                                                     "2026-03-04T00:00:00+00:00"]


@pytest.mark.parametrize("by", ["tag:", "colour", "tag"])
def test_report_bad_group_by_is_one_red_line(by: str) -> None:
    result = _invoke("report", "--by", by)
    assert result.exit_code == 2
    assert "--by" in result.stderr
    assert "tag:NAME" in result.stderr


def test_report_calls_json_lists_each_attempt(recorded: list[Any]) -> None:
    result = _invoke("report", "--calls", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [(c["provider"], c["outcome"], c["cost"], c["tags"]) for c in data["calls"]] == [
        ("openai", "success", "0.000123", {"customer": "acme"}), ("anthropic", "success", "0.5", {"customer": "acme"}),
        ("anthropic", "success", None, {"customer": "globex"}), ("openai", "error", "0.25", {})]
    assert Decimal(data["total"]) == Decimal("0.750123")
    assert data["unpriced"] == 1


def test_report_calls_csv(recorded: list[Any]) -> None:
    result = _invoke("report", "--calls", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["cost"] for r in rows] == ["0.000123", "0.5", "", "0.25"]
    assert rows[3]["error_type"] == "ServerError"
    assert rows[3]["status"] == "500"


def test_report_calls_table(recorded: list[Any]) -> None:
    result = _invoke("report", "--calls")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "2026-03-01 23:59:59" in out
    assert "anthropic:anthropic-m" in out
    assert "Server 500" in out
    assert "customer=globex" in out
    assert "100 → 20" in out
    assert "4 calls" in out
    assert "total: $0.750123 USD + 1 unpriced call not included" in out


def test_report_plot_writes_the_chart(recorded: list[Any], tmp_path: Path) -> None:
    out = tmp_path / "cost.png"
    result = _invoke("report", "--plot", str(out))
    assert result.exit_code == 0, result.output
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 10_000
    assert f"wrote the cost chart to {out}" in result.stderr
    assert "spend by provider" in result.stdout  # the report is printed as well


def test_report_plot_and_html_leave_csv_output_clean(recorded: list[Any], tmp_path: Path) -> None:
    html = tmp_path / "report.html"
    result = _invoke("report", "--by", "model", "--format", "csv", "--html", str(html), "--plot",
                     str(tmp_path / "c.svg"))
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))  # nothing but the CSV on stdout
    assert rows[-1]["model"] == "TOTAL"
    page = html.read_text("utf-8")
    assert 'src="data:image/png;base64,' in page
    assert "<h2>Spend by model</h2>" in page
    assert "<td>anthropic-m</td>" in page
    assert "<svg" in (tmp_path / "c.svg").read_text("utf-8")


def test_report_plot_without_matplotlib(recorded: list[Any], tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    result = _invoke("report", "--plot", str(tmp_path / "c.png"))
    assert result.exit_code == 2
    assert "computekit[plot]" in result.stderr
    assert not (tmp_path / "c.png").exists()


def test_report_plot_of_a_ledger_not_created_yet(tmp_path: Path) -> None:
    out = tmp_path / "cost.png"
    result = _invoke("report", "--plot", str(out))
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "no calls recorded" in result.stdout
    assert not (tmp_path / "ledger.db").exists()


# --------------------------------------------------------------------------------------------- predict


def test_predict_runs_and_prints_output_and_gpu_cost(tmp_path: Path, loopback: Loopback,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from decimal import Decimal

    from computekit.pricing import PriceBook

    monkeypatch.setenv("REPLICATE_API_TOKEN", "r8_test_0123456789abcdefghij")
    path = tmp_path / "replicate.toml"
    path.write_text(f'[providers.replicate]\nbase_url = "{loopback.url}"\n', "utf-8")
    loopback.reply_json({"id": "p1", "status": "succeeded", "output": "a red bicycle.png", "logs": "",
                         "metrics": {"predict_time": 2.5}, "urls": {}}, status=201)
    result = _invoke("predict", "replicate:acme/bikes", "-i", "prompt=a red bicycle", "-i", "steps=4",
                     "--hardware", "gpu-t4", "--no-validate", "--config", str(path))
    assert result.exit_code == 0, result.output
    assert loopback.seen[0]["path"] == "/v1/models/acme/bikes/predictions"
    assert loopback.seen[0]["body"] == {"input": {"prompt": "a red bicycle", "steps": 4}}
    assert "p1: succeeded" in result.output
    assert "a red bicycle.png" in result.output
    expected = PriceBook().gpu_cost("replicate", "gpu-t4", Decimal("2.5")).total
    assert expected is not None
    assert f"${expected:f}" in result.output
    assert "r8_test" not in result.output


def test_predict_checks_the_input_and_shows_progress_on_a_terminal(tmp_path: Path, loopback: Loopback,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from computekit import cli

    monkeypatch.setenv("REPLICATE_API_TOKEN", "r8_test_0123456789abcdefghij")
    monkeypatch.setattr(cli, "_stdout_is_terminal", lambda: True)
    path = tmp_path / "replicate.toml"
    path.write_text(f'[providers.replicate]\nbase_url = "{loopback.url}"\n', "utf-8")
    schema = {"components": {"schemas": {"Input": {"type": "object", "properties": {
        "prompt": {"type": "string"}, "steps": {"type": "integer", "minimum": 1, "maximum": 8}}}}}}
    loopback.reply_json({"owner": "acme", "name": "bikes", "latest_version": {"id": "v1", "openapi_schema": schema}})
    bad = _invoke("predict", "replicate:acme/bikes", "-i", "prompt=a red bicycle", "-i", "step=4",
                  "--config", str(path))
    assert bad.exit_code != 0
    assert "did you mean 'steps'?" in bad.output
    assert [s["path"] for s in loopback.seen] == ["/v1/models/acme/bikes"]  # checked, nothing created
    loopback.replies.append(loopback.replies[0])  # a new process: the schema is looked up again
    loopback.reply_json({"id": "p9", "status": "succeeded", "output": "ok.png", "logs": "step 4/4\n",
                         "metrics": {"predict_time": 2.0}, "urls": {}}, status=201)
    good = _invoke("predict", "replicate:acme/bikes", "-i", "prompt=a red bicycle", "-i", "steps=4",
                   "--hardware", "gpu-t4", "--config", str(path))
    assert good.exit_code == 0, good.output
    assert [s["path"] for s in loopback.seen][1:] == ["/v1/models/acme/bikes", "/v1/models/acme/bikes/predictions"]
    # the progress line (drawn on stderr) ends with the run's status and cost
    assert "replicate:acme/bikes  succeeded" in good.output


def test_predict_input_must_be_key_value() -> None:
    result = runner.invoke(app, ["predict", "replicate:acme/bikes", "-i", "no-equals-sign"])
    assert result.exit_code == 2
    assert "key=value" in result.output


def test_predict_save_downloads_outputs_without_the_key_and_prints_paths(
        tmp_path: Path, loopback: Loopback, monkeypatch: pytest.MonkeyPatch) -> None:
    token = "r8_test_0123456789abcdefghij"
    monkeypatch.setenv("REPLICATE_API_TOKEN", token)
    path = tmp_path / "replicate.toml"
    path.write_text(f'[providers.replicate]\nbase_url = "{loopback.url}"\n', "utf-8")
    files = loopback.url.removesuffix("/v1") + "/files"
    loopback.reply_json({"id": "p2", "status": "succeeded", "logs": "", "metrics": {"predict_time": 1.0},
                         "output": [f"{files}/out-0.png?sig=abc", f"{files}/out-1.png"], "urls": {}}, status=201)
    loopback.replies.append(Reply(200, b"first", {"content-type": "image/png"}))
    loopback.replies.append(Reply(200, b"second", {"content-type": "image/png"}))
    out = tmp_path / "outputs"

    refused = _invoke("predict", "replicate:acme/bikes", "-i", "prompt=a red bicycle", "--save", str(out),
                      "--no-validate", "--config", str(path))
    assert refused.exit_code != 0
    assert "loopback" in refused.output
    assert "sig=abc" not in refused.output
    assert [s["path"] for s in loopback.seen] == ["/v1/models/acme/bikes/predictions"]  # no download was sent
    del loopback.seen[:]  # the same script again

    result = _invoke("predict", "replicate:acme/bikes", "-i", "prompt=a red bicycle", "--save", str(out),
                     "--no-validate", "--allow-private-network", "--config", str(path))

    assert result.exit_code == 0, result.output
    assert [s["path"] for s in loopback.seen] == ["/v1/models/acme/bikes/predictions", "/files/out-0.png?sig=abc",
                                                  "/files/out-1.png"]
    assert loopback.seen[0]["auth"] == f"Bearer {token}"
    assert [s["auth"] for s in loopback.seen[1:]] == [None, None]
    assert (out / "out-0.png").read_bytes() == b"first"
    assert (out / "out-1.png").read_bytes() == b"second"
    assert f"saved {out / 'out-0.png'}" in result.output
    assert f"saved {out / 'out-1.png'}" in result.output


def test_predict_save_with_nothing_to_save_fails_cleanly(tmp_path: Path, loopback: Loopback,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPLICATE_API_TOKEN", "r8_test_0123456789abcdefghij")
    path = tmp_path / "replicate.toml"
    path.write_text(f'[providers.replicate]\nbase_url = "{loopback.url}"\n', "utf-8")
    loopback.reply_json({"id": "p3", "status": "succeeded", "output": "just text", "logs": "", "urls": {}},
                        status=201)
    result = _invoke("predict", "replicate:acme/bikes", "--save", str(tmp_path / "o"), "--no-validate",
                     "--config", str(path))
    assert result.exit_code == 2
    assert "no file URLs" in result.output


def test_predict_save_needs_wait() -> None:
    result = runner.invoke(app, ["predict", "replicate:acme/bikes", "--no-wait", "--save", "out"])
    assert result.exit_code == 2
    assert "--no-wait" in result.output


# --------------------------------------------------------------------------------------------- finetune


def _ft_job(status: str, **extra: Any) -> dict[str, Any]:
    return {"object": "fine_tuning.job", "id": "ftjob-cli", "model": "gpt-4o-mini-2024-07-18",
            "created_at": 1_764_000_000, "finished_at": None, "fine_tuned_model": None, "status": status,
            "training_file": "file-cli", "validation_file": None, "hyperparameters": {"n_epochs": 3},
            "trained_tokens": None, "error": {}, **extra}


def _ft_rows(n: int = 10) -> str:
    return "".join(json.dumps({"messages": [{"role": "user", "content": f"Say {i}"},
                                            {"role": "assistant", "content": str(i)}]}) + "\n" for i in range(n))


def test_finetune_estimate_prints_the_cost_and_sends_nothing(config: Path, loopback: Loopback,
                                                             tmp_path: Path) -> None:
    data = tmp_path / "train.jsonl"
    data.write_text(_ft_rows(), "utf-8")
    result = _invoke("finetune", "estimate", "openai:gpt-4o-mini-2024-07-18", str(data), "--epochs", "2",
                     "-c", str(config))
    assert result.exit_code == 0, result.output
    assert "10 examples" in result.output
    assert "(estimated)" in result.output
    assert "x 2 epochs" in result.output
    assert "computekit:training" in result.output
    assert loopback.seen == []


def test_finetune_create_refuses_bad_data_with_the_line(config: Path, loopback: Loopback, tmp_path: Path) -> None:
    data = tmp_path / "bad.jsonl"
    data.write_text(_ft_rows(3) + '{"messages": [{"role": "user", "content": "no answer"}]}\n' + _ft_rows(8), "utf-8")
    result = runner.invoke(app, ["finetune", "create", "openai:gpt-4o-mini-2024-07-18", str(data), "-c", str(config)])
    assert result.exit_code == 2
    assert "TrainingDataError" in result.output
    assert "line 4" in result.output
    assert loopback.seen == []


def test_finetune_status_events_cancel_wait(config: Path, loopback: Loopback) -> None:
    loopback.reply_json(_ft_job("succeeded", trained_tokens=3000, finished_at=1_764_000_600,
                                fine_tuned_model="ft:gpt-4o-mini-2024-07-18:org::cli"))
    result = _invoke("finetune", "status", "openai:ftjob-cli", "-c", str(config))
    assert result.exit_code == 0, result.output
    assert "succeeded" in result.output
    assert "openai:ft:gpt-4o-mini-2024-07-18:org::cli" in result.output
    assert "trained tokens" in result.output
    assert "actual:" in result.output
    assert loopback.seen[-1]["path"] == "/v1/fine_tuning/jobs/ftjob-cli"

    loopback.replies[:] = [Reply(200, json.dumps(_ft_job("running")).encode()),
                           Reply(200, json.dumps({"object": "list", "has_more": False, "data": [
                               {"id": "ev1", "created_at": 1_764_000_100, "level": "info",
                                "message": "Fine-tuning job started", "type": "message", "data": {}}]}).encode())]
    loopback.seen.clear()
    result = _invoke("finetune", "events", "openai:ftjob-cli", "--limit", "5", "-c", str(config))
    assert result.exit_code == 0, result.output
    assert "Fine-tuning job started" in result.output
    assert loopback.seen[-1]["path"] == "/v1/fine_tuning/jobs/ftjob-cli/events?limit=5"

    loopback.replies[:] = [Reply(200, json.dumps(_ft_job("running")).encode()),
                           Reply(200, json.dumps(_ft_job("cancelled")).encode())]
    loopback.seen.clear()
    result = _invoke("finetune", "cancel", "openai:ftjob-cli", "-c", str(config))
    assert result.exit_code == 0, result.output
    assert "canceled" in result.output
    assert loopback.seen[-1]["path"] == "/v1/fine_tuning/jobs/ftjob-cli/cancel"

    loopback.replies[:] = [Reply(200, json.dumps(_ft_job("failed", error={"code": "x", "message": "bad file"})
                                                 ).encode())]
    loopback.seen.clear()
    result = runner.invoke(app, ["finetune", "wait", "openai:ftjob-cli", "-c", str(config)])
    assert result.exit_code == 2
    assert "FineTuneFailedError" in result.output
    assert "bad file" in result.output


# ------------------------------------------------------------------------------ report and budgets: any ledger URL


def _pg_rows(url: str) -> list[Any]:
    import datetime as dt

    from computekit.ledger import LedgerRow, open_ledger

    now = dt.datetime.now(dt.UTC)
    rows = [LedgerRow(ts=now, verb="complete", provider=p, model=f"{p}-m", outcome="success", latency_ms=2.0,
                      cost=Decimal(c), tags={"customer": "acme"}) for p, c in (("openai", "0.25"), ("groq", "0.5"))]
    lg = open_ledger(url)
    lg.record_many(rows)
    lg.close()
    return rows


def test_report_reads_a_postgresql_ledger(postgres_url: str, monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    _pg_rows(postgres_url)
    monkeypatch.setenv("COMPUTEKIT_LEDGER", postgres_url)  # the configured ledger
    result = _invoke("report", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert Decimal(data["total"]) == Decimal("0.75")
    assert {r["key"]: Decimal(r["cost"]) for r in data["rows"]} == {"openai": Decimal("0.25"),
                                                                    "groq": Decimal("0.5")}
    monkeypatch.setenv("COMPUTEKIT_LEDGER", f"sqlite:///{tmp_path / 'other.db'}")
    by_flag = _invoke("report", "--calls", "--format", "json", "--ledger", postgres_url)  # or named on the line
    assert by_flag.exit_code == 0, by_flag.output
    assert len(json.loads(by_flag.stdout)["calls"]) == 2
    table = _invoke("report", "--ledger", postgres_url)
    assert "PostgresLedger(" in table.stdout
    assert "total: $0.75 USD" in table.stdout
    assert not (tmp_path / "other.db").exists()


def test_report_reads_a_ledger_given_as_a_plain_path(tmp_path: Path) -> None:
    from computekit.ledger import open_ledger

    path = tmp_path / "plain.db"
    missing = _invoke("report", "--format", "json", "--ledger", str(path))
    assert json.loads(missing.stdout)["rows"] == []
    assert not path.exists()  # reading never creates a ledger
    _pg_rows(f"sqlite:///{path}")
    assert open_ledger(str(path)).rows()
    result = _invoke("report", "--format", "json", "--ledger", str(path))
    assert Decimal(json.loads(result.stdout)["total"]) == Decimal("0.75")


def _budget_config(tmp_path: Path) -> Path:
    p = tmp_path / "computekit.toml"
    p.write_text('[budget]\nlimit_usd = "2"\n\n'
                 '[budgets.acme]\nlimit_usd = "0.5"\nperiod = "month"\ntags = { customer = "acme" }\n\n'
                 '[budgets.groq]\nlimit_usd = "10"\nperiod = "total"\nprovider = "groq"\n')
    return p


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_budgets_prints_each_budgets_state(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    import datetime as dt

    from computekit.ledger import open_ledger
    from computekit.ledger._budgets import Charge, period_start

    url = request.getfixturevalue("postgres_url") if backend == "postgres" else f"sqlite:///{tmp_path / 'b.db'}"
    _pg_rows(url)
    now = dt.datetime.now(dt.UTC)
    lg = open_ledger(url)  # a call in flight under the default budget
    lg.reserve([Charge(name="default", limit=Decimal(2), period="day", start=period_start("day", now),
                       amount=Decimal("0.125"))], now=now, ttl_s=600)
    lg.close()
    cfg = _budget_config(tmp_path)
    result = _invoke("budgets", "--json", "--ledger", url, "--config", str(cfg))
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert list(data) == ["default", "acme", "groq"]
    assert {k: (v["spent"], v["reserved"], v["remaining"]) for k, v in data.items()} == {
        "default": ("0.75", "0.125", "1.125"),
        "acme": ("0.75", "0", "0"),  # over its limit: nothing left, never negative
        "groq": ("0.5", "0", "9.5"),
    }
    assert (data["acme"]["period"], data["acme"]["tags"]) == ("month", {"customer": "acme"})
    table = _invoke("budgets", "--ledger", url, "--config", str(cfg))
    assert table.exit_code == 0, table.output
    for text in ("default", "all calls", "customer=acme", "provider=groq", "$1.125", "$9.5", "43.8%"):
        assert text in table.stdout, text


def test_budgets_without_budgets_or_ledger(tmp_path: Path) -> None:
    none = _invoke("budgets")
    assert none.exit_code == 0
    assert "no budgets configured" in none.stdout
    fresh = _invoke("budgets", "--json", "--config", str(_budget_config(tmp_path)))
    assert fresh.exit_code == 0, fresh.output
    assert json.loads(fresh.stdout)["default"]["remaining"] == "2"
    assert not (tmp_path / "ledger.db").exists()  # reading never creates the ledger


def test_client_budget_status_matches_the_cli(tmp_path: Path) -> None:
    import computekit as ck

    url = f"sqlite:///{tmp_path / 'c.db'}"
    _pg_rows(url)
    client = ck.Client(config=_budget_config(tmp_path), ledger=url)
    try:
        status = client.budget_status()
    finally:
        client.ledger.close()
    assert isinstance(status["acme"], ck.BudgetStatus)
    assert (status["default"].limit, status["default"].period) == (Decimal(2), "day")
    assert (status["default"].spent, status["default"].reserved, status["default"].remaining) == (
        Decimal("0.75"), Decimal(0), Decimal("1.25"))
    cli = json.loads(_invoke("budgets", "--json", "--ledger", url, "--config", str(tmp_path / "computekit.toml"))
                     .stdout)
    assert cli == {name: st.as_dict() for name, st in status.items()}


# --------------------------------------------------------------------------------------------- money in tables


def test_piped_tables_never_cut_money(tmp_path: Path) -> None:
    from computekit.ledger import open_ledger

    url = f"sqlite:///{tmp_path / 'demo.db'}"
    assert _invoke("demo", "--ledger", url).exit_code == 0
    ledger = open_ledger(url)
    per_call = [r.cost for r in ledger.rows() if r.cost]
    per_target = [r.cost for r in ledger.report("target").rows if r.cost]
    ledger.close()
    for args, costs in ((["report", "--calls"], per_call), (["report", "--by", "target"], per_target)):
        result = _invoke(*args, "--ledger", url, env={"COLUMNS": "60"})  # narrow, and not a terminal
        assert result.exit_code == 0, result.output
        assert "…" not in result.output
        for cost in costs:
            assert format(cost, "f").rstrip("0") in result.output
        assert "E-" not in result.output


# --------------------------------------------------------------------------------------------- batch
# An OpenAI-shaped batch host on 127.0.0.1 serving the authored, spec-validated exchanges of
# cassettes/test_batch_client/openai_batch.yaml, routed by method and path (a batch's GET answers in turn).

BATCH_CASSETTE = Path(__file__).resolve().parent.parent / "cassettes" / "test_batch_client" / "openai_batch.yaml"
BATCH_REQUESTS = [
    {"custom_id": "q1", "messages": [{"role": "user", "content": "Say this is a test"}], "max_tokens": 16},
    {"custom_id": "q2", "messages": [{"role": "user", "content": "Name a prime number"}], "max_tokens": 16},
    {"custom_id": "q3", "messages": [{"role": "user", "content": "x" * 40}], "max_tokens": 16},
]


@dataclass
class BatchHost:
    """Replies by (method, path); a list of replies is answered in turn, its last one repeating."""

    url: str
    routes: dict[tuple[str, str], list[Reply]] = field(default_factory=dict)
    seen: list[tuple[str, str, bytes]] = field(default_factory=list)

    def on(self, method: str, path: str, *replies: Reply) -> BatchHost:
        self.routes[(method, path)] = list(replies)
        return self

    def reply(self, method: str, path: str) -> Reply:
        queue = self.routes.get((method, path))
        if not queue:
            return Reply(404, json.dumps({"error": {"message": f"no route {method} {path}", "type": "x"}}).encode())
        return queue.pop(0) if len(queue) > 1 else queue[0]

    def paths(self) -> list[str]:
        return [f"{m} {p}" for m, p, _ in self.seen]


def _cassette(path: Path = BATCH_CASSETTE) -> list[dict[str, Any]]:
    import yaml

    return list(yaml.safe_load(path.read_text("utf-8"))["interactions"])


def _served(inter: dict[str, Any]) -> Reply:
    resp = inter["response"]
    return Reply(resp["status"]["code"], resp["body"]["string"].encode(),
                 {"content-type": resp["headers"]["content-type"][0]})


def _batch_state(status: str, completed: int = 0, failed: int = 0, **extra: Any) -> Reply:
    """The cassette's completed batch object, at another point of its life."""
    body = json.loads(_cassette()[2]["response"]["body"]["string"])
    for key in ("output_file_id", "error_file_id", "completed_at", "finalizing_at", "usage"):
        body.pop(key)
    body.update(status=status, request_counts={"total": 3, "completed": completed, "failed": failed}, **extra)
    return Reply(200, json.dumps(body).encode())


@contextmanager
def _batch_server(cassette: Path, origin: str) -> Iterator[BatchHost]:
    """A loopback host answering ``cassette``'s exchanges by method and path (``origin`` removed from its URIs;
    a route's replies in the cassette's order)."""
    state: BatchHost

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            path = self.path.removeprefix("/v1")
            state.seen.append((self.command, path, body))
            _send(self, state.reply(self.command, path))

        do_GET = do_POST = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with serve(Handler) as url:
        state = BatchHost(url=url)
        for inter in _cassette(cassette):
            route = (inter["request"]["method"], inter["request"]["uri"].removeprefix(origin))
            state.routes.setdefault(route, []).append(_served(inter))
        yield state


@pytest.fixture
def batch_host() -> Iterator[BatchHost]:
    with _batch_server(BATCH_CASSETTE, "https://api.openai.com/v1") as host:
        yield host


@pytest.fixture
def batch_config(tmp_path: Path, batch_host: BatchHost, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    path = tmp_path / "batch.toml"
    path.write_text(f'[providers.openai]\nbase_url = "{batch_host.url}"\n\n[retry]\nmax_retries = 0\n', "utf-8")
    return path


@pytest.fixture
def batch_file(tmp_path: Path) -> Path:
    path = tmp_path / "requests.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in BATCH_REQUESTS), "utf-8")
    return path


BATCH_ID = "openai:batch_6f1b2c3d4e5f"


def _batch_price(usage: dict[str, int], batch: bool, provider: str = "openai",
                 model: str = "gpt-4o-mini-2024-07-18") -> Decimal:
    """An answer's usage x the table's token prices for ``model``, at the batch price or the synchronous one."""
    from computekit.pricing import BATCH_CONTEXT

    ref = adapter_class(provider)(ProviderSettings(provider, "", None, 30)).price_ref(model)
    found = PriceBook().rates(PriceRef(ref.provider, ref.model, ref.table_provider,
                                       context=(BATCH_CONTEXT,) if batch else ()))
    assert found is not None
    output = usage.get("output_tokens", 0) * found.prices["output_mtok"] if usage.get("output_tokens") else 0
    return (usage["input_tokens"] * found.prices["input_mtok"] + output) / Decimal(1_000_000)


def _summary_shows(stdout: str, batch_cost: Decimal, sync: Decimal) -> None:
    """The results summary's money cells: the batch cost, the synchronous price and what was saved."""
    for label, value in (("batch cost", batch_cost), ("synchronous price", sync), ("saved", sync - batch_cost)):
        cell = re.search(rf"{label}\s+│?\s*\$(\S+)", stdout)
        assert cell is not None, stdout
        assert Decimal(cell.group(1)) == value


def _read_results(ref: str, config: Path, out: Path) -> tuple[Any, list[dict[str, Any]]]:
    """``computekit batch results REF --out OUT``: its outcome (exit 0 checked) and the JSON lines it wrote."""
    results = _invoke("batch", "results", ref, "--out", str(out), "-c", str(config))
    assert results.exit_code == 0, results.output
    return results, [json.loads(line) for line in out.read_text("utf-8").splitlines()]


def _batch_rows(tmp_path: Path) -> list[Any]:
    """The ``batch`` rows of the ledger the CLI wrote (conftest points it at ``tmp_path``)."""
    from computekit.ledger import open_ledger

    ledger = open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        return [r for r in ledger.rows() if r.verb == "batch"]
    finally:
        ledger.close()


def _no_key(*results: Any) -> None:
    for result in results:
        assert KEY not in result.output
        assert KEY not in (result.stderr or "")


def test_help_lists_the_batch_commands() -> None:
    result = _invoke("batch", "--help")
    assert result.exit_code == 0
    for cmd in ("submit", "status", "wait", "results", "cancel"):
        assert cmd in result.output


def test_batch_estimate_only_prints_the_estimate_and_sends_nothing(batch_config: Path, batch_host: BatchHost,
                                                                  batch_file: Path) -> None:
    import computekit as ck

    result = _invoke("batch", "submit", str(batch_file), "--model", "openai:gpt-4o-mini", "--estimate-only",
                     "-c", str(batch_config))
    assert result.exit_code == 0, result.output
    assert batch_host.seen == []
    client = ck.Client(config=batch_config)
    try:
        estimate = client.batch("openai:gpt-4o-mini", batch_file, estimate_only=True).estimate
    finally:
        client.close()
    assert estimate is not None
    assert estimate.total is not None
    assert f"cost: {_money(estimate.total)} USD (estimated)" in result.stdout
    assert "3 complete() requests checked" in result.stdout
    assert "batch input (3 requests" in result.stdout
    assert "nothing uploaded or submitted" in result.stdout
    data = json.loads(_invoke("batch", "submit", str(batch_file), "-m", "openai:gpt-4o-mini", "--estimate-only",
                              "--json", "-c", str(batch_config)).stdout)
    assert (data["id"], data["estimate_only"], Decimal(data["estimate"]["total"])) == (None, True, estimate.total)
    assert batch_host.seen == []


def test_batch_estimate_only_needs_no_key(batch_config: Path, batch_file: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    result = _invoke("batch", "submit", str(batch_file), "--model", "openai:gpt-4o-mini", "--estimate-only",
                     "-c", str(batch_config))
    assert result.exit_code == 0, result.output
    assert "estimate only: nothing uploaded or submitted" in result.stdout
    submit = runner.invoke(app, ["batch", "submit", str(batch_file), "-m", "openai:gpt-4o-mini",
                                 "-c", str(batch_config)])
    assert submit.exit_code != 0  # submitting is what needs the key
    assert "OPENAI_API_KEY" in submit.stderr


def test_batch_submit_status_wait_results_report_what_was_saved(batch_config: Path, batch_host: BatchHost,
                                                               batch_file: Path, tmp_path: Path) -> None:
    submit = _invoke("batch", "submit", str(batch_file), "--model", "openai:gpt-4o-mini", "--tag", "project=demo",
                     "-c", str(batch_config))
    assert submit.exit_code == 0, submit.output
    assert batch_host.paths() == ["POST /files", "POST /batches"]
    assert json.loads(batch_host.seen[1][2])["metadata"] == {"project": "demo"}
    assert f"submitted {BATCH_ID}  validating" in submit.stdout
    assert f"computekit batch wait {BATCH_ID}" in submit.stdout
    assert "(estimated)" in submit.stdout
    assert "3 complete() requests checked" in submit.stdout

    get = ("GET", "/batches/batch_6f1b2c3d4e5f")
    done = batch_host.routes[get][0]
    batch_host.on(*get, _batch_state("in_progress", 1))
    status = _invoke("batch", "status", BATCH_ID, "-c", str(batch_config))
    assert status.exit_code == 0, status.output
    assert re.search(r"status\s+in_progress", status.stdout)
    assert re.search(r"model\s+openai:gpt-4o-mini-2024-07-18", status.stdout)  # as the batch object names it
    assert re.search(r"requests\s+3: 1 completed, 0 failed", status.stdout)
    early = runner.invoke(app, ["batch", "results", BATCH_ID, "-c", str(batch_config)])
    assert early.exit_code == 2
    assert "still in_progress" in early.stderr
    assert f"computekit batch wait {BATCH_ID}" in early.stderr

    batch_host.on(*get, _batch_state("in_progress", 1), _batch_state("finalizing", 2, 1), done)
    batch_host.seen.clear()
    waited = _invoke("batch", "wait", BATCH_ID, "--poll-interval", "0", "-c", str(batch_config))
    assert waited.exit_code == 0, waited.output
    assert batch_host.paths() == ["GET /batches/batch_6f1b2c3d4e5f"] * 3  # attach, then two polls
    assert re.search(r"status\s+completed", waited.stdout)
    assert re.search(r"requests\s+3: 2 completed, 1 failed", waited.stdout)

    out = tmp_path / "answers.jsonl"
    results, lines = _read_results(BATCH_ID, batch_config, out)
    assert [line["custom_id"] for line in lines] == ["q1", "q2", "q3"]
    assert [line.get("text") for line in lines] == ["This is a test.", "7", None]
    assert lines[2]["error"]["status"] == 400
    assert "string too long" in lines[2]["error"]["message"]
    assert lines[2]["cost"] == "0"  # refused before it ran: not billed, and said so
    costs = [_batch_price(line["usage"], True) for line in lines[:2]]
    assert [Decimal(line["cost"]) for line in lines[:2]] == costs
    batch_cost, sync = sum(costs), sum(_batch_price(line["usage"], False) for line in lines[:2])
    assert sync > batch_cost
    assert f"wrote 3 results to {out}" in results.stdout
    assert f"{BATCH_ID} (openai:gpt-4o-mini-2024-07-18): 2 answered, 1 failed" in results.stdout
    _summary_shows(results.stdout, batch_cost, sync)
    assert "E-" not in results.stdout
    assert not out.with_name("answers.jsonl.partial").exists()

    again = _invoke("batch", "results", BATCH_ID, "-c", str(batch_config))  # JSONL on stdout, summary on stderr
    assert again.exit_code == 0, again.output
    assert [json.loads(line) for line in again.stdout.splitlines()] == lines
    assert "synchronous price" in again.stderr
    rows = _batch_rows(tmp_path)
    assert sorted(r.tags["custom_id"] for r in rows) == ["q1", "q2", "q3"]  # read twice, recorded once
    assert sum(r.cost for r in rows if r.cost is not None) == batch_cost
    assert {r.tags["batch_id"] for r in rows} == {"batch_6f1b2c3d4e5f"}
    _no_key(submit, status, early, waited, results, again)


def test_batch_results_in_a_later_command_settle_the_budget_the_submit_reserved(batch_config: Path,
                                                                                batch_file: Path) -> None:
    """``submit`` reserves the batch's estimate under a budget; ``results``, a later process, settles it: the
    budget then shows the items' cost spent and nothing reserved (not the batch counted twice until a TTL)."""
    with batch_config.open("a", encoding="utf-8") as f:
        f.write('\n[budget]\nlimit_usd = "5"\nperiod = "total"\n')

    def status() -> tuple[Decimal, Decimal]:
        shown = _invoke("budgets", "--json", "-c", str(batch_config))
        assert shown.exit_code == 0, shown.output
        data = json.loads(shown.stdout)["default"]
        return Decimal(data["spent"]), Decimal(data["reserved"])

    submit = _invoke("batch", "submit", str(batch_file), "-m", "openai:gpt-4o-mini", "--json", "-c", str(batch_config))
    assert submit.exit_code == 0, submit.output
    estimate = Decimal(json.loads(submit.stdout)["estimate"]["total"])
    assert estimate > 0
    assert status() == (0, estimate)
    results = _invoke("batch", "results", BATCH_ID, "-c", str(batch_config))
    assert results.exit_code == 0, results.output
    lines = [json.loads(line) for line in results.stdout.splitlines()]
    assert status() == (sum(_batch_price(line["usage"], True) for line in lines[:2]), 0)


def test_batch_cancel(batch_config: Path, batch_host: BatchHost) -> None:
    batch_host.on("GET", "/batches/batch_6f1b2c3d4e5f", _batch_state("in_progress", 1))
    batch_host.on("POST", "/batches/batch_6f1b2c3d4e5f/cancel", _batch_state("cancelling", 1))
    result = _invoke("batch", "cancel", BATCH_ID, "-c", str(batch_config))
    assert result.exit_code == 0, result.output
    assert batch_host.paths()[-1] == "POST /batches/batch_6f1b2c3d4e5f/cancel"
    assert re.search(r"status\s+canceling \(cancelling\)", result.stdout)
    data = json.loads(_invoke("batch", "status", BATCH_ID, "--json", "-c", str(batch_config)).stdout)
    assert (data["id"], data["provider"], data["status"], data["completed"]) == ("batch_6f1b2c3d4e5f", "openai",
                                                                               "in_progress", 1)
    assert data["cost"]["total"] is None  # unknown until the results are read, never 0


def test_batch_wait_timeout_and_failure_are_one_line_exit_2(batch_config: Path, batch_host: BatchHost) -> None:
    get = ("GET", "/batches/batch_6f1b2c3d4e5f")
    batch_host.on(*get, _batch_state("in_progress"))
    late = runner.invoke(app, ["batch", "wait", BATCH_ID, "--timeout", "0", "-c", str(batch_config)])
    assert late.exit_code == 2
    assert "BatchTimeoutError" in late.stderr
    assert "still running" in late.stderr
    batch_host.on(*get, _batch_state("failed", errors={"object": "list", "data": [
        {"code": "invalid_json_line", "line": 2, "message": "This line is not parseable as valid JSON."}]}))
    failed = runner.invoke(app, ["batch", "wait", BATCH_ID, "--poll-interval", "0", "-c", str(batch_config)])
    assert failed.exit_code == 2
    assert "BatchFailedError" in failed.stderr
    assert "invalid_json_line" in failed.stderr
    _no_key(late, failed)


@pytest.mark.parametrize(("lines", "model", "needles"), [
    (None, "openai:gpt-4o-mini", ["InvalidRequestError", "no such file"]),
    ([BATCH_REQUESTS[0], "not json", {"custom_id": "q3"}, {"custom_id": "q4", "messages": [], "temperatur": 1}],
     "openai:gpt-4o-mini", ["InvalidRequestError", "nothing uploaded", "line 2: not valid JSON", "line 3:",
                            "line 4: unknown complete() option(s): temperatur"]),
    (BATCH_REQUESTS, "nosuch:model", ["ConfigError", "unknown provider 'nosuch'"]),
    (BATCH_REQUESTS, "cohere:command-r", ["UnsupportedCapabilityError", "batch"]),
    (BATCH_REQUESTS, "groq:llama-3.1-8b-instant", ["UnsupportedCapabilityError", "batch"]),
])
def test_batch_submit_refuses_bad_input_before_any_http(batch_config: Path, batch_host: BatchHost,
                                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        lines: list[Any] | None, model: str,
                                                        needles: list[str]) -> None:
    monkeypatch.setenv("COHERE_API_KEY", KEY)
    monkeypatch.setenv("GROQ_API_KEY", KEY)
    path = tmp_path / "in.jsonl"
    if lines is not None:
        path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines), "utf-8")
    result = runner.invoke(app, ["batch", "submit", str(path), "--model", model, "-c", str(batch_config)])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error:")
    for needle in needles:
        assert needle in result.stderr, result.stderr
    assert batch_host.seen == []
    _no_key(result)


@pytest.mark.parametrize(("args", "needle"), [
    (["status", "nocolon"], "provider:"),
    (["status", "cohere:b1"], "UnsupportedCapabilityError"),
    (["submit", "x.jsonl", "-m", "openai:gpt-4o-mini", "--tag", "novalue"], "--tag key=value"),
    (["submit", "x.jsonl"], "--model"),
    (["results", BATCH_ID, "--out", "no/such/folder/out.jsonl"], "no such folder"),
])
def test_batch_bad_arguments_exit_2(batch_config: Path, batch_host: BatchHost, monkeypatch: pytest.MonkeyPatch,
                                    args: list[str], needle: str) -> None:
    monkeypatch.setenv("COHERE_API_KEY", KEY)
    result = runner.invoke(app, ["batch", *args, "-c", str(batch_config)])
    assert result.exit_code == 2, result.output
    assert needle in result.output
    assert batch_host.seen == []


def test_batch_wait_draws_its_progress_on_a_terminal(batch_config: Path, batch_host: BatchHost,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    from computekit import _batch_client

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(_batch_client, "sys", types.SimpleNamespace(stderr=terminal))
    get = ("GET", "/batches/batch_6f1b2c3d4e5f")
    batch_host.on(*get, _batch_state("in_progress", 1), _batch_state("finalizing", 2, 1), batch_host.routes[get][0])
    result = _invoke("batch", "wait", BATCH_ID, "--poll-interval", "0", "-c", str(batch_config))
    assert result.exit_code == 0, result.output
    drawn = terminal.getvalue()
    assert "\ropenai:gpt-4o-mini-2024-07-18 batch_6f1b2c3d4e5f: finalizing, 2/3 completed, 1 failed" in drawn
    assert "completed, 2/3 completed, 1 failed" in drawn
    assert drawn.endswith("\n")


# Anthropic's Message Batches through the CLI: the authored, spec-validated exchanges of
# cassettes/test_batch_client/anthropic_batch.yaml (requests inline in the create, results as JSONL).
ANTHROPIC_CASSETTE = BATCH_CASSETTE.with_name("anthropic_batch.yaml")


def test_batch_round_trip_on_anthropic(tmp_path: Path, batch_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    inters = _cassette(ANTHROPIC_CASSETTE)
    batch_id = json.loads(inters[0]["response"]["body"]["string"])["id"]
    ref = f"anthropic:{batch_id}"
    with _batch_server(ANTHROPIC_CASSETTE, "https://api.anthropic.com/v1") as host:
        config = tmp_path / "anthropic.toml"
        config.write_text(f'[providers.anthropic]\nbase_url = "{host.url}"\n\n[retry]\nmax_retries = 0\n', "utf-8")
        submit = _invoke("batch", "submit", str(batch_file), "-m", "anthropic:claude-haiku-4-5", "-c", str(config))
        assert submit.exit_code == 0, submit.output
        assert host.paths() == ["POST /messages/batches"]
        assert json.loads(host.seen[0][2]) == json.loads(inters[0]["request"]["body"])  # the requests, inline
        assert f"submitted {ref}" in submit.stdout

        status = _invoke("batch", "status", ref, "-c", str(config))
        assert status.exit_code == 0, status.output
        assert re.search(r"status\s+completed \(ended\)", status.stdout)
        # Anthropic's batch object names no model: said so, not left blank
        assert re.search(r"model\s+anthropic: unknown until results are read", status.stdout)

        out = tmp_path / "answers.jsonl"
        results, lines = _read_results(ref, config, out)
    named = "claude-haiku-4-5-20251001"  # the answers' model, as the cassette's result lines name it
    assert [(line["custom_id"], line.get("text"), line.get("model")) for line in lines] == [
        ("q1", "This is a test.", named), ("q2", "7", named), ("q3", None, None)]
    assert lines[2]["error"]["type"] == "BadRequestError"
    assert lines[2]["cost"] == "0"  # errored: Anthropic bills only succeeded requests
    costs = [_batch_price(line["usage"], True, "anthropic", named) for line in lines[:2]]
    assert [Decimal(line["cost"]) for line in lines[:2]] == costs
    sync = sum(_batch_price(line["usage"], False, "anthropic", named) for line in lines[:2])
    assert f"{ref} (anthropic:{named}): 2 answered, 1 failed" in results.stdout
    _summary_shows(results.stdout, sum(costs), sync)
    rows = {r.tags["custom_id"]: r for r in _batch_rows(tmp_path)}
    assert {cid: (r.provider, r.model) for cid, r in rows.items()} == {
        cid: ("anthropic", named) for cid in ("q1", "q2", "q3")}
    assert sum(r.cost for r in rows.values() if r.cost is not None) == sum(costs)
    _no_key(submit, status, results)


# An embeddings batch on OpenAI's wire, authored here from the spec (Batch, CreateEmbeddingResponse; validated
# below): the file upload is the chat cassette's, the batch names /v1/embeddings.
EMBED_ID = "batch_69e2a41c7d3b8f05"
EMBED_MODEL = "text-embedding-3-small"
EMBED_REQUESTS = [{"custom_id": "e1", "input": "solar lantern"}, {"custom_id": "e2", "input": ["tent", "stove"]}]


def _embed_batch(status: str, **extra: Any) -> dict[str, Any]:
    done = status == "completed"
    batch = {"id": EMBED_ID, "object": "batch", "endpoint": "/v1/embeddings",
            "input_file_id": "file-emb-in", "completion_window": "24h", "status": status,
            "output_file_id": "file-emb-out" if done else None, "error_file_id": None,
            "created_at": 1_764_236_401, "completed_at": 1_764_237_001 if done else None,
            "request_counts": {"total": 2 if done else 0, "completed": 2 if done else 0, "failed": 0}, **extra}
    return {k: v for k, v in batch.items() if v is not None}  # absent, not null, where the spec has no null


def _embedding_answer(inputs: int, tokens: int) -> dict[str, Any]:
    return {"object": "list", "model": EMBED_MODEL,
            "data": [{"object": "embedding", "index": i, "embedding": [0.25 * (i + 1), -0.5]} for i in range(inputs)],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


EMBED_ANSWERS = {"e1": _embedding_answer(1, 2), "e2": _embedding_answer(2, 2)}


def test_the_embeddings_batch_exchanges_validate_against_the_spec() -> None:
    from test_cassette_specs import errors, load_spec

    spec = load_spec()
    problems = errors(spec, "Batch", _embed_batch("validating")) + errors(spec, "Batch", _embed_batch("completed"))
    for answer in EMBED_ANSWERS.values():
        problems += errors(spec, "CreateEmbeddingResponse", answer)
    assert problems == []
    assert errors(spec, "CreateEmbeddingResponse", {"object": "list"})  # not vacuous


def test_batch_round_trip_of_embeddings(batch_config: Path, batch_host: BatchHost, tmp_path: Path) -> None:
    path = tmp_path / "embed.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in EMBED_REQUESTS), "utf-8")
    lines = "".join(json.dumps({"id": f"batch_req_{cid}", "custom_id": cid, "error": None, "response": {
        "status_code": 200, "request_id": f"req_{cid}", "body": body}}) + "\n" for cid, body in EMBED_ANSWERS.items())
    batch_host.on("POST", "/batches", Reply(200, json.dumps(_embed_batch("validating")).encode()))
    batch_host.on("GET", f"/batches/{EMBED_ID}", Reply(200, json.dumps(_embed_batch("completed")).encode()))
    batch_host.on("GET", "/files/file-emb-out/content", Reply(200, lines.encode(),
                                                             {"content-type": "application/octet-stream"}))
    submit = _invoke("batch", "submit", str(path), "-m", f"openai:{EMBED_MODEL}", "-c", str(batch_config))
    assert submit.exit_code == 0, submit.output
    assert "2 embed() requests checked" in submit.stdout
    upload = batch_host.seen[0][2].decode()  # multipart: the JSONL file's lines among the form's
    sent = [json.loads(line) for line in upload.splitlines() if line.startswith('{"custom_id"')]
    assert [(x["url"], x["body"]["input"]) for x in sent] == [("/v1/embeddings", ["solar lantern"]),
                                                              ("/v1/embeddings", ["tent", "stove"])]
    assert json.loads(batch_host.seen[1][2])["endpoint"] == "/v1/embeddings"
    out = tmp_path / "vectors.jsonl"
    results, got = _read_results(f"openai:{EMBED_ID}", batch_config, out)
    assert [(g["custom_id"], len(g["embeddings"])) for g in got] == [("e1", 1), ("e2", 2)]
    assert got[1]["embeddings"][1] == EMBED_ANSWERS["e2"]["data"][1]["embedding"]
    costs = [_batch_price(g["usage"], True, "openai", EMBED_MODEL) for g in got]
    assert [Decimal(g["cost"]) for g in got] == costs
    assert all(c > 0 for c in costs)
    sync = sum(_batch_price(g["usage"], False, "openai", EMBED_MODEL) for g in got)
    _summary_shows(results.stdout, sum(costs), sync)
    rows = _batch_rows(tmp_path)
    assert sorted((r.tags["custom_id"], r.input_tokens) for r in rows) == [("e1", 2), ("e2", 2)]
    _no_key(submit, results)


def test_report_refuses_a_period_that_ends_before_it_starts(recorded: list[Any]) -> None:
    result = _invoke("report", "--since", "2026-03-04", "--until", "2026-03-01")
    assert result.exit_code == 2
    assert "--since 2026-03-04 is after --until 2026-03-01: swap them" in result.output
    same_day = _invoke("report", "--since", "2026-03-02", "--until", "2026-03-02", "--format", "csv")
    assert same_day.exit_code == 0, same_day.output  # --until's day is included: one day
    assert [r["calls"] for r in csv.DictReader(io.StringIO(same_day.stdout))] == ["2", "2"]


def _tiny_hostile_ledger(tmp_path: Path) -> str:
    import datetime as dt

    from computekit.ledger import LedgerRow, open_ledger

    url = f"sqlite:///{tmp_path / 'hostile.db'}"
    lg = open_ledger(url)
    lg.record(LedgerRow(ts=dt.datetime.now(dt.UTC), verb="complete", provider="openai",
                        model="m\x1b]0;retitled\x07\x1b[2J", outcome="success", latency_ms=1.0,
                        cost=Decimal("0.0000001"), tags={"customer": "\x1b[31mred\x9b"}))
    lg.close()
    return url


def test_report_shows_control_characters_instead_of_sending_them(tmp_path: Path) -> None:
    url = _tiny_hostile_ledger(tmp_path)
    for args in (["--by", "tag:customer"], ["--by", "model"], ["--calls"]):
        result = _invoke("report", *args, "--ledger", url)
        assert result.exit_code == 0, result.output
        assert not any(c in result.stdout for c in "\x1b\x07\x9b"), args  # nothing a terminal would run
    calls = _invoke("report", "--calls", "--ledger", url).stdout
    assert "m\\x1b]0;retitled\\x07\\x1b[2J" in calls  # shown, escaped
    assert "customer=\\x1b[31mred\\x9b" in calls


def test_budgets_json_writes_money_in_plain_notation(tmp_path: Path) -> None:
    url = _tiny_hostile_ledger(tmp_path)
    result = _invoke("budgets", "--json", "--ledger", url, "--config", str(_budget_config(tmp_path)))
    assert result.exit_code == 0, result.output
    default = json.loads(result.stdout)["default"]
    assert (default["spent"], default["remaining"]) == ("0.0000001", "1.9999999")  # never 1E-7
