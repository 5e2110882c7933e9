"""``finetune()`` on :class:`~computekit.Client` and :class:`~computekit.AsyncClient`, and the job lifecycle as
``client.finetunes`` (:class:`FineTunes` / :class:`AsyncFineTunes`: ``wait``, ``refresh``, ``cancel``, ``events``,
``checkpoints``, ``attach``): only the I/O, written twice under the same names; a :class:`~computekit.FineTuneJob`
is plain data whose own methods are thin conveniences over these. Checking, estimating, pricing and the ledger
are :mod:`computekit._finetune`'s, the core's and the bookkeeping's.

Every request (upload, launch, poll, cancel, events) goes through the client's attempt driver, so it is retried
like any other call (a 5xx on a status GET is retried; GETs are idempotent). None of them is a billed attempt: the
job's cost is priced and written to the ledger once, when the job ends. Under a budget, the job's estimate is
reserved before the first upload and held until then (released when the launch fails).

What both clients share is pure and module-level here: the checked launch (:func:`_launch`), the requests that
launch it as a generator of plans (:func:`_launch_steps`, run by the driver's ``run_steps``), each
lifecycle request as a plan (``_get_plan`` ...), and the bookkeeping of ``wait()`` (:class:`_Following`).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, Never

from . import _finetune
from ._arguments import refuse
from ._bookkeeping import finetune_ended, finetune_launched
from ._constants import (
    DEFAULT_FINETUNE_EVENTS,
    DEFAULT_FINETUNE_POLL_INTERVAL_S,
    MAX_FINETUNE_POLL_INTERVAL_S,
    NOT_GIVEN,
    NotGiven,
)
from ._core import ledger_call
from ._exceptions import InvalidRequestError
from ._http import HTTPRequest, HTTPResponse
from ._plan import Plan
from ._tags import check_tags
from ._targets import Target, split_model_id
from ._types import FineTuneCheckpoint, FineTuneEvent, FineTuneJob

if TYPE_CHECKING:
    from ._core import Core
    from ._driver import AsyncDriver, SyncDriver


__all__ = ["AsyncFineTunes", "AsyncFineTuning", "FineTunes", "FineTuning"]


def _step(verb: str, target: Target, http: HTTPRequest | None, parse: Callable[[HTTPResponse], Any]) -> Plan:
    """One fine-tuning request as a plan for the driver: one target, no fallback, nothing billed by itself."""

    def build(t: Target) -> HTTPRequest:
        assert http is not None
        return http

    return Plan(verb, [target], build, lambda t, req, resp: parse(resp), None, record=False)


def _target(core: Core, job: FineTuneJob) -> Target:
    return Target(core.adapter(job.provider), job.base_model)


def _ended_step(core: Core, job: FineTuneJob) -> Callable[[], None]:
    """Pricing and recording a job that has ended, as one ledger step (run inline, or by ``ledger_call``)."""
    return partial(finetune_ended, core, _target(core, job), job, job._tags)


def _to_record(job: FineTuneJob) -> bool:
    """Whether :func:`~computekit._bookkeeping.finetune_ended` would write the job's row (else it returns at once)."""
    return job.done and job.id is not None and not job._recorded


def _attach_stub(core: Core, job_id: str) -> tuple[Target, FineTuneJob]:
    provider, jid = split_model_id(job_id)
    adapter = core.adapter(provider)
    if not adapter.capabilities.finetune:
        raise adapter.unsupported("finetune")
    stub = FineTuneJob(id=jid, provider=provider, base_model="", status="queued")
    return Target(adapter, ""), stub


def _check_poll_interval(poll_interval: float | None) -> None:
    if poll_interval is not None and not poll_interval >= 0:
        raise InvalidRequestError(f"poll_interval must be >= 0 seconds, not {poll_interval!r}")


def _launch(core: Core, model: str, training_file: Any, tags: Mapping[str, str] | None,
            extra_body: Mapping[str, Any] | NotGiven, poll_interval: float | None,
            **options: Any) -> tuple[_finetune.Launch, Mapping[str, str] | None]:
    """``finetune()``'s arguments checked and estimated, with its checked tags (pure: nothing is sent).
    ``options``: ``validation_file``, ``epochs`` ... as given to ``finetune()``."""
    tags = check_tags(tags)  # refused before any upload, like every verb's tags
    _check_poll_interval(poll_interval)  # for wait=True: refused before the job is launched, not after
    extra = extra_body if extra_body is not NOT_GIVEN else None
    return _finetune.prepare(core, model, training_file, extra=extra, **options), tags


