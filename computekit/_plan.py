"""One call, planned: the targets in order, and how to build each one's request and parse its answer.

Pure data, shared by every verb's client code (the completions, predictions and fine-tuning parts alike), so
none of them imports another for it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._tags import check_tags

if TYPE_CHECKING:
    from ._config import RouteConfig
    from ._http import HTTPResponse
    from ._targets import Target

__all__ = ["Plan"]


@dataclass(frozen=True, slots=True)
class Plan:
    """One call, planned (pure): the targets in order, how to build each one's request and parse its answer.

    A new verb plugs in here: give it a plan, and :meth:`SyncDriver.run <computekit._driver.SyncDriver.run>`
    (or the async twin) reserves, sends, parses, retries, falls back and records it like every other verb.
    """

    verb: str
    targets: list[Target]
    build: Callable[[Target], Any]
    parse: Callable[[Target, Any, HTTPResponse], Any]
    tags: Mapping[str, str] | None
    route: RouteConfig | None = None
    record: bool = True
    """Whether attempts go to the ledger (polls of a prediction are not billed: they do not)."""
    at_most_once: bool = False
    """The request starts billed work: without an idempotency key it is resent only when the host surely never
    saw it, so that one call never runs (and bills) two jobs."""
    deadline: float | None = None
    """When the call's own ``timeout=`` runs out (router clock): bounds every request it sends."""
    stream: bool = False
    """The answer is read as a stream: an attempt ends when its head arrives (:class:`Opened`); the caller reads
    the body and settles the attempt with the driver's ``guard`` (success: ``settle``)."""
    safe_to_retry: bool = False
    """The request changes nothing on the host (a GET): retried like an idempotent one."""

    def __post_init__(self) -> None:
        # Bad tags fail before any HTTP, for every verb; the enclosing ck.tags() blocks' tags are merged in now,
        # in the caller's context (a stream read later, or a retry, keeps them).
        object.__setattr__(self, "tags", check_tags(self.tags))

    def parse_checked(self, target: Target, req: Any, resp: HTTPResponse) -> Any:
        """:attr:`parse`, with values out of range (an absurd usage count) as a MalformedResponseError."""
        return target.adapter.checked(resp, target.model, lambda: self.parse(target, req, resp))
