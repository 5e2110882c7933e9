"""``finetune()`` on :class:`~computekit.Client` and :class:`~computekit.AsyncClient`: only the I/O, written twice
under the same names; checking, estimating, pricing and the ledger are :mod:`computekit._finetune`'s and the core's.

Every request (upload, launch, poll, cancel, events) goes through the client's one ``_send`` loop, so it is retried
like any other call (a 5xx on a status GET is retried; GETs are idempotent). None of them is a billed attempt: the
job's cost is priced and written to the ledger once, when the job ends. Under a budget, the job's estimate is
reserved before the first upload and held until then (released when the launch fails).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

from . import _finetune
from ._constants import (
    DEFAULT_FINETUNE_EVENTS,
    DEFAULT_FINETUNE_POLL_INTERVAL_S,
    MAX_FINETUNE_POLL_INTERVAL_S,
    NOT_GIVEN,
    NotGiven,
)
from ._core import Target, check_tags, ledger_call, split_model_id
from ._exceptions import InvalidRequestError
from ._types import FineTuneCheckpoint, FineTuneEvent, FineTuneJob
from .adapters._base import HTTPRequest, HTTPResponse

if TYPE_CHECKING:
    from ._core import Core

__all__ = ["AsyncFineTuning", "FineTuning"]


def _step(verb: str, target: Target, http: HTTPRequest | None,
          parse: Callable[[HTTPResponse], Any]) -> Any:
    """One fine-tuning request as a plan for ``_send``: one target, no fallback, nothing billed by itself."""
    from ._client import _Plan

    def build(t: Target) -> HTTPRequest:
        assert http is not None
        return http

    return _Plan(verb, [target], build, lambda t, req, resp: parse(resp), None, record=False)


def _target(core: Core, job: FineTuneJob) -> Target:
    return Target(core.adapter(job.provider), job.base_model)


def _carry(old: FineTuneJob, fresh: FineTuneJob) -> FineTuneJob:
    """What a refreshed job keeps from the one it replaces (its estimate, client, tags, ledger state)."""
    fresh.estimate = old.estimate
    fresh._client, fresh._recorded, fresh._tags = old._client, old._recorded, old._tags
    if old._recorded:
        fresh.cost = old.cost
    if not fresh.metrics and old.metrics:
        fresh.metrics = old.metrics
    return fresh


def _ended_step(core: Core, job: FineTuneJob) -> Callable[[], None]:
    """Pricing and recording a job that has ended, as one ledger step (run inline, or by ``ledger_call``)."""
    return partial(core.finetune_ended, _target(core, job), job, job._tags)


def _to_record(job: FineTuneJob) -> bool:
    """Whether :meth:`Core.finetune_ended` would write the job's row (else it returns at once)."""
    return job.done and job.id is not None and not job._recorded


def _attach_stub(core: Core, job_id: str) -> tuple[Target, FineTuneJob]:
    provider, jid = split_model_id(job_id)
    adapter = core.adapter(provider)
    if not adapter.capabilities.finetune:
        raise adapter.unsupported("finetune")
    stub = FineTuneJob(id=jid, provider=provider, base_model="", status="queued")
    return Target(adapter, ""), stub



