"""The pytest plugin, run as a user's suite would run it (pytester, in a subprocess, with ``-p``): record once
against a loopback server playing the provider, replay with the network blocked and the server gone (same text,
usage and cost, on every transport), refuse a cassette that still holds a secret, print the cost summary, and
stay silent for a suite that does not use it."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

PLUGIN = ("-p", "computekit.testing._plugin", "-p", "no:randomly", "-p", "no:cacheprovider")
CANARY = "sk-live-canary-0123456789abcdefXYZ"  # the "real" key of the recording run
ORG = "org-canary-0123456789"
INI = """
[pytest]
asyncio_default_fixture_loop_scope = function
computekit_cassette_dir = recorded
"""

PROVIDER = '''
import asyncio, json, os, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

import computekit as ck

PORT = int(os.environ["CK_PORT"])
LIVE = os.environ.get("CK_LIVE") == "1"
KEY = os.environ.get("OPENAI_API_KEY") or "sk-placeholder-for-replay-0000"
EXTRA_HEADER = os.environ.get("CK_EXTRA_HEADER", "")


class Provider(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        sent = json.loads(self.rfile.read(int(self.headers["content-length"])))
        key = self.headers["authorization"].split()[-1]
        usage = {"prompt_tokens": 1200, "completion_tokens": 340, "total_tokens": 1540}
        if sent.get("stream"):
            events = [
                {"id": "c1", "model": "gpt-4o-mini", "choices": [{"index": 0, "delta": {"content": "stre"}}]},
                {"id": "c1", "model": "gpt-4o-mini", "choices": [{"index": 0, "delta": {"content": "amed"},
                                                                   "finish_reason": "stop"}]},
                {"id": "c1", "model": "gpt-4o-mini", "choices": [], "usage": usage},
            ]
            body = "".join(f"data: {json.dumps(e)}\\n\\n" for e in events).encode() + b"data: [DONE]\\n\\n"
            ctype = "text/event-stream"
        else:
            body = json.dumps({
                "id": "c1", "object": "chat.completion", "model": "gpt-4o-mini",
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": f"recorded live (you sent {key})"}}],
                "usage": usage,
                "output": "https://replicate.delivery/xezq/a/out.png?signature=f00dfeedbeef1234",
            }).encode()
            ctype = "application/json"
        self.send_response(200)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(body)))
        self.send_header("set-cookie", f"session={key}")
        self.send_header("openai-organization", os.environ["CK_ORG"])
        self.send_header("x-echo-key", key)
        if EXTRA_HEADER:
            name, _, value = EXTRA_HEADER.partition(":")
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module", autouse=True)
def provider():
    if not LIVE:  # replaying: no server at all (a call that reached the network would fail)
        yield
        return
    server = ThreadingHTTPServer(("127.0.0.1", PORT), Provider)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield
    server.shutdown()
    server.server_close()


def settings():
    return {"config": None, "ledger": "none", "retry": {"max_retries": 0},
            "providers": {"openai": {"base_url": f"http://127.0.0.1:{PORT}/v1", "api_key": KEY,
                                     "organization": os.environ["CK_ORG"]}}}


def save(name, r):
    with open(os.environ["CK_OUT"], "a") as f:
        f.write(json.dumps({"name": name, "text": r.text, "usage": r.usage.model_dump(mode="json"),
                            "cost": str(r.cost.total)}) + "\\n")
'''

APP_TESTS = PROVIDER + '''

@pytest.mark.computekit_cassette
def test_sync_urllib3(computekit_spend):
    with ck.Client(**settings()) as c:
        r = c.complete("openai:gpt-4o-mini", "hi")
    save("sync", r)
    computekit_spend.assert_cost(max_usd="0.01", min_usd="0.0001")


@pytest.mark.computekit_cassette
def test_async_aiohttp():
    async def run():
        async with ck.AsyncClient(**settings()) as c:
            return await c.complete("openai:gpt-4o-mini", "hi")

    save("async", asyncio.run(run()))


@pytest.mark.computekit_cassette
def test_sync_httpx():
    with ck.Client(http_client=httpx.Client(), **settings()) as c:
        save("httpx", c.complete("openai:gpt-4o-mini", "hi"))


def test_async_httpx_stream(computekit_cassette):
    async def run():
        async with ck.AsyncClient(http_client=httpx.AsyncClient(), **settings()) as c:
            async with c.stream("openai:gpt-4o-mini", "hi") as s:
                [chunk async for chunk in s]
            return s.result

    save("stream", asyncio.run(run()))
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _outputs(path: Path) -> dict[str, dict[str, object]]:
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return {line["name"]: line for line in lines}


@pytest.fixture
def app(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    pytester.makeini(INI)
    monkeypatch.setenv("CK_PORT", str(_free_port()))
    monkeypatch.setenv("CK_ORG", ORG)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    return pytester


def test_records_once_then_replays_offline_with_the_same_usage_and_cost(
    app: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    app.makepyfile(test_app=APP_TESTS)
    monkeypatch.setenv("CK_OUT", str(app.path / "live.jsonl"))
    monkeypatch.setenv("CK_LIVE", "1")
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)
    live = app.runpytest_subprocess(*PLUGIN, "--record-mode=once", "--block-network")
    live.assert_outcomes(passed=4)
    assert "computekit spend" in live.stdout.str()
    assert "recorded live" in live.stdout.str()

    folder = app.path / "recorded" / "test_app"  # computekit_cassette_dir / test module
    cassettes = sorted(p.name for p in folder.glob("*.yaml"))
    assert cassettes == ["test_async_aiohttp.yaml", "test_async_httpx_stream.yaml", "test_sync_httpx.yaml",
                         "test_sync_urllib3.yaml"]
    for path in folder.glob("*.yaml"):
        text = path.read_text()
        for secret in (CANARY, ORG, "set-cookie", "authorization"):
            assert secret.lower() not in text.lower(), (path.name, secret)
        assert "1200" in text, path.name  # the recorded usage is there
    sync_text = (folder / "test_sync_urllib3.yaml").read_text()
    assert "signature=REDACTED" in sync_text
    assert "f00dfeedbeef1234" not in sync_text

    # Replay: no server, the real key gone, the network blocked.
    monkeypatch.setenv("CK_OUT", str(app.path / "replay.jsonl"))
    monkeypatch.setenv("CK_LIVE", "0")
    monkeypatch.delenv("OPENAI_API_KEY")
    replay = app.runpytest_subprocess(*PLUGIN, "--record-mode=none", "--block-network")
    replay.assert_outcomes(passed=4)
    assert "recorded live" not in replay.stdout.str()

    recorded, replayed = _outputs(app.path / "live.jsonl"), _outputs(app.path / "replay.jsonl")
    assert set(recorded) == {"sync", "async", "httpx", "stream"}
    for name in recorded:
        r, p = recorded[name], replayed[name]
        assert (p["usage"], p["cost"]) == (r["usage"], r["cost"]), name
        assert p["cost"] not in ("None", "0"), name
    assert replayed["sync"]["text"] == "recorded live (you sent REDACTED)"  # the key never reached the cassette
    assert replayed["stream"]["text"] == "streamed"


def test_a_cassette_still_holding_a_secret_is_not_written(app: pytest.Pytester,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    token = "sess0123456789abcdefghijKLMN"
    app.makepyfile(test_leak=PROVIDER + '''

@pytest.mark.computekit_cassette
def test_leaky():
    with ck.Client(**settings()) as c:
        c.complete("openai:gpt-4o-mini", "hi")


@pytest.mark.computekit_cassette("named", cassette_dir="elsewhere", filter_headers=["x-session-token"])
def test_filtered():
    with ck.Client(**settings()) as c:
        c.complete("openai:gpt-4o-mini", "hi")
''')
    monkeypatch.setenv("CK_OUT", str(app.path / "out.jsonl"))
    monkeypatch.setenv("CK_LIVE", "1")
    monkeypatch.setenv("CK_EXTRA_HEADER", f"x-session-token:{token}")
    result = app.runpytest_subprocess(*PLUGIN, "--record-mode=once")
    result.assert_outcomes(passed=2, errors=1)  # test_leaky ran, then its cassette was refused at teardown
    out = result.stdout.str()
    assert "LeakedSecretError" in out
    assert "did not write the cassette" in out
    assert "response 1 header 'x-session-token': a header named like a credential" in out
    assert token not in out
    assert not list(app.path.rglob("test_leaky.yaml"))
    named = app.path / "elsewhere" / "test_leak" / "named.yaml"
    assert named.exists()
    assert token not in named.read_text()


FAKE_TESTS = '''
import computekit as ck
from computekit.testing import Reply


def test_cheap(computekit_fake, computekit_spend):
    computekit_fake.prices.update(input_mtok=1, output_mtok=2)
    computekit_fake.script(Reply("ok", usage=(1000, 1000)))
    computekit_fake.client().complete("fake:m", "hi")
    computekit_spend.assert_cost(max_usd="0.01", min_usd="0.003")


def test_pricey(computekit_fake, computekit_spend):
    computekit_fake.prices.update(input_mtok=10, output_mtok=30)
    computekit_fake.script(Reply("ok", usage=(100000, 100000)))
    computekit_fake.client().complete("fake:m", "hi")
    computekit_spend.assert_cost(max_usd="0.01")


def test_not_using_computekit():
    assert True
'''


def test_cost_summary_and_assert_cost(app: pytest.Pytester) -> None:
    app.makepyfile(test_costs=FAKE_TESTS)
    result = app.runpytest_subprocess(*PLUGIN)
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines([
        "*AssertionError: the test spent $4.00000 over 1 call(s): more than $0.01*",
        "*computekit spend*",
        "$4.00000 * 1 call(s)  test_costs.py::test_pricey",
        "$0.003000 * 1 call(s)  test_costs.py::test_cheap",
        "total $4.003000 over 2 call(s) in 2 test(s)",
    ])
    assert "test_not_using_computekit" not in result.stdout.str().split("computekit spend")[1]


def test_inactive_for_a_suite_that_does_not_use_it(app: pytest.Pytester) -> None:
    app.makepyfile(test_plain="def test_plain():\n    assert 1 + 1 == 2\n")
    result = app.runpytest_subprocess(*PLUGIN, "--record-mode=none", "--block-network")
    result.assert_outcomes(passed=1)
    # pytest's own header lists installed plugin distributions ("plugins: computekit-0.1.0, ..."); apart from
    # that line, the plugin prints nothing: no summary, no warnings.
    lines = [line for line in result.stdout.lines if not line.startswith("plugins:")]
    assert not [line for line in lines if "computekit" in line]
