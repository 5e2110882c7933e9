"""Cohere: v2 chat (tools with ``tool_plan``, ``thinking`` content, citations), v2 streaming, v2 embeddings,
rerank, and the v1 wire formats (chat, generate, embed, NDJSON stream) for parsing and pricing old traffic.

**Billing.** Cohere bills ``usage.billed_units`` (``meta.billed_units`` in v1), not ``usage.tokens``: ``tokens``
counts what the model processed, including Cohere's own prompt template (a real recording bills 80/301 for
1494/330 processed). :class:`~computekit.Usage` therefore carries the billed quantities. ``usage.cached_tokens``
counts *processed* tokens served from cache (2928 cached of 2935 processed, while 2406 were billed): it is not
a part of the billed input, and Cohere lists no cache discount, so it is **not** mapped to
``cached_input_tokens`` (which would be subtracted from the billed input and priced at a cache rate). It stays in
``raw``. This is the same reading as genai-prices' default Cohere extractor (``usage.billed_units`` input/output,
no cache field), so computekit's cost equals ``genai_prices.calc_price`` on the billed units. Other billed units
(``search_units`` for rerank, ``classifications``, ``images``) go to ``Usage.units``.

**The official SDK.** computekit keeps all I/O in its own transport (one retry loop, vcrpy-recordable, pooled
connections), so the ``cohere`` SDK's HTTP client is never used — there is no second retry loop to turn off.
The SDK's pydantic response types were measured as the parser: importing them costs ~200-250 ms on first use
and ``V2ChatResponse.model_validate_json`` ~80-110 µs per response against ~11-16 µs for ``json.loads`` (and it
turns token counts into floats). The hot path therefore parses plain dicts. The SDK earns its place off the hot
path: :func:`to_sdk` turns a result's ``raw`` into the SDK's typed object (``cohere.V2ChatResponse``,
``cohere.EmbedByTypeResponse``, ``cohere.V2RerankResponse``) for callers who want typed citations, and the tests
validate the authored cassettes against those same types (Cohere's API spec is not redistributable). ``cohere``
is imported only inside :func:`to_sdk`, never at ``import computekit``.

**Rerank.** :meth:`CohereAdapter.build_rerank` / :meth:`CohereAdapter.parse_rerank` are pure; the client verb
``rerank()`` is wired by the client (not yet). Search units are priced when a price table has a price for them
(genai-prices has no Cohere rerank price today, so the cost is ``None``, never 0).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from .._exceptions import (
    APIStatusError,
    AuthenticationError,
    ContextWindowExceededError,
    InvalidRequestError,
    ProviderError,
    ServerError,
)
from .._extras import require
from .._types import Chunk, Completion, Embeddings, Message, RerankHit, Reranking, Result, ToolCall, Usage
from ..pricing import PriceRef
from ._base import (
    Adapter,
    Capabilities,
    CompleteRequest,
    EmbedRequest,
    HTTPRequest,
    HTTPResponse,
    RerankRequest,
    SSEEvent,
    StreamDecoder,
    sampling_options,
)
from .openai import wire_part

__all__ = ["CohereAdapter", "V1ChatStream", "to_sdk"]

# Cohere's finish reasons (v1 and v2) -> computekit's vocabulary; anything else is kept lower-cased.
_FINISH = {
    "COMPLETE": "stop",
    "STOP_SEQUENCE": "stop",
    "END_TURN": "stop",
    "MAX_TOKENS": "length",
    "ERROR_LIMIT": "length",  # v1: the context limit was reached
    "TOOL_CALL": "tool_calls",
    "ERROR_TOXIC": "content_filter",
    "ERROR": "error",
    "TIMEOUT": "timeout",
    "USER_CANCEL": "canceled",
}

_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant", "tool": "tool"}
_TOOL_CHOICE = {"required": "REQUIRED", "none": "NONE", "REQUIRED": "REQUIRED", "NONE": "NONE"}
_CONTEXT_WORDS = ("too many tokens", "context length", "context window", "maximum context")
_BILLED_TOKEN_KEYS = ("input_tokens", "output_tokens")


def _finish(reason: Any) -> str | None:
    if not reason:
        return None
    word = str(reason)
    return _FINISH.get(word, word.lower())


def _int(v: Any) -> int:
    return int(v) if isinstance(v, int | float) else 0


def billed_usage(billed: Mapping[str, Any] | None) -> Usage:
    """Cohere's ``billed_units`` (v1 ``meta.billed_units``, v2 ``usage.billed_units``) -> :class:`Usage`."""
    if not billed:
        return Usage()
    units = {
        k: Decimal(str(v))
        for k, v in billed.items()
        if k not in _BILLED_TOKEN_KEYS and isinstance(v, int | float) and v
    }
    return Usage(
        input_tokens=_int(billed.get("input_tokens")),
        output_tokens=_int(billed.get("output_tokens")),
        units=units,
    )


