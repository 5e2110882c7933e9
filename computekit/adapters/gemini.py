"""Google Gemini: the Gemini API's ``generateContent`` / ``streamGenerateContent`` wire format, and embeddings.

:class:`GeminiWire` holds the wire format (request body, response and stream parsing, usage, errors); ``gemini``
(the Gemini API, this module) and ``vertex`` (Vertex AI, :mod:`computekit.adapters.vertex`) differ only in URLs,
credentials and a few fields. As for the other token APIs, the wire is spoken directly over computekit's own
transports (no ``google-genai`` SDK: its import alone costs more than computekit's, and the adapter contract is
sans-IO); it is kept honest by the real recordings in ``shared/conformance/google``.

Translations (computekit's shape -> Gemini's):

- ``system`` / ``developer`` messages -> ``systemInstruction``; ``assistant`` -> role ``model``;
- content parts: text; images (``image_url``) and documents, audio or video (``{"type": "document" | "file" |
  "audio" | "video", "url": ..., "mime_type": ...}``) by URL (``fileData``) or inline as ``data:`` URLs
  (``inlineData``); Gemini-native parts (``text``, ``inlineData``, ``fileData`` ... without ``type``) pass as they are;
- tools (OpenAI's shape or computekit's shorthand) -> one ``functionDeclarations`` tool (``parametersJsonSchema``:
  the JSON schema as given); Gemini-native tools (``googleSearch``, ``codeExecution`` ...) pass unchanged;
  ``tool_choice`` -> ``toolConfig.functionCallingConfig``;
- an assistant message's ``tool_calls`` -> ``functionCall`` parts, each with its ``id`` and the thought signature
  the model attached to it (``ToolCall.signature``), which Gemini 3 requires back on the next turn; ``tool``
  messages -> ``functionResponse`` parts (the function's name is found from the call they answer);
- ``max_tokens`` -> ``maxOutputTokens``, ``stop`` -> ``stopSequences``, ``temperature``, ``top_p`` -> ``topP``,
  ``seed``; ``response_format`` ``json_object`` -> ``responseMimeType: application/json``, ``json_schema`` ->
  ``responseJsonSchema``; ``response_format=`` a type -> ``responseSchema`` in its OpenAPI subset (``$ref``
  inlined, ``anyOf`` with null as ``nullable``, ``propertyOrdering`` from the type's field order); a
  Gemini-native ``{"responseMimeType", "responseSchema"}`` passes into
  ``generationConfig``. ``extra_body`` keys that are GenerationConfig fields (``thinkingConfig``, ``topK``,
  ``responseModalities`` ...) are moved into ``generationConfig``; the rest go to the top level (``safetySettings``,
  ``cachedContent``, ``labels`` on Vertex ...).

Usage (``usageMetadata``): ``promptTokenCount`` **includes** ``cachedContentTokenCount``; ``thoughtsTokenCount`` is
**not** inside ``candidatesTokenCount``; ``toolUsePromptTokenCount`` (the results of Google's own tools fed back to
the model) is billed as input. So ``input_tokens = prompt + toolUsePrompt``, ``cached_input_tokens = cached``,
``output_tokens = candidates + thoughts`` and ``reasoning_tokens = thoughts``; audio input not read from the cache
(by modality) is ``input_audio_tokens``, and audio read from the cache ``cached_input_audio_tokens`` (priced at
the cache rate for audio where the table has one); generated images (modality ``IMAGE``) are
``output_image_tokens``, at the image output rate of Gemini's image models. Long-context tiers (prices above a
prompt size) are applied by the price table on the total input. Google Search grounding is billed per search
query (Gemini 3) or per grounded prompt (earlier models): carried as ``usage.units["web_searches"]``.

Thought parts (``"thought": true``) are never in ``text``; they stay in ``raw``. A prompt blocked by Google's
safety filters (``promptFeedback.blockReason``), or an answer blocked before it produced anything, raises
:class:`~computekit.ContentFilteredError`.
"""

from __future__ import annotations

import json
import mimetypes
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, ClassVar, Final

from .._exceptions import (
    APIStatusError,
    ContentFilteredError,
    ContextWindowExceededError,
    InvalidRequestError,
    OverloadedError,
    ProviderError,
)
from .._structured import subset_schema
from .._types import Chunk, Completion, Cost, Embeddings, Message, Result, ToolCall, Usage
from ..pricing import PriceRef
from ._base import (
    Adapter,
    BatchItem,
    BatchSpec,
    BatchState,
    Capabilities,
    CompleteRequest,
    EmbedRequest,
    HTTPRequest,
    HTTPResponse,
    SSEEvent,
    StreamDecoder,
    count,
    obj,
    sampling_options,
    token_count,
    unix_time,
)

__all__ = ["GEMINI_BASE_URL", "GeminiAdapter", "GeminiWire", "gemini_usage"]

GEMINI_BASE_URL: Final = "https://generativelanguage.googleapis.com/v1beta"
"""The Gemini API's root (``v1beta``: the version Google's own SDKs call, where every current feature is)."""

