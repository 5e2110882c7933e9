"""The metering under ``ck.instrument(client)``: computekit's ledger, prices, budgets and tags for a vendor SDK
client, unchanged.

The hook is the SDK's HTTP transport (the ``httpx`` or ``httpx2`` transport under its HTTP client): each request
the SDK sends, retries included, passes through a :class:`_Meter`, which

1. finds the provider (the SDK's) and the model (the request's body or URL) and reads the body as computekit's
   normalised request (:mod:`computekit._instrument_sdks`); a request computekit does not price passes through
   untouched (recorded, with an unknown cost, only where the endpoint bills);
2. reserves the request's worst case in every budget that covers it *before* it is sent: a refusal raises
   :class:`~computekit.BudgetExceededError` from the SDK's call, nothing sent;
3. hands the response back at once, its body teed: the SDK reads the bytes as they arrive, while the same pure
   adapter code that computekit's own calls run decodes (streams) or collects (answers) them;
4. when the body ends, parses and prices it and writes its ledger row (settling the reservation); a body the
   application stops reading is recorded as ``canceled``; an error status as an ``error`` row.

Nothing here imports a vendor SDK or ``httpx``: the transport classes are built on the HTTP library the SDK's
client comes from, the first time a client of it is instrumented.
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib
import json
import logging
import os
import queue
import re
import sys
import threading
import time
import warnings
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from ._attempt import AttemptFacts, malformed_from
from ._background import BACKGROUND_ENDED, BackgroundResponse
from ._bookkeeping import (
    ROW_TAPS,
    background_ended,
    canceled,
    failed,
    prediction_ended,
    record,
    succeeded,
)
from ._constants import MAX_SSE_EVENT_BYTES, RUNS_KEPT, TARGETS_KEPT
from ._core import Core, ledger_call, now
from ._driver import priced, why_stopped
from ._exceptions import (
    APIConnectionError,
    APITimeoutError,
    BudgetExceededError,
    ComputeKitError,
    InvalidRequestError,
    LedgerError,
    ProviderError,
)
from ._http import HTTPRequest
from ._instrument_sdks import SDK, Route, http_clients, model_of, parse, sdk_of
from ._otel import tracing
from ._sse import SSEDecoder
from ._tags import check_tags
from ._targets import Target
from ._transport import ERROR_STATUS
from ._types import Attempt, Completion, Cost, Prediction, Usage
from .adapters._base import (
    CompleteRequest,
    EmbedRequest,
    EventDecoder,
    HTTPResponse,
    PredictRequest,
    RerankRequest,
    StreamDecoder,
)
from .pricing import UnknownPriceWarning

__all__ = ["meter"]

log = logging.getLogger("computekit.instrument")

_UNPRICED = "computekit does not price this endpoint"
_METERS: weakref.WeakSet[_Meter] = weakref.WeakSet()
"""Every meter of this process: a forked child drops their pending answers (its parent records them)."""
_DROPPED: queue.SimpleQueue[_Try] = queue.SimpleQueue()
"""Tries whose body was collected unread and unclosed, for the reaper thread to record (see :func:`_dropped`)."""
_REAPER: threading.Thread | None = None
_REAPER_LOCK = threading.Lock()


def _forked() -> None:
    global _DROPPED, _REAPER, _REAPER_LOCK
    for m in list(_METERS):
        m.forked()
    _DROPPED, _REAPER, _REAPER_LOCK = queue.SimpleQueue(), None, threading.Lock()  # the parent's, not the child's


os.register_at_fork(after_in_child=_forked)


def _quietly(step: Callable[..., object], *args: Any) -> None:
    """Run a step of a try's bookkeeping (``step(*args)``): a failure of computekit's own (its ledger's store
    down ...) is logged, never raised into the application's SDK call, which has its answer (or its own error)."""
    try:
        step(*args)
    except Exception:  # recorded as well as it could be; the SDK's caller must not see it
        log.exception("computekit.instrument: the bookkeeping of a call failed")


def _run(batch: list[_Try]) -> None:
    for t in batch:
        _quietly(t.finish_later)


_BATCH = 32
"""Answers whose deferred bookkeeping the caller's thread does in one go (see :meth:`_Try.finish`)."""
_DEFERRABLE = (CompleteRequest, EmbedRequest, RerankRequest)
"""Requests whose answer is priced and recorded in one piece, which nothing later looks up (unlike a run)."""
_DEFERRABLE_VERBS = frozenset({"complete", "embed", "rerank"})
"""The routes whose requests are such (read as one of :data:`_DEFERRABLE`)."""
_STARTS_NOW = re.compile(rb'"(?:stream|background)"\s*:(?!\s*(?:false|null))|\\u00[67]')
"""What makes a body's reading urgent (see :meth:`_Meter.begin`): it may ask for a stream or a background response
(a ``stream`` or ``background`` key anywhere, not false or null). A JSON key may also be spelled with escapes
(``\\u0073tream``): a body with an escaped ASCII letter is read at once too."""
_ROUTES_KEPT = 256
"""Request paths whose route a meter remembers."""
_ADAPTERS_KEPT = 16
"""Adapters (one per origin and credential) a meter keeps."""
_CREDENTIAL_HEADERS = ("authorization", "x-api-key", "api-key")
"""Where the SDKs put their key (``Bearer KEY``, or the key itself)."""
_NO_HEADERS: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class _Run:
    """A run (a Replicate prediction) or a background response started through an instrumented client and not
    yet seen ending."""

    target: Target
    tags: Mapping[str, str] | None
    attempts: list[Attempt]


