"""OpenAI's Responses API (``POST /v1/responses``): the request, the answer and its ``response.*`` stream, for the
adapters that speak OpenAI's wire format (``openai``, ``azure``, and OpenAI-compatible hosts whose profile says
they serve it).

What maps to what:

- messages -> ``input`` items: ``system``/``developer``/``user``/``assistant`` messages (text, or ``input_text`` /
  ``input_image`` parts), an assistant's ``tool_calls`` -> ``function_call`` items, ``tool`` messages ->
  ``function_call_output`` items. An assistant message that came from a Responses answer carries that answer's
  output items (reasoning, encrypted reasoning, built-in tool calls, messages) and they are sent back as they came:
  a reasoning model needs its reasoning items on the next turn (with ``store: false`` they are only there, as
  ``encrypted_content``, which computekit then asks for with ``include``).
- ``max_tokens`` -> ``max_output_tokens`` (reasoning included: the true bound), ``temperature``, ``top_p``,
  ``user``, ``service_tier``; tools: function tools flattened (``{"type": "function", "name", ...}``, ``strict``
  false unless given, as in chat), built-in tools
  (``web_search``, ``file_search``, ``code_interpreter``, ``image_generation``, ``mcp`` ...) pass as they are;
  ``response_format`` -> ``text.format``. ``stop`` and ``seed`` do not exist there and are refused.
  ``previous_response_id``, ``conversation``, ``store``, ``include``, ``reasoning``, ``max_tool_calls`` ... go in
  ``extra_body``.
- The answer: ``output_text`` parts -> ``text``; ``function_call`` items -> ``tool_calls`` (``id`` is the
  ``call_id``); a ``refusal`` part -> ``Completion.refusal``; every output item is kept in
  ``message.provider_fields`` (under ``"<provider>:responses"``, so the chat format never sends them).
  ``status`` -> ``finish_reason``: ``completed`` -> ``stop`` (``tool_calls`` when a function was called),
  ``incomplete`` -> ``length`` or ``content_filter``; ``failed`` (or an ``error`` / ``response.failed`` event in
  a 200 stream) is typed by what its error carries.
- Usage: ``input_tokens`` (cached included), ``input_tokens_details.cached_tokens``, ``output_tokens`` (reasoning
  included), ``output_tokens_details.reasoning_tokens``: computekit's own convention, unchanged. Built-in tool
  calls billed per call are counted in ``usage.units`` (``web_search_calls``, or ``web_search_preview_calls`` for
  the older preview tool, ``file_search_calls``, ``image_generation_calls``, and ``containers``: the distinct
  code-interpreter containers the answer used), each priced on a line of its own from ``tools.toml`` (or
  unpriced, with a warning, where no price is known).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final

from .._background import BACKGROUND_ENDED, BackgroundResponse
from .._exceptions import InvalidRequestError, ProviderError
from .._http import HTTPResponse, SSEEvent
from .._structured import strict_schema
from .._types import Chunk, Completion, Message, ToolCall, Usage
from ._base import Adapter, CompleteRequest, StreamDecoder, carried_status, event_object

__all__ = [
    "FEE_ITEMS",
    "IMAGE_GENERATIONS",
    "PREVIEW_SEARCHES",
    "RESPONSES_ONLY",
    "STORED_CONTEXT",
    "ResponsesStream",
    "build_body",
    "builtin_tools",
    "fee_tools",
    "fee_units",
    "in_family",
    "items_key",
    "parse_background",
    "parse_response",
    "path_id",
    "responses_only",
    "responses_usage",
    "stored_context",
]

RESPONSES_ONLY: Final = ("o1-pro", "o3-pro", "o3-deep-research", "o4-mini-deep-research", "computer-use-preview",
                         "codex-mini", "gpt-5-codex", "gpt-5-pro")
"""Model families OpenAI serves on the Responses API only (its model pages): a call to one of them goes there
whatever the provider's ``api`` setting. Also: any ``gpt-5.x`` whose name has ``-pro`` or ``-codex``."""

IMAGE_GENERATIONS: Final = "image_generation_calls"
"""The ``usage.units`` key of ``image_generation`` calls: OpenAI bills each image at the image model's rates (by
quality and size), outside the answer's ``usage`` (which counts the mainline model's tokens only); unpriced in
computekit's table (see ``tools.toml``), so such an answer's cost is unknown rather than short of the image."""

