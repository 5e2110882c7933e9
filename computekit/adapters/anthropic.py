"""Anthropic: the Messages API (text, tool use, extended thinking, prompt caching, streaming).

Wire handling is written here, against Anthropic's documented JSON and SSE formats, instead of going through the
official ``anthropic`` SDK:

- the adapter contract is sans-IO (build an :class:`HTTPRequest`, parse an :class:`HTTPResponse` or SSE events),
  and computekit's own transports do the I/O, the retries (with the SDK's retries off there would be nothing left
  for the SDK to do but JSON shaping) and the streaming;
- importing the ``anthropic`` SDK costs far more than this module (it pulls in its pydantic models for the
  whole API surface), and "fast to import, cheap per call" is a design principle;
- cassettes are recorded and replayed by vcrpy on computekit's own transports, the same way for every
  provider, so no SDK-specific recording set-up is needed (and no second HTTP stack is patched);
- the wire handling is kept honest by the real recordings in ``shared/conformance/anthropic`` and by validating
  the authored cassettes against Anthropic's OpenAPI description.

Translations (computekit's shape -> Anthropic's):

- ``system`` / ``developer`` messages move to the top-level ``system`` field;
- tools in OpenAI's shape (``{"type": "function", "function": {...}}``) or computekit's shorthand
  (``{"name", "description", "parameters"}``) become ``{"name", "description", "input_schema"}``;
  Anthropic-native tools (``input_schema``, or server tools with their own ``type``) pass unchanged;
- an assistant message with ``tool_calls`` becomes ``text`` + ``tool_use`` blocks, and consecutive ``tool``
  messages (``tool_call_id`` + content) become one ``user`` message of ``tool_result`` blocks;
- ``max_tokens`` is required by Anthropic: when the call does not give one, :data:`DEFAULT_MAX_TOKENS` is sent
  (raised above an extended-thinking ``budget_tokens`` when one is set).

Usage: Anthropic's ``input_tokens`` **excludes** ``cache_creation_input_tokens`` and ``cache_read_input_tokens``;
computekit's :class:`~computekit.Usage` counts all input, so ``input_tokens = input + cache_creation + cache_read``,
``cached_input_tokens = cache_read`` and ``cache_write_tokens = cache_creation``. Thinking tokens are billed as
output and are already in ``output_tokens``; where Anthropic reports their share
(``output_tokens_details.thinking_tokens``) it is ``reasoning_tokens``, else that stays 0. Server-side web searches
are carried as ``usage.units["web_searches"]`` (priced per thousand by genai-prices, a cost line of their own).

Passes billed outside the top-level counts are listed in ``usage.iterations``: compaction (summarising a long
conversation, at the answering model's rates) and advisor turns (at the advisor model's rates). ``Usage`` adds
them in, and :meth:`AnthropicAdapter.billed_parts` prices each kind at its own model's rates, on lines of its own
(``compaction input``, ``advisor output`` ...).

Structured output: ``response_format=`` a type is sent as ``output_config.format`` (a JSON schema, every object
closed, keywords Anthropic's structured outputs do not take dropped) to the models that support it (Claude 4.5 and
later, Opus 4.1, and the families in the ``structured_output_models`` setting); other models are made to call one
tool (``tool_choice`` forced) whose input schema is the type's, and the tool's input becomes the answer's text. A
``refusal`` stop reason sets ``Completion.refusal``. The dict forms of ``response_format`` are refused before
anything is sent (the Messages API has no JSON mode).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Final

from pydantic import Field

from .._exceptions import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ContextWindowExceededError,
    InvalidRequestError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    ProviderError,
    RateLimitError,
    ServerError,
)
from .._extras import require
from .._structured import (
    FORCED_TOOL_NAME,
    STRICT_UNSUPPORTED,
    OutputType,
    forced_tool_answer,
    recursive_def,
    strict_schema,
)
from .._types import Chunk, Completion, Message, Result, ToolCall, Usage
from ..pricing import PriceRef
from ._base import (
    Adapter,
    AdapterSettings,
    BatchItem,
    BatchSpec,
    BatchState,
    BilledPart,
    Capabilities,
    CompleteRequest,
    EmbedRequest,
    HTTPRequest,
    HTTPResponse,
    SSEEvent,
    StreamDecoder,
    carried_status,
    count,
    obj,
    unix_time,
)

__all__ = ["ANTHROPIC_VERSION", "DEFAULT_MAX_TOKENS", "AnthropicAdapter", "AnthropicSettings", "to_sdk"]

DEFAULT_MAX_TOKENS: Final = 4096
"""``max_tokens`` sent when the call gives none (Anthropic requires it; every current model allows at least this)."""

ANTHROPIC_BATCH_MAX_REQUESTS: Final = 100_000
ANTHROPIC_BATCH_MAX_BYTES: Final = 256 * 1024 * 1024
"""Message Batches limits: 100,000 requests or 256 MB, whichever is reached first
(https://docs.anthropic.com/en/docs/build-with-claude/batch-processing)."""

_CUSTOM_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""A Message Batches custom_id (MessageBatchIndividualRequestParams.custom_id)."""

ANTHROPIC_VERSION: Final = "2023-06-01"
"""The ``anthropic-version`` header (the Messages API's only version); ``api_version`` in settings overrides it."""

_FINISH: Final = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

# Anthropic's error types -> computekit's error classes (https://docs.anthropic.com/en/api/errors).
_ERROR_TYPES: Final[dict[str, type[APIStatusError]]] = {
    "invalid_request_error": BadRequestError,
    "request_too_large": BadRequestError,
    "authentication_error": AuthenticationError,
    "permission_error": PermissionDeniedError,
    "not_found_error": NotFoundError,
    "rate_limit_error": RateLimitError,
    "api_error": ServerError,
    "timeout_error": ServerError,
    "overloaded_error": OverloadedError,
}

_CONTEXT_PHRASES: Final = ("prompt is too long", "input is too long", "context window", "exceeds the context")

_SYSTEM_ROLES: Final = frozenset({"system", "developer"})

# Budgets' worst case, from Anthropic's published rules:
# - an image costs about width x height / 750 tokens (one visual token per 28x28 patch), and one larger than the
#   model's native resolution is scaled down first (docs.anthropic.com/en/docs/build-with-claude/vision): a long
#   edge of 1568px up to the 4.6 models, 2576px on Opus 4.7. A square image at that edge is the most an image can
#   cost; a model not listed (a newer one) counts its context window instead.
def _image_ceiling(edge: int) -> int:
    return max(math.ceil(edge * edge / 750), math.ceil(edge / 28) ** 2)


_IMAGE_EDGES: Final = (
    (("claude-3", "claude-sonnet-4-0", "claude-sonnet-4-2025", "claude-sonnet-4-5", "claude-sonnet-4-6",
      "claude-opus-4-0", "claude-opus-4-2025", "claude-opus-4-1", "claude-opus-4-5", "claude-opus-4-6",
      "claude-haiku-4-5"), 1568),
    (("claude-opus-4-7",), 2576),
)
IMAGE_MAX_TOKENS: Final = _image_ceiling(1568)
"""The most one image can cost on the models whose native resolution is 1568px on the long edge."""
# - tools add a tool-use system prompt: 530 tokens is the largest in the published table (Claude 3 Opus, auto)
#   (docs.anthropic.com/en/docs/agents-and-tools/tool-use/overview#pricing);
TOOL_PROMPT_MAX_TOKENS: Final = 530
# - with server tools the server samples again after each tool result, until it answers or pauses its loop
#   (stop_reason "pause_turn") after 10 iterations; each iteration bills the input again, and a compaction edit
#   adds a pass of its own.
SERVER_LOOP_MAX_ITERATIONS: Final = 10

# The fields of Anthropic's ``Tool`` besides its name, description and schema (the API reference's Tool object):
# kept when a tool in OpenAI's shape or computekit's shorthand is converted.
_TOOL_FIELDS: Final = ("strict", "cache_control", "eager_input_streaming", "allowed_callers", "defer_loading",
                       "input_examples")


def _finish(reason: str | None) -> str | None:
    return _FINISH.get(reason, reason) if reason else reason


# Keywords Anthropic's structured outputs refuse (its structured-outputs guide, "JSON Schema limitations"): numeric
# and length bounds among them. The answer is still validated against the full type, so nothing is lost.
_STRUCTURED_UNSUPPORTED: Final = STRICT_UNSUPPORTED | frozenset({
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minItems", "maxItems",
})
_STRUCTURED_FAMILY = re.compile(r"claude-(?:opus|sonnet|haiku)-(\d+)-(\d{1,2})(?:\D|$)")
_STRUCTURED_SINCE: Final = (4, 5)  # Claude 4.5 models onward take output_config.format; and Opus 4.1
_STRUCTURED_ALSO: Final = ("claude-opus-4-1",)


def _structured_native(model: str) -> bool:
    name = model.rsplit("/", 1)[-1]
    if any(also in name for also in _STRUCTURED_ALSO):
        return True
    m = _STRUCTURED_FAMILY.search(name)
    return m is not None and (int(m.group(1)), int(m.group(2))) >= _STRUCTURED_SINCE


def _typed_answer(req: CompleteRequest, result: Completion, stop_reason: Any) -> Completion:
    """With a typed ``response_format``: the forced tool's input as the answer's text (the call is not the
    application's to run), and a refusal noted."""
    if req.output is None:
        return result
    if stop_reason == "refusal":
        result.refusal = result.text or "the model refused (stop reason: refusal)"
    return forced_tool_answer(result)


# --------------------------------------------------------------------------------------------- request side


def _image_block(url: str) -> dict[str, Any]:
    if url.startswith("data:"):
        head, _, data = url.partition(",")
        media_type = head[5:].split(";")[0] or "image/png"
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _wire_part(part: Any) -> Any:
    if isinstance(part, str):
        return {"type": "text", "text": part}
    if not isinstance(part, Mapping):
        return part
    if part.get("type") == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, Mapping) else (image if isinstance(image, str) else part.get("url"))
        if isinstance(url, str):
            return _image_block(url)
    return dict(part)  # text parts and Anthropic-native blocks (cache_control, documents ...) pass as they are


def _wire_content(content: Any) -> Any:
    if content is None:
        return ""
    if isinstance(content, list):
        return [_wire_part(p) for p in content]
    return content


def _tool_use_block(tc: Mapping[str, Any]) -> dict[str, Any]:
    fn = tc.get("function")
    if isinstance(fn, Mapping):  # OpenAI's shape
        name, arguments = fn.get("name", ""), fn.get("arguments", "")
    else:
        name, arguments = tc.get("name", ""), tc.get("arguments", "")
    if isinstance(arguments, str):
        try:
            args = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            raise InvalidRequestError(
                f"tool call {tc.get('id')!r} has arguments that are not JSON; Anthropic needs a JSON object"
            ) from None
    else:
        args = arguments
    return {"type": "tool_use", "id": tc.get("id", ""), "name": name, "input": args}


def _assistant_message(m: Mapping[str, Any], provider: str | None) -> dict[str, Any]:
    kept = ((m.get("provider_fields") or {}).get(provider) or {}).get("content") if provider else None
    if isinstance(kept, list) and kept:  # the answer's own blocks: thinking, server tools ... sent back unchanged
        return {"role": "assistant", "content": kept}
    content = m.get("content")
    calls = m.get("tool_calls")
    if not calls:
        return {"role": "assistant", "content": _wire_content(content)}
    blocks: list[Any] = []
    if isinstance(content, list):
        blocks.extend(_wire_part(p) for p in content)
    elif content:
        blocks.append({"type": "text", "text": content})
    blocks.extend(_tool_use_block(tc) for tc in calls)
    return {"role": "assistant", "content": blocks}


def _tool_result(m: Mapping[str, Any]) -> dict[str, Any]:
    if not m.get("tool_call_id"):
        raise InvalidRequestError("a tool message needs the tool_call_id of the call it answers")
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": m["tool_call_id"]}
    content = m.get("content")
    if content is not None and content != "":
        block["content"] = _wire_content(content)
    if m.get("is_error"):
        block["is_error"] = True
    return block


def wire_messages(messages: list[dict[str, Any]], provider: str | None = None) -> tuple[Any, list[dict[str, Any]]]:
    """computekit's messages -> Anthropic's ``system`` (``None`` when absent) and ``messages`` (an answer's own
    blocks kept for ``provider`` in ``Message.provider_fields`` go back as they came)."""
    system: list[Any] = []
    out: list[dict[str, Any]] = []
    pending_results: list[dict[str, Any]] = []

    def flush() -> None:
        if pending_results:
            out.append({"role": "user", "content": list(pending_results)})
            pending_results.clear()

    for m in messages:
        role = m.get("role")
        if role in _SYSTEM_ROLES:
            system.append(m.get("content"))
            continue
        if role == "tool":
            pending_results.append(_tool_result(m))
            continue
        flush()
        if role == "assistant":
            out.append(_assistant_message(m, provider))
        else:
            out.append({"role": "user", "content": _wire_content(m.get("content"))})
    flush()
    return _system(system), out


def _system(parts: list[Any]) -> Any:
    if not parts:
        return None
    if all(isinstance(p, str) for p in parts):
        return "\n\n".join(p for p in parts if p)
    blocks: list[Any] = []
    for p in parts:
        if isinstance(p, list):
            blocks.extend(_wire_part(x) for x in p)
        elif p:
            blocks.append({"type": "text", "text": p})
    return blocks


def wire_tool(t: Mapping[str, Any]) -> dict[str, Any]:
    """A tool in Anthropic's shape; OpenAI's shape and ``{"name", "description", "parameters"}`` are converted."""
    if "input_schema" in t or ("type" in t and t["type"] not in ("function", "custom") and "function" not in t):
        return dict(t)  # Anthropic-native, or a server tool (web_search_..., bash_...)
    fn = t.get("function") if isinstance(t.get("function"), Mapping) else t
    assert isinstance(fn, Mapping)
    out: dict[str, Any] = {"name": fn["name"]}
    if t.get("type") == "custom":
        out["type"] = "custom"
    if fn.get("description"):
        out["description"] = fn["description"]
    out["input_schema"] = fn.get("parameters") or {"type": "object", "properties": {}}
    for key in _TOOL_FIELDS:  # OpenAI keeps ``strict`` inside ``function``; the shorthand, beside the name
        value = fn.get(key, t.get(key))
        if value is not None:
            out[key] = value
    return out


def _is_server_tool(t: Mapping[str, Any]) -> bool:
    """A tool Anthropic runs itself (``web_search_20250305``, ``code_execution_...``), not the caller's."""
    return "type" in t and t["type"] not in ("function", "custom") and "function" not in t and "input_schema" not in t


def wire_tool_choice(choice: Any) -> Any:
    """OpenAI-style ``tool_choice`` -> Anthropic's (``auto``/``required``/``none``/a named function)."""
    if isinstance(choice, str):
        return {"auto": {"type": "auto"}, "required": {"type": "any"}, "any": {"type": "any"},
                "none": {"type": "none"}}.get(choice, {"type": "tool", "name": choice})
    if isinstance(choice, Mapping):
        fn = choice.get("function")
        if choice.get("type") == "function" and isinstance(fn, Mapping):
            return {"type": "tool", "name": fn["name"]}
        return dict(choice)
    return choice


# --------------------------------------------------------------------------------------------- response side


# Blocks computekit's Message holds itself (text and the caller's tool calls); an answer with any other block
# (thinking, a server tool's use and result, compaction) keeps all its blocks to send back as they came: Anthropic
# requires thinking blocks back on tool-use turns, and a paused server-tool turn continues from its blocks.
_PLAIN_BLOCKS: Final = frozenset({"text", "tool_use"})


def _message(provider: str, text: str, calls: list[ToolCall], blocks: list[Any]) -> Message:
    """The assistant message of ``provider``'s answer made of ``blocks``."""
    own = any(isinstance(b, Mapping) and b.get("type") not in _PLAIN_BLOCKS for b in blocks)
    return Message(role="assistant", content=text, tool_calls=calls or None,
                   provider_fields={provider: {"content": list(blocks)}} if own else None)


def _tool_call(block: Mapping[str, Any]) -> ToolCall:
    args = block.get("input")
    return ToolCall(
        id=block.get("id") or "",
        name=block.get("name") or "",
        arguments=json.dumps(args if args is not None else {}, ensure_ascii=False),
    )


def _one_usage(raw: Mapping[str, Any], requests: int = 1) -> Usage:
    """One usage object (the top level, or one entry of ``iterations``) in computekit's convention."""
    plain = raw.get("input_tokens") or 0
    write = raw.get("cache_creation_input_tokens") or 0
    read = raw.get("cache_read_input_tokens") or 0
    # The cache writes' split by lifetime: 1-hour writes cost more than 5-minute ones.
    split = raw.get("cache_creation")
    write_1h = (split.get("ephemeral_1h_input_tokens") or 0) if isinstance(split, Mapping) else 0
    units: dict[str, Decimal] = {}
    tools = raw.get("server_tool_use")
    if isinstance(tools, Mapping) and tools.get("web_search_requests"):
        units["web_searches"] = Decimal(tools["web_search_requests"])
    details = raw.get("output_tokens_details")
    thinking = details.get("thinking_tokens") if isinstance(details, Mapping) else None
    return Usage(
        input_tokens=plain + write + read,
        output_tokens=raw.get("output_tokens") or 0,
        cached_input_tokens=read,
        cache_write_tokens=write,
        cache_write_1h_tokens=write_1h,
        reasoning_tokens=thinking if isinstance(thinking, int) else 0,
        requests=requests,
        units=units,
    )


def _extra_iterations(raw: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    """The entries of ``usage.iterations`` billed outside the top-level counts: every kind but ``message`` (the
    top level is the answer's sampling; compaction and advisor passes are billed on top of it)."""
    found = raw.get("iterations") if isinstance(raw, Mapping) else None
    if not isinstance(found, list):
        return []
    return [it for it in found if isinstance(it, Mapping) and it.get("type") != "message"]


def _usage(raw: Mapping[str, Any] | None) -> Usage:
    if not raw:
        return Usage()
    usage = _one_usage(raw)
    for it in _extra_iterations(raw):
        usage = usage + _one_usage(it, requests=0)
    return usage


_ITERATION_KINDS: Final = {"compaction": "compaction", "advisor_message": "advisor"}


class AnthropicSettings(AdapterSettings):
    """``[providers.anthropic]``: the API version requests are made against."""

    api_version: str = Field(ANTHROPIC_VERSION, description="The anthropic-version header of every request.")
    structured_output_models: list[str] = Field(
        default_factory=list,
        description="Model families (name prefixes) that take output_config.format, beyond the built-in rule "
        "(Claude 4.5 and later, Opus 4.1); other models get structured output through a forced tool.",
    )


class AnthropicAdapter(Adapter):
    """Anthropic's Messages API (``anthropic:`` models). Key: ``ANTHROPIC_API_KEY``."""

    name = "anthropic"
    capabilities = Capabilities(complete=True, stream=True, tools=True, json_mode=False, embed=False, batch=True)
    key_env_vars = ("ANTHROPIC_API_KEY",)
    default_base_url = "https://api.anthropic.com/v1"
    base_url_env = "ANTHROPIC_BASE_URL"  # anthropic-sdk-python: the host, without /v1
    base_url_env_suffix = "/v1"
    table_provider = "anthropic"
    docs_url = "https://docs.anthropic.com/en/api/messages"
    settings_model = AnthropicSettings
    options: AnthropicSettings

    # ----------------------------------------------------------------------------------------- URLs & auth

    def headers(self) -> dict[str, str]:
        """Request headers, the credential included (built per request; never stored or logged)."""
        h = {
            "content-type": "application/json",
            "accept": "application/json",
            "anthropic-version": self.options.api_version,
        }
        h.update(self.settings.headers)
        h["x-api-key"] = self.require_key()
        return h

    # ----------------------------------------------------------------------------------------- complete

    def native_structured_output(self, model: str) -> bool:
        """Whether ``model`` takes ``output_config.format`` (else structured output goes through a forced tool)."""
        return _structured_native(model) or model.startswith(tuple(self.options.structured_output_models))

    def structured_schema(self, req: CompleteRequest) -> Any:
        out = req.output
        if out is None:
            return None
        # Structured outputs close every object; the forced tool is not strict, so a dict field stays open there.
        native = self.native_structured_output(req.model)
        loop = recursive_def(out.schema) if native else None
        if loop is not None:  # refused with a 400 ("circular reference ... not supported"): say so before sending
            raise InvalidRequestError(f"response_format: {loop} is recursive, which Anthropic's structured outputs "
                                      f"do not support: give the type a fixed depth")
        return strict_schema(out.schema, drop=_STRUCTURED_UNSUPPORTED, all_required=False, open_maps=not native,
                             require_types=False, name=out.name, dialect="Anthropic's structured outputs")

    def _structured(self, out: OutputType, req: CompleteRequest, body: dict[str, Any]) -> None:
        schema = self.structured_schema(req)
        if self.native_structured_output(req.model):
            body["output_config"] = {**body.get("output_config", {}), "format": {"type": "json_schema",
                                                                                "schema": schema}}
            return
        if req.tools:
            raise InvalidRequestError(
                f"anthropic:{req.model} has no structured outputs, and a forced tool (how it gets a typed answer) "
                f"leaves no room for your tools: drop tools= or response_format=, or use a Claude 4.5 model"
            )
        body["tools"] = [{"name": FORCED_TOOL_NAME, "description": f"Answer with a {out.name}.",
                          "input_schema": schema}]
        body["tool_choice"] = {"type": "tool", "name": FORCED_TOOL_NAME}

    def build_complete(self, req: CompleteRequest) -> HTTPRequest:
        return HTTPRequest("POST", self.url("messages"), self.headers(), json=self.complete_body(req),
                           stream=req.stream)

    def complete_body(self, req: CompleteRequest) -> dict[str, Any]:
        """The JSON body ``complete()`` sends for ``req`` (built without the key: a batch line is made of it,
        checked and estimated offline)."""
        if req.response_format is not None and req.output is None:
            raise self.unsupported("json_mode")
        if req.seed is not None:
            raise InvalidRequestError("Anthropic's Messages API has no seed parameter")
        system, messages = wire_messages(req.messages, self.provider)
        body: dict[str, Any] = {"model": req.model, "max_tokens": self._max_tokens(req), "messages": messages}
        if system:
            body["system"] = system
        if req.temperature is not None:
            body["temperature"] = req.temperature
        if req.top_p is not None:
            body["top_p"] = req.top_p
        if req.stop is not None:
            body["stop_sequences"] = [req.stop] if isinstance(req.stop, str) else list(req.stop)
        if req.tools:
            body["tools"] = [wire_tool(t) for t in req.tools]
        if req.tool_choice is not None:
            body["tool_choice"] = wire_tool_choice(req.tool_choice)
        if req.service_tier is not None:
            body["service_tier"] = req.service_tier
        if req.user is not None:
            body["metadata"] = {"user_id": req.user}
        if req.stream:
            body["stream"] = True
        if req.extra:
            body.update(req.extra)
        if req.output is not None:
            self._structured(req.output, req, body)
        return body

    @staticmethod
    def _max_tokens(req: CompleteRequest) -> int:
        if req.max_tokens is not None:
            return req.max_tokens
        thinking = req.extra.get("thinking")
        budget = thinking.get("budget_tokens") if isinstance(thinking, Mapping) else None
        if isinstance(budget, int) and budget >= DEFAULT_MAX_TOKENS:
            return budget + DEFAULT_MAX_TOKENS  # max_tokens must exceed the thinking budget
        return DEFAULT_MAX_TOKENS

    def parse_complete(self, req: CompleteRequest, resp: HTTPResponse) -> Completion:
        try:
            data = resp.json()
        except ValueError:
            raise self.malformed(resp, req.model, "body is not JSON") from None
        if not isinstance(data, dict):
            raise self.malformed(resp, req.model, "body is not a JSON object")
        if data.get("type") == "error":
            raise self.map_error(
                HTTPResponse(_error_status(data), resp.headers, resp.content, resp.url), req.model
            )
        content = data.get("content")
        if not isinstance(content, list):
            raise self.malformed(resp, req.model, "no content blocks in the response")
        text = "".join(b.get("text") or "" for b in content if isinstance(b, dict) and b.get("type") == "text")
        calls = [_tool_call(b) for b in content if isinstance(b, dict) and b.get("type") == "tool_use"]
        raw_usage = data.get("usage")
        result = Completion(
            provider=self.provider,
            model=req.model,
            text=text,
            message=_message(self.provider, text, calls, content),
            tool_calls=calls,
            finish_reason=_finish(data.get("stop_reason")),
            id=data.get("id"),
            service_tier=raw_usage.get("service_tier") if isinstance(raw_usage, dict) else None,
            response_model=data.get("model"),
            usage=self.usage(raw_usage),
            request_id=self.request_id(resp.headers),
            raw=data,
        )
        result._usage_reported = isinstance(raw_usage, dict)
        return _typed_answer(req, result, data.get("stop_reason"))

    def stream_decoder(self, req: CompleteRequest) -> StreamDecoder:
        return _MessageStream(self, req)

    # ----------------------------------------------------------------------------------------- usage

    def usage(self, raw: Mapping[str, Any] | None) -> Usage:
        return _usage(raw)

    # ----------------------------------------------------------------------------------------- budgets

    def media_tokens(self, part: Mapping[str, Any], model: str) -> int | None:
        if part.get("type") not in ("image", "image_url", "input_image"):
            return None  # documents (pages of text and images), files: bounded by the context window
        for families, edge in _IMAGE_EDGES:
            if model.startswith(families):
                return _image_ceiling(edge)
        return None

    def input_overhead(self, req: CompleteRequest) -> int:
        forced = req.output is not None and not self.native_structured_output(req.model)  # a tool all the same
        return TOOL_PROMPT_MAX_TOKENS if req.tools or forced else 0

    def sampling_passes(self, req: CompleteRequest) -> int:
        server = any(_is_server_tool(t) for t in req.tools or [])
        edits = req.extra.get("context_management")
        compaction = isinstance(edits, Mapping) and bool(edits.get("edits"))
        return (SERVER_LOOP_MAX_ITERATIONS if server else 1) + (1 if compaction else 0)

    def billed_parts(self, ref: PriceRef, result: Result) -> list[BilledPart]:
        """The answer, plus each kind of pass billed in ``usage.iterations`` (compaction at the answering model's
        rates, an advisor's turns at the advisor model's), when there are any."""
        raw = result.raw.get("usage") if isinstance(result, Completion) and isinstance(result.raw, dict) else None
        extra = _extra_iterations(raw)
        if not extra or not isinstance(raw, Mapping):
            return []
        by_kind: dict[tuple[str, str], Usage] = {}
        for it in extra:
            kind = _ITERATION_KINDS.get(str(it.get("type")), str(it.get("type")))
            named = it.get("model")
            key = (kind, named if isinstance(named, str) else ref.model)
            by_kind[key] = by_kind.get(key, Usage(requests=0)) + _one_usage(it, requests=0)
        models_of: dict[str, set[str]] = {}
        for kind, model in by_kind:
            models_of.setdefault(kind, set()).add(model)
        parts = [BilledPart("", ref, _one_usage(raw))]
        for (kind, model), usage in by_kind.items():
            part_ref = ref if model == ref.model else PriceRef(provider=ref.provider, model=model,
                                                                table_provider=ref.table_provider)
            label = kind if len(models_of[kind]) == 1 else f"{kind} ({model})"
            parts.append(BilledPart(label, part_ref, usage))
        return parts

    def price_ref(self, model: str, result: Result | None = None) -> PriceRef:
        """Priced as the exact model that answered (``claude-sonnet-4-5-20250929``) when the response names it."""
        answered = result.response_model if isinstance(result, Completion) else None
        return PriceRef(provider=self.provider, model=answered or model, table_provider=self.table_provider)

    # ----------------------------------------------------------------------------------------- batches
    # Message Batches: the requests go inline in the create body; results are a JSONL stream.

    def batch_spec(self, model: str) -> BatchSpec:
        return BatchSpec(max_requests=ANTHROPIC_BATCH_MAX_REQUESTS, max_bytes=ANTHROPIC_BATCH_MAX_BYTES,
                         uploads=False, embed=False)

    def batch_line(self, custom_id: str, req: CompleteRequest | EmbedRequest) -> dict[str, Any]:
        if not isinstance(req, CompleteRequest):
            raise self.unsupported("embed")
        if req.stream:
            raise InvalidRequestError("anthropic: a batched request cannot stream")
        if not _CUSTOM_ID.fullmatch(custom_id):
            raise InvalidRequestError(f"custom_id {custom_id!r}: Message Batches take 1 to 64 letters, digits, "
                                      "'-' and '_'")
        return {"custom_id": custom_id, "params": self.complete_body(req)}

    def build_batch_create(self, model: str, kind: str, file_ref: str | None, lines: Sequence[Mapping[str, Any]],
                           metadata: Mapping[str, str]) -> HTTPRequest:
        # Message Batches take no metadata: tags live in computekit's ledger rows.
        return HTTPRequest("POST", self.url("messages/batches"), self.headers(), json={"requests": list(lines)})

    def parse_batch(self, model: str, resp: HTTPResponse) -> BatchState:
        data = self.json_object(resp, model)
        status = data.get("processing_status")
        if not isinstance(data.get("id"), str) or status not in ("in_progress", "canceling", "ended"):
            raise self.malformed(resp, model, "not a message batch")
        self.check_batch_ids(resp, model, {"id": data["id"]})
        counts = {k: n for k, v in obj(data.get("request_counts")).items() if (n := count(v)) is not None}
        normal = str(status)
        if status == "ended":
            normal = "canceled" if data.get("cancel_initiated_at") else "completed"
        return BatchState(
            id=data["id"], model=model, status=normal, provider_status=str(status),
            total=sum(counts.values()) if counts else None, completed=counts.get("succeeded", 0),
            failed=counts.get("errored", 0) + counts.get("canceled", 0) + counts.get("expired", 0),
            output_ref=data["id"] if status == "ended" else None,
            created_at=unix_time(data.get("created_at")), ended_at=unix_time(data.get("ended_at")), raw=data,
        )

    def build_batch_get(self, state: BatchState) -> HTTPRequest:
        return HTTPRequest("GET", self.url(f"messages/batches/{state.id}"), self.headers())

    def build_batch_cancel(self, state: BatchState) -> HTTPRequest:
        return HTTPRequest("POST", self.url(f"messages/batches/{state.id}/cancel"), self.headers())

    def build_batch_results(self, state: BatchState) -> list[HTTPRequest]:
        # Built from the batch id on the configured host (never the answer's results_url: the key goes only to
        # the configured origin).
        return [HTTPRequest("GET", self.url(f"messages/batches/{state.id}/results"), self.headers(), stream=True)]

    def parse_batch_line(self, state: BatchState, line: bytes | Mapping[str, Any]) -> BatchItem:
        data = self.batch_record(state, line)
        custom_id, result = data.get("custom_id"), obj(data.get("result"))
        kind = result.get("type")
        if not isinstance(custom_id, str) or kind not in ("succeeded", "errored", "canceled", "expired"):
            raise self.malformed(self.batch_response(200, data), state.model, "not a message batch result")
        if kind == "succeeded":
            return self.batch_answer(state, custom_id, result.get("message"))
        if kind == "errored":  # not billed (Anthropic bills only succeeded requests)
            body = obj(result.get("error"))
            return self.batch_failure(state, custom_id, _error_status(body), body)
        return self.batch_failure(state, custom_id, None,
                                  {"error": {"type": kind, "message": f"the request was {kind} before it ran"}})

    # ----------------------------------------------------------------------------------------- errors

    def classify_error(self, status: int, body: Any) -> type[APIStatusError] | None:
        err = body.get("error") if isinstance(body, dict) else None
        if not isinstance(err, dict):
            return OverloadedError if status == 529 else None
        kind = err.get("type") or ""
        if kind == "invalid_request_error":
            msg = str(err.get("message") or "").lower()
            if any(p in msg for p in _CONTEXT_PHRASES):
                return ContextWindowExceededError
        return _ERROR_TYPES.get(kind) or (OverloadedError if status == 529 else None)

    def map_error(self, resp: HTTPResponse, model: str | None) -> ProviderError:
        err = super().map_error(resp, model)
        if err.request_id is None and isinstance(err.body, dict) and isinstance(err.body.get("request_id"), str):
            err.request_id = err.body["request_id"]
        return err


def _error_status(data: Mapping[str, Any]) -> int:
    """The status an error event or body carries (an explicit one first), else the one Anthropic documents for
    its type (an ``error`` event inside a 200 stream carries none; 529 for ``overloaded_error``)."""
    return carried_status(data, 500)


class _MessageStream(StreamDecoder):
    """Anthropic's stream events -> Chunk, assembling the final message (the same shape as a non-streamed one)."""

    def __init__(self, adapter: AnthropicAdapter, req: CompleteRequest) -> None:
        self.adapter = adapter
        self.req = req
        self.message: dict[str, Any] = {}
        self.blocks: dict[int, dict[str, Any]] = {}
        self.partial_json: dict[int, list[str]] = {}
        self.tool_index: dict[int, int] = {}
        self.text: list[str] = []
        self.raw_usage: dict[str, Any] | None = None
        self.stop_reason: str | None = None
        self.stop_sequence: str | None = None
        self.done = False

    def _bad(self, event: SSEEvent, why: str) -> ProviderError:
        return self.adapter.malformed(HTTPResponse(200, {}, event.data.encode()), self.req.model, why)

    def feed(self, event: SSEEvent) -> list[Chunk]:
        try:
            data = json.loads(event.data)
        except ValueError:
            raise self._bad(event, "stream event is not JSON") from None
        if not isinstance(data, dict):
            raise self._bad(event, "stream event is not a JSON object")
        kind = data.get("type") or event.event
        if kind == "ping":
            return []
        if kind == "error":
            raise self.adapter.map_error(
                HTTPResponse(_error_status(data), {}, event.data.encode()), self.req.model
            )
        if kind == "message_start":
            msg = data.get("message")
            if not isinstance(msg, dict):
                raise self._bad(event, "message_start without a message")
            self.message = {k: v for k, v in msg.items() if k not in ("content", "usage")}
            if isinstance(msg.get("usage"), dict):
                self.raw_usage = dict(msg["usage"])
            return []
        if kind == "content_block_start":
            return self._block_start(data)
        if kind == "content_block_delta":
            return self._block_delta(data)
        if kind == "content_block_stop":
            self._block_stop(data)
            return []
        if kind == "message_delta":
            return self._message_delta(data)
        if kind == "message_stop":
            self.done = True
            return []
        return []  # new event types are ignored, as Anthropic's versioning policy asks

    def _block_start(self, data: dict[str, Any]) -> list[Chunk]:
        idx = data.get("index", len(self.blocks))
        block = dict(data.get("content_block") or {})
        self.blocks[idx] = block
        chunk = Chunk(raw=data)
        if block.get("type") == "tool_use":  # the caller's tool: server tools (server_tool_use) run at Anthropic
            n = self.tool_index[idx] = len(self.tool_index)
            self.partial_json[idx] = []
            chunk.tool_calls.append({"index": n, "id": block.get("id"), "name": block.get("name"), "arguments": None})
        elif "input" in block:  # server_tool_use, mcp_tool_use: input streamed as JSON like a tool call's
            self.partial_json[idx] = []
        elif block.get("type") == "text" and block.get("text"):
            self.text.append(block["text"])
            chunk.text = block["text"]
        return [chunk]

    def _block_delta(self, data: dict[str, Any]) -> list[Chunk]:
        idx = data.get("index", 0)
        delta = data.get("delta") or {}
        block = self.blocks.setdefault(idx, {"type": "text", "text": ""})
        chunk = Chunk(raw=data)
        dtype = delta.get("type")
        if dtype == "text_delta":
            piece = delta.get("text") or ""
            block["text"] = (block.get("text") or "") + piece
            self.text.append(piece)
            chunk.text = piece
        elif dtype == "input_json_delta":
            piece = delta.get("partial_json") or ""
            self.partial_json.setdefault(idx, []).append(piece)
            if piece and idx in self.tool_index:  # only the caller's tool calls are handed out as such
                chunk.tool_calls.append({"index": self.tool_index[idx], "id": None, "name": None, "arguments": piece})
        elif dtype == "thinking_delta":
            block["thinking"] = (block.get("thinking") or "") + (delta.get("thinking") or "")
        elif dtype == "signature_delta":
            block["signature"] = (block.get("signature") or "") + (delta.get("signature") or "")
        elif dtype == "compaction_delta":  # the summary of a compaction block
            block["content"] = (block.get("content") or "") + (delta.get("content") or "")
            if delta.get("encrypted_content") is not None:
                block["encrypted_content"] = delta["encrypted_content"]
        elif dtype == "citations_delta":
            if not isinstance(block.get("citations"), list):  # the block starts with "citations": null
                block["citations"] = []
            block["citations"].append(delta.get("citation"))
        return [chunk]

    def _block_stop(self, data: dict[str, Any]) -> None:
        idx = data.get("index", 0)
        block = self.blocks.get(idx)
        if block is not None and idx in self.partial_json:
            text = "".join(self.partial_json[idx])
            try:
                block["input"] = json.loads(text) if text.strip() else (block.get("input") or {})
            except ValueError:
                block["input"] = text  # kept as the model wrote it; ToolCall.arguments carries the same text

    def _message_delta(self, data: dict[str, Any]) -> list[Chunk]:
        delta = data.get("delta") or {}
        chunk = Chunk(raw=data)
        if delta.get("stop_reason"):
            self.stop_reason = delta["stop_reason"]
            chunk.finish_reason = _finish(self.stop_reason)
        self.stop_sequence = delta.get("stop_sequence")
        usage = data.get("usage")
        if isinstance(usage, dict):
            # Cumulative counts: message_delta's non-null fields replace message_start's.
            merged = dict(self.raw_usage or {})
            merged.update({k: v for k, v in usage.items() if v is not None})
            self.raw_usage = merged
            chunk.usage = self.adapter.usage(merged)
        return [chunk]

    def _calls(self) -> list[ToolCall]:
        calls = []
        for idx in sorted(self.tool_index, key=lambda i: self.tool_index[i]):
            block = self.blocks.get(idx, {})
            args = "".join(self.partial_json.get(idx, [])) or "{}"
            calls.append(ToolCall(id=block.get("id") or "", name=block.get("name") or "", arguments=args))
        return calls

    def result(self) -> Completion:
        text = "".join(self.text)
        calls = self._calls()
        raw = {
            **self.message,
            "content": [self.blocks[i] for i in sorted(self.blocks)],
            "stop_reason": self.stop_reason,
            "stop_sequence": self.stop_sequence,
            "usage": self.raw_usage,
        }
        result = Completion(
            provider=self.adapter.provider,
            model=self.req.model,
            text=text,
            message=_message(self.adapter.provider, text, calls, raw["content"]),
            tool_calls=calls,
            finish_reason=_finish(self.stop_reason),
            id=self.message.get("id"),
            service_tier=(self.raw_usage or {}).get("service_tier"),
            response_model=self.message.get("model"),
            usage=self.adapter.usage(self.raw_usage),
            raw=raw,
        )
        result._usage_reported = self.raw_usage is not None
        return _typed_answer(self.req, result, self.stop_reason)


def to_sdk(result: Completion) -> Any:
    """The official SDK's ``anthropic.types.Message`` for a completion's ``raw`` body (imports ``anthropic`` on
    first call). Streamed completions have no single response body to convert.

    Raises:
        ModuleNotFoundError: ``anthropic`` is not installed (``pip install 'computekit[anthropic]'``).
        ValueError: The result has no response body (a streamed completion).
    """
    anthropic = require("anthropic", "anthropic", "anthropic.to_sdk()")
    if not isinstance(result.raw, Mapping):
        raise ValueError("this result has no single response body to convert (a streamed completion?)")
    return anthropic.types.Message.model_validate(result.raw)
