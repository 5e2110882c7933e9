"""Every example in ``examples/`` runs offline by replay (as a user would run it), and prints the right numbers.

Each example runs in a subprocess, ``python examples/_replay.py examples/NAME.py``, from an empty directory (the
replay is applied from outside: the examples are plain programs). What it prints is
checked against its cassette: the text it was sent, and its cost recomputed here from the usage in the cassette and
the price tables (never a copied constant). The cassettes themselves are checked in ``test_example_cassettes.py``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
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
    """``python examples/_replay.py examples/NAME.py ARGS`` in ``cwd``, without any key in its environment;
    returns stdout. Nothing may be written to ``cwd`` but the paths passed in ``args``."""
    env = {k: v for k, v in os.environ.items() if k not in KEY_VARS and k != "COMPUTEKIT_CONFIG"}
    env["PYTHONPATH"] = str(ROOT)
    wrapper, script = str(EXAMPLES / "_replay.py"), str(EXAMPLES / f"{name}.py")
    if prelude is None:
        cmd = [sys.executable, wrapper, script, *args]
    else:  # run the wrapper after some set-up code, as its own __main__
        code = (f"import runpy, sys\n{prelude}\nsys.argv = [{wrapper!r}, {script!r}, *{list(args)!r}]\n"
                f"runpy.run_path({wrapper!r}, run_name='__main__')")
        cmd = [sys.executable, "-c", code]
    before = set(cwd.iterdir())
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout}\n{proc.stderr}"
    written = {p.name for p in set(cwd.iterdir()) - before}
    assert written <= set(args), f"{name} wrote {written - set(args)} into the current folder"
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
    assert {"chat_fallback", "stream_to_terminal", "replicate_image", "fastapi_app", "quickstart", "budget_batch",
            "finetune", "daily_report", "batch"} <= set(names)
    readme = (EXAMPLES / "README.md").read_text("utf-8")
    page = (ROOT / "docs" / "examples.md").read_text("utf-8")
    for name in names:
        assert f"{name}.py" in readme, f"examples/README.md does not list {name}.py"
        assert f"{name}.py" in page, f"docs/examples.md does not list {name}.py"
        assert (CASSETTES / f"{name}.yaml").is_file(), f"{name}.py has no cassette"
        source = (EXAMPLES / f"{name}.py").read_text("utf-8")
        assert "_replay" not in source.split('"""', 2)[2], f"{name}.py imports the replay: apply it from outside"
    assert sorted(p.stem for p in CASSETTES.glob("*.yaml")) == names


# ------------------------------------------------------------------------------------------------ each example


def test_chat_fallback(tmp_path: Path) -> None:
    out = run("chat_fallback", tmp_path)
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
    out = run("stream_to_terminal", tmp_path)
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
    out = run("replicate_image", tmp_path, "--out", "images")  # a folder named by the user
    lookup, create, download = interactions("replicate_image")
    assert "/versions/" in lookup["request"]["uri"]  # the input was checked against the version's schema first
    prediction = json.loads(create["response"]["body"]["string"])
    seconds = Decimal(str(prediction["metrics"]["predict_time"]))
    found = PriceBook().per_second("replicate", "gpu-l40s")
    assert found is not None
    assert printed_cost(out) == seconds * found[0]
    assert f"GPU time: {seconds} s on gpu-l40s" in out
    saved = tmp_path / "images" / "out-0.png"
    assert f"saved {saved}" in out or "saved images/out-0.png" in out
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
    out = run("fastapi_app", tmp_path)
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
    out = run("fastapi_app", tmp_path, prelude=prelude)
    assert "(FastAPI is not installed: calling the handlers directly)" in out
    chat, spend = _fastapi_output(out)
    text, cost = _fastapi_expected()
    assert chat["text"] == text
    assert Decimal(chat["cost_usd"]) == Decimal(spend["total_usd"]) == cost


def test_quickstart(tmp_path: Path) -> None:
    out = run("quickstart", tmp_path)
    assert "(replayed offline from examples/cassettes/quickstart.yaml" in out
    found = re.search(r"^(\d+) in / (\d+) out -> \$(\S+)", out, re.MULTILINE)
    assert found is not None, out
    usage = Usage(input_tokens=int(found.group(1)), output_tokens=int(found.group(2)))
    assert Decimal(found.group(3)) == token_cost("openai", "gpt-4o-mini-2024-07-18", usage)


