"""What a ledger needs to enforce budgets: one budget's share of a reservation (:class:`Charge`), the start of a
budget period, which rows a budget counts, and the refusal. Pure: no I/O.

A reservation is made before an attempt is sent, in one transaction that reads each covering budget's spend and
the reservations in flight, and refuses when the attempt's worst case does not fit. Settling writes the attempt's
row and drops its reservation in one transaction, so a budget never sees both (double counting) or neither.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from .._exceptions import BudgetExceededError

__all__ = ["Charge", "counted", "covers", "fits", "period_start", "refusal"]

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def period_start(period: str, at: dt.datetime) -> dt.datetime:
    """The start (UTC) of the budget period that contains ``at``: the day, the ISO week (Monday), the month, or
    the epoch for ``"total"``."""
    at = at.astimezone(dt.UTC) if at.tzinfo else at.replace(tzinfo=dt.UTC)
    day = at.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return day
    if period == "week":
        return day - dt.timedelta(days=day.weekday())
    if period == "month":
        return day.replace(day=1)
    if period == "total":
        return _EPOCH
    raise ValueError(f"unknown budget period {period!r}")


@dataclass(frozen=True, slots=True)
class Charge:
    """What one attempt asks of one budget.

    Attributes:
        name: The budget's name (``"default"`` for ``[budget]``).
        limit: Its limit in USD.
        period: ``day | week | month | total``.
        start: The start of the current period (UTC).
        amount: The attempt's worst-case cost; ``None`` when it could not be priced (the budget refuses it).
        target: ``provider:model`` of the attempt, for the refusal's message.
        provider, model, tags: The budget's scope (``None`` / empty: any).
    """

    name: str
    limit: Decimal
    period: str
    start: dt.datetime
    amount: Decimal | None
    target: str = ""
    provider: str | None = None
    model: str | None = None
    tags: tuple[tuple[str, str], ...] = ()

    @property
    def key(self) -> str:
        """The budget's identity in the ledger: its name and scope (a changed scope counts afresh; a changed
        limit does not)."""
        scope = f"{self.period}|{self.provider or ''}|{self.model or ''}|{sorted(self.tags)!r}"
        return f"{self.name}#{hashlib.sha256(scope.encode()).hexdigest()[:16]}"


def covers(charge: Charge, provider: str, model: str, tags: Mapping[str, str] | None) -> bool:
    """Whether a budget's scope includes an attempt on ``provider:model`` with ``tags``."""
    if charge.provider is not None and provider != charge.provider:
        return False
    if charge.model is not None:
        if ":" in charge.model:
            if f"{provider}:{model}" != charge.model:
                return False
        elif model != charge.model:
            return False
    if charge.tags:
        have = tags or {}
        if any(have.get(k) != v for k, v in charge.tags):
            return False
    return True


def counted(cost: Decimal | None, reserved: Decimal | None) -> Decimal:
    """What one recorded attempt counts against a budget: its cost; when that is unknown (a timeout that may have
    been billed, a stream closed early), the worst case it had reserved; else nothing."""
    if cost is not None:
        return cost
    return reserved if reserved is not None else Decimal(0)


def _usd(v: Decimal) -> str:
    return f"${v:f}"  # exact, never in exponent notation


def refusal(charge: Charge, spent: Decimal, reserved: Decimal) -> BudgetExceededError:
    """The typed refusal of ``charge`` by its budget, with the figures that decided it."""
    provider, _, model = charge.target.partition(":")
    per = "in total" if charge.period == "total" else f"a {charge.period}"
    head = f"budget {charge.name!r} ({_usd(charge.limit)} {per}) refused {charge.target or 'the call'}"
    if charge.amount is None:
        msg = (
            f"{head}: its price is unknown, so its worst-case cost cannot be reserved (nothing was sent). "
            f"Add its price under [prices], or set unknown_price = 'allow' on the budget."
        )
    else:
        if spent >= charge.limit:  # nothing the call can change would make it fit
            advice = ("The budget is already used up: raise limit_usd" +
                      ("." if charge.period == "total" else f", or wait for the next {charge.period}."))
        elif spent + reserved >= charge.limit:
            advice = "Calls in flight hold the rest: retry when they finish, or raise limit_usd."
        else:
            advice = "Set max_tokens to reserve less, or raise limit_usd."
        msg = (
            f"{head}: spent {_usd(spent)}, {_usd(reserved)} reserved by calls in flight, and this attempt may cost "
            f"up to {_usd(charge.amount)} (nothing was sent). {advice}"
        )
    return BudgetExceededError(
        msg, budget=charge.name, limit=charge.limit, period=charge.period, spent=spent, reserved=reserved,
        requested=charge.amount, provider=provider or None, model=model or None,
    )


def fits(charge: Charge, spent: Decimal, reserved: Decimal) -> bool:
    """Whether ``charge`` fits in what its budget has left."""
    return charge.amount is not None and spent + reserved + charge.amount <= charge.limit
