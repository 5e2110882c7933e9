"""Reading a batch's results: parse and price 50,000 result lines streamed from a file, in bounded memory.

Each scenario runs in a fresh subprocess (its peak RSS is its own), N rounds interleaved; medians are reported.

- ``json``: the floor: ``json.loads`` of every line, nothing kept (what reading the file costs at all).
- ``computekit``: the file read in 64 KiB chunks split into lines (as a download arrives), each line read by the
  adapter into a Completion (usage included), priced at the batch price and
  the synchronous one (rates looked up once for the read, as ``results()`` does), added to the running totals;
  nothing is kept.
- ``computekit (held)``: the same, but every item kept in a list (what holding the results would cost: the
  difference in peak RSS is what streaming saves).
- ``public``: the whole public path, as a user reads a batch: ``client.batches.retrieve(id)`` then
  ``client.batches.results(job)``, the result file served in 64 KiB chunks by an in-process fake transport
  (httpx.MockTransport, nothing held), every item priced and written to a SQLite ledger (its once-only key
  checked), the ledger flushed (the time includes the flush); then its rows are counted (after the peak RSS is
  taken: a report loads every row).
- ``openai``: the vendor SDK's way, for the ratio: ``openai.OpenAI().files.with_streaming_response.content(id)``
  over the same fake transport, each line ``json.loads``-ed and its body validated into the SDK's
  ``ChatCompletion`` (typed answers, no price, no ledger).
- ``public+budget``: the same under a budget: the ledger is then written synchronously, row by row (what a
  client with a budget does), instead of by the writer thread in batches.

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
    from computekit._batch import BatchTotals, ItemPrices, price_item, result_lines
    from computekit.adapters._base import BatchState, ProviderSettings
    from computekit.adapters.openai import OpenAIAdapter
    from computekit.pricing import PriceBook
    settings = ProviderSettings("openai", "https://api.openai.com/v1", SecretStr("sk-bench-0123456789"), 30)
    adapter = OpenAIAdapter(settings)
    book = ItemPrices(PriceBook())  # as results() prices a read: each reference's rates looked up once
    state = BatchState(id="batch_bench", model="gpt-4o-mini", status="completed", provider_status="completed",
                       api="chat")
    totals = BatchTotals()
held = []
start, cpu = time.perf_counter(), time.process_time()
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
elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
print(json.dumps({"lines": n, "seconds": elapsed, "cpu_seconds": cpu, "peak_rss_mib": rss / 1024,
                  "saved": str(totals.saved) if mode != "json" else None}))
"""

PUBLIC_WORKER = r"""
import json, resource, sys, tempfile, time
from pathlib import Path
import httpx
import computekit as ck
mode, path, lines = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
batch = {"id": "batch_bench", "object": "batch", "endpoint": "/v1/chat/completions", "model": "gpt-4o-mini",
         "input_file_id": "file-in", "completion_window": "24h", "status": "completed", "created_at": 1764236401,
         "completed_at": 1764240060, "output_file_id": "file-out",
         "request_counts": {"total": lines, "completed": lines, "failed": 0}}

def serve(request):
    if request.url.path == "/v1/batches/batch_bench":
        return httpx.Response(200, json=batch)
    if request.url.path == "/v1/files/file-out/content":
        fh = path.open("rb")  # streamed: 64 KiB at a time, as a download arrives

        def chunks():
            with fh:
                yield from iter(lambda: fh.read(65536), b"")
        return httpx.Response(200, content=chunks(), headers={"content-type": "application/octet-stream"})
    return httpx.Response(404, json={"error": {"message": "no route"}})

if mode == "openai":
    import openai
    from openai.types.chat import ChatCompletion
    sdk = openai.OpenAI(api_key="sk-bench-0123456789abcdef", max_retries=0,
                        http_client=httpx.Client(transport=httpx.MockTransport(serve)))
    start, cpu = time.perf_counter(), time.process_time()
    n = 0
    with sdk.files.with_streaming_response.content("file-out") as resp:
        for raw in resp.iter_lines():
            if raw:
                ChatCompletion.model_validate(json.loads(raw)["response"]["body"])
                n += 1
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"lines": n, "seconds": elapsed, "cpu_seconds": cpu, "peak_rss_mib": rss / 1024}))
    sys.exit(0)

with tempfile.TemporaryDirectory() as tmp:
    budget = {"budget": {"limit_usd": "1000", "period": "total"}} if mode == "public+budget" else {}
    client = ck.Client(config=None, providers={"openai": {"api_key": "sk-bench-0123456789abcdef"}},
                       http_client=httpx.Client(transport=httpx.MockTransport(serve)),
                       ledger=f"sqlite:///{tmp}/ledger.db", **budget)
    start, cpu = time.perf_counter(), time.process_time()
    job = client.batches.retrieve("openai:batch_bench")
    n = sum(1 for _ in client.batches.results(job))
    client.ledger.flush()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    # The peak of the read itself: the check below loads every ledger row (a report reads the rows).
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    rows = client.ledger.report("verb").rows
    client.close()
    recorded = sum(r.calls for r in rows if r.key == "batch")
    assert recorded == n == lines, (recorded, n, lines)
print(json.dumps({"lines": n, "seconds": elapsed, "cpu_seconds": cpu, "peak_rss_mib": rss / 1024,
                  "saved": str(job.saved), "recorded": recorded}))
"""