# --------------------------------------------------------------------------------------------- request side


def _wire_tool_call(tc: Any) -> dict[str, Any]:
    if not isinstance(tc, Mapping):
        tc = tc.model_dump()
    if "function" in tc:
        fn = tc["function"]
        return {"id": tc["id"], "type": "function",
                "function": {"name": fn["name"], "arguments": fn.get("arguments") or ""}}
    return {"id": tc["id"], "type": "function",
            "function": {"name": tc["name"], "arguments": tc.get("arguments") or ""}}


def wire_message(m: Mapping[str, Any]) -> dict[str, Any]:
    """computekit's message shape -> Cohere v2's (``tool_plan`` on an assistant message passes through)."""
    role = _ROLES.get(str(m.get("role")))
    if role is None:
        raise InvalidRequestError(f"Cohere has no message role {m.get('role')!r}")
    out: dict[str, Any] = {"role": role}
    content = m.get("content")
    if isinstance(content, list):
        out["content"] = [wire_part(p) for p in content]
    elif content is not None and (content != "" or not m.get("tool_calls")):
        out["content"] = content
    if role == "assistant":
        if m.get("tool_plan"):
            out["tool_plan"] = m["tool_plan"]
        if m.get("tool_calls"):
            out["tool_calls"] = [_wire_tool_call(tc) for tc in m["tool_calls"]]
    if role == "tool":
        if not m.get("tool_call_id"):
            raise InvalidRequestError("a tool message needs the tool_call_id it answers")
        out["tool_call_id"] = m["tool_call_id"]
    return out


def wire_tool(t: Mapping[str, Any]) -> dict[str, Any]:
    """A tool in Cohere v2's shape (the OpenAI shape); ``{"name", "description", "parameters"}`` as shorthand."""
    if t.get("type") == "function" or "function" in t:
        return dict(t)
    return {"type": "function", "function": dict(t)}


def _response_format(rf: Any) -> Any:
    if isinstance(rf, Mapping) and rf.get("type") == "json_schema":
        schema = (rf.get("json_schema") or {}).get("schema")
        return {"type": "json_object", **({"json_schema": schema} if schema else {})}
    return rf


# --------------------------------------------------------------------------------------------- results


