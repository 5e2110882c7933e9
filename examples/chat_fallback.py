"""Chat with fallback across three providers: OpenAI, then Anthropic, then Mistral.

A route tries its targets in order. Here retries on the same target are off (``retry={"max_retries": 0}``): in an
interactive chat it is better to move to the next provider at once than to wait. The replayed cassette has OpenAI
answer 429 (rate limited) and Anthropic 529 (overloaded), so Mistral answers. Every attempt is listed, with what it
cost (error responses are not billed: $0), and every attempt is in the ledger.

    # live: OPENAI_API_KEY, ANTHROPIC_API_KEY, MISTRAL_API_KEY
    python examples/chat_fallback.py
    # offline, from its cassette
    python examples/_replay.py examples/chat_fallback.py
"""

from __future__ import annotations

import datetime as dt

import computekit as ck

# --8<-- [start:main]
ROUTE = [
    "openai:gpt-4o-mini",
    "anthropic:claude-haiku-4-5",
    "mistral:mistral-small-latest",
]


def main() -> None:
    started = dt.datetime.now(dt.UTC)
    with ck.Client(
        routes={"chat": {"targets": ROUTE}}, retry={"max_retries": 0}
    ) as client:
        r = client.complete(
            "chat", "In one sentence: why do GPUs suit deep learning?", max_tokens=80
        )

        print(f"answered by {r.provider}:{r.model}")
        print(r.text)
        print("\nattempts:")
        for i, a in enumerate(r.attempts, 1):
            what = "ok" if a.outcome == "success" else f"{a.error_type} {a.status}"
            cost = a.cost.total if a.cost is not None else None
            target = f"{a.provider}:{a.model}"
            print(f"  {i}. {target:<30} {a.outcome:<8} {what:<20} cost: {cost} USD")
        u = r.usage
        print(f"\nusage: {u.input_tokens} input + {u.output_tokens} output tokens")
        print(f"cost: {r.cost.total} USD  [{r.cost.price_source}]")

        # this run's calls only
        report = client.ledger.report(group_by="target", since=started)
        attempts = sum(row.calls for row in report.rows)
        print(f"ledger: {attempts} attempts, total {report.total} USD")


# --8<-- [end:main]


if __name__ == "__main__":
    main()
