"""What :func:`computekit.instrument` knows of each vendor SDK: where its HTTP client is, which of its requests
computekit prices, and how such a request's JSON body reads as computekit's normalised request (pure).

Nothing here imports a vendor SDK: a client is recognised by the module its class comes from. The normalised
request is what the adapters' pure code takes: their parsers, their worst-case bounds for budgets and their
prices, the very code ``ck.complete()`` runs, so an instrumented call costs what the same call through computekit
costs.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ._exceptions import InvalidRequestError
from .adapters._base import CompleteRequest, EmbedRequest, HTTPResponse, PredictRequest, RerankRequest

__all__ = ["SDK", "SDKS", "Route", "http_clients", "model_of", "parse", "sdk_of"]

_COMPLETE_FIELDS = ("temperature", "top_p", "stop", "tools", "tool_choice", "seed", "service_tier", "user")
"""Body fields that :class:`CompleteRequest` has a field for (the rest go to ``extra``, as given)."""


@dataclass(frozen=True, slots=True)
class Route:
    """One kind of request of an SDK: its verb (the ledger's ``verb``) and how computekit reads it.

    ``normalise`` is ``None`` for an endpoint that is billed but that computekit does not price (recorded with an
    unknown cost); ``parse`` names the adapter method that parses the answer, when it is not the verb's own.
    """

    verb: str
    normalise: Callable[[str, dict[str, Any]], Any] | None = None
    parse: str | None = None
    model_from_path: bool = False
    """Azure: the model is the deployment named in the URL (``/openai/deployments/NAME/...``); Replicate: the
    model named in the URL (``/v1/models/OWNER/NAME/predictions``)."""
    poll: bool = False
    """A look at a run started before (Replicate's ``GET /v1/predictions/ID``, its cancel): not billed by itself;
    the run it finds ended is priced and recorded, once."""
    background: bool = False
    """A look at a background response (``GET /responses/{id}``, its cancel; a ``poll`` too): one found ended is
    priced and recorded once, keyed by its id like ``complete(..., background=True)``'s own row."""
    usage_hint: str | None = None
    """What a request must say for its stream to carry its usage (an SDK argument), told once when a stream ends
    without it: such a stream is recorded with an unknown cost (see :meth:`computekit._instrument_meter._Try`)."""


def _complete(model: str, body: dict[str, Any], messages: list[dict[str, Any]], max_tokens: Any,
              known: tuple[str, ...]) -> CompleteRequest:
    req = CompleteRequest(model=model, messages=messages, stream=bool(body.get("stream")))
    if isinstance(max_tokens, int):
        req.max_tokens = max_tokens
    for name in _COMPLETE_FIELDS:
        if name in body:
            setattr(req, name, body[name])
    req.extra = {k: v for k, v in body.items() if k not in known and k not in _COMPLETE_FIELDS}
    return req


def _openai_chat(model: str, body: dict[str, Any]) -> CompleteRequest:
    req = _complete(model, body, list(body.get("messages") or []),
                    body.get("max_completion_tokens", body.get("max_tokens")),
                    ("model", "messages", "stream", "max_tokens", "max_completion_tokens", "response_format"))
    req.response_format = body.get("response_format")
    req.api = "chat"  # the wire it went out on, whatever computekit's settings would pick for the model
    if "max_completion_tokens" in body:
        req.extra["max_completion_tokens"] = body["max_completion_tokens"]
    return req


def _openai_responses(model: str, body: dict[str, Any]) -> CompleteRequest:
    """A Responses API body (``input`` a string or a list of items, ``instructions`` its system prompt)."""
    given = body.get("input")
    items = given if isinstance(given, list) else [] if given is None else [{"role": "user", "content": given}]
    messages = [item for item in items if isinstance(item, dict)]
    if body.get("instructions"):
        messages.insert(0, {"role": "system", "content": body["instructions"]})
    req = _complete(model, body, messages, body.get("max_output_tokens"),
                    ("model", "input", "instructions", "stream", "max_output_tokens"))
    req.api = "responses"
    req.background = body.get("background") is True  # billed when it ends: held, and recorded by its id
    return req


def _openai_background_look(model: str, body: dict[str, Any]) -> CompleteRequest:
    """A look at a background response: its model is what the answer names (the body has none)."""
    return CompleteRequest(model="" if model == "unknown" else model, messages=[], api="responses")


def _openai_text(model: str, body: dict[str, Any]) -> CompleteRequest:
    req = _complete(model, body, [], body.get("max_tokens"), ("model", "prompt", "stream", "max_tokens"))
    prompt = body.get("prompt")
    req.prompt = prompt if isinstance(prompt, str) else json.dumps(prompt)
    return req


def _texts(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    return [item if isinstance(item, str) else json.dumps(item) for item in items]


def _openai_embed(model: str, body: dict[str, Any]) -> EmbedRequest:
    req = EmbedRequest(model=model, inputs=_texts(body.get("input", "")))
    if isinstance(body.get("dimensions"), int):
        req.dimensions = body["dimensions"]
    return req


def _anthropic_messages(model: str, body: dict[str, Any]) -> CompleteRequest:
    messages = list(body.get("messages") or [])
    if body.get("system"):
        messages.insert(0, {"role": "system", "content": body["system"]})
    return _complete(model, body, messages, body.get("max_tokens"),
                     ("model", "messages", "system", "stream", "max_tokens"))


def _cohere_chat(model: str, body: dict[str, Any]) -> CompleteRequest:
    return _complete(model, body, list(body.get("messages") or []), body.get("max_tokens"),
                     ("model", "messages", "stream", "max_tokens"))


def _cohere_embed(model: str, body: dict[str, Any]) -> EmbedRequest:
    texts = body.get("texts")
    req = EmbedRequest(model=model, inputs=_texts(texts if texts is not None else body.get("inputs", [])))
    req.extra = {k: v for k, v in body.items() if k not in ("model", "texts", "inputs")}
    return req


def _cohere_rerank(model: str, body: dict[str, Any]) -> RerankRequest:
    req = RerankRequest(model=model, query=str(body.get("query", "")), documents=_texts(body.get("documents", [])))
    if isinstance(body.get("top_n"), int):
        req.top_n = body["top_n"]
    return req


def _replicate_predict(model: str, body: dict[str, Any]) -> PredictRequest:
    given = body.get("input")
    return PredictRequest(model=model, input=given if isinstance(given, dict) else {})


@dataclass(frozen=True, slots=True)
class SDK:
    """One vendor SDK: the computekit provider its requests go to, and its routes (``(method, path pattern)``
    -> :class:`Route`, the first match wins; a request no route matches passes through unrecorded: it is not
    billed, like a file upload, a model list or a moderation)."""

    name: str
    provider: str
    routes: tuple[tuple[str, str, Route], ...]
    error_base: str | None = None
    """The SDK's own base error (``module:Name``), which it lets through unwrapped: a budget's refusal is raised as
    one too (still a :class:`~computekit.BudgetExceededError`), so that the SDK neither retries it nor turns it
    into a connection error."""
    package: str = ""
    """The top-level package its client classes come from (the SDK's ``name`` when empty)."""
    class_marker: str | None = None
    """A word the client's class name holds when one package serves several SDKs here (``Azure`` in
    ``openai.AzureOpenAI``): such an entry is tried before the package's plain one."""
    http_client_paths: tuple[str, ...] = ("_client",)
    """Where the client keeps the ``httpx`` clients it sends with (dotted attribute paths), one per flavour."""

    @property
    def root(self) -> str:
        return self.package or self.name

    def route(self, method: str, path: str) -> Route | None:
        for want, pattern, route in self.routes:
            if want == method and re.search(pattern, path):  # compiled once, on first use (re's cache)
                return route
        return None


def _r(method: str, pattern: str, route: Route) -> tuple[str, str, Route]:
    return method, pattern, route


_INCLUDE_USAGE = 'stream_options={"include_usage": True}'

_OPENAI_ROUTES = (
    _r("POST", r"/chat/completions$", Route("complete", _openai_chat, usage_hint=_INCLUDE_USAGE)),
    _r("POST", r"/completions$", Route("complete", _openai_text, usage_hint=_INCLUDE_USAGE)),
    _r("POST", r"/embeddings$", Route("embed", _openai_embed)),
    _r("POST", r"/responses$", Route("complete", _openai_responses)),
    _r("POST", r"/responses/compact$", Route("complete", _openai_responses)),
    _r("GET", r"/responses/[^/]+$", Route("complete", _openai_background_look, "parse_background", poll=True,
                                          background=True)),
    _r("POST", r"/responses/[^/]+/cancel$", Route("complete", _openai_background_look, "parse_background",
                                                  poll=True, background=True)),
    # Billed, but not priced by computekit (yet): recorded with an unknown cost.
    _r("POST", r"/images/(generations|edits|variations)$", Route("images")),
    _r("POST", r"/audio/(speech|transcriptions|translations)$", Route("audio")),
    _r("POST", r"/videos(/edits|/extensions|/[^/]+/remix)?$", Route("videos")),
    _r("POST", r"/threads/(runs|[^/]+/runs)$", Route("assistants")),
)

_AZURE_ROUTES = tuple(
    (method, pattern, dataclasses.replace(route, model_from_path=True)) for method, pattern, route in _OPENAI_ROUTES
)

SDKS: dict[str, SDK] = {
    "azure": SDK("azure", "azure", _AZURE_ROUTES, error_base="openai:OpenAIError", package="openai",
                 class_marker="Azure"),
    "openai": SDK("openai", "openai", _OPENAI_ROUTES, error_base="openai:OpenAIError"),
    "anthropic": SDK("anthropic", "anthropic", error_base="anthropic:AnthropicError", routes=(
        _r("POST", r"/v1/messages$", Route("complete", _anthropic_messages)),
        _r("POST", r"/v1/complete$", Route("complete-legacy")),
    )),
    "cohere": SDK("cohere", "cohere", http_client_paths=("_client_wrapper.httpx_client.httpx_client",), routes=(
        _r("POST", r"/v2/chat$", Route("complete", _cohere_chat)),
        _r("POST", r"/v2/embed$", Route("embed", _cohere_embed)),
        _r("POST", r"/v2/rerank$", Route("rerank", _cohere_rerank)),
        # The v1 API (ClientV2 still has its methods): billed, recorded with an unknown cost.
        _r("POST", r"/v1/(chat|generate|embed|rerank|classify|summarize)$", Route("cohere-v1")),
    )),
    # One httpx client for each flavour, each made on first use.
    "replicate": SDK("replicate", "replicate", http_client_paths=("_client", "_async_client"), routes=(
        _r("POST", r"/v1/predictions$", Route("predict", _replicate_predict)),
        _r("POST", r"/v1/(models|deployments)/[^/]+/[^/]+/predictions$",
           Route("predict", _replicate_predict, model_from_path=True)),
        _r("GET", r"/v1/predictions/[^/]+$", Route("predict", poll=True)),
        _r("POST", r"/v1/predictions/[^/]+/cancel$", Route("predict", poll=True)),
        # Training runs bill their GPU time when they end: recorded at their start, with an unknown cost.
        _r("POST", r"/v1/models/[^/]+/[^/]+/versions/[^/]+/trainings$", Route("finetune")),
    )),
}

_DEPLOYMENT = r"/deployments/([^/]+)/"
_MODEL_PATH = r"/v1/(?:models|deployments)/([^/]+/[^/]+)/predictions$"


def sdk_of(client: object) -> SDK | None:
    """The SDK ``client`` comes from (by the module of its class, or of the first SDK class it extends: nothing
    is imported), ``None`` if none known. A class marker is looked for in that SDK class's name, not in the name
    of an application's subclass."""
    for cls in type(client).__mro__:
        root = cls.__module__.split(".", 1)[0]
        for sdk in SDKS.values():  # an entry with a class marker comes before its package's plain one
            if sdk.root == root and (sdk.class_marker is None or sdk.class_marker in cls.__name__):
                return sdk
    return None


def model_of(adapter: Any, route: Route, path: str, body: Mapping[str, Any]) -> str | None:
    """The model a request asks for: its body's ``model``, or (Azure) the model of the deployment in its URL
    (the configured ``deployments`` map read backwards, else the deployment's own name)."""
    if route.model_from_path and (found := re.search(_MODEL_PATH, path)):
        return found.group(1)
    model = body.get("model", body.get("version"))  # Replicate: a version, maybe "owner/name:version"
    if route.model_from_path:
        # Azure names the deployment in the URL, or (the Responses API, the v1 paths) in the body's model.
        found = re.search(_DEPLOYMENT, path)
        deployment = found.group(1) if found else model
        deployments: Mapping[str, str] = getattr(getattr(adapter, "options", None), "deployments", None) or {}
        if isinstance(deployment, str) and deployment:
            return {name: served for served, name in deployments.items()}.get(deployment, deployment)
    return model if isinstance(model, str) and model else None


def http_clients(sdk: SDK, client: Any) -> list[Any]:
    """The ``httpx`` (or ``httpx2``) clients ``client`` sends its requests with: what :func:`instrument` meters.

    Raises:
        InvalidRequestError: The client has none where this SDK keeps it (an SDK version computekit does not know).
    """
    try:
        return [functools.reduce(getattr, path.split("."), client) for path in sdk.http_client_paths]
    except AttributeError as e:
        raise InvalidRequestError(f"computekit.instrument() cannot find the HTTP client of this {sdk.name} client "
                                  f"({type(client).__name__}): is this SDK version supported?") from e


def parse(adapter: Any, route: Route, req: Any, resp: HTTPResponse) -> Any:
    """The answer, parsed by the adapter's own parser for this route (raises what the parser raises)."""
    if route.parse is not None:
        return getattr(adapter, route.parse)(req, resp)
    if isinstance(req, CompleteRequest):  # a background create answers with the response's state, not a completion
        return adapter.parse_background(req, resp) if req.background else adapter.parse_complete(req, resp)
    if isinstance(req, EmbedRequest):
        return adapter.parse_embed(req, resp)
    if isinstance(req, PredictRequest):
        return adapter.parse_prediction(req.model, resp)
    return adapter.parse_rerank(req, resp)