def _content_text(content: Any) -> str:
    """The text of a v2 message's content: text blocks only (``thinking`` blocks are kept in ``raw``)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    return "".join(
        str(b.get("text") or "") for b in content if isinstance(b, Mapping) and b.get("type", "text") == "text"
    )


def _v2_tool_calls(raw: Any) -> list[ToolCall]:
    out: list[ToolCall] = []
    for tc in raw or []:
        fn = tc.get("function") or {}
        args = fn.get("arguments")
        if not isinstance(args, str):
            args = json.dumps(args) if args is not None else ""
        out.append(ToolCall(id=tc.get("id") or "", name=fn.get("name") or "", arguments=args))
    return out


def _v1_tool_calls(raw: Any) -> list[ToolCall]:
    # v1 tool calls carry no id and give parameters as an object.
    return [
        ToolCall(id=str(tc.get("id") or ""), name=tc.get("name") or "",
                 arguments=json.dumps(tc.get("parameters") or {}))
        for tc in raw or []
    ]


def to_sdk(result: Completion | Embeddings | Reranking) -> Any:
    """The official SDK's typed object for a v2 result's ``raw`` (imports ``cohere`` on first call).

    ``Completion`` -> ``cohere.V2ChatResponse``, ``Embeddings`` -> ``cohere.EmbedByTypeResponse``,
    ``Reranking`` -> ``cohere.V2RerankResponse``. Streamed completions have no single response body to convert.

    Raises:
        ModuleNotFoundError: ``cohere`` is not installed (``pip install 'computekit[cohere]'``).
    """
    cohere = require("cohere", "cohere", "cohere.to_sdk()")

    if isinstance(result, Embeddings):
        return cohere.EmbedByTypeResponse.model_validate(result.raw)
    if isinstance(result, Reranking):
        return cohere.V2RerankResponse.model_validate(result.raw)
    return cohere.V2ChatResponse.model_validate(result.raw)


# --------------------------------------------------------------------------------------------- adapter


class CohereAdapter(Adapter):
    """Cohere's API (``cohere:`` models). Keys: ``CO_API_KEY``, then ``COHERE_API_KEY``."""

    name = "cohere"
    capabilities = Capabilities(complete=True, stream=True, tools=True, json_mode=True, embed=True, rerank=True)
    key_env_vars = ("CO_API_KEY", "COHERE_API_KEY")
    default_base_url = "https://api.cohere.com"
    base_url_env = "CO_API_URL"  # cohere-python: the host, as here
    table_provider = "cohere"
    docs_url = "https://docs.cohere.com/reference/chat"

    # ----------------------------------------------------------------------------------------- URLs & auth

    # ----------------------------------------------------------------------------------------- complete

    def unsupported_reason(self, capability: str) -> str | None:
        if capability == "finetune":
            return ("Cohere retired its fine-tuning API on 2025-09-15; fine-tune an open model elsewhere "
                    "(e.g. together:, fireworks:) or an OpenAI model (openai:)")
        return super().unsupported_reason(capability)

    def build_complete(self, req: CompleteRequest) -> HTTPRequest:
        body: dict[str, Any] = {"model": req.model, "messages": [wire_message(m) for m in req.messages]}
        if req.tools:
            body["tools"] = [wire_tool(t) for t in req.tools]
        if req.tool_choice is not None and req.tool_choice != "auto":
            choice = _TOOL_CHOICE.get(req.tool_choice) if isinstance(req.tool_choice, str) else None
            if choice is None:
                raise InvalidRequestError(
                    f"Cohere's tool_choice is 'required' or 'none' (or 'auto'), not {req.tool_choice!r}"
                )
            body["tool_choice"] = choice
        body.update(sampling_options(req, {"max_tokens": "max_tokens", "temperature": "temperature", "top_p": "p",
                                           "stop": "stop_sequences", "seed": "seed"}))
        if req.response_format is not None:
            body["response_format"] = _response_format(req.response_format)
        # ``user`` and ``service_tier`` have no Cohere equivalent and are not sent.
        if req.stream:
            body["stream"] = True
        if req.extra:
            body.update(req.extra)
        return HTTPRequest("POST", self.url("v2/chat"), self.headers(), json=body, stream=req.stream)

    def parse_complete(self, req: CompleteRequest, resp: HTTPResponse) -> Completion:
        data = self.json_object(resp, req.model)
        msg = data.get("message")
        if not isinstance(msg, dict):
            raise self.malformed(resp, req.model, "no message in the response")
        text = _content_text(msg.get("content"))
        calls = _v2_tool_calls(msg.get("tool_calls"))
        raw_usage = data.get("usage")
        result = Completion(
            provider=self.provider,
            model=req.model,
            text=text,
            message=Message(role="assistant", content=text, tool_calls=calls or None),
            tool_calls=calls,
            finish_reason=_finish(data.get("finish_reason")),
            id=data.get("id"),
            usage=self.usage(raw_usage),
            request_id=self.request_id(resp.headers),
            raw=data,
        )
        result._usage_reported = isinstance(raw_usage, dict) and isinstance(raw_usage.get("billed_units"), dict)
        return result

    def stream_decoder(self, req: CompleteRequest) -> StreamDecoder:
        return _ChatStream(self, req)

    def usage(self, raw: Mapping[str, Any] | None) -> Usage:
        """v2 ``usage`` -> :class:`Usage`: the billed units (see the module docstring for ``cached_tokens``)."""
        if not raw:
            return Usage()
        return billed_usage(raw.get("billed_units"))

    # ----------------------------------------------------------------------------------------- embed

    def build_embed(self, req: EmbedRequest) -> HTTPRequest:
        body: dict[str, Any] = {
            "model": req.model,
            "texts": req.inputs,
            "input_type": "search_document",
            "embedding_types": ["float"],
        }
        if req.dimensions is not None:
            body["output_dimension"] = req.dimensions
        body.update(req.extra)
        return HTTPRequest("POST", self.url("v2/embed"), self.headers(), json=body)

    def parse_embed(self, req: EmbedRequest, resp: HTTPResponse) -> Embeddings:
        data = self.json_object(resp, req.model)
        emb = data.get("embeddings")
        vectors = emb.get("float") if isinstance(emb, dict) else emb  # v2 keys by type; v1 is a plain list
        asked = req.extra.get("embedding_types")
        if vectors is None and isinstance(emb, dict) and isinstance(asked, list) and "float" not in asked:
            # Asked for other types only (int8, ubinary, base64 ...: an instrumented SDK's call): no float
            # vectors to give, the same input billed.
            vectors = []
        if not isinstance(vectors, list) or not all(isinstance(v, list) for v in vectors):
            raise self.malformed(resp, req.model, "no float embeddings in the response")
        meta = data.get("meta")
        billed = meta.get("billed_units") if isinstance(meta, dict) else None
        result = Embeddings(
            provider=self.provider,
            model=req.model,
            vectors=[list(v) for v in vectors],
            usage=billed_usage(billed),
            request_id=self.request_id(resp.headers),
            raw=data,
        )
        result._usage_reported = isinstance(billed, dict)
        return result

    # ----------------------------------------------------------------------------------------- rerank

    def build_rerank(self, req: RerankRequest) -> HTTPRequest:
        """``POST {base}/v2/rerank``: ``documents`` ordered by relevance to ``query``."""
        body: dict[str, Any] = {"model": req.model, "query": req.query, "documents": list(req.documents)}
        if req.top_n is not None:
            body["top_n"] = req.top_n
        if req.extra:
            body.update(req.extra)
        return HTTPRequest("POST", self.url("v2/rerank"), self.headers(), json=body)

    def parse_rerank(self, req: RerankRequest, resp: HTTPResponse) -> Reranking:
        """A rerank response -> :class:`Reranking` (``usage.units["search_units"]``; cost not set)."""
        model = req.model
        data = self.json_object(resp, model)
        results = data.get("results")
        if not isinstance(results, list):
            raise self.malformed(resp, model, "no results in the rerank response")
        try:
            hits = [RerankHit(index=r["index"], relevance_score=r["relevance_score"], document=r.get("document"))
                    for r in results]
        except (KeyError, TypeError, ValueError):
            raise self.malformed(resp, model, "a rerank result has no index or relevance_score") from None
        meta = data.get("meta")
        billed = meta.get("billed_units") if isinstance(meta, dict) else None
        result = Reranking(
            provider=self.provider,
            model=model,
            results=hits,
            usage=billed_usage(billed),
            request_id=self.request_id(resp.headers),
            raw=data,
        )
        result._usage_reported = isinstance(billed, dict)
        return result

    # ----------------------------------------------------------------------------------------- v1 (parse only)

    def parse_v1_chat(self, req: CompleteRequest, resp: HTTPResponse) -> Completion:
        """A ``/v1/chat`` response (recorded traffic) -> :class:`Completion`, billed on ``meta.billed_units``.

        v1 answers ``COMPLETE`` even when it called tools; the finish reason is then ``tool_calls``.
        """
        data = self.json_object(resp, req.model)
        if not isinstance(data.get("text"), str):
            raise self.malformed(resp, req.model, "no text in the v1 chat response")
        return self._v1_completion(req, data, self.request_id(resp.headers))

    def _v1_completion(self, req: CompleteRequest, data: dict[str, Any], request_id: str | None) -> Completion:
        text = data.get("text") or ""
        calls = _v1_tool_calls(data.get("tool_calls"))
        finish = _finish(data.get("finish_reason"))
        if calls and finish == "stop":
            finish = "tool_calls"
        meta = data.get("meta")
        billed = meta.get("billed_units") if isinstance(meta, dict) else None
        result = Completion(
            provider=self.provider,
            model=req.model,
            text=text,
            message=Message(role="assistant", content=text, tool_calls=calls or None),
            tool_calls=calls,
            finish_reason=finish,
            id=data.get("response_id") or data.get("generation_id"),
            usage=billed_usage(billed),
            request_id=request_id,
            raw=data,
        )
        result._usage_reported = isinstance(billed, dict)
        return result

    def parse_v1_generate(self, req: CompleteRequest, resp: HTTPResponse) -> Completion:
        """A ``/v1/generate`` response (recorded traffic) -> :class:`Completion` (the first generation)."""
        data = self.json_object(resp, req.model)
        gens = data.get("generations")
        if not isinstance(gens, list) or not gens or not isinstance(gens[0], dict):
            raise self.malformed(resp, req.model, "no generations in the v1 generate response")
        gen = gens[0]
        text = str(gen.get("text") or "")
        meta = data.get("meta")
        billed = meta.get("billed_units") if isinstance(meta, dict) else None
        result = Completion(
            provider=self.provider,
            model=req.model,
            text=text,
            message=Message(role="assistant", content=text),
            finish_reason=_finish(gen.get("finish_reason")),
            id=data.get("id"),
            usage=billed_usage(billed),
            request_id=self.request_id(resp.headers),
            raw=data,
        )
        result._usage_reported = isinstance(billed, dict)
        return result

    def parse_v1_embed(self, req: EmbedRequest, resp: HTTPResponse) -> Embeddings:
        """A ``/v1/embed`` response (``embeddings`` a plain list of float lists) -> :class:`Embeddings`."""
        return self.parse_embed(req, resp)

    def v1_stream_decoder(self, req: CompleteRequest) -> V1ChatStream:
        """A decoder for a ``/v1/chat`` NDJSON stream (``application/stream+json``) of recorded traffic."""
        return V1ChatStream(self, req)

    # ----------------------------------------------------------------------------------------- pricing

    def price_ref(self, model: str, result: Result | None = None) -> PriceRef:
        # Cohere responses do not name the model: the requested id is the priced one.
        return PriceRef(provider=self.provider, model=model, table_provider=self.table_provider)

    # ----------------------------------------------------------------------------------------- errors

    def request_id(self, headers: Mapping[str, str]) -> str | None:
        return super().request_id(headers) or headers.get("x-debug-trace-id") or None

    def classify_error(self, status: int, body: Any) -> type[APIStatusError] | None:
        if status == 498:  # Cohere: "invalid token"
            return AuthenticationError
        msg = body.get("message") if isinstance(body, dict) else body
        if status == 400 and isinstance(msg, str) and any(w in msg.lower() for w in _CONTEXT_WORDS):
            return ContextWindowExceededError
        return None

    def map_error(self, resp: HTTPResponse, model: str | None) -> ProviderError:
        """Typed as usual; Cohere error bodies carry the request's ``id``, kept as the request id."""
        err = super().map_error(resp, model)
        if err.request_id is None and isinstance(err.body, dict) and isinstance(err.body.get("id"), str):
            err.request_id = err.body["id"]
        return err

    def stream_error(self, model: str, data: Mapping[str, Any], why: str) -> ProviderError:
        """An error reported inside a stream, raised typed (a server-side failure)."""
        return ServerError(
            why,
            provider=self.provider,
            model=model,
            status=None,
            body=self.redact(dict(data)),
            request_id=str(data["id"]) if data.get("id") else None,
        )