GEMINI_BATCH_MAX_BYTES: Final = 20 * 1024 * 1024
"""The largest batch whose requests go inline in the create request
(https://ai.google.dev/gemini-api/docs/batch-mode)."""
# Batch states (BatchState; Google's SDKs also show JOB_STATE_*) -> computekit's batch statuses.
_BATCH_STATES: Final = {"PENDING": "validating", "RUNNING": "in_progress", "SUCCEEDED": "completed",
                        "FAILED": "failed", "CANCELLED": "canceled", "EXPIRED": "expired"}
# google.rpc.Code -> the HTTP status Google's REST mapping gives it (an item's error carries only the code).
_RPC_CODE_STATUS: Final = {1: 499, 2: 500, 3: 400, 4: 504, 5: 404, 6: 409, 7: 403, 8: 429, 9: 400, 10: 409, 11: 400,
                      12: 501, 13: 500, 14: 503, 15: 500, 16: 401}

_FINISH: Final = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "MODEL_ARMOR": "content_filter",
    "MALFORMED_FUNCTION_CALL": "malformed_function_call",
}
_BLOCKED: Final = frozenset(k for k, v in _FINISH.items() if v == "content_filter")

# google.rpc status names -> computekit's error classes, where the HTTP status alone says less.
_RPC_STATUS: Final[dict[str, type[APIStatusError]]] = {
    "UNAVAILABLE": OverloadedError,
}
_CONTEXT_PHRASES: Final = ("exceeds the maximum number of tokens", "input token count", "too many tokens",
                           "context window")
_RETRY_INFO: Final = "type.googleapis.com/google.rpc.RetryInfo"

# GenerationConfig fields (Google's API reference): passed in extra_body, they go into generationConfig.
_GENERATION_FIELDS: Final = frozenset({
    "candidateCount", "maxOutputTokens", "temperature", "topP", "topK", "seed", "stopSequences", "presencePenalty",
    "frequencyPenalty", "responseLogprobs", "logprobs", "responseMimeType", "responseSchema", "responseJsonSchema",
    "responseModalities", "thinkingConfig", "speechConfig", "mediaResolution", "enableEnhancedCivicAnswers",
    "imageConfig", "routingConfig", "audioTimestamp",
})
_SYSTEM_ROLES: Final = frozenset({"system", "developer"})
_FILE_PART_TYPES: Final = frozenset({"document", "file", "audio", "video", "image"})
_NATIVE_PART_KEYS: Final = frozenset({"text", "inlineData", "fileData", "functionCall", "functionResponse",
                                      "executableCode", "codeExecutionResult", "thought", "thoughtSignature"})
_YOUTUBE = re.compile(r"^https?://(www\.|m\.)?(youtube\.com|youtu\.be)/")
# Models whose Google Search grounding is billed per search query; earlier ones bill per grounded prompt.
_PER_QUERY_SEARCH = re.compile(r"gemini-([3-9]|\d\d)")


def _finish(reason: str | None, has_calls: bool) -> str | None:
    if reason == "STOP" and has_calls:
        return "tool_calls"
    if not reason:
        return None
    return _FINISH.get(reason, reason.lower())


# --------------------------------------------------------------------------------------------- request side


def _mime(url: str, given: Any) -> str | None:
    if isinstance(given, str) and given:
        return given
    if _YOUTUBE.match(url):
        return "video/mp4"
    guessed, _ = mimetypes.guess_type(url.split("?")[0])
    return guessed


def _file_part(url: str, mime_type: Any) -> dict[str, Any]:
    """A file by URL (``fileData``), or inline when it is a ``data:`` URL (``inlineData``)."""
    if url.startswith("data:"):
        head, _, data = url.partition(",")
        mt = head[5:].split(";")[0] or (mime_type if isinstance(mime_type, str) else None)
        if not mt:
            raise InvalidRequestError("a data: URL needs a media type (data:image/png;base64,...)")
        return {"inlineData": {"mimeType": mt, "data": data}}
    out: dict[str, Any] = {"fileUri": url}
    mt = _mime(url, mime_type)
    if mt:
        out["mimeType"] = mt
    return {"fileData": out}


def wire_part(part: Any) -> dict[str, Any]:
    """A computekit content part (or a Gemini-native one) as a Gemini ``Part``."""
    if isinstance(part, str):
        return {"text": part}
    if not isinstance(part, Mapping):
        raise InvalidRequestError(f"a content part must be a string or a dict, not {type(part).__name__}")
    kind = part.get("type")
    if kind is None and set(part) & _NATIVE_PART_KEYS:
        return dict(part)  # already Gemini's shape
    if kind == "text":
        return {"text": part.get("text") or ""}
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, Mapping) else (image if isinstance(image, str) else part.get("url"))
        if not isinstance(url, str):
            raise InvalidRequestError("an image_url part needs a url")
        return _file_part(url, part.get("mime_type"))
    if kind in _FILE_PART_TYPES:
        inner = part.get(kind)
        nested: Mapping[str, Any] = inner if isinstance(inner, Mapping) else {}
        url = part.get("url") or part.get("file_url") or nested.get("url") or nested.get("file_data")
        if not isinstance(url, str):
            raise InvalidRequestError(f"a {kind} part needs a url (https:, gs: or a data: URL)")
        return _file_part(url, part.get("mime_type") or nested.get("mime_type"))
    raise InvalidRequestError(
        f"content part type {kind!r} is not supported by Gemini: use text, image_url, document, audio or video"
    )


