"""``Client`` and ``AsyncClient``: the same methods, sync and async, over one pure core.

Only the I/O loops are written twice; building requests, parsing, pricing and bookkeeping are
:class:`~computekit._core.Core`'s, shared by both.
"""

from __future__ import annotations

import datetime as dt
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from functools import partial
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from pydantic import ValidationError

from ._budget import BudgetStatus, Reservation
from ._config import RouteConfig
from ._constants import (
    DEFAULT_POLL_INTERVAL_S,
    MAX_DOWNLOAD_REDIRECTS,
    MAX_POLL_INTERVAL_S,
    MAX_SSE_EVENT_BYTES,
    NOT_GIVEN,
    NotGiven,
)
from ._core import (
    Core,
    Run,
    Target,
    call_deadline,
    call_options,
    check_seconds,
    check_tags,
    check_tools,
    ledger_call,
    normalise_messages,
    now,
)
from ._exceptions import (
    APIConnectionError,
    APITimeoutError,
    BudgetExceededError,
    InvalidRequestError,
    MissingAPIKeyError,
    PredictionFailedError,
    PredictionTimeoutError,
    ProviderError,
)
from ._finetune_client import AsyncFineTuning, FineTuning
from ._plan import Plan as _Plan
from ._retry import RetryPolicy
from ._sse import SSEDecoder, SSETooLarge
from ._structured import output_type, parse_output
from ._transport import ERROR_STATUS as _ERROR_STATUS
from ._transport import async_transport, sync_transport
from ._types import Attempt, Chunk, Completion, Embeddings, Message, ParsedT, Prediction, Reranking
from .adapters._base import (
    CompleteRequest,
    EmbedRequest,
    EventDecoder,
    HTTPRequest,
    HTTPResponse,
    ModelInfo,
    PredictRequest,
    RerankRequest,
    SSEEvent,
    StreamDecoder,
    StreamUpdate,
)
from .ledger import Ledger
from .routing import Router

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["AsyncClient", "AsyncPredictionStream", "AsyncStream", "Client", "PredictionStream", "Stream"]

_T = TypeVar("_T")
Messages = Sequence[Message | Mapping[str, Any]]
ModelSpec = str | Sequence[str]


