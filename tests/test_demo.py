"""``computekit demo``: offline, keyless, from the authored recordings shipped in ``computekit/_demo``.

The whole module runs with the network blocked (pytest-recording), which is itself the proof that the demo
never goes online.
"""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import urllib3
from typer.testing import CliRunner

from computekit import Completion, Embeddings
from computekit._core import Core, normalise_messages
from computekit._demo import load_recordings, replay_client, run_scenario
from computekit.cli import _money, app
from computekit.pricing import PriceBook

runner = CliRunner()

# The unpriced scenario warns when run through the API; that is the point of it, not noise to fail on.
pytestmark = pytest.mark.filterwarnings("ignore::computekit.pricing.UnknownPriceWarning")

KEY_VARS = ("OPENAI_API_KEY", "GROQ_API_KEY", "TOGETHER_API_KEY")


@pytest.fixture(autouse=True)
def _no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in KEY_VARS:
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def recordings() -> dict[str, Any]:
    return load_recordings()


def _scenario(recordings: dict[str, Any], sid: str) -> dict[str, Any]:
    return next(s for s in recordings["scenarios"] if s["id"] == sid)


def _run_all(tmp_path: Path, recordings: dict[str, Any]) -> dict[str, Completion | Embeddings]:
    client, replayer = replay_client(f"sqlite:///{tmp_path / 'api-ledger.db'}", recordings)
    try:
        return {sc["id"]: run_scenario(client, replayer, sc) for sc in recordings["scenarios"]}
    finally:
        client.close()
        replayer.close()


# --------------------------------------------------------------------------------------------- the command


