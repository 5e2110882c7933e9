"""Which target to try next, and what a failure means for the others (pure state, an injectable clock).

The router keeps, per target (``provider:model``): recent failures, a cooldown end, and a moving average of
latency. The client asks it to *order* a call's targets (strategy, then cooled-down targets last) and tells it
how each attempt ended. It never sleeps and never does I/O.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING

from .._config import RoutingConfig
from .._constants import TARGETS_KEPT
from .._exceptions import (
    AuthenticationError,
    BadRequestError,
    ContentFilteredError,
    ContextWindowExceededError,
    PermissionDeniedError,
    ProviderError,
    StructuredOutputError,
)
from .._retry import retry_after_seconds

if TYPE_CHECKING:
    from .._core import Target

__all__ = ["Action", "Router"]

_EWMA_WEIGHT = 0.3
"""Weight of the newest latency in the moving average: recent enough to follow a slowing host."""


class Action(Enum):
    """What a failed target means for the rest of the plan."""

    RAISE = "raise"
    """The request itself is wrong: it would fail everywhere."""
    FALLBACK = "fallback"
    LARGER_CONTEXT = "larger-context"
    """Fall back only to targets whose context window is larger."""


@dataclass
class _State:
    failures: deque[float] = field(default_factory=deque)
    cooled_until: float = 0.0
    last_failure: float = 0.0
    latency: float | None = None


class Router:
    """Per-client routing state: cooldowns and observed latency.

    Args:
        config: The ``[routing]`` settings.
        clock: Monotonic seconds (tests inject a fake one).
        rng: Random source for the ``weighted`` strategy.
    """

    def __init__(
        self,
        config: RoutingConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.rng = rng or random.Random()
        self._states: dict[str, _State] = {}
        self._lock = threading.Lock()

    def _state(self, key: str) -> _State:
        """``key``'s state, made if new (call with the lock held). At most :data:`TARGETS_KEPT` are kept: past it,
        the oldest made that is not cooling down is forgotten (a target cooling down is skipped by what it
        remembers; the others only lose their latency, measured again)."""
        st = self._states.get(key)
        if st is None:
            if len(self._states) >= TARGETS_KEPT:
                now = self.clock()
                states = self._states
                oldest = next((k for k, s in states.items() if s.cooled_until <= now), next(iter(states)))
                del states[oldest]
            st = self._states[key] = _State()
        return st

    # ----------------------------------------------------------------------------------------- ordering

    def cooling(self, target: Target) -> bool:
        """Whether ``target`` is cooled down now."""
        st = self._states.get(_key(target))
        return st is not None and st.cooled_until > self.clock()

    def order(
        self,
        targets: Sequence[Target],
        strategy: str = "ordered",
        *,
        estimate: Callable[[Target], Decimal | None] | None = None,
        weights: Sequence[float] | None = None,
    ) -> list[Target]:
        """The targets in the order to try them: by ``strategy``, cooled-down targets skipped.

        When every target is cooled down, they are all returned, least recently failed first: trying the one
        most likely to have recovered beats failing without a try.
        """
        ranked = self._rank(list(targets), strategy, estimate, weights)
        now = self.clock()
        with self._lock:
            ready = [t for t in ranked if self._state(_key(t)).cooled_until <= now]
            if ready:
                return ready
            return sorted(ranked, key=lambda t: self._state(_key(t)).last_failure)

    def _rank(
        self,
        targets: list[Target],
        strategy: str,
        estimate: Callable[[Target], Decimal | None] | None,
        weights: Sequence[float] | None,
    ) -> list[Target]:
        if strategy == "cheapest" and estimate is not None:
            costs = [estimate(t) for t in targets]
            # Unknown prices rank last (in their listed order): never assume an unpriced target is free.
            order = sorted(range(len(targets)), key=lambda i: (costs[i] is None, costs[i] or Decimal(0), i))
            return [targets[i] for i in order]
        if strategy == "fastest":
            # Never-measured targets go after measured ones, in their listed order.
            lat = [self.latency(t) for t in targets]
            order = sorted(range(len(targets)), key=lambda i: (lat[i] is None, lat[i] or 0.0, i))
            return [targets[i] for i in order]
        if strategy == "weighted" and targets:
            w = list(weights) if weights else [1.0] * len(targets)
            first = self.rng.choices(range(len(targets)), weights=w[: len(targets)])[0]
            return [targets[first], *(t for i, t in enumerate(targets) if i != first)]
        return targets

    # ----------------------------------------------------------------------------------------- outcomes

    def succeeded(self, target: Target, latency_s: float) -> None:
        """Record a success: its latency feeds ``fastest``; the target's failure history is cleared."""
        with self._lock:
            st = self._state(_key(target))
            st.failures.clear()
            st.cooled_until = 0.0
            st.latency = latency_s if st.latency is None else (
                _EWMA_WEIGHT * latency_s + (1 - _EWMA_WEIGHT) * st.latency
            )

    def failed(self, target: Target, error: ProviderError, retry_after_cap: float) -> Action:
        """Record a target's final failure (after its retries) and say what it means for the plan."""
        now = self.clock()
        cfg = self.config
        with self._lock:
            st = self._state(_key(target))
            st.last_failure = now
            asked = retry_after_seconds(error.headers) if error.headers else None
            if asked is not None and asked > retry_after_cap:
                # The server asked for more than we wait inside a call: honour it across calls instead.
                st.cooled_until = max(st.cooled_until, now + asked)
            elif isinstance(error, AuthenticationError | PermissionDeniedError):
                st.cooled_until = max(st.cooled_until, now + cfg.cooldown_s)
            elif not isinstance(error, BadRequestError | StructuredOutputError):  # the host worked: no cooldown
                st.failures.append(now)
                while st.failures and st.failures[0] < now - cfg.failure_window_s:
                    st.failures.popleft()
                if len(st.failures) >= cfg.failures_to_cool:
                    st.cooled_until = max(st.cooled_until, now + cfg.cooldown_s)
        return self.action(error)

    def action(self, error: ProviderError) -> Action:
        """What ``error`` means for the remaining targets."""
        if isinstance(error, ContextWindowExceededError):
            return Action.LARGER_CONTEXT
        if isinstance(error, StructuredOutputError):
            return Action.FALLBACK if self.config.on_invalid_output == "fallback" else Action.RAISE
        if isinstance(error, ContentFilteredError):
            return Action.FALLBACK if self.config.on_content_filter == "fallback" else Action.RAISE
        if isinstance(error, BadRequestError):
            return Action.RAISE
        return Action.FALLBACK

    def latency(self, target: Target) -> float | None:
        """The moving average of ``target``'s observed latency, seconds."""
        st = self._states.get(_key(target))
        return st.latency if st else None


def _key(target: Target) -> str:
    return f"{target.provider}:{target.model}"