class _Try:
    """One request the SDK sent (one of its retries, maybe) and what computekit knows of it so far.

    Its body may be left unread (``unread``) until its bookkeeping (see :meth:`_Meter.begin`): :attr:`target`
    and :attr:`req` read it on first use.
    """

    __slots__ = ("_req", "_target", "attempts", "body", "broken", "decoder", "done", "ended", "error_body", "events",
                 "facts", "failure", "head", "held", "meter", "route", "sent_headers", "started", "status", "t0",
                 "tags", "unread", "unzip")

    def __init__(self, meter: _Meter, route: Route, target: Target | None, req: Any,
                 unread: tuple[str, Any, bytes] | None = None, sent_headers: Mapping[str, str] = _NO_HEADERS) -> None:
        self.meter, self.route, self._target, self._req = meter, route, target, req
        self.unread = unread
        """The request's method, URL and body, while its body is unread."""
        self.sent_headers = sent_headers
        """The request's headers, while its body is unread: its credential is read from them with the body (see
        :meth:`_Meter._adapter`), off the SDK call's path."""
        self.t0 = 0.0
        self.started: dt.datetime | None = None
        """When an unread try was sent (its facts are made when it is read)."""
        self.tags = check_tags(None)  # the enclosing ck.tags() blocks', read in the caller's context
        self.held: Any = None
        self.attempts: list[Attempt] = []
        self.facts: AttemptFacts | None = None
        self.status = 0
        self.head: Any = {}
        self.body: list[bytes] = []
        self.done = False
        self.broken: ProviderError | None = None
        self.decoder: StreamDecoder | None = None
        self.events: EventDecoder | None = None
        self.error_body = False
        self.ended = 0.0
        self.failure: Any = None
        """The stream event that broke the decoding (a background response's ``response.failed``)."""
        self.unzip: Any = None
        """The decoder of the body's content encoding (``gzip`` ...): the transport's bytes are the encoded ones."""

    @property
    def target(self) -> Target:
        if self.unread is not None:
            self.read()
        assert self._target is not None, "a try's target is known once its body is read"
        return self._target

    @target.setter
    def target(self, target: Target) -> None:
        self._target = target

    @property
    def req(self) -> Any:
        """computekit's normalised request (``None``: billed, not priced; a :class:`_Run`: a look at a run)."""
        if self.unread is not None:
            self.read()
        return self._req

    @property
    def verb(self) -> str:
        return "stream" if self.streaming else self.route.verb

    @property
    def keyed(self) -> bool:
        """Whether its bookkeeping may look a reservation up by key in the ledger (a background response's)."""
        # An unread body asks for neither a stream nor a background response (see _Meter.begin).
        return self.route.background or (self.unread is None and isinstance(self._req, CompleteRequest)
                                         and self._req.background)

    @property
    def streaming(self) -> bool:
        return self.unread is None and isinstance(self._req, CompleteRequest) and self._req.stream

    def read(self) -> None:
        """Read the request's body now: what it asks for, and (when sent) the facts of the try."""
        if self.unread is None:
            return
        method, url, content = self.unread
        self.unread = None
        self._target, self._req = self.meter.read(self.route, url, content, _credential(self.sent_headers))
        self.sent_headers = _NO_HEADERS
        if self.started is not None:
            self._sent(method, url)
            facts = self.sure_facts
            facts.started, facts.t0 = self.started, self.t0

    def sent(self, method: str, url: Any) -> None:
        """The request leaves now (after its reservation): its facts, as the attempt driver keeps them (for an
        unread try, when it is read: only the time is taken now)."""
        if self.unread is not None:
            self.started, self.t0 = now(), time.perf_counter()
            return
        self._sent(method, url)

    def _sent(self, method: str, url: Any) -> None:
        self.facts = AttemptFacts(self.verb, self.target, self.req, HTTPRequest(method, str(url), {}), self.attempts,
                                  self.tags)
        self.facts.begin(self.held)
        if self.route.background:  # a look bills nothing: a failure of it is not a row
            self.facts.record = False

    @property
    def sure_facts(self) -> AttemptFacts:
        assert self.facts is not None, "a try is answered only after it is sent"
        return self.facts

    def answered(self, status: int, headers: Any) -> None:
        """The response's head arrived: decode a successful stream as it comes, collect anything else."""
        self.status, self.head = status, headers
        if status >= ERROR_STATUS:
            self.error_body = True
            self.read()  # recorded when it ends, not deferred
        elif self.streaming:
            adapter = self.target.adapter
            try:
                self.decoder = adapter.stream_decoder(self.req)
            except Exception as e:  # a stream computekit cannot decode is recorded, not raised
                self.broken = self._malformed(e)
            self.events = adapter.event_decoder(MAX_SSE_EVENT_BYTES) or SSEDecoder(MAX_SSE_EVENT_BYTES)

    def feed(self, data: bytes) -> None:
        """Bytes the SDK is about to read: decoded (a stream) or kept (an answer, read whole by the SDK anyway)."""
        if self.unzip is not None:
            try:
                data = _bytes(self.unzip.decode(data))
            except Exception as e:  # the SDK gets its own error from these bytes; the answer is malformed
                self._undecodable(e)
                return
        if self.decoder is None or self.events is None:
            self.body.append(data)
            return
        if self.broken is not None:
            return
        event = None
        try:
            for event in self.events.feed(data):
                self.decoder.feed(event)
        except Exception as e:  # the SDK gets its bytes whatever computekit makes of them
            self.broken = self._malformed(e)
            self.failure = event

    def end(self) -> None:
        """The body ended: what its content decoder still holds is fed, then the try is finished."""
        unzip, self.unzip = self.unzip, None
        if unzip is not None:
            try:
                rest = _bytes(unzip.flush())
            except Exception as e:  # a truncated encoding: the answer is malformed
                self._undecodable(e)
            else:
                if rest:
                    self.feed(rest)
        self.finish()

    def _undecodable(self, cause: Exception) -> None:
        """The body does not decode as its content encoding says (the SDK fails on it too): malformed."""
        self.unzip = None
        if self.broken is None:
            self.read()
            self.broken = self._malformed(cause)

    def _malformed(self, cause: BaseException) -> ProviderError:
        return cause if isinstance(cause, ProviderError) else malformed_from(self.sure_facts, None, cause)

    # ------------------------------------------------------------------------- the bookkeeping of one try

    def finish(self) -> None:
        """The body ended: price and record the try (once).

        An answer (not a stream) of a verb priced in one piece (not a run, which later polls must find) is
        parsed, priced and recorded a little later when the ledger batches its writes (no budget to settle):
        the caller's thread does it for :data:`_BATCH` answers at a time (the same code run back to back costs
        about half what it costs between two SDK calls), and the ledger's writer thread does what is still
        pending when it commits its next batch. The ledger's flush (``rows()``, ``report()``, exit, SIGTERM)
        waits for it like for a queued row. Spend taps (tests) and OpenTelemetry spans (which belong to the
        caller's context) keep it immediate, and so do a background response's create (a look that follows must
        find it) and looks (what they find ended settles a reservation, which may be another process's).
        """
        if self.done:
            return
        self.done = True
        if (self.held is None and not self.error_body and not self.streaming and not self.keyed
                and (self.unread is not None or isinstance(self._req, _DEFERRABLE)) and not ROW_TAPS and not tracing()):
            self.ended = time.perf_counter()
            self.meter.later(self)
            return
        self._finish()

    def finish_later(self) -> None:
        """The deferred bookkeeping (see :meth:`finish`)."""
        self.read()
        facts = self.sure_facts
        facts.t0 += time.perf_counter() - self.ended  # its latency: to the body's end, not to now
        try:
            self._finish()
        except Exception as e:  # billed: recorded (of unknown cost) whatever went wrong in the bookkeeping
            if not facts.attempts:
                failed(self.meter.core, facts, self._malformed(e))
            raise

    def _finish(self) -> None:
        core, target, facts = self.meter.core, self.target, self.sure_facts
        if self.route.poll and self.error_body:
            return  # a look that failed: not billed, and the run is still to be seen ending
        if self.error_body:
            resp = HTTPResponse(self.status, self.head, b"".join(self.body))
            failed(core, facts, target.adapter.map_error(resp, target.model))
            return
        if self.req is None:  # billed, not priced by computekit
            self._unpriced()
            return
        try:
            result = self._result()
            if isinstance(result, Prediction):
                self._prediction(result)
                return
            if self.keyed:
                self._background(result)
                return
            attempt = priced(core, facts, result)
        except ProviderError as e:
            if not self._background_failed() and not self._background_cut():
                failed(core, facts, e)
            return
        succeeded(core, facts, result, attempt)
        if self.streaming and not result._usage_reported and self.route.usage_hint:
            _tell_no_usage(target, self.route.usage_hint)

    def _prediction(self, prediction: Prediction) -> None:
        """A run, as the host answered it: recorded once, priced from its GPU time, when it has ended (like the
        runs of ``ck.predict()``); until then its reservation is held under its id."""
        core, target, facts = self.meter.core, self.target, self.sure_facts
        prediction.usage.hardware, prediction._hardware_assumed = core.hardware(target, None)
        if isinstance(self.req, _Run):  # a poll or a cancel of a run started before
            run = self.req
            if prediction.done and self.meter.runs.pop(prediction.id, None) is not None:
                prediction.attempts = run.attempts
                prediction_ended(core, target, prediction, self.tags)
            return
        named = prediction.raw.get("model") if isinstance(prediction.raw, dict) else None
        if "/" not in target.model and isinstance(named, str) and "/" in named:
            # Started by version id alone: the host names the model it belongs to (what hardware is set by).
            target = self.target = facts.target = Target(target.adapter, named)
            prediction.model = named
            prediction.usage.hardware, prediction._hardware_assumed = core.hardware(target, None)
        succeeded(core, facts, prediction, priced(core, facts, prediction))
        if prediction.done:
            prediction_ended(core, target, prediction, self.tags)
        elif prediction.id:
            self.meter.follow(prediction.id, _Run(target, self.tags, prediction.attempts))

    def _background(self, result: Completion | BackgroundResponse) -> None:
        """A background response's state, as its create or a look at it found it (a stream of it, the last
        event's): recorded once, keyed by its id (as ``complete(..., background=True)`` records it), when it has
        ended; until then the create's reservation is held under that key."""
        core, meter = self.meter.core, self.meter
        handle = _state(self.target, result) if isinstance(result, Completion) else result
        if not self.route.background:  # the create: not billed by itself (its attempt, its reservation held)
            succeeded(core, self.sure_facts, handle, None)
            started = _Run(self.target, self.tags, handle.attempts)
            if not handle.done:
                meter.follow(handle.id, started)
                return
        elif not handle.done:
            return
        elif handle.id in meter.runs:
            started = meter.runs.pop(handle.id)
        elif handle.in_background:
            started = _Run(self.target, self.tags, [])  # started elsewhere (another client or process)
        else:
            return  # a response answered in the foreground: its create was its row
        with meter._lock:  # deferred answers are recorded on two threads
            if handle.id in meter.ended:
                return  # seen ended (and recorded) already by this client
            meter.ended[handle.id] = None
            if len(meter.ended) > _ENDED_KEPT:
                del meter.ended[next(iter(meter.ended))]
        handle.attempts = started.attempts
        model = started.target.model or handle.model
        background_ended(core, Target(started.target.adapter, model), handle, started.tags)

    def _background_failed(self) -> bool:
        """Whether the stream of a background response told that it failed (``response.failed``, the response
        object in it): then that is its final state, recorded as a look's would be."""
        if self.failure is None or not self.keyed:
            return False
        try:
            response = json.loads(self.failure.data)["response"]
            handle = self.target.adapter.parse_background(
                self.req, HTTPResponse(200, self.head, json.dumps(response).encode()))
        except Exception:  # not a failed response object: the stream's failure, recorded as such
            return False
        if not handle.done:
            return False
        self._background(handle)
        return True

    def _background_cut(self) -> bool:
        """Whether a background response's create stream broke off with an ``error`` event after it named the
        response: the stream ended, not necessarily the response, which the provider keeps (and bills). As for a
        stream the application stopped reading, its reservation stays held and the look that finds it ended
        writes its one row; an error row here would count it a second time."""
        if self.route.background or not (isinstance(self.req, CompleteRequest) and self.req.background):
            return False
        return self._left_running()

    def _left_running(self) -> bool:
        """Whether the stream of a background response's create, ended before the response did, had named the
        response: then it is held (its reservation too) until a look sees it end, and no row is written now."""
        if self.decoder is None:
            return False
        try:
            so_far = self.decoder.result()
        except Exception:  # the stream never named its response: recorded as the stream's end
            return False
        if not so_far.id:
            return False
        self.done = True
        self._background(so_far)
        return True

    def _result(self) -> Any:
        target = self.target
        if self.decoder is None or self.events is None:
            if self.broken is not None:
                raise self.broken
            resp = HTTPResponse(self.status, self.head, b"".join(self.body))
            try:
                req = PredictRequest(target.model, {}) if isinstance(self.req, _Run) else self.req
                return target.adapter.checked(resp, target.model,
                                              lambda: parse(target.adapter, self.route, req, resp))
            except ProviderError:
                raise
            except Exception as e:
                raise self._malformed(e) from e
        if self.broken is None:
            try:
                events, cut = self.events.close()
                for event in events:
                    self.decoder.feed(event)
                if cut or not self.decoder.done:
                    raise APIConnectionError("the stream ended before its last event", provider=target.provider,
                                             model=target.model)
                result: Completion = self.decoder.result()
                target.adapter.note_head(result, self.head)
                return result
            except ProviderError:
                raise
            except Exception as e:
                raise self._malformed(e) from e
        raise self.broken

    def _unpriced(self) -> None:
        target, facts = self.target, self.sure_facts
        attempt = Attempt(provider=target.provider, model=target.model, outcome="success",
                          latency_s=facts.latency(), cost=Cost.unknown(_UNPRICED),
                          request_id=target.adapter.redact(target.adapter.request_id(self.head)),
                          started_at=facts.started)
        record(self.meter.core, self.verb, attempt, Usage(), self.tags, self.held)

    def cancel(self) -> None:
        """The SDK closed the body before its end (the application stopped reading): a billed, canceled try."""
        if self.done:
            return
        self.read()
        if self.route.poll:  # a look at a run, left unread: not billed, and the run is still to be seen ending
            self.done = True
            return
        if isinstance(self.req, CompleteRequest) and self.req.background and self._goes_on():
            return
        if self.error_body or self.req is None or (self.decoder is not None and self.decoder.done):
            # An error or an unpriced answer is recorded the same, read whole or not; a stream whose last event
            # has arrived is complete (an SDK stops reading at its end marker, before the body's end).
            self.finish()
            return
        self.done = True
        self.sure_facts.reported_so_far = self._reported_so_far
        canceled(self.meter.core, self.sure_facts, "closed by the application")

    def _goes_on(self) -> bool:
        """A background response's create stream the application stopped reading: the response goes on running
        (billed when it ends, which a look records), its reservation held under its id, when the stream told it."""
        if self.error_body or self.decoder is None or self.broken is not None or self.decoder.done:
            return False
        return self._left_running()

    def _reported_so_far(self) -> Completion | None:
        if self.decoder is None or self.broken is not None:
            return None
        try:
            so_far = self.decoder.result()
        except Exception:  # a partial stream that does not parse: its usage is unknown
            return None
        return so_far if so_far._usage_reported else None

    def failed_to_send(self, exc: BaseException, lib: Any) -> None:
        """The request got no answer, or not all of it (a connection error or a timeout: maybe billed)."""
        self.done = True
        self.read()
        core, target, facts = self.meter.core, self.target, self.sure_facts
        if self.route.poll:
            return
        if isinstance(exc, lib.TimeoutException):
            error: ProviderError = APITimeoutError(str(exc) or "timed out", provider=target.provider,
                                                   model=target.model)
        elif isinstance(exc, lib.TransportError):
            error = APIConnectionError(str(exc) or type(exc).__name__, provider=target.provider, model=target.model)
        elif not isinstance(exc, Exception):  # a task canceled, a KeyboardInterrupt: sent, so maybe billed
            canceled(core, facts, why_stopped(exc))
            return
        else:
            core.budgets.release(self.held)
            return
        failed(core, facts, error)