FEE_ITEMS: Final = {"web_search_call": "web_search_calls", "file_search_call": "file_search_calls",
                    "image_generation_call": IMAGE_GENERATIONS}
"""Output items billed per call, and the ``usage.units`` key each is counted under (priced in
``computekit/pricing/data/tools.toml``)."""
CONTAINERS: Final = "containers"
"""The ``usage.units`` key of code-interpreter containers (billed per container session)."""

PREVIEW_SEARCHES: Final = "web_search_preview_calls"
"""The ``usage.units`` key of the older ``web_search_preview`` tool's calls: priced apart from the GA tool's (their
price depends on the model family), and unpriced in computekit's table (see ``tools.toml``)."""

_FEE_TOOLS: Final = {"web_search": "web_search_calls", "web_search_preview": PREVIEW_SEARCHES,
                     "web_search_2025_08_26": "web_search_calls", "web_search_preview_2025_03_11": PREVIEW_SEARCHES,
                     "file_search": "file_search_calls", "code_interpreter": CONTAINERS,
                     "image_generation": IMAGE_GENERATIONS}
_ENCRYPTED_REASONING: Final = "reasoning.encrypted_content"
_ROLE_PART: Final = {"user": "input_text", "system": "input_text", "developer": "input_text",
                     "assistant": "output_text"}
_DROP_ON_INPUT: Final = frozenset({"status"})  # output-item fields the input schema does not take back everywhere


def in_family(model: str, families: tuple[str, ...] | list[str]) -> bool:
    """Whether ``model`` is one of ``families`` (``o3`` covers ``o3``, ``o3-mini``, ``o3-2025-04-16``; ``gpt-5``
    covers ``gpt-5.1`` and ``gpt-5-nano``), after any fine-tune prefix (``ft:``)."""
    name = model.removeprefix("ft:")
    return any(name == f or name.startswith((f + "-", f + ".", f + ":")) for f in families)


def responses_only(model: str) -> bool:
    """Whether OpenAI serves ``model`` on the Responses API only (:data:`RESPONSES_ONLY`, ``gpt-5.x-pro`` and
    ``gpt-5.x-codex``)."""
    name = model.rsplit("/", 1)[-1]
    if in_family(name, RESPONSES_ONLY):
        return True
    return name.startswith("gpt-5") and ("-pro" in name or "-codex" in name)


def items_key(provider: str) -> str:
    """Where a Responses answer's output items are kept in ``Message.provider_fields``."""
    return f"{provider}:responses"


# --------------------------------------------------------------------------------------------- request side


def _part(part: Mapping[str, Any], role: str) -> dict[str, Any]:
    kind = part.get("type")
    if kind == "text":
        return {"type": _ROLE_PART.get(role, "input_text"), "text": part.get("text", "")}
    if kind == "image_url":
        url = part.get("url") or (part.get("image_url") or {}).get("url")
        out: dict[str, Any] = {"type": "input_image", "image_url": url}
        detail = part.get("detail") or (part.get("image_url") or {}).get("detail")
        out["detail"] = detail or "auto"
        return out
    return dict(part)  # a Responses-native part (input_file, input_audio ...)


def _tool_output(content: Any) -> Any:
    if isinstance(content, list):
        return [_part(p, "user") for p in content]
    return "" if content is None else content


def input_items(messages: list[dict[str, Any]], provider: str) -> list[dict[str, Any]]:
    """computekit's messages as Responses ``input`` items."""
    key = items_key(provider)
    out: list[dict[str, Any]] = []
    for m in messages:
        role = m["role"]
        kept = (m.get("provider_fields") or {}).get(key)
        if role == "assistant" and isinstance(kept, Mapping) and isinstance(kept.get("output"), list):
            # A Responses answer: its own items go back as they came (reasoning before the call it led to).
            out.extend({k: v for k, v in item.items() if k not in _DROP_ON_INPUT} for item in kept["output"])
            continue
        if role == "tool":
            out.append({"type": "function_call_output", "call_id": m.get("tool_call_id") or "",
                        "output": _tool_output(m.get("content"))})
            continue
        content = m.get("content")
        if isinstance(content, list):
            out.append({"role": role, "content": [_part(p, role) for p in content]})
        elif content or role != "assistant":
            out.append({"role": role, "content": content or ""})
        for tc in m.get("tool_calls") or []:
            fn = tc.get("function") or tc
            out.append({"type": "function_call", "call_id": tc.get("id") or "", "name": fn.get("name") or "",
                        "arguments": fn.get("arguments") or ""})
    return out


