"""Streams: a completion's chunks (:class:`Stream`, :class:`AsyncStream`) and a prediction's output
(:class:`PredictionStream`, :class:`AsyncPredictionStream`).

Opening a stream is an attempt like any other, run by the client's driver (reserve, send, retry, fall back);
reading its body goes on inside the driver's ``guard``, so a stream that fails, is closed early or is interrupted
gets its ledger row like a call that was not streamed. What the sync and async streams share (decoding,
finishing) is pure and written once (:class:`_StreamState`, :class:`_PredictionStreamState`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from functools import partial
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ._attempt import AttemptFacts, Call, Opened, parsing
from ._constants import DEFAULT_POLL_INTERVAL_S
from ._driver import priced
from ._exceptions import APIConnectionError, ProviderError
from ._http import HTTPRequest, HTTPResponse
from ._plan import Plan
from ._plans import stream_poll_plan
from ._sse import FrameError, SSEDecoder, SSETooLarge
from ._structured import parse_output
from ._types import Attempt, Chunk, Completion, ParsedT, Prediction
from .adapters._base import EventDecoder, SSEEvent, StreamDecoder, StreamUpdate

if TYPE_CHECKING:
    from ._core import Core
    from ._driver import AsyncDriver, SyncDriver
    from ._predictions import AsyncPredictions, Predictions
    from ._targets import Target

__all__ = ["AsyncPredictionStream", "AsyncStream", "PredictionStream", "Stream"]


def _cut(target: Target, why: str) -> APIConnectionError:
    return APIConnectionError(why, provider=target.provider, model=target.model)


_C = TypeVar("_C")


class _Reading(Generic[_C]):
    """How a sync stream is iterated and closed (its body is ``_run``, a generator started on first use)."""

    _iter: Iterator[_C] | None = None

    def _run(self) -> Iterator[_C]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[_C]:
        if self._iter is None:
            self._iter = self._run()
        return self._iter

    def __next__(self) -> _C:
        return next(iter(self))

    def close(self) -> None:
        """Stop reading and release the connection (a prediction's run goes on: ``cancel()`` stops it)."""
        if self._iter is not None and hasattr(self._iter, "close"):
            self._iter.close()

    def __exit__(self, *exc: object) -> None:
        self.close()


class _AsyncReading(Generic[_C]):
    """How an async stream is iterated and closed (:class:`_Reading`, awaited)."""

    _iter: AsyncIterator[_C] | None = None

    def _run(self) -> AsyncIterator[_C]:
        raise NotImplementedError

    def __aiter__(self) -> AsyncIterator[_C]:
        if self._iter is None:
            self._iter = self._run()
        return self._iter

    async def __anext__(self) -> _C:
        return await self.__aiter__().__anext__()

    async def aclose(self) -> None:
        """Stop reading and release the connection (a prediction's run goes on)."""
        if self._iter is not None and hasattr(self._iter, "aclose"):
            await self._iter.aclose()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _reported_so_far(decoder: StreamDecoder) -> Completion | None:
    """The answer ``decoder`` has read so far, when the provider reported usage in it (an error event may carry
    it too): what a stream that fails or is closed early is priced from."""
    try:
        so_far = decoder.result()
    except Exception:  # usage out of range: the attempt is still recorded, its usage unknown
        return None
    return so_far if so_far._usage_reported else None


class _StreamState:
    """What a completion stream has done so far (pure, shared by :class:`Stream` and :class:`AsyncStream`)."""

    def __init__(self, core: Core, plan: Plan) -> None:
        self.core = core
        self.plan = plan
        self.call = Call(core, plan)
        self.result: Completion | None = None
        self.sse: EventDecoder = SSEDecoder(core.settings.limits.stream_event_bytes)
        self.decoder: StreamDecoder | None = None
        self.started_any = False

    @property
    def attempts(self) -> list[Attempt]:
        return self.call.attempts

    def opened(self, opened: Opened) -> StreamDecoder:
        """A target's stream has opened: a clean decoder for it, and how an attempt that fails or is canceled
        mid-stream learns the usage reported so far."""
        facts = opened.facts
        # A fallback target starts with a clean decoder, of its own framing (server-sent events by default).
        adapter = facts.target.adapter
        limit = adapter.settings.max_event_bytes
        self.sse = adapter.event_decoder(limit) or SSEDecoder(limit)
        decoder = self.decoder = adapter.stream_decoder(facts.request)
        facts.reported_so_far = partial(_reported_so_far, decoder)
        return decoder

    def chunks(self, facts: AttemptFacts, data: bytes) -> Iterator[Chunk]:
        """The chunks of one network read. Every event it completed is decoded before the first chunk is yielded
        (a caller that stops early still leaves the usage they reported); an error event, or a frame that does
        not parse, is raised only after the chunks that came before it in the same read."""
        decoder = self.decoder
        assert decoder is not None
        target = facts.target
        error: ProviderError | None = None
        try:
            events = self.sse.feed(data)
        except SSETooLarge as e:
            events, error = e.events, e.error(target.provider, target.model)
            error.__cause__ = e
        except FrameError as e:  # a frame that does not parse (a binary framing's bad checksum ...)
            events = e.events
            error = target.adapter.malformed(HTTPResponse(200, {}, data), target.model, str(e))
            error.__cause__ = e
        out, failed = self.decoded(facts, decoder, events)
        if out:
            facts.first_byte()
            self.started_any = True
        yield from out
        error = failed or error  # the failed event came first in the stream
        if error is not None:
            raise error

    def decoded(self, facts: AttemptFacts, decoder: StreamDecoder,
                events: list[SSEEvent]) -> tuple[list[Chunk], ProviderError | None]:
        """Events through the decoder, up to the first that fails: the chunks before it, and its error."""
        out: list[Chunk] = []
        for ev in events:
            try:
                out.extend(self.feed(facts, decoder, ev))
            except ProviderError as e:
                return out, e
        return out, None

    @staticmethod
    def feed(facts: AttemptFacts, decoder: StreamDecoder, ev: SSEEvent) -> list[Chunk]:
        """One event through the decoder: values out of range (an absurd usage count) and anything else the
        decoder raises are a malformed answer, with the event as its body."""
        target = facts.target
        head = HTTPResponse(200, {}, ev.data.encode("utf-8", "replace"))
        chunks: list[Chunk] = parsing(facts, head, lambda: target.adapter.checked(head, target.model,
                                                                                  partial(decoder.feed, ev)))
        return chunks

    def close(self, facts: AttemptFacts) -> Iterator[Chunk]:
        """The chunks of the events the end of the body completed; then a cut stream is an error."""
        decoder = self.decoder
        assert decoder is not None
        events, cut = self.sse.close()
        out, failed = self.decoded(facts, decoder, events)
        yield from out
        if failed is not None:
            raise failed
        if cut or not decoder.done:
            raise _cut(facts.target, "the stream ended before its last event")

    def finish(self, opened: Opened) -> tuple[Completion, Attempt | None]:
        """The completed answer, priced (inside the driver's guard: what does not parse is malformed)."""
        facts, decoder = opened.facts, self.decoder
        assert decoder is not None

        def result() -> Completion:
            done = facts.target.adapter.checked(opened.head, facts.target.model, decoder.result)
            # The decoder sees only events; the request id (and what else the head says) is in the response head.
            facts.target.adapter.note_head(done, opened.head.headers)
            return done

        done: Completion = parsing(facts, opened.head, result)
        # An answer that does not fit response_format's type: a failed (billed) attempt, priced as it is recorded.
        done = parse_output(getattr(facts.request, "output", None), done)
        return done, priced(self.core, facts, done)

    def failed(self, facts: AttemptFacts, error: ProviderError) -> None:
        """The body failed: a stream falls back only while nothing has reached the caller."""
        if self.started_any:
            raise error
        self.call.failed(facts, error)


class _StreamBase(Generic[ParsedT]):
    _state: _StreamState

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


class Stream(_StreamBase[ParsedT], _Reading[Chunk], AbstractContextManager["Stream[ParsedT]"]):
    """A streamed completion: iterate for :class:`Chunk` objects; ``result`` once it is exhausted.

    Use it as a context manager so the connection is released even if you stop early.
    """

    def __init__(self, driver: SyncDriver, state: _StreamState) -> None:
        self._driver = driver
        self._state = state

    def _run(self) -> Iterator[Chunk]:
        st, driver = self._state, self._driver
        while True:
            opened: Opened = driver.run(st.plan, st.call)  # retries, fallback, deadline; raises when none is left
            facts = opened.facts
            st.opened(opened)
            try:
                with driver.guard(facts):
                    try:
                        for data in opened.body:
                            yield from st.chunks(facts, data)
                        yield from st.close(facts)
                        result, attempt = st.finish(opened)
                    finally:
                        opened.cm.__exit__(None, None, None)
            except ProviderError as e:
                st.failed(facts, e)
                continue
            driver.settle(facts, result, attempt)
            st.result = result
            return


class AsyncStream(_StreamBase[ParsedT], _AsyncReading[Chunk], AbstractAsyncContextManager["AsyncStream[ParsedT]"]):
    """The async twin of :class:`Stream`: ``async for chunk in stream``."""

    def __init__(self, driver: AsyncDriver, state: _StreamState) -> None:
        self._driver = driver
        self._state = state

    async def _run(self) -> AsyncIterator[Chunk]:
        st, driver = self._state, self._driver
        while True:
            opened: Opened = await driver.run(st.plan, st.call)
            facts = opened.facts
            st.opened(opened)
            try:
                async with driver.guard(facts):
                    try:
                        async for data in opened.body:
                            for chunk in st.chunks(facts, data):
                                yield chunk
                        for chunk in st.close(facts):
                            yield chunk
                        result, attempt = st.finish(opened)
                    finally:
                        await opened.cm.__aexit__(None, None, None)
            except ProviderError as e:
                st.failed(facts, e)
                continue
            await driver.settle(facts, result, attempt)
            st.result = result
            return


class _PredictionStreamState:
    """A prediction's output stream so far (pure, shared by :class:`PredictionStream` and its async twin)."""

    def __init__(self, core: Core, prediction: Prediction, opening: tuple[Plan, HTTPRequest] | None,
                 poll_interval: float | None) -> None:
        self.core = core
        self.prediction = prediction
        self.plan = opening[0] if opening is not None else None
        self.http = opening[1] if opening is not None else None
        self.poll_interval = DEFAULT_POLL_INTERVAL_S if poll_interval is None else poll_interval
        self.sse = SSEDecoder(core.adapter(prediction.provider).settings.max_event_bytes)
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

    def poll_plan(self) -> Plan:
        return stream_poll_plan(self.core, self.prediction)

    def feed(self, facts: AttemptFacts, data: bytes) -> Iterator[Any]:
        """The pieces of one network read (an event that does not parse is raised after the pieces that came
        before it in the same read)."""
        error: ProviderError | None = None
        try:
            events = self.sse.feed(data)
        except SSETooLarge as e:
            events, error = e.events, e.error(facts.target.provider, facts.target.model)
            error.__cause__ = e
        out, failed = self._events(facts, events)
        yield from out
        error = failed or error
        if error is not None:
            raise error

    def close(self, facts: AttemptFacts) -> Iterator[Any]:
        events, _ = self.sse.close()
        out, failed = self._events(facts, events)
        yield from out
        if failed is not None:
            raise failed

    def _events(self, facts: AttemptFacts, events: list[SSEEvent]) -> tuple[list[Any], ProviderError | None]:
        """Events up to the end of the run or the first that fails: the pieces before it, and its error."""
        out: list[Any] = []
        for ev in events:
            if self.done:
                break
            try:
                out.extend(self._event(facts, ev))
            except ProviderError as e:
                return out, e
        return out, None

    def _event(self, facts: AttemptFacts, ev: Any) -> list[Any]:
        adapter = facts.target.adapter
        return self.apply(parsing(facts, None, lambda: adapter.parse_stream_event(self.prediction, ev)))

    def apply(self, update: StreamUpdate) -> list[Any]:
        self.logs += update.logs
        if update.error is not None:
            self.error = update.error
        if update.done:
            self.done = True
        return list(update.output)


class _PredictionStreamBase:
    _state: _PredictionStreamState

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


class PredictionStream(_PredictionStreamBase, _Reading[Any], AbstractContextManager["PredictionStream"]):
    """A prediction's output as the host streams it (``p.stream()``): iterate for the pieces (text, for language
    models); once it is exhausted, ``result`` is the ended prediction, priced and in the ledger.

    Server-sent streams (Replicate ``urls.stream``) are read as they arrive; polled ones (RunPod ``/stream``) are
    fetched every ``poll_interval``. When the stream ends, the prediction's final state is fetched once.
    """

    def __init__(self, predictions: Predictions, state: _PredictionStreamState) -> None:
        self._predictions = predictions
        self._state = state

    def _run(self) -> Iterator[Any]:
        st, predictions = self._state, self._predictions
        driver = predictions.driver
        if st.http is None:
            yield from st.ended_output()
        elif st.plan is not None and st.http.stream:
            opened: Opened = driver.run(st.plan)
            facts = opened.facts
            with driver.guard(facts):
                try:
                    for data in opened.body:
                        yield from st.feed(facts, data)
                        if st.done:
                            break
                    else:
                        yield from st.close(facts)
                finally:
                    opened.cm.__exit__(None, None, None)
        else:
            while True:
                update: StreamUpdate = driver.run(st.poll_plan())
                yield from st.apply(update)
                if st.done:
                    break
                st.core.retry.sleep(st.poll_interval)
        # The stream has ended (or was cut): the run's final state, priced and recorded once.
        final = st.prediction if st.prediction.done else predictions.refresh(st.prediction)
        st.result = predictions.wait(final)


class AsyncPredictionStream(_PredictionStreamBase, _AsyncReading[Any],
                            AbstractAsyncContextManager["AsyncPredictionStream"]):
    """The async twin of :class:`PredictionStream`: ``async for piece in p.async_stream()``."""

    def __init__(self, predictions: AsyncPredictions, state: _PredictionStreamState) -> None:
        self._predictions = predictions
        self._state = state

    async def _run(self) -> AsyncIterator[Any]:
        st, predictions = self._state, self._predictions
        driver = predictions.driver
        if st.http is None:
            for piece in st.ended_output():
                yield piece
        elif st.plan is not None and st.http.stream:
            opened: Opened = await driver.run(st.plan)
            facts = opened.facts
            async with driver.guard(facts):
                try:
                    ended = False
                    async for data in opened.body:
                        for piece in st.feed(facts, data):
                            yield piece
                        if st.done:
                            ended = True
                            break
                    if not ended:
                        for piece in st.close(facts):
                            yield piece
                finally:
                    await opened.cm.__aexit__(None, None, None)
        else:
            while True:
                update: StreamUpdate = await driver.run(st.poll_plan())
                for piece in st.apply(update):
                    yield piece
                if st.done:
                    break
                await st.core.retry.async_sleep(st.poll_interval)
        final = st.prediction if st.prediction.done else await predictions.refresh(st.prediction)
        st.result = await predictions.wait(final)
