"""``rerank()``: the verb through the public client, sync and async, priced per billed search unit."""

from __future__ import annotations

import warnings
from decimal import Decimal
from typing import Any

import pytest
from _support import KEY, Server, make_client, ok

import computekit as ck
from computekit.pricing import PriceBook, PriceRef

MODEL = "rerank-v3.5"
both = pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
BODY = {
    "id": "rr-1",
    "results": [{"index": 1, "relevance_score": 0.91}, {"index": 0, "relevance_score": 0.12}],
    "meta": {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}},
}
# A price a user configures for the search units (no bundled table has Cohere's rerank price).
PRICES = {f"cohere:{MODEL}": {"search_units": "0.002"}}


async def _rerank(client: Any, is_async: bool, *args: Any, **kwargs: Any) -> ck.Reranking:
    if is_async:
        result: ck.Reranking = await client.rerank(*args, **kwargs)
        await client.aclose()
        return result
    return client.rerank(*args, **kwargs)  # type: ignore[no-any-return]


@both
async def test_rerank_orders_and_prices_search_units(is_async: bool) -> None:
    server = Server([ok(BODY, **{"x-debug-trace-id": "trace-1"})])
    client = make_client(server, is_async=is_async, providers={"cohere": {"api_key": KEY}}, prices=PRICES)
    r = await _rerank(client, is_async, f"cohere:{MODEL}", "which is red?", ["a blue car", "a red bike"], top_n=2)

    assert [(h.index, h.relevance_score) for h in r.results] == [(1, 0.91), (0, 0.12)]
    assert server.seen[0].url == "https://api.cohere.com/v2/rerank"
    assert server.seen[0].body == {"model": MODEL, "query": "which is red?",
                                   "documents": ["a blue car", "a red bike"], "top_n": 2}
    assert r.usage.units == {"search_units": Decimal(1)}
    expected = PriceBook(PRICES).token_cost(PriceRef("cohere", MODEL, "cohere"), r.usage)
    assert r.cost.total == expected.total
    assert r.cost.total is not None
    assert r.cost.total > 0
    assert [line.item for line in r.cost.lines] == ["search_units"]
    assert r.cost.price_source is not None
    assert r.cost.price_source.table == "config"
    rows = client.ledger.rows()
    assert [(row.verb, row.outcome, row.cost) for row in rows] == [("rerank", "success", r.cost.total)]


@both
async def test_unpriced_search_units_are_none_not_zero(is_async: bool) -> None:
    client = make_client(Server([ok(BODY)]), is_async=is_async, providers={"cohere": {"api_key": KEY}})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = await _rerank(client, is_async, f"cohere:{MODEL}", "q", ["a", "b"])
    assert r.cost.total is None
    assert any(issubclass(w.category, ck.UnknownPriceWarning) for w in caught)


@both
async def test_rerank_refused_before_http(is_async: bool) -> None:
    server = Server([ok(BODY)])
    client = make_client(server, is_async=is_async)
    with pytest.raises(ck.UnsupportedCapabilityError, match="rerank"):
        await _rerank(client, is_async, "openai:gpt-4o-mini", "q", ["a"])
    client = make_client(server, is_async=is_async, providers={"cohere": {"api_key": KEY}})
    with pytest.raises(ck.InvalidRequestError):
        await _rerank(client, is_async, f"cohere:{MODEL}", "q", [])
    with pytest.raises(ck.InvalidRequestError):
        await _rerank(client, is_async, f"cohere:{MODEL}", "", ["a"])
    assert server.seen == []


def test_a_billed_unit_without_a_price_makes_the_total_unknown() -> None:
    """A token price alone cannot price a call that was also billed in another unit: None, not an understatement."""
    book = PriceBook({"acme:chat": {"input_mtok": "1", "output_mtok": "2"}})
    usage = ck.Usage(input_tokens=10, output_tokens=5, units={"web_searches": Decimal(1)})
    assert book.token_cost(PriceRef("acme", "chat"), usage).total is None
    priced = PriceBook({"acme:chat": {"input_mtok": "1", "output_mtok": "2", "web_searches": "0.01"}})
    cost = priced.token_cost(PriceRef("acme", "chat"), usage)
    assert cost.total == sum(line.amount for line in cost.lines)
    assert [line.item for line in cost.lines] == ["input", "output", "web_searches"]


def test_module_level_rerank_uses_the_default_client(monkeypatch: pytest.MonkeyPatch) -> None:
    import computekit._defaults as defaults

    client = make_client(Server([ok(BODY)]), providers={"cohere": {"api_key": KEY}}, prices=PRICES)
    monkeypatch.setattr(defaults, "_sync", client)
    assert ck.rerank(f"cohere:{MODEL}", "q", ["a", "b"]).results[0].index == 1
