"""A batch job under a budget: the budget refuses the prompts it cannot afford, before sending them.

The client has a daily budget (``budget={"limit_usd": ..., "period": "day"}``). Before each call, computekit
reserves the call's **worst case**: the prompt's size in bytes as input tokens, plus ``max_tokens`` output tokens,
at the model's prices. When that does not fit in what is left, the call raises ``BudgetExceededError`` and nothing
is sent. When a call ends, its reservation is settled to what it really cost. So the budget refuses a call once its
worst case no longer fits, even if its actual cost would have fitted: that is the price of never overspending.

The budget counts the ledger's rows, so the example gives the client a ledger of its own, in a temporary file: a
fresh day's budget, which your own ledger's spend does not touch.

    # live: OPENAI_API_KEY (at most $0.0002 is spent)
    python examples/budget_batch.py
    python examples/_replay.py examples/budget_batch.py        # offline
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

import computekit as ck

# --8<-- [start:main]
MODEL = "openai:gpt-4o-mini"
LIMIT_USD = "0.0002"
MAX_TOKENS = (
    200  # what each call may cost at most is what the budget reserves: keep it tight
)
PRODUCTS = [
    "a solar-powered camping lantern",
    "a cast-iron pizza pan",
    "noise-cancelling sleep earbuds",
    "a self-watering herb planter",
    "a folding electric bike",
    "a smart pet water fountain",
]


def main() -> None:
    with (
        tempfile.TemporaryDirectory() as tmp,
        ck.Client(
            ledger=f"sqlite:///{Path(tmp) / 'ledger.db'}",
            budget={"limit_usd": LIMIT_USD, "period": "day"},
        ) as client,
    ):
        for i, product in enumerate(PRODUCTS, 1):
            try:
                r = client.complete(
                    MODEL,
                    f"Write a one-sentence product description for {product}.",
                    max_tokens=MAX_TOKENS,
                    tags={"job": "descriptions"},
                )
            except ck.BudgetExceededError as e:  # raised before anything is sent
                print(
                    f"{i}. refused   worst case {e.requested} USD"
                    f" > remaining {e.remaining} USD\n"
                    f"             (spent {e.spent} + reserved {e.reserved}"
                    f" of {e.limit} USD)"
                )
                continue
            u = r.usage
            print(
                f"{i}. answered  {u.input_tokens} in + {u.output_tokens} out"
                f"  cost: {r.cost.total} USD"
            )
            print(f"   {r.text}")

        # The budget's period is the UTC day: its spend is the ledger's total since
        # midnight UTC.
        midnight = dt.datetime.now(dt.UTC).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        report = client.ledger.report(by="tag:job", since=midnight)
        print("\nreport (by tag:job):")
        for row in report.rows:
            tokens = f"{row.input_tokens} in + {row.output_tokens} out"
            print(f"  {row.key:<14} {row.calls} calls  {tokens}  {row.cost} USD")
        print(f"spent: {report.total} USD of {LIMIT_USD} USD today")


# --8<-- [end:main]


if __name__ == "__main__":
    main()
