"""Pricing: exact Decimal arithmetic that agrees with genai-prices, config overrides, own tables, self-hosted."""

from __future__ import annotations

import datetime as dt
import tomllib
import warnings
from decimal import Decimal
from importlib import resources
from importlib.metadata import version
from typing import Any

import genai_prices
import pytest
from _support import Server, chat_json, make_client, ok, usage_json

import computekit as ck
from computekit.pricing import PriceBook, PriceRef, UnknownPriceWarning
from computekit.pricing._book import table_date

NOON = dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC)  # a fixed instant: tables carry dated history


def _genai_total(provider: str, model: str, u: ck.Usage, ctx: dict[str, str] | None = None,
                 when: dt.datetime | None = None) -> Decimal:
    gu = genai_prices.Usage(
        input_tokens=u.input_tokens,
        output_tokens=u.output_tokens,
        cache_read_tokens=u.cached_input_tokens,
        cache_write_tokens=u.cache_write_tokens,
    )
    calc = genai_prices.calc_price(gu, model, provider_id=provider, price_context=ctx,  # type: ignore[arg-type]
                                   genai_request_timestamp=when)
    return calc.total_price


CASES = [
    ("openai", "gpt-4o-mini", ck.Usage(input_tokens=1000, output_tokens=500), None),
    ("openai", "gpt-4o-mini-2024-07-18", ck.Usage(input_tokens=12_345, output_tokens=678, cached_input_tokens=1024),
     None),
    ("openai", "gpt-4o-mini", ck.Usage(input_tokens=12_345, output_tokens=678, cached_input_tokens=1024),
     {"service_tier": "priority"}),
    ("openai", "gpt-4o", ck.Usage(input_tokens=3, output_tokens=1), {"service_tier": "priority"}),
    ("openai", "gpt-4o", ck.Usage(input_tokens=50_000, output_tokens=2_000, cached_input_tokens=40_000),
     {"service_tier": "flex"}),
    ("openai", "o3", ck.Usage(input_tokens=2000, output_tokens=3000, cached_input_tokens=500), None),
    ("anthropic", "claude-3-5-haiku-latest",
     ck.Usage(input_tokens=10_000, output_tokens=800, cached_input_tokens=4_000, cache_write_tokens=2_000), None),
    # Tiered prices: under and over the long-context threshold.
    ("anthropic", "claude-sonnet-4-5",
     ck.Usage(input_tokens=150_000, output_tokens=1_000, cached_input_tokens=50_000, cache_write_tokens=10_000), None),
    ("anthropic", "claude-sonnet-4-5",
     ck.Usage(input_tokens=300_000, output_tokens=2_000, cached_input_tokens=100_000, cache_write_tokens=5_000), None),
    ("google", "gemini-2.5-pro", ck.Usage(input_tokens=250_000, output_tokens=4_000, cached_input_tokens=10_000),
     None),
    ("deepseek", "deepseek-chat", ck.Usage(input_tokens=7_777, output_tokens=333, cached_input_tokens=7_000), None),
    ("groq", "llama-3.1-8b-instant", ck.Usage(input_tokens=1, output_tokens=1), None),
]


@pytest.mark.parametrize(("provider", "model", "usage", "ctx"), CASES)
def test_agrees_with_genai_prices(provider: str, model: str, usage: ck.Usage, ctx: dict[str, str] | None) -> None:
    book = PriceBook()
    ref = PriceRef(provider, model, provider, tuple(ctx.items()) if ctx else ())
    cost = book.token_cost(ref, usage, NOON)
    assert cost.total is not None
    assert cost.total == _genai_total(provider, model, usage, ctx, NOON)
    # Lines: quantity x unit price = amount, amounts add up to the total, all exact.
    assert cost.lines
    for line in cost.lines:
        assert isinstance(line.amount, Decimal)
        assert line.quantity * line.unit_price == line.amount
    assert sum(line.amount for line in cost.lines) == cost.total
    assert sum(line.quantity for line in cost.lines if line.unit == "token") == usage.input_tokens + usage.output_tokens


def test_lines_use_the_table_rates() -> None:
    book = PriceBook()
    ref = PriceRef("openai", "gpt-4o-mini", "openai")
    rates = book.rates(ref, NOON)
    assert rates is not None
    u = ck.Usage(input_tokens=1000, output_tokens=200, cached_input_tokens=300)
    lines = {line.item: line for line in book.token_cost(ref, u, NOON).lines}
    mtok = Decimal(1_000_000)
    assert lines["input"].quantity == 700
    assert lines["input"].unit_price == rates.prices["input_mtok"] / mtok
    assert lines["cached input"].quantity == 300
    assert lines["cached input"].unit_price == rates.prices["cache_read_mtok"] / mtok
    assert lines["output"].quantity == 200
    assert lines["output"].unit_price == rates.prices["output_mtok"] / mtok


