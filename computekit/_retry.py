"""The one retry loop: which errors are retried, and how long to wait (pure decisions; tenacity runs them).

Retried: 408, 429, 5xx and 529 responses, connection failures and timeouts. A server's ``x-should-retry``
header overrides the status either way. A request that starts billed work (a prediction's create) without an
idempotency key is sent *at most once*: it is retried only when the host surely never acted on it (a refusal
such as a 429, a connection that was never made: ``ProviderError.maybe_processed`` is False); a 5xx, a reset or
a read timeout may have started a job, so they are not retried.

Waits honour ``retry-after-ms`` then ``Retry-After`` (seconds or an HTTP date) up to a cap, and otherwise back off
exponentially with full jitter. A server that asks for more than the cap is not retried inside the call: the error
is raised at once (routing falls back to another target).
Sleep and clock are injectable, so tests never sleep.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._config import RetryConfig
from ._exceptions import APIConnectionError, APIStatusError, APITimeoutError

if TYPE_CHECKING:
    import tenacity

__all__ = ["RetryPolicy", "retry_after_seconds"]

_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 529})
_MAX_SANE_RETRY_AFTER_S = 86_400.0
"""A server asking for more than a day is broken (a year-9999 date, a typo): treat it as no answer, and back off."""


def retry_after_seconds(headers: dict[str, str], now: Callable[[], float] = time.time) -> float | None:
    """The wait a server asked for, in seconds; ``None`` when absent or not a sane value.

    ``retry-after-ms`` wins over ``retry-after``; the latter is seconds or an HTTP date. Negative, infinite,
    NaN, unparseable and absurd values (more than a day) are ignored (the caller backs off instead).
    """
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            v = float(ms) / 1000
        except ValueError:
            v = math.nan
        if math.isfinite(v) and 0 <= v <= _MAX_SANE_RETRY_AFTER_S:
            return v
    ra = headers.get("retry-after")
    if ra is None:
        return None
    try:
        v = float(ra)
    except ValueError:
        import email.utils

        try:
            when = email.utils.parsedate_to_datetime(ra)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        v = max(when.timestamp() - now(), 0.0)
    return v if math.isfinite(v) and 0 <= v <= _MAX_SANE_RETRY_AFTER_S else None


@dataclass
class RetryPolicy:
    """When to retry and how long to wait. ``sleep``/``asleep``/``rng``/``now`` are injectable for tests."""

    config: RetryConfig
    sleep: Callable[[float], None] = time.sleep
    asleep: Callable[[float], Awaitable[None]] | None = None
    rng: random.Random = field(default_factory=random.Random)
    now: Callable[[], float] = time.time

    def should_retry(self, exc: BaseException, idempotent: bool = False, at_most_once: bool = False) -> bool:
        """Whether ``exc`` is worth another try on the same target.

        A 409 (the server saw a conflicting request, typically our own earlier try) is retried only when the
        request carries an idempotency key, so that the retry cannot be billed twice.

        ``at_most_once``: the request starts billed work and carries no idempotency key (a prediction's create):
        retried only when the host surely did not act on it (``maybe_processed`` is False: a refusal such as a
        429, a connection never made).
        """
        if isinstance(exc, APIStatusError):
            hint = exc.headers.get("x-should-retry")
            if hint == "true":
                return True
            if hint == "false":
                return False
            if exc.status == 409:
                return idempotent
            if at_most_once and exc.maybe_processed:
                return False  # a 5xx may come from a proxy after the host accepted (and started) the job
            if exc.status not in _RETRY_STATUSES and not (exc.status is not None and exc.status >= 500):
                return False
            wait = retry_after_seconds(exc.headers, self.now)
            # Asked to wait longer than we will inside a call: give up here; routing can fall back.
            return wait is None or wait <= self.config.retry_after_cap
        if not isinstance(exc, APITimeoutError | APIConnectionError):
            return False
        return not (at_most_once and exc.maybe_processed)

    def wait_for(self, exc: BaseException | None, attempt: int) -> float:
        """Seconds to wait before try ``attempt + 1`` (``attempt`` counts from 1)."""
        if isinstance(exc, APIStatusError):
            wait = retry_after_seconds(exc.headers, self.now)
            if wait is not None and wait <= self.config.retry_after_cap:
                return wait
        ceiling = min(self.config.backoff_max, self.config.backoff_initial * (2 ** (attempt - 1)))
        return self.rng.uniform(0, ceiling)

    # tenacity glue ---------------------------------------------------------------------------------

    def first_wait(
        self, exc: BaseException, *, idempotent: bool = False, remaining: Callable[[], float] | None = None,
        at_most_once: bool = False,
    ) -> float | None:
        """The wait before the second try after a first try that raised ``exc``; ``None``: no retry at all
        (not retryable, no retries configured, or the wait would overrun the call's deadline)."""
        if self.config.max_retries < 1 or not self.should_retry(exc, idempotent, at_most_once):
            return None
        wait = self.wait_for(exc, 1)
        if remaining is not None and wait >= remaining():
            return None
        return wait

    def _kwargs(self, done: int, idempotent: bool, remaining: Callable[[], float] | None,
                at_most_once: bool = False) -> dict[str, Any]:
        import tenacity

        def wait(state: tenacity.RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            return self.wait_for(exc, state.attempt_number + done)

        stop: Any = tenacity.stop_after_attempt(self.config.max_retries + 1 - done)
        if remaining is not None:
            # tenacity computes the wait before asking ``stop``: give up rather than sleep past the deadline.
            left = remaining

            class _PastDeadline(tenacity.stop.stop_base):
                def __call__(self, state: tenacity.RetryCallState) -> bool:
                    return (state.upcoming_sleep or 0) >= left()

            stop = tenacity.stop_any(stop, _PastDeadline())
        return {
            "stop": stop,
            "retry": tenacity.retry_if_exception(lambda e: self.should_retry(e, idempotent, at_most_once)),
            "wait": wait,
            "reraise": True,
        }

    def retrying(
        self, done: int = 0, *, idempotent: bool = False, remaining: Callable[[], float] | None = None,
        at_most_once: bool = False,
    ) -> tenacity.Retrying:
        """A tenacity loop for one request (sync), after ``done`` tries already made.

        Args:
            done: Tries already made outside the loop.
            idempotent: The request carries an idempotency key (a 409 may then be retried).
            remaining: Seconds left before the call's deadline; a wait that would overrun it ends the loop.
            at_most_once: The request starts billed work without an idempotency key (see :meth:`should_retry`).
        """
        import tenacity

        return tenacity.Retrying(sleep=self.sleep, **self._kwargs(done, idempotent, remaining, at_most_once))

    def aretrying(
        self, done: int = 0, *, idempotent: bool = False, remaining: Callable[[], float] | None = None,
        at_most_once: bool = False,
    ) -> tenacity.AsyncRetrying:
        """A tenacity loop for one request (async), after ``done`` tries already made (see :meth:`retrying`)."""
        import tenacity

        return tenacity.AsyncRetrying(sleep=self.async_sleep,
                                      **self._kwargs(done, idempotent, remaining, at_most_once))

    async def async_sleep(self, seconds: float) -> None:
        """The injected async sleep, else :func:`asyncio.sleep`."""
        if self.asleep is not None:
            await self.asleep(seconds)
        else:
            import asyncio

            await asyncio.sleep(seconds)
