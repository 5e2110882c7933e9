"""One Anthropic exchange both ways: a Message as the stream of events Anthropic documents for it, and the check
that the streamed and the plain parse of the same exchange give the same result.

The streaming format (https://docs.anthropic.com/en/docs/build-with-claude/streaming): ``message_start`` with
empty content, then per block ``content_block_start`` (text and thinking empty, tool inputs ``{}``, server tool
results whole), its deltas (``text_delta``, ``citations_delta``, ``thinking_delta``, ``signature_delta``,
``input_json_delta``) and ``content_block_stop``, then ``message_delta`` with the stop reason and the cumulative
usage, and ``message_stop``.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import computekit as ck


def events_of(message: dict[str, Any]) -> bytes:
    """The SSE body Anthropic streams for ``message`` (text and JSON inputs cut in two pieces)."""
    out: list[dict[str, Any]] = []
    start = copy.deepcopy(message)
    start.update(content=[], stop_reason=None, stop_sequence=None)
    start["usage"] = {**message["usage"], "output_tokens": 1}
    out.append({"type": "message_start", "message": start})
    for i, block in enumerate(message["content"]):
        kind = block["type"]

        def delta(d: dict[str, Any], i: int = i) -> None:
            out.append({"type": "content_block_delta", "index": i, "delta": d})

        if kind == "text":
            empty = {**block, "text": ""} | ({"citations": None} if "citations" in block else {})
            out.append({"type": "content_block_start", "index": i, "content_block": empty})
            for c in block.get("citations") or []:
                delta({"type": "citations_delta", "citation": c})
            half = len(block["text"]) // 2
            for piece in (block["text"][:half], block["text"][half:]):
                delta({"type": "text_delta", "text": piece})
        elif kind == "thinking":
            out.append({"type": "content_block_start", "index": i,
                        "content_block": {"type": "thinking", "thinking": "", "signature": ""}})
            delta({"type": "thinking_delta", "thinking": block["thinking"]})
            delta({"type": "signature_delta", "signature": block["signature"]})
        elif "input" in block:  # tool_use, server_tool_use
            out.append({"type": "content_block_start", "index": i, "content_block": {**block, "input": {}}})
            text = json.dumps(block["input"], ensure_ascii=False)
            half = len(text) // 2
            for piece in (text[:half], text[half:]):
                delta({"type": "input_json_delta", "partial_json": piece})
        else:  # server tool results, redacted thinking: whole in content_block_start
            out.append({"type": "content_block_start", "index": i, "content_block": block})
        out.append({"type": "content_block_stop", "index": i})
    out.append({"type": "message_delta", "delta": {"stop_reason": message["stop_reason"],
                                                   "stop_sequence": message.get("stop_sequence")},
                "usage": message["usage"]})
    out.append({"type": "message_stop"})
    return "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in out).encode()


def assert_same(plain: ck.Completion, streamed: ck.Completion) -> None:
    """The plain and the streamed parse of one exchange agree on everything a caller reads."""
    assert streamed.text == plain.text
    assert [(t.id, t.name, json.loads(t.arguments)) for t in streamed.tool_calls] == [
        (t.id, t.name, json.loads(t.arguments)) for t in plain.tool_calls]
    assert streamed.finish_reason == plain.finish_reason
    assert streamed.usage == plain.usage
    assert streamed.message.text == plain.message.text
    assert (streamed.id, streamed.response_model, streamed.service_tier) == (
        plain.id, plain.response_model, plain.service_tier)
    assert streamed.raw["content"] == plain.raw["content"]
    assert streamed.raw["stop_reason"] == plain.raw["stop_reason"]
