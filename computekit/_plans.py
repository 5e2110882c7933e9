"""Request plans (pure): each verb's arguments turned into a :class:`~computekit._attempt.Plan` the drivers run.

Nothing is sent here; everything that can be refused before any HTTP (arguments, tags, capabilities) is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from ._attempt import build_http
from ._constants import NOT_GIVEN, NotGiven
from ._core import Core, call_options, check_tools, normalise_messages
from ._exceptions import InvalidRequestError
from ._http import HTTPRequest, HTTPResponse
from ._plan import Plan
from ._structured import output_type, parse_output
from ._targets import Target
from ._types import Message, Prediction
from .adapters._base import CompleteRequest, ModelInfo, PredictRequest, StreamUpdate

if TYPE_CHECKING:
    from ._background import BackgroundResponse

__all__ = ["CompleteOptions", "Messages", "ModelSpec"]

Messages = Sequence[Message | Mapping[str, Any]]
ModelSpec = str | Sequence[str]


class CompleteOptions(TypedDict, total=False):
    """``complete()``'s keyword arguments but ``response_format`` and ``background``: how its typed overloads
    (a :class:`~computekit.Completion`, or a :class:`~computekit.BackgroundResponse` with ``background=True``)
    spell the rest once."""

    messages: Messages | NotGiven
    max_tokens: int | NotGiven
    temperature: float | NotGiven
    top_p: float | NotGiven
    stop: str | list[str] | NotGiven
    tools: list[dict[str, Any]] | NotGiven
    tool_choice: Any
    seed: int | NotGiven
    service_tier: str | NotGiven
    user: str | NotGiven
    extra_body: Mapping[str, Any] | NotGiven
    api: Literal["chat", "responses"] | NotGiven
    tags: Mapping[str, str] | None
    base_url: str | None
    api_key: str | None


def complete_options(
    max_tokens: int | NotGiven,
    temperature: float | NotGiven,
    top_p: float | NotGiven,
    stop: str | list[str] | NotGiven,
    tools: list[dict[str, Any]] | NotGiven,
    tool_choice: Any,
    response_format: Any,
    seed: int | NotGiven,
    service_tier: str | NotGiven,
    user: str | NotGiven,
    extra_body: Mapping[str, Any] | NotGiven,
    api: str | NotGiven = NOT_GIVEN,
) -> dict[str, Any]:
    if tools is not NOT_GIVEN and tools is not None:
        tools = check_tools(tools)
    opts = call_options(
        max_tokens=max_tokens, temperature=temperature, top_p=top_p, stop=stop, tools=tools,
        tool_choice=tool_choice, response_format=response_format, seed=seed, service_tier=service_tier, user=user,
        api=api,
    )
    if extra_body is not NOT_GIVEN:
        opts["extra"] = dict(extra_body)
    out = output_type(opts.get("response_format"))
    if out is not None:  # a type: adapters send its schema in their own dialect; the answer is validated into it
        opts["output"], opts["response_format"] = out, out.response_format()
    return opts


def complete_plan(core: Core, model: ModelSpec, prompt: str | NotGiven, messages: Messages | NotGiven,
                  opts: dict[str, Any], tags: Mapping[str, str] | None, base_url: str | None,
                  api_key: str | None, *, stream: bool = False) -> Plan:
    """``complete()`` (or, with ``stream``, ``stream()``: every target is checked for streaming before anything
    is sent)."""
    msgs = normalise_messages(prompt, messages)
    targets = core.targets(model, base_url=base_url, api_key=api_key)
    if stream:
        for t in targets:  # fail before anything is sent when a target cannot stream
            core.complete_request(t, msgs, opts, stream=True)
    return Plan(
        "stream" if stream else "complete",
        targets,
        lambda t: core.complete_request(t, msgs, opts, stream=stream),
        lambda t, req, resp: parse_output(req.output, t.adapter.parse_complete(req, resp)),
        tags,
        core.route(model),
        stream=stream,
    )


def background_plan(core: Core, model: ModelSpec, prompt: str | NotGiven, messages: Messages | NotGiven,
                    opts: dict[str, Any], tags: Mapping[str, str] | None, base_url: str | None,
                    api_key: str | None) -> Plan:
    """``complete(..., background=True)``: submitted on the Responses API, answered with a handle. Every target
    is checked before anything is sent; the submit is billed work, so it is resent only when the provider surely
    never saw it (a second submit would run, and bill, a second response)."""
    if opts.get("api") == "chat":
        raise InvalidRequestError("background mode runs on the Responses API: drop api='chat' (or pass "
                                  "api='responses')")
    msgs = normalise_messages(prompt, messages)
    targets = core.targets(model, base_url=base_url, api_key=api_key)
    options = {**opts, "api": "responses"}

    def build(t: Target) -> CompleteRequest:
        if not t.adapter.serves_background():
            raise t.adapter.unsupported("background")
        req = core.complete_request(t, msgs, options, stream=False)
        req.background = True
        return req

    for t in targets:  # a target that cannot run in the background fails the call before any HTTP
        build(t)
    return Plan("complete", targets, build, lambda t, req, resp: t.adapter.parse_background(req, resp), tags,
                core.route(model), at_most_once=True)


def background_lifecycle_plan(core: Core, handle: BackgroundResponse[Any], action: str) -> Plan:
    """A poll (``get``) or ``cancel`` of a background response: its own target, not billed by itself, not
    recorded, safe to resend (neither starts anything)."""
    target = Target(core.adapter(handle.provider), handle.model)
    asked = CompleteRequest(model=handle.model, messages=[], api="responses")

    def build(t: Target) -> HTTPRequest:
        adapter = t.adapter
        return adapter.build_background_get(handle.id) if action == "get" else adapter.build_background_cancel(
            handle.id)

    def parse(t: Target, req: HTTPRequest, resp: HTTPResponse) -> BackgroundResponse[Any]:
        return t.adapter.parse_background(asked, resp)._carry_from(handle)

    return Plan(f"complete.{action}", [target], build, parse, None, record=False, safe_to_retry=True)


def _extra(options: dict[str, Any], extra_body: Mapping[str, Any] | NotGiven) -> dict[str, Any]:
    if extra_body is not NOT_GIVEN:
        options["extra"] = dict(extra_body)
    return options


def embed_plan(core: Core, model: ModelSpec, inputs: str | Sequence[str], dimensions: int | NotGiven,
               extra_body: Mapping[str, Any] | NotGiven, tags: Mapping[str, str] | None, base_url: str | None,
               api_key: str | None) -> Plan:
    opts = _extra(call_options(dimensions=dimensions), extra_body)
    return Plan(
        "embed",
        core.targets(model, base_url=base_url, api_key=api_key),
        lambda t: core.embed_request(t, inputs, opts),
        lambda t, req, resp: t.adapter.parse_embed(req, resp),
        tags,
        core.route(model),
    )


def rerank_plan(core: Core, model: ModelSpec, query: str, documents: Sequence[str], top_n: int | NotGiven,
                extra_body: Mapping[str, Any] | NotGiven, tags: Mapping[str, str] | None, base_url: str | None,
                api_key: str | None) -> Plan:
    opts = _extra(call_options(top_n=top_n), extra_body)
    return Plan(
        "rerank",
        core.targets(model, base_url=base_url, api_key=api_key),
        lambda t: core.rerank_request(t, query, documents, opts),
        lambda t, req, resp: t.adapter.parse_rerank(req, resp),
        tags,
        core.route(model),
    )


def predict_plan(core: Core, model: ModelSpec, input: Mapping[str, Any], wait: bool, hardware: str | None,
                 webhook: str | None, extra_body: Mapping[str, Any] | NotGiven,
                 tags: Mapping[str, str] | None, validate: bool = True, deadline: float | None = None) -> Plan:
    if not isinstance(input, Mapping):
        raise InvalidRequestError("predict() takes the model's input as a dict, e.g. {'prompt': '...'}")
    extra = dict(extra_body) if extra_body is not NOT_GIVEN else {}

    def build(t: Target) -> PredictRequest:
        if not t.adapter.capabilities.predict:
            raise t.adapter.unsupported("predict")
        if validate:  # against the schema the host published (looked up before): refused here, nothing sent
            core.check_input(t, input)
        left = None if deadline is None else max(deadline - core.router.clock(), 0.0)
        return PredictRequest(model=t.model, input=dict(input), wait=wait, hardware=hardware, webhook=webhook,
                              extra=extra, timeout=left)

    def parse(t: Target, req: PredictRequest, resp: HTTPResponse) -> Prediction:
        pred = t.adapter.parse_prediction(t.model, resp)
        hw, assumed = core.hardware(t, req.hardware)
        pred._set_hardware(hw, assumed)
        return pred

    return Plan("predict", core.targets(model), build, parse, tags, core.route(model), at_most_once=True,
                deadline=deadline)


def lookup_plan(core: Core, target: Target, req: HTTPRequest, deadline: float | None) -> Plan:
    """One model lookup (input schema, hardware): a GET, not billed, not recorded."""

    def parse(t: Target, _: HTTPRequest, resp: HTTPResponse) -> ModelInfo:
        return t.adapter.parse_model_info(t.model, core.model_info(t), resp)

    return Plan("predict.lookup", [target], lambda t: req, parse, None, record=False, deadline=deadline)


def prediction_target(core: Core, prediction: Prediction) -> Target:
    return Target(core.adapter(prediction.provider), prediction.model)


def stream_poll_plan(core: Core, prediction: Prediction) -> Plan:
    """One poll of a polled prediction stream (RunPod ``/stream``): a GET, not billed, not recorded."""

    def parse(t: Target, _: HTTPRequest, resp: HTTPResponse) -> StreamUpdate:
        return t.adapter.parse_stream_poll(prediction, resp)

    return Plan("predict.stream", [prediction_target(core, prediction)],
                lambda t: t.adapter.build_prediction_stream(prediction), parse, None, record=False)


def prediction_stream_plan(core: Core, prediction: Prediction) -> tuple[Plan, HTTPRequest] | None:
    """Opening a prediction's server-sent output stream (a GET, safe to retry, not recorded) and its request;
    ``None`` when the prediction has ended (its output is all there is).

    Raises:
        UnsupportedCapabilityError: The host or this prediction cannot stream (before any HTTP).
    """
    target = prediction_target(core, prediction)
    adapter = target.adapter
    if not adapter.capabilities.predict_stream:
        raise adapter.unsupported("predict_stream")
    if prediction.done:
        return None
    # Raises (before any HTTP) when this prediction cannot stream, e.g. a Replicate model with no urls.stream.
    http = build_http(target, adapter.build_prediction_stream(prediction))
    plan = Plan("predict.stream", [target], lambda t: http, lambda t, req, resp: resp, None, record=False,
                stream=True, safe_to_retry=True)
    return plan, http


def lifecycle_plan(core: Core, prediction: Prediction, action: str) -> Plan:
    """A poll (``get``) or ``cancel`` of a prediction: its own target, not billed, not recorded."""

    def build(t: Target) -> HTTPRequest:
        return t.adapter.build_get(prediction) if action == "get" else t.adapter.build_cancel(prediction)

    def parse(t: Target, req: HTTPRequest, resp: HTTPResponse) -> Prediction:
        fresh = t.adapter.parse_prediction(t.model, resp)
        if fresh.id != prediction.id:
            # Another run's state: taken as this one's, it would be recorded (and keyed) under the other's id, and
            # this run's reservation and row lost.
            raise t.adapter.malformed(resp, t.model, f"asked for prediction {prediction.id!r}, the answer is "
                                                     f"prediction {fresh.id[:80]!r}")
        fresh._carry_from(prediction)
        if fresh.usage.hardware is None:
            # A run this client did not start (looked up by its id, as a webhook handler does) is priced on the
            # hardware config names for its model, as predict() would have.
            fresh._set_hardware(*core.hardware(t, None))
        return fresh

    return Plan(f"predict.{action}", [prediction_target(core, prediction)], build, parse, None, record=False)