class FineTuning:
    """``finetune()`` and the job lifecycle on the sync :class:`~computekit.Client`."""

    _core: Core

    if TYPE_CHECKING:
        def _send(self, plan: Any) -> Any: ...  # Client's

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
        tags = check_tags(tags)  # refused before any upload, like every verb's tags
        launch = _finetune.prepare(
            self._core, model, training_file, validation_file=validation_file, epochs=epochs,
            hyperparameters=hyperparameters, suffix=suffix, method=method, destination=destination,
            extra=extra_body if extra_body is not NOT_GIVEN else None,
        )
        if dry_run:
            return launch.dry_run()
        target, req, adapter = launch.target, launch.request, launch.target.adapter
        # Budgets: the estimate is reserved before any upload, held while the job runs, settled by its cost.
        held = self._core.finetune_reserve(target, launch.estimate, tags)
        try:
            for file, purpose in launch.files():
                https = adapter.build_uploads(req, file, purpose)
                last: HTTPResponse | None = None
                for http in https:
                    last = self._send(_step("finetune.upload", target, http, lambda r: r))
                if last is not None:
                    file.ref = adapter.parse_upload(req, file, last)
            estimate = launch.estimate
            est_http = adapter.build_finetune_estimate(req)
            if est_http is not None:
                resp = self._send(_step("finetune.estimate", target, est_http, lambda r: r))
                bill = adapter.parse_finetune_estimate(req, resp)
                estimate = _finetune.with_provider_estimate(estimate, bill, target.provider)
            job: FineTuneJob = self._send(_step("finetune", target, adapter.build_finetune(req),
                                                lambda r: adapter.parse_finetune(target.model, r)))
        except BaseException:
            self._core.release(held)  # nothing launched: nothing to hold
            raise
        self._core.finetune_launched(job, held)
        job.estimate = estimate
        job._client, job._tags = self, tags
        if job.done:
            self._ft_ended(job)
        if wait:
            return self._ft_wait(job, timeout, poll_interval, progress)
        return job

    def _ft_ended(self, job: FineTuneJob) -> None:
        _ended_step(self._core, job)()

    def _ft_attach(self, job_id: str) -> FineTuneJob:
        target, stub = _attach_stub(self._core, job_id)
        adapter = target.adapter
        job: FineTuneJob = self._send(_step("finetune.get", target, adapter.build_finetune_get(stub),
                                            lambda r: adapter.parse_finetune("", r)))
        job._client = self
        if job.done:
            self._ft_ended(job)
        return job

    def _ft_refresh(self, job: FineTuneJob) -> FineTuneJob:
        target = _target(self._core, job)
        adapter = target.adapter
        fresh: FineTuneJob = self._send(_step("finetune.get", target, adapter.build_finetune_get(job),
                                              lambda r: adapter.parse_finetune(job.base_model, r)))
        fresh = _carry(job, fresh)
        if fresh.done:
            self._ft_ended(fresh)
        return fresh

    def _ft_cancel(self, job: FineTuneJob) -> FineTuneJob:
        target = _target(self._core, job)
        adapter = target.adapter
        fresh: FineTuneJob = self._send(_step("finetune.cancel", target, adapter.build_finetune_cancel(job),
                                              lambda r: adapter.parse_finetune(job.base_model, r)))
        fresh = _carry(job, fresh)
        if fresh.done:
            self._ft_ended(fresh)
        return fresh

    def _ft_events(self, job: FineTuneJob, limit: int = DEFAULT_FINETUNE_EVENTS) -> list[FineTuneEvent]:
        target = _target(self._core, job)
        adapter = target.adapter
        http = adapter.build_finetune_events(job, limit)
        if http is None:
            source = self._ft_refresh(job) if job.id and not job.done else job  # they come with the job
            return adapter.parse_finetune_events(source, None)[-limit:]
        events: list[FineTuneEvent] = self._send(_step("finetune.events", target, http,
                                                       lambda r: adapter.parse_finetune_events(job, r)))
        return events

    def _ft_checkpoints(self, job: FineTuneJob) -> list[FineTuneCheckpoint]:
        target = _target(self._core, job)
        adapter = target.adapter
        http = adapter.build_finetune_checkpoints(job)
        if http is None:
            return adapter.parse_finetune_checkpoints(job, None)
        out: list[FineTuneCheckpoint] = self._send(_step("finetune.checkpoints", target, http,
                                                         lambda r: adapter.parse_finetune_checkpoints(job, r)))
        return out

    def _ft_wait(self, job: FineTuneJob, timeout: float | None, poll_interval: float | None,
                 progress: bool = False) -> FineTuneJob:
        core = self._core
        clock = core.router.clock
        give_up = None if timeout is None else clock() + timeout
        if poll_interval is not None and not poll_interval >= 0:
            raise InvalidRequestError(f"poll_interval must be >= 0 seconds, not {poll_interval!r}")
        # None is "not given"; 0 is a real interval (a replayed test that must not sleep).
        interval = DEFAULT_FINETUNE_POLL_INTERVAL_S if poll_interval is None else poll_interval
        bar = _finetune.Progress(job) if progress else None
        events_too = bar is not None and bar.shown and _target(core, job).adapter.build_finetune_events(job, 1)
        try:
            while not job.done:
                if give_up is not None and clock() >= give_up:
                    raise _finetune.timed_out(job, timeout)
                pause = interval if give_up is None else min(interval, max(give_up - clock(), 0))
                core.retry.sleep(pause)
                job = self._ft_refresh(job)
                if bar is not None:
                    if events_too:
                        job.metrics = {**job.metrics, **_finetune.latest_metrics(self._ft_events(job, 10))}
                    bar.update(job)
                if poll_interval is None:
                    interval = min(interval * 1.5, MAX_FINETUNE_POLL_INTERVAL_S)
        finally:
            if bar is not None:
                bar.close()
        self._ft_ended(job)
        if job.status == "failed":
            raise _finetune.failed(job)
        return job


