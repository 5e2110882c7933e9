"""``batch()`` on :class:`~computekit.Client` and :class:`~computekit.AsyncClient`, and the batch lifecycle as
``client.batches`` (:class:`Batches` / :class:`AsyncBatches`: ``retrieve``, ``refresh``, ``wait``, ``cancel``,
``results``): only the I/O, written twice under the same names; a :class:`~computekit.BatchJob` is plain data
whose own methods are thin conveniences over these. Checking the lines, the estimate and each item's price are
:mod:`computekit._batch`'s; the adapters translate.

Every request (the upload, the create, each poll, the cancel, each result file's download) goes through the
client's attempt driver, so it is retried like any other call (a 5xx or a reset on a status GET is retried; GETs
are idempotent; the create is sent at most once). None of them is a billed attempt by itself: each item is priced
and written to the ledger once, as ``results()`` reads it, with the once-only key
``batch:{provider}:{batch_id}:{custom_id}`` (a second read, or another process that attached, writes nothing
again).

Budgets: the whole batch's worst case (its estimate) is reserved before the upload, and refused batches send
nothing; each item read settles its share of it; what is left is released once every result has been read, or
when the batch ends with nothing to read. The reservation is held in the ledger under the batch's key once the
provider has the batch (:meth:`Budgets.hold <computekit._budget.Budgets.hold>`), so a process that attaches and
reads the results settles it the same way, each item once (its row and its share go in one transaction).

What both clients share is pure and module-level here: the checked submission (:func:`_prepare`), the requests
that submit it as a generator of plans (:func:`_submit_steps`), each lifecycle request as a plan, the reading of
result lines (:class:`_Reading`) and the bookkeeping of ``wait()`` (:class:`_Following`).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, Never

from pydantic import ValidationError

from ._arguments import refuse
from ._batch import (
    MAX_NAMED_PROBLEMS,
    BatchTotals,
    ItemCost,
    ItemPrices,
    LineReader,
    PreparedBatch,
    batch_estimate,
    prepare_batch,
    price_item,
    result_lines,
)
from ._bookkeeping import record
from ._budget import Estimated, Reservation
from ._constants import BATCH_RESERVATION_TTL_S, DEFAULT_BATCH_POLL_INTERVAL_S, MAX_BATCH_POLL_INTERVAL_S
from ._core import ledger_call, now
from ._exceptions import (
    APIConnectionError,
    BatchFailedError,
    BatchTimeoutError,
    ComputeKitError,
    InvalidRequestError,
    MalformedResponseError,
    ProviderError,
)
from ._http import HTTPRequest, HTTPResponse
from ._plan import Plan
from ._tags import check_tags
from ._targets import Target, split_model_id
from ._types import Attempt, BatchJob, Completion, Cost, Embeddings, Usage, _adopt
from .adapters._base import BatchItem, BatchState, refused_values

if TYPE_CHECKING:
    from ._attempt import Opened
    from ._core import Core
    from ._driver import AsyncDriver, SyncDriver

__all__ = ["AsyncBatches", "AsyncBatching", "Batches", "Batching", "item_key"]

BatchResult = tuple[str, Completion | Embeddings | ProviderError]
"""One item of ``results()``: its ``custom_id``, and its answer or its typed error."""
UNREADABLE_LINE = "(unreadable: {where})"
"""What stands for the ``custom_id`` of a result line that names none it can be read by (its ledger row's key and
``custom_id`` tag): its place in the results, the same for every reader."""
_MAX_WHY_CHARS = 500

log = logging.getLogger("computekit")


def item_key(provider: str, batch_id: str, custom_id: str) -> str:
    """A batch item's ``once_key`` in the ledger."""
    return f"batch:{provider}:{batch_id}:{custom_id}"


def _held_key(job: BatchJob) -> str:
    """The key the batch's reservation is held under in the ledger until its results are read."""
    return f"batch:{job.provider}:{job.id}"


def _release_held(core: Core, job: BatchJob) -> None:
    """Drop what is left of the batch's reservation, whichever process made it."""
    core.budgets.release(core.budgets.find(_held_key(job)))


def _step(verb: str, target: Target, http: HTTPRequest, parse: Callable[[HTTPResponse], Any], *,
          stream: bool = False, at_most_once: bool = False) -> Plan:
    """One batch request as a plan for the driver: one target, no fallback, nothing billed by itself."""
    return Plan(verb, [target], lambda t: http, lambda t, req, resp: parse(resp), None, record=False,
                stream=stream, at_most_once=at_most_once, safe_to_retry=http.method == "GET")


