"""The attempt driver: the one place where a planned call is reserved, sent, parsed, retried, routed and
recorded. Written once per I/O flavour (:class:`SyncDriver`, :class:`AsyncDriver`, the same method names); what
they decide with is pure (:mod:`computekit._attempt`), what they write is :mod:`computekit._bookkeeping`'s.

Every verb goes through :meth:`SyncDriver.run` (``complete``, ``embed``, ``rerank``, ``predict`` and its lookups,
polls and cancels, every fine-tuning request), streams included: a plan with ``stream=True`` ends its attempt when
the head arrives, and the stream reads the body inside :meth:`SyncDriver.guard`, which does the same bookkeeping.

One try (``_once``): fit it into the deadlines; reserve its worst case under a budget (before any HTTP); send;
check the status and parse (anything the parser raises becomes a ``MalformedResponseError``); price it. Then:

- success: the row is written, the reservation settled by it, the router told the latency;
- a ``ProviderError``: an error row (its cost as the adapter knows it), then tenacity decides on a retry, and
  the router on a fallback once the retries are spent;
- the caller stops it after it was sent (Ctrl-C, a canceled task, a stream closed early): a ``canceled`` row, the
  provider had the request (billed, usually unpriced), and the interruption goes on up;
- anything else (a bug): the reservation is released, nothing is recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar, cast

from ._attempt import AttemptFacts, Call, Opened, answer, check_head, malformed_from, note_not_retried, renew_auth
from ._bookkeeping import canceled, failed, price_success, succeeded
from ._core import ledger_call
from ._exceptions import APITimeoutError, BudgetExceededError, ComputeKitError, ProviderError
from ._plan import Plan

if TYPE_CHECKING:
    from types import TracebackType

    from ._core import Core
    from ._transport import AsyncTransport, SyncTransport
    from ._types import Attempt

__all__ = ["AsyncDriver", "SyncDriver"]

_T = TypeVar("_T")


def why_stopped(exc: BaseException) -> str:
    """How the caller stopped a try after it was sent (the ``canceled`` row's error starts with it)."""
    if isinstance(exc, GeneratorExit):
        return "stream closed by the caller"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (KeyboardInterrupt)"
    if type(exc).__name__ == "CancelledError":  # asyncio's, without importing asyncio for a sync client
        return "task canceled"
    return f"stopped ({type(exc).__name__})"


def priced(core: Core, facts: AttemptFacts, result: object) -> Attempt | None:
    """Price a parsed result; a failure to price what the provider reported is a malformed answer."""
    try:
        return price_success(core, facts, result)
    except ComputeKitError:
        raise
    except Exception as e:
        raise malformed_from(facts, None, e) from e


def _stopped(core: Core, facts: AttemptFacts, exc: BaseException) -> None:
    """The bookkeeping of a try that failed or was stopped (sync): see the module docstring."""
    if isinstance(exc, ProviderError):
        failed(core, facts, exc)
        note_not_retried(core, facts, exc)
    elif not isinstance(exc, Exception):  # KeyboardInterrupt, GeneratorExit ...: the caller stopped it
        canceled(core, facts, why_stopped(exc))
    else:
        core.budgets.release(facts.reservation)


async def _astopped(core: Core, facts: AttemptFacts, exc: BaseException) -> None:
    """:func:`_stopped`, awaited: ledger steps run off the event loop when the ledger is remote."""
    if isinstance(exc, ProviderError):
        await ledger_call(core, partial(failed, core, facts, exc), offload=facts.record)
        note_not_retried(core, facts, exc)
    elif not isinstance(exc, Exception):  # CancelledError, KeyboardInterrupt, GeneratorExit ...
        await ledger_call(core, partial(canceled, core, facts, why_stopped(exc)), offload=facts.record)
    else:
        held = facts.reservation
        await ledger_call(core, partial(core.budgets.release, held), offload=held is not None)


class _Guard:
    """:func:`_stopped` around code that goes on reading an answer (a stream's body)."""

    __slots__ = ("core", "facts")

    def __init__(self, core: Core, facts: AttemptFacts) -> None:
        self.core, self.facts = core, facts

    def __enter__(self) -> None:
        return None

    def __exit__(self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc is not None:
            _stopped(self.core, self.facts, exc)


class _AsyncGuard:
    """:func:`_astopped` around code that goes on reading an answer (``async with``)."""

    __slots__ = ("core", "facts")

    def __init__(self, core: Core, facts: AttemptFacts) -> None:
        self.core, self.facts = core, facts

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, typ: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if exc is not None:
            await _astopped(self.core, self.facts, exc)


class SyncDriver:
    """Runs plans over a blocking transport (:class:`~computekit.Client`'s)."""

    def __init__(self, core: Core, transport: SyncTransport) -> None:
        self.core = core
        self.transport = transport

    def run(self, plan: Plan, call: Call | None = None) -> Any:
        """Run ``plan``: each target in turn, each retried as the policy allows, until one answers.

        ``call``: go on with a call already under way (a stream whose body failed before any chunk reached the
        caller falls back to the next target this way).

        Returns:
            The parsed answer; for a ``stream`` plan, the :class:`~computekit._attempt.Opened` stream.

        Raises:
            ProviderError: The one target failed (or the router stops here); AllTargetsFailedError for several.
            BudgetExceededError: Every target was refused by a budget (nothing was sent).
        """
        call = Call(self.core, plan) if call is None else call
        while (facts := call.next()) is not None:
            try:
                # The first try runs before tenacity's loop is built: most calls need no retry, and building the
                # loop on every call cost +54 µs CPU per sequential call and +90 µs per async call (+33%) in an
                # A/B run of the benchmark's complete() workers. Every retry runs in tenacity, from here only.
                try:
                    return self._once(call, facts)
                except ProviderError as e:
                    first = e  # retried outside this handler: a retry's error is not chained to the first one
                return self._retried(call, facts, first)
            except ProviderError as e:
                call.failed(facts, e)
            except BudgetExceededError as e:
                call.refused(facts, e)  # nothing was sent: the next target may fit
        raise call.exhausted()

    def _retried(self, call: Call, facts: AttemptFacts, first: ProviderError) -> Any:
        """The tries after a first one that raised ``first`` (raised again when it is not retried)."""
        retry, remaining = self.core.retry, call.run.remaining_fn()
        wait = retry.first_wait(first, idempotent=facts.idempotent, remaining=remaining,
                                at_most_once=facts.at_most_once)
        if wait is None:
            raise first
        retry.sleep(wait)
        for attempt in retry.retrying(done=1, idempotent=facts.idempotent, remaining=remaining,
                                      at_most_once=facts.at_most_once):
            with attempt:
                renew_auth(facts)
                return self._once(call, facts)
        raise AssertionError("tenacity re-raises the last error")  # pragma: no cover

    def _once(self, call: Call, facts: AttemptFacts) -> Any:
        core, plan, target = self.core, call.plan, facts.target
        call.bound(facts)
        # Budgets: the worst case is reserved before any HTTP, settled by the attempt's row.
        held = core.budgets.reserve(target, facts.request, facts.tags) if plan.record else None
        if held is not None:
            try:
                call.bound(facts)  # the reservation may have waited for the ledger: the deadline counts it
            except APITimeoutError:
                core.budgets.release(held)  # nothing is sent
                raise
        facts.begin(held)
        if plan.stream:
            return self._open(facts)
        try:
            resp = self.transport.send(facts.http, target.provider, target.model)
            result = answer(plan, facts, resp)
            attempt = priced(core, facts, result)
        except BaseException as e:
            _stopped(core, facts, e)
            raise
        succeeded(core, facts, result, attempt)
        return result

    def _open(self, facts: AttemptFacts) -> Opened:
        target = facts.target
        cm = self.transport.stream(facts.http, target.provider, target.model)
        with _Guard(self.core, facts):
            head, body = cm.__enter__()
            try:
                check_head(facts, head)
            except BaseException:
                cm.__exit__(None, None, None)
                raise
        return Opened(facts, head, body, cm)

    def guard(self, facts: AttemptFacts) -> _Guard:
        """The failure bookkeeping of a try, around code that goes on reading its answer (a stream's body)."""
        return _Guard(self.core, facts)

    def settle(self, facts: AttemptFacts, result: object, attempt: Attempt | None) -> None:
        """Record a streamed try that ended well (``attempt``: :func:`priced`, inside the guard)."""
        succeeded(self.core, facts, result, attempt)

    def ledger(self, step: Callable[[], _T], *, offload: bool = True) -> _T:
        """Run a ledger step (recording an ended run or job ...): inline, here."""
        del offload
        return step()

    def run_steps(self, steps: Generator[Plan, Any, _T]) -> _T:
        """Run a generator of plans to its end (a launch made of several requests: upload, then create ...),
        each plan through :meth:`run`, its answer sent back in: the generator's return value."""
        try:
            plan = next(steps)
            while True:
                plan = steps.send(self.run(plan))
        except StopIteration as done:
            return cast(_T, done.value)


class AsyncDriver:
    """Runs plans over a non-blocking transport (:class:`~computekit.AsyncClient`'s): :class:`SyncDriver`'s
    methods, awaited."""

    def __init__(self, core: Core, transport: AsyncTransport) -> None:
        self.core = core
        self.transport = transport

    async def run(self, plan: Plan, call: Call | None = None) -> Any:
        """:meth:`SyncDriver.run`, awaited.

        Raises:
            ProviderError: The one target failed (or the router stops here); AllTargetsFailedError for several.
            BudgetExceededError: Every target was refused by a budget (nothing was sent).
        """
        call = Call(self.core, plan) if call is None else call
        while (facts := call.next()) is not None:
            try:
                try:  # the first try before tenacity's loop, as in SyncDriver.run
                    return await self._once(call, facts)
                except ProviderError as e:
                    first = e
                return await self._retried(call, facts, first)
            except ProviderError as e:
                call.failed(facts, e)
            except BudgetExceededError as e:
                call.refused(facts, e)  # nothing was sent: the next target may fit
        raise call.exhausted()

    async def _retried(self, call: Call, facts: AttemptFacts, first: ProviderError) -> Any:
        """:meth:`SyncDriver._retried`, awaited."""
        retry, remaining = self.core.retry, call.run.remaining_fn()
        wait = retry.first_wait(first, idempotent=facts.idempotent, remaining=remaining,
                                at_most_once=facts.at_most_once)
        if wait is None:
            raise first
        await retry.async_sleep(wait)
        async for attempt in retry.aretrying(done=1, idempotent=facts.idempotent, remaining=remaining,
                                             at_most_once=facts.at_most_once):
            with attempt:
                renew_auth(facts)
                return await self._once(call, facts)
        raise AssertionError("tenacity re-raises the last error")  # pragma: no cover

    async def _once(self, call: Call, facts: AttemptFacts) -> Any:
        core, plan, target = self.core, call.plan, facts.target
        call.bound(facts)
        # Budgets: reserved before any HTTP, off the event loop when the ledger is remote (ledger_call); the
        # steps of a plan that records nothing stay inline.
        held = await ledger_call(core, partial(core.budgets.reserve, target, facts.request, facts.tags)) \
            if plan.record else None
        if held is not None:
            try:
                call.bound(facts)  # the reservation may have waited for the ledger: the deadline counts it
            except APITimeoutError:
                await ledger_call(core, partial(core.budgets.release, held))  # nothing is sent
                raise
        facts.begin(held)
        if plan.stream:
            return await self._open(facts)
        try:
            resp = await self.transport.send(facts.http, target.provider, target.model)
            result = answer(plan, facts, resp)
            attempt = priced(core, facts, result)
        except BaseException as e:
            await _astopped(core, facts, e)
            raise
        await ledger_call(core, partial(succeeded, core, facts, result, attempt), offload=plan.record)
        return result

    async def _open(self, facts: AttemptFacts) -> Opened:
        target = facts.target
        cm = self.transport.stream(facts.http, target.provider, target.model)
        async with _AsyncGuard(self.core, facts):
            head, body = await cm.__aenter__()
            try:
                check_head(facts, head)
            except BaseException:
                await cm.__aexit__(None, None, None)
                raise
        return Opened(facts, head, body, cm)

    def guard(self, facts: AttemptFacts) -> _AsyncGuard:
        """:meth:`SyncDriver.guard`: ``async with``."""
        return _AsyncGuard(self.core, facts)

    async def settle(self, facts: AttemptFacts, result: object, attempt: Attempt | None) -> None:
        """:meth:`SyncDriver.settle`, off the event loop when the ledger is remote."""
        await ledger_call(self.core, partial(succeeded, self.core, facts, result, attempt), offload=facts.record)

    async def ledger(self, step: Callable[[], _T], *, offload: bool = True) -> _T:
        """Run a ledger step off the event loop when the ledger is remote (:func:`~computekit._core.ledger_call`)."""
        return await ledger_call(self.core, step, offload=offload)

    async def run_steps(self, steps: Generator[Plan, Any, _T]) -> _T:
        """:meth:`SyncDriver.run_steps`, each plan awaited."""
        try:
            plan = next(steps)
            while True:
                plan = steps.send(await self.run(plan))
        except StopIteration as done:
            return cast(_T, done.value)
