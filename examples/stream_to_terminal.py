"""Stream a completion to the terminal, then print its usage and exact cost.

Text is printed as it arrives. computekit asks OpenAI-format servers for the usage in the last chunk
(``stream_options.include_usage``), so a streamed call is priced like any other: ``s.result`` is the finished
``Completion``, with usage and cost, once the stream has been read to its end.

    # live: OPENAI_API_KEY
    python examples/stream_to_terminal.py
    python examples/_replay.py examples/stream_to_terminal.py          # offline
"""

from __future__ import annotations

import sys

import computekit as ck

# --8<-- [start:main]
MODEL = "openai:gpt-4o-mini"


def main() -> None:
    with ck.Client() as client:
        chunks = 0
        with client.stream(MODEL, "Write a haiku about GPUs", max_tokens=60) as s:
            for chunk in s:
                sys.stdout.write(chunk.text)
                sys.stdout.flush()  # show each piece now, not when a buffer fills
                chunks += 1
        print()
        r = s.result
        print(
            f"\n{chunks} chunks; answered by {r.response_model};"
            f" finish_reason={r.finish_reason}"
        )
        print(
            f"usage: {r.usage.input_tokens} input"
            f" + {r.usage.output_tokens} output tokens"
        )
        for line in r.cost.lines:
            print(
                f"  {line.item}: {line.quantity} x {line.unit_price:f}"
                f" = {line.amount:f} USD"
            )
        print(f"cost: {r.cost.total} USD  [{r.cost.price_source}]")


# --8<-- [end:main]


if __name__ == "__main__":
    main()