class _Meter:
    """What one instrumented SDK client records with: computekit's core (its ledger, prices and budgets), the
    SDK's routes, and the adapters of the origins it talks to."""

    __slots__ = ("__weakref__", "_adapters", "_lock", "_pending", "_routes", "core", "ended", "runs", "sdk")

    def __init__(self, core: Core, sdk: SDK) -> None:
        self.core, self.sdk = core, sdk
        self._adapters: dict[tuple[str, str | None], Any] = {}
        self._routes: dict[tuple[str, str], Route | None] = {}
        self.runs: dict[str, _Run] = {}
        """Runs (Replicate) and background responses started through this client that had not ended when last
        seen, by id."""
        self.ended: dict[str, None] = {}
        """The background responses this client saw end lately (recorded: a later look writes nothing)."""
        self._pending: list[_Try] = []
        """Answers whose bookkeeping is deferred (see :meth:`_Try.finish` and :meth:`later`)."""
        self._lock = threading.Lock()
        _METERS.add(self)

    def later(self, t: _Try) -> None:
        """Keep ``t``'s bookkeeping for later (see :meth:`_Try.finish`).

        The pending list is the caller's batch: full, it is run on this thread. Whenever it stops being empty,
        the ledger's writer is handed a job that runs whatever is pending then (with its next commit, at a flush,
        at exit): each try is in exactly one batch, taken under the lock.
        """
        with self._lock:
            first = not self._pending
            self._pending.append(t)
            batch = None
            if len(self._pending) >= _BATCH:
                batch, self._pending = self._pending, []
        if batch is not None:
            _run(batch)
        elif first and not self._deferred():
            self.drain()  # no writer thread (none, closed, or a forked child's) would: now, t among them

    def _deferred(self) -> bool:
        """Whether the ledger's writer took the job of running what is pending. A ledger whose store cannot be
        opened has no writer: the bookkeeping is done now, and logs the rows it cannot write (left pending, they
        would wait for a writer that never comes, and be lost without a word)."""
        try:
            return self.core.ledger.defer(self.drain)
        except Exception:
            return False

    def follow(self, run_id: str, run: _Run) -> None:
        """Remember a run started through this client until a look sees it end. At most :data:`RUNS_KEPT`: past
        it, the oldest is forgotten (a run nobody looks at again, told of by a webhook, would otherwise hold
        memory for ever; a later look at a forgotten Replicate run records nothing, and its reservation lapses at
        its time to live)."""
        with self._lock:  # deferred answers are recorded on two threads
            self.runs[run_id] = run
            if len(self.runs) <= RUNS_KEPT:
                return
            oldest = next(iter(self.runs))
            del self.runs[oldest]
        log.warning("computekit.instrument: more than %d runs started through this client are not seen ending; the "
                    "oldest (%s) is forgotten: a look that sees it end later may not record it", RUNS_KEPT, oldest)

    def drain(self) -> None:
        """Run what is pending now (the ledger's writer, at its commit)."""
        with self._lock:
            batch, self._pending = self._pending, []
        _run(batch)

    def forked(self) -> None:
        """In a forked child: what the parent had pending is its parent's to record (and its lock is new)."""
        self._lock = threading.Lock()
        self._pending = []

    def route(self, method: str, path: str) -> Route | None:
        """The SDK's route for a request (``None``: not billed), remembered per path."""
        key = (method, path)
        try:
            return self._routes[key]
        except KeyError:
            pass
        route = self.sdk.route(method, path)
        if len(self._routes) >= _ROUTES_KEPT:  # paths with ids (looks at runs) must not grow it without bound
            self._routes.clear()
        self._routes[key] = route
        return route

    def begin(self, method: str, url: Any, content: Callable[[], bytes],
              headers: Mapping[str, str] = _NO_HEADERS) -> _Try | None:
        """The try for a request computekit records (``None``: it passes through untouched).

        Its body is read now when what it asks for matters before its answer has ended: under a budget (its worst
        case is reserved), for a stream (decoded as it arrives), a background response or a run (which later
        looks must find). Otherwise it is read with the answer's deferred bookkeeping (see :meth:`_Try.finish`),
        off the path of the SDK's call.
        """
        path = _path(url)
        route = self.route(method, path)
        if route is None:
            return None
        if route.poll:  # a look at a run this client started: what it finds ended is recorded (once)
            run_id = path.rstrip("/").removesuffix("/cancel").rsplit("/", 1)[-1]
            started = self.runs.get(run_id)
            if route.background:
                return self._look(route, url, started, _credential(headers))
            if started is None:
                return None
            t = _Try(self, route, started.target, started)
            t.tags = started.tags
            return t
        try:
            body = content()
        except Exception:  # a body that is not there to read (a streamed upload ...): not priced
            body = b""
        if (route.verb in _DEFERRABLE_VERBS and route.normalise is not None and not self.core.budgets.active
                and not _STARTS_NOW.search(body)):
            return _Try(self, route, None, None, (method, url, body), headers)
        return _Try(self, route, *self.read(route, url, body, _credential(headers)))

    def read(self, route: Route, url: Any, content: bytes, key: str | None = None) -> tuple[Target, Any]:
        """A request's target and computekit's normalised request (``None``: not priced) from its body; ``key``:
        the credential it carries (see :meth:`_adapter`)."""
        try:
            body = json.loads(content)
        except Exception:  # a body that is not JSON (a streamed upload ...): not priced
            body = None
        body = body if isinstance(body, dict) else {}
        adapter = self._adapter(url, key)
        path = _path(url)
        model = model_of(adapter, route, path, body)
        req = None
        legacy_stream = route.parse is not None and bool(body.get("stream"))  # framed otherwise: not priced
        if route.normalise is not None and model is not None and not legacy_stream:
            try:
                req = route.normalise(model, body)
            except Exception:  # a body the SDK sent, but not of the shape computekit reads: billed, not priced
                log.debug("computekit.instrument: a %s request's body could not be read", route.verb, exc_info=True)
        return Target(adapter, model or "unknown"), req

    def _look(self, route: Route, url: Any, started: _Run | None, key: str | None) -> _Try:
        """A look at a background response (started here or anywhere: what it finds ended is recorded once)."""
        target = started.target if started is not None else Target(self._adapter(url, key), "")
        assert route.normalise is not None
        req = route.normalise(target.model, {})
        params = getattr(url, "params", None)
        req.stream = params is not None and str(params.get("stream", "")).lower() == "true"  # resumed events
        t = _Try(self, route, target, req)
        if started is not None:
            t.tags = started.tags
        return t

    def reserve(self, t: _Try) -> Any:
        """Reserve the try's worst case (before it is sent; a poll bills nothing): the reservation, also kept as
        ``t.held`` (returned, so that an async call canceled while it is made in a worker thread releases it).

        Raises:
            BudgetExceededError: A budget refused it (as the SDK's own error too, when it wraps others).
            LedgerError: The ledger's store failed making the reservation (as the SDK's own error too).
        """
        if t.route.poll or (t.unread is not None and not self.core.budgets.active):
            return None
        try:
            t.held = self.core.budgets.reserve(t.target, t.req, t.tags)
            return t.held
        except (BudgetExceededError, LedgerError) as e:
            if self.sdk.error_base is None:
                raise
            cls = _sdk_error_class(type(e), self.sdk.error_base)
            refusal = cls.__new__(cls)
            refusal.__dict__.update(e.__dict__)
            refusal.args = e.args
            raise refusal from e.__cause__

    def _adapter(self, url: Any, key: str | None) -> Any:
        """The adapter that reads the answers of ``url``'s origin to requests sent with ``key``.

        The SDK's own origin is the provider's (a proxy, a region, an Azure resource): the adapter is built on it.
        It only parses and prices here, never sends; it holds the SDK's key (a ``SecretStr``) only to mask it
        where a server echoes it back (a request id header, an error body), as it masks its own.
        """
        origin = f"{url.scheme}://{url.netloc.decode() if isinstance(url.netloc, bytes) else url.netloc}"
        adapter = self._adapters.get((origin, key))
        if adapter is None:
            adapter = self.core.adapter(self.sdk.provider, base_url=origin, api_key=key)
            if len(self._adapters) >= _ADAPTERS_KEPT:  # keys that rotate (short-lived tokens) must not grow it
                self._adapters.clear()
            self._adapters[(origin, key)] = adapter
        return adapter


