"""What one call plans and what each of its attempts knows (pure, shared by the sync and async drivers).

- :class:`~computekit._plan.Plan` (its own module): a call, planned: its targets in order, how each one's
  request is built and its answer parsed, whether its attempts are billed (recorded) and how they may be retried.
- :class:`Call`: the call's way through those targets (:class:`Run`: order, deadline, fallback decisions) and
  the attempts made so far.
- :class:`AttemptFacts`: one attempt's facts, from its budget reservation to its ledger row: the one object the
  driver hands to the bookkeeping (:mod:`computekit._bookkeeping`).

Nothing here does I/O or writes the ledger; :mod:`computekit._driver` does, once per I/O flavour.
"""

from __future__ import annotations

import datetime as dt
import math
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from . import _costs
from ._core import now
from ._exceptions import (
    AllTargetsFailedError,
    APITimeoutError,
    BudgetExceededError,
    ComputeKitError,
    InvalidRequestError,
    MalformedResponseError,
    MissingAPIKeyError,
    NotFoundError,
    ProviderError,
)
from ._http import HTTPRequest, HTTPResponse
from ._plan import Plan
from ._targets import Target
from ._transport import ERROR_STATUS
from .adapters._base import CompleteRequest, EmbedRequest, PredictRequest, RerankRequest
from .routing import Action

if TYPE_CHECKING:
    from ._budget import Reservation
    from ._config import RouteConfig
    from ._core import Core
    from ._types import Attempt, Result

__all__ = ["AttemptFacts", "Call", "Plan", "Run", "malformed_from"]

_VERB_OF: dict[type, str] = {CompleteRequest: "complete", EmbedRequest: "embed", RerankRequest: "rerank"}
"""The verb whose body limit a request gets (predictions, their polls and lookups: ``predict``)."""
_NOT_STARTED = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MAX_CAUSE_CHARS = 200
"""How much of a parse failure's own message a MalformedResponseError quotes."""


@dataclass(slots=True)
class AttemptFacts:
    """One target's request and the facts of its current try: what the bookkeeping needs to price, record and
    settle it (instead of ten loose arguments)."""

    verb: str
    target: Target
    request: Any
    http: HTTPRequest
    attempts: list[Attempt]
    """The call's attempts so far (shared by every target): each try appends its own."""
    tags: Mapping[str, str] | None
    record: bool = True
    idempotent: bool = False
    at_most_once: bool = False
    reservation: Reservation | None = None
    started: dt.datetime = _NOT_STARTED
    """Set by :meth:`begin`, when a try starts."""
    t0: float = 0.0
    first_byte_s: float | None = None
    """A stream's time to its first chunk (what the router learns instead of the whole latency)."""
    reported_so_far: Callable[[], Result | None] | None = None
    """A stream's answer as far as it went, when the provider had reported usage in it (else ``None``): what an
    attempt that failed or was canceled mid-stream is priced from."""

    def begin(self, reservation: Reservation | None) -> None:
        """A new try starts now, holding ``reservation``."""
        self.reservation = reservation
        self.started, self.t0 = now(), time.perf_counter()
        self.first_byte_s = None
        self.reported_so_far = None  # set again when this try's stream opens

    def latency(self) -> float:
        return time.perf_counter() - self.t0

    def first_byte(self) -> None:
        """Note the time to the first chunk of a streamed answer (once)."""
        if self.first_byte_s is None:
            self.first_byte_s = time.perf_counter() - self.t0


@dataclass(slots=True)
class Opened:
    """A streamed answer whose head has arrived: the body is read by the caller (then settled by the driver)."""

    facts: AttemptFacts
    head: HTTPResponse
    body: Any
    """The body's chunks: an iterator of bytes (sync) or an async iterator (async)."""
    cm: Any
    """The transport's stream context, entered: exited once the body is read or abandoned."""