def _tool(t: Mapping[str, Any]) -> dict[str, Any]:
    """A tool in the Responses shape: function tools flattened, built-in tools as they are. A function tool's
    ``strict`` is sent as given, else ``false``: the Responses API's default is strict (a schema that is not
    strict-ready would be refused), chat's is not, and a tool means the same whichever format carries it."""
    if t.get("type") == "function" and isinstance(t.get("function"), Mapping):
        fn: dict[str, Any] = {"type": "function", **t["function"]}
    elif "type" not in t:
        fn = {"type": "function", **t}
    else:
        return dict(t)
    fn.setdefault("strict", False)
    fn.setdefault("parameters", {"type": "object", "properties": {}})
    return fn


def _tool_choice(choice: Any) -> Any:
    if isinstance(choice, Mapping) and choice.get("type") == "function" and isinstance(choice.get("function"),
                                                                                         Mapping):
        return {"type": "function", "name": choice["function"].get("name")}
    return choice


def _text_format(req: CompleteRequest, provider: str) -> dict[str, Any] | None:
    out = req.output
    if out is not None:
        schema = strict_schema(out.schema, name=out.name, dialect=f"{provider}'s strict structured outputs")
        return {"type": "json_schema", "name": out.name, "schema": schema, "strict": True}
    fmt = req.response_format
    if fmt is None:
        return None
    if not isinstance(fmt, Mapping):
        raise InvalidRequestError("response_format must be a dict or a type")
    if fmt.get("type") == "json_schema" and isinstance(fmt.get("json_schema"), Mapping):
        return {"type": "json_schema", **fmt["json_schema"]}  # chat's nesting -> the Responses flat shape
    return dict(fmt)


def build_body(req: CompleteRequest, provider: str, model: str, *, reasoning: bool) -> dict[str, Any]:
    """The JSON body of ``POST /responses`` for ``req`` (``model``: what the host calls it, e.g. a deployment).

    Raises:
        InvalidRequestError: A parameter the Responses API does not have (``stop``, ``seed``).
    """
    for name in ("stop", "seed"):
        if getattr(req, name) is not None:
            raise InvalidRequestError(f"the Responses API has no {name!r} parameter: drop it, or use api='chat'")
    body: dict[str, Any] = {"model": model, "input": input_items(req.messages, provider)}
    if req.max_tokens is not None:
        body["max_output_tokens"] = req.max_tokens
    for name in ("temperature", "top_p", "user", "service_tier"):
        v = getattr(req, name)
        if v is not None:
            body[name] = v
    if req.tools:
        body["tools"] = [_tool(t) for t in req.tools]
    if req.tool_choice is not None:
        body["tool_choice"] = _tool_choice(req.tool_choice)
    fmt = _text_format(req, provider)
    if fmt is not None:
        body["text"] = {"format": fmt}
    if req.stream:
        body["stream"] = True
    body.update(req.extra)
    if req.background:
        body["background"] = True
    elif body.get("background"):
        # A queued answer is not a completion: it would be recorded unpriced and never followed.
        raise InvalidRequestError("background mode is complete(..., background=True), which returns a handle to "
                                  "wait for; not extra_body={'background': True} (and a stream cannot run in the "
                                  "background)")
    if body.get("store") is False and reasoning:
        # Not stored: the reasoning items can come back on the next turn only encrypted, and only when asked for.
        include = list(body.get("include") or [])
        if _ENCRYPTED_REASONING not in include:
            body["include"] = [*include, _ENCRYPTED_REASONING]
    return body


def builtin_tools(req: CompleteRequest) -> list[str]:
    """The types of the request's built-in (server-side) tools: every tool that is not a function."""
    return [str(t.get("type")) for t in req.tools or [] if t.get("type") not in (None, "function", "custom")]


STORED_CONTEXT: Final = ("previous_response_id", "conversation", "prompt")
"""``extra_body`` keys that make the host prepend input the request does not carry (an earlier response and its
context, a stored conversation's items, a stored prompt template), billed as input tokens."""


