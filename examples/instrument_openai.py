"""Keep your OpenAI SDK code, get computekit's exact costs, ledger, budgets and tags: ``ck.instrument(client)``.

The client is the SDK's own and every call is written as the SDK documents it. ``ck.instrument`` meters it at
its HTTP transport: each request is priced by the same code as ``ck.complete()``, recorded in computekit's
ledger with the tags of the enclosing ``ck.tags(...)`` block, and held to its budgets before it is sent. A
stream reaches the application as it arrives and is priced when it ends.

    python examples/instrument_openai.py --replay     # offline
    python examples/instrument_openai.py              # live: OPENAI_API_KEY
"""

from __future__ import annotations

import sys

import _replay
import openai

import computekit as ck

# --8<-- [start:main]
MODEL = "gpt-4o-mini"


def main() -> None:
    with (
        _replay.session("instrument_openai", ["OPENAI_API_KEY"], description=__doc__) as session,
        ck.Client(**session.client_kwargs) as computekit_client,
    ):
        client = ck.instrument(openai.OpenAI(), using=computekit_client)  # the same client, now metered

        with ck.tags(feature="haiku", customer="acme"):
            answer = client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "Write a haiku about GPUs"}], max_tokens=60)
            print(answer.choices[0].message.content)

            stream = client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "Now one about TPUs"}], max_tokens=60,
                stream=True, stream_options={"include_usage": True})  # usage in the last chunk: priced exactly
            for chunk in stream:
                if chunk.choices:
                    sys.stdout.write(chunk.choices[0].delta.content or "")
            print()

        report = computekit_client.ledger.report(by="tag:customer")
        for row in report.rows:
            print(f"customer {row.key}: {row.calls} calls, {row.cost} USD")
        for row in computekit_client.ledger.rows():
            print(f"  {row.verb:8} {row.model}  {row.input_tokens} in + {row.output_tokens} out  {row.cost} USD")
        print(f"cost: {report.total} USD")
# --8<-- [end:main]


if __name__ == "__main__":
    main()
