"""OpenAI: chat completions (tools, JSON mode, streaming with usage), embeddings, legacy text completions.

The hot path speaks the wire format directly over computekit's pooled HTTP client and parses each response
once, straight into computekit's types: the official SDK costs several milliseconds of CPU per call
(see benchmarks/). The wire handling is kept honest by the real recordings in ``shared/conformance`` and by
validating authored cassettes against OpenAI's OpenAPI description.

:class:`OpenAIWire` holds the wire format; ``azure`` and ``openai-compatible`` reuse it with their own URLs,
auth and quirks.
"""

from __future__ import annotations

import base64
import functools
import json
import math
import struct
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Final, Literal

from pydantic import Field

from .._background import BackgroundResponse
from .._exceptions import (
    APIStatusError,
    ContentFilteredError,
    ContextWindowExceededError,
    InvalidRequestError,
    OverloadedError,
)
from .._extras import require
from .._structured import schema_instruction, strict_schema
from .._types import (
    Chunk,
    Completion,
    Embeddings,
    FineTuneCheckpoint,
    FineTuneEvent,
    FineTuneJob,
    FineTuneStatus,
    Message,
    Result,
    ToolCall,
    Usage,
)
from ..pricing import PriceRef
from ._base import (
    Adapter,
    AdapterSettings,
    BatchItem,
    BatchSpec,
    BatchState,
    Capabilities,
    CompleteRequest,
    EmbedRequest,
    FineTuneBilling,
    FineTuneRequest,
    FineTuneSpec,
    HTTPRequest,
    HTTPResponse,
    SSEEvent,
    StreamDecoder,
    TrainingFile,
    carried_status,
    count,
    multipart,
    obj,
    unix_time,
)
from .openai_responses import (
    ResponsesStream,
    build_body,
    builtin_tools,
    fee_tools,
    in_family,
    parse_background,
    parse_response,
    path_id,
    responses_only,
    stored_context,
)

__all__ = ["OpenAIAdapter", "OpenAISettings", "OpenAIWire", "ReasoningModelSettings", "ResponsesSettings", "to_sdk"]

# Provider words for the same ending, normalised so that callers can branch on one vocabulary.
_FINISH = {
    "eos": "stop",
    "stop_sequence": "stop",
    "end_turn": "stop",
    "max_tokens": "length",
    "function_call": "tool_calls",
}

# The legacy /completions endpoint serves only these model families.
_TEXT_MODELS = ("gpt-3.5-turbo-instruct", "davinci-002", "babbage-002")

REASONING_FAMILIES: Final = ("o1", "o3", "o4", "gpt-5", "codex-mini")
"""Model families that take the output limit as ``max_completion_tokens``: OpenAI's reasoning models answer 400
"Unsupported parameter: 'max_tokens'" otherwise. ``[providers.NAME] max_completion_tokens_models`` adds more."""

# OpenAI's published image token rules (platform.openai.com/docs/guides/images-vision, "Calculating costs"),
# matched on the exact model or a dated snapshot of it (an unknown variant counts the context window instead).
# Tile models: a base cost plus a cost per 512px tile; "high" detail fits the image in 2048x2048, then its short
# side to 768px, so it is at most 2 x 4 = 8 tiles, "low" is the base alone.
_IMAGE_TILES: Final = {
    "gpt-4o-mini": (2833, 5667), "gpt-4o": (85, 170), "chatgpt-4o-latest": (85, 170), "gpt-4.1": (85, 170),
    "gpt-4.5-preview": (85, 170), "gpt-5": (70, 140), "gpt-5-chat-latest": (70, 140), "o1": (75, 150),
    "o1-pro": (75, 150), "o3": (75, 150), "computer-use-preview": (65, 129),
}
_MAX_TILES = 8
# Patch models: 32px patches, at most 1536 of them, times the model's multiplier.
_IMAGE_PATCHES: Final = {"gpt-4.1-mini": 1.62, "gpt-4.1-nano": 2.46, "gpt-5-mini": 1.62, "gpt-5-nano": 2.46,
                         "o4-mini": 1.72}
_MAX_PATCHES = 1536
_IMAGE_PART_TYPES = frozenset({"image_url", "input_image"})


def _snapshot_of(model: str, table: Mapping[str, Any]) -> str | None:
    """The entry of ``table`` that ``model`` is, itself or as a dated snapshot (``gpt-4o-mini-2024-07-18``)."""
    name = model.removeprefix("ft:").split(":")[0]
    if name in table:
        return name
    base, sep, date = name.rpartition("-20")
    return base if sep and base in table and date[:2].isdigit() else None


def image_tokens(part: Mapping[str, Any], model: str) -> int | None:
    """The most input tokens one image part can cost on ``model`` by OpenAI's published rules; ``None`` for a
    model they do not cover."""
    if part.get("type") not in _IMAGE_PART_TYPES:
        return None
    image = part.get("image_url")
    detail = part.get("detail") or (image.get("detail") if isinstance(image, Mapping) else None)
    if (hit := _snapshot_of(model, _IMAGE_PATCHES)) is not None:
        return math.ceil(_MAX_PATCHES * _IMAGE_PATCHES[hit])
    if (hit := _snapshot_of(model, _IMAGE_TILES)) is not None:
        base, tile = _IMAGE_TILES[hit]
        return base if detail == "low" else base + _MAX_TILES * tile
    return None

OPENAI_BATCH_MAX_REQUESTS: Final = 50_000
OPENAI_BATCH_MAX_BYTES: Final = 200 * 1024 * 1024
"""OpenAI's batch input limits: 50,000 requests, 200 MB (https://platform.openai.com/docs/guides/batch)."""
OPENAI_BATCH_WINDOW: Final = "24h"
_OPENAI_BATCH_STATUS: Final = {
    "validating": "validating", "in_progress": "in_progress", "finalizing": "finalizing", "completed": "completed",
    "failed": "failed", "expired": "expired", "cancelling": "canceling", "cancelled": "canceled",
}
_CONTEXT_CODES = frozenset({"context_length_exceeded", "string_above_max_length"})
_FILTER_CODES = frozenset({"content_filter", "content_policy_violation", "ResponsibleAIPolicyViolation"})