def stored_context(req: CompleteRequest) -> bool:
    """Whether ``req`` asks the host to prepend stored input (:data:`STORED_CONTEXT`): its input tokens are not
    bounded by its own size."""
    return any(req.extra.get(key) for key in STORED_CONTEXT)


def fee_tools(req: CompleteRequest) -> list[str]:
    """The ``usage.units`` keys the request's built-in tools can bill (per call or per container)."""
    return sorted({_FEE_TOOLS[t["type"]] for t in req.tools or [] if t.get("type") in _FEE_TOOLS})


# --------------------------------------------------------------------------------------------- response side


def responses_usage(raw: Mapping[str, Any] | None) -> Usage:
    """A Responses ``usage`` object in computekit's convention (which it already follows)."""
    if not raw:
        return Usage()
    ind = raw.get("input_tokens_details") or {}
    outd = raw.get("output_tokens_details") or {}
    return Usage(
        input_tokens=raw.get("input_tokens") or 0,
        output_tokens=raw.get("output_tokens") or 0,
        cached_input_tokens=ind.get("cached_tokens") or 0,
        cache_write_tokens=ind.get("cache_write_tokens") or 0,  # billed by newer models (in input_tokens)
        reasoning_tokens=outd.get("reasoning_tokens") or 0,
    )


def _previews(tools: Any) -> bool:
    """Whether a call's tools (as sent, or as the response echoes them) search with ``web_search_preview``."""
    return isinstance(tools, list) and any(
        isinstance(t, Mapping) and _FEE_TOOLS.get(str(t.get("type"))) == PREVIEW_SEARCHES for t in tools)


def fee_units(items: list[Any], preview: bool = False) -> dict[str, int]:
    """Per-call fees in an answer's output items: web and file search calls, and distinct containers.
    ``preview``: the call searched with ``web_search_preview`` (its calls are counted under their own key)."""
    units: dict[str, int] = {}
    containers: set[str] = set()
    for item in items:
        if not isinstance(item, Mapping):
            continue
        kind = FEE_ITEMS.get(str(item.get("type")))
        if kind == "web_search_calls" and preview:
            kind = PREVIEW_SEARCHES
        if kind is not None:
            units[kind] = units.get(kind, 0) + 1
        elif item.get("type") == "code_interpreter_call" and item.get("container_id"):
            containers.add(str(item["container_id"]))
    if containers:
        units[CONTAINERS] = len(containers)
    return units


def _finish(data: Mapping[str, Any], called: bool) -> str | None:
    status = data.get("status")
    if status == "incomplete":
        reason = (data.get("incomplete_details") or {}).get("reason")
        if not isinstance(reason, str) or not reason:
            return "incomplete"  # no reason given: the status itself, not the string "None"
        return {"max_output_tokens": "length", "content_filter": "content_filter"}.get(reason, reason)
    if status in ("completed", "complete"):
        return "tool_calls" if called else "stop"
    return str(status) if status else None


def _text_and_refusal(items: list[Any]) -> tuple[str, str | None]:
    text: list[str] = []
    refusal: list[str] = []
    for item in items:
        if not isinstance(item, Mapping) or item.get("type") != "message":
            continue
        for part in item.get("content") or []:
            if part.get("type") == "output_text":
                text.append(part.get("text") or "")
            elif part.get("type") == "refusal":
                refusal.append(part.get("refusal") or "")
    return "".join(text), ("".join(refusal) or None)


def _calls(items: list[Any]) -> list[ToolCall]:
    return [ToolCall(id=str(i.get("call_id") or i.get("id") or ""), name=str(i.get("name") or ""),
                     arguments=str(i.get("arguments") or ""))
            for i in items if isinstance(i, Mapping) and i.get("type") == "function_call"]