def _job(provider: str, state: BatchState, model: str) -> BatchJob:
    """A provider's batch state as a :class:`~computekit.BatchJob` (its state kept for the next request)."""
    job = BatchJob(id=state.id, provider=provider, model=state.model or model, status=state.status,
                   provider_status=state.provider_status, kind=state.kind, total=state.total,
                   completed=state.completed, failed=state.failed, created_at=state.created_at,
                   finished_at=state.ended_at, raw=state.raw)
    job._state = state
    return job


def _carry(fresh: BatchJob, old: BatchJob) -> BatchJob:
    """A fresh state of ``old``'s batch keeps its estimate, client, tags, what was read and what it cost."""
    fresh.estimate = old.estimate
    fresh.model = old.model or fresh.model
    fresh._state.model = fresh.model
    fresh._state.kind = old._state.kind if old._state is not None else fresh._state.kind
    fresh.kind = fresh._state.kind
    fresh._client, fresh._tags, fresh._read, fresh._totals = old._client, old._tags, old._read, old._totals
    if not fresh.total and old.total:
        fresh.total = old.total  # the provider counts 0 while validating: the number submitted until it counts
    if old._totals is not None:
        fresh.cost, fresh.synchronous, fresh.saved, fresh.items = old.cost, old.synchronous, old.saved, old.items
    return fresh


def _state_of(job: BatchJob) -> BatchState:
    if job._state is None:
        raise InvalidRequestError("this batch has no provider state: get it with client.batches.retrieve(id)")
    state: BatchState = job._state
    return state


def _target(core: Core, job: BatchJob) -> Target:
    return Target(core.adapter(job.provider), job.model)


def _prepare(core: Core, model: str, requests: Any,
             tags: Mapping[str, str] | None) -> tuple[Target, PreparedBatch, Cost, Mapping[str, str] | None]:
    """``batch()``'s arguments checked and estimated (pure: nothing is sent).

    Raises:
        InvalidRequestError: A request or an argument is wrong (every bad line named).
        UnsupportedCapabilityError: The provider has no batch API (before anything else is read).
    """
    tags = check_tags(tags)
    provider, name = split_model_id(model)
    adapter = core.adapter(provider)
    if not adapter.capabilities.batch:
        raise adapter.unsupported("batch")
    prepared = prepare_batch(adapter, name, requests)
    return Target(adapter, name), prepared, batch_estimate(core.prices, adapter, prepared), tags


def _estimate_only(target: Target, prepared: PreparedBatch, estimate: Cost) -> BatchJob:
    return BatchJob(provider=target.provider, model=target.model, status="validating",
                    kind=prepared.kind,
                    total=prepared.count, estimate=estimate, estimate_only=True)


def _submit_steps(target: Target, prepared: PreparedBatch,
                  tags: Mapping[str, str] | None) -> Generator[Plan, Any, BatchState]:
    """The requests that submit a batch, in order (the upload where the lines go in a file, then the create):
    each yielded as a plan for the driver and its answer sent back in; returns the created batch's state."""
    adapter, model = target.adapter, target.model
    file_ref: str | None = None
    if adapter.batch_spec(model).uploads:
        file_ref = yield _step("batch.upload", target, adapter.build_batch_upload(model, prepared.content),
                               lambda r: adapter.parse_batch_upload(model, r))
    # The create starts billed work: sent at most once (a timeout is not resent blindly).
    http = adapter.build_batch_create(model, prepared.kind, file_ref, prepared.lines, dict(tags or {}))
    state: BatchState = yield _step("batch", target, http, lambda r: adapter.parse_batch(model, r),
                                    at_most_once=True)
    state.kind = prepared.kind
    return state


def _get_plan(core: Core, job: BatchJob) -> Plan:
    target, state = _target(core, job), _state_of(job)
    return _step("batch.get", target, target.adapter.build_batch_get(state),
                 lambda r: target.adapter.parse_batch(job.model, r))


def _cancel_plan(core: Core, job: BatchJob) -> Plan:
    target, state = _target(core, job), _state_of(job)
    return _step("batch.cancel", target, target.adapter.build_batch_cancel(state),
                 lambda r: target.adapter.parse_batch(job.model, r))


def _retrieve_plan(core: Core, batch_id: str) -> tuple[str, Plan]:
    provider, bid = split_model_id(batch_id)
    adapter = core.adapter(provider)
    if not adapter.capabilities.batch:
        raise adapter.unsupported("batch")
    stub = BatchState(id=bid, model="", status="validating", provider_status="")
    return provider, _step("batch.get", Target(adapter, ""), adapter.build_batch_get(stub),
                           lambda r: adapter.parse_batch("", r))