def _launch_steps(launch: _finetune.Launch) -> Generator[Plan, Any, FineTuneJob]:
    """The requests that launch a job, in order (uploads, the provider's estimate, the launch): each is yielded as a
    plan for the driver and its answer sent back in; returns the launched job, its estimate set. Pure: the client
    does the I/O (the driver's ``run_steps``)."""
    target, req, adapter = launch.target, launch.request, launch.target.adapter
    for file, purpose in launch.files():
        last: HTTPResponse | None = None
        for http in adapter.build_uploads(req, file, purpose):
            last = yield _step("finetune.upload", target, http, lambda r: r)
        if last is not None:
            file.ref = adapter.parse_upload(req, file, last)
    estimate = launch.estimate
    est_http = adapter.build_finetune_estimate(req)
    if est_http is not None:
        resp = yield _step("finetune.estimate", target, est_http, lambda r: r)
        estimate = _finetune.with_provider_estimate(estimate, adapter.parse_finetune_estimate(req, resp),
                                                    target.provider)
    job: FineTuneJob = yield _step("finetune", target, adapter.build_finetune(req),
                                   lambda r: adapter.parse_finetune(target.model, r))
    job.estimate = estimate
    return job


def _get_plan(core: Core, job: FineTuneJob) -> Plan:
    target = _target(core, job)
    return _step("finetune.get", target, target.adapter.build_finetune_get(job),
                 lambda r: target.adapter.parse_finetune(job.base_model, r))


def _cancel_plan(core: Core, job: FineTuneJob) -> Plan:
    target = _target(core, job)
    return _step("finetune.cancel", target, target.adapter.build_finetune_cancel(job),
                 lambda r: target.adapter.parse_finetune(job.base_model, r))


def _attach_plan(core: Core, job_id: str) -> Plan:
    target, stub = _attach_stub(core, job_id)
    return _step("finetune.get", target, target.adapter.build_finetune_get(stub),
                 lambda r: target.adapter.parse_finetune("", r))


def _events_plan(core: Core, job: FineTuneJob, limit: int) -> Plan | None:
    """The request for a job's events; ``None``: they come with the job itself (:func:`_events_of`)."""
    target = _target(core, job)
    http = target.adapter.build_finetune_events(job, limit)
    if http is None:
        return None
    return _step("finetune.events", target, http, lambda r: target.adapter.parse_finetune_events(job, r))


def _events_of(core: Core, source: FineTuneJob, limit: int) -> list[FineTuneEvent]:
    """The events a job carries (providers without an events endpoint), the last ``limit``."""
    return _target(core, source).adapter.parse_finetune_events(source, None)[-limit:]


def _checkpoints_plan(core: Core, job: FineTuneJob) -> Plan | None:
    """The request for a job's checkpoints; ``None``: they come with the job itself."""
    target = _target(core, job)
    http = target.adapter.build_finetune_checkpoints(job)
    if http is None:
        return None
    return _step("finetune.checkpoints", target, http, lambda r: target.adapter.parse_finetune_checkpoints(job, r))


