"""What a test spent: every ledger row written while it ran (whichever client wrote it), summed exactly."""

from __future__ import annotations

import threading
from decimal import Decimal
from types import TracebackType

from .._bookkeeping import ROW_TAPS
from ..ledger import LedgerRow

__all__ = ["Spend"]

_ZERO = Decimal(0)


class Spend:
    """The calls made while it listens, with their exact cost: what the ``computekit_spend`` fixture gives.

    Every attempt computekit records (retries and fallbacks included, on any client, whatever its ledger) is
    seen. Replayed calls cost what the recorded ones did: the cost comes from the recorded usage.

    ::

        with Spend() as spend:
            ck.complete("openai:gpt-4o-mini", "hi")
        spend.assert_cost(max_usd="0.001")

    Attributes:
        calls: The ledger rows, in order (``provider``, ``model``, ``outcome``, tokens, ``cost`` ...).
    """

    def __init__(self) -> None:
        self.calls: list[LedgerRow] = []
        self._lock = threading.Lock()
        self._listening = False

    # ----------------------------------------------------------------------------------------- listening

    def start(self) -> Spend:
        """Start collecting rows."""
        if not self._listening:
            ROW_TAPS.append(self._add)
            self._listening = True
        return self

    def stop(self) -> None:
        """Stop collecting rows."""
        if self._listening:
            ROW_TAPS.remove(self._add)
            self._listening = False

    def __enter__(self) -> Spend:
        return self.start()

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def _add(self, row: LedgerRow) -> None:
        with self._lock:
            self.calls.append(row)

    # ----------------------------------------------------------------------------------------- totals

    @property
    def total(self) -> Decimal:
        """The sum of the calls that could be priced (see :attr:`unpriced` for the others), in USD."""
        return sum((c.cost for c in self.calls if c.cost is not None), _ZERO)

    @property
    def unpriced(self) -> list[LedgerRow]:
        """The calls whose cost is unknown (``None``: no price for the model, or no usage reported)."""
        return [c for c in self.calls if c.cost is None]

    def assert_cost(
        self,
        max_usd: Decimal | str | float | None = None,
        min_usd: Decimal | str | float | None = None,
        *,
        allow_unpriced: bool = False,
    ) -> Decimal:
        """Assert that the calls so far cost at most ``max_usd`` (and at least ``min_usd``).

        Args:
            max_usd: The most they may have cost, in USD.
            min_usd: The least they must have cost (e.g. ``> 0``: the calls were billed at all).
            allow_unpriced: Accept calls whose cost is unknown. By default they fail the assertion: an
                unknown cost is not a zero one, and a bound on it proves nothing.

        Returns:
            The total.

        Raises:
            AssertionError: A bound is not met, or a call could not be priced.
        """
        total = self.total
        unpriced = self.unpriced
        if unpriced and not allow_unpriced:
            names = ", ".join(sorted({f"{c.provider}:{c.model}" for c in unpriced}))
            raise AssertionError(
                f"{len(unpriced)} of {len(self.calls)} call(s) could not be priced ({names}): their cost is "
                "unknown, so no bound holds. Add a price ([prices] in computekit.toml, or FakeProvider(price_in=, "
                "price_out=)), or pass allow_unpriced=True."
            )
        if max_usd is not None and total > Decimal(str(max_usd)):
            raise AssertionError(f"the test spent ${total} over {len(self.calls)} call(s): more than ${max_usd}"
                                 f"\n{self.describe()}")
        if min_usd is not None and total < Decimal(str(min_usd)):
            raise AssertionError(f"the test spent ${total} over {len(self.calls)} call(s): less than ${min_usd}"
                                 f"\n{self.describe()}")
        return total

    def describe(self) -> str:
        """One line per call: what it was and what it cost."""
        lines = []
        for c in self.calls:
            cost = "unknown" if c.cost is None else f"${c.cost}"
            lines.append(f"  {c.verb} {c.provider}:{c.model} {c.outcome} in={c.input_tokens} out={c.output_tokens}"
                         f" cost={cost}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"Spend(calls={len(self.calls)}, total={self.total}, unpriced={len(self.unpriced)})"