def test_demo_runs_offline_and_says_it_replays(tmp_path: Path, recordings: dict[str, Any]) -> None:
    result = runner.invoke(app, ["demo"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "REPLAYED from recordings shipped with computekit" in out
    assert "replayed" in out
    assert "authored from the providers' API docs, not captured live" in out
    assert "cost: $" in out
    assert "price source: genai-prices" in out
    # The report's total is the exact sum of the priced calls, the unpriced one left out and said so.
    results = _run_all(tmp_path, recordings)
    total = sum((r.cost.total for r in results.values() if r.cost.total is not None), Decimal(0))
    assert total > 0
    assert f"total: {_money(total)} USD + 1 unpriced call not included" in out
    for sc in recordings["scenarios"]:
        assert sc["model"] in out


def test_demo_shows_each_call_kind(recordings: dict[str, Any]) -> None:
    out = runner.invoke(app, ["demo"], catch_exceptions=False).stdout
    assert "tool call: get_weather(" in out  # the tool call
    assert "chunks streamed" in out  # the streamed call
    assert "2 vectors x 8 dimensions" in out  # the embedding
    assert "groq:llama-3.1-8b-instant" in out
    assert "together:meta-llama/" in out
    # The unknown price is "unpriced", never $0.
    unpriced = out.split("together:acme-labs/support-bot-ft-v2", 1)[1].split("/8 replayed", 1)[0]
    assert "unpriced" in unpriced
    assert "cost: $" not in unpriced
    # The 429 and its retry, both shown.
    assert "attempts: 2" in out
    assert "RateLimitError 429" in out
    assert "not billed" in out


def test_demo_needs_no_key_and_reads_no_user_config(tmp_path: Path) -> None:
    # A broken computekit.toml in the working directory and a configured ledger must both be left alone.
    (tmp_path / "computekit.toml").write_text("this is [not valid toml", "utf-8")
    result = runner.invoke(app, ["demo"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    # conftest points COMPUTEKIT_LEDGER here: the demo must not have written it.
    assert not (tmp_path / "ledger.db").exists()


def test_demo_never_opens_a_real_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"the demo tried the network: {method} {url}")

    monkeypatch.setattr(urllib3.PoolManager, "urlopen", refuse)
    monkeypatch.setattr(urllib3.HTTPConnectionPool, "urlopen", refuse)
    result = runner.invoke(app, ["demo"], catch_exceptions=False)
    assert result.exit_code == 0, result.output


def test_demo_records_into_a_ledger_only_when_asked(tmp_path: Path, recordings: dict[str, Any]) -> None:
    db = tmp_path / "mine.db"
    result = runner.invoke(app, ["demo", "--ledger", f"sqlite:///{db}"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT provider, model, outcome, status, cost FROM attempts ORDER BY id").fetchall()
    # One row per attempt: every scenario's exchanges (the 429 included).
    assert len(rows) == sum(len(s["exchanges"]) for s in recordings["scenarios"])
    assert ("openai", "gpt-4o-mini", "error", 429, "0") in rows
    assert any(r[1] == "acme-labs/support-bot-ft-v2" and r[4] is None for r in rows)


# --------------------------------------------------------------------------------------------- the replay API


def test_replayed_costs_are_the_price_books(tmp_path: Path, recordings: dict[str, Any]) -> None:
    results = _run_all(tmp_path, recordings)
    core = Core(None, providers=recordings["providers"], ledger="none")
    book = PriceBook()
    for sid, result in results.items():
        adapter = core.adapter(result.provider)
        expected = book.token_cost(adapter.price_ref(result.model, result), result.usage)
        assert result.cost.total == expected.total, sid
    chat = results["chat"]
    assert chat.usage.input_tokens == 13
    assert chat.usage.output_tokens == 19
    assert results["unpriced"].cost.total is None
    assert results["together"].finish_reason == "stop"  # Together's "eos", normalised


def test_retry_scenario_has_both_attempts(tmp_path: Path, recordings: dict[str, Any]) -> None:
    result = _run_all(tmp_path, recordings)["retry"]
    assert [a.outcome for a in result.attempts] == ["error", "success"]
    assert result.attempts[0].status == 429
    assert result.attempts[0].error_type == "RateLimitError"
    assert result.attempts[0].cost is not None
    assert result.attempts[0].cost.total == 0


def test_stream_scenario_delivers_chunks(tmp_path: Path, recordings: dict[str, Any]) -> None:
    client, replayer = replay_client(f"sqlite:///{tmp_path / 's.db'}", recordings)
    chunks: list[str] = []
    try:
        sc = _scenario(recordings, "stream")
        result = run_scenario(client, replayer, sc, on_chunk=lambda c: chunks.append(c.text))
    finally:
        client.close()
        replayer.close()
    assert isinstance(result, Completion)
    assert len([c for c in chunks if c]) > 1
    assert "".join(chunks) == result.text
    assert result.cost.total is not None
    assert result.cost.total > 0


def test_a_request_the_recording_does_not_expect_fails_loudly(tmp_path: Path, recordings: dict[str, Any]) -> None:
    import computekit as ck

    sc = dict(_scenario(recordings, "chat"))
    sc["model"] = "openai:gpt-4o"  # not what was recorded
    client, replayer = replay_client(f"sqlite:///{tmp_path / 'x.db'}", recordings)
    try:
        with pytest.raises(ck.NotFoundError, match="no recording"):
            run_scenario(client, replayer, sc)
    finally:
        client.close()
        replayer.close()


# --------------------------------------------------------------------------------------------- the recordings


def test_recordings_are_marked_authored(recordings: dict[str, Any]) -> None:
    assert recordings["authored"] is True
    assert "AUTHORED" in recordings["_comment"]
    assert "not captures of live traffic" in recordings["_comment"]
    assert recordings["sources"]
    for conf in recordings["providers"].values():
        assert "placeholder" in conf["api_key"]


def test_recordings_cover_the_promised_calls(recordings: dict[str, Any]) -> None:
    ids = {s["id"] for s in recordings["scenarios"]}
    assert {"chat", "tools", "stream", "embed", "groq", "together", "unpriced", "retry"} <= ids
    statuses = [[ex["response"]["status"] for ex in s["exchanges"]] for s in recordings["scenarios"]]
    assert [429, 200] in statuses


def _check_chat_body(body: dict[str, Any]) -> None:
    assert body["object"] == "chat.completion"
    assert isinstance(body["id"], str)
    assert isinstance(body["created"], int)
    assert isinstance(body["model"], str)
    choice = body["choices"][0]
    assert choice["index"] == 0
    assert choice["message"]["role"] == "assistant"
    assert "finish_reason" in choice
    u = body["usage"]
    assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]


def test_recorded_bodies_are_openai_shaped(recordings: dict[str, Any]) -> None:
    for sc in recordings["scenarios"]:
        for ex in sc["exchanges"]:
            resp = ex["response"]
            if resp["status"] != 200:
                err = resp["json"]["error"]
                assert {"message", "type", "code"} <= set(err)
                continue
            if sc["verb"] == "stream":
                assert resp["sse"][-1] == "[DONE]"
                events = resp["sse"][:-1]
                assert all(e["object"] == "chat.completion.chunk" for e in events)
                assert events[-1]["choices"] == []
                assert events[-1]["usage"]["prompt_tokens"] > 0
            elif sc["verb"] == "embed":
                body = resp["json"]
                assert body["object"] == "list"
                assert body["usage"]["prompt_tokens"] > 0
                dims = sc["args"]["dimensions"]
                assert all(d["object"] == "embedding" and len(d["embedding"]) == dims for d in body["data"])
            else:
                _check_chat_body(resp["json"])


def test_recorded_requests_are_what_computekit_sends_today(recordings: dict[str, Any]) -> None:
    """If an adapter changes what it sends, the recordings must be re-authored (they document the request)."""
    core = Core(None, providers=recordings["providers"], ledger="none")
    for sc in recordings["scenarios"]:
        target = core.targets(sc["model"])[0]
        args = dict(sc["args"])
        if sc["verb"] == "embed":
            inputs = args.pop("inputs")
            http = target.adapter.build_embed(core.embed_request(target, inputs, args))
        else:
            msgs = normalise_messages(args.pop("prompt"), None)
            creq = core.complete_request(target, msgs, args, stream=sc["verb"] == "stream")
            http = target.adapter.build_complete(creq)
        for ex in sc["exchanges"]:
            assert ex["request"] == {"method": http.method, "url": http.url, "json": http.json}, sc["id"]


def test_recordings_ship_inside_the_package() -> None:
    import computekit._demo as demo_pkg

    path = Path(demo_pkg.__file__).parent / "recordings.json"
    assert path.is_file()
    json.loads(path.read_text("utf-8"))