def completion(adapter: Adapter, req: CompleteRequest, data: Mapping[str, Any],
               request_id: str | None) -> Completion:
    """A :class:`Completion` from a whole Responses ``response`` object (its usage, when present, marks it
    priced)."""
    items = data.get("output")
    if not isinstance(items, list):
        items = []
    text, refusal = _text_and_refusal(items)
    calls = _calls(items)
    raw_usage = data.get("usage")
    usage = responses_usage(raw_usage if isinstance(raw_usage, Mapping) else None)
    preview = _previews(req.tools) or _previews(data.get("tools"))
    usage.units.update({k: Decimal(v) for k, v in fee_units(items, preview).items()})
    fields = {items_key(adapter.provider): {"output": items, "id": data.get("id")}} if items else None
    result = Completion(
        provider=adapter.provider,
        model=req.model,
        text=text,
        message=Message(role="assistant", content=text, tool_calls=calls or None, provider_fields=fields),
        tool_calls=calls,
        finish_reason=_finish(data, bool(calls)),
        id=data.get("id"),
        service_tier=data.get("service_tier"),
        response_model=data.get("model"),
        refusal=refusal,
        usage=usage,
        request_id=request_id,
        raw=dict(data),
    )
    result._usage_reported = isinstance(raw_usage, Mapping)
    return result


def _failed(adapter: Adapter, data: Mapping[str, Any], model: str, headers: Mapping[str, str]) -> ProviderError:
    """The typed error of a response whose status is ``failed`` (or an ``error`` event): typed by what it carries."""
    found = data.get("error")
    err = dict(found if isinstance(found, Mapping) else data)
    if err.get("type") in (None, "error") and isinstance(err.get("code"), str):
        err["type"] = err["code"]  # an error event names its kind in code ("rate_limit_exceeded", "server_error")
    body = {"error": err}
    content = json.dumps(body).encode()
    return adapter.map_error(HTTPResponse(carried_status(body, 500), dict(headers), content), model)


_RESPONSE_OBJECTS = (None, "response", "response.compaction")
"""What a whole answer's ``object`` may be: a response, or a compaction of one (``POST /responses/compact``,
billed by its usage like a response)."""


def parse_response(adapter: Adapter, req: CompleteRequest, resp: HTTPResponse) -> Completion:
    """A whole (not streamed) Responses answer.

    Raises:
        ProviderError: The response failed (typed by its error), or the body is not a response object.
    """
    data = adapter.json_object(resp, req.model)
    if data.get("object") not in _RESPONSE_OBJECTS or "output" not in data:
        if "error" in data:
            raise _failed(adapter, data, req.model, resp.headers)
        raise adapter.malformed(resp, req.model, "not a Responses response object (no output)")
    if data.get("status") == "failed":
        raise _ran_and_failed(adapter, req, data, resp.headers, adapter.request_id(resp.headers))
    return completion(adapter, req, data, adapter.request_id(resp.headers))


def _ran_and_failed(adapter: Adapter, req: CompleteRequest, data: Mapping[str, Any], headers: Mapping[str, str],
                    request_id: str | None) -> ProviderError:
    """The typed error of a response object whose status is ``failed``: the model ran, so the attempt is billed
    what the response reports (its usage, or unknown when it reports none), not the 0 of an error response."""
    error = _failed(adapter, data, req.model, headers)
    error._billed = completion(adapter, req, data, request_id)
    return error


