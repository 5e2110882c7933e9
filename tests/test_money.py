"""Money is read as plain decimals (never ``8E-8``) and stays exact."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

import computekit as ck
from computekit._money import money, plain
from computekit.cli import _aligned
from computekit.ledger import Report, ReportRow

SMALL = [Decimal("8E-8"), Decimal("1.6E-7"), Decimal("1.23456789E-19"), Decimal("0"), Decimal("12.5")]


@pytest.mark.parametrize("value", SMALL)
def test_money_prints_plainly_and_stays_exact(value: Decimal) -> None:
    m = ck.Money(value)
    for shown in (str(m), f"{m}", format(m, "")):
        assert "E" not in shown
        assert Decimal(shown) == value
    assert m == value
    assert hash(m) == hash(value)
    assert isinstance(m, Decimal)


def test_cost_total_and_lines_are_money() -> None:
    cost = ck.Cost(total=Decimal("8E-8"), lines=[ck.CostLine(item="input", quantity=Decimal(1), unit="token",
                                                             unit_price=Decimal("8E-8"), amount=Decimal("8E-8"))])
    assert str(cost.total) == "0.00000008"
    assert str(cost.lines[0].amount) == "0.00000008"
    assert str(cost.lines[0].unit_price) == "0.00000008"
    assert json.loads(cost.model_dump_json())["total"] == "0.00000008"
    assert ck.Cost.unknown("no price").total is None  # unknown stays None, never 0
    assert money(None) is None


def test_report_exports_are_plain_and_exact() -> None:
    rows = [ReportRow("openai", 2, 0, 10, 5, Decimal("8E-8"), 0), ReportRow("groq", 1, 0, 3, 1, Decimal("1.6E-7"), 0)]
    report = Report("provider", rows, Decimal("2.4E-7"), 0)
    assert str(report.total) == "0.00000024"
    assert str(report.rows[0].cost) == "0.00000008"
    csv_text = report.to_csv()
    assert "E-" not in csv_text
    assert "0.00000016" in csv_text
    data = json.loads(report.to_json())
    assert data["total"] == "0.00000024"
    assert [Decimal(r["cost"]) for r in data["rows"]] == [r.cost for r in rows]
    assert plain(Decimal("1E+3")) == "1000"


def test_table_cells_line_up_their_decimal_points() -> None:
    cells = _aligned(["$0.0000495", "$0.00000378", "unpriced", "≥ $1.50", "$12.00 (est.)"])
    assert cells == ["$0.00004950", "$0.00000378", "unpriced", "≥ $1.50000000", "$12.00000000 (est.)"]
    money_cells = [c.split(" (")[0] for c in cells if "$" in c]
    assert len({len(c) - c.index(".") for c in money_cells}) == 1
