"""Budgets, the pure part: which budgets cover an attempt, and the attempt's worst-case cost.

Shared by the sync and async clients: before each attempt is sent, :meth:`Budgets.reserve` asks :func:`charges`
what to reserve and the ledger reserves it atomically (or refuses); after it, the attempt's
row settles the reservation. See ``docs/budgets.md``.

The worst case of an attempt:

- ``complete`` / ``stream``: the prompt's tokens as the adapter bounds them (:meth:`Adapter.input_bound`): text
  by its size in UTF-8 bytes (a token is at least one byte, so this is never below the real count), each image,
  audio clip, file or document by the provider's published per-item rule, else by the model's context window,
  plus what the provider adds on its own (a tool-use system prompt), capped at the window for each sampling
  pass; priced at the highest input-side rate (cache writes can cost more than input), plus ``max_tokens`` at
  the highest output-side rate. Media with no rule on a model of unknown window: unknown.
  Without ``max_tokens``: ``[providers.NAME] max_output_tokens`` for the model, else the model's context window
  (genai-prices: no answer can be longer), else :data:`FALLBACK_OUTPUT_TOKENS`.
  Per-call fees the request can incur (a Responses call's built-in tools) are added at most
  :meth:`Adapter.units_bound` times each; unbounded (no ``max_tool_calls``) or unpriced: unknown.
- ``embed``: the inputs' tokens, bounded the same way.
- ``predict``: ``[providers.NAME] max_seconds`` x the hardware's per-second price, and/or ``max_units`` x the
  model's highest per-unit price; unknown without them.
- any other request that defines ``worst_case_cost(prices) -> Decimal | None`` (the hook for fine-tuning: its
  request returns its pure estimate there).
- ``rerank``: unknown (billed search units have no bound computekit can read off the request yet).

An unknown worst case is refused by a budget with ``unknown_price = "refuse"`` (the default), and reserved as 0
under ``"allow"``. A self-hosted server with no price reserves 0 (its price is known: nothing).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

from ._config import BudgetConfig
from ._constants import BACKGROUND_RESERVATION_TTL_S, FINETUNE_RESERVATION_TTL_S, RESERVATION_TTL_S, RUNS_KEPT
from ._costs import context_window
from ._exceptions import ComputeKitError, LedgerError
from ._money import plain
from .adapters._base import CompleteRequest, EmbedRequest, PredictRequest
from .ledger._budgets import Charge, covers, period_start

if TYPE_CHECKING:
    from ._core import Core, Target
    from .ledger import Ledger

__all__ = [
    "FALLBACK_OUTPUT_TOKENS", "BudgetStatus", "Budgets", "Estimated", "Reservation", "budget_status", "charges",
    "worst_case",
]

FALLBACK_OUTPUT_TOKENS: Final = 32_768
"""Output tokens reserved for a call without ``max_tokens`` on a model whose maximum output and context window
are both unknown. Pass ``max_tokens`` (or set ``max_output_tokens``) to reserve what the call can really cost."""

log = logging.getLogger("computekit.budgets")

_MTOK = Decimal(1_000_000)
_INPUT_KEYS = ("input_mtok", "cache_write_mtok", "cache_write_1h_mtok", "input_audio_mtok")
_OUTPUT_KEYS = ("output_mtok", "output_reasoning_mtok", "output_audio_mtok")


@dataclass(frozen=True, slots=True)
class Reservation:
    """A reservation held by one attempt: its id in the ledger and the worst case it reserved (``None``: the
    worst case is unknown and a budget allowed it)."""

    id: str
    amount: Decimal | None


@dataclass(frozen=True, slots=True)
class Estimated:
    """A request whose worst case is a figure computed before it (a fine-tuning job's estimate): what a budget
    reserves for it (``None``: unknown, handled by the budget's ``unknown_price``)."""

    amount: Decimal | None

    def worst_case_cost(self, prices: Any) -> Decimal | None:
        return self.amount


def _highest(rates: Any, keys: tuple[str, ...], total_input: int) -> Decimal | None:
    found = [r for k in keys if (r := rates.rate(k, total_input)) is not None]
    return max(found) if found else None


def _token_worst_case(core: Core, target: Target, req: CompleteRequest | EmbedRequest) -> Decimal | None:
    ref = target.adapter.price_ref(target.model)
    rates = core.prices.rates(ref)
    if rates is None:
        return None if ref.metered else Decimal(0)
    window = context_window(core.prices, target)
    bound = target.adapter.input_bound(req, window)  # the adapter's rule for each kind of input
    if bound is None:
        return None
    tokens_in = bound
    rate_in = _highest(rates, _INPUT_KEYS, tokens_in)
    if rate_in is None:
        return None
    total = Decimal(tokens_in) * rate_in
    if isinstance(req, CompleteRequest):
        conf = core.settings.providers.get(target.provider)
        tokens_out = (
            target.adapter.output_limit(req)
            or (conf.max_output_tokens.get(target.model) if conf else None)
            or window
            or FALLBACK_OUTPUT_TOKENS
        )
        rate_out = _highest(rates, _OUTPUT_KEYS, tokens_in)
        if rate_out is None:
            return None
        total += Decimal(tokens_out) * rate_out
    total /= _MTOK
    if rates.per_request is not None:
        total += rates.per_request
    if isinstance(req, CompleteRequest):  # per-call fees (built-in tools), at most this many of each
        units = target.adapter.units_bound(req)
        if units is None:
            return None
        for key, count in units.items():
            if key not in rates.extra_units:
                return None
            price, per = rates.extra_units[key]
            total += count * price / per
    return total


def _predict_worst_case(core: Core, target: Target, req: PredictRequest) -> Decimal | None:
    conf = core.settings.providers.get(target.provider)
    if conf is None:
        return None
    candidates: list[Decimal] = []
    hardware, _ = core.hardware(target, req.hardware)
    if hardware and conf.max_seconds:
        found = core.prices.per_second(target.provider, hardware)
        if found is not None:
            candidates.append(Decimal(str(conf.max_seconds)) * found[0])
    if conf.max_units:
        rates = core.prices.rates(target.adapter.price_ref(target.model))
        if rates is not None and rates.extra_units:
            unit = max(price / per for price, per in rates.extra_units.values())
            candidates.append(unit * conf.max_units)
    return max(candidates) if candidates else None


def worst_case(core: Core, target: Target, req: Any) -> Decimal | None:
    """The most ``req`` can cost on ``target`` (USD), or ``None`` when that cannot be bounded or priced."""
    hook = getattr(req, "worst_case_cost", None)
    if callable(hook):  # e.g. a fine-tuning request: its pure estimate
        result = hook(core.prices)
        return None if result is None else Decimal(result)
    if isinstance(req, CompleteRequest | EmbedRequest):
        return _token_worst_case(core, target, req)
    if isinstance(req, PredictRequest):
        return _predict_worst_case(core, target, req)
    return None


def charges(
    core: Core,
    budgets: Mapping[str, BudgetConfig],
    target: Target,
    req: Any,
    tags: Mapping[str, str] | None,
    at: dt.datetime,
) -> list[Charge]:
    """What an attempt on ``target`` asks of each budget that covers it (none: no reservation)."""
    label = f"{target.provider}:{target.model}"
    scoped = [
        Charge(name=name, limit=b.limit_usd, period=b.period, start=period_start(b.period, at), amount=None,
               target=label, provider=b.provider, model=b.model, tags=tuple(sorted(b.tags.items())))
        for name, b in budgets.items()
        if b.limit_usd is not None
    ]
    scoped = [c for c in scoped if covers(c, target.provider, target.model, tags)]
    if not scoped:
        return []
    amount = worst_case(core, target, req)
    out = []
    for c in scoped:
        allow = budgets[c.name].unknown_price == "allow"
        out.append(replace(c, amount=amount if amount is not None else (Decimal(0) if allow else None)))
    return out


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """Where one budget stands in its current period (``client.budget_status()``, ``computekit budgets``).

    Attributes:
        name: The budget's name (``"default"`` for ``[budget]``).
        limit: Its limit in USD.
        period: ``day | week | month | total`` (UTC calendar periods).
        period_start: When the current period began (UTC).
        spent: What the attempts it covers cost in this period (an attempt of unknown cost counts the worst
            case it reserved).
        reserved: The worst cases reserved by calls in flight and fine-tuning jobs still running.
        remaining: What a new reservation can still take: ``limit - spent - reserved``, never below 0.
        provider: Its scope: only this provider (``None``: any).
        model: Its scope: only this model (``None``: any).
        tags: Its scope: only calls with all of these tags.
    """

    name: str
    limit: Decimal
    period: str
    period_start: dt.datetime
    spent: Decimal
    reserved: Decimal
    remaining: Decimal
    provider: str | None = None
    model: str | None = None
    tags: dict[str, str] | None = None

    def as_dict(self) -> dict[str, Any]:
        """The status as JSON-ready values (money as exact decimal strings)."""
        return {"name": self.name, "limit_usd": plain(self.limit), "period": self.period,
                "period_start": self.period_start.isoformat(), "spent": plain(self.spent),
                "reserved": plain(self.reserved), "remaining": plain(self.remaining), "provider": self.provider,
                "model": self.model, "tags": dict(self.tags or {})}


def budget_status(budgets: Mapping[str, BudgetConfig], ledger: Ledger, at: dt.datetime) -> dict[str, BudgetStatus]:
    """Each budget with a limit, as it stands at ``at`` (read from ``ledger.budget_usage``, which also drops
    reservations past their TTL)."""
    out: dict[str, BudgetStatus] = {}
    for name, b in budgets.items():
        if b.limit_usd is None:
            continue
        start = period_start(b.period, at)
        charge = Charge(name=name, limit=b.limit_usd, period=b.period, start=start, amount=None,
                        provider=b.provider, model=b.model, tags=tuple(sorted(b.tags.items())))
        spent, reserved = ledger.budget_usage(charge, now=at)
        out[name] = BudgetStatus(
            name=name, limit=b.limit_usd, period=b.period, period_start=start, spent=spent, reserved=reserved,
            remaining=max(b.limit_usd - spent - reserved, Decimal(0)), provider=b.provider, model=b.model,
            tags=dict(b.tags),
        )
    return out


def _store_failed(target: Target, error: Exception) -> LedgerError:
    return LedgerError(
        f"{target.provider}:{target.model}: the ledger's store failed while reserving this call's worst case under "
        f"its budgets ({type(error).__name__}, the cause of this error), so nothing was sent. Check that the ledger "
        "is reachable and writable (SQLite: another process may hold it past its busy timeout)",
        provider=target.provider, model=target.model)


class Budgets:
    """One client's budgets: an attempt's worst case reserved before it is sent, settled by its ledger row;
    the reservations of runs and jobs still going, held until they end.

    Args:
        core: The client's core (settings, prices, the ledger) the charges are computed and reserved with.
        active: The budgets configured (empty: nothing is reserved, and nothing ever waits on the ledger).
    """

    def __init__(self, core: Core, active: Mapping[str, BudgetConfig]) -> None:
        self.core = core
        self.active = active
        self.held: dict[str, Reservation] = {}
        """Prediction id -> its reservation, settled when the run ends (and a job's key -> its reservation, when
        the ledger could not name it: see :meth:`hold`)."""

    def reserve(self, target: Target, req: Any, tags: Mapping[str, str] | None,
                ttl_s: float = RESERVATION_TTL_S) -> Reservation | None:
        """Reserve an attempt's worst-case cost in every budget that covers it, before it is sent (``None``: no
        budget covers it). ``ttl_s``: how long it counts if it is never settled.

        Raises:
            BudgetExceededError: It does not fit in a budget, or its worst case is unknown (nothing was sent).
            LedgerError: The ledger's store failed (nothing was sent: budgets fail closed).
        """
        if not self.active:
            return None
        when = dt.datetime.now(dt.UTC)
        wanted = charges(self.core, self.active, target, req, tags, when)
        if not wanted:
            return None
        if getattr(req, "background", False):  # held until the response ends, which may take an hour or more
            ttl_s = max(ttl_s, BACKGROUND_RESERVATION_TTL_S)
        if isinstance(req, PredictRequest):
            # Held until the run ends: it may bill for max_seconds after it leaves the queue, so it must not lapse
            # (and free its worst case for other calls) while it can still be running.
            conf = self.core.settings.providers.get(target.provider)
            if conf is not None and conf.max_seconds:
                ttl_s = max(ttl_s, RESERVATION_TTL_S + conf.max_seconds)
        try:
            rid = self.core.ledger.reserve(wanted, now=when, ttl_s=ttl_s)
        except LedgerError as e:  # the store failed as the ledger was opened: said of this call, as below
            cause = e.__cause__ if isinstance(e.__cause__, Exception) else e
            raise _store_failed(target, cause) from cause
        except ComputeKitError:  # a refusal, or a ledger that cannot enforce budgets: already said clearly
            raise
        except Exception as e:
            raise _store_failed(target, e) from e
        amounts = [c.amount for c in wanted if c.amount is not None]
        return Reservation(rid, max(amounts) if amounts else None)

    def reserve_finetune(self, target: Target, estimate: Decimal | None,
                         tags: Mapping[str, str] | None) -> Reservation | None:
        """Reserve a fine-tuning job's estimate (``job.estimate.total``) in every budget that covers it, before
        anything is uploaded; an unknown estimate follows the budget's ``unknown_price``.

        Raises:
            BudgetExceededError: The estimate does not fit, or is unknown and a budget refuses that.
        """
        return self.reserve(target, Estimated(estimate), tags, ttl_s=FINETUNE_RESERVATION_TTL_S)

    def hold(self, reservation: Reservation | None, key: str) -> None:
        """Keep a job's reservation (a batch, a fine-tuning job, a background response) in the ledger under the
        job's key once the provider has the job, so that whichever process records the job, this one or another
        that shares the ledger, settles it (:meth:`find`)."""
        if reservation is None:
            return
        try:
            self.core.ledger.key_reservation(reservation.id, key)
        except Exception:
            # The job runs at the provider whatever the ledger does: its handle is worth more than this. Only this
            # process can settle it now; elsewhere it lapses at its TTL.
            log.warning("computekit: the ledger could not name the reservation of %s; only this process will "
                        "settle it", key, exc_info=True)
            self.keep(key, reservation)

    def keep(self, key: str, reservation: Reservation) -> None:
        """Hold ``reservation`` in this process under ``key`` (a run's id) until :meth:`find` takes it back. At most
        :data:`RUNS_KEPT` are held: past it, the oldest is forgotten, and lapses in the ledger at its time to live
        (a run nobody looks at again, told of by a webhook, would otherwise hold memory for ever)."""
        self.held[key] = reservation
        if len(self.held) > RUNS_KEPT:
            oldest = next(iter(self.held))
            del self.held[oldest]
            log.warning("computekit: more than %d runs under a budget are not seen ending; the reservation of the "
                        "oldest (%s) is forgotten here and lapses at its time to live", RUNS_KEPT, oldest)

    def find(self, key: str) -> Reservation | None:
        """The reservation a job named ``key`` holds (:meth:`hold`), made by this process or another that shares
        the ledger; ``None`` when it has none (no budget covered it, or it was settled, released or lapsed). The
        ledger is read budgets or not: the process that reserved may have had some."""
        mine = self.held.pop(key, None)
        if mine is not None:
            return mine
        try:
            amount = self.core.ledger.reservation(key, now=dt.datetime.now(dt.UTC))
        except Exception:
            # Asked when a job has ended, to record it: its row matters more than the reservation, which counts
            # its worst case until its time to live lapses.
            log.error("computekit: the ledger could not look up the reservation of %s; it lapses at its time to "
                      "live", key, exc_info=True)
            return None
        return None if amount is None else Reservation(key, amount)

    def release(self, reservation: Reservation | None) -> None:
        """Drop the reservation of an attempt that ended without a ledger row (never sent, or a failed launch).
        A store that fails here is logged, never raised: the call's own outcome (its answer, its error) is what
        its caller must see, and the reservation counts its worst case until its time to live lapses."""
        if reservation is None:
            return
        try:
            self.core.ledger.release(reservation.id)
        except Exception:
            log.error("computekit: the ledger could not release a reservation of %s; it lapses at its time to live",
                      reservation.amount, exc_info=True)

    def status(self) -> dict[str, BudgetStatus]:
        """Each configured budget's limit, spend, reservations and what is left, by name (read from the ledger).

        Raises:
            ConfigError: The ledger cannot enforce budgets.
            LedgerError: The ledger's store failed (it is locked, unreachable ...): its error is the cause.
        """
        if not self.active:
            return {}
        return budget_status(self.active, self.core.ledger, dt.datetime.now(dt.UTC))

    @property
    def blocking(self) -> bool:
        """Whether a reservation or its settlement waits on the network: under a budget, with a remote ledger
        (:attr:`Ledger.blocking_io`), or one not opened yet (opening it may connect). Without a budget rows are
        queued to the writer thread and never block."""
        if not self.active:
            return False
        opened = self.core._ledger
        return opened is None or opened.blocking_io

    @property
    def finding_blocks(self) -> bool:
        """Whether :meth:`find` waits on the network: a remote ledger, or one not opened yet, budgets or not."""
        opened = self.core._ledger
        return opened is None or opened.blocking_io
