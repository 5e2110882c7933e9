"""Fault catalogue: a server that sends the key back in disguise — written with JSON ``\\u`` escapes, base64
(standard, and URL-safe around a JSON object), and split across the deltas of a stream — while a test records a
cassette. The recording filter must catch every form, and the scan of the written cassette must find nothing;
the scan alone must find each form in an unfiltered cassette.

The key is not key-shaped (no ``sk-`` prefix): only the key the filter noted from the request can catch it.
"""

from __future__ import annotations

import base64
import json
import socket
from pathlib import Path
from typing import Any

import pytest
import vcr
from fault_server import SSE, FaultServer, Reply, Request, Waits, chat_events, close, make_client, read_stream, run
from vcr.persisters.filesystem import FilesystemPersister
from vcr.serializers import yamlserializer

from computekit.testing._filters import Scrubber, scan, scrubber_in

both = pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
CANARY = "canary-recording-7d3f9a2b1c5e"
CHAT = "openai:gpt-4o-mini"


def escaped(text: str) -> str:
    return "".join(f"\\u{ord(c):04x}" for c in text)


def disguised_body(key: str) -> bytes:
    """A chat completion whose text is the key written with escapes, with two base64 fields that hold it."""
    return ('{"id":"chatcmpl-x","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini",'
            '"choices":[{"index":0,"message":{"role":"assistant","content":"' + escaped(key) + '"},'
            '"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5},'
            '"basic":"' + base64.b64encode(f"user:{key}".encode()).decode() + '",'
            '"payload":"' + base64.urlsafe_b64encode(json.dumps({"key": key}).encode()).decode().rstrip("=") + '"}'
            ).encode()


def echo_disguised(srv: FaultServer, req: Request, sock: socket.socket) -> bool:
    key = (req.auth or "").removeprefix("Bearer ")
    return Reply(200, disguised_body(key), {"content-type": "application/json"})(srv, req, sock)


def echo_split(srv: FaultServer, req: Request, sock: socket.socket) -> bool:
    key = (req.auth or "").removeprefix("Bearer ")
    return SSE(chat_events(["your key: ", key[:6], key[6:13], key[13:21], key[21:], " (end)"]))(srv, req, sock)


def load(cassette: Path) -> tuple[list[Any], list[Any]]:
    requests, responses = FilesystemPersister.load_cassette(str(cassette), serializer=yamlserializer)
    return list(requests), list(responses)


def body_text(response: Any) -> str:
    body = response["body"]["string"]
    return body.decode() if isinstance(body, bytes) else body


@both
async def test_key_in_disguise_is_masked_in_the_recorded_cassette(faults: Any, waits: Waits, is_async: bool,
                                                                 tmp_path: Path, vcr_config: dict[str, Any]) -> None:
    srv = faults([echo_disguised, echo_split])
    cassette = tmp_path / "disguised.yaml"
    client = make_client(is_async, srv.url, waits, api_key=CANARY)
    try:
        with vcr.VCR(**vcr_config).use_cassette(str(cassette), record_mode="all"):
            live = await run(client.complete(CHAT, "hi"))
            _, stream = await read_stream(client, CHAT)
    finally:
        await close(client)
    # The server did disguise the key: the client decoded it back (the test is not vacuous).
    assert live.text == CANARY
    assert CANARY in stream.result.text
    requests, responses = load(cassette)
    whole, split = json.loads(body_text(responses[0])), body_text(responses[1])
    # Each disguise, decoded the way a reader would, no longer holds the key ...
    assert CANARY not in whole["choices"][0]["message"]["content"]
    assert CANARY not in base64.b64decode(whole["basic"]).decode()
    assert CANARY not in base64.urlsafe_b64decode(whole["payload"] + "==").decode()
    deltas = "".join(json.loads(line[6:])["choices"][0]["delta"].get("content", "")
                     for line in split.splitlines() if line.startswith("data: {") and '"content"' in line)
    assert CANARY not in deltas
    assert deltas == "your key: REDACTEDREDACTEDREDACTEDREDACTED (end)"  # each piece of the key, and only those
    # ... the bodies are still what the client parses, and the scan of the written cassette finds nothing.
    assert whole["usage"]["total_tokens"] == 5
    assert scan({"requests": requests, "responses": responses}, scrubber_in(vcr_config)) == []


@pytest.mark.parametrize(("body", "how"), [
    (disguised_body(CANARY), "written with JSON escapes"),
    (('{"basic":"' + base64.b64encode(f"user:{CANARY}".encode()).decode() + '"}').encode(), "base64-encoded"),
    (('{"t":"' + base64.urlsafe_b64encode(json.dumps({"key": CANARY}).encode()).decode() + '"}').encode(),
     "base64-encoded"),
    (b"".join(f"data: {json.dumps({'choices': [{'delta': {'content': part}}]})}\n\n".encode()
              for part in (CANARY[:9], CANARY[9:20], CANARY[20:])), "split across stream events"),
], ids=["escaped", "base64", "urlsafe-base64-of-json", "split-stream"])
def test_scan_finds_the_key_in_each_disguise(body: bytes, how: str) -> None:
    """The last line of defence (a hook of the user's that undid the masking, a recording made without the
    filters): the scan reports each disguise, without the value."""
    sc = Scrubber(secrets=[CANARY])
    findings = [str(f) for f in scan({"responses": [{"headers": {}, "body": {"string": body}}]}, sc)]
    assert findings == [f"response 1 body: a key this test used or an env var holds ({len(CANARY)} chars), {how}"]
    assert sc.mask_stream(sc.mask(body)) != body  # and the filter masks it
    assert scan({"responses": [{"headers": {}, "body": {"string": sc.mask_stream(sc.mask(body))}}]}, sc) == []
