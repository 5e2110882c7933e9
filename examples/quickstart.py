"""computekit quickstart: one completion, its cost, and a cost report.

Offline by default: the HTTP answer comes from an httpx.MockTransport serving the response below, which was
**authored by hand** in the shape of OpenAI's chat-completions API (it is not a recording of a real call).
Nothing leaves the machine and no key is needed.

Live: ``COMPUTEKIT_LIVE=1 OPENAI_API_KEY=sk-... python examples/quickstart.py`` calls OpenAI for real.
"""

from __future__ import annotations

import os

import httpx

import computekit as ck

# AUTHORED, not recorded: a minimal chat.completion object as OpenAI documents it.
AUTHORED_RESPONSE = {
    "id": "chatcmpl-authored-example",
    "object": "chat.completion",
    "created": 1764115200,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Silicon rivers hum,\nten thousand cores awaken,\nheat becomes the thought.",
            },
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 14, "completion_tokens": 19, "total_tokens": 33},
}


def replay(request: httpx.Request) -> httpx.Response:
    assert request.url.path.endswith("/chat/completions"), request.url
    return httpx.Response(200, json=AUTHORED_RESPONSE, headers={"x-request-id": "req_authored_example"})


def main() -> None:
    live = os.environ.get("COMPUTEKIT_LIVE") == "1" and bool(os.environ.get("OPENAI_API_KEY"))
    if live:
        client = ck.Client(ledger="sqlite://:memory:")  # the key comes from $OPENAI_API_KEY
    else:
        client = ck.Client(
            config=None,  # ignore any ./computekit.toml
            ledger="sqlite://:memory:",  # keep the example's calls out of your real ledger
            providers={"openai": {"api_key": "sk-offline-placeholder"}},  # never sent anywhere
            http_client=httpx.Client(transport=httpx.MockTransport(replay)),
        )
    with client:
        r = client.complete("openai:gpt-4o-mini", "Write a haiku about GPUs", max_tokens=60)
        print(r.text)
        print(f"\n{r.usage.input_tokens} in / {r.usage.output_tokens} out -> {r.cost}  [{r.cost.price_source}]")
        for line in r.cost.lines:
            print(f"  {line.item}: {line.quantity} x ${line.unit_price:f} = ${line.amount:f}")
        print("\nledger report:\n" + client.ledger.report(by="target").to_csv())
    print("(live call)" if live else "(offline: authored response, no network)")


if __name__ == "__main__":
    main()
