"""Spend: every call made while it listens (any client, any ledger), summed exactly, with assert_cost."""

from __future__ import annotations

from decimal import Decimal

import pytest

import computekit as ck
from computekit.testing import Fail, FakeProvider, Reply, Spend

MTOK = Decimal(1_000_000)


def test_collects_every_attempt_of_every_client_and_sums_exactly() -> None:
    with FakeProvider([Reply("a", usage=(1000, 500)), Fail(ck.ServerError), Reply("b", usage=(10, 10))],
                      price_in="0.15", price_out="0.60") as fake, Spend() as spend:
        r1 = fake.client().complete("fake:m", "hi")
        r2 = fake.client(retry={"max_retries": 1}, ledger="sqlite:///spend.db").complete("fake:m", "hi")
    assert [c.outcome for c in spend.calls] == ["success", "error", "success"]
    assert spend.total == r1.cost.total + r2.cost.total
    assert spend.total == (Decimal(1010) * Decimal("0.15") + Decimal(510) * Decimal("0.60")) / MTOK
    assert not spend.unpriced


def test_stops_listening() -> None:
    with FakeProvider(price_in=1, price_out=1) as fake:
        with Spend() as spend:
            fake.client().complete("fake:m", "one")
        fake.client().complete("fake:m", "two")
    assert len(spend.calls) == 1


def test_assert_cost_bounds() -> None:
    with FakeProvider([Reply("a", usage=(1_000_000, 0))], price_in="0.15", price_out="0.60") as fake, \
            Spend() as spend:
        fake.client().complete("fake:m", "hi")
    assert spend.assert_cost(max_usd="0.15", min_usd="0.15") == Decimal("0.15")
    with pytest.raises(AssertionError, match=r"spent \$0.15.* more than \$0.1\b"):
        spend.assert_cost(max_usd="0.1")
    with pytest.raises(AssertionError, match=r"less than \$1"):
        spend.assert_cost(min_usd=1)
    assert "fake:m success in=1000000 out=0 cost=$0.15" in spend.describe()


@pytest.mark.filterwarnings("ignore::computekit.UnknownPriceWarning")
def test_unpriced_calls_fail_the_assertion_unless_allowed() -> None:
    with FakeProvider(["x"]) as fake, Spend() as spend:
        fake.client().complete("fake:free", "hi")
    with pytest.raises(AssertionError, match=r"1 of 1 call\(s\) could not be priced \(fake:free\)"):
        spend.assert_cost(max_usd=1)
    assert spend.assert_cost(max_usd=1, allow_unpriced=True) == 0


def test_fixture_sees_the_calls_of_the_test(computekit_spend: Spend) -> None:
    with FakeProvider([Reply("a", usage=(100, 100))], price_in=1, price_out=1) as fake:
        fake.client().complete("fake:m", "hi")
    assert len(computekit_spend.calls) == 1
    computekit_spend.assert_cost(max_usd="0.001", min_usd="0.0002")