def test_priority_tier_costs_more_than_default() -> None:
    book = PriceBook()
    u = ck.Usage(input_tokens=1000, output_tokens=1000)
    default = book.token_cost(PriceRef("openai", "gpt-4o-mini", "openai"), u, NOON).total
    priority = book.token_cost(PriceRef("openai", "gpt-4o-mini", "openai", (("service_tier", "priority"),)), u, NOON)
    assert default is not None
    assert priority.total is not None
    assert priority.total > default


def test_zero_usage_costs_zero_not_unknown() -> None:
    cost = PriceBook().token_cost(PriceRef("openai", "gpt-4o-mini", "openai"), ck.Usage(), NOON)
    assert cost.total == 0
    assert cost.total is not None


def test_price_source_of_genai_prices() -> None:
    cost = PriceBook().token_cost(PriceRef("openai", "gpt-4o-mini", "openai"), ck.Usage(input_tokens=1), NOON)
    src = cost.price_source
    assert src is not None
    assert src.table == "genai-prices"
    assert src.version == version("genai-prices")
    assert isinstance(src.as_of, dt.date)
    assert src.as_of <= dt.datetime.now(dt.UTC).date()
    assert src.url
    assert "genai-prices" in str(src)


def test_unknown_model_is_none_with_one_warning() -> None:
    book = PriceBook()
    ref = PriceRef("openai", "no-such-model-xyz", "openai")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        c1 = book.token_cost(ref, ck.Usage(input_tokens=5))
        c2 = book.token_cost(ref, ck.Usage(input_tokens=5))
        c3 = book.token_cost(PriceRef("mystery", "model", None), ck.Usage(input_tokens=5))
    assert c1.total is None
    assert c2.total is None
    assert c3.total is None
    assert "openai:no-such-model-xyz" in (c1.reason or "")
    ours = [w for w in caught if issubclass(w.category, UnknownPriceWarning)]
    assert [str(w.message).split(":")[0:2] for w in ours] == [
        ["no price known for openai", "no-such-model-xyz"], ["no price known for mystery", "model"]]
    assert "[prices]" in str(ours[0].message)


def test_missing_rate_makes_the_cost_unknown() -> None:
    book = PriceBook({"custom:m": {"input_mtok": "1"}})
    ref = PriceRef("custom", "m")
    assert book.token_cost(ref, ck.Usage(input_tokens=10), NOON).total == Decimal("0.00001")
    with pytest.warns(UnknownPriceWarning, match='no output_mtok price known for custom:m.*"custom:m" = '
                                                 r'\{ output_mtok = "\.\.\." \}'):
        cost = book.token_cost(ref, ck.Usage(input_tokens=10, output_tokens=1), NOON)
    assert cost.total is None
    assert "output_mtok" in (cost.reason or "")


def test_cached_tokens_fall_back_to_the_input_rate() -> None:
    book = PriceBook({"custom:m": {"input_mtok": "2", "output_mtok": "4"}})
    cost = book.token_cost(PriceRef("custom", "m"), ck.Usage(input_tokens=100, cached_input_tokens=40), NOON)
    assert cost.total == Decimal(100) * 2 / 1_000_000


# ------------------------------------------------------------------------------------------------ overrides


def test_config_override_wins_over_genai_prices() -> None:
    book = PriceBook({"openai:gpt-4o-mini": {"input_mtok": "100", "output_mtok": "200"}})
    cost = book.token_cost(PriceRef("openai", "gpt-4o-mini", "openai"), ck.Usage(input_tokens=10, output_tokens=5))
    assert cost.total == Decimal("0.002")
    assert cost.price_source is not None
    assert cost.price_source.table == "config"
    # Other models still come from the tables.
    other = book.token_cost(PriceRef("openai", "gpt-4o", "openai"), ck.Usage(input_tokens=10), NOON)
    assert other.price_source is not None
    assert other.price_source.table == "genai-prices"


def test_config_override_wins_over_own_table() -> None:
    book = PriceBook({"ai21:jamba-mini": {"input_mtok": "9", "output_mtok": "9"}})
    cost = book.token_cost(PriceRef("ai21", "jamba-mini"), ck.Usage(input_tokens=1_000_000))
    assert cost.total == Decimal(9)