def _download_plan(core: Core, job: BatchJob, http: HTTPRequest) -> Plan:
    return _step("batch.results", _target(core, job), http, lambda r: r, stream=True)


def _check_poll_interval(poll_interval: float | None) -> None:
    if poll_interval is not None and not poll_interval >= 0:
        raise InvalidRequestError(f"poll_interval must be >= 0 seconds, not {poll_interval!r}")


def _not_ended(job: BatchJob) -> InvalidRequestError:
    return InvalidRequestError(f"batch {job.id} is still {job.status}: its results are read once it has ended "
                               "(call wait() first)")


def _failed(job: BatchJob) -> BatchFailedError:
    raw = job.raw if isinstance(job.raw, Mapping) else {}
    body = raw.get("errors") or raw.get("error")
    err = BatchFailedError(f"batch {job.id} failed: its input was refused ({body or 'no reason given'})",
                           provider=job.provider, model=job.model, body=body, request_id=job.id)
    err.job = job
    return err


def _timed_out(job: BatchJob, timeout: float | None) -> BatchTimeoutError:
    err = BatchTimeoutError(
        f"batch {job.id} did not end in {timeout} s (status {job.status}); it is still running: call wait() again "
        "later, or cancel()", provider=job.provider, model=job.model, request_id=job.id)
    err.job = job
    return err


class _Following:
    """The pure part of ``wait()`` on a batch: the deadline, the growing poll interval, the progress line."""

    def __init__(self, core: Core, timeout: float | None, poll_interval: float | None, progress: bool) -> None:
        _check_poll_interval(poll_interval)
        self.clock = core.router.clock
        self.timeout = timeout
        self.give_up = None if timeout is None else self.clock() + timeout
        self.grows = poll_interval is None
        # None is "not given"; 0 is a real interval (a replayed test that must not sleep).
        self.interval = DEFAULT_BATCH_POLL_INTERVAL_S if poll_interval is None else poll_interval
        self.shown = progress and sys.stderr.isatty()

    def pause(self, job: BatchJob) -> float:
        """How long to wait before the next poll.

        Raises:
            BatchTimeoutError: The timeout has passed.
        """
        if self.give_up is not None and self.clock() >= self.give_up:
            raise _timed_out(job, self.timeout)
        return self.interval if self.give_up is None else min(self.interval, max(self.give_up - self.clock(), 0))

    def polled(self, job: BatchJob) -> None:
        if self.shown:
            total = "?" if job.total is None else job.total
            sys.stderr.write(f"\r{job.target} {job.id}: {job.status}, {job.completed}/{total} completed, "
                             f"{job.failed} failed  ")
            sys.stderr.flush()
        if self.grows:
            self.interval = min(self.interval * 1.5, MAX_BATCH_POLL_INTERVAL_S)

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\n")


