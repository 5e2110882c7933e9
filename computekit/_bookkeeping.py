"""Ledger bookkeeping: every attempt's outcome, priced, written once, its budget reservation settled.

Called by the drivers (:mod:`computekit._driver`) with one :class:`~computekit._attempt.AttemptFacts` per try,
and by the prediction and fine-tuning lifecycles when a run or a job ends. :func:`price_success` is pure (it
prices a result and builds its attempt); every other function here writes: to the ledger (a row, a settled or
released reservation), to the router (latency, cool-downs) and to the result (its cost and attempts).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING

from . import _costs
from ._background import BackgroundResponse
from ._budget import Reservation
from ._core import now
from ._exceptions import StructuredOutputError
from ._otel import attempt_span, note_response
from ._structured import parse_output
from ._targets import Target
from ._types import Attempt, Completion, Cost, Embeddings, FineTuneJob, Prediction, Reranking, Usage
from .adapters._base import FineTuneBilling, ModelInfo, StreamUpdate
from .ledger import LedgerRow
from .ledger._row import logged

if TYPE_CHECKING:
    from ._attempt import AttemptFacts
    from ._core import Core
    from ._exceptions import ProviderError

__all__ = [
    "ROW_TAPS",
    "background_ended",
    "background_key",
    "canceled",
    "failed",
    "finetune_ended",
    "finetune_key",
    "finetune_launched",
    "prediction_ended",
    "price_success",
    "record",
    "succeeded",
]

log = logging.getLogger("computekit.ledger")

ROW_TAPS: list[Callable[[LedgerRow], None]] = []
"""Called with every ledger row as it is recorded, whichever client and ledger (``"none"`` included) wrote it:
how ``computekit.testing`` sums the spend of a test. Empty unless a test installs one."""

_PRICED_RESULTS = (Completion, Embeddings, Reranking, Prediction)


def price_success(core: Core, facts: AttemptFacts, result: object) -> Attempt | None:
    """Price a successful ``result`` and build its attempt (pure but for the result, which gets its cost).
    ``None``: not a billed result (a lookup, a stream poll, a fine-tuning step)."""
    target = facts.target
    if not isinstance(result, _PRICED_RESULTS):
        return None
    latency = facts.latency()
    if isinstance(result, Prediction) and result._wall_time and result.usage.gpu_seconds is None:
        # The host reports no run time: the measured time of the call stands in for it (an estimate).
        result.usage.gpu_seconds = Decimal(str(round(latency, 6)))
    result.request_id = target.adapter.redact(result.request_id)  # a header a server could abuse
    if isinstance(result, Prediction):
        # A run's id, and the error, logs and body a host reports for it, become the text of errors
        # (PredictionFailedError), spans and ledger rows: a key the host echoes there is masked, as in an error body.
        redact = target.adapter.redact
        result.id, result.error, result.logs, result.raw = (redact(result.id), redact(result.error),
                                                            redact(result.logs), redact(result.raw))
    result.cost = _costs.price(core.prices, target, result, facts.started)
    attempt = Attempt(provider=target.provider, model=target.model, outcome="success", latency_s=latency,
                      cost=result.cost, request_id=result.request_id, started_at=facts.started)
    note_response(attempt, result)  # for its OpenTelemetry span
    return attempt


def succeeded(core: Core, facts: AttemptFacts, result: object, attempt: Attempt | None) -> None:
    """Record a successful try (``attempt`` from :func:`price_success`), settling its budget reservation; give
    the result the whole attempt list; tell the router how long it took (to the first chunk, for a stream)."""
    target = facts.target
    latency = attempt.latency_s if attempt is not None else facts.latency()
    core.router.succeeded(target, latency if facts.first_byte_s is None else facts.first_byte_s)
    if isinstance(result, ModelInfo | StreamUpdate):  # a lookup or a stream poll: nothing billed, not an attempt
        return
    if isinstance(result, BackgroundResponse):
        _background_submitted(core, facts, result, latency)
        return
    if attempt is None:
        # A fine-tuning step (an upload, the job, its events): not billed by itself; the job's cost is priced
        # and recorded once, when it ends (finetune_ended).
        facts.attempts.append(Attempt(provider=target.provider, model=target.model, outcome="success",
                                      latency_s=latency, started_at=facts.started))
        if isinstance(result, FineTuneJob) and facts.record:
            result.attempts = facts.attempts
        return
    assert isinstance(result, _PRICED_RESULTS)
    facts.attempts.append(attempt)
    if facts.record:  # a poll or cancel (not recorded) keeps the attempts of the call that started the run
        result.attempts = facts.attempts
    held = facts.reservation
    # A prediction is recorded when it ends (once, with its GPU time and cost): see prediction_ended.
    if facts.record and not isinstance(result, Prediction):
        record(core, facts.verb, attempt, result.usage, facts.tags, held)
    elif held is not None:
        if isinstance(result, Prediction) and result.id and not result._recorded:
            core.budgets.keep(result.id, held)  # held until the run ends and is priced
        else:
            core.budgets.release(held)


def failed(core: Core, facts: AttemptFacts, error: ProviderError) -> None:
    """Record a failed try (settling its reservation: an error of unknown cost keeps its worst case). An answer
    that failed validation, or that the provider ran and reported failed, was billed: it is priced from its usage
    (unknown when it reported none)."""
    target = facts.target
    # An answer that failed validation, or that the provider ran and reported as failed, was billed.
    billed = error.completion if isinstance(error, StructuredOutputError) else error._billed
    if billed is not None:
        billed.cost = _costs.price(core.prices, target, billed, facts.started)
        billed.attempts = facts.attempts
    attempt = Attempt(
        provider=target.provider,
        model=target.model,
        outcome="error",
        error=str(error),
        error_type=type(error).__name__,
        status=error.status,
        latency_s=facts.latency(),
        cost=billed.cost if billed is not None else target.adapter.error_cost(error),
        request_id=error.request_id,
        started_at=facts.started,
    )
    # A stream that failed after the provider reported usage (in an earlier event, or in the error event itself)
    # is billed that usage: the row carries it, priced, instead of the error response's own cost.
    reported = _reported_so_far(core, facts) if billed is None else None
    if billed is not None:  # the whole answer arrived: its usage (and per-call fees) priced as a success's
        usage = billed.usage
    elif reported is not None:
        usage, attempt.cost = reported
    else:
        usage = Usage()
    facts.attempts.append(attempt)
    if facts.record:
        record(core, facts.verb, attempt, usage, facts.tags, facts.reservation)
    else:
        core.budgets.release(facts.reservation)


def _reported_so_far(core: Core, facts: AttemptFacts) -> tuple[Usage, Cost] | None:
    """The usage a stream that did not end well had reported, and its price (as a result's, the provider's own
    bill included); ``None`` when it reported none."""
    so_far = facts.reported_so_far() if facts.reported_so_far is not None else None
    if so_far is None:
        return None
    try:
        return so_far.usage, _costs.price(core.prices, facts.target, so_far, facts.started)
    except Exception:  # bookkeeping of a failure never raises over the failure itself
        return so_far.usage, Cost.unknown("the usage reported so far could not be priced")


def canceled(core: Core, facts: AttemptFacts, why: str) -> None:
    """Record a try the caller stopped after it was sent (a stream closed early, Ctrl-C or a task canceled while
    waiting): the provider had the request, so it is billed, but its cost is unknown unless the provider already
    reported usage. A try that is not recorded (a poll) only drops its reservation."""
    if not facts.record:
        core.budgets.release(facts.reservation)
        return
    target = facts.target
    reported = _reported_so_far(core, facts)
    usage, cost = reported if reported is not None else (None, Cost.unknown(f"{why} before the provider reported "
                                                                            "usage"))
    attempt = Attempt(provider=target.provider, model=target.model, outcome="canceled", error=f"{why} before its end",
                      latency_s=facts.latency(), cost=cost, started_at=facts.started)
    facts.attempts.append(attempt)
    record(core, facts.verb, attempt, usage or Usage(), facts.tags, facts.reservation)


def prediction_key(provider: str, prediction_id: str) -> str:
    """A run's ``once_key`` in the ledger (hosts whose run ids are their own: ``Adapter.unique_run_ids``)."""
    return f"predict:{provider}:{prediction_id}"


