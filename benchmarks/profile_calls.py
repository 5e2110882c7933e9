"""Profile computekit's per-call path against the loopback server (cProfile).

    python benchmarks/profile_calls.py seq   [--calls 2000] [--ledger none] [--sort tottime] [--top 40]
    python benchmarks/profile_calls.py async [--calls 2000] [--concurrency 100]
    python benchmarks/profile_calls.py seq --kind openai      # the same loop through the openai SDK

Prints the top functions, and a per-call attribution of the time spent under a few functions of interest
(cumulative time / calls), so a change can be judged in microseconds per call. ``--dump FILE`` keeps the raw
stats for snakeviz / pstats.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from server import start_in_subprocess

MODEL = "gpt-4o-mini"

# (file suffix, function name) -> label: where the per-call time is attributed.
INTEREST = [
    ("computekit/_client.py", "complete", "Client.complete (whole call)"),
    ("computekit/_plans.py", "complete_plan", "complete_plan (targets, the plan)"),
    ("computekit/_attempt.py", "next", "Call.next (the request built)"),
    ("computekit/adapters/openai.py", "build_complete", "OpenAIWire.build_complete"),
    ("computekit/_http.py", "body", "HTTPRequest.body (json.dumps)"),
    ("computekit/_driver.py", "_once", "SyncDriver/AsyncDriver._once (one try, whole)"),
    ("computekit/_transport.py", "send", "Transport.send (round trip; + the connection's send)"),
    ("computekit/_transport.py", "_open", "Urllib3Transport._open (request sent, head read)"),
    ("computekit/_transport.py", "_parse_head", "_transport._parse_head (response head)"),
    ("http/client.py", "parse_headers", "http.client.parse_headers (email parser)"),
    ("urllib3/poolmanager.py", "urlopen", "urllib3 PoolManager.urlopen"),
    ("urllib3/connectionpool.py", "urlopen", "urllib3 HTTPConnectionPool.urlopen"),
    ("httpx/_client.py", "send", "httpx send"),
    ("computekit/adapters/openai.py", "parse_complete", "OpenAIWire.parse_complete (json + pydantic types)"),
    ("computekit/adapters/openai.py", "uses_responses", "OpenAIWire.uses_responses (chat or Responses)"),
    ("computekit/_bookkeeping.py", "price_success", "price_success (price + Attempt)"),
    ("computekit/pricing/_book.py", "token_cost", "PriceBook.token_cost"),
    ("computekit/_bookkeeping.py", "succeeded", "succeeded (router, ledger row)"),
    ("computekit/_bookkeeping.py", "record", "record (LedgerRow + backend)"),
    ("computekit/ledger/_buffered.py", "put", "BatchWriter.put (row to the writer thread)"),
    ("pydantic/main.py", "__init__", "pydantic BaseModel.__init__ (all models)"),
    ("tenacity/__init__.py", "__iter__", "tenacity Retrying.__iter__ (retries only)"),
    ("openai/resources/chat/completions/completions.py", "create", "openai chat.completions.create"),
    ("openai/_base_client.py", "_build_request", "openai _build_request"),
    ("openai/_base_client.py", "_process_response", "openai _process_response"),
]


def _client(kind: str, url: str, ledger: str, is_async: bool) -> Any:
    if kind == "computekit":
        import computekit as ck

        kw: dict[str, Any] = {"providers": {"openai": {"base_url": url, "api_key": "sk-bench"}}, "ledger": ledger}
        return ck.AsyncClient(None, **kw) if is_async else ck.Client(None, **kw)
    import openai

    if is_async:
        return openai.AsyncOpenAI(base_url=url, api_key="sk-bench")
    return openai.OpenAI(base_url=url, api_key="sk-bench", max_retries=0)


def _call(kind: str, client: Any) -> Any:
    if kind == "computekit":
        return client.complete(f"openai:{MODEL}", "hi")
    return client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])


def attribution(stats: pstats.Stats, calls: int) -> list[tuple[str, float, int]]:
    out = []
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    for suffix, name, label in INTEREST:
        cum = 0.0
        n = 0
        for (file, _line, fn), (_cc, nc, _tt, ct, _callers) in raw.items():
            if fn == name and file.endswith(suffix):
                cum += ct
                n += nc
        if n:
            out.append((label, cum / calls * 1e6, n))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["seq", "async"])
    ap.add_argument("--kind", choices=["computekit", "openai"], default="computekit")
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=100)
    ap.add_argument("--ledger", default=None, help='"none" or a sqlite URL (default: a temp SQLite file)')
    ap.add_argument("--sort", default="tottime")
    ap.add_argument("--top", type=int, default=35)
    ap.add_argument("--dump", default=None)
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="ck-prof-")
    ledger = args.ledger or f"sqlite:///{tmp}/ledger.db"
    prof = cProfile.Profile()
    with start_in_subprocess() as server:
        if args.mode == "seq":
            client = _client(args.kind, server.url, ledger, False)
            for _ in range(100):
                _call(args.kind, client)
            prof.enable()
            for _ in range(args.calls):
                _call(args.kind, client)
            prof.disable()
        else:

            async def run() -> None:
                client = _client(args.kind, server.url, ledger, True)
                left = args.calls

                async def worker() -> None:
                    nonlocal left
                    while left > 0:
                        left -= 1
                        await _call(args.kind, client)

                await asyncio.gather(*(worker() for _ in range(args.concurrency)))  # warm the pool
                left = args.calls
                prof.enable()
                await asyncio.gather(*(worker() for _ in range(args.concurrency)))
                prof.disable()

            asyncio.run(run())

    stats = pstats.Stats(prof)
    if args.dump:
        stats.dump_stats(args.dump)
    total = sum(tt for (_cc, _nc, tt, _ct, _c) in stats.stats.values())  # type: ignore[attr-defined]
    print(f"\n{args.kind} {args.mode}: {args.calls} calls, profiled CPU {total / args.calls * 1e6:.0f} µs/call "
          "(cProfile inflates absolute numbers; compare shares)\n")
    print(f"{'where':60s} {'µs/call (cum)':>14s} {'calls':>8s}")
    for label, us, n in attribution(stats, args.calls):
        print(f"{label:60s} {us:14.1f} {n:8d}")
    print()
    stats.sort_stats(args.sort).print_stats(args.top)


if __name__ == "__main__":
    main()