class _Reading:
    """One read of a batch's results (pure but for the job it updates): each line parsed and priced, the ledger
    step of each item not yet recorded by this process, and the totals once every line has been read."""

    def __init__(self, core: Core, job: BatchJob, held: Reservation | None) -> None:
        self.core, self.job = core, job
        self.adapter = core.adapter(job.provider)
        self.state = _state_of(job)
        self.index = 0
        self.totals = BatchTotals()
        self.prices = ItemPrices(core.prices)  # rates looked up once for this read, not once an item
        self.held = held  # the batch's reservation (Budgets.find), made by this process or the submitter
        count = job.total or 0
        # Each item settles its share of the batch's worst case; the last one's rounding is released at the end.
        self.share = (self.held.amount / count if self.held is not None and self.held.amount is not None and count
                      else None)
        self.seen: dict[str, str] = {}  # each custom_id read, and where (bounded by the provider's request limit)
        self.unreadable: list[tuple[str, MalformedResponseError]] = []  # lines naming no custom_id, and where

    def item(self, line: bytes | Mapping[str, Any],
             where: str) -> tuple[BatchResult | None, Callable[[], None] | None]:
        """A result line's outcome, priced, and the step that records it (``None``: recorded already).

        A line that does not parse is the item's :class:`MalformedResponseError` (its cost unknown: it may have
        been billed), and the lines after it are read on: one bad line never hides the rest of a billed batch.
        A line with no ``custom_id`` to read is recorded under its place (``where``) and not yielded: the read
        raises once every other line is read. A ``custom_id`` already read is logged and skipped: it is yielded,
        priced and recorded once.
        """
        job = self.job
        parsed = self._parse(line, where)
        if isinstance(parsed, BatchItem):
            item = parsed
        else:
            custom_id = self.adapter.batch_line_id(line)
            if custom_id is None:
                self.unreadable.append((where, parsed))
                custom_id = UNREADABLE_LINE.format(where=where)
            item = BatchItem(custom_id=custom_id, error=parsed, billed=True)
        if item.custom_id in self.seen:
            log.warning("computekit: batch %s: %s repeats custom_id %r (read at %s): skipped, so it is yielded, "
                        "priced and recorded once", job.id, where, item.custom_id, self.seen[item.custom_id])
            return None, None
        self.seen[item.custom_id] = where
        if not job.model and item.result is not None:
            self._learn_model(item.result)
        if isinstance(parsed, BatchItem):
            priced = price_item(self.prices, self.adapter, job.model, item)
        else:  # billed or not, its usage cannot be read: unknown, never 0
            unknown = Cost.unknown(f"its result line is malformed ({where})")
            priced = ItemCost(unknown, unknown)
        if item.result is not None:
            item.result.cost = priced.cost
            item.result.request_id = self.adapter.redact(item.result.request_id)  # as a live answer's is
        self.totals.add(priced)
        self.index += 1
        step = partial(self._record, item, priced.cost, self.index) if self.index > job._read else None
        if self.unreadable and item.error is self.unreadable[-1][1]:
            return None, step
        out: Completion | Embeddings | ProviderError
        if item.result is not None:
            out = item.result
        else:
            out = item.error or ProviderError("batch item failed", provider=job.provider, model=job.model)
            out._cost = priced.cost  # 0 unless the provider billed it: the same figure as its ledger row
        return (item.custom_id, out), step

    def _parse(self, line: bytes | Mapping[str, Any], where: str) -> BatchItem | MalformedResponseError:
        """The adapter's reading of ``line``, or the malformed answer it is (whatever its parser raised, typed as
        a synchronous answer's would be)."""
        adapter, model = self.adapter, self.job.model
        try:
            return adapter.parse_batch_line(self.state, line)
        except MalformedResponseError as e:
            return e
        except ComputeKitError:
            raise
        except Exception as e:
            why = refused_values(e) if isinstance(e, ValidationError) else \
                f"could not be parsed ({type(e).__name__}: {e})"[:_MAX_WHY_CHARS]
            resp = HTTPResponse(200, {}, bytes(line)) if isinstance(line, bytes) else adapter.batch_response(200, line)
            bad = adapter.malformed(resp, model, f"a batch result line {why}")
            bad.__cause__ = e  # raised from what the parser raised, as a synchronous answer's is
            return bad

    def unread(self) -> MalformedResponseError | None:
        """The error that names the lines with no ``custom_id`` to read, once every other line has been read."""
        if not self.unreadable:
            return None
        named = [f"{where}: {e.message}" for where, e in self.unreadable[:MAX_NAMED_PROBLEMS]]
        more = len(self.unreadable) - len(named)
        err = MalformedResponseError(
            f"batch {self.job.id}: {len(self.unreadable)} result line(s) could not be read, so their requests are "
            f"unknown (each is in the ledger, its cost unknown; every other item was read and recorded): "
            + "; ".join(named) + (f"; and {more} more" if more else ""),
            provider=self.job.provider, model=self.job.model, request_id=self.job.id)
        err.__cause__ = self.unreadable[0][1]
        return err

    def _learn_model(self, result: Completion | Embeddings) -> None:
        """A batch attached by id whose provider's batch object names no model (Anthropic's): the first answer
        names it, for this item and the ones after it (their rows, errors and prices)."""
        named = (result.response_model if isinstance(result, Completion) else None) or result.model
        if named:
            self.job.model = self.state.model = named
            result.model = result.model or named

    def _record(self, item: BatchItem, cost: Cost, index: int) -> None:
        job, result, error = self.job, item.result, item.error
        assert job.id is not None
        attempt = Attempt(provider=job.provider, model=(result.model if result is not None and result.model
                                                        else job.model),
                          outcome="success" if result is not None else "error", cost=cost, started_at=now(),
                          request_id=result.request_id if result is not None else error.request_id if error else None)
        if error is not None:
            attempt.error, attempt.error_type, attempt.status = str(error), type(error).__name__, error.status
        usage = result.usage if result is not None else Usage()
        tags = {**(job._tags or {}), "batch_id": job.id, "custom_id": item.custom_id}
        share = self.share if self.held is not None else None
        record(self.core, "batch", attempt, usage, tags, self.held if share is not None else None,
               once_key=item_key(job.provider, job.id, item.custom_id), part=share)
        job._read = index

    def finish(self) -> None:
        """Every line has been read: the batch's cost, its synchronous price and what it saved; the rest of its
        reservation released."""
        job, totals = self.job, self.totals
        job._totals = totals
        job.items = totals.items
        job.cost = Cost(total=totals.cost, reason=None if totals.cost is not None else
                        "an item could not be priced (its reason is on the item's cost)")
        job.synchronous, job.saved = totals.synchronous, totals.saved
        self.core.budgets.release(self.held)