def _parts(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}]
    if isinstance(content, list):
        return [wire_part(p) for p in content]
    raise InvalidRequestError(f"message content must be a string or a list of parts, not {type(content).__name__}")


def _call_fields(tc: Mapping[str, Any]) -> tuple[str, str, Any]:
    fn = tc.get("function")
    if isinstance(fn, Mapping):  # OpenAI's shape
        name, arguments = fn.get("name") or "", fn.get("arguments")
    else:
        name, arguments = tc.get("name") or "", tc.get("arguments")
    if isinstance(arguments, str):
        try:
            args = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            raise InvalidRequestError(
                f"tool call {tc.get('id')!r} has arguments that are not JSON; Gemini needs a JSON object"
            ) from None
    else:
        args = arguments if arguments is not None else {}
    return str(tc.get("id") or ""), str(name), args


def _function_call_part(tc: Mapping[str, Any]) -> dict[str, Any]:
    call_id, name, args = _call_fields(tc)
    call: dict[str, Any] = {"name": name, "args": args}
    if call_id and not call_id.startswith(_LOCAL_ID):
        call["id"] = call_id  # an id Google made; computekit's own stand-ins are not sent back
    part: dict[str, Any] = {"functionCall": call}
    if tc.get("signature"):
        part["thoughtSignature"] = tc["signature"]
    return part


_LOCAL_ID: Final = "ck-call-"
"""Prefix of the ids computekit gives calls Google sent without one (older models): never sent to Google."""