# ------------------------------------------------------------------------------ transports and teed bodies


def _dropped(t: _Try, pid: int) -> None:
    """A teed body collected before its end and unclosed (a stream the application never read, nor closed): billed,
    so a canceled try, by the process that sent it (a forked child collecting its copy records nothing), and not
    while the interpreter shuts down (the ledger is closed by then).

    A finalizer runs wherever the garbage collector happens to run, maybe inside the ledger's own locked code on
    this very thread: the try is only queued here (``SimpleQueue.put`` is safe in a finalizer), and recorded by
    the reaper thread.
    """
    if not t.done and pid == os.getpid() and not sys.is_finalizing():
        _DROPPED.put(t)


def _reap(dropped: queue.SimpleQueue[_Try]) -> None:
    """The reaper thread: records the tries of bodies dropped unread (see :func:`_dropped`)."""
    while True:
        _quietly(dropped.get().cancel)


def _reaper() -> None:
    """Start the reaper thread of this process (once; again in a forked child, which has none)."""
    global _REAPER
    with _REAPER_LOCK:
        if _REAPER is None:
            _REAPER = threading.Thread(target=_reap, args=(_DROPPED,), name="computekit-instrument-reaper",
                                       daemon=True)
            _REAPER.start()


@functools.cache
def _classes(lib: Any) -> tuple[type, type]:
    """The metered transports (sync, async) built on ``lib`` (``httpx`` or ``httpx2``): each checks the other's
    stream types, so they must be the library's own."""

    class Tee(lib.SyncByteStream):  # type: ignore[misc]
        __slots__ = ("inner", "pid", "t")

        def __init__(self, inner: Any, t: _Try) -> None:
            self.inner, self.t, self.pid = inner, t, os.getpid()
            if _REAPER is None:  # a forked child's first
                _reaper()

        def __del__(self) -> None:
            _dropped(self.t, self.pid)

        def __iter__(self) -> Iterator[bytes]:
            t = self.t
            try:
                for data in self.inner:
                    t.feed(data)
                    yield data
            except Exception as e:  # the connection broke mid-answer: a failed try (maybe billed)
                if not t.done:
                    _quietly(t.failed_to_send, e, lib)
                raise
            _quietly(t.end)

        def close(self) -> None:
            try:
                _quietly(self.t.cancel)
            finally:
                self.inner.close()

    class AsyncTee(lib.AsyncByteStream):  # type: ignore[misc]
        __slots__ = ("inner", "pid", "t")

        def __init__(self, inner: Any, t: _Try) -> None:
            self.inner, self.t, self.pid = inner, t, os.getpid()
            if _REAPER is None:  # a forked child's first
                _reaper()

        def __del__(self) -> None:
            _dropped(self.t, self.pid)

        async def __aiter__(self) -> AsyncIterator[bytes]:
            t = self.t
            try:
                async for data in self.inner:
                    t.feed(data)
                    yield data
            except Exception as e:  # the connection broke mid-answer: a failed try (maybe billed)
                if not t.done:
                    await ledger_call(t.meter.core, functools.partial(_quietly, t.failed_to_send, e, lib))
                raise
            await ledger_call(t.meter.core, functools.partial(_quietly, t.end), keyed=t.keyed)

        async def aclose(self) -> None:
            try:
                if not self.t.done:
                    await ledger_call(self.t.meter.core, functools.partial(_quietly, self.t.cancel),
                                      keyed=self.t.keyed)
            finally:
                await self.inner.aclose()

    class Metered(lib.BaseTransport):  # type: ignore[misc]
        """A transport that records every request it sends (see :mod:`computekit._instrument`)."""

        def __init__(self, inner: Any, meter: _Meter) -> None:
            self.inner, self.meter = inner, meter

        def handle_request(self, request: Any) -> Any:
            t = self.meter.begin(request.method, request.url, lambda: request.content, request.headers)
            if t is None:
                return self.inner.handle_request(request)
            self.meter.reserve(t)  # budgets: before the request leaves
            t.sent(request.method, request.url)
            try:
                response = self.inner.handle_request(request)
            except BaseException as e:
                _quietly(t.failed_to_send, e, lib)
                raise
            read = _answered(response, t, lib)
            if read:
                _quietly(t.finish)
            elif read is not None:
                response.stream = Tee(response.stream, t)
            return response

        def close(self) -> None:
            self.inner.close()

    class AsyncMetered(lib.AsyncBaseTransport):  # type: ignore[misc]
        """The async twin of :class:`Metered`."""

        def __init__(self, inner: Any, meter: _Meter) -> None:
            self.inner, self.meter = inner, meter

        async def handle_async_request(self, request: Any) -> Any:
            t = self.meter.begin(request.method, request.url, lambda: request.content, request.headers)
            if t is None:
                return await self.inner.handle_async_request(request)
            core = self.meter.core
            await ledger_call(core, functools.partial(self.meter.reserve, t))
            t.sent(request.method, request.url)
            try:
                response = await self.inner.handle_async_request(request)
            except BaseException as e:
                await ledger_call(core, functools.partial(_quietly, t.failed_to_send, e, lib))
                raise
            read = _answered(response, t, lib)
            if read:
                await ledger_call(core, functools.partial(_quietly, t.finish), keyed=t.keyed)
            elif read is not None:
                response.stream = AsyncTee(response.stream, t)
            return response

        async def aclose(self) -> None:
            await self.inner.aclose()

    return Metered, AsyncMetered