class ResponsesStream(StreamDecoder):
    """``response.*`` events: text deltas and function-call argument deltas become chunks; the final
    ``response.completed`` (or ``response.incomplete``) object is the result. An ``error`` or
    ``response.failed`` event raises, typed."""

    def __init__(self, adapter: Adapter, req: CompleteRequest) -> None:
        self.adapter = adapter
        self.req = req
        self.final: dict[str, Any] | None = None
        self.meta: dict[str, Any] = {}
        self.text: list[str] = []
        self.items: dict[int, dict[str, Any]] = {}
        self.calls: dict[int, int] = {}  # output_index -> tool-call index in chunks
        self.done = False

    def feed(self, event: SSEEvent) -> list[Chunk]:
        if event.data == "[DONE]":  # some hosts end the stream the chat way
            self.done = self.done or self.final is not None
            return []
        data = event_object(self.adapter, event, self.req.model)
        kind = data.get("type") or event.event
        if kind == "error" or (kind is None and "error" in data):
            raise _failed(self.adapter, data, self.req.model, {})
        response = data.get("response")
        if kind == "response.failed" and isinstance(response, Mapping):
            raise _ran_and_failed(self.adapter, self.req, {**response, "error": response.get("error") or {}}, {},
                                  None)
        if kind in ("response.created", "response.in_progress", "response.queued") and isinstance(response, Mapping):
            self.meta.update({k: response[k] for k in ("id", "model", "service_tier") if response.get(k)})
            return []
        if kind in ("response.completed", "response.incomplete") and isinstance(response, Mapping):
            self.final = dict(response)
            self.done = True
            chunk = Chunk(raw=data, finish_reason=_finish(response, bool(_calls(response.get("output") or []))))
            if isinstance(response.get("usage"), Mapping):
                chunk.usage = responses_usage(response["usage"])
            return [chunk]
        if kind == "response.output_text.delta":
            piece = str(data.get("delta") or "")
            self.text.append(piece)
            return [Chunk(text=piece, raw=data)] if piece else []
        if kind == "response.output_item.added" and isinstance(data.get("item"), Mapping):
            item = data["item"]
            index = int(data.get("output_index") or 0)
            self.items[index] = dict(item)
            if item.get("type") == "function_call":
                slot = self.calls.setdefault(index, len(self.calls))
                return [Chunk(raw=data, tool_calls=[{"index": slot, "id": item.get("call_id"),
                                                     "name": item.get("name"), "arguments": None}])]
            return []
        if kind == "response.function_call_arguments.delta":
            index = int(data.get("output_index") or 0)
            slot = self.calls.setdefault(index, len(self.calls))
            return [Chunk(raw=data, tool_calls=[{"index": slot, "id": None, "name": None,
                                                 "arguments": data.get("delta")}])]
        if kind == "response.output_item.done" and isinstance(data.get("item"), Mapping):
            self.items[int(data.get("output_index") or 0)] = dict(data["item"])
        return []

    def result(self) -> Completion:
        if self.final is not None:
            data = self.final
            if not data.get("output") and self.items:  # a host that leaves the final output empty
                data = {**data, "output": [self.items[i] for i in sorted(self.items)]}
            return completion(self.adapter, self.req, data, None)
        # Cut short (the caller stopped reading): what arrived so far, unpriced.
        partial = {**self.meta, "output": [self.items[i] for i in sorted(self.items)], "status": "in_progress"}
        result = completion(self.adapter, self.req, partial, None)
        if not result.text and self.text:
            result.text = "".join(self.text)
        return result


# --------------------------------------------------------------------------------------------- background mode

_STATUSES: Final = frozenset({"queued", "in_progress", *BACKGROUND_ENDED})
_RESPONSE_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,256}")


def path_id(response_id: str) -> str:
    """A response id, checked before it goes into a URL path.

    Raises:
        InvalidRequestError: It is not an id (``resp_...``): a ``/``, ``?`` or ``..`` would change the request.
    """
    if not isinstance(response_id, str) or not _RESPONSE_ID.fullmatch(response_id):
        raise InvalidRequestError(f"not a Responses id: {response_id!r} (expected one like 'resp_abc123')")
    return response_id


def parse_background(adapter: Adapter, req: CompleteRequest, resp: HTTPResponse) -> BackgroundResponse:
    """A background response's state (``POST /responses`` with ``background: true``, ``GET /responses/{id}``,
    ``POST /responses/{id}/cancel``): once it has ended, its final :class:`Completion` from the same parser as a
    whole answer (a failed or cancelled one keeps its output and the usage it reported).

    Raises:
        ProviderError: The body is an error, or not a response object with an id and a known status.
    """
    data = adapter.json_object(resp, req.model or None)
    if "error" in data and data.get("object") != "response":
        raise _failed(adapter, data, req.model, resp.headers)
    rid, status = data.get("id"), data.get("status")
    if data.get("object") not in (None, "response") or not isinstance(rid, str) or not rid or status not in _STATUSES:
        raise adapter.malformed(resp, req.model, "not a Responses response object (no id, or an unknown status)")
    model = req.model or str(data.get("model") or "")
    final = None
    if status in BACKGROUND_ENDED:
        final = completion(adapter, CompleteRequest(model=model, messages=[], api="responses"), data,
                           adapter.request_id(resp.headers))
    error = data.get("error")
    handle = BackgroundResponse(id=rid, provider=adapter.provider, model=model, status=status, completion=final,
                                error=error or None, raw=data)
    if status == "failed":
        handle._failure = _failed(adapter, data if error else {"error": {"message": "failed"}}, model, resp.headers)
    return handle