class _Following:
    """The pure part of ``wait()`` on a job: the deadline, the growing poll interval, the progress bar."""

    def __init__(self, core: Core, job: FineTuneJob, timeout: float | None, poll_interval: float | None,
                 progress: bool) -> None:
        self.clock = core.router.clock
        self.timeout = timeout
        self.give_up = None if timeout is None else self.clock() + timeout
        _check_poll_interval(poll_interval)
        self.grows = poll_interval is None
        # None is "not given"; 0 is a real interval (a replayed test that must not sleep).
        self.interval = DEFAULT_FINETUNE_POLL_INTERVAL_S if poll_interval is None else poll_interval
        self.bar = _finetune.Progress(job) if progress else None
        self.events_too = bool(self.bar is not None and self.bar.shown
                               and _target(core, job).adapter.build_finetune_events(job, 1))

    def pause(self, job: FineTuneJob) -> float:
        """How long to wait before the next poll.

        Raises:
            FineTuneTimeoutError: The timeout has passed.
        """
        if self.give_up is not None and self.clock() >= self.give_up:
            raise _finetune.timed_out(job, self.timeout)
        return self.interval if self.give_up is None else min(self.interval, max(self.give_up - self.clock(), 0))

    def polled(self, job: FineTuneJob, events: list[FineTuneEvent] | None) -> None:
        """After a poll: show it (with the latest metrics of ``events``), and grow the interval."""
        if self.bar is not None:
            if events is not None:
                job.metrics = {**job.metrics, **_finetune.latest_metrics(events)}
            self.bar.update(job)
        if self.grows:
            self.interval = min(self.interval * 1.5, MAX_FINETUNE_POLL_INTERVAL_S)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class FineTunes:
    """The lifecycle of fine-tuning jobs on a sync :class:`~computekit.Client`: reached as ``client.finetunes``,
    never built directly.

    Each method takes a :class:`~computekit.FineTuneJob` and returns its latest state as a new object
    (``job.wait()`` and friends update the job in place); a job that has ended is priced and recorded in the
    ledger once, whichever method saw it end.

    Example::

        job = client.finetunes.attach("ftjob-abc123")  # started elsewhere
        job = client.finetunes.wait(job, timeout=3600)
        print(job.fine_tuned_model, job.cost.total)
    """

    is_async = False

    def __init__(self, core: Core, driver: SyncDriver, client: Any) -> None:
        self.core = core
        self.driver = driver
        self._client = client

    def _ended(self, job: FineTuneJob) -> None:
        _ended_step(self.core, job)()

    def attach(self, job_id: str, **unknown: Never) -> FineTuneJob:
        """A job started elsewhere (another process, yesterday), followed by this client.

        Raises:
            InvalidRequestError: ``job_id`` is not ``provider:id``.
            UnsupportedCapabilityError: The provider has no fine-tuning API.
            ProviderError: The provider failed (``NotFoundError`` for an unknown job).
        """
        if unknown:
            refuse(unknown, self.attach)
        job: FineTuneJob = self.driver.run(_attach_plan(self.core, job_id))
        job._bind(self._client, None)
        if job.done:
            self._ended(job)
        return job

    def refresh(self, job: FineTuneJob, **unknown: Never) -> FineTuneJob:
        """The job's latest state; a job that has ended is priced and recorded once.

        Raises:
            InvalidRequestError: An argument it does not take (the message names the fix).
            ProviderError: The provider failed after retries.
        """
        if unknown:
            refuse(unknown, self.refresh)
        fresh = self.driver.run(_get_plan(self.core, job))._carry_from(job)
        if fresh.done:
            self._ended(fresh)
        return fresh  # type: ignore[no-any-return]

    def cancel(self, job: FineTuneJob, **unknown: Never) -> FineTuneJob:
        """Cancel the job; its state after that.

        Raises:
            InvalidRequestError: An argument it does not take (the message names the fix).
            ProviderError: The provider refused or failed.
        """
        if unknown:
            refuse(unknown, self.cancel)
        fresh = self.driver.run(_cancel_plan(self.core, job))._carry_from(job)
        if fresh.done:
            self._ended(fresh)
        return fresh  # type: ignore[no-any-return]

    def events(self, job: FineTuneJob, limit: int = DEFAULT_FINETUNE_EVENTS, **unknown: Never) -> list[FineTuneEvent]:
        """The job's latest events, oldest first.

        Raises:
            InvalidRequestError: An argument it does not take (the message names the fix).
            ProviderError: The provider failed after retries.
        """
        if unknown:
            refuse(unknown, self.events)
        plan = _events_plan(self.core, job, limit)
        if plan is None:  # they come with the job
            return _events_of(self.core, self.refresh(job) if job.id and not job.done else job, limit)
        events: list[FineTuneEvent] = self.driver.run(plan)
        return events

    def checkpoints(self, job: FineTuneJob, **unknown: Never) -> list[FineTuneCheckpoint]:
        """The checkpoints the job saved (empty where the provider offers none).

        Raises:
            InvalidRequestError: An argument it does not take (the message names the fix).
            ProviderError: The provider failed after retries.
        """
        if unknown:
            refuse(unknown, self.checkpoints)
        plan = _checkpoints_plan(self.core, job)
        if plan is None:
            return _target(self.core, job).adapter.parse_finetune_checkpoints(job, None)
        out: list[FineTuneCheckpoint] = self.driver.run(plan)
        return out

    def wait(self, job: FineTuneJob, timeout: float | None = None, poll_interval: float | None = None,
             progress: bool = False, **unknown: Never) -> FineTuneJob:
        """Poll until the job ends (see :meth:`FineTuneJob.wait <computekit.FineTuneJob.wait>`); the ended state.

        Raises:
            InvalidRequestError: An argument it does not take (the message names the fix).
            FineTuneFailedError: The job failed (``body`` is the provider's error object).
            FineTuneTimeoutError: ``timeout`` passed first (the job keeps running).
            ProviderError: The provider failed after retries.
        """
        if unknown:
            refuse(unknown, self.wait)
        following = _Following(self.core, job, timeout, poll_interval, progress)
        try:
            while not job.done:
                self.core.retry.sleep(following.pause(job))
                job = self.refresh(job)
                following.polled(job, self.events(job, 10) if following.events_too else None)
        finally:
            following.close()
        self._ended(job)
        if job.status == "failed":
            raise _finetune.failed(job)
        return job