class Call:
    """One call on its way through its plan's targets: the :class:`Run` and the attempts (pure)."""

    __slots__ = ("attempts", "plan", "run")

    def __init__(self, core: Core, plan: Plan) -> None:
        self.plan = plan
        self.run = Run(core, plan.targets, plan.route, plan.build)
        self.attempts: list[Attempt] = []

    def next(self) -> AttemptFacts | None:
        """The next target worth trying, its request built; ``None`` when none is left. A target without a key
        is skipped while another remains (nothing was sent to it)."""
        plan = self.plan
        while (target := self.run.next()) is not None:
            try:
                req = plan.build(target)
                http = build_http(target, req)
            except MissingAPIKeyError:
                if not self.run.has_more():
                    raise
                continue
            header = target.adapter.settings.idempotency_header
            idempotent = plan.safe_to_retry or (bool(header) and header in http.headers)
            return AttemptFacts(plan.verb, target, req, http, self.attempts, plan.tags, plan.record,
                                idempotent=idempotent, at_most_once=plan.at_most_once and not idempotent)
        return None

    def bound(self, facts: AttemptFacts) -> None:
        """Fit one try into the call's deadline and its own ``timeout=``.

        Raises:
            APITimeoutError: Either has passed (nothing is sent).
        """
        target, http, deadline = facts.target, facts.http, self.plan.deadline
        left = self.run.check_deadline(target)
        if deadline is not None:
            mine = deadline - self.run.core.router.clock()
            if mine <= 0:
                err = APITimeoutError("the call's timeout passed before this request was sent",
                                      provider=target.provider, model=target.model)
                err.maybe_processed = False
                raise err
            left = mine if left is None else min(left, mine)
        if left is not None:
            http.timeout = min(http.timeout or left, left)
            http.total_timeout = left

    def failed(self, facts: AttemptFacts, error: ProviderError) -> None:
        """A target's last try failed: the router decides (raises when the call must stop here)."""
        self.run.failed(facts.target, error)

    def refused(self, facts: AttemptFacts, error: BudgetExceededError) -> None:
        self.run.refused(facts.target, error)

    def exhausted(self) -> Exception:
        return self.run.exhausted(self.attempts)


def build_http(target: Target, req: Any) -> HTTPRequest:
    """The HTTP request for a target's typed request (pure): the provider's timeout and idempotency key set
    here, so that no adapter can forget them."""
    adapter = target.adapter
    if isinstance(req, HTTPRequest):
        http = req
    elif isinstance(req, CompleteRequest):
        http = adapter.build_complete(req)
    elif isinstance(req, EmbedRequest):
        http = adapter.build_embed(req)
    elif isinstance(req, PredictRequest):
        http = adapter.build_predict(req)
    else:
        http = adapter.build_rerank(req)
    if not adapter.on_origin(http.url):  # off the provider's origin a request never carries its key
        http.headers = adapter.without_key(http.headers)
    if http.max_bytes is None:
        http.max_bytes = adapter.settings.max_body_bytes.get(_VERB_OF.get(type(req), "predict"))
    if http.timeout is None:
        http.timeout = adapter.settings.timeout
    header = adapter.settings.idempotency_header
    if header and header not in http.headers:
        # One key per request, built once and reused by its retries: the host bills a retried POST once.
        http.headers[header] = uuid.uuid4().hex
    return http


def renew_auth(facts: AttemptFacts) -> None:
    """Before a retry: the request was built (and its credential made) for the first try, which may have lasted
    long enough for an access token or a signature to expire; its adapter renews it (pure but for the
    credential library's own refresh). A request off the provider's origin carries none to renew."""
    adapter = facts.target.adapter
    if adapter.on_origin(facts.http.url):
        adapter.renew_auth(facts.http)


