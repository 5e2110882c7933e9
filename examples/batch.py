"""A batch at the batch price: estimate, submit, wait, read the results, see what was saved.

Four product descriptions go to OpenAI's Batch API in one batch. ``estimate_only=True``
checks every request and estimates the batch (input tokens counted locally, every answer
at its ``max_tokens``, at the batch price) with no HTTP at all. The submit uploads the
lines and creates the batch; ``wait()`` polls it until it ends; ``results()`` streams the
answers, each priced at the batch price and written to the ledger once. At the end the
batch's cost is shown beside what the same calls cost synchronously, and what was saved.

The answers are written as JSONL to ``--out FILE`` (else into a temporary folder).

    # offline: the batch ends after two polls
    python examples/_replay.py examples/batch.py --out answers.jsonl
    # live: OPENAI_API_KEY; a batch can take up to 24 h and costs about $0.0001
    python examples/batch.py --out answers.jsonl
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import computekit as ck

# --8<-- [start:main]
MODEL = "openai:gpt-4o-mini"
PRODUCTS = [
    "a solar-powered camping lantern",
    "a cast-iron pizza pan",
    "noise-cancelling sleep earbuds",
    "a self-watering herb planter",
]
REQUESTS = [
    {
        "custom_id": f"product-{i}",
        "messages": [
            {"role": "user", "content": f"One-sentence product description: {p}"}
        ],
        "max_tokens": 60,
    }
    for i, p in enumerate(PRODUCTS, 1)
]


def run(out: Path) -> None:
    with ck.Client() as client:
        check = client.batch(MODEL, REQUESTS, estimate_only=True)
        print(f"estimate: {check.estimate.total} USD for {check.total} requests")

        job = client.batch(MODEL, REQUESTS, tags={"job": "descriptions"})
        print(f"submitted {job.provider}:{job.id}: {job.status}")
        job.wait(timeout=24 * 3600)  # polls every 10 s, growing to 5 min
        print(f"{job.status}: {job.completed} completed, {job.failed} failed")

        with out.open("w", encoding="utf-8") as fh:
            for custom_id, answer in job.results():
                if isinstance(answer, ck.ProviderError):
                    print(f"{custom_id}: failed: {answer}")
                    continue
                print(f"{custom_id}: {answer.text}")
                print(f"  cost: {answer.cost.total} USD")
                line = {"custom_id": custom_id, "text": answer.text}
                fh.write(json.dumps(line) + "\n")

        print(f"batch cost:        {job.cost.total} USD")
        print(f"synchronous price: {job.synchronous} USD")
        print(f"saved:             {job.saved} USD")
        by_verb = {row.key: row for row in client.ledger.report("verb").rows}
        recorded = by_verb["batch"]
        print(f"ledger: {recorded.calls} batch items, {recorded.cost} USD")


# --8<-- [end:main]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="the answers' JSONL file")
    args = parser.parse_args()
    if args.out is not None:
        run(args.out)
        return
    with tempfile.TemporaryDirectory(prefix="computekit-batch-") as tmp:
        run(Path(tmp) / "answers.jsonl")


if __name__ == "__main__":
    main()