class AsyncFineTunes:
    """The lifecycle of fine-tuning jobs on :class:`~computekit.AsyncClient`: reached as ``client.finetunes``; the
    methods of :class:`~computekit.FineTunes`, awaited.

    Example::

        job = await client.finetunes.attach("ftjob-abc123")
        job = await client.finetunes.wait(job, timeout=3600)
    """

    is_async = True

    def __init__(self, core: Core, driver: AsyncDriver, client: Any) -> None:
        self.core = core
        self.driver = driver
        self._client = client

    async def _ended(self, job: FineTuneJob) -> None:
        # A job already written, or not ended, stays inline: nothing to write.
        await ledger_call(self.core, _ended_step(self.core, job), offload=_to_record(job), keyed=True)

    async def attach(self, job_id: str, **unknown: Never) -> FineTuneJob:
        """:meth:`FineTunes.attach`, awaited.

        Raises:
            InvalidRequestError: ``job_id`` is not ``provider:id``.
            UnsupportedCapabilityError: The provider has no fine-tuning API.
            ProviderError: The provider failed (``NotFoundError`` for an unknown job).
        """
        if unknown:
            refuse(unknown, self.attach)
        job: FineTuneJob = await self.driver.run(_attach_plan(self.core, job_id))
        job._bind(self._client, None)
        if job.done:
            await self._ended(job)
        return job

    async def refresh(self, job: FineTuneJob, **unknown: Never) -> FineTuneJob:
        """:meth:`FineTunes.refresh`, awaited.

        Raises:
            InvalidRequestError: An argument it does not take (the message names the fix).
            ProviderError: The provider failed after retries.
        """
        if unknown:
            refuse(unknown, self.refresh)
        fresh = (await self.driver.run(_get_plan(self.core, job)))._carry_from(job)
        if fresh.done:
            await self._ended(fresh)
        return fresh  # type: ignore[no-any-return]

    async def cancel(self, job: FineTuneJob, **unknown: Never) -> FineTuneJob:
        """:meth:`FineTunes.cancel`, awaited.

        Raises:
            InvalidRequestError: An argument it does not take (the message names the fix).
            ProviderError: The provider refused or failed.
        """
        if unknown:
            refuse(unknown, self.cancel)
        fresh = (await self.driver.run(_cancel_plan(self.core, job)))._carry_from(job)
        if fresh.done:
            await self._ended(fresh)
        return fresh  # type: ignore[no-any-return]

    async def events(self, job: FineTuneJob, limit: int = DEFAULT_FINETUNE_EVENTS,
                     **unknown: Never) -> list[FineTuneEvent]:
        """:meth:`FineTunes.events`, awaited.

        Raises:
            InvalidRequestError: An argument it does not take (the message names the fix).
            ProviderError: The provider failed after retries.
        """
        if unknown:
            refuse(unknown, self.events)
        plan = _events_plan(self.core, job, limit)
        if plan is None:  # they come with the job
            return _events_of(self.core, await self.refresh(job) if job.id and not job.done else job, limit)
        events: list[FineTuneEvent] = await self.driver.run(plan)
        return events

    async def checkpoints(self, job: FineTuneJob, **unknown: Never) -> list[FineTuneCheckpoint]:
        """:meth:`FineTunes.checkpoints`, awaited.

        Raises:
            InvalidRequestError: An argument it does not take (the message names the fix).
            ProviderError: The provider failed after retries.
        """
        if unknown:
            refuse(unknown, self.checkpoints)
        plan = _checkpoints_plan(self.core, job)
        if plan is None:
            return _target(self.core, job).adapter.parse_finetune_checkpoints(job, None)
        out: list[FineTuneCheckpoint] = await self.driver.run(plan)
        return out

    async def wait(self, job: FineTuneJob, timeout: float | None = None, poll_interval: float | None = None,
                   progress: bool = False, **unknown: Never) -> FineTuneJob:
        """:meth:`FineTunes.wait`, awaited.

        Raises:
            InvalidRequestError: An argument it does not take (the message names the fix).
            FineTuneFailedError: The job failed (``body`` is the provider's error object).
            FineTuneTimeoutError: ``timeout`` passed first (the job keeps running).
            ProviderError: The provider failed after retries.
        """
        if unknown:
            refuse(unknown, self.wait)
        following = _Following(self.core, job, timeout, poll_interval, progress)
        try:
            while not job.done:
                await self.core.retry.async_sleep(following.pause(job))
                job = await self.refresh(job)
                following.polled(job, await self.events(job, 10) if following.events_too else None)
        finally:
            following.close()
        await self._ended(job)
        if job.status == "failed":
            raise _finetune.failed(job)
        return job


