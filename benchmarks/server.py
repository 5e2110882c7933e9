"""A loopback OpenAI-compatible server for the benchmarks: raw asyncio, HTTP/1.1 keep-alive, one fixed answer.

It answers ``POST /v1/chat/completions`` (and any other path: a benchmark only ever asks that one) with the same
realistic ``chat.completion`` body, usage included, as fast as it can parse a request. It is meant to run in its
own process (:func:`start_in_subprocess`) so that it never competes with the client for the GIL.

Run it alone with ``python benchmarks/server.py [--port N]``: it prints ``PORT <n>`` once it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time

__all__ = ["CHAT_COMPLETION", "RESPONSE", "serve", "start_in_subprocess"]

CHAT_COMPLETION: dict[str, object] = {
    "id": "chatcmpl-BENCHc0ffee0000000000000000",
    "object": "chat.completion",
    "created": 1735689600,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Hello! How can I assist you today?",
                "refusal": None,
                "annotations": [],
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 8,
        "completion_tokens": 10,
        "total_tokens": 18,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    },
    "service_tier": "default",
    "system_fingerprint": "fp_b8bc95a0ac",
}

# The same answer as a Responses API ``response`` object (POST /v1/responses), as OpenAI's reference shows it.
RESPONSE: dict[str, object] = {
    "id": "resp_BENCHc0ffee0000000000000000",
    "object": "response",
    "created_at": 1735689600,
    "status": "completed",
    "error": None,
    "incomplete_details": None,
    "instructions": None,
    "max_output_tokens": None,
    "model": "gpt-4o-mini-2024-07-18",
    "output": [
        {
            "type": "message",
            "id": "msg_BENCHc0ffee0000000000000000",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Hello! How can I assist you today?", "annotations": [],
                         "logprobs": []}],
        }
    ],
    "parallel_tool_calls": True,
    "previous_response_id": None,
    "reasoning": {"effort": None, "summary": None},
    "service_tier": "default",
    "store": True,
    "temperature": 1.0,
    "text": {"format": {"type": "text"}},
    "tool_choice": "auto",
    "tools": [],
    "top_p": 1.0,
    "truncation": "disabled",
    "usage": {
        "input_tokens": 8,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 10,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 18,
    },
    "user": None,
    "metadata": {},
}


def _http(body: bytes) -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\n"
        b"content-type: application/json\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n"
        b"connection: keep-alive\r\n"
        b"openai-organization: bench-org\r\n"
        b"openai-processing-ms: 312\r\n"
        b"openai-version: 2020-10-01\r\n"
        b"x-ratelimit-limit-requests: 30000\r\n"
        b"x-ratelimit-remaining-requests: 29999\r\n"
        b"x-ratelimit-limit-tokens: 150000000\r\n"
        b"x-ratelimit-remaining-tokens: 149999990\r\n"
        b"x-request-id: req_0123456789abcdef0123456789abcdef\r\n"
        b"\r\n" + body
    )


_BODY = json.dumps(CHAT_COMPLETION, separators=(",", ":")).encode()
_RESPONSES = _http(json.dumps(RESPONSE, separators=(",", ":")).encode())
_RESPONSE = _http(_BODY)
_NOT_FOUND = b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
_BAD = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


def _content_length(head: bytes) -> int:
    # Header names are case-insensitive; clients send one of a few spellings.
    i = head.lower().find(b"\r\ncontent-length:")
    if i < 0:
        return 0
    j = head.find(b"\r\n", i + 2)
    return int(head[i + 17 : j if j >= 0 else len(head)].strip())


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                return
            if b"chunked" in head.lower():  # no benchmark client sends chunked bodies
                writer.write(_BAD)
                return
            n = _content_length(head)
            if n:
                await reader.readexactly(n)
            if head.startswith(b"POST /v1/chat/completions "):
                writer.write(_RESPONSE)
            else:
                writer.write(_RESPONSES if head.startswith(b"POST /v1/responses ") else _NOT_FOUND)
            # Drain only when the kernel buffer pushes back: keeps the common path free of an await.
            transport = writer.transport
            if transport.get_write_buffer_size() > 65536:
                await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
        pass  # the client went away, or the server is shutting down
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def serve(host: str = "127.0.0.1", port: int = 0) -> None:
    """Listen on ``host:port`` (0 = any free port) and print ``PORT <n>`` on stdout once listening."""
    server = await asyncio.start_server(_handle, host, port, backlog=1024, limit=1 << 20)
    bound = server.sockets[0].getsockname()[1]
    print(f"PORT {bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


class ServerProcess:
    """A running server subprocess: ``.port``, ``.url`` (ends in ``/v1``), ``.stop()``."""

    def __init__(self, proc: subprocess.Popen[str], port: int) -> None:
        self.proc = proc
        self.port = port
        self.url = f"http://127.0.0.1:{port}/v1"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_in_subprocess(timeout: float = 10.0) -> ServerProcess:
    """Start the server in its own Python process and wait until it listens."""
    proc = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    line = proc.stdout.readline()
    if not line.startswith("PORT ") or time.monotonic() > deadline:
        proc.kill()
        raise RuntimeError(f"benchmark server did not start: {line!r}")
    return ServerProcess(proc, int(line.split()[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