# Fine-tuning job statuses -> computekit's (OpenAI's API reference, FineTuningJob.status; Azure uses the same words).
_FT_STATUS: dict[str, FineTuneStatus] = {
    "validating_files": "validating",
    "queued": "queued",
    "running": "running",
    "pausing": "running",
    "paused": "queued",
    "succeeded": "succeeded",
    "failed": "failed",
    "cancelled": "canceled",
    "canceled": "canceled",
}
# The tokenizer of each fine-tunable family (tiktoken's model table): newer families count with o200k_base.
_O200K_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt-4o")
OPENAI_MIN_EXAMPLES = 10
"""OpenAI refuses a training file with fewer than 10 examples."""
# OpenAI's documented default when n_epochs is "auto": 3 epochs, raised so that small files are seen at least 100
# times in all (at most 25 epochs), lowered so that big ones are seen at most 25,000 times (at least 1 epoch).
_TARGET_EPOCHS, _MIN_EXAMPLES_SEEN, _MAX_EXAMPLES_SEEN, _MAX_AUTO_EPOCHS = 3, 100, 25_000, 25


def _finish(reason: str | None) -> str | None:
    return _FINISH.get(reason, reason) if reason else reason


def _wire_tool_call(tc: Mapping[str, Any]) -> dict[str, Any]:
    if "function" in tc:  # already in OpenAI's shape
        return dict(tc)
    return {"id": tc["id"], "type": "function", "function": {"name": tc["name"], "arguments": tc.get("arguments", "")}}


def wire_part(part: Mapping[str, Any]) -> dict[str, Any]:
    """A computekit content part in OpenAI's shape (images as ``{"type": "image_url", "image_url": {...}}``)."""
    if part.get("type") == "image_url" and "url" in part:
        image: dict[str, Any] = {"url": part["url"]}
        if part.get("detail"):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    return dict(part)


# A message's fields that computekit shapes itself; any other field is the provider's and travels unchanged.
_MESSAGE_KEYS = frozenset({"role", "content", "name", "tool_call_id", "tool_calls", "provider_fields"})
# Fields of a response message that are not the provider's to have sent back (OpenAI's request schema for an
# assistant message has no ``annotations``, and ``audio`` goes back as its id only).
_RESPONSE_ONLY_KEYS = frozenset({"role", "content", "tool_calls", "refusal", "annotations", "audio",
                                 "function_call"})


def wire_message(m: Mapping[str, Any], provider: str | None = None) -> dict[str, Any]:
    """computekit's message shape -> OpenAI's. Plain text messages pass through untouched (the common case);
    fields computekit does not shape (a provider's ``reasoning_content`` given by hand, or kept for ``provider``
    in ``Message.provider_fields``) are sent as they are."""
    content = m.get("content")
    if isinstance(content, str) and "tool_calls" not in m and "provider_fields" not in m and len(m) <= 3:
        return m if isinstance(m, dict) else dict(m)
    out: dict[str, Any] = {"role": m["role"]}
    if isinstance(content, list):
        out["content"] = [wire_part(p) for p in content]
    else:
        out["content"] = content
    for k in ("name", "tool_call_id"):
        if m.get(k) is not None:
            out[k] = m[k]
    if m.get("tool_calls"):
        out["tool_calls"] = [_wire_tool_call(tc) for tc in m["tool_calls"]]
    kept = (m.get("provider_fields") or {}).get(provider) if provider else None
    out.update(kept or {})
    out.update({k: v for k, v in m.items() if k not in _MESSAGE_KEYS})
    return out




def wire_tool(t: Mapping[str, Any]) -> dict[str, Any]:
    """A tool in OpenAI's shape; ``{"name", "description", "parameters"}`` is accepted as shorthand. A tool
    with a ``type`` of its own (a host's server tool: ``openrouter:web_search``) passes as it is."""
    if "type" in t or "function" in t:
        return dict(t)
    return {"type": "function", "function": dict(t)}


def _tool_calls(raw: list[dict[str, Any]] | None) -> list[ToolCall]:
    if not raw:
        return []
    out = []
    for tc in raw:
        fn = tc.get("function") or {}
        out.append(ToolCall(id=tc.get("id") or "", name=fn.get("name") or "", arguments=fn.get("arguments") or ""))
    return out


