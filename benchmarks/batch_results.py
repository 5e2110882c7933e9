"""Reading a batch's results: parse and price 50,000 result lines streamed from a file, in bounded memory.

Each scenario runs in a fresh subprocess (its peak RSS is its own), N rounds interleaved; medians are reported.

- ``json``: the floor: ``json.loads`` of every line, nothing kept (what reading the file costs at all).
- ``computekit``: the file read in 64 KiB chunks split into lines (as a download arrives), each line read by the
  adapter into a Completion (usage included), priced at the batch price and
  the synchronous one, added to the running totals; nothing is kept.
- ``computekit (held)``: the same, but every item kept in a list (what holding the results would cost: the
  difference in peak RSS is what streaming saves).
- ``client``: the whole public path: ``client.batches.retrieve`` then ``client.batches.results(job)`` on a
  ``Client`` whose HTTP is an httpx ``MockTransport`` streaming the file in 64 KiB chunks, through the attempt
  driver, each item priced and written to a SQLite ledger (one row per item, the once-only key): what a user's
  read of a real batch costs, the network aside.

Usage::

    python benchmarks/batch_results.py              # 50,000 lines, 3 rounds
    python benchmarks/batch_results.py --lines 5000 --rounds 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def write_results(path: Path, lines: int) -> None:
    """An OpenAI batch output file of ``lines`` chat completions (the shape the Batch API writes)."""
    with path.open("w") as fh:
        for i in range(lines):
            body = {
                "id": f"chatcmpl-{i}", "object": "chat.completion", "created": 1764239000,
                "model": "gpt-4o-mini-2024-07-18",
                "choices": [{"index": 0, "message": {"role": "assistant", "refusal": None, "annotations": [],
                                                     "content": f"Answer number {i}: " + "ok " * 40},
                             "logprobs": None, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 120 + i % 50, "completion_tokens": 40 + i % 7, "total_tokens": 0,
                          "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                          "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0}},
                "service_tier": "default", "system_fingerprint": "fp_560af6e559"}
            line = {"id": f"batch_req_{i}", "custom_id": f"r{i}",
                    "response": {"status_code": 200, "request_id": f"req_{i}", "body": body}, "error": None}
            fh.write(json.dumps(line, separators=(",", ":")) + "\n")


WORKER = r"""
import json, resource, sys, time
from pathlib import Path
mode, path = sys.argv[1], Path(sys.argv[2])
if mode != "json":
    from pydantic import SecretStr
    from computekit._batch import BatchTotals, price_item, result_lines
    from computekit.adapters._base import BatchState, ProviderSettings
    from computekit.adapters.openai import OpenAIAdapter
    from computekit.pricing import PriceBook
    settings = ProviderSettings("openai", "https://api.openai.com/v1", SecretStr("sk-bench-0123456789"), 30)
    adapter = OpenAIAdapter(settings)
    book = PriceBook()
    state = BatchState(id="batch_bench", model="gpt-4o-mini", status="completed", provider_status="completed")
    totals = BatchTotals()
held = []
start = time.perf_counter()
if mode == "client":
    import tempfile
    import httpx
    import computekit as ck

    class FileBody(httpx.SyncByteStream):
        def __iter__(self):
            with path.open("rb") as fh:
                while chunk := fh.read(65536):
                    yield chunk

    def answer(request):
        if request.url.path.endswith("/content"):
            return httpx.Response(200, stream=FileBody(), headers={"content-type": "application/octet-stream"})
        return httpx.Response(200, json={"id": "batch_bench", "object": "batch", "endpoint": "/v1/chat/completions",
                                         "status": "completed", "created_at": 1, "model": "gpt-4o-mini",
                                         "request_counts": {"total": 0, "completed": 0, "failed": 0},
                                         "output_file_id": "file-out", "input_file_id": "file-in",
                                         "completion_window": "24h"})

    tmp = tempfile.mkdtemp()
    client = ck.Client(config=None, providers={"openai": {"api_key": "sk-bench-0123456789"}},
                       ledger=f"sqlite:///{tmp}/ledger.db",
                       http_client=httpx.Client(transport=httpx.MockTransport(answer)))
    job = client.batches.retrieve("openai:batch_bench")
    n = sum(1 for _ in client.batches.results(job))
    client.close()  # the last rows written
    elapsed = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert len(client.ledger.rows()) == n
    print(json.dumps({"lines": n, "seconds": elapsed, "peak_rss_mib": rss / 1024, "saved": str(job.saved)}))
    sys.exit(0)
n = 0
with path.open("rb") as fh:
    # computekit reads the file as a download arrives: 64 KiB chunks split into lines (result_lines).
    lines = fh if mode == "json" else (raw for _, raw in result_lines(iter(lambda: fh.read(65536), b"")))
    for raw in lines:
        if mode == "json":
            json.loads(raw)
        else:
            item = adapter.parse_batch_line(state, raw)
            priced = price_item(book, adapter, "gpt-4o-mini", item)
            totals.add(priced)
            if mode == "held":
                held.append((item, priced))
        n += 1
elapsed = time.perf_counter() - start
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
print(json.dumps({"lines": n, "seconds": elapsed, "peak_rss_mib": rss / 1024,
                  "saved": str(totals.saved) if mode != "json" else None}))
"""

SCENARIOS = {"json": "json.loads only (floor)", "stream": "computekit: parse + price, streamed",
             "held": "computekit: parse + price, every item held",
             "client": "client.batches.results: + driver, ledger row per item"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=50_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    samples: dict[str, list[dict[str, float]]] = {k: [] for k in SCENARIOS}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "results.jsonl"
        write_results(path, args.lines)
        size = path.stat().st_size
        order = list(SCENARIOS)
        for r in range(args.rounds):
            for mode in order[r % len(order):] + order[:r % len(order)]:  # rotate: drift hits all alike
                out = subprocess.run([sys.executable, "-c", WORKER, mode, str(path)], env=env, check=True,
                                     capture_output=True, text=True).stdout
                samples[mode].append(json.loads(out))
                print(f"round {r + 1} {mode}: {samples[mode][-1]}", file=sys.stderr)
    print(f"{args.lines:,} result lines ({size / 2**20:.1f} MiB), medians of {args.rounds} rounds\n")
    print("| scenario | lines/s | peak RSS (MiB) | vs json.loads |")
    print("|---|---|---|---|")
    floor = statistics.median(s["lines"] / s["seconds"] for s in samples["json"])
    for mode, label in SCENARIOS.items():
        rate = statistics.median(s["lines"] / s["seconds"] for s in samples[mode])
        rss = statistics.median(s["peak_rss_mib"] for s in samples[mode])
        print(f"| {label} | {rate:,.0f} | {rss:.0f} | {floor / rate:.1f}x slower |" if mode != "json"
              else f"| {label} | {rate:,.0f} | {rss:.0f} | 1.0x |")


if __name__ == "__main__":
    main()