def prediction_ended(core: Core, target: Target, prediction: Prediction, tags: Mapping[str, str] | None) -> None:
    """Price a finished prediction from its reported GPU time and record it in the ledger, once: keyed by
    provider and run id where the host's ids are unique, so that another handle of the run (a second
    ``refresh()`` of the same running prediction), another client or another process (a webhook handler that
    looks the run up) does not write it again."""
    if prediction._recorded:
        return
    prediction.cost = _costs.price(core.prices, target, prediction, now())
    prediction._recorded = True
    # The attempt that started the run now gets its outcome and cost (polls are not billed attempts).
    attempt = prediction.attempts[-1] if prediction.attempts else Attempt(
        provider=target.provider, model=target.model, outcome="success", started_at=now()
    )
    if prediction.status != "succeeded":
        attempt.outcome = "error"
        attempt.error = f"prediction {prediction.status}: {prediction.error or ''}".strip()
        attempt.error_type = "PredictionFailedError" if prediction.status == "failed" else "PredictionCanceled"
    note_response(attempt, prediction)
    attempt.cost = prediction.cost
    attempt.request_id = attempt.request_id or prediction.id
    held = core.budgets.held.pop(prediction.id, None) if prediction.id else None
    key = prediction_key(target.provider, prediction.id) if prediction.id and target.adapter.unique_run_ids else None
    record(core, "predict", attempt, prediction.usage, tags, held, once_key=key)