def malformed_from(facts: AttemptFacts, resp: HTTPResponse | None, cause: BaseException) -> MalformedResponseError:
    """The typed error for an answer that could not be parsed (``cause``: what the parser raised)."""
    why = f"{type(cause).__name__}: {cause}"
    if len(why) > _MAX_CAUSE_CHARS:
        why = why[:_MAX_CAUSE_CHARS] + "..."
    target = facts.target
    if resp is not None:
        return target.adapter.malformed(resp, target.model, f"could not be parsed ({why})")
    return MalformedResponseError(f"malformed response: could not be parsed ({why})", provider=target.provider,
                                  model=target.model)


def parsing(facts: AttemptFacts, resp: HTTPResponse | None, step: Callable[[], Any]) -> Any:
    """Run a step that reads the provider's answer: whatever it raises (bar computekit's own typed errors)
    becomes a :class:`MalformedResponseError`, raised ``from`` it, so the attempt gets its ledger row and the
    malformed-answer rules (no retry, fallback) apply.

    Raises:
        MalformedResponseError: The step raised anything but a computekit error (``RecursionError``,
            ``KeyError``, a pydantic ``ValidationError``, a ``decimal`` error ...).
    """
    try:
        return step()
    except ComputeKitError:
        raise
    except Exception as e:
        raise malformed_from(facts, resp, e) from e


def answer(plan: Plan, facts: AttemptFacts, resp: HTTPResponse) -> Any:
    """A response, checked and parsed: an error status raises its typed error; anything that does not parse
    raises :class:`MalformedResponseError` (as :func:`parsing`, inline: this runs on every call)."""
    target = facts.target
    try:
        if resp.status < ERROR_STATUS:
            return plan.parse_checked(target, facts.request, resp)  # values out of range named as such
        error = target.adapter.map_error(resp, target.model)
    except ComputeKitError:
        raise
    except Exception as e:
        raise malformed_from(facts, resp, e) from e
    raise error


def check_head(facts: AttemptFacts, head: HTTPResponse) -> None:
    """A streamed answer's head: an error status raises its typed error."""
    if head.status >= ERROR_STATUS:
        target = facts.target
        raise parsing(facts, head, lambda: target.adapter.map_error(head, target.model))


def note_not_retried(core: Core, facts: AttemptFacts, e: ProviderError) -> None:
    """Say why a failed create was not retried when any other request would have been."""
    if not facts.at_most_once:
        return
    retry = core.retry
    if retry.should_retry(e, facts.idempotent) and not retry.should_retry(e, facts.idempotent, at_most_once=True):
        e.add_note("not retried: the request may have started a billed run on the host, and it carries no "
                   "idempotency key (set idempotency_header for a host that honours one)")