def openai_usage(inter: dict[str, Any]) -> tuple[dict[str, Any], Usage]:
    body = json.loads(inter["response"]["body"]["string"])
    u = body["usage"]
    return body, Usage(input_tokens=u["prompt_tokens"], output_tokens=u["completion_tokens"])


def anthropic_usage(inter: dict[str, Any]) -> tuple[dict[str, Any], Usage]:
    body = json.loads(inter["response"]["body"]["string"])
    u = body["usage"]
    return body, Usage(input_tokens=u["input_tokens"] + u["cache_creation_input_tokens"] + u["cache_read_input_tokens"],
                       output_tokens=u["output_tokens"])


def test_budget_batch(tmp_path: Path) -> None:
    out = run("budget_batch", tmp_path)
    answered = interactions("budget_batch")  # only the calls the budget let through reach the server
    costs = []
    for inter in answered:
        body, usage = openai_usage(inter)
        costs.append(token_cost("openai", body["model"], usage))
        assert body["choices"][0]["message"]["content"] in out
    lines = re.findall(r"^(\d)\. (answered|refused) +(.*)$", out, re.MULTILINE)
    assert [n for n, _, _ in lines] == [str(i) for i in range(1, 7)]
    assert [what for _, what, _ in lines] == ["answered"] * len(answered) + ["refused"] * (6 - len(answered))
    assert 0 < len(answered) < 6  # the budget affords some of the batch, not all of it
    printed = [Decimal(re.search(r"cost: (\S+) USD", rest).group(1))  # type: ignore[union-attr]
               for _, what, rest in lines if what == "answered"]
    assert printed == costs
    spent = sum(costs, Decimal(0))
    spent_line = re.search(r"^spent: (\S+) USD of (\S+) USD today$", out, re.MULTILINE)
    assert spent_line is not None, out
    limit = Decimal(spent_line.group(2))
    assert Decimal(spent_line.group(1)) == spent <= limit
    # Each refusal: the worst case (200 output tokens at least, from the price table) did not fit what was left.
    output_only = token_cost("openai", "gpt-4o-mini", Usage(input_tokens=0, output_tokens=200))
    refusals = re.findall(r"^\d\. refused +worst case (\S+) USD > remaining (\S+) USD\n"
                          r" +\(spent (\S+) \+ reserved (\S+) of (\S+) USD\)$", out, re.MULTILINE)
    assert len(refusals) == 6 - len(answered), out
    for found in refusals:
        requested, remaining, spent_then, reserved, limit_then = map(Decimal, found)
        assert (spent_then, reserved, limit_then) == (spent, 0, limit)
        assert remaining == limit - spent
        assert requested > remaining
        assert requested > output_only
        assert requested > max(costs)  # the worst case, not what the call would have cost
    assert re.search(rf"^  descriptions +{len(answered)} calls .* {spent} USD$", out, re.MULTILINE), out


