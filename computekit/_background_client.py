"""Background responses on the clients: ``complete(..., background=True)`` submits through
:class:`BackgroundResponses` (or :class:`AsyncBackgroundResponses`), reached as ``client.responses``: ``wait``,
``refresh``, ``cancel`` and ``retrieve``, the same names sync and async. A
:class:`~computekit.BackgroundResponse` is plain data; its own ``wait()`` and friends call these.

Every request (the submit, each poll, a cancel) goes through the client's driver, so it is retried like any other
call (a 5xx on a poll is retried: polls and cancels are safe to resend; the submit is resent only when the
provider surely never saw it). The submit reserves the call's worst case under a budget; the reservation is held
in the ledger under the response's key until the response ends, when it is priced from the usage it reported and
written to the ledger once, keyed by its id, settling the reservation with it (another process that follows it
settles it the same way; a second ``wait()`` writes nothing more). What both flavours share is
pure and written once here (:class:`_Polling`, the errors).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, Never

from ._arguments import refuse
from ._background import BackgroundResponse
from ._bookkeeping import background_ended
from ._constants import DEFAULT_BACKGROUND_POLL_INTERVAL_S, MAX_BACKGROUND_POLL_INTERVAL_S
from ._core import check_seconds, ledger_call
from ._exceptions import BackgroundFailedError, BackgroundTimeoutError, BadRequestError, ConflictError
from ._plan import Plan
from ._plans import background_lifecycle_plan
from ._structured import parse_output
from ._targets import Target, split_model_id
from .adapters._base import CompleteRequest

if TYPE_CHECKING:
    from rich.console import Console

    from ._core import Core
    from ._driver import AsyncDriver, SyncDriver

__all__ = ["AsyncBackgroundResponses", "BackgroundResponses"]

_ALREADY_ENDED = (BadRequestError, ConflictError)
"""What a cancel of a response that has just ended gets: its state is fetched instead."""


class _Polling:
    """One wait for a background response to end (pure, shared by both clients): when to give up, how long to
    pause before the next poll, and the progress line."""

    def __init__(self, core: Core, handle: BackgroundResponse[Any], timeout: float | None,
                 poll_interval: float | None, progress: bool | Console) -> None:
        self.clock = core.router.clock
        check_seconds("timeout", timeout, zero=True)
        check_seconds("poll_interval", poll_interval, zero=True)
        self.give_up = None if timeout is None else self.clock() + timeout
        self.fixed = poll_interval is not None
        # None is "not given"; 0 is a real interval (a replayed test that must not sleep).
        self.interval = DEFAULT_BACKGROUND_POLL_INTERVAL_S if poll_interval is None else poll_interval
        self.display: Any = None
        if progress is not False:
            from ._progress import PredictionProgress

            self.display = PredictionProgress(progress, self.clock, handle.target)

    def show(self, handle: BackgroundResponse[Any]) -> None:
        if self.display is not None:
            self.display.update(handle)

    def timed_out(self) -> bool:
        return self.give_up is not None and self.clock() >= self.give_up

    def pause(self) -> float:
        """Seconds to sleep before the next poll (never past the timeout); the interval grows unless fixed."""
        pause = self.interval if self.give_up is None else min(self.interval, max(self.give_up - self.clock(), 0))
        if not self.fixed:
            self.interval = min(self.interval * 1.5, MAX_BACKGROUND_POLL_INTERVAL_S)
        return pause

    def close(self, handle: BackgroundResponse[Any]) -> None:
        if self.display is not None:
            self.display.close(handle)


def _timed_out(handle: BackgroundResponse[Any], timeout: float | None, cancelled: bool) -> BackgroundTimeoutError:
    what = "it was cancelled" if cancelled else "it keeps running (cancel_on_timeout=False)"
    err = BackgroundTimeoutError(
        f"background response {handle.id} did not end in {timeout} s (status {handle.status}): {what}",
        provider=handle.provider, model=handle.model, request_id=handle.id,
    )
    err.response = handle
    return err


def _outcome(handle: BackgroundResponse[Any]) -> BackgroundResponse[Any]:
    """An ended response as ``wait()`` returns it: a failure raised (typed by its error, as the cause), the answer
    validated into ``response_format``'s type when one was given.

    Raises:
        BackgroundFailedError: It failed.
        StructuredOutputError: Its answer does not fit the type (it was billed: the cost is in the ledger).
    """
    if handle.status == "failed":
        cause = handle._failure
        err = BackgroundFailedError(f"background response {handle.id} failed: {cause or handle.error}",
                                    provider=handle.provider, model=handle.model, body=handle.error,
                                    request_id=handle.id)
        err.response = handle
        raise err from cause
    if handle._output is not None and handle.completion is not None and handle.status != "cancelled":
        parse_output(handle._output, handle.completion)
    return handle


def _target(core: Core, handle: BackgroundResponse[Any]) -> Target:
    return Target(core.adapter(handle.provider), handle.model)


def _ended_step(core: Core, handle: BackgroundResponse[Any]) -> Callable[[], None]:
    """Pricing and recording an ended response, as one ledger step (run inline, or off the event loop)."""
    return partial(background_ended, core, _target(core, handle), handle, handle._tags)


def _retrieve_plan(core: Core, handle_id: str) -> Plan:
    """``retrieve("provider:resp_...")``: a GET of a response submitted elsewhere (its model read from it).

    Raises:
        InvalidRequestError: ``handle_id`` is not ``provider:id``.
        UnsupportedCapabilityError: The provider has no background responses.
    """
    provider, rid = split_model_id(handle_id)
    adapter = core.adapter(provider)
    if not adapter.serves_background():
        raise adapter.unsupported("background")
    http = adapter.build_background_get(rid)
    unknown = CompleteRequest(model="", messages=[], api="responses")
    return Plan("complete.get", [Target(adapter, "")], lambda t: http,
                lambda t, req, resp: t.adapter.parse_background(unknown, resp), None, record=False,
                safe_to_retry=True)


class BackgroundResponses:
    """The lifecycle of background responses on a sync :class:`~computekit.Client`: reached as
    ``client.responses``, never built directly.

    Each method takes a :class:`~computekit.BackgroundResponse` and returns its latest state as a new object; a
    response that has ended is priced and recorded in the ledger once, whichever method saw it end.

    Example::

        h = client.complete("openai:o3-pro", "Prove it.", api="responses", background=True)
        h = client.responses.wait(h, timeout=1800)
        print(h.completion.text, h.cost.total)
    """

    is_async = False

    def __init__(self, core: Core, driver: SyncDriver, client: Any) -> None:
        self.core = core
        self.driver = driver
        self.client = client

    def submit(self, plan: Plan, output: Any) -> BackgroundResponse[Any]:
        """Send a planned background call: what ``Client.complete(..., background=True)`` does; call that."""
        handle: BackgroundResponse[Any] = self.driver.run(plan)
        handle._bind(self.client, plan.tags, output)
        if handle.done:
            self._ended(handle)
        return handle

    def _ended(self, handle: BackgroundResponse[Any]) -> None:
        _ended_step(self.core, handle)()

    def retrieve(self, handle: str, **unknown: Never) -> BackgroundResponse[Any]:
        """Follow a background response submitted elsewhere (another process, yesterday): its latest state; one
        that has ended is priced and recorded once (the ledger row is keyed by its id, so the process that
        submitted it does not write it again). A response answered in the foreground (``"background": false``)
        was recorded by the call that made it: retrieving it records nothing.

        Args:
            handle: ``"provider:id"`` (``"openai:resp_abc123"``; ``h.handle`` gives it).

        Raises:
            InvalidRequestError: ``handle`` is not ``provider:id``, or an argument it does not take.
            UnsupportedCapabilityError: The provider has no background responses (nothing was sent).
            ProviderError: The provider failed (``NotFoundError`` for an unknown id).
        """
        if unknown:
            refuse(unknown, self.retrieve)
        fresh: BackgroundResponse[Any] = self.driver.run(_retrieve_plan(self.core, handle))
        fresh._bind(self.client, None, None)
        if fresh.done and fresh.in_background is not False:  # (a foreground one: its call recorded it)
            self._ended(fresh)
        return fresh

    def refresh(self, response: BackgroundResponse[Any], **unknown: Never) -> BackgroundResponse[Any]:
        """Its latest state (a new object); one that has ended is priced and recorded once.

        Raises:
            InvalidRequestError: An argument it does not take (the message names the fix).
            ProviderError: The provider failed after retries.
        """
        if unknown:
            refuse(unknown, self.refresh)
        fresh: BackgroundResponse[Any] = self.driver.run(background_lifecycle_plan(self.core, response, "get"))
        if fresh.done:
            self._ended(fresh)
        return fresh

    def cancel(self, response: BackgroundResponse[Any], **unknown: Never) -> BackgroundResponse[Any]:
        """Cancel it on the provider; its state after that (a new object), priced and recorded once: a
        cancelled response is billed what it generated before it stopped.

        Raises:
            InvalidRequestError: An argument it does not take (the message names the fix).
            ProviderError: The provider refused or failed.
        """
        if unknown:
            refuse(unknown, self.cancel)
        try:
            fresh: BackgroundResponse[Any] = self.driver.run(
                background_lifecycle_plan(self.core, response, "cancel"))
        except _ALREADY_ENDED:
            fresh = self.refresh(response)  # it ended as it was canceled: its final state, recorded
            if not fresh.done:
                raise
        if fresh.done:
            self._ended(fresh)
        return fresh

    def wait(
        self,
        response: BackgroundResponse[Any],
        timeout: float | None = None,
        poll_interval: float | None = None,
        cancel_on_timeout: bool = True,
        progress: bool | Console = False,
        **unknown: Never,
    ) -> BackgroundResponse[Any]:
        """Poll until it ends (``GET`` its state); the ended response, priced and recorded once.

        Args:
            response: The handle ``complete(..., background=True)`` returned.
            timeout: Seconds to wait; when they pass, it is cancelled (unless ``cancel_on_timeout`` is False)
                and :class:`~computekit.BackgroundTimeoutError` is raised.
            poll_interval: Seconds between polls (default: 1 s, growing to 10 s).
            cancel_on_timeout: Cancel it when ``timeout`` passes, so that nothing keeps billing.
            progress: Show its status and the time waited: ``True`` (on stderr) or a ``rich.console.Console``.

        Raises:
            InvalidRequestError: An argument it does not take, or a bad ``timeout`` / ``poll_interval``.
            BackgroundFailedError: It failed (what it was billed is in the ledger).
            BackgroundTimeoutError: ``timeout`` passed first.
            StructuredOutputError: ``response_format`` was a type and the answer does not fit it (billed).
            ProviderError: The provider failed after retries.
        """
        if unknown:
            refuse(unknown, self.wait)
        polling = _Polling(self.core, response, timeout, poll_interval, progress)
        try:
            while not response.done:
                polling.show(response)
                if polling.timed_out():
                    if cancel_on_timeout:
                        response = self.cancel(response)
                    raise _timed_out(response, timeout, cancel_on_timeout)
                self.core.retry.sleep(polling.pause())
                response = self.refresh(response)
            self._ended(response)
        finally:
            polling.close(response)
        return _outcome(response)


class AsyncBackgroundResponses:
    """The lifecycle of background responses on :class:`~computekit.AsyncClient`: reached as
    ``client.responses``; the methods of :class:`~computekit.BackgroundResponses`, awaited.

    Example::

        h = await client.complete("openai:o3-pro", "Prove it.", api="responses", background=True)
        h = await client.responses.wait(h, timeout=1800)
    """

    is_async = True

    def __init__(self, core: Core, driver: AsyncDriver, client: Any) -> None:
        self.core = core
        self.driver = driver
        self.client = client

    async def submit(self, plan: Plan, output: Any) -> BackgroundResponse[Any]:
        """:meth:`BackgroundResponses.submit`, awaited: call ``AsyncClient.complete(..., background=True)``."""
        handle: BackgroundResponse[Any] = await self.driver.run(plan)
        handle._bind(self.client, plan.tags, output)
        if handle.done:
            await self._ended(handle)
        return handle

    async def _ended(self, handle: BackgroundResponse[Any]) -> None:
        # A row already written stays inline: nothing to write.
        await ledger_call(self.core, _ended_step(self.core, handle), offload=not handle._recorded, keyed=True)

    async def retrieve(self, handle: str, **unknown: Never) -> BackgroundResponse[Any]:
        """:meth:`BackgroundResponses.retrieve`, awaited.

        Raises:
            InvalidRequestError: ``handle`` is not ``provider:id``, or an argument it does not take.
            UnsupportedCapabilityError: The provider has no background responses (nothing was sent).
            ProviderError: The provider failed (``NotFoundError`` for an unknown id).
        """
        if unknown:
            refuse(unknown, self.retrieve)
        fresh: BackgroundResponse[Any] = await self.driver.run(_retrieve_plan(self.core, handle))
        fresh._bind(self.client, None, None)
        if fresh.done and fresh.in_background is not False:  # (a foreground one: its call recorded it)
            await self._ended(fresh)
        return fresh

    async def refresh(self, response: BackgroundResponse[Any], **unknown: Never) -> BackgroundResponse[Any]:
        """:meth:`BackgroundResponses.refresh`, awaited.

        Raises:
            InvalidRequestError: An argument it does not take (the message names the fix).
            ProviderError: The provider failed after retries.
        """
        if unknown:
            refuse(unknown, self.refresh)
        fresh: BackgroundResponse[Any] = await self.driver.run(
            background_lifecycle_plan(self.core, response, "get"))
        if fresh.done:
            await self._ended(fresh)
        return fresh

    async def cancel(self, response: BackgroundResponse[Any], **unknown: Never) -> BackgroundResponse[Any]:
        """:meth:`BackgroundResponses.cancel`, awaited.

        Raises:
            InvalidRequestError: An argument it does not take (the message names the fix).
            ProviderError: The provider refused or failed.
        """
        if unknown:
            refuse(unknown, self.cancel)
        try:
            fresh: BackgroundResponse[Any] = await self.driver.run(
                background_lifecycle_plan(self.core, response, "cancel"))
        except _ALREADY_ENDED:
            fresh = await self.refresh(response)
            if not fresh.done:
                raise
        if fresh.done:
            await self._ended(fresh)
        return fresh

    async def wait(
        self,
        response: BackgroundResponse[Any],
        timeout: float | None = None,
        poll_interval: float | None = None,
        cancel_on_timeout: bool = True,
        progress: bool | Console = False,
        **unknown: Never,
    ) -> BackgroundResponse[Any]:
        """:meth:`BackgroundResponses.wait`, awaited.

        Raises:
            InvalidRequestError: An argument it does not take, or a bad ``timeout`` / ``poll_interval``.
            BackgroundFailedError: It failed (what it was billed is in the ledger).
            BackgroundTimeoutError: ``timeout`` passed first.
            StructuredOutputError: ``response_format`` was a type and the answer does not fit it (billed).
            ProviderError: The provider failed after retries.
        """
        if unknown:
            refuse(unknown, self.wait)
        polling = _Polling(self.core, response, timeout, poll_interval, progress)
        try:
            while not response.done:
                polling.show(response)
                if polling.timed_out():
                    if cancel_on_timeout:
                        response = await self.cancel(response)
                    raise _timed_out(response, timeout, cancel_on_timeout)
                await self.core.retry.async_sleep(polling.pause())
                response = await self.refresh(response)
            await self._ended(response)
        finally:
            polling.close(response)
        return _outcome(response)
