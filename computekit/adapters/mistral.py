"""Mistral: chat completions (tools, JSON mode, streaming with usage), embeddings, reasoning (Magistral).

Mistral's API (``https://api.mistral.ai/v1``) is a close relative of OpenAI's wire format, so this adapter reuses
:class:`~computekit.adapters.openai.OpenAIWire` and overrides only what differs:

- ``seed`` is sent as ``random_seed``; ``user`` and ``service_tier`` are not Mistral parameters (asking for them
  raises :class:`~computekit.InvalidRequestError` before any HTTP); ``dimensions`` of ``embed()`` is sent as
  ``output_dimension``;
- streams are sent without ``stream_options``: Mistral reports the usage in the final chunk on its own;
- usage: ``prompt_tokens`` / ``completion_tokens``, and ``prompt_tokens_details.cached_tokens`` when prompt
  caching hit (priced at the cache-read rate). Reasoning (Magistral) tokens are billed as output and already
  counted in ``completion_tokens``; ``completion_tokens_details.reasoning_tokens`` is read when present;
- reasoning models answer with ``content`` as a list of chunks: ``{"type": "thinking", "thinking": [...]}`` and
  ``{"type": "text", "text": ...}``. ``text`` is the answer only; the thinking stays in ``raw`` (the response as
  sent, and ``raw["thinking"]`` for a stream);
- ``finish_reason: model_length`` (the model's context was full) is normalised to ``length``;
- errors: ``{"object": "error", "message": ..., "type": ..., "code": ...}`` (``message`` is an object for 422
  validation errors), or the gateway's ``{"message": "Unauthorized", "request_id": ...}``.

Fine-tuning (``/v1/fine_tuning/jobs``, with ``/v1/files`` for training data) lands with the finetune issue: it will
be new ``build_finetune`` / ``parse_finetune`` methods here next to the chat ones, sharing :meth:`endpoint`,
:meth:`headers`, :meth:`map_error` and the request-id lookup; nothing in the chat path assumes chat-only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from .._exceptions import APIStatusError, ContextWindowExceededError, InvalidRequestError, ProviderError
from .._types import Chunk, Completion
from ._base import (
    Capabilities,
    CompleteRequest,
    EmbedRequest,
    HTTPRequest,
    HTTPResponse,
    SSEEvent,
    StreamDecoder,
)
from .openai import OpenAIWire, _ChatStream

__all__ = ["MistralAdapter"]

_UNSUPPORTED_FIELDS = ("user", "service_tier")
_FINISH = {"model_length": "length"}
_REQUEST_ID_HEADERS = ("x-kong-request-id", "mistral-correlation-id")
# A content list (reasoning chunks) in a response body: only then is the body rewritten before parsing.
_CONTENT_LIST = re.compile(rb'"content"\s*:\s*\[')
_CONTEXT_WORDS = ("too large for model", "maximum context length", "context length")


def split_content(content: Any) -> tuple[str, str]:
    """(answer text, thinking text) of a Mistral message ``content``: a string, or a list of chunks."""
    if content is None:
        return "", ""
    if isinstance(content, str):
        return content, ""
    text: list[str] = []
    thinking: list[str] = []
    for part in content if isinstance(content, list) else []:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "text":
            text.append(str(part.get("text") or ""))
        elif kind == "thinking":
            for inner in part.get("thinking") or []:
                if isinstance(inner, dict) and inner.get("type") == "text":
                    thinking.append(str(inner.get("text") or ""))
    return "".join(text), "".join(thinking)


class MistralAdapter(OpenAIWire):
    """Mistral La Plateforme (``mistral:`` models). Keys: ``MISTRAL_API_KEY``."""

    name = "mistral"
    capabilities = Capabilities(complete=True, stream=True, tools=True, json_mode=True, embed=True)
    key_env_vars = ("MISTRAL_API_KEY",)
    default_base_url = "https://api.mistral.ai/v1"
    table_provider = "mistral"
    include_stream_usage = False  # the final chunk carries usage without stream_options
    docs_url = "https://docs.mistral.ai/api/"

    # ----------------------------------------------------------------------------------------- complete

    def _common_body(self, req: CompleteRequest) -> dict[str, Any]:
        for name in _UNSUPPORTED_FIELDS:
            if getattr(req, name) is not None:
                raise InvalidRequestError(f"mistral: the chat API has no {name!r} parameter")
        body = super()._common_body(req)
        if "seed" in body:
            body["random_seed"] = body.pop("seed")
        return body

    def parse_complete(self, req: CompleteRequest, resp: HTTPResponse) -> Completion:
        if not _CONTENT_LIST.search(resp.content):
            return self._finish(super().parse_complete(req, resp))
        # A reasoning answer: content is a list of chunks. Parse it as text-only, keep the original as raw.
        try:
            data = resp.json()
        except ValueError:
            raise self.malformed(resp, req.model, "body is not JSON") from None
        flat = json.loads(json.dumps(data))  # a copy to rewrite
        for choice in flat.get("choices") or [] if isinstance(flat, dict) else []:
            msg = choice.get("message") if isinstance(choice, dict) else None
            if isinstance(msg, dict) and isinstance(msg.get("content"), list):
                msg["content"], _ = split_content(msg["content"])
        rewritten = HTTPResponse(resp.status, resp.headers, json.dumps(flat).encode(), resp.url)
        result = self._finish(super().parse_complete(req, rewritten))
        result.raw = data
        return result

    def stream_decoder(self, req: CompleteRequest) -> StreamDecoder:
        return _MistralStream(self, req)

    @staticmethod
    def _finish(result: Completion) -> Completion:
        if result.finish_reason in _FINISH:
            result.finish_reason = _FINISH[result.finish_reason]
        return result

    # ----------------------------------------------------------------------------------------- embed

    def build_embed(self, req: EmbedRequest) -> HTTPRequest:
        body: dict[str, Any] = {"model": req.model, "input": req.inputs, "encoding_format": "float"}
        if req.dimensions is not None:
            body["output_dimension"] = req.dimensions
        body.update(req.extra)
        return HTTPRequest("POST", self.endpoint("embeddings", req.model), self.headers(), json=body)

    # ----------------------------------------------------------------------------------------- errors

    def request_id(self, headers: Mapping[str, str]) -> str | None:
        for h in _REQUEST_ID_HEADERS:
            v = headers.get(h)
            if v:
                return v
        return super().request_id(headers)

    def error_message(self, body: Any) -> str:
        if isinstance(body, dict) and "error" not in body:
            msg = body.get("message")
            if isinstance(msg, str) and msg:
                return msg
            if isinstance(msg, dict):  # 422: {"detail": [{"loc", "msg", "type"}]}
                detail = msg.get("detail")
                if isinstance(detail, list):
                    return "; ".join(
                        f"{'.'.join(str(p) for p in d.get('loc') or [])}: {d.get('msg', '')}"
                        if isinstance(d, dict)
                        else str(d)
                        for d in detail
                    )
                return json.dumps(msg)[:500]
        return super().error_message(body)

    def classify_error(self, status: int, body: Any) -> type[APIStatusError] | None:
        if status in (400, 422):
            text = self.error_message(body).lower()
            if any(w in text for w in _CONTEXT_WORDS):
                return ContextWindowExceededError
        return super().classify_error(status, body)

    def map_error(self, resp: HTTPResponse, model: str | None) -> ProviderError:
        error = super().map_error(resp, model)
        if error.request_id is None and isinstance(error.body, dict) and isinstance(error.body.get("request_id"), str):
            error.request_id = error.body["request_id"]  # the gateway's 401/429 bodies carry it
        return error


class _MistralStream(_ChatStream):
    """OpenAI-style chunks, where ``delta.content`` may be a list of thinking/text chunks (reasoning models)."""

    def __init__(self, adapter: MistralAdapter, req: CompleteRequest) -> None:
        super().__init__(adapter, req)
        self.thinking: list[str] = []

    def feed(self, event: SSEEvent) -> list[Chunk]:
        if '"thinking"' not in event.data and not _CONTENT_LIST.search(event.data.encode()):
            return self._finish(super().feed(event))
        try:
            data = json.loads(event.data)
        except ValueError:
            return super().feed(event)  # raises the malformed-event error
        original = json.loads(event.data)
        for choice in data.get("choices") or [] if isinstance(data, dict) else []:
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if isinstance(delta, dict) and isinstance(delta.get("content"), list):
                delta["content"], thought = split_content(delta["content"])
                if thought:
                    self.thinking.append(thought)
        chunks = self._finish(super().feed(SSEEvent(data=json.dumps(data), event=event.event, id=event.id)))
        for c in chunks:
            c.raw = original
        return chunks

    def _finish(self, chunks: list[Chunk]) -> list[Chunk]:
        for c in chunks:
            if c.finish_reason in _FINISH:
                c.finish_reason = _FINISH[c.finish_reason]
        if self.finish in _FINISH:
            self.finish = _FINISH[self.finish]
        return chunks

    def result(self) -> Completion:
        result = super().result()
        if self.thinking:
            result.raw = {**result.raw, "thinking": "".join(self.thinking)}
        return result
