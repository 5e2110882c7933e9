"""Write a sample ledger to try ``computekit report`` on: two weeks of attempts on three providers.

The attempts are **synthetic** (no call is made): their token counts are drawn from a fixed seed, and each one is
priced with computekit's own price tables, exactly as a real call's usage would be. A few are errors (not billed:
cost 0) and a few are on a model no table prices (cost unknown: counted as unpriced, never as 0).

    python docs/img/sample_ledger.py /tmp/sample-ledger.db
    COMPUTEKIT_LEDGER=sqlite:////tmp/sample-ledger.db computekit report --by tag:feature
    COMPUTEKIT_LEDGER=sqlite:////tmp/sample-ledger.db computekit report --plot cost.png --html report.html

The chart in the docs (docs/img/cost-per-day.png) is made this way.
"""

from __future__ import annotations

import datetime as dt
import random
import sys
import warnings
from decimal import Decimal
from pathlib import Path

from computekit import Usage
from computekit.ledger import LedgerRow, SQLiteLedger
from computekit.pricing import PriceBook, PriceRef, UnknownPriceWarning

START = dt.datetime(2026, 3, 2, 7, 0, tzinfo=dt.UTC)
DAYS = 14
SEED = 7

# (provider, model, genai-prices provider id or None when no table prices it, calls per weekday, prompt size)
TARGETS = [
    ("openai", "gpt-4o-mini", "openai", 40, 1800),
    ("anthropic", "claude-haiku-4-5", "anthropic", 14, 2600),
    ("mistral", "mistral-small-latest", "mistral", 18, 1200),
    ("huggingface", "acme/in-house-7b", None, 2, 900),  # priced by nobody: unpriced, never $0
]
FEATURES = ["search", "summaries", "support-bot"]
CUSTOMERS = ["acme", "globex", "initech"]


def sample_rows(seed: int = SEED) -> list[LedgerRow]:
    """The sample attempts, priced from computekit's tables at their own time."""
    rng = random.Random(seed)
    book = PriceBook()
    warnings.simplefilter("ignore", UnknownPriceWarning)  # the in-house model is unpriced on purpose
    rows: list[LedgerRow] = []
    for day in range(DAYS):
        weekend = (START + dt.timedelta(days=day)).weekday() >= 5
        growth = 1 + day / DAYS  # usage grows over the two weeks
        for provider, model, table, per_day, prompt in TARGETS:
            n = max(1, int(per_day * growth * (0.35 if weekend else 1) * rng.uniform(0.7, 1.3)))
            for _ in range(n):
                ts = START + dt.timedelta(days=day, seconds=rng.randrange(0, 14 * 3600))
                usage = Usage(input_tokens=int(prompt * rng.uniform(0.5, 1.8)),
                              output_tokens=int(rng.uniform(80, 700)))
                ref = PriceRef(provider, model, table)
                tags = {"feature": rng.choice(FEATURES), "customer": rng.choice(CUSTOMERS)}
                if rng.random() < 0.03:  # a 429: recorded, not billed
                    rows.append(LedgerRow(ts=ts, verb="complete", provider=provider, model=model, outcome="error",
                                          latency_ms=rng.uniform(40, 200), cost=Decimal(0),
                                          error_type="RateLimitError", status=429, tags=tags))
                    continue
                cost = book.token_cost(ref, usage, ts)
                rows.append(LedgerRow(
                    ts=ts, verb="complete", provider=provider, model=model, outcome="success",
                    latency_ms=rng.uniform(300, 2500), input_tokens=usage.input_tokens,
                    output_tokens=usage.output_tokens, cost=cost.total, estimated=cost.estimated,
                    price_source=str(cost.price_source) if cost.price_source else None, tags=tags,
                ))
    rows.sort(key=lambda r: r.ts)
    return rows


def main(path: str) -> None:
    target = Path(path)
    if target.exists():
        sys.exit(f"{target} exists: pass a new file")
    ledger = SQLiteLedger(target)
    try:
        rows = sample_rows()
        for row in rows:
            ledger.record(row)
    finally:
        ledger.close()
    print(f"wrote {len(rows)} sample attempts to {target}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python docs/img/sample_ledger.py NEW_LEDGER.db")
    main(sys.argv[1])