class _ChatStream(StreamDecoder):
    """v2 SSE events (``message-start`` ... ``message-end``) -> Chunk, accumulating the final Completion."""

    def __init__(self, adapter: CohereAdapter, req: CompleteRequest) -> None:
        self.adapter = adapter
        self.req = req
        self.text: list[str] = []
        self.thinking: list[str] = []
        self.tool_plan: list[str] = []
        self.block_types: dict[int, str] = {}
        self.calls: dict[int, dict[str, str]] = {}
        self.citations: list[Any] = []
        self.finish: str | None = None
        self.finish_raw: str | None = None
        self.raw_usage: dict[str, Any] | None = None
        self.id: str | None = None
        self.done = False

    def _bad(self, event: SSEEvent, why: str) -> ProviderError:
        return self.adapter.malformed(HTTPResponse(200, {}, event.data.encode()), self.req.model, why)

    def feed(self, event: SSEEvent) -> list[Chunk]:
        if event.data == "[DONE]":
            self.done = True
            return []
        try:
            data = json.loads(event.data)
        except ValueError:
            raise self._bad(event, "stream event is not JSON") from None
        if not isinstance(data, dict):
            raise self._bad(event, "stream event is not a JSON object")
        kind = data.get("type") or event.event
        delta: dict[str, Any] = data["delta"] if isinstance(data.get("delta"), dict) else {}
        message: dict[str, Any] = delta["message"] if isinstance(delta.get("message"), dict) else {}
        index: int = data["index"] if isinstance(data.get("index"), int) else 0
        chunk = Chunk(raw=data)
        if kind == "message-start":
            self.id = data.get("id") or self.id
        elif kind == "content-start":
            content = message.get("content") or {}
            btype = content.get("type") or ("thinking" if "thinking" in content else "text")
            self.block_types[index] = btype
            self._content(btype, content, chunk)
        elif kind == "content-delta":
            content = message.get("content") or {}
            btype = self.block_types.get(index) or ("thinking" if "thinking" in content else "text")
            self._content(btype, content, chunk)
        elif kind == "tool-plan-delta":
            if message.get("tool_plan"):
                self.tool_plan.append(message["tool_plan"])
        elif kind in ("tool-call-start", "tool-call-delta"):
            tc = message.get("tool_calls") or {}
            fn = tc.get("function") or {}
            acc = self.calls.setdefault(index, {"id": "", "name": "", "arguments": ""})
            if tc.get("id"):
                acc["id"] = tc["id"]
            if fn.get("name"):
                acc["name"] += fn["name"]
            if fn.get("arguments"):
                acc["arguments"] += fn["arguments"]
            chunk.tool_calls.append(
                {"index": index, "id": tc.get("id"), "name": fn.get("name"), "arguments": fn.get("arguments")}
            )
        elif kind == "citation-start":
            if message.get("citations"):
                self.citations.append(message["citations"])
        elif kind == "message-end":
            if delta.get("error"):
                raise self.adapter.stream_error(self.req.model, data, str(delta["error"]))
            self.finish_raw = delta.get("finish_reason")
            self.finish = _finish(self.finish_raw)
            chunk.finish_reason = self.finish
            if isinstance(delta.get("usage"), dict):
                self.raw_usage = delta["usage"]
                chunk.usage = self.adapter.usage(self.raw_usage)
            self.done = True
        return [chunk]

    def _content(self, btype: str, content: Mapping[str, Any], chunk: Chunk) -> None:
        if btype == "text":
            piece = content.get("text")
            if piece:
                self.text.append(piece)
                chunk.text = piece
        elif btype == "thinking" and content.get("thinking"):
            self.thinking.append(content["thinking"])

    def result(self) -> Completion:
        text = "".join(self.text)
        calls = [ToolCall(**self.calls[i]) for i in sorted(self.calls)]
        message: dict[str, Any] = {"role": "assistant"}
        if self.thinking:
            message["content"] = [{"type": "thinking", "thinking": "".join(self.thinking)}]
        if text:
            message.setdefault("content", []).append({"type": "text", "text": text})
        if self.tool_plan:
            message["tool_plan"] = "".join(self.tool_plan)
        if calls:
            message["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}} for c in calls
            ]
        if self.citations:
            message["citations"] = self.citations
        raw = {"id": self.id, "message": message, "finish_reason": self.finish_raw, "usage": self.raw_usage}
        result = Completion(
            provider=self.adapter.provider,
            model=self.req.model,
            text=text,
            message=Message(role="assistant", content=text, tool_calls=calls or None),
            tool_calls=calls,
            finish_reason=self.finish,
            id=self.id,
            usage=self.adapter.usage(self.raw_usage),
            raw=raw,
        )
        result._usage_reported = isinstance(self.raw_usage, dict) and isinstance(
            self.raw_usage.get("billed_units"), dict
        )
        return result


