"""AI21: Jamba chat completions (``ai21:jamba-mini``, ``ai21:jamba-large``), tools and streaming.

AI21's chat endpoint (``POST {base}/chat/completions``, base ``https://api.ai21.com/studio/v1``) speaks a close
relative of OpenAI's wire format, so this adapter reuses :class:`~computekit.adapters.openai.OpenAIWire` and
overrides only what differs (checked against AI21's OpenAPI description, ``shared/specs/ai21-openapi.json``):

- the body has no ``seed``, ``user``, ``service_tier``, ``tool_choice`` or ``stream_options``: asking for the
  first four raises
  :class:`~computekit.InvalidRequestError` before any HTTP, and streams are sent without ``stream_options``
  because AI21 puts the usage in the last streamed message on its own (``ChatCompletionVllmStreamingMessage``:
  "Included in the last message only");
- an assistant message's ``content`` is a string when present (``AssistantMessage``): a tool-call turn without
  text is sent without ``content`` rather than with ``null``;
- responses carry no ``model``, and their ``id`` is documented as the *request's* id: it is the request id of
  a result (streamed or not); error responses have no body id, so errors keep a header's id when there is one;
- errors are FastAPI-shaped: ``{"detail": "..."}`` or ``{"detail": [{"loc", "msg", "type"}]}`` (422).

It speaks plain HTTP: the ``ai21`` SDK pins ``tenacity<9``, which would break computekit's dependency set.
genai-prices has no AI21 prices; Jamba is priced from computekit's own dated table (``pricing/data/tokens.toml``).
AI21 offers no embeddings endpoint, so ``embed()`` is not a capability.
"""

from __future__ import annotations

from typing import Any

from .._exceptions import InvalidRequestError
from .._types import Completion
from ._base import Capabilities, CompleteRequest, HTTPRequest, HTTPResponse, StreamDecoder
from .openai import OpenAIWire, _ChatStream

__all__ = ["AI21Adapter"]

# Fields of computekit's complete() that AI21's ChatRequest does not have.
_UNSUPPORTED_FIELDS = ("seed", "user", "service_tier", "tool_choice")


def detail_message(body: Any) -> str | None:
    """The message of a FastAPI-style error body (``detail`` as a string or a list of validation errors)."""
    if not isinstance(body, dict):
        return None
    detail = body.get("detail")
    if isinstance(detail, str) and detail:
        return detail
    if isinstance(detail, list) and detail:
        parts = []
        for d in detail:
            if isinstance(d, dict):
                loc = ".".join(str(p) for p in d.get("loc") or [])
                parts.append(f"{loc}: {d.get('msg', '')}" if loc else str(d.get("msg", "")))
            else:
                parts.append(str(d))
        return "; ".join(parts)
    return None


class AI21Adapter(OpenAIWire):
    """AI21 Studio (``ai21:`` models). Keys: ``AI21_API_KEY``."""

    name = "ai21"
    capabilities = Capabilities(complete=True, stream=True, tools=True, json_mode=True)
    key_env_vars = ("AI21_API_KEY",)
    default_base_url = "https://api.ai21.com/studio/v1"
    base_url_env = "AI21_API_HOST"  # ai21-python: the full base, /studio/v1 included
    table_provider = None  # genai-prices has no AI21: computekit's tokens.toml prices Jamba
    include_stream_usage = False  # AI21 sends usage in the last chunk without being asked
    docs_url = "https://docs.ai21.com/reference/jamba-1-6-api-ref"

    @classmethod
    def pricing_for(cls, provider: str) -> str:
        return "computekit's `tokens.toml` (AI21's pricing page)"

    # ----------------------------------------------------------------------------------------- complete

    def build_complete(self, req: CompleteRequest) -> HTTPRequest:
        for name in _UNSUPPORTED_FIELDS:
            if getattr(req, name) is not None:
                raise InvalidRequestError(f"ai21: the chat API has no {name!r} parameter")
        http = super().build_complete(req)
        for m in (http.json or {}).get("messages") or []:
            if m.get("role") == "assistant" and "content" in m and m["content"] is None:
                del m["content"]  # AI21's AssistantMessage.content is a string: absent, never null
        return http

    def structured_mode(self, model: str) -> str:
        return "json_object"  # AI21's ResponseFormat: text or json_object; the schema goes in a system message

    def parse_complete(self, req: CompleteRequest, resp: HTTPResponse) -> Completion:
        result = super().parse_complete(req, resp)
        result.request_id = result.id or result.request_id  # AI21 documents the body id as the request's id
        return result

    def stream_decoder(self, req: CompleteRequest) -> StreamDecoder:
        return _AI21Stream(self, req)

    # ----------------------------------------------------------------------------------------- errors

    def error_message(self, body: Any) -> str:
        return detail_message(body) or super().error_message(body)


class _AI21Stream(_ChatStream):
    """OpenAI-style chunks; the stream's ``id`` is the request id."""

    def result(self) -> Completion:
        result = super().result()
        result.request_id = result.id or result.request_id
        return result
