"""A complete computekit adapter for EchoHost, a made-up text-generation API.

EchoHost stands for the many small hosts with their own JSON API:

- ``POST {base}/generate`` with ``{"model", "prompt", "max_tokens"?}`` and
  ``Authorization: Bearer KEY``;
- a 200 answers ``{"id", "model", "output", "usage": {"prompt_tokens",
  "output_tokens"}}``;
- an error answers ``{"error": {"message", "type"}}`` with its status, and a request
  id in ``x-request-id``.

The adapter only translates. computekit sends the request, retries it, falls back,
prices the result from the config's ``[prices]`` and writes the ledger; none of that
is written here.
"""

from __future__ import annotations

from typing import Any

from computekit import Completion, Message, Usage
from computekit.adapters import (
    Adapter,
    Capabilities,
    CompleteRequest,
    HTTPRequest,
    HTTPResponse,
)


class EchoHostAdapter(Adapter):
    """EchoHost (``echohost:`` models). Key: ``ECHOHOST_API_KEY``."""

    # the name it is registered under, and the provider name in model ids
    name = "echohost"
    # what the client may ask of it; other verbs are refused before any HTTP
    capabilities = Capabilities(complete=True)
    # where the key is looked up when the config gives none
    key_env_vars = ("ECHOHOST_API_KEY",)
    default_base_url = "https://api.echohost.example/v1"
    docs_url = "https://echohost.example/docs/api"
    # Prices: this host is in no price table, so its calls are priced from the
    # config's [prices] (see Adapter.price_ref and pricing_for to point at a
    # genai-prices provider instead).

    def build_complete(self, req: CompleteRequest) -> HTTPRequest:
        if req.tools or req.response_format is not None:
            # refused before any HTTP
            raise self.unsupported("tools and response_format")
        texts = [str(m.get("content") or "") for m in req.messages]
        prompt = "\n\n".join(texts) if req.messages else req.prompt
        body: dict[str, Any] = {"model": req.model, "prompt": prompt}
        if req.max_tokens is not None:
            body["max_tokens"] = req.max_tokens
        body.update(req.extra)  # extra_body= from the caller, passed through
        return HTTPRequest("POST", self.url("generate"), self.headers(), json=body)

    def parse_complete(self, req: CompleteRequest, resp: HTTPResponse) -> Completion:
        try:
            data = resp.json()
        except ValueError:
            raise self.malformed(resp, req.model, "body is not JSON") from None
        if not isinstance(data, dict) or not isinstance(data.get("output"), str):
            raise self.malformed(resp, req.model, "no 'output' text")
        if not isinstance(data.get("usage"), dict):
            # Without usage the call cannot be priced; EchoHost always sends it, so its
            # absence is an error.
            raise self.malformed(resp, req.model, "no 'usage'")
        return Completion(
            provider=self.provider,
            model=req.model,
            text=data["output"],
            message=Message(role="assistant", content=data["output"]),
            finish_reason="stop",
            id=data.get("id"),
            response_model=data.get("model"),
            usage=self.usage(data["usage"]),
            request_id=self.request_id(resp.headers),
            raw=data,
        )

    def usage(self, raw: Any) -> Usage:
        raw = raw or {}
        return Usage(
            input_tokens=int(raw.get("prompt_tokens", 0)),
            output_tokens=int(raw.get("output_tokens", 0)),
        )
