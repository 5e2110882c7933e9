"""Keep your OpenAI SDK code, get computekit's exact costs, ledger, budgets and tags: ``ck.instrument(client)``.

The client is the SDK's own and every call is written as the SDK documents it. ``ck.instrument`` meters it at
its HTTP transport: each request is priced by the same code as ``ck.complete()``, recorded in computekit's
ledger with the tags of the enclosing ``ck.tags(...)`` block, and held to its budgets before it is sent. A
stream reaches the application as it arrives and is priced when it ends.

    # live: OPENAI_API_KEY
    python examples/instrument_openai.py
    python examples/_replay.py examples/instrument_openai.py          # offline
"""

from __future__ import annotations

import sys

import openai

import computekit as ck

# --8<-- [start:main]
MODEL = "gpt-4o-mini"
HAIKU = [{"role": "user", "content": "Write a haiku about GPUs"}]
TPU = [{"role": "user", "content": "Now one about TPUs"}]


def main() -> None:
    with ck.Client() as computekit_client:
        # The same client object, now metered with computekit_client's ledger and prices
        client = ck.instrument(openai.OpenAI(), using=computekit_client)

        with ck.tags(feature="haiku", customer="acme"):
            answer = client.chat.completions.create(
                model=MODEL, messages=HAIKU, max_tokens=60
            )
            print(answer.choices[0].message.content)

            stream = client.chat.completions.create(
                model=MODEL, messages=TPU, max_tokens=60, stream=True,
                # usage in the last chunk: the stream is priced exactly
                stream_options={"include_usage": True},
            )
            for chunk in stream:
                if chunk.choices:
                    sys.stdout.write(chunk.choices[0].delta.content or "")
            print()

        report = computekit_client.ledger.report(by="tag:customer")
        for group in report.rows:
            print(f"customer {group.key}: {group.calls} calls, {group.cost} USD")
        for row in computekit_client.ledger.rows():
            tokens = f"{row.input_tokens} in + {row.output_tokens} out"
            print(f"  {row.verb:8} {row.model}  {tokens}  {row.cost} USD")
        print(f"cost: {report.total} USD")
# --8<-- [end:main]


if __name__ == "__main__":
    main()