def test_per_request_override() -> None:
    book = PriceBook({"custom:m": {"per_request": "0.01", "input_mtok": "1"}})
    cost = book.token_cost(PriceRef("custom", "m"), ck.Usage(input_tokens=1_000_000, requests=3))
    assert cost.total == Decimal("1.03")
    assert [line.item for line in cost.lines] == ["input", "request"]


def test_client_config_prices_are_used() -> None:
    server = Server([ok(chat_json(usage=usage_json(1_000_000, 1_000_000)))])
    client = make_client(server, prices={"openai:gpt-4o-mini-2024-07-18": {"input_mtok": "1", "output_mtok": "3"}})
    r = client.complete("openai:gpt-4o-mini", "hi")
    assert r.cost.total == Decimal(4)
    assert r.cost.price_source is not None
    assert r.cost.price_source.table == "config"


# ------------------------------------------------------------------------------------------------ own tables


def _own_table() -> dict[str, Any]:
    return tomllib.loads(resources.files("computekit.pricing").joinpath("data/tokens.toml").read_text("utf-8"))


def test_own_table_is_well_formed() -> None:
    raw = _own_table()
    assert raw["meta"]["name"] == "computekit:tokens"
    assert table_date() == dt.date.fromisoformat(str(raw["meta"]["as_of"]))
    for m in raw["models"]:
        assert m["provider"]
        assert m["model"]
        assert str(m["source"]).startswith("https://")
        dt.date.fromisoformat(str(m["as_of"]))
        assert "input_mtok" in m
        assert "output_mtok" in m or "embed" in m["model"], "only embedding models have no output price"
        for k in ("input_mtok", "output_mtok"):
            if k in m:
                assert isinstance(m[k], str), "prices are strings, so that they parse to exact Decimals"
                assert Decimal(m[k]) >= 0


@pytest.mark.parametrize(
    ("model", "input_mtok", "output_mtok"),
    [("jamba-mini", "0.20", "0.40"), ("jamba-large", "2.00", "8.00")],
)
def test_ai21_entries(model: str, input_mtok: str, output_mtok: str) -> None:
    book = PriceBook()
    rates = book.rates(PriceRef("ai21", model))
    assert rates is not None
    assert rates.prices == {"input_mtok": Decimal(input_mtok), "output_mtok": Decimal(output_mtok)}
    assert rates.source.table == "computekit:tokens"
    assert rates.source.as_of == dt.date(2026, 11, 20)
    assert rates.source.url == "https://www.ai21.com/pricing/"
    cost = book.token_cost(PriceRef("ai21", model), ck.Usage(input_tokens=1_000_000, output_tokens=1_000_000))
    assert cost.total == Decimal(input_mtok) + Decimal(output_mtok)


def test_own_table_snapshot_prefix_match() -> None:
    book = PriceBook()
    snap = book.rates(PriceRef("ai21", "jamba-mini-1.6-2025-03"))
    assert snap is not None
    assert snap.prices["input_mtok"] == Decimal("0.20")
    assert book.rates(PriceRef("ai21", "jamba-minimal")) is None  # a prefix only counts at a "-" boundary
    assert book.rates(PriceRef("other", "jamba-mini")) is None  # and only for its own provider


# ------------------------------------------------------------------------------------------------ self-hosted


def test_self_hosted_is_free_with_a_reason() -> None:
    cost = PriceBook().token_cost(PriceRef("ollama", "llama3.2", None, metered=False),
                                  ck.Usage(input_tokens=100, output_tokens=100))
    assert cost.total == Decimal(0)
    assert isinstance(cost.total, Decimal)
    assert cost.reason
    assert "self-hosted" in cost.reason
    assert cost.price_source is not None
    assert cost.price_source.table == "self-hosted"


def test_self_hosted_through_the_client() -> None:
    server = Server([ok(chat_json(model="llama3.2"))])
    client = make_client(server, providers={})
    r = client.complete("ollama:llama3.2", "hi")
    assert server.seen[0].url == "http://localhost:11434/v1/chat/completions"
    assert server.seen[0].auth is None
    assert r.cost.total == Decimal(0)
    assert r.cost.reason
    assert client.ledger.rows()[0].cost == Decimal(0)


def test_self_hosted_with_a_config_price() -> None:
    server = Server([ok(chat_json(model="llama3.2", usage=usage_json(1_000_000, 0)))])
    client = make_client(server, providers={}, prices={"ollama:llama3.2": {"input_mtok": "0.05", "output_mtok": "0"}})
    r = client.complete("ollama:llama3.2", "hi")
    assert r.cost.total == Decimal("0.05")