def _complete_options(
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


def _complete_plan(core: Core, model: ModelSpec, prompt: str | NotGiven, messages: Messages | NotGiven,
                   opts: dict[str, Any], tags: Mapping[str, str] | None, base_url: str | None,
                   api_key: str | None) -> _Plan:
    msgs = normalise_messages(prompt, messages)
    return _Plan(
        "complete",
        core.targets(model, base_url=base_url, api_key=api_key),
        lambda t: core.complete_request(t, msgs, opts, stream=False),
        lambda t, req, resp: parse_output(req.output, t.adapter.parse_complete(req, resp)),
        tags,
        core.route(model),
    )


def _stream_state(core: Core, model: ModelSpec, prompt: str | NotGiven, messages: Messages | NotGiven,
                  opts: dict[str, Any], tags: Mapping[str, str] | None, base_url: str | None,
                  api_key: str | None) -> _StreamState:
    msgs = normalise_messages(prompt, messages)
    targets = core.targets(model, base_url=base_url, api_key=api_key)
    for t in targets:  # fail before anything is sent when a target cannot stream
        core.complete_request(t, msgs, opts, stream=True)
    return _StreamState(core, targets, msgs, opts, tags, core.route(model))


def _embed_plan(core: Core, model: ModelSpec, inputs: str | Sequence[str], dimensions: int | NotGiven,
                extra_body: Mapping[str, Any] | NotGiven, tags: Mapping[str, str] | None, base_url: str | None,
                api_key: str | None) -> _Plan:
    opts = call_options(dimensions=dimensions)
    if extra_body is not NOT_GIVEN:
        opts["extra"] = dict(extra_body)
    return _Plan(
        "embed",
        core.targets(model, base_url=base_url, api_key=api_key),
        lambda t: core.embed_request(t, inputs, opts),
        lambda t, req, resp: t.adapter.parse_embed(req, resp),
        tags,
        core.route(model),
    )


def _rerank_plan(core: Core, model: ModelSpec, query: str, documents: Sequence[str], top_n: int | NotGiven,
                 extra_body: Mapping[str, Any] | NotGiven, tags: Mapping[str, str] | None, base_url: str | None,
                 api_key: str | None) -> _Plan:
    opts = call_options(top_n=top_n)
    if extra_body is not NOT_GIVEN:
        opts["extra"] = dict(extra_body)
    return _Plan(
        "rerank",
        core.targets(model, base_url=base_url, api_key=api_key),
        lambda t: core.rerank_request(t, query, documents, opts),
        lambda t, req, resp: t.adapter.parse_rerank(req, resp),
        tags,
        core.route(model),
    )


def _predict_plan(core: Core, model: ModelSpec, input: Mapping[str, Any], wait: bool, hardware: str | None,
                  webhook: str | None, extra_body: Mapping[str, Any] | NotGiven,
                  tags: Mapping[str, str] | None, validate: bool = True, deadline: float | None = None) -> _Plan:
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
        pred.usage.hardware, pred._hardware_assumed = core.hardware(t, req.hardware)
        return pred

    return _Plan("predict", core.targets(model), build, parse, tags, core.route(model), at_most_once=True,
                 deadline=deadline)


_MAX_LOOKUPS = 4
"""Lookups one target may need before a run (a deployment, then its version): a bound, not a budget."""


def _lookups(core: Core, targets: list[Target]) -> list[Target]:
    """The targets whose adapter can run predictions (lookups are made for those only)."""
    del core  # the adapters say what they can do
    return [t for t in targets if t.adapter.capabilities.predict]


def _build_or_none(make: Callable[[], HTTPRequest | None]) -> HTTPRequest | None:
    """A lookup request, or ``None`` when the target has no key (its create then says so, or falls back)."""
    try:
        return make()
    except MissingAPIKeyError:
        return None


class _Waiting:
    """One wait for a prediction to end (pure, shared by both clients): when to give up, how long to pause
    before the next poll, and the progress display."""

    def __init__(self, core: Core, prediction: Prediction, timeout: float | None, poll_interval: float | None,
                 progress: bool | Console, deadline: float | None) -> None:
        self.clock = core.router.clock
        self.give_up = deadline if deadline is not None else (None if timeout is None else self.clock() + timeout)
        check_seconds("poll_interval", poll_interval, zero=True)
        self.fixed = poll_interval is not None
        # None is "not given"; 0 is a real interval (a replayed test that must not sleep).
        self.interval = DEFAULT_POLL_INTERVAL_S if poll_interval is None else poll_interval
        self.adapter = core.adapter(prediction.provider)
        self.display: Any = None
        if progress is not False:
            from ._progress import PredictionProgress

            self.display = PredictionProgress(progress, self.clock, f"{prediction.provider}:{prediction.model}")

    def show(self, prediction: Prediction) -> None:
        if self.display is not None:
            self.display.update(prediction)

    def timed_out(self) -> bool:
        return self.give_up is not None and self.clock() >= self.give_up

    def pause(self, prediction: Prediction) -> float | None:
        """Seconds to sleep before the next poll; ``None``: poll at once (the host says the result is ready)."""
        if self.adapter.poll_now(prediction):
            return None
        pause = self.interval if self.give_up is None else min(self.interval, max(self.give_up - self.clock(), 0))
        if not self.fixed:
            self.interval = min(self.interval * 1.5, MAX_POLL_INTERVAL_S)
        return pause

    def close(self, prediction: Prediction) -> None:
        if self.display is not None:
            self.display.close(prediction)


def _lookup_plan(core: Core, target: Target, req: HTTPRequest, deadline: float | None) -> _Plan:
    """One model lookup (input schema, hardware): a GET, not billed, not recorded."""

    def parse(t: Target, _: HTTPRequest, resp: HTTPResponse) -> ModelInfo:
        return t.adapter.parse_model_info(t.model, core.model_info(t), resp)

    return _Plan("predict.lookup", [target], lambda t: req, parse, None, record=False, deadline=deadline)


def _stream_poll_plan(core: Core, prediction: Prediction) -> _Plan:
    """One poll of a polled prediction stream (RunPod ``/stream``): a GET, not billed, not recorded."""
    target = Target(core.adapter(prediction.provider), prediction.model)

    def parse(t: Target, _: HTTPRequest, resp: HTTPResponse) -> StreamUpdate:
        return t.adapter.parse_stream_poll(prediction, resp)

    return _Plan("predict.stream", [target], lambda t: t.adapter.build_prediction_stream(prediction), parse, None,
                 record=False)


def _create_timed_out(e: APITimeoutError, timeout: float | None) -> PredictionTimeoutError:
    if isinstance(e, PredictionTimeoutError):
        return e
    err = PredictionTimeoutError(
        f"the request that starts the run did not answer within timeout={timeout} s ({e.message}); the run may "
        "have started on the host, and with no id known it could not be canceled",
        provider=e.provider, model=e.model, request_id=e.request_id,
    )
    err.maybe_processed = e.maybe_processed
    return err


def _note_not_retried(core: Core, e: ProviderError, idempotent: bool) -> None:
    """Say why a failed create was not retried when any other request would have been."""
    if core.retry.should_retry(e, idempotent) and not core.retry.should_retry(e, idempotent, at_most_once=True):
        e.add_note("not retried: the request may have started a billed run on the host, and it carries no "
                   "idempotency key (set idempotency_header for a host that honours one)")


def _lifecycle_plan(core: Core, prediction: Prediction, action: str) -> _Plan:
    """A poll (``get``) or ``cancel`` of a prediction: its own target, not billed, not recorded."""
    target = Target(core.adapter(prediction.provider), prediction.model)

    def build(t: Target) -> HTTPRequest:
        return t.adapter.build_get(prediction) if action == "get" else t.adapter.build_cancel(prediction)

    def parse(t: Target, req: HTTPRequest, resp: HTTPResponse) -> Prediction:
        fresh = t.adapter.parse_prediction(t.model, resp)
        fresh.usage.hardware = prediction.usage.hardware
        fresh._hardware_assumed = prediction._hardware_assumed
        fresh._client, fresh._recorded, fresh._tags = prediction._client, prediction._recorded, prediction._tags
        fresh.attempts = prediction.attempts
        return fresh

    return _Plan(f"predict.{action}", [target], build, parse, None, record=False)


def _timed_out(prediction: Prediction, timeout: float | None) -> PredictionTimeoutError:
    err = PredictionTimeoutError(
        f"prediction {prediction.id} did not finish in {timeout} s (status {prediction.status})",
        provider=prediction.provider, model=prediction.model, request_id=prediction.id,
    )
    err.prediction = prediction
    return err


def _failed(prediction: Prediction) -> PredictionFailedError:
    err = PredictionFailedError(
        f"prediction {prediction.id} failed: {prediction.error}",
        provider=prediction.provider, model=prediction.model, body=prediction.raw, request_id=prediction.id,
    )
    err.prediction = prediction
    return err


_VERB_OF: dict[type, str] = {CompleteRequest: "complete", EmbedRequest: "embed", RerankRequest: "rerank"}
"""The verb whose body limit a request gets (predictions, their polls and lookups: ``predict``)."""


def _build_http(target: Target, req: CompleteRequest | EmbedRequest | RerankRequest | PredictRequest | HTTPRequest
                ) -> HTTPRequest:
    adapter = target.adapter
    if isinstance(req, HTTPRequest):
        http = req
    elif isinstance(req, CompleteRequest):
        http = adapter.build_complete(req)
    elif isinstance(req, EmbedRequest):
        http = adapter.build_embed(req)
    elif isinstance(req, PredictRequest):
        http = adapter.build_predict(req)
    else:
        http = adapter.build_rerank(req)
    if not adapter.on_origin(http.url):  # off the provider's origin a request never carries its key
        http.headers = adapter.without_key(http.headers)
    if http.max_bytes is None:
        http.max_bytes = adapter.settings.max_body_bytes.get(_VERB_OF.get(type(req), "predict"))
    if http.timeout is None:  # the provider's own timeout, set here so that no adapter can forget it
        http.timeout = target.adapter.settings.timeout
    header = target.adapter.settings.idempotency_header
    if header and header not in http.headers:
        # One key per request, built once and reused by its retries: the host bills a retried POST once.
        http.headers[header] = uuid.uuid4().hex
    return http


def _build_both(build: Callable[[Target], Any], target: Target) -> tuple[Any, HTTPRequest]:
    req = build(target)
    return req, _build_http(target, req)


def _build_or_skip(run: Run, make: Callable[[], _T]) -> _T | None:
    """Build a target's request; ``None`` when it has no key and another target remains (nothing was sent)."""
    try:
        return make()
    except MissingAPIKeyError:
        if not run.has_more():
            raise
        return None


def _has_idempotency_key(target: Target, http: HTTPRequest) -> bool:
    header = target.adapter.settings.idempotency_header
    return bool(header) and header in http.headers


def _bound(http: HTTPRequest, target: Target, run: Run, deadline: float | None = None) -> None:
    """Fit one try into the call's deadline and its own ``timeout=`` (raises when either has passed)."""
    left = run.check_deadline(target)
    if deadline is not None:
        mine = deadline - run.core.router.clock()
        if mine <= 0:
            err = APITimeoutError("the call's timeout passed before this request was sent",
                                  provider=target.provider, model=target.model)
            err.maybe_processed = False
            raise err
        left = mine if left is None else min(left, mine)
    if left is not None:
        http.timeout = min(http.timeout or left, left)
        http.total_timeout = left


def _decode_stream_error(target: Target, why: str) -> APIConnectionError:
    return APIConnectionError(why, provider=target.provider, model=target.model)


class _StreamState:
    """What a stream has done so far: shared by :class:`Stream` and :class:`AsyncStream` (pure)."""

    def __init__(self, core: Core, targets: list[Target], messages: list[dict[str, Any]], options: dict[str, Any],
                 tags: Mapping[str, str] | None, route: RouteConfig | None = None) -> None:
        self.core = core
        self.run = Run(core, targets, route, lambda t: core.complete_request(t, messages, options, stream=True))
        self.messages = messages
        self.options = options
        self.tags = check_tags(tags)
        self.attempts: list[Attempt] = []
        self.result: Completion | None = None
        self.sse: EventDecoder = SSEDecoder(MAX_SSE_EVENT_BYTES)

    def request(self, target: Target) -> tuple[CompleteRequest, HTTPRequest]:
        # A fallback target starts with a clean decoder, of its own framing (server-sent events by default).
        limit = target.adapter.settings.max_event_bytes
        self.sse = target.adapter.event_decoder(limit) or SSEDecoder(limit)
        creq = self.core.complete_request(target, self.messages, self.options, stream=True)
        return creq, _build_http(target, creq)

    def chunks(self, target: Target, decoder: StreamDecoder, data: bytes) -> list[Chunk]:
        try:
            events = self.sse.feed(data)
        except SSETooLarge as e:
            raise e.error(target.provider, target.model) from e
        except ValueError as e:  # a frame that does not parse (a binary framing's bad checksum ...)
            raise target.adapter.malformed(HTTPResponse(200, {}, data), target.model, str(e)) from e
        out: list[Chunk] = []
        for ev in events:
            out.extend(self.feed(target, decoder, ev))
        return out

    @staticmethod
    def feed(target: Target, decoder: StreamDecoder, ev: SSEEvent) -> list[Chunk]:
        """One event through the decoder; values out of range (an absurd usage count) are a malformed answer."""
        head = HTTPResponse(200, {}, ev.data.encode("utf-8", "replace"))
        return target.adapter.checked(head, target.model, lambda: decoder.feed(ev))

    def finish(self, target: Target, decoder: StreamDecoder, head: HTTPResponse) -> Completion:
        result = target.adapter.checked(head, target.model, decoder.result)
        # The decoder sees only events; the request id (and what else the head says) is in the response head.
        target.adapter.note_head(result, head.headers)
        return result

    def cancel(self, target: Target, decoder: StreamDecoder, started: dt.datetime, t0: float,
               reservation: Reservation | None = None) -> None:
        try:
            partial_result = decoder.result()
            usage = partial_result.usage if partial_result._usage_reported else None
        except ValidationError:  # usage out of range: the attempt is still recorded, its usage unknown
            usage = None
        self.core.canceled("stream", target, usage, started, t0, self.attempts, self.tags, reservation)

    def close(self, target: Target, decoder: StreamDecoder) -> list[Chunk]:
        events, cut = self.sse.close()
        out: list[Chunk] = []
        for ev in events:
            out.extend(self.feed(target, decoder, ev))
        if cut or not decoder.done:
            raise _decode_stream_error(target, "the stream ended before its last event")
        return out


class Stream(AbstractContextManager["Stream[ParsedT]"], Generic[ParsedT]):
    """A streamed completion: iterate for :class:`Chunk` objects; ``result`` once it is exhausted.

    Use it as a context manager so the connection is released even if you stop early.
    """

    def __init__(self, client: Client, state: _StreamState) -> None:
        self._client = client
        self._state = state
        self._iter: Iterator[Chunk] | None = None

    @property
    def result(self) -> Completion[ParsedT]:
        """The final completion, with usage, cost and attempts.

        Raises:
            RuntimeError: The stream has not been read to its end yet.
        """
        if self._state.result is None:
            raise RuntimeError("the stream is not finished: iterate it to the end first")
        return self._state.result

    @property
    def attempts(self) -> list[Attempt]:
        """Every attempt so far."""
        return self._state.attempts

    def __iter__(self) -> Iterator[Chunk]:
        if self._iter is None:
            self._iter = self._run()
        return self._iter

    def __next__(self) -> Chunk:
        return next(iter(self))

    def _run(self) -> Iterator[Chunk]:
        st = self._state
        core, run = st.core, st.run
        while (target := run.next()) is not None:
            built = _build_or_skip(run, partial(st.request, target))
            if built is None:
                continue
            creq, http = built
            decoder = target.adapter.stream_decoder(creq)
            started_any = False
            first_byte: float | None = None
            try:
                for attempt in core.retry.retrying(
                    idempotent=_has_idempotency_key(target, http), remaining=run.remaining_fn()
                ):
                    with attempt:
                        _bound(http, target, run)
                        held = core.reserve(target, creq, st.tags)  # budgets: before any HTTP
                        started, t0 = now(), time.perf_counter()
                        cm = self._client._transport.stream(http, target.provider, target.model)
                        try:
                            head, body = cm.__enter__()
                            if head.status >= _ERROR_STATUS:
                                raise target.adapter.map_error(head, target.model)
                        except ProviderError as e:
                            cm.__exit__(None, None, None)
                            core.failed("stream", target, e, started, t0, st.attempts, st.tags, reservation=held)
                            raise
                        except BaseException:
                            core.release(held)
                            raise
                try:
                    for data in body:
                        for chunk in st.chunks(target, decoder, data):
                            if first_byte is None:
                                first_byte = time.perf_counter() - t0
                            started_any = True
                            yield chunk
                    yield from st.close(target, decoder)
                    # Usage out of range, or an answer that does not fit its type: a failed (billed) attempt.
                    result = parse_output(creq.output, st.finish(target, decoder, head))
                except ProviderError as e:
                    core.failed("stream", target, e, started, t0, st.attempts, st.tags, reservation=held)
                    raise
                except GeneratorExit:  # the caller stopped reading: still a billed attempt
                    st.cancel(target, decoder, started, t0, held)
                    raise
                except BaseException:
                    core.release(held)
                    raise
                finally:
                    cm.__exit__(None, None, None)
                core.succeeded("stream", target, result, started, t0, st.attempts, st.tags, first_byte,
                               reservation=held)
                st.result = result
                return
            except ProviderError as e:
                if started_any:  # a stream falls back only while nothing has reached the caller
                    raise
                run.failed(target, e)
            except BudgetExceededError as e:
                run.refused(target, e)  # nothing was sent: the next target may fit
        raise run.exhausted(st.attempts)

    def close(self) -> None:
        """Stop reading and release the connection."""
        if self._iter is not None and hasattr(self._iter, "close"):
            self._iter.close()

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncStream(AbstractAsyncContextManager["AsyncStream[ParsedT]"], Generic[ParsedT]):
    """The async twin of :class:`Stream`: ``async for chunk in stream``."""

    def __init__(self, client: AsyncClient, state: _StreamState) -> None:
        self._client = client
        self._state = state
        self._iter: AsyncIterator[Chunk] | None = None

    @property
    def result(self) -> Completion[ParsedT]:
        """The final completion (see :attr:`Stream.result`).

        Raises:
            RuntimeError: The stream has not been read to its end yet.
        """
        if self._state.result is None:
            raise RuntimeError("the stream is not finished: iterate it to the end first")
        return self._state.result

    @property
    def attempts(self) -> list[Attempt]:
        """Every attempt so far."""
        return self._state.attempts

    def __aiter__(self) -> AsyncIterator[Chunk]:
        if self._iter is None:
            self._iter = self._run()
        return self._iter

    async def __anext__(self) -> Chunk:
        return await self.__aiter__().__anext__()

    async def _run(self) -> AsyncIterator[Chunk]:
        st = self._state
        core, run = st.core, st.run
        while (target := run.next()) is not None:
            built = _build_or_skip(run, partial(st.request, target))
            if built is None:
                continue
            creq, http = built
            decoder = target.adapter.stream_decoder(creq)
            started_any = False
            first_byte: float | None = None
            try:
                async for attempt in core.retry.aretrying(
                    idempotent=_has_idempotency_key(target, http), remaining=run.remaining_fn()
                ):
                    with attempt:
                        _bound(http, target, run)
                        # budgets: before any HTTP (in a worker thread when the ledger is remote)
                        held = await ledger_call(core, partial(core.reserve, target, creq, st.tags))
                        started, t0 = now(), time.perf_counter()
                        cm = self._client._transport.stream(http, target.provider, target.model)
                        try:
                            head, body = await cm.__aenter__()
                            if head.status >= _ERROR_STATUS:
                                raise target.adapter.map_error(head, target.model)
                        except ProviderError as e:
                            await cm.__aexit__(None, None, None)
                            await ledger_call(core, partial(core.failed, "stream", target, e, started, t0,
                                                            st.attempts, st.tags, reservation=held))
                            raise
                        except BaseException:
                            await ledger_call(core, partial(core.release, held), offload=held is not None)
                            raise
                try:
                    async for data in body:
                        for chunk in st.chunks(target, decoder, data):
                            if first_byte is None:
                                first_byte = time.perf_counter() - t0
                            started_any = True
                            yield chunk
                    for chunk in st.close(target, decoder):
                        yield chunk
                    # Usage out of range, or an answer that does not fit its type: a failed (billed) attempt.
                    result = parse_output(creq.output, st.finish(target, decoder, head))
                except ProviderError as e:
                    await ledger_call(core, partial(core.failed, "stream", target, e, started, t0, st.attempts,
                                                    st.tags, reservation=held))
                    raise
                except GeneratorExit:  # the caller stopped reading: still a billed attempt
                    await ledger_call(core, partial(st.cancel, target, decoder, started, t0, held))
                    raise
                except BaseException:
                    await ledger_call(core, partial(core.release, held), offload=held is not None)
                    raise
                finally:
                    await cm.__aexit__(None, None, None)
                await ledger_call(core, partial(core.succeeded, "stream", target, result, started, t0, st.attempts,
                                                st.tags, first_byte, reservation=held))
                st.result = result
                return
            except ProviderError as e:
                if started_any:
                    raise
                run.failed(target, e)
            except BudgetExceededError as e:
                run.refused(target, e)
        raise run.exhausted(st.attempts)

    async def aclose(self) -> None:
        """Stop reading and release the connection."""
        if self._iter is not None and hasattr(self._iter, "aclose"):
            await self._iter.aclose()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class _PredictionStreamState:
    """A prediction's output stream so far (pure, shared by :class:`PredictionStream` and its async twin)."""

    def __init__(self, core: Core, prediction: Prediction, poll_interval: float | None) -> None:
        self.core = core
        self.prediction = prediction
        self.target = Target(core.adapter(prediction.provider), prediction.model)
        adapter = self.target.adapter
        if not adapter.capabilities.predict_stream:
            raise adapter.unsupported("predict_stream")
        # Raises (before any HTTP) when this prediction cannot stream, e.g. a Replicate model with no urls.stream.
        self.http = None if prediction.done else _build_http(self.target, adapter.build_prediction_stream(prediction))
        self.poll_interval = DEFAULT_POLL_INTERVAL_S if poll_interval is None else poll_interval
        self.sse = SSEDecoder(adapter.settings.max_event_bytes)
        self.logs = prediction.logs
        self.error: Any = None
        self.done = prediction.done
        self.result: Prediction | None = None

    def ended_output(self) -> list[Any]:
        """What a prediction that had already ended streams: its output as it is (nothing is sent)."""
        out = self.prediction.output
        if out is None:
            return []
        return list(out) if isinstance(out, list) else [out]

    def feed(self, data: bytes) -> list[Any]:
        try:
            events = self.sse.feed(data)
        except SSETooLarge as e:
            raise e.error(self.target.provider, self.target.model) from e
        out: list[Any] = []
        for ev in events:
            if self.done:
                break
            out.extend(self.apply(self.target.adapter.parse_stream_event(self.prediction, ev)))
        return out

    def close(self) -> list[Any]:
        events, _ = self.sse.close()
        out: list[Any] = []
        for ev in events:
            if not self.done:
                out.extend(self.apply(self.target.adapter.parse_stream_event(self.prediction, ev)))
        return out

    def apply(self, update: StreamUpdate) -> list[Any]:
        self.logs += update.logs
        if update.error is not None:
            self.error = update.error
        if update.done:
            self.done = True
        return list(update.output)


class PredictionStream(AbstractContextManager["PredictionStream"]):
    """A prediction's output as the host streams it (``p.stream()``): iterate for the pieces (text, for language
    models); once it is exhausted, ``result`` is the ended prediction, priced and in the ledger.

    Server-sent streams (Replicate ``urls.stream``) are read as they arrive; polled ones (RunPod ``/stream``) are
    fetched every ``poll_interval``. When the stream ends, the prediction's final state is fetched once.
    """

    def __init__(self, client: Client, state: _PredictionStreamState) -> None:
        self._client = client
        self._state = state
        self._iter: Iterator[Any] | None = None

    @property
    def result(self) -> Prediction:
        """The ended prediction, with its cost.

        Raises:
            RuntimeError: The stream has not been read to its end yet.
        """
        if self._state.result is None:
            raise RuntimeError("the stream is not finished: iterate it to the end first")
        return self._state.result

    @property
    def logs(self) -> str:
        """The run's logs so far (streamed ``logs`` events)."""
        return self._state.logs

    def __iter__(self) -> Iterator[Any]:
        if self._iter is None:
            self._iter = self._run()
        return self._iter

    def __next__(self) -> Any:
        return next(iter(self))

    def _run(self) -> Iterator[Any]:
        st, client = self._state, self._client
        core, target = st.core, st.target
        if st.http is None:
            yield from st.ended_output()
        elif st.http.stream:
            cm: Any = None
            for attempt in core.retry.retrying(idempotent=True):  # opening is a GET: safe to retry
                with attempt:
                    cm = client._transport.stream(st.http, target.provider, target.model)
                    try:
                        head, body = cm.__enter__()
                        if head.status >= _ERROR_STATUS:
                            raise target.adapter.map_error(head, target.model)
                    except ProviderError:
                        cm.__exit__(None, None, None)
                        raise
            try:
                for data in body:
                    yield from st.feed(data)
                    if st.done:
                        break
                else:
                    yield from st.close()
            finally:
                cm.__exit__(None, None, None)
        else:
            while True:
                update: StreamUpdate = client._send(_stream_poll_plan(core, st.prediction))
                yield from st.apply(update)
                if st.done:
                    break
                core.retry.sleep(st.poll_interval)
        # The stream has ended (or was cut): the run's final state, priced and recorded once.
        final = st.prediction if st.prediction.done else client._refresh(st.prediction)
        st.result = client._wait(final, None, None)

    def close(self) -> None:
        """Stop reading and release the connection (the run goes on: ``cancel()`` stops it)."""
        if self._iter is not None and hasattr(self._iter, "close"):
            self._iter.close()

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncPredictionStream(AbstractAsyncContextManager["AsyncPredictionStream"]):
    """The async twin of :class:`PredictionStream`: ``async for piece in p.async_stream()``."""

    def __init__(self, client: AsyncClient, state: _PredictionStreamState) -> None:
        self._client = client
        self._state = state
        self._iter: AsyncIterator[Any] | None = None

    @property
    def result(self) -> Prediction:
        """The ended prediction (see :attr:`PredictionStream.result`).

        Raises:
            RuntimeError: The stream has not been read to its end yet.
        """
        if self._state.result is None:
            raise RuntimeError("the stream is not finished: iterate it to the end first")
        return self._state.result

    @property
    def logs(self) -> str:
        """The run's logs so far."""
        return self._state.logs

    def __aiter__(self) -> AsyncIterator[Any]:
        if self._iter is None:
            self._iter = self._run()
        return self._iter

    async def __anext__(self) -> Any:
        return await self.__aiter__().__anext__()

    async def _run(self) -> AsyncIterator[Any]:
        st, client = self._state, self._client
        core, target = st.core, st.target
        if st.http is None:
            for piece in st.ended_output():
                yield piece
        elif st.http.stream:
            cm: Any = None
            async for attempt in core.retry.aretrying(idempotent=True):
                with attempt:
                    cm = client._transport.stream(st.http, target.provider, target.model)
                    try:
                        head, body = await cm.__aenter__()
                        if head.status >= _ERROR_STATUS:
                            raise target.adapter.map_error(head, target.model)
                    except ProviderError:
                        await cm.__aexit__(None, None, None)
                        raise
            try:
                ended = False
                async for data in body:
                    for piece in st.feed(data):
                        yield piece
                    if st.done:
                        ended = True
                        break
                if not ended:
                    for piece in st.close():
                        yield piece
            finally:
                await cm.__aexit__(None, None, None)
        else:
            while True:
                update: StreamUpdate = await client._send(_stream_poll_plan(core, st.prediction))
                for piece in st.apply(update):
                    yield piece
                if st.done:
                    break
                await core.retry.async_sleep(st.poll_interval)
        final = st.prediction if st.prediction.done else await client._refresh(st.prediction)
        st.result = await client._wait(final, None, None)

    async def aclose(self) -> None:
        """Stop reading and release the connection (the run goes on)."""
        if self._iter is not None and hasattr(self._iter, "aclose"):
            await self._iter.aclose()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class _BaseClient:
    def __init__(
        self,
        config: str | os.PathLike[str] | Mapping[str, Any] | NotGiven | None = NOT_GIVEN,
        *,
        ledger: Ledger | str | Mapping[str, Any] | None = None,
        retry_policy: RetryPolicy | None = None,
        router: Router | None = None,
        **settings: Any,
    ) -> None:
        self._core = Core(config, ledger=ledger, retry_policy=retry_policy, router=router, **settings)

    @property
    def ledger(self) -> Ledger:
        """The cost ledger: every attempt of every call made through this client's settings."""
        return self._core.ledger

    def budget_status(self) -> dict[str, BudgetStatus]:
        """Where each configured budget stands in its current period, by name: ``limit``, ``period``, ``spent``,
        ``reserved`` (calls in flight, fine-tuning jobs still running) and ``remaining``. Empty without budgets.

        Returns:
            A :class:`BudgetStatus` per budget name (``"default"`` for ``[budget]``).

        Raises:
            ConfigError: The ledger cannot enforce budgets.
        """
        return self._core.budget_status()

    def _ended_step(self, prediction: Prediction) -> Callable[[], None]:
        """Pricing and recording an ended prediction, as one ledger step (run inline, or by ``ledger_call``)."""
        target = Target(self._core.adapter(prediction.provider), prediction.model)
        return partial(self._core.prediction_ended, target, prediction, prediction._tags)

    @property
    def settings(self) -> Any:
        """The validated settings (keys shown masked)."""
        return self._core.settings

    def __repr__(self) -> str:
        providers = sorted(self._core.settings.providers)
        return f"{type(self).__name__}(providers={providers}, ledger={self._core._ledger!r})"


class Client(_BaseClient, FineTuning):
    """A computekit client: configuration, pooled connections, the retry loop and the ledger.

    Args:
        config: Path to a ``computekit.toml``, a mapping of the same shape, ``None`` for no file; not given:
            ``$COMPUTEKIT_CONFIG``, else ``./computekit.toml`` when present.
        ledger: A ledger object to use instead of the configured one.
        retry_policy: A retry policy (tests inject one whose sleep does not sleep).
        router: Routing state (cooldowns, latency) with an injectable clock; one per client by default.
        **settings: Settings shaped like the file (``providers={...}``, ``retry={...}``, ``ledger="none"``),
            merged over it.

    Raises:
        ConfigError: The configuration is invalid; the message names the key.
    """

    def __init__(
        self,
        config: str | os.PathLike[str] | Mapping[str, Any] | NotGiven | None = NOT_GIVEN,
        *,
        ledger: Ledger | str | Mapping[str, Any] | None = None,
        retry_policy: RetryPolicy | None = None,
        router: Router | None = None,
        http_client: Any = None,
        **settings: Any,
    ) -> None:
        super().__init__(config, ledger=ledger, retry_policy=retry_policy, router=router, **settings)
        self._transport = sync_transport(self._core.settings.timeout, http_client)

    def _send(self, plan: _Plan) -> Any:
        core, verb, parse, tags = self._core, plan.verb, plan.parse_checked, plan.tags
        run = Run(core, plan.targets, plan.route, plan.build)
        attempts: list[Attempt] = []
        while (target := run.next()) is not None:
            built = _build_or_skip(run, partial(_build_both, plan.build, target))
            if built is None:
                continue
            req, http = built
            idempotent = _has_idempotency_key(target, http)
            at_most_once = plan.at_most_once and not idempotent

            def once(target: Target = target, req: Any = req, http: HTTPRequest = http,
                     idempotent: bool = idempotent, at_most_once: bool = at_most_once) -> Any:
                _bound(http, target, run, plan.deadline)
                held = core.reserve(target, req, tags) if plan.record else None  # budgets: before any HTTP
                started, t0 = now(), time.perf_counter()
                try:
                    resp = self._transport.send(http, target.provider, target.model)
                    if resp.status >= _ERROR_STATUS:
                        raise target.adapter.map_error(resp, target.model)
                    result = parse(target, req, resp)
                except ProviderError as e:
                    core.failed(verb, target, e, started, t0, attempts, tags, record=plan.record,
                                reservation=held)
                    if at_most_once:
                        _note_not_retried(core, e, idempotent)
                    raise
                except BaseException:
                    core.release(held)
                    raise
                core.succeeded(verb, target, result, started, t0, attempts, tags, record=plan.record,
                               reservation=held)
                return result

            try:
                # The first try runs outside tenacity (most calls need no retry, and building the loop costs
                # more than the rest of computekit's overhead); retries run in the one tenacity loop.
                try:
                    return once()
                except ProviderError as e:
                    wait = core.retry.first_wait(e, idempotent=idempotent, remaining=run.remaining_fn(),
                                                 at_most_once=at_most_once)
                    if wait is None:
                        raise
                    core.retry.sleep(wait)
                for attempt in core.retry.retrying(done=1, idempotent=idempotent, remaining=run.remaining_fn(),
                                                   at_most_once=at_most_once):
                    with attempt:
                        return once()
            except ProviderError as e:
                run.failed(target, e)
            except BudgetExceededError as e:
                run.refused(target, e)  # nothing was sent: the next target may fit
        raise run.exhausted(attempts)

    def complete(
        self,
        model: ModelSpec,
        prompt: str | NotGiven = NOT_GIVEN,
        *,
        messages: Messages | NotGiven = NOT_GIVEN,
        max_tokens: int | NotGiven = NOT_GIVEN,
        temperature: float | NotGiven = NOT_GIVEN,
        top_p: float | NotGiven = NOT_GIVEN,
        stop: str | list[str] | NotGiven = NOT_GIVEN,
        tools: list[dict[str, Any]] | NotGiven = NOT_GIVEN,
        tool_choice: Any = NOT_GIVEN,
        response_format: type[ParsedT] | Mapping[str, Any] | NotGiven = NOT_GIVEN,
        seed: int | NotGiven = NOT_GIVEN,
        service_tier: str | NotGiven = NOT_GIVEN,
        user: str | NotGiven = NOT_GIVEN,
        extra_body: Mapping[str, Any] | NotGiven = NOT_GIVEN,
        api: Literal["chat", "responses"] | NotGiven = NOT_GIVEN,
        tags: Mapping[str, str] | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
    ) -> Completion[ParsedT]:
        """Generate a completion.

        Args:
            model: ``"provider:model"``, a list of them (tried in order), or a route name from the config.
            prompt: A string: sent as one user message (after ``messages``, when both are given).
            messages: The conversation: dicts or :class:`Message` objects.
            max_tokens: Upper bound on generated tokens.
            temperature: Sampling temperature.
            top_p: Nucleus sampling.
            stop: Stop sequence(s).
            tools: Tool (function) definitions, in OpenAI's shape or ``{"name", "description", "parameters"}``.
            tool_choice: ``"auto"``, ``"none"``, ``"required"`` or a specific tool.
            response_format: A type (a pydantic model, a dataclass, ``list[int]`` ...: the answer is validated
                into ``result.parsed``, typed), or a dict: ``{"type": "json_object"}`` or a JSON schema.
            seed: Sampling seed, where supported.
            service_tier: The provider's service tier (it changes the price; the result reports the tier used).
            user: An end-user id for the provider's abuse monitoring.
            extra_body: Provider-specific body fields, sent as they are.
            api: The wire format, where a provider has two: ``"chat"`` or ``"responses"`` (OpenAI's Responses
                API). Default: the provider's ``api`` setting (models served only on Responses always use it).
            tags: Labels stored with every attempt in the ledger.
            base_url: Send this call to another base URL (a configured key goes only to its own host).
            api_key: A key for this call only.

        Returns:
            The completion, with usage, cost and every attempt.

        Raises:
            InvalidRequestError: The arguments are wrong (nothing was sent).
            ConfigError: The provider is unknown or has no key (nothing was sent).
            UnsupportedCapabilityError: The provider cannot do this (nothing was sent).
            StructuredOutputError: ``response_format`` is a type and the model refused, or its answer does not
                validate (billed: the error carries the cost and the raw text).
            ProviderError: The provider failed after retries; a subclass says how.
        """
        opts = _complete_options(max_tokens, temperature, top_p, stop, tools, tool_choice, response_format, seed,
                                 service_tier, user, extra_body, api)
        result: Completion[ParsedT] = self._send(
            _complete_plan(self._core, model, prompt, messages, opts, tags, base_url, api_key)
        )
        return result

    def stream(
        self,
        model: ModelSpec,
        prompt: str | NotGiven = NOT_GIVEN,
        *,
        messages: Messages | NotGiven = NOT_GIVEN,
        max_tokens: int | NotGiven = NOT_GIVEN,
        temperature: float | NotGiven = NOT_GIVEN,
        top_p: float | NotGiven = NOT_GIVEN,
        stop: str | list[str] | NotGiven = NOT_GIVEN,
        tools: list[dict[str, Any]] | NotGiven = NOT_GIVEN,
        tool_choice: Any = NOT_GIVEN,
        response_format: type[ParsedT] | Mapping[str, Any] | NotGiven = NOT_GIVEN,
        seed: int | NotGiven = NOT_GIVEN,
        service_tier: str | NotGiven = NOT_GIVEN,
        user: str | NotGiven = NOT_GIVEN,
        extra_body: Mapping[str, Any] | NotGiven = NOT_GIVEN,
        api: Literal["chat", "responses"] | NotGiven = NOT_GIVEN,
        tags: Mapping[str, str] | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
    ) -> Stream[ParsedT]:
        """Stream a completion: the same arguments as :meth:`complete`; nothing is sent until you iterate.

        Returns:
            A :class:`Stream`; its ``result`` (usage and cost included) is ready once it is exhausted.

        Raises:
            InvalidRequestError: The arguments are wrong (nothing was sent).
            ConfigError: The provider is unknown or has no key (nothing was sent).
            UnsupportedCapabilityError: The provider cannot stream (nothing was sent).
            ProviderError: While iterating: the provider failed, before or during the stream.
        """
        opts = _complete_options(max_tokens, temperature, top_p, stop, tools, tool_choice, response_format, seed,
                                 service_tier, user, extra_body, api)
        return Stream(self, _stream_state(self._core, model, prompt, messages, opts, tags, base_url, api_key))

    def embed(
        self,
        model: ModelSpec,
        inputs: str | Sequence[str],
        *,
        dimensions: int | NotGiven = NOT_GIVEN,
        extra_body: Mapping[str, Any] | NotGiven = NOT_GIVEN,
        tags: Mapping[str, str] | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
    ) -> Embeddings:
        """Embed one string or a list of strings.

        Returns:
            One vector per input, in order, with usage and cost.

        Raises:
            InvalidRequestError: The inputs are not strings (nothing was sent).
            UnsupportedCapabilityError: The provider has no embeddings API (nothing was sent).
            ProviderError: The provider failed after retries.
        """
        result: Embeddings = self._send(
            _embed_plan(self._core, model, inputs, dimensions, extra_body, tags, base_url, api_key)
        )
        return result

    def rerank(
        self,
        model: ModelSpec,
        query: str,
        documents: Sequence[str],
        *,
        top_n: int | NotGiven = NOT_GIVEN,
        extra_body: Mapping[str, Any] | NotGiven = NOT_GIVEN,
        tags: Mapping[str, str] | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
    ) -> Reranking:
        """Order ``documents`` by relevance to ``query`` (Cohere ``rerank-*`` models).

        Args:
            model: ``"provider:model"``, a list of them (tried in order), or a route name.
            query: What the documents are ranked against.
            documents: The candidate texts.
            top_n: Return only the best ``top_n`` hits.
            extra_body: Provider-specific body fields, sent as they are.
            tags: Labels stored with every attempt in the ledger.
            base_url: Send this call to another base URL (a configured key goes only to its own origin).
            api_key: A key for this call only.

        Returns:
            Hits, most relevant first, with the billed search units and their cost (``None`` unless a price
            for the model's search units is known, e.g. from ``[prices]``).

        Raises:
            InvalidRequestError: The query or documents are not strings (nothing was sent).
            UnsupportedCapabilityError: The provider has no rerank API (nothing was sent).
            ProviderError: The provider failed after retries.
        """
        result: Reranking = self._send(
            _rerank_plan(self._core, model, query, documents, top_n, extra_body, tags, base_url, api_key)
        )
        return result

    def predict(
        self,
        model: ModelSpec,
        input: Mapping[str, Any],
        *,
        wait: bool = True,
        timeout: float | None = None,
        poll_interval: float | None = None,
        hardware: str | None = None,
        webhook: str | None = None,
        cancel_on_timeout: bool = True,
        validate: bool = True,
        progress: bool | Console = False,
        extra_body: Mapping[str, Any] | NotGiven = NOT_GIVEN,
        tags: Mapping[str, str] | None = None,
    ) -> Prediction:
        """Run a model on a serverless GPU host (``replicate:owner/name[:version]``, ``replicate:deployments/...``).

        Args:
            model: ``"provider:model"``.
            input: The model's input.
            wait: Wait for the run to end (the host's sync mode first, then polling); ``False`` returns at once:
                call ``wait()``, ``refresh()``, ``stream()`` or ``cancel()`` on the prediction later.
            timeout: Seconds the whole call may take, the request that starts the run included; when they pass,
                the remote run is canceled (unless ``cancel_on_timeout`` is False) and
                :class:`PredictionTimeoutError` is raised.
            poll_interval: Seconds between polls (default: 0.5 s, growing to 5 s).
            hardware: The hardware SKU the model runs on (e.g. ``"gpu-a100-large"``): prices its GPU-seconds.
                Default: config ``[providers.NAME] hardware = {{MODEL = SKU}}``, then what the host reports (a
                Replicate deployment's configuration), then ``default_hardware`` (an estimate); else the cost is
                ``None``.
            webhook: A URL the host calls when the run ends.
            cancel_on_timeout: Cancel the remote run when ``timeout`` passes (so nothing keeps billing).
            validate: Check ``input`` against the schema the host publishes for the model (Replicate: the
                version's OpenAPI ``Input``; fetched once per client) before anything is created.
            progress: Show the run's status, elapsed time and latest log line while waiting: ``True`` draws on
                the terminal (stderr), or pass a ``rich.console.Console``.
            extra_body: Host-specific body fields, sent as they are.
            tags: Labels stored with the run in the ledger.

        Returns:
            The prediction: status, output, logs, GPU-seconds, cost (once it has ended).

        Raises:
            InvalidRequestError: ``input`` is not a dict (nothing was sent).
            InputValidationError: ``input`` does not match the model's schema (no run was created).
            UnsupportedCapabilityError: The provider does not run predictions (nothing was sent).
            PredictionFailedError: The run failed on the host (its cost is in the ledger).
            PredictionTimeoutError: ``timeout`` passed first.
            ProviderError: The host failed after retries (a request that starts a run is retried only when the
                host surely never saw it).
        """
        deadline = call_deadline(self._core, timeout)
        check_seconds("poll_interval", poll_interval, zero=True)  # before the run is created
        plan = _predict_plan(self._core, model, input, wait, hardware, webhook, extra_body, tags, validate, deadline)
        self._prepare(plan.targets, validate=validate, hardware=hardware, deadline=deadline)
        try:
            prediction: Prediction = self._send(plan)
        except APITimeoutError as e:
            if timeout is None:
                raise
            raise _create_timed_out(e, timeout) from e
        prediction._client = self
        prediction._tags = tags
        if wait:
            return self._wait(prediction, timeout, poll_interval, cancel_on_timeout, progress, deadline)
        if prediction.done:
            self._ended(prediction)
        return prediction

    def _ended(self, prediction: Prediction) -> None:
        self._ended_step(prediction)()

    def _prepare(self, targets: list[Target], *, validate: bool, hardware: str | None,
                 deadline: float | None) -> None:
        """Learn what each target's host publishes about its model (input schema, hardware): GETs, cached."""
        core = self._core
        for t in _lookups(core, targets):
            need_hw = core.needs_hardware(t, hardware)
            for _ in range(_MAX_LOOKUPS):
                req = _build_or_none(partial(core.model_info_request, t, schema=validate, hardware=need_hw))
                if req is None:
                    break
                core.add_model_info(t, self._send(_lookup_plan(core, t, req, deadline)))

    def _refresh(self, prediction: Prediction) -> Prediction:
        fresh: Prediction = self._send(_lifecycle_plan(self._core, prediction, "get"))
        if fresh.done:
            self._ended(fresh)
        return fresh

    def _cancel(self, prediction: Prediction) -> Prediction:
        fresh: Prediction = self._send(_lifecycle_plan(self._core, prediction, "cancel"))
        if fresh.done and self._core.adapter(fresh.provider).needs_final_state(fresh):
            fresh = self._send(_lifecycle_plan(self._core, fresh, "get"))  # its billed run time
        if fresh.done:
            self._ended(fresh)
        return fresh

    def _wait(
        self,
        prediction: Prediction,
        timeout: float | None,
        poll_interval: float | None,
        cancel_on_timeout: bool = True,
        progress: bool | Console = False,
        deadline: float | None = None,
    ) -> Prediction:
        waiting = _Waiting(self._core, prediction, timeout, poll_interval, progress, deadline)
        try:
            while not prediction.done:
                waiting.show(prediction)
                if waiting.timed_out():
                    if cancel_on_timeout:
                        prediction = self._cancel(prediction)
                    raise _timed_out(prediction, timeout)
                pause = waiting.pause(prediction)
                if pause is not None:
                    self._core.retry.sleep(pause)
                prediction = self._refresh(prediction)
            self._ended(prediction)
        finally:
            waiting.close(prediction)
        if prediction.status == "failed":
            raise _failed(prediction)
        return prediction

    def _stream(self, prediction: Prediction, poll_interval: float | None = None) -> PredictionStream:
        return PredictionStream(self, _PredictionStreamState(self._core, prediction, poll_interval))

    def _download(self, url: str, provider: str = "download", model: str | None = None, *,
                  public_only: bool = True) -> bytes:
        """GET an output file: no credential (the URL is pre-signed), redirects followed, size bounded.

        Raises:
            APIStatusError: The host answered with an error status (``NotFoundError`` for 404 ...).
            APITimeoutError, APIConnectionError: The download timed out or broke.
            MalformedResponseError: The file is larger than ``MAX_DOWNLOAD_BYTES``, or redirects loop.
        """
        from . import _outputs

        for _ in range(MAX_DOWNLOAD_REDIRECTS + 1):
            req = _outputs.download_request(url, self._core.settings.timeout, public_only=public_only)
            with self._transport.stream(req, provider, model) as (head, chunks):
                target = _outputs.redirect_to(head, url, provider, model)
                if target is None:
                    if head.status >= _ERROR_STATUS:
                        raise _outputs.status_error(head, url, provider, model)
                    sink = _outputs.Sink(head, url, provider, model)
                    for data in chunks:
                        sink.add(data)
                    return sink.content()
            url = target
        raise _outputs.too_many_redirects(url, provider, model)

    def close(self) -> None:
        """Close pooled connections, and write what the ledger still holds."""
        self._transport.close()
        self._core.flush()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient(_BaseClient, AsyncFineTuning):
    """The async twin of :class:`Client`: the same constructor and the same methods, awaited."""

    def __init__(
        self,
        config: str | os.PathLike[str] | Mapping[str, Any] | NotGiven | None = NOT_GIVEN,
        *,
        ledger: Ledger | str | Mapping[str, Any] | None = None,
        retry_policy: RetryPolicy | None = None,
        router: Router | None = None,
        http_client: Any = None,
        **settings: Any,
    ) -> None:
        super().__init__(config, ledger=ledger, retry_policy=retry_policy, router=router, **settings)
        self._transport = async_transport(self._core.settings.timeout, http_client)

    async def _send(self, plan: _Plan) -> Any:
        core, verb, parse, tags = self._core, plan.verb, plan.parse_checked, plan.tags
        run = Run(core, plan.targets, plan.route, plan.build)
        attempts: list[Attempt] = []
        while (target := run.next()) is not None:
            built = _build_or_skip(run, partial(_build_both, plan.build, target))
            if built is None:
                continue
            req, http = built
            idempotent = _has_idempotency_key(target, http)
            at_most_once = plan.at_most_once and not idempotent

            async def once(target: Target = target, req: Any = req, http: HTTPRequest = http,
                     idempotent: bool = idempotent, at_most_once: bool = at_most_once) -> Any:
                _bound(http, target, run, plan.deadline)
                # Budgets: reserved before any HTTP, settled with the attempt's row; off the event loop when the
                # ledger is remote (ledger_call). Steps of a plan that records nothing stay inline.
                io = plan.record
                held = await ledger_call(core, partial(core.reserve, target, req, tags)) if io else None
                started, t0 = now(), time.perf_counter()
                try:
                    resp = await self._transport.send(http, target.provider, target.model)
                    if resp.status >= _ERROR_STATUS:
                        raise target.adapter.map_error(resp, target.model)
                    result = parse(target, req, resp)
                except ProviderError as e:
                    await ledger_call(core, partial(core.failed, verb, target, e, started, t0, attempts, tags,
                                                    record=plan.record, reservation=held), offload=io)
                    if at_most_once:
                        _note_not_retried(core, e, idempotent)
                    raise
                except BaseException:
                    await ledger_call(core, partial(core.release, held), offload=held is not None)
                    raise
                await ledger_call(core, partial(core.succeeded, verb, target, result, started, t0, attempts, tags,
                                                record=plan.record, reservation=held), offload=io)
                return result

            try:
                try:  # first try outside tenacity, as in Client._send
                    return await once()
                except ProviderError as e:
                    wait = core.retry.first_wait(e, idempotent=idempotent, remaining=run.remaining_fn(),
                                                 at_most_once=at_most_once)
                    if wait is None:
                        raise
                    await core.retry.async_sleep(wait)
                async for attempt in core.retry.aretrying(
                    done=1, idempotent=idempotent, remaining=run.remaining_fn(), at_most_once=at_most_once
                ):
                    with attempt:
                        return await once()
            except ProviderError as e:
                run.failed(target, e)
            except BudgetExceededError as e:
                run.refused(target, e)  # nothing was sent: the next target may fit
        raise run.exhausted(attempts)

    async def complete(
        self,
        model: ModelSpec,
        prompt: str | NotGiven = NOT_GIVEN,
        *,
        messages: Messages | NotGiven = NOT_GIVEN,
        max_tokens: int | NotGiven = NOT_GIVEN,
        temperature: float | NotGiven = NOT_GIVEN,
        top_p: float | NotGiven = NOT_GIVEN,
        stop: str | list[str] | NotGiven = NOT_GIVEN,
        tools: list[dict[str, Any]] | NotGiven = NOT_GIVEN,
        tool_choice: Any = NOT_GIVEN,
        response_format: type[ParsedT] | Mapping[str, Any] | NotGiven = NOT_GIVEN,
        seed: int | NotGiven = NOT_GIVEN,
        service_tier: str | NotGiven = NOT_GIVEN,
        user: str | NotGiven = NOT_GIVEN,
        extra_body: Mapping[str, Any] | NotGiven = NOT_GIVEN,
        api: Literal["chat", "responses"] | NotGiven = NOT_GIVEN,
        tags: Mapping[str, str] | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
    ) -> Completion[ParsedT]:
        """Generate a completion (see :meth:`Client.complete`).

        Raises:
            InvalidRequestError: The arguments are wrong (nothing was sent).
            ConfigError: The provider is unknown or has no key (nothing was sent).
            UnsupportedCapabilityError: The provider cannot do this (nothing was sent).
            StructuredOutputError: ``response_format`` is a type and the model refused, or its answer does not
                validate (billed: the error carries the cost and the raw text).
            ProviderError: The provider failed after retries; a subclass says how.
        """
        opts = _complete_options(max_tokens, temperature, top_p, stop, tools, tool_choice, response_format, seed,
                                 service_tier, user, extra_body, api)
        result: Completion[ParsedT] = await self._send(
            _complete_plan(self._core, model, prompt, messages, opts, tags, base_url, api_key)
        )
        return result

    def stream(
        self,
        model: ModelSpec,
        prompt: str | NotGiven = NOT_GIVEN,
        *,
        messages: Messages | NotGiven = NOT_GIVEN,
        max_tokens: int | NotGiven = NOT_GIVEN,
        temperature: float | NotGiven = NOT_GIVEN,
        top_p: float | NotGiven = NOT_GIVEN,
        stop: str | list[str] | NotGiven = NOT_GIVEN,
        tools: list[dict[str, Any]] | NotGiven = NOT_GIVEN,
        tool_choice: Any = NOT_GIVEN,
        response_format: type[ParsedT] | Mapping[str, Any] | NotGiven = NOT_GIVEN,
        seed: int | NotGiven = NOT_GIVEN,
        service_tier: str | NotGiven = NOT_GIVEN,
        user: str | NotGiven = NOT_GIVEN,
        extra_body: Mapping[str, Any] | NotGiven = NOT_GIVEN,
        api: Literal["chat", "responses"] | NotGiven = NOT_GIVEN,
        tags: Mapping[str, str] | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
    ) -> AsyncStream[ParsedT]:
        """Stream a completion (see :meth:`Client.stream`): ``async with client.stream(...) as s``.

        Raises:
            InvalidRequestError: The arguments are wrong (nothing was sent).
            ConfigError: The provider is unknown or has no key (nothing was sent).
            UnsupportedCapabilityError: The provider cannot stream (nothing was sent).
            ProviderError: While iterating: the provider failed, before or during the stream.
        """
        opts = _complete_options(max_tokens, temperature, top_p, stop, tools, tool_choice, response_format, seed,
                                 service_tier, user, extra_body, api)
        return AsyncStream(self, _stream_state(self._core, model, prompt, messages, opts, tags, base_url, api_key))

    async def embed(
        self,
        model: ModelSpec,
        inputs: str | Sequence[str],
        *,
        dimensions: int | NotGiven = NOT_GIVEN,
        extra_body: Mapping[str, Any] | NotGiven = NOT_GIVEN,
        tags: Mapping[str, str] | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
    ) -> Embeddings:
        """Embed one string or a list of strings (see :meth:`Client.embed`).

        Raises:
            InvalidRequestError: The inputs are not strings (nothing was sent).
            UnsupportedCapabilityError: The provider has no embeddings API (nothing was sent).
            ProviderError: The provider failed after retries.
        """
        result: Embeddings = await self._send(
            _embed_plan(self._core, model, inputs, dimensions, extra_body, tags, base_url, api_key)
        )
        return result

    async def rerank(
        self,
        model: ModelSpec,
        query: str,
        documents: Sequence[str],
        *,
        top_n: int | NotGiven = NOT_GIVEN,
        extra_body: Mapping[str, Any] | NotGiven = NOT_GIVEN,
        tags: Mapping[str, str] | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
    ) -> Reranking:
        """Order ``documents`` by relevance to ``query`` (Cohere ``rerank-*`` models).

        Args:
            model: ``"provider:model"``, a list of them (tried in order), or a route name.
            query: What the documents are ranked against.
            documents: The candidate texts.
            top_n: Return only the best ``top_n`` hits.
            extra_body: Provider-specific body fields, sent as they are.
            tags: Labels stored with every attempt in the ledger.
            base_url: Send this call to another base URL (a configured key goes only to its own origin).
            api_key: A key for this call only.

        Returns:
            Hits, most relevant first, with the billed search units and their cost (``None`` unless a price
            for the model's search units is known, e.g. from ``[prices]``).

        Raises:
            InvalidRequestError: The query or documents are not strings (nothing was sent).
            UnsupportedCapabilityError: The provider has no rerank API (nothing was sent).
            ProviderError: The provider failed after retries.
        """
        result: Reranking = await self._send(
            _rerank_plan(self._core, model, query, documents, top_n, extra_body, tags, base_url, api_key)
        )
        return result

    async def predict(
        self,
        model: ModelSpec,
        input: Mapping[str, Any],
        *,
        wait: bool = True,
        timeout: float | None = None,
        poll_interval: float | None = None,
        hardware: str | None = None,
        webhook: str | None = None,
        cancel_on_timeout: bool = True,
        validate: bool = True,
        progress: bool | Console = False,
        extra_body: Mapping[str, Any] | NotGiven = NOT_GIVEN,
        tags: Mapping[str, str] | None = None,
    ) -> Prediction:
        """Run a model on a serverless GPU host (see :meth:`Client.predict`).

        Raises:
            InvalidRequestError: ``input`` is not a dict (nothing was sent).
            InputValidationError: ``input`` does not match the model's schema (no run was created).
            UnsupportedCapabilityError: The provider does not run predictions (nothing was sent).
            PredictionFailedError: The run failed on the host (its cost is in the ledger).
            PredictionTimeoutError: ``timeout`` passed first.
            ProviderError: The host failed after retries.
        """
        deadline = call_deadline(self._core, timeout)
        check_seconds("poll_interval", poll_interval, zero=True)  # before the run is created
        plan = _predict_plan(self._core, model, input, wait, hardware, webhook, extra_body, tags, validate, deadline)
        await self._prepare(plan.targets, validate=validate, hardware=hardware, deadline=deadline)
        try:
            prediction: Prediction = await self._send(plan)
        except APITimeoutError as e:
            if timeout is None:
                raise
            raise _create_timed_out(e, timeout) from e
        prediction._client = self
        prediction._tags = tags
        if wait:
            return await self._wait(prediction, timeout, poll_interval, cancel_on_timeout, progress, deadline)
        if prediction.done:
            await self._ended(prediction)
        return prediction

    async def _ended(self, prediction: Prediction) -> None:
        """:meth:`Client._ended`, off the event loop when the ledger is remote (a row that is already written
        stays inline: nothing to write)."""
        await ledger_call(self._core, self._ended_step(prediction), offload=not prediction._recorded)

    async def _prepare(self, targets: list[Target], *, validate: bool, hardware: str | None,
                       deadline: float | None) -> None:
        """:meth:`Client._prepare`, awaited."""
        core = self._core
        for t in _lookups(core, targets):
            need_hw = core.needs_hardware(t, hardware)
            for _ in range(_MAX_LOOKUPS):
                req = _build_or_none(partial(core.model_info_request, t, schema=validate, hardware=need_hw))
                if req is None:
                    break
                core.add_model_info(t, await self._send(_lookup_plan(core, t, req, deadline)))

    async def _refresh(self, prediction: Prediction) -> Prediction:
        fresh: Prediction = await self._send(_lifecycle_plan(self._core, prediction, "get"))
        if fresh.done:
            await self._ended(fresh)
        return fresh

    async def _cancel(self, prediction: Prediction) -> Prediction:
        fresh: Prediction = await self._send(_lifecycle_plan(self._core, prediction, "cancel"))
        if fresh.done and self._core.adapter(fresh.provider).needs_final_state(fresh):
            fresh = await self._send(_lifecycle_plan(self._core, fresh, "get"))  # its billed run time
        if fresh.done:
            await self._ended(fresh)
        return fresh

    async def _wait(
        self,
        prediction: Prediction,
        timeout: float | None,
        poll_interval: float | None,
        cancel_on_timeout: bool = True,
        progress: bool | Console = False,
        deadline: float | None = None,
    ) -> Prediction:
        waiting = _Waiting(self._core, prediction, timeout, poll_interval, progress, deadline)
        try:
            while not prediction.done:
                waiting.show(prediction)
                if waiting.timed_out():
                    if cancel_on_timeout:
                        prediction = await self._cancel(prediction)
                    raise _timed_out(prediction, timeout)
                pause = waiting.pause(prediction)
                if pause is not None:
                    await self._core.retry.async_sleep(pause)
                prediction = await self._refresh(prediction)
            await self._ended(prediction)
        finally:
            waiting.close(prediction)
        if prediction.status == "failed":
            raise _failed(prediction)
        return prediction

    def _stream(self, prediction: Prediction, poll_interval: float | None = None) -> AsyncPredictionStream:
        return AsyncPredictionStream(self, _PredictionStreamState(self._core, prediction, poll_interval))

    async def _download(self, url: str, provider: str = "download", model: str | None = None, *,
                        public_only: bool = True) -> bytes:
        """:meth:`Client._download`, awaited."""
        from . import _outputs

        for _ in range(MAX_DOWNLOAD_REDIRECTS + 1):
            req = _outputs.download_request(url, self._core.settings.timeout, public_only=public_only)
            async with self._transport.stream(req, provider, model) as (head, chunks):
                target = _outputs.redirect_to(head, url, provider, model)
                if target is None:
                    if head.status >= _ERROR_STATUS:
                        raise _outputs.status_error(head, url, provider, model)
                    sink = _outputs.Sink(head, url, provider, model)
                    async for data in chunks:
                        sink.add(data)
                    return sink.content()
            url = target
        raise _outputs.too_many_redirects(url, provider, model)

    async def aclose(self) -> None:
        """Close pooled connections, and write what the ledger still holds."""
        await self._transport.close()
        self._core.flush()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