def _background_submitted(core: Core, facts: AttemptFacts, handle: BackgroundResponse, latency: float) -> None:
    """A background response was accepted (a poll or cancel, not recorded, only passes): the submitting attempt
    is its own, and its reservation is held until the response ends and is priced (:func:`background_ended`)."""
    if not facts.record:
        core.budgets.release(facts.reservation)
        return
    facts.attempts.append(Attempt(provider=facts.target.provider, model=facts.target.model, outcome="success",
                                  latency_s=latency, request_id=handle.id, started_at=facts.started))
    handle.attempts = facts.attempts
    core.budgets.hold(facts.reservation, background_key(handle.provider, handle.id))


def background_key(provider: str, response_id: str) -> str:
    """A background response's ``once_key`` in the ledger (and the key its reservation is held under there)."""
    return f"background:{provider}:{response_id}"


def background_ended(core: Core, target: Target, handle: BackgroundResponse, tags: Mapping[str, str] | None) -> None:
    """Price a background response that has ended from the usage it reported, and write it to the ledger once
    (keyed by provider and id: another process, or a second ``wait()``, does not write it again). A cancelled
    or failed response is billed what it generated: its row carries that usage, priced, or an unknown cost when
    it reported none (never 0)."""
    final = handle.completion
    if handle._recorded or final is None:
        return
    when = now()
    final.cost = _costs.price(core.prices, target, final, when)
    handle._recorded = True
    attempt = handle.attempts[-1] if handle.attempts else Attempt(
        provider=target.provider, model=target.model, outcome="success", request_id=handle.id, started_at=when)
    if handle.status == "failed":
        attempt.outcome, attempt.error_type = "error", "BackgroundFailedError"
        attempt.error = f"background response failed: {handle.error or ''}".strip()
    elif handle.status == "cancelled":
        attempt.outcome, attempt.error = "canceled", "background response cancelled before its end"
    elif handle._output is not None:
        # An answer that does not fit response_format is billed but failed, as in a foreground complete().
        try:
            parse_output(handle._output, final)
        except StructuredOutputError as e:
            attempt.outcome, attempt.error_type, attempt.error = "error", type(e).__name__, str(e)
    note_response(attempt, final)
    attempt.cost = final.cost
    final.attempts = handle.attempts or [attempt]
    key = background_key(target.provider, handle.id)
    # The submitter's reservation, held in the ledger under the key, is settled by the row, whichever process
    # writes it (one transaction: a second process finds the row written and the reservation gone).
    held = core.budgets.find(key)
    record(core, "complete", attempt, final.usage, tags, held, once_key=key)


def finetune_key(provider: str, job_id: str) -> str:
    """A job's ``once_key`` in the ledger (and the key its reservation is held under there)."""
    return f"finetune:{provider}:{job_id}"


