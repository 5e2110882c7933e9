"""One cost table for the Gemini API and Vertex AI, from real recordings' usage (``shared/conformance/google``) and
two long-context rows.

Each recorded row parses the response with the adapter, prices it with computekit's price book and with
genai-prices (its own Google extractor on the same ``usageMetadata``, plus the grounded searches it does not read),
and checks the two are equal under Decimal equality and that each cost line is quantity x unit price. The
long-context rows price a usage above gemini-2.5-pro's 200k-token threshold (and one just at it), where every token
moves to the higher tier. Run with ``-s`` to see the table::

    PYTHONPATH=$PWD python -m pytest -q -s tests/adapters/test_gemini_cost_table.py
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import genai_prices
import pytest
from _conformance import load, require_conformance_dir
from test_gemini_conformance import WHEN, adapter, expected, parse, web_searches

import computekit as ck
from computekit.adapters._base import ProviderSettings
from computekit.adapters.gemini import GEMINI_BASE_URL, GeminiAdapter
from computekit.pricing import PriceBook

# (what the row shows, recording, exchange index)
ROWS = [
    ("text", "google/google_model_instructions.yaml", 0),
    ("text, stream", "google/google_model_stream.yaml", 0),
    ("thinking", "google/google_model_thinking_part.yaml", 0),
    ("tool call + thought signature", "google/google_streaming_tool_call_thought_signature.yaml", 0),
    ("implicit cache (video)", "google/google_model_mobile_youtube_video_url_input.yaml", 0),
    ("audio input (Vertex)", "google/google_url_input-AudioUrl.yaml", 0),
    ("Google Search grounding (2.5: per prompt)", "google/google_model_web_search_tool.yaml", 0),
    ("Google Search grounding (3: per query, Vertex)",
     "google/google_vertex_tool_combination_omits_include_server_side_tool_invocations.yaml", 1),
    ("URL context tool (32 prompt + 2395 toolUsePrompt)", "google/google_model_web_fetch_tool.yaml", 0),
    ("flex tier (Vertex)", "google/google_vertex_service_tier_flex.yaml", 0),
    ("3.1 flash-lite, serviceTier standard", "google/google_model_top_k.yaml", 0),
]


def _fmt(d: Decimal) -> str:
    return f"{d.normalize():f}"


def _usage_text(u: ck.Usage) -> str:
    parts = [f"in {u.input_tokens}"]
    if u.cached_input_tokens:
        parts.append(f"cached {u.cached_input_tokens}")
    if u.cached_input_audio_tokens:
        parts.append(f"(cached audio {u.cached_input_audio_tokens})")
    if u.input_audio_tokens:
        parts.append(f"audio in {u.input_audio_tokens}")
    parts.append(f"out {u.output_tokens}")
    if u.reasoning_tokens:
        parts.append(f"(thoughts {u.reasoning_tokens})")
    for k, v in u.units.items():
        parts.append(f"{k} {v}")
    return ", ".join(parts)


def _row(label: str, model: str, cost: ck.Cost, usage: ck.Usage, want: Decimal) -> str:
    assert cost.total is not None, cost.reason
    for line in cost.lines:
        assert line.amount == line.quantity * line.unit_price, label
    assert sum(line.amount for line in cost.lines) == cost.total
    prices = "; ".join(f"{line.item} {_fmt(line.unit_price * 1_000_000)}/M" if line.unit == "token"
                       else f"{line.item} {_fmt(line.unit_price)}" for line in cost.lines)
    return f"| {label} | {model} | {_usage_text(usage)} | {prices} | {_fmt(cost.total)} | {_fmt(want)} |"


def test_cost_table() -> None:
    require_conformance_dir()
    book = PriceBook()
    lines = ["| case | model | usage | unit prices (USD) | computekit cost | genai-prices |",
             "|---|---|---|---|---|---|"]
    for label, rel, index in ROWS:
        ex = load(rel)[index]
        result, _ = parse(ex)
        want_facts = expected(ex)
        ctx = {"service_tier": result.service_tier} if result.service_tier in ("flex", "priority") else None
        last = {"modelVersion": want_facts["model"], "usageMetadata": want_facts["usage"]}
        base = genai_prices.extract_usage(last, provider_id="google").calc_price(genai_request_timestamp=WHEN,
                                                                                 price_context=ctx)
        searches = web_searches(want_facts["model"], want_facts["grounding"])
        want = base.total_price + Decimal(searches) * (base.model_price.web_searches_kcount or 0) / 1000
        cost = book.token_cost(adapter(ex).price_ref(result.model, result), result.usage, WHEN)
        assert cost.total == want, label
        lines.append(_row(label, want_facts["model"], cost, result.usage, want))
    # Long-context tier: every token of a call above 200k input tokens pays the higher tier.
    ad = GeminiAdapter(ProviderSettings(name="gemini", base_url=GEMINI_BASE_URL, api_key=None, timeout=30))
    ref = ad.price_ref("gemini-2.5-pro")
    when = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    for prompt in (200_000, 250_000):
        usage = ck.Usage(input_tokens=prompt, output_tokens=1000, cached_input_tokens=50_000)
        cost = book.token_cost(ref, usage, when)
        want = genai_prices.calc_price(
            genai_prices.Usage(input_tokens=prompt, output_tokens=1000, cache_read_tokens=50_000), "gemini-2.5-pro",
            provider_id="google", genai_request_timestamp=when).total_price
        assert cost.total == want
        lines.append(_row(f"long context, {prompt:,} prompt tokens (synthetic usage)", "gemini-2.5-pro", cost,
                          usage, want))
    low, high = (book.token_cost(ref, ck.Usage(input_tokens=n, output_tokens=1000), when) for n in (200_000, 200_001))
    assert low.total is not None
    assert high.total is not None
    assert high.lines[0].unit_price > low.lines[0].unit_price  # the tier starts above 200,000
    print("\n" + "\n".join(lines))
    assert len(lines) == 2 + len(ROWS) + 2


@pytest.mark.parametrize("rel", [r for _, r, _ in ROWS])
def test_rows_name_real_recordings(rel: str) -> None:
    require_conformance_dir()
    assert load(rel)
