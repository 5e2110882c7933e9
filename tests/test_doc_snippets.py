"""The Python on the Home, Quickstart and Concepts pages, and in the README, runs as written.

Each page's ```python blocks are run in order, as one script, in a fresh process (so the module-level default
client starts from nothing, as for a reader). A ``computekit.toml`` in its working directory points the providers
the pages use at a loopback server that answers in OpenAI's format, and their key variables hold placeholders: the
code runs unchanged, with no key and no network. A block right after ``<!-- snippet: skip -->`` is not run (none
is today).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from _support import LoopbackHandler, serve

ROOT = Path(__file__).resolve().parent.parent
PAGES = ["index.md", "quickstart.md", "concepts.md", "../README.md"]
# The providers the pages call, served by the loopback server, and their key variables.
PROVIDERS = {"openai": "OPENAI_API_KEY", "groq": "GROQ_API_KEY", "together": "TOGETHER_API_KEY",
             "huggingface": "HF_TOKEN"}
USAGE = {"prompt_tokens": 14, "completion_tokens": 19, "total_tokens": 33}
TEXT = "Silicon rivers hum,\nten thousand cores awaken,\nheat becomes the thought."
SNAPSHOTS = {"gpt-4o-mini": "gpt-4o-mini-2024-07-18"}

_BLOCK = re.compile(r"^(<!-- snippet: skip -->\n)?```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def blocks(page: str) -> list[tuple[int, str]]:
    """``(line number, code)`` of each Python block of ``docs/PAGE`` that is run."""
    text = (ROOT / "docs" / page).read_text("utf-8")
    return [(text[: m.start()].count("\n") + 2, m.group(2)) for m in _BLOCK.finditer(text) if not m.group(1)]


class _OpenAIFormat(LoopbackHandler):
    """Chat completions (streamed or not) and embeddings, in OpenAI's format, for any model."""

    paths: list[str] = []

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.reply(status, body, ctype, x_request_id=f"req_loopback_{len(self.paths)}")

    def do_POST(self) -> None:  # the stdlib's handler name
        req = json.loads(self.rfile.read(int(self.headers["content-length"])))
        type(self).paths.append(self.path)
        model = SNAPSHOTS.get(req["model"], req["model"])
        if self.path.endswith("/embeddings"):
            data = [{"object": "embedding", "index": i, "embedding": [0.1] * 1536} for i, _ in enumerate(req["input"])]
            body = {"object": "list", "data": data, "model": model,
                    "usage": {"prompt_tokens": 4, "total_tokens": 4}}
            self._send(200, json.dumps(body).encode(), "application/json")
            return
        if not self.path.endswith("/chat/completions"):
            self._send(404, b'{"error": {"message": "not found", "type": "invalid_request_error"}}',
                       "application/json")
            return
        base = {"id": "chatcmpl-loopback", "created": 1764115200, "model": model}
        if req.get("stream"):
            events = [{**base, "object": "chat.completion.chunk", "usage": None,
                       "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}]}
                      for word in re.findall(r"\S+\s*", TEXT)]
            events.append({**base, "object": "chat.completion.chunk", "usage": None,
                           "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
            events.append({**base, "object": "chat.completion.chunk", "choices": [], "usage": USAGE})
            sse = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
            self._send(200, sse.encode(), "text/event-stream")
            return
        body = {**base, "object": "chat.completion", "usage": USAGE,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": TEXT},
                             "finish_reason": "stop"}]}
        self._send(200, json.dumps(body).encode(), "application/json")


@pytest.fixture
def loopback() -> Iterator[str]:
    _OpenAIFormat.paths = []
    with serve(_OpenAIFormat) as url:
        yield url


RUNNER = """
import ast, asyncio, json, sys
ns = {"__name__": "__main__"}
for line, code in json.load(open(sys.argv[1])):
    compiled = compile("\\n" * (line - 1) + code, sys.argv[2], "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(compiled, ns)
    if asyncio.iscoroutine(result):  # a block with top-level await / async with
        asyncio.run(result)
"""


@pytest.mark.parametrize("page", PAGES)
def test_page_code_runs(page: str, loopback: str, tmp_path: Path) -> None:
    code = blocks(page)
    assert code, f"docs/{page} has no Python block"
    toml = "\n".join(f'[providers.{name}]\nbase_url = "{loopback}"\n' for name in PROVIDERS)
    (tmp_path / "computekit.toml").write_text(toml)
    (tmp_path / "blocks.json").write_text(json.dumps(code))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPUTEKIT_", "HTTP", "http", "NO_PROXY"))}
    env.update({var: "placeholder-key-for-docs" for var in PROVIDERS.values()})
    env["PYTHONPATH"] = str(ROOT)
    env["COMPUTEKIT_LEDGER"] = f"sqlite:///{tmp_path / 'ledger.db'}"
    proc = subprocess.run([sys.executable, "-c", RUNNER, str(tmp_path / "blocks.json"), f"docs/{page}"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, f"docs/{page}:\n{proc.stdout}\n{proc.stderr[-4000:]}"
    assert _OpenAIFormat.paths, "the page's code made no call"


def test_blocks_are_found_with_their_lines() -> None:
    """The extraction is not vacuous: each page's blocks are found, and their line numbers point at them."""
    for page in PAGES:
        lines = (ROOT / "docs" / page).read_text("utf-8").splitlines()
        found = blocks(page)
        assert found
        for line, code in found:
            assert lines[line - 2] == "```python"
            assert lines[line - 1] == code.splitlines()[0]
