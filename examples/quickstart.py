"""computekit quickstart: one completion, its cost, and a cost report.

    OPENAI_API_KEY=sk-... python examples/quickstart.py     # live
    # offline, from examples/cassettes/quickstart.yaml
    python examples/_replay.py examples/quickstart.py

The cassette's response was **authored by hand** in the shape of OpenAI's chat-completions API (it is not a
recording of a real call); replayed, nothing leaves the machine and no key is needed.
"""

from __future__ import annotations

import datetime as dt

import computekit as ck


def main() -> None:
    started = dt.datetime.now(dt.UTC)
    with (
        ck.Client() as client
    ):  # keys from the environment, settings from ./computekit.toml when present
        r = client.complete(
            "openai:gpt-4o-mini", "Write a haiku about GPUs", max_tokens=60
        )
        print(r.text)
        print(
            f"\n{r.usage.input_tokens} in / {r.usage.output_tokens} out -> {r.cost}  [{r.cost.price_source}]"
        )
        for line in r.cost.lines:
            print(
                f"  {line.item}: {line.quantity} x ${line.unit_price} = ${line.amount}"
            )
        print(
            "\nledger report:\n"
            + client.ledger.report(by="target", since=started).to_csv()
        )


if __name__ == "__main__":
    main()