def test_batch(tmp_path: Path) -> None:
    from computekit._finetune import _Counter, count_example_tokens
    from computekit.pricing import BATCH_CONTEXT

    out = run("batch", tmp_path, "--out", "answers.jsonl")
    upload, create, *polls, results = interactions("batch")
    assert upload["request"]["uri"].endswith("/v1/files")
    assert create["request"]["uri"].endswith("/v1/batches")
    assert len(polls) == 2  # in progress, then completed
    lines = [json.loads(line) for line in results["response"]["body"]["string"].splitlines()]
    sent = [json.loads(line) for line in upload["request"]["body"].split("\r\n\r\n")[2].splitlines()
            if line.startswith("{")]  # the uploaded file's lines, inside the multipart body
    assert len(sent) == len(lines) == 4
    model = json.loads(polls[-1]["response"]["body"]["string"])["model"]
    table = adapter_class("openai").table_provider
    batch_rates, sync_rates = (PriceBook().rates(PriceRef("openai", model, table, context=c))
                               for c in ((BATCH_CONTEXT,), ()))
    assert batch_rates is not None
    assert sync_rates is not None

    def price(rates: Any, input_tokens: int, output_tokens: int) -> Decimal:
        return (input_tokens * rates.prices["input_mtok"] + output_tokens * rates.prices["output_mtok"]) / 10**6

    # The estimate: each request's input counted with the model's tokenizer, its output at its max_tokens.
    count = _Counter("o200k_base")
    est_in = sum(count_example_tokens({"messages": r["body"]["messages"], "tools": None}, count) for r in sent)
    est_out = sum(r["body"]["max_tokens"] for r in sent)
    estimate = re.search(rf"^estimate: (\S+) USD for {len(sent)} requests$", out, re.MULTILINE)
    assert estimate is not None, out
    assert Decimal(estimate.group(1)) == price(batch_rates, est_in, est_out)
    cost = sync = Decimal(0)
    for line in lines:
        body = line["response"]["body"]
        usage = (body["usage"]["prompt_tokens"], body["usage"]["completion_tokens"])
        item = price(batch_rates, *usage)
        printed = re.search(rf"^{line['custom_id']}: (.*)\n  cost: (\S+) USD$", out, re.MULTILINE)
        assert printed is not None, out
        assert printed.group(1) == body["choices"][0]["message"]["content"]
        assert Decimal(printed.group(2)) == item
        cost, sync = cost + item, sync + price(sync_rates, *usage)
    assert sync > cost
    for label, value in (("batch cost:", cost), ("synchronous price:", sync), ("saved:", sync - cost),
                         (f"ledger: {len(lines)} batch items,", cost)):
        found = re.search(rf"^{label} +(\S+) USD$", out, re.MULTILINE)
        assert found is not None, (label, out)
        assert Decimal(found.group(1)) == value, label
    written = [json.loads(line) for line in (tmp_path / "answers.jsonl").read_text("utf-8").splitlines()]
    assert [w["custom_id"] for w in written] == [line["custom_id"] for line in lines]


def test_finetune(tmp_path: Path) -> None:
    from computekit._finetune import _Counter, count_example_tokens

    out = run("finetune", tmp_path)  # the replay does not spend the polls' waits (5 s and up)
    upload, create, *polls, chat = interactions("finetune")
    assert "/v1/files" in upload["request"]["uri"]
    assert create["request"]["uri"].endswith("/v1/fine_tuning/jobs")
    assert len(polls) == 2  # the cassette stays short: running, then succeeded
    done = json.loads(polls[-1]["response"]["body"]["string"])
    assert done["status"] == "succeeded"
    rates = PriceBook().training("openai", done["model"])
    assert rates is not None
    assert rates.per_mtok is not None
    per_token = rates.per_mtok / Decimal(1_000_000)
    rows = [json.loads(line) for line in (EXAMPLES / "data" / "support_tone.jsonl").read_text("utf-8").splitlines()]
    count = _Counter("o200k_base")
    tokens = sum(count_example_tokens(r, count) for r in rows)
    epochs = json.loads(create["request"]["body"])["method"]["supervised"]["hyperparameters"]["n_epochs"]
    estimate = tokens * epochs * per_token
    actual = done["trained_tokens"] * per_token
    assert re.search(rf"^estimate: {estimate} USD ", out, re.MULTILINE), out
    assert f"trained tokens: {done['trained_tokens']}" in out
    assert f"actual: {actual} USD  vs estimate {estimate} USD" in out
    assert f"succeeded: openai:{done['fine_tuned_model']}" in out
    body, usage = openai_usage(chat)
    assert body["model"] == done["fine_tuned_model"]
    assert json.loads(chat["request"]["body"])["model"] == done["fine_tuned_model"]
    assert body["choices"][0]["message"]["content"] in out
    # The new model is priced at its fine-tuned rates, above the base model's.
    assert printed_cost(out) == token_cost("openai", body["model"], usage) > token_cost("openai", done["model"], usage)


