"""Every example in ``examples/`` runs offline by replay (as a user would run it), and prints the right numbers.

Each example runs in a subprocess, ``python examples/NAME.py --replay``, from an empty directory. What it prints is
checked against its cassette: the text it was sent, and its cost recomputed here from the usage in the cassette and
the price tables (never a copied constant). The cassettes themselves are checked in ``test_example_cassettes.py``.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from computekit import Usage
from computekit.adapters import adapter_class
from computekit.pricing import PriceBook, PriceRef

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
CASSETTES = EXAMPLES / "cassettes"
KEY_VARS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "MISTRAL_API_KEY", "REPLICATE_API_TOKEN", "COMPUTEKIT_LIVE")


def example_names() -> list[str]:
    return sorted(p.stem for p in EXAMPLES.glob("*.py") if not p.name.startswith("_"))


def run(name: str, cwd: Path, *args: str, prelude: str | None = None) -> str:
    """``python examples/NAME.py ARGS`` in ``cwd``, without any key in its environment; returns stdout."""
    env = {k: v for k, v in os.environ.items() if k not in KEY_VARS and k != "COMPUTEKIT_CONFIG"}
    env["PYTHONPATH"] = str(ROOT)
    script = str(EXAMPLES / f"{name}.py")
    if prelude is None:
        cmd = [sys.executable, script, *args]
    else:  # run the script after some set-up code, as its own __main__
        code = (f"import runpy, sys\nsys.path.insert(0, {str(EXAMPLES)!r})\n{prelude}\n"
                f"sys.argv = [{script!r}, *{list(args)!r}]\nrunpy.run_path({script!r}, run_name='__main__')")
        cmd = [sys.executable, "-c", code]
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def interactions(name: str) -> list[dict[str, Any]]:
    doc: dict[str, Any] = yaml.safe_load((CASSETTES / f"{name}.yaml").read_text("utf-8"))
    return list(doc["interactions"])


def token_cost(provider: str, model: str, usage: Usage) -> Decimal:
    ref = PriceRef(provider=provider, model=model, table_provider=adapter_class(provider).table_provider)
    total = PriceBook().token_cost(ref, usage).total
    assert total is not None
    assert total > 0
    return total


def printed_cost(out: str) -> Decimal:
    found = re.findall(r"^cost: (\S+) USD", out, re.MULTILINE)
    assert len(found) == 1, out
    return Decimal(found[0])


# ------------------------------------------------------------------------------------------------ the gallery


def test_gallery_lists_every_example() -> None:
    names = example_names()
    assert {"chat_fallback", "stream_to_terminal", "replicate_image", "fastapi_app", "quickstart"} <= set(names)
    readme = (EXAMPLES / "README.md").read_text("utf-8")
    page = (ROOT / "docs" / "examples.md").read_text("utf-8")
    for name in names:
        assert f"{name}.py" in readme, f"examples/README.md does not list {name}.py"
        assert f"{name}.py" in page, f"docs/examples.md does not list {name}.py"
        if name != "quickstart":  # quickstart.py serves its response with httpx.MockTransport, needing no vcrpy
            assert (CASSETTES / f"{name}.yaml").is_file(), f"{name}.py has no cassette"
    assert sorted(p.stem for p in CASSETTES.glob("*.yaml")) == [n for n in names if n != "quickstart"]


# ------------------------------------------------------------------------------------------------ each example


def test_chat_fallback(tmp_path: Path) -> None:
    out = run("chat_fallback", tmp_path, "--replay")
    first, second, third = interactions("chat_fallback")
    assert "answered by mistral:mistral-small-latest" in out
    body = json.loads(third["response"]["body"]["string"])
    assert body["choices"][0]["message"]["content"] in out
    attempts = re.findall(r"^\s+\d\. (\S+)\s+(\w+)\s+(.+?)\s+cost: (\S+) USD$", out, re.MULTILINE)
    assert [(t, o) for t, o, _, _ in attempts] == [
        ("openai:gpt-4o-mini", "error"), ("anthropic:claude-haiku-4-5", "error"),
        ("mistral:mistral-small-latest", "success")]
    assert attempts[0][2] == f"RateLimitError {first['response']['status']['code']}"
    assert attempts[1][2] == f"OverloadedError {second['response']['status']['code']}"
    assert [Decimal(c) for _, _, _, c in attempts[:2]] == [0, 0]  # error responses are not billed
    usage = Usage(input_tokens=body["usage"]["prompt_tokens"], output_tokens=body["usage"]["completion_tokens"])
    expected = token_cost("mistral", body["model"], usage)
    assert printed_cost(out) == expected
    assert Decimal(attempts[2][3]) == expected
    assert f"ledger: 3 attempts, total {expected} USD" in out


def test_stream_to_terminal(tmp_path: Path) -> None:
    out = run("stream_to_terminal", tmp_path, "--replay")
    (inter,) = interactions("stream_to_terminal")
    events = [json.loads(b[len("data: "):]) for b in inter["response"]["body"]["string"].split("\n\n")
              if b.startswith("data: ") and b != "data: [DONE]"]
    text = "".join(c["delta"].get("content") or "" for e in events for c in e["choices"])
    assert out.startswith(text + "\n")
    usage_event = events[-1]["usage"]
    usage = Usage(input_tokens=usage_event["prompt_tokens"], output_tokens=usage_event["completion_tokens"])
    assert f"usage: {usage.input_tokens} input + {usage.output_tokens} output tokens" in out
    assert printed_cost(out) == token_cost("openai", events[-1]["model"], usage)


def test_replicate_image(tmp_path: Path) -> None:
    out = run("replicate_image", tmp_path, "--replay")
    lookup, create, download = interactions("replicate_image")
    assert "/versions/" in lookup["request"]["uri"]  # the input was checked against the version's schema first
    prediction = json.loads(create["response"]["body"]["string"])
    seconds = Decimal(str(prediction["metrics"]["predict_time"]))
    found = PriceBook().per_second("replicate", "gpu-l40s")
    assert found is not None
    assert printed_cost(out) == seconds * found[0]
    assert f"GPU time: {seconds} s on gpu-l40s" in out
    saved = tmp_path / "replicate-output" / "out-0.png"
    assert saved.read_bytes() == download["response"]["body"]["string"]
    assert saved.read_bytes().startswith(b"\x89PNG")


def _fastapi_output(out: str) -> tuple[dict[str, Any], dict[str, Any]]:
    chat = out.split("POST /chat\n", 1)[1].split("GET /spend\n", 1)[0]
    spend = out.split("GET /spend\n", 1)[1].split("\n(", 1)[0]
    return json.loads(chat), json.loads(spend)


def _fastapi_expected() -> tuple[str, Decimal]:
    (inter,) = interactions("fastapi_app")
    message = json.loads(inter["response"]["body"]["string"])
    u = message["usage"]
    usage = Usage(input_tokens=u["input_tokens"] + u["cache_creation_input_tokens"] + u["cache_read_input_tokens"],
                  output_tokens=u["output_tokens"])
    return message["content"][0]["text"], token_cost("anthropic", message["model"], usage)


def test_fastapi_app_through_fastapi(tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    out = run("fastapi_app", tmp_path, "--replay")
    assert "FastAPI is not installed" not in out
    chat, spend = _fastapi_output(out)
    text, cost = _fastapi_expected()
    assert chat["text"] == text
    assert Decimal(chat["cost_usd"]) == cost
    assert chat["attempts"] == [{"target": "anthropic:claude-haiku-4-5", "outcome": "success"}]
    assert Decimal(spend["total_usd"]) == cost
    assert spend["by_target"]["anthropic:claude-haiku-4-5"]["calls"] == 1


def test_fastapi_app_handlers_without_fastapi(tmp_path: Path) -> None:
    """Without FastAPI installed, the same handlers run directly (FastAPI's import is blocked here)."""
    prelude = "sys.modules['fastapi'] = None\nsys.modules['fastapi.testclient'] = None"
    out = run("fastapi_app", tmp_path, "--replay", prelude=prelude)
    assert "(FastAPI is not installed: calling the handlers directly)" in out
    chat, spend = _fastapi_output(out)
    text, cost = _fastapi_expected()
    assert chat["text"] == text
    assert Decimal(chat["cost_usd"]) == Decimal(spend["total_usd"]) == cost


def test_quickstart(tmp_path: Path) -> None:
    out = run("quickstart", tmp_path)
    assert "(offline: authored response, no network)" in out
    found = re.search(r"^(\d+) in / (\d+) out -> \$(\S+)", out, re.MULTILINE)
    assert found is not None, out
    usage = Usage(input_tokens=int(found.group(1)), output_tokens=int(found.group(2)))
    assert Decimal(found.group(3)) == token_cost("openai", "gpt-4o-mini-2024-07-18", usage)


# ------------------------------------------------------------------------------------------------ the replay helper


def test_live_mode_without_keys_says_what_to_set(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in KEY_VARS}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run([sys.executable, str(EXAMPLES / "chat_fallback.py")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode != 0
    assert "set OPENAI_API_KEY, ANTHROPIC_API_KEY, MISTRAL_API_KEY" in proc.stderr
    assert "--replay" in proc.stderr


def test_replay_blocks_the_network_and_restores_it() -> None:
    sys.path.insert(0, str(EXAMPLES))
    try:
        import _replay
    finally:
        sys.path.remove(str(EXAMPLES))
    real = socket.socket.connect
    with _replay._network_blocked():
        with pytest.raises(ConnectionRefusedError, match="blocks the network"):
            socket.getaddrinfo("api.openai.com", 443)
        s = socket.socket()
        try:
            with pytest.raises(ConnectionRefusedError):
                s.connect(("203.0.113.7", 443))  # TEST-NET-3: refused before any packet is sent
        finally:
            s.close()
        assert _replay._is_local("127.0.0.1")
        assert _replay._is_local("::1")
    assert socket.socket.connect is real


def test_replay_fails_when_a_recorded_exchange_is_not_played(tmp_path: Path) -> None:
    """An example that stops making a call its cassette holds fails instead of passing quietly."""
    env = {k: v for k, v in os.environ.items() if k not in KEY_VARS}
    env["PYTHONPATH"] = str(ROOT)
    code = (f"import sys\nsys.path.insert(0, {str(EXAMPLES)!r})\n"
            "import _replay\n"
            "with _replay.session('chat_fallback', ['OPENAI_API_KEY'], argv=['--replay']):\n"
            "    pass  # the example's call is gone\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode != 0
    assert "3 recorded exchange(s) were not played" in proc.stderr