_ENDED_KEPT = 1024
"""Background responses a client remembers seeing end (a later look at one of them is not parsed into a row)."""


def _state(target: Target, result: Completion) -> BackgroundResponse:
    """A background response's state from a stream of it (its create's, or a resumed one): the last event's."""
    raw = result.raw if isinstance(result.raw, dict) else {}
    status = raw.get("status")
    ended = status in BACKGROUND_ENDED
    return BackgroundResponse(id=result.id or "", provider=target.provider, model=target.model or result.model,
                              status=status if ended or status == "queued" else "in_progress",
                              completion=result if ended else None, raw=raw)


_TOLD: set[tuple[str, str]] = set()
"""The models already told about their streams without usage (once per process; at most :data:`TARGETS_KEPT`, then
all are forgotten, and may be told of once more)."""


def _tell_no_usage(target: Target, hint: str) -> None:
    """A stream ended without its usage (the request did not ask for it): its cost is unknown, and it is said,
    once per model.

    Asking on the application's behalf would change what it reads (one more chunk, with no choices, which
    ``chunk.choices[0]`` fails on), and an estimate from the text would not be the bill: so the cost is left
    unknown, with the fix named.
    """
    key = (target.provider, target.model)
    if key in _TOLD:
        return
    if len(_TOLD) >= TARGETS_KEPT:
        _TOLD.clear()
    _TOLD.add(key)
    warnings.warn(f"{target.provider}:{target.model}: an instrumented stream that did not ask for its usage is "
                  f"recorded with an unknown cost (None). Pass {hint} to the SDK call to have it priced.",
                  UnknownPriceWarning, stacklevel=2)