def _function_response(m: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    call_id = m.get("tool_call_id")
    if not call_id:
        raise InvalidRequestError("a tool message needs the tool_call_id of the call it answers")
    name = m.get("name") or names.get(call_id)
    if not name:
        raise InvalidRequestError(
            f"tool message for {call_id!r}: no earlier assistant message has that tool call, and Gemini needs the "
            "function's name; pass name= on the tool message"
        )
    content = m.get("content")
    if isinstance(content, list):
        content = "".join(p.get("text", "") if isinstance(p, Mapping) else str(p) for p in content)
    response: Any
    if isinstance(content, str):
        try:
            decoded = json.loads(content)
        except ValueError:
            decoded = None
        # Gemini wants an object: a JSON object result is sent as it is, anything else under "result".
        response = decoded if isinstance(decoded, dict) else {"result": content}
    else:
        response = content if isinstance(content, dict) else {"result": content}
    out: dict[str, Any] = {"name": name, "response": response}
    if not str(call_id).startswith(_LOCAL_ID):
        out["id"] = call_id
    return {"functionResponse": out}


def wire_contents(messages: list[dict[str, Any]]) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """computekit's messages -> Gemini's ``systemInstruction`` (``None`` when absent) and ``contents``."""
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    for m in messages:
        role = m.get("role")
        if role in _SYSTEM_ROLES:
            system.extend(_parts(m.get("content")))
            continue
        if role == "tool":
            part = _function_response(m, names)
            # Parallel results travel together, in one user turn, as Gemini expects.
            if contents and contents[-1]["role"] == "user" and all("functionResponse" in p
                                                                   for p in contents[-1]["parts"]):
                contents[-1]["parts"].append(part)
            else:
                contents.append({"role": "user", "parts": [part]})
            continue
        if role == "assistant":
            parts = _parts(m.get("content"))
            parts = [p for p in parts if p != {"text": ""}]
            for tc in m.get("tool_calls") or []:
                part = _function_call_part(tc)
                call_id, name, _ = _call_fields(tc)
                if call_id:
                    names[call_id] = name
                parts.append(part)
            contents.append({"role": "model", "parts": parts or [{"text": ""}]})
            continue
        contents.append({"role": "user", "parts": _parts(m.get("content")) or [{"text": ""}]})
    return ({"parts": system} if system else None), contents


def wire_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Function tools -> one ``functionDeclarations`` tool; Gemini-native tools pass unchanged."""
    declarations: list[dict[str, Any]] = []
    native: list[dict[str, Any]] = []
    for t in tools:
        if "functionDeclarations" in t or ("type" not in t and "function" not in t and "name" not in t):
            native.append(dict(t))  # googleSearch, codeExecution, urlContext, fileSearch ...
            continue
        fn = t.get("function") if isinstance(t.get("function"), Mapping) else t
        assert isinstance(fn, Mapping)
        if not fn.get("name"):
            raise InvalidRequestError("a function tool needs a name")
        decl: dict[str, Any] = {"name": fn["name"]}
        if fn.get("description"):
            decl["description"] = fn["description"]
        params = fn.get("parameters")
        if params:
            decl["parametersJsonSchema"] = params
        declarations.append(decl)
    out = [{"functionDeclarations": declarations}] if declarations else []
    return native + out


def wire_tool_choice(choice: Any) -> dict[str, Any]:
    """OpenAI-style ``tool_choice`` -> ``toolConfig`` (``AUTO``/``ANY``/``NONE``, or one named function)."""
    if isinstance(choice, str):
        modes = {"auto": "AUTO", "required": "ANY", "any": "ANY", "none": "NONE"}
        if choice in modes:
            return {"functionCallingConfig": {"mode": modes[choice]}}
        return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [choice]}}
    if isinstance(choice, Mapping):
        fn = choice.get("function")
        if isinstance(fn, Mapping) and fn.get("name"):
            return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [fn["name"]]}}
        return dict(choice)  # Gemini's own toolConfig
    raise InvalidRequestError(f"tool_choice {choice!r} is not understood: use auto, required, none or a name")


def _response_format(fmt: Any) -> dict[str, Any]:
    if not isinstance(fmt, Mapping):
        raise InvalidRequestError("response_format must be a dict")
    kind = fmt.get("type")
    if kind == "json_object":
        return {"responseMimeType": "application/json"}
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, Mapping) else None
        if not isinstance(schema, Mapping):
            raise InvalidRequestError("response_format json_schema needs json_schema.schema")
        return {"responseMimeType": "application/json", "responseJsonSchema": dict(schema)}
    if kind == "text":
        return {}
    if kind is None and set(fmt) <= _GENERATION_FIELDS:
        return dict(fmt)  # Gemini's own: {"responseMimeType": ..., "responseSchema": ...}
    raise InvalidRequestError(f"response_format type {kind!r} is not supported by Gemini")


# --------------------------------------------------------------------------------------------- response side


def _count(raw: Mapping[str, Any], key: str) -> int:
    return token_count(raw, key, where="usageMetadata")


def _modality(details: Any, modality: str) -> int:
    if not isinstance(details, list):
        return 0
    return sum(_count(d, "tokenCount") for d in details if isinstance(d, dict) and d.get("modality") == modality)


def gemini_usage(raw: Mapping[str, Any] | None, *, web_searches: int = 0) -> Usage:
    """Gemini's ``usageMetadata`` -> :class:`Usage` (see the module doc for the convention).

    Raises:
        ValueError: A count is not a non-negative integer.
    """
    if not raw:
        return Usage()
    prompt = _count(raw, "promptTokenCount")
    tool_prompt = _count(raw, "toolUsePromptTokenCount")
    thoughts = _count(raw, "thoughtsTokenCount")
    candidates = _count(raw, "candidatesTokenCount")
    # Audio read from the cache is inside cachedContentTokenCount: only the rest is priced as audio input.
    audio_in = (_modality(raw.get("promptTokensDetails"), "AUDIO")
                + _modality(raw.get("toolUsePromptTokensDetails"), "AUDIO")
                - _modality(raw.get("cacheTokensDetails"), "AUDIO"))
    units = {"web_searches": Decimal(web_searches)} if web_searches else {}
    return Usage(
        input_tokens=prompt + tool_prompt,
        output_tokens=candidates + thoughts,
        cached_input_tokens=_count(raw, "cachedContentTokenCount"),
        cached_input_audio_tokens=_modality(raw.get("cacheTokensDetails"), "AUDIO"),
        reasoning_tokens=thoughts,
        input_audio_tokens=max(audio_in, 0),
        output_audio_tokens=_modality(raw.get("candidatesTokensDetails"), "AUDIO"),
        output_image_tokens=_modality(raw.get("candidatesTokensDetails"), "IMAGE"),
        units=units,
    )


def _web_searches(model: str, candidate: Mapping[str, Any] | None) -> int:
    grounding = candidate.get("groundingMetadata") if candidate else None
    queries = grounding.get("webSearchQueries") if isinstance(grounding, dict) else None
    if not isinstance(queries, list) or not queries:
        return 0
    return len(queries) if _PER_QUERY_SEARCH.search(model) else 1


class _Answer:
    """What one candidate's parts say, accumulated (a whole response, or the events of a stream)."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.calls: list[ToolCall] = []
        self.parts: list[dict[str, Any]] = []
        self.finish: str | None = None
        self.candidate: dict[str, Any] = {}

    def add(self, candidate: Mapping[str, Any]) -> tuple[str, list[dict[str, Any]]]:
        """Fold one candidate in; returns the new text and tool-call fragments."""
        content = candidate.get("content")
        parts = content.get("parts") if isinstance(content, dict) else None
        new_text: list[str] = []
        new_calls: list[dict[str, Any]] = []
        for part in parts if isinstance(parts, list) else []:
            if not isinstance(part, dict):
                continue
            self.parts.append(part)
            call = part.get("functionCall")
            if isinstance(call, dict):
                tc = ToolCall(
                    id=str(call.get("id") or f"{_LOCAL_ID}{len(self.calls)}"),
                    name=str(call.get("name") or ""),
                    arguments=json.dumps(call.get("args") if call.get("args") is not None else {},
                                         ensure_ascii=False),
                    signature=part.get("thoughtSignature"),
                )
                new_calls.append({"index": len(self.calls), "id": tc.id, "name": tc.name, "arguments": tc.arguments})
                self.calls.append(tc)
            elif isinstance(part.get("text"), str) and not part.get("thought"):
                new_text.append(part["text"])
        self.text.extend(new_text)
        for k, v in candidate.items():
            if k != "content":
                self.candidate[k] = v
        if candidate.get("finishReason"):
            self.finish = candidate["finishReason"]
        return "".join(new_text), new_calls


class GeminiWire(Adapter):
    """The ``generateContent`` wire format, shared by ``gemini`` and ``vertex``."""

    capabilities = Capabilities(complete=True, stream=True, tools=True, json_mode=True, embed=True)
    service_tier_in_body: ClassVar[bool] = True
    """Whether ``service_tier`` goes in the body (the Gemini API) or is left to :meth:`tier_headers` (Vertex)."""

    # ----------------------------------------------------------------------------------------- URLs & auth

    def model_url(self, model: str, method: str) -> str:
        """The URL of ``model``'s ``method`` (``generateContent`` ...)."""
        path = model if "/" in model else f"models/{model}"
        return self.url(f"{path}:{method}")

    def auth_headers(self) -> dict[str, str]:
        """The key in ``x-goog-api-key`` (never in the URL, where proxies and logs would keep it)."""
        return {"x-goog-api-key": self.require_key()}

    def tier_headers(self, service_tier: str | None) -> dict[str, str]:
        """Headers that ask for a service tier, where the API takes it in a header."""
        return {}

    # ----------------------------------------------------------------------------------------- complete

    def structured_schema(self, req: CompleteRequest) -> Any:
        return subset_schema(req.output.schema, name=req.output.name) if req.output is not None else None

    def complete_body(self, req: CompleteRequest) -> dict[str, Any]:
        """The ``GenerateContentRequest`` body (without ``model``: it is in the URL)."""
        if req.prompt is not None:
            raise self.unsupported("text_completion")
        system, contents = wire_contents(req.messages)
        body: dict[str, Any] = {"contents": contents}
        if system is not None:
            body["systemInstruction"] = system
        if req.tools:
            body["tools"] = wire_tools(req.tools)
        if req.tool_choice is not None:
            body["toolConfig"] = wire_tool_choice(req.tool_choice)
        config = sampling_options(req, {"temperature": "temperature", "top_p": "topP", "max_tokens": "maxOutputTokens",
                                        "stop": "stopSequences", "seed": "seed"})
        if req.output is not None:  # a type: its schema in responseSchema's OpenAPI subset ($refs inlined)
            config.update({"responseMimeType": "application/json", "responseSchema": self.structured_schema(req)})
        elif req.response_format is not None:
            config.update(_response_format(req.response_format))
        if req.service_tier is not None and self.service_tier_in_body:
            body["serviceTier"] = req.service_tier
        if req.user is not None:
            raise InvalidRequestError(f"{self.provider} has no end-user field: pass labels in extra_body instead")
        for key, value in req.extra.items():
            if key in _GENERATION_FIELDS:
                config[key] = value
            elif key == "generationConfig" and isinstance(value, Mapping):
                config.update(value)
            else:
                body[key] = value
        if config:
            body["generationConfig"] = config
        return body

    def build_complete(self, req: CompleteRequest) -> HTTPRequest:
        body = self.complete_body(req)
        method = "streamGenerateContent?alt=sse" if req.stream else "generateContent"
        headers = self.headers()
        headers.update(self.tier_headers(req.service_tier))
        return HTTPRequest("POST", self.model_url(req.model, method), headers, json=body, stream=req.stream)

    def parse_complete(self, req: CompleteRequest, resp: HTTPResponse) -> Completion:
        data = self.json_object(resp, req.model)
        if isinstance(data.get("error"), dict):  # an error answered with 200
            raise self.map_error(HTTPResponse(_error_status(data), resp.headers, resp.content, resp.url), req.model)
        self._check_blocked(data, resp, req.model)
        candidates = data.get("candidates")
        answer = _Answer()
        first = candidates[0] if isinstance(candidates, list) and candidates else None
        if first is not None:
            if not isinstance(first, dict):
                raise self.malformed(resp, req.model, "a candidate is not a JSON object")
            answer.add(first)
        elif candidates is not None and not isinstance(candidates, list):
            raise self.malformed(resp, req.model, "candidates is not a list")
        elif "usageMetadata" not in data:
            raise self.malformed(resp, req.model, "no candidates and no usage in the response")
        if answer.finish in _BLOCKED and not answer.text and not answer.calls:
            raise self._filtered(resp, req.model, f"the answer was blocked ({answer.finish})")
        try:
            return self._completion(req, data, answer, self.request_id(resp.headers))
        except ValueError as e:  # a count that is not a count, an id that is not a string ...
            raise self.malformed(resp, req.model, str(e).splitlines()[0]) from e

    def _completion(self, req: CompleteRequest, data: Mapping[str, Any], answer: _Answer,
                    request_id: str | None) -> Completion:
        raw_usage = data.get("usageMetadata")
        text = "".join(answer.text)
        calls = answer.calls
        result = Completion(
            provider=self.provider,
            model=req.model,
            text=text,
            message=Message(role="assistant", content=text, tool_calls=calls or None),
            tool_calls=calls,
            finish_reason=_finish(answer.finish, bool(calls)),
            id=data.get("responseId"),
            service_tier=self.served_tier(req, raw_usage if isinstance(raw_usage, dict) else None),
            response_model=data.get("modelVersion"),
            usage=gemini_usage(raw_usage if isinstance(raw_usage, dict) else None,
                               web_searches=_web_searches(data.get("modelVersion") or req.model, answer.candidate)),
            request_id=request_id,
            raw=dict(data),
        )
        result._usage_reported = isinstance(raw_usage, dict)
        return result

    def served_tier(self, req: CompleteRequest, usage: Mapping[str, Any] | None) -> str | None:
        """The service tier that served the call (it selects the price)."""
        reported = usage.get("serviceTier") if usage else None
        if isinstance(reported, str) and reported:
            return reported.lower()
        return req.service_tier

    def _check_blocked(self, data: Mapping[str, Any], resp: HTTPResponse, model: str) -> None:
        feedback = data.get("promptFeedback")
        reason = feedback.get("blockReason") if isinstance(feedback, dict) else None
        if reason:
            raise self._filtered(resp, model, f"the prompt was blocked ({reason})")

    def _filtered(self, resp: HTTPResponse, model: str, why: str) -> ContentFilteredError:
        return self.answer_error(ContentFilteredError, resp, model, f"{why} by Google's safety filters")

    def stream_decoder(self, req: CompleteRequest) -> StreamDecoder:
        return _GeminiStream(self, req)

    # ----------------------------------------------------------------------------------------- embed

    def build_embed(self, req: EmbedRequest) -> HTTPRequest:
        """One input: ``embedContent``; several: ``batchEmbedContents`` (one request each, in one call)."""
        model_path = req.model if "/" in req.model else f"models/{req.model}"

        def one(text: str) -> dict[str, Any]:
            item: dict[str, Any] = {"content": {"parts": [{"text": text}]}}
            if req.dimensions is not None:
                item["outputDimensionality"] = req.dimensions
            item.update(req.extra)
            return item

        if len(req.inputs) == 1:
            return HTTPRequest("POST", self.model_url(req.model, "embedContent"), self.headers(),
                               json=one(req.inputs[0]))
        body = {"requests": [{"model": model_path, **one(t)} for t in req.inputs]}
        return HTTPRequest("POST", self.model_url(req.model, "batchEmbedContents"), self.headers(), json=body)

    def parse_embed(self, req: EmbedRequest, resp: HTTPResponse) -> Embeddings:
        data = self.json_object(resp, req.model)
        items = data.get("embeddings") if "embeddings" in data else [data.get("embedding")]
        vectors: list[list[float]] = []
        for item in items if isinstance(items, list) else [None]:
            values = item.get("values") if isinstance(item, dict) else None
            if not isinstance(values, list):
                raise self.malformed(resp, req.model, "no embedding values in the response")
            vectors.append(list(values))
        if len(vectors) != len(req.inputs):
            raise self.malformed(resp, req.model, f"{len(vectors)} embeddings for {len(req.inputs)} inputs")
        raw_usage = data.get("usageMetadata")
        result = Embeddings(
            provider=self.provider,
            model=req.model,
            vectors=vectors,
            usage=Usage(input_tokens=int(raw_usage.get("promptTokenCount") or 0)) if isinstance(raw_usage, dict)
            else Usage(),
            request_id=self.request_id(resp.headers),
            raw=data,
        )
        # The Gemini API reports no token count for embeddings: the cost is then unknown, never 0.
        result._usage_reported = isinstance(raw_usage, dict)
        return result

    # ----------------------------------------------------------------------------------------- usage & price

    def usage(self, raw: Mapping[str, Any] | None) -> Usage:
        return gemini_usage(raw)

    def price_ref(self, model: str, result: Result | None = None) -> PriceRef:
        """Priced as the model version that answered, at the tier that served it (flex and priority differ)."""
        answered = result.response_model if isinstance(result, Completion) else None
        ctx: tuple[tuple[str, str], ...] = ()
        if isinstance(result, Completion) and result.service_tier in ("flex", "priority"):
            ctx = (("service_tier", result.service_tier),)
        bare = model.rsplit("/", 1)[-1]
        return PriceRef(provider=self.provider, model=answered or bare, table_provider=self.table_provider,
                        context=ctx)

    def error_cost(self, error: ProviderError) -> Cost | None:
        """A safety block answered with 200 may bill its prompt: its cost is unknown (the reservation stays)."""
        if isinstance(error, ContentFilteredError) and error.status == 200:
            usage = error.body.get("usageMetadata") if isinstance(error.body, dict) else None
            if isinstance(usage, dict) and usage.get("promptTokenCount"):
                return Cost.unknown("blocked by Google's safety filters: the prompt tokens may be billed")
        return super().error_cost(error)

    # ----------------------------------------------------------------------------------------- errors

    def classify_error(self, status: int, body: Any) -> type[APIStatusError] | None:
        err = body.get("error") if isinstance(body, dict) else None
        if not isinstance(err, dict):
            return None
        message = str(err.get("message") or "").lower()
        if status == 400 and any(p in message for p in _CONTEXT_PHRASES):
            return ContextWindowExceededError
        return _RPC_STATUS.get(str(err.get("status") or ""))

    def map_error(self, resp: HTTPResponse, model: str | None) -> ProviderError:
        """Google sends how long to wait in the body (``google.rpc.RetryInfo``): without a ``Retry-After`` header,
        it is exposed as one, so that the retry loop honours it like any other hint."""
        err = super().map_error(resp, model)
        if "retry-after" not in err.headers and "retry-after-ms" not in err.headers:
            delay = _retry_delay(err.body)
            if delay is not None:
                err.headers["retry-after"] = delay
        return err


def _retry_delay(body: Any) -> str | None:
    err = body.get("error") if isinstance(body, dict) else None
    details = err.get("details") if isinstance(err, dict) else None
    for d in details if isinstance(details, list) else []:
        if isinstance(d, dict) and d.get("@type") == _RETRY_INFO and isinstance(d.get("retryDelay"), str):
            seconds = d["retryDelay"].removesuffix("s")
            try:
                return f"{float(seconds):g}"
            except ValueError:
                return None
    return None


def _error_status(data: Mapping[str, Any]) -> int:
    err = data.get("error")
    code = err.get("code") if isinstance(err, Mapping) else None
    return code if isinstance(code, int) and 400 <= code < 600 else 500


class _GeminiStream(StreamDecoder):
    """``streamGenerateContent?alt=sse`` events (each a whole ``GenerateContentResponse``) -> Chunk.

    Each event carries the usage so far; the last one's is the call's. The stream has no end marker: it is done
    when a candidate has a finish reason.
    """

    def __init__(self, adapter: GeminiWire, req: CompleteRequest) -> None:
        self.adapter = adapter
        self.req = req
        self.answer = _Answer()
        self.meta: dict[str, Any] = {}
        self.raw_usage: dict[str, Any] | None = None
        self.done = False

    def feed(self, event: SSEEvent) -> list[Chunk]:
        resp = HTTPResponse(200, {}, event.data.encode())
        data = self.adapter.json_object(resp, self.req.model)  # each event is a whole response object
        if isinstance(data.get("error"), dict):
            raise self.adapter.map_error(HTTPResponse(_error_status(data), {}, resp.content), self.req.model)
        self.adapter._check_blocked(data, resp, self.req.model)
        for k in ("responseId", "modelVersion", "createTime", "promptFeedback"):
            if data.get(k) is not None:
                self.meta[k] = data[k]
        chunk = Chunk(raw=data)
        candidates = data.get("candidates")
        if isinstance(candidates, list) and candidates:
            if not isinstance(candidates[0], dict):
                raise self.adapter.malformed(resp, self.req.model, "a candidate is not a JSON object")
            chunk.text, chunk.tool_calls = self.answer.add(candidates[0])
            if candidates[0].get("finishReason"):
                self.done = True
                if self.answer.finish in _BLOCKED and not self.answer.text and not self.answer.calls:
                    raise self.adapter._filtered(resp, self.req.model, f"the answer was blocked ({self.answer.finish})")
                chunk.finish_reason = _finish(self.answer.finish, bool(self.answer.calls))
        if isinstance(data.get("usageMetadata"), dict):
            self.raw_usage = data["usageMetadata"]
            if self.done:  # counts are running totals: the call's usage is the last event's
                try:
                    chunk.usage = self._usage()
                except ValueError as e:
                    raise self.adapter.malformed(resp, self.req.model, str(e)) from e
        return [chunk]

    def _usage(self) -> Usage:
        model = self.meta.get("modelVersion") or self.req.model
        return gemini_usage(self.raw_usage, web_searches=_web_searches(model, self.answer.candidate))

    def result(self) -> Completion:
        raw = {**self.meta,
               "candidates": [{**self.answer.candidate, "content": {"role": "model", "parts": self.answer.parts}}],
               "usageMetadata": self.raw_usage}
        try:
            result = self.adapter._completion(self.req, raw, self.answer, None)
        except ValueError as e:
            body = json.dumps(raw, default=str).encode()
            raise self.adapter.malformed(HTTPResponse(200, {}, body), self.req.model, str(e).splitlines()[0]) from e
        result._usage_reported = self.raw_usage is not None
        return result


class GeminiAdapter(GeminiWire):
    """The Gemini API (``gemini:`` models). Key: ``GEMINI_API_KEY`` or ``GOOGLE_API_KEY``."""

    name = "gemini"
    key_env_vars = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
    default_base_url = GEMINI_BASE_URL
    table_provider = "google"
    docs_url = "https://ai.google.dev/api/generate-content"
    capabilities = Capabilities(complete=True, stream=True, tools=True, json_mode=True, embed=True, batch=True)

    def unsupported_reason(self, capability: str) -> str | None:
        if capability == "finetune":
            return "the Gemini API's model tuning is not offered through computekit"
        return super().unsupported_reason(capability)

    # ----------------------------------------------------------------------------------------- batches
    # Batch mode (batchGenerateContent): the requests go inline, each keyed by its custom_id; the results come
    # inline in the finished batch, or in a responses file for a large one.

    def batch_spec(self, model: str) -> BatchSpec:
        return BatchSpec(max_requests=None, max_bytes=GEMINI_BATCH_MAX_BYTES, uploads=False, embed=False)

    def batch_line(self, custom_id: str, req: CompleteRequest | EmbedRequest) -> dict[str, Any]:
        if not isinstance(req, CompleteRequest):
            raise self.unsupported("batch embeddings")
        if req.stream:
            raise InvalidRequestError("gemini: a batched request cannot stream")
        return {"request": self.complete_body(req), "metadata": {"key": custom_id}}

    def build_batch_create(self, model: str, kind: str, file_ref: str | None, lines: Any,
                           metadata: Mapping[str, str]) -> HTTPRequest:
        name = metadata.get("name") or "computekit batch"
        body = {"batch": {"displayName": name, "inputConfig": {"requests": {"requests": list(lines)}}}}
        return HTTPRequest("POST", self.model_url(model, "batchGenerateContent"), self.headers(), json=body)

    def parse_batch(self, model: str, resp: HTTPResponse) -> BatchState:
        data = self.json_object(resp, model)
        # An operation (create, get) carries the batch in metadata, and its output in response once done; a
        # bare batch object is read as it is.
        batch = {**obj(data.get("metadata")), **obj(data.get("response"))} if "metadata" in data else data
        state = str(batch.get("state") or "")
        short = state.removeprefix("BATCH_STATE_").removeprefix("JOB_STATE_")
        name = batch.get("name") or data.get("name")
        if not isinstance(name, str) or short not in _BATCH_STATES:
            raise self.malformed(resp, model, "not a batch")
        stats = obj(batch.get("batchStats"))
        output = {**obj(batch.get("output")), **{k: v for k, v in batch.items() if k in ("responsesFile",
                                                                                         "inlinedResponses")}}
        responses = output.get("responsesFile")
        self.check_batch_ids(resp, model, {"name": name.removeprefix("batches/"), "responsesFile": (
            responses.removeprefix("files/") if isinstance(responses, str) else None)})
        return BatchState(
            id=name.removeprefix("batches/"), model=model or str(batch.get("model") or "").removeprefix("models/"),
            status=_BATCH_STATES[short], provider_status=state,
            total=count(stats.get("requestCount")), completed=count(stats.get("successfulRequestCount")) or 0,
            failed=count(stats.get("failedRequestCount")) or 0,
            output_ref=output.get("responsesFile") if isinstance(output.get("responsesFile"), str) else None,
            created_at=unix_time(batch.get("createTime")), ended_at=unix_time(batch.get("endTime")),
            raw={**data, "_output": output},
        )

    def build_batch_get(self, state: BatchState) -> HTTPRequest:
        return HTTPRequest("GET", self.url(f"batches/{state.id}"), self.headers())

    def build_batch_cancel(self, state: BatchState) -> HTTPRequest:
        return HTTPRequest("POST", self.url(f"batches/{state.id}:cancel"), self.headers())

    def build_batch_results(self, state: BatchState) -> list[HTTPRequest]:
        if not state.output_ref:
            return []
        # Files are downloaded from the API's /download root, on the same host.
        root, _, version = self.settings.base_url.rstrip("/").rpartition("/")
        url = f"{root}/download/{version}/{state.output_ref}:download?alt=media"
        return [HTTPRequest("GET", url, self.headers(), stream=True)]

    def batch_inline_results(self, state: BatchState) -> list[Any]:
        inlined = obj(state.raw).get("_output", {}).get("inlinedResponses")
        items = inlined.get("inlinedResponses") if isinstance(inlined, dict) else inlined
        return list(items) if isinstance(items, list) else []

    def batch_record_id(self, data: Mapping[str, Any]) -> Any:
        return obj(data.get("metadata")).get("key", data.get("key"))

    def parse_batch_line(self, state: BatchState, line: bytes | Mapping[str, Any]) -> BatchItem:
        data = self.batch_record(state, line)
        key = self.batch_record_id(data)
        if not isinstance(key, str):
            raise self.malformed(self.batch_response(200, data), state.model, "a batch result has no key")
        if isinstance(data.get("response"), dict):
            return self.batch_answer(state, key, data["response"])
        error = obj(data.get("error"))
        if not error:
            raise self.malformed(self.batch_response(200, data), state.model,
                                 f"batch result {key!r} has neither a response nor an error")
        code = error.get("code")
        status = _RPC_CODE_STATUS.get(code, 500) if isinstance(code, int) else 500
        return self.batch_failure(state, key, status, {"error": {**error, "code": status}})
