"""``predict()`` and the prediction lifecycle: the :class:`Predicting` mixins give the clients ``predict()``, and
``client.predictions`` (:class:`Predictions` / :class:`AsyncPredictions`: ``wait``, ``refresh``, ``cancel``,
``stream``), the same names sync and async. A :class:`~computekit.Prediction` is plain data; its own ``wait()``
and friends are thin conveniences that call these.

Every request goes through the client's driver (lookups, the create, polls, cancels: none is billed by itself);
a run is priced and written to the ledger once, when it ends. What both flavours share is pure and written once
here (:class:`_Waiting`, the errors).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, Never

from ._arguments import refuse
from ._bookkeeping import prediction_ended
from ._constants import DEFAULT_POLL_INTERVAL_S, MAX_DOWNLOAD_REDIRECTS, MAX_POLL_INTERVAL_S, NOT_GIVEN, NotGiven
from ._core import call_deadline, check_seconds
from ._exceptions import (
    APITimeoutError,
    MissingAPIKeyError,
    PredictionFailedError,
    PredictionTimeoutError,
    ProviderError,
)
from ._plans import ModelSpec, lifecycle_plan, lookup_plan, predict_plan, prediction_stream_plan, prediction_target
from ._streaming import AsyncPredictionStream, PredictionStream, _PredictionStreamState
from ._transport import ERROR_STATUS
from ._types import Prediction

if TYPE_CHECKING:
    from rich.console import Console

    from ._core import Core
    from ._driver import AsyncDriver, SyncDriver
    from ._http import HTTPRequest
    from ._targets import Target

__all__ = ["AsyncPredicting", "AsyncPredictions", "Predicting", "Predictions"]

_MAX_LOOKUPS = 4
"""Lookups one target may need before a run (a deployment, then its version): a bound, not a budget."""


def _lookup_request(core: Core, target: Target, validate: bool, need_hw: bool) -> HTTPRequest | None:
    """The next lookup for ``target``, or ``None`` when all is known or it has no key (its create then says so,
    or falls back)."""
    try:
        return core.model_info_request(target, schema=validate, hardware=need_hw)
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


def _note_still_running(error: ProviderError, prediction: Prediction) -> None:
    """A wait that ``predict()`` began failed (a poll the host answered badly, after its retries): the caller
    has no handle of the run, which goes on (and bills) on the host, so the error names it. A run that ended or
    was canceled (``PredictionFailedError``, ``PredictionTimeoutError``) carries it in ``.prediction``."""
    if isinstance(error, PredictionFailedError | PredictionTimeoutError):
        return
    error.add_note(
        f"prediction {prediction.id} was created and was not canceled: it may still be running (and billed) on "
        f"{prediction.provider}. Follow it with client.predictions.refresh(ck.Prediction(provider="
        f"{prediction.provider!r}, model={prediction.model!r}, id={prediction.id!r}, status='running')), or "
        "cancel it the same way; it is recorded once, when a look sees it end"
    )


def _ended_step(core: Core, prediction: Prediction) -> Callable[[], None]:
    """Pricing and recording an ended prediction, as one ledger step (run inline, or off the event loop)."""
    return partial(prediction_ended, core, prediction_target(core, prediction), prediction, prediction._tags)


class Predictions:
    """The lifecycle of predictions on a sync :class:`~computekit.Client`: reached as ``client.predictions``,
    never built directly.

    Each method takes a :class:`~computekit.Prediction` (from ``client.predict(..., wait=False)``, or one
    rebuilt from a stored id) and returns its latest state as a new object; a run that has ended is priced and
    recorded in the ledger once, whichever method saw it end. ``Prediction.wait()`` and its siblings call these.

    Example::

        p = client.predict("replicate:black-forest-labs/flux-schnell", {"prompt": "a fox"}, wait=False)
        p = client.predictions.wait(p, timeout=120)
        print(p.output, p.cost.total)
    """

    is_async = False

    def __init__(self, core: Core, driver: SyncDriver) -> None:
        self.core = core
        self.driver = driver

    def create(self, model: ModelSpec, input: Mapping[str, Any], *, wait: bool, timeout: float | None,
               poll_interval: float | None, hardware: str | None, webhook: str | None, cancel_on_timeout: bool,
               validate: bool, progress: bool | Console, extra_body: Mapping[str, Any] | NotGiven,
               tags: Mapping[str, str] | None, client: Any) -> Prediction:
        """Start a run: what :meth:`Client.predict <computekit.Client.predict>` does (its arguments, documented
        there); call that instead.

        Raises:
            InvalidRequestError: An argument is invalid, or the input does not match the model's schema.
            BudgetExceededError: A budget refused the run's worst case (nothing was sent).
            LedgerError: The ledger's store failed making a budget's reservation (nothing was sent).
            PredictionFailedError: ``wait`` and the run failed (its cost is in the ledger).
            PredictionTimeoutError: ``wait`` and ``timeout`` passed first.
            ProviderError: The host failed after retries (``AllTargetsFailedError`` for several targets).
        """
        core = self.core
        deadline = call_deadline(core, timeout)
        check_seconds("poll_interval", poll_interval, zero=True)  # before the run is created
        plan = predict_plan(core, model, input, wait, hardware, webhook, extra_body, tags, validate, deadline)
        for t in plan.targets:
            if not t.adapter.capabilities.predict:
                continue  # its create says so (or falls back): no lookups for it
            need_hw = core.needs_hardware(t, hardware)
            for _ in range(_MAX_LOOKUPS):  # what the host publishes (input schema, hardware): GETs, cached
                req = _lookup_request(core, t, validate, need_hw)
                if req is None:
                    break
                core.add_model_info(t, self.driver.run(lookup_plan(core, t, req, deadline)))
        try:
            prediction: Prediction = self.driver.run(plan)
        except APITimeoutError as e:
            if timeout is None:
                raise
            raise _create_timed_out(e, timeout) from e
        prediction._bind(client, plan.tags)  # with the enclosing ck.tags() blocks' tags
        if wait:
            try:
                return self.wait(prediction, timeout, poll_interval, cancel_on_timeout, progress, deadline)
            except ProviderError as e:
                _note_still_running(e, prediction)
                raise
        if prediction.done:
            self._ended(prediction)
        return prediction

    def _ended(self, prediction: Prediction) -> None:
        _ended_step(self.core, prediction)()

    def refresh(self, prediction: Prediction, **unknown: Never) -> Prediction:
        """The prediction's latest state (a new object); a run that has ended is priced and recorded once.

        Raises:
            InvalidRequestError: An argument it does not take (the message names the fix).
            ProviderError: The host failed after retries.
        """
        if unknown:
            refuse(unknown, self.refresh)
        fresh: Prediction = self.driver.run(lifecycle_plan(self.core, prediction, "get"))
        if fresh.done:
            self._ended(fresh)
        return fresh

    def cancel(self, prediction: Prediction, **unknown: Never) -> Prediction:
        """Cancel the run on the host; its state after that (a new object).

        Raises:
            InvalidRequestError: An argument it does not take (the message names the fix).
            ProviderError: The host refused or failed.
        """
        if unknown:
            refuse(unknown, self.cancel)
        fresh: Prediction = self.driver.run(lifecycle_plan(self.core, prediction, "cancel"))
        if fresh.done and self.core.adapter(fresh.provider).needs_final_state(fresh):
            fresh = self.driver.run(lifecycle_plan(self.core, fresh, "get"))  # its billed run time
        if fresh.done:
            self._ended(fresh)
        return fresh

    def wait(
        self,
        prediction: Prediction,
        timeout: float | None = None,
        poll_interval: float | None = None,
        cancel_on_timeout: bool = True,
        progress: bool | Console = False,
        deadline: float | None = None,
        **unknown: Never,
    ) -> Prediction:
        """Poll until the run ends (see :meth:`Prediction.wait <computekit.Prediction.wait>`); the ended state.

        Raises:
            InvalidRequestError: An argument it does not take (the message names the fix).
            PredictionFailedError: The run failed (its cost is in the ledger).
            PredictionTimeoutError: ``timeout`` passed first (the run was canceled unless ``cancel_on_timeout``
                is False).
            ProviderError: The host failed after retries.
        """
        if unknown:
            refuse(unknown, self.wait)
        waiting = _Waiting(self.core, prediction, timeout, poll_interval, progress, deadline)
        try:
            while not prediction.done:
                waiting.show(prediction)
                if waiting.timed_out():
                    if cancel_on_timeout:
                        prediction = self.cancel(prediction)
                    raise _timed_out(prediction, timeout)
                pause = waiting.pause(prediction)
                if pause is not None:
                    self.core.retry.sleep(pause)
                prediction = self.refresh(prediction)
            self._ended(prediction)
        finally:
            waiting.close(prediction)
        if prediction.status == "failed":
            raise _failed(prediction)
        return prediction

    def stream(self, prediction: Prediction, poll_interval: float | None = None, **unknown: Never) -> PredictionStream:
        """The run's output as the host streams it (see :meth:`Prediction.stream <computekit.Prediction.stream>`).

        Raises:
            InvalidRequestError: An argument it does not take (the message names the fix).
            UnsupportedCapabilityError: The host, or this model, does not stream (before any request).
        """
        if unknown:
            refuse(unknown, self.stream)
        opening = prediction_stream_plan(self.core, prediction)
        return PredictionStream(self, _PredictionStreamState(self.core, prediction, opening, poll_interval))

    def download(self, url: str, provider: str = "download", model: str | None = None, *,
                 public_only: bool = True, **unknown: Never) -> bytes:
        """GET an output file: no credential (the URL is pre-signed), redirects followed, size bounded;
        ``public_only``: the host must be a public address (``save(allow_private_network=True)`` lifts it).

        Raises:
            InvalidRequestError: An argument it does not take (the message names the fix).
            APIStatusError: The host answered with an error status (``NotFoundError`` for 404 ...).
            APITimeoutError, APIConnectionError: The download timed out or broke.
            MalformedResponseError: The file is larger than ``MAX_DOWNLOAD_BYTES``, or redirects loop.
        """
        if unknown:
            refuse(unknown, self.download)
        from . import _outputs

        for _ in range(MAX_DOWNLOAD_REDIRECTS + 1):
            req = _outputs.download_request(url, self.core.settings.timeout, public_only=public_only)
            with self.driver.transport.stream(req, provider, model) as (head, chunks):
                target = _outputs.redirect_to(head, url, provider, model)
                if target is None:
                    if head.status >= ERROR_STATUS:
                        raise _outputs.status_error(head, url, provider, model)
                    sink = _outputs.Sink(head, url, provider, model)
                    for data in chunks:
                        sink.add(data)
                    return sink.content()
            url = target
        raise _outputs.too_many_redirects(url, provider, model)


class AsyncPredictions:
    """The lifecycle of predictions on :class:`~computekit.AsyncClient`: reached as ``client.predictions``; the
    methods of :class:`~computekit.Predictions`, awaited.

    Example::

        p = await client.predict("replicate:black-forest-labs/flux-schnell", {"prompt": "a fox"}, wait=False)
        p = await client.predictions.wait(p, timeout=120)
    """

    is_async = True

    def __init__(self, core: Core, driver: AsyncDriver) -> None:
        self.core = core
        self.driver = driver

    async def create(self, model: ModelSpec, input: Mapping[str, Any], *, wait: bool, timeout: float | None,
                     poll_interval: float | None, hardware: str | None, webhook: str | None,
                     cancel_on_timeout: bool, validate: bool, progress: bool | Console,
                     extra_body: Mapping[str, Any] | NotGiven, tags: Mapping[str, str] | None,
                     client: Any) -> Prediction:
        """:meth:`Predictions.create <computekit.Predictions.create>`, awaited: what ``AsyncClient.predict()``
        does; call that instead.

        Raises:
            InvalidRequestError: An argument is invalid, or the input does not match the model's schema.
            BudgetExceededError: A budget refused the run's worst case (nothing was sent).
            LedgerError: The ledger's store failed making a budget's reservation (nothing was sent).
            PredictionFailedError: ``wait`` and the run failed (its cost is in the ledger).
            PredictionTimeoutError: ``wait`` and ``timeout`` passed first.
            ProviderError: The host failed after retries (``AllTargetsFailedError`` for several targets).
        """
        core = self.core
        deadline = call_deadline(core, timeout)
        check_seconds("poll_interval", poll_interval, zero=True)  # before the run is created
        plan = predict_plan(core, model, input, wait, hardware, webhook, extra_body, tags, validate, deadline)
        for t in plan.targets:
            if not t.adapter.capabilities.predict:
                continue
            need_hw = core.needs_hardware(t, hardware)
            for _ in range(_MAX_LOOKUPS):
                req = _lookup_request(core, t, validate, need_hw)
                if req is None:
                    break
                core.add_model_info(t, await self.driver.run(lookup_plan(core, t, req, deadline)))
        try:
            prediction: Prediction = await self.driver.run(plan)
        except APITimeoutError as e:
            if timeout is None:
                raise
            raise _create_timed_out(e, timeout) from e
        prediction._bind(client, plan.tags)  # with the enclosing ck.tags() blocks' tags
        if wait:
            try:
                return await self.wait(prediction, timeout, poll_interval, cancel_on_timeout, progress, deadline)
            except ProviderError as e:
                _note_still_running(e, prediction)
                raise
        if prediction.done:
            await self._ended(prediction)
        return prediction

    async def _ended(self, prediction: Prediction) -> None:
        # A row already written stays inline: nothing to write.
        await self.driver.ledger(_ended_step(self.core, prediction), offload=not prediction._recorded)

    async def refresh(self, prediction: Prediction, **unknown: Never) -> Prediction:
        """:meth:`Predictions.refresh`, awaited.

        Raises:
            InvalidRequestError: An argument it does not take (the message names the fix).
            ProviderError: The host failed after retries.
        """
        if unknown:
            refuse(unknown, self.refresh)
        fresh: Prediction = await self.driver.run(lifecycle_plan(self.core, prediction, "get"))
        if fresh.done:
            await self._ended(fresh)
        return fresh

    async def cancel(self, prediction: Prediction, **unknown: Never) -> Prediction:
        """:meth:`Predictions.cancel`, awaited.

        Raises:
            InvalidRequestError: An argument it does not take (the message names the fix).
            ProviderError: The host refused or failed.
        """
        if unknown:
            refuse(unknown, self.cancel)
        fresh: Prediction = await self.driver.run(lifecycle_plan(self.core, prediction, "cancel"))
        if fresh.done and self.core.adapter(fresh.provider).needs_final_state(fresh):
            fresh = await self.driver.run(lifecycle_plan(self.core, fresh, "get"))  # its billed run time
        if fresh.done:
            await self._ended(fresh)
        return fresh

    async def wait(
        self,
        prediction: Prediction,
        timeout: float | None = None,
        poll_interval: float | None = None,
        cancel_on_timeout: bool = True,
        progress: bool | Console = False,
        deadline: float | None = None,
        **unknown: Never,
    ) -> Prediction:
        """:meth:`Predictions.wait`, awaited.

        Raises:
            InvalidRequestError: An argument it does not take (the message names the fix).
            PredictionFailedError: The run failed (its cost is in the ledger).
            PredictionTimeoutError: ``timeout`` passed first.
            ProviderError: The host failed after retries.
        """
        if unknown:
            refuse(unknown, self.wait)
        waiting = _Waiting(self.core, prediction, timeout, poll_interval, progress, deadline)
        try:
            while not prediction.done:
                waiting.show(prediction)
                if waiting.timed_out():
                    if cancel_on_timeout:
                        prediction = await self.cancel(prediction)
                    raise _timed_out(prediction, timeout)
                pause = waiting.pause(prediction)
                if pause is not None:
                    await self.core.retry.async_sleep(pause)
                prediction = await self.refresh(prediction)
            await self._ended(prediction)
        finally:
            waiting.close(prediction)
        if prediction.status == "failed":
            raise _failed(prediction)
        return prediction

    def stream(self, prediction: Prediction, poll_interval: float | None = None,
               **unknown: Never) -> AsyncPredictionStream:
        """:meth:`Predictions.stream`: ``async for piece in client.predictions.stream(p)``.

        Raises:
            InvalidRequestError: An argument it does not take (the message names the fix).
            UnsupportedCapabilityError: The host, or this model, does not stream (before any request).
        """
        if unknown:
            refuse(unknown, self.stream)
        opening = prediction_stream_plan(self.core, prediction)
        return AsyncPredictionStream(self, _PredictionStreamState(self.core, prediction, opening, poll_interval))

    async def download(self, url: str, provider: str = "download", model: str | None = None, *,
                       public_only: bool = True, **unknown: Never) -> bytes:
        """:meth:`Predictions.download`, awaited.

        Raises:
            InvalidRequestError: An argument it does not take (the message names the fix).
            APIStatusError: The host answered with an error status (``NotFoundError`` for 404 ...).
            APITimeoutError, APIConnectionError: The download timed out or broke.
            MalformedResponseError: The file is larger than ``MAX_DOWNLOAD_BYTES``, or redirects loop.
        """
        if unknown:
            refuse(unknown, self.download)
        from . import _outputs

        for _ in range(MAX_DOWNLOAD_REDIRECTS + 1):
            req = _outputs.download_request(url, self.core.settings.timeout, public_only=public_only)
            async with self.driver.transport.stream(req, provider, model) as (head, chunks):
                target = _outputs.redirect_to(head, url, provider, model)
                if target is None:
                    if head.status >= ERROR_STATUS:
                        raise _outputs.status_error(head, url, provider, model)
                    sink = _outputs.Sink(head, url, provider, model)
                    async for data in chunks:
                        sink.add(data)
                    return sink.content()
            url = target
        raise _outputs.too_many_redirects(url, provider, model)


class Predicting:
    """``predict()`` on the sync :class:`~computekit.Client` (the lifecycle is ``client.predictions``)."""

    predictions: Predictions

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
        **unknown: Never,
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
        if unknown:
            refuse(unknown, self.predict)
        return self.predictions.create(
            model, input, wait=wait, timeout=timeout, poll_interval=poll_interval, hardware=hardware,
            webhook=webhook, cancel_on_timeout=cancel_on_timeout, validate=validate, progress=progress,
            extra_body=extra_body, tags=tags, client=self,
        )


class AsyncPredicting:
    """``predict()`` on :class:`~computekit.AsyncClient`, awaited (the lifecycle is ``client.predictions``)."""

    predictions: AsyncPredictions

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
        **unknown: Never,
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
        if unknown:
            refuse(unknown, self.predict)
        return await self.predictions.create(
            model, input, wait=wait, timeout=timeout, poll_interval=poll_interval, hardware=hardware,
            webhook=webhook, cancel_on_timeout=cancel_on_timeout, validate=validate, progress=progress,
            extra_body=extra_body, tags=tags, client=self,
        )