_SDK_ERRORS: dict[tuple[type[ComputeKitError], str], type[ComputeKitError]] = {}
"""The classes :func:`_sdk_error_class` made, by computekit's class and the SDK's base error."""


def _sdk_error_class(error: type[ComputeKitError], error_base: str) -> type[ComputeKitError]:
    """computekit's ``error`` class (a budget's refusal, a ledger's failure) that is also the SDK's own base error
    (see ``SDK.error_base``): what the SDK's caller catches already catches it."""
    made = _SDK_ERRORS.get((error, error_base))
    if made is None:
        module, name = error_base.split(":")
        base = getattr(importlib.import_module(module), name)  # loaded already: a client of it is being metered
        made = _SDK_ERRORS.setdefault((error, error_base),
                                      type(error.__name__, (error, base), {"__module__": "computekit"}))
    return made


def _credential(headers: Mapping[str, str]) -> str | None:
    """The key a request carries (its scheme, ``Bearer``, left out), to be masked where a server echoes it."""
    for name in _CREDENTIAL_HEADERS:
        value = headers.get(name)
        if value:
            scheme, _, token = value.strip().partition(" ")
            return token.strip() or scheme
    return None


def _path(url: Any) -> str:
    """A request URL's path (an ``httpx`` URL's own, or parsed from its text)."""
    return url.path if hasattr(url, "path") else urlsplit(str(url)).path