def test_daily_report(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out = run("daily_report", tmp_path, "--plot", "out.png", "--html", "report.html")
    calls = []
    for inter in interactions("daily_report"):
        if "anthropic" in inter["request"]["uri"]:
            body, usage = anthropic_usage(inter)
            calls.append(("anthropic", token_cost("anthropic", body["model"], usage)))
        else:
            body, usage = openai_usage(inter)
            calls.append(("openai", token_cost("openai", body["model"], usage)))
    printed = re.findall(r"^(\w+):\S+ +feature=(\w+) +cost: (\S+) USD$", out, re.MULTILINE)
    assert [(p, Decimal(c)) for p, _, c in printed] == calls
    total = sum((c for _, c in calls), Decimal(0))
    by_day = out.split("spend by day (UTC):\n", 1)[1].split("\n\n", 1)[0]
    now = dt.datetime.now(dt.UTC)
    today = {now.date().isoformat(), (now - dt.timedelta(minutes=5)).date().isoformat()}  # run just before midnight
    day_rows = re.findall(r"^  (\S+)  (\d+) calls  (\S+) USD$", by_day, re.MULTILINE)
    assert len(day_rows) == 1
    assert day_rows[0][0] in today
    assert (int(day_rows[0][1]), Decimal(day_rows[0][2])) == (len(calls), total)
    by_feature = out.split("spend by feature:\n", 1)[1].split("\n\n", 1)[0]
    for feature in {f for _, f, _ in printed}:
        expected = sum((Decimal(c) for _, f, c in printed if f == feature), Decimal(0))
        assert re.search(rf"^  {feature} +2 calls  {expected} USD$", by_feature, re.MULTILINE), by_feature
    assert by_day.count(f"total: {total} USD") == by_feature.count(f"total: {total} USD") == 1
    png = (tmp_path / "out.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(png) > 1000
    html = (tmp_path / "report.html").read_text("utf-8")
    assert "data:image/png;base64," in html
    assert f"total ${total.normalize():f}" in html  # the page writes the same exact total, without trailing zeros


# ------------------------------------------------------------------------------------------------ the replay helper


def test_an_example_run_live_without_keys_says_what_to_set(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in KEY_VARS}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run([sys.executable, str(EXAMPLES / "stream_to_terminal.py")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode != 0
    assert "MissingAPIKeyError: no API key for provider 'openai': set OPENAI_API_KEY" in proc.stderr


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
    gone = tmp_path / "chat_fallback.py"
    gone.write_text("print('the example no longer makes its calls')\n", "utf-8")
    proc = subprocess.run([sys.executable, str(EXAMPLES / "_replay.py"), str(gone)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode != 0
    assert "3 recorded exchange(s) were not played" in proc.stderr


def test_outputs_go_to_a_temporary_folder_by_default(tmp_path: Path) -> None:
    out = run("replicate_image", tmp_path)  # run() checks that nothing lands in the current folder
    saved = Path(re.findall(r"^saved (\S+)$", out, re.MULTILINE)[0])
    assert saved.parent.name.startswith("replicate-image-")
    assert saved.parent.parent == Path(tempfile.gettempdir())


def test_instrument_openai(tmp_path: Path) -> None:
    out = run("instrument_openai", tmp_path, "--replay")
    answer, streamed = interactions("instrument_openai")
    body = json.loads(answer["response"]["body"]["string"])
    assert out.startswith(body["choices"][0]["message"]["content"] + "\n")  # the SDK's answer, untouched
    events = [json.loads(b[len("data: "):]) for b in streamed["response"]["body"]["string"].split("\n\n")
              if b.startswith("data: ") and b != "data: [DONE]"]
    assert "".join(c["delta"].get("content") or "" for e in events for c in e["choices"]) in out
    costs = []
    for usage_json, verb in ((body["usage"], "complete"), (events[-1]["usage"], "stream")):
        usage = Usage(input_tokens=usage_json["prompt_tokens"], output_tokens=usage_json["completion_tokens"])
        cost = token_cost("openai", "gpt-4o-mini", usage)
        assert f"{verb:8} gpt-4o-mini  {usage.input_tokens} in + {usage.output_tokens} out  {cost} USD" in out
        costs.append(cost)
    assert f"customer acme: 2 calls, {sum(costs)} USD" in out
    assert printed_cost(out) == sum(costs)