class OpenAIWire(Adapter):
    """The OpenAI wire format: shared by ``openai``, ``azure`` and ``openai-compatible``."""

    include_stream_usage: ClassVar[bool] = True
    response_only_fields: ClassVar[frozenset[str]] = _RESPONSE_ONLY_KEYS
    """Fields of a response message that are not sent back with it (every other one is a provider field)."""

    def provider_fields(self, msg: Mapping[str, Any]) -> dict[str, dict[str, Any]] | None:
        """The fields of a response message (or the accumulated deltas of a streamed one) that are the
        provider's own, to be sent back unchanged, under the provider's name. ``None`` values are dropped
        (nothing to send back); an empty string is kept (DeepSeek requires its ``reasoning_content`` on tool-call
        turns, even when empty)."""
        extra = {k: v for k, v in msg.items() if k not in self.response_only_fields and v is not None}
        return {self.provider: extra} if extra else None

    # ----------------------------------------------------------------------------------------- URLs & auth

    def endpoint(self, path: str, model: str) -> str:
        """The full URL of ``path`` (``chat/completions``, ``embeddings`` ...) for ``model``."""
        return self.url(path)

    def auth_headers(self) -> dict[str, str]:
        """Headers that carry the credential (built per request; never stored or logged)."""
        if self.settings.api_key is None and not self.requires_key_for(self.provider):
            return {}
        return {"authorization": f"Bearer {self.require_key()}"}

    def requires_key_for(self, provider: str) -> bool:
        return self.defaults_for(provider)[2]

    def uses_text_endpoint(self, model: str) -> bool:
        """Whether ``model`` is served by the legacy text-completion endpoint."""
        return model.startswith(_TEXT_MODELS)

    # ----------------------------------------------------------------------------------------- complete

    def token_limit_field(self, model: str) -> str:
        """The body field that carries the output limit for ``model``: ``max_completion_tokens`` for the reasoning
        families (:data:`REASONING_FAMILIES` and the provider's ``max_completion_tokens_models``), else
        ``max_tokens``. Decided here only, for chat and streaming alike."""
        configured = self.options.max_completion_tokens_models if isinstance(
            self.options, ReasoningModelSettings) else []
        families = (*REASONING_FAMILIES, *configured)
        return "max_completion_tokens" if in_family(model, families) else "max_tokens"

    def output_limit(self, req: CompleteRequest) -> int | None:
        limit = super().output_limit(req)
        if limit is None:  # a limit passed through extra_body bounds the answer just the same
            for name in ("max_completion_tokens", "max_tokens", "max_output_tokens"):
                if isinstance(req.extra.get(name), int):
                    return int(req.extra[name])
        return limit

    def _common_body(self, req: CompleteRequest) -> dict[str, Any]:
        body: dict[str, Any] = {"model": req.model}
        if req.max_tokens is not None:
            field = "max_tokens" if req.prompt is not None else self.token_limit_field(req.model)
            body[field] = req.max_tokens
        for name in ("temperature", "top_p", "stop", "seed", "user", "service_tier"):
            v = getattr(req, name)
            if v is not None:
                body[name] = v
        return body

    # ----------------------------------------------------------------------------------------- Responses API

    def serves_responses(self) -> bool:
        """Whether this host serves the Responses API (``POST /responses``)."""
        return False

    def default_api(self, model: str) -> str:
        """The wire format a call to ``model`` uses when the call does not say (``api=``)."""
        return "chat"

    def wire_formats(self) -> tuple[str, ...]:
        return ("chat", "responses") if self.serves_responses() else ("chat",)

    def uses_responses(self, req: CompleteRequest) -> bool:
        """Whether ``req`` goes to the Responses API: asked for with ``api=``, else :meth:`default_api`.

        Raises:
            UnsupportedCapabilityError: ``api="responses"`` on a host that does not serve it (nothing was sent).
            InvalidRequestError: ``api`` is neither ``"chat"`` nor ``"responses"``.
        """
        if req.prompt is not None:
            return False
        api = req.api or self.default_api(req.model)
        if api not in ("chat", "responses"):
            raise InvalidRequestError(f"api must be 'chat' or 'responses', not {api!r}")
        if api == "responses" and not self.serves_responses():
            raise self.unsupported("responses")
        return api == "responses"

    def _tool_loop(self, req: CompleteRequest) -> int | None:
        """A Responses call with built-in tools samples again after each tool call: ``max_tool_calls`` (from
        ``extra_body``) bounds the calls; ``-1``: no built-in tools; ``None``: unbounded."""
        if req.prompt is not None or not self.uses_responses(req) or not builtin_tools(req):
            return -1
        n = req.extra.get("max_tool_calls")
        return n if isinstance(n, int) and not isinstance(n, bool) and n >= 0 else None

    def input_bound(self, req: CompleteRequest | EmbedRequest, window: int | None) -> int | None:
        if isinstance(req, CompleteRequest) and self._tool_loop(req) is None:
            return None  # each built-in tool call bills the input again, and nothing bounds how many
        if isinstance(req, CompleteRequest) and stored_context(req) and self.uses_responses(req):
            # The host prepends a stored conversation (or prompt) the request does not carry, billed as input:
            # its size is not in the request, only the model's context window bounds it.
            return None if window is None else window * self.sampling_passes(req)
        return super().input_bound(req, window)

    def sampling_passes(self, req: CompleteRequest) -> int:
        loop = self._tool_loop(req)
        return 1 + loop if loop is not None and loop > 0 else 1

    def units_bound(self, req: CompleteRequest) -> dict[str, int] | None:
        loop = self._tool_loop(req)
        if loop is None:
            return None
        return {key: loop for key in fee_tools(req)} if loop > 0 else {}

    def responses_url(self, model: str) -> str:
        """The URL of ``POST /responses`` for ``model``."""
        return self.url("responses")

    def serves_background(self) -> bool:
        return self.serves_responses()

    def build_background_get(self, response_id: str) -> HTTPRequest:
        return HTTPRequest("GET", f"{self.responses_url('')}/{path_id(response_id)}", self.headers())

    def build_background_cancel(self, response_id: str) -> HTTPRequest:
        return HTTPRequest("POST", f"{self.responses_url('')}/{path_id(response_id)}/cancel", self.headers())

    def parse_background(self, req: CompleteRequest, resp: HTTPResponse) -> BackgroundResponse:
        return parse_background(self, req, resp)

    def responses_model(self, model: str) -> str:
        """What the Responses body calls ``model`` (Azure: the deployment)."""
        return model

    def build_complete(self, req: CompleteRequest) -> HTTPRequest:
        body = self.complete_body(req)
        if self.uses_responses(req):
            return HTTPRequest("POST", self.responses_url(req.model), self.headers(), json=body, stream=req.stream)
        path = self.text_path(req.model) if req.prompt is not None else "chat/completions"
        return HTTPRequest("POST", self.endpoint(path, req.model), self.headers(), json=body, stream=req.stream)

    def complete_body(self, req: CompleteRequest) -> dict[str, Any]:
        """The JSON body ``complete()`` sends for ``req`` (built without the URL or the key: a batch line is made
        of it, checked and estimated offline)."""
        if self.uses_responses(req):
            return build_body(req, self.provider, self.responses_model(req.model),
                              reasoning=in_family(req.model, REASONING_FAMILIES))
        body = self._common_body(req)
        if req.prompt is not None:
            body["prompt"] = req.prompt
        else:
            body["messages"] = [wire_message(m, self.provider) for m in req.messages]
            if req.tools:
                body["tools"] = [wire_tool(t) for t in req.tools]
            if req.tool_choice is not None:
                body["tool_choice"] = req.tool_choice
            if req.output is not None:
                self.structured_body(req, body)
            elif req.response_format is not None:
                body["response_format"] = req.response_format
        if req.stream:
            body["stream"] = True
            if self.include_stream_usage:
                body["stream_options"] = {"include_usage": True}
        if req.extra:
            body.update(req.extra)
        return body

    def structured_mode(self, model: str) -> str:
        """How this host takes a schema: ``"strict"`` (``json_schema`` in strict mode, OpenAI's rules),
        ``"json_schema"`` (the schema, best effort) or ``"json_object"`` (JSON mode, the schema in the prompt)."""
        return "strict"

    def structured_schema(self, req: CompleteRequest) -> Any:
        out = req.output
        if out is None:
            return None
        if self.uses_responses(req) or self.structured_mode(req.model) == "strict":
            return strict_schema(out.schema, name=out.name, dialect=f"{self.provider}'s strict structured outputs")
        return out.schema

    def structured_body(self, req: CompleteRequest, body: dict[str, Any]) -> None:
        """Ask for an answer of type ``req.output`` the way this host documents it."""
        out = req.output
        assert out is not None
        mode = self.structured_mode(req.model)
        if mode == "json_object":
            body["response_format"] = {"type": "json_object"}
            body["messages"] = [{"role": "system", "content": schema_instruction(out)}, *body["messages"]]
            return
        body["response_format"] = {"type": "json_schema", "json_schema": {
            "name": out.name, "schema": self.structured_schema(req), "strict": mode == "strict"}}

    def text_path(self, model: str) -> str:
        """Path of the legacy text-completion endpoint."""
        return "completions"

    def parse_complete(self, req: CompleteRequest, resp: HTTPResponse) -> Completion:
        if self.uses_responses(req):
            return parse_response(self, req, resp)
        try:
            data = resp.json()
        except ValueError:
            raise self.malformed(resp, req.model, "body is not JSON") from None
        if not isinstance(data, dict):
            raise self.malformed(resp, req.model, "body is not a JSON object")
        if "error" in data and "choices" not in data:  # some compatible servers answer errors with 200
            raise self.map_error(HTTPResponse(carried_status(data, 400), resp.headers, resp.content, resp.url),
                                 req.model)
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise self.malformed(resp, req.model, "no choices in the response")
        choice = choices[0]
        refusal: Any = None
        if req.prompt is not None:
            text = choice.get("text") or ""
            calls: list[ToolCall] = []
            message = Message(role="assistant", content=text)
        else:
            msg = choice.get("message")
            if not isinstance(msg, dict):
                raise self.malformed(resp, req.model, "choice has no message")
            text = msg.get("content") or ""
            calls = _tool_calls(msg.get("tool_calls"))
            message = Message(role="assistant", content=text, tool_calls=calls or None,
                              provider_fields=self.provider_fields(msg))
            refusal = msg.get("refusal")
        raw_usage = data.get("usage")
        result = Completion(
            provider=self.provider,
            model=req.model,
            text=text,
            message=message,
            tool_calls=calls,
            finish_reason=_finish(choice.get("finish_reason")),
            id=data.get("id"),
            service_tier=data.get("service_tier"),
            response_model=data.get("model"),
            refusal=refusal if isinstance(refusal, str) and refusal else None,
            usage=self.usage(raw_usage),
            request_id=self.request_id(resp.headers),
            raw=data,
        )
        result._usage_reported = isinstance(raw_usage, dict)
        return result

    def stream_decoder(self, req: CompleteRequest) -> StreamDecoder:
        return ResponsesStream(self, req) if self.uses_responses(req) else _ChatStream(self, req)

    # ----------------------------------------------------------------------------------------- embed

    def build_embed(self, req: EmbedRequest) -> HTTPRequest:
        return HTTPRequest("POST", self.endpoint("embeddings", req.model), self.headers(), json=self.embed_body(req))

    def embed_body(self, req: EmbedRequest) -> dict[str, Any]:
        """The JSON body ``embed()`` sends for ``req`` (without the URL or the key, like :meth:`complete_body`)."""
        body: dict[str, Any] = {"model": req.model, "input": req.inputs, "encoding_format": "float"}
        if req.dimensions is not None:
            body["dimensions"] = req.dimensions
        body.update(req.extra)
        return body

    def parse_embed(self, req: EmbedRequest, resp: HTTPResponse) -> Embeddings:
        try:
            data = resp.json()
            items = sorted(data["data"], key=lambda d: d.get("index", 0))
            vectors = [_vector(d["embedding"]) for d in items]
        except (ValueError, KeyError, TypeError, AttributeError):
            raise self.malformed(resp, req.model, "not an embeddings list") from None
        raw_usage = data.get("usage")
        result = Embeddings(
            provider=self.provider,
            model=req.model,
            vectors=vectors,
            usage=self.usage(raw_usage),
            request_id=self.request_id(resp.headers),
            raw=data,
        )
        result._usage_reported = isinstance(raw_usage, dict)
        return result

    # ----------------------------------------------------------------------------------------- usage & price

    def usage(self, raw: Mapping[str, Any] | None) -> Usage:
        if not raw:
            return Usage()
        pd = raw.get("prompt_tokens_details") or {}
        cd = raw.get("completion_tokens_details") or {}
        cached = pd.get("cached_tokens")
        if cached is None:
            cached = raw.get("prompt_cache_hit_tokens")  # DeepSeek's older field
        return Usage(
            input_tokens=raw.get("prompt_tokens") or 0,
            output_tokens=raw.get("completion_tokens") or 0,
            cached_input_tokens=cached or 0,
            cache_write_tokens=pd.get("cache_write_tokens") or 0,  # billed by newer models (OpenAPI 2.3)
            reasoning_tokens=cd.get("reasoning_tokens") or 0,
            input_audio_tokens=pd.get("audio_tokens") or 0,
            output_audio_tokens=cd.get("audio_tokens") or 0,
        )

    def price_ref(self, model: str, result: Result | None = None) -> PriceRef:
        ctx: tuple[tuple[str, str], ...] = ()
        if isinstance(result, Completion) and result.service_tier and result.service_tier != "default":
            ctx = (("service_tier", result.service_tier),)
        priced_model = (result.raw or {}).get("model") if result is not None and isinstance(result.raw, dict) else None
        return PriceRef(
            provider=self.provider,
            model=priced_model or model,
            table_provider=self.table_provider,
            context=ctx,
        )

    # ----------------------------------------------------------------------------------------- fine-tuning
    # Files API (multipart upload) + fine_tuning/jobs: OpenAI's and Azure OpenAI's shape (Azure changes the URL).

    def finetune_url(self, path: str, query: str = "") -> str:
        """The URL of a fine-tuning or files endpoint (``query`` without its ``?``)."""
        return self.url(path) + (f"?{query}" if query else "")

    def finetune_spec(self, model: str) -> FineTuneSpec:
        family = model.removeprefix("ft:")
        encoding = "o200k_base" if family.startswith(_O200K_PREFIXES) else "cl100k_base"
        return FineTuneSpec(data="chat", methods=("supervised", "dpo"), encoding=encoding,
                            min_examples=OPENAI_MIN_EXAMPLES)

    def default_epochs(self, model: str, examples: int) -> int | None:
        if examples <= 0:
            return None
        if examples * _TARGET_EPOCHS < _MIN_EXAMPLES_SEEN:
            return min(_MAX_AUTO_EPOCHS, _MIN_EXAMPLES_SEEN // examples)
        if examples * _TARGET_EPOCHS > _MAX_EXAMPLES_SEEN:
            return max(1, _MAX_EXAMPLES_SEEN // examples)
        return _TARGET_EPOCHS

    def build_uploads(self, req: FineTuneRequest, file: TrainingFile, purpose: str) -> list[HTTPRequest]:
        body, ctype = multipart({"purpose": "fine-tune"}, "file", file)
        headers = {k: v for k, v in self.headers().items() if k != "content-type"}
        headers["content-type"] = ctype
        return [HTTPRequest("POST", self.finetune_url("files"), headers, content=body)]

    def parse_upload(self, req: FineTuneRequest, file: TrainingFile, resp: HTTPResponse) -> str:
        data = self.json_object(resp, req.model)
        if not isinstance(data.get("id"), str):
            raise self.malformed(resp, req.model, "the uploaded file has no id")
        return str(data["id"])

    def build_finetune(self, req: FineTuneRequest) -> HTTPRequest:
        body: dict[str, Any] = {"model": req.model, "training_file": req.training.ref}
        if req.validation is not None:
            body["validation_file"] = req.validation.ref
        if req.suffix:
            body["suffix"] = req.suffix
        hyper = dict(req.hyperparameters)
        if req.epochs is not None:
            hyper["n_epochs"] = req.epochs
        if hyper or req.method != "supervised":  # only then: a bare job is what OpenAI's own SDKs send
            body["method"] = {"type": req.method, req.method: {"hyperparameters": hyper}}
        body.update(req.extra)
        return HTTPRequest("POST", self.finetune_url("fine_tuning/jobs"), self.headers(), json=body)

    def fine_tuned_id(self, name: str) -> str:
        """A fine-tuned model's name -> the computekit model id that calls it."""
        return f"{self.provider}:{name}"

    def parse_finetune(self, model: str, resp: HTTPResponse) -> FineTuneJob:
        data = self.json_object(resp, model)
        if data.get("error") and "id" not in data:  # an error object answered with 200
            raise self.map_error(HTTPResponse(400, resp.headers, resp.content, resp.url), model)
        status = _FT_STATUS.get(str(data.get("status")))
        if not isinstance(data.get("id"), str) or status is None:
            raise self.malformed(resp, model, f"not a fine-tuning job (status {data.get('status')!r})")
        method = obj(data.get("method"))
        kind = method.get("type") or "supervised"
        hyper = ((method.get(kind) or {}).get("hyperparameters") or data.get("hyperparameters") or {})
        epochs = hyper.get("n_epochs")
        error = data.get("error") or None  # OpenAI sends {} when there is none
        metrics = obj(data.get("usage_metrics"))
        return FineTuneJob(
            id=data["id"],
            provider=self.provider,
            base_model=str(data.get("model") or model),
            status=status,
            fine_tuned_model=self.fine_tuned_id(data["fine_tuned_model"]) if data.get("fine_tuned_model") else None,
            # a boolean is no count (True would be billed as 1 token); other bad counts are refused by the pricing
            trained_tokens=data["trained_tokens"] if isinstance(data.get("trained_tokens"), int)
            and not isinstance(data["trained_tokens"], bool) else None,
            epochs=epochs if isinstance(epochs, int) else None,
            hyperparameters=dict(hyper),
            training_file=data.get("training_file"),
            validation_file=data.get("validation_file"),
            error=error,
            metrics=dict(metrics or {}),
            created_at=unix_time(data.get("created_at")),
            finished_at=unix_time(data.get("finished_at")),
            request_id=self.request_id(resp.headers),
            raw=data,
        )

    def build_finetune_get(self, job: FineTuneJob) -> HTTPRequest:
        return HTTPRequest("GET", self.finetune_url(f"fine_tuning/jobs/{job.id}"), self.headers())

    def build_finetune_cancel(self, job: FineTuneJob) -> HTTPRequest:
        return HTTPRequest("POST", self.finetune_url(f"fine_tuning/jobs/{job.id}/cancel"), self.headers())

    def build_finetune_events(self, job: FineTuneJob, limit: int) -> HTTPRequest | None:
        return HTTPRequest("GET", self.finetune_url(f"fine_tuning/jobs/{job.id}/events", f"limit={limit}"),
                           self.headers())

    def parse_finetune_events(self, job: FineTuneJob, resp: HTTPResponse | None) -> list[FineTuneEvent]:
        if resp is None:
            return []
        data = self.json_object(resp, job.base_model)
        items = data.get("data")
        if not isinstance(items, list):
            raise self.malformed(resp, job.base_model, "not an event list")
        out = [
            FineTuneEvent(id=e.get("id"), created_at=unix_time(e.get("created_at")), level=e.get("level"),
                          message=str(e.get("message") or ""), type=e.get("type"),
                          data=obj(e.get("data")))
            for e in items if isinstance(e, dict)
        ]
        return out[::-1]  # OpenAI lists the newest first

    def build_finetune_checkpoints(self, job: FineTuneJob) -> HTTPRequest | None:
        return HTTPRequest("GET", self.finetune_url(f"fine_tuning/jobs/{job.id}/checkpoints"), self.headers())

    def parse_finetune_checkpoints(self, job: FineTuneJob, resp: HTTPResponse | None) -> list[FineTuneCheckpoint]:
        if resp is None:
            return []
        data = self.json_object(resp, job.base_model)
        items = data.get("data")
        if not isinstance(items, list):
            raise self.malformed(resp, job.base_model, "not a checkpoint list")
        out = [
            FineTuneCheckpoint(
                id=str(c.get("id")), step=c.get("step_number"),
                model=self.fine_tuned_id(c["fine_tuned_model_checkpoint"])
                if c.get("fine_tuned_model_checkpoint") else None,
                metrics=obj(c.get("metrics")),
                created_at=unix_time(c.get("created_at")),
            )
            for c in items if isinstance(c, dict)
        ]
        return sorted(out, key=lambda c: c.step or 0)

    def finetune_billing(self, job: FineTuneJob) -> FineTuneBilling:
        return FineTuneBilling(trained_tokens=job.trained_tokens)

    # ----------------------------------------------------------------------------------------- batches
    # The Files API (purpose=batch) + /batches: OpenAI's and Azure OpenAI's shape (Azure changes the URLs).

    batch_url_prefix: ClassVar[str] = "/v1/"
    """How a batch line names its endpoint (``/v1/chat/completions``)."""

    def batch_spec(self, model: str) -> BatchSpec:
        if not self.capabilities.batch:
            raise self.unsupported("batch")
        return BatchSpec(max_requests=OPENAI_BATCH_MAX_REQUESTS, max_bytes=OPENAI_BATCH_MAX_BYTES)

    def batch_body(self, req: CompleteRequest | EmbedRequest) -> tuple[str, dict[str, Any]]:
        """The endpoint path and body of one batched request: what ``complete()`` / ``embed()`` would send."""
        if isinstance(req, EmbedRequest):
            return "embeddings", self.embed_body(req)
        if req.stream:
            raise InvalidRequestError(f"{self.provider}: a batched request cannot stream")
        if req.prompt is not None:
            path = self.text_path(req.model)
        else:
            path = "responses" if self.uses_responses(req) else "chat/completions"
        return path, self.complete_body(req)

    def batch_line(self, custom_id: str, req: CompleteRequest | EmbedRequest) -> dict[str, Any]:
        self.batch_spec(req.model)
        path, body = self.batch_body(req)
        return {"custom_id": custom_id, "method": "POST", "url": self.batch_url_prefix + path, "body": body}

    def build_batch_upload(self, model: str, content: bytes) -> HTTPRequest:
        body, ctype = multipart({"purpose": "batch"}, "file", TrainingFile("batch.jsonl", content))
        headers = {k: v for k, v in self.headers().items() if k != "content-type"}
        headers["content-type"] = ctype
        return HTTPRequest("POST", self.finetune_url("files"), headers, content=body)

    def parse_batch_upload(self, model: str, resp: HTTPResponse) -> str:
        data = self.json_object(resp, model)
        if not isinstance(data.get("id"), str):
            raise self.malformed(resp, model, "the uploaded file has no id")
        return str(data["id"])

    def build_batch_create(self, model: str, kind: str, file_ref: str | None, lines: Sequence[Mapping[str, Any]],
                           metadata: Mapping[str, str]) -> HTTPRequest:
        # The lines name their endpoint (chat, embeddings, or the legacy completions a text model is served by).
        endpoint = lines[0]["url"] if lines else self.batch_url_prefix + (
            "embeddings" if kind == "embed" else "chat/completions")
        body: dict[str, Any] = {"input_file_id": file_ref, "endpoint": endpoint,
                                "completion_window": OPENAI_BATCH_WINDOW}
        if metadata:
            body["metadata"] = dict(metadata)
        return HTTPRequest("POST", self.finetune_url("batches"), self.headers(), json=body)

    def parse_batch(self, model: str, resp: HTTPResponse) -> BatchState:
        data = self.json_object(resp, model)
        status = data.get("status")
        if not isinstance(data.get("id"), str) or status not in _OPENAI_BATCH_STATUS:
            raise self.malformed(resp, model, "not a batch object")
        self.check_batch_ids(resp, model, {k: data.get(k) for k in ("id", "output_file_id", "error_file_id")})
        counts = obj(data.get("request_counts"))
        endpoint = str(data.get("endpoint") or "")
        ended = next((data[k] for k in ("completed_at", "failed_at", "expired_at", "cancelled_at") if data.get(k)),
                     None)
        return BatchState(
            # attached by id (model unknown): the model the batch object names
            id=data["id"], model=model or str(data.get("model") or ""), status=_OPENAI_BATCH_STATUS[status],
            provider_status=status,
            total=count(counts.get("total")), completed=count(counts.get("completed")) or 0,
            failed=count(counts.get("failed")) or 0,
            output_ref=data.get("output_file_id"), error_ref=data.get("error_file_id"),
            kind="embed" if endpoint.endswith("embeddings") else "complete",
            # the endpoint says how its answers are shaped (not the model's default api)
            api="responses" if endpoint.endswith("/responses") else "chat" if endpoint.endswith("/chat/completions")
            else None,
            created_at=unix_time(data.get("created_at")), ended_at=unix_time(ended), raw=data,
        )

    def build_batch_get(self, state: BatchState) -> HTTPRequest:
        return HTTPRequest("GET", self.finetune_url(f"batches/{state.id}"), self.headers())

    def build_batch_cancel(self, state: BatchState) -> HTTPRequest:
        return HTTPRequest("POST", self.finetune_url(f"batches/{state.id}/cancel"), self.headers())

    def build_batch_results(self, state: BatchState) -> list[HTTPRequest]:
        return [HTTPRequest("GET", self.finetune_url(f"files/{ref}/content"), self.headers(), stream=True)
                for ref in (state.output_ref, state.error_ref) if ref]

    def batch_answer(self, state: BatchState, custom_id: str, body: Any, request_id: str | None = None) -> BatchItem:
        endpoint = str(state.raw.get("endpoint") or "") if isinstance(state.raw, dict) else ""
        if state.kind == "complete" and endpoint.endswith("/completions") \
                and not endpoint.endswith("/chat/completions"):
            # A text model's legacy completions: its answers carry choices[].text, not a message.
            resp = self.batch_response(200, body, request_id)
            result = self.parse_complete(CompleteRequest(model=state.model, messages=[], prompt=""), resp)
            return BatchItem(custom_id=custom_id, result=result, billed=True)
        return super().batch_answer(state, custom_id, body, request_id)

    def parse_batch_line(self, state: BatchState, line: bytes | Mapping[str, Any]) -> BatchItem:
        data = self.batch_record(state, line)
        custom_id = data.get("custom_id")
        if not isinstance(custom_id, str):
            raise self.malformed(self.batch_response(200, data), state.model, "a batch result line has no custom_id")
        response = data.get("response")
        if isinstance(response, dict) and isinstance(response.get("status_code"), int):
            status, body, rid = response["status_code"], response.get("body"), response.get("request_id")
            if 200 <= status < 300:
                return self.batch_answer(state, custom_id, body, rid)
            return self.batch_failure(state, custom_id, status, body, rid)
        error = data.get("error")
        if isinstance(error, dict):  # never ran: expired, or the batch was canceled first
            return self.batch_failure(state, custom_id, None, {"error": error})
        raise self.malformed(self.batch_response(200, data), state.model,
                             f"batch result {custom_id!r} has neither a response nor an error")

    # ----------------------------------------------------------------------------------------- errors

    def classify_error(self, status: int, body: Any) -> type[APIStatusError] | None:
        err = body.get("error") if isinstance(body, dict) else None
        if not isinstance(err, dict):
            return None
        code = err.get("code") or err.get("type") or ""
        if code in _CONTEXT_CODES:
            return ContextWindowExceededError
        if code in _FILTER_CODES:
            return ContentFilteredError
        if err.get("type") == "overloaded_error":
            return OverloadedError
        return None


# Keys of a streamed list item that name it rather than carry text (OpenRouter's ``reasoning_details``).
_ITEM_LABELS = frozenset({"type", "format", "id", "index"})


def _merge_items(have: list[Any], new: list[Any]) -> list[Any]:
    """Streamed list items joined into whole ones: an item whose ``index`` is already there extends it (its
    text pieces appended), any other is added."""
    out = list(have)
    for item in new:
        at = next((i for i, h in enumerate(out) if isinstance(item, dict) and isinstance(h, dict)
                   and "index" in item and h.get("index") == item["index"]), None)
        if at is None:
            out.append(dict(item) if isinstance(item, dict) else item)
            continue
        merged = dict(out[at])
        for key, value in item.items():
            if isinstance(value, str) and isinstance(merged.get(key), str) and key not in _ITEM_LABELS:
                merged[key] += value
            elif value is not None:
                merged[key] = value
        out[at] = merged
    return out


class _ChatStream(StreamDecoder):
    """Chat (and text) completion chunks -> Chunk, accumulating the final Completion."""

    def __init__(self, adapter: OpenAIWire, req: CompleteRequest) -> None:
        self.adapter = adapter
        self.req = req
        self.text: list[str] = []
        self.calls: dict[int, dict[str, str]] = {}
        self.finish: str | None = None
        self.raw_usage: dict[str, Any] | None = None
        self.meta: dict[str, Any] = {}
        self.fields: dict[str, Any] = {}
        self.refusal: list[str] = []
        self.done = False

    def _keep_fields(self, delta: Mapping[str, Any]) -> None:
        """Accumulate a delta's provider fields as the message will hold them: text joined, lists extended."""
        for k, v in delta.items():
            if k in self.adapter.response_only_fields or v is None:
                continue
            have = self.fields.get(k)
            if isinstance(v, str) and isinstance(have, str):
                self.fields[k] = have + v
            elif isinstance(v, list):
                self.fields[k] = _merge_items(have if isinstance(have, list) else [], v)
            else:
                self.fields[k] = v

    def feed(self, event: SSEEvent) -> list[Chunk]:
        if event.data == "[DONE]":
            self.done = True
            return []
        try:
            data = json.loads(event.data)
        except ValueError:
            raise self.adapter.malformed(
                HTTPResponse(200, {}, event.data.encode()), self.req.model, "stream event is not JSON"
            ) from None
        if not isinstance(data, dict):
            raise self.adapter.malformed(HTTPResponse(200, {}, event.data.encode()), self.req.model, "bad event")
        if data.get("error"):  # typed by the status or type it carries (a 400 mid-stream is a bad request)
            if isinstance(data.get("usage"), dict):
                self.raw_usage = data["usage"]  # what the failed attempt is billed (OpenRouter reports it here)
            raise self.adapter.map_error(HTTPResponse(carried_status(data, 500), {}, event.data.encode()),
                                         self.req.model)
        for k in ("id", "model", "service_tier"):
            if data.get(k):
                self.meta[k] = data[k]
        chunk = Chunk(raw=data)
        if isinstance(data.get("usage"), dict):
            self.raw_usage = data["usage"]
            chunk.usage = self.adapter.usage(self.raw_usage)
        choices = data.get("choices") or []
        if choices:
            choice = choices[0]
            delta = choice.get("delta") or {}
            piece = delta.get("content") if "delta" in choice else choice.get("text")
            if len(delta) > 1 or "content" not in delta:
                self._keep_fields(delta)
            if isinstance(delta.get("refusal"), str):
                self.refusal.append(delta["refusal"])
            if piece:
                self.text.append(piece)
                chunk.text = piece
            for tc in delta.get("tool_calls") or []:
                idx = tc.get("index", 0)
                acc = self.calls.setdefault(idx, {"id": "", "name": "", "arguments": ""})
                fn = tc.get("function") or {}
                if tc.get("id"):
                    acc["id"] = tc["id"]
                if fn.get("name"):
                    acc["name"] += fn["name"]
                if fn.get("arguments"):
                    acc["arguments"] += fn["arguments"]
                chunk.tool_calls.append({"index": idx, "id": tc.get("id"), "name": fn.get("name"),
                                         "arguments": fn.get("arguments")})
            if choice.get("finish_reason"):
                self.finish = _finish(choice["finish_reason"])
                chunk.finish_reason = self.finish
        return [chunk]

    def result(self) -> Completion:
        text = "".join(self.text)
        calls = [ToolCall(**self.calls[i]) for i in sorted(self.calls)]
        raw = {**self.meta, "usage": self.raw_usage}
        result = Completion(
            provider=self.adapter.provider,
            model=self.req.model,
            text=text,
            message=Message(role="assistant", content=text, tool_calls=calls or None,
                            provider_fields=self.adapter.provider_fields(self.fields)),
            tool_calls=calls,
            finish_reason=self.finish,
            id=self.meta.get("id"),
            service_tier=self.meta.get("service_tier"),
            response_model=self.meta.get("model"),
            refusal="".join(self.refusal) or None,
            usage=self.adapter.usage(self.raw_usage),
            raw=raw,
        )
        result._usage_reported = self.raw_usage is not None
        return result


class ReasoningModelSettings(AdapterSettings):
    """The key OpenAI's and Azure OpenAI's settings share: which further model families take
    ``max_completion_tokens``."""

    max_completion_tokens_models: list[str] = Field(
        default_factory=list,
        description="Model families (name prefixes, e.g. 'o5') whose output limit is sent as max_completion_tokens "
        "instead of max_tokens, beyond the built-in reasoning families (o1, o3, o4, gpt-5, codex-mini).",
    )


class ResponsesSettings(ReasoningModelSettings):
    """The keys OpenAI's and Azure OpenAI's settings share: further reasoning families, and which wire format
    ``complete()`` and ``stream()`` use."""

    api: Literal["chat", "responses"] = Field(
        "chat", description="The wire format of complete() and stream(): 'chat' (POST /chat/completions) or "
        "'responses' (POST /responses). A call's api= wins; models served only on the Responses API always use it.",
    )
    responses_models: list[str] = Field(
        default_factory=list,
        description="Model families (name prefixes) served only on the Responses API, beyond the built-in list "
        "(o1-pro, o3-pro, deep research, computer use, codex, gpt-5.x pro and codex).",
    )


_responses_only = functools.lru_cache(maxsize=1024)(responses_only)
"""A pure test of a model name, asked twice per call (building the request and parsing its answer): cached."""


def configured_api(options: ResponsesSettings, model: str) -> str:
    """The wire format of a call to ``model`` that does not say: the Responses API for the models served only
    there, else the provider's ``api`` setting."""
    if _responses_only(model) or (options.responses_models and in_family(model, options.responses_models)):
        return "responses"
    return options.api


class OpenAISettings(ResponsesSettings):
    """``[providers.openai]``: the organization and project a call is billed to, and further reasoning families."""

    organization: str | None = Field(None, description="Organization id, sent as the openai-organization header.")
    project: str | None = Field(None, description="Project id, sent as the openai-project header.")


class OpenAIAdapter(OpenAIWire):
    """OpenAI's own API (``openai:`` models). Keys: ``OPENAI_API_KEY``."""

    name = "openai"
    capabilities = Capabilities(
        complete=True, stream=True, tools=True, json_mode=True, embed=True, text_completion=True, finetune=True,
        batch=True,
    )
    key_env_vars = ("OPENAI_API_KEY",)
    default_base_url = "https://api.openai.com/v1"
    base_url_env = "OPENAI_BASE_URL"  # openai-python: the full base, /v1 included
    table_provider = "openai"
    docs_url = "https://platform.openai.com/docs/api-reference"
    settings_model = OpenAISettings
    options: OpenAISettings

    def media_tokens(self, part: Mapping[str, Any], model: str) -> int | None:
        return image_tokens(part, model)

    def serves_responses(self) -> bool:
        return True

    def default_api(self, model: str) -> str:
        return configured_api(self.options, model)

    def headers(self) -> dict[str, str]:
        h = super().headers()
        if self.options.organization:
            h["openai-organization"] = self.options.organization
        if self.options.project:
            h["openai-project"] = self.options.project
        return h


def to_sdk(result: Completion | Embeddings) -> Any:
    """The official SDK's typed object for a result's ``raw`` body (imports ``openai`` on first call).

    ``Completion`` -> ``openai.types.chat.ChatCompletion`` (``openai.types.responses.Response`` for a call made
    on the Responses API), ``Embeddings`` -> ``openai.types.CreateEmbeddingResponse``. Streamed chat completions
    have no single response body to convert.

    Raises:
        ModuleNotFoundError: ``openai`` is not installed (``pip install 'computekit[openai]'``).
        ValueError: The result has no response body (a streamed completion).
    """
    openai = require("openai", "openai", "openai.to_sdk()")
    if not isinstance(result.raw, Mapping):
        raise ValueError("this result has no single response body to convert (a streamed completion?)")
    if isinstance(result, Embeddings):
        return openai.types.CreateEmbeddingResponse.model_validate(result.raw)
    if result.raw.get("object") == "response":
        return openai.types.responses.Response.model_validate(result.raw)
    return openai.types.chat.ChatCompletion.model_validate(result.raw)


def _vector(embedding: Any) -> list[float]:
    """An embedding as a list of floats: as sent, or (``encoding_format="base64"``, what the openai SDK asks for
    by default) the base64 of its little-endian float32s.

    Raises:
        ValueError: A text that is not the base64 of whole float32s.
    """
    if not isinstance(embedding, str):
        return list(embedding)
    raw = base64.b64decode(embedding, validate=True)  # its binascii.Error is a ValueError
    if len(raw) % 4:
        raise ValueError("a base64 embedding that is not a whole number of float32s")
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))
