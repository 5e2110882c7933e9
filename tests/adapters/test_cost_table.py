"""One cost table across the six predict() hosts, from the tests' own replays.

Each row replays one host's authored cassette through ``ck.Client`` (the same calls and configured prices as that
host's test module) and reads the quantity the host reported, the unit price that priced it and the cost from the
result's ``cost.lines``; the test checks cost = quantity x unit price line by line. Run with ``-s`` to see the
table::

    PYTHONPATH=$PWD python -m pytest -q -s tests/adapters/test_cost_table.py
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import test_baseten_dedicated as baseten
import test_fal as fal
import test_hf_endpoint as hf
import test_replicate as replicate
import test_runpod as runpod
import test_stability as stability
import vcr
from _clients import MATCH_ON, Sleeps

import computekit as ck

CASSETTES = Path(__file__).resolve().parents[2] / "cassettes"

Row = tuple[str, str, Callable[[], Any], Callable[[Any], Any]]
"""host, cassette, make a client, run the call on it."""

ROWS: list[Row] = [
    ("Replicate (per second)", "test_replicate/run_and_poll.yaml",
     lambda: replicate.client_for("sync", Sleeps()),
     lambda c: c.predict("replicate:black-forest-labs/flux-schnell", {"prompt": "a watercolor fox"},
                         hardware="gpu-h100")),
    ("Replicate (per token)", "test_replicate/official_tokens.yaml",
     lambda: replicate.client_for("sync", Sleeps()),
     lambda c: c.predict("replicate:meta/meta-llama-3-70b-instruct",
                         {"prompt": "How many sisters do Tina's siblings have?", "max_tokens": 64})),
    ("RunPod", "test_runpod/runsync_success.yaml",
     lambda: runpod.client_for("sync", Sleeps(start=1000.0)),
     lambda c: c.predict("runpod:sdxl7x2k9q4m1p", {"prompt": "a lighthouse at dusk", "seed": 46578},
                         hardware=runpod.SKU)),
    ("fal.ai", "test_fal/run_and_poll.yaml",
     lambda: fal.client_for("sync", Sleeps()),
     lambda c: c.predict(fal.MODEL, {"prompt": "a red bicycle"})),
    ("Baseten (dedicated)", "test_baseten_dedicated/predict_production.yaml",
     lambda: baseten.client_for("sync", Sleeps()),
     lambda c: c.predict(f"baseten-dedicated:{baseten.MODEL_ID}",
                         {"prompt": "a watercolor fox", "num_inference_steps": 4}, hardware=baseten.SKU)),
    ("HF Inference Endpoint", "test_hf_endpoint/predict_url.yaml",
     lambda: hf.client_for("sync", Sleeps(), conf={"hardware": {hf.URL: hf.SKU}}),
     lambda c: c.predict(f"hf-endpoint:{hf.URL}",
                         {"inputs": "Deploying my first endpoint was an amazing experience."})),
    ("Stability AI", "test_stability/ultra.yaml",
     lambda: stability.client_for("sync"),
     lambda c: c.predict("stability:ultra", {"prompt": "a lighthouse at dawn", "aspect_ratio": "3:2"})),
]


def _replay(cassette: str, make: Callable[[], Any], run: Callable[[Any], Any]) -> ck.Prediction:
    # Stability's multipart body carries a boundary made per request: matched without the body, as its tests do.
    match_on = [m for m in MATCH_ON if m != "body"] if "stability" in cassette else MATCH_ON
    recorder = vcr.VCR(record_mode="none", match_on=match_on)
    client = make()
    try:
        with recorder.use_cassette(str(CASSETTES / cassette)) as cass:
            p: ck.Prediction = run(client)
            assert cass.all_played
    finally:
        client.close()
    return p


def _fmt(d: Decimal) -> str:
    return f"{d.normalize():f}"


def test_cost_table() -> None:
    lines = ["| host | quantity reported | unit price (USD) | cost (USD) | price from |", "|---|---|---|---|---|"]
    for host, cassette, make, run in ROWS:
        p = _replay(cassette, make, run)
        assert p.status == "succeeded", host
        cost = p.cost
        assert cost is not None
        assert cost.total is not None, f"{host}: {cost.reason}"
        assert cost.lines, host
        for line in cost.lines:  # each charge is exactly quantity x unit price, and they add up to the total
            assert line.amount == line.quantity * line.unit_price, host
        assert sum(line.amount for line in cost.lines) == cost.total, host
        quantity = "; ".join(f"{_fmt(ln.quantity)} {ln.unit} ({ln.item})" for ln in cost.lines)
        price = "; ".join(_fmt(ln.unit_price) for ln in cost.lines)
        source = cost.price_source.table if cost.price_source else "?"
        if cost.price_source and cost.price_source.url:
            source += f" ({cost.price_source.url})"
        estimated = " (estimated: measured time)" if cost.estimated else ""
        lines.append(f"| {host} | {quantity}{estimated} | {price} | {_fmt(cost.total)} | {source} |")
    table = "\n".join(lines)
    print("\n" + table)
    assert len(lines) == 2 + len(ROWS)
