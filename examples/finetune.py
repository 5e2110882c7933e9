"""A fine-tune, from estimate to use: estimate the cost, launch the job, wait for it, then call the new model.

``dry_run=True`` checks the training data (``examples/data/support_tone.jsonl``, ten chat examples: OpenAI's
minimum) and estimates the cost with no HTTP at all: training tokens x epochs x the training price. The launch
uploads the file and creates the job; ``wait()`` polls it until it ends, then prices what OpenAI reports it
trained (``trained_tokens``) and writes that cost to the ledger, once. The fine-tuned model is a model id like any
other, priced at its own (fine-tuned) rates.

    # offline: the job takes a few milliseconds
    python examples/finetune.py --replay
    # live: OPENAI_API_KEY; the job takes minutes and costs about $0.01
    python examples/finetune.py

Replaying, ``wait()`` polls every 10 ms (the cassette holds two polls); live, it starts at 5 s between polls and
grows to 60 s.
"""

from __future__ import annotations

from pathlib import Path

import computekit as ck

# --8<-- [start:main]
BASE = "openai:gpt-4o-mini-2024-07-18"
TRAINING = Path(__file__).resolve().parent / "data" / "support_tone.jsonl"
EPOCHS = 3
SYSTEM = (
    "You are Acme's support assistant. Answer in one or two warm, plain sentences "
    "and end with a next step."
)


def main() -> None:
    with ck.Client() as client:
        estimate = client.finetune(
            BASE, training_file=TRAINING, epochs=EPOCHS, dry_run=True
        ).estimate
        print(f"estimate: {estimate.total} USD  ({estimate.lines[0].item})")

        job = client.finetune(
            BASE, training_file=TRAINING, epochs=EPOCHS, suffix="support"
        )
        print(f"launched {job.provider}:{job.id}: {job.status}")
        job = job.wait(
            timeout=3 * 3600
        )  # returns the ended job; polls every 5 s, growing to 60 s
        print(f"{job.status}: {job.fine_tuned_model}")
        print(f"trained tokens: {job.trained_tokens}")
        print(f"actual: {job.cost.total} USD  vs estimate {estimate.total} USD")

        r = client.complete(
            job.fine_tuned_model,
            "My parcel never came.",
            max_tokens=80,
            messages=[{"role": "system", "content": SYSTEM}],
        )
        print(f"\n{r.text}")
        print(f"cost: {r.cost.total} USD  [{r.model}]")


# --8<-- [end:main]


if __name__ == "__main__":
    main()