def _answered(response: Any, t: _Try, lib: Any) -> bool | None:
    """The response's head (and a body read already) handed to its try: whether the body was read whole (the try
    is finished now) or is to be teed; ``None``: computekit failed to take it (logged), the SDK gets it untouched."""
    try:
        t.answered(response.status_code, response.headers)
        return _read(response, t, lib)
    except Exception:  # the SDK's caller must not see it
        log.exception("computekit.instrument: the bookkeeping of a call failed")
        return None


def _read(response: Any, t: _Try, lib: Any) -> bool:
    """Whether the transport answered with its body already read (an in-memory or mock transport): then it is
    fed whole, at once (decoded already). Otherwise the bytes to come are those on the wire: a body with a content
    encoding (``gzip`` ...) gets the decoder the SDK's HTTP library reads it with."""
    content = getattr(response, "_content", None)
    if content is None:
        if response.headers.get("content-encoding"):
            t.unzip = _content_decoder(lib, response)
        return False
    t.feed(content)
    return True


def _bytes(decoded: bytes | Iterator[bytes]) -> bytes:
    """What a content decoder gave (``httpx``: bytes; ``httpx2``: an iterator of them)."""
    return decoded if isinstance(decoded, bytes) else b"".join(decoded)


def _content_decoder(lib: Any, response: Any) -> Any:
    """A decoder of ``response``'s content encoding of its own (the response keeps the SDK's), as ``lib`` builds it:
    what the SDK decodes, computekit decodes."""
    try:
        return lib.Response(response.status_code, headers=response.headers,
                            stream=lib.ByteStream(b""))._get_content_decoder()
    except Exception:  # an HTTP library computekit does not know this of: read as sent (malformed if encoded)
        log.debug("computekit.instrument: no content decoder for this answer", exc_info=True)
        return None