def _ended_without_results(core: Core, job: BatchJob) -> bool:
    """A batch that ended with nothing to read (failed validation): its reservation is released at once."""
    if not job.done or job._state is None:
        return False
    adapter = core.adapter(job.provider)
    return not adapter.build_batch_results(job._state) and not adapter.batch_inline_results(job._state)


def _restart(core: Core, error: APIConnectionError, restarts: int) -> float | None:
    """How long to wait before downloading a result file again after its body broke (``None``: give up)."""
    if restarts > core.retry.config.max_retries:
        return None
    return core.retry.first_wait(error, idempotent=True, remaining=None, at_most_once=False)


class Batches:
    """The lifecycle of batches on a sync :class:`~computekit.Client`: reached as ``client.batches``, never built
    directly.

    Each method takes a :class:`~computekit.BatchJob` and returns its latest state as a new object
    (``job.wait()`` and friends update the job in place).

    Example::

        job = client.batches.retrieve("openai:batch_abc123")  # submitted elsewhere
        job = client.batches.wait(job, timeout=86_400)
        for custom_id, answer in client.batches.results(job):
            print(custom_id, answer.cost.total)
    """

    is_async = False

    def __init__(self, core: Core, driver: SyncDriver, client: Any) -> None:
        self.core = core
        self.driver = driver
        self._client = client

    def _ended(self, job: BatchJob) -> None:
        if _ended_without_results(self.core, job):
            _release_held(self.core, job)

    def _update(self, job: BatchJob, plan: Plan) -> BatchJob:
        """Send a get or cancel plan: the batch's new state, carrying what ``job`` knew."""
        fresh = _carry(_job(job.provider, self.driver.run(plan), job.model), job)
        self._ended(fresh)
        return fresh

    def retrieve(self, batch_id: str, **unknown: Never) -> BatchJob:
        """A batch submitted elsewhere (another process, yesterday), followed by this client. Its results, read
        here, are recorded once in all, and settle the submitter's reservation (held in the shared ledger).

        Raises:
            InvalidRequestError: ``batch_id`` is not ``provider:id``.
            UnsupportedCapabilityError: The provider has no batch API.
            ProviderError: The provider failed (``NotFoundError`` for an unknown batch).
        """
        if unknown:
            refuse(unknown, self.retrieve)
        provider, plan = _retrieve_plan(self.core, batch_id)
        job = _job(provider, self.driver.run(plan), "")
        job._client = self._client
        return job

    def refresh(self, job: BatchJob, **unknown: Never) -> BatchJob:
        """The batch's latest state.

        Raises:
            InvalidRequestError: An argument it does not take (the message names the fix).
            ProviderError: The provider failed after retries.
        """
        if unknown:
            refuse(unknown, self.refresh)
        return self._update(job, _get_plan(self.core, job))

    def cancel(self, job: BatchJob, **unknown: Never) -> BatchJob:
        """Cancel the batch; its state after that. What ran before is billed, and read with :meth:`results`.

        Raises:
            InvalidRequestError: An argument it does not take (the message names the fix).
            ProviderError: The provider refused or failed.
        """
        if unknown:
            refuse(unknown, self.cancel)
        return self._update(job, _cancel_plan(self.core, job))

    def wait(self, job: BatchJob, timeout: float | None = None, poll_interval: float | None = None,
             progress: bool = False, **unknown: Never) -> BatchJob:
        """Poll until the batch ends (see :meth:`BatchJob.wait <computekit.BatchJob.wait>`); the ended state.

        Raises:
            InvalidRequestError: An argument it does not take (the message names the fix).
            BatchFailedError: The batch failed as a whole (its input was refused).
            BatchTimeoutError: ``timeout`` passed first (the batch keeps running).
            ProviderError: The provider failed after retries.
        """
        if unknown:
            refuse(unknown, self.wait)
        following = _Following(self.core, timeout, poll_interval, progress)
        try:
            while not job.done:
                self.core.retry.sleep(following.pause(job))
                job = self.refresh(job)
                following.polled(job)
        finally:
            following.close()
        if job.status == "failed":
            raise _failed(job)
        return job

    def results(self, job: BatchJob, **unknown: Never) -> Iterator[BatchResult]:
        """The outcome of every request, ``(custom_id, Completion | Embeddings | ProviderError)``, streamed from
        the provider's result files line by line (never held whole). Each is priced at the batch price (its cost
        lines say "batch") and written to the ledger once, before it is yielded; reading again, or from another
        process, writes nothing twice. Once every line has been read, ``job.cost``, ``job.synchronous`` and
        ``job.saved`` are set and the rest of the batch's reservation is released. A download that breaks is
        started again, skipping the lines already read.

        Raises:
            InvalidRequestError: The batch has not ended (raised when iteration starts).
            MalformedResponseError: A result line is not what the API documents.
            ProviderError: The provider failed after retries.
        """
        if unknown:
            refuse(unknown, self.results)
        if not job.done:
            _adopt(job, self.refresh(job))  # the caller's job is the one read (its cost set at the end)
            if not job.done:
                raise _not_ended(job)
        return self._read(job)

    def _read(self, job: BatchJob) -> Iterator[BatchResult]:
        reading = _Reading(self.core, job, self.core.budgets.find(_held_key(job)))
        for n, http in enumerate(reading.adapter.build_batch_results(reading.state), 1):
            yield from self._file(reading, http, n)
        for n, line in enumerate(reading.adapter.batch_inline_results(reading.state), 1):
            if (out := self._one(reading, line, f"inline result {n}")) is not None:
                yield out
        reading.finish()
        if (unread := reading.unread()) is not None:
            raise unread

    def _one(self, reading: _Reading, line: bytes | Mapping[str, Any], where: str) -> BatchResult | None:
        out, step = reading.item(line, where)
        if step is not None:
            step()
        return out

    def _file(self, reading: _Reading, http: HTTPRequest, file: int) -> Iterator[BatchResult]:
        """One result file's items; a body that breaks is downloaded again from the start, its lines already
        read skipped (they are numbered the same each time)."""
        done, restarts = 0, 0
        while True:
            opened: Opened = self.driver.run(_download_plan(self.core, reading.job, http))
            try:
                with self.driver.guard(opened.facts):
                    for number, line in _lines(reading, opened.body):
                        if number <= done:
                            continue
                        out = self._one(reading, line, f"result file {file}, line {number}")
                        done = number
                        if out is not None:
                            yield out
                self.driver.settle(opened.facts, None, None)
                return
            except APIConnectionError as e:
                restarts += 1
                wait = _restart(self.core, e, restarts)
                if wait is None:
                    raise
                self.core.retry.sleep(wait)
            finally:
                opened.cm.__exit__(None, None, None)