SCENARIOS = {"json": "json.loads only (floor)", "stream": "computekit: parse + price, streamed",
             "held": "computekit: parse + price, every item held",
             "public": "client.batches.results(): HTTP + parse + price + ledger rows",
             "public+budget": "the same under a budget (ledger rows written synchronously)",
             "openai": "openai SDK: streamed file content, each line a ChatCompletion (no price, no ledger)"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=50_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", nargs="+", choices=list(SCENARIOS), help="run these scenarios only (json is kept)")
    args = ap.parse_args()
    chosen = {k: v for k, v in SCENARIOS.items() if not args.only or k in args.only or k == "json"}
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    samples: dict[str, list[dict[str, float]]] = {k: [] for k in chosen}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "results.jsonl"
        write_results(path, args.lines)
        size = path.stat().st_size
        order = list(chosen)
        for r in range(args.rounds):
            for mode in order[r % len(order):] + order[:r % len(order)]:  # rotate: drift hits all alike
                worker = PUBLIC_WORKER if mode.startswith("public") or mode == "openai" else WORKER
                out = subprocess.run([sys.executable, "-c", worker, mode, str(path), str(args.lines)], env=env,
                                     check=True, capture_output=True, text=True).stdout
                samples[mode].append(json.loads(out))
                print(f"round {r + 1} {mode}: {samples[mode][-1]}", file=sys.stderr)
    print(f"{args.lines:,} result lines ({size / 2**20:.1f} MiB), medians of {args.rounds} rounds\n")
    rates = {m: statistics.median(s["lines"] / s["seconds"] for s in samples[m]) for m in chosen}
    sdk = rates.get("openai")
    # CPU time (all the process's threads) per line: steadier than the wall clock on shared, busy cores.
    cpu = {m: statistics.median(1e6 * s["cpu_seconds"] / s["lines"] for s in samples[m]) for m in chosen}
    print("| scenario | lines/s | CPU µs/line | peak RSS (MiB) | time vs json.loads |"
          + (" time vs openai SDK | CPU vs openai SDK |" if sdk else ""))
    print("|---|---|---|---|---|" + ("---|---|" if sdk else ""))
    for mode, label in chosen.items():
        rss = statistics.median(s["peak_rss_mib"] for s in samples[mode])
        row = f"| {label} | {rates[mode]:,.0f} | {cpu[mode]:.1f} | {rss:.0f} | {rates['json'] / rates[mode]:.1f}x |"
        print(row + (f" {sdk / rates[mode]:.2f}x | {cpu[mode] / cpu['openai']:.2f}x |" if sdk else ""))

if __name__ == "__main__":
    main()