def _library(http: Any) -> Any:
    """The HTTP library (``httpx`` or ``httpx2``) an SDK's HTTP client comes from."""
    for cls in type(http).__mro__:
        root = cls.__module__.split(".", 1)[0]
        if root in ("httpx", "httpx2") and cls.__name__ in ("Client", "AsyncClient"):
            return importlib.import_module(root)
    raise InvalidRequestError(f"computekit.instrument() found no httpx client in this SDK client "
                              f"(found {type(http).__name__})")


def _meter_http(http: Any, meter: _Meter) -> None:
    lib = _library(http)
    metered, async_metered = _classes(lib)
    cls = async_metered if isinstance(http, lib.AsyncClient) else metered
    http._transport = _wrapped(http._transport, cls, metered, async_metered, meter)
    for pattern, transport in list(http._mounts.items()):  # proxies: each has its own transport
        if transport is not None:
            http._mounts[pattern] = _wrapped(transport, cls, metered, async_metered, meter)


def _wrapped(transport: Any, cls: type, *kinds_and_meter: Any) -> Any:
    *kinds, meter = kinds_and_meter
    if isinstance(transport, tuple(kinds)):
        metered_by: _Meter = getattr(transport, "meter")  # noqa: B009 - a metered transport
        if metered_by.core is not meter.core or metered_by.sdk is not meter.sdk:
            # Kept, its rows would go to another ledger or be priced as another SDK's; replaced, so would those
            # of any other SDK client that shares this HTTP client.
            by = ("another computekit client (using=)" if metered_by.sdk is meter.sdk
                  else f"a {metered_by.sdk.name} client")
            raise InvalidRequestError(
                f"computekit.instrument(): this {meter.sdk.name} client's HTTP client is metered already, by {by}: "
                "instrument it with the same using=, or give each SDK client its own http_client")
        return transport  # instrumented already: one row per try, not two
    inner = getattr(transport, "_wrapped_transport", None)
    if inner is not None and type(transport).__name__ == "RetryTransport":
        # An SDK that retries inside its transport (Replicate): meter under its retries, so each is recorded.
        transport._wrapped_transport = _wrapped(inner, cls, *kinds_and_meter)
        return transport
    return cls(transport, meter)


def meter(client: Any, core: Core) -> None:
    """Meter ``client``'s HTTP clients with ``core`` (see :func:`computekit.instrument`).

    Raises:
        InvalidRequestError: ``client`` is not a client of a supported SDK.
    """
    sdk = sdk_of(client)
    if sdk is None:
        raise InvalidRequestError(
            f"computekit.instrument() does not know {type(client).__module__}.{type(client).__qualname__}: "
            "pass an openai, anthropic, cohere or replicate client")
    metered = _Meter(core, sdk)
    for http in http_clients(sdk, client):
        _meter_http(http, metered)
    _reaper()