class AsyncBatches:
    """The lifecycle of batches on :class:`~computekit.AsyncClient`: reached as ``client.batches``; the methods of
    :class:`~computekit.Batches`, awaited (``results`` is an async iterator).

    Example::

        job = await client.batches.retrieve("openai:batch_abc123")
        job = await client.batches.wait(job)
        async for custom_id, answer in client.batches.results(job):
            ...
    """

    is_async = True

    def __init__(self, core: Core, driver: AsyncDriver, client: Any) -> None:
        self.core = core
        self.driver = driver
        self._client = client

    async def _ended(self, job: BatchJob) -> None:
        if _ended_without_results(self.core, job):
            await ledger_call(self.core, partial(_release_held, self.core, job), keyed=True)

    async def _update(self, job: BatchJob, plan: Plan) -> BatchJob:
        """:meth:`Batches._update`, awaited."""
        fresh = _carry(_job(job.provider, await self.driver.run(plan), job.model), job)
        await self._ended(fresh)
        return fresh

    async def retrieve(self, batch_id: str, **unknown: Never) -> BatchJob:
        """:meth:`Batches.retrieve`, awaited.

        Raises:
            InvalidRequestError: ``batch_id`` is not ``provider:id``.
            UnsupportedCapabilityError: The provider has no batch API.
            ProviderError: The provider failed (``NotFoundError`` for an unknown batch).
        """
        if unknown:
            refuse(unknown, self.retrieve)
        provider, plan = _retrieve_plan(self.core, batch_id)
        job = _job(provider, await self.driver.run(plan), "")
        job._client = self._client
        return job

    async def refresh(self, job: BatchJob, **unknown: Never) -> BatchJob:
        """:meth:`Batches.refresh`, awaited.

        Raises:
            InvalidRequestError: An argument it does not take (the message names the fix).
            ProviderError: The provider failed after retries.
        """
        if unknown:
            refuse(unknown, self.refresh)
        return await self._update(job, _get_plan(self.core, job))

    async def cancel(self, job: BatchJob, **unknown: Never) -> BatchJob:
        """:meth:`Batches.cancel`, awaited.

        Raises:
            InvalidRequestError: An argument it does not take (the message names the fix).
            ProviderError: The provider refused or failed.
        """
        if unknown:
            refuse(unknown, self.cancel)
        return await self._update(job, _cancel_plan(self.core, job))

    async def wait(self, job: BatchJob, timeout: float | None = None, poll_interval: float | None = None,
                   progress: bool = False, **unknown: Never) -> BatchJob:
        """:meth:`Batches.wait`, awaited.

        Raises:
            InvalidRequestError: An argument it does not take (the message names the fix).
            BatchFailedError: The batch failed as a whole (its input was refused).
            BatchTimeoutError: ``timeout`` passed first (the batch keeps running).
            ProviderError: The provider failed after retries.
        """
        if unknown:
            refuse(unknown, self.wait)
        following = _Following(self.core, timeout, poll_interval, progress)
        try:
            while not job.done:
                await self.core.retry.async_sleep(following.pause(job))
                job = await self.refresh(job)
                following.polled(job)
        finally:
            following.close()
        if job.status == "failed":
            raise _failed(job)
        return job

    async def results(self, job: BatchJob, **unknown: Never) -> AsyncIterator[BatchResult]:
        """:meth:`Batches.results`, as an async iterator (``async for cid, r in client.batches.results(job)``).

        Raises:
            InvalidRequestError: The batch has not ended (raised when iteration starts).
            MalformedResponseError: A result line is not what the API documents.
            ProviderError: The provider failed after retries.
        """
        if unknown:
            refuse(unknown, self.results)
        if not job.done:
            _adopt(job, await self.refresh(job))  # the caller's job is the one read (its cost set at the end)
            if not job.done:
                raise _not_ended(job)
        held = await ledger_call(self.core, partial(self.core.budgets.find, _held_key(job)), keyed=True)
        reading = _Reading(self.core, job, held)
        for n, http in enumerate(reading.adapter.build_batch_results(reading.state), 1):
            async for out in self._file(reading, http, n):
                yield out
        for n, line in enumerate(reading.adapter.batch_inline_results(reading.state), 1):
            if (item := await self._one(reading, line, f"inline result {n}")) is not None:
                yield item
        await ledger_call(self.core, reading.finish, offload=reading.held is not None, keyed=True)
        if (unread := reading.unread()) is not None:
            raise unread

    async def _one(self, reading: _Reading, line: bytes | Mapping[str, Any], where: str) -> BatchResult | None:
        out, step = reading.item(line, where)
        if step is not None:
            await ledger_call(self.core, step, keyed=reading.held is not None)
        return out

    async def _file(self, reading: _Reading, http: HTTPRequest, file: int) -> AsyncIterator[BatchResult]:
        """:meth:`Batches._file`, awaited."""
        done, restarts = 0, 0
        while True:
            opened: Opened = await self.driver.run(_download_plan(self.core, reading.job, http))
            try:
                async with self.driver.guard(opened.facts):
                    async for number, line in _alines(reading, opened.body):
                        if number <= done:
                            continue
                        out = await self._one(reading, line, f"result file {file}, line {number}")
                        done = number
                        if out is not None:
                            yield out
                await self.driver.settle(opened.facts, None, None)
                return
            except APIConnectionError as e:
                restarts += 1
                wait = _restart(self.core, e, restarts)
                if wait is None:
                    raise
                await self.core.retry.async_sleep(wait)
            finally:
                await opened.cm.__aexit__(None, None, None)