@dataclass
class Run:
    """One call's way through its targets: order, deadline, fallback decisions and the errors met (pure
    bookkeeping, shared by the sync and async clients).

    Args:
        core: The client's core (router, prices, settings).
        targets: The targets as listed.
        route: The named route they come from, for its strategy.
        first_request: Builds a target's request, for the ``cheapest`` estimate.
    """

    core: Core
    targets: list[Target]
    route: RouteConfig | None = None
    first_request: Any = None
    errors: list[ProviderError] = field(default_factory=list)
    refusals: list[BudgetExceededError] = field(default_factory=list)
    deadline: float | None = None
    min_context: int | None = None
    _pos: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        limit = self.core.router.config.deadline_s
        self.deadline = self.core.router.clock() + limit if limit else None
        strategy = self.route.strategy if self.route else "ordered"
        estimate = None
        if strategy == "cheapest" and self.first_request is not None:
            build = self.first_request

            def estimate(t: Target) -> Decimal | None:
                return _costs.estimate(self.core.prices, t, build(t))

        self.targets = self.core.router.order(
            self.targets, strategy, estimate=estimate, weights=self.route.weights if self.route else None
        )

    def _eligible(self, target: Target) -> bool:
        if self.min_context is None:
            return True
        # a context-window failure falls back only to a larger one
        window = _costs.context_window(self.core.prices, target)
        return window is not None and window > self.min_context

    def next(self) -> Target | None:
        """The next target worth trying, or ``None`` when none is left."""
        while self._pos < len(self.targets):
            target = self.targets[self._pos]
            self._pos += 1
            if self._eligible(target):
                return target
        return None

    def has_more(self) -> bool:
        """Whether a target is left after the current one."""
        return any(self._eligible(t) for t in self.targets[self._pos :])

    def remaining(self) -> float:
        """Seconds left before the call's total deadline (infinite without one)."""
        return math.inf if self.deadline is None else self.deadline - self.core.router.clock()

    def remaining_fn(self) -> Callable[[], float] | None:
        """:meth:`remaining`, or ``None`` when there is no deadline (retry loops then skip the check)."""
        return None if self.deadline is None else self.remaining

    def check_deadline(self, target: Target) -> float | None:
        """Seconds left, or ``None`` without a deadline.

        Raises:
            APITimeoutError: The call's total deadline has passed.
        """
        if self.deadline is None:
            return None
        left = self.remaining()
        if left <= 0:
            raise APITimeoutError(
                f"the call's total deadline ({self.core.router.config.deadline_s} s) passed",
                provider=target.provider,
                model=target.model,
            )
        return left

    def failed(self, target: Target, error: ProviderError) -> None:
        """A target's last try failed: tell the router, and raise when the plan must stop here."""
        self.errors.append(error)
        if isinstance(error, NotFoundError) and not getattr(error, "__notes__", None):
            close = self.core.prices.similar(target.adapter.price_ref(target.model))
            if close:  # a 404 on a misspelled model: name the likely one
                error.add_note(f"did you mean {' or '.join(f'{target.provider}:{m}' for m in close)}?")
        action = self.core.router.failed(target, error, self.core.retry.config.retry_after_cap)
        if action is Action.RAISE or (isinstance(error, APITimeoutError) and self.remaining() <= 0):
            raise error
        if action is Action.LARGER_CONTEXT:
            window = _costs.context_window(self.core.prices, target)
            if window is None:
                raise error  # nothing to compare with: no target is known to be larger
            self.min_context = max(window, self.min_context or 0)

    def refused(self, target: Target, error: BudgetExceededError) -> None:
        """A budget refused ``target`` before anything was sent: the next target (perhaps a cheaper one) is
        tried; the refused target is not cooled down (it did not fail)."""
        self.refusals.append(error)

    def exhausted(self, attempts: list[Attempt]) -> Exception:
        """The error to raise when no target is left: the one error, or all of them grouped (a budget's
        refusal, when every target was refused)."""
        if self.refusals and not self.errors:
            return self.refusals[0]
        spent = _attempts_summary(attempts)
        if len(self.errors) == 1 and not self.refusals:
            error = self.errors[0]
            if len(attempts) > 1:  # retried: the traceback says how hard computekit tried
                error.add_note(f"computekit gave up {spent}")
            return error
        if not self.errors:
            return InvalidRequestError("no target could be tried (all need larger context windows)")
        if self.refusals:
            tried = ", ".join(dict.fromkeys(f"{e.provider}:{e.model}" for e in self.errors))
            return AllTargetsFailedError(
                f"{len(self.errors)} targets failed ({tried}) and {len(self.refusals)} were refused by a budget, "
                f"{spent}",
                [*self.errors, *self.refusals], attempts,
            )
        tried = ", ".join(dict.fromkeys(f"{e.provider}:{e.model}" for e in self.errors))  # in the order tried
        return AllTargetsFailedError(f"all {len(self.errors)} targets failed ({tried}), {spent}", self.errors,
                                     attempts)


def _attempts_summary(attempts: list[Attempt]) -> str:
    """``after 3 attempts in 2.4 s``: from the first attempt's start to the last one's end."""
    if not attempts:
        return "after 0 attempts"
    start = min(a.started_at for a in attempts)
    end = max(a.started_at + dt.timedelta(seconds=a.latency_s) for a in attempts)
    n = len(attempts)
    return f"after {n} attempt{'s' if n != 1 else ''} in {(end - start).total_seconds():.1f} s"