class FineTuning:
    """``finetune()`` on the sync :class:`~computekit.Client` (the lifecycle is ``client.finetunes``)."""

    _core: Core
    finetunes: FineTunes

    def finetune(
        self,
        model: str,
        *,
        training_file: Any,
        validation_file: Any = None,
        epochs: int | None = None,
        hyperparameters: Mapping[str, Any] | None = None,
        suffix: str | None = None,
        method: str = "supervised",
        destination: str | None = None,
        dry_run: bool = False,
        wait: bool = False,
        timeout: float | None = None,
        poll_interval: float | None = None,
        progress: bool = False,
        extra_body: Mapping[str, Any] | NotGiven = NOT_GIVEN,
        tags: Mapping[str, str] | None = None,
        **unknown: Never,
    ) -> FineTuneJob:
        """Launch a fine-tuning job (or, with ``dry_run``, check and estimate it only).

        Args:
            model: ``"provider:model"`` — the base model to fine-tune (``openai:gpt-4o-mini-2024-07-18``).
            training_file: A path to a JSONL file, or a list of example dicts (``{"messages": [...]}``); for hosts
                whose trainers fetch their own data (Replicate), its ``https://`` URL, or
                ``{"input_name": "https://..."}`` to name the trainer input.
            validation_file: Validation data, in the same forms.
            epochs: Passes over the data (default: the provider's own default, also used by the estimate).
            hyperparameters: Provider hyperparameters (``batch_size``, ``learning_rate_multiplier`` ...;
                Replicate: the trainer's inputs).
            suffix: A name part for the fine-tuned model.
            method: ``"supervised"`` (default) or ``"dpo"`` (preference pairs) where offered.
            destination: Replicate: the model (``owner/name``) the trained version is pushed to.
            dry_run: Check the data and return the estimate only: nothing is uploaded or launched.
            wait: Wait for the job to end (then ``cost`` is known and in the ledger).
            timeout: With ``wait``: seconds to wait (the job keeps running when they pass).
            poll_interval: With ``wait``: seconds between polls (default 5 s, growing to 60 s).
            progress: With ``wait``: a progress bar with the latest metrics, on a terminal.
            extra_body: Provider-specific fields for the job, sent as they are.
            tags: Labels stored with the job's ledger row.

        Returns:
            The job: ``estimate`` set; ``status``, ``fine_tuned_model`` and ``cost`` as far as known.

        Raises:
            InvalidRequestError: The arguments are wrong (nothing was sent).
            TrainingDataError: The data is refused, with the line and what is wrong (nothing was uploaded).
            UnsupportedCapabilityError: The provider has no fine-tuning API (Cohere retired its own on
                2025-09-15), or not this method (nothing was sent).
            FineTuneFailedError: With ``wait``: the job failed (``body`` is the provider's error object).
            FineTuneTimeoutError: With ``wait``: ``timeout`` passed first (the job keeps running).
            ProviderError: The provider failed after retries (``NotFoundError`` for an unknown base model ...).
        """
        if unknown:
            refuse(unknown, self.finetune)
        launch, tags = _launch(self._core, model, training_file, tags, extra_body, poll_interval,
                               validation_file=validation_file,
                               epochs=epochs, hyperparameters=hyperparameters, suffix=suffix, method=method,
                               destination=destination)
        if dry_run:
            return launch.dry_run()
        # Budgets: the estimate is reserved before any upload, held while the job runs, settled by its cost.
        core, finetunes = self._core, self.finetunes
        held = core.budgets.reserve_finetune(launch.target, launch.estimate.total, tags)
        try:
            job = finetunes.driver.run_steps(_launch_steps(launch))
        except BaseException:
            core.budgets.release(held)  # nothing launched: nothing to hold
            raise
        finetune_launched(core, job, held)
        job._bind(self, tags)
        if job.done:
            finetunes._ended(job)
        if wait:
            return finetunes.wait(job, timeout, poll_interval, progress)
        return job