def _too_long(reading: _Reading, e: ValueError) -> ProviderError:
    return reading.adapter.malformed(HTTPResponse(200, {}, b""), reading.job.model, str(e))


def _lines(reading: _Reading, body: Iterator[bytes]) -> Iterator[tuple[int, bytes]]:
    """:func:`~computekit._batch.result_lines`, a line over the bound typed as a malformed answer."""
    try:
        yield from result_lines(body)
    except ValueError as e:
        raise _too_long(reading, e) from e


async def _alines(reading: _Reading, body: AsyncIterator[bytes]) -> AsyncIterator[tuple[int, bytes]]:
    """:func:`_lines` over an async body."""
    lines = LineReader()
    try:
        async for chunk in body:
            for out in lines.feed(chunk):
                yield out
        for out in lines.close():
            yield out
    except ValueError as e:
        raise _too_long(reading, e) from e


class Batching:
    """``batch()`` on the sync :class:`~computekit.Client` (the lifecycle is ``client.batches``)."""

    _core: Core
    batches: Batches

    def batch(self, model: str, requests: Any, *, tags: Mapping[str, str] | None = None,
              estimate_only: bool = False, **unknown: Never) -> BatchJob:
        """Submit many ``complete()`` or ``embed()`` calls to the provider's batch API, billed at its batch price
        (OpenAI, Azure OpenAI, Anthropic, Gemini and Mistral), after checking every one and estimating the whole.

        Args:
            model: ``"provider:model"`` — the model every request runs on.
            requests: A list of request dicts, or a path to a JSONL file of them: each has a ``custom_id`` and
                what ``complete()`` takes (``messages`` or ``prompt``, ``max_tokens``, ``temperature`` ...) or
                what ``embed()`` takes (``input``); the provider's own line shape (``{"custom_id", "body"}``) is
                read too. One batch runs one kind of call.
            tags: Labels stored with every item's ledger row (with ``batch_id`` and ``custom_id``).
            estimate_only: Check the requests and return the estimate only: nothing is uploaded or submitted.

        Returns:
            The submitted batch (``estimate`` set): follow it with ``job.wait()``, read it with
            ``job.results()``.

        Raises:
            InvalidRequestError: A request is wrong (every bad line is named by its number), the batch exceeds
                the provider's limits, or an argument is wrong; nothing was uploaded.
            UnsupportedCapabilityError: The provider has no batch API (nothing was sent).
            BudgetExceededError: The batch's worst case does not fit a budget (nothing was sent).
            LedgerError: The ledger's store failed making a budget's reservation (nothing was sent).
            ProviderError: The provider refused or failed after retries.
        """
        if unknown:
            refuse(unknown, self.batch)
        core, batches = self._core, self.batches
        target, prepared, estimate, tags = _prepare(core, model, requests, tags)
        if estimate_only:
            return _estimate_only(target, prepared, estimate)
        # Budgets: the whole batch's worst case is reserved before the upload, held until its results are read.
        held = core.budgets.reserve(target, Estimated(estimate.total), tags, ttl_s=BATCH_RESERVATION_TTL_S)
        try:
            state = batches.driver.run_steps(_submit_steps(target, prepared, tags))
        except BaseException:
            core.budgets.release(held)  # nothing submitted: nothing to hold
            raise
        job = _submitted(target, state, prepared, estimate, tags, self)
        core.budgets.hold(held, _held_key(job))  # in the ledger: the process that reads the results settles it
        batches._ended(job)
        return job


