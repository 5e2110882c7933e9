"""A cost table from the real Bedrock and OpenRouter recordings: model, usage, unit prices and cost, one row per
model (its first recorded Converse answer, or OpenRouter chat answer), every cost checked equal to genai-prices'
on the same usage under Decimal equality, and cost = sum of quantity x unit price line by line. OpenRouter rows also
show what OpenRouter billed (``usage.cost``), which is the call's cost when present. Run with ``-s`` to see it::

    PYTHONPATH=$PWD python -m pytest -q -s tests/adapters/test_bedrock_cost_table.py
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import test_bedrock_conformance as bedrock
import test_openrouter_conformance as openrouter
from _conformance import require_conformance_dir

from computekit.adapters._base import CompleteRequest, HTTPResponse
from computekit.pricing import PriceBook

pytestmark = [pytest.mark.conformance, pytest.mark.filterwarnings("ignore::computekit.pricing.UnknownPriceWarning")]


def _fmt(d: Decimal | None) -> str:
    return "None" if d is None else f"{d.normalize():f}"


def _usage(u: Any) -> str:
    cache = f"cached {u.cached_input_tokens}, cache write {u.cache_write_tokens}"
    return f"in {u.input_tokens} ({cache}) / out {u.output_tokens}"


def _rates(cost: Any) -> str:
    per_mtok = {line.item: line.unit_price * 1_000_000 for line in cost.lines if line.unit == "token"}
    return ", ".join(f"{k} {_fmt(v)}" for k, v in per_mtok.items()) or "-"


def bedrock_rows() -> list[tuple[str, str, str, str]]:
    rows = []
    seen: set[str] = set()
    for ex in bedrock.EXCHANGES:
        if bedrock.kind(ex) not in ("converse", "stream") or bedrock.model_of(ex) in seen:
            continue
        model = bedrock.model_of(ex)
        seen.add(model)
        when = bedrock.when_of(ex)
        if bedrock.kind(ex) == "stream":
            result, _ = bedrock.feed_stream(CompleteRequest(model=model, messages=[], stream=True), ex.content, 1 << 20)
            raw = bedrock.expected_from_stream(ex)["usage"]
        else:
            result = bedrock._parse(ex)
            raw = ex.json()["usage"]
        cost = PriceBook().token_cost(bedrock.adapter().price_ref(model, result), result.usage, when)
        assert cost.total == bedrock.check_cost(result, raw, model, when)  # genai-prices, Decimal equality
        if cost.total is not None:
            assert sum(line.quantity * line.unit_price for line in cost.lines) == cost.total
        rows.append((f"bedrock:{model}", _usage(result.usage), _rates(cost), _fmt(cost.total)))
    return rows


def openrouter_rows() -> list[tuple[str, str, str, str]]:
    rows = []
    seen: set[str] = set()
    for ex in openrouter.EXCHANGES:
        if openrouter.kind(ex) != "chat":
            continue
        data = ex.json()
        if data["model"] in seen:
            continue
        seen.add(data["model"])
        result = openrouter.adapter().parse_complete(CompleteRequest(model=ex.request_body["model"], messages=[]),
                                                     HTTPResponse(200, ex.headers, ex.content))
        when = openrouter.when_of(ex, data.get("created"))
        cost, table = openrouter.priced(result, when)
        openrouter.check_cost(cost, table, data["usage"], data["model"], when)
        billed = data["usage"].get("cost")
        shown = _fmt(cost.total) + (f" (billed; table {_fmt(table.total)})" if billed is not None else "")
        rows.append((f"openrouter:{data['model']}", _usage(result.usage), _rates(table), shown))
    return rows


def test_cost_table(capsys: pytest.CaptureFixture[str]) -> None:
    require_conformance_dir()
    rows = bedrock_rows() + openrouter_rows()
    assert len(rows) >= 20
    assert any("billed" in r[3] for r in rows)
    lines = ["| model | usage (tokens) | price (USD per 1M tokens) | cost (USD) |", "|---|---|---|---|"]
    lines += [f"| {m} | {u} | {p} | {c} |" for m, u, p, c in rows]
    with capsys.disabled():
        print("\n" + "\n".join(lines))