def test_rates_are_cached_per_half_hour() -> None:
    book = PriceBook()
    ref = PriceRef("openai", "gpt-4o-mini", "openai")
    first = book.rates(ref, NOON)
    assert first is not None
    assert book.rates(ref, NOON.replace(minute=29, second=59)) is first
    assert book.rates(ref, NOON.replace(minute=30)) is not first


def test_rates_follow_the_table_history() -> None:
    """A call is priced at the rates in force when it was made (genai-prices keeps dated history)."""
    ref = PriceRef("openai", "gpt-4o-mini", "openai", (("service_tier", "priority"),))
    u = ck.Usage(input_tokens=1000, output_tokens=1000)
    for when in (dt.datetime(2025, 1, 15, 12, tzinfo=dt.UTC), NOON):
        assert PriceBook().token_cost(ref, u, when).total == _genai_total("openai", "gpt-4o-mini", u,
                                                                          {"service_tier": "priority"}, when)


def test_config_override_matches_dated_snapshots() -> None:
    """Providers report the snapshot that answered; an override of the base name still applies to it."""
    book = PriceBook({"openai:gpt-4o-mini": {"input_mtok": "7", "output_mtok": "7"}})
    u = ck.Usage(input_tokens=1_000_000)
    snap = book.token_cost(PriceRef("openai", "gpt-4o-mini-2024-07-18", "openai"), u, NOON)
    assert snap.total == Decimal(7)
    assert snap.price_source is not None
    assert snap.price_source.table == "config"
    # Only at a "-" boundary, and the longest listed id wins.
    assert book.rates(PriceRef("openai", "gpt-4o-minix", "openai"), NOON) is None
    book2 = PriceBook({"openai:gpt-4o": {"input_mtok": "1"}, "openai:gpt-4o-mini": {"input_mtok": "2"}})
    assert book2.token_cost(PriceRef("openai", "gpt-4o-mini-2024-07-18", "openai"), u, NOON).total == Decimal(2)


# ------------------------------------------------------------------------------------------------ built-in tool fees


def test_tool_fee_table_entries_are_sourced_dated_and_bounded() -> None:
    """Every entry of ``tools.toml`` names its source and the day it was read; ``until`` bounds a price that no
    longer holds (code-interpreter containers, billed by size and minutes from 2026-03-31)."""
    table = tomllib.loads(resources.files("computekit.pricing").joinpath("data/tools.toml").read_text("utf-8"))
    for fee in table["fees"]:
        assert fee["source"].startswith("https://"), fee
        dt.date.fromisoformat(fee["as_of"])
        assert Decimal(fee["price"]) > 0
        assert not fee.get("until") or dt.date.fromisoformat(fee["until"]) > dt.date.fromisoformat(fee["as_of"])
    units = {(f["provider"], f["unit"]): f for f in table["fees"]}
    assert units[("openai", "containers")]["until"] == "2026-03-31"
    assert ("openai", "web_search_preview_calls") not in units  # its price depends on the model family
    assert not [p for p, _ in units if p == "azure"]  # not confirmed: unpriced, with a warning


def test_a_tool_fee_past_its_until_leaves_the_call_unpriced_with_a_warning() -> None:
    book = PriceBook()
    ref = PriceRef("openai", "gpt-4.1-2025-04-14", table_provider="openai")
    usage = ck.Usage(input_tokens=100, output_tokens=10, units={"containers": Decimal(1)})
    before = book.token_cost(ref, usage, dt.datetime(2026, 3, 30, 23, 0, tzinfo=dt.UTC))
    assert before.total is not None
    assert {line.item: line.amount for line in before.lines}["containers"] == Decimal("0.03")
    with pytest.warns(UnknownPriceWarning, match="no containers price known for openai:gpt-4.1-2025-04-14"):
        after = book.token_cost(ref, usage, dt.datetime(2026, 3, 31, 0, 0, tzinfo=dt.UTC))
    assert after.total is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        book.token_cost(ref, usage, dt.datetime(2026, 4, 1, tzinfo=dt.UTC))  # said once per target and unit


