"""``docs/img/sample_ledger.py``: the sample the docs' chart is drawn from. It is deterministic, priced from the
price tables (an unpriced model stays unpriced), and the documented command draws the chart from it."""

from __future__ import annotations

import importlib.util
import warnings
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

from typer.testing import CliRunner

from computekit.cli import app
from computekit.ledger import SQLiteLedger
from computekit.pricing import PriceBook, PriceRef, UnknownPriceWarning

EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "img" / "sample_ledger.py"


def _example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sample_ledger", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sample_rows_are_deterministic_and_priced_from_the_tables() -> None:
    sample = _example()
    rows = sample.sample_rows()
    assert rows == sample.sample_rows()  # the same seed, the same ledger
    assert len({r.ts.date() for r in rows}) == sample.DAYS
    assert {r.provider for r in rows} == {t[0] for t in sample.TARGETS}
    book = PriceBook()
    for r in rows[:80]:
        if r.outcome == "error":
            assert r.cost == Decimal(0)  # a 429 is not billed
            continue
        table = next(t[2] for t in sample.TARGETS if t[0] == r.provider)
        ref = PriceRef(r.provider, r.model, table)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UnknownPriceWarning)  # the in-house model: unpriced on purpose
            expected = book.token_cost(ref, _usage(r), r.ts).total
        assert r.cost == expected
    unpriced = [r for r in rows if r.cost is None]
    assert unpriced
    assert {r.provider for r in unpriced} == {"huggingface"}


def _usage(row: Any) -> Any:
    from computekit import Usage

    return Usage(input_tokens=row.input_tokens, output_tokens=row.output_tokens)


def test_the_documented_command_draws_the_chart(tmp_path: Path) -> None:
    db = tmp_path / "sample.db"
    _example().main(str(db))
    lg = SQLiteLedger(db)
    try:
        rows = lg.rows()
        report = lg.report("provider")
    finally:
        lg.close()
    assert report.total == sum((r.cost for r in rows if r.cost is not None), Decimal(0))
    out = tmp_path / "cost-per-day.png"
    result = CliRunner().invoke(app, ["report", "--plot", str(out)], env={"COMPUTEKIT_LEDGER": f"sqlite:///{db}"},
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "huggingface" in result.stdout
    assert "unpriced" in result.stdout
