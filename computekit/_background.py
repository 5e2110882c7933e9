""":class:`BackgroundResponse`: the handle of a completion running in the provider's background (plain data).

``client.complete(..., background=True)`` returns one at once; ``client.responses`` (the lifecycle, in
:mod:`computekit._background_client`) polls, cancels and re-attaches it. The handle's own ``wait()`` and friends
are thin conveniences over that lifecycle, like :class:`~computekit.Prediction`'s.
"""

from __future__ import annotations

from typing import Any, Generic, Literal

from pydantic import Field, PrivateAttr

from ._display import Shown, preview
from ._types import (
    Attempt,
    Completion,
    Cost,
    ParsedT,
    _adopting,
    _async_adopting,
    _cost_shown,
    _lifecycle_of,
    _Model,
    _Readable,
)

__all__ = ["BACKGROUND_ENDED", "BackgroundResponse", "BackgroundStatus"]

BackgroundStatus = Literal["queued", "in_progress", "completed", "failed", "cancelled", "incomplete"]
"""The provider's own words for where a background response stands."""
BACKGROUND_ENDED: frozenset[str] = frozenset({"completed", "failed", "cancelled", "incomplete"})


class BackgroundResponse(_Readable, _Model, Generic[ParsedT]):
    """A completion running in the provider's background (``complete(..., background=True)``).

    Poll it with ``client.responses.wait(h)`` (or ``h.wait()``); a response that has ended is priced and written
    to the ledger once, whichever call saw it end (in this process or another: the row is keyed by its id).

    Attributes:
        id: The provider's id for the response (``resp_...``).
        provider: The provider that runs it.
        model: The model asked for.
        status: ``queued``, ``in_progress``, ``completed``, ``failed``, ``cancelled`` or ``incomplete``.
        completion: The final :class:`~computekit.Completion` (text, usage, cost) once it has ended; a failed or
            cancelled response keeps what it produced and the usage it reported.
        error: The provider's error object, when it failed.
        attempts: The attempt that submitted it (its outcome and cost set when it ends).
    """

    id: str
    provider: str
    model: str
    status: BackgroundStatus
    completion: Completion[ParsedT] | None = None
    error: Any = None
    attempts: list[Attempt] = Field(default_factory=list)
    raw: Any = Field(default=None, repr=False)
    """The provider's last response object (parsed JSON)."""
    _client: Any = PrivateAttr(default=None)
    _recorded: bool = PrivateAttr(default=False)
    _tags: Any = PrivateAttr(default=None)
    _output: Any = PrivateAttr(default=None)
    """``response_format``'s type, when one was given: the final text is validated into it."""
    _failure: Any = PrivateAttr(default=None)
    """A failed response's error, typed by what it carries (``RateLimitError``, ``ServerError`` ...)."""

    @property
    def done(self) -> bool:
        """Whether the response has ended (completed, failed, cancelled or incomplete)."""
        return self.status in BACKGROUND_ENDED

    @property
    def handle(self) -> str:
        """``provider:id``: what ``client.responses.retrieve()`` takes to follow it from elsewhere."""
        return f"{self.provider}:{self.id}"

    @property
    def target(self) -> str:
        """``provider:model``."""
        return f"{self.provider}:{self.model}"

    @property
    def in_background(self) -> bool | None:
        """Whether the provider says it ran in the background (``None``: its answer does not say). One answered
        in the foreground was billed, and recorded, by the call that created it."""
        flag = self.raw.get("background") if isinstance(self.raw, dict) else None
        return flag if isinstance(flag, bool) else None

    @property
    def cost(self) -> Cost:
        """The final cost (once it has ended and been priced)."""
        if self.completion is None:
            return Cost.unknown(f"the response is {self.status}: not priced until it ends")
        return self.completion.cost

    @property
    def text(self) -> str | None:
        """The final text, once it has ended."""
        return None if self.completion is None else self.completion.text

    def _facts(self) -> list[tuple[str, Any]]:
        facts: list[tuple[str, Any]] = [("target", Shown(self.target)), ("id", self.id), ("status", self.status)]
        if self.completion is not None and self.completion.text:
            facts.append(("text", preview(self.completion.text)))
        if self.error:
            facts.append(("error", preview(self.error)))
        return [*facts, ("cost", _cost_shown(self.cost) if self.done else Shown("not ended"))]

    def _bind(self, client: Any, tags: Any, output: Any) -> BackgroundResponse[ParsedT]:
        """Attach the client that follows this response, the tags its ledger row gets, and its output type."""
        self._client, self._tags, self._output = client, tags, output
        return self

    def _carry_from(self, old: BackgroundResponse[Any]) -> BackgroundResponse[ParsedT]:
        """A fresh state keeps what the provider does not send again: the client, tags, output type, the
        model asked for, the submitting attempt, and whether it is in the ledger."""
        self._client, self._tags, self._output = old._client, old._tags, old._output
        self._recorded = old._recorded
        self.attempts = old.attempts
        if old.model:
            self.model = old.model
            if self.completion is not None:
                self.completion.model = old.model
        return self

    def _lifecycle(self, method: str, want_async: bool) -> Any:
        if self._client is None:
            raise RuntimeError("this response is not attached to a client (it was built by hand)")
        return _lifecycle_of(self._client.responses, "background response", "h", method, want_async)

    def refresh(self) -> BackgroundResponse[ParsedT]:
        """Fetch the latest state, in place (``client.responses.refresh(h)``).

        Raises:
            InvalidRequestError: It came from an :class:`~computekit.AsyncClient` (``await h.async_refresh()``).
            ProviderError: The provider failed after retries.
        """
        ns = self._lifecycle("refresh", False)
        return _adopting(self, lambda: ns.refresh(self), "response")

    def wait(self, timeout: float | None = None, poll_interval: float | None = None,
             progress: Any = False) -> BackgroundResponse[ParsedT]:
        """Poll until it ends, in place (``client.responses.wait(h)``); on timeout it is cancelled.

        Raises:
            InvalidRequestError: It came from an :class:`~computekit.AsyncClient` (``await h.async_wait()``).
            BackgroundFailedError: It failed (what it was billed is in the ledger).
            BackgroundTimeoutError: ``timeout`` passed first (it was cancelled).
            ProviderError: The provider failed after retries.
        """
        ns = self._lifecycle("wait", False)
        return _adopting(self, lambda: ns.wait(self, timeout, poll_interval, progress=progress), "response")

    def cancel(self) -> BackgroundResponse[ParsedT]:
        """Cancel it on the provider, in place (``client.responses.cancel(h)``).

        Raises:
            InvalidRequestError: It came from an :class:`~computekit.AsyncClient` (``await h.async_cancel()``).
            ProviderError: The provider refused or failed.
        """
        ns = self._lifecycle("cancel", False)
        return _adopting(self, lambda: ns.cancel(self), "response")

    async def async_refresh(self) -> BackgroundResponse[ParsedT]:
        """:meth:`refresh` for async clients.

        Raises:
            InvalidRequestError: It came from a sync :class:`~computekit.Client` (``h.refresh()``).
            ProviderError: The provider failed after retries.
        """
        ns = self._lifecycle("refresh", True)
        return await _async_adopting(self, lambda: ns.refresh(self), "response")

    async def async_wait(self, timeout: float | None = None, poll_interval: float | None = None,
                         progress: Any = False) -> BackgroundResponse[ParsedT]:
        """:meth:`wait` for async clients.

        Raises:
            InvalidRequestError: It came from a sync :class:`~computekit.Client` (``h.wait()``).
            BackgroundFailedError: It failed (what it was billed is in the ledger).
            BackgroundTimeoutError: ``timeout`` passed first (it was cancelled).
        """
        ns = self._lifecycle("wait", True)
        return await _async_adopting(self, lambda: ns.wait(self, timeout, poll_interval, progress=progress),
                                     "response")

    async def async_cancel(self) -> BackgroundResponse[ParsedT]:
        """:meth:`cancel` for async clients.

        Raises:
            InvalidRequestError: It came from a sync :class:`~computekit.Client` (``h.cancel()``).
            ProviderError: The provider refused or failed.
        """
        ns = self._lifecycle("cancel", True)
        return await _async_adopting(self, lambda: ns.cancel(self), "response")