class AsyncFineTuning:
    """``finetune()`` on :class:`~computekit.AsyncClient` (the same names, awaited; ``client.finetunes``)."""

    _core: Core
    finetunes: AsyncFineTunes

    async def finetune(
        self,
        model: str,
        *,
        training_file: Any,
        validation_file: Any = None,
        epochs: int | None = None,
        hyperparameters: Mapping[str, Any] | None = None,
        suffix: str | None = None,
        method: str = "supervised",
        destination: str | None = None,
        dry_run: bool = False,
        wait: bool = False,
        timeout: float | None = None,
        poll_interval: float | None = None,
        progress: bool = False,
        extra_body: Mapping[str, Any] | NotGiven = NOT_GIVEN,
        tags: Mapping[str, str] | None = None,
        **unknown: Never,
    ) -> FineTuneJob:
        """Launch a fine-tuning job, awaited (see :meth:`Client.finetune`).

        Args:
            model: ``"provider:model"`` — the base model to fine-tune (``openai:gpt-4o-mini-2024-07-18``).
            training_file: A path to a JSONL file, or a list of example dicts (``{"messages": [...]}``); for hosts
                whose trainers fetch their own data (Replicate), its ``https://`` URL, or
                ``{"input_name": "https://..."}`` to name the trainer input.
            validation_file: Validation data, in the same forms.
            epochs: Passes over the data (default: the provider's own default, also used by the estimate).
            hyperparameters: Provider hyperparameters (``batch_size``, ``learning_rate_multiplier`` ...;
                Replicate: the trainer's inputs).
            suffix: A name part for the fine-tuned model.
            method: ``"supervised"`` (default) or ``"dpo"`` (preference pairs) where offered.
            destination: Replicate: the model (``owner/name``) the trained version is pushed to.
            dry_run: Check the data and return the estimate only: nothing is uploaded or launched.
            wait: Wait for the job to end (then ``cost`` is known and in the ledger).
            timeout: With ``wait``: seconds to wait (the job keeps running when they pass).
            poll_interval: With ``wait``: seconds between polls (default 5 s, growing to 60 s).
            progress: With ``wait``: a progress bar with the latest metrics, on a terminal.
            extra_body: Provider-specific fields for the job, sent as they are.
            tags: Labels stored with the job's ledger row.

        Returns:
            The job: ``estimate`` set; ``status``, ``fine_tuned_model`` and ``cost`` as far as known.

        Raises:
            InvalidRequestError: The arguments are wrong (nothing was sent).
            TrainingDataError: The data is refused, with the line and what is wrong (nothing was uploaded).
            UnsupportedCapabilityError: The provider has no fine-tuning API (Cohere retired its own on
                2025-09-15), or not this method (nothing was sent).
            FineTuneFailedError: With ``wait``: the job failed (``body`` is the provider's error object).
            FineTuneTimeoutError: With ``wait``: ``timeout`` passed first (the job keeps running).
            ProviderError: The provider failed after retries (``NotFoundError`` for an unknown base model ...).
        """
        if unknown:
            refuse(unknown, self.finetune)
        launch, tags = _launch(self._core, model, training_file, tags, extra_body, poll_interval,
                               validation_file=validation_file,
                               epochs=epochs, hyperparameters=hyperparameters, suffix=suffix, method=method,
                               destination=destination)
        if dry_run:
            return launch.dry_run()
        core, finetunes = self._core, self.finetunes
        # Budgets: as in Client.finetune, off the event loop when the ledger is remote.
        held = await ledger_call(core, partial(core.budgets.reserve_finetune, launch.target, launch.estimate.total,
                                               tags))
        try:
            job = await finetunes.driver.run_steps(_launch_steps(launch))
        except BaseException:
            # nothing launched: nothing to hold
            await ledger_call(core, partial(core.budgets.release, held), offload=held is not None)
            raise
        await ledger_call(core, partial(finetune_launched, core, job, held), offload=held is not None)
        job._bind(self, tags)
        if job.done:
            await finetunes._ended(job)
        if wait:
            return await finetunes.wait(job, timeout, poll_interval, progress)
        return job
