"""Generate an image on Replicate, save it, and print what the GPU time cost.

Replicate reports how long the model ran (``metrics.predict_time``) but not on which hardware; computekit never
guesses it. This model version runs on an Nvidia L40S (its Replicate page says so), so the example passes
``hardware="gpu-l40s"``, and the cost is the run's GPU-seconds x the L40S per-second price from computekit's dated
table (``computekit/pricing/data/gpu.toml``, read from Replicate's pricing page).

    python examples/replicate_image.py                  # live: REPLICATE_API_TOKEN
    python examples/replicate_image.py --out images/    # the image goes to images/
    python examples/_replay.py examples/replicate_image.py     # offline

The image is saved in a new temporary folder unless ``--out DIR`` names one (the download does not carry
your key).
"""

from __future__ import annotations

import argparse
import tempfile

import computekit as ck

# --8<-- [start:main]
VERSION = "7762fd07cf82c948538e41f63f77d685e02b063e37e496e96eefd46c929f9bdc"
MODEL = f"replicate:stability-ai/sdxl:{VERSION}"
HARDWARE = "gpu-l40s"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out",
        metavar="DIR",
        help="save the image here (default: a new temporary folder)",
    )
    out = parser.parse_args().out or tempfile.mkdtemp(prefix="replicate-image-")
    with ck.Client() as client:
        p = client.predict(
            MODEL,
            {
                "prompt": "a red bicycle leaning on a brick wall, watercolor",
                "num_outputs": 1,
            },
            hardware=HARDWARE,
            # if the run takes longer, it is canceled on Replicate so that it stops
            # billing
            timeout=300,
        )
        print(f"prediction {p.id}: {p.status}")
        for path in p.save(out):
            print(f"saved {path}")
        print(f"GPU time: {p.usage.gpu_seconds} s on {HARDWARE}")
        for line in p.cost.lines:
            print(
                f"  {line.item}: {line.quantity} s x {line.unit_price} USD/s"
                f" = {line.amount} USD"
            )
        print(f"cost: {p.cost.total} USD  [{p.cost.price_source}]")


# --8<-- [end:main]


if __name__ == "__main__":
    main()