def finetune_ended(core: Core, target: Target, job: FineTuneJob, tags: Mapping[str, str] | None) -> None:
    """Price a job that has ended from what the provider reported, and write it to the ledger once (keyed by
    provider and job id, so another process or a second ``wait()`` does not write it again)."""
    if job._recorded or not job.done or job.id is None:
        return
    from ._finetune import actual_cost, not_billable

    hardware, assumed = core.hardware(target, None)
    job.cost = actual_cost(core.prices, target.adapter, job, hardware)
    if assumed and job.cost.total is not None:
        job.cost.estimated = True
    bill = target.adapter.finetune_billing(job)
    if not_billable(bill) is not None:  # no count to store (its cost is unknown, and says why): the row keeps none
        bill = FineTuneBilling()
    job._recorded = True
    # Dated when the job ended, which is when it is billed: a job that runs past midnight (UTC) counts in the
    # day, budget period and report it finished in, not the one it was created in.
    attempt = Attempt(provider=target.provider, model=job.base_model, outcome="success",
                      cost=job.cost, request_id=job.id, started_at=job.finished_at or now())
    if job.finished_at is not None and job.created_at is not None:
        attempt.latency_s = (job.finished_at - job.created_at).total_seconds()
    if job.status != "succeeded":
        attempt.outcome = "error"
        attempt.error = f"fine-tuning job {job.status}: {job.error or ''}".strip()
        attempt.error_type = "FineTuneFailedError" if job.status == "failed" else "FineTuneCanceled"
    usage = Usage(input_tokens=bill.trained_tokens or 0, gpu_seconds=bill.gpu_seconds, hardware=hardware)
    key = finetune_key(target.provider, job.id)
    # The reservation taken at launch, held in the ledger under the key, is settled by the job's one row,
    # whichever client or process writes it.
    held = core.budgets.find(key)
    record(core, "finetune", attempt, usage, tags, held, once_key=key)


def record(core: Core, verb: str, attempt: Attempt, usage: Usage, tags: Mapping[str, str] | None,
           reservation: Reservation | None = None, once_key: str | None = None, part: Decimal | None = None) -> None:
    """Write an attempt's row; under a budget, settle its reservation with it (one transaction). ``part``: the
    row settles only this share of the reservation (a batch's item), which goes on covering the rest."""
    cost = attempt.cost
    row = LedgerRow(
        ts=attempt.started_at,
        verb=verb,
        provider=attempt.provider,
        model=attempt.model,
        outcome=attempt.outcome,
        latency_ms=attempt.latency_s * 1000,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cached_input_tokens=usage.cached_input_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        reasoning_tokens=usage.reasoning_tokens,
        gpu_seconds=usage.gpu_seconds,
        cost=cost.total if cost is not None else None,
        estimated=cost.estimated if cost is not None else False,
        price_source=str(cost.price_source) if cost is not None and cost.price_source else None,
        request_id=attempt.request_id,
        error_type=attempt.error_type,
        status=attempt.status,
        tags=dict(tags) if tags else {},
        reserved=part if part is not None else reservation.amount if reservation is not None else None,
        once_key=once_key,
    )
    try:
        if reservation is not None and part is not None:
            core.ledger.settle_part(reservation.id, row, part)
        elif reservation is not None:
            core.ledger.settle(reservation.id, row)
        else:
            core.ledger.record(row)
    except Exception:
        # The attempt was billed and its call has its answer (or its own error): a store that fails now (locked
        # past its busy timeout, unreachable) must not take that from the caller. The row is logged in full, as
        # the ledger's writer logs a row no store takes; a reservation it was to settle counts its worst case
        # until its time to live lapses (budgets err on the safe side).
        log.error("computekit: the ledger could not record an attempt (it was billed); row not written: %s",
                  logged(row), exc_info=True)
    for tap in ROW_TAPS:  # empty outside tests: computekit.testing's spend fixture listens here
        tap(row)
    attempt_span(verb, attempt, usage, tags)  # OpenTelemetry, when the application configured it



def finetune_launched(core: Core, job: FineTuneJob, reservation: Reservation | None) -> None:
    """Hold a launched job's reservation under its key until its cost is recorded (:func:`finetune_ended`, in
    any process); a launch that returned no job id has nothing to settle later, so its reservation is dropped."""
    if reservation is None:
        return
    if job.id is None:
        core.budgets.release(reservation)
        return
    core.budgets.hold(reservation, finetune_key(job.provider, job.id))