def test_a_training_price_alone_leaves_the_models_calls_at_their_table_prices() -> None:
    """``training_mtok`` (as docs/finetune.md shows it) prices fine-tuning only: the model's completions keep the
    table's prices, and a budget can still reserve them."""
    model = "gpt-4o-mini-2024-07-18"
    u = usage_json(1_000_000, 1_000_000)
    server = Server([ok(chat_json(usage=u)), ok(chat_json(usage=u))])
    client = make_client(server, prices={f"openai:{model}": {"training_mtok": "3.00"}},
                         budget={"limit_usd": "1000", "period": "total"})
    for r in (client.complete(f"openai:{model}", "hi", max_tokens=10), client.complete("openai:gpt-4o-mini", "hi",
                                                                                        max_tokens=10)):
        assert r.cost.price_source is not None
        assert r.cost.price_source.table == "genai-prices"
        assert r.cost.total == _genai_total("openai", model, ck.Usage(input_tokens=1_000_000,
                                                                      output_tokens=1_000_000))
    training = PriceBook({f"openai:{model}": {"training_mtok": "3.00"}}).training("openai", model)
    assert training is not None
    assert training.per_mtok == Decimal("3.00")  # and the training price still applies


def _dated_change() -> tuple[str, str, str, dt.date]:
    """The latest dated price change in genai-prices, on a provider computekit prices from it, that changes what
    1M input and 1M output tokens cost: (provider, table id, model, date)."""
    from genai_prices import data_snapshot
    from genai_prices.types import StartDateConstraint

    tables = {"openai": "openai", "google": "gemini", "deepseek": "deepseek", "fireworks": "fireworks",
              "together": "together", "groq": "groq", "baseten": "baseten"}
    changes = sorted(((cp.constraint.start_date, provider.id, model.id)
                      for provider in data_snapshot.get_snapshot().providers if provider.id in tables
                      for model in provider.models for cp in (model.prices if isinstance(model.prices, list) else [])
                      if isinstance(cp.constraint, StartDateConstraint)), reverse=True)
    u = ck.Usage(input_tokens=1_000_000, output_tokens=1_000_000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnknownPriceWarning)
        for start, table, model in changes:
            ref = PriceRef(tables[table], model, table)
            at = dt.datetime.combine(start, dt.time(), dt.UTC)
            new, old = (PriceBook().token_cost(ref, u, t).total for t in (at, at - dt.timedelta(microseconds=1)))
            if new is not None and old is not None and new != old:
                return tables[table], table, model, start
    raise AssertionError("genai-prices has no dated price change to test with")


def test_a_call_at_a_price_changes_instant_is_priced_and_dated_by_the_new_price() -> None:
    """At the instant a dated change takes effect (00:00 UTC of its date, whatever zone the time is given in) the
    call gets the new price, a microsecond before the old one; its source is dated by the change in force then,
    not by the day the process started."""
    provider, table, model, start = _dated_change()
    at = dt.datetime.combine(start, dt.time(), dt.UTC)
    before = at - dt.timedelta(microseconds=1)
    u = ck.Usage(input_tokens=1_000_000, output_tokens=1_000_000)
    ref = PriceRef(provider, model, table)
    for when in (before, at, at.astimezone(dt.timezone(dt.timedelta(hours=-5)))):
        cost = PriceBook().token_cost(ref, u, when)
        assert cost.total == _genai_total(table, model, u, when=when)
        assert cost.price_source is not None
        assert cost.price_source.as_of is not None
        assert cost.price_source.as_of <= when.astimezone(dt.UTC).date()
    new = PriceBook().token_cost(ref, u, at).price_source
    assert new is not None
    assert new.as_of == start


def test_an_override_of_a_fee_alone_adds_to_the_model_token_rates() -> None:
    """``[prices] "openai:gpt-4o" = { web_search_preview_calls = "0.025" }`` (as the OpenAI page documents it)
    prices the fee and keeps the model's token rates from the tables: the call is not left unpriced."""
    ref = PriceRef("openai", "gpt-4o-2024-08-06", "openai")
    tokens = ck.Usage(input_tokens=1000, output_tokens=100)
    with_fee = ck.Usage(input_tokens=1000, output_tokens=100, units={"web_search_preview_calls": Decimal(2)})
    fee = Decimal("0.025")
    table = PriceBook().token_cost(ref, tokens, NOON).total
    assert table is not None
    book = PriceBook({"openai:gpt-4o": {"web_search_preview_calls": str(fee)}})
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnknownPriceWarning)
        assert book.token_cost(ref, with_fee, NOON).total == table + 2 * fee
    # An entry with a token price is still the model's whole price, as before.
    own = PriceBook({"openai:gpt-4o": {"input_mtok": "1", "output_mtok": "2", "web_search_preview_calls": str(fee)}})
    assert own.token_cost(ref, with_fee, NOON).total == Decimal("0.001") + Decimal("0.0002") + 2 * fee