class V1ChatStream:
    """A ``/v1/chat`` NDJSON stream (one JSON event a line) -> Chunk, then the final Completion.

    Feed raw bytes as they arrive (:meth:`feed`), then :meth:`close`. The final ``stream-end`` event carries the
    whole response, billed units included.
    """

    def __init__(self, adapter: CohereAdapter, req: CompleteRequest) -> None:
        self.adapter = adapter
        self.req = req
        self.buf = b""
        self.text: list[str] = []
        self.end: dict[str, Any] | None = None
        self.done = False

    def feed(self, data: bytes) -> list[Chunk]:
        """Decode the complete lines in ``data`` (plus what was buffered)."""
        self.buf += data
        *lines, self.buf = self.buf.split(b"\n")
        out: list[Chunk] = []
        for line in lines:
            out.extend(self._line(line))
        return out

    def close(self) -> list[Chunk]:
        """Decode what is left; raises when the stream ended before ``stream-end``."""
        out = self._line(self.buf)
        self.buf = b""
        if not self.done:
            raise self.adapter.malformed(HTTPResponse(200, {}, b""), self.req.model, "the stream ended before its end")
        return out

    def _line(self, line: bytes) -> list[Chunk]:
        line = line.strip()
        if not line:
            return []
        try:
            ev = json.loads(line)
        except ValueError:
            ev = None
        if not isinstance(ev, dict):
            raise self.adapter.malformed(HTTPResponse(200, {}, line), self.req.model, "bad stream line")
        kind = ev.get("event_type")
        chunk = Chunk(raw=ev)
        if kind == "text-generation" and ev.get("text"):
            self.text.append(ev["text"])
            chunk.text = ev["text"]
        elif kind == "stream-end":
            response: dict[str, Any] = ev["response"] if isinstance(ev.get("response"), dict) else {}
            self.end = {**response, "finish_reason": response.get("finish_reason") or ev.get("finish_reason")}
            if ev.get("finish_reason") == "ERROR" or response.get("finish_reason") == "ERROR":
                raise self.adapter.stream_error(self.req.model, ev, "generation failed (finish_reason ERROR)")
            result = self.result()
            chunk.finish_reason = result.finish_reason
            chunk.usage = result.usage if result._usage_reported else None
            self.done = True
        return [chunk]

    def result(self) -> Completion:
        """The completion so far: from ``stream-end`` once it arrived, else the text streamed."""
        data = self.end if self.end is not None else {"text": "".join(self.text)}
        if "text" not in data:
            data = {**data, "text": "".join(self.text)}
        return self.adapter._v1_completion(self.req, data, None)