class AsyncFineTuning:
    """``finetune()`` and the job lifecycle on :class:`~computekit.AsyncClient` (the same names, awaited)."""

    _core: Core

    if TYPE_CHECKING:
        async def _send(self, plan: Any) -> Any: ...  # AsyncClient's

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
        tags = check_tags(tags)  # refused before any upload, like every verb's tags
        launch = _finetune.prepare(
            self._core, model, training_file, validation_file=validation_file, epochs=epochs,
            hyperparameters=hyperparameters, suffix=suffix, method=method, destination=destination,
            extra=extra_body if extra_body is not NOT_GIVEN else None,
        )
        if dry_run:
            return launch.dry_run()
        target, req, adapter = launch.target, launch.request, launch.target.adapter
        # Budgets: the estimate is reserved before any upload, held while the job runs, settled by its cost.
        held = await ledger_call(self._core, partial(self._core.finetune_reserve, target, launch.estimate, tags))
        try:
            for file, purpose in launch.files():
                https = adapter.build_uploads(req, file, purpose)
                last: HTTPResponse | None = None
                for http in https:
                    last = await self._send(_step("finetune.upload", target, http, lambda r: r))
                if last is not None:
                    file.ref = adapter.parse_upload(req, file, last)
            estimate = launch.estimate
            est_http = adapter.build_finetune_estimate(req)
            if est_http is not None:
                resp = await self._send(_step("finetune.estimate", target, est_http, lambda r: r))
                bill = adapter.parse_finetune_estimate(req, resp)
                estimate = _finetune.with_provider_estimate(estimate, bill, target.provider)
            job: FineTuneJob = await self._send(_step("finetune", target, adapter.build_finetune(req),
                                                      lambda r: adapter.parse_finetune(target.model, r)))
        except BaseException:
            # nothing launched: nothing to hold
            await ledger_call(self._core, partial(self._core.release, held), offload=held is not None)
            raise
        await ledger_call(self._core, partial(self._core.finetune_launched, job, held), offload=held is not None)
        job.estimate = estimate
        job._client, job._tags = self, tags
        if job.done:
            await self._ft_ended(job)
        if wait:
            return await self._ft_wait(job, timeout, poll_interval, progress)
        return job

    async def _ft_ended(self, job: FineTuneJob) -> None:
        """:meth:`FineTuning._ft_ended`, off the event loop when the ledger is remote (a job already written, or
        not ended, stays inline: nothing to write)."""
        await ledger_call(self._core, _ended_step(self._core, job), offload=_to_record(job))

    async def _ft_attach(self, job_id: str) -> FineTuneJob:
        target, stub = _attach_stub(self._core, job_id)
        adapter = target.adapter
        job: FineTuneJob = await self._send(_step("finetune.get", target, adapter.build_finetune_get(stub),
                                                  lambda r: adapter.parse_finetune("", r)))
        job._client = self
        if job.done:
            await self._ft_ended(job)
        return job

    async def _ft_refresh(self, job: FineTuneJob) -> FineTuneJob:
        target = _target(self._core, job)
        adapter = target.adapter
        fresh: FineTuneJob = await self._send(_step("finetune.get", target, adapter.build_finetune_get(job),
                                                    lambda r: adapter.parse_finetune(job.base_model, r)))
        fresh = _carry(job, fresh)
        if fresh.done:
            await self._ft_ended(fresh)
        return fresh

    async def _ft_cancel(self, job: FineTuneJob) -> FineTuneJob:
        target = _target(self._core, job)
        adapter = target.adapter
        fresh: FineTuneJob = await self._send(_step("finetune.cancel", target, adapter.build_finetune_cancel(job),
                                                    lambda r: adapter.parse_finetune(job.base_model, r)))
        fresh = _carry(job, fresh)
        if fresh.done:
            await self._ft_ended(fresh)
        return fresh

    async def _ft_events(self, job: FineTuneJob, limit: int = DEFAULT_FINETUNE_EVENTS) -> list[FineTuneEvent]:
        target = _target(self._core, job)
        adapter = target.adapter
        http = adapter.build_finetune_events(job, limit)
        if http is None:
            source = await self._ft_refresh(job) if job.id and not job.done else job
            return adapter.parse_finetune_events(source, None)[-limit:]
        events: list[FineTuneEvent] = await self._send(_step("finetune.events", target, http,
                                                             lambda r: adapter.parse_finetune_events(job, r)))
        return events

    async def _ft_checkpoints(self, job: FineTuneJob) -> list[FineTuneCheckpoint]:
        target = _target(self._core, job)
        adapter = target.adapter
        http = adapter.build_finetune_checkpoints(job)
        if http is None:
            return adapter.parse_finetune_checkpoints(job, None)
        out: list[FineTuneCheckpoint] = await self._send(
            _step("finetune.checkpoints", target, http, lambda r: adapter.parse_finetune_checkpoints(job, r))
        )
        return out

    async def _ft_wait(self, job: FineTuneJob, timeout: float | None, poll_interval: float | None,
                       progress: bool = False) -> FineTuneJob:
        core = self._core
        clock = core.router.clock
        give_up = None if timeout is None else clock() + timeout
        if poll_interval is not None and not poll_interval >= 0:
            raise InvalidRequestError(f"poll_interval must be >= 0 seconds, not {poll_interval!r}")
        # None is "not given"; 0 is a real interval (a replayed test that must not sleep).
        interval = DEFAULT_FINETUNE_POLL_INTERVAL_S if poll_interval is None else poll_interval
        bar = _finetune.Progress(job) if progress else None
        events_too = bar is not None and bar.shown and _target(core, job).adapter.build_finetune_events(job, 1)
        try:
            while not job.done:
                if give_up is not None and clock() >= give_up:
                    raise _finetune.timed_out(job, timeout)
                pause = interval if give_up is None else min(interval, max(give_up - clock(), 0))
                await core.retry.async_sleep(pause)
                job = await self._ft_refresh(job)
                if bar is not None:
                    if events_too:
                        job.metrics = {**job.metrics, **_finetune.latest_metrics(await self._ft_events(job, 10))}
                    bar.update(job)
                if poll_interval is None:
                    interval = min(interval * 1.5, MAX_FINETUNE_POLL_INTERVAL_S)
        finally:
            if bar is not None:
                bar.close()
        await self._ft_ended(job)
        if job.status == "failed":
            raise _finetune.failed(job)
        return job