def _submitted(target: Target, state: BatchState, prepared: PreparedBatch, estimate: Cost,
               tags: Mapping[str, str] | None, client: Any) -> BatchJob:
    job = _job(target.provider, state, target.model)
    if not job.total:
        job.total = prepared.count  # the provider counts 0 (or nothing) while validating: what was submitted
    job.estimate = estimate
    job._client, job._tags = client, tags
    return job


class AsyncBatching:
    """``batch()`` on :class:`~computekit.AsyncClient` (the same names, awaited; ``client.batches``)."""

    _core: Core
    batches: AsyncBatches

    async def batch(self, model: str, requests: Any, *, tags: Mapping[str, str] | None = None,
                    estimate_only: bool = False, **unknown: Never) -> BatchJob:
        """Submit a batch, awaited (see :meth:`Client.batch <computekit.Client.batch>`).

        Args:
            model: ``"provider:model"`` — the model every request runs on.
            requests: A list of request dicts, or a path to a JSONL file of them (see ``Client.batch``).
            tags: Labels stored with every item's ledger row (with ``batch_id`` and ``custom_id``).
            estimate_only: Check the requests and return the estimate only: nothing is uploaded or submitted.

        Returns:
            The submitted batch (``estimate`` set).

        Raises:
            InvalidRequestError: A request is wrong (every bad line is named by its number), the batch exceeds
                the provider's limits, or an argument is wrong; nothing was uploaded.
            UnsupportedCapabilityError: The provider has no batch API (nothing was sent).
            BudgetExceededError: The batch's worst case does not fit a budget (nothing was sent).
            LedgerError: The ledger's store failed making a budget's reservation (nothing was sent).
            ProviderError: The provider refused or failed after retries.
        """
        if unknown:
            refuse(unknown, self.batch)
        core, batches = self._core, self.batches
        target, prepared, estimate, tags = _prepare(core, model, requests, tags)
        if estimate_only:
            return _estimate_only(target, prepared, estimate)
        held = await ledger_call(core, partial(core.budgets.reserve, target, Estimated(estimate.total), tags,
                                               ttl_s=BATCH_RESERVATION_TTL_S))
        try:
            state = await batches.driver.run_steps(_submit_steps(target, prepared, tags))
        except BaseException:
            await ledger_call(core, partial(core.budgets.release, held), offload=held is not None)
            raise
        job = _submitted(target, state, prepared, estimate, tags, self)
        await ledger_call(core, partial(core.budgets.hold, held, _held_key(job)), offload=held is not None)
        await batches._ended(job)
        return job
